//! The watchdog: ends, warns and re-checks the live sessions of this node, applying
//! [`iks_domain::review::review`] to what the store says of them every [`TICK`], and
//! [`iks_domain::review::outage`] while the store cannot be read (the policy is described in
//! [`crate::live`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::state::Gateway;
use iks_domain::ids::SessionId;
use iks_domain::model::EndReason;
use iks_domain::review::{LiveCheck, Verdict, outage, review};

use super::Every;

/// How often the watchdog looks at the store.
pub(super) const TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// How often (in ticks) live sessions are re-checked against every rule of a new
/// connection ([`crate::recheck`]): a change ends a session within a second.
const RECHECK_EVERY: u32 = 3;

/// Ends and warns the live sessions on each round of `every`.
pub(super) async fn run(app: &Arc<Gateway>, mut every: Every) {
    let mut n: u32 = 0;
    let grace = app.config.access.store_grace();
    // The last state read, applied while the store is away; and since when it is away.
    let mut last: HashMap<SessionId, LiveCheck> = HashMap::new();
    let mut lost_since: Option<std::time::Instant> = None;
    while every.next().await {
        n = n.wrapping_add(1);
        if app.live.is_empty() {
            last.clear();
            lost_since = None;
            continue;
        }
        // Sessions registered before the read must be in it: one that is not was ended in the
        // store (by a node that took over, by hand) and must not run on unrecorded.
        let known: Vec<SessionId> = app.live.all().iter().map(|s| s.id).collect();
        let checks = match app.store.live_checks(&app.node).await {
            Ok(c) => {
                let listed: HashSet<SessionId> = c.iter().map(|c| c.session).collect();
                for id in known.iter().filter(|id| !listed.contains(id)) {
                    if let Some(live) = app.live.get(*id) {
                        tracing::warn!(session.id = %id, "the store holds a live session as ended; ending it");
                        live.close(EndReason::EndedInStore, &format!("the store holds session {id} as ended"));
                    }
                }
                if let Some(since) = lost_since.take() {
                    tracing::info!(after = ?since.elapsed(), "the watchdog reads the store again");
                }
                last = c.iter().map(|c| (c.session, c.clone())).collect();
                c
            }
            Err(e) => {
                let since = *lost_since.get_or_insert_with(|| {
                    tracing::warn!(error = %e, grace = ?grace, "the watchdog cannot read the store; live sessions go on for the grace");
                    std::time::Instant::now()
                });
                if let Verdict::End { reason, message } = outage(since.elapsed(), grace) {
                    for live in app.live.all() {
                        tracing::info!(session.id = %live.id, reason = reason.as_str(), "ending session");
                        live.close(reason, &message);
                    }
                    continue;
                }
                last.values().cloned().collect()
            }
        };
        let now = iks_domain::time::now();
        let warn_before = app.config.access.warn_before();
        for c in checks {
            let Some(live) = app.live.get(c.session) else { continue };
            match review(&c, now, app.tz(), &warn_before, live.warned.load(Ordering::Relaxed)) {
                Verdict::Continue => {}
                Verdict::Warn { announced, message } => {
                    live.warned.store(announced, Ordering::Relaxed);
                    live.notify(&message);
                }
                Verdict::End { reason, message } => {
                    tracing::info!(session.id = %c.session, reason = reason.as_str(), "ending session");
                    live.close(reason, &message);
                }
            }
        }
        // After the review: a revocation or a ticket's close is told in the review's words.
        if lost_since.is_none() && n.is_multiple_of(RECHECK_EVERY) {
            recheck_all(app).await;
        }
    }
}

/// Re-applies every rule of a new connection to each live session, all at once and within
/// a tick's time: a session whose facts cannot be read now is re-checked next time (a store
/// outage is [`outage`]'s to handle).
async fn recheck_all(app: &Arc<Gateway>) {
    use crate::recheck::{Gathered, Recheck, Subject, recheck};
    let mut checks = tokio::task::JoinSet::new();
    for live in app.live.all() {
        let app = app.clone();
        checks.spawn(async move {
            let subject = Subject {
                operator: live.operator_id,
                key_fingerprint: &live.key_fingerprint,
                ticket: live.ticket,
                iks_box: live.box_id,
            };
            let gathered = match Gathered::load(&app.store, &subject).await {
                Ok(g) => g,
                Err(e) => return tracing::debug!(session.id = %live.id, error = %e, "cannot re-check a session now"),
            };
            match recheck(&gathered, iks_domain::time::now(), app.tz(), &app.config.products) {
                Recheck::Holds { forwarding } => live.set_forwarding(forwarding),
                Recheck::End { reason, message } => {
                    tracing::info!(session.id = %live.id, reason = reason.as_str(), %message, "ending session: a rule no longer holds");
                    live.close(reason, &message);
                }
            }
        });
    }
    let all = async { while checks.join_next().await.is_some() {} };
    if tokio::time::timeout(TICK * RECHECK_EVERY, all).await.is_err() {
        tracing::warn!(
            "re-checking live sessions took longer than {:?}; the rest wait for the next round",
            TICK * RECHECK_EVERY
        );
    }
}
