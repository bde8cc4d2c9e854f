//! The audit log page and its exports: scoping, the chain's status, and exports that are
//! themselves audited.

use axum::http::StatusCode;

use super::TestPanel;
use super::sessions::{Text as _, session};
use crate::audit::export::verify_file;
use crate::datadir::KeyRole;
use crate::store::EventFilter;

#[tokio::test]
async fn the_log_is_for_customers_auditors_and_admins_only() {
    let p = TestPanel::new().await;
    let mut op = p.login("petrov").await;
    assert_eq!(p.get(&mut op, "/audit").await.status, StatusCode::FORBIDDEN);
    assert_eq!(p.get(&mut op, "/audit/export?format=csv").await.status, StatusCode::FORBIDDEN);
    for login in ["sidorova", "root"] {
        let mut b = p.login(login).await;
        let page = p.get(&mut b, "/audit").await;
        assert_eq!(page.status, StatusCode::OK, "{login}");
        assert!(page.text().contains("Целостность цепочки") && page.text().contains("в порядке"), "{}", page.body);
        assert!(
            page.text().contains("org.create") && page.text().contains("ООО") || page.text().contains("person.create")
        );
    }
}

#[tokio::test]
async fn a_customer_reads_and_exports_only_their_organisations_events() {
    let p = TestPanel::new().await;
    let a = session(&p, &p.a, false).await;
    let b = session(&p, &p.b, false).await;
    let mut br = p.login("romashka").await;
    let page = p.get(&mut br, "/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains(&a.id.to_string()), "A's session events are listed");
    assert!(!page.text().contains(&format!("{}</td>", b.id)) && !page.text().contains("ivanov-gw"), "{}", page.body);
    assert!(!page.text().contains("Целостность цепочки"), "the chain's status is for auditors");
    // Asking for B by organisation, ticket or session gives nothing of B's.
    for query in [
        format!("org={}", p.b.id.get()),
        format!("ticket={}", p.b.ticket),
        format!("session={}", b.id),
        "actor=ivanov-ip".to_string(),
    ] {
        let page = p.get(&mut br, &format!("/audit?{query}")).await;
        assert!(!page.text().contains("ivanov-gw") && !page.text().contains(&format!("{}</td>", b.id)), "{query}");
        let csv = p.get(&mut br, &format!("/audit/export?format=csv&{query}")).await;
        if query.starts_with("actor") {
            assert_eq!(csv.status, StatusCode::BAD_REQUEST, "{query}: exports are not filtered by actor");
            continue;
        }
        assert_eq!(csv.status, StatusCode::OK, "{query}");
        let b_org = format!(",{},", p.b.id.get());
        for line in csv.body.lines().skip(1) {
            let org = line.split(',').nth(6).unwrap();
            assert_eq!(org, p.a.id.get().to_string(), "{query}: {line}");
        }
        assert!(!csv.text().contains(&b_org) || csv.body.lines().skip(1).all(|l| !l.contains("ivanov")));
    }
    // The export of the customer's own events: every line is theirs, and the export is audited.
    let csv = p.get(&mut br, "/audit/export?format=csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.starts_with("seq,at,actor_kind"));
    assert!(csv.body.lines().count() > 3);
    assert!(csv.body.lines().skip(1).all(|l| l.split(',').nth(6) == Some(&p.a.id.get().to_string())));
    let exports: Vec<_> = p
        .app
        .store
        .audit_events(&EventFilter { action: Some("audit.export".into()), ..Default::default() })
        .await
        .unwrap();
    assert!(exports.iter().all(|e| e.actor.name == "romashka" && e.subjects.org == Some(p.a.id)));
    assert_eq!(exports.len(), 4, "every export is recorded, the refused ones are not");
}

#[tokio::test]
async fn an_auditors_jsonl_export_verifies_and_names_the_auditor() {
    let p = TestPanel::new().await;
    session(&p, &p.a, false).await;
    let mut br = p.login("sidorova").await;
    let page = p.get(&mut br, "/audit/export?format=jsonl").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-disposition"].to_str().unwrap().ends_with(".jsonl\""));
    let key = p.app.data_dir.key(KeyRole::Audit).unwrap();
    let report = verify_file(page.body.as_bytes(), Some(key.public_key()), None).unwrap();
    assert_eq!(report.header.exported_by, "sidorova (person)");
    let last = p.app.store.latest_audit_events(1).await.unwrap().pop().unwrap();
    assert_eq!((last.action.as_str(), last.actor.name.as_str()), ("audit.export", "sidorova"));
    assert_eq!(report.header.through_seq, last.seq);
    assert_eq!(report.summary.events as i64, last.seq, "an unfiltered export holds the whole chain");
    // One session's events: a selection, still verifiable, recorded with the session.
    let s = session(&p, &p.b, false).await;
    let page = p.get(&mut br, &format!("/audit/export?format=jsonl&session={}", s.id)).await;
    let report = verify_file(page.body.as_bytes(), Some(key.public_key()), None).unwrap();
    assert_eq!(report.header.filter.session, Some(s.id));
    let events = p.app.store.audit_events(&EventFilter { session: Some(s.id), ..Default::default() }).await.unwrap();
    assert_eq!(report.summary.events as usize, events.len(), "the session's events, its own export included");
    assert_eq!(events.last().unwrap().action, "audit.export");
}

