//! Interactive shells through a real terminal (tmux): what the engineer types and sees,
//! the terminal's type and size reaching the box, and all of it in the recording.

use std::time::{Duration, Instant};

use iks_e2e::engineer::Tmux;
use iks_e2e::scenario::{Scenario, TICKET, end_reason, read_cast};
use iks_e2e::sshd;

const WAIT: Duration = Duration::from_secs(15);

/// Starts `ssh -t` to T-1001 in a tmux window; the window reports ssh's exit status as
/// `SSH-EXIT=N` and stays open for reading.
fn terminal(s: &Scenario, cols: u16, rows: u16) -> Tmux {
    let command = format!("ssh -t {} {TICKET}@127.0.0.1; echo SSH-EXIT=$?; sleep 600", s.engineer.options_line());
    let tmux = Tmux::start(&s.gw.path("tmux"), cols, rows, &command);
    tmux.wait_line("the box's shell prompt", WAIT, sshd::is_prompt);
    tmux
}

#[test]
fn an_interactive_shell_is_recorded_with_input_output_and_resizes() {
    let s = Scenario::ready();
    let tmux = terminal(&s, 120, 30);
    let term = tmux.option("default-terminal");
    assert!(!term.is_empty(), "tmux has a default-terminal");

    tmux.type_line("echo typed-$((6*7))");
    tmux.wait_line("typed-42 on the screen", WAIT, |l| l == "typed-42");
    tmux.type_line("echo \"term=$TERM\"; stty size");
    tmux.wait_line("the box's TERM", WAIT, |l| l == format!("term={term}"));
    tmux.wait_line("the box's terminal size (rows cols)", WAIT, |l| l == "30 120");

    tmux.resize(100, 20);
    tmux.type_line("echo size=$(stty size)");
    tmux.wait_line("the new size on the box", WAIT, |l| l == "size=20 100");
    tmux.type_line("exit");
    tmux.wait_line("ssh to exit 0", WAIT, |l| l == "SSH-EXIT=0");

    let id = s.sessions()[0]["id"].as_i64().expect("a session");
    let session = s.wait_ended(id);
    assert_eq!(end_reason(&session), "client exit", "{session:#}");
    let shell = s.events(id, "shell");
    assert_eq!(shell.len(), 1, "one shell event: {shell:?}");
    assert_eq!(shell[0]["details"]["pty"], "120x30", "{shell:?}");

    let (header, events) = read_cast(&s.recording(&session));
    assert_eq!(header["version"], 2, "{header}");
    let has = |code: &str, what: &dyn Fn(&str) -> bool| events.iter().any(|e| e.code == code && what(&e.data));
    assert!(has("i", &|d| d.contains("echo typed-$((6*7))")), "the typed command is an input event: {events:#?}");
    assert!(has("o", &|d| d.contains("typed-42")), "its output is an output event: {events:#?}");
    assert!(has("o", &|d| d.contains(&format!("term={term}"))), "{events:#?}");
    let resizes: Vec<&str> = events.iter().filter(|e| e.code == "r").map(|e| e.data.as_str()).collect();
    // The header has the size the client asked for with its terminal (tmux may still have
    // been sizing its window then), the events every change after it.
    let mut sizes = vec![format!("{}x{}", header["width"], header["height"])];
    sizes.extend(resizes.iter().map(|r| r.to_string()));
    assert!(sizes.ends_with(&["120x30".to_string(), "100x20".to_string()]), "the sizes: {sizes:?} {events:#?}");
    let times: Vec<f64> = events.iter().map(|e| e.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "event times never go back: {times:?}");

    let transcript = s.admin(&["session", "transcript", &format!("S-{id}")]);
    assert!(transcript.contains("echo typed-$((6*7))"), "transcript shows the command:\n{transcript}");
    assert!(transcript.lines().any(|l| l.trim_end() == "typed-42"), "and its output:\n{transcript}");
    assert!(transcript.lines().any(|l| l.trim_end() == "20 100" || l.trim_end() == "size=20 100"), "{transcript}");
    let replay = s.admin(&["session", "replay", &format!("S-{id}"), "--speed", "100"]);
    assert!(replay.contains("typed-42"), "the replay plays the output:\n{replay}");
}

#[test]
fn ctrl_c_interrupts_a_flood_of_output_and_the_prompt_returns() {
    let s = Scenario::ready();
    let tmux = terminal(&s, 100, 25);
    tmux.type_line("yes flood-line");
    tmux.wait_line("the flood", WAIT, |l| l == "flood-line");
    std::thread::sleep(Duration::from_millis(500));
    let pressed = Instant::now();
    tmux.keys(&["C-c"]);
    tmux.type_line("echo back-$((40+2))");
    tmux.wait_line("the prompt after Ctrl-C", Duration::from_secs(10), |l| l == "back-42");
    let latency = pressed.elapsed();
    println!("Ctrl-C to a working prompt: {latency:?}");
    assert!(latency < Duration::from_secs(5), "Ctrl-C took {latency:?} to give the prompt back");
    tmux.type_line("exit");
    tmux.wait_line("ssh to exit 0", WAIT, |l| l == "SSH-EXIT=0");
    let id = s.sessions()[0]["id"].as_i64().unwrap();
    let session = s.wait_ended(id);
    assert_eq!(end_reason(&session), "client exit");
    let (_, events) = read_cast(&s.recording(&session));
    assert!(events.iter().any(|e| e.code == "i" && e.data.contains('\u{3}')), "Ctrl-C is recorded as input");
}
