//! The records the gateway keeps, as plain data, and the checks a new record must pass
//! before it is stored. The store persists these; the CLI, panel and API build them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, AgentTokenId, BoxId, GrantId, KeyId, OrgId, PersonId, SessionId, TicketId};
use crate::rules::{Inn, OrgFacts, ProductCatalog, VersionRefusal};

/// An enum stored and shown by fixed names: `as_str` and `parse` are inverse, `ALL` lists
/// the values, and serde uses the same names, so the database, JSON and the CLI agree.
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown {} '{s}'", stringify!($name))))
            }
        }
    };
}

/// A bad value in a record someone asked to create or change; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

/// A customer organisation and the facts its category is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    pub id: OrgId,
    pub inn: Inn,
    pub name: String,
    pub facts: OrgFacts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrg {
    pub inn: Inn,
    pub name: String,
    pub facts: OrgFacts,
}

impl NewOrg {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_display_name("name", &self.name)
    }
}

named_enum! {
    /// How the gateway authenticates to a box's sshd.
    pub enum BoxAuth {
        /// A short-lived OpenSSH user certificate from the gateway's CA (the box trusts the CA).
        Certificate = "certificate",
        /// A per-box key kept in the gateway's data dir, for boxes that cannot trust a CA.
        StaticKey = "static-key",
    }
}

/// A customer's IKS box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IksBox {
    pub id: BoxId,
    pub org_id: OrgId,
    /// Short name, unique within the organisation; engineers type it (`T-1042+name`).
    pub name: String,
    pub product: String,
    pub version: String,
    /// `host:port` of the box's sshd when the gateway reaches it directly; `None` when
    /// it is reached through its agent.
    pub address: Option<String>,
    /// The account the gateway logs in as (the certificate's principal).
    pub login: String,
    /// The box's sshd host key pinned at enrolment (OpenSSH public key line).
    pub host_key: Option<String>,
    pub auth: BoxAuth,
    /// Whether port forwarding may be used on this box (off: it would bypass recording).
    pub allow_forwarding: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBox {
    pub org_id: OrgId,
    pub name: String,
    pub product: String,
    pub version: String,
    pub address: Option<String>,
    pub login: String,
    pub host_key: Option<String>,
    pub auth: BoxAuth,
    pub allow_forwarding: bool,
}

impl NewBox {
    /// Checks every field; the product and version against the configured catalogue.
    pub fn validate(&self, catalog: &ProductCatalog) -> Result<(), InvalidField> {
        check_slug("name", &self.name)?;
        check_product(catalog, &self.product, &self.version)?;
        if let Some(address) = &self.address {
            check_address("address", address)?;
        }
        check_login("login", &self.login)?;
        if let Some(key) = &self.host_key {
            parse_public_key("host_key", key)?;
        }
        Ok(())
    }
}

impl IksBox {
    /// The same checks as for a new box, for an edited one.
    pub fn validate(&self, catalog: &ProductCatalog) -> Result<(), InvalidField> {
        NewBox {
            org_id: self.org_id,
            name: self.name.clone(),
            product: self.product.clone(),
            version: self.version.clone(),
            address: self.address.clone(),
            login: self.login.clone(),
            host_key: self.host_key.clone(),
            auth: self.auth,
            allow_forwarding: self.allow_forwarding,
        }
        .validate(catalog)
    }
}

/// Checks a product and version against the catalogue, naming the field on refusal.
pub fn check_product(catalog: &ProductCatalog, product: &str, version: &str) -> Result<(), InvalidField> {
    catalog.check(product, version).map(|_| ()).map_err(version_field)
}

/// Maps a product/version refusal onto the field it concerns.
pub fn version_field(e: VersionRefusal) -> InvalidField {
    let field = match e {
        VersionRefusal::UnknownProduct { .. } => "product",
        _ => "version",
    };
    InvalidField::new(field, e.to_string())
}

named_enum! {
    /// What a person may do.
    pub enum Role {
        /// A support engineer: connects to boxes through the gateway.
        Operator = "operator",
        /// An admin of one customer organisation: approves and revokes access, watches.
        Customer = "customer",
        /// Reads everything, changes nothing: sessions, recordings, the audit log.
        Auditor = "auditor",
        /// Manages organisations, people, boxes and tokens.
        Admin = "admin",
    }
}

