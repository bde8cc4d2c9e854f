//! Day-to-day commands: tickets, access requests, sessions, the CA.

use std::io::Write as _;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use iks_domain::audit::Actor;
use iks_domain::i18n::Lang;
use iks_domain::ids::{GrantId, OrgId, SessionId, TicketId};
use iks_domain::model::{Grant, GrantState, Move, Person, RefusalReason, Session, Ticket, TicketState, Topic};
use iks_domain::rules::parse_duration;
use iks_domain::time::display;
use iks_gateway::grants::{self, ApproveOptions};
use iks_gateway::recording::{cast, transcript};
use iks_gateway::store::{GrantFilter, SessionFilter, Store, TicketFilter};
use iks_gateway::tickets::{self, Filing, Status};
use serde_json::json;

use super::admin::{resolve_org, resolve_org_filter};
use super::{Context, json_out};

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Open a ticket (the regulations: INN, contact, product version, description). A
    /// ticket about an unsupported version, without a phone or e-mail, or with
    /// `--topic other` is stored refused, with the reason.
    Open {
        /// The organisation (INN or ID).
        #[arg(long)]
        org: String,
        /// The contact person's name.
        #[arg(long)]
        contact: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        product: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        description: String,
        /// What the request is about; `other` (not installing or configuring A-Real's
        /// products) is refused. Leave it out when nobody said.
        #[arg(long, value_parser = super::named(&Topic::ALL, Topic::as_str))]
        topic: Option<Topic>,
    },
    /// Show a ticket: its clock, comments, history and access requests.
    Show { ticket: TicketId },
    /// List tickets, newest first.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long, value_parser = ["open", "in_progress", "escalated", "resolved", "closed", "refused"])]
        state: Option<String>,
    },
    /// The work waiting: open tickets by priority, then first-response deadline, flagged
    /// DUE SOON or BREACHED.
    Queue {
        #[arg(long)]
        org: Option<String>,
    },
    /// Comment on a ticket: an operator's comment is support's (the first one stops the
    /// first-response clock), a customer user's is the customer's (it restarts the
    /// auto-close count).
    Comment {
        ticket: TicketId,
        /// Who writes: an operator, an admin, or a customer user of the organisation.
        #[arg(long = "as", value_name = "LOGIN")]
        who: String,
        text: String,
    },
    /// Take a ticket in progress (also: back from development, or reopened after resolved).
    Progress {
        ticket: TicketId,
        #[command(flatten)]
        by: MoveArgs,
    },
    /// Escalate a ticket to development.
    Escalate {
        ticket: TicketId,
        #[command(flatten)]
        by: MoveArgs,
    },
    /// Mark a ticket resolved; it closes by itself when the customer stays silent.
    Resolve {
        ticket: TicketId,
        #[command(flatten)]
        by: MoveArgs,
    },
    /// Close a ticket: its grants are revoked and its live sessions end.
    Close {
        ticket: TicketId,
        #[arg(long, default_value = tickets::DEFAULT_CLOSE_REASON)]
        reason: String,
        #[command(flatten)]
        by: MoveArgs,
    },
    /// Refuse support on a ticket, with the regulations' reason (e.g. rudeness).
    Refuse {
        ticket: TicketId,
        #[arg(long, value_parser = super::named(&RefusalReason::ALL, RefusalReason::as_str))]
        reason: RefusalReason,
        #[command(flatten)]
        by: MoveArgs,
    },
}

