//! Signing in and out, the second factor, one-time setup and password links, and the
//! person's own account page.
//!
//! - Passwords are Argon2id PHC strings, hashed and checked on the blocking pool. An
//!   unknown login is checked against a dummy hash, so timing does not tell which logins
//!   exist, and every refusal reads the same.
//! - The session cookie holds a random token ([`crate::secret`]); the store keeps its
//!   SHA-256. Who a request's cookie names is [`super::viewer`]'s job.
//! - With TOTP on, a correct password yields a session that can only give the code; the
//!   code is checked with one step of skew and each code is accepted once.
//! - Failed attempts are throttled per account, per second factor and per address
//!   ([`super::throttle`]); a try is counted before Argon2 runs. A login or password of
//!   the wrong shape is refused before anything is stored or hashed, and at most one
//!   hash per core runs at a time, so a flood of sign-ins cannot exhaust memory.
//! - CSRF: the sign-in form, which has no session yet, carries a token that must equal a
//!   short-lived cookie (double submit); a session's forms carry the session's own.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::Duration;
use minijinja::context;
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::page::{landing, tr};
use super::panel::Panel;
use super::throttle::Key;
use super::url::{encode, is_local_path};
use super::viewer::{Anonymous, CsrfForm, FLASH_COOKIE, PRE_COOKIE, SESSION_COOKIE, Viewer};
use crate::secret::{self, RandomFailed};
use crate::store::{LinkPurpose, Store, StoreError};
use iks_domain::i18n::{self, Lang};
use iks_domain::ids::PersonId;
use iks_domain::model::{NewPerson, Person, Role};

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// The longest password accepted (characters), set or tried.
pub const MAX_PASSWORD: usize = 1024;
/// The largest form the sign-in pages take: a login, a password and two tokens.
const MAX_FORM: usize = 16 * 1024;
/// How long a password check waits for a free core before the panel answers "busy".
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/login/totp", get(totp_form).post(totp))
        .route("/logout", post(logout))
        .route("/setup/{token}", get(setup_form).post(setup))
        .route("/password/{token}", get(password_link_form).post(password_link))
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/account/totp", post(totp_setup))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
}

/// Runs an Argon2 computation on the blocking pool, at most one per core at a time: each
/// takes ~19 MiB, and unbounded they took a flood of sign-ins' memory to gigabytes.
async fn argon2<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> WebResult<T> {
    static CORES: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let cores = CORES.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    });
    let Ok(Ok(_permit)) = tokio::time::timeout(HASH_WAIT, cores.acquire()).await else {
        tracing::warn!("every core is busy hashing passwords: a sign-in is refused as busy");
        return Err(WebError::Busy);
    };
    tokio::task::spawn_blocking(work).await.map_err(|_| WebError::Internal)
}

/// Hashes a password with Argon2id.
pub async fn hash_password(password: String) -> WebResult<String> {
    argon2(move || {
        let salt = SaltString::encode_b64(&secret::random_bytes::<16>()?).map_err(|_| WebError::Internal)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| WebError::Internal)
    })
    .await?
}

/// Checks a password against a stored hash (or against a dummy, to take the same time).
async fn verify_password(password: String, stored: Option<String>) -> WebResult<bool> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| {
        DUMMY
            .get_or_init(|| {
                let salt = SaltString::encode_b64(&[7u8; 16]).expect("a fixed salt encodes");
                Argon2::default().hash_password(b"not a password", &salt).expect("hashing works").to_string()
            })
            .clone()
    });
    let ok = argon2(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await?;
    Ok(known && ok)
}

/// Whether `login` could be anyone's login (the shape [`NewPerson`] requires); anything
/// else is refused before it is looked up, stored or counted as an account.
fn login_shaped(login: &str) -> bool {
    iks_domain::model::check_login("login", login).is_ok()
}

/// Why a new password is refused, as an i18n key.
pub fn password_problem(login: &str, password: &str, repeat: &str) -> Option<&'static str> {
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        Some("password.too_short")
    } else if length > MAX_PASSWORD {
        Some("password.too_long")
    } else if password.eq_ignore_ascii_case(login) {
        Some("password.is_login")
    } else if password != repeat {
        Some("password.mismatch")
    } else {
        None
    }
}

