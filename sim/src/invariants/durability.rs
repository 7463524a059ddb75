//! Durability of acknowledged appends: every acknowledged (index, leaf) is at that index, byte
//! for byte, on every node that has applied that far, and in every later checkpoint.
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 1. Failed or timed-out submissions are
//! unknown, never assumed absent; dedup holds: one canonical leaf has one index. Continuously,
//! each node is compared with the acknowledgements below its size; at the end, each
//! acknowledged leaf's inclusion proof, computed from each node's stored tiles, must verify
//! against that node's latest signed root, which [`super::append_only`] ties to every later
//! checkpoint.

use node::types::LogName;

use super::{Checker, NodeState};

/// Records an acknowledgement: a client was told `leaf` is at `index` of `log`.
pub fn record(checker: &mut Checker, log: &LogName, index: u64, leaf: &[u8], whence: &str) {
    match checker.leaf_at.get(&(log.clone(), leaf.to_vec())) {
        Some(&known) if known != index => {
            checker.violation(
                "durability",
                format!("{whence}: one {log} leaf acknowledged at {known} and at {index} (dedup)"),
            );
        }
        Some(_) => {}
        None => {
            checker.leaf_at.insert((log.clone(), leaf.to_vec()), index);
        }
    }
    let key = (log.clone(), index);
    match checker.acked.get(&key) {
        Some(known) if known != leaf => {
            checker.violation(
                "durability",
                format!("{whence}: {log} index {index} acknowledged for two different leaves"),
            );
        }
        Some(_) => {}
        None => {
            checker.acked.insert(key.clone(), leaf.to_vec());
            checker.fresh.push(key);
        }
    }
}

fn check_one(checker: &mut Checker, state: &NodeState, log: &LogName, index: u64) {
    let Some(expected) = checker.acked.get(&(log.clone(), index)) else {
        return;
    };
    let size = state.heads.get(log).map_or(0, |head| head.tree_size);
    if index >= size {
        return;
    }
    match state.view.leaf(log, index) {
        Ok(Some(stored)) if stored == *expected => {}
        Ok(Some(_)) => {
            checker.violation(
                "durability",
                format!(
                    "n{}: {log} index {index} holds another leaf than acknowledged",
                    state.id
                ),
            );
        }
        Ok(None) => checker.violation(
            "durability",
            format!(
                "n{}: {log} index {index} < size {size} is missing",
                state.id
            ),
        ),
        Err(error) => checker.violation(
            "durability",
            format!("n{}: reading {log} {index}: {error}", state.id),
        ),
    }
}

/// Checks the fresh acknowledgements on every node, and every node's newly applied range.
pub fn check(checker: &mut Checker, states: &[NodeState]) {
    let fresh = std::mem::take(&mut checker.fresh);
    for (log, index) in &fresh {
        for state in states {
            check_one(checker, state, log, *index);
        }
    }
    for state in states {
        for (log, head) in &state.heads {
            let key = (state.id, log.clone());
            let from = checker.checked_below.get(&key).copied().unwrap_or(0);
            if from >= head.tree_size {
                // Nothing new (a smaller size is [`super::monotonic`]'s to report).
                continue;
            }
            let indices: Vec<u64> = checker
                .acked
                .range((log.clone(), from)..(log.clone(), head.tree_size))
                .map(|((_, index), _)| *index)
                .collect();
            for index in indices {
                check_one(checker, state, log, index);
            }
            checker.checked_below.insert(key, head.tree_size.max(from));
        }
    }
}

/// Checks every acknowledgement on every node, with an inclusion proof against the node's
/// latest signed root. The proofs of one node and log are made together
/// ([`node::storage::StateView::inclusion_proofs`]), so each inner hash is derived once.
pub fn check_all(checker: &mut Checker, states: &[NodeState]) {
    for state in states {
        for (log, head) in &state.heads {
            let acked: Vec<(u64, Vec<u8>)> = checker
                .acked
                .range((log.clone(), 0)..(log.clone(), head.tree_size))
                .map(|((_, index), leaf)| (*index, leaf.clone()))
                .collect();
            for (index, _) in &acked {
                check_one(checker, state, log, *index);
            }
            let indices: Vec<u64> = acked.iter().map(|(index, _)| *index).collect();
            let proofs = match state.view.inclusion_proofs(log, &indices, head.tree_size) {
                Ok(proofs) => proofs,
                Err(error) => {
                    checker.violation(
                        "durability",
                        format!("n{}: {log} inclusion proofs: {error}", state.id),
                    );
                    continue;
                }
            };
            for ((index, leaf), proof) in acked.iter().zip(proofs) {
                if let Err(error) = proof.verify(&tlog::leaf_hash(leaf), &head.root) {
                    checker.violation(
                        "durability",
                        format!(
                            "n{}: {log} index {index} not included in its checkpoint: {error}",
                            state.id
                        ),
                    );
                }
            }
        }
    }
}
