//! The audit trail end to end: a real gateway's SQLite file and recordings, tampered with
//! the way someone with access to the files would (the `sqlite3` shell, an editor), and
//! `iks-gateway audit verify` naming exactly what was done; exports that verify on their
//! own, with the gateway's code or with stock OpenSSH; `audit tail -f`; and the checkpoints
//! `serve` signs.
//!
//! Sessions come from the library's store API: the SSH front that creates real ones is
//! not needed to end a session with a recording, and the chain cannot tell the difference.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use iks_domain::audit::Actor;
use iks_domain::ids::SessionId;
use iks_domain::model::{Approval, EndReason, NewAccessRequest, NewSession, NewTicket, SessionEnd};
use iks_domain::rules::Inn;
use iks_e2e::Gateway;
use iks_gateway::store::Store;

const INN: &str = "7707083893";

/// The events the base installation holds, the last one covered by checkpoint #1.
const EVENTS: i64 = 12;

/// A gateway with an organisation, a box, people, a ticket with an approved grant, two
/// ended sessions with recordings (S-1 and S-2), one more change, and a checkpoint.
fn installation() -> (Gateway, Vec<(SessionId, String)>) {
    let gw = Gateway::sqlite();
    for args in [
        &["admin", "org", "add", "--inn", INN, "--name", "ООО Ромашка", "--module-paid-until", "2099-12-31"][..],
        &[
            "admin",
            "box",
            "add",
            "--org",
            INN,
            "--name",
            "main-gw",
            "--product",
            "iks-standard",
            "--version",
            "7",
            "--login",
            "support",
        ],
        &["admin", "operator", "add", "--login", "ivanov", "--name", "Иван Иванов"],
        &["admin", "customer", "add", "--org", INN, "--login", "petrov", "--name", "Пётр Петров"],
    ] {
        gw.run(args).success();
    }
    let sessions = tokio::runtime::Runtime::new().unwrap().block_on(ended_sessions(&gw));
    gw.run(&["admin", "org", "update", INN, "--partner"]).success();
    let checkpoint = gw.run(&["audit", "checkpoint"]);
    assert!(checkpoint.success().starts_with(&format!("checkpoint #1: event #{EVENTS} (")), "{}", checkpoint.stdout);
    (gw, sessions)
}

