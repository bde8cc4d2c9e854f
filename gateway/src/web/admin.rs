//! The gateway admin's pages: organisations (with their category today), people (roles,
//! SSH keys, disabling, password links, resetting the second factor), boxes and API tokens.
//!
//! Only the admin role reaches them (403 for everyone else). Every check is the one the
//! CLI's `iks-gateway admin …` makes (the model's `validate`, the INN's check digits, the
//! product catalogue, the SSH key rules), and every change goes through the store, which
//! audits it with the admin as actor. A form that is refused is shown again with what was
//! typed and the reason.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::NaiveDate;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::auth::LinkError;
use super::error::{WebError, WebResult};
use super::page::tr;
use super::panel::Panel;
use super::viewer::{CsrfForm, Viewer};
use crate::store::{Store, StoreError};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::i18n::{self, Lang};
use iks_domain::ids::{BoxId, KeyId, OrgId, PersonId};
use iks_domain::model::{
    BoxAuth, IksBox, InvalidField, NewBox, NewOrg, NewPerson, NewSshKey, Organisation, Person, Role,
};
use iks_domain::rules::{Inn, OrgFacts, Standing, standing};

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/admin/orgs", get(orgs).post(create_org))
        .route("/admin/orgs/{id}", get(org).post(update_org))
        .route("/admin/people", get(people).post(create_person))
        .route("/admin/people/{id}", get(person))
        .route("/admin/people/{id}/state", post(person_state))
        .route("/admin/people/{id}/keys", post(add_keys))
        .route("/admin/people/{id}/keys/{key}/remove", post(remove_key))
        .route("/admin/people/{id}/password-link", post(new_password_link))
        .route("/admin/people/{id}/totp-reset", post(reset_totp))
        .route("/admin/boxes", get(boxes).post(create_box))
        .route("/admin/boxes/{id}", get(show_box).post(update_box))
        .route("/admin/tokens", get(tokens).post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
}

/// Creates a one-time link with which `person` sets their panel password, and records who
/// issued it (`person.password_link`). Returns the link's path; the panel and
/// `iks-gateway admin person password-link` put the gateway's address in front.
pub async fn password_link(store: &Store, actor: &Actor, person: &Person) -> Result<String, LinkError> {
    let path = super::auth::password_link_for(store, person.id).await?;
    let subjects = Subjects { org: person.org_id, ..Default::default() };
    let details = serde_json::json!({ "person": person.id, "login": person.login });
    store.append_event(NewEvent::new(actor, "person.password_link", subjects, details)).await?;
    Ok(path)
}

fn admin(viewer: &Viewer) -> WebResult<()> {
    viewer.require(&[Role::Admin])
}

/// A refused form field as the page shows it: the field's label and the reason.
fn field_error(viewer: &Viewer, e: &InvalidField) -> String {
    format!("{}: {}", tr(viewer, &format!("admin.field.{}", e.field)), e.reason)
}

/// Renders `template` with a 400 when `error` is set (the form is shown again).
fn form_page(web: &Panel, viewer: &Viewer, template: &str, error: Option<String>, ctx: Value) -> WebResult {
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut res = web.page(viewer, template, context! { error, ..ctx })?;
    *res.status_mut() = status;
    Ok(res)
}

/// Why a form's change was not made: a refusal shown above the form again, or an error.
enum Refused {
    Field(InvalidField),
    /// The store's refusal, e.g. a taken login or INN.
    Message(String),
    Error(WebError),
}

impl From<InvalidField> for Refused {
    fn from(e: InvalidField) -> Self {
        Self::Field(e)
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Message(m),
            e => Self::Error(e.into()),
        }
    }
}

impl Refused {
    /// The message for the form, or the error that is not the form's.
    fn text(self, viewer: &Viewer) -> WebResult<String> {
        match self {
            Self::Field(e) => Ok(field_error(viewer, &e)),
            Self::Message(m) => Ok(m),
            Self::Error(e) => Err(e),
        }
    }
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

fn parse_date(field: &'static str, s: &str) -> Result<Option<NaiveDate>, InvalidField> {
    opt(s)
        .map(|v| {
            iks_domain::time::parse_date(&v).map_err(|_| InvalidField::new(field, format!("'{v}' is not YYYY-MM-DD")))
        })
        .transpose()
}

// ----- organisations -----

/// The organisation form as typed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct OrgForm {
    #[serde(default)]
    inn: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    purchased_on: String,
    #[serde(default)]
    module_paid_until: String,
    #[serde(default)]
    trial_started_on: String,
    #[serde(default)]
    partner: Option<String>,
}

