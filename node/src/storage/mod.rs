//! Storage: openraft's log and state machine on redb. The only module of the node that touches
//! redb.
//!
//! Two databases per node: redb allows one write transaction at a time per database, and
//! openraft drives log I/O (the Raft core) and apply (the state-machine worker) from different
//! tasks; on the simulator's single thread a `begin_write` that waits for another task's
//! transaction would never return. So:
//! - `raft-log.redb` ([`LogStore`], [`LogReader`]): the Raft log, vote, committed and
//!   last-purged ids. Appends are group-committed (see [`log_store`]).
//! - `state.redb` ([`StateStore`], [`StateReader`]): leaves, the dedup index, tile hashes, log
//!   heads, last applied, last membership and the current snapshot, which is a small
//!   descriptor: an install fetches the leaves it lacks from other members (see [`snapshot`]).
//!
//! Durability contract: every method that openraft relies on for safety commits with
//! `Durability::Immediate` before it returns (vote, truncate, purge, apply, snapshot install,
//! whose final transaction is the one that makes it visible); `append` commits with
//! `Durability::None` so entries are readable at once, and its callback fires only after a
//! later `Immediate` commit made them durable. No redb
//! transaction and no lock guard is ever held across an `.await`: every redb call runs, start to
//! commit, inside one closure passed to [`Blocking::run`](crate::env::Blocking::run).
//!
//! Two-phase commit is on for every durable commit (`begin_immediate`). redb's default
//! one-phase commit trusts a non-cryptographic checksum to pick the valid commit slot after a
//! crash, and its documentation describes an attack by someone who can put arbitrary data in a
//! transaction and influence crashes and flush order. Leaves are attacker-chosen bytes by design,
//! so we pay the second fsync; group commit and batching amortise it over many entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::ops::Bound;

use redb::{BackendError, Database, Durability, ReadableTable, StorageBackend, WriteTransaction};

use crate::catch_up::SharedBundleSource;
use crate::env::Blocking;
use crate::state_machine::{Logs, StateError};

// In layers, each using only those above it: the tables, the tile reader over them, the rows
// (apply's writer and the readers it shares with the view), the leaf index's bulk builds, the
// read view, the snapshot's transactions, and the openraft adapters on top.
mod install;
pub mod leaf_index;
pub(crate) mod leaf_stream;
pub mod log_store;
mod pinned_levels;
mod reindex;
pub(crate) mod rows;
pub(crate) mod run_filter;
pub mod snapshot;
pub mod state_store;
mod table_tiles;
pub(crate) mod tables;
pub mod view;

#[cfg(test)]
mod tests;

pub use leaf_index::IndexShape;
pub use log_store::{LogReader, LogStore};
pub(crate) use reindex::{IndexWork, catch_up_leaf_index_to};
pub(crate) use rows::SharedTailMemory;
pub use snapshot::{CatchUpError, Descriptor, SnapshotBuilder};
pub use state_store::StateStore;
pub use view::{ReadError, StateReader, StateView};

/// The file name of the Raft log database inside a node's data directory.
pub const LOG_FILE: &str = "raft-log.redb";
/// The file name of the state-machine database inside a node's data directory.
pub const STATE_FILE: &str = "state.redb";

/// A storage failure: redb failed, or bytes on disk are not what this code wrote.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The data directory could not be created.
    #[error("creating data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// redb failed (I/O, a failed commit, a database already open elsewhere).
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// A stored row does not decode.
    #[error("corrupt row in table {table} at {key}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row that the stored state implies exists is absent (a tile hash under the head, a
    /// leaf below the tree size).
    #[error("{0} is not stored")]
    Missing(String),
    /// The database was written by a newer version of Cairn, in a format this one does not
    /// know: reading it could misread it.
    #[error(
        "{file} is in format {found}, written by a newer cairn-node; this one reads formats up \
         to {known}: run the newer version (a downgrade needs a backup taken before the upgrade)"
    )]
    NewerFormat {
        /// The database.
        file: &'static str,
        /// Its format.
        found: u32,
        /// The newest this code reads.
        known: u32,
    },
    /// A restore was asked of a store that already holds state.
    #[error("a restore needs an empty data directory, but {0}")]
    NotEmpty(String),
    /// Encoding an internal value failed.
    #[error("encoding {what}: {source}")]
    Encode {
        /// The value.
        what: &'static str,
        /// Why.
        source: postcard::Error,
    },
    /// The deterministic apply failed on a storage read or write.
    #[error("applying entry {log_id}: {source}")]
    Apply {
        /// The entry.
        log_id: String,
        /// Why.
        source: StateError,
    },
    /// A snapshot could not be installed (nothing was marked applied).
    #[error(transparent)]
    CatchUp(#[from] snapshot::CatchUpError),
    /// The database was closed (its store dropped) while work for it was queued.
    #[error("database closed")]
    Closed,
}

