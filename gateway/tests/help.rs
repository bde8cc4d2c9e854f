//! The binary starts and documents its commands. (Being an integration test also makes
//! `cargo test` build the binary that the end-to-end crate in `tests/` drives.)

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_iks-gateway")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "migrate", "config", "admin", "audit", "--data-dir", "--config"] {
        assert!(text.contains(cmd), "--help mentions {cmd}:\n{text}");
    }
}
