//! The leaf index through flushes and merges, and its bulk builds.

use super::*;

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
        &Blocking::Inline,
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

/// Applies `leaves` to the artifact log, `batch` leaves per Raft entry (entries `first_id`,
/// `first_id + 1`, ...).
async fn apply_in_batches(stores: &mut Stores, leaves: &[Vec<u8>], batch: usize, first_id: u64) {
    for (id, chunk) in (first_id..).zip(leaves.chunks(batch)) {
        let command = append_command("artifacts", chunk.to_vec());
        stores
            .state
            .apply(vec![entry(id, EntryPayload::Normal(command))])
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
    apply_in_batches(&mut stores, &leaves, 97, 1).await;
    let before = stores.reader.view().unwrap().index_pairs(&log);
    assert!(before.len() >= 2000);
    // 2000 leaves of 8-leaf tails in runs of 3: three level-4 runs (648 leaves each), then
    // level 1 and level 0.
    super::reindex::rebuild_leaf_index(&stores.state.db, &tiny_index(), IndexWork::All).unwrap();
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

/// A snapshot install flushes every leaf into runs and leaves the merges those runs start to
/// apply's upkeep: lookups are exact meanwhile, and later appends finish the merges.
#[tokio::test]
async fn merges_left_by_a_flush_only_catch_up_are_finished_by_apply() {
    let mut stores = tiny_index_stores();
    let log = artifacts();
    let leaves: Vec<Vec<u8>> = (0..4000)
        .map(|i| catch_up_leaf("artifact", "deferred ", i))
        .collect();
    apply_in_batches(&mut stores, &leaves[..2000], 97, 1).await;
    let mut before = stores.reader.view().unwrap().index_pairs(&log);
    before.sort_unstable();
    // Rebuilt as an install catches it up: three level-4 runs (a merge of them started, not
    // run), then runs of lower levels; no tail's worth of leaves left unflushed.
    super::reindex::rebuild_leaf_index(&stores.state.db, &tiny_index(), IndexWork::Flushes)
        .unwrap();
    stores.state.tail_memory.forget();
    let found_by_hash = |stores: &Stores, end: usize| {
        let view = stores.reader.view().unwrap();
        for (index, leaf) in (0..).zip(&leaves[..end]) {
            assert_eq!(
                view.find_leaf(&log, &tlog::leaf_hash(leaf)).unwrap(),
                Some(index)
            );
        }
    };
    {
        let view = stores.reader.view().unwrap();
        let meta = view.index_meta(&log).unwrap();
        assert!(meta.merging(), "{meta:?}");
        assert!(!meta.has_flushes(2000, &tiny_index()), "{meta:?}");
        let mut pairs = view.index_pairs(&log);
        pairs.sort_unstable();
        assert_eq!(pairs, before);
    }
    found_by_hash(&stores, 2000);
    // Apply pays for the merges a slice at a time, as its appends earn it.
    apply_in_batches(&mut stores, &leaves[2000..], 50, 1000).await;
    // The merge the install left (its three level-4 runs into one of level 5) is done; the
    // appends have started merges of their own since.
    let meta = stores.reader.view().unwrap().index_meta(&log).unwrap();
    let levels = meta.run_levels();
    assert!(levels.iter().any(|&(_, level)| level == 5), "{meta:?}");
    assert!(levels.iter().all(|&(id, _)| id > 2), "{meta:?}");
    found_by_hash(&stores, 4000);
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
            &Blocking::Inline,
            Arc::new(NoBundles),
        )
        .unwrap();
        apply_in_batches(&mut stores, &leaves, 37, 1).await;
        dump(&stores.reader.view().unwrap(), &both_logs())
    };
    let reindexed = super::reindex(dir.path()).unwrap();
    assert_eq!(reindexed, [("artifacts".to_string(), 300)]);
    let stores = Stores::open_dir(
        dir.path(),
        test_logs(),
        &Blocking::Inline,
        Arc::new(NoBundles),
    )
    .unwrap();
    assert_eq!(dump(&stores.reader.view().unwrap(), &both_logs()), before);
    drop(stores);
    assert!(super::reindex(&dir.path().join("nowhere")).is_err());
}
