//! The stored Merkle levels from 4 up, of each log, held in memory, so that a proof reads from
//! disk at most its leaf hashes.
//!
//! Why: in a log larger than the page cache, a proof for a random leaf read a page of the
//! level halfway up its tile and one of the tile level above, each likely cold (the leaves and
//! their directory, many gigabytes, push them out). These levels are small: 1/16 of a hash per
//! leaf in all, 21 MB at 10^7 leaves. A proof then reads one page that may be cold, the leaf
//! directory's group of its leaf, which a client reading the entry first has just warmed.
//!
//! What is held is a copy of committed rows, each level a prefix of its complete subtrees in
//! index order, loaded when the state database opens and extended from each read
//! transaction towards that transaction's head. A complete
//! subtree's hash never changes and heads are written only once the tree under them is
//! verified, so a held hash is never stale; a view still reads anything not held from its
//! own transaction. Bounded by [`PINNED_BYTES_MAX`]: past it the lowest levels are dropped
//! (10^9 leaves keep levels 8 and up, 131 MB).

use std::collections::BTreeMap;
use std::sync::RwLock;

use redb::ReadableTable;
use tlog::hash::HASH_LEN;

use super::DiskError;
use super::table_tiles::{TileKey, read_stored_level};
use crate::state_machine::STORED_LEVEL_STEP;
use crate::types::LogName;

/// The most bytes of hashes held, over every log.
pub(crate) const PINNED_BYTES_MAX: u64 = 256 << 20;

/// The most rows a read view adds per level (a few pages): the start loads in bulk, views
/// follow the head, and memory that fell behind (after an install) catches up over a few
/// views without any one request reading much.
pub(crate) const VIEW_ROWS_MAX: u64 = 256;

/// The highest Merkle level a tree of up to 2^64 leaves has.
const LEVEL_MAX: u8 = 63;

/// Every log's held levels.
#[derive(Debug)]
pub(crate) struct PinnedLevels {
    budget_hashes: u64,
    /// Per log and level, the hashes of subtrees `0..n`, concatenated.
    logs: RwLock<BTreeMap<LogName, BTreeMap<u8, Vec<u8>>>>,
}

impl Default for PinnedLevels {
    fn default() -> PinnedLevels {
        PinnedLevels::with_budget(PINNED_BYTES_MAX)
    }
}

impl PinnedLevels {
    /// Levels holding at most `bytes` of hashes (shared by all logs, first come).
    pub(crate) fn with_budget(bytes: u64) -> PinnedLevels {
        PinnedLevels {
            budget_hashes: bytes / HASH_LEN as u64,
            logs: RwLock::default(),
        }
    }

    /// Hashes `first..end` of Merkle `level` of `log`, concatenated, if all are held.
    pub(crate) fn read(&self, log: &LogName, level: u8, first: u64, end: u64) -> Option<Vec<u8>> {
        let logs = self.logs.read().ok()?;
        let held = logs.get(log)?.get(&level)?;
        let at = |index: u64| usize::try_from(index).ok()?.checked_mul(HASH_LEN);
        held.get(at(first)?..at(end)?).map(<[u8]>::to_vec)
    }

    /// Extends `log`'s held levels towards a tree of `size` leaves from `hashes`, the
    /// tile-hash table of a read transaction whose head of `log` is `size`, by at most
    /// `rows_max` rows per level. Cheap when nothing is new.
    pub(crate) fn follow<T>(
        &self,
        hashes: &T,
        log: &LogName,
        size: u64,
        rows_max: u64,
    ) -> Result<(), DiskError>
    where
        T: ReadableTable<TileKey, &'static [u8]>,
    {
        let lowest = self.lowest_level(log, size);
        // What to read, found under the read lock; read without any lock; appended under the
        // write lock if no other view appended the same rows meanwhile.
        let wanted: Vec<(u8, u64, u64)> = {
            let Ok(logs) = self.logs.read() else {
                return Ok(());
            };
            let held = logs.get(log);
            pinned_levels(lowest, size)
                .filter_map(|level| {
                    let have = held
                        .and_then(|levels| levels.get(&level))
                        .map_or(0, |hashes| held_hashes(hashes));
                    let complete = (size >> level).min(have.saturating_add(rows_max));
                    (have < complete).then_some((level, have, complete))
                })
                .collect()
        };
        let dropped = |logs: &BTreeMap<LogName, BTreeMap<u8, Vec<u8>>>| {
            logs.get(log)
                .is_some_and(|levels| levels.keys().any(|&level| level < lowest))
        };
        if wanted.is_empty() && !self.logs.read().is_ok_and(|logs| dropped(&logs)) {
            return Ok(());
        }
        let mut read = Vec::with_capacity(wanted.len());
        for &(level, first, end) in &wanted {
            read.push((
                level,
                first,
                read_stored_level(hashes, log, level, first, end)?,
            ));
        }
        let Ok(mut logs) = self.logs.write() else {
            return Ok(());
        };
        let levels = logs.entry(log.clone()).or_default();
        levels.retain(|&level, _| level >= lowest);
        for (level, first, rows) in read {
            let held = levels.entry(level).or_default();
            if held_hashes(held) == first {
                held.extend_from_slice(&rows);
            }
        }
        Ok(())
    }

