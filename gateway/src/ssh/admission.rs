//! What the SSH port gives a connection before it has authenticated: a bounded slot and a
//! bounded time. Without this, 2,000 silent TCP connections stayed open for good (each a
//! file descriptor and a task), and anyone could fill the gateway's descriptor table.
//!
//! - Caps: at most `max_unauthenticated` connections in all and
//!   `max_unauthenticated_per_address` from one IPv4 address or IPv6 /64 (one host usually
//!   holds a whole /64) may be unauthenticated at once; a connection beyond either is closed
//!   as soon as it is accepted, with a log line.
//! - Timeouts: a connection must begin to authenticate within `handshake_timeout` and be
//!   authenticated within `login_grace_time` of being accepted, or its socket is shut down.
//!
//! "Authenticated" means an engineer's or a working agent's connection. An enrolling agent
//! logs in with any key, so it keeps its unauthenticated slot (and its deadline) to the end.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::warn;

use crate::config::SshConfig;
use crate::sever::Severer;
use crate::sync::lock;

/// Where unauthenticated connections are counted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was closed before it could authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Closed {
    #[error("{limit} unauthenticated connections are open already (ssh.max_unauthenticated)")]
    GlobalCap { limit: usize },
    #[error(
        "{limit} unauthenticated connections from this address are open already (ssh.max_unauthenticated_per_address)"
    )]
    AddressCap { limit: usize },
    #[error("no authentication began within {0:?} (ssh.handshake_timeout)")]
    Handshake(Duration),
    #[error("not authenticated within {0:?} (ssh.login_grace_time)")]
    LoginGrace(Duration),
    #[error("cannot watch the connection: {0}")]
    Socket(String),
}

/// How far a connection has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Connected,
    Authenticating,
    Authenticated,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    handshake: Duration,
    login_grace: Duration,
    total: usize,
    per_source: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<Source, usize>,
    /// Connections still unauthenticated, by peer address, for the front's callbacks.
    pending: HashMap<SocketAddr, watch::Sender<Phase>>,
}

/// The node's unauthenticated connections.
pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("limits", &self.limits)
            .field("unauthenticated", &self.unauthenticated())
            .finish()
    }
}

impl Admission {
    pub fn new(config: &SshConfig) -> Self {
        Self {
            limits: Limits {
                handshake: config.handshake_timeout(),
                login_grace: config.login_grace_time(),
                total: usize::try_from(config.max_unauthenticated).unwrap_or(usize::MAX),
                per_source: usize::try_from(config.max_unauthenticated_per_address).unwrap_or(usize::MAX),
            },
            counts: Mutex::default(),
        }
    }

    /// How many connections are unauthenticated now.
    pub fn unauthenticated(&self) -> usize {
        lock(&self.counts).total
    }

    /// Takes a slot for a new connection from `peer`, or says which cap is full.
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Slot, Closed> {
        let source = Source::of(peer.ip());
        let mut counts = lock(&self.counts);
        if counts.total >= self.limits.total {
            return Err(Closed::GlobalCap { limit: self.limits.total });
        }
        let from_source = counts.per_source.entry(source).or_default();
        if *from_source >= self.limits.per_source {
            return Err(Closed::AddressCap { limit: self.limits.per_source });
        }
        *from_source += 1;
        counts.total += 1;
        let (phase, watch) = watch::channel(Phase::Connected);
        counts.pending.insert(peer, phase);
        Ok(Slot { admission: self.clone(), peer, source, phase: watch })
    }

    /// The client sent its first authentication request (the key exchange is done).
    pub fn authenticating(&self, peer: Option<SocketAddr>) {
        self.advance(peer, Phase::Authenticating);
    }

    /// The connection is an engineer's or a working agent's: it leaves the count.
    pub fn authenticated(&self, peer: Option<SocketAddr>) {
        self.advance(peer, Phase::Authenticated);
    }

    fn advance(&self, peer: Option<SocketAddr>, to: Phase) {
        let Some(peer) = peer else { return };
        if let Some(phase) = lock(&self.counts).pending.get(&peer) {
            phase.send_if_modified(|p| {
                let later = to > *p;
                if later {
                    *p = to;
                }
                later
            });
        }
    }

    /// Gives the slot back (once).
    fn release(&self, peer: SocketAddr, source: Source) {
        let mut counts = lock(&self.counts);
        if counts.pending.remove(&peer).is_none() {
            return;
        }
        counts.total -= 1;
        if let Some(n) = counts.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                counts.per_source.remove(&source);
            }
        }
    }
}

/// One connection's unauthenticated slot, given back when it authenticates or ends.
struct Slot {
    admission: Arc<Admission>,
    peer: SocketAddr,
    source: Source,
    phase: watch::Receiver<Phase>,
}

