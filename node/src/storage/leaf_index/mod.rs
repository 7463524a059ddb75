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

use super::run_filter::{self, FilterKey, INDEX_FILTERS, slice_start};
use super::tables::{INDEX_BLOCKS, INDEX_META, INDEX_TAIL, decode, encode};
use super::{DiskError, usize_from};
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
    /// Pairs a merge slice aims at (at most). 12,800: a slice's filter segment, at 10 bits per
    /// pair rounded up to a power of two (`run_filter::build`), is then 2^17 bits with a
    /// little to spare, not 2^18.
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
            slice_entries: 12_800,
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

/// A pair as the writer handles it: the index key in the high half, the leaf index in the low
/// one, so that pairs order as (key, leaf index) and write as 16 big-endian bytes.
fn pair(key: u64, leaf: u64) -> u128 {
    (u128::from(key) << 64) | u128::from(leaf)
}

/// The index key of a [`pair`].
fn pair_key(pair: u128) -> u64 {
    (pair >> 64) as u64
}

/// The leaf index of a [`pair`].
#[allow(clippy::cast_possible_truncation)] // The low half, on purpose.
fn pair_leaf(pair: u128) -> u64 {
    pair as u64
}

/// Appends to `out` the pairs ([`pair`]) of a stored block whose keys are in `keys`, and
/// returns the block's last key. Checks the block's shape ([`block_bytes`]) and that each pair
/// is at or above the one before, the block's included (so pairs appended block after block
/// stay in order: a merge relies on it).
fn decode_block_into(
    key: (&str, u64, u64, u64),
    bytes: &[u8],
    keys: std::ops::Range<u128>,
    out: &mut Vec<u128>,
) -> Result<u64, DiskError> {
    let bytes = block_bytes(key, bytes)?;
    let mut previous = out.last().copied().unwrap_or(0);
    for position in 0..bytes.len() / PAIR_BYTES {
        let (index_key, leaf) = pair_at(bytes, position);
        let current = pair(index_key, leaf);
        if current < previous {
            return Err(DiskError::corrupt(
                "index_blocks",
                &format_args!("{key:?}"),
                "pairs out of order",
            ));
        }
        previous = current;
        if keys.contains(&u128::from(index_key)) {
            out.push(current);
        }
    }
    Ok(pair_key(previous))
}

/// Merges sequences sorted in ascending order into one, two at a time. A merge's inputs are
/// few (the fanout), so this is linear work per level of the tree of two-way merges, where
/// sorting their concatenation cost a comparison sort on every pair at every level. Pairs are
/// compared as one `u128` (key, then leaf index), so that picking the smaller needs no branch
/// the processor could mispredict.
fn merge_sorted(mut inputs: Vec<Vec<u128>>) -> Vec<u128> {
    while inputs.len() > 1 {
        let mut merged = Vec::with_capacity(inputs.len().div_ceil(2));
        let mut pairs = inputs.into_iter();
        while let Some(first) = pairs.next() {
            merged.push(match pairs.next() {
                Some(second) => merge_two(&first, &second),
                None => first,
            });
        }
        inputs = merged;
    }
    inputs.pop().unwrap_or_default()
}

fn merge_two(first: &[u128], second: &[u128]) -> Vec<u128> {
    let mut merged = Vec::with_capacity(first.len() + second.len());
    let (mut i, mut j) = (0, 0);
    while i < first.len() && j < second.len() {
        let (a, b) = (first[i], second[j]);
        let take_first = a <= b;
        merged.push(if take_first { a } else { b });
        i += usize::from(take_first);
        j += usize::from(!take_first);
    }
    merged.extend_from_slice(&first[i..]);
    merged.extend_from_slice(&second[j..]);
    merged
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A merge gives what sorting the inputs' concatenation gives, for any number of inputs,
    /// empty ones and repeated pairs included.
    #[test]
    fn merging_sorted_inputs_equals_sorting_them() {
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for round in 0..200 {
            let inputs: Vec<Vec<u128>> = (0..round % 6)
                .map(|_| {
                    let len = next(50);
                    // Small keys so that inputs share keys and repeat pairs.
                    let mut pairs: Vec<u128> = (0..len)
                        .map(|_| u128::from(next(20)) << 64 | u128::from(next(5)))
                        .collect();
                    pairs.sort_unstable();
                    pairs
                })
                .collect();
            let mut sorted: Vec<u128> = inputs.concat();
            sorted.sort_unstable();
            assert_eq!(merge_sorted(inputs), sorted, "round {round}");
        }
    }

    /// A block whose pairs go down, or whose first pair is not its key, is refused; pairs
    /// outside the key range are left out.
    #[test]
    fn a_block_is_decoded_in_order_or_refused() {
        let bytes = |pairs: &[(u64, u64)]| -> Vec<u8> {
            pairs
                .iter()
                .flat_map(|(key, leaf)| [key.to_be_bytes(), leaf.to_be_bytes()].concat())
                .collect()
        };
        let block = bytes(&[(1, 9), (5, 2), (5, 3), (9, 1)]);
        let mut out = Vec::new();
        let last = decode_block_into(("log", 0, 1, 9), &block, 2..9, &mut out).unwrap();
        assert_eq!((last, out.as_slice()), (9, &[5 << 64 | 2, 5 << 64 | 3][..]));
        let down = bytes(&[(1, 9), (5, 3), (5, 2)]);
        assert!(decode_block_into(("log", 0, 1, 9), &down, 0..10, &mut Vec::new()).is_err());
        assert!(decode_block_into(("log", 0, 2, 9), &block, 0..10, &mut Vec::new()).is_err());
        // Below what an earlier block gave.
        let mut after = vec![7 << 64];
        assert!(decode_block_into(("log", 0, 1, 9), &block, 0..10, &mut after).is_err());
        assert!(decode_block_into(("log", 0, 1, 9), &block[..20], 0..10, &mut out).is_err());
    }
}
