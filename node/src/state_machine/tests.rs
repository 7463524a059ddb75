//! Unit tests of apply, and [`MemoryState`], the in-memory [`StateAccess`] they (and the
//! sequencer's and storage's tests) apply through.

use super::*;
use tlog::keys::Verifiers;

/// State in memory, for unit tests of apply.
#[derive(Default, Clone, PartialEq, Eq, Debug)]
pub(crate) struct MemoryState {
    heads: BTreeMap<LogName, LogHead>,
    leaves: BTreeMap<(LogName, u64), Vec<u8>>,
    index: BTreeMap<(LogName, Hash), u64>,
    tile_hashes: BTreeMap<(LogName, u8, u64), Hash>,
    times: BTreeMap<(LogName, u64), u64>,
    search: BTreeMap<(LogName, SearchKey, u64), ()>,
    lifecycle: Lifecycle,
}

impl StateAccess for MemoryState {
    fn head(&self, log: &LogName) -> Result<Option<LogHead>, StateError> {
        Ok(self.heads.get(log).cloned())
    }
    fn put_head(&mut self, log: &LogName, head: &LogHead) -> Result<(), StateError> {
        self.heads.insert(log.clone(), head.clone());
        Ok(())
    }
    fn lifecycle(&self) -> Result<Lifecycle, StateError> {
        Ok(self.lifecycle.clone())
    }
    fn put_lifecycle(&mut self, lifecycle: &Lifecycle) -> Result<(), StateError> {
        self.lifecycle = lifecycle.clone();
        Ok(())
    }
    fn find_leaf(&self, log: &LogName, hash: &Hash) -> Result<Option<u64>, StateError> {
        Ok(self.index.get(&(log.clone(), *hash)).copied())
    }
    fn put_leaf(
        &mut self,
        log: &LogName,
        index: u64,
        hash: &Hash,
        leaf: &[u8],
        search_keys: &[SearchKey],
    ) -> Result<(), StateError> {
        self.leaves.insert((log.clone(), index), leaf.to_vec());
        self.index.insert((log.clone(), *hash), index);
        for key in search_keys {
            self.search.insert((log.clone(), *key, index), ());
        }
        Ok(())
    }
    fn put_tile_hash(
        &mut self,
        log: &LogName,
        node: TreeNodeId,
        hash: &Hash,
    ) -> Result<(), StateError> {
        self.tile_hashes
            .insert((log.clone(), node.level, node.index), *hash);
        Ok(())
    }
    fn put_batch_time(
        &mut self,
        log: &LogName,
        first_index: u64,
        unix_ms: u64,
    ) -> Result<(), StateError> {
        self.times.insert((log.clone(), first_index), unix_ms);
        Ok(())
    }
    fn read_tile_hashes(
        &self,
        log: &LogName,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, StateError> {
        let mut data = Vec::new();
        for node in tile.nodes().skip(first).take(count) {
            let hash = self
                .tile_hashes
                .get(&(log.clone(), node.level, node.index))
                .ok_or_else(|| StateError::Storage(format!("no hash for {node:?}")))?;
            data.extend_from_slice(hash.as_bytes());
        }
        Ok(data)
    }
}

pub(crate) fn test_logs() -> Logs {
    Logs::new([
        LogConfig {
            name: LogName("artifacts".into()),
            origin: "example.com/artifacts".into(),
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            succeeds: None,
        },
        LogConfig {
            name: LogName("certificates".into()),
            origin: "example.com/certificates".into(),
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[2; 32]),
            succeeds: None,
        },
        LogConfig {
            name: LogName("artifacts-2".into()),
            origin: "example.com/artifacts-2".into(),
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
            succeeds: Some(LogName("artifacts".into())),
        },
    ])
}

fn batch(log: &str, leaves: &[&str]) -> Command {
    Command::Append(AppendBatch {
        log: LogName(log.into()),
        leaves: leaves.iter().map(|leaf| leaf.as_bytes().to_vec()).collect(),
        timestamp_unix_ms: 1_700_000_000_000,
    })
}

