//! The gateway's user certificate authority. Each session gets a fresh key and a
//! certificate for the box's login that expires when the grant ends, so even a gateway
//! bug cannot stretch access past the window: the box's sshd enforces it too.

use chrono::{DateTime, Utc};
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{Algorithm, Certificate, PrivateKey};

#[derive(Debug, thiserror::Error)]
#[error("cannot issue a certificate: {0}")]
pub struct CaError(String);

/// What a session's certificate says.
pub struct CertRequest<'a> {
    /// The account on the box (the certificate's only principal).
    pub principal: &'a str,
    /// Names ticket, session and operator, so the box's auth log tells who it was.
    pub key_id: String,
    pub serial: u64,
    pub valid_until: DateTime<Utc>,
    pub permit_port_forwarding: bool,
}

/// A fresh session key and its certificate signed by `ca`.
pub fn issue(ca: &PrivateKey, req: &CertRequest<'_>) -> Result<(PrivateKey, Certificate), CaError> {
    let err = |e: russh::keys::ssh_key::Error| CaError(e.to_string());
    let mut rng = russh::keys::key::safe_rng();
    let key = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(err)?;
    // A minute of slack for clocks that disagree; the end is exact.
    let valid_after = u64::try_from(Utc::now().timestamp() - 60).unwrap_or(0);
    let valid_before =
        u64::try_from(req.valid_until.timestamp()).map_err(|_| CaError("grant ends before 1970".into()))?;
    if valid_before <= valid_after + 60 {
        return Err(CaError("the grant has already ended".into()));
    }
    let mut b = Builder::new_with_random_nonce(&mut rng, key.public_key(), valid_after, valid_before).map_err(err)?;
    b.serial(req.serial).map_err(err)?;
    b.key_id(&req.key_id).map_err(err)?;
    b.cert_type(CertType::User).map_err(err)?;
    b.valid_principal(req.principal).map_err(err)?;
    b.extension("permit-pty", "").map_err(err)?;
    if req.permit_port_forwarding {
        b.extension("permit-port-forwarding", "").map_err(err)?;
    }
    let cert = b.sign(ca).map_err(err)?;
    Ok((key, cert))
}

/// The line for a box's `TrustedUserCAKeys` file.
pub fn trusted_ca_line(ca: &PrivateKey) -> Result<String, CaError> {
    let mut public = ca.public_key().clone();
    public.set_comment("iks-gateway user CA");
    public.to_openssh().map_err(|e| CaError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_name_the_session_and_end_with_the_grant() {
        let ca = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap();
        let until = Utc::now() + chrono::Duration::hours(1);
        let req = CertRequest {
            principal: "support",
            key_id: "T-1042 S-7 ivanov".into(),
            serial: 7,
            valid_until: until,
            permit_port_forwarding: false,
        };
        let (key, cert) = issue(&ca, &req).unwrap();
        assert_eq!(cert.public_key(), key.public_key().key_data());
        assert_eq!(cert.valid_principals(), ["support"]);
        assert_eq!(cert.key_id(), "T-1042 S-7 ivanov");
        assert_eq!(cert.valid_before(), until.timestamp() as u64);
        assert!(cert.extensions().contains_key("permit-pty"));
        assert!(!cert.extensions().contains_key("permit-port-forwarding"));
        let fp = ca.public_key().fingerprint(russh::keys::HashAlg::Sha256);
        cert.validate([&fp]).unwrap();
        let ended = CertRequest { valid_until: Utc::now() - chrono::Duration::seconds(1), ..req };
        assert!(issue(&ca, &ended).is_err());
        assert!(trusted_ca_line(&ca).unwrap().starts_with("ssh-ed25519 "));
    }
}
