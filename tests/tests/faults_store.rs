//! PostgreSQL stops while sessions run. The gateway's store is a private cluster the test
//! stops (`pg_ctl stop -m immediate`) and starts again; the shared server other tests use
//! is never touched.
//!
//! What an engineer and an auditor notice: a new connection is refused with one line,
//! "store unavailable"; a live session goes on through a short outage and ends with
//! reason "store unavailable" after `[access] store_grace` of a long one; once PostgreSQL
//! is back, sessions open again without restarting the gateway, and the audit chain has
//! every start and end, the ones that happened during the outage included. A gateway
//! stopped during an outage leaves its sessions' ends to its next start ("gateway crashed").

use std::process::Child;
use std::time::{Duration, Instant};

use iks_e2e::faults::PrivatePostgres;
use iks_e2e::process;
use iks_e2e::scenario::{Scenario, Setup, TICKET, end_reason};
use iks_e2e::serve::Serve;
use serde_json::Value;

/// How long live sessions outlast the store in this test.
const GRACE: &str = "15s";

/// The audit chain's events (from a JSONL export, which works on any backend).
fn audit_events(s: &Scenario) -> Vec<Value> {
    let run = s.gw.run(&["audit", "export"]);
    run.success()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("export line {l}: {e}")))
        .filter(|v| v["type"] == "event")
        .collect()
}

fn session_of(event: &Value) -> Option<i64> {
    event["session"].as_i64().or_else(|| event["session"].as_str()?.trim_start_matches("S-").parse().ok())
}

/// Whether the ssh child has exited (without waiting).
fn running(child: &mut Child) -> bool {
    child.try_wait().expect("ssh status").is_none()
}

/// A new session runs `echo back`; retried while the gateway's pool reconnects (bounded).
#[track_caller]
fn new_session_works(s: &Scenario, pg: &PrivatePostgres) -> Duration {
    let from = Instant::now();
    process::wait_for(
        "a new session after PostgreSQL returned",
        Duration::from_secs(30),
        || s.ssh("echo back").ok.then_some(()),
        || format!("{}\n--- postgres ---\n{}", s.diagnostics(), pg.log_tail(20)),
    );
    from.elapsed()
}

#[test]
fn a_store_outage_refuses_new_sessions_and_live_ones_end_only_after_the_grace() {
    let pg = PrivatePostgres::start();
    let mut s = Scenario::with(Setup::default().database(&pg.url()).env("IKS_ACCESS_STORE_GRACE", GRACE));
    let mut live = s.engineer.spawn_ssh(TICKET, &[], "for i in $(seq 3000); do echo tick $i; sleep 0.1; done");
    let first = s.wait_live(1)[0]["id"].as_i64().expect("session id");
    process::wait_for(
        "the live session's command to start",
        Duration::from_secs(15),
        || (!s.events(first, "exec").is_empty()).then_some(()),
        || s.diagnostics(),
    );

    // A short outage: new sessions are refused, the live one goes on.
    pg.stop();
    let refused = s.engineer.ssh_timed(TICKET, &[], "true", None);
    let line = refused.run.failure();
    println!("during the outage a new ssh was refused after {:?}: {line}", refused.elapsed);
    assert!(line.contains("store unavailable"), "{line}");
    assert!(line.starts_with("access refused: "), "{line}");
    assert!(running(&mut live), "the live session goes on through a short outage\n{}", s.diagnostics());
    pg.restart();
    let back = new_session_works(&s, &pg);
    println!("after PostgreSQL returned, a new session worked within {back:?}");
    assert!(running(&mut live), "the live session outlived the short outage\n{}", s.diagnostics());

    // A long outage: the live session ends after the grace, and says why.
    pg.stop();
    let down = Instant::now();
    let status = process::wait_deadline(&mut live, Duration::from_secs(60));
    let after = down.elapsed();
    if status.is_none() {
        let _ = live.kill();
        panic!("the live session outlasted the grace by far\n{}", s.diagnostics());
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut live.stderr.take().expect("stderr"), &mut stderr).expect("ssh stderr");
    println!("with the store gone, the live session ended after {after:?} (grace {GRACE})");
    assert!(after >= Duration::from_secs(14), "not before the grace: {after:?}");
    assert!(stderr.contains(&format!("session closed: store unavailable for {GRACE}")), "{stderr}");
    // Its end cannot be written yet; it is once PostgreSQL is back.
    pg.restart();
    let ended = s.wait_ended(first);
    assert_eq!(end_reason(&ended), "store unavailable", "{ended:#}");
    assert!(!s.events(first, "close").is_empty(), "the channel's close event waited for the store too");
    new_session_works(&s, &pg);

    // A gateway stopped while the store is away cannot write the ends: its next start does.
    let mut last = s.engineer.spawn_ssh(TICKET, &[], "sleep 300");
    let id = s.wait_live(1)[0]["id"].as_i64().expect("session id");
    pg.stop();
    let stopping = Instant::now();
    let stopped = s.serve.terminate(Duration::from_secs(40));
    assert!(stopped.is_some(), "the gateway did not stop without its store\n{}", s.diagnostics());
    println!("without its store, the gateway stopped in {:?}", stopping.elapsed());
    assert!(process::wait_deadline(&mut last, Duration::from_secs(20)).is_some(), "ssh ended with the gateway");
    pg.restart();
    s.serve = Serve::start(&s.gw, &[]);
    s.engineer.port = s.serve.port();
    assert!(s.serve.banner().contains("ended 1 session(s) left open by a crash"), "{}", s.serve.banner());
    assert_eq!(end_reason(&s.wait_ended(id)), "gateway crashed");
    new_session_works(&s, &pg);

    // Every session's start and end are in the chain, and the chain verifies.
    let events = audit_events(&s);
    let sessions: Vec<i64> = s.sessions().iter().filter_map(|x| x["id"].as_i64()).collect();
    assert!(sessions.len() >= 5, "two live ones and one after each outage: {sessions:?}");
    for id in &sessions {
        let ended = s.wait_ended(*id);
        for action in ["session.start", "session.end"] {
            let n = events.iter().filter(|e| e["action"] == action && session_of(e) == Some(*id)).count();
            assert_eq!(n, 1, "{action} of S-{id} in the chain ({ended:#})");
        }
    }
    let verified = s.gw.run(&["audit", "verify"]);
    println!("audit verify: {}", verified.success().trim());
}
