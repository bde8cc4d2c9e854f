//! The IKS box: Debian's real `sshd`, on a free loopback port, trusting the gateway's
//! user CA (`TrustedUserCAKeys`) and nothing else, in the foreground as a child of the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{self, Guard};

const SSHD: &str = "/usr/sbin/sshd";

pub struct BoxSshd {
    guard: Guard,
    dir: PathBuf,
    port: u16,
}

impl BoxSshd {
    /// Starts sshd in `dir` (created) trusting `trusted_ca` (a `ca public-key` line).
    pub fn start(dir: &Path, trusted_ca: &str) -> Self {
        assert!(Path::new(SSHD).exists(), "{SSHD} is missing: apt-get install openssh-server");
        std::fs::create_dir_all(dir).expect("box dir");
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
            match Self::try_start(dir, port) {
                Ok(guard) => return Self { guard, dir: dir.to_path_buf(), port },
                Err(log) => last_log = log,
            }
        }
        panic!("sshd did not start:\n{last_log}");
    }

    fn try_start(dir: &Path, port: u16) -> Result<Guard, String> {
        let d = dir.display();
        let config = format!(
            "Port {port}
ListenAddress 127.0.0.1
HostKey {d}/ssh_host_ed25519_key
PidFile {d}/sshd.pid
TrustedUserCAKeys {d}/ca.pub
AuthorizedKeysFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
# Bait for the gateway's request policy: the box would run this subsystem and take these
# variables if the gateway ever passed them on (it must not).
Subsystem foo /usr/bin/touch {d}/subsystem-foo-ran
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
        self.dir.join("subsystem-foo-ran").exists()
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
