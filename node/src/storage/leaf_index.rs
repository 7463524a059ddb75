//! The leaf index: which leaf has a given leaf hash (deduplication) and which leaves have a given
//! search key (`node::search`), stored so that the write work per leaf does not grow with the
//! log.
//!
//! A B-tree keyed by random hashes dirties a page of its own for nearly every insert once the
//! table is much larger than a batch: at 10^7 leaves that was most of what a node wrote, and it
//! kept growing with the log. So the index is a small log-structured merge tree inside
//! `state.redb`, every part of it written in key order:
//! - the **tail** ([`INDEX_TAIL`]): one row per leaf, keyed by leaf index, holding the leaf's
//!   index keys. Written with the leaf, append-only, like the leaves themselves.
//! - **runs** ([`INDEX_BLOCKS`]): immutable sorted arrays of (index key, leaf index) pairs,
//!   stored as blocks of up to [`IndexShape::block_entries`] pairs keyed by their first pair.
//!   Once the head is [`IndexShape::tail_leaves`] leaves past the start of the tail, those tail
//!   rows are sorted into a new run of level 0 and deleted (a *flush*). Catching up in bulk
//!   (after a snapshot install), up to `tail_leaves * fanout^4` leaves are flushed at once into
//!   one run of the level their merges would have reached, so each pair is written once.
//! - **merges**: once a level holds [`IndexShape::fanout`] runs, they are merged into one run of
//!   the next level, one key-range *slice* at a time. Apply pays for merges with credit earned
//!   by the leaves it appends ([`IndexShape::work_per_leaf`]), so no batch does more than a
//!   bounded amount of merge work and the levels keep up with the log. While a merge runs, keys
//!   below its boundary are read from its output and the others from its inputs, whose blocks
//!   are deleted as soon as every pair in them has been merged.
//!
//! The bookkeeping (where the tail starts, the runs, the merges in progress) is one postcard row
//! per log in [`INDEX_META`].
//!
//! Index keys are 8 bytes of a 32-byte hash (the leaf hash for deduplication, a search key's
//! hash for search) xored with the kind's tag. They are not unique, so every candidate a lookup
//! finds is checked against the leaf itself (its leaf hash, or its search keys): answers are
//! exact, and a crafted collision of 8-byte prefixes costs one more leaf read, nothing else.
//!
//! The index is a function of the leaves below the head, maintained inside the write
//! transaction that stores them (apply's, or one of snapshot catch-up's bounded ones), so a crash
//! never leaves it half-written. Two replicas may hold differently shaped runs (one applied
//! every batch, another caught up in bulk) but always answer alike.

use std::collections::BTreeMap;

use redb::{ReadableTable, Table};
use serde::{Deserialize, Serialize};
use tlog::Hash;

use super::DiskError;
use super::run_filter::{self, FilterKey, INDEX_FILTERS};
use super::tables::{INDEX_BLOCKS, INDEX_META, INDEX_TAIL, decode, encode};
use crate::search::SearchKey;
use crate::types::LogName;

