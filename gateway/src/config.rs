//! Configuration: one TOML file, every key with a documented default, `IKS_<SECTION>_<KEY>`
//! environment variables overriding the file, and [`Config::validate`] at start so a bad
//! value stops the gateway with a reason instead of surprising someone later.
//!
//! The example printed by `iks-gateway config example` is [`EXAMPLE`]; a test checks that
//! it parses to exactly [`Config::default`], so the documentation cannot drift.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use iks_domain::rules::{Calendar, ProductCatalog, WorkingHours, parse_duration};

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
    pub recording: RecordingConfig,
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
    /// The "host:port" engineers (and boxes' agents) connect to, as the panel and the CLI
    /// print it in `ssh` and `iks-agent enroll` commands; empty means the listen address.
    /// It differs from `listen` behind NAT or a port forward.
    pub public_address: String,
    /// The ciphers engineers' clients may choose from (see [`crate::ciphers`]).
    pub ciphers: Vec<String>,
    /// A connection that has not begun to authenticate this long after it was accepted is
    /// closed, e.g. "10s" (key exchange takes milliseconds).
    pub handshake_timeout: String,
    /// A connection not authenticated this long after it was accepted is closed, e.g.
    /// "120s" (OpenSSH's LoginGraceTime). An enrolling agent never counts as authenticated.
    pub login_grace_time: String,
    /// Unauthenticated connections held at once; beyond, new ones are closed at once.
    pub max_unauthenticated: u32,
    /// Unauthenticated connections held at once from one IPv4 address or IPv6 /64.
    pub max_unauthenticated_per_address: u32,
    /// Each agent's reports and connections are audited up to `agent_audit_events` per
    /// `agent_audit_window`; beyond, one summary event per window (see
    /// [`crate::ssh::agent_audit`]).
    pub agent_audit_window: String,
    pub agent_audit_events: u32,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            env: vec!["LANG".into(), "LC_*".into()],
            node: String::new(),
            public_address: String::new(),
            ciphers: crate::ciphers::DEFAULT.iter().map(|c| c.as_ref().to_string()).collect(),
            handshake_timeout: "10s".into(),
            login_grace_time: "120s".into(),
            max_unauthenticated: 256,
            max_unauthenticated_per_address: 32,
            agent_audit_window: "10m".into(),
            agent_audit_events: 20,
        }
    }
}

impl SshConfig {
    /// `handshake_timeout`; [`Config::validate`] guarantees it parses.
    pub fn handshake_timeout(&self) -> std::time::Duration {
        std_duration(&self.handshake_timeout).unwrap_or(std::time::Duration::from_secs(10))
    }

    /// `agent_audit_window`; [`Config::validate`] guarantees it parses.
    pub fn agent_audit_window(&self) -> std::time::Duration {
        std_duration(&self.agent_audit_window).unwrap_or(std::time::Duration::from_secs(600))
    }

    /// `login_grace_time`; [`Config::validate`] guarantees it parses.
    pub fn login_grace_time(&self) -> std::time::Duration {
        std_duration(&self.login_grace_time).unwrap_or(std::time::Duration::from_secs(120))
    }

    /// The host and port people connect to: `public_address`, else the listen address.
    pub fn public_host_port(&self) -> (String, u16) {
        parse_host_port(&self.public_address).unwrap_or_else(|| (self.listen.ip().to_string(), self.listen.port()))
    }

    /// `host:port` as `iks-agent enroll --gateway` takes it.
    pub fn public_address(&self) -> String {
        let (host, port) = self.public_host_port();
        if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
    }

    /// The exact command an engineer types to reach `target` (`T-1042+main-gw`).
    pub fn connect_command(&self, target: &impl std::fmt::Display) -> String {
        let (host, port) = self.public_host_port();
        format!("ssh -p {port} {target}@{host}")
    }
}

/// `host:port` or `[v6]:port` with a non-zero port and a host without spaces.
fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let printable = |c: char| c.is_ascii_graphic() && !"@/[]'\"`$;".contains(c);
    (!host.is_empty() && host.chars().all(printable)).then(|| (host.to_string(), port))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// The address people open the panel at, e.g. "https://gw.example.ru"; empty means
    /// http://<listen>. An https URL makes the panel's cookies Secure.
    pub public_url: String,
    /// A panel session unused this long ends, e.g. "30m".
    pub idle_timeout: String,
    /// A panel session ends this long after signing in, however active, e.g. "12h".
    pub session_lifetime: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            idle_timeout: "30m".into(),
            session_lifetime: "12h".into(),
        }
    }
}

