//! One connection, many sessions: OpenSSH's ControlMaster (and Ansible on top of it)
//! keeps the connection open and runs each command on a new channel of it.

use std::path::Path;
use std::time::{Duration, Instant};

use iks_e2e::process;
use iks_e2e::scenario::{Scenario, TICKET};

fn master_options(socket: &Path) -> Vec<String> {
    ["ControlMaster=auto".to_string(), format!("ControlPath={}", socket.display()), "ControlPersist=120".into()]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
}

/// Options for a command that goes through the master while it lives and never becomes
/// one: once the revoked master is gone, `ControlMaster=auto` would start a new master
/// that persists (refused, but connected), and "the master ended" would never be seen.
fn client_options(socket: &Path) -> Vec<String> {
    ["ControlMaster=no".to_string(), format!("ControlPath={}", socket.display())]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
}

fn master_alive(s: &Scenario, options: &[&str]) -> bool {
    let mut check = s.engineer.ssh_command(TICKET, &[options, &["-O", "check"]].concat(), "");
    process::run(&mut check).ok
}

/// Each channel's close (exit status, byte counts) is recorded when the channel closes,
/// not when the master connection ends hours later; a revocation ends the master
/// connection at once, and a command sent meanwhile hears the revocation.
#[test]
fn a_persisting_master_records_each_command_and_ends_at_once_on_revocation() {
    let s = Scenario::ready();
    let socket = s.gw.path("cm.sock");
    let options = master_options(&socket);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let client = client_options(&socket);
    let client: Vec<&str> = client.iter().map(String::as_str).collect();

    let first = s.engineer.ssh_timed(TICKET, &options, "echo first; exit 7", None).run;
    assert_eq!(first.code, Some(7), "{first:?}");
    assert_eq!(first.stdout, "first\n");
    assert!(master_alive(&s, &options), "the master persists");
    let id = s.wait_live(1)[0]["id"].as_i64().unwrap();
    let closed = process::wait_for(
        "the first channel's close event while the master lives",
        Duration::from_secs(10),
        || Some(s.events(id, "close")).filter(|e| !e.is_empty()),
        || s.diagnostics(),
    );
    assert_eq!(closed[0]["details"]["exit"]["status"], 7, "{closed:?}");

    let second = s.engineer.ssh_timed(TICKET, &options, "echo second", None).run;
    assert_eq!(second.stdout, "second\n", "{second:?}");
    process::wait_for(
        "the second channel's close event",
        Duration::from_secs(10),
        || (s.events(id, "close").len() == 2).then_some(()),
        || s.diagnostics(),
    );
    assert_eq!(s.live_sessions().len(), 1, "one connection, one session");

    s.admin(&["access", "revoke", "G-1", "--as", "petrov"]);
    let revoked = Instant::now();
    let during = s.engineer.ssh_timed(TICKET, &client, "echo during", None).run;
    assert!(!during.stderr.contains("Channel send error"), "{during:?}");
    assert!(during.stdout == "during\n" || during.stderr.contains("revoked by petrov"), "{during:?}");
    process::wait_for(
        "the master connection to end",
        Duration::from_secs(10),
        || (!master_alive(&s, &options)).then_some(()),
        || s.diagnostics(),
    );
    let took = revoked.elapsed();
    eprintln!("revocation → ControlMaster connection gone: {took:?} (after the CLI command)");
    assert!(took < Duration::from_secs(4), "the master lingered {took:?} (it used to take 5 s)");
    let after = s.engineer.ssh_timed(TICKET, &client, "echo after", None).run;
    assert!(after.stderr.contains("access refused: T-1001: access was revoked by petrov"), "{after:?}");
    assert_eq!(after.stdout, "");
    let ended = s.wait_ended(id);
    assert_eq!(ended["end_reason"], "revoked", "{ended}");
}
