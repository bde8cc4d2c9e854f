//! Slowing down password guessing: after repeated failures an account, or an address,
//! must wait before trying again. Kept in memory (per gateway node): it protects against
//! guessing, which needs many tries, not against a determined attacker with many nodes'
//! worth of patience — the Argon2id cost and the audit trail of refusals do the rest.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A login, lowercased (whether or not anyone has it, so probing learns nothing).
    Account(String),
    /// A client address.
    Address(String),
}

impl Key {
    /// How many failures within [`WINDOW`] lock the key.
    fn limit(&self) -> usize {
        match self {
            Self::Account(_) => 5,
            // Several people may share an office's address.
            Self::Address(_) => 20,
        }
    }
}

/// Failures older than this are forgotten; a locked key waits until its oldest counted
/// failure is this old.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most, so a flood of made-up logins cannot exhaust memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// How long `failures` (oldest first) keep a key with `limit` locked at `now`.
pub fn wait(failures: &VecDeque<Instant>, limit: usize, now: Instant) -> Option<Duration> {
    let recent: Vec<&Instant> = failures.iter().filter(|t| now.duration_since(**t) < WINDOW).collect();
    if recent.len() < limit {
        return None;
    }
    // Unlocks when the failure that brought the count to the limit leaves the window.
    let oldest_counted = recent[recent.len() - limit];
    Some(WINDOW - now.duration_since(*oldest_counted))
}

impl Throttle {
    /// The longest wait any of `keys` is under, if any.
    pub fn blocked(&self, keys: &[Key]) -> Option<Duration> {
        self.blocked_at(keys, Instant::now())
    }

    fn blocked_at(&self, keys: &[Key], now: Instant) -> Option<Duration> {
        let map = crate::live::lock(&self.failures);
        keys.iter().filter_map(|k| map.get(k).and_then(|f| wait(f, k.limit(), now))).max()
    }

    /// Counts a failure against each key.
    pub fn failed(&self, keys: &[Key]) {
        self.failed_at(keys, Instant::now());
    }

    fn failed_at(&self, keys: &[Key], now: Instant) {
        let mut map = crate::live::lock(&self.failures);
        if map.len() >= MAX_KEYS {
            map.retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for k in keys {
            if map.len() >= MAX_KEYS && !map.contains_key(k) {
                continue;
            }
            let f = map.entry(k.clone()).or_default();
            while f.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) || f.len() >= k.limit() {
                f.pop_front();
            }
            f.push_back(now);
        }
    }

    /// A success clears the account's count (not the address's: one good login from an
    /// address does not excuse its guessing at other accounts).
    pub fn succeeded(&self, keys: &[Key]) {
        let mut map = crate::live::lock(&self.failures);
        for k in keys.iter().filter(|k| matches!(k, Key::Account(_))) {
            map.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_an_account_for_the_window() {
        let t = Throttle::default();
        let start = Instant::now();
        let keys = [Key::Account("ivanov".into()), Key::Address("127.0.0.1".into())];
        for i in 0..4 {
            t.failed_at(&keys, start + Duration::from_secs(i));
            assert_eq!(t.blocked_at(&keys, start + Duration::from_secs(i)), None, "after {} failures", i + 1);
        }
        t.failed_at(&keys, start + Duration::from_secs(4));
        let wait = t.blocked_at(&keys, start + Duration::from_secs(4)).unwrap();
        assert_eq!(wait, WINDOW - Duration::from_secs(4));
        // Other accounts from another address are not affected.
        assert_eq!(t.blocked_at(&[Key::Account("petrov".into()), Key::Address("127.0.0.2".into())], start), None);
        // The lock lifts when the first counted failure leaves the window.
        assert_eq!(t.blocked_at(&keys, start + WINDOW), None);
        assert!(t.blocked_at(&keys, start + WINDOW - Duration::from_secs(1)).is_some());
    }

    #[test]
    fn an_address_trying_many_accounts_is_locked_after_twenty() {
        let t = Throttle::default();
        let now = Instant::now();
        let addr = Key::Address("127.0.0.9".into());
        for i in 0..20 {
            let keys = [Key::Account(format!("user{i}")), addr.clone()];
            assert_eq!(t.blocked_at(&keys, now), None);
            t.failed_at(&keys, now);
        }
        assert!(t.blocked_at(&[Key::Account("fresh".into()), addr.clone()], now).is_some());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let t = Throttle::default();
        let now = Instant::now();
        let keys = [Key::Account("ivanov".into()), Key::Address("127.0.0.1".into())];
        for _ in 0..4 {
            t.failed_at(&keys, now);
        }
        t.succeeded(&keys);
        for _ in 0..4 {
            t.failed_at(&keys, now);
        }
        assert_eq!(t.blocked_at(&keys[..1], now), None, "the count started again after the success");
        let map = crate::live::lock(&t.failures);
        assert_eq!(map[&keys[1]].len(), 8);
    }
}
