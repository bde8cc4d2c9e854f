//! `iks-bench`: the gateway against direct OpenSSH to the same sshd, in one run.
//!
//! It starts a real sshd (the box), `iks-gateway serve` with the box reached directly and,
//! for a second box name on the same sshd, through `iks-agent`'s tunnel; then it drives the
//! stock OpenSSH client against all three routes and prints one table: each figure, the
//! ratio to direct and the target from issue #8. CPU and memory come from `/proc` of the
//! gateway, the agent and the box's sshd. Everything listens on 127.0.0.1 only, and every
//! loop is bounded in count and time. The harness is the end-to-end tests' (`iks-e2e`).

mod gateway;
mod idle;
mod measure;
mod procstat;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use iks_e2e::agent_harness::Agent;
use iks_e2e::engineer::{Engineer, Key};
use iks_e2e::scenario::{Scenario, Setup};
use iks_e2e::serve::Serve;

use measure::{Bulk, Pids, Target, Transfer};
use report::{Report, Row};

/// Measures iks-gateway (direct and agent-tunnel mode) against direct OpenSSH to the same
/// local sshd. Defaults are issue #8's sizes; `--quick` is a smaller run.
#[derive(Debug, Parser)]
#[command(name = "iks-bench", max_term_width = 100)]
struct Cli {
    /// A smaller, faster run: 128 MiB transfers, 300 keystrokes, 15 setups, 100 idle
    /// sessions, 10 parallel transfers.
    #[arg(long)]
    quick: bool,
    /// Only these steps (comma-separated): bulk, parallel, latency, setup, idle, recording.
    #[arg(long, value_delimiter = ',', value_parser = ["bulk", "parallel", "latency", "setup", "idle", "recording"])]
    only: Vec<String>,
    /// MiB per bulk transfer [default: 1024; --quick: 128].
    #[arg(long, value_name = "MIB")]
    bulk_mib: Option<u64>,
    /// Keystrokes per route [default: 2000; --quick: 300].
    #[arg(long, value_name = "N")]
    keystrokes: Option<usize>,
    /// Sessions timed per route [default: 50; --quick: 15].
    #[arg(long, value_name = "N")]
    setups: Option<usize>,
    /// Idle interactive sessions held through the gateway at once [default: 1000; --quick: 100].
    #[arg(long, value_name = "N")]
    idle: Option<usize>,
    /// Concurrent bulk sessions per route [default: 50; --quick: 10].
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// The cipher of the direct route's client (`-o Ciphers=`), e.g. aes128-gcm@openssh.com,
    /// to compare with the gateway's engineer leg on equal terms [default: the client's own
    /// choice, chacha20-poly1305 for OpenSSH].
    #[arg(long, value_name = "CIPHER")]
    direct_cipher: Option<String>,
    /// (internal) the data dir of `iks-bench gateway`.
    #[arg(long, global = true, hide = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Internal>,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// (internal) The gateway process of the recording-cost step.
    #[command(hide = true)]
    Gateway {
        /// Recording replaced by a sink: possible only in this bench binary.
        #[arg(long)]
        unrecorded: bool,
    },
}

/// The one build the bench needs: the gateway and agent binaries beside this one, built in
/// one cargo invocation so that the gateway library is compiled once (with `bench-hooks`).
const BUILD: &str = "cargo build --release -p iks-gateway -p iks-agent -p iks-bench";

/// The sizes of one run.
struct Sizes {
    bulk: u64,
    keystrokes: usize,
    setups: usize,
    idle: usize,
    parallel: usize,
}

impl Cli {
    fn sizes(&self) -> Sizes {
        let q = self.quick;
        Sizes {
            bulk: self.bulk_mib.unwrap_or(if q { 128 } else { 1024 }) * 1024 * 1024,
            keystrokes: self.keystrokes.unwrap_or(if q { 300 } else { 2000 }),
            setups: self.setups.unwrap_or(if q { 15 } else { 50 }),
            idle: self.idle.unwrap_or(if q { 100 } else { 1000 }),
            parallel: self.parallel.unwrap_or(if q { 10 } else { 50 }),
        }
    }

