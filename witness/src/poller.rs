//! The pull mode: the witness polls each log's checkpoint itself, gets a consistency proof from
//! its old size (Cairn's proof endpoint, or computed from the log's tiles), and submits the
//! result to its own [`Witness::add_checkpoint`], so pushed and polled checkpoints go through
//! exactly the same checks and the same atomic store. Its cosignatures are published by the
//! server's read endpoint.
//!
//! A log that shows a second root for a size the witness cosigned, or that cannot prove its
//! new checkpoint consistent with the old one (from its own tiles), is splitting its view: the
//! poller records both checkpoints as evidence and stops, so the operator hears of it.

use std::sync::Arc;
use std::time::Duration;

use tlog::checkpoint::Checkpoint;
use tlog::note::Note;

use crate::config::LogConfig;
use crate::cosigner::{AddError, Witness};
use crate::fetch::{FetchError, Http, LogClient, TileCache};
use crate::request::AddCheckpoint;
use crate::server::unix_now;
use crate::store::{SplitView, StoreError};

/// What one poll of one log did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// The witness cosigned the log's checkpoint of this size.
    Cosigned(u64),
    /// Nothing new (the same checkpoint, or an older one from a lagging mirror).
    Unchanged,
    /// The log is splitting its view; the evidence is recorded.
    SplitView(Box<SplitView>),
}

/// Why a poll failed (retried at the next round).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PollError {
    /// The log has no URL in the policy.
    #[error("log {0:?} has no URL to poll")]
    NoUrl(String),
    /// Fetching failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The log's checkpoint is malformed or not signed by its key.
    #[error("checkpoint of {origin:?}: {detail}")]
    Checkpoint {
        /// The log's origin.
        origin: String,
        /// What is wrong.
        detail: String,
    },
    /// The witness refused for another reason.
    #[error("witness: {0}")]
    Witness(#[from] AddError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking task failed.
    #[error("witness task: {0}")]
    Task(String),
}

