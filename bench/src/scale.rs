//! `cairn-bench scale`: the cost per entry as the artifact log grows, measured at each size
//! through the public API of real `cairn-node` processes. Between sizes the stopped cluster's
//! log grows through `cairn-bench fill`, so the bytes on disk are the node's own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use tlog::Hash;

use node::dev_process::{LocalCluster, LocalError};

use crate::appends::AppendsArgs;
use crate::cluster::{self, Cluster, Started};
use crate::fill::FillResult;
use crate::net::{self, Answer};
use crate::run::{self, Context, Done, Failure, RunArgs, Target, Workload};
use crate::stats::per_second;
use crate::verify::{ResponseVerifier, proof_kind};
use client::log_entry::{verify_consistency_answer, verify_inclusion_answer};

/// The most sizes one run measures.
const SIZES_MAX: usize = 16;
/// The largest size accepted (disk: about 1 KiB per entry per node).
const SIZE_MAX: u64 = 1_000_000_000;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    cargo build --release -p node --bin cairn-node\n  \
    cargo run --release -p bench --bin cairn-bench -- scale --sizes 100000,1000000 --json scale.json\n  \
    cargo run --release -p bench --bin cairn-bench -- scale --sizes 100000,1000000,10000000 --nodes 3\n\n\
    Disk, in --data-dir: about 650 B per entry per node, for the cluster's nodes and, during\n\
    catch-up, one more (which holds up to twice that until its index is built): about 3 GB at\n\
    10^6 entries on 3 nodes, about 26 GB at 10^7.\n\
    Time: about 2 minutes for 10^5 and 10^6 on 2 cores; with 10^7, about 12 minutes\n\
    (docs/benchmarks/scale.md).")]
#[command(mut_arg("clients", |arg| arg.default_value("64")
    .help("Concurrent clients of the append run at each size (one value)")))]
#[command(mut_arg("duration", |arg| arg.default_value("5")
    .help("Seconds of measured appends at each size")))]
#[command(mut_arg("warmup", |arg| arg.default_value("2")
    .help("Seconds of appends before measuring")))]