    fn wants(&self, step: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == step)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Internal::Gateway { unrecorded }) = cli.command {
        let dir = cli.data_dir.context("--data-dir is required")?;
        return tokio::runtime::Runtime::new()?.block_on(gateway::serve(&dir, unrecorded));
    }
    for bin in ["iks-gateway", "iks-agent"] {
        let path = iks_e2e::bin_dir().join(bin);
        if !path.exists() {
            bail!("{} is missing; build with: {BUILD}", path.display());
        }
    }
    raise_fd_limit();
    let sizes = cli.sizes();
    let mut report = Report::new(machine_facts());
    // A step that fails must not take the figures already measured with it.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bench(&cli, &sizes, &mut report)));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some("a step panicked (its message is above)".to_string()),
    };
    if let Some(why) = &failure {
        report.note(format!("the run stopped early: {why}"));
    }
    report.print();
    match failure {
        Some(why) => bail!("the run stopped early: {why}"),
        None => Ok(()),
    }
}

/// 1,000 sessions need more descriptors than the usual soft limit of 1,024 (the gateway
/// holds two sockets per session): the soft limit goes up to the hard one, and children
/// started later inherit it. `prlimit` because the crate has no unsafe code for `setrlimit`.
fn raise_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or("unlimited")
        .to_string();
    let pid = std::process::id().to_string();
    let ok = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("iks-bench: could not raise RLIMIT_NOFILE to {hard} (prlimit); large session counts may fail");
    }
}

fn machine_facts() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let ssh = Command::new("ssh").arg("-V").output().map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string());
    let args: Vec<String> = std::env::args().skip(1).collect();
    vec![
        ("command".into(), format!("{BUILD} && target/release/iks-bench {}", args.join(" ")).trim_end().to_string()),
        ("cores".into(), std::thread::available_parallelism().map_or(0, |n| n.get()).to_string()),
        ("model".into(), model.unwrap_or("unknown").to_string()),
        ("kernel".into(), read("/proc/sys/kernel/osrelease")),
        ("load at start".into(), read("/proc/loadavg")),
        ("OpenSSH".into(), ssh.unwrap_or_default()),
    ]
}

/// The three routes and the processes behind them.
struct Routes {
    direct: Target,
    gateway: Target,
    tunnel: Target,
    agent: Agent,
}

const TUNNEL_BOX: &str = "tunnel-gw";