impl DiskError {
    pub(crate) fn corrupt(
        table: &'static str,
        key: &dyn std::fmt::Display,
        reason: impl Into<String>,
    ) -> DiskError {
        DiskError::Corrupt {
            table,
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// Each redb error type converts through `redb::Error`, so `?` works on every redb call.
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for DiskError {
            fn from(error: $error) -> DiskError {
                DiskError::Redb(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// A value known to be small (an offset inside a page-sized row, a bounded count) as `usize`,
/// saturating rather than truncating.
pub(crate) fn usize_from(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Starts a write transaction that commits durably (fsynced before `commit` returns) with
/// two-phase commit (see the module docs).
pub(crate) fn begin_immediate(db: &Database) -> Result<WriteTransaction, DiskError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_two_phase_commit(true);
    Ok(txn)
}

/// The format of both databases this code writes, and the newest it reads. A database from
/// before formats were numbered has no format row and is format 1; opening one writes the row.
/// A change to any table's keys or values that an older node would misread raises it (with the
/// migration of older databases in `reindex`), so that an older node refuses the database
/// instead of misreading it.
pub const DISK_FORMAT: u32 = 1;

/// Key of the format row in `raft-log.redb`'s `meta` and `state.redb`'s `sm_meta` tables.
const FORMAT_KEY: &str = "format";

/// Checks the format row of the metadata table `table` of `file`, in the transaction that opens
/// the database and before anything else reads it: writes [`DISK_FORMAT`] where there is none,
/// refuses a newer one.
pub(crate) fn check_disk_format(
    txn: &WriteTransaction,
    table: redb::TableDefinition<&str, &[u8]>,
    file: &'static str,
) -> Result<(), DiskError> {
    let mut meta = txn.open_table(table)?;
    let found: u32 = match meta.get(FORMAT_KEY)? {
        Some(bytes) => tables::decode(file, &FORMAT_KEY, bytes.value())?,
        None => 1,
    };
    if found > DISK_FORMAT {
        return Err(DiskError::NewerFormat {
            file,
            found,
            known: DISK_FORMAT,
        });
    }
    meta.insert(
        FORMAT_KEY,
        tables::encode("format", &DISK_FORMAT)?.as_slice(),
    )?;
    Ok(())
}

/// redb's page cache per database file. Pages past it are read from the kernel's page cache,
/// which holds the file anyway: redb's own default (1 GiB) holds a second copy of what the
/// kernel caches, and a node with it used 2.6 times the memory while filling to 2×10^6 entries
/// (6.6 GB against 2.5 GB for three nodes), leaving less for the kernel and making its reclaim
/// work part of every write. A smaller cache filled as fast or faster (docs/benchmarks/scale.md).
const CACHE_BYTES: usize = 256 << 20;

/// Opens (creating if needed) a database file.
pub(crate) fn open_file(path: &Path) -> Result<Database, DiskError> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    // After an unclean shutdown redb checks and repairs the whole file before the node can
    // start, about 40 s for a 6 GB database here: say so, with progress, rather than look hung.
    let file = path.display().to_string();
    let reported = std::sync::atomic::AtomicU32::new(u32::MAX);
    builder.set_repair_callback(move |session| {
        let done = session.progress() * 100.0;
        let percent = (0..=10u32)
            .map(|tenth| tenth * 10)
            .rfind(|&percent| done >= f64::from(percent))
            .unwrap_or(0);
        if reported.swap(percent, std::sync::atomic::Ordering::Relaxed) != percent {
            tracing::warn!(%file, percent, "repairing the database after an unclean shutdown");
        }
    });
    Ok(builder.create(path)?)
}

/// Opens (creating if needed) a database over a storage backend (the simulator's disk, or
/// redb's `InMemoryBackend` in tests).
pub(crate) fn open_backend(backend: impl StorageBackend) -> Result<Database, DiskError> {
    Ok(Database::builder().create_with_backend(backend)?)
}

/// Space on the file system that holds `dir`, in bytes: (available to this process, total).
pub fn disk_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let stat = nix::sys::statvfs::statvfs(dir)?;
    // The block counts are in fragments (statvfs(3)); all three are 64-bit on Linux.
    let unit = stat.fragment_size();
    Ok((
        stat.blocks_available().saturating_mul(unit),
        stat.blocks().saturating_mul(unit),
    ))
}

/// Where a node keeps its two databases: what its environment gives it to store on.
pub enum Disks {
    /// `raft-log.redb` and `state.redb` in this directory, created if needed (production).
    Dir(PathBuf),
    /// Two storage backends (the simulator's disks, or redb's `InMemoryBackend`).
    Backends {
        /// The Raft log's.
        log: Box<dyn StorageBackend>,
        /// The state machine's.
        state: Box<dyn StorageBackend>,
    },
}

impl std::fmt::Debug for Disks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disks::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            Disks::Backends { .. } => f.write_str("Backends"),
        }
    }
}

/// A boxed backend, as redb takes one by value.
#[derive(Debug)]
struct BoxedBackend(Box<dyn StorageBackend>);

impl StorageBackend for BoxedBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.0.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.0.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.0.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.unlock_range(start, end)
    }
}

