//! C2SP tlog-tiles (c2sp.org/tlog-tiles): the log's Merkle tree served as immutable tiles.
//!
//! Model. A tile is 256 consecutive hashes of one tree level. Tile level `L` holds the hashes of
//! Merkle level `8 * L`: level-0 tiles hold leaf hashes, and each hash in a level-1 tile is the
//! root of one full level-0 tile. A tile with fewer than 256 hashes is *partial*; its width is
//! part of its path (`.p/W`), it is never hashed upward, and it is replaced, never rewritten, as
//! the tree grows. Entry bundles (`tile/entries/N`) hold the leaves themselves, 256 per bundle,
//! each as a 16-bit big-endian length and its bytes.
//!
//! Paths. The tile index is written in three-digit groups, every group but the last prefixed
//! with `x` (1234067 is `x001/x234/067`). Parsing is strict and canonical: a path parses only if
//! formatting the result gives the same path back, so one tile has exactly one name (a cache
//! or a mirror can never hold two copies of a tile under different names).

use std::collections::BTreeMap;
use std::fmt;

use crate::hash::{HASH_LEN, Hash};
use crate::tree::{HashStore, NodeId, StoreError, TreeSize, fold_range};

/// Merkle levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u16 = 256;
/// Bytes in a full hash tile.
pub const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_LEN;
/// The highest tile level the spec allows.
pub const TILE_LEVEL_MAX: u8 = 63;
/// The largest entry an entry bundle can hold (its length prefix is 16 bits).
pub const BUNDLE_ENTRY_BYTES_MAX: usize = u16::MAX as usize;

/// What a tile holds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TileKind {
    /// Hashes of Merkle level `8 * level`.
    Hashes {
        /// The tile level, 0 to 63.
        level: u8,
    },
    /// An entry bundle: the leaves under the level-0 tile of the same index.
    Entries,
}

/// One tile: what it holds, its index along its level, and its width.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Tile {
    /// Hashes of a level, or entries.
    pub kind: TileKind,
    /// Position along the level, counted from 0.
    pub index: u64,
    /// Number of hashes or entries, 1 to 256; 256 is a full tile.
    pub width: u16,
}

/// A tile path that is not a canonical C2SP tlog-tiles path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TilePathError {
    /// The path does not start with `tile/`.
    #[error("tile path must start with \"tile/\"")]
    Prefix,
    /// The level is not a decimal number from 0 to 63 without leading zeros.
    #[error("tile level must be a decimal from 0 to 63")]
    Level,
    /// An index group is not three digits, or misses (or wrongly has) its `x` prefix.
    #[error("tile index group {0:?} is malformed")]
    IndexGroup(String),
    /// The index is not in canonical form (a leading `x000` group) or overflows 64 bits.
    #[error("tile index is not canonical")]
    IndexNotCanonical,
    /// The partial width is not a decimal from 1 to 255 without leading zeros.
    #[error("partial tile width must be a decimal from 1 to 255")]
    Width,
    /// The path is empty after `tile/` or has too many segments.
    #[error("tile path has the wrong number of segments")]
    Segments,
}

/// Entry-bundle bytes that are not a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle ends inside a length prefix or an entry.
    #[error("entry bundle truncated in entry {entry}")]
    Truncated {
        /// Index of the entry within the bundle.
        entry: usize,
    },
    /// The bundle holds more entries than its tile width says.
    #[error("entry bundle has more than {width} entries")]
    TooManyEntries {
        /// The expected width.
        width: u16,
    },
    /// The bundle holds fewer entries than its tile width says.
    #[error("entry bundle has {got} entries, want {want}")]
    TooFewEntries {
        /// The expected width.
        want: u16,
        /// The entries found.
        got: usize,
    },
    /// An entry is longer than a 16-bit length can say.
    #[error("entry {entry} is {len} bytes, more than {BUNDLE_ENTRY_BYTES_MAX}")]
    EntryTooLarge {
        /// Index of the entry within the bundle.
        entry: usize,
        /// Its length.
        len: usize,
    },
    /// An entry's leaf hash differs from the level-0 tile's hash at its position.
    #[error("entry {entry} does not match its level-0 tile hash")]
    LeafHashMismatch {
        /// Index of the entry within the bundle.
        entry: usize,
    },
}

