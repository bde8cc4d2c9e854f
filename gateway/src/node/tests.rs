use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use super::*;
use crate::metrics::tests::value;
use crate::store::tests::TestDb;
use iks_domain::audit::{Actor, NewEvent, Subjects};

/// Shutdown of a node running everything ends within this.
const STOPS_WITHIN: Duration = Duration::from_secs(15);

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

async fn open(db: &TestDb, dir: &tempfile::TempDir) -> Node {
    let data_dir = DataDir::open(&dir.path().join("data")).unwrap();
    let user_ca = data_dir.key(KeyRole::UserCa).unwrap();
    let parts = NodeParts {
        store: db.store.clone(),
        config: Arc::new(Config::default()),
        data_dir,
        user_ca,
        name: "test".into(),
    };
    Node::open(parts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_listener_and_job() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let node = open(&db, &dir).await;
    assert_eq!(node.recovered(), Recovered::default(), "a new store has nothing to clean up");
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = tasks();
    let ((ssh, ssh_addr), (http, http_addr)) = (listener().await, listener().await);
    let running = node.start(Listeners { ssh: Some(ssh), http: Some(http) }, &Job::ALL).unwrap();
    for addr in [ssh_addr, http_addr] {
        TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{addr} accepts while running: {e}"));
    }
    assert!(tasks() >= before + 2 + Job::ALL.len(), "listeners and jobs run: {} tasks", tasks());
    let event = NewEvent::new(&Actor::cli(), "test.event", Subjects::default(), serde_json::json!({}));
    let store = &running.app().store;
    store.append_event(event).await.unwrap();
    let head = store.latest_audit_events(1).await.unwrap()[0].seq;
    tokio::time::timeout(STOPS_WITHIN, running.shutdown()).await.expect("stops in time").unwrap();
    for addr in [ssh_addr, http_addr] {
        assert!(TcpStream::connect(addr).await.is_err(), "{addr} refuses after shutdown");
    }
    assert!(tasks() <= before, "every task of the node ended: {} alive, {before} before", tasks());
    let store = Store::open(&db.url).await.unwrap();
    let last = store.audit_checkpoints(None).await.unwrap().pop().expect("a checkpoint");
    assert_eq!(last.signed.seq, head, "the last checkpoint covers what happened until shutdown");
    assert_eq!(last.signed.next, None, "and promises no other while the node is stopped");
}

#[tokio::test]
async fn a_node_without_listeners_or_jobs_stops_at_once() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let running = open(&db, &dir).await.start(Listeners::default(), &[]).unwrap();
    tokio::time::timeout(Duration::from_secs(1), running.shutdown()).await.expect("nothing to wait for").unwrap();
}

#[tokio::test]
async fn a_job_runs_at_once_and_no_more_once_the_node_stops() {
    let (stop, stopped) = watch::channel(false);
    let mut every = Every::new(Duration::from_secs(3600), stopped);
    let soon = Duration::from_secs(10);
    assert!(tokio::time::timeout(soon, every.next()).await.expect("the first round at once"));
    stop.send_replace(true);
    assert!(every.stopping());
    let next = tokio::time::timeout(soon, every.next()).await.expect("stopping does not wait for the period");
    assert!(!next, "no round once stopping");
}

#[test]
fn checkpoints_are_looked_for_four_times_per_interval_and_at_least_every_5_s() {
    let period = |interval: &str| {
        let config = crate::config::AuditConfig { checkpoint_interval: interval.into(), ..Default::default() };
        jobs::checkpoint_period(&config)
    };
    assert_eq!(period("8s"), Duration::from_secs(2));
    assert_eq!(period("5m"), Duration::from_secs(5), "at least every 5 s");
    assert_eq!(period("1s"), Duration::from_millis(250));
}

/// `/metrics` over a node's state, as `serve` mounts it.
#[tokio::test]
async fn the_metrics_route_reports_this_process() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let app = open(&db, &dir).await.app().clone();
    let held = tokio::spawn(std::future::pending::<()>());
    let response = crate::metrics::router(app)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .expect("a response");
    held.abort();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(value(&text, "iks_gateway_tasks").is_some_and(|n| n >= 1), "the spawned task counts: {text}");
    assert_eq!(value(&text, "iks_gateway_live_sessions"), Some(0));
    assert_eq!(value(&text, "iks_gateway_agents_connected"), Some(0));
    assert!(value(&text, "process_open_fds").is_some_and(|n| n > 2), "{text}");
    assert!(value(&text, "process_resident_memory_bytes").is_some_and(|n| n > 1 << 20), "{text}");
}