/// A person known to the gateway. Secrets (password hash, TOTP) are not part of this
/// record, so it can be logged and serialised freely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub login: String,
    pub display_name: String,
    pub role: Role,
    /// The organisation a customer user belongs to; `None` for everyone else.
    pub org_id: Option<OrgId>,
    pub email: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    pub login: String,
    pub display_name: String,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub email: Option<String>,
}

impl NewPerson {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_login("login", &self.login)?;
        check_display_name("name", &self.display_name)?;
        match (self.role, self.org_id) {
            (Role::Customer, None) => Err(InvalidField::new("org", "a customer user must belong to an organisation")),
            (Role::Customer, Some(_)) | (_, None) => Ok(()),
            (role, Some(_)) => Err(InvalidField::new(
                "org",
                format!("only customer users belong to an organisation, not an {}", role.as_str()),
            )),
        }?;
        if let Some(email) = &self.email {
            check_email("email", email)?;
        }
        Ok(())
    }
}

/// An SSH public key an operator authenticates with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    pub id: KeyId,
    pub person_id: PersonId,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The OpenSSH public key line without its comment.
    pub public_key: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

/// A public key read from an `authorized_keys`-style line, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSshKey {
    pub fingerprint: String,
    pub public_key: String,
    pub comment: String,
}

impl NewSshKey {
    /// Reads one OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    pub fn parse(line: &str) -> Result<Self, InvalidField> {
        let key = parse_public_key("ssh_key", line)?;
        let comment = key.comment().to_string();
        let mut bare = key.clone();
        bare.set_comment("");
        let public_key =
            bare.to_openssh().map_err(|e| InvalidField::new("ssh_key", format!("cannot encode the key: {e}")))?;
        Ok(Self {
            fingerprint: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
            public_key: public_key.trim().to_string(),
            comment,
        })
    }
}

/// Algorithms an operator key may use: the ones OpenSSH still offers by default.
fn key_algorithm_allowed(alg: &ssh_key::Algorithm) -> bool {
    use ssh_key::Algorithm;
    matches!(alg, Algorithm::Ed25519 | Algorithm::Ecdsa { .. } | Algorithm::Rsa { .. })
}

/// Parses an OpenSSH public key line, naming `field` on failure.
pub fn parse_public_key(field: &'static str, line: &str) -> Result<ssh_key::PublicKey, InvalidField> {
    let line = line.trim();
    if line.is_empty() {
        return Err(InvalidField::new(
            field,
            "empty; expected an OpenSSH public key line like 'ssh-ed25519 AAAA… comment'",
        ));
    }
    if line.starts_with("-----BEGIN") {
        return Err(InvalidField::new(field, "this is a private key or PEM file; give the public key (the .pub file)"));
    }
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|e| InvalidField::new(field, format!("not an OpenSSH public key ({e})")))?;
    let alg = key.algorithm();
    if !key_algorithm_allowed(&alg) {
        return Err(InvalidField::new(field, format!("unsupported key type {alg}; use ed25519, ecdsa or rsa")));
    }
    if let ssh_key::Algorithm::Rsa { .. } = alg {
        let bits = key.key_data().rsa().map_or(0, |k| k.key_size());
        if bits < 2048 {
            return Err(InvalidField::new(
                field,
                format!("RSA key of {bits} bits is too short; at least 2048 are needed"),
            ));
        }
    }
    Ok(key)
}