impl HttpConfig {
    /// The panel's address as people type it.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        if self.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    pub fn idle_timeout(&self) -> chrono::Duration {
        parse_duration(&self.idle_timeout).unwrap_or_else(|_| chrono::Duration::minutes(30))
    }

    pub fn session_lifetime(&self) -> chrono::Duration {
        parse_duration(&self.session_lifetime).unwrap_or_else(|_| chrono::Duration::hours(12))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// The longest window a grant may have, e.g. "8h".
    pub max_grant: String,
    /// When to warn the engineer before the grant ends, e.g. ["5m", "1m"].
    pub warn_before: Vec<String>,
    /// How long live sessions outlast an unreachable store (a revocation made elsewhere
    /// cannot be seen meanwhile), e.g. "60s".
    pub store_grace: String,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self { max_grant: "8h".into(), warn_before: vec!["5m".into(), "1m".into()], store_grace: "60s".into() }
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

    /// `store_grace` as a duration; [`Config::validate`] guarantees it parses.
    pub fn store_grace(&self) -> std::time::Duration {
        parse_duration(&self.store_grace)
            .ok()
            .and_then(|d| d.to_std().ok())
            .unwrap_or(std::time::Duration::from_secs(60))
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
    /// While serving, sign a checkpoint at least this often (a duration like 5m), each
    /// promising the next within twice this: the window an undetected cut can span.
    pub checkpoint_interval: String,
    /// Append a copy of every checkpoint to this file (empty: none); `audit verify`
    /// requires each one in it to be in the database.
    pub checkpoint_log: String,
    /// Delete audit events older than this many days; 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_interval: "5m".into(),
            checkpoint_log: String::new(),
            retention_days: 0,
        }
    }
}

impl AuditConfig {
    /// `checkpoint_interval` as a duration; [`Config::validate`] guarantees it parses.
    pub fn checkpoint_interval(&self) -> chrono::Duration {
        parse_duration(&self.checkpoint_interval).unwrap_or_else(|_| chrono::Duration::minutes(5))
    }

    /// The checkpoint log, if one is configured.
    pub fn checkpoint_log(&self) -> Option<crate::audit::checkpoint::CheckpointLog> {
        (!self.checkpoint_log.is_empty()).then(|| crate::audit::checkpoint::CheckpointLog::new(&self.checkpoint_log))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Content recorded per channel without a terminal (stdin, stdout and stderr together),
    /// e.g. "16MiB"; beyond it only byte counts and SHA-256 are kept.
    pub channel_cap: String,
    /// Bytes one session's recording may take, e.g. "256MiB"; reaching it ends the session.
    pub session_quota: String,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self { channel_cap: "16MiB".into(), session_quota: "256MiB".into() }
    }
}

impl RecordingConfig {
    /// The limits in bytes; [`Config::validate`] guarantees they parse.
    pub fn limits(&self) -> crate::recording::Limits {
        let default = crate::recording::Limits::default();
        crate::recording::Limits {
            channel_cap: parse_size(&self.channel_cap).unwrap_or(default.channel_cap),
            session_quota: parse_size(&self.session_quota).unwrap_or(default.session_quota),
        }
    }
}

