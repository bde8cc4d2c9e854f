//! What an engineer's session channel may ask of the box, decided once for the front
//! (which answers the client) and the bridge (which alone talks to the box): a request
//! the front refused is never sent upstream, whether or not the client waited for the
//! answer or heeded it.

use crate::config::SshConfig;

/// The only subsystem the gateway carries (its transfers are tracked and recorded).
pub const SFTP: &str = "sftp";

/// Whether an environment variable may be passed to the box: `[ssh] env` lists names,
/// `PREFIX*` matching a prefix.
pub fn env_allowed(config: &SshConfig, name: &str) -> bool {
    config.env.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    })
}

/// Whether a subsystem may be started on the box.
pub fn subsystem_allowed(name: &str) -> bool {
    name == SFTP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_variables_and_sftp_pass() {
        let config = SshConfig { env: vec!["LANG".into(), "LC_*".into()], ..SshConfig::default() };
        let cases = [
            ("LANG", true),
            ("LC_ALL", true),
            ("LC_", true),
            ("LANGUAGE", false),
            ("LD_PRELOAD", false),
            ("PATH", false),
            ("lang", false),
        ];
        for (name, want) in cases {
            assert_eq!(env_allowed(&config, name), want, "{name}");
        }
        assert!(subsystem_allowed("sftp"));
        for name in ["foo", "SFTP", "sftp ", "netconf", ""] {
            assert!(!subsystem_allowed(name), "{name:?}");
        }
    }
}