/// Key of [`INDEX_TAIL`]: (log name, leaf index).
pub(crate) type TailKey = (&'static str, u64);
/// Key of [`INDEX_BLOCKS`]: (log name, run id, first index key, first leaf index).
pub(crate) type BlockKey = (&'static str, u64, u64, u64);

/// The bytes of one (index key, leaf index) pair in a block.
const PAIR_BYTES: usize = 16;

/// The sizes that shape the index. Any shape reads an index written with any other (runs and
/// merges record their own sizes), so a node may change it between starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexShape {
    /// Leaves the tail holds below the head before they are flushed into a run: what every
    /// lookup scans row by row, and what a flush sorts.
    pub tail_leaves: u64,
    /// Runs of one level merged into one run of the next.
    pub fanout: usize,
    /// Pairs per block: 240 pairs (3,840 bytes) and the block's key fit one 4 KiB redb page.
    pub block_entries: usize,
    /// Pairs a merge slice aims at.
    pub slice_entries: u64,
    /// Merge work (pairs read and written) each appended leaf pays for: above the write
    /// amplification of the levels (about one per level), so that merges keep up.
    pub work_per_leaf: u64,
}

impl Default for IndexShape {
    fn default() -> IndexShape {
        IndexShape {
            tail_leaves: 4096,
            fanout: 4,
            block_entries: 240,
            slice_entries: 16_384,
            work_per_leaf: 48,
        }
    }
}

/// One log's index bookkeeping, stored in [`INDEX_META`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexMeta {
    /// Leaves below this index are in runs; the tail holds the rows from here on.
    pub(crate) flushed: u64,
    /// The id the next run gets.
    next_run: u64,
    /// Complete runs, in id order (inputs of a merge in progress included).
    runs: Vec<Run>,
    /// Merges in progress, in the order they began.
    merges: Vec<Merge>,
    /// Merge work earned by appended leaves and not yet spent.
    credit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Run {
    id: u64,
    level: u8,
    entries: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Merge {
    /// The level of the output.
    level: u8,
    /// The runs being merged.
    inputs: Vec<u64>,
    /// Their pairs in all.
    entries_in: u64,
    /// The run being written.
    output: u64,
    /// Key-range slices in all, and how many are merged.
    slices: u64,
    done: u64,
    /// Pairs written to the output so far.
    written: u64,
}

impl Merge {
    /// Keys below this are in the output; the others still in the inputs.
    fn boundary(&self) -> u128 {
        slice_start(self.done, self.slices)
    }

    fn slice_estimate(&self) -> u64 {
        (self.entries_in / self.slices.max(1)).max(1)
    }
}

/// The first key of slice `slice` of `slices` (2^64 for `slice == slices`).
fn slice_start(slice: u64, slices: u64) -> u128 {
    (u128::from(slice) << 64) / u128::from(slices.max(1))
}

/// The index key of a leaf hash.
pub(crate) fn dedup_key(leaf_hash: &Hash) -> u64 {
    index_key(0, leaf_hash.as_bytes())
}

/// The index key of a search key.
pub(crate) fn search_key(key: &SearchKey) -> u64 {
    index_key(key.kind.tag(), &key.hash)
}

fn index_key(tag: u8, hash: &[u8; 32]) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(prefix) ^ (u64::from(tag) << 56)
}

/// A tail row: the leaf's dedup key, then its search keys.
pub(crate) fn tail_row(leaf_hash: &Hash, keys: &[SearchKey]) -> Vec<u8> {
    let mut row = Vec::with_capacity(8 * (1 + keys.len()));
    row.extend_from_slice(&dedup_key(leaf_hash).to_be_bytes());
    for key in keys {
        row.extend_from_slice(&search_key(key).to_be_bytes());
    }
    row
}

fn decode_tail_row(log: &str, index: u64, bytes: &[u8]) -> Result<Vec<u64>, DiskError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return Err(DiskError::corrupt(
            "index_tail",
            &format_args!("({log}, {index})"),
            format!("{} bytes, not a positive multiple of 8", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|chunk| {
            let mut key = [0u8; 8];
            key.copy_from_slice(chunk);
            u64::from_be_bytes(key)
        })
        .collect())
}

fn decode_block(key: (&str, u64, u64, u64), bytes: &[u8]) -> Result<Vec<(u64, u64)>, DiskError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(PAIR_BYTES) {
        return Err(DiskError::corrupt(
            "index_blocks",
            &format_args!("{key:?}"),
            format!("{} bytes, not a positive multiple of 16", bytes.len()),
        ));
    }
    let pairs: Vec<(u64, u64)> = bytes
        .chunks_exact(PAIR_BYTES)
        .map(|chunk| {
            let (mut index_key, mut leaf) = ([0u8; 8], [0u8; 8]);
            index_key.copy_from_slice(&chunk[..8]);
            leaf.copy_from_slice(&chunk[8..]);
            (u64::from_be_bytes(index_key), u64::from_be_bytes(leaf))
        })
        .collect();
    if pairs.first() != Some(&(key.2, key.3)) || !pairs.is_sorted() {
        return Err(DiskError::corrupt(
            "index_blocks",
            &format_args!("{key:?}"),
            "pairs out of order or not starting at the key",
        ));
    }
    Ok(pairs)
}

