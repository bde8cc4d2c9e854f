//! The asciicast v2 format: a JSON header line, then one `[time, code, data]` line per
//! event. Read back for replay, transcripts and search; the reader accepts a file cut
//! short by a crash (a partial last line is ignored).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub width: u32,
    pub height: u32,
    pub timestamp: i64,
    #[serde(default)]
    pub title: String,
}

/// Seconds since the start, written with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Time(pub f64);

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((self.0 * 1e6).round() / 1e6)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: f64,
    pub code: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub header: Header,
    pub events: Vec<Event>,
}

#[derive(Debug, thiserror::Error)]
pub enum CastError {
    #[error("the recording is empty")]
    Empty,
    #[error("line {line} of the recording is not valid asciicast: {message}")]
    Invalid { line: usize, message: String },
    #[error("cannot read the recording: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses a recording. A last line without its newline (cut by a crash) is skipped.
pub fn read(bytes: &[u8]) -> Result<Cast, CastError> {
    let mut d = Decoder::default();
    d.feed(bytes);
    let mut events = Vec::new();
    while let Some(e) = d.next_event()? {
        events.push(e);
    }
    let header = d.header.ok_or(CastError::Empty)?;
    Ok(Cast { header, events })
}

/// Parses a recording as its bytes arrive, one complete line at a time: a large file is
/// read in chunks instead of whole, and a live session's growing file is tailed (a line
/// still being written waits in the buffer until its newline comes).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the unparsed bytes start in `buf`.
    start: usize,
    header: Option<Header>,
    line: usize,
}

impl Decoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The header, once its line has been fed.
    pub fn header(&mut self) -> Result<Option<&Header>, CastError> {
        if self.header.is_none() {
            let Some(line) = self.next_line() else { return Ok(None) };
            let header: Header =
                serde_json::from_str(&line).map_err(|e| CastError::Invalid { line: 1, message: e.to_string() })?;
            if header.version != 2 {
                return Err(CastError::Invalid {
                    line: 1,
                    message: format!("version {} (expected 2)", header.version),
                });
            }
            self.header = Some(header);
        }
        Ok(self.header.as_ref())
    }

    /// The next complete event, or `None` until more bytes are fed.
    pub fn next_event(&mut self) -> Result<Option<Event>, CastError> {
        if self.header()?.is_none() {
            return Ok(None);
        }
        while let Some(line) = self.next_line() {
            if line.trim().is_empty() {
                continue;
            }
            let (time, code, data): (f64, String, String) = serde_json::from_str(&line)
                .map_err(|e| CastError::Invalid { line: self.line, message: e.to_string() })?;
            return Ok(Some(Event { time, code, data }));
        }
        Ok(None)
    }

    fn next_line(&mut self) -> Option<String> {
        let rest = &self.buf[self.start..];
        let end = rest.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.start += end + 1;
        self.line += 1;
        Some(line)
    }
}

/// The time of a recording's last complete event, read from the end of the file (its
/// last 64 KiB), which is left positioned at its start.
pub fn last_time<R: std::io::Read + std::io::Seek>(source: &mut R) -> Result<Option<f64>, CastError> {
    use std::io::SeekFrom;
    let len = source.seek(SeekFrom::End(0))?;
    source.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
    let mut tail = Vec::new();
    source.read_to_end(&mut tail)?;
    source.seek(SeekFrom::Start(0))?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(&tail[..0], |i| &tail[..i]);
    let time = complete
        .split(|&b| b == b'\n')
        .rev()
        .find_map(|line| serde_json::from_slice::<(f64, serde::de::IgnoredAny, serde::de::IgnoredAny)>(line).ok())
        .map(|(t, _, _)| t);
    Ok(time)
}

/// The events of a recording read in chunks from `R` (a file), for recordings too large
/// to hold whole.
#[derive(Debug)]
pub struct Reader<R> {
    source: R,
    decoder: Decoder,
    eof: bool,
}

/// How much of the file is read at a time.
const CHUNK: usize = 256 * 1024;

impl<R: std::io::Read> Reader<R> {
    pub fn new(source: R) -> Self {
        Self { source, decoder: Decoder::default(), eof: false }
    }

    pub fn header(&mut self) -> Result<&Header, CastError> {
        while self.decoder.header()?.is_none() {
            if !self.fill()? {
                return Err(CastError::Empty);
            }
        }
        self.decoder.header()?.ok_or(CastError::Empty)
    }

    /// Reads the next chunk; false at the end of the file.
    fn fill(&mut self) -> Result<bool, CastError> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = vec![0; CHUNK];
        let n = loop {
            match self.source.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        self.eof = n == 0;
        self.decoder.feed(&chunk[..n]);
        Ok(n > 0)
    }
}

impl<R: std::io::Read> Iterator for Reader<R> {
    type Item = Result<Event, CastError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.decoder.next_event() {
                Ok(Some(e)) => return Some(Ok(e)),
                Err(e) => return Some(Err(e)),
                Ok(None) => match self.fill() {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_complete_lines_and_rejects_garbage() {
        let ok = b"{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1}\n[0.5,\"o\",\"hi\"]\n[0.6,\"o\",\"cut";
        let cast = read(ok).unwrap();
        assert_eq!(cast.events, [Event { time: 0.5, code: "o".into(), data: "hi".into() }]);
        assert!(matches!(read(b""), Err(CastError::Empty)));
        assert!(matches!(read(b"{\"version\":2"), Err(CastError::Empty)), "a header cut short");
        assert!(matches!(
            read(b"{\"version\":1,\"width\":1,\"height\":1,\"timestamp\":1}\n"),
            Err(CastError::Invalid { line: 1, .. })
        ));
        assert!(matches!(
            read(b"{\"version\":2,\"width\":1,\"height\":1,\"timestamp\":1}\nnope\n"),
            Err(CastError::Invalid { line: 2, .. })
        ));
    }

    #[test]
    fn the_decoder_waits_for_whole_lines() {
        let file =
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1}\n[0.5,\"o\",\"привет\"]\n\n[1,\"i\",\"x\"]\n";
        let mut d = Decoder::default();
        let mut got = Vec::new();
        // Byte by byte, splitting characters too: each event comes out once its line is complete.
        for b in file.as_bytes() {
            d.feed(std::slice::from_ref(b));
            while let Some(e) = d.next_event().unwrap() {
                got.push(e);
            }
        }
        assert_eq!(d.header().unwrap().map(|h| h.width), Some(80));
        let mut cut = std::io::Cursor::new(format!("{file}[2.5,\"o\",\"cut sh"));
        assert_eq!(last_time(&mut cut).unwrap(), Some(1.0), "the last complete event");
        assert_eq!(cut.position(), 0);
        assert_eq!(
            got,
            [
                Event { time: 0.5, code: "o".into(), data: "привет".into() },
                Event { time: 1.0, code: "i".into(), data: "x".into() }
            ]
        );
    }
}
