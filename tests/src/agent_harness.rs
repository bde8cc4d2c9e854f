//! What the agent's end-to-end tests add to a [`Scenario`]: enrolling the real `iks-agent`
//! for a box, running it, and reading what the gateway knows of it. The box, the gateway
//! and the engineer are the other tests' ([`crate::sshd`], [`crate::serve`],
//! [`crate::engineer`]); use [`Setup::through_agent`](crate::scenario::Setup::through_agent)
//! for a box the gateway reaches only through its agent.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::process::{self, Guard};
use crate::scenario::{BOX, Scenario};
use crate::{Gateway, Run, bin};

/// The agent on the box: its config dir and, while running, its process. When a test
/// panics, dropping the agent prints its log.
pub struct Agent {
    pub dir: PathBuf,
    running: Option<(Guard, PathBuf)>,
}

impl Agent {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, running: None }
    }

    /// An agent enrolled (with a fresh token) for box `name` of `s`, its sessions going to
    /// the scenario's sshd, dialling the gateway at `gateway` (the gateway's SSH port, or a
    /// relay in front of it); not yet running.
    #[track_caller]
    pub fn enrol(s: &Scenario, name: &str, gateway: &str) -> Self {
        let (token, fingerprint) = enroll_token(&s.gw, name, "1h");
        let agent = Self::new(s.gw.path(&format!("iks-agent-{name}")));
        let enrolled = agent.enroll(gateway, &token, Some(&fingerprint), &s.sshd.address(), &s.sshd.host_key_pub());
        assert!(enrolled.success().contains(&format!("enrolled as box {name} of ")), "{}", enrolled.stdout);
        agent
    }

    /// `iks-agent --config-dir DIR ARGS`, without inheriting the caller's config dir.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("iks-agent"));
        cmd.env_remove("IKS_AGENT_CONFIG_DIR").arg("--config-dir").arg(&self.dir).args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs `iks-agent ARGS` to completion (60 s at most).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Run {
        process::run(&mut self.command(args))
    }

    /// `iks-agent enroll` against `gateway` with `token` (checking the gateway's host key
    /// against `expect` when given), for the box sshd at `sshd` with host key `host_key`.
    #[track_caller]
    pub fn enroll(&self, gateway: &str, token: &str, expect: Option<&str>, sshd: &str, host_key: &Path) -> Run {
        let host_key = host_key.display().to_string();
        #[rustfmt::skip]
        let mut args = vec![
            "enroll", "--gateway", gateway, "--token", token, "--sshd", sshd, "--sshd-host-key", &host_key,
            "--product", "iks-standard", "--version", "7.2", "--version-file", "/nonexistent",
        ];
        if let Some(fp) = expect {
            args.extend(["--expect-host-key", fp]);
        }
        self.run(&args)
    }

    /// Starts `iks-agent run`, logging to a file beside its config dir.
    pub fn start(&mut self) {
        let name = self.dir.file_name().expect("the agent's dir has a name").to_string_lossy().into_owned();
        let log = process::unused_path(|n| self.dir.with_file_name(format!("{name}-{n}.log")));
        let child = self
            .command(&["run"])
            .env("IKS_LOG", "info,russh=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start iks-agent run");
        self.running = Some((Guard { child, name: "iks-agent run".into() }, log));
    }

    /// SIGKILL: the agent dies without saying goodbye.
    pub fn kill(&mut self) {
        self.running.as_mut().expect("the agent is running").0.kill();
    }

    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|(guard, _)| guard.pid())
    }

    /// What the agent logged (since its last start).
    pub fn log_text(&self) -> String {
        self.running.as_ref().map(|(_, log)| process::file_tail(log, usize::MAX)).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() && self.running.is_some() {
            eprintln!("\n--- agent log (last 40 lines) ---\n{}\n---", process::tail(&self.log_text(), 40));
        }
    }
}

/// `box enroll-token NAME --ttl TTL`: the token and the gateway's host key fingerprint.
#[track_caller]
pub fn enroll_token(gw: &Gateway, name: &str, ttl: &str) -> (String, String) {
    let v = gw.json(&["box", "enroll-token", name, "--ttl", ttl]);
    (v["token"].as_str().expect("token").to_string(), v["gateway_host_key"].as_str().expect("key").to_string())
}

/// The `agent` object of `admin box show main-gw --json` (null when none is enrolled).
#[track_caller]
pub fn agent_record(gw: &Gateway) -> Value {
    gw.json(&["admin", "box", "show", BOX])["agent"].clone()
}

/// Waits (at most `timeout`) until the gateway shows main-gw's agent online.
#[track_caller]
pub fn wait_online(gw: &Gateway, timeout: Duration) {
    process::wait_for(
        "the agent to be online",
        timeout,
        || agent_record(gw)["online_since"].as_str().map(|_| ()),
        || format!("agent: {}", agent_record(gw)),
    );
}