/// One log's bookkeeping (empty for a log never indexed).
pub(crate) fn read_meta<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    log: &LogName,
) -> Result<IndexMeta, DiskError> {
    match table.get(log.0.as_str())? {
        Some(bytes) => decode("index_meta", log, bytes.value()),
        None => Ok(IndexMeta::default()),
    }
}

/// The sources a lookup of `key` reads besides the tail: every complete run except merge inputs
/// whose pairs with this key were already merged, and the output of those merges.
fn runs_for(meta: &IndexMeta, key: u64) -> Vec<u64> {
    let merged = |merge: &Merge| u128::from(key) < merge.boundary();
    let mut ids: Vec<u64> = meta
        .runs
        .iter()
        .filter(|run| {
            !meta
                .merges
                .iter()
                .any(|merge| merge.inputs.contains(&run.id) && merged(merge))
        })
        .map(|run| run.id)
        .collect();
    ids.extend(
        meta.merges
            .iter()
            .filter(|merge| merged(merge))
            .map(|merge| merge.output),
    );
    ids
}

/// The runs a lookup of `key` reads: [`runs_for`], less the complete runs whose filter
/// (`may_hold`, `run_filter`) says they do not hold it. A merge output still being written has
/// no complete filter and is always read.
fn runs_to_read(
    meta: &IndexMeta,
    key: u64,
    may_hold: &dyn Fn(u64) -> Result<bool, DiskError>,
) -> Result<Vec<u64>, DiskError> {
    let mut runs = Vec::new();
    for run in runs_for(meta, key) {
        if !meta.is_complete(run) || may_hold(run)? {
            runs.push(run);
        }
    }
    Ok(runs)
}

/// Pair `position` of a block's bytes (whose length is a multiple of [`PAIR_BYTES`]).
fn pair_at(bytes: &[u8], position: usize) -> (u64, u64) {
    let at = position * PAIR_BYTES;
    let mut key = [0u8; 8];
    let mut leaf = [0u8; 8];
    key.copy_from_slice(&bytes[at..at + 8]);
    leaf.copy_from_slice(&bytes[at + 8..at + PAIR_BYTES]);
    (u64::from_be_bytes(key), u64::from_be_bytes(leaf))
}

