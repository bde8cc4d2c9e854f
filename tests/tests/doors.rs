//! The SSH port's doors, tried as an attacker would, measured on the real gateway process
//! (its open descriptors in /proc/PID/fd and its VmRSS):
//!
//! - silent TCP connections: capped per address and in all, closed at once beyond a cap and
//!   by the handshake timeout otherwise, while others still get in;
//! - a client that starts authenticating and never finishes: closed by the login grace time
//!   (an authenticated session is not);
//! - an "enrolment" login with any key that floods `tcpip-forward` requests instead of
//!   presenting a token: cut off within seconds, memory bounded;
//! - a compromised agent alternating its reported version: its audit events bounded per
//!   window, with one "N further reports … suppressed" summary.
//!
//! Every flood is bounded in count (2,000 connections or requests at most) and in time; the
//! figures are printed, never asserted as timings.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iks_e2e::agent_harness::Agent;
use iks_e2e::process;
use iks_e2e::scenario::{BOX, ORG, Scenario, Setup, TICKET};
use iks_e2e::sshd;
use russh::client;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg};
use tokio::net::TcpSocket;

/// Connections the flood opens in all.
const FLOOD: usize = 2000;
/// The defaults of `[ssh] max_unauthenticated` and `max_unauthenticated_per_address`.
const MAX_UNAUTHENTICATED: usize = 256;
const PER_ADDRESS: usize = 32;

struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// Whether the gateway has closed `stream` (a non-blocking socket): it reads the end
/// after any banner.
fn closed_by_peer(mut stream: &std::net::TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Opens `n` silent connections from `from` and keeps those the gateway still holds a
/// moment later; returns how many it closed at once.
async fn flood(gateway: SocketAddr, from: Ipv4Addr, n: usize, held: &mut Vec<std::net::TcpStream>) -> usize {
    let mut fresh = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((from, 0))).expect("bind a loopback source address");
        let stream = socket.connect(gateway).await.expect("connect");
        // Still non-blocking: read without waiting.
        fresh.push(stream.into_std().expect("std stream"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = fresh.len();
    fresh.retain(|s| !closed_by_peer(s));
    let closed = before - fresh.len();
    held.extend(fresh);
    closed
}

#[test]
fn silent_connections_are_capped_per_address_and_in_all_then_closed_by_the_handshake_timeout() {
    let s = Scenario::ready();
    let pid = s.serve.pid();
    let gateway = SocketAddr::from(([127, 0, 0, 1], s.serve.port()));
    let (fds_before, rss_before) = (open_fds(pid), s.serve.memory_kib("VmRSS").unwrap_or(0));
    let rt = runtime();
    let mut held = Vec::new();
    let started = Instant::now();

    // One address: only PER_ADDRESS are held, the rest closed at once.
    let closed = rt.block_on(flood(gateway, Ipv4Addr::new(127, 0, 0, 1), 200, &mut held));
    assert_eq!(held.len(), PER_ADDRESS, "one address holds at most its cap\n{}", s.diagnostics());
    assert_eq!(closed, 200 - PER_ADDRESS);
    // …and nobody else is locked out by it.
    let other = s.engineer.ssh_timed(TICKET, &["-o", "BindAddress=127.0.0.200"], "echo in", None);
    assert_eq!(other.run.stdout, "in\n", "another address still gets in: {other:?}\n{}", s.diagnostics());

    // Many addresses: the global cap holds.
    let mut sent = 200;
    let mut from = 2;
    while sent < FLOOD {
        let n = (FLOOD - sent).min(100);
        rt.block_on(flood(gateway, Ipv4Addr::new(127, 0, 0, from), n, &mut held));
        sent += n;
        from += 1;
    }
    // What is open now (a slow flood may have outlived the first ones' handshake timeout).
    held.retain(|s| !closed_by_peer(s));
    let fds_flooded = open_fds(pid);
    eprintln!(
        "{sent} silent connections from {} addresses in {:?}: {} held, gateway fds {fds_before} → {fds_flooded}",
        from - 1,
        started.elapsed(),
        held.len()
    );
    assert!(held.len() <= MAX_UNAUTHENTICATED, "{} held beyond the global cap", held.len());
    // Each held connection is its socket and, until it authenticates, a watcher's copy.
    assert!(fds_flooded <= fds_before + 2 * MAX_UNAUTHENTICATED + 16, "fds {fds_before} → {fds_flooded}");

    // The handshake timeout (10 s) closes every one of them.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !held.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        held.retain(|s| !closed_by_peer(s));
    }
    assert!(held.is_empty(), "{} silent connections still open after 40 s\n{}", held.len(), s.diagnostics());
    let drained = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > fds_before + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (fds_after, rss_after) = (open_fds(pid), s.serve.memory_kib("VmRSS").unwrap_or(0));
    eprintln!(
        "all closed by the gateway {drained:?} after the flood began; fds {fds_before} → {fds_flooded} → {fds_after}, \
         VmRSS {rss_before} → {rss_after} KiB"
    );
    assert!(fds_after <= fds_before + 4, "descriptors are given back: {fds_before} → {fds_after}");

    let log = s.serve.log();
    assert!(log.contains("closing an unauthenticated SSH connection at once"), "{}", s.diagnostics());
    assert!(log.contains("no authentication began within 10s (ssh.handshake_timeout)"), "{}", s.diagnostics());
    assert_eq!(s.ssh("echo after").stdout, "after\n", "the door is open again\n{}", s.diagnostics());
}

#[test]
fn a_login_that_never_completes_is_closed_by_the_login_grace_time_an_authenticated_session_is_not() {
    let setup = Setup::default().env("IKS_SSH_HANDSHAKE_TIMEOUT", "2s").env("IKS_SSH_LOGIN_GRACE_TIME", "4s");
    let s = Scenario::with(setup);
    // Outlives the grace time: an authenticated session has no such deadline.
    let long = s.ssh("sleep 6; echo still-here");
    assert_eq!(long.stdout, "still-here\n", "{long:?}\n{}", s.diagnostics());

    let port = s.serve.port();
    let closed_after = runtime().block_on(async move {
        let config = Arc::new(client::Config::default());
        let mut h = client::connect(config, ("127.0.0.1", port), AnyHostKey).await.expect("connect");
        let started = Instant::now();
        // Authentication begins (so the handshake timeout is met), then the client stalls,
        // well below russh's limit of failed attempts.
        let refused = h.authenticate_none(TICKET).await.map(|r| !r.success()).unwrap_or(true);
        assert!(refused, "`none` is never accepted");
        while !h.is_closed() && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        h.is_closed().then(|| started.elapsed())
    });
    eprintln!("a login that never completed was closed after {closed_after:?}");
    assert!(closed_after.is_some(), "the gateway closed it within 30 s\n{}", s.diagnostics());
    assert!(s.serve.log().contains("not authenticated within 4s (ssh.login_grace_time)"), "{}", s.diagnostics());
}

#[test]
fn an_enrolment_login_flooding_forward_requests_is_cut_off_with_memory_bounded() {
    let s = Scenario::ready();
    let port = s.serve.port();
    let rss_before = s.serve.memory_kib("VmRSS").expect("VmRSS");
    let (sent, closed_after) = runtime().block_on(async move {
        let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).expect("key");
        let config = Arc::new(client::Config::default());
        let mut h = client::connect(config, ("127.0.0.1", port), AnyHostKey).await.expect("connect");
        let auth = h
            .authenticate_publickey(iks_proto::ENROLL_USER, PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .expect("authenticate");
        assert!(auth.success(), "anyone may log in to enrol");
        let started = Instant::now();
        let address = "a".repeat(100 * 1024);
        let mut sent = 0;
        while sent < FLOOD && !h.is_closed() && started.elapsed() < Duration::from_secs(60) {
            let _ = h.tcpip_forward(address.clone(), 0).await;
            sent += 1;
        }
        // Whatever was sent, the connection must go: it never presented a token.
        while !h.is_closed() && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (sent, h.is_closed().then(|| started.elapsed()))
    });
    let rss_after = s.serve.memory_kib("VmRSS").expect("VmRSS");
    eprintln!(
        "enrolment login: {sent} tcpip-forward requests of 100 KiB, closed after {closed_after:?}; \
         VmRSS {rss_before} → {rss_after} KiB"
    );
    assert!(closed_after.is_some(), "an enrolment without a token is cut off\n{}", s.diagnostics());
    assert!(rss_after < rss_before + 64 * 1024, "VmRSS {rss_before} → {rss_after} KiB");
}

/// Enrols an agent for a second box (reached through it) and returns its key.
fn enrolled_agent(s: &Scenario, name: &str) -> PrivateKey {
    #[rustfmt::skip]
    s.admin(&[
        "admin", "box", "add", "--org", ORG, "--name", name, "--product", "iks-standard", "--version", "7.2",
        "--login", sshd::USER,
    ]);
    let agent = Agent::enrol(s, name, &s.serve.address());
    russh::keys::load_secret_key(agent.dir.join("agent_ed25519_key"), None).expect("the agent's key")
}

fn state_line(version: &str) -> Vec<u8> {
    let state = iks_proto::AgentState {
        agent_version: "0.1.0".into(),
        product: Some("iks-standard".into()),
        version: Some(version.into()),
        remote_access_disabled: false,
    };
    iks_proto::line(&iks_proto::AgentMsg::State(state)).expect("state line")
}

#[test]
fn a_compromised_agent_alternating_its_version_is_audited_within_its_budget_and_summarised() {
    const REPORTS: usize = 300;
    let setup = Setup::default().env("IKS_SSH_AGENT_AUDIT_WINDOW", "5s").env("IKS_SSH_AGENT_AUDIT_EVENTS", "6");
    let s = Scenario::with(setup);
    assert_ne!(BOX, "agent-gw");
    let key = enrolled_agent(&s, "agent-gw");
    let port = s.serve.port();
    let rt = runtime();
    let (h, _control) = rt.block_on(async {
        let config = Arc::new(client::Config::default());
        let mut h = client::connect(config, ("127.0.0.1", port), AnyHostKey).await.expect("connect");
        let auth = h
            .authenticate_publickey(iks_proto::CONTROL_USER, PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .expect("authenticate");
        assert!(auth.success(), "the agent's key is known");
        let ch = h.channel_open_session().await.expect("control channel");
        ch.exec(true, iks_proto::CONTROL_COMMAND).await.expect("exec");
        let mut lines = state_line("7.2");
        for i in 1..=REPORTS {
            lines.extend(state_line(if i % 2 == 0 { "7.3" } else { "7.2" }));
        }
        ch.data(&lines[..]).await.expect("send the reports");
        (h, ch)
    });
    let count = |action: &str| s.audit(action).len();
    // Every report was read once the box's version reached the last one in memory; give
    // the gateway a moment, then count what reached the audit log within the window.
    std::thread::sleep(Duration::from_secs(2));
    let written = count("agent.connect") + count("agent.report") + count("box.update");
    eprintln!("{REPORTS} alternating reports: {written} agent events in the window's audit log");
    assert!(written <= 2 * 6, "at most the budget (6, each report with its box update): {written}");

    let summary = process::wait_for(
        "the summary event",
        Duration::from_secs(30),
        || s.audit("agent.suppressed").into_iter().next(),
        || s.diagnostics(),
    );
    eprintln!("summary: {summary}");
    let suppressed = summary["suppressed"].as_u64().expect("suppressed");
    assert!(suppressed as usize >= REPORTS - 6, "{summary}");
    assert_eq!(summary["message"], format!("{suppressed} further reports and connections suppressed"));
    // The box's record catches up with the agent's latest report after the window.
    process::wait_for(
        "the latest version stored",
        Duration::from_secs(15),
        || (s.gw.json(&["admin", "box", "show", "agent-gw"])["version"] == "7.3").then_some(()),
        || s.diagnostics(),
    );
    assert!(!h.is_closed(), "the agent stays connected: its reports are throttled, not refused");
}

#[test]
fn an_engineers_refused_forward_requests_leave_a_few_short_notices() {
    let s = Scenario::ready();
    let long = "x".repeat(300);
    let mut extra = vec!["-o".to_string(), "ExitOnForwardFailure=no".to_string()];
    for port in 0..20 {
        extra.extend(["-R".to_string(), format!("{long}:{}:127.0.0.1:1", 10000 + port)]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = s.engineer.ssh_timed(TICKET, &extra, "echo done", None).run;
    assert_eq!(run.stdout, "done\n", "{run:?}\n{}", s.diagnostics());
    let notices: Vec<&str> =
        run.stderr.lines().filter(|l| l.starts_with("[iks-gateway] remote port forwarding")).collect();
    eprintln!("{} notices for 20 refused -R requests: {notices:?}", notices.len());
    assert_eq!(notices.len(), 8, "the first eight are kept: {}", run.stderr);
    assert!(notices.iter().all(|l| l.chars().count() < 160), "each is short: {notices:?}");
}
