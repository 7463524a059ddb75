//! The state machine on `state.redb`: openraft's `RaftStateMachine`.
//!
//! Durability contract: `apply` runs a whole batch of entries in ONE `Immediate` write
//! transaction: the leaves, dedup index, tile hashes and heads that `state_machine::apply`
//! writes, the last membership and the last applied log id commit together and are fsynced
//! before `apply` returns, or none of it happens (a crash never re-applies an entry, which would
//! append duplicate leaves on one replica).
//!
//! Reads go through [`StateReader`](super::view::StateReader), which opens one redb read
//! transaction per view.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use redb::{Database, ReadableDatabase, ReadableTableMetadata, StorageBackend};

use super::install::Installer;
use super::leaf_index::IndexShape;
use super::pinned_levels::PinnedLevels;
use super::reindex::{
    IndexWork, catch_up_leaf_index, drop_old_index, move_leaf_rows, rebuild_leaf_index,
    regroup_leaf_directory, store_middle_hashes,
};
use super::rows::{
    RedbState, SharedLifecycle, SharedTailMemory, applied_state, create_state_tables, read_head,
    read_lifecycle,
};
use super::snapshot::{self, CatchUpError, Meta, SnapshotBuilder};
use super::tables::{HEADS, LAST_APPLIED, LAST_MEMBERSHIP, SM_META, SNAPSHOT, TILE_HASHES, encode};
use super::view::StateReader;
use super::{DiskError, SharedDb, begin_immediate};
use crate::catch_up::{CatchUpPolicy, KnownMembers, SharedBundleSource};
use crate::env::Blocking;
use crate::state_machine::{self, HashCaches, Logs};
use crate::types::{CommandOutcome, NodeAddress, NodeId, TypeConfig};

/// The state-machine store: one per node, owned by openraft's state-machine worker.
pub struct StateStore {
    pub(super) db: SharedDb,
    blocking: Blocking,
    logs: Arc<Logs>,
    /// Where a snapshot install fetches the leaves it lacks.
    source: SharedBundleSource,
    policy: CatchUpPolicy,
    /// Complete-subtree hashes derived by apply and by reads, shared by both.
    caches: Arc<HashCaches>,
    /// Merkle levels from 4 up, held for reads.
    pinned: Arc<PinnedLevels>,
    /// The cluster's members as the node last saw them, for catch-up.
    known: KnownMembers,
    /// The sizes of the leaf index.
    shape: IndexShape,
    /// Apply's memory of the leaf index's tail.
    pub(crate) tail_memory: SharedTailMemory,
    /// The rotations applied, for request routing.
    lifecycle: SharedLifecycle,
}

