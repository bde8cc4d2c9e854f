//! What the recording holds, whichever way the engineer came in: shells and commands
//! without a terminal, rsync's streams, a terminal's real size; what it keeps out (keys the
//! box never echoed) and how far it goes (a channel's cap, a session's quota).

use std::time::Duration;

use iks_e2e::engineer::Tmux;
use iks_e2e::process;
use iks_e2e::scenario::{CastEvent, Scenario, Setup, TICKET, end_reason, read_cast};
use iks_e2e::sshd;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// The session's recording, once the session has ended: header and events.
fn ended_cast(s: &Scenario, id: i64) -> (Value, Vec<CastEvent>) {
    let session = s.wait_ended(id);
    read_cast(&s.recording(&session))
}

fn joined(events: &[CastEvent], code: &str) -> String {
    events.iter().filter(|e| e.code == code).map(|e| e.data.as_str()).collect()
}

fn transcript(s: &Scenario, id: i64) -> String {
    s.wait_ended(id);
    s.admin(&["session", "transcript", &format!("S-{id}")])
}

#[test]
fn shells_and_commands_without_a_terminal_are_recorded() {
    let s = Scenario::ready();
    // ssh -T: a shell reading its commands from a pipe.
    let shell = s.engineer.ssh_timed(TICKET, &["-T"], "", Some(b"id -un; echo MARK-$((6*7))\n".to_vec()));
    assert_eq!(shell.run.stdout, format!("{}\nMARK-42\n", sshd::USER), "{:?}", shell.run);
    let (_, events) = ended_cast(&s, 1);
    assert!(joined(&events, "i").contains("echo MARK-$((6*7))\n"), "stdin is input: {events:#?}");
    let shown = format!("{}\r\nMARK-42\r\n", sshd::USER);
    assert!(joined(&events, "o").contains(&shown), "stdout as a terminal shows it: {events:#?}");
    let text = transcript(&s, 1);
    assert!(text.lines().any(|l| l == "MARK-42"), "the transcript shows the output:\n{text}");

    // A command's stdout and stderr.
    let exec = s.ssh("echo exec-out; echo exec-err >&2");
    assert!(exec.ok, "{exec:?}");
    let (_, events) = ended_cast(&s, 2);
    let out = joined(&events, "o");
    assert!(out.contains("exec-out") && out.contains("exec-err"), "{events:#?}");
    assert!(out.contains("`echo exec-out; echo exec-err >&2` without a terminal"), "where it starts: {out}");

    // A terminal made on the box (script), fed on stdin: what the box's terminal showed.
    let script =
        s.engineer.ssh_timed(TICKET, &[], "script -qfc bash /dev/null", Some(b"echo SCRIPT-$((2+3))\nexit\n".to_vec()));
    assert!(script.run.stdout.contains("SCRIPT-5"), "{:?}", script.run);
    let (_, events) = ended_cast(&s, 3);
    assert!(joined(&events, "o").contains("SCRIPT-5"), "{events:#?}");
    assert!(transcript(&s, 3).contains("SCRIPT-5"));
    let close = s.events(3, "close");
    assert_eq!(close[0]["details"]["recorded"]["capped"], false, "{close:?}");
}

#[test]
fn a_channel_is_recorded_up_to_its_cap_and_counted_beyond() {
    let s = Scenario::with(Setup::default().env("IKS_RECORDING_CHANNEL_CAP", "64KiB"));
    let run = s.ssh("head -c 1000000 /dev/zero | tr '\\0' a; echo; seq 1 3");
    assert!(run.ok, "{:?}", run.stderr);
    assert_eq!(run.stdout.len(), 1_000_000 + 1 + 6);
    let session = s.wait_ended(1);
    let path = s.recording(&session);
    let size = std::fs::metadata(&path).unwrap().len();
    println!("1 MB of output with a 64 KiB channel cap: a {size}-byte recording");
    assert!(size < 100_000, "the content stops at the cap: {size} bytes");
    let (_, events) = read_cast(&path);
    let out = joined(&events, "o");
    assert!(out.contains("recorded up to 64 KiB ([recording] channel_cap)"), "the record says it was cut");
    let close = &s.events(1, "close")[0]["details"];
    assert_eq!(close["recorded"], serde_json::json!({ "bytes": 65536, "capped": true }), "{close}");
    assert_eq!(close["stdout"]["bytes"], 1_000_007, "counted beyond the cap: {close}");
    assert_eq!(close["stdout"]["sha256"], process::sha256(run.stdout.as_bytes()), "and hashed: {close}");
}

#[test]
fn rsync_streams_are_recorded_with_counts_and_hashes() {
    let s = Scenario::ready();
    let local = s.gw.path("local");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("notes.txt"), "rsync-file-content\n").unwrap();
    let target = format!("{TICKET}@127.0.0.1:{}/", s.sshd.files().display());
    let run = s.engineer.rsync(&[&local.join("notes.txt").display().to_string(), &target], WAIT);
    assert!(run.run.ok, "{:?}", run.run);
    let (_, events) = ended_cast(&s, 1);
    assert!(joined(&events, "i").contains("rsync-file-content"), "what rsync sent is in the record: {events:#?}");
    let close = &s.events(1, "close")[0]["details"];
    for stream in ["stdin", "stdout"] {
        assert!(close[stream]["bytes"].as_u64().unwrap() > 0, "{close}");
        assert_eq!(close[stream]["sha256"].as_str().map(str::len), Some(64), "{close}");
    }
}

