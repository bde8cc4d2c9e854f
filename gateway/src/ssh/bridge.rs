//! Bridging one of the engineer's channels to a channel on the box: the plumbing under a
//! session's channels (the engineer's connection decides what runs on them).
//!
//! Setup is sequential: collect the channel's PTY and environment requests until the
//! shell/exec/subsystem request ([`collect`]), establish the session (the one access
//! decision per connection), replay what the gateway allows upstream ([`replay`],
//! [`super::policy`]: nothing the front refused) and wait for the box's answers. Then two
//! pumps run, one per direction:
//! - engineer → box: keystrokes and stdin, window changes, signals, EOF;
//! - box → engineer: output, stderr, exit status or signal, EOF, close.
//!
//! **Why an inbox per channel.** russh's connection loop hands each incoming message to
//! the channel's queue and waits while that queue is full, so a channel nobody reads
//! stalls its whole connection: window adjusts included. With two legs that is a
//! deadlock: the engineer → box pump waits for the box's window while the box leg's loop
//! waits to hand over output that the box → engineer pump cannot send until the engineer's
//! window adjust is read by the front loop, which waits on the first pump's queue. Many
//! small pipelined SFTP requests hit it in most runs. So every channel's messages are taken
//! off russh's queue as they arrive ([`Inbox`]) into a queue bounded by bytes, shared per
//! connection ([`INBOX_BUDGET`]): the loops keep reading (and adjusting windows) while a
//! pump waits, and only a peer that stops reading for megabytes makes its own leg wait.
//!
//! Every pump also stops when the session ends ([`Ending::ending`]), whatever it waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::server::{Handle, Msg as ServerMsg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::warn;

use super::established::{Established, Events};
use super::policy;
use super::session::{ChannelRefusal, Ending, Lines, Start};
use super::tap::Tap;
use crate::config::SshConfig;

/// How many bytes of channel data one connection may hold between russh and the pumps.
pub const INBOX_BUDGET: usize = 16 << 20;

/// A connection's budget of [`INBOX_BUDGET`] bytes, shared by its channels' inboxes.
pub fn budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(INBOX_BUDGET))
}

/// What a message costs from the budget beyond its data: a flood of empty messages
/// (window changes, EOFs) is bounded too.
const MESSAGE_COST: usize = 256;

/// A request collected before the start request, replayed on the box's channel.
pub enum Setup {
    Pty { term: String, cols: u32, rows: u32, pix_width: u32, pix_height: u32, modes: Vec<(russh::Pty, u32)> },
    Env { name: String, value: String },
}

/// A channel's incoming messages, drained from russh's queue as they arrive.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<(ChannelMsg, OwnedSemaphorePermit)>,
}

impl Inbox {
    /// Starts draining `read`; data waits here holding permits of the connection's `budget`.
    pub fn drain(mut read: ChannelReadHalf, budget: Arc<Semaphore>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut open = true;
            while let Some(msg) = read.wait().await {
                if !open {
                    // The pump is gone; keep draining so the connection's loop never waits.
                    continue;
                }
                let bytes = match &msg {
                    ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => data.len(),
                    _ => 0,
                };
                let n = u32::try_from((bytes + MESSAGE_COST).min(INBOX_BUDGET)).unwrap_or(u32::MAX);
                let Ok(permit) = budget.clone().acquire_many_owned(n).await else { return };
                open = tx.send((msg, permit)).is_ok();
            }
        });
        Self { rx }
    }

    /// The next message; `None` once the channel (or its connection) is gone.
    pub async fn next(&mut self) -> Option<ChannelMsg> {
        self.rx.recv().await.map(|(msg, _permit)| msg)
    }
}

/// Collects a session channel's setup requests until its start request; `None` when the
/// channel ends first. A variable the front refused (and said so, if asked) is dropped
/// here: it never reaches the box.
pub async fn collect(front: &mut Inbox, config: &SshConfig) -> Option<(Vec<Setup>, Start)> {
    let mut setup = Vec::new();
    loop {
        match front.next().await {
            Some(ChannelMsg::RequestPty {
                term, col_width, row_height, pix_width, pix_height, terminal_modes, ..
            }) => {
                setup.push(Setup::Pty {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                    modes: terminal_modes,
                });
            }
            Some(ChannelMsg::SetEnv { variable_name, variable_value, .. }) => {
                if policy::env_allowed(config, &variable_name) {
                    setup.push(Setup::Env { name: variable_name, value: variable_value });
                }
            }
            Some(ChannelMsg::RequestShell { .. }) => return Some((setup, Start::Shell)),
            Some(ChannelMsg::Exec { command, .. }) => return Some((setup, Start::Exec(command))),
            Some(ChannelMsg::RequestSubsystem { name, .. }) => return Some((setup, Start::Subsystem(name))),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return None,
            Some(_) => {}
        }
    }
}

