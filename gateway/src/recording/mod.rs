//! Session recordings: asciicast v2, written as things happen.
//!
//! Each session has one `.cast` file under the data dir's `recordings/YYYY/MM/DD/`. Every
//! event is written with its own `write` call and no user-space buffering, so a crash of
//! the gateway keeps everything already sent; the SHA-256 is computed as the bytes are
//! written and enters the audit chain when the session ends. The file is created before the
//! session may start (a recording that cannot be created refuses the session); its header
//! is written with the first event, so that it carries the terminal's real size when the
//! session's first channel has a terminal (`asciinema play` sizes its screen from it).
//!
//! A full disk fails closed. A session starts only with [`MIN_FREE`] free under
//! `recordings/` ([`check_room`]); a write that fails (no space, quota) cuts the file back
//! to the end of the last complete event and refuses every later write, so the file stays
//! a valid cast whose SHA-256 is the one that enters the chain, and the session ends with
//! reason "recording storage full" ([`failure`]). One session cannot fill the disk for the
//! others: a recording that would grow past `[recording] session_quota` ([`Limits`]) ends
//! its session with reason "recording quota reached" (the closing notice still goes in).
//!
//! What goes into the terminal stream: output (`o`), keystrokes (`i`) once the box echoed
//! them ([`echo`]), resizes (`r`), and the gateway's own notices to the engineer (as
//! output, since the engineer saw them). Channels without a terminal (`ssh -T`, commands)
//! go into the same stream through the SSH front's tap (`ssh/tap.rs`): their stdout and
//! stderr as output (each lone newline shown as a terminal would), their stdin as input,
//! up to `[recording] channel_cap` each. Exit statuses, byte counts, SHA-256 of each
//! stream and file transfers are session events in the store.
//!
//! Read back: [`cast`] parses (whole or as a stream), [`screen`] renders the terminal for
//! the panel's replay and [`live_view`] for watching a running session, [`keys`] makes
//! keystrokes readable, [`transcript`] gives the plain text.

pub mod cast;
pub mod echo;
pub mod keys;
pub mod live_view;
pub mod screen;
pub mod transcript;
pub mod transfer;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Datelike, Utc};
use ring::digest::{Context, SHA256};

use iks_domain::ids::SessionId;
use iks_domain::model::EndReason;

/// Free space the recordings' file system must have for a session to start: room for a
/// while of terminal output, so a session is not refused by the header and ended by its
/// first screenful.
pub const MIN_FREE: u64 = 8 << 20;

/// The smallest `[recording] session_quota`: room for a session's first screens.
pub const MIN_QUOTA: u64 = 64 << 10;
/// Room kept beyond the quota for the gateway's own notices, so the record says why it ends.
const NOTICE_RESERVE: u64 = 16 << 10;

/// How much one session may record ([`crate::config::RecordingConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Content bytes recorded per channel without a terminal.
    pub channel_cap: u64,
    /// Bytes one session's recording file may take.
    pub session_quota: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { channel_cap: 16 << 20, session_quota: 256 << 20 }
    }
}

/// A session's recording reached `[recording] session_quota`.
#[derive(Debug, thiserror::Error)]
#[error("the session's recording reached its quota of {} KiB ([recording] session_quota)", .quota >> 10)]
pub struct QuotaReached {
    pub quota: u64,
}

/// Refuses (as [`io::ErrorKind::StorageFull`]) when `root`'s file system has less than
/// [`MIN_FREE`] available; creates `root` if needed.
pub fn check_room(root: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    let st = rustix::fs::statvfs(root).map_err(io::Error::from)?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < MIN_FREE {
        let message = format!("{} KiB free for recordings, {} KiB needed", free >> 10, MIN_FREE >> 10);
        return Err(io::Error::new(io::ErrorKind::StorageFull, message));
    }
    Ok(())
}

