//! The C2SP tlog-witness `add-checkpoint` contract, status code by status code, through the
//! sans-IO core over the real redb store; then a restart in the middle of a run (no rollback,
//! no second cosignature for a smaller size or another root), and the check-and-store race.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::sync::Arc;

use common::TestLog;
use tlog::Hash;
use tlog::keys::Cosigner;
use tlog::keys::Verifiers;
use tlog::note::Note;
use witness::config::Logs;
use witness::request::AddCheckpoint;
use witness::storage::RedbStore;
use witness::{Store, Witness};

const ORIGIN: &str = "example.com/log";
const NOW: u64 = 1_700_000_000;

fn cosigner() -> Cosigner {
    Cosigner::new(
        "witness.example/w1",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap()
}

fn witness(log: &TestLog, path: &std::path::Path) -> Witness {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(path).unwrap());
    Witness::new(
        cosigner(),
        Logs::single(ORIGIN, log.verifier(), None),
        store,
    )
}

/// Checks a 200 reply: one cosignature line that verifies over the checkpoint.
fn assert_cosigned(reply: &witness::Reply, log: &TestLog) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut note = Note::parse(log.checkpoint().as_bytes()).unwrap();
    for signature in tlog::note::NoteSignature::parse_lines(&reply.body).unwrap() {
        note.add_signature(signature).unwrap();
    }
    let mut verifiers = Verifiers::new();
    verifiers.push(cosigner().verifier()).unwrap();
    let verified = note.verify(&verifiers).unwrap();
    assert_eq!(verified[0].timestamp(), Some(NOW));
}

#[test]
fn every_status_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    let witness = witness(&log, &dir.path().join("witness.redb"));

    // 400: not a request at all; and `old` above the checkpoint's size.
    assert_eq!(witness.add_checkpoint(b"hello", NOW).status, 400);
    log.grow(5, "a");
    let mut too_old = AddCheckpoint::parse(&log.request(0)).unwrap();
    too_old.old_size = 6;
    assert_eq!(
        witness
            .add_checkpoint(too_old.to_body().as_bytes(), NOW)
            .status,
        400
    );

    // 404: an origin the witness does not witness.
    let mut stranger = TestLog::new("other.example/log", 1);
    stranger.grow(3, "s");
    assert_eq!(
        witness.add_checkpoint(&stranger.request(0), NOW).status,
        404
    );

    // 403: the right origin, signed by another key.
    let mut impostor = TestLog::new(ORIGIN, 2);
    impostor.grow(5, "a");
    assert_eq!(
        witness.add_checkpoint(&impostor.request(0), NOW).status,
        403
    );

    // 422: a proof with old 0.
    let mut with_proof = AddCheckpoint::parse(&log.request(0)).unwrap();
    with_proof.proof = vec![Hash::digest(b"x")];
    assert_eq!(
        witness
            .add_checkpoint(with_proof.to_body().as_bytes(), NOW)
            .status,
        422
    );

    // 200: the first checkpoint, from old 0.
    assert_cosigned(&witness.add_checkpoint(&log.request(0), NOW), &log);

    // 409: a stale old size, with the stored size in the body and the spec's content type.
    log.grow(4, "a");
    let reply = witness.add_checkpoint(&log.request(0), NOW);
    assert_eq!(reply.status, 409);
    assert_eq!(reply.body, "5\n");
    assert_eq!(reply.content_type, "text/x.tlog.size");

    // 422: a wrong proof.
    let mut wrong = AddCheckpoint::parse(&log.request(5)).unwrap();
    wrong.proof[0] = Hash::digest(b"wrong");
    assert_eq!(
        witness
            .add_checkpoint(wrong.to_body().as_bytes(), NOW)
            .status,
        422
    );

    // 200: the right proof.
    assert_cosigned(&witness.add_checkpoint(&log.request(5), NOW), &log);
    assert_eq!(witness.store().latest(ORIGIN).unwrap().unwrap().size, 9);

    // 200 again for the same checkpoint (a log re-asking is fine).
    assert_cosigned(&witness.add_checkpoint(&log.request(9), NOW), &log);

    // 422: the same size with another root is a split view, and both are kept.
    let mut fork = TestLog::new(ORIGIN, 1);
    fork.grow(9, "b");
    let reply = witness.add_checkpoint(&fork.request(9), NOW);
    assert_eq!(reply.status, 422, "{}", reply.body);
    let views = witness.store().split_views().unwrap();
    assert_eq!(views.len(), 1);
    assert!(views[0].first.starts_with(&log.checkpoint()[..20]));
    assert!(views[0].second.contains(&fork.root().to_base64()));
    assert!(views[0].first.contains(&log.root().to_base64()));
    assert_eq!(
        witness.store().latest(ORIGIN).unwrap().unwrap().root,
        log.root()
    );

    // 422: a size-0 checkpoint whose root is not the empty tree's (a fresh origin).
    let mut zero = TestLog::new(ORIGIN, 1);
    zero.grow(0, "z");
    let text = tlog::checkpoint::Checkpoint::new(ORIGIN, tlog::TreeSize(0), Hash::digest(b"no"))
        .sign(&[&zero.signer])
        .unwrap()
        .format()
        .unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let fresh = self::witness(&zero, &dir2.path().join("w.redb"));
    let body = format!("old 0\n\n{text}");
    assert_eq!(fresh.add_checkpoint(body.as_bytes(), NOW).status, 422);
}

