//! The live view: a running session's recording tailed as it grows and rendered with the
//! same [`Screen`] as replay, sent to the panel as server-sent events.
//!
//! The recording is the only source (no hook into the SSH bridge): it is written event by
//! event without buffering, so tailing it shows what the engineer saw a tick later, from
//! any node that can read the recordings directory, and never slows the session down.
//! The client first gets a keyframe of the screen as it is now (the file is read from the
//! start to get there), then at most one frame per tick while the file grows, then `end`
//! once the session is over and the file has been read to its end.
//!
//! Bounded: a channel of a few frames between the tailing task and the HTTP response,
//! so a slow client slows its own tail (frames coalesce) instead of queueing without
//! limit; the task stops as soon as the client goes away.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use super::cast::{CastError, Decoder};
use super::screen::{Frame, Screen};

/// At most this many frames a second reach a live viewer.
pub const LIVE_INTERVAL: Duration = Duration::from_millis(100);
/// How often, at most, the caller's "is it over?" check runs while the file is idle.
const ENDED_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Bytes read and rendered per step; a larger backlog (catching up with a long session)
/// is read in several, each rendered off the async runtime.
const STEP: usize = 1 << 20;
/// Rendering less than this stays on the runtime: a tick's worth of typing is microseconds.
const INLINE: usize = 64 * 1024;

/// What the live view sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Frame(Frame),
    /// The session is over and every frame was sent.
    End,
}

/// The recording parsed so far and the screen it produced.
struct Tail {
    decoder: Decoder,
    screen: Option<Screen>,
    time: f64,
}

impl Tail {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CastError> {
        self.decoder.feed(bytes);
        if self.screen.is_none() {
            let Some(h) = self.decoder.header()? else { return Ok(()) };
            self.screen = Some(Screen::new(h.width, h.height));
        }
        while let Some(e) = self.decoder.next_event()? {
            self.time = e.time;
            if let Some(s) = self.screen.as_mut() {
                s.apply(&e);
            }
        }
        Ok(())
    }
}

/// Tails the recording at `path` until `ended()` says the session is over (checked only
/// while the file is idle) and the file is read to its end. Each received item is the
/// next update; an error ends the stream.
pub fn tail<F, Fut>(path: PathBuf, mut ended: F) -> mpsc::Receiver<Result<Update, CastError>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut tail = Tail { decoder: Decoder::default(), screen: None, time: 0.0 };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        let mut tick = tokio::time::interval(LIVE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut sent_key, mut last_check, mut ending) = (false, None::<tokio::time::Instant>, false);
        let mut buf = vec![0u8; STEP];
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = tx.closed() => return,
            }
            // Read what was appended: all of it, a step at a time, before the first keyframe.
            let at_end = loop {
                let n = match read_step(&mut file, &mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let result = if n < INLINE {
                    tail.feed(&buf[..n])
                } else {
                    let chunk = std::mem::take(&mut buf);
                    let mut moved =
                        std::mem::replace(&mut tail, Tail { decoder: Decoder::default(), screen: None, time: 0.0 });
                    let (back, chunk, r) = match tokio::task::spawn_blocking(move || {
                        let r = moved.feed(&chunk[..n]);
                        (moved, chunk, r)
                    })
                    .await
                    {
                        Ok(done) => done,
                        Err(_) => return, // the runtime is shutting down
                    };
                    (tail, buf) = (back, chunk);
                    r
                };
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                if n < buf.len() {
                    break true;
                }
                if sent_key {
                    break false;
                }
            };
            if let Some(screen) = tail.screen.as_mut() {
                let frame = if sent_key { screen.frame(tail.time) } else { Some(screen.keyframe(tail.time)) };
                if let Some(f) = frame {
                    sent_key = true;
                    if tx.send(Ok(Update::Frame(f))).await.is_err() {
                        return;
                    }
                }
            }
            if ending {
                let _ = tx.send(Ok(Update::End)).await;
                return;
            }
            // Only while idle: the session's end is checked, and after it one more read
            // picks up whatever was written between the last read and the check.
            if at_end && last_check.is_none_or(|t| t.elapsed() >= ENDED_CHECK_EVERY) {
                last_check = Some(tokio::time::Instant::now());
                ending = ended().await;
            }
        }
    });
    rx
}

