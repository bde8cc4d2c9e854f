//! Commands without a terminal: exit statuses, stdout and stderr kept apart, signals,
//! stdin streamed to the box, and many sessions at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use iks_e2e::process;
use iks_e2e::scenario::{Scenario, TICKET, end_reason};
use serde_json::Value;

#[test]
fn exec_reports_exit_status_and_keeps_stdout_and_stderr_apart() {
    let s = Scenario::ready();
    let ok = s.ssh("exit 0");
    assert_eq!((ok.code, ok.stdout.as_str(), ok.stderr.as_str()), (Some(0), "", ""), "{ok:?}");

    let three = s.ssh("echo out; echo err >&2; exit 3");
    assert_eq!(three.code, Some(3), "{three:?}");
    assert_eq!(three.stdout, "out\n", "stdout carries only stdout");
    assert_eq!(three.stderr, "err\n", "stderr carries only stderr");

    // The box's shell dies of SIGTERM; sshd sends exit-signal, and OpenSSH's client
    // reports a remote signal death as exit status 255 (as it does talking to sshd directly).
    let killed = s.ssh("kill -TERM $$");
    assert_eq!(killed.code, Some(255), "{killed:?}");

    let sessions = s.sessions();
    assert_eq!(sessions.len(), 3, "one session per connection: {sessions:#?}");
    for (session, command) in sessions.iter().rev().zip(["exit 0", "echo out; echo err >&2; exit 3", "kill -TERM $$"]) {
        let id = session["id"].as_i64().unwrap();
        let ended = s.wait_ended(id);
        assert_eq!(end_reason(&ended), "client exit", "{ended:#}");
        let exec = s.events(id, "exec");
        assert_eq!(exec.len(), 1, "S-{id}: {exec:#?}");
        assert_eq!(exec[0]["details"]["command"], command);
        assert_eq!(exec[0]["details"]["pty"], false);
    }
}

/// Every exec channel's `close` event reaches the store before the session's end: the exit
/// status (or signal) and the stdin/stdout/stderr byte counts and SHA-256. (Regression: the
/// event was once dropped when the client left before the channel task finished.)
#[test]
fn exec_close_events_record_exit_status_and_stream_hashes() {
    let s = Scenario::ready();
    let runs = 7;
    for _ in 0..runs {
        let r = s.ssh("echo out; echo err >&2; exit 3");
        assert_eq!(r.code, Some(3), "{r:?}");
    }
    assert_eq!(s.ssh("kill -TERM $$").code, Some(255));
    let out_sha = process::sha256(b"out\n");
    let err_sha = process::sha256(b"err\n");
    let mut missing = Vec::new();
    for id in 1..=runs + 1 {
        s.wait_ended(id);
        let close = s.events(id, "close");
        let Some(close) = close.first() else {
            missing.push(format!("S-{id}"));
            continue;
        };
        let d = &close["details"];
        if id == runs + 1 {
            let signal = d["exit"]["signal"].as_str().unwrap_or_default();
            assert!(signal.contains("TERM"), "S-{id}: the killed command's close has exit.signal TERM: {d}");
            continue;
        }
        assert_eq!(d["exit"], serde_json::json!({ "status": 3 }), "S-{id}: {d}");
        assert_eq!(d["stdout"], serde_json::json!({ "bytes": 4, "sha256": out_sha }), "S-{id}: {d}");
        let transcript = || s.gw.run(&["session", "transcript", &format!("S-{id}")]).stdout;
        assert_eq!(d["stderr"], serde_json::json!({ "bytes": 4, "sha256": err_sha }), "S-{id}: {d}\n{}", transcript());
        assert_eq!(d["stdin"]["bytes"], 0, "S-{id}: {d}");
    }
    assert!(
        missing.is_empty(),
        "{} of {} sessions have no `close` event (exit status, stream hashes): {missing:?}",
        missing.len(),
        runs + 1
    );
}

