//! Configuration: one TOML file, every key with a documented default, `IKS_<SECTION>_<KEY>`
//! environment variables overriding the file, and [`Config::validate`] at start so a bad
//! value stops the gateway with a reason instead of surprising someone later.
//!
//! The example printed by `iks-gateway config example` is [`EXAMPLE`]; a test checks that
//! it parses to exactly [`Config::default`], so the documentation cannot drift.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rules::{ProductCatalog, WorkingHours, parse_duration};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub ssh: SshConfig,
    pub http: HttpConfig,
    pub access: AccessConfig,
    pub tickets: TicketsConfig,
    pub audit: AuditConfig,
    pub hours: WorkingHours,
    pub products: ProductCatalog,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; empty means SQLite in the data dir.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    pub listen: SocketAddr,
    /// Environment variables engineers' clients may pass to the box (`NAME` or `PREFIX*`).
    pub env: Vec<String>,
    /// This gateway's name in the store; empty means the host name. Nodes sharing one
    /// PostgreSQL need distinct names.
    pub node: String,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            env: vec!["LANG".into(), "LC_*".into()],
            node: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 8080)) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// The longest window a grant may have, e.g. "8h".
    pub max_grant: String,
    /// When to warn the engineer before the grant ends, e.g. ["5m", "1m"].
    pub warn_before: Vec<String>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self { max_grant: "8h".into(), warn_before: vec!["5m".into(), "1m".into()] }
    }
}

impl AccessConfig {
    /// `max_grant` as a duration; [`Config::validate`] guarantees it parses.
    pub fn max_grant(&self) -> chrono::Duration {
        parse_duration(&self.max_grant).unwrap_or_else(|_| chrono::Duration::hours(8))
    }

    /// `warn_before` as durations, longest first; [`Config::validate`] guarantees they parse.
    pub fn warn_before(&self) -> Vec<chrono::Duration> {
        let mut w: Vec<_> = self.warn_before.iter().filter_map(|s| parse_duration(s).ok()).collect();
        w.sort_by(|a, b| b.cmp(a));
        w
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// A ticket closes when the customer has not commented for more than this many days.
    pub autoclose_days: u32,
    /// An unanswered ticket is flagged "due soon" when less than this is left before its
    /// first-response deadline (working time for categories 1–2, calendar time for 3).
    pub due_soon: String,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        Self { autoclose_days: 10, due_soon: "2h".into() }
    }
}

impl TicketsConfig {
    /// `due_soon` as a duration; [`Config::validate`] guarantees it parses.
    pub fn due_soon(&self) -> chrono::Duration {
        parse_duration(&self.due_soon).unwrap_or_else(|_| chrono::Duration::hours(2))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Sign a checkpoint once this many events were appended since the newest one.
    pub checkpoint_every: u64,
    /// Delete audit events older than this many days; 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { checkpoint_every: 1000, retention_days: 0 }
    }
}

/// The documented example configuration: every key at its default.
pub const EXAMPLE: &str = include_str!("../../deploy/iks-gateway.example.toml");

/// Environment variables that belong to the command line, not the file.
const CLI_VARIABLES: &[&str] = &["IKS_DATA_DIR", "IKS_CONFIG", "IKS_LOG"];

impl Config {
    /// Reads `path` (if given) and applies `IKS_*` overrides from `env`.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                Self::parse(&text, &p.display().to_string(), env)
            }
            None => Self::parse("", "defaults", env),
        }
    }

    /// The configuration in `text` (a file's content; `source` names it in errors) with
    /// `IKS_*` overrides from `env`, validated.
    pub fn parse(
        text: &str,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Parse { path: source.into(), message: one_line(&e.to_string()) })?;
        let mut overrides = Vec::new();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("IKS_") else { continue };
            if CLI_VARIABLES.contains(&var.as_str()) || rest.starts_with("TEST_") {
                continue;
            }
            apply_env(&mut table, &var, rest, &value)?;
            overrides.push(var);
        }
        let config: Config = table.try_into().map_err(|e: toml::de::Error| {
            let message = one_line(e.message());
            if overrides.is_empty() {
                ConfigError::Parse { path: source.into(), message }
            } else {
                ConfigError::Parse { path: format!("{source} (with {})", overrides.join(", ")).into(), message }
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        if !self.database.url.is_empty() {
            crate::store::Backend::from_url(&self.database.url).map_err(|e| invalid("database.url", e.to_string()))?;
        }
        let max = parse_duration(&self.access.max_grant).map_err(|e| invalid("access.max_grant", e.to_string()))?;
        if max > chrono::Duration::days(7) {
            return Err(invalid("access.max_grant", "must be at most 7 days".into()));
        }
        for w in &self.access.warn_before {
            parse_duration(w).map_err(|e| invalid("access.warn_before", format!("'{w}': {e}")))?;
        }
        if self.tickets.autoclose_days == 0 {
            return Err(invalid("tickets.autoclose_days", "must be at least 1".into()));
        }
        if self.audit.checkpoint_every == 0 {
            return Err(invalid("audit.checkpoint_every", "must be at least 1".into()));
        }
        parse_duration(&self.tickets.due_soon).map_err(|e| invalid("tickets.due_soon", e.to_string()))?;
        self.hours.validate().map_err(|e| invalid("hours", e.to_string()))?;
        self.products.validate().map_err(|e| invalid("products", e.to_string()))?;
        Ok(())
    }

    /// The database URL, defaulting to SQLite in the data dir.
    pub fn database_url(&self, data_dir: &Path) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", data_dir.join("iks-gateway.db").display())
        } else {
            self.database.url.clone()
        }
    }
}

