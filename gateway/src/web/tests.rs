//! The panel in process, against a real SQLite store: requests go through the whole HTTP
//! router (panel and API) with `oneshot`, with cookies kept per browser like a real one.
//!
//! [`TestPanel::new`] sets up two customer organisations, A (ООО Ромашка, box `main-gw`,
//! ticket `a_ticket`) and B (ИП Иванов, box `ivanov-gw`, ticket `b_ticket`), and one person
//! per role, each with the password [`PASSWORD`]: `romashka` (customer of A), `ivanov-ip`
//! (customer of B), `petrov` (operator), `sidorova` (auditor), `root` (admin).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt as _;

use crate::config::Config;
use crate::datadir::{DataDir, KeyRole};
use crate::node::{Node, NodeParts};
use crate::state::Gateway;
use crate::store::tests::{TestDb, new_box, new_ticket};
use iks_domain::audit::Actor;
use iks_domain::ids::{BoxId, OrgId, TicketId};
use iks_domain::model::{NewOrg, NewPerson, Role};
use iks_domain::rules::{Inn, OrgFacts};

pub const PASSWORD: &str = "correct horse battery";
pub const ROMASHKA: &str = "7707083893";
pub const IVANOV_IP: &str = "500100732259";

pub struct Org {
    pub id: OrgId,
    pub box_id: BoxId,
    pub ticket: TicketId,
}

pub struct TestPanel {
    pub router: Router,
    pub app: Arc<Gateway>,
    pub a: Org,
    pub b: Org,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// One answer, with its body as text.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// Where a redirect points.
    pub fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The value of an `<input name="…" value="…">` in the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[at + name.len() + 15..];
        Some(rest[..rest.find('"')?].to_string())
    }
}

/// A browser: its cookies, and the CSRF token of its session once signed in.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub cookies: Vec<(String, String)>,
    pub csrf: Option<String>,
    pub address: Option<std::net::SocketAddr>,
}

