//! `cairn-bench`: Cairn's load generator.
//!
//! `cairn-bench appends` starts a cluster of real `cairn-node` processes (or uses a running
//! one), drives it with concurrent clients that submit pre-signed Rekor v2 hashedrekord
//! entries, verifies every answer as a client must (signed checkpoint, inclusion proof, the
//! body it asked for), and reports verified appends per second, latency percentiles, errors,
//! node CPU and memory, and the node's own batching metrics.

mod certificates;
mod cluster;
mod etcd;
mod fill;
mod load;
mod peer;
mod profile;
mod progress;
mod reads;
mod report;
mod scale;
mod stats;
mod verify;
mod witnessing;
mod workload;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::cluster::{Cluster, ProcessUsage, PromHistogram};
use crate::load::{LoadConfig, Shared};
use crate::stats::{LatencySummary, Tally};

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
    Appends(Box<AppendsArgs>),
    /// Keyless CA throughput and latency: verified certificates issued and logged per second.
    ///
    /// Starts a `cairn-node dev` cluster (rate limit off), gives each client a token from the
    /// dev issuer and a CSR, and posts /api/v2/signingCert in a closed loop; every certificate
    /// is checked (leaf signature, SCT) before it counts. Each certificate is two commits.
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
    Peer(peer::PeerArgs),
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
    /// Starts --witnesses witness processes and a cluster (`cairn-node init` + `run`) whose
    /// nodes' `[witnessing]` policy needs --quorum of them; every counted append's checkpoint
    /// must carry the log signature and the quorum's cosignatures.
    ///
    ///   cargo run --release -p bench --bin cairn-bench -- witnessing --clients 16,64,256
    Witnessing(witnessing::WitnessingArgs),
    /// One witness process, for `witnessing` (internal).
    #[command(hide = true)]
    WitnessServer(witnessing::WitnessServerArgs),
    /// The whole suite in one command, written up: JSON, a Markdown page and SVG plots.
    ///
    /// Runs each part as a child process of this binary with the report's settings (appends
    /// on 1 and 3 nodes at several client counts, the keyless CA), each with the leader's CPU
    /// profile, then writes OUT/report.json, OUT/README.md (where Cairn stands against
    /// its design targets, and the bottleneck of each target not met), OUT/*.svg and each
    /// part's raw JSON in OUT/raw/. `scripts/bench-report` installs what it needs, builds and
    /// runs it:
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

