//! Split views: when the lying operator ([`crate::malicious`]) has shown some witnesses a
//! second root for a size, every pushed witness must, once faults heal, hold evidence of it: a
//! split view kept in its store (refused at its door, or found by gossip) with the operator's
//! checkpoint on one side and one the honest log signed on the other. An honest log gives no
//! witness any evidence, and a run told to fork must have forked.
//!
//! Source: docs/internals.md, "The witness" (split views): a log that equivocates is caught by
//! a witness refusing the second root or by the witnesses' gossip, and the alarm is raised with
//! both signed checkpoints as evidence.

use node::types::LogName;
use tlog::Hash;
use tlog::checkpoint::Checkpoint;
use tlog::note::Note;
use witness::store::SplitView;

use super::Checker;
use crate::cluster::Cluster;
use crate::witnessing::Fork;

/// Whether `evidence` shows `fork` against a checkpoint the honest log signed (`honest` gives
/// the honest root at a size).
pub fn shows_fork(evidence: &SplitView, fork: &Fork, honest: impl Fn(u64) -> Option<Hash>) -> bool {
    let open = |text: &str| {
        Note::parse(text.as_bytes())
            .ok()
            .and_then(|note| Checkpoint::parse(note.text()).ok())
    };
    let (Some(a), Some(b)) = (open(&evidence.first), open(&evidence.second)) else {
        return false;
    };
    let is_fork = |c: &Checkpoint| c.size.0 == fork.size && c.root == fork.root;
    let is_honest = |c: &Checkpoint| c.root != fork.root && honest(c.size.0) == Some(c.root);
    evidence.origin == fork.origin
        && ((is_fork(&a) && is_honest(&b)) || (is_fork(&b) && is_honest(&a)))
}

/// The root the honest log has at `size`, from the first running node that has it.
fn honest_root(cluster: &Cluster, log: &LogName, size: u64) -> Option<Hash> {
    cluster.running().iter().find_map(|node| {
        let view = node.reader().view().ok()?;
        let head = view.head(log).ok()??;
        (head.tree_size >= size)
            .then(|| view.root_at(log, size).ok())
            .flatten()
    })
}

/// Whether every pushed witness holds evidence of the operator's fork (if there is one); what
/// is missing otherwise.
pub fn alarmed(cluster: &Cluster) -> Result<(), String> {
    let Some(witnesses) = &cluster.witnesses else {
        return Ok(());
    };
    let Some(fork) = witnesses.fork() else {
        return Ok(());
    };
    for pushed in &witnesses.list {
        let evidence = pushed
            .witness
            .store()
            .split_views()
            .map_err(|e| format!("{}: {e}", pushed.name))?;
        let shown = evidence
            .iter()
            .any(|e| shows_fork(e, &fork, |size| honest_root(cluster, &fork.log, size)));
        if !shown {
            return Err(format!(
                "witness {} holds no evidence of the fork of {} at size {} ({} split views)",
                pushed.name,
                fork.origin,
                fork.size,
                evidence.len()
            ));
        }
    }
    Ok(())
}

/// The final check: a run with the lying operator forked and every witness raised the alarm;
/// a run without one left no witness any evidence.
pub fn check(checker: &mut Checker, cluster: &Cluster) {
    let Some(witnesses) = &cluster.witnesses else {
        return;
    };
    match witnesses.fork() {
        Some(_) => {
            if let Err(problem) = alarmed(cluster) {
                checker.violation("split view", problem);
            }
        }
        None if cluster.options.malicious_log => {
            // Only a failure at a moment the operator could fork is the harness's fault; a run
            // that never gave it one (a victim down throughout) has nothing to check.
            if let Some(why) = witnesses.operator_failure() {
                checker.violation(
                    "split view",
                    format!("the lying operator could fork but failed: {why}"),
                );
            }
        }
        None => {
            for pushed in &witnesses.list {
                let evidence = pushed.witness.store().split_views().unwrap_or_default();
                if let Some(first) = evidence.first() {
                    checker.violation(
                        "split view",
                        format!(
                            "{} holds evidence against an honest log: {}",
                            pushed.name, first.reason
                        ),
                    );
                }
            }
        }
    }
}