/// Sets `section.key` from `IKS_SECTION_KEY`. The value is read as a TOML value when it is
/// one (numbers, booleans, arrays) and as a string otherwise.
fn apply_env(table: &mut toml::Table, var: &str, rest: &str, value: &str) -> Result<(), ConfigError> {
    let sections = ["database", "ssh", "http", "access", "tickets", "audit", "hours"];
    let lower = rest.to_ascii_lowercase();
    let Some((section, key)) =
        sections.iter().find_map(|s| lower.strip_prefix(s).and_then(|k| k.strip_prefix('_')).map(|k| (*s, k)))
    else {
        return Err(ConfigError::Env {
            var: var.into(),
            message: format!("no such setting (variables are IKS_<SECTION>_<KEY>, sections: {})", sections.join(", ")),
        });
    };
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section_table) = entry else {
        return Err(ConfigError::Env { var: var.into(), message: format!("[{section}] in the file is not a table") });
    };
    section_table.insert(key.to_string(), parsed);
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn the_example_is_exactly_the_defaults() {
        assert_eq!(load_str(EXAMPLE, &[]).unwrap(), Config::default());
        assert_eq!(Config::load(None, []).unwrap(), Config::default());
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load_str(
            "[ssh]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("IKS_SSH_LISTEN", "127.0.0.1:2022"),
                ("IKS_TICKETS_AUTOCLOSE_DAYS", "14"),
                ("IKS_AUDIT_RETENTION_DAYS", "1095"),
                ("IKS_HOURS_TIMEZONE", "Asia/Yekaterinburg"),
                ("IKS_DATA_DIR", "/ignored"),
                ("IKS_TEST_DATABASE_URL", "ignored"),
                ("PATH", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.ssh.listen.port(), 2022);
        assert_eq!(c.tickets.autoclose_days, 14);
        assert_eq!(c.audit.retention_days, 1095);
        assert_eq!(c.hours.timezone, chrono_tz::Asia::Yekaterinburg);
    }

    #[test]
    fn bad_configuration_names_the_key() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("[ssh]\nlisen = \"x\"\n", &[], "unknown field `lisen`"),
            ("[sssh]\n", &[], "unknown field `sssh`"),
            ("[ssh]\nlisten = \"nope\"\n", &[], "invalid socket address"),
            ("[access]\nmax_grant = \"forever\"\n", &[], "access.max_grant"),
            ("[access]\nmax_grant = \"30d\"\n", &[], "at most 7 days"),
            ("[tickets]\nautoclose_days = 0\n", &[], "tickets.autoclose_days"),
            ("[audit]\ncheckpoint_every = 0\n", &[], "audit.checkpoint_every"),
            ("[audit]\nretention_days = -1\n", &[], "expected u32"),
            ("[tickets]\ndue_soon = \"soon\"\n", &[], "tickets.due_soon"),
            ("[database]\nurl = \"mysql://x\"\n", &[], "database.url"),
            ("[hours]\ntimezone = \"Mars/Olympus\"\n", &[], "Mars/Olympus"),
            ("this is not toml", &[], "config file"),
            ("", &[("IKS_SHH_LISTEN", "1")], "IKS_SHH_LISTEN: no such setting"),
            ("", &[("IKS_SSH_LISTN", "1")], "unknown field `listn`"),
        ];
        for (text, env, want) in cases {
            let err = load_str(text, env).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?} {env:?}: got '{err}', want '{want}'");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let missing = Config::load(Some(Path::new("/nonexistent/c.toml")), []).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read config file /nonexistent/c.toml"), "{missing}");
    }
}
