//! Every access rule, as the engineer meets it: `ssh` exits 1 with exactly one line on
//! stderr saying why, no session starts, and the refusal is in the audit log.

use std::time::{Duration, Instant};

use iks_e2e::engineer::{Engineer, Key};
use iks_e2e::process;
use iks_e2e::scenario::{ORG, Scenario, Setup, TICKET, end_reason};

/// Connects as `user`, asserts the refusal's shape, returns its line.
#[track_caller]
fn refused(engineer: &Engineer, user: &str) -> String {
    let run = engineer.ssh(user, "echo should-not-run");
    assert_eq!(run.code, Some(1), "{user}: a refusal exits 1: {run:?}");
    assert_eq!(run.stdout, "", "{user}: nothing ran: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{user}: exactly one line on stderr: {:?}", run.stderr);
    assert!(lines[0].starts_with("access refused: "), "{user}: {}", lines[0]);
    assert!(!lines[0].contains("access refused: access refused"), "{user}: the prefix is doubled: {}", lines[0]);
    lines[0].to_string()
}

#[track_caller]
fn assert_starts(line: &str, prefix: &str) {
    assert!(line.starts_with(prefix), "expected a line starting with\n  {prefix:?}\ngot\n  {line:?}");
}

#[test]
fn every_access_rule_refuses_with_one_line_and_is_audited() {
    let s = Scenario::with(Setup::default().no_request());
    let ivanov = &s.engineer;
    let mut lines: Vec<String> = Vec::new();
    let check = |user: &str, prefix: &str| -> String {
        let line = refused(ivanov, user);
        assert_starts(&line, prefix);
        line
    };

    // A second ticket whose grant ends in 2 s, checked at the end.
    let t2 = s.open_ticket();
    assert_eq!(t2, "T-1002");
    let short = s.grant(&t2, "ivanov", &["--until", "2s"]);
    let short_approved = Instant::now();

    #[rustfmt::skip]
    let table: &[(&str, &str)] = &[
        ("root", "access refused: the user name must be T-<ticket> or T-<ticket>+<box> (e.g. T-1042+main-gw), got 'root'"),
        ("T-1001+Main", "access refused: the user name must be T-<ticket> or T-<ticket>+<box>"),
        ("T-1999", "access refused: T-1999: no such ticket"),
        ("T-1001+nope", "access refused: T-1001: ООО Ромашка has no box named 'nope'"),
        ("T-1001", "access refused: T-1001: no access has been requested for any box"),
        ("T-1001+main-gw", "access refused: T-1001: no access request for box main-gw"),
    ];
    for (user, prefix) in table {
        lines.push(check(user, prefix));
    }

    let g = s.request(TICKET, "ivanov");
    lines.push(check(
        TICKET,
        &format!("access refused: T-1001: access request {g} is waiting for the customer's approval"),
    ));

    s.admin(&["access", "reject", &g, "--as", "petrov", "--reason", "not now"]);
    lines.push(check(TICKET, "access refused: T-1001: the customer (petrov) rejected access: not now"));

    let g = s.grant(TICKET, "ivanov", &[]);
    s.admin(&["access", "revoke", &g, "--as", "petrov"]);
    lines.push(check(TICKET, "access refused: T-1001: access was revoked by petrov at "));
    assert!(lines.last().unwrap().ends_with(" MSK"), "the time is shown in Moscow time: {:?}", lines.last());

    // A grant approved without a choice is for the engineer who asked: another engineer is
    // refused, the asker is not; widening it to any engineer is an explicit choice.
    let sidorov = s.add_operator("sidorov");
    let restricted = s.grant(TICKET, "ivanov", &[]);
    let line = refused(&sidorov, TICKET);
    assert_eq!(line, "access refused: T-1001: the grant is restricted to another engineer");
    lines.push(line);
    let allowed = s.ssh("echo allowed");
    assert_eq!(allowed.stdout, "allowed\n", "the requester may use it: {allowed:?}");
    s.admin(&["access", "revoke", &restricted, "--as", "petrov"]);
    s.grant(TICKET, "ivanov", &["--any-engineer"]);
    let widened = sidorov.ssh(TICKET, "echo widened");
    assert_eq!(widened.stdout, "widened\n", "any engineer may use a widened grant: {widened:?}");

    // Category 3: the first year is long past and no module was bought.
    s.admin(&["admin", "org", "update", ORG, "--purchased", "2020-01-01", "--module-paid-until", "none"]);
    lines.push(check(TICKET, "access refused: T-1001: the support module of ООО Ромашка expired on 2021-01-01"));
    assert!(lines.last().unwrap().contains("(category 3: no remote SSH)"), "{:?}", lines.last());
    s.admin(&["admin", "org", "update", ORG, "--purchased", &process::date_days_ago(30)]);
    assert_eq!(s.ssh("echo back").stdout, "back\n", "category 1 again: access again");

    // Category 4: a box running the free IKS Lite.
    s.admin(&[
        "admin",
        "box",
        "add",
        "--org",
        ORG,
        "--name",
        "lite-gw",
        "--product",
        "iks-lite",
        "--version",
        "7",
        "--login",
        iks_e2e::sshd::USER,
    ]);
    lines.push(check("T-1001+lite-gw", "access refused: T-1001: "));
    assert!(lines.last().unwrap().contains("IKS Lite"), "{:?}", lines.last());
    assert!(lines.last().unwrap().ends_with("(category 4: no remote SSH)"), "{:?}", lines.last());

    // The short grant has ended.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(short_approved.elapsed()));
    lines.push(check(&t2, "access refused: T-1002: the grant ended at "));
    let listed = s.admin(&["access", "list", "--ticket", &t2]);
    assert!(listed.contains(&short), "{listed}");

    s.admin(&["ticket", "close", TICKET, "--reason", "resolved"]);
    lines.push(check(TICKET, "access refused: T-1001: the ticket is closed"));

    let sessions = s.sessions();
    assert_eq!(sessions.len(), 3, "only the three allowed connections made sessions: {sessions:#?}");
    assert!(sessions.iter().all(|x| end_reason(x) == "client exit"), "{sessions:#?}");

    let audited = s.audit("session.refuse");
    let messages: Vec<&str> = audited.iter().map(|d| d["message"].as_str().unwrap_or_default()).collect();
    assert_eq!(messages, lines, "every refusal is in the audit log, with the message the engineer saw");
    let rules: Vec<&str> = audited.iter().map(|d| d["rule"].as_str().unwrap_or_default()).collect();
    for rule in ["target", "ticket", "grant", "operator", "category"] {
        assert!(rules.contains(&rule), "a refusal by rule {rule}: {rules:?}");
    }
}

