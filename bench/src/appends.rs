//! `cairn-bench appends`, and the append [`Workload`] that `mix`, `peer`, `witnessing` and
//! `scale` also run: pre-signed entries, each answer verified before it counts. 429, 503 and
//! transport errors are retried (the log deduplicates; a verified 200 is a duplicate answer).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{Cluster, PromHistogram};
use crate::net::{self, Answer};
use crate::run::{self, Context, Done, Failure, RunArgs, Target, Workload};
use crate::stats;
use crate::verify::ResponseVerifier;
use crate::workload::Signed;

#[derive(clap::Args, Clone, Debug)]
#[command(mut_arg("clients", |arg| arg.default_value("64")))]
#[command(mut_arg("nodes", |arg| arg.help("Cluster sizes to start, one after the other \
    (comma-separated). Ignored with --urls or --cluster-json")))]
pub(crate) struct AppendsArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Open loop: offer this many appends per second in total, whatever the answers, and
    /// measure latency from each request's due time. Without it the load is closed loop: each
    /// client sends its next request when the previous one is verified.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Use a running cluster at these node URLs instead of starting one (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "cluster_json")]
    pub(crate) urls: Vec<String>,
    /// Use a running `cairn-node dev` cluster described by this cluster.json (URLs, process ids
    /// for CPU and memory, and the log key).
    #[arg(long)]
    pub(crate) cluster_json: Option<PathBuf>,
    /// The artifact log's C2SP verifier key (`origin+keyid+base64`), for --urls. Without it the
    /// key is read from the first node's /logs, which trusts that node (fine for load tests).
    #[arg(long)]
    pub(crate) verifier_key: Option<String>,
    /// Requests to pre-sign per run. Default: enough for 25,000 appends/s closed loop, or the
    /// offered rate plus 5% open loop. A closed-loop run that uses them all ends early and says so.
    #[arg(long)]
    pub(crate) presign: Option<usize>,
    /// Attempts per entry: 429 and 503 answers and transport errors are retried (the log
    /// deduplicates resubmissions); other failures are not.
    #[arg(long, default_value_t = 5)]
    pub(crate) attempts: u32,
}

impl AppendsArgs {
    /// `appends` at its own defaults with these run arguments, for the subcommands that run
    /// appends on a cluster of their own (`peer`, `witnessing`, `scale`).
    pub(crate) fn with(run: RunArgs) -> AppendsArgs {
        use clap::{Args as _, FromArgMatches as _};
        let command = AppendsArgs::augment_args(clap::Command::new("appends"));
        let defaults = AppendsArgs::from_arg_matches(&command.get_matches_from(["appends"]));
        // Every flag has a default or is optional, so no arguments parse.
        let defaults = defaults.expect("appends' defaults parse");
        AppendsArgs { run, ..defaults }
    }
}

/// Closed-loop runs pre-sign enough for this many appends per second (25% above the 20,000/s
/// target) by default: signing takes a few seconds per run on this machine, so more would
/// make a short run mostly waiting; a run that uses them all says so and is cut short.
const CLOSED_LOOP_PRESIGN_RATE: f64 = 25_000.0;

/// Every node process is fsynced on commit; there is no switch to turn it off.
pub(crate) const FSYNC: &str =
    "on: every Raft log append is made durable (redb Immediate commit) before it counts";

/// The `appends` subcommand: each cluster (started, or given), once per client count.
pub(crate) async fn appends(args: AppendsArgs) -> anyhow::Result<()> {
    args.run.check()?;
    anyhow::ensure!(args.attempts > 0, "--attempts must be at least 1");
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate > 0.0 && rate.is_finite(),
            "--rate must be a positive number of appends per second"
        );
    }
    let environment = run::environment();
    let runs = if let Some(path) = &args.cluster_json {
        run_all(&args, &Cluster::from_json(path)?).await?
    } else if !args.urls.is_empty() {
        // Known only by URL: without --verifier-key, trust on first use (load generation only).
        let verifier_key = match &args.verifier_key {
            Some(key) => key.clone(),
            None => Cluster::served_key(&args.urls[0]).await?,
        };
        let mut cluster = Cluster::default();
        (cluster.urls, cluster.verifier_key) = (args.urls.clone(), verifier_key);
        run_all(&args, &cluster).await?
    } else {
        let run = async |cluster: &Cluster| run_all(&args, cluster).await;
        args.run.on_clusters(&[], None, run).await?
    };
    let report = serde_json::json!({ "environment": environment, "runs": runs });
    args.run.finish(&report, table, true)
}

