//! The sequencer: pools submissions on the leader and proposes one Raft entry per batch.
//!
//! Raft's cost is per entry (a log append, a replication round, an fsync on a quorum), so the
//! sequencer turns many concurrent submissions into few entries: a log's pool becomes a batch
//! when it reaches `batch_leaves_max` leaves or `batch_bytes_max` bytes, or when its oldest
//! submission has waited `batch_age_max`. Several batches may be in flight at once (up to
//! `proposals_in_flight_max`), so a slow commit round does not stop pooling.
//!
//! Everything is bounded. Submissions wait in a queue of `pool_leaves_max`; when it is full a
//! submission fails at once with [`SequenceError::Overloaded`] (the HTTP layer answers 503 with
//! Retry-After) instead of queueing without limit. Every waiter gets exactly one answer: its
//! leaf's index and the signed checkpoint covering it, or an error. An error means the outcome
//! is unknown (the batch may still commit later), never that the leaf is absent: clients retry,
//! and the replicated dedup index returns the existing entry.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::env::SharedClock;
use crate::metrics::{LogLabel, Metrics};
use crate::state_machine::BATCH_LEAVES_MAX;
use crate::types::{
    AppendBatch, Command, CommandOutcome, LeafOutcome, LogName, NodeAddress, NodeId,
};

/// The sequencer's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequencerConfig {
    /// Most leaves in one batch (one Raft entry).
    pub batch_leaves_max: usize,
    /// Most leaf bytes in one batch.
    pub batch_bytes_max: usize,
    /// Longest a submission waits for its batch to fill before the batch is proposed anyway.
    pub batch_age_max: Duration,
    /// Most submissions waiting to be pooled; past it, submissions are refused.
    pub pool_leaves_max: usize,
    /// Most batches proposed and not yet answered.
    pub proposals_in_flight_max: usize,
    /// Longest a proposed batch waits for its outcome; past it, its submissions are answered
    /// "outcome unknown" and its proposal slot is freed. Raft does not always answer a
    /// proposal: a leader cut off from the majority keeps waiting, and one that later installs
    /// a snapshot covering its own uncommitted entries drops them unanswered. Without this
    /// bound such batches would hold every slot and stop the sequencer for good.
    pub propose_timeout: Duration,
}

impl Default for SequencerConfig {
    fn default() -> SequencerConfig {
        SequencerConfig {
            batch_leaves_max: 4096,
            batch_bytes_max: 8 * 1024 * 1024,
            batch_age_max: Duration::from_millis(5),
            pool_leaves_max: 100_000,
            proposals_in_flight_max: 8,
            propose_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a sequencer configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequencerConfigError {
    /// `batch_leaves_max` is 0 or above what apply accepts.
    #[error("batch_leaves_max must be 1 to {BATCH_LEAVES_MAX}")]
    BatchLeaves,
    /// `batch_bytes_max` cannot hold one largest entry.
    #[error(
        "batch_bytes_max must hold at least one largest entry ({} bytes)",
        tlog::entry::BODY_BYTES_MAX
    )]
    BatchBytes,
    /// `pool_leaves_max` or `proposals_in_flight_max` is 0.
    #[error("pool_leaves_max and proposals_in_flight_max must be positive")]
    ZeroBound,
    /// `propose_timeout` is 0.
    #[error("propose_timeout must be positive")]
    ZeroTimeout,
}

impl SequencerConfig {
    /// Checks the bounds against each other and against what apply accepts.
    pub fn validate(&self) -> Result<(), SequencerConfigError> {
        if self.batch_leaves_max == 0 || self.batch_leaves_max > BATCH_LEAVES_MAX {
            return Err(SequencerConfigError::BatchLeaves);
        }
        if self.batch_bytes_max < tlog::entry::BODY_BYTES_MAX {
            return Err(SequencerConfigError::BatchBytes);
        }
        if self.pool_leaves_max == 0 || self.proposals_in_flight_max == 0 {
            return Err(SequencerConfigError::ZeroBound);
        }
        if self.propose_timeout.is_zero() {
            return Err(SequencerConfigError::ZeroTimeout);
        }
        Ok(())
    }
}

/// Why a submission got no index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// The pool is full; retry after a short wait.
    #[error("sequencer pool is full ({0} submissions waiting)")]
    Overloaded(usize),
    /// This node is not the leader; the leader, if known, is given.
    #[error("not the leader")]
    NotLeader(Option<(NodeId, NodeAddress)>),
    /// The batch was proposed but no answer came (leadership lost, shutdown, storage failure):
    /// the leaf may or may not be in the log.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// Every replica refused the batch (for example, an unknown log).
    #[error("refused: {0}")]
    Refused(String),
    /// The sequencer has stopped.
    #[error("sequencer stopped")]
    Stopped,
    /// The log is frozen (`crate::lifecycle`): nothing was appended; its successor takes
    /// appends.
    #[error("log {log} is frozen; its successor {successor} takes appends")]
    Frozen {
        /// The frozen log.
        log: crate::types::LogName,
        /// Its successor.
        successor: crate::types::LogName,
    },
}