impl Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("blocking", &self.blocking)
            .field("logs", &self.logs)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens or creates the state database at `path`, for the cluster's `logs`; snapshot
    /// installs fetch leaves through `source`.
    pub fn open(
        path: &Path,
        logs: Logs,
        blocking: Blocking,
        source: SharedBundleSource,
    ) -> Result<StateStore, DiskError> {
        StateStore::from_database(
            super::open_file(path)?,
            logs,
            blocking,
            source,
            IndexShape::default(),
        )
    }

    /// Opens or creates the state database over a storage backend.
    pub fn with_backend(
        backend: impl StorageBackend,
        logs: Logs,
        blocking: Blocking,
        source: SharedBundleSource,
    ) -> Result<StateStore, DiskError> {
        StateStore::from_database(
            super::open_backend(backend)?,
            logs,
            blocking,
            source,
            IndexShape::default(),
        )
    }

    /// Wraps an open database, creating the tables if it is new (read transactions fail on a
    /// table that was never created), building the leaf index of a database from before it,
    /// and finishing index upkeep a crash interrupted.
    pub(crate) fn from_database(
        db: Database,
        logs: Logs,
        blocking: Blocking,
        source: SharedBundleSource,
        shape: IndexShape,
    ) -> Result<StateStore, DiskError> {
        let txn = begin_immediate(&db)?;
        create_state_tables(&txn)?;
        // Before any migration below: a newer format must not be "migrated" by this code.
        super::check_disk_format(&txn, SM_META, "state.redb")?;
        txn.open_table(SNAPSHOT)?;
        let rebuild = drop_old_index(&txn)?;
        txn.commit()?;
        // The directory first: leaves still in rows are appended after what it holds.
        regroup_leaf_directory(&db)?;
        move_leaf_rows(&db)?;
        store_middle_hashes(&db)?;
        if rebuild {
            rebuild_leaf_index(&db, &shape, IndexWork::All)?;
        }
        catch_up_leaf_index(&db, &shape)?;
        let lifecycle = SharedLifecycle::default();
        lifecycle.set(read_lifecycle(&db.begin_read()?.open_table(SM_META)?)?);
        let store = StateStore {
            lifecycle,
            db: Arc::new(db),
            blocking,
            caches: Arc::new(HashCaches::new(&logs)),
            pinned: Arc::default(),
            known: KnownMembers::default(),
            logs: Arc::new(logs),
            source,
            policy: CatchUpPolicy::default(),
            shape,
            tail_memory: SharedTailMemory::default(),
        };
        Ok(store)
    }

    /// Reads each log's upper levels into memory (see `pinned_levels`) before the node serves,
    /// so that its first proofs find them there: 1/16 of a hash per leaf, from a table that
    /// proofs read anyway. Measured on a 10^7 log, loading them on a thread of their own while
    /// proofs were served made those proofs' tails far worse (views reading the same cold
    /// pages), so the open waits. Only a saving: on failure it says why, and reads name any
    /// bad row they need.
    pub(super) fn pin_levels(&self) {
        let pin = || -> Result<(), DiskError> {
            let txn = self.db.begin_read()?;
            let (heads, hashes) = (txn.open_table(HEADS)?, txn.open_table(TILE_HASHES)?);
            for log in self.logs.iter() {
                if let Some(head) = read_head(&heads, &log.name)? {
                    self.pinned
                        .follow(&hashes, &log.name, head.tree_size, u64::MAX)?;
                }
            }
            Ok(())
        };
        match pin() {
            Ok(()) => tracing::info!("upper tree levels held in memory"),
            Err(error) => tracing::warn!(%error, "upper tree levels not held in memory"),
        }
    }

    /// Replaces how persistently a snapshot install retries unavailable members.
    pub fn with_catch_up_policy(mut self, policy: CatchUpPolicy) -> StateStore {
        self.policy = policy;
        self
    }

    fn installer(&self) -> Installer {
        Installer {
            db: self.db.clone(),
            blocking: self.blocking.clone(),
            logs: self.logs.clone(),
            source: self.source.clone(),
            policy: self.policy,
            known: self.known.clone(),
            shape: self.shape,
            tail_memory: self.tail_memory.clone(),
        }
    }

    /// The members catch-up fetches from beyond a snapshot's own: the node keeps it current
    /// from Raft's membership.
    pub fn known_members(&self) -> KnownMembers {
        self.known.clone()
    }

    /// Restores a backup (`crate::backup`) into this store, which must be empty: installs the
    /// snapshot `meta` described by `data` exactly as catch-up does, fetching the leaves from
    /// this store's bundle source (the backup's files), so every log's root is recomputed and
    /// checked against its signed checkpoint before anything is visible.
    pub async fn restore(&self, meta: &Meta, data: &[u8]) -> Result<(), DiskError> {
        let db = self.db.clone();
        let (applied, heads) = self
            .blocking
            .run(move || -> Result<_, DiskError> {
                let txn = db.begin_read()?;
                let (applied, _) = applied_state(&txn.open_table(SM_META)?)?;
                let heads = txn.open_table(HEADS)?.len()?;
                Ok((applied, heads))
            })
            .await?;
        if applied.is_some() || heads > 0 {
            return Err(DiskError::NotEmpty(format!(
                "the state holds {heads} logs and last applied {applied:?}"
            )));
        }
        self.installer().install(meta, data).await
    }

    /// Forgets the cluster the restored state came from, keeping its logs, so that the node
    /// can start a new cluster (`POST /admin/init`).
    pub async fn forget_cluster(&self) -> Result<(), DiskError> {
        let db = self.db.clone();
        self.blocking
            .run(move || snapshot::forget_cluster(&db))
            .await
    }

    /// A cheap, cloneable handle for reads from any task while apply continues.
    pub fn reader(&self) -> StateReader {
        StateReader {
            db: self.db.clone(),
            caches: self.caches.clone(),
            pinned: self.pinned.clone(),
            tail_memory: self.tail_memory.clone(),
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// Reloads the in-memory rotations from the database (after an install wrote them).
    async fn reload_lifecycle(&self) -> Result<(), DiskError> {
        let db = self.db.clone();
        let lifecycle = self
            .blocking
            .run(move || read_lifecycle(&db.begin_read()?.open_table(SM_META)?))
            .await?;
        self.lifecycle.set(lifecycle);
        Ok(())
    }
}

fn read_sm_error(error: &DiskError) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::new(error)).into()
}

/// The `ApplyNotAtomic` canary's first transaction: `last_applied` alone.
#[cfg(feature = "canaries")]
fn write_last_applied(db: &Database, last: LogId<NodeId>) -> Result<(), DiskError> {
    let txn = begin_immediate(db)?;
    let applied = encode("last applied", &Some(last))?;
    txn.open_table(SM_META)?
        .insert(LAST_APPLIED, applied.as_slice())?;
    txn.commit()?;
    Ok(())
}

/// Applies a batch of committed entries in one durable transaction; forgets apply's memory of
/// the index tail if that fails.
fn apply_entries(
    db: &Database,
    logs: &Logs,
    caches: &Arc<HashCaches>,
    index: (&IndexShape, &SharedTailMemory),
    entries: &[Entry<TypeConfig>],
) -> Result<Vec<CommandOutcome>, DiskError> {
    let applied = apply_entries_once(db, logs, caches, index, entries);
    if applied.is_err() {
        index.1.forget();
    }
    applied
}

