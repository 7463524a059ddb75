//! `cairn-sim`: runs the deterministic simulator (see `docs/simulator.md`).
//!
//! - `cairn-sim run --seed N [--trace] [--log FILTER]` runs one seed; with `--trace` it prints
//!   the compact trace (one line per event, see `sim::trace`). On a violation it prints the
//!   seed, the git commit, the derived options and the trace hash, and exits non-zero.
//! - `cairn-sim swarm --seeds N [--from S]` runs seeds S..S+N with a progress bar and a
//!   summary, and exits non-zero if any seed violated an invariant.
//! - `cairn-sim replay --seed N [--expect HASH]` runs a failing seed again with its trace and
//!   the nodes' warnings, and checks that the run is the one reported (same trace hash).
//! - `--canary NAME` (built with `--features canaries`) plants a known bug (`node::canary`)
//!   and switches on crash-heavy faults: the seeds must then fail.
//! - `--malicious` adds the lying log operator (`sim::malicious`) to any seed.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use sim::{Options, Outcome, run_with};

#[derive(Parser, Debug)]
#[command(
    name = "cairn-sim",
    about = "Cairn's deterministic simulator: real nodes, simulated disk, network and time",
    long_about = "Cairn's deterministic simulator. Each seed derives a cluster, a workload and a \
                  set of faults (partitions, message loss and duplication, crashes that lose \
                  unsynced writes, clock skew, ...), runs the real node code on one thread in \
                  virtual time, and checks the log's safety properties throughout and its \
                  liveness after healing. The same seed on the same commit replays bit for bit.",
    after_help = "Examples:\n  cairn-sim swarm --seeds 200 --seconds 60\n  cairn-sim run --seed \
                  48 --seconds 60 --trace\n  cairn-sim replay --seed 48 --seconds 60 --expect \
                  18e7f36f017699d1\n  cairn-sim run --seed 1 --seconds 20 --malicious --trace   \
                  (a log that forks for some witnesses)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one seed.
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Print the trace (one line per event: virtual microseconds, component, event).
        #[arg(long)]
        trace: bool,
        /// Also print the nodes' own logs to stderr, filtered as `RUST_LOG` is (for example
        /// `node=debug,openraft=info`), stamped with simulated milliseconds.
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Runs many seeds, with a progress bar and a summary.
    Swarm {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Runs a failing seed again, printing its trace and the nodes' warnings, and checks that
    /// it is the same run as reported (the trace hash a failure prints).
    Replay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// The trace hash the failure report gave; the replay fails if its hash differs (a
        /// different commit, or nondeterminism).
        #[arg(long, value_name = "HASH")]
        expect: Option<String>,
        /// The nodes' log filter.
        #[arg(long, value_name = "FILTER", default_value = "warn")]
        log: String,
        #[command(flatten)]
        overrides: Overrides,
    },
}

/// What the command line may change in the options a seed derives.
#[derive(Args, Debug, Clone)]
struct Overrides {
    /// Virtual seconds of the safety phase (faults on).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Override the cluster size.
    #[arg(long)]
    nodes: Option<u64>,
    /// Override the number of clients.
    #[arg(long)]
    clients: Option<u64>,
    /// Override the clients' longest pause between requests, in milliseconds.
    #[arg(long, value_name = "MS")]
    think_ms: Option<u64>,
    /// Plant a known bug (vote-not-synced, apply-not-atomic, sign-before-commit,
    /// ack-before-commit, index-flush-drops-a-leaf, filter-misses-a-key,
    /// stream-tail-not-written; docs/simulator.md says what each breaks) and use crash-heavy
    /// faults; needs `--features canaries`.
    #[arg(long)]
    canary: Option<String>,
    /// Add a lying log operator that shows a second root for a size to fewer witnesses than
    /// the quorum (and three pushed witnesses, 2-of-3, if the seed has none).
    #[arg(long)]
    malicious: bool,
}

