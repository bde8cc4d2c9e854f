//! The panel's whole flow in a real browser (Debian's Chromium, driven by playwright-core
//! from `tests/browser/flow.mjs`) against a real gateway, a real sshd and the stock `ssh`:
//! an operator requests access, the customer approves, the engineer's `ssh` works, the
//! customer watches it live and revokes, the `ssh` dies, and the auditor finds the typed
//! command by search and replays that moment.
//!
//! Screenshots go to a temporary directory; `IKS_SCREENSHOTS=docs/screenshots cargo test
//! -p iks-e2e --test panel_browser` refreshes the README's.

use std::process::Command;
use std::time::Duration;

use iks_e2e::panel::{browser_dir, ensure_playwright, password_link};
use iks_e2e::process;
use iks_e2e::scenario::{Scenario, Setup, TICKET};

#[test]
fn request_approve_watch_revoke_and_find_it_again() {
    ensure_playwright();
    let s = Scenario::with(Setup::default().no_request());
    s.admin(&["admin", "auditor", "add", "--login", "sidorova", "--name", "Анна Сидорова"]);
    let shots = std::env::var("IKS_SCREENSHOTS")
        .map(|d| std::env::current_dir().unwrap().join("..").join(d))
        .unwrap_or_else(|_| s.gw.path("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let mut ssh = vec!["ssh".to_string()];
    ssh.extend(s.engineer.options());
    ssh.extend(["-tt".to_string(), format!("{TICKET}@127.0.0.1")]);
    let mut node = Command::new("node");
    node.arg(browser_dir().join("flow.mjs"))
        .current_dir(browser_dir())
        .env("IKS_PANEL", format!("http://127.0.0.1:{}", s.serve.http_port()))
        .env("IKS_LINK_OPERATOR", password_link(&s.gw, "ivanov"))
        .env("IKS_LINK_CUSTOMER", password_link(&s.gw, "petrov"))
        .env("IKS_LINK_AUDITOR", password_link(&s.gw, "sidorova"))
        .env("IKS_SSH_ARGV", serde_json::to_string(&ssh).unwrap())
        .env("IKS_TICKET", TICKET)
        .env("IKS_SHOTS", &shots);
    let run = process::run_timed(&mut node, None, Duration::from_secs(240)).run;
    assert!(
        run.ok,
        "the browser flow failed ({:?})\n--- flow stdout\n{}\n--- flow stderr\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr,
        s.diagnostics()
    );
    // What the browser did is in the store, as the CLI sees it.
    let session = s.sessions().into_iter().next().expect("the engineer's session");
    assert_eq!(session["end_reason"], "revoked", "{session:#}");
    let rec = std::fs::read_to_string(s.recording(&session)).unwrap();
    assert!(rec.contains("iptables -F"), "the typed command is in the recording");
    assert!(!s.audit("session.replay").is_empty(), "the auditor's replay is audited");
    for name in ["customer-access", "customer-live", "auditor-search", "auditor-replay", "customer-access-phone"] {
        assert!(shots.join(format!("{name}.png")).exists(), "screenshot {name}");
    }
}
