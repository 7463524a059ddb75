//! The Raft log on `raft-log.redb`: openraft's `RaftLogStorage` and `RaftLogReader`.
//!
//! Durability contract (what openraft may rely on once a call returns or its callback fires):
//! - `save_vote`, `truncate`, `purge`: one `Immediate` write transaction each, durable before
//!   the call returns. `purge` writes `last_purged` in the same transaction as its deletes, so a
//!   restarted node knows where its log starts.
//! - `save_committed`: a `Durability::None` transaction, made durable by the next flush. The
//!   committed index is a hint (apply is durable on its own, so openraft needs none, see
//!   `RaftLogStorage::save_committed`); a crash may lose the latest one, never reorder it
//!   against the entries it names, since a non-durable commit survives only with every commit
//!   before it. An fsync per commit on every node bought nothing.
//! - `append`: **group commit.** The entries are committed with `Durability::None`, which makes
//!   them visible to every later transaction (readers see them when `append` returns), and the
//!   `LogFlushed` callback is queued to one flusher task. The flusher takes every callback
//!   queued so far, runs one `Immediate` commit, and only then fires them, in append order
//!   (0.9.25 predates openraft #1964 and would stall on out-of-order completions).
//!
//! Why one `Immediate` commit covers the earlier `None` commits (checked in redb 4.6.0's
//! source): a write transaction starts from the latest commit, durable or not, so the root an
//! `Immediate` commit publishes contains every earlier `None` commit's pages;
//! `WriteTransaction::durable_commit` writes out the freed-page records the non-durable commits
//! kept in memory, flushes all their allocated pages, and `TransactionalMemory::commit` then
//! writes the header and calls `flush` (write buffer, then `sync_data` on the backend)
//! unconditionally, even for a transaction that changed nothing, before marking the pending
//! non-durable commits as persisted. redb documents the same (`Durability::None`: "will not be
//! persisted to disk unless followed by a commit with `Durability::Immediate`"). So the flusher
//! commits an empty transaction and needs no marker row; the test
//! `group_commit_fires_callbacks_in_order_after_one_flush` checks it on a disk that drops
//! unsynced writes.
//!
//! A flusher callback queued after a `None` commit returned can only be fired by an `Immediate`
//! commit that began after it was queued, so every callback it fires covers entries already in
//! the committed root.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Weak};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, StorageBackend};
use tokio::sync::mpsc;

use super::tables::{COMMITTED, LAST_PURGED, LOG, LOG_META, VOTE, decode, encode};
use super::{DiskError, SharedDb, begin_immediate};
use crate::env::Blocking;
use crate::types::{NodeId, TypeConfig};

/// What the flusher calls once a group of appends is durable (or failed to become so).
pub(crate) type FlushCallback = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The Raft log store: one per node, owned by openraft's core.
pub struct LogStore {
    pub(super) db: SharedDb,
    blocking: Blocking,
    /// The queue to the flusher, started by the first append (it needs a tokio runtime, which
    /// the constructors do not).
    flusher: Option<mpsc::UnboundedSender<FlushCallback>>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens or creates the log database at `path`.
    pub fn open(path: &Path, blocking: Blocking) -> Result<LogStore, DiskError> {
        LogStore::from_database(super::open_file(path)?, blocking)
    }

    /// Opens or creates the log database over a storage backend.
    pub fn with_backend(
        backend: impl StorageBackend,
        blocking: Blocking,
    ) -> Result<LogStore, DiskError> {
        LogStore::from_database(super::open_backend(backend)?, blocking)
    }

    /// Wraps an open database, creating the tables if it is new.
    pub(crate) fn from_database(db: Database, blocking: Blocking) -> Result<LogStore, DiskError> {
        let txn = begin_immediate(&db)?;
        txn.open_table(LOG)?;
        super::check_disk_format(&txn, LOG_META, "raft-log.redb")?;
        txn.commit()?;
        Ok(LogStore {
            db: Arc::new(db),
            blocking,
            flusher: None,
        })
    }

    /// A reader of this log, usable from any task while appends continue.
    pub fn reader(&self) -> LogReader {
        LogReader {
            db: self.db.clone(),
            blocking: self.blocking.clone(),
        }
    }

