//! Tests of the leaf stream: leaves of every size round-trip through chunks and groups,
//! truncation, and a row under the longest log name fits one redb page.

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};

use super::*;

fn database() -> Database {
    Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .unwrap()
}

/// Leaves of many sizes: within a chunk, exactly a chunk, straddling two and three chunks.
fn leaves() -> Vec<Vec<u8>> {
    let sizes = [1usize, 488, 3999, 4000, 4001, 9000, 17, 0, 2, 488];
    (0..350)
        .map(|i| vec![(i % 251) as u8; sizes[i % sizes.len()]])
        .collect()
}

fn append_all(db: &Database, log: &str, leaves: &[Vec<u8>], first: u64) {
    let txn = db.begin_write().unwrap();
    {
        let mut stream = LeafStream::open(&txn).unwrap();
        for (index, leaf) in (first..).zip(leaves) {
            stream
                .append(log, index, &tlog::leaf_hash(leaf), leaf)
                .unwrap();
        }
        stream.flush().unwrap();
    }
    txn.commit().unwrap();
}

fn read(db: &Database, log: &str, first: u64, end: u64) -> Result<Vec<Vec<u8>>, DiskError> {
    let txn = db.begin_read().unwrap();
    let chunks = txn.open_table(LEAF_CHUNKS).unwrap();
    let directory = txn.open_table(LEAF_DIRECTORY).unwrap();
    read_leaves(&chunks, &directory, log, first, end)
}

fn count(db: &Database, log: &str) -> u64 {
    let txn = db.begin_read().unwrap();
    stored_leaves(&txn.open_table(LEAF_DIRECTORY).unwrap(), log).unwrap()
}

#[test]
fn leaves_read_back_in_any_range() {
    let db = database();
    let all = leaves();
    // Two transactions, the second continuing a partly filled chunk and group.
    append_all(&db, "artifacts", &all[..123], 0);
    append_all(&db, "artifacts", &all[123..], 123);
    append_all(&db, "other", &all[..5], 0);
    assert_eq!(count(&db, "artifacts"), 350);
    assert_eq!(count(&db, "other"), 5);
    for (first, end) in [(0, 350), (0, 1), (99, 101), (100, 200), (349, 350), (7, 8)] {
        let (first_at, end_at) = (first as usize, end as usize);
        assert_eq!(
            read(&db, "artifacts", first, end).unwrap(),
            all[first_at..end_at]
        );
    }
    assert_eq!(read(&db, "other", 0, 5).unwrap(), all[..5]);
    assert!(matches!(
        read(&db, "artifacts", 349, 351),
        Err(DiskError::Missing(_))
    ));
    let txn = db.begin_read().unwrap();
    let directory = txn.open_table(LEAF_DIRECTORY).unwrap();
    let hashes = leaf_hashes(&directory, "artifacts", 90, 260).unwrap();
    let expected: Vec<u8> = all[90..260]
        .iter()
        .flat_map(|leaf| *tlog::leaf_hash(leaf).as_bytes())
        .collect();
    assert_eq!(hashes, expected);
    assert_eq!(
        leaf_hash(&directory, "artifacts", 200).unwrap(),
        Some(tlog::leaf_hash(&all[200]))
    );
    assert_eq!(leaf_hash(&directory, "artifacts", 350).unwrap(), None);
}

#[test]
fn truncate_and_overwrite() {
    let all = leaves();
    for size in [0u64, 1, 99, 100, 101, 203, 349] {
        let db = database();
        append_all(&db, "artifacts", &all, 0);
        let txn = db.begin_write().unwrap();
        {
            let mut stream = LeafStream::open(&txn).unwrap();
            assert_eq!(stream.truncate("artifacts", size).unwrap(), 350 - size);
            assert_eq!(stream.truncate("artifacts", 400).unwrap(), 0);
            stream.flush().unwrap();
        }
        txn.commit().unwrap();
        assert_eq!(count(&db, "artifacts"), size);
        assert_eq!(
            read(&db, "artifacts", 0, size).unwrap(),
            all[..size as usize]
        );
        // Appending again, the leaves written as before.
        append_all(&db, "artifacts", &all[size as usize..], size);
        assert_eq!(read(&db, "artifacts", 0, 350).unwrap(), all);
    }
    // The same leaf at a stored index is kept with what follows it; a different one drops
    // what follows.
    let db = database();
    append_all(&db, "artifacts", &all, 0);
    append_all(&db, "artifacts", &all[10..12], 10);
    assert_eq!(count(&db, "artifacts"), 350);
    append_all(&db, "artifacts", &[b"different".to_vec()], 150);
    assert_eq!(count(&db, "artifacts"), 151);
    let mut expected = all[..150].to_vec();
    expected.push(b"different".to_vec());
    assert_eq!(read(&db, "artifacts", 0, 151).unwrap(), expected);
    // A gap is refused.
    let txn = db.begin_write().unwrap();
    let mut stream = LeafStream::open(&txn).unwrap();
    let hash = tlog::leaf_hash(b"x");
    assert!(matches!(
        stream.append("artifacts", 152, &hash, b"x"),
        Err(DiskError::Missing(_))
    ));
}

