//! The engineer's side: the stock OpenSSH client (`ssh`, `scp`, `sftp`, `rsync -e ssh`)
//! with a key of their own, and tmux as the terminal for interactive sessions.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Run;
use crate::process::{self, Timed};

/// An ed25519 key pair made with `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct Key {
    pub private: PathBuf,
}

impl Key {
    pub fn generate(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("key dir");
        let private = dir.join(name);
        let run = process::run(
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name]).arg("-f").arg(&private),
        );
        assert!(run.ok, "ssh-keygen: {}", run.stderr);
        Self { private }
    }

    pub fn public(&self) -> PathBuf {
        let mut p = self.private.clone().into_os_string();
        p.push(".pub");
        p.into()
    }
}

/// An engineer at the gateway's SSH port.
#[derive(Debug, Clone)]
pub struct Engineer {
    pub key: Key,
    pub port: u16,
    /// Passed as `-o LogLevel=…`; ERROR keeps stderr to what the gateway and the box said.
    pub log_level: &'static str,
    /// Passed as `-o Ciphers=…` when set; the client's own default otherwise.
    pub ciphers: Option<String>,
}

impl Engineer {
    pub fn new(key: Key, port: u16) -> Self {
        Self { key, port, log_level: "ERROR", ciphers: None }
    }

    /// `-o` options that work for ssh, scp, sftp and rsync's `-e` alike.
    pub fn options(&self) -> Vec<String> {
        let mut o = Vec::new();
        for opt in [
            format!("Port={}", self.port),
            format!("IdentityFile={}", self.key.private.display()),
            "IdentitiesOnly=yes".into(),
            "StrictHostKeyChecking=no".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "BatchMode=yes".into(),
            "ConnectTimeout=20".into(),
            format!("LogLevel={}", self.log_level),
        ] {
            o.push("-o".into());
            o.push(opt);
        }
        if let Some(c) = &self.ciphers {
            o.push("-o".into());
            o.push(format!("Ciphers={c}"));
        }
        o
    }

    /// The options as one shell word list, for `rsync -e` and tmux command lines.
    pub fn options_line(&self) -> String {
        self.options().iter().map(|o| shell_quote(o)).collect::<Vec<_>>().join(" ")
    }

    /// `ssh OPTIONS EXTRA USER@127.0.0.1 REMOTE`, not yet run; stdin is null.
    pub fn ssh_command(&self, user: &str, extra: &[&str], remote: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.options()).args(extra).arg(format!("{user}@127.0.0.1"));
        if !remote.is_empty() {
            cmd.arg(remote);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `remote` as `user` and waits (60 s at most).
    #[track_caller]
    pub fn ssh(&self, user: &str, remote: &str) -> Run {
        self.ssh_timed(user, &[], remote, None).run
    }

    /// Runs with extra client arguments and optional stdin, timed.
    #[track_caller]
    pub fn ssh_timed(&self, user: &str, extra: &[&str], remote: &str, stdin: Option<Vec<u8>>) -> Timed {
        process::run_timed(&mut self.ssh_command(user, extra, remote), stdin, process::TIMEOUT)
    }

    /// Starts ssh in the background with stdout and stderr piped.
    pub fn spawn_ssh(&self, user: &str, extra: &[&str], remote: &str) -> Child {
        self.ssh_command(user, extra, remote).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ssh")
    }

    /// Starts ssh in the background, its stdout and stderr collected as they arrive.
    pub fn background(&self, user: &str, extra: &[&str], remote: &str) -> Background {
        Background::start(self.spawn_ssh(user, extra, remote))
    }

    /// Starts `ssh -tt` in the background: a shell on a terminal, typed into with
    /// [`Background::type_line`].
    pub fn background_shell(&self, user: &str) -> Background {
        let mut cmd = self.ssh_command(user, &["-tt"], "");
        let child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ssh");
        Background::start(child)
    }

    /// `scp OPTIONS ARGS…`.
    #[track_caller]
    pub fn scp(&self, args: &[&str], timeout: Duration) -> Timed {
        process::run_timed(Command::new("scp").args(self.options()).args(args), None, timeout)
    }

    /// `sftp OPTIONS -b BATCH USER@127.0.0.1` with the batch given as text.
    #[track_caller]
    pub fn sftp_batch(&self, user: &str, batch: &str, timeout: Duration) -> Timed {
        self.sftp_batch_with(user, &[], batch, timeout)
    }

    /// `sftp OPTIONS EXTRA -b BATCH USER@…`, e.g. with `-B 512 -R 8192` (many small requests).
    #[track_caller]
    pub fn sftp_batch_with(&self, user: &str, extra: &[&str], batch: &str, timeout: Duration) -> Timed {
        let file = tempfile::NamedTempFile::new().expect("batch file");
        std::fs::write(file.path(), batch).expect("write batch");
        let mut sftp = Command::new("sftp");
        sftp.args(self.options()).args(extra).arg("-b").arg(file.path()).arg(format!("{user}@127.0.0.1"));
        process::run_timed(&mut sftp, None, timeout)
    }

    /// `rsync -e "ssh OPTIONS" ARGS…`.
    #[track_caller]
    pub fn rsync(&self, args: &[&str], timeout: Duration) -> Timed {
        process::run_timed(
            Command::new("rsync").arg("-e").arg(format!("ssh {}", self.options_line())).args(args),
            None,
            timeout,
        )
    }
}

/// An ssh client running in the background; what it prints is read as it arrives, so a
/// test can wait for a line and still have everything once the client exits. Killed on drop.
pub struct Background {
    child: Child,
    /// Only for [`Engineer::background_shell`].
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Background {
    fn start(mut child: Child) -> Self {
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().expect("piped stdout"), Arc::clone(&stdout)),
            collect(child.stderr.take().expect("piped stderr"), Arc::clone(&stderr)),
        ];
        Self { stdin: child.stdin.take(), child, stdout, stderr, readers }
    }