/// Who makes a change, and why.
#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    /// The operator or admin making the change (else the change is recorded as the shell user's).
    #[arg(long = "as", value_name = "LOGIN")]
    who: Option<String>,
    /// A note for the history.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask for a window on a box for a ticket (as an operator).
    Request {
        #[arg(long)]
        ticket: TicketId,
        /// The box's name (or ID) in the ticket's organisation.
        #[arg(long = "box")]
        r#box: String,
        /// The operator asking.
        #[arg(long)]
        operator: String,
        /// How long, e.g. 2h or 90m.
        #[arg(long)]
        duration: String,
        /// Why: the customer sees it.
        #[arg(long)]
        reason: String,
    },
    /// Approve a pending request, as a customer user of the organisation (or an admin).
    Approve {
        grant: GrantId,
        #[arg(long = "as")]
        who: String,
        /// End the window sooner than requested: a duration from now (30m) or a time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Let any support engineer use the grant (by default only the engineer who asked may).
        #[arg(long)]
        any_engineer: bool,
    },
    /// Reject a pending request.
    Reject {
        grant: GrantId,
        #[arg(long = "as")]
        who: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Revoke an approved grant; its live sessions end within a second.
    Revoke {
        grant: GrantId,
        #[arg(long = "as")]
        who: String,
    },
    /// List access requests and grants.
    List {
        #[arg(long)]
        ticket: Option<TicketId>,
        #[arg(long, value_parser = ["pending", "approved", "rejected", "revoked", "expired"])]
        state: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List sessions, newest first.
    List {
        /// Only sessions in progress.
        #[arg(long)]
        live: bool,
        #[arg(long)]
        ticket: Option<TicketId>,
    },
    /// Show a session and what happened in it.
    Show { session: SessionId },
    /// End a live session now (on whichever gateway node carries it).
    Kill { session: SessionId },
    /// Play a session's terminal recording.
    Replay {
        session: SessionId,
        /// Playback speed: 2 is twice as fast.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Pauses longer than this many seconds are shortened to it.
        #[arg(long, default_value_t = 2.0)]
        max_wait: f64,
    },
    /// Print the plain text the session's terminal showed.
    Transcript { session: SessionId },
}

pub async fn ticket(ctx: &Context, cmd: TicketCommand, json: bool) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let tz = ctx.config.hours.timezone;
    let (ticket, moved) = match cmd {
        TicketCommand::Open { org, contact, phone, email, product, version, description, topic } => {
            let org = resolve_org(&store, &org).await?;
            let filing = Filing {
                org: org.id,
                contact_name: contact,
                contact_phone: phone,
                contact_email: email,
                product,
                version,
                description,
                topic,
            };
            let t = tickets::open(&store, &ctx.config, &Actor::cli(), filing).await?;
            if json {
                return json_out(&t);
            }
            match t.refusal_reason {
                Some(r) => out!("refused {} for {}: {} ({})", t.id, org.name, r.describe(), r.as_str()),
                None => {
                    let due = t.response_due_at.map_or_else(|| "none".into(), |d| display(d, tz));
                    out!("opened {} for {} (priority {}, first response due {due})", t.id, org.name, t.priority);
                }
            }
            return Ok(());
        }
        TicketCommand::Show { ticket } => return show_ticket(ctx, &store, ticket, json).await,
        TicketCommand::List { org, state } => {
            let filter = TicketFilter {
                org: resolve_org_filter(&store, org.as_deref()).await?,
                state: state.as_deref().and_then(TicketState::parse),
                active: false,
            };
            let list = store.list_tickets(&filter).await?;
            if json {
                return json_out(&list);
            }
            let names = org_names(&store).await?;
            for t in &list {
                out!(
                    "{:<8} {:<11} p{} {:<24} {}",
                    t.id.to_string(),
                    t.state.as_str(),
                    t.priority,
                    one_line(names.get(&t.org_id).map_or("", String::as_str), 24),
                    one_line(&t.description, 50)
                );
            }
            return Ok(());
        }
        TicketCommand::Queue { org } => {
            let org = resolve_org_filter(&store, org.as_deref()).await?;
            let now = iks_domain::time::now();
            let queue = tickets::queue(&store, &ctx.config, org, now).await?;
            if json {
                return json_out(&queue);
            }
            if queue.is_empty() {
                out!("no open tickets");
            }
            let names = org_names(&store).await?;
            for q in &queue {
                let t = &q.ticket;
                let due = q.sla.pending_due().map_or_else(|| q.sla.status.as_str().to_string(), |d| display(d, tz));
                out!(
                    "{:<8} p{} {:<11} {:<22} {:<8} {:<24} {}",
                    t.id.to_string(),
                    t.priority,
                    t.state.as_str(),
                    due,
                    q.sla.status.flag().unwrap_or(""),
                    one_line(names.get(&t.org_id).map_or("", String::as_str), 24),
                    one_line(&t.description, 40)
                );
            }
            return Ok(());
        }
        TicketCommand::Comment { ticket, who, text } => {
            let who = person(&store, &who).await?;
            let c = tickets::comment_as(&store, &who, ticket, &text).await?;
            if json {
                return json_out(&c);
            }
            let side = if c.from_customer { "the customer" } else { "support" };
            out!("{}: comment {} from {side} ({})", ticket, c.id, c.author_name);
            return Ok(());
        }
        TicketCommand::Progress { ticket, by } => (ticket, make_move(&store, ticket, Move::Progress, by).await?),
        TicketCommand::Escalate { ticket, by } => (ticket, make_move(&store, ticket, Move::Escalate, by).await?),
        TicketCommand::Resolve { ticket, by } => (ticket, make_move(&store, ticket, Move::Resolve, by).await?),
        TicketCommand::Close { ticket, reason, by } => {
            (ticket, make_move(&store, ticket, Move::Close { reason }, by).await?)
        }
        TicketCommand::Refuse { ticket, reason, by } => {
            (ticket, make_move(&store, ticket, Move::Refuse { reason }, by).await?)
        }
    };
    if json {
        return json_out(&moved);
    }
    let why = moved.close_reason.clone().or_else(|| moved.refusal_reason.map(|r| r.describe().to_string()));
    let why = why.filter(|_| moved.state.is_final()).map(|w| format!(" ({w})")).unwrap_or_default();
    let revoked = if moved.state.is_active() { "" } else { "; its grants are revoked and live sessions end" };
    out!("{ticket} is {}{why}{revoked}", moved.state.words());
    Ok(())
}