impl OrgForm {
    fn of(o: &Organisation) -> Self {
        let d = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        Self {
            inn: o.inn.to_string(),
            name: o.name.clone(),
            purchased_on: d(o.facts.purchased_on),
            module_paid_until: d(o.facts.module_paid_until),
            trial_started_on: d(o.facts.trial_started_on),
            partner: o.facts.partner.then(|| "1".into()),
        }
    }

    fn facts(&self) -> Result<OrgFacts, InvalidField> {
        Ok(OrgFacts {
            purchased_on: parse_date("purchased_on", &self.purchased_on)?,
            module_paid_until: parse_date("module_paid_until", &self.module_paid_until)?,
            trial_started_on: parse_date("trial_started_on", &self.trial_started_on)?,
            partner: self.partner.is_some(),
        })
    }
}

/// An organisation's standing today, in the viewer's language.
fn standing_text(lang: Lang, s: &Standing) -> String {
    let t = |key: &str| i18n::text(lang, &format!("admin.standing.{key}"));
    let text = match s {
        Standing::SupportModule { last_day, first_year: true } => t("first_year").replace("{d}", &last_day.to_string()),
        Standing::SupportModule { last_day, .. } => t("module").replace("{d}", &last_day.to_string()),
        Standing::Trial { last_day } => t("trial").replace("{d}", &last_day.to_string()),
        Standing::Partner => t("partner"),
        Standing::ModuleExpired { expired_on } => t("module_expired").replace("{d}", &expired_on.to_string()),
        Standing::TrialEnded { ended_on } => t("trial_ended").replace("{d}", &ended_on.to_string()),
        Standing::NoSupportModule => t("no_module"),
        Standing::FreeEdition => t("free"),
    };
    format!("{} {}: {text}", i18n::text(lang, "admin.category"), s.category().number())
}

#[derive(Serialize)]
struct OrgRow {
    id: i64,
    inn: String,
    name: String,
    standing: String,
    category: u8,
}

async fn orgs_page(web: &Panel, viewer: &Viewer, form: OrgForm, error: Option<String>) -> WebResult {
    let today = iks_domain::time::now().date_naive();
    let rows: Vec<OrgRow> = web
        .app
        .store
        .list_orgs()
        .await?
        .iter()
        .map(|o| {
            let s = standing(&o.facts, false, today);
            OrgRow {
                id: o.id.get(),
                inn: o.inn.to_string(),
                name: o.name.clone(),
                standing: standing_text(viewer.lang, &s),
                category: s.category().number(),
            }
        })
        .collect();
    form_page(web, viewer, "admin/orgs.html", error, context! { rows, form })
}

async fn orgs(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    admin(&viewer)?;
    orgs_page(&web, &viewer, OrgForm::default(), None).await
}

async fn create_org(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<OrgForm>) -> WebResult {
    admin(&viewer)?;
    let made: Result<Organisation, Refused> = async {
        let inn = Inn::parse(&f.inn).map_err(|e| InvalidField::new("inn", e.to_string()))?;
        let new = NewOrg { inn, name: f.name.trim().to_string(), facts: f.facts()? };
        new.validate()?;
        Ok(web.app.store.create_org(&viewer.actor(), &new).await?)
    }
    .await;
    match made {
        Ok(o) => {
            let message = tr(&viewer, "admin.org_created").replace("{name}", &o.name);
            Ok(web.done_with(&format!("/admin/orgs/{}", o.id.get()), &message))
        }
        Err(r) => {
            let error = r.text(&viewer)?;
            orgs_page(&web, &viewer, f, Some(error)).await
        }
    }
}

async fn org_page(web: &Panel, viewer: &Viewer, o: &Organisation, form: OrgForm, error: Option<String>) -> WebResult {
    let s = standing(&o.facts, false, iks_domain::time::now().date_naive());
    let boxes = web.app.store.list_boxes(Some(o.id)).await?;
    let people = web.app.store.list_people(Some(Role::Customer), Some(o.id)).await?;
    let ctx = context! { org => o, standing => standing_text(viewer.lang, &s), form, boxes, people };
    form_page(web, viewer, "admin/org.html", error, ctx)
}