/// A page before signing in, with a fresh double-submit token in its form and cookie.
fn anonymous_page(
    web: &Panel,
    who: &Anonymous,
    status: StatusCode,
    template: &str,
    ctx: minijinja::Value,
) -> WebResult {
    let pre = secret::token::<16>("")?;
    let mut res = web.public_page(who.lang, "/login", template, context! { csrf => pre, ..ctx })?;
    *res.status_mut() = status;
    res.headers_mut().append(header::SET_COOKIE, web.cookie(PRE_COOKIE, &pre, Some(3600)));
    Ok(res)
}

fn safe_next(next: Option<String>, role: Role) -> String {
    next.filter(|n| is_local_path(n) && !n.starts_with("/login")).unwrap_or_else(|| landing(role).to_string())
}

/// Starts a session and sends the browser on (to the second factor, when it is on).
async fn sign_in(web: &Panel, person: &Person, totp_on: bool, address: &str, next: String) -> WebResult {
    let token = start_session(web, person, address, !totp_on).await?;
    tracing::info!(person = %person.login, %address, "signed in to the panel");
    let to = if totp_on { format!("/login/totp?next={}", encode(&next)) } else { next };
    let mut res = Redirect::to(&to).into_response();
    res.headers_mut().append(header::SET_COOKIE, web.cookie(SESSION_COOKIE, &token, None));
    res.headers_mut().append(header::SET_COOKIE, web.cookie(PRE_COOKIE, "", Some(0)));
    Ok(res)
}

/// Stores a new panel session (its token's hash and a fresh CSRF token) and returns the
/// token for the cookie; `second_factor_in` when nothing more is to be asked.
async fn start_session(web: &Panel, person: &Person, address: &str, second_factor_in: bool) -> WebResult<String> {
    let token = secret::token::<32>("")?;
    let csrf = secret::token::<16>("")?;
    web.app.store.create_web_session(person, &secret::hash(&token), &csrf, address, second_factor_in).await?;
    Ok(token)
}