fn apply_entries_once(
    db: &Database,
    logs: &Logs,
    caches: &Arc<HashCaches>,
    (shape, memory): (&IndexShape, &SharedTailMemory),
    entries: &[Entry<TypeConfig>],
) -> Result<Vec<CommandOutcome>, DiskError> {
    let Some(last) = entries.last() else {
        return Ok(Vec::new());
    };
    let txn = begin_immediate(db)?;
    // Rows beyond the heads may be an unverified install's; applying over them could leave
    // dedup entries this replica alone has. openraft finishes an install before it applies.
    if snapshot::is_pending(&txn)? {
        return Err(CatchUpError::Pending.into());
    }
    let mut outcomes = Vec::with_capacity(entries.len());
    {
        let mut state = RedbState::open(&txn)?
            .with_caches(caches.clone())
            .with_index_upkeep(*shape, memory.clone());
        let mut membership = None;
        for entry in entries {
            let outcome = match &entry.payload {
                EntryPayload::Blank => CommandOutcome::Nothing,
                EntryPayload::Normal(command) => state_machine::apply(&mut state, logs, command)
                    .map_err(|source| DiskError::Apply {
                        log_id: entry.log_id.to_string(),
                        source,
                    })?,
                EntryPayload::Membership(config) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), config.clone()));
                    CommandOutcome::Nothing
                }
            };
            outcomes.push(outcome);
        }
        state.finish()?;
        let mut meta = txn.open_table(SM_META)?;
        let applied = encode("last applied", &Some(last.log_id))?;
        meta.insert(LAST_APPLIED, applied.as_slice())?;
        if let Some(membership) = membership {
            let bytes = encode("last membership", &membership)?;
            meta.insert(LAST_MEMBERSHIP, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(outcomes)
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeAddress>), StorageError<NodeId>>
    {
        // openraft reads this first at startup: an install a crash interrupted must finish
        // before then, because openraft may already have purged the entries it covers.
        self.installer()
            .resume()
            .await
            .map_err(|error| read_sm_error(&error))?;
        let db = self.db.clone();
        let (applied, lifecycle) = self
            .blocking
            .run(move || {
                let txn = db.begin_read()?;
                let meta = txn.open_table(SM_META)?;
                // An install the resume above finished may have written rotations.
                Ok::<_, DiskError>((applied_state(&meta)?, read_lifecycle(&meta)?))
            })
            .await
            .map_err(|error| read_sm_error(&error))?;
        self.lifecycle.set(lifecycle);
        Ok(applied)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|entry| entry.log_id) else {
            return Ok(Vec::new());
        };
        let (db, logs, caches) = (self.db.clone(), self.logs.clone(), self.caches.clone());
        let (shape, memory) = (self.shape, self.tail_memory.clone());
        #[cfg(feature = "canaries")] // The planted bug: last_applied first, the state later.
        if crate::canary::is(crate::canary::Canary::ApplyNotAtomic) {
            let early = db.clone();
            let written = self
                .blocking
                .run(move || write_last_applied(&early, last))
                .await;
            written.map_err(|error| StorageIOError::apply(last, AnyError::new(&error)))?;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let outcomes = self
            .blocking
            .run(move || apply_entries(&db, &logs, &caches, (&shape, &memory), &entries))
            .await
            .map_err(|error| StorageIOError::apply(last, AnyError::new(&error)))?;
        if outcomes
            .iter()
            .any(|outcome| matches!(outcome, CommandOutcome::Rotated(_)))
        {
            self.reload_lifecycle()
                .await
                .map_err(|error| StorageIOError::apply(last, AnyError::new(&error)))?;
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder::new(self.db.clone(), self.blocking.clone())
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<std::io::Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(std::io::Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeAddress>,
        snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let failed = |error: DiskError| -> StorageError<NodeId> {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&error)).into()
        };
        self.installer()
            .install(meta, &data)
            .await
            .map_err(failed)?;
        // What the install wrote: the snapshot's rotations (checked by the install). Taken
        // from the data, not read back, so that an install costs no more trips to storage.
        let (_, _, lifecycle) = snapshot::split_data(&data)
            .map_err(|error| failed(DiskError::corrupt("snapshot", &"data", error)))?;
        self.lifecycle.set(lifecycle);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let (db, members) = (self.db.clone(), self.known.get());
        let current = self
            .blocking
            .run(move || -> Result<_, DiskError> {
                snapshot::current(&db)?
                    .map(|(meta, data)| Ok((meta, snapshot::with_members(&data, &members)?)))
                    .transpose()
            })
            .await
            .map_err(|error| StorageIOError::read_snapshot(None, AnyError::new(&error)))?;
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(std::io::Cursor::new(data)),
        }))
    }
}
