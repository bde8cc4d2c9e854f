//! The sessions pages: who sees which sessions, a session's facts and events, terminating
//! a live session, and downloading a recording (audited).

use axum::http::{Method, StatusCode};

use super::{Org, Page, TestPanel};
use crate::store::EventFilter;
use iks_domain::audit::Actor;
use iks_domain::model::{Approval, EndReason, NewAccessRequest, NewSession, Session, SessionEnd, SessionEvent};

/// A page's text with the template engine's escapes undone, to compare with what a person reads.
pub trait Text {
    fn text(&self) -> String;
}

impl Text for Page {
    fn text(&self) -> String {
        [("&#x2f;", "/"), ("&#x27;", "'"), ("&quot;", "\""), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")]
            .iter()
            .fold(self.body.clone(), |t, (from, to)| t.replace(from, to))
    }
}

/// A session of `petrov` on `org`'s box, with an exec and an upload inside it and a
/// recording on disk; ended unless `live`.
pub async fn session(p: &TestPanel, org: &Org, live: bool) -> Session {
    let store = &p.app.store;
    let petrov = store.person_by_login("petrov").await.unwrap();
    let op = Actor::person(petrov.id, "petrov");
    let req = NewAccessRequest {
        ticket_id: org.ticket,
        box_id: org.box_id,
        requested_by: petrov.id,
        reason: "look at the logs".into(),
        duration: chrono::Duration::hours(2),
    };
    let g = store.request_access(&op, &req).await.unwrap();
    let now = iks_domain::time::now();
    let approval =
        Approval { starts_at: now, ends_at: now + chrono::Duration::hours(1), operator_id: None, note: None };
    store.approve_grant(&Actor::cli(), g.id, petrov.id, &approval).await.unwrap();
    let new = NewSession {
        grant_id: g.id,
        ticket_id: org.ticket,
        box_id: org.box_id,
        operator_id: petrov.id,
        client_addr: Some("127.0.0.1:50001".into()),
        node: "test".into(),
    };
    let s = store.start_session(&op, &new, org.id).await.unwrap();
    let file = format!("{}.cast", s.id);
    let dir = p.app.data_dir.recordings_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&file), format!("{{\"version\":2}}\n[0.1,\"o\",\"secret of {}\"]\n", s.id)).unwrap();
    store.set_session_recording(s.id, &file).await.unwrap();
    for (kind, details) in [
        ("exec", serde_json::json!({ "command": "journalctl -u vpn", "pty": false })),
        ("sftp.upload", serde_json::json!({ "path": "/etc/vpn.conf", "bytes": 2048, "sha256": "ab".repeat(32) })),
    ] {
        let e = SessionEvent { session_id: s.id, at: now, channel: Some(0), kind: kind.into(), details };
        store.add_session_event(&e).await.unwrap();
    }
    if live {
        return s;
    }
    let end = SessionEnd {
        reason: EndReason::ClientExit,
        bytes_in: 300,
        bytes_out: 5000,
        recording: None,
        recording_sha256: Some("cd".repeat(32)),
    };
    store.end_session(&Actor::system(), s.id, org.id, &end).await.unwrap()
}

#[tokio::test]
async fn each_role_sees_the_sessions_it_may() {
    let p = TestPanel::new().await;
    let a = session(&p, &p.a, false).await;
    let b = session(&p, &p.b, true).await;
    for (login, sees_a, sees_b) in [
        ("romashka", true, false),
        ("ivanov-ip", false, true),
        ("petrov", true, true),
        ("sidorova", true, true),
        ("root", true, true),
    ] {
        let mut br = p.login(login).await;
        let page = p.get(&mut br, "/sessions").await;
        assert_eq!(page.status, StatusCode::OK, "{login}");
        let link = |s: &Session| format!("href=\"/sessions/{}\"", s.id.get());
        assert_eq!(page.text().contains(&link(&a)), sees_a, "{login} and A's session");
        assert_eq!(page.text().contains(&link(&b)), sees_b, "{login} and B's session");
        if !sees_b {
            assert!(!page.text().contains("ivanov-gw") && !page.text().contains("ИП Иванов"), "{login}: {}", page.body);
        }
    }
    // Another operator's sessions are not petrov's.
    let mut other = p.login("petrov").await;
    let mine = p.get(&mut other, "/sessions?live=1").await;
    assert!(mine.text().contains(&format!("href=\"/sessions/{}\"", b.id.get())) && mine.text().contains("badge live"));
    assert!(!mine.text().contains(&format!("href=\"/sessions/{}\"", a.id.get())), "only live ones");
}

