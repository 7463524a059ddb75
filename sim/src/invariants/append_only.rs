//! Append-only: every pair of signed checkpoints of a log seen anywhere is consistent.
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 2, checked with RFC 9162 consistency
//! proofs. Each checkpoint seen is proven consistent with the largest tree a running node
//! holds, by a consistency proof computed from that node's stored tiles and verified against
//! both signed roots; consistency with a common larger tree makes every pair consistent. The
//! node's own root is tied to everyone else's by [`super::no_fork`].

use node::types::LogName;
use tlog::Hash;

use super::{Checker, NodeState};

/// Queues a checkpoint for proof.
pub fn record(checker: &mut Checker, log: &LogName, size: u64, root: Hash) {
    if size > 0 {
        checker
            .unproven
            .entry(log.clone())
            .or_default()
            .insert(size, root);
    }
}

/// Proves the queued checkpoints against the largest tree of each log.
pub fn check(checker: &mut Checker, states: &[NodeState]) {
    let logs: Vec<LogName> = checker.unproven.keys().cloned().collect();
    for log in logs {
        let Some(largest) = states
            .iter()
            .filter_map(|state| state.heads.get(&log).map(|head| (head.tree_size, state)))
            .max_by_key(|(size, state)| (*size, std::cmp::Reverse(state.id)))
            .map(|(_, state)| state)
        else {
            continue;
        };
        let Some(head) = largest.heads.get(&log) else {
            continue;
        };
        let pending = checker.unproven.remove(&log).unwrap_or_default();
        let mut keep = std::collections::BTreeMap::new();
        for (size, root) in pending {
            if size > head.tree_size {
                keep.insert(size, root);
                continue;
            }
            if size == head.tree_size {
                if root != head.root {
                    checker.violation(
                        "append-only",
                        format!(
                            "{log} size {size}: checkpoint root differs from n{}'s",
                            largest.id
                        ),
                    );
                }
                continue;
            }
            let verified = largest
                .view
                .consistency_proof(&log, size, head.tree_size)
                .map_err(|error| error.to_string())
                .and_then(|proof| {
                    proof
                        .verify(&root, &head.root)
                        .map_err(|error| error.to_string())
                });
            if let Err(error) = verified {
                checker.violation(
                    "append-only",
                    format!(
                        "{log}: checkpoint at size {size} not consistent with n{}'s size {}: {error}",
                        largest.id, head.tree_size
                    ),
                );
            }
        }
        if !keep.is_empty() {
            checker.unproven.insert(log, keep);
        }
    }
}
