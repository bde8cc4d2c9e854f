//! Day-to-day commands: tickets, access requests, sessions, the CA.

use std::io::Write as _;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use iks_gateway::audit::{Actor, NewEvent, Subjects};
use iks_gateway::grants::{self, ApproveOptions};
use iks_gateway::ids::{GrantId, SessionId, TicketId};
use iks_gateway::model::{Grant, GrantState, Person, Session};
use iks_gateway::recording::{cast, transcript};
use iks_gateway::rules::parse_duration;
use iks_gateway::store::{GrantFilter, SessionFilter, Store};
use iks_gateway::tickets::{self, Filing};
use serde_json::json;

use super::Context;
use super::admin::{resolve_org, resolve_org_filter};

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Open a ticket (the regulations: INN, contact, product version, description).
    Open {
        /// The organisation (INN or ID).
        #[arg(long)]
        org: String,
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
    },
    /// Show a ticket and its access requests.
    Show { ticket: TicketId },
    /// List tickets, newest first.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Close a ticket: its grants are revoked and its live sessions end.
    Close {
        ticket: TicketId,
        #[arg(long, default_value = "resolved")]
        reason: String,
    },
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
        /// Only the engineer who asked may use the grant.
        #[arg(long)]
        only_requester: bool,
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

fn json_out<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn ticket(ctx: &Context, cmd: TicketCommand, json: bool) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    match cmd {
        TicketCommand::Open { org, contact, phone, email, product, version, description } => {
            let org = resolve_org(&store, &org).await?;
            let filing = Filing {
                org: org.id,
                contact_name: contact,
                contact_phone: phone,
                contact_email: email,
                product,
                version,
                description,
            };
            let t = tickets::open(&store, &ctx.config, &Actor::cli(), filing).await?;
            if json {
                return json_out(&t);
            }
            let due = t
                .response_due_at
                .map_or_else(|| "none".into(), |d| iks_gateway::time::display(d, ctx.config.hours.timezone));
            out!("opened {} for {} (priority {}, first response due {due})", t.id, org.name, t.priority);
        }
        TicketCommand::Show { ticket } => {
            let t = store.ticket(ticket).await?;
            let grants = store.list_grants(&GrantFilter { ticket: Some(ticket), ..Default::default() }).await?;
            if json {
                return json_out(&json!({ "ticket": t, "grants": grants }));
            }
            let org = store.org(t.org_id).await?;
            out!("{} ({}) of {} — {} {}", t.id, t.state.as_str(), org.name, t.product, t.version);
            out!("  contact:  {}", t.contact_name);
            out!("  priority: {}", t.priority);
            out!("  {}", t.description);
            for g in &grants {
                print_grant(&store, g, ctx).await?;
            }
        }
        TicketCommand::List { org } => {
            let org = resolve_org_filter(&store, org.as_deref()).await?;
            let list = store.list_tickets(org).await?;
            if json {
                return json_out(&list);
            }
            for t in &list {
                out!(
                    "{:<8} {:<11} p{} org {:<4} {}",
                    t.id.to_string(),
                    t.state.as_str(),
                    t.priority,
                    t.org_id,
                    t.description
                );
            }
        }
        TicketCommand::Close { ticket, reason } => {
            let t = store.close_ticket(&Actor::cli(), ticket, &reason).await?;
            if json {
                return json_out(&t);
            }
            out!("closed {} ({reason}); its grants are revoked", t.id);
        }
    }
    Ok(())
}

async fn person(store: &Store, login: &str) -> anyhow::Result<Person> {
    store.person_by_login(login).await.map_err(|_| anyhow!("no person with login '{login}'"))
}

async fn print_grant(store: &Store, g: &Grant, ctx: &Context) -> anyhow::Result<()> {
    let tz = ctx.config.hours.timezone;
    let b = store.get_box(g.box_id).await?;
    let who = store.person(g.requested_by).await.map(|p| p.login).unwrap_or_default();
    let window = match (g.starts_at, g.ends_at) {
        (Some(s), Some(e)) => format!("{} – {}", iks_gateway::time::display(s, tz), iks_gateway::time::display(e, tz)),
        _ => format!("{} requested", iks_gateway::rules::format_duration(chrono::Duration::seconds(g.requested_secs))),
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
        return Ok(iks_gateway::time::now() + d);
    }
    iks_gateway::time::from_db(s)
        .map_err(|_| anyhow!("--until: '{s}' is neither a duration (30m) nor an RFC 3339 time"))
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
        AccessCommand::Approve { grant, who, until, only_requester } => {
            let who = person(&store, &who).await?;
            let until = until.as_deref().map(parse_until).transpose()?;
            grants::approve(&store, config, &who, grant, &ApproveOptions { until, only_requester, note: None }).await?
        }
        AccessCommand::Reject { grant, who, reason } => {
            grants::reject(&store, &person(&store, &who).await?, grant, &reason).await?
        }
        AccessCommand::Revoke { grant, who } => grants::revoke(&store, &person(&store, &who).await?, grant).await?,
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
        let port = config.ssh.listen.port();
        out!("  connect with: ssh -p {port} {}+{}@{}", g.ticket_id, b.name, config.ssh.listen.ip());
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
            iks_gateway::time::display(s.started_at, tz),
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
                out!(
                    "  {} ch{} {} {}",
                    iks_gateway::time::display(e.at, tz),
                    e.channel.unwrap_or(-1),
                    e.kind,
                    e.details
                );
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
    let s = store.session(id).await?;
    let rel = s.recording.as_deref().ok_or_else(|| anyhow!("{id} has no recording"))?;
    let path = ctx.data_dir.recordings_dir().join(rel);
    let bytes = std::fs::read(&path).map_err(|e| anyhow!("cannot read the recording {}: {e}", path.display()))?;
    let org = store.get_box(s.box_id).await?.org_id;
    let subjects = Subjects {
        org: Some(org),
        ticket: Some(s.ticket_id),
        box_: Some(s.box_id),
        grant: Some(s.grant_id),
        session: Some(id),
    };
    store.append_event(NewEvent::new(&Actor::cli(), action, subjects, json!({ "recording": rel }))).await?;
    Ok(cast::read(&bytes)?)
}
