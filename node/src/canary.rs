//! Planted bugs, to prove the simulator catches real ones (feature `canaries`, off by default;
//! only the simulator's tests and a `cairn-sim` built with `--features canaries` turn it on, so a
//! production build has none of this code).
//!
//! The active canary is per thread: the simulator runs a whole cluster on one thread (a
//! current-thread runtime with [`crate::env::Blocking::Inline`]), so parallel test runs each
//! choose their own. Each plant sits at the exact place of the code it breaks, under
//! `#[cfg(feature = "canaries")]`.

use std::cell::Cell;

/// A known bug class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canary {
    /// `save_vote` commits with `Durability::None` and never flushes.
    VoteNotSynced,
    /// `apply` commits `last_applied` and the state changes in two transactions, with a yield
    /// point (virtual time passing) between them.
    ApplyNotAtomic,
    /// The leader answers with a checkpoint it signed over its own log plus the batch, before
    /// the batch is committed.
    SignBeforeCommit,
    /// The leader answers with the indices it predicts, before the batch is committed.
    AckBeforeCommit,
    /// A flush of the leaf index's tail into a run leaves out the flush's last leaf (the
    /// off-by-one at a range boundary that loses an index row once its tail row is deleted):
    /// that leaf is no longer found by its hash or its keys, and a resubmission of it would be
    /// logged again.
    IndexFlushDropsALeaf,
    /// The filter segment written with a new run of the leaf index leaves out the run's last
    /// pair: lookups skip the run for that key, so the leaf is no longer found by it (a
    /// resubmission would be logged again).
    FilterMissesAKey,
    /// The leaf stream's writer does not write a log's partly filled last chunk at the end of
    /// a transaction: the bytes of the newest leaves are lost when it commits.
    StreamTailNotWritten,
}

impl Canary {
    /// Every canary.
    pub const ALL: [Canary; 7] = [
        Canary::VoteNotSynced,
        Canary::ApplyNotAtomic,
        Canary::SignBeforeCommit,
        Canary::AckBeforeCommit,
        Canary::IndexFlushDropsALeaf,
        Canary::FilterMissesAKey,
        Canary::StreamTailNotWritten,
    ];

    /// The canary's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Canary::VoteNotSynced => "vote-not-synced",
            Canary::ApplyNotAtomic => "apply-not-atomic",
            Canary::SignBeforeCommit => "sign-before-commit",
            Canary::AckBeforeCommit => "ack-before-commit",
            Canary::IndexFlushDropsALeaf => "index-flush-drops-a-leaf",
            Canary::FilterMissesAKey => "filter-misses-a-key",
            Canary::StreamTailNotWritten => "stream-tail-not-written",
        }
    }

    /// The canary with this command-line name.
    pub fn from_name(name: &str) -> Option<Canary> {
        Canary::ALL.into_iter().find(|canary| canary.name() == name)
    }
}

thread_local! {
    static ACTIVE: Cell<Option<Canary>> = const { Cell::new(None) };
}

/// Plants `canary` (or none) for everything this thread runs from now on.
pub fn set(canary: Option<Canary>) {
    ACTIVE.with(|active| active.set(canary));
}

/// Whether `canary` is planted on this thread.
pub fn is(canary: Canary) -> bool {
    ACTIVE.with(Cell::get) == Some(canary)
}
