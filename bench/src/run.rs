//! What every load subcommand shares: the run arguments ([`RunArgs`]) and the one phase loop
//! ([`measure`]) that drives a [`Workload`] (prepare, issue, verify) through warm-up and the
//! window, closed loop or open loop (`--rate`: request k is due at `start + k / rate` and its
//! latency counts from then, so a stalled server shows as latency). Only verified operations
//! finished inside the window count.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::time::Instant;

use crate::cluster::{self, Cluster, ProcessUsage, Sample, Usage};
use crate::stats::{Latencies, Tally};

/// The flags every load subcommand takes. A subcommand whose defaults differ says so with
/// `mut_arg` (`appends` and `certificates` run 64 clients by default).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct RunArgs {
    /// Concurrent clients, one run per value (comma-separated). Each client has one request in
    /// flight, over a shared pool of keep-alive HTTP/1.1 connections; client i talks to node
    /// i mod n, and followers forward to the leader as they would for real users.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    pub(crate) clients: Vec<usize>,
    /// Cluster sizes to start, one after the other (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "3")]
    pub(crate) nodes: Vec<u16>,
    /// Seconds of measurement per run.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Seconds of load before measuring (connections, leader caches and batch sizes settle).
    #[arg(long, default_value_t = 3.0)]
    pub(crate) warmup: f64,
    /// Seconds to wait for one answer before giving up on that attempt.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) timeout: f64,
    /// The cairn-node binary. Default: next to this binary (same cargo target dir), then PATH.
    #[arg(long)]
    pub(crate) node_bin: Option<PathBuf>,
    /// Where started clusters keep their data. Default: the system temp directory. It should be
    /// on the disk you mean to measure: every Raft commit is fsynced there.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep started clusters' data directories (node logs, databases) after the run.
    #[arg(long)]
    pub(crate) keep_data: bool,
    /// Worker threads of the benchmark's own runtime (clients and verification).
    #[arg(long, default_value_t = 2)]
    pub(crate) client_threads: usize,
    /// Write every run's results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write a Markdown table of the runs to this file.
    #[arg(long)]
    pub(crate) markdown: Option<PathBuf>,
    /// Sample the Cairn leader's CPU with `perf record` over each run's measured window and put
    /// the hottest crates and symbols in the results (needs Debian's linux-perf and a known
    /// pid: a started cluster or --cluster-json).
    #[arg(long)]
    pub(crate) profile: bool,
}

