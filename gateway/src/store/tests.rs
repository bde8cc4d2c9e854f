//! The store's story tests. Each story runs on SQLite always and on PostgreSQL when
//! `IKS_TEST_DATABASE_URL` is set (CI sets it; there, a missing URL fails instead of
//! skipping). Each PostgreSQL test gets a schema of its own, so tests run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::NaiveDate;

use super::*;
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::TicketId;
use iks_domain::ids::{OrgId, PersonId};
use iks_domain::model::{
    Approval, BoxAuth, EndReason, GrantState, NewAccessRequest, NewBox, NewOrg, NewPerson, NewSession, NewSshKey,
    NewTicket, Role, SessionEnd, SessionEvent, TicketState,
};
use iks_domain::rules::{Inn, OrgFacts};

pub(crate) struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        Self { store: Store::open(&url).await.unwrap(), url, _dir: Some(dir), pg: None }
    }

    pub async fn postgres() -> Option<Self> {
        let Ok(base) = std::env::var("IKS_TEST_DATABASE_URL") else {
            assert!(std::env::var_os("CI").is_none(), "CI must set IKS_TEST_DATABASE_URL to test PostgreSQL");
            eprintln!("IKS_TEST_DATABASE_URL is not set: PostgreSQL store test skipped");
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        admin_execute(&base, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        Some(Self { store: Store::open(&url).await.unwrap(), url, _dir: None, pg: Some((base, schema)) })
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((base, schema)) = self.pg {
            admin_execute(&base, &format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

async fn admin_execute(url: &str, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// Runs the story `$name` (an `async fn(&TestDb)` beside the invocation) on each backend,
/// as `$name::sqlite` and `$name::postgres`.
macro_rules! story {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::store::tests::TestDb::sqlite().await;
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::store::tests::TestDb::postgres().await {
                    super::$name(&db).await;
                    db.finish().await;
                }
            }
        }
    };
}

pub(crate) use story;

/// Moves a ticket's opening and last customer activity to `at`, as if time had passed
/// since: stories about days of silence cannot wait for them.
pub(crate) async fn backdate_ticket(store: &Store, id: TicketId, at: chrono::DateTime<chrono::Utc>) {
    sqlx::query("UPDATE tickets SET created_at = $2, last_customer_activity_at = $2 WHERE id = $1")
        .bind(id.get())
        .bind(iks_domain::time::to_db(at))
        .execute(&store.write)
        .await
        .unwrap();
}

story!(organisations);
story!(boxes);
story!(people_and_keys);
story!(audit_chain_under_concurrency);
story!(checkpoints_and_retention);
story!(tampering_is_named);
story!(the_gateway_signs_over_no_cut_and_no_forged_retention);
story!(migrations_are_idempotent);
story!(tickets_grants_and_sessions);

fn inn(s: &str) -> Inn {
    Inn::parse(s).unwrap()
}

fn date(s: &str) -> NaiveDate {
    iks_domain::time::parse_date(s).unwrap()
}

fn romashka() -> NewOrg {
    NewOrg {
        inn: inn("7707083893"),
        name: "ООО Ромашка".into(),
        facts: OrgFacts {
            purchased_on: Some(date("2025-10-02")),
            module_paid_until: None,
            trial_started_on: None,
            partner: false,
        },
    }
}

async fn organisations(db: &TestDb) {
    let store = &db.store;
    let actor = Actor::cli();
    let org = store.create_org(&actor, &romashka()).await.unwrap();
    assert_eq!(org.name, "ООО Ромашка");
    assert_eq!(org.facts.purchased_on, Some(date("2025-10-02")));
    assert_eq!(store.org(org.id).await.unwrap(), org);
    assert_eq!(store.org_by_inn(&inn("7707083893")).await.unwrap(), org);

    let dup = store.create_org(&actor, &romashka()).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup:?}");
    assert_eq!(dup.to_string(), "an organisation with INN 7707083893 already exists");

    let mut changed = org.clone();
    changed.facts.module_paid_until = Some(date("2026-10-01"));
    changed.facts.partner = true;
    let updated = store.update_org(&actor, &changed).await.unwrap();
    assert_eq!(updated.facts, changed.facts);
    assert!(updated.updated_at >= org.updated_at);

    let missing = store.org(OrgId(9999)).await.unwrap_err();
    assert_eq!(missing.to_string(), "no organisation 9999");
    assert!(matches!(store.org_by_inn(&inn("500100732259")).await, Err(StoreError::NotFound { .. })));

    let other = NewOrg {
        inn: inn("500100732259"),
        name: "ИП Иванов".into(),
        facts: OrgFacts { partner: true, ..Default::default() },
    };
    store.create_org(&actor, &other).await.unwrap();
    let names: Vec<_> = store.list_orgs().await.unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["ИП Иванов", "ООО Ромашка"]);

    // Each change wrote one event, about the right organisation, with what changed.
    let events = store.audit_events(&EventFilter { org: Some(org.id), ..Default::default() }).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["org.create", "org.update"]);
    let details: serde_json::Value = serde_json::from_str(&events[1].details).unwrap();
    assert_eq!(details["facts"][1]["module_paid_until"], "2026-10-01");
    assert_eq!(events[1].actor, actor);
}

