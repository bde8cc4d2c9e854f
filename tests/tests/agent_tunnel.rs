//! Boxes reached through their agent, end to end: the real `iks-gateway serve`, the real
//! `iks-agent`, a real sshd as the box — listening on an address only the agent knows —
//! and the stock `ssh`, `scp` and `sftp` as the engineer.

use std::time::{Duration, Instant};

use iks_e2e::agent_harness::{Agent, agent_record, enroll_token, wait_online};
use iks_e2e::engineer::{Background, Key};
use iks_e2e::process;
use iks_e2e::scenario::{BOX, Scenario, Setup, TICKET};
use iks_e2e::sshd;

/// The agent's SSH handshake, control channel and first report on a loaded 2-core machine.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// A scenario whose box main-gw is reached only through its agent, enrolled (not yet
/// running); grant G-1 approved.
struct Tunnel {
    s: Scenario,
    agent: Agent,
}

fn tunnel() -> Tunnel {
    let s = Scenario::with(Setup::default().through_agent());
    let agent = Agent::enrol(&s, BOX, &s.serve.address());
    Tunnel { s, agent }
}

impl Tunnel {
    fn start_agent(&mut self) {
        self.agent.start();
        wait_online(&self.s.gw, Duration::from_secs(20));
    }

    /// The newest session, as `session list --json` shows it.
    fn last_session(&self) -> serde_json::Value {
        self.s.sessions().first().cloned().unwrap_or_else(|| panic!("no session\n{}", self.diagnostics()))
    }

    /// Why the newest session ended, once the gateway has written it (the client may
    /// exit a moment before the gateway records the end).
    #[track_caller]
    fn last_end_reason(&self) -> String {
        process::wait_for(
            "the session's end to be recorded",
            Duration::from_secs(10),
            || self.last_session()["end_reason"].as_str().map(str::to_string),
            || self.diagnostics(),
        )
    }

    fn diagnostics(&self) -> String {
        format!("{}\n--- agent log ---\n{}", self.s.diagnostics(), process::tail(&self.agent.log_text(), 60))
    }
}

/// Waits (at most `limit`) for a background session to end; returns how long it took.
#[track_caller]
fn ended_within(live: &mut Background, limit: Duration) -> Duration {
    let started = Instant::now();
    live.wait_exit(limit).unwrap_or_else(|| panic!("the session still runs after {limit:?}: {}", said(live)));
    started.elapsed()
}

/// Everything the engineer's ssh printed, both streams.
fn said(live: &Background) -> String {
    format!("{}{}", live.stdout(), live.stderr())
}

/// A live session of ivanov's, started and printing.
fn live_session(t: &Tunnel) -> Background {
    let live = t.s.engineer.background(TICKET, &[], "echo started; sleep 60");
    live.wait_output("started", Duration::from_secs(20));
    live
}

/// How long after a gateway restart began the agent is connected again, `down` being how
/// long the gateway took to listen again. The agent's backoff (agent/src/run.rs) starts at
/// 1 s once a connection is lost and doubles, each wait drawn from [½, 1½) of its step; by
/// the time the gateway is back its waits so far sum to at least half its current step
/// less ½ s, so that step is at most 2 × down + 1 s and the attempt after it comes within
/// 1½ of it.
fn reconnect_bound(down: Duration) -> Duration {
    down + (down * 2 + Duration::from_secs(1)).mul_f64(1.5) + HANDSHAKE
}