#[derive(clap::Args, Debug)]
struct AppendsArgs {
    /// Cluster sizes to start, in turn (comma-separated). Ignored with --urls or --cluster-json.
    #[arg(long, value_delimiter = ',', default_value = "3")]
    nodes: Vec<u16>,
    /// Concurrent clients, one run per value (comma-separated). Each client is one keep-alive
    /// HTTP/1.1 connection with one request in flight; client i talks to node i mod n, and
    /// followers forward to the leader as they would for real users.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    clients: Vec<usize>,
    /// Seconds of measurement per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (connections, leader caches and batch sizes settle).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Open loop: offer this many appends per second in total, whatever the answers, and
    /// measure latency from each request's due time. Without it the load is closed loop: each
    /// client sends its next request when the previous one is verified.
    #[arg(long)]
    rate: Option<f64>,
    /// The entry type submitted.
    #[arg(long, value_enum, default_value_t = EntryKind::Hashedrekord)]
    entry_kind: EntryKind,
    /// Use a running cluster at these node URLs instead of starting one (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "cluster_json")]
    urls: Vec<String>,
    /// Use a running `cairn-node dev` cluster described by this cluster.json (URLs, process ids
    /// for CPU and memory, and the log key).
    #[arg(long)]
    cluster_json: Option<PathBuf>,
    /// The artifact log's C2SP verifier key (`origin+keyid+base64`), for --urls. Without it the
    /// key is read from the first node's /logs, which trusts that node (fine for load tests).
    #[arg(long)]
    verifier_key: Option<String>,
    /// The cairn-node binary. Default: next to this binary (same cargo target dir), then PATH.
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Where started clusters keep their data. Default: the system temp directory. It should be
    /// on the disk you mean to measure: every Raft commit is fsynced there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep started clusters' data directories (node logs, databases) after the run.
    #[arg(long)]
    keep_data: bool,
    /// Requests to pre-sign per run. Default: enough for 25,000 appends/s closed loop, or the
    /// offered rate plus 5% open loop. A closed-loop run that uses them all ends early and says so.
    #[arg(long)]
    presign: Option<usize>,
    /// Worker threads of the benchmark's own runtime (clients and verification).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Seconds to wait for one answer before giving up on that attempt (then retrying).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Attempts per entry: 429 and 503 answers and transport errors are retried (the log
    /// deduplicates resubmissions); other failures are not.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Write every run's results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a Markdown table of the runs to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Sample the leader's CPU with `perf record` over each run's measured window and put the
    /// hottest crates and symbols in the results (needs Debian's linux-perf and a known pid:
    /// a started cluster or --cluster-json).
    #[arg(long)]
    profile: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum EntryKind {
    /// Rekor v2 hashedRekordRequestV002: a SHA-256 digest signed with ECDSA P-256 (public key).
    Hashedrekord,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Commands::Appends(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.client_threads.max(1))
                .enable_all()
                .build()?;
            runtime.block_on(appends(*args))
        }
        Commands::Report(args) => report::report(&args),
        Commands::Certificates(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(certificates::certificates(args))
        }
        Commands::Peer(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.client_threads.max(1))
                .enable_all()
                .build()?;
            runtime.block_on(peer::peer(args))
        }
        Commands::Reads(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.client_threads.max(1))
                .enable_all()
                .build()?;
            runtime.block_on(reads::reads(args))
        }
        Commands::Witnessing(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.client_threads.max(1))
                .enable_all()
                .build()?;
            runtime.block_on(witnessing::witnessing(args))
        }
        Commands::WitnessServer(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            runtime.block_on(witnessing::witness_server(args))
        }
        Commands::Mix(mut args) => {
            args.appends_percent.get_or_insert(10.0);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.client_threads.max(1))
                .enable_all()
                .build()?;
            runtime.block_on(reads::reads(args))
        }
        Commands::Scale(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(scale::scale_command(*args))
        }
        Commands::Fill(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(fill::fill_command(args))
        }
    }
}

/// The machine and code a report belongs to.
#[derive(Debug, Serialize)]
struct Environment {
    cpu_model: String,
    cores: usize,
    memory_gib: f64,
    commit: String,
    date: String,
}

/// The Raft batches the leader proposed during the window (from its own histograms).
#[derive(Debug, Serialize)]
struct BatchStats {
    /// Which node (1-based, in URL order) led at the end of the window.
    leader: usize,
    batches: f64,
    batches_per_second: f64,
    mean_leaves: f64,
    /// Bucket upper bounds: "at most this many leaves" for half / 99% of the batches.
    p50_leaves_at_most: f64,
    p99_leaves_at_most: f64,
    commit_mean_ms: f64,
    commit_p50_ms_at_most: f64,
    commit_p99_ms_at_most: f64,
}

/// One run's results.
#[derive(Debug, Serialize)]
struct RunResult {
    nodes: usize,
    clients: usize,
    mode: &'static str,
    offered_rate: Option<f64>,
    warmup_s: f64,
    measured_s: f64,
    entry_kind: EntryKind,
    request_bytes: usize,
    leaf_bytes: usize,
    fsync: &'static str,
    sequencer: Option<serde_json::Value>,
    appends_per_second: f64,
    verified_appends: u64,
    duplicate_answers: u64,
    latency: LatencySummary,
    errors: Tally,
    retries: Tally,
    presigned: usize,
    presigned_exhausted: bool,
    presign_per_second: f64,
    checkpoint_signatures_verified: u64,
    node_usage: Vec<ProcessUsage>,
    bench_usage: Option<ProcessUsage>,
    /// The whole machine's busy CPU over the window, percent of one core.
    machine_cpu_percent: Option<f64>,
    /// The part of it neither the nodes nor this benchmark used (other builds and tests).
    other_cpu_percent: Option<f64>,
    batches: Option<BatchStats>,
    /// Where the leader's CPU went during the window (with --profile).
    profile: Option<profile::Profile>,
    /// Verified appends completed in each second since load start (warm-up included).
    timeline: Vec<u64>,
    load_average_before: String,
    load_average_after: String,
}

