//! Port and agent forwarding: they would bypass the recording, so `-R` and `-A` are always
//! refused and `-L` only works on a box whose policy allows it.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use iks_e2e::process::{self, Guard};
use iks_e2e::scenario::{Scenario, TICKET};

#[test]
fn remote_forwarding_is_refused() {
    let s = Scenario::ready();
    let port = process::free_port();
    let spec = format!("127.0.0.1:{port}:127.0.0.1:{}", s.sshd.port());
    let strict = s.engineer.ssh_timed(TICKET, &["-o", "ExitOnForwardFailure=yes", "-R", &spec], "echo ran", None);
    assert_eq!(strict.run.code, Some(255), "{:?}", strict.run);
    assert!(strict.run.stderr.contains("remote port forwarding failed"), "{:?}", strict.run);
    assert_eq!(strict.run.stdout, "", "{:?}", strict.run);

    // Without ExitOnForwardFailure the session goes on and the gateway says why.
    let lenient = s.engineer.ssh_timed(TICKET, &["-R", &spec], "echo ran", None);
    assert_eq!(lenient.run.stdout, "ran\n", "{:?}", lenient.run);
    assert!(
        lenient
            .run
            .stderr
            .contains(&format!("[iks-gateway] remote port forwarding (127.0.0.1:{port}) is refused by the gateway")),
        "{:?}",
        lenient.run
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "nobody listens on the box's side");
}

/// Starts `ssh -L LOCAL:127.0.0.1:<box sshd> … 'sleep 60'` and connects to the local port.
fn tunnel(s: &Scenario) -> (Child, TcpStream) {
    let mut engineer = s.engineer.clone();
    engineer.log_level = "INFO"; // OpenSSH reports a refused channel at INFO
    let local = process::free_port();
    let spec = format!("127.0.0.1:{local}:127.0.0.1:{}", s.sshd.port());
    let child = engineer.spawn_ssh(TICKET, &["-L", &spec], "sleep 60");
    let stream = process::wait_for(
        "ssh's local forward port",
        Duration::from_secs(15),
        || TcpStream::connect(("127.0.0.1", local)).ok(),
        || s.diagnostics(),
    );
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (child, stream)
}

fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

#[test]
fn local_forwarding_is_refused_unless_the_box_allows_it() {
    let s = Scenario::ready();
    let (child, mut stream) = tunnel(&s);
    let mut got = Vec::new();
    let read = stream.read_to_end(&mut got);
    assert!(read.is_ok(), "the forwarded connection is closed, not left hanging: {read:?}");
    assert!(got.is_empty(), "nothing came through: {:?}", String::from_utf8_lossy(&got));
    std::thread::sleep(Duration::from_millis(300));
    let err = stop(child);
    assert!(err.contains("open failed: administratively prohibited"), "{err}");
    let id = s.sessions()[0]["id"].as_i64().unwrap();
    assert!(s.events(id, "forward.open").is_empty());

    // The box's policy allows forwarding: the same tunnel reaches the box's sshd.
    s.admin(&["admin", "box", "update", "1", "--allow-forwarding", "true"]);
    let (child, stream) = tunnel(&s);
    let mut banner = String::new();
    BufReader::new(stream).read_line(&mut banner).expect("a line through the tunnel");
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "the box's sshd answered through the tunnel: {banner:?}");
    let err = stop(child);
    let id = s.sessions()[0]["id"].as_i64().unwrap();
    let opened = process::wait_for(
        "the forward.open event",
        Duration::from_secs(10),
        || Some(s.events(id, "forward.open")).filter(|e| !e.is_empty()),
        || format!("ssh: {err}\n{}", s.diagnostics()),
    );
    assert_eq!(opened[0]["details"]["host"], "127.0.0.1");
    assert_eq!(opened[0]["details"]["port"], s.sshd.port());
}

#[test]
fn agent_forwarding_is_refused() {
    let s = Scenario::ready();
    let socket = s.gw.path("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let _agent = Guard { child: agent, name: "ssh-agent".into() };
    process::wait_for("the agent's socket", Duration::from_secs(10), || socket.exists().then_some(()), String::new);
    let added = process::run(Command::new("ssh-add").arg(&s.engineer.key.private).env("SSH_AUTH_SOCK", &socket));
    assert!(added.ok, "ssh-add: {added:?}");

    let mut ssh = s.engineer.ssh_command(TICKET, &["-A"], "echo \"agent=[$SSH_AUTH_SOCK]\"");
    ssh.env("SSH_AUTH_SOCK", &socket);
    let run = process::run(&mut ssh);
    assert!(run.ok, "the session itself works: {run:?}");
    assert_eq!(run.stdout, "agent=[]\n", "no agent socket on the box");
    assert!(run.stderr.contains("[iks-gateway] agent forwarding is refused by the gateway"), "{run:?}");
}
