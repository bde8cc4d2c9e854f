//! Many agents on one gateway: 200 boxes, each with its agent's connection code driven as
//! a library from this one process, against the real `iks-gateway serve` and one real
//! sshd standing in for every box. All 200 must come online and stay online, and each
//! must carry a session (engineer → gateway → that box's agent → sshd). The figures are
//! printed; on 2 shared cores the whole test takes well under a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iks_agent::config::ConfigDir;
use iks_agent::enroll::{EnrollOptions, enroll};
use iks_agent::run::{Agent, Options};
use iks_agent::status::Connection;
use iks_domain::audit::Actor;
use iks_domain::model::{BoxAuth, NewBox, NewOrg, NewPerson, NewSshKey, Role};
use iks_domain::rules::{Inn, OrgFacts};
use iks_e2e::Gateway;
use iks_e2e::serve::Serve;
use iks_e2e::sshd::{self, BoxSshd};
use iks_gateway::grants::{self, ApproveOptions};
use iks_gateway::store::Store;
use iks_gateway::tickets::{self, Filing};
use russh::ChannelMsg;
use russh::client;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg};
use tokio::sync::Semaphore;

const AGENTS: usize = 200;
/// Enrolments and sessions in flight at once (sshd's MaxStartups starts refusing at 10).
const PARALLEL: usize = 8;

struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// One engineer session as a stock client would run it: `ssh USER@gw COMMAND`.
async fn exec(port: u16, key: Arc<PrivateKey>, user: String, command: String) -> Result<String, String> {
    let config = Arc::new(client::Config::default());
    let mut h = client::connect(config, ("127.0.0.1", port), AnyHostKey).await.map_err(|e| e.to_string())?;
    let auth =
        h.authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None)).await.map_err(|e| e.to_string())?;
    if !auth.success() {
        return Err("the gateway refused the engineer's key".into());
    }
    let mut ch = h.channel_open_session().await.map_err(|e| e.to_string())?;
    ch.exec(true, command).await.map_err(|e| e.to_string())?;
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = h.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    match status {
        Some(0) => Ok(String::from_utf8_lossy(&out).into_owned()),
        other => Err(format!("exit {other:?}: {}", String::from_utf8_lossy(&err))),
    }
}

async fn online(store: &Store) -> usize {
    store.active_agents().await.unwrap().iter().filter(|a| a.online_since.is_some()).count()
}

