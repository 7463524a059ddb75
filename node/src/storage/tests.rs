//! Tests of the storage module: openraft's storage suite, equivalence with the in-memory apply,
//! reopen, reads across tile boundaries, group commit on a disk that loses unsynced writes,
//! purge and truncate boundaries, corruption, and snapshots: descriptors, catch-up by fetching
//! entry bundles from a second store, bad sources and crashes mid-install.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, Vote,
};
use redb::StorageBackend;
use redb::backends::InMemoryBackend;

/// redb 4.6 without `experimental-api-5`: backend methods return `std::io::Error`.
type BackendIoError = std::io::Error;
use tlog::note::{Ed25519Verifier, Verifier, Verifiers};
use tlog::tile::{Tile, decode_bundle, tile_data, tiles_for_size};
use tlog::{Hash, MemoryTree, TreeSize, leaf_hash};

use super::*;
use crate::catch_up::{
    BundleFuture, BundleSource, CatchUpPolicy, FetchError, NoBundles, TimesFuture,
};
use crate::state_machine::tests::{MemoryState, test_logs};
use crate::state_machine::{self, LogHead, StateAccess};
use crate::types::{
    AppendBatch, Command, CommandOutcome, LeafOutcome, LogName, NodeAddress, NodeId, TypeConfig,
};

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
        Arc::new(NoBundles),
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
        let mut keys = 0;
        for index in 0..size {
            let leaf = view.leaf(log, index).unwrap().unwrap();
            assert_eq!(view.find_leaf(log, &leaf_hash(&leaf)).unwrap(), Some(index));
            // Every key of every leaf finds it, and the index holds nothing else.
            for key in crate::search::keys(&leaf) {
                let (found, _) = view.search(log, &key, index.checked_sub(1), 1).unwrap();
                assert_eq!(found, [index], "{log} leaf {index} by {key:?}");
                keys += 1;
            }
        }
        let pairs = view.index_pairs(log);
        assert_eq!(
            pairs.len() as u64,
            size + keys,
            "{log}: index pairs beyond the leaves' hashes and keys"
        );
        out.push(format!("{log} index {pairs:?}"));
    }
    out
}

/// A leaf with search keys: every seventh artifact leaf (from 3 on) is a hashedrekord entry
/// signed by one of three keys, every fifth certificate leaf a certificate for one of two
/// e-mail addresses; the rest are plain bytes, which have none.
fn catch_up_leaf(log: &str, label: &str, i: u64) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey as _;
    use tlog::entry::{CanonicalBody, Digest, HashAlgorithm, HashedRekordV001, KeyMaterial};
    let plain = format!("{log} {label}{i}").into_bytes();
    match log {
        "artifact" if i % 7 == 3 => {
            let seed = u8::try_from(i % 3).unwrap() + 1;
            let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            let spki = key.verifying_key().to_public_key_der().unwrap();
            let digest = Digest::new(HashAlgorithm::Sha256, Hash::digest(&plain).as_bytes());
            let entry = HashedRekordV001::new(
                digest.unwrap(),
                tlog::entry::SignatureBytes::new(&[seed; 64]).unwrap(),
                KeyMaterial::from_public_key_der(spki.as_bytes()).unwrap(),
            );
            CanonicalBody::new(entry).unwrap().into_bytes()
        }
        "certificate" if i.is_multiple_of(5) => {
            // ECDSA signatures are randomized: make each certificate once, so every call gives
            // the same leaves (the timestamp, `i`, tells the leaves apart).
            static CERTIFICATES: std::sync::OnceLock<[Vec<u8>; 2]> = std::sync::OnceLock::new();
            let certificates = CERTIFICATES.get_or_init(|| {
                ["Alice@Example.com", "bob@example.com"].map(|email| {
                    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
                    params.subject_alt_names =
                        vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
                    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                    params.self_signed(&key).unwrap().der().to_vec()
                })
            });
            let certificate = &certificates[usize::try_from(i % 2).unwrap()];
            ca::ct::x509_leaf(i, certificate).unwrap()
        }
        _ => plain,
    }
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
        let mut stores =
            Stores::open_dir(dir.path(), test_logs(), Blocking::Pool, Arc::new(NoBundles)).unwrap();
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
    let mut stores =
        Stores::open_dir(dir.path(), test_logs(), Blocking::Pool, Arc::new(NoBundles)).unwrap();
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