/// A size as people write it: `4096`, `64KiB`, `16MiB`, `1GiB` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        other => return Err(format!("'{s}': unknown unit '{other}' (use B, KiB, MiB or GiB)")),
    };
    let n: u64 = number.parse().map_err(|_| format!("'{s}' is not a size such as 16MiB"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("'{s}' is too large"))
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
        let mut config: Config = table.try_into().map_err(|e: toml::de::Error| {
            let message = one_line(e.message());
            if overrides.is_empty() {
                ConfigError::Parse { path: source.into(), message }
            } else {
                ConfigError::Parse { path: format!("{source} (with {})", overrides.join(", ")).into(), message }
            }
        })?;
        config.hours.production = production_calendar(&config.hours.calendar)?;
        config.validate()?;
        Ok(config)
    }

    /// Why first-response deadlines in the year after `today`'s may be counted wrongly, if
    /// they may: `serve` says so at start, so the calendar is renewed before the year turns.
    pub fn calendar_gap(&self, today: chrono::NaiveDate) -> Option<String> {
        use chrono::Datelike as _;
        if self.hours.calendar == "none" {
            return None;
        }
        self.hours.production.gap(today.year() + 1).map(|gap| format!("{gap} ([hours] calendar)"))
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
        let grace =
            parse_duration(&self.access.store_grace).map_err(|e| invalid("access.store_grace", e.to_string()))?;
        if grace > chrono::Duration::hours(1) {
            // Longer would leave a revoked session running unseen for longer than anyone expects.
            return Err(invalid("access.store_grace", "must be at most 1 hour".into()));
        }
        if self.tickets.autoclose_days == 0 {
            return Err(invalid("tickets.autoclose_days", "must be at least 1".into()));
        }
        if self.audit.checkpoint_every == 0 {
            return Err(invalid("audit.checkpoint_every", "must be at least 1".into()));
        }
        let interval = parse_duration(&self.audit.checkpoint_interval)
            .map_err(|e| invalid("audit.checkpoint_interval", e.to_string()))?;
        if interval < chrono::Duration::seconds(1) || interval > chrono::Duration::hours(24) {
            return Err(invalid("audit.checkpoint_interval", "must be between 1s and 24h".into()));
        }
        parse_duration(&self.tickets.due_soon).map_err(|e| invalid("tickets.due_soon", e.to_string()))?;
        parse_duration(&self.http.idle_timeout).map_err(|e| invalid("http.idle_timeout", e.to_string()))?;
        parse_duration(&self.http.session_lifetime).map_err(|e| invalid("http.session_lifetime", e.to_string()))?;
        let public = &self.http.public_url;
        if !(public.is_empty() || public.starts_with("http://") || public.starts_with("https://")) {
            return Err(invalid("http.public_url", format!("'{public}' must start with http:// or https://")));
        }
        if !self.ssh.public_address.is_empty() && parse_host_port(&self.ssh.public_address).is_none() {
            let message = format!("'{}' must be host:port, e.g. gw.example.ru:2222", self.ssh.public_address);
            return Err(invalid("ssh.public_address", message));
        }
        crate::ciphers::engineer_leg(&self.ssh.ciphers).map_err(|e| invalid("ssh.ciphers", e))?;
        let handshake =
            positive_duration(&self.ssh.handshake_timeout).map_err(|e| invalid("ssh.handshake_timeout", e))?;
        let grace = positive_duration(&self.ssh.login_grace_time).map_err(|e| invalid("ssh.login_grace_time", e))?;
        if handshake > grace {
            return Err(invalid("ssh.handshake_timeout", "must not be longer than ssh.login_grace_time".into()));
        }
        positive_duration(&self.ssh.agent_audit_window).map_err(|e| invalid("ssh.agent_audit_window", e))?;
        if self.ssh.max_unauthenticated == 0 {
            return Err(invalid("ssh.max_unauthenticated", "must be at least 1".into()));
        }
        if self.ssh.max_unauthenticated_per_address == 0 {
            return Err(invalid("ssh.max_unauthenticated_per_address", "must be at least 1".into()));
        }
        let cap = parse_size(&self.recording.channel_cap).map_err(|e| invalid("recording.channel_cap", e))?;
        let quota = parse_size(&self.recording.session_quota).map_err(|e| invalid("recording.session_quota", e))?;
        if quota < crate::recording::MIN_QUOTA {
            let message = format!("must be at least {} KiB", crate::recording::MIN_QUOTA >> 10);
            return Err(invalid("recording.session_quota", message));
        }
        if cap == 0 {
            // 0 would record no channel's content at all: use a small cap instead.
            return Err(invalid("recording.channel_cap", "must be at least 1 byte".into()));
        }
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
    let sections = ["database", "ssh", "http", "access", "tickets", "audit", "recording", "hours"];
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

fn std_duration(s: &str) -> Option<std::time::Duration> {
    parse_duration(s).ok().and_then(|d| d.to_std().ok())
}

/// A duration above zero, or why not.
fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    d.to_std().ok().filter(|d| !d.is_zero()).ok_or_else(|| format!("'{s}' must be longer than zero"))
}

