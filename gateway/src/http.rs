//! The gateway's HTTP server: the web panel, with the helpdesk API under `/api/` and
//! `/metrics` for operators ([`crate::metrics`]). It takes its listener and a shutdown
//! future, so `serve` binds the configured address and tests bind port 0.

use std::future::Future;

use tokio::net::TcpListener;

use crate::state::App;

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The panel throttles sign-ins per client address, so it needs the peer's address.
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}

/// The panel with the API beside it; each keeps its own "not found" (a page, or JSON).
pub fn router(app: App) -> axum::Router {
    let api = crate::api::router(app.clone()).into_service::<axum::body::Body>();
    crate::web::router(app.clone())
        .merge(crate::metrics::router(app))
        .route_service("/api", api.clone())
        .route_service("/api/{*rest}", api)
}
