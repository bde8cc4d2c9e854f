//! Signing in and out, sessions, CSRF, throttling, the second factor and one-time links.

use std::sync::Arc;

use axum::http::{Method, StatusCode};

use super::{Browser, PASSWORD, TestPanel};
use crate::store::EventFilter;
use iks_domain::audit::Actor;

#[tokio::test]
async fn an_unauthenticated_visit_leads_to_the_sign_in_page_and_back() {
    let p = TestPanel::new().await;
    let mut b = Browser::default();
    let home = p.get(&mut b, "/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/login");
    let deep = p.get(&mut b, "/account?tab=totp").await;
    assert_eq!(deep.location(), "/login?next=/account%3Ftab%3Dtotp");
    let form = p.get(&mut b, "/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("<html lang=\"ru\""), "Russian by default");
    assert!(form.body.contains("Вход"));
    let pre = form.input("csrf").unwrap();
    let page = p
        .send(
            &mut b,
            Method::POST,
            "/login",
            Some(&[("csrf", &pre), ("login", "romashka"), ("password", PASSWORD), ("next", "/account?tab=totp")]),
        )
        .await;
    assert_eq!(page.location(), "/account?tab=totp");
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("iks_session="));
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http on loopback: {cookie}");
    // Each role lands where its work is.
    for (login, landing) in
        [("romashka", "/access"), ("petrov", "/queue"), ("sidorova", "/sessions"), ("root", "/admin/orgs")]
    {
        let mut b = p.login(login).await;
        assert_eq!(p.get(&mut b, "/").await.location(), landing, "{login}");
    }
}

#[tokio::test]
async fn wrong_passwords_and_unknown_logins_read_the_same_and_are_audited() {
    let p = TestPanel::new().await;
    let mut b = Browser::default();
    let wrong = p.try_login(&mut b, "romashka", "not the password").await;
    let unknown = p.try_login(&mut b, "nobody", "not the password").await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Неверный логин или пароль."));
    }
    assert_eq!(wrong.input("login").as_deref(), Some("romashka"), "the login typed is kept");
    let events = p.app.store.audit_events(&EventFilter::default()).await.unwrap();
    let refused: Vec<_> = events.iter().filter(|e| e.action == "web.login_refused").collect();
    assert_eq!(refused.len(), 2);
    assert!(refused[0].details.contains("wrong password") && refused[1].details.contains("no such login"));
    assert_eq!(refused[0].subjects.org, Some(p.a.id), "the customer's organisation sees attempts on its people");
}

