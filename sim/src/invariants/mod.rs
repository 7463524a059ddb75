//! The log's safety properties, checked continuously (every checker tick, over a consistent
//! read view of every running node) and at the end of a run. One module per invariant, each
//! citing where it comes from; all of them record into one [`Checker`].
//!
//! Sources: docs/ARCHITECTURE.md "Invariants of the log": [`durability`] (1), [`append_only`]
//! (2), [`no_fork`] (3), [`reproducible`] (4), [`agreement`] (5), [`election`] (8: Raft's
//! persistent term and vote); [`monotonic`] (sizes and applied indices never go back, across
//! restarts), [`liveness`] (heal, then converge within a bound); with pushed witnesses,
//! [`witnessed`] (9: publication only with the quorum), [`cosigning`] (3 and 7, and a forking
//! log gets no quorum for the fork) and [`split_view`] (the witnesses catch a fork and keep both
//! signed checkpoints as evidence).

use std::collections::BTreeMap;

use node::state_machine::{LogHead, Logs};
use node::storage::StateView;
use node::types::{LogName, NodeId};
use tlog::Hash;
use tlog::keys::{Ed25519Verifier, Verifier, Verifiers};

use crate::cluster::Cluster;

pub mod agreement;
pub mod append_only;
pub mod cosigning;
pub mod durability;
pub mod election;
pub mod liveness;
pub mod monotonic;
pub mod no_fork;
pub mod reproducible;
pub mod split_view;
pub mod witnessed;

/// What one running node's state looked like at one tick.
#[derive(Debug)]
pub struct NodeState {
    /// The node.
    pub id: NodeId,
    /// Its last applied Raft index (0 if none).
    pub applied: u64,
    /// Each log's head.
    pub heads: BTreeMap<LogName, LogHead>,
    /// The read view the rest came from.
    pub view: StateView,
}

/// What a verified checkpoint says: origin, size, root.
type Opened = (String, u64, Hash);

/// Everything the invariants remember, and what they found.
#[derive(Debug)]
pub struct Checker {
    verifiers: BTreeMap<LogName, (String, Verifiers)>,
    /// [`durability`]: acknowledged leaves by (log, index).
    pub acked: BTreeMap<(LogName, u64), Vec<u8>>,
    /// [`durability`]: the index each acknowledged leaf got (dedup: one leaf, one index).
    pub leaf_at: BTreeMap<(LogName, Vec<u8>), u64>,
    /// [`durability`]: acknowledgements not yet checked against every node.
    pub fresh: Vec<(LogName, u64)>,
    /// [`durability`]: per (node, log), every acked index below this was checked on the node.
    pub checked_below: BTreeMap<(NodeId, LogName), u64>,
    /// [`no_fork`]: one root per (origin, size).
    pub roots: BTreeMap<(String, u64), Hash>,
    /// [`append_only`]: checkpoints seen but not yet shown consistent with a larger tree.
    pub unproven: BTreeMap<LogName, BTreeMap<u64, Hash>>,
    /// [`agreement`]: the heads seen at each applied index.
    pub by_applied: BTreeMap<u64, (NodeId, BTreeMap<LogName, LogHead>)>,
    /// [`monotonic`]: the last applied index and sizes seen per node.
    pub last_seen: BTreeMap<NodeId, (u64, BTreeMap<LogName, u64>)>,
    /// The last head checkpoint checked per (node, log), to skip unchanged heads.
    pub last_head: BTreeMap<(NodeId, LogName), String>,
    /// [`witnessed`]: the last published checkpoint checked per (node, log), with the
    /// witnessing process it came from and its size.
    pub last_published: BTreeMap<(NodeId, LogName), (usize, u64, String)>,
    /// [`witnessed`]: published checkpoints checked.
    pub published_seen: u64,
    /// [`witnessed`]: published notes already verified (a bounded cache).
    pub published_verified: std::collections::BTreeSet<String>,
    /// [`witnessed`]: signature lines already verified, by (note text, line): `None` for the
    /// log's signature, else the witness's policy name (a bounded cache).
    pub verified_lines: BTreeMap<(String, String), Option<String>>,
    /// Checkpoints checked.
    pub checkpoints_seen: u64,
    /// Notes already opened, by log and text: a batch's checkpoint reaches every client of
    /// the batch and every node's head, and one signature check is enough for the same bytes.
    opened: BTreeMap<(LogName, String), Result<Opened, String>>,
    /// What went wrong.
    pub violations: Vec<String>,
}

