//! The gateway's HTTP server: the web panel, with the helpdesk API under `/api/` and
//! `/metrics` for operators ([`crate::metrics`]). It takes its listener, so `serve` binds
//! the configured address and tests bind port 0.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::state::Gateway;

/// Serves until the node stops ([`crate::state::Gateway::shutdown`]), then lets requests
/// in flight finish.
pub async fn serve(app: Arc<Gateway>, listener: TcpListener) -> std::io::Result<()> {
    let mut stop = app.shutdown.subscribe();
    let stopped = async move { crate::sync::until_set(&mut stop).await };
    // The panel throttles sign-ins per client address, so it needs the peer's address.
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(stopped).await
}

/// The panel with the API beside it; each keeps its own "not found" (a page, or JSON).
/// Requests are handed whole to one or the other by their path, so neither router sees
/// path parameters of an outer route.
pub fn router(app: Arc<Gateway>) -> axum::Router {
    let routers = (crate::api::router(app.clone()), crate::web::router(app.clone()));
    crate::metrics::router(app).fallback_service(axum::routing::any(dispatch).with_state(routers))
}

async fn dispatch(State((api, web)): State<(axum::Router, axum::Router)>, req: Request) -> Response {
    let path = req.uri().path();
    let to = if path == "/api" || path.starts_with("/api/") { api } else { web };
    match to.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}