#[test]
fn two_hundred_agents_stay_connected_and_carry_sessions() {
    let gw = Gateway::sqlite();
    let ca = gw.run(&["ca", "public-key"]).success().to_string();
    let sshd = BoxSshd::start(&gw.path("box"), &ca);
    let serve = Serve::start(&gw, &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", gw.data_dir().join("iks-gateway.db").display());
        let store = Store::open(&url).await.unwrap();
        let config = iks_gateway::config::Config::default();
        let cli = Actor::cli();

        // The customer, 200 boxes reached through agents, an engineer and the grants.
        let t0 = Instant::now();
        let today = chrono::Utc::now().date_naive();
        let facts = OrgFacts { purchased_on: Some(today), ..Default::default() };
        let org = store
            .create_org(&cli, &NewOrg { inn: Inn::parse("7707083893").unwrap(), name: "ООО Ромашка".into(), facts })
            .await
            .unwrap();
        let person = |login: &str, role, org_id| NewPerson {
            login: login.into(),
            display_name: login.into(),
            role,
            org_id,
            email: None,
        };
        let ivanov = store.create_person(&cli, &person("ivanov", Role::Operator, None)).await.unwrap();
        let petrov = store.create_person(&cli, &person("petrov", Role::Customer, Some(org.id))).await.unwrap();
        let engineer_key = Arc::new(PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap());
        let line = engineer_key.public_key().to_openssh().unwrap();
        store.add_ssh_key(&cli, ivanov.id, &NewSshKey::parse(&line).unwrap()).await.unwrap();
        let filing = Filing {
            org: org.id,
            contact_name: "Пётр Петров".into(),
            contact_phone: Some("+7 495 000-00-00".into()),
            contact_email: None,
            product: "iks-standard".into(),
            version: "7.2".into(),
            description: "200 boxes".into(),
            topic: None,
        };
        let ticket = tickets::open(&store, &config, &cli, filing).await.unwrap();
        let mut tokens = Vec::new();
        for i in 0..AGENTS {
            let name = format!("box-{i:03}");
            let b = store
                .create_box(
                    &cli,
                    &NewBox {
                        org_id: org.id,
                        name: name.clone(),
                        product: "iks-standard".into(),
                        version: "7.2".into(),
                        address: None,
                        login: sshd::USER.into(),
                        host_key: None,
                        auth: BoxAuth::Certificate,
                        allow_forwarding: false,
                    },
                )
                .await
                .unwrap();
            let g = grants::request(&store, &config, &ivanov, ticket.id, &name, chrono::Duration::hours(1), "scale")
                .await
                .unwrap();
            let opts = ApproveOptions { until: None, any_engineer: false, note: None };
            grants::approve(&store, &config, &petrov, g.id, &opts).await.unwrap();
            let expires = iks_domain::time::now() + chrono::Duration::hours(1);
            let (token, _) = iks_gateway::enrollment::issue_token(&store, &cli, &b, expires).await.unwrap();
            tokens.push((name, token));
        }
        eprintln!("{AGENTS} boxes with grants and tokens set up in {:?}", t0.elapsed());

        // Enrol every agent (each its own key and config dir).
        let t1 = Instant::now();
        let limit = Arc::new(Semaphore::new(PARALLEL));
        let mut enrolments = Vec::new();
        for (name, token) in &tokens {
            let dir = ConfigDir::new(gw.path(&format!("agents/{name}")));
            let options = EnrollOptions {
                gateway: serve.address(),
                token: token.clone(),
                expect_host_key: None,
                sshd: sshd.address(),
                product: Some("iks-standard".into()),
                version: Some("7.2".into()),
                version_file: "/nonexistent".into(),
                sshd_host_key_file: sshd.host_key_pub(),
                force: false,
            };
            let limit = limit.clone();
            enrolments.push(tokio::spawn(async move {
                let _permit = limit.acquire().await.unwrap();
                enroll(&dir, &options).await.map(|_| dir)
            }));
        }
        let mut dirs = Vec::new();
        for e in enrolments {
            dirs.push(e.await.unwrap().unwrap());
        }
        eprintln!("{AGENTS} agents enrolled in {:?}", t1.elapsed());

        // Run them all; each keeps its control connection.
        let t2 = Instant::now();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut statuses = Vec::new();
        let mut running = Vec::new();
        for dir in dirs {
            let agent = Agent::load(dir, Options { write_status: false, ..Default::default() }).unwrap();
            statuses.push(agent.status());
            let mut stopped = stopped.clone();
            running.push(tokio::spawn(async move {
                agent
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let connected = statuses.iter().filter(|s| s.borrow().connection == Connection::Connected).count();
            let at_gateway = online(&store).await;
            if connected == AGENTS && at_gateway == AGENTS {
                break;
            }
            assert!(Instant::now() < deadline, "{connected} agents connected, {at_gateway} online at the gateway");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("{AGENTS} agents connected and online at the gateway in {:?}", t2.elapsed());

        // A session through each agent.
        let t3 = Instant::now();
        let mut sessions = Vec::new();
        for (name, _) in &tokens {
            let (key, limit, port) = (engineer_key.clone(), limit.clone(), serve.port());
            let user = format!("{}+{name}", ticket.id);
            let name = name.clone();
            sessions.push(tokio::spawn(async move {
                let _permit = limit.acquire().await.unwrap();
                let started = Instant::now();
                let out = exec(port, key, user, format!("echo via-{name}")).await;
                (name, out, started.elapsed())
            }));
        }
        let mut slowest = Duration::ZERO;
        for s in sessions {
            let (name, out, took) = s.await.unwrap();
            assert_eq!(out.as_deref(), Ok(format!("via-{name}\n").as_str()), "session through {name}");
            slowest = slowest.max(took);
        }
        let total = t3.elapsed();
        eprintln!(
            "{AGENTS} sessions through {AGENTS} agents ({PARALLEL} at a time) in {total:?}: {:?} per session on \
             average, slowest {slowest:?}",
            total / AGENTS as u32
        );

        // Everyone is still there.
        let still = statuses.iter().filter(|s| s.borrow().connection == Connection::Connected).count();
        assert_eq!((still, online(&store).await), (AGENTS, AGENTS), "all agents stay connected");
        let _ = stop.send(true);
        for r in running {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        store.close().await;
    });
}
