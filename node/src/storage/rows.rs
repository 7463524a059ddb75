//! Rows of `state.redb` and the writer over them: the readers shared by apply (inside its write
//! transaction) and the read view, and [`RedbState`], the redb implementation of
//! [`StateAccess`] that apply and snapshot catch-up write through. Reading tree hashes back out
//! of the tables is [`table_tiles`](super::table_tiles).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use openraft::{LogId, StoredMembership};
use redb::{ReadableTable, Table, WriteTransaction};
use tlog::tile::Tile;
use tlog::{Hash, NodeId as TreeNodeId};

use super::DiskError;
use super::leaf_index::{self, IndexMeta, IndexShape, IndexTables, TailKey, Upkeep};
use super::leaf_stream::{LEAF_CHUNKS, LEAF_DIRECTORY, LeafStream};
use super::run_filter::{FilterCache, FilterKey, INDEX_FILTERS, RunFilter};
use super::table_tiles::{TableTiles, TileKey};
use super::tables::{
    BATCH_TIMES, HEADS, INDEX_BLOCKS, INDEX_META, INDEX_TAIL, LAST_APPLIED, LAST_MEMBERSHIP,
    LIFECYCLE, SM_META, TILE_HASHES, TIME_UNKNOWN, decode, encode,
};
use crate::lifecycle::Lifecycle;
use crate::search::SearchKey;
use crate::state_machine::{HashCaches, LogHead, StateAccess, StateError};
use crate::types::{LogName, NodeAddress, NodeId};

/// A tile reader over the tables of a write transaction.
pub(crate) type WriteTiles<'a, 'txn> =
    TableTiles<'a, Table<'txn, TileKey, &'static [u8]>, LeafStream<'txn>>;

/// Creates (opens) every table that holds replicated state.
pub(crate) fn create_state_tables(txn: &WriteTransaction) -> Result<(), DiskError> {
    txn.open_table(LEAF_CHUNKS)?;
    txn.open_table(LEAF_DIRECTORY)?;
    txn.open_table(TILE_HASHES)?;
    txn.open_table(HEADS)?;
    txn.open_table(BATCH_TIMES)?;
    txn.open_table(INDEX_TAIL)?;
    txn.open_table(INDEX_BLOCKS)?;
    txn.open_table(INDEX_META)?;
    txn.open_table(INDEX_FILTERS)?;
    txn.open_table(SM_META)?;
    Ok(())
}

/// Apply's memory of each log's leaf-index tail: dedup key → leaf indices, for the tail rows
/// from `from` to `end`. It saves apply a scan of the tail per leaf. Valid only while it matches
/// the stored tail exactly (same start, same end; rows below the head never change), which
/// every lookup checks; apply forgets it on any error, since it may hold rows of a transaction
/// that did not commit. With it, the runs' filters (`run_filter`), forgotten with it.
#[derive(Debug, Default)]
pub(crate) struct TailMemory {
    tails: BTreeMap<LogName, TailKeys>,
    filters: FilterCache,
}