#[tokio::test]
async fn filters_narrow_the_list_and_bad_ones_are_named() {
    let p = TestPanel::new().await;
    let a = session(&p, &p.a, false).await;
    let b = session(&p, &p.b, true).await;
    let mut br = p.login("sidorova").await;
    let link = |s: &Session| format!("href=\"/sessions/{}\"", s.id.get());
    for (query, want_a, want_b) in [
        (format!("org={}", p.a.id.get()), true, false),
        (format!("ticket={}", p.b.ticket), false, true),
        (format!("box={}", p.a.box_id.get()), true, false),
        ("reason=client+exit".to_string(), true, false),
        ("engineer=petrov".to_string(), true, true),
        ("from=2000-01-01&to=2000-01-02".to_string(), false, false),
        ("from=2000-01-01".to_string(), true, true),
    ] {
        let page = p.get(&mut br, &format!("/sessions?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert_eq!((page.text().contains(&link(&a)), page.text().contains(&link(&b))), (want_a, want_b), "{query}");
    }
    let bad = p.get(&mut br, "/sessions?from=24.11.2026&ticket=T-1001").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("Дата должна быть в виде ГГГГ-ММ-ДД: «24.11.2026»"), "{}", bad.body);
    assert!(
        bad.text().contains("value=\"24.11.2026\"") && bad.text().contains("value=\"T-1001\""),
        "what was typed stays"
    );
    let nobody = p.get(&mut br, "/sessions?engineer=nobody").await;
    assert!(nobody.text().contains("Нет инженера с логином «nobody»"));
    let customer_login = p.get(&mut br, "/sessions?engineer=ivanov-ip").await;
    assert!(customer_login.text().contains("Нет инженера с логином «ivanov-ip»"), "a customer is no engineer");
    // A customer's org filter cannot reach another organisation.
    let mut customer = p.login("romashka").await;
    let sneaky = p.get(&mut customer, &format!("/sessions?org={}", p.b.id.get())).await;
    assert!(!sneaky.text().contains(&link(&b)) && sneaky.text().contains(&link(&a)));
}

#[tokio::test]
async fn a_session_page_shows_its_facts_events_and_player_container() {
    let p = TestPanel::new().await;
    let s = session(&p, &p.a, false).await;
    let mut br = p.login("sidorova").await;
    let page = p.get(&mut br, &format!("/sessions/{}", s.id.get())).await;
    assert_eq!(page.status, StatusCode::OK);
    for want in [
        "ООО Ромашка",
        "main-gw",
        &p.a.ticket.to_string(),
        "journalctl -u vpn",
        "/etc/vpn.conf",
        "на сервер",
        &"cd".repeat(32),
        "client exit",
        &format!("<section id=\"player\" data-session=\"{}\"", s.id.get()),
        &format!("href=\"/sessions/{}/recording.cast\"", s.id.get()),
    ] {
        assert!(page.text().contains(want), "{want} missing from {}", page.body);
    }
    assert!(!page.text().contains("/kill"), "an ended session has nothing to terminate; an auditor never does");
}

#[tokio::test]
async fn another_organisations_session_is_not_found() {
    let p = TestPanel::new().await;
    let b = session(&p, &p.b, true).await;
    let mut a = p.login("romashka").await;
    let before = p.app.store.audit_events(&EventFilter::default()).await.unwrap().len();
    for path in [format!("/sessions/{}", b.id.get()), format!("/sessions/{}/recording.cast", b.id.get())] {
        let page = p.get(&mut a, &path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.text().contains("secret of") && !page.text().contains("ivanov-gw"), "{path}");
    }
    let kill = p.post(&mut a, &format!("/sessions/{}/kill", b.id.get()), &[]).await;
    assert_eq!(kill.status, StatusCode::NOT_FOUND);
    assert_eq!(p.get(&mut a, "/sessions/999999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(p.get(&mut a, "/sessions/nonsense").await.status, StatusCode::NOT_FOUND);
    let after = p.app.store.audit_events(&EventFilter::default()).await.unwrap().len();
    assert_eq!(before, after, "nothing was downloaded or killed");
    assert!(p.app.store.live_checks("test").await.unwrap().iter().all(|c| c.kill_requested_by.is_none()));
}

#[tokio::test]
async fn terminating_a_live_session_asks_its_node_and_is_audited() {
    let p = TestPanel::new().await;
    let s = session(&p, &p.a, true).await;
    let path = format!("/sessions/{}/kill", s.id.get());
    // The auditor reads but never changes anything.
    let mut auditor = p.login("sidorova").await;
    let page = p.get(&mut auditor, &format!("/sessions/{}", s.id.get())).await;
    assert!(!page.text().contains(&path));
    assert_eq!(p.post(&mut auditor, &path, &[]).await.status, StatusCode::FORBIDDEN);
    // Without the form's token nothing happens.
    let mut customer = p.login("romashka").await;
    let page = p.get(&mut customer, &format!("/sessions/{}", s.id.get())).await;
    assert!(page.text().contains(&format!("action=\"{path}\"")), "the customer sees the button");
    let forged = p.send(&mut customer, Method::POST, &path, Some(&[("csrf", "forged")])).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(p.app.store.live_checks("test").await.unwrap()[0].kill_requested_by.is_none());
    let done = p.post(&mut customer, &path, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("/sessions/{}", s.id.get()));
    let check = &p.app.store.live_checks("test").await.unwrap()[0];
    assert_eq!(check.kill_requested_by.as_deref(), Some("romashka"), "the node's watchdog sees who asked");
    let events = p.app.store.audit_events(&EventFilter { session: Some(s.id), ..Default::default() }).await.unwrap();
    let kill = events.iter().find(|e| e.action == "session.kill").expect("a session.kill event");
    assert_eq!(kill.actor.name, "romashka");
    // The operator may end their own session, and the admin any.
    for login in ["petrov", "root"] {
        let mut br = p.login(login).await;
        let page = p.post(&mut br, &path, &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{login}: {}", page.body);
    }
    // An ended session cannot be terminated again.
    p.app
        .store
        .end_session(
            &Actor::system(),
            s.id,
            p.a.id,
            &SessionEnd {
                reason: EndReason::Killed,
                bytes_in: 0,
                bytes_out: 0,
                recording: None,
                recording_sha256: None,
            },
        )
        .await
        .unwrap();
    let again = p.post(&mut customer, &path, &[]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.text().contains("has already ended"), "{}", again.body);
}

#[tokio::test]
async fn downloading_a_recording_is_audited_with_the_viewer_as_actor() {
    let p = TestPanel::new().await;
    let s = session(&p, &p.a, false).await;
    for login in ["romashka", "sidorova", "petrov", "root"] {
        let mut br = p.login(login).await;
        let page = p.get(&mut br, &format!("/sessions/{}/recording.cast", s.id.get())).await;
        assert_eq!(page.status, StatusCode::OK, "{login}");
        assert!(page.text().contains(&format!("secret of {}", s.id)));
        assert!(page.headers["content-disposition"].to_str().unwrap().contains("attachment"));
        let events =
            p.app.store.audit_events(&EventFilter { session: Some(s.id), ..Default::default() }).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!((last.action.as_str(), last.actor.name.as_str()), ("session.download", login));
    }
}