fn parse_id<T: std::str::FromStr>(s: &str) -> WebResult<T> {
    s.parse().map_err(|_| WebError::NotFound)
}

async fn org(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    admin(&viewer)?;
    let o = web.app.store.org(parse_id::<OrgId>(&id)?).await?;
    org_page(&web, &viewer, &o, OrgForm::of(&o), None).await
}

async fn update_org(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<OrgForm>,
) -> WebResult {
    admin(&viewer)?;
    let mut o = web.app.store.org(parse_id::<OrgId>(&id)?).await?;
    let before = o.clone();
    let checked = f.facts().and_then(|facts| {
        o.name = f.name.trim().to_string();
        o.facts = facts;
        NewOrg { inn: o.inn.clone(), name: o.name.clone(), facts: o.facts.clone() }.validate()
    });
    if let Err(e) = checked {
        let error = field_error(&viewer, &e);
        return org_page(&web, &viewer, &before, OrgForm { inn: before.inn.to_string(), ..f }, Some(error)).await;
    }
    let o = web.app.store.update_org(&viewer.actor(), &o).await?;
    Ok(web.done(&viewer, &format!("/admin/orgs/{}", o.id.get()), "admin.saved"))
}

// ----- people -----

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct PeopleQuery {
    #[serde(default)]
    role: String,
    #[serde(default)]
    org: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct PersonForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    org: String,
}

async fn people_page(
    web: &Panel,
    viewer: &Viewer,
    q: PeopleQuery,
    form: PersonForm,
    error: Option<String>,
) -> WebResult {
    let role = Role::parse(&q.role);
    let org = q.org.parse::<OrgId>().ok();
    let people = web.app.store.list_people(role, org).await?;
    let orgs = web.app.store.list_orgs().await?;
    let org_names: std::collections::HashMap<OrgId, String> = orgs.iter().map(|o| (o.id, o.name.clone())).collect();
    let rows: Vec<Value> = people
        .iter()
        .map(|p| {
            context! {
                id => p.id.get(),
                login => p.login,
                name => p.display_name,
                role => p.role.as_str(),
                org => p.org_id.and_then(|o| org_names.get(&o).cloned()),
                disabled => p.disabled_at.is_some(),
            }
        })
        .collect();
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    form_page(web, viewer, "admin/people.html", error, context! { rows, orgs, roles, q, form })
}

async fn people(State(web): State<Arc<Panel>>, viewer: Viewer, Query(q): Query<PeopleQuery>) -> WebResult {
    admin(&viewer)?;
    people_page(&web, &viewer, q, PersonForm::default(), None).await
}

async fn create_person(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<PersonForm>) -> WebResult {
    admin(&viewer)?;
    let made: Result<Person, Refused> = async {
        let role =
            Role::parse(&f.role).ok_or_else(|| InvalidField::new("role", format!("'{}' is not a role", f.role)))?;
        let org = match opt(&f.org) {
            Some(o) => Some(o.parse::<OrgId>().map_err(|e| InvalidField::new("org", e.to_string()))?),
            None => None,
        };
        let new = NewPerson {
            login: f.login.trim().to_string(),
            display_name: f.name.trim().to_string(),
            role,
            org_id: org,
            email: opt(&f.email),
        };
        new.validate()?;
        if let Some(org) = org {
            // A form field naming an organisation that does not exist is refused like any other.
            web.app.store.org(org).await.map_err(|_| InvalidField::new("org", format!("no organisation {org}")))?;
        }
        Ok(web.app.store.create_person(&viewer.actor(), &new).await?)
    }
    .await;
    match made {
        Ok(p) => {
            let message = tr(&viewer, "admin.person_created").replace("{login}", &p.login);
            Ok(web.done_with(&format!("/admin/people/{}", p.id.get()), &message))
        }
        Err(r) => {
            let error = r.text(&viewer)?;
            people_page(&web, &viewer, PeopleQuery::default(), f, Some(error)).await
        }
    }
}

