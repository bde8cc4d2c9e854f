//! The customers' and operators' pages: access requests and grants, tickets and the queue,
//! boxes and enrolment tokens — each route for each role, other organisations' records
//! as 404, forms without the CSRF token refused, and the effects a person would notice.

use axum::http::{Method, StatusCode};
use chrono::Duration;

use super::{IVANOV_IP, Org, ROMASHKA, TestPanel};
use crate::grants;
use crate::store::EventFilter;
use iks_domain::model::{Grant, GrantState, NewSession, TicketState};

/// A pending request by `petrov` for an hour on the organisation's box.
async fn pending(p: &TestPanel, org: &Org) -> Grant {
    let petrov = p.app.store.person_by_login("petrov").await.unwrap();
    let b = p.app.store.get_box(org.box_id).await.unwrap();
    grants::request(&p.app.store, &p.app.config, &petrov, org.ticket, &b.name, Duration::hours(1), "VPN logs")
        .await
        .unwrap()
}

async fn approved(p: &TestPanel, org: &Org) -> Grant {
    let g = pending(p, org).await;
    let root = p.app.store.person_by_login("root").await.unwrap();
    grants::approve(&p.app.store, &p.app.config, &root, g.id, &Default::default()).await.unwrap()
}

/// The last audit event with `action`, as (actor name, details).
async fn last_event(p: &TestPanel, action: &str) -> Option<(String, String)> {
    let events = p.app.store.audit_events(&EventFilter::default()).await.unwrap();
    events.into_iter().rev().find(|e| e.action == action).map(|e| (e.actor.name, e.details))
}