pub(crate) fn new_box(org: OrgId, name: &str) -> NewBox {
    NewBox {
        org_id: org,
        name: name.into(),
        product: "iks-standard".into(),
        version: "7.2".into(),
        address: Some("127.0.0.1:22".into()),
        login: "support".into(),
        host_key: None,
        auth: BoxAuth::Certificate,
        allow_forwarding: false,
    }
}

/// A ticket about an IKS Standard 7.2 box of `org`, with contact data.
pub(crate) fn new_ticket(org: OrgId) -> NewTicket {
    NewTicket {
        org_id: org,
        contact_name: "Пётр Петров".into(),
        contact_phone: Some("+7 495 000-00-00".into()),
        contact_email: None,
        product: "iks-standard".into(),
        version: "7.2".into(),
        description: "VPN does not start".into(),
        topic: None,
        priority: 1,
        response_due_at: None,
        refusal: None,
    }
}

async fn boxes(db: &TestDb) {
    let store = &db.store;
    let actor = Actor::cli();
    let a = store.create_org(&actor, &romashka()).await.unwrap();
    let b = store
        .create_org(&actor, &NewOrg { inn: inn("500100732259"), name: "ИП Иванов".into(), facts: OrgFacts::default() })
        .await
        .unwrap();
    let gw = store.create_box(&actor, &new_box(a.id, "main-gw")).await.unwrap();
    assert_eq!(gw.address.as_deref(), Some("127.0.0.1:22"));
    assert_eq!(store.get_box(gw.id).await.unwrap(), gw);
    assert_eq!(store.box_by_name(a.id, "main-gw").await.unwrap(), gw);
    assert!(matches!(store.box_by_name(b.id, "main-gw").await, Err(StoreError::NotFound { .. })));

    let dup = store.create_box(&actor, &new_box(a.id, "main-gw")).await.unwrap_err();
    assert_eq!(dup.to_string(), "ООО Ромашка already has a box named 'main-gw'");
    // Names are per organisation.
    let other = store.create_box(&actor, &new_box(b.id, "main-gw")).await.unwrap();
    assert!(matches!(store.create_box(&actor, &new_box(OrgId(999), "x")).await, Err(StoreError::NotFound { .. })));

    let mut changed = gw.clone();
    changed.address = None;
    changed.host_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEDzWDPG1+ZhUfXGbzPFFpJm/ihb5BFgCjLZm3dj7+2P".into());
    changed.auth = BoxAuth::StaticKey;
    changed.allow_forwarding = true;
    let updated = store.update_box(&actor, &changed).await.unwrap();
    assert_eq!((updated.address, updated.auth, updated.allow_forwarding), (None, BoxAuth::StaticKey, true));
    assert_eq!(updated.host_key, changed.host_key);

    assert_eq!(store.list_boxes(Some(a.id)).await.unwrap().len(), 1);
    assert_eq!(store.list_boxes(None).await.unwrap().iter().map(|b| b.id).collect::<Vec<_>>(), [gw.id, other.id]);
    let events = store.audit_events(&EventFilter { org: Some(a.id), ..Default::default() }).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["org.create", "box.create", "box.update"]);
    assert_eq!(events[1].subjects.box_, Some(gw.id));
}

