//! Organisations, boxes, people and their SSH keys.

use serde_json::json;
use sqlx::any::AnyRow;

use super::{Result, RowExt, Store, StoreError, conflict_on_unique, parse_enum};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::{BoxId, KeyId, OrgId, PersonId};
use iks_domain::model::{BoxAuth, IksBox, NewBox, NewOrg, NewPerson, NewSshKey, Organisation, Person, Role, SshKey};
use iks_domain::rules::{Inn, OrgFacts};
use iks_domain::time::{date_to_db, now, to_db};

pub(super) const ORG_COLUMNS: &str =
    "id, inn, name, purchased_on, module_paid_until, trial_started_on, partner, created_at, updated_at";
pub(super) const BOX_COLUMNS: &str = "id, org_id, name, product, version, address, login, host_key, auth_method, \
                           allow_forwarding, created_at, updated_at";
pub(super) const PERSON_COLUMNS: &str =
    "id, login, display_name, role, org_id, email, disabled_at, created_at, updated_at";
const KEY_COLUMNS: &str = "id, person_id, fingerprint, public_key, comment, created_at";

pub(super) fn org_from_row(r: &AnyRow) -> Result<Organisation> {
    let inn = r.text("inn")?;
    Ok(Organisation {
        id: OrgId(r.int("id")?),
        inn: Inn::parse(&inn).map_err(|e| StoreError::Corrupt(format!("inn = '{inn}': {e}")))?,
        name: r.text("name")?,
        facts: OrgFacts {
            purchased_on: r.opt_date("purchased_on")?,
            module_paid_until: r.opt_date("module_paid_until")?,
            trial_started_on: r.opt_date("trial_started_on")?,
            partner: r.flag("partner")?,
        },
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(super) fn box_from_row(r: &AnyRow) -> Result<IksBox> {
    Ok(IksBox {
        id: BoxId(r.int("id")?),
        org_id: OrgId(r.int("org_id")?),
        name: r.text("name")?,
        product: r.text("product")?,
        version: r.text("version")?,
        address: r.opt_text("address")?,
        login: r.text("login")?,
        host_key: r.opt_text("host_key")?,
        auth: parse_enum("auth_method", &r.text("auth_method")?, BoxAuth::parse)?,
        allow_forwarding: r.flag("allow_forwarding")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(super) fn person_from_row(r: &AnyRow) -> Result<Person> {
    Ok(Person {
        id: PersonId(r.int("id")?),
        login: r.text("login")?,
        display_name: r.text("display_name")?,
        role: parse_enum("role", &r.text("role")?, Role::parse)?,
        org_id: r.opt_int("org_id")?.map(OrgId),
        email: r.opt_text("email")?,
        disabled_at: r.opt_time("disabled_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

fn key_from_row(r: &AnyRow) -> Result<SshKey> {
    Ok(SshKey {
        id: KeyId(r.int("id")?),
        person_id: PersonId(r.int("person_id")?),
        fingerprint: r.text("fingerprint")?,
        public_key: r.text("public_key")?,
        comment: r.text("comment")?,
        created_at: r.time("created_at")?,
    })
}

/// The fields that differ between two versions of a record, as `{field: [old, new]}`,
/// for the audit event of an update.
pub(super) fn changes<T: serde::Serialize>(before: &T, after: &T) -> serde_json::Value {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return json!({});
    };
    let changed: serde_json::Map<_, _> = b
        .iter()
        .filter(|(k, v)| k.as_str() != "updated_at" && a.get(k.as_str()) != Some(v))
        .map(|(k, v)| (k.clone(), json!([a.get(k.as_str()), v])))
        .collect();
    serde_json::Value::Object(changed)
}

impl Store {
    // ----- organisations -----

    pub async fn create_org(&self, actor: &Actor, new: &NewOrg) -> Result<Organisation> {
        let mut tx = self.begin().await?;
        let t = to_db(now());
        let f = &new.facts;
        let row = sqlx::query(&format!(
            "INSERT INTO organisations (inn, name, purchased_on, module_paid_until, trial_started_on, partner, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {ORG_COLUMNS}"
        ))
        .bind(new.inn.as_str())
        .bind(&new.name)
        .bind(f.purchased_on.map(date_to_db))
        .bind(f.module_paid_until.map(date_to_db))
        .bind(f.trial_started_on.map(date_to_db))
        .bind(i64::from(f.partner))
        .bind(&t)
        .fetch_one(tx.conn())
        .await
        .map_err(|e| conflict_on_unique(e, || format!("an organisation with INN {} already exists", new.inn)))?;
        let org = org_from_row(&row)?;
        tx.audit(NewEvent::new(actor, "org.create", Subjects { org: Some(org.id), ..Default::default() }, json!(org)))
            .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Stores a changed organisation (name and category facts; the INN is its identity).
    pub async fn update_org(&self, actor: &Actor, org: &Organisation) -> Result<Organisation> {
        let before = self.org(org.id).await?;
        let mut tx = self.begin().await?;
        let f = &org.facts;
        let row = sqlx::query(&format!(
            "UPDATE organisations SET name = $2, purchased_on = $3, module_paid_until = $4, trial_started_on = $5, \
             partner = $6, updated_at = $7 WHERE id = $1 RETURNING {ORG_COLUMNS}"
        ))
        .bind(org.id.get())
        .bind(&org.name)
        .bind(f.purchased_on.map(date_to_db))
        .bind(f.module_paid_until.map(date_to_db))
        .bind(f.trial_started_on.map(date_to_db))
        .bind(i64::from(f.partner))
        .bind(to_db(now()))
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found("organisation", org.id))?;
        let after = org_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "org.update",
            Subjects { org: Some(org.id), ..Default::default() },
            changes(&before, &after),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn org(&self, id: OrgId) -> Result<Organisation> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organisations WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| not_found("organisation", id))?;
        org_from_row(&row)
    }

    pub async fn org_by_inn(&self, inn: &Inn) -> Result<Organisation> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organisations WHERE inn = $1"))
            .bind(inn.as_str())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "organisation with INN", key: inn.to_string() })?;
        org_from_row(&row)
    }

    pub async fn list_orgs(&self) -> Result<Vec<Organisation>> {
        sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organisations ORDER BY name, id"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(org_from_row)
            .collect()
    }

    // ----- boxes -----

    pub async fn create_box(&self, actor: &Actor, new: &NewBox) -> Result<IksBox> {
        let org = self.org(new.org_id).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO boxes (org_id, name, product, version, address, login, host_key, auth_method, \
             allow_forwarding, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             RETURNING {BOX_COLUMNS}"
        ))
        .bind(new.org_id.get())
        .bind(&new.name)
        .bind(&new.product)
        .bind(&new.version)
        .bind(new.address.as_deref())
        .bind(&new.login)
        .bind(new.host_key.as_deref())
        .bind(new.auth.as_str())
        .bind(i64::from(new.allow_forwarding))
        .bind(to_db(now()))
        .fetch_one(tx.conn())
        .await
        .map_err(|e| conflict_on_unique(e, || format!("{} already has a box named '{}'", org.name, new.name)))?;
        let b = box_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "box.create",
            Subjects { org: Some(b.org_id), box_: Some(b.id), ..Default::default() },
            json!(b),
        ))
        .await?;
        tx.commit().await?;
        Ok(b)
    }

    /// Stores a changed box; its organisation cannot change.
    pub async fn update_box(&self, actor: &Actor, b: &IksBox) -> Result<IksBox> {
        let before = self.get_box(b.id).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE boxes SET name = $2, product = $3, version = $4, address = $5, login = $6, host_key = $7, \
             auth_method = $8, allow_forwarding = $9, updated_at = $10 WHERE id = $1 RETURNING {BOX_COLUMNS}"
        ))
        .bind(b.id.get())
        .bind(&b.name)
        .bind(&b.product)
        .bind(&b.version)
        .bind(b.address.as_deref())
        .bind(&b.login)
        .bind(b.host_key.as_deref())
        .bind(b.auth.as_str())
        .bind(i64::from(b.allow_forwarding))
        .bind(to_db(now()))
        .fetch_optional(tx.conn())
        .await
        .map_err(|e| conflict_on_unique(e, || format!("the organisation already has a box named '{}'", b.name)))?
        .ok_or_else(|| not_found("box", b.id))?;
        let after = box_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "box.update",
            Subjects { org: Some(after.org_id), box_: Some(after.id), ..Default::default() },
            changes(&before, &after),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn get_box(&self, id: BoxId) -> Result<IksBox> {
        let row = sqlx::query(&format!("SELECT {BOX_COLUMNS} FROM boxes WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| not_found("box", id))?;
        box_from_row(&row)
    }

    pub async fn box_by_name(&self, org: OrgId, name: &str) -> Result<IksBox> {
        let row = sqlx::query(&format!("SELECT {BOX_COLUMNS} FROM boxes WHERE org_id = $1 AND name = $2"))
            .bind(org.get())
            .bind(name)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "box named", key: format!("'{name}' in this organisation") })?;
        box_from_row(&row)
    }

    /// Boxes of one organisation, or of all when `org` is `None`.
    pub async fn list_boxes(&self, org: Option<OrgId>) -> Result<Vec<IksBox>> {
        sqlx::query(&format!("SELECT {BOX_COLUMNS} FROM boxes WHERE ($1 IS NULL OR org_id = $1) ORDER BY org_id, name"))
            .bind(org.map(OrgId::get))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(box_from_row)
            .collect()
    }

    // ----- people -----

    pub async fn create_person(&self, actor: &Actor, new: &NewPerson) -> Result<Person> {
        if let Some(org) = new.org_id {
            self.org(org).await?;
        }
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO people (login, display_name, role, org_id, email, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {PERSON_COLUMNS}"
        ))
        .bind(&new.login)
        .bind(&new.display_name)
        .bind(new.role.as_str())
        .bind(new.org_id.map(OrgId::get))
        .bind(new.email.as_deref())
        .bind(to_db(now()))
        .fetch_one(tx.conn())
        .await
        .map_err(|e| conflict_on_unique(e, || format!("the login '{}' is taken", new.login)))?;
        let p = person_from_row(&row)?;
        tx.audit(NewEvent::new(actor, "person.create", Subjects { org: p.org_id, ..Default::default() }, json!(p)))
            .await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Stores a changed person (name, e-mail, disabled); role and organisation are fixed.
    pub async fn update_person(&self, actor: &Actor, p: &Person) -> Result<Person> {
        let before = self.person(p.id).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE people SET display_name = $2, email = $3, disabled_at = $4, updated_at = $5 \
             WHERE id = $1 RETURNING {PERSON_COLUMNS}"
        ))
        .bind(p.id.get())
        .bind(&p.display_name)
        .bind(p.email.as_deref())
        .bind(p.disabled_at.map(to_db))
        .bind(to_db(now()))
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found("person", p.id))?;
        let after = person_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "person.update",
            Subjects { org: after.org_id, ..Default::default() },
            json!({ "person": after.id, "login": after.login, "changes": changes(&before, &after) }),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn person(&self, id: PersonId) -> Result<Person> {
        let row = sqlx::query(&format!("SELECT {PERSON_COLUMNS} FROM people WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| not_found("person", id))?;
        person_from_row(&row)
    }

    pub async fn person_by_login(&self, login: &str) -> Result<Person> {
        let row = sqlx::query(&format!("SELECT {PERSON_COLUMNS} FROM people WHERE login = $1"))
            .bind(login)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "person with login", key: format!("'{login}'") })?;
        person_from_row(&row)
    }

    /// People with a role, or everyone; optionally only one organisation's.
    pub async fn list_people(&self, role: Option<Role>, org: Option<OrgId>) -> Result<Vec<Person>> {
        sqlx::query(&format!(
            "SELECT {PERSON_COLUMNS} FROM people WHERE ($1 IS NULL OR role = $1) AND ($2 IS NULL OR org_id = $2) \
             ORDER BY login"
        ))
        .bind(role.map(Role::as_str))
        .bind(org.map(OrgId::get))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(person_from_row)
        .collect()
    }

    // ----- SSH keys -----

    pub async fn add_ssh_key(&self, actor: &Actor, person: PersonId, key: &NewSshKey) -> Result<SshKey> {
        let p = self.person(person).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO ssh_keys (person_id, fingerprint, public_key, comment, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"
        ))
        .bind(person.get())
        .bind(&key.fingerprint)
        .bind(&key.public_key)
        .bind(&key.comment)
        .bind(to_db(now()))
        .fetch_one(tx.conn())
        .await
        .map_err(|e| conflict_on_unique(e, || format!("the key {} is already registered", key.fingerprint)))?;
        let k = key_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "person.key.add",
            Subjects { org: p.org_id, ..Default::default() },
            json!({ "person": p.id, "login": p.login, "key": k.id, "fingerprint": k.fingerprint, "comment": k.comment }),
        ))
        .await?;
        tx.commit().await?;
        Ok(k)
    }

    pub async fn remove_ssh_key(&self, actor: &Actor, key: KeyId) -> Result<SshKey> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("DELETE FROM ssh_keys WHERE id = $1 RETURNING {KEY_COLUMNS}"))
            .bind(key.get())
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| not_found("SSH key", key))?;
        let k = key_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "person.key.remove",
            Subjects::default(),
            json!({ "person": k.person_id, "key": k.id, "fingerprint": k.fingerprint }),
        ))
        .await?;
        tx.commit().await?;
        Ok(k)
    }

    pub async fn ssh_keys_of(&self, person: PersonId) -> Result<Vec<SshKey>> {
        sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM ssh_keys WHERE person_id = $1 ORDER BY id"))
            .bind(person.get())
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    /// The enabled operator a key belongs to, if any: how the SSH front identifies engineers.
    pub async fn operator_by_key_fingerprint(&self, fingerprint: &str) -> Result<Option<Person>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM people p JOIN ssh_keys k ON k.person_id = p.id \
             WHERE k.fingerprint = $1 AND p.role = 'operator' AND p.disabled_at IS NULL",
            PERSON_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(fingerprint)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(person_from_row).transpose()
    }
}

pub(crate) fn not_found(what: &'static str, id: impl std::fmt::Display) -> StoreError {
    StoreError::NotFound { what, key: id.to_string() }
}
