//! Who is on the other end of a connection, and what each kind of peer may ask, as plain
//! rules with no connection behind them: authentication settles the peer once
//! ([`Authenticating`] → [`Identity`]), then the front answers every request and channel
//! open from these tables.

use russh::keys::PublicKey;

use super::policy;
use crate::config::SshConfig;
use iks_domain::model::{Agent, Person};

/// Who an engineer's connection is, settled at authentication.
#[derive(Debug, Clone)]
pub enum Login {
    Operator {
        /// The SSH user name: the target (`T-1042+box`).
        user: String,
        person: Person,
        /// The key the engineer authenticated with (its removal ends the session).
        key_fingerprint: String,
    },
    /// The store could not be asked whose key this is. Such a connection has no operator,
    /// so every channel is refused ("store unavailable"): it can do nothing, but the
    /// engineer reads why instead of a bare "Permission denied".
    StoreDown,
}

/// What an authenticated agent connection is for.
#[derive(Debug)]
pub enum AgentPeer {
    /// Enrolling with this (new) key.
    Enrolling(PublicKey),
    Control {
        agent: Agent,
        box_name: String,
    },
    Data {
        agent: Agent,
        box_name: String,
        dial: String,
    },
}

/// What a connection turned out to be.
#[derive(Debug)]
pub enum Identity {
    Engineer(Login),
    Agent(AgentPeer),
}

impl Identity {
    /// Whether the connection leaves the unauthenticated count (and its deadline): anyone
    /// may log in to enrol (any key), and a connection let in while the store is down can
    /// do nothing, so neither does.
    pub fn is_working(&self) -> bool {
        match self {
            Self::Engineer(login) => matches!(login, Login::Operator { .. }),
            Self::Agent(peer) => !matches!(peer, AgentPeer::Enrolling(_)),
        }
    }
}

/// What the store said about an engineer's key.
#[derive(Debug)]
pub enum KeyLookup {
    /// An enabled operator's key.
    Operator(Person),
    Unknown,
    /// The store cannot say (or was found away earlier on this connection).
    StoreDown,
}

/// What authentication has learned so far: the one state before the peer is settled.
#[derive(Debug, Default)]
pub struct Authenticating {
    /// The store could not be asked about an offered key: from then on nobody is recognised.
    store_down: bool,
    /// Who the key being accepted belongs to.
    accepted: Option<Identity>,
}

impl Authenticating {
    /// Whether the store was found away: an engineer's key is then not looked up again.
    pub fn store_down(&self) -> bool {
        self.store_down
    }

    /// Whether an engineer's key may log in; a `verified` one (its signature checked) is
    /// what the connection will be.
    pub fn engineer_key(&mut self, user: &str, key_fingerprint: String, lookup: KeyLookup, verified: bool) -> bool {
        let login = match lookup {
            KeyLookup::Operator(person) => Login::Operator { user: user.to_string(), person, key_fingerprint },
            KeyLookup::Unknown => return false,
            KeyLookup::StoreDown => {
                self.store_down = true;
                Login::StoreDown
            }
        };
        if verified {
            self.accepted = Some(Identity::Engineer(login));
        }
        true
    }

    /// Whether an agent's verified key may log in, as `peer` when it may.
    pub fn agent(&mut self, peer: Option<AgentPeer>) -> bool {
        let accepted = peer.is_some();
        if let Some(peer) = peer {
            self.accepted = Some(Identity::Agent(peer));
        }
        accepted
    }

    /// Authentication succeeded: what the connection is, for good.
    pub fn settle(self) -> Option<Identity> {
        self.accepted
    }
}

