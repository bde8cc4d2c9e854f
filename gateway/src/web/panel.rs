//! What every handler of the panel shares: the node's [`Gateway`] and the panel's own memory
//! (templates, sign-in throttle, used second-factor codes, opened replays).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;

use axum::http::HeaderValue;

use super::templates::Templates;
use super::throttle::Throttle;
use super::totp::Totp;
use crate::state::Gateway;
use iks_domain::ids::SessionId;

/// The panel's state, behind an `Arc` in the router.
pub struct Panel {
    pub app: Arc<Gateway>,
    pub templates: Templates,
    pub throttle: Throttle,
    pub totp: Totp,
    pub replays: Opened,
}

impl std::fmt::Debug for Panel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Panel").finish_non_exhaustive()
    }
}

impl Panel {
    pub fn new(app: Arc<Gateway>) -> Self {
        Self {
            templates: Templates::new(app.tz()),
            throttle: Throttle::default(),
            totp: Totp::default(),
            replays: Opened::default(),
            app,
        }
    }

    /// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when the panel is
    /// served over TLS (its public URL is https), `max_age` in seconds (`None`: browser session).
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if self.app.config.http.public_url.starts_with("https://") {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }
}

/// The replays each panel session has opened (and been audited for): later parts of one
/// need no new event, any other request for a part does.
#[derive(Debug, Default)]
pub struct Opened(Mutex<HashSet<(i64, SessionId)>>);

/// Pairs remembered at most; forgetting them all costs only extra audit events.
const MAX_OPENED: usize = 10_000;

impl Opened {
    pub fn contains(&self, web_session: i64, id: SessionId) -> bool {
        crate::sync::lock(&self.0).contains(&(web_session, id))
    }

    pub fn insert(&self, web_session: i64, id: SessionId) {
        let mut set = crate::sync::lock(&self.0);
        if set.len() >= MAX_OPENED {
            set.clear();
        }
        set.insert((web_session, id));
    }
}