async fn make_move(store: &Store, ticket: TicketId, m: Move, by: MoveArgs) -> anyhow::Result<Ticket> {
    let who = match &by.who {
        Some(login) => Some(person(store, login).await?),
        None => None,
    };
    let actor = who.as_ref().map_or_else(Actor::cli, |p| Actor::person(p.id, &p.login));
    Ok(tickets::make_move(store, &actor, who.as_ref(), ticket, &m, by.note.as_deref()).await?)
}

/// Organisations' names by ID, for listings.
async fn org_names(store: &Store) -> anyhow::Result<std::collections::HashMap<OrgId, String>> {
    Ok(store.list_orgs().await?.into_iter().map(|o| (o.id, o.name)).collect())
}

async fn show_ticket(ctx: &Context, store: &Store, id: TicketId, json: bool) -> anyhow::Result<()> {
    let tz = ctx.config.hours.timezone;
    let t = store.ticket(id).await?;
    let now = iks_domain::time::now();
    let sla = tickets::sla::sla(&t, now, &ctx.config.hours, ctx.config.tickets.due_soon());
    let comments = store.comments(id).await?;
    let history = tickets::history(store, id).await?;
    let grants = store.list_grants(&GrantFilter { ticket: Some(id), ..Default::default() }).await?;
    if json {
        return json_out(
            &json!({ "ticket": t, "sla": sla, "comments": comments, "history": history, "grants": grants }),
        );
    }
    let org = store.org(t.org_id).await?;
    out!("{} ({}) of {} (INN {}) — {} {}", t.id, t.state.words(), org.name, org.inn, t.product, t.version);
    let reach = [t.contact_phone.as_deref(), t.contact_email.as_deref()].into_iter().flatten();
    let contact = [t.contact_name.as_str()].into_iter().chain(reach).filter(|c| !c.is_empty()).collect::<Vec<_>>();
    out!("  contact:        {}", if contact.is_empty() { "none given".into() } else { contact.join(", ") });
    out!("  topic:          {}", t.topic.map_or("not stated", |t| t.as_str()));
    out!("  priority:       {}", t.priority);
    let clock = match (sla.due, sla.left_secs) {
        (Some(due), Some(left)) => {
            let left = iks_domain::rules::format_duration(chrono::Duration::seconds(left.abs()));
            let when = if sla.status == Status::Breached { format!("{left} overdue") } else { format!("{left} left") };
            format!("{}, due {} ({when})", sla.status.as_str(), display(due, tz))
        }
        (Some(due), None) => format!("{}, was due {}", sla.status.as_str(), display(due, tz)),
        _ => sla.status.as_str().to_string(),
    };
    out!("  first response: {clock}");
    if let Some(r) = t.refusal_reason {
        out!("  refused:        {} ({})", r.describe(), r.as_str());
    }
    if let Some(r) = &t.close_reason {
        out!("  closed:         {r}");
    }
    for line in t.description.lines() {
        out!("  | {line}");
    }
    if !comments.is_empty() {
        out!("comments:");
        for c in &comments {
            let side = if c.from_customer { "customer" } else { "support" };
            out!("  {} {} ({side}): {}", display(c.created_at, tz), c.author_name, c.body.replace('\n', "\n    "));
        }
    }
    out!("history:");
    for h in &history {
        out!("  {} {:<20} {}", display(h.at, tz), h.actor.to_string(), h.describe(Lang::En));
    }
    if !grants.is_empty() {
        out!("access:");
        for g in &grants {
            print_grant(store, g, ctx).await?;
        }
    }
    Ok(())
}