impl TestPanel {
    pub async fn new() -> Self {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(config: Config) -> Self {
        let db = TestDb::sqlite().await;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::open(&dir.path().join("data")).unwrap();
        let store = db.store.clone();
        let cli = Actor::cli();
        let paid = OrgFacts {
            module_paid_until: Some(iks_domain::time::parse_date("2099-12-31").unwrap()),
            ..Default::default()
        };
        let partner = OrgFacts { partner: true, ..Default::default() };
        let mut orgs = Vec::new();
        for (inn, name, facts, box_name, customer) in [
            (ROMASHKA, "ООО Ромашка", paid, "main-gw", "romashka"),
            (IVANOV_IP, "ИП Иванов", partner, "ivanov-gw", "ivanov-ip"),
        ] {
            let org = store
                .create_org(&cli, &NewOrg { inn: Inn::parse(inn).unwrap(), name: name.into(), facts })
                .await
                .unwrap();
            let b = store.create_box(&cli, &new_box(org.id, box_name)).await.unwrap();
            let ticket = store.create_ticket(&cli, &new_ticket(org.id)).await.unwrap();
            add_person(&store, customer, Role::Customer, Some(org.id)).await;
            orgs.push(Org { id: org.id, box_id: b.id, ticket: ticket.id });
        }
        for (login, role) in [("petrov", Role::Operator), ("sidorova", Role::Auditor), ("root", Role::Admin)] {
            add_person(&store, login, role, None).await;
        }
        let user_ca = data_dir.key(KeyRole::UserCa).unwrap();
        let parts = NodeParts { store, config: Arc::new(config), data_dir, user_ca, name: "test".into() };
        let app = Node::open(parts).await.unwrap().app().clone();
        let b = orgs.pop().unwrap();
        let a = orgs.pop().unwrap();
        Self { router: crate::http::router(app.clone()), app, a, b, _db: db, _dir: dir }
    }

    /// Sends one request as `browser`, keeping the cookies it is given.
    pub async fn send(&self, browser: &mut Browser, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = Request::builder().method(method).uri(path);
        let cookie: Vec<String> = browser.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !cookie.is_empty() {
            req = req.header(header::COOKIE, cookie.join("; "));
        }
        let body = match form {
            Some(fields) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                serde_urlencoded::to_string(fields).unwrap()
            }
            None => String::new(),
        };
        let address = browser.address.unwrap_or_else(|| "127.0.0.1:50000".parse().unwrap());
        let router = self.router.clone().layer(MockConnectInfo(address));
        let res = router.oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        for set in parts.headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (kv, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (k, v) = kv.split_once('=').unwrap();
            browser.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                browser.cookies.push((k.to_string(), v.to_string()));
            }
        }
        let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap();
        Page { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    pub async fn get(&self, browser: &mut Browser, path: &str) -> Page {
        self.send(browser, Method::GET, path, None).await
    }

    /// Posts a form with the browser's CSRF token added.
    pub async fn post(&self, browser: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = browser.csrf.clone().expect("sign in before posting");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.send(browser, Method::POST, path, Some(&all)).await
    }

    /// Tries to sign in through the sign-in form, as a person would.
    pub async fn try_login(&self, browser: &mut Browser, login: &str, password: &str) -> Page {
        let form = self.get(browser, "/login").await;
        let pre = form.input("csrf").expect("the sign-in form has a token");
        let page = self
            .send(browser, Method::POST, "/login", Some(&[("csrf", &pre), ("login", login), ("password", password)]))
            .await;
        if let Some((_, token)) = browser.cookies.iter().find(|(k, _)| k == super::viewer::SESSION_COOKIE) {
            let hash = crate::secret::hash(token);
            browser.csrf = self.app.store.web_session(&hash).await.unwrap().map(|s| s.csrf);
        }
        page
    }

    /// A browser signed in as `login`.
    pub async fn login(&self, login: &str) -> Browser {
        let mut b = Browser::default();
        let page = self.try_login(&mut b, login, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{login} signs in: {}", page.body);
        b
    }
}

impl TestPanel {
    /// A session by `operator` on `org`'s box through an approved grant, whose recording is
    /// `cast` (asciicast v2 text); ended as "client exit" unless `live`.
    pub async fn recorded_session(
        &self,
        org: &Org,
        operator: &str,
        cast: &str,
        live: bool,
    ) -> iks_domain::ids::SessionId {
        use iks_domain::model::{Approval, NewAccessRequest, NewSession, SessionEnd};
        let store = &self.app.store;
        let cli = Actor::cli();
        let op = store.person_by_login(operator).await.unwrap();
        let req = NewAccessRequest {
            ticket_id: org.ticket,
            box_id: org.box_id,
            requested_by: op.id,
            reason: "logs".into(),
            duration: chrono::Duration::hours(1),
        };
        let g = store.request_access(&cli, &req).await.unwrap();
        let now = iks_domain::time::now();
        let approval =
            Approval { starts_at: now, ends_at: now + chrono::Duration::hours(1), operator_id: None, note: None };
        store.approve_grant(&cli, g.id, op.id, &approval).await.unwrap();
        let new = NewSession {
            grant_id: g.id,
            ticket_id: org.ticket,
            box_id: org.box_id,
            operator_id: op.id,
            client_addr: None,
            node: "test".into(),
        };
        let s = store.start_session(&cli, &new, org.id).await.unwrap();
        let rel = crate::recording::relative_path(s.id, s.started_at);
        let path = self.app.data_dir.recordings_dir().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, cast).unwrap();
        store.set_session_recording(s.id, &rel).await.unwrap();
        if !live {
            let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, cast.as_bytes()));
            let end = SessionEnd {
                reason: iks_domain::model::EndReason::ClientExit,
                bytes_in: 10,
                bytes_out: cast.len() as i64,
                recording: Some(rel),
                recording_sha256: Some(sha),
            };
            store.end_session(&cli, s.id, org.id, &end).await.unwrap();
        }
        s.id
    }
}

async fn add_person(store: &crate::store::Store, login: &str, role: Role, org: Option<OrgId>) {
    let new =
        NewPerson { login: login.into(), display_name: format!("{login} (test)"), role, org_id: org, email: None };
    let p = store.create_person(&Actor::cli(), &new).await.unwrap();
    let hash = super::auth::hash_password(PASSWORD.into()).await.unwrap();
    store.set_password(&Actor::cli(), p.id, Some(&hash)).await.unwrap();
}

mod admin;
mod audit_log;
mod auth;
mod desk;
mod recordings;
mod sessions;
