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

/// The label set of per-member metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    /// The member's node id.
    pub node: String,
}

/// The label set of outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `issued`, or the error code the request was answered with (`invalid_token`,
    /// `rate_limited`, `not_logged`, ...).
    pub outcome: String,
}

/// The label set of per-class limit counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    /// `writes` or `certificates` (`rate_limit::Class::name`).
    pub class: String,
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
    /// Batches of verified leaves this node sent to the leader (`network::forward`).
    pub forwarded_batches: Counter,
    /// Leaves in those batches (divided by the batches: the mean batch size).
    pub forwarded_leaves: Counter,
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
    /// 1 when this node knows a leader, refreshed on scrape.
    pub raft_has_leader: Gauge,
    /// 1 on a learner (a node still catching up before it votes), refreshed on scrape.
    pub raft_is_learner: Gauge,
    /// On the leader, Raft entries each member's replication is behind the leader's log,
    /// refreshed on scrape (members only; a removed member's series goes).
    pub raft_member_lag_entries: Family<NodeLabel, Gauge>,
    /// On the leader, milliseconds since a quorum last acknowledged it (-1 elsewhere).
    pub raft_millis_since_quorum_ack: Gauge,
    /// Bytes free to the node on the file system of its data directory, refreshed on scrape
    /// (absent when the node's disks are not a directory).
    pub data_disk_available_bytes: Gauge,
    /// Size of that file system in bytes.
    pub data_disk_size_bytes: Gauge,
    /// Certificate requests to the CA, by outcome.
    pub certificate_requests: Family<OutcomeLabel, Counter>,
    /// Requests refused (429) by the limits per client address, by class.
    pub rate_limited_requests: Family<ClassLabel, Counter>,
    /// Replacements of the public listener's certificate files that were refused (the old
    /// certificate stays served).
    pub public_tls_reload_failures: Counter,
    /// When the public listener's served certificate expires (Unix seconds; absent without TLS).
    pub public_tls_not_after_seconds: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let metrics = Metrics {
            appended_leaves: Family::default(),
            duplicate_leaves: Family::default(),
            overloaded_submissions: Counter::default(),
            forwarded_batches: Counter::default(),
            forwarded_leaves: Counter::default(),
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
            raft_has_leader: Gauge::default(),
            raft_is_learner: Gauge::default(),
            raft_member_lag_entries: Family::default(),
            raft_millis_since_quorum_ack: Gauge::default(),
            data_disk_available_bytes: Gauge::default(),
            data_disk_size_bytes: Gauge::default(),
            certificate_requests: Family::default(),
            rate_limited_requests: Family::default(),
            public_tls_reload_failures: Counter::default(),
            public_tls_not_after_seconds: Gauge::default(),
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
            "forwarded_batches",
            "Batches of verified leaves sent to the leader",
            metrics.forwarded_batches.clone(),
        );
        registry.register(
            "forwarded_leaves",
            "Verified leaves sent to the leader in batches",
            metrics.forwarded_leaves.clone(),
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
        registry.register(
            "raft_has_leader",
            "1 if this node knows a Raft leader",
            metrics.raft_has_leader.clone(),
        );
        registry.register(
            "raft_is_learner",
            "1 if this node is a learner (catching up, not yet voting)",
            metrics.raft_is_learner.clone(),
        );
        registry.register(
            "raft_member_lag_entries",
            "On the leader: Raft entries a member's replication is behind the leader's log",
            metrics.raft_member_lag_entries.clone(),
        );
        registry.register(
            "raft_millis_since_quorum_ack",
            "On the leader: milliseconds since a quorum acknowledged it (-1 elsewhere)",
            metrics.raft_millis_since_quorum_ack.clone(),
        );
        registry.register(
            "data_disk_available_bytes",
            "Bytes available on the file system of the data directory",
            metrics.data_disk_available_bytes.clone(),
        );
        registry.register(
            "data_disk_size_bytes",
            "Size in bytes of the file system of the data directory",
            metrics.data_disk_size_bytes.clone(),
        );
        registry.register(
            "certificate_requests",
            "Certificate requests to the CA, by outcome",
            metrics.certificate_requests.clone(),
        );
        registry.register(
            "rate_limited_requests",
            "Requests refused by the limits per client address, by class",
            metrics.rate_limited_requests.clone(),
        );
        registry.register(
            "public_tls_reload_failures",
            "Refused replacements of the public listener's certificate files",
            metrics.public_tls_reload_failures.clone(),
        );
        registry.register(
            "public_tls_not_after_seconds",
            "Expiry (Unix seconds) of the public listener's served certificate",
            metrics.public_tls_not_after_seconds.clone(),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The metric names in `text`: every `cairn_` word, less the sample suffixes of counters
    /// (`_total`) and histograms (`_bucket`, `_sum`, `_count`).
    fn names_in(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("cairn_") {
            let word: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + word.len()..];
            let name = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(&word);
            names.insert(name.to_owned());
        }
        names
    }

    /// The alert rules and the dashboard in `deploy/` name only metrics a node exports, so a
    /// renamed metric cannot leave an alert that never fires.
    #[test]
    fn the_alert_rules_and_the_dashboard_name_only_exported_metrics() {
        // A family is rendered once it has a label set.
        let metrics = Metrics::default();
        let log = LogLabel {
            log: "artifacts".to_owned(),
        };
        metrics.appended_leaves.get_or_create(&log).inc();
        metrics.duplicate_leaves.get_or_create(&log).inc();
        metrics.tree_size.get_or_create(&log).set(1);
        let node = NodeLabel {
            node: "2".to_owned(),
        };
        metrics.raft_member_lag_entries.get_or_create(&node).set(1);
        let outcome = OutcomeLabel {
            outcome: "issued".to_owned(),
        };
        metrics.certificate_requests.get_or_create(&outcome).inc();
        let rendered = metrics.render().unwrap();
        let exported: BTreeSet<String> = rendered
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.split(' ').next())
            .map(str::to_owned)
            .collect();
        assert!(
            exported.contains("cairn_data_disk_available_bytes"),
            "{rendered}"
        );
        for (file, text) in [
            (
                "deploy/prometheus/cairn-alerts.yml",
                include_str!("../../deploy/prometheus/cairn-alerts.yml"),
            ),
            (
                "deploy/grafana/cairn-dashboard.json",
                include_str!("../../deploy/grafana/cairn-dashboard.json"),
            ),
        ] {
            let named = names_in(text);
            assert!(named.len() >= 8, "{file}: {named:?}");
            let unknown: Vec<&String> = named.difference(&exported).collect();
            assert!(unknown.is_empty(), "{file} names {unknown:?}, not exported");
        }
    }
}
