//! Gossip between witnesses: a log that shows each witness a different tree can keep every
//! witness happy on its own; only comparing what the witnesses cosigned reveals it. For each
//! log, gossip reads every witness's latest cosigned checkpoint, checks the log's signature,
//! and checks that every pair is one history: equal sizes must have equal roots, and the
//! smaller must be consistent with the larger by a proof from the log (or its tiles).
//!
//! Where the checkpoints and proofs come from is a [`GossipSource`]: HTTP for `cairn witness
//! gossip` ([`compare`]), witnesses in process for the simulator ([`compare_with`]).

use std::future::Future;

use tlog::checkpoint::Checkpoint;
use tlog::note::Note;
use tlog::{ConsistencyProof, Hash, TreeSize};

use crate::config::{LogConfig, Logs};
use crate::fetch::{Http, LogClient, TileCache, witness_checkpoint_path};
use crate::store::SplitView;

/// Where gossip reads what it compares.
pub trait GossipSource {
    /// The latest checkpoint `witness` cosigned for `origin` (a signed note), or why not.
    fn witness_checkpoint(
        &self,
        witness: &str,
        origin: &str,
    ) -> impl Future<Output = Result<Vec<u8>, String>>;

    /// The log's consistency proof from `old` to `new`; `Ok(None)` if this source has no way to
    /// ask the log (no URL for it).
    fn consistency_proof(
        &self,
        log: &LogConfig,
        old: u64,
        new: u64,
    ) -> impl Future<Output = Result<Option<Vec<Hash>>, String>>;
}

/// [`GossipSource`] over HTTP: witnesses by base URL, the log by its policy URL.
struct HttpSource<'a> {
    http: &'a Http,
    /// Tiles fetched so far, per log origin.
    tiles: std::sync::Mutex<std::collections::BTreeMap<String, std::sync::Arc<TileCache>>>,
}

impl GossipSource for HttpSource<'_> {
    async fn witness_checkpoint(&self, witness: &str, origin: &str) -> Result<Vec<u8>, String> {
        let url = format!(
            "{}/{}",
            witness.trim_end_matches('/'),
            witness_checkpoint_path(origin)
        );
        self.http
            .get_ok(&url)
            .await
            .map(|bytes| bytes.to_vec())
            .map_err(|error| error.to_string())
    }

    async fn consistency_proof(
        &self,
        log: &LogConfig,
        old: u64,
        new: u64,
    ) -> Result<Option<Vec<Hash>>, String> {
        let Some(url) = log.url.as_deref() else {
            return Ok(None);
        };
        let tiles = std::sync::Arc::clone(
            self.tiles
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(log.origin.clone())
                .or_default(),
        );
        LogClient::new(self.http.clone(), url)
            .consistency_proof(old, new, &tiles)
            .await
            .map(Some)
            .map_err(|error| error.to_string())
    }
}

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
    let source = HttpSource {
        http,
        tiles: std::sync::Mutex::default(),
    };
    compare_with(&source, logs, witnesses).await
}

/// Compares the latest cosigned checkpoints of `witnesses` (as `source` names them) for every
/// log in `logs`.
pub async fn compare_with(
    source: &impl GossipSource,
    logs: &Logs,
    witnesses: &[String],
) -> GossipReport {
    let mut report = GossipReport::default();
    for log in logs.iter() {
        let mut seen: Vec<Seen> = Vec::new();
        for witness in witnesses {
            let bytes = match source.witness_checkpoint(witness, &log.origin).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    report.errors.push(error);
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
                Ok(_) => report
                    .errors
                    .push(format!("{witness}: {}: wrong origin", log.origin)),
                Err(error) => report
                    .errors
                    .push(format!("{witness}: {}: {error}", log.origin)),
            }
        }
        seen.sort_by_key(|s| s.checkpoint.size);
        let Some(largest) = seen.last() else { continue };
        let mut found = false;
        for other in &seen {
            let (a, b) = (&other.checkpoint, &largest.checkpoint);
            let reason = if a.size == b.size {
                (a.root != b.root).then(|| format!("two roots for tree size {}", a.size.0))
            } else if a.size.0 == 0 {
                None
            } else {
                match source.consistency_proof(log, a.size.0, b.size.0).await {
                    Ok(Some(hashes)) => {
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
                    Ok(None) => {
                        report.errors.push(format!(
                            "{}: no log URL to prove size {} consistent with {}",
                            log.origin, a.size.0, b.size.0
                        ));
                        continue;
                    }
                    Err(error) => {
                        report.errors.push(error);
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