pub fn check_display_name(field: &'static str, v: &str) -> Result<(), InvalidField> {
    if v.trim().is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if v.chars().count() > 200 {
        return Err(InvalidField::new(field, "is longer than 200 characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(InvalidField::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// Short machine names typed in SSH user names and URLs: `a-z0-9-_.`, starting alphanumeric.
fn check_slug(field: &'static str, v: &str) -> Result<(), InvalidField> {
    let ok_start = v.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if v.is_empty() || v.len() > 63 || !ok_start || !ok_chars {
        return Err(InvalidField::new(
            field,
            format!("'{v}' must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit"),
        ));
    }
    Ok(())
}

/// API token names: the slug rules, so they read cleanly in the audit log and on the command line.
pub fn check_api_token_name(name: &str) -> Result<(), InvalidField> {
    check_slug("name", name)
}

/// Logins: the slug rules, so they are safe in SSH user names, paths and certificate principals.
pub fn check_login(field: &'static str, v: &str) -> Result<(), InvalidField> {
    check_slug(field, v)
}

fn check_email(field: &'static str, v: &str) -> Result<(), InvalidField> {
    let ok = v.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(()) } else { Err(InvalidField::new(field, format!("'{v}' is not an e-mail address"))) }
}

/// `host:port` with a non-zero port; hosts are names or IP literals (`[::1]:22`).
pub fn check_address(field: &'static str, v: &str) -> Result<(), InvalidField> {
    let bad = || InvalidField::new(field, format!("'{v}' is not host:port (e.g. 10.0.0.5:22 or [::1]:22)"));
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

named_enum! {
    /// Where a ticket is in its life.
    pub enum TicketState {
        Open = "open",
        InProgress = "in_progress",
        Escalated = "escalated",
        Resolved = "resolved",
        Closed = "closed",
        Refused = "refused",
    }
}

impl TicketState {
    /// Whether work on the ticket goes on, so access to boxes may be granted for it.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Open | Self::InProgress | Self::Escalated)
    }

    /// Whether the ticket's life is over: nothing moves it, nobody comments on it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Refused)
    }

    /// The states a ticket may move to from this one. A resolved ticket may be taken back
    /// in progress (the customer says it is not fixed) until it is closed; a ticket back
    /// from development is in progress again.
    pub fn next(self) -> &'static [Self] {
        use TicketState::*;
        match self {
            Open => &[InProgress, Escalated, Resolved, Closed, Refused],
            InProgress => &[Escalated, Resolved, Closed, Refused],
            Escalated => &[InProgress, Resolved, Closed, Refused],
            Resolved => &[InProgress, Closed],
            Closed | Refused => &[],
        }
    }

    /// The state in words: "in progress".
    pub fn words(self) -> String {
        self.as_str().replace('_', " ")
    }
}

/// A change of a ticket's state, with what the new state records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Support works on it: taken up, back from development, or reopened after "resolved".
    Progress,
    /// Handed to development: the engineers could not resolve it at once.
    Escalate,
    Resolve,
    Close {
        reason: String,
    },
    Refuse {
        reason: RefusalReason,
    },
}

impl Move {
    pub fn target(&self) -> TicketState {
        match self {
            Self::Progress => TicketState::InProgress,
            Self::Escalate => TicketState::Escalated,
            Self::Resolve => TicketState::Resolved,
            Self::Close { .. } => TicketState::Closed,
            Self::Refuse { .. } => TicketState::Refused,
        }
    }

    /// The audit action that records the move.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Progress => "ticket.progress",
            Self::Escalate => "ticket.escalate",
            Self::Resolve => "ticket.resolve",
            Self::Close { .. } => "ticket.close",
            Self::Refuse { .. } => "ticket.refuse",
        }
    }

    /// What the move does to a ticket, as in "T-1001 cannot be escalated".
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Progress => "taken in progress",
            Self::Escalate => "escalated",
            Self::Resolve => "resolved",
            Self::Close { .. } => "closed",
            Self::Refuse { .. } => "refused",
        }
    }

    /// The reason the new state records (closing and refusing).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Close { reason } => Some(reason),
            Self::Refuse { reason } => Some(reason.as_str()),
            Self::Progress | Self::Escalate | Self::Resolve => None,
        }
    }
}

/// A move the ticket's state does not allow, with the moves it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ticket} is {}, so it cannot be {verb} ({})", state.words(), options(*state))]
pub struct InvalidMove {
    pub ticket: TicketId,
    pub state: TicketState,
    pub verb: &'static str,
}

fn options(state: TicketState) -> String {
    let next: Vec<String> = state.next().iter().map(|s| s.words()).collect();
    if next.is_empty() { "nothing changes it any more".into() } else { format!("it can go to {}", next.join(", ")) }
}

