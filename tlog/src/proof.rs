//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4): generation from stored
//! complete-subtree hashes, and verification.
//!
//! Generation follows the RFC's PATH and SUBPROOF recursions over the same left-heavy split as
//! the tree hash, iteratively; every hash it emits is the hash of an RFC 6962 subtree, computed
//! from the complete subtrees that make it up (see `tree`). Verification is the RFC 9162
//! algorithm, step by step, with the expected proof length checked first as transparency-dev
//! does. A consistency proof from size 0 is rejected as meaningless (there is nothing to be
//! consistent with); callers that accept "old size 0", like a witness, handle it before asking
//! for a proof.

use crate::hash::{HASH_LEN, Hash, node_hash};
use crate::tree::{HashStore, LeafIndex, NodeId, StoreError, TreeSize, fold_range, range_nodes};

/// The longest proof any 64-bit tree can need; longer input is rejected before any hashing.
pub const PROOF_HASHES_MAX: usize = 64;

/// Why a proof was not generated or did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index asked about.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old size of a consistency proof is larger than the new size.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesReversed {
        /// The old (first) size.
        old: u64,
        /// The new (second) size.
        new: u64,
    },
    /// A consistency proof from the empty tree was asked for or given.
    #[error("a consistency proof from tree size 0 proves nothing")]
    EmptyOldTree,
    /// The proof has the wrong number of hashes for the index and sizes.
    #[error("proof has {got} hashes, want {want}")]
    Length {
        /// The number of hashes the sizes imply.
        want: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// A hash in the proof, a root or a leaf hash is not 32 bytes.
    #[error("{what} is {len} bytes long, want 32")]
    HashLength {
        /// Which hash: "proof hash", "leaf hash", "old root", ...
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The proof does not lead to the given root(s).
    #[error("proof does not match the root hash")]
    Mismatch,
    /// Reading stored hashes failed while generating a proof.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Proof that a leaf is in a tree: the sibling subtree hashes from the leaf up to the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf the proof is for.
    pub leaf_index: LeafIndex,
    /// The size of the tree the proof leads to.
    pub tree_size: TreeSize,
    /// Sibling hashes, leaf to root.
    pub hashes: Vec<Hash>,
}

/// Proof that a tree of one size is a prefix of a tree of a larger size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The smaller (older) tree size.
    pub old_size: TreeSize,
    /// The larger (newer) tree size.
    pub new_size: TreeSize,
    /// The RFC 9162 §2.1.4 proof hashes.
    pub hashes: Vec<Hash>,
}

/// The number of hashes in an inclusion proof for `index` in a tree of `size` (`index < size`):
/// one per level below the point where the paths to the leaf and to the last leaf part, plus one
/// per set bit of the index above it.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    let inner = inner_proof_len(index, size);
    inner + (index >> inner).count_ones() as usize
}

/// The number of hashes in a consistency proof between sizes `old` and `new` (`0 < old <= new`).
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    debug_assert!(0 < old && old <= new);
    if old == new {
        return 0;
    }
    let inner = inner_proof_len(old - 1, new);
    let shift = (old - 1).trailing_ones() as usize;
    // When the old size is a power of two the old root itself is the first proof node and is
    // not sent (RFC 9162 §2.1.4.2 step 2).
    let first_sent = usize::from(!old.is_power_of_two());
    inner - shift + ((old - 1) >> inner).count_ones() as usize + first_sent
}

/// Levels below the split between the path to `index` and the path to the last leaf.
fn inner_proof_len(index: u64, size: u64) -> usize {
    (64 - (index ^ (size - 1)).leading_zeros()) as usize
}

/// The inclusion proof of leaf `index` in the tree of size `size`, from stored hashes.
pub fn inclusion_proof<S: HashStore + ?Sized>(
    store: &S,
    index: LeafIndex,
    size: TreeSize,
) -> Result<InclusionProof, ProofError> {
    if !size.contains(index) {
        return Err(ProofError::IndexOutOfRange {
            index: index.0,
            size: size.0,
        });
    }
    // PATH(m, D[start:end]) (RFC 9162 §2.1.3.1), unrolled: walk down from the root, noting the
    // sibling range at each split; the proof lists them bottom up.
    let mut siblings = Vec::new();
    let (mut start, mut end) = (0u64, size.0);
    let m = index.0;
    while end - start > 1 {
        let k = split_point(end - start);
        if m < start + k {
            siblings.push((start + k, end));
            end = start + k;
        } else {
            siblings.push((start, start + k));
            start += k;
        }
    }
    siblings.reverse();
    let hashes = ranges_hashes(store, &siblings)?;
    assert_eq!(
        hashes.len(),
        inclusion_proof_len(index.0, size.0),
        "inclusion proof length"
    );
    Ok(InclusionProof {
        leaf_index: index,
        tree_size: size,
        hashes,
    })
}

