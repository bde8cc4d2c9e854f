//! Many small pipelined SFTP requests through the gateway, and ending a session whose
//! engineer stopped reading. (Regression: both legs' connection loops waited on each
//! other — each on a channel queue the other's pump had to drain — so `sftp -B 512
//! -R 8192` and paramiko's prefetching `get` stalled in most runs, and the stalled
//! session then survived kill, revocation and shutdown.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iks_e2e::process;
use iks_e2e::scenario::{Scenario, TICKET};

const TRANSFER_LIMIT: Duration = Duration::from_secs(90);

#[test]
fn twenty_pipelined_sftp_downloads_complete_intact() {
    let s = Scenario::ready();
    let _bulk = super::bulk();
    // On the box, which reads them as its own user.
    let small = s.sshd.files().join("small.bin");
    process::random_file(&small, 8 << 20);
    let big = s.sshd.files().join("big.bin");
    process::random_file(&big, 20 << 20);
    let (small_sum, big_sum) = (process::sha256_file(&small), process::sha256_file(&big));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/paramiko_client.py");
    let port = s.serve.port().to_string();
    let key = s.engineer.key.private.display().to_string();
    for i in 0..10 {
        let got = s.gw.path(&format!("sftp-{i}.bin"));
        let batch = format!("get {} {}\n", small.display(), got.display());
        let t = s.engineer.sftp_batch_with(TICKET, &["-B", "512", "-R", "8192"], &batch, TRANSFER_LIMIT);
        assert!(t.run.ok, "sftp -B 512 -R 8192, run {i}: {:?}\n{}", t.run, s.diagnostics());
        assert_eq!(process::sha256_file(&got), small_sum, "run {i}");
        eprintln!("sftp -B 512 -R 8192, 8 MiB, run {i}: {:?}", t.elapsed);
        let _ = std::fs::remove_file(&got);

        let got = s.gw.path(&format!("paramiko-{i}.bin"));
        let started = Instant::now();
        let mut get = Command::new("python3");
        get.args([script, &port, TICKET, &key, "get", &big.display().to_string(), &got.display().to_string()]);
        let run = process::run_timed(&mut get, None, TRANSFER_LIMIT).run;
        assert!(run.ok, "paramiko get, run {i}: {run:?}\n{}", s.diagnostics());
        assert_eq!(process::sha256_file(&got), big_sum, "run {i}");
        eprintln!("paramiko prefetching get, 20 MiB, run {i}: {:?}", started.elapsed());
        let _ = std::fs::remove_file(&got);
    }
}

/// Established TCP connections on loopback matching `filter` (an `ss` filter).
fn connections(filter: &str) -> usize {
    let run = process::run(Command::new("ss").args(["-Htn", "state", "established", filter]));
    assert!(run.ok, "ss (apt-get install iproute2): {run:?}");
    run.stdout.lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn killing_a_session_whose_engineer_stopped_reading_closes_both_legs() {
    let s = Scenario::ready();
    let mut ssh = s
        .engineer
        .ssh_command(TICKET, &[], "cat /dev/zero")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh");
    let id = s.wait_live(1)[0]["id"].as_i64().unwrap();
    // The engineer's client stops: every buffer on the way to it fills and stays full.
    process::signal(ssh.id(), "STOP");
    std::thread::sleep(Duration::from_secs(2));
    // The box leg from either end; the engineer's leg from the gateway's end (a client that
    // reads nothing cannot even take the connection's end: its window is shut).
    let box_leg = format!("( sport = :{0} or dport = :{0} )", s.sshd.port());
    let engineer_leg = format!("( sport = :{} )", s.serve.port());
    assert!(connections(&box_leg) > 0 && connections(&engineer_leg) > 0, "both legs are up before the kill");

    let started = Instant::now();
    s.admin(&["session", "kill", &format!("S-{id}")]);
    let ended = s.wait_ended(id);
    let took = started.elapsed();
    assert_eq!(ended["end_reason"], "killed", "{ended}");
    process::wait_for(
        "both legs to close",
        Duration::from_secs(10),
        || (connections(&box_leg) == 0 && connections(&engineer_leg) == 0).then_some(()),
        || s.diagnostics(),
    );
    eprintln!("kill of a session with a stopped reader: ended and both legs closed after {:?}", started.elapsed());
    eprintln!("(the session's end was written after {took:?})");
    process::signal(ssh.id(), "CONT");
    let _ = ssh.kill();
    let _ = ssh.wait();
}
