//! Snapshots of the state machine: a small descriptor, and the transactions of an install.
//!
//! A transparency log's state grows without bound, so a snapshot is not the state: it is a
//! [`Descriptor`]: the last applied log id, the last membership and, per log, its [`LogHead`]
//! (size, right edge, root, signed checkpoint). Its size depends on the number of logs, not
//! entries. The log itself is append-only and served by every member as C2SP entry bundles, so
//! a node installing a snapshot fetches the leaves it lacks from the members the snapshot lists
//! (`crate::catch_up`'s installer, through the `BundleSource` seam) and hands them to this
//! module's transactions ([`begin`], [`append_chunk`], [`finish`]), which append them through
//! the same routine as apply (`state_machine::append_leaf`).
//!
//! Durability contract (§3.2), and why an install is safe although it spans many transactions:
//! - `build_snapshot` reads the descriptor from one redb read transaction (apply continues
//!   meanwhile) and stores it as current in an `Immediate` transaction, unless a newer one is
//!   already stored.
//! - `install_snapshot` first records the snapshot as *pending* (`Immediate`), then appends the
//!   fetched leaves (several bundles in flight at a time, [`CatchUpPolicy`]) in bounded write
//!   transactions (a chunk of bundles each; one every [`LEAVES_PER_DURABLE_COMMIT`] leaves is
//!   `Immediate`, the others are made durable by the next `Immediate` one), so memory stays
//!   O(chunk). These rows sit *beyond* the heads, and every read is bounded by a head, so
//!   nothing unverified is ever visible. Once the recomputed root at the descriptor's size
//!   equals the descriptor's (whose checkpoint verified against the log's own key), the
//!   verified leaves are indexed (`leaf_index`, still invisible), and one final `Immediate`
//!   transaction writes the heads, last applied, last membership and current snapshot and
//!   clears the pending record.
//! - openraft considers a snapshot installed as soon as it hands it over (it may purge the Raft
//!   log the snapshot covers before the install finishes), so an install interrupted by a crash
//!   must finish before the node does anything else: `applied_state` (openraft's first read at
//!   startup) resumes a pending install, reusing the leaves already stored beyond the heads
//!   (recomputed and verified like fetched ones, refetched if the root does not match), and
//!   apply refuses to run while an install is pending.

use std::collections::BTreeMap;
use std::fmt::Debug;

use openraft::{
    AnyError, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use tlog::tile::TileHashStore;
use tlog::{Hash, Tree, TreeSize};

use super::rows::{RedbState, applied_state, read_head, read_lifecycle, write_lifecycle};
use super::tables::{
    HEADS, LAST_APPLIED, LAST_MEMBERSHIP, PENDING_DATA, PENDING_MEMBERS, PENDING_META, SM_META,
    SNAPSHOT, SNAPSHOT_DATA, SNAPSHOT_META, SNAPSHOT_SEQ, decode, encode,
};
use super::{DiskError, SharedDb, begin_immediate};
use crate::catch_up::BatchTimes;
use crate::env::Blocking;
use crate::lifecycle::Lifecycle;
use crate::state_machine::{self, LogConfig, LogHead, Logs, StateAccess};
use crate::types::{LogName, NodeAddress, NodeId, TypeConfig};

/// The largest descriptor accepted: a descriptor is O(logs) (a head is at most 64 edge hashes
/// and a checkpoint), so anything near this bound is not one.
pub const DESCRIPTOR_BYTES_MAX: usize = 1024 * 1024;

/// A catch-up transaction that passes a multiple of this many leaves commits durably: bounds
/// what a crash loses and lets redb reclaim pages freed by the non-durable commits in between.
pub const LEAVES_PER_DURABLE_COMMIT: u64 = 16_384;

/// The snapshot data format this node writes, and the newest it reads. Format 1 is a bare
/// [`Descriptor`] (which starts with an `Option` tag, 0 or 1); a later format starts with
/// [`SNAPSHOT_FORMAT_TAG`] and its number, so that a node that does not know it refuses the
/// snapshot with an error that says so (an install that fails stops the node) instead of
/// misreading it. Format 1 is still written without the tag: every version reads it.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The first byte of snapshot data in a format after 1.
pub const SNAPSHOT_FORMAT_TAG: u8 = 0xCA;

/// The snapshot payload: what a node needs to know to catch up, not the state itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The last log id applied to the state described.
    pub last_applied: Option<LogId<NodeId>>,
    /// The last membership applied; its nodes are where the leaves are fetched from.
    pub last_membership: StoredMembership<NodeId, NodeAddress>,
    /// Every log that has leaves, in name order, with its head.
    pub heads: Vec<(LogName, LogHead)>,
}

