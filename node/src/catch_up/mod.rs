//! The catch-up seam: where a node installing a snapshot gets the leaves it lacks.
//!
//! A snapshot is a small descriptor (per log: size, edge, root, signed checkpoint; see
//! [`storage::snapshot`](crate::storage::snapshot)), not the log. The node installing it fetches
//! the missing leaves as C2SP entry bundles from the members the snapshot lists, appends them
//! through the same routine as apply, and installs the descriptor's heads only once the root it
//! computed equals the descriptor's. Fetching is a trait so that storage never touches the
//! network: production passes [`network::bundles::HttpBundleSource`](crate::network::bundles),
//! tests and the simulator pass a source that reads another store in memory. The fetch loop
//! that drives it is `storage::install`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::types::{LogName, NodeAddress};

/// What [`BundleSource::entry_bundle`] returns.
pub type BundleFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send + 'a>>;

/// The integrated times of a range of leaves, as batch rows: `(first leaf index, time)`, the
/// time (Unix milliseconds) holding for every leaf from that index to the next row's; `None`
/// where the member does not know it (it caught up by snapshot itself).
pub type BatchTimes = Vec<(u64, Option<u64>)>;

/// What [`BundleSource::batch_times`] returns.
pub type TimesFuture<'a> =
    Pin<Box<dyn Future<Output = Result<BatchTimes, FetchError>> + Send + 'a>>;

/// The most rows a batch-times answer may have: one per leaf of a 256-leaf chunk.
pub const BATCH_TIMES_ROWS_MAX: u64 = 256;

/// Fetches entry bundles from cluster members.
///
/// Nothing a source returns is trusted: the installer decodes each bundle strictly, recomputes
/// the tree from its leaves and installs nothing unless the root matches the snapshot's signed
/// one, so a source may be any member, up to date or not, honest or not.
pub trait BundleSource: Send + Sync + 'static {
    /// The encoded entry bundle of leaves `index * 256 .. index * 256 + width` of `log`, as
    /// `member` serves it (`GET {cluster_url}/logs/{log}/tile/entries/{index}[.p/{width}]`).
    fn entry_bundle<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        index: u64,
        width: u16,
    ) -> BundleFuture<'a>;

    /// The integrated times of leaves `first .. end` of `log` (at most
    /// [`BATCH_TIMES_ROWS_MAX`] leaves) as `member` knows them: a first row at exactly `first`,
    /// then its batch rows inside the range; [`FetchError::NotFound`] if `member` has fewer
    /// than `end` leaves. Times are not covered by the log's root, so production asks members
    /// over the authenticated cluster listener; the installer still checks the shape of the
    /// answer.
    fn batch_times<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        first: u64,
        end: u64,
    ) -> TimesFuture<'a>;
}

/// Why a member's batch-times answer was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchTimesError {
    /// The first row is not at the first leaf asked for.
    #[error("the first row is not at leaf {0}")]
    First(u64),
    /// More rows than leaves.
    #[error("{rows} rows for {leaves} leaves")]
    TooMany {
        /// Rows given.
        rows: usize,
        /// Leaves asked for.
        leaves: u64,
    },
    /// A row is not after the previous one, or not inside the range.
    #[error("row {0} out of order or range")]
    Order(u64),
}

/// Whether `rows` is a well-formed answer for leaves `first .. end`: a first row at `first`,
/// then strictly increasing indices below `end`.
pub fn check_batch_times(rows: &BatchTimes, first: u64, end: u64) -> Result<(), BatchTimesError> {
    if rows.first().map(|row| row.0) != Some(first) {
        return Err(BatchTimesError::First(first));
    }
    if rows.len() as u64 > end.saturating_sub(first) {
        return Err(BatchTimesError::TooMany {
            rows: rows.len(),
            leaves: end.saturating_sub(first),
        });
    }
    for pair in rows.windows(2) {
        if pair[1].0 <= pair[0].0 || pair[1].0 >= end {
            return Err(BatchTimesError::Order(pair[1].0));
        }
    }
    Ok(())
}

/// Fills the unknown parts of `known` with `other` (both well-formed answers for the same
/// range): a leaf's time is `known`'s if it has one, else `other`'s; equal neighbours merge.
pub fn merge_batch_times(known: &BatchTimes, other: &BatchTimes) -> BatchTimes {
    let at = |rows: &BatchTimes, index: u64| {
        rows.iter()
            .take_while(|row| row.0 <= index)
            .last()
            .and_then(|row| row.1)
    };
    let mut points: Vec<u64> = known.iter().chain(other).map(|row| row.0).collect();
    points.sort_unstable();
    points.dedup();
    let mut merged: BatchTimes = Vec::new();
    for index in points {
        let time = at(known, index).or_else(|| at(other, index));
        if merged.last().is_none_or(|last| last.1 != time) {
            merged.push((index, time));
        }
    }
    merged
}

/// A shared bundle source, as a state store holds it.
pub type SharedBundleSource = Arc<dyn BundleSource>;

/// The cluster's members as this node last saw them (from Raft's current membership), shared
/// by the node, which keeps it current, and the installer, which fetches from them too.
///
/// A snapshot's own membership can be long gone: a snapshot taken before a membership change
/// lists members that were removed since, and a node that could fetch only from those would
/// never finish installing it (found by the simulator, seed 23 of `sim/tests/regressions.rs`).
#[derive(Clone, Debug, Default)]
pub struct KnownMembers(Arc<std::sync::Mutex<Vec<NodeAddress>>>);

