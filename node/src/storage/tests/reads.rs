//! Reads across tile boundaries, the Raft log's group commit, purge and truncate across
//! crashes, and corrupt rows.

use super::*;

// ---- Reads ----

#[tokio::test]
async fn reads_across_tile_boundaries_match_the_tree() {
    let log = artifacts();
    let mut stores = memory_stores(&Blocking::Inline);
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
    drop(view);

    // The upper levels are held in memory: with their rows gone from the table, proofs and
    // tiles are still read (from memory), and the same.
    let proof = stores
        .reader
        .view()
        .unwrap()
        .inclusion_proof(&log, 1234, 3000)
        .unwrap();
    let tile = Tile::hashes(1, 0, 11);
    let level_8 = stores.reader.view().unwrap().hash_tile(&log, tile).unwrap();
    {
        let txn = stores.state.db.begin_write().unwrap();
        {
            let mut table = txn.open_table(super::tables::TILE_HASHES).unwrap();
            for level in [4u8, 8] {
                for index in 0..(3000u64 >> level) {
                    table.remove(("artifacts", level, index)).unwrap().unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }
    let view = stores.reader.view().unwrap();
    assert_eq!(view.inclusion_proof(&log, 1234, 3000).unwrap(), proof);
    assert_eq!(view.hash_tile(&log, tile).unwrap(), level_8);
    proof
        .verify(&leaf_hash(&leaves[1234]), &tree.root())
        .unwrap();
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
    let mut stores = memory_stores(&Blocking::Inline);
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
    let mut stores = memory_stores(&Blocking::Inline);
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

#[test]
fn both_databases_record_their_format_and_refuse_a_newer_one() {
    let (log_disk, state_disk) = (TestDisk::default(), TestDisk::default());
    drop(LogStore::with_backend(log_disk.clone(), Blocking::Inline).unwrap());
    drop(
        StateStore::with_backend(
            state_disk.clone(),
            test_logs(),
            Blocking::Inline,
            Arc::new(NoBundles),
        )
        .unwrap(),
    );
    // Each database holds its format; a later version raises it.
    let bump = |disk: &TestDisk, table: redb::TableDefinition<&str, &[u8]>| {
        let db = redb::Database::builder()
            .create_with_backend(disk.clone())
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(table).unwrap();
            let stored: u32 =
                postcard::from_bytes(meta.get("format").unwrap().unwrap().value()).unwrap();
            assert_eq!(stored, DISK_FORMAT);
            meta.insert(
                "format",
                postcard::to_stdvec(&(DISK_FORMAT + 1)).unwrap().as_slice(),
            )
            .unwrap();
        }
        txn.commit().unwrap();
    };
    bump(&log_disk, super::super::tables::LOG_META);
    bump(&state_disk, super::super::tables::SM_META);
    let newer = |error: DiskError| {
        assert!(
            matches!(error, DiskError::NewerFormat { found, known, .. }
                if found == DISK_FORMAT + 1 && known == DISK_FORMAT),
            "{error}"
        );
        assert!(error.to_string().contains("newer cairn-node"), "{error}");
    };
    newer(LogStore::with_backend(log_disk, Blocking::Inline).unwrap_err());
    newer(
        StateStore::with_backend(
            state_disk,
            test_logs(),
            Blocking::Inline,
            Arc::new(NoBundles),
        )
        .unwrap_err(),
    );
}