pub(crate) type Meta = SnapshotMeta<NodeId, NodeAddress>;

/// Why a snapshot could not be installed. The state is unchanged (leaves fetched so far may be
/// stored beyond the heads, invisible, and are reused or overwritten by the next attempt).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatchUpError {
    /// The descriptor is malformed, does not match its meta, or names an unknown log.
    #[error("snapshot descriptor: {0}")]
    Descriptor(String),
    /// A head's signed checkpoint does not verify against the log's key or does not match it.
    #[error("snapshot head of log {log}: {reason}")]
    Checkpoint {
        /// The log.
        log: LogName,
        /// What failed.
        reason: String,
    },
    /// The snapshot is older than what this node has applied.
    #[error("snapshot at {snapshot:?} is older than the applied state at {applied:?}")]
    Stale {
        /// The snapshot's last log id.
        snapshot: Option<LogId<NodeId>>,
        /// This node's last applied log id.
        applied: Option<LogId<NodeId>>,
    },
    /// This node's head of a log is not a prefix of the snapshot's (larger, or a different root
    /// at the same size): the replicas disagree about committed state.
    #[error(
        "log {log}: local head (size {local_size}, root {local_root}) is not a prefix of the \
         snapshot's (size {snapshot_size}, root {snapshot_root})"
    )]
    Diverged {
        /// The log.
        log: LogName,
        /// The local size.
        local_size: u64,
        /// The local root.
        local_root: Hash,
        /// The snapshot's size.
        snapshot_size: u64,
        /// The snapshot's root.
        snapshot_root: Hash,
    },
    /// No member served a bundle, in any round.
    #[error("log {log}: no member served entry bundle {index} (width {width}): {tried}")]
    Unavailable {
        /// The log.
        log: LogName,
        /// The bundle's index.
        index: u64,
        /// The bundle's width.
        width: u16,
        /// What each member answered.
        tried: String,
    },
    /// The leaves fetched do not give the snapshot's root, in any round.
    #[error(
        "log {log}: leaves fetched give root {computed} at size {size}, snapshot says {expected}"
    )]
    RootMismatch {
        /// The log.
        log: LogName,
        /// The tree size.
        size: u64,
        /// The root recomputed from the leaves.
        computed: Hash,
        /// The descriptor's root.
        expected: Hash,
    },
    /// Apply was asked to run while an install is pending (it must finish first).
    #[error("a snapshot install is pending")]
    Pending,
}

/// Builds snapshots of the state machine; openraft runs it in its own task.
pub struct SnapshotBuilder {
    db: SharedDb,
    blocking: Blocking,
}

impl Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

impl SnapshotBuilder {
    pub(crate) fn new(db: SharedDb, blocking: Blocking) -> SnapshotBuilder {
        SnapshotBuilder { db, blocking }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let db = self.db.clone();
        let (meta, data) = self
            .blocking
            .run(move || build(&db))
            .await
            .map_err(|error| StorageIOError::write_snapshot(None, AnyError::new(&error)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(std::io::Cursor::new(data)),
        })
    }
}