#[tokio::test]
async fn a_committed_vote_is_read_back_uncommitted_so_a_leader_never_restarts_as_leader() {
    let disk = TestDisk::default();
    let mut log = LogStore::with_backend(disk.clone(), Blocking::Inline).unwrap();
    log.save_vote(&Vote::new_committed(7, 1)).await.unwrap();
    let mut recovered = LogStore::with_backend(disk.crash_image(), Blocking::Inline).unwrap();
    let vote = recovered.read_vote().await.unwrap().unwrap();
    assert!(
        !vote.is_committed(),
        "restored as leader of term 7: {vote:?}"
    );
    assert_eq!(
        vote,
        Vote::new(7, 1),
        "the vote itself survives: no second vote in term 7"
    );
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
    use super::leaf_stream::{LEAF_CHUNKS, LEAF_DIRECTORY};
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

    // A tile hash of the wrong length (Merkle level 8: one hash over leaves 0..256).
    overwrite(
        &stores.state.db,
        TILE_HASHES,
        ("artifacts", 8, 0),
        &[1, 2, 3],
    );
    let view = stores.reader.view().unwrap();
    assert!(matches!(
        view.hash_tile(&log, Tile::hashes(1, 0, 1)),
        Err(ReadError::Disk(DiskError::Corrupt { .. }))
    ));
    drop(view);

    // A leaf-directory group (leaves 0..100, whose hashes are the level-0 tile's) of the
    // wrong length.
    overwrite(
        &stores.state.db,
        LEAF_DIRECTORY,
        ("artifacts", 0),
        &[1, 2, 3],
    );
    let view = stores.reader.view().unwrap();
    assert!(matches!(
        view.hash_tile(&log, Tile::hashes(0, 0, 256)),
        Err(ReadError::Disk(DiskError::Corrupt { .. }))
    ));
    assert!(matches!(
        view.inclusion_proof(&log, 2, 300),
        Err(ReadError::Proof { .. })
    ));
    assert!(view.leaf(&log, 2).is_err());
    drop(view);

    // A chunk of the leaf stream cut short: leaves 100.. are read from the directory's next
    // group, their bytes are missing.
    overwrite(&stores.state.db, LEAF_CHUNKS, ("artifacts", 0), b"1");
    let view = stores.reader.view().unwrap();
    assert!(matches!(
        view.leaf(&log, 150),
        Err(ReadError::Disk(DiskError::Missing(_)))
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

// ---- Snapshots: descriptors and catch-up ----

/// A bundle source that reads other stores in memory (real stores, not mocks), keyed by the
/// member's `api_url`. It can flip a byte of every bundle it serves, or stall forever after a
/// number of fetches (to interrupt an install between chunk commits).
#[derive(Clone, Default)]
struct TestSource(Arc<Mutex<SourceState>>);

#[derive(Default)]
struct SourceState {
    members: BTreeMap<String, StateReader>,
    corrupt: bool,
    /// Answer no batch times (every member fails to).
    no_times: bool,
    stall_after: Option<u64>,
    fetches: u64,
}

impl TestSource {
    fn serving(members: &[(&str, &StateReader)]) -> TestSource {
        let source = TestSource::default();
        for (url, reader) in members {
            source.set(|state| {
                state.members.insert((*url).to_string(), (*reader).clone());
            });
        }
        source
    }

    fn set(&self, change: impl FnOnce(&mut SourceState)) {
        change(&mut self.0.lock().unwrap());
    }

    fn fetches(&self) -> u64 {
        self.0.lock().unwrap().fetches
    }
}

impl BundleSource for TestSource {
    fn entry_bundle<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        index: u64,
        width: u16,
    ) -> BundleFuture<'a> {
        Box::pin(async move {
            let (reader, corrupt, stall) = {
                let mut state = self.0.lock().unwrap();
                state.fetches += 1;
                let stall = state.stall_after.is_some_and(|after| state.fetches > after);
                (
                    state.members.get(&member.api_url).cloned(),
                    state.corrupt,
                    stall,
                )
            };
            if stall {
                std::future::pending::<()>().await;
            }
            let failed = |reason: String| FetchError::Failed {
                member: member.api_url.clone(),
                reason,
            };
            let reader = reader.ok_or_else(|| failed("unreachable".into()))?;
            let bundle = reader
                .view()
                .and_then(|view| view.entry_bundle(log, index, width))
                .map_err(|error| failed(error.to_string()))?;
            let Some(mut bundle) = bundle else {
                return Err(FetchError::NotFound {
                    member: member.api_url.clone(),
                    log: log.clone(),
                    index,
                    width,
                });
            };
            if corrupt {
                // The last byte belongs to the last leaf: the bundle still decodes, the leaf
                // is wrong.
                if let Some(last) = bundle.last_mut() {
                    *last ^= 1;
                }
            }
            Ok(bundle)
        })
    }

    fn batch_times<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        first: u64,
        end: u64,
    ) -> TimesFuture<'a> {
        Box::pin(async move {
            let (reader, no_times) = {
                let state = self.0.lock().unwrap();
                (state.members.get(&member.api_url).cloned(), state.no_times)
            };
            let failed = |reason: String| FetchError::Failed {
                member: member.api_url.clone(),
                reason,
            };
            if no_times {
                return Err(failed("no batch times here".into()));
            }
            let reader = reader.ok_or_else(|| failed("unreachable".into()))?;
            reader
                .view()
                .and_then(|view| view.batch_times(log, first, end))
                .map_err(|error| failed(error.to_string()))?
                .ok_or_else(|| FetchError::NotFound {
                    member: member.api_url.clone(),
                    log: log.clone(),
                    index: first,
                    width: 0,
                })
        })
    }
}

/// Retries quickly: tests wait real time between rounds.
fn quick_policy() -> CatchUpPolicy {
    CatchUpPolicy {
        rounds: 3,
        retry_delay: std::time::Duration::from_millis(5),
        retry_delay_max: std::time::Duration::from_millis(20),
        ..CatchUpPolicy::default()
    }
}

fn stores_over(backend: impl StorageBackend, source: &TestSource) -> Stores {
    let mut stores = Stores::open_backends(
        InMemoryBackend::new(),
        backend,
        test_logs(),
        Blocking::Inline,
        Arc::new(source.clone()),
    )
    .unwrap();
    stores.state = stores.state.with_catch_up_policy(quick_policy());
    stores
}

