//! The witness logic of C2SP tlog-witness, sans IO: one function from an `add-checkpoint`
//! request body (and the time) to the spec's status code and body, over a [`Store`].
//!
//! Checks, in the spec's order: a malformed body is 400; an origin the witness does not know is
//! 404; a checkpoint no trusted key of that log signed (or one a trusted key's signature fails
//! on) is 403; `old` above the checkpoint's size is 400; `old` other than the size last cosigned
//! is 409 with that size; a size-0 checkpoint whose root is not the empty tree's, a proof with
//! `old 0`, a proof that does not verify, or the same size with another root is 422. The last
//! one is a split view and is kept as evidence. Only then does the witness cosign, store
//! atomically with the check of the old state, and reply 200 with the cosignature line.

use std::sync::Arc;

use tlog::checkpoint::Checkpoint;
use tlog::keys::Cosigner;
use tlog::note::{Note, NoteSignature};
use tlog::{ConsistencyProof, Hash, TreeSize};

use crate::config::{LogConfig, Logs};
use crate::request::AddCheckpoint;
use crate::store::{SplitView, Store, StoreError, Stored, Swap};

/// The Content-Type of a 409 body (the witness's stored size).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why an `add-checkpoint` request was refused, each with its status code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The body, the note or the checkpoint is malformed, or `old` exceeds the size (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The checkpoint's origin is not a witnessed log (404).
    #[error("unknown origin {0:?}")]
    UnknownOrigin(String),
    /// No trusted key of the log verified the checkpoint, or one failed (403).
    #[error("untrusted checkpoint signature: {0}")]
    Untrusted(String),
    /// `old` is not the size the witness last cosigned for this origin, which it carries (409).
    #[error("old size does not match: the witness is at size {0}")]
    Conflict(u64),
    /// The consistency proof is missing, superfluous or wrong (422).
    #[error("bad consistency proof: {0}")]
    BadProof(String),
    /// The checkpoint contradicts the one the witness holds for its size (422); kept as
    /// evidence.
    #[error("split view of {}: {}", .0.origin, .0.reason)]
    SplitView(Box<SplitView>),
    /// The store failed (500); nothing was cosigned.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cosignature could not be made or attached (500).
    #[error("cosigning: {0}")]
    Sign(String),
}

impl AddError {
    /// The HTTP status code the spec gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AddError::BadRequest(_) => 400,
            AddError::Untrusted(_) => 403,
            AddError::UnknownOrigin(_) => 404,
            AddError::Conflict(_) => 409,
            AddError::BadProof(_) | AddError::SplitView(_) => 422,
            AddError::Store(_) | AddError::Sign(_) => 500,
        }
    }
}

/// A status code, a Content-Type and a body: what the server writes, or what the simulator
/// reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The Content-Type of `body`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl From<&AddError> for Reply {
    fn from(error: &AddError) -> Reply {
        match error {
            AddError::Conflict(size) => Reply {
                status: 409,
                content_type: SIZE_CONTENT_TYPE,
                body: format!("{size}\n"),
            },
            other => Reply {
                status: other.status(),
                content_type: "text/plain; charset=utf-8",
                body: format!("{other}\n"),
            },
        }
    }
}

/// A request's checkpoint that repeats the stored one.
struct Repeat {
    /// The log's signature lines of the stored checkpoint, verified when it was stored.
    log_signatures: Vec<NoteSignature>,
    /// The witness's own stored cosignature of it.
    cosignature: Option<NoteSignature>,
}

/// The timestamp of a cosignature line's signature, if it has the tlog-cosignature form.
fn cosignature_timestamp(cosignature: &NoteSignature) -> Option<u64> {
    tlog::cosignature::timestamp(&cosignature.signature).ok()
}

/// A witness: its cosigning key, the logs it witnesses and its store.
#[derive(Clone)]
pub struct Witness {
    cosigner: Cosigner,
    logs: Logs,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("name", &self.cosigner.name())
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// A witness cosigning with `cosigner` for `logs`, keeping its state in `store`.
    pub fn new(cosigner: Cosigner, logs: Logs, store: Arc<dyn Store>) -> Witness {
        Witness {
            cosigner,
            logs,
            store,
        }
    }

