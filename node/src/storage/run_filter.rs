//! Bloom filters over the leaf index's runs, so that a lookup skips the runs that cannot hold
//! its key.
//!
//! Why: a lookup reads every run (a B-tree descent and a block each), and the number of runs
//! grows with the logarithm of the log. Nearly every dedup lookup is for a leaf the log does
//! not have, which every run has to be asked about; with a filter per run that costs a few
//! bit tests in memory per run instead of a read.
//!
//! A filter is written in the same transaction as the pairs it covers, as one or more
//! *segments*: (log name, run id, first index key of the segment) → filter bytes. A flush's run
//! has one segment starting at key 0; a merge's output one per key-range slice, each starting
//! at its slice's first key, empty slices included. So for any key, the segment with the
//! greatest start at or below it covers every pair of the run with that key, and a run with no
//! such segment (written before filters existed) is read as before. Segments of a merge's
//! inputs are deleted when the merge completes.
//!
//! A filter only answers "maybe" or "no": a "maybe" still reads the run, and a false "maybe"
//! (about 1% of keys) costs one read. Only complete runs are filtered: a merge output still
//! being written is read directly, so a cached filter never misses a later slice.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};

use super::DiskError;

/// Filter segments: (log name, run id, first index key of the segment) → filter bytes, in the
/// blocked layout below. (The table of the earlier layout, [`OLD_INDEX_FILTERS`], is replaced
/// on open by [`super::reindex::rebuild_run_filters`].)
pub(crate) const INDEX_FILTERS: TableDefinition<FilterKey, &[u8]> =
    TableDefinition::new("run_filters");

/// Filter segments of a layout that tested 7 bits anywhere in the filter: 7 cache misses per
/// run and lookup once the filters outgrew the CPU caches (a tenth of a 10^7-entry fill's CPU).
pub(crate) const OLD_INDEX_FILTERS: TableDefinition<FilterKey, &[u8]> =
    TableDefinition::new("index_filters");

/// Key of [`INDEX_FILTERS`].
pub(crate) type FilterKey = (&'static str, u64, u64);

/// Filter bits per pair: about 1% false "maybe" with [`BLOCK_WORDS`] bits per key.
const BITS_PER_PAIR: usize = 10;
/// A filter is an array of blocks of this many 64-bit words (64 bytes, one cache line). A key
/// sets one bit in each word of one block, so a test reads one cache line.
const BLOCK_WORDS: usize = 8;
const BLOCK_BYTES: usize = BLOCK_WORDS * 8;
/// Odd multipliers choosing the bit a key sets in each word of its block.
const SALTS: [u64; BLOCK_WORDS] = [
    0x47b6_137b_4497_4d91,
    0x8824_ad5b_a2b7_289d,
    0x7054_95c7_2df1_424b,
    0x9efc_4947_5c6b_fb31,
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0xd6e8_feb8_6659_fd93,
];

/// A 64-bit mixer (the finalizer of MurmurHash3). Index keys are hash prefixes, but the keys of
/// one merge slice share their high bits, so they are mixed before choosing a block.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The block a key's bits are in (of `blocks`), and its bit in each word of that block.
fn probes(key: u64, blocks: usize) -> (usize, [u64; BLOCK_WORDS]) {
    let h = mix(key);
    // Multiply-shift maps the hash onto 0..blocks without a division; the result is below
    // `blocks`, so it fits.
    #[allow(clippy::cast_possible_truncation)]
    let block = ((u128::from(h) * blocks as u128) >> 64) as usize;
    let g = mix(h ^ SALTS[0]);
    (
        block,
        SALTS.map(|salt| 1u64 << (g.wrapping_mul(salt) >> 58)),
    )
}

/// The filter bytes of a segment holding `keys` (index keys).
pub(crate) fn build(keys: impl ExactSizeIterator<Item = u64>) -> Vec<u8> {
    let mut filter = FilterBuilder::new(keys.len());
    keys.for_each(|key| filter.insert(key));
    filter.finish()
}

/// A filter built key by key, sized up front for the number of keys it will hold (a count off
/// by some only changes the false "maybe" rate).
pub(crate) struct FilterBuilder {
    words: Vec<u64>,
    blocks: usize,
}

impl FilterBuilder {
    pub(crate) fn new(keys: usize) -> FilterBuilder {
        let blocks = (keys.saturating_mul(BITS_PER_PAIR))
            .div_ceil(BLOCK_BYTES * 8)
            .max(1);
        FilterBuilder {
            words: vec![0; blocks * BLOCK_WORDS],
            blocks,
        }
    }

    pub(crate) fn insert(&mut self, key: u64) {
        let (block, bits) = probes(key, self.blocks);
        let words = &mut self.words[block * BLOCK_WORDS..][..BLOCK_WORDS];
        for (word, bit) in words.iter_mut().zip(bits) {
            *word |= bit;
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.words
            .iter()
            .flat_map(|word| word.to_le_bytes())
            .collect()
    }
}

/// Whether a segment's `filter` may hold `key`. A filter whose length is not a whole number of
/// blocks is not one this code wrote, and answers "maybe" (the run is read).
fn may_hold(filter: &[u8], key: u64) -> bool {
    let blocks = filter.len() / BLOCK_BYTES;
    if blocks == 0 || !filter.len().is_multiple_of(BLOCK_BYTES) {
        return true;
    }
    let (block, bits) = probes(key, blocks);
    filter[block * BLOCK_BYTES..][..BLOCK_BYTES]
        .chunks_exact(8)
        .zip(bits)
        .all(|(word, bit)| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            u64::from_le_bytes(bytes) & bit != 0
        })
}

/// The filter segments of one complete run, read once.
#[derive(Debug, Default)]
pub(crate) struct RunFilter {
    /// (first key, filter bytes), by first key.
    segments: Vec<(u64, Vec<u8>)>,
}

impl RunFilter {
    /// Reads every segment of run `run` of `log`.
    pub(crate) fn read<F: ReadableTable<FilterKey, &'static [u8]>>(
        filters: &F,
        log: &str,
        run: u64,
    ) -> Result<RunFilter, DiskError> {
        let mut segments = Vec::new();
        for row in filters.range((log, run, 0)..=(log, run, u64::MAX))? {
            let (key, bytes) = row?;
            segments.push((key.value().2, bytes.value().to_vec()));
        }
        Ok(RunFilter { segments })
    }

    /// Whether the run may hold `key`: false only if its filter says it does not.
    pub(crate) fn may_hold(&self, key: u64) -> bool {
        let after = self.segments.partition_point(|(first, _)| *first <= key);
        match after.checked_sub(1) {
            Some(segment) => may_hold(&self.segments[segment].1, key),
            None => true,
        }
    }

    /// The bytes this filter occupies in memory.
    fn bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|(_, filter)| filter.len() + 8)
            .sum()
    }
}