/// The production calendar `[hours] calendar` names: "" the one shipped, "none" none, else
/// a file of the same format, read now (a bad file stops the start, saying what is wrong).
fn production_calendar(setting: &str) -> Result<Calendar, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { key: "hours.calendar", message };
    match setting {
        "" => Ok(Calendar::russia()),
        "none" => Ok(Calendar::default()),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read {path}: {e}")))?;
            Calendar::parse(&text).map_err(|e| invalid(format!("{path}: {e}")))
        }
    }
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
    fn the_production_calendar_is_shipped_replaced_or_dropped() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let shipped = Config::default();
        assert!(!shipped.hours.is_working_day(d("2026-12-31")), "31 December 2026 is a day off by the decree");
        assert!(shipped.calendar_gap(d("2026-12-08")).unwrap().contains("2027 holds only the statutory holidays"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("calendar.toml");
        std::fs::write(
            &file,
            "[2027]\nsource = \"decree\"\ndays_off = [\"2027-01-01\"]\nworking = [\"2027-11-13\"]\nshortened = []\n",
        )
        .unwrap();
        let replaced = load_str(&format!("[hours]\ncalendar = \"{}\"\n", file.display()), &[]).unwrap();
        assert!(replaced.hours.is_working_day(d("2026-12-31")), "the shipped 2026 is gone with the file");
        assert!(replaced.hours.is_working_day(d("2027-11-13")), "a Saturday the file makes a working day");
        assert_eq!(replaced.calendar_gap(d("2026-12-08")), None, "2027 is complete in the file");
        assert!(replaced.calendar_gap(d("2027-03-01")).unwrap().contains("has no 2028"));

        let none = load_str("[hours]\ncalendar = \"none\"\n", &[]).unwrap();
        assert!(none.hours.is_working_day(d("2026-12-31")));
        assert_eq!(none.calendar_gap(d("2026-12-08")), None, "no calendar was asked for");

        std::fs::write(
            &file,
            "[2027]\nsource = \"decree\"\ndays_off = [\"2026-01-01\"]\nworking = []\nshortened = []\n",
        )
        .unwrap();
        let bad = load_str(&format!("[hours]\ncalendar = \"{}\"\n", file.display()), &[]).unwrap_err().to_string();
        assert!(
            bad.contains("hours.calendar") && bad.contains("[2027] lists 2026-01-01, which is in another year"),
            "{bad}"
        );
        let missing = load_str("[hours]\ncalendar = \"/nonexistent/calendar.toml\"\n", &[]).unwrap_err().to_string();
        assert!(missing.contains("cannot read /nonexistent/calendar.toml"), "{missing}");
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
            ("[ssh]\npublic_address = \"gw.example.ru\"\n", &[], "ssh.public_address"),
            ("[ssh]\npublic_address = \"gw example:22\"\n", &[], "must be host:port"),
            ("[ssh]\nciphers = [\"aes128-ctr\"]\n", &[], "ssh.ciphers: 'aes128-ctr' is not one of"),
            ("", &[("IKS_SSH_CIPHERS", "[]")], "ssh.ciphers: must name at least one cipher"),
            ("[access]\nmax_grant = \"forever\"\n", &[], "access.max_grant"),
            ("[access]\nmax_grant = \"30d\"\n", &[], "at most 7 days"),
            ("[access]\nstore_grace = \"2h\"\n", &[], "access.store_grace: must be at most 1 hour"),
            ("[tickets]\nautoclose_days = 0\n", &[], "tickets.autoclose_days"),
            ("[audit]\ncheckpoint_every = 0\n", &[], "audit.checkpoint_every"),
            ("[audit]\ncheckpoint_interval = \"0s\"\n", &[], "audit.checkpoint_interval"),
            ("[audit]\ncheckpoint_interval = \"soon\"\n", &[], "audit.checkpoint_interval"),
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

    #[test]
    fn people_are_told_the_public_ssh_address() {
        let mut ssh = SshConfig::default();
        assert_eq!(ssh.connect_command(&"T-1042+main-gw"), "ssh -p 2222 T-1042+main-gw@127.0.0.1");
        ssh.public_address = "gw.example.ru:22".into();
        assert_eq!(ssh.connect_command(&"T-7"), "ssh -p 22 T-7@gw.example.ru");
        assert_eq!(ssh.public_address(), "gw.example.ru:22");
        ssh.public_address = "[2001:db8::1]:2222".into();
        assert_eq!(ssh.connect_command(&"T-7"), "ssh -p 2222 T-7@2001:db8::1");
        assert_eq!(ssh.public_address(), "[2001:db8::1]:2222");
    }
}
