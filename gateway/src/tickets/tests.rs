//! Stories of the ticket lifecycle on both backends: opening and refusing, moves and
//! comments, auto-close after the customer's silence, and what closing does to access.

use chrono::{Duration, NaiveDate};

use super::*;
use crate::config::Config;
use crate::grants::{self, GrantError};
use crate::store::tests::{TestDb, backdate_ticket, new_box, story};
use iks_domain::model::{
    Approval, EndReason, GrantState, NewAccessRequest, NewOrg, NewPerson, NewSession, Organisation, TicketState,
};
use iks_domain::review::{LiveCheck, Verdict, review};
use iks_domain::rules::{Inn, OrgFacts};

story!(opening_and_refusals);
story!(moves_comments_and_history);
story!(refused_tickets_get_no_grants);
story!(autoclose_after_more_than_ten_silent_days);
story!(closing_ends_live_sessions);

fn date(s: &str) -> NaiveDate {
    iks_domain::time::parse_date(s).unwrap()
}

/// An organisation whose support module is paid for years: category 1.
async fn paying_org(store: &Store) -> Organisation {
    let facts = OrgFacts { module_paid_until: Some(date("2099-12-31")), ..Default::default() };
    let new = NewOrg { inn: Inn::parse("7707083893").unwrap(), name: "ООО Ромашка".into(), facts };
    store.create_org(&Actor::cli(), &new).await.unwrap()
}

/// An organisation that bought IKS years ago and no support module since: category 3.
async fn lapsed_org(store: &Store) -> Organisation {
    let facts = OrgFacts { purchased_on: Some(date("2020-01-10")), ..Default::default() };
    let new = NewOrg { inn: Inn::parse("500100732259").unwrap(), name: "ИП Иванов".into(), facts };
    store.create_org(&Actor::cli(), &new).await.unwrap()
}

async fn person(store: &Store, login: &str, role: Role, org: Option<OrgId>) -> Person {
    let new = NewPerson { login: login.into(), display_name: login.into(), role, org_id: org, email: None };
    store.create_person(&Actor::cli(), &new).await.unwrap()
}

fn filing(org: OrgId) -> Filing {
    Filing {
        org,
        contact_name: "Пётр Петров".into(),
        contact_phone: Some("+7 495 000-00-00".into()),
        contact_email: None,
        product: "iks-standard".into(),
        version: "7.2".into(),
        description: "VPN tunnel does not come up".into(),
        topic: Some(Topic::Configuration),
    }
}

async fn actions(store: &Store, id: TicketId) -> Vec<String> {
    history(store, id).await.unwrap().into_iter().map(|h| h.action).collect()
}

