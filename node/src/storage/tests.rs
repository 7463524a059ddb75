//! Tests of the storage module: openraft's storage suite, equivalence with the in-memory apply,
//! reopen, reads across tile boundaries, group commit on a disk that loses unsynced writes,
//! purge and truncate boundaries, corruption, and snapshot transfer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    StorageError, Vote,
};
use redb::StorageBackend;
use redb::backends::InMemoryBackend;

/// redb 4.6 without `experimental-api-5`: backend methods return `std::io::Error`.
type BackendIoError = std::io::Error;
use tlog::note::{Ed25519Verifier, Verifier, Verifiers};
use tlog::tile::{Tile, decode_bundle, tile_data, tiles_for_size};
use tlog::{Hash, MemoryTree, TreeSize, leaf_hash};

use super::*;
use crate::state_machine::tests::{MemoryState, test_logs};
use crate::state_machine::{self, LogHead, StateAccess};
use crate::types::{AppendBatch, Command, CommandOutcome, LogName, NodeId, TypeConfig};

// ---- Helpers ----

/// A disk that keeps what was synced apart from what was only written, so a test can "crash"
/// it: [`TestDisk::crash_image`] is the disk as it would be after power loss.
#[derive(Debug, Default, Clone)]
struct TestDisk(Arc<Mutex<DiskState>>);

#[derive(Debug, Default)]
struct DiskState {
    live: Vec<u8>,
    durable: Vec<u8>,
    syncs: u64,
}

impl TestDisk {
    fn syncs(&self) -> u64 {
        self.0.lock().unwrap().syncs
    }

    /// A new disk holding only what this one had synced.
    fn crash_image(&self) -> TestDisk {
        let durable = self.0.lock().unwrap().durable.clone();
        TestDisk(Arc::new(Mutex::new(DiskState {
            live: durable.clone(),
            durable,
            syncs: 0,
        })))
    }
}

fn out_of_range() -> BackendIoError {
    std::io::Error::other("out of range")
}

impl StorageBackend for TestDisk {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.0.lock().unwrap().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let state = self.0.lock().unwrap();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let source = state
            .live
            .get(start..start + out.len())
            .ok_or_else(out_of_range)?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.0.lock().unwrap().live.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let mut state = self.0.lock().unwrap();
        state.durable = state.live.clone();
        state.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut state = self.0.lock().unwrap();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        state
            .live
            .get_mut(start..start + data.len())
            .ok_or_else(out_of_range)?
            .copy_from_slice(data);
        Ok(())
    }
}

fn memory_stores(blocking: Blocking) -> Stores {
    Stores::open_backends(
        InMemoryBackend::new(),
        InMemoryBackend::new(),
        test_logs(),
        blocking,
    )
    .unwrap()
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload,
    }
}

fn blank(index: u64) -> Entry<TypeConfig> {
    entry(index, EntryPayload::Blank)
}

fn append_command(log: &str, leaves: Vec<Vec<u8>>) -> Command {
    Command::Append(AppendBatch {
        log: LogName(log.into()),
        leaves,
        timestamp_unix_ms: 1_700_000_000_000,
    })
}

fn artifacts() -> LogName {
    LogName("artifacts".into())
}

fn verifiers(log: &LogName) -> Verifiers {
    let logs = test_logs();
    let config = logs.get(log).unwrap();
    let verifier =
        Ed25519Verifier::new(&config.origin, config.signing_key.verifying_key()).unwrap();
    let mut verifiers = Verifiers::new();
    verifiers.push(Verifier::Ed25519(verifier)).unwrap();
    verifiers
}

/// Appends through the log store and waits until the entries are durable.
async fn append_durably(log: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    log.append_with(
        entries,
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    )
    .await
    .unwrap();
    receiver.await.unwrap().unwrap();
}

