//! Opening an engineer's session, once per connection on its first channel: the facts
//! gathered ([`crate::recheck::gather`]), the access decision ([`iks_domain::decision::decide`]),
//! then the session row, the recording (no recording, no session) and the box's
//! connection. Every refusal is stored (unless the store is the trouble: then the log is
//! its record) and returned as the one line the engineer reads.

use std::sync::Arc;

use iks_proto::read_ahead::ReadAhead;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use super::established::{BoxLeg, Established, end_row};
use super::upstream::{self, Credential};
use crate::ca::{self, CertRequest};
use crate::datadir::KeyRole;
use crate::live::LiveSession;
use crate::recheck::{BoxChoice, Gathered, NotGathered};
use crate::recording::Recording;
use crate::sever::Severer;
use crate::state::Gateway;
use crate::store::StoreError;
use iks_domain::audit::{Actor, Subjects};
use iks_domain::decision::{self, Refusal};
use iks_domain::ids::{SessionId, TicketId};
use iks_domain::model::{BoxAuth, EndReason, Grant, IksBox, NewSession, Organisation, Person, SessionEnd};
use iks_domain::target::Target;

/// The one line an engineer reads while the store is away: no decision without it.
pub fn store_unavailable() -> Refusal {
    Refusal::gateway("store", "store unavailable: the gateway cannot check access right now; try again shortly")
}

/// Why a session cannot start when its recording cannot be created.
fn recording_refusal(e: &std::io::Error) -> Refusal {
    let message = if crate::recording::is_full(e) {
        format!("recording storage full ({e}); no session goes unrecorded")
    } else {
        format!("the session cannot be recorded ({e}); no session goes unrecorded")
    };
    Refusal::gateway("recording", message)
}

/// The store failed while deciding: the store cannot take the refusal either, so the log
/// is its record.
fn store_down(e: StoreError) -> Refusal {
    warn!(error = %e, "session refused: store unavailable");
    store_unavailable()
}

/// An authenticated engineer asking for his session.
pub struct Opening<'a> {
    pub app: &'a Arc<Gateway>,
    pub operator: &'a Person,
    /// The SSH user name: the target.
    pub user: &'a str,
    pub key_fingerprint: &'a str,
    /// The engineer's address, as stored with the session and its refusals.
    pub client: Option<String>,
    /// Lets the watchdog and shutdown close the connection ([`LiveSession::close`]).
    pub closer: &'a watch::Sender<Option<String>>,
}

/// What [`Opening::open`] has settled when the session row exists.
struct Started {
    session: iks_domain::model::Session,
    grant: Grant,
    org: Organisation,
    operator: Person,
    ticket_id: TicketId,
    iks_box: IksBox,
    subjects: Subjects,
}