impl Slot {
    fn release(&self) {
        self.admission.release(self.peer, self.source);
    }

    /// Resolves with why the connection must close, or with `None` once it has
    /// authenticated (and given its slot back).
    async fn deadline(&mut self) -> Option<Closed> {
        let Limits { handshake, login_grace, .. } = self.admission.limits;
        let started = tokio::time::Instant::now();
        let began = tokio::time::timeout(handshake, self.phase.wait_for(|p| *p >= Phase::Authenticating)).await.is_ok();
        if !began {
            return Some(Closed::Handshake(handshake));
        }
        let done = tokio::time::timeout_at(started + login_grace, self.phase.wait_for(|p| *p == Phase::Authenticated))
            .await
            .is_ok();
        if !done {
            return Some(Closed::LoginGrace(login_grace));
        }
        self.release();
        None
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Serves one accepted connection with `serve`, within the caps and deadlines: a
/// connection over a cap is closed at once; one that misses a deadline has its socket shut
/// down, which ends russh's session (its reads see the end) and so the connection.
pub async fn guard<F>(
    admission: Arc<Admission>,
    stream: TcpStream,
    peer: SocketAddr,
    serve: impl FnOnce(TcpStream, Severer) -> F,
) where
    F: Future<Output = ()>,
{
    let admitted = admission.admit(peer).and_then(|slot| {
        // Shutting the socket down reaches the session wherever russh holds the stream.
        let (killer, stream) = Severer::new(stream).map_err(|e| Closed::Socket(e.to_string()))?;
        Ok((slot, killer, stream))
    });
    let (mut slot, killer, stream) = match admitted {
        Ok(admitted) => admitted,
        Err(why) => {
            warn!(%peer, %why, "closing an unauthenticated SSH connection at once");
            return;
        }
    };
    let served = serve(stream, killer.clone());
    tokio::pin!(served);
    tokio::select! {
        () = &mut served => return,
        closed = slot.deadline() => if let Some(why) = closed {
            warn!(%peer, %why, "closing an unauthenticated SSH connection");
            killer.sever();
        }
    }
    served.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: u32, per_address: u32) -> Arc<Admission> {
        let config = SshConfig {
            max_unauthenticated: total,
            max_unauthenticated_per_address: per_address,
            ..Default::default()
        };
        Arc::new(Admission::new(&config))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_is_grouped_by_its_64_bit_prefix_and_mapped_ipv4_as_ipv4() {
        let a = Source::of("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(a, Source::of("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_ne!(a, Source::of("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(Source::of("::ffff:192.0.2.7".parse().unwrap()), Source::of("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn caps_count_unauthenticated_connections_and_free_on_authentication_or_end() {
        let a = admission(4, 2);
        let one = a.admit(addr("127.0.0.1:1001")).unwrap();
        let _two = a.admit(addr("127.0.0.1:1002")).unwrap();
        assert_eq!(a.admit(addr("127.0.0.1:1003")).err(), Some(Closed::AddressCap { limit: 2 }));
        let _v6a = a.admit(addr("[2001:db8::1]:1")).unwrap();
        let _v6b = a.admit(addr("[2001:db8::2]:1")).unwrap();
        assert_eq!(a.unauthenticated(), 4);
        assert_eq!(a.admit(addr("127.0.0.9:1")).err(), Some(Closed::GlobalCap { limit: 4 }));
        drop(one);
        assert_eq!(a.unauthenticated(), 3);
        let again = a.admit(addr("127.0.0.1:1004")).unwrap();
        a.authenticated(Some(again.peer));
        // Authenticated is a phase; the slot is given back by its deadline watcher.
        again.release();
        assert_eq!(a.unauthenticated(), 3);
        drop(again);
        assert_eq!(a.unauthenticated(), 3, "released once only");
    }

    #[tokio::test]
    async fn deadlines_handshake_then_login_grace() {
        let (handshake, login_grace) = (Duration::from_millis(50), Duration::from_millis(200));
        let limits = Limits { handshake, login_grace, total: 10, per_source: 10 };
        let a = Arc::new(Admission { limits, counts: Mutex::default() });
        let mut silent = a.admit(addr("127.0.0.1:1")).unwrap();
        assert_eq!(silent.deadline().await, Some(Closed::Handshake(handshake)));
        let mut slow = a.admit(addr("127.0.0.1:2")).unwrap();
        a.authenticating(Some(slow.peer));
        assert_eq!(slow.deadline().await, Some(Closed::LoginGrace(login_grace)));
        let mut quick = a.admit(addr("127.0.0.1:3")).unwrap();
        a.authenticating(Some(quick.peer));
        a.authenticated(Some(quick.peer));
        assert_eq!(quick.deadline().await, None, "an authenticated connection has no deadline");
        assert_eq!(a.unauthenticated(), 2, "and no longer counts");
    }
}