/// Events 5–11: a ticket, its grant, and two sessions whose recordings are on disk (their
/// names under `recordings/` are returned).
async fn ended_sessions(gw: &Gateway) -> Vec<(SessionId, String)> {
    let store = Store::open(&gw.database_url()).await.unwrap();
    let org = store.org_by_inn(&Inn::parse(INN).unwrap()).await.unwrap();
    let b = store.box_by_name(org.id, "main-gw").await.unwrap();
    let ivanov = store.person_by_login("ivanov").await.unwrap();
    let petrov = store.person_by_login("petrov").await.unwrap();
    let (as_ivanov, as_petrov) = (Actor::person(ivanov.id, "ivanov"), Actor::person(petrov.id, "petrov"));
    let ticket = NewTicket {
        org_id: org.id,
        contact_name: "Пётр Петров".into(),
        contact_phone: None,
        contact_email: None,
        product: "iks-standard".into(),
        version: "7".into(),
        description: "VPN does not start".into(),
        topic: None,
        priority: 1,
        response_due_at: None,
        refusal: None,
    };
    let t = store.create_ticket(&Actor::cli(), &ticket).await.unwrap();
    let request = NewAccessRequest {
        ticket_id: t.id,
        box_id: b.id,
        requested_by: ivanov.id,
        reason: "check VPN logs".into(),
        duration: chrono::Duration::hours(1),
    };
    let g = store.request_access(&as_ivanov, &request).await.unwrap();
    let now = iks_domain::time::now();
    let window = Approval { starts_at: now, ends_at: now + chrono::Duration::hours(1), operator_id: None, note: None };
    store.approve_grant(&as_petrov, g.id, petrov.id, &window).await.unwrap();
    let mut sessions = Vec::new();
    for n in 1..=2 {
        let new = NewSession {
            grant_id: g.id,
            ticket_id: t.id,
            box_id: b.id,
            operator_id: ivanov.id,
            client_addr: Some("127.0.0.1:50000".into()),
            node: "node-a".into(),
        };
        let s = store.start_session(&as_ivanov, &new, org.id).await.unwrap();
        let name = format!("2026/11/24/{}.cast", s.id);
        let path = recording(gw, &name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let cast =
            format!("{{\"version\":2,\"width\":80,\"height\":24}}\n[0.5,\"o\",\"session {n}: uname -a\\r\\n\"]\n");
        std::fs::write(&path, cast).unwrap();
        let end = SessionEnd {
            reason: EndReason::ClientExit,
            bytes_in: 10,
            bytes_out: 100,
            recording: Some(name),
            recording_sha256: Some(iks_gateway::datadir::sha256_file(&path).unwrap()),
        };
        sessions.push((s.id, end.recording.clone().unwrap()));
        store.end_session(&Actor::system(), s.id, org.id, &end).await.unwrap();
    }
    store.close().await;
    sessions
}

fn recording(gw: &Gateway, name: &str) -> PathBuf {
    gw.data_dir().join("recordings").join(name)
}

/// What someone with the database file does first: remove the guard (the checkpoints'
/// triggers only exist since they were added, hence `IF EXISTS` for older binaries).
const DROP_GUARD: &str = "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete; \
                          DROP TRIGGER IF EXISTS audit_checkpoints_no_update; \
                          DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;";

/// ... and last: put it back, so the database looks untouched.
const RESTORE_GUARD: &str = "
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    WHEN NOT EXISTS (SELECT 1 FROM audit_retention_permit WHERE OLD.seq < below_seq)
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;";

/// Runs `sql` between dropping and restoring the guard.
fn tamper(gw: &Gateway, sql: &str) {
    gw.sqlite3(&format!("{DROP_GUARD} {sql} {RESTORE_GUARD}")).success();
}

/// One integer `sql` selects, by the `sqlite3` shell.
fn sqlite_int(gw: &Gateway, sql: &str) -> i64 {
    let out = gw.sqlite3(sql);
    out.success().trim().parse().unwrap_or_else(|_| panic!("{sql}: {out:?}"))
}

/// `audit verify` run with extra environment (the configuration the gateway runs with).
fn verify_with(gw: &Gateway, env: &[(&str, &str)]) -> iks_e2e::Run {
    let mut cmd = gw.command(&["audit", "verify"]);
    cmd.envs(env.iter().copied());
    iks_e2e::process::run(&mut cmd)
}

#[test]
fn verify_names_each_tampering_of_the_database_and_the_recordings() {
    let (gw, sessions) = installation();
    let ok = gw.run(&["audit", "verify"]);
    let line = ok.success();
    assert!(line.starts_with(&format!("OK: {EVENTS} events, 2 recordings, last checkpoint #1 at 20")), "{line}");

    // The database refuses edits to the log while the guard is in place.
    let copy = gw.duplicate();
    let refused = copy.sqlite3("UPDATE audit_events SET actor_name = 'nobody' WHERE seq = 3");
    assert!(!refused.ok && refused.stderr.contains("audit_events is append-only"), "{refused:?}");
    let refused = copy.sqlite3("DELETE FROM audit_events WHERE seq = 3");
    assert!(!refused.ok && refused.stderr.contains("audit_events is append-only"), "{refused:?}");

    let (s1, s2) = (&sessions[0], &sessions[1]);
    type Tamper<'a> = Box<dyn Fn(&Gateway) -> String + 'a>;
    let sql = |sql: &'static str| -> Tamper {
        Box::new(move |gw| {
            gw.sqlite3(&format!("{DROP_GUARD} {sql}")).success();
            String::new()
        })
    };
    let cases: Vec<(&str, Tamper, String)> = vec![
        (
            "edit a field",
            sql("UPDATE audit_events SET actor_name = 'nobody' WHERE seq = 3"),
            "event #3 was edited (hash mismatch)".into(),
        ),
        (
            "delete a middle event",
            sql("DELETE FROM audit_events WHERE seq = 6"),
            "event #6 is missing (chain jumps from #5 to #7)".into(),
        ),
        (
            "swap two events",
            sql("UPDATE audit_events SET seq = -4 WHERE seq = 4; UPDATE audit_events SET seq = 4 WHERE seq = 7; \
                 UPDATE audit_events SET seq = 7 WHERE seq = -4"),
            "events #4 and #7 are out of order".into(),
        ),
        (
            "truncate the tail",
            sql("DELETE FROM audit_events WHERE seq > 10"),
            format!("tail cut: checkpoint #1 covers event #{EVENTS} but the log ends at #10"),
        ),
        (
            "re-sign a checkpoint's claim",
            sql("UPDATE audit_checkpoints SET seq = 11"),
            "checkpoint #1 signature is invalid".into(),
        ),
        (
            "replace a recording byte",
            Box::new(|gw| {
                let path = recording(gw, &s2.1);
                let expected = iks_gateway::datadir::sha256_file(&path).unwrap();
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[10] ^= 0x20;
                std::fs::write(&path, bytes).unwrap();
                let actual = iks_gateway::datadir::sha256_file(&path).unwrap();
                format!("recording of session {} changed (sha256 {actual} expected {expected})", s2.0)
            }),
            String::new(),
        ),
        (
            "delete a recording",
            Box::new(|gw| {
                let path = recording(gw, &s1.1);
                std::fs::remove_file(&path).unwrap();
                format!("recording of session {} is missing ({})", s1.0, path.display())
            }),
            String::new(),
        ),
    ];
    for (what, tamper, want) in cases {
        let copy = gw.duplicate();
        let computed = tamper(&copy);
        let want = if want.is_empty() { computed } else { want };
        let line = copy.run(&["audit", "verify"]).failure().to_string();
        assert_eq!(line, format!("iks-gateway: error: {want}"), "{what}");
    }
    assert!(gw.run(&["audit", "verify"]).ok, "the original is untouched");
}

