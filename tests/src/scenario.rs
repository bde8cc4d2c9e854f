//! One call to a gateway with a customer, a box, an engineer and an approved grant:
//! organisation ООО Ромашка (category 1), box `main-gw` (a real sshd), operator `ivanov`,
//! customer `petrov`, ticket T-1001, grant G-1 approved, `serve` running.
//!
//! When a test panics, dropping the scenario prints the gateway's log and sshd's log, so
//! the failure explains itself.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::engineer::{Engineer, Key};
use crate::process;
use crate::serve::Serve;
use crate::sshd::BoxSshd;
use crate::{Gateway, Run};

pub const ORG: &str = "7707083893";
pub const ORG_NAME: &str = "ООО Ромашка";
pub const TICKET: &str = "T-1001";
pub const BOX: &str = "main-gw";

/// What differs between scenarios.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Added to `serve`'s environment.
    pub env: Vec<(String, String)>,
    /// Extra `access approve G-1` arguments (`--until 15s`); `None`: no access request at all.
    pub approve: Option<Vec<String>>,
    /// The store's URL; `None`: SQLite in the data dir.
    pub database: Option<String>,
    /// main-gw is reached through its agent: the gateway is given no address or host key
    /// for it (enrol one with [`crate::agent_harness::Agent::enrol`]).
    pub through_agent: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self { env: Vec::new(), approve: Some(Vec::new()), database: None, through_agent: false }
    }
}

impl Setup {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn approve(mut self, extra: &[&str]) -> Self {
        self.approve = Some(extra.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn no_request(mut self) -> Self {
        self.approve = None;
        self
    }

    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.into());
        self
    }

    pub fn through_agent(mut self) -> Self {
        self.through_agent = true;
        self
    }
}

pub struct Scenario {
    /// ivanov, at the gateway's port.
    pub engineer: Engineer,
    pub serve: Serve,
    pub sshd: BoxSshd,
    pub gw: Gateway,
}

impl Scenario {
    /// Everything ready: T-1001's grant G-1 approved for an hour, the gateway serving.
    pub fn ready() -> Self {
        Self::with(Setup::default())
    }

    pub fn with(setup: Setup) -> Self {
        let gw = setup.database.clone().map_or_else(Gateway::sqlite, Gateway::with_database);
        let ca = gw.run(&["ca", "public-key"]).success().trim().to_string();
        let sshd = BoxSshd::start(&gw.path("box"), &ca);
        let key = Key::generate(&gw.path("engineer"), "ivanov");
        let purchased = process::date_days_ago(30);
        gw.run(&["admin", "org", "add", "--inn", ORG, "--name", ORG_NAME, "--purchased", &purchased]).success();
        #[rustfmt::skip]
        let mut add_box = vec![
            "admin", "box", "add", "--org", ORG, "--name", BOX, "--product", "iks-standard", "--version", "7.2",
            "--login", crate::sshd::USER,
        ];
        let (address, host_key) = (sshd.address(), sshd.host_key_pub().display().to_string());
        if !setup.through_agent {
            add_box.extend(["--address", &address, "--host-key", &host_key]);
        }
        gw.run(&add_box).success();
        let public = key.public().display().to_string();
        gw.run(&["admin", "operator", "add", "--login", "ivanov", "--name", "Иван Иванов", "--ssh-key", &public])
            .success();
        gw.run(&["admin", "customer", "add", "--org", ORG, "--login", "petrov", "--name", "Пётр Петров"]).success();
        #[rustfmt::skip]
        let opened = gw.run(&[
            "ticket", "open", "--org", ORG, "--contact", "Пётр", "--phone", "+7 495 000-00-00",
            "--product", "iks-standard", "--version", "7.2", "--description", "VPN is down",
        ]);
        assert!(opened.success().starts_with(&format!("opened {TICKET} ")), "{}", opened.stdout);
        let serve = Serve::start(&gw, &setup.env);
        let engineer = Engineer::new(key, serve.port());
        let s = Self { engineer, serve, sshd, gw };
        if let Some(extra) = &setup.approve {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let grant = s.grant(TICKET, "ivanov", &extra);
            assert_eq!(grant, "G-1");
        }
        s
    }

    /// Stops the gateway and starts it again with `env` (e.g. `IKS_CONFIG`), on the same
    /// SSH port, as a restarted service comes back where engineers and agents find it.
    pub fn restart(&mut self, env: &[(String, String)]) {
        let stopped = self.serve.terminate(Duration::from_secs(20));
        assert!(stopped.is_some(), "the gateway did not stop\n{}", self.diagnostics());
        let mut with_port = vec![("IKS_SSH_LISTEN".to_string(), self.serve.address())];
        with_port.extend_from_slice(env);
        self.serve = Serve::start(&self.gw, &with_port);
        self.engineer.port = self.serve.port();
    }

    /// Asks for an hour on main-gw for `ticket` as `operator` and approves it as petrov
    /// with `approve_extra`; returns the grant's ID.
    #[track_caller]
    pub fn grant(&self, ticket: &str, operator: &str, approve_extra: &[&str]) -> String {
        let grant = self.request(ticket, operator);
        let mut args = vec!["access", "approve", grant.as_str(), "--as", "petrov"];
        args.extend_from_slice(approve_extra);
        self.admin(&args);
        grant
    }