/// Runs once per client count on `cluster`, printing each run.
pub(crate) async fn run_all(
    args: &AppendsArgs,
    cluster: &Cluster,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let once = async |clients| run_once(args, cluster, clients).await;
    args.run.each(COLUMNS, once).await
}

/// Pre-signed appends to one cluster, each answer verified against its log key (and witness
/// policy). Client i talks to node i mod n.
#[derive(Debug)]
pub(crate) struct AppendLoad {
    pub(crate) signed: Signed,
    pub(crate) verifier: ResponseVerifier,
    urls: Vec<String>,
    timeout: Duration,
    attempts: u32,
}

impl AppendLoad {
    /// Pre-signs `count` requests on every core, for `cluster`.
    pub(crate) fn presign(
        cluster: &Cluster,
        count: usize,
        timeout: Duration,
        attempts: u32,
    ) -> anyhow::Result<AppendLoad> {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Ok(AppendLoad {
            signed: tokio::task::block_in_place(|| crate::workload::generate(count, threads))?,
            verifier: ResponseVerifier::for_cluster(cluster)?,
            urls: cluster.urls.clone(),
            timeout,
            attempts,
        })
    }
}

impl Workload for AppendLoad {
    /// The URL of the node the client talks to.
    type Client = String;
    type Answer = (usize, Answer);
    // Retries wait inside `issue`; a final failure moves on to the next entry at once.
    const PAUSE_AFTER_ERROR: Duration = Duration::ZERO;

    async fn prepare(&self, id: usize) -> anyhow::Result<String> {
        Ok(self.urls[id % self.urls.len()].clone())
    }

    /// Submits pre-signed request `index`, retrying what is safe to retry: 429 and 503 (after
    /// the `Retry-After` the node asks for, at most 5 s) and transport failures.
    async fn issue(
        &self,
        url: &mut String,
        index: usize,
        context: &Context<'_>,
    ) -> Result<(usize, Answer), Failure> {
        let request = self.signed.requests.get(index).ok_or(Failure::Exhausted)?;
        let url = format!("{url}/api/v2/log/entries");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = net::send(&url, Some(request.body.clone()), None, self.timeout).await;
            let (kind, wait) = match sent {
                Ok(answer) if matches!(answer.status, 200 | 201) => return Ok((index, answer)),
                Ok(answer) if matches!(answer.status, 429 | 503) => (
                    format!("http {}", answer.status),
                    Duration::from_secs(net::retry_after(&answer).unwrap_or(1).min(5)),
                ),
                Ok(answer) => return Err(Failure::Error(format!("http {}", answer.status))),
                Err(kind) => (kind.to_string(), Duration::from_millis(50)),
            };
            if attempts >= self.attempts {
                return Err(Failure::Error(kind));
            }
            context.retry(&kind);
            tokio::time::sleep(wait).await;
        }
    }

    /// Verifies the answer to request `index`: a verified 200 is a duplicate answer.
    fn verify(&self, _: &mut String, (index, answer): (usize, Answer)) -> Result<Done, String> {
        let request = self
            .signed
            .requests
            .get(index)
            .ok_or("verify: no such request")?;
        match self.verifier.verify(&answer.body, &request.leaf_hash) {
            Ok(_) => Ok(Done {
                label: "appends",
                write: true,
                duplicate: answer.status == 200,
            }),
            Err(error) => Err(error.kind().to_string()),
        }
    }
}