const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEDzWDPG1+ZhUfXGbzPFFpJm/ihb5BFgCjLZm3dj7+2P ivanov@laptop";
const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKdaMhOi7MZFP0O4fHI8KF3e6WZZL2Nt9hANzGS1oyuY second";

async fn people_and_keys(db: &TestDb) {
    let store = &db.store;
    let actor = Actor::cli();
    let org = store.create_org(&actor, &romashka()).await.unwrap();
    let op = NewPerson {
        login: "ivanov".into(),
        display_name: "Иван Иванов".into(),
        role: Role::Operator,
        org_id: None,
        email: Some("ivanov@a-real.ru".into()),
    };
    let ivanov = store.create_person(&actor, &op).await.unwrap();
    assert_eq!(store.person_by_login("ivanov").await.unwrap(), ivanov);
    let dup = store.create_person(&actor, &op).await.unwrap_err();
    assert_eq!(dup.to_string(), "the login 'ivanov' is taken");
    let customer = store
        .create_person(
            &actor,
            &NewPerson {
                login: "petrov".into(),
                display_name: "Пётр Петров".into(),
                role: Role::Customer,
                org_id: Some(org.id),
                email: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(customer.org_id, Some(org.id));

    let ka = NewSshKey::parse(KEY_A).unwrap();
    let kb = NewSshKey::parse(KEY_B).unwrap();
    let added = store.add_ssh_key(&actor, ivanov.id, &ka).await.unwrap();
    store.add_ssh_key(&actor, ivanov.id, &kb).await.unwrap();
    let dup = store.add_ssh_key(&actor, customer.id, &ka).await.unwrap_err();
    assert!(dup.to_string().contains("already registered"), "{dup}");
    assert_eq!(store.ssh_keys_of(ivanov.id).await.unwrap().len(), 2);
    assert_eq!(store.operator_by_key_fingerprint(&ka.fingerprint).await.unwrap(), Some(ivanov.clone()));

    // A disabled operator's keys no longer identify anyone.
    let mut disabled = ivanov.clone();
    disabled.disabled_at = Some(iks_domain::time::now());
    store.update_person(&actor, &disabled).await.unwrap();
    assert_eq!(store.operator_by_key_fingerprint(&ka.fingerprint).await.unwrap(), None);
    disabled.disabled_at = None;
    store.update_person(&actor, &disabled).await.unwrap();

    store.remove_ssh_key(&actor, added.id).await.unwrap();
    assert_eq!(store.operator_by_key_fingerprint(&ka.fingerprint).await.unwrap(), None);
    assert_eq!(store.operator_by_key_fingerprint(&kb.fingerprint).await.unwrap().map(|p| p.id), Some(ivanov.id));
    assert!(matches!(store.remove_ssh_key(&actor, added.id).await, Err(StoreError::NotFound { .. })));

    let operators = store.list_people(Some(Role::Operator), None).await.unwrap();
    assert_eq!(operators.iter().map(|p| p.login.as_str()).collect::<Vec<_>>(), ["ivanov"]);
    assert_eq!(store.list_people(None, Some(org.id)).await.unwrap(), [customer]);
    assert_eq!(store.list_people(None, None).await.unwrap().len(), 2);
    assert!(matches!(store.person(PersonId(999)).await, Err(StoreError::NotFound { .. })));
}

/// Many writers at once still make one unbroken chain: no gaps, no forks.
async fn audit_chain_under_concurrency(db: &TestDb) {
    let store = &db.store;
    const WRITERS: i64 = 16;
    const EVENTS: i64 = 10_000;
    append_concurrently(store, WRITERS, EVENTS / WRITERS / 5, 5).await;
    let summary = store.verify_audit(None, None).await.unwrap();
    assert_eq!(summary.events as i64, EVENTS);
    let events = store.audit_events(&EventFilter::default()).await.unwrap();
    assert_eq!(events.len() as i64, EVENTS);
    assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1), "no gaps");
    let filter = EventFilter { after_seq: Some(395), limit: Some(3), ..Default::default() };
    let tail = store.audit_events(&filter).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [396, 397, 398]);
}