/// The directory of groups of 100 leaves moves to groups of 96 a bounded step at a time,
/// each step leaving every leaf in one of the two tables, and reads and appends go on as
/// if it had always had them.
#[test]
fn an_old_directory_is_regrouped() {
    let db = database();
    let all: Vec<Vec<u8>> = (0..5_050).map(|i| vec![(i % 251) as u8; i % 7]).collect();
    append_all(&db, "artifacts", &all[..5_050], 0);
    append_all(&db, "other", &all[..130], 0);
    let expected = |log: &str, end: u64| {
        let txn = db.begin_read().unwrap();
        let directory = txn.open_table(LEAF_DIRECTORY).unwrap();
        leaf_hashes(&directory, log, 0, end).unwrap()
    };
    let hashes = (expected("artifacts", 5_050), expected("other", 130));
    // The same records, as the old layout grouped them.
    let txn = db.begin_write().unwrap();
    {
        let new = txn.open_table(LEAF_DIRECTORY).unwrap();
        let mut old = txn.open_table(OLD_DIRECTORY).unwrap();
        for (log, leaves) in [("artifacts", 5_050u64), ("other", 130)] {
            let mut start = 0u64;
            for group in 0..leaves.div_ceil(OLD_GROUP_LEAVES) {
                let mut bytes = start.to_le_bytes().to_vec();
                let end = leaves.min((group + 1) * OLD_GROUP_LEAVES);
                each_record(
                    &new,
                    log,
                    group * OLD_GROUP_LEAVES,
                    end,
                    |_, hash, _, end| {
                        bytes.extend_from_slice(hash);
                        bytes.extend_from_slice(&end.to_le_bytes());
                        start = end;
                    },
                )
                .unwrap();
                old.insert((log, group), bytes.as_slice()).unwrap();
            }
        }
    }
    txn.delete_table(LEAF_DIRECTORY).unwrap();
    txn.commit().unwrap();

    let mut steps = Vec::new();
    loop {
        let txn = db.begin_write().unwrap();
        let moved = regroup_step(&txn, 1).unwrap();
        txn.commit().unwrap();
        steps.push(moved);
        if moved == 0 {
            break;
        }
    }
    assert_eq!(steps, [2_400, 2_400, 250, 130, 0]);
    let txn = db.begin_read().unwrap();
    assert!(txn.open_table(OLD_DIRECTORY).is_err());
    drop(txn);
    assert_eq!(
        (expected("artifacts", 5_050), expected("other", 130)),
        hashes
    );
    assert_eq!(read(&db, "artifacts", 0, 5_050).unwrap(), all);
    append_all(&db, "artifacts", &all[..100], 5_050);
    assert_eq!(count(&db, "artifacts"), 5_150);
    assert_eq!(
        read(&db, "artifacts", 5_000, 5_150).unwrap()[50..],
        all[..100]
    );

    // A group missing from the middle of an old directory is named, not skipped.
    let db = database();
    let txn = db.begin_write().unwrap();
    {
        let mut old = txn.open_table(OLD_DIRECTORY).unwrap();
        let group = [0u8; GROUP_HEADER + 100 * RECORD];
        old.insert(("artifacts", 0), group.as_slice()).unwrap();
        old.insert(("artifacts", 2), group.as_slice()).unwrap();
    }
    assert!(matches!(
        regroup_step(&txn, 1),
        Err(DiskError::Corrupt { .. })
    ));
}

/// The sizes chosen above are what make the layout pay: a full chunk or group under the
/// longest log name takes one page, not two.
#[test]
fn a_full_row_fills_one_page() {
    let db = database();
    let log = "l".repeat(64);
    let leaves: Vec<Vec<u8>> = (0..2000).map(|i| vec![i as u8; 488]).collect();
    append_all(&db, &log, &leaves, 0);
    let txn = db.begin_read().unwrap();
    for (table, rows) in [(LEAF_CHUNKS, 488 * 2000 / 4000), (LEAF_DIRECTORY, 20)] {
        let stats = txn.open_table(table).unwrap().stats().unwrap();
        // Every row but the last is full (a group of 96 leaves a few hundred bytes of its
        // page unused); a row given two pages would leave about 4 KiB
        // of its allocation unused.
        assert!(
            stats.fragmented_bytes() < (rows + 2) * 400,
            "{}: {} bytes unused in {} leaf pages",
            table.name(),
            stats.fragmented_bytes(),
            stats.leaf_pages()
        );
        assert!(stats.leaf_pages() >= rows, "{}", table.name());
    }
}
