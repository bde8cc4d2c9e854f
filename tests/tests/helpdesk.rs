//! Tickets end to end: the `ticket` and `admin api-token` commands, and the helpdesk API
//! served by a real `iks-gateway serve` on a free loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use iks_e2e::Gateway;
use serde_json::{Value, json};

const INN: &str = "7707083893";

/// A gateway with one organisation in category 1 (a paid support module), an operator and
/// a customer user.
fn gateway() -> Gateway {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "org", "add", "--inn", INN, "--name", "ООО Ромашка", "--module-paid-until", "2099-12-31"])
        .success();
    gw.run(&["admin", "operator", "add", "--login", "ivanov", "--name", "Иван Иванов"]).success();
    gw.run(&["admin", "customer", "add", "--org", INN, "--login", "petrov", "--name", "Пётр Петров"]).success();
    gw
}

fn open_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "ticket",
        "open",
        "--org",
        INN,
        "--contact",
        "Пётр Петров",
        "--phone",
        "+7 495 000-00-00",
        "--product",
        "iks-standard",
        "--version",
        "7.2",
        "--description",
        "VPN tunnel does not come up",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn the_ticket_commands() {
    let gw = gateway();
    let opened = gw.run(&open_args(&["--topic", "configuration"]));
    let line = opened.success();
    assert!(line.starts_with("opened T-1001 for ООО Ромашка (priority 1, first response due 20"), "{line}");
    assert!(line.trim_end().ends_with("MSK)"), "the deadline is shown in the configured zone: {line}");
    let refused = gw.run(&open_args(&["--topic", "other"]));
    assert_eq!(
        refused.success().trim(),
        "refused T-1002 for ООО Ромашка: the request is not about installing or configuring A-Real Consulting's \
         products (not_about_products)"
    );
    let old = gw.json(&[
        "ticket",
        "open",
        "--org",
        INN,
        "--contact",
        "П",
        "--email",
        "p@romashka.ru",
        "--product",
        "iks-standard",
        "--version",
        "5",
        "--description",
        "x",
    ]);
    assert_eq!((old["state"].as_str(), old["refusal_reason"].as_str()), (Some("refused"), Some("unsupported_version")));
    let bad = gw.run(&open_args(&["--topic", "weather"]));
    assert!(!bad.ok && bad.stderr.contains("invalid value 'weather' for '--topic"), "{}", bad.stderr);

    // The queue: open work only, with its clock.
    let queue = gw.json(&["ticket", "queue"]);
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    assert_eq!((queue[0]["id"].as_i64(), queue[0]["sla"]["status"].as_str()), (Some(1001), Some("running")));
    let text = gw.run(&["ticket", "queue"]);
    assert!(text.success().starts_with("T-1001   p1 open        20"), "{}", text.stdout);

    // Comments: the operator's first stops the clock; the customer's is the customer's.
    let c = gw.run(&["ticket", "comment", "T-1001", "--as", "petrov", "It still fails"]);
    assert_eq!(c.success().trim(), "T-1001: comment 1 from the customer (petrov)");
    gw.run(&["ticket", "comment", "T-1001", "--as", "ivanov", "Please send the log"]).success();
    assert_eq!(gw.json(&["ticket", "queue"])[0]["sla"]["status"], "answered");
    let nobody = gw.run(&["ticket", "comment", "T-1001", "--as", "nobody", "x"]);
    assert_eq!(nobody.failure(), "iks-gateway: error: no person with login 'nobody'");

    // Moves, and the one-line refusal of a move the state does not allow.
    let e = gw.run(&["ticket", "escalate", "T-1001", "--as", "ivanov", "--note", "VPN module bug"]);
    assert_eq!(e.success().trim(), "T-1001 is escalated");
    let again = gw.run(&["ticket", "escalate", "T-1001"]);
    assert_eq!(
        again.failure(),
        "iks-gateway: error: T-1001 is escalated, so it cannot be escalated (it can go to in progress, resolved, \
         closed, refused)"
    );
    let customer = gw.run(&["ticket", "resolve", "T-1001", "--as", "petrov"]);
    assert_eq!(customer.failure(), "iks-gateway: error: petrov cannot make T-1001 resolved");
    gw.run(&["ticket", "progress", "T-1001", "--as", "ivanov"]).success();
    let shown = gw.run(&["ticket", "show", "T-1001"]);
    let out = shown.success();
    for want in [
        "T-1001 (in progress) of ООО Ромашка (INN 7707083893) — iks-standard 7.2",
        "first response: answered, was due",
        "petrov (customer): It still fails",
        "ivanov (support): Please send the log",
        "ivanov (person)      comment from support, ivanov (first response)",
        "ivanov (person)      open → escalated, note: VPN module bug",
        "ivanov (person)      escalated → in progress",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let closed = gw.run(&["ticket", "close", "T-1001", "--reason", "fixed in 7.3"]);
    assert_eq!(
        closed.success().trim(),
        "T-1001 is closed (fixed in 7.3); its grants are revoked and live sessions end"
    );
    let rude = gw.run(&["ticket", "refuse", "T-1002", "--reason", "rudeness"]);
    assert!(rude.failure().contains("T-1002 is refused, so it cannot be refused (nothing changes it any more)"));
    let t4 = gw.json(&open_args(&[]));
    assert_eq!(t4["topic"], Value::Null, "no topic stated is no refusal");
    let rude = gw.run(&["ticket", "refuse", "T-1004", "--reason", "rudeness", "--as", "ivanov"]);
    assert_eq!(
        rude.success().trim(),
        "T-1004 is refused (rudeness towards the support engineer); its grants are revoked and live sessions end"
    );
    assert_eq!(gw.json(&["ticket", "list", "--state", "refused"]).as_array().unwrap().len(), 3);
    assert!(gw.run(&["ticket", "queue"]).success().contains("no open tickets"));
}

#[test]
fn api_tokens_are_shown_once() {
    let gw = gateway();
    let created = gw.run(&["admin", "api-token", "create", "--name", "helpdesk"]);
    let out = created.success();
    assert!(out.starts_with("created API token 1: helpdesk for all organisations"), "{out}");
    let token = out.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().to_string();
    assert!(token.starts_with("iks_") && token.len() == 4 + 64, "{token}");
    let scoped = gw.json(&["admin", "api-token", "create", "--name", "portal", "--org", INN]);
    assert_eq!(scoped["org_id"], 1);
    let dup = gw.run(&["admin", "api-token", "create", "--name", "helpdesk"]);
    assert_eq!(dup.failure(), "iks-gateway: error: an API token named 'helpdesk' is in use");
    let bad = gw.run(&["admin", "api-token", "create", "--name", "Help Desk"]);
    assert!(bad.failure().starts_with("iks-gateway: error: --name: 'Help Desk' must be"), "{}", bad.stderr);
    let list = gw.run(&["admin", "api-token", "list"]);
    assert!(!list.success().contains(&token), "the secret is never shown again");
    assert!(list.stdout.contains("portal") && list.stdout.contains("ООО Ромашка (INN 7707083893)"), "{}", list.stdout);
    assert_eq!(gw.run(&["admin", "api-token", "revoke", "helpdesk"]).success().trim(), "revoked API token 1: helpdesk");
    assert_eq!(
        gw.run(&["admin", "api-token", "revoke", "helpdesk"]).failure(),
        "iks-gateway: error: no API token helpdesk in use"
    );
    // The name is free again for the replacement.
    gw.run(&["admin", "api-token", "create", "--name", "helpdesk"]).success();
}

/// A running `iks-gateway serve`, stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    http: String,
}