/// `writers` tasks each committing `transactions` transactions of `batch` events (a change
/// with several events, like closing a ticket that revokes its grants, is one transaction).
async fn append_concurrently(store: &Store, writers: i64, transactions: i64, batch: i64) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for t in 0..transactions {
                let mut tx = store.begin().await.unwrap();
                for i in 0..batch {
                    let details = serde_json::json!({ "process": std::process::id(), "writer": w, "tx": t, "i": i });
                    tx.audit(NewEvent::new(&Actor::system(), "test.event", Subjects::default(), details))
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The writer processes of [`two_processes_share_one_chain`] find the database here.
const CHAIN_WRITER: &str = "IKS_TEST_CHAIN_WRITER_URL";

/// Two gateway processes on one PostgreSQL database extend one chain. The test runs its
/// own executable twice more as the writer processes (told apart by [`CHAIN_WRITER`]),
/// each with 8 concurrent writers, 5,000 events each, then verifies the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_chain() {
    if let Ok(url) = std::env::var(CHAIN_WRITER) {
        let store = Store::open(&url).await.unwrap();
        append_concurrently(&store, 8, 125, 5).await;
        store.close().await;
        return;
    }
    let Some(db) = TestDb::postgres().await else { return };
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        tokio::process::Command::new(&exe)
            .args(["store::tests::two_processes_share_one_chain", "--exact", "--test-threads=1", "--quiet"])
            .env(CHAIN_WRITER, &db.url)
            .stdout(std::process::Stdio::null())
            .status()
    };
    let (a, b) = tokio::join!(spawn(), spawn());
    assert!(a.unwrap().success() && b.unwrap().success(), "writer processes");
    let summary = db.store.verify_audit(None, None).await.unwrap();
    assert_eq!(summary.events, 10_000, "one chain, no gap, no fork");
    let events = db.store.audit_events(&EventFilter::default()).await.unwrap();
    let processes: std::collections::HashSet<_> = events
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.details).unwrap()["process"].clone())
        .collect();
    assert_eq!(processes.len(), 2, "both processes wrote");
    db.finish().await;
}

