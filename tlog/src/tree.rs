//! The append-only Merkle tree of RFC 6962 / RFC 9162 §2.1: leaf indices, tree sizes, the
//! complete subtrees a tree is made of, and the right edge that grows it.
//!
//! Model. A tree of size n is split, from the left, into the complete subtrees given by the set
//! bits of n: size 13 = 8 + 4 + 1 is the subtrees [0, 8), [8, 12) and [12, 13). Every complete
//! subtree is a [`NodeId`] (a level and an index at that level) and its hash never changes once
//! written: that is what makes the tree storable in tiles and in a key-value table. A [`Tree`]
//! keeps only the hashes of the current complete subtrees (its right edge, at most 64 hashes),
//! so appending a leaf costs one leaf hash plus one node hash per subtree it completes, and the
//! root costs one node hash per set bit of the size. Everything else (proofs, the root of an
//! older size) is computed from complete-subtree hashes that the caller stores and provides
//! through [`HashStore`].

use std::fmt;

use crate::hash::{Hash, node_hash};

/// The position of a leaf in a log, counted from 0.
///
/// Distinct from [`TreeSize`] so that the off-by-one between "the last index" and "the size" is
/// written once, in [`LeafIndex::tree_size_including`] and [`TreeSize::next_leaf_index`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeafIndex(pub u64);

/// The number of leaves in a tree.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TreeSize(pub u64);

impl LeafIndex {
    /// The size of the smallest tree that contains this leaf (`index + 1`).
    ///
    /// # Panics
    /// At index `u64::MAX`, which no tree can hold.
    pub fn tree_size_including(self) -> TreeSize {
        TreeSize(
            self.0
                .checked_add(1)
                .expect("leaf index u64::MAX is outside every tree"),
        )
    }
}

impl TreeSize {
    /// The index the next appended leaf will get (equal to the size).
    pub fn next_leaf_index(self) -> LeafIndex {
        LeafIndex(self.0)
    }

    /// Whether a leaf with this index is in a tree of this size.
    pub fn contains(self, index: LeafIndex) -> bool {
        index.0 < self.0
    }
}

impl fmt::Debug for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeafIndex({})", self.0)
    }
}

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeSize({})", self.0)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A complete subtree: the `2^level` leaves starting at leaf `index * 2^level`.
///
/// Level 0 nodes are the leaves themselves (their hash is the leaf hash).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId {
    /// Height above the leaves, 0 to 63.
    pub level: u8,
    /// Position among the nodes of this level, counted from 0 at the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    /// The first leaf this subtree covers.
    pub fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// The number of leaves this subtree covers.
    pub fn leaf_count(self) -> u64 {
        1 << self.level
    }

    /// The smallest tree size at which this subtree is complete.
    pub fn complete_at(self) -> TreeSize {
        TreeSize((self.index + 1) << self.level)
    }
}

/// Where a failed read of stored hashes went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store does not hold the hash of this complete subtree.
    #[error("hash of node at level {} index {} is not stored", .0.level, .0.index)]
    Missing(NodeId),
    /// The store failed to read it (a disk or network error in the caller's store).
    #[error("reading stored hashes: {0}")]
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// Read access to the hashes of complete subtrees, provided by the caller (a redb table, tiles,
/// memory). Implementations need only answer for subtrees that are complete in the tree the
/// caller asks about.
pub trait HashStore {
    /// The hash of one complete subtree.
    fn node_hash(&self, node: NodeId) -> Result<Hash, StoreError>;

    /// The hashes of several complete subtrees, in the order given. Stores with expensive reads
    /// (tiles, disk) override this to batch them.
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        nodes.iter().map(|&node| self.node_hash(node)).collect()
    }
}

impl<S: HashStore + ?Sized> HashStore for &S {
    fn node_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
        (**self).node_hash(node)
    }

    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        (**self).node_hashes(nodes)
    }
}