/// Whether a recording error means the disk (or the owner's quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Why a session whose recording failed with `e` ends, and what the engineer is told.
pub fn failure(e: &io::Error) -> (EndReason, &'static str) {
    if e.get_ref().is_some_and(|inner| inner.is::<QuotaReached>()) {
        (EndReason::RecordingQuota, "this session's recording reached its quota ([recording] session_quota)")
    } else if is_full(e) {
        (EndReason::StorageFull, "recording storage full, and no session goes unrecorded")
    } else {
        (EndReason::RecordingFailed, "recording storage failed, and no session goes unrecorded")
    }
}

/// Why a recording takes no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    Io(io::ErrorKind),
    /// The quota was reached: only the gateway's notices still go in, within [`NOTICE_RESERVE`].
    Quota,
}

/// The recording of one session, open for appending.
pub struct Recording {
    file: File,
    /// Bytes of complete events in the file (and in `hash`).
    len: u64,
    /// Set by the first failed write: nothing more is written (see [`Recording::write`]).
    failed: Option<Failed>,
    hash: Context,
    started: Instant,
    relative: String,
    /// Written with the first event, so that a terminal's size known by then is in it.
    header: Option<cast::Header>,
    limits: Limits,
    out_carry: Vec<u8>,
    in_carry: Vec<u8>,
    gate: echo::EchoGate,
    size: (u32, u32),
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").field("file", &self.relative).finish_non_exhaustive()
    }
}

/// The finished file: its name under `recordings/` and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub relative: String,
    pub sha256: String,
}

/// Where a session's recording lives, relative to the recordings directory.
pub fn relative_path(session: SessionId, started: DateTime<Utc>) -> String {
    format!("{:04}/{:02}/{:02}/{session}.cast", started.year(), started.month(), started.day())
}

