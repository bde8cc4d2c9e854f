//! `iks-bench gateway`: the gateway's SSH front (the same library code `iks-gateway serve`
//! runs) in a process of its own, so its CPU and memory are measured apart from the
//! bench. It exists for the recording-cost figure: this binary is built with the
//! gateway's `bench-hooks` feature, and `--unrecorded` is the only way to reach
//! [`iks_gateway::ssh::tap::bench::record_nothing`]. The product binary has no such
//! flag, key or variable.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use iks_gateway::config::Config;
use iks_gateway::datadir::{DataDir, KeyRole};
use iks_gateway::node::{Job, Listeners, Node, NodeParts};
use iks_gateway::store::Store;

/// Serves SSH on `data_dir` until SIGTERM, printing the `SSH:` line the harness waits for.
pub async fn serve(data_dir: &Path, unrecorded: bool) -> anyhow::Result<()> {
    if unrecorded {
        iks_gateway::ssh::tap::bench::record_nothing();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("IKS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let data_dir = DataDir::open(data_dir)?;
    let config = Config::load(None, std::env::vars())?;
    let store = Store::open(&config.database_url(data_dir.root())).await.context("opening the store")?;
    let listener = tokio::net::TcpListener::bind(config.ssh.listen).await.context("SSH listener")?;
    let addr = listener.local_addr()?;
    let user_ca = data_dir.key(KeyRole::UserCa)?;
    let parts = NodeParts { store, config: Arc::new(config), data_dir, user_ca, name: "iks-bench".into() };
    // Only what a session needs: the periodic jobs' work would be measured with it.
    let node = Node::open(parts).await?.start(Listeners { ssh: Some(listener), http: None }, &[Job::Indexing])?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let what = if unrecorded { "recording OFF (bench only)" } else { "recording on" };
    println!("iks-bench gateway, {what}\n  SSH:              {addr}");
    term.recv().await;
    node.shutdown().await?;
    Ok(())
}