fn appended(outcome: CommandOutcome) -> BatchOutcome {
    match outcome {
        CommandOutcome::Appended(batch) => batch,
        other => panic!("not appended: {other:?}"),
    }
}

fn verifiers(logs: &Logs, name: &str) -> Verifiers {
    logs.get(&LogName(name.into()))
        .unwrap()
        .verifiers()
        .unwrap()
}

#[test]
fn batches_append_in_order_and_sign_verifiable_checkpoints() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    let first = appended(apply(&mut state, &logs, &batch("artifacts", &["a", "b"])).unwrap());
    assert_eq!(
        first.leaves,
        [
            LeafOutcome::Appended { index: 0 },
            LeafOutcome::Appended { index: 1 }
        ]
    );
    let second = appended(apply(&mut state, &logs, &batch("artifacts", &["c"])).unwrap());
    assert_eq!(second.tree_size, 3);

    let verifiers = verifiers(&logs, "artifacts");
    let signed = tlog::checkpoint::open(second.checkpoint.as_bytes(), &verifiers).unwrap();
    let mut expected = tlog::MemoryTree::new();
    for leaf in ["a", "b", "c"] {
        expected.append(leaf_hash(leaf.as_bytes())).unwrap();
    }
    assert_eq!(signed.checkpoint.root, expected.root());
    assert_eq!(signed.checkpoint.origin, "example.com/artifacts");
}

#[test]
fn each_batch_dates_its_new_leaves_with_the_leaders_time() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    let at = |ms: u64, leaves: &[&str]| {
        let Command::Append(mut append) = batch("artifacts", leaves) else {
            unreachable!()
        };
        append.timestamp_unix_ms = ms;
        Command::Append(append)
    };
    apply(&mut state, &logs, &at(1_000, &["a", "b"])).unwrap();
    // A batch of duplicates and one new leaf: one row, at the new leaf's index.
    apply(&mut state, &logs, &at(2_000, &["a", "c"])).unwrap();
    // Only duplicates: nothing is dated.
    apply(&mut state, &logs, &at(3_000, &["c"])).unwrap();
    let name = LogName("artifacts".into());
    let times: Vec<_> = state.times.clone().into_iter().collect();
    assert_eq!(times, [((name.clone(), 0), 1_000), ((name, 2), 2_000)]);
}

#[test]
fn duplicates_return_the_existing_index_and_change_nothing() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    apply(&mut state, &logs, &batch("artifacts", &["a", "b"])).unwrap();
    let before = state.clone();
    let outcome = appended(apply(&mut state, &logs, &batch("artifacts", &["b"])).unwrap());
    assert_eq!(outcome.leaves, [LeafOutcome::Duplicate { index: 1 }]);
    assert_eq!(state, before);
    let mixed = appended(apply(&mut state, &logs, &batch("artifacts", &["c", "a", "c"])).unwrap());
    assert_eq!(
        mixed.leaves,
        [
            LeafOutcome::Appended { index: 2 },
            LeafOutcome::Duplicate { index: 0 },
            LeafOutcome::Duplicate { index: 2 }
        ]
    );
}

#[test]
fn logs_are_independent() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    apply(&mut state, &logs, &batch("artifacts", &["a"])).unwrap();
    let other = appended(apply(&mut state, &logs, &batch("certificates", &["a"])).unwrap());
    assert_eq!(other.leaves, [LeafOutcome::Appended { index: 0 }]);
    assert!(
        other
            .checkpoint
            .starts_with("example.com/certificates\n1\n")
    );
}

#[test]
fn refusals_change_nothing() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    for command in [batch("nope", &["a"]), batch("artifacts", &[])] {
        let outcome = apply(&mut state, &logs, &command).unwrap();
        assert!(matches!(outcome, CommandOutcome::Refused(_)), "{outcome:?}");
    }
    assert_eq!(state, MemoryState::default());
}