impl Overrides {
    /// The options of `seed`, overridden.
    fn options(&self, seed: u64) -> Options {
        let mut options = Options::from_seed(seed, Duration::from_secs(self.seconds));
        if self.canary.is_some() {
            options = options.crash_heavy();
        }
        if let Some(nodes) = self.nodes {
            options.nodes = nodes.max(1);
        }
        if let Some(clients) = self.clients {
            options.clients = clients;
        }
        if let Some(think_ms) = self.think_ms {
            options.think_max_ms = think_ms.max(1);
        }
        if self.malicious {
            options = options.malicious();
        }
        options
    }

    /// The flags that reproduce these overrides, for a replay line.
    fn flags(&self) -> String {
        let mut flags = format!(" --seconds {}", self.seconds);
        if let Some(nodes) = self.nodes {
            flags += &format!(" --nodes {nodes}");
        }
        if let Some(clients) = self.clients {
            flags += &format!(" --clients {clients}");
        }
        if let Some(think_ms) = self.think_ms {
            flags += &format!(" --think-ms {think_ms}");
        }
        if let Some(canary) = &self.canary {
            flags += &format!(" --canary {canary}");
        }
        if self.malicious {
            flags += " --malicious";
        }
        flags
    }
}

/// Plants the canary named `name` on this thread (the simulator runs on it), with the
/// `canaries` feature; without it, refuses.
fn plant(name: Option<&str>) -> Result<(), String> {
    #[cfg(feature = "canaries")]
    {
        use node::canary::{Canary, set};
        let canary = name
            .map(|name| {
                Canary::from_name(name).ok_or_else(|| {
                    let names: Vec<_> = Canary::ALL.iter().map(|canary| canary.name()).collect();
                    format!("unknown canary {name}; one of {}", names.join(", "))
                })
            })
            .transpose()?;
        set(canary);
        Ok(())
    }
    #[cfg(not(feature = "canaries"))]
    match name {
        Some(_) => Err("--canary needs cairn-sim built with --features canaries".into()),
        None => Ok(()),
    }
}

/// Simulated time for log lines: milliseconds since the first line, read from tokio's paused
/// clock (the wall clock would differ from run to run).
struct SimulatedMillis(std::sync::OnceLock<tokio::time::Instant>);

impl tracing_subscriber::fmt::time::FormatTime for SimulatedMillis {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = tokio::time::Instant::now();
        let first = *self.0.get_or_init(|| now);
        write!(w, "{:>9}ms", now.duration_since(first).as_millis())
    }
}

fn install_log(filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(SimulatedMillis(std::sync::OnceLock::new()))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|e| e.to_string())
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or_else(|| "unknown".into(), |commit| commit.trim().to_string())
}

fn report_failure(outcome: &Outcome, overrides: &Overrides) {
    eprintln!(
        "FAILED seed {} (commit {}, trace {:016x})",
        outcome.options.seed,
        git_commit(),
        outcome.trace_hash
    );
    eprintln!("options: {:#?}", outcome.options);
    for violation in &outcome.violations {
        eprintln!("  violation: {violation}");
    }
    eprintln!(
        "replay: cairn-sim replay --seed {}{} --expect {:016x}",
        outcome.options.seed,
        overrides.flags(),
        outcome.trace_hash
    );
}

/// One line about a finished run.
fn summary(outcome: &Outcome, wall: Duration) -> String {
    format!(
        "seed {}: {:.1} simulated s in {:.2} wall s ({:.0}x), {} events, {} faults, {} acked, {} unknown, {} checkpoints, {} messages, trace {:016x}",
        outcome.options.seed,
        outcome.simulated.as_secs_f64(),
        wall.as_secs_f64(),
        outcome.simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        outcome.events,
        outcome.faults,
        outcome.acked,
        outcome.unknown,
        outcome.checkpoints,
        outcome.messages,
        outcome.trace_hash
    )
}

