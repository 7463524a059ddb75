//! Pushed witnessing in the simulator, and the lying log operator: seeds whose nodes publish
//! only with a witness quorum pass every invariant; a log that signs a second root for a size
//! and shows it to fewer witnesses than the quorum gets no quorum for it and every witness ends
//! up holding the evidence; and the same run under a 1-of-N policy, where the fork does gather
//! a quorum, is caught, so the check can fail.

use std::time::Duration;

use sim::{Options, Outcome, run_with};

const SECONDS: u64 = 8;

/// The options of `seed` with three pushed witnesses behind 2-of-3 and the lying operator.
fn malicious(seed: u64) -> Options {
    let mut options = Options::from_seed(seed, Duration::from_secs(SECONDS)).malicious();
    options.pushed_witnesses = 3;
    options.witness_quorum = 2;
    options
}

fn assert_passes(outcome: &Outcome) {
    assert!(
        outcome.violations.is_empty(),
        "seed {} failed: {:#?}\noptions: {:#?}",
        outcome.options.seed,
        outcome.violations,
        outcome.options
    );
    assert!(
        outcome.acked > 0,
        "seed {} acknowledged nothing",
        outcome.options.seed
    );
}

#[test]
fn nodes_publish_only_with_a_witness_quorum() {
    for seed in [4, 9] {
        let mut options = Options::from_seed(seed, Duration::from_secs(SECONDS));
        options.pushed_witnesses = 3;
        options.witness_quorum = 2;
        options.witness_faults = Some(Duration::from_millis(1500));
        let outcome = run_with(options, false);
        assert_passes(&outcome);
        assert!(
            outcome.published > 0,
            "seed {seed}: no witnessed checkpoint was published"
        );
    }
}

#[test]
fn a_fork_shown_to_a_minority_gathers_no_quorum_and_raises_the_alarm() {
    for seed in [1, 6] {
        let outcome = run_with(malicious(seed), false);
        assert_passes(&outcome);
        assert!(outcome.forked, "seed {seed}: the operator never forked");
        // Every witness holds evidence (the liveness phase waits for it; counted here too).
        assert!(
            outcome.alarms >= 3,
            "seed {seed}: only {} witnesses raised the alarm",
            outcome.alarms
        );
    }
}

/// The canary: under a 1-of-3 policy the single witness shown the fork is a quorum for it,
/// which the invariant must report.
#[test]
fn a_fork_that_gathers_a_quorum_is_caught() {
    let mut options = malicious(1);
    options.witness_quorum = 1;
    let outcome = run_with(options, false);
    assert!(outcome.forked, "the operator never forked");
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.contains("the operator's fork") && v.contains("gathered the witness quorum")),
        "the fork's quorum went unnoticed: {:#?}",
        outcome.violations
    );
}

#[test]
fn witnessed_runs_replay_bit_for_bit() {
    let first = run_with(malicious(3), false);
    let second = run_with(malicious(3), false);
    assert!(first.forked, "the operator never forked");
    assert_eq!(
        (first.trace_hash, first.events),
        (second.trace_hash, second.events),
        "a witnessed run did not replay"
    );
}

/// A witness that accepts connections and never answers (here for the whole run, on a quiet
/// network) must not hold up publication when the other two make the 2-of-3 quorum: every
/// append is answered with a cosigned checkpoint within the client's 3 s. Before the fix,
/// `node::witnessing` waited for every witness's answer, so each checkpoint waited for the
/// stalled request's 5 s timeout and every append went unwitnessed.
#[test]
fn a_stalled_witness_does_not_hold_up_publication() {
    let mut options = Options::from_seed(4, Duration::from_secs(SECONDS));
    options.pushed_witnesses = 3;
    options.witness_quorum = 2;
    options.black_holed_witness = true;
    options.witness_faults = None;
    options.malicious_log = false;
    (options.partitions, options.crashes, options.pauses) = (None, None, None);
    (options.disk_full, options.membership, options.slow_disk) = (None, None, None);
    (options.loss_request, options.loss_response) = (0.0, 0.0);
    let outcome = run_with(options, false);
    assert_passes(&outcome);
    assert!(outcome.published > 0, "nothing was published");
    assert_eq!(
        outcome.unwitnessed, 0,
        "{} appends waited in vain for a cosigned checkpoint",
        outcome.unwitnessed
    );
}
