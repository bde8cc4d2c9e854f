//! The optional second factor: RFC 6238 time-based codes (SHA-1, 6 digits, 30 s), as every
//! authenticator app makes them. A code is accepted one step early or late (clock drift)
//! and only once: a code seen over someone's shoulder cannot be used again.

use std::collections::HashMap;
use std::sync::Mutex;

use totp_rs::{Algorithm, Secret, TOTP};

use super::url::encode;
use crate::secret::{self, RandomFailed};

const STEP: u64 = 30;

/// A new random secret, base32 as apps expect it typed in.
pub fn new_secret() -> Result<String, RandomFailed> {
    match Secret::Raw(secret::random_bytes::<20>()?.to_vec()).to_encoded() {
        Secret::Encoded(s) => Ok(s),
        Secret::Raw(_) => unreachable!("to_encoded gives an encoded secret"),
    }
}

/// The `otpauth://` URI an app can import (shown as text beside the secret).
pub fn uri(secret: &str, login: &str) -> String {
    let label = encode(&format!("IKS Gateway:{login}"));
    format!("otpauth://totp/{label}?secret={secret}&issuer=IKS%20Gateway&algorithm=SHA1&digits=6&period={STEP}")
}

/// Remembers the last step each person used, so a code works once.
#[derive(Debug, Default)]
pub struct Totp {
    used: Mutex<HashMap<i64, u64>>,
}

impl Totp {
    /// Checks `code` against `secret` now.
    pub fn accept(&self, person: i64, secret: &str, code: &str) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.accept_at(person, secret, code, now)
    }

    fn accept_at(&self, person: i64, secret: &str, code: &str, now: u64) -> bool {
        let Ok(bytes) = Secret::Encoded(secret.to_string()).to_bytes() else { return false };
        let Ok(totp) = TOTP::new(Algorithm::SHA1, 6, 1, STEP, bytes) else { return false };
        let mut used = crate::sync::lock(&self.used);
        let last = used.get(&person).copied().unwrap_or(0);
        let step = [now.saturating_sub(STEP), now, now + STEP]
            .into_iter()
            .map(|t| t / STEP)
            .find(|&s| s > last && totp.generate(s * STEP) == code);
        match step {
            Some(s) => {
                used.insert(person, s);
                true
            }
            None => false,
        }
    }
}

/// The code for `secret` at `time`, for tests that play the authenticator app.
#[cfg(test)]
pub fn code_at(secret: &str, time: u64) -> String {
    let bytes = Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    TOTP::new(Algorithm::SHA1, 6, 1, STEP, bytes).unwrap().generate(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_6238_and_work_once() {
        // RFC 6238 appendix B's SHA-1 secret ("12345678901234567890"), 8 digits there; 6 here.
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(code_at(secret, 1111111109), "081804");
        let t = Totp::default();
        assert!(t.accept_at(1, secret, "081804", 1111111109));
        assert!(!t.accept_at(1, secret, "081804", 1111111109), "a code is used once");
        assert!(t.accept_at(2, secret, "081804", 1111111109), "per person");
        // One step of drift either way, not two.
        let next = code_at(secret, 1111111109 + 30);
        assert!(t.accept_at(1, secret, &next, 1111111109));
        let far = code_at(secret, 1111111109 + 90);
        assert!(!t.accept_at(1, secret, &far, 1111111109));
        assert!(!t.accept_at(3, "not base32!", "000000", 59));
    }

    #[test]
    fn new_secrets_are_long_enough_for_apps() {
        let s = new_secret().unwrap();
        assert_eq!(Secret::Encoded(s.clone()).to_bytes().unwrap().len(), 20);
        assert!(uri(&s, "ivanov").starts_with("otpauth://totp/IKS%20Gateway%3Aivanov?secret="));
    }
}