/// Every table's content as seen by one view, for comparing two stores.
fn dump(view: &StateView, logs: &[LogName]) -> Vec<String> {
    let mut out = vec![format!("applied {:?}", view.last_applied().unwrap())];
    for log in logs {
        let head = view.head(log).unwrap();
        out.push(format!("{log} head {head:?}"));
        let size = head.map_or(0, |head| head.tree_size);
        for tile in tiles_for_size(TreeSize(size)) {
            out.push(format!(
                "{log} {tile} {:?}",
                view.hash_tile(log, tile).unwrap()
            ));
            if tile.merkle_level() == 0 {
                let bundle = view.entry_bundle(log, tile.index, tile.width).unwrap();
                out.push(format!("{log} bundle {} {bundle:?}", tile.index));
            }
        }
        for index in 0..size {
            let leaf = view.leaf(log, index).unwrap().unwrap();
            assert_eq!(view.find_leaf(log, &leaf_hash(&leaf)).unwrap(), Some(index));
        }
    }
    out
}

// ---- openraft's suite ----

struct MemoryBuilder(Blocking);

impl StoreBuilder<TypeConfig, LogStore, StateStore> for MemoryBuilder {
    async fn build(&self) -> Result<((), LogStore, StateStore), StorageError<NodeId>> {
        let stores = memory_stores(self.0);
        Ok(((), stores.log, stores.state))
    }
}

#[test]
fn openraft_suite_passes_inline() {
    Suite::test_all(MemoryBuilder(Blocking::Inline)).unwrap();
}

#[test]
fn openraft_suite_passes_on_the_blocking_pool() {
    Suite::test_all(MemoryBuilder(Blocking::Pool)).unwrap();
}

// ---- Apply ----

#[tokio::test]
async fn apply_matches_the_in_memory_apply() {
    let logs = test_logs();
    let mut stores = memory_stores(Blocking::Inline);
    let mut memory = MemoryState::default();
    let mut commands = Vec::new();
    for i in 0..60u32 {
        let log = if i % 3 == 0 {
            "certificates"
        } else {
            "artifacts"
        };
        // Repeats across batches and within one give duplicates.
        let leaves = (0..(i % 7 + 1))
            .map(|j| format!("{}-{j}", i % 25).into_bytes())
            .collect();
        commands.push(append_command(log, leaves));
    }
    commands.push(append_command("unknown", vec![b"x".to_vec()]));
    commands.push(append_command("artifacts", Vec::new()));

    let mut entries = Vec::new();
    let mut expected = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let index = entries.len() as u64 + 1;
        if i % 10 == 5 {
            entries.push(blank(index));
            expected.push(CommandOutcome::Nothing);
            continue;
        }
        expected.push(state_machine::apply(&mut memory, &logs, command).unwrap());
        entries.push(entry(index, EntryPayload::Normal(command.clone())));
    }
    let membership = Membership::new(vec![[1, 2, 3].into()], None);
    let last = entries.len() as u64 + 1;
    entries.push(entry(last, EntryPayload::Membership(membership.clone())));
    expected.push(CommandOutcome::Nothing);

    let mut outcomes = Vec::new();
    let mut rest = entries.as_slice();
    for size in [1, 5, 17, 2, 30, 100].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        outcomes.extend(stores.state.apply(batch.to_vec()).await.unwrap());
        rest = tail;
    }
    assert_eq!(outcomes, expected);
    assert!(
        outcomes
            .iter()
            .any(|outcome| matches!(outcome, CommandOutcome::Refused(_)))
    );

    let view = stores.reader.view().unwrap();
    for log in [artifacts(), LogName("certificates".into())] {
        assert_eq!(view.head(&log).unwrap(), memory.head(&log).unwrap());
    }
    let (applied, stored_membership) = stores.state.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(last)));
    assert_eq!(stored_membership.membership(), &membership);
    assert_eq!(view.last_applied().unwrap(), Some(log_id(last)));
}

