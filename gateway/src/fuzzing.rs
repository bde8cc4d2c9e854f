//! The bodies of the fuzz targets, one function per parser of untrusted input, kept here so
//! that the libFuzzer targets in `fuzz/` and the corpus test (`tests/fuzz_corpus.rs`, run by
//! `cargo test` on stable) execute the same code. Each takes arbitrary bytes, drives the
//! parser the way the gateway does, and panics when a property beyond "no panic" breaks:
//! bounded buffers for the stream parsers, round trips where a parsed value is written back.
//!
//! Nothing in the gateway calls these; they exist for `fuzz/` (see `fuzz/README.md`).

use crate::recording::transfer::{FileOp, MAX_PATH_CHARS, ScpTracker, SftpTracker, scp, sftp};

/// A target's body: arbitrary bytes in, a panic when a property breaks.
pub type Body = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("user_name", user_name),
    ("agent_control", agent_control),
    ("sftp", sftp),
    ("scp", scp),
    ("cast", cast),
    ("config", config),
    ("api_body", api_body),
];

/// Which way a chunk crossed the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the engineer's client to the box.
    ToBox,
    /// From the box back to the engineer.
    FromBox,
}

/// Splits fuzz input into the chunks a channel would deliver: each chunk is a direction
/// byte (low bit 0 = to the box, 1 = from it), a big-endian `u16` length and that many
/// bytes (fewer at the end of the input). `fuzz/README.md` shows how to write seeds.
pub fn chunks(mut data: &[u8]) -> impl Iterator<Item = (Direction, &[u8])> {
    std::iter::from_fn(move || {
        let (&[dir, hi, lo], rest) = data.split_first_chunk::<3>()?;
        let (chunk, rest) = rest.split_at(usize::from(u16::from_be_bytes([hi, lo])).min(rest.len()));
        data = rest;
        Some((if dir & 1 == 0 { Direction::ToBox } else { Direction::FromBox }, chunk))
    })
}

/// An SSH user name as the gateway's front door sees it: an agent's, an engineer's target,
/// never both; whatever parses prints back to a name that parses the same. Also the exec
/// command of an enrolment connection, read back after being written.
pub fn user_name(data: &[u8]) {
    let Ok(user) = std::str::from_utf8(data) else { return };
    let agent = iks_proto::AgentUser::parse(user);
    if let Some(a) = &agent {
        assert_eq!(a.user_name(), user, "an agent user name prints back as given");
    }
    if let Ok(target) = iks_domain::target::Target::parse(user) {
        assert!(agent.is_none(), "{user:?} is both an agent's and an engineer's user name");
        let printed = target.to_string();
        assert_eq!(
            iks_domain::target::Target::parse(&printed).as_ref(),
            Ok(&target),
            "{user:?} printed as {printed:?}"
        );
    }
    if let Ok((token, request)) = iks_proto::parse_enroll_command(user) {
        let command = iks_proto::enroll_command(token, &request).expect("a parsed request serializes");
        assert_eq!(iks_proto::parse_enroll_command(&command), Ok((token, request)), "{command:?}");
    }
}

/// The agent's control channel at the gateway (state lines) and at the agent (the
/// gateway's messages): chunks of newline-delimited JSON, split with a bounded buffer.
pub fn agent_control(data: &[u8]) {
    let mut gateway_side = iks_proto::LineBuffer::default();
    let mut agent_side = iks_proto::LineBuffer::default();
    for (dir, chunk) in chunks(data) {
        let (buffer, gateway_reads) = match dir {
            Direction::ToBox => (&mut agent_side, false),
            Direction::FromBox => (&mut gateway_side, true),
        };
        let Ok(lines) = buffer.push(chunk) else { continue };
        for line in lines {
            assert!(line.len() <= iks_proto::MAX_LINE);
            if gateway_reads {
                let _ = crate::ssh::agent::parse_message(&line);
            } else {
                let _ = serde_json::from_slice::<iks_proto::GatewayMsg>(&line);
            }
        }
    }
}

/// An SFTP channel, fed in both directions as the bridge feeds the recording tap.
pub fn sftp(data: &[u8]) {
    let mut t = SftpTracker::new();
    let mut evictions = 0;
    for (dir, chunk) in chunks(data) {
        let was_given_up = t.gave_up();
        let ops = match dir {
            Direction::ToBox => t.client_bytes(chunk),
            Direction::FromBox => t.server_bytes(chunk),
        };
        assert!(!was_given_up || ops.is_empty(), "a tracker that gave up reports nothing more");
        check_ops(&ops);
        assert!(t.buffered() <= 2 * sftp::PREFIX_CAP, "sftp buffers {} bytes", t.buffered());
        assert!(t.evictions() >= evictions);
        evictions = t.evictions();
    }
    check_ops(&t.finish());
    assert!(t.finish().is_empty(), "finish reports each handle once");
}