/// The complete subtrees that make up the leaf range `[start, end)`, left to right.
///
/// The range must be an RFC 6962 subtree: `start` a multiple of the smallest power of two at
/// least `end - start` (always true of the ranges the proof recursions produce, and of
/// `[0, n)`). The hash of the range is the right-to-left fold of these nodes' hashes.
pub(crate) fn range_nodes(start: u64, end: u64, nodes: &mut Vec<NodeId>) {
    assert!(start < end, "empty leaf range [{start}, {end})");
    let mut start = start;
    while start < end {
        let length = end - start;
        // The largest power of two not above the remaining length; the left part of the RFC
        // 6962 split when the length is not itself a power of two.
        let level = u8::try_from(63 - length.leading_zeros()).expect("a u64 has 64 bits");
        debug_assert_eq!(start % (1 << level), 0, "range start {start} not aligned");
        nodes.push(NodeId::new(level, start >> level));
        start += 1 << level;
    }
}

/// Folds the hashes of consecutive complete subtrees, left to right, into the hash of the range
/// they cover: `node(h0, node(h1, node(h2, ...)))`.
pub(crate) fn fold_range(hashes: &[Hash]) -> Hash {
    let (last, rest) = hashes
        .split_last()
        .expect("a leaf range has at least one subtree");
    rest.iter()
        .rev()
        .fold(*last, |right, left| node_hash(left, &right))
}

/// The Merkle tree hash of leaves `[start, end)`, from stored complete-subtree hashes.
pub fn range_hash<S: HashStore + ?Sized>(
    store: &S,
    start: u64,
    end: u64,
) -> Result<Hash, StoreError> {
    let mut nodes = Vec::new();
    range_nodes(start, end, &mut nodes);
    Ok(fold_range(&store.node_hashes(&nodes)?))
}

/// The root of the tree of size `size`, from stored complete-subtree hashes (the root at any
/// past size of a log).
pub fn root_at<S: HashStore + ?Sized>(store: &S, size: TreeSize) -> Result<Hash, StoreError> {
    if size.0 == 0 {
        return Ok(Hash::EMPTY_ROOT);
    }
    range_hash(store, 0, size.0)
}

/// The right edge of an append-only tree: the hashes of its complete subtrees, largest first.
///
/// It grows leaf by leaf or batch by batch, reports every complete subtree it creates so the
/// caller can store it, and yields the root. It holds at most 64 hashes, whatever the size.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Tree {
    size: u64,
    /// One hash per set bit of `size`, from the highest bit to the lowest.
    edge: Vec<Hash>,
}

/// A [`Tree`] could not be rebuilt from stored hashes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// Reading a stored hash failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The number of edge hashes given does not match the set bits of the size.
    #[error("tree of size {size} needs {want} edge hashes, got {got}")]
    EdgeLength {
        /// The tree size given.
        size: u64,
        /// The number of set bits in the size.
        want: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// Appending would overflow the largest tree size.
    #[error("tree is full")]
    Full,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// The complete subtrees of a tree of size `size`, largest (leftmost) first.
    pub fn edge_nodes(size: TreeSize) -> Vec<NodeId> {
        let mut nodes = Vec::with_capacity(size.0.count_ones() as usize);
        if size.0 > 0 {
            range_nodes(0, size.0, &mut nodes);
        }
        nodes
    }

    /// Rebuilds the tree of size `size` from the store (for example after a restart).
    pub fn from_store<S: HashStore + ?Sized>(store: &S, size: TreeSize) -> Result<Tree, TreeError> {
        let hashes = store.node_hashes(&Tree::edge_nodes(size))?;
        Tree::from_edge(size, hashes)
    }

    /// A tree of size `size` whose complete subtrees (largest first) have these hashes.
    pub fn from_edge(size: TreeSize, edge: Vec<Hash>) -> Result<Tree, TreeError> {
        let want = size.0.count_ones() as usize;
        if edge.len() != want {
            return Err(TreeError::EdgeLength {
                size: size.0,
                want,
                got: edge.len(),
            });
        }
        Ok(Tree { size: size.0, edge })
    }

    /// The number of leaves.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// The hashes of the complete subtrees, largest first (see [`Tree::edge_nodes`]).
    pub fn edge(&self) -> &[Hash] {
        &self.edge
    }

    /// The root hash (RFC 9162 §2.1.1 MTH of all leaves).
    pub fn root(&self) -> Hash {
        if self.edge.is_empty() {
            return Hash::EMPTY_ROOT;
        }
        fold_range(&self.edge)
    }

    /// Appends one leaf, given its leaf hash, and calls `stored` for every complete subtree this
    /// creates: the leaf itself (level 0), then each parent it completes, lowest first.
    pub fn append(
        &mut self,
        leaf_hash: Hash,
        mut stored: impl FnMut(NodeId, Hash),
    ) -> Result<LeafIndex, TreeError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(TreeError::Full)?;
        stored(NodeId::new(0, index), leaf_hash);
        let mut hash = leaf_hash;
        // Each trailing zero of the new size is a pair of equal subtrees that merge into one.
        let merges = u8::try_from(new_size.trailing_zeros()).expect("a u64 has 64 bits");
        for level in 1..=merges {
            let left = self
                .edge
                .pop()
                .expect("a set bit of the old size below every merge");
            hash = node_hash(&left, &hash);
            stored(NodeId::new(level, (new_size >> level) - 1), hash);
        }
        self.edge.push(hash);
        self.size = new_size;
        debug_assert_eq!(self.edge.len(), self.size.count_ones() as usize);
        Ok(LeafIndex(index))
    }

    /// Appends leaves in order, as [`Tree::append`] does for each, and returns the index of the
    /// first (the tree size before the batch).
    pub fn append_batch(
        &mut self,
        leaf_hashes: &[Hash],
        mut stored: impl FnMut(NodeId, Hash),
    ) -> Result<LeafIndex, TreeError> {
        let first = LeafIndex(self.size);
        if self.size.checked_add(leaf_hashes.len() as u64).is_none() {
            return Err(TreeError::Full);
        }
        for leaf_hash in leaf_hashes {
            self.append(*leaf_hash, &mut stored)?;
        }
        Ok(first)
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("size", &self.size)
            .field("root", &self.root())
            .finish()
    }
}