impl Checker {
    /// A checker for the cluster's logs.
    pub fn new(logs: &Logs) -> Checker {
        let mut verifiers = BTreeMap::new();
        for log in logs.iter() {
            let mut set = Verifiers::new();
            if let Ok(verifier) = Ed25519Verifier::new(&log.origin, log.signing_key.verifying_key())
            {
                let _ = set.push(Verifier::Ed25519(verifier));
            }
            verifiers.insert(log.name.clone(), (log.origin.clone(), set));
        }
        Checker {
            verifiers,
            acked: BTreeMap::new(),
            leaf_at: BTreeMap::new(),
            fresh: Vec::new(),
            checked_below: BTreeMap::new(),
            roots: BTreeMap::new(),
            unproven: BTreeMap::new(),
            by_applied: BTreeMap::new(),
            last_seen: BTreeMap::new(),
            last_head: BTreeMap::new(),
            last_published: BTreeMap::new(),
            published_seen: 0,
            published_verified: std::collections::BTreeSet::new(),
            verified_lines: BTreeMap::new(),
            checkpoints_seen: 0,
            opened: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    /// Records a violation.
    pub fn violation(&mut self, invariant: &str, what: impl std::fmt::Display) {
        if self.violations.len() < 20 {
            self.violations.push(format!("{invariant}: {what}"));
        }
    }

    /// Records a signed checkpoint of `log` seen anywhere (a client's answer, a node's head):
    /// it must verify, must not fork ([`no_fork`]), and joins the checkpoints that
    /// [`append_only`] proves consistent.
    pub fn saw_checkpoint(&mut self, log: &LogName, note: &str, whence: &str) {
        let Some((origin, verifiers)) = self.verifiers.get(log) else {
            self.violation("checkpoint", format!("{whence}: unknown log {log}"));
            return;
        };
        let origin = origin.clone();
        let key = (log.clone(), note.to_string());
        let opened = match self.opened.get(&key) {
            Some(opened) => opened.clone(),
            None => {
                let opened = tlog::checkpoint::open(note.as_bytes(), verifiers)
                    .map(|signed| {
                        (
                            signed.checkpoint.origin.clone(),
                            signed.checkpoint.size.0,
                            signed.checkpoint.root,
                        )
                    })
                    .map_err(|error| error.to_string());
                self.opened.insert(key, opened.clone());
                opened
            }
        };
        match opened {
            Ok((seen_origin, size, root)) if seen_origin == origin => {
                self.checkpoints_seen += 1;
                no_fork::record(self, &origin, size, root, whence);
                append_only::record(self, log, size, root);
            }
            Ok((seen_origin, ..)) => {
                self.violation(
                    "checkpoint",
                    format!("{whence}: origin {seen_origin} for log {log}"),
                );
            }
            Err(error) => {
                self.violation("checkpoint", format!("{whence}: does not verify: {error}"));
            }
        }
    }

    /// One continuous check over every running node.
    pub fn tick(&mut self, cluster: &Cluster) {
        let states = snapshot(self, cluster);
        for state in &states {
            for (log, head) in &state.heads {
                let key = (state.id, log.clone());
                if !head.checkpoint.is_empty() && self.last_head.get(&key) != Some(&head.checkpoint)
                {
                    self.saw_checkpoint(log, &head.checkpoint, &format!("n{} head", state.id));
                    self.last_head.insert(key, head.checkpoint.clone());
                }
            }
        }
        let raft_problems = std::mem::take(&mut cluster.router.history().violations);
        for problem in raft_problems {
            self.violation("election", problem);
        }
        if let Some(witnesses) = &cluster.witnesses {
            for (invariant, problem) in witnesses.take_violations() {
                self.violation(invariant, problem);
            }
        }
        witnessed::check(self, cluster);
        monotonic::check(self, &states);
        agreement::check(self, &states);
        durability::check(self, &states);
        append_only::check(self, &states);
    }

    /// The final check: everything [`Checker::tick`] does, plus every acknowledged leaf proven
    /// included in every running node's latest checkpoint.
    pub fn finish(&mut self, cluster: &Cluster) {
        self.tick(cluster);
        let states = snapshot(self, cluster);
        durability::check_all(self, &states);
        reproducible::check(self, &states);
        split_view::check(self, cluster);
    }
}

/// A consistent view of every running node.
pub fn snapshot(checker: &mut Checker, cluster: &Cluster) -> Vec<NodeState> {
    let mut states = Vec::new();
    for node in cluster.running() {
        let view = match node.reader().view() {
            Ok(view) => view,
            Err(error) => {
                checker.violation("read", format!("n{}: view: {error}", node.id()));
                continue;
            }
        };
        let applied = match view.last_applied() {
            Ok(applied) => applied.map_or(0, |id| id.index),
            Err(error) => {
                checker.violation("read", format!("n{}: last applied: {error}", node.id()));
                continue;
            }
        };
        let mut heads = BTreeMap::new();
        for log in cluster.logs.iter() {
            match view.head(&log.name) {
                Ok(Some(head)) => {
                    heads.insert(log.name.clone(), head);
                }
                Ok(None) => {}
                Err(error) => checker.violation("read", format!("n{}: head: {error}", node.id())),
            }
        }
        states.push(NodeState {
            id: node.id(),
            applied,
            heads,
            view,
        });
    }
    states
}

#[cfg(test)]
mod tests {
    use tlog::TreeSize;
    use tlog::checkpoint::Checkpoint;

    use super::*;
    use crate::cluster::sim_logs;

    fn signed(logs: &Logs, size: u64, root: Hash) -> String {
        let log = logs.get(&LogName("artifacts".into())).expect("configured");
        Checkpoint::new(&log.origin, TreeSize(size), root)
            .sign_ed25519(&log.signing_key)
            .expect("sign")
            .format()
            .expect("format")
    }

    #[test]
    fn two_roots_for_one_size_are_a_fork() {
        let logs = sim_logs();
        let mut checker = Checker::new(&logs);
        let log = LogName("artifacts".into());
        checker.saw_checkpoint(&log, &signed(&logs, 3, Hash::digest(b"a")), "c0");
        checker.saw_checkpoint(&log, &signed(&logs, 3, Hash::digest(b"a")), "c1");
        assert!(checker.violations.is_empty(), "{:?}", checker.violations);
        checker.saw_checkpoint(&log, &signed(&logs, 3, Hash::digest(b"b")), "c2");
        assert!(
            checker.violations[0].starts_with("no fork"),
            "{:?}",
            checker.violations
        );
    }

    #[test]
    fn an_unsigned_checkpoint_is_a_violation() {
        let logs = sim_logs();
        let mut checker = Checker::new(&logs);
        let forged = signed(&logs, 3, Hash::digest(b"a")).replace("3\n", "4\n");
        checker.saw_checkpoint(&LogName("artifacts".into()), &forged, "c0");
        assert!(
            checker.violations[0].starts_with("checkpoint"),
            "{:?}",
            checker.violations
        );
    }

    #[test]
    fn one_index_for_two_leaves_and_two_indices_for_one_leaf_are_violations() {
        let mut checker = Checker::new(&sim_logs());
        let log = LogName("artifacts".into());
        durability::record(&mut checker, &log, 0, b"x", "c0");
        durability::record(&mut checker, &log, 0, b"x", "c1");
        assert!(checker.violations.is_empty());
        durability::record(&mut checker, &log, 0, b"y", "c2");
        durability::record(&mut checker, &log, 1, b"x", "c3");
        assert_eq!(checker.violations.len(), 2, "{:?}", checker.violations);
    }
}
