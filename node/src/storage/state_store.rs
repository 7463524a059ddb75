//! The state machine on `state.redb`: openraft's `RaftStateMachine`, the redb implementation of
//! [`StateAccess`], and the consistent read API the HTTP layer serves from.
//!
//! Durability contract (`research/raft-sim.md` §3.2): `apply` runs a whole batch of entries in
//! ONE `Immediate` write transaction: the leaves, dedup index, tile hashes and heads that
//! `state_machine::apply` writes, the last membership and the last applied log id commit
//! together and are fsynced before `apply` returns, or none of it happens (a crash never
//! re-applies an entry, which would append duplicate leaves on one replica).
//!
//! Reads ([`StateReader::view`]) open one redb read transaction: an MVCC snapshot of the last
//! commit, so every answer of one [`StateView`] is about the same state while apply continues.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageBackend, Table, TableDefinition, TableHandle, WriteTransaction,
};
use tlog::proof::{ConsistencyProof, InclusionProof, ProofError};
use tlog::tile::{BundleError, TILE_WIDTH, Tile, TileHashStore, TileKind, TileReader};
use tlog::tree::StoreError;
use tlog::{Hash, LeafIndex, NodeId as TreeNodeId, TreeSize};

use super::leaf_index::{self, BlockKey, IndexMeta, IndexShape, IndexTables, TailKey, Upkeep};
use super::snapshot::{self, CatchUpError, Installer, SnapshotBuilder};
use super::tables::{
    BATCH_TIMES, HEADS, INDEX_BLOCKS, INDEX_META, INDEX_TAIL, LAST_APPLIED, LAST_MEMBERSHIP,
    LEAF_INDEX_BUILT, LEAVES, OLD_LEAF_INDEX, OLD_SEARCH, SM_META, SNAPSHOT, TILE_HASHES,
    TIME_UNKNOWN, decode, decode_hash, encode,
};
use super::{DiskError, SharedDb, begin_immediate};
use crate::catch_up::{CatchUpPolicy, KnownMembers, SharedBundleSource};
use crate::env::Blocking;
use crate::search::SearchKey;
use crate::state_machine::{self, HashCaches, LogHead, Logs, StateAccess, StateError};
use crate::types::{CommandOutcome, LogName, NodeAddress, NodeId, TypeConfig};