/// Tile bytes of the wrong length for the tile they claim to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tile {tile} is {got} bytes, want {want}")]
pub struct TileLengthError {
    /// The tile's path.
    pub tile: String,
    /// The bytes expected: width times 32.
    pub want: usize,
    /// The bytes received.
    pub got: usize,
}

impl Tile {
    /// The hash tile at `level` and `index` with `width` hashes.
    ///
    /// # Panics
    /// If the level is above 63 or the width is not 1 to 256 (a caller bug, never input: parsed
    /// tiles come from [`Tile::from_path`], which checks both).
    pub fn hashes(level: u8, index: u64, width: u16) -> Tile {
        assert!(
            level <= TILE_LEVEL_MAX,
            "tile level {level} above {TILE_LEVEL_MAX}"
        );
        assert!(
            (1..=TILE_WIDTH).contains(&width),
            "tile width {width} outside 1..=256"
        );
        Tile {
            kind: TileKind::Hashes { level },
            index,
            width,
        }
    }

    /// The entry bundle at `index` with `width` entries.
    ///
    /// # Panics
    /// If the width is not 1 to 256.
    pub fn entries(index: u64, width: u16) -> Tile {
        assert!(
            (1..=TILE_WIDTH).contains(&width),
            "bundle width {width} outside 1..=256"
        );
        Tile {
            kind: TileKind::Entries,
            index,
            width,
        }
    }

    /// Whether the tile holds all 256 hashes or entries.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The hash tile this entry bundle belongs to (level 0, same index and width); a hash tile
    /// is returned unchanged.
    pub fn hash_tile(&self) -> Tile {
        match self.kind {
            TileKind::Entries => Tile::hashes(0, self.index, self.width),
            TileKind::Hashes { .. } => *self,
        }
    }

    /// The Merkle level of the hashes in this tile (0 for entry bundles).
    pub fn merkle_level(&self) -> u8 {
        match self.kind {
            TileKind::Hashes { level } => level * TILE_HEIGHT,
            TileKind::Entries => 0,
        }
    }

    /// The complete subtrees whose hashes this hash tile holds, in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + use<> {
        let level = self.merkle_level();
        let first = self.index * u64::from(TILE_WIDTH);
        (first..first + u64::from(self.width)).map(move |index| NodeId::new(level, index))
    }

    /// The path under a log's prefix, for example `tile/0/x001/234.p/5`.
    pub fn path(&self) -> String {
        let mut path = String::from("tile/");
        match self.kind {
            TileKind::Hashes { level } => path.push_str(&level.to_string()),
            TileKind::Entries => path.push_str("entries"),
        }
        path.push('/');
        path.push_str(&index_path(self.index));
        if !self.is_full() {
            path.push_str(".p/");
            path.push_str(&self.width.to_string());
        }
        path
    }

    /// Parses a canonical tile path such as `tile/3/x001/x234/067.p/9` or `tile/entries/000`.
    pub fn from_path(path: &str) -> Result<Tile, TilePathError> {
        let rest = path.strip_prefix("tile/").ok_or(TilePathError::Prefix)?;
        let (kind_segment, rest) = rest.split_once('/').ok_or(TilePathError::Segments)?;
        let kind = if kind_segment == "entries" {
            TileKind::Entries
        } else {
            TileKind::Hashes {
                level: parse_level(kind_segment)?,
            }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index_part, width)) => (index_part, parse_width(width)?),
            None => (rest, TILE_WIDTH),
        };
        let index = parse_index(index_part)?;
        Ok(Tile { kind, index, width })
    }

    /// Checks that tile bytes have the length this hash tile's width implies.
    pub fn check_len(&self, data: &[u8]) -> Result<(), TileLengthError> {
        let want = usize::from(self.width) * HASH_LEN;
        if data.len() == want {
            Ok(())
        } else {
            Err(TileLengthError {
                tile: self.path(),
                want,
                got: data.len(),
            })
        }
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// The index part of a tile path: 1234067 is `x001/x234/067`.
pub fn index_path(index: u64) -> String {
    let mut groups = Vec::new();
    let mut rest = index;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let mut path = String::new();
    for (position, group) in groups.iter().rev().enumerate() {
        if position + 1 < groups.len() {
            path.push_str(&format!("x{group:03}/"));
        } else {
            path.push_str(&format!("{group:03}"));
        }
    }
    path
}

fn parse_level(text: &str) -> Result<u8, TilePathError> {
    let level = crate::checkpoint::parse_decimal(text).map_err(|_| TilePathError::Level)?;
    u8::try_from(level)
        .ok()
        .filter(|&level| level <= TILE_LEVEL_MAX)
        .ok_or(TilePathError::Level)
}

fn parse_width(text: &str) -> Result<u16, TilePathError> {
    let width = crate::checkpoint::parse_decimal(text).map_err(|_| TilePathError::Width)?;
    u16::try_from(width)
        .ok()
        .filter(|width| (1..TILE_WIDTH).contains(width))
        .ok_or(TilePathError::Width)
}

fn parse_index(text: &str) -> Result<u64, TilePathError> {
    let groups: Vec<&str> = text.split('/').collect();
    // u64::MAX has 20 digits: 7 groups.
    if groups.len() > 7 {
        return Err(TilePathError::IndexNotCanonical);
    }
    let mut index: u64 = 0;
    for (position, group) in groups.iter().enumerate() {
        let last = position + 1 == groups.len();
        let digits = if last {
            *group
        } else {
            group
                .strip_prefix('x')
                .ok_or_else(|| TilePathError::IndexGroup(group.to_string()))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TilePathError::IndexGroup(group.to_string()));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| TilePathError::IndexGroup(group.to_string()))?;
        index = index
            .checked_mul(1000)
            .and_then(|index| index.checked_add(value))
            .ok_or(TilePathError::IndexNotCanonical)?;
    }
    // A leading zero group ("x000/001") names the same tile as "001": refuse the alias.
    if index_path(index) != text {
        return Err(TilePathError::IndexNotCanonical);
    }
    Ok(index)
}

