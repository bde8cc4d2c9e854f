//! `iks-gateway audit …`: verify, export, tail, checkpoints and retention of the
//! hash-chained audit log (while `serve` runs, the node's jobs sign and apply retention).
//!
//! The rules and file formats live in the library (`iks_gateway::audit`); this is argument
//! handling and output. A verification problem is the command's one error line.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Subcommand};
use iks_domain::audit::{Actor, Event};
use iks_domain::ids::TicketId;
use iks_domain::time::{display_seconds, to_db};
use iks_gateway::audit::checkpoint::{Checkpoint, CheckpointLog};
use iks_gateway::audit::export::{self, ExportFilter};
use iks_gateway::audit::retention;
use iks_gateway::audit::verify::recording_state;
use iks_gateway::audit::verify::{Expectations, RecordingState, Summary};
use iks_gateway::config::AuditConfig;
use iks_gateway::datadir::{DataDir, KeyRole};
use iks_gateway::store::{EventFilter, Held, Store};
use russh::keys::PublicKey;

use super::Context;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the whole chain, the signed checkpoints and every ended session's recording;
    /// print OK, or the first problem and exit non-zero.
    Verify {
        /// Check a JSONL export instead of the store (needs no database).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The audit public key to trust, inline or as a file (a line of `audit public-key`)
        /// [default: the data dir's audit key].
        #[arg(long, value_name = "KEY|FILE")]
        public_key: Option<String>,
        /// With --file: also check the recordings the export vouches for, in this directory.
        #[arg(long, value_name = "DIR", requires = "file")]
        recordings: Option<PathBuf>,
    },
    /// Sign a checkpoint of the chain's newest event now.
    Checkpoint,
    /// Print the audit key's public key, to check checkpoints and exports elsewhere.
    PublicKey {
        /// As a line of an OpenSSH allowed_signers file, for `ssh-keygen -Y verify`.
        #[arg(long)]
        allowed_signers: bool,
    },
    /// Export events: JSONL (verifiable on its own with `verify --file`) or CSV for a SIEM.
    Export {
        /// Events at or after this date (YYYY-MM-DD, in the configured zone) or RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Events before this RFC 3339 time, or up to the end of this date (YYYY-MM-DD).
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        /// Only events about this ticket.
        #[arg(long, value_name = "T-NNNN")]
        ticket: Option<String>,
        /// Only events about this organisation (INN or ID).
        #[arg(long, value_name = "INN|ID")]
        org: Option<String>,
        #[arg(long, value_parser = ["jsonl", "csv"], default_value = "jsonl")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the newest events, one per line.
    Tail {
        /// How many.
        #[arg(short = 'n', value_name = "N", default_value_t = 20)]
        lines: i64,
        /// Keep printing new events as they are appended, until Ctrl-C.
        #[arg(short, long)]
        follow: bool,
    },
    /// Delete events older than [audit] retention_days now (`serve` does it daily).
    ApplyRetention,
}

/// The arguments of `audit verify --file`.
pub struct ExportCheck<'a> {
    file: &'a Path,
    public_key: Option<&'a str>,
    recordings: Option<&'a Path>,
}

impl AuditArgs {
    /// `audit verify --file …`, which runs without the data dir or the store.
    pub fn export_check(&self) -> Option<ExportCheck<'_>> {
        match &self.command {
            AuditCommand::Verify { file: Some(file), public_key, recordings } => {
                Some(ExportCheck { file, public_key: public_key.as_deref(), recordings: recordings.as_deref() })
            }
            _ => None,
        }
    }
}