/// The consistency proof from size `old` to size `new`, from stored hashes.
pub fn consistency_proof<S: HashStore + ?Sized>(
    store: &S,
    old: TreeSize,
    new: TreeSize,
) -> Result<ConsistencyProof, ProofError> {
    if old > new {
        return Err(ProofError::SizesReversed {
            old: old.0,
            new: new.0,
        });
    }
    if old.0 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    // SUBPROOF(m, D[start:end], b) (RFC 9162 §2.1.4.1), unrolled top down.
    let mut ranges = Vec::new();
    let (mut start, mut end) = (0u64, new.0);
    let mut m = old.0;
    let mut whole_old_tree = true;
    while m != end - start {
        let k = split_point(end - start);
        if m <= k {
            ranges.push((start + k, end));
            end = start + k;
        } else {
            ranges.push((start, start + k));
            start += k;
            m -= k;
            whole_old_tree = false;
        }
    }
    if !whole_old_tree {
        // The subtree reached is a proper part of the old tree: its hash is needed too.
        ranges.push((start, end));
    }
    ranges.reverse();
    let hashes = ranges_hashes(store, &ranges)?;
    assert_eq!(
        hashes.len(),
        consistency_proof_len(old.0, new.0),
        "consistency proof length"
    );
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        hashes,
    })
}

/// The largest power of two strictly less than `n` (`n >= 2`): where RFC 6962 splits a tree.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The hashes of RFC 6962 subtree ranges, reading all the complete subtrees in one batch.
fn ranges_hashes<S: HashStore + ?Sized>(
    store: &S,
    ranges: &[(u64, u64)],
) -> Result<Vec<Hash>, StoreError> {
    let mut nodes: Vec<NodeId> = Vec::new();
    let mut bounds = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges {
        let first = nodes.len();
        range_nodes(start, end, &mut nodes);
        bounds.push(first..nodes.len());
    }
    let node_hashes = store.node_hashes(&nodes)?;
    if node_hashes.len() != nodes.len() {
        return Err(StoreError::Read(
            format!(
                "store returned {} hashes for {} nodes",
                node_hashes.len(),
                nodes.len()
            )
            .into(),
        ));
    }
    Ok(bounds
        .into_iter()
        .map(|range| fold_range(&node_hashes[range]))
        .collect())
}