// ----- sign in, second factor, sign out -----

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_form(State(web): State<Arc<Panel>>, who: Anonymous, Query(q): Query<Next>) -> WebResult {
    if let Some(s) = who.session.as_ref().filter(|s| !s.totp_on || s.second_factor_at.is_some()) {
        return Ok(Redirect::to(&safe_next(q.next, s.person.role)).into_response());
    }
    anonymous_page(&web, &who, StatusCode::OK, "login.html", context! { next => q.next, login => "" })
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn login(State(web): State<Arc<Panel>>, who: Anonymous, axum::Form(f): axum::Form<LoginForm>) -> WebResult {
    who.check(&f.csrf)?;
    let login = f.login.trim().to_lowercase();
    // A login no one can have is not echoed, stored or counted as an account: only the
    // address pays for it.
    let shaped = login_shaped(&login);
    let refuse = |status: StatusCode, error: String| {
        let login = if shaped { login.as_str() } else { "" };
        anonymous_page(&web, &who, status, "login.html", context! { next => f.next.clone(), login, error })
    };
    let address = Key::Address(who.address.clone());
    let keys = if shaped { vec![Key::Account(login.clone()), address] } else { vec![address] };
    let attempt = match web.throttle.attempt(&keys) {
        Ok(attempt) => attempt,
        Err(wait) => return refuse(StatusCode::TOO_MANY_REQUESTS, throttled(who.lang, wait)),
    };
    if !shaped {
        tracing::info!(address = %who.address, length = f.login.len(), "panel sign-in refused: not a login");
        return refuse(StatusCode::UNAUTHORIZED, i18n::text(who.lang, "login.wrong"));
    }
    let creds = web.app.store.credentials(&login).await?;
    let person = creds.as_ref().map(|c| &c.person);
    // A password no one can have is wrong without hashing it.
    let ok = f.password.chars().count() <= MAX_PASSWORD
        && verify_password(f.password.clone(), creds.as_ref().and_then(|c| c.password_hash.clone())).await?;
    let disabled = person.is_some_and(|p| p.disabled_at.is_some());
    if !ok || disabled {
        let why = match (person, ok) {
            (None, _) => "no such login",
            (Some(_), false) => "wrong password",
            (Some(_), true) => "person disabled",
        };
        web.app.store.record_login_failure(&login, person, &who.address, why).await?;
        tracing::info!(%login, address = %who.address, why, "panel sign-in refused");
        return refuse(StatusCode::UNAUTHORIZED, i18n::text(who.lang, "login.wrong"));
    }
    let creds = creds.ok_or(WebError::Internal)?;
    attempt.succeeded();
    let next = safe_next(f.next, creds.person.role);
    sign_in(&web, &creds.person, creds.totp_secret.is_some(), &who.address, next).await
}

/// "Too many failed attempts, try again in N min."
fn throttled(lang: Lang, wait: std::time::Duration) -> String {
    i18n::text(lang, "login.throttled").replace("{n}", &wait.as_secs().div_ceil(60).to_string())
}

async fn totp_form(State(web): State<Arc<Panel>>, who: Anonymous, Query(q): Query<Next>) -> WebResult {
    if who.session.as_ref().is_none_or(|s| !s.totp_on) {
        return Ok(Redirect::to("/login").into_response());
    }
    anonymous_page(&web, &who, StatusCode::OK, "login_totp.html", context! { next => q.next })
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    csrf: String,
    next: Option<String>,
}

async fn totp(State(web): State<Arc<Panel>>, who: Anonymous, axum::Form(f): axum::Form<CodeForm>) -> WebResult {
    who.check(&f.csrf)?;
    let Some(s) = who.session.as_ref().filter(|s| s.totp_on) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let refuse = |status: StatusCode, error: String| {
        anonymous_page(&web, &who, status, "login_totp.html", context! { next => f.next.clone(), error })
    };
    // Wrong codes count against the second factor itself, which a correct password does
    // not clear: knowing the password does not buy more guesses at the code.
    let keys = [Key::SecondFactor(s.person.id.get()), Key::Address(who.address.clone())];
    let attempt = match web.throttle.attempt(&keys) {
        Ok(attempt) => attempt,
        Err(wait) => return refuse(StatusCode::TOO_MANY_REQUESTS, throttled(who.lang, wait)),
    };
    let secret = web.app.store.credentials(&s.person.login).await?.and_then(|c| c.totp_secret);
    if !secret.is_some_and(|secret| web.totp.accept(s.person.id.get(), &secret, f.code.trim())) {
        web.app
            .store
            .record_login_failure(&s.person.login, Some(&s.person), &who.address, "wrong second factor")
            .await?;
        tracing::info!(person = %s.person.login, address = %who.address, "panel second factor refused");
        return refuse(StatusCode::UNAUTHORIZED, i18n::text(who.lang, "login.wrong_code"));
    }
    attempt.succeeded();
    web.app.store.confirm_second_factor(s, &who.address).await?;
    Ok(Redirect::to(&safe_next(f.next, s.person.role)).into_response())
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(State(web): State<Arc<Panel>>, CsrfForm(viewer, _): CsrfForm<Empty>) -> WebResult {
    web.app.store.end_web_session(&viewer.session, "signed out").await?;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().append(header::SET_COOKIE, web.cookie(SESSION_COOKIE, "", Some(0)));
    Ok(res)
}

// ----- one-time links -----

async fn setup_form(State(web): State<Arc<Panel>>, who: Anonymous, Path(token): Path<String>) -> WebResult {
    if web.app.store.web_link(LinkPurpose::Setup, &secret::hash(&token)).await?.is_none() {
        return Err(WebError::NotFound);
    }
    anonymous_page(&web, &who, StatusCode::OK, "setup.html", context! { token, login => "", name => "" })
}

#[derive(Deserialize)]
struct SetupForm {
    login: String,
    name: String,
    password: String,
    repeat: String,
    csrf: String,
}

async fn setup(
    State(web): State<Arc<Panel>>,
    who: Anonymous,
    Path(token): Path<String>,
    axum::Form(f): axum::Form<SetupForm>,
) -> WebResult {
    who.check(&f.csrf)?;
    let new = NewPerson {
        login: f.login.trim().to_string(),
        display_name: f.name.trim().to_string(),
        role: Role::Admin,
        org_id: None,
        email: None,
    };
    let problem = new
        .validate()
        .err()
        .map(|e| e.to_string())
        .or_else(|| password_problem(&new.login, &f.password, &f.repeat).map(|k| i18n::text(who.lang, k)));
    if let Some(error) = problem {
        let ctx = context! { token, login => new.login, name => new.display_name, error };
        return anonymous_page(&web, &who, StatusCode::BAD_REQUEST, "setup.html", ctx);
    }
    let hash = hash_password(f.password).await?;
    let person = web.app.store.use_setup_link(&secret::hash(&token), &new, &hash).await?;
    sign_in(&web, &person, false, &who.address, landing(Role::Admin).into()).await
}

async fn password_link_form(State(web): State<Arc<Panel>>, who: Anonymous, Path(token): Path<String>) -> WebResult {
    let Some(Some(person)) = web.app.store.web_link(LinkPurpose::Password, &secret::hash(&token)).await? else {
        return Err(WebError::NotFound);
    };
    let person = web.app.store.person(person).await?;
    anonymous_page(&web, &who, StatusCode::OK, "password_link.html", context! { token, login => person.login })
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
    repeat: String,
    csrf: String,
}

async fn password_link(
    State(web): State<Arc<Panel>>,
    who: Anonymous,
    Path(token): Path<String>,
    axum::Form(f): axum::Form<PasswordForm>,
) -> WebResult {
    who.check(&f.csrf)?;
    let hash = secret::hash(&token);
    let Some(Some(person)) = web.app.store.web_link(LinkPurpose::Password, &hash).await? else {
        return Err(WebError::NotFound);
    };
    let person = web.app.store.person(person).await?;
    if let Some(key) = password_problem(&person.login, &f.password, &f.repeat) {
        let ctx = context! { token, login => person.login, error => i18n::text(who.lang, key) };
        return anonymous_page(&web, &who, StatusCode::BAD_REQUEST, "password_link.html", ctx);
    }
    let stored = hash_password(f.password).await?;
    let person = web.app.store.use_password_link(&hash, &stored).await?;
    // A new password is one factor: with TOTP on, the code is still asked for.
    let totp_on = web.app.store.credentials(&person.login).await?.is_some_and(|c| c.totp_secret.is_some());
    sign_in(&web, &person, totp_on, &who.address, landing(person.role).into()).await
}

// ----- the person's own account -----

async fn account(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    account_page(&web, &viewer, StatusCode::OK, context! {})
}

fn account_page(web: &Panel, viewer: &Viewer, status: StatusCode, ctx: minijinja::Value) -> WebResult {
    let ctx = context! { totp_on => viewer.session.totp_on, ..ctx };
    let mut res = web.page(viewer, "account.html", ctx)?;
    *res.status_mut() = status;
    Ok(res)
}

#[derive(Deserialize)]
struct ChangePassword {
    current: String,
    password: String,
    repeat: String,
}

async fn change_password(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<ChangePassword>) -> WebResult {
    let stored = web.app.store.credentials(&viewer.person.login).await?.and_then(|c| c.password_hash);
    let problem = if !verify_password(f.current, stored).await? {
        Some("password.wrong_current")
    } else {
        password_problem(&viewer.person.login, &f.password, &f.repeat)
    };
    if let Some(key) = problem {
        return account_page(&web, &viewer, StatusCode::BAD_REQUEST, context! { password_error => tr(&viewer, key) });
    }
    let hash = hash_password(f.password).await?;
    web.app.store.set_password(&viewer.actor(), viewer.person.id, Some(&hash)).await?;
    // Changing the password signed every session out, this one too: sign in again.
    sign_in(&web, &viewer.person, viewer.session.totp_on, &viewer.address, "/account".into()).await.map(|mut res| {
        res.headers_mut().append(
            header::SET_COOKIE,
            web.cookie(FLASH_COOKIE, &hex::encode(tr(&viewer, "password.changed")), Some(60)),
        );
        res
    })
}

#[derive(Deserialize)]
struct TotpSetup {
    /// "begin" shows a new secret; "enable" checks a code against it; "disable" turns it off.
    step: String,
    secret: Option<String>,
    code: Option<String>,
}

async fn totp_setup(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<TotpSetup>) -> WebResult {
    let code = f.code.as_deref().unwrap_or("").trim().to_string();
    match f.step.as_str() {
        "begin" => {
            let secret = super::totp::new_secret()?;
            let uri = super::totp::uri(&secret, &viewer.person.login);
            account_page(&web, &viewer, StatusCode::OK, context! { new_secret => secret, otpauth => uri })
        }
        "enable" => {
            let secret = f.secret.unwrap_or_default();
            if !web.totp.accept(viewer.person.id.get(), &secret, &code) {
                let uri = super::totp::uri(&secret, &viewer.person.login);
                let ctx =
                    context! { new_secret => secret, otpauth => uri, totp_error => tr(&viewer, "login.wrong_code") };
                return account_page(&web, &viewer, StatusCode::BAD_REQUEST, ctx);
            }
            web.app.store.set_totp(&viewer.actor(), viewer.person.id, Some(&secret)).await?;
            // Setting a credential ends the person's sessions; this one continues with both factors.
            let token = start_session(&web, &viewer.person, &viewer.address, true).await?;
            let mut res = web.done(&viewer, "/account", "totp.enabled");
            res.headers_mut().append(header::SET_COOKIE, web.cookie(SESSION_COOKIE, &token, None));
            Ok(res)
        }
        "disable" => {
            let secret = web.app.store.credentials(&viewer.person.login).await?.and_then(|c| c.totp_secret);
            if !secret.is_some_and(|s| web.totp.accept(viewer.person.id.get(), &s, &code)) {
                return account_page(
                    &web,
                    &viewer,
                    StatusCode::BAD_REQUEST,
                    context! { totp_error => tr(&viewer, "login.wrong_code") },
                );
            }
            web.app.store.set_totp(&viewer.actor(), viewer.person.id, None).await?;
            sign_in(&web, &viewer.person, false, &viewer.address, "/account".into()).await
        }
        _ => Err(WebError::BadRequest("unknown step".into())),
    }
}

/// Why a one-time link could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Random(#[from] RandomFailed),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LinkError> for WebError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Random(e) => e.into(),
            LinkError::Store(e) => e.into(),
        }
    }
}

