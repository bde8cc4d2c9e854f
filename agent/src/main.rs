//! `iks-agent`: runs on a customer's IKS box, dials out to the iks-gateway and keeps a
//! reverse tunnel, so the customer opens no inbound port. Only the command line exists
//! so far; the tunnel itself is the agent issue's work and each command says so.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Agent for an IKS box: dials out to the iks-gateway so support engineers can reach this
/// box's sshd without an inbound port, only while the customer's grant allows it.
#[derive(Debug, Parser)]
#[command(name = "iks-agent", version, max_term_width = 100)]
struct Cli {
    /// Directory holding the agent's key, the pinned gateway host key and its settings.
    #[arg(long, global = true, default_value = "/etc/iks-agent", value_name = "DIR")]
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
        #[arg(long)]
        expect_host_key: Option<String>,
    },
    /// Keep the connection to the gateway (run this from systemd).
    Run,
    /// Show whether the agent is connected, to which gateway, and live sessions.
    Status,
    /// Refuse all sessions on this box until `enable` (a local kill switch).
    Disable,
    /// Allow sessions again after `disable`.
    Enable,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Enroll { .. } => "enroll",
        Command::Run => "run",
        Command::Status => "status",
        Command::Disable => "disable",
        Command::Enable => "enable",
    };
    eprintln!("iks-agent: error: '{name}' is not implemented in this build yet");
    ExitCode::FAILURE
}
