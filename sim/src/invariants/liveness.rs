//! Liveness after healing: with every fault removed and every node restarted, writes succeed
//! within a bound, and every acknowledged entry is covered by a signed checkpoint on every node;
//! with pushed witnesses, every node also publishes a cosigned checkpoint covering every
//! acknowledged entry ([`super::witnessed::covered`]), and after a fork every witness holds its
//! evidence ([`super::split_view::alarmed`]).
//!
//! Source: the liveness mode of TigerBeetle's simulator, the VOPR: heal, then converge within a
//! bound, which catches livelocks that checking safety alone never sees.

use super::Checker;
use crate::cluster::Cluster;

/// Whether every running node covers every acknowledged leaf with its signed checkpoint, and
/// all nodes hold the same heads. Returns what is still missing.
pub fn converged(checker: &mut Checker, cluster: &Cluster) -> Result<(), String> {
    let states = super::snapshot(checker, cluster);
    if states.len() != cluster.ids().len() {
        return Err(format!(
            "{} of {} nodes running",
            states.len(),
            cluster.ids().len()
        ));
    }
    for (log, index) in checker.acked.keys() {
        for state in &states {
            let covered = state
                .heads
                .get(log)
                .is_some_and(|head| head.tree_size > *index && !head.checkpoint.is_empty());
            if !covered {
                return Err(format!("n{} does not cover {log} index {index}", state.id));
            }
        }
    }
    let first = states.first().map(|state| &state.heads);
    if states.iter().any(|state| Some(&state.heads) != first) {
        return Err("heads differ".into());
    }
    drop(states);
    super::witnessed::covered(checker, cluster)?;
    super::split_view::alarmed(cluster)
}
