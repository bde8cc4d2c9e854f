//! The web panel's sign-ins, passwords, second factors and one-time links.
//!
//! Secrets never reach the database in the clear: sessions and links are stored by the
//! SHA-256 of their token, passwords as Argon2id PHC strings (computed by the caller,
//! off the async runtime). Every sign-in, sign-out and credential change is audited.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyRow;

use super::directory::{PERSON_COLUMNS, not_found, person_from_row};
use super::{Result, RowExt, Store, StoreError, conflict_on_unique};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::PersonId;
use iks_domain::model::{NewPerson, Person, Role};
use iks_domain::time::{now, to_db};

/// A person with what they sign in with.
#[derive(Clone)]
pub struct Credentials {
    pub person: Person,
    /// Argon2id PHC string; `None` until a password is set.
    pub password_hash: Option<String>,
    /// Base32 TOTP secret; `None` when the second factor is off.
    pub totp_secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("person", &self.person.login).finish_non_exhaustive()
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub id: i64,
    pub person: Person,
    /// The token forms must carry (see `web::auth`); not a secret from the person.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When the second factor was given; `None` while it is still asked for.
    pub second_factor_at: Option<DateTime<Utc>>,
    /// Whether the person has TOTP turned on (so the session needs `second_factor_at`).
    pub totp_on: bool,
}

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Creates the first admin of an empty store.
    Setup,
    /// Lets one person set their password.
    Password,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Password => "password",
        }
    }
}

fn person_subjects(p: &Person) -> Subjects {
    Subjects { org: p.org_id, ..Default::default() }
}

const SESSION_COLUMNS: &str = "s.id AS session_id, s.csrf, s.created_at AS session_created_at, s.last_seen_at, \
                               s.second_factor_at, p.totp_secret";

fn web_session_from_row(r: &AnyRow) -> Result<WebSession> {
    Ok(WebSession {
        id: r.int("session_id")?,
        person: person_from_row(r)?,
        csrf: r.text("csrf")?,
        created_at: r.time("session_created_at")?,
        last_seen_at: r.time("last_seen_at")?,
        second_factor_at: r.opt_time("second_factor_at")?,
        totp_on: r.opt_text("totp_secret")?.is_some(),
    })
}

impl Store {
    /// The person signing in as `login`, with their password hash and TOTP secret.
    pub async fn credentials(&self, login: &str) -> Result<Option<Credentials>> {
        sqlx::query(&format!("SELECT {PERSON_COLUMNS}, password_hash, totp_secret FROM people WHERE login = $1"))
            .bind(login)
            .fetch_optional(&self.read)
            .await?
            .map(|r| {
                Ok(Credentials {
                    person: person_from_row(&r)?,
                    password_hash: r.opt_text("password_hash")?,
                    totp_secret: r.opt_text("totp_secret")?,
                })
            })
            .transpose()
    }

    /// Sets (or, with `None`, clears) a person's password hash.
    pub async fn set_password(&self, actor: &Actor, person: PersonId, hash: Option<&str>) -> Result<Person> {
        self.set_secret(actor, person, "password_hash", hash, "person.password").await
    }

    /// Turns the person's TOTP second factor on (with its secret) or off.
    pub async fn set_totp(&self, actor: &Actor, person: PersonId, secret: Option<&str>) -> Result<Person> {
        self.set_secret(actor, person, "totp_secret", secret, "person.totp").await
    }

