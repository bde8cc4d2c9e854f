//! Bridging one of the engineer's channels to a channel on the box.
//!
//! Setup is sequential: collect the channel's PTY and environment requests until the
//! shell/exec/subsystem request, establish the session (the one access decision per
//! connection), replay what the gateway allows upstream ([`super::policy`]: nothing the
//! front refused) and wait for the box's answers. Then two pumps run, one per direction:
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
//! Every pump also stops when the session ends ([`Conn::ending`]), whatever it waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use russh::server::Msg as ServerMsg;
use russh::{Channel, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf, client};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{Instrument as _, warn};

use super::conn::{Conn, Established, Events};
use super::policy;
use crate::model::{EndReason, SessionEvent};
use crate::recording::tap::Tap;

/// How many bytes of channel data one connection may hold between russh and the pumps.
pub const INBOX_BUDGET: usize = 16 << 20;

/// What a message costs from the budget beyond its data: a flood of empty messages
/// (window changes, EOFs) is bounded too.
const MESSAGE_COST: usize = 256;

/// What an engineer's session channel asked to run.
enum Start {
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

/// A request collected before the start request, replayed on the box's channel.
enum Setup {
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
    async fn next(&mut self) -> Option<ChannelMsg> {
        self.rx.recv().await.map(|(msg, _permit)| msg)
    }
}

/// Runs one session channel from open to close.
pub async fn session_channel(conn: Arc<Conn>, channel: Channel<ServerMsg>) {
    let id = channel.id();
    let (front_rx, front_tx) = channel.split();
    let mut front_rx = Inbox::drain(front_rx, conn.inbox_budget.clone());
    let mut setup = Vec::new();
    let start = loop {
        match front_rx.next().await {
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
            // The front refused it (and said so, if asked): it never reaches the box.
            Some(ChannelMsg::SetEnv { variable_name, variable_value, .. }) => {
                if policy::env_allowed(&conn.app.config.ssh, &variable_name) {
                    setup.push(Setup::Env { name: variable_name, value: variable_value });
                }
            }
            Some(ChannelMsg::RequestShell { .. }) => break Start::Shell,
            Some(ChannelMsg::Exec { command, .. }) => break Start::Exec(command),
            Some(ChannelMsg::RequestSubsystem { name, .. }) => break Start::Subsystem(name),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    let pty = setup.iter().find_map(|s| match s {
        Setup::Pty { cols, rows, .. } => Some((*cols, *rows)),
        Setup::Env { .. } => None,
    });
    let newline = if pty.is_some() { "\r\n" } else { "\n" };
    if let Start::Subsystem(name) = &start
        && !policy::subsystem_allowed(name)
    {
        let message = format!("the gateway carries only the sftp subsystem, not {name:?}");
        return refuse(&front_tx, &message, newline).await;
    }
    // A channel opened while the session is being ended hears why, not a stray error.
    if let Some(message) = conn.closing() {
        return refuse(&front_tx, &format!("session closed: {message}"), newline).await;
    }
    let est = match conn.establish().await {
        Ok(est) => est,
        Err(refusal) => return refuse(&front_tx, &refusal.to_string(), newline).await,
    };
    let events = est.events();
    for notice in conn.take_notices() {
        let _ = front_tx.extended_data_bytes(1, format!("[iks-gateway] {notice}{newline}").into_bytes()).await;
    }
    if pty.is_some() && !conn.mark_terminal() {
        let message = "the gateway records one terminal per session; open another ssh connection";
        return refuse(&front_tx, message, newline).await;
    }
    let env: Vec<(String, String)> = setup
        .iter()
        .filter_map(|s| match s {
            Setup::Env { name, value } => Some((name.clone(), value.clone())),
            Setup::Pty { .. } => None,
        })
        .collect();
    let up = match est.upstream.channel_open_session().await {
        Ok(c) => c,
        Err(e) => {
            if let Some(message) = conn.closing() {
                return refuse(&front_tx, &format!("session closed: {message}"), newline).await;
            }
            est.live.close(EndReason::UpstreamLost, &format!("the box closed the connection ({e})"));
            return refuse(&front_tx, &format!("the box refused a new channel: {e}"), newline).await;
        }
    };
    let (up_rx, up_tx) = up.split();
    let mut up_rx = Inbox::drain(up_rx, est.inbox_budget.clone());
    let mut backlog = Vec::new();
    let what = match &start {
        Start::Shell => "shell".to_string(),
        Start::Exec(command) => String::from_utf8_lossy(command).into_owned(),
        Start::Subsystem(name) => format!("subsystem {name}"),
    };
    let kind = start_kind(&start);
    let replayed = tokio::select! {
        r = replay(&up_tx, &mut up_rx, setup, start, &mut backlog, &front_tx) => r,
        () = conn.ending() => Err("the session ended"),
    };
    if let Err(message) = replayed {
        let _ = up_tx.close().await;
        return refuse(&front_tx, &format!("{message} ({what})"), newline).await;
    }
    // Every channel hears the gateway's warnings and why the session closed: a terminal
    // shows them, a plain command prints them on stderr.
    if let Some(handle) = conn.handle.get() {
        est.live.add_notice_target(id, handle.clone());
    }
    // Registered first, checked second: either the goodbye reached this channel or it is seen here.
    if let Some(message) = conn.closing() {
        let _ = up_tx.close().await;
        est.live.remove_notice_target(id);
        return refuse(&front_tx, &format!("session closed: {message}"), newline).await;
    }
    let tap = Arc::new(Tap::new(est.live.clone(), i64::from(u32::from(id)), pty, &kind, env));
    for e in tap.started() {
        events.send(e).await;
    }
    let (to_box, to_engineer) = (AtomicU64::new(0), AtomicU64::new(0));
    let inbound = pump_in(est, &events, front_rx, &up_tx, Some(&tap), &to_box);
    let outbound = pump_out(&conn, est, &events, up_rx, backlog, &front_tx, id, Some(&tap), &to_engineer);
    relay(&conn, inbound, outbound).instrument(est.span.clone()).await;
    let _ = up_tx.close().await;
    est.live.remove_notice_target(id);
    // Written when the channel closes, not when the connection does: a ControlMaster
    // connection carries many channels over hours.
    for e in tap.finished() {
        events.send(e).await;
    }
}

/// Runs both pumps of a channel until it is over: the box closed its side (what the
/// engineer still sends has nowhere to go), or the engineer's side ended and the box has
/// answered, or the session ended.
async fn relay(conn: &Conn, inbound: impl Future<Output = ()>, outbound: impl Future<Output = ()>) {
    tokio::pin!(inbound, outbound);
    tokio::select! {
        () = &mut outbound => {}
        () = &mut inbound => {
            tokio::select! {
                () = &mut outbound => {}
                () = conn.ending() => {}
            }
        }
        () = conn.ending() => {}
    }
}

/// Sends the collected requests and the start request to the box, each waiting for its
/// answer. A refused environment variable is not fatal (the box's AcceptEnv decides).
async fn replay(
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

fn start_kind(start: &Start) -> crate::recording::tap::Kind {
    use crate::recording::tap::Kind;
    match start {
        Start::Shell => Kind::Shell,
        Start::Exec(c) => Kind::Exec(String::from_utf8_lossy(c).into_owned()),
        Start::Subsystem(n) => Kind::Subsystem(n.clone()),
    }
}

/// Tells the engineer why, on stderr, and ends the channel with exit status 1.
async fn refuse(front: &ChannelWriteHalf<ServerMsg>, message: &str, newline: &str) {
    let _ = front.extended_data_bytes(1, format!("{}{newline}", crate::text::one_line(message)).into_bytes()).await;
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
async fn pump_in(
    est: &Established,
    events: &Events,
    mut front: Inbox,
    up: &ChannelWriteHalf<client::Msg>,
    tap: Option<&Tap>,
    moved: &AtomicU64,
) {
    while let Some(msg) = front.next().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                est.live.count_in(data.len());
                moved.fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(Err(e)) = tap.map(|t| t.input(&data)) {
                    return recording_failed(est, e);
                }
                up.data_bytes(data).await
            }
            ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                if let Some(Err(e)) = tap.map(|t| t.resize(col_width, row_height)) {
                    return recording_failed(est, e);
                }
                up.window_change(col_width, row_height, pix_width, pix_height).await
            }
            ChannelMsg::Signal { signal } => up.signal(signal).await,
            ChannelMsg::Eof => up.eof().await,
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        drain_events(tap, events).await;
        if sent.is_err() {
            break;
        }
    }
    let _ = up.close().await;
}

/// Box → engineer.
#[allow(clippy::too_many_arguments)] // each pump owns its halves; bundling them would only hide that
async fn pump_out(
    conn: &Conn,
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
                front.exit_status(exit_status).await
            }
            ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                if let Some(t) = tap {
                    t.exit_signal(&format!("{signal_name:?}"));
                }
                match conn.handle.get() {
                    Some(h) => h
                        .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                        .await
                        .map_err(|()| russh::Error::SendError),
                    None => Ok(()),
                }
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

/// A `-L` forward's destination, as the engineer's client asked.
pub struct Forward {
    pub host: String,
    pub port: u32,
    pub originator: String,
    pub originator_port: u32,
}

/// Opens a `-L` forward through the box when its policy allows, refuses it otherwise.
/// The box's policy is the live one ([`crate::live::LiveSession::forwarding`]): turned
/// off while the session runs, new forwards are refused and open ones closed.
pub async fn direct_tcpip(
    conn: Arc<Conn>,
    channel: Channel<ServerMsg>,
    to: Forward,
    reply: russh::server::ChannelOpenHandle,
) {
    if conn.closing().is_some() {
        return reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
    }
    let est = match conn.establish().await {
        Ok(est) => est,
        Err(_) => return reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await,
    };
    if !est.live.forwarding() {
        est.live.notify(&format!("port forwarding to {}:{} is refused on box {}", to.host, to.port, est.iks_box.name));
        return reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
    }
    let upstream = est
        .upstream
        .channel_open_direct_tcpip(to.host.clone(), to.port, to.originator.clone(), to.originator_port)
        .await;
    let up = match upstream {
        Ok(c) => c,
        Err(_) => return reply.reject(ChannelOpenFailure::ConnectFailed).await,
    };
    reply.accept().await;
    let channel_id = i64::from(u32::from(channel.id()));
    let event = |kind: &str, details| SessionEvent {
        session_id: est.live.id,
        at: crate::time::now(),
        channel: Some(channel_id),
        kind: kind.into(),
        details,
    };
    let events = est.events();
    events.send(event("forward.open", json!({ "host": to.host, "port": to.port }))).await;
    let id = channel.id();
    let (front_rx, front_tx) = channel.split();
    let (up_rx, up_tx) = up.split();
    let front_rx = Inbox::drain(front_rx, conn.inbox_budget.clone());
    let up_rx = Inbox::drain(up_rx, est.inbox_budget.clone());
    let (to_box, to_engineer) = (AtomicU64::new(0), AtomicU64::new(0));
    let inbound = pump_in(est, &events, front_rx, &up_tx, None, &to_box);
    let outbound = pump_out(&conn, est, &events, up_rx, Vec::new(), &front_tx, id, None, &to_engineer);
    let mut stopped = est.live.forwarding_watch();
    tokio::select! {
        () = relay(&conn, inbound, outbound) => {}
        _ = stopped.wait_for(|allowed| !*allowed) => {
            est.live.notify(&format!("port forwarding on box {} was turned off; the forward to {}:{} is closed", est.iks_box.name, to.host, to.port));
        }
    }
    let _ = up_tx.close().await;
    let _ = front_tx.eof().await;
    let _ = front_tx.close().await;
    let details = json!({
        "host": to.host,
        "port": to.port,
        "bytes_in": to_box.load(Ordering::Relaxed),
        "bytes_out": to_engineer.load(Ordering::Relaxed),
    });
    events.send(event("forward.close", details)).await;
}
