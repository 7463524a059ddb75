//! The snapshot install's network loop, over the `catch_up` seam: fetch the leaves a snapshot's descriptor names from
//! the members, in rounds with member rotation and waits, and hand them to storage's install
//! transactions (`storage::snapshot`), which verify nothing is visible until the root matches.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::future::{Either, join, select};
use futures_util::stream::FuturesOrdered;
use tlog::tile::TILE_WIDTH;
use tlog::{Hash, Tree, TreeSize};

use crate::catch_up::{
    BatchTimes, CatchUpPolicy, KnownMembers, SharedBundleSource, check_batch_times,
    merge_batch_times,
};
use crate::env::Blocking;
use crate::state_machine::{LogHead, Logs};
use crate::storage::snapshot::{
    CatchUpError, FetchedLeaf, LEAVES_PER_DURABLE_COMMIT, Meta, append_chunk, begin,
    check_descriptor, finish, pending, prepare, stored_leaves,
};
use crate::storage::{
    DiskError, IndexShape, IndexWork, SharedDb, SharedTailMemory, catch_up_leaf_index_to,
};
use crate::types::{LogName, NodeAddress};

/// A chunk being written: it resolves to the grown tree.
type Appending<'a> = Pin<Box<dyn Future<Output = Result<Tree, DiskError>> + Send + 'a>>;

/// Installs snapshots: everything `install_snapshot` needs, cloned out of the state store.
#[derive(Clone)]
pub(crate) struct Installer {
    pub(crate) db: SharedDb,
    pub(crate) blocking: Blocking,
    pub(crate) logs: Arc<Logs>,
    pub(crate) source: SharedBundleSource,
    pub(crate) policy: CatchUpPolicy,
    /// The members the node knows now, tried after the snapshot's own.
    pub(crate) known: KnownMembers,
    /// The sizes of the leaf index.
    pub(crate) shape: IndexShape,
    /// Apply's memory of the index tail, forgotten once the install changed the tail.
    pub(crate) tail_memory: SharedTailMemory,
}

/// Why one attempt at catching up a log failed.
enum Attempt {
    /// Storage failed: give up at once.
    Disk(DiskError),
    /// No member served some bundle: wait, then try again.
    Unavailable(CatchUpError),
    /// The leaves gave the wrong root: some member (or a stored leaf) lied; refetch everything
    /// from another member first.
    Mismatch(CatchUpError),
}

impl From<DiskError> for Attempt {
    fn from(error: DiskError) -> Attempt {
        Attempt::Disk(error)
    }
}

impl Installer {
    /// Finishes an install interrupted by a crash, if there is one.
    ///
    /// Unlike a live install, a resumed one waits for the members without limit while none can
    /// serve the missing leaves: it runs before openraft reads the state at startup, and there
    /// is no state to fall back to (openraft may already have purged the entries the snapshot
    /// covers), so giving up would only make the node fail to start again and again. Leaves
    /// are never withdrawn from a log, so once any member is reachable the install completes.
    pub(crate) async fn resume(&self) -> Result<(), DiskError> {
        let db = self.db.clone();
        let Some((meta, data)) = self.blocking.run(move || pending(&db)).await? else {
            return Ok(());
        };
        tracing::info!(snapshot = %meta.snapshot_id, "resuming an interrupted snapshot install");
        let patient = Installer {
            policy: self.policy.without_round_limit(),
            ..self.clone()
        };
        patient.install(&meta, &data).await
    }

