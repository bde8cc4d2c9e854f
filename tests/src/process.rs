//! Running child processes so that a hanging one fails its test instead of hanging CI:
//! every command here has a deadline, and every long-lived child is stopped on drop.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Run;

/// How long any one command may take unless a test says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A finished command and how long it took.
#[derive(Debug)]
pub struct Timed {
    pub run: Run,
    pub elapsed: Duration,
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn reader(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` to completion with `stdin` (or nothing) as its input; panics with what it
/// printed so far when it takes longer than `timeout`.
#[track_caller]
pub fn run_timed(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Timed {
    let what = describe(cmd);
    let started = Instant::now();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    // Its own process group, so that a timeout ends its children too (sftp's ssh, say):
    // they hold the output pipes, and reading them would wait for ever.
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let writer = child.stdin.take().zip(stdin).map(|(mut pipe, data)| {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = reader(child.stdout.take().expect("stdout"));
    let err = reader(child.stderr.take().expect("stderr"));
    let status = wait_deadline(&mut child, timeout);
    let Some(status) = status else {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let _ = child.kill();
        let _ = child.wait();
        let out = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
        let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
        panic!(
            "{what}\n  did not finish within {timeout:?} (killed)\nstdout: {}\nstderr: {}",
            tail(&out, 40),
            tail(&err, 40)
        );
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let run = Run {
        ok: status.success(),
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
    };
    Timed { run, elapsed: started.elapsed() }
}

/// [`run_timed`] with the default timeout and no input.
#[track_caller]
pub fn run(cmd: &mut Command) -> Run {
    run_timed(cmd, None, TIMEOUT).run
}

/// Waits for `child` at most `timeout`; `None` if it is still running.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("waiting for a child: {e}"),
        }
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `timeout`; panics naming
/// `what` (and the text `context` returns then) when it never does.
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child stopped on drop: SIGTERM, a grace period, then SIGKILL.
pub struct Guard {
    pub child: Child,
    pub name: String,
}

impl Guard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `grace` for the child to exit.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        signal(self.child.id(), "TERM");
        wait_deadline(&mut self.child, grace)
    }

    /// SIGKILL, as a crash would end it: nothing is flushed or said; waits for it to die.
    pub fn kill(&mut self) -> ExitStatus {
        signal(self.child.id(), "KILL");
        wait_deadline(&mut self.child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} did not die on SIGKILL", self.name))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.terminate(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `kill -SIG pid` (the crate forbids unsafe code, so no libc).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A line of /proc/PID/status in KiB (`VmRSS`, `VmHWM`); `None` once the process is gone.
pub fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// The first of `path(1)`, `path(2)`, … that does not exist yet: a restarted process logs
/// to a new file, so the earlier run's log stays readable.
pub fn unused_path(path: impl Fn(u32) -> PathBuf) -> PathBuf {
    (1..).map(path).find(|p| !p.exists()).expect("a free file name")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last `n` lines of a file, without terminal colour codes ("" when unreadable).
pub fn file_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    tail(&strip_ansi(&text), n)
}

/// `text` without ANSI escape sequences (CSI … letter).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// SHA-256 of a file, hex (via coreutils' `sha256sum`; the crate has no hashing dependency).
pub fn sha256_file(path: &Path) -> String {
    let run = run(Command::new("sha256sum").arg(path));
    assert!(run.ok, "sha256sum {}: {}", path.display(), run.stderr);
    run.stdout.split_whitespace().next().unwrap_or_default().to_string()
}

/// SHA-256 of bytes, hex.
pub fn sha256(data: &[u8]) -> String {
    let run = run_timed(&mut Command::new("sha256sum"), Some(data.to_vec()), TIMEOUT).run;
    assert!(run.ok, "sha256sum: {}", run.stderr);
    run.stdout.split_whitespace().next().unwrap_or_default().to_string()
}

/// `len` random bytes written to `path`.
pub fn random_file(path: &Path, len: u64) {
    let mut src = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    let mut dst = std::fs::File::create(path).expect("create random file");
    let copied = std::io::copy(&mut (&mut src).take(len), &mut dst).expect("write random file");
    assert_eq!(copied, len);
}

/// Today's date minus `days`, as YYYY-MM-DD (UTC).
pub fn date_days_ago(days: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    let day = i64::try_from(now / 86_400).expect("days since 1970") - days;
    // Howard Hinnant's days-to-civil.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(strip_ansi("\u{1b}[2mA\u{1b}[0m b"), "A b");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        let today = run(Command::new("date").args(["-u", "+%F"]));
        assert_eq!(date_days_ago(0), today.stdout.trim());
        let past = run(Command::new("date").args(["-u", "-d", "-400 days", "+%F"]));
        assert_eq!(date_days_ago(400), past.stdout.trim());
        assert_eq!(sha256(b"out\n"), "54034ac5c6e9ea95734ec2b729fd6d62abf64af34a9f9ce5d466cb788191a73d");
    }
}
