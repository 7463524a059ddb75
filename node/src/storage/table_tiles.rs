//! Reading a log's tree hashes from `state.redb`: [`TableTiles`], the [`TileReader`] over the
//! tile-hash table and the leaf directory that apply (inside its write transaction), the read
//! view and the index rebuild all prove with, and the row-range arithmetic under it.

use redb::ReadableTable;
use tlog::Hash;
use tlog::tile::{TILE_WIDTH, Tile, TileReader};
use tlog::tree::StoreError;

use super::DiskError;
use super::leaf_stream::LeafHashes;
use super::pinned_levels::PinnedLevels;
use super::tables::decode_hash;
use crate::types::LogName;

/// Key of the tile-hash table.
pub(crate) type TileKey = (&'static str, u8, u64);

/// The indices, at the tile's Merkle level, of hashes `position..position + count` of `tile`:
/// `None` if they are not all within its width (or on overflow).
fn tile_hash_range(tile: Tile, position: usize, count: usize) -> Option<(u64, u64)> {
    if position.checked_add(count)? > usize::from(tile.width) {
        return None;
    }
    let (tile_first, _) = tile_range(tile.index, tile.width)?;
    let first = tile_first.checked_add(u64::try_from(position).ok()?)?;
    Some((first, first.checked_add(u64::try_from(count).ok()?)?))
}

/// The hashes `first..end` of stored Merkle level `level` (not 0) of `log`, concatenated, from
/// a row per hash. Every one must be stored.
pub(crate) fn read_stored_level<T>(
    hashes: &T,
    log: &LogName,
    level: u8,
    first: u64,
    end: u64,
) -> Result<Vec<u8>, DiskError>
where
    T: ReadableTable<TileKey, &'static [u8]>,
{
    let missing = |index: u64| {
        DiskError::Missing(format!(
            "hash of log {log} at Merkle level {level} index {index}"
        ))
    };
    let capacity = usize::try_from(end.saturating_sub(first)).unwrap_or(0);
    let mut data = Vec::with_capacity(capacity.saturating_mul(tlog::hash::HASH_LEN));
    let mut expected = first;
    let name = log.0.as_str();
    for row in hashes.range((name, level, first)..(name, level, end))? {
        let (key, value) = row?;
        let (_, _, index) = key.value();
        if index != expected {
            return Err(missing(expected));
        }
        // The key is formatted only if the hash is corrupt: this loop is on every proof's path.
        let hash = decode_hash(
            "tile_hashes",
            &format_args!("({log}, {level}, {index})"),
            value.value(),
        )?;
        data.extend_from_slice(hash.as_bytes());
        expected += 1;
    }
    if expected != end {
        return Err(missing(expected));
    }
    Ok(data)
}

/// The first index and the end of the `width` entries of tile `index` (None on overflow).
pub(crate) fn tile_range(index: u64, width: u16) -> Option<(u64, u64)> {
    let first = index.checked_mul(u64::from(TILE_WIDTH))?;
    Some((first, first.checked_add(u64::from(width))?))
}

/// How many complete subtrees of Merkle level `8 * tile_level` a tree of `size` has.
pub(crate) fn hashes_at_tile_level(size: u64, tile_level: u8) -> u64 {
    let merkle_level = u32::from(tile_level) * u32::from(tlog::tile::TILE_HEIGHT);
    size.checked_shr(merkle_level).unwrap_or(0)
}

/// A [`TileReader`] over a tile-hash table and a leaf directory (of a write or a read
/// transaction).
pub(crate) struct TableTiles<'a, T, D> {
    pub(crate) table: &'a T,
    pub(crate) directory: &'a D,
    /// Levels held in memory (a view's), read before the table.
    pub(crate) pinned: Option<&'a PinnedLevels>,
    pub(crate) log: &'a LogName,
}

impl<T, D> TableTiles<'_, T, D>
where
    T: ReadableTable<TileKey, &'static [u8]>,
    D: LeafHashes,
{
    /// The bytes of hash tile `tile`: a range read of its `width` hashes, every one of which
    /// must be stored.
    pub(crate) fn tile_bytes(&self, tile: Tile) -> Result<Vec<u8>, DiskError> {
        self.tile_part(tile, 0, usize::from(tile.width))
    }

    /// Hashes `position..position + count` of hash tile `tile` (within its width), every one
    /// of which must be stored.
    pub(crate) fn tile_part(
        &self,
        tile: Tile,
        position: usize,
        count: usize,
    ) -> Result<Vec<u8>, DiskError> {
        let (first, end) = tile_hash_range(tile, position, count).ok_or_else(|| {
            DiskError::Missing(format!(
                "hashes {position}+{count} of tile {tile} of log {}",
                self.log
            ))
        })?;
        self.level(tile.merkle_level(), first, end)
    }

    /// The stored hashes `first..end` of Merkle level `level`, concatenated: level 0 from the
    /// leaf directory (`leaf_stream`), every other stored level from memory if `pinned` holds
    /// them, else from a row per hash. Every one must be stored.
    pub(crate) fn level(&self, level: u8, first: u64, end: u64) -> Result<Vec<u8>, DiskError> {
        if level == 0 {
            return self.directory.leaf_hashes(self.log.0.as_str(), first, end);
        }
        if let Some(data) = self
            .pinned
            .and_then(|pinned| pinned.read(self.log, level, first, end))
        {
            return Ok(data);
        }
        read_stored_level(self.table, self.log, level, first, end)
    }

    /// The root of the complete subtree over hashes `position..position + count` of hash tile
    /// `tile` (`count` a power of two, `position` a multiple of it, within the width). A
    /// subtree of 16 or more of the tile's hashes is folded from the stored level halfway up
    /// the tile (`state_machine::STORED_LEVEL_STEP`), a smaller one from the tile's own level.
    pub(crate) fn subtree_root_part(
        &self,
        tile: Tile,
        position: usize,
        count: usize,
    ) -> Result<Hash, DiskError> {
        let step = crate::state_machine::STORED_LEVEL_STEP;
        let per_middle = 1usize << step;
        let bad = || {
            DiskError::Missing(format!(
                "the subtree over hashes {position}+{count} of tile {tile} of log {}",
                self.log
            ))
        };
        if !count.is_power_of_two() || !position.is_multiple_of(count) {
            return Err(bad());
        }
        let (first, end) = tile_hash_range(tile, position, count).ok_or_else(bad)?;
        // Aligned on `count`, so on 16 when it reaches the middle level.
        let data = if count >= per_middle {
            self.level(tile.merkle_level() + step, first >> step, end >> step)?
        } else {
            self.level(tile.merkle_level(), first, end)?
        };
        tlog::tile::subtree_root(&data).ok_or_else(bad)
    }
}

impl<T, D> TileReader for TableTiles<'_, T, D>
where
    T: ReadableTable<TileKey, &'static [u8]>,
    D: LeafHashes,
{
    // A row per hash: a proof's low siblings cost 1, 2, 4, 8 hashes, and its higher ones 1, 2,
    // 4, 8 of the level halfway up the tile, not the whole tile.
    const READS_PART_OF_A_TILE: bool = true;

    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, StoreError> {
        self.tile_bytes(tile)
            .map_err(|error| StoreError::Read(error.into()))
    }

    fn read_tile_hashes(
        &self,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, StoreError> {
        self.tile_part(tile, first, count)
            .map_err(|error| StoreError::Read(error.into()))
    }

    fn subtree_root(&self, tile: Tile, first: usize, count: usize) -> Result<Hash, StoreError> {
        self.subtree_root_part(tile, first, count)
            .map_err(|error| StoreError::Read(error.into()))
    }
}
