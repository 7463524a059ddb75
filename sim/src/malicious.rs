//! The lying log operator (`Options::malicious_log`): holding the log's real signing key, it
//! signs a second checkpoint for a size the log has, over a tree with the last leaf changed,
//! and shows it to fewer witnesses than the policy's quorum (if for two seconds every victim
//! already holds the log's latest size, as on a quiet log, it forks one leaf ahead instead: a
//! second root for the size the log signs next) (each from the size that witness
//! holds, with a consistency proof in the forked tree, so they cosign it), while the honest
//! nodes keep pushing the honest checkpoints to every witness. The invariants
//! ([`crate::invariants::cosigning`], [`crate::invariants::split_view`]) then require that the
//! fork never gathers a quorum and that every witness ends up holding the evidence.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tlog::checkpoint::Checkpoint;
use tlog::{MemoryTree, TreeSize, leaf_hash};

use crate::cluster::Cluster;
use crate::rng::SimRng;
use crate::trace::event;
use crate::witnessing::{Fork, Witnesses};

/// Waits for a moment in the safety phase, then forks the artifact log once.
pub async fn operate(
    cluster: Arc<Cluster>,
    witnesses: Arc<Witnesses>,
    stop: Arc<AtomicBool>,
    mut rng: SimRng,
) {
    let safety = u64::try_from(cluster.options.safety.as_millis()).unwrap_or(10_000);
    tokio::time::sleep(Duration::from_millis(
        rng.range(safety / 10..safety / 2 + 1),
    ))
    .await;
    // Fewer than the quorum (at least one): shown to a quorum, a fork would be cosigned by one,
    // which no witness can prevent, only gossip reveal.
    let mut order: Vec<usize> = (0..witnesses.list.len()).collect();
    rng.shuffle(&mut order);
    let count =
        usize::try_from(cluster.options.witness_quorum.saturating_sub(1).max(1)).unwrap_or(1);
    let victims: BTreeSet<usize> = order.into_iter().take(count).collect();
    let since = tokio::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let ahead = since.elapsed() > Duration::from_secs(2);
        match try_fork(&cluster, &witnesses, &victims, ahead) {
            Ok(()) => return,
            Err(NoFork::Failed(why)) => witnesses.set_operator_failure(why),
            Err(NoFork::NoMoment) => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.range(5..50))).await;
    }
}

/// Why [`try_fork`] did not fork.
enum NoFork {
    /// The moment was wrong (a victim down, no node running, nothing the victims have not
    /// cosigned): the operator waits. A run whose every moment is wrong (a victim down for
    /// the whole safety phase) gives it no chance, which is no violation.
    NoMoment,
    /// The moment was right and forking failed: the split-view check reports it.
    Failed(String),
}

impl From<String> for NoFork {
    fn from(why: String) -> NoFork {
        NoFork::Failed(why)
    }
}

impl From<&str> for NoFork {
    fn from(why: &str) -> NoFork {
        NoFork::Failed(why.to_owned())
    }
}

/// Forks the log at the size of the most advanced running node (or one leaf beyond it if
/// `ahead`), if every victim is up and below that size (so the fork extends what each victim
/// cosigned).
fn try_fork(
    cluster: &Cluster,
    witnesses: &Witnesses,
    victims: &BTreeSet<usize>,
    ahead: bool,
) -> Result<(), NoFork> {
    let log = cluster.logs.iter().next().ok_or("no log")?;
    if victims.iter().any(|&v| !witnesses.is_up(v)) {
        // A victim is down.
        return Err(NoFork::NoMoment);
    }
    let mut best = None;
    for node in cluster.running() {
        let view = node.reader().view().map_err(|e| e.to_string())?;
        let size = view
            .head(&log.name)
            .map_err(|e| e.to_string())?
            .map_or(0, |h| h.tree_size);
        if best.as_ref().is_none_or(|(s, _)| size > *s) {
            best = Some((size, view));
        }
    }
    // No node running: nothing to fork from.
    let (head, view) = best.ok_or(NoFork::NoMoment)?;
    // The fork keeps the honest leaves below `size - 1` and forges the last.
    let size = if ahead { head + 1 } else { head };
    let held = |v: usize| {
        witnesses.list[v]
            .witness
            .store()
            .latest(&log.origin)
            .ok()
            .flatten()
            .map_or(0, |s| s.size)
    };
    if size < 2 || victims.iter().any(|&v| held(v) >= size) {
        // No size the victims have not cosigned yet.
        return Err(NoFork::NoMoment);
    }
    let mut tree = MemoryTree::new();
    for index in 0..size - 1 {
        let leaf = view
            .leaf(&log.name, index)
            .map_err(|e| e.to_string())?
            .ok_or("a leaf is missing")?;
        tree.append(leaf_hash(&leaf)).map_err(|e| e.to_string())?;
    }
    tree.append(leaf_hash(
        format!("forged by the operator at {size}").as_bytes(),
    ))
    .map_err(|e| e.to_string())?;
    let root = tree.root();
    let note = Checkpoint::new(&log.origin, TreeSize(size), root)
        .sign_ed25519(&log.signing_key)
        .map_err(|e| e.to_string())?
        .format()
        .map_err(|e| e.to_string())?;
    witnesses.set_fork(Fork {
        log: log.name.clone(),
        origin: log.origin.clone(),
        size,
        root,
        victims: victims.clone(),
    });
    let names: Vec<&str> = victims
        .iter()
        .map(|&v| witnesses.list[v].name.as_str())
        .collect();
    event(
        &cluster.trace,
        "operator",
        &format!("fork {} size {size} shown to {names:?}", log.name),
    );
    for &victim in victims {
        let old = held(victim);
        let proof = if old == 0 {
            Vec::new()
        } else {
            tlog::proof::consistency_proof(&tree.store, TreeSize(old), TreeSize(size))
                .map_err(|e| e.to_string())?
                .hashes
        };
        let body = witness::request::AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: note.clone(),
        }
        .to_body();
        let reply = witnesses.add_checkpoint(victim, body.as_bytes(), "operator");
        event(
            &cluster.trace,
            "operator",
            &format!("{} answered {}", witnesses.list[victim].name, reply.status),
        );
    }
    Ok(())
}
