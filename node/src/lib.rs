//! The Cairn replica.
//!
//! This crate will hold one node of the replicated log: openraft (`storage-v2`) over redb
//! storage, the sequencer that batches submissions into Raft entries, the deterministic state
//! machine that appends batches to each named log's Merkle tree and stores tiles and signed
//! checkpoints, the HTTP API (C2SP tlog-tiles reads, Rekor v1/v2 writes, Fulcio v2 through
//! `ca`), the Raft transport, and metrics. It is built over one seam (clock, randomness, disk,
//! network) so that the simulator runs the same code; binary `cairn-node`.
//!
//! Built so far: the seeded openraft runtime ([`runtime`]), the replicated types ([`types`])
//! and the deterministic apply ([`state_machine`]).

pub mod api;
pub mod backup;
#[cfg(feature = "canaries")]
pub mod canary;
pub mod catch_up;
pub mod config;
pub mod crypto;
pub mod dev_process;
pub mod env;
pub mod http;
pub mod keyless;
pub mod lifecycle;
pub mod metrics;
pub mod network;
pub mod node;
pub mod process;
pub mod provision;
pub mod rate_limit;
pub mod runtime;
pub mod search;
pub mod sequencer;
pub mod service;
pub mod state_machine;
pub mod storage;
pub mod tls;
pub mod types;
pub mod witnessing;

pub use config::Settings;
pub use node::{Env, Node};
