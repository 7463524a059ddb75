//! A live progress line for workloads other than `appends` (reads, mix, etcd puts): once a
//! second on stderr, the verified operations of the last second and the running totals.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Counters the progress line reads while a run goes on (warm-up included).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Verified operations (all kinds).
    pub(crate) ok: AtomicU64,
    /// Of which writes (appends or puts), for mixed workloads.
    pub(crate) writes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) in_flight: AtomicU64,
}

impl Counters {
    pub(crate) fn done(&self, write: bool) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        if write {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The phases of one run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phases {
    /// Load starts.
    pub(crate) start: Instant,
    /// Measurement starts (after warm-up).
    pub(crate) window_start: Instant,
    /// Measurement and load end.
    pub(crate) end: Instant,
}

impl Phases {
    /// Phases starting shortly from now (so every client is spawned before the clock starts).
    pub(crate) fn from_now(warmup: Duration, duration: Duration) -> Phases {
        let start = Instant::now() + Duration::from_millis(50);
        Phases {
            start,
            window_start: start + warmup,
            end: start + warmup + duration,
        }
    }

    /// Whether an operation that finished at `at` counts.
    pub(crate) fn in_window(&self, at: Instant) -> bool {
        at >= self.window_start && at <= self.end
    }
}

/// Prints the line once a second until the run ends; returns the verified operations completed
/// in each second (warm-up included). `unit` names what is counted ("reads", "puts").
pub(crate) async fn progress(
    counters: Arc<Counters>,
    phases: Phases,
    unit: &'static str,
) -> Vec<u64> {
    let terminal = std::io::stderr().is_terminal();
    let mut timeline = Vec::new();
    let (mut last, mut last_writes) = (0, 0);
    let mut tick = phases.start + Duration::from_secs(1);
    while tick <= phases.end + Duration::from_millis(500) {
        tokio::time::sleep_until(tick).await;
        let ok = counters.ok.load(Ordering::Relaxed);
        let writes = counters.writes.load(Ordering::Relaxed);
        timeline.push(ok - last);
        let phase = if tick <= phases.window_start {
            "warm-up"
        } else {
            "measure"
        };
        let writes_part = if writes > 0 {
            format!(" (of which appends {}/s)", writes - last_writes)
        } else {
            String::new()
        };
        let line = format!(
            "[{:>4.0}s {phase}] {:>7} {unit}/s verified{writes_part}  total {ok}  errors {}  in flight {}",
            (tick - phases.start).as_secs_f64(),
            ok - last,
            counters.errors.load(Ordering::Relaxed),
            counters.in_flight.load(Ordering::Relaxed),
        );
        (last, last_writes) = (ok, writes);
        if terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        tick += Duration::from_secs(1);
        if tick > phases.end && Instant::now() >= phases.end {
            break;
        }
    }
    if terminal {
        eprintln!();
    }
    timeline
}
