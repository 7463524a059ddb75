//! `cairn-bench fill`: grows the artifact log of a *stopped* `cairn-node dev` cluster fast,
//! through the node's own code (filling 10^7 entries through the API would take an hour). Every
//! node runs in this process with `Node::start` over its own files and mutual-TLS Raft, and the
//! leader gets batches of distinct, validly signed entries through `raft.client_write`, as the
//! sequencer proposes them at full load; only HTTP, request decoding and ECDSA checks are
//! skipped. At the end every head must equal the leader's and each node snapshots and purges
//! its Raft log, so a node that joins later catches up from the snapshot.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use node::Node;
use node::config::NodeFile;
use node::env::{Clock as _, SystemClock};
use node::process::Serving;
use node::types::{AppendBatch, Command, CommandOutcome, LeafOutcome, LogName};
use serde::{Deserialize, Serialize};
use tlog::Hash;

use crate::cluster::ARTIFACT_LOG;
use crate::workload::EntrySigner;

/// A batch the node's apply accepts (`state_machine::BATCH_LEAVES_MAX`).
const BATCH_MAX: usize = node::state_machine::BATCH_LEAVES_MAX;
/// Raft entries per AppendEntries message during the fill: with batches of a few MiB, the
/// node's default of 64 could exceed the cluster listener's 64 MiB body limit.
const FILL_PAYLOAD_ENTRIES: u64 = 8;
/// Raft entries between snapshots during the fill (each followed by a purge of the log it
/// covers): 100 batches of 4,096 leaves, 409,600 leaves. A node's configured 10,000 entries
/// hold about as many leaves at the batch sizes it proposes under sustained load (40 to 60
/// leaves, docs/benchmarks/appends.md); at the fill's 4,096 they would be 41 million leaves,
/// so a fill to 10^7 kept its whole Raft log until the end, 4.5 GB per node (now at most a
/// few hundred MB). The fill rate was the same either way (docs/benchmarks/scale.md).
const FILL_SNAPSHOT_ENTRIES: u64 = 100;
/// Attempts per batch: leadership can move while the machine is saturated.
const PROPOSE_ATTEMPTS: u32 = 5;
/// A proposal's outcome, with its batch (to propose again) and how often it was retried.
type Proposal = (AppendBatch, u32, Result<CommandOutcome, String>);
/// The most entries one fill may add (a bound on what a typo can start).
const FILL_ENTRIES_MAX: u64 = 1_000_000_000;

/// Grow a stopped `cairn-node dev` cluster's artifact log to a size, through Raft and apply.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example (the cluster in ./dev must be stopped):\n  \
    cairn-bench fill --dir dev --to 1000000 --json fill.json\n\
    then start it again with `cairn-node dev --dir dev --base-port <its base port>`.")]
pub(crate) struct FillArgs {
    /// The cluster directory of a stopped `cairn-node dev` cluster (with its cluster.json).
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Grow the artifact log to this many entries (it must be at least its current size).
    #[arg(long)]
    pub(crate) to: u64,
    /// Leaves per batch (one Raft entry each); the sequencer's default batch_leaves_max.
    #[arg(long, default_value_t = 4096)]
    pub(crate) batch: usize,
    /// Batches proposed and not yet applied.
    #[arg(long, default_value_t = 4)]
    pub(crate) in_flight: usize,
    /// Threads that build and sign entries.
    #[arg(long, default_value_t = 2)]
    pub(crate) sign_threads: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FillResult {
    /// The artifact log's size before and after.
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) batches: u64,
    pub(crate) batch_leaves: usize,
    /// Mean canonical entry size in bytes.
    pub(crate) leaf_bytes_mean: f64,
    /// From the first proposal to the last batch applied on the leader.
    pub(crate) seconds: f64,
    pub(crate) entries_per_second: f64,
    /// Until every node applied everything, took its snapshot and purged its Raft log.
    pub(crate) settle_seconds: f64,
    /// Bytes this process caused to be written to storage (`write_bytes` of /proc/self/io:
    /// every replica's Raft log and state database, page writes included), per entry added;
    /// `None` where /proc does not say.
    pub(crate) written_bytes_per_entry: Option<f64>,
    /// Of `seconds`, the share in which some task on the machine waited for storage
    /// (`/proc/pressure/io`, "some"), in percent: contention for the disk, from this fill or
    /// from anything else, which moves fill rates from run to run; `None` where the kernel
    /// does not say.
    #[serde(default)]
    pub(crate) io_stalled_percent: Option<f64>,
    /// CPU time (user and system) this process spent over `seconds`, in microseconds per entry
    /// added: the three replicas' work and the fill's own signing of entries. Steadier than
    /// the rate between runs on a machine whose disk or neighbours vary, since waiting costs no
    /// CPU.
    #[serde(default)]
    pub(crate) cpu_micros_per_entry: Option<f64>,
    /// The leader's signed checkpoint after every batch (C2SP signed notes), oldest first:
    /// trusted sizes and roots for consistency proofs later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) checkpoints: Vec<String>,
}

