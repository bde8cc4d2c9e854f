//! Boxes reached through their agent, end to end: the real `iks-gateway serve`, the real
//! `iks-agent`, a real sshd as the box — listening on an address only the agent knows —
//! and the stock `ssh`, `scp` and `sftp` as the engineer.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iks_e2e::Gateway;
use iks_e2e::agent_harness::{
    Agent, Engineer, Serve, Sshd, agent_record, customer_with_agent_box, enroll_token, grant, keygen, sha256_file,
    wait_for, wait_online,
};

/// A gateway with its customer, a running box sshd, and an enrolled (not yet running) agent.
struct Setup {
    gw: Gateway,
    engineer: Engineer,
    sshd: Sshd,
    serve: Serve,
    agent: Agent,
}

fn setup() -> Setup {
    let gw = Gateway::sqlite();
    let engineer = customer_with_agent_box(&gw);
    let ca = gw.run(&["ca", "public-key"]).success().to_string();
    let sshd = Sshd::start(&gw.path("box"), &ca);
    let serve = Serve::start(&gw, 0);
    let agent = Agent::new(gw.path("iks-agent"));
    let (token, fingerprint) = enroll_token(&gw, "24h");
    let enrolled = agent.enroll(&serve.address(), &token, Some(&fingerprint), &sshd.address(), &sshd.host_key_pub);
    assert!(enrolled.success().contains("enrolled as box main-gw of ООО Ромашка"), "{}", enrolled.stdout);
    Setup { gw, engineer, sshd, serve, agent }
}

impl Setup {
    fn start_agent(&mut self) {
        self.agent.start();
        wait_for(Duration::from_secs(20), "the agent to connect", || {
            agent_record(&self.gw)["online_since"].as_str().map(|_| ())
        });
    }

    fn exec(&self, command: &str) -> iks_e2e::Run {
        self.engineer.exec(self.serve.port, "T-1001", command)
    }

    /// A session whose output is collected in the background.
    fn spawn(&self, args: &[&str], stdin: Stdio) -> Background {
        let mut child = self
            .engineer
            .ssh(self.serve.port, "T-1001", args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh");
        let out = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    out.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        Background { child, out }
    }

    /// The newest session, as `session list --json` shows it.
    fn last_session(&self) -> serde_json::Value {
        self.gw.json(&["session", "list"])[0].clone()
    }

    /// Why the newest session ended, once the gateway has written it (the client may
    /// exit a moment before the gateway records the end).
    fn last_end_reason(&self) -> String {
        wait_for(Duration::from_secs(10), "the session's end to be recorded", || {
            self.last_session()["end_reason"].as_str().map(str::to_string)
        })
    }

    fn diagnostics(&self) -> String {
        format!("--- gateway log ---\n{}\n--- agent log ---\n{}", self.serve.proc.log_text(), self.agent.log_text())
    }
}

struct Background {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Background {
    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_output(&self, text: &str) {
        wait_for(Duration::from_secs(20), text, || self.output().contains(text).then_some(()));
    }