/// Filters of complete runs, read once and kept: runs never change once complete, and run ids
/// are not reused while a store is open. Cleared with apply's memory of the index (after a
/// failed apply or an install), since a transaction that did not commit may have shown a run
/// that the committed state builds differently. Bounded: past [`FilterCache::MAX_BYTES`] it
/// starts over (the filters are reread as lookups need them).
#[derive(Debug, Default)]
pub(crate) struct FilterCache {
    /// Log name → run id → filter (looked up by `&str`, without building a key per lookup).
    runs: HashMap<String, HashMap<u64, Arc<RunFilter>>>,
    bytes: usize,
}

impl FilterCache {
    /// Filters kept at most (about 1.25 bytes per index pair: 10^8 leaves' worth).
    const MAX_BYTES: usize = 512 << 20;

    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.bytes = 0;
    }

    pub(crate) fn get(&self, log: &str, run: u64) -> Option<Arc<RunFilter>> {
        self.runs.get(log)?.get(&run).cloned()
    }

    pub(crate) fn insert(&mut self, log: &str, run: u64, filter: Arc<RunFilter>) {
        let bytes = filter.bytes();
        if self.bytes + bytes > Self::MAX_BYTES {
            self.clear();
        }
        self.bytes += bytes;
        self.runs
            .entry(log.to_owned())
            .or_default()
            .insert(run, filter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-mixed test keys (index keys are hash prefixes).
    fn key(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xA5A5_5A5A_1234_5678
    }

    #[test]
    fn a_filter_holds_every_key_it_was_built_from_and_few_others() {
        let keys: Vec<u64> = (0..10_000).map(key).collect();
        let filter = build(keys.iter().copied());
        assert!(keys.iter().all(|&k| may_hold(&filter, k)));
        let false_maybes = (10_000..110_000)
            .filter(|&i| may_hold(&filter, key(i)))
            .count();
        assert!(false_maybes < 1_500, "{false_maybes} of 100,000");
        // Keys of one merge slice share their high bits; they still spread over the blocks.
        let slice: Vec<u64> = (0..10_000).map(|i| 7 << 48 | key(i) >> 16).collect();
        let filter = build(slice.iter().copied());
        assert!(slice.iter().all(|&k| may_hold(&filter, k)));
        let false_maybes = (10_000..110_000)
            .filter(|&i| may_hold(&filter, 7 << 48 | key(i) >> 16))
            .count();
        assert!(false_maybes < 1_500, "{false_maybes} of 100,000");
        // An empty segment holds nothing.
        let empty = build(std::iter::empty());
        assert!((0..1000).all(|i| !may_hold(&empty, key(i))));
        // Bytes that are not whole blocks were not written by `build`: read the run.
        assert!(may_hold(&[0u8; 8], key(1)));
        assert!(may_hold(&[], key(1)));
    }

    #[test]
    fn the_segment_at_or_below_a_key_answers_for_it() {
        let low: Vec<u64> = (0..100).map(|i| i * 10).collect();
        let high: Vec<u64> = (0..100).map(|i| 1 << 40 | i).collect();
        let run = RunFilter {
            segments: vec![
                (0, build(low.iter().copied())),
                (1 << 40, build(high.iter().copied())),
            ],
        };
        assert!(low.iter().chain(&high).all(|&k| run.may_hold(k)));
        // A run whose first segment starts above a key (slices merged before filters existed)
        // may hold it.
        let late = RunFilter {
            segments: vec![(1 << 40, build(high.iter().copied()))],
        };
        assert!(late.may_hold(5));
        assert!(RunFilter::default().may_hold(5));
    }
}