    async fn set_secret(
        &self,
        actor: &Actor,
        person: PersonId,
        column: &'static str,
        value: Option<&str>,
        action: &'static str,
    ) -> Result<Person> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE people SET {column} = $2, updated_at = $3 WHERE id = $1 RETURNING {PERSON_COLUMNS}"
        ))
        .bind(person.get())
        .bind(value)
        .bind(to_db(now()))
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found("person", person))?;
        let p = person_from_row(&row)?;
        // A changed credential signs the person out everywhere else.
        sqlx::query("UPDATE web_sessions SET ended_at = $2 WHERE person_id = $1 AND ended_at IS NULL")
            .bind(person.get())
            .bind(to_db(now()))
            .execute(tx.conn())
            .await?;
        let state = if value.is_some() { "set" } else { "cleared" };
        tx.audit(NewEvent::new(actor, action, person_subjects(&p), json!({ "login": p.login, "state": state })))
            .await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Starts a browser session for `person`, stored by the hash of its cookie.
    pub async fn create_web_session(
        &self,
        person: &Person,
        token_hash: &str,
        csrf: &str,
        address: &str,
        second_factor_done: bool,
    ) -> Result<()> {
        let at = to_db(now());
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, person_id, csrf, created_at, last_seen_at, second_factor_at, \
             address) VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(person.id.get())
        .bind(csrf)
        .bind(&at)
        .bind(second_factor_done.then_some(&at))
        .bind(address)
        .execute(tx.conn())
        .await?;
        let actor = Actor::person(person.id, &person.login);
        let step = if second_factor_done { "signed in" } else { "password accepted, second factor asked" };
        tx.audit(NewEvent::new(
            &actor,
            "web.login",
            person_subjects(person),
            json!({ "address": address, "step": step }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The open session whose cookie hashes to `token_hash`, with its person.
    pub async fn web_session(&self, token_hash: &str) -> Result<Option<WebSession>> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS}, {} FROM web_sessions s JOIN people p ON p.id = s.person_id \
             WHERE s.token_hash = $1 AND s.ended_at IS NULL",
            PERSON_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(web_session_from_row)
        .transpose()
    }

    /// Notes activity, which pushes back the idle expiry.
    pub async fn touch_web_session(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(id)
            .bind(to_db(at))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Records that the session's person gave their second factor.
    pub async fn confirm_second_factor(&self, s: &WebSession, address: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE web_sessions SET second_factor_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(s.id)
            .bind(to_db(now()))
            .execute(tx.conn())
            .await?;
        let actor = Actor::person(s.person.id, &s.person.login);
        tx.audit(NewEvent::new(
            &actor,
            "web.login",
            person_subjects(&s.person),
            json!({ "address": address, "step": "signed in with a second factor" }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a browser session: `why` is "signed out", "idle", "expired"…
    pub async fn end_web_session(&self, s: &WebSession, why: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let ended = sqlx::query("UPDATE web_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(s.id)
            .bind(to_db(now()))
            .execute(tx.conn())
            .await?
            .rows_affected();
        if ended > 0 {
            let actor = Actor::person(s.person.id, &s.person.login);
            tx.audit(NewEvent::new(&actor, "web.logout", person_subjects(&s.person), json!({ "why": why }))).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Audits a refused sign-in; `login` is what was typed, which may name no one.
    pub async fn record_login_failure(
        &self,
        login: &str,
        person: Option<&Person>,
        address: &str,
        why: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let actor = Actor { kind: iks_domain::audit::ActorKind::System, id: None, name: "web panel".into() };
        let subjects = person.map(person_subjects).unwrap_or_default();
        tx.audit(NewEvent::new(
            &actor,
            "web.login_refused",
            subjects,
            json!({ "login": login, "address": address, "why": why }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a one-time link. A new setup link replaces any unused one.
    pub async fn create_web_link(
        &self,
        purpose: LinkPurpose,
        person: Option<PersonId>,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let at = to_db(now());
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE web_links SET used_at = $2 WHERE purpose = $1 AND used_at IS NULL AND ($3 IS NULL OR person_id = $3)")
            .bind(purpose.as_str())
            .bind(&at)
            .bind(person.map(PersonId::get))
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "INSERT INTO web_links (token_hash, purpose, person_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(person.map(PersonId::get))
        .bind(&at)
        .bind(to_db(expires_at))
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The person a valid, unused link is for (`None` inside for a setup link), or `None`
    /// when the link is unknown, used or expired.
    pub async fn web_link(&self, purpose: LinkPurpose, token_hash: &str) -> Result<Option<Option<PersonId>>> {
        let row = sqlx::query(
            "SELECT person_id FROM web_links WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL \
             AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(to_db(now()))
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| Ok(r.opt_int("person_id")?.map(PersonId))).transpose()
    }

    /// Uses a password link: sets the person's password and spends the link, at once.
    pub async fn use_password_link(&self, token_hash: &str, password_hash: &str) -> Result<Person> {
        let person = self
            .web_link(LinkPurpose::Password, token_hash)
            .await?
            .flatten()
            .ok_or_else(|| StoreError::Conflict("this link was already used or has expired".into()))?;
        let p = self.person(person).await?;
        let actor = Actor::person(p.id, &p.login);
        self.spend_link(token_hash).await?;
        self.set_password(&actor, p.id, Some(password_hash)).await
    }

    /// Uses the setup link: creates the first admin with a password. Refused once any
    /// admin exists, so a leaked old link cannot mint a second one.
    pub async fn use_setup_link(&self, token_hash: &str, new: &NewPerson, password_hash: &str) -> Result<Person> {
        if new.role != Role::Admin {
            return Err(StoreError::Conflict("the setup link creates an admin".into()));
        }
        if self.web_link(LinkPurpose::Setup, token_hash).await?.is_none() {
            return Err(StoreError::Conflict("this setup link was already used or has expired".into()));
        }
        if !self.list_people(Some(Role::Admin), None).await?.is_empty() {
            return Err(StoreError::Conflict("an admin exists already; sign in instead".into()));
        }
        self.spend_link(token_hash).await?;
        let actor = Actor { kind: iks_domain::audit::ActorKind::System, id: None, name: "setup link".into() };
        let p = self.create_person(&actor, new).await?;
        self.set_password(&actor, p.id, Some(password_hash)).await
    }

    async fn spend_link(&self, token_hash: &str) -> Result<()> {
        let spent = sqlx::query("UPDATE web_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
            .bind(token_hash)
            .bind(to_db(now()))
            .execute(&self.write)
            .await
            .map_err(|e| conflict_on_unique(e, || "link".into()))?
            .rows_affected();
        if spent == 0 {
            return Err(StoreError::Conflict("this link was already used".into()));
        }
        Ok(())
    }

    /// Whether the store has no people at all (the first `serve` prints a setup link).
    pub async fn has_no_people(&self) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM people").fetch_one(&self.read).await?;
        Ok(row.int("n")? == 0)
    }
}
