//! One measurement each, against one target (direct sshd, the gateway, or the gateway
//! through the agent's tunnel), driving the stock OpenSSH client. Every command has a
//! deadline; a measurement that fails returns the reason instead of a number.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use iks_e2e::engineer::Engineer;
use iks_e2e::process::wait_deadline;

use crate::procstat;

/// Where sessions go: the client's options and the user name that selects the route.
#[derive(Clone)]
pub struct Target {
    pub label: &'static str,
    pub engineer: Engineer,
    pub user: String,
}

/// The processes whose CPU time a transfer is charged with.
#[derive(Clone, Copy)]
pub struct Pids {
    /// The gateway (none for direct OpenSSH).
    pub gateway: Option<u32>,
    /// The box's listening sshd; its per-connection processes are counted as it reaps them.
    pub sshd: u32,
    /// The agent on the box (tunnel only).
    pub agent: Option<u32>,
}

impl Pids {
    fn sample(&self) -> [f64; 3] {
        [
            self.gateway.map_or(0.0, |p| procstat::cpu_seconds(p, false)),
            procstat::cpu_seconds(self.sshd, true),
            self.agent.map_or(0.0, |p| procstat::cpu_seconds(p, false)),
        ]
    }
}

/// A finished transfer: how long, how much, and who spent how much CPU on it.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub secs: f64,
    pub bytes: u64,
    pub gateway_cpu: f64,
    pub sshd_cpu: f64,
    pub agent_cpu: f64,
}

impl Transfer {
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / MIB / self.secs
    }

    fn gib(&self) -> f64 {
        self.bytes as f64 / GIB
    }

    pub fn gateway_cpu_per_gib(&self) -> f64 {
        self.gateway_cpu / self.gib()
    }

    pub fn sshd_cpu_per_gib(&self) -> f64 {
        self.sshd_cpu / self.gib()
    }

    pub fn agent_cpu_per_gib(&self) -> f64 {
        self.agent_cpu / self.gib()
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * MIB;

/// The bulk transfers of the issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    /// `ssh … 'cat > /dev/null'` fed from the client's stdin.
    Upload,
    /// `ssh … 'cat FILE'` into the client's /dev/null.
    Download,
    /// `scp FILE host:/dev/null`.
    Scp,
    /// `sftp` batch `get FILE /dev/null`.
    Sftp,
}

impl Bulk {
    pub const ALL: [Bulk; 4] = [Bulk::Upload, Bulk::Download, Bulk::Scp, Bulk::Sftp];

    pub fn describe(self) -> &'static str {
        match self {
            Bulk::Upload => "ssh 'cat > /dev/null' (upload)",
            Bulk::Download => "ssh 'cat file' (download)",
            Bulk::Scp => "scp file host:/dev/null (upload)",
            Bulk::Sftp => "sftp get file /dev/null (download)",
        }
    }
}

/// Runs `child` to its end within `limit`; an error (with its stderr) if it fails or hangs.
fn finish(mut child: Child, what: &str, limit: Duration) -> anyhow::Result<()> {
    let Some(status) = wait_deadline(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{what}: no end within {limit:?} (killed)");
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("{what}: {status}: {}", err.trim());
    }
    Ok(())
}

/// How long a transfer of `bytes` may take: generous, but bounded (1 MiB/s at worst).
fn transfer_limit(bytes: u64) -> Duration {
    Duration::from_secs(60 + bytes / (1024 * 1024))
}

