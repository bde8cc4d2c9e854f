//! Slowing down password guessing: after repeated failures an account, an account's
//! second factor, or an address must wait before trying again. Kept in memory (per
//! gateway node): it protects against guessing, which needs many tries, not against a
//! determined attacker with many nodes' worth of patience — the Argon2id cost and the
//! audit trail of refusals do the rest.
//!
//! A try is counted as a failure when it starts ([`Throttle::attempt`]), in the same lock
//! as the check, and taken back only when it succeeds: parallel tries cannot all pass the
//! check before any of them is counted, and a try that never finishes stays counted.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A login, lowercased (whether or not anyone has it, so probing learns nothing).
    Account(String),
    /// A person's second factor, counted apart from the password: a correct password
    /// must not reset the count of wrong codes.
    SecondFactor(i64),
    /// A client address.
    Address(String),
}

impl Key {
    /// How many failures within [`WINDOW`] lock the key.
    fn limit(&self) -> usize {
        match self {
            Self::Account(_) | Self::SecondFactor(_) => 5,
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
/// What a try waits when the map is full of recent failures: refusing (fail closed) is
/// safer than letting tries through uncounted.
const FULL_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
    max_keys: Option<usize>,
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

/// A try under way, already counted as a failure against its keys; dropping it leaves it
/// counted, [`Attempt::succeeded`] takes it back.
#[must_use = "a try that is dropped stays counted as a failure"]
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: Vec<Key>,
    at: Instant,
}

impl Throttle {
    /// A throttle remembering at most `max_keys` keys (tests fill it).
    #[cfg(test)]
    fn with_max_keys(max_keys: usize) -> Self {
        Self { max_keys: Some(max_keys), ..Self::default() }
    }

    /// Starts a try against `keys`: `Err(wait)` when any of them is locked (or nothing more
    /// can be remembered), otherwise the try, counted as a failure until it succeeds.
    pub fn attempt(&self, keys: &[Key]) -> Result<Attempt<'_>, Duration> {
        self.attempt_at(keys, Instant::now())
    }

    fn attempt_at(&self, keys: &[Key], now: Instant) -> Result<Attempt<'_>, Duration> {
        let mut map = crate::sync::lock(&self.failures);
        if let Some(wait) = keys.iter().filter_map(|k| map.get(k).and_then(|f| wait(f, k.limit(), now))).max() {
            return Err(wait);
        }
        let max_keys = self.max_keys.unwrap_or(MAX_KEYS);
        let fits = |map: &HashMap<Key, VecDeque<Instant>>| {
            map.len() + keys.iter().filter(|k| !map.contains_key(k)).count() <= max_keys
        };
        if !fits(&map) {
            map.retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        if !fits(&map) {
            tracing::warn!(keys = map.len(), "sign-in throttle full of recent failures: refusing new tries");
            return Err(FULL_WAIT);
        }
        for k in keys {
            let f = map.entry(k.clone()).or_default();
            while f.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) || f.len() >= k.limit() {
                f.pop_front();
            }
            f.push_back(now);
        }
        Ok(Attempt { throttle: self, keys: keys.to_vec(), at: now })
    }
}

