//! `cairn-bench witnessing`: appends on a cluster that publishes a checkpoint only once a quorum
//! of witnesses cosigned it, with the rounds from the nodes' metrics and the witnesses' CPU.
//! The nodes are `cairn-node dev --witness-policy`; each witness is a `cairn witness serve`
//! process, so its CPU is measured apart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tokio::net::TcpStream;

use crate::appends::AppendsArgs;
use crate::cluster::{
    Cluster, PromHistogram, Sample, Started, Usage, find_binary, free_ports, fresh_dir,
};
use crate::run::{self, RunArgs};
use crate::stats;

/// The `witnessing` subcommand's arguments (also the settings `cairn-bench report` passes).
#[derive(clap::Args, Clone, Debug)]
#[command(mut_arg("nodes", |arg| arg.help("Nodes in the cluster")))]
pub(crate) struct WitnessingArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Witnesses, each a separate process.
    #[arg(long, default_value_t = 3)]
    pub(crate) witnesses: u16,
    /// Cosignatures a checkpoint needs before it is published.
    #[arg(long, default_value_t = 2)]
    pub(crate) quorum: u16,
}

/// Makes each witness's key with `cairn witness init` in a fresh directory (whose processes
/// stop with it), and there `witnesses.txt`: the witness, group and quorum lines of the policy
/// the nodes publish under, to which `dev --witness-policy` adds a `log` line per log. Returns
/// the directory and the witnesses' ports.
fn init(args: &WitnessingArgs, cairn: &Path) -> anyhow::Result<(Started, Vec<u16>)> {
    let dir = fresh_dir(&args.run.parent(), "witnesses")?;
    let witnesses = Started::new(dir, args.run.keep_data);
    let ports = free_ports(usize::from(args.witnesses))?;
    let mut lines = String::new();
    for (n, port) in (1..).zip(&ports) {
        let name = format!("witness.bench/w{n}");
        let init = Command::new(cairn)
            .args(["witness", "init", "--name", &name, "--dir"])
            .arg(witnesses.dir.join(format!("witness-{n}")))
            .output()
            .context("running cairn witness init")?;
        let error = String::from_utf8_lossy(&init.stderr);
        ensure!(init.status.success(), "cairn witness init: {error}");
        let vkey = String::from_utf8(init.stdout)?;
        let line = format!("witness w{n} {} http://127.0.0.1:{port}\n", vkey.trim());
        lines.push_str(&line);
    }
    let names: Vec<String> = (1..=args.witnesses).map(|i| format!("w{i}")).collect();
    let (quorum, names) = (args.quorum, names.join(" "));
    lines.push_str(&format!("group quorum {quorum} {names}\nquorum quorum\n"));
    std::fs::write(witnesses.dir.join("witnesses.txt"), lines)?;
    Ok((witnesses, ports))
}

/// Starts the witnesses: `cairn witness serve` processes (one runtime thread each, as light as
/// a witness can be) with the cluster's `policy`; until they listen the nodes retry.
async fn serve(
    witnesses: &mut Started,
    ports: &[u16],
    cairn: &Path,
    policy: &str,
) -> anyhow::Result<()> {
    let policy_path = witnesses.dir.join("witness-policy.txt");
    std::fs::write(&policy_path, policy)?;
    for (n, port) in (1..).zip(ports) {
        let witness_dir = witnesses.dir.join(format!("witness-{n}"));
        let log = std::fs::File::create(witness_dir.join("witness.log"))?;
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(cairn)
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
        witnesses.children.push(child);
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
    Ok(())
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
    let nodes = args.run.one_size()?;
    anyhow::ensure!(
        (1..=9).contains(&args.witnesses) && (1..=args.witnesses).contains(&args.quorum),
        "--witnesses must be 1 to 9 and --quorum 1 to --witnesses"
    );
    let cairn = find_binary(
        "cairn",
        "build it with `cargo build --release -p client --bin cairn`",
    )?;
    let environment = run::environment();
    let (witnesses, quorum) = (args.witnesses, args.quorum);
    eprintln!(
        "starting {witnesses} witnesses and a {nodes}-node cluster publishing with {quorum} of \
         their cosignatures"
    );
    let (mut processes, ports) = init(&args, &cairn)?;
    let witness_list = processes.dir.join("witnesses.txt");
    let appends = AppendsArgs::with(args.run.clone());
    let mut policy = String::new();
    let runs = async |cluster: &Cluster| {
        policy = cluster.witness_policy.clone().unwrap_or_default();
        serve(&mut processes, &ports, &cairn, &policy).await?;
        let witness_pids: Vec<u32> = processes.children.iter().map(Child::id).collect();
        let once = async |clients| {
            let rounds_before = rounds(&cluster.urls).await;
            let cpu_before = Sample::take(&witness_pids);
            let started = Instant::now();
            let run = crate::appends::run_once(&appends, cluster, clients).await?;
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
            let cosignatures = delta.count * f64::from(witnesses);
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
        args.run.each(COLUMNS, once).await
    };
    let runs = args.run.on_clusters(&[], Some(&witness_list), runs).await;
    tokio::task::block_in_place(|| drop(processes));
    let report = serde_json::json!({
        "environment": environment, "witnesses": witnesses, "quorum": quorum, "policy": policy,
        "runs": runs?,
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