/// The membership of the catch-up tests: node 1 (`mem://1`) is listed first and is empty, so
/// every fetch falls over to node 2 (`mem://2`), the store that has the leaves.
fn catch_up_membership() -> Membership<NodeId, NodeAddress> {
    let nodes: BTreeMap<NodeId, NodeAddress> = [1, 2]
        .into_iter()
        .map(|id| {
            let address = NodeAddress {
                api_url: format!("mem://{id}"),
                ..NodeAddress::default()
            };
            (id, address)
        })
        .collect();
    Membership::new(vec![[1, 2].into()], nodes)
}

/// An append whose batch time is distinct for each Raft index, so that a wrong time is seen.
fn append_at(log: &str, leaves: Vec<Vec<u8>>, index: u64) -> Command {
    Command::Append(AppendBatch {
        log: LogName(log.into()),
        leaves,
        timestamp_unix_ms: 1_700_000_000_000 + index * 1_000,
    })
}

/// Entry 1 sets the membership; entries 2..=10 append 3000 leaves to `artifacts` in batches
/// that cross 256-leaf bundles and start a level-1 tile; entries 11..=13 go to `certificates`.
fn catch_up_entries() -> Vec<Entry<TypeConfig>> {
    let mut entries = vec![entry(1, EntryPayload::Membership(catch_up_membership()))];
    let mut next = 0u64;
    for count in [1u64, 255, 1, 299, 700, 1000, 3, 300, 441] {
        let leaves = (next..next + count)
            .map(|i| catch_up_leaf("artifact", "", i))
            .collect();
        next += count;
        let index = entries.len() as u64 + 1;
        entries.push(entry(
            index,
            EntryPayload::Normal(append_at("artifacts", leaves, index)),
        ));
    }
    for count in [3u64, 250, 10] {
        let label = format!("{} ", entries.len());
        let leaves = (0..count)
            .map(|i| catch_up_leaf("certificate", &label, i))
            .collect();
        let index = entries.len() as u64 + 1;
        entries.push(entry(
            index,
            EntryPayload::Normal(append_at("certificates", leaves, index)),
        ));
    }
    entries
}

fn both_logs() -> [LogName; 2] {
    [artifacts(), LogName("certificates".into())]
}

/// Every read a client makes, compared between two stores: tiles, bundles, leaves, dedup
/// answers, checkpoints, and proofs at several sizes.
fn assert_same_reads(a: &StateReader, b: &StateReader) {
    let (a, b) = (a.view().unwrap(), b.view().unwrap());
    let names = both_logs();
    assert_eq!(dump(&a, &names), dump(&b, &names));
    for log in &names {
        assert_eq!(a.checkpoint(log).unwrap(), b.checkpoint(log).unwrap());
        let size = a.head(log).unwrap().map_or(0, |head| head.tree_size);
        for old in [1, size / 3, size / 2, size.saturating_sub(1), size] {
            if old == 0 || size == 0 {
                continue;
            }
            assert_eq!(
                a.inclusion_proof(log, old - 1, old).unwrap(),
                b.inclusion_proof(log, old - 1, old).unwrap()
            );
            assert_eq!(
                a.consistency_proof(log, old, size).unwrap(),
                b.consistency_proof(log, old, size).unwrap()
            );
        }
        assert_eq!(a.leaf(log, size).unwrap(), None);
        assert_eq!(b.leaf(log, size).unwrap(), None);
    }
}

/// Dedup keys of `log` in its leaf index, at any index (beyond the head too): exactly one per
/// leaf, or an install left a stray one.
fn dedup_rows(stores: &Stores, log: &LogName) -> u64 {
    use super::tables::{INDEX_BLOCKS, INDEX_TAIL};
    use redb::ReadableDatabase;
    let txn = stores.state.db.begin_read().unwrap();
    let name = log.0.as_str();
    let tail = txn.open_table(INDEX_TAIL).unwrap();
    let in_tail = tail.range((name, 0)..=(name, u64::MAX)).unwrap().count() as u64;
    let blocks = txn.open_table(INDEX_BLOCKS).unwrap();
    let mut pairs = Vec::new();
    for row in blocks
        .range((name, 0, 0, 0)..=(name, u64::MAX, u64::MAX, u64::MAX))
        .unwrap()
    {
        let (_, value) = row.unwrap();
        for chunk in value.value().chunks_exact(16) {
            pairs.push(chunk.to_vec());
        }
    }
    pairs.sort();
    pairs.dedup();
    // Dedup keys carry tag 0 in their top byte only by chance; count leaves instead: each run
    // pair set holds one dedup pair per leaf, so count distinct leaf indices.
    let mut leaves: Vec<u64> = pairs
        .iter()
        .map(|pair| u64::from_be_bytes(pair[8..].try_into().unwrap()))
        .collect();
    leaves.sort_unstable();
    leaves.dedup();
    in_tail + leaves.len() as u64
}

async fn snapshot_of(stores: &mut Stores) -> (SnapshotMeta<NodeId, NodeAddress>, Vec<u8>) {
    let snapshot = stores
        .state
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    (snapshot.meta, snapshot.snapshot.into_inner())
}

async fn install(
    stores: &mut Stores,
    meta: &SnapshotMeta<NodeId, NodeAddress>,
    data: &[u8],
) -> Result<(), StorageError<NodeId>> {
    let mut receiving = stores.state.begin_receiving_snapshot().await.unwrap();
    *receiving = std::io::Cursor::new(data.to_vec());
    stores.state.install_snapshot(meta, receiving).await
}