#[tokio::test]
async fn five_failures_lock_the_account_even_for_the_right_password() {
    let p = TestPanel::new().await;
    let mut b = Browser::default();
    for _ in 0..5 {
        assert_eq!(p.try_login(&mut b, "petrov", "guess guess").await.status, StatusCode::UNAUTHORIZED);
    }
    let locked = p.try_login(&mut b, "petrov", PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.body.contains("Слишком много неудачных попыток. Повторите через 15 мин."), "{}", locked.body);
    // Another account from another address is not affected.
    let mut other = Browser { address: Some("127.0.0.2:40000".parse().unwrap()), ..Default::default() };
    assert_eq!(p.try_login(&mut other, "sidorova", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_address_guessing_across_accounts_is_locked() {
    let p = TestPanel::new().await;
    let mut b = Browser { address: Some("127.0.0.7:40000".parse().unwrap()), ..Default::default() };
    for i in 0..20 {
        p.try_login(&mut b, &format!("user{i}"), "guess guess").await;
    }
    assert_eq!(p.try_login(&mut b, "sidorova", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    let p = TestPanel::new().await;
    let mut b = p.login("romashka").await;
    let missing = p.send(&mut b, Method::POST, "/logout", Some(&[])).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = p.send(&mut b, Method::POST, "/logout", Some(&[("csrf", "0123456789abcdef")])).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(p.get(&mut b, "/account").await.status, StatusCode::OK, "still signed in");
    // Another person's token does not work either.
    let other = p.login("petrov").await;
    let foreign = p.send(&mut b, Method::POST, "/logout", Some(&[("csrf", other.csrf.as_deref().unwrap())])).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    // The sign-in form needs its double-submit token too.
    let mut fresh = Browser::default();
    let no_pre = p
        .send(&mut fresh, Method::POST, "/login", Some(&[("csrf", "x"), ("login", "petrov"), ("password", PASSWORD)]))
        .await;
    assert_eq!(no_pre.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signing_out_ends_the_session_for_good() {
    let p = TestPanel::new().await;
    let mut b = p.login("sidorova").await;
    let stolen = b.clone();
    let out = p.post(&mut b, "/logout", &[]).await;
    assert_eq!(out.location(), "/login");
    let mut thief = stolen;
    assert_eq!(p.get(&mut thief, "/account").await.location(), "/login?next=/account", "the old cookie is dead");
    let actions: Vec<String> =
        p.app.store.audit_events(&EventFilter::default()).await.unwrap().into_iter().map(|e| e.action).collect();
    assert!(actions.ends_with(&["web.login".into(), "web.logout".into()]), "{actions:?}");
}

#[tokio::test]
async fn idle_and_old_sessions_end() {
    let mut config = crate::config::Config::default();
    config.http.idle_timeout = "1s".into();
    let p = TestPanel::with_config(config).await;
    let mut b = p.login("petrov").await;
    assert_eq!(p.get(&mut b, "/account").await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(p.get(&mut b, "/account").await.location(), "/login?next=/account");
    let events = p.app.store.audit_events(&EventFilter::default()).await.unwrap();
    assert!(events.last().unwrap().details.contains("idle"));
}

#[tokio::test]
async fn totp_is_asked_after_the_password_and_each_code_works_once() {
    let p = TestPanel::new().await;
    let mut b = p.login("romashka").await;
    let begin = p.post(&mut b, "/account/totp", &[("step", "begin")]).await;
    let secret = begin.input("secret").expect("a new secret is shown");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let wrong = p.post(&mut b, "/account/totp", &[("step", "enable"), ("secret", &secret), ("code", "000000")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let code = crate::web::totp::code_at(&secret, now);
    let on = p.post(&mut b, "/account/totp", &[("step", "enable"), ("secret", &secret), ("code", &code)]).await;
    assert_eq!(on.location(), "/account");
    // This browser goes on; a new sign-in needs the code.
    let mut b2 = Browser::default();
    let after_password = p.try_login(&mut b2, "romashka", PASSWORD).await;
    assert!(after_password.location().starts_with("/login/totp"), "{}", after_password.location());
    assert_eq!(p.get(&mut b2, "/account").await.location(), "/login?next=/account", "no pages before the code");
    let form = p.get(&mut b2, "/login/totp").await;
    let pre = form.input("csrf").unwrap();
    let reused = p.send(&mut b2, Method::POST, "/login/totp", Some(&[("csrf", &pre), ("code", &code)])).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "the code used to turn TOTP on is spent");
    let next = crate::web::totp::code_at(&secret, now + 30);
    let pre = reused.input("csrf").unwrap();
    let ok = p.send(&mut b2, Method::POST, "/login/totp", Some(&[("csrf", &pre), ("code", &next)])).await;
    assert_eq!(ok.location(), "/access");
    assert_eq!(p.get(&mut b2, "/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    let db = crate::store::tests::TestDb::sqlite().await;
    let path = crate::web::auth::setup_link(&db.store).await.unwrap().expect("an empty store gets a link");
    let p = TestPanel::new().await;
    assert!(crate::web::auth::setup_link(&p.app.store).await.unwrap().is_none(), "a store with people gets none");
    // Use the first store's link against a panel on that store.
    let panel = TestPanel { router: crate::http::router(node_on(db.store.clone(), &p).await), ..p };
    let mut b = Browser::default();
    let form = panel.get(&mut b, &path).await;
    assert_eq!(form.status, StatusCode::OK);
    let pre = form.input("csrf").unwrap();
    let short = panel
        .send(
            &mut b,
            Method::POST,
            &path,
            Some(&[("csrf", &pre), ("login", "admin"), ("name", "Админ"), ("password", "short"), ("repeat", "short")]),
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert_eq!(short.input("login").as_deref(), Some("admin"), "what was typed is kept");
    let pre = short.input("csrf").unwrap();
    let fields =
        [("csrf", pre.as_str()), ("login", "admin"), ("name", "Админ"), ("password", PASSWORD), ("repeat", PASSWORD)];
    let made = panel.send(&mut b, Method::POST, &path, Some(&fields)).await;
    assert_eq!(made.location(), "/admin/orgs");
    assert_eq!(panel.get(&mut b, &path).await.status, StatusCode::NOT_FOUND, "the link works once");
    assert!(db.store.credentials("admin").await.unwrap().unwrap().password_hash.unwrap().starts_with("$argon2id$"));
}

/// A node like the panel's, on `store`.
async fn node_on(store: crate::store::Store, p: &TestPanel) -> Arc<crate::state::Gateway> {
    let parts = crate::node::NodeParts {
        store,
        config: p.app.config.clone(),
        data_dir: p.app.data_dir.clone(),
        user_ca: p.app.user_ca.clone(),
        name: p.app.node.clone(),
    };
    crate::node::Node::open(parts).await.unwrap().app().clone()
}

#[tokio::test]
async fn a_password_link_sets_the_password_and_signs_in() {
    let p = TestPanel::new().await;
    let person = p.app.store.person_by_login("petrov").await.unwrap();
    p.app.store.set_password(&Actor::cli(), person.id, None).await.unwrap();
    let path = crate::web::auth::password_link_for(&p.app.store, person.id).await.unwrap();
    let mut b = Browser::default();
    let form = p.get(&mut b, &path).await;
    assert!(form.body.contains("petrov"));
    let pre = form.input("csrf").unwrap();
    let done = p
        .send(
            &mut b,
            Method::POST,
            &path,
            Some(&[("csrf", &pre), ("password", "a new password 1"), ("repeat", "a new password 1")]),
        )
        .await;
    assert_eq!(done.location(), "/queue");
    assert_eq!(p.get(&mut b, &path).await.status, StatusCode::NOT_FOUND);
    let mut again = Browser::default();
    assert_eq!(p.try_login(&mut again, "petrov", "a new password 1").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_carry_security_headers_and_switch_language() {
    let p = TestPanel::new().await;
    let mut b = p.login("petrov").await;
    let page = p.get(&mut b, "/account").await;
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers.get("x-frame-options").unwrap(), "DENY");
    assert!(page.body.contains("Учётная запись"));
    let switch = p.get(&mut b, "/lang/en?back=/account").await;
    assert_eq!(switch.location(), "/account");
    let en = p.get(&mut b, "/account").await;
    assert!(en.body.contains("<html lang=\"en\"") && en.body.contains("Second factor (TOTP)"));
    assert_eq!(p.get(&mut b, "/lang/en?back=//evil.example").await.location(), "/", "no open redirect");
    let css = p.get(&mut b, "/static/app.css").await;
    assert_eq!(css.headers.get("content-type").unwrap(), "text/css; charset=utf-8");
    assert_eq!(p.get(&mut b, "/static/nope.js").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_api_still_answers_beside_the_panel() {
    let p = TestPanel::new().await;
    let mut b = Browser::default();
    let spec = p.get(&mut b, "/api/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert!(spec.body.starts_with('{'));
    let missing = p.get(&mut b, "/api/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("no such API endpoint"), "JSON error, not the panel's page");
    assert!(p.get(&mut b, "/nope").await.body.contains("Не найдено."));
    // Routes with path parameters get exactly theirs (no outer route's parameters leak in).
    let (_, token) = crate::api::auth::issue(&p.app.store, &Actor::cli(), "helpdesk", None).await.unwrap();
    let req = axum::http::Request::get(format!("/api/tickets/{}", p.a.ticket))
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(p.router.clone(), req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Posts the sign-in form from a fresh browser at `address`.
async fn login_from(p: &TestPanel, address: &str, login: &str, password: &str) -> super::Page {
    let mut b = Browser { address: Some(address.parse().unwrap()), ..Default::default() };
    p.try_login(&mut b, login, password).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_are_counted_before_any_is_checked() {
    let p = std::sync::Arc::new(TestPanel::new().await);
    // 200 tries at one account, each from its own address (so only the account's limit holds).
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let p = p.clone();
        let address = format!("127.0.{}.{}:40000", i / 200 + 1, i % 200 + 1);
        tries.spawn(async move { login_from(&p, &address, "petrov", "guess guess").await.status });
    }
    let statuses = tries.join_all().await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    let audited = p
        .app
        .store
        .audit_events(&EventFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "web.login_refused")
        .count();
    println!("200 parallel wrong passwords: checked {checked} (limit 5), throttled {throttled}, audited {audited}");
    assert_eq!((checked, throttled), (5, 195), "{statuses:?}");
    assert_eq!(audited, 5);
}

#[tokio::test]
async fn logins_of_the_wrong_shape_are_neither_stored_nor_hashed() {
    let p = TestPanel::new().await;
    let long = "я".repeat(2000);
    for (i, login) in [long.as_str(), "petrov\u{1}", "a b", ""].into_iter().enumerate() {
        let page = login_from(&p, &format!("127.0.0.{}:40000", i + 1), login, PASSWORD).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "a login of {} bytes", login.len());
        assert!(page.body.contains("Неверный логин или пароль."));
        assert_eq!(page.input("login").as_deref(), Some(""), "not echoed back");
    }
    // A password no one can have is wrong without being hashed; the login is audited.
    let huge = "x".repeat(crate::web::auth::MAX_PASSWORD + 1);
    assert_eq!(login_from(&p, "127.0.1.1:40000", "petrov", &huge).await.status, StatusCode::UNAUTHORIZED);
    let events = p.app.store.audit_events(&EventFilter::default()).await.unwrap();
    let refused: Vec<_> = events.iter().filter(|e| e.action == "web.login_refused").collect();
    assert_eq!(refused.len(), 1, "only the well-formed login is audited: {refused:?}");
    let biggest = events.iter().map(|e| e.details.len()).max().unwrap_or(0);
    println!("largest audit event after malformed sign-ins: {biggest} bytes");
    assert!(biggest < 1024, "{biggest}");
    // A form larger than any sign-in is refused before it is read.
    let mut b = Browser::default();
    let form = p.get(&mut b, "/login").await;
    let pre = form.input("csrf").unwrap();
    let big = "a".repeat(1_900_000);
    let page =
        p.send(&mut b, Method::POST, "/login", Some(&[("csrf", &pre), ("login", &big), ("password", PASSWORD)])).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Logins are case-insensitive like their throttle.
    assert_eq!(login_from(&p, "127.0.2.1:40000", " Petrov ", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

/// Turns TOTP on for `login` (signed in as `b`); returns the secret and the time used.
async fn enable_totp(p: &TestPanel, b: &mut Browser) -> String {
    let begin = p.post(b, "/account/totp", &[("step", "begin")]).await;
    let secret = begin.input("secret").expect("a new secret is shown");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let code = crate::web::totp::code_at(&secret, now);
    let on = p.post(b, "/account/totp", &[("step", "enable"), ("secret", &secret), ("code", &code)]).await;
    assert_eq!(on.location(), "/account");
    secret
}

/// Sends `code` on the second-factor form of a browser that gave its password.
async fn give_code(p: &TestPanel, b: &mut Browser, code: &str) -> super::Page {
    let form = p.get(b, "/login/totp").await;
    let pre = form.input("csrf").expect("the code form");
    p.send(b, Method::POST, "/login/totp", Some(&[("csrf", &pre), ("code", code)])).await
}

#[tokio::test]
async fn wrong_codes_lock_the_second_factor_whatever_the_password() {
    let p = TestPanel::new().await;
    let mut owner = p.login("romashka").await;
    let secret = enable_totp(&p, &mut owner).await;
    // Someone with the password signs in again and again, one wrong code each time.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let mut b =
            Browser { address: Some(format!("127.0.3.{}:40000", i + 1).parse().unwrap()), ..Default::default() };
        let page = p.try_login(&mut b, "romashka", PASSWORD).await;
        assert!(page.location().starts_with("/login/totp"), "{}", page.location());
        statuses.push(give_code(&p, &mut b, "000000").await.status);
    }
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    println!("8 wrong codes between correct passwords: checked {checked} (limit 5)");
    assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 3]);
    // Even the right code waits now.
    let mut b = Browser { address: Some("127.0.4.1:40000".parse().unwrap()), ..Default::default() };
    p.try_login(&mut b, "romashka", PASSWORD).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let right = give_code(&p, &mut b, &crate::web::totp::code_at(&secret, now + 30)).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_password_link_still_asks_for_the_code() {
    let p = TestPanel::new().await;
    let mut owner = p.login("petrov").await;
    enable_totp(&p, &mut owner).await;
    let person = p.app.store.person_by_login("petrov").await.unwrap();
    let path = crate::web::auth::password_link_for(&p.app.store, person.id).await.unwrap();
    let mut b = Browser::default();
    let pre = p.get(&mut b, &path).await.input("csrf").unwrap();
    let fields = [("csrf", pre.as_str()), ("password", "a new password 1"), ("repeat", "a new password 1")];
    let done = p.send(&mut b, Method::POST, &path, Some(&fields)).await;
    assert!(done.location().starts_with("/login/totp"), "{}", done.location());
    assert_eq!(p.get(&mut b, "/queue").await.location(), "/login?next=/queue", "no pages before the code");
}

#[tokio::test]
async fn redirects_taken_from_a_request_stay_on_this_origin() {
    let p = TestPanel::new().await;
    let mut b = Browser::default();
    // Browsers drop tabs and newlines and read `\` as `/`: most of these leave the origin;
    // control characters used to answer 500, raw non-ASCII is never made by the panel.
    let refused = [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0D%0A/evil.example",
        "/%5Cevil.example",
        "/%5C%5Cevil.example",
        "//evil.example",
        "https://evil.example",
        "/%01x",
        "/%7F",
        "/%D0%B0",
    ];
    for back in refused {
        let page = p.get(&mut b, &format!("/lang/en?back={back}")).await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/"), "back={back}");
    }
    assert_eq!(p.get(&mut b, "/lang/ru?back=/account%3Ftab%3Dtotp").await.location(), "/account?tab=totp");
    for next in refused {
        let mut b = Browser::default();
        let pre = p.get(&mut b, "/login").await.input("csrf").unwrap();
        let next: Vec<(String, String)> = serde_urlencoded::from_str(&format!("next={next}")).unwrap();
        let next = next[0].1.clone();
        let fields = [("csrf", pre.as_str()), ("login", "petrov"), ("password", PASSWORD), ("next", next.as_str())];
        let page = p.send(&mut b, Method::POST, "/login", Some(&fields)).await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/queue"), "next={next:?}");
        // Signed in, the sign-in page sends on with the same check.
        let again = p.get(&mut b, &format!("/login?next={}", crate::web::url::encode(&next))).await;
        assert_eq!(again.location(), "/queue", "next={next:?}");
    }
}