/// The number of hashes at tile level `level` in a tree of `size` leaves: the complete
/// subtrees of Merkle level `8 * level`.
fn hashes_at_level(size: TreeSize, level: u8) -> u64 {
    let merkle_level = u32::from(level) * u32::from(TILE_HEIGHT);
    if merkle_level >= 64 {
        0
    } else {
        size.0 >> merkle_level
    }
}

/// The widest version of hash tile `index` at `level` in a tree of `size`, if it exists.
pub fn hash_tile_at(size: TreeSize, level: u8, index: u64) -> Option<Tile> {
    let count = hashes_at_level(size, level);
    let first = index.checked_mul(u64::from(TILE_WIDTH))?;
    if first >= count {
        return None;
    }
    let width = (count - first).min(u64::from(TILE_WIDTH));
    Some(Tile::hashes(level, index, u16::try_from(width).ok()?))
}

/// Every hash tile of a tree of `size` (full tiles, and the partial tile of each level if any),
/// lowest level first. Entry bundles mirror the level-0 tiles.
pub fn tiles_for_size(size: TreeSize) -> Vec<Tile> {
    new_tiles(TreeSize(0), size)
}

/// The hash tiles that a tree growing from `old` to `new` leaves must publish: every tile that
/// exists at `new` but not at `old` with the same width. Lowest level first.
///
/// # Panics
/// If `old > new`: trees only grow.
pub fn new_tiles(old: TreeSize, new: TreeSize) -> Vec<Tile> {
    assert!(old <= new, "tree shrank from {old} to {new}");
    let mut tiles = Vec::new();
    for level in 0..=TILE_LEVEL_MAX {
        let (old_count, new_count) = (hashes_at_level(old, level), hashes_at_level(new, level));
        if new_count == 0 {
            break;
        }
        if old_count == new_count {
            continue;
        }
        let width = u64::from(TILE_WIDTH);
        // The tile holding the first new hash is the first that changed.
        for index in old_count / width..new_count.div_ceil(width) {
            if let Some(tile) = hash_tile_at(new, level, index) {
                tiles.push(tile);
            }
        }
    }
    tiles
}

