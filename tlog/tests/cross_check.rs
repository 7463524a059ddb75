//! Our tree and proofs against `ct-merkle`, an RFC 6962 implementation written independently of
//! ours (different tree layout: an in-memory array tree that recomputes paths on every push).
//!
//! Two implementations agreeing on every root and every proof byte for hundreds of sizes is
//! strong evidence that neither has a subtle split or ordering bug. See
//! docs/decisions/0001-tlog-crate.md for why ct-merkle is a dev-dependency and not the core.

// Test helpers may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use tlog::proof::{consistency_proof, inclusion_proof};
use tlog::{LeafIndex, MemoryTree, TreeSize, leaf_hash};

const SIZE_MAX: usize = 160;

fn concatenated(hashes: &[tlog::Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

#[test]
fn roots_and_proofs_agree_with_ct_merkle() {
    let mut theirs: MemoryBackedTree<sha2::Sha256, Vec<u8>> = MemoryBackedTree::new();
    let mut ours = MemoryTree::new();
    for size in 1..=SIZE_MAX {
        let leaf = format!("entry {size}").into_bytes();
        ours.append(leaf_hash(&leaf)).unwrap();
        theirs.push(leaf);
        assert_eq!(
            ours.root().0.as_slice(),
            theirs.root().as_bytes().as_slice(),
            "size {size}"
        );

        for index in 0..size {
            let proof =
                inclusion_proof(&ours.store, LeafIndex(index as u64), TreeSize(size as u64))
                    .unwrap();
            assert_eq!(
                concatenated(&proof.hashes),
                theirs.prove_inclusion(index).as_bytes(),
                "inclusion of {index} in {size}"
            );
        }
        // ct-merkle names a consistency proof by the number of leaves added since the old tree.
        for old in 1..size {
            let proof = consistency_proof(&ours.store, TreeSize(old as u64), TreeSize(size as u64))
                .unwrap();
            assert_eq!(
                concatenated(&proof.hashes),
                theirs.prove_consistency(size - old).as_bytes(),
                "consistency from {old} to {size}"
            );
        }
    }
}