impl Ticket {
    /// Whether the ticket's state allows `m`.
    pub fn check_move(&self, m: &Move) -> Result<(), InvalidMove> {
        if self.state.next().contains(&m.target()) {
            Ok(())
        } else {
            Err(InvalidMove { ticket: self.id, state: self.state, verb: m.verb() })
        }
    }
}

/// Why support was refused (the regulations' list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The request is about a version of IKS whose support has stopped.
    UnsupportedVersion,
    /// The person or organisation gave no contact data.
    NoContactData,
    /// The request is not about installing or configuring A-Real Consulting's products.
    NotAboutProducts,
    /// Rudeness towards the support engineer.
    Rudeness,
}

impl RefusalReason {
    pub const ALL: [Self; 4] = [Self::UnsupportedVersion, Self::NoContactData, Self::NotAboutProducts, Self::Rudeness];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedVersion => "unsupported_version",
            Self::NoContactData => "no_contact_data",
            Self::NotAboutProducts => "not_about_products",
            Self::Rudeness => "rudeness",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reason as the customer is told it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::UnsupportedVersion => "the request is about a version whose support has stopped",
            Self::NoContactData => "no contact data was given",
            Self::NotAboutProducts => "the request is not about installing or configuring A-Real Consulting's products",
            Self::Rudeness => "rudeness towards the support engineer",
        }
    }
}

/// What a ticket is about, as the person filing it states it. The gateway cannot judge a
/// description's text; the helpdesk form or the operator says what the request is about,
/// and `other` (not about installing or configuring A-Real's products) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Installing a product.
    Installation,
    /// Configuring IKS.
    Configuration,
    /// Registering a product.
    Registration,
    /// A problem with how the program works.
    Malfunction,
    /// Anything else: not what support covers.
    Other,
}

impl Topic {
    pub const ALL: [Self; 5] =
        [Self::Installation, Self::Configuration, Self::Registration, Self::Malfunction, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installation => "installation",
            Self::Configuration => "configuration",
            Self::Registration => "registration",
            Self::Malfunction => "malfunction",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether support covers it (the regulations: installing and configuring A-Real's products).
    pub fn is_supported(self) -> bool {
        self != Self::Other
    }
}

/// A support ticket: every session is bound to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub org_id: OrgId,
    pub contact_name: String,
    pub contact_phone: Option<String>,
    pub contact_email: Option<String>,
    pub product: String,
    pub version: String,
    pub description: String,
    /// What the ticket is about, when the person filing it said so.
    pub topic: Option<Topic>,
    pub state: TicketState,
    /// The organisation's category when the ticket was opened (1 is served first).
    pub priority: i64,
    /// When support must have answered; `None` for category 4 and refused tickets.
    pub response_due_at: Option<DateTime<Utc>>,
    /// The first comment from support: it stops the first-response clock.
    pub first_response_at: Option<DateTime<Utc>>,
    pub refusal_reason: Option<RefusalReason>,
    pub close_reason: Option<String>,
    pub last_customer_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub org_id: OrgId,
    pub contact_name: String,
    pub contact_phone: Option<String>,
    pub contact_email: Option<String>,
    pub product: String,
    pub version: String,
    pub description: String,
    pub topic: Option<Topic>,
    pub priority: i64,
    pub response_due_at: Option<DateTime<Utc>>,
    /// Set when the ticket is refused as it is opened: it is stored `refused`, with the reason.
    pub refusal: Option<RefusalReason>,
}

/// A comment on a ticket, from support or from the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: i64,
    pub ticket_id: TicketId,
    /// The person, when the author is known to the gateway.
    pub author_id: Option<PersonId>,
    /// The author's name as shown (a login, or a name the helpdesk passed on).
    pub author_name: String,
    pub from_customer: bool,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub author_id: Option<PersonId>,
    pub author_name: String,
    pub from_customer: bool,
    pub body: String,
}

impl NewComment {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_display_name("author", &self.author_name)?;
        if self.body.trim().is_empty() {
            return Err(InvalidField::new("body", "must not be empty"));
        }
        if self.body.chars().count() > 100_000 {
            return Err(InvalidField::new("body", "is longer than 100000 characters"));
        }
        Ok(())
    }
}

/// A token the helpdesk calls the API with. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// When set, the token sees only this organisation's tickets.
    pub org_id: Option<OrgId>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

