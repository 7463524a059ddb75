//! Snapshots: descriptors, catch-up by fetching entry bundles from a second store, bad
//! sources, crashes mid-install, and databases of older layouts.

use super::*;

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
        &Blocking::Inline,
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
    let mut source = memory_stores(&Blocking::Inline);
    let empty = memory_stores(&Blocking::Inline);
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
    let mut source = memory_stores(&Blocking::Inline);
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
    let mut source = memory_stores(&Blocking::Inline);
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
    let mut source = memory_stores(&Blocking::Inline);
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
    let mut source = memory_stores(&Blocking::Inline);
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

    let mut source = memory_stores(&Blocking::Inline);
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

/// A database from before the levels halfway up the tiles gets their hashes when opened, and
/// reads as the same state; a truncate removes those beyond the new size.
#[tokio::test]
async fn hashes_halfway_up_the_tiles_are_stored_on_open_and_truncated_with_the_leaves() {
    use super::tables::{MIDDLE_HASHES_BUILT, SM_META, TILE_HASHES};
    use redb::ReadableDatabase;

    let middle = crate::state_machine::STORED_LEVEL_STEP;
    let middle_rows = |stores: &Stores, log: &LogName| -> Vec<(u64, Vec<u8>)> {
        let txn = stores.state.db.begin_read().unwrap();
        let hashes = txn.open_table(TILE_HASHES).unwrap();
        let name = log.0.as_str();
        hashes
            .range((name, middle, 0)..=(name, middle, u64::MAX))
            .unwrap()
            .map(|row| {
                let (key, value) = row.unwrap();
                (key.value().2, value.value().to_vec())
            })
            .collect()
    };
    let mut source = memory_stores(&Blocking::Inline);
    source.state.apply(catch_up_entries()).await.unwrap();
    let disk = TestDisk::default();
    let applied = {
        let mut stores = stores_over(disk.clone(), &TestSource::default());
        stores.state.apply(catch_up_entries()).await.unwrap();
        let applied: Vec<_> = both_logs()
            .iter()
            .map(|log| middle_rows(&stores, log))
            .collect();
        // Apply stored one per complete 16-leaf subtree: 3,000 and 263 leaves.
        assert_eq!(applied[0].len(), 3000 / 16);
        assert_eq!(applied[1].len(), 263 / 16);
        let txn = stores.state.db.begin_write().unwrap();
        {
            let mut hashes = txn.open_table(TILE_HASHES).unwrap();
            for log in both_logs() {
                let name = log.0.as_str();
                hashes
                    .retain_in((name, middle, 0)..=(name, middle, u64::MAX), |_, _| false)
                    .unwrap();
            }
            txn.open_table(SM_META)
                .unwrap()
                .remove(MIDDLE_HASHES_BUILT)
                .unwrap();
        }
        txn.commit().unwrap();
        applied
    };
    let reopened = stores_over(disk, &TestSource::default());
    let stored: Vec<_> = both_logs()
        .iter()
        .map(|log| middle_rows(&reopened, log))
        .collect();
    assert_eq!(stored, applied, "the same hashes as apply stored");
    assert_same_reads(&source.reader, &reopened.reader);

    let txn = reopened.state.db.begin_write().unwrap();
    {
        let mut rows = super::rows::RedbState::open(&txn).unwrap();
        rows.truncate(&artifacts(), 40).unwrap();
        rows.finish().unwrap();
    }
    txn.commit().unwrap();
    let kept: Vec<u64> = middle_rows(&reopened, &artifacts())
        .into_iter()
        .map(|(index, _)| index)
        .collect();
    assert_eq!(
        kept,
        [0, 1],
        "leaves 0..32 make the only complete 16-leaf subtrees below 40"
    );
}

#[test]
fn snapshot_data_of_a_newer_format_is_refused_and_format_1_reads_with_or_without_its_tag() {
    let descriptor = postcard::to_stdvec(&Descriptor::default()).unwrap();
    use super::super::snapshot::split_data;
    assert_eq!(split_data(&descriptor).unwrap().0, Descriptor::default());
    let tagged = |format: u32| {
        let mut data = vec![snapshot::SNAPSHOT_FORMAT_TAG];
        data.extend(postcard::to_stdvec(&format).unwrap());
        data.extend(&descriptor);
        data
    };
    assert_eq!(
        split_data(&tagged(snapshot::SNAPSHOT_FORMAT)).unwrap().0,
        Descriptor::default()
    );
    let error = split_data(&tagged(snapshot::SNAPSHOT_FORMAT + 1)).unwrap_err();
    assert!(error.contains("newer cairn-node"), "{error}");
}
