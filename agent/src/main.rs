//! The `iks-agent` command: parses the command line and calls the library. Errors reach
//! the user as one line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use iks_agent::config::DEFAULT_VERSION_FILE;
use iks_agent::config::{ConfigDir, default_sshd};
use iks_agent::enroll::{EnrollOptions, enroll};
use iks_agent::run::{Agent, Options};
use iks_agent::status::{self, Connection, Status};

/// Agent for an IKS box: dials out to the iks-gateway so support engineers can reach this
/// box's sshd without an inbound port, only while the customer's grant allows it.
#[derive(Debug, Parser)]
#[command(name = "iks-agent", version, max_term_width = 100)]
struct Cli {
    /// Directory holding the agent's key, the pinned gateway host key and its settings.
    #[arg(long, global = true, env = "IKS_AGENT_CONFIG_DIR", default_value = "/etc/iks-agent", value_name = "DIR")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this box with a gateway using a one-time token from the gateway's admin.
    Enroll {
        /// The gateway's SSH address, HOST:PORT.
        #[arg(long)]
        gateway: String,
        /// The one-time enrolment token.
        #[arg(long)]
        token: String,
        /// The gateway host key fingerprint to expect (SHA256:…); trust on first use if omitted.
        #[arg(long, value_name = "SHA256:…")]
        expect_host_key: Option<String>,
        /// Where this box's sshd listens: the only place sessions are connected to.
        #[arg(long, default_value_t = default_sshd(), value_name = "HOST:PORT")]
        sshd: String,
        /// The box's sshd public host key, which the gateway pins.
        #[arg(long, default_value = "/etc/ssh/ssh_host_ed25519_key.pub", value_name = "FILE")]
        sshd_host_key: PathBuf,
        /// Product ID running on the box (iks-standard, iks-fstec, …) [default: from the version file].
        #[arg(long)]
        product: Option<String>,
        /// Version running on the box (e.g. 7.2.1) [default: from the version file].
        #[arg(long)]
        version: Option<String>,
        /// File with PRODUCT= and VERSION= lines, read at every connection.
        #[arg(long, default_value = DEFAULT_VERSION_FILE, value_name = "FILE")]
        version_file: PathBuf,
        /// Enrol again although this config dir is already enrolled.
        #[arg(long)]
        force: bool,
    },
    /// Keep the connection to the gateway (run this from systemd).
    Run,
    /// Show whether the agent is connected, to which gateway, and live sessions.
    /// Exit status 0 when connected, 3 otherwise.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Refuse all sessions on this box until `enable` (a local kill switch); live sessions end.
    Disable,
    /// Allow sessions again after `disable`.
    Enable,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iks-agent: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("iks-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = ConfigDir::new(&cli.config_dir);
    match cli.command {
        Command::Enroll {
            gateway,
            token,
            expect_host_key,
            sshd,
            sshd_host_key,
            product,
            version,
            version_file,
            force,
        } => {
            let options = EnrollOptions {
                gateway,
                token,
                expect_host_key,
                sshd,
                product,
                version,
                version_file,
                sshd_host_key_file: sshd_host_key,
                force,
            };
            let done = enroll(&dir, &options).await?;
            let r = &done.reply;
            println!("enrolled as box {} of {} (INN {}) at gateway {}", r.box_name, r.org, r.inn, options.gateway);
            let trust = if done.trusted_on_first_use {
                " (trusted on first use: compare it with the one the gateway's admin sees)"
            } else {
                " (as expected)"
            };
            println!("  gateway host key: {}{trust}", done.gateway_host_key);
            match (&r.pinned_host_key, done.sent_box_host_key) {
                (Some(fp), _) => println!("  box host key:     {fp} pinned at the gateway"),
                (None, true) => println!("  box host key:     sent, not pinned"),
                (None, false) => println!(
                    "  box host key:     not found at {}; the gateway's admin must pin it (--host-key)",
                    options.sshd_host_key_file.display()
                ),
            }
            let release = &done.reported;
            println!(
                "  reported:         {} {}",
                release.product.as_deref().unwrap_or("(product unknown)"),
                release.version.as_deref().unwrap_or("(version unknown)")
            );
            println!("  configuration:    {}", dir.config_file().display());
            println!("next: systemctl enable --now iks-agent   (or: iks-agent run)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            init_logging();
            let agent = Agent::load(dir, Options::default())?;
            tracing::info!(
                gateway = %agent.config().gateway, r#box = %agent.config().box_name, sshd = %agent.config().sshd,
                version = iks_agent::VERSION, "iks-agent starting"
            );
            agent.run(shutdown_signal()).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let status = Status::read(&dir).context("reading the agent's status")?;
            let disabled = status::remote_access_disabled(&dir);
            let running = status.as_ref().is_some_and(Status::writer_alive);
            let connected = running && status.as_ref().is_some_and(|s| s.connection == Connection::Connected);
            if json {
                let v = serde_json::json!({ "running": running, "connected": connected,
                                            "remote_access_disabled": disabled, "status": status });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(status.as_ref(), running, disabled);
            }
            Ok(if connected { ExitCode::SUCCESS } else { ExitCode::from(3) })
        }
        Command::Disable => {
            let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
            status::disable(&dir, &who)?;
            println!("remote access to this box is disabled: new sessions are refused and live ones end");
            println!("within a few seconds (if the agent runs); `iks-agent enable` allows them again.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Enable => {
            status::enable(&dir)?;
            println!("remote access to this box is enabled again (sessions still need a grant at the gateway)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_status(status: Option<&Status>, running: bool, disabled: bool) {
    let access = if disabled { "disabled on this box (iks-agent enable to allow)" } else { "allowed" };
    let Some(s) = status else {
        println!("iks-agent has not run here yet");
        println!("  remote access:    {access}");
        return;
    };
    let since = s.since.format("%Y-%m-%d %H:%M:%S UTC");
    let state = match (running, s.connection) {
        (false, _) => format!("not running (last status from {since})"),
        (true, Connection::Connected) => format!("connected since {since}"),
        (true, Connection::Connecting) => "connecting".to_string(),
        (true, Connection::Disconnected) => format!("disconnected since {since}, retrying"),
        (true, Connection::Stopped) => "stopping".to_string(),
    };
    println!("iks-agent {}: {state}", s.agent_version);
    println!("  gateway:          {}", s.gateway);
    println!("  box:              {} of {}", s.box_name, s.org);
    println!("  live sessions:    {}", if running { s.live_sessions } else { 0 });
    println!("  remote access:    {access}");
    if let Some(e) = &s.last_error {
        println!("  last error:       {e}");
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IKS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
