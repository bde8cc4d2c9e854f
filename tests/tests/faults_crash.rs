//! The gateway dies with SIGKILL in the middle of ten live sessions and is started again
//! on the same data dir: every engineer's ssh fails, every recording holds what its engineer
//! saw before the crash, the restarted gateway ends each session with reason "gateway
//! crashed", the audit trail still verifies, and new sessions work.

use std::time::{Duration, Instant};

use iks_e2e::engineer::Background;
use iks_e2e::scenario::{Scenario, TICKET, end_reason, read_cast};

const SESSIONS: usize = 10;

/// The numbered lines `tag-1`, `tag-2`, … that `text` holds, as the highest number seen
/// with all before it present (0 when none).
fn lines_through(text: &str, tag: &str) -> usize {
    let seen: std::collections::BTreeSet<usize> =
        text.split(['\r', '\n']).filter_map(|l| l.trim().strip_prefix(tag)?.strip_prefix('-')?.parse().ok()).collect();
    (1..).take_while(|i| seen.contains(i)).last().unwrap_or(0)
}

#[test]
fn a_gateway_killed_mid_session_keeps_the_recordings_and_ends_the_sessions_at_restart() {
    let mut s = Scenario::ready();
    let started = Instant::now();
    // A terminal each (its output goes to the recording), printing numbered lines until killed.
    let mut clients: Vec<Background> = (0..SESSIONS)
        .map(|n| {
            let remote = format!("for i in $(seq 3000); do echo crash{n}-$i; sleep 0.05; done");
            s.engineer.background(TICKET, &["-tt"], &remote)
        })
        .collect();
    s.wait_live(SESSIONS);
    for (n, c) in clients.iter().enumerate() {
        c.wait_output(&format!("crash{n}-20\r\n"), Duration::from_secs(60));
    }
    let live_after = started.elapsed();

    let killed = s.serve.kill();
    println!("{SESSIONS} sessions live after {live_after:?}; gateway killed ({killed})");
    for (n, c) in clients.iter_mut().enumerate() {
        let status = c.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| panic!("ssh {n} outlived the gateway"));
        assert!(!status.success(), "ssh {n} exited {status} although its gateway died");
    }
    // Everything a client got had passed through the gateway, so it was recorded first.
    let seen: Vec<usize> =
        clients.iter().enumerate().map(|(n, c)| lines_through(&c.stdout(), &format!("crash{n}"))).collect();
    assert!(seen.iter().all(|&k| k >= 20), "lines seen before the kill: {seen:?}");

    s.restart(&[]);
    let banner = s.serve.banner();
    assert!(banner.contains(&format!("ended {SESSIONS} session(s) left open by a crash")), "{banner}");
    let sessions = s.sessions();
    assert_eq!(sessions.len(), SESSIONS, "{sessions:#?}");
    let mut recorded = vec![0; SESSIONS];
    for session in &sessions {
        assert_eq!(end_reason(session), "gateway crashed", "{session:#}");
        let (_, events) = read_cast(&s.recording(session));
        let output: String = events.iter().filter(|e| e.code == "o").map(|e| e.data.as_str()).collect();
        let n = (0..SESSIONS).find(|n| output.contains(&format!("crash{n}-1\r\n"))).expect("a client's lines");
        recorded[n] = lines_through(&output, &format!("crash{n}"));
        let id = session["id"].as_i64().unwrap();
        let replay = s.admin(&["session", "replay", &format!("S-{id}"), "--speed", "1000", "--max-wait", "0"]);
        assert!(replay.contains(&format!("crash{n}-{}", seen[n])), "replay of S-{id} lacks line {}", seen[n]);
    }
    println!("lines each client saw: {seen:?}\nlines each recording holds: {recorded:?}");
    for n in 0..SESSIONS {
        assert!(
            recorded[n] >= seen[n],
            "session of client {n}: recorded {} lines, the client saw {}",
            recorded[n],
            seen[n]
        );
    }
    let verified = s.admin(&["audit", "verify"]);
    assert!(verified.starts_with("OK"), "{verified}");
    let after = s.ssh("echo after the crash");
    assert_eq!(after.success(), "after the crash\n");
    println!("whole test: {:?}", started.elapsed());
}
