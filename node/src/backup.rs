//! Backups of a node's logs, and restores from them (`cairn-node backup`, `cairn-node restore`).
//!
//! A backup is what a catching-up node would fetch: a snapshot descriptor taken from a running
//! node in one read transaction (per log: size, root, signed checkpoint; see
//! [`storage::snapshot`](crate::storage::snapshot)), then every leaf below those heads as C2SP
//! entry bundles, with their integrated times. The logs are append-only, so the leaves fetched
//! after the descriptor, up to its sizes, are exactly the ones it describes: the copy is
//! consistent although the node keeps running, and a later backup into the same directory
//! fetches only bundles that are new or were partial (a full bundle never changes). Every leaf is
//! hashed while it is copied and the backup is kept only if each log's leaves give the signed
//! root.
//!
//! A backup directory:
//! - `snapshot`: the snapshot's meta and descriptor (postcard), written last, so a directory
//!   without it is an unfinished backup;
//! - `backup.json`: what it holds, for people (each log's origin, size, root, checkpoint);
//! - `logs/<log>/tile/entries/...`: the entry bundles, at their C2SP paths;
//! - `logs/<log>/batch-times`: the leaves' integrated times (postcard batch rows).
//!
//! It holds nothing secret: keys, the admin token and configurations are files the operator
//! keeps apart (docs/operations.md).
//!
//! A restore installs the descriptor into an empty data directory through the snapshot install
//! ([`StateStore::restore`](crate::storage::StateStore::restore)), with the backup as the bundle
//! source: every root is recomputed from the leaves and checked against the signed checkpoint
//! before anything is visible. Restoring into a new cluster must never sign a checkpoint smaller
//! than one already published, or witnesses and monitors would see the log roll back (a fork);
//! [`check_published`] compares the latest checkpoints the operator could find with the backup
//! and refuses a backup that ends before any of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use openraft::SnapshotMeta;
use tlog::tile::{TILE_WIDTH, Tile};
use tlog::{Hash, Tree};

use crate::catch_up::{
    BATCH_TIMES_ROWS_MAX, BatchTimes, BundleFuture, BundleSource, FetchError, TimesFuture,
    check_batch_times,
};
use crate::state_machine::{LogHead, Logs};
use crate::storage::snapshot::{CatchUpError, check_descriptor};
use crate::storage::{Descriptor, StateReader};
use crate::types::{LogName, NodeAddress, NodeId};

/// The snapshot a backup copies up to: its meta and encoded descriptor.
pub type BackupSnapshot = (SnapshotMeta<NodeId, NodeAddress>, Vec<u8>);

/// The format of `backup.json`; a restore refuses any other.
pub const BACKUP_FORMAT: &str = "cairn-backup/1";