/// A box presenting another host key than the pinned one is refused with one line naming
/// the ticket and both fingerprints, and the gateway never logs in to the impostor.
/// (Regression: gateway-side refusals once doubled the "access refused:" prefix.)
#[test]
fn a_box_presenting_another_host_key_is_refused() {
    let s = Scenario::ready();
    let other = Key::generate(&s.gw.path("other"), "other_host_key");
    s.admin(&["admin", "box", "update", "1", "--host-key", &other.public().display().to_string()]);
    let run = s.ssh("echo should-not-run");
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", run.stderr);
    assert!(lines[0].contains("the host key of box main-gw does not match the pinned key"), "{}", lines[0]);
    assert!(!s.sshd.log_tail(100).contains("Accepted publickey"), "the gateway never authenticated to the box");
    let audited = s.audit("session.refuse");
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0]["rule"], "host-key", "{audited:?}");
    let want = "access refused: T-1001: the host key of box main-gw does not match the pinned key";
    assert!(lines[0].starts_with(want), "expected a line starting with\n  {want:?}\ngot\n  {:?}", lines[0]);
}

/// Each refused key costs the gateway's `auth_rejection_time` (50 ms, ssh/mod.rs), not
/// russh's default second: three of them cost less than 2 s more than a plain login on the
/// same machine at the same moment (a slow machine slows both).
#[test]
fn unknown_keys_fail_authentication_quickly() {
    const REJECTIONS_AT_MOST: Duration = Duration::from_secs(2);
    let s = Scenario::ready();
    let plain = s.engineer.ssh_timed(TICKET, &[], "echo in", None);
    assert_eq!(plain.run.stdout, "in\n", "{:?}", plain.run);
    let bound = plain.elapsed + REJECTIONS_AT_MOST;
    let dir = s.gw.path("strangers");
    let strangers: Vec<Key> = (1..=3).map(|i| Key::generate(&dir, &format!("stranger{i}"))).collect();
    let identities = |with_ivanov: bool| {
        let mut args = Vec::new();
        for k in &strangers {
            args.push("-o".to_string());
            args.push(format!("IdentityFile={}", k.private.display()));
        }
        if with_ivanov {
            args.push("-o".into());
            args.push(format!("IdentityFile={}", s.engineer.key.private.display()));
        }
        args
    };
    // Only strangers' keys: ssh's own IdentityFile (ivanov's, from options()) is replaced by
    // pointing the client at a stranger first.
    let mut stranger = s.engineer.clone();
    stranger.key = strangers[0].clone();
    let extra = identities(false);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let denied = stranger.ssh_timed(TICKET, &extra, "echo should-not-run", None);
    assert_eq!(denied.run.code, Some(255), "{:?}", denied.run);
    assert!(denied.run.stderr.contains("Permission denied"), "{:?}", denied.run);
    assert_eq!(denied.run.stdout, "");
    println!("3 unknown keys refused in {:?} (a plain login: {:?})", denied.elapsed, plain.elapsed);
    assert!(denied.elapsed < bound, "refusing 3 keys took {:?}, a login {:?}", denied.elapsed, plain.elapsed);

    let extra = identities(true);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let accepted = stranger.ssh_timed(TICKET, &extra, "echo in", None);
    assert_eq!(accepted.run.stdout, "in\n", "{:?}", accepted.run);
    println!("3 unknown keys then the right one: in after {:?}", accepted.elapsed);
    assert!(accepted.elapsed < bound, "3 wrong keys first: {:?}, a login {:?}", accepted.elapsed, plain.elapsed);
    let sessions = s.sessions();
    assert_eq!(sessions.len(), 2, "no session for the refused keys: {sessions:#?}");
}

