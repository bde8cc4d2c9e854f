//! The admin's pages: organisations, people (keys, disabling, password links, second
//! factor), boxes and API tokens; admin only, every change audited with the admin as actor.

use axum::http::{Method, StatusCode};

use super::sessions::Text as _;
use super::{Browser, PASSWORD, TestPanel};
use crate::store::EventFilter;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEDzWDPG1+ZhUfXGbzPFFpJm/ihb5BFgCjLZm3dj7+2P petrov@laptop";

/// The newest audit event with `action`, with who did it.
async fn last(p: &TestPanel, action: &str) -> Option<iks_domain::audit::Event> {
    let f = EventFilter { action: Some(action.into()), newest_first: true, limit: Some(1), ..Default::default() };
    p.app.store.audit_events(&f).await.unwrap().pop()
}

#[tokio::test]
async fn admin_pages_are_for_admins_only() {
    let p = TestPanel::new().await;
    let pages = ["/admin/orgs", "/admin/people", "/admin/boxes", "/admin/tokens"];
    let id = |o: iks_domain::ids::OrgId| o.get().to_string();
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/admin/orgs".into(), vec![("inn", "500100732259"), ("name", "X")]),
        (format!("/admin/orgs/{}", id(p.a.id)), vec![("name", "Hacked")]),
        ("/admin/people".into(), vec![("login", "mallory"), ("name", "M"), ("role", "admin")]),
        ("/admin/tokens".into(), vec![("name", "mine")]),
    ];
    for login in ["romashka", "petrov", "sidorova"] {
        let mut b = p.login(login).await;
        for page in pages {
            assert_eq!(p.get(&mut b, page).await.status, StatusCode::FORBIDDEN, "{login} {page}");
        }
        assert_eq!(p.get(&mut b, &format!("/admin/orgs/{}", id(p.a.id))).await.status, StatusCode::FORBIDDEN);
        for (path, fields) in &posts {
            assert_eq!(p.post(&mut b, path, fields).await.status, StatusCode::FORBIDDEN, "{login} {path}");
        }
    }
    assert!(p.app.store.person_by_login("mallory").await.is_err(), "nothing was created");
    assert_eq!(p.app.store.org(p.a.id).await.unwrap().name, "ООО Ромашка");
    let mut root = p.login("root").await;
    for page in pages {
        assert_eq!(p.get(&mut root, page).await.status, StatusCode::OK, "{page}");
    }
    // Without the session's token a form changes nothing.
    let forged = p
        .send(&mut root, Method::POST, "/admin/orgs", Some(&[("csrf", "x"), ("inn", "500100732259"), ("name", "X")]))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(p.app.store.list_orgs().await.unwrap().len(), 2);
}