fn bench(cli: &Cli, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("iks-bench: starting sshd, the gateway and the agent");
    // Per-session info lines would cost the gateway more than the sessions.
    let mut sc = Scenario::with(Setup::default().env("IKS_LOG", "warn"));
    let mut routes = routes(&sc)?;
    routes.direct.engineer.ciphers = cli.direct_cipher.clone();
    // On the box, which reads them as its own user.
    let files = sc.sshd.files().to_path_buf();
    let big = sparse(&files.join("bulk"), sizes.bulk)?;
    let pids = |gateway: bool, tunnel: bool| Pids {
        gateway: gateway.then(|| sc.serve.pid()),
        sshd: sc.sshd.pid(),
        agent: if tunnel { routes.agent.pid() } else { None },
    };
    let all = [
        (&routes.direct, pids(false, false)),
        (&routes.gateway, pids(true, false)),
        (&routes.tunnel, pids(true, true)),
    ];

    // First, while the gateway's heap holds nothing from bulk transfers that new sessions
    // could reuse: the memory they add is then their own.
    if cli.wants("idle") {
        step(&format!("idle: {} interactive sessions through the gateway", sizes.idle));
        idle_rows(report, &sc, &routes.gateway, sizes.idle);
    }
    if cli.wants("latency") {
        step(&format!("latency: {} keystrokes per route", sizes.keystrokes));
        let t: Vec<_> = all.iter().map(|(r, _)| measure::keystrokes(r, sizes.keystrokes).context(r.label)).collect();
        let what = format!("keystroke echo over a PTY ({}×)", sizes.keystrokes);
        report.push(Row::added_ms(&format!("{what}, p50 ms"), &t, 0.5, None));
        report.push(Row::added_ms(&format!("{what}, p99 ms"), &t, 0.99, Some(1.0)));
    }
    if cli.wants("setup") {
        step(&format!("setup: {} sessions per route", sizes.setups));
        let t: Vec<_> = all.iter().map(|(r, _)| measure::setups(r, sizes.setups).context(r.label)).collect();
        let what = format!("session setup `ssh … true`, median of {} ms", sizes.setups);
        report.push(Row::added_ms(&what, &t, 0.5, Some(50.0)));
    }
    if cli.wants("bulk") {
        for kind in Bulk::ALL {
            step(&format!("bulk: {}", kind.describe()));
            let t: Vec<_> =
                all.iter().map(|(r, p)| measure::bulk(kind, r, *p, &big, sizes.bulk).context(r.label)).collect();
            bulk_rows(report, kind.describe(), sizes.bulk, &t);
        }
    }
    if cli.wants("parallel") {
        let each = sizes.bulk / sizes.parallel as u64;
        let small = sparse(&files.join("parallel"), each)?;
        step(&format!("parallel: {} sessions × {} MiB", sizes.parallel, each >> 20));
        let t: Vec<_> =
            all.iter().map(|(r, p)| measure::parallel(r, *p, &small, each, sizes.parallel).context(r.label)).collect();
        let what = format!("{} concurrent downloads, aggregate", sizes.parallel);
        report.push(Row::throughput(&what, &t, (0.9, 0.75)));
    }
    if cli.wants("recording") {
        step("recording: the bench's gateway process, recording on and off");
        let stopped = sc.serve.terminate(Duration::from_secs(20));
        if stopped.is_none() {
            bail!("the gateway did not stop for the recording step");
        }
        let mut runs = Vec::new();
        for unrecorded in [true, false] {
            let exe = std::env::current_exe()?;
            let args: &[&str] = if unrecorded { &["gateway", "--unrecorded"] } else { &["gateway"] };
            let env = [("IKS_LOG".to_string(), "warn".to_string())];
            let serve = Serve::start_command(&sc.gw, sc.gw.command_of(&exe, args), &env, false);
            let mut t = routes.gateway.clone();
            t.engineer.port = serve.port();
            let p = Pids { gateway: Some(serve.pid()), sshd: sc.sshd.pid(), agent: None };
            runs.push([Bulk::Upload, Bulk::Download].map(|k| measure::bulk(k, &t, p, &big, sizes.bulk)));
        }
        recording_rows(report, &runs);
    }
    drop(routes);
    Ok(())
}

fn step(what: &str) {
    eprintln!("iks-bench: {what}");
}

/// A sparse file of `len` bytes (reads as zeros without touching the disk).
fn sparse(path: &Path, len: u64) -> anyhow::Result<PathBuf> {
    std::fs::File::create(path)?.set_len(len)?;
    Ok(path.to_path_buf())
}

/// Direct OpenSSH with a certificate from the gateway's own CA (what the box trusts),
/// T-1001 through the gateway, and T-1002 to a second box name on the same sshd through
/// the agent's tunnel.
fn routes(sc: &Scenario) -> anyhow::Result<Routes> {
    let key = Key::generate(&sc.gw.path("engineer"), "direct");
    let ca = sc.gw.data_dir().join("keys/user_ca_ed25519_key");
    let signed = iks_e2e::process::run(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca)
            .args(["-I", "iks-bench direct", "-n", iks_e2e::sshd::USER, "-V", "-5m:+12h"])
            .arg(key.public()),
    );
    if !signed.ok {
        bail!("ssh-keygen -s: {}", signed.stderr);
    }
    let direct =
        Target { label: "direct", engineer: Engineer::new(key, sc.sshd.port()), user: iks_e2e::sshd::USER.into() };
    let gateway = Target { label: "gateway", engineer: sc.engineer.clone(), user: iks_e2e::scenario::TICKET.into() };

    #[rustfmt::skip]
    sc.admin(&[
        "admin", "box", "add", "--org", iks_e2e::scenario::ORG, "--name", TUNNEL_BOX,
        "--product", "iks-standard", "--version", "7.2", "--login", iks_e2e::sshd::USER,
    ]);
    let token = sc.gw.json(&["box", "enroll-token", TUNNEL_BOX, "--ttl", "1h"]);
    let mut agent = Agent::new(sc.gw.path("agent"));
    let enrolled = agent.enroll(
        &format!("127.0.0.1:{}", sc.serve.port()),
        token["token"].as_str().context("enrolment token")?,
        token["gateway_host_key"].as_str(),
        &sc.sshd.address(),
        &sc.sshd.host_key_pub(),
    );
    if !enrolled.ok {
        bail!("iks-agent enroll: {}", enrolled.stderr);
    }
    agent.start();
    iks_e2e::process::wait_for(
        "the agent to be online",
        Duration::from_secs(30),
        || sc.gw.json(&["admin", "box", "show", TUNNEL_BOX])["agent"]["online_since"].as_str().map(|_| ()),
        || agent.log_text(),
    );
    let ticket = sc.open_ticket();
    #[rustfmt::skip]
    let requested = sc.admin(&[
        "access", "request", "--ticket", &ticket, "--box", TUNNEL_BOX, "--operator", "ivanov",
        "--duration", "1h", "--reason", "benchmark",
    ]);
    let grant = requested.split_whitespace().find(|w| w.starts_with("G-")).context("no grant ID")?.to_string();
    sc.admin(&["access", "approve", &grant, "--as", "petrov"]);
    let tunnel =
        Target { label: "agent tunnel", engineer: sc.engineer.clone(), user: format!("{ticket}+{TUNNEL_BOX}") };
    Ok(Routes { direct, gateway, tunnel, agent })
}