async fn read_step(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The live view of the recording at `path` as an SSE response: `frame` events (a JSON
/// [`Frame`]), then `end`, or `failed` with a message if the recording cannot be read
/// (each with some data: browsers drop an event whose data is empty).
/// `ended` answers whether the session is over (e.g. the live registry no longer holds it).
pub fn live_stream<F, Fut>(path: PathBuf, ended: F) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    use tokio_stream::StreamExt;
    let events = ReceiverStream::new(tail(path, ended)).map(|u| {
        Ok(match u {
            Ok(Update::Frame(f)) => SseEvent::default().event("frame").json_data(&f).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot serialise a frame");
                SseEvent::default().event("failed").data("internal error")
            }),
            Ok(Update::End) => SseEvent::default().event("end").data("the session is over"),
            Err(e) => {
                tracing::warn!(error = %e, "live view stopped");
                SseEvent::default().event("failed").data("the recording cannot be read")
            }
        })
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::recording::{Limits, Recording};
    use iks_domain::ids::SessionId;

    async fn next(rx: &mut mpsc::Receiver<Result<Update, CastError>>) -> Update {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an update within 10 s").unwrap().unwrap()
    }

    fn text(f: &Frame) -> String {
        f.lines.iter().map(|l| l.1.as_str()).collect::<Vec<_>>().join("|")
    }

    #[tokio::test]
    async fn a_growing_recording_is_followed_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let started = iks_domain::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let mut rec = Recording::create(dir.path(), SessionId(3), started, "live", Limits::default()).unwrap();
        rec.resize(20, 3).unwrap();
        rec.output(b"before\r\n").unwrap();
        let over = Arc::new(AtomicBool::new(false));
        let flag = over.clone();
        let mut rx = tail(dir.path().join(rec.relative()), move || {
            let v = flag.load(Ordering::SeqCst);
            async move { v }
        });
        // A viewer arriving late sees the screen as it is, in one keyframe.
        let Update::Frame(key) = next(&mut rx).await else { panic!("a keyframe first") };
        assert!(key.key);
        assert_eq!((key.cols, key.rows), (20, 3));
        assert!(text(&key).starts_with("before|"), "{key:?}");
        // Then what is written after, as changed rows only.
        rec.output(b"$ ls").unwrap();
        let Update::Frame(f) = next(&mut rx).await else { panic!("a frame") };
        assert!(!f.key);
        assert_eq!(f.lines, [(1, "$ ls<span class=\"cu\"> </span>".to_string())]);
        // The session ends: the last output still arrives, then the end.
        rec.output(b"\r\nfile").unwrap();
        rec.finish().unwrap();
        over.store(true, Ordering::SeqCst);
        let mut frames = Vec::new();
        let end = loop {
            match next(&mut rx).await {
                Update::Frame(f) => frames.push(f),
                Update::End => break true,
            }
        };
        assert!(end);
        assert!(frames.iter().any(|f| f.lines.iter().any(|l| l.1.starts_with("file"))), "{frames:?}");
        assert!(rx.recv().await.is_none(), "the stream stops after the end");
    }

    #[tokio::test]
    async fn the_sse_response_carries_frames_then_the_end() {
        use axum::response::IntoResponse;
        let dir = tempfile::tempdir().unwrap();
        let started = iks_domain::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let mut rec = Recording::create(dir.path(), SessionId(4), started, "over", Limits::default()).unwrap();
        rec.output(b"bye & <done>").unwrap();
        let path = dir.path().join(rec.relative());
        rec.finish().unwrap();
        let response = live_stream(path, || async { true }).into_response();
        let body = tokio::time::timeout(Duration::from_secs(10), axum::body::to_bytes(response.into_body(), 1 << 20))
            .await
            .expect("the stream ends")
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.starts_with("event: frame\ndata: {\"t\":0."), "{body}");
        assert!(body.contains("bye &amp; &lt;done&gt;"), "{body}");
        // A browser drops an event without data, so the end must carry some.
        assert!(body.ends_with("event: end\ndata: the session is over\n\n"), "{body}");
    }

    #[tokio::test]
    async fn a_missing_recording_is_an_error() {
        let mut rx = tail(PathBuf::from("/nonexistent/x.cast"), || async { false });
        assert!(matches!(rx.recv().await, Some(Err(CastError::Io(_)))));
    }
}