impl KnownMembers {
    /// Replaces the members.
    pub fn set(&self, members: Vec<NodeAddress>) {
        *self.lock() = members;
    }

    /// The members.
    pub fn get(&self) -> Vec<NodeAddress> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<NodeAddress>> {
        // A plain list, whole after any panic.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a member did not hand over a bundle. Every variant makes the installer try the next
/// member.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The member does not have the bundle (it is behind, or the log is unknown to it).
    #[error("{member} has no entry bundle {index} (width {width}) of log {log}")]
    NotFound {
        /// The member's API URL.
        member: String,
        /// The log.
        log: LogName,
        /// The bundle's index.
        index: u64,
        /// The bundle's width.
        width: u16,
    },
    /// The member could not be reached or answered with an error.
    #[error("fetching from {member}: {reason}")]
    Failed {
        /// The member's API URL.
        member: String,
        /// What went wrong.
        reason: String,
    },
}

/// A source with no bundles, for stores that never catch up from others (openraft's storage
/// suite, tools that open a data directory read-only). An install that needs leaves fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBundles;

impl BundleSource for NoBundles {
    fn entry_bundle<'a>(
        &'a self,
        member: &'a NodeAddress,
        _log: &'a LogName,
        _index: u64,
        _width: u16,
    ) -> BundleFuture<'a> {
        let member = member.api_url.clone();
        Box::pin(async move {
            Err(FetchError::Failed {
                member,
                reason: "this store has no bundle source".into(),
            })
        })
    }

    fn batch_times<'a>(
        &'a self,
        member: &'a NodeAddress,
        _log: &'a LogName,
        _first: u64,
        _end: u64,
    ) -> TimesFuture<'a> {
        let member = member.api_url.clone();
        Box::pin(async move {
            Err(FetchError::Failed {
                member,
                reason: "this store has no bundle source".into(),
            })
        })
    }
}

/// How persistently an install tries before it gives up.
///
/// openraft treats a failed `install_snapshot` as a fatal storage error (the Raft core stops),
/// so transient unavailability is retried here: a round tries every member for each bundle,
/// and after a round in which no member could serve a bundle the installer waits
/// `retry_delay` (doubling, capped at `retry_delay_max`) before the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatchUpPolicy {
    /// Rounds per log before the install fails.
    pub rounds: u32,
    /// The wait after the first round that found no member able to serve a bundle.
    pub retry_delay: Duration,
    /// The longest wait between rounds.
    pub retry_delay_max: Duration,
    /// Entry bundles fetched at once, in order.
    pub bundles_in_flight: usize,
    /// Entry bundles stored per write transaction.
    pub bundles_per_chunk: u64,
}

impl Default for CatchUpPolicy {
    /// About a minute of retries: long enough to ride out a leader election or a member
    /// restarting, short enough that a node cut off from every member stops visibly.
    fn default() -> CatchUpPolicy {
        CatchUpPolicy {
            rounds: 10,
            retry_delay: Duration::from_millis(250),
            retry_delay_max: Duration::from_secs(10),
            // 16 round trips overlap; 4,096 leaves (a full batch) per transaction.
            bundles_in_flight: 16,
            bundles_per_chunk: 16,
        }
    }
}

impl CatchUpPolicy {
    /// The same waits with no limit on the rounds (`u32::MAX` rounds of at most
    /// `retry_delay_max` each: longer than any process lives).
    pub(crate) fn without_round_limit(self) -> CatchUpPolicy {
        CatchUpPolicy {
            rounds: u32::MAX,
            ..self
        }
    }

    /// The wait after failed round `round` (0-based).
    pub(crate) fn delay(&self, round: u32) -> Duration {
        self.retry_delay
            .saturating_mul(1u32 << round.min(16))
            .min(self.retry_delay_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_times_merge_fills_unknown_leaves() {
        let known = vec![(10, Some(5)), (20, None), (30, Some(7))];
        let other = vec![(10, None), (15, Some(6)), (25, Some(8))];
        assert_eq!(
            merge_batch_times(&known, &other),
            vec![(10, Some(5)), (20, Some(6)), (25, Some(8)), (30, Some(7))]
        );
        let unknown = vec![(10, None)];
        assert_eq!(merge_batch_times(&unknown, &unknown), unknown);
        assert_eq!(merge_batch_times(&unknown, &known), known);
    }

    #[test]
    fn batch_times_shape_is_checked() {
        assert!(check_batch_times(&vec![(10, Some(1)), (12, None)], 10, 20).is_ok());
        assert!(check_batch_times(&vec![], 10, 20).is_err());
        assert!(check_batch_times(&vec![(9, Some(1))], 10, 20).is_err());
        assert!(check_batch_times(&vec![(10, Some(1)), (20, Some(2))], 10, 20).is_err());
        assert!(check_batch_times(&vec![(10, Some(1)), (10, Some(2))], 10, 20).is_err());
        assert!(check_batch_times(&vec![(10, None), (11, None)], 10, 11).is_err());
    }
}
