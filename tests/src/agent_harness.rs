//! Harness pieces for the agent's end-to-end tests: a real Debian `sshd` as the IKS box,
//! the real `iks-gateway serve`, the real `iks-agent`, and the stock `ssh`/`scp`/`sftp` as
//! the engineer. Everything listens on 127.0.0.1 ports the kernel picks.
//!
//! (The SSH gateway's own end-to-end tests grow a similar harness on `main`; the two are
//! to be unified when the branches meet.)

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{Gateway, Run, bin};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A name no other log file of this test process has.
fn log_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{what}-{}.log", N.fetch_add(1, Ordering::Relaxed))
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
#[track_caller]
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_listening(port: u16, what: &str) {
    wait_for(Duration::from_secs(15), what, || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
}

/// `ssh-keygen -t ed25519` into `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

/// SHA-256 of a file, as `sha256sum` prints it.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Sends SIGTERM (or another signal) to a child.
pub fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status();
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    /// Where its stderr goes, for the failure message.
    pub log: PathBuf,
}

impl Proc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait (at most 15 s) for it to exit.
    pub fn stop(&mut self) {
        signal(&self.child, "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL: the process dies without saying goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The IKS box: a real sshd on a free loopback port that trusts the gateway's user CA.
pub struct Sshd {
    pub port: u16,
    /// The box's public host key file.
    pub host_key_pub: PathBuf,
    _proc: Proc,
}

impl Sshd {
    /// Starts sshd in `dir`, trusting the CA line `ca_pub`.
    pub fn start(dir: &Path, ca_pub: &str) -> Self {
        std::fs::create_dir_all(dir).expect("sshd dir");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let host_key = dir.join("ssh_host_ed25519_key");
        keygen(&host_key);
        let ca = dir.join("ca.pub");
        std::fs::write(&ca, format!("{}\n", ca_pub.trim())).expect("ca.pub");
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nTrustedUserCAKeys {}\n\
                 AuthorizedKeysFile none\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                ca.display()
            ),
        )
        .expect("sshd_config");
        let log = dir.join("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("sshd log"))
            .spawn()
            .expect("start sshd");
        let proc = Proc { child, log };
        wait_listening(port, "the box's sshd");
        Self { port, host_key_pub: host_key.with_extension("pub"), _proc: proc }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A running `iks-gateway serve`.
pub struct Serve {
    pub port: u16,
    pub proc: Proc,
}

impl Serve {
    /// Starts the gateway; `port` 0 lets the kernel choose. Returns once it listens.
    pub fn start(gw: &Gateway, port: u16) -> Self {
        let log = gw.path(&log_name("serve"));
        let mut child = gw
            .command(&["serve"])
            .env("IKS_SSH_LISTEN", format!("127.0.0.1:{port}"))
            .env("IKS_HTTP_LISTEN", "127.0.0.1:0")
            .env("IKS_LOG", "info,russh=warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("serve log"))
            .spawn()
            .expect("start iks-gateway serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("iks-gateway serve exited before listening:\n{text}");
            };
            if let Some(rest) = line.trim().strip_prefix("SSH:") {
                let addr = rest.split_whitespace().next().expect("SSH address");
                break addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("SSH port");
            }
        };
        // Keep draining stdout so the gateway never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { port, proc: Proc { child, log } }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// What an engineer needs: a key registered as operator `ivanov`.
pub struct Engineer {
    pub key: PathBuf,
}

impl Engineer {
    /// `ssh -p PORT -i KEY … USER@127.0.0.1 ARGS`, non-interactive, no host-key prompts.
    pub fn ssh(&self, port: u16, user: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.options(port, "-p")).arg(format!("{user}@127.0.0.1")).args(args);
        cmd
    }

    /// The options shared by ssh, scp and sftp (`port_flag` is -p for ssh, -P for the others).
    pub fn options(&self, port: u16, port_flag: &str) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            port_flag,
            &port.to_string(),
            "-i",
            &self.key.display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Runs `ssh … USER@gw COMMAND` to completion.
    pub fn exec(&self, port: u16, user: &str, command: &str) -> Run {
        self.ssh(port, user, &[command]).stdin(Stdio::null()).output().expect("run ssh").into()
    }
}

/// The usual customer: ООО Ромашка with a box `main-gw` reached through its agent, an
/// operator `ivanov` (with a fresh key), a customer admin `petrov`, and ticket T-1001.
pub fn customer_with_agent_box(gw: &Gateway) -> Engineer {
    let today = chrono::Utc::now().date_naive().to_string();
    gw.run(&["admin", "org", "add", "--inn", "7707083893", "--name", "ООО Ромашка", "--purchased", &today]).success();
    gw.run(&[
        "admin",
        "box",
        "add",
        "--org",
        "7707083893",
        "--name",
        "main-gw",
        "--product",
        "iks-standard",
        "--version",
        "7.2",
        "--login",
        "root",
    ])
    .success();
    let key = gw.path("engineer");
    keygen(&key);
    let public = key.with_extension("pub");
    gw.run(&[
        "admin",
        "operator",
        "add",
        "--login",
        "ivanov",
        "--name",
        "Иван Иванов",
        "--ssh-key",
        &public.display().to_string(),
    ])
    .success();
    gw.run(&["admin", "customer", "add", "--org", "7707083893", "--login", "petrov", "--name", "Пётр Петров"])
        .success();
    gw.run(&[
        "ticket",
        "open",
        "--org",
        "7707083893",
        "--contact",
        "Пётр Петров",
        "--phone",
        "+7 495 000-00-00",
        "--product",
        "iks-standard",
        "--version",
        "7.2",
        "--description",
        "VPN tunnel does not come up",
    ])
    .success();
    Engineer { key }
}

/// Files an access request for `main-gw` on T-1001 and approves it (`until` shortens it).
pub fn grant(gw: &Gateway, until: Option<&str>) -> String {
    let g = gw.json(&[
        "access",
        "request",
        "--ticket",
        "T-1001",
        "--box",
        "main-gw",
        "--operator",
        "ivanov",
        "--duration",
        "1h",
        "--reason",
        "read VPN logs",
    ]);
    let id = format!("G-{}", g["id"]);
    let mut approve = vec!["access", "approve", id.as_str(), "--as", "petrov"];
    if let Some(u) = until {
        approve.extend(["--until", u]);
    }
    gw.run(&approve).success();
    id
}

/// A fresh enrolment token for `main-gw`: (token, gateway host key fingerprint).
pub fn enroll_token(gw: &Gateway, ttl: &str) -> (String, String) {
    let v = gw.json(&["box", "enroll-token", "main-gw", "--ttl", ttl]);
    (v["token"].as_str().expect("token").to_string(), v["gateway_host_key"].as_str().expect("key").to_string())
}

/// The agent on the box: its config dir and, while running, its process.
pub struct Agent {
    pub dir: PathBuf,
    pub proc: Option<Proc>,
}

impl Agent {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, proc: None }
    }

    /// `iks-agent --config-dir DIR ARGS`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("iks-agent"));
        cmd.env_remove("IKS_AGENT_CONFIG_DIR").arg("--config-dir").arg(&self.dir).args(args).stdin(Stdio::null());
        cmd
    }

    pub fn run_command(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run iks-agent").into()
    }

    /// `iks-agent enroll` against `gateway` with `token`, for the box sshd at `sshd`.
    pub fn enroll(&self, gateway: &str, token: &str, expect: Option<&str>, sshd: &str, host_key: &Path) -> Run {
        let host_key = host_key.display().to_string();
        let mut args =
            vec!["enroll", "--gateway", gateway, "--token", token, "--sshd", sshd, "--sshd-host-key", &host_key];
        args.extend(["--product", "iks-standard", "--version", "7.2", "--version-file", "/nonexistent"]);
        if let Some(fp) = expect {
            args.extend(["--expect-host-key", fp]);
        }
        self.run_command(&args)
    }

    /// Starts `iks-agent run`.
    pub fn start(&mut self) {
        let log = self.dir.with_file_name(log_name("agent"));
        let child = self
            .command(&["run"])
            .env("IKS_LOG", "info,russh=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start iks-agent run");
        self.proc = Some(Proc { child, log });
    }

    pub fn log_text(&self) -> String {
        self.proc.as_ref().map(Proc::log_text).unwrap_or_default()
    }
}

/// The `agent` object of `admin box show main-gw --json` (null when none is enrolled).
pub fn agent_record(gw: &Gateway) -> serde_json::Value {
    gw.json(&["admin", "box", "show", "main-gw"])["agent"].clone()
}

/// Waits until the gateway shows the box's agent online.
pub fn wait_online(gw: &Gateway, limit: Duration) {
    wait_for(limit, "the agent to be online", || agent_record(gw)["online_since"].as_str().map(|_| ()));
}