    /// Asks for an hour on main-gw; returns the pending grant's ID.
    #[track_caller]
    pub fn request(&self, ticket: &str, operator: &str) -> String {
        #[rustfmt::skip]
        let out = self.admin(&[
            "access", "request", "--ticket", ticket, "--box", BOX, "--operator", operator,
            "--duration", "1h", "--reason", "check logs",
        ]);
        out.split_whitespace().find(|w| w.starts_with("G-")).unwrap_or_else(|| panic!("no grant ID in: {out}")).into()
    }

    /// Opens another ticket for the organisation; returns its ID (T-1002, …).
    #[track_caller]
    pub fn open_ticket(&self) -> String {
        #[rustfmt::skip]
        let out = self.admin(&[
            "ticket", "open", "--org", ORG, "--contact", "Пётр", "--phone", "+7 495 000-00-00",
            "--product", "iks-standard", "--version", "7.2", "--description", "another problem",
        ]);
        out.split_whitespace().nth(1).unwrap_or_default().to_string()
    }

    /// Registers another operator with a key of their own; returns them at the gateway's port.
    pub fn add_operator(&self, login: &str) -> Engineer {
        let key = Key::generate(&self.gw.path("engineer"), login);
        let public = key.public().display().to_string();
        self.admin(&["admin", "operator", "add", "--login", login, "--name", login, "--ssh-key", &public]);
        Engineer::new(key, self.serve.port())
    }

    /// An admin command that must succeed; returns its stdout.
    #[track_caller]
    pub fn admin(&self, args: &[&str]) -> String {
        self.gw.run(args).success().to_string()
    }

    /// ivanov runs `remote` on T-1001.
    #[track_caller]
    pub fn ssh(&self, remote: &str) -> Run {
        self.engineer.ssh(TICKET, remote)
    }

    /// `session list --json`, newest first.
    pub fn sessions(&self) -> Vec<Value> {
        self.gw.json(&["session", "list"]).as_array().cloned().unwrap_or_default()
    }

    pub fn live_sessions(&self) -> Vec<Value> {
        self.gw.json(&["session", "list", "--live"]).as_array().cloned().unwrap_or_default()
    }

    /// `session show S-ID --json`: `{"session": …, "events": […]}`.
    pub fn show(&self, id: i64) -> Value {
        self.gw.json(&["session", "show", &format!("S-{id}")])
    }

    /// The session's events of `kind`.
    pub fn events(&self, id: i64, kind: &str) -> Vec<Value> {
        let shown = self.show(id);
        shown["events"].as_array().into_iter().flatten().filter(|e| e["kind"] == kind).cloned().collect()
    }

    /// Waits until session `id` has ended (its end is written after the connection closes).
    #[track_caller]
    pub fn wait_ended(&self, id: i64) -> Value {
        process::wait_for(
            &format!("session S-{id} to end"),
            Duration::from_secs(20),
            || self.sessions().into_iter().find(|s| s["id"] == id && !s["ended_at"].is_null()),
            || format!("sessions: {:#}\n{}", Value::Array(self.sessions()), self.diagnostics()),
        )
    }

    /// Waits until `n` sessions are live; returns them.
    #[track_caller]
    pub fn wait_live(&self, n: usize) -> Vec<Value> {
        process::wait_for(
            &format!("{n} live session(s)"),
            Duration::from_secs(20),
            || Some(self.live_sessions()).filter(|l| l.len() == n),
            || self.diagnostics(),
        )
    }

    /// The recording file of a session row.
    pub fn recording(&self, session: &Value) -> PathBuf {
        let rel = session["recording"].as_str().unwrap_or_else(|| panic!("session without a recording: {session}"));
        self.gw.data_dir().join("recordings").join(rel)
    }

    /// The `details` of the audit events with `action`, oldest first (read with the sqlite3
    /// command line: there is no CLI for the audit log yet).
    pub fn audit(&self, action: &str) -> Vec<Value> {
        let db = self.gw.data_dir().join("iks-gateway.db");
        let sql = format!("SELECT details FROM audit_events WHERE action = '{action}' ORDER BY seq");
        let run = process::run(Command::new("sqlite3").arg(&db).arg(sql));
        assert!(run.ok, "sqlite3 (apt-get install sqlite3): {}", run.stderr);
        run.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit details {l}: {e}")))
            .collect()
    }

    /// The gateway's and the box's recent logs, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- gateway log (last 60 lines) ---\n{}\n--- sshd log (last 30 lines) ---\n{}\n---",
            self.serve.log_tail(60),
            self.sshd.log_tail(30)
        )
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("\n{}", self.diagnostics());
        }
    }
}

/// A session's end reason in words: "client exit", "grant expired", … (the JSON may
/// spell them with underscores).
pub fn end_reason(session: &Value) -> String {
    session["end_reason"].as_str().unwrap_or("(none)").replace('_', " ")
}

/// One asciicast v2 event: time, code (`o`, `i`, `r`), data.
#[derive(Debug, Clone, PartialEq)]
pub struct CastEvent {
    pub time: f64,
    pub code: String,
    pub data: String,
}

/// Parses an asciicast v2 file: header and events; panics on a malformed line.
pub fn read_cast(path: &std::path::Path) -> (Value, Vec<CastEvent>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: header: {e}", path.display()));
    let events = lines
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: line {l}: {e}", path.display()));
            CastEvent {
                time: v[0].as_f64().unwrap_or_else(|| panic!("time in {l}")),
                code: v[1].as_str().unwrap_or_else(|| panic!("code in {l}")).into(),
                data: v[2].as_str().unwrap_or_else(|| panic!("data in {l}")).into(),
            }
        })
        .collect();
    (header, events)
}