/// Checkpoints are signed when due, verification checks them, the database refuses to
/// edit the log, and retention deletes a prefix while the rest still verifies.
async fn checkpoints_and_retention(db: &TestDb) {
    let store = &db.store;
    let key = crate::audit::checkpoint::test_key();
    assert!(store.checkpoint_audit(&key, None, None).await.unwrap().is_none(), "nothing to sign in an empty log");
    append_concurrently(store, 1, 5, 1).await;
    let hourly = |every| Signing::Serving { every, interval: chrono::Duration::hours(1) };
    let first = store.checkpoint_audit_if_due(&key, hourly(1000), None).await.unwrap().unwrap();
    assert_eq!(first.signed.seq, 5, "the first checkpoint of a serving gateway is due at once");
    assert_eq!(first.signed.next, Some(first.signed.at + chrono::Duration::hours(2)), "it promises the next");
    assert!(store.checkpoint_audit_if_due(&key, hourly(1), None).await.unwrap().is_none(), "nothing new since");
    let summary = store.verify_audit(Some(key.public_key()), None).await.unwrap();
    assert_eq!((summary.events, summary.last_checkpoint), (5, Some((first.id, first.signed.at))));
    let other = crate::audit::checkpoint::test_key();
    let foreign = store.verify_audit(Some(other.public_key()), None).await.unwrap_err().to_string();
    assert!(foreign.starts_with(&format!("checkpoint #{} is signed by SHA256:", first.id)), "{foreign}");

    // The database itself refuses to change the log.
    for sql in ["UPDATE audit_events SET details = '{}' WHERE seq = 2", "DELETE FROM audit_events WHERE seq = 5"] {
        let err = sqlx::query(sql).execute(&store.write).await.unwrap_err().to_string();
        assert!(err.contains("audit_events is append-only"), "{sql}: {err}");
    }

    // Selections by time, and the record of an export, on both backends.
    let events = store.audit_events(&EventFilter::default()).await.unwrap();
    let (since, until) = (events[1].at, events[3].at);
    let between = EventFilter { since: Some(since), until: Some(until), ..Default::default() };
    let got: Vec<_> = store.audit_events(&between).await.unwrap().iter().map(|e| e.seq).collect();
    let want: Vec<_> = events.iter().filter(|e| e.at >= since && e.at < until).map(|e| e.seq).collect();
    assert_eq!(got.first(), Some(&2));
    assert_eq!(got, want);
    let filter = crate::audit::export::ExportFilter { ticket: Some(TicketId(1001)), ..Default::default() };
    let export = store.record_audit_export(&Actor::cli(), &filter, "jsonl", "stdout").await.unwrap();
    assert_eq!((export.seq, export.action.as_str(), export.subjects.ticket), (6, "audit.export", Some(TicketId(1001))));
    let events = store.audit_events(&EventFilter::default()).await.unwrap();

    // Events before the cutoff go; the rest verifies from the start the retention recorded.
    let cutoff = events[3].at;
    let keep_from = events.iter().find(|e| e.at >= cutoff).unwrap().seq;
    let r = store.apply_audit_retention(&Actor::system(), &key, cutoff, None).await.unwrap().unwrap();
    assert_eq!(
        (r.checkpoint.signed.seq, &r.checkpoint.signed.hash),
        (r.event, &store.latest_audit_events(1).await.unwrap()[0].hash)
    );
    assert_eq!((r.details.first_seq, r.details.deleted, r.event), (keep_from, keep_from - 1, 7));
    let start = store.audit_chain_start().await.unwrap();
    assert_eq!((start.seq, start.retention_event), (keep_from, Some(7)));
    assert_eq!(start.prev_hash, events[keep_from as usize - 2].hash);
    let summary = store.verify_audit(Some(key.public_key()), None).await.unwrap();
    assert_eq!(summary.events as i64, 7 - keep_from + 1);
    assert_eq!(summary.last_checkpoint.map(|c| c.0), Some(r.checkpoint.id));
    assert!(store.apply_audit_retention(&Actor::system(), &key, cutoff, None).await.unwrap().is_none(), "done already");

    // A cutoff after every event deletes all but the newest, which the chain continues from.
    let later = iks_domain::time::now() + chrono::Duration::seconds(1);
    let all = store.apply_audit_retention(&Actor::system(), &key, later, None).await.unwrap().unwrap();
    assert_eq!((all.details.first_seq, all.event), (7, 8));
    assert_eq!(store.verify_audit(Some(key.public_key()), None).await.unwrap().events, 2);
    append_concurrently(store, 1, 1, 1).await;
    assert_eq!(store.latest_audit_events(1).await.unwrap()[0].seq, 9);
    assert_eq!(store.verify_audit(Some(key.public_key()), None).await.unwrap().events, 3);
}

/// Someone who drops the guard and edits the log is caught by verification.
async fn tampering_is_named(db: &TestDb) {
    let store = &db.store;
    append_concurrently(store, 1, 4, 1).await;
    let drop_guard = match store.backend() {
        Backend::Sqlite => "DROP TRIGGER audit_events_no_update",
        Backend::Postgres => "DROP TRIGGER audit_events_no_update ON audit_events",
    };
    sqlx::query(drop_guard).execute(&store.write).await.unwrap();
    sqlx::query("UPDATE audit_events SET actor_name = 'someone else' WHERE seq = 2")
        .execute(&store.write)
        .await
        .unwrap();
    let err = store.verify_audit(None, None).await.unwrap_err();
    assert_eq!(err.to_string(), "event #2 was edited (hash mismatch)");
}

