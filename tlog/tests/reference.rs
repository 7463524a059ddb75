//! The real tree and proofs checked against a naive model written straight from the RFC text.
//!
//! The model is RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1 (SUBPROOF) as recursive
//! functions over a list of leaves, with no cleverness beyond memoising MTH of a range. The real
//! code (right-edge `Tree`, stored complete subtrees, iterative proof generation, RFC 9162
//! verification) must agree with it for every size up to 300 and every index and size pair, and
//! beyond that on random sizes and batch splits. Every tampered proof must be rejected.

// Test helpers may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]
// Sizes in these tests are a few thousand: u64 to usize cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use std::cell::RefCell;
use std::collections::HashMap;

use proptest::prelude::*;
use tlog::proof::{consistency_proof, inclusion_proof};
use tlog::tree::root_at;
use tlog::{
    ConsistencyProof, Hash, InclusionProof, LeafIndex, MemoryTree, Tree, TreeSize, leaf_hash,
    node_hash,
};

/// The naive model: leaves and a memo of MTH over ranges.
struct Reference {
    leaves: Vec<Vec<u8>>,
    memo: RefCell<HashMap<(usize, usize), Hash>>,
}

impl Reference {
    fn new(size: usize) -> Reference {
        Reference {
            leaves: (0..size).map(leaf).collect(),
            memo: RefCell::default(),
        }
    }

    /// The largest power of two smaller than n.
    fn k(n: usize) -> usize {
        let mut k = 1;
        while k << 1 < n {
            k <<= 1;
        }
        k
    }

    /// MTH(D[start:end]).
    fn mth(&self, start: usize, end: usize) -> Hash {
        if let Some(hash) = self.memo.borrow().get(&(start, end)) {
            return *hash;
        }
        let n = end - start;
        let hash = match n {
            0 => Hash::digest(b""),
            1 => leaf_hash(&self.leaves[start]),
            _ => {
                let k = Reference::k(n);
                node_hash(&self.mth(start, start + k), &self.mth(start + k, end))
            }
        };
        self.memo.borrow_mut().insert((start, end), hash);
        hash
    }

    /// PATH(m, D[start:end]).
    fn path(&self, m: usize, start: usize, end: usize) -> Vec<Hash> {
        let n = end - start;
        if n == 1 {
            return vec![];
        }
        let k = Reference::k(n);
        if m < k {
            let mut path = self.path(m, start, start + k);
            path.push(self.mth(start + k, end));
            path
        } else {
            let mut path = self.path(m - k, start + k, end);
            path.push(self.mth(start, start + k));
            path
        }
    }

    /// SUBPROOF(m, D[start:end], b).
    fn subproof(&self, m: usize, start: usize, end: usize, b: bool) -> Vec<Hash> {
        let n = end - start;
        if m == n {
            return if b {
                vec![]
            } else {
                vec![self.mth(start, end)]
            };
        }
        let k = Reference::k(n);
        if m <= k {
            let mut proof = self.subproof(m, start, start + k, b);
            proof.push(self.mth(start + k, end));
            proof
        } else {
            let mut proof = self.subproof(m - k, start + k, end, false);
            proof.push(self.mth(start, start + k));
            proof
        }
    }
}

fn leaf(i: usize) -> Vec<u8> {
    format!("leaf {i}").into_bytes()
}

fn flip(hash: &mut Hash, bit: usize) {
    hash.0[bit / 8 % 32] ^= 1 << (bit % 8);
}

/// Every way of tampering with a proof's hashes that must make it fail.
fn tampered(hashes: &[Hash], seed: usize) -> Vec<Vec<Hash>> {
    let mut variants = Vec::new();
    for position in 0..hashes.len() {
        let mut flipped = hashes.to_vec();
        flip(&mut flipped[position], seed + position);
        variants.push(flipped);
        let mut removed = hashes.to_vec();
        removed.remove(position);
        variants.push(removed);
    }
    let mut extended = hashes.to_vec();
    extended.push(Hash::digest(b"extra"));
    variants.push(extended);
    let mut prefixed = hashes.to_vec();
    prefixed.insert(0, Hash::digest(b"extra"));
    variants.push(prefixed);
    if hashes.len() >= 2 && hashes[0] != hashes[1] {
        let mut swapped = hashes.to_vec();
        swapped.swap(0, 1);
        variants.push(swapped);
    }
    variants
}

