//! Reproducible: the root recomputed from a node's stored leaves equals its signed root, and
//! the node's leaf index finds every stored leaf by its leaf hash and by each of its search keys
//! (the index is derived from the leaves, through crashes, merges and snapshot catch-up alike).
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 4 (a full recomputation from stored
//! leaves). Run at the end of a run (it reads every leaf).

use super::{Checker, NodeState};

/// Recomputes every log's tree from the leaves each node stores.
pub fn check(checker: &mut Checker, states: &[NodeState]) {
    for state in states {
        for (log, head) in &state.heads {
            let mut tree = tlog::MemoryTree::new();
            for index in 0..head.tree_size {
                match state.view.leaf(log, index) {
                    Ok(Some(leaf)) => {
                        let found = state.view.find_leaf(log, &tlog::leaf_hash(&leaf));
                        if !matches!(found, Ok(Some(found)) if found == index) {
                            checker.violation(
                                "reproducible",
                                format!(
                                    "n{}: {log} leaf {index} not found by its leaf hash: \
                                     {found:?}",
                                    state.id
                                ),
                            );
                            return;
                        }
                        for key in node::search::keys(&leaf) {
                            let found = state.view.search(log, &key, index.checked_sub(1), 1);
                            if !matches!(&found, Ok((found, _)) if found == &[index]) {
                                checker.violation(
                                    "reproducible",
                                    format!(
                                        "n{}: {log} leaf {index} not found by its search key \
                                         {key:?}: {found:?}",
                                        state.id
                                    ),
                                );
                                return;
                            }
                        }
                        if let Err(error) = tree.append(tlog::leaf_hash(&leaf)) {
                            checker.violation(
                                "reproducible",
                                format!("n{}: {log}: {error:?}", state.id),
                            );
                            return;
                        }
                    }
                    other => {
                        checker.violation(
                            "reproducible",
                            format!(
                                "n{}: {log} leaf {index} below size {}: {other:?}",
                                state.id, head.tree_size
                            ),
                        );
                        return;
                    }
                }
            }
            if tree.root() != head.root {
                checker.violation(
                    "reproducible",
                    format!(
                        "n{}: {log} root recomputed from {} stored leaves differs from its head",
                        state.id, head.tree_size
                    ),
                );
            }
        }
    }
}