#[tokio::test]
async fn a_descriptor_snapshot_catches_up_a_fresh_store_by_fetching_bundles() {
    let mut source = memory_stores(Blocking::Inline);
    let empty = memory_stores(Blocking::Inline);
    source.state.apply(catch_up_entries()).await.unwrap();
    let (meta, data) = snapshot_of(&mut source).await;
    assert_eq!(meta.last_log_id, Some(log_id(13)));
    // O(logs), not O(entries): two heads (size, edge of at most 64 hashes, root, signed
    // checkpoint) and a membership, for 3263 leaves.
    assert!(data.len() < 1024, "descriptor of {} bytes", data.len());
    let current = source.state.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, meta);
    // Served as stored, followed by the members the sender knows (none here: no Raft runs).
    let served = current.snapshot.into_inner();
    assert_eq!(served.get(..data.len()), Some(data.as_slice()));
    assert_eq!(served.get(data.len()..), Some(&[0u8][..]));

    let bundles = TestSource::serving(&[("mem://1", &empty.reader), ("mem://2", &source.reader)]);
    let mut target = stores_over(InMemoryBackend::new(), &bundles);

    // Meta that does not match the descriptor is refused, and so is a forged head (its edge no
    // longer gives its root) or a head whose checkpoint is not signed by the log's key.
    let mut wrong = meta.clone();
    wrong.last_log_id = Some(log_id(12));
    assert!(install(&mut target, &wrong, &data).await.is_err());
    let descriptor: Descriptor = postcard::from_bytes(&data).unwrap();
    let mut forged = descriptor.clone();
    forged.heads[0].1.root = Hash::digest(b"forged");
    let forged = postcard::to_stdvec(&forged).unwrap();
    assert!(install(&mut target, &meta, &forged).await.is_err());
    let mut unsigned = descriptor.clone();
    unsigned.heads[0].1.checkpoint = descriptor.heads[1].1.checkpoint.clone();
    let unsigned = postcard::to_stdvec(&unsigned).unwrap();
    assert!(install(&mut target, &meta, &unsigned).await.is_err());
    assert_eq!(
        bundles.fetches(),
        0,
        "fetched before checking the descriptor"
    );
    assert_eq!(target.reader.view().unwrap().last_applied().unwrap(), None);

    install(&mut target, &meta, &data).await.unwrap();
    assert_same_reads(&source.reader, &target.reader);
    assert_eq!(
        target.state.applied_state().await.unwrap(),
        source.state.applied_state().await.unwrap()
    );
    let installed = target.state.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(installed.meta, meta);
    let served = installed.snapshot.into_inner();
    assert_eq!(served.get(..data.len()), Some(data.as_slice()));
    for log in both_logs() {
        assert_eq!(dedup_rows(&target, &log), dedup_rows(&source, &log));
    }
    // The index was rebuilt from the fetched leaves: all of Alice's certificates, in any case,
    // page by page.
    let view = target.reader.view().unwrap();
    let alice = crate::search::SearchKey::for_identity("alice@EXAMPLE.com");
    let certificates = LogName("certificates".into());
    let (first, more) = view.search(&certificates, &alice, None, 10).unwrap();
    assert!(more);
    let (rest, more) = view
        .search(&certificates, &alice, first.last().copied(), 1000)
        .unwrap();
    assert!(!more);
    let all: Vec<u64> = first.into_iter().chain(rest).collect();
    let size = view.head(&certificates).unwrap().unwrap().tree_size;
    let expected: Vec<u64> = (0..size)
        .filter(|&index| {
            let leaf = view.leaf(&certificates, index).unwrap().unwrap();
            crate::search::keys(&leaf).contains(&alice)
        })
        .collect();
    assert_eq!(all, expected);
    assert!(all.len() > 10, "{all:?}");
    drop(view);
    // 12 artifact bundles and 2 certificate bundles, each asked of the empty member first.
    assert_eq!(bundles.fetches(), 2 * (12 + 2));

    // Apply continues identically on both, dedup index included.
    let next = append_command("artifacts", vec![b"artifact 7".to_vec(), b"new".to_vec()]);
    let a = source
        .state
        .apply([entry(14, EntryPayload::Normal(next.clone()))])
        .await
        .unwrap();
    let b = target
        .state
        .apply([entry(14, EntryPayload::Normal(next))])
        .await
        .unwrap();
    assert_eq!(a, b);
    assert!(matches!(
        &a[0],
        CommandOutcome::Appended(batch)
            if batch.leaves[0] == crate::types::LeafOutcome::Duplicate { index: 7 }
    ));
    assert_same_reads(&source.reader, &target.reader);
    // A leaf applied after the install is dated on both alike.
    let (from, to) = (source.reader.view().unwrap(), target.reader.view().unwrap());
    assert!(
        to.integrated_time_ms(&artifacts(), 3_000)
            .unwrap()
            .is_some()
    );
    assert_eq!(
        to.integrated_time_ms(&artifacts(), 3_000).unwrap(),
        from.integrated_time_ms(&artifacts(), 3_000).unwrap()
    );
    drop((from, to));

    // The target's own snapshot is a descriptor too, and serves a third store.
    let (meta, data) = snapshot_of(&mut target).await;
    let mut third = stores_over(InMemoryBackend::new(), &bundles);
    install(&mut third, &meta, &data).await.unwrap();
    assert_same_reads(&target.reader, &third.reader);
}

