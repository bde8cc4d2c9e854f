//! The admin command line, end to end: what an administrator types and sees, and that
//! bad input is refused with one line naming the field while nothing is written.

use iks_e2e::Gateway;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEDzWDPG1+ZhUfXGbzPFFpJm/ihb5BFgCjLZm3dj7+2P ivanov@laptop";
const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKdaMhOi7MZFP0O4fHI8KF3e6WZZL2Nt9hANzGS1oyuY ivanov@desk";

fn count(gw: &Gateway, what: &[&str]) -> usize {
    gw.json(what).as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn organisation_inn_is_validated_with_the_check_digit_named() {
    let gw = Gateway::sqlite();
    let ok =
        gw.run(&["admin", "org", "add", "--inn", "7707083893", "--name", "ООО Ромашка", "--purchased", "2026-06-01"]);
    let out = ok.success();
    assert!(out.starts_with("created organisation 1: ООО Ромашка"), "{out}");
    assert!(out.contains("INN:               7707083893"), "{out}");

    let bad = gw.run(&["admin", "org", "add", "--inn", "7707083894", "--name", "ООО Лютик"]);
    assert_eq!(bad.failure(), "iks-gateway: error: --inn: INN check digit 10 is 4, expected 3");
    for (inn, why) in [
        ("770708389", "got 9"),
        ("77070838931", "got 11"),
        ("77070838a3", "non-digit 'a' at position 9"),
        ("500100732258", "check digit 12"),
    ] {
        let line = gw.run(&["admin", "org", "add", "--inn", inn, "--name", "X"]).failure().to_string();
        assert!(line.starts_with("iks-gateway: error: --inn: "), "{line}");
        assert!(line.contains(why), "{inn}: {line}");
    }
    let dup = gw.run(&["admin", "org", "add", "--inn", "7707083893", "--name", "Другое"]);
    assert_eq!(dup.failure(), "iks-gateway: error: an organisation with INN 7707083893 already exists");
    let bad_date =
        gw.run(&["admin", "org", "add", "--inn", "500100732259", "--name", "ИП", "--purchased", "01.06.2026"]);
    assert!(bad_date.failure().contains("--purchased: '01.06.2026' is not a date"), "{}", bad_date.stderr);
    assert_eq!(count(&gw, &["admin", "org", "list"]), 1, "refusals wrote nothing");
}

#[test]
fn organisations_show_their_category_and_can_be_updated() {
    let gw = Gateway::sqlite();
    let org =
        gw.json(&["admin", "org", "add", "--inn", "7707083893", "--name", "ООО Ромашка", "--purchased", "2020-01-10"]);
    assert_eq!(org["id"], 1);
    assert_eq!(org["category"], 3, "a purchase years ago without a paid module is category 3: {org}");
    assert!(org["standing"].as_str().unwrap().contains("support module expired on 2021-01-10"), "{org}");

    let updated = gw.json(&["admin", "org", "update", "7707083893", "--module-paid-until", "2099-12-31"]);
    assert_eq!(updated["category"], 1);
    let partner = gw.json(&["admin", "org", "update", "1", "--module-paid-until", "none", "--partner"]);
    assert_eq!(partner["category"], 2);
    assert_eq!(partner["facts"]["module_paid_until"], serde_json::Value::Null);

    let shown = gw.run(&["admin", "org", "show", "7707083893"]);
    assert!(shown.success().contains("category 2: partner"), "{}", shown.stdout);
    let unknown = gw.run(&["admin", "org", "show", "42"]);
    assert_eq!(unknown.failure(), "iks-gateway: error: no organisation 42");
    let not_inn = gw.run(&["admin", "org", "show", "7707083894"]);
    assert_eq!(not_inn.failure(), "iks-gateway: error: --org: INN check digit 10 is 4, expected 3");
}

#[test]
fn boxes_are_checked_against_the_supported_products() {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "org", "add", "--inn", "7707083893", "--name", "ООО Ромашка"]).success();
    let add = |extra: &[&str]| {
        let mut args = vec!["admin", "box", "add", "--org", "7707083893", "--login", "support"];
        args.extend_from_slice(extra);
        gw.run(&args)
    };
    let unknown = add(&["--name", "gw", "--product", "iks-ultra", "--version", "7"]);
    assert!(unknown.failure().contains("--product: unknown product 'iks-ultra'"), "{}", unknown.stderr);
    let old = add(&["--name", "gw", "--product", "iks-standard", "--version", "5.1"]);
    assert!(old.failure().contains("--version: IKS Standard 5.1 is not a supported version"), "{}", old.stderr);
    let bad_name = add(&["--name", "Main GW", "--product", "iks-standard", "--version", "7"]);
    assert!(bad_name.failure().starts_with("iks-gateway: error: --name: 'Main GW' must be"), "{}", bad_name.stderr);
    let bad_addr = add(&["--name", "gw", "--product", "iks-standard", "--version", "7", "--address", "localhost"]);
    assert!(bad_addr.failure().contains("--address: 'localhost' is not host:port"), "{}", bad_addr.stderr);
    let bad_key = add(&["--name", "gw", "--product", "iks-standard", "--version", "7", "--host-key", "ssh-rsa AAAA"]);
    assert!(bad_key.failure().contains("--host-key: "), "{}", bad_key.stderr);
    assert_eq!(count(&gw, &["admin", "box", "list"]), 0, "refusals wrote nothing");

    let keyscan = format!("[127.0.0.1]:2200 {}", &KEY[..KEY.rfind(' ').unwrap()]);
    let b = add(&[
        "--name",
        "main-gw",
        "--product",
        "iks-standard",
        "--version",
        "7.2.1",
        "--address",
        "127.0.0.1:2200",
        "--host-key",
        &keyscan,
    ]);
    assert!(b.success().starts_with("created box 1: main-gw of ООО Ромашка"), "{}", b.stdout);
    let shown = gw.json(&["admin", "box", "show", "7707083893/main-gw"]);
    assert_eq!(shown["host_key"], &KEY[..KEY.rfind(' ').unwrap()]);
    assert_eq!(shown["auth"], "certificate");
    let dup = add(&["--name", "main-gw", "--product", "iks-lite", "--version", "6"]);
    assert_eq!(dup.failure(), "iks-gateway: error: ООО Ромашка already has a box named 'main-gw'");

    let moved = gw.json(&["admin", "box", "update", "1", "--address", "none", "--version", "6"]);
    assert_eq!(moved["address"], serde_json::Value::Null);
    assert_eq!(moved["version"], "6");
    let refused = gw.run(&["admin", "box", "update", "1", "--version", "8"]);
    assert!(refused.failure().contains("--version: "), "{}", refused.stderr);
    assert_eq!(gw.json(&["admin", "box", "show", "1"])["version"], "6", "a refused update changes nothing");
    assert_eq!(gw.run(&["admin", "box", "show", "9"]).failure(), "iks-gateway: error: no box 9");
}

