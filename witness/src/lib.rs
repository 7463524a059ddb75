//! Cairn's witness and monitor: the parties that catch a log that lies.
//!
//! - [`request`]: the C2SP tlog-witness `add-checkpoint` request body (parse and format).
//! - [`cosigner`]: the witness logic, sans IO: [`cosigner::Witness::add_checkpoint`] takes the
//!   request bytes, a [`store::Store`] and the time, and returns the spec's status and body. The
//!   HTTP server, the poller and the simulator all drive this one function.
//! - [`store`]: what the witness persists (the latest cosigned checkpoint per origin and
//!   split-view evidence), as a trait with its contract, and an in-memory store for tests.
//! - [`storage`]: that trait on redb, the only module that touches redb.
//! - [`server`]: `POST /add-checkpoint` and the read endpoints over hyper.
//! - [`key`]: the witness's Ed25519 key, made on first start.
//! - [`config`]: which logs are witnessed, from a C2SP tlog-policy file.
//! - [`fetch`]: an HTTP client for logs (checkpoints, consistency proofs, tiles, entry
//!   bundles) and for other witnesses.
//! - [`poller`]: the pull mode: poll logs, prove consistency (from tiles if need be), cosign.
//! - [`gossip`]: compare what several witnesses cosigned, to find split views none saw alone.
//! - [`monitor`]: follow a log, verify every checkpoint, and report entries naming an identity.
//!
//! The invariants (docs/ARCHITECTURE.md, "Invariants of the log", item 7): a witness never
//! cosigns a checkpoint smaller than, or inconsistent with, one it cosigned before, and its
//! stored size per origin never decreases; the check and the store are one atomic step before
//! any reply.

#![warn(missing_docs)]

pub mod config;
pub mod cosigner;
pub mod fetch;
pub mod gossip;
pub mod key;
pub mod monitor;
pub mod poller;
pub mod request;
pub mod server;
pub mod storage;
pub mod store;

pub use cosigner::{Reply, Witness};
pub use store::{SplitView, Store, StoreError, Stored};
