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
}

/// Parses a recording. A last line without its newline (cut by a crash) is skipped.
pub fn read(bytes: &[u8]) -> Result<Cast, CastError> {
    let text = String::from_utf8_lossy(bytes);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => return Err(CastError::Empty),
    };
    let mut lines = complete.lines().enumerate();
    let (_, first) = lines.next().ok_or(CastError::Empty)?;
    let header: Header =
        serde_json::from_str(first).map_err(|e| CastError::Invalid { line: 1, message: e.to_string() })?;
    if header.version != 2 {
        return Err(CastError::Invalid { line: 1, message: format!("version {} (expected 2)", header.version) });
    }
    let mut events = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (time, code, data): (f64, String, String) =
            serde_json::from_str(line).map_err(|e| CastError::Invalid { line: i + 1, message: e.to_string() })?;
        events.push(Event { time, code, data });
    }
    Ok(Cast { header, events })
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
        assert!(matches!(
            read(b"{\"version\":1,\"width\":1,\"height\":1,\"timestamp\":1}\n"),
            Err(CastError::Invalid { line: 1, .. })
        ));
        assert!(matches!(
            read(b"{\"version\":2,\"width\":1,\"height\":1,\"timestamp\":1}\nnope\n"),
            Err(CastError::Invalid { line: 2, .. })
        ));
    }
}