#[command(mut_arg("nodes", |arg| arg.help("Nodes in the cluster")))]
pub(crate) struct ScaleArgs {
    /// The append run's settings, and where the cluster lives.
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Log sizes to measure at, ascending (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub(crate) sizes: Vec<u64>,
    /// Inclusion proofs to ask for at each size (random leaf indexes), and as many consistency
    /// proofs (random earlier signed sizes to the current one).
    #[arg(long, default_value_t = 2000)]
    pub(crate) proofs: usize,
    /// Concurrent clients asking for proofs (one keep-alive connection each, spread over the
    /// nodes).
    #[arg(long, default_value_t = 8)]
    pub(crate) proof_clients: usize,
    /// Skip adding a new node at each size.
    #[arg(long)]
    pub(crate) no_catch_up: bool,
    /// Longest wait for a new node to catch up, in seconds.
    #[arg(long, default_value_t = 1800.0)]
    pub(crate) catch_up_timeout: f64,
    /// Leaves per Raft entry while filling (the sequencer's own largest batch by default).
    #[arg(long, default_value_t = 4096)]
    pub(crate) fill_batch: usize,
    /// Batches in flight while filling.
    #[arg(long, default_value_t = 4)]
    pub(crate) fill_in_flight: usize,
}

/// One node's databases, right after the fill (cluster stopped).
#[derive(Debug, Serialize)]
pub(crate) struct NodeDisk {
    pub(crate) node: usize,
    pub(crate) raft_log_bytes: u64,
    /// Blocks `state.redb` occupies on disk. Its length (`state_file_bytes`) can be far more:
    /// redb grows the file in large steps, and the unwritten end is a hole.
    pub(crate) state_bytes: u64,
    /// The length of `state.redb`.
    pub(crate) state_file_bytes: u64,
    /// Blocks actually allocated for everything in the data directory.
    pub(crate) allocated_bytes: u64,
}

/// How the log grows between sizes, as the report states it.
const FILL_METHOD: &str = "cairn-bench fill: the stopped cluster's nodes run in one process \
    from their own data directories with the node library (Node::start, mutual-TLS Raft); the \
    leader gets batches of pre-signed hashedrekord entries via raft.client_write, so each batch is \
    fsynced on a quorum and applied by every replica with state_machine::apply; HTTP, request \
    decoding and per-request signature checks are skipped";

/// `cairn-bench scale`: a cluster grown to each size in turn and measured there.
pub(crate) async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let args = &args;
    let sizes = &args.sizes;
    ensure!(
        (1..=SIZES_MAX).contains(&sizes.len())
            && sizes.windows(2).all(|pair| pair[0] < pair[1])
            && sizes[0] >= 1
            && sizes[sizes.len() - 1] <= SIZE_MAX,
        "--sizes: 1 to {SIZES_MAX} sizes, ascending, each 1 to {SIZE_MAX}"
    );
    ensure!(
        args.run.clients.len() == 1
            && args.proof_clients >= 1
            && args.proofs >= 1
            && args.catch_up_timeout > 0.0,
        "--clients one value, --proof-clients and --proofs at least 1, --catch-up-timeout positive"
    );
    args.run.check()?;
    let nodes = args.run.one_size()?;
    let started = Instant::now();
    let environment = run::environment();
    let node_bin = args.run.node_bin()?;
    let dir = cluster::fresh_dir(&args.run.parent(), "scale")?;
    let guard = Started::new(dir.clone(), args.run.keep_data);
    let (base_port, shown) = (cluster::free_base_port(nodes)?, dir.display());
    eprintln!("scale: {nodes}-node cluster in {shown} (base port {base_port}), sizes {sizes:?}");
    // Each start runs `cairn-node dev` in `dir`: the first creates the cluster (keys,
    // certificates, membership), the others resume it after a fill. Each stop keeps `dir`:
    // `guard` removes it at the end (unless --keep-data).
    let start = || Cluster::start_in(&node_bin, (nodes, base_port), &dir, &[], None, true);
    let created = start()?;
    tokio::task::block_in_place(|| drop(created));
    let mut points = Vec::new();
    let mut trusted: Vec<(u64, Hash)> = Vec::new();
    let mut next_id = u64::from(nodes) + 1;
    // The log's size after the last append run: where the next fill starts.
    let mut current = 0;
    for &size in sizes {
        let target = size.max(current);
        eprintln!("\n== {size} entries: filling {current} -> {target}");
        let mut fill = run_fill(&dir, target, args)?;
        let disk = disk_usage(&dir, target)?;
        let cluster = start()?;
        let verifier = ResponseVerifier::new(&cluster.verifier_key)?;
        let point = async {
            for text in std::mem::take(&mut fill.checkpoints) {
                let checkpoint = verifier.checkpoint(&text);
                trusted.push(checkpoint.map_err(|e| anyhow::anyhow!("a fill checkpoint: {e}"))?);
            }
            trusted.sort_by_key(|(size, _)| *size);
            trusted.dedup_by_key(|(size, _)| *size);
            let proofs = proofs(args, &cluster, &verifier, &trusted).await?;
            let catch_up = if args.no_catch_up {
                None
            } else {
                next_id += 1;
                Some(catch_up(args, &cluster, &dir, &node_bin, next_id - 1).await?)
            };
            let appends = appends(args, &cluster).await?;
            (current, _, _) = verifier.fetch_checkpoint(&cluster.urls[0]).await?;
            // `entries`: the log's size when measured (appends of earlier points included);
            // `fill`: the fill to this size (its checkpoints left out).
            anyhow::Ok(serde_json::json!({
                "entries": proofs["tree_size"], "fill": fill, "disk": disk, "proofs": proofs,
                "catch_up": catch_up, "appends": appends, "entries_after_appends": current,
            }))
        }
        .await;
        tokio::task::block_in_place(|| drop(cluster));
        let point = point?;
        crate::run::print_run(COLUMNS, &point);
        points.push(point);
    }
    drop(guard);
    let (run, fsync) = (&args.run, crate::appends::FSYNC);
    let settings = serde_json::json!({
        "nodes": nodes, "sizes": args.sizes, "append_clients": run.clients[0],
        "append_warmup_s": run.warmup, "append_duration_s": run.duration, "proofs": args.proofs,
        "proof_clients": args.proof_clients, "fill_batch_leaves": args.fill_batch,
        "fill_in_flight": args.fill_in_flight, "fsync": fsync, "fill_method": FILL_METHOD,
    });
    // `total_seconds`: the wall time of the whole run, fills included.
    let report = serde_json::json!({
        "environment": environment, "settings": settings, "points": points,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    args.run.finish(&report, table, true)
}

/// Runs `cairn-bench fill` on the stopped cluster in a child process (so every database it
/// opened is closed when it exits), its progress on this process's stderr.
fn run_fill(dir: &Path, to: u64, args: &ScaleArgs) -> anyhow::Result<FillResult> {
    let out = dir.join(format!("fill-{to}.json"));
    let exe = std::env::current_exe().context("finding the cairn-bench executable")?;
    let (batch, in_flight) = (args.fill_batch, args.fill_in_flight);
    let settings = format!("fill --to {to} --batch {batch} --in-flight {in_flight}");
    let status = tokio::task::block_in_place(|| {
        Command::new(&exe)
            .args(settings.split_whitespace())
            .arg("--dir")
            .arg(dir)
            .arg("--json")
            .arg(&out)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .status()
    })
    .with_context(|| format!("running {} fill", exe.display()))?;
    ensure!(status.success(), "cairn-bench fill failed ({status})");
    let text = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    Ok(serde_json::from_slice(&text)?)
}

/// Sizes of each node's databases, and their means over the nodes per entry of the artifact
/// log (`state_bytes`: the blocks `state.redb` occupies).
fn disk_usage(dir: &Path, entries: u64) -> anyhow::Result<serde_json::Value> {
    let mut nodes = Vec::new();
    for (position, config) in crate::fill::node_configs(dir)?.iter().enumerate() {
        let file = node::config::NodeFile::load(config)?;
        nodes.push(data_dir_usage(position + 1, &file.data_dir)?);
    }
    let count = nodes.len().max(1) as f64;
    let per_entry = |bytes: u64| bytes as f64 / count / entries.max(1) as f64;
    let state: u64 = nodes.iter().map(|node| node.state_bytes).sum();
    let raft: u64 = nodes.iter().map(|node| node.raft_log_bytes).sum();
    let allocated: u64 = nodes.iter().map(|node| node.allocated_bytes).sum();
    Ok(serde_json::json!({
        "nodes": nodes, "state_bytes_per_entry": per_entry(state),
        "raft_log_bytes_per_entry": per_entry(raft), "total_bytes_per_entry": per_entry(allocated),
    }))
}

/// What the data directory of node `node` occupies.
fn data_dir_usage(node: usize, dir: &Path) -> anyhow::Result<NodeDisk> {
    let mut allocated_bytes = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        allocated_bytes += blocks(&entry?.path());
    }
    let length = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |meta| meta.len());
    Ok(NodeDisk {
        node,
        raft_log_bytes: length("raft-log.redb"),
        state_bytes: blocks(&dir.join("state.redb")),
        state_file_bytes: length("state.redb"),
        allocated_bytes,
    })
}

