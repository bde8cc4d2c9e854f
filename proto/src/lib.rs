//! What the iks-gateway and the iks-agent say to each other. Both sides depend on this
//! crate, so a user name or message shape cannot drift between them; it holds data and
//! parsing, and the one stream adapter both ends put under SSH ([`read_ahead`]).
//!
//! Everything runs over SSH to the gateway's one SSH port (the same one engineers use):
//! the agent is always the SSH *client*, so the box needs no inbound port, and every
//! connection is authenticated both ways (the agent pins the gateway's host key; the
//! gateway knows the agent by its key).
//!
//! **Enrolment** (one connection, then closed):
//! 1. the agent generates its Ed25519 key and logs in as [`ENROLL_USER`] with it. Any key
//!    is accepted for that user — the signature proves the agent holds the key it is about
//!    to register — and such a connection can do nothing but the next step;
//! 2. on one session channel it sends `exec "enroll <token> <EnrollRequest as JSON>"`;
//! 3. the gateway checks the one-time token and, in one transaction, marks it used and
//!    records the key for the box. It answers [`EnrollReply`] as JSON on stdout with exit
//!    status 0, or one line on stderr with exit status 1 (nothing registered).
//!
//! **Control** (kept open by `iks-agent run`): the agent logs in as [`CONTROL_USER`] with
//! its enrolled key, opens a session channel and sends `exec "iks-agent-control"`
//! ([`CONTROL_COMMAND`]). From then on the channel carries newline-delimited JSON both
//! ways: the agent sends [`AgentMsg`]s — its [`AgentState`] on connecting and whenever it
//! changes (kill switch, product version), and a [`DialRefusal`] for a dial it will not
//! answer, so the engineer hears why at once instead of after a timeout; the gateway sends
//! [`GatewayMsg`]s.
//!
//! **Data** (one connection per engineer session): to reach the box's sshd the gateway
//! sends [`GatewayMsg::Dial`] with a fresh id; the agent opens a *new* SSH connection as
//! `iks-agent-data:<id>` ([`AgentUser::Data`]) and the gateway opens one `forwarded-tcpip`
//! channel on it, addressed to [`TUNNEL_ADDRESS`]:[`TUNNEL_PORT`]. The agent connects that
//! channel to its own configured sshd address — never to an address the gateway names —
//! and refuses every other channel. A connection per session keeps sessions independent:
//! russh stalls a whole connection when one channel's queue is full, so one engineer who
//! stops reading can only stall their own session, never the control connection or other
//! sessions on the same box.

use serde::{Deserialize, Serialize};

pub mod read_ahead;

/// The SSH user of an enrolment connection.
pub const ENROLL_USER: &str = "iks-agent-enroll";
/// The SSH user of the agent's control connection.
pub const CONTROL_USER: &str = "iks-agent";
/// The prefix of a data connection's SSH user; the dial id follows.
pub const DATA_USER_PREFIX: &str = "iks-agent-data:";
/// The exec command that turns a session channel into the control channel.
pub const CONTROL_COMMAND: &str = "iks-agent-control";
/// The exec command of an enrolment: `enroll <token> <json>`.
pub const ENROLL_COMMAND: &str = "enroll";
/// The connected address of the one channel type the agent accepts: a name, not an
/// address, because the agent alone decides where its box's sshd is.
pub const TUNNEL_ADDRESS: &str = "sshd";
/// The connected port that goes with [`TUNNEL_ADDRESS`].
pub const TUNNEL_PORT: u32 = 22;
/// The longest control line either side accepts; a longer one ends the connection.
pub const MAX_LINE: usize = 64 * 1024;
/// Hex digits in a dial id (128 random bits).
pub const DIAL_ID_LEN: usize = 32;

/// Which kind of agent connection an SSH user name announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentUser {
    Enroll,
    Control,
    /// A data connection answering the gateway's dial with this id.
    Data(String),
}

impl AgentUser {
    /// `None` for any other user name (an engineer's `T-1042`).
    pub fn parse(user: &str) -> Option<Self> {
        match user {
            ENROLL_USER => Some(Self::Enroll),
            CONTROL_USER => Some(Self::Control),
            _ => {
                let id = user.strip_prefix(DATA_USER_PREFIX)?;
                valid_dial_id(id).then(|| Self::Data(id.to_string()))
            }
        }
    }

