//! The agent's channel policy, driven in-process against a tiny russh server posing as a
//! gateway that misbehaves: it asks for tunnels to other addresses and ports, for channel
//! types the agent never serves, and for a second tunnel on one data connection. Only the
//! one tunnel to `sshd:22` on a data connection may be accepted, and it must reach the
//! sshd address in the agent's own configuration.

use std::sync::Arc;
use std::time::Duration;

use iks_agent::config::{AgentConfig, ConfigDir, default_max_sessions, default_version_file};
use iks_agent::run::{Agent, Options};
use iks_proto::{AgentMsg, AgentState, DialRefusal, GatewayMsg};
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

enum Event {
    LoggedIn(String, server::Handle),
    Channel(Channel<Msg>),
}

struct FakeGateway {
    events: mpsc::UnboundedSender<Event>,
    user: String,
}

impl server::Handler for FakeGateway {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, user: &str, _key: server::VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        self.user = user.to_string();
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let _ = self.events.send(Event::LoggedIn(self.user.clone(), session.handle()));
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        let _ = self.events.send(Event::Channel(channel));
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}

fn random_key() -> PrivateKey {
    PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap()
}

/// Starts the fake gateway; events arrive on the returned receiver.
async fn fake_gateway(host_key: PrivateKey) -> (String, mpsc::UnboundedReceiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config =
        Arc::new(server::Config { keys: vec![host_key], auth_rejection_time: Duration::ZERO, ..Default::default() });
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = FakeGateway { events: tx.clone(), user: String::new() };
            let config = config.clone();
            tokio::spawn(async move {
                if let Ok(running) = server::run_stream(config, stream, handler).await {
                    let _ = running.await;
                }
            });
        }
    });
    (address, rx)
}

/// A TCP echo service standing in for the box's sshd.
async fn echo_service() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    address
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(15), rx.recv()).await.expect("the agent acts in time").expect("event")
}

async fn read_line(channel: &mut Channel<Msg>) -> Vec<u8> {
    let mut line = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), channel.wait()).await.expect("a line in time") {
            Some(ChannelMsg::Data { data }) => {
                line.extend_from_slice(&data);
                if line.ends_with(b"\n") {
                    line.pop();
                    return line;
                }
            }
            Some(_) => {}
            None => panic!("the control channel closed"),
        }
    }
}

async fn read_message(channel: &mut Channel<Msg>) -> AgentMsg {
    let line = read_line(channel).await;
    serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)))
}

