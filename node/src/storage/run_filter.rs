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
//! (at most about 1% of keys) costs one read. Only complete runs are filtered: a merge output still
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

/// Filter bits per pair at least: with [`PROBES`] probes, at most about 1% false "maybe".
const BITS_PER_PAIR: usize = 10;
/// Bits tested per key.
const PROBES: u64 = 7;

/// The filter bytes of a segment holding `keys` (index keys, uniformly distributed: they are
/// hash prefixes, so they are used as the hash).
///
/// Its size in bits is 10 per pair rounded up to a power of two (merge slices are sized so
/// that theirs gets 10 to 11 bits per pair, see `IndexShape::slice_entries`), so that a
/// probe's bit is its hash masked rather than divided: a 64-bit division per probe was most of
/// the cost of building and probing filters, which grows with the number of levels. Filters
/// written before were any multiple of 64 bits, and [`bit_position`] takes their remainder as
/// before; a node of that version takes the remainder of a power-of-two size, which is the
/// same bit, so the format is unchanged.
pub(crate) fn build(keys: impl ExactSizeIterator<Item = u64>) -> Vec<u8> {
    let bits = (keys.len() * BITS_PER_PAIR).max(64).next_power_of_two();
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

/// The bit a probe's `hash` tests in a filter of `bits` bits: the remainder, taken with a mask
/// when `bits` is a power of two (every filter built since sizes were), which is the same bit.
#[inline]
fn bit_position(hash: u64, bits: u64) -> u64 {
    if bits.is_power_of_two() {
        hash & (bits - 1)
    } else {
        hash % bits
    }
}

/// A filter of a power-of-two size laid out at another power-of-two `size`, answering for
/// every key as it did or (when folded smaller) "maybe" more often: a probe's bit is its hash
/// masked to the size, so a filter repeated to twice its size has every bit where it was, and
/// one folded to half its size (the halves or-ed) has every bit that either half had. A segment
/// of another size than the run's others (a slice with a few more pairs, or none) is rare, so
/// the false "maybe"s folding adds are rare too.
fn resize(filter: &[u8], size: usize) -> impl Iterator<Item = u8> + '_ {
    (0..size).map(move |byte| {
        if filter.len() <= size {
            filter[byte % filter.len()]
        } else {
            filter
                .iter()
                .skip(byte)
                .step_by(size)
                .fold(0, |all, bits| all | bits)
        }
    })
}

/// The first key of slice `slice` of `slices` (2^64 for `slice == slices`): the split of the
/// keys a merge writes its output by, a segment per slice, which [`RunFilter`] recognises so as
/// to compute a key's segment rather than search for it.
pub(crate) fn slice_start(slice: u64, slices: u64) -> u128 {
    (u128::from(slice) << 64) / u128::from(slices.max(1))
}

/// The bits a key sets: double hashing on the key's two halves.
fn probes(key: u64, bits: u64) -> impl Iterator<Item = u64> {
    let first = key;
    let step = key.rotate_left(32) | 1;
    (0..PROBES).map(move |probe| bit_position(first.wrapping_add(probe.wrapping_mul(step)), bits))
}

/// The filter segments of one complete run, read once.
#[derive(Debug, Default)]
pub(crate) struct RunFilter {
    /// The first index key of each segment, ascending.
    starts: Vec<u64>,
    /// Where each segment's bytes begin in `bits`, and where the last one ends.
    offsets: Vec<usize>,
    /// Every segment's filter bytes, back to back: one allocation per run.
    bits: Vec<u8>,
    /// The size of every segment, when they start at the slice starts of an even split of the
    /// keys at power-of-two sizes (every flush and merge output since sizes were), laid out at
    /// one size by `finish`: a key's segment is then computed from the key alone, so a probe
    /// waits for one cache miss (the filter's byte) rather than two (the segment's entry, then
    /// its byte).
    even: Option<usize>,
}