#[tokio::test]
async fn an_install_over_a_prefix_fetches_only_the_rest_and_refuses_older_snapshots() {
    let mut source = memory_stores(Blocking::Inline);
    let entries = catch_up_entries();
    source.state.apply(entries[..5].to_vec()).await.unwrap();
    let (old_meta, old_data) = snapshot_of(&mut source).await;
    source.state.apply(entries[5..].to_vec()).await.unwrap();
    let (meta, data) = snapshot_of(&mut source).await;

    let bundles = TestSource::serving(&[("mem://2", &source.reader)]);
    let mut target = stores_over(InMemoryBackend::new(), &bundles);
    // The target applied entries 1..=4 itself: 257 artifact leaves, which end inside bundle 1.
    target.state.apply(entries[..4].to_vec()).await.unwrap();
    install(&mut target, &meta, &data).await.unwrap();
    assert_same_reads(&source.reader, &target.reader);
    // Leaves the target applied itself keep their batch's time, and the fetched ones have
    // theirs, from the member.
    assert_same_times(&source.reader, &target.reader);
    assert_eq!(
        target
            .reader
            .view()
            .unwrap()
            .integrated_time_ms(&artifacts(), 3_000)
            .unwrap(),
        None
    );
    // Bundles 1..=11 of artifacts (the first from leaf 257 on) and 2 of certificates, each
    // asked of the missing node 1 first.
    assert_eq!(bundles.fetches(), 2 * (11 + 2));
    for log in both_logs() {
        assert_eq!(dedup_rows(&target, &log), dedup_rows(&source, &log));
    }

    // The same snapshot again only verifies; an older one is refused and changes nothing.
    install(&mut target, &meta, &data).await.unwrap();
    assert_eq!(bundles.fetches(), 26);
    assert!(install(&mut target, &old_meta, &old_data).await.is_err());
    assert_same_reads(&source.reader, &target.reader);
    assert_eq!(
        target.state.applied_state().await.unwrap().0,
        Some(log_id(13))
    );
}

/// Asserts that every leaf of both logs has a known integrated time in `to`, the one it has in
/// `from`.
fn assert_same_times(from: &StateReader, to: &StateReader) {
    let (from, to) = (from.view().unwrap(), to.view().unwrap());
    for log in both_logs() {
        let size = from.head(&log).unwrap().map_or(0, |head| head.tree_size);
        for index in 0..size {
            let time = to.integrated_time_ms(&log, index).unwrap();
            assert!(time.is_some(), "{log} leaf {index} has no time");
            assert_eq!(time, from.integrated_time_ms(&log, index).unwrap());
        }
    }
}

#[tokio::test]
async fn fetched_leaves_get_their_batch_times_from_a_member_that_knows_them() {
    let mut source = memory_stores(Blocking::Inline);
    source.state.apply(catch_up_entries()).await.unwrap();
    let (meta, data) = snapshot_of(&mut source).await;
    // Every batch has its own time, so a leaf dated by the wrong batch is seen.
    let view = source.reader.view().unwrap();
    let times: std::collections::BTreeSet<u64> = (0..3_000)
        .filter_map(|index| view.integrated_time_ms(&artifacts(), index).unwrap())
        .collect();
    assert_eq!(times.len(), 9);
    drop(view);

    // A member that answers no times (as one that caught up without them would): the
    // fetched leaves' times are unknown, never an earlier batch's.
    let no_times = TestSource::serving(&[("mem://2", &source.reader)]);
    no_times.set(|state| state.no_times = true);
    let mut blind = stores_over(InMemoryBackend::new(), &no_times);
    install(&mut blind, &meta, &data).await.unwrap();
    assert_same_reads(&source.reader, &blind.reader);
    let view = blind.reader.view().unwrap();
    for index in [0, 255, 256, 1_000, 2_999] {
        assert_eq!(view.integrated_time_ms(&artifacts(), index).unwrap(), None);
    }
    // It says so when asked, rather than giving a time.
    assert_eq!(
        view.batch_times(&artifacts(), 256, 512).unwrap(),
        Some(vec![(256, None)])
    );
    drop(view);

    // Asked first (node 1), the blind member knows nothing; node 2 knows every time.
    let both = TestSource::serving(&[("mem://1", &blind.reader), ("mem://2", &source.reader)]);
    let mut target = stores_over(InMemoryBackend::new(), &both);
    install(&mut target, &meta, &data).await.unwrap();
    assert_same_reads(&source.reader, &target.reader);
    assert_same_times(&source.reader, &target.reader);

    // Only the blind member: the times stay unknown (v1 reads answer 503 there).
    let only_blind = TestSource::serving(&[("mem://1", &blind.reader)]);
    let mut unknowing = stores_over(InMemoryBackend::new(), &only_blind);
    install(&mut unknowing, &meta, &data).await.unwrap();
    assert_same_reads(&source.reader, &unknowing.reader);
    assert_eq!(
        unknowing
            .reader
            .view()
            .unwrap()
            .integrated_time_ms(&artifacts(), 1_000)
            .unwrap(),
        None
    );

    // A store that caught up with the times serves them to the next one.
    let (meta, data) = snapshot_of(&mut target).await;
    let from_target = TestSource::serving(&[("mem://1", &target.reader)]);
    let mut third = stores_over(InMemoryBackend::new(), &from_target);
    install(&mut third, &meta, &data).await.unwrap();
    assert_same_times(&source.reader, &third.reader);
}