    /// The C2SP verifier key of the witness's cosignatures (type 0x04).
    pub fn verifier_key(&self) -> String {
        self.cosigner.verifier().to_vkey()
    }

    /// The witnessed logs.
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Answers an `add-checkpoint` request body at `now` (POSIX seconds): 200 with the
    /// cosignature line, or the spec's error status.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Reply {
        match self.try_add_checkpoint(body, now) {
            Ok(line) => Reply {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                body: line,
            },
            Err(error) => {
                match &error {
                    AddError::SplitView(evidence) => tracing::error!(
                        origin = %evidence.origin,
                        "SPLIT VIEW: {}; both checkpoints kept as evidence",
                        evidence.reason
                    ),
                    AddError::Store(_) | AddError::Sign(_) => {
                        tracing::error!("add-checkpoint: {error}");
                    }
                    _ => tracing::debug!("add-checkpoint refused: {error}"),
                }
                Reply::from(&error)
            }
        }
    }

    /// As [`Witness::add_checkpoint`], returning the cosignature line or the typed refusal.
    pub fn try_add_checkpoint(&self, body: &[u8], now: u64) -> Result<String, AddError> {
        let request =
            AddCheckpoint::parse(body).map_err(|e| AddError::BadRequest(e.to_string()))?;
        let note = Note::parse(request.checkpoint.as_bytes())
            .map_err(|e| AddError::BadRequest(format!("checkpoint note: {e}")))?;
        let checkpoint = Checkpoint::parse(note.text())
            .map_err(|e| AddError::BadRequest(format!("checkpoint: {e}")))?;
        let log = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| AddError::UnknownOrigin(checkpoint.origin.clone()))?;
        let latest = self.store.latest(&checkpoint.origin)?;
        // Every node of a cluster pushes the same checkpoint: one that repeats the stored,
        // already verified one byte for byte needs no second verification.
        let repeat = latest
            .as_ref()
            .and_then(|stored| self.repeat_of(log, stored, &note));
        let log_signatures = match &repeat {
            Some(repeat) => repeat.log_signatures.clone(),
            None => note
                .verify(&log.verifiers)
                .map_err(|e| AddError::Untrusted(e.to_string()))?
                .into_iter()
                .map(|verified| verified.signature)
                .collect(),
        };
        let size = checkpoint.size.0;
        if request.old_size > size {
            return Err(AddError::BadRequest(format!(
                "old size {} is larger than the checkpoint's size {size}",
                request.old_size
            )));
        }
        let stored_size = latest.as_ref().map_or(0, |s| s.size);
        if request.old_size != stored_size {
            return Err(AddError::Conflict(stored_size));
        }
        if size == 0 && checkpoint.root != Hash::EMPTY_ROOT {
            return Err(AddError::BadProof(
                "a size-0 checkpoint must have the empty tree's root".to_owned(),
            ));
        }
        if let Some(stored) = &latest {
            self.check_consistency(log, stored, &request, &note, &checkpoint)?;
        } else if !request.proof.is_empty() {
            return Err(AddError::BadProof(
                "a proof from size 0 must be empty".to_owned(),
            ));
        }

        // The point of no return: a cosignature is permanent public evidence. These hold by the
        // checks above; assert them in release builds too.
        if let Some(stored) = &latest {
            assert!(size >= stored.size, "cosigning a smaller checkpoint");
            assert!(
                size > stored.size || checkpoint.root == stored.root,
                "cosigning a second root for one size"
            );
        }
        // Ed25519 is deterministic: within the second it was made, the stored cosignature is
        // exactly what signing again would give, and the stored state would not change.
        if let Some(cosignature) = repeat.and_then(|repeat| repeat.cosignature)
            && cosignature_timestamp(&cosignature) == Some(now)
        {
            return Ok(cosignature.to_line());
        }
        let cosignature = self
            .cosigner
            .sign(note.text(), now)
            .map_err(|e| AddError::Sign(e.to_string()))?;
        let mut kept = Note::new(note.text()).map_err(|e| AddError::Sign(e.to_string()))?;
        for signature in log_signatures {
            kept.add_signature(signature)
                .map_err(|e| AddError::Sign(e.to_string()))?;
        }
        kept.add_signature(cosignature.clone())
            .map_err(|e| AddError::Sign(e.to_string()))?;
        let new = Stored {
            size,
            root: checkpoint.root,
            note: kept.format().map_err(|e| AddError::Sign(e.to_string()))?,
        };
        let expected = latest.as_ref().map(|s| (s.size, s.root));
        match self
            .store
            .compare_and_store(&checkpoint.origin, expected, &new)?
        {
            Swap::Stored => Ok(cosignature.to_line()),
            // Another request moved the state between our read and our write.
            Swap::Conflict(size) => Err(AddError::Conflict(size)),
        }
    }

    /// Whether `note` repeats the stored checkpoint: the same text, and only signature lines
    /// the stored note holds from the log (verified when it was stored), at least one, each
    /// from a key the witness still trusts for `log`.
    fn repeat_of(&self, log: &LogConfig, stored: &Stored, note: &Note) -> Option<Repeat> {
        let stored_note = Note::parse(stored.note.as_bytes()).ok()?;
        if stored_note.text() != note.text() || note.signatures().is_empty() {
            return None;
        }
        let is_own = |signature: &NoteSignature| {
            signature.name == self.cosigner.name() && signature.key_id == self.cosigner.key_id()
        };
        let (own, log_signatures): (Vec<NoteSignature>, Vec<NoteSignature>) = stored_note
            .signatures()
            .iter()
            .cloned()
            .partition(|signature| is_own(signature));
        if !note.signatures().iter().all(|signature| {
            log_signatures.contains(signature)
                && log
                    .verifiers
                    .find(&signature.name, signature.key_id)
                    .is_some()
        }) {
            return None;
        }
        Some(Repeat {
            log_signatures,
            cosignature: own.into_iter().next(),
        })
    }

    /// Checks the request's proof from the stored checkpoint to the new one; a second root for
    /// the stored size is a split view and is recorded.
    fn check_consistency(
        &self,
        log: &LogConfig,
        stored: &Stored,
        request: &AddCheckpoint,
        note: &Note,
        checkpoint: &Checkpoint,
    ) -> Result<(), AddError> {
        let size = checkpoint.size.0;
        if stored.size == size {
            if checkpoint.root != stored.root {
                let evidence = SplitView {
                    origin: log.origin.clone(),
                    reason: format!("two roots for tree size {size}"),
                    first: stored.note.clone(),
                    second: note.format().unwrap_or_else(|_| request.checkpoint.clone()),
                };
                self.store.record_split_view(&evidence)?;
                return Err(AddError::SplitView(Box::new(evidence)));
            }
            if !request.proof.is_empty() {
                return Err(AddError::BadProof(
                    "a proof between equal sizes must be empty".to_owned(),
                ));
            }
            return Ok(());
        }
        if stored.size == 0 {
            if !request.proof.is_empty() {
                return Err(AddError::BadProof(
                    "a proof from size 0 must be empty".to_owned(),
                ));
            }
            return Ok(());
        }
        let proof = ConsistencyProof {
            old_size: TreeSize(stored.size),
            new_size: TreeSize(size),
            hashes: request.proof.clone(),
        };
        proof
            .verify(&stored.root, &checkpoint.root)
            .map_err(|e| AddError::BadProof(e.to_string()))
    }

    /// Records a split view found outside a request (by the poller or gossip), loudly.
    pub fn record_split_view(&self, evidence: &SplitView) -> Result<(), StoreError> {
        tracing::error!(
            origin = %evidence.origin,
            "SPLIT VIEW: {}; both checkpoints kept as evidence",
            evidence.reason
        );
        self.store.record_split_view(evidence)
    }
}