/// Bundles fetched at once while backing up.
const BUNDLES_IN_FLIGHT: usize = 8;

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The descriptor does not verify against the logs' keys.
    #[error(transparent)]
    Descriptor(#[from] CatchUpError),
    /// A bundle or batch times could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A file of the backup could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The backup's contents are not what a backup holds.
    #[error("{0}")]
    Invalid(String),
    /// A log's leaves do not give its signed root.
    #[error(
        "log {log}: the leaves give root {computed} at size {size}, the checkpoint signs {signed}"
    )]
    RootMismatch {
        /// The log.
        log: LogName,
        /// Its size.
        size: u64,
        /// The root the leaves give.
        computed: Hash,
        /// The signed root.
        signed: Hash,
    },
    /// A published checkpoint is beyond the backup: resuming the log from the backup would sign
    /// a smaller checkpoint than one the world has seen.
    #[error(
        "log {log}: a checkpoint of size {published} was published, but the backup ends at \
         {backup}; a cluster restored from it would roll the log back (witnesses refuse that, \
         and monitors see a fork). Restore from a newer backup or a surviving node, or restore \
         this one and freeze the log in favour of a successor"
    )]
    RolledBack {
        /// The log.
        log: LogName,
        /// The size of the published checkpoint.
        published: u64,
        /// The size the backup holds.
        backup: u64,
    },
    /// A published checkpoint is for another history than the backup's.
    #[error(
        "log {log}: the published checkpoint of size {size} signs root {published}, the backup's \
         leaves give {backup}: they are not the same log"
    )]
    Diverged {
        /// The log.
        log: LogName,
        /// The size of the published checkpoint.
        size: u64,
        /// Its root.
        published: Hash,
        /// The backup's root at that size.
        backup: Hash,
    },
    /// A published checkpoint does not verify or names no log of the cluster.
    #[error("published checkpoint {name}: {reason}")]
    Published {
        /// Where it came from (a file name).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading the restored state failed.
    #[error(transparent)]
    Read(#[from] crate::storage::ReadError),
    /// The restore into the data directory failed.
    #[error(transparent)]
    Disk(#[from] crate::storage::DiskError),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup holds, per log, as `backup.json` says it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BackupLog {
    /// The log's name in the cluster.
    pub log: String,
    /// Leaves in the backup.
    pub tree_size: u64,
    /// The root at that size, hex.
    pub root: String,
    /// The signed checkpoint at that size.
    pub checkpoint: String,
    /// Bundles fetched by this backup (the others were already in the directory).
    pub bundles_fetched: u64,
}

/// `backup.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BackupSummary {
    /// [`BACKUP_FORMAT`].
    pub format: String,
    /// The node the backup was taken from.
    pub source: String,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// The Raft log id the snapshot describes, as text.
    pub last_applied: String,
    /// Each log with leaves.
    pub logs: Vec<BackupLog>,
}

/// Where each part of a backup lives.
#[derive(Clone, Debug)]
pub struct BackupDir {
    root: PathBuf,
}

impl BackupDir {
    /// The backup in `root`.
    pub fn new(root: &Path) -> BackupDir {
        BackupDir {
            root: root.to_path_buf(),
        }
    }

    fn snapshot(&self) -> PathBuf {
        self.root.join("snapshot")
    }

    fn summary(&self) -> PathBuf {
        self.root.join("backup.json")
    }

    fn log_dir(&self, log: &LogName) -> PathBuf {
        self.root.join("logs").join(&log.0)
    }

    fn bundle(&self, log: &LogName, index: u64, width: u16) -> PathBuf {
        self.log_dir(log).join(Tile::entries(index, width).path())
    }

    fn batch_times(&self, log: &LogName) -> PathBuf {
        self.log_dir(log).join("batch-times")
    }

    /// The snapshot the backup holds.
    pub fn read_snapshot(&self) -> Result<BackupSnapshot, BackupError> {
        let path = self.snapshot();
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => BackupError::Invalid(format!(
                "{} is not a finished backup: it has no {}",
                self.root.display(),
                path.display()
            )),
            _ => BackupError::File {
                path: path.clone(),
                source,
            },
        })?;
        let summary: BackupSummary = serde_json::from_slice(
            &std::fs::read(self.summary()).map_err(file_error(&self.summary()))?,
        )
        .map_err(|error| BackupError::Invalid(format!("backup.json: {error}")))?;
        if summary.format != BACKUP_FORMAT {
            return Err(BackupError::Invalid(format!(
                "backup.json: format {:?}, this version reads {BACKUP_FORMAT:?}",
                summary.format
            )));
        }
        postcard::from_bytes(&bytes)
            .map_err(|error| BackupError::Invalid(format!("{}: {error}", path.display())))
    }
}

/// Writes `bytes` to `path` whole or not at all: a temporary file, synced, then renamed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write as _;
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(file_error(parent))?;
    let temporary = path.with_extension("partial-write");
    let mut file = std::fs::File::create(&temporary).map_err(file_error(&temporary))?;
    file.write_all(bytes).map_err(file_error(&temporary))?;
    file.sync_all().map_err(file_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(file_error(path))?;
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(file_error(parent))
}

/// The width of bundle `index` of a log of `size` leaves.
fn bundle_width(index: u64, size: u64) -> u16 {
    let left = size.saturating_sub(index * u64::from(TILE_WIDTH));
    u16::try_from(left.min(u64::from(TILE_WIDTH))).unwrap_or(TILE_WIDTH)
}