#[derive(Debug, Serialize)]
struct Report {
    environment: Environment,
    runs: Vec<RunResult>,
}

/// Closed-loop runs pre-sign enough for this many appends per second (25% above the 20,000/s
/// target) by default: signing takes a few seconds per run on this machine, so more would
/// make a short run mostly waiting; a run that uses them all says so and is cut short.
const CLOSED_LOOP_PRESIGN_RATE: f64 = 25_000.0;

/// Every node process is fsynced on commit; there is no switch to turn it off.
const FSYNC: &str =
    "on: every Raft log append is made durable (redb Immediate commit) before it counts";

async fn appends(args: AppendsArgs) -> anyhow::Result<()> {
    if args.duration <= 0.0 || args.warmup < 0.0 || args.timeout <= 0.0 {
        bail!("--duration and --timeout must be positive, --warmup not negative");
    }
    if args.clients.contains(&0) || args.attempts == 0 {
        bail!("--clients and --attempts must be at least 1");
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("--rate must be a positive number of appends per second");
    }
    let environment = environment();
    eprintln!(
        "machine: {} ({} cores, {:.1} GiB), commit {}",
        environment.cpu_model, environment.cores, environment.memory_gib, environment.commit
    );
    let mut runs = Vec::new();
    if !args.urls.is_empty() || args.cluster_json.is_some() {
        let cluster = if let Some(path) = &args.cluster_json {
            Cluster::from_json(path)?
        } else {
            let key = match &args.verifier_key {
                Some(key) => key.clone(),
                None => fetch_verifier_key(&args.urls[0]).await?,
            };
            Cluster::existing(args.urls.clone(), key)
        };
        run_all(&args, &cluster, &mut runs).await?;
    } else {
        let node_bin = match &args.node_bin {
            Some(path) => path.clone(),
            None => cluster::find_node_binary()?,
        };
        let parent = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        for &nodes in &args.nodes {
            eprintln!("starting {nodes}-node cluster ({})", node_bin.display());
            let mut cluster =
                tokio::task::block_in_place(|| Cluster::start(&node_bin, nodes, &parent))?;
            if args.keep_data {
                cluster.keep_data();
                if let Some(dir) = cluster.data_dir() {
                    eprintln!("cluster data kept in {}", dir.display());
                }
            }
            let result = run_all(&args, &cluster, &mut runs).await;
            eprintln!("stopping the {nodes}-node cluster");
            tokio::task::block_in_place(|| drop(cluster));
            result?;
        }
    }
    print_table(&mut std::io::stdout(), &runs)?;
    let report = Report { environment, runs };
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &args.markdown {
        write_table(path, |out| print_table(out, &report.runs))?;
    }
    Ok(())
}

async fn fetch_verifier_key(url: &str) -> anyhow::Result<String> {
    let body = load::get(&format!("{}/logs", url.trim_end_matches('/'))).await?;
    let logs: serde_json::Value = serde_json::from_slice(&body)?;
    let key = logs["logs"]
        .as_array()
        .and_then(|logs| logs.iter().find(|log| log["name"] == "artifacts"))
        .and_then(|log| log["verifier_key"].as_str())
        .context("the node lists no artifacts log")?;
    eprintln!("warning: trusting the log key served by {url} (pass --verifier-key to pin it)");
    Ok(key.to_string())
}

async fn run_all(
    args: &AppendsArgs,
    cluster: &Cluster,
    runs: &mut Vec<RunResult>,
) -> anyhow::Result<()> {
    for &clients in &args.clients {
        let result = run_once(args, cluster, clients).await?;
        print_run(&result);
        runs.push(result);
    }
    Ok(())
}

/// Load average, to tell a quiet machine from one that is also building.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Scrapes `/metrics` of every node; nodes that do not answer are skipped.
async fn scrape(urls: &[String]) -> Vec<Option<String>> {
    let mut texts = Vec::new();
    for url in urls {
        let text = load::get(&format!("{}/metrics", url.trim_end_matches('/')))
            .await
            .ok()
            .map(|body| String::from_utf8_lossy(&body).into_owned());
        texts.push(text);
    }
    texts
}