#[tokio::test]
async fn reopen_after_close_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let names = [artifacts(), LogName("certificates".into())];
    let before = {
        let mut stores = Stores::open_dir(dir.path(), test_logs(), Blocking::Pool).unwrap();
        let entries: Vec<_> = (1..=20)
            .map(|i| {
                let log = if i % 2 == 0 {
                    "artifacts"
                } else {
                    "certificates"
                };
                let leaves = (0..i).map(|j| format!("{i}/{j}").into_bytes()).collect();
                entry(i, EntryPayload::Normal(append_command(log, leaves)))
            })
            .collect();
        append_durably(&mut stores.log, entries.clone()).await;
        stores.log.save_vote(&Vote::new(3, 1)).await.unwrap();
        stores.log.save_committed(Some(log_id(20))).await.unwrap();
        stores.state.apply(entries).await.unwrap();
        let view = stores.reader.view().unwrap();
        (
            dump(&view, &names),
            stores.log.get_log_state().await.unwrap(),
            stores.log.try_get_log_entries(..).await.unwrap(),
        )
    };
    let mut stores = Stores::open_dir(dir.path(), test_logs(), Blocking::Pool).unwrap();
    let view = stores.reader.view().unwrap();
    assert_eq!(dump(&view, &names), before.0);
    assert_eq!(stores.log.get_log_state().await.unwrap(), before.1);
    assert_eq!(stores.log.try_get_log_entries(..).await.unwrap(), before.2);
    assert_eq!(stores.log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert_eq!(stores.log.read_committed().await.unwrap(), Some(log_id(20)));
    assert_eq!(
        stores.state.applied_state().await.unwrap().0,
        Some(log_id(20))
    );
}

// ---- Reads ----

#[tokio::test]
async fn reads_across_tile_boundaries_match_the_tree() {
    let log = artifacts();
    let mut stores = memory_stores(Blocking::Inline);
    let mut tree = MemoryTree::new();
    let mut leaves: Vec<Vec<u8>> = Vec::new();
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    let verifiers = verifiers(&log);
    // 3000 leaves: crosses eleven level-0 tiles and starts a level-1 tile.
    let batches = [1u64, 255, 1, 299, 700, 1000, 3, 300, 441];
    for (n, count) in batches.into_iter().enumerate() {
        let batch: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("leaf {}", leaves.len() as u64 + i).into_bytes())
            .collect();
        for leaf in &batch {
            tree.append(leaf_hash(leaf)).unwrap();
        }
        leaves.extend(batch.iter().cloned());
        roots.insert(tree.size().0, tree.root());
        let command = append_command("artifacts", batch);
        stores
            .state
            .apply([entry(n as u64 + 1, EntryPayload::Normal(command))])
            .await
            .unwrap();

        let view = stores.reader.view().unwrap();
        let size = tree.size().0;
        let head = view.head(&log).unwrap().unwrap();
        assert_eq!((head.tree_size, head.root), (size, tree.root()));
        let signed = tlog::checkpoint::open(
            view.checkpoint(&log).unwrap().unwrap().as_bytes(),
            &verifiers,
        )
        .unwrap();
        assert_eq!(signed.checkpoint.root, tree.root());

        for tile in tiles_for_size(TreeSize(size)) {
            let want = tile_data(&tree.store, tile).unwrap();
            assert_eq!(view.hash_tile(&log, tile).unwrap(), Some(want), "{tile}");
            if tile.merkle_level() == 0 {
                let bundle = view
                    .entry_bundle(&log, tile.index, tile.width)
                    .unwrap()
                    .unwrap();
                let first = usize::try_from(tile.index * 256).unwrap();
                let decoded = decode_bundle(&bundle, tile.width).unwrap();
                assert_eq!(decoded, leaves[first..first + decoded.len()]);
            }
        }
        for (&old, old_root) in &roots {
            for index in [0, old / 2, old - 1] {
                let proof = view.inclusion_proof(&log, index, old).unwrap();
                let leaf = &leaves[usize::try_from(index).unwrap()];
                proof.verify(&leaf_hash(leaf), old_root).unwrap();
            }
            if old < size {
                let proof = view.consistency_proof(&log, old, size).unwrap();
                proof.verify(old_root, &tree.root()).unwrap();
            }
        }
    }

    let view = stores.reader.view().unwrap();
    assert_eq!(view.head(&log).unwrap().unwrap().tree_size, 3000);
    // A partial tile the log has passed is still served; one beyond its size is not.
    assert_eq!(
        view.hash_tile(&log, Tile::hashes(0, 0, 1)).unwrap(),
        Some(leaf_hash(b"leaf 0").as_bytes().to_vec())
    );
    assert!(view.entry_bundle(&log, 0, 1).unwrap().is_some());
    assert!(
        view.hash_tile(&log, Tile::hashes(0, 11, 184))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        view.hash_tile(&log, Tile::hashes(0, 11, 185)).unwrap(),
        None
    );
    assert_eq!(view.entry_bundle(&log, 11, 185).unwrap(), None);
    assert_eq!(
        view.hash_tile(&log, Tile::hashes(1, 0, 11))
            .unwrap()
            .map(|t| t.len()),
        Some(352)
    );
    assert_eq!(view.hash_tile(&log, Tile::hashes(1, 0, 12)).unwrap(), None);
    assert_eq!(view.hash_tile(&log, Tile::hashes(2, 0, 1)).unwrap(), None);
    assert!(matches!(
        view.hash_tile(&log, Tile::entries(0, 1)),
        Err(ReadError::NotAHashTile(_))
    ));
    assert!(matches!(
        view.entry_bundle(&log, 0, 0),
        Err(ReadError::Width(0))
    ));
    assert!(matches!(
        view.inclusion_proof(&log, 0, 3001),
        Err(ReadError::BeyondHead { .. })
    ));
    let certificates = LogName("certificates".into());
    assert!(matches!(
        view.inclusion_proof(&certificates, 0, 1),
        Err(ReadError::EmptyLog(_))
    ));
    assert_eq!(view.checkpoint(&certificates).unwrap(), None);
    assert_eq!(view.leaf(&log, 3000).unwrap(), None);
    assert_eq!(
        view.find_leaf(&log, &leaf_hash(b"leaf 2999")).unwrap(),
        Some(2999)
    );
    assert_eq!(view.find_leaf(&log, &leaf_hash(b"nope")).unwrap(), None);
}