/// The state as of one read transaction, described, with the rotations applied.
fn describe(db: &Database) -> Result<(Descriptor, Lifecycle), DiskError> {
    let txn = db.begin_read()?;
    let meta_table = txn.open_table(SM_META)?;
    let (last_applied, last_membership) = applied_state(&meta_table)?;
    let lifecycle = read_lifecycle(&meta_table)?;
    let mut heads = Vec::new();
    for row in txn.open_table(HEADS)?.iter()? {
        let (key, value) = row?;
        let head: LogHead = decode("heads", &key.value(), value.value())?;
        heads.push((LogName(key.value().to_owned()), head));
    }
    let descriptor = Descriptor {
        last_applied,
        last_membership,
        heads,
    };
    Ok((descriptor, lifecycle))
}

/// A snapshot of the state as of one read transaction, not stored: what `cairn-node backup`
/// copies the leaves up to (the log is append-only, so leaves fetched later up to these heads
/// are exactly the ones described).
pub(crate) fn backup_snapshot(db: &Database) -> Result<(Meta, Vec<u8>), DiskError> {
    let (descriptor, lifecycle) = describe(db)?;
    let data = join_data(
        &encode("snapshot descriptor", &descriptor)?,
        &[],
        &lifecycle,
    )?;
    let meta = Meta {
        last_log_id: descriptor.last_applied,
        last_membership: descriptor.last_membership,
        snapshot_id: match descriptor.last_applied {
            Some(log_id) => format!("backup-{}-{}", log_id.leader_id, log_id.index),
            None => "backup-none".into(),
        },
    };
    Ok((meta, data))
}