pub async fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::Verify { file: Some(_), .. } => unreachable!("export checks run before loading the context"),
        AuditCommand::Verify { file: None, public_key, recordings: _ } => {
            let trusted = trusted_key(&ctx.data_dir, public_key.as_deref())?;
            let config = &ctx.config.audit;
            let log = config.checkpoint_log();
            let logged = log.as_ref().map(CheckpointLog::read).transpose()?.unwrap_or_default();
            let expectations = Expectations {
                now: iks_domain::time::now(),
                checkpoint_every: config.checkpoint_every,
                checkpoint_interval: config.checkpoint_interval(),
                retention_days: config.retention_days,
            };
            let held = Held { expectations: Some(expectations), logged: &logged };
            let store = ctx.store().await?;
            let recordings = ctx.data_dir.recordings_dir();
            let summary = store.verify_audit_held(trusted.as_ref(), Some(&recordings), &held).await?;
            out!("{}", ok_line(&summary));
            if log.is_some() {
                out!("checkpoint log: all {} checkpoints in it are in the database", logged.len());
            }
            Ok(())
        }
        AuditCommand::Checkpoint => {
            let key = ctx.data_dir.key(KeyRole::Audit)?;
            let store = ctx.store().await?;
            let c = store.checkpoint_audit(&key, None, None).await?.ok_or_else(|| anyhow!("the audit log is empty"))?;
            copy_to_log(&ctx.config.audit, &c)?;
            let s = &c.signed;
            out!(
                "checkpoint #{}: event #{} ({}) at {}, signed by {}",
                c.id,
                s.seq,
                s.hash,
                to_db(s.at),
                s.key_fingerprint
            );
            Ok(())
        }
        AuditCommand::PublicKey { allowed_signers } => {
            let key = ctx.data_dir.key(KeyRole::Audit)?;
            let line = key.public_key().to_openssh()?;
            if allowed_signers {
                out!("{ALLOWED_SIGNER} namespaces=\"{}\" {line}", iks_gateway::audit::checkpoint::NAMESPACE);
            } else {
                out!("{line}");
            }
            Ok(())
        }
        AuditCommand::Export { since, until, ticket, org, format, output } => {
            let store = ctx.store().await?;
            let tz = ctx.config.hours.timezone;
            let filter = ExportFilter {
                since: since.map(|s| parse_when("--since", &s, tz, false)).transpose()?,
                until: until.map(|s| parse_when("--until", &s, tz, true)).transpose()?,
                ticket: ticket.map(|t| t.parse::<TicketId>().map_err(|e| anyhow!("--ticket: {e}"))).transpose()?,
                org: match org {
                    Some(o) => Some(super::admin::resolve_org(&store, &o).await?.id),
                    None => None,
                },
                session: None,
            };
            if let (Some(s), Some(u)) = (filter.since, filter.until)
                && s >= u
            {
                bail!("--until must be after --since");
            }
            export(ctx, &store, filter, &format, output.as_deref()).await
        }
        AuditCommand::Tail { lines, follow } => tail(ctx, lines, follow).await,
        AuditCommand::ApplyRetention => {
            let days = ctx.config.audit.retention_days;
            let Some(cutoff) = retention::cutoff(days, iks_domain::time::now()) else {
                out!("retention is off ([audit] retention_days = 0): nothing deleted");
                return Ok(());
            };
            let key = ctx.data_dir.key(KeyRole::Audit)?;
            let store = ctx.store().await?;
            match store.apply_audit_retention(&Actor::cli(), &key, cutoff, None).await? {
                None => out!("no audit event is older than {days} days (before {})", to_db(cutoff)),
                Some(r) => {
                    copy_to_log(&ctx.config.audit, &r.checkpoint)?;
                    out!(
                        "deleted {} events before {}; the log now starts at #{} (retention event #{}, checkpoint #{})",
                        r.details.deleted,
                        to_db(cutoff),
                        r.details.first_seq,
                        r.event,
                        r.checkpoint.id
                    )
                }
            }
            Ok(())
        }
    }
}

/// Appends a new checkpoint to `[audit] checkpoint_log`, if one is configured.
fn copy_to_log(config: &AuditConfig, c: &Checkpoint) -> anyhow::Result<()> {
    if let Some(log) = config.checkpoint_log() {
        log.append(c).with_context(|| format!("cannot append checkpoint #{} to {}", c.id, config.checkpoint_log))?;
    }
    Ok(())
}

/// The principal of the `allowed_signers` line `audit public-key` prints.
const ALLOWED_SIGNER: &str = "audit@iks-gateway";

/// `audit verify --file`.
pub fn verify_export(data_dir: &Path, check: ExportCheck<'_>) -> anyhow::Result<()> {
    let trusted = trusted_key(&DataDir::at(data_dir), check.public_key)?;
    let file = File::open(check.file).with_context(|| format!("cannot open {}", check.file.display()))?;
    let mut in_dir;
    let recordings: Option<&mut dyn FnMut(&str) -> RecordingState> = match check.recordings {
        Some(dir) => {
            in_dir = |name: &str| recording_state(dir, name);
            Some(&mut in_dir)
        }
        None => None,
    };
    let report = export::verify_file(BufReader::new(file), trusted.as_ref(), recordings)?;
    out!("{}", ok_line(&report.summary));
    if !report.header.filter.is_empty() {
        out!(
            "note: a filtered export ({}): every event in it is intact and its {} runs of consecutive events \
             are linked, but events outside the filter are not in it",
            report.header.filter.describe(),
            report.summary.runs
        );
    }
    Ok(())
}