/// Where a leaf ended up, and the signed checkpoint that covers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequenced {
    /// The leaf's index in its log.
    pub index: u64,
    /// Whether an identical leaf was already logged (`index` is then the existing one).
    pub duplicate: bool,
    /// The size of the tree the checkpoint signs.
    pub tree_size: u64,
    /// The signed checkpoint (a C2SP note) covering the leaf, committed through Raft.
    pub checkpoint: Arc<str>,
    /// The leaf's inclusion proof at `tree_size`, when the sequencer was given a way to make
    /// proofs (it makes them for a whole batch at once, sharing the work).
    pub inclusion_proof: Option<tlog::InclusionProof>,
}

/// Makes the inclusion proofs of a batch's leaves, in order, at one tree size: called once per
/// applied batch so that neighbouring leaves' proofs share their reads and hashes.
pub type BatchProofs = Arc<
    dyn Fn(
            LogName,
            Vec<u64>,
            u64,
        )
            -> Pin<Box<dyn Future<Output = Result<Vec<tlog::InclusionProof>, String>> + Send>>
        + Send
        + Sync,
>;

/// Why a proposal failed, as the sequencer needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Not the leader; the leader, if known.
    NotLeader(Option<(NodeId, NodeAddress)>),
    /// Anything else: the outcome is unknown.
    Failed(String),
}

/// Proposes a command to Raft and waits for it to be applied on this node.
pub trait Proposer: Clone + Send + Sync + 'static {
    /// Proposes `command`; resolves to the outcome of applying it.
    fn propose(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<CommandOutcome, ProposeError>> + Send;
}

struct Submission {
    log: LogName,
    leaf: Vec<u8>,
    reply: oneshot::Sender<Result<Sequenced, SequenceError>>,
}

/// A handle to a running sequencer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sequencer {
    queue: mpsc::Sender<Submission>,
    pool_leaves_max: usize,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Sequencer {
    /// Starts a sequencer task that proposes through `proposer`.
    ///
    /// # Panics
    /// If the configuration is invalid (checked at startup with [`SequencerConfig::validate`]).
    pub fn start<P: Proposer>(
        config: SequencerConfig,
        proposer: P,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Sequencer {
        Sequencer::start_with_proofs(config, proposer, clock, metrics, None)
    }

    /// As [`Sequencer::start`], answering every submission with its inclusion proof too, made
    /// by `proofs` once per batch.
    ///
    /// # Panics
    /// If the configuration is invalid.
    pub fn start_with_proofs<P: Proposer>(
        config: SequencerConfig,
        proposer: P,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        proofs: Option<BatchProofs>,
    ) -> Sequencer {
        if let Err(error) = config.validate() {
            panic!("invalid sequencer configuration: {error}");
        }
        let (queue, receiver) = mpsc::channel(config.pool_leaves_max);
        let pool_leaves_max = config.pool_leaves_max;
        tokio::spawn(run(
            config,
            proposer,
            clock,
            Arc::clone(&metrics),
            proofs,
            receiver,
        ));
        Sequencer {
            queue,
            pool_leaves_max,
            metrics,
        }
    }

    /// Submits one leaf (a canonical entry body) to `log` and waits for its index and the
    /// signed checkpoint covering it.
    pub async fn submit(&self, log: LogName, leaf: Vec<u8>) -> Result<Sequenced, SequenceError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Submission { log, leaf, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.overloaded_submissions.inc();
                return Err(SequenceError::Overloaded(self.pool_leaves_max));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(SequenceError::Stopped),
        }
        answer.await.unwrap_or(Err(SequenceError::Stopped))
    }
}