#[test]
fn an_export_verifies_on_its_own_and_names_a_tampered_line() {
    let (gw, _) = installation();
    let file = gw.path("audit.jsonl");
    let exported = gw.run(&["audit", "export", "--output", file.to_str().unwrap()]);
    let export_event = EVENTS + 1;
    assert_eq!(
        exported.success(),
        format!("exported {export_event} events to {} (recorded as audit event #{export_event})\n", file.display())
    );
    let check = |file: &PathBuf, extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--file", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        gw.run(&args)
    };
    let ok = check(&file, &[]);
    assert!(ok.success().starts_with(&format!("OK: {export_event} events, 0 recordings, last checkpoint #1 at ")));
    let recordings = gw.data_dir().join("recordings");
    let with_recordings = check(&file, &["--recordings", recordings.to_str().unwrap()]);
    assert!(with_recordings.success().starts_with(&format!("OK: {export_event} events, 2 recordings,")));

    // Anywhere else, with only the public key: no data dir is needed, none is created.
    let auditor = Gateway::sqlite();
    let key = gw.run(&["audit", "public-key"]).success().trim().to_string();
    let elsewhere = auditor.run(&["audit", "verify", "--file", file.to_str().unwrap(), "--public-key", &key]);
    assert!(elsewhere.success().starts_with("OK: "), "{}", elsewhere.stdout);
    assert!(!auditor.data_dir().exists());
    let unkeyed = auditor.run(&["audit", "verify", "--file", file.to_str().unwrap()]);
    assert_eq!(unkeyed.failure(), "iks-gateway: error: checkpoint #1 cannot be checked: no audit public key given");

    // One edited line is named; so is a file cut short.
    let text = std::fs::read_to_string(&file).unwrap();
    let tampered = gw.path("tampered.jsonl");
    let edited = text.replacen(r#""actor_name":"ivanov""#, r#""actor_name":"petrov""#, 1);
    assert_ne!(edited, text);
    std::fs::write(&tampered, edited).unwrap();
    let line = check(&tampered, &[]).failure().to_string();
    assert_eq!(line, "iks-gateway: error: event #6 was edited (hash mismatch)");
    let cut: String = text.lines().take(1 + 1 + 9).map(|l| format!("{l}\n")).collect();
    std::fs::write(&tampered, cut).unwrap();
    let line = check(&tampered, &[]).failure().to_string();
    assert_eq!(line, "iks-gateway: error: tail cut: checkpoint #1 covers event #12 but the log ends at #9");

    // The export itself is an audit event: who exported what.
    let tail = gw.run(&["audit", "tail", "-n", "1"]);
    assert!(tail.success().contains("  audit.export  -  {\"filter\":"), "{}", tail.stdout);
}