#[tokio::test]
async fn a_corrupted_bundle_fails_the_install_and_a_good_source_then_succeeds() {
    let mut source = memory_stores(Blocking::Inline);
    source.state.apply(catch_up_entries()).await.unwrap();
    let (meta, data) = snapshot_of(&mut source).await;
    let bundles = TestSource::serving(&[("mem://2", &source.reader)]);
    bundles.set(|state| state.corrupt = true);
    let mut target = stores_over(InMemoryBackend::new(), &bundles);

    assert!(install(&mut target, &meta, &data).await.is_err());
    // Nothing is visible: the heads, applied index and every read are as before, although
    // unverified leaves are stored beyond the (empty) heads.
    let view = target.reader.view().unwrap();
    assert_eq!(view.last_applied().unwrap(), None);
    for log in both_logs() {
        assert_eq!(view.head(&log).unwrap(), None);
        assert_eq!(view.leaf(&log, 0).unwrap(), None);
    }
    assert_eq!(
        view.find_leaf(&artifacts(), &leaf_hash(b"artifact 0"))
            .unwrap(),
        None
    );
    drop(view);
    assert!(dedup_rows(&target, &artifacts()) > 0, "nothing was stored");
    // Apply refuses to run over a pending install.
    let command = append_command("artifacts", vec![b"x".to_vec()]);
    assert!(
        target
            .state
            .apply([entry(1, EntryPayload::Normal(command))])
            .await
            .is_err()
    );

    // The retry reuses the stored leaves first, finds the wrong root, refetches, and ends
    // with no stray dedup entry for the corrupted leaves.
    bundles.set(|state| state.corrupt = false);
    install(&mut target, &meta, &data).await.unwrap();
    assert_same_reads(&source.reader, &target.reader);
    for log in both_logs() {
        assert_eq!(dedup_rows(&target, &log), dedup_rows(&source, &log));
    }
}

#[tokio::test]
async fn an_install_interrupted_between_chunks_is_resumed_on_reopen() {
    let mut source = memory_stores(Blocking::Inline);
    source.state.apply(catch_up_entries()).await.unwrap();
    let (meta, data) = snapshot_of(&mut source).await;

    // Reopen both what was written (a process crash) and only what was synced (power loss).
    for power_loss in [false, true] {
        let disk = TestDisk::default();
        let bundles = TestSource::serving(&[("mem://2", &source.reader)]);
        // Each bundle is asked of the missing node 1 first: 10 fetches store 5 bundles.
        bundles.set(|state| state.stall_after = Some(10));
        // One bundle at a time and one per transaction, so that the stall falls between
        // stored chunks.
        let one_at_a_time = CatchUpPolicy {
            bundles_in_flight: 1,
            bundles_per_chunk: 1,
            ..quick_policy()
        };
        let reopened = {
            let mut target = stores_over(disk.clone(), &bundles);
            target.state = target.state.with_catch_up_policy(one_at_a_time);
            let interrupted = tokio::time::timeout(
                std::time::Duration::from_millis(100),
                install(&mut target, &meta, &data),
            )
            .await;
            assert!(interrupted.is_err(), "the install finished");
            // The image is taken before the drop: closing a redb database syncs it.
            let image = if power_loss {
                disk.crash_image()
            } else {
                disk.clone()
            };
            drop(target);
            image
        };

        bundles.set(|state| {
            state.stall_after = None;
            state.fetches = 0;
        });
        let mut target = stores_over(reopened, &bundles);
        // Consistent before anything resumes: nothing of the install is visible.
        let view = target.reader.view().unwrap();
        assert_eq!(view.last_applied().unwrap(), None);
        assert_eq!(view.head(&artifacts()).unwrap(), None);
        assert_eq!(view.leaf(&artifacts(), 0).unwrap(), None);
        drop(view);
        // openraft's first call at startup finishes the install.
        let (applied, membership) = target.state.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(13)));
        assert_eq!(membership, meta.last_membership);
        assert_same_reads(&source.reader, &target.reader);
        for log in both_logs() {
            assert_eq!(dedup_rows(&target, &log), dedup_rows(&source, &log));
        }
        // After a process crash the 5 bundles already stored are reused, not refetched; after
        // power loss they were never synced (only the pending record was) and are fetched.
        let expected = if power_loss { 2 * 14 } else { 2 * (14 - 5) };
        assert_eq!(bundles.fetches(), expected, "power loss: {power_loss}");
    }
}