impl RunFilter {
    /// Reads every segment of run `run` of `log`.
    pub(crate) fn read<F: ReadableTable<FilterKey, &'static [u8]>>(
        filters: &F,
        log: &str,
        run: u64,
    ) -> Result<RunFilter, DiskError> {
        let mut filter = RunFilter::default();
        for row in filters.range((log, run, 0)..=(log, run, u64::MAX))? {
            let (key, bytes) = row?;
            filter.push(key.value().2, bytes.value());
        }
        Ok(filter.finish())
    }

    /// The filter of `segments` (first key, filter bytes), in key order.
    #[cfg(test)]
    fn from_segments(segments: Vec<(u64, Vec<u8>)>) -> RunFilter {
        let mut filter = RunFilter::default();
        for (start, bytes) in segments {
            filter.push(start, &bytes);
        }
        filter.finish()
    }

    /// Adds the segment starting at `start` (above those before it) with filter `bytes`.
    fn push(&mut self, start: u64, bytes: &[u8]) {
        self.starts.push(start);
        self.offsets.push(self.bits.len());
        self.bits.extend_from_slice(bytes);
    }

    /// Ends the segments. Where they are an even split of the keys and their sizes powers of
    /// two (every flush and merge output since filter sizes were), lays them out at one size,
    /// so that a key's segment is found by arithmetic (`position`).
    fn finish(mut self) -> RunFilter {
        self.offsets.push(self.bits.len());
        let count = self.starts.len();
        let sizes: Vec<usize> = self
            .offsets
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .collect();
        let even_split = count > 0
            && self
                .starts
                .iter()
                .zip(0u64..)
                .all(|(&start, slice)| u128::from(start) == slice_start(slice, count as u64));
        if !even_split || !sizes.iter().all(|size| size.is_power_of_two()) {
            return self;
        }
        let mut sorted = sizes.clone();
        sorted.sort_unstable();
        let size = sorted[count / 2];
        if sizes.iter().any(|&other| other != size) {
            let mut bits = Vec::with_capacity(count * size);
            for position in 0..count {
                let segment = &self.bits[self.offsets[position]..self.offsets[position + 1]];
                bits.extend(resize(segment, size));
            }
            self.bits = bits;
            self.offsets = (0..=count).map(|position| position * size).collect();
        }
        self.even = Some(size);
        self
    }

    /// Whether the run may hold `key`: false only if its filter says it does not.
    pub(crate) fn may_hold(&self, key: u64) -> bool {
        match self.segment(key) {
            Some(filter) => may_hold(filter, key),
            None => true,
        }
    }

    /// Whether the first of `key`'s probes is set: false means the run does not hold `key`.
    fn first_probe(&self, key: u64) -> bool {
        match self.segment(key) {
            Some(filter) if !filter.is_empty() => {
                let bit = bit_position(key, filter.len() as u64 * 8);
                filter[usize_from(bit / 8)] & (1 << (bit % 8)) != 0
            }
            _ => true,
        }
    }

    /// The filter of the segment that covers `key`.
    fn segment(&self, key: u64) -> Option<&[u8]> {
        let position = self.position(key)?;
        let (begin, end) = match self.even {
            Some(size) => (position * size, (position + 1) * size),
            None => (self.offsets[position], self.offsets[position + 1]),
        };
        self.bits.get(begin..end)
    }

    /// The segment that covers `key`: the one with the greatest start at or below it.
    fn position(&self, key: u64) -> Option<usize> {
        if self.even.is_none() {
            return self
                .starts
                .partition_point(|&first| first <= key)
                .checked_sub(1);
        }
        // Slice `s` of `count` starts at floor(s * 2^64 / count) (`slice_start`), so `key` is
        // in the slice of its even share or, where that start was rounded down onto it, the
        // first of the next.
        let count = self.starts.len() as u128;
        let share = (u128::from(key) * count) >> 64;
        let in_next = (u128::from(key) + 1) * count > (share + 1) << 64;
        Some(usize_from(share as u64) + usize::from(in_next))
    }

    /// The bytes this filter occupies in memory.
    fn bytes(&self) -> usize {
        self.bits.len() + self.starts.len() * 16
    }
}

/// Filters of complete runs, read once and kept: runs never change once complete, and run ids
/// are not reused while a store is open. Cleared with apply's memory of the index (after a
/// failed apply or an install), since a transaction that did not commit may have shown a run
/// that the committed state builds differently. Bounded: past [`FilterCache::MAX_BYTES`] it
/// starts over (the filters are reread as lookups need them).
#[derive(Debug, Default)]
pub(crate) struct FilterCache {
    /// Log name → (run id, filter), sorted by run id: a lookup asks about every run of its log,
    /// so it finds them by a binary search in a short array rather than by hashing each id, and
    /// allocates nothing.
    runs: HashMap<String, Vec<(u64, Arc<RunFilter>)>>,
    bytes: usize,
}