/// One log's pool of submissions waiting for a batch.
struct Pool {
    leaves: Vec<Vec<u8>>,
    replies: Vec<oneshot::Sender<Result<Sequenced, SequenceError>>>,
    bytes: usize,
    oldest: Instant,
}

async fn run<P: Proposer>(
    config: SequencerConfig,
    proposer: P,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    proofs: Option<BatchProofs>,
    mut receiver: mpsc::Receiver<Submission>,
) {
    let proposals = Proposals {
        in_flight: Arc::new(Semaphore::new(config.proposals_in_flight_max)),
        timeout: config.propose_timeout,
        proposer,
        clock,
        metrics,
        proofs,
    };
    let mut pools: BTreeMap<LogName, Pool> = BTreeMap::new();
    loop {
        let deadline = pools
            .values()
            .map(|pool| pool.oldest + config.batch_age_max)
            .min();
        tokio::select! {
            biased;
            submission = receiver.recv() => {
                let Some(submission) = submission else { break };
                let log = submission.log.clone();
                let pool = pools.entry(log.clone()).or_insert_with(|| Pool {
                    leaves: Vec::new(),
                    replies: Vec::new(),
                    bytes: 0,
                    oldest: Instant::now(),
                });
                pool.bytes += submission.leaf.len();
                pool.leaves.push(submission.leaf);
                pool.replies.push(submission.reply);
                let full = pool.leaves.len() >= config.batch_leaves_max
                    || pool.bytes >= config.batch_bytes_max;
                if full && let Some(pool) = pools.remove(&log) {
                    proposals.propose(log, pool).await;
                }
            }
            () = sleep_until_or_forever(deadline) => {
                let now = Instant::now();
                let due: Vec<LogName> = pools
                    .iter()
                    .filter(|(_, pool)| pool.oldest + config.batch_age_max <= now)
                    .map(|(log, _)| log.clone())
                    .collect();
                for log in due {
                    if let Some(pool) = pools.remove(&log) {
                        proposals.propose(log, pool).await;
                    }
                }
            }
        }
    }
    // Shutting down: whatever is still pooled was never proposed, so it is certainly absent.
    for pool in pools.into_values() {
        for reply in pool.replies {
            let _ = reply.send(Err(SequenceError::Stopped));
        }
    }
}

async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What proposing a batch needs, fixed for the sequencer's life.
struct Proposals<P> {
    proposer: P,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    proofs: Option<BatchProofs>,
    /// One permit per batch in flight.
    in_flight: Arc<Semaphore>,
    /// [`SequencerConfig::propose_timeout`].
    timeout: Duration,
}

impl<P: Proposer> Proposals<P> {
    /// Proposes one pool as a batch, in its own task once a proposal slot is free.
    async fn propose(&self, log: LogName, pool: Pool) {
        // Waiting here is the backpressure: while every slot is taken, the queue fills and new
        // submissions are refused as overloaded.
        let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
            return;
        };
        propose_batch(
            self.proposer.clone(),
            Arc::clone(&self.metrics),
            self.proofs.clone(),
            self.timeout,
            permit,
            AppendBatch {
                log,
                leaves: pool.leaves,
                timestamp_unix_ms: self.clock.now_unix_ms(),
            },
            pool.replies,
        );
    }
}