/// Whether a scrape says its node is the Raft leader (`cairn_raft_is_leader 1`).
fn is_leader(text: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix("cairn_raft_is_leader ")
            .and_then(|value| value.trim().parse::<f64>().ok())
            .is_some_and(|value| value >= 1.0)
    })
}

/// The leader's batches during the window. Only the leader's histograms describe real
/// batches: a follower's sequencer also pools submissions and proposes them, but the proposal
/// fails with "forward to leader" and each entry is then forwarded on its own, so its
/// `cairn_batch_leaves` counts attempts, not Raft entries.
fn batch_stats(
    before: &[Option<String>],
    after: &[Option<String>],
    window: Duration,
) -> Option<BatchStats> {
    let leader = after
        .iter()
        .position(|text| text.as_deref().is_some_and(is_leader))?;
    let (before, after) = (
        before.get(leader)?.as_deref()?,
        after.get(leader)?.as_deref()?,
    );
    let delta = |name: &str| -> Option<PromHistogram> {
        let now = PromHistogram::parse(after, name)?;
        Some(now.since(&PromHistogram::parse(before, name).unwrap_or_default()))
    };
    let leaves = delta("cairn_batch_leaves")?;
    let commit = delta("cairn_commit_seconds")?;
    Some(BatchStats {
        leader: leader + 1,
        batches: leaves.count,
        batches_per_second: leaves.count / window.as_secs_f64().max(1e-9),
        mean_leaves: leaves.mean(),
        p50_leaves_at_most: leaves.quantile_bound(0.5),
        p99_leaves_at_most: leaves.quantile_bound(0.99),
        commit_mean_ms: commit.mean() * 1000.0,
        commit_p50_ms_at_most: commit.quantile_bound(0.5) * 1000.0,
        commit_p99_ms_at_most: commit.quantile_bound(0.99) * 1000.0,
    })
}

type Samples = (
    Vec<Option<cluster::ProcSample>>,
    Option<cluster::ProcSample>,
    Option<cluster::MachineSample>,
);

fn sample_all(pids: &[u32]) -> Samples {
    (
        pids.iter()
            .map(|pid| cluster::sample_process(&pid.to_string()))
            .collect(),
        cluster::sample_process("self"),
        cluster::sample_machine(),
    )
}