/// Polls `log` once.
pub async fn poll_once(
    witness: &Arc<Witness>,
    http: &Http,
    log: &LogConfig,
) -> Result<PollOutcome, PollError> {
    let url = log
        .url
        .as_deref()
        .ok_or_else(|| PollError::NoUrl(log.origin.clone()))?;
    let client = LogClient::new(http.clone(), url);
    let bytes = client.checkpoint().await?;
    let bad = |detail: String| PollError::Checkpoint {
        origin: log.origin.clone(),
        detail,
    };
    let note = Note::parse(&bytes).map_err(|e| bad(e.to_string()))?;
    let checkpoint = Checkpoint::parse(note.text()).map_err(|e| bad(e.to_string()))?;
    if checkpoint.origin != log.origin {
        return Err(bad(format!("origin is {:?}", checkpoint.origin)));
    }
    note.verify(&log.verifiers)
        .map_err(|e| bad(e.to_string()))?;
    let size = checkpoint.size.0;
    let latest = witness.store().latest(&log.origin)?;
    let old = latest.as_ref().map_or(0, |s| s.size);
    let tiles = TileCache::default();
    if let Some(stored) = &latest {
        if size == stored.size && checkpoint.root == stored.root {
            return Ok(PollOutcome::Unchanged);
        }
        if size < stored.size {
            // An older checkpoint (a lagging mirror) is fine if it is a prefix of what was
            // cosigned; if the log cannot prove that, it has shown two histories.
            if size == 0 {
                return Ok(PollOutcome::Unchanged);
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            return match prove(
                &client,
                &tiles,
                (size, checkpoint.root),
                (stored.size, stored.root),
            )
            .await?
            {
                Ok(()) => Ok(PollOutcome::Unchanged),
                Err(reason) => {
                    let evidence = SplitView {
                        origin: log.origin.clone(),
                        reason,
                        first: stored.note.clone(),
                        second: text,
                    };
                    witness.record_split_view(&evidence)?;
                    Ok(PollOutcome::SplitView(Box::new(evidence)))
                }
            };
        }
    }
    let proof = if old == 0 || old == size {
        Vec::new()
    } else {
        client.consistency_proof(old, size, &tiles).await?
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match add(witness, old, proof, &text).await? {
        Ok(_) => Ok(PollOutcome::Cosigned(size)),
        Err(AddError::SplitView(evidence)) => Ok(PollOutcome::SplitView(evidence)),
        Err(AddError::BadProof(reason)) if old > 0 && old < size => {
            // The proof endpoint may be what is broken: ask the log's own tiles. If they cannot
            // prove consistency either, the log has shown two trees that are not one history.
            let proof = client
                .consistency_proof_from_tiles(old, size, &tiles)
                .await?;
            match add(witness, old, proof, &text).await? {
                Ok(_) => Ok(PollOutcome::Cosigned(size)),
                Err(AddError::BadProof(tiles_reason)) => {
                    let evidence = SplitView {
                        origin: log.origin.clone(),
                        reason: format!(
                            "no valid consistency proof from size {old} to {size} \
                             (proof endpoint: {reason}; tiles: {tiles_reason})"
                        ),
                        first: latest.map(|s| s.note).unwrap_or_default(),
                        second: text,
                    };
                    witness.record_split_view(&evidence)?;
                    Ok(PollOutcome::SplitView(Box::new(evidence)))
                }
                Err(AddError::Conflict(_)) => Ok(PollOutcome::Unchanged),
                Err(error) => Err(error.into()),
            }
        }
        // A pushed checkpoint moved the state meanwhile; the next round starts from it.
        Err(AddError::Conflict(_)) => Ok(PollOutcome::Unchanged),
        Err(error) => Err(error.into()),
    }
}

/// Whether the log proves the tree `old` a prefix of the tree `new`: from its proof endpoint,
/// else from its tiles. `Ok(Err(reason))` when neither proof verifies.
async fn prove(
    client: &LogClient,
    tiles: &TileCache,
    old: (u64, tlog::Hash),
    new: (u64, tlog::Hash),
) -> Result<Result<(), String>, PollError> {
    let check = |hashes: Vec<tlog::Hash>| {
        tlog::ConsistencyProof {
            old_size: tlog::TreeSize(old.0),
            new_size: tlog::TreeSize(new.0),
            hashes,
        }
        .verify(&old.1, &new.1)
    };
    if check(client.consistency_proof(old.0, new.0, tiles).await?).is_ok() {
        return Ok(Ok(()));
    }
    let from_tiles = client
        .consistency_proof_from_tiles(old.0, new.0, tiles)
        .await?;
    Ok(check(from_tiles).map_err(|e| {
        format!(
            "no valid consistency proof from size {} to {}: {e}",
            old.0, new.0
        )
    }))
}

async fn add(
    witness: &Arc<Witness>,
    old: u64,
    proof: Vec<tlog::Hash>,
    checkpoint: &str,
) -> Result<Result<String, AddError>, PollError> {
    let body = AddCheckpoint {
        old_size: old,
        proof,
        checkpoint: checkpoint.to_owned(),
    }
    .to_body();
    let witness = witness.clone();
    tokio::task::spawn_blocking(move || witness.try_add_checkpoint(body.as_bytes(), unix_now()))
        .await
        .map_err(|e| PollError::Task(e.to_string()))
}

/// Polls every log with a URL every `interval` until a split view is found, which it returns.
/// Errors of one round are logged and retried at the next.
pub async fn run(witness: Arc<Witness>, interval: Duration) -> SplitView {
    let http = Http::new();
    let logs: Vec<LogConfig> = witness
        .logs()
        .iter()
        .filter(|log| log.url.is_some())
        .cloned()
        .collect();
    if logs.is_empty() {
        tracing::warn!("no log in the policy has a URL: nothing to poll");
    }
    loop {
        for log in &logs {
            match poll_once(&witness, &http, log).await {
                Ok(PollOutcome::Cosigned(size)) => {
                    tracing::info!(origin = %log.origin, size, "cosigned");
                }
                Ok(PollOutcome::Unchanged) => {}
                Ok(PollOutcome::SplitView(evidence)) => return *evidence,
                Err(error) => tracing::warn!(origin = %log.origin, "poll: {error}"),
            }
        }
        tokio::time::sleep(interval).await;
    }
}
