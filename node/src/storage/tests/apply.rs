//! openraft's storage suite, and apply through redb against the in-memory apply.

use super::*;

// ---- openraft's suite ----

struct MemoryBuilder(Blocking);

impl StoreBuilder<TypeConfig, LogStore, StateStore> for MemoryBuilder {
    async fn build(&self) -> Result<((), LogStore, StateStore), StorageError<NodeId>> {
        let stores = memory_stores(&self.0);
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
    let mut stores = memory_stores(&Blocking::Inline);
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
        let mut stores = Stores::open_dir(
            dir.path(),
            test_logs(),
            &Blocking::Pool,
            Arc::new(NoBundles),
        )
        .unwrap();
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
    let mut stores = Stores::open_dir(
        dir.path(),
        test_logs(),
        &Blocking::Pool,
        Arc::new(NoBundles),
    )
    .unwrap();
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
