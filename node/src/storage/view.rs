//! The consistent read API the HTTP layer serves from: [`StateReader`] hands out [`StateView`]s,
//! each one redb read transaction, an MVCC snapshot of the last commit, so every answer of one
//! view is about the same state while apply continues.

use std::cell::OnceCell;
use std::fmt::Debug;
use std::sync::Arc;

use openraft::LogId;
use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition};
use tlog::proof::{ConsistencyProof, InclusionProof, ProofError};
use tlog::tile::{BundleError, TILE_WIDTH, Tile, TileHashStore, TileKind};
use tlog::{Hash, LeafIndex, TreeSize};

use super::leaf_index::{self, BlockKey, IndexMeta, TailKey};
use super::leaf_stream::{self, LEAF_CHUNKS, LEAF_DIRECTORY, StreamKey};
use super::pinned_levels::{PinnedLevels, VIEW_ROWS_MAX};
use super::rows::{SharedTailMemory, applied_state, read_head};
use super::run_filter::{FilterKey, INDEX_FILTERS};
use super::table_tiles::{TableTiles, TileKey, hashes_at_tile_level, tile_range};
use super::tables::{
    BATCH_TIMES, HEADS, INDEX_BLOCKS, INDEX_META, INDEX_TAIL, SM_META, TILE_HASHES, TIME_UNKNOWN,
};
use super::{DiskError, SharedDb};
use crate::search::SearchKey;
use crate::state_machine::{HashCaches, LogHead};
use crate::types::{LogName, NodeAddress, NodeId};

/// The stored hashes of one log as a view reads them.
type ViewTableTiles<'a> =
    TableTiles<'a, ReadOnlyTable<TileKey, &'static [u8]>, ReadOnlyTable<StreamKey, &'static [u8]>>;

/// A tree read from the tiles of one view.
type ViewTiles<'a> = TileHashStore<ViewTableTiles<'a>>;

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
    pub(super) caches: Arc<HashCaches>,
    pub(super) pinned: Arc<PinnedLevels>,
    pub(super) tail_memory: SharedTailMemory,
    pub(super) lifecycle: super::rows::SharedLifecycle,
}

impl Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader").finish_non_exhaustive()
    }
}

impl StateReader {
    /// A snapshot of the last committed state for `cairn-node backup`: its meta and encoded
    /// descriptor, as of one read transaction, not stored. Blocking, like [`Self::view`].
    pub fn backup_snapshot(
        &self,
    ) -> Result<(openraft::SnapshotMeta<NodeId, NodeAddress>, Vec<u8>), ReadError> {
        Ok(super::snapshot::backup_snapshot(&self.db)?)
    }

    /// The rotations applied, as this node last committed them (`crate::lifecycle`).
    pub fn lifecycle(&self) -> std::sync::Arc<crate::lifecycle::Lifecycle> {
        self.lifecycle.get()
    }

    /// A consistent view of the last committed state: one redb read transaction. Blocking
    /// (redb reads pages from disk); call it, and the view's methods, through
    /// [`Blocking::run`] from async code. Drop the view soon: it pins the pages it sees.
    pub fn view(&self) -> Result<StateView, ReadError> {
        Ok(StateView {
            txn: self.db.begin_read()?,
            chunks: OnceCell::new(),
            directory: OnceCell::new(),
            filters: OnceCell::new(),
            hashes: OnceCell::new(),
            heads: OnceCell::new(),
            times: OnceCell::new(),
            tail: OnceCell::new(),
            blocks: OnceCell::new(),
            index_meta: OnceCell::new(),
            meta: OnceCell::new(),
            caches: self.caches.clone(),
            pinned: self.pinned.clone(),
            tail_memory: self.tail_memory.clone(),
        })
    }

