//! The panel's doors against a real `iks-gateway serve`: a flood of sign-ins is counted
//! before Argon2 runs and does not take the process's memory with it, logins of the wrong
//! shape are not stored, and redirects taken from a request stay on the panel's origin, as
//! Chromium follows them. Numbers are printed (`--nocapture`), not timed.

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use iks_e2e::Gateway;
use iks_e2e::panel::{self, Client, browser_dir, encode, ensure_playwright};
use iks_e2e::process;
use iks_e2e::serve::Serve;

const PASSWORD: &str = "correct horse battery staple";

/// A gateway serving an auditor, sidorova, whose password is [`PASSWORD`] when `password`.
fn gateway(password: bool) -> (Gateway, Serve) {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "auditor", "add", "--login", "sidorova", "--name", "Анна Сидорова"]).success();
    let serve = Serve::start(&gw, &[]);
    if password {
        let mut c = Client::new(serve.http_port());
        let link = panel::password_link(&gw, "sidorova");
        let set = c.submit(&link, &[("password", PASSWORD), ("repeat", PASSWORD)]);
        assert_eq!(set.status, 303, "the password is set: {}", set.body);
    }
    (gw, serve)
}

fn mib(kib: u64) -> u64 {
    kib / 1024
}

#[test]
fn a_flood_of_wrong_passwords_is_counted_before_hashing() {
    let (_gw, serve) = gateway(true);
    let port = serve.http_port();
    let rss_before = serve.memory_kib("VmRSS").unwrap();
    let hwm_before = serve.memory_kib("VmHWM").unwrap();
    // Each try has its form (and token) first, then all 200 post at once.
    const TRIES: usize = 200;
    let start = Arc::new(Barrier::new(TRIES));
    let tries: Vec<_> = (0..TRIES)
        .map(|_| {
            let mut c = Client::new(port);
            let csrf = c.get("/login").input("csrf").expect("the sign-in form");
            let body = format!("csrf={csrf}&login=sidorova&password={}", encode("a wrong guess"));
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                c.post("/login", &body).status
            })
        })
        .collect();
    let statuses: Vec<u16> = tries.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    let rss_after = serve.memory_kib("VmRSS").unwrap();
    let hwm_after = serve.memory_kib("VmHWM").unwrap();
    println!(
        "{TRIES} parallel wrong passwords: checked {checked} (limit 5), throttled {throttled}; \
         RSS {} MiB before, {} MiB after, peak {} MiB (peak before {} MiB)",
        mib(rss_before),
        mib(rss_after),
        mib(hwm_after),
        mib(hwm_before)
    );
    assert_eq!((checked, throttled), (5, TRIES - 5), "{statuses:?}");
    // Argon2 takes ~19 MiB per hash: one per core at a time, not one per request.
    assert!(hwm_after - rss_before < 256 * 1024, "peak grew {} MiB", mib(hwm_after - rss_before));
    // The account is locked even for its right password; the refusals were audited.
    let mut c = Client::new(port);
    let right = c.submit("/login", &[("login", "sidorova"), ("password", PASSWORD)]);
    assert_eq!(right.status, 429);
}

#[test]
fn huge_logins_are_refused_without_growing_the_database() {
    let (gw, serve) = gateway(false);
    let size = || {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", gw.sqlite_file().display())).ok())
            .map(|m| m.len())
            .sum::<u64>()
    };
    let before = size();
    let login = "a".repeat(1_900_000);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let mut c = Client::new(serve.http_port());
        statuses.push(c.submit("/login", &[("login", &login), ("password", "a wrong guess")]).status);
    }
    // A long login that fits in a form is refused as no one's, and not stored either.
    let mut c = Client::new(serve.http_port());
    let shaped = c.submit("/login", &[("login", &"b".repeat(10_000)), ("password", "a wrong guess")]);
    let after = size();
    println!(
        "20 sign-ins with 1.9 MB logins: answers {:?}; database {} KiB before, {} KiB after",
        statuses.iter().collect::<std::collections::BTreeSet<_>>(),
        before / 1024,
        after / 1024
    );
    assert!(statuses.iter().all(|s| *s == 413), "{statuses:?}");
    assert_eq!(shaped.status, 401);
    assert!(after < before + 1024 * 1024, "the database grew from {before} to {after} bytes");
}

/// `back`/`next` values that leave the origin (or broke the answer) on a naive check.
const HOSTILE: [&str; 6] =
    ["/%09/evil.example", "/%0A/evil.example", "/%5Cevil.example", "//evil.example", "/%01x", "https://evil.example"];

#[test]
fn redirects_stay_on_the_panel_in_chromium() {
    let (gw, serve) = gateway(false);
    let port = serve.http_port();
    // Without a browser first: every answer is a redirect home, never a 500.
    for value in HOSTILE {
        let answer = Client::new(port).get(&format!("/lang/en?back={value}"));
        assert_eq!((answer.status, answer.header("location")), (303, Some("/")), "back={value}");
    }
    ensure_playwright();
    let mut node = Command::new("node");
    node.arg(browser_dir().join("redirects.mjs"))
        .current_dir(browser_dir())
        .env("IKS_PANEL", format!("http://127.0.0.1:{port}"))
        .env("IKS_LINK", panel::password_link(&gw, "sidorova"))
        .env("IKS_LOGIN", "sidorova")
        .env("IKS_TARGETS", serde_json::to_string(&HOSTILE).unwrap());
    let run = process::run_timed(&mut node, None, Duration::from_secs(120)).run;
    println!("{}", run.stdout);
    assert!(
        run.ok,
        "a redirect left the panel ({:?})\n{}\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr,
        serve.log_tail(30)
    );
    assert_eq!(run.stdout.lines().filter(|l| l.contains(" -> http://127.0.0.1:")).count(), 2 * HOSTILE.len());
}