/// The first line of `s`, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max || s.lines().nth(1).is_some() {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Who acts when a command says `--as LOGIN`: the CLI, on the person's authority.
fn on_behalf(p: &Person) -> Actor {
    Actor::cli_on_behalf(p.id, &p.login)
}

async fn person(store: &Store, login: &str) -> anyhow::Result<Person> {
    store.person_by_login(login).await.map_err(|_| anyhow!("no person with login '{login}'"))
}

async fn print_grant(store: &Store, g: &Grant, ctx: &Context) -> anyhow::Result<()> {
    let tz = ctx.config.hours.timezone;
    let b = store.get_box(g.box_id).await?;
    let who = store.person(g.requested_by).await.map(|p| p.login).unwrap_or_default();
    let window = match (g.starts_at, g.ends_at) {
        (Some(s), Some(e)) => format!("{} – {}", display(s, tz), display(e, tz)),
        _ => format!("{} requested", iks_domain::rules::format_duration(chrono::Duration::seconds(g.requested_secs))),
    };
    out!(
        "  {:<5} {:<9} {} box {} by {who}: {window} — {}",
        g.id.to_string(),
        g.state.as_str(),
        g.ticket_id,
        b.name,
        g.reason
    );
    Ok(())
}

/// `--until`: a duration from now, or an instant.
fn parse_until(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(d) = parse_duration(s) {
        return Ok(iks_domain::time::now() + d);
    }
    iks_domain::time::from_db(s).map_err(|_| anyhow!("--until: '{s}' is neither a duration (30m) nor an RFC 3339 time"))
}

