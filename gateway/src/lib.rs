//! iks-gateway: a bastion that gives support engineers time-boxed, ticket-bound SSH
//! sessions into customers' IKS boxes, only for the customer tiers the support
//! regulations allow, and records everything into a tamper-evident audit trail.
//!
//! The domain below it, free of I/O, is the `iks-domain` crate: the regulations' rules, the
//! records, the access decision, the review of live sessions, the audit chain and the texts.
//! This crate is everything that talks to the world:
//! - [`store`]: persistence on SQLite or PostgreSQL, every change with its audit event;
//! - [`audit`]: the chain's signed checkpoints, verification, exports and retention;
//! - [`config`], [`datadir`], [`ciphers`]: configuration, keys and files on disk;
//! - [`recheck`] gathers a session's facts for the access decision, at opening and while it
//!   runs; [`live`] holds the sessions in progress on this node;
//! - [`tunnel`] and [`enrollment`]: boxes reached through their agent;
//! - [`grants`] and [`tickets`]: the access-request workflow and the ticket lifecycle;
//! - [`recording`] and [`search`]: session recordings, their replay and live view, and
//!   search across their transcripts;
//! - [`ssh`]: the SSH front for engineers and agents; [`web`], [`api`] and [`http`]: the
//!   web panel, the helpdesk's JSON API, and the HTTP server they run in; [`metrics`];
//! - [`node`]: a gateway's life: its listeners and periodic jobs, started and stopped together;
//! - [`secret`]: the tokens the gateway hands out and the hashes it keeps of them; [`sync`],
//!   [`sever`], [`ca`]: small tools at the bottom;
//! - [`fuzzing`]: the fuzz targets' bodies over those of the above that read untrusted input.

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
