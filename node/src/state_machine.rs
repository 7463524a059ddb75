//! The deterministic apply: from (state, committed command) to (new state, outcome).
//!
//! This is the one function every replica runs on every committed entry, so it must give
//! byte-identical state everywhere: it reads no clock and no randomness (the batch's timestamp
//! came from the leader, inside the entry), iterates only ordered collections, and signs with
//! Ed25519, whose signatures are deterministic. It reaches storage only through
//! [`StateAccess`], which the storage module implements over one redb write transaction (so an
//! entry's effects and the applied index commit together, or not at all) and tests implement in
//! memory.
//!
//! Signing happens here, after commit, and only over a root this replica computed itself from
//! the stored tree: before signing, the new tree must extend the previous signed one (a
//! consistency proof computed from the stored tiles must verify) and the stored tiles must
//! reproduce the new root. Both checks are `assert!`s, on in release builds: a checkpoint
//! signed over a wrong root is permanent public evidence of a forked log, while a crashed
//! replica is an ordinary Raft failover.

use std::collections::BTreeMap;

use tlog::checkpoint::Checkpoint;
use tlog::tile::{Tile, TileHashStore, TileReader};
use tlog::tree::StoreError;
use tlog::{Hash, NodeId as TreeNodeId, Tree, TreeSize, leaf_hash};

use crate::lifecycle::{Lifecycle, LogState, RotationRecord};
use crate::search::SearchKey;
use crate::types::{
    AppendBatch, BatchOutcome, Command, CommandOutcome, LeafOutcome, LogName, Rotation,
};

/// The most leaves one batch may carry; the sequencer's bound must not exceed it.
pub const BATCH_LEAVES_MAX: usize = 65_536;

/// One log's configuration: not replicated state, but identical on every node of the cluster.
#[derive(Clone)]
pub struct LogConfig {
    /// The log's short name inside the cluster.
    pub name: LogName,
    /// The checkpoint origin, which is also the signing key's name.
    pub origin: String,
    /// The log's checkpoint key (every node holds it: any node may become leader).
    pub signing_key: ed25519_dalek::SigningKey,
    /// The log this one succeeds once a rotation opens it (`crate::lifecycle`); until then it
    /// takes no appends. `None` for a log that is open from the start.
    pub succeeds: Option<LogName>,
}

impl LogConfig {
    /// The log's checkpoint key as the only verifier: what its checkpoints must verify with.
    pub fn verifiers(&self) -> Result<tlog::keys::Verifiers, tlog::keys::KeyError> {
        let verifier =
            tlog::keys::Ed25519Verifier::new(&self.origin, self.signing_key.verifying_key())?;
        let mut verifiers = tlog::keys::Verifiers::new();
        verifiers.push(tlog::keys::Verifier::Ed25519(verifier))?;
        Ok(verifiers)
    }
}

impl std::fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogConfig")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("succeeds", &self.succeeds)
            .finish_non_exhaustive()
    }
}

/// The replicated head of one log: its size, the right edge of its tree and its latest signed
/// checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogHead {
    /// Leaves in the log.
    pub tree_size: u64,
    /// The hashes of the tree's complete subtrees, largest first (`tlog::Tree::edge`).
    pub edge: Vec<Hash>,
    /// The root at `tree_size`.
    pub root: Hash,
    /// The latest signed checkpoint (a signed note), empty while the log is empty.
    pub checkpoint: String,
}

