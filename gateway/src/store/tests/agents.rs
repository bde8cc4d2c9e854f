//! Stories of boxes reached through their agent: enrolment tokens, enrolments, presence.

use chrono::Duration;

use super::*;
use crate::store::{EnrollError, Enrolment};
use iks_domain::model::{AgentReport, IksBox};

story!(enrolment_tokens);
story!(agent_presence);

const BOX_HOST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEDzWDPG1+ZhUfXGbzPFFpJm/ihb5BFgCjLZm3dj7+2P";
const OTHER_HOST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKdaMhOi7MZFP0O4fHI8KF3e6WZZL2Nt9hANzGS1oyuY";

async fn agent_box(store: &Store) -> IksBox {
    let org = store.create_org(&Actor::cli(), &romashka()).await.unwrap();
    let mut b = new_box(org.id, "main-gw");
    b.address = None;
    store.create_box(&Actor::cli(), &b).await.unwrap()
}

fn enrolment(fingerprint: &str, version: &str, host_key: Option<&str>) -> Enrolment {
    Enrolment {
        key_fingerprint: fingerprint.into(),
        public_key: format!("ssh-ed25519 AAAA{fingerprint}"),
        report: AgentReport {
            agent_version: "0.1.0".into(),
            product: Some("iks-standard".into()),
            version: Some(version.into()),
            remote_access_disabled: false,
        },
        box_host_key: host_key.map(str::to_string),
    }
}

async fn actions(store: &Store, b: &IksBox) -> Vec<String> {
    let events = store.audit_events(&EventFilter { org: Some(b.org_id), ..Default::default() }).await.unwrap();
    events.into_iter().filter(|e| e.subjects.box_ == Some(b.id)).map(|e| e.action).collect()
}

/// A token is single use and expires; a refused enrolment stores nothing at all.
async fn enrolment_tokens(db: &TestDb) {
    let store = &db.store;
    let b = agent_box(store).await;
    let now = iks_domain::time::now();
    store.create_agent_token(&Actor::cli(), b.id, "hash-ok", now + Duration::hours(24)).await.unwrap();
    store.create_agent_token(&Actor::cli(), b.id, "hash-old", now - Duration::seconds(1)).await.unwrap();
    let before = store.audit_events(&EventFilter::default()).await.unwrap().len();

    let unknown = store.enroll_agent("hash-wrong", &enrolment("SHA256:a", "7.2", None)).await.unwrap_err();
    assert!(matches!(unknown, EnrollError::UnknownToken), "{unknown}");
    let expired = store.enroll_agent("hash-old", &enrolment("SHA256:a", "7.2", None)).await.unwrap_err();
    assert!(matches!(expired, EnrollError::Expired { .. }), "{expired}");
    assert!(expired.message(chrono_tz::Europe::Moscow).contains("expired at"), "{expired}");
    assert_eq!(store.audit_events(&EventFilter::default()).await.unwrap().len(), before, "refusals store nothing");
    assert_eq!(store.active_agent(b.id).await.unwrap(), None);

    let done = store.enroll_agent("hash-ok", &enrolment("SHA256:a", "7.3", Some(BOX_HOST_KEY))).await.unwrap();
    assert_eq!(done.iks_box.version, "7.3", "the box takes the version the agent reports");
    assert_eq!(done.iks_box.host_key.as_deref(), Some(BOX_HOST_KEY), "the host key is pinned at enrolment");
    assert_eq!(done.org.name, "ООО Ромашка");
    assert_eq!(done.replaced, None);
    assert_eq!(store.active_agent(b.id).await.unwrap(), Some(done.agent.clone()));
    assert_eq!(store.active_agent_by_key("SHA256:a").await.unwrap().map(|a| a.id), Some(done.agent.id));
    let tokens = store.agent_tokens(b.id).await.unwrap();
    assert_eq!(tokens[0].agent_id, Some(done.agent.id));
    assert!(tokens[0].used_at.is_some());

    let reused = store.enroll_agent("hash-ok", &enrolment("SHA256:b", "7.2", None)).await.unwrap_err();
    assert!(matches!(reused, EnrollError::Used { .. }), "{reused}");
    assert!(reused.to_string().contains("already used"), "{reused}");

    // A new enrolment of the box replaces the old one; a different host key is refused,
    // because only an admin changes a pinned key.
    store.create_agent_token(&Actor::cli(), b.id, "hash-2", now + Duration::hours(1)).await.unwrap();
    let mismatch = store.enroll_agent("hash-2", &enrolment("SHA256:b", "7.2", Some(OTHER_HOST_KEY))).await.unwrap_err();
    assert!(matches!(mismatch, EnrollError::HostKeyMismatch { .. }), "{mismatch}");
    let taken = store.enroll_agent("hash-2", &enrolment("SHA256:a", "7.2", None)).await.unwrap_err();
    assert!(matches!(taken, EnrollError::KeyTaken), "{taken}");
    let again = store.enroll_agent("hash-2", &enrolment("SHA256:b", "7.2", Some(BOX_HOST_KEY))).await.unwrap();
    assert_eq!(again.replaced, Some(done.agent.id));
    assert_eq!(store.active_agent_by_key("SHA256:a").await.unwrap(), None, "the old key is refused");
    let old = store.agent(done.agent.id).await.unwrap();
    assert_eq!(old.revoked_by.as_deref(), Some("re-enrolment"));
    assert_eq!(
        actions(store, &b).await,
        [
            "box.create",
            "agent.token.create",
            "agent.token.create",
            "box.update",
            "agent.enroll",
            "agent.token.create",
            "box.update",
            "agent.enroll"
        ]
    );
    let enrol = store
        .audit_events(&EventFilter::default())
        .await
        .unwrap()
        .into_iter()
        .rfind(|e| e.action == "agent.enroll")
        .unwrap();
    assert_eq!(enrol.actor.kind, iks_domain::audit::ActorKind::Agent);
}

