//! The workload: concurrent clients appending distinct, duplicate and retried leaves to both
//! logs on whichever node they think leads, through the sequence the HTTP handlers run
//! (`node::service::commit`, then `node::service::answer`, whose proof must lead to its
//! checkpoint), pausing up to `Options::think_max_ms` between requests, and reading from any node what verifiers and
//! mirrors read: checkpoints, leaves with their inclusion proofs, hash tiles and entry bundles,
//! each checked against the others and the signed root.
//!
//! A `NotLeader` answer redirects the client; a timeout, `Unknown` or `Stopped` means the
//! outcome is unknown, never that the leaf is absent (the entry may still commit): nothing is
//! concluded from it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use node::sequencer::SequenceError;
use node::types::{LogName, NodeId};

use crate::cluster::Cluster;
use crate::invariants::{Checker, durability};
use crate::rng::SimRng;
use crate::trace::event;

/// How long a client waits for an answer.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(3);

/// Counters over every client.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Submissions acknowledged with an index.
    pub acked: AtomicU64,
    /// Submissions whose outcome is unknown.
    pub unknown: AtomicU64,
    /// Redirects to another node.
    pub redirects: AtomicU64,
    /// Certificates issued (and so logged).
    pub certificates: AtomicU64,
    /// Acknowledged appends whose answer found no published (witnessed) checkpoint covering
    /// them in time.
    pub unwitnessed: AtomicU64,
}

/// What every client shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    /// The invariants.
    pub checker: Arc<Mutex<Checker>>,
    /// Set when clients must stop.
    pub stop: Arc<AtomicBool>,
    /// Counters.
    pub stats: Arc<ClientStats>,
}

/// What one submission came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Acknowledged at this index.
    Acked(u64),
    /// Try this node next.
    Redirect(Option<NodeId>),
    /// Unknown outcome (or the node is down or overloaded).
    Unknown,
}

/// Submits one leaf to `target` and records what the answer proves.
pub async fn submit_once(
    shared: &Shared,
    client: &str,
    target: NodeId,
    log: &LogName,
    leaf: Vec<u8>,
) -> Submitted {
    let cluster = &shared.cluster;
    let Some(node) = cluster.node(target) else {
        return Submitted::Redirect(None);
    };
    let paused = cluster.router.paused_until(target);
    let answer = tokio::time::timeout(SUBMIT_TIMEOUT, async {
        // A paused node takes the request when it resumes.
        if let Some(resume) = paused {
            tokio::time::sleep_until(resume).await;
        }
        node::service::commit(&node, log, leaf.clone()).await
    })
    .await;
    let witnessed = node
        .witnessing()
        .is_some_and(|witnessing| witnessing.is_witnessed(log));
    match answer {
        Ok(Ok(sequenced)) => {
            {
                let mut checker = shared
                    .checker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if sequenced.index >= sequenced.tree_size {
                    checker.violation(
                        "durability",
                        format!(
                            "{client}: index {} outside its checkpoint of size {}",
                            sequenced.index, sequenced.tree_size
                        ),
                    );
                }
                durability::record(&mut checker, log, sequenced.index, &leaf, client);
                checker.saw_checkpoint(log, &sequenced.checkpoint, client);
            }
            shared.stats.acked.fetch_add(1, Ordering::Relaxed);
            event(
                &cluster.trace,
                client,
                &format!(
                    "ack n{target} {log} {}{} size {}",
                    sequenced.index,
                    if sequenced.duplicate { " dup" } else { "" },
                    sequenced.tree_size
                ),
            );
            // The answer a client gets, made as the HTTP handlers make it: with witnesses, it
            // waits for a cosigned checkpoint covering the entry; the entry is committed either
            // way. Its proof must lead to its checkpoint's root.
            let (index, tree_size) = (sequenced.index, sequenced.tree_size);
            match node::service::answer(&node, log, &leaf, sequenced).await {
                Ok(appended) => {
                    if witnessed && let Some(witnesses) = &cluster.witnesses {
                        crate::invariants::witnessed::check_note(
                            &mut shared
                                .checker
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner),
                            &witnesses.policy,
                            log,
                            &appended.checkpoint,
                            client,
                        );
                    }
                }
                Err(node::service::AnswerError::NotWitnessed { .. }) => {
                    shared.stats.unwitnessed.fetch_add(1, Ordering::Relaxed);
                    event(
                        &cluster.trace,
                        client,
                        &format!("not witnessed n{target} {log} size {tree_size}"),
                    );
                }
                Err(error @ node::service::AnswerError::Proof { .. }) => event(
                    &cluster.trace,
                    client,
                    &format!("no answer n{target} {log}: {error}"),
                ),
                Err(error) => shared
                    .checker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .violation("workload", format!("{client}: n{target} {log}: {error}")),
            }
            Submitted::Acked(index)
        }
        Ok(Err(SequenceError::NotLeader(leader))) => {
            shared.stats.redirects.fetch_add(1, Ordering::Relaxed);
            Submitted::Redirect(leader.map(|(id, _)| id))
        }
        Ok(Err(SequenceError::Refused(reason))) => {
            let mut checker = shared
                .checker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            checker.violation(
                "workload",
                format!("{client}: valid batch refused: {reason}"),
            );
            Submitted::Unknown
        }
        Ok(Err(error)) => {
            shared.stats.unknown.fetch_add(1, Ordering::Relaxed);
            event(
                &cluster.trace,
                client,
                &format!("unknown n{target} {log}: {error}"),
            );
            Submitted::Unknown
        }
        Err(_) => {
            shared.stats.unknown.fetch_add(1, Ordering::Relaxed);
            event(&cluster.trace, client, &format!("timeout n{target} {log}"));
            Submitted::Unknown
        }
    }
}

