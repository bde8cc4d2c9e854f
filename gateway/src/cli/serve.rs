//! `iks-gateway serve`.

use iks_gateway::datadir::{KeyRole, fingerprint};
use iks_gateway::model::Role;

use super::Context;

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    init_logging();
    let store = ctx.store().await?;
    let host = ctx.data_dir.key(KeyRole::Host)?;
    let ca = ctx.data_dir.key(KeyRole::UserCa)?;
    let root = ctx.data_dir.root().display();
    println!("iks-gateway {} serving from {root}", env!("CARGO_PKG_VERSION"));
    println!("  store:            {}", store.backend().name());
    println!("  host key:         {}", fingerprint(&host));
    println!("  user CA key:      {}", fingerprint(&ca));
    println!("  audit key:        {}", fingerprint(&ctx.data_dir.key(KeyRole::Audit)?));
    if store.list_people(Some(Role::Admin), None).await?.is_empty() && store.list_orgs().await?.is_empty() {
        print_first_steps(&root.to_string());
    }
    let audit = super::audit::Upkeep::start(ctx, &store)?;
    tracing::info!(store = store.backend().name(), "gateway started");
    shutdown_signal().await;
    tracing::info!("shutting down");
    audit.shutdown().await;
    store.close().await;
    Ok(())
}

fn print_first_steps(root: &str) {
    println!();
    println!("The store is empty. First steps (in another terminal, same --data-dir):");
    println!(
        "  iks-gateway --data-dir {root} admin org add --inn 7707083893 --name 'ООО Ромашка' --purchased 2026-06-01"
    );
    println!("  iks-gateway --data-dir {root} admin box add --org 7707083893 --name main-gw \\");
    println!("      --product iks-standard --version 7 --address 127.0.0.1:22 --login support");
    println!("  iks-gateway --data-dir {root} admin operator add --login ivanov --name 'Иван Иванов' \\");
    println!("      --ssh-key ~/.ssh/id_ed25519.pub");
    println!("See README.md for the walkthrough to a first recorded session.");
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