/// The closed-loop append run of `appends`, with this run's settings.
async fn appends(args: &ScaleArgs, cluster: &Cluster) -> anyhow::Result<serde_json::Value> {
    let mut appends = AppendsArgs::with(args.run.clone());
    // Enough pre-signed requests for 12,000 appends/s, over twice what 3 nodes reach here; a
    // count far below usize::MAX for any sensible duration (`as` saturates).
    #[allow(clippy::cast_possible_truncation)]
    let presign = (12_000.0 * (args.run.warmup + args.run.duration)).ceil() as usize + 1000;
    appends.presign = Some(presign);
    crate::appends::run_once(&appends, cluster, args.run.clients[0]).await
}

/// Inclusion proofs for random leaves and consistency proofs from random earlier signed sizes,
/// every one verified, spread over the nodes: the latencies of `GET entries/<index>` (the leaf
/// whose inclusion is then proved), of `GET proof/inclusion?index=&tree_size=` (verified from
/// the leaf to the signed root) and of `GET proof/consistency?old=&new=` (between two signed
/// roots), and the proofs per second over the measurement (all clients).
async fn proofs(
    args: &ScaleArgs,
    cluster: &Cluster,
    verifier: &ResponseVerifier,
    trusted: &[(u64, Hash)],
) -> anyhow::Result<serde_json::Value> {
    let (size, root, _) = verifier.fetch_checkpoint(&cluster.urls[0]).await?;
    let older: Vec<(u64, Hash)> = trusted
        .iter()
        .copied()
        .filter(|(old, _)| *old < size)
        .collect();
    if older.is_empty() {
        eprintln!(
            "   no signed size below {size} to prove consistency from: inclusion proofs only"
        );
    }
    let load = Arc::new(ProofLoad {
        urls: cluster.urls.clone(),
        timeout: args.run.timeout(),
        signed: (size, root),
        older,
        rounds: (args.proofs, AtomicUsize::new(0)),
    });
    // The phase loop without warm-up, until the rounds run out.
    let mut phases = args.run.phases(args.proof_clients, "proof answers");
    (phases.warmup, phases.duration) = (Duration::ZERO, Duration::from_secs(24 * 3600));
    phases.profile = false;
    let measured = run::measure(&load, &phases, Target::cluster(cluster)).await?;
    if let Some((kind, _)) = measured.counts.errors.iter().next() {
        bail!("a proof at tree size {size} did not verify ({kind})");
    }
    let [reads, inclusion, consistency] = ["entry_reads", "inclusion", "consistency"]
        .map(|label| measured.total(|kind| kind == label).1.summary());
    let proofs = inclusion.count + consistency.count;
    // `tree_size`: the checkpoint the proofs were checked against.
    Ok(serde_json::json!({
        "tree_size": size, "entry_reads": reads, "inclusion": inclusion,
        "consistency": consistency, "proofs_per_second": per_second(proofs, measured.window),
    }))
}