/// Key of the tile-hash table.
pub(crate) type TileKey = (&'static str, u8, u64);
/// Key of the leaf table.
pub(crate) type LeafKey = (&'static str, u64);

/// The state-machine store: one per node, owned by openraft's state-machine worker.
pub struct StateStore {
    pub(super) db: SharedDb,
    blocking: Blocking,
    logs: Arc<Logs>,
    /// Where a snapshot install fetches the leaves it lacks.
    source: SharedBundleSource,
    policy: CatchUpPolicy,
    /// Complete-subtree hashes derived by apply and by reads, shared by both.
    caches: Arc<HashCaches>,
    /// The cluster's members as the node last saw them, for catch-up.
    known: KnownMembers,
    /// The sizes of the leaf index.
    shape: IndexShape,
    /// Apply's memory of the leaf index's tail.
    tail_memory: SharedTailMemory,
}

impl Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("blocking", &self.blocking)
            .field("logs", &self.logs)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens or creates the state database at `path`, for the cluster's `logs`; snapshot
    /// installs fetch leaves through `source`.
    pub fn open(
        path: &Path,
        logs: Logs,
        blocking: Blocking,
        source: SharedBundleSource,
    ) -> Result<StateStore, DiskError> {
        StateStore::from_database(
            super::open_file(path)?,
            logs,
            blocking,
            source,
            IndexShape::default(),
        )
    }

    /// Opens or creates the state database over a storage backend.
    pub fn with_backend(
        backend: impl StorageBackend,
        logs: Logs,
        blocking: Blocking,
        source: SharedBundleSource,
    ) -> Result<StateStore, DiskError> {
        StateStore::from_database(
            super::open_backend(backend)?,
            logs,
            blocking,
            source,
            IndexShape::default(),
        )
    }

    /// Wraps an open database, creating the tables if it is new (read transactions fail on a
    /// table that was never created), building the leaf index of a database from before it,
    /// and finishing index upkeep a crash interrupted.
    pub(crate) fn from_database(
        db: Database,
        logs: Logs,
        blocking: Blocking,
        source: SharedBundleSource,
        shape: IndexShape,
    ) -> Result<StateStore, DiskError> {
        let txn = begin_immediate(&db)?;
        create_state_tables(&txn)?;
        txn.open_table(SNAPSHOT)?;
        let rebuild = drop_old_index(&txn)?;
        txn.commit()?;
        if rebuild {
            rebuild_leaf_index(&db, &shape)?;
        }
        catch_up_leaf_index(&db, &shape)?;
        Ok(StateStore {
            db: Arc::new(db),
            blocking,
            caches: Arc::new(HashCaches::new(&logs)),
            known: KnownMembers::default(),
            logs: Arc::new(logs),
            source,
            policy: CatchUpPolicy::default(),
            shape,
            tail_memory: SharedTailMemory::default(),
        })
    }

    /// Replaces how persistently a snapshot install retries unavailable members.
    pub fn with_catch_up_policy(mut self, policy: CatchUpPolicy) -> StateStore {
        self.policy = policy;
        self
    }

    fn installer(&self) -> Installer {
        Installer {
            db: self.db.clone(),
            blocking: self.blocking,
            logs: self.logs.clone(),
            source: self.source.clone(),
            policy: self.policy,
            known: self.known.clone(),
            shape: self.shape,
            tail_memory: self.tail_memory.clone(),
        }
    }

    /// The members catch-up fetches from beyond a snapshot's own: the node keeps it current
    /// from Raft's membership.
    pub fn known_members(&self) -> KnownMembers {
        self.known.clone()
    }

    /// A cheap, cloneable handle for reads from any task while apply continues.
    pub fn reader(&self) -> StateReader {
        StateReader {
            db: self.db.clone(),
            caches: self.caches.clone(),
            tail_memory: self.tail_memory.clone(),
        }
    }
}

/// Creates (opens) every table that holds replicated state.
pub(crate) fn create_state_tables(txn: &WriteTransaction) -> Result<(), DiskError> {
    txn.open_table(LEAVES)?;
    txn.open_table(TILE_HASHES)?;
    txn.open_table(HEADS)?;
    txn.open_table(BATCH_TIMES)?;
    txn.open_table(INDEX_TAIL)?;
    txn.open_table(INDEX_BLOCKS)?;
    txn.open_table(INDEX_META)?;
    txn.open_table(SM_META)?;
    Ok(())
}

/// Deletes the tables of the index layout before `leaf_index`, and says whether the leaf index
/// must be built from the stored leaves: a database that has leaves but was never indexed in
/// this layout. A new database is marked as indexed at once.
fn drop_old_index(txn: &WriteTransaction) -> Result<bool, DiskError> {
    let old: Vec<_> = txn
        .list_tables()?
        .filter(|table| [OLD_LEAF_INDEX, OLD_SEARCH].contains(&table.name()))
        .collect();
    for table in old {
        txn.delete_table(table)?;
    }
    let mut meta = txn.open_table(SM_META)?;
    if meta.get(LEAF_INDEX_BUILT)?.is_some() {
        return Ok(false);
    }
    if txn.open_table(HEADS)?.first()?.is_none() {
        meta.insert(LEAF_INDEX_BUILT, [1u8].as_slice())?;
        return Ok(false);
    }
    Ok(true)
}

/// Leaves read per transaction while rebuilding the leaf index.
const REBUILD_CHUNK: u64 = 4096;

/// Rebuilds the leaf index of every log from its stored leaves (`cairn-node reindex`, and a
/// database from before `leaf_index`): drops the index rows, writes every leaf's tail row in
/// bounded transactions, and marks the database as indexed. The runs are then built by
/// [`catch_up_leaf_index`]. A crash part way leaves the mark unset, so the next open starts
/// again.
pub(crate) fn rebuild_leaf_index(
    db: &Database,
    shape: &IndexShape,
) -> Result<Vec<(String, u64)>, DiskError> {
    let txn = begin_immediate(db)?;
    txn.open_table(SM_META)?.remove(LEAF_INDEX_BUILT)?;
    let heads = head_sizes(&txn.open_table(HEADS)?)?;
    for table in [INDEX_TAIL.name(), INDEX_BLOCKS.name(), INDEX_META.name()] {
        let handle = txn.list_tables()?.find(|handle| handle.name() == table);
        if let Some(handle) = handle {
            txn.delete_table(handle)?;
        }
    }
    create_state_tables(&txn)?;
    txn.commit()?;
    for (log, size) in &heads {
        let (log, size) = (log.0.as_str(), *size);
        let mut first = 0;
        while first < size {
            let end = size.min(first + REBUILD_CHUNK);
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            {
                let leaves = txn.open_table(LEAVES)?;
                let mut index = IndexTables::open(&txn)?;
                let mut expected = first;
                for row in leaves.range((log, first)..(log, end))? {
                    let (key, leaf) = row?;
                    let at = key.value().1;
                    if at != expected {
                        break;
                    }
                    let keys: Vec<SearchKey> =
                        crate::search::keys(leaf.value()).into_iter().collect();
                    let row = leaf_index::tail_row(&tlog::leaf_hash(leaf.value()), &keys);
                    index.put_tail(log, at, &row)?;
                    expected += 1;
                }
                if expected != end {
                    return Err(DiskError::Missing(format!("leaf {expected} of log {log}")));
                }
            }
            txn.commit()?;
            // Progress on long work: about every million leaves.
            if end / (1 << 20) > first / (1 << 20) {
                tracing::info!(%log, indexed = end, of = size, "rebuilding the leaf index");
            }
            first = end;
        }
        tracing::info!(%log, leaves = size, "rebuilt the leaf index's rows from the leaves");
    }
    catch_up_leaf_index_to(db, shape, &heads)?;
    let txn = begin_immediate(db)?;
    txn.open_table(SM_META)?
        .insert(LEAF_INDEX_BUILT, [1u8].as_slice())?;
    txn.commit()?;
    Ok(heads.into_iter().map(|(log, size)| (log.0, size)).collect())
}

/// Brings every log's leaf index up to its head in bounded transactions (each made durable by
/// the last, an `Immediate` one): after a snapshot install, which stores leaves faster than
/// apply's upkeep would index them, and on open, where an interrupted catch-up resumes.
pub(crate) fn catch_up_leaf_index(db: &Database, shape: &IndexShape) -> Result<(), DiskError> {
    let sizes = head_sizes(&db.begin_read()?.open_table(HEADS)?)?;
    catch_up_leaf_index_to(db, shape, &sizes)
}

/// Every log with a head, and its size.
fn head_sizes<T: ReadableTable<&'static str, &'static [u8]>>(
    heads: &T,
) -> Result<Vec<(LogName, u64)>, DiskError> {
    let mut sizes = Vec::new();
    for row in heads.iter()? {
        let (key, value) = row?;
        let head: LogHead = decode("heads", &key.value(), value.value())?;
        sizes.push((LogName(key.value().to_owned()), head.tree_size));
    }
    Ok(sizes)
}

/// [`catch_up_leaf_index`] up to the given sizes, which may be beyond the heads: a snapshot
/// install indexes the leaves it verified before it makes them visible.
pub(crate) fn catch_up_leaf_index_to(
    db: &Database,
    shape: &IndexShape,
    sizes: &[(LogName, u64)],
) -> Result<(), DiskError> {
    let mut wrote = false;
    for (log, size) in sizes {
        let size = *size;
        loop {
            let before = {
                let txn = db.begin_read()?;
                leaf_index::read_meta(&txn.open_table(INDEX_META)?, log)?
            };
            if !before.has_work(size, shape) {
                break;
            }
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            {
                let mut index = IndexTables::open(&txn)?;
                let upkeep = Upkeep::Bulk {
                    flushes: 16,
                    pairs: 16 * shape.tail_leaves.max(1) * shape.work_per_leaf,
                };
                index.follow_head(log, size, upkeep, shape)?;
            }
            txn.commit()?;
            wrote = true;
        }
    }
    if wrote {
        // The bulk transactions above were not fsynced: one durable commit makes them all so.
        begin_immediate(db)?.commit()?;
    }
    Ok(())
}

/// Apply's memory of each log's leaf-index tail: dedup key → leaf indices, for the tail rows
/// from `from` to `end`. It saves apply a scan of the tail per leaf. Valid only while it matches
/// the stored tail exactly (same start, same end; rows below the head never change), which
/// every lookup checks; apply forgets it on any error, since it may hold rows of a transaction
/// that did not commit.
#[derive(Debug, Default)]
pub(crate) struct TailMemory(BTreeMap<LogName, TailKeys>);

#[derive(Debug, Default)]
struct TailKeys {
    from: u64,
    end: u64,
    keys: HashMap<u64, Vec<u64>>,
}

/// [`TailMemory`] shared by the state store and its installs.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedTailMemory(Arc<Mutex<TailMemory>>);

impl SharedTailMemory {
    fn lock(&self) -> std::sync::MutexGuard<'_, TailMemory> {
        // The memory is a cache: a panic while it was held cannot make it unsafe to clear.
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                guard.0.clear();
                guard
            }
        }
    }

    /// Forgets everything (after a failed apply, or a snapshot install).
    pub(crate) fn forget(&self) {
        self.lock().0.clear();
    }

    /// Leaf indices in `flushed..size` whose tail row holds `key`, for a view whose tail starts
    /// at `flushed` and whose log has `size` leaves: from the memory where it covers those rows
    /// (they never change below a head), read from the view's own `tail` where it does not (a
    /// flush after the view began, a memory behind the view or forgotten).
    pub(crate) fn tail_hits<T: ReadableTable<TailKey, &'static [u8]>>(
        &self,
        tail: &T,
        log: &LogName,
        flushed: u64,
        size: u64,
        key: u64,
    ) -> Result<Vec<u64>, DiskError> {
        let name = log.0.as_str();
        let (mut hits, covered) = {
            let memory = self.lock();
            match memory.0.get(log) {
                Some(keys) => (
                    keys.keys
                        .get(&key)
                        .map(|indices| {
                            indices
                                .iter()
                                .copied()
                                .filter(|index| (flushed..size).contains(index))
                                .collect()
                        })
                        .unwrap_or_default(),
                    Some((keys.from, keys.end)),
                ),
                None => (Vec::new(), None),
            }
        };
        match covered {
            Some((from, end)) => {
                leaf_index::tail_lookup(tail, name, flushed, from.min(size), key, &mut hits)?;
                leaf_index::tail_lookup(tail, name, end.max(flushed), size, key, &mut hits)?;
            }
            None => leaf_index::tail_lookup(tail, name, flushed, size, key, &mut hits)?,
        }
        Ok(hits)
    }
}

