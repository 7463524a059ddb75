//! Snapshots of the state machine, for now the whole state serialised with postcard.
//!
//! A snapshot holds every leaf, tile hash and head of every log, plus the last applied log id
//! and last membership; the dedup index is not sent, it is rebuilt from the leaves on install
//! (it is a function of them). This is only fit for small logs: the planned replacement sends a
//! small descriptor and lets the follower fetch and verify tiles (`research/raft-sim.md` §3.6),
//! and is meant to change this file only.
//!
//! Durability contract (§3.2): `build_snapshot` reads from one redb read transaction (apply
//! continues meanwhile) and then stores the snapshot as current in an `Immediate` transaction,
//! unless a newer one is already stored. `install_snapshot` checks that the meta matches the
//! payload and that every head's root is reproduced by the payload's tile hashes, then replaces
//! all state tables, last applied, last membership and the current snapshot in ONE
//! `Immediate` transaction.

use std::fmt::Debug;

use openraft::{
    AnyError, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use tlog::TreeSize;
use tlog::tile::TileHashStore;

use super::state_store::{RedbState, applied_state, create_state_tables};
use super::tables::{
    HEADS, LAST_APPLIED, LAST_MEMBERSHIP, LEAF_INDEX, LEAVES, SM_META, SNAPSHOT, SNAPSHOT_DATA,
    SNAPSHOT_META, SNAPSHOT_SEQ, TILE_HASHES, decode, decode_hash, encode,
};
use super::{DiskError, SharedDb, begin_immediate};
use crate::env::Blocking;
use crate::state_machine::{LogHead, StateAccess};
use crate::types::{LogName, NodeAddress, NodeId, TypeConfig};

/// The snapshot payload: the whole state machine.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Payload {
    pub(super) last_applied: Option<LogId<NodeId>>,
    pub(super) last_membership: StoredMembership<NodeId, NodeAddress>,
    /// (log, index, canonical leaf body), in key order.
    pub(super) leaves: Vec<(String, u64, Vec<u8>)>,
    /// (log, Merkle level, index, 32-byte hash), in key order.
    pub(super) tile_hashes: Vec<(String, u8, u64, Vec<u8>)>,
    /// (log, head), in name order.
    pub(super) heads: Vec<(String, LogHead)>,
}

type Meta = SnapshotMeta<NodeId, NodeAddress>;

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