/// The bytes of a hash tile, read from stored complete-subtree hashes.
pub fn tile_data<S: HashStore + ?Sized>(store: &S, tile: Tile) -> Result<Vec<u8>, StoreError> {
    let nodes: Vec<NodeId> = tile.hash_tile().nodes().collect();
    let hashes = store.node_hashes(&nodes)?;
    let mut data = Vec::with_capacity(hashes.len() * HASH_LEN);
    for hash in &hashes {
        data.extend_from_slice(hash.as_bytes());
    }
    Ok(data)
}

/// Encodes leaves as an entry bundle: each a 16-bit big-endian length, then its bytes.
pub fn encode_bundle<T: AsRef<[u8]>>(entries: &[T]) -> Result<Vec<u8>, BundleError> {
    if entries.len() > usize::from(TILE_WIDTH) {
        return Err(BundleError::TooManyEntries { width: TILE_WIDTH });
    }
    let total: usize = entries.iter().map(|entry| 2 + entry.as_ref().len()).sum();
    let mut bundle = Vec::with_capacity(total);
    for (position, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| BundleError::EntryTooLarge {
            entry: position,
            len: entry.len(),
        })?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// Decodes an entry bundle that must hold exactly `width` entries.
pub fn decode_bundle(bundle: &[u8], width: u16) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::with_capacity(usize::from(width));
    let mut rest = bundle;
    while !rest.is_empty() {
        if entries.len() == usize::from(width) {
            return Err(BundleError::TooManyEntries { width });
        }
        let entry = entries.len();
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(BundleError::Truncated { entry })?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(BundleError::Truncated { entry });
        }
        let (bytes, tail) = tail.split_at(len);
        entries.push(bytes);
        rest = tail;
    }
    if entries.len() != usize::from(width) {
        return Err(BundleError::TooFewEntries {
            want: width,
            got: entries.len(),
        });
    }
    Ok(entries)
}

/// Checks that every entry of a bundle hashes to the hash at its position in the level-0 tile
/// of the same index (the tile's bytes must already have the right length).
pub fn check_bundle_against_tile(entries: &[&[u8]], level0_tile: &[u8]) -> Result<(), BundleError> {
    if level0_tile.len() != entries.len() * HASH_LEN {
        return Err(BundleError::TooFewEntries {
            want: u16::try_from(level0_tile.len() / HASH_LEN).unwrap_or(u16::MAX),
            got: entries.len(),
        });
    }
    for (position, (entry, tile_hash)) in entries
        .iter()
        .zip(level0_tile.chunks_exact(HASH_LEN))
        .enumerate()
    {
        if crate::hash::leaf_hash(entry).as_bytes() != tile_hash {
            return Err(BundleError::LeafHashMismatch { entry: position });
        }
    }
    Ok(())
}

/// Where a [`TileHashStore`] gets tile bytes: an HTTP client, a directory, a redb table.
pub trait TileReader {
    /// Whether [`TileReader::read_tile_hashes`] reads only the hashes asked for, for less than
    /// the whole tile (a database with a row per hash). A [`TileHashStore`] then reads each
    /// node's own hashes instead of whole tiles: a proof's lowest siblings need 1, 2, 4, ...
    /// hashes of a tile, not all 256 of it each time.
    const READS_PART_OF_A_TILE: bool = false;

    /// The bytes of one hash tile, exactly `tile.width * 32` long.
    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, StoreError>;

    /// Hashes `first..first + count` of `tile`, exactly `count * 32` bytes. The default reads
    /// the whole tile (HTTP, files); readers that can do better override it and say so with
    /// [`TileReader::READS_PART_OF_A_TILE`].
    fn read_tile_hashes(
        &self,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, StoreError> {
        let data = self.read_tile(tile)?;
        tile.check_len(&data)
            .map_err(|error| StoreError::Read(error.into()))?;
        data.get(first * HASH_LEN..(first + count) * HASH_LEN)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                StoreError::Read(format!("hashes {first}+{count} are outside tile {tile}").into())
            })
    }

    /// The root of the complete subtree over hashes `first..first + count` of `tile` (`count`
    /// a power of two, `first` a multiple of it). The default folds the hashes
    /// [`TileReader::read_tile_hashes`] returns; a reader that also stores some levels inside
    /// tiles overrides it to read fewer, higher hashes.
    fn subtree_root(&self, tile: Tile, first: usize, count: usize) -> Result<Hash, StoreError> {
        let data = self.read_tile_hashes(tile, first, count)?;
        match subtree_root(&data) {
            Some(root) if data.len() == count * HASH_LEN => Ok(root),
            _ => Err(StoreError::Read(
                format!(
                    "read {} bytes for {count} hashes of tile {tile}",
                    data.len()
                )
                .into(),
            )),
        }
    }
}

