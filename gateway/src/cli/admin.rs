//! `iks-gateway admin …`: organisations, boxes, people and keys.
//!
//! Every argument is checked before anything is written, and a refusal is one line
//! naming the option and why (`--inn: INN check digit 10 is 4, expected 3`).

use std::collections::HashMap;
use std::io::Read as _;

use anyhow::{Context as _, anyhow, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use iks_domain::audit::Actor;
use iks_domain::ids::{BoxId, KeyId, OrgId};
use iks_domain::model::{
    Agent, ApiToken, BoxAuth, IksBox, InvalidField, NewBox, NewOrg, NewPerson, NewSshKey, Organisation, Person, Role,
    check_product,
};
use iks_domain::rules::{Inn, OrgFacts, Standing, standing};
use iks_gateway::api::auth::IssueError;
use iks_gateway::store::{Store, StoreError};
use serde_json::json;

use super::{Context, key_lines};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Print results as JSON (for scripts) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Customer organisations and the facts their support category comes from.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Customers' IKS boxes.
    #[command(name = "box", subcommand)]
    Box_(BoxCommand),
    /// Support engineers, who connect to boxes over SSH.
    #[command(subcommand)]
    Operator(AddOnly),
    /// Customer users, who approve and watch access to their organisation's boxes.
    #[command(subcommand)]
    Customer(AddCustomer),
    /// Auditors: read-only access to every session and the audit log.
    #[command(subcommand)]
    Auditor(AddOnly),
    /// Gateway administrators.
    #[command(name = "admin", subcommand)]
    Admin_(AddOnly),
    /// Everyone: list, show, update, disable.
    #[command(subcommand)]
    Person(PersonCommand),
    /// SSH public keys of operators.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Tokens the helpdesk calls the API with.
    #[command(name = "api-token", subcommand)]
    ApiToken(ApiTokenCommand),
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Create a token. It is printed once: only its hash is kept.
    Create {
        /// A name for the caller, e.g. helpdesk (a-z, 0-9, '-', '_', '.').
        #[arg(long)]
        name: String,
        /// Scope the token to one organisation (INN or ID): it sees only that
        /// organisation's tickets and speaks for the customer.
        #[arg(long)]
        org: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token, by ID or by the name of a token in use; its requests are refused at once.
    Revoke { token: String },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Register an organisation.
    Add {
        /// Taxpayer number: 10 digits (organisation) or 12 (individual entrepreneur).
        #[arg(long)]
        inn: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        facts: FactArgs,
    },
    /// List organisations with their category today.
    List,
    /// Show one organisation (by INN or ID).
    Show { org: String },
    /// Change an organisation's name or category facts; a date of `none` clears it.
    Update {
        org: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        facts: FactArgs,
    },
}

#[derive(Debug, Args)]
struct FactArgs {
    /// Date IKS was bought (YYYY-MM-DD): the support module is included for a year.
    #[arg(long, value_name = "DATE")]
    purchased: Option<String>,
    /// Last day the bought support module covers (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    module_paid_until: Option<String>,
    /// First day of a trial (YYYY-MM-DD); a trial lasts at most 3 months.
    #[arg(long, value_name = "DATE")]
    trial_started: Option<String>,
    /// Whether the organisation is a partner or distributor (category 2).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    partner: Option<bool>,
}

#[derive(Debug, Subcommand)]
enum BoxCommand {
    /// Register a box.
    Add {
        /// The organisation (INN or ID).
        #[arg(long)]
        org: String,
        #[command(flatten)]
        fields: BoxFields,
    },
    /// List boxes, of one organisation or all.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Show one box (ID, or INN/name).
    Show { r#box: String },
    /// Change a box; `--address none` marks it as reached through its agent.
    Update {
        r#box: String,
        #[command(flatten)]
        fields: BoxFields,
    },
}

#[derive(Debug, Args)]
struct BoxFields {
    /// Short name engineers type after the ticket: T-1042+NAME.
    #[arg(long)]
    name: Option<String>,
    /// Product ID from the configuration (iks-standard, iks-fstec, cf-iks-standard, cf-iks-fstec, iks-lite).
    #[arg(long)]
    product: Option<String>,
    /// Version running on the box, e.g. 7 or 7.2.1.
    #[arg(long)]
    version: Option<String>,
    /// HOST:PORT of the box's sshd, when the gateway reaches it directly.
    #[arg(long)]
    address: Option<String>,
    /// Account the gateway logs in as on the box (the certificate's principal).
    #[arg(long)]
    login: Option<String>,
    /// The box's sshd host key to pin: a public key line or a file holding one
    /// (e.g. /etc/ssh/ssh_host_ed25519_key.pub, or a line of `ssh-keyscan`).
    #[arg(long, value_name = "KEY|FILE")]
    host_key: Option<String>,
    /// How the gateway authenticates to the box.
    #[arg(long, value_name = "METHOD", value_parser = ["certificate", "static-key"])]
    auth: Option<String>,
    /// Allow engineers' port forwarding on this box (off by default: it bypasses recording).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    allow_forwarding: Option<bool>,
}

#[derive(Debug, Args)]
struct PersonFields {
    /// Login: a-z, 0-9, '-', '_', '.'.
    #[arg(long)]
    login: String,
    /// Full name, as shown in the panel and the audit log.
    #[arg(long)]
    name: String,
    #[arg(long)]
    email: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AddOnly {
    /// Add one.
    Add {
        #[command(flatten)]
        person: PersonFields,
        /// SSH public key file (`-` for stdin); several keys, one per line, are accepted.
        #[arg(long, value_name = "FILE")]
        ssh_key: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AddCustomer {
    /// Add a customer user to an organisation.
    Add {
        /// The organisation (INN or ID).
        #[arg(long)]
        org: String,
        #[command(flatten)]
        person: PersonFields,
    },
}

#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// List people.
    List {
        #[arg(long, value_parser = ["operator", "customer", "auditor", "admin"])]
        role: Option<String>,
        /// Only this organisation's customer users (INN or ID).
        #[arg(long)]
        org: Option<String>,
    },
    /// Show a person and their keys.
    Show { login: String },
    /// Change a person's name or e-mail, or disable/enable them.
    Update {
        login: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Refuse all access from now on (sessions, panel) until enabled again.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Print a one-time link (valid 72 hours) with which the person sets their panel
    /// password; earlier links for them stop working.
    PasswordLink { login: String },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Register SSH public keys for an operator.
    Add {
        login: String,
        /// SSH public key file (`-` for stdin).
        #[arg(long, value_name = "FILE", required = true)]
        ssh_key: Vec<String>,
    },
    /// List an operator's keys.
    List { login: String },
    /// Remove a key (by key ID or SHA256 fingerprint).
    Remove { login: String, key: String },
}

pub async fn run(ctx: &Context, args: AdminArgs) -> anyhow::Result<()> {
    let out = Output { json: args.json };
    let actor = Actor::cli();
    let store = ctx.store().await?;
    let catalog = &ctx.config.products;
    match args.command {
        AdminCommand::Org(cmd) => match cmd {
            OrgCommand::Add { inn, name, facts } => {
                let new = NewOrg { inn: parse_inn("--inn", &inn)?, name, facts: facts.apply(OrgFacts::default())? };
                new.validate().map_err(flag_error)?;
                let org = store.create_org(&actor, &new).await?;
                out.org(&org, "created ")
            }
            OrgCommand::List => {
                let orgs = store.list_orgs().await?;
                if out.json {
                    return out.print_json(&orgs.iter().map(org_json).collect::<Vec<_>>());
                }
                for org in &orgs {
                    out!("{:>4}  {}  {:<40}  {}", org.id, org.inn, org.name, describe(&standing_today(org)));
                }
                Ok(())
            }
            OrgCommand::Show { org } => {
                let org = resolve_org(&store, &org).await?;
                out.org(&org, "")?;
                if !out.json {
                    for b in store.list_boxes(Some(org.id)).await? {
                        out!("  box {}: {} ({} {}, {})", b.id, b.name, b.product, b.version, reach(&b));
                    }
                }
                Ok(())
            }
            OrgCommand::Update { org, name, facts } => {
                let mut org = resolve_org(&store, &org).await?;
                if let Some(name) = name {
                    org.name = name;
                }
                org.facts = facts.apply(org.facts)?;
                NewOrg { inn: org.inn.clone(), name: org.name.clone(), facts: org.facts.clone() }
                    .validate()
                    .map_err(flag_error)?;
                let org = store.update_org(&actor, &org).await?;
                out.org(&org, "updated ")
            }
        },
        AdminCommand::Box_(cmd) => match cmd {
            BoxCommand::Add { org, fields } => {
                let org = resolve_org(&store, &org).await?;
                let new = NewBox {
                    org_id: org.id,
                    name: fields.name.clone().ok_or_else(|| anyhow!("--name is required"))?,
                    product: fields.product.clone().ok_or_else(|| anyhow!("--product is required"))?,
                    version: fields.version.clone().ok_or_else(|| anyhow!("--version is required"))?,
                    address: fields.address.clone().filter(|a| a != "none"),
                    login: fields.login.clone().ok_or_else(|| anyhow!("--login is required"))?,
                    host_key: fields.host_key.as_deref().map(read_host_key).transpose()?,
                    auth: fields.auth.as_deref().and_then(BoxAuth::parse).unwrap_or(BoxAuth::Certificate),
                    allow_forwarding: fields.allow_forwarding.unwrap_or(false),
                };
                new.validate(catalog).map_err(flag_error)?;
                let b = store.create_box(&actor, &new).await?;
                out.iks_box(&b, &org, "created ")
            }
            BoxCommand::List { org } => {
                let org = resolve_org_filter(&store, org.as_deref()).await?;
                let boxes = store.list_boxes(org).await?;
                let agents: HashMap<BoxId, Agent> =
                    store.active_agents().await?.into_iter().map(|a| (a.box_id, a)).collect();
                if out.json {
                    let list: Vec<_> = boxes.iter().map(|b| box_json(b, agents.get(&b.id))).collect();
                    return out.print_json(&list);
                }
                for b in &boxes {
                    let reached = match (&b.address, agents.get(&b.id)) {
                        (Some(a), _) => a.clone(),
                        (None, agent) => agent_state(agent, ctx.config.hours.timezone),
                    };
                    out!("{:>4}  org {:<4} {:<20} {} {:<8} {reached}", b.id, b.org_id, b.name, b.product, b.version);
                }
                Ok(())
            }
            BoxCommand::Show { r#box } => {
                let b = resolve_box(&store, &r#box).await?;
                let org = store.org(b.org_id).await?;
                let agent = store.active_agent(b.id).await?;
                if out.json {
                    return out.print_json(&box_json(&b, agent.as_ref()));
                }
                out.iks_box(&b, &org, "")?;
                if b.address.is_none() || agent.is_some() {
                    out!("  agent:            {}", agent_state(agent.as_ref(), ctx.config.hours.timezone));
                    if let Some(a) = &agent {
                        out!(
                            "                    {} key {}, enrolled {}",
                            a.agent_version
                                .as_deref()
                                .map_or_else(|| "iks-agent".to_string(), |v| format!("iks-agent {v}")),
                            a.key_fingerprint,
                            iks_domain::time::display(a.enrolled_at, ctx.config.hours.timezone)
                        );
                        out!(
                            "  remote access:    {}",
                            if a.remote_access_disabled { "disabled by the customer on the box" } else { "allowed" }
                        );
                    }
                }
                if b.auth == BoxAuth::StaticKey && !out.json {
                    // The fallback key is generated on first use and never leaves the data dir.
                    let key = ctx.data_dir.key(iks_gateway::datadir::KeyRole::BoxStatic(b.id))?;
                    out!("  static key:       {}", key.public_key().to_openssh()?);
                    out!("                    (add it to ~{}/.ssh/authorized_keys on the box)", b.login);
                }
                Ok(())
            }
            BoxCommand::Update { r#box, fields } => {
                let mut b = resolve_box(&store, &r#box).await?;
                fields.apply(&mut b)?;
                b.validate(catalog).map_err(flag_error)?;
                check_product(catalog, &b.product, &b.version).map_err(flag_error)?;
                let b = store.update_box(&actor, &b).await?;
                let org = store.org(b.org_id).await?;
                out.iks_box(&b, &org, "updated ")
            }
        },
        AdminCommand::Operator(AddOnly::Add { person, ssh_key }) => {
            add_person(&store, &actor, &out, person, Role::Operator, None, &ssh_key).await
        }
        AdminCommand::Auditor(AddOnly::Add { person, ssh_key }) => {
            add_person(&store, &actor, &out, person, Role::Auditor, None, &ssh_key).await
        }
        AdminCommand::Admin_(AddOnly::Add { person, ssh_key }) => {
            add_person(&store, &actor, &out, person, Role::Admin, None, &ssh_key).await
        }
        AdminCommand::Customer(AddCustomer::Add { org, person }) => {
            let org = resolve_org(&store, &org).await?;
            add_person(&store, &actor, &out, person, Role::Customer, Some(org.id), &[]).await
        }
        AdminCommand::Person(cmd) => match cmd {
            PersonCommand::List { role, org } => {
                let org = resolve_org_filter(&store, org.as_deref()).await?;
                let people = store.list_people(role.as_deref().and_then(Role::parse), org).await?;
                if out.json {
                    return out.print_json(&people);
                }
                for p in &people {
                    let state = if p.disabled_at.is_some() { "  (disabled)" } else { "" };
                    out!("{:>4}  {:<9} {:<20} {}{state}", p.id, p.role.as_str(), p.login, p.display_name);
                }
                Ok(())
            }
            PersonCommand::Show { login } => {
                let p = store.person_by_login(&login).await?;
                out.person(&store, &p, "").await
            }
            PersonCommand::Update { login, name, email, disable, enable } => {
                let mut p = store.person_by_login(&login).await?;
                if let Some(name) = name {
                    p.display_name = name;
                }
                if let Some(email) = email {
                    p.email = Some(email).filter(|e| e != "none");
                }
                if disable {
                    p.disabled_at = p.disabled_at.or_else(|| Some(iks_domain::time::now()));
                }
                if enable {
                    p.disabled_at = None;
                }
                NewPerson {
                    login: p.login.clone(),
                    display_name: p.display_name.clone(),
                    role: p.role,
                    org_id: p.org_id,
                    email: p.email.clone(),
                }
                .validate()
                .map_err(flag_error)?;
                let p = store.update_person(&actor, &p).await?;
                out.person(&store, &p, "updated ").await
            }
            PersonCommand::PasswordLink { login } => {
                let p = store.person_by_login(&login).await?;
                let path = iks_gateway::web::admin::password_link(&store, &actor, &p).await?;
                let link = format!("{}{path}", ctx.config.http.base_url(ctx.config.http.listen));
                if out.json {
                    return out.print_json(&json!({ "login": p.login, "link": link }));
                }
                out!("{link}");
                Ok(())
            }
        },
        AdminCommand::Key(cmd) => match cmd {
            KeyCommand::Add { login, ssh_key } => {
                let p = operator(&store, &login).await?;
                let keys = read_ssh_keys(&ssh_key)?;
                for k in &keys {
                    let added = store.add_ssh_key(&actor, p.id, k).await?;
                    if !out.json {
                        out!("added key {}: {} {}", added.id, added.fingerprint, added.comment);
                    }
                }
                out.person(&store, &p, "").await
            }
            KeyCommand::List { login } => {
                let p = store.person_by_login(&login).await?;
                let keys = store.ssh_keys_of(p.id).await?;
                if out.json {
                    return out.print_json(&keys);
                }
                for k in &keys {
                    out!("{:>4}  {}  {}", k.id, k.fingerprint, k.comment);
                }
                Ok(())
            }
            KeyCommand::Remove { login, key } => {
                let p = store.person_by_login(&login).await?;
                let keys = store.ssh_keys_of(p.id).await?;
                let id = key.parse::<KeyId>().ok();
                let k = keys
                    .iter()
                    .find(|k| Some(k.id) == id || k.fingerprint == key)
                    .ok_or_else(|| anyhow!("{login} has no key {key}"))?;
                let removed = store.remove_ssh_key(&actor, k.id).await?;
                if out.json {
                    return out.print_json(&removed);
                }
                out!("removed key {}: {}", removed.id, removed.fingerprint);
                Ok(())
            }
        },
        AdminCommand::ApiToken(cmd) => api_token(&store, &actor, &out, cmd).await,
    }
}

async fn api_token(store: &Store, actor: &Actor, out: &Output, cmd: ApiTokenCommand) -> anyhow::Result<()> {
    let scope = |t: &ApiToken, orgs: &[Organisation]| match t.org_id {
        Some(id) => orgs
            .iter()
            .find(|o| o.id == id)
            .map_or_else(|| format!("organisation {id}"), |o| format!("{} (INN {})", o.name, o.inn)),
        None => "all organisations".to_string(),
    };
    match cmd {
        ApiTokenCommand::Create { name, org } => {
            let org = match org {
                Some(o) => Some(resolve_org(store, &o).await?),
                None => None,
            };
            let (t, secret) = match iks_gateway::api::auth::issue(store, actor, &name, org.as_ref().map(|o| o.id)).await
            {
                Err(IssueError::Invalid(e)) => return Err(flag_error(e)),
                issued => issued?,
            };
            if out.json {
                let mut v = json!(t);
                v["token"] = json!(secret);
                return out.print_json(&v);
            }
            out!("created API token {}: {} for {}", t.id, t.name, scope(&t, org.as_slice()));
            out!("  token: {secret}");
            out!("  It is shown only now: put it in the helpdesk's settings (Authorization: Bearer <token>).");
        }
        ApiTokenCommand::List => {
            let tokens = store.list_api_tokens().await?;
            if out.json {
                return out.print_json(&tokens);
            }
            let orgs = store.list_orgs().await?;
            for t in &tokens {
                let state =
                    t.revoked_at.map_or_else(String::new, |at| format!("  (revoked {})", iks_domain::time::to_db(at)));
                out!("{:>4}  {:<20} {}, created by {}{state}", t.id, t.name, scope(t, &orgs), t.created_by);
            }
        }
        ApiTokenCommand::Revoke { token } => {
            let tokens = store.list_api_tokens().await?;
            let id = token.parse::<i64>().ok();
            let t = tokens
                .iter()
                .find(|t| Some(t.id) == id || (t.name == token && t.revoked_at.is_none()))
                .ok_or_else(|| anyhow!("no API token {token} in use"))?;
            let revoked = store.revoke_api_token(actor, t.id).await?;
            if out.json {
                return out.print_json(&revoked);
            }
            out!("revoked API token {}: {}", revoked.id, revoked.name);
        }
    }
    Ok(())
}

async fn add_person(
    store: &Store,
    actor: &Actor,
    out: &Output,
    fields: PersonFields,
    role: Role,
    org_id: Option<OrgId>,
    key_files: &[String],
) -> anyhow::Result<()> {
    let new = NewPerson { login: fields.login, display_name: fields.name, role, org_id, email: fields.email };
    new.validate().map_err(flag_error)?;
    if role != Role::Operator && !key_files.is_empty() {
        bail!("--ssh-key: only operators connect over SSH");
    }
    // Read and check every key before writing anything.
    let keys = read_ssh_keys(key_files)?;
    let p = store.create_person(actor, &new).await?;
    for k in &keys {
        store.add_ssh_key(actor, p.id, k).await?;
    }
    out.person(store, &p, "created ").await
}

async fn operator(store: &Store, login: &str) -> anyhow::Result<Person> {
    let p = store.person_by_login(login).await?;
    if p.role != Role::Operator {
        bail!("{login} is {}, not an operator: only operators connect over SSH", p.role.as_str());
    }
    Ok(p)
}

impl FactArgs {
    fn apply(&self, mut facts: OrgFacts) -> anyhow::Result<OrgFacts> {
        if let Some(d) = &self.purchased {
            facts.purchased_on = parse_opt_date("--purchased", d)?;
        }
        if let Some(d) = &self.module_paid_until {
            facts.module_paid_until = parse_opt_date("--module-paid-until", d)?;
        }
        if let Some(d) = &self.trial_started {
            facts.trial_started_on = parse_opt_date("--trial-started", d)?;
        }
        if let Some(p) = self.partner {
            facts.partner = p;
        }
        Ok(facts)
    }
}

impl BoxFields {
    fn apply(&self, b: &mut IksBox) -> anyhow::Result<()> {
        let set = |target: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                target.clone_from(v);
            }
        };
        set(&mut b.name, &self.name);
        set(&mut b.product, &self.product);
        set(&mut b.version, &self.version);
        set(&mut b.login, &self.login);
        if let Some(a) = &self.address {
            b.address = Some(a.clone()).filter(|a| a != "none");
        }
        if let Some(k) = &self.host_key {
            b.host_key = if k == "none" { None } else { Some(read_host_key(k)?) };
        }
        if let Some(a) = self.auth.as_deref().and_then(BoxAuth::parse) {
            b.auth = a;
        }
        if let Some(f) = self.allow_forwarding {
            b.allow_forwarding = f;
        }
        Ok(())
    }
}

fn parse_inn(flag: &str, s: &str) -> anyhow::Result<Inn> {
    Inn::parse(s).map_err(|e| anyhow!("{flag}: {e}"))
}

fn parse_opt_date(flag: &str, s: &str) -> anyhow::Result<Option<NaiveDate>> {
    if s == "none" {
        return Ok(None);
    }
    iks_domain::time::parse_date(s)
        .map(Some)
        .map_err(|_| anyhow!("{flag}: '{s}' is not a date (use YYYY-MM-DD, or none to clear)"))
}

/// Reports a model check as the command-line option it came from.
fn flag_error(e: InvalidField) -> anyhow::Error {
    let flag = match e.field {
        "ssh_key" => "--ssh-key".to_string(),
        "org" => "--org".to_string(),
        f => format!("--{}", f.replace('_', "-")),
    };
    anyhow!("{flag}: {}", e.reason)
}

/// An organisation by INN (10 or 12 digits) or by ID.
pub(super) async fn resolve_org(store: &Store, s: &str) -> anyhow::Result<Organisation> {
    let s = s.trim();
    if s.len() >= 10 && s.bytes().all(|b| b.is_ascii_digit()) {
        let inn = parse_inn("--org", s)?;
        return store.org_by_inn(&inn).await.map_err(|_| anyhow!("--org: no organisation with INN {inn}"));
    }
    let id: OrgId = s.parse().map_err(|_| anyhow!("--org: '{s}' is neither an INN nor an organisation ID"))?;
    Ok(store.org(id).await?)
}

/// An optional `--org` filter.
pub(super) async fn resolve_org_filter(store: &Store, org: Option<&str>) -> anyhow::Result<Option<OrgId>> {
    Ok(match org {
        Some(o) => Some(resolve_org(store, o).await?.id),
        None => None,
    })
}

/// A box by ID, by `INN/name`, or by a name no other organisation's box has.
pub(super) async fn resolve_box(store: &Store, s: &str) -> anyhow::Result<IksBox> {
    if let Some((org, name)) = s.split_once('/') {
        let org = resolve_org(store, org).await?;
        return store.box_by_name(org.id, name).await.map_err(|_| anyhow!("{} has no box named '{name}'", org.name));
    }
    if let Ok(id) = s.parse::<BoxId>() {
        return Ok(store.get_box(id).await?);
    }
    let mut named: Vec<IksBox> = store.list_boxes(None).await?.into_iter().filter(|b| b.name == s).collect();
    match named.len() {
        0 => bail!("no box named '{s}' (give a box ID, INN/name or a box name)"),
        1 => Ok(named.remove(0)),
        n => bail!("{n} organisations have a box named '{s}'; give INN/{s} or the box ID"),
    }
}

/// A host key given inline or as a file (the first key line in it).
fn read_host_key(arg: &str) -> anyhow::Result<String> {
    let line = super::public_key_line("--host-key", arg)?;
    let mut key = iks_domain::model::parse_public_key("host_key", &line).map_err(flag_error)?;
    key.set_comment("");
    Ok(key.to_openssh()?.trim().to_string())
}

/// Keys from files (`-` is stdin), every line checked before any is used.
fn read_ssh_keys(files: &[String]) -> anyhow::Result<Vec<NewSshKey>> {
    let mut keys = Vec::new();
    for file in files {
        let text = if file == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("--ssh-key: reading stdin")?;
            s
        } else {
            std::fs::read_to_string(file).map_err(|e| anyhow!("--ssh-key: cannot read {file}: {e}"))?
        };
        let before = keys.len();
        for (n, line) in key_lines(&text) {
            let key = NewSshKey::parse(line).map_err(|e| anyhow!("--ssh-key: {file} line {n}: {}", e.reason))?;
            keys.push(key);
        }
        if keys.len() == before {
            bail!("--ssh-key: {file} holds no public key");
        }
    }
    Ok(keys)
}

fn standing_today(org: &Organisation) -> Standing {
    standing(&org.facts, false, iks_domain::time::now().date_naive())
}

/// A person-readable line about an organisation's standing.
fn describe(s: &Standing) -> String {
    format!("category {}: {s}", s.category().number())
}

/// An agent's presence in a few words: "online since …", "offline since …".
fn agent_state(agent: Option<&Agent>, tz: chrono_tz::Tz) -> String {
    let now = iks_domain::time::now();
    let when = |t| iks_domain::time::display_near(t, now, tz);
    match agent {
        None => "agent not enrolled".into(),
        Some(a) => match (&a.online_since, &a.node, a.offline_since) {
            (Some(since), Some(node), _) => format!("agent {} online since {} (node {node})", a.id, when(*since)),
            (Some(since), None, _) => format!("agent {} online since {}", a.id, when(*since)),
            (None, _, Some(since)) => format!("agent {} offline since {}", a.id, when(since)),
            (None, _, None) => format!("agent {} enrolled, never connected", a.id),
        },
    }
}

fn box_json(b: &IksBox, agent: Option<&Agent>) -> serde_json::Value {
    let mut v = json!(b);
    v["agent"] = json!(agent);
    v
}

fn reach(b: &IksBox) -> String {
    b.address.clone().unwrap_or_else(|| "through its agent".into())
}

fn org_json(org: &Organisation) -> serde_json::Value {
    let s = standing_today(org);
    let mut v = json!(org);
    v["category"] = json!(s.category().number());
    v["standing"] = json!(describe(&s));
    v
}

struct Output {
    json: bool,
}

impl Output {
    fn print_json<T: serde::Serialize>(&self, v: &T) -> anyhow::Result<()> {
        super::json_out(v)
    }

    fn org(&self, org: &Organisation, verb: &str) -> anyhow::Result<()> {
        if self.json {
            return self.print_json(&org_json(org));
        }
        let f = &org.facts;
        let date = |d: Option<NaiveDate>| d.map_or_else(|| "-".to_string(), |d| d.to_string());
        out!("{verb}organisation {}: {}", org.id, org.name);
        out!("  INN:               {}", org.inn);
        out!("  today:             {}", describe(&standing_today(org)));
        out!("  purchased:         {}", date(f.purchased_on));
        out!("  module paid until: {}", date(f.module_paid_until));
        out!("  trial started:     {}", date(f.trial_started_on));
        out!("  partner:           {}", if f.partner { "yes" } else { "no" });
        Ok(())
    }

    fn iks_box(&self, b: &IksBox, org: &Organisation, verb: &str) -> anyhow::Result<()> {
        if self.json {
            return self.print_json(b);
        }
        out!("{verb}box {}: {} of {} (INN {})", b.id, b.name, org.name, org.inn);
        out!("  product:          {} {}", b.product, b.version);
        out!("  reached:          {}", reach(b));
        out!("  login:            {}", b.login);
        out!("  authentication:   {}", b.auth.as_str());
        out!("  host key:         {}", b.host_key.as_deref().unwrap_or("not pinned"));
        out!("  port forwarding:  {}", if b.allow_forwarding { "allowed" } else { "refused" });
        Ok(())
    }

    async fn person(&self, store: &Store, p: &Person, verb: &str) -> Result<(), anyhow::Error> {
        let keys = store.ssh_keys_of(p.id).await.map_err(|e: StoreError| anyhow!(e))?;
        if self.json {
            let mut v = json!(p);
            v["ssh_keys"] = json!(keys);
            return self.print_json(&v);
        }
        out!("{verb}{} {}: {} ({})", p.role.as_str(), p.id, p.login, p.display_name);
        if let Some(org) = p.org_id {
            let org = store.org(org).await?;
            out!("  organisation:     {} (INN {})", org.name, org.inn);
        }
        if let Some(email) = &p.email {
            out!("  e-mail:           {email}");
        }
        if let Some(at) = p.disabled_at {
            out!("  disabled since:   {}", iks_domain::time::to_db(at));
        }
        for k in &keys {
            out!("  key {}:            {} {}", k.id, k.fingerprint, k.comment);
        }
        Ok(())
    }
}
