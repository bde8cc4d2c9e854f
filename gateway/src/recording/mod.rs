//! Session recordings: asciicast v2, written as things happen.
//!
//! Each session has one `.cast` file under the data dir's `recordings/YYYY/MM/DD/`. Every
//! event is written with its own `write` call and no user-space buffering, so a crash of
//! the gateway keeps everything already sent; the SHA-256 is computed as the bytes are
//! written and enters the audit chain when the session ends. The header is written when
//! the file is created, before the session may start (a recording that cannot be created
//! refuses the session); a terminal's real size arrives as an `r` event.
//!
//! A full disk fails closed. A session starts only with [`MIN_FREE`] free under
//! `recordings/` ([`check_room`]); a write that fails (no space, quota) cuts the file back
//! to the end of the last complete event and refuses every later write, so the file stays
//! a valid cast whose SHA-256 is the one that enters the chain, and the session ends with
//! reason "recording storage full" ([`failure`]).
//!
//! What goes into the terminal stream: output (`o`), keystrokes (`i`), resizes (`r`), and
//! the gateway's own notices to the engineer (as output, since the engineer saw them).
//! Exec commands, exit statuses and file transfers are session events in the store.
//!
//! Read back: [`cast`] parses (whole or as a stream), [`screen`] renders the terminal for
//! the panel's replay and [`live_view`] for watching a running session, [`keys`] makes
//! keystrokes readable, [`transcript`] gives the plain text.

pub mod cast;
pub mod keys;
pub mod live_view;
pub mod screen;
pub mod tap;
pub mod transcript;
pub mod transfer;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Datelike, Utc};
use ring::digest::{Context, SHA256};

use crate::ids::SessionId;
use crate::model::EndReason;

/// Free space the recordings' file system must have for a session to start: room for a
/// while of terminal output, so a session is not refused by the header and ended by its
/// first screenful.
pub const MIN_FREE: u64 = 8 << 20;

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
    if is_full(e) {
        (EndReason::StorageFull, "recording storage full, and no session goes unrecorded")
    } else {
        (EndReason::RecordingFailed, "recording storage failed, and no session goes unrecorded")
    }
}

/// The recording of one session, open for appending.
pub struct Recording {
    file: File,
    /// Bytes of complete events in the file (and in `hash`).
    len: u64,
    /// Set by the first failed write: nothing more is written (see [`Recording::write`]).
    failed: Option<io::ErrorKind>,
    hash: Context,
    started: Instant,
    relative: String,
    out_carry: Vec<u8>,
    in_carry: Vec<u8>,
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
    /// Creates the file (never overwriting one) and writes the header.
    pub fn create(root: &Path, session: SessionId, started: DateTime<Utc>, title: &str) -> io::Result<Self> {
        let relative = relative_path(session, started);
        let path: PathBuf = root.join(&relative);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        let mut rec = Self {
            file,
            len: 0,
            failed: None,
            hash: Context::new(&SHA256),
            started: Instant::now(),
            relative,
            out_carry: Vec::new(),
            in_carry: Vec::new(),
            size: (80, 24),
        };
        let header =
            cast::Header { version: 2, width: 80, height: 24, timestamp: started.timestamp(), title: title.into() };
        let mut line = serde_json::to_vec(&header).map_err(io::Error::other)?;
        line.push(b'\n');
        rec.write(&line)?;
        Ok(rec)
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
        self.event("r", &format!("{cols}x{rows}"))
    }

    /// What the box sent to the engineer's terminal.
    pub fn output(&mut self, data: &[u8]) -> io::Result<()> {
        let text = take_utf8(&mut self.out_carry, data);
        if text.is_empty() { Ok(()) } else { self.event("o", &text) }
    }

    /// What the engineer typed.
    pub fn input(&mut self, data: &[u8]) -> io::Result<()> {
        let text = take_utf8(&mut self.in_carry, data);
        if text.is_empty() { Ok(()) } else { self.event("i", &text) }
    }

