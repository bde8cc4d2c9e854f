//! Failures to inflict on a gateway: a private PostgreSQL cluster the test can stop and
//! start again ([`PrivatePostgres`]; the shared server at 127.0.0.1:5432 serves the other
//! tests and is never touched), and a small tmpfs for the recordings ([`Tmpfs`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process;

/// A PostgreSQL cluster of the test's own: initdb in a temp dir, its server on a free
/// loopback port, trust authentication for user `postgres`. Stopped and removed on drop.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates the cluster and starts its server.
    pub fn start() -> Self {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        // initdb refuses to run as root: the cluster belongs to the `postgres` OS user.
        if is_root() {
            let run = process::run(Command::new("chown").arg("postgres:postgres").arg(dir.path()));
            assert!(run.ok, "chown postgres {}: {}", dir.path().display(), run.stderr);
        }
        let mut pg = Self { dir, bin, port: 0 };
        let data = pg.data().display().to_string();
        #[rustfmt::skip]
        let init = pg.as_owner("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]);
        assert!(init.ok, "initdb: {}\n{}", init.stdout, init.stderr);
        // Another process may take the port between the probe and the server's bind: retry.
        let mut failure = String::new();
        for _ in 0..5 {
            pg.port = process::free_port();
            match pg.try_start() {
                Ok(()) => return pg,
                Err(log) => failure = log,
            }
        }
        panic!("the private PostgreSQL did not start:\n{failure}");
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server again on the same port (after [`PrivatePostgres::stop`]).
    pub fn restart(&self) {
        if let Err(log) = self.try_start() {
            panic!("the private PostgreSQL did not start again:\n{log}");
        }
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`): connections drop at once.
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        let run = self.as_owner("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"]);
        assert!(run.ok, "pg_ctl stop: {}\n{}", run.stdout, run.stderr);
    }

    /// The server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        process::file_tail(&self.dir.path().join("server.log"), lines)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn try_start(&self) -> Result<(), String> {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        // Loopback only, its socket in its own dir; fsync off since the data is thrown away.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let run = self.as_owner("pg_ctl", &["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start"]);
        if run.ok { Ok(()) } else { Err(format!("{}\n{}\n{}", run.stdout, run.stderr, self.log_tail(20))) }
    }

    /// Runs one of PostgreSQL's programs as the cluster's owner.
    fn as_owner(&self, program: &str, args: &[&str]) -> crate::Run {
        let program = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // pg_ctl must not inherit the test's working directory if postgres cannot read it.
        cmd.args(args).current_dir(self.dir.path());
        process::run(&mut cmd)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.as_owner("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"]);
    }
}

/// The newest installed PostgreSQL's programs (`/usr/lib/postgresql/N/bin`).
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect("no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql")
}

fn is_root() -> bool {
    process::run(Command::new("id").arg("-u")).stdout.trim() == "0"
}

/// A tmpfs of a given size mounted at a path; unmounted on drop.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_kib` KiB at `path` (created if missing). Needs root (or
    /// CAP_SYS_ADMIN): a user namespace could mount one too, but the gateway, the test and
    /// the recordings must all see the same mount.
    pub fn mount(path: &Path, size_kib: u64) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let run = process::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k,mode=0700"), "tmpfs"])
                .arg(path),
        );
        assert!(run.ok, "cannot mount a tmpfs at {} (this test needs root): {}", path.display(), run.stderr);
        Self { path: path.to_path_buf() }
    }

    /// Fills the file system: writes `name` until no space is left; returns its size.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join(name)).expect("filler file");
        let chunk = vec![0u8; 64 << 10];
        let mut written = 0u64;
        // Bounded: a tmpfs of any size the tests use is full long before this.
        for _ in 0..(1 << 16) {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        written
    }

    /// Frees the space [`Tmpfs::fill`] took.
    pub fn unfill(&self, name: &str) {
        let _ = std::fs::remove_file(self.path.join(name));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file inside must not keep the mount alive.
        let _ = process::run_timed(Command::new("umount").arg("-l").arg(&self.path), None, Duration::from_secs(20));
    }
}
