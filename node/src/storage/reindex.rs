//! Building the leaf index from the stored leaves: a rebuild from scratch (`cairn-node reindex`,
//! and a database from before the index's layout), and the bulk catch-up of an index that is
//! behind its leaves (after a snapshot install, and on open after an interrupted one).

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableHandle, WriteTransaction};

use super::leaf_index::{self, IndexShape, IndexTables, Upkeep};
use super::leaf_stream::{self, LEAF_CHUNKS, LEAF_DIRECTORY, LeafStream};
use super::rows::create_state_tables;
use super::table_tiles::TableTiles;
use super::tables::{
    HEADS, INDEX_BLOCKS, INDEX_META, INDEX_TAIL, LEAF_INDEX_BUILT, MIDDLE_HASHES_BUILT,
    OLD_LEAF_INDEX, OLD_LEAVES, OLD_SEARCH, SM_META, TILE_HASHES, decode,
};
use super::{DiskError, begin_immediate};
use crate::search::SearchKey;
use crate::state_machine::LogHead;
use crate::types::LogName;

/// Deletes the tables of the index layout before `leaf_index`, and says whether the leaf index
/// must be built from the stored leaves: a database that has leaves but was never indexed in
/// this layout. A new database is marked as indexed at once.
pub(crate) fn drop_old_index(txn: &WriteTransaction) -> Result<bool, DiskError> {
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

/// Whether the database has table `name` (a table of an older layout, still to be moved).
/// Looked for in a read transaction: every open asks, and nearly every database has none.
fn has_table(db: &Database, name: &str) -> Result<bool, DiskError> {
    Ok(db
        .begin_read()?
        .list_tables()?
        .any(|table| table.name() == name))
}

/// Leaf directory groups moved per transaction, in units of `leaf_stream::REGROUP_UNIT` leaves
/// (100 of them: 240,000 leaves, 9.6 MB of records).
const REGROUP_UNITS: u64 = 100;

/// Moves the leaf directory of a database from before its groups were a multiple of 16 leaves
/// (`leaf_stream::OLD_DIRECTORY`) into the current one, in bounded transactions (see
/// [`leaf_stream::regroup_step`]); a database without the old table is left as it is.
pub(crate) fn regroup_leaf_directory(db: &Database) -> Result<(), DiskError> {
    let mut moved = 0u64;
    while has_table(db, leaf_stream::OLD_DIRECTORY.name())? {
        let txn = begin_immediate(db)?;
        let step = leaf_stream::regroup_step(&txn, REGROUP_UNITS)?;
        txn.commit()?;
        moved += step;
        if step > 0 {
            tracing::info!(moved, "regrouping the leaf directory");
        }
    }
    Ok(())
}

/// Leaves moved per transaction from a row each to the leaf stream.
const MOVE_CHUNK: usize = 65_536;

/// Moves the leaves of a database from before `leaf_stream` (a row per leaf in
/// [`OLD_LEAVES`], a row per leaf hash at Merkle level 0) into the leaf stream, in bounded
/// transactions that each move the lowest remaining leaves of a log and delete their rows, so
/// a crash part way leaves every leaf in exactly one of the two layouts and the next open
/// goes on from there. Deletes the old table once it is empty.
pub(crate) fn move_leaf_rows(db: &Database) -> Result<(), DiskError> {
    let mut moved = 0u64;
    while has_table(db, OLD_LEAVES.name())? {
        let txn = begin_immediate(db)?;
        let mut done = true;
        {
            let mut old = txn.open_table(OLD_LEAVES)?;
            let mut stream = LeafStream::open(&txn)?;
            let mut hashes = txn.open_table(TILE_HASHES)?;
            let mut batch: Vec<(String, u64, Vec<u8>)> = Vec::new();
            for row in old.iter()? {
                let (key, leaf) = row?;
                let (log, index) = key.value();
                if batch
                    .first()
                    .is_some_and(|(first_log, _, _)| first_log.as_str() != log)
                {
                    break;
                }
                batch.push((log.to_owned(), index, leaf.value().to_vec()));
                if batch.len() == MOVE_CHUNK {
                    break;
                }
            }
            if let (Some((log, first, _)), Some((_, last, _))) = (batch.first(), batch.last()) {
                done = false;
                let (log, first, last) = (log.clone(), *first, *last);
                for (_, index, leaf) in &batch {
                    stream.append(&log, *index, &tlog::leaf_hash(leaf), leaf)?;
                }
                stream.flush()?;
                old.retain_in((log.as_str(), first)..=(log.as_str(), last), |_, _| false)?;
                hashes.retain_in(
                    (log.as_str(), 0, first)..=(log.as_str(), 0, last),
                    |_, _| false,
                )?;
                moved += batch.len() as u64;
                tracing::info!(%log, moved, "moving leaves to the leaf stream");
            }
        }
        if done {
            txn.delete_table(OLD_LEAVES)?;
        }
        txn.commit()?;
    }
    Ok(())
}

/// Hashes computed per transaction when a database gets the levels halfway up its tiles.
const MIDDLE_CHUNK: u64 = 65_536;

/// Stores the hashes of the levels halfway up each tile (`state_machine::STORED_LEVEL_STEP`)
/// that a database from before them lacks, folded from the stored level below, for every
/// stored leaf (an interrupted install's leaves beyond the head included), in bounded
/// transactions; then marks the database. Rewriting a hash writes the same bytes, so a crash
/// part way only repeats work. A new database is marked at once.
pub(crate) fn store_middle_hashes(db: &Database) -> Result<(), DiskError> {
    if db
        .begin_read()?
        .open_table(SM_META)?
        .get(MIDDLE_HASHES_BUILT)?
        .is_some()
    {
        return Ok(());
    }
    let step = crate::state_machine::STORED_LEVEL_STEP;
    let per_middle = 1usize << step;
    for log in stored_logs(&db.begin_read()?.open_table(LEAF_DIRECTORY)?)? {
        let stored =
            leaf_stream::stored_leaves(&db.begin_read()?.open_table(LEAF_DIRECTORY)?, &log)?;
        let name = LogName(log.clone());
        for level in (step..64).step_by(usize::from(tlog::tile::TILE_HEIGHT)) {
            let count = stored.checked_shr(u32::from(level)).unwrap_or(0);
            let mut first = 0;
            while first < count {
                let end = count.min(first.saturating_add(MIDDLE_CHUNK));
                let lower = {
                    let txn = db.begin_read()?;
                    TableTiles {
                        table: &txn.open_table(TILE_HASHES)?,
                        directory: &txn.open_table(LEAF_DIRECTORY)?,
                        pinned: None,
                        log: &name,
                    }
                    .level(level - step, first << step, end << step)?
                };
                let txn = begin_immediate(db)?;
                {
                    let mut hashes = txn.open_table(TILE_HASHES)?;
                    for (index, group) in
                        (first..end).zip(lower.chunks_exact(per_middle * tlog::hash::HASH_LEN))
                    {
                        let root = tlog::tile::subtree_root(group).ok_or_else(|| {
                            DiskError::Missing(format!(
                                "hashes under level {level} index {index} of log {log}"
                            ))
                        })?;
                        hashes.insert((log.as_str(), level, index), root.as_bytes().as_slice())?;
                    }
                }
                txn.commit()?;
                first = end;
            }
            if count > 0 {
                tracing::info!(%log, level, hashes = count, "stored a level halfway up the tiles");
            }
        }
    }
    let txn = begin_immediate(db)?;
    txn.open_table(SM_META)?
        .insert(MIDDLE_HASHES_BUILT, [1u8].as_slice())?;
    txn.commit()?;
    Ok(())
}

/// The name of every log that has leaves in the stream.
fn stored_logs<D: ReadableTable<leaf_stream::StreamKey, &'static [u8]>>(
    directory: &D,
) -> Result<Vec<String>, DiskError> {
    let mut logs: Vec<String> = Vec::new();
    loop {
        let next = match logs.last() {
            None => directory.first()?,
            Some(last) => directory
                .range::<(&str, u64)>((
                    std::ops::Bound::Excluded((last.as_str(), u64::MAX)),
                    std::ops::Bound::Unbounded,
                ))?
                .next()
                .transpose()?,
        };
        let Some((key, _)) = next else {
            return Ok(logs);
        };
        logs.push(key.value().0.to_owned());
    }
}

