//! Bridging one of the engineer's channels to a channel on the box.
//!
//! Setup is sequential: collect the channel's PTY and environment requests until the
//! shell/exec/subsystem request, establish the session (the one access decision per
//! connection), replay the requests upstream and wait for the box's answers. Then two
//! pumps run, one per direction, each owning one half of each channel:
//! - engineer → box: keystrokes and stdin, window changes, signals, EOF;
//! - box → engineer: output, stderr, exit status or signal, EOF, close.
//!
//! Chunks move as `Bytes` without copying. Every buffer is bounded: russh's per-channel
//! queue (100 messages) on the receiving side, and the peer's window on the sending side
//! (`data_bytes` waits for it), so a slow reader stalls its box, not the gateway's memory.

use std::sync::Arc;

use russh::server::Msg as ServerMsg;
use russh::{Channel, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf, client};
use serde_json::json;
use tracing::{Instrument as _, warn};

use super::conn::{Conn, Established, Events};
use crate::model::{EndReason, SessionEvent};
use crate::recording::tap::Tap;

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

/// Runs one session channel from open to close.
pub async fn session_channel(conn: Arc<Conn>, channel: Channel<ServerMsg>) {
    let id = channel.id();
    let (mut front_rx, front_tx) = channel.split();
    let mut setup = Vec::new();
    let start = loop {
        match front_rx.wait().await {
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
                setup.push(Setup::Env { name: variable_name, value: variable_value });
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
    let mut up = match est.upstream.channel_open_session().await {
        Ok(c) => c,
        Err(e) => {
            est.live.close(EndReason::UpstreamLost, &format!("the box closed the connection ({e})")).await;
            return refuse(&front_tx, &format!("the box refused a new channel: {e}"), newline).await;
        }
    };
    let mut backlog = Vec::new();
    let what = match &start {
        Start::Shell => "shell".to_string(),
        Start::Exec(command) => String::from_utf8_lossy(command).into_owned(),
        Start::Subsystem(name) => format!("subsystem {name}"),
    };
    let kind = start_kind(&start);
    if let Err(message) = replay(&mut up, setup, start, &mut backlog, &front_tx).await {
        return refuse(&front_tx, &format!("{message} ({what})"), newline).await;
    }
    // Every channel hears the gateway's warnings and why the session closed: a terminal
    // shows them, a plain command prints them on stderr.
    if let Some(handle) = conn.handle.get() {
        est.live.add_notice_target(id, handle.clone());
    }
    let tap = Arc::new(Tap::new(est.live.clone(), i64::from(u32::from(id)), pty, &kind, env));
    for e in tap.started() {
        events.send(e).await;
    }
    let (up_rx, up_tx) = up.split();
    let inbound = pump_in(est, &events, front_rx, up_tx, tap.clone());
    let outbound = pump_out(&conn, est, &events, up_rx, backlog, front_tx, id, tap.clone());
    async { tokio::join!(inbound, outbound) }.instrument(est.span.clone()).await;
    for e in tap.finished() {
        events.send(e).await;
    }
}

/// Sends the collected requests and the start request to the box, each waiting for its
/// answer. A refused environment variable is not fatal (the box's AcceptEnv decides).
async fn replay(
    up: &mut Channel<client::Msg>,
    setup: Vec<Setup>,
    start: Start,
    backlog: &mut Vec<ChannelMsg>,
    front: &ChannelWriteHalf<ServerMsg>,
) -> Result<(), &'static str> {
    for s in setup {
        match s {
            Setup::Pty { term, cols, rows, pix_width, pix_height, modes } => {
                let sent = up.request_pty(true, &term, cols, rows, pix_width, pix_height, &modes).await;
                if sent.is_err() || !reply(up, backlog).await {
                    let _ = front.extended_data_bytes(1, &b"[iks-gateway] the box refused a terminal\r\n"[..]).await;
                }
            }
            Setup::Env { name, value } => {
                if up.set_env(true, name, value).await.is_ok() {
                    reply(up, backlog).await;
                }
            }
        }
    }
    let started = match start {
        Start::Shell => up.request_shell(true).await,
        Start::Exec(command) => up.exec(true, command).await,
        Start::Subsystem(name) => up.request_subsystem(true, name).await,
    };
    if started.is_ok() && reply(up, backlog).await { Ok(()) } else { Err("the box refused to start") }
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
async fn reply(up: &mut Channel<client::Msg>, backlog: &mut Vec<ChannelMsg>) -> bool {
    loop {
        match up.wait().await {
            Some(ChannelMsg::Success) => return true,
            Some(ChannelMsg::Failure) | None => return false,
            Some(ChannelMsg::WindowAdjusted { .. }) => {}
            Some(other) => backlog.push(other),
        }
    }
}

/// Engineer → box.
async fn pump_in(
    est: &Established,
    events: &Events,
    mut front: ChannelReadHalf,
    up: ChannelWriteHalf<client::Msg>,
    tap: Arc<Tap>,
) {
    while let Some(msg) = front.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                est.live.count_in(data.len());
                if let Err(e) = tap.input(&data) {
                    return recording_failed(est, e).await;
                }
                up.data_bytes(data).await
            }
            ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                if let Err(e) = tap.resize(col_width, row_height) {
                    return recording_failed(est, e).await;
                }
                up.window_change(col_width, row_height, pix_width, pix_height).await
            }
            ChannelMsg::Signal { signal } => up.signal(signal).await,
            ChannelMsg::Eof => up.eof().await,
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        for e in tap.drain() {
            events.send(e).await;
        }
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
    mut up: ChannelReadHalf,
    backlog: Vec<ChannelMsg>,
    front: ChannelWriteHalf<ServerMsg>,
    id: russh::ChannelId,
    tap: Arc<Tap>,
) {
    let mut backlog = backlog.into_iter();
    // The box closing its channel is normal; its connection vanishing is not.
    let mut box_gone = false;
    loop {
        let msg = match backlog.next() {
            Some(m) => Some(m),
            None => up.wait().await,
        };
        let Some(msg) = msg else {
            box_gone = true;
            break;
        };
        let sent = match msg {
            ChannelMsg::Data { data } => {
                est.live.count_out(data.len());
                if let Err(e) = tap.output(&data) {
                    return recording_failed(est, e).await;
                }
                front.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => {
                est.live.count_out(data.len());
                if let Err(e) = tap.stderr(&data) {
                    return recording_failed(est, e).await;
                }
                front.extended_data_bytes(ext, data).await
            }
            ChannelMsg::ExitStatus { exit_status } => {
                tap.exit_status(exit_status);
                front.exit_status(exit_status).await
            }
            ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                tap.exit_signal(&format!("{signal_name:?}"));
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
        for e in tap.drain() {
            events.send(e).await;
        }
        if sent.is_err() {
            break;
        }
    }
    if box_gone {
        let (reason, message) = est.lost().await;
        est.live.close(reason, &message).await;
    }
    let _ = front.eof().await;
    let _ = front.close().await;
}

async fn recording_failed(est: &Established, e: std::io::Error) {
    warn!(session.id = %est.live.id, error = %e, "recording failed; closing the session");
    let (reason, message) = crate::recording::failure(&e);
    est.live.close(reason, message).await;
}

/// A `-L` forward's destination, as the engineer's client asked.
pub struct Forward {
    pub host: String,
    pub port: u32,
    pub originator: String,
    pub originator_port: u32,
}

/// Opens a `-L` forward through the box when its policy allows, refuses it otherwise.
pub async fn direct_tcpip(
    conn: Arc<Conn>,
    channel: Channel<ServerMsg>,
    to: Forward,
    reply: russh::server::ChannelOpenHandle,
) {
    let est = match conn.establish().await {
        Ok(est) => est,
        Err(_) => return reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await,
    };
    if !est.iks_box.allow_forwarding {
        est.live
            .notify(&format!("port forwarding to {}:{} is refused on box {}", to.host, to.port, est.iks_box.name))
            .await;
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
    let (mut a, mut b) = (channel.into_stream(), up.into_stream());
    let (to_box, to_engineer) = tokio::io::copy_bidirectional(&mut a, &mut b).await.unwrap_or((0, 0));
    est.live.count_in(usize::try_from(to_box).unwrap_or(usize::MAX));
    est.live.count_out(usize::try_from(to_engineer).unwrap_or(usize::MAX));
    events
        .send(event(
            "forward.close",
            json!({ "host": to.host, "port": to.port, "bytes_in": to_box, "bytes_out": to_engineer }),
        ))
        .await;
}