/// A node's two stores, opened together.
#[derive(Debug)]
pub struct Stores {
    /// The Raft log (`raft-log.redb`), handed to `Raft::new`.
    pub log: LogStore,
    /// The state machine (`state.redb`), handed to `Raft::new`.
    pub state: StateStore,
    /// Reads of the state machine for the HTTP layer.
    pub reader: StateReader,
}

impl Stores {
    /// Opens or creates both databases on `disks`, the leaf index shaped by `shape`; snapshot
    /// installs fetch the leaves they lack through `source`.
    pub fn open(
        disks: Disks,
        logs: Logs,
        blocking: &Blocking,
        source: SharedBundleSource,
        shape: IndexShape,
    ) -> Result<Stores, DiskError> {
        match disks {
            Disks::Dir(dir) => Stores::open_dir_shaped(&dir, logs, blocking, source, shape),
            Disks::Backends { log, state } => Stores::open_backends_shaped(
                BoxedBackend(log),
                BoxedBackend(state),
                logs,
                blocking,
                source,
                shape,
            ),
        }
    }

    /// Opens or creates `raft-log.redb` and `state.redb` in `dir`, creating `dir` if needed;
    /// snapshot installs fetch the leaves they lack through `source`.
    pub fn open_dir(
        dir: &Path,
        logs: Logs,
        blocking: &Blocking,
        source: SharedBundleSource,
    ) -> Result<Stores, DiskError> {
        Stores::open_dir_shaped(dir, logs, blocking, source, IndexShape::default())
    }

    fn open_dir_shaped(
        dir: &Path,
        logs: Logs,
        blocking: &Blocking,
        source: SharedBundleSource,
        shape: IndexShape,
    ) -> Result<Stores, DiskError> {
        std::fs::create_dir_all(dir).map_err(|source| DiskError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let log = LogStore::from_database(open_file(&dir.join(LOG_FILE))?, blocking.clone())?;
        let state = StateStore::from_database(
            open_file(&dir.join(STATE_FILE))?,
            logs,
            blocking.clone(),
            source,
            shape,
        )?;
        state.pin_levels();
        Ok(Stores::new(log, state))
    }

    /// Opens or creates both databases over storage backends (the simulator's disk).
    pub fn open_backends(
        log_backend: impl StorageBackend,
        state_backend: impl StorageBackend,
        logs: Logs,
        blocking: &Blocking,
        source: SharedBundleSource,
    ) -> Result<Stores, DiskError> {
        Stores::open_backends_shaped(
            log_backend,
            state_backend,
            logs,
            blocking,
            source,
            IndexShape::default(),
        )
    }

    /// [`Stores::open_backends`] with the leaf index shaped by `shape` (the simulator's small
    /// one, so that its short runs flush, merge and slice; see [`IndexShape`]).
    pub fn open_backends_shaped(
        log_backend: impl StorageBackend,
        state_backend: impl StorageBackend,
        logs: Logs,
        blocking: &Blocking,
        source: SharedBundleSource,
        shape: IndexShape,
    ) -> Result<Stores, DiskError> {
        let log = LogStore::from_database(open_backend(log_backend)?, blocking.clone())?;
        let state = StateStore::from_database(
            open_backend(state_backend)?,
            logs,
            blocking.clone(),
            source,
            shape,
        )?;
        state.pin_levels();
        Ok(Stores::new(log, state))
    }

    fn new(log: LogStore, state: StateStore) -> Stores {
        let reader = state.reader();
        Stores { log, state, reader }
    }
}

/// Rebuilds the leaf index (`leaf_index`: dedup and search) of the state database in `dir` from
/// its stored leaves, for `cairn-node reindex`: the index is a function of the leaves, so this
/// recovers from an index damaged by hand or by a bug, or built with another version of
/// `search::keys`. The node must be stopped (redb refuses a database another process holds).
/// Returns each log's name and size.
pub fn reindex(dir: &Path) -> Result<Vec<(String, u64)>, DiskError> {
    let path = dir.join(STATE_FILE);
    if !path.exists() {
        return Err(DiskError::Missing(format!("{}", path.display())));
    }
    let db = Database::builder().open(&path)?;
    reindex::rebuild_leaf_index(&db, &IndexShape::default(), IndexWork::All)
}

/// Shares a database between a store, its readers and background work.
pub(crate) type SharedDb = Arc<Database>;
