//! The API in process, against a real SQLite store: each request goes through the whole
//! router with `oneshot`, as the helpdesk would send it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Duration;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::{OPENAPI, ROUTES, router};
use crate::config::Config;
use crate::datadir::{DataDir, KeyRole};
use crate::node::{Node, NodeParts};
use crate::store::EventFilter;
use crate::store::tests::{TestDb, new_box};
use iks_domain::audit::Actor;
use iks_domain::model::{Approval, NewAccessRequest, NewOrg, NewPerson, NewSession, Role};
use iks_domain::rules::{Inn, OrgFacts};

const ROMASHKA: &str = "7707083893";
const IVANOV_IP: &str = "500100732259";

struct Api {
    router: Router,
    app: Arc<crate::state::Gateway>,
    /// Sees every organisation: the helpdesk.
    helpdesk: String,
    /// Scoped to ИП Иванов.
    scoped: String,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Self {
        let db = TestDb::sqlite().await;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::open(&dir.path().join("data")).unwrap();
        let store = db.store.clone();
        let cli = Actor::cli();
        let paid = OrgFacts {
            module_paid_until: Some(iks_domain::time::parse_date("2099-12-31").unwrap()),
            ..Default::default()
        };
        let romashka = NewOrg { inn: Inn::parse(ROMASHKA).unwrap(), name: "ООО Ромашка".into(), facts: paid };
        let romashka = store.create_org(&cli, &romashka).await.unwrap();
        let partner = OrgFacts { partner: true, ..Default::default() };
        let ivanov = NewOrg { inn: Inn::parse(IVANOV_IP).unwrap(), name: "ИП Иванов".into(), facts: partner };
        let ivanov = store.create_org(&cli, &ivanov).await.unwrap();
        let (_, helpdesk) = super::auth::issue(&store, &cli, "helpdesk", None).await.unwrap();
        let (_, scoped) = super::auth::issue(&store, &cli, "ivanov-portal", Some(ivanov.id)).await.unwrap();
        store.create_box(&cli, &new_box(romashka.id, "main-gw")).await.unwrap();
        let user_ca = data_dir.key(KeyRole::UserCa).unwrap();
        let parts = NodeParts { store, config: Arc::new(Config::default()), data_dir, user_ca, name: "test".into() };
        let app = Node::open(parts).await.unwrap().app().clone();
        Self { router: router(app.clone()), app, helpdesk, scoped, _db: db, _dir: dir }
    }

    /// Sends a request; `body` is sent as JSON text when given.
    async fn send(&self, method: Method, uri: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
        let (status, _, bytes) = self.raw(method, uri, token, body, "application/json").await;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (status, value)
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
        content_type: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let req = req.body(HttpBody::from(body.unwrap_or("").to_string())).unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, bytes.to_vec())
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Method::GET, uri, Some(&self.helpdesk), None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, uri, Some(&self.helpdesk), Some(&body.to_string())).await
    }

    async fn as_scoped(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.send(method, uri, Some(&self.scoped), body.as_deref()).await
    }

    /// Posts `body` as it is, readable JSON or not.
    async fn post_text(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.send(Method::POST, uri, Some(&self.helpdesk), Some(body)).await
    }

    /// Opens a ticket through the API and returns its number.
    async fn open(&self, inn: &str) -> String {
        let (status, t) = self.post("/api/tickets", filing(inn)).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        t["number"].as_str().unwrap().to_string()
    }
}

fn filing(inn: &str) -> Value {
    json!({
        "inn": inn,
        "contact_name": "Пётр Петров",
        "contact_phone": "+7 495 000-00-00",
        "product": "iks-standard",
        "version": "7.2",
        "description": "VPN tunnel does not come up",
        "topic": "configuration"
    })
}