/// The terminal size a channel asked for, if it asked for a terminal.
pub fn terminal(setup: &[Setup]) -> Option<(u32, u32)> {
    setup.iter().find_map(|s| match s {
        Setup::Pty { cols, rows, .. } => Some((*cols, *rows)),
        Setup::Env { .. } => None,
    })
}

/// The environment a channel passes to the box.
pub fn env(setup: &[Setup]) -> Vec<(String, String)> {
    setup
        .iter()
        .filter_map(|s| match s {
            Setup::Env { name, value } => Some((name.clone(), value.clone())),
            Setup::Pty { .. } => None,
        })
        .collect()
}

/// How long what the box said before its channel was closed on our side may take to come
/// out of its inbox ([`relay`]).
const BOX_DRAIN: Duration = Duration::from_secs(1);

/// How the engineer → box pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// The engineer closed the channel, and the box's channel was closed after it.
    Closed,
    /// A leg went away, or the recording failed: the session's end follows.
    Gone,
}

/// Runs both pumps of a channel until it is over: the box closed its side (what the
/// engineer still sends has nowhere to go), or the engineer's side ended and the box has
/// answered, or the session ended.
///
/// Once the box's channel is closed on our side, russh drops everything the box still
/// sends on it, its close included, so after the engineer's close the box → engineer pump
/// gets [`BOX_DRAIN`] for what is already on its way instead of a wait for a close that
/// never comes (a ControlMaster channel's `close` event was never written).
pub async fn relay(ending: &Ending, inbound: impl Future<Output = Inbound>, outbound: impl Future<Output = ()>) {
    tokio::pin!(inbound, outbound);
    tokio::select! {
        () = &mut outbound => {}
        end = &mut inbound => {
            let drained = async {
                match end {
                    Inbound::Closed => tokio::time::sleep(BOX_DRAIN).await,
                    Inbound::Gone => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut outbound => {}
                () = drained => {}
                () = ending.ending() => {}
            }
        }
        () = ending.ending() => {}
    }
}

/// Sends the collected requests and the start request to the box, each waiting for its
/// answer. A refused environment variable is not fatal (the box's AcceptEnv decides).
pub async fn replay(
    up: &ChannelWriteHalf<client::Msg>,
    up_rx: &mut Inbox,
    setup: Vec<Setup>,
    start: Start,
    backlog: &mut Vec<ChannelMsg>,
    front: &ChannelWriteHalf<ServerMsg>,
) -> Result<(), &'static str> {
    for s in setup {
        match s {
            Setup::Pty { term, cols, rows, pix_width, pix_height, modes } => {
                let sent = up.request_pty(true, &term, cols, rows, pix_width, pix_height, &modes).await;
                if sent.is_err() || !reply(up_rx, backlog).await {
                    let _ = front.extended_data_bytes(1, &b"[iks-gateway] the box refused a terminal\r\n"[..]).await;
                }
            }
            Setup::Env { name, value } => {
                if up.set_env(true, name, value).await.is_ok() {
                    reply(up_rx, backlog).await;
                }
            }
        }
    }
    let started = match start {
        Start::Shell => up.request_shell(true).await,
        Start::Exec(command) => up.exec(true, command).await,
        Start::Subsystem(name) => up.request_subsystem(true, name).await,
    };
    if started.is_ok() && reply(up_rx, backlog).await { Ok(()) } else { Err("the box refused to start") }
}

/// Tells the engineer why, on stderr, and ends the channel with exit status 1.
pub async fn refuse(front: &ChannelWriteHalf<ServerMsg>, refusal: &ChannelRefusal, lines: Lines) {
    let _ = front.extended_data_bytes(1, lines.refusal(refusal).into_bytes()).await;
    let _ = front.exit_status(1).await;
    let _ = front.eof().await;
    let _ = front.close().await;
}

/// Waits for the box's answer to a request; anything else that arrives meanwhile is kept.
async fn reply(up: &mut Inbox, backlog: &mut Vec<ChannelMsg>) -> bool {
    loop {
        match up.next().await {
            Some(ChannelMsg::Success) => return true,
            Some(ChannelMsg::Failure) | None => return false,
            Some(ChannelMsg::WindowAdjusted { .. }) => {}
            Some(other) => backlog.push(other),
        }
    }
}