impl Attempt<'_> {
    /// The try succeeded: the account's (or second factor's) count starts again; an
    /// address keeps its earlier failures (one good sign-in from an address does not
    /// excuse its guessing at other accounts), only this try is taken back.
    pub fn succeeded(self) {
        let mut map = crate::sync::lock(&self.throttle.failures);
        for k in &self.keys {
            match k {
                Key::Account(_) | Key::SecondFactor(_) => {
                    map.remove(k);
                }
                Key::Address(_) => {
                    let Some(f) = map.get_mut(k) else { continue };
                    if let Some(i) = f.iter().rposition(|t| *t == self.at) {
                        f.remove(i);
                    }
                    if f.is_empty() {
                        map.remove(k);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts `n` failed tries against `keys` at `now`.
    fn fail(t: &Throttle, keys: &[Key], now: Instant, n: usize) {
        for _ in 0..n {
            drop(t.attempt_at(keys, now).expect("not locked yet"));
        }
    }

    #[test]
    fn the_fifth_failure_locks_an_account_for_the_window() {
        let t = Throttle::default();
        let start = Instant::now();
        let keys = [Key::Account("ivanov".into()), Key::Address("127.0.0.1".into())];
        for i in 0..5 {
            fail(&t, &keys, start + Duration::from_secs(i), 1);
        }
        let wait = t.attempt_at(&keys, start + Duration::from_secs(4)).unwrap_err();
        assert_eq!(wait, WINDOW - Duration::from_secs(4));
        // Other accounts from another address are not affected.
        let other = [Key::Account("petrov".into()), Key::Address("127.0.0.2".into())];
        assert!(t.attempt_at(&other, start).is_ok());
        // The lock lifts when the first counted failure leaves the window.
        assert_eq!(t.attempt_at(&keys, start + WINDOW - Duration::from_secs(1)).unwrap_err(), Duration::from_secs(1));
        assert!(t.attempt_at(&keys, start + WINDOW).is_ok());
    }

    #[test]
    fn an_address_trying_many_accounts_is_locked_after_twenty() {
        let t = Throttle::default();
        let now = Instant::now();
        let addr = Key::Address("127.0.0.9".into());
        for i in 0..20 {
            fail(&t, &[Key::Account(format!("user{i}")), addr.clone()], now, 1);
        }
        assert!(t.attempt_at(&[Key::Account("fresh".into()), addr.clone()], now).is_err());
    }

    #[test]
    fn success_clears_the_account_and_takes_back_only_its_own_try_from_the_address() {
        let t = Throttle::default();
        let now = Instant::now();
        let keys = [Key::Account("ivanov".into()), Key::Address("127.0.0.1".into())];
        fail(&t, &keys, now, 4);
        t.attempt_at(&keys, now).unwrap().succeeded();
        fail(&t, &keys, now, 4);
        assert!(t.attempt_at(&keys[..1], now).is_ok(), "the count started again after the success");
        let map = crate::sync::lock(&t.failures);
        assert_eq!(map[&keys[1]].len(), 8, "the address keeps its failures, not the success");
    }

    #[test]
    fn a_try_counts_before_it_is_checked_so_parallel_tries_cannot_overrun_the_limit() {
        let t = Throttle::default();
        let now = Instant::now();
        let keys = [Key::Account("ivanov".into())];
        // Five tries under way at once (none has finished): the sixth is refused.
        let running: Vec<_> = (0..5).map(|_| t.attempt_at(&keys, now).unwrap()).collect();
        assert!(t.attempt_at(&keys, now).is_err());
        drop(running);
    }

    #[test]
    fn a_wrong_code_count_survives_correct_passwords() {
        let t = Throttle::default();
        let now = Instant::now();
        let password = [Key::Account("ivanov".into())];
        let code = [Key::SecondFactor(7)];
        for _ in 0..5 {
            t.attempt_at(&password, now).unwrap().succeeded();
            fail(&t, &code, now, 1);
        }
        assert!(t.attempt_at(&code, now).is_err());
    }

    #[test]
    fn a_full_map_refuses_new_keys_instead_of_forgetting_them() {
        let t = Throttle::with_max_keys(4);
        let now = Instant::now();
        for i in 0..4 {
            fail(&t, &[Key::Account(format!("user{i}"))], now, 1);
        }
        assert_eq!(t.attempt_at(&[Key::Account("fresh".into())], now).unwrap_err(), FULL_WAIT);
        assert!(t.attempt_at(&[Key::Account("user0".into())], now).is_ok(), "known keys go on being counted");
        // Once the old failures leave the window, room is made.
        assert!(t.attempt_at(&[Key::Account("fresh".into())], now + WINDOW).is_ok());
    }
}
