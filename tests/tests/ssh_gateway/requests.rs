//! What the gateway refuses on a channel never reaches the box, however the client asks:
//! OpenSSH sends environment variables without waiting for the answer, and a client may
//! send a subsystem request without asking for one (or ignore the refusal). The box here
//! would accept both (`AcceptEnv IKS_TEST_*`, `Subsystem foo`), so only the gateway stands
//! in the way. (Regression: the bridge replayed every request to the box.)

use std::process::Command;

use iks_e2e::process;
use iks_e2e::scenario::{Scenario, TICKET};

#[test]
fn refused_variables_never_reach_the_box_and_allowed_ones_do() {
    let s = Scenario::ready();
    let run = s
        .engineer
        .ssh_timed(
            TICKET,
            &["-o", "SetEnv=IKS_TEST_PRELOAD=/tmp/evil.so LANG=C.UTF-8"],
            "echo \"preload=${IKS_TEST_PRELOAD:-unset} lang=$LANG\"",
            None,
        )
        .run;
    assert!(run.ok, "{run:?}");
    assert_eq!(run.stdout, "preload=unset lang=C.UTF-8\n", "only the allowlisted variable arrived: {run:?}");
}

#[test]
fn a_refused_subsystem_never_reaches_the_box_whether_or_not_the_client_waits() {
    let s = Scenario::ready();
    // OpenSSH asks for an answer, hears the refusal and gives up.
    let asked = s.engineer.ssh_timed(TICKET, &["-s"], "foo", None).run;
    assert!(!asked.ok, "{asked:?}");
    assert!(asked.stderr.contains("subsystem request failed"), "{asked:?}");

    // A client that does not ask for an answer hears why on the channel, and nothing runs.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/paramiko_client.py");
    let port = s.serve.port().to_string();
    let key = s.engineer.key.private.display().to_string();
    let silent = process::run(Command::new("python3").args([script, &port, TICKET, &key, "subsystem-noreply", "foo"]));
    assert_eq!(silent.code, Some(1), "{silent:?}");
    assert!(
        silent.stderr.contains("the gateway carries only the sftp subsystem, not \"foo\""),
        "the refusal is said on the channel: {silent:?}"
    );

    // Both sessions are over and the box never started the subsystem.
    for session in s.sessions() {
        s.wait_ended(session["id"].as_i64().unwrap());
    }
    assert!(!s.sshd.ran_subsystem_foo(), "the box ran a subsystem the gateway refused\n{}", s.diagnostics());
    // sftp, the one subsystem carried, still works.
    let sftp = s.engineer.sftp_batch(TICKET, "pwd\n", process::TIMEOUT);
    assert!(sftp.run.ok, "{:?}", sftp.run);
}