/// A storage failure while applying; the entry's transaction is abandoned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The storage backend failed.
    #[error("state storage: {0}")]
    Storage(String),
    /// A tree hash the tree needs is not stored.
    #[error(transparent)]
    Tree(#[from] StoreError),
    /// Building or signing the checkpoint failed.
    #[error("signing checkpoint: {0}")]
    Checkpoint(#[from] tlog::checkpoint::CheckpointError),
    /// A committed command cannot apply on this replica because its configuration differs
    /// from the leader's (a rotation names a log this node does not have): the replica stops
    /// rather than diverge, until its configuration is fixed.
    #[error("this node's configuration differs from the leader's: {0}")]
    Configuration(String),
}

/// What apply needs from storage, inside the transaction of the entry being applied: reads see
/// this entry's earlier writes.
pub trait StateAccess {
    /// The head of a log, or `None` if nothing was ever appended to it.
    fn head(&self, log: &LogName) -> Result<Option<LogHead>, StateError>;
    /// Replaces the head of a log.
    fn put_head(&mut self, log: &LogName, head: &LogHead) -> Result<(), StateError>;
    /// The index of the leaf with this leaf hash, if the log has one.
    fn find_leaf(&self, log: &LogName, leaf_hash: &Hash) -> Result<Option<u64>, StateError>;
    /// Stores a leaf at `index` and indexes it by its leaf hash and its search keys
    /// (`search::keys` of the leaf).
    fn put_leaf(
        &mut self,
        log: &LogName,
        index: u64,
        leaf_hash: &Hash,
        leaf: &[u8],
        search_keys: &[SearchKey],
    ) -> Result<(), StateError>;
    /// After a batch appended `appended` leaves and the head of `log` moved to `tree_size`:
    /// the index's upkeep that those leaves pay for (storage's `leaf_index`), if the state has
    /// any.
    fn index_upkeep(
        &mut self,
        _log: &LogName,
        _tree_size: u64,
        _appended: u64,
    ) -> Result<(), StateError> {
        Ok(())
    }
    /// Stores the hash of a complete subtree whose Merkle level is a multiple of
    /// [`STORED_LEVEL_STEP`]: a tile hash, or a hash of the level halfway up a tile.
    fn put_tile_hash(
        &mut self,
        log: &LogName,
        node: TreeNodeId,
        hash: &Hash,
    ) -> Result<(), StateError>;
    /// Hashes `first..first + count` of one hash tile (`count * 32` bytes), built from stored
    /// tile hashes.
    fn read_tile_hashes(
        &self,
        log: &LogName,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, StateError>;
    /// The root of the complete subtree over hashes `first..first + count` of one hash tile
    /// (`count` a power of two, `first` a multiple of it). The default folds
    /// [`StateAccess::read_tile_hashes`]; a store reads the level halfway up the tile instead
    /// when the subtree covers 16 or more of the tile's hashes.
    fn subtree_root(
        &self,
        log: &LogName,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Hash, StateError> {
        let data = self.read_tile_hashes(log, tile, first, count)?;
        tlog::tile::subtree_root(&data)
            .filter(|_| data.len() == count * tlog::hash::HASH_LEN)
            .ok_or_else(|| {
                StateError::Storage(format!(
                    "{} bytes for {count} hashes of tile {tile} of {log}",
                    data.len()
                ))
            })
    }
    /// Records that the leaves from `first_index` on were integrated at `unix_ms` (the
    /// batch's leader-chosen time): Rekor v1's `integratedTime`, which its signed entry
    /// timestamps sign.
    fn put_batch_time(
        &mut self,
        log: &LogName,
        first_index: u64,
        unix_ms: u64,
    ) -> Result<(), StateError>;
    /// The rotations applied so far (`crate::lifecycle`); empty before the first.
    fn lifecycle(&self) -> Result<Lifecycle, StateError>;
    /// Replaces the record of rotations.
    fn put_lifecycle(&mut self, lifecycle: &Lifecycle) -> Result<(), StateError>;
    /// Hashes of the log's complete subtrees remembered from earlier batches, if the state
    /// keeps any: the pre-signing check then derives only the nodes it has not derived before.
    fn hash_cache(&self, _log: &LogName) -> Option<&tlog::HashCache> {
        None
    }
}

/// Apply stores the hash of every complete subtree whose Merkle level is a multiple of this:
/// the tile levels (multiples of 8), from which tiles are served, and the levels halfway up
/// each tile. A proof's siblings inside a tile then cost at most 16 stored hashes each instead
/// of up to 128, so an inclusion proof reads one page of the leaf directory, not three, at a
/// cost of one row per 16 leaves.
pub const STORED_LEVEL_STEP: u8 = tlog::tile::TILE_HEIGHT / 2;

/// One [`tlog::HashCache`] per log, shared by apply and the reads of one replica.
///
/// Sound because a complete subtree's hash never changes and its tile hashes are written once,
/// by apply, before anything reads them; what the cache holds was derived from stored tiles.
#[derive(Debug, Default)]
pub struct HashCaches(BTreeMap<LogName, tlog::HashCache>);

impl HashCaches {
    /// Nodes remembered per log: a few megabytes, many times the right edge and the proofs
    /// of a batch.
    pub const NODES_PER_LOG: usize = 1 << 16;

    /// A cache for each of `logs`.
    pub fn new(logs: &Logs) -> HashCaches {
        HashCaches(
            logs.iter()
                .map(|log| (log.name.clone(), tlog::HashCache::new(Self::NODES_PER_LOG)))
                .collect(),
        )
    }

    /// The cache of `log`, if it is one of the logs.
    pub fn get(&self, log: &LogName) -> Option<&tlog::HashCache> {
        self.0.get(log)
    }
}

/// The logs of a cluster, by name.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    logs: BTreeMap<LogName, LogConfig>,
}

impl Logs {
    /// The logs given.
    pub fn new(configs: impl IntoIterator<Item = LogConfig>) -> Logs {
        Logs {
            logs: configs
                .into_iter()
                .map(|config| (config.name.clone(), config))
                .collect(),
        }
    }

    /// One log's configuration.
    pub fn get(&self, name: &LogName) -> Option<&LogConfig> {
        self.logs.get(name)
    }

    /// Every log, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &LogConfig> {
        self.logs.values()
    }
}

/// Applies one committed command.
pub fn apply<A: StateAccess>(
    state: &mut A,
    logs: &Logs,
    command: &Command,
) -> Result<CommandOutcome, StateError> {
    match command {
        Command::Append(batch) => apply_batch(state, logs, batch),
        Command::Rotate(rotation) => apply_rotation(state, logs, rotation),
    }
}

/// Freezes a log at its current head and opens its successor. The final checkpoint is the one
/// signed at the last append (Ed25519 is deterministic: signing the same size and root again
/// gives the same bytes), or the size-0 checkpoint of a log that never took an entry.
fn apply_rotation<A: StateAccess>(
    state: &mut A,
    logs: &Logs,
    rotation: &Rotation,
) -> Result<CommandOutcome, StateError> {
    let mut lifecycle = state.lifecycle()?;
    if let Err(error) = lifecycle.check_rotation(logs, &rotation.log, &rotation.successor) {
        // The leader checked the same rules against its configuration before proposing: a
        // configuration error here means this replica's differs, and applying or refusing
        // would make it diverge from the others.
        return if error.is_configuration() {
            Err(StateError::Configuration(format!(
                "a committed rotation from {} to {}: {error}",
                rotation.log, rotation.successor
            )))
        } else {
            Ok(CommandOutcome::Refused(error.to_string()))
        };
    }
    if state.head(&rotation.successor)?.is_some() {
        return Ok(CommandOutcome::Refused(format!(
            "log {} already has entries",
            rotation.successor
        )));
    }
    let Some(config) = logs.get(&rotation.log) else {
        return Err(StateError::Configuration(format!(
            "log {} is not configured",
            rotation.log
        )));
    };
    let (final_size, final_checkpoint) = match state.head(&rotation.log)? {
        Some(head) => (head.tree_size, head.checkpoint),
        None => (
            0,
            Checkpoint::new(&config.origin, TreeSize(0), Hash::EMPTY_ROOT)
                .sign_ed25519(&config.signing_key)?
                .format()
                .map_err(|error| StateError::Checkpoint(error.into()))?,
        ),
    };
    let record = RotationRecord {
        log: rotation.log.clone(),
        successor: rotation.successor.clone(),
        at_unix_ms: rotation.timestamp_unix_ms,
        final_size,
        final_checkpoint,
    };
    lifecycle.rotations.push(record.clone());
    state.put_lifecycle(&lifecycle)?;
    Ok(CommandOutcome::Rotated(record))
}

fn apply_batch<A: StateAccess>(
    state: &mut A,
    logs: &Logs,
    batch: &AppendBatch,
) -> Result<CommandOutcome, StateError> {
    // Refusals are decided from the command and the configuration alone, so every replica
    // refuses alike and no state changes.
    let Some(config) = logs.get(&batch.log) else {
        return Ok(CommandOutcome::Refused(format!(
            "unknown log {:?}",
            batch.log.0
        )));
    };
    match state.lifecycle()?.state(logs, &batch.log) {
        LogState::Open => {}
        LogState::Frozen(record) => {
            return Ok(CommandOutcome::Frozen {
                log: batch.log.clone(),
                successor: record.successor.clone(),
            });
        }
        LogState::Waiting(predecessor) => {
            return Ok(CommandOutcome::Refused(format!(
                "log {} is not open yet: it opens when {predecessor} is rotated",
                batch.log
            )));
        }
    }
    if batch.leaves.is_empty() || batch.leaves.len() > BATCH_LEAVES_MAX {
        return Ok(CommandOutcome::Refused(format!(
            "batch has {} leaves, want 1 to {BATCH_LEAVES_MAX}",
            batch.leaves.len()
        )));
    }
    let old = state.head(&batch.log)?.unwrap_or_else(|| LogHead {
        root: Hash::EMPTY_ROOT,
        ..LogHead::default()
    });
    let mut tree = Tree::from_edge(TreeSize(old.tree_size), old.edge.clone())
        .map_err(|error| StateError::Storage(format!("stored head of {}: {error}", batch.log)))?;
    assert_eq!(
        tree.root(),
        old.root,
        "stored edge of {} does not give its root",
        batch.log
    );

    let mut outcomes = Vec::with_capacity(batch.leaves.len());
    let mut in_batch: BTreeMap<Hash, u64> = BTreeMap::new();
    let mut tile_hashes: Vec<(TreeNodeId, Hash)> = Vec::new();
    for leaf in &batch.leaves {
        let hash = leaf_hash(leaf);
        let existing = match in_batch.get(&hash) {
            Some(&index) => Some(index),
            None => state.find_leaf(&batch.log, &hash)?,
        };
        if let Some(index) = existing {
            outcomes.push(LeafOutcome::Duplicate { index });
            continue;
        }
        let index = append_leaf(state, &batch.log, &mut tree, &mut tile_hashes, hash, leaf)?;
        in_batch.insert(hash, index);
        outcomes.push(LeafOutcome::Appended { index });
    }

    if tree.size().0 == old.tree_size {
        // Only duplicates: the log and its checkpoint are unchanged.
        return Ok(CommandOutcome::Appended(BatchOutcome {
            log: batch.log.clone(),
            leaves: outcomes,
            tree_size: old.tree_size,
            checkpoint: old.checkpoint,
        }));
    }

    let new_root = tree.root();
    check_extends(state, &batch.log, &old, tree.size(), &new_root)?;
    // The batch's new leaves are contiguous from the old size: one row dates them all.
    state.put_batch_time(&batch.log, old.tree_size, batch.timestamp_unix_ms)?;
    let checkpoint = Checkpoint::new(&config.origin, tree.size(), new_root)
        .sign_ed25519(&config.signing_key)?
        .format()
        .map_err(|error| StateError::Checkpoint(error.into()))?;
    let head = LogHead {
        tree_size: tree.size().0,
        edge: tree.edge().to_vec(),
        root: new_root,
        checkpoint: checkpoint.clone(),
    };
    state.put_head(&batch.log, &head)?;
    state.index_upkeep(&batch.log, head.tree_size, head.tree_size - old.tree_size)?;
    Ok(CommandOutcome::Appended(BatchOutcome {
        log: batch.log.clone(),
        leaves: outcomes,
        tree_size: head.tree_size,
        checkpoint,
    }))
}

/// Appends one leaf that is known to be new to `log`: extends `tree`, stores the leaf with its
/// index row (its leaf hash for dedup and its search keys, `search::keys`), and every
/// tile-level subtree hash the append completed.
///
/// This is the one append routine: apply calls it for each new leaf of a batch, and snapshot
/// catch-up calls it for each leaf of an already committed entry bundle, so a replica that
/// caught up stores byte for byte what one that applied every entry stores. `scratch` is a
/// reusable buffer for the completed hashes (empty on entry and on return).
pub(crate) fn append_leaf<A: StateAccess>(
    state: &mut A,
    log: &LogName,
    tree: &mut Tree,
    scratch: &mut Vec<(TreeNodeId, Hash)>,
    hash: Hash,
    leaf: &[u8],
) -> Result<u64, StateError> {
    // The search keys are derived from the leaf alone and indexed with it, so replicas agree
    // on them and a snapshot install indexes the leaves it fetches.
    let keys: Vec<SearchKey> = crate::search::keys(leaf).into_iter().collect();
    append_leaf_with_keys(state, log, tree, scratch, hash, leaf, &keys)
}

/// [`append_leaf`] for a leaf whose hash and search keys were derived already (snapshot
/// catch-up derives them while the previous chunk is written).
pub(crate) fn append_leaf_with_keys<A: StateAccess>(
    state: &mut A,
    log: &LogName,
    tree: &mut Tree,
    scratch: &mut Vec<(TreeNodeId, Hash)>,
    hash: Hash,
    leaf: &[u8],
    keys: &[SearchKey],
) -> Result<u64, StateError> {
    let index = tree
        .append(hash, |node, node_hash| {
            if node.level % STORED_LEVEL_STEP == 0 {
                scratch.push((node, node_hash));
            }
        })
        .map_err(|error| StateError::Storage(error.to_string()))?;
    state.put_leaf(log, index.0, &hash, leaf, keys)?;
    for (node, node_hash) in scratch.drain(..) {
        state.put_tile_hash(log, node, &node_hash)?;
    }
    Ok(index.0)
}

/// The pre-signing assertions: the stored tiles reproduce the new root, and the new tree is
/// consistent with the previously signed one.
fn check_extends<A: StateAccess>(
    state: &A,
    log: &LogName,
    old: &LogHead,
    new_size: TreeSize,
    new_root: &Hash,
) -> Result<(), StateError> {
    assert!(new_size.0 > old.tree_size, "{log}: tree did not grow");
    let tiles = TileHashStore::new(StateTiles { state, log }, new_size);
    // The root and the proof ask for mostly the same right-edge nodes, each derived from a tile
    // by up to 255 hashes: remember them for both checks, and across batches if the state can.
    match state.hash_cache(log) {
        Some(cache) => check_tiles(
            &tlog::MemoHashStore::with_cache(tiles, cache),
            log,
            old,
            new_size,
            new_root,
        ),
        None => check_tiles(
            &tlog::MemoHashStore::new(tiles),
            log,
            old,
            new_size,
            new_root,
        ),
    }
}

/// [`check_extends`] over `tiles`.
fn check_tiles<S: tlog::HashStore>(
    tiles: &S,
    log: &LogName,
    old: &LogHead,
    new_size: TreeSize,
    new_root: &Hash,
) -> Result<(), StateError> {
    let stored_root = tlog::tree::root_at(tiles, new_size)?;
    assert_eq!(
        stored_root, *new_root,
        "{log}: stored tiles do not reproduce the root"
    );
    if old.tree_size > 0 {
        let proof = tlog::proof::consistency_proof(tiles, TreeSize(old.tree_size), new_size)
            .map_err(|error| StateError::Storage(error.to_string()))?;
        let verified = proof.verify(&old.root, new_root);
        assert!(
            verified.is_ok(),
            "{log}: size {new_size} is not consistent with signed size {}: {verified:?}",
            old.tree_size
        );
    }
    Ok(())
}

/// Tiles of one log read through [`StateAccess`].
struct StateTiles<'a, A> {
    state: &'a A,
    log: &'a LogName,
}

impl<A: StateAccess> TileReader for StateTiles<'_, A> {
    const READS_PART_OF_A_TILE: bool = true;

    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, StoreError> {
        self.read_tile_hashes(tile, 0, usize::from(tile.width))
    }

    fn read_tile_hashes(
        &self,
        tile: Tile,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, StoreError> {
        self.state
            .read_tile_hashes(self.log, tile, first, count)
            .map_err(|error| StoreError::Read(error.to_string().into()))
    }

    fn subtree_root(&self, tile: Tile, first: usize, count: usize) -> Result<Hash, StoreError> {
        self.state
            .subtree_root(self.log, tile, first, count)
            .map_err(|error| StoreError::Read(error.to_string().into()))
    }
}

#[cfg(test)]
pub(crate) mod tests;
