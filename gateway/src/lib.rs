//! iks-gateway: a bastion that gives support engineers time-boxed, ticket-bound SSH
//! sessions into customers' IKS boxes, only for the customer tiers the support
//! regulations allow, and records everything into a tamper-evident audit trail.
//!
//! Where decisions are made:
//! - [`rules`]: the regulations as pure functions (categories, eligibility, INN,
//!   products and versions, the working-hours clock, grant windows);
//! - [`model`]: the records and the checks a new record must pass;
//! - [`access`] decides whether a session may open; [`recheck`] applies the same decision
//!   to live sessions, and the [`node`]'s watchdog ends them when it no longer holds;
//! - [`store`]: persistence on SQLite or PostgreSQL, every change with its audit event;
//! - [`audit`]: the hash chain that makes the log tamper-evident, its signed checkpoints,
//!   verification, exports and retention;
//! - [`config`] and [`datadir`]: configuration, keys and files on disk;
//! - [`tunnel`] and [`enrollment`]: boxes reached through their agent;
//! - [`tickets`]: the ticket lifecycle, refusals, the first-response clock, auto-close;
//! - [`web`], [`api`] and [`http`]: the web panel, the helpdesk's JSON API, and the HTTP
//!   server they run in; [`metrics`]: the node's vital signs for operators.
//! - [`i18n`]: every text shown to people, in Russian and English; [`secret`]: the tokens
//!   the gateway hands out and the hashes it keeps of them. Both depend on nothing above.
//! - [`recording`] and [`search`]: session recordings, their replay and live view, and
//!   search across their transcripts.
//! - [`node`]: a gateway's life: its listeners and periodic jobs, started and stopped together.
//! - [`fuzzing`]: the fuzz targets' bodies over those of the above that read untrusted input.

// The I/O-free domain, under the names the rest of the crate has always used.
pub use iks_domain::{access, i18n, ids, model, rules, text, time};

pub mod api;
pub mod audit;
pub mod ca;
pub mod ciphers;
pub mod config;
pub mod datadir;
pub mod enrollment;
pub mod fuzzing;
pub mod grants;
pub mod http;
pub mod live;
pub mod metrics;
pub mod node;
pub mod recheck;
pub mod recording;
pub mod search;
pub mod secret;
pub mod sever;
pub mod ssh;
pub mod state;
pub mod store;
pub mod sync;
pub mod tickets;
pub mod tunnel;
pub mod web;
