//! `iks-gateway serve`.

use std::sync::Arc;

use anyhow::Context as _;
use iks_domain::model::Role;
use iks_gateway::datadir::{KeyRole, fingerprint};
use iks_gateway::node::{Job, Listeners, Node, NodeParts};

use super::Context;

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    init_logging();
    let store = ctx.store().await?;
    let host = ctx.data_dir.key(KeyRole::Host)?;
    let user_ca = ctx.data_dir.key(KeyRole::UserCa)?;
    let config = Arc::new(ctx.config.clone());
    let node = node_name(&config.ssh.node);
    let listener = tokio::net::TcpListener::bind(config.ssh.listen)
        .await
        .with_context(|| format!("cannot listen for SSH on {}", config.ssh.listen))?;
    let ssh_addr = listener.local_addr()?;
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http.listen))?;
    let http_addr = http_listener.local_addr()?;
    let root = ctx.data_dir.root().display().to_string();
    let ca_line = iks_gateway::ca::trusted_ca_line(&user_ca)?;
    let parts =
        NodeParts { store: store.clone(), config: config.clone(), data_dir: ctx.data_dir.clone(), user_ca, name: node };
    // Opening ends what a crash left open before anyone can connect.
    let gateway = Node::open(parts).await?;
    let node = &gateway.app().node;
    let recovered = gateway.recovered();
    out!("iks-gateway {} serving from {root} (node {node})", env!("CARGO_PKG_VERSION"));
    out!("  store:            {}", store.backend().name());
    out!("  SSH:              {ssh_addr} (engineers: ssh -p {} T-<ticket>@{})", ssh_addr.port(), ssh_addr.ip());
    let panel = config.http.base_url(http_addr);
    out!("  HTTP:             {http_addr} (panel: {panel}/login, helpdesk API: {panel}/api/openapi.json)");
    out!("  host key:         {}", fingerprint(&host));
    out!("  user CA:          {ca_line}");
    out!("  audit key:        {}", fingerprint(&ctx.data_dir.key(KeyRole::Audit)?));
    out!("                    (put this line in each box's TrustedUserCAKeys file)");
    let today = iks_domain::time::now().with_timezone(&config.hours.timezone).date_naive();
    if let Some(gap) = config.calendar_gap(today) {
        out!("  warning:          {gap}");
        tracing::warn!(%gap, "production calendar");
    }
    if recovered.sessions > 0 {
        out!("  ended {} session(s) left open by a crash", recovered.sessions);
    }
    if recovered.agents > 0 {
        out!("  marked {} agent(s) offline that a crash left online", recovered.agents);
    }
    if let Some(path) = iks_gateway::web::auth::setup_link(&store).await? {
        out!("");
        out!("The store is empty. Create the first admin in the panel (one-time link, valid 24 hours):");
        out!("  {panel}{path}");
    }
    if store.list_people(Some(Role::Admin), None).await?.is_empty() && store.list_orgs().await?.is_empty() {
        print_first_steps(&root);
    }
    tracing::info!(store = store.backend().name(), %ssh_addr, %http_addr, node, "gateway started");
    let running = gateway.start(Listeners { ssh: Some(listener), http: Some(http_listener) }, &Job::ALL)?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await?;
    Ok(())
}

/// The configured node name, or the host name.
fn node_name(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into())
}

fn print_first_steps(root: &str) {
    out!("");
    out!("The store is empty. First steps (in another terminal, same --data-dir):");
    out!("  iks-gateway --data-dir {root} admin org add --inn 7707083893 --name 'ООО Ромашка' --purchased 2026-06-01");
    out!("  iks-gateway --data-dir {root} admin box add --org 7707083893 --name main-gw \\");
    out!("      --product iks-standard --version 7 --address 127.0.0.1:22 --login support \\");
    out!("      --host-key /etc/ssh/ssh_host_ed25519_key.pub");
    out!("  iks-gateway --data-dir {root} admin operator add --login ivanov --name 'Иван Иванов' \\");
    out!("      --ssh-key ~/.ssh/id_ed25519.pub");
    out!("See README.md for the walkthrough to a first recorded session.");
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
