//! `cairn-sim`: runs the deterministic simulator.
//!
//! - `cairn-sim run --seed N [--trace]` runs one seed; with `--trace` it prints the compact
//!   trace (one line per event, see `sim::trace`). On a violation it prints the seed, the git
//!   commit and the derived options, and exits non-zero.
//! - `cairn-sim swarm --seeds N [--from S]` runs seeds S..S+N with a progress line and a
//!   summary, and exits non-zero if any seed violated an invariant.
//! - `--canary NAME` (either command, built with `--features canaries`) plants a known bug
//!   (`node::canary`) and switches on crash-heavy faults: the seeds must then fail.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use sim::{Options, Outcome, run_with};

/// The options of `seed`, with the command line's overrides.
fn options(seed: u64, seconds: u64, nodes: Option<u64>, canary: Option<&str>) -> Options {
    let mut options = Options::from_seed(seed, Duration::from_secs(seconds));
    if let Some(nodes) = nodes {
        options.nodes = nodes.max(1);
    }
    if canary.is_some() {
        options = options.crash_heavy();
    }
    options
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

#[derive(Parser, Debug)]
#[command(name = "cairn-sim", about = "Cairn's deterministic simulator")]
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
        /// Print the trace.
        #[arg(long)]
        trace: bool,
        /// Also print the nodes' own logs to stderr, filtered as `RUST_LOG` is (for example
        /// `node=debug,openraft=info`), stamped with simulated milliseconds.
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
        /// Virtual seconds of the safety phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Override the seed's cluster size.
        #[arg(long)]
        nodes: Option<u64>,
        /// Plant a known bug (vote-not-synced, apply-not-atomic, sign-before-commit,
        /// ack-before-commit) and use crash-heavy faults; needs `--features canaries`.
        #[arg(long)]
        canary: Option<String>,
    },
    /// Runs many seeds.
    Swarm {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Virtual seconds of each safety phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Override every seed's cluster size.
        #[arg(long)]
        nodes: Option<u64>,
        /// Plant a known bug (vote-not-synced, apply-not-atomic, sign-before-commit,
        /// ack-before-commit) and use crash-heavy faults; needs `--features canaries`.
        #[arg(long)]
        canary: Option<String>,
    },
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

fn report_failure(outcome: &Outcome, canary: Option<&str>) {
    eprintln!(
        "FAILED seed {} (commit {})",
        outcome.options.seed,
        git_commit()
    );
    eprintln!("options: {:#?}", outcome.options);
    for violation in &outcome.violations {
        eprintln!("  violation: {violation}");
    }
    let canary = canary.map_or_else(String::new, |name| format!(" --canary {name}"));
    eprintln!(
        "replay: cairn-sim run --seed {}{canary} --trace",
        outcome.options.seed
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Run { canary, .. } | Command::Swarm { canary, .. }) = &cli.command;
    if let Err(error) = plant(canary.as_deref()) {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Run {
            seed,
            trace,
            log,
            seconds,
            nodes,
            canary,
        } => {
            if let Some(filter) = log
                && let Err(error) = install_log(&filter)
            {
                eprintln!("--log {filter}: {error}");
                return ExitCode::FAILURE;
            }
            let wall = Instant::now();
            let outcome = run_with(options(seed, seconds, nodes, canary.as_deref()), trace);
            if trace {
                println!("options: {:?}", outcome.options);
                println!("network: {:?}", outcome.network);
            }
            println!(
                "seed {seed}: {:.1} simulated s in {:.2} wall s, {} events, {} faults, {} acked, {} unknown, {} checkpoints, {} messages, trace {:016x}",
                outcome.simulated.as_secs_f64(),
                wall.elapsed().as_secs_f64(),
                outcome.events,
                outcome.faults,
                outcome.acked,
                outcome.unknown,
                outcome.checkpoints,
                outcome.messages,
                outcome.trace_hash
            );
            if outcome.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                report_failure(&outcome, canary.as_deref());
                ExitCode::FAILURE
            }
        }
        Command::Swarm {
            seeds,
            from,
            seconds,
            nodes,
            canary,
        } => {
            let wall = Instant::now();
            let (mut simulated, mut events, mut faults, mut failed) = (0.0, 0, 0, Vec::new());
            for seed in from..from.saturating_add(seeds) {
                let outcome = run_with(options(seed, seconds, nodes, canary.as_deref()), false);
                simulated += outcome.simulated.as_secs_f64();
                events += outcome.events;
                faults += outcome.faults;
                let status = if outcome.violations.is_empty() {
                    "ok"
                } else {
                    "FAIL"
                };
                eprintln!(
                    "[{}/{seeds}] seed {seed} {status} ({:.1} sim s, {} events, {} faults, {} acked)",
                    seed - from + 1,
                    outcome.simulated.as_secs_f64(),
                    outcome.events,
                    outcome.faults,
                    outcome.acked
                );
                if !outcome.violations.is_empty() {
                    report_failure(&outcome, canary.as_deref());
                    failed.push(seed);
                }
            }
            let wall = wall.elapsed().as_secs_f64();
            println!(
                "swarm: {seeds} seeds from {from}, {simulated:.1} simulated s, {events} events, {faults} faults, {:.1} simulated s per wall s, {} failed {failed:?}",
                simulated / wall.max(1e-9),
                failed.len()
            );
            if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