    /// Appends entries (readable on return) and queues `done`, which fires once they are on
    /// disk, after every earlier append's.
    pub(crate) async fn append_with(
        &mut self,
        entries: Vec<Entry<TypeConfig>>,
        done: FlushCallback,
    ) -> Result<(), DiskError> {
        let rows = entries
            .iter()
            .map(|entry| Ok((entry.log_id.index, encode("log entry", entry)?)))
            .collect::<Result<Vec<_>, DiskError>>()?;
        if !rows.is_empty() {
            let db = self.db.clone();
            self.blocking.run(move || write_entries(&db, &rows)).await?;
        }
        let (db, blocking) = (Arc::downgrade(&self.db), self.blocking.clone());
        let flusher = self.flusher.get_or_insert_with(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(run_flusher(db, blocking, receiver));
            sender
        });
        if let Err(mpsc::error::SendError(done)) = flusher.send(done) {
            // The flusher is gone only if the runtime is shutting down.
            done(Err(io::Error::other("log flusher stopped")));
        }
        Ok(())
    }
}

/// Commits appended entries without an fsync: visible now, durable at the next flush.
fn write_entries(db: &Database, rows: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    {
        let mut log = txn.open_table(LOG)?;
        for (index, bytes) in rows {
            log.insert(*index, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Makes every earlier non-durable commit durable: an empty `Immediate` commit always writes
/// the header and syncs (see the module docs).
fn flush(db: &Database) -> Result<(), DiskError> {
    begin_immediate(db)?.commit()?;
    Ok(())
}

/// The flusher: one `Immediate` commit per group of queued appends, then their callbacks in
/// order. Ends when the store (the sender) is dropped.
async fn run_flusher(
    db: Weak<Database>,
    blocking: Blocking,
    mut queue: mpsc::UnboundedReceiver<FlushCallback>,
) {
    let mut group = Vec::new();
    while let Some(first) = queue.recv().await {
        group.push(first);
        while let Ok(next) = queue.try_recv() {
            group.push(next);
        }
        // A weak handle, so that dropping the store closes the database even while this task
        // waits; then the queued appends cannot be made durable.
        let result = match db.upgrade() {
            Some(db) => blocking.run(move || flush(&db)).await,
            None => Err(DiskError::Closed),
        };
        if let Err(error) = &result {
            tracing::error!(%error, appends = group.len(), "log flush failed");
        }
        for done in group.drain(..) {
            done(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|error| io::Error::other(error.to_string())),
            );
        }
    }
}

fn read_logs_error(error: &DiskError) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::new(error)).into()
}

fn write_logs_error(error: &DiskError) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(error)).into()
}

/// Writes one `LOG_META` value with `Durability::None`: visible at once, durable with the next
/// `Immediate` commit (a flush). Also the `VoteNotSynced` canary's vote write.
fn write_meta_lazily(db: &Database, key: &'static str, bytes: &[u8]) -> Result<(), DiskError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    txn.open_table(LOG_META)?.insert(key, bytes)?;
    txn.commit()?;
    Ok(())
}

/// Reads one `LOG_META` value.
fn read_meta<T: serde::de::DeserializeOwned>(
    db: &Database,
    key: &'static str,
) -> Result<Option<T>, DiskError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(LOG_META)?;
    match meta.get(key)? {
        Some(bytes) => Ok(Some(decode("meta", &key, bytes.value())?)),
        None => Ok(None),
    }
}

/// Writes one `LOG_META` value durably.
fn write_meta(db: &Database, key: &'static str, bytes: &[u8]) -> Result<(), DiskError> {
    let txn = begin_immediate(db)?;
    txn.open_table(LOG_META)?.insert(key, bytes)?;
    txn.commit()?;
    Ok(())
}

fn log_state(db: &Database) -> Result<LogState<TypeConfig>, DiskError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(LOG_META)?;
    let last_purged: Option<LogId<NodeId>> = match meta.get(LAST_PURGED)? {
        Some(bytes) => Some(decode("meta", &LAST_PURGED, bytes.value())?),
        None => None,
    };
    let log = txn.open_table(LOG)?;
    let last = match log.last()? {
        Some((index, bytes)) => {
            let entry: Entry<TypeConfig> = decode("log", &index.value(), bytes.value())?;
            Some(entry.log_id)
        }
        None => None,
    };
    Ok(LogState {
        last_log_id: last.or(last_purged),
        last_purged_log_id: last_purged,
    })
}