fn read_sm_error(error: &DiskError) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::new(error)).into()
}

/// The last applied log id and the last membership.
pub(crate) type AppliedState = (Option<LogId<NodeId>>, StoredMembership<NodeId, NodeAddress>);

/// A tree read from the tiles of one view.
type ViewTiles<'a> = TileHashStore<TableTiles<'a, ReadOnlyTable<TileKey, &'static [u8]>>>;

/// The last applied log id and last membership, as stored in `SM_META`.
pub(crate) fn applied_state<T: ReadableTable<&'static str, &'static [u8]>>(
    meta: &T,
) -> Result<AppliedState, DiskError> {
    let last_applied = match meta.get(LAST_APPLIED)? {
        Some(bytes) => decode("sm_meta", &LAST_APPLIED, bytes.value())?,
        None => None,
    };
    let membership = match meta.get(LAST_MEMBERSHIP)? {
        Some(bytes) => decode("sm_meta", &LAST_MEMBERSHIP, bytes.value())?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}

/// The `ApplyNotAtomic` canary's first transaction: `last_applied` alone.
#[cfg(feature = "canaries")]
fn write_last_applied(db: &Database, last: LogId<NodeId>) -> Result<(), DiskError> {
    let txn = begin_immediate(db)?;
    let applied = encode("last applied", &Some(last))?;
    txn.open_table(SM_META)?
        .insert(LAST_APPLIED, applied.as_slice())?;
    txn.commit()?;
    Ok(())
}

/// Applies a batch of committed entries in one durable transaction; forgets apply's memory of
/// the index tail if that fails.
fn apply_entries(
    db: &Database,
    logs: &Logs,
    caches: &Arc<HashCaches>,
    index: (&IndexShape, &SharedTailMemory),
    entries: &[Entry<TypeConfig>],
) -> Result<Vec<CommandOutcome>, DiskError> {
    let applied = apply_entries_once(db, logs, caches, index, entries);
    if applied.is_err() {
        index.1.forget();
    }
    applied
}

fn apply_entries_once(
    db: &Database,
    logs: &Logs,
    caches: &Arc<HashCaches>,
    (shape, memory): (&IndexShape, &SharedTailMemory),
    entries: &[Entry<TypeConfig>],
) -> Result<Vec<CommandOutcome>, DiskError> {
    let Some(last) = entries.last() else {
        return Ok(Vec::new());
    };
    let txn = begin_immediate(db)?;
    // Rows beyond the heads may be an unverified install's; applying over them could leave
    // dedup entries this replica alone has. openraft finishes an install before it applies.
    if snapshot::is_pending(&txn)? {
        return Err(CatchUpError::Pending.into());
    }
    let mut outcomes = Vec::with_capacity(entries.len());
    {
        let mut state = RedbState::open(&txn)?
            .with_caches(caches.clone())
            .with_index_upkeep(*shape, memory.clone());
        let mut membership = None;
        for entry in entries {
            let outcome = match &entry.payload {
                EntryPayload::Blank => CommandOutcome::Nothing,
                EntryPayload::Normal(command) => state_machine::apply(&mut state, logs, command)
                    .map_err(|source| DiskError::Apply {
                        log_id: entry.log_id.to_string(),
                        source,
                    })?,
                EntryPayload::Membership(config) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), config.clone()));
                    CommandOutcome::Nothing
                }
            };
            outcomes.push(outcome);
        }
        let mut meta = txn.open_table(SM_META)?;
        let applied = encode("last applied", &Some(last.log_id))?;
        meta.insert(LAST_APPLIED, applied.as_slice())?;
        if let Some(membership) = membership {
            let bytes = encode("last membership", &membership)?;
            meta.insert(LAST_MEMBERSHIP, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(outcomes)
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeAddress>), StorageError<NodeId>>
    {
        // openraft reads this first at startup: an install a crash interrupted must finish
        // before then, because openraft may already have purged the entries it covers.
        self.installer()
            .resume()
            .await
            .map_err(|error| read_sm_error(&error))?;
        let db = self.db.clone();
        self.blocking
            .run(move || {
                let txn = db.begin_read()?;
                applied_state(&txn.open_table(SM_META)?)
            })
            .await
            .map_err(|error| read_sm_error(&error))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|entry| entry.log_id) else {
            return Ok(Vec::new());
        };
        let (db, logs, caches) = (self.db.clone(), self.logs.clone(), self.caches.clone());
        let (shape, memory) = (self.shape, self.tail_memory.clone());
        #[cfg(feature = "canaries")] // The planted bug: last_applied first, the state later.
        if crate::canary::is(crate::canary::Canary::ApplyNotAtomic) {
            let early = db.clone();
            let written = self
                .blocking
                .run(move || write_last_applied(&early, last))
                .await;
            written.map_err(|error| StorageIOError::apply(last, AnyError::new(&error)))?;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.blocking
            .run(move || apply_entries(&db, &logs, &caches, (&shape, &memory), &entries))
            .await
            .map_err(|error| StorageIOError::apply(last, AnyError::new(&error)).into())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder::new(self.db.clone(), self.blocking)
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<std::io::Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(std::io::Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeAddress>,
        snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        self.installer()
            .install(meta, &data)
            .await
            .map_err(|error| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&error)).into()
            })
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let (db, members) = (self.db.clone(), self.known.get());
        let current = self
            .blocking
            .run(move || -> Result<_, DiskError> {
                snapshot::current(&db)?
                    .map(|(meta, data)| Ok((meta, snapshot::with_members(&data, &members)?)))
                    .transpose()
            })
            .await
            .map_err(|error| StorageIOError::read_snapshot(None, AnyError::new(&error)))?;
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(std::io::Cursor::new(data)),
        }))
    }
}

// ---- Reads shared by apply (inside the write transaction) and the read API ----

fn state_error(error: &DiskError) -> StateError {
    StateError::Storage(error.to_string())
}

/// A log's head.
pub(crate) fn read_head<T: ReadableTable<&'static str, &'static [u8]>>(
    heads: &T,
    log: &LogName,
) -> Result<Option<LogHead>, DiskError> {
    match heads.get(log.0.as_str())? {
        Some(bytes) => Ok(Some(decode("heads", log, bytes.value())?)),
        None => Ok(None),
    }
}