#[test]
fn people_and_their_keys() {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "org", "add", "--inn", "7707083893", "--name", "ООО Ромашка"]).success();
    let key_file = gw.path("id_ed25519.pub");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let op = gw.json(&[
        "admin",
        "operator",
        "add",
        "--login",
        "ivanov",
        "--name",
        "Иван Иванов",
        "--ssh-key",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(op["role"], "operator");
    assert_eq!(op["ssh_keys"].as_array().unwrap().len(), 1);
    assert!(op["ssh_keys"][0]["fingerprint"].as_str().unwrap().starts_with("SHA256:"));

    // Keys from stdin.
    let added = gw.run_with_stdin(&["admin", "key", "add", "ivanov", "--ssh-key", "-"], &format!("# desk\n{KEY2}\n"));
    assert!(added.success().contains("added key 2: SHA256:"), "{}", added.stdout);
    assert_eq!(count(&gw, &["admin", "key", "list", "ivanov"]), 2);

    // A malformed key file is refused whole, naming the line, and creates no person.
    let bad_file = gw.path("bad.pub");
    std::fs::write(&bad_file, format!("{KEY2}\nnot a key\n")).unwrap();
    let bad = gw.run(&[
        "admin",
        "operator",
        "add",
        "--login",
        "sidorov",
        "--name",
        "С",
        "--ssh-key",
        bad_file.to_str().unwrap(),
    ]);
    let line = bad.failure();
    assert!(
        line.starts_with(&format!(
            "iks-gateway: error: --ssh-key: {} line 2: not an OpenSSH public key",
            bad_file.display()
        )),
        "{line}"
    );
    let private = gw.path("id_ed25519");
    std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n").unwrap();
    let line = gw
        .run(&["admin", "operator", "add", "--login", "sidorov", "--name", "С", "--ssh-key", private.to_str().unwrap()])
        .failure()
        .to_string();
    assert!(line.contains("private key"), "{line}");
    let missing =
        gw.run(&["admin", "operator", "add", "--login", "sidorov", "--name", "С", "--ssh-key", "/nonexistent.pub"]);
    assert!(missing.failure().contains("--ssh-key: cannot read /nonexistent.pub"), "{}", missing.stderr);
    assert!(gw.run(&["admin", "person", "show", "sidorov"]).failure().contains("no person with login 'sidorov'"));

    // Customers belong to an organisation; auditors and admins do not.
    let c = gw.json(&[
        "admin",
        "customer",
        "add",
        "--org",
        "7707083893",
        "--login",
        "petrov",
        "--name",
        "Пётр Петров",
        "--email",
        "petrov@romashka.ru",
    ]);
    assert_eq!(c["org_id"], 1);
    gw.run(&["admin", "auditor", "add", "--login", "audit", "--name", "Служба ИБ"]).success();
    let taken = gw.run(&["admin", "auditor", "add", "--login", "petrov", "--name", "X"]);
    assert_eq!(taken.failure(), "iks-gateway: error: the login 'petrov' is taken");
    let bad_email = gw.run(&["admin", "auditor", "add", "--login", "a2", "--name", "X", "--email", "nope"]);
    assert_eq!(bad_email.failure(), "iks-gateway: error: --email: 'nope' is not an e-mail address");
    assert_eq!(count(&gw, &["admin", "person", "list"]), 3);
    assert_eq!(count(&gw, &["admin", "person", "list", "--org", "7707083893"]), 1);

    let disabled = gw.json(&["admin", "person", "update", "ivanov", "--disable"]);
    assert!(disabled["disabled_at"].is_string());
    let removed = gw.run(&["admin", "key", "remove", "ivanov", "1"]);
    assert!(removed.success().starts_with("removed key 1: SHA256:"));
    assert_eq!(count(&gw, &["admin", "key", "list", "ivanov"]), 1);
}

#[test]
fn configuration_errors_are_one_line_and_stop_before_writing() {
    let gw = Gateway::sqlite();
    let example = gw.run(&["config", "example"]);
    assert!(example.success().contains("[[products]]"));
    let cfg = gw.path("bad.toml");
    std::fs::write(&cfg, "[ssh]\nlisen = \"127.0.0.1:22\"\n").unwrap();
    let bad = gw.run(&["--config", cfg.to_str().unwrap(), "admin", "org", "list"]);
    let line = bad.failure();
    assert!(line.contains("bad.toml") && line.contains("unknown field `lisen`"), "{line}");
    let missing = gw.run(&["--config", "/nonexistent.toml", "admin", "org", "list"]);
    assert!(missing.failure().contains("cannot read config file /nonexistent.toml"), "{}", missing.stderr);
    let env = gw.command(&["admin", "org", "list"]).env("IKS_SSH_PORT", "22").output().unwrap();
    let env: iks_e2e::Run = env.into();
    assert!(env.failure().contains("unknown field `port`"), "{}", env.stderr);
    assert!(!gw.data_dir().join("iks-gateway.db").exists(), "nothing was written");
    // The example, as a file, runs.
    std::fs::write(&cfg, &example.stdout).unwrap();
    gw.run(&["--config", cfg.to_str().unwrap(), "migrate"]).success();
}

#[test]
fn the_store_can_be_postgresql() {
    let Ok(base) = std::env::var("IKS_TEST_DATABASE_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI must set IKS_TEST_DATABASE_URL");
        eprintln!("IKS_TEST_DATABASE_URL is not set: skipped");
        return;
    };
    // A schema of its own, made with psql so this test shares nothing with the store's.
    let schema = format!(
        "e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() % 1_000_000
    );
    let psql = |sql: &str| {
        let ok = std::process::Command::new("psql").arg(&base).args(["-q", "-c", sql]).status().unwrap().success();
        assert!(ok, "psql {sql}");
    };
    psql(&format!("CREATE SCHEMA {schema}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    let gw = Gateway::with_database(format!("{base}{sep}options[search_path]={schema}"));
    assert!(gw.run(&["migrate"]).success().contains("PostgreSQL"));
    gw.run(&["admin", "org", "add", "--inn", "7707083893", "--name", "ООО Ромашка"]).success();
    assert_eq!(count(&gw, &["admin", "org", "list"]), 1);
    assert!(!gw.data_dir().join("iks-gateway.db").exists(), "nothing went to SQLite");
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}

#[test]
fn a_password_link_is_printed_with_the_panels_address_and_audited() {
    let gw = Gateway::sqlite();
    gw.run(&["admin", "auditor", "add", "--login", "sidorova", "--name", "Сидорова А."]).success();
    let out = gw.run(&["admin", "person", "password-link", "sidorova"]);
    let link = out.success().trim().to_string();
    let token = link.strip_prefix("http://127.0.0.1:8080/password/").unwrap_or_else(|| panic!("{link}"));
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{link}");
    // The configured public address is used when there is one.
    let mut public = gw.command(&["admin", "person", "password-link", "sidorova", "--json"]);
    public.env("IKS_HTTP_PUBLIC_URL", "https://gw.example.ru/");
    let out = public.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["link"].as_str().unwrap().starts_with("https://gw.example.ru/password/"), "{v}");
    let tail = gw.run(&["audit", "tail", "-n", "2"]);
    assert_eq!(tail.success().matches("(cli)  person.password_link").count(), 2, "{}", tail.stdout);
    let unknown = gw.run(&["admin", "person", "password-link", "nobody"]);
    assert_eq!(unknown.failure(), "iks-gateway: error: no person with login 'nobody'");
}