/// Leaves read per transaction while rebuilding the leaf index.
const REBUILD_CHUNK: u64 = 4096;

/// Rebuilds the leaf index of every log from its stored leaves (`cairn-node reindex`, and a
/// database from before `leaf_index`): drops the index rows, writes every leaf's tail row in
/// bounded transactions, and marks the database as indexed. The runs are then built by
/// [`catch_up_leaf_index`], doing `work`. A crash part way leaves the mark unset, so the next
/// open starts again.
pub(crate) fn rebuild_leaf_index(
    db: &Database,
    shape: &IndexShape,
    work: IndexWork,
) -> Result<Vec<(String, u64)>, DiskError> {
    let txn = begin_immediate(db)?;
    txn.open_table(SM_META)?.remove(LEAF_INDEX_BUILT)?;
    let heads = head_sizes(&txn.open_table(HEADS)?)?;
    for table in [
        INDEX_TAIL.name(),
        INDEX_BLOCKS.name(),
        INDEX_META.name(),
        super::run_filter::INDEX_FILTERS.name(),
    ] {
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
                let chunks = txn.open_table(LEAF_CHUNKS)?;
                let directory = txn.open_table(LEAF_DIRECTORY)?;
                let leaves = leaf_stream::read_leaves(&chunks, &directory, log, first, end)?;
                let hashes = leaf_stream::leaf_hashes(&directory, log, first, end)?;
                let mut index = IndexTables::open(&txn)?;
                for ((at, leaf), hash) in (first..).zip(&leaves).zip(hashes.chunks_exact(32)) {
                    let keys: Vec<SearchKey> = crate::search::keys(leaf).into_iter().collect();
                    let hash = tlog::Hash::from_slice(hash)
                        .map_err(|error| DiskError::Missing(error.to_string()))?;
                    let row = leaf_index::tail_row(&hash, &keys);
                    index.put_tail(log, at, &row)?;
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
    catch_up_leaf_index_to(db, shape, &heads, work)?;
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
    catch_up_leaf_index_to(db, shape, &sizes, IndexWork::All)
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

/// How much of the index's pending work [`catch_up_leaf_index_to`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IndexWork {
    /// Every flush and every merge.
    All,
    /// The flushes only: every leaf below the sizes gets into a run, so lookups read no long
    /// tail; the merges those runs start are left to apply's upkeep, which pays for them a
    /// slice at a time. A snapshot install does this: at 10^7 of the bench's entries the merges
    /// rewrite about 25 million pairs, work that only makes later lookups read fewer runs.
    Flushes,
}

/// [`catch_up_leaf_index`] up to the given sizes, which may be beyond the heads: a snapshot
/// install indexes the leaves it verified before it makes them visible.
pub(crate) fn catch_up_leaf_index_to(
    db: &Database,
    shape: &IndexShape,
    sizes: &[(LogName, u64)],
    work: IndexWork,
) -> Result<(), DiskError> {
    let mut wrote = false;
    for (log, size) in sizes {
        let size = *size;
        loop {
            let before = {
                let txn = db.begin_read()?;
                leaf_index::read_meta(&txn.open_table(INDEX_META)?, log)?
            };
            let pending = match work {
                IndexWork::All => before.has_work(size, shape),
                IndexWork::Flushes => before.has_flushes(size, shape),
            };
            if !pending {
                break;
            }
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            {
                let mut index = IndexTables::open(&txn)?;
                let pairs = match work {
                    IndexWork::All => 16 * shape.tail_leaves.max(1) * shape.work_per_leaf,
                    IndexWork::Flushes => 0,
                };
                let upkeep = Upkeep::Bulk { flushes: 16, pairs };
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