/// The bytes of hash tile `tile` of `log`: a range read of its `width` hashes, every one of
/// which must be stored.
pub(crate) fn read_tile_bytes<T: ReadableTable<TileKey, &'static [u8]>>(
    hashes: &T,
    log: &LogName,
    tile: Tile,
) -> Result<Vec<u8>, DiskError> {
    read_tile_part(hashes, log, tile, 0, usize::from(tile.width))
}

/// Hashes `position..position + count` of hash tile `tile` of `log` (within its width): a
/// range read of those rows, every one of which must be stored.
fn read_tile_part<T: ReadableTable<TileKey, &'static [u8]>>(
    hashes: &T,
    log: &LogName,
    tile: Tile,
    position: usize,
    count: usize,
) -> Result<Vec<u8>, DiskError> {
    let level = tile.merkle_level();
    let outside = || {
        DiskError::Missing(format!(
            "hashes {position}+{count} of tile {tile} of log {log}"
        ))
    };
    if position
        .checked_add(count)
        .is_none_or(|end| end > usize::from(tile.width))
    {
        return Err(outside());
    }
    let (tile_first, _) = tile_range(tile.index, tile.width).ok_or_else(outside)?;
    let first = u64::try_from(position)
        .ok()
        .and_then(|position| tile_first.checked_add(position))
        .ok_or_else(outside)?;
    let end = u64::try_from(count)
        .ok()
        .and_then(|count| first.checked_add(count))
        .ok_or_else(outside)?;
    let missing = |index: u64| {
        DiskError::Missing(format!(
            "hash of log {log} at Merkle level {level} index {index} (tile {tile})"
        ))
    };
    let mut data = Vec::with_capacity(count * tlog::hash::HASH_LEN);
    let mut expected = first;
    let name = log.0.as_str();
    for row in hashes.range((name, level, first)..(name, level, end))? {
        let (key, value) = row?;
        let (_, _, index) = key.value();
        if index != expected {
            return Err(missing(expected));
        }
        // The key is formatted only if the hash is corrupt: this loop is on every proof's path.
        let hash = decode_hash(
            "tile_hashes",
            &format_args!("({log}, {level}, {index})"),
            value.value(),
        )?;
        data.extend_from_slice(hash.as_bytes());
        expected += 1;
    }
    if expected != end {
        return Err(missing(expected));
    }
    Ok(data)
}

/// Leaves `[first, end)` of `log`, every one of which must be stored.
fn read_leaves<T: ReadableTable<LeafKey, &'static [u8]>>(
    leaves: &T,
    log: &LogName,
    first: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, DiskError> {
    let name = log.0.as_str();
    let mut out = Vec::new();
    let mut expected = first;
    for row in leaves.range((name, first)..(name, end))? {
        let (key, value) = row?;
        let (_, index) = key.value();
        if index != expected {
            break;
        }
        out.push(value.value().to_vec());
        expected += 1;
    }
    if expected != end {
        return Err(DiskError::Missing(format!("leaf {expected} of log {log}")));
    }
    Ok(out)
}

/// The first index and the end of the `width` entries of tile `index` (None on overflow).
fn tile_range(index: u64, width: u16) -> Option<(u64, u64)> {
    let first = index.checked_mul(u64::from(TILE_WIDTH))?;
    Some((first, first.checked_add(u64::from(width))?))
}

/// How many complete subtrees of Merkle level `8 * tile_level` a tree of `size` has.
fn hashes_at_tile_level(size: u64, tile_level: u8) -> u64 {
    let merkle_level = u32::from(tile_level) * u32::from(tlog::tile::TILE_HEIGHT);
    size.checked_shr(merkle_level).unwrap_or(0)
}

/// [`StateAccess`] over the tables of one redb write transaction: reads see the transaction's
/// own earlier writes, so later entries of a batch see earlier ones.
pub(crate) struct RedbState<'txn> {
    leaves: Table<'txn, LeafKey, &'static [u8]>,
    hashes: Table<'txn, TileKey, &'static [u8]>,
    heads: Table<'txn, &'static str, &'static [u8]>,
    times: Table<'txn, (&'static str, u64), u64>,
    index: IndexTables<'txn>,
    /// Apply's caches ([`StateAccess::hash_cache`]); `None` for writers that must not fill
    /// them (a snapshot install writes tiles of leaves it has not verified yet).
    caches: Option<Arc<HashCaches>>,
    /// Apply's index upkeep: the index's sizes and apply's memory of its tail. `None` for a
    /// snapshot install, which catches the index up once the leaves are verified.
    upkeep: Option<(IndexShape, SharedTailMemory)>,
    /// The index bookkeeping of each log this transaction has looked up in, kept current by
    /// its own writes; a log's presence also means the memory of its tail was checked against
    /// the stored tail in this transaction. Saves a decode and a descent per leaf.
    index_metas: RefCell<BTreeMap<LogName, IndexMeta>>,
}

