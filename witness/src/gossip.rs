//! Gossip between witnesses: a log that shows each witness a different tree can keep every
//! witness happy on its own; only comparing what the witnesses cosigned reveals it. For each
//! log, gossip reads every witness's latest cosigned checkpoint, checks the log's signature,
//! and checks that every pair is one history: equal sizes must have equal roots, and the
//! smaller must be consistent with the larger by a proof from the log (or its tiles).

use tlog::checkpoint::Checkpoint;
use tlog::note::Note;
use tlog::{ConsistencyProof, TreeSize};

use crate::config::Logs;
use crate::fetch::{Http, LogClient, TileCache, witness_checkpoint_path};
use crate::store::SplitView;

/// What gossip found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipReport {
    /// Per origin, the sizes that were compared and found to be one history.
    pub consistent: Vec<(String, Vec<u64>)>,
    /// The split views found.
    pub split_views: Vec<SplitView>,
    /// What could not be checked (a witness or the log unreachable, a bad signature).
    pub errors: Vec<String>,
}

struct Seen {
    witness: String,
    checkpoint: Checkpoint,
    note: String,
}

/// Compares the latest cosigned checkpoints of `witnesses` (base URLs) for every log in `logs`.
pub async fn compare(http: &Http, logs: &Logs, witnesses: &[String]) -> GossipReport {
    let mut report = GossipReport::default();
    for log in logs.iter() {
        let mut seen: Vec<Seen> = Vec::new();
        for witness in witnesses {
            let url = format!(
                "{}/{}",
                witness.trim_end_matches('/'),
                witness_checkpoint_path(&log.origin)
            );
            let bytes = match http.get_ok(&url).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    report.errors.push(error.to_string());
                    continue;
                }
            };
            let opened = Note::parse(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|note| {
                    note.verify(&log.verifiers).map_err(|e| e.to_string())?;
                    let checkpoint = Checkpoint::parse(note.text()).map_err(|e| e.to_string())?;
                    Ok(checkpoint)
                });
            match opened {
                Ok(checkpoint) if checkpoint.origin == log.origin => seen.push(Seen {
                    witness: witness.clone(),
                    checkpoint,
                    note: String::from_utf8_lossy(&bytes).into_owned(),
                }),
                Ok(_) => report.errors.push(format!("{url}: wrong origin")),
                Err(error) => report.errors.push(format!("{url}: {error}")),
            }
        }
        seen.sort_by_key(|s| s.checkpoint.size);
        let Some(largest) = seen.last() else { continue };
        let client = log
            .url
            .as_deref()
            .map(|url| LogClient::new(http.clone(), url));
        let tiles = TileCache::default();
        let mut found = false;
        for other in &seen {
            let (a, b) = (&other.checkpoint, &largest.checkpoint);
            let reason = if a.size == b.size {
                (a.root != b.root).then(|| format!("two roots for tree size {}", a.size.0))
            } else if a.size.0 == 0 {
                None
            } else {
                let Some(client) = &client else {
                    report.errors.push(format!(
                        "{}: no log URL to prove size {} consistent with {}",
                        log.origin, a.size.0, b.size.0
                    ));
                    continue;
                };
                match client.consistency_proof(a.size.0, b.size.0, &tiles).await {
                    Ok(hashes) => {
                        let proof = ConsistencyProof {
                            old_size: TreeSize(a.size.0),
                            new_size: TreeSize(b.size.0),
                            hashes,
                        };
                        proof.verify(&a.root, &b.root).err().map(|e| {
                            format!(
                                "no consistency proof from size {} to {}: {e}",
                                a.size.0, b.size.0
                            )
                        })
                    }
                    Err(error) => {
                        report.errors.push(error.to_string());
                        continue;
                    }
                }
            };
            if let Some(reason) = reason {
                found = true;
                report.split_views.push(SplitView {
                    origin: log.origin.clone(),
                    reason: format!(
                        "{reason} (witnesses {} and {})",
                        other.witness, largest.witness
                    ),
                    first: other.note.clone(),
                    second: largest.note.clone(),
                });
            }
        }
        if !found {
            report.consistent.push((
                log.origin.clone(),
                seen.iter().map(|s| s.checkpoint.size.0).collect(),
            ));
        }
    }
    report
}