/// A [`HashStore`] in memory: every complete subtree's hash, by level. For tests, tools and
/// small logs; the node keeps its hashes in redb.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryHashStore {
    levels: Vec<Vec<Hash>>,
}

impl MemoryHashStore {
    /// An empty store.
    pub fn new() -> MemoryHashStore {
        MemoryHashStore::default()
    }

    /// Stores the hash of a complete subtree. Nodes of each level must arrive in index order,
    /// as [`Tree::append`] reports them.
    ///
    /// # Panics
    /// If a node arrives out of order, or with a different hash than already stored: a Merkle
    /// tree never rewrites a complete subtree.
    pub fn insert(&mut self, node: NodeId, hash: Hash) {
        let level = usize::from(node.level);
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        let hashes = &mut self.levels[level];
        let index = usize::try_from(node.index).expect("in-memory tree fits in memory");
        match index.cmp(&hashes.len()) {
            std::cmp::Ordering::Less => {
                assert_eq!(hashes[index], hash, "complete subtree {node:?} rewritten");
            }
            std::cmp::Ordering::Equal => hashes.push(hash),
            std::cmp::Ordering::Greater => panic!("node {node:?} stored out of order"),
        }
    }
}

impl HashStore for MemoryHashStore {
    fn node_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
        usize::try_from(node.index)
            .ok()
            .and_then(|index| self.levels.get(usize::from(node.level))?.get(index))
            .copied()
            .ok_or(StoreError::Missing(node))
    }
}

/// Complete-subtree hashes remembered across reads, possibly across many tree sizes of one
/// log: a complete subtree's hash never changes, so a remembered hash is never stale.
///
/// Bounded: when an insertion would pass `capacity` nodes the cache is emptied first (the
/// nodes worth keeping, those near the right edge, come back with the next read).
#[derive(Debug)]
pub struct HashCache {
    nodes: std::sync::Mutex<std::collections::BTreeMap<NodeId, Hash>>,
    capacity: usize,
}

