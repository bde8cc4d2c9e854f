//! Search across session transcripts ("who ran `iptables -F` last month"), each hit
//! pointing at its moment in the recording.
//!
//! When a session ends, its recording is turned into lines once and stored
//! ([`crate::store::TranscriptLine`]); a search is then a query, not a scan of files.
//! Two kinds of line are kept, because neither alone finds everything:
//! - *output*: each screen line completed by a newline, as the terminal showed it — so a
//!   command completed with Tab, or recalled from history, is found as it ran;
//! - *input*: each typed line after basic line editing (backspace, ^U, ^W; ^C discards),
//!   kept only if the screen line completed next shows it (the shell echoed it), so a
//!   password typed at a prompt that does not echo is never made searchable.
//!
//! Full-screen programs (the alternate screen: editors, `top`) redraw rather than print
//! lines, so their screens are not indexed. Sessions without an index (ended before this
//! existed, or whose indexing failed) are indexed when a search runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::recording::cast::{self, CastError};
use crate::recording::keys::LineEditor;
use crate::recording::screen::{clamp, parse_size};
use crate::state::Gateway;
use crate::store::{Store, StoreError, TranscriptHit, TranscriptLine, TranscriptQuery};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::SessionId;

/// Lines indexed per session at most; the rest of a longer session is not searchable.
const MAX_LINES: usize = 200_000;
/// Sessions without an index that one search indexes first.
const REINDEX_PER_SEARCH: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("type something to search for")]
    EmptyQuery,
    #[error("cannot index the recording of {session}: {source}")]
    Recording { session: SessionId, source: CastError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lines of a recording worth finding, read as a stream.
pub fn transcript_lines(source: impl std::io::Read) -> Result<Vec<TranscriptLine>, CastError> {
    let mut reader = cast::Reader::new(source);
    let header = reader.header()?.clone();
    let mut parser = vt100::Parser::new(clamp(header.height), clamp(header.width), 0);
    let mut editor = LineEditor::default();
    let mut lines = Vec::new();
    // Typed lines waiting for the screen line they were echoed on to complete.
    let mut typed: Vec<(f64, String)> = Vec::new();
    let ms = |t: f64| (t * 1000.0).round() as i64;
    for e in reader {
        let e = e?;
        if lines.len() >= MAX_LINES {
            break;
        }
        match e.code.as_str() {
            "o" => {
                for piece in e.data.split_inclusive('\n') {
                    let (body, newline) = piece.strip_suffix('\n').map_or((piece, false), |b| (b, true));
                    parser.process(body.as_bytes());
                    if newline {
                        let screen = parser.screen();
                        let text = cursor_line(screen);
                        // A typed line is found at the moment its echo completed (Enter was
                        // pressed and shown), so a replay opened there shows the command.
                        for (_, t) in typed.drain(..) {
                            if text.contains(&t) {
                                lines.push(TranscriptLine { offset_ms: ms(e.time), input: true, text: t });
                            }
                        }
                        if !screen.alternate_screen() && !text.is_empty() {
                            lines.push(TranscriptLine { offset_ms: ms(e.time), input: false, text });
                        }
                        parser.process(b"\n");
                    }
                }
            }
            "r" => {
                if let Some((cols, rows)) = parse_size(&e.data) {
                    parser.screen_mut().set_size(clamp(rows), clamp(cols));
                }
            }
            "i" => typed.extend(editor.feed(e.time, &e.data)),
            _ => {}
        }
    }
    Ok(lines)
}

/// The text of the line the cursor is on, with the rows it wrapped from, trimmed.
fn cursor_line(s: &vt100::Screen) -> String {
    let (row, _) = s.cursor_position();
    let cols = s.size().1.get();
    let mut first = row;
    while first > 0 && s.row_wrapped(first - 1) {
        first -= 1;
    }
    s.contents_between(first, 0, row, cols).trim().to_string()
}

/// Indexes one ended session's recording (again, if it was already).
pub async fn index_session(store: &Store, recordings_dir: &Path, id: SessionId) -> Result<usize, SearchError> {
    let s = store.session(id).await?;
    let Some(rel) = s.recording else { return Ok(0) };
    let path: PathBuf = recordings_dir.join(rel);
    let lines = tokio::task::spawn_blocking(move || transcript_lines(std::fs::File::open(path)?))
        .await
        .unwrap_or_else(|e| Err(CastError::Io(std::io::Error::other(e))))
        .map_err(|source| SearchError::Recording { session: id, source })?;
    store.save_transcript(id, &lines).await?;
    Ok(lines.len())
}

/// Hands a session that just ended to the node's indexing job: the session's end is not
/// held up, and a session left unindexed (the job failed, or the node stopped first) is
/// indexed by a later search.
pub fn index_later(app: &Arc<Gateway>, id: SessionId) {
    if app.to_index.send(id).is_err() {
        tracing::debug!(session.id = %id, "no indexing job runs; the transcript waits for a search");
    }
}

/// Indexes up to `max` ended sessions that have no index yet; returns how many were.
pub async fn reindex_missing(store: &Store, recordings_dir: &Path, max: u32) -> Result<usize, SearchError> {
    let missing = store.unindexed_sessions(max).await?;
    for &id in &missing {
        if let Err(e) = index_session(store, recordings_dir, id).await {
            // An unreadable recording must not block searching the others: index it as
            // empty, so it is not retried on every search, and say so.
            tracing::warn!(session.id = %id, error = %e, "cannot index the transcript; indexed as empty");
            store.save_transcript(id, &[]).await?;
        }
    }
    Ok(missing.len())
}

/// Searches the transcripts for `actor` (who must already be allowed to see the sessions
/// the filters cover: the caller narrows `q.org` for a customer). The search is audited.
pub async fn search(
    store: &Store,
    recordings_dir: &Path,
    actor: &Actor,
    q: &TranscriptQuery,
) -> Result<Vec<TranscriptHit>, SearchError> {
    if q.text.trim().is_empty() {
        return Err(SearchError::EmptyQuery);
    }
    reindex_missing(store, recordings_dir, REINDEX_PER_SEARCH).await?;
    let hits = store.search_transcripts(q).await?;
    let details = serde_json::json!({
        "text": q.text, "engineer": q.engineer, "box": q.box_id, "from": q.from, "to": q.to, "hits": hits.len(),
    });
    let subjects = Subjects { org: q.org, ticket: q.ticket, ..Default::default() };
    store.append_event(NewEvent::new(actor, "session.search", subjects, details)).await?;
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(events: &[(f64, &str, &str)]) -> Vec<(i64, bool, String)> {
        let mut f = b"{\"version\":2,\"width\":20,\"height\":5,\"timestamp\":1}\n".to_vec();
        for e in events {
            f.extend(serde_json::to_vec(e).unwrap());
            f.push(b'\n');
        }
        transcript_lines(&f[..]).unwrap().into_iter().map(|l| (l.offset_ms, l.input, l.text)).collect()
    }

    #[test]
    fn typed_and_shown_lines_are_kept_passwords_are_not() {
        let got = lines(&[
            (0.0, "o", "$ "),
            (1.0, "i", "ipt"),
            (1.1, "o", "ipt"),
            (1.5, "i", "\t"),
            (1.6, "o", "ables "),
            (2.0, "i", "-F"),
            (2.1, "o", "-F"),
            (2.5, "i", "\r"),
            (2.6, "o", "\r\n$ "),
            (3.0, "i", "sudo ls\r"),
            (3.1, "o", "sudo ls\r\n[sudo] password: "),
            (4.0, "i", "hunter2\r"),
            (4.1, "o", "\r\n\x1b[?1049hvim\r\nscreen\r\n\x1b[?1049l$ echo a very long line that wraps\r\n"),
        ]);
        assert_eq!(
            got,
            [
                // Tab completion: the typed line is not what ran, so only the screen has it.
                (2600, false, "$ iptables -F".into()),
                (3100, true, "sudo ls".into()),
                (3100, false, "$ sudo ls".into()),
                (4100, false, "[sudo] password:".into()),
                (4100, false, "$ echo a very long line that wraps".into()),
            ]
        );
        let echoed =
            lines(&[(0.0, "o", "$ "), (1.0, "i", "i"), (1.0, "o", "i"), (1.2, "i", "d\r"), (1.2, "o", "d\r\n")]);
        assert_eq!(
            echoed,
            [(1200, true, "id".to_string()), (1200, false, "$ id".to_string())],
            "the typed line is found when its echo completed, not at its first key"
        );
    }

    #[test]
    fn a_channel_without_a_terminal_is_found_by_its_output() {
        // As the tap records `printf 'id; echo MARK\n' | ssh -T`: no echo, so the stdin line
        // is not an input line, but what the commands printed is found.
        let got = lines(&[
            (0.0, "o", "[iks-gateway] channel 0: a shell without a terminal\r\n"),
            (0.1, "i", "id -u; echo MARK-42\n"),
            (0.2, "o", "0\r\nMARK-42\r\n"),
        ]);
        assert!(got.contains(&(200, false, "MARK-42".to_string())), "{got:?}");
        assert!(got.iter().all(|l| !l.1), "{got:?}");
    }
}