#[test]
fn stock_openssh_checks_checkpoints_and_exports() {
    let (gw, _) = installation();
    let file = gw.path("audit.jsonl");
    gw.run(&["audit", "export", "-o", file.to_str().unwrap()]).success();
    let signers = gw.path("allowed_signers");
    std::fs::write(&signers, gw.run(&["audit", "public-key", "--allowed-signers"]).success()).unwrap();
    let keygen_verify = |message: &[u8], signature: &str| {
        let sig = gw.path("message.sig");
        std::fs::write(&sig, signature).unwrap();
        let mut child = std::process::Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f", signers.to_str().unwrap(), "-I", "audit@iks-gateway"])
            .args(["-n", "iks-gateway-audit", "-s", sig.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh-keygen (openssh-client)");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), message).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // A checkpoint: its signed text is rebuilt from the line, as docs/audit.md shows.
    let cp: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    let message = format!(
        "iks-gateway audit checkpoint v1\nseq: {}\nhash: {}\nat: {}\n",
        cp["seq"],
        cp["hash"].as_str().unwrap(),
        cp["at"].as_str().unwrap()
    );
    let (good, out) = keygen_verify(message.as_bytes(), cp["signature"].as_str().unwrap());
    assert!(good && out.starts_with("Good \"iks-gateway-audit\" signature for audit@iks-gateway"), "{out}");
    let (good, _) = keygen_verify(message.replace("seq: 12", "seq: 13").as_bytes(), cp["signature"].as_str().unwrap());
    assert!(!good, "a changed claim does not verify");

    // The whole export: every byte before the signature line.
    let trailer: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    let body = &text[..text.len() - lines[lines.len() - 1].len() - 1];
    let (good, out) = keygen_verify(body.as_bytes(), trailer["signature"].as_str().unwrap());
    assert!(good, "{out}");
}

#[test]
fn filtered_and_csv_exports() {
    let (gw, sessions) = installation();
    let file = gw.path("ticket.jsonl");
    gw.run(&["audit", "export", "--ticket", "T-1001", "--since", "2020-01-01", "-o", file.to_str().unwrap()]).success();
    let verified = gw.run(&["audit", "verify", "--file", file.to_str().unwrap()]);
    let out = verified.success();
    // Events 5–11 are about the ticket, and so is the export's own event (#13).
    assert!(out.starts_with("OK: 8 events, 0 recordings, last checkpoint #1 at "), "{out}");
    assert!(out.contains("note: a filtered export (ticket T-1001, since 2019-12-31T21:00:00.000000Z)"), "{out}");
    assert!(out.contains("its 2 runs of consecutive events are linked"), "{out}");

    let csv = gw.run(&["audit", "export", "--format", "csv", "--org", INN]);
    let text = csv.success();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("seq,at,actor_kind,actor_id,actor_name,action,org,ticket,box,grant,session,details,prev_hash,hash")
    );
    let session_end = format!(",session.end,1,1001,1,1,{},", sessions[0].0.get());
    assert!(text.contains(&session_end), "{text}");
    assert_eq!(lines.count(), 11 + 1, "org 1's events, and the export itself");

    for (args, want) in [
        (&["--since", "yesterday"][..], "--since: 'yesterday' is neither a date (YYYY-MM-DD) nor an RFC 3339 time"),
        (&["--ticket", "S-1"], "--ticket: 'S-1' is not a valid ticket number (expected like T-1042)"),
        (&["--since", "2026-02-01", "--until", "2026-01-01"], "--until must be after --since"),
        (&["--org", "42"], "no organisation 42"),
    ] {
        let mut all = vec!["audit", "export"];
        all.extend_from_slice(args);
        assert_eq!(gw.run(&all).failure(), format!("iks-gateway: error: {want}"));
    }
}

/// `audit tail -f` prints events as they are appended and stops cleanly on Ctrl-C.
#[test]
fn tail_follows_new_events() {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "org", "add", "--inn", INN, "--name", "ООО Ромашка"]).success();
    let mut child = gw
        .command(&["audit", "tail", "-n", "1", "-f"])
        .env("IKS_HOURS_TIMEZONE", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let first = lines.recv_timeout(Duration::from_secs(10)).expect("the newest event");
    assert!(
        first.starts_with("#1  20") && first.contains(" UTC  ") && first.contains("  org.create  org=1  {"),
        "{first}"
    );
    gw.run(&["admin", "operator", "add", "--login", "ivanov", "--name", "Иван Иванов"]).success();
    let next = lines.recv_timeout(Duration::from_secs(10)).expect("the new event");
    assert!(next.starts_with("#2  ") && next.contains("  person.create  -  {"), "{next}");
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exits cleanly on Ctrl-C: {out:?}");
}

fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Runs `serve` with `env` until `signed` holds (within `limit`), adds one event while it
/// runs, and stops it with SIGTERM: it must exit cleanly (signing at shutdown).
fn serve_until(gw: &Gateway, env: &[(&str, &str)], limit: Duration, what: &str, signed: impl Fn(&Gateway) -> bool) {
    let mut serve = gw
        .command(&["serve"])
        .envs(env.iter().copied())
        .env("IKS_SSH_LISTEN", "127.0.0.1:0")
        .env("IKS_HTTP_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while !signed(gw) {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    gw.run(&["admin", "operator", "add", "--login", "ivanov", "--name", "Иван Иванов"]).success();
    let status = std::process::Command::new("kill").args(["-TERM", &serve.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(serve.wait().unwrap().success());
}

/// `serve` signs a checkpoint when one is due and another at shutdown.
#[test]
fn serve_signs_checkpoints() {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "org", "add", "--inn", INN, "--name", "ООО Ромашка"]).success();
    let first = |gw: &Gateway| gw.run(&["audit", "verify"]).stdout.contains("last checkpoint #1");
    serve_until(
        &gw,
        &[("IKS_AUDIT_CHECKPOINT_EVERY", "1")],
        Duration::from_secs(20),
        "no checkpoint while serving",
        first,
    );
    let verified = gw.run(&["audit", "verify"]);
    assert!(verified.success().starts_with("OK: 2 events, 0 recordings, last checkpoint #"), "{}", verified.stdout);
    // The newest checkpoint covers the event added just before shutdown.
    let export = gw.run(&["audit", "export"]);
    let covered = export.success().lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let newest = covered.filter(|l| l["type"] == "checkpoint").map(|l| l["seq"].as_i64().unwrap()).max();
    assert_eq!(newest, Some(2));
}

#[test]
fn retention_is_off_unless_configured() {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "org", "add", "--inn", INN, "--name", "ООО Ромашка"]).success();
    let off = gw.run(&["audit", "apply-retention"]);
    assert_eq!(off.success(), "retention is off ([audit] retention_days = 0): nothing deleted\n");
    let on = gw.command(&["audit", "apply-retention"]).env("IKS_AUDIT_RETENTION_DAYS", "30").output().unwrap();
    let on = String::from_utf8_lossy(&on.stdout).into_owned();
    assert!(on.starts_with("no audit event is older than 30 days (before 20"), "{on}");
    assert!(gw.run(&["audit", "verify"]).success().starts_with("OK: 1 events"));
}

