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

mod lookup;
mod writer;

pub(crate) use lookup::{candidates, run_candidates, tail_lookup, tail_pairs, tail_row_keys};
pub(crate) use writer::{IndexTables, Upkeep};

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