#[tokio::test]
async fn filters_and_pages_of_the_log() {
    let p = TestPanel::new().await;
    let s = session(&p, &p.a, true).await;
    let mut br = p.login("root").await;
    let kill = p.post(&mut br, &format!("/sessions/{}/kill", s.id.get()), &[]).await;
    assert_eq!(kill.status, StatusCode::SEE_OTHER);
    let page = p.get(&mut br, "/audit?action=session.kill&actor=root").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text().matches("<code>session.kill</code>").count(), 1, "{}", page.body);
    assert!(!page.text().contains("<code>org.create</code>"));
    let none = p.get(&mut br, "/audit?action=session.kill&actor=sidorova").await;
    assert!(none.text().contains("Событий не найдено."));
    let bad = p.get(&mut br, "/audit?session=X-1&from=2026-11-24").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("Номер сеанса пишется как S-7: «X-1»") && bad.text().contains("value=\"X-1\""));
    // Newest first, a page at a time: the second page starts below the first.
    for n in 0..120 {
        p.app
            .store
            .append_event(iks_domain::audit::NewEvent::new(
                &iks_domain::audit::Actor::cli(),
                "test.filler",
                Default::default(),
                serde_json::json!({ "n": n }),
            ))
            .await
            .unwrap();
    }
    let first = p.get(&mut br, "/audit").await;
    let head = p.app.store.latest_audit_events(1).await.unwrap()[0].seq;
    assert!(first.text().contains(&format!("<td>{head}</td>")));
    let next = first.text().split("href=\"/audit?").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let second = p.get(&mut br, &format!("/audit?{next}")).await;
    assert!(second.text().contains(&format!("<td>{}</td>", head - 100)));
    assert!(!second.text().contains(&format!("<td>{head}</td>")));
}

#[tokio::test]
async fn a_tampered_chain_shows_the_exact_problem() {
    use sqlx::Connection as _;
    let p = TestPanel::new().await;
    let mut db = sqlx::AnyConnection::connect(&p._db.url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_events_no_update").execute(&mut db).await.unwrap();
    sqlx::query("UPDATE audit_events SET actor_name = 'someone else' WHERE seq = 2").execute(&mut db).await.unwrap();
    db.close().await.unwrap();
    let mut br = p.login("sidorova").await;
    let page = p.get(&mut br, "/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text().contains("НАРУШЕНА") && page.text().contains("event #2 was edited (hash mismatch)"),
        "{}",
        page.body
    );
}
