//! The recordings' disk fills up while a session runs: a small tmpfs is mounted on the
//! data dir's `recordings/` and filled by the test.
//!
//! What an engineer and an auditor notice: the live session ends at once with reason
//! "recording storage full"; a new ssh is refused with one line saying so (fail closed: no
//! session goes unrecorded); the recording still reads back as a valid cast whose hash the
//! audit chain vouches for (`audit verify` passes); and with room again, sessions resume.

use std::time::{Duration, Instant};

use iks_e2e::faults::Tmpfs;
use iks_e2e::process;
use iks_e2e::scenario::{Scenario, TICKET, end_reason, read_cast};

#[test]
fn a_full_recordings_disk_ends_the_live_session_and_refuses_new_ones() {
    let s = Scenario::ready();
    // 12 MiB: above the 8 MiB a session needs to start, small enough to fill at once.
    let tmpfs = Tmpfs::mount(&s.gw.data_dir().join("recordings"), 12 << 10);
    let ticks = "for i in $(seq 100000); do echo line $i of the session; sleep 0.01; done";
    let mut live = s.engineer.spawn_ssh(TICKET, &["-tt"], ticks);
    let id = s.wait_live(1)[0]["id"].as_i64().expect("session id");
    process::wait_for(
        "the live session's output in its recording",
        Duration::from_secs(15),
        || {
            let rec = s.recording(&s.sessions()[0]);
            std::fs::read_to_string(rec).ok().filter(|t| t.contains("line 3 of")).map(|_| ())
        },
        || s.diagnostics(),
    );

    let filled = tmpfs.fill("filler");
    let full = Instant::now();
    println!("filled the recordings' tmpfs with {} KiB", filled >> 10);
    let status = process::wait_deadline(&mut live, Duration::from_secs(20));
    if status.is_none() {
        let _ = live.kill();
        panic!("the live session went on with a full disk\n{}", s.diagnostics());
    }
    println!("the live session ended {:?} after the disk filled", full.elapsed());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut live.stderr.take().expect("stderr"), &mut stderr).expect("ssh stderr");
    assert!(stderr.contains("session closed: recording storage full"), "{stderr}");
    let ended = s.wait_ended(id);
    assert_eq!(end_reason(&ended), "recording storage full", "{ended:#}");

    // A new session is refused, in one line, while the disk is full.
    let refused = s.ssh("echo never");
    let line = refused.failure();
    assert!(line.starts_with("access refused: T-1001: recording storage full"), "{line}");
    assert!(!refused.stdout.contains("never"), "{refused:?}");

    // The recording holds whole events up to the failure, and the chain vouches for it.
    let path = s.recording(&ended);
    let (_, events) = read_cast(&path);
    let shown: String = events.iter().filter(|e| e.code == "o").map(|e| e.data.as_str()).collect();
    assert!(shown.contains("line 3 of the session"), "{shown}");
    assert!(std::fs::read(&path).expect("recording").ends_with(b"\n"), "no torn last line");
    println!("the recording kept {} events ({} bytes)", events.len(), std::fs::metadata(&path).map_or(0, |m| m.len()));
    s.admin(&["session", "transcript", &format!("S-{id}")]);
    let verified = s.gw.run(&["audit", "verify"]);
    println!("audit verify: {}", verified.success().trim());

    // Room again: sessions resume without a restart.
    tmpfs.unfill("filler");
    let back = s.ssh("echo back");
    assert_eq!(back.success().trim(), "back", "{back:?}");
}