#[test]
fn restart_keeps_state_and_never_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.redb");
    let mut log = TestLog::new(ORIGIN, 1);
    let mut sizes = Vec::new();
    {
        let witness = witness(&log, &path);
        for round in 0..4 {
            let old = log.size();
            log.grow(3 + round, "a");
            assert_cosigned(&witness.add_checkpoint(&log.request(old), NOW), &log);
            sizes.push(log.size());
        }
    }
    // Restarted: the witness remembers the last size and root.
    let witness = witness(&log, &path);
    let stored = witness.store().latest(ORIGIN).unwrap().unwrap();
    assert_eq!((stored.size, stored.root), (log.size(), log.root()));

    // A log that lost its tail (restored from a backup) asks from an older size: 409 with the
    // witness's size, and the witness cosigns nothing smaller.
    let mut restored = TestLog::new(ORIGIN, 1);
    restored.leaves.clear();
    for leaf in &log.leaves[..sizes[1] as usize] {
        restored.append(leaf.clone());
    }
    let reply = witness.add_checkpoint(&restored.request(sizes[0]), NOW);
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (409, format!("{}\n", log.size()).as_str())
    );
    // Even claiming the right old size, a smaller checkpoint is refused (old > size: 400).
    let reply = witness.add_checkpoint(&restored.request(log.size()), NOW);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        witness.store().latest(ORIGIN).unwrap().unwrap().size,
        log.size()
    );

    // The run continues from the remembered size.
    let old = log.size();
    log.grow(2, "a");
    assert_cosigned(&witness.add_checkpoint(&log.request(old), NOW), &log);
}

#[test]
fn concurrent_requests_with_one_old_size_cosign_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    let witness = Arc::new(witness(&log, &dir.path().join("witness.redb")));
    log.grow(4, "a");
    assert_eq!(witness.add_checkpoint(&log.request(0), NOW).status, 200);
    // Two checkpoints both extending size 4, sent at once: exactly one may win; the other
    // learns the new size from a 409.
    let mut a = TestLog::new(ORIGIN, 1);
    let mut b = TestLog::new(ORIGIN, 1);
    for leaf in &log.leaves {
        a.append(leaf.clone());
        b.append(leaf.clone());
    }
    a.grow(3, "a");
    b.grow(5, "a");
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| witness.add_checkpoint(&a.request(4), NOW));
        let tb = s.spawn(|| witness.add_checkpoint(&b.request(4), NOW));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let mut statuses = [ra.status, rb.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{ra:?} {rb:?}");
}

