//! `cairn-bench witnessing`: appends on a cluster that publishes a checkpoint only once a quorum
//! of witnesses cosigned it, with the rounds from the nodes' metrics and the witnesses' CPU.
//! The nodes are `cairn-node dev --witness-policy`; each witness is a `cairn witness serve`
//! process, so its CPU is measured apart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tokio::net::TcpStream;

use crate::appends::AppendsArgs;
use crate::cluster::{Cluster, PromHistogram, Sample, Usage, find_binary};
use crate::run::{self, RunArgs};
use crate::stats;

/// The `witnessing` subcommand's arguments (also the settings `cairn-bench report` passes).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct WitnessingArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    pub(crate) nodes: u16,
    /// Witnesses, each a separate process.
    #[arg(long, default_value_t = 3)]
    pub(crate) witnesses: u16,
    /// Cosignatures a checkpoint needs before it is published.
    #[arg(long, default_value_t = 2)]
    pub(crate) quorum: u16,
}

/// Starts a `cairn-node dev` cluster whose nodes publish a checkpoint only with `quorum` of the
/// witnesses' cosignatures (`dev --witness-policy`), then the witnesses; returns the cluster,
/// which stops them too, and their process ids.
async fn start(
    args: &WitnessingArgs,
    node_bin: &Path,
    parent: &Path,
) -> anyhow::Result<(Cluster, Vec<u32>)> {
    let dir = crate::cluster::fresh_dir(parent, "witnessing")?;
    let ports = crate::cluster::free_ports(usize::from(args.witnesses))?;
    let cairn = find_binary(
        "cairn",
        "build it with `cargo build --release -p client --bin cairn`",
    )?;
    // Each witness's key, made by `cairn witness init`, and its URL: the policy's witness,
    // group and quorum lines, to which `dev` adds a `log` line per log.
    let mut witnesses = String::new();
    for (n, port) in (1..).zip(&ports) {
        let name = format!("witness.bench/w{n}");
        let init = Command::new(&cairn)
            .args(["witness", "init", "--name", &name, "--dir"])
            .arg(dir.join(format!("witness-{n}")))
            .output()
            .context("running cairn witness init")?;
        let error = String::from_utf8_lossy(&init.stderr);
        ensure!(init.status.success(), "cairn witness init: {error}");
        let vkey = String::from_utf8(init.stdout)?;
        let line = format!("witness w{n} {} http://127.0.0.1:{port}\n", vkey.trim());
        witnesses.push_str(&line);
    }
    let names: Vec<String> = (1..=args.witnesses).map(|i| format!("w{i}")).collect();
    let (quorum, names) = (args.quorum, names.join(" "));
    witnesses.push_str(&format!("group quorum {quorum} {names}\nquorum quorum\n"));
    let witnesses_path = dir.join("witnesses.txt");
    std::fs::write(&witnesses_path, witnesses)?;
    let base_port = crate::cluster::free_base_port(args.nodes)?;
    let nodes = (args.nodes, base_port);
    let policy = Some(witnesses_path.as_path());
    let mut cluster = Cluster::start_in(node_bin, nodes, &dir, &[], policy, args.run.keep_data)?;
    // The witnesses: `cairn witness serve` processes (one runtime thread each, as light as a
    // witness can be) with the policy `dev` wrote; until they listen the nodes retry.
    let policy_path = dir.join("witness-policy.txt");
    let mut witness_pids = Vec::new();
    for (n, port) in (1..).zip(&ports) {
        let witness_dir = dir.join(format!("witness-{n}"));
        let log = std::fs::File::create(witness_dir.join("witness.log"))?;
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(&cairn)
            .args(["witness", "serve", "--listen", &listen, "--dir"])
            .arg(&witness_dir)
            .arg("--policy")
            .arg(&policy_path)
            .envs([("RUST_LOG", "warn"), ("TOKIO_WORKER_THREADS", "1")])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting a witness")?;
        witness_pids.push(child.id());
        cluster.adopt(child);
        // Any path answers once the server listens (404 is an answer; `get` wants 2xx, so
        // probe the TCP port instead).
        let (started, listening) = (Instant::now(), || TcpStream::connect(("127.0.0.1", *port)));
        while listening().await.is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("witness {n} did not listen within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cluster.witness_policy = Some(std::fs::read_to_string(&policy_path)?);
    Ok((cluster, witness_pids))
}

/// The witnessing round histogram summed over the nodes (only the leader runs rounds).
async fn rounds(urls: &[String]) -> PromHistogram {
    crate::run::scrape(urls)
        .await
        .iter()
        .flatten()
        .filter_map(|text| PromHistogram::parse(text, "cairn_witness_cosign_seconds"))
        .reduce(|sum, one| PromHistogram {
            buckets: (sum.buckets.iter().zip(&one.buckets))
                .map(|((bound, a), (_, b))| (*bound, a + b))
                .collect(),
            sum: sum.sum + one.sum,
            count: sum.count + one.count,
        })
        .unwrap_or_default()
}

/// Starts the witnesses and the cluster, runs once per client count, stops everything.
pub(crate) async fn witnessing(args: WitnessingArgs) -> anyhow::Result<()> {
    args.run.check()?;
    anyhow::ensure!((1..=7).contains(&args.nodes), "--nodes must be 1 to 7");
    anyhow::ensure!(
        (1..=9).contains(&args.witnesses) && (1..=args.witnesses).contains(&args.quorum),
        "--witnesses must be 1 to 9 and --quorum 1 to --witnesses"
    );
    let node_bin = args.run.node_bin()?;
    let parent = args.run.parent();
    let environment = run::environment();
    eprintln!(
        "starting {} witnesses and a {}-node cluster publishing with {} of their cosignatures",
        args.witnesses, args.nodes, args.quorum
    );
    let (cluster, witness_pids) = start(&args, &node_bin, &parent).await?;
    let appends = AppendsArgs::with(args.run.clone());
    let policy = cluster.witness_policy.clone().unwrap_or_default();
    let once = async |clients| {
        let rounds_before = rounds(&cluster.urls).await;
        let cpu_before = Sample::take(&witness_pids);
        let started = Instant::now();
        let run = crate::appends::run_once(&appends, &cluster, clients).await?;
        let span = started.elapsed();
        let cpu_after = Sample::take(&witness_pids);
        let delta = rounds(&cluster.urls).await.since(&rounds_before);
        let usage = Usage::between(&cpu_before, &cpu_after, span, "witness ");
        let witness_cpu_seconds: f64 = usage
            .processes
            .iter()
            .map(|u| u.cpu_percent / 100.0 * span.as_secs_f64())
            .sum();
        // Rounds (on the leader, each asks every witness once) happen only under load
        // (warm-up and window), not while pre-signing; a round runs from the signed
        // checkpoint to holding the quorum's cosignatures.
        let load_s = stats::number(&run, "warmup_s") + stats::number(&run, "measured_s");
        let cosignatures = delta.count * f64::from(args.witnesses);
        let witnessing = (delta.count > 0.0).then(|| {
            serde_json::json!({
                "rounds": delta.count, "rounds_per_second": delta.count / load_s.max(1e-9),
                "round_mean_ms": delta.mean() * 1000.0,
                "round_p50_ms_at_most": delta.quantile_bound(0.5) * 1000.0,
                "round_p99_ms_at_most": delta.quantile_bound(0.99) * 1000.0,
                "witness_cpu_seconds": witness_cpu_seconds,
                "witness_cpu_ms_per_cosignature": witness_cpu_seconds * 1000.0 / cosignatures,
                "span_s": span.as_secs_f64(),
            })
        });
        // The verified appends (as `appends` reports them) and the witnessing figures.
        anyhow::Ok(serde_json::json!({ "appends": run, "witnessing": witnessing }))
    };
    let result = args.run.each(COLUMNS, once).await;
    eprintln!("stopping the cluster and the witnesses");
    tokio::task::block_in_place(|| drop(cluster));
    let (witnesses, quorum, runs) = (args.witnesses, args.quorum, result?);
    let report = serde_json::json!({
        "environment": environment, "witnesses": witnesses, "quorum": quorum, "policy": policy,
        "runs": runs,
    });
    args.run.finish(&report, table, true)
}

/// The columns of the `witnessing` table (also the suite report's).
const COLUMNS: &str = "clients=appends.clients | witnessed appends/s=appends.appends_per_second:0 \
    | p50 ms=appends.latency.p50_ms:1 | p90 ms=appends.latency.p90_ms:1 \
    | p99 ms=appends.latency.p99_ms:1 | max ms=appends.latency.max_ms:1 \
    | errors=appends.errors:sum | rounds/s=witnessing.rounds_per_second:0 \
    | round mean ms=witnessing.round_mean_ms:2 \
    | round p99 ms at most=witnessing.round_p99_ms_at_most \
    | witness CPU ms/cosignature=witnessing.witness_cpu_ms_per_cosignature:2";

pub(crate) fn table(report: &serde_json::Value) -> String {
    crate::stats::table(COLUMNS, report["runs"].as_array().into_iter().flatten())
}