/// Forgets which cluster the state belongs to (last applied log id, last membership, the
/// current snapshot) and keeps the logs, for a restore into a new cluster: openraft
/// initialises only a node that has no log id at all. Refused while an install is pending.
pub(crate) fn forget_cluster(db: &Database) -> Result<(), DiskError> {
    let txn = begin_immediate(db)?;
    {
        let mut snapshot = txn.open_table(SNAPSHOT)?;
        if snapshot.get(PENDING_META)?.is_some() {
            return Err(DiskError::Missing(
                "the end of a pending snapshot install".into(),
            ));
        }
        for key in [SNAPSHOT_META, SNAPSHOT_DATA] {
            snapshot.remove(key)?;
        }
        let mut meta = txn.open_table(SM_META)?;
        for key in [LAST_APPLIED, LAST_MEMBERSHIP] {
            meta.remove(key)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Describes the state as of one read transaction and stores it as the current snapshot.
fn build(db: &Database) -> Result<(Meta, Vec<u8>), DiskError> {
    let (descriptor, lifecycle) = describe(db)?;
    let data = join_data(
        &encode("snapshot descriptor", &descriptor)?,
        &[],
        &lifecycle,
    )?;

    let txn = begin_immediate(db)?;
    let meta = {
        let mut table = txn.open_table(SNAPSHOT)?;
        let seq: u64 = match table.get(SNAPSHOT_SEQ)? {
            Some(bytes) => decode("snapshot", &SNAPSHOT_SEQ, bytes.value())?,
            None => 0,
        };
        let seq = seq + 1;
        let meta = Meta {
            last_log_id: descriptor.last_applied,
            last_membership: descriptor.last_membership,
            snapshot_id: match descriptor.last_applied {
                Some(log_id) => format!("{}-{}-{seq}", log_id.leader_id, log_id.index),
                None => format!("none-{seq}"),
            },
        };
        table.insert(SNAPSHOT_SEQ, encode("snapshot seq", &seq)?.as_slice())?;
        // A snapshot installed while this one was built may be newer: keep the newest.
        let stored: Option<Meta> = match table.get(SNAPSHOT_META)? {
            Some(bytes) => Some(decode("snapshot", &SNAPSHOT_META, bytes.value())?),
            None => None,
        };
        if stored.is_none_or(|stored| stored.last_log_id <= meta.last_log_id) {
            table.insert(SNAPSHOT_META, encode("snapshot meta", &meta)?.as_slice())?;
            table.insert(SNAPSHOT_DATA, data.as_slice())?;
        }
        meta
    };
    txn.commit()?;
    Ok((meta, data))
}

/// The current snapshot (built here or installed), if any.
pub(crate) fn current(db: &Database) -> Result<Option<(Meta, Vec<u8>)>, DiskError> {
    read_pair(db, SNAPSHOT_META, SNAPSHOT_DATA)
}

/// The install that began and did not finish, if any.
pub(crate) fn pending(db: &Database) -> Result<Option<(Meta, Vec<u8>)>, DiskError> {
    read_pair(db, PENDING_META, PENDING_DATA)
}

fn read_pair(
    db: &Database,
    meta_key: &'static str,
    data_key: &'static str,
) -> Result<Option<(Meta, Vec<u8>)>, DiskError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT)?;
    let Some(meta) = table.get(meta_key)? else {
        return Ok(None);
    };
    let meta: Meta = decode("snapshot", &meta_key, meta.value())?;
    let data = table
        .get(data_key)?
        .ok_or_else(|| DiskError::Missing(format!("snapshot row {data_key}")))?
        .value()
        .to_vec();
    Ok(Some((meta, data)))
}

/// The parts of a snapshot's data: the descriptor, then (optionally) the members the sender
/// appended ([`with_members`]), then (optionally, after members) the rotations applied
/// (`crate::lifecycle`), which a state that never rotated leaves out, so that its snapshots
/// are byte for byte what they were before rotations existed. Public for the fuzz targets
/// (`fuzz/`).
pub fn split_data(data: &[u8]) -> Result<(Descriptor, Vec<NodeAddress>, Lifecycle), String> {
    let data = match data {
        [SNAPSHOT_FORMAT_TAG, rest @ ..] => {
            let (format, rest) = postcard::take_from_bytes::<u32>(rest)
                .map_err(|error| format!("format does not decode: {error}"))?;
            if format > SNAPSHOT_FORMAT {
                return Err(format!(
                    "format {format}, from a newer cairn-node; this node reads formats up to \
                     {SNAPSHOT_FORMAT}: upgrade it"
                ));
            }
            rest
        }
        data => data,
    };
    let (descriptor, rest) = postcard::take_from_bytes::<Descriptor>(data)
        .map_err(|error| format!("does not decode: {error}"))?;
    let (members, rest) = match rest {
        [] => (Vec::new(), rest),
        rest => postcard::take_from_bytes::<Vec<NodeAddress>>(rest)
            .map_err(|error| format!("members do not decode: {error}"))?,
    };
    let lifecycle = match rest {
        [] => Lifecycle::default(),
        rest => match postcard::take_from_bytes::<Lifecycle>(rest) {
            Ok((lifecycle, [])) => lifecycle,
            Ok((_, rest)) => return Err(format!("{} trailing bytes", rest.len())),
            Err(error) => return Err(format!("rotations do not decode: {error}")),
        },
    };
    Ok((descriptor, members, lifecycle))
}

/// A snapshot's data from an encoded descriptor, the members and the rotations.
fn join_data(
    descriptor: &[u8],
    members: &[NodeAddress],
    lifecycle: &Lifecycle,
) -> Result<Vec<u8>, DiskError> {
    let mut out = descriptor.to_vec();
    if !members.is_empty() || !lifecycle.rotations.is_empty() {
        out.extend(encode("snapshot members", &members.to_vec())?);
    }
    if !lifecycle.rotations.is_empty() {
        out.extend(encode("snapshot rotations", lifecycle)?);
    }
    Ok(out)
}

/// A snapshot's data as a leader sends it: the stored descriptor, then the members the leader
/// knows now, so that the receiver can fetch leaves from the current cluster even when every
/// member the snapshot lists has since been removed, then the rotations. The members are
/// hints: what they serve is checked against the descriptor's signed roots.
pub(crate) fn with_members(data: &[u8], members: &[NodeAddress]) -> Result<Vec<u8>, DiskError> {
    let corrupt = |error: String| DiskError::corrupt("snapshot", &SNAPSHOT_DATA, error);
    let (_, rest) = postcard::take_from_bytes::<Descriptor>(data)
        .map_err(|error| corrupt(error.to_string()))?;
    let descriptor = data.get(..data.len() - rest.len()).unwrap_or(data);
    let (_, _, lifecycle) = split_data(data).map_err(corrupt)?;
    let mut out = descriptor.to_vec();
    out.extend(encode("snapshot members", &members.to_vec())?);
    if !lifecycle.rotations.is_empty() {
        out.extend(encode("snapshot rotations", &lifecycle)?);
    }
    Ok(out)
}

/// Decodes a descriptor and checks everything that can be checked without the leaves: it
/// matches its meta, names only this cluster's logs, once each and in order, and each head is
/// self-consistent (its edge gives its root) and carries a checkpoint signed by the log's key
/// over exactly that size and root; and the rotations name only this node's logs.
pub(crate) fn check_descriptor(
    logs: &Logs,
    meta: &Meta,
    data: &[u8],
) -> Result<(Descriptor, Vec<NodeAddress>), CatchUpError> {
    let bad = |reason: String| CatchUpError::Descriptor(reason);
    if data.len() > DESCRIPTOR_BYTES_MAX {
        return Err(bad(format!(
            "{} bytes, more than {DESCRIPTOR_BYTES_MAX}",
            data.len()
        )));
    }
    let (descriptor, members, lifecycle) = split_data(data).map_err(bad)?;
    for record in &lifecycle.rotations {
        for log in [&record.log, &record.successor] {
            if logs.get(log).is_none() {
                return Err(bad(format!(
                    "a rotation names log {log}, which is not configured on this node"
                )));
            }
        }
    }
    if descriptor.last_applied != meta.last_log_id {
        return Err(bad(format!(
            "meta says last log id {:?}, descriptor {:?}",
            meta.last_log_id, descriptor.last_applied
        )));
    }
    if descriptor.last_membership != meta.last_membership {
        return Err(bad(format!(
            "meta says membership {:?}, descriptor {:?}",
            meta.last_membership, descriptor.last_membership
        )));
    }
    let mut previous: Option<&LogName> = None;
    for (log, head) in &descriptor.heads {
        if previous.is_some_and(|previous| previous >= log) {
            return Err(bad(format!("log {log} out of order or repeated")));
        }
        previous = Some(log);
        let config = logs
            .get(log)
            .ok_or_else(|| bad(format!("unknown log {log}")))?;
        check_head(config, head).map_err(|reason| CatchUpError::Checkpoint {
            log: log.clone(),
            reason,
        })?;
    }
    Ok((descriptor, members))
}

fn check_head(config: &LogConfig, head: &LogHead) -> Result<(), String> {
    if head.tree_size == 0 {
        return Err("a head of size 0".into());
    }
    let tree = Tree::from_edge(TreeSize(head.tree_size), head.edge.clone())
        .map_err(|error| format!("edge: {error}"))?;
    if tree.root() != head.root {
        return Err(format!(
            "edge gives root {}, head says {}",
            tree.root(),
            head.root
        ));
    }
    let verifiers = config
        .verifiers()
        .map_err(|error| format!("log key: {error}"))?;
    let signed = tlog::checkpoint::open(head.checkpoint.as_bytes(), &verifiers)
        .map_err(|error| format!("checkpoint: {error}"))?;
    let checkpoint = &signed.checkpoint;
    if checkpoint.origin != config.origin
        || checkpoint.size.0 != head.tree_size
        || checkpoint.root != head.root
    {
        return Err(format!(
            "checkpoint is for ({}, {}, {}), head is ({}, {}, {})",
            checkpoint.origin,
            checkpoint.size.0,
            checkpoint.root,
            config.origin,
            head.tree_size,
            head.root
        ));
    }
    Ok(())
}

/// Refuses a snapshot older than the applied state, records it as pending, and returns every
/// configured log's current head.
/// Also records `members` with the pending install (keeping those an interrupted install
/// recorded) and returns the members recorded before.
#[allow(clippy::type_complexity)]
pub(crate) fn begin(
    db: &Database,
    logs: &Logs,
    meta: &Meta,
    data: &[u8],
    members: &[NodeAddress],
) -> Result<(BTreeMap<LogName, Option<LogHead>>, Vec<NodeAddress>), DiskError> {
    let txn = begin_immediate(db)?;
    let result = {
        let (applied, _) = applied_state(&txn.open_table(SM_META)?)?;
        if applied > meta.last_log_id {
            return Err(CatchUpError::Stale {
                snapshot: meta.last_log_id,
                applied,
            }
            .into());
        }
        let mut snapshot = txn.open_table(SNAPSHOT)?;
        let remembered: Vec<NodeAddress> = match snapshot.get(PENDING_MEMBERS)? {
            Some(bytes) => decode("pending members", &PENDING_MEMBERS, bytes.value())?,
            None => Vec::new(),
        };
        let mut all = remembered.clone();
        for member in members {
            if !all.contains(member) {
                all.push(member.clone());
            }
        }
        snapshot.insert(PENDING_META, encode("snapshot meta", meta)?.as_slice())?;
        snapshot.insert(PENDING_DATA, data)?;
        snapshot.insert(PENDING_MEMBERS, encode("pending members", &all)?.as_slice())?;
        let table = txn.open_table(HEADS)?;
        let mut heads = BTreeMap::new();
        for config in logs.iter() {
            heads.insert(config.name.clone(), read_head(&table, &config.name)?);
        }
        (heads, remembered)
    };
    txn.commit()?;
    Ok(result)
}

/// Leaves `[first, end)` of `log` that are stored, up to the first one that is not.
pub(crate) fn stored_leaves(
    db: &Database,
    log: &LogName,
    first: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, DiskError> {
    let txn = db.begin_read()?;
    let directory = txn.open_table(super::leaf_stream::LEAF_DIRECTORY)?;
    let chunks = txn.open_table(super::leaf_stream::LEAF_CHUNKS)?;
    let name = log.0.as_str();
    let end = end.min(super::leaf_stream::stored_leaves(&directory, name)?);
    if first >= end {
        return Ok(Vec::new());
    }
    super::leaf_stream::read_leaves(&chunks, &directory, name, first, end)
}

/// A leaf fetched for an install, with what apply would derive from it.
#[derive(Debug)]
pub(crate) struct FetchedLeaf {
    /// The leaf hash (RFC 6962).
    pub(crate) hash: Hash,
    /// Its search keys (`search::keys`).
    pub(crate) keys: Vec<crate::search::SearchKey>,
    /// The canonical leaf body.
    pub(crate) leaf: Vec<u8>,
}

/// Derives each leaf's hash and search keys: the CPU work of an install, done off the write
/// transaction so that it runs while the previous chunk is written.
pub(crate) fn prepare(leaves: Vec<Vec<u8>>) -> Vec<FetchedLeaf> {
    leaves
        .into_iter()
        .map(|leaf| FetchedLeaf {
            hash: tlog::leaf_hash(&leaf),
            keys: crate::search::keys(&leaf).into_iter().collect(),
            leaf,
        })
        .collect()
}

/// Appends committed leaves to `log` through [`state_machine::append_leaf_with_keys`], overwriting any
/// row left at their indices by an earlier, unverified attempt, and writes their batch times
/// (`times`, a checked answer for exactly these leaves) in the same transaction.
pub(crate) fn append_chunk(
    db: &Database,
    log: &LogName,
    mut tree: Tree,
    leaves: &[FetchedLeaf],
    times: &BatchTimes,
    durable: bool,
) -> Result<Tree, DiskError> {
    let txn = if durable {
        begin_immediate(db)?
    } else {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        txn
    };
    {
        let mut state = RedbState::open(&txn)?;
        let first = tree.size().0;
        state.replace_batch_times(log, first, first + leaves.len() as u64, times)?;
        let mut scratch = Vec::new();
        for fetched in leaves {
            // A row an earlier, unverified attempt left at this index (leaf and index row
            // alike) is overwritten.
            state_machine::append_leaf_with_keys(
                &mut state,
                log,
                &mut tree,
                &mut scratch,
                fetched.hash,
                &fetched.leaf,
                &fetched.keys,
            )
            .map_err(|source| DiskError::Apply {
                log_id: format!("snapshot catch-up of {log}"),
                source,
            })?;
        }
        state.finish()?;
    }
    txn.commit()?;
    Ok(tree)
}

/// The final transaction: checks that the stored tiles give each head's root, drops rows
/// beyond each head (left by an older attempt), and writes heads, last applied, membership and
/// the current snapshot.
pub(crate) fn finish(
    db: &Database,
    logs: &Logs,
    meta: &Meta,
    data: &[u8],
    descriptor: &Descriptor,
) -> Result<(), DiskError> {
    let txn = begin_immediate(db)?;
    {
        let mut state = RedbState::open(&txn)?;
        let targets: BTreeMap<&LogName, &LogHead> = descriptor
            .heads
            .iter()
            .map(|(log, head)| (log, head))
            .collect();
        for config in logs.iter() {
            let log = &config.name;
            let size = targets.get(log).map_or(0, |head| head.tree_size);
            let dropped = state.truncate(log, size)?;
            if dropped > 0 {
                tracing::warn!(%log, dropped, "dropped leaves an older install left beyond the head");
            }
            let Some(head) = targets.get(log) else {
                continue;
            };
            let tree_size = TreeSize(head.tree_size);
            let root =
                tlog::tree::root_at(&TileHashStore::new(state.tiles(log), tree_size), tree_size)
                    .map_err(|error| DiskError::Missing(format!("a tile of log {log}: {error}")))?;
            if root != head.root {
                return Err(CatchUpError::RootMismatch {
                    log: log.clone(),
                    size: head.tree_size,
                    computed: root,
                    expected: head.root,
                }
                .into());
            }
            if !state.has_leaf(log, head.tree_size - 1)? {
                return Err(DiskError::Missing(format!(
                    "leaf {} of log {log}",
                    head.tree_size - 1
                )));
            }
            // The fetched leaves' batch times were written with them, chunk by chunk, each
            // chunk with a row at its first leaf (unknown where no member knew), so no earlier
            // batch's time is taken for theirs.
            state
                .put_head(log, head)
                .map_err(|source| DiskError::Apply {
                    log_id: format!("snapshot {}", meta.snapshot_id),
                    source,
                })?;
        }
        state.finish()?;
        let mut meta_table = txn.open_table(SM_META)?;
        let applied = encode("last applied", &descriptor.last_applied)?;
        meta_table.insert(LAST_APPLIED, applied.as_slice())?;
        let membership = encode("last membership", &descriptor.last_membership)?;
        meta_table.insert(LAST_MEMBERSHIP, membership.as_slice())?;
        let (_, _, lifecycle) = split_data(data)
            .map_err(|error| DiskError::corrupt("snapshot", &PENDING_DATA, error))?;
        write_lifecycle(&mut meta_table, &lifecycle)?;
        let mut snapshot = txn.open_table(SNAPSHOT)?;
        snapshot.insert(SNAPSHOT_META, encode("snapshot meta", meta)?.as_slice())?;
        snapshot.insert(SNAPSHOT_DATA, data)?;
        snapshot.remove(PENDING_META)?;
        snapshot.remove(PENDING_DATA)?;
        snapshot.remove(PENDING_MEMBERS)?;
    }
    txn.commit()?;
    Ok(())
}

/// Whether an install is pending, inside a write transaction (apply refuses to run then).
pub(crate) fn is_pending(txn: &redb::WriteTransaction) -> Result<bool, DiskError> {
    Ok(txn.open_table(SNAPSHOT)?.get(PENDING_META)?.is_some())
}