async fn opening_and_refusals(db: &TestDb) {
    let store = &db.store;
    let config = Config::default();
    let cli = Actor::cli();
    let paying = paying_org(store).await;
    let lapsed = lapsed_org(store).await;

    let t = open(store, &config, &cli, filing(paying.id)).await.unwrap();
    assert_eq!((t.id, t.state, t.priority), (TicketId(1001), TicketState::Open, 1));
    assert_eq!(t.refusal_reason, None);
    assert!(t.response_due_at.is_some_and(|due| due > t.created_at), "10 working hours from opening");
    let t3 = open(store, &config, &cli, filing(lapsed.id)).await.unwrap();
    assert_eq!(t3.priority, 3);
    let due = t3.response_due_at.unwrap() - t3.created_at;
    assert!((due - Duration::hours(24)).num_seconds().abs() <= 1, "category 3: 24 calendar hours, got {due}");
    let lite = open(store, &config, &cli, Filing { product: "iks-lite".into(), ..filing(paying.id) }).await.unwrap();
    assert_eq!((lite.priority, lite.response_due_at), (4, None), "IKS Lite: category 4, no deadline");
    // The category follows the product, so an organisation whose boxes are all IKS Lite
    // cannot file under IKS Standard (it would be category 3 with a 24-hour deadline).
    let lite_box = iks_domain::model::NewBox { product: "iks-lite".into(), ..new_box(lapsed.id, "lite") };
    store.create_box(&cli, &lite_box).await.unwrap();
    match open(store, &config, &cli, filing(lapsed.id)).await {
        Err(TicketError::Invalid(e)) => {
            assert_eq!(e.field, "product");
            assert!(e.to_string().contains("has no box with iks-standard: its boxes run iks-lite"), "{e}");
        }
        other => panic!("a Lite-only organisation filed under IKS Standard: {other:?}"),
    }
    let lite = open(store, &config, &cli, Filing { product: "iks-lite".into(), ..filing(lapsed.id) }).await.unwrap();
    assert_eq!(lite.priority, 4, "its own product: category 4");

    // The regulations ask on the phone for the INN, the name, the version and a short
    // description: a name with the organisation suffices, a phone or e-mail is optional.
    let name_only = Filing { contact_phone: None, contact_email: None, ..filing(paying.id) };
    assert_eq!(refusal(&config, &name_only), Ok(None));
    let blank_phone = Filing { contact_phone: Some("  ".into()), ..name_only.clone() };
    let t = open(store, &config, &cli, blank_phone).await.unwrap();
    assert_eq!((t.refusal_reason, t.contact_phone), (None, None), "a blank phone is stored as none");

    type Case = (&'static str, Filing, RefusalReason);
    let cases: Vec<Case> = vec![
        (
            "IKS Standard 5 is no longer supported",
            Filing { version: "5.1".into(), ..filing(paying.id) },
            RefusalReason::UnsupportedVersion,
        ),
        ("no name", Filing { contact_name: " ".into(), ..filing(paying.id) }, RefusalReason::NoContactData),
        (
            "a blank name is no name, whatever else is given",
            Filing { contact_name: "\t".into(), contact_email: Some("a@b.ru".into()), ..filing(paying.id) },
            RefusalReason::NoContactData,
        ),
        (
            "not about A-Real's products",
            Filing { topic: Some(Topic::Other), ..filing(paying.id) },
            RefusalReason::NotAboutProducts,
        ),
        (
            "several reasons: the regulations' order decides",
            Filing { version: "5".into(), contact_phone: None, topic: Some(Topic::Other), ..filing(paying.id) },
            RefusalReason::UnsupportedVersion,
        ),
    ];
    for (name, f, reason) in cases {
        let r = open(store, &config, &cli, f).await.unwrap();
        assert_eq!((r.state, r.refusal_reason), (TicketState::Refused, Some(reason)), "{name}");
        assert_eq!(r.response_due_at, None, "{name}: nothing is due on a refused ticket");
        assert!(r.closed_at.is_some(), "{name}");
        assert_eq!(actions(store, r.id).await, ["ticket.open", "ticket.refuse"], "{name}");
        let refusal = &history(store, r.id).await.unwrap()[1];
        assert_eq!(refusal.details["reason"], reason.as_str(), "{name}");
        let words = iks_domain::i18n::text(Lang::Ru, &format!("desk.refusal.{}", reason.as_str()));
        assert_eq!(refusal.describe(Lang::Ru), format!("открыта → отказано, причина: {words}"), "{name}");
    }
    // An e-mail alone is contact data; a ticket without a stated topic opens.
    let email_only = Filing {
        contact_phone: None,
        contact_email: Some("petrov@romashka.ru".into()),
        topic: None,
        ..filing(paying.id)
    };
    assert_eq!(open(store, &config, &cli, email_only).await.unwrap().state, TicketState::Open);

    // Typing mistakes are errors naming the field, and store nothing.
    let before = store.list_tickets(&TicketFilter::default()).await.unwrap().len();
    let mistakes: Vec<(Filing, &str)> = vec![
        (Filing { product: "iks-ultra".into(), ..filing(paying.id) }, "product"),
        (Filing { version: "seven".into(), ..filing(paying.id) }, "version"),
        (Filing { description: "  ".into(), ..filing(paying.id) }, "description"),
        (Filing { contact_name: "Пётр\u{1b}[2J".into(), ..filing(paying.id) }, "contact_name"),
        (Filing { contact_email: Some("x".repeat(201)), ..filing(paying.id) }, "contact_email"),
    ];
    for (f, field) in mistakes {
        match open(store, &config, &cli, f).await {
            Err(TicketError::Invalid(e)) => assert_eq!(e.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let missing = open(store, &config, &cli, filing(OrgId(999))).await.unwrap_err();
    assert!(matches!(missing, TicketError::Store(StoreError::NotFound { .. })), "{missing:?}");
    assert_eq!(store.list_tickets(&TicketFilter::default()).await.unwrap().len(), before);
    let refused = TicketFilter { state: Some(TicketState::Refused), ..Default::default() };
    assert_eq!(store.list_tickets(&refused).await.unwrap().len(), 5);
}

async fn moves_comments_and_history(db: &TestDb) {
    let store = &db.store;
    let config = Config::default();
    let org = paying_org(store).await;
    let other = lapsed_org(store).await;
    let ivanov = person(store, "ivanov", Role::Operator, None).await;
    let petrov = person(store, "petrov", Role::Customer, Some(org.id)).await;
    let sidorov = person(store, "sidorov", Role::Customer, Some(other.id)).await;
    let audit = person(store, "audit", Role::Auditor, None).await;
    let as_ivanov = Actor::person(ivanov.id, "ivanov");
    let t = open(store, &config, &Actor::cli(), filing(org.id)).await.unwrap();
    let id = t.id;

    // Comments: the customer's restarts the silence count, support's first stops the clock.
    let c = comment_as(store, &petrov, id, "It still fails after a reboot").await.unwrap();
    assert!(c.from_customer);
    let after = store.ticket(id).await.unwrap();
    assert_eq!(after.last_customer_activity_at, c.created_at);
    assert_eq!(after.first_response_at, None, "a customer's comment is no response");
    let reply = comment_as(store, &ivanov, id, "Please send /var/log/vpn.log").await.unwrap();
    assert!(!reply.from_customer);
    let answered = store.ticket(id).await.unwrap();
    assert_eq!(answered.first_response_at, Some(reply.created_at));
    assert_eq!(answered.last_customer_activity_at, c.created_at, "support's comment is no customer activity");
    comment_as(store, &ivanov, id, "And the config").await.unwrap();
    assert_eq!(store.ticket(id).await.unwrap().first_response_at, Some(reply.created_at), "only the first counts");
    let status = sla::sla(&answered, iks_domain::time::now(), &config.hours, config.tickets.due_soon()).status;
    assert_eq!(status, Status::Answered);
    for who in [&sidorov, &audit] {
        let e = comment_as(store, who, id, "hello").await.unwrap_err();
        assert_eq!(e.to_string(), format!("{} cannot comment on {id}", who.login));
    }
    let empty = comment_as(store, &petrov, id, " \n").await.unwrap_err();
    assert!(matches!(empty, TicketError::Invalid(ref f) if f.field == "body"), "{empty:?}");
    let helpdesk = NewComment {
        author_id: None,
        author_name: "Пётр (по телефону)".into(),
        from_customer: true,
        body: "Called".into(),
    };
    let relayed = comment(store, &Actor::api_token(1, "helpdesk"), id, &helpdesk).await.unwrap();
    assert_eq!((relayed.author_id, relayed.author_name.as_str()), (None, "Пётр (по телефону)"));
    assert_eq!(store.comments(id).await.unwrap().len(), 4);

    // Moves: who may make them, and which the state allows.
    let by = |p: &Person| Actor::person(p.id, &p.login);
    make_move(store, &as_ivanov, Some(&ivanov), id, &Move::Progress, None).await.unwrap();
    let denied = make_move(store, &by(&petrov), Some(&petrov), id, &Move::Escalate, None).await.unwrap_err();
    assert_eq!(denied.to_string(), format!("petrov cannot make {id} escalated"));
    let escalated =
        make_move(store, &as_ivanov, Some(&ivanov), id, &Move::Escalate, Some("VPN module bug")).await.unwrap();
    assert_eq!(escalated.state, TicketState::Escalated);
    let again = make_move(store, &as_ivanov, Some(&ivanov), id, &Move::Escalate, None).await.unwrap_err();
    assert_eq!(
        again.to_string(),
        format!("{id} is escalated, so it cannot be escalated (it can go to in progress, resolved, closed, refused)")
    );
    assert!(matches!(again, TicketError::InvalidMove(_)));
    make_move(store, &as_ivanov, Some(&ivanov), id, &Move::Progress, Some("fix released")).await.unwrap();
    make_move(store, &as_ivanov, Some(&ivanov), id, &Move::Resolve, None).await.unwrap();
    let reopen = make_move(store, &as_ivanov, None, id, &Move::Escalate, None).await.unwrap_err();
    assert!(reopen.to_string().contains("is resolved, so it cannot be escalated (it can go to in progress, closed)"));
    // The customer closes their own ticket.
    let closed = make_move(store, &by(&petrov), Some(&petrov), id, &Move::Close { reason: "works now".into() }, None)
        .await
        .unwrap();
    assert_eq!((closed.state, closed.close_reason.as_deref()), (TicketState::Closed, Some("works now")));
    assert!(closed.closed_at.is_some());
    let late = comment_as(store, &petrov, id, "thanks").await.unwrap_err();
    assert_eq!(late.to_string(), format!("{id} is closed: it takes no more comments"));
    let over = make_move(store, &as_ivanov, None, id, &Move::Progress, None).await.unwrap_err();
    assert_eq!(
        over.to_string(),
        format!("{id} is closed, so it cannot be taken in progress (nothing changes it any more)")
    );

    // The history: who did what, when, in words.
    let h = history(store, id).await.unwrap();
    let lines: Vec<String> = h.iter().map(|e| format!("{} {}", e.actor.name, e.describe(Lang::En))).collect();
    let cli = Actor::cli().name;
    assert_eq!(
        lines,
        [
            format!("{cli} opened, priority 1"),
            "petrov comment from customer, petrov".to_string(),
            "ivanov comment from support, ivanov (first response)".to_string(),
            "ivanov comment from support, ivanov".to_string(),
            "helpdesk comment from customer, Пётр (по телефону)".to_string(),
            "ivanov open → in progress".to_string(),
            "ivanov in progress → escalated, note: VPN module bug".to_string(),
            "ivanov escalated → in progress, note: fix released".to_string(),
            "ivanov in progress → resolved".to_string(),
            "petrov resolved → closed, reason: works now".to_string(),
        ]
    );
    // The panel shows the same history in Russian.
    let ru: Vec<String> = h.iter().skip(2).step_by(4).map(|e| e.describe(Lang::Ru)).collect();
    assert_eq!(
        ru,
        ["комментарий поддержки, ivanov (первый ответ)", "в работе → у разработчиков, примечание: VPN module bug"]
    );
    assert!(h.windows(2).all(|w| w[0].at <= w[1].at));

    // Rudeness: an operator refuses an open ticket.
    let t2 = open(store, &config, &Actor::cli(), filing(org.id)).await.unwrap();
    let rude =
        make_move(store, &as_ivanov, Some(&ivanov), t2.id, &Move::Refuse { reason: RefusalReason::Rudeness }, None)
            .await
            .unwrap();
    assert_eq!((rude.state, rude.refusal_reason), (TicketState::Refused, Some(RefusalReason::Rudeness)));
    assert_eq!(actions(store, t2.id).await, ["ticket.open", "ticket.refuse"]);
}

async fn refused_tickets_get_no_grants(db: &TestDb) {
    let store = &db.store;
    let config = Config::default();
    let cli = Actor::cli();
    let org = paying_org(store).await;
    let lapsed = lapsed_org(store).await;
    store.create_box(&cli, &new_box(org.id, "main-gw")).await.unwrap();
    store.create_box(&cli, &new_box(lapsed.id, "main-gw")).await.unwrap();
    store
        .create_box(&cli, &iks_domain::model::NewBox { product: "iks-lite".into(), ..new_box(org.id, "lite") })
        .await
        .unwrap();
    let ivanov = person(store, "ivanov", Role::Operator, None).await;
    let petrov = person(store, "petrov", Role::Customer, Some(org.id)).await;
    let request = |ticket: TicketId, b: &'static str| {
        let (ivanov, config) = (ivanov.clone(), config.clone());
        async move { grants::request(store, &config, &ivanov, ticket, b, Duration::hours(1), "logs").await }
    };

    let refused = open(store, &config, &cli, Filing { topic: Some(Topic::Other), ..filing(org.id) }).await.unwrap();
    let e = request(refused.id, "main-gw").await.unwrap_err();
    assert!(matches!(e, GrantError::Refused(_)), "{e:?}");
    assert_eq!(e.to_string(), format!("{}: the ticket is refused", refused.id));

    // Refusing a ticket revokes what was requested or granted, and nothing new is granted.
    let t = open(store, &config, &cli, filing(org.id)).await.unwrap();
    let pending = request(t.id, "main-gw").await.unwrap();
    let approved = request(t.id, "main-gw").await.unwrap();
    grants::approve(store, &config, &petrov, approved.id, &grants::ApproveOptions::default()).await.unwrap();
    let rude = Move::Refuse { reason: RefusalReason::Rudeness };
    make_move(store, &Actor::person(ivanov.id, "ivanov"), Some(&ivanov), t.id, &rude, None).await.unwrap();
    assert_eq!(store.grant(pending.id).await.unwrap().state, GrantState::Revoked);
    assert_eq!(store.grant(approved.id).await.unwrap().state, GrantState::Revoked);
    assert_eq!(request(t.id, "main-gw").await.unwrap_err().to_string(), format!("{}: the ticket is refused", t.id));
    let approve = grants::approve(store, &config, &petrov, pending.id, &grants::ApproveOptions::default()).await;
    assert!(approve.is_err(), "a revoked request stays revoked");

    // Categories 3 and 4 are refused at request time, with the reason.
    let t3 = open(store, &config, &cli, filing(lapsed.id)).await.unwrap();
    let e3 = request(t3.id, "main-gw").await.unwrap_err().to_string();
    assert_eq!(
        e3,
        format!("{}: the support module of ИП Иванов expired on 2021-01-10 (category 3: no remote SSH)", t3.id)
    );
    let t4 = open(store, &config, &cli, Filing { product: "iks-lite".into(), ..filing(org.id) }).await.unwrap();
    let e4 = request(t4.id, "lite").await.unwrap_err().to_string();
    assert_eq!(e4, format!("{}: ООО Ромашка uses IKS Lite, the free edition (category 4: no remote SSH)", t4.id));
}

async fn autoclose_after_more_than_ten_silent_days(db: &TestDb) {
    let store = &db.store;
    let config = Config::default();
    assert_eq!(config.tickets.autoclose_days, 10);
    let cli = Actor::cli();
    let org = paying_org(store).await;
    let ivanov = person(store, "ivanov", Role::Operator, None).await;
    let petrov = person(store, "petrov", Role::Customer, Some(org.id)).await;
    let as_ivanov = Actor::person(ivanov.id, "ivanov");
    let new = || open(store, &config, &cli, filing(org.id));

    // Frozen: every ticket's customer last spoke at `t0`.
    let t0 = iks_domain::time::now() - Duration::days(30);
    let silent = new().await.unwrap();
    let resolved = new().await.unwrap();
    make_move(store, &as_ivanov, None, resolved.id, &Move::Resolve, None).await.unwrap();
    let escalated = new().await.unwrap();
    make_move(store, &as_ivanov, None, escalated.id, &Move::Escalate, None).await.unwrap();
    let refused = new().await.unwrap();
    make_move(store, &as_ivanov, None, refused.id, &Move::Refuse { reason: RefusalReason::Rudeness }, None)
        .await
        .unwrap();
    let closed = new().await.unwrap();
    store.close_ticket(&cli, closed.id, "answered by phone").await.unwrap();
    for t in [&silent, &resolved, &escalated, &refused, &closed] {
        backdate_ticket(store, t.id, t0).await;
    }
    let state = |id| async move { store.ticket(id).await.unwrap() };

    // Day 10 to the microsecond: not *more than* 10 days yet.
    assert!(autoclose(store, &config, t0 + Duration::days(10)).await.unwrap().is_empty());
    assert_eq!(state(silent.id).await.state, TicketState::Open);
    // Day 11: every ticket still in play closes; refused and closed ones stay as they were.
    let done = autoclose(store, &config, t0 + Duration::days(11)).await.unwrap();
    assert_eq!(done.iter().map(|t| t.id).collect::<Vec<_>>(), [silent.id, resolved.id, escalated.id]);
    for t in &done {
        assert_eq!((t.state, t.close_reason.as_deref()), (TicketState::Closed, Some(AUTOCLOSE_REASON)));
        let last = history(store, t.id).await.unwrap().pop().unwrap();
        assert_eq!((last.action.as_str(), last.actor.clone()), ("ticket.close", Actor::system()));
        assert_eq!(last.details["customer_silent_since"], iks_domain::time::to_db(t0));
    }
    assert_eq!(state(refused.id).await.state, TicketState::Refused);
    assert_eq!(state(closed.id).await.close_reason.as_deref(), Some("answered by phone"));
    assert!(autoclose(store, &config, t0 + Duration::days(11)).await.unwrap().is_empty(), "idempotent");

    // One microsecond past day 10 is more than 10 days.
    let edge = new().await.unwrap();
    backdate_ticket(store, edge.id, t0).await;
    let closed_now = autoclose(store, &config, t0 + Duration::days(10) + Duration::microseconds(1)).await.unwrap();
    assert_eq!(closed_now.iter().map(|t| t.id).collect::<Vec<_>>(), [edge.id]);

    // A customer's comment restarts the count; support's does not.
    let answered = new().await.unwrap();
    let talking = new().await.unwrap();
    backdate_ticket(store, answered.id, t0).await;
    backdate_ticket(store, talking.id, t0).await;
    comment_as(store, &ivanov, answered.id, "any news?").await.unwrap();
    let spoke = comment_as(store, &petrov, talking.id, "still broken").await.unwrap();
    let now = spoke.created_at + Duration::days(1);
    let closed_now = autoclose(store, &config, now).await.unwrap();
    assert_eq!(closed_now.iter().map(|t| t.id).collect::<Vec<_>>(), [answered.id]);
    assert_eq!(state(talking.id).await.state, TicketState::Open);
    assert!(autoclose(store, &config, spoke.created_at + Duration::days(10)).await.unwrap().is_empty());
    assert_eq!(autoclose(store, &config, spoke.created_at + Duration::days(11)).await.unwrap().len(), 1);

    // The configured number of days is what counts.
    let three =
        Config { tickets: crate::config::TicketsConfig { autoclose_days: 3, ..Default::default() }, ..config.clone() };
    let soon = new().await.unwrap();
    backdate_ticket(store, soon.id, t0).await;
    assert!(autoclose(store, &three, t0 + Duration::days(3)).await.unwrap().is_empty());
    assert_eq!(autoclose(store, &three, t0 + Duration::days(4)).await.unwrap().len(), 1);
}

/// A live session on `node` for a fresh ticket, under an approved grant ending in an hour.
async fn live_session(store: &Store, org: &Organisation, node: &str) -> (Ticket, iks_domain::model::Session) {
    let cli = Actor::cli();
    let config = Config::default();
    let t = open(store, &config, &cli, filing(org.id)).await.unwrap();
    let b = store.box_by_name(org.id, "main-gw").await.unwrap();
    let op = store.person_by_login("ivanov").await.unwrap();
    let req = NewAccessRequest {
        ticket_id: t.id,
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
        ticket_id: t.id,
        box_id: b.id,
        operator_id: op.id,
        client_addr: None,
        node: node.into(),
    };
    let s = store.start_session(&cli, &new, org.id).await.unwrap();
    (t, s)
}

/// What the watchdog would do now about the session, from the store.
async fn verdict(store: &Store, node: &str, s: &iks_domain::model::Session) -> (LiveCheck, Verdict) {
    let checks = store.live_checks(node).await.unwrap();
    let c = checks.into_iter().find(|c| c.session == s.id).unwrap();
    let v = review(&c, iks_domain::time::now(), chrono_tz::Europe::Moscow, &[Duration::minutes(5)], 0);
    (c, v)
}

/// Closing a ticket — by hand, by the auto-close job, or refusing it — ends its live
/// sessions: the watchdog's next look at the store says so. (The same path through a
/// real sshd is the SSH end-to-end tests'.)
async fn closing_ends_live_sessions(db: &TestDb) {
    let store = &db.store;
    let config = Config::default();
    let org = paying_org(store).await;
    store.create_box(&Actor::cli(), &new_box(org.id, "main-gw")).await.unwrap();
    let ivanov = person(store, "ivanov", Role::Operator, None).await;
    let as_ivanov = Actor::person(ivanov.id, "ivanov");

    let (t, s) = live_session(store, &org, "node-a").await;
    assert_eq!(verdict(store, "node-a", &s).await.1, Verdict::Continue);
    make_move(store, &as_ivanov, Some(&ivanov), t.id, &Move::Close { reason: "done".into() }, None).await.unwrap();
    let (check, v) = verdict(store, "node-a", &s).await;
    assert_eq!((check.ticket_state, check.grant_state), (TicketState::Closed, GrantState::Revoked));
    assert_eq!(v, Verdict::End { reason: EndReason::TicketClosed, message: format!("ticket {} was closed", t.id) });

    let (t, s) = live_session(store, &org, "node-a").await;
    backdate_ticket(store, t.id, iks_domain::time::now() - Duration::days(11)).await;
    let closed = autoclose(store, &config, iks_domain::time::now()).await.unwrap();
    assert_eq!(closed.iter().map(|t| t.id).collect::<Vec<_>>(), [t.id]);
    let (_, v) = verdict(store, "node-a", &s).await;
    assert!(matches!(v, Verdict::End { reason: EndReason::TicketClosed, .. }), "{v:?}");

    let (t, s) = live_session(store, &org, "node-a").await;
    let rude = Move::Refuse { reason: RefusalReason::Rudeness };
    make_move(store, &as_ivanov, Some(&ivanov), t.id, &rude, None).await.unwrap();
    let (_, v) = verdict(store, "node-a", &s).await;
    assert_eq!(v, Verdict::End { reason: EndReason::TicketClosed, message: format!("ticket {} was refused", t.id) });
}
