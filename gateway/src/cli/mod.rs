//! Command-line definition and glue.

/// `println!` for command output. The text may hold people's words (names, notes,
/// descriptions), so control characters are shown, never sent to the terminal.
macro_rules! out {
    ($($arg:tt)*) => {
        crate::cli::write_line(&iks_domain::text::for_terminal(&format!($($arg)*)))
    };
}

/// Writes one line to stdout; a closed pipe (`| head`) ends the command quietly instead of
/// panicking, as Unix tools do.
fn write_line(line: &str) {
    use std::io::Write as _;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// `--json` output. JSON escapes control characters itself, so its strings stay exactly as
/// stored.
/// A parser for a domain enum that names its own values (`ALL`, `as_str`): the domain
/// crate knows nothing of clap, and `--help` still lists the choices.
fn named<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(all.iter().map(|v| name(*v)))
        .map(move |s| *all.iter().find(|v| name(**v) == s).expect("clap accepted only these names"))
}

fn json_out<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    write_line(&serde_json::to_string_pretty(v)?);
    Ok(())
}

mod admin;
mod agents;
mod audit;
mod serve;
mod work;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use clap::{Parser, Subcommand};
use iks_gateway::config::{self, Config};
use iks_gateway::datadir::DataDir;
use iks_gateway::store::Store;

/// Bastion gateway for ticket-bound, time-boxed, recorded SSH sessions into IKS boxes.
///
/// Start with `iks-gateway serve`: it creates the data dir (SQLite database, keys,
/// recordings) and prints what to do next. Add customers, boxes and engineers with the
/// `admin` commands.
#[derive(Debug, Parser)]
#[command(name = "iks-gateway", version, max_term_width = 100)]
pub struct Cli {
    /// Directory for the SQLite database, the gateway's keys and session recordings.
    #[arg(long, global = true, env = "IKS_DATA_DIR", default_value = "./data", value_name = "DIR")]
    data_dir: PathBuf,
    /// TOML configuration file [default: <DIR>/iks-gateway.toml when it exists].
    /// Print a commented example with `iks-gateway config example`.
    #[arg(long, global = true, env = "IKS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: SSH for engineers, the web panel and the helpdesk API.
    Serve,
    /// Create or upgrade the database schema, then exit (`serve` also does this).
    Migrate,
    /// Show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage organisations, boxes and people.
    Admin(Box<admin::AdminArgs>),
    /// The hash-chained audit log: verify, export, tail, checkpoints, retention.
    Audit(audit::AuditArgs),
    /// Agents of boxes reached through an outbound tunnel: enrol, revoke.
    #[command(name = "box")]
    Box_ {
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: agents::BoxCommand,
    },
    /// Support tickets: every session belongs to one.
    Ticket {
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: work::TicketCommand,
    },
    /// Access requests and grants: who may reach which box, when.
    Access {
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: work::AccessCommand,
    },
    /// Sessions: list, inspect, terminate, replay.
    Session {
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: work::SessionCommand,
    },
    /// The gateway's user certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Print the line for a box's TrustedUserCAKeys file.
    PublicKey,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented example configuration with every key at its default.
    Example,
    /// Print the configuration in effect (file, environment and defaults combined).
    Show,
}

/// What every command needs: the data dir, the configuration and the store.
pub struct Context {
    pub data_dir: DataDir,
    pub config: Config,
}

impl Context {
    fn load(cli: &Cli) -> anyhow::Result<Self> {
        let data_dir = DataDir::open(&cli.data_dir)?;
        let default_file = data_dir.config_file();
        let file = cli.config.clone().or_else(|| default_file.exists().then_some(default_file));
        let config = Config::load(file.as_deref(), std::env::vars())?;
        Ok(Self { data_dir, config })
    }

    pub async fn store(&self) -> anyhow::Result<Store> {
        let url = self.config.database_url(self.data_dir.root());
        Store::open(&url).await.context("opening the store")
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config(ConfigCommand::Example) = cli.command {
        out!("{}", config::EXAMPLE.trim_end());
        return Ok(());
    }
    // An auditor checks an export anywhere: no database, no data dir created.
    if let Command::Audit(args) = &cli.command
        && let Some(check) = args.export_check()
    {
        return audit::verify_export(&cli.data_dir, check);
    }
    let ctx = Context::load(&cli)?;
    match cli.command {
        Command::Serve => serve::run(&ctx).await,
        Command::Migrate => {
            let store = ctx.store().await?;
            out!("database is up to date ({})", store.backend().name());
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            out!("{}", toml::to_string_pretty(&ctx.config)?.trim_end());
            Ok(())
        }
        Command::Config(ConfigCommand::Example) => unreachable!("handled before loading the configuration"),
        Command::Admin(args) => admin::run(&ctx, *args).await,
        Command::Audit(args) => audit::run(&ctx, args).await,
        Command::Box_ { json, command } => agents::run(&ctx, command, json).await,
        Command::Ticket { json, command } => work::ticket(&ctx, command, json).await,
        Command::Access { json, command } => work::access(&ctx, command, json).await,
        Command::Session { json, command } => work::session(&ctx, command, json).await,
        Command::Ca(CaCommand::PublicKey) => {
            let ca = ctx.data_dir.key(iks_gateway::datadir::KeyRole::UserCa)?;
            out!("{}", iks_gateway::ca::trusted_ca_line(&ca)?);
            Ok(())
        }
    }
}

/// The public key line in `arg`, given inline or as a file (its first key line), from the
/// key type on: `ssh-keyscan` lines start with a host name, `allowed_signers` lines with a
/// principal.
fn public_key_line(flag: &str, arg: &str) -> anyhow::Result<String> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("{flag}: reading {arg}"))?
    } else {
        arg.to_string()
    };
    let line = key_lines(&text).next().map(|(_, l)| l).ok_or_else(|| anyhow!("{flag}: no public key in '{arg}'"))?;
    let line = line.find("ssh-").or_else(|| line.find("ecdsa-")).map_or(line, |i| &line[i..]);
    Ok(line.to_string())
}

/// Non-empty, non-comment lines with their 1-based numbers.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}
