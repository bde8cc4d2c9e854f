//! The helpdesk API: JSON over HTTP under `/api/`, for the helpdesk system that files
//! tickets for customers and relays their comments.
//!
//! The interface to the rest of the gateway is [`router`]; the HTTP server
//! ([`crate::http`]) mounts it beside the web panel. Every handler authenticates its
//! caller with an API token ([`auth`]), goes through the same library functions as the
//! CLI ([`crate::tickets`]), and answers errors as one JSON shape ([`error`]). What the
//! API offers is described for people and tools in `openapi.json`, served at
//! `/api/openapi.json`; a test checks it lists exactly the routes below.
//!
//! A token scoped to one organisation sees only that organisation's tickets and sessions:
//! anything else is "not found", exactly as if it did not exist. Such a token speaks for
//! the customer: its comments are the customer's, and it cannot escalate.

pub mod auth;
pub mod error;
pub(crate) mod json;
#[cfg(test)]
mod tests;
pub(crate) mod tickets;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use self::error::ApiError;
use crate::state::Gateway;

/// The OpenAPI 3 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Declares the routes once, for the router and for the test that holds the OpenAPI
/// document to them.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path;)*) => {
        /// Every route as (method, path), in OpenAPI's spelling.
        #[cfg(test)]
        pub(crate) const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn routes() -> Router<Arc<Gateway>> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

routes! {
    post "/api/tickets" => tickets::open;
    get "/api/tickets" => tickets::list;
    get "/api/tickets/{id}" => tickets::show;
    post "/api/tickets/{id}/comments" => tickets::comment;
    post "/api/tickets/{id}/escalate" => tickets::escalate;
    post "/api/tickets/{id}/close" => tickets::close;
    get "/api/tickets/{id}/sessions" => tickets::sessions;
    get "/api/sessions/{id}/recording" => tickets::recording;
    get "/api/openapi.json" => openapi;
}

/// The API, ready to be served.
pub fn router(app: Arc<Gateway>) -> Router {
    routes()
        .fallback(|| async { ApiError::not_found("no such API endpoint; see /api/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "see /api/openapi.json")
        })
        .with_state(app)
}

/// The description is public: it holds no data, and tools read it before they have a token.
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
