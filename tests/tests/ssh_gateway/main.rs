//! The SSH gateway end to end: the stock OpenSSH client as the engineer, `iks-gateway
//! serve`, and Debian's real sshd as the IKS box, each test with its own of each.
//!
//! One test binary, so tests overlap under `--test-threads` (those moving hundreds of
//! megabytes take turns, see [`bulk`]); one module per area:
//! - [`terminal`]: an interactive shell in tmux, its recording and transcript; Ctrl-C;
//! - [`exec`]: exit statuses, separate streams, signals, stdin, 20 concurrent sessions;
//! - [`transfer`]: scp (SFTP and legacy), sftp and rsync with 100 MB files;
//! - [`refusals`]: every access rule's one-line refusal, unknown keys, host-key pinning;
//! - [`lifetime`]: grant expiry with warnings, revocation, ticket close, kill, shutdown;
//! - [`forwarding`]: -L, -R and -A;
//! - [`memory`]: a slow reader of 1 GiB does not grow the gateway;
//! - [`stall`]: many small pipelined SFTP requests (OpenSSH, paramiko); ending a session
//!   whose engineer stopped reading;
//! - [`requests`]: refused environment variables and subsystems never reach the box;
//! - [`controlmaster`]: one connection, many channels: each recorded as it closes;
//! - [`recheck`]: a live session ends when any rule of a new connection stops holding;
//! - [`recording`]: every channel recorded, its cap, the session quota, unechoed keys.
//!
//! Tests marked "Regression" cover defects this suite found in the gateway.

use std::sync::{Mutex, MutexGuard};

mod controlmaster;
mod exec;
mod forwarding;
mod lifetime;
mod memory;
mod recheck;
mod recording;
mod refusals;
mod requests;
mod stall;
mod terminal;
mod transfer;

/// Held by the tests that move hundreds of megabytes, so that on a 2-core machine they
/// take turns instead of starving each other (and their time limits stay meaningful);
/// the light tests run alongside.
fn bulk() -> MutexGuard<'static, ()> {
    static BULK: Mutex<()> = Mutex::new(());
    BULK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