/// A request on an authenticated connection, as the front receives it.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    Pty,
    Env(&'a str),
    Shell,
    Exec(&'a [u8]),
    Subsystem(&'a str),
    X11,
    AgentForwarding,
    RemoteForward { address: &'a str, port: u32 },
    SocketForward(&'a str),
}

impl Request<'_> {
    /// What an engineer reads on his first channel about a request the gateway refuses
    /// everyone; shown as the client sent it, controls visible (it may carry any bytes).
    pub fn notice(&self) -> Option<String> {
        let text = match self {
            Self::X11 => "X11 forwarding is refused by the gateway".to_string(),
            // The engineer's agent must never be reachable from a customer's box.
            Self::AgentForwarding => "agent forwarding is refused by the gateway".to_string(),
            Self::RemoteForward { address, port } => {
                format!("remote port forwarding ({}:{port}) is refused by the gateway", shorten(address))
            }
            Self::SocketForward(path) => {
                format!("remote socket forwarding ({}) is refused by the gateway", shorten(path))
            }
            Self::Pty | Self::Env(_) | Self::Shell | Self::Exec(_) | Self::Subsystem(_) => return None,
        };
        Some(iks_domain::text::one_line(&text))
    }
}

/// Whether an engineer's connection may have `request` (what reaches the box is decided
/// again by [`policy`] when the channel is bridged).
pub fn engineer_may(config: &SshConfig, request: &Request<'_>) -> bool {
    match request {
        Request::Pty | Request::Shell | Request::Exec(_) => true,
        Request::Env(name) => policy::env_allowed(config, name),
        Request::Subsystem(name) => policy::subsystem_allowed(name),
        Request::X11 | Request::AgentForwarding | Request::RemoteForward { .. } | Request::SocketForward(_) => false,
    }
}

/// A `-L` forward's destination, as the engineer's client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub host: String,
    pub port: u32,
    pub originator: String,
    pub originator_port: u32,
}

/// A channel a peer opens. An engineer's session channel is accepted at once (its start
/// request asks for the session); his forward is decided once the session and the box's
/// forwarding policy are known; X11 is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Open {
    Session,
    /// `ssh -L`.
    DirectTcpip(Forward),
    X11,
}

impl AgentPeer {
    /// Whether an exec on the agent's channel is the one it may send.
    pub fn exec_allowed(&self, command: &[u8]) -> bool {
        match self {
            Self::Enrolling(_) => command.starts_with(iks_proto::ENROLL_COMMAND.as_bytes()),
            Self::Control { .. } => command == iks_proto::CONTROL_COMMAND.as_bytes(),
            Self::Data { .. } => false,
        }
    }

    /// An agent connection can do exactly one thing: only its one exec is granted.
    pub fn may(&self, request: &Request<'_>) -> bool {
        matches!(request, Request::Exec(command) if self.exec_allowed(command))
    }

    /// Whether a channel may open: an enrolment or a control connection opens one session
    /// channel, its `first`; a data connection opens none (the gateway opens its tunnel).
    pub fn may_open(&self, open: &Open, first: bool) -> bool {
        *open == Open::Session && first && !matches!(self, Self::Data { .. })
    }

    /// For the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Enrolling(_) => "enrolment".into(),
            Self::Control { agent, box_name } => format!("control of {} (box {box_name})", agent.id),
            Self::Data { agent, box_name, .. } => format!("data of {} (box {box_name})", agent.id),
        }
    }
}