/// Rounds of an entry read, its inclusion proof and (if there is an earlier signed size) a
/// consistency proof, each request timed on its own: a client's round goes on at its next
/// request. The first failure ends the rounds.
struct ProofLoad {
    urls: Vec<String>,
    timeout: Duration,
    /// The size and root of the signed checkpoint every proof leads to, and earlier signed
    /// sizes and roots to prove consistency from.
    signed: (u64, Hash),
    older: Vec<(u64, Hash)>,
    /// Rounds to make, and rounds started.
    rounds: (usize, AtomicUsize),
}

/// The request a client's round is at.
#[derive(Clone, Copy)]
enum Step {
    Entry(u64),
    /// The proof that this leaf hash is at this index.
    Inclusion(u64, Hash),
    /// The proof from this signed size and root.
    Consistency(u64, Hash),
}

impl Workload for ProofLoad {
    /// The URL of the node the client talks to, its generator and its step (none between
    /// rounds).
    type Client = (String, SmallRng, Option<Step>);
    type Answer = Result<Answer, &'static str>;

    async fn prepare(&self, id: usize) -> anyhow::Result<Self::Client> {
        let url = self.urls[id % self.urls.len()].clone();
        Ok((url, SmallRng::try_from_os_rng()?, None))
    }

    async fn issue(
        &self,
        (url, random, step): &mut Self::Client,
        _: usize,
        _: &Context<'_>,
    ) -> Result<Self::Answer, Failure> {
        let size = self.signed.0;
        if step.is_none() && self.rounds.1.fetch_add(1, Ordering::Relaxed) >= self.rounds.0 {
            return Err(Failure::Exhausted);
        }
        let path = match *step.get_or_insert_with(|| Step::Entry(random.random_range(0..size))) {
            Step::Entry(index) => format!("entries/{index}"),
            Step::Inclusion(index, _) => format!("proof/inclusion?index={index}&tree_size={size}"),
            Step::Consistency(old, _) => format!("proof/consistency?old={old}&new={size}"),
        };
        Ok(net::send(&format!("{url}/api/v2/{path}"), None, None, self.timeout).await)
    }