impl TailMemory {
    fn clear(&mut self) {
        self.tails.clear();
        self.filters.clear();
    }
}

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
                guard.clear();
                guard
            }
        }
    }

    /// Forgets everything (after a failed apply, or a snapshot install).
    pub(crate) fn forget(&self) {
        self.lock().clear();
    }

    /// For each of the complete `runs` of `log`, whether it may hold `key`, by its filter
    /// (read from `filters` the first time and kept).
    pub(crate) fn runs_may_hold<F: ReadableTable<FilterKey, &'static [u8]>>(
        &self,
        filters: &F,
        log: &LogName,
        runs: &[u64],
        key: u64,
    ) -> Result<Vec<bool>, DiskError> {
        let name = log.0.as_str();
        let mut answers = self.lock().filters.may_hold_each(name, runs, key);
        for (&run, answer) in runs.iter().zip(&mut answers) {
            if answer.is_none() {
                let filter = Arc::new(RunFilter::read(filters, name, run)?);
                *answer = Some(filter.may_hold(key));
                self.lock().filters.insert(name, run, filter);
            }
        }
        Ok(answers
            .into_iter()
            .map(|answer| answer != Some(false))
            .collect())
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
            match memory.tails.get(log) {
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

/// The last applied log id and the last membership.
pub(crate) type AppliedState = (Option<LogId<NodeId>>, StoredMembership<NodeId, NodeAddress>);

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

/// The rotations applied so far, as stored in `SM_META`.
pub(crate) fn read_lifecycle<T: ReadableTable<&'static str, &'static [u8]>>(
    meta: &T,
) -> Result<Lifecycle, DiskError> {
    match meta.get(LIFECYCLE)? {
        Some(bytes) => decode("sm_meta", &LIFECYCLE, bytes.value()),
        None => Ok(Lifecycle::default()),
    }
}

/// Writes the rotations applied, or removes the row when there are none (a state that never
/// rotated stays byte for byte what it was before rotations existed).
pub(crate) fn write_lifecycle(
    meta: &mut Table<'_, &'static str, &'static [u8]>,
    lifecycle: &Lifecycle,
) -> Result<(), DiskError> {
    if lifecycle.rotations.is_empty() {
        meta.remove(LIFECYCLE)?;
    } else {
        meta.insert(LIFECYCLE, encode("log lifecycle", lifecycle)?.as_slice())?;
    }
    Ok(())
}

/// The rotations applied, as the node last committed them: kept in memory by the state
/// store (after each apply that rotates, and each snapshot install) for the routing of every
/// request, which must not read the database for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedLifecycle(Arc<std::sync::RwLock<Arc<Lifecycle>>>);

impl SharedLifecycle {
    /// The rotations applied.
    pub(crate) fn get(&self) -> Arc<Lifecycle> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn set(&self, lifecycle: Lifecycle) {
        let lifecycle = Arc::new(lifecycle);
        match self.0.write() {
            Ok(mut guard) => *guard = lifecycle,
            Err(poisoned) => *poisoned.into_inner() = lifecycle,
        }
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

/// [`StateAccess`] over the tables of one redb write transaction: reads see the transaction's
/// own earlier writes, so later entries of a batch see earlier ones.
pub(crate) struct RedbState<'txn> {
    leaves: LeafStream<'txn>,
    hashes: Table<'txn, TileKey, &'static [u8]>,
    heads: Table<'txn, &'static str, &'static [u8]>,
    times: Table<'txn, (&'static str, u64), u64>,
    index: IndexTables<'txn>,
    /// State-machine metadata, for the rotations applied.
    meta: Table<'txn, &'static str, &'static [u8]>,
    /// Apply's caches ([`StateAccess::hash_cache`]); `None` for writers that must not fill
    /// them (a snapshot install writes tiles of leaves it has not verified yet).
    caches: Option<Arc<HashCaches>>,
    /// Apply's index upkeep: the index's sizes and apply's memory of its tail. `None` for a
    /// snapshot install, which catches the index up once the leaves are verified.
    upkeep: Option<(IndexShape, SharedTailMemory)>,
    /// The index bookkeeping of each log this transaction has looked up in, kept current by
    /// its own writes; a log's presence also means the memory of its tail was checked against
    /// the stored tail in this transaction. Saves a decode and a descent per leaf.
    /// Shared, not copied, by each lookup: the bookkeeping lists every run and merge.
    index_metas: RefCell<BTreeMap<LogName, Arc<IndexMeta>>>,
}

impl<'txn> RedbState<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<RedbState<'txn>, DiskError> {
        Ok(RedbState {
            leaves: LeafStream::open(txn)?,
            hashes: txn.open_table(TILE_HASHES)?,
            heads: txn.open_table(HEADS)?,
            times: txn.open_table(BATCH_TIMES)?,
            index: IndexTables::open(txn)?,
            meta: txn.open_table(SM_META)?,
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
    pub(crate) fn with_index_upkeep(
        self,
        shape: IndexShape,
        memory: SharedTailMemory,
    ) -> RedbState<'txn> {
        RedbState {
            upkeep: Some((shape, memory)),
            ..self
        }
    }

    /// Writes what this state holds back until the commit (each log's last leaf chunk and
    /// directory group, `leaf_stream`): every writer calls it before its transaction commits.
    pub(crate) fn finish(mut self) -> Result<(), DiskError> {
        self.leaves.flush()
    }

    /// Whether leaf `index` of `log` is stored.
    pub(crate) fn has_leaf(&self, log: &LogName, index: u64) -> Result<bool, DiskError> {
        Ok(self.leaves.leaf_hash(log.0.as_str(), index)?.is_some())
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
        let beyond = self.leaves.truncate(name, size)?;
        self.index.truncate(log, size)?;
        // A time row beyond the head would otherwise date the leaves later appended there.
        self.times
            .retain_in((name, size)..=(name, u64::MAX), |_, _| false)?;
        // A subtree at Merkle level `level` with index `i` is inside the tree iff
        // (i + 1) << level <= size, that is i < size >> level.
        for level in (0..64u8).step_by(usize::from(crate::state_machine::STORED_LEVEL_STEP)) {
            let first = size.checked_shr(u32::from(level)).unwrap_or(0);
            self.hashes
                .retain_in((name, level, first)..=(name, level, u64::MAX), |_, _| false)?;
        }
        Ok(beyond)
    }

    /// A tile reader over this transaction's hashes of `log`.
    pub(crate) fn tiles<'a>(&'a self, log: &'a LogName) -> WriteTiles<'a, 'txn> {
        TableTiles {
            table: &self.hashes,
            directory: &self.leaves,
            pinned: None,
            log,
        }
    }

    /// Whether leaf `index` of `log` is stored and has this leaf hash.
    fn leaf_has_hash(&self, log: &str, index: u64, leaf_hash: &Hash) -> Result<bool, DiskError> {
        Ok(self.leaves.leaf_hash(log, index)? == Some(*leaf_hash))
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
            if let Some(tail) = memory.tails.get(log) {
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
            .tails
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
            memory.tails.insert(log.clone(), tail);
        }
        self.index_metas
            .borrow_mut()
            .insert(log.clone(), Arc::new(meta.clone()));
        Ok(memory
            .tails
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

    fn lifecycle(&self) -> Result<Lifecycle, StateError> {
        read_lifecycle(&self.meta).map_err(|error| state_error(&error))
    }

    fn put_lifecycle(&mut self, lifecycle: &Lifecycle) -> Result<(), StateError> {
        write_lifecycle(&mut self.meta, lifecycle).map_err(|error| state_error(&error))
    }

    fn find_leaf(&self, log: &LogName, leaf_hash: &Hash) -> Result<Option<u64>, StateError> {
        let found = || -> Result<Option<u64>, DiskError> {
            let name = log.0.as_str();
            let known = self.index_metas.borrow().get(log).cloned();
            let meta = match known {
                Some(meta) => meta,
                None => Arc::new(leaf_index::read_meta(&self.index.meta, log)?),
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
            // Filters only with apply's memory to keep them (a predicting or installing
            // writer reads every run).
            let may_hold = |runs: &[u64]| match &self.upkeep {
                Some((_, memory)) => memory.runs_may_hold(&self.index.filters, log, runs, key),
                None => Ok(vec![true; runs.len()]),
            };
            leaf_index::run_candidates(
                &meta,
                &self.index.blocks,
                name,
                key,
                &mut candidates,
                &may_hold,
            )?;
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
            .append(name, index, leaf_hash, leaf)
            .map_err(|error| state_error(&error))?;
        let row = leaf_index::tail_row(leaf_hash, search_keys);
        self.index
            .put_tail(name, index, &row)
            .map_err(|error| state_error(&error))?;
        if let Some((_, memory)) = &self.upkeep {
            let mut memory = memory.lock();
            match memory.tails.get_mut(log) {
                Some(tail) if tail.end == index => {
                    for key in leaf_index::tail_row_keys(&row) {
                        tail.keys.entry(key).or_default().push(index);
                    }
                    tail.end += 1;
                }
                _ => {
                    memory.tails.remove(log);
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
        if let Some(tail) = memory.tails.get_mut(log)
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
            *known = Arc::new(meta);
        }
        Ok(())
    }

    fn put_tile_hash(
        &mut self,
        log: &LogName,
        node: TreeNodeId,
        hash: &Hash,
    ) -> Result<(), StateError> {
        // Level 0 is the leaf hashes, which `put_leaf` stored in the leaf directory.
        if node.level == 0 {
            return Ok(());
        }
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
        self.tiles(log)
            .tile_part(tile, first, count)
            .map_err(|error| state_error(&error))
    }

    fn subtree_root(
        &self,
        log: &LogName,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Hash, StateError> {
        self.tiles(log)
            .subtree_root_part(tile, first, count)
            .map_err(|error| state_error(&error))
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