named_enum! {
    /// Where an access request is in its life.
    pub enum GrantState {
        /// Asked for by an operator, waiting for the customer.
        Pending = "pending",
        /// Approved by the customer for a window.
        Approved = "approved",
        Rejected = "rejected",
        Revoked = "revoked",
        /// The window ended.
        Expired = "expired",
    }
}

/// An access request and, once approved, the grant: who may reach which box, for which
/// ticket, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: GrantId,
    pub ticket_id: TicketId,
    pub box_id: BoxId,
    pub requested_by: PersonId,
    /// When set, only this operator may use the grant.
    pub operator_id: Option<PersonId>,
    pub reason: String,
    pub requested_secs: i64,
    pub state: GrantState,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub decided_by: Option<PersonId>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    pub revoked_by: Option<PersonId>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessRequest {
    pub ticket_id: TicketId,
    pub box_id: BoxId,
    pub requested_by: PersonId,
    pub reason: String,
    pub duration: chrono::Duration,
}

/// A customer's approval: the window, and optionally the one operator allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub operator_id: Option<PersonId>,
    pub note: Option<String>,
}

named_enum! {
    /// Why a session ended.
    pub enum EndReason {
        ClientExit = "client exit",
        GrantExpired = "grant expired",
        Revoked = "revoked",
        TicketClosed = "ticket closed",
        UpstreamLost = "upstream lost",
        AgentDisconnected = "agent disconnected",
        Killed = "killed",
        GatewayShutdown = "gateway shutdown",
        GatewayCrashed = "gateway crashed",
        RecordingFailed = "recording storage failed",
        /// The recordings' disk filled up: the recording holds every event up to the last
        /// complete one, and new sessions are refused until there is room again.
        StorageFull = "recording storage full",
        /// The store stayed out of reach for longer than `[access] store_grace`, so revocations
        /// made elsewhere could no longer be seen.
        StoreUnavailable = "store unavailable",
        CategoryChanged = "category changed",
        /// The engineer's account was disabled or the key he signed in with was removed.
        OperatorDisabled = "operator disabled",
        /// The box's product version left the supported list.
        VersionUnsupported = "version unsupported",
        /// The store holds the session as ended (by another node, a DBA or a restore):
        /// no record of it being allowed, so it ends here too.
        EndedInStore = "ended in store",
        /// The customer turned on the kill switch on the box (`iks-agent disable`).
        RemoteAccessDisabled = "remote access disabled",
        /// The session's recording reached `[recording] session_quota`: one session cannot
        /// fill the disk that every session's recording needs.
        RecordingQuota = "recording quota reached",
    }
}

/// One SSH session through the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub grant_id: GrantId,
    pub ticket_id: TicketId,
    pub box_id: BoxId,
    pub operator_id: PersonId,
    pub client_addr: Option<String>,
    /// The gateway node that carries the session.
    pub node: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<EndReason>,
    /// Bytes from the engineer to the box.
    pub bytes_in: i64,
    /// Bytes from the box to the engineer.
    pub bytes_out: i64,
    /// The recording's file name, relative to the data dir's `recordings/`.
    pub recording: Option<String>,
    pub recording_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub grant_id: GrantId,
    pub ticket_id: TicketId,
    pub box_id: BoxId,
    pub operator_id: PersonId,
    pub client_addr: Option<String>,
    pub node: String,
}

/// How a session ended, as recorded when it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub reason: EndReason,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub recording: Option<String>,
    pub recording_sha256: Option<String>,
}

/// Something that happened inside a session: an exec, an exit status, a file operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub session_id: SessionId,
    pub at: DateTime<Utc>,
    pub channel: Option<i64>,
    /// `exec`, `exit`, `sftp.open`, `scp.upload`, …
    pub kind: String,
    pub details: serde_json::Value,
}