    fn verify(
        &self,
        (_, random, step): &mut Self::Client,
        answer: Self::Answer,
    ) -> Result<Done, String> {
        let signed = (self.signed.0, &self.signed.1);
        let fail = |kind: &str| {
            // No round starts after a failure.
            self.rounds.1.store(self.rounds.0, Ordering::Relaxed);
            Err(kind.to_owned())
        };
        let (label, verified) = match (answer, step.take()) {
            (Err(kind), _) => return fail(kind),
            (Ok(answer), _) if answer.status != 200 => return fail("http error"),
            (Ok(answer), Some(Step::Entry(index))) => {
                *step = Some(Step::Inclusion(index, tlog::leaf_hash(&answer.body)));
                ("entry_reads", Ok(()))
            }
            (Ok(answer), Some(Step::Inclusion(index, leaf))) => {
                let pick = random.random_range(0..self.older.len().max(1));
                *step = (self.older.get(pick)).map(|&(old, root)| Step::Consistency(old, root));
                let verified = verify_inclusion_answer(&answer.body, (index, &leaf), signed);
                ("inclusion", verified)
            }
            (Ok(answer), Some(Step::Consistency(old, root))) => {
                let verified = verify_consistency_answer(&answer.body, (old, &root), signed);
                ("consistency", verified)
            }
            (Ok(_), None) => return fail("verify: no request"),
        };
        match verified {
            Ok(()) => Ok(Done::read(label)),
            Err(error) => fail(proof_kind(&error)),
        }
    }
}

