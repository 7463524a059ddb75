//! The deterministic simulator.
//!
//! This crate will run several real Cairn nodes in one thread on a paused tokio runtime with a
//! seeded RNG, an in-memory Raft network and redb over a simulated disk, inject faults
//! (partitions, crashes, lost writes, clock skew) chosen from a seed, and check the log's safety
//! properties continuously. The same seed replays the same run bit for bit; binary `cairn-sim`.
//!
//! Nothing is implemented yet; see the simulator issue.
