//! Micro benchmarks of the `tlog` core: leaf hashing, tree append, proof generation and
//! verification, checkpoint signing and verification.
//!
//! Run with `cargo bench -p bench --bench tlog`; results and the machine they came from are in
//! `docs/benchmarks/tlog-micro.md`. These are not load tests: they measure the pure CPU cost that
//! bounds what a node can do per core.

// A benchmark that fails to set up should stop loudly; there is no caller to hand an error to.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tlog::proof::{consistency_proof, inclusion_proof};
use tlog::{Hash, LeafIndex, MemoryTree, Tree, TreeSize, leaf_hash};

/// A log large enough that proofs have realistic depth (20 levels) yet builds in a second.
const LOG_SIZE: u64 = 1 << 20;

fn leaf_hashes(count: u64) -> Vec<Hash> {
    (0..count).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash");
    // A typical hashedrekord canonical body is about 1 KiB with a certificate, 300 bytes without.
    for size in [32usize, 300, 1024] {
        let leaf = vec![0xa5u8; size];
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("leaf_{size}_bytes"), |b| {
            b.iter(|| leaf_hash(black_box(&leaf)));
        });
    }
    let (left, right) = (leaf_hash(b"left"), leaf_hash(b"right"));
    group.bench_function("node", |b| {
        b.iter(|| tlog::node_hash(black_box(&left), black_box(&right)));
    });
    group.finish();
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree");
    group.sample_size(10);
    let hashes = leaf_hashes(1_000_000);
    group.throughput(Throughput::Elements(hashes.len() as u64));
    // The right edge alone, as the sequencer keeps it; new nodes are handed to a no-op sink.
    group.bench_function("append_1m_leaves_edge_only", |b| {
        b.iter(|| {
            let mut tree = Tree::new();
            tree.append_batch(black_box(&hashes), |_, _| {}).unwrap();
            tree.root()
        });
    });
    // With every complete subtree stored in memory, as a small log or a tool does.
    group.bench_function("append_1m_leaves_stored", |b| {
        b.iter(|| {
            let mut log = MemoryTree::new();
            for hash in &hashes {
                log.append(*hash).unwrap();
            }
            log.root()
        });
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let mut log = MemoryTree::new();
    for hash in leaf_hashes(LOG_SIZE) {
        log.append(hash).unwrap();
    }
    let size = TreeSize(LOG_SIZE - 3);
    let root = tlog::tree::root_at(&log.store, size).unwrap();
    let old = TreeSize(LOG_SIZE / 3);
    let old_root = tlog::tree::root_at(&log.store, old).unwrap();
    let index = LeafIndex(LOG_SIZE / 2 + 12_345);
    let leaf = leaf_hash(&index.0.to_le_bytes());

    let mut group = c.benchmark_group("proof");
    group.throughput(Throughput::Elements(1));
    group.bench_function("inclusion_generate", |b| {
        b.iter(|| inclusion_proof(&log.store, black_box(index), size).unwrap());
    });
    let inclusion = inclusion_proof(&log.store, index, size).unwrap();
    group.bench_function("inclusion_verify", |b| {
        b.iter(|| inclusion.verify(black_box(&leaf), &root).unwrap());
    });
    group.bench_function("consistency_generate", |b| {
        b.iter(|| consistency_proof(&log.store, black_box(old), size).unwrap());
    });
    let consistency = consistency_proof(&log.store, old, size).unwrap();
    group.bench_function("consistency_verify", |b| {
        b.iter(|| consistency.verify(black_box(&old_root), &root).unwrap());
    });
    group.bench_function("root_at_past_size", |b| {
        b.iter_batched(
            || old,
            |old| tlog::tree::root_at(&log.store, old).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn checkpoints(c: &mut Criterion) {
    use tlog::checkpoint::{Checkpoint, open};
    use tlog::keys::{Ed25519Verifier, Verifier, Verifiers};

    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let checkpoint = Checkpoint::new(
        "example.com/artifacts",
        TreeSize(1_234_567),
        leaf_hash(b"root"),
    );
    let mut verifiers = Verifiers::new();
    verifiers
        .push(Verifier::Ed25519(
            Ed25519Verifier::new("example.com/artifacts", key.verifying_key()).unwrap(),
        ))
        .unwrap();
    let signed = checkpoint.sign_ed25519(&key).unwrap().format().unwrap();

    let mut group = c.benchmark_group("checkpoint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_ed25519", |b| {
        b.iter(|| {
            checkpoint
                .sign_ed25519(black_box(&key))
                .unwrap()
                .format()
                .unwrap()
        });
    });
    group.bench_function("open_and_verify_ed25519", |b| {
        b.iter(|| open(black_box(signed.as_bytes()), &verifiers).unwrap());
    });
    group.finish();
}

criterion_group!(benches, hashing, append, proofs, checkpoints);
criterion_main!(benches);
