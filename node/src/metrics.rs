//! The node's Prometheus metrics.
//!
//! Counters and histograms are updated where the events happen (the sequencer); gauges that
//! mirror state (tree sizes, Raft term and role) are refreshed when `/metrics` is scraped, so
//! they can never drift from the state they describe.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The label set of per-log metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LogLabel {
    /// The log's short name.
    pub log: String,
}

/// Every metric the node exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Leaves appended, by log (on the node that sequenced them).
    pub appended_leaves: Family<LogLabel, Counter>,
    /// Submissions answered with an existing entry, by log.
    pub duplicate_leaves: Family<LogLabel, Counter>,
    /// Submissions refused because the sequencer pool was full.
    pub overloaded_submissions: Counter,
    /// Leaves per proposed batch.
    pub batch_leaves: Histogram,
    /// Seconds from proposing a batch to its outcome (commit and apply).
    pub commit_seconds: Histogram,
    /// Leaves in each log, refreshed on scrape.
    pub tree_size: Family<LogLabel, Gauge>,
    /// The Raft term, refreshed on scrape.
    pub raft_term: Gauge,
    /// 1 on the leader, 0 elsewhere, refreshed on scrape.
    pub raft_is_leader: Gauge,
    /// The last applied Raft index, refreshed on scrape.
    pub raft_applied_index: Gauge,
    /// The last Raft log index on this node, refreshed on scrape.
    pub raft_log_index: Gauge,
    /// Seconds from first asking the witnesses about a checkpoint to its quorum (`witnessing`).
    pub witness_cosign_seconds: Histogram,
    /// Witnessing rounds that ended without a quorum.
    pub witness_quorum_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let metrics = Metrics {
            appended_leaves: Family::default(),
            duplicate_leaves: Family::default(),
            overloaded_submissions: Counter::default(),
            batch_leaves: Histogram::new([1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0]),
            commit_seconds: Histogram::new([
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
            tree_size: Family::default(),
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_log_index: Gauge::default(),
            witness_cosign_seconds: Histogram::new([
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
            witness_quorum_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "appended_leaves",
            "Leaves appended by this node's sequencer",
            metrics.appended_leaves.clone(),
        );
        registry.register(
            "duplicate_leaves",
            "Submissions answered with an existing entry",
            metrics.duplicate_leaves.clone(),
        );
        registry.register(
            "overloaded_submissions",
            "Submissions refused because the pool was full",
            metrics.overloaded_submissions.clone(),
        );
        registry.register(
            "batch_leaves",
            "Leaves per proposed batch",
            metrics.batch_leaves.clone(),
        );
        registry.register(
            "commit_seconds",
            "Seconds from proposing a batch to its applied outcome",
            metrics.commit_seconds.clone(),
        );
        registry.register("tree_size", "Leaves in each log", metrics.tree_size.clone());
        registry.register("raft_term", "Current Raft term", metrics.raft_term.clone());
        registry.register(
            "raft_is_leader",
            "1 if this node is the Raft leader",
            metrics.raft_is_leader.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Last applied Raft log index",
            metrics.raft_applied_index.clone(),
        );
        registry.register(
            "raft_log_index",
            "Last Raft log index on this node",
            metrics.raft_log_index.clone(),
        );
        registry.register(
            "witness_cosign_seconds",
            "Seconds from asking the witnesses about a checkpoint to its quorum",
            metrics.witness_cosign_seconds.clone(),
        );
        registry.register(
            "witness_quorum_failures",
            "Witnessing rounds that ended without a quorum",
            metrics.witness_quorum_failures.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