impl Recording {
    /// Creates the file (never overwriting one); the header follows with the first event.
    pub fn create(
        root: &Path,
        session: SessionId,
        started: DateTime<Utc>,
        title: &str,
        limits: Limits,
    ) -> io::Result<Self> {
        let relative = relative_path(session, started);
        let path: PathBuf = root.join(&relative);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        let header =
            cast::Header { version: 2, width: 80, height: 24, timestamp: started.timestamp(), title: title.into() };
        Ok(Self {
            file,
            len: 0,
            failed: None,
            hash: Context::new(&SHA256),
            started: Instant::now(),
            relative,
            header: Some(header),
            limits,
            out_carry: Vec::new(),
            in_carry: Vec::new(),
            gate: echo::EchoGate::default(),
            size: (80, 24),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// The terminal's size, when the engineer's client asks for a PTY or resizes.
    pub fn resize(&mut self, cols: u32, rows: u32) -> io::Result<()> {
        // Clients without a real terminal (`ssh -tt` from a pipe) report 0x0: size unknown.
        if cols == 0 || rows == 0 || self.size == (cols, rows) {
            return Ok(());
        }
        self.size = (cols, rows);
        if let Some(header) = &mut self.header {
            // Nothing written yet: the header says it, and players start at this size.
            (header.width, header.height) = (cols, rows);
            return Ok(());
        }
        self.event("r", &format!("{cols}x{rows}"))
    }

    /// What the box sent to the engineer's terminal; the keys it echoed go in first.
    pub fn output(&mut self, data: &[u8]) -> io::Result<()> {
        let text = take_utf8(&mut self.out_carry, data);
        if text.is_empty() {
            return Ok(());
        }
        let released = self.gate.echoed(&text);
        self.keys(released)?;
        self.event("o", &text)
    }

    /// What the engineer typed: held until the box echoes it ([`echo`]).
    pub fn input(&mut self, data: &[u8]) -> io::Result<()> {
        let text = take_utf8(&mut self.in_carry, data);
        let released = self.gate.typed(&text);
        self.keys(released)
    }

    fn keys(&mut self, pieces: Vec<echo::Piece>) -> io::Result<()> {
        for piece in pieces {
            match piece {
                echo::Piece::Keys(k) => self.event("i", &k)?,
                echo::Piece::Hidden(n) => self.event("i", &echo::marker(n))?,
            }
        }
        Ok(())
    }

    /// Content of a channel without a terminal: `o` for what it printed, `i` for its stdin.
    pub fn plain(&mut self, code: &'static str, text: &str) -> io::Result<()> {
        if text.is_empty() { Ok(()) } else { self.event(code, text) }
    }

    /// A message the gateway wrote to the engineer's terminal. It still goes in after the
    /// quota was reached (within a small reserve), so the record says why it ends.
    pub fn notice(&mut self, text: &str) -> io::Result<()> {
        let line = self.line("o", text)?;
        if self.failed == Some(Failed::Quota) && self.len + line.len() as u64 <= self.quota_end() {
            // Past the quota's check: the header is in, and `write` would refuse the line.
            return self.put(&line);
        }
        self.write(&line)
    }

    fn quota_end(&self) -> u64 {
        self.limits.session_quota + NOTICE_RESERVE
    }

    /// Flushes to disk and returns the file's name and hash.
    pub fn finish(mut self) -> io::Result<Finished> {
        // After a failed write the file ends at its last complete event; leave it so.
        if self.failed.is_none() {
            let unechoed = self.gate.finish();
            self.keys(unechoed)?;
            let out = std::mem::take(&mut self.out_carry);
            if !out.is_empty() {
                self.event("o", &String::from_utf8_lossy(&out))?;
            }
            // A partial character typed last: never echoed, so only counted.
            if !self.in_carry.is_empty() {
                self.event("i", &echo::marker(1))?;
            }
            self.write_header()?;
        }
        self.file.sync_all()?;
        Ok(Finished { relative: self.relative, sha256: hex::encode(self.hash.finish()) })
    }

    fn line(&self, code: &str, text: &str) -> io::Result<Vec<u8>> {
        let t = self.started.elapsed().as_secs_f64();
        let mut line = serde_json::to_vec(&(cast::Time(t), code, text)).map_err(io::Error::other)?;
        line.push(b'\n');
        Ok(line)
    }

    fn event(&mut self, code: &str, text: &str) -> io::Result<()> {
        let line = self.line(code, text)?;
        self.write(&line)
    }

    fn write_header(&mut self) -> io::Result<()> {
        let Some(header) = self.header.take() else { return Ok(()) };
        let mut line = serde_json::to_vec(&header).map_err(io::Error::other)?;
        line.push(b'\n');
        self.append(&line)
    }

    /// Appends one event line (after the header, the first time) within the quota.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_header()?;
        if self.failed.is_none() && self.len + bytes.len() as u64 > self.limits.session_quota {
            self.failed = Some(Failed::Quota);
            tracing::warn!(file = %self.relative, quota = self.limits.session_quota, "recording quota reached");
        }
        self.append(bytes)
    }

    /// Appends one whole line, unless a write failed before.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.failed {
            Some(Failed::Io(kind)) => Err(io::Error::new(kind, "the recording failed earlier")),
            Some(Failed::Quota) => Err(io::Error::other(QuotaReached { quota: self.limits.session_quota })),
            None => self.put(bytes),
        }
    }

    /// Writes one whole line or nothing. A failed write may have left part of the line
    /// (a full disk takes what fits): the file is cut back to the last complete line, and
    /// later writes are refused, so a later success cannot glue text onto a torn line.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            self.failed = Some(Failed::Io(e.kind()));
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!(file = %self.relative, error = %cut, "cannot cut a torn line off the recording");
            }
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.hash.update(bytes);
        Ok(())
    }
}

/// Why a session's recording could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} has no recording")]
    NoRecording(SessionId),
    #[error("cannot read the recording {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reads the recording of session `id` from `recordings_dir` for `actor`, audited as
/// [`locate`] does.
pub async fn fetch(
    store: &crate::store::Store,
    recordings_dir: &Path,
    actor: &iks_domain::audit::Actor,
    id: SessionId,
    action: &'static str,
) -> Result<Vec<u8>, FetchError> {
    let path = locate(store, recordings_dir, actor, id, action).await?;
    fs::read(&path).map_err(|source| FetchError::Read { path, source })
}