#[test]
fn a_session_over_its_quota_ends_and_the_others_go_on() {
    let s = Scenario::with(Setup::default().env("IKS_RECORDING_SESSION_QUOTA", "1MiB"));
    let mut other = s.engineer.background(TICKET, &[], "for i in $(seq 1 8); do echo alive-$i; sleep 0.5; done");
    other.wait_output("alive-1", WAIT);
    let flood = s.engineer.ssh_timed(TICKET, &["-tt"], "head -c 300M /dev/urandom | base64", None);
    println!("the flood ran {:?} before its session ended", flood.elapsed);
    assert!(
        flood.run.stdout.contains("session closed: this session's recording reached its quota")
            || flood.run.stderr.contains("session closed: this session's recording reached its quota"),
        "the engineer is told why: {}",
        process::tail(&flood.run.stderr, 5)
    );
    assert!(other.wait_exit(WAIT).is_some_and(|st| st.success()), "{}", other.stderr());
    assert!(other.stdout().contains("alive-8"), "the other session went on: {}", other.stdout());
    let sessions = s.sessions();
    let flooded = sessions.iter().find(|x| x["id"] == 2).expect("the flood's session");
    let ended = s.wait_ended(2);
    assert_eq!(end_reason(&ended), "recording quota reached", "{flooded:#}");
    assert_eq!(end_reason(&s.wait_ended(1)), "client exit");
    let size = std::fs::metadata(s.recording(&ended)).unwrap().len();
    println!("recording of the flooded session: {size} bytes (quota 1 MiB)");
    assert!(size <= (1 << 20) + (16 << 10), "{size} bytes");
    let (_, events) = read_cast(&s.recording(&ended));
    assert!(joined(&events, "o").contains("recording reached its quota"), "the record says why it ends");
    let audit = s.audit("session.end");
    assert!(audit.iter().any(|d| d["reason"] == "recording quota reached"), "{audit:#?}");
}

#[test]
fn a_terminal_is_recorded_at_its_size_without_the_keys_the_box_did_not_echo() {
    let s = Scenario::ready();
    // The terminal's size is set before ssh starts, so that ssh asks for a 100x30 terminal
    // whatever tmux's window is at that moment.
    let command = format!(
        "stty cols 100 rows 30; ssh -t {} {TICKET}@127.0.0.1; echo SSH-EXIT=$?; sleep 600",
        s.engineer.options_line()
    );
    let tmux = Tmux::start(&s.gw.path("tmux"), 100, 30, &command);
    tmux.wait_line("the prompt", WAIT, sshd::is_prompt);
    tmux.type_line("echo shown-$((20+1))");
    tmux.wait_line("the echo", WAIT, |l| l == "shown-21");
    // A password prompt that does not echo, as sudo's does.
    tmux.type_line("read -s -p 'Password: ' PW; echo; echo len=${#PW}");
    tmux.wait_line("the prompt", WAIT, |l| l.starts_with("Password:"));
    tmux.type_line("hunter2-secret");
    tmux.wait_line("the length", WAIT, |l| l == "len=14");
    tmux.type_line("stty -echo; read X; stty echo; echo got=${#X}");
    std::thread::sleep(Duration::from_millis(300));
    tmux.type_line("second-secret");
    tmux.wait_line("the second length", WAIT, |l| l == "got=13");
    tmux.type_line("exit");
    tmux.wait_line("ssh to exit", WAIT, |l| l == "SSH-EXIT=0");

    let session = s.wait_ended(1);
    let path = s.recording(&session);
    let (header, events) = read_cast(&path);
    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(!raw.contains("hunter2") && !raw.contains("second-secret"), "no password in the recording:\n{raw}");
    let typed = joined(&events, "i");
    assert!(typed.contains("echo shown-$((20+1))"), "echoed keys are kept: {typed:?}");
    assert!(typed.contains("⟦14 keys not echoed⟧") && typed.contains("⟦13 keys not echoed⟧"), "{typed:?}");
    assert_eq!((header["width"].as_u64(), header["height"].as_u64()), (Some(100), Some(30)), "{header}");
    let shell = &s.events(1, "close")[0]["details"];
    assert!(shell["stdin"].get("sha256").is_none(), "no hash of the keystrokes: {shell}");
    assert!(!transcript(&s, 1).contains("secret"));
}

#[test]
fn a_transcript_says_when_it_drops_earlier_lines() {
    let s = Scenario::ready();
    let run = s.ssh("seq 1 120000");
    assert!(run.ok, "{:?}", run.stderr);
    let text = transcript(&s, 1);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("[iks-gateway] earlier lines are cut"), "{first}");
    assert!(text.trim_end().ends_with("120000"), "the last lines are there");
}