/// Someone with the database deletes old events and appends an `audit.retention` event
/// with recomputed hashes that says the chain now starts after them. Nothing signed it:
/// `audit verify` says so, and the gateway refuses to sign over it.
#[test]
fn a_forged_retention_is_not_vouched_for() {
    let (gw, _) = installation();
    let copy = gw.duplicate();
    let events = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&copy.database_url()).await.unwrap();
        let events = store.audit_events(&Default::default()).await.unwrap();
        store.close().await;
        events
    });
    let head = events.last().unwrap();
    let details = iks_gateway::audit::retention::RetentionDetails {
        cutoff: iks_domain::time::now(),
        deleted: 5,
        first_seq: 6,
        first_prev_hash: events[4].hash.clone(),
    };
    let details = serde_json::to_string(&details).unwrap();
    let (seq, at, actor) = (head.seq + 1, iks_domain::time::now(), Actor::system());
    let forged = iks_domain::audit::chain_hash(
        &head.hash,
        &iks_domain::audit::Unsealed {
            seq,
            at,
            actor: &actor,
            action: "audit.retention",
            subjects: Default::default(),
            details: &details,
        },
    );
    tamper(
        &copy,
        &format!(
            "DELETE FROM audit_events WHERE seq <= 5; \
             INSERT INTO audit_events (seq, at, actor_kind, actor_name, action, details, prev_hash, hash) \
             VALUES ({seq}, '{}', 'system', 'iks-gateway', 'audit.retention', '{details}', '{}', '{forged}');",
            iks_domain::time::to_db(at),
            head.hash
        ),
    );
    assert_eq!(
        copy.run(&["audit", "verify"]).failure(),
        format!(
            "iks-gateway: error: retention event #{seq} is not vouched for by a signed checkpoint \
             (events before #6 were deleted without one)"
        )
    );
    assert_eq!(
        copy.run(&["audit", "checkpoint"]).failure(),
        format!(
            "iks-gateway: error: refusing to sign a checkpoint: retention event #{seq} was not signed when it was \
             written (run `iks-gateway audit verify`)"
        )
    );
    assert!(gw.run(&["audit", "verify"]).ok, "the original is untouched");
}