fn read_entries(
    db: &Database,
    range: (Bound<u64>, Bound<u64>),
) -> Result<Vec<Entry<TypeConfig>>, DiskError> {
    let txn = db.begin_read()?;
    let log = txn.open_table(LOG)?;
    let mut entries = Vec::new();
    for row in log.range(range)? {
        let (index, bytes) = row?;
        let index = index.value();
        let entry: Entry<TypeConfig> = decode("log", &index, bytes.value())?;
        if entry.log_id.index != index {
            return Err(DiskError::corrupt(
                "log",
                &index,
                format!("holds entry {}", entry.log_id),
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Deletes `[from, ∞)`, durably.
fn truncate(db: &Database, from: u64) -> Result<(), DiskError> {
    let txn = begin_immediate(db)?;
    txn.open_table(LOG)?.retain_in(from.., |_, _| false)?;
    txn.commit()?;
    Ok(())
}

/// Deletes `(-∞, upto.index]` and records `upto` as last purged, in one durable transaction.
fn purge(db: &Database, upto: &LogId<NodeId>) -> Result<(), DiskError> {
    let bytes = encode("last purged", upto)?;
    let txn = begin_immediate(db)?;
    txn.open_table(LOG)?
        .retain_in(..=upto.index, |_, _| false)?;
    txn.open_table(LOG_META)?
        .insert(LAST_PURGED, bytes.as_slice())?;
    txn.commit()?;
    Ok(())
}

/// The own-bounds copy of a range, so it can move to the blocking pool.
fn owned_bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        self.reader().try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let db = self.db.clone();
        self.blocking
            .run(move || log_state(&db))
            .await
            .map_err(|error| read_logs_error(&error))
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let write_vote = |error: DiskError| StorageIOError::write_vote(AnyError::new(&error));
        let bytes = encode("vote", vote).map_err(write_vote)?;
        let db = self.db.clone();
        #[cfg(feature = "canaries")] // The planted bug: the vote is committed but never synced.
        if crate::canary::is(crate::canary::Canary::VoteNotSynced) {
            return (self
                .blocking
                .run(move || write_meta_lazily(&db, VOTE, &bytes))
                .await)
                .map_err(|error| write_vote(error).into());
        }
        self.blocking
            .run(move || write_meta(&db, VOTE, &bytes))
            .await
            .map_err(write_vote)?;
        Ok(())
    }

    /// Read once, at startup. A committed vote comes back uncommitted: "a quorum granted this
    /// leader" is true of the run that wrote it, not of this one. openraft 0.9 restores a node
    /// whose stored vote is its own committed one as leader of the same term, and that leader
    /// reassigns the log ids of entries it lost unsynced in the crash while a follower still holds
    /// them under the same ids: two entries with one log id, two histories (simulator seed 117).
    /// Uncommitted, the vote still forbids voting for anyone else in that term, and the node wins
    /// a fresh election in a higher term before it proposes again.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let db = self.db.clone();
        let vote: Option<Vote<NodeId>> = self
            .blocking
            .run(move || read_meta(&db, VOTE))
            .await
            .map_err(|error| StorageIOError::read_vote(AnyError::new(&error)))?;
        Ok(vote.map(|vote| Vote {
            leader_id: vote.leader_id,
            committed: false,
        }))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = encode("committed", &committed).map_err(|error| write_logs_error(&error))?;
        let db = self.db.clone();
        self.blocking
            .run(move || write_meta_lazily(&db, COMMITTED, &bytes))
            .await
            .map_err(|error| write_logs_error(&error))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let db = self.db.clone();
        let committed: Option<Option<LogId<NodeId>>> = self
            .blocking
            .run(move || read_meta(&db, COMMITTED))
            .await
            .map_err(|error| read_logs_error(&error))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        self.append_with(
            entries,
            Box::new(move |result| callback.log_io_completed(result)),
        )
        .await
        .map_err(|error| write_logs_error(&error))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let db = self.db.clone();
        self.blocking
            .run(move || truncate(&db, log_id.index))
            .await
            .map_err(|error| write_logs_error(&error))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let db = self.db.clone();
        self.blocking
            .run(move || purge(&db, &log_id))
            .await
            .map_err(|error| write_logs_error(&error))
    }
}

/// Reads of the Raft log, for openraft's replication tasks: each call is one redb read
/// transaction (a consistent view), so reads run concurrently with appends.
#[derive(Clone)]
pub struct LogReader {
    pub(super) db: SharedDb,
    blocking: Blocking,
}

impl Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let range = owned_bounds(&range);
        let db = self.db.clone();
        self.blocking
            .run(move || read_entries(&db, range))
            .await
            .map_err(|error| read_logs_error(&error))
    }
}
