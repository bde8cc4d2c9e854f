//! The rules of an engineer's session channels, with no connection behind them: what a
//! channel may start, the line a refused one prints, the notices and the one terminal its
//! connection shares, and the closing/ending state every pump watches.

use std::time::Duration;

use tokio::sync::watch;

use super::tap::Kind;
use iks_domain::decision::Refusal;

/// Kill, revocation, expiry, shutdown: both legs of a session are closed within this,
/// whatever its tasks are blocked on (a peer that stopped reading included).
pub const ENDING_WITHIN: Duration = Duration::from_secs(1);

/// What an engineer's session channel asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

impl Start {
    /// How a refusal names it.
    pub fn what(&self) -> String {
        match self {
            Self::Shell => "shell".to_string(),
            Self::Exec(command) => String::from_utf8_lossy(command).into_owned(),
            Self::Subsystem(name) => format!("subsystem {name}"),
        }
    }

    /// How the recording names it.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Shell => Kind::Shell,
            Self::Exec(c) => Kind::Exec(String::from_utf8_lossy(c).into_owned()),
            Self::Subsystem(n) => Kind::Subsystem(n.clone()),
        }
    }
}

/// Why a channel of an engineer's session was refused: the one line he reads on its stderr
/// before it ends with exit status 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelRefusal {
    #[error("the gateway carries only the sftp subsystem, not {0:?}")]
    Subsystem(String),
    /// A channel opened while the session is being ended hears why, not a stray error.
    #[error("session closed: {0}")]
    Closed(String),
    /// The session's one access decision refused (every channel of the connection hears it).
    #[error("{0}")]
    Access(Refusal),
    #[error("the gateway records one terminal per session; open another ssh connection")]
    SecondTerminal,
    #[error("the box refused a new channel: {0}")]
    BoxChannel(String),
    /// The box did not start what was asked (or the session ended meanwhile).
    #[error("{why} ({what})")]
    BoxStart { why: &'static str, what: String },
}

/// Checks a channel's start before the session is asked for.
pub fn may_start(start: &Start, closing: Option<String>) -> Result<(), ChannelRefusal> {
    if let Start::Subsystem(name) = start
        && !super::policy::subsystem_allowed(name)
    {
        return Err(ChannelRefusal::Subsystem(name.clone()));
    }
    match closing {
        Some(message) => Err(ChannelRefusal::Closed(message)),
        None => Ok(()),
    }
}

/// How lines reach an engineer's channel: a terminal needs CR LF.
#[derive(Debug, Clone, Copy)]
pub struct Lines {
    terminal: bool,
}

impl Lines {
    pub fn new(terminal: bool) -> Self {
        Self { terminal }
    }

    fn newline(self) -> &'static str {
        if self.terminal { "\r\n" } else { "\n" }
    }

    /// A refusal's line (it may quote anything the client sent: controls are made visible).
    pub fn refusal(self, refusal: &ChannelRefusal) -> String {
        format!("{}{}", iks_domain::text::one_line(&refusal.to_string()), self.newline())
    }

    /// A kept notice's line.
    pub fn notice(self, notice: &str) -> String {
        format!("[iks-gateway] {notice}{}", self.newline())
    }
}

/// How many notices a connection keeps: a client may repeat a refused request without end,
/// and the first few say it all.
const NOTICES_KEPT: usize = 8;

/// What the channels of one engineer's connection share: notices of refused requests,
/// waiting for the first channel that can show them, and the session's one terminal
/// (its recording is the session's recording).
#[derive(Debug, Default)]
pub struct Channels {
    notices: Vec<String>,
    terminal_taken: bool,
}

/// What a channel that reached the session does first.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Notices to print, each shown once, on the first channel that gets here.
    pub notices: Vec<String>,
    /// Whether it may go on.
    pub result: Result<(), ChannelRefusal>,
}

impl Channels {
    /// Keeps a refused request's notice for the next channel.
    pub fn note(&mut self, notice: String) {
        if self.notices.len() < NOTICES_KEPT {
            self.notices.push(notice);
        }
    }

    /// A channel reached the session: it shows the notices so far, and takes the terminal
    /// when it asked for one, unless another channel has it.
    pub fn admit(&mut self, terminal: bool) -> Admitted {
        let notices = std::mem::take(&mut self.notices);
        let result = if terminal && std::mem::replace(&mut self.terminal_taken, true) {
            Err(ChannelRefusal::SecondTerminal)
        } else {
            Ok(())
        };
        Admitted { notices, result }
    }
}

/// Whether the session is being ended (and why), or its connection is gone: every pump
/// waits on [`Ending::ending`] beside whatever else it waits on.
#[derive(Debug, Clone)]
pub struct Ending {
    /// The reason, once the session is being ended ([`crate::live::LiveSession::close`]).
    closer: watch::Receiver<Option<String>>,
    /// `true` once the connection is gone.
    ended: watch::Receiver<bool>,
}