impl Server {
    fn start(gw: &Gateway) -> Self {
        let mut child = gw
            .command(&["serve"])
            .env("IKS_HTTP_LISTEN", "127.0.0.1:0")
            .env("IKS_SSH_LISTEN", "127.0.0.1:0")
            .env("IKS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn iks-gateway serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Drain stdout for the server's whole life: a closed pipe would make it exit.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // The banner names the bound address once the listener is up: that is readiness.
        let http = loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("serve printed its HTTP address");
            if let Some(rest) = line.trim().strip_prefix("HTTP:") {
                break rest.split_whitespace().next().expect("address").to_string();
            }
        };
        Self { child, http }
    }

    /// One HTTP/1.1 request; the status and the body as JSON (or text).
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.http).expect("connect to the API");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.http,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
        (status, serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string())))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_answers_the_helpdesk_api() {
    let gw = gateway();
    let token = gw.json(&["admin", "api-token", "create", "--name", "helpdesk"])["token"].as_str().unwrap().to_string();
    let server = Server::start(&gw);
    assert!(server.http.starts_with("127.0.0.1:") && !server.http.ends_with(":0"), "{}", server.http);

    let (status, doc) = server.call("GET", "/api/openapi.json", None, None);
    assert_eq!((status, doc["openapi"].as_str().map(|v| v.starts_with('3'))), (200, Some(true)));
    let (status, err) = server.call("GET", "/api/tickets", None, None);
    assert_eq!((status, err["error"]["code"].as_str()), (401, Some("unauthorized")));

    let filing = json!({
        "inn": INN, "contact_name": "Пётр Петров", "contact_email": "petrov@romashka.ru",
        "product": "iks-standard", "version": "7", "description": "VPN tunnel does not come up"
    });
    let (status, t) = server.call("POST", "/api/tickets", Some(&token), Some(&filing));
    assert_eq!((status, t["number"].as_str(), t["state"].as_str()), (201, Some("T-1001"), Some("open")), "{t}");
    let comment = json!({ "author": "Пётр Петров", "from_customer": true, "body": "It still fails" });
    let (status, _) = server.call("POST", "/api/tickets/T-1001/comments", Some(&token), Some(&comment));
    assert_eq!(status, 201);
    let (status, missing) = server.call("POST", "/api/tickets", Some(&token), Some(&json!({ "inn": INN })));
    assert_eq!((status, missing["error"]["field"].as_str()), (400, Some("contact_name")), "{missing}");

    // The CLI sees what the API did, while the server runs.
    let shown = gw.run(&["ticket", "show", "T-1001"]);
    assert!(shown.success().contains("Пётр Петров (customer): It still fails"), "{}", shown.stdout);
    let (status, closed) =
        server.call("POST", "/api/tickets/T-1001/close", Some(&token), Some(&json!({ "reason": "fixed" })));
    assert_eq!((status, closed["state"].as_str()), (200, Some("closed")));
    let (_, sessions) = server.call("GET", "/api/tickets/T-1001/sessions", Some(&token), None);
    assert_eq!(sessions, json!([]));
    let history = gw.json(&["ticket", "show", "T-1001"])["history"].clone();
    let actors: Vec<_> =
        history.as_array().unwrap().iter().map(|h| h["actor"]["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(actors, ["helpdesk", "helpdesk", "helpdesk"], "{history}");
}
