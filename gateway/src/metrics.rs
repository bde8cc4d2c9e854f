//! `GET /metrics`: this node's vital signs in Prometheus' text format, for operators (a
//! scraper or `curl`) and for the fault and soak tests, which watch tasks, descriptors and
//! memory return to their baseline after churn.
//!
//! It holds counts only — no names, tickets or addresses — so it needs no token, like
//! `/api/openapi.json`; an installation that puts the HTTP port on a public address keeps
//! `/metrics` internal at its reverse proxy. The process figures come from `/proc/self`
//! and are left out where there is none.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::Gateway;

/// What one scrape reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Tokio tasks not yet finished: a leak shows as a count that only grows.
    pub tasks: usize,
    pub live_sessions: usize,
    pub agents: usize,
    pub open_fds: Option<usize>,
    pub resident_bytes: Option<u64>,
}

impl Sample {
    /// The figures of the running gateway (call it on the runtime).
    pub fn take(app: &Arc<Gateway>) -> Self {
        Self {
            tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            live_sessions: app.live.len(),
            agents: app.tunnels.agents(),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count),
            resident_bytes: resident_bytes(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: Option<u64>| {
            if let Some(v) = value {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"));
            }
        };
        let count = |n: usize| Some(n as u64);
        gauge("iks_gateway_tasks", "Tokio tasks alive in the gateway process.", count(self.tasks));
        gauge("iks_gateway_live_sessions", "Engineer sessions this node carries now.", count(self.live_sessions));
        gauge(
            "iks_gateway_agents_connected",
            "Box agents holding a control connection to this node.",
            count(self.agents),
        );
        gauge("process_open_fds", "Open file descriptors.", self.open_fds.map(|n| n as u64));
        gauge("process_resident_memory_bytes", "Resident memory size in bytes.", self.resident_bytes);
        out
    }
}

/// `VmRSS` of /proc/self/status (in kB there).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim();
    kib.parse::<u64>().ok().map(|k| k * 1024)
}

/// The `/metrics` route, to be merged into the HTTP server's router.
pub fn router(app: Arc<Gateway>) -> Router {
    Router::new().route("/metrics", axum::routing::get(metrics)).with_state(app)
}

async fn metrics(State(app): State<Arc<Gateway>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], Sample::take(&app).render())
}

#[cfg(test)]
pub(crate) mod tests {

    use super::*;

    /// The value of `name` in an exposition, e.g. `iks_gateway_tasks`.
    pub(crate) fn value(text: &str, name: &str) -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn renders_each_figure_with_help_and_type_and_skips_unknown_ones() {
        let s = Sample { tasks: 7, live_sessions: 2, agents: 1, open_fds: None, resident_bytes: Some(52_428_800) };
        let text = s.render();
        assert!(text.contains("# HELP iks_gateway_tasks Tokio tasks alive in the gateway process.\n"), "{text}");
        assert!(text.contains("# TYPE iks_gateway_tasks gauge\niks_gateway_tasks 7\n"), "{text}");
        assert_eq!(value(&text, "iks_gateway_live_sessions"), Some(2));
        assert_eq!(value(&text, "iks_gateway_agents_connected"), Some(1));
        assert_eq!(value(&text, "process_resident_memory_bytes"), Some(52_428_800));
        assert!(!text.contains("process_open_fds"), "no /proc, no line: {text}");
    }
}