    /// Waits (at most `limit`) for the ssh client to exit.
    fn wait_exit(&mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        wait_for(limit, "ssh to exit", || self.child.try_wait().ok().flatten());
        start.elapsed()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn enrolment_needs_a_valid_unused_unexpired_token() {
    let gw = Gateway::sqlite();
    customer_with_agent_box(&gw);
    let serve = Serve::start(&gw, 0);
    let host_key = gw.path("box_host_key");
    keygen(&host_key);
    let host_pub = host_key.with_extension("pub");
    let agent = Agent::new(gw.path("iks-agent"));
    let enroll = |agent: &Agent, token: &str, expect: Option<&str>| {
        agent.enroll(&serve.address(), token, expect, "127.0.0.1:22", &host_pub)
    };
    let (token, fingerprint) = enroll_token(&gw, "24h");

    let wrong = enroll(&agent, "iks-enroll-0123", Some(&fingerprint));
    assert_eq!(
        wrong.failure(),
        "iks-agent: error: the gateway refused the enrolment: the enrolment token is not valid (mistyped, or not \
         issued by this gateway)"
    );
    let other_gateway = enroll(&agent, &token, Some("SHA256:8Jj0mH3o5y1m6f3pJ3WJ2nX0Jm5oYl8sQXw5tQ2w7VU"));
    assert!(other_gateway.failure().contains("expected SHA256:8Jj0"), "{}", other_gateway.stderr);
    assert!(!agent.dir.exists(), "a refused enrolment writes nothing on the box");
    assert_eq!(agent_record(&gw), serde_json::Value::Null, "and registers nothing at the gateway");

    let ok = enroll(&agent, &token, Some(&fingerprint));
    let out = ok.success();
    assert!(out.contains("enrolled as box main-gw of ООО Ромашка (INN 7707083893)"), "{out}");
    assert!(out.contains(&format!("gateway host key: {fingerprint} (as expected)")), "{out}");
    let record = agent_record(&gw);
    assert!(record["key_fingerprint"].as_str().unwrap().starts_with("SHA256:"), "{record}");
    assert_eq!(record["agent_version"], env!("CARGO_PKG_VERSION"));
    let pinned = gw.json(&["admin", "box", "show", "main-gw"])["host_key"].as_str().unwrap().to_string();
    let box_key = std::fs::read_to_string(&host_pub).unwrap();
    assert!(box_key.starts_with(&pinned), "the box's sshd host key is pinned at enrolment: {pinned}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&agent.dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);

    let again = enroll(&agent, &token, Some(&fingerprint));
    assert!(again.failure().contains("already holds an enrolment; use --force"), "{}", again.stderr);
    let second = Agent::new(gw.path("second-agent"));
    let reused = enroll(&second, &token, None);
    assert!(reused.failure().contains("the enrolment token was already used at"), "{}", reused.stderr);

    let (short, _) = enroll_token(&gw, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let expired = enroll(&second, &short, None);
    assert!(expired.failure().contains("the enrolment token expired at"), "{}", expired.stderr);
    assert!(!second.dir.exists());
    assert_eq!(agent_record(&gw)["id"], record["id"], "the refusals changed nothing");
    let events = gw.run(&["admin", "box", "show", "main-gw"]);
    assert!(events.success().contains("agent enrolled, never connected") || events.stdout.contains("never connected"));
}

#[test]
fn sessions_run_through_the_agent() {
    let mut s = setup();
    let g1 = grant(&s.gw, None);
    let refused = s.exec("true");
    assert!(
        refused.stderr.contains("access refused: T-1001: box main-gw has no agent connected (its agent is enrolled"),
        "{}",
        refused.stderr
    );
    s.start_agent();
    let list = s.gw.run(&["admin", "box", "list"]);
    assert!(list.success().contains("main-gw") && list.stdout.contains(" online since "), "{}", list.stdout);

    let exec = s.exec("echo tunnel-$((6*7)); id -un");
    assert_eq!(exec.success(), "tunnel-42\nroot\n", "{}", s.diagnostics());

    // A terminal session.
    let mut pty = s.engineer.ssh(s.serve.port, "T-1001", &["-tt"]);
    let mut child = pty.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"echo pty-$((6*7)); exit\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("pty-42"), "{}", s.diagnostics());

    // A few MB each way, by scp and sftp, intact.
    let payload = s.gw.path("payload.bin");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&payload, &bytes).unwrap();
    let want = sha256_file(&payload);
    let remote = format!("/tmp/iks-agent-e2e-{}.bin", std::process::id());
    let scp = std::process::Command::new("scp")
        .args(s.engineer.options(s.serve.port, "-P"))
        .arg(&payload)
        .arg(format!("T-1001@127.0.0.1:{remote}"))
        .output()
        .unwrap();
    assert!(scp.status.success(), "scp: {}\n{}", String::from_utf8_lossy(&scp.stderr), s.diagnostics());
    assert_eq!(s.exec(&format!("sha256sum {remote}")).success().split_whitespace().next(), Some(want.as_str()));
    let fetched = s.gw.path("fetched.bin");
    let batch = s.gw.path("sftp.batch");
    std::fs::write(&batch, format!("get {remote} {}\n", fetched.display())).unwrap();
    let sftp = std::process::Command::new("sftp")
        .args(s.engineer.options(s.serve.port, "-P"))
        .arg("-b")
        .arg(&batch)
        .arg("T-1001@127.0.0.1")
        .output()
        .unwrap();
    assert!(sftp.status.success(), "sftp: {}", String::from_utf8_lossy(&sftp.stderr));
    assert_eq!(sha256_file(&fetched), want, "the file came back intact");
    s.exec(&format!("rm -f {remote}")).success();

    // The customer's view on the box.
    let status = s.agent.run_command(&["status"]);
    assert!(status.success().contains(": connected since"), "{}", status.stdout);
    assert!(status.stdout.contains("box:              main-gw of ООО Ромашка"), "{}", status.stdout);

    // The kill switch: refused while disabled, and the gateway shows it.
    s.agent.run_command(&["disable"]).success();
    let started = Instant::now();
    wait_for(Duration::from_secs(5), "the gateway to see the kill switch", || {
        (agent_record(&s.gw)["remote_access_disabled"] == true).then_some(())
    });
    eprintln!("kill switch reached the gateway in {:?}", started.elapsed());
    let disabled = s.exec("true");
    assert!(
        disabled.stderr.contains("access refused: T-1001: the customer has disabled remote access on box main-gw"),
        "{}",
        disabled.stderr
    );
    assert!(s.gw.run(&["admin", "box", "show", "main-gw"]).success().contains("disabled by the customer on the box"));
    s.agent.run_command(&["enable"]).success();
    wait_for(Duration::from_secs(5), "the gateway to see the switch off", || {
        (agent_record(&s.gw)["remote_access_disabled"] == false).then_some(())
    });
    s.exec("true").success();

    // Disabling ends a live session (which the box's status shows meanwhile).
    let mut live = s.spawn(&["echo started; sleep 60"], Stdio::null());
    live.wait_output("started");
    wait_for(Duration::from_secs(5), "iks-agent status to count the live session", || {
        s.agent.run_command(&["status"]).stdout.contains("live sessions:    1").then_some(())
    });
    s.agent.run_command(&["disable"]).success();
    let took = live.wait_exit(Duration::from_secs(10));
    eprintln!("kill switch ended a live session in {took:?}");
    assert!(live.output().contains("the customer disabled remote access on box main-gw"), "{}", live.output());
    assert_eq!(s.last_end_reason(), "remote access disabled");
    s.agent.run_command(&["enable"]).success();
    wait_for(Duration::from_secs(5), "the switch off", || {
        (agent_record(&s.gw)["remote_access_disabled"] == false).then_some(())
    });

    // Revoking the grant ends the session at once.
    let mut live = s.spawn(&["echo started; sleep 60"], Stdio::null());
    live.wait_output("started");
    s.gw.run(&["access", "revoke", &g1, "--as", "petrov"]).success();
    let took = live.wait_exit(Duration::from_secs(10));
    eprintln!("revocation ended the session in {took:?}");
    assert!(live.output().contains("was revoked by petrov"), "{}", live.output());
    assert_eq!(s.last_end_reason(), "revoked");

    // A short grant ends on time.
    grant(&s.gw, Some("5s"));
    let mut live = s.spawn(&["echo started; sleep 60"], Stdio::null());
    live.wait_output("started");
    live.wait_exit(Duration::from_secs(15));
    assert_eq!(s.last_end_reason(), "grant expired", "{}", live.output());

    // Revoking the agent drops it (and its sessions) at once and refuses its key afterwards.
    grant(&s.gw, None);
    let mut live = s.spawn(&["echo started; sleep 60"], Stdio::null());
    live.wait_output("started");
    let revoked = s.gw.run(&["box", "revoke-agent", "main-gw"]);
    assert!(revoked.success().starts_with("revoked agent A-1 of box main-gw (SHA256:"), "{}", revoked.stdout);
    let took = live.wait_exit(Duration::from_secs(10));
    eprintln!("revoking the agent ended its session in {took:?}");
    assert!(live.output().contains("the agent of this box was revoked by"), "{}", live.output());
    assert_eq!(s.last_end_reason(), "agent disconnected");
    wait_for(Duration::from_secs(10), "the agent to be refused", || {
        s.agent.log_text().contains("refused this agent's key").then_some(())
    });
    let offline = s.exec("true");
    assert!(
        offline.stderr.contains("access refused: T-1001: box main-gw has no agent connected"),
        "{}",
        offline.stderr
    );
    let _ = &s.sshd;
}

#[test]
fn the_agent_survives_a_gateway_restart_and_its_loss_ends_sessions() {
    let mut s = setup();
    grant(&s.gw, None);
    s.start_agent();
    s.exec("true").success();

    let port = s.serve.port;
    s.serve.proc.stop();
    let restarted = Instant::now();
    s.serve = Serve::start(&s.gw, port);
    let listening = restarted.elapsed();
    let first = wait_for(Duration::from_secs(30), "a session after the restart", || {
        let r = s.exec("echo back");
        r.ok.then_some(r)
    });
    assert_eq!(first.stdout, "back\n");
    let took = restarted.elapsed();
    eprintln!("gateway restart: listening after {listening:?}, first session through the agent after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}\n{}", s.diagnostics());

    // The agent dies mid-session: the session ends with that reason, recorded up to then.
    let mut live = s.spawn(&["-tt"], Stdio::piped());
    live.child.stdin.as_mut().unwrap().write_all(b"echo started-$((6*7)); sleep 60\n").unwrap();
    live.wait_output("started-42");
    let session = s.last_session();
    s.agent.proc.as_mut().expect("agent").kill();
    let took = live.wait_exit(Duration::from_secs(15));
    eprintln!("agent killed: the engineer's session ended after {took:?}");
    assert!(live.output().contains("the agent of box main-gw disconnected"), "{}", live.output());
    let id = format!("S-{}", session["id"]);
    assert_eq!(s.last_end_reason(), "agent disconnected");
    let ended = s.gw.json(&["session", "show", &id]);
    assert_eq!(ended["session"]["end_reason"], "agent disconnected", "{ended}");
    assert!(ended["session"]["recording_sha256"].is_string(), "{ended}");
    let transcript = s.gw.run(&["session", "transcript", &id]);
    assert!(transcript.success().contains("started-42"), "{}", transcript.stdout);

    wait_for(Duration::from_secs(10), "the gateway to see the agent gone", || {
        agent_record(&s.gw)["offline_since"].as_str().map(|_| ())
    });
    let offline = s.exec("true");
    assert!(offline.stderr.contains("access refused: T-1001: box main-gw is offline since "), "{}", offline.stderr);
    assert!(offline.stderr.contains(" MSK"), "{}", offline.stderr);
    assert!(s.gw.run(&["admin", "box", "show", "main-gw"]).success().contains(" offline since "));
    let status = s.agent.run_command(&["status"]);
    assert_eq!(status.code, Some(3), "not connected: {}", status.stdout);
    assert!(status.stdout.contains(": not running (last status from "), "{}", status.stdout);
}

/// russh stalls a whole connection when one channel's queue is full; each session has a
/// data connection of its own, so an engineer who stops reading stalls only themselves.
#[test]
fn a_stalled_session_does_not_stall_the_others() {
    let mut s = setup();
    grant(&s.gw, None);
    s.start_agent();
    // An endless stream into a pipe nobody reads: everything behind it fills up and stops.
    let mut stalled = s
        .engineer
        .ssh(s.serve.port, "T-1001", &["cat /dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), "the stalled session to start", || {
        (s.gw.json(&["session", "list", "--live"]).as_array().map(Vec::len) == Some(1)).then_some(())
    });
    // Time for every buffer between sshd and the engineer's pipe to fill up.
    std::thread::sleep(Duration::from_secs(2));
    let mut times = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let r = s.exec(&format!("echo ping-{i}"));
        assert_eq!(r.success(), format!("ping-{i}\n"), "{}", s.diagnostics());
        times.push(t.elapsed());
    }
    eprintln!("while one session on the agent is stalled, new sessions took {times:?}");
    assert!(times.iter().all(|t| *t < Duration::from_secs(5)), "{times:?}");
    assert!(agent_record(&s.gw)["online_since"].is_string(), "the control connection is unaffected");
    assert!(stalled.try_wait().unwrap().is_none(), "the stalled session is still there");
    let _ = stalled.kill();
    let _ = stalled.wait();
    wait_online(&s.gw, Duration::from_secs(5));
}

#[test]
fn the_boxs_session_limit_is_refused_by_name() {
    let mut s = setup();
    grant(&s.gw, None);
    let config = s.gw.path("iks-agent/agent.toml");
    // Enrolment writes the default, so the customer finds the setting in the file.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\nmax_sessions = 64\n"), "{text}");
    std::fs::write(&config, text.replace("\nmax_sessions = 64\n", "\nmax_sessions = 1\n")).unwrap();
    s.start_agent();
    let first = s.spawn(&["echo first-open; sleep 60"], Stdio::null());
    first.wait_output("first-open");
    let t = Instant::now();
    let refused = s.exec("echo second");
    let took = t.elapsed();
    assert!(!refused.ok, "{}", s.diagnostics());
    assert!(
        refused.stderr.contains("box main-gw already has as many sessions as its agent allows (max_sessions = 1"),
        "{}\n{}",
        refused.stderr,
        s.diagnostics()
    );
    // Told at once by the agent, not after the gateway's 15 s dial timeout.
    assert!(took < Duration::from_secs(10), "the refusal took {took:?}");
    drop(first);
    wait_for(Duration::from_secs(10), "the first session to end", || {
        (s.gw.json(&["session", "list", "--live"]).as_array().map(Vec::len) == Some(0)).then_some(())
    });
    assert_eq!(s.exec("echo again").success(), "again\n", "{}", s.diagnostics());
}