impl Ending {
    pub fn new(closer: watch::Receiver<Option<String>>, ended: watch::Receiver<bool>) -> Self {
        Self { closer, ended }
    }

    /// Why the session is being ended, once it is.
    pub fn closing(&self) -> Option<String> {
        self.closer.borrow().clone()
    }

    /// Resolves when the session is being ended or the connection is gone.
    pub async fn ending(&self) {
        let (mut closer, mut ended) = (self.closer.clone(), self.ended.clone());
        tokio::select! {
            _ = closer.wait_for(Option::is_some) => {}
            _ = ended.wait_for(|e| *e) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_channel_may_start() {
        let closing = || Some("the grant ended".to_string());
        let cases: Vec<(Start, Option<String>, Result<(), &str>)> = vec![
            (Start::Shell, None, Ok(())),
            (Start::Exec(b"uptime".to_vec()), None, Ok(())),
            (Start::Subsystem("sftp".into()), None, Ok(())),
            (
                Start::Subsystem("netconf".into()),
                None,
                Err("the gateway carries only the sftp subsystem, not \"netconf\""),
            ),
            (
                Start::Subsystem("netconf".into()),
                closing(),
                Err("the gateway carries only the sftp subsystem, not \"netconf\""),
            ),
            (Start::Shell, closing(), Err("session closed: the grant ended")),
        ];
        for (start, closing, want) in cases {
            let got = may_start(&start, closing.clone()).map_err(|r| r.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{start:?} {closing:?}");
        }
    }

    #[test]
    fn how_starts_are_named() {
        let cases = [
            (Start::Shell, "shell", Kind::Shell),
            (Start::Exec(b"ls -l".to_vec()), "ls -l", Kind::Exec("ls -l".into())),
            (Start::Subsystem("sftp".into()), "subsystem sftp", Kind::Subsystem("sftp".into())),
        ];
        for (start, what, kind) in cases {
            assert_eq!(start.what(), what);
            assert_eq!(start.kind(), kind);
        }
    }

    #[test]
    fn refusal_lines() {
        let box_start = ChannelRefusal::BoxStart { why: "the box refused to start", what: "ls".into() };
        let cases = [
            (false, &box_start, "the box refused to start (ls)\n"),
            (true, &box_start, "the box refused to start (ls)\r\n"),
            (false, &ChannelRefusal::BoxChannel("closed\x1b".into()), "the box refused a new channel: closed^[\n"),
            (
                true,
                &ChannelRefusal::SecondTerminal,
                "the gateway records one terminal per session; open another ssh connection\r\n",
            ),
            (
                false,
                &ChannelRefusal::Access(Refusal::gateway("store", "store unavailable")),
                "access refused: store unavailable\n",
            ),
        ];
        for (terminal, refusal, want) in cases {
            assert_eq!(Lines::new(terminal).refusal(refusal), want);
        }
        assert_eq!(Lines::new(true).notice("X11 forwarding is refused"), "[iks-gateway] X11 forwarding is refused\r\n");
    }

    #[test]
    fn notices_are_shown_once_and_one_channel_has_the_terminal() {
        let mut channels = Channels::default();
        for i in 0..20 {
            channels.note(format!("notice {i}"));
        }
        // A plain command first: it shows the notices and leaves the terminal.
        let first = channels.admit(false);
        assert_eq!(first.notices.len(), NOTICES_KEPT);
        assert_eq!(first.notices[0], "notice 0");
        assert_eq!(first.result, Ok(()));
        let terminal = channels.admit(true);
        assert_eq!(terminal, Admitted { notices: vec![], result: Ok(()) });
        channels.note("later".into());
        let second = channels.admit(true);
        assert_eq!(second, Admitted { notices: vec!["later".into()], result: Err(ChannelRefusal::SecondTerminal) });
        assert_eq!(channels.admit(false).result, Ok(()), "commands still run beside the terminal");
    }

    #[tokio::test]
    async fn ending_follows_the_close_and_the_connection() {
        let (closer, closed) = watch::channel(None);
        let (ended, gone) = watch::channel(false);
        let ending = Ending::new(closed, gone);
        assert_eq!(ending.closing(), None);
        let wait =
            |e: Ending| async move { tokio::time::timeout(std::time::Duration::from_millis(50), e.ending()).await };
        assert!(wait(ending.clone()).await.is_err(), "nothing happened yet");
        closer.send_replace(Some("revoked".into()));
        assert_eq!(ending.closing().as_deref(), Some("revoked"));
        assert!(wait(ending.clone()).await.is_ok());

        let (_closer, closed) = watch::channel(None);
        let ending = Ending::new(closed, ended.subscribe());
        ended.send_replace(true);
        assert!(wait(ending.clone()).await.is_ok(), "the connection is gone");
        assert_eq!(ending.closing(), None);
    }
}