/// One client, until `stop` is set.
pub async fn client(shared: Shared, id: u64, mut rng: SimRng, duplicates: f64) {
    let name = format!("c{id}");
    let logs: Vec<LogName> = shared
        .cluster
        .logs
        .iter()
        .map(|log| log.name.clone())
        .collect();
    let mut target = *rng.pick(&shared.cluster.ids()).unwrap_or(&1);
    let mut history: Vec<(LogName, Vec<u8>)> = Vec::new();
    let mut next = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if rng.chance(0.2) {
            read_checkpoint(&shared, &name, &mut rng, &logs);
        }
        if rng.chance(0.1) {
            read_and_verify(&shared, &name, &mut rng, &logs);
        }
        if rng.chance(0.15) {
            target = issue_once(&shared, &name, target, &mut rng).await;
            let think_max_ms = shared.cluster.options.think_max_ms.max(1);
            tokio::time::sleep(Duration::from_millis(rng.range(0..think_max_ms))).await;
            continue;
        }
        let again = if rng.chance(duplicates) {
            rng.pick(&history).cloned()
        } else {
            None
        };
        let (log, leaf) = if let Some(again) = again {
            again
        } else if rng.chance(duplicates) {
            let log = rng
                .pick(&logs)
                .cloned()
                .unwrap_or_else(|| LogName("artifacts".into()));
            (log, format!("shared-{}", rng.range(0..64)).into_bytes())
        } else {
            next += 1;
            let log = rng
                .pick(&logs)
                .cloned()
                .unwrap_or_else(|| LogName("artifacts".into()));
            (log, format!("{name}-{next}").into_bytes())
        };
        if history.len() < 256 {
            history.push((log.clone(), leaf.clone()));
        }
        match submit_once(&shared, &name, target, &log, leaf).await {
            Submitted::Acked(_) => {}
            Submitted::Redirect(Some(leader)) if leader != target => target = leader,
            Submitted::Redirect(_) | Submitted::Unknown => {
                // The membership may have changed: pick among the nodes there are now.
                target = *rng.pick(&shared.cluster.ids()).unwrap_or(&1);
                tokio::time::sleep(Duration::from_millis(rng.range(10..100))).await;
            }
        }
        let think_max_ms = shared.cluster.options.think_max_ms.max(1);
        tokio::time::sleep(Duration::from_millis(rng.range(0..think_max_ms))).await;
    }
}

/// Reads a log's latest checkpoint from a random running node.
fn read_checkpoint(shared: &Shared, client: &str, rng: &mut SimRng, logs: &[LogName]) {
    let nodes = shared.cluster.running();
    let (Some(node), Some(log)) = (rng.pick(&nodes), rng.pick(logs)) else {
        return;
    };
    let checkpoint = node
        .reader()
        .view()
        .ok()
        .and_then(|view| view.checkpoint(log).ok().flatten());
    if let Some(checkpoint) = checkpoint {
        let mut checker = shared
            .checker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        checker.saw_checkpoint(log, &checkpoint, &format!("{client} read n{}", node.id()));
    }
}