/// A legacy scp exec channel: the first line is the exec command; the chunks after it are
/// fed as the recording tap feeds them (only the side that sends files is parsed).
pub fn scp(data: &[u8]) {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else { return };
    let (command, streams) = data.split_at(newline);
    let Ok(command) = std::str::from_utf8(command) else { return };
    let Some(mut t) = ScpTracker::for_command(command) else { return };
    let sender = match t.mode() {
        scp::ScpMode::Sink => Direction::ToBox,
        scp::ScpMode::Source => Direction::FromBox,
    };
    for (_, chunk) in chunks(streams.get(1..).unwrap_or_default()).filter(|(d, _)| *d == sender) {
        let ops = t.sender_bytes(chunk);
        check_ops(&ops);
        assert!(t.buffered() <= scp::MAX_BUFFERED, "scp buffers {} bytes", t.buffered());
    }
    check_ops(&t.finish());
}

/// What both transfer trackers promise about the events they report.
fn check_ops(ops: &[FileOp]) {
    let capped = |p: &str| assert!(p.chars().count() <= MAX_PATH_CHARS, "a path of {} chars", p.chars().count());
    for op in ops {
        match op {
            FileOp::Upload { path, sha256, .. } | FileOp::Download { path, sha256, .. } => {
                capped(path);
                assert!(sha256.as_ref().is_none_or(|h| h.len() == 64));
            }
            FileOp::Remove { path }
            | FileOp::Mkdir { path }
            | FileOp::Rmdir { path }
            | FileOp::Setstat { path }
            | FileOp::List { path }
            | FileOp::Failed { path, .. } => capped(path),
            FileOp::Rename { from, to } => [from, to].into_iter().for_each(|p| capped(p)),
            FileOp::Symlink { link, target } => [link, target].into_iter().for_each(|p| capped(p)),
        }
    }
}

/// A recording as `session replay`, `session transcript` and the API read it back.
pub fn cast(data: &[u8]) {
    if let Ok(cast) = crate::recording::cast::read(data) {
        let text = crate::recording::transcript::transcript(&cast);
        assert!(text.ends_with('\n'));
    }
}

/// A configuration file, then `IKS_*` variables: the text up to the first NUL is the file,
/// the rest `NAME=value` pairs separated by NULs. What loads prints (`config show`) as a
/// file that loads to the same configuration.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let env = env.split('\0').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string()));
    let Ok(config) = crate::config::Config::parse(file, "fuzz.toml", env) else { return };
    let shown = toml::to_string_pretty(&config).expect("a loaded configuration prints");
    match crate::config::Config::parse(&shown, "shown.toml", []) {
        Ok(again) => assert_eq!(again, config, "`config show` prints\n{shown}"),
        Err(e) => panic!("`config show` prints a file that does not load ({e}):\n{shown}"),
    }
}

/// A helpdesk API request: the first byte picks the endpoint, the rest is its body (or, for
/// the path parameters, the ID), read and checked as the handler does before the store.
pub fn api_body(data: &[u8]) {
    use crate::api::json::parse;
    use crate::api::tickets::{CloseRequest, CommentRequest, EscalateRequest, OpenRequest};

    let Some((&which, body)) = data.split_first() else { return };
    let outcome = match which % 6 {
        0 => parse::<OpenRequest>(body).map(|req| {
            if iks_domain::rules::Inn::parse(req.inn()).is_ok() {
                let _ =
                    crate::tickets::refusal(&crate::config::Config::default(), &req.filing(iks_domain::ids::OrgId(1)));
            }
        }),
        1 => parse::<CommentRequest>(body).map(|req| {
            let _ = req.comment().validate();
        }),
        2 => parse::<EscalateRequest>(body).map(drop),
        3 => parse::<CloseRequest>(body).map(drop),
        4 => return id_round_trip::<iks_domain::ids::TicketId>(body),
        _ => return id_round_trip::<iks_domain::ids::SessionId>(body),
    };
    if let Err(e) = outcome {
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.code == "bad_json" || e.field.is_some(), "{} names no field: {}", e.code, e.message);
    }
}

/// A path ID (`T-1042` or `1042`) prints back as one that parses the same.
fn id_round_trip<T>(text: &[u8])
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
{
    let Ok(text) = std::str::from_utf8(text) else { return };
    if let Ok(id) = text.parse::<T>() {
        assert_eq!(id.to_string().parse::<T>().ok().as_ref(), Some(&id), "{text:?}");
    }
}
