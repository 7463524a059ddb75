//! The simulated application clock (`node::env::Clock`): virtual time since the run started,
//! from a fixed epoch, plus a per-node skew the fault scheduler changes. Only the application
//! clock is skewed (checkpoint and batch timestamps); openraft's timers run on tokio's paused
//! clock, whose skew would only affect liveness: openraft's safety does not depend on clocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use node::env::Clock;
use tokio::time::Instant;

/// The Unix time, in milliseconds, at which every run starts (2026-01-01T00:00:00Z).
pub const EPOCH_UNIX_MS: u64 = 1_767_225_600_000;

/// One node's clock.
#[derive(Debug, Clone)]
pub struct SimClock {
    start: Instant,
    skew_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// A clock whose time 0 is `start`.
    pub fn new(start: Instant) -> SimClock {
        SimClock {
            start,
            skew_ms: Arc::default(),
        }
    }

    /// Sets this clock's offset from true virtual time.
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_unix_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        EPOCH_UNIX_MS
            .saturating_add(elapsed)
            .saturating_add_signed(self.skew_ms.load(Ordering::Relaxed))
    }
}