impl Opening<'_> {
    fn actor(&self) -> Actor {
        Actor::person(self.operator.id, &self.operator.login)
    }

    async fn refuse(&self, subjects: Subjects, refusal: Refusal) -> Refusal {
        let message = refusal.to_string();
        warn!(rule = refusal.rule(), %message, "session refused");
        let stored = self
            .app
            .store
            .record_refusal(&self.actor(), subjects, refusal.rule(), &message, self.client.as_deref())
            .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "cannot store a refusal");
        }
        refusal
    }

    /// Decides, and when allowed starts the session.
    pub async fn open(&self) -> Result<Established, Refusal> {
        let app = self.app;
        let target = match Target::parse(self.user) {
            Ok(t) => t,
            Err(e) => return Err(self.refuse(Subjects::default(), Refusal::Target(e)).await),
        };
        let chosen = BoxChoice::Named(target.box_name.as_deref());
        let gathered =
            match crate::recheck::gather(&app.store, self.operator.id, self.key_fingerprint, target.ticket, chosen)
                .await
            {
                Ok(g) => g,
                Err(NotGathered::Refused { refusal, subjects }) => return Err(self.refuse(subjects, refusal).await),
                Err(NotGathered::Store(e)) => return Err(store_down(e)),
            };
        let ticket_id = gathered.ticket.id;
        let mut subjects = Subjects {
            org: Some(gathered.org.id),
            ticket: Some(ticket_id),
            box_: Some(gathered.iks_box.id),
            ..Default::default()
        };
        // Checked at authentication; the account or key may have gone since.
        if let Err(message) = gathered.operator_holds() {
            return Err(self.refuse(subjects, Refusal::gateway("operator", message).about(ticket_id)).await);
        }
        let grant = match decision::decide(&gathered.facts(iks_domain::time::now(), app.tz(), &app.config.products)) {
            Ok(g) => g.clone(),
            Err(refusal) => return Err(self.refuse(subjects, refusal).await),
        };
        subjects.grant = Some(grant.id);
        let Gathered { person: operator, org, iks_box, .. } = gathered;
        if iks_box.address.is_none() {
            let presence = crate::tunnel::presence(app, &iks_box).await.map_err(store_down)?;
            if let Err(refusal) =
                decision::check_agent(ticket_id, &iks_box.name, &presence, iks_domain::time::now(), app.tz())
            {
                return Err(self.refuse(subjects, refusal).await);
            }
        }
        if let Err(e) = crate::recording::check_room(&app.data_dir.recordings_dir()) {
            return Err(self.refuse(subjects, recording_refusal(&e).about(ticket_id)).await);
        }
        let new = NewSession {
            grant_id: grant.id,
            ticket_id,
            box_id: iks_box.id,
            operator_id: operator.id,
            client_addr: self.client.clone(),
            node: app.node.clone(),
        };
        let session = app.store.start_session(&self.actor(), &new, org.id).await.map_err(store_down)?;
        let span = info_span!("session", session.id = %session.id, ticket = %ticket_id, operator = %operator.login, r#box = %iks_box.name);
        let started = Started { session, grant, org, operator, ticket_id, iks_box, subjects };
        self.record_and_connect(started).instrument(span).await
    }

    /// Everything after the session row exists: the recording (no recording, no session),
    /// the box connection, the live registry. A failure ends the session row it started.
    async fn record_and_connect(&self, st: Started) -> Result<Established, Refusal> {
        let app = self.app;
        let Started { session, grant, org, operator, ticket_id, iks_box, subjects } = st;
        let end = |reason, recording: Option<crate::recording::Finished>| SessionEnd {
            reason,
            bytes_in: 0,
            bytes_out: 0,
            recording: recording.as_ref().map(|f| f.relative.clone()),
            recording_sha256: recording.map(|f| f.sha256),
        };
        let title = format!("{ticket_id} {} {}@{}", session.id, operator.login, iks_box.name);
        let limits = app.config.recording.limits();
        let recording =
            match Recording::create(&app.data_dir.recordings_dir(), session.id, session.started_at, &title, limits) {
                Ok(r) => r,
                Err(e) => {
                    let (reason, _) = crate::recording::failure(&e);
                    end_row(app, session.id, org.id, &end(reason, None)).await;
                    return Err(self.refuse(subjects, recording_refusal(&e).about(ticket_id)).await);
                }
            };
        let _ = app.store.set_session_recording(session.id, recording.relative()).await;
        let valid_until = grant.ends_at.unwrap_or_else(iks_domain::time::now);
        let credential = match iks_box.auth {
            BoxAuth::Certificate => ca::issue(
                &app.user_ca,
                &CertRequest {
                    principal: &iks_box.login,
                    key_id: format!("{ticket_id} {} {}", session.id, operator.login),
                    serial: u64::try_from(session.id.get()).unwrap_or(0),
                    valid_until,
                    permit_port_forwarding: iks_box.allow_forwarding,
                },
            )
            .map(|(key, cert)| Credential::Certificate(key, Box::new(cert)))
            .map_err(|e| e.to_string()),
            BoxAuth::StaticKey => {
                app.data_dir.key(KeyRole::BoxStatic(iks_box.id)).map(Credential::StaticKey).map_err(|e| e.to_string())
            }
        };
        // A shutdown while the box is still answering ends the session now, not after the
        // connect timeout: shutdown only sees sessions already in the live registry.
        let mut shutdown = app.shutdown.subscribe();
        let connected = match credential {
            Ok(c) => tokio::select! {
                r = connect_box(app, &iks_box, c, ticket_id, session.id) => r,
                _ = shutdown.wait_for(|s| *s) => Err(Refusal::gateway("shutdown", "the gateway is shutting down")),
            },
            Err(e) => Err(Refusal::gateway("upstream", e)),
        };
        let leg = match connected {
            Ok(leg) => leg,
            Err(refusal) => {
                let reason =
                    if refusal.rule() == "shutdown" { EndReason::GatewayShutdown } else { EndReason::UpstreamLost };
                let finished = recording.finish().ok();
                end_row(app, session.id, org.id, &end(reason, finished)).await;
                return Err(self.refuse(subjects, refusal.about(ticket_id)).await);
            }
        };
        let live = LiveSession::new(
            &session,
            org.id,
            &operator,
            self.key_fingerprint.to_string(),
            &iks_box,
            recording,
            self.closer.clone(),
        );
        app.live.insert(live.clone());
        let established = Established::new(app, live.clone(), iks_box, leg, super::bridge::budget());
        info!(grant = %grant.id, until = %iks_domain::time::to_db(valid_until), "session started");
        // Registered first, checked second: either shutdown saw this session or it sees shutdown.
        if *app.shutdown.borrow() {
            live.close(EndReason::GatewayShutdown, "the gateway is shutting down");
        }
        Ok(established)
    }
}

/// Connects to the box's sshd: directly over TCP, or through the box's agent.
async fn connect_box(
    app: &Arc<Gateway>,
    b: &IksBox,
    credential: Credential,
    ticket: TicketId,
    session: SessionId,
) -> Result<BoxLeg, Refusal> {
    let pinned = upstream::pinned_key(b)?;
    match &b.address {
        Some(address) => {
            let stream = upstream::dial(b, address).await?;
            let (severer, stream) = Severer::new(stream).map_err(|e| {
                Refusal::gateway("upstream", format!("cannot use the connection to box {}: {e}", b.name))
            })?;
            let upstream = upstream::connect(b, pinned, credential, ReadAhead::new(stream)).await?;
            Ok(BoxLeg { upstream, tunnel: None, severer: Some(severer) })
        }
        None => {
            let (link, stream) = crate::tunnel::open(app, b, ticket, session).await?;
            match upstream::connect(b, pinned, credential, stream).await {
                Ok(upstream) => Ok(BoxLeg { upstream, tunnel: Some(link), severer: None }),
                Err(refusal) => {
                    link.close().await;
                    Err(refusal)
                }
            }
        }
    }
}
