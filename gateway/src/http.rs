//! The gateway's HTTP server: the helpdesk API under `/api/` (and, later, the web panel
//! beside it), and `/metrics` for operators ([`crate::metrics`]). It takes its listener
//! and a shutdown future, so `serve` binds the configured address and tests bind port 0.

use std::future::Future;

use tokio::net::TcpListener;

use crate::state::App;

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = crate::api::router(app.clone()).merge(crate::metrics::router(app));
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
