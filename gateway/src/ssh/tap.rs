//! What one channel contributes to the session's record: a terminal's bytes go into the
//! recording; so does the content of a channel without a terminal (a command, `ssh -T`,
//! rsync), up to `[recording] channel_cap`, its stdout and stderr as output and its stdin
//! as input. Its command, byte counts, SHA-256 of each stream and exit status become
//! session events. scp and sftp channels are recorded as their file operations (path,
//! size, SHA-256 of each file) instead of their streams. Shared by the channel's two pumps.

use std::io;
use std::sync::{Arc, Mutex};

use ring::digest::{Context, SHA256};
use serde_json::{Value, json};

use crate::live::LiveSession;
use crate::recording::transfer::{FileOp, ScpMode, ScpTracker, SftpTracker};
use crate::recording::{Recording, take_utf8};
use crate::sync::lock;
use iks_domain::model::SessionEvent;

/// A file-transfer protocol recognised on the channel.
enum Transfer {
    Sftp(SftpTracker),
    Scp(ScpTracker),
}

/// What the channel runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Shell,
    Exec(String),
    Subsystem(String),
}

/// Byte count and, unless the channel's files are hashed one by one, SHA-256 of one stream.
struct Stream {
    bytes: u64,
    hash: Option<Context>,
}

impl Stream {
    fn new(hashed: bool) -> Self {
        Self { bytes: 0, hash: hashed.then(|| Context::new(&SHA256)) }
    }

    fn add(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(h) = &mut self.hash {
            h.update(data);
        }
    }

    fn summary(&self) -> Value {
        match &self.hash {
            Some(h) => json!({ "bytes": self.bytes, "sha256": hex::encode(h.clone().finish()) }),
            None => json!({ "bytes": self.bytes }),
        }
    }
}

/// The recorded content of a channel without a terminal: how much went in, and each
/// stream's incomplete UTF-8 tail and whether it last wrote a carriage return.
#[derive(Default)]
struct Content {
    recorded: u64,
    capped: bool,
    carry: [Vec<u8>; 3],
    after_cr: [bool; 3],
}

/// The streams of a channel, as `Content` indexes them.
#[derive(Clone, Copy)]
enum Which {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

/// `text` as a terminal would show it: a newline not after a carriage return gets one
/// (the output post-processing a PTY would have applied).
fn terminal_newlines(text: &str, after_cr: &mut bool) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for c in text.chars() {
        if c == '\n' && !*after_cr {
            out.push('\r');
        }
        *after_cr = c == '\r';
        out.push(c);
    }
    out
}

struct State {
    /// `None` for a terminal (recorded whole) and for scp/sftp (recorded as files).
    content: Option<Content>,
    stdin: Stream,
    stdout: Stream,
    stderr: Stream,
    exit: Option<Value>,
    pending: Vec<SessionEvent>,
    transfer: Option<Transfer>,
}

/// Benchmarks only: the `bench-hooks` feature, which only `iks-bench` enables, lets the
/// bench's own gateway process turn every tap into a sink, to measure what recording costs.
/// No configuration key, environment variable or command-line flag reaches it, so the
/// product never runs unrecorded even when cargo's feature unification compiles it in.
#[cfg(feature = "bench-hooks")]
pub mod bench {
    use std::sync::atomic::{AtomicBool, Ordering};

    static UNRECORDED: AtomicBool = AtomicBool::new(false);

    /// From now on nothing in this process is hashed, parsed or written to a recording.
    pub fn record_nothing() {
        UNRECORDED.store(true, Ordering::Relaxed);
    }

    pub(super) fn unrecorded() -> bool {
        UNRECORDED.load(Ordering::Relaxed)
    }
}

#[cfg(not(feature = "bench-hooks"))]
mod bench {
    pub(super) const fn unrecorded() -> bool {
        false
    }
}

pub struct Tap {
    live: Arc<LiveSession>,
    channel: i64,
    terminal: bool,
    kind: Kind,
    env: Vec<(String, String)>,
    pty: Option<(u32, u32)>,
    state: Mutex<State>,
}

