//! `iks-gateway serve` as a child of the test: SSH on a port the OS picks, ready once it
//! prints its `SSH:` line, stopped with SIGTERM (then SIGKILL) on drop.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Gateway;
use crate::process::{self, Guard};

pub struct Serve {
    guard: Guard,
    port: u16,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Serve {
    /// Starts the gateway on `gw`'s data dir with `env` added (e.g. `IKS_ACCESS_WARN_BEFORE`).
    pub fn start(gw: &Gateway, env: &[(String, String)]) -> Self {
        Self::start_command(gw, gw.command(&["serve"]), env)
    }

    /// Starts `cmd`, a process that serves `gw`'s data dir as `serve` does (the bench's own
    /// gateway process), and waits for its `SSH:` line.
    pub fn start_command(gw: &Gateway, mut cmd: std::process::Command, env: &[(String, String)]) -> Self {
        // A restarted gateway logs to new files, so the first run's log stays readable.
        let n = (1..).find(|n| !gw.path(&format!("serve-{n}.log")).exists()).unwrap_or(1);
        let stdout = gw.path(&format!("serve-{n}.out"));
        let stderr = gw.path(&format!("serve-{n}.log"));
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
        let port = loop {
            let text = std::fs::read_to_string(&stdout).unwrap_or_default();
            if let Some(port) = ssh_port(&text) {
                break port;
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!(
                    "iks-gateway serve exited ({status}) before listening\nstdout:\n{text}\nlog:\n{}",
                    process::file_tail(&stderr, 40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "iks-gateway serve printed no SSH line in 30 s\nstdout:\n{text}\nlog:\n{}",
                process::file_tail(&stderr, 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { guard, port, stdout, stderr }
    }

    pub fn port(&self) -> u16 {
        self.port
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

    /// SIGTERM, then wait up to `grace` for the gateway to exit.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.guard.terminate(grace)
    }

    /// A line of /proc/PID/status in KiB (`VmRSS`, `VmHWM`); `None` once the process is gone.
    pub fn memory_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
        line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
    }
}

/// The port in `  SSH:              127.0.0.1:PORT (engineers: …)`.
fn ssh_port(stdout: &str) -> Option<u16> {
    let line = stdout.lines().find(|l| l.trim_start().starts_with("SSH:"))?;
    let addr = line.trim_start().strip_prefix("SSH:")?.split_whitespace().next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ssh_port_from_the_banner() {
        let out = "iks-gateway 0.1.0 serving\n  store:            SQLite\n  SSH:              127.0.0.1:46441 (engineers: ssh -p 46441 T-<ticket>@127.0.0.1)\n";
        assert_eq!(super::ssh_port(out), Some(46441));
        assert_eq!(super::ssh_port("  SSH:"), None);
    }
}