pub async fn access(ctx: &Context, cmd: AccessCommand, json: bool) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let config = &ctx.config;
    let g = match cmd {
        AccessCommand::Request { ticket, r#box, operator, duration, reason } => {
            let op = person(&store, &operator).await?;
            let d = parse_duration(&duration).map_err(|e| anyhow!("--duration: {e}"))?;
            grants::request(&store, config, &op, ticket, &r#box, d, &reason).await?
        }
        AccessCommand::Approve { grant, who, until, any_engineer } => {
            let who = person(&store, &who).await?;
            let until = until.as_deref().map(parse_until).transpose()?;
            let opts = ApproveOptions { until, any_engineer, note: None };
            grants::approve_as(&store, config, &on_behalf(&who), &who, grant, &opts).await?
        }
        AccessCommand::Reject { grant, who, reason } => {
            let who = person(&store, &who).await?;
            grants::reject_as(&store, &on_behalf(&who), &who, grant, &reason).await?
        }
        AccessCommand::Revoke { grant, who } => {
            let who = person(&store, &who).await?;
            grants::revoke_as(&store, &on_behalf(&who), &who, grant).await?
        }
        AccessCommand::List { ticket, state } => {
            let filter =
                GrantFilter { ticket, state: state.as_deref().and_then(GrantState::parse), ..Default::default() };
            let list = store.list_grants(&filter).await?;
            if json {
                return json_out(&list);
            }
            for g in &list {
                print_grant(&store, g, ctx).await?;
            }
            return Ok(());
        }
    };
    if json {
        return json_out(&g);
    }
    print_grant(&store, &g, ctx).await?;
    if g.state == GrantState::Approved {
        let b = store.get_box(g.box_id).await?;
        let target = iks_domain::target::Target { ticket: g.ticket_id, box_name: Some(b.name) };
        out!("  connect with: {}", config.ssh.connect_command(&target));
    }
    Ok(())
}

pub async fn session(ctx: &Context, cmd: SessionCommand, json: bool) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let tz = ctx.config.hours.timezone;
    let line = |s: &Session| {
        format!(
            "{:<6} {:<8} box {:<4} op {:<4} {} {} in {} out {}",
            s.id.to_string(),
            s.ticket_id.to_string(),
            s.box_id,
            s.operator_id,
            display(s.started_at, tz),
            s.end_reason.map_or("live", |r| r.as_str()),
            s.bytes_in,
            s.bytes_out
        )
    };
    match cmd {
        SessionCommand::List { live, ticket } => {
            let list = store.list_sessions(&SessionFilter { live, ticket, ..Default::default() }).await?;
            if json {
                return json_out(&list);
            }
            for s in &list {
                out!("{}", line(s));
            }
        }
        SessionCommand::Show { session } => {
            let s = store.session(session).await?;
            let events = store.session_events(session).await?;
            if json {
                return json_out(&json!({ "session": s, "events": events }));
            }
            out!("{}", line(&s));
            if let Some(r) = &s.recording {
                out!("  recording: {r} sha256 {}", s.recording_sha256.as_deref().unwrap_or("(live)"));
            }
            for e in &events {
                out!("  {} ch{} {} {}", display(e.at, tz), e.channel.unwrap_or(-1), e.kind, e.details);
            }
        }
        SessionCommand::Kill { session } => {
            let s = store.request_kill(&Actor::cli(), session).await?;
            out!("asked gateway node {} to end {}", s.node, s.id);
        }
        SessionCommand::Replay { session, speed, max_wait } => {
            if speed <= 0.0 {
                bail!("--speed must be positive");
            }
            let c = read_recording(ctx, &store, session, "session.replay").await?;
            let mut out = std::io::stdout().lock();
            let mut last = 0.0;
            for e in c.events.iter().filter(|e| e.code == "o") {
                let wait = ((e.time - last) / speed).clamp(0.0, max_wait);
                last = e.time;
                if wait > 0.0 {
                    out.flush()?;
                    std::thread::sleep(StdDuration::from_secs_f64(wait));
                }
                out.write_all(e.data.as_bytes())?;
            }
            out.flush()?;
        }
        SessionCommand::Transcript { session } => {
            let c = read_recording(ctx, &store, session, "session.transcript").await?;
            out!("{}", transcript::transcript(&c).trim_end_matches('\n'));
        }
    }
    Ok(())
}

/// Reads a session's recording; who looked at it is itself audited.
async fn read_recording(
    ctx: &Context,
    store: &Store,
    id: SessionId,
    action: &'static str,
) -> anyhow::Result<cast::Cast> {
    let bytes = iks_gateway::recording::fetch(store, &ctx.data_dir.recordings_dir(), &Actor::cli(), id, action).await?;
    Ok(cast::read(&bytes)?)
}
