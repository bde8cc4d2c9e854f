//! A flapping agent: the network between a box's agent and the gateway (a relay in the
//! test) is cut every few seconds for about a minute, with a session live at each cut.
//! While the agent is away, `ssh` fails with the one-line "box … is offline" refusal; when
//! it is back, sessions work; afterwards the gateway holds no more tasks or file
//! descriptors than before (read from its `/metrics`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use iks_e2e::agent_harness::{Agent, agent_record, wait_online};
use iks_e2e::engineer::Engineer;
use iks_e2e::process;
use iks_e2e::relay::Relay;
use iks_e2e::scenario::{BOX, Scenario, Setup, TICKET};
use iks_e2e::serve::Serve;

/// The flapping lasts about this long (the cycle under way finishes)…
const FLAPPING: Duration = Duration::from_secs(60);
/// …and at most this many cycles.
const MAX_CYCLES: usize = 40;
/// What may be alive beyond the baseline once the agent settled: hyper's and the sqlx
/// pools' housekeeping tasks come and go; a leak per cycle would exceed these.
const TASK_SLACK: u64 = 3;
const FD_SLACK: u64 = 4;

/// The gateway's figures once it carries no session and holds the agent.
fn settled(serve: &Serve, within: impl Fn(&BTreeMap<String, u64>) -> bool) -> BTreeMap<String, u64> {
    process::wait_for(
        "the gateway to settle with the agent online",
        Duration::from_secs(30),
        || {
            let m = serve.metrics();
            (m["iks_gateway_live_sessions"] == 0 && m["iks_gateway_agents_connected"] == 1 && within(&m)).then_some(m)
        },
        || format!("metrics: {:?}", serve.metrics()),
    )
}

/// A session that works: its output comes back and ssh exits 0.
#[track_caller]
fn session_works(engineer: &Engineer, cycle: usize) {
    let run = engineer.ssh(TICKET, &format!("echo online-{cycle}"));
    assert_eq!(run.success(), format!("online-{cycle}\n"));
}

#[test]
fn a_flapping_agent_refuses_sessions_cleanly_while_away_and_leaks_nothing() {
    let s = Scenario::with(Setup::default().through_agent());
    let (gw, serve, engineer) = (&s.gw, &s.serve, &s.engineer);
    let relay = Relay::start(serve.port());
    let mut agent = Agent::enrol(&s, BOX, &relay.address());
    agent.start();
    wait_online(gw, Duration::from_secs(20));

    // Warm up with a few sessions at once, so the store's connection pool is as full
    // before as it may be after.
    let warm: Vec<_> = (0..4).map(|_| engineer.background(TICKET, &[], "echo warm")).collect();
    for mut w in warm {
        let status = w.wait_exit(Duration::from_secs(60)).expect("warm-up ssh exits");
        assert!(status.success(), "warm-up: {}", w.stderr());
    }
    let before = settled(serve, |_| true);

    let started = Instant::now();
    let mut cycles = 0;
    let (mut away, mut back) = (Duration::ZERO, Duration::ZERO);
    while cycles < MAX_CYCLES && started.elapsed() < FLAPPING {
        cycles += 1;
        // A session is live when the link goes down; it must end, not hang.
        let mut live = engineer.background(TICKET, &[], &format!("echo live-{cycles}; sleep 120"));
        live.wait_output(&format!("live-{cycles}"), Duration::from_secs(30));
        let cut = Instant::now();
        relay.set_up(false);
        relay.cut();
        let status = live.wait_exit(Duration::from_secs(30)).expect("the live session ends when its agent is cut off");
        assert!(!status.success(), "ssh exited {status} although its box went away");
        process::wait_for(
            "the gateway to see the agent gone",
            Duration::from_secs(30),
            || agent_record(gw)["online_since"].is_null().then_some(()),
            || serve.log_tail(30),
        );
        away += cut.elapsed();
        let refused = engineer.ssh(TICKET, "echo should not run");
        let line = refused.failure();
        assert!(line.contains("box main-gw is offline since"), "{line}");

        let up = Instant::now();
        relay.set_up(true);
        wait_online(gw, Duration::from_secs(30));
        back += up.elapsed();
        session_works(engineer, cycles);
    }
    println!(
        "{cycles} cuts in {:?} ({} connections relayed): offline noticed after {:?} on average, back online after {:?}",
        started.elapsed(),
        relay.forwarded(),
        away / cycles as u32,
        back / cycles as u32
    );

    let (tasks, fds) = (before["iks_gateway_tasks"], before["process_open_fds"]);
    let after =
        settled(serve, |m| m["iks_gateway_tasks"] <= tasks + TASK_SLACK && m["process_open_fds"] <= fds + FD_SLACK);
    println!(
        "gateway before → after: tasks {tasks} → {}, fds {fds} → {}, RSS {} → {} KiB",
        after["iks_gateway_tasks"],
        after["process_open_fds"],
        before["process_resident_memory_bytes"] / 1024,
        after["process_resident_memory_bytes"] / 1024
    );
    let ended: Vec<String> = gw
        .json(&["session", "list"])
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["end_reason"].as_str().unwrap_or("(live)").to_string())
        .collect();
    assert!(ended.iter().all(|r| r != "(live)"), "every session ended: {ended:?}");
    println!(
        "end reasons: {:?}",
        ended.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, r| {
            *m.entry(r.as_str()).or_default() += 1;
            m
        })
    );
}