/// A [`HashStore`] over the tiles of a tree of known size: reads each needed tile once (at the
/// width that exists at that size) and derives inner hashes from it.
///
/// Tiles are not trusted: a proof computed from them verifies only if every hash it used was
/// right, so callers check proofs against a root from a verified checkpoint, as they would any
/// proof from a server.
#[derive(Debug)]
pub struct TileHashStore<R> {
    reader: R,
    size: TreeSize,
}

impl<R: TileReader> TileHashStore<R> {
    /// Hashes of the tree of `size`, read through `reader`.
    pub fn new(reader: R, size: TreeSize) -> TileHashStore<R> {
        TileHashStore { reader, size }
    }

    /// Where the hashes under `node` live: the tile, and the first position and count of its
    /// hashes in that tile.
    fn locate(&self, node: NodeId) -> Result<(Tile, usize, usize), StoreError> {
        if node.complete_at() > self.size {
            return Err(StoreError::Missing(node));
        }
        let tile_level = node.level / TILE_HEIGHT;
        let sub_level = node.level % TILE_HEIGHT;
        // The node is the root of 2^sub_level consecutive hashes of the tile level below it.
        let first = node.index << sub_level;
        let tile_index = first / u64::from(TILE_WIDTH);
        let tile =
            hash_tile_at(self.size, tile_level, tile_index).ok_or(StoreError::Missing(node))?;
        let position = usize::try_from(first % u64::from(TILE_WIDTH))
            .map_err(|_| StoreError::Missing(node))?;
        Ok((tile, position, 1 << sub_level))
    }
}

impl<R: TileReader> HashStore for TileHashStore<R> {
    fn node_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
        let hashes = self.node_hashes(&[node])?;
        hashes.into_iter().next().ok_or(StoreError::Missing(node))
    }

    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        let mut hashes = Vec::with_capacity(nodes.len());
        if R::READS_PART_OF_A_TILE {
            for &node in nodes {
                let (tile, position, count) = self.locate(node)?;
                hashes.push(self.reader.subtree_root(tile, position, count)?);
            }
            return Ok(hashes);
        }
        let mut tiles: BTreeMap<Tile, Vec<u8>> = BTreeMap::new();
        for &node in nodes {
            let (tile, position, count) = self.locate(node)?;
            let data = match tiles.entry(tile) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let data = self.reader.read_tile(tile)?;
                    tile.check_len(&data)
                        .map_err(|error| StoreError::Read(error.into()))?;
                    entry.insert(data)
                }
            };
            let slice = data
                .get(position * HASH_LEN..(position + count) * HASH_LEN)
                .ok_or(StoreError::Missing(node))?;
            hashes.push(subtree_root(slice).ok_or(StoreError::Missing(node))?);
        }
        Ok(hashes)
    }
}