    /// Types `line` and Enter into a [`Engineer::background_shell`].
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("a background shell has stdin");
        stdin.write_all(format!("{line}\n").as_bytes()).expect("type into ssh");
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) until stdout contains `text`.
    #[track_caller]
    pub fn wait_output(&self, text: &str, timeout: Duration) {
        process::wait_for(
            &format!("{text:?} from ssh"),
            timeout,
            || self.stdout().contains(text).then_some(()),
            || format!("stdout: {}\nstderr: {}", process::tail(&self.stdout(), 10), self.stderr()),
        );
    }

    /// Waits (at most `timeout`) for ssh to exit and for all it printed; `None` if it is
    /// still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = process::wait_deadline(&mut self.child, timeout)?;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Some(status)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends what `pipe` yields to `into` until it closes.
fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=./:,+@%".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A tmux server of its own (socket in the test's directory) running one window: a real
/// terminal for `ssh -t`, driven with `send-keys` and read with `capture-pane`.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a detached `cols`×`rows` window.
    pub fn start(dir: &Path, cols: u16, rows: u16, command: &str) -> Self {
        std::fs::create_dir_all(dir).expect("tmux dir");
        let t = Self { socket: dir.join("tmux.sock") };
        let run = t.run(&["new-session", "-d", "-x", &cols.to_string(), "-y", &rows.to_string(), command]);
        assert!(run.ok, "tmux new-session: {}", run.stderr);
        t
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).args(args).env_remove("TMUX");
        process::run_timed(&mut cmd, None, Duration::from_secs(20)).run
    }

    /// `send-keys` with tmux key names (`Enter`, `C-c`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        let run = self.run(&args);
        assert!(run.ok, "tmux send-keys: {}", run.stderr);
    }

    /// Types `text` literally, then Enter.
    pub fn type_line(&self, text: &str) {
        let run = self.run(&["send-keys", "-t", "0", "-l", text]);
        assert!(run.ok, "tmux send-keys -l: {}", run.stderr);
        self.keys(&["Enter"]);
    }

    /// What the window shows now.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-t", "0"]).stdout
    }

    /// Waits until the screen has a line for which `line` holds; returns the screen.
    #[track_caller]
    pub fn wait_line(&self, what: &str, timeout: Duration, line: impl Fn(&str) -> bool) -> String {
        process::wait_for(
            what,
            timeout,
            || {
                let s = self.screen();
                s.lines().any(|l| line(l.trim_end())).then_some(s)
            },
            || format!("screen:\n{}", self.screen()),
        )
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let run = self.run(&["resize-window", "-t", "0", "-x", &cols.to_string(), "-y", &rows.to_string()]);
        assert!(run.ok, "tmux resize-window: {}", run.stderr);
    }

    /// A global option's value, e.g. `default-terminal`.
    pub fn option(&self, name: &str) -> String {
        self.run(&["show-options", "-gv", name]).stdout.trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
