//! Replay, live view and search through the panel: who may see which session.

use axum::http::StatusCode;

use super::TestPanel;
use crate::store::EventFilter;

/// A shell session: the prompt, `iptables -F` typed and echoed, its output.
const CAST: &str = concat!(
    "{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1764000000, \"title\": \"T-1001\"}\n",
    "[0.2, \"o\", \"root@main-gw:~# \"]\n",
    "[1.0, \"i\", \"iptables -F\\r\"]\n",
    "[1.1, \"o\", \"iptables -F\\r\\n\"]\n",
    "[1.3, \"o\", \"root@main-gw:~# \"]\n",
);

#[tokio::test]
async fn replays_are_for_the_organisation_the_engineer_and_auditors_only() {
    let p = TestPanel::new().await;
    let id = p.recorded_session(&p.a, "petrov", CAST, false).await.get();
    let url = format!("/sessions/{id}/replay.json");
    for login in ["romashka", "petrov", "sidorova", "root"] {
        let mut b = p.login(login).await;
        let page = p.get(&mut b, &url).await;
        assert_eq!(page.status, StatusCode::OK, "{login}");
        let replay: serde_json::Value = serde_json::from_str(&page.body).unwrap();
        assert!(replay["frames"].as_array().is_some_and(|f| !f.is_empty()), "{login}: {replay}");
        assert!(page.body.contains("iptables -F"), "{login}");
    }
    // Another organisation's customer, and an operator who did not run it: not found.
    super::add_person(&p.app.store, "kozlov", iks_domain::model::Role::Operator, None).await;
    for login in ["ivanov-ip", "kozlov"] {
        let mut b = p.login(login).await;
        for path in [url.clone(), format!("/sessions/{id}/live")] {
            let page = p.get(&mut b, &path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{login} {path}");
            assert!(!page.body.contains("iptables"), "{login} sees nothing of it");
        }
    }
    let viewed = p
        .app
        .store
        .audit_events(&EventFilter { session: Some(iks_domain::ids::SessionId(id)), ..Default::default() })
        .await
        .unwrap();
    let replays: Vec<_> =
        viewed.iter().filter(|e| e.action == "session.replay").map(|e| e.actor.name.as_str()).collect();
    assert_eq!(replays, ["romashka", "petrov", "sidorova", "root"], "every replay is audited with its viewer");
}

#[tokio::test]
async fn the_live_view_streams_until_the_session_ends() {
    let p = TestPanel::new().await;
    let id = p.recorded_session(&p.a, "petrov", CAST, false).await.get();
    let mut b = p.login("romashka").await;
    let page = p.get(&mut b, &format!("/sessions/{id}/live")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/event-stream");
    assert!(page.body.contains("event: frame") && page.body.contains("iptables -F"), "{}", page.body);
    assert!(page.body.contains("event: end"), "an ended session's stream ends");
}

#[tokio::test]
async fn search_finds_the_command_and_links_to_its_moment() {
    let p = TestPanel::new().await;
    let a = p.recorded_session(&p.a, "petrov", CAST, false).await.get();
    let b_id = p.recorded_session(&p.b, "petrov", CAST, false).await.get();
    let mut auditor = p.login("sidorova").await;
    let page = p.get(&mut auditor, "/search?q=iptables+-F").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("/sessions/{a}#t=")), "{}", page.body);
    assert!(page.body.contains(&format!("/sessions/{b_id}#t=")));
    let narrowed = p.get(&mut auditor, &format!("/search?q=iptables&org={}", p.b.id)).await;
    assert!(
        !narrowed.body.contains(&format!("/sessions/{a}#t="))
            && narrowed.body.contains(&format!("/sessions/{b_id}#t="))
    );
    let bad = p.get(&mut auditor, "/search?q=iptables&from=yesterday").await;
    assert!(bad.body.contains("Дата — в виде ГГГГ-ММ-ДД."));
    // A customer searches their own organisation, even when the form names another.
    let mut customer = p.login("romashka").await;
    let own = p.get(&mut customer, &format!("/search?q=iptables&org={}", p.b.id)).await;
    assert!(own.body.contains(&format!("/sessions/{a}#t=")) && !own.body.contains(&format!("/sessions/{b_id}#t=")));
    assert!(!own.body.contains("ИП Иванов"));
    let mut operator = p.login("petrov").await;
    assert_eq!(p.get(&mut operator, "/search?q=iptables").await.status, StatusCode::FORBIDDEN);
    let searches = p.app.store.audit_events(&EventFilter::default()).await.unwrap();
    assert!(searches.iter().any(|e| e.action == "session.search" && e.actor.name == "sidorova"));
}

#[tokio::test]
async fn every_way_of_reading_a_recording_is_audited() {
    let p = TestPanel::new().await;
    let id = p.recorded_session(&p.a, "petrov", CAST, false).await;
    let events = |action: &'static str| {
        let store = p.app.store.clone();
        async move {
            let filter = EventFilter { session: Some(id), ..Default::default() };
            store.audit_events(&filter).await.unwrap().into_iter().filter(|e| e.action == action).count()
        }
    };
    let n = id.get();
    // `?from=0` is the whole replay: read without opening it first, it is a replay.
    let mut auditor = p.login("sidorova").await;
    let whole = p.get(&mut auditor, &format!("/sessions/{n}/replay.json?from=0")).await;
    assert!(whole.status == StatusCode::OK && whole.body.contains("iptables -F"));
    assert_eq!(events("session.replay").await, 1, "a replay read through `from` is audited");
    // The player opens the replay, then fetches its later parts: one event for the view.
    let mut customer = p.login("romashka").await;
    assert_eq!(p.get(&mut customer, &format!("/sessions/{n}/replay.json")).await.status, StatusCode::OK);
    assert_eq!(p.get(&mut customer, &format!("/sessions/{n}/replay.json?from=1")).await.status, StatusCode::OK);
    assert_eq!(events("session.replay").await, 2, "later parts of an opened replay are not new views");
    // Another panel session of the same person has not opened it.
    let mut again = p.login("romashka").await;
    p.get(&mut again, &format!("/sessions/{n}/replay.json?from=1")).await;
    assert_eq!(events("session.replay").await, 3);
    assert_eq!(p.get(&mut auditor, &format!("/sessions/{n}/recording.cast")).await.status, StatusCode::OK);
    assert_eq!(events("session.download").await, 1);
    assert_eq!(p.get(&mut auditor, &format!("/sessions/{n}/live")).await.status, StatusCode::OK);
    assert_eq!(events("session.watch").await, 1);
}