/// Moves `bytes` (of `file`, a sparse file of that size on the shared disk) one way and
/// charges the CPU time the processes in `pids` spent meanwhile.
pub fn bulk(kind: Bulk, t: &Target, pids: Pids, file: &Path, bytes: u64) -> anyhow::Result<Transfer> {
    let before = pids.sample();
    let started = Instant::now();
    let limit = transfer_limit(bytes);
    let file_s = file.display().to_string();
    let child = match kind {
        Bulk::Upload => {
            let mut zeros = Command::new("head")
                .args(["-c", &bytes.to_string(), "/dev/zero"])
                .stdout(Stdio::piped())
                .spawn()
                .context("head")?;
            let mut cmd = t.engineer.ssh_command(&t.user, &[], "cat > /dev/null");
            cmd.stdin(zeros.stdout.take().context("head's stdout")?);
            let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().context("ssh")?;
            finish(child, "ssh upload", limit)?;
            let _ = zeros.wait();
            None
        }
        Bulk::Download => {
            let cmd = t.engineer.ssh_command(&t.user, &[], &format!("cat {file_s}"));
            Some(spawn_quiet(cmd)?)
        }
        Bulk::Scp => {
            let mut cmd = Command::new("scp");
            cmd.args(t.engineer.options()).arg(file).arg(format!("{}@127.0.0.1:/dev/null", t.user));
            Some(spawn_quiet(cmd)?)
        }
        Bulk::Sftp => {
            let batch = file.with_extension("sftp-batch");
            std::fs::write(&batch, format!("get {file_s} /dev/null\n"))?;
            let mut cmd = Command::new("sftp");
            cmd.args(t.engineer.options()).arg("-b").arg(&batch).arg(format!("{}@127.0.0.1", t.user));
            Some(spawn_quiet(cmd)?)
        }
    };
    if let Some(child) = child {
        finish(child, kind.describe(), limit)?;
    }
    let secs = started.elapsed().as_secs_f64();
    // The box's per-connection sshd processes count once the listener has reaped them.
    procstat::wait_childless(pids.sshd, Duration::from_secs(10));
    let after = pids.sample();
    Ok(Transfer {
        secs,
        bytes,
        gateway_cpu: after[0] - before[0],
        sshd_cpu: after[1] - before[1],
        agent_cpu: after[2] - before[2],
    })
}

fn spawn_quiet(mut cmd: Command) -> anyhow::Result<Child> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.spawn().with_context(|| format!("{:?}", cmd.get_program()))
}

/// `sessions` downloads of `file` at once; the aggregate rate over the whole wall time.
pub fn parallel(t: &Target, pids: Pids, file: &Path, each: u64, sessions: usize) -> anyhow::Result<Transfer> {
    let before = pids.sample();
    let started = Instant::now();
    let children: Vec<Child> = (0..sessions)
        .map(|_| spawn_quiet(t.engineer.ssh_command(&t.user, &[], &format!("cat {}", file.display()))))
        .collect::<anyhow::Result<_>>()?;
    let limit = transfer_limit(each * sessions as u64);
    let mut failures = Vec::new();
    for c in children {
        if let Err(e) = finish(c, "parallel download", limit) {
            failures.push(e.to_string());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    procstat::wait_childless(pids.sshd, Duration::from_secs(20));
    if !failures.is_empty() {
        bail!("{} of {sessions} sessions failed, first: {}", failures.len(), failures[0]);
    }
    let after = pids.sample();
    Ok(Transfer {
        secs,
        bytes: each * sessions as u64,
        gateway_cpu: after[0] - before[0],
        sshd_cpu: after[1] - before[1],
        agent_cpu: after[2] - before[2],
    })
}

/// Keystroke echo round trips through a PTY: `ssh -tt` runs `cat` on a raw terminal on the
/// box; each byte written to ssh's stdin is timed until it comes back on its stdout.
pub fn keystrokes(t: &Target, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut cmd = t.engineer.ssh_command(&t.user, &["-tt", "-e", "none"], "stty raw -echo; echo READY; exec cat");
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("ssh -tt")?;
    let result = echo_loop(&mut child, count);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn echo_loop(child: &mut Child, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut stdin = child.stdin.take().context("ssh stdin")?;
    let mut stdout = child.stdout.take().context("ssh stdout")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("READY") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => bail!("the remote terminal did not start: {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    // The line end after READY may still be on its way: let it arrive, then drop it.
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {}
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        // Letters only: no escape character, no terminal control.
        let key = b'a' + (i % 26) as u8;
        let sent = Instant::now();
        stdin.write_all(&[key]).context("write keystroke")?;
        stdin.flush()?;
        loop {
            let chunk = rx.recv_timeout(Duration::from_secs(10)).context("no echo within 10 s")?;
            if chunk.contains(&key) {
                break;
            }
        }
        times.push(sent.elapsed());
    }
    Ok(times)
}

/// Wall time of `ssh … true`, from start to exit: TCP connect, key exchange,
/// authentication, (through the gateway: the access decision, the recording and the box
/// connection), the exec and its exit status.
pub fn setups(t: &Target, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        finish(spawn_quiet(t.engineer.ssh_command(&t.user, &[], "true"))?, "ssh true", Duration::from_secs(30))?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// The `q` quantile (0..=1) of `times`, in milliseconds.
pub fn quantile_ms(times: &[Duration], q: f64) -> f64 {
    let mut sorted: Vec<_> = times.to_vec();
    sorted.sort();
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}