/// Takes a backup of the node at `member` into `dir`: fetches the leaves `snapshot` describes
/// through `source` (reusing full bundles already in `dir`), checks every log's root, then writes
/// `snapshot` and `backup.json`. `progress` hears (log, leaves copied, leaves in all).
pub async fn take(
    source: &dyn BundleSource,
    member: &NodeAddress,
    logs: &Logs,
    snapshot: &BackupSnapshot,
    dir: &Path,
    taken_at: String,
    progress: &(dyn Fn(&LogName, u64, u64) + Sync),
) -> Result<BackupSummary, BackupError> {
    let (meta, data) = snapshot;
    let (descriptor, _) = check_descriptor(logs, meta, data)?;
    let backup = BackupDir::new(dir);
    let mut summary = BackupSummary {
        format: BACKUP_FORMAT.into(),
        source: member.api_url.clone(),
        taken_at,
        last_applied: meta
            .last_log_id
            .map_or_else(|| "none".into(), |log_id| log_id.to_string()),
        logs: Vec::new(),
    };
    for (log, head) in &descriptor.heads {
        let fetched = copy_leaves(source, member, &backup, log, head, progress).await?;
        copy_batch_times(source, member, &backup, log, head.tree_size).await?;
        summary.logs.push(BackupLog {
            log: log.0.clone(),
            tree_size: head.tree_size,
            root: head.root.to_string(),
            checkpoint: head.checkpoint.clone(),
            bundles_fetched: fetched,
        });
    }
    let summary_bytes = serde_json::to_vec_pretty(&summary)
        .map_err(|error| BackupError::Invalid(format!("encoding backup.json: {error}")))?;
    write_atomically(&backup.summary(), &summary_bytes)?;
    let snapshot_bytes = postcard::to_stdvec(snapshot)
        .map_err(|error| BackupError::Invalid(format!("encoding the snapshot: {error}")))?;
    write_atomically(&backup.snapshot(), &snapshot_bytes)?;
    Ok(summary)
}

/// Copies one log's bundles, hashing every leaf; returns how many bundles were fetched.
async fn copy_leaves(
    source: &dyn BundleSource,
    member: &NodeAddress,
    backup: &BackupDir,
    log: &LogName,
    head: &LogHead,
    progress: &(dyn Fn(&LogName, u64, u64) + Sync),
) -> Result<u64, BackupError> {
    let size = head.tree_size;
    let bundles = size.div_ceil(u64::from(TILE_WIDTH));
    // Each bundle's bytes, from the directory if it is full and there, else from the node.
    let read_or_fetch = |index: u64| async move {
        let width = bundle_width(index, size);
        let path = backup.bundle(log, index, width);
        if width == TILE_WIDTH
            && let Ok(bytes) = std::fs::read(&path)
        {
            return Ok::<_, BackupError>((index, bytes, false));
        }
        let bytes = source.entry_bundle(member, log, index, width).await?;
        Ok((index, bytes, true))
    };
    let mut fetches =
        futures_util::stream::iter((0..bundles).map(read_or_fetch)).buffered(BUNDLES_IN_FLIGHT);
    let mut tree = Tree::new();
    let mut fetched = 0;
    while let Some(next) = fetches.next().await {
        let (index, bytes, was_fetched) = next?;
        let width = bundle_width(index, size);
        let leaves = tlog::tile::decode_bundle(&bytes, width).map_err(|error| {
            BackupError::Invalid(format!("log {log}: entry bundle {index}: {error}"))
        })?;
        for leaf in leaves {
            tree.append(tlog::hash::leaf_hash(leaf), |_, _| {})
                .map_err(|error| BackupError::Invalid(format!("log {log}: {error}")))?;
        }
        if was_fetched {
            let path = backup.bundle(log, index, width);
            write_atomically(&path, &bytes)?;
            fetched += 1;
            if width == TILE_WIDTH {
                // The partial bundle an earlier backup took of it is superseded.
                let partials = path.with_extension("p");
                if partials.exists() {
                    std::fs::remove_dir_all(&partials).map_err(file_error(&partials))?;
                }
            }
        }
        progress(log, tree.size().0, size);
    }
    if tree.root() != head.root {
        return Err(BackupError::RootMismatch {
            log: log.clone(),
            size,
            computed: tree.root(),
            signed: head.root,
        });
    }
    Ok(fetched)
}