/// Asserts an error answer: status, code and the field it names.
#[track_caller]
fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str, field: Option<&str>) {
    let (s, v) = got;
    assert_eq!(*s, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["field"].as_str(), field, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} is not in openapi.json"))[method];
        assert!(op["responses"].is_object(), "{method} {path} has no responses in openapi.json");
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, ROUTES.len(), "openapi.json documents a route the router does not have");
    // Every schema referenced is defined.
    let text = OPENAPI.to_string();
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(doc["components"]["schemas"][name].is_object(), "undefined schema {name}");
    }
    // Served as is, without a token.
    let api = Api::new().await;
    let (status, served) = api.send(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!((status, served), (StatusCode::OK, doc));
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let api = Api::new().await;
    let no_token = api.send(Method::GET, "/api/tickets", None, None).await;
    assert_error(&no_token, StatusCode::UNAUTHORIZED, "unauthorized", None);
    let (_, headers, _) = api.raw(Method::GET, "/api/tickets", None, None, "").await;
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    let wrong = api.send(Method::GET, "/api/tickets", Some("iks_0000"), None).await;
    assert_eq!(wrong, no_token, "an unknown token gets the same answer as none");
    let req = Request::get("/api/tickets").header(header::AUTHORIZATION, format!("Basic {}", api.helpdesk));
    let response = api.router.clone().oneshot(req.body(HttpBody::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "only bearer tokens");
    assert_eq!(api.get("/api/tickets").await.0, StatusCode::OK);

    // A revoked token stops working at once.
    let tokens = api.app.store.list_api_tokens().await.unwrap();
    assert!(tokens.iter().all(|t| !format!("{t:?}").contains(&api.helpdesk)), "the secret is not stored");
    api.app.store.revoke_api_token(&Actor::cli(), tokens[0].id).await.unwrap();
    assert_eq!(api.get("/api/tickets").await, no_token);
    let unknown = api.send(Method::GET, "/api/nothing", Some(&api.scoped), None).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found", None);
    let wrong_method = api.send(Method::DELETE, "/api/tickets", Some(&api.scoped), None).await;
    assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
}

#[tokio::test]
async fn opening_tickets_and_the_regulations_refusals() {
    let api = Api::new().await;
    let (status, t) = api.post("/api/tickets", filing(ROMASHKA)).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!((t["number"].as_str(), t["id"].as_i64()), (Some("T-1001"), Some(1001)));
    assert_eq!(
        (t["state"].as_str(), t["priority"].as_i64(), t["inn"].as_str()),
        (Some("open"), Some(1), Some(ROMASHKA))
    );
    assert_eq!(t["sla"]["status"], "running");
    assert!(t["response_due_at"].is_string());
    assert_eq!(t["history"][0]["action"], "ticket.open");
    assert_eq!(t["history"][0]["actor"], json!({ "kind": "api-token", "id": 1, "name": "helpdesk" }));
    let partner = api.post("/api/tickets", filing(IVANOV_IP)).await.1;
    assert_eq!(partner["priority"], 2, "a partner is category 2");

    // Refused tickets are stored and returned, with the reason.
    let mut old = filing(ROMASHKA);
    old["version"] = json!("5.0");
    let mut no_contact = filing(ROMASHKA);
    no_contact["contact_name"] = json!(" ");
    let mut off_topic = filing(ROMASHKA);
    off_topic["topic"] = json!("other");
    for (body, reason) in
        [(old, "unsupported_version"), (no_contact, "no_contact_data"), (off_topic, "not_about_products")]
    {
        let (status, t) = api.post("/api/tickets", body).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        assert_eq!((t["state"].as_str(), t["refusal_reason"].as_str()), (Some("refused"), Some(reason)), "{t}");
        assert_eq!(t["sla"]["status"], "no_deadline");
    }

    // What cannot be read is 400, naming the member.
    assert_error(&api.post_text("/api/tickets", "{\"inn\": ").await, StatusCode::BAD_REQUEST, "bad_json", None);
    assert_error(&api.post_text("/api/tickets", "").await, StatusCode::BAD_REQUEST, "missing_field", Some("inn"));
    let mut missing = filing(ROMASHKA);
    missing.as_object_mut().unwrap().remove("contact_name");
    assert_error(
        &api.post_text("/api/tickets", &missing.to_string()).await,
        StatusCode::BAD_REQUEST,
        "missing_field",
        Some("contact_name"),
    );
    let mut typo = filing(ROMASHKA);
    typo["phone"] = json!("+7");
    assert_error(
        &api.post_text("/api/tickets", &typo.to_string()).await,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("phone"),
    );
    let mut wrong_type = filing(ROMASHKA);
    wrong_type["version"] = json!(7);
    assert_error(
        &api.post_text("/api/tickets", &wrong_type.to_string()).await,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("version"),
    );
    let mut bad_topic = filing(ROMASHKA);
    bad_topic["topic"] = json!("weather");
    assert_error(
        &api.post_text("/api/tickets", &bad_topic.to_string()).await,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("topic"),
    );
    let (status, _, body) = api
        .raw(Method::POST, "/api/tickets", Some(&api.helpdesk), Some(&filing(ROMASHKA).to_string()), "text/plain")
        .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_error(&(status, v), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None);

    // Well-formed but against the rules is 422.
    let with = |k: &str, v: Value| {
        let mut f = filing(ROMASHKA);
        f[k] = v;
        f
    };
    assert_error(
        &api.post("/api/tickets", with("inn", json!("7707083894"))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("inn"),
    );
    assert_error(
        &api.post("/api/tickets", with("inn", json!("7736207543"))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_organisation",
        Some("inn"),
    );
    assert_error(
        &api.post("/api/tickets", with("product", json!("iks-ultra"))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("product"),
    );
    assert_error(
        &api.post("/api/tickets", with("description", json!(" "))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("description"),
    );
    assert_eq!(api.get("/api/tickets").await.1.as_array().unwrap().len(), 5, "errors stored nothing");
}

#[tokio::test]
async fn reading_and_listing_tickets() {
    let api = Api::new().await;
    let a = api.open(ROMASHKA).await;
    let b = api.open(IVANOV_IP).await;
    let mut off_topic = filing(ROMASHKA);
    off_topic["topic"] = json!("other");
    api.post("/api/tickets", off_topic).await;

    let (status, t) = api.get(&format!("/api/tickets/{a}")).await;
    assert_eq!((status, t["number"].as_str()), (StatusCode::OK, Some(a.as_str())));
    assert_eq!((t["comments"].clone(), t["history"].as_array().unwrap().len()), (json!([]), 1));
    assert_eq!(api.get("/api/tickets/1001").await.1["number"], "T-1001", "the bare number works too");
    assert_error(&api.get("/api/tickets/T-9999").await, StatusCode::NOT_FOUND, "not_found", None);
    assert_error(&api.get("/api/tickets/ticket-one").await, StatusCode::BAD_REQUEST, "bad_request", Some("id"));

    let numbers =
        |v: Value| v.as_array().unwrap().iter().map(|t| t["number"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(numbers(api.get("/api/tickets").await.1), ["T-1003", b.as_str(), a.as_str()]);
    assert_eq!(numbers(api.get("/api/tickets?state=refused").await.1), ["T-1003"]);
    assert_eq!(numbers(api.get("/api/tickets?state=open").await.1), [b.as_str(), a.as_str()]);
    assert_eq!(numbers(api.get(&format!("/api/tickets?inn={IVANOV_IP}")).await.1), [b.as_str()]);
    assert_eq!(numbers(api.get("/api/tickets?inn=7736207543").await.1), Vec::<String>::new());
    assert_error(&api.get("/api/tickets?state=lost").await, StatusCode::BAD_REQUEST, "invalid_value", Some("state"));
}

#[tokio::test]
async fn a_scoped_token_sees_only_its_organisation() {
    let api = Api::new().await;
    let theirs = api.open(ROMASHKA).await;
    let own = api.open(IVANOV_IP).await;
    let hidden = api.as_scoped(Method::GET, &format!("/api/tickets/{theirs}"), None).await;
    let missing = api.as_scoped(Method::GET, "/api/tickets/T-9999", None).await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(
        hidden.1["error"]["message"],
        format!("no ticket {theirs}"),
        "exactly like a ticket that does not exist: {missing:?}"
    );
    for path in ["comments", "escalate", "close"] {
        let body = json!({ "author": "x", "from_customer": true, "body": "x" });
        let r = api
            .as_scoped(Method::POST, &format!("/api/tickets/{theirs}/{path}"), (path == "comments").then_some(body))
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
    }
    assert_error(
        &api.as_scoped(Method::GET, &format!("/api/tickets/{theirs}/sessions"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let list = api.as_scoped(Method::GET, "/api/tickets", None).await.1;
    assert_eq!(list.as_array().unwrap().iter().map(|t| t["number"].clone()).collect::<Vec<_>>(), [json!(own)]);
    let asked = api.as_scoped(Method::GET, &format!("/api/tickets?inn={ROMASHKA}"), None).await.1;
    assert_eq!(asked, json!([]));
    let other_org = api.as_scoped(Method::POST, "/api/tickets", Some(filing(ROMASHKA))).await;
    assert_error(&other_org, StatusCode::UNPROCESSABLE_ENTITY, "unknown_organisation", Some("inn"));
    assert_eq!(api.as_scoped(Method::POST, "/api/tickets", Some(filing(IVANOV_IP))).await.0, StatusCode::CREATED);

    // It speaks for the customer: no support comments, no escalation.
    assert_eq!(api.as_scoped(Method::GET, &format!("/api/tickets/{own}"), None).await.0, StatusCode::OK);
    let support = json!({ "author": "x", "from_customer": false, "body": "x" });
    let r = api.as_scoped(Method::POST, &format!("/api/tickets/{own}/comments"), Some(support)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden", Some("from_customer"));
    assert_error(
        &api.as_scoped(Method::POST, &format!("/api/tickets/{own}/escalate"), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    let customer = json!({ "author": "Иванов", "from_customer": true, "body": "any news?" });
    assert_eq!(
        api.as_scoped(Method::POST, &format!("/api/tickets/{own}/comments"), Some(customer)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(api.as_scoped(Method::POST, &format!("/api/tickets/{own}/close"), None).await.1["state"], "closed");
}

#[tokio::test]
async fn comments_escalation_and_closing() {
    let api = Api::new().await;
    let t = api.open(ROMASHKA).await;
    let comments = format!("/api/tickets/{t}/comments");
    let (status, c) =
        api.post(&comments, json!({ "author": "Пётр Петров", "from_customer": true, "body": "Still down" })).await;
    assert_eq!(
        (status, c["from_customer"].as_bool(), c["author_id"].clone()),
        (StatusCode::CREATED, Some(true), Value::Null)
    );
    let (_, reply) =
        api.post(&comments, json!({ "author": "ivanov", "from_customer": false, "body": "Send the log" })).await;
    let shown = api.get(&format!("/api/tickets/{t}")).await.1;
    assert_eq!(shown["first_response_at"], reply["created_at"], "support's first comment stops the clock");
    assert_eq!(shown["last_customer_activity_at"], c["created_at"]);
    assert_eq!(shown["sla"]["status"], "answered");
    assert_eq!(shown["comments"].as_array().unwrap().len(), 2);
    assert_error(
        &api.post(&comments, json!({ "author": "x", "from_customer": true })).await,
        StatusCode::BAD_REQUEST,
        "missing_field",
        Some("body"),
    );
    assert_error(
        &api.post(&comments, json!({ "author": "x", "from_customer": "yes", "body": "x" })).await,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("from_customer"),
    );
    assert_error(
        &api.post(&comments, json!({ "author": "x", "from_customer": true, "body": "  " })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("body"),
    );
    assert_error(
        &api.post("/api/tickets/T-9999/comments", json!({ "author": "x", "from_customer": true, "body": "x" })).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    let escalate = format!("/api/tickets/{t}/escalate");
    let (status, e) = api.post(&escalate, json!({ "note": "needs a fix in the VPN module" })).await;
    assert_eq!((status, e["state"].as_str()), (StatusCode::OK, Some("escalated")));
    let last = e["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["details"]["note"].as_str()),
        (Some("ticket.escalate"), Some("needs a fix in the VPN module"))
    );
    assert_eq!(last["actor"]["name"], "helpdesk");
    assert_error(&api.post(&escalate, json!({})).await, StatusCode::CONFLICT, "invalid_transition", None);
    assert_error(
        &api.post(&escalate, json!({ "nope": 1 })).await,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("nope"),
    );

    let close = format!("/api/tickets/{t}/close");
    let (status, closed) = api.send(Method::POST, &close, Some(&api.helpdesk), None).await;
    assert_eq!(
        (status, closed["state"].as_str(), closed["close_reason"].as_str()),
        (StatusCode::OK, Some("closed"), Some("resolved"))
    );
    let again = api.post(&close, json!({ "reason": "again" })).await;
    assert_error(&again, StatusCode::CONFLICT, "invalid_transition", None);
    assert!(again.1["error"]["message"].as_str().unwrap().contains("is closed"), "{}", again.1);
    assert_error(
        &api.post(&comments, json!({ "author": "x", "from_customer": true, "body": "x" })).await,
        StatusCode::CONFLICT,
        "conflict",
        None,
    );
    let refused = {
        let mut f = filing(ROMASHKA);
        f["topic"] = json!("other");
        api.post("/api/tickets", f).await.1["number"].as_str().unwrap().to_string()
    };
    assert_error(
        &api.post(&format!("/api/tickets/{refused}/escalate"), json!({})).await,
        StatusCode::CONFLICT,
        "invalid_transition",
        None,
    );
    let closing = api.post(&format!("/api/tickets/{refused}/close"), json!({ "reason": "x" })).await;
    assert_error(&closing, StatusCode::CONFLICT, "invalid_transition", None);
}

#[tokio::test]
async fn sessions_and_recordings() {
    let api = Api::new().await;
    let store = &api.app.store;
    let cli = Actor::cli();
    let number = api.open(ROMASHKA).await;
    let ticket = store.ticket(number.parse().unwrap()).await.unwrap();
    let b = store.box_by_name(ticket.org_id, "main-gw").await.unwrap();
    let op = NewPerson {
        login: "ivanov".into(),
        display_name: "Иван".into(),
        role: Role::Operator,
        org_id: None,
        email: None,
    };
    let op = store.create_person(&cli, &op).await.unwrap();
    let req = NewAccessRequest {
        ticket_id: ticket.id,
        box_id: b.id,
        requested_by: op.id,
        reason: "logs".into(),
        duration: Duration::hours(1),
    };
    let g = store.request_access(&cli, &req).await.unwrap();
    let now = iks_domain::time::now();
    let approval = Approval { starts_at: now, ends_at: now + Duration::hours(1), operator_id: None, note: None };
    store.approve_grant(&cli, g.id, op.id, &approval).await.unwrap();
    let new = NewSession {
        grant_id: g.id,
        ticket_id: ticket.id,
        box_id: b.id,
        operator_id: op.id,
        client_addr: None,
        node: "test".into(),
    };
    let s = store.start_session(&cli, &new, ticket.org_id).await.unwrap();
    let cast = "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"uname -a\\r\\n\"]\n";
    let rel = crate::recording::relative_path(s.id, s.started_at);
    let path = api.app.data_dir.recordings_dir().join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, cast).unwrap();
    store.set_session_recording(s.id, &rel).await.unwrap();

    let (status, list) = api.get(&format!("/api/tickets/{number}/sessions")).await;
    assert_eq!(status, StatusCode::OK);
    let url = format!("/api/sessions/{}/recording", s.id);
    assert_eq!(
        (list[0]["number"].as_str(), list[0]["recording_url"].as_str()),
        (Some(s.id.to_string().as_str()), Some(url.as_str()))
    );
    let (status, headers, body) = api.raw(Method::GET, &url, Some(&api.helpdesk), None, "").await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, cast.as_bytes()));
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-asciicast");
    let events = store.audit_events(&EventFilter { session: Some(s.id), ..Default::default() }).await.unwrap();
    let download = events.iter().find(|e| e.action == "session.download").expect("the download is audited");
    assert_eq!(
        (download.actor.kind, download.actor.name.as_str()),
        (iks_domain::audit::ActorKind::ApiToken, "helpdesk")
    );

    let hidden = api.send(Method::GET, &url, Some(&api.scoped), None).await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(
        store.audit_events(&EventFilter { session: Some(s.id), ..Default::default() }).await.unwrap().len(),
        events.len(),
        "a refused download is no download"
    );
    assert_error(&api.get("/api/sessions/S-99/recording").await, StatusCode::NOT_FOUND, "not_found", None);
    assert_error(&api.get("/api/sessions/T-1/recording").await, StatusCode::BAD_REQUEST, "bad_request", Some("id"));
    assert_eq!(api.get("/api/tickets/T-1001/sessions").await.1.as_array().unwrap().len(), 1);
}
