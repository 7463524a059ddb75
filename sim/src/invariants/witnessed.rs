//! Publication with witnesses: every checkpoint a node publishes as witnessed (what its
//! checkpoint endpoint serves and its appends answer with) carries valid cosignatures that meet
//! the policy's quorum, is signed by the log like every other checkpoint (so no-fork and
//! append-only hold for it too), and a node's published size never goes back while it runs.
//! After healing, every node publishes a checkpoint covering every acknowledged entry
//! ([`covered`], part of [`super::liveness`]).
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 9 (with witnessing configured, no
//! checkpoint is served or returned without its quorum); and, for liveness, once faults heal
//! every acknowledged entry is in a signed and cosigned checkpoint.

use node::types::LogName;
use tlog::note::NoteSignature;
use tlog::policy::{Policy, PolicyVerified};

use super::Checker;
use crate::cluster::Cluster;

/// Checks a checkpoint published as witnessed, seen at `whence`.
pub fn check_note(checker: &mut Checker, policy: &Policy, log: &LogName, note: &str, whence: &str) {
    checker.published_seen += 1;
    // A batch's clients and every node's endpoint show the same note, its cosignature lines
    // perhaps in another order (which does not change what verifies): verify it once.
    let key = canonical(note);
    if checker.published_verified.contains(&key) {
        return;
    }
    if !verified_by_lines(checker, policy, note) {
        match policy.verify_checkpoint(note.as_bytes()) {
            Ok(verified) => remember_lines(checker, &verified, note),
            Err(error) => checker.violation(
                "witnessed",
                format!("{whence}: {log} checkpoint published without its witness quorum: {error}"),
            ),
        }
    }
    checker.saw_checkpoint(log, note, whence);
    if checker.published_verified.len() >= 4096 {
        checker.published_verified.clear();
    }
    checker.published_verified.insert(key);
}

/// Whether every signature line of `note` was verified before over the same text (nodes
/// publish the same cosignatures in different combinations), with the log's among them and the
/// witnesses' meeting the quorum. `false` means: verify it in full.
fn verified_by_lines(checker: &Checker, policy: &Policy, note: &str) -> bool {
    let Some((text, lines)) = note.split_once("\n\n") else {
        return false;
    };
    let mut log_signed = false;
    let mut witnesses = Vec::new();
    for line in lines.lines() {
        match checker
            .verified_lines
            .get(&(text.to_owned(), line.to_owned()))
        {
            Some(None) => log_signed = true,
            Some(Some(witness)) => witnesses.push(witness.as_str()),
            None => return false,
        }
    }
    log_signed && policy.is_satisfied_by(witnesses)
}

/// Remembers which line of a note that verified in full is the log's and which a witness's.
fn remember_lines(checker: &mut Checker, verified: &PolicyVerified<'_>, note: &str) {
    let Some((text, lines)) = note.split_once("\n\n") else {
        return;
    };
    if checker.verified_lines.len() >= 16384 {
        checker.verified_lines.clear();
    }
    for line in lines.lines() {
        let Ok(parsed) = NoteSignature::parse_lines(&format!("{line}\n")) else {
            continue;
        };
        let Some(signature) = parsed.first() else {
            continue;
        };
        let signer =
            if signature.name == verified.log.name() && signature.key_id == verified.log.key_id() {
                None
            } else if let Some(cosignature) = verified.cosignatures.iter().find(|c| {
                c.witness.verifier.name() == signature.name
                    && c.witness.verifier.key_id() == signature.key_id
            }) {
                Some(cosignature.witness.name.clone())
            } else {
                continue;
            };
        checker
            .verified_lines
            .insert((text.to_owned(), line.to_owned()), signer);
    }
}

/// The note's text with its signature lines sorted.
fn canonical(note: &str) -> String {
    let Some((text, lines)) = note.split_once("\n\n") else {
        return note.to_owned();
    };
    let mut lines: Vec<&str> = lines.lines().collect();
    lines.sort_unstable();
    format!("{text}\n\n{}", lines.join("\n"))
}

/// Checks what every running node publishes now (only what changed since the last look).
pub fn check(checker: &mut Checker, cluster: &Cluster) {
    let Some(witnesses) = &cluster.witnesses else {
        return;
    };
    for node in cluster.running() {
        let Some(witnessing) = node.witnessing() else {
            continue;
        };
        // One witnessing per process: a restart starts from nothing published.
        let process = std::sync::Arc::as_ptr(witnessing) as usize;
        for log in cluster.logs.iter() {
            let Some(published) = witnessing.published(&log.name) else {
                continue;
            };
            let key = (node.id(), log.name.clone());
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
                        node.id(),
                        log.name,
                        published.size
                    ),
                );
            }
            check_note(
                checker,
                &witnesses.policy,
                &log.name,
                &published.note,
                &format!("n{} published", node.id()),
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
        let Some(witnessing) = node.witnessing() else {
            return Err(format!("n{} runs no witnessing", node.id()));
        };
        for (log, size) in &needed {
            let published = witnessing.published(log).map_or(0, |p| p.size);
            if published < *size {
                return Err(format!(
                    "n{} has published {log} only up to size {published}, not {size}",
                    node.id()
                ));
            }
        }
    }
    Ok(())
}