async fn read_state(channel: &mut Channel<Msg>) -> AgentState {
    match read_message(channel).await {
        AgentMsg::State(state) => state,
        other => panic!("expected a state report, got {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, russh::Error>) {
    match r {
        Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited)) => {}
        other => panic!("{what}: the agent must refuse, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_opens_nothing_but_its_own_sshd() {
    let host_key = random_key();
    let gateway_public: PublicKey = host_key.public_key().clone();
    let (gateway, mut events) = fake_gateway(host_key).await;
    let sshd = echo_service().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = ConfigDir::new(tmp.path().join("agent"));
    let config = AgentConfig {
        gateway,
        gateway_host_key: gateway_public.to_openssh().unwrap(),
        box_name: "main-gw".into(),
        org: "ООО Ромашка".into(),
        sshd: sshd.clone(),
        product: Some("iks-standard".into()),
        version: Some("7.2".into()),
        version_file: default_version_file(),
        // One session at a time, so the test sees the limit refused by name.
        max_sessions: 1,
    };
    dir.save(&config, &random_key()).unwrap();
    let agent = Agent::load(dir.clone(), Options { write_status: false, ..Default::default() }).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        agent
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    // The control connection and its first state report.
    let Event::LoggedIn(user, control) = next(&mut events).await else { panic!("a login first") };
    assert_eq!(user, "iks-agent");
    let Event::Channel(mut channel) = next(&mut events).await else { panic!("then the control channel") };
    let state = read_state(&mut channel).await;
    assert_eq!((state.version.as_deref(), state.remote_access_disabled), (Some("7.2"), false));

    // Nothing is accepted on the control connection, whatever the type or address.
    refused(
        "forwarded-tcpip on the control connection",
        control.channel_open_forwarded_tcpip("sshd", 22, "gw", 1).await,
    );
    refused("session", control.channel_open_session().await);
    refused("direct-tcpip", control.channel_open_direct_tcpip("127.0.0.1", 22, "gw", 1).await);
    refused("auth-agent", control.channel_open_agent().await);
    refused("x11", control.channel_open_x11("127.0.0.1", 6000).await);

    // A dial with a malformed id is ignored; a good one brings a data connection.
    let dial = |id: &str| iks_proto::line(&GatewayMsg::Dial { id: id.into() }).unwrap();
    channel.data_bytes(dial("../../etc/passwd")).await.unwrap();
    let id = "0123456789abcdef0123456789abcdef";
    channel.data_bytes(dial(id)).await.unwrap();
    let Event::LoggedIn(user, data) = next(&mut events).await else { panic!("a data connection") };
    assert_eq!(user, format!("iks-agent-data:{id}"));

    // On the data connection: only sshd:22, whatever else the gateway names.
    let (echo_host, echo_port) = sshd.rsplit_once(':').unwrap();
    let echo_port: u32 = echo_port.parse().unwrap();
    for (address, port) in [("10.1.2.3", 22), (echo_host, echo_port), ("sshd", 2222), ("localhost", 22), ("", 22)] {
        refused(
            &format!("forwarded-tcpip to {address}:{port}"),
            data.channel_open_forwarded_tcpip(address, port, "gw", 1).await,
        );
    }
    refused("session on a data connection", data.channel_open_session().await);
    refused("direct-tcpip on a data connection", data.channel_open_direct_tcpip(echo_host, echo_port, "gw", 1).await);
    let tunnel = data.channel_open_forwarded_tcpip("sshd", 22, "gw", 7).await.expect("the tunnel to sshd:22");
    let mut stream = tunnel.into_stream();
    let hello = b"reached the configured sshd";
    stream.write_all(hello).await.unwrap();
    let mut echoed = vec![0u8; hello.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(echoed, hello);
    refused("a second tunnel on one data connection", data.channel_open_forwarded_tcpip("sshd", 22, "gw", 8).await);

    // max_sessions = 1 and one session is open: the next dial is refused by name, not ignored.
    let second = "00000000000000000000000000000002";
    channel.data_bytes(dial(second)).await.unwrap();
    let expected = AgentMsg::DialRefused { id: second.into(), refusal: DialRefusal::TooManySessions { limit: 1 } };
    assert_eq!(read_message(&mut channel).await, expected);

    // The kill switch: reported within a second or so, and dials are refused meanwhile.
    iks_agent::status::disable(&dir, "test").unwrap();
    assert!(read_state(&mut channel).await.remote_access_disabled);
    let third = "fedcba9876543210fedcba9876543210";
    channel.data_bytes(dial(third)).await.unwrap();
    let expected = AgentMsg::DialRefused { id: third.into(), refusal: DialRefusal::RemoteAccessDisabled };
    assert_eq!(read_message(&mut channel).await, expected);
    let quiet = tokio::time::timeout(Duration::from_secs(1), events.recv()).await;
    assert!(quiet.is_err(), "no data connection while remote access is disabled");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_gateway_host_key_is_refused_every_time() {
    let (gateway, mut events) = fake_gateway(random_key()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = ConfigDir::new(tmp.path().join("agent"));
    let pinned = random_key();
    let config = AgentConfig {
        gateway,
        gateway_host_key: pinned.public_key().to_openssh().unwrap(),
        box_name: "main-gw".into(),
        org: "ООО Ромашка".into(),
        sshd: "127.0.0.1:22".into(),
        product: None,
        version: None,
        version_file: default_version_file(),
        max_sessions: default_max_sessions(),
    };
    dir.save(&config, &random_key()).unwrap();
    let options = Options { write_status: false, backoff_min: Duration::from_millis(50), ..Default::default() };
    let agent = Agent::load(dir, options).unwrap();
    let mut status = agent.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        agent
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.last_error.as_deref().is_some_and(|e| e.contains("the gateway's host key changed"))),
    )
    .await;
    let message = refused.expect("refused in time").unwrap().last_error.clone().unwrap();
    let expected = pinned.public_key().fingerprint(russh::keys::HashAlg::Sha256).to_string();
    assert!(message.contains(&format!("expected {expected}")), "{message}");
    assert!(events.try_recv().is_err(), "the agent never logged in to the impostor");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap();
}
