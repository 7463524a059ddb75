//! Named regression seeds: each failed on the code of its time, was fixed in the node, and must
//! keep passing. A seed's run depends on the code it drives, so a later change may steer the
//! same seed through other events; the test still documents and replays the fault pattern.
//! Replay one with `cairn-sim run --seed N --seconds 60 --trace`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sim::run_seed;

fn assert_passes(seed: u64) {
    let outcome = run_seed(seed, Duration::from_secs(60), false);
    assert!(
        outcome.violations.is_empty(),
        "regression seed {seed} failed: {:#?}\noptions: {:#?}",
        outcome.violations,
        outcome.options
    );
    assert!(outcome.acked > 0, "seed {seed} acknowledged nothing");
}

/// A leader cut off from the majority kept its proposals pending; after it learned of a newer
/// term it installed a snapshot that covered its own uncommitted entries, and openraft 0.9
/// answers neither (it resolves proposals only on apply or on truncation). Those batches held
/// every proposal slot, so when the node was elected again its sequencer proposed nothing and
/// no write succeeded after healing. Fixed by `SequencerConfig::propose_timeout`.
#[test]
fn seed_48_unanswered_proposals_no_longer_stop_the_sequencer() {
    assert_passes(48);
}

/// The same failure as seed 48 through another fault pattern (lossy links, partitions).
#[test]
fn seed_123_unanswered_proposals_no_longer_stop_the_sequencer() {
    assert_passes(123);
}

/// A node crashed in the middle of a snapshot install and restarted while every member was
/// down or cut off; the resumed install gave up after its retries and the node failed to
/// start. Fixed by resuming without a round limit (`Installer::resume`), and by the simulator
/// starting nodes in tasks of their own, as processes start.
#[test]
fn seed_61_a_resumed_install_waits_for_members() {
    assert_passes(61);
}

/// Membership changes replaced every node a snapshot listed; a new node installing that
/// snapshot could fetch leaves only from those (removed) members and never finished, so the
/// cluster stayed in the middle of a configuration change. Fixed by fetching also from the
/// members the sender knows when it sends the snapshot, the members the node knows, and those
/// recorded with a pending install (`catch_up::KnownMembers`).
#[test]
fn seed_23_a_snapshot_whose_members_are_all_gone_still_installs() {
    assert_passes(23);
}

/// The leader crashed with its newest Raft entries unsynced (a slow disk) while its follower
/// already held them; openraft 0.9 restored it as leader of the same term from its committed
/// vote, and it gave the lost entries' log ids to new entries. The follower kept the old ones
/// under the same ids: two replicas, two trees, acknowledged leaves gone. Fixed by reading the
/// vote back uncommitted at startup (`LogStore::read_vote`), which makes a restarted leader win
/// a new election first.
#[test]
fn seed_117_a_restarted_leader_does_not_reuse_lost_log_ids() {
    assert_passes(117);
}

/// A simulator bug, not a node bug: a node crashed while a vote request was in its hands, and
/// the answer its Raft handle computed afterwards still went back to the candidate, so the
/// election invariant saw a vote granted that the crashed process never saved. Fixed in the
/// simulated network: only the process that received a request answers it.
#[test]
fn seed_205_a_crashed_node_sends_no_answers() {
    assert_passes(205);
}

/// The leader removed itself ({1, 4} -> {1}) and lost leadership before the final
/// configuration committed: it held the newest log but, a learner in its own configuration,
/// never campaigned, while n1 could not win without its vote. No leader ever again (openraft
/// issue 2091, fixed only in 0.10). Fixed by refusing a change that removes the leader
/// (`Node::change_voters`, used by the admin API and the simulator alike).
#[test]
fn seed_637_a_leader_never_removes_itself() {
    assert_passes(637);
}

/// The lying operator (`malicious_log`) never had a moment to fork within a 5-second safety
/// phase (until it ended, a victim was down or had cosigned every size the log had), and the
/// split-view check reported that as a violation of the system. Fixed in the check: only a failure at a
/// moment the operator could fork is reported (`sim::malicious`, `NoFork`).
#[test]
fn seed_900074_an_operator_without_a_moment_to_fork_is_no_violation() {
    let outcome = run_seed(900_074, Duration::from_secs(5), false);
    assert!(
        outcome.options.malicious_log,
        "the seed no longer runs the operator"
    );
    assert!(outcome.violations.is_empty(), "{:#?}", outcome.violations);
}