#[tokio::test]
async fn a_view_is_a_consistent_snapshot_while_apply_continues() {
    let log = artifacts();
    let mut stores = memory_stores(Blocking::Inline);
    let command = append_command("artifacts", vec![b"a".to_vec()]);
    stores
        .state
        .apply([entry(1, EntryPayload::Normal(command))])
        .await
        .unwrap();
    let view = stores.reader.view().unwrap();
    let command = append_command("artifacts", vec![b"b".to_vec()]);
    stores
        .state
        .apply([entry(2, EntryPayload::Normal(command))])
        .await
        .unwrap();
    assert_eq!(view.head(&log).unwrap().unwrap().tree_size, 1);
    assert_eq!(view.leaf(&log, 1).unwrap(), None);
    assert_eq!(view.last_applied().unwrap(), Some(log_id(1)));
    let fresh = stores.reader.clone().view().unwrap();
    assert_eq!(fresh.head(&log).unwrap().unwrap().tree_size, 2);
}

// ---- The log ----

#[tokio::test]
async fn group_commit_fires_callbacks_in_order_after_one_flush() {
    let disk = TestDisk::default();
    let mut log = LogStore::with_backend(disk.clone(), Blocking::Inline).unwrap();
    let synced_at_open = disk.syncs();
    let fired: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    // This test runs on a current-thread runtime: the flusher cannot run until we yield, so
    // all 50 appends are queued before the first flush.
    for index in 0..50 {
        let (fired, disk) = (fired.clone(), disk.clone());
        log.append_with(
            vec![blank(index)],
            Box::new(move |result| {
                result.unwrap();
                fired.lock().unwrap().push((index, disk.syncs()));
            }),
        )
        .await
        .unwrap();
    }
    assert!(fired.lock().unwrap().is_empty(), "fired before any flush");
    assert_eq!(disk.syncs(), synced_at_open, "an append synced");
    assert_eq!(
        log.reader().try_get_log_entries(..).await.unwrap().len(),
        50
    );
    // Power lost now: the appends were never synced.
    let mut crashed = LogStore::with_backend(disk.crash_image(), Blocking::Inline).unwrap();
    assert_eq!(crashed.get_log_state().await.unwrap().last_log_id, None);

    for _ in 0..100 {
        if fired.lock().unwrap().len() == 50 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let fired_now = fired.lock().unwrap().clone();
    assert_eq!(
        fired_now
            .iter()
            .map(|(index, _)| *index)
            .collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert!(
        fired_now.iter().all(|(_, syncs)| *syncs > synced_at_open),
        "a callback fired before the flush"
    );
    // One group: one two-phase Immediate commit, two syncs.
    assert_eq!(disk.syncs() - synced_at_open, 2);
    let mut recovered = LogStore::with_backend(disk.crash_image(), Blocking::Inline).unwrap();
    assert_eq!(
        recovered.get_log_state().await.unwrap().last_log_id,
        Some(log_id(49))
    );

    // Appends that each wait for their flush still complete in order.
    for index in 50..55 {
        append_durably(&mut log, vec![blank(index)]).await;
    }
    let mut recovered = LogStore::with_backend(disk.crash_image(), Blocking::Inline).unwrap();
    assert_eq!(recovered.try_get_log_entries(..).await.unwrap().len(), 55);
}

#[tokio::test]
async fn purge_and_truncate_keep_their_boundaries_across_a_crash() {
    let disk = TestDisk::default();
    let mut log = LogStore::with_backend(disk.clone(), Blocking::Inline).unwrap();
    append_durably(&mut log, (0..=10).map(blank).collect()).await;
    log.purge(log_id(3)).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3)));
    assert_eq!(state.last_log_id, Some(log_id(10)));
    let indices = |entries: Vec<Entry<TypeConfig>>| {
        entries
            .iter()
            .map(|entry| entry.log_id.index)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        indices(log.try_get_log_entries(..).await.unwrap()),
        (4..=10).collect::<Vec<_>>()
    );
    log.truncate(log_id(8)).await.unwrap();
    assert_eq!(
        indices(log.try_get_log_entries(0..100).await.unwrap()),
        (4..=7).collect::<Vec<_>>()
    );
    log.purge(log_id(7)).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(7)));
    assert_eq!(state.last_log_id, Some(log_id(7)), "empty log: last purged");

    // Purge and truncate are durable on return, with no flush of appends needed.
    let mut recovered = LogStore::with_backend(disk.crash_image(), Blocking::Inline).unwrap();
    let state = recovered.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(7)));
    assert_eq!(state.last_log_id, Some(log_id(7)));
    assert!(recovered.try_get_log_entries(..).await.unwrap().is_empty());

    // The vote is on disk when save_vote returns.
    log.save_vote(&Vote::new(5, 2)).await.unwrap();
    let mut recovered = LogStore::with_backend(disk.crash_image(), Blocking::Inline).unwrap();
    assert_eq!(recovered.read_vote().await.unwrap(), Some(Vote::new(5, 2)));
}