/// The person page; `shown` holds a freshly made password link (shown this once).
async fn person_page(
    web: &Panel,
    viewer: &Viewer,
    p: &Person,
    shown: Option<String>,
    keys_typed: &str,
    error: Option<String>,
) -> WebResult {
    let keys = web.app.store.ssh_keys_of(p.id).await?;
    let org = match p.org_id {
        Some(o) => Some(web.app.store.org(o).await?),
        None => None,
    };
    let totp_on = web.app.store.credentials(&p.login).await?.is_some_and(|c| c.totp_secret.is_some());
    let ctx = context! {
        person => p,
        role => p.role.as_str(),
        org,
        keys,
        totp_on,
        link => shown,
        keys_typed,
        is_operator => p.role == Role::Operator,
        is_me => p.id == viewer.person.id,
    };
    form_page(web, viewer, "admin/person.html", error, ctx)
}

async fn the_person(web: &Panel, id: &str) -> WebResult<Person> {
    Ok(web.app.store.person(parse_id::<PersonId>(id)?).await?)
}

async fn person(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    admin(&viewer)?;
    let p = the_person(&web, &id).await?;
    person_page(&web, &viewer, &p, None, "", None).await
}

#[derive(Deserialize)]
struct StateForm {
    /// `disable` or `enable`.
    to: String,
}

async fn person_state(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<StateForm>,
) -> WebResult {
    admin(&viewer)?;
    let mut p = the_person(&web, &id).await?;
    let (disabled_at, message) = match f.to.as_str() {
        "disable" if p.id == viewer.person.id => {
            return person_page(&web, &viewer, &p, None, "", Some(tr(&viewer, "admin.not_yourself"))).await;
        }
        "disable" => (p.disabled_at.or_else(|| Some(iks_domain::time::now())), "admin.disabled"),
        "enable" => (None, "admin.enabled"),
        other => return Err(WebError::BadRequest(format!("'{other}' is neither disable nor enable"))),
    };
    p.disabled_at = disabled_at;
    let p = web.app.store.update_person(&viewer.actor(), &p).await?;
    Ok(web.done(&viewer, &format!("/admin/people/{}", p.id.get()), message))
}

#[derive(Deserialize)]
struct KeysForm {
    #[serde(default)]
    keys: String,
}

/// The keys pasted: one OpenSSH public key per line (blank lines and `#` comments skipped),
/// each checked as `iks-gateway admin key add` checks them, all before any is stored.
fn parse_keys(text: &str) -> Result<Vec<NewSshKey>, InvalidField> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if lines.is_empty() {
        return Err(InvalidField::new("ssh_key", "empty; paste a line like 'ssh-ed25519 AAAA… comment'"));
    }
    lines
        .into_iter()
        .map(|(n, line)| {
            NewSshKey::parse(line).map_err(|e| InvalidField::new("ssh_key", format!("line {n}: {}", e.reason)))
        })
        .collect()
}

async fn add_keys(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<KeysForm>,
) -> WebResult {
    admin(&viewer)?;
    let p = the_person(&web, &id).await?;
    let keys = if p.role == Role::Operator {
        parse_keys(&f.keys).map_err(|e| field_error(&viewer, &e))
    } else {
        Err(tr(&viewer, "admin.keys_operators_only"))
    };
    let keys = match keys {
        Ok(k) => k,
        Err(error) => return person_page(&web, &viewer, &p, None, &f.keys, Some(error)).await,
    };
    for k in &keys {
        if let Err(e) = web.app.store.add_ssh_key(&viewer.actor(), p.id, k).await {
            let error = Refused::from(e).text(&viewer)?;
            return person_page(&web, &viewer, &p, None, &f.keys, Some(error)).await;
        }
    }
    Ok(web.done(&viewer, &format!("/admin/people/{}", p.id.get()), "admin.keys_added"))
}

async fn remove_key(
    State(web): State<Arc<Panel>>,
    Path((id, key)): Path<(String, String)>,
    CsrfForm(viewer, _): CsrfForm<Empty>,
) -> WebResult {
    admin(&viewer)?;
    let p = the_person(&web, &id).await?;
    let key = parse_id::<KeyId>(&key)?;
    // Only a key of this person: the URL cannot reach someone else's.
    if !web.app.store.ssh_keys_of(p.id).await?.iter().any(|k| k.id == key) {
        return Err(WebError::NotFound);
    }
    web.app.store.remove_ssh_key(&viewer.actor(), key).await?;
    Ok(web.done(&viewer, &format!("/admin/people/{}", p.id.get()), "admin.key_removed"))
}

#[derive(Deserialize)]
struct Empty {}