#[tokio::test]
async fn organisations_are_created_with_a_checked_inn_and_show_their_category() {
    let p = TestPanel::new().await;
    let mut root = p.login("root").await;
    let list = p.get(&mut root, "/admin/orgs").await;
    assert!(list.text().contains("категория 1: модуль поддержки до 2099-12-31"), "{}", list.body);
    assert!(list.text().contains("категория 2: партнёр"));
    let bad = p.post(&mut root, "/admin/orgs", &[("inn", "7707083894"), ("name", "ООО Лютик")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("ИНН: INN check digit 10 is 4, expected 3"), "{}", bad.body);
    assert!(
        bad.text().contains("value=\"ООО Лютик\"") && bad.text().contains("value=\"7707083894\""),
        "typed values stay"
    );
    let dup = p.post(&mut root, "/admin/orgs", &[("inn", super::ROMASHKA), ("name", "Другая")]).await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert!(dup.text().contains("already exists"), "{}", dup.body);
    let bad_date = p
        .post(&mut root, "/admin/orgs", &[("inn", "7736207543"), ("name", "ООО Лютик"), ("purchased_on", "01.06.2026")])
        .await;
    assert!(bad_date.text().contains("Дата покупки: '01.06.2026' is not YYYY-MM-DD"), "{}", bad_date.body);
    let made = p
        .post(
            &mut root,
            "/admin/orgs",
            &[("inn", "7736207543"), ("name", "ООО Лютик"), ("trial_started_on", "2026-11-01")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let org = p.app.store.org_by_inn(&iks_domain::rules::Inn::parse("7736207543").unwrap()).await.unwrap();
    assert_eq!(made.location(), format!("/admin/orgs/{}", org.id.get()));
    let created = last(&p, "org.create").await.unwrap();
    assert_eq!((created.actor.name.as_str(), created.subjects.org), ("root", Some(org.id)));
    // Editing the facts changes the category.
    let path = format!("/admin/orgs/{}", org.id.get());
    let saved = p.post(&mut root, &path, &[("name", "ООО Лютик"), ("partner", "1")]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let page = p.get(&mut root, &path).await;
    assert!(page.text().contains("категория 2: партнёр") && page.text().contains("Сохранено."), "{}", page.body);
    assert_eq!(last(&p, "org.update").await.unwrap().actor.name, "root");
    let empty = p.post(&mut root, &path, &[("name", " ")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.text().contains("Название / имя: must not be empty"), "{}", empty.body);
    assert_eq!(p.get(&mut root, "/admin/orgs/999").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn people_keys_disabling_password_links_and_the_second_factor() {
    let p = TestPanel::new().await;
    let mut root = p.login("root").await;
    // A customer needs an organisation; an operator must not have one.
    let no_org =
        p.post(&mut root, "/admin/people", &[("login", "lutik"), ("name", "Лютик"), ("role", "customer")]).await;
    assert_eq!(no_org.status, StatusCode::BAD_REQUEST);
    assert!(no_org.text().contains("Организация: a customer user must belong to an organisation"), "{}", no_org.body);
    assert!(no_org.text().contains("value=\"lutik\""));
    let b_org = p.b.id.get().to_string();
    let made = p
        .post(
            &mut root,
            "/admin/people",
            &[("login", "lutik"), ("name", "Лютик"), ("role", "customer"), ("org", &b_org)],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    let lutik = p.app.store.person_by_login("lutik").await.unwrap();
    assert_eq!(lutik.org_id, Some(p.b.id));
    let taken = p.post(&mut root, "/admin/people", &[("login", "petrov"), ("name", "P"), ("role", "operator")]).await;
    assert!(taken.text().contains("the login 'petrov' is taken"), "{}", taken.body);
    let list = p.get(&mut root, "/admin/people?role=customer").await;
    assert!(list.text().contains("lutik") && list.text().contains("romashka") && !list.text().contains(">petrov<"));

    // Keys: checked like the CLI, operators only.
    let petrov = p.app.store.person_by_login("petrov").await.unwrap();
    let keys = format!("/admin/people/{}/keys", petrov.id.get());
    let bad = p.post(&mut root, &keys, &[("keys", "ssh-ed25519 AAAAnotakey")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("SSH-ключ: line 1: not an OpenSSH public key"), "{}", bad.body);
    assert!(bad.text().contains("ssh-ed25519 AAAAnotakey</textarea>"), "the paste stays");
    let private = p.post(&mut root, &keys, &[("keys", "-----BEGIN OPENSSH PRIVATE KEY-----")]).await;
    assert!(private.text().contains("this is a private key"), "{}", private.body);
    let added = p.post(&mut root, &keys, &[("keys", KEY)]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    let stored = p.app.store.ssh_keys_of(petrov.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].comment, "petrov@laptop");
    assert_eq!(last(&p, "person.key.add").await.unwrap().actor.name, "root");
    let again = p.post(&mut root, &keys, &[("keys", KEY)]).await;
    assert!(again.text().contains("is already registered"), "{}", again.body);
    let to_customer = p.post(&mut root, &format!("/admin/people/{}/keys", lutik.id.get()), &[("keys", KEY)]).await;
    assert!(to_customer.text().contains("SSH-ключи нужны только инженерам поддержки."));
    // A key can be removed only through its owner's page.
    let wrong_owner = format!("/admin/people/{}/keys/{}/remove", lutik.id.get(), stored[0].id.get());
    assert_eq!(p.post(&mut root, &wrong_owner, &[]).await.status, StatusCode::NOT_FOUND);
    let remove = format!("/admin/people/{}/keys/{}/remove", petrov.id.get(), stored[0].id.get());
    assert_eq!(p.post(&mut root, &remove, &[]).await.status, StatusCode::SEE_OTHER);
    assert!(p.app.store.ssh_keys_of(petrov.id).await.unwrap().is_empty());

    // Disabling signs the person out and refuses sign-in; the admin cannot disable themself.
    let mut petrov_browser = p.login("petrov").await;
    let state = format!("/admin/people/{}/state", petrov.id.get());
    assert_eq!(p.post(&mut root, &state, &[("to", "disable")]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(p.get(&mut petrov_browser, "/sessions").await.status, StatusCode::SEE_OTHER, "signed out");
    assert_eq!(p.try_login(&mut Browser::default(), "petrov", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(p.post(&mut root, &state, &[("to", "enable")]).await.status, StatusCode::SEE_OTHER);
    p.login("petrov").await;
    let me = p.app.store.person_by_login("root").await.unwrap();
    let myself = p.post(&mut root, &format!("/admin/people/{}/state", me.id.get()), &[("to", "disable")]).await;
    assert!(myself.text().contains("Нельзя отключить собственную учётную запись."));
    assert!(p.app.store.person(me.id).await.unwrap().disabled_at.is_none());

    // A password link is shown once, works once, and is audited.
    let page = p.post(&mut root, &format!("/admin/people/{}/password-link", lutik.id.get()), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let link = page.text().split("<pre class=\"copy\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    let path = link.strip_prefix("http://127.0.0.1:8080").unwrap_or_else(|| panic!("{link}"));
    assert_eq!(last(&p, "person.password_link").await.unwrap().actor.name, "root");
    let mut lutik_browser = Browser::default();
    let form = p.get(&mut lutik_browser, path).await;
    assert_eq!(form.status, StatusCode::OK);
    let pre = form.input("csrf").unwrap();
    let new_password = "a long new password";
    let set = p
        .send(
            &mut lutik_browser,
            Method::POST,
            path,
            Some(&[("csrf", &pre), ("password", new_password), ("repeat", new_password)]),
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(p.try_login(&mut Browser::default(), "lutik", new_password).await.status, StatusCode::SEE_OTHER);
    assert_eq!(p.get(&mut Browser::default(), path).await.status, StatusCode::NOT_FOUND, "used once");

    // Resetting the second factor clears it.
    p.app.store.set_totp(&iks_domain::audit::Actor::cli(), lutik.id, Some("JBSWY3DPEHPK3PXP")).await.unwrap();
    let person_page = p.get(&mut root, &format!("/admin/people/{}", lutik.id.get())).await;
    assert!(person_page.text().contains("totp-reset"));
    let reset = p.post(&mut root, &format!("/admin/people/{}/totp-reset", lutik.id.get()), &[]).await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    let creds = p.app.store.credentials("lutik").await.unwrap().unwrap();
    assert!(creds.totp_secret.is_none());
    let totp = last(&p, "person.totp").await.unwrap();
    assert_eq!((totp.actor.name.as_str(), totp.details.contains("cleared")), ("root", true));
}

#[tokio::test]
async fn boxes_are_checked_against_the_catalogue_and_edited() {
    let p = TestPanel::new().await;
    let mut root = p.login("root").await;
    let a = p.a.id.get().to_string();
    let fields = |name: &'static str, version: &'static str| {
        vec![
            ("org", a.clone()),
            ("name", name.to_string()),
            ("product", "iks-standard".to_string()),
            ("version", version.to_string()),
            ("address", "10.0.0.5:22".to_string()),
            ("login", "support".to_string()),
            ("auth", "certificate".to_string()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let bad = as_refs(&fields("backup-gw", "1"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = p.post(&mut root, "/admin/boxes", &bad).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.text().contains("Версия:"), "{}", page.body);
    assert!(page.text().contains("value=\"backup-gw\""));
    let good = as_refs(&fields("backup-gw", "7"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let made = p.post(&mut root, "/admin/boxes", &good).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let b = p.app.store.box_by_name(p.a.id, "backup-gw").await.unwrap();
    assert_eq!(b.address.as_deref(), Some("10.0.0.5:22"));
    assert_eq!(last(&p, "box.create").await.unwrap().actor.name, "root");
    let dup = p.post(&mut root, "/admin/boxes", &good).await;
    assert!(dup.text().contains("already has a box named"), "{}", dup.body);
    // Edit: the address off (reached through its agent), forwarding on, a host key pinned.
    let path = format!("/admin/boxes/{}", b.id.get());
    let edit = [
        ("name", "backup-gw"),
        ("product", "iks-standard"),
        ("version", "7"),
        ("address", ""),
        ("login", "support"),
        ("auth", "static-key"),
        ("forwarding", "1"),
        ("host_key", KEY),
    ];
    assert_eq!(p.post(&mut root, &path, &edit).await.status, StatusCode::SEE_OTHER);
    let b = p.app.store.get_box(b.id).await.unwrap();
    assert_eq!((b.address, b.allow_forwarding, b.auth.as_str()), (None, true, "static-key"));
    assert!(b.host_key.as_deref().unwrap().starts_with("ssh-ed25519 AAAA") && !b.host_key.unwrap().contains("petrov@"));
    let bad_key =
        p.post(&mut root, &path, &[("name", "backup-gw"), ("host_key", "nonsense"), ("auth", "certificate")]).await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert!(bad_key.text().contains("Ключ хоста: not an OpenSSH public key"), "{}", bad_key.body);
}

#[tokio::test]
async fn api_tokens_are_shown_once_and_revoked() {
    let p = TestPanel::new().await;
    let mut root = p.login("root").await;
    let bad = p.post(&mut root, "/admin/tokens", &[("name", "Help Desk")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("Название / имя: 'Help Desk' must be 1-63 characters"), "{}", bad.body);
    let wrong_org = p.post(&mut root, "/admin/tokens", &[("name", "helpdesk"), ("org", "999")]).await;
    assert!(wrong_org.text().contains("no organisation 999"), "{}", wrong_org.body);
    let made = p.post(&mut root, "/admin/tokens", &[("name", "helpdesk"), ("org", &p.a.id.get().to_string())]).await;
    assert_eq!(made.status, StatusCode::OK);
    let secret = made.text().split("<pre class=\"copy\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    let token = p.app.store.api_token_by_hash(&crate::secret::hash(&secret)).await.unwrap().unwrap();
    assert_eq!((token.name.as_str(), token.org_id), ("helpdesk", Some(p.a.id)));
    let list = p.get(&mut root, "/admin/tokens").await;
    assert!(list.text().contains("helpdesk") && !list.text().contains(&secret), "the secret is shown once");
    let revoke = format!("/admin/tokens/{}/revoke", token.id);
    assert_eq!(p.post(&mut root, &revoke, &[]).await.status, StatusCode::SEE_OTHER);
    assert!(p.app.store.api_token_by_hash(&crate::secret::hash(&secret)).await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(last(&p, "api_token.revoke").await.unwrap().actor.name, "root");
    assert_eq!(p.post(&mut root, &revoke, &[]).await.status, StatusCode::BAD_REQUEST, "already revoked");
    assert_eq!(p.post(&mut root, "/admin/tokens/999/revoke", &[]).await.status, StatusCode::NOT_FOUND);
}
