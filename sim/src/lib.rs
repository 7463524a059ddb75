//! The deterministic simulator.
//!
//! Runs several real Cairn nodes ([`node::node::Node`], started through `Node::start` exactly as
//! production does) in one thread on a paused current-thread tokio runtime with a seeded RNG, an
//! in-memory Raft network ([`net`]), the real redb over a simulated disk ([`disk`]), a
//! simulated application clock ([`clock`]) and an in-memory entry-bundle source ([`bundles`]).
//! Faults (partitions, loss, duplication, delay, crashes with lost unsynced writes, clock skew)
//! are chosen from the seed ([`options`], swarm testing: each fault type on or off per seed), a
//! workload of concurrent clients appends to both logs ([`workload`]), and the log's safety
//! properties are checked continuously and at the end ([`invariants`]). The same seed replays
//! the same run bit for bit ([`trace`] hashes it). docs/simulator.md describes a run, its faults
//! and its invariants, and how to replay a seed.

// rustdoc does not get `build.rustflags`; only real builds must have the cfg.
#[cfg(not(any(tokio_unstable, doc, doctest)))]
compile_error!(
    "the simulator needs `--cfg tokio_unstable` (set in .cargo/config.toml) for a seeded tokio \
     runtime; a build without it would not replay"
);

pub mod bundles;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod invariants;
pub mod issuance;
pub mod malicious;
pub mod membership;
pub mod net;
pub mod options;
pub mod rng;
pub mod run;
pub mod trace;
pub mod witnesses;
pub mod witnessing;
pub mod workload;

pub use options::Options;
pub use run::{Outcome, run_seed, run_with};
