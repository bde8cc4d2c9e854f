//! The one home of the secrets the gateway hands out: panel sessions and one-time links,
//! CSRF tokens, API tokens, agent enrolment tokens, tunnel dial IDs and second-factor keys.
//!
//! Each is random bytes from the operating system, written as hex behind a prefix that
//! names its kind (`iks_`, `iks-enroll-`, or none), so a leaked one is recognisable. The
//! store keeps only the SHA-256 of a token ([`hash`]): a fast hash is enough, because a
//! token has 128 or 256 bits of entropy (unlike a password, nobody can guess it back from
//! its hash), and a token is found by looking its hash up, which leaks nothing an attacker
//! could steer without a SHA-256 preimage. Where a secret must be compared instead (a form's
//! CSRF token), [`same`] takes the same time wherever the two differ.
//!
//! Depends on `ring` and `std` only: it sits below everything that hands secrets out.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// The operating system's random source failed; no secret can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct RandomFailed;

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomFailed> {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf).map_err(|_| RandomFailed)?;
    Ok(buf)
}

/// A new token: `prefix`, then `N` random bytes as lowercase hex.
pub fn token<const N: usize>(prefix: &str) -> Result<String, RandomFailed> {
    Ok(format!("{prefix}{}", hex::encode(random_bytes::<N>()?)))
}

/// How a token is stored and looked up: the lowercase hex SHA-256 of its exact text.
pub fn hash(token: &str) -> String {
    hex::encode(digest(&SHA256, token.as_bytes()))
}

/// Whether two secrets are equal, in a time that does not depend on where they differ:
/// their digests are compared, not their bytes.
pub fn same(a: &str, b: &str) -> bool {
    hash(a) == hash(b) && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_their_prefix_and_length() {
        let t = token::<32>("iks_").unwrap();
        assert!(t.starts_with("iks_") && t.len() == 4 + 64, "{t}");
        assert!(t[4..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(token::<16>("").unwrap(), token::<16>("").unwrap());
    }

    /// Stored hashes predate this module: existing databases must keep matching.
    #[test]
    fn hashes_are_the_stored_format() {
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(same("csrf-token", "csrf-token"));
        assert!(!same("csrf-token", "csrf-tokeN"));
        assert!(!same("a", "ab"));
    }
}