/// Someone with the database deletes the newest checkpoint and the events after the one
/// before it. A serving gateway's checkpoints promise the next: once the promise left runs
/// out, `audit verify` names the cut; with a checkpoint log outside the database, at once.
#[test]
fn a_cut_back_to_an_older_checkpoint_shows() {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "org", "add", "--inn", INN, "--name", "ООО Ромашка"]).success();
    let log = gw.path("checkpoints.jsonl");
    let log_env = [("IKS_AUDIT_CHECKPOINT_LOG", log.to_str().unwrap())];
    let checkpoints = |gw: &Gateway| sqlite_int(gw, "SELECT COUNT(*) FROM audit_checkpoints");
    // Heartbeats while serving, with nothing new to sign.
    let env = [("IKS_AUDIT_CHECKPOINT_INTERVAL", "1s"), log_env[0]];
    let heartbeats = |gw: &Gateway| checkpoints(gw) >= 3;
    serve_until(&gw, &env, Duration::from_secs(30), "no heartbeat checkpoints while serving", heartbeats);
    // Stopped cleanly, the last checkpoint promises nothing: the original verifies, also later.
    let ok = verify_with(&gw, &[]);
    assert!(ok.success().starts_with("OK: 2 events, 0 recordings, last checkpoint #"), "{}", ok.stdout);
    let logged = verify_with(&gw, &log_env);
    let n = checkpoints(&gw);
    assert!(logged.success().contains(&format!("checkpoint log: all {n} checkpoints in it are in the database")));

    // The last checkpoint, and every event after the one before it.
    let copy = gw.duplicate();
    tamper(
        &copy,
        "DELETE FROM audit_checkpoints WHERE id = (SELECT MAX(id) FROM audit_checkpoints); \
         DELETE FROM audit_events WHERE seq > (SELECT MAX(seq) FROM audit_checkpoints);",
    );
    let (left, covers) = (
        sqlite_int(&copy, "SELECT MAX(id) FROM audit_checkpoints"),
        sqlite_int(&copy, "SELECT seq FROM audit_checkpoints ORDER BY id DESC LIMIT 1"),
    );
    let promised = copy.sqlite3("SELECT next_due FROM audit_checkpoints ORDER BY id DESC LIMIT 1");
    let promised = promised.success().trim().to_string();
    assert!(promised.starts_with("20"), "a serving gateway's checkpoint promises the next: {promised:?}");
    let promise = chrono::DateTime::parse_from_rfc3339(&promised).unwrap();
    while chrono::Utc::now() <= promise {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        verify_with(&copy, &[]).failure(),
        format!(
            "iks-gateway: error: tail cut: no checkpoint since #{left} (event #{covers}), which promised the next by \
             {promised}: later checkpoints and the events after #{covers} were deleted, or the gateway was killed"
        )
    );
    // With the checkpoint log, the deleted checkpoints are named.
    let line = verify_with(&copy, &log_env).failure().to_string();
    let deleted = left + 1;
    assert!(line.starts_with(&format!("iks-gateway: error: checkpoint #{deleted} (event #")), "{line}");
    assert!(line.ends_with("of the checkpoint log is not in the database: it was deleted"), "{line}");
}