impl<'txn> RedbState<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<RedbState<'txn>, DiskError> {
        Ok(RedbState {
            leaves: txn.open_table(LEAVES)?,
            hashes: txn.open_table(TILE_HASHES)?,
            heads: txn.open_table(HEADS)?,
            times: txn.open_table(BATCH_TIMES)?,
            index: IndexTables::open(txn)?,
            caches: None,
            upkeep: None,
            index_metas: RefCell::new(BTreeMap::new()),
        })
    }

    /// This state, remembering derived hashes in `caches`.
    pub(crate) fn with_caches(self, caches: Arc<HashCaches>) -> RedbState<'txn> {
        RedbState {
            caches: Some(caches),
            ..self
        }
    }

    /// This state, keeping the leaf index up with each batch (apply).
    fn with_index_upkeep(self, shape: IndexShape, memory: SharedTailMemory) -> RedbState<'txn> {
        RedbState {
            upkeep: Some((shape, memory)),
            ..self
        }
    }

    /// Whether leaf `index` of `log` is stored.
    pub(crate) fn has_leaf(&self, log: &LogName, index: u64) -> Result<bool, DiskError> {
        Ok(self.leaves.get((log.0.as_str(), index))?.is_some())
    }

    /// Replaces the batch-time rows of leaves `first .. end` of `log` with `rows` (a checked
    /// [`crate::catch_up::BatchTimes`] answer; an unknown time is stored as [`TIME_UNKNOWN`]),
    /// for leaves snapshot catch-up appends in this transaction.
    pub(crate) fn replace_batch_times(
        &mut self,
        log: &LogName,
        first: u64,
        end: u64,
        rows: &crate::catch_up::BatchTimes,
    ) -> Result<(), DiskError> {
        let name = log.0.as_str();
        let mut old = Vec::new();
        for row in self.times.range((name, first)..(name, end))? {
            old.push(row?.0.value().1);
        }
        for index in old {
            self.times.remove((name, index))?;
        }
        for &(index, time) in rows {
            self.times
                .insert((name, index), time.unwrap_or(TIME_UNKNOWN))?;
        }
        Ok(())
    }

    /// Removes every leaf of `log` at or beyond `size`, its index row, and every tile hash of a
    /// subtree that reaches beyond `size`: what an abandoned install left above the head.
    /// Returns how many leaves were removed (normally none).
    pub(crate) fn truncate(&mut self, log: &LogName, size: u64) -> Result<u64, DiskError> {
        let name = log.0.as_str();
        let mut beyond = 0u64;
        for row in self.leaves.range((name, size)..=(name, u64::MAX))? {
            row?;
            beyond += 1;
        }
        self.leaves
            .retain_in((name, size)..=(name, u64::MAX), |_, _| false)?;
        self.index.truncate(log, size)?;
        // A time row beyond the head would otherwise date the leaves later appended there.
        self.times
            .retain_in((name, size)..=(name, u64::MAX), |_, _| false)?;
        // A subtree at Merkle level `level` with index `i` is inside the tree iff
        // (i + 1) << level <= size, that is i < size >> level.
        for level in (0..64u8).step_by(usize::from(tlog::tile::TILE_HEIGHT)) {
            let first = size.checked_shr(u32::from(level)).unwrap_or(0);
            self.hashes
                .retain_in((name, level, first)..=(name, level, u64::MAX), |_, _| false)?;
        }
        Ok(beyond)
    }

    /// A tile reader over this transaction's hashes of `log`.
    pub(crate) fn tiles<'a>(
        &'a self,
        log: &'a LogName,
    ) -> TableTiles<'a, Table<'txn, TileKey, &'static [u8]>> {
        TableTiles {
            table: &self.hashes,
            log,
        }
    }

    /// Whether leaf `index` of `log` is stored and has this leaf hash.
    fn leaf_has_hash(&self, log: &str, index: u64, leaf_hash: &Hash) -> Result<bool, DiskError> {
        Ok(self
            .leaves
            .get((log, index))?
            .is_some_and(|leaf| tlog::leaf_hash(leaf.value()) == *leaf_hash))
    }

    /// The tail rows' dedup keys that apply remembers, brought up to the stored tail.
    fn tail_candidates(
        &self,
        memory: &SharedTailMemory,
        log: &LogName,
        meta: &IndexMeta,
        key: u64,
    ) -> Result<Vec<u64>, DiskError> {
        let name = log.0.as_str();
        if self.index_metas.borrow().contains_key(log) {
            let memory = memory.lock();
            if let Some(tail) = memory.0.get(log) {
                return Ok(tail.keys.get(&key).cloned().unwrap_or_default());
            }
        }
        let end = match self
            .index
            .tail
            .range((name, 0)..=(name, u64::MAX))?
            .next_back()
        {
            Some(row) => row?.0.value().1 + 1,
            None => meta.flushed,
        };
        let mut memory = memory.lock();
        let current = memory
            .0
            .get(log)
            .is_some_and(|tail| tail.from == meta.flushed && tail.end == end.max(meta.flushed));
        if !current {
            let mut tail = TailKeys {
                from: meta.flushed,
                end: end.max(meta.flushed),
                keys: HashMap::new(),
            };
            for (key, index) in leaf_index::tail_pairs(&self.index.tail, name, meta.flushed)? {
                tail.keys.entry(key).or_default().push(index);
            }
            memory.0.insert(log.clone(), tail);
        }
        self.index_metas
            .borrow_mut()
            .insert(log.clone(), meta.clone());
        Ok(memory
            .0
            .get(log)
            .and_then(|tail| tail.keys.get(&key))
            .cloned()
            .unwrap_or_default())
    }
}

impl StateAccess for RedbState<'_> {
    fn hash_cache(&self, log: &LogName) -> Option<&tlog::HashCache> {
        self.caches.as_deref()?.get(log)
    }

    fn head(&self, log: &LogName) -> Result<Option<LogHead>, StateError> {
        read_head(&self.heads, log).map_err(|error| state_error(&error))
    }

    fn put_head(&mut self, log: &LogName, head: &LogHead) -> Result<(), StateError> {
        let bytes = encode("log head", head).map_err(|error| state_error(&error))?;
        self.heads
            .insert(log.0.as_str(), bytes.as_slice())
            .map_err(|error| state_error(&error.into()))?;
        Ok(())
    }

    fn find_leaf(&self, log: &LogName, leaf_hash: &Hash) -> Result<Option<u64>, StateError> {
        let found = || -> Result<Option<u64>, DiskError> {
            let name = log.0.as_str();
            let known = self.index_metas.borrow().get(log).cloned();
            let meta = match known {
                Some(meta) => meta,
                None => leaf_index::read_meta(&self.index.meta, log)?,
            };
            let key = leaf_index::dedup_key(leaf_hash);
            let mut candidates = match &self.upkeep {
                Some((_, memory)) => self.tail_candidates(memory, log, &meta, key)?,
                None => {
                    let mut found = Vec::new();
                    let end = u64::MAX;
                    leaf_index::tail_lookup(
                        &self.index.tail,
                        name,
                        meta.flushed,
                        end,
                        key,
                        &mut found,
                    )?;
                    found
                }
            };
            leaf_index::run_candidates(&meta, &self.index.blocks, name, key, &mut candidates)?;
            candidates.sort_unstable();
            for index in candidates {
                if self.leaf_has_hash(name, index, leaf_hash)? {
                    return Ok(Some(index));
                }
            }
            Ok(None)
        };
        found().map_err(|error| state_error(&error))
    }

    fn put_leaf(
        &mut self,
        log: &LogName,
        index: u64,
        leaf_hash: &Hash,
        leaf: &[u8],
        search_keys: &[SearchKey],
    ) -> Result<(), StateError> {
        let name = log.0.as_str();
        self.leaves
            .insert((name, index), leaf)
            .map_err(|error| state_error(&error.into()))?;
        let row = leaf_index::tail_row(leaf_hash, search_keys);
        self.index
            .put_tail(name, index, &row)
            .map_err(|error| state_error(&error))?;
        if let Some((_, memory)) = &self.upkeep {
            let mut memory = memory.lock();
            match memory.0.get_mut(log) {
                Some(tail) if tail.end == index => {
                    for key in leaf_index::tail_row_keys(&row) {
                        tail.keys.entry(key).or_default().push(index);
                    }
                    tail.end += 1;
                }
                _ => {
                    memory.0.remove(log);
                    self.index_metas.borrow_mut().remove(log);
                }
            }
        }
        Ok(())
    }

    fn index_upkeep(
        &mut self,
        log: &LogName,
        tree_size: u64,
        appended: u64,
    ) -> Result<(), StateError> {
        let Some((shape, memory)) = &self.upkeep else {
            return Ok(());
        };
        let meta = self
            .index
            .follow_head(log, tree_size, Upkeep::Batch { appended }, shape)
            .map_err(|error| state_error(&error))?;
        let mut memory = memory.lock();
        if let Some(tail) = memory.0.get_mut(log)
            && tail.from < meta.flushed
        {
            let flushed = meta.flushed;
            tail.keys.retain(|_, indices| {
                indices.retain(|&index| index >= flushed);
                !indices.is_empty()
            });
            tail.from = flushed;
            tail.end = tail.end.max(flushed);
        }
        if let Some(known) = self.index_metas.borrow_mut().get_mut(log) {
            *known = meta;
        }
        Ok(())
    }

    fn put_tile_hash(
        &mut self,
        log: &LogName,
        node: TreeNodeId,
        hash: &Hash,
    ) -> Result<(), StateError> {
        self.hashes
            .insert(
                (log.0.as_str(), node.level, node.index),
                hash.as_bytes().as_slice(),
            )
            .map_err(|error| state_error(&error.into()))?;
        Ok(())
    }

    fn read_tile_hashes(
        &self,
        log: &LogName,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, StateError> {
        read_tile_part(&self.hashes, log, tile, first, count).map_err(|error| state_error(&error))
    }

    fn put_batch_time(
        &mut self,
        log: &LogName,
        first_index: u64,
        unix_ms: u64,
    ) -> Result<(), StateError> {
        self.times
            .insert((log.0.as_str(), first_index), unix_ms)
            .map_err(|error| state_error(&error.into()))?;
        Ok(())
    }
}