    /// The `SignBeforeCommit` and `AckBeforeCommit` canaries: `command`'s outcome (indices,
    /// signed checkpoint) computed by applying it to a scratch copy of this replica's state, a
    /// write transaction that is then aborted. Nothing here is committed by Raft.
    #[cfg(feature = "canaries")]
    pub fn predict(
        &self,
        logs: &crate::state_machine::Logs,
        command: &crate::types::Command,
    ) -> Result<crate::types::CommandOutcome, String> {
        let txn = self.db.begin_write().map_err(|error| error.to_string())?;
        let outcome = super::rows::RedbState::open(&txn)
            .map_err(|error| error.to_string())
            .and_then(|mut state| {
                crate::state_machine::apply(&mut state, logs, command)
                    .map_err(|error| error.to_string())
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
    chunks: OnceCell<ReadOnlyTable<StreamKey, &'static [u8]>>,
    directory: OnceCell<ReadOnlyTable<StreamKey, &'static [u8]>>,
    filters: OnceCell<ReadOnlyTable<FilterKey, &'static [u8]>>,
    hashes: OnceCell<ReadOnlyTable<TileKey, &'static [u8]>>,
    heads: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    times: OnceCell<ReadOnlyTable<(&'static str, u64), u64>>,
    tail: OnceCell<ReadOnlyTable<TailKey, &'static [u8]>>,
    blocks: OnceCell<ReadOnlyTable<BlockKey, &'static [u8]>>,
    index_meta: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    meta: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    caches: Arc<HashCaches>,
    pinned: Arc<PinnedLevels>,
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

    fn chunks(&self) -> Result<&ReadOnlyTable<StreamKey, &'static [u8]>, ReadError> {
        self.opened(&self.chunks, LEAF_CHUNKS)
    }

    fn directory(&self) -> Result<&ReadOnlyTable<StreamKey, &'static [u8]>, ReadError> {
        self.opened(&self.directory, LEAF_DIRECTORY)
    }

    fn filters(&self) -> Result<&ReadOnlyTable<FilterKey, &'static [u8]>, ReadError> {
        self.opened(&self.filters, INDEX_FILTERS)
    }

    /// Leaves `first .. end` of `log`, every one of which must be stored.
    fn leaves(&self, log: &LogName, first: u64, end: u64) -> Result<Vec<Vec<u8>>, ReadError> {
        Ok(leaf_stream::read_leaves(
            self.chunks()?,
            self.directory()?,
            log.0.as_str(),
            first,
            end,
        )?)
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
        Ok(self.leaves(log, index, index + 1)?.pop())
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
        let filters = self.filters()?;
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
            &|runs| self.tail_memory.runs_may_hold(filters, log, runs, key),
        )?;
        for index in candidates {
            if index < size
                && leaf_stream::leaf_hash(self.directory()?, log.0.as_str(), index)?
                    == Some(*leaf_hash)
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
                Ok(Some(self.table_tiles(log)?.tile_bytes(tile)?))
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
                let leaves = self.leaves(log, first, end)?;
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
        let filters = self.filters()?;
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
                &|runs| {
                    self.tail_memory
                        .runs_may_hold(filters, log, runs, index_key)
                },
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
        // Held levels follow the head a few rows at a time. They only spare reads: if they
        // cannot follow, the table answers (and names what is wrong if the proof needs it).
        if let Err(error) = self.pinned.follow(self.hashes()?, log, size, VIEW_ROWS_MAX) {
            tracing::warn!(%log, %error, "upper tree levels not held in memory");
        }
        Ok(TileHashStore::new(
            self.table_tiles(log)?,
            TreeSize(tree_size),
        ))
    }

    /// The stored hashes of `log` as this view reads them: held levels first, then its tables.
    fn table_tiles<'a>(&'a self, log: &'a LogName) -> Result<ViewTableTiles<'a>, ReadError> {
        Ok(TableTiles {
            table: self.hashes()?,
            directory: self.directory()?,
            pinned: Some(&self.pinned),
            log,
        })
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
