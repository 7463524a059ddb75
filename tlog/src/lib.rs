//! Transparency-log formats and Merkle math, shared by every part of Cairn.
//!
//! What is here, by the spec it implements:
//! - [`hash`], [`tree`], [`proof`]: RFC 6962 / RFC 9162 §2.1 hashing, the append-only tree, and
//!   inclusion and consistency proofs (generated from a [`tree::HashStore`] the caller provides,
//!   verified with the RFC 9162 algorithms).
//! - [`tile`]: C2SP tlog-tiles: tile coordinates and paths, tiles built from stored hashes,
//!   entry bundles, and proofs computed from tiles.
//! - [`note`]: C2SP signed-note, the format: notes, signature lines, key names and key ids.
//! - [`cosignature`]: C2SP tlog-cosignature v1, the message a cosignature signs (timestamped
//!   Ed25519, note type 0x04).
//! - [`keys`]: the keys of signed notes: verifier keys, sets of them, Ed25519, ECDSA (Rekor's
//!   key-id rule) and cosignature signers and verifiers, and verifying a note. Imports run
//!   `note` ← `cosignature` ← `keys`.
//! - [`checkpoint`]: C2SP tlog-checkpoint.
//! - [`tlog_proof`]: C2SP tlog-proof files (an index, an inclusion proof and a checkpoint).
//! - [`policy`]: C2SP tlog-policy files and whether a cosigned checkpoint satisfies one.
//! - [`entry`]: the canonical bodies of Rekor entries (hashedrekord v0.0.1 and v0.0.2, dsse),
//!   byte for byte as Rekor computes their leaves (RFC 8785 JSON canonicalisation).
//!
//! What is not here, on purpose: IO of any kind, async code, clocks and randomness. Callers pass
//! times in and keys in; the node, the client and the simulator decide where bytes come from.
//! The choice to write this crate rather than wrap `tlog_tiles`, `signed_note` or `ct-merkle` is
//! recorded in `docs/decisions/0001-tlog-crate.md`.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod cosignature;
pub mod ed25519;
pub mod entry;
pub mod hash;
pub mod keys;
pub mod note;
pub mod policy;
pub mod proof;
pub mod tile;
pub mod tlog_proof;
pub mod tree;

pub use hash::{Hash, leaf_hash, node_hash};
pub use proof::{ConsistencyProof, InclusionProof, ProofError};
pub use tree::{
    HashCache, HashStore, LeafIndex, MemoHashStore, MemoryHashStore, MemoryTree, NodeId, Tree,
    TreeSize,
};