/// The root of a complete subtree given its 2^k consecutive lowest hashes, concatenated; `None`
/// unless `data` is a power of two of whole hashes.
pub fn subtree_root(data: &[u8]) -> Option<Hash> {
    let count = data.len() / HASH_LEN;
    if !data.len().is_multiple_of(HASH_LEN) || !count.is_power_of_two() {
        return None;
    }
    let mut level: Vec<Hash> = data
        .chunks_exact(HASH_LEN)
        .map(Hash::from_slice)
        .collect::<Result<_, _>>()
        .ok()?;
    while level.len() > 1 {
        level = level.chunks_exact(2).map(fold_range).collect();
    }
    level.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::proof::{consistency_proof, inclusion_proof};
    use crate::tree::{LeafIndex, MemoryTree};

    #[test]
    fn index_paths_match_the_spec_examples() {
        assert_eq!(index_path(1234067), "x001/x234/067");
        assert_eq!(index_path(19669), "x019/669");
        assert_eq!(index_path(1000), "x001/000");
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
    }

    #[test]
    fn paths_round_trip() {
        let cases = [
            (Tile::hashes(0, 1234067, 256), "tile/0/x001/x234/067"),
            (
                Tile::hashes(15, 123456789, 41),
                "tile/15/x123/x456/789.p/41",
            ),
            (Tile::entries(19669, 256), "tile/entries/x019/669"),
            (Tile::entries(0, 1), "tile/entries/000.p/1"),
            (
                Tile::hashes(63, u64::MAX, 255),
                "tile/63/x018/x446/x744/x073/x709/x551/615.p/255",
            ),
        ];
        for (tile, path) in cases {
            assert_eq!(tile.path(), path);
            assert_eq!(Tile::from_path(path), Ok(tile), "{path}");
        }
    }

    #[test]
    fn malformed_paths_are_rejected_without_panicking() {
        let cases = [
            ("tile/0/000.p/0", TilePathError::Width),
            ("tile/0/000.p/256", TilePathError::Width),
            ("tile/0/000.p/01", TilePathError::Width),
            ("tile/0/000.p/", TilePathError::Width),
            ("tile/64/000", TilePathError::Level),
            ("tile/01/000", TilePathError::Level),
            ("tile/-1/000", TilePathError::Level),
            ("tile/8/0/000", TilePathError::IndexGroup("0".into())),
            ("tile/0/x000/001", TilePathError::IndexNotCanonical),
            ("tile/0/x001", TilePathError::IndexGroup("x001".into())),
            ("tile/0/001/002", TilePathError::IndexGroup("001".into())),
            ("tile/0/1", TilePathError::IndexGroup("1".into())),
            (
                "tile/0/x1000/000",
                TilePathError::IndexGroup("x1000".into()),
            ),
            (
                "tile/0/x018/x446/x744/x073/x709/x551/616",
                TilePathError::IndexNotCanonical,
            ),
            (
                "tile/0/x001/x001/x001/x001/x001/x001/x001/000",
                TilePathError::IndexNotCanonical,
            ),
            ("tile/data/000", TilePathError::Level),
            ("tile/0", TilePathError::Segments),
            ("tiles/0/000", TilePathError::Prefix),
            ("tile/0/000/", TilePathError::IndexGroup("000".into())),
        ];
        for (path, error) in cases {
            assert_eq!(Tile::from_path(path), Err(error), "{path}");
        }
    }

    #[test]
    fn tiles_of_size_70000_match_the_spec_example() {
        let tiles = tiles_for_size(TreeSize(70_000));
        let level0: Vec<_> = tiles
            .iter()
            .filter(|t| t.kind == TileKind::Hashes { level: 0 })
            .collect();
        assert_eq!(level0.len(), 274);
        assert_eq!(level0.iter().filter(|t| t.is_full()).count(), 273);
        assert_eq!(level0.last().unwrap().path(), "tile/0/273.p/112");
        let level1: Vec<_> = tiles
            .iter()
            .filter(|t| t.kind == TileKind::Hashes { level: 1 })
            .collect();
        assert_eq!(
            level1.iter().map(|t| t.path()).collect::<Vec<_>>(),
            ["tile/1/000", "tile/1/001.p/17"]
        );
        let level2: Vec<_> = tiles
            .iter()
            .filter(|t| t.kind == TileKind::Hashes { level: 2 })
            .collect();
        assert_eq!(
            level2.iter().map(|t| t.path()).collect::<Vec<_>>(),
            ["tile/2/000.p/1"]
        );
        assert_eq!(tiles.len(), 274 + 2 + 1);
    }

    #[test]
    fn new_tiles_are_exactly_the_changed_ones() {
        assert_eq!(new_tiles(TreeSize(5), TreeSize(5)), vec![]);
        assert_eq!(
            new_tiles(TreeSize(5), TreeSize(6)),
            vec![Tile::hashes(0, 0, 6)]
        );
        assert_eq!(
            new_tiles(TreeSize(255), TreeSize(257)),
            vec![
                Tile::hashes(0, 0, 256),
                Tile::hashes(0, 1, 1),
                Tile::hashes(1, 0, 1)
            ]
        );
        // Everything published along the way, deduplicated, covers the final tiles.
        let mut published = std::collections::BTreeSet::new();
        let mut size = 0;
        for step in [1u64, 7, 300, 5000, 1, 70_000] {
            published.extend(new_tiles(TreeSize(size), TreeSize(size + step)));
            size += step;
        }
        for tile in tiles_for_size(TreeSize(size)) {
            assert!(published.contains(&tile), "{tile} never published");
        }
    }

    fn tree(size: u64) -> MemoryTree {
        let mut log = MemoryTree::new();
        for i in 0..size {
            log.append(leaf_hash(&i.to_le_bytes())).unwrap();
        }
        log
    }

    /// Tiles served from a fully stored tree, counting reads.
    struct StoreTiles<'a> {
        store: &'a crate::tree::MemoryHashStore,
        reads: std::cell::Cell<usize>,
    }

    impl TileReader for StoreTiles<'_> {
        fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, StoreError> {
            self.reads.set(self.reads.get() + 1);
            tile_data(self.store, tile)
        }
    }

    /// Inclusion and consistency proofs and the root at `size` from `tiles` equal those from
    /// the fully stored tree.
    fn assert_same_proofs(tiles: &impl HashStore, store: &crate::tree::MemoryHashStore, size: u64) {
        for index in [0, size / 3, size - 1] {
            assert_eq!(
                inclusion_proof(tiles, LeafIndex(index), TreeSize(size)).unwrap(),
                inclusion_proof(store, LeafIndex(index), TreeSize(size)).unwrap()
            );
        }
        for old in [1, size / 2, size - 1].into_iter().filter(|&old| old > 0) {
            assert_eq!(
                consistency_proof(tiles, TreeSize(old), TreeSize(size)).unwrap(),
                consistency_proof(store, TreeSize(old), TreeSize(size)).unwrap()
            );
        }
        assert_eq!(
            crate::tree::root_at(tiles, TreeSize(size)).unwrap(),
            crate::tree::root_at(store, TreeSize(size)).unwrap()
        );
    }

    #[test]
    fn proofs_from_tiles_equal_proofs_from_the_store() {
        let log = tree(70_000);
        for size in [1u64, 255, 256, 257, 65_536, 65_537, 70_000] {
            let tiles = TileHashStore::new(
                StoreTiles {
                    store: &log.store,
                    reads: std::cell::Cell::new(0),
                },
                TreeSize(size),
            );
            assert_same_proofs(&tiles, &log.store, size);
        }
    }

    /// Tiles served a few hashes at a time from a fully stored tree, counting hashes read.
    struct StoreHashes<'a> {
        store: &'a crate::tree::MemoryHashStore,
        hashes_read: std::cell::Cell<usize>,
    }

    impl TileReader for &StoreHashes<'_> {
        const READS_PART_OF_A_TILE: bool = true;

        fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, StoreError> {
            self.hashes_read
                .set(self.hashes_read.get() + usize::from(tile.width));
            tile_data(self.store, tile)
        }

        fn read_tile_hashes(
            &self,
            tile: Tile,
            first: usize,
            count: usize,
        ) -> Result<Vec<u8>, StoreError> {
            self.hashes_read.set(self.hashes_read.get() + count);
            let data = tile_data(self.store, tile)?;
            Ok(data[first * HASH_LEN..(first + count) * HASH_LEN].to_vec())
        }
    }

    #[test]
    fn proofs_from_parts_of_tiles_equal_proofs_from_the_store() {
        let log = tree(70_000);
        for size in [1u64, 255, 256, 257, 65_536, 65_537, 70_000] {
            let reader = StoreHashes {
                store: &log.store,
                hashes_read: std::cell::Cell::new(0),
            };
            let tiles = TileHashStore::new(&reader, TreeSize(size));
            assert_same_proofs(&tiles, &log.store, size);
        }
        // Remembered inner hashes leave a neighbour's proof one hash to read (its level-0
        // sibling), where a whole-tile reader would read the 256 of its tile again.
        let reader = StoreHashes {
            store: &log.store,
            hashes_read: std::cell::Cell::new(0),
        };
        let tiles = crate::tree::MemoHashStore::new(TileHashStore::new(&reader, TreeSize(70_000)));
        inclusion_proof(&tiles, LeafIndex(12_344), TreeSize(70_000)).unwrap();
        let before = reader.hashes_read.get();
        inclusion_proof(&tiles, LeafIndex(12_345), TreeSize(70_000)).unwrap();
        assert_eq!(reader.hashes_read.get() - before, 1);
    }

    #[test]
    fn a_proof_reads_few_tiles() {
        let log = tree(70_000);
        let reader = StoreTiles {
            store: &log.store,
            reads: std::cell::Cell::new(0),
        };
        let tiles = TileHashStore::new(reader, TreeSize(70_000));
        inclusion_proof(&tiles, LeafIndex(12_345), TreeSize(70_000)).unwrap();
        // One tile per level on the path, plus the right edge: a handful, not hundreds.
        assert!(
            tiles.reader.reads.get() <= 6,
            "{} tiles read",
            tiles.reader.reads.get()
        );
    }

    #[test]
    fn short_tiles_are_an_error_not_a_panic() {
        struct Short;
        impl TileReader for Short {
            fn read_tile(&self, _: Tile) -> Result<Vec<u8>, StoreError> {
                Ok(vec![0; 31])
            }
        }
        let tiles = TileHashStore::new(Short, TreeSize(10));
        assert!(matches!(
            inclusion_proof(&tiles, LeafIndex(3), TreeSize(10)),
            Err(crate::proof::ProofError::Store(StoreError::Read(_)))
        ));
        assert!(matches!(
            tiles.node_hash(NodeId::new(0, 10)),
            Err(StoreError::Missing(_))
        ));
    }

    #[test]
    fn tile_data_concatenates_level_hashes() {
        let log = tree(600);
        let tile = Tile::hashes(1, 0, 2);
        let data = tile_data(&log.store, tile).unwrap();
        assert_eq!(data.len(), 64);
        let level0 = tile_data(&log.store, Tile::hashes(0, 0, 256)).unwrap();
        assert_eq!(&data[..32], subtree_root(&level0).unwrap().as_bytes());
    }

    #[test]
    fn bundles_round_trip_and_match_their_tile() {
        let entries: Vec<Vec<u8>> = (0..=255u8).map(|i| vec![i; usize::from(i % 7)]).collect();
        let bundle = encode_bundle(&entries).unwrap();
        let decoded = decode_bundle(&bundle, 256).unwrap();
        assert_eq!(
            decoded,
            entries.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );

        let mut log = MemoryTree::new();
        for entry in &entries {
            log.append(leaf_hash(entry)).unwrap();
        }
        let tile = tile_data(&log.store, Tile::hashes(0, 0, 256)).unwrap();
        check_bundle_against_tile(&decoded, &tile).unwrap();
        let mut swapped = decoded.clone();
        swapped.swap(3, 4);
        assert_eq!(
            check_bundle_against_tile(&swapped, &tile),
            Err(BundleError::LeafHashMismatch { entry: 3 })
        );
    }

    #[test]
    fn malformed_bundles_are_rejected() {
        assert_eq!(
            decode_bundle(&[0, 5, 1, 2], 1),
            Err(BundleError::Truncated { entry: 0 })
        );
        assert_eq!(
            decode_bundle(&[0, 0, 0], 2),
            Err(BundleError::Truncated { entry: 1 })
        );
        assert_eq!(
            decode_bundle(&[0, 0, 0, 0], 1),
            Err(BundleError::TooManyEntries { width: 1 })
        );
        assert_eq!(
            decode_bundle(&[0, 0], 2),
            Err(BundleError::TooFewEntries { want: 2, got: 1 })
        );
        assert_eq!(
            encode_bundle(&[vec![0u8; 65_536]]),
            Err(BundleError::EntryTooLarge {
                entry: 0,
                len: 65_536
            })
        );
        assert_eq!(
            encode_bundle(&vec![b"x"; 257]),
            Err(BundleError::TooManyEntries { width: 256 })
        );
    }
}
