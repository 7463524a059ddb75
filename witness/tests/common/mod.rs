//! A log in memory for the witness tests: leaves, a tree with every complete subtree, and a
//! signer; it signs checkpoints at any size, proves consistency, and lays itself out as
//! tlog-tiles files.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, dead_code)]

use std::collections::BTreeMap;

use tlog::checkpoint::Checkpoint;
use tlog::keys::{Ed25519Signer, Verifier};
use tlog::tile::{TILE_WIDTH, Tile};
use tlog::{Hash, MemoryTree, TreeSize, leaf_hash};

pub(crate) struct TestLog {
    pub(crate) origin: String,
    pub(crate) signer: Ed25519Signer,
    pub(crate) tree: MemoryTree,
    pub(crate) leaves: Vec<Vec<u8>>,
}

impl TestLog {
    pub(crate) fn new(origin: &str, seed: u8) -> TestLog {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        TestLog {
            origin: origin.to_owned(),
            signer: Ed25519Signer::new(origin, key).unwrap(),
            tree: MemoryTree::new(),
            leaves: Vec::new(),
        }
    }

    pub(crate) fn verifier(&self) -> Verifier {
        self.signer.verifier()
    }

    pub(crate) fn append(&mut self, leaf: Vec<u8>) {
        self.tree.append(leaf_hash(&leaf)).unwrap();
        self.leaves.push(leaf);
    }

    /// Appends `n` leaves named after `tag` and their index.
    pub(crate) fn grow(&mut self, n: usize, tag: &str) {
        for _ in 0..n {
            let leaf = format!("{tag} {}", self.leaves.len()).into_bytes();
            self.append(leaf);
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.tree.size().0
    }

    pub(crate) fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The signed checkpoint of the current tree.
    pub(crate) fn checkpoint(&self) -> String {
        Checkpoint::new(&self.origin, self.tree.size(), self.root())
            .sign(&[&self.signer])
            .unwrap()
            .format()
            .unwrap()
    }

    /// The consistency proof from `old` to the current size.
    pub(crate) fn proof(&self, old: u64) -> Vec<Hash> {
        if old == 0 || old >= self.size() {
            return Vec::new();
        }
        tlog::proof::consistency_proof(&self.tree.store, TreeSize(old), self.tree.size())
            .unwrap()
            .hashes
    }

    /// The add-checkpoint request from `old` for the current tree.
    pub(crate) fn request(&self, old: u64) -> Vec<u8> {
        witness::request::AddCheckpoint {
            old_size: old,
            proof: self.proof(old),
            checkpoint: self.checkpoint(),
        }
        .to_body()
        .into_bytes()
    }

    /// Every tlog-tiles file of the current tree, by path under the prefix.
    pub(crate) fn tiles(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        let size = self.tree.size();
        for tile in tlog::tile::tiles_for_size(size) {
            let data = tlog::tile::tile_data(&self.tree.store, tile).unwrap();
            files.insert(tile.path(), data);
        }
        let width = u64::from(TILE_WIDTH);
        let mut start = 0u64;
        while start < size.0 {
            let end = (start + width).min(size.0);
            let entries: Vec<&[u8]> = self.leaves[start as usize..end as usize]
                .iter()
                .map(Vec::as_slice)
                .collect();
            let tile = Tile::entries(start / width, u16::try_from(end - start).unwrap());
            files.insert(tile.path(), tlog::tile::encode_bundle(&entries).unwrap());
            start = end;
        }
        files.insert("checkpoint".to_owned(), self.checkpoint().into_bytes());
        files
    }
}