/// Copies one log's batch times, [`BATCH_TIMES_ROWS_MAX`] leaves per request.
async fn copy_batch_times(
    source: &dyn BundleSource,
    member: &NodeAddress,
    backup: &BackupDir,
    log: &LogName,
    size: u64,
) -> Result<(), BackupError> {
    let mut rows: BatchTimes = Vec::new();
    let mut first = 0;
    while first < size {
        let end = (first + BATCH_TIMES_ROWS_MAX).min(size);
        let chunk = source.batch_times(member, log, first, end).await?;
        check_batch_times(&chunk, first, end).map_err(|error| {
            BackupError::Invalid(format!(
                "log {log}: batch times of leaves {first}..{end}: {error}"
            ))
        })?;
        // A chunk's first row repeats the time in force: keep only the rows that change it.
        for row in chunk {
            if rows.last().is_none_or(|last| last.1 != row.1) {
                rows.push(row);
            }
        }
        first = end;
    }
    let bytes = postcard::to_stdvec(&rows)
        .map_err(|error| BackupError::Invalid(format!("encoding batch times: {error}")))?;
    write_atomically(&backup.batch_times(log), &bytes)
}

/// A backup directory as the bundle source of a restore: every member address is ignored.
#[derive(Debug)]
pub struct BackupSource {
    dir: BackupDir,
    sizes: BTreeMap<LogName, u64>,
    times: BTreeMap<LogName, BatchTimes>,
}

impl BackupSource {
    /// The backup in `dir`, whose snapshot describes `descriptor`.
    pub fn open(dir: &Path, descriptor: &Descriptor) -> Result<BackupSource, BackupError> {
        let backup = BackupDir::new(dir);
        let mut times = BTreeMap::new();
        let mut sizes = BTreeMap::new();
        for (log, head) in &descriptor.heads {
            let path = backup.batch_times(log);
            let bytes = std::fs::read(&path).map_err(file_error(&path))?;
            let rows: BatchTimes = postcard::from_bytes(&bytes)
                .map_err(|error| BackupError::Invalid(format!("{}: {error}", path.display())))?;
            if rows.first().map(|row| row.0) != Some(0) || !rows.is_sorted_by_key(|row| row.0) {
                return Err(BackupError::Invalid(format!(
                    "{}: rows out of order or not starting at leaf 0",
                    path.display()
                )));
            }
            times.insert(log.clone(), rows);
            sizes.insert(log.clone(), head.tree_size);
        }
        Ok(BackupSource {
            dir: backup,
            sizes,
            times,
        })
    }

    fn not_found(&self, log: &LogName, index: u64, width: u16) -> FetchError {
        FetchError::NotFound {
            member: self.dir.root.display().to_string(),
            log: log.clone(),
            index,
            width,
        }
    }
}

impl BundleSource for BackupSource {
    fn entry_bundle<'a>(
        &'a self,
        _member: &'a NodeAddress,
        log: &'a LogName,
        index: u64,
        width: u16,
    ) -> BundleFuture<'a> {
        Box::pin(async move {
            let path = self.dir.bundle(log, index, width);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(bytes),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    Err(self.not_found(log, index, width))
                }
                Err(error) => Err(FetchError::Failed {
                    member: path.display().to_string(),
                    reason: error.to_string(),
                }),
            }
        })
    }

    fn batch_times<'a>(
        &'a self,
        _member: &'a NodeAddress,
        log: &'a LogName,
        first: u64,
        end: u64,
    ) -> TimesFuture<'a> {
        Box::pin(async move {
            let width = u16::try_from(end.saturating_sub(first)).unwrap_or(u16::MAX);
            let (Some(rows), Some(&size)) = (self.times.get(log), self.sizes.get(log)) else {
                return Err(self.not_found(log, first, width));
            };
            if first >= end || end > size {
                return Err(self.not_found(log, first, width));
            }
            // The row in force at `first`, then the rows inside the range.
            let in_force = rows.partition_point(|row| row.0 <= first);
            let mut answer = vec![(first, rows[in_force - 1].1)];
            answer.extend(rows[in_force..].iter().take_while(|row| row.0 < end));
            Ok(answer)
        })
    }
}