impl InclusionProof {
    /// Checks that the leaf with hash `leaf_hash` is at this proof's index in the tree with
    /// root `root`.
    pub fn verify(&self, leaf_hash: &Hash, root: &Hash) -> Result<(), ProofError> {
        if !self.tree_size.contains(self.leaf_index) {
            return Err(ProofError::IndexOutOfRange {
                index: self.leaf_index.0,
                size: self.tree_size.0,
            });
        }
        let computed = self.root_from(leaf_hash)?;
        if computed == *root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        }
    }

    /// The root this proof leads to from `leaf_hash` (RFC 9162 §2.1.3.2), after checking its
    /// length; the caller compares it with a root it trusts.
    pub fn root_from(&self, leaf_hash: &Hash) -> Result<Hash, ProofError> {
        let (index, size) = (self.leaf_index.0, self.tree_size.0);
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let want = inclusion_proof_len(index, size);
        if self.hashes.len() != want {
            return Err(ProofError::Length {
                want,
                got: self.hashes.len(),
            });
        }
        let mut fn_ = index;
        let mut sn = size - 1;
        let mut r = *leaf_hash;
        for p in &self.hashes {
            // Cannot happen after the length check; kept because a wrong root is permanent.
            if sn == 0 {
                return Err(ProofError::Mismatch);
            }
            if fn_ & 1 == 1 || fn_ == sn {
                r = node_hash(p, &r);
                if fn_ & 1 == 0 {
                    while fn_ & 1 == 0 && fn_ != 0 {
                        fn_ >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        if sn != 0 {
            return Err(ProofError::Mismatch);
        }
        Ok(r)
    }
}

impl ConsistencyProof {
    /// Checks that the tree of `old_size` with root `old_root` is a prefix of the tree of
    /// `new_size` with root `new_root` (RFC 9162 §2.1.4.2).
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        let (old, new) = (self.old_size.0, self.new_size.0);
        if old > new {
            return Err(ProofError::SizesReversed { old, new });
        }
        if old == 0 {
            return Err(ProofError::EmptyOldTree);
        }
        if old == new {
            if !self.hashes.is_empty() {
                return Err(ProofError::Length {
                    want: 0,
                    got: self.hashes.len(),
                });
            }
            return if old_root == new_root {
                Ok(())
            } else {
                Err(ProofError::Mismatch)
            };
        }
        let want = consistency_proof_len(old, new);
        if self.hashes.len() != want {
            return Err(ProofError::Length {
                want,
                got: self.hashes.len(),
            });
        }
        // Step 2: when the old size is a power of two the old root starts the path.
        let mut path = self.hashes.iter();
        let mut fn_ = old - 1;
        let mut sn = new - 1;
        // Step 3: skip the levels where the old tree's last leaf is a right child.
        while fn_ & 1 == 1 {
            fn_ >>= 1;
            sn >>= 1;
        }
        let seed = if old.is_power_of_two() {
            *old_root
        } else {
            *path.next().ok_or(ProofError::Length { want, got: 0 })?
        };
        let (mut fr, mut sr) = (seed, seed);
        for c in path {
            if sn == 0 {
                return Err(ProofError::Mismatch);
            }
            if fn_ & 1 == 1 || fn_ == sn {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                if fn_ & 1 == 0 {
                    while fn_ & 1 == 0 && fn_ != 0 {
                        fn_ >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        if sn == 0 && fr == *old_root && sr == *new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        }
    }
}

/// Byte-level inclusion verification for input straight off the wire: checks that every hash is
/// 32 bytes (naming the one that is not), then verifies as [`InclusionProof::verify`].
pub fn verify_inclusion_bytes(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[Vec<u8>],
    root: &[u8],
) -> Result<(), ProofError> {
    if proof.len() > PROOF_HASHES_MAX {
        return Err(ProofError::Length {
            want: PROOF_HASHES_MAX,
            got: proof.len(),
        });
    }
    let leaf_hash = typed_hash("leaf hash", leaf_hash)?;
    let root = typed_hash("root", root)?;
    let hashes = proof
        .iter()
        .map(|h| typed_hash("proof hash", h))
        .collect::<Result<_, _>>()?;
    let proof = InclusionProof {
        leaf_index: LeafIndex(index),
        tree_size: TreeSize(size),
        hashes,
    };
    proof.verify(&leaf_hash, &root)
}

/// Byte-level consistency verification for input straight off the wire.
///
/// As in RFC 9162 (and transparency-dev), equal sizes need an empty proof and byte-equal roots,
/// and the check stops there; otherwise every hash must be 32 bytes.
pub fn verify_consistency_bytes(
    old_size: u64,
    new_size: u64,
    proof: &[Vec<u8>],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesReversed {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                want: 0,
                got: proof.len(),
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if proof.len() > PROOF_HASHES_MAX {
        return Err(ProofError::Length {
            want: PROOF_HASHES_MAX,
            got: proof.len(),
        });
    }
    let old_root = typed_hash("old root", old_root)?;
    let new_root = typed_hash("new root", new_root)?;
    let hashes = proof
        .iter()
        .map(|h| typed_hash("proof hash", h))
        .collect::<Result<_, _>>()?;
    let proof = ConsistencyProof {
        old_size: TreeSize(old_size),
        new_size: TreeSize(new_size),
        hashes,
    };
    proof.verify(&old_root, &new_root)
}

fn typed_hash(what: &'static str, bytes: &[u8]) -> Result<Hash, ProofError> {
    if bytes.len() != HASH_LEN {
        return Err(ProofError::HashLength {
            what,
            len: bytes.len(),
        });
    }
    Hash::from_slice(bytes).map_err(|_| ProofError::HashLength {
        what,
        len: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::MemoryTree;

    fn tree(size: u64) -> MemoryTree {
        let mut log = MemoryTree::new();
        for i in 0..size {
            log.append(leaf_hash(&i.to_be_bytes())).unwrap();
        }
        log
    }

    #[test]
    fn proofs_round_trip_in_a_small_tree() {
        let log = tree(7);
        for index in 0..7 {
            let proof = inclusion_proof(&log.store, LeafIndex(index), TreeSize(7)).unwrap();
            proof
                .verify(&leaf_hash(&index.to_be_bytes()), &log.root())
                .unwrap();
        }
        let old = tree(3);
        let proof = consistency_proof(&log.store, TreeSize(3), TreeSize(7)).unwrap();
        proof.verify(&old.root(), &log.root()).unwrap();
    }

    #[test]
    fn bad_requests_are_refused() {
        let log = tree(4);
        assert!(matches!(
            inclusion_proof(&log.store, LeafIndex(4), TreeSize(4)),
            Err(ProofError::IndexOutOfRange { index: 4, size: 4 })
        ));
        assert!(matches!(
            consistency_proof(&log.store, TreeSize(5), TreeSize(4)),
            Err(ProofError::SizesReversed { .. })
        ));
        assert!(matches!(
            consistency_proof(&log.store, TreeSize(0), TreeSize(4)),
            Err(ProofError::EmptyOldTree)
        ));
        // The store only knows size 4; a proof for size 6 needs hashes it does not have.
        assert!(matches!(
            inclusion_proof(&log.store, LeafIndex(0), TreeSize(6)),
            Err(ProofError::Store(StoreError::Missing(_)))
        ));
    }

    #[test]
    fn oversized_wire_proofs_are_refused_before_hashing() {
        let proof = vec![vec![0u8; 32]; PROOF_HASHES_MAX + 1];
        assert!(matches!(
            verify_inclusion_bytes(0, 2, &[0; 32], &proof, &[0; 32]),
            Err(ProofError::Length { .. })
        ));
    }
}
