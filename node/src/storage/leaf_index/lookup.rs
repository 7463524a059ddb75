//! Lookups: the runs a key is read from, and the candidates they and the tail give.

use super::*;

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
fn runs_to_read(meta: &IndexMeta, key: u64, may_hold: &MayHold<'_>) -> Result<Vec<u64>, DiskError> {
    let ids = runs_for(meta, key);
    let complete: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&run| meta.is_complete(run))
        .collect();
    let answers = may_hold(&complete)?;
    // Without an answer for each run, read them all rather than skip one that holds the key.
    let answered = answers.len() == complete.len();
    let mut answers = answers.into_iter();
    Ok(ids
        .into_iter()
        .filter(|&run| !meta.is_complete(run) || !answered || answers.next().unwrap_or(true))
        .collect())
}

/// For each complete run asked about, whether its filter may hold the key looked up.
pub(crate) type MayHold<'a> = dyn Fn(&[u64]) -> Result<Vec<bool>, DiskError> + 'a;

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
    may_hold: &MayHold<'_>,
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
    may_hold: &MayHold<'_>,
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
