//! The index's writer: the tail rows apply stores, flushes into runs, merges paid for by
//! credit, and bulk builds.

use super::*;

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
                pairs.push(pair(key, index));
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
            pairs.retain(|&pair| pair_leaf(pair) + 1 != to);
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
        pairs: &[u128],
    ) -> Result<(), DiskError> {
        #[cfg(feature = "canaries")] // The planted bug: the run's last pair is left out.
        let pairs = match pairs.split_last() {
            Some((_, rest)) if crate::canary::is(crate::canary::Canary::FilterMissesAKey) => rest,
            _ => pairs,
        };
        let filter = run_filter::build(pairs.iter().map(|&pair| pair_key(pair)));
        self.filters
            .insert((log, run, first_key), filter.as_slice())?;
        Ok(())
    }

    fn write_blocks(
        &mut self,
        log: &str,
        run: u64,
        pairs: &[u128],
        block_entries: usize,
    ) -> Result<(), DiskError> {
        let mut bytes = Vec::with_capacity(block_entries.max(1) * PAIR_BYTES);
        for block in pairs.chunks(block_entries.max(1)) {
            bytes.clear();
            for pair in block {
                bytes.extend_from_slice(&pair.to_be_bytes());
            }
            let first = block[0];
            self.blocks.insert(
                (log, run, pair_key(first), pair_leaf(first)),
                bytes.as_slice(),
            )?;
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
        let estimate = usize_from(merge.slice_estimate() / merge.inputs.len().max(1) as u64);
        let mut inputs = Vec::with_capacity(merge.inputs.len());
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
            // Slightly more than an even share, so the vector rarely grows.
            let mut slice = Vec::with_capacity(estimate + estimate / 8);
            for row in self
                .blocks
                .range((log, input, start_key, start_leaf)..=(log, input, u64::MAX, u64::MAX))?
            {
                let (block_key, bytes) = row?;
                let (_, _, first_key, first_leaf) = block_key.value();
                if u128::from(first_key) >= high {
                    break;
                }
                let last = decode_block_into(
                    (log, input, first_key, first_leaf),
                    bytes.value(),
                    low..high,
                    &mut slice,
                )?;
                if u128::from(last) < high {
                    consumed.push((input, first_key, first_leaf));
                }
            }
            inputs.push(slice);
        }
        for (run, key, leaf) in consumed {
            self.blocks.remove((log, run, key, leaf))?;
        }
        let pairs = merge_sorted(inputs);
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
        !self.merges.is_empty() || self.has_flushes(head, shape)
    }

    /// Whether flushes remain for a log whose head is `head`: a tail's worth of leaves not yet
    /// in a run.
    pub(crate) fn has_flushes(&self, head: u64, shape: &IndexShape) -> bool {
        head.saturating_sub(self.flushed) >= shape.tail_leaves.max(1)
    }

    /// Whether `run` is a complete run (not the output of a merge in progress).
    pub(super) fn is_complete(&self, run: u64) -> bool {
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