impl FilterCache {
    /// Filters kept at most (1.25 to 2.5 bytes per index pair, three pairs per leaf: 7×10^7
    /// to 1.4×10^8 leaves' worth).
    const MAX_BYTES: usize = 512 << 20;

    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.bytes = 0;
    }

    /// For each of `runs` of `log`, whether it may hold `key` by its kept filter, or `None` for
    /// a run whose filter is not kept. A lookup of a key the log does not have (nearly every
    /// dedup lookup) asks every run, and each answer costs a cache miss in a filter that memory
    /// holds but the cache does not: the first probes of all runs are made first, loads that do
    /// not depend on each other, so that the processor waits for those misses together rather
    /// than one by one.
    pub(crate) fn may_hold_each(&self, log: &str, runs: &[u64], key: u64) -> Vec<Option<bool>> {
        let Some(kept) = self.runs.get(log) else {
            return vec![None; runs.len()];
        };
        let filters: Vec<Option<&RunFilter>> = runs
            .iter()
            .map(|run| {
                let position = kept.binary_search_by_key(run, |(id, _)| *id).ok()?;
                Some(&*kept[position].1)
            })
            .collect();
        let first: Vec<bool> = filters
            .iter()
            .map(|filter| filter.is_none_or(|filter| filter.first_probe(key)))
            .collect();
        filters
            .iter()
            .zip(first)
            .map(|(filter, first)| filter.map(|filter| first && filter.may_hold(key)))
            .collect()
    }

    pub(crate) fn insert(&mut self, log: &str, run: u64, filter: Arc<RunFilter>) {
        let bytes = filter.bytes();
        if self.bytes + bytes > Self::MAX_BYTES {
            self.clear();
        }
        let kept = match self.runs.get_mut(log) {
            Some(kept) => kept,
            None => self.runs.entry(log.to_owned()).or_default(),
        };
        match kept.binary_search_by_key(&run, |(id, _)| *id) {
            Ok(position) => kept[position].1 = filter,
            Err(position) => {
                self.bytes += bytes;
                kept.insert(position, (run, filter));
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
        assert!(false_maybes < 1_000, "{false_maybes} of 100,000");
        // An empty segment holds nothing.
        let empty = build(std::iter::empty());
        assert!((0..1000).all(|i| !may_hold(&empty, key(i))));
    }

    /// A filter's size is a power of two, and a node that takes the remainder of every probe
    /// (as nodes did before sizes were powers of two) finds every key in it; a filter of any
    /// multiple of 64 bits (as they were) is still read by remainder.
    #[test]
    fn filters_read_alike_by_mask_and_by_remainder() {
        // The probes as a node of that version computes them.
        let remainder_probes = |key: u64, bits: u64| {
            let step = key.rotate_left(32) | 1;
            (0..PROBES).map(move |probe| key.wrapping_add(probe.wrapping_mul(step)) % bits)
        };
        let by_remainder = |filter: &[u8], key: u64| {
            remainder_probes(key, filter.len() as u64 * 8)
                .all(|bit| filter[usize_from(bit / 8)] & (1 << (bit % 8)) != 0)
        };
        for count in [0, 1, 6, 7, 100, 1_000, 16_384, 20_000] {
            let keys: Vec<u64> = (0..count).map(key).collect();
            let filter = build(keys.iter().copied());
            assert!((filter.len() * 8).is_power_of_two(), "{count} keys");
            assert!(filter.len() * 8 >= (usize_from(count) * BITS_PER_PAIR).max(64));
            for i in 0..count + 5_000 {
                assert_eq!(
                    may_hold(&filter, key(i)),
                    by_remainder(&filter, key(i)),
                    "{i}"
                );
            }
        }
        // 96 bytes (768 bits, not a power of two): probes are taken by remainder.
        let mut old = vec![0u8; 96];
        for bit in remainder_probes(key(1), 96 * 8) {
            old[usize_from(bit / 8)] |= 1 << (bit % 8);
        }
        assert!(may_hold(&old, key(1)) && by_remainder(&old, key(1)));
    }

    #[test]
    fn the_segment_at_or_below_a_key_answers_for_it() {
        let low: Vec<u64> = (0..100).map(|i| i * 10).collect();
        let high: Vec<u64> = (0..100).map(|i| 1 << 40 | i).collect();
        let run = RunFilter::from_segments(vec![
            (0, build(low.iter().copied())),
            (1 << 40, build(high.iter().copied())),
        ]);
        assert!(low.iter().chain(&high).all(|&k| run.may_hold(k)));
        // A run whose first segment starts above a key (slices merged before filters existed)
        // may hold it.
        let late = RunFilter::from_segments(vec![(1 << 40, build(high.iter().copied()))]);
        assert!(late.may_hold(5));
        assert!(RunFilter::default().may_hold(5));
    }

    /// A run's filter segments: first key and filter bytes.
    type Segments = Vec<(u64, Vec<u8>)>;

    /// The segment a key's position is computed to be in is the one a search finds, for
    /// segments at a merge's slice starts and for any others. Its bytes are that segment's,
    /// or, laid out at the run's common size, answer as they did (or "maybe" where folded).
    #[test]
    fn the_computed_segment_is_the_searched_one() {
        // Below 2^64 for every slice but the end.
        let first_key =
            |slice: u64, slices: u64| u64::try_from(slice_start(slice, slices)).unwrap_or(u64::MAX);
        // Segments of one key each have one size; of `slice` keys each, all different sizes.
        let even = |slices: u64, keys_per_slice: fn(u64) -> u64| {
            (0..slices)
                .map(|slice| {
                    let keys = (0..keys_per_slice(slice)).map(|i| key(slice << 20 | i));
                    (
                        first_key(slice, slices),
                        build(keys.collect::<Vec<_>>().into_iter()),
                    )
                })
                .collect::<Vec<_>>()
        };
        let uneven = [0, 7, 1 << 20, 1 << 63, u64::MAX - 1]
            .into_iter()
            .map(|first| (first, build([key(first)].into_iter())))
            .collect();
        let late = vec![(1 << 40, build([key(1)].into_iter()))];
        // Segments, and whether they lay out evenly.
        let cases: Vec<(Segments, bool)> = vec![
            (even(1, |_| 1), true),
            (even(3, |_| 1), true),
            (even(7, |_| 1), true),
            (even(1024, |_| 1), true),
            (even(1000, |_| 1), true),
            // 8 to 128 bytes, laid out at 64: repeated or folded.
            (even(9, |slice| slice * 10), true),
            // Sizes not powers of two (filters from before they were) are searched.
            (vec![(0, vec![0xff; 96]), (1 << 63, vec![0xff; 96])], false),
            (uneven, false),
            (late, false),
        ];
        let mut keys: Vec<u64> = (0..20_000).map(key).collect();
        for (segments, _) in &cases {
            for (first, _) in segments {
                keys.extend([first.wrapping_sub(1), *first, first.wrapping_add(1)]);
            }
        }
        keys.extend([0, u64::MAX]);
        for (segments, even) in cases {
            let run = RunFilter::from_segments(segments.clone());
            assert_eq!(run.even.is_some(), even, "{} segments", segments.len());
            for &k in &keys {
                let searched = segments
                    .partition_point(|(first, _)| *first <= k)
                    .checked_sub(1);
                assert_eq!(run.position(k), searched, "{k}");
                let Some(position) = searched else {
                    assert_eq!(run.segment(k), None);
                    continue;
                };
                let original = segments[position].1.as_slice();
                let segment = run.segment(k).unwrap();
                if segment.len() == original.len() {
                    assert_eq!(segment, original, "{k}");
                }
                let answer = may_hold(segment, k);
                if segment.len() >= original.len() {
                    assert_eq!(answer, may_hold(original, k), "{k}");
                } else {
                    assert!(answer || !may_hold(original, k), "{k}");
                }
            }
        }
    }

    /// Asked about several runs at once, the cache answers as each run's filter does, and
    /// nothing for a run it does not keep, whatever order the runs were kept in.
    #[test]
    fn runs_asked_together_answer_as_each_alone() {
        let mut cache = FilterCache::default();
        let held: Vec<Vec<u64>> = (0..5u64)
            .map(|run| (0..2_000).map(|i| key(run * 10_000 + i)).collect())
            .collect();
        let filters: Vec<Arc<RunFilter>> = held
            .iter()
            .map(|keys| {
                Arc::new(RunFilter::from_segments(vec![(
                    0,
                    build(keys.iter().copied()),
                )]))
            })
            .collect();
        for run in [3, 0, 4, 1, 2] {
            cache.insert("artifacts", run as u64, Arc::clone(&filters[run]));
        }
        let runs = [4, 0, 99, 2, 1, 3];
        for i in 0..60_000 {
            let k = key(i);
            let each = cache.may_hold_each("artifacts", &runs, k);
            let alone: Vec<Option<bool>> = runs
                .iter()
                .map(|&run| filters.get(usize_from(run)).map(|f| f.may_hold(k)))
                .collect();
            assert_eq!(each, alone);
            assert_eq!(each[2], None, "run 99 is not kept");
        }
        for (run, keys) in held.iter().enumerate() {
            let position = runs.iter().position(|&r| r == run as u64).unwrap();
            assert!(
                keys.iter()
                    .all(|&k| cache.may_hold_each("artifacts", &runs, k)[position] == Some(true))
            );
        }
        assert_eq!(
            cache.may_hold_each("other", &runs, 5),
            vec![None; runs.len()]
        );
        // Keeping a run's filter again replaces it and counts its bytes once.
        let bytes = cache.bytes;
        cache.insert("artifacts", 2, Arc::clone(&filters[2]));
        assert_eq!(cache.bytes, bytes);
    }
}