/// A stored block's bytes, checked for shape: whole pairs, the first one its key. (Order inside
/// is not checked here: a lookup only ever takes candidates from it, which are checked against
/// the leaves.)
fn block_bytes<'b>(key: (&str, u64, u64, u64), bytes: &'b [u8]) -> Result<&'b [u8], DiskError> {
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(PAIR_BYTES)
        || pair_at(bytes, 0) != (key.2, key.3)
    {
        return Err(DiskError::corrupt(
            "index_blocks",
            &format_args!("{key:?}"),
            format!("{} bytes, not whole pairs starting at the key", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// Every leaf index paired with `key` in run `run`: one descent to the last block that can hold
/// `key`, then backwards while earlier blocks can too (deduplication's lookup).
fn run_find_all<T: ReadableTable<BlockKey, &'static [u8]>>(
    blocks: &T,
    log: &str,
    run: u64,
    key: u64,
    out: &mut Vec<u64>,
) -> Result<(), DiskError> {
    for row in blocks
        .range((log, run, 0, 0)..=(log, run, key, u64::MAX))?
        .rev()
    {
        let (block_key, bytes) = row?;
        let (_, _, first_key, first_leaf) = block_key.value();
        let bytes = block_bytes((log, run, first_key, first_leaf), bytes.value())?;
        let pairs = bytes.len() / PAIR_BYTES;
        let mut position = partition_point(pairs, |position| pair_at(bytes, position).0 < key);
        while position < pairs {
            let (pair_key, leaf) = pair_at(bytes, position);
            if pair_key != key {
                break;
            }
            out.push(leaf);
            position += 1;
        }
        if first_key < key {
            // Every earlier block holds only smaller keys.
            break;
        }
    }
    Ok(())
}

/// The first position in `0..len` for which `below` is false (`below` is true, then false).
fn partition_point(len: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let middle = low + (high - low) / 2;
        if below(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// Leaf indices paired with `key` in run `run`, after `after`, in order, at most `limit`; the
/// second value says whether the run has more.
fn run_lookup<T: ReadableTable<BlockKey, &'static [u8]>>(
    blocks: &T,
    log: &str,
    run: u64,
    key: u64,
    after: Option<u64>,
    limit: usize,
    out: &mut Vec<u64>,
) -> Result<bool, DiskError> {
    let first_leaf = match after {
        None => 0,
        Some(after) => match after.checked_add(1) {
            Some(first) => first,
            None => return Ok(false),
        },
    };
    // The block holding the first pair wanted starts at or before it.
    let (start_key, start_leaf) = match blocks
        .range((log, run, 0, 0)..=(log, run, key, first_leaf))?
        .next_back()
    {
        Some(row) => {
            let (_, _, start_key, start_leaf) = row?.0.value();
            (start_key, start_leaf)
        }
        None => (0, 0),
    };
    let mut found = 0;
    for row in blocks.range((log, run, start_key, start_leaf)..=(log, run, u64::MAX, u64::MAX))? {
        let (block_key, bytes) = row?;
        let (_, _, first_key, first_leaf_of_block) = block_key.value();
        if first_key > key {
            break;
        }
        let bytes = block_bytes((log, run, first_key, first_leaf_of_block), bytes.value())?;
        let pairs = bytes.len() / PAIR_BYTES;
        let mut position = partition_point(pairs, |position| {
            pair_at(bytes, position) < (key, first_leaf)
        });
        while position < pairs {
            let (pair_key, leaf) = pair_at(bytes, position);
            if pair_key > key {
                return Ok(false);
            }
            if found == limit {
                return Ok(true);
            }
            out.push(leaf);
            found += 1;
            position += 1;
        }
    }
    Ok(false)
}

/// Leaf indices in `from..to` whose tail row holds `key`, in order.
pub(crate) fn tail_lookup<T: ReadableTable<TailKey, &'static [u8]>>(
    tail: &T,
    log: &str,
    from: u64,
    to: u64,
    key: u64,
    out: &mut Vec<u64>,
) -> Result<(), DiskError> {
    if from >= to {
        return Ok(());
    }
    for row in tail.range((log, from)..(log, to))? {
        let (row_key, bytes) = row?;
        let index = row_key.value().1;
        if decode_tail_row(log, index, bytes.value())?.contains(&key) {
            out.push(index);
        }
    }
    Ok(())
}

/// Candidate leaf indices for `key` among the leaves below `size` and after `after`, in order
/// and without repeats: those of the runs and `tail_hits` (the caller's hits in the tail, from
/// `meta.flushed` on). Each run contributes at most `limit`; the second value, if some run had
/// more, is the last index up to which the list is complete (a run that stopped early may hold
/// more beyond it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn candidates<B: ReadableTable<BlockKey, &'static [u8]>>(
    meta: &IndexMeta,
    blocks: &B,
    log: &str,
    size: u64,
    key: u64,
    after: Option<u64>,
    limit: usize,
    tail_hits: Vec<u64>,
    may_hold: &dyn Fn(u64) -> Result<bool, DiskError>,
) -> Result<(Vec<u64>, Option<u64>), DiskError> {
    let mut found = tail_hits;
    let mut complete_through: Option<u64> = None;
    for run in runs_to_read(meta, key, may_hold)? {
        if after.is_none() && limit == usize::MAX {
            run_find_all(blocks, log, run, key, &mut found)?;
            continue;
        }
        let start = found.len();
        let more = run_lookup(blocks, log, run, key, after, limit, &mut found)?;
        if more && let Some(&last) = found[start..].last() {
            complete_through = Some(complete_through.map_or(last, |bound| bound.min(last)));
        }
    }
    found.retain(|&index| index < size && after.is_none_or(|after| index > after));
    found.sort_unstable();
    found.dedup();
    Ok((found, complete_through))
}

/// Candidate leaf indices for `key` in the runs only (the caller knows the tail).
pub(crate) fn run_candidates<B: ReadableTable<BlockKey, &'static [u8]>>(
    meta: &IndexMeta,
    blocks: &B,
    log: &str,
    key: u64,
    out: &mut Vec<u64>,
    may_hold: &dyn Fn(u64) -> Result<bool, DiskError>,
) -> Result<(), DiskError> {
    for run in runs_to_read(meta, key, may_hold)? {
        run_find_all(blocks, log, run, key, out)?;
    }
    Ok(())
}

/// Every (index key, leaf index) pair of tail rows `from..` of `log`, for the memory of the
/// tail.
pub(crate) fn tail_pairs<T: ReadableTable<TailKey, &'static [u8]>>(
    tail: &T,
    log: &str,
    from: u64,
) -> Result<Vec<(u64, u64)>, DiskError> {
    let mut pairs = Vec::new();
    for row in tail.range((log, from)..=(log, u64::MAX))? {
        let (row_key, bytes) = row?;
        let index = row_key.value().1;
        for key in decode_tail_row(log, index, bytes.value())? {
            pairs.push((key, index));
        }
    }
    Ok(pairs)
}

