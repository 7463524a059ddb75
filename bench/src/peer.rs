//! `cairn-bench peer`: Cairn's verified appends and etcd's puts, side by side: the same machine
//! and disk, member count, client counts (client i talks to member i mod n) and payload size (an
//! etcd value is as long as a Cairn log entry). They run one after the other, never at once;
//! the result per client count is Cairn appends/s ÷ etcd puts/s.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use crate::appends::{AppendsArgs, RunResult};
use crate::etcd::{self, EtcdCluster, EtcdRun};
use crate::run::{Environment, RunArgs};

/// The `peer` subcommand's arguments (also the settings `cairn-bench report` passes).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct PeerArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Cairn nodes and etcd members.
    #[arg(long, default_value_t = 3)]
    pub(crate) members: u16,
    /// etcd value size in bytes. Default: the mean size of the Cairn log entries of the same
    /// run (a hashedrekord entry, about 488 bytes).
    #[arg(long)]
    pub(crate) value_bytes: Option<usize>,
    /// The etcd binary. Default: `etcd` on PATH (Debian: `apt-get install -y etcd-server`).
    #[arg(long)]
    pub(crate) etcd_bin: Option<PathBuf>,
}

/// One client count's comparison.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Ratio {
    pub(crate) clients: usize,
    pub(crate) cairn_appends_per_second: f64,
    pub(crate) etcd_puts_per_second: f64,
    /// Cairn appends/s ÷ etcd puts/s (the target is at least 3).
    pub(crate) ratio: f64,
    pub(crate) cairn_p99_ms: f64,
    pub(crate) etcd_p99_ms: f64,
}

/// The whole comparison.
#[derive(Debug, Serialize)]
pub(crate) struct PeerReport {
    pub(crate) environment: Environment,
    pub(crate) etcd_version: String,
    /// PIDs of etcd processes this benchmark did not start (left alone; idle unless used).
    pub(crate) foreign_etcd_pids: Vec<u32>,
    pub(crate) cairn: Vec<RunResult>,
    pub(crate) etcd: Vec<EtcdRun>,
    pub(crate) ratios: Vec<Ratio>,
}

/// Runs Cairn then etcd for every client count and returns both with their ratios.
pub(crate) async fn run_peer(args: &PeerArgs) -> anyhow::Result<PeerReport> {
    args.run.check()?;
    anyhow::ensure!((1..=7).contains(&args.members), "--members must be 1 to 7");
    if let Some(bytes) = args.value_bytes {
        anyhow::ensure!(
            (16..=1_048_576).contains(&bytes),
            "--value-bytes must be 16 to 1048576"
        );
    }
    // Fail before anything starts if etcd is missing.
    let etcd_bin = match &args.etcd_bin {
        Some(path) => path.clone(),
        None => etcd::find_etcd_binary()?,
    };
    let etcd_version = etcd::etcd_version(&etcd_bin)?;
    let environment = Environment::read();
    eprintln!("peer: {etcd_version}");

    // Cairn first.
    let appends = AppendsArgs::with(args.run.clone());
    let cairn = args.run.start_cluster(args.members, &[])?;
    let mut cairn_runs = Vec::new();
    let result = crate::appends::run_all(&appends, &cairn, &mut cairn_runs).await;
    eprintln!("stopping the Cairn cluster");
    tokio::task::block_in_place(|| drop(cairn));
    result?;

    // Then etcd, with the Cairn entries' size.
    let value_bytes = args
        .value_bytes
        .or_else(|| cairn_runs.first().map(|run| run.leaf_bytes))
        .context("no Cairn run to take the entry size from")?;
    let foreign_etcd_pids = etcd::foreign_etcd_pids(&[]);
    if !foreign_etcd_pids.is_empty() {
        eprintln!(
            "note: etcd processes not started by this benchmark are running ({foreign_etcd_pids:?}); \
             they are left alone (ours use other ports and directories) and their CPU shows as \
             \"other\""
        );
    }
    eprintln!(
        "starting a {}-member etcd cluster ({}), values of {value_bytes} bytes",
        args.members,
        etcd_bin.display()
    );
    let mut etcd_cluster =
        EtcdCluster::start(&etcd_bin, usize::from(args.members), &args.run.parent()).await?;
    if args.run.keep_data {
        etcd_cluster.keep_data();
        eprintln!("etcd data kept in {}", etcd_cluster.data_dir().display());
    }
    let mut etcd_runs = Vec::new();
    let result = async {
        for &clients in &args.run.clients {
            eprintln!("etcd, {clients} clients");
            let run = etcd::run_puts(
                &etcd_cluster,
                clients,
                value_bytes,
                std::time::Duration::from_secs_f64(args.run.warmup),
                std::time::Duration::from_secs_f64(args.run.duration),
            )
            .await?;
            crate::run::print_run(etcd::COLUMNS, &run);
            etcd_runs.push(run);
        }
        anyhow::Ok(())
    }
    .await;
    eprintln!("stopping the etcd cluster");
    tokio::task::block_in_place(|| drop(etcd_cluster));
    result?;

    let ratios = cairn_runs
        .iter()
        .zip(&etcd_runs)
        .map(|(cairn, etcd)| Ratio {
            clients: cairn.window.clients,
            cairn_appends_per_second: cairn.appends_per_second,
            etcd_puts_per_second: etcd.puts_per_second,
            ratio: if etcd.puts_per_second > 0.0 {
                cairn.appends_per_second / etcd.puts_per_second
            } else {
                0.0
            },
            cairn_p99_ms: cairn.latency.p99_ms,
            etcd_p99_ms: etcd.latency.p99_ms,
        })
        .collect();
    Ok(PeerReport {
        environment,
        etcd_version,
        foreign_etcd_pids,
        cairn: cairn_runs,
        etcd: etcd_runs,
        ratios,
    })
}

/// The `peer` subcommand: run, print, write JSON.
pub(crate) async fn peer(args: PeerArgs) -> anyhow::Result<()> {
    let report = run_peer(&args).await?;
    args.run.finish(&report, table)
}

/// The Markdown table of a `peer` report (also the suite report's): one row per client count.
pub(crate) fn table(report: &serde_json::Value) -> String {
    let list = |key: &str| report[key].as_array().cloned().unwrap_or_default();
    let rows: Vec<serde_json::Value> = (list("ratios").into_iter().zip(list("cairn")))
        .zip(list("etcd"))
        .map(|((ratio, cairn), etcd)| serde_json::json!({ "ratio": ratio, "cairn": cairn, "etcd": etcd }))
        .collect();
    crate::stats::table(
        "clients=ratio.clients | Cairn appends/s=ratio.cairn_appends_per_second:0 \
         | Cairn p50 ms=cairn.latency.p50_ms:1 | Cairn p99 ms=cairn.latency.p99_ms:1 \
         | etcd puts/s=ratio.etcd_puts_per_second:0 | etcd p50 ms=etcd.latency.p50_ms:1 \
         | etcd p99 ms=etcd.latency.p99_ms:1 | Cairn ÷ etcd=ratio.ratio:2 \
         | Cairn node CPU %=cairn.node_usage:cpu | etcd member CPU %=etcd.member_usage:cpu \
         | other CPU % (Cairn)=cairn.other_cpu_percent:0 \
         | other CPU % (etcd)=etcd.other_cpu_percent:0",
        &rows,
    )
}