async fn run_once(
    args: &AppendsArgs,
    cluster: &Cluster,
    clients: usize,
) -> anyhow::Result<RunResult> {
    let nodes = cluster.urls.len();
    let total_seconds = args.warmup + args.duration;
    // A request count, far below usize::MAX for any sensible rate and duration; `as` saturates
    // for absurd inputs instead of wrapping.
    #[allow(clippy::cast_possible_truncation)]
    let presign = args.presign.unwrap_or_else(|| match args.rate {
        Some(rate) => (rate * total_seconds * 1.05).ceil() as usize + clients,
        None => (CLOSED_LOOP_PRESIGN_RATE * total_seconds).ceil() as usize,
    });
    eprintln!(
        "{nodes} node(s), {clients} clients: pre-signing {presign} hashedrekord requests ..."
    );
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let workload = tokio::task::block_in_place(|| workload::generate(presign, threads))?;
    eprintln!(
        "  signed {} requests at {:.0}/s; request {} bytes, log entry {} bytes",
        workload.requests.len(),
        workload.signing_rate,
        workload.request_bytes,
        workload.leaf_bytes
    );
    let verifier = Arc::new(verify::ResponseVerifier::for_cluster(cluster)?);
    let config = LoadConfig {
        urls: cluster.urls.clone(),
        clients,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        rate: args.rate,
        timeout: Duration::from_secs_f64(args.timeout),
        attempts_max: args.attempts,
    };
    let load_before = load_average();
    let presigned = workload.requests.len();
    // A short lead so every client task is spawned before the clock starts.
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let shared = Arc::new(Shared::new(config, workload.requests, verifier, start));
    let (tasks, client_stats) = load::spawn_clients(&shared);

    let progress = tokio::spawn(progress(Arc::clone(&shared)));
    tokio::time::sleep_until(shared.window_start).await;
    let metrics_before = scrape(&cluster.urls).await;
    let recording = if args.profile {
        Some(start_profile(cluster, &metrics_before, args.duration)?)
    } else {
        None
    };
    let (nodes_before, self_before, machine_before) = sample_all(&cluster.pids);
    let window_started = tokio::time::Instant::now();
    // A closed-loop run that runs out of requests stops early; measure up to that point.
    while tokio::time::Instant::now() < shared.end
        && !(shared.exhausted.load(Ordering::Relaxed)
            && shared.live.in_flight.load(Ordering::Relaxed) == 0)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (nodes_after, self_after, machine_after) = sample_all(&cluster.pids);
    let window = window_started.elapsed();
    let metrics_after = scrape(&cluster.urls).await;
    // Answers after the window's end are not counted, so there is nothing to wait for.
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        match task.await {
            Ok(Err(error)) => return Err(error),
            Ok(Ok(())) => {}
            Err(error) if error.is_cancelled() => {}
            Err(error) => bail!("a client task failed: {error}"),
        }
    }
    let timeline = progress.await.unwrap_or_default();
    let profile = match recording {
        Some(recording) => Some(tokio::task::block_in_place(|| recording.finish())?),
        None => None,
    };
    let total = load::merged(&client_stats);
    let exhausted = shared.exhausted.load(Ordering::Relaxed);
    if exhausted {
        eprintln!(
            "warning: all {presigned} pre-signed requests were used before the window ended; \
             the window was cut to {:.1} s (raise --presign)",
            window.as_secs_f64()
        );
    }
    let node_usage: Vec<ProcessUsage> = nodes_before
        .iter()
        .zip(&nodes_after)
        .zip(&cluster.pids)
        .enumerate()
        .filter_map(|(i, ((before, after), _))| {
            Some(cluster::usage(
                format!("node {}", i + 1),
                (*before)?,
                (*after)?,
                window,
            ))
        })
        .collect();
    let bench_usage = match (self_before, self_after) {
        (Some(before), Some(after)) => {
            Some(cluster::usage("cairn-bench".into(), before, after, window))
        }
        _ => None,
    };
    let machine_cpu_percent = match (machine_before, machine_after) {
        (Some(before), Some(after)) => Some(cluster::machine_busy_percent(before, after, window)),
        _ => None,
    };
    // What neither the nodes nor the benchmark used: other work on the machine. Only meaningful
    // when every node's pid is known.
    let other_cpu_percent = machine_cpu_percent
        .filter(|_| !cluster.pids.is_empty())
        .map(|machine| {
            let bench = bench_usage.as_ref().map_or(0.0, |u| u.cpu_percent);
            (machine - node_usage_sum(&node_usage) - bench).max(0.0)
        });
    Ok(RunResult {
        nodes,
        clients,
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        offered_rate: args.rate,
        warmup_s: args.warmup,
        measured_s: window.as_secs_f64(),
        entry_kind: args.entry_kind,
        request_bytes: workload.request_bytes,
        leaf_bytes: workload.leaf_bytes,
        fsync: FSYNC,
        sequencer: cluster
            .sequencer
            .as_ref()
            .and_then(|table| serde_json::to_value(table).ok()),
        appends_per_second: stats::per_second(total.ok, window),
        verified_appends: total.ok,
        duplicate_answers: total.duplicates,
        latency: total.latencies.summary(),
        errors: total.errors,
        retries: total.retries,
        presigned,
        presigned_exhausted: exhausted,
        presign_per_second: workload.signing_rate,
        checkpoint_signatures_verified: shared.verifier.checkpoint_signatures_verified(),
        node_usage,
        bench_usage,
        machine_cpu_percent,
        other_cpu_percent,
        batches: batch_stats(&metrics_before, &metrics_after, window),
        profile,
        timeline,
        load_average_before: load_before,
        load_average_after: load_average(),
    })
}

/// Starts sampling the leader (by its metrics) for the measured window.
fn start_profile(
    cluster: &Cluster,
    metrics: &[Option<String>],
    seconds: f64,
) -> anyhow::Result<profile::Recording> {
    let leader = metrics
        .iter()
        .position(|text| text.as_deref().is_some_and(is_leader))
        .context("--profile: no node reports itself leader")?;
    let pid = *cluster
        .pids
        .get(leader)
        .context("--profile needs the nodes' process ids (a started cluster or --cluster-json)")?;
    let data = std::env::temp_dir().join(format!("cairn-bench-{}-{pid}.perf", std::process::id()));
    profile::start(pid, format!("node {} (leader)", leader + 1), seconds, &data)
}

