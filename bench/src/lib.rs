//! Cairn's benchmarks.
//!
//! `benches/tlog.rs` holds criterion micro benchmarks of the `tlog` core (leaf hashing, tree
//! append, proof generation and verification, checkpoint signing and verification); run them with
//! `cargo bench -p bench`. The `cairn-bench` load generator (clusters of real nodes, verified
//! responses, a side-by-side etcd run) will live here too; see the benchmark issue.