/// Creates the one-time setup link for an empty store and returns its path; `serve`
/// prints it. Valid for a day; a restart makes a new one and voids the old.
pub async fn setup_link(store: &Store) -> Result<Option<String>, LinkError> {
    if !store.has_no_people().await? {
        return Ok(None);
    }
    let token = secret::token::<32>("")?;
    store
        .create_web_link(LinkPurpose::Setup, None, &secret::hash(&token), iks_domain::time::now() + Duration::hours(24))
        .await?;
    Ok(Some(format!("/setup/{token}")))
}

/// Creates a link with which `person` sets their own password (valid 72 hours).
pub async fn password_link_for(store: &Store, person: PersonId) -> Result<String, LinkError> {
    let token = secret::token::<32>("")?;
    store
        .create_web_link(
            LinkPurpose::Password,
            Some(person),
            &secret::hash(&token),
            iks_domain::time::now() + Duration::hours(72),
        )
        .await?;
    Ok(format!("/password/{token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_are_checked() {
        assert_eq!(password_problem("ivanov", "short", "short"), Some("password.too_short"));
        assert_eq!(password_problem("ivanov12345", "IVANOV12345", "IVANOV12345"), Some("password.is_login"));
        assert_eq!(password_problem("ivanov", "long enough 1", "long enough 2"), Some("password.mismatch"));
        assert_eq!(password_problem("ivanov", "long enough 1", "long enough 1"), None);
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/tickets/5".into()), Role::Customer), "/tickets/5");
        assert_eq!(safe_next(Some("//evil.example/".into()), Role::Customer), "/access");
        assert_eq!(safe_next(Some("https://evil.example/".into()), Role::Operator), "/queue");
        assert_eq!(safe_next(Some("/login".into()), Role::Auditor), "/sessions");
        assert_eq!(safe_next(None, Role::Admin), "/admin/orgs");
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(h.clone())).await.unwrap());
        assert!(!verify_password("wrong horse".into(), Some(h)).await.unwrap());
        assert!(!verify_password("not a password".into(), None).await.unwrap(), "the dummy hash never signs anyone in");
    }
}