/// Prints a live line on stderr once per second until the run ends; returns the per-second
/// counts of verified appends.
async fn progress(shared: Arc<Shared>) -> Vec<u64> {
    let terminal = std::io::stderr().is_terminal();
    let mut timeline = Vec::new();
    let mut last = 0;
    let mut tick = shared.start + Duration::from_secs(1);
    while tick <= shared.end + Duration::from_millis(500) {
        tokio::time::sleep_until(tick).await;
        let ok = shared.live.ok.load(Ordering::Relaxed);
        timeline.push(ok - last);
        let phase = if tick <= shared.window_start {
            "warm-up"
        } else {
            "measure"
        };
        let line = format!(
            "[{:>4.0}s {phase}] {:>7}/s verified  total {ok}  errors {}  retries {}  in flight {}",
            (tick - shared.start).as_secs_f64(),
            ok - last,
            shared.live.errors.load(Ordering::Relaxed),
            shared.live.retries.load(Ordering::Relaxed),
            shared.live.in_flight.load(Ordering::Relaxed),
        );
        last = ok;
        if terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        tick += Duration::from_secs(1);
        if tick > shared.end && tokio::time::Instant::now() >= shared.end {
            break;
        }
    }
    if terminal {
        eprintln!();
    }
    timeline
}

fn node_usage_sum(usage: &[ProcessUsage]) -> f64 {
    usage.iter().map(|u| u.cpu_percent).sum()
}

