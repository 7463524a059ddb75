//! Publication with witnesses: every checkpoint a node publishes as witnessed (what its
//! checkpoint endpoint serves and its appends answer with) carries valid cosignatures that meet
//! the policy's quorum, is signed by the log like every other checkpoint (so no-fork and
//! append-only hold for it too), and a node's published size never goes back while it runs.
//! After healing, every node publishes a checkpoint covering every acknowledged entry
//! ([`covered`], part of [`super::liveness`]).
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 8 (with witnessing configured, no
//! checkpoint is served or returned without its quorum); `research/reliability.md` I9 (every
//! acknowledged entry in a signed and cosigned checkpoint once faults heal).

use node::types::LogName;
use tlog::policy::Policy;

use super::Checker;
use crate::cluster::Cluster;

/// Checks a checkpoint published as witnessed, seen at `whence`.
pub fn check_note(checker: &mut Checker, policy: &Policy, log: &LogName, note: &str, whence: &str) {
    checker.published_seen += 1;
    // A batch's clients and every node's endpoint show the same note: verify it once.
    if checker.published_verified.contains(note) {
        return;
    }
    if let Err(error) = policy.verify_checkpoint(note.as_bytes()) {
        checker.violation(
            "witnessed",
            format!("{whence}: {log} checkpoint published without its witness quorum: {error}"),
        );
    }
    checker.saw_checkpoint(log, note, whence);
    if checker.published_verified.len() >= 4096 {
        checker.published_verified.clear();
    }
    checker.published_verified.insert(note.to_owned());
}

/// Checks what every running node publishes now (only what changed since the last look).
pub fn check(checker: &mut Checker, cluster: &Cluster) {
    let Some(witnesses) = &cluster.witnesses else {
        return;
    };
    for node in cluster.running() {
        let Some(witnessing) = node.witnessing.get() else {
            continue;
        };
        // One witnessing per process: a restart starts from nothing published.
        let process = std::sync::Arc::as_ptr(witnessing) as usize;
        for log in cluster.logs.iter() {
            let Some(published) = witnessing.published(&log.name) else {
                continue;
            };
            let key = (node.id, log.name.clone());
            let last = checker.last_published.get(&key);
            if last.is_some_and(|(p, _, note)| *p == process && **note == *published.note) {
                continue;
            }
            if let Some((p, size, _)) = last
                && *p == process
                && *size > published.size
            {
                let size = *size;
                checker.violation(
                    "witnessed",
                    format!(
                        "n{} published {} size {} after size {size}",
                        node.id, log.name, published.size
                    ),
                );
            }
            check_note(
                checker,
                &witnesses.policy,
                &log.name,
                &published.note,
                &format!("n{} published", node.id),
            );
            checker
                .last_published
                .insert(key, (process, published.size, published.note.to_string()));
        }
    }
}

/// Whether every running node publishes, for every log, a checkpoint covering every
/// acknowledged entry; what is missing otherwise.
pub fn covered(checker: &Checker, cluster: &Cluster) -> Result<(), String> {
    if cluster.witnesses.is_none() {
        return Ok(());
    }
    let mut needed: std::collections::BTreeMap<&LogName, u64> = Default::default();
    for (log, index) in checker.acked.keys() {
        let size = needed.entry(log).or_default();
        *size = (*size).max(index + 1);
    }
    for node in cluster.running() {
        let Some(witnessing) = node.witnessing.get() else {
            return Err(format!("n{} runs no witnessing", node.id));
        };
        for (log, size) in &needed {
            let published = witnessing.published(log).map_or(0, |p| p.size);
            if published < *size {
                return Err(format!(
                    "n{} has published {log} only up to size {published}, not {size}",
                    node.id
                ));
            }
        }
    }
    Ok(())
}
