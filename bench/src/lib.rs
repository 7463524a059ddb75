//! Cairn's benchmarks.
//!
//! `benches/tlog.rs` holds criterion micro benchmarks of the `tlog` core (leaf hashing, tree
//! append, proof generation and verification, checkpoint signing and verification); run them with
//! `cargo bench -p bench`. The `cairn-bench` binary (`src/main.rs`) is the load generator: it
//! starts clusters of real nodes, drives them with verified appends and reports throughput,
//! latency and where the time goes (`cairn-bench appends --help`; results in
//! `docs/benchmarks/appends.md`), and the cost per entry as the log grows (`cairn-bench scale`,
//! `docs/benchmarks/scale.md`).