/// A checkpoint the world has seen, for [`check_published`]: its text and where it came from.
#[derive(Clone, Debug)]
pub struct Published {
    /// Where it came from, for messages (a file name).
    pub name: String,
    /// The signed note.
    pub note: String,
}

/// What a restored log must show: its root at a published size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedHead {
    /// The log.
    pub log: LogName,
    /// The published size.
    pub size: u64,
    /// The published root.
    pub root: Hash,
}

/// Checks each published checkpoint against the backup before anything is restored: it must
/// be signed by a log's key and no larger than the backup's copy of that log. Returns what to
/// check once the leaves are in ([`check_restored`]).
pub fn check_published(
    logs: &Logs,
    descriptor: &Descriptor,
    published: &[Published],
) -> Result<Vec<PublishedHead>, BackupError> {
    let mut heads = Vec::new();
    for checkpoint in published {
        let bad = |reason: String| BackupError::Published {
            name: checkpoint.name.clone(),
            reason,
        };
        let origin = checkpoint.note.lines().next().unwrap_or_default();
        let config = logs
            .iter()
            .find(|config| config.origin == origin)
            .ok_or_else(|| bad(format!("origin {origin:?} is none of this cluster's logs")))?;
        let verifiers = config
            .verifiers()
            .map_err(|error| bad(format!("log key: {error}")))?;
        let signed = tlog::checkpoint::open(checkpoint.note.as_bytes(), &verifiers)
            .map_err(|error| bad(error.to_string()))?;
        let size = signed.checkpoint.size.0;
        let backup = descriptor
            .heads
            .iter()
            .find(|(log, _)| *log == config.name)
            .map_or(0, |(_, head)| head.tree_size);
        if size > backup {
            return Err(BackupError::RolledBack {
                log: config.name.clone(),
                published: size,
                backup,
            });
        }
        heads.push(PublishedHead {
            log: config.name.clone(),
            size,
            root: signed.checkpoint.root,
        });
    }
    Ok(heads)
}

/// Checks the restored state's root at each published size (blocking: call it through
/// `Blocking::run`).
pub fn check_restored(
    reader: &StateReader,
    published: &[PublishedHead],
) -> Result<(), BackupError> {
    let view = reader.view()?;
    for head in published.iter().filter(|head| head.size > 0) {
        let root = view.root_at(&head.log, head.size)?;
        if root != head.root {
            return Err(BackupError::Diverged {
                log: head.log.clone(),
                size: head.size,
                published: head.root,
                backup: root,
            });
        }
    }
    Ok(())
}

/// How a restored node joins a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreAs {
    /// A new member of the cluster the backup came from: the state keeps its Raft position
    /// (last applied log id, membership), so the leader sends only what came after it.
    Member,
    /// A node of a new cluster, initialised afterwards with `POST /admin/init`: the state forgets
    /// the old cluster's Raft position and keeps the logs.
    NewCluster {
        /// Refuse a log that no published checkpoint covers (see [`check_published`]).
        every_log_published: bool,
    },
}

