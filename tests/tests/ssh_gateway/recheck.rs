//! A running session is held to every rule a new connection is checked against: each
//! change below ends a live shell within about a second (the time is printed), with the
//! reason on the engineer's terminal and in the session's end. (Regression: a disabled
//! engineer whose key was removed kept his root shell until the grant ran out, and `-L`
//! forwards kept opening after the box's forwarding was turned off.)

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use iks_e2e::engineer::Background;
use iks_e2e::process;
use iks_e2e::scenario::{ORG, Scenario, TICKET, end_reason};

/// Starts a live shell, makes `change`, and returns (how long the session took to end, what
/// the engineer saw, the session row).
fn ended_by(s: &Scenario, change: &[&str]) -> (Duration, String, serde_json::Value) {
    ended_after(s, || {
        s.admin(change);
    })
}

fn ended_after(s: &Scenario, change: impl FnOnce()) -> (Duration, String, serde_json::Value) {
    let mut shell = s.engineer.background(TICKET, &["-tt"], "echo ready; sleep 300");
    shell.wait_output("ready", Duration::from_secs(20));
    let id = s.wait_live(1)[0]["id"].as_i64().unwrap();
    let started = Instant::now();
    change();
    let row = s.wait_ended(id);
    let took = started.elapsed();
    shell.wait_exit(Duration::from_secs(10));
    (took, format!("{}{}", shell.stdout(), shell.stderr()), row)
}

#[test]
fn disabling_the_engineer_or_removing_his_key_ends_his_live_session() {
    let s = Scenario::ready();
    let (took, seen, row) = ended_by(&s, &["admin", "person", "update", "ivanov", "--disable"]);
    eprintln!("operator disabled → session ended after {took:?}");
    assert_eq!(end_reason(&row), "operator disabled", "{row}");
    assert!(seen.contains("session closed: the account of engineer ivanov was disabled"), "{seen}");
    s.admin(&["admin", "person", "update", "ivanov", "--enable"]);

    let (took, seen, row) = ended_by(&s, &["admin", "key", "remove", "ivanov", "1"]);
    eprintln!("key removed → session ended after {took:?}");
    assert_eq!(end_reason(&row), "operator disabled", "{row}");
    assert!(seen.contains("session closed: the key engineer ivanov signed in with was removed"), "{seen}");
}

#[test]
fn a_category_or_version_change_ends_live_sessions() {
    let s = Scenario::ready();
    let change = ["admin", "org", "update", ORG, "--purchased", "2020-01-01", "--module-paid-until", "none"];
    let (took, seen, row) = ended_by(&s, &change);
    eprintln!("category 3 → session ended after {took:?}");
    assert_eq!(end_reason(&row), "category changed", "{row}");
    assert!(seen.contains("session closed: T-1001: the support module of"), "{seen}");
    s.admin(&["admin", "org", "update", ORG, "--purchased", &process::date_days_ago(30)]);

    // A box's version changes under a session when its agent reports an upgrade (or a
    // downgrade); the admin CLI refuses unsupported versions, so the report is written here.
    let (took, seen, row) = ended_after(&s, || {
        let db = s.gw.data_dir().join("iks-gateway.db");
        let run = process::run(
            std::process::Command::new("sqlite3").arg(&db).arg("UPDATE boxes SET version = '5' WHERE id = 1"),
        );
        assert!(run.ok, "{run:?}");
    });
    eprintln!("unsupported version → session ended after {took:?}");
    assert_eq!(end_reason(&row), "version unsupported", "{row}");
    assert!(seen.contains("session closed: T-1001: IKS Standard 5 is not a supported version"), "{seen}");
}

#[test]
fn turning_forwarding_off_closes_open_forwards_and_refuses_new_ones() {
    let s = Scenario::ready();
    s.admin(&["admin", "box", "update", "1", "--allow-forwarding", "true"]);
    let local = process::free_port();
    let spec = format!("127.0.0.1:{local}:127.0.0.1:{}", s.sshd.port());
    let mut engineer = s.engineer.clone();
    engineer.log_level = "INFO"; // OpenSSH reports a refused channel at INFO
    let tunnel: Background = engineer.background(TICKET, &["-tt", "-L", &spec], "echo ready; sleep 300");
    tunnel.wait_output("ready", Duration::from_secs(20));
    let forward = process::wait_for(
        "the local forward",
        Duration::from_secs(15),
        || TcpStream::connect(("127.0.0.1", local)).ok(),
        || s.diagnostics(),
    );
    forward.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(forward);
    let mut banner = String::new();
    reader.read_line(&mut banner).expect("the box's banner through the forward");
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner:?}");

    let started = Instant::now();
    s.admin(&["admin", "box", "update", "1", "--allow-forwarding", "false"]);
    let mut rest = Vec::new();
    let closed = std::io::Read::read_to_end(&mut reader, &mut rest);
    eprintln!("forwarding turned off → the open forward closed after {:?}", started.elapsed());
    assert!(closed.is_ok(), "the open forward is closed, not left hanging: {closed:?}");
    let fresh = TcpStream::connect(("127.0.0.1", local)).expect("ssh still listens");
    fresh.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut &fresh, &mut got);
    assert!(got.is_empty(), "a new forward is refused: {:?}", String::from_utf8_lossy(&got));
    // The shell itself goes on, and says why.
    assert_eq!(s.live_sessions().len(), 1);
    process::wait_for(
        "the notice",
        Duration::from_secs(10),
        || tunnel.stderr().contains("port forwarding on box main-gw was turned off").then_some(()),
        || format!("{}\n{}", tunnel.stderr(), s.diagnostics()),
    );
}

/// A session the store holds as ended (another node took over, someone ended it by hand)
/// has no record of being allowed any more: it ends here too (fail closed).
#[test]
fn a_session_the_store_holds_as_ended_ends() {
    let s = Scenario::ready();
    let mut shell = s.engineer.background(TICKET, &["-tt"], "echo ready; sleep 300");
    shell.wait_output("ready", Duration::from_secs(20));
    let id = s.wait_live(1)[0]["id"].as_i64().unwrap();
    let db = s.gw.data_dir().join("iks-gateway.db");
    let sql =
        format!("UPDATE sessions SET ended_at = '2026-01-01T00:00:00.000000Z', end_reason = 'killed' WHERE id = {id}");
    let run = process::run(std::process::Command::new("sqlite3").arg(&db).arg(sql));
    assert!(run.ok, "{run:?}");
    let started = Instant::now();
    let exited = shell.wait_exit(Duration::from_secs(10));
    eprintln!("session ended in the store → connection closed after {:?}", started.elapsed());
    assert!(exited.is_some(), "the engineer's connection was closed\n{}", s.diagnostics());
    let seen = format!("{}{}", shell.stdout(), shell.stderr());
    assert!(seen.contains(&format!("session closed: the store holds session S-{id} as ended")), "{seen}");
}
