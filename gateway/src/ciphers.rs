//! Which cipher each SSH leg runs. The gateway decrypts and re-encrypts every byte it
//! relays, so the ciphers are most of its CPU per byte: on a bulk upload through the
//! gateway (iks-bench, perf) ChaCha20-Poly1305 took about 30 % of the gateway's samples,
//! AES-GCM (AES-NI through ring) about 6 % for the same bytes.
//!
//! In SSH the *client* chooses: the first cipher on its own list that the server offers.
//! - The engineer's leg (the gateway is the server): the stock OpenSSH client lists
//!   chacha20-poly1305 first, so the gateway steers it only by what it offers —
//!   `[ssh] ciphers`, AES-GCM by default. Only AEAD ciphers may be offered: the others
//!   need a separate MAC computed over every packet.
//! - The box leg (the gateway is the client): [`CLIENT`], AES-GCM first, then whatever
//!   else an older sshd may have.
//!
//! Pure lists and validation, below both `config` (which validates `[ssh] ciphers` at
//! start) and `ssh` (which offers them): neither imports the other for it.

use russh::cipher::{self, Name};

/// What the engineer's leg offers unless `[ssh] ciphers` says otherwise.
pub const DEFAULT: &[Name] = &[cipher::AES_128_GCM, cipher::AES_256_GCM];

/// What `[ssh] ciphers` may name.
const OFFERABLE: &[Name] = &[cipher::AES_128_GCM, cipher::AES_256_GCM, cipher::CHACHA20_POLY1305];

/// The gateway's preference as a client, towards boxes.
pub const CLIENT: &[Name] = &[
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The engineer leg's ciphers from `[ssh] ciphers`, or why they cannot be used.
pub fn engineer_leg(names: &[String]) -> Result<Vec<Name>, String> {
    if names.is_empty() {
        return Err("must name at least one cipher".into());
    }
    names
        .iter()
        .map(|n| {
            OFFERABLE.iter().find(|c| c.as_ref() == n).copied().ok_or_else(|| {
                let known: Vec<&str> = OFFERABLE.iter().map(AsRef::as_ref).collect();
                format!("'{n}' is not one of {}", known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engineer_leg_offers_only_aead_ciphers_it_knows() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let default: Vec<String> = DEFAULT.iter().map(|c| c.as_ref().to_string()).collect();
        assert_eq!(engineer_leg(&default).unwrap(), DEFAULT);
        assert_eq!(
            engineer_leg(&names(&["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"])).unwrap(),
            [cipher::CHACHA20_POLY1305, cipher::AES_256_GCM]
        );
        for (bad, why) in [
            (names(&[]), "must name at least one cipher"),
            (
                names(&["aes128-ctr"]),
                "'aes128-ctr' is not one of aes128-gcm@openssh.com, aes256-gcm@openssh.com, chacha20-poly1305@openssh.com",
            ),
            (names(&["aes128-gcm@openssh.com", "none"]), "'none' is not one of"),
        ] {
            let err = engineer_leg(&bad).unwrap_err();
            assert!(err.starts_with(why), "{bad:?}: {err}");
        }
    }
}