// ---- Corruption ----

fn overwrite<K: redb::Key + 'static>(
    db: &redb::Database,
    table: redb::TableDefinition<K, &'static [u8]>,
    key: K::SelfType<'_>,
    value: &[u8],
) {
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    use super::tables::{HEADS, LOG, LOG_META, TILE_HASHES};

    let log = artifacts();
    let mut stores = memory_stores(Blocking::Inline);
    let leaves = (0..300).map(|i| format!("{i}").into_bytes()).collect();
    let command = append_command("artifacts", leaves);
    stores
        .state
        .apply([entry(1, EntryPayload::Normal(command.clone()))])
        .await
        .unwrap();
    append_durably(&mut stores.log, (0..5).map(blank).collect()).await;

    // A tile hash of the wrong length.
    overwrite(
        &stores.state.db,
        TILE_HASHES,
        ("artifacts", 0, 3),
        &[1, 2, 3],
    );
    let view = stores.reader.view().unwrap();
    assert!(matches!(
        view.hash_tile(&log, Tile::hashes(0, 0, 256)),
        Err(ReadError::Disk(DiskError::Corrupt { .. }))
    ));
    assert!(matches!(
        view.inclusion_proof(&log, 3, 300),
        Err(ReadError::Proof { .. })
    ));
    drop(view);

    // A head that is not postcard, then one with trailing bytes.
    overwrite(&stores.state.db, HEADS, "artifacts", b"garbage");
    let view = stores.reader.view().unwrap();
    assert!(matches!(
        view.head(&log),
        Err(ReadError::Disk(DiskError::Corrupt { .. }))
    ));
    drop(view);
    let more = append_command("artifacts", vec![b"more".to_vec()]);
    assert!(
        stores
            .state
            .apply([entry(2, EntryPayload::Normal(more))])
            .await
            .is_err()
    );
    let mut head = postcard::to_stdvec(&LogHead::default()).unwrap();
    head.push(0);
    overwrite(&stores.state.db, HEADS, "artifacts", &head);
    assert!(stores.reader.view().unwrap().checkpoint(&log).is_err());

    // A Raft log entry and the vote.
    overwrite(&stores.log.db, LOG, 4, b"\xff\xff\xff");
    assert!(stores.log.try_get_log_entries(..).await.is_err());
    assert!(stores.log.get_log_state().await.is_err());
    overwrite(&stores.log.db, LOG_META, "vote", b"");
    assert!(stores.log.read_vote().await.is_err());
    // An entry stored under the wrong index.
    let moved = postcard::to_stdvec(&blank(9)).unwrap();
    overwrite(&stores.log.db, LOG, 4, &moved);
    assert!(stores.log.try_get_log_entries(4..5).await.is_err());
}

