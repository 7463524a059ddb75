//! What a witness persists, as a trait: the latest checkpoint it cosigned for each origin, and
//! the evidence of every split view it saw.
//!
//! Contract. [`Store::compare_and_store`] is the one write that matters: it must check the
//! stored state and replace it in one atomic, durable step, and return only once the new state
//! would survive a crash. The witness replies to a log only after it returns, so a cosignature
//! the log holds is never for a state the witness could forget (the rollback race the
//! tlog-witness spec describes). A stored size never decreases.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tlog::Hash;

/// Why the store failed (the caller answers 500 and changes nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed to read or write.
    #[error("witness database: {0}")]
    Database(String),
    /// A stored record does not decode: the database is corrupt.
    #[error("stored record for {origin:?} is corrupt: {detail}")]
    Corrupt {
        /// The origin whose record is bad.
        origin: String,
        /// What is wrong.
        detail: String,
    },
}

/// The latest checkpoint a witness cosigned for one origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// The checkpoint note with the log's verified signature(s) and the witness's cosignature.
    pub note: String,
}

/// Two signed checkpoints of one origin that cannot both be honest: the same size with two
/// roots, or sizes with no valid consistency proof between them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitView {
    /// The log's origin.
    pub origin: String,
    /// Why the two are inconsistent.
    pub reason: String,
    /// The checkpoint the witness held (signed by the log).
    pub first: String,
    /// The checkpoint that contradicts it (signed by the log).
    pub second: String,
}

impl SplitView {
    /// What makes this evidence new: its origin and the size and root of the contradicting
    /// checkpoint (or, if that does not parse, its whole text). A replay of the same
    /// contradiction has the same key, so it is stored once.
    pub fn key(&self) -> (String, String) {
        let parsed = tlog::note::Note::parse(self.second.as_bytes())
            .ok()
            .and_then(|note| tlog::checkpoint::Checkpoint::parse(note.text()).ok());
        let second = match parsed {
            Some(checkpoint) => format!("{} {}", checkpoint.size.0, checkpoint.root.to_base64()),
            None => self.second.clone(),
        };
        (self.origin.clone(), second)
    }
}

/// The outcome of [`Store::compare_and_store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swap {
    /// The new state is durable.
    Stored,
    /// The stored state was not the expected one; nothing changed. Carries the stored size.
    Conflict(u64),
}

/// Persistent witness state. See the module documentation for the contract.
pub trait Store: Send + Sync {
    /// The latest cosigned checkpoint of `origin`, if any.
    fn latest(&self, origin: &str) -> Result<Option<Stored>, StoreError>;

    /// Atomically: if the stored state of `origin` is `expected` (`None`: nothing stored),
    /// replace it with `new` and make it durable; otherwise change nothing and return the
    /// stored size. Implementations assert (in release builds) that `new` is not smaller than
    /// what they replace.
    fn compare_and_store(
        &self,
        origin: &str,
        expected: Option<(u64, Hash)>,
        new: &Stored,
    ) -> Result<Swap, StoreError>;

    /// Keeps a split view as evidence, durably, once per [`SplitView::key`]: a replay of evidence
    /// already kept changes nothing (anyone can replay a log-signed checkpoint, as often as they
    /// like). Evidence is never deleted by the witness.
    fn record_split_view(&self, evidence: &SplitView) -> Result<(), StoreError>;

    /// Every split view recorded, oldest first.
    fn split_views(&self) -> Result<Vec<SplitView>, StoreError>;
}

/// The state kept in memory: for tests and the simulator.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Guards both maps; held only for the length of one call.
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    latest: BTreeMap<String, Stored>,
    split_views: Vec<SplitView>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding the lock can only come from the size assertion, after which
        // the process is going down anyway; the state itself is never half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn latest(&self, origin: &str) -> Result<Option<Stored>, StoreError> {
        Ok(self.lock().latest.get(origin).cloned())
    }

    fn compare_and_store(
        &self,
        origin: &str,
        expected: Option<(u64, Hash)>,
        new: &Stored,
    ) -> Result<Swap, StoreError> {
        let mut state = self.lock();
        let current = state.latest.get(origin).map(|s| (s.size, s.root));
        if current != expected {
            return Ok(Swap::Conflict(current.map_or(0, |(size, _)| size)));
        }
        if let Some((size, _)) = current {
            assert!(
                new.size >= size,
                "witness store: size of {origin} would shrink"
            );
        }
        state.latest.insert(origin.to_owned(), new.clone());
        Ok(Swap::Stored)
    }

    fn record_split_view(&self, evidence: &SplitView) -> Result<(), StoreError> {
        let mut state = self.lock();
        let key = evidence.key();
        if !state.split_views.iter().any(|kept| kept.key() == key) {
            state.split_views.push(evidence.clone());
        }
        Ok(())
    }

    fn split_views(&self) -> Result<Vec<SplitView>, StoreError> {
        Ok(self.lock().split_views.clone())
    }
}
