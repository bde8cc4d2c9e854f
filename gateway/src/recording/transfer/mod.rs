//! File-transfer recording: pure stream parsers that turn the raw bytes of an SSH channel into [`FileOp`] events.
//!
//! The gateway relays a channel's bytes in whatever chunks the transport hands it; the trackers here are fed
//! those chunks, one call per chunk and direction, and return the file operations that the chunk completed.
//! They do no I/O and never block, so the caller decides where events go.
//!
//! Design decisions shared by both parsers:
//! - **Never keep file contents.** Payload bytes (SFTP `WRITE`/`DATA`, scp file bodies) are streamed into a
//!   SHA-256 context as they pass and then dropped. Only protocol headers are buffered, each with a hard cap, so
//!   memory stays bounded whatever the peer sends; the input is untrusted and will be fuzzed.
//! - **No panics on any input.** No unwrap, no indexing, checked arithmetic; the crate's clippy lints
//!   (`indexing_slicing`, `unwrap_used`, `arithmetic_side_effects`, …) enforce it outside tests.
//! - **Give up rather than guess.** When the framing does not look like the protocol, a tracker stops parsing
//!   for good (it reports what it had as incomplete) instead of resynchronising on attacker-chosen bytes.
//! - **Paths are data, not markup.** They are decoded as lossy UTF-8 and capped at [`MAX_PATH_CHARS`]; nothing
//!   else is escaped because the consumer JSON-encodes the events.
//!
//! [`sftp`] handles the SFTP v3 subsystem (OpenSSH `sftp`, and `scp` in OpenSSH ≥ 9); [`scp`] handles the
//! legacy rcp-style protocol spoken by `scp -O` over an exec channel.
//!
//! This directory uses only `super::` paths so it can be moved into another crate unchanged.

// The parsers read untrusted bytes: "no panic on any input" stays a checked property here.
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod scp;
pub mod sftp;

pub use scp::{ScpMode, ScpTracker, detect_scp};
pub use sftp::SftpTracker;

/// One file operation seen on a channel, ready to be stored as JSON (`{"op": "upload", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FileOp {
    /// A file written by the engineer (upload), complete when the handle closed / the scp file ended.
    ///
    /// `sha256` (lower-case hex) covers exactly the `bytes` counted; it is `None` when the writes were not
    /// sequential from offset 0 (resumed or out-of-order transfers) or the data was changed by a means the
    /// gateway cannot see.
    Upload {
        path: String,
        bytes: u64,
        sha256: Option<String>,
        complete: bool,
    },
    /// A file read by the engineer (download); same meaning of the fields as for [`FileOp::Upload`].
    Download {
        path: String,
        bytes: u64,
        sha256: Option<String>,
        complete: bool,
    },
    Remove {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    /// chmod/chown/utime via SETSTAT/FSETSTAT (the handle's path for FSETSTAT).
    Setstat {
        path: String,
    },
    Symlink {
        link: String,
        target: String,
    },
    /// Listing a directory (OPENDIR); one event per OPENDIR, not per READDIR.
    List {
        path: String,
    },
    /// An operation the server refused: which op, which path, and the SFTP status code/message.
    ///
    /// `op` is serialized as `"request"` because `"op"` is already the enum's tag: serde refuses a field that
    /// collides with an internal tag, and a JSON object with two `"op"` keys would be ambiguous anyway.
    Failed {
        #[serde(rename = "request")]
        op: String,
        path: String,
        status: u32,
        message: String,
    },
}

/// Longest path (in chars) put into an event; longer ones keep their first `MAX_PATH_CHARS - 1` chars and end
/// with `…`. Real paths are far shorter (PATH_MAX is 4096 bytes); the cap only bounds hostile input.
pub const MAX_PATH_CHARS: usize = 4096;

/// Decodes a path from the wire: lossy UTF-8, capped.
fn path_from_bytes(raw: &[u8]) -> String {
    // Cut the raw bytes first: a path longer than this many bytes has more than MAX_PATH_CHARS chars only if it
    // is mostly ASCII, and decoding a bounded prefix keeps the work bounded too. A cut inside a UTF-8 sequence
    // becomes U+FFFD, which is fine for a path that gets an ellipsis anyway.
    let limit = MAX_PATH_CHARS.saturating_mul(4);
    let (head, cut) = match raw.get(..limit) {
        Some(head) if raw.len() > limit => (head, true),
        _ => (raw, false),
    };
    let text = String::from_utf8_lossy(head).into_owned();
    let capped = cap_chars(text);
    if cut && !capped.ends_with('…') { add_ellipsis(capped) } else { capped }
}

/// Caps an already decoded path at [`MAX_PATH_CHARS`] chars.
fn cap_chars(text: String) -> String {
    match text.char_indices().nth(MAX_PATH_CHARS) {
        None => text,
        Some(_) => add_ellipsis(text),
    }
}

/// Keeps the first `MAX_PATH_CHARS - 1` chars and appends `…`.
fn add_ellipsis(text: String) -> String {
    let keep = MAX_PATH_CHARS.saturating_sub(1);
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

/// Finishes a SHA-256 context into lower-case hex.
fn hex_digest(ctx: ring::digest::Context) -> String {
    hex::encode(ctx.finish().as_ref())
}

/// Splits off at most `max` bytes from the front of `input`.
fn take<'a>(input: &mut &'a [u8], max: u64) -> &'a [u8] {
    let n = usize::try_from(max).unwrap_or(usize::MAX).min(input.len());
    let (head, tail) = input.split_at_checked(n).unwrap_or((input, &[]));
    *input = tail;
    head
}

/// Length of a slice as u64 (lossless on every platform Rust supports).
fn len64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn path_cap_and_lossy_decoding() {
        assert_eq!(path_from_bytes(b"/tmp/a b"), "/tmp/a b");
        assert_eq!(path_from_bytes(b"/tmp/\xff"), "/tmp/\u{fffd}");
        let long = vec![b'a'; 5000];
        let p = path_from_bytes(&long);
        assert_eq!(p.chars().count(), MAX_PATH_CHARS);
        assert!(p.ends_with('…'));
        let exact = vec![b'a'; MAX_PATH_CHARS];
        assert_eq!(path_from_bytes(&exact).len(), MAX_PATH_CHARS);
        // Multi-byte chars: 20000 bytes of 'é' (2 bytes each) are cut to a bounded prefix and capped.
        let wide = "é".repeat(10_000);
        let p = path_from_bytes(wide.as_bytes());
        assert_eq!(p.chars().count(), MAX_PATH_CHARS);
        assert!(p.ends_with('…'));
    }

    #[test]
    fn failed_serializes_request_field() {
        let op = FileOp::Failed { op: "open".into(), path: "/x".into(), status: 3, message: "denied".into() };
        let json = serde_json::to_value(&op).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"op": "failed", "request": "open", "path": "/x", "status": 3, "message": "denied"})
        );
        let up = FileOp::Upload { path: "/y".into(), bytes: 1, sha256: None, complete: true };
        assert_eq!(
            serde_json::to_value(&up).unwrap(),
            serde_json::json!({"op": "upload", "path": "/y", "bytes": 1, "sha256": null, "complete": true})
        );
    }
}
