//! The witness [`Store`] on redb (`witness.redb`): the only module that touches redb.
//!
//! Tables: `latest` maps an origin to `size u64 BE ‖ root[32] ‖ cosigned note`; `split_views`
//! maps a sequence number to the JSON of a [`SplitView`], one per [`SplitView::key`].
//! `compare_and_store` reads and writes
//! in one write transaction with immediate durability, so the check of the old state and the
//! new state are one atomic, fsynced step before the witness replies. Records are checked when
//! read back (the note must parse to the stored size and root), pairing the write-side checks.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tlog::Hash;
use tlog::checkpoint::Checkpoint;
use tlog::note::Note;

use crate::store::{SplitView, Store, StoreError, Stored, Swap};

const LATEST: TableDefinition<&str, &[u8]> = TableDefinition::new("latest");
const SPLIT_VIEWS: TableDefinition<u64, &[u8]> = TableDefinition::new("split_views");

/// The witness state in a redb file.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
}

fn database(error: impl std::fmt::Display) -> StoreError {
    StoreError::Database(error.to_string())
}

impl RedbStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::builder().create(path).map_err(database)?;
        let mut txn = db.begin_write().map_err(database)?;
        txn.set_durability(Durability::Immediate)
            .map_err(database)?;
        txn.open_table(LATEST).map_err(database)?;
        txn.open_table(SPLIT_VIEWS).map_err(database)?;
        txn.commit().map_err(database)?;
        Ok(RedbStore { db })
    }

    /// Every origin's latest cosigned checkpoint.
    pub fn all_latest(&self) -> Result<Vec<(String, Stored)>, StoreError> {
        let txn = self.db.begin_read().map_err(database)?;
        let table = txn.open_table(LATEST).map_err(database)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(database)? {
            let (origin, value) = row.map_err(database)?;
            let origin = origin.value().to_owned();
            let stored = decode(&origin, value.value())?;
            out.push((origin, stored));
        }
        Ok(out)
    }
}

fn encode(stored: &Stored) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(40 + stored.note.len());
    bytes.extend_from_slice(&stored.size.to_be_bytes());
    bytes.extend_from_slice(stored.root.as_bytes());
    bytes.extend_from_slice(stored.note.as_bytes());
    bytes
}

fn decode(origin: &str, bytes: &[u8]) -> Result<Stored, StoreError> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        origin: origin.to_owned(),
        detail: detail.to_owned(),
    };
    let (size, rest) = bytes.split_at_checked(8).ok_or_else(|| corrupt("short"))?;
    let (root, note) = rest.split_at_checked(32).ok_or_else(|| corrupt("short"))?;
    let size = u64::from_be_bytes(size.try_into().map_err(|_| corrupt("size"))?);
    let root = Hash::from_slice(root).map_err(|_| corrupt("root"))?;
    let note = String::from_utf8(note.to_vec()).map_err(|_| corrupt("note is not UTF-8"))?;
    let parsed = Note::parse(note.as_bytes()).map_err(|e| corrupt(&e.to_string()))?;
    let checkpoint = Checkpoint::parse(parsed.text()).map_err(|e| corrupt(&e.to_string()))?;
    if checkpoint.size.0 != size || checkpoint.root != root || checkpoint.origin != origin {
        return Err(corrupt("note does not match the stored size and root"));
    }
    Ok(Stored { size, root, note })
}

impl Store for RedbStore {
    fn latest(&self, origin: &str) -> Result<Option<Stored>, StoreError> {
        let txn = self.db.begin_read().map_err(database)?;
        let table = txn.open_table(LATEST).map_err(database)?;
        let value = table.get(origin).map_err(database)?;
        value.map(|v| decode(origin, v.value())).transpose()
    }

    fn compare_and_store(
        &self,
        origin: &str,
        expected: Option<(u64, Hash)>,
        new: &Stored,
    ) -> Result<Swap, StoreError> {
        let mut txn = self.db.begin_write().map_err(database)?;
        txn.set_durability(Durability::Immediate)
            .map_err(database)?;
        {
            let mut table = txn.open_table(LATEST).map_err(database)?;
            let current = table
                .get(origin)
                .map_err(database)?
                .map(|v| decode(origin, v.value()))
                .transpose()?
                .map(|s| (s.size, s.root));
            if current != expected {
                // Dropping the transaction aborts it: nothing changes.
                return Ok(Swap::Conflict(current.map_or(0, |(size, _)| size)));
            }
            if let Some((size, root)) = current {
                assert!(
                    new.size >= size,
                    "witness store: size of {origin} would shrink"
                );
                assert!(
                    new.size > size || new.root == root,
                    "witness store: second root for one size of {origin}"
                );
            }
            table
                .insert(origin, encode(new).as_slice())
                .map_err(database)?;
        }
        txn.commit().map_err(database)?;
        Ok(Swap::Stored)
    }

    fn record_split_view(&self, evidence: &SplitView) -> Result<(), StoreError> {
        let json = serde_json::to_vec(evidence).map_err(database)?;
        let mut txn = self.db.begin_write().map_err(database)?;
        txn.set_durability(Durability::Immediate)
            .map_err(database)?;
        {
            let mut table = txn.open_table(SPLIT_VIEWS).map_err(database)?;
            // Evidence is kept once per key; rows are few (each is a log-signed contradiction),
            // so a scan in the write transaction is enough.
            let key = evidence.key();
            for row in table.iter().map_err(database)? {
                let (_, value) = row.map_err(database)?;
                let kept = serde_json::from_slice::<SplitView>(value.value());
                if kept.is_ok_and(|kept| kept.key() == key) {
                    return Ok(());
                }
            }
            let next = table
                .last()
                .map_err(database)?
                .map_or(0, |(key, _)| key.value() + 1);
            table.insert(next, json.as_slice()).map_err(database)?;
        }
        txn.commit().map_err(database)?;
        Ok(())
    }

    fn split_views(&self) -> Result<Vec<SplitView>, StoreError> {
        let txn = self.db.begin_read().map_err(database)?;
        let table = txn.open_table(SPLIT_VIEWS).map_err(database)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(database)? {
            let (_, value) = row.map_err(database)?;
            let evidence: SplitView =
                serde_json::from_slice(value.value()).map_err(|e| StoreError::Corrupt {
                    origin: String::new(),
                    detail: format!("split view record: {e}"),
                })?;
            out.push(evidence);
        }
        Ok(out)
    }
}