/// The path of session `id`'s recording, for `actor` to read (a download, a replay, the
/// live view). Looking at a recording is itself audited: `action` (`session.replay`,
/// `session.download`, `session.watch`, …) is appended to the chain before the path is
/// returned, and only if the file is there to be read.
pub async fn locate(
    store: &crate::store::Store,
    recordings_dir: &Path,
    actor: &iks_domain::audit::Actor,
    id: SessionId,
    action: &'static str,
) -> Result<PathBuf, FetchError> {
    let s = store.session(id).await?;
    let rel = s.recording.as_deref().ok_or(FetchError::NoRecording(id))?;
    let path = recordings_dir.join(rel);
    fs::File::open(&path).map_err(|source| FetchError::Read { path: path.clone(), source })?;
    let org = store.get_box(s.box_id).await?.org_id;
    let subjects = iks_domain::audit::Subjects {
        org: Some(org),
        ticket: Some(s.ticket_id),
        box_: Some(s.box_id),
        grant: Some(s.grant_id),
        session: Some(id),
    };
    store
        .append_event(iks_domain::audit::NewEvent::new(
            actor,
            action,
            subjects,
            serde_json::json!({ "recording": rel }),
        ))
        .await?;
    Ok(path)
}

/// The complete UTF-8 text of `carry ‖ data`; an incomplete sequence at the end waits in
/// `carry` for the next chunk, so characters split across SSH packets are kept whole.
pub(crate) fn take_utf8(carry: &mut Vec<u8>, data: &[u8]) -> String {
    carry.extend_from_slice(data);
    let keep = incomplete_tail(carry);
    let tail = carry.split_off(carry.len() - keep);
    let text = String::from_utf8_lossy(carry).into_owned();
    *carry = tail;
    text
}