/// Throughput and CPU rows of one bulk kind.
fn bulk_rows(report: &mut Report, what: &str, bytes: u64, t: &[anyhow::Result<Transfer>]) {
    report.push(Row::throughput(&format!("{what}, {} MiB", bytes >> 20), t, (0.9, 0.75)));
    report.push(Row::cpu(&format!("{what}: CPU s/GiB"), t));
}

fn idle_rows(report: &mut Report, sc: &Scenario, gateway: &Target, count: usize) {
    let key = match russh::keys::load_secret_key(&gateway.engineer.key.private, None) {
        Ok(k) => k,
        Err(e) => return report.push(Row::failed("idle sessions", &e.to_string())),
    };
    let gw_pid = sc.serve.pid();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return report.push(Row::failed("idle sessions", &e.to_string())),
    };
    let rss_before = procstat::rss_kib(gw_pid);
    let started = Instant::now();
    let limit = Duration::from_secs(60 + count as u64 / 2);
    let (sessions, errors) = runtime.block_on(idle::open(gateway.engineer.port, &gateway.user, key, count, limit));
    let opened = sessions.count();
    let took = started.elapsed().as_secs_f64();
    // Let the last sessions' setup work (store writes, certificates) finish before sampling.
    std::thread::sleep(Duration::from_secs(3));
    let rss_after = procstat::rss_kib(gw_pid);
    let cpu_before = procstat::cpu_seconds(gw_pid, false);
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let idle_cpu = (procstat::cpu_seconds(gw_pid, false) - cpu_before) / window.as_secs_f64() * 100.0;
    let sshd_rss: u64 = procstat::descendants(sc.sshd.pid())
        .into_iter()
        .filter(|p| procstat::name(*p).starts_with("sshd"))
        .map(procstat::rss_kib)
        .sum();
    runtime.block_on(sessions.close());
    procstat::wait_childless(sc.sshd.pid(), Duration::from_secs(60));
    let note = errors.first().map(|e| format!(" ({} failed, first: {e})", errors.len())).unwrap_or_default();
    report.note(format!("idle: {opened} of {count} sessions up in {took:.1} s{note}"));
    if opened == 0 {
        return report.push(Row::failed("idle sessions", "none opened"));
    }
    let per = |kib: u64| kib as f64 / opened as f64;
    report.push(Row::idle_rss(opened, per(sshd_rss), per(rss_after.saturating_sub(rss_before))));
    report.push(Row::idle_cpu(opened, idle_cpu));
}

fn recording_rows(report: &mut Report, runs: &[[anyhow::Result<Transfer>; 2]]) {
    let (off, on) = (&runs[0], &runs[1]);
    for (i, what) in ["upload", "download"].iter().enumerate() {
        report.push(Row::recording(what, &off[i], &on[i]));
    }
}