/// A [`TileReader`] over a tile-hash table (of a write or a read transaction).
pub(crate) struct TableTiles<'a, T> {
    table: &'a T,
    log: &'a LogName,
}

impl<T: ReadableTable<TileKey, &'static [u8]>> TileReader for TableTiles<'_, T> {
    // A row per hash: a proof's low siblings cost 1, 2, 4, ... rows, not the whole tile.
    const READS_PART_OF_A_TILE: bool = true;

    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, StoreError> {
        read_tile_bytes(self.table, self.log, tile).map_err(|error| StoreError::Read(error.into()))
    }

    fn read_tile_hashes(
        &self,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, StoreError> {
        read_tile_part(self.table, self.log, tile, first, count)
            .map_err(|error| StoreError::Read(error.into()))
    }
}

// ---- The read API ----

/// Why a read of the state failed. A read of something that does not exist (yet) is `Ok(None)`,
/// not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The storage failed or holds corrupt or missing rows.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// A proof was asked of a log with no leaves (or an unknown log).
    #[error("log {0} has no leaves")]
    EmptyLog(LogName),
    /// A proof was asked at a tree size the log has not reached.
    #[error("tree size {requested} of log {log} is beyond its size {tree_size}")]
    BeyondHead {
        /// The log.
        log: LogName,
        /// The size asked for.
        requested: u64,
        /// The log's size.
        tree_size: u64,
    },
    /// An entry bundle was asked for with a width outside 1 to 256.
    #[error("width {0} is not 1 to 256")]
    Width(u16),
    /// `hash_tile` was given an entry-bundle tile.
    #[error("{0} is not a hash tile")]
    NotAHashTile(Tile),
    /// The proof could not be computed (including from missing hashes).
    #[error("proof in log {log}: {source}")]
    Proof {
        /// The log.
        log: LogName,
        /// Why.
        source: ProofError,
    },
    /// The leaves do not form an entry bundle (a leaf over 65535 bytes).
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl From<redb::TransactionError> for ReadError {
    fn from(error: redb::TransactionError) -> ReadError {
        ReadError::Disk(error.into())
    }
}

impl From<redb::TableError> for ReadError {
    fn from(error: redb::TableError) -> ReadError {
        ReadError::Disk(error.into())
    }
}

impl From<redb::StorageError> for ReadError {
    fn from(error: redb::StorageError) -> ReadError {
        ReadError::Disk(error.into())
    }
}

/// A cheap, cloneable handle for reading the state machine from any task.
#[derive(Clone)]
pub struct StateReader {
    pub(super) db: SharedDb,
    caches: Arc<HashCaches>,
    tail_memory: SharedTailMemory,
}

impl Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader").finish_non_exhaustive()
    }
}

impl StateReader {
    /// A consistent view of the last committed state: one redb read transaction. Blocking
    /// (redb reads pages from disk); call it, and the view's methods, through
    /// [`Blocking::run`] from async code. Drop the view soon: it pins the pages it sees.
    pub fn view(&self) -> Result<StateView, ReadError> {
        Ok(StateView {
            txn: self.db.begin_read()?,
            leaves: OnceCell::new(),
            hashes: OnceCell::new(),
            heads: OnceCell::new(),
            times: OnceCell::new(),
            tail: OnceCell::new(),
            blocks: OnceCell::new(),
            index_meta: OnceCell::new(),
            meta: OnceCell::new(),
            caches: self.caches.clone(),
            tail_memory: self.tail_memory.clone(),
        })
    }

    /// The `SignBeforeCommit` and `AckBeforeCommit` canaries: `command`'s outcome (indices,
    /// signed checkpoint) computed by applying it to a scratch copy of this replica's state, a
    /// write transaction that is then aborted. Nothing here is committed by Raft.
    #[cfg(feature = "canaries")]
    pub fn predict(
        &self,
        logs: &Logs,
        command: &crate::types::Command,
    ) -> Result<CommandOutcome, String> {
        let txn = self.db.begin_write().map_err(|error| error.to_string())?;
        let outcome = RedbState::open(&txn)
            .map_err(|error| error.to_string())
            .and_then(|mut state| {
                state_machine::apply(&mut state, logs, command).map_err(|error| error.to_string())
            });
        txn.abort().map_err(|error| error.to_string())?;
        outcome
    }
}

/// One consistent view of the state machine (a redb read transaction). Each table is opened
/// the first time a method needs it: most reads (a checkpoint, a tile) touch one or two of the
/// eight, and opening a table is a lookup in redb's table tree.
pub struct StateView {
    txn: ReadTransaction,
    leaves: OnceCell<ReadOnlyTable<LeafKey, &'static [u8]>>,
    hashes: OnceCell<ReadOnlyTable<TileKey, &'static [u8]>>,
    heads: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    times: OnceCell<ReadOnlyTable<(&'static str, u64), u64>>,
    tail: OnceCell<ReadOnlyTable<TailKey, &'static [u8]>>,
    blocks: OnceCell<ReadOnlyTable<BlockKey, &'static [u8]>>,
    index_meta: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    meta: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    caches: Arc<HashCaches>,
    tail_memory: SharedTailMemory,
}

impl Debug for StateView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateView").finish_non_exhaustive()
    }
}

