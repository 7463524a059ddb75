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

use super::{DiskError, usize_from};

/// Filter segments: (log name, run id, first index key of the segment) → filter bytes.
pub(crate) const INDEX_FILTERS: TableDefinition<FilterKey, &[u8]> =
    TableDefinition::new("index_filters");

/// Key of [`INDEX_FILTERS`].
pub(crate) type FilterKey = (&'static str, u64, u64);

/// Filter bits per pair: with [`PROBES`] probes, about 1% false "maybe".
const BITS_PER_PAIR: usize = 10;
/// Bits tested per key.
const PROBES: u64 = 7;

/// The filter bytes of a segment holding `keys` (index keys, uniformly distributed: they are
/// hash prefixes, so they are used as the hash).
pub(crate) fn build(keys: impl ExactSizeIterator<Item = u64>) -> Vec<u8> {
    let bits = (keys.len() * BITS_PER_PAIR).div_ceil(64).max(1) * 64;
    let mut filter = vec![0u8; bits / 8];
    for key in keys {
        for bit in probes(key, bits as u64) {
            filter[usize_from(bit / 8)] |= 1 << (bit % 8);
        }
    }
    filter
}

/// Whether a segment's `filter` may hold `key`.
fn may_hold(filter: &[u8], key: u64) -> bool {
    let bits = filter.len() as u64 * 8;
    if bits == 0 {
        return true;
    }
    probes(key, bits).all(|bit| filter[usize_from(bit / 8)] & (1 << (bit % 8)) != 0)
}

/// The bits a key sets: double hashing on the key's two halves.
fn probes(key: u64, bits: u64) -> impl Iterator<Item = u64> {
    let first = key;
    let step = key.rotate_left(32) | 1;
    (0..PROBES).map(move |probe| first.wrapping_add(probe.wrapping_mul(step)) % bits)
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
    /// Log name → run id → filter: keyed in two steps so that a lookup, which asks about every
    /// run of its log, allocates nothing.
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

    /// Whether run `run` of `log` may hold `key`, if its filter is kept.
    pub(crate) fn may_hold(&self, log: &str, run: u64, key: u64) -> Option<bool> {
        Some(self.runs.get(log)?.get(&run)?.may_hold(key))
    }

    pub(crate) fn insert(&mut self, log: &str, run: u64, filter: Arc<RunFilter>) {
        let bytes = filter.bytes();
        if self.bytes + bytes > Self::MAX_BYTES {
            self.clear();
        }
        self.bytes += bytes;
        match self.runs.get_mut(log) {
            Some(runs) => {
                runs.insert(run, filter);
            }
            None => {
                self.runs
                    .insert(log.to_owned(), HashMap::from([(run, filter)]));
            }
        }
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
        assert!(false_maybes < 2_000, "{false_maybes} of 100,000");
        // An empty segment holds nothing.
        let empty = build(std::iter::empty());
        assert!((0..1000).all(|i| !may_hold(&empty, key(i))));
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