fn print_run(run: &RunResult) {
    let latency = &run.latency;
    println!(
        "\n{} node(s), {} clients ({} loop), {:.1} s measured after {:.1} s warm-up",
        run.nodes, run.clients, run.mode, run.measured_s, run.warmup_s
    );
    let sequencer = run
        .sequencer
        .as_ref()
        .and_then(|s| s.as_object())
        .map_or_else(
            || "unknown".to_string(),
            |settings| {
                settings
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        );
    println!(
        "  settings: {} entries of {} bytes (requests {} bytes), fsync on; sequencer: {sequencer}",
        match run.entry_kind {
            EntryKind::Hashedrekord => "hashedrekord",
        },
        run.leaf_bytes,
        run.request_bytes,
    );
    println!(
        "  verified appends: {} = {:.0}/s{}",
        run.verified_appends,
        run.appends_per_second,
        if run.duplicate_answers > 0 {
            format!(" ({} answered as duplicates)", run.duplicate_answers)
        } else {
            String::new()
        }
    );
    println!(
        "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}",
        latency.p50_ms,
        latency.p90_ms,
        latency.p99_ms,
        latency.p999_ms,
        latency.max_ms,
        latency.mean_ms
    );
    let tally = |tally: &Tally| {
        if tally.total() == 0 {
            "none".to_string()
        } else {
            tally
                .iter()
                .map(|(kind, count)| format!("{kind}: {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!(
        "  errors: {}; retries: {}",
        tally(&run.errors),
        tally(&run.retries)
    );
    if let Some(batches) = &run.batches {
        println!(
            "  leader (node {}) batches: {:.0}/s, mean {:.1} leaves (p50 <= {}, p99 <= {}); commit mean {:.2} ms (p50 <= {} ms, p99 <= {} ms)",
            batches.leader,
            batches.batches_per_second,
            batches.mean_leaves,
            batches.p50_leaves_at_most,
            batches.p99_leaves_at_most,
            batches.commit_mean_ms,
            batches.commit_p50_ms_at_most,
            batches.commit_p99_ms_at_most
        );
    }
    let usage = run
        .node_usage
        .iter()
        .chain(run.bench_usage.as_ref())
        .map(|u| format!("{} {:.0}% CPU {:.0} MiB", u.name, u.cpu_percent, u.rss_mib))
        .collect::<Vec<_>>()
        .join(", ");
    if !usage.is_empty() {
        println!("  processes: {usage}");
    }
    if let Some(machine) = run.machine_cpu_percent {
        println!(
            "  machine CPU {machine:.0}% of {}%{}",
            100 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            run.other_cpu_percent.map_or(String::new(), |other| format!(
                ", of which other processes {other:.0}%"
            ))
        );
    }
    println!(
        "  checkpoints verified: {}; load average before {} after {}",
        run.checkpoint_signatures_verified, run.load_average_before, run.load_average_after
    );
}

/// A Markdown table with one row per run.
fn print_table(out: &mut dyn std::io::Write, runs: &[RunResult]) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "| nodes | clients | appends/s | p50 ms | p90 ms | p99 ms | max ms | errors | retries | batch mean | commit mean ms | node CPU % | bench CPU % | other CPU % |"
    )?;
    writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for run in runs {
        let node_cpu = run
            .node_usage
            .iter()
            .map(|u| format!("{:.0}", u.cpu_percent))
            .collect::<Vec<_>>()
            .join(" + ");
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            run.nodes,
            run.clients,
            run.appends_per_second,
            run.latency.p50_ms,
            run.latency.p90_ms,
            run.latency.p99_ms,
            run.latency.max_ms,
            run.errors.total(),
            run.retries.total(),
            run.batches
                .as_ref()
                .map_or("-".into(), |b| format!("{:.1}", b.mean_leaves)),
            run.batches
                .as_ref()
                .map_or("-".into(), |b| format!("{:.2}", b.commit_mean_ms)),
            if node_cpu.is_empty() {
                "-".into()
            } else {
                node_cpu
            },
            run.bench_usage
                .as_ref()
                .map_or("-".into(), |u| format!("{:.0}", u.cpu_percent)),
            run.other_cpu_percent
                .map_or("-".into(), |other| format!("{other:.0}")),
        )?;
    }
    out.flush()
}

/// Writes a subcommand's `--json` results and says where.
pub(crate) fn write_json(path: &std::path::Path, results: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("results written to {}", path.display());
    Ok(())
}

/// Writes a subcommand's `--markdown` table, as `print` prints it.
pub(crate) fn write_table(
    path: &std::path::Path,
    print: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut text = Vec::new();
    print(&mut text)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Best effort: the report says "unknown" rather than failing the run.
fn environment() -> Environment {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or_else(
            || "unknown".to_string(),
            |(_, model)| model.trim().to_string(),
        );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    let command = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map_or_else(
                || "unknown".to_string(),
                |output| String::from_utf8_lossy(&output.stdout).trim().to_string(),
            )
    };
    Environment {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        commit: command("git", &["rev-parse", "--short", "HEAD"]),
        date: command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scrape(leader: bool, batches: u32, leaves: u32) -> Option<String> {
        Some(format!(
            "cairn_batch_leaves_sum {leaves}.0\ncairn_batch_leaves_count {batches}\n\
             cairn_batch_leaves_bucket{{le=\"16.0\"}} {batches}\n\
             cairn_batch_leaves_bucket{{le=\"+Inf\"}} {batches}\n\
             cairn_commit_seconds_sum {}\ncairn_commit_seconds_count {batches}\n\
             cairn_commit_seconds_bucket{{le=\"0.01\"}} {batches}\n\
             cairn_commit_seconds_bucket{{le=\"+Inf\"}} {batches}\n\
             cairn_raft_is_leader {}\n",
            f64::from(batches) * 0.01,
            u8::from(leader)
        ))
    }

    #[test]
    fn batch_stats_come_from_the_leader_only() {
        // Node 2 leads; node 1's follower "batches" (failed proposals) must not count.
        let before = [scrape(false, 0, 0), scrape(true, 0, 0), None];
        let after = [scrape(false, 50, 500), scrape(true, 10, 100), None];
        let stats = batch_stats(&before, &after, Duration::from_secs(2)).unwrap();
        assert_eq!(stats.leader, 2);
        assert!((stats.batches - 10.0).abs() < 1e-9);
        assert!((stats.batches_per_second - 5.0).abs() < 1e-9);
        assert!((stats.mean_leaves - 10.0).abs() < 1e-9);
        assert!((stats.commit_mean_ms - 10.0).abs() < 1e-9);
        assert!(batch_stats(&before, &[None, None, None], Duration::from_secs(1)).is_none());
    }
}