/// Signing vouches: the gateway refuses to sign once a checkpoint it signed was deleted, or
/// over a retention event it did not sign itself; verification names the forged retention.
async fn the_gateway_signs_over_no_cut_and_no_forged_retention(db: &TestDb) {
    let store = &db.store;
    let key = crate::audit::checkpoint::test_key();
    append_concurrently(store, 1, 3, 1).await;
    let first = store.checkpoint_audit(&key, None, None).await.unwrap().unwrap();
    append_concurrently(store, 1, 2, 1).await;
    let second = store.checkpoint_audit(&key, None, Some(&first)).await.unwrap().unwrap();
    assert_eq!((first.signed.seq, second.signed.seq), (3, 5));

    // The newest checkpoint and the events after the one before it, deleted.
    let drop_guard: &[&str] = match store.backend() {
        Backend::Sqlite => &["DROP TRIGGER audit_events_no_delete", "DROP TRIGGER audit_checkpoints_no_delete"],
        Backend::Postgres => &[
            "DROP TRIGGER audit_events_no_delete ON audit_events",
            "DROP TRIGGER audit_checkpoints_no_delete ON audit_checkpoints",
        ],
    };
    for sql in drop_guard {
        sqlx::query(sql).execute(&store.write).await.unwrap();
    }
    sqlx::query("DELETE FROM audit_checkpoints WHERE id = $1").bind(second.id).execute(&store.write).await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq > 3").execute(&store.write).await.unwrap();
    let refused = store.checkpoint_audit(&key, None, Some(&second)).await.unwrap_err().to_string();
    assert_eq!(
        refused,
        format!(
            "refusing to sign a checkpoint: checkpoint #{}, signed by this gateway, is no longer in the database \
             (run `iks-gateway audit verify`)",
            second.id
        )
    );

    // A retention event nobody signed, appended with a valid link.
    let head = store.latest_audit_events(1).await.unwrap().remove(0);
    let details = crate::audit::retention::RetentionDetails {
        cutoff: iks_domain::time::now(),
        deleted: 0,
        first_seq: 1,
        first_prev_hash: iks_domain::audit::GENESIS_HASH.into(),
    };
    let mut tx = store.begin().await.unwrap();
    let value = serde_json::to_value(&details).unwrap();
    let forged =
        tx.audit(NewEvent::new(&Actor::system(), "audit.retention", Subjects::default(), value)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(forged.seq, head.seq + 1);
    let refused = store.checkpoint_audit(&key, None, None).await.unwrap_err().to_string();
    assert_eq!(
        refused,
        format!(
            "refusing to sign a checkpoint: retention event #{} was not signed when it was written \
             (run `iks-gateway audit verify`)",
            forged.seq
        )
    );
    let unvouched = store.verify_audit(Some(key.public_key()), None).await.unwrap_err().to_string();
    assert_eq!(
        unvouched,
        format!(
            "retention event #{} is not vouched for by a signed checkpoint (events before #1 were deleted without one)",
            forged.seq
        )
    );
}

/// A rolled-back change leaves no event behind, and reopening the store migrates nothing twice.
async fn migrations_are_idempotent(db: &TestDb) {
    let store = &db.store;
    {
        let mut tx = store.begin().await.unwrap();
        tx.audit(NewEvent::new(&Actor::system(), "test.rolled_back", Subjects::default(), serde_json::json!({})))
            .await
            .unwrap();
        drop(tx);
    }
    assert!(store.audit_events(&EventFilter::default()).await.unwrap().is_empty());
    let created = store.create_org(&Actor::cli(), &romashka()).await.unwrap();
    // A second handle on the same database (as a second process would open it) finds the
    // schema current and the data in place, and its writes continue the same chain.
    let second = Store::open(&db.url).await.unwrap();
    assert_eq!(second.list_orgs().await.unwrap(), [created]);
    second
        .create_person(
            &Actor::cli(),
            &NewPerson {
                login: "auditor".into(),
                display_name: "Аудитор".into(),
                role: Role::Auditor,
                org_id: None,
                email: None,
            },
        )
        .await
        .unwrap();
    let seqs: Vec<_> = store.audit_events(&EventFilter::default()).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2]);
    second.close().await;
}