#[test]
fn stdin_reaches_the_box_intact_even_when_sent_before_the_box_is_ready() {
    let s = Scenario::ready();
    // 20 MB written into ssh's stdin from the first moment, long before the gateway has
    // decided, connected to the box and started the command.
    let dir = s.gw.path("stdin");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.bin");
    process::random_file(&file, 20 * 1024 * 1024);
    let data = std::fs::read(&file).unwrap();
    let want = process::sha256_file(&file);
    let sent = s.engineer.ssh_timed(TICKET, &[], "sha256sum", Some(data));
    assert!(sent.run.ok, "{:?}", sent.run);
    assert_eq!(sent.run.stdout, format!("{want}  -\n"), "the box hashed exactly what was sent");
    println!("20 MB of stdin through the gateway in {:?}", sent.elapsed);

    // The box's command does not read for a second: the bytes wait in bounded buffers.
    let late = s.engineer.ssh_timed(TICKET, &[], "sleep 1; cat", Some(b"early-bytes\n".to_vec()));
    assert_eq!(late.run.stdout, "early-bytes\n", "{:?}", late.run);
    let small: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let small_sha = process::sha256(&small);
    let waited = s.engineer.ssh_timed(TICKET, &[], "sleep 1; sha256sum", Some(small));
    assert_eq!(waited.run.stdout, format!("{small_sha}  -\n"), "{:?}", waited.run);
}

/// The most sessions live at the same moment, from their `started_at` and `ended_at`.
fn most_at_once(sessions: &[Value]) -> usize {
    let time = |v: &Value| {
        let text = v.as_str().unwrap_or_else(|| panic!("a time: {v}"));
        chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    };
    // Ends sort before starts at the same instant: touching is not overlapping.
    let mut edges: Vec<_> =
        sessions.iter().flat_map(|x| [(time(&x["started_at"]), 1), (time(&x["ended_at"]), -1)]).collect();
    edges.sort();
    let mut live = 0i32;
    edges
        .iter()
        .map(|(_, step)| {
            live += step;
            live
        })
        .max()
        .unwrap_or(0)
        .try_into()
        .unwrap_or(0)
}

#[test]
fn twenty_concurrent_sessions_all_succeed_and_are_recorded() {
    let s = Scenario::ready();
    let started = Instant::now();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let engineer = &s.engineer;
                scope.spawn(move || (i, engineer.ssh(TICKET, &format!("echo session-{i}; sleep 1"))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("ssh thread")).collect()
    });
    let elapsed = started.elapsed();
    println!("20 concurrent sessions of 1 s each took {elapsed:?}");
    for (i, run) in &results {
        assert!(run.ok, "session {i}: {run:?}");
        assert_eq!(run.stdout, format!("session-{i}\n"), "session {i} got its own output");
    }

    let sessions: Vec<Value> = process::wait_for(
        "20 ended sessions",
        Duration::from_secs(20),
        || Some(s.sessions()).filter(|l| l.len() == 20 && l.iter().all(|x| !x["ended_at"].is_null())),
        || format!("{:#}", Value::Array(s.sessions())),
    );
    // Side by side, not one after another, by the gateway's own records (however slowly a
    // loaded machine ran them).
    let most = most_at_once(&sessions);
    println!("at most {most} of them were live at once");
    assert!(most > 1, "the sessions ran one after another: {sessions:#?}");
    let mut commands = BTreeSet::new();
    for session in &sessions {
        assert_eq!(end_reason(session), "client exit", "{session:#}");
        assert!(s.recording(session).exists(), "recording of {session}");
        let id = session["id"].as_i64().unwrap();
        for e in s.events(id, "exec") {
            commands.insert(e["details"]["command"].as_str().unwrap().to_string());
        }
    }
    let want: BTreeSet<String> = (0..20).map(|i| format!("echo session-{i}; sleep 1")).collect();
    assert_eq!(commands, want, "each session recorded its own command");
}
