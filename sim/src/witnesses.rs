//! Witnesses in the simulation: two production witnesses (`witness::Witness`, the function the
//! HTTP server and the poller drive) over in-memory stores that outlive every node crash, each
//! polling a random running node's checkpoint of every log now and then, with the consistency
//! proof from the size it last cosigned, as `cairn witness poll` does.
//!
//! An honest cluster never makes a witness refuse: a 422 (a bad proof, or a second root for a
//! size: a split view, which the witness keeps as evidence) or any other refusal but 409 (the
//! witness is ahead of what the poller thought; it resynchronises) is a violation of the no-fork
//! and append-only invariants as a witness sees them (docs/ARCHITECTURE.md, "Invariants of the
//! log" 2, 3 and 7).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use node::types::LogName;
use witness::Witness;

use crate::rng::SimRng;
use crate::trace::event;
use crate::workload::Shared;

/// Makes a witness named `name` that witnesses every log of the cluster.
fn make(shared: &Shared, name: &str, rng: &mut SimRng) -> Result<Witness, String> {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let cosigner = tlog::keys::Cosigner::new(name, ed25519_dalek::SigningKey::from_bytes(&seed))
        .map_err(|e| e.to_string())?;
    let mut policy = String::new();
    for log in shared.cluster.logs.iter() {
        let verifier =
            tlog::keys::Ed25519Verifier::new(&log.origin, log.signing_key.verifying_key())
                .map_err(|e| e.to_string())?;
        policy.push_str(&format!(
            "log {}\n",
            tlog::keys::Verifier::Ed25519(verifier).to_vkey()
        ));
    }
    let logs = witness::config::Logs::from_policy_text(&policy).map_err(|e| e.to_string())?;
    Ok(Witness::new(
        cosigner,
        logs,
        Arc::new(witness::store::MemoryStore::new()),
    ))
}

/// One witness, polling until `stop` is set.
pub async fn poll(shared: Shared, name: String, mut rng: SimRng) {
    let witness = match make(&shared, &name, &mut rng) {
        Ok(witness) => witness,
        Err(error) => {
            shared
                .checker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .violation("witness", format!("{name}: {error}"));
            return;
        }
    };
    // The size this poller believes the witness holds, per log (corrected by 409s).
    let mut believed: BTreeMap<LogName, u64> = BTreeMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.range(200..1500))).await;
        let nodes = shared.cluster.running();
        let Some(node) = rng.pick(&nodes).cloned() else {
            continue;
        };
        for log in shared.cluster.logs.iter() {
            let old = believed.get(&log.name).copied().unwrap_or(0);
            let Ok(view) = node.reader().view() else {
                continue;
            };
            let (Ok(Some(head)), Ok(Some(checkpoint))) =
                (view.head(&log.name), view.checkpoint(&log.name))
            else {
                continue;
            };
            if head.tree_size < old {
                // A node behind the witness: nothing to add.
                continue;
            }
            let proof = if old == 0 || old == head.tree_size {
                Vec::new()
            } else {
                match view.consistency_proof(&log.name, old, head.tree_size) {
                    Ok(proof) => proof.hashes,
                    Err(_) => continue,
                }
            };
            drop(view);
            let body = witness::request::AddCheckpoint {
                old_size: old,
                proof,
                checkpoint,
            }
            .to_body();
            let now = node.clock().now_unix_ms() / 1000;
            let reply = witness.add_checkpoint(body.as_bytes(), now);
            match reply.status {
                200 => {
                    if head.tree_size > old {
                        event(
                            &shared.cluster.trace,
                            &name,
                            &format!(
                                "cosigned n{} {} size {}",
                                node.id(),
                                log.name,
                                head.tree_size
                            ),
                        );
                    }
                    believed.insert(log.name.clone(), head.tree_size);
                }
                409 => {
                    if let Ok(size) = reply.body.trim().parse::<u64>() {
                        believed.insert(log.name.clone(), size);
                    }
                }
                status => {
                    event(
                        &shared.cluster.trace,
                        &name,
                        &format!(
                            "refused n{} {} size {}: {status}",
                            node.id(),
                            log.name,
                            head.tree_size
                        ),
                    );
                    shared
                        .checker
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .violation(
                            "witness",
                            format!(
                                "{name} refused n{}'s {} checkpoint of size {} (old {old}): {status} {}",
                                node.id(),
                                log.name,
                                head.tree_size,
                                reply.body.trim()
                            ),
                        );
                }
            }
        }
    }
}