/// The config files of a `cairn-node dev` cluster, from its cluster.json.
pub(crate) fn node_configs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let path = dir.join("cluster.json");
    let json = node::dev_process::read_cluster_json(&path)
        .with_context(|| format!("{}: is it a cairn-node dev dir?", dir.display()))?;
    let configs: Vec<PathBuf> = (json["nodes"].as_array().into_iter().flatten())
        .filter_map(|node| node["config"].as_str().map(PathBuf::from))
        .collect();
    ensure!(!configs.is_empty(), "{}: no nodes", path.display());
    Ok(configs)
}

pub(crate) async fn fill_command(args: FillArgs) -> anyhow::Result<()> {
    let result = fill(&args).await?;
    eprintln!(
        "filled {} -> {} entries in {:.1} s ({:.0}/s), settled in {:.1} s{}",
        result.from,
        result.to,
        result.seconds,
        result.entries_per_second,
        result.settle_seconds,
        (result.io_stalled_percent)
            .map(|percent| format!("; the disk stalled some task {percent:.1}% of the fill"))
            .unwrap_or_default()
    );
    if let Some(micros) = result.cpu_micros_per_entry {
        eprintln!("CPU (user and system) of the fill: {micros:.1} µs per entry");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Starts a node of the stopped cluster in this process, as `cairn-node run` would, with Raft
/// settings for a fill.
async fn start_node(config_path: &Path) -> anyhow::Result<Serving> {
    let mut file = NodeFile::load(config_path)?;
    file.raft.snapshot_every_entries = FILL_SNAPSHOT_ENTRIES;
    // The public API too, with no limits per client address: a node that must install a
    // snapshot fetches bundles from it.
    let public = node::http::PublicOptions::plain(node::config::ConnectionLimits::default());
    let serving = Serving::start(&file, public, |settings| {
        let raft = &mut settings.raft;
        raft.max_payload_entries = FILL_PAYLOAD_ENTRIES;
        // Applying big batches on three replicas in one process saturates the machine; slow
        // heartbeats must not start elections (a fill has no failures to detect quickly).
        raft.heartbeat_interval = 1_000;
        raft.election_timeout_min = 15_000;
        raft.election_timeout_max = 30_000;
        // The snapshot taken at the end should let the Raft log go entirely.
        raft.max_in_snapshot_log_to_keep = 0;
    });
    serving.await.context("is the cluster stopped?")
}

/// Grows the log of the stopped cluster in `args.dir`; the nodes run in this process only
/// until it returns.
pub(crate) async fn fill(args: &FillArgs) -> anyhow::Result<FillResult> {
    ensure!(
        (1..=BATCH_MAX).contains(&args.batch)
            && (1..=64).contains(&args.in_flight)
            && (1..=64).contains(&args.sign_threads),
        "--batch must be 1 to {BATCH_MAX}, --in-flight and --sign-threads 1 to 64"
    );
    let mut serving = Vec::new();
    for config in node_configs(&args.dir)? {
        let node = start_node(&config).await;
        serving.push(node.with_context(|| format!("starting the node of {}", config.display()))?);
    }
    let nodes: Vec<Arc<Node>> = serving.iter().map(|s| Arc::clone(s.node())).collect();
    let outcome = fill_running(args, &nodes).await;
    for node in serving {
        node.shutdown().await;
    }
    outcome
}

fn log_name() -> LogName {
    LogName(ARTIFACT_LOG.to_string())
}

fn head_of(node: &Node) -> anyhow::Result<node::state_machine::LogHead> {
    Ok(node
        .reader()
        .view()?
        .head(&log_name())?
        .unwrap_or_else(|| node::state_machine::LogHead {
            root: Hash::EMPTY_ROOT,
            ..Default::default()
        }))
}

async fn wait_for_leader(nodes: &[Arc<Node>]) -> anyhow::Result<Arc<Node>> {
    let started = Instant::now();
    loop {
        for node in nodes {
            let metrics = node.raft().metrics().borrow().clone();
            if metrics.current_leader == Some(node.id()) && metrics.state.is_leader() {
                return Ok(Arc::clone(node));
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no leader among the cluster's nodes after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill_running(args: &FillArgs, nodes: &[Arc<Node>]) -> anyhow::Result<FillResult> {
    let mut leader = wait_for_leader(nodes).await?;
    // The log's size counts only once the leader has applied every entry committed in earlier
    // terms: an earlier phase's last appends may be committed but not yet applied here.
    leader
        .raft()
        .ensure_linearizable()
        .await
        .context("waiting for the leader to apply what earlier terms committed")?;
    let from = head_of(&leader)?.tree_size;
    ensure!(
        args.to >= from,
        "the log already has {from} entries, more than --to {}",
        args.to
    );
    ensure!(
        args.to - from <= FILL_ENTRIES_MAX,
        "at most {FILL_ENTRIES_MAX} entries per fill"
    );
    let total = args.to - from;
    let batches = total.div_ceil(args.batch as u64);
    eprintln!(
        "fill: {from} -> {} entries: {batches} batches of up to {} through the leader (node {})",
        args.to,
        args.batch,
        leader.id()
    );
    let started = Instant::now();
    let written_before = written_bytes();
    let stalled_before = io_stalled_micros();
    let cpu_before = cpu_micros();
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<anyhow::Result<Vec<Vec<u8>>>>(args.in_flight * 2);
    let stop = Arc::new(AtomicBool::new(false));
    let generators = spawn_generators(args, total, batches, &sender, &stop);
    // Only the generators hold senders now: the channel closes when they are done.
    drop(sender);

    let applied = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(progress(Arc::clone(&applied), total, started));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut checkpoints = Vec::new();
    let mut leaf_bytes: u64 = 0;
    let mut received = 0u64;
    // A proposal that failed (leadership moved: a node starved of CPU missed heartbeats) is
    // proposed again to the new leader; its leaves may then already be in the log.
    let propose = |tasks: &mut tokio::task::JoinSet<Proposal>,
                   leader: Arc<Node>,
                   batch: AppendBatch,
                   retry: u32| {
        tasks.spawn(async move {
            let outcome = leader
                .raft()
                .client_write(Command::Append(batch.clone()))
                .await
                .map(|response| response.data)
                .map_err(|error| error.to_string());
            (batch, retry, outcome)
        });
    };
    let result = async {
        loop {
            // Keep `in_flight` proposals going; collect answers as they come.
            while in_flight.len() < args.in_flight && received < batches {
                let Some(leaves) = receiver.recv().await else {
                    bail!("the entry generators stopped early");
                };
                let leaves = leaves?;
                received += 1;
                leaf_bytes += leaves.iter().map(|leaf| leaf.len() as u64).sum::<u64>();
                let batch = AppendBatch {
                    log: log_name(),
                    timestamp_unix_ms: SystemClock.now_unix_ms(),
                    leaves,
                };
                propose(&mut in_flight, Arc::clone(&leader), batch, 0);
            }
            let Some(answer) = in_flight.join_next().await else {
                break;
            };
            let (batch, retry, outcome) = answer.context("a proposal task failed")?;
            let outcome = match outcome {
                Ok(CommandOutcome::Appended(outcome)) => outcome,
                Ok(other) => bail!("the batch was not appended: {other:?}"),
                Err(error) if retry < PROPOSE_ATTEMPTS => {
                    eprintln!("fill: proposing a batch failed ({error}); proposing it again");
                    leader = wait_for_leader(nodes).await?;
                    propose(&mut in_flight, Arc::clone(&leader), batch, retry + 1);
                    continue;
                }
                Err(error) => bail!("proposing a batch: {error}"),
            };
            let count = batch.leaves.len();
            ensure!(
                outcome.leaves.len() == count,
                "{} outcomes for {count} leaves",
                outcome.leaves.len()
            );
            // Distinct entries: every leaf is new, at its own index below the batch's size,
            // unless this is a batch proposed again whose first proposal had committed.
            let mut new = 0u64;
            for leaf in &outcome.leaves {
                match leaf {
                    LeafOutcome::Appended { index } if *index < outcome.tree_size => new += 1,
                    LeafOutcome::Duplicate { index } if retry > 0 && *index < outcome.tree_size => {
                    }
                    other => bail!("leaf outcome {other:?} at tree size {}", outcome.tree_size),
                }
            }
            applied.fetch_add(new, Ordering::Relaxed);
            checkpoints.push((outcome.tree_size, outcome.checkpoint));
        }
        Ok(())
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    drop(receiver);
    for generator in generators {
        let _ = generator.join();
    }
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    result?;
    let seconds = started.elapsed().as_secs_f64();
    let io_stalled_percent = stalled_before
        .zip(io_stalled_micros())
        .map(|(before, after)| after.saturating_sub(before) as f64 / 1e4 / seconds.max(1e-9));
    let cpu_micros_per_entry = cpu_before
        .zip(cpu_micros())
        .map(|(before, after)| after.saturating_sub(before) as f64 / total.max(1) as f64);

    // The proposals may complete out of order; checkpoints are kept by size.
    checkpoints.sort_by_key(|(size, _)| *size);
    let head = head_of(&leader)?;
    ensure!(
        head.tree_size == args.to,
        "the leader's log has {} entries after the fill, want {}",
        head.tree_size,
        args.to
    );
    verify_head(&leader, &head)?;
    let settle_started = Instant::now();
    settle(nodes, &leader, &head).await?;
    Ok(FillResult {
        from,
        to: args.to,
        batches,
        batch_leaves: args.batch,
        leaf_bytes_mean: leaf_bytes as f64 / total.max(1) as f64,
        seconds,
        entries_per_second: total as f64 / seconds.max(1e-9),
        settle_seconds: settle_started.elapsed().as_secs_f64(),
        written_bytes_per_entry: written_before
            .zip(written_bytes())
            .map(|(before, after)| after.saturating_sub(before) as f64 / total.max(1) as f64),
        io_stalled_percent,
        cpu_micros_per_entry,
        checkpoints: checkpoints.into_iter().map(|(_, text)| text).collect(),
    })
}

/// `write_bytes` of /proc/self/io: bytes this process caused to be sent to storage.
fn written_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/io")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

/// CPU time this process has used (user and system), in microseconds.
fn cpu_micros() -> Option<u64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let micros = |time: nix::sys::time::TimeVal| -> Option<u64> {
        Some(u64::try_from(time.tv_sec()).ok()? * 1_000_000 + u64::try_from(time.tv_usec()).ok()?)
    };
    Some(micros(usage.user_time())? + micros(usage.system_time())?)
}

/// The microseconds in which some task on the machine waited for storage, since boot: the
/// "some" line's `total` in `/proc/pressure/io` (Linux 4.20 and later, with PSI on).
fn io_stalled_micros() -> Option<u64> {
    some_total(&std::fs::read_to_string("/proc/pressure/io").ok()?)
}

/// The `total` of the "some" line of a pressure file's `text`.
fn some_total(text: &str) -> Option<u64> {
    let some = text.lines().find(|line| line.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|field| field.strip_prefix("total="))
        .and_then(|value| value.parse().ok())
}

/// The head's checkpoint verifies under the log's key, as a client verifies it, and names the
/// head's size and root.
fn verify_head(leader: &Node, head: &node::state_machine::LogHead) -> anyhow::Result<()> {
    let log = (leader.logs().get(&log_name())).context("the cluster has no artifacts log")?;
    let key = tlog::keys::Ed25519Verifier::new(&log.origin, log.signing_key.verifying_key())
        .map_err(|error| anyhow::anyhow!("the log key: {error}"))?;
    let verifier =
        crate::verify::ResponseVerifier::new(&tlog::keys::Verifier::Ed25519(key).to_vkey())?;
    let signed = (verifier.checkpoint(&head.checkpoint))
        .map_err(|error| anyhow::anyhow!("the final checkpoint: {error}"))?;
    ensure!(
        signed == (head.tree_size, head.root),
        "the final checkpoint does not name the head's size and root"
    );
    Ok(())
}

/// Waits until every node has applied what the leader has, checks that their heads agree, and
/// makes each take a snapshot and purge the Raft log it covers.
async fn settle(
    nodes: &[Arc<Node>],
    leader: &Node,
    head: &node::state_machine::LogHead,
) -> anyhow::Result<()> {
    let target = leader
        .raft()
        .metrics()
        .borrow()
        .last_applied
        .map_or(0, |id| id.index);
    let deadline = Instant::now() + Duration::from_secs(600);
    // openraft's own waits on a node's metrics, bounded by what is left of the ten minutes.
    let wait = |node: &Node| {
        node.raft()
            .wait(Some(deadline.saturating_duration_since(Instant::now())))
    };
    for node in nodes {
        wait(node)
            .applied_index_at_least(Some(target), "applied")
            .await
            .with_context(|| format!("node {} did not apply up to {target}", node.id()))?;
        let theirs = head_of(node)?;
        let (id, size, root) = (node.id(), theirs.tree_size, theirs.root.to_base64());
        ensure!(
            (size, theirs.root) == (head.tree_size, head.root),
            "node {id} has size {size} root {root} but the leader {} {}",
            head.tree_size,
            head.root.to_base64()
        );
    }
    for node in nodes {
        let raft = node.raft();
        let error = |what: &str| format!("node {}: {what} at {target}", node.id());
        raft.trigger()
            .snapshot()
            .await
            .with_context(|| error("triggering a snapshot"))?;
        wait(node)
            .metrics(
                |m| m.snapshot.is_some_and(|id| id.index >= target),
                "snapshot",
            )
            .await
            .with_context(|| error("no snapshot"))?;
        raft.trigger()
            .purge_log(target)
            .await
            .with_context(|| error("purging the Raft log"))?;
    }
    Ok(())
}

async fn progress(applied: Arc<AtomicU64>, total: u64, started: Instant) {
    let terminal = std::io::stderr().is_terminal();
    let mut last = 0;
    let mut interval = tokio::time::interval(Duration::from_secs(if terminal { 1 } else { 5 }));
    interval.tick().await;
    loop {
        interval.tick().await;
        let done = applied.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-9);
        let left = if rate > 0.0 {
            format!("{:.0} s left", (total - done) as f64 / rate)
        } else {
            "-".into()
        };
        let line = format!(
            "[fill {elapsed:>5.0}s] {done}/{total} entries applied, {rate:.0}/s (last {:.0}/s), {left}",
            (done - last) as f64 / interval.period().as_secs_f64()
        );
        last = done;
        crate::run::progress_line(terminal, &line);
    }
}

/// Threads that build and sign batches `0..batches` (the last one short) and send them in
/// whatever order they finish.
fn spawn_generators(
    args: &FillArgs,
    total: u64,
    batches: u64,
    sender: &tokio::sync::mpsc::Sender<anyhow::Result<Vec<Vec<u8>>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let tag: Arc<str> = Arc::from(crate::workload::random_tag());
    let next = Arc::new(AtomicU64::new(0));
    let size = args.batch as u64;
    (0..args.sign_threads)
        .map(|_| {
            let (sender, stop, next, tag) = (
                sender.clone(),
                Arc::clone(stop),
                Arc::clone(&next),
                Arc::clone(&tag),
            );
            std::thread::spawn(move || {
                loop {
                    let batch = next.fetch_add(1, Ordering::Relaxed);
                    if batch >= batches || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let count = (total - batch * size).min(size);
                    let made = signed_leaves(&tag, batch, count);
                    if sender.blocking_send(made).is_err() {
                        return;
                    }
                }
            })
        })
        .collect()
}

/// `count` canonical hashedrekord v0.0.2 entries of batch `batch`: distinct artifacts, each
/// signed (ECDSA P-256, prehashed SHA-256, as the node verifies) by one fresh key per batch.
fn signed_leaves(tag: &str, batch: u64, count: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let (key, spki) = crate::workload::fresh_p256_key()?;
    let signer = EntrySigner::new(&key, &spki)?;
    (0..count)
        .map(|n| {
            let artifact = format!("cairn-bench fill {tag} {batch} {n}");
            Ok(signer.sign(&artifact)?.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::some_total;

    #[test]
    fn the_some_total_is_read_from_a_pressure_file() {
        let text = "some avg10=5.02 avg60=4.80 avg300=2.88 total=818056022\n\
                    full avg10=0.16 avg60=0.87 avg300=0.32 total=381089950\n";
        assert_eq!(some_total(text), Some(818_056_022));
        assert_eq!(some_total("full avg10=0.00 total=5\n"), None);
        assert_eq!(some_total("some avg10=0.00 total=x\n"), None);
        assert_eq!(some_total(""), None);
    }
}
