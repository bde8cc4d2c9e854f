//! Harness for the end-to-end tests in `tests/tests/`: runs the real `iks-gateway` and
//! `iks-agent` binaries, each test in a data dir of its own.
//!
//! `cargo test --workspace` builds both binaries (their packages have integration tests)
//! before running any test; they are found beside this crate's test executables, or in
//! `IKS_BIN_DIR`.
//!
//! The SSH tests use real parts: [`sshd::BoxSshd`] (Debian's sshd as the IKS box, its
//! sessions running as a user of the tests' own), [`serve::Serve`] (`iks-gateway serve`),
//! [`engineer::Engineer`] (the stock OpenSSH client) and [`engineer::Tmux`] (a terminal);
//! [`scenario::Scenario::ready`] wires them up. The agent's tests add the real `iks-agent`
//! to a scenario ([`agent_harness::Agent`]); [`relay::Relay`] is a network between an
//! agent and the gateway that the test can cut. Every command has a deadline
//! ([`process`]), so a hang fails a test instead of CI. Running sshd and creating its user
//! need root.

pub mod agent_harness;
pub mod engineer;
pub mod faults;
pub mod panel;
pub mod process;
pub mod relay;
pub mod scenario;
pub mod serve;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IKS_BIN_DIR") {
        return dir.into();
    }
    // A binary (iks-bench) sits beside the others in target/PROFILE; a test executable is
    // one level down, in target/PROFILE/deps.
    let exe = std::env::current_exe().expect("current executable");
    let dir = exe.parent().expect("executable's dir");
    if dir.join("iks-gateway").exists() {
        return dir.to_path_buf();
    }
    dir.parent().expect("target dir").to_path_buf()
}

/// A path to one of the project's binaries, checked to exist.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is not built; run `cargo test --workspace` (or `cargo build`) first", path.display());
    path
}

/// The result of one command: its exit status and output as text.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert!(self.ok, "command failed ({:?}):\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts failure with exactly one line on stderr, and returns that line.
    #[track_caller]
    pub fn failure(&self) -> &str {
        assert!(!self.ok, "command should have failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        let lines: Vec<_> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr, got: {:?}", self.stderr);
        lines[0]
    }
}

/// A gateway installation: a private data dir and, optionally, a database URL.
pub struct Gateway {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Gateway {
    /// A gateway on its zero-setup default: SQLite in its data dir.
    pub fn sqlite() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir"), database_url: None }
    }

    /// A gateway whose store is `url`.
    pub fn with_database(url: String) -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir"), database_url: Some(url) }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The SQLite database of a gateway on the default store.
    pub fn sqlite_file(&self) -> PathBuf {
        self.data_dir().join("iks-gateway.db")
    }

    /// The URL the gateway's store is at, for a test that opens it through the library.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.sqlite_file().display()))
    }

    /// A second installation with a copy of this one's data dir (database, keys,
    /// recordings), to tamper with while this one stays intact.
    pub fn duplicate(&self) -> Self {
        let copy = Self { dir: tempfile::tempdir().expect("temp dir"), database_url: self.database_url.clone() };
        copy_tree(&self.data_dir(), &copy.data_dir());
        copy
    }

    /// Runs `sql` on the SQLite database with the `sqlite3` shell, as someone with access
    /// to the file could.
    #[track_caller]
    pub fn sqlite3(&self, sql: &str) -> Run {
        Command::new("sqlite3")
            .arg(self.sqlite_file())
            .arg(sql)
            .output()
            .expect("run sqlite3 (apt-get install sqlite3)")
            .into()
    }

    /// A file path inside this test's private directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `iks-gateway --data-dir … ARGS`, without inheriting the caller's IKS_* settings.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(&bin("iks-gateway"), args)
    }

    /// `PROGRAM --data-dir … ARGS` set up as [`Gateway::command`], for another program
    /// that serves this data dir (the bench's own gateway process).
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars() {
            if k.starts_with("IKS_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--data-dir").arg(self.data_dir()).args(args).stdin(Stdio::null());
        if let Some(url) = &self.database_url {
            cmd.env("IKS_DATABASE_URL", url);
        }
        cmd
    }

    /// Runs to completion (60 s at most: a hanging command fails the test).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Run {
        process::run(&mut self.command(args))
    }

    /// Runs with `input` on stdin.
    #[track_caller]
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        process::run_timed(&mut self.command(args), Some(input.as_bytes().to_vec()), process::TIMEOUT).run
    }

    /// Runs with `--json` appended and parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        serde_json::from_str(run.success()).unwrap_or_else(|e| panic!("JSON from {args:?}: {e}\n{}", run.stdout))
    }
}

/// Copies a directory tree; file modes come along, so private keys stay private.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}
