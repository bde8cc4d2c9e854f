//! `iks-gateway serve` as a child of the test: SSH and HTTP on ports the OS picks, ready
//! once it prints its `SSH:` and `HTTP:` lines, stopped with SIGTERM (then SIGKILL) on drop.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Gateway;
use crate::process::{self, Guard};

pub struct Serve {
    guard: Guard,
    port: u16,
    /// `None` for a process that serves SSH only (the bench's own gateway).
    http_port: Option<u16>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Serve {
    /// Starts the gateway on `gw`'s data dir with `env` added (e.g. `IKS_ACCESS_WARN_BEFORE`).
    pub fn start(gw: &Gateway, env: &[(String, String)]) -> Self {
        Self::start_command(gw, gw.command(&["serve"]), env, true)
    }

    /// Starts `cmd`, a process that serves `gw`'s data dir as `serve` does (the bench's own
    /// gateway process serves SSH only: `http` false), and waits for its `SSH:` line and,
    /// with `http`, its `HTTP:` line.
    pub fn start_command(gw: &Gateway, mut cmd: std::process::Command, env: &[(String, String)], http: bool) -> Self {
        let stderr = process::unused_path(|n| gw.path(&format!("serve-{n}.log")));
        let stdout = stderr.with_extension("out");
        cmd.env("IKS_SSH_LISTEN", "127.0.0.1:0")
            .env("IKS_HTTP_LISTEN", "127.0.0.1:0")
            .env("IKS_LOG", "info")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(std::fs::File::create(&stdout).expect("serve stdout"))
            .stderr(std::fs::File::create(&stderr).expect("serve log"))
            .stdin(Stdio::null());
        let child = cmd.spawn().expect("spawn iks-gateway serve");
        let mut guard = Guard { child, name: "iks-gateway serve".into() };
        let deadline = Instant::now() + Duration::from_secs(30);
        let (port, http_port) = loop {
            let text = std::fs::read_to_string(&stdout).unwrap_or_default();
            let http_port = banner_port(&text, "HTTP:");
            if let Some(port) = banner_port(&text, "SSH:")
                && (http_port.is_some() || !http)
            {
                break (port, http_port);
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!(
                    "iks-gateway serve exited ({status}) before listening\nstdout:\n{text}\nlog:\n{}",
                    process::file_tail(&stderr, 40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "iks-gateway serve printed no SSH and HTTP lines in 30 s\nstdout:\n{text}\nlog:\n{}",
                process::file_tail(&stderr, 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { guard, port, http_port, stdout, stderr }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The web panel's and API's port, from the `HTTP:` line.
    pub fn http_port(&self) -> u16 {
        self.http_port.expect("this gateway process serves no HTTP")
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// What `serve` printed on stdout.
    pub fn banner(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The whole log (stderr), colour codes removed.
    pub fn log(&self) -> String {
        process::strip_ansi(&String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        process::file_tail(&self.stderr, lines)
    }

    /// `127.0.0.1:PORT` of the SSH port, for an agent to dial.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would end it: nothing is flushed or ended; waits for it to die.
    pub fn kill(&mut self) -> ExitStatus {
        self.guard.kill()
    }

    /// `GET /metrics` on the gateway's HTTP port, as name → value (see the README's
    /// "Monitoring"): `iks_gateway_tasks`, `process_open_fds`, ….
    pub fn metrics(&self) -> BTreeMap<String, u64> {
        let text = http_get(self.http_port(), "/metrics");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// SIGTERM, then wait up to `grace` for the gateway to exit.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.guard.terminate(grace)
    }

    /// A line of /proc/PID/status in KiB (`VmRSS`, `VmHWM`); `None` once the process is gone.
    pub fn memory_kib(&self, field: &str) -> Option<u64> {
        process::memory_kib(self.pid(), field)
    }
}

/// The port in a banner line such as `  SSH:              127.0.0.1:PORT (engineers: …)`.
fn banner_port(stdout: &str, label: &str) -> Option<u16> {
    let line = stdout.lines().find(|l| l.trim_start().starts_with(label))?;
    let addr = line.trim_start().strip_prefix(label)?.split_whitespace().next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

/// The body of `GET path` on 127.0.0.1:`port`; panics unless the answer is 200 within 10 s.
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the gateway's HTTP port");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("GET {path}: no HTTP answer: {answer}"));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_from_the_banner() {
        let out = "iks-gateway 0.1.0 serving\n  store:            SQLite\n  SSH:              127.0.0.1:46441 (engineers: ssh -p 46441 T-<ticket>@127.0.0.1)\n  HTTP:             127.0.0.1:38001 (helpdesk API: http://127.0.0.1:38001/api/openapi.json)\n";
        assert_eq!(super::banner_port(out, "SSH:"), Some(46441));
        assert_eq!(super::banner_port(out, "HTTP:"), Some(38001));
        assert_eq!(super::banner_port("  SSH:", "SSH:"), None);
    }
}