impl Tap {
    pub fn new(
        live: Arc<LiveSession>,
        channel: i64,
        pty: Option<(u32, u32)>,
        kind: &Kind,
        env: Vec<(String, String)>,
    ) -> Self {
        // File transfers are hashed file by file; hashing their whole streams again would
        // only double the CPU spent per byte moved.
        let transfer = match kind {
            Kind::Subsystem(name) if name == "sftp" => Some(Transfer::Sftp(SftpTracker::new())),
            Kind::Exec(command) => ScpTracker::for_command(command).map(Transfer::Scp),
            Kind::Shell | Kind::Subsystem(_) => None,
        };
        let terminal = pty.is_some();
        Self {
            live,
            channel,
            terminal,
            kind: kind.clone(),
            env,
            pty,
            state: Mutex::new(State {
                content: (!terminal && transfer.is_none()).then(Content::default),
                // A terminal's keystrokes are not hashed: a password typed at a prompt that
                // does not echo would be in the hash (see `echo`).
                stdin: Stream::new(transfer.is_none() && !terminal),
                stdout: Stream::new(transfer.is_none()),
                stderr: Stream::new(true),
                exit: None,
                pending: Vec::new(),
                transfer,
            }),
        }
    }

    fn event(&self, kind: &str, details: Value) -> SessionEvent {
        SessionEvent {
            session_id: self.live.id,
            at: iks_domain::time::now(),
            channel: Some(self.channel),
            kind: kind.into(),
            details,
        }
    }

    fn record(&self, f: impl FnOnce(&mut Recording) -> io::Result<()>) -> io::Result<()> {
        match lock(&self.live.recording).as_mut() {
            Some(rec) => f(rec),
            None => Ok(()),
        }
    }

    /// The channel started: what it runs; a terminal's size goes into the recording.
    pub fn started(&self) -> Vec<SessionEvent> {
        if let Some((cols, rows)) = self.pty {
            // A recording that cannot take the size fails on the first output too.
            let _ = self.record(|r| r.resize(cols, rows));
        } else if lock(&self.state).content.is_some() {
            // Where this channel's content starts, for whoever replays the session.
            let what = match &self.kind {
                Kind::Shell => "a shell".to_string(),
                Kind::Exec(command) => format!("`{command}`"),
                Kind::Subsystem(name) => format!("subsystem {name}"),
            };
            let line = format!("[iks-gateway] channel {}: {what} without a terminal\r\n", self.channel);
            let _ = self.record(|r| r.plain("o", &line));
        }
        let env: serde_json::Map<String, Value> = self.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let details = match &self.kind {
            Kind::Shell => json!({ "pty": self.pty.map(|(c, r)| format!("{c}x{r}")), "env": env }),
            Kind::Exec(command) => json!({ "command": command, "pty": self.terminal, "env": env }),
            Kind::Subsystem(name) => json!({ "subsystem": name }),
        };
        let kind = match &self.kind {
            Kind::Shell => "shell",
            Kind::Exec(_) => "exec",
            Kind::Subsystem(_) => "subsystem",
        };
        vec![self.event(kind, details)]
    }

    /// File operations as session events (`sftp.upload`, `scp.download`, …).
    fn file_events(&self, st: &mut State, ops: Vec<FileOp>) {
        let protocol = match st.transfer {
            Some(Transfer::Sftp(_)) => "sftp",
            Some(Transfer::Scp(_)) | None => "scp",
        };
        for op in ops {
            let details = serde_json::to_value(&op).unwrap_or(Value::Null);
            let name = details.get("op").and_then(Value::as_str).unwrap_or("op").to_string();
            st.pending.push(self.event(&format!("{protocol}.{name}"), details));
        }
    }

    pub fn input(&self, data: &[u8]) -> io::Result<()> {
        if bench::unrecorded() {
            return Ok(());
        }
        let mut st = lock(&self.state);
        st.stdin.add(data);
        let ops = match &mut st.transfer {
            Some(Transfer::Sftp(t)) => t.client_bytes(data),
            Some(Transfer::Scp(t)) if t.mode() == ScpMode::Sink => t.sender_bytes(data),
            _ => Vec::new(),
        };
        self.file_events(&mut st, ops);
        drop(st);
        if self.terminal { self.record(|r| r.input(data)) } else { self.content(Which::Stdin, data) }
    }