impl HashCache {
    /// A cache of at most `capacity` nodes (more only while one read needs more at once).
    pub fn new(capacity: usize) -> HashCache {
        HashCache {
            nodes: std::sync::Mutex::default(),
            capacity,
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<NodeId, Hash>> {
        // The map is consistent after any panic (inserts are single calls), so a poisoned
        // lock is still good.
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many nodes are remembered.
    pub fn len(&self) -> usize {
        self.nodes().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything (for example when the log it caches was replaced wholesale).
    pub fn clear(&self) {
        self.nodes().clear();
    }
}

/// A [`HashStore`] that remembers every hash it has read through another store.
///
/// Proofs for neighbouring leaves share most of their upper nodes, and a store that derives
/// inner hashes from tiles pays up to 255 hashes for each. Wrapping it once for a batch of proofs
/// (all the answers of one sequenced batch) computes each shared node once; wrapping it over a
/// long-lived [`HashCache`] shares the work across batches too. Complete subtrees never change,
/// so a remembered hash is never stale.
#[derive(Debug)]
pub struct MemoHashStore<S, C = HashCache> {
    inner: S,
    memo: C,
}

impl<S: HashStore> MemoHashStore<S> {
    /// Remembers what `inner` answers, for the life of this store (no bound: the memory is
    /// bounded by the nodes read).
    pub fn new(inner: S) -> MemoHashStore<S> {
        MemoHashStore {
            inner,
            memo: HashCache::new(usize::MAX),
        }
    }
}

impl<'c, S: HashStore> MemoHashStore<S, &'c HashCache> {
    /// Remembers what `inner` answers in `cache`, which outlives this store.
    pub fn with_cache(inner: S, cache: &'c HashCache) -> MemoHashStore<S, &'c HashCache> {
        MemoHashStore { inner, memo: cache }
    }
}

impl<S: HashStore, C: std::borrow::Borrow<HashCache>> MemoHashStore<S, C> {
    /// Remembers what `inner` answers in `memo`, a cache owned or borrowed.
    pub fn with_memo(inner: S, memo: C) -> MemoHashStore<S, C> {
        MemoHashStore { inner, memo }
    }
}

impl<S: HashStore, C: std::borrow::Borrow<HashCache>> HashStore for MemoHashStore<S, C> {
    fn node_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
        let hashes = self.node_hashes(&[node])?;
        hashes.into_iter().next().ok_or(StoreError::Missing(node))
    }

    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        let cache: &HashCache = self.memo.borrow();
        let mut found: Vec<Option<Hash>> = {
            let memo = cache.nodes();
            nodes.iter().map(|node| memo.get(node).copied()).collect()
        };
        let mut missing: Vec<NodeId> = nodes
            .iter()
            .zip(&found)
            .filter(|(_, hash)| hash.is_none())
            .map(|(node, _)| *node)
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let hashes = self.inner.node_hashes(&missing)?;
            if hashes.len() != missing.len() {
                return Err(StoreError::Read(
                    format!(
                        "store returned {} hashes for {} nodes",
                        hashes.len(),
                        missing.len()
                    )
                    .into(),
                ));
            }
            let fetched: std::collections::BTreeMap<NodeId, Hash> =
                missing.into_iter().zip(hashes).collect();
            for (node, hash) in nodes.iter().zip(&mut found) {
                if hash.is_none() {
                    *hash = fetched.get(node).copied();
                }
            }
            let mut memo = cache.nodes();
            if memo.len().saturating_add(fetched.len()) > cache.capacity {
                // Start over, keeping this read's nodes: the next read likely wants them again.
                memo.clear();
                memo.extend(
                    nodes
                        .iter()
                        .zip(&found)
                        .filter_map(|(n, h)| Some((*n, (*h)?))),
                );
            } else {
                memo.extend(fetched);
            }
        }
        nodes
            .iter()
            .zip(found)
            .map(|(node, hash)| hash.ok_or(StoreError::Missing(*node)))
            .collect()
    }
}

/// A tree and all its complete-subtree hashes in memory: the simplest complete log for tests,
/// tools and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// The right edge.
    pub tree: Tree,
    /// Every complete subtree.
    pub store: MemoryHashStore,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// Appends a leaf by its leaf hash.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<LeafIndex, TreeError> {
        let MemoryTree { tree, store } = self;
        tree.append(leaf_hash, |node, hash| store.insert(node, hash))
    }