/// Spawns the task that proposes `batch` and answers its waiters, holding `permit` until
/// Raft answers or `timeout` passes.
fn propose_batch<P: Proposer>(
    proposer: P,
    metrics: Arc<Metrics>,
    proofs: Option<BatchProofs>,
    timeout: Duration,
    permit: tokio::sync::OwnedSemaphorePermit,
    batch: AppendBatch,
    replies: Vec<oneshot::Sender<Result<Sequenced, SequenceError>>>,
) {
    #[allow(clippy::cast_precision_loss)] // a histogram observation of at most 65,536 leaves
    metrics.batch_leaves.observe(batch.leaves.len() as f64);
    let label = LogLabel {
        log: batch.log.0.clone(),
    };
    tokio::spawn(async move {
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, proposer.propose(Command::Append(batch)))
            .await
            .unwrap_or_else(|_| {
                Err(ProposeError::Failed(format!(
                    "no outcome within {timeout:?} (the batch may still be committed)"
                )))
            });
        drop(permit);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Ok(CommandOutcome::Appended(batch)) = &outcome {
            let duplicates = batch
                .leaves
                .iter()
                .filter(|leaf| matches!(leaf, LeafOutcome::Duplicate { .. }))
                .count();
            let appended = batch.leaves.len() - duplicates;
            metrics
                .appended_leaves
                .get_or_create(&label)
                .inc_by(appended as u64);
            metrics
                .duplicate_leaves
                .get_or_create(&label)
                .inc_by(duplicates as u64);
        }
        // The batch's proofs, made once for all its answers; if making them fails each
        // answer goes without, and its handler makes its own.
        let batch_proofs = match (&outcome, proofs) {
            (Ok(CommandOutcome::Appended(batch)), Some(proofs)) => {
                let indices = batch.leaves.iter().map(|leaf| leaf.index()).collect();
                match proofs(batch.log.clone(), indices, batch.tree_size).await {
                    Ok(made) if made.len() == batch.leaves.len() => Some(made),
                    Ok(_) => None,
                    Err(error) => {
                        tracing::warn!(%error, "making a batch's inclusion proofs");
                        None
                    }
                }
            }
            _ => None,
        };
        answer(replies, outcome, batch_proofs);
    });
}