/// Every node of a cluster pushes the same checkpoint: a repeat of the stored one gets the same
/// cosignature within its second and a fresh one later, and a repeat is trusted only for the
/// exact log signature lines already verified, never for anything else in it.
#[test]
fn a_repeated_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(3, "a");
    let witness = witness(&log, &dir.path().join("witness.redb"));
    let first = witness.add_checkpoint(&log.request(0), NOW);
    assert_cosigned(&first, &log);

    // The same request again, in the same second: the same line, byte for byte.
    let again = witness.add_checkpoint(&log.request(3), NOW);
    assert_eq!(again, first);

    // A second later: a new cosignature carrying the new time, and it is what is stored.
    let later = witness.add_checkpoint(&log.request(3), NOW + 1);
    assert_eq!(later.status, 200, "{}", later.body);
    let line = tlog::note::NoteSignature::parse_lines(&later.body).unwrap();
    assert_eq!(
        tlog::cosignature::timestamp(&line[0].signature).unwrap(),
        NOW + 1
    );
    let stored = witness.store().latest(ORIGIN).unwrap().unwrap();
    assert!(stored.note.contains(later.body.trim_end()));

    // The same text with the log's signature tampered with: verified in full, and refused.
    let mut tampered = AddCheckpoint::parse(&log.request(3)).unwrap();
    let mut note = Note::parse(tampered.checkpoint.as_bytes()).unwrap();
    let mut signature = note.signatures()[0].clone();
    signature.signature[0] ^= 1;
    let mut forged = Note::new(note.text()).unwrap();
    forged.add_signature(signature).unwrap();
    tampered.checkpoint = forged.format().unwrap();
    assert_eq!(
        witness
            .add_checkpoint(tampered.to_body().as_bytes(), NOW + 1)
            .status,
        403
    );

    // The same text carrying only the witness's own stored cosignature (no log signature):
    // refused, as it would be the first time.
    let own = tlog::note::NoteSignature::parse_lines(&later.body).unwrap();
    note = Note::new(note.text()).unwrap();
    note.add_signature(own[0].clone()).unwrap();
    let mut replayed = AddCheckpoint::parse(&log.request(3)).unwrap();
    replayed.checkpoint = note.format().unwrap();
    assert_eq!(
        witness
            .add_checkpoint(replayed.to_body().as_bytes(), NOW + 1)
            .status,
        403
    );
}

/// A split view replayed again and again is evidence once: the store grows per distinct
/// (origin, size, root) of the contradicting checkpoint, not per request, also across a
/// restart, and in the in-memory store alike.
#[test]
fn a_replayed_split_view_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.redb");
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(9, "a");
    let mut fork = TestLog::new(ORIGIN, 1);
    fork.grow(9, "b");
    let mut other_fork = TestLog::new(ORIGIN, 1);
    other_fork.grow(9, "c");
    {
        let witness = witness(&log, &path);
        assert_cosigned(&witness.add_checkpoint(&log.request(0), NOW), &log);
        for _ in 0..5 {
            assert_eq!(witness.add_checkpoint(&fork.request(9), NOW).status, 422);
        }
        assert_eq!(witness.store().split_views().unwrap().len(), 1);
    }
    let witness = witness(&log, &path);
    assert_eq!(witness.add_checkpoint(&fork.request(9), NOW).status, 422);
    assert_eq!(witness.store().split_views().unwrap().len(), 1);
    // Another root for the same size is new evidence.
    assert_eq!(
        witness.add_checkpoint(&other_fork.request(9), NOW).status,
        422
    );
    assert_eq!(witness.store().split_views().unwrap().len(), 2);

    let memory: Arc<dyn Store> = Arc::new(witness::store::MemoryStore::new());
    let views = witness.store().split_views().unwrap();
    for _ in 0..3 {
        for view in &views {
            memory.record_split_view(view).unwrap();
        }
    }
    assert_eq!(memory.split_views().unwrap(), views);
}