#[test]
fn enrolment_needs_a_valid_unused_unexpired_token() {
    let s = Scenario::with(Setup::default().through_agent());
    let host_pub = Key::generate(&s.gw.path("box-key"), "host_key").public();
    let agent = Agent::new(s.gw.path("iks-agent"));
    let enroll = |agent: &Agent, token: &str, expect: Option<&str>| {
        agent.enroll(&s.serve.address(), token, expect, "127.0.0.1:22", &host_pub)
    };
    let (token, fingerprint) = enroll_token(&s.gw, BOX, "24h");

    let wrong = enroll(&agent, "iks-enroll-0123", Some(&fingerprint));
    assert_eq!(
        wrong.failure(),
        "iks-agent: error: the gateway refused the enrolment: the enrolment token is not valid (mistyped, or not \
         issued by this gateway)"
    );
    let other_gateway = enroll(&agent, &token, Some("SHA256:8Jj0mH3o5y1m6f3pJ3WJ2nX0Jm5oYl8sQXw5tQ2w7VU"));
    assert!(other_gateway.failure().contains("expected SHA256:8Jj0"), "{}", other_gateway.stderr);
    assert!(!agent.dir.exists(), "a refused enrolment writes nothing on the box");
    assert_eq!(agent_record(&s.gw), serde_json::Value::Null, "and registers nothing at the gateway");

    let ok = enroll(&agent, &token, Some(&fingerprint));
    let out = ok.success();
    assert!(out.contains("enrolled as box main-gw of ООО Ромашка (INN 7707083893)"), "{out}");
    assert!(out.contains(&format!("gateway host key: {fingerprint} (as expected)")), "{out}");
    let record = agent_record(&s.gw);
    assert!(record["key_fingerprint"].as_str().unwrap().starts_with("SHA256:"), "{record}");
    assert_eq!(record["agent_version"], env!("CARGO_PKG_VERSION"));
    let pinned = s.gw.json(&["admin", "box", "show", BOX])["host_key"].as_str().unwrap().to_string();
    let box_key = std::fs::read_to_string(&host_pub).unwrap();
    assert!(box_key.starts_with(&pinned), "the box's sshd host key is pinned at enrolment: {pinned}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&agent.dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);

    let again = enroll(&agent, &token, Some(&fingerprint));
    assert!(again.failure().contains("already holds an enrolment; use --force"), "{}", again.stderr);
    let second = Agent::new(s.gw.path("second-agent"));
    let reused = enroll(&second, &token, None);
    assert!(reused.failure().contains("the enrolment token was already used at"), "{}", reused.stderr);

    let (short, _) = enroll_token(&s.gw, BOX, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let expired = enroll(&second, &short, None);
    assert!(expired.failure().contains("the enrolment token expired at"), "{}", expired.stderr);
    assert!(!second.dir.exists());
    assert_eq!(agent_record(&s.gw)["id"], record["id"], "the refusals changed nothing");
    let events = s.gw.run(&["admin", "box", "show", BOX]);
    assert!(events.success().contains("agent enrolled, never connected") || events.stdout.contains("never connected"));
}

#[test]
fn sessions_run_through_the_agent() {
    let mut t = tunnel();
    let refused = t.s.ssh("true");
    assert!(
        refused.stderr.contains("access refused: T-1001: box main-gw has no agent connected (its agent is enrolled"),
        "{}",
        refused.stderr
    );
    t.start_agent();
    let list = t.s.gw.run(&["admin", "box", "list"]);
    assert!(list.success().contains("main-gw") && list.stdout.contains(" online since "), "{}", list.stdout);

    let exec = t.s.ssh("echo tunnel-$((6*7)); id -un");
    assert_eq!(exec.success(), format!("tunnel-42\n{}\n", sshd::USER), "{}", t.diagnostics());

    // A terminal session.
    let pty = t.s.engineer.ssh_timed(TICKET, &["-tt"], "", Some(b"echo pty-$((6*7)); exit\n".to_vec())).run;
    assert!(pty.stdout.contains("pty-42"), "{pty:?}\n{}", t.diagnostics());

    // A few MB each way, by scp and sftp, intact.
    let payload = t.s.gw.path("payload.bin");
    process::random_file(&payload, 4 * 1024 * 1024);
    let want = process::sha256_file(&payload);
    let remote = t.s.sshd.files().join("payload.bin");
    let at_box = format!("{TICKET}@127.0.0.1:{}", remote.display());
    let scp = t.s.engineer.scp(&[&payload.display().to_string(), &at_box], process::TIMEOUT);
    assert!(scp.run.ok, "scp: {:?}\n{}", scp.run, t.diagnostics());
    let hashed = t.s.ssh(&format!("sha256sum {}", remote.display()));
    assert_eq!(hashed.success().split_whitespace().next(), Some(want.as_str()));
    let fetched = t.s.gw.path("fetched.bin");
    let batch = format!("get {} {}\n", remote.display(), fetched.display());
    let sftp = t.s.engineer.sftp_batch(TICKET, &batch, process::TIMEOUT);
    assert!(sftp.run.ok, "sftp: {:?}", sftp.run);
    assert_eq!(process::sha256_file(&fetched), want, "the file came back intact");

    // The customer's view on the box.
    let status = t.agent.run(&["status"]);
    assert!(status.success().contains(": connected since"), "{}", status.stdout);
    assert!(status.stdout.contains("box:              main-gw of ООО Ромашка"), "{}", status.stdout);

    // The kill switch: refused while disabled, and the gateway shows it.
    let switched = |disabled: bool, what: &str| {
        let started = Instant::now();
        process::wait_for(
            what,
            Duration::from_secs(5),
            || (agent_record(&t.s.gw)["remote_access_disabled"] == disabled).then_some(()),
            || t.diagnostics(),
        );
        started.elapsed()
    };
    t.agent.run(&["disable"]).success();
    let took = switched(true, "the gateway to see the kill switch");
    eprintln!("kill switch reached the gateway in {took:?}");
    let disabled = t.s.ssh("true");
    assert!(
        disabled.stderr.contains("access refused: T-1001: the customer has disabled remote access on box main-gw"),
        "{}",
        disabled.stderr
    );
    assert!(t.s.gw.run(&["admin", "box", "show", BOX]).success().contains("disabled by the customer on the box"));
    t.agent.run(&["enable"]).success();
    switched(false, "the gateway to see the switch off");
    t.s.ssh("true").success();

    // Disabling ends a live session (which the box's status shows meanwhile).
    let mut live = live_session(&t);
    process::wait_for(
        "iks-agent status to count the live session",
        Duration::from_secs(5),
        || t.agent.run(&["status"]).stdout.contains("live sessions:    1").then_some(()),
        || t.diagnostics(),
    );
    t.agent.run(&["disable"]).success();
    let took = ended_within(&mut live, Duration::from_secs(10));
    eprintln!("kill switch ended a live session in {took:?}");
    assert!(said(&live).contains("the customer disabled remote access on box main-gw"), "{}", said(&live));
    assert_eq!(t.last_end_reason(), "remote access disabled");
    t.agent.run(&["enable"]).success();
    switched(false, "the switch off");

    // Revoking the grant ends the session at once.
    let mut live = live_session(&t);
    t.s.admin(&["access", "revoke", "G-1", "--as", "petrov"]);
    let took = ended_within(&mut live, Duration::from_secs(10));
    eprintln!("revocation ended the session in {took:?}");
    assert!(said(&live).contains("was revoked by petrov"), "{}", said(&live));
    assert_eq!(t.last_end_reason(), "revoked");

    // A short grant ends on time.
    t.s.grant(TICKET, "ivanov", &["--until", "5s"]);
    let mut live = live_session(&t);
    ended_within(&mut live, Duration::from_secs(15));
    assert_eq!(t.last_end_reason(), "grant expired", "{}", said(&live));

    // Revoking the agent drops it (and its sessions) at once and refuses its key afterwards.
    t.s.grant(TICKET, "ivanov", &[]);
    let mut live = live_session(&t);
    let revoked = t.s.admin(&["box", "revoke-agent", BOX]);
    assert!(revoked.starts_with("revoked agent A-1 of box main-gw (SHA256:"), "{revoked}");
    let took = ended_within(&mut live, Duration::from_secs(10));
    eprintln!("revoking the agent ended its session in {took:?}");
    assert!(said(&live).contains("the agent of this box was revoked by"), "{}", said(&live));
    assert_eq!(t.last_end_reason(), "agent disconnected");
    process::wait_for(
        "the agent to be refused",
        Duration::from_secs(10),
        || t.agent.log_text().contains("refused this agent's key").then_some(()),
        || t.diagnostics(),
    );
    let offline = t.s.ssh("true");
    assert!(
        offline.stderr.contains("access refused: T-1001: box main-gw has no agent connected"),
        "{}",
        offline.stderr
    );
}

#[test]
fn the_agent_survives_a_gateway_restart_and_its_loss_ends_sessions() {
    let mut t = tunnel();
    t.start_agent();
    t.s.ssh("true").success();

    // The agent reconnects by itself, as soon as its backoff allows: every session refused
    // after that bound is a failure, however slowly the machine restarted the gateway.
    let stopping = Instant::now();
    t.s.restart(&[]);
    let down = stopping.elapsed();
    let bound = reconnect_bound(down);
    let mut refused_at = Vec::new();
    let first = process::wait_for(
        "a session after the restart",
        bound + Duration::from_secs(60),
        || {
            let at = stopping.elapsed();
            let run = t.s.ssh("echo back");
            if !run.ok {
                refused_at.push(at);
            }
            run.ok.then_some(run)
        },
        || t.diagnostics(),
    );
    assert_eq!(first.stdout, "back\n");
    let took = stopping.elapsed();
    eprintln!(
        "gateway restart: listening again {down:?} after the stop, first session through the agent after {took:?} \
         ({} refused before it; the agent's backoff brings it back within {bound:?})",
        refused_at.len()
    );
    let late: Vec<_> = refused_at.iter().filter(|at| **at > bound).collect();
    assert!(late.is_empty(), "sessions started {late:?} after the stop were refused\n{}", t.diagnostics());

    // The agent dies mid-session: the session ends with that reason, recorded up to then.
    let mut live = t.s.engineer.background_shell(TICKET);
    live.type_line("echo started-$((6*7)); sleep 60");
    live.wait_output("started-42", Duration::from_secs(20));
    let session = t.last_session();
    t.agent.kill();
    let took = ended_within(&mut live, Duration::from_secs(15));
    eprintln!("agent killed: the engineer's session ended after {took:?}");
    assert!(said(&live).contains("the agent of box main-gw disconnected"), "{}", said(&live));
    let id = format!("S-{}", session["id"]);
    assert_eq!(t.last_end_reason(), "agent disconnected");
    let ended = t.s.gw.json(&["session", "show", &id]);
    assert_eq!(ended["session"]["end_reason"], "agent disconnected", "{ended}");
    assert!(ended["session"]["recording_sha256"].is_string(), "{ended}");
    let transcript = t.s.admin(&["session", "transcript", &id]);
    assert!(transcript.contains("started-42"), "{transcript}");

    process::wait_for(
        "the gateway to see the agent gone",
        Duration::from_secs(10),
        || agent_record(&t.s.gw)["offline_since"].as_str().map(|_| ()),
        || t.diagnostics(),
    );
    let offline = t.s.ssh("true");
    assert!(offline.stderr.contains("access refused: T-1001: box main-gw is offline since "), "{}", offline.stderr);
    assert!(offline.stderr.contains(" MSK"), "{}", offline.stderr);
    assert!(t.s.admin(&["admin", "box", "show", BOX]).contains(" offline since "));
    let status = t.agent.run(&["status"]);
    assert_eq!(status.code, Some(3), "not connected: {}", status.stdout);
    assert!(status.stdout.contains(": not running (last status from "), "{}", status.stdout);
}

/// russh stalls a whole connection when one channel's queue is full; each session has a
/// data connection of its own, so an engineer who stops reading stalls only themselves.
#[test]
fn a_stalled_session_does_not_stall_the_others() {
    let mut t = tunnel();
    t.start_agent();
    // An endless stream into a pipe nobody reads: everything behind it fills up and stops.
    let mut stalled = t.s.engineer.spawn_ssh(TICKET, &[], "cat /dev/zero");
    t.s.wait_live(1);
    // Time for every buffer between sshd and the engineer's pipe to fill up.
    std::thread::sleep(Duration::from_secs(2));
    // A session behind the stalled one would hang for good: each must finish, however slowly.
    let mut times = Vec::new();
    for i in 0..5 {
        let run = t.s.engineer.ssh_timed(TICKET, &[], &format!("echo ping-{i}"), None);
        assert_eq!(run.run.success(), format!("ping-{i}\n"), "{}", t.diagnostics());
        times.push(run.elapsed);
    }
    eprintln!("while one session on the agent is stalled, new sessions took {times:?}");
    assert!(agent_record(&t.s.gw)["online_since"].is_string(), "the control connection is unaffected");
    assert!(stalled.try_wait().unwrap().is_none(), "the stalled session is still there");
    let _ = stalled.kill();
    let _ = stalled.wait();
    wait_online(&t.s.gw, Duration::from_secs(5));
}

#[test]
fn the_boxs_session_limit_is_refused_by_name() {
    let mut t = tunnel();
    let config = t.agent.dir.join("agent.toml");
    // Enrolment writes the default, so the customer finds the setting in the file.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\nmax_sessions = 64\n"), "{text}");
    std::fs::write(&config, text.replace("\nmax_sessions = 64\n", "\nmax_sessions = 1\n")).unwrap();
    t.start_agent();
    let first = t.s.engineer.background(TICKET, &[], "echo first-open; sleep 60");
    first.wait_output("first-open", Duration::from_secs(20));
    let refused = t.s.engineer.ssh_timed(TICKET, &[], "echo second", None);
    assert!(!refused.run.ok, "{}", t.diagnostics());
    assert!(
        refused.run.stderr.contains("box main-gw already has as many sessions as its agent allows (max_sessions = 1"),
        "{}\n{}",
        refused.run.stderr,
        t.diagnostics()
    );
    // Told at once by the agent, not after the gateway's 15 s dial timeout.
    assert!(refused.elapsed < Duration::from_secs(15), "the refusal took {:?}", refused.elapsed);
    drop(first);
    process::wait_for(
        "the first session to end",
        Duration::from_secs(10),
        || t.s.live_sessions().is_empty().then_some(()),
        || t.diagnostics(),
    );
    assert_eq!(t.s.ssh("echo again").success(), "again\n", "{}", t.diagnostics());
}
