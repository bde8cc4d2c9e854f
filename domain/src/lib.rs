//! The domain of iks-gateway, free of I/O: this crate depends on no runtime, database,
//! SSH or HTTP crate, so everything that talks to the world sits above it and the
//! compiler keeps it that way.
//!
//! - [`ids`] and [`time`]: typed identifiers and instants as people read them;
//! - [`rules`]: the support regulations as pure functions (categories, eligibility, INN,
//!   products and versions, the working-hours clock, grant windows), and [`sla`], the
//!   first-response deadline they give a ticket;
//! - [`model`]: the records the gateway keeps and the checks a new record must pass;
//! - [`target`]: what an engineer types as the SSH user name;
//! - [`decision`]: the access decision, whether an engineer may reach a box now, and why not; [`review`]: whether a
//!   live session may go on;
//! - [`audit`]: who did what, and the hash chain that makes the log tamper-evident;
//! - [`i18n`]: every text shown to people, in Russian and English, and [`text`]: making
//!   untrusted text safe to show.

pub mod audit;
pub mod decision;
pub mod i18n;
pub mod ids;
pub mod model;
pub mod review;
pub mod rules;
pub mod sla;
pub mod target;
pub mod text;
pub mod time;

#[cfg(test)]
mod tests {
    /// The layers hold only while this crate stays free of I/O: a runtime, a database, SSH
    /// or HTTP crate added here would let the domain reach the world.
    #[test]
    fn the_domain_depends_on_no_io_crate() {
        let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        let deps = manifest["dependencies"].as_table().unwrap();
        for io in ["tokio", "sqlx", "russh", "axum", "hyper", "tower", "reqwest", "tokio-stream", "iks-proto"] {
            assert!(!deps.contains_key(io), "iks-domain must not depend on {io}");
        }
        assert!(deps.contains_key("chrono"), "the manifest was read");
    }
}