/// Restores the backup in `backup_dir` into the empty `data_dir` of a node hosting `logs`.
/// Every published checkpoint is checked first against the backup's sizes ([`check_published`])
/// and, once the leaves are in, against their roots ([`check_restored`]). Returns each log
/// with its restored size.
pub async fn restore(
    data_dir: &Path,
    logs: Logs,
    backup_dir: &Path,
    published: &[Published],
    restore_as: RestoreAs,
) -> Result<Vec<(LogName, u64)>, BackupError> {
    if std::fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::Invalid(format!(
            "the data directory {} is not empty: a restore writes a new one",
            data_dir.display()
        )));
    }
    let snapshot = BackupDir::new(backup_dir).read_snapshot()?;
    let (meta, data) = &snapshot;
    let (descriptor, _) = check_descriptor(&logs, meta, data)?;
    let published = check_published(&logs, &descriptor, published)?;
    if restore_as
        == (RestoreAs::NewCluster {
            every_log_published: true,
        })
    {
        for (log, _) in &descriptor.heads {
            if !published.iter().any(|head| head.log == *log) {
                return Err(BackupError::Invalid(format!(
                    "log {log}: no published checkpoint of it was given (cairn-node restore \
                     --published), so nothing shows that the backup reaches what the log has \
                     published"
                )));
            }
        }
    }
    let source = BackupSource::open(backup_dir, &descriptor)?;
    // Restored beside the data directory and moved into place only once every check passed,
    // so a failed restore leaves nothing a node could start from.
    let work = data_dir.with_extension("restoring");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(file_error(&work))?;
    }
    let restored = restore_into(&work, logs, meta, data, source, &published, restore_as).await;
    if let Err(error) = restored {
        let _ = std::fs::remove_dir_all(&work);
        return Err(error);
    }
    std::fs::rename(&work, data_dir).map_err(file_error(data_dir))?;
    Ok(descriptor
        .heads
        .iter()
        .map(|(log, head)| (log.clone(), head.tree_size))
        .collect())
}

async fn restore_into(
    dir: &Path,
    logs: Logs,
    meta: &SnapshotMeta<NodeId, NodeAddress>,
    data: &[u8],
    source: BackupSource,
    published: &[PublishedHead],
    restore_as: RestoreAs,
) -> Result<(), BackupError> {
    let blocking = crate::env::Blocking::Pool;
    let stores =
        crate::storage::Stores::open_dir(dir, logs, &blocking, std::sync::Arc::new(source))?;
    // Files do not change between rounds: one round, then fail.
    let state = stores
        .state
        .with_catch_up_policy(crate::catch_up::CatchUpPolicy {
            rounds: 1,
            ..crate::catch_up::CatchUpPolicy::default()
        });
    state.restore(meta, data).await?;
    if matches!(restore_as, RestoreAs::NewCluster { .. }) {
        state.forget_cluster().await?;
    }
    let (reader, published) = (stores.reader.clone(), published.to_vec());
    blocking
        .run(move || check_restored(&reader, &published))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_widths_cover_the_log_exactly() {
        assert_eq!(bundle_width(0, 1), 1);
        assert_eq!(bundle_width(0, 256), 256);
        assert_eq!(bundle_width(1, 257), 1);
        assert_eq!(bundle_width(3, 1000), 1000 - 768);
    }

    #[tokio::test]
    async fn the_backup_source_answers_batch_times_as_a_member_does() {
        let root = std::env::temp_dir().join(format!("cairn-backup-times-{}", std::process::id()));
        let log = LogName("artifacts".into());
        let backup = BackupDir::new(&root);
        let rows: BatchTimes = vec![(0, Some(10)), (5, Some(20)), (9, None), (12, Some(30))];
        write_atomically(
            &backup.batch_times(&log),
            &postcard::to_stdvec(&rows).unwrap(),
        )
        .unwrap();
        let mut descriptor = Descriptor::default();
        descriptor.heads.push((
            log.clone(),
            LogHead {
                tree_size: 20,
                edge: Vec::new(),
                root: Hash::EMPTY_ROOT,
                checkpoint: String::new(),
            },
        ));
        let source = BackupSource::open(&root, &descriptor).unwrap();
        let member = NodeAddress {
            api_url: String::new(),
            cluster_url: String::new(),
        };
        let answer = source.batch_times(&member, &log, 6, 13).await.unwrap();
        assert_eq!(answer, vec![(6, Some(20)), (9, None), (12, Some(30))]);
        check_batch_times(&answer, 6, 13).unwrap();
        let answer = source.batch_times(&member, &log, 0, 5).await.unwrap();
        assert_eq!(answer, vec![(0, Some(10))]);
        assert!(source.batch_times(&member, &log, 15, 21).await.is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