    /// The current size.
    pub fn size(&self) -> TreeSize {
        self.tree.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn edge_nodes_follow_the_set_bits_of_the_size() {
        assert_eq!(Tree::edge_nodes(TreeSize(0)), vec![]);
        assert_eq!(
            Tree::edge_nodes(TreeSize(13)),
            vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
    }

    #[test]
    fn append_reports_every_new_complete_subtree() {
        let mut tree = Tree::new();
        let mut reported = Vec::new();
        for i in 0..4u8 {
            tree.append(leaf_hash(&[i]), |node, _| reported.push(node))
                .unwrap();
        }
        assert_eq!(
            reported,
            vec![
                NodeId::new(0, 0),
                NodeId::new(0, 1),
                NodeId::new(1, 0),
                NodeId::new(0, 2),
                NodeId::new(0, 3),
                NodeId::new(1, 1),
                NodeId::new(2, 0),
            ]
        );
    }

    /// A store that counts the nodes asked of it.
    struct Counting<'a>(&'a MemoryHashStore, std::cell::Cell<usize>);

    impl HashStore for Counting<'_> {
        fn node_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
            self.1.set(self.1.get() + 1);
            self.0.node_hash(node)
        }
        fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
            self.1.set(self.1.get() + nodes.len());
            self.0.node_hashes(nodes)
        }
    }

    #[test]
    fn a_shared_cache_answers_across_sizes_and_stays_within_its_capacity() {
        let mut log = MemoryTree::new();
        let cache = HashCache::new(8);
        for i in 0..100u32 {
            log.append(leaf_hash(&i.to_be_bytes())).unwrap();
            let counting = Counting(&log.store, std::cell::Cell::new(0));
            let cached = MemoHashStore::with_cache(&counting, &cache);
            // Same answers as the store itself, at every size, through one long-lived cache.
            assert_eq!(root_at(&cached, log.size()).unwrap(), log.root());
            assert!(cache.len() <= 8, "{} nodes cached", cache.len());
            // Asked again, everything comes from the cache.
            let asked = counting.1.get();
            assert_eq!(root_at(&cached, log.size()).unwrap(), log.root());
            assert_eq!(counting.1.get(), asked, "size {}", log.size());
        }
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn rebuilt_tree_continues_identically() {
        let mut log = MemoryTree::new();
        for i in 0..21u32 {
            log.append(leaf_hash(&i.to_be_bytes())).unwrap();
        }
        let rebuilt = Tree::from_store(&log.store, log.size()).unwrap();
        assert_eq!(rebuilt, log.tree);
        assert_eq!(root_at(&log.store, TreeSize(21)).unwrap(), log.root());
        assert!(matches!(
            Tree::from_edge(TreeSize(3), vec![Hash::EMPTY_ROOT]),
            Err(TreeError::EdgeLength {
                want: 2,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn full_tree_refuses_to_grow() {
        let mut tree = Tree::from_edge(TreeSize(u64::MAX), vec![Hash::EMPTY_ROOT; 64]).unwrap();
        assert!(matches!(
            tree.append(Hash::EMPTY_ROOT, |_, _| {}),
            Err(TreeError::Full)
        ));
    }

    #[test]
    fn a_memo_store_reads_each_node_once_and_answers_the_same() {
        struct Counting<'a>(&'a MemoryHashStore, std::cell::Cell<usize>);
        impl HashStore for Counting<'_> {
            fn node_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
                self.1.set(self.1.get() + 1);
                self.0.node_hash(node)
            }
        }
        let mut log = MemoryTree::new();
        for i in 0..100u32 {
            log.append(leaf_hash(&i.to_be_bytes())).unwrap();
        }
        let memo = MemoHashStore::new(Counting(&log.store, std::cell::Cell::new(0)));
        for index in 40..60 {
            let direct = crate::proof::inclusion_proof(&log.store, LeafIndex(index), TreeSize(100));
            let memoised = crate::proof::inclusion_proof(&memo, LeafIndex(index), TreeSize(100));
            assert_eq!(direct.unwrap(), memoised.unwrap());
        }
        // Twenty proofs of seven hashes, but neighbouring leaves share most of them.
        assert!(memo.inner.1.get() < 60, "{} reads", memo.inner.1.get());
        assert!(matches!(
            memo.node_hash(NodeId::new(0, 100)),
            Err(StoreError::Missing(_))
        ));
    }

    #[test]
    fn missing_hashes_are_reported_not_invented() {
        let store = MemoryHashStore::new();
        assert!(matches!(
            root_at(&store, TreeSize(2)),
            Err(StoreError::Missing(_))
        ));
    }
}