/// Online and offline as the nodes see them, reports, the kill switch and revocation.
async fn agent_presence(db: &TestDb) {
    let store = &db.store;
    let b = agent_box(store).await;
    let now = iks_domain::time::now();
    store.create_agent_token(&Actor::cli(), b.id, "t", now + Duration::hours(1)).await.unwrap();
    let agent = store.enroll_agent("t", &enrolment("SHA256:a", "7.2", None)).await.unwrap().agent;
    assert_eq!((agent.online_since, agent.offline_since), (None, None), "enrolled, never connected");

    let report = AgentReport {
        agent_version: "0.1.0".into(),
        product: Some("iks-standard".into()),
        version: Some("7.2".into()),
        remote_access_disabled: false,
    };
    let on = store.agent_connected(agent.id, "gw-1", "gw-1#1", &report).await.unwrap();
    assert_eq!((on.node.as_deref(), on.connection.as_deref()), (Some("gw-1"), Some("gw-1#1")));
    assert!(on.online_since.is_some());
    // The same report again changes nothing and writes nothing.
    let n = store.audit_events(&EventFilter::default()).await.unwrap().len();
    store.agent_reported(agent.id, "gw-1#1", &report).await.unwrap();
    assert_eq!(store.audit_events(&EventFilter::default()).await.unwrap().len(), n);

    let disabled = AgentReport { remote_access_disabled: true, version: Some("7.2.1".into()), ..report.clone() };
    let after = store.agent_reported(agent.id, "gw-1#1", &disabled).await.unwrap();
    assert!(after.remote_access_disabled);
    assert_eq!(store.get_box(b.id).await.unwrap().version, "7.2.1", "a reported upgrade reaches the box record");

    // A reconnect on another node takes over; the first node's late disconnect is ignored.
    store.agent_connected(agent.id, "gw-2", "gw-2#7", &report).await.unwrap();
    assert!(!store.agent_disconnected(agent.id, "gw-1#1", "connection closed").await.unwrap());
    assert_eq!(store.agent(agent.id).await.unwrap().node.as_deref(), Some("gw-2"));
    assert!(store.agent_disconnected(agent.id, "gw-2#7", "connection closed").await.unwrap());
    let off = store.agent(agent.id).await.unwrap();
    assert_eq!((off.online_since, off.connection), (None, None));
    assert!(off.offline_since.is_some());

    // Over its audit budget a connection is presence only: no event, the box untouched.
    let n = store.audit_events(&EventFilter::default()).await.unwrap().len();
    let version = store.get_box(b.id).await.unwrap().version;
    let other = AgentReport { version: Some("7.3".into()), ..report.clone() };
    let quiet = store.agent_connected_quietly(agent.id, "gw-2", "gw-2#8", &other).await.unwrap();
    assert_eq!(quiet.connection.as_deref(), Some("gw-2#8"));
    assert!(store.agent_disconnected_quietly(agent.id, "gw-2#8", "connection closed").await.unwrap());
    assert_eq!(store.audit_events(&EventFilter::default()).await.unwrap().len(), n, "nothing audited");
    assert_eq!(store.get_box(b.id).await.unwrap().version, version, "the box waits for an audited report");
    store.agent_events_suppressed(agent.id, 42, std::time::Duration::from_secs(600)).await.unwrap();
    let events = store.audit_events(&EventFilter::default()).await.unwrap();
    let summary = events.into_iter().rfind(|e| e.action == "agent.suppressed").expect("the summary event");
    let details: serde_json::Value = serde_json::from_str(&summary.details).unwrap();
    assert_eq!(details["message"], "42 further reports and connections suppressed");

    // A node that crashed while holding agents marks them offline when it starts again.
    store.agent_connected(agent.id, "gw-1", "gw-1#2", &report).await.unwrap();
    store.touch_agents("gw-1").await.unwrap();
    assert_eq!(store.agents_offline_on_node("gw-2", "gateway restarted").await.unwrap(), 0);
    assert_eq!(store.agents_offline_on_node("gw-1", "gateway restarted").await.unwrap(), 1);
    assert!(store.agent(agent.id).await.unwrap().offline_since > off.offline_since);

    // Revocation: the key is refused, and the node holding it is told to drop it.
    store.agent_connected(agent.id, "gw-1", "gw-1#3", &report).await.unwrap();
    let revoked = store.revoke_agent(&Actor::cli(), b.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.active_agent_by_key("SHA256:a").await.unwrap(), None);
    assert_eq!(store.revoked_agents_online("gw-1").await.unwrap().iter().map(|a| a.id).collect::<Vec<_>>(), [agent.id]);
    assert!(matches!(
        store.agent_connected(agent.id, "gw-1", "gw-1#4", &report).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.agent_disconnected(agent.id, "gw-1#3", "revoked").await.unwrap());
    assert!(store.revoked_agents_online("gw-1").await.unwrap().is_empty());
    assert!(matches!(store.revoke_agent(&Actor::cli(), b.id).await, Err(StoreError::NotFound { .. })));

    let acts = actions(store, &b).await;
    for want in ["agent.connect", "agent.remote_access", "agent.disconnect", "agent.revoke"] {
        assert!(acts.iter().any(|a| a == want), "{want} in {acts:?}");
    }
}
