//! The malicious-log exercise (reliability plan §8.1 item 15), in process: a log signs two
//! roots for one tree size and shows each to different witnesses of a 2-of-3 policy. Each
//! witness cosigns at most one root for the size; a witness shown the second root refuses it
//! (422) and keeps both checkpoints as evidence; so at most one fork gathers the quorum (any two
//! quorums share a witness), and the other is rejected by every client that checks the policy.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::TestLog;
use tlog::keys::Cosigner;
use tlog::note::{Note, NoteSignature};
use tlog::policy::{Policy, PolicyError};
use witness::config::Logs;
use witness::store::MemoryStore;
use witness::{Store, Witness};

const ORIGIN: &str = "example.com/log";
const NOW: u64 = 1_700_000_000;

fn cosigner(i: u8) -> Cosigner {
    Cosigner::new(
        &format!("witness.example/w{i}"),
        ed25519_dalek::SigningKey::from_bytes(&[20 + i; 32]),
    )
    .unwrap()
}

/// Asks `witness` to cosign `fork` (from the size it holds) and attaches the cosignature.
fn ask(witness: &Witness, fork: &TestLog, note: &mut Note) -> u16 {
    let old = witness
        .store()
        .latest(ORIGIN)
        .unwrap()
        .map_or(0, |s| s.size);
    let reply = witness.add_checkpoint(&fork.request(old), NOW);
    if reply.status == 200 {
        for line in NoteSignature::parse_lines(&reply.body).unwrap() {
            note.add_signature(line).unwrap();
        }
    }
    reply.status
}

#[test]
fn two_roots_for_one_size_never_both_reach_a_quorum() {
    let mut honest = TestLog::new(ORIGIN, 1);
    honest.grow(10, "x");
    let witnesses: Vec<Witness> = (1..=3)
        .map(|i| {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            Witness::new(
                cosigner(i),
                Logs::single(ORIGIN, honest.verifier(), None),
                store,
            )
        })
        .collect();
    // Every witness first cosigns the common history.
    for witness in &witnesses {
        assert_eq!(witness.add_checkpoint(&honest.request(0), NOW).status, 200);
    }
    let mut policy = format!("log {}\n", honest.verifier());
    for i in 1..=3u8 {
        policy.push_str(&format!("witness w{i} {}\n", cosigner(i).verifier()));
    }
    policy.push_str("group q 2 w1 w2 w3\nquorum q\n");
    let policy = Policy::parse(&policy).unwrap();

    // Two forks of size 20 extending it, signed by the same (compromised) log key.
    let mut fork_a = TestLog::new(ORIGIN, 1);
    let mut fork_b = TestLog::new(ORIGIN, 1);
    for leaf in &honest.leaves {
        fork_a.append(leaf.clone());
        fork_b.append(leaf.clone());
    }
    fork_a.grow(10, "a");
    fork_b.grow(10, "b");
    let mut note_a = Note::parse(fork_a.checkpoint().as_bytes()).unwrap();
    let mut note_b = Note::parse(fork_b.checkpoint().as_bytes()).unwrap();

    // The log shows A to w1 and w2, B to w3, then tries B on w2 and A on w3 as well.
    assert_eq!(ask(&witnesses[0], &fork_a, &mut note_a), 200);
    assert_eq!(ask(&witnesses[1], &fork_a, &mut note_a), 200);
    assert_eq!(ask(&witnesses[2], &fork_b, &mut note_b), 200);
    assert_eq!(ask(&witnesses[1], &fork_b, &mut note_b), 422);
    assert_eq!(ask(&witnesses[2], &fork_a, &mut note_a), 422);

    // At most one fork satisfies the policy; the other is rejected.
    policy.verify_note(&note_a).unwrap();
    assert!(matches!(
        policy.verify_note(&note_b),
        Err(PolicyError::QuorumNotMet { cosignatures: 1 })
    ));
    // The witnesses shown both roots raised the alarm with both signed checkpoints.
    for i in [1, 2] {
        let views = witnesses[i].store().split_views().unwrap();
        assert_eq!(views.len(), 1);
        assert!(views[0].reason.contains("two roots for tree size 20"));
        let roots = [fork_a.root().to_base64(), fork_b.root().to_base64()];
        assert!(
            roots
                .iter()
                .all(|r| views[0].first.contains(r) || views[0].second.contains(r))
        );
    }
    assert!(witnesses[0].store().split_views().unwrap().is_empty());
}
