//! Parts of the seam between the node and the world ([`crate::node::Env`], which holds them):
//! where blocking storage work runs ([`Blocking`]), how client signature checks are bounded
//! ([`Checks`]), and the clock ([`Clock`]). Production and the simulator build the same node and
//! differ only in the `Env` they pass (docs/ARCHITECTURE.md, "Determinism and the seam").

use std::sync::Arc;

/// Where blocking storage work (redb calls, fsync) runs.
///
/// Production moves it off the async workers so an fsync never stalls the Raft core; the
/// simulator runs it inline on its one thread, where it is instantaneous in virtual time and its
/// order is deterministic, optionally after a wait its environment sets (a slow disk).
#[derive(Clone, Debug)]
pub enum Blocking {
    /// Run on the calling task.
    Inline,
    /// Run on the calling task after the wait [`Latency::before_each`] reports at each call, in
    /// tokio's time: an environment that models how long its disk takes.
    InlineAfter(Arc<dyn Latency>),
    /// Run on tokio's blocking thread pool (production).
    Pool,
}

/// How long an environment's disk takes per storage operation, read at each operation (it may
/// change while the node runs).
pub trait Latency: Send + Sync + std::fmt::Debug + 'static {
    /// The wait before the next operation (zero: none).
    fn before_each(&self) -> std::time::Duration;
}

impl Blocking {
    /// Runs `work` where this mode says and returns its result. A panic in `work` resumes on
    /// the caller, as if the work had run inline.
    pub async fn run<T, F>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self {
            Blocking::Inline => work(),
            Blocking::InlineAfter(latency) => {
                let wait = latency.before_each();
                // No wait at all when the disk is not slow, so that a run's events are the
                // same as with `Inline`.
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
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

/// How CPU-heavy checks of what clients send are bounded (signature verification, parsing large
/// bodies). A check runs on the request's own task (a check is at most milliseconds of CPU,
/// bounded by the request limits, and handing each to a thread pool cost two thread wake-ups per
/// request), with at most `running` at once and at most `waiting` queued behind them. Past that,
/// work is refused ([`Busy`]) instead of queued, so a flood of expensive requests costs each of
/// them a quick refusal and leaves workers free for the rest.
#[derive(Clone, Debug)]
pub struct Checks {
    /// Held by every check admitted (running or waiting): `running + waiting` permits.
    admitted: Arc<tokio::sync::Semaphore>,
    /// Held by every check running: `running` permits.
    running: Arc<tokio::sync::Semaphore>,
    /// `running + waiting`.
    capacity: usize,
}

/// A check refused because [`Checks`] is full; the caller answers 503 with a retry hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the node is busy checking other requests ({0} admitted); retry shortly")]
pub struct Busy(pub usize);

impl Checks {
    /// At most `running` checks at once (at least one), and at most `waiting` more queued.
    pub fn new(running: usize, waiting: usize) -> Checks {
        let running = running.max(1);
        Checks {
            admitted: Arc::new(tokio::sync::Semaphore::new(running + waiting)),
            running: Arc::new(tokio::sync::Semaphore::new(running)),
            capacity: running + waiting,
        }
    }

    /// One running check per core, and 64 per core waiting. A check is a few signature
    /// verifications, tenths of a millisecond each, so a full queue is tens of milliseconds of
    /// work: the bound is on a flood's memory and wait, not on a burst of honest clients. (Four
    /// per core turned 64 clients' appends into 503s and one-second retries, cutting the
    /// append rate by more than half.)
    pub fn per_core() -> Checks {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Checks::new(cores, 64 * cores)
    }

    /// Runs `work` on the calling task once admitted, or refuses it at once if
    /// `running + waiting` checks are already admitted. A caller that goes away while waiting
    /// frees its slot; once `work` has started it runs to the end (it does not yield), so its
    /// slot is held until it is done.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Busy>
    where
        F: FnOnce() -> T,
    {
        let _admitted = self
            .admitted
            .try_acquire()
            .map_err(|_| Busy(self.admitted_count()))?;
        let _running = self
            .running
            .acquire()
            .await
            // The semaphore is never closed.
            .map_err(|_| Busy(self.admitted_count()))?;
        Ok(work())
    }

    fn admitted_count(&self) -> usize {
        self.capacity
            .saturating_sub(self.admitted.available_permits())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Past `running + waiting` admitted checks, the next is refused at once rather than
    /// queued; a slot frees only when its work has finished, even if its caller went away.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_refuse_past_their_bound_and_hold_slots_until_done() {
        let checks = Checks::new(1, 1);
        let (started, first_running) = tokio::sync::oneshot::channel::<()>();
        // The first check blocks its worker thread until the test releases it: a check runs on
        // its caller's task, so the other worker runs the rest.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let checks = checks.clone();
            async move {
                checks
                    .run(move || {
                        started.send(()).unwrap();
                        gate.recv().unwrap();
                        7
                    })
                    .await
            }
        });
        // The first check runs (and holds the one running slot) before the second is sent.
        first_running.await.unwrap();
        let second = tokio::spawn({
            let checks = checks.clone();
            async move { checks.run(|| 8).await }
        });
        // The second is admitted and waits for the running slot.
        while checks.admitted.available_permits() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(checks.run(|| 9).await, Err(Busy(2)));
        // The first caller goes away; its work, already running on its task, still holds its slot.
        first.abort();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(checks.run(|| 9).await, Err(Busy(2)));
        release.send(()).unwrap();
        assert_eq!(second.await.unwrap(), Ok(8));
        assert_eq!(checks.run(|| 10).await, Ok(10));
    }
}