/// Hands every waiter its part of a batch's outcome.
fn answer(
    replies: Vec<oneshot::Sender<Result<Sequenced, SequenceError>>>,
    outcome: Result<CommandOutcome, ProposeError>,
    proofs: Option<Vec<tlog::InclusionProof>>,
) {
    let failure = match outcome {
        Ok(CommandOutcome::Appended(batch)) if batch.leaves.len() == replies.len() => {
            let checkpoint: Arc<str> = Arc::from(batch.checkpoint.as_str());
            let mut proofs = proofs.map(Vec::into_iter);
            for (reply, leaf) in replies.into_iter().zip(batch.leaves) {
                let _ = reply.send(Ok(Sequenced {
                    index: leaf.index(),
                    duplicate: matches!(leaf, LeafOutcome::Duplicate { .. }),
                    tree_size: batch.tree_size,
                    checkpoint: Arc::clone(&checkpoint),
                    inclusion_proof: proofs.as_mut().and_then(Iterator::next),
                }));
            }
            return;
        }
        Ok(CommandOutcome::Appended(batch)) => SequenceError::Unknown(format!(
            "batch of {} leaves answered for {}",
            replies.len(),
            batch.leaves.len()
        )),
        Ok(CommandOutcome::Refused(reason)) => SequenceError::Refused(reason),
        Ok(CommandOutcome::Frozen { log, successor }) => SequenceError::Frozen { log, successor },
        Ok(CommandOutcome::Rotated(_)) => {
            SequenceError::Unknown("batch answered as a rotation".into())
        }
        Ok(CommandOutcome::Nothing) => SequenceError::Unknown("batch applied as nothing".into()),
        Err(ProposeError::NotLeader(leader)) => SequenceError::NotLeader(leader),
        Err(ProposeError::Failed(reason)) => SequenceError::Unknown(reason),
    };
    for reply in replies {
        let _ = reply.send(Err(failure.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::env::Clock;
    use crate::state_machine::tests::{MemoryState, test_logs};
    use crate::state_machine::{Logs, apply};

    struct FixedClock;
    impl Clock for FixedClock {
        fn now_unix_ms(&self) -> u64 {
            1_700_000_000_000
        }
    }

    /// Applies proposals straight to an in-memory state machine, in proposal order, counting
    /// the batches: the sequencer's view of a Raft group that always commits.
    #[derive(Clone)]
    struct ApplyingProposer {
        state: Arc<Mutex<MemoryState>>,
        logs: Logs,
        batches: Arc<AtomicUsize>,
        delay: Duration,
    }

    impl Proposer for ApplyingProposer {
        async fn propose(&self, command: Command) -> Result<CommandOutcome, ProposeError> {
            tokio::time::sleep(self.delay).await;
            self.batches.fetch_add(1, Ordering::SeqCst);
            let mut state = self.state.lock().unwrap();
            apply(&mut *state, &self.logs, &command)
                .map_err(|e| ProposeError::Failed(e.to_string()))
        }
    }

    fn proposer(delay: Duration) -> ApplyingProposer {
        ApplyingProposer {
            state: Arc::default(),
            logs: test_logs(),
            batches: Arc::default(),
            delay,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_submissions_share_batches_and_get_distinct_indices() {
        let proposer = proposer(Duration::from_millis(2));
        let config = SequencerConfig {
            batch_leaves_max: 16,
            ..SequencerConfig::default()
        };
        let sequencer = Sequencer::start(
            config,
            proposer.clone(),
            Arc::new(FixedClock),
            Arc::default(),
        );
        let mut tasks = Vec::new();
        for i in 0..100 {
            let sequencer = sequencer.clone();
            tasks.push(tokio::spawn(async move {
                sequencer
                    .submit(
                        LogName("artifacts".into()),
                        format!("leaf {i}").into_bytes(),
                    )
                    .await
            }));
        }
        let mut indices = Vec::new();
        for task in tasks {
            let sequenced = task.await.unwrap().unwrap();
            assert!(sequenced.index < sequenced.tree_size);
            assert!(sequenced.checkpoint.starts_with("example.com/artifacts\n"));
            indices.push(sequenced.index);
        }
        indices.sort_unstable();
        assert_eq!(indices, (0..100).collect::<Vec<_>>());
        let batches = proposer.batches.load(Ordering::SeqCst);
        assert!(
            (7..=20).contains(&batches),
            "{batches} batches for 100 leaves"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_submission_is_proposed_after_the_age_limit() {
        let proposer = proposer(Duration::ZERO);
        let config = SequencerConfig {
            batch_age_max: Duration::from_millis(50),
            ..SequencerConfig::default()
        };
        let sequencer = Sequencer::start(config, proposer, Arc::new(FixedClock), Arc::default());
        let started = Instant::now();
        let sequenced = sequencer
            .submit(LogName("artifacts".into()), b"alone".to_vec())
            .await
            .unwrap();
        assert_eq!(sequenced.index, 0);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_and_refusals_reach_their_waiters() {
        let proposer = proposer(Duration::ZERO);
        let sequencer = Sequencer::start(
            SequencerConfig::default(),
            proposer,
            Arc::new(FixedClock),
            Arc::default(),
        );
        let log = LogName("artifacts".into());
        let first = sequencer
            .submit(log.clone(), b"same".to_vec())
            .await
            .unwrap();
        let again = sequencer.submit(log, b"same".to_vec()).await.unwrap();
        assert_eq!((again.index, again.duplicate), (first.index, true));
        let refused = sequencer
            .submit(LogName("nope".into()), b"x".to_vec())
            .await;
        assert!(
            matches!(refused, Err(SequenceError::Refused(_))),
            "{refused:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_pool_refuses_instead_of_queueing() {
        // Proposals take an hour, one at a time, and the queue holds 4: the rest must be refused.
        let proposer = proposer(Duration::from_secs(3600));
        let config = SequencerConfig {
            batch_leaves_max: 1,
            pool_leaves_max: 4,
            proposals_in_flight_max: 1,
            ..SequencerConfig::default()
        };
        let sequencer = Sequencer::start(config, proposer, Arc::new(FixedClock), Arc::default());
        let mut tasks = Vec::new();
        for i in 0..12 {
            let sequencer = sequencer.clone();
            tasks.push(tokio::spawn(async move {
                sequencer.submit(LogName("artifacts".into()), vec![i]).await
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut overloaded = 0;
        for task in tasks {
            if task.is_finished() {
                assert_eq!(task.await.unwrap(), Err(SequenceError::Overloaded(4)));
                overloaded += 1;
            }
        }
        assert!(overloaded >= 5, "only {overloaded} submissions refused");
    }

    #[tokio::test(start_paused = true)]
    async fn proposals_raft_never_answers_time_out_and_free_their_slots() {
        // The first two proposals are never answered (as openraft leaves an isolated leader's
        // proposals, or uncommitted ones a snapshot replaced); with two slots, the third
        // submission could never be proposed without the timeout.
        #[derive(Clone)]
        struct Unanswered {
            calls: Arc<AtomicUsize>,
            inner: ApplyingProposer,
        }
        impl Proposer for Unanswered {
            async fn propose(&self, command: Command) -> Result<CommandOutcome, ProposeError> {
                if self.calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    std::future::pending::<()>().await;
                }
                self.inner.propose(command).await
            }
        }
        let config = SequencerConfig {
            batch_leaves_max: 1,
            proposals_in_flight_max: 2,
            propose_timeout: Duration::from_secs(5),
            ..SequencerConfig::default()
        };
        let proposer = Unanswered {
            calls: Arc::default(),
            inner: proposer(Duration::ZERO),
        };
        let sequencer = Sequencer::start(config, proposer, Arc::new(FixedClock), Arc::default());
        let log = LogName("artifacts".into());
        let lost: Vec<_> = (0..2u8)
            .map(|i| {
                let (sequencer, log) = (sequencer.clone(), log.clone());
                tokio::spawn(async move { sequencer.submit(log, vec![i]).await })
            })
            .collect();
        tokio::task::yield_now().await;
        let started = Instant::now();
        let third = sequencer.submit(log, b"third".to_vec()).await.unwrap();
        assert_eq!(third.index, 0);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        for task in lost {
            let answer = task.await.unwrap();
            assert!(
                matches!(&answer, Err(SequenceError::Unknown(reason)) if reason.contains("no outcome within")),
                "{answer:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_proposal_reports_unknown_to_every_waiter() {
        #[derive(Clone)]
        struct Failing;
        impl Proposer for Failing {
            async fn propose(&self, _: Command) -> Result<CommandOutcome, ProposeError> {
                Err(ProposeError::Failed("leader changed".into()))
            }
        }
        let sequencer = Sequencer::start(
            SequencerConfig::default(),
            Failing,
            Arc::new(FixedClock),
            Arc::default(),
        );
        let result = sequencer
            .submit(LogName("artifacts".into()), b"x".to_vec())
            .await;
        assert_eq!(result, Err(SequenceError::Unknown("leader changed".into())));
    }
}
