//! Stories of the transcript index: sessions indexed when searched, found by what was
//! typed, at the right moment, and only within the filters.

use super::*;
use crate::search::{SearchError, search};
use crate::store::TranscriptQuery;
use iks_domain::model::Session;

story!(transcript_search);

/// An ended session of `login` on a new box of `org`, whose recording (written to `dir`)
/// holds `events`.
async fn ended_session(
    store: &Store,
    dir: &std::path::Path,
    org: OrgId,
    box_name: &str,
    login: &str,
    events: &[(f64, &str, &str)],
) -> Session {
    let cli = Actor::cli();
    let b = store.create_box(&cli, &new_box(org, box_name)).await.unwrap();
    let person = |login: &str, role, org_id| NewPerson {
        login: login.into(),
        display_name: login.into(),
        role,
        org_id,
        email: None,
    };
    let operator = match store.person_by_login(login).await {
        Ok(p) => p,
        Err(_) => store.create_person(&cli, &person(login, Role::Operator, None)).await.unwrap(),
    };
    let customer = store.create_person(&cli, &person(&format!("{box_name}-admin"), Role::Customer, Some(org))).await;
    let customer = customer.unwrap();
    let ticket = NewTicket {
        org_id: org,
        contact_name: "Пётр Петров".into(),
        contact_phone: None,
        contact_email: Some("p@example.org".into()),
        product: "iks-standard".into(),
        version: "7.2".into(),
        description: "firewall".into(),
        topic: None,
        priority: 1,
        response_due_at: None,
        refusal: None,
    };
    let t = store.create_ticket(&cli, &ticket).await.unwrap();
    let req = NewAccessRequest {
        ticket_id: t.id,
        box_id: b.id,
        requested_by: operator.id,
        reason: "rules".into(),
        duration: chrono::Duration::hours(1),
    };
    let g = store.request_access(&cli, &req).await.unwrap();
    let now = iks_domain::time::now();
    let approval =
        Approval { starts_at: now, ends_at: now + chrono::Duration::hours(1), operator_id: None, note: None };
    store.approve_grant(&cli, g.id, customer.id, &approval).await.unwrap();
    let new = NewSession {
        grant_id: g.id,
        ticket_id: t.id,
        box_id: b.id,
        operator_id: operator.id,
        client_addr: None,
        node: "node-a".into(),
    };
    let s = store.start_session(&cli, &new, org).await.unwrap();
    let rel = format!("{}.cast", s.id);
    let mut cast = b"{\"version\":2,\"width\":40,\"height\":5,\"timestamp\":1}\n".to_vec();
    for e in events {
        cast.extend(serde_json::to_vec(e).unwrap());
        cast.push(b'\n');
    }
    if !events.is_empty() {
        std::fs::write(dir.join(&rel), cast).unwrap();
    }
    store.set_session_recording(s.id, &rel).await.unwrap();
    let end = SessionEnd {
        reason: EndReason::ClientExit,
        bytes_in: 1,
        bytes_out: 1,
        recording: None,
        recording_sha256: None,
    };
    store.end_session(&Actor::system(), s.id, org, &end).await.unwrap()
}

const TYPED: &[(f64, &str, &str)] = &[
    (0.5, "o", "root@gw:~# "),
    (12.5, "i", "iptables -F"),
    (12.6, "o", "iptables -F"),
    (13.0, "i", "\r"),
    (13.1, "o", "\r\nroot@gw:~# "),
    (20.0, "i", "exit\r"),
];

async fn transcript_search(db: &TestDb) {
    let store = &db.store;
    let dir = tempfile::tempdir().unwrap();
    let cli = Actor::cli();
    let a = store.create_org(&cli, &romashka()).await.unwrap();
    let b = store
        .create_org(&cli, &NewOrg { inn: inn("500100732259"), name: "ИП Иванов".into(), facts: romashka().facts })
        .await
        .unwrap();
    let s1 = ended_session(store, dir.path(), a.id, "main-gw", "ivanov", TYPED).await;
    let s2 = ended_session(store, dir.path(), b.id, "shop-gw", "petrov", &TYPED[1..]).await;
    // A session whose recording is gone: searching still works, and skips it from then on.
    let lost = ended_session(store, dir.path(), a.id, "old-gw", "ivanov", &[]).await;

    let query = |text: &str| TranscriptQuery { text: text.into(), ..Default::default() };
    let all = search(store, dir.path(), &cli, &query("IPTABLES -f")).await.unwrap();
    let got: Vec<_> = all.iter().map(|h| (h.session, h.offset, h.input, h.line.as_str())).collect();
    assert_eq!(
        got,
        [
            (s2.id, 13.1, false, "iptables -F"),
            (s2.id, 13.1, true, "iptables -F"),
            (s1.id, 13.1, false, "root@gw:~# iptables -F"),
            (s1.id, 13.1, true, "iptables -F"),
        ],
        "newest session first, each hit at its moment; typed lines at the moment their echo completed"
    );
    let h = &all[3];
    assert_eq!(
        (h.org, h.org_name.as_str(), h.engineer.as_str(), h.box_name.as_str()),
        (a.id, "ООО Ромашка", "ivanov", "main-gw")
    );
    assert_eq!((h.ticket, h.box_id, h.started_at), (s1.ticket_id, s1.box_id, s1.started_at));
    assert!(store.unindexed_sessions(10).await.unwrap().is_empty(), "{} was indexed as empty", lost.id);

    // Filters narrow; another organisation's sessions stay out.
    let (path, actor) = (dir.path(), &cli);
    let only = |q: TranscriptQuery| async move {
        let hits = search(store, path, actor, &q).await.unwrap();
        let mut ids: Vec<_> = hits.iter().map(|h| h.session).collect();
        ids.dedup();
        ids
    };
    assert_eq!(only(TranscriptQuery { org: Some(a.id), ..query("iptables") }).await, [s1.id]);
    assert_eq!(only(TranscriptQuery { engineer: Some("petrov".into()), ..query("iptables") }).await, [s2.id]);
    assert_eq!(only(TranscriptQuery { ticket: Some(s1.ticket_id), ..query("iptables") }).await, [s1.id]);
    assert_eq!(only(TranscriptQuery { box_id: Some(s2.box_id), ..query("iptables") }).await, [s2.id]);
    let later = s2.started_at + chrono::Duration::hours(1);
    assert_eq!(only(TranscriptQuery { from: Some(later), ..query("iptables") }).await, []);
    assert_eq!(only(TranscriptQuery { to: Some(later), ..query("iptables") }).await, [s2.id, s1.id]);
    assert_eq!(only(TranscriptQuery { limit: 1, ..query("iptables") }).await, [s2.id]);
    assert_eq!(only(query("exit")).await, [], "a line the screen never echoed is not indexed");
    assert_eq!(only(query("%")).await, [], "wildcards are text");
    assert!(matches!(search(store, dir.path(), &cli, &query("  ")).await, Err(SearchError::EmptyQuery)));

    // Indexing again replaces, never duplicates; every search is in the audit log.
    crate::search::index_session(store, dir.path(), s1.id).await.unwrap();
    assert_eq!(only(TranscriptQuery { org: Some(a.id), limit: 10, ..query("-F") }).await, [s1.id]);
    let n = search(store, dir.path(), &cli, &TranscriptQuery { org: Some(a.id), ..query("-F") }).await.unwrap().len();
    assert_eq!(n, 2);
    let events = store.audit_events(&EventFilter { org: Some(a.id), ..Default::default() }).await.unwrap();
    assert!(events.iter().any(|e| e.action == "session.search"));
}