    /// The lowest level of `log` held at `size` leaves: the lowest stored level such that it
    /// and every level above it fit in what the other logs leave of the budget.
    fn lowest_level(&self, log: &LogName, size: u64) -> u8 {
        let others: u64 = self.logs.read().map_or(0, |logs| {
            logs.iter()
                .filter(|(name, _)| *name != log)
                .flat_map(|(_, levels)| levels.values())
                .map(|hashes| held_hashes(hashes))
                .sum()
        });
        let budget = self.budget_hashes.saturating_sub(others);
        let mut lowest = STORED_LEVEL_STEP;
        while lowest <= LEVEL_MAX
            && pinned_levels(lowest, size)
                .map(|level| size >> level)
                .sum::<u64>()
                > budget
        {
            lowest += STORED_LEVEL_STEP;
        }
        lowest
    }
}

/// The stored levels from `lowest` up that a tree of `size` leaves has a complete subtree at.
fn pinned_levels(lowest: u8, size: u64) -> impl Iterator<Item = u8> {
    (lowest..=LEVEL_MAX)
        .step_by(usize::from(STORED_LEVEL_STEP))
        .take_while(move |&level| size >> level > 0)
}

/// How many hashes `held` holds.
fn held_hashes(held: &[u8]) -> u64 {
    (held.len() / HASH_LEN) as u64
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase as _;
    use tlog::Hash;

    use super::*;

    #[test]
    fn views_extend_the_held_levels_a_bounded_step_at_a_time() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let log = LogName("artifacts".into());
        let hash = |index: u64| Hash::digest(&index.to_be_bytes());
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(super::super::tables::TILE_HASHES).unwrap();
            for index in 0..10u64 {
                table
                    .insert(("artifacts", 4, index), hash(index).as_bytes().as_slice())
                    .unwrap();
            }
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(super::super::tables::TILE_HASHES).unwrap();
        let levels = PinnedLevels::default();
        // 160 leaves: ten complete subtrees at level 4, none at level 8.
        levels.follow(&table, &log, 160, 3).unwrap();
        assert!(levels.read(&log, 4, 0, 3).is_some());
        assert_eq!(levels.read(&log, 4, 2, 4), None);
        for _ in 0..3 {
            levels.follow(&table, &log, 160, 3).unwrap();
        }
        let held = levels.read(&log, 4, 0, 10).unwrap();
        let expected: Vec<u8> = (0..10u64)
            .flat_map(|index| *hash(index).as_bytes())
            .collect();
        assert_eq!(held, expected);
        // Never past the view's head, whatever the table holds.
        assert_eq!(levels.read(&log, 4, 0, 11), None);
        // A row the head promises but the table lacks is an error, and nothing is held for it.
        assert!(levels.follow(&table, &log, 176, 3).is_err());
        assert_eq!(levels.read(&log, 4, 10, 11), None);
    }

    #[test]
    fn levels_kept_fit_the_budget() {
        let log = LogName("artifacts".into());
        let levels = PinnedLevels::with_budget(u64::MAX);
        assert_eq!(levels.lowest_level(&log, 10_000_000), 4);
        // 10^9 leaves: levels 4 and up are 62.5 million hashes, 8 and up 3.9 million.
        let levels = PinnedLevels::with_budget(PINNED_BYTES_MAX);
        assert_eq!(levels.lowest_level(&log, 1_000_000_000), 8);
        assert_eq!(levels.lowest_level(&log, 100_000_000), 4);
        let none = PinnedLevels::with_budget(0);
        assert!(
            pinned_levels(none.lowest_level(&log, 1 << 40), 1 << 40)
                .next()
                .is_none()
        );
        assert_eq!(pinned_levels(4, 255).collect::<Vec<_>>(), vec![4]);
        assert_eq!(pinned_levels(4, 256).collect::<Vec<_>>(), vec![4, 8]);
    }
}