async fn new_password_link(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, _): CsrfForm<Empty>,
) -> WebResult {
    admin(&viewer)?;
    let p = the_person(&web, &id).await?;
    let path = password_link(&web.app.store, &viewer.actor(), &p).await?;
    let link = format!("{}{path}", web.app.config.http.base_url(web.app.config.http.listen));
    person_page(&web, &viewer, &p, Some(link), "", None).await
}

async fn reset_totp(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, _): CsrfForm<Empty>,
) -> WebResult {
    admin(&viewer)?;
    let p = the_person(&web, &id).await?;
    web.app.store.set_totp(&viewer.actor(), p.id, None).await?;
    Ok(web.done(&viewer, &format!("/admin/people/{}", p.id.get()), "admin.totp_reset_done"))
}

// ----- boxes -----

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct BoxForm {
    #[serde(default)]
    org: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    host_key: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    forwarding: Option<String>,
}

impl BoxForm {
    fn of(b: &IksBox) -> Self {
        Self {
            org: b.org_id.get().to_string(),
            name: b.name.clone(),
            product: b.product.clone(),
            version: b.version.clone(),
            address: b.address.clone().unwrap_or_default(),
            login: b.login.clone(),
            host_key: b.host_key.clone().unwrap_or_default(),
            auth: b.auth.as_str().into(),
            forwarding: b.allow_forwarding.then(|| "1".into()),
        }
    }

    /// Applies the form to `b` (all but the organisation, which never changes).
    fn apply(&self, b: &mut IksBox) -> Result<(), InvalidField> {
        b.name = self.name.trim().to_string();
        b.product = self.product.trim().to_string();
        b.version = self.version.trim().to_string();
        b.address = opt(&self.address);
        b.login = self.login.trim().to_string();
        b.host_key = match opt(&self.host_key) {
            // Stored without its comment, as the CLI stores it.
            Some(k) => {
                let mut key = iks_domain::model::parse_public_key("host_key", &k)?;
                key.set_comment("");
                Some(key.to_openssh().map_err(|e| InvalidField::new("host_key", e.to_string()))?.trim().to_string())
            }
            None => None,
        };
        b.auth = BoxAuth::parse(&self.auth)
            .ok_or_else(|| InvalidField::new("auth", format!("'{}' is not certificate or static-key", self.auth)))?;
        b.allow_forwarding = self.forwarding.is_some();
        Ok(())
    }
}

async fn boxes_page(web: &Panel, viewer: &Viewer, form: BoxForm, error: Option<String>) -> WebResult {
    let orgs = web.app.store.list_orgs().await?;
    let names: std::collections::HashMap<OrgId, String> = orgs.iter().map(|o| (o.id, o.name.clone())).collect();
    let rows: Vec<Value> = web
        .app
        .store
        .list_boxes(None)
        .await?
        .iter()
        .map(|b| context! { b => b, org => names.get(&b.org_id).cloned().unwrap_or_default() })
        .collect();
    let ctx = context! { rows, orgs, form, products => web.app.config.products.products(), auths => ["certificate", "static-key"] };
    form_page(web, viewer, "admin/boxes.html", error, ctx)
}

async fn boxes(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    admin(&viewer)?;
    boxes_page(&web, &viewer, BoxForm { auth: "certificate".into(), ..Default::default() }, None).await
}

async fn create_box(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<BoxForm>) -> WebResult {
    admin(&viewer)?;
    let made: Result<IksBox, Refused> = async {
        let org = f.org.parse::<OrgId>().map_err(|_| InvalidField::new("org", "choose the organisation"))?;
        web.app.store.org(org).await.map_err(|_| InvalidField::new("org", format!("no organisation {org}")))?;
        let now = iks_domain::time::now();
        let mut b = IksBox {
            id: BoxId(0),
            org_id: org,
            name: String::new(),
            product: String::new(),
            version: String::new(),
            address: None,
            login: String::new(),
            host_key: None,
            auth: BoxAuth::Certificate,
            allow_forwarding: false,
            created_at: now,
            updated_at: now,
        };
        f.apply(&mut b)?;
        let new = NewBox {
            org_id: org,
            name: b.name,
            product: b.product,
            version: b.version,
            address: b.address,
            login: b.login,
            host_key: b.host_key,
            auth: b.auth,
            allow_forwarding: b.allow_forwarding,
        };
        new.validate(&web.app.config.products)?;
        Ok(web.app.store.create_box(&viewer.actor(), &new).await?)
    }
    .await;
    match made {
        Ok(b) => {
            let message = tr(&viewer, "admin.box_created").replace("{name}", &b.name);
            Ok(web.done_with(&format!("/admin/boxes/{}", b.id.get()), &message))
        }
        Err(r) => {
            let error = r.text(&viewer)?;
            boxes_page(&web, &viewer, f, Some(error)).await
        }
    }
}