/// Engineer → box. Without a tap (a `-L` forward) only the bytes are counted.
pub async fn pump_in(
    est: &Established,
    events: &Events,
    mut front: Inbox,
    up: &ChannelWriteHalf<client::Msg>,
    tap: Option<&Tap>,
    moved: &AtomicU64,
) -> Inbound {
    let mut end = Inbound::Gone;
    while let Some(msg) = front.next().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                est.live.count_in(data.len());
                moved.fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(Err(e)) = tap.map(|t| t.input(&data)) {
                    recording_failed(est, e);
                    return Inbound::Gone;
                }
                up.data_bytes(data).await
            }
            ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                if let Some(Err(e)) = tap.map(|t| t.resize(col_width, row_height)) {
                    recording_failed(est, e);
                    return Inbound::Gone;
                }
                up.window_change(col_width, row_height, pix_width, pix_height).await
            }
            ChannelMsg::Signal { signal } => up.signal(signal).await,
            ChannelMsg::Eof => up.eof().await,
            ChannelMsg::Close => {
                end = Inbound::Closed;
                break;
            }
            _ => Ok(()),
        };
        drain_events(tap, events).await;
        if sent.is_err() {
            break;
        }
    }
    let _ = up.close().await;
    end
}

/// Box → engineer.
#[allow(clippy::too_many_arguments)] // each pump owns its halves; bundling them would only hide that
pub async fn pump_out(
    handle: &Handle,
    est: &Established,
    events: &Events,
    mut up: Inbox,
    backlog: Vec<ChannelMsg>,
    front: &ChannelWriteHalf<ServerMsg>,
    id: russh::ChannelId,
    tap: Option<&Tap>,
    moved: &AtomicU64,
) {
    let mut backlog = backlog.into_iter();
    // The box closing its channel is normal; its connection vanishing is not.
    let mut box_gone = false;
    // A session channel's EOF waits for its exit status. The box's sshd sends EOF when the
    // output ends, before the process is reaped and its exit status sent; a client whose
    // own input is done closes the channel on that EOF, russh answers that close at once
    // and drops what comes after for the channel, so a status sent after the EOF was lost
    // whenever the client was quicker (OpenSSH then exits 255). Held, it goes with the
    // exit status, or with the close. A forward (no tap) has no exit status: EOF at once.
    let mut eof = if tap.is_some() { BoxEof::Waits } else { BoxEof::Passes };
    loop {
        let msg = match backlog.next() {
            Some(m) => Some(m),
            None => up.next().await,
        };
        let Some(msg) = msg else {
            box_gone = true;
            break;
        };
        let sent = match msg {
            ChannelMsg::Data { data } => {
                est.live.count_out(data.len());
                moved.fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(Err(e)) = tap.map(|t| t.output(&data)) {
                    return recording_failed(est, e);
                }
                front.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => {
                est.live.count_out(data.len());
                moved.fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(Err(e)) = tap.map(|t| t.stderr(&data)) {
                    return recording_failed(est, e);
                }
                front.extended_data_bytes(ext, data).await
            }
            ChannelMsg::ExitStatus { exit_status } => {
                if let Some(t) = tap {
                    t.exit_status(exit_status);
                }
                let sent = front.exit_status(exit_status).await;
                after_exit(&mut eof, front, sent).await
            }
            ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                if let Some(t) = tap {
                    t.exit_signal(&format!("{signal_name:?}"));
                }
                let sent = handle
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await
                    .map_err(|()| russh::Error::SendError);
                after_exit(&mut eof, front, sent).await
            }
            ChannelMsg::Eof if eof != BoxEof::Passes => {
                eof = BoxEof::Held;
                Ok(())
            }
            ChannelMsg::Eof => front.eof().await,
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        drain_events(tap, events).await;
        if sent.is_err() {
            break;
        }
    }
    if box_gone {
        let (reason, message) = est.lost().await;
        est.live.close(reason, &message);
    }
    let _ = front.eof().await;
    let _ = front.close().await;
}

/// Where the box's EOF on a session channel is, relative to its exit status ([`pump_out`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum BoxEof {
    /// No exit status yet: an EOF now is held.
    Waits,
    /// Held until the exit status (or the close) goes out.
    Held,
    /// Forwarded as it comes.
    Passes,
}

/// Once the exit status went out (`sent`), the EOF it held follows it.
async fn after_exit(
    eof: &mut BoxEof,
    front: &ChannelWriteHalf<ServerMsg>,
    sent: Result<(), russh::Error>,
) -> Result<(), russh::Error> {
    match std::mem::replace(eof, BoxEof::Passes) {
        BoxEof::Held if sent.is_ok() => front.eof().await,
        _ => sent,
    }
}

async fn drain_events(tap: Option<&Tap>, events: &Events) {
    for e in tap.map(Tap::drain).unwrap_or_default() {
        events.send(e).await;
    }
}

fn recording_failed(est: &Established, e: std::io::Error) {
    warn!(session.id = %est.live.id, error = %e, "recording failed; closing the session");
    let (reason, message) = crate::recording::failure(&e);
    est.live.close(reason, message);
}
