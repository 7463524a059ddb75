//! Monotonic per node, across restarts: the applied index and every log's size never go back.
//!
//! Source: the storage's durability contract (`node::storage`): apply commits durably, so this
//! holds over crashes, and a regression after a restart means a lost fsync. A log only grows
//! (docs/ARCHITECTURE.md, "Invariants of the log" 2).

use std::collections::BTreeMap;

use super::{Checker, NodeState};

/// Compares each node with what it showed before.
pub fn check(checker: &mut Checker, states: &[NodeState]) {
    for state in states {
        let sizes: BTreeMap<_, _> = state
            .heads
            .iter()
            .map(|(log, head)| (log.clone(), head.tree_size))
            .collect();
        if let Some((applied, before)) = checker.last_seen.get(&state.id) {
            let mut problems = Vec::new();
            if state.applied < *applied {
                problems.push(format!("applied index {applied} -> {}", state.applied));
            }
            for (log, size) in before {
                let now = sizes.get(log).copied().unwrap_or(0);
                if now < *size {
                    problems.push(format!("{log} size {size} -> {now}"));
                }
            }
            for problem in problems {
                checker.violation("monotonic", format!("n{}: {problem}", state.id));
            }
        }
        checker.last_seen.insert(state.id, (state.applied, sizes));
    }
}