    pub fn user_name(&self) -> String {
        match self {
            Self::Enroll => ENROLL_USER.to_string(),
            Self::Control => CONTROL_USER.to_string(),
            Self::Data(id) => format!("{DATA_USER_PREFIX}{id}"),
        }
    }
}

/// Whether `id` looks like a dial id the gateway makes: lowercase hex of the right length.
pub fn valid_dial_id(id: &str) -> bool {
    id.len() == DIAL_ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What the agent tells the gateway when it enrols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub agent_version: String,
    /// The product ID running on the box (`iks-standard`), when the agent knows it.
    pub product: Option<String>,
    /// The version running on the box (`7.2.1`), when the agent knows it.
    pub version: Option<String>,
    /// The box sshd's host key (an OpenSSH public key line), pinned by the gateway.
    pub box_host_key: Option<String>,
}

/// What the gateway answers a successful enrolment with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollReply {
    pub box_name: String,
    pub box_id: i64,
    pub org: String,
    pub inn: String,
    /// `SHA256:…` of the box sshd's host key the gateway pinned, if any.
    pub pinned_host_key: Option<String>,
}

/// The exec command line of an enrolment.
pub fn enroll_command(token: &str, request: &EnrollRequest) -> Result<String, serde_json::Error> {
    Ok(format!("{ENROLL_COMMAND} {token} {}", serde_json::to_string(request)?))
}

/// Why an enrolment command could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadEnrollCommand {
    NotEnroll,
    NoToken,
    Request(String),
}

impl std::fmt::Display for BadEnrollCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotEnroll => write!(f, "an enrolment connection accepts only '{ENROLL_COMMAND} <token> <json>'"),
            Self::NoToken => f.write_str("the enrolment command has no token"),
            Self::Request(e) => write!(f, "the enrolment request is not valid JSON: {e}"),
        }
    }
}

impl std::error::Error for BadEnrollCommand {}

/// Reads `enroll <token> <json>` back into the token and the request.
pub fn parse_enroll_command(command: &str) -> Result<(&str, EnrollRequest), BadEnrollCommand> {
    let rest =
        command.strip_prefix(ENROLL_COMMAND).and_then(|r| r.strip_prefix(' ')).ok_or(BadEnrollCommand::NotEnroll)?;
    let (token, json) = rest.split_once(' ').ok_or(BadEnrollCommand::NoToken)?;
    if token.is_empty() {
        return Err(BadEnrollCommand::NoToken);
    }
    let request = serde_json::from_str(json).map_err(|e| BadEnrollCommand::Request(e.to_string()))?;
    Ok((token, request))
}

/// The agent's state, sent on the control channel on connect and on every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    pub agent_version: String,
    pub product: Option<String>,
    pub version: Option<String>,
    /// The customer's local kill switch (`iks-agent disable`): no sessions while set.
    pub remote_access_disabled: bool,
}

/// Why the agent will not dial a data connection. A closed set rather than text: the
/// gateway words the refusal the engineer reads, so a box cannot put words on their screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum DialRefusal {
    /// The customer's kill switch is on.
    RemoteAccessDisabled,
    /// The box already carries as many sessions as its agent allows (`max_sessions`).
    TooManySessions { limit: u32 },
}

/// What the agent sends on the control channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    State(AgentState),
    /// The dial `id` will not be answered.
    DialRefused {
        id: String,
        refusal: DialRefusal,
    },
}

/// What the gateway sends on the control channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayMsg {
    /// Open a data connection as `iks-agent-data:<id>` for one session.
    Dial { id: String },
}

/// One control line: the JSON text and the newline.
pub fn line<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec(msg)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Splits a byte stream into lines, bounded by [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

/// A control line longer than [`MAX_LINE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a control line is longer than {MAX_LINE} bytes")
    }
}

impl std::error::Error for LineTooLong {}

