//! File transfers with the stock tools, 100 MB each way: the bytes arrive intact, and the
//! session's events name each file with its size and SHA-256 (the data itself is not kept).

use std::path::{Path, PathBuf};
use std::time::Duration;

use iks_e2e::process;
use iks_e2e::scenario::{Scenario, TICKET, end_reason};

const SIZE: u64 = 100 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

/// A scenario with a 100 MB random file; returns it, the file, its SHA-256, and a directory
/// on the box (the box is this machine, so the test reads the box's files directly).
fn with_file() -> (Scenario, PathBuf, String, PathBuf) {
    let s = Scenario::ready();
    let local = s.gw.path("local");
    std::fs::create_dir_all(&local).unwrap();
    let file = local.join("up.bin");
    process::random_file(&file, SIZE);
    let sha = process::sha256_file(&file);
    let remote = s.sshd.files().to_path_buf();
    (s, file, sha, remote)
}

fn at_box(path: &Path) -> String {
    format!("{TICKET}@127.0.0.1:{}", path.display())
}

/// Asserts that session `id` recorded one `kind` event for `path` with the whole file.
#[track_caller]
fn assert_recorded(s: &Scenario, id: i64, kind: &str, path: &Path, sha: &str) {
    let session = s.wait_ended(id);
    assert_eq!(end_reason(&session), "client exit", "{session:#}");
    let events = s.events(id, kind);
    let path = path.display().to_string();
    let mine: Vec<_> = events.iter().filter(|e| e["details"]["path"] == path.as_str()).collect();
    assert_eq!(mine.len(), 1, "one {kind} of {path} in S-{id}: {:#}", s.show(id));
    let d = &mine[0]["details"];
    assert_eq!(d["bytes"], SIZE, "{kind}: {d}");
    assert_eq!(d["sha256"], sha, "{kind}: {d}");
    assert_eq!(d["complete"], true, "{kind}: {d}");
}

#[test]
fn scp_moves_100_mb_both_ways_intact_and_recorded() {
    let _bulk = crate::bulk();
    let (s, file, sha, remote) = with_file();
    let on_box = remote.join("up.bin");
    let up = s.engineer.scp(&[&file.display().to_string(), &at_box(&on_box)], TIMEOUT);
    assert!(up.run.ok, "{:?}", up.run);
    assert_eq!(process::sha256_file(&on_box), sha, "the box has the same bytes");
    let back = file.with_file_name("down.bin");
    let down = s.engineer.scp(&[&at_box(&on_box), &back.display().to_string()], TIMEOUT);
    assert!(down.run.ok, "{:?}", down.run);
    assert_eq!(process::sha256_file(&back), sha, "the same bytes came back");
    println!("scp (SFTP protocol) 100 MB: up {:?}, down {:?}", up.elapsed, down.elapsed);
    assert_recorded(&s, 1, "sftp.upload", &on_box, &sha);
    assert_recorded(&s, 2, "sftp.download", &on_box, &sha);
}

#[test]
fn legacy_scp_moves_100_mb_both_ways_intact_and_recorded() {
    let _bulk = crate::bulk();
    let (s, file, sha, remote) = with_file();
    let on_box = remote.join("legacy.bin");
    let up = s.engineer.scp(&["-O", &file.display().to_string(), &at_box(&on_box)], TIMEOUT);
    assert!(up.run.ok, "{:?}", up.run);
    assert_eq!(process::sha256_file(&on_box), sha);
    let back = file.with_file_name("down.bin");
    let down = s.engineer.scp(&["-O", &at_box(&on_box), &back.display().to_string()], TIMEOUT);
    assert!(down.run.ok, "{:?}", down.run);
    assert_eq!(process::sha256_file(&back), sha);
    println!("scp -O 100 MB: up {:?}, down {:?}", up.elapsed, down.elapsed);
    assert_recorded(&s, 1, "scp.upload", &on_box, &sha);
    assert_recorded(&s, 2, "scp.download", &on_box, &sha);
    let exec = s.events(1, "exec");
    assert!(exec[0]["details"]["command"].as_str().unwrap().starts_with("scp -t "), "{exec:?}");
}

#[test]
fn sftp_batch_puts_and_gets_100_mb_intact_and_recorded() {
    let _bulk = crate::bulk();
    let (s, file, sha, remote) = with_file();
    let on_box = remote.join("batch.bin");
    let back = file.with_file_name("down.bin");
    let batch = format!("put {} {}\nget {} {}\n", file.display(), on_box.display(), on_box.display(), back.display());
    let run = s.engineer.sftp_batch(TICKET, &batch, TIMEOUT);
    assert!(run.run.ok, "{:?}", run.run);
    println!("sftp -b put + get of 100 MB: {:?}", run.elapsed);
    assert_eq!(process::sha256_file(&on_box), sha);
    assert_eq!(process::sha256_file(&back), sha);
    assert_eq!(s.events(1, "subsystem")[0]["details"]["subsystem"], "sftp");
    assert_recorded(&s, 1, "sftp.upload", &on_box, &sha);
    assert_recorded(&s, 1, "sftp.download", &on_box, &sha);
}

#[test]
fn rsync_over_the_gateway_copies_files() {
    let s = Scenario::ready();
    let local = s.gw.path("local");
    let remote = s.sshd.files();
    std::fs::create_dir_all(&local).unwrap();
    let file = local.join("data.bin");
    process::random_file(&file, 5 * 1024 * 1024);
    let sha = process::sha256_file(&file);
    let target = format!("{TICKET}@127.0.0.1:{}/", remote.display());
    let run = s.engineer.rsync(&["-t", &file.display().to_string(), &target], TIMEOUT);
    assert!(run.run.ok, "{:?}", run.run);
    assert_eq!(process::sha256_file(&remote.join("data.bin")), sha);
    // A second run finds nothing to send: rsync's own protocol works both ways.
    let again = s.engineer.rsync(&["-t", "--stats", &file.display().to_string(), &target], TIMEOUT);
    assert!(again.run.stdout.contains("Number of regular files transferred: 0"), "{:?}", again.run);
    let session = s.wait_ended(1);
    assert_eq!(end_reason(&session), "client exit");
    let exec = s.events(1, "exec");
    assert!(exec[0]["details"]["command"].as_str().unwrap().starts_with("rsync --server"), "{exec:?}");
}