/// One enrolment of a box's agent: its key, what it last reported, and where its control
/// connection is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub box_id: BoxId,
    /// `SHA256:…` of the agent's key: how the gateway recognises it.
    pub key_fingerprint: String,
    pub public_key: String,
    pub enrolled_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub agent_version: Option<String>,
    /// Product and version as the agent last reported them.
    pub product: Option<String>,
    pub version: Option<String>,
    /// The customer's kill switch on the box.
    pub remote_access_disabled: bool,
    /// The gateway node holding (or that last held) the control connection.
    pub node: Option<String>,
    /// The control connection's name while it is up: stale disconnects cannot clobber a newer one.
    pub connection: Option<String>,
    pub online_since: Option<DateTime<Utc>>,
    pub offline_since: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
}

impl Agent {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A one-time enrolment token's record; only the token's SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentToken {
    pub id: AgentTokenId,
    pub box_id: BoxId,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// The enrolment the token was used for.
    pub agent_id: Option<AgentId>,
}

/// What an agent reports about itself and its box, checked before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentReport {
    pub agent_version: String,
    pub product: Option<String>,
    pub version: Option<String>,
    pub remote_access_disabled: bool,
}

impl AgentReport {
    /// Reported values come from a remote machine: short printable text only. The
    /// product and version are not checked against the catalogue on purpose: the box
    /// record must say what really runs, and the access rules then refuse what is unsupported.
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_reported("agent_version", &self.agent_version)?;
        if let Some(p) = &self.product {
            check_reported("product", p)?;
        }
        if let Some(v) = &self.version {
            check_reported("version", v)?;
        }
        Ok(())
    }
}

fn check_reported(field: &'static str, v: &str) -> Result<(), InvalidField> {
    if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c)) {
        let shown: String = v.chars().take(64).flat_map(char::escape_default).collect();
        return Err(InvalidField::new(
            field,
            format!("'{shown}' must be 1-64 characters: letters, digits, '-', '_', '.', '+'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEDzWDPG1+ZhUfXGbzPFFpJm/ihb5BFgCjLZm3dj7+2P ivanov@laptop";

    #[test]
    fn key_lines_are_parsed_or_refused_with_the_reason() {
        let k = NewSshKey::parse(ED25519).unwrap();
        assert!(k.fingerprint.starts_with("SHA256:"), "{}", k.fingerprint);
        assert_eq!(k.comment, "ivanov@laptop");
        assert!(!k.public_key.contains("ivanov"));
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "private key"),
            ("ssh-ed25519 AAAA", "not an OpenSSH public key"),
            ("hello world", "not an OpenSSH public key"),
        ];
        for (line, want) in cases {
            let err = NewSshKey::parse(line).unwrap_err();
            assert_eq!(err.field, "ssh_key");
            assert!(err.reason.contains(want), "{line:?}: {err}");
        }
    }

    #[test]
    fn names_addresses_and_emails() {
        let slugs: &[(&str, bool)] = &[
            ("main-gw", true),
            ("gw1.office", true),
            ("0box", true),
            ("", false),
            ("-gw", false),
            ("Main", false),
            ("gw+1", false),
            ("шлюз", false),
        ];
        for (v, ok) in slugs {
            assert_eq!(check_slug("name", v).is_ok(), *ok, "{v:?}");
        }
        let addresses: &[(&str, bool)] = &[
            ("127.0.0.1:22", true),
            ("box.example:2222", true),
            ("[::1]:22", true),
            ("127.0.0.1", false),
            ("127.0.0.1:0", false),
            ("127.0.0.1:70000", false),
            (":22", false),
            ("[::1:22", false),
            ("a b:22", false),
        ];
        for (v, ok) in addresses {
            assert_eq!(check_address("address", v).is_ok(), *ok, "{v:?}");
        }
        assert!(check_email("email", "a@b.ru").is_ok());
        assert!(check_email("email", "a@b").is_err());
        assert!(check_email("email", "a b@c.ru").is_err());
    }

    #[test]
    fn only_customers_belong_to_an_organisation() {
        let mut p = NewPerson {
            login: "petrov".into(),
            display_name: "Пётр Петров".into(),
            role: Role::Customer,
            org_id: None,
            email: None,
        };
        assert_eq!(p.validate().unwrap_err().field, "org");
        p.org_id = Some(OrgId(1));
        assert!(p.validate().is_ok());
        p.role = Role::Operator;
        assert_eq!(p.validate().unwrap_err().field, "org");
        p.org_id = None;
        assert!(p.validate().is_ok());
    }
}
