//! A client that reads slowly must stall the box, not fill the gateway's memory: every
//! buffer between the box and the engineer is bounded. What is asserted is the memory; the
//! time the read took is printed (it depends on the machine's load, not on the gateway).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iks_e2e::process;
use iks_e2e::scenario::{Scenario, TICKET, end_reason};

const GIB: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// The reader's pace, and two pauses on the way, so the box is always ahead of it.
const RATE: f64 = 100.0 * 1024.0 * 1024.0;
const PAUSES_AT: [u64; 2] = [GIB / 4, 3 * GIB / 4];
const PAUSE: Duration = Duration::from_secs(1);
/// Nothing read for this long is a hang, not a slow machine: ssh is killed and the test fails.
const HANG: Duration = Duration::from_secs(60);

#[test]
fn a_slow_reader_of_1_gib_does_not_grow_the_gateway() {
    let _bulk = crate::bulk();
    let s = Scenario::ready();
    let before = s.serve.memory_kib("VmRSS").expect("the gateway's VmRSS");
    let mut child = s.engineer.spawn_ssh(TICKET, &[], &format!("head -c {GIB} /dev/zero"));
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(before));
    let read = Arc::new(AtomicU64::new(0));

    // Sample the gateway's resident memory every 200 ms; kill ssh if the reading hangs.
    let sampler = {
        let (done, max_rss, read) = (done.clone(), max_rss.clone(), read.clone());
        let gateway = s.serve.pid();
        std::thread::spawn(move || {
            let (mut last, mut progressed) = (0, Instant::now());
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = process::memory_kib(gateway, "VmRSS") {
                    max_rss.fetch_max(rss, Ordering::Relaxed);
                }
                let now = read.load(Ordering::Relaxed);
                if now != last {
                    (last, progressed) = (now, Instant::now());
                } else if progressed.elapsed() > HANG {
                    process::signal(pid, "KILL");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    let mut nonzero = false;
    let mut pauses = PAUSES_AT.iter().peekable();
    let mut paused = Duration::ZERO;
    let started = Instant::now();
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("reading ssh's stdout: {e}"),
        };
        nonzero |= buf[..n].iter().step_by(4096).any(|b| *b != 0);
        total += n as u64;
        read.store(total, Ordering::Relaxed);
        if pauses.next_if(|at| total >= **at).is_some() {
            std::thread::sleep(PAUSE);
            paused += PAUSE;
        }
        let due = Duration::from_secs_f64(total as f64 / RATE) + paused;
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    let elapsed = started.elapsed();
    let status = child.wait().expect("ssh");
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let max = max_rss.load(Ordering::Relaxed);
    let hwm = s.serve.memory_kib("VmHWM").unwrap_or(0);
    let growth_mib = (max.saturating_sub(before)) as f64 / 1024.0;
    eprintln!(
        "1 GiB read slowly in {elapsed:?} ({:.0} MB/s): gateway VmRSS before {:.1} MiB, max {:.1} MiB (+{growth_mib:.1} MiB), VmHWM {:.1} MiB",
        total as f64 / elapsed.as_secs_f64() / 1e6,
        before as f64 / 1024.0,
        max as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    assert_eq!(total, GIB, "all of it arrived (ssh exited {status})");
    assert!(!nonzero, "and it was /dev/zero's zeros");
    assert!(status.success(), "ssh exited {status}");
    assert!(growth_mib < 64.0, "the gateway grew by {growth_mib:.1} MiB while the client read slowly");
    let session = s.wait_ended(1);
    assert_eq!(end_reason(&session), "client exit");
    assert_eq!(session["bytes_out"], GIB, "{session:#}");
}