    /// A message the gateway wrote to the engineer's terminal.
    pub fn notice(&mut self, text: &str) -> io::Result<()> {
        self.event("o", text)
    }

    /// Flushes to disk and returns the file's name and hash.
    pub fn finish(mut self) -> io::Result<Finished> {
        // After a failed write the file ends at its last complete event; leave it so.
        if self.failed.is_none() {
            for carry in [std::mem::take(&mut self.out_carry), std::mem::take(&mut self.in_carry)] {
                if !carry.is_empty() {
                    self.event("o", &String::from_utf8_lossy(&carry))?;
                }
            }
        }
        self.file.sync_all()?;
        Ok(Finished { relative: self.relative, sha256: hex::encode(self.hash.finish()) })
    }

    fn event(&mut self, code: &str, text: &str) -> io::Result<()> {
        let t = self.started.elapsed().as_secs_f64();
        let mut line = serde_json::to_vec(&(cast::Time(t), code, text)).map_err(io::Error::other)?;
        line.push(b'\n');
        self.write(&line)
    }

    /// Appends one whole line or nothing. A failed write may have left part of the line
    /// (a full disk takes what fits): the file is cut back to the last complete line, and
    /// later writes are refused, so a later success cannot glue text onto a torn line.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(kind) = self.failed {
            return Err(io::Error::new(kind, "the recording failed earlier"));
        }
        if let Err(e) = self.file.write_all(bytes) {
            self.failed = Some(e.kind());
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
    actor: &crate::audit::Actor,
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
    actor: &crate::audit::Actor,
    id: SessionId,
    action: &'static str,
) -> Result<PathBuf, FetchError> {
    let s = store.session(id).await?;
    let rel = s.recording.as_deref().ok_or(FetchError::NoRecording(id))?;
    let path = recordings_dir.join(rel);
    fs::File::open(&path).map_err(|source| FetchError::Read { path: path.clone(), source })?;
    let org = store.get_box(s.box_id).await?.org_id;
    let subjects = crate::audit::Subjects {
        org: Some(org),
        ticket: Some(s.ticket_id),
        box_: Some(s.box_id),
        grant: Some(s.grant_id),
        session: Some(id),
    };
    store
        .append_event(crate::audit::NewEvent::new(actor, action, subjects, serde_json::json!({ "recording": rel })))
        .await?;
    Ok(path)
}

/// The complete UTF-8 text of `carry ‖ data`; an incomplete sequence at the end waits in
/// `carry` for the next chunk, so characters split across SSH packets are kept whole.
fn take_utf8(carry: &mut Vec<u8>, data: &[u8]) -> String {
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
        let started = crate::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let mut rec = Recording::create(dir.path(), SessionId(7), started, "T-1042 S-7").unwrap();
        assert_eq!(rec.relative(), "2026/11/24/S-7.cast");
        rec.resize(120, 40).unwrap();
        rec.resize(0, 0).unwrap();
        rec.input(b"ls\r").unwrap();
        rec.output("файл\r\n".as_bytes()).unwrap();
        let path = dir.path().join("2026/11/24/S-7.cast");
        // Readable before the session ends: a crash keeps what was written.
        let partial = cast::read(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(partial.events.len(), 3);
        let done = rec.finish().unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(done.sha256, hex::encode(ring::digest::digest(&SHA256, &bytes)));
        let cast = cast::read(&bytes).unwrap();
        assert_eq!(cast.header.title, "T-1042 S-7");
        let kinds: Vec<_> = cast.events.iter().map(|e| (e.code.as_str(), e.data.as_str())).collect();
        assert_eq!(kinds, [("r", "120x40"), ("i", "ls\r"), ("o", "файл\r\n")]);
        assert!(Recording::create(dir.path(), SessionId(7), started, "again").is_err(), "never overwrites");
    }

    #[test]
    fn a_full_disk_ends_the_recording_at_its_last_complete_event() {
        let dir = tempfile::tempdir().unwrap();
        let started = crate::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let mut rec = Recording::create(dir.path(), SessionId(8), started, "T-1042 S-8").unwrap();
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
