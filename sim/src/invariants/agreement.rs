//! Replica agreement: equal applied index implies equal heads (size, root, signed checkpoint),
//! across nodes and across time.
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 5. Replicas are compared only at equal
//! applied index: one that has not yet applied a trailing entry is behind, not divergent, and
//! comparing unequal ones raises false alarms.

use super::{Checker, NodeState};

/// Compares every node's heads with what any node had at the same applied index.
pub fn check(checker: &mut Checker, states: &[NodeState]) {
    for state in states {
        if state.applied == 0 {
            continue;
        }
        match checker.by_applied.get(&state.applied) {
            None => {
                checker
                    .by_applied
                    .insert(state.applied, (state.id, state.heads.clone()));
            }
            Some((other, heads)) if *heads != state.heads => {
                let other = *other;
                checker.violation(
                    "replica agreement",
                    format!(
                        "n{} and n{other} both applied index {} with different heads",
                        state.id, state.applied
                    ),
                );
            }
            Some(_) => {}
        }
    }
}