/// The index keys of a tail row as written by [`tail_row`].
pub(crate) fn tail_row_keys(row: &[u8]) -> impl Iterator<Item = u64> + '_ {
    row.chunks_exact(8).map(|chunk| {
        let mut key = [0u8; 8];
        key.copy_from_slice(chunk);
        u64::from_be_bytes(key)
    })
}

/// How much index upkeep one call of [`IndexTables::follow_head`] does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Upkeep {
    /// After apply appended `appended` leaves: every flush that is due, and the merge work
    /// those leaves earned.
    Batch {
        /// Leaves the batch appended.
        appended: u64,
    },
    /// Catching the index up in bounded transactions (after a snapshot install, on open): at
    /// most `flushes` tails' worth of flushes and about `pairs` pairs of merge work. A bulk
    /// flush of many tails' worth writes one run of the level merges would have given them.
    Bulk {
        /// Flushes at most.
        flushes: u64,
        /// Merge work at most (pairs).
        pairs: u64,
    },
}

/// The index tables of one write transaction.
pub(crate) struct IndexTables<'txn> {
    pub(crate) tail: Table<'txn, TailKey, &'static [u8]>,
    pub(crate) blocks: Table<'txn, BlockKey, &'static [u8]>,
    pub(crate) meta: Table<'txn, &'static str, &'static [u8]>,
    pub(crate) filters: Table<'txn, FilterKey, &'static [u8]>,
}