#[test]
fn a_version_dropped_from_the_supported_list_is_refused_at_connect_time() {
    let mut s = Scenario::ready();
    assert_eq!(s.ssh("echo 7.2-supported").stdout, "7.2-supported\n");
    // The catalogue is configuration: support for IKS Standard 7 ends.
    let config = s.gw.path("iks-gateway.toml");
    std::fs::write(&config, "[[products]]\nid = \"iks-standard\"\nname = \"IKS Standard\"\nversions = [\"6\"]\n")
        .unwrap();
    s.restart(&[("IKS_CONFIG".into(), config.display().to_string())]);
    let line = refused(&s.engineer, TICKET);
    assert_starts(&line, "access refused: T-1001: ");
    assert!(line.contains("IKS Standard 7.2 is not a supported version"), "the refusal names the version: {line}");
    let audited = s.audit("session.refuse");
    assert_eq!(audited.last().unwrap()["rule"], "version", "{audited:?}");
}

/// The cipher a run of ssh at LogLevel=DEBUG1 negotiated towards the gateway, from the client's own log.
fn negotiated_cipher(run: &iks_e2e::Run) -> String {
    let line = run.stderr.lines().find(|l| l.contains("kex: server->client cipher: ")).unwrap_or_else(|| {
        panic!("the client's debug log names the cipher:\n{}", run.stderr);
    });
    line.split("cipher: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn the_engineer_leg_runs_aes_gcm_and_chacha20_only_when_configured() {
    let mut s = Scenario::ready();
    s.engineer.log_level = "DEBUG1";
    // The stock client lists chacha20-poly1305 first; the gateway does not offer it.
    let run = s.engineer.ssh_timed(TICKET, &[], "echo aes", None).run;
    assert_eq!(run.stdout, "aes\n", "{}", run.stderr);
    assert_eq!(negotiated_cipher(&run), "aes128-gcm@openssh.com");
    let run = s.engineer.ssh_timed(TICKET, &["-c", "chacha20-poly1305@openssh.com"], "true", None).run;
    assert!(!run.ok, "a client that only speaks chacha20 is refused by default");
    assert!(run.stderr.contains("no matching cipher found"), "{}", run.stderr);
    // For clients without AES-GCM, an admin adds it.
    let ciphers = r#"["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]"#;
    s.restart(&[("IKS_SSH_CIPHERS".into(), ciphers.into())]);
    let run = s.engineer.ssh_timed(TICKET, &["-c", "chacha20-poly1305@openssh.com"], "echo chacha", None).run;
    assert_eq!(run.stdout, "chacha\n", "{}", run.stderr);
    assert_eq!(negotiated_cipher(&run), "chacha20-poly1305@openssh.com");
}

/// People's text reaches the engineer's terminal shown, never as control sequences: a
/// customer's reject note with OSC 52 would write the engineer's clipboard, OSC 0 their
/// window title, and a CR/LF would forge a line of the gateway's own. The CLI shows an
/// engineer's reason the same way.
#[test]
fn a_reject_note_with_terminal_sequences_reaches_the_engineer_shown_not_raw() {
    let s = Scenario::with(Setup::default().no_request());
    let g = s.request(TICKET, "ivanov");
    let note = "not now\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;owned\x1b\\\r\naccess granted";
    s.admin(&["access", "reject", &g, "--as", "petrov", "--reason", note]);
    let line = refused(&s.engineer, TICKET);
    assert!(!line.chars().any(char::is_control), "no control character reaches the terminal: {line:?}");
    assert_eq!(
        line,
        "access refused: T-1001: the customer (petrov) rejected access: \
         not now^[]52;c;cm0gLXJmIH4K^G^[]0;owned^[\\^M^Jaccess granted"
    );

    #[rustfmt::skip]
    let requested = s.admin(&[
        "access", "request", "--ticket", TICKET, "--box", "main-gw", "--operator", "ivanov",
        "--duration", "1h", "--reason", "logs\x1b]0;owned\x07\x1b[2J",
    ]);
    for out in [requested, s.admin(&["access", "list", "--ticket", TICKET])] {
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "the CLI prints no control sequence: {out:?}");
        assert!(out.contains("logs^[]0;owned^G^[[2J"), "the reason is shown: {out}");
    }
}