impl LineBuffer {
    /// Adds received bytes and returns the complete lines they finish (without newlines).
    ///
    /// Each byte is copied once, into its own line: memory and time stay linear in `data`
    /// however many lines it holds (splitting the rest off per line was quadratic: a
    /// chunk of 32 KiB of newlines allocated half a gigabyte).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut lines = Vec::new();
        let mut rest = data;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(end);
            self.fill(line)?;
            lines.push(std::mem::take(&mut self.pending));
            rest = after.get(1..).unwrap_or_default();
        }
        self.fill(rest)?;
        Ok(lines)
    }

    fn fill(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        if self.pending.len().saturating_add(bytes.len()) > MAX_LINE {
            return Err(LineTooLong);
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(AgentUser::parse("iks-agent"), Some(AgentUser::Control));
        assert_eq!(AgentUser::parse("iks-agent-enroll"), Some(AgentUser::Enroll));
        assert_eq!(AgentUser::parse(&format!("iks-agent-data:{id}")), Some(AgentUser::Data(id.into())));
        for bad in
            ["T-1042", "iks-agent-data:", "iks-agent-data:xyz", "iks-agent-data:0123456789ABCDEF0123456789ABCDEF"]
        {
            assert_eq!(AgentUser::parse(bad), None, "{bad}");
        }
        assert_eq!(AgentUser::Data(id.into()).user_name(), format!("iks-agent-data:{id}"));
    }

    #[test]
    fn enroll_commands_round_trip() {
        let req = EnrollRequest {
            agent_version: "0.1.0".into(),
            product: Some("iks-standard".into()),
            version: Some("7.2".into()),
            box_host_key: None,
        };
        let cmd = enroll_command("iks-enroll-abc", &req).unwrap();
        assert_eq!(parse_enroll_command(&cmd).unwrap(), ("iks-enroll-abc", req));
        assert_eq!(parse_enroll_command("rm -rf /").unwrap_err(), BadEnrollCommand::NotEnroll);
        assert_eq!(parse_enroll_command("enroll tok").unwrap_err(), BadEnrollCommand::NoToken);
        assert!(matches!(parse_enroll_command("enroll tok {"), Err(BadEnrollCommand::Request(_))));
    }

    #[test]
    fn lines_are_split_and_bounded() {
        let mut buf = LineBuffer::default();
        assert_eq!(buf.push(b"{\"a\":1}\n{\"b\"").unwrap(), vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(buf.push(b":2}\n\n").unwrap(), vec![b"{\"b\":2}".to_vec(), Vec::new()]);
        assert_eq!(buf.push(&vec![b'x'; MAX_LINE + 1]), Err(LineTooLong));
        // A complete line is bounded too, not only the unfinished one.
        let mut long = vec![b'x'; MAX_LINE + 1];
        long.push(b'\n');
        assert_eq!(LineBuffer::default().push(&long), Err(LineTooLong));
        // Found with the fuzz target: a chunk of newlines made one allocation per line as large as the
        // rest of the chunk. Empty lines now hold no memory at all.
        let lines = LineBuffer::default().push(&vec![b'\n'; 100_000]).unwrap();
        assert_eq!(lines.len(), 100_000);
        assert_eq!(lines.iter().map(Vec::capacity).sum::<usize>(), 0);
        let dial = line(&GatewayMsg::Dial { id: "x".into() }).unwrap();
        assert_eq!(dial, b"{\"type\":\"dial\",\"id\":\"x\"}\n");
    }

    #[test]
    fn agent_messages_on_the_wire() {
        let refused = AgentMsg::DialRefused { id: "x".into(), refusal: DialRefusal::TooManySessions { limit: 64 } };
        assert_eq!(
            line(&refused).unwrap(),
            b"{\"type\":\"dial_refused\",\"id\":\"x\",\"refusal\":{\"why\":\"too_many_sessions\",\"limit\":64}}\n"
        );
        let state =
            AgentState { agent_version: "1".into(), product: None, version: None, remote_access_disabled: true };
        let wire = line(&AgentMsg::State(state.clone())).unwrap();
        assert!(wire.starts_with(b"{\"type\":\"state\",\"agent_version\":\"1\""), "{}", String::from_utf8_lossy(&wire));
        assert_eq!(serde_json::from_slice::<AgentMsg>(&wire).unwrap(), AgentMsg::State(state));
        // An unknown refusal is unreadable rather than taken for another one.
        assert!(
            serde_json::from_str::<AgentMsg>(r#"{"type":"dial_refused","id":"x","refusal":{"why":"tired"}}"#).is_err()
        );
    }
}