/// Serialises the state as of one read transaction and stores it as the current snapshot.
fn build(db: &Database) -> Result<(Meta, Vec<u8>), DiskError> {
    let payload = {
        let txn = db.begin_read()?;
        let (last_applied, last_membership) = applied_state(&txn.open_table(SM_META)?)?;
        let mut payload = Payload {
            last_applied,
            last_membership,
            ..Payload::default()
        };
        for row in txn.open_table(LEAVES)?.iter()? {
            let (key, value) = row?;
            let (log, index) = key.value();
            payload
                .leaves
                .push((log.to_owned(), index, value.value().to_vec()));
        }
        for row in txn.open_table(TILE_HASHES)?.iter()? {
            let (key, value) = row?;
            let (log, level, index) = key.value();
            payload
                .tile_hashes
                .push((log.to_owned(), level, index, value.value().to_vec()));
        }
        for row in txn.open_table(HEADS)?.iter()? {
            let (key, value) = row?;
            let head: LogHead = decode("heads", &key.value(), value.value())?;
            payload.heads.push((key.value().to_owned(), head));
        }
        payload
    };
    let data = encode("snapshot", &payload)?;

    let txn = begin_immediate(db)?;
    let meta = {
        let mut table = txn.open_table(SNAPSHOT)?;
        let seq: u64 = match table.get(SNAPSHOT_SEQ)? {
            Some(bytes) => decode("snapshot", &SNAPSHOT_SEQ, bytes.value())?,
            None => 0,
        };
        let seq = seq + 1;
        let meta = Meta {
            last_log_id: payload.last_applied,
            last_membership: payload.last_membership,
            snapshot_id: match payload.last_applied {
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
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT)?;
    let Some(meta) = table.get(SNAPSHOT_META)? else {
        return Ok(None);
    };
    let meta: Meta = decode("snapshot", &SNAPSHOT_META, meta.value())?;
    let data = table
        .get(SNAPSHOT_DATA)?
        .ok_or_else(|| DiskError::Missing("current snapshot data".into()))?
        .value()
        .to_vec();
    Ok(Some((meta, data)))
}

/// Replaces the whole state with a snapshot's, in one durable transaction.
pub(crate) fn install(db: &Database, meta: &Meta, data: &[u8]) -> Result<(), DiskError> {
    let payload: Payload = postcard::from_bytes(data)
        .map_err(|error| DiskError::Snapshot(format!("payload does not decode: {error}")))?;
    if payload.last_applied != meta.last_log_id {
        return Err(DiskError::Snapshot(format!(
            "meta says last log id {:?}, payload {:?}",
            meta.last_log_id, payload.last_applied
        )));
    }
    if payload.last_membership != meta.last_membership {
        return Err(DiskError::Snapshot(format!(
            "meta says membership {:?}, payload {:?}",
            meta.last_membership, payload.last_membership
        )));
    }

    let txn = begin_immediate(db)?;
    txn.delete_table(LEAVES)?;
    txn.delete_table(LEAF_INDEX)?;
    txn.delete_table(TILE_HASHES)?;
    txn.delete_table(HEADS)?;
    txn.delete_table(SM_META)?;
    create_state_tables(&txn)?;
    {
        let mut state = RedbState::open(&txn)?;
        for (log, index, leaf) in &payload.leaves {
            let hash = tlog::leaf_hash(leaf);
            state
                .put_leaf(&LogName(log.clone()), *index, &hash, leaf)
                .map_err(|error| DiskError::Snapshot(error.to_string()))?;
        }
        for (log, level, index, hash) in &payload.tile_hashes {
            let key = format!("({log}, {level}, {index})");
            decode_hash("snapshot tile_hashes", &key, hash)?;
            state.insert_tile_hash_bytes(log, *level, *index, hash)?;
        }
        for (log, head) in &payload.heads {
            let name = LogName(log.clone());
            check_head(&state, &name, head)?;
            state
                .put_head(&name, head)
                .map_err(|error| DiskError::Snapshot(error.to_string()))?;
        }
        let mut meta_table = txn.open_table(SM_META)?;
        let applied = encode("last applied", &payload.last_applied)?;
        meta_table.insert(LAST_APPLIED, applied.as_slice())?;
        let membership = encode("last membership", &payload.last_membership)?;
        meta_table.insert(LAST_MEMBERSHIP, membership.as_slice())?;
        let mut snapshot = txn.open_table(SNAPSHOT)?;
        snapshot.insert(SNAPSHOT_META, encode("snapshot meta", meta)?.as_slice())?;
        snapshot.insert(SNAPSHOT_DATA, data)?;
    }
    txn.commit()?;
    Ok(())
}

/// A head is only installed if the payload's tile hashes give its root and its leaves are all
/// there: a snapshot must not make this replica serve a tree it cannot reproduce.
fn check_head(state: &RedbState<'_>, log: &LogName, head: &LogHead) -> Result<(), DiskError> {
    let size = TreeSize(head.tree_size);
    let tiles = TileHashStore::new(state.tiles(log), size);
    let root = tlog::tree::root_at(&tiles, size)
        .map_err(|error| DiskError::Snapshot(format!("log {log}: {error}")))?;
    if root != head.root {
        return Err(DiskError::Snapshot(format!(
            "log {log}: tile hashes give root {root}, head says {}",
            head.root
        )));
    }
    if head.tree_size > 0 && state.leaf_count(log)? != head.tree_size {
        return Err(DiskError::Snapshot(format!(
            "log {log}: leaves do not match size {}",
            head.tree_size
        )));
    }
    Ok(())
}