    /// Installs the snapshot `meta` described by `data` (see the module docs).
    pub(crate) async fn install(&self, meta: &Meta, data: &[u8]) -> Result<(), DiskError> {
        let (descriptor, sent_members) = check_descriptor(&self.logs, meta, data)?;
        // Fetch from the snapshot's members, then from those the sender knew when it sent it,
        // then from those this node knows now, then from those it knew when an interrupted
        // install began (stored with it).
        let mut members: Vec<NodeAddress> = meta
            .last_membership
            .nodes()
            .map(|(_, node)| node.clone())
            .collect();
        for known in sent_members.into_iter().chain(self.known.get()) {
            if !members.contains(&known) {
                members.push(known);
            }
        }
        let (locals, remembered) = {
            let (db, meta, data) = (self.db.clone(), meta.clone(), data.to_vec());
            let (logs, members) = (self.logs.clone(), members.clone());
            self.blocking
                .run(move || begin(&db, &logs, &meta, &data, &members))
                .await?
        };
        for member in remembered {
            if !members.contains(&member) {
                members.push(member);
            }
        }
        let targets: BTreeMap<&LogName, &LogHead> = descriptor
            .heads
            .iter()
            .map(|(log, head)| (log, head))
            .collect();
        let mut fetched = 0;
        for (log, local) in &locals {
            let target = targets.get(log).copied();
            let local_size = local.as_ref().map_or(0, |head| head.tree_size);
            let local_root = local.as_ref().map_or(Hash::EMPTY_ROOT, |head| head.root);
            let (snapshot_size, snapshot_root) =
                target.map_or((0, Hash::EMPTY_ROOT), |head| (head.tree_size, head.root));
            if local_size > snapshot_size
                || (local_size == snapshot_size && local_root != snapshot_root)
            {
                return Err(CatchUpError::Diverged {
                    log: log.clone(),
                    local_size,
                    local_root,
                    snapshot_size,
                    snapshot_root,
                }
                .into());
            }
            if let Some(target) = target
                && local_size < snapshot_size
            {
                fetched += self
                    .catch_up_log(&members, log, local.as_ref(), target)
                    .await?;
            }
        }
        // Every leaf below the targets gave the signed roots: index them now, while they are
        // still invisible and apply waits, so that neither reads nor apply ever meet a tail of
        // millions of rows (apply's upkeep keeps up only with what it appends itself). Only
        // the flushes: the merges they start are paid for by apply's upkeep afterwards.
        self.tail_memory.forget();
        let (db, shape) = (self.db.clone(), self.shape);
        let sizes: Vec<(LogName, u64)> = descriptor
            .heads
            .iter()
            .map(|(log, head)| (log.clone(), head.tree_size))
            .collect();
        // Logged before and after (their times say how long indexing took): it is the longest
        // silent step of a large install.
        tracing::info!(
            leaves_fetched = fetched,
            "catch-up: indexing the installed leaves"
        );
        self.blocking
            .run(move || catch_up_leaf_index_to(&db, &shape, &sizes, IndexWork::Flushes))
            .await?;
        tracing::info!("catch-up: indexed the installed leaves");
        let (db, meta_owned, data_owned) = (self.db.clone(), meta.clone(), data.to_vec());
        let logs = self.logs.clone();
        self.blocking
            .run(move || finish(&db, &logs, &meta_owned, &data_owned, &descriptor))
            .await?;
        self.tail_memory.forget();
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last_log_id = ?meta.last_log_id,
            leaves_fetched = fetched,
            "installed snapshot"
        );
        Ok(())
    }

    /// Brings one log from `local` to `target`, in rounds (see [`CatchUpPolicy`]); returns
    /// how many leaves were fetched.
    async fn catch_up_log(
        &self,
        members: &[NodeAddress],
        log: &LogName,
        local: Option<&LogHead>,
        target: &LogHead,
    ) -> Result<u64, DiskError> {
        let mut reuse = true;
        let mut last = None;
        for round in 0..self.policy.rounds.max(1) {
            match self
                .attempt(members, log, local, target, reuse, round)
                .await
            {
                Ok(fetched) => return Ok(fetched),
                Err(Attempt::Disk(error)) => return Err(error),
                Err(Attempt::Mismatch(error)) => {
                    tracing::warn!(%log, round, %error, "catch-up: wrong root, refetching");
                    // A mismatch over reused local leaves is retried at once; one over freshly
                    // fetched leaves means a member lies, so wait as for an unavailable one.
                    let fetched_fresh = !reuse;
                    reuse = false;
                    last = Some(error);
                    if fetched_fresh && round.saturating_add(1) < self.policy.rounds {
                        tokio::time::sleep(self.policy.delay(round)).await;
                    }
                }
                Err(Attempt::Unavailable(error)) => {
                    tracing::warn!(%log, round, %error, "catch-up: bundle unavailable");
                    last = Some(error);
                    if round.saturating_add(1) < self.policy.rounds {
                        tokio::time::sleep(self.policy.delay(round)).await;
                    }
                }
            }
        }
        Err(last
            .unwrap_or_else(|| CatchUpError::Descriptor("no catch-up round ran".into()))
            .into())
    }

    /// One pass from the local head to the target: stored leaves beyond the head first (if
    /// `reuse`), then fetched bundles; succeeds only if the root matches.
    async fn attempt(
        &self,
        members: &[NodeAddress],
        log: &LogName,
        local: Option<&LogHead>,
        target: &LogHead,
        reuse: bool,
        round: u32,
    ) -> Result<u64, Attempt> {
        let (size, edge) =
            local.map_or((0, Vec::new()), |head| (head.tree_size, head.edge.clone()));
        let mut tree = Tree::from_edge(TreeSize(size), edge)
            .map_err(|error| DiskError::corrupt("heads", log, error.to_string()))?;
        let end = target.tree_size;
        if reuse {
            while tree.size().0 < end {
                let first = tree.size().0;
                let want = (end - first).min(u64::from(TILE_WIDTH));
                let (db, name) = (self.db.clone(), log.clone());
                let stored = self
                    .blocking
                    .run(move || stored_leaves(&db, &name, first, first + want).map(prepare))
                    .await?;
                let complete = stored.len() as u64 == want;
                if stored.is_empty() {
                    break;
                }
                let times = self
                    .fetch_times(members, log, first, first + stored.len() as u64, round)
                    .await;
                tree = self.append(log, tree, stored, times).await?;
                if !complete {
                    break;
                }
            }
        }
        // Bundles are fetched several at a time, in order, and stored a chunk of them to a
        // transaction: a round trip per bundle and a commit per bundle were what bounded
        // catch-up.
        let start = tree.size().0;
        let tile_width = u64::from(TILE_WIDTH);
        let mut next_bundle = start / tile_width;
        let mut in_flight = FuturesOrdered::new();
        let mut group: Vec<FetchedLeaf> = Vec::new();
        let mut group_times: BatchTimes = Vec::new();
        let mut fetched = 0;
        let chunk_leaves = self.policy.bundles_per_chunk.max(1) * tile_width;
        // One chunk is written (on a blocking thread) while the next one is fetched: waiting
        // for the write before fetching on left the network idle for the write's length.
        let mut appending: Option<Appending<'_>> = None;
        let mut grown = Some(tree);
        loop {
            while in_flight.len() < self.policy.bundles_in_flight.max(1)
                && next_bundle.saturating_mul(tile_width) < end
            {
                let first = next_bundle * tile_width;
                let from = first.max(start);
                let to = end.min(first + tile_width);
                in_flight.push_back(self.fetch_leaves(members, log, next_bundle, from, to, round));
                next_bundle += 1;
            }
            let chunk_ready =
                group.len() as u64 >= chunk_leaves || (in_flight.is_empty() && !group.is_empty());
            if chunk_ready && let Some(tree) = grown.take() {
                let leaves = std::mem::take(&mut group);
                let times = std::mem::take(&mut group_times);
                appending = Some(Box::pin(self.append(log, tree, leaves, times)));
                continue;
            }
            let may_fetch = !in_flight.is_empty() && (group.len() as u64) < chunk_leaves;
            let bundle = match (may_fetch, appending.as_mut()) {
                (true, Some(append)) => match select(in_flight.next(), append).await {
                    Either::Left((bundle, _)) => bundle,
                    Either::Right((appended, _)) => {
                        grown = Some(appended?);
                        appending = None;
                        continue;
                    }
                },
                (true, None) => in_flight.next().await,
                (false, Some(append)) => {
                    grown = Some(append.await?);
                    appending = None;
                    continue;
                }
                // Nothing in flight, nothing gathered, nothing being written: done.
                (false, None) => break,
            };
            let Some(bundle) = bundle else {
                continue;
            };
            let (leaves, times) = bundle?;
            fetched += leaves.len() as u64;
            group.extend(leaves);
            group_times.extend(times);
        }
        let tree = grown.ok_or_else(|| {
            DiskError::Missing("catch-up ended with a chunk still being written".into())
        })?;
        if tree.root() != target.root {
            return Err(Attempt::Mismatch(CatchUpError::RootMismatch {
                log: log.clone(),
                size: end,
                computed: tree.root(),
                expected: target.root,
            }));
        }
        Ok(fetched)
    }

    /// Leaves `from .. to` of bundle `index` (all inside it) and their batch times.
    async fn fetch_leaves(
        &self,
        members: &[NodeAddress],
        log: &LogName,
        index: u64,
        from: u64,
        to: u64,
        round: u32,
    ) -> Result<(Vec<FetchedLeaf>, BatchTimes), Attempt> {
        let first = index * u64::from(TILE_WIDTH);
        let width = u16::try_from(to - first)
            .map_err(|_| DiskError::Missing("a bundle width over 256".into()))?;
        // The bundle and its times at once: one round trip per bundle, not two.
        let (leaves, times) = join(
            self.fetch(members, log, index, width, round),
            self.fetch_times(members, log, from, to, round),
        )
        .await;
        let mut leaves = leaves?;
        // The local tree may end inside this bundle: its first leaves are already stored.
        let skip = usize::try_from(from - first).unwrap_or(usize::MAX);
        leaves.drain(..skip.min(leaves.len()));
        // Hashes and search keys are derived here, on the blocking pool, while the previous
        // chunk is written: hashing and parsing were about a third of the catching-up node's
        // CPU (perf), all of it on the thread that writes.
        let leaves = self.blocking.run(move || prepare(leaves)).await;
        Ok((leaves, times))
    }

    /// Fetches and decodes one bundle from the first member that serves it, starting with a
    /// different member each round so one bad member cannot fail every round.
    async fn fetch(
        &self,
        members: &[NodeAddress],
        log: &LogName,
        index: u64,
        width: u16,
        round: u32,
    ) -> Result<Vec<Vec<u8>>, Attempt> {
        let mut tried = Vec::new();
        let start = usize::try_from(round).unwrap_or(0);
        for offset in 0..members.len() {
            let member = &members[(start + offset) % members.len()];
            match self.source.entry_bundle(member, log, index, width).await {
                Ok(bytes) => match tlog::tile::decode_bundle(&bytes, width) {
                    Ok(entries) => return Ok(entries.iter().map(|leaf| leaf.to_vec()).collect()),
                    Err(error) => tried.push(format!("{member}: {error}")),
                },
                Err(error) => tried.push(error.to_string()),
            }
        }
        if tried.is_empty() {
            tried.push("the snapshot lists no members".into());
        }
        Err(Attempt::Unavailable(CatchUpError::Unavailable {
            log: log.clone(),
            index,
            width,
            tried: tried.join("; "),
        }))
    }

    /// The integrated times of leaves `first .. end` (a chunk being appended), from the
    /// members: the first answer that knows every leaf's time, else what all answers together
    /// know, else (no member answered) all unknown. Times are not covered by the root, so they
    /// come from members over the authenticated cluster listener, and only well-formed answers
    /// are taken; a leaf whose time no member knows answers v1 reads with 503, as before.
    async fn fetch_times(
        &self,
        members: &[NodeAddress],
        log: &LogName,
        first: u64,
        end: u64,
        round: u32,
    ) -> BatchTimes {
        let mut merged: BatchTimes = vec![(first, None)];
        if first >= end {
            return merged;
        }
        let start = usize::try_from(round).unwrap_or(0);
        for offset in 0..members.len() {
            let member = &members[(start + offset) % members.len()];
            match self.source.batch_times(member, log, first, end).await {
                Ok(rows) => match check_batch_times(&rows, first, end) {
                    Ok(()) => merged = merge_batch_times(&merged, &rows),
                    Err(error) => {
                        tracing::warn!(%log, %member, %error, "catch-up: malformed batch times");
                    }
                },
                Err(error) => tracing::debug!(%log, %error, "catch-up: no batch times"),
            }
            if merged.iter().all(|row| row.1.is_some()) {
                break;
            }
        }
        if merged.iter().any(|row| row.1.is_none()) {
            tracing::warn!(%log, first, end, "catch-up: no member knows some leaves' times");
        }
        merged
    }

    /// Appends committed leaves and their batch times in one write transaction and returns the
    /// grown tree.
    async fn append(
        &self,
        log: &LogName,
        tree: Tree,
        leaves: Vec<FetchedLeaf>,
        times: BatchTimes,
    ) -> Result<Tree, DiskError> {
        let (db, name) = (self.db.clone(), log.clone());
        let before = tree.size().0;
        let after = before.saturating_add(leaves.len() as u64);
        let durable = after / LEAVES_PER_DURABLE_COMMIT > before / LEAVES_PER_DURABLE_COMMIT;
        self.blocking
            .run(move || append_chunk(&db, &name, tree, &leaves, &times, durable))
            .await
    }
}

impl Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer")
            .field("blocking", &self.blocking)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