/// What a client asked for, cut to a length worth printing back.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iks_domain::decision::fixtures::{self, person};

    fn agent() -> Agent {
        fixtures::agent(iks_domain::ids::BoxId(5), fixtures::t(fixtures::NOW))
    }

    fn agent_peers() -> Vec<(&'static str, AgentPeer)> {
        let key = russh::keys::PrivateKey::random(&mut russh::keys::key::safe_rng(), russh::keys::Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone();
        vec![
            ("enrolling", AgentPeer::Enrolling(key)),
            ("control", AgentPeer::Control { agent: agent(), box_name: "gw".into() }),
            ("data", AgentPeer::Data { agent: agent(), box_name: "gw".into(), dial: "d1".into() }),
        ]
    }

    #[test]
    fn authentication_settles_the_peer_once() {
        type Step = (&'static str, fn(&mut Authenticating) -> bool, bool);
        type Case = (&'static str, Vec<Step>, &'static str);
        let cases: Vec<Case> = vec![
            ("no key", vec![], "nobody"),
            (
                "unknown key",
                vec![("verified", |a| a.engineer_key("T-1", "fp".into(), KeyLookup::Unknown, true), false)],
                "nobody",
            ),
            (
                "an operator's key, offered then verified",
                vec![
                    (
                        "offered",
                        |a| a.engineer_key("T-1", "fp".into(), KeyLookup::Operator(person(3, "ivanov")), false),
                        true,
                    ),
                    (
                        "verified",
                        |a| a.engineer_key("T-1", "fp".into(), KeyLookup::Operator(person(3, "ivanov")), true),
                        true,
                    ),
                ],
                "operator ivanov as T-1 with fp",
            ),
            (
                "offered only",
                vec![(
                    "offered",
                    |a| a.engineer_key("T-1", "fp".into(), KeyLookup::Operator(person(3, "ivanov")), false),
                    true,
                )],
                "nobody",
            ),
            (
                "the store went away at the offer",
                vec![
                    ("offered", |a| a.engineer_key("T-1", "fp".into(), KeyLookup::StoreDown, false), true),
                    ("verified", |a| a.engineer_key("T-1", "fp".into(), KeyLookup::StoreDown, true), true),
                ],
                "store down",
            ),
            (
                "an agent",
                vec![(
                    "verified",
                    |a| a.agent(Some(AgentPeer::Data { agent: agent(), box_name: "gw".into(), dial: "d".into() })),
                    true,
                )],
                "agent data of",
            ),
            ("an unknown agent", vec![("verified", |a| a.agent(None), false)], "nobody"),
        ];
        for (name, steps, want) in cases {
            let mut auth = Authenticating::default();
            for (step, run, accepted) in steps {
                assert_eq!(run(&mut auth), accepted, "{name}: {step}");
            }
            let got = match auth.settle() {
                None => "nobody".to_string(),
                Some(Identity::Engineer(Login::Operator { user, person, key_fingerprint })) => {
                    format!("operator {} as {user} with {key_fingerprint}", person.login)
                }
                Some(Identity::Engineer(Login::StoreDown)) => "store down".to_string(),
                Some(Identity::Agent(peer)) => format!("agent {}", peer.describe()),
            };
            assert!(got.starts_with(want), "{name}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_store_found_away_is_remembered() {
        let mut auth = Authenticating::default();
        assert!(!auth.store_down());
        assert!(auth.engineer_key("T-1", "fp".into(), KeyLookup::StoreDown, false));
        assert!(auth.store_down());
    }

    #[test]
    fn who_counts_as_working() {
        assert!(
            Identity::Engineer(Login::Operator {
                user: "T-1".into(),
                person: person(3, "ivanov"),
                key_fingerprint: "fp".into()
            })
            .is_working()
        );
        assert!(!Identity::Engineer(Login::StoreDown).is_working());
        let working: Vec<(&str, bool)> =
            agent_peers().into_iter().map(|(name, p)| (name, Identity::Agent(p).is_working())).collect();
        assert_eq!(working, [("enrolling", false), ("control", true), ("data", true)]);
    }

    #[test]
    fn what_an_engineer_may_ask() {
        let config = SshConfig { env: vec!["LANG".into()], ..SshConfig::default() };
        let cases: &[(Request, bool, Option<&str>)] = &[
            (Request::Pty, true, None),
            (Request::Shell, true, None),
            (Request::Exec(b"uptime"), true, None),
            (Request::Env("LANG"), true, None),
            (Request::Env("LD_PRELOAD"), false, None),
            (Request::Subsystem("sftp"), true, None),
            (Request::Subsystem("netconf"), false, None),
            (Request::X11, false, Some("X11 forwarding is refused by the gateway")),
            (Request::AgentForwarding, false, Some("agent forwarding is refused by the gateway")),
            (
                Request::RemoteForward { address: "localhost", port: 8080 },
                false,
                Some("remote port forwarding (localhost:8080) is refused by the gateway"),
            ),
            (
                Request::SocketForward("/tmp/s\x1b"),
                false,
                Some("remote socket forwarding (/tmp/s^[) is refused by the gateway"),
            ),
        ];
        for (request, may, notice) in cases {
            assert_eq!(engineer_may(&config, request), *may, "{request:?}");
            assert_eq!(request.notice().as_deref(), *notice, "{request:?}");
        }
        let long = "a".repeat(100);
        let notice = Request::SocketForward(&long).notice().unwrap();
        assert!(notice.contains(&format!("({}…)", "a".repeat(64))), "{notice}");
    }

    #[test]
    fn an_agent_does_one_thing_on_one_channel() {
        let enroll = format!("{} token", iks_proto::ENROLL_COMMAND);
        let control = iks_proto::CONTROL_COMMAND;
        for (name, peer) in agent_peers() {
            let mut granted = Vec::new();
            for request in [
                Request::Pty,
                Request::Shell,
                Request::Env("LANG"),
                Request::Subsystem("sftp"),
                Request::X11,
                Request::AgentForwarding,
                Request::Exec(enroll.as_bytes()),
                Request::Exec(control.as_bytes()),
                Request::Exec(b"sh"),
            ] {
                if peer.may(&request) {
                    granted.push(format!("{request:?}"));
                }
            }
            let forward =
                Forward { host: "localhost".into(), port: 22, originator: "127.0.0.1".into(), originator_port: 5 };
            let opens: Vec<bool> =
                [(Open::Session, true), (Open::Session, false), (Open::DirectTcpip(forward), true), (Open::X11, true)]
                    .iter()
                    .map(|(open, first)| peer.may_open(open, *first))
                    .collect();
            match name {
                "enrolling" => {
                    assert_eq!(granted.len(), 1, "{name}: {granted:?}");
                    assert!(peer.exec_allowed(enroll.as_bytes()));
                    assert_eq!(opens, [true, false, false, false], "{name}");
                }
                "control" => {
                    assert_eq!(granted.len(), 1, "{name}: {granted:?}");
                    assert!(peer.exec_allowed(control.as_bytes()));
                    assert_eq!(opens, [true, false, false, false], "{name}");
                }
                _ => {
                    assert!(granted.is_empty(), "{name}: {granted:?}");
                    assert_eq!(opens, [false; 4], "{name}");
                }
            }
        }
    }
}