fn run_one(seed: u64, trace: bool, overrides: &Overrides) -> (Outcome, ExitCode) {
    let wall = Instant::now();
    let outcome = run_with(overrides.options(seed), trace);
    if trace {
        println!("options: {:?}", outcome.options);
        println!("network: {:?}", outcome.network);
    }
    println!("{}", summary(&outcome, wall.elapsed()));
    if outcome.violations.is_empty() {
        (outcome, ExitCode::SUCCESS)
    } else {
        report_failure(&outcome, overrides);
        (outcome, ExitCode::FAILURE)
    }
}

fn swarm(seeds: u64, from: u64, overrides: &Overrides) -> ExitCode {
    let wall = Instant::now();
    let (mut simulated, mut events, mut faults, mut acked) = (0.0, 0u64, 0u64, 0u64);
    let mut failed = Vec::new();
    // A bar on a terminal; a line per seed otherwise (CI logs).
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(seeds);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    for seed in from..from.saturating_add(seeds) {
        let outcome = run_with(overrides.options(seed), false);
        simulated += outcome.simulated.as_secs_f64();
        events += outcome.events;
        faults += outcome.faults;
        acked += outcome.acked;
        let ok = outcome.violations.is_empty();
        let line = format!(
            "[{}/{seeds}] seed {seed} {} ({:.1} sim s, {} events, {} faults, {} acked)",
            seed - from + 1,
            if ok { "ok" } else { "FAIL" },
            outcome.simulated.as_secs_f64(),
            outcome.events,
            outcome.faults,
            outcome.acked
        );
        match &bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!(
                    "{} failed, {:.0} sim s per wall s",
                    failed.len() + usize::from(!ok),
                    simulated / wall.elapsed().as_secs_f64().max(1e-9)
                ));
                if !ok {
                    bar.suspend(|| eprintln!("{line}"));
                }
            }
            None => eprintln!("{line}"),
        }
        if !ok {
            let report = || report_failure(&outcome, overrides);
            match &bar {
                Some(bar) => bar.suspend(report),
                None => report(),
            }
            failed.push(seed);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "swarm: {seeds} seeds from {from}, {simulated:.1} simulated s in {wall:.1} wall s ({:.1} simulated s per wall s), {events} events, {faults} faults, {acked} acked, {} failed {failed:?}",
        simulated / wall.max(1e-9),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Run { overrides, .. }
    | Command::Swarm { overrides, .. }
    | Command::Replay { overrides, .. }) = &cli.command;
    if let Err(error) = plant(overrides.canary.as_deref()) {
        eprintln!("{error}");
        return ExitCode::from(2);
    }
    match &cli.command {
        Command::Run {
            seed,
            trace,
            log,
            overrides,
        } => {
            if let Some(filter) = log
                && let Err(error) = install_log(filter)
            {
                eprintln!("--log {filter}: {error}");
                return ExitCode::from(2);
            }
            run_one(*seed, *trace, overrides).1
        }
        Command::Swarm {
            seeds,
            from,
            overrides,
        } => swarm(*seeds, *from, overrides),
        Command::Replay {
            seed,
            expect,
            log,
            overrides,
        } => {
            if let Err(error) = install_log(log) {
                eprintln!("--log {log}: {error}");
                return ExitCode::from(2);
            }
            let (outcome, status) = run_one(*seed, true, overrides);
            let got = format!("{:016x}", outcome.trace_hash);
            match expect {
                Some(expected) if expected.trim_start_matches("0x") != got => {
                    eprintln!(
                        "replay diverged: trace {got}, the report said {expected} (another commit or \
                         options, or nondeterminism: compare `cairn-sim run --seed {seed} --trace` \
                         output of both builds)"
                    );
                    ExitCode::FAILURE
                }
                Some(_) => {
                    eprintln!("replay matches the reported trace {got}");
                    status
                }
                None => status,
            }
        }
    }
}