impl StateView {
    /// `cell`'s table, opened in this view's transaction on first use.
    fn opened<'s, K: redb::Key + 'static, V: redb::Value + 'static>(
        &'s self,
        cell: &'s OnceCell<ReadOnlyTable<K, V>>,
        table: TableDefinition<K, V>,
    ) -> Result<&'s ReadOnlyTable<K, V>, ReadError> {
        if let Some(opened) = cell.get() {
            return Ok(opened);
        }
        let opened = self.txn.open_table(table)?;
        Ok(cell.get_or_init(|| opened))
    }

    fn leaves(&self) -> Result<&ReadOnlyTable<LeafKey, &'static [u8]>, ReadError> {
        self.opened(&self.leaves, LEAVES)
    }

    fn hashes(&self) -> Result<&ReadOnlyTable<TileKey, &'static [u8]>, ReadError> {
        self.opened(&self.hashes, TILE_HASHES)
    }

    fn heads(&self) -> Result<&ReadOnlyTable<&'static str, &'static [u8]>, ReadError> {
        self.opened(&self.heads, HEADS)
    }

    fn times(&self) -> Result<&ReadOnlyTable<(&'static str, u64), u64>, ReadError> {
        self.opened(&self.times, BATCH_TIMES)
    }

    fn tail(&self) -> Result<&ReadOnlyTable<TailKey, &'static [u8]>, ReadError> {
        self.opened(&self.tail, INDEX_TAIL)
    }

    fn blocks(&self) -> Result<&ReadOnlyTable<BlockKey, &'static [u8]>, ReadError> {
        self.opened(&self.blocks, INDEX_BLOCKS)
    }

    /// The leaf index's bookkeeping of `log`.
    pub(crate) fn index_meta(&self, log: &LogName) -> Result<IndexMeta, ReadError> {
        let table = self.opened(&self.index_meta, INDEX_META)?;
        Ok(leaf_index::read_meta(table, log)?)
    }

    fn meta(&self) -> Result<&ReadOnlyTable<&'static str, &'static [u8]>, ReadError> {
        self.opened(&self.meta, SM_META)
    }

    /// The head of a log, or `None` if nothing was ever appended to it.
    pub fn head(&self, log: &LogName) -> Result<Option<LogHead>, ReadError> {
        Ok(read_head(self.heads()?, log)?)
    }

    /// The latest signed checkpoint of a log, or `None` if it has none.
    pub fn checkpoint(&self, log: &LogName) -> Result<Option<String>, ReadError> {
        Ok(self
            .head(log)?
            .map(|head| head.checkpoint)
            .filter(|checkpoint| !checkpoint.is_empty()))
    }

    /// The canonical body of leaf `index`, or `None` beyond the log's size (rows beyond the
    /// head belong to an install still being verified).
    pub fn leaf(&self, log: &LogName, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        if index >= self.size(log)? {
            return Ok(None);
        }
        Ok(self
            .leaves()?
            .get((log.0.as_str(), index))?
            .map(|guard| guard.value().to_vec()))
    }

    /// When leaf `index` was integrated, in milliseconds since the Unix epoch: its batch's
    /// leader-chosen time. `None` beyond the log's size, and for leaves this replica fetched by
    /// snapshot catch-up (their bundles carry no times; another replica may know).
    pub fn integrated_time_ms(&self, log: &LogName, index: u64) -> Result<Option<u64>, ReadError> {
        if index >= self.size(log)? {
            return Ok(None);
        }
        let name = log.0.as_str();
        let Some(row) = self.times()?.range((name, 0)..=(name, index))?.next_back() else {
            return Ok(None);
        };
        let time = row?.1.value();
        Ok((time != TIME_UNKNOWN).then_some(time))
    }

    /// The integrated times of leaves `first .. end` as batch rows (see
    /// [`crate::catch_up::BatchTimes`]): a first row at `first`, then the rows inside the
    /// range; `None` if the log has fewer than `end` leaves or the range is empty. A leaf with
    /// no row at or before it (never written by this version) has an unknown time.
    pub fn batch_times(
        &self,
        log: &LogName,
        first: u64,
        end: u64,
    ) -> Result<Option<crate::catch_up::BatchTimes>, ReadError> {
        if first >= end || end > self.size(log)? {
            return Ok(None);
        }
        let name = log.0.as_str();
        let known = |time: u64| (time != TIME_UNKNOWN).then_some(time);
        let at_first = match self.times()?.range((name, 0)..=(name, first))?.next_back() {
            Some(row) => known(row?.1.value()),
            None => None,
        };
        let mut rows = vec![(first, at_first)];
        for row in self.times()?.range((name, first + 1)..(name, end))? {
            let (key, time) = row?;
            rows.push((key.value().1, known(time.value())));
        }
        Ok(Some(rows))
    }

    /// The index of the leaf with this leaf hash, if the log has one (within its size).
    pub fn find_leaf(&self, log: &LogName, leaf_hash: &Hash) -> Result<Option<u64>, ReadError> {
        let size = self.size(log)?;
        let meta = self.index_meta(log)?;
        let key = leaf_index::dedup_key(leaf_hash);
        let tail_hits = self
            .tail_memory
            .tail_hits(self.tail()?, log, meta.flushed, size, key)?;
        let (candidates, _) = leaf_index::candidates(
            &meta,
            self.blocks()?,
            log.0.as_str(),
            size,
            key,
            None,
            usize::MAX,
            tail_hits,
        )?;
        for index in candidates {
            if self
                .leaf(log, index)?
                .is_some_and(|leaf| tlog::leaf_hash(&leaf) == *leaf_hash)
            {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// The bytes of a hash tile, if the log has it at exactly that width: a partial tile that
    /// the log has since filled further is still served (its hashes never change), a tile
    /// wider than the log's current size is `None`.
    pub fn hash_tile(&self, log: &LogName, tile: Tile) -> Result<Option<Vec<u8>>, ReadError> {
        let TileKind::Hashes { level } = tile.kind else {
            return Err(ReadError::NotAHashTile(tile));
        };
        let size = self.size(log)?;
        match tile_range(tile.index, tile.width) {
            Some((_, end)) if end <= hashes_at_tile_level(size, level) => {
                Ok(Some(read_tile_bytes(self.hashes()?, log, tile)?))
            }
            _ => Ok(None),
        }
    }

    /// The entry bundle of leaves `index * 256 .. index * 256 + width`, if the log has them.
    pub fn entry_bundle(
        &self,
        log: &LogName,
        index: u64,
        width: u16,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        if !(1..=TILE_WIDTH).contains(&width) {
            return Err(ReadError::Width(width));
        }
        let size = self.size(log)?;
        match tile_range(index, width) {
            Some((first, end)) if end <= size => {
                let leaves = read_leaves(self.leaves()?, log, first, end)?;
                Ok(Some(tlog::tile::encode_bundle(&leaves)?))
            }
            _ => Ok(None),
        }
    }

    /// The inclusion proof of leaf `index` in the log's tree of `tree_size` leaves (any size up
    /// to the current one).
    pub fn inclusion_proof(
        &self,
        log: &LogName,
        index: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, ReadError> {
        let tiles = self.cached(log, self.tiles_at(log, tree_size)?);
        tlog::proof::inclusion_proof(&tiles, LeafIndex(index), TreeSize(tree_size)).map_err(
            |source| ReadError::Proof {
                log: log.clone(),
                source,
            },
        )
    }

    /// Inclusion proofs of several leaves in the log's tree of `tree_size` leaves, sharing the
    /// work: every tile is read and every inner hash computed once for the whole set (the
    /// answers of one sequenced batch need proofs for neighbouring leaves at one size).
    pub fn inclusion_proofs(
        &self,
        log: &LogName,
        indices: &[u64],
        tree_size: u64,
    ) -> Result<Vec<InclusionProof>, ReadError> {
        let tiles = self.cached(log, self.tiles_at(log, tree_size)?);
        indices
            .iter()
            .map(|&index| {
                tlog::proof::inclusion_proof(&tiles, LeafIndex(index), TreeSize(tree_size)).map_err(
                    |source| ReadError::Proof {
                        log: log.clone(),
                        source,
                    },
                )
            })
            .collect()
    }

    /// The root of the log's tree at `size` (any size up to the current one), from the
    /// stored tiles.
    pub fn root_at(&self, log: &LogName, size: u64) -> Result<Hash, ReadError> {
        let tiles = self.cached(log, self.tiles_at(log, size)?);
        tlog::tree::root_at(&tiles, TreeSize(size)).map_err(|error| {
            ReadError::Disk(DiskError::Missing(format!("a tile of log {log}: {error}")))
        })
    }

    /// The consistency proof from the log's tree of `old` leaves to its tree of `new` leaves.
    pub fn consistency_proof(
        &self,
        log: &LogName,
        old: u64,
        new: u64,
    ) -> Result<ConsistencyProof, ReadError> {
        let tiles = self.cached(log, self.tiles_at(log, new)?);
        tlog::proof::consistency_proof(&tiles, TreeSize(old), TreeSize(new)).map_err(|source| {
            ReadError::Proof {
                log: log.clone(),
                source,
            }
        })
    }

    /// The indices of the leaves of `log` indexed under `key` (`node::search`), in leaf order:
    /// those after `after` (all from the first with `None`), at most `limit`, all within the
    /// log's size. The second value says whether more follow. Each answer is checked against
    /// the leaf's own search keys (the index keeps 8-byte prefixes).
    pub fn search(
        &self,
        log: &LogName,
        key: &SearchKey,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<u64>, bool), ReadError> {
        let size = self.size(log)?;
        let meta = self.index_meta(log)?;
        let index_key = leaf_index::search_key(key);
        let mut fetch = limit.saturating_add(1);
        let tail_hits =
            self.tail_memory
                .tail_hits(self.tail()?, log, meta.flushed, size, index_key)?;
        loop {
            let (candidates, complete_through) = leaf_index::candidates(
                &meta,
                self.blocks()?,
                log.0.as_str(),
                size,
                index_key,
                after,
                fetch,
                tail_hits.clone(),
            )?;
            let mut found = Vec::new();
            let mut short = false;
            for index in candidates {
                if complete_through.is_some_and(|through| index > through) {
                    // A run stopped before this one: it may hold smaller indices.
                    short = true;
                    break;
                }
                let leaf = self.leaf(log, index)?.ok_or_else(|| {
                    ReadError::Disk(DiskError::Missing(format!("leaf {index} of log {log}")))
                })?;
                if crate::search::keys(&leaf).contains(key) {
                    if found.len() == limit {
                        return Ok((found, true));
                    }
                    found.push(index);
                }
            }
            if !short {
                return Ok((found, false));
            }
            // Some candidates were prefix collisions: read further into the runs.
            fetch = fetch.saturating_mul(2);
        }
    }

    /// Rows in `log`'s index tail, beyond the head too.
    #[cfg(test)]
    pub(crate) fn index_tail_len(&self, log: &LogName) -> u64 {
        let name = log.0.as_str();
        self.tail()
            .unwrap()
            .range((name, 0)..=(name, u64::MAX))
            .unwrap()
            .count() as u64
    }

    /// Every (index key, leaf index) pair of `log`'s leaf index below its size, in order
    /// (tests compare stores with it: runs may be shaped differently, the pairs may not).
    #[cfg(test)]
    pub(crate) fn index_pairs(&self, log: &LogName) -> Vec<(u64, u64)> {
        let size = self.size(log).unwrap();
        let name = log.0.as_str();
        let meta = self.index_meta(log).unwrap();
        let mut pairs = Vec::new();
        for row in self
            .blocks()
            .unwrap()
            .range((name, 0, 0, 0)..=(name, u64::MAX, u64::MAX, u64::MAX))
            .unwrap()
        {
            let (key, value) = row.unwrap();
            for chunk in value.value().chunks_exact(16) {
                let index_key = u64::from_be_bytes(chunk[..8].try_into().unwrap());
                let leaf = u64::from_be_bytes(chunk[8..].try_into().unwrap());
                let _ = key.value();
                pairs.push((index_key, leaf));
            }
        }
        for row in self
            .tail()
            .unwrap()
            .range((name, meta.flushed)..(name, size))
            .unwrap()
        {
            let (key, value) = row.unwrap();
            for chunk in value.value().chunks_exact(8) {
                pairs.push((u64::from_be_bytes(chunk.try_into().unwrap()), key.value().1));
            }
        }
        pairs.retain(|&(_, leaf)| leaf < size);
        // A block a merge has partly consumed still holds pairs its output has too.
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }

    /// The log id of the last entry applied to this state.
    pub fn last_applied(&self) -> Result<Option<LogId<NodeId>>, ReadError> {
        Ok(applied_state(self.meta()?)?.0)
    }

    /// The log's size (0 if it has no head).
    fn size(&self, log: &LogName) -> Result<u64, ReadError> {
        Ok(self.head(log)?.map_or(0, |head| head.tree_size))
    }

    /// `tiles` remembering what they derive in the log's cache. Every log a view can name has
    /// one (the caches are made from the same `Logs`); an unknown log gets a cache of its own.
    fn cached<'a>(
        &'a self,
        log: &LogName,
        tiles: ViewTiles<'a>,
    ) -> tlog::MemoHashStore<ViewTiles<'a>, CacheRef<'a>> {
        let cache = match self.caches.get(log) {
            Some(cache) => CacheRef::Shared(cache),
            None => CacheRef::Own(tlog::HashCache::new(usize::MAX)),
        };
        tlog::MemoHashStore::with_memo(tiles, cache)
    }

    /// The tree of `tree_size` leaves of `log`, read from the stored tiles.
    fn tiles_at<'a>(
        &'a self,
        log: &'a LogName,
        tree_size: u64,
    ) -> Result<ViewTiles<'a>, ReadError> {
        let size = self.size(log)?;
        if size == 0 {
            return Err(ReadError::EmptyLog(log.clone()));
        }
        if tree_size > size {
            return Err(ReadError::BeyondHead {
                log: log.clone(),
                requested: tree_size,
                tree_size: size,
            });
        }
        Ok(TileHashStore::new(
            TableTiles {
                table: self.hashes()?,
                log,
            },
            TreeSize(tree_size),
        ))
    }
}

/// A log's hash cache as a view uses it: the replica's shared one, or, for a log the caches
/// were not made for, one of its own.
#[derive(Debug)]
enum CacheRef<'a> {
    Shared(&'a tlog::HashCache),
    Own(tlog::HashCache),
}

impl std::borrow::Borrow<tlog::HashCache> for CacheRef<'_> {
    fn borrow(&self) -> &tlog::HashCache {
        match self {
            CacheRef::Shared(cache) => cache,
            CacheRef::Own(cache) => cache,
        }
    }
}
