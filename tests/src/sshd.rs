//! The IKS box: Debian's real `sshd`, on a free loopback port, trusting the gateway's
//! user CA (`TrustedUserCAKeys`) and nothing else, in the foreground as a child of the test.
//!
//! Sessions on the box run as [`USER`], a user of the tests' own whose home the harness
//! writes, so that what the box runs does not depend on this machine's root account (its
//! `~/.bashrc`, `~/.ssh`, …). Creating the user needs root, as running sshd does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::process::{self, Guard};

const SSHD: &str = "/usr/sbin/sshd";

/// The box's login (`admin box add --login`): the one user the box's sshd lets in.
pub const USER: &str = "iks-box";
/// [`USER`]'s home when the harness creates the user; it writes the shell start-up files
/// below into it, and nothing else.
const HOME: &str = "/var/lib/iks-e2e-box";
/// Login shells (`ssh -t` without a command) read `.profile`; bash started by sshd for a
/// command reads `.bashrc`. Both come to the same: a known prompt (see [`is_prompt`]), and
/// no history written into the home all the tests share.
const PROFILE: &str = "# Written by the iks-gateway end-to-end tests (tests/src/sshd.rs).\n. \"$HOME/.bashrc\"\n";
const BASHRC: &str =
    "# Written by the iks-gateway end-to-end tests (tests/src/sshd.rs).\nPS1='\\u@\\h:\\w\\$ '\nunset HISTFILE\n";

/// Whether a terminal line is the box's shell prompt (`iks-box@HOST:DIR$`).
pub fn is_prompt(line: &str) -> bool {
    line.strip_prefix(USER).is_some_and(|rest| rest.starts_with('@') && rest.ends_with('$'))
}

/// [`USER`] as the system knows it, made once per test process.
struct BoxUser {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl BoxUser {
    fn get() -> &'static Self {
        static USER_ONCE: OnceLock<BoxUser> = OnceLock::new();
        USER_ONCE.get_or_init(Self::ensure)
    }

    /// Creates the user unless it exists (another test process may be creating it at the
    /// same moment: a failed `useradd` is fine if the user is there afterwards), then
    /// writes its home.
    fn ensure() -> Self {
        let user = Self::lookup().unwrap_or_else(|| {
            // `-p '*'`: no password, but not locked either (sshd without PAM refuses a
            // locked account, which useradd's default `!` is).
            #[rustfmt::skip]
            let added = process::run(Command::new("useradd").args([
                "--system", "--user-group", "--no-create-home", "--home-dir", HOME, "--shell", "/bin/bash",
                "--password", "*", "--comment", "iks-gateway end-to-end tests, the box user", USER,
            ]));
            Self::lookup()
                .unwrap_or_else(|| panic!("cannot create the box user {USER} (the tests need root): {added:?}"))
        });
        let home = &user.home;
        std::fs::create_dir_all(home).expect("the box user's home");
        std::os::unix::fs::chown(home, Some(user.uid), Some(user.gid)).expect("chown the box user's home");
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755)).expect("chmod the box user's home");
        for (name, text) in [(".profile", PROFILE), (".bashrc", BASHRC)] {
            let path = home.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                // Renamed into place: a shell starting meanwhile reads the old or the new file, never half of one.
                let temp = home.join(format!("{name}.{}", std::process::id()));
                std::fs::write(&temp, text).expect("write a start-up file");
                std::fs::rename(&temp, &path).expect("rename a start-up file");
            }
        }
        user
    }

    /// `getent passwd USER`: its uid, gid and home, or `None` if there is no such user.
    fn lookup() -> Option<Self> {
        let run = process::run(Command::new("getent").args(["passwd", USER]));
        let fields: Vec<&str> = run.stdout.trim().split(':').collect();
        match fields[..] {
            [_, _, uid, gid, _, home, _] if run.ok => {
                Some(Self { uid: uid.parse().ok()?, gid: gid.parse().ok()?, home: home.into() })
            }
            _ => None,
        }
    }
}

pub struct BoxSshd {
    guard: Guard,
    dir: PathBuf,
    /// Owned by [`USER`]: the box's side of file transfers.
    files: tempfile::TempDir,
    port: u16,
}

impl BoxSshd {
    /// Starts sshd in `dir` (created) trusting `trusted_ca` (a `ca public-key` line).
    pub fn start(dir: &Path, trusted_ca: &str) -> Self {
        assert!(Path::new(SSHD).exists(), "{SSHD} is missing: apt-get install openssh-server");
        let user = BoxUser::get();
        std::fs::create_dir_all(dir).expect("box dir");
        let files = tempfile::Builder::new().prefix("iks-box-files-").tempdir().expect("the box's files dir");
        std::os::unix::fs::chown(files.path(), Some(user.uid), Some(user.gid)).expect("chown the box's files dir");
        // sshd's privilege separation directory; systemd makes it on a real machine.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let host_key = dir.join("ssh_host_ed25519_key");
        let keygen = process::run(
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "box"]).arg("-f").arg(&host_key),
        );
        assert!(keygen.ok, "ssh-keygen for the box: {}", keygen.stderr);
        std::fs::write(dir.join("ca.pub"), format!("{}\n", trusted_ca.trim())).expect("ca.pub");
        // Another process may take the port between our probe and sshd's bind: retry.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = process::free_port();
            match Self::try_start(dir, files.path(), port) {
                Ok(guard) => return Self { guard, dir: dir.to_path_buf(), files, port },
                Err(log) => last_log = log,
            }
        }
        panic!("sshd did not start:\n{last_log}");
    }

    fn try_start(dir: &Path, files: &Path, port: u16) -> Result<Guard, String> {
        let d = dir.display();
        let f = files.display();
        let config = format!(
            "Port {port}
ListenAddress 127.0.0.1
HostKey {d}/ssh_host_ed25519_key
PidFile {d}/sshd.pid
TrustedUserCAKeys {d}/ca.pub
AuthorizedKeysFile none
# Only the box user: nothing the tests run on the box runs as this machine's root.
AllowUsers {USER}
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
# Bait for the gateway's request policy: the box would run this subsystem and take these
# variables if the gateway ever passed them on (it must not).
Subsystem foo /usr/bin/touch {f}/subsystem-foo-ran
AcceptEnv LANG LC_* IKS_TEST_*
# The concurrency test opens 20 sessions at once; the default (10:30:100) drops some.
MaxStartups 100:30:200
"
        );
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).expect("sshd_config");
        let log_path = dir.join("sshd.log");
        let log = std::fs::File::create(&log_path).expect("sshd.log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {SSHD}: {e}"))?;
        let mut guard = Guard { child, name: format!("sshd :{port}") };
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = format!("Server listening on 127.0.0.1 port {port}");
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains(&ready) {
                return Ok(guard);
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                return Err(format!("sshd exited ({status}):\n{text}"));
            }
            if Instant::now() > deadline {
                return Err(format!("sshd not listening after 10 s:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the box ever started the `foo` subsystem (see the config above).
    pub fn ran_subsystem_foo(&self) -> bool {
        self.files().join("subsystem-foo-ran").exists()
    }

    /// A directory [`USER`] owns, removed with the box: where a test puts the box's side of
    /// a file transfer (the box is this machine, so the test reads and writes it directly).
    pub fn files(&self) -> &Path {
        self.files.path()
    }

    /// `127.0.0.1:PORT`, for `admin box add --address`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The box's public host key file, for `--host-key`.
    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key.pub")
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The last lines sshd logged.
    pub fn log_tail(&self, lines: usize) -> String {
        process::file_tail(&self.dir.join("sshd.log"), lines)
    }
}