pub(crate) async fn run_once(
    args: &AppendsArgs,
    cluster: &Cluster,
    clients: usize,
) -> anyhow::Result<serde_json::Value> {
    let nodes = cluster.urls.len();
    let total_seconds = args.run.warmup + args.run.duration;
    // A request count, far below usize::MAX for any sensible rate and duration; `as` saturates
    // for absurd inputs instead of wrapping.
    #[allow(clippy::cast_possible_truncation)]
    let presign_count = args.presign.unwrap_or_else(|| match args.rate {
        Some(rate) => (rate * total_seconds * 1.05).ceil() as usize + clients,
        None => (CLOSED_LOOP_PRESIGN_RATE * total_seconds).ceil() as usize,
    });
    eprintln!(
        "{nodes} node(s), {clients} clients: pre-signing {presign_count} hashedrekord requests ..."
    );
    let load = AppendLoad::presign(cluster, presign_count, args.run.timeout(), args.attempts)?;
    let signed = &load.signed;
    let (presigned, rate) = (signed.requests.len(), signed.signing_rate);
    let (request_bytes, leaf_bytes) = (signed.request_bytes, signed.leaf_bytes);
    eprintln!(
        "  signed {presigned} requests at {rate:.0}/s; request {request_bytes} bytes, log entry \
         {leaf_bytes} bytes"
    );
    let load = Arc::new(load);
    let mut phases = args.run.phases(clients, "appends");
    phases.rate = args.rate;
    let measured = run::measure(&load, &phases, Target::cluster(cluster)).await?;
    let window = measured.window;
    if measured.exhausted {
        eprintln!(
            "warning: all {presigned} pre-signed requests were used before the window ended; \
             the window was cut to {:.1} s (raise --presign)",
            window.as_secs_f64()
        );
    }
    let (ok, latencies) = measured.total(|_| true);
    let (metrics_before, metrics_after) = &measured.metrics;
    let (mode, verified) = (
        args.rate.map_or("closed", |_| "open"),
        load.verifier.checkpoint_signatures_verified(),
    );
    // `batches`: the Raft batches the leader proposed during the window (its own histograms).
    Ok(measured.with(serde_json::json!({
        "nodes": nodes, "mode": mode, "offered_rate": args.rate, "entry_kind": "hashedrekord",
        "request_bytes": request_bytes, "leaf_bytes": leaf_bytes, "fsync": FSYNC,
        "sequencer": cluster.sequencer, "appends_per_second": stats::per_second(ok, window),
        "verified_appends": ok, "duplicate_answers": measured.counts.duplicates,
        "latency": latencies.summary(), "presigned": presigned,
        "presigned_exhausted": measured.exhausted, "presign_per_second": rate,
        "checkpoint_signatures_verified": verified, "node_usage": measured.processes,
        "batches": batch_stats(metrics_before, metrics_after, window),
    })))
}

/// The leader's batches during the window. Only the leader's histograms describe real
/// batches: a follower's sequencer also pools submissions and proposes them, but the proposal
/// fails with "forward to leader" and each entry is then forwarded on its own, so its
/// `cairn_batch_leaves` counts attempts, not Raft entries.
fn batch_stats(
    before: &[Option<String>],
    after: &[Option<String>],
    window: Duration,
) -> Option<serde_json::Value> {
    let leader = (after.iter()).position(|text| text.as_deref().is_some_and(run::is_leader))?;
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
    // `leader`: which node (1-based, in URL order) led at the end of the window; the
    // `_at_most` figures are bucket upper bounds ("at most this many leaves" for half / 99% of
    // the batches).
    Some(serde_json::json!({
        "leader": leader + 1, "batches": leaves.count,
        "batches_per_second": leaves.count / window.as_secs_f64().max(1e-9),
        "mean_leaves": leaves.mean(), "p50_leaves_at_most": leaves.quantile_bound(0.5),
        "p99_leaves_at_most": leaves.quantile_bound(0.99), "commit_mean_ms": commit.mean() * 1000.0,
        "commit_p50_ms_at_most": commit.quantile_bound(0.5) * 1000.0,
        "commit_p99_ms_at_most": commit.quantile_bound(0.99) * 1000.0,
    }))
}

/// The columns of the `appends` table (also the suite report's), one row per run.
pub(crate) const COLUMNS: &str = "nodes=nodes | clients=clients | appends/s=appends_per_second:0 \
    | p50 ms=latency.p50_ms:1 | p90 ms=latency.p90_ms:1 | p99 ms=latency.p99_ms:1 \
    | max ms=latency.max_ms:1 | errors=errors:sum | retries=retries:sum \
    | batch mean=batches.mean_leaves:1 | commit mean ms=batches.commit_mean_ms:2 \
    | node CPU %=node_usage:cpu | bench CPU %=bench_usage.cpu_percent:0 \
    | other CPU %=other_cpu_percent:0 | leader's hottest code=profile:top";

pub(crate) fn table(report: &serde_json::Value) -> String {
    stats::table(COLUMNS, report["runs"].as_array().into_iter().flatten())
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
        assert_eq!(stats["leader"], 2);
        for (key, want) in [
            ("batches", 10.0),
            ("batches_per_second", 5.0),
            ("mean_leaves", 10.0),
            ("commit_mean_ms", 10.0),
        ] {
            assert!((stats[key].as_f64().unwrap() - want).abs() < 1e-9, "{key}");
        }
        assert!(batch_stats(&before, &[None, None, None], Duration::from_secs(1)).is_none());
    }
}