/// How many bytes at the end of `b` start a UTF-8 sequence that is not yet complete.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let byte = b[b.len() - back];
        if byte & 0b1100_0000 != 0b1000_0000 {
            // A lead byte: how long its sequence should be.
            let need = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if need > back { back } else { 0 };
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_split_across_chunks_stay_whole() {
        let text = "привет, мир ✓ 🙂";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut carry = Vec::new();
            let mut out = take_utf8(&mut carry, &bytes[..split]);
            out.push_str(&take_utf8(&mut carry, &bytes[split..]));
            assert_eq!(out, text, "split at {split}");
            assert!(carry.is_empty());
        }
        let mut carry = Vec::new();
        assert_eq!(take_utf8(&mut carry, b"a\xffb"), "a\u{fffd}b", "invalid bytes are replaced, not kept");
    }

    #[test]
    fn the_file_is_written_as_events_happen_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let started = iks_domain::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let mut rec = Recording::create(dir.path(), SessionId(7), started, "T-1042 S-7", Limits::default()).unwrap();
        assert_eq!(rec.relative(), "2026/11/24/S-7.cast");
        // The first size goes into the header, later ones are events.
        rec.resize(120, 40).unwrap();
        rec.input(b"ls\r").unwrap();
        rec.output("ls\r\nфайл\r\n".as_bytes()).unwrap();
        rec.resize(0, 0).unwrap();
        rec.resize(100, 30).unwrap();
        let path = dir.path().join("2026/11/24/S-7.cast");
        // Readable before the session ends: a crash keeps what was written.
        let partial = cast::read(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(partial.events.len(), 3);
        let done = rec.finish().unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(done.sha256, hex::encode(ring::digest::digest(&SHA256, &bytes)));
        let cast = cast::read(&bytes).unwrap();
        assert_eq!(cast.header.title, "T-1042 S-7");
        assert_eq!((cast.header.width, cast.header.height), (120, 40));
        let kinds: Vec<_> = cast.events.iter().map(|e| (e.code.as_str(), e.data.as_str())).collect();
        assert_eq!(kinds, [("i", "ls\r"), ("o", "ls\r\nфайл\r\n"), ("r", "100x30")]);
        let again = Recording::create(dir.path(), SessionId(7), started, "again", Limits::default());
        assert!(again.is_err(), "never overwrites");
        // A session with nothing in it is still a valid recording.
        let empty = Recording::create(dir.path(), SessionId(9), started, "empty", Limits::default()).unwrap();
        let path = dir.path().join(empty.relative());
        empty.finish().unwrap();
        assert_eq!(cast::read(&fs::read(path).unwrap()).unwrap().events, []);
    }

    #[test]
    fn unechoed_keys_are_kept_out_of_the_recording() {
        let dir = tempfile::tempdir().unwrap();
        let started = iks_domain::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let mut rec = Recording::create(dir.path(), SessionId(5), started, "T-1042 S-5", Limits::default()).unwrap();
        rec.output(b"[sudo] password for root: ").unwrap();
        rec.input(b"hunter2").unwrap();
        rec.input(b"\r").unwrap();
        rec.output(b"\r\n# ").unwrap();
        rec.input(b"typed-but-cut").unwrap();
        let path = dir.path().join(rec.relative());
        rec.finish().unwrap();
        let bytes = fs::read_to_string(path).unwrap();
        assert!(!bytes.contains("hunter2") && !bytes.contains("typed-but-cut"), "{bytes}");
        let inputs: Vec<_> = cast::read(bytes.as_bytes())
            .unwrap()
            .events
            .into_iter()
            .filter(|e| e.code == "i")
            .map(|e| e.data)
            .collect();
        assert_eq!(inputs, [echo::marker(7), "\r".into(), echo::marker(13)]);
    }

    #[test]
    fn the_quota_ends_the_recording_with_the_notice_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let started = iks_domain::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let limits = Limits { channel_cap: 1024, session_quota: MIN_QUOTA };
        let mut rec = Recording::create(dir.path(), SessionId(6), started, "T-1042 S-6", limits).unwrap();
        let chunk = "x".repeat(1000);
        let e = loop {
            if let Err(e) = rec.output(chunk.as_bytes()) {
                break e;
            }
        };
        assert_eq!(failure(&e).0, EndReason::RecordingQuota, "{e}");
        assert!(rec.output(b"more").is_err(), "nothing more after the quota");
        // A notice goes in even when it does not fit under the quota itself (the last
        // event may have left no room at all): that is what the reserve is for.
        rec.notice(&format!("notice {}\r\n", "n".repeat(2000))).unwrap();
        rec.notice("session closed: quota\r\n").unwrap();
        let path = dir.path().join(rec.relative());
        rec.finish().unwrap();
        let bytes = fs::read(path).unwrap();
        assert!(bytes.len() as u64 > MIN_QUOTA, "the notices went past the quota: {} bytes", bytes.len());
        assert!(bytes.len() as u64 <= MIN_QUOTA + NOTICE_RESERVE, "{} bytes", bytes.len());
        let cast = cast::read(&bytes).unwrap();
        assert_eq!(cast.events.last().unwrap().data, "session closed: quota\r\n");
    }

    #[test]
    fn a_full_disk_ends_the_recording_at_its_last_complete_event() {
        let dir = tempfile::tempdir().unwrap();
        let started = iks_domain::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let mut rec = Recording::create(dir.path(), SessionId(8), started, "T-1042 S-8", Limits::default()).unwrap();
        rec.output(b"before\r\n").unwrap();
        let path = dir.path().join(rec.relative());
        let kept = fs::read(&path).unwrap();
        // /dev/full fails every write with ENOSPC, as a full file system does.
        rec.file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let e = rec.output(b"lost\r\n").unwrap_err();
        assert!(is_full(&e), "{e:?}");
        assert_eq!(failure(&e).0, EndReason::StorageFull);
        rec.file = OpenOptions::new().append(true).open(&path).unwrap();
        assert!(rec.notice("after\r\n").is_err(), "nothing is written after a failure, even with room again");
        assert_eq!(fs::read(&path).unwrap(), kept);
        let done = rec.finish().unwrap();
        assert_eq!(done.sha256, hex::encode(ring::digest::digest(&SHA256, &kept)), "the hash is the file's");
        let cast = cast::read(&kept).unwrap();
        assert_eq!(cast.events.len(), 1);
        let other = io::Error::new(io::ErrorKind::PermissionDenied, "no");
        assert_eq!(failure(&other).0, EndReason::RecordingFailed);
    }

    #[test]
    fn a_session_needs_room_for_its_recording() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        // A temp dir has room (CI disks have more than 8 MiB free); the dir is created.
        check_room(&root).unwrap();
        assert!(root.is_dir());
    }
}