/// A database from before the leaf stream (a row per leaf, a row per leaf hash) is moved to
/// the stream when opened, and reads as the same state.
#[tokio::test]
async fn leaves_stored_a_row_each_move_to_the_leaf_stream_on_open() {
    use super::leaf_stream::{self, LEAF_CHUNKS, LEAF_DIRECTORY};
    use super::tables::{OLD_LEAVES, TILE_HASHES};
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};

    let mut source = memory_stores(Blocking::Inline);
    source.state.apply(catch_up_entries()).await.unwrap();
    let disk = TestDisk::default();
    {
        let mut stores = stores_over(disk.clone(), &TestSource::default());
        stores.state.apply(catch_up_entries()).await.unwrap();
        let txn = stores.state.db.begin_write().unwrap();
        {
            let chunks = txn.open_table(LEAF_CHUNKS).unwrap();
            let directory = txn.open_table(LEAF_DIRECTORY).unwrap();
            let mut old = txn.open_table(OLD_LEAVES).unwrap();
            let mut hashes = txn.open_table(TILE_HASHES).unwrap();
            for log in both_logs() {
                let name = log.0.as_str();
                let size = leaf_stream::stored_leaves(&directory, name).unwrap();
                let leaves = leaf_stream::read_leaves(&chunks, &directory, name, 0, size).unwrap();
                for (index, leaf) in (0..).zip(&leaves) {
                    old.insert((name, index), leaf.as_slice()).unwrap();
                    let hash = tlog::leaf_hash(leaf);
                    hashes
                        .insert((name, 0, index), hash.as_bytes().as_slice())
                        .unwrap();
                }
            }
        }
        txn.delete_table(LEAF_CHUNKS).unwrap();
        txn.delete_table(LEAF_DIRECTORY).unwrap();
        txn.commit().unwrap();
    }
    let reopened = stores_over(disk, &TestSource::default());
    assert_same_reads(&source.reader, &reopened.reader);
    let txn = reopened.state.db.begin_read().unwrap();
    assert!(
        !txn.list_tables()
            .unwrap()
            .any(|table| table.name() == OLD_LEAVES.name())
    );
    let hashes = txn.open_table(TILE_HASHES).unwrap();
    for log in both_logs() {
        let name = log.0.as_str();
        assert_eq!(
            hashes
                .range((name, 0, 0)..=(name, 0, u64::MAX))
                .unwrap()
                .count(),
            0
        );
    }
    assert!(hashes.len().unwrap() > 0, "levels above 0 stay");
}

// ---- The leaf index ----

/// A leaf index small enough that a few hundred leaves flush, merge in slices and leave merges
/// in progress between batches.
fn tiny_index() -> IndexShape {
    IndexShape {
        tail_leaves: 8,
        fanout: 3,
        block_entries: 4,
        slice_entries: 8,
        work_per_leaf: 6,
    }
}

/// Stores in memory with the [`tiny_index`].
fn tiny_index_stores() -> Stores {
    Stores::open_backends_shaped(
        InMemoryBackend::new(),
        InMemoryBackend::new(),
        test_logs(),
        Blocking::Inline,
        Arc::new(NoBundles),
        tiny_index(),
    )
    .unwrap()
}

/// Every leaf so far is found by its hash and by each of its keys, through every shape the index
/// takes on the way: flushes, merges in progress, finished merges.
#[tokio::test]
async fn the_leaf_index_answers_exactly_while_it_flushes_and_merges() {
    let mut stores = tiny_index_stores();
    let log = artifacts();
    let mut leaves: Vec<Vec<u8>> = Vec::new();
    let mut by_key: BTreeMap<crate::search::SearchKey, Vec<u64>> = BTreeMap::new();
    let mut merging_seen = false;
    for batch in 0..70u64 {
        let count = batch % 9 + 1;
        let mut command = Vec::new();
        for j in 0..count {
            let i = batch * 10 + j;
            command.push(catch_up_leaf("artifact", "index ", i));
        }
        // A leaf of an earlier batch again: a duplicate, answered with its first index.
        if let Some(old) = leaves.get(usize::try_from(batch * 3).unwrap() % leaves.len().max(1)) {
            command.push(old.clone());
        }
        let outcome = stores
            .state
            .apply(vec![entry(
                batch + 1,
                EntryPayload::Normal(append_command("artifacts", command.clone())),
            )])
            .await
            .unwrap();
        let CommandOutcome::Appended(outcome) = &outcome[0] else {
            panic!("{outcome:?}");
        };
        for (leaf, result) in command.iter().zip(&outcome.leaves) {
            match result {
                LeafOutcome::Appended { index } => {
                    assert_eq!(*index, leaves.len() as u64);
                    for key in crate::search::keys(leaf) {
                        by_key.entry(key).or_default().push(*index);
                    }
                    leaves.push(leaf.clone());
                }
                LeafOutcome::Duplicate { index } => {
                    assert_eq!(&leaves[usize::try_from(*index).unwrap()], leaf);
                }
            }
        }
        let view = stores.reader.view().unwrap();
        let meta = view.index_meta(&log).unwrap();
        merging_seen |= meta.merging();
        for (index, leaf) in leaves.iter().enumerate() {
            assert_eq!(
                view.find_leaf(&log, &leaf_hash(leaf)).unwrap(),
                Some(index as u64),
                "batch {batch}: leaf {index}"
            );
        }
        assert_eq!(
            view.find_leaf(&log, &leaf_hash(b"never logged")).unwrap(),
            None
        );
        for (key, expected) in &by_key {
            // Paged two at a time, as a client pages through a long answer.
            let mut found: Vec<u64> = Vec::new();
            let mut after = None;
            loop {
                let (page, more) = view.search(&log, key, after, 2).unwrap();
                found.extend(&page);
                after = page.last().copied();
                if !more {
                    break;
                }
            }
            assert_eq!(&found, expected, "batch {batch}: {key:?}");
        }
        assert!(
            view.index_tail_len(&log) < tiny_index().tail_leaves + 10,
            "the tail is flushed as the head passes it"
        );
    }
    assert!(merging_seen, "no batch left a merge in progress");
    let meta = stores.reader.view().unwrap().index_meta(&log).unwrap();
    assert!(meta.run_count() > 1, "{meta:?}");
    assert!(leaves.len() > 200);
}

