//! The canaries (`node::canary`): each known bug class, planted alone, must be found by a
//! bounded swarm of crash-heavy seeds, and the same seeds with no bug planted must pass. This
//! shows the simulator catches real bugs, and which invariant catches each.

use std::time::Duration;

use node::canary::{self, Canary};
use sim::{Options, Outcome, run_with};

/// Seeds tried per canary, and the safety phase of each (virtual time).
const SEEDS: u64 = 32;
const SECONDS: u64 = 10;

fn run(seed: u64, planted: Option<Canary>) -> Outcome {
    let options = Options::from_seed(seed, Duration::from_secs(SECONDS)).crash_heavy();
    // The simulator runs the whole cluster on this thread: the canary is per thread.
    canary::set(planted);
    let outcome = run_with(options, false);
    canary::set(None);
    outcome
}

/// Runs seeds until one finds `planted` with a violation `accept` takes (earlier seeds' other
/// violations are printed); then the same seed without the canary must pass.
fn found(planted: Canary, accept: fn(&str) -> bool) -> Vec<String> {
    let (seed, violations) = (0..SEEDS)
        .find_map(|seed| {
            let outcome = run(seed, Some(planted));
            if !outcome.violations.is_empty() && !outcome.violations.iter().any(|v| accept(v)) {
                eprintln!("{planted:?}: seed {seed}: {:#?}", outcome.violations);
            }
            outcome
                .violations
                .iter()
                .any(|v| accept(v))
                .then_some((seed, outcome.violations))
        })
        .unwrap_or_else(|| panic!("{planted:?}: not found in {SEEDS} seeds"));
    eprintln!(
        "{planted:?} found at seed {seed} (after {} seeds): {violations:#?}",
        seed + 1
    );
    let control = run(seed, None);
    assert!(
        control.violations.is_empty(),
        "{planted:?}: seed {seed} fails without the canary: {:#?}",
        control.violations
    );
    violations
}

/// [`found`] with an invariant violation, one of them reported by the invariant `name`.
fn found_by(planted: Canary, name: &str) {
    let violations = found(planted, invariant);
    assert!(
        violations.iter().any(|v| v.contains(name)),
        "{violations:#?}"
    );
}

/// Any violation: a lost vote can surface as an openraft assertion (a panic) or as an
/// invariant (two leaders in a term forking the log).
fn any(_: &str) -> bool {
    true
}

/// A violation of one of the simulator's invariants, not a panic.
fn invariant(violation: &str) -> bool {
    !violation.starts_with("panic")
}

#[test]
fn a_vote_not_synced_is_found() {
    found(Canary::VoteNotSynced, any);
}

#[test]
fn an_apply_not_atomic_with_last_applied_is_found() {
    found(Canary::ApplyNotAtomic, invariant);
}

#[test]
fn a_checkpoint_signed_before_commit_is_found() {
    found(Canary::SignBeforeCommit, invariant);
}

#[test]
fn an_acknowledgement_before_commit_is_found() {
    found(Canary::AckBeforeCommit, invariant);
}

#[test]
fn a_flush_that_drops_a_leaf_from_the_index_is_found() {
    found_by(Canary::IndexFlushDropsALeaf, "reproducible");
}

#[test]
fn a_run_filter_that_misses_a_key_is_found() {
    found_by(Canary::FilterMissesAKey, "reproducible");
}

#[test]
fn a_leaf_stream_tail_left_unwritten_is_found() {
    found_by(Canary::StreamTailNotWritten, "durability");
}
