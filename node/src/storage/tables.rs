//! The redb table layout of both databases, and the postcard encoding of every internal value.
//!
//! Keys use redb's native ordered types: `u64` keys compare numerically, and tuple keys compare
//! element by element, so one log's rows are contiguous and in index order (range scans for
//! tiles, bundles, `truncate` and `purge`). Values that are not plain integers are bytes: either
//! postcard (internal structures, never part of the public tree) or raw bytes whose format is
//! public (canonical leaf bodies, 32-byte hashes). Every decode checks length or trailing bytes,
//! so corrupt rows are an error naming the table and key, never a panic.

use redb::TableDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tlog::Hash;

use super::DiskError;

// ---- raft-log.redb ----

/// Raft log entries: log index → postcard `openraft::Entry<TypeConfig>`.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Raft log metadata: [`VOTE`], [`COMMITTED`], [`LAST_PURGED`] → postcard values.
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `LOG_META` key of the vote (`Vote<NodeId>`).
pub(crate) const VOTE: &str = "vote";
/// `LOG_META` key of the last committed log id (`Option<LogId<NodeId>>`).
pub(crate) const COMMITTED: &str = "committed";
/// `LOG_META` key of the last purged log id (`LogId<NodeId>`).
pub(crate) const LAST_PURGED: &str = "last_purged";

// ---- state.redb ----

/// Leaves are in `leaf_stream`'s two tables. Before it, a row per leaf: (log name, leaf index)
/// → canonical leaf body. A database that has this table is moved to the stream when opened
/// (`reindex::move_leaf_rows`).
pub(crate) const OLD_LEAVES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("leaves");
/// Tile hashes: (log name, Merkle level, node index) → 32-byte hash. Only Merkle levels that are
/// multiples of 4 are stored (`state_machine::STORED_LEVEL_STEP`: the tile levels and the
/// levels halfway up each tile), and level 0 (the leaf hashes) is in `leaf_stream`'s
/// directory; every other hash is derived from them.
pub(crate) const TILE_HASHES: TableDefinition<(&str, u8, u64), &[u8]> =
    TableDefinition::new("tile_hashes");
/// Integrated times: (log name, index of the first new leaf of a batch) → the batch's
/// `timestamp_unix_ms`, chosen by the leader and carried in the command. One row per batch: a
/// leaf's time is the row at or before its index. The value [`TIME_UNKNOWN`] marks leaves this
/// replica fetched through snapshot catch-up, whose entry bundles carry no times.
pub(crate) const BATCH_TIMES: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("batch_times");
/// A [`BATCH_TIMES`] value: the time of these leaves is not known on this replica.
pub(crate) const TIME_UNKNOWN: u64 = 0;
/// The leaf index's tail (`leaf_index`): (log name, leaf index) → the leaf's index keys (8
/// bytes each: its dedup key, then its search keys), one row per leaf not yet in a run.
pub(crate) const INDEX_TAIL: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("index_tail");
/// The leaf index's runs: (log name, run id, first index key, first leaf index) → a block of
/// sorted (index key, leaf index) pairs, 16 bytes each.
pub(crate) const INDEX_BLOCKS: TableDefinition<(&str, u64, u64, u64), &[u8]> =
    TableDefinition::new("index_blocks");
/// The leaf index's bookkeeping: log name → postcard `leaf_index::IndexMeta`.
pub(crate) const INDEX_META: TableDefinition<&str, &[u8]> = TableDefinition::new("index_meta");
/// Tables of the index layout before `leaf_index` (a dedup B-tree keyed by leaf hash and a
/// search B-tree keyed by key hash): deleted when a database that has them is opened, and the
/// index rebuilt from the leaves.
pub(crate) const OLD_LEAF_INDEX: &str = "leaf_index";
/// See [`OLD_LEAF_INDEX`].
pub(crate) const OLD_SEARCH: &str = "search";
/// Log heads: log name → postcard `LogHead`.
pub(crate) const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("heads");
/// State-machine metadata: [`LAST_APPLIED`], [`LAST_MEMBERSHIP`] → postcard values.
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// `SM_META` key of the last applied log id (`Option<LogId<NodeId>>`).
pub(crate) const LAST_APPLIED: &str = "last_applied";
/// `SM_META` key of the last membership (`StoredMembership<NodeId, NodeAddress>`).
pub(crate) const LAST_MEMBERSHIP: &str = "last_membership";
/// `SM_META` key of the rotations applied (postcard `lifecycle::Lifecycle`); absent before
/// the first.
pub(crate) const LIFECYCLE: &str = "log_lifecycle";
/// `SM_META` key present once every stored leaf below the heads has its rows in the leaf index
/// of this layout (a database from before it gets them when it is first opened).
pub(crate) const LEAF_INDEX_BUILT: &str = "leaf_index_v2";
/// `SM_META` key present once every stored leaf's complete subtrees at the levels halfway up
/// the tiles have their [`TILE_HASHES`] rows (a database from before them gets them when it
/// is first opened, `reindex::store_middle_hashes`).
pub(crate) const MIDDLE_HASHES_BUILT: &str = "tile_hashes_middle_levels";
/// The current snapshot: [`SNAPSHOT_META`] → postcard `SnapshotMeta`, [`SNAPSHOT_DATA`] → its
/// descriptor, [`SNAPSHOT_SEQ`] → postcard `u64` counter for unique snapshot ids, and the
/// pending install ([`PENDING_META`], [`PENDING_DATA`]).
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
/// `SNAPSHOT` key of the current snapshot's meta.
pub(crate) const SNAPSHOT_META: &str = "meta";
/// `SNAPSHOT` key of the current snapshot's data.
pub(crate) const SNAPSHOT_DATA: &str = "data";
/// `SNAPSHOT` key of the number of snapshots built so far.
pub(crate) const SNAPSHOT_SEQ: &str = "seq";
/// `SNAPSHOT` key of the meta of a snapshot whose install began but has not finished (leaves
/// beyond the heads may be stored, unverified); present only during an install, and an
/// install interrupted by a crash is resumed from it before anything else reads the state.
pub(crate) const PENDING_META: &str = "pending_meta";
/// `SNAPSHOT` key of the descriptor of the pending install.
pub(crate) const PENDING_DATA: &str = "pending_data";
/// `SNAPSHOT` key of the members a pending install may fetch from, beyond the snapshot's own
/// (the members the node knew when the install began), so that a resumed install can reach
/// the current cluster before Raft has told the restarted node anything.
pub(crate) const PENDING_MEMBERS: &str = "pending_members";

/// Encodes an internal value with postcard.
pub(crate) fn encode<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, DiskError> {
    postcard::to_stdvec(value).map_err(|source| DiskError::Encode { what, source })
}

/// Decodes an internal value read from `table` at `key`; trailing bytes are corruption too.
pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &dyn std::fmt::Display,
    bytes: &[u8],
) -> Result<T, DiskError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DiskError::corrupt(
            table,
            key,
            format!("{} trailing bytes", rest.len()),
        )),
        Err(error) => Err(DiskError::corrupt(table, key, error.to_string())),
    }
}

/// A stored 32-byte hash.
pub(crate) fn decode_hash(
    table: &'static str,
    key: &dyn std::fmt::Display,
    bytes: &[u8],
) -> Result<Hash, DiskError> {
    Hash::from_slice(bytes).map_err(|error| DiskError::corrupt(table, key, error.to_string()))
}
