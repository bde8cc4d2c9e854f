//! The audit trail around the hash chain (which is pure and lives in the domain crate,
//! [`iks_domain::audit`]): what reads, signs and writes it.
//!
//! [`checkpoint`] signs "the chain reached event #n with hash h" with the gateway's audit
//! key, so a cut-off tail or a rewritten chain shows; [`verify`] walks a chain and names
//! the first thing wrong with it; [`export`] writes and reads the self-verifying JSONL
//! export (and the CSV one for SIEMs); [`retention`] describes where a chain starts after
//! old events were deleted by policy. The whole format is documented for auditors in
//! `docs/audit.md`.

pub mod checkpoint;
pub mod export;
pub mod retention;
pub mod verify;
