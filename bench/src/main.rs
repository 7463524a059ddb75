//! `cairn-bench`: Cairn's load generator. It starts clusters of real nodes (or uses a running
//! one), drives them with concurrent clients, verifies every answer as a client must and reports
//! throughput, latency and where the time goes (`docs/benchmarks/`). The criterion micro
//! benchmarks of `tlog` and of one witness are `benches/` (`cargo bench -p bench`).
//!
//! Module map: `run` holds what every load subcommand shares (the run arguments, and the one
//! phase loop that drives a `Workload`: prepare, issue, verify); `appends`, `reads`,
//! `certificates`, `etcd` (with `peer`, etcd next to Cairn) and `witnessing` are its workloads
//! and reports; `net` is the HTTP client, `verify` the checks of answers through the `client`
//! library, `workload` the pre-signed requests, `stats` the percentiles and the one Markdown
//! table; `scale` and `fill` grow the log and measure it at each size; `report` runs the whole
//! suite and writes it up.

mod appends;
mod certificates;
mod cluster;
mod etcd;
mod fill;
mod net;
mod profile;
mod reads;
mod report;
mod run;
mod scale;
mod stats;
mod verify;
mod witnessing;
mod workload;

use clap::{Parser, Subcommand};

/// Cairn's load generator: measures a real cluster the way its clients see it.
///
/// Every counted append is verified like a client would: the checkpoint's signature against the
/// log key, the inclusion proof from the submitted entry's leaf hash to the checkpoint root.
/// A response that does not verify is an error, never a success.
#[derive(Parser, Debug)]
#[command(name = "cairn-bench", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Append throughput and latency: verified appends/s, p50/p90/p99/max.
    ///
    /// Reports, per run: verified appends per second over the measured window; latency from
    /// sending a request to holding its verified answer; errors and retries by kind; each
    /// node's CPU and memory next to the benchmark's own and the rest of the machine's; and the
    /// leader's batch size and commit time from its /metrics. Progress goes to stderr once a
    /// second, results to stdout (and --json, --markdown).
    ///
    /// By default it starts its own local cluster for each --nodes value (real `cairn-node dev`
    /// processes, fsync on, data in a temporary directory), runs once per --clients value, then
    /// stops the cluster. Build the node first, in release:
    ///
    ///   cargo build --release -p node --bin cairn-node
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- appends --nodes 1,3 --clients 16,64,256
    ///
    /// Clients run on the same machine as the nodes and compete for the same cores; the report
    /// shows the benchmark's own CPU use next to the nodes' so that cost is visible.
    Appends(Box<appends::AppendsArgs>),
    /// Keyless CA throughput and latency: verified certificates issued and logged per second.
    ///
    /// Starts a `cairn-node dev` cluster (rate limit off), gives each client a token from the
    /// dev issuer and a CSR, and posts /api/v2/signingCert in a closed loop; every certificate
    /// is checked as a client checks it (chain to the trusted root, SCT) before it counts. Each
    /// certificate is two commits.
    Certificates(certificates::CertificatesArgs),
    /// Cairn next to etcd: verified appends/s and etcd puts/s, same clients, same payload size.
    ///
    /// Starts a 3-node Cairn cluster and runs `appends` for each --clients value, stops it, then
    /// starts a 3-member etcd cluster of its own (Debian's `etcd-server`: `apt-get install -y
    /// etcd-server`; loopback ports, data next to Cairn's, fsync on as etcd defaults) and puts
    /// values as long as Cairn's log entries through etcd's gRPC API with the same client
    /// counts. Prints both and the ratio Cairn appends/s ÷ etcd puts/s per client count.
    ///
    ///   cargo build --release -p node --bin cairn-node
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- peer --clients 16,64,256 --json peer.json
    Peer(etcd::PeerArgs),
    /// Verified reads/s of the public log API on a pre-filled log: checkpoints, tiles, entry
    /// bundles, inclusion and consistency proofs.
    ///
    /// Starts a cluster, appends --prefill verified entries, builds a reference of the tree
    /// from its entry bundles (checked against the signed checkpoint's root), then runs each
    /// --clients value. Every counted read is checked against that reference and the log key:
    /// signature, proofs to the signed root, tiles and bundles byte for byte.
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- reads --clients 16,64,256 --json reads.json
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- reads --read-mix inclusion=1 --clients 64
    Reads(reads::ReadsArgs),
    /// Reads mixed with appends (default 90% / 10%): both verified, reported apart.
    ///
    /// The same as `reads` with --appends-percent 10 unless given.
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- mix --clients 64,256 --appends-percent 10
    Mix(reads::ReadsArgs),
    /// Witness cosigning: verified appends/s on a cluster that publishes a checkpoint only with
    /// a quorum of witness cosignatures, and how long a witnessing round takes.
    ///
    /// Starts a `cairn-node dev` cluster whose nodes' witness policy (`--witness-policy`) needs
    /// --quorum of --witnesses witness processes (`cairn witness serve`); every counted append's
    /// checkpoint must carry the log signature and the quorum's cosignatures. Build both
    /// binaries first:
    ///
    ///   cargo build --release -p node --bin cairn-node -p client --bin cairn
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- witnessing --clients 16,64,256
    Witnessing(witnessing::WitnessingArgs),
    /// The whole suite in one command, written up: JSON and a Markdown page of tables.
    ///
    /// Runs each part as a child process of this binary with the report's settings (appends
    /// on 1 and 3 nodes at several client counts, the keyless CA), each with the leader's CPU
    /// profile, then writes OUT/report.json, OUT/README.md (each part's table, the leader's
    /// hottest code among its columns) and each part's raw JSON in OUT/raw/.
    /// `scripts/bench-report` installs what it needs, builds and runs it:
    ///
    ///   scripts/bench-report
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- report --out docs/benchmarks
    Report(report::ReportArgs),
    /// Cost per entry as the log grows: disk bytes, appends, proofs and catch-up at each size.
    ///
    /// Starts a `cairn-node dev` cluster, grows its artifact log to each --sizes value in turn
    /// (fast, through the nodes' own Raft and apply with `cairn-bench fill`; see
    /// docs/benchmarks/scale.md), and at each size measures through the public API: bytes on
    /// disk per entry, a short closed-loop append run, verified inclusion and consistency proof
    /// latency, and the time a new empty node takes to catch up and become a voter.
    Scale(Box<scale::ScaleArgs>),
    /// Grow a stopped `cairn-node dev` cluster's artifact log through its own Raft and apply
    /// (used by `scale`).
    #[command(hide = true)]
    Fill(fill::FillArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Commands::Appends(args) => args.run.runtime()?.block_on(appends::appends(*args)),
        Commands::Report(args) => report::report(&args),
        Commands::Certificates(args) => args
            .run
            .runtime()?
            .block_on(certificates::certificates(args)),
        Commands::Peer(args) => args.run.runtime()?.block_on(etcd::peer(args)),
        Commands::Reads(args) => args.run.runtime()?.block_on(reads::reads(args)),
        Commands::Mix(mut args) => {
            args.appends_percent.get_or_insert(10.0);
            args.run.runtime()?.block_on(reads::reads(args))
        }
        Commands::Witnessing(args) => args.run.runtime()?.block_on(witnessing::witnessing(args)),
        Commands::Scale(args) => args.run.runtime()?.block_on(scale::scale(*args)),
        Commands::Fill(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(fill::fill_command(args)),
    }
}