/// `access approve --as petrov` at the host is the CLI acting on petrov's authority: the log
/// says so, with the OS account, not that petrov approved.
#[test]
fn the_cli_acting_for_a_person_is_recorded_as_the_cli() {
    let (gw, _) = installation();
    let request = gw.run(&[
        "access",
        "request",
        "--ticket",
        "T-1001",
        "--box",
        "main-gw",
        "--operator",
        "ivanov",
        "--duration",
        "1h",
        "--reason",
        "again",
    ]);
    let grant = request.success().split_whitespace().find(|w| w.starts_with("G-")).unwrap().to_string();
    let mut approve = gw.command(&["access", "approve", &grant, "--as", "petrov"]);
    approve.env("USER", "alice").env_remove("SUDO_USER");
    iks_e2e::process::run(&mut approve).success();
    let tail = gw.run(&["audit", "tail", "-n", "1"]);
    assert!(tail.success().contains("  cli:alice on behalf of petrov (cli)  access.approve  "), "{}", tail.stdout);
    // The person's ID stays with the event: it is the one petrov's own approval carries.
    let export = gw.run(&["audit", "export"]);
    let lines: Vec<serde_json::Value> = export.success().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let approvals: Vec<_> = lines.iter().filter(|l| l["action"] == "access.approve").collect();
    let [own, on_behalf] = approvals[..] else { panic!("two approvals: {approvals:?}") };
    assert_eq!((&own["actor_kind"], &own["actor_name"]), (&"person".into(), &"petrov".into()));
    assert_eq!(on_behalf["actor_kind"], "cli");
    assert_eq!(on_behalf["actor_id"], own["actor_id"]);
}

/// With every checkpoint deleted, a tail of `checkpoint_every` unsigned events older than
/// `checkpoint_interval` shows; a young database, or a short tail, is just new.
#[test]
fn deleting_every_checkpoint_shows_in_an_old_unsigned_tail() {
    let (gw, _) = installation();
    let window = [("IKS_AUDIT_CHECKPOINT_EVERY", "5"), ("IKS_AUDIT_CHECKPOINT_INTERVAL", "1s")];
    let copy = gw.duplicate();
    tamper(&copy, "DELETE FROM audit_checkpoints;");
    let oldest = copy.sqlite3("SELECT at FROM audit_events WHERE seq = 1").success().trim().to_string();
    let since = chrono::DateTime::parse_from_rfc3339(&oldest).unwrap();
    let young = verify_with(&copy, &window);
    if chrono::Utc::now() < since + chrono::Duration::seconds(1) {
        assert!(young.success().starts_with(&format!("OK: {EVENTS} events")), "{}", young.stdout);
    }
    let short = verify_with(&copy, &[("IKS_AUDIT_CHECKPOINT_EVERY", "13"), ("IKS_AUDIT_CHECKPOINT_INTERVAL", "1s")]);
    assert!(short.success().starts_with(&format!("OK: {EVENTS} events, 2 recordings, no checkpoint yet")));
    while chrono::Utc::now() <= since + chrono::Duration::seconds(1) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        verify_with(&copy, &window).failure(),
        format!(
            "iks-gateway: error: checkpoints deleted: events #1–#{EVENTS} (the oldest from {oldest}) are covered by \
             no checkpoint, more than [audit] checkpoint_every = 5 older than checkpoint_interval"
        )
    );
    assert!(verify_with(&gw, &window).ok, "the original is untouched");
}