async fn box_page(web: &Panel, viewer: &Viewer, b: &IksBox, form: BoxForm, error: Option<String>) -> WebResult {
    let org = web.app.store.org(b.org_id).await?;
    let agent = web.app.store.active_agent(b.id).await?;
    let ctx = context! {
        b => b,
        org,
        agent,
        form,
        products => web.app.config.products.products(),
        auths => ["certificate", "static-key"],
    };
    form_page(web, viewer, "admin/box.html", error, ctx)
}

async fn show_box(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    admin(&viewer)?;
    let b = web.app.store.get_box(parse_id::<BoxId>(&id)?).await?;
    box_page(&web, &viewer, &b, BoxForm::of(&b), None).await
}

async fn update_box(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<BoxForm>,
) -> WebResult {
    admin(&viewer)?;
    let before = web.app.store.get_box(parse_id::<BoxId>(&id)?).await?;
    let mut b = before.clone();
    let checked = f.apply(&mut b).and_then(|()| b.validate(&web.app.config.products));
    let error = match checked {
        Ok(()) => match web.app.store.update_box(&viewer.actor(), &b).await {
            Ok(b) => return Ok(web.done(&viewer, &format!("/admin/boxes/{}", b.id.get()), "admin.saved")),
            Err(e) => Refused::from(e).text(&viewer)?,
        },
        Err(e) => field_error(&viewer, &e),
    };
    box_page(&web, &viewer, &before, f, Some(error)).await
}

// ----- API tokens -----

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    org: String,
}

/// The tokens page; `secret` is a token just made, shown this once.
async fn tokens_page(
    web: &Panel,
    viewer: &Viewer,
    form: TokenForm,
    secret: Option<String>,
    error: Option<String>,
) -> WebResult {
    let orgs = web.app.store.list_orgs().await?;
    let names: std::collections::HashMap<OrgId, String> = orgs.iter().map(|o| (o.id, o.name.clone())).collect();
    let rows: Vec<Value> = web
        .app
        .store
        .list_api_tokens()
        .await?
        .iter()
        .map(|t| context! { t => t, org => t.org_id.and_then(|o| names.get(&o).cloned()) })
        .collect();
    form_page(web, viewer, "admin/tokens.html", error, context! { rows, orgs, form, secret })
}

async fn tokens(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    admin(&viewer)?;
    tokens_page(&web, &viewer, TokenForm::default(), None, None).await
}

async fn create_token(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<TokenForm>) -> WebResult {
    admin(&viewer)?;
    let org = match opt(&f.org) {
        Some(o) => match o.parse::<OrgId>() {
            Ok(id) if web.app.store.org(id).await.is_ok() => Some(id),
            _ => {
                let error = field_error(&viewer, &InvalidField::new("org", format!("no organisation {o}")));
                return tokens_page(&web, &viewer, f, None, Some(error)).await;
            }
        },
        None => None,
    };
    match crate::api::auth::issue(&web.app.store, &viewer.actor(), f.name.trim(), org).await {
        Ok((t, secret)) => {
            tracing::info!(token = t.id, name = %t.name, by = %viewer.person.login, "API token created in the panel");
            tokens_page(&web, &viewer, TokenForm::default(), Some(secret), None).await
        }
        Err(crate::api::auth::IssueError::Invalid(e)) => {
            tokens_page(&web, &viewer, f, None, Some(field_error(&viewer, &e))).await
        }
        Err(crate::api::auth::IssueError::Store(StoreError::Conflict(m))) => {
            tokens_page(&web, &viewer, f, None, Some(m)).await
        }
        Err(e) => {
            tracing::error!(error = %e, "creating an API token failed");
            Err(WebError::Internal)
        }
    }
}

async fn revoke_token(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, _): CsrfForm<Empty>,
) -> WebResult {
    admin(&viewer)?;
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    web.app.store.revoke_api_token(&viewer.actor(), id).await?;
    Ok(web.done(&viewer, "/admin/tokens", "admin.token_revoked"))
}