impl<'txn> IndexTables<'txn> {
    pub(crate) fn open(txn: &'txn redb::WriteTransaction) -> Result<IndexTables<'txn>, DiskError> {
        Ok(IndexTables {
            tail: txn.open_table(INDEX_TAIL)?,
            blocks: txn.open_table(INDEX_BLOCKS)?,
            meta: txn.open_table(INDEX_META)?,
            filters: txn.open_table(INDEX_FILTERS)?,
        })
    }

    /// Writes (or replaces) the tail row of leaf `index`.
    pub(crate) fn put_tail(&mut self, log: &str, index: u64, row: &[u8]) -> Result<(), DiskError> {
        self.tail.insert((log, index), row)?;
        Ok(())
    }

    /// Removes the tail rows of leaves `from..` (leaves an abandoned install left beyond the
    /// head). Leaves below the head are never removed, and runs hold only such leaves.
    pub(crate) fn truncate(&mut self, log: &LogName, from: u64) -> Result<(), DiskError> {
        let meta = read_meta(&self.meta, log)?;
        assert!(
            meta.flushed <= from,
            "{log}: truncating at {from}, below the flushed index {}",
            meta.flushed
        );
        let name = log.0.as_str();
        self.tail
            .retain_in((name, from)..=(name, u64::MAX), |_, _| false)?;
        Ok(())
    }

    /// Brings the index of `log` towards the head `head`: flushes the tail rows that are due
    /// into runs and merges runs, as much as `upkeep` allows. Returns the bookkeeping as it is
    /// now (see [`IndexMeta::has_work`]).
    pub(crate) fn follow_head(
        &mut self,
        log: &LogName,
        head: u64,
        upkeep: Upkeep,
        shape: &IndexShape,
    ) -> Result<IndexMeta, DiskError> {
        let name = log.0.as_str();
        let mut meta = read_meta(&self.meta, log)?;
        let before = meta.clone();
        let tail_leaves = shape.tail_leaves.max(1);
        let (flushes_max, mut budget) = match upkeep {
            Upkeep::Batch { appended } => {
                meta.credit = meta
                    .credit
                    .saturating_add(appended.saturating_mul(shape.work_per_leaf));
                (u64::MAX, None)
            }
            Upkeep::Bulk { flushes, pairs } => (flushes, Some(pairs)),
        };
        let mut flushes = 0;
        while head.saturating_sub(meta.flushed) >= tail_leaves && flushes < flushes_max {
            // In bulk, as many leaves as a merge of level `level` would hold go straight into
            // one run of that level: each pair is written once instead of once per level.
            let level = match upkeep {
                Upkeep::Batch { .. } => 0,
                Upkeep::Bulk { .. } => bulk_level(head - meta.flushed, shape),
            };
            let leaves = leaves_at_level(level, shape).unwrap_or(tail_leaves);
            self.flush(name, &mut meta, leaves, level, shape.block_entries)?;
            // Counted in tails' worth, so a bulk transaction writes one big run at most.
            flushes += leaves / tail_leaves;
        }
        start_merges(&mut meta, shape);
        // The lowest levels first: they are small, and their runs are what lookups read most.
        while let Some(position) = (0..meta.merges.len())
            .min_by_key(|&position| (meta.merges[position].level, meta.merges[position].output))
        {
            let estimate = meta.merges[position].slice_estimate();
            match budget {
                Some(0) => break,
                None if meta.credit < estimate => break,
                _ => {}
            }
            let mut merge = meta.merges[position].clone();
            let spent = self.merge_slice(name, &mut merge, shape.block_entries)?;
            match budget.as_mut() {
                Some(left) => *left = left.saturating_sub(spent),
                None => meta.credit = meta.credit.saturating_sub(spent),
            }
            if merge.done == merge.slices {
                for &input in &merge.inputs {
                    self.filters
                        .retain_in((name, input, 0)..=(name, input, u64::MAX), |_, _| false)?;
                }
                meta.merges.remove(position);
                meta.runs.retain(|run| !merge.inputs.contains(&run.id));
                meta.runs.push(Run {
                    id: merge.output,
                    level: merge.level,
                    entries: merge.written,
                });
                meta.runs.sort_by_key(|run| run.id);
                start_merges(&mut meta, shape);
            } else {
                meta.merges[position] = merge;
            }
        }
        if meta.merges.is_empty() {
            // Credit is for merges that are due; an idle index does not bank it for a burst.
            meta.credit = meta.credit.min(shape.slice_entries.saturating_mul(4));
        }
        if meta != before {
            let bytes = encode("index meta", &meta)?;
            self.meta.insert(name, bytes.as_slice())?;
        }
        Ok(meta)
    }

    /// Sorts the tail rows of the next `leaves` leaves into a new run of level `level` and
    /// deletes them.
    fn flush(
        &mut self,
        log: &str,
        meta: &mut IndexMeta,
        leaves: u64,
        level: u8,
        block_entries: usize,
    ) -> Result<(), DiskError> {
        let from = meta.flushed;
        let to = from.saturating_add(leaves);
        let mut pairs = Vec::new();
        let mut expected = from;
        for row in self.tail.range((log, from)..(log, to))? {
            let (row_key, bytes) = row?;
            let index = row_key.value().1;
            if index != expected {
                break;
            }
            for key in decode_tail_row(log, index, bytes.value())? {
                pairs.push((key, index));
            }
            expected += 1;
        }
        if expected != to {
            return Err(DiskError::Missing(format!(
                "index tail row {expected} of log {log}"
            )));
        }
        self.tail.retain_in((log, from)..(log, to), |_, _| false)?;
        #[cfg(feature = "canaries")] // The planted bug: the flush's last leaf is left out.
        if crate::canary::is(crate::canary::Canary::IndexFlushDropsALeaf) {
            pairs.retain(|&(_, index)| index + 1 != to);
        }
        pairs.sort_unstable();
        let id = meta.next_run;
        meta.next_run += 1;
        self.write_blocks(log, id, &pairs, block_entries)?;
        self.write_filter(log, id, 0, &pairs)?;
        meta.runs.push(Run {
            id,
            level,
            entries: pairs.len() as u64,
        });
        meta.flushed = to;
        Ok(())
    }

    /// Writes the filter segment of run `run` from key `first_key` on, over `pairs` (every
    /// pair of the run in that key range).
    fn write_filter(
        &mut self,
        log: &str,
        run: u64,
        first_key: u64,
        pairs: &[(u64, u64)],
    ) -> Result<(), DiskError> {
        #[cfg(feature = "canaries")] // The planted bug: the run's last pair is left out.
        let pairs = match pairs.split_last() {
            Some((_, rest)) if crate::canary::is(crate::canary::Canary::FilterMissesAKey) => rest,
            _ => pairs,
        };
        let filter = run_filter::build(pairs.iter().map(|&(key, _)| key));
        self.filters
            .insert((log, run, first_key), filter.as_slice())?;
        Ok(())
    }

    fn write_blocks(
        &mut self,
        log: &str,
        run: u64,
        pairs: &[(u64, u64)],
        block_entries: usize,
    ) -> Result<(), DiskError> {
        let mut bytes = Vec::with_capacity(block_entries.max(1) * PAIR_BYTES);
        for block in pairs.chunks(block_entries.max(1)) {
            bytes.clear();
            for (key, leaf) in block {
                bytes.extend_from_slice(&key.to_be_bytes());
                bytes.extend_from_slice(&leaf.to_be_bytes());
            }
            let (first_key, first_leaf) = block[0];
            self.blocks
                .insert((log, run, first_key, first_leaf), bytes.as_slice())?;
        }
        Ok(())
    }

    /// Merges the next key-range slice of `merge`'s inputs into its output, and deletes every
    /// input block all of whose pairs are now merged. Returns the pairs merged (at least 1).
    fn merge_slice(
        &mut self,
        log: &str,
        merge: &mut Merge,
        block_entries: usize,
    ) -> Result<u64, DiskError> {
        let low = slice_start(merge.done, merge.slices);
        let high = slice_start(merge.done + 1, merge.slices);
        // `low` is below 2^64 because `done < slices`.
        let low_key = u64::try_from(low).unwrap_or(u64::MAX);
        let mut pairs = Vec::new();
        let mut consumed = Vec::new();
        for &input in &merge.inputs {
            let (start_key, start_leaf) = match self
                .blocks
                .range((log, input, 0, 0)..=(log, input, low_key, 0))?
                .next_back()
            {
                Some(row) => {
                    let (_, _, key, leaf) = row?.0.value();
                    (key, leaf)
                }
                None => (0, 0),
            };
            for row in self
                .blocks
                .range((log, input, start_key, start_leaf)..=(log, input, u64::MAX, u64::MAX))?
            {
                let (block_key, bytes) = row?;
                let (_, _, first_key, first_leaf) = block_key.value();
                if u128::from(first_key) >= high {
                    break;
                }
                let block = decode_block((log, input, first_key, first_leaf), bytes.value())?;
                pairs.extend(block.iter().copied().filter(|&(key, _)| {
                    let key = u128::from(key);
                    low <= key && key < high
                }));
                let last = block.last().map_or(0, |&(key, _)| key);
                if u128::from(last) < high {
                    consumed.push((input, first_key, first_leaf));
                }
            }
        }
        for (run, key, leaf) in consumed {
            self.blocks.remove((log, run, key, leaf))?;
        }
        pairs.sort_unstable();
        self.write_blocks(log, merge.output, &pairs, block_entries)?;
        // Empty slices get a segment too: a key's segment is the last one at or below it.
        self.write_filter(log, merge.output, low_key, &pairs)?;
        merge.written += pairs.len() as u64;
        merge.done += 1;
        Ok((pairs.len() as u64).max(1))
    }
}

/// The highest level a bulk flush writes: a run of it holds `tail_leaves * fanout^4` leaves'
/// pairs (about a million leaves and 50 MB of pairs to sort in memory with the default shape).
const BULK_LEVEL_MAX: u8 = 4;

/// How many leaves a run of `level` holds, as merges build it: `tail_leaves * fanout^level`.
fn leaves_at_level(level: u8, shape: &IndexShape) -> Option<u64> {
    let fanout = u64::try_from(shape.fanout.max(2)).ok()?;
    fanout
        .checked_pow(u32::from(level))?
        .checked_mul(shape.tail_leaves.max(1))
}

/// The level of the run a bulk flush of the next of `pending` unflushed leaves writes: the
/// highest (up to [`BULK_LEVEL_MAX`]) whose run they fill.
fn bulk_level(pending: u64, shape: &IndexShape) -> u8 {
    (0..=BULK_LEVEL_MAX)
        .rev()
        .find(|&level| leaves_at_level(level, shape).is_some_and(|leaves| leaves <= pending))
        .unwrap_or(0)
}

/// Starts a merge for every `fanout` runs of one level that no merge is reading.
fn start_merges(meta: &mut IndexMeta, shape: &IndexShape) {
    let fanout = shape.fanout.max(2);
    loop {
        let (level, inputs, entries_in) = {
            let mut idle: BTreeMap<u8, Vec<&Run>> = BTreeMap::new();
            for run in &meta.runs {
                let busy = meta
                    .merges
                    .iter()
                    .any(|merge| merge.inputs.contains(&run.id));
                if !busy {
                    idle.entry(run.level).or_default().push(run);
                }
            }
            // The lowest level first; within it the oldest runs (`runs` is in id order).
            let Some((&level, runs)) = idle.iter().find(|(_, runs)| runs.len() >= fanout) else {
                return;
            };
            let chosen = &runs[..fanout];
            (
                level,
                chosen.iter().map(|run| run.id).collect::<Vec<u64>>(),
                chosen.iter().map(|run| run.entries).sum::<u64>(),
            )
        };
        let slices = entries_in.div_ceil(shape.slice_entries.max(1)).max(1);
        let output = meta.next_run;
        meta.next_run += 1;
        meta.merges.push(Merge {
            level: level.saturating_add(1),
            inputs,
            entries_in,
            output,
            slices,
            done: 0,
            written: 0,
        });
    }
}

impl IndexMeta {
    /// Whether flushes or merges remain for a log whose head is `head`.
    pub(crate) fn has_work(&self, head: u64, shape: &IndexShape) -> bool {
        !self.merges.is_empty() || head.saturating_sub(self.flushed) >= shape.tail_leaves.max(1)
    }

    /// Whether `run` is a complete run (not the output of a merge in progress).
    fn is_complete(&self, run: u64) -> bool {
        self.runs.iter().any(|complete| complete.id == run)
    }

    /// Whether a merge is in progress.
    #[cfg(test)]
    pub(crate) fn merging(&self) -> bool {
        !self.merges.is_empty()
    }

    /// Each complete run's id and level.
    #[cfg(test)]
    pub(crate) fn run_levels(&self) -> Vec<(u64, u8)> {
        self.runs.iter().map(|run| (run.id, run.level)).collect()
    }

    /// The runs a lookup reads, for tests and metrics.
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len() + self.merges.len()
    }
}