fn ok_line(s: &Summary) -> String {
    let checkpoint = match s.last_checkpoint {
        Some((id, at)) => format!("last checkpoint #{id} at {}", to_db(at)),
        None => "no checkpoint yet".into(),
    };
    format!("OK: {} events, {} recordings, {checkpoint}", s.events, s.recordings)
}

/// The key checkpoints and exports must be signed with: `--public-key`, else the data dir's
/// audit key if it exists (never generated here: a new key would vouch for nothing).
fn trusted_key(data_dir: &DataDir, given: Option<&str>) -> anyhow::Result<Option<PublicKey>> {
    if let Some(arg) = given {
        let line = super::public_key_line("--public-key", arg)?;
        let key = iks_domain::model::parse_public_key("public_key", &line)
            .map_err(|e| anyhow!("--public-key: {}", e.reason))?;
        return Ok(Some(key));
    }
    Ok(data_dir.existing_key(KeyRole::Audit)?.map(|k| k.public_key().clone()))
}

/// `--since`/`--until`: a date in the configured zone (`until` meaning its end), or an
/// RFC 3339 instant.
fn parse_when(flag: &str, s: &str, tz: Tz, end_of_day: bool) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(d) = iks_domain::time::parse_date(s) {
        let d = if end_of_day { d.succ_opt().ok_or_else(|| anyhow!("{flag}: '{s}' is too far ahead"))? } else { d };
        return Ok(iks_domain::time::start_of_day(d, tz));
    }
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| anyhow!("{flag}: '{s}' is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))
}

async fn export(
    ctx: &Context,
    store: &Store,
    filter: ExportFilter,
    format: &str,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    // Everything that can fail for a trivial reason fails before the export is recorded.
    let format = export::Format::parse(format).ok_or_else(|| anyhow!("--format: '{format}' is not jsonl or csv"))?;
    let key = ctx.data_dir.key(KeyRole::Audit)?;
    let out: Box<dyn Write + Send> = match output {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("--output: cannot create {}", path.display()))?)
        }
        None => Box::new(std::io::stdout()),
    };
    let mut out = WriteSink(BufWriter::new(out));
    let destination = output.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let done = store.export_audit(&key, &Actor::cli(), filter, format, &destination, &mut out).await?;
    out.0.flush()?;
    if let Some(path) = output {
        out!("exported {} events to {} (recorded as audit event #{})", done.events, path.display(), done.event.seq);
    }
    Ok(())
}

/// An export written to a file or stdout.
struct WriteSink(BufWriter<Box<dyn Write + Send>>);

impl iks_gateway::store::Sink for WriteSink {
    async fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.0.write_all(&bytes)
    }
}

async fn tail(ctx: &Context, lines: i64, follow: bool) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let tz = ctx.config.hours.timezone;
    let mut after = 0;
    for e in store.latest_audit_events(lines.max(0)).await? {
        out!("{}", tail_line(&e, tz));
        after = e.seq;
    }
    if !follow {
        return Ok(());
    }
    if after == 0 {
        after = store.latest_audit_events(1).await?.first().map_or(0, |e| e.seq);
    }
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = poll.tick() => {}
        }
        let new =
            EventFilter { after_seq: Some(after), limit: Some(iks_gateway::store::PAGE), ..EventFilter::default() };
        for e in store.audit_events(&new).await? {
            out!("{}", tail_line(&e, tz));
            after = e.seq;
        }
    }
}

/// `#12  2026-11-24 14:27:05 MSK  ivanov (person)  session.end  ticket=T-1042 session=S-7  {…}`
fn tail_line(e: &Event, tz: Tz) -> String {
    let s = e.subjects;
    let subjects: Vec<String> = [
        s.org.map(|v| format!("org={v}")),
        s.ticket.map(|v| format!("ticket={v}")),
        s.box_.map(|v| format!("box={v}")),
        s.grant.map(|v| format!("grant={v}")),
        s.session.map(|v| format!("session={v}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let subjects = if subjects.is_empty() { "-".to_string() } else { subjects.join(" ") };
    format!("#{}  {}  {}  {}  {subjects}  {}", e.seq, display_seconds(e.at, tz), e.actor, e.action, e.details)
}