    pub fn output(&self, data: &[u8]) -> io::Result<()> {
        if bench::unrecorded() {
            return Ok(());
        }
        let mut st = lock(&self.state);
        st.stdout.add(data);
        let ops = match &mut st.transfer {
            Some(Transfer::Sftp(t)) => t.server_bytes(data),
            Some(Transfer::Scp(t)) if t.mode() == ScpMode::Source => t.sender_bytes(data),
            _ => Vec::new(),
        };
        self.file_events(&mut st, ops);
        drop(st);
        if self.terminal { self.record(|r| r.output(data)) } else { self.content(Which::Stdout, data) }
    }

    pub fn stderr(&self, data: &[u8]) -> io::Result<()> {
        if bench::unrecorded() {
            return Ok(());
        }
        lock(&self.state).stderr.add(data);
        if self.terminal { self.record(|r| r.output(data)) } else { self.content(Which::Stderr, data) }
    }

    /// Records a chunk of a channel without a terminal, up to the channel's cap; the chunk
    /// that reaches the cap is cut, and the record says so.
    fn content(&self, which: Which, data: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.state);
        let Some(c) = st.content.as_mut().filter(|c| !c.capped) else { return Ok(()) };
        let cap = lock(&self.live.recording).as_ref().map_or(0, |r| r.limits().channel_cap);
        let room = usize::try_from(cap.saturating_sub(c.recorded)).unwrap_or(usize::MAX);
        let taken = &data[..data.len().min(room)];
        c.recorded += taken.len() as u64;
        c.capped = taken.len() < data.len();
        let i = which as usize;
        let text = take_utf8(&mut c.carry[i], taken);
        let (code, text) = match which {
            Which::Stdin => ("i", text),
            Which::Stdout | Which::Stderr => ("o", terminal_newlines(&text, &mut c.after_cr[i])),
        };
        let capped = c.capped;
        drop(st);
        self.record(|r| r.plain(code, &text))?;
        if capped {
            tracing::info!(session.id = %self.live.id, channel = self.channel, cap, "channel content cap reached");
            let line = format!(
                "\r\n[iks-gateway] channel {}: its content is recorded up to {} KiB ([recording] channel_cap); \
                 the rest is counted and hashed in the session's events\r\n",
                self.channel,
                cap >> 10
            );
            self.record(|r| r.plain("o", &line))?;
        }
        Ok(())
    }

    pub fn resize(&self, cols: u32, rows: u32) -> io::Result<()> {
        if self.terminal { self.record(|r| r.resize(cols, rows)) } else { Ok(()) }
    }

    pub fn exit_status(&self, status: u32) {
        lock(&self.state).exit = Some(json!({ "status": status }));
    }

    pub fn exit_signal(&self, signal: &str) {
        lock(&self.state).exit = Some(json!({ "signal": signal }));
    }

    /// Events completed so far (file transfers), to store now.
    pub fn drain(&self) -> Vec<SessionEvent> {
        std::mem::take(&mut lock(&self.state).pending)
    }

    /// The channel closed: its totals and exit.
    pub fn finished(&self) -> Vec<SessionEvent> {
        let mut st = lock(&self.state);
        let ops = match &mut st.transfer {
            Some(Transfer::Sftp(t)) => t.finish(),
            Some(Transfer::Scp(t)) => t.finish(),
            None => Vec::new(),
        };
        self.file_events(&mut st, ops);
        let mut events = std::mem::take(&mut st.pending);
        let mut details = json!({
            "exit": st.exit.clone(),
            "stdin": st.stdin.summary(),
            "stdout": st.stdout.summary(),
            "stderr": st.stderr.summary(),
        });
        if let Some(c) = &st.content {
            details["recorded"] = json!({ "bytes": c.recorded, "capped": c.capped });
        }
        drop(st);
        events.push(self.event("close", details));
        events
    }
}