async fn tickets_grants_and_sessions(db: &TestDb) {
    let store = &db.store;
    let cli = Actor::cli();
    let org = store.create_org(&cli, &romashka()).await.unwrap();
    let b = store.create_box(&cli, &new_box(org.id, "main-gw")).await.unwrap();
    let person = |login: &str, role, org_id| NewPerson {
        login: login.into(),
        display_name: login.into(),
        role,
        org_id,
        email: None,
    };
    let ivanov = store.create_person(&cli, &person("ivanov", Role::Operator, None)).await.unwrap();
    let petrov = store.create_person(&cli, &person("petrov", Role::Customer, Some(org.id))).await.unwrap();
    let new_ticket = new_ticket(org.id);
    let t = store.create_ticket(&cli, &new_ticket).await.unwrap();
    assert_eq!(t.id, TicketId(1001), "ticket numbers start at T-1001");
    assert_eq!(t.state, TicketState::Open);
    assert_eq!(store.ticket(t.id).await.unwrap(), t);

    let as_ivanov = Actor::person(ivanov.id, "ivanov");
    let as_petrov = Actor::person(petrov.id, "petrov");
    let req = NewAccessRequest {
        ticket_id: t.id,
        box_id: b.id,
        requested_by: ivanov.id,
        reason: "check VPN logs".into(),
        duration: chrono::Duration::hours(2),
    };
    let g = store.request_access(&as_ivanov, &req).await.unwrap();
    assert_eq!((g.state, g.requested_secs), (GrantState::Pending, 7200));
    let start = iks_domain::time::now();
    let approval = Approval {
        starts_at: start,
        ends_at: start + chrono::Duration::hours(1),
        operator_id: Some(ivanov.id),
        note: None,
    };
    let approved = store.approve_grant(&as_petrov, g.id, petrov.id, &approval).await.unwrap();
    assert_eq!(approved.state, GrantState::Approved);
    assert_eq!((approved.starts_at, approved.ends_at), (Some(approval.starts_at), Some(approval.ends_at)));
    assert_eq!(approved.operator_id, Some(ivanov.id));
    let again = store.approve_grant(&as_petrov, g.id, petrov.id, &approval).await.unwrap_err();
    assert_eq!(again.to_string(), format!("{} is approved, not pending", g.id));

    // A session under the grant, with events inside it.
    let new_session = NewSession {
        grant_id: g.id,
        ticket_id: t.id,
        box_id: b.id,
        operator_id: ivanov.id,
        client_addr: Some("127.0.0.1:50000".into()),
        node: "node-a".into(),
    };
    let s = store.start_session(&as_ivanov, &new_session, org.id).await.unwrap();
    store.set_session_recording(s.id, "2026/11/24/S-1.cast").await.unwrap();
    let live = store.list_sessions(&SessionFilter { live: true, ..Default::default() }).await.unwrap();
    assert_eq!(live.iter().map(|s| s.id).collect::<Vec<_>>(), [s.id]);
    let exec = SessionEvent {
        session_id: s.id,
        at: iks_domain::time::now(),
        channel: Some(0),
        kind: "exec".into(),
        details: serde_json::json!({ "command": "uname -a" }),
    };
    store.add_session_event(&exec).await.unwrap();
    assert_eq!(store.session_events(s.id).await.unwrap(), [exec]);
    let end = SessionEnd {
        reason: EndReason::ClientExit,
        bytes_in: 10,
        bytes_out: 2000,
        recording: None,
        recording_sha256: Some("ab".repeat(32)),
    };
    let ended = store.end_session(&Actor::system(), s.id, org.id, &end).await.unwrap();
    assert_eq!(ended.end_reason, Some(EndReason::ClientExit));
    assert_eq!(ended.recording.as_deref(), Some("2026/11/24/S-1.cast"), "the name set at start is kept");
    assert!(matches!(store.end_session(&Actor::system(), s.id, org.id, &end).await, Err(StoreError::Conflict(_))));
    assert!(store.list_sessions(&SessionFilter { live: true, ..Default::default() }).await.unwrap().is_empty());
    assert_eq!(store.list_sessions(&SessionFilter { org: Some(org.id), ..Default::default() }).await.unwrap().len(), 1);
    // The panel's filters: box, end reason, start time, paging; the log by action and actor, newest first.
    let by = |f: SessionFilter| async move { store.list_sessions(&f).await.unwrap().len() };
    assert_eq!(
        by(SessionFilter { box_id: Some(b.id), end_reason: Some(EndReason::ClientExit), ..Default::default() }).await,
        1
    );
    assert_eq!(by(SessionFilter { end_reason: Some(EndReason::Killed), ..Default::default() }).await, 0);
    assert_eq!(
        by(SessionFilter {
            since: Some(s.started_at),
            until: Some(s.started_at + chrono::Duration::seconds(1)),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(by(SessionFilter { until: Some(s.started_at), ..Default::default() }).await, 0, "until is exclusive");
    assert_eq!(by(SessionFilter { before: Some(s.id), ..Default::default() }).await, 0);
    assert_eq!(by(SessionFilter { limit: Some(0), ..Default::default() }).await, 0);
    let newest = EventFilter { actor: Some("ivanov".into()), newest_first: true, limit: Some(2), ..Default::default() };
    let newest = store.audit_events(&newest).await.unwrap();
    assert_eq!(newest.len(), 2);
    assert!(newest[0].seq > newest[1].seq && newest.iter().all(|e| e.actor.name == "ivanov"));
    let starts = EventFilter { action: Some("session.start".into()), ..Default::default() };
    assert_eq!(
        store.audit_events(&starts).await.unwrap().iter().map(|e| e.subjects.session).collect::<Vec<_>>(),
        [Some(s.id)]
    );

    // A rejected request, then closing the ticket revokes what is still open.
    let g2 = store.request_access(&as_ivanov, &req).await.unwrap();
    let rejected = store.reject_grant(&as_petrov, g2.id, petrov.id, "not now").await.unwrap();
    assert_eq!((rejected.state, rejected.decision_note.as_deref()), (GrantState::Rejected, Some("not now")));
    let g3 = store.request_access(&as_ivanov, &req).await.unwrap();
    store
        .record_refusal(&as_ivanov, Subjects { ticket: Some(t.id), ..Default::default() }, "grant", "no grant", None)
        .await
        .unwrap();
    let closed = store.close_ticket(&cli, t.id, "resolved by phone").await.unwrap();
    assert_eq!(closed.state, TicketState::Closed);
    assert_eq!(store.grant(g.id).await.unwrap().state, GrantState::Revoked);
    assert_eq!(store.grant(g3.id).await.unwrap().state, GrantState::Revoked);
    assert_eq!(store.grant(g2.id).await.unwrap().state, GrantState::Rejected, "decided requests stay as they were");
    assert!(matches!(store.close_ticket(&cli, t.id, "again").await, Err(StoreError::Conflict(_))));

    // Expiry: an approved grant whose window has passed.
    let t2 = store.create_ticket(&cli, &new_ticket).await.unwrap();
    let g4 = store.request_access(&as_ivanov, &NewAccessRequest { ticket_id: t2.id, ..req.clone() }).await.unwrap();
    let past = Approval {
        starts_at: start - chrono::Duration::hours(2),
        ends_at: start - chrono::Duration::hours(1),
        operator_id: None,
        note: None,
    };
    store.approve_grant(&as_petrov, g4.id, petrov.id, &past).await.unwrap();
    let expired = store.expire_grants(&Actor::system()).await.unwrap();
    assert_eq!(expired.iter().map(|g| g.id).collect::<Vec<_>>(), [g4.id]);
    assert!(store.expire_grants(&Actor::system()).await.unwrap().is_empty(), "idempotent");
    let pending = GrantFilter { state: Some(GrantState::Expired), org: Some(org.id), ..Default::default() };
    assert_eq!(store.list_grants(&pending).await.unwrap().len(), 1);

    // Everything about the first ticket is one query, in order.
    let about = store.audit_events(&EventFilter { ticket: Some(t.id), ..Default::default() }).await.unwrap();
    let actions: Vec<_> = about.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "ticket.open",
            "access.request",
            "access.approve",
            "session.start",
            "session.end",
            "access.request",
            "access.reject",
            "access.request",
            "session.refuse",
            "ticket.close",
            "access.revoke",
            "access.revoke"
        ]
    );
    let end_details: serde_json::Value = serde_json::from_str(&about[4].details).unwrap();
    assert_eq!(end_details["recording_sha256"], "ab".repeat(32));
    assert_eq!(about[4].subjects.session, Some(s.id));
}

mod agents;
mod transcripts;