impl RunArgs {
    /// Refuses settings no run can use.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.duration > 0.0 && self.warmup >= 0.0 && self.timeout > 0.0,
            "--duration and --timeout must be positive, --warmup not negative"
        );
        anyhow::ensure!(
            !self.clients.is_empty() && !self.clients.contains(&0),
            "--clients must be at least 1"
        );
        anyhow::ensure!(
            !self.nodes.is_empty() && self.nodes.iter().all(|n| (1..=9).contains(n)),
            "--nodes must be 1 to 9 (cairn-node dev)"
        );
        Ok(())
    }

    /// The one cluster size of a subcommand that starts a single cluster.
    pub(crate) fn one_size(&self) -> anyhow::Result<u16> {
        match self.nodes[..] {
            [nodes] => Ok(nodes),
            _ => anyhow::bail!("this subcommand starts one cluster: give it one size"),
        }
    }

    /// The benchmark's own runtime, with `--client-threads` workers.
    pub(crate) fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.client_threads.max(1))
            .enable_all()
            .build()
    }

    pub(crate) fn node_bin(&self) -> anyhow::Result<PathBuf> {
        match &self.node_bin {
            Some(path) => Ok(path.clone()),
            None => cluster::find_binary(
                "cairn-node",
                "build it with `cargo build --release -p node --bin cairn-node`, or pass --node-bin",
            ),
        }
    }

    /// The directory started clusters go under.
    pub(crate) fn parent(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// Runs `body` on a `cairn-node dev` cluster of each --nodes size in turn, started with
    /// these environment variables (and witnessed under `witnesses`, a `dev --witness-policy`
    /// file, if given) and stopped after it; returns all their results.
    pub(crate) async fn on_clusters<T>(
        &self,
        env: &[(&str, &str)],
        witnesses: Option<&Path>,
        mut body: impl AsyncFnMut(&Cluster) -> anyhow::Result<Vec<T>>,
    ) -> anyhow::Result<Vec<T>> {
        let node_bin = self.node_bin()?;
        let mut results = Vec::new();
        for &nodes in &self.nodes {
            eprintln!("starting {nodes}-node cluster ({})", node_bin.display());
            let dir = cluster::fresh_dir(&self.parent(), &format!("{nodes}n"))?;
            let base_port = cluster::free_base_port(nodes)?;
            let (sizes, keep) = ((nodes, base_port), self.keep_data);
            let cluster = Cluster::start_in(&node_bin, sizes, &dir, env, witnesses, keep)?;
            if self.keep_data {
                eprintln!("cluster data kept in {}", dir.display());
            }
            let result = body(&cluster).await;
            eprintln!("stopping the {nodes}-node cluster");
            tokio::task::block_in_place(|| drop(cluster));
            results.extend(result?);
        }
        Ok(results)
    }

    /// The phases of one run with `clients` clients and no rate, counting `unit`.
    pub(crate) fn phases(&self, clients: usize, unit: &'static str) -> Phases {
        Phases {
            clients,
            warmup: Duration::from_secs_f64(self.warmup),
            duration: Duration::from_secs_f64(self.duration),
            rate: None,
            profile: self.profile,
            unit,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// Runs `once` for each `--clients` value, printing each run as a row of `columns`.
    pub(crate) async fn each<T: Serialize>(
        &self,
        columns: &str,
        mut once: impl AsyncFnMut(usize) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        let mut runs = Vec::new();
        for &clients in &self.clients {
            let run = once(clients).await?;
            print_run(columns, &run);
            runs.push(run);
        }
        Ok(runs)
    }

    /// Writes the report to `--json` and its Markdown table (`table` of its JSON) to
    /// `--markdown`, and prints the table unless it is the one row `print_run` already printed.
    pub(crate) fn finish(
        &self,
        report: &impl Serialize,
        table: crate::stats::Table,
        rows_printed: bool,
    ) -> anyhow::Result<()> {
        let value = serde_json::to_value(report)?;
        let text = table(&value);
        // A table is a blank line, the header, the rule and a line per row.
        if !rows_printed || text.lines().count() > 4 {
            print!("{text}");
        }
        if let Some(path) = &self.json {
            std::fs::write(path, serde_json::to_vec_pretty(&value)?)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("results written to {}", path.display());
        }
        if let Some(path) = &self.markdown {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Prints one run as a row of its subcommand's table (`columns`, as [`crate::stats::table`]
/// takes them), its errors and retries by kind, and each kind of operation of a mixed run.
pub(crate) fn print_run(columns: &str, run: &impl Serialize) {
    let Ok(run) = serde_json::to_value(run) else {
        return;
    };
    print!("{}", crate::stats::table(columns, [&run]));
    for key in ["errors", "retries"] {
        if let Some(kinds) = run[key].as_object().filter(|kinds| !kinds.is_empty()) {
            let kinds: Vec<String> = kinds
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect();
            println!("{key}: {}", kinds.join(", "));
        }
    }
    for (kind, result) in run["by_kind"].as_object().into_iter().flatten() {
        let ms = |key: &str| crate::stats::number(result, &format!("latency.{key}_ms"));
        let per_second = crate::stats::number(result, "per_second");
        let (p50, p99, max) = (ms("p50"), ms("p99"), ms("max"));
        println!("  {kind:<14} {per_second:>8.0}/s  p50 {p50:.2}  p99 {p99:.2}  max {max:.2} ms");
    }
}

/// How one run is driven.
#[derive(Clone, Debug)]
pub(crate) struct Phases {
    pub(crate) clients: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Total offered operations per second (open loop); `None` for closed loop.
    pub(crate) rate: Option<f64>,
    /// Sample the leader's CPU over the window (`--profile`).
    pub(crate) profile: bool,
    /// What the progress line counts ("appends", "reads", "puts").
    pub(crate) unit: &'static str,
}

/// A verified answer: the label it is counted under, whether it was a write (for a mixed
/// workload's progress line), and whether the log answered it as a duplicate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Done {
    pub(crate) label: &'static str,
    pub(crate) write: bool,
    pub(crate) duplicate: bool,
}

impl Done {
    pub(crate) fn read(label: &'static str) -> Done {
        Done {
            label,
            write: false,
            duplicate: false,
        }
    }
}

/// Why an operation did not count.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error of this kind (`http 503`, `verify: proof`, `timeout`).
    Error(String),
    /// The pre-signed requests ran out: this client stops.
    Exhausted,
}

impl From<&str> for Failure {
    fn from(kind: &str) -> Failure {
        Failure::Error(kind.to_string())
    }
}

/// One kind of load, as one client sees it.
pub(crate) trait Workload: Send + Sync + 'static {
    /// A client's own state (its connection, its generator).
    type Client: Send + 'static;
    /// An answer as received, before it is verified.
    type Answer: Send;
    /// How long a client waits after a failed operation, so it does not spin on a broken
    /// connection.
    const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(20);

    /// Sets up client `id`, before the clock starts.
    fn prepare(&self, id: usize) -> impl Future<Output = anyhow::Result<Self::Client>> + Send;

    /// Sends operation `op` (numbered from 0 across all clients) and returns its answer.
    fn issue(
        &self,
        client: &mut Self::Client,
        op: usize,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Answer, Failure>> + Send;

    /// Checks an answer as a client would before it may count it.
    fn verify(&self, client: &mut Self::Client, answer: Self::Answer) -> Result<Done, String>;
}

/// Counters the progress line reads while a run goes on (warm-up included).
#[derive(Debug, Default)]
struct Live {
    ok: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicU64,
}

/// What clients saw inside the measured window: one client's, or a whole run's.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Counts {
    /// The latencies (and so the count) of verified operations, by label.
    #[serde(skip)]
    pub(crate) kinds: BTreeMap<&'static str, Latencies>,
    /// Verified answers that were the log's answer to a duplicate.
    #[serde(skip)]
    pub(crate) duplicates: u64,
    pub(crate) errors: Tally,
    pub(crate) retries: Tally,
}

impl Counts {
    fn merge(&mut self, other: &Counts) {
        for (label, latencies) in &other.kinds {
            self.kinds
                .entry(*label)
                .or_insert_with(Latencies::new)
                .merge(latencies);
        }
        self.duplicates += other.duplicates;
        self.errors.merge(&other.errors);
        self.retries.merge(&other.retries);
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters and a cache, changed in single steps (inserts, clears): a panic elsewhere cannot
    // leave them half-updated, so a poisoned lock still guards correct data.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything the client tasks of one run share.
#[derive(Debug)]
struct State {
    phases: Phases,
    live: Live,
    /// The next operation (closed loop).
    next: AtomicUsize,
    exhausted: AtomicBool,
    /// The window is over (at its end, or earlier when the requests ran out).
    finished: AtomicBool,
    /// Load starts.
    start: Instant,
    /// Measurement starts (after warm-up).
    window_start: Instant,
    /// Measurement and load end.
    end: Instant,
}

impl State {
    fn in_window(&self, at: Instant) -> bool {
        at >= self.window_start && at <= self.end
    }
}

/// What an operation may tell the loop while it runs.
pub(crate) struct Context<'a> {
    state: &'a State,
    stats: &'a Mutex<Counts>,
}

impl Context<'_> {
    /// An attempt failed with `kind` and is being retried.
    pub(crate) fn retry(&self, kind: &str) {
        self.state.live.retries.fetch_add(1, Ordering::Relaxed);
        if self.state.in_window(Instant::now()) {
            lock(self.stats).retries.add(kind);
        }
    }
}

/// What the nodes (or etcd members) under load are, for CPU, memory, metrics and profiles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    /// Cairn node URLs, whose `/metrics` are scraped around the window; empty for etcd.
    pub(crate) urls: &'a [String],
    pub(crate) pids: &'a [u32],
    /// How their usage is named: "node " gives "node 1", "node 2", ...
    pub(crate) name: &'a str,
}

impl<'a> Target<'a> {
    pub(crate) fn cluster(cluster: &'a Cluster) -> Target<'a> {
        Target {
            urls: &cluster.urls,
            pids: &cluster.pids,
            name: "node ",
        }
    }
}

/// One run's measurements: what the subcommand reports in its own words, then what every run
/// reports about its window (serialized, and flattened into each run record by [`Measured::with`]).
#[derive(Debug, Serialize)]
pub(crate) struct Measured {
    #[serde(skip)]
    pub(crate) window: Duration,
    /// The pre-signed requests ran out before the window ended.
    #[serde(skip)]
    pub(crate) exhausted: bool,
    /// The nodes' (or etcd members') CPU and memory over the window.
    #[serde(skip)]
    pub(crate) processes: Vec<ProcessUsage>,
    /// Each node's `/metrics` at the window's start and end.
    #[serde(skip)]
    pub(crate) metrics: (Vec<Option<String>>, Vec<Option<String>>),
    pub(crate) clients: usize,
    pub(crate) warmup_s: f64,
    pub(crate) measured_s: f64,
    #[serde(flatten)]
    pub(crate) counts: Counts,
    pub(crate) bench_usage: Option<ProcessUsage>,
    /// The whole machine's busy CPU over the window, percent of one core.
    pub(crate) machine_cpu_percent: Option<f64>,
    /// The part of it neither the measured processes nor this benchmark used (other builds).
    pub(crate) other_cpu_percent: Option<f64>,
    /// Where the leader's CPU went during the window (with --profile).
    pub(crate) profile: Option<crate::profile::Profile>,
    /// Verified operations completed in each second since load start (warm-up included).
    pub(crate) timeline: Vec<u64>,
    pub(crate) load_average_before: String,
    pub(crate) load_average_after: String,
}

impl Measured {
    /// A run record: `fields`, then the window's (as `#[serde(flatten)]` adds them).
    pub(crate) fn with(&self, mut fields: serde_json::Value) -> serde_json::Value {
        if let (Some(record), Ok(serde_json::Value::Object(window))) =
            (fields.as_object_mut(), serde_json::to_value(self))
        {
            record.extend(window);
        }
        fields
    }

    /// The count and latencies of every label that `counts`, together.
    pub(crate) fn total(&self, counts: impl Fn(&str) -> bool) -> (u64, Latencies) {
        let mut latencies = Latencies::new();
        for (_, more) in self.counts.kinds.iter().filter(|(label, _)| counts(label)) {
            latencies.merge(more);
        }
        (latencies.count(), latencies)
    }
}

/// Runs `workload` with `phases.clients` clients through warm-up and the window.
pub(crate) async fn measure<W: Workload>(
    workload: &Arc<W>,
    phases: &Phases,
    target: Target<'_>,
) -> anyhow::Result<Measured> {
    let mut clients = Vec::with_capacity(phases.clients);
    for id in 0..phases.clients {
        clients.push(workload.prepare(id).await?);
    }
    let load_before = load_average();
    // A short lead so every client task is spawned before the clock starts.
    let start = Instant::now() + Duration::from_millis(50);
    let state = Arc::new(State {
        phases: phases.clone(),
        live: Live::default(),
        next: AtomicUsize::new(0),
        exhausted: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        start,
        window_start: start + phases.warmup,
        end: start + phases.warmup + phases.duration,
    });
    let mut tasks = Vec::new();
    let mut all_stats = Vec::new();
    for (id, client) in clients.into_iter().enumerate() {
        let stats = Arc::new(Mutex::new(Counts::default()));
        all_stats.push(Arc::clone(&stats));
        tasks.push(tokio::spawn(run_client(
            Arc::clone(workload),
            client,
            id,
            Arc::clone(&state),
            stats,
        )));
    }
    let progress = tokio::spawn(progress(Arc::clone(&state)));
    tokio::time::sleep_until(state.window_start).await;
    let metrics_before = scrape(target.urls).await;
    let profiling = phases
        .profile
        .then(|| start_profile(target, &metrics_before, phases.duration));
    let recording = profiling.transpose()?;
    let before = Sample::take(target.pids);
    let window_started = Instant::now();
    // A run that runs out of requests stops early, once every client has stopped; measure up
    // to that point.
    while Instant::now() < state.end
        && !(state.exhausted.load(Ordering::Relaxed)
            && tasks.iter().all(tokio::task::JoinHandle::is_finished))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = Sample::take(target.pids);
    let window = window_started.elapsed();
    state.finished.store(true, Ordering::Relaxed);
    let metrics_after = scrape(target.urls).await;
    // Answers after the window's end are not counted, so there is nothing to wait for.
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    let timeline = progress.await.unwrap_or_default();
    let profile = recording.map(|recording| tokio::task::block_in_place(|| recording.finish()));
    let profile = profile.transpose()?;
    let usage = Usage::between(&before, &after, window, target.name);
    let mut counts = Counts::default();
    for stats in &all_stats {
        counts.merge(&lock(stats));
    }
    Ok(Measured {
        window,
        exhausted: state.exhausted.load(Ordering::Relaxed),
        processes: usage.processes,
        metrics: (metrics_before, metrics_after),
        clients: phases.clients,
        warmup_s: phases.warmup.as_secs_f64(),
        measured_s: window.as_secs_f64(),
        counts,
        bench_usage: usage.bench,
        machine_cpu_percent: usage.machine,
        other_cpu_percent: usage.other,
        profile,
        timeline,
        load_average_before: load_before,
        load_average_after: load_average(),
    })
}

/// One client: runs until the end of the window, recording into `stats`.
///
/// `stats` is a per-client mutex, locked briefly once per answer and never contended during
/// the run: it lets the loop read the numbers after aborting the task at the window's end
/// without waiting for its in-flight request.
async fn run_client<W: Workload>(
    workload: Arc<W>,
    mut client: W::Client,
    id: usize,
    state: Arc<State>,
    stats: Arc<Mutex<Counts>>,
) {
    tokio::time::sleep_until(state.start).await;
    let mut sequence = 0usize;
    loop {
        // Which operation, and from when its latency counts.
        let (op, due) = match state.phases.rate {
            None => {
                if Instant::now() >= state.end {
                    return;
                }
                (state.next.fetch_add(1, Ordering::Relaxed), None)
            }
            Some(rate) => {
                let op = id + sequence * state.phases.clients;
                sequence += 1;
                let due = state.start + Duration::from_secs_f64(op as f64 / rate);
                if due >= state.end {
                    return;
                }
                tokio::time::sleep_until(due).await;
                (op, Some(due))
            }
        };
        let started = due.unwrap_or_else(Instant::now);
        state.live.in_flight.fetch_add(1, Ordering::Relaxed);
        let context = Context {
            state: &state,
            stats: &stats,
        };
        let outcome = match workload.issue(&mut client, op, &context).await {
            Ok(answer) => workload.verify(&mut client, answer).map_err(Failure::Error),
            Err(failure) => Err(failure),
        };
        state.live.in_flight.fetch_sub(1, Ordering::Relaxed);
        let finished = Instant::now();
        let counted = state.in_window(finished);
        match outcome {
            Ok(done) => {
                state.live.ok.fetch_add(1, Ordering::Relaxed);
                if done.write {
                    state.live.writes.fetch_add(1, Ordering::Relaxed);
                }
                if counted {
                    let mut stats = lock(&stats);
                    stats.duplicates += u64::from(done.duplicate);
                    let kind = stats.kinds.entry(done.label).or_insert_with(Latencies::new);
                    kind.record(finished - started);
                }
            }
            Err(Failure::Exhausted) => {
                state.exhausted.store(true, Ordering::Relaxed);
                return;
            }
            Err(Failure::Error(kind)) => {
                state.live.errors.fetch_add(1, Ordering::Relaxed);
                if counted {
                    lock(&stats).errors.add(&kind);
                }
                if !W::PAUSE_AFTER_ERROR.is_zero() {
                    tokio::time::sleep(W::PAUSE_AFTER_ERROR).await;
                }
            }
        }
    }
}

/// Prints a live line on stderr once per second until the run ends; returns the verified
/// operations completed in each second.
async fn progress(state: Arc<State>) -> Vec<u64> {
    let terminal = std::io::stderr().is_terminal();
    let live = &state.live;
    let mut timeline = Vec::new();
    let (mut last, mut last_writes) = (0, 0);
    let mut tick = state.start + Duration::from_secs(1);
    while tick <= state.end + Duration::from_millis(500) {
        tokio::time::sleep_until(tick).await;
        let ok = live.ok.load(Ordering::Relaxed);
        let writes = live.writes.load(Ordering::Relaxed);
        timeline.push(ok - last);
        let phase = if tick <= state.window_start {
            "warm-up"
        } else {
            "measure"
        };
        // A mixed workload says how many of its operations were appends.
        let writes_part = if writes > 0 && writes < ok {
            format!(" (of which appends {}/s)", writes - last_writes)
        } else {
            String::new()
        };
        let line = format!(
            "[{:>4.0}s {phase}] {:>7} {}/s verified{writes_part}  total {ok}  errors {}  retries {}  in flight {}",
            (tick - state.start).as_secs_f64(),
            ok - last,
            state.phases.unit,
            live.errors.load(Ordering::Relaxed),
            live.retries.load(Ordering::Relaxed),
            live.in_flight.load(Ordering::Relaxed),
        );
        (last, last_writes) = (ok, writes);
        progress_line(terminal, &line);
        tick += Duration::from_secs(1);
        if state.finished.load(Ordering::Relaxed)
            || (tick > state.end && Instant::now() >= state.end)
        {
            break;
        }
    }
    if terminal {
        eprintln!();
    }
    timeline
}

/// Prints a progress line on stderr: over the last one on a terminal, else a line of its own.
pub(crate) fn progress_line(terminal: bool, line: &str) {
    if terminal {
        eprint!("\r{line}\x1b[K");
    } else {
        eprintln!("{line}");
    }
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
pub(crate) async fn scrape(urls: &[String]) -> Vec<Option<String>> {
    let mut texts = Vec::new();
    for url in urls {
        let metrics = crate::net::get(&format!("{}/metrics", url.trim_end_matches('/'))).await;
        texts.push(
            metrics
                .ok()
                .map(|body| String::from_utf8_lossy(&body).into_owned()),
        );
    }
    texts
}

/// Whether a scrape says its node is the Raft leader (`cairn_raft_is_leader 1`).
pub(crate) fn is_leader(text: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix("cairn_raft_is_leader ")
            .and_then(|value| value.trim().parse::<f64>().ok())
            .is_some_and(|value| value >= 1.0)
    })
}

/// Starts sampling the leader (by its metrics) for the measured window.
fn start_profile(
    target: Target<'_>,
    metrics: &[Option<String>],
    window: Duration,
) -> anyhow::Result<crate::profile::Recording> {
    let leader = (metrics.iter()).position(|text| text.as_deref().is_some_and(is_leader));
    let leader = leader.context("--profile: no node reports itself leader")?;
    let pid = *(target.pids.get(leader))
        .context("--profile needs the nodes' process ids (a started cluster or --cluster-json)")?;
    let data = std::env::temp_dir().join(format!("cairn-bench-{}-{pid}.perf", std::process::id()));
    let process = format!("node {} (leader)", leader + 1);
    crate::profile::start(pid, process, window.as_secs_f64(), &data)
}

/// The machine and code a report belongs to. Best effort: the report says "unknown" rather
/// than failing the run. Says it on stderr.
pub(crate) fn environment() -> serde_json::Value {
    let file = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let field = |text: &str, name: &str| {
        let line = text.lines().find_map(|line| line.strip_prefix(name));
        line.map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
    };
    let command = |program: &str, args: &[&str]| {
        let output = std::process::Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output();
        let output = output.ok().filter(|output| output.status.success());
        output.map_or_else(
            || "unknown".to_string(),
            |output| String::from_utf8_lossy(&output.stdout).trim().to_string(),
        )
    };
    let memory_kib: f64 = field(&file("/proc/meminfo"), "MemTotal:")
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cpu_model = field(&file("/proc/cpuinfo"), "model name").unwrap_or("unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let (memory_gib, commit) = (
        memory_kib / 1024.0 / 1024.0,
        command("git", &["rev-parse", "--short", "HEAD"]),
    );
    eprintln!("machine: {cpu_model} ({cores} cores, {memory_gib:.1} GiB), commit {commit}");
    serde_json::json!({
        "cpu_model": cpu_model, "cores": cores, "memory_gib": memory_gib, "commit": commit,
        "date": command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    })
}
