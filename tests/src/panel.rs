//! The web panel from outside: a minimal HTTP/1.1 client that keeps cookies like a
//! browser ([`Client`]), one-time password links from the CLI, and the real browser
//! (Debian's Chromium through playwright-core, scripts in `tests/browser`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Gateway, process};

/// The playwright scripts' directory.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Installs playwright-core (pinned by package-lock.json) the first time; the browser itself
/// is Debian's (`apt-get install chromium`), never downloaded.
pub fn ensure_playwright() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's Chromium: apt-get install -y chromium (.ci/run does this)"
    );
    if browser_dir().join("node_modules/playwright-core/package.json").exists() {
        return;
    }
    let run = process::run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(browser_dir()));
    assert!(run.ok, "npm ci in tests/browser failed:\n{}\n{}", run.stdout, run.stderr);
}

/// The path of a one-time password link for `login`, from the CLI.
pub fn password_link(gw: &Gateway, login: &str) -> String {
    let run = gw.run(&["admin", "person", "password-link", login]);
    let out = run.success();
    let url = out.split_whitespace().find(|w| w.starts_with("http")).unwrap_or_else(|| panic!("no link in: {out}"));
    let path = &url[url.find("/password/").unwrap_or_else(|| panic!("not a password link: {url}"))..];
    path.to_string()
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// A header's value (the first, names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The value of an `<input name="…" value="…">` in the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[at + name.len() + 15..];
        Some(rest[..rest.find('"')?].to_string())
    }
}

/// A browser without a browser: one connection per request, its cookies kept.
#[derive(Debug, Clone)]
pub struct Client {
    port: u16,
    cookies: Vec<(String, String)>,
}

impl Client {
    pub fn new(port: u16) -> Self {
        Self { port, cookies: Vec::new() }
    }

    pub fn get(&mut self, path: &str) -> Answer {
        self.request("GET", path, None)
    }

    /// Posts an `application/x-www-form-urlencoded` body, encoded by the caller.
    pub fn post(&mut self, path: &str, body: &str) -> Answer {
        self.request("POST", path, Some(body))
    }

    /// Fetches `path`'s form and posts it back with its CSRF token and `fields`.
    pub fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.get(path).input("csrf").unwrap_or_else(|| panic!("no form at {path}"));
        let mut body = format!("csrf={}", encode(&csrf));
        for (k, v) in fields {
            body.push_str(&format!("&{k}={}", encode(v)));
        }
        self.post(path, &body)
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the panel");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            head.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send the request");
        // A server may refuse a large body before reading it: the answer still counts.
        let _ = stream.write_all(body.unwrap_or("").as_bytes());
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: no answer: {text}"));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        for (_, set) in headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")) {
            let (kv, attrs) = set.split_once(';').unwrap_or((set, ""));
            let Some((k, v)) = kv.split_once('=') else { continue };
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        Answer { status, headers, body: body.to_string() }
    }
}

/// Percent-encodes a form value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