#[test]
fn replicas_applying_the_same_commands_agree_byte_for_byte() {
    let logs = test_logs();
    let commands: Vec<Command> = (0..40)
        .map(|i| {
            let leaves: Vec<String> = (0..(i % 7 + 1)).map(|j| format!("{i}-{j}")).collect();
            let leaves: Vec<&str> = leaves.iter().map(String::as_str).collect();
            batch(
                if i % 3 == 0 {
                    "certificates"
                } else {
                    "artifacts"
                },
                &leaves,
            )
        })
        .collect();
    let mut first = MemoryState::default();
    let mut second = MemoryState::default();
    for command in &commands {
        let a = apply(&mut first, &logs, command).unwrap();
        let b = apply(&mut second, &logs, command).unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(first, second);
}

fn rotate(log: &str, successor: &str) -> Command {
    Command::Rotate(Rotation {
        log: LogName(log.into()),
        successor: LogName(successor.into()),
        timestamp_unix_ms: 1_700_000_000_000,
    })
}

#[test]
fn a_rotation_freezes_the_log_at_its_final_checkpoint_and_opens_its_successor() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    // The successor takes nothing before the rotation opens it.
    let early = apply(&mut state, &logs, &batch("artifacts-2", &["x"])).unwrap();
    assert!(matches!(early, CommandOutcome::Refused(ref why) if why.contains("not open")));
    let last = appended(apply(&mut state, &logs, &batch("artifacts", &["a", "b"])).unwrap());
    let outcome = apply(&mut state, &logs, &rotate("artifacts", "artifacts-2")).unwrap();
    let CommandOutcome::Rotated(record) = outcome else {
        panic!("not rotated: {outcome:?}");
    };
    assert_eq!(
        (record.final_size, &record.final_checkpoint),
        (2, &last.checkpoint)
    );
    let before = state.clone();
    let refused = apply(&mut state, &logs, &batch("artifacts", &["c"])).unwrap();
    assert_eq!(
        refused,
        CommandOutcome::Frozen {
            log: LogName("artifacts".into()),
            successor: LogName("artifacts-2".into())
        }
    );
    assert_eq!(state, before);
    let next = appended(apply(&mut state, &logs, &batch("artifacts-2", &["c"])).unwrap());
    assert!(next.checkpoint.starts_with("example.com/artifacts-2\n1\n"));
    // A second rotation of the frozen log is refused alike everywhere.
    let again = apply(&mut state, &logs, &rotate("artifacts", "artifacts-2")).unwrap();
    assert!(matches!(again, CommandOutcome::Refused(ref why) if why.contains("frozen")));
}

#[test]
fn a_rotation_naming_a_log_this_replica_lacks_stops_it() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    let error = apply(&mut state, &logs, &rotate("artifacts", "artifacts-9")).unwrap_err();
    assert!(matches!(error, StateError::Configuration(_)), "{error}");
    let empty = apply(&mut state, &logs, &rotate("certificates", "artifacts-2")).unwrap_err();
    assert!(empty.to_string().contains("succeed"), "{empty}");
    // An empty log freezes at its size-0 checkpoint.
    let outcome = apply(&mut state, &logs, &rotate("artifacts", "artifacts-2")).unwrap();
    let CommandOutcome::Rotated(record) = outcome else {
        panic!("not rotated: {outcome:?}");
    };
    assert_eq!(record.final_size, 0);
    assert!(
        record
            .final_checkpoint
            .starts_with("example.com/artifacts\n0\n")
    );
}

#[test]
#[should_panic(expected = "does not give its root")]
fn a_corrupted_head_stops_the_replica_before_it_signs() {
    let logs = test_logs();
    let mut state = MemoryState::default();
    apply(&mut state, &logs, &batch("artifacts", &["a", "b", "c"])).unwrap();
    let log = LogName("artifacts".into());
    let mut head = state.head(&log).unwrap().unwrap();
    head.root = Hash::digest(b"forged");
    state.put_head(&log, &head).unwrap();
    let _ = apply(&mut state, &logs, &batch("artifacts", &["d"]));
}