/// Reads what a verifier or a mirror reads from a random running node, at its current
/// checkpoint: a leaf, its inclusion proof, its level-0 hash tile and its entry bundle, and
/// checks them against each other and the signed root (the checkpoint itself goes through
/// [`Checker::saw_checkpoint`](crate::invariants::Checker::saw_checkpoint)).
fn read_and_verify(shared: &Shared, client: &str, rng: &mut SimRng, logs: &[LogName]) {
    let nodes = shared.cluster.running();
    let (Some(node), Some(log)) = (rng.pick(&nodes), rng.pick(logs)) else {
        return;
    };
    let Ok(view) = node.reader().view() else {
        return;
    };
    let (Ok(Some(head)), Ok(Some(checkpoint))) = (view.head(log), view.checkpoint(log)) else {
        return;
    };
    if head.tree_size == 0 {
        return;
    }
    let index = rng.range(0..head.tree_size);
    let whence = format!(
        "{client} read n{} {log} {index}/{}",
        node.id(),
        head.tree_size
    );
    let problem = (|| -> Result<(), String> {
        let leaf = view
            .leaf(log, index)
            .map_err(|e| e.to_string())?
            .ok_or("leaf missing below the size")?;
        let leaf_hash = tlog::leaf_hash(&leaf);
        view.inclusion_proof(log, index, head.tree_size)
            .map_err(|e| e.to_string())?
            .verify(&leaf_hash, &head.root)
            .map_err(|e| format!("inclusion proof: {e}"))?;
        let tile_index = index / 256;
        let first = tile_index * 256;
        let width = u16::try_from((head.tree_size - first).min(256)).unwrap_or(256);
        let tile = view
            .hash_tile(log, tlog::tile::Tile::hashes(0, tile_index, width))
            .map_err(|e| e.to_string())?
            .ok_or("level-0 tile missing")?;
        let bundle = view
            .entry_bundle(log, tile_index, width)
            .map_err(|e| e.to_string())?
            .ok_or("entry bundle missing")?;
        let entries = tlog::tile::decode_bundle(&bundle, width).map_err(|e| e.to_string())?;
        tlog::tile::check_bundle_against_tile(&entries, &tile)
            .map_err(|e| format!("bundle against tile: {e}"))?;
        let position = usize::try_from(index - first).unwrap_or(usize::MAX);
        if entries.get(position) != Some(&leaf.as_slice()) {
            return Err("the bundle holds another leaf than the leaf read".into());
        }
        Ok(())
    })();
    let mut checker = shared
        .checker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    checker.saw_checkpoint(log, &checkpoint, &whence);
    if let Err(problem) = problem {
        checker.violation("read", format!("{whence}: {problem}"));
    }
}

/// Asks node `target` for a certificate; returns the node to ask next time. A returned
/// certificate's two leaves are recorded as acknowledged appends of the certificate log: the
/// durability invariant then holds the CA to "logged before returned".
async fn issue_once(shared: &Shared, client: &str, target: NodeId, rng: &mut SimRng) -> NodeId {
    let cluster = &shared.cluster;
    let Some(node) = cluster.node(target) else {
        return *rng.pick(&cluster.ids()).unwrap_or(&1);
    };
    if node.ca().is_none() {
        return target;
    }
    let Ok(spki) = crate::issuance::client_key() else {
        return target;
    };
    let email = format!("{client}@sim.invalid");
    let paused = cluster.router.paused_until(target);
    let answer = tokio::time::timeout(SUBMIT_TIMEOUT, async {
        if let Some(resume) = paused {
            tokio::time::sleep_until(resume).await;
        }
        crate::issuance::request(&node, &email, &spki).await
    })
    .await;
    drop(node);
    let log = LogName("certificates".into());
    match answer {
        Ok(crate::issuance::Issuance::Issued {
            precertificate,
            certificate,
        }) => {
            let mut checker = shared
                .checker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let whence = format!("{client} certificate");
            for (index, leaf, checkpoint) in [&precertificate, &certificate] {
                durability::record(&mut checker, &log, *index, leaf, &whence);
                checker.saw_checkpoint(&log, checkpoint, &whence);
            }
            drop(checker);
            shared.stats.certificates.fetch_add(1, Ordering::Relaxed);
            event(
                &cluster.trace,
                client,
                &format!(
                    "certificate n{target} precertificate {} certificate {}",
                    precertificate.0, certificate.0
                ),
            );
            target
        }
        Ok(crate::issuance::Issuance::NotLeader) => {
            let leader = cluster
                .node(target)
                .and_then(|node| node.raft().metrics().borrow().current_leader);
            event(
                &cluster.trace,
                client,
                &format!("certificate redirect n{target}"),
            );
            leader.unwrap_or_else(|| *rng.pick(&cluster.ids()).unwrap_or(&1))
        }
        Ok(crate::issuance::Issuance::Refused(reason)) => {
            event(
                &cluster.trace,
                client,
                &format!("certificate refused n{target}: {reason}"),
            );
            *rng.pick(&cluster.ids()).unwrap_or(&1)
        }
        Err(_) => {
            event(
                &cluster.trace,
                client,
                &format!("certificate timeout n{target}"),
            );
            *rng.pick(&cluster.ids()).unwrap_or(&1)
        }
    }
}
