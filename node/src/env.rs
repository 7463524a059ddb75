//! The seam between the node and the world: where time, randomness, disk and blocking work come
//! from. Production and the simulator build the same node and differ only in what they pass
//! here (docs/ARCHITECTURE.md, "Determinism").
//!
//! Only the pieces the node uses so far are here; the Raft network joins them when the
//! transport is built.

use std::sync::Arc;

/// Where blocking storage work (redb calls, fsync) runs.
///
/// Production moves it off the async workers so an fsync never stalls the Raft core; the
/// simulator runs it inline on its one thread, where it is instantaneous in virtual time and its
/// order is deterministic.
#[derive(Clone, Copy, Debug)]
pub enum Blocking {
    /// Run on the calling task (the simulator).
    Inline,
    /// Run on the calling task after waiting this many microseconds of (virtual) time, read at
    /// each call: the simulator's slow disk, whose latency changes during a run.
    Delayed(&'static std::sync::atomic::AtomicU64),
    /// Run on tokio's blocking thread pool (production).
    Pool,
}

impl PartialEq for Blocking {
    fn eq(&self, other: &Blocking) -> bool {
        match (self, other) {
            (Blocking::Inline, Blocking::Inline) | (Blocking::Pool, Blocking::Pool) => true,
            (Blocking::Delayed(a), Blocking::Delayed(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

impl Eq for Blocking {}

impl Blocking {
    /// Runs `work` where this mode says and returns its result. A panic in `work` resumes on
    /// the caller, as if the work had run inline.
    pub async fn run<T, F>(self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self {
            Blocking::Inline => work(),
            Blocking::Delayed(latency_us) => {
                let latency = latency_us.load(std::sync::atomic::Ordering::Relaxed);
                // No wait at all when the disk is not slow, so that a run's events are the
                // same as with `Inline`.
                if latency > 0 {
                    tokio::time::sleep(std::time::Duration::from_micros(latency)).await;
                }
                work()
            }
            Blocking::Pool => match tokio::task::spawn_blocking(work).await {
                Ok(value) => value,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Only a runtime shutting down cancels a blocking task; nothing can continue.
                Err(error) => panic!("blocking storage task cancelled: {error}"),
            },
        }
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, for timestamps that end up in
/// replicated state (chosen by the leader only) and in responses.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now_unix_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;