/// Index keys are 8-byte prefixes; a pair that points at a leaf of another hash (what a prefix
/// collision looks like) is checked against the leaf and does not change any answer.
#[tokio::test]
async fn a_colliding_index_pair_costs_a_read_and_changes_no_answer() {
    use super::tables::INDEX_TAIL;
    let mut stores = tiny_index_stores();
    let leaves: Vec<Vec<u8>> = (0..40)
        .map(|i| catch_up_leaf("artifact", "c ", i))
        .collect();
    stores
        .state
        .apply(vec![entry(
            1,
            EntryPayload::Normal(append_command("artifacts", leaves.clone())),
        )])
        .await
        .unwrap();
    let absent = leaf_hash(b"absent");
    let key = crate::search::keys(&leaves[3]).into_iter().next().unwrap();
    let other_key = crate::search::SearchKey::for_identity("nobody@example.com");
    // The last tail row (leaf 39) now also claims the absent hash and a foreign search key.
    {
        let txn = stores.state.db.begin_write().unwrap();
        {
            let mut tail = txn.open_table(INDEX_TAIL).unwrap();
            let keys = crate::search::keys(&leaves[39])
                .into_iter()
                .collect::<Vec<_>>();
            let mut row = leaf_index::tail_row(&leaf_hash(&leaves[39]), &keys);
            row.extend_from_slice(&leaf_index::dedup_key(&absent).to_be_bytes());
            row.extend_from_slice(&leaf_index::search_key(&other_key).to_be_bytes());
            tail.insert(("artifacts", 39), row.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let view = stores.reader.view().unwrap();
    let log = artifacts();
    assert_eq!(view.find_leaf(&log, &absent).unwrap(), None);
    assert_eq!(
        view.search(&log, &other_key, None, 10).unwrap(),
        (vec![], false)
    );
    assert_eq!(
        view.find_leaf(&log, &leaf_hash(&leaves[39])).unwrap(),
        Some(39)
    );
    let (found, _) = view.search(&log, &key, None, 100).unwrap();
    assert!(found.contains(&3));
}

/// Applies `leaves` to the artifact log, `batch` leaves per Raft entry (entries 1, 2, ...).
async fn apply_in_batches(stores: &mut Stores, leaves: &[Vec<u8>], batch: usize) {
    for (position, chunk) in leaves.chunks(batch).enumerate() {
        let command = append_command("artifacts", chunk.to_vec());
        stores
            .state
            .apply(vec![entry(
                position as u64 + 1,
                EntryPayload::Normal(command),
            )])
            .await
            .unwrap();
    }
}

/// An index built in bulk (big runs of the levels merges would have reached, as after a
/// snapshot install or a rebuild) holds the same pairs as the one apply kept batch by batch,
/// and answers every lookup alike.
#[tokio::test]
async fn an_index_built_in_bulk_holds_what_apply_kept() {
    let mut stores = tiny_index_stores();
    let log = artifacts();
    let leaves: Vec<Vec<u8>> = (0..2000)
        .map(|i| catch_up_leaf("artifact", "bulk ", i))
        .collect();
    apply_in_batches(&mut stores, &leaves, 97).await;
    let before = stores.reader.view().unwrap().index_pairs(&log);
    assert!(before.len() >= 2000);
    // 2000 leaves of 8-leaf tails in runs of 3: three level-4 runs (648 leaves each), then
    // level 1 and level 0.
    super::reindex::rebuild_leaf_index(&stores.state.db, &tiny_index()).unwrap();
    stores.state.tail_memory.forget();
    let view = stores.reader.view().unwrap();
    assert_eq!(view.index_pairs(&log), before);
    // The level-1 runs were flushed in one piece (one filter segment), not merged slice by
    // slice from level-0 runs (a segment per slice).
    let meta = view.index_meta(&log).unwrap();
    let level_one: Vec<u64> = meta
        .run_levels()
        .into_iter()
        .filter_map(|(id, level)| (level == 1).then_some(id))
        .collect();
    assert_eq!(level_one.len(), 2, "{meta:?}");
    {
        use redb::ReadableDatabase;
        let txn = stores.state.db.begin_read().unwrap();
        let filters = txn.open_table(super::run_filter::INDEX_FILTERS).unwrap();
        for run in level_one {
            let segments = filters
                .range(("artifacts", run, 0)..=("artifacts", run, u64::MAX))
                .unwrap()
                .count();
            assert_eq!(segments, 1, "run {run}");
        }
    }
    for (index, leaf) in (0..).zip(&leaves) {
        assert_eq!(
            view.find_leaf(&log, &tlog::leaf_hash(leaf)).unwrap(),
            Some(index)
        );
    }
}

/// `cairn-node reindex`: an index rebuilt from the leaves answers exactly as the one apply kept,
/// and the store opens over it.
#[tokio::test]
async fn a_reindexed_store_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let leaves: Vec<Vec<u8>> = (0..300)
        .map(|i| catch_up_leaf("artifact", "r ", i))
        .collect();
    let before = {
        let mut stores = Stores::open_dir(
            dir.path(),
            test_logs(),
            Blocking::Inline,
            Arc::new(NoBundles),
        )
        .unwrap();
        apply_in_batches(&mut stores, &leaves, 37).await;
        dump(&stores.reader.view().unwrap(), &both_logs())
    };
    let reindexed = super::reindex(dir.path()).unwrap();
    assert_eq!(reindexed, [("artifacts".to_string(), 300)]);
    let stores = Stores::open_dir(
        dir.path(),
        test_logs(),
        Blocking::Inline,
        Arc::new(NoBundles),
    )
    .unwrap();
    assert_eq!(dump(&stores.reader.view().unwrap(), &both_logs()), before);
    drop(stores);
    assert!(super::reindex(&dir.path().join("nowhere")).is_err());
}