#[test]
fn exhaustive_up_to_300_leaves() {
    const SIZE_MAX: usize = 300;
    let reference = Reference::new(SIZE_MAX);
    let mut log = MemoryTree::new();
    for size in 1..=SIZE_MAX {
        log.append(leaf_hash(&reference.leaves[size - 1])).unwrap();
        let root = reference.mth(0, size);
        assert_eq!(log.root(), root, "root of size {size}");
        let tree_size = TreeSize(size as u64);

        for m in 0..size {
            let proof = inclusion_proof(&log.store, LeafIndex(m as u64), tree_size).unwrap();
            assert_eq!(
                proof.hashes,
                reference.path(m, 0, size),
                "PATH({m}, {size})"
            );
            let leaf = leaf_hash(&reference.leaves[m]);
            proof.verify(&leaf, &root).unwrap();
            assert!(proof.verify(&leaf_hash(b"other"), &root).is_err());
            for hashes in tampered(&proof.hashes, m + size) {
                let bad = InclusionProof {
                    hashes,
                    ..proof.clone()
                };
                assert!(
                    bad.verify(&leaf, &root).is_err(),
                    "tampered PATH({m}, {size}) verified"
                );
            }
        }

        for m in 1..=size {
            let old_size = TreeSize(m as u64);
            let proof = consistency_proof(&log.store, old_size, tree_size).unwrap();
            assert_eq!(
                proof.hashes,
                reference.subproof(m, 0, size, true),
                "PROOF({m}, {size})"
            );
            let old_root = reference.mth(0, m);
            assert_eq!(root_at(&log.store, old_size).unwrap(), old_root);
            proof.verify(&old_root, &root).unwrap();
            if m < size {
                assert!(
                    proof.verify(&root, &root).is_err(),
                    "wrong old root verified"
                );
                for hashes in tampered(&proof.hashes, m * size) {
                    let bad = ConsistencyProof {
                        hashes,
                        ..proof.clone()
                    };
                    assert!(
                        bad.verify(&old_root, &root).is_err(),
                        "tampered PROOF({m}, {size})"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Trees grown in random batches agree with the reference at sizes well past 300, and
    /// random tampering with their proofs is rejected.
    #[test]
    fn random_batches_and_proofs(
        batches in prop::collection::vec(1usize..700, 1..12),
        index_seed in any::<u64>(),
        old_seed in any::<u64>(),
        bit in 0usize..256,
    ) {
        let size: usize = batches.iter().sum();
        let reference = Reference::new(size);
        let mut log = MemoryTree::new();
        let mut batched = Tree::new();
        let mut next = 0;
        for batch in &batches {
            let hashes: Vec<Hash> =
                reference.leaves[next..next + batch].iter().map(|l| leaf_hash(l)).collect();
            let first = batched.append_batch(&hashes, |_, _| {}).unwrap();
            prop_assert_eq!(first, LeafIndex(next as u64));
            for hash in hashes {
                log.append(hash).unwrap();
            }
            next += batch;
            prop_assert_eq!(batched.root(), reference.mth(0, next));
        }
        prop_assert_eq!(&batched, &log.tree);

        let root = reference.mth(0, size);
        let m = (index_seed % size as u64) as usize;
        let proof = inclusion_proof(&log.store, LeafIndex(m as u64), TreeSize(size as u64)).unwrap();
        prop_assert_eq!(&proof.hashes, &reference.path(m, 0, size));
        let leaf = leaf_hash(&reference.leaves[m]);
        proof.verify(&leaf, &root).unwrap();
        if !proof.hashes.is_empty() {
            let mut bad = proof.clone();
            let position = bit % bad.hashes.len();
            flip(&mut bad.hashes[position], bit);
            prop_assert!(bad.verify(&leaf, &root).is_err());
        }

        let old = 1 + (old_seed % size as u64) as usize;
        let proof = consistency_proof(&log.store, TreeSize(old as u64), TreeSize(size as u64)).unwrap();
        prop_assert_eq!(&proof.hashes, &reference.subproof(old, 0, size, true));
        let old_root = reference.mth(0, old);
        proof.verify(&old_root, &root).unwrap();
        if !proof.hashes.is_empty() {
            let mut bad = proof.clone();
            let position = bit % bad.hashes.len();
            flip(&mut bad.hashes[position], bit);
            prop_assert!(bad.verify(&old_root, &root).is_err());
            let mut wrong_old = old_root;
            flip(&mut wrong_old, bit);
            prop_assert!(proof.verify(&wrong_old, &root).is_err());
        }
    }
}