/// Adds an empty node `id` to the running cluster as a learner, times it until it serves the
/// leader's latest checkpoint, promotes it to voter, then removes it again and deletes it.
async fn catch_up(
    args: &ScaleArgs,
    cluster: &Cluster,
    dir: &Path,
    node_bin: &Path,
    id: u64,
) -> anyhow::Result<serde_json::Value> {
    // Node 1's config with the new node's id, ports, data and certificate, where
    // `LocalCluster` looks for node `id`.
    let configs = crate::fill::node_configs(dir)?;
    // Progress: the learner's state database grows towards a voter's (the same size once
    // caught up, see docs/benchmarks/scale.md); the node reports nothing until it serves.
    let voter_state = node::config::NodeFile::load(&configs[0])?
        .data_dir
        .join("state.redb");
    let ports = cluster::free_ports(2)?;
    let (api, cluster_url) = (
        format!("http://127.0.0.1:{}", ports[0]),
        format!("https://127.0.0.1:{}", ports[1]),
    );
    let config = node::provision::add_node(dir, &configs[0], id, &api, &cluster_url)
        .context("the new node's config")?;
    let file = node::config::NodeFile::load(&config)?;
    let node_dir = dir.join(format!("node-{id}"));
    // Node n at position n - 1; the nodes added at earlier sizes (and removed) are never asked.
    let mut urls = cluster.urls.clone();
    urls.resize(usize::try_from(id)?, file.api_url.clone());
    let cluster_urls = vec![file.cluster_url.clone(); urls.len()];
    let mut nodes = LocalCluster::new(node_bin, dir, &urls, &cluster_urls)?;
    nodes.set_env("RUST_LOG", "warn");
    nodes.spawn(id)?;
    nodes
        .wait_for(id, "/healthz", Duration::from_secs(30))
        .await?;
    let status = nodes.admin_json(1, "/admin/status", None).await?;
    let leader = status["leader"]
        .as_u64()
        .context("the cluster has no leader")?;
    let voters: Vec<u64> = (status["voters"].as_array().into_iter().flatten())
        .filter_map(serde_json::Value::as_u64)
        .collect();
    let leader_url = &urls[usize::try_from(leader - 1)?];
    let verifier = ResponseVerifier::new(&cluster.verifier_key)?;
    let (size, _, latest) = verifier.fetch_checkpoint(leader_url).await?;

    let timeout = Duration::from_secs_f64(args.catch_up_timeout);
    let started = Instant::now();
    // The leader answers once it considers the learner caught up (which may take longer than
    // an admin call may); the clock stops when the learner itself serves the latest
    // checkpoint, whichever comes later.
    let (url, token) = (
        format!("{leader_url}/admin/learners"),
        nodes.token().to_owned(),
    );
    let body =
        serde_json::json!({ "id": id, "api_url": file.api_url, "cluster_url": file.cluster_url });
    let body = Some(body.to_string());
    let add = async move { crate::net::request(&url, body, Some(&token), timeout).await };
    let mut add = Some(tokio::spawn(add));
    let mut last_report = Instant::now();
    loop {
        // Fails at once if the new node exited; "not ready" is no error here.
        if let Err(error @ LocalError::Exited { .. }) =
            nodes.wait_for(id, "/healthz", Duration::ZERO).await
        {
            bail!("the new node exited during catch-up: {error}");
        }
        if let Ok(body) = crate::net::get(&format!("{}/api/v2/checkpoint", file.api_url)).await
            && body == latest.as_bytes()
        {
            break;
        }
        if let Some(finished) = add.take_if(|add| add.is_finished()) {
            // An error ends the wait; a success means the leader thinks the learner is
            // up to date, which it may say before the learner serves the checkpoint.
            finished.await?.context("adding the learner")?;
        }
        ensure!(
            started.elapsed() < timeout,
            "the new node did not catch up within {timeout:?}"
        );
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            // Blocks, not lengths: redb grows a file in large steps, ahead of what it holds.
            let stored = blocks(&file.data_dir.join("state.redb")) as f64 / 1e9;
            let voter = blocks(&voter_state) as f64 / 1e9;
            eprintln!(
                "   [catch-up {:>4.0}s] node {id} catching up to {size} entries, state {stored:.1} \
                 of {voter:.1} GB",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let learner_seconds = started.elapsed().as_secs_f64();
    if let Some(add) = add {
        add.await?.context("adding the learner")?;
    }
    let started = Instant::now();
    let with_new: Vec<u64> = voters.iter().copied().chain([id]).collect();
    let promote = serde_json::json!({ "voters": with_new });
    nodes
        .admin_json(leader, "/admin/membership", Some(promote))
        .await?;
    let voter_seconds = started.elapsed().as_secs_f64();
    let usage = data_dir_usage(usize::try_from(id)?, &file.data_dir)?;
    // Back to the measured cluster: the next size starts from the same voters.
    let remove = serde_json::json!({ "voters": voters, "retain": false });
    nodes
        .admin_json(leader, "/admin/membership", Some(remove))
        .await?;
    tokio::task::block_in_place(|| nodes.stop_all());
    let _ = std::fs::remove_dir_all(&node_dir);
    // `learner_seconds`: from asking the leader to add the learner to the learner serving the
    // leader's latest checkpoint (snapshot installed, every leaf fetched, verified and stored);
    // `voter_seconds`: promoting it; the bytes: its databases once caught up.
    Ok(serde_json::json!({
        "node_id": id, "tree_size": size, "learner_seconds": learner_seconds,
        "voter_seconds": voter_seconds,
        "entries_per_second": size as f64 / learner_seconds.max(1e-9),
        "raft_log_bytes": usage.raft_log_bytes, "state_bytes": usage.state_bytes,
    }))
}

/// Blocks a file occupies on disk, in bytes (0 if it is not there).
fn blocks(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).map_or(0, |meta| meta.blocks() * 512)
}

/// The columns of the `scale` table (also the suite report's), one row per size.
const COLUMNS: &str = "entries=entries | fill entries/s=fill.entries_per_second:0 \
    | fill IO stalled %=fill.io_stalled_percent:1 | fill CPU µs/entry=fill.cpu_micros_per_entry:1 \
    | fill written B/entry=fill.written_bytes_per_entry:0 \
    | state B/entry/node=disk.state_bytes_per_entry:0 | Raft log B/entry=disk.raft_log_bytes_per_entry:1 \
    | appends/s=appends.appends_per_second:0 | append p50 ms=appends.latency.p50_ms:1 \
    | append p99 ms=appends.latency.p99_ms:1 | inclusion p50 ms=proofs.inclusion.p50_ms:2 \
    | inclusion p99 ms=proofs.inclusion.p99_ms:2 | consistency p50 ms=proofs.consistency.p50_ms:2 \
    | consistency p99 ms=proofs.consistency.p99_ms:2 | catch-up s=catch_up.learner_seconds:1 \
    | catch-up entries/s=catch_up.entries_per_second:0 | promote s=catch_up.voter_seconds:2";

pub(crate) fn table(report: &serde_json::Value) -> String {
    crate::stats::table(COLUMNS, report["points"].as_array().into_iter().flatten())
}