// ---- Snapshots ----

#[tokio::test]
async fn a_snapshot_installed_in_a_fresh_store_gives_identical_reads() {
    let names = [artifacts(), LogName("certificates".into())];
    let mut source = memory_stores(Blocking::Inline);
    let mut entries = vec![entry(
        1,
        EntryPayload::Membership(Membership::new(vec![[1, 2].into()], None)),
    )];
    for i in 2..=12u64 {
        let log = if i % 3 == 0 {
            "certificates"
        } else {
            "artifacts"
        };
        let leaves = (0..i * 40)
            .map(|j| format!("{i}.{j}").into_bytes())
            .collect();
        entries.push(entry(i, EntryPayload::Normal(append_command(log, leaves))));
    }
    source.state.apply(entries).await.unwrap();
    let snapshot = source
        .state
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(12)));
    let current = source.state.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);

    let mut target = memory_stores(Blocking::Inline);
    // Meta that does not match the payload is refused, and so is a forged head.
    let mut wrong = snapshot.meta.clone();
    wrong.last_log_id = Some(log_id(11));
    let data = snapshot.snapshot.get_ref().clone();
    assert!(
        target
            .state
            .install_snapshot(&wrong, Box::new(std::io::Cursor::new(data.clone())))
            .await
            .is_err()
    );
    let mut payload: snapshot::Payload = postcard::from_bytes(&data).unwrap();
    payload.heads[0].1.root = Hash::digest(b"forged");
    let forged = postcard::to_stdvec(&payload).unwrap();
    assert!(
        target
            .state
            .install_snapshot(&snapshot.meta, Box::new(std::io::Cursor::new(forged)))
            .await
            .is_err()
    );
    assert_eq!(target.reader.view().unwrap().last_applied().unwrap(), None);

    let mut receiving = target.state.begin_receiving_snapshot().await.unwrap();
    *receiving = std::io::Cursor::new(data);
    target
        .state
        .install_snapshot(&snapshot.meta, receiving)
        .await
        .unwrap();

    assert_eq!(
        dump(&target.reader.view().unwrap(), &names),
        dump(&source.reader.view().unwrap(), &names)
    );
    assert_eq!(
        target.state.applied_state().await.unwrap(),
        source.state.applied_state().await.unwrap()
    );
    assert_eq!(
        target
            .state
            .get_current_snapshot()
            .await
            .unwrap()
            .unwrap()
            .meta,
        snapshot.meta
    );
    // Apply continues identically on both, dedup index included.
    let next = append_command("artifacts", vec![b"2.0".to_vec(), b"new".to_vec()]);
    let a = source
        .state
        .apply([entry(13, EntryPayload::Normal(next.clone()))])
        .await
        .unwrap();
    let b = target
        .state
        .apply([entry(13, EntryPayload::Normal(next))])
        .await
        .unwrap();
    assert_eq!(a, b);
    assert!(matches!(
        &a[0],
        CommandOutcome::Appended(batch) if matches!(batch.leaves[0], crate::types::LeafOutcome::Duplicate { .. })
    ));
    assert_eq!(
        dump(&target.reader.view().unwrap(), &names),
        dump(&source.reader.view().unwrap(), &names)
    );
}