/// Every role gets its own answer on each page: allowed pages render, the rest are 403.
#[tokio::test]
async fn each_role_reaches_its_pages_and_no_others() {
    let p = TestPanel::new().await;
    let ta = p.a.ticket.to_string();
    let table: &[(&str, &[(&str, StatusCode)])] = &[
        (
            "romashka",
            &[
                ("/access", StatusCode::OK),
                ("/tickets", StatusCode::OK),
                ("/boxes", StatusCode::OK),
                ("/queue", StatusCode::FORBIDDEN),
                ("/tickets/new", StatusCode::FORBIDDEN),
            ],
        ),
        (
            "petrov",
            &[
                ("/access", StatusCode::OK),
                ("/tickets", StatusCode::OK),
                ("/queue", StatusCode::OK),
                ("/tickets/new", StatusCode::OK),
                ("/boxes", StatusCode::FORBIDDEN),
            ],
        ),
        (
            "sidorova",
            &[
                ("/access", StatusCode::FORBIDDEN),
                ("/tickets", StatusCode::OK),
                ("/queue", StatusCode::FORBIDDEN),
                ("/tickets/new", StatusCode::FORBIDDEN),
                ("/boxes", StatusCode::FORBIDDEN),
            ],
        ),
        (
            "root",
            &[
                ("/access", StatusCode::OK),
                ("/tickets", StatusCode::OK),
                ("/queue", StatusCode::OK),
                ("/tickets/new", StatusCode::OK),
                ("/boxes", StatusCode::OK),
            ],
        ),
    ];
    for (login, pages) in table {
        let mut b = p.login(login).await;
        for (path, want) in *pages {
            let page = p.get(&mut b, path).await;
            assert_eq!(page.status, *want, "{login} {path}: {}", page.body);
        }
        let t = p.get(&mut b, &format!("/tickets/{ta}")).await;
        assert_eq!(t.status, StatusCode::OK, "{login} sees ticket {ta}");
    }
    let mut b = p.login("romashka").await;
    assert_eq!(p.get(&mut b, &format!("/boxes/{}", p.a.box_id)).await.status, StatusCode::OK);
    let mut op = p.login("petrov").await;
    assert_eq!(p.get(&mut op, &format!("/boxes/{}", p.a.box_id)).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_customer_sees_only_their_organisation() {
    let p = TestPanel::new().await;
    let ga = pending(&p, &p.a).await;
    let gb = pending(&p, &p.b).await;
    let mut b = p.login("romashka").await;
    let access = p.get(&mut b, "/access").await;
    assert!(access.body.contains(&format!("/access/{}/approve", ga.id)), "{}", access.body);
    assert!(!access.body.contains(&gb.id.to_string()) && !access.body.contains("ivanov-gw"));
    let tickets = p.get(&mut b, "/tickets").await;
    assert!(tickets.body.contains(&p.a.ticket.to_string()));
    assert!(!tickets.body.contains(&format!("/tickets/{}\"", p.b.ticket)), "B's ticket not listed");
    // Asking for the other organisation by ID, even in the filter, shows nothing of it.
    let filtered = p.get(&mut b, &format!("/tickets?org={}", p.b.id)).await;
    assert!(!filtered.body.contains(&format!("/tickets/{}\"", p.b.ticket)));
    p.get(&mut b, "/lang/en?back=/access").await;
    let english = p.get(&mut b, "/access").await;
    assert!(english.body.contains("Waiting for a decision") && english.body.contains("Approve"), "English on request");
    let boxes = p.get(&mut b, "/boxes").await;
    assert!(boxes.body.contains("main-gw") && !boxes.body.contains("ivanov-gw"));
    for path in [format!("/tickets/{}", p.b.ticket), format!("/boxes/{}", p.b.box_id), "/tickets/T-99999".into()] {
        let page = p.get(&mut b, &path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains("ИП Иванов") && !page.body.contains("ivanov-gw"), "{path}");
    }
}

#[tokio::test]
async fn a_customer_approves_with_a_shorter_window_and_the_audit_names_them() {
    let p = TestPanel::new().await;
    let g = pending(&p, &p.a).await;
    let mut b = p.login("romashka").await;
    let page = p.get(&mut b, "/access").await;
    assert!(page.body.contains("VPN logs") && page.body.contains("petrov"), "reason and engineer shown");
    let before = iks_domain::time::now();
    let res = p.post(&mut b, &format!("/access/{}/approve", g.id), &[("until", "30m")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/access");
    let after = p.get(&mut b, "/access").await;
    assert!(after.body.contains(&format!("Доступ {} разрешён.", g.id)), "the message is shown once");
    let stored = p.app.store.grant(g.id).await.unwrap();
    assert_eq!(stored.state, GrantState::Approved);
    let end = stored.ends_at.unwrap();
    assert!(end <= iks_domain::time::now() + Duration::minutes(30) && end >= before + Duration::minutes(29), "{end}");
    assert_eq!(stored.operator_id, Some(g.requested_by), "without a choice: only the requesting engineer");
    let (actor, _) = last_event(&p, "access.approve").await.expect("the approval is audited");
    assert_eq!(actor, "romashka");
    // A longer window than asked for is refused with the reason, and nothing changes.
    let g2 = pending(&p, &p.a).await;
    let longer = p.post(&mut b, &format!("/access/{}/approve", g2.id), &[("until", "3h")]).await;
    assert_eq!(longer.status, StatusCode::BAD_REQUEST);
    assert!(longer.body.contains("can only be shortened"), "{}", longer.body);
    let typo = p.post(&mut b, &format!("/access/{}/approve", g2.id), &[("until", "soon")]).await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    assert_eq!(p.app.store.grant(g2.id).await.unwrap().state, GrantState::Pending);
    // Widening to any engineer is an explicit choice.
    let g3 = pending(&p, &p.a).await;
    let wide = p.post(&mut b, &format!("/access/{}/approve", g3.id), &[("any_engineer", "1")]).await;
    assert_eq!(wide.status, StatusCode::SEE_OTHER, "{}", wide.body);
    assert_eq!(p.app.store.grant(g3.id).await.unwrap().operator_id, None, "any engineer");
    // An admin decides for any organisation, as the CLI lets them.
    let mut root = p.login("root").await;
    assert_eq!(p.post(&mut root, &format!("/access/{}/approve", g2.id), &[]).await.location(), "/access");
    assert_eq!(p.app.store.grant(g2.id).await.unwrap().state, GrantState::Approved);
    assert_eq!(last_event(&p, "access.approve").await.unwrap().0, "root");
}

#[tokio::test]
async fn another_organisations_grant_is_not_found_and_unchanged() {
    let p = TestPanel::new().await;
    let gb = pending(&p, &p.b).await;
    let active_b = approved(&p, &p.b).await;
    let mut a = p.login("romashka").await;
    for (path, g) in [
        (format!("/access/{}/approve", gb.id), &gb),
        (format!("/access/{}/reject", gb.id), &gb),
        (format!("/access/{}/revoke", active_b.id), &active_b),
    ] {
        let res = p.post(&mut a, &path, &[("reason", "no")]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!res.body.contains("ivanov"), "{path}");
        assert_eq!(p.app.store.grant(g.id).await.unwrap().state, g.state, "{path}: B's grant unchanged");
    }
    assert_eq!(p.post(&mut a, "/access/G-99999/approve", &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn operators_and_auditors_do_not_decide() {
    let p = TestPanel::new().await;
    let g = pending(&p, &p.a).await;
    for login in ["petrov", "sidorova"] {
        let mut b = p.login(login).await;
        for action in ["approve", "reject"] {
            let res = p.post(&mut b, &format!("/access/{}/{action}", g.id), &[("reason", "x")]).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{login} {action}");
        }
    }
    assert_eq!(p.app.store.grant(g.id).await.unwrap().state, GrantState::Pending);
}

#[tokio::test]
async fn rejecting_needs_a_reason_which_the_engineer_sees() {
    let p = TestPanel::new().await;
    let g = pending(&p, &p.a).await;
    let mut b = p.login("romashka").await;
    let blank = p.post(&mut b, &format!("/access/{}/reject", g.id), &[("reason", "  ")]).await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST);
    assert!(blank.body.contains("укажите причину отказа"), "{}", blank.body);
    assert_eq!(p.app.store.grant(g.id).await.unwrap().state, GrantState::Pending);
    let res = p.post(&mut b, &format!("/access/{}/reject", g.id), &[("reason", "не сегодня")]).await;
    assert_eq!(res.location(), "/access");
    assert_eq!(p.app.store.grant(g.id).await.unwrap().state, GrantState::Rejected);
    let mut op = p.login("petrov").await;
    let mine = p.get(&mut op, "/access").await;
    assert!(mine.body.contains("не сегодня"), "the operator sees why");
}

#[tokio::test]
async fn revoking_a_grant_with_a_live_session_tells_the_watchdog() {
    let p = TestPanel::new().await;
    let g = approved(&p, &p.a).await;
    let new = NewSession {
        grant_id: g.id,
        ticket_id: g.ticket_id,
        box_id: g.box_id,
        operator_id: g.requested_by,
        client_addr: Some("127.0.0.1".into()),
        node: "test".into(),
    };
    let s = p.app.store.start_session(&iks_domain::audit::Actor::cli(), &new, p.a.id).await.unwrap();
    let mut b = p.login("romashka").await;
    let page = p.get(&mut b, "/access").await;
    assert!(page.body.contains(&format!("/access/{}/revoke", g.id)));
    let res = p.post(&mut b, &format!("/access/{}/revoke", g.id), &[]).await;
    assert_eq!(res.location(), "/access");
    assert_eq!(p.app.store.grant(g.id).await.unwrap().state, GrantState::Revoked);
    let checks = p.app.store.live_checks("test").await.unwrap();
    let check = checks.iter().find(|c| c.session == s.id).expect("the session is still the watchdog's to end");
    assert_eq!(check.grant_state, GrantState::Revoked);
    assert_eq!(check.revoked_by.as_deref(), Some("romashka"));
    assert_eq!(last_event(&p, "access.revoke").await.unwrap().0, "romashka");
}

#[tokio::test]
async fn an_operator_requests_access_and_copies_the_command() {
    let mut config = crate::config::Config::default();
    config.ssh.public_address = "gw.example.ru:2222".into();
    let p = TestPanel::with_config(config).await;
    let mut op = p.login("petrov").await;
    let ticket = p.a.ticket.to_string();
    // Bad input comes back with what was typed and a specific error.
    let bad = p
        .post(&mut op, "/access", &[("ticket", &ticket), ("box", "main-gw"), ("duration", "9h"), ("reason", "logs")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("at most 8h"), "{}", bad.body);
    assert!(bad.body.contains("value=\"9h\""), "the typed duration is kept");
    let no_box =
        p.post(&mut op, "/access", &[("ticket", &ticket), ("box", "nope"), ("duration", "1h"), ("reason", "x")]).await;
    assert_eq!(no_box.status, StatusCode::BAD_REQUEST);
    let res = p
        .post(&mut op, "/access", &[("ticket", &ticket), ("box", "main-gw"), ("duration", "2h"), ("reason", "logs")])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let grants = p.app.store.list_grants(&Default::default()).await.unwrap();
    let g = grants.last().unwrap();
    assert_eq!((g.state, g.requested_secs), (GrantState::Pending, 7200));
    assert_eq!(last_event(&p, "access.request").await.unwrap().0, "petrov");
    let mine = p.get(&mut op, "/access").await;
    assert!(!mine.body.contains("ssh -p"), "no command before approval");
    let root = p.app.store.person_by_login("root").await.unwrap();
    grants::approve(&p.app.store, &p.app.config, &root, g.id, &Default::default()).await.unwrap();
    let mine = p.get(&mut op, "/access").await;
    let command = format!("ssh -p 2222 {}+main-gw@gw.example.ru", p.a.ticket);
    assert!(mine.body.contains(&command), "{}", mine.body);
    // A customer cannot request access.
    let mut c = p.login("romashka").await;
    let res = p
        .post(&mut c, "/access", &[("ticket", &ticket), ("box", "main-gw"), ("duration", "1h"), ("reason", "x")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn forms_without_the_csrf_token_change_nothing() {
    let p = TestPanel::new().await;
    let g = pending(&p, &p.a).await;
    let mut b = p.login("romashka").await;
    let mut op = p.login("petrov").await;
    let ticket = format!("/tickets/{}", p.a.ticket);
    let posts = [
        (&mut b, format!("/access/{}/approve", g.id), vec![("until", "")]),
        (&mut op, format!("{ticket}/comment"), vec![("text", "hello")]),
    ];
    for (browser, path, fields) in posts {
        for csrf in [None, Some("0123456789abcdef")] {
            let mut all = fields.clone();
            if let Some(c) = csrf {
                all.push(("csrf", c));
            }
            let res = p.send(browser, Method::POST, &path, Some(&all)).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{path} {csrf:?}");
        }
    }
    let mut root = p.login("root").await;
    for path in [
        format!("{ticket}/move"),
        format!("/boxes/{}/enroll-token", p.a.box_id),
        "/tickets".into(),
        "/access".into(),
        format!("/access/{}/reject", g.id),
        format!("/access/{}/revoke", g.id),
    ] {
        let res = p.send(&mut root, Method::POST, &path, Some(&[("action", "escalate"), ("reason", "x")])).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(p.app.store.grant(g.id).await.unwrap().state, GrantState::Pending);
    assert!(p.app.store.comments(p.a.ticket).await.unwrap().is_empty());
    assert_eq!(p.app.store.ticket(p.a.ticket).await.unwrap().state, TicketState::Open);
    assert!(p.app.store.agent_tokens(p.a.box_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_queue_lists_work_by_priority_with_flags() {
    let p = TestPanel::new().await;
    // A ticket past its first-response deadline comes first, flagged.
    let late = iks_domain::model::NewTicket {
        response_due_at: Some(iks_domain::time::now() - Duration::hours(1)),
        ..crate::store::tests::new_ticket(p.b.id)
    };
    let late = p.app.store.create_ticket(&iks_domain::audit::Actor::cli(), &late).await.unwrap();
    let mut op = p.login("petrov").await;
    let q = p.get(&mut op, "/queue").await;
    assert_eq!(q.status, StatusCode::OK);
    let first = q.body.find(&format!(">{}<", late.id)).unwrap();
    assert!(first < q.body.find(&format!(">{}<", p.a.ticket)).unwrap(), "the deadline first");
    assert!(q.body.contains("<span class=\"badge bad\">просрочено</span>"), "{}", q.body);
    let mut c = p.login("ivanov-ip").await;
    assert!(p.get(&mut c, "/tickets").await.body.contains("просрочено"), "the customer sees the flag too");
    let (a, b) =
        (q.body.find(&format!(">{}<", p.a.ticket)).unwrap(), q.body.find(&format!(">{}<", p.b.ticket)).unwrap());
    assert!(a < b, "equal priority: the older ticket first");
    assert!(q.body.contains("ООО Ромашка") && q.body.contains("ИП Иванов"));
    let filtered = p.get(&mut op, &format!("/tickets?state=open&org={}", p.b.id)).await;
    assert!(
        filtered.body.contains(&format!(">{}<", p.b.ticket)) && !filtered.body.contains(&format!(">{}<", p.a.ticket))
    );
    assert_eq!(p.get(&mut op, "/tickets?state=nonsense").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn operators_open_tickets_with_the_api_s_checks() {
    let p = TestPanel::new().await;
    let mut op = p.login("petrov").await;
    let form = |inn: &'static str, phone: &'static str, version: &'static str| {
        vec![
            ("inn", inn),
            ("contact_name", "Иван Иванов"),
            ("contact_phone", phone),
            ("contact_email", ""),
            ("product", "iks-standard"),
            ("version", version),
            ("topic", "configuration"),
            ("description", "VPN"),
        ]
    };
    let bad_inn = p.post(&mut op, "/tickets", &form("123", "+7 900", "7")).await;
    assert_eq!(bad_inn.status, StatusCode::BAD_REQUEST);
    assert!(bad_inn.body.contains("inn: ") && bad_inn.body.contains("Иван Иванов"), "error and typed values");
    let unknown = p.post(&mut op, "/tickets", &form("7728168971", "+7 900", "7")).await;
    assert!(unknown.body.contains("no organisation with INN 7728168971"), "{}", unknown.body);
    let bad_version = p.post(&mut op, "/tickets", &form(ROMASHKA, "+7 900", "seven")).await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    assert!(bad_version.body.contains("version"), "{}", bad_version.body);
    let ok = p.post(&mut op, "/tickets", &form(ROMASHKA, "+7 900", "7.2")).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let page = p.get(&mut op, ok.location()).await;
    assert!(page.body.contains("открыта") && page.body.contains("ООО Ромашка"), "{}", page.body);
    assert_eq!(last_event(&p, "ticket.open").await.unwrap().0, "petrov");
    // A name and the organisation's INN suffice: no phone or e-mail is needed.
    let no_phone = p.post(&mut op, "/tickets", &form(IVANOV_IP, "", "7.2")).await;
    let page = p.get(&mut op, no_phone.location()).await;
    assert!(page.body.contains("открыта") && !page.body.contains("сохранена с отказом"), "{}", page.body);
    // No name: stored refused, with the reason.
    let mut no_name = form(IVANOV_IP, "", "7.2");
    no_name[1] = ("contact_name", " ");
    let refused = p.post(&mut op, "/tickets", &no_name).await;
    let page = p.get(&mut op, refused.location()).await;
    assert!(page.body.contains("сохранена с отказом") && page.body.contains("не указаны контактные данные"));
    let mut c = p.login("romashka").await;
    assert_eq!(p.post(&mut c, "/tickets", &form(ROMASHKA, "+7 900", "7.2")).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tickets_move_and_take_comments_by_role() {
    let p = TestPanel::new().await;
    let path = format!("/tickets/{}", p.a.ticket);
    let mut op = p.login("petrov").await;
    let page = p.get(&mut op, &path).await;
    assert!(page.body.contains("value=\"escalate\"") && page.body.contains("rudeness"), "support's actions");
    let res = p.post(&mut op, &format!("{path}/move"), &[("action", "progress"), ("note", "looking")]).await;
    assert_eq!(res.location(), path);
    assert_eq!(p.app.store.ticket(p.a.ticket).await.unwrap().state, TicketState::InProgress);
    let again = p.post(&mut op, &format!("{path}/move"), &[("action", "progress")]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "in progress already");
    assert!(again.body.contains("cannot be taken in progress"), "{}", again.body);
    let no_reason = p.post(&mut op, &format!("{path}/move"), &[("action", "refuse"), ("reason", "")]).await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    let c = p.post(&mut op, &format!("{path}/comment"), &[("text", "Проверьте журнал VPN")]).await;
    assert_eq!(c.location(), path);
    let empty = p.post(&mut op, &format!("{path}/comment"), &[("text", "   ")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    // The customer comments and sees the history; support's moves are not theirs.
    let mut cust = p.login("romashka").await;
    let page = p.get(&mut cust, &path).await;
    assert!(
        page.body.contains("Проверьте журнал VPN") && page.body.contains("открыта → в работе, примечание: looking")
    );
    assert!(!page.body.contains("value=\"escalate\""));
    assert_eq!(p.post(&mut cust, &format!("{path}/comment"), &[("text", "Спасибо")]).await.location(), path);
    let comments = p.app.store.comments(p.a.ticket).await.unwrap();
    assert_eq!(comments.iter().map(|c| c.from_customer).collect::<Vec<_>>(), [false, true]);
    assert_eq!(
        p.post(&mut cust, &format!("{path}/move"), &[("action", "escalate")]).await.status,
        StatusCode::FORBIDDEN
    );
    // B's customer reaches none of it.
    let mut other = p.login("ivanov-ip").await;
    for (sub, fields) in [("comment", vec![("text", "hi")]), ("move", vec![("action", "close")])] {
        let res = p.post(&mut other, &format!("{path}/{sub}"), &fields).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{sub}");
    }
    let mut aud = p.login("sidorova").await;
    assert_eq!(p.post(&mut aud, &format!("{path}/comment"), &[("text", "hi")]).await.status, StatusCode::FORBIDDEN);
    // Refusing with a regulations' reason revokes the ticket's grants.
    let g = approved(&p, &p.a).await;
    let res = p.post(&mut op, &format!("{path}/move"), &[("action", "refuse"), ("reason", "rudeness")]).await;
    assert_eq!(res.location(), path);
    let t = p.app.store.ticket(p.a.ticket).await.unwrap();
    assert_eq!((t.state, t.refusal_reason.map(|r| r.as_str())), (TicketState::Refused, Some("rudeness")));
    assert_eq!(p.app.store.grant(g.id).await.unwrap().state, GrantState::Revoked);
    assert_eq!(last_event(&p, "ticket.refuse").await.unwrap().0, "petrov");
}

#[tokio::test]
async fn a_customer_creates_an_enrolment_token_shown_once() {
    let p = TestPanel::new().await;
    let path = format!("/boxes/{}", p.a.box_id);
    let mut c = p.login("romashka").await;
    let page = p.get(&mut c, &path).await;
    assert!(page.body.contains("iks-standard 7.2") && page.body.contains("не подключён"), "{}", page.body);
    let res = p.post(&mut c, &format!("{path}/enroll-token"), &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let at = res.body.find("iks-agent enroll --gateway 127.0.0.1:2222 --token iks-enroll-").expect(&res.body);
    let token: String = res.body[at..].split_whitespace().nth(5).unwrap().chars().take(75).collect();
    assert!(token.starts_with("iks-enroll-") && token.len() == 75, "{token}");
    assert!(res.body.contains("--expect-host-key SHA256:"));
    let again = p.get(&mut c, &path).await;
    assert!(!again.body.contains(&token), "shown once");
    let tokens = p.app.store.agent_tokens(p.a.box_id).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].created_by, "romashka");
    let mut other = p.login("ivanov-ip").await;
    assert_eq!(p.post(&mut other, &format!("{path}/enroll-token"), &[]).await.status, StatusCode::NOT_FOUND);
    let mut op = p.login("petrov").await;
    assert_eq!(p.post(&mut op, &format!("{path}/enroll-token"), &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(p.app.store.agent_tokens(p.a.box_id).await.unwrap().len(), 1);
    let mut root = p.login("root").await;
    assert_eq!(p.post(&mut root, &format!("{path}/enroll-token"), &[]).await.status, StatusCode::OK);
}
