//! The simulated cluster: N real nodes, each started through `node::node::Node::start` over redb
//! on simulated disks, the in-memory network and bundle source, and a simulated clock; crashing
//! a node takes the crash image of its disks and stops its Raft (`Raft::shutdown` + drop), and
//! restarting it starts a new `Node` over what survived: the disk model, not shared state,
//! decides what a restarted node sees.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use node::config::{Settings, default_raft_config};
use node::env::{Blocking, Latency};
use node::sequencer::SequencerConfig;
use node::state_machine::{LogConfig, Logs};
use node::storage::{Disks, IndexShape};
use node::types::{LogName, NodeAddress, NodeId};
use node::{Env, Node};
use openraft::SnapshotPolicy;
use tokio::time::Instant;

use crate::bundles::{Readers, SimBundleSource};
use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::net::{SharedRouter, SimNetwork};
use crate::options::Options;
use crate::rng::{SimRng, stream};
use crate::trace::{SharedTrace, event};

/// The leaf index's sizes in the simulator: small enough that a run's few hundred leaves per
/// log flush the tail, merge runs in several slices and leave merges in progress across
/// crashes, so that every part of the index is exercised under faults.
const SIM_INDEX_SHAPE: IndexShape = IndexShape {
    tail_leaves: 16,
    fanout: 3,
    block_entries: 8,
    slice_entries: 16,
    work_per_leaf: 8,
};

/// The two logs every simulated cluster hosts.
pub fn sim_logs() -> Logs {
    Logs::new([
        LogConfig {
            name: LogName("artifacts".into()),
            origin: "sim.cairn.dev/artifacts".into(),
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[11; 32]),
            succeeds: None,
        },
        LogConfig {
            name: LogName("certificates".into()),
            origin: "sim.cairn.dev/certificates".into(),
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[12; 32]),
            succeeds: None,
        },
    ])
}

/// A node's address in the simulated cluster.
pub fn address(id: NodeId) -> NodeAddress {
    NodeAddress {
        api_url: format!("sim://n{id}"),
        cluster_url: format!("sim-raft://n{id}"),
    }
}

/// One node's place in the cluster: its disks and clock outlive its process.
#[derive(Debug)]
struct Slot {
    node: Option<Arc<Node>>,
    /// Whether a start is under way (it may wait long: a node resuming an interrupted snapshot
    /// install waits for a member to serve the leaves it lacks).
    starting: bool,
    log_disk: SimDisk,
    state_disk: SimDisk,
    clock: SimClock,
    incarnation: u64,
    /// Taken out of the cluster by a membership change: stopped for good.
    removed: bool,
    /// The disk's latency per storage operation, in microseconds (0: not slow), which the
    /// node's storage waits through [`SlowDisk`].
    latency_us: Arc<AtomicU64>,
}

/// A slot's disk latency as the node's blocking runner reads it before each storage operation.
#[derive(Debug)]
struct SlowDisk(Arc<AtomicU64>);

impl Latency for SlowDisk {
    fn before_each(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

impl Slot {
    /// A stopped node with empty disks, its clock started at `start`.
    fn fresh(options: &Options, start: Instant) -> Slot {
        Slot {
            node: None,
            starting: false,
            log_disk: SimDisk::new(options.canary_unsynced_raft_log),
            state_disk: SimDisk::new(false),
            clock: SimClock::new(start),
            incarnation: 0,
            removed: false,
            latency_us: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The cluster.
#[derive(Debug)]
pub struct Cluster {
    slots: Mutex<BTreeMap<NodeId, Slot>>,
    /// The packet simulator.
    pub router: SharedRouter,
    readers: Readers,
    /// The logs hosted.
    pub logs: Logs,
    /// The run's options.
    pub options: Options,
    /// The run's trace.
    pub trace: SharedTrace,
    disk_rng: Mutex<SimRng>,
    vote_rng: Mutex<SimRng>,
    /// Whether faults the nodes' own events trigger (`Options::crash_on_vote`) are on.
    triggered_faults: AtomicBool,
    /// When the run started (new nodes' clocks start from it).
    start: Instant,
    /// The keyless CA's keys, which every node's CA is made of.
    pub keyless: crate::issuance::SimCa,
    /// The pushed witnesses, when the run has them (`Options::pushed_witnesses`).
    pub witnesses: Option<Arc<crate::witnessing::Witnesses>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cluster {
    /// A cluster of stopped nodes with empty disks.
    pub fn new(options: Options, router: SharedRouter, trace: SharedTrace) -> Arc<Cluster> {
        let start = Instant::now();
        let slots = (1..=options.nodes)
            .map(|id| (id, Slot::fresh(&options, start)))
            .collect();
        let logs = sim_logs();
        let keyless = crate::issuance::keyless_ca(&mut SimRng::new(options.seed, stream::CA))
            .unwrap_or_else(|error| panic!("making the simulated CA: {error}"));
        let witnesses = (options.pushed_witnesses > 0).then(|| {
            let made = crate::witnessing::Witnesses::new(
                &options,
                &logs,
                &mut SimRng::new(options.seed, stream::PUSHED_WITNESSES),
                trace.clone(),
            );
            Arc::new(made.unwrap_or_else(|error| panic!("making the witnesses: {error}")))
        });
        Arc::new(Cluster {
            witnesses,
            slots: Mutex::new(slots),
            keyless,
            router,
            readers: Readers::default(),
            logs,
            disk_rng: Mutex::new(SimRng::new(options.seed, stream::DISK)),
            vote_rng: Mutex::new(SimRng::new(options.seed, stream::VOTE_CRASHES)),
            triggered_faults: AtomicBool::new(true),
            start,

            options,
            trace,
        })
    }

    /// The ids of every node of the cluster, up or down (not those a membership change
    /// removed).
    pub fn ids(&self) -> Vec<NodeId> {
        lock(&self.slots)
            .iter()
            .filter(|(_, slot)| !slot.removed)
            .map(|(&id, _)| id)
            .collect()
    }

    /// A new, stopped node with empty disks under a never-used id: a machine joining, or a
    /// wiped one rejoining (a node's id is never reused, so a wiped disk is a new node).
    pub fn add_slot(&self) -> NodeId {
        let mut slots = lock(&self.slots);
        let id = slots.keys().next_back().map_or(1, |last| last + 1);
        slots.insert(id, Slot::fresh(&self.options, self.start));
        id
    }

    /// Stops node `id` for good: a membership change took it out of the cluster.
    pub async fn retire(&self, id: NodeId) {
        let node = {
            let mut slots = lock(&self.slots);
            let Some(slot) = slots.get_mut(&id) else {
                return;
            };
            slot.removed = true;
            slot.node.take()
        };
        self.router.down(id);
        self.readers.down(&address(id).api_url);
        event(&self.trace, "fault", &format!("retire n{id}"));
        if let Some(node) = node {
            node.shutdown().await;
        }
    }

    /// A running node.
    pub fn node(&self, id: NodeId) -> Option<Arc<Node>> {
        lock(&self.slots).get(&id)?.node.clone()
    }

    /// Every running node.
    pub fn running(&self) -> Vec<Arc<Node>> {
        lock(&self.slots)
            .values()
            .filter_map(|slot| slot.node.clone())
            .collect()
    }

    /// The ids of the nodes that are down (not running, not starting, not removed).
    pub fn down(&self) -> Vec<NodeId> {
        lock(&self.slots)
            .iter()
            .filter(|(_, slot)| slot.node.is_none() && !slot.starting && !slot.removed)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Stops the faults the nodes' own events trigger (the heal).
    pub fn stop_triggered_faults(&self) {
        self.triggered_faults.store(false, Ordering::Relaxed);
    }

    /// Sets a node's application-clock skew.
    pub fn set_skew(&self, id: NodeId, skew_ms: i64) {
        if let Some(slot) = lock(&self.slots).get(&id) {
            slot.clock.set_skew_ms(skew_ms);
        }
    }

    fn settings(&self, id: NodeId) -> Settings {
        let mut raft = default_raft_config();
        raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(self.options.snapshot_every);
        raft.max_in_snapshot_log_to_keep = self.options.snapshot_every.min(1_000) / 5;
        Settings {
            id,
            logs: self.logs.clone(),
            raft,
            sequencer: SequencerConfig {
                batch_leaves_max: self.options.batch_leaves_max,
                ..SequencerConfig::default()
            },
            admin_token: String::new(),
            public_url: None,
            leaf_index: SIM_INDEX_SHAPE,
            ca: Some(
                self.keyless
                    .settings(LogName("certificates".into()))
                    .unwrap_or_else(|error| panic!("making the simulated CA: {error}")),
            ),
            witnessing: self.witnesses.as_ref().map(|witnesses| witnesses.config()),
        }
    }

    /// Starts node `id` in a task of its own, as a process starts independently of whoever
    /// launched it: a start that waits for other members must not hold up the fault schedule
    /// or the restarts of those very members.
    pub fn start_in_background(self: &Arc<Cluster>, id: NodeId) {
        let cluster = self.clone();
        tokio::spawn(async move { cluster.start(id).await });
    }

    /// Starts node `id` over its disks (the first start, or a restart after a crash).
    ///
    /// # Panics
    /// If the node does not start: the disk model never corrupts synced bytes, so a node that
    /// cannot open what survived a crash is a bug the run reports.
    pub async fn start(self: &Arc<Cluster>, id: NodeId) {
        let (log_disk, state_disk, clock, incarnation, latency_us) = {
            let mut slots = lock(&self.slots);
            let Some(slot) = slots.get_mut(&id) else {
                return;
            };
            if slot.node.is_some() || slot.starting || slot.removed {
                return;
            }
            slot.starting = true;
            slot.incarnation += 1;
            (
                slot.log_disk.clone(),
                slot.state_disk.clone(),
                slot.clock.clone(),
                slot.incarnation,
                Arc::clone(&slot.latency_us),
            )
        };
        let full = log_disk.is_full() || state_disk.is_full();
        let env = Env {
            clock: Arc::new(clock),
            blocking: Blocking::InlineAfter(Arc::new(SlowDisk(latency_us))),
            disks: Disks::Backends {
                log: Box::new(log_disk),
                state: Box::new(state_disk),
            },
            raft_network: SimNetwork::new(id, self.router.clone()),
            bundles: Arc::new(SimBundleSource {
                me: id,
                readers: self.readers.clone(),
                router: self.router.clone(),
            }),
            forward: None,
            witness_transport: self
                .witnesses
                .as_ref()
                .map(|witnesses| witnesses.transport(id, self.router.clone())),
            oidc_fetch: Arc::new(crate::issuance::NoFetch),
        };
        let node = match Node::start(self.settings(id), env).await {
            Ok(node) => node,
            // A full disk may refuse what opening writes; the node stays down, as a process
            // that exits at startup does, and starts again once space is freed.
            Err(error) if full => {
                event(
                    &self.trace,
                    "fault",
                    &format!("start n{id} failed: {}", start_error(&error)),
                );
                if let Some(slot) = lock(&self.slots).get_mut(&id) {
                    slot.starting = false;
                }
                return;
            }
            // The disk model never corrupts synced bytes: a node that cannot open what
            // survived a crash is a bug the run reports.
            Err(error) => panic!("n{id}: {}", start_error(&error)),
        };
        self.router.up(id, node.raft().clone());
        self.readers
            .up(address(id).api_url, id, node.reader().clone());
        tokio::spawn(watch_metrics(
            Arc::downgrade(self),
            node.raft().clone(),
            id,
            incarnation,
        ));
        if self.options.crash_on_vote > 0.0 {
            tokio::spawn(crash_on_vote(Arc::downgrade(self), node.raft().clone(), id));
        }
        event(
            &self.trace,
            "fault",
            &format!("start n{id} incarnation {incarnation}"),
        );
        if let Some(slot) = lock(&self.slots).get_mut(&id) {
            slot.node = Some(node);
            slot.starting = false;
        }
    }

    /// Initialises the cluster's membership through node 1 (first start only).
    pub async fn initialize(&self) {
        let members: BTreeMap<NodeId, NodeAddress> =
            self.ids().into_iter().map(|id| (id, address(id))).collect();
        if let Some(node) = self.node(1)
            && let Err(error) = node.raft().initialize(members).await
        {
            panic!("initialize: {error}");
        }
    }

    /// Fills both disks of node `id` for `duration`, then frees the space. A node whose Raft
    /// stops on a failed write is restarted by [`watch_metrics`] once space is freed.
    pub fn fill_disks(self: &Arc<Cluster>, id: NodeId, duration: std::time::Duration) {
        self.set_disks_full(id, true);
        event(
            &self.trace,
            "fault",
            &format!("disk full n{id} {}ms", duration.as_millis()),
        );
        let cluster = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            cluster.set_disks_full(id, false);
            event(&cluster.trace, "fault", &format!("disk space freed n{id}"));
        });
    }

    /// Makes node `id`'s disk slow (every storage operation waits `latency`) for `duration`.
    pub fn slow_disk(
        self: &Arc<Cluster>,
        id: NodeId,
        latency: std::time::Duration,
        duration: std::time::Duration,
    ) {
        let Some(latency_us) = lock(&self.slots)
            .get(&id)
            .map(|slot| Arc::clone(&slot.latency_us))
        else {
            return;
        };
        latency_us.store(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        event(
            &self.trace,
            "fault",
            &format!(
                "slow disk n{id} {}ms per operation for {}ms",
                latency.as_millis(),
                duration.as_millis()
            ),
        );
        let trace = self.trace.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            latency_us.store(0, Ordering::Relaxed);
            event(&trace, "fault", &format!("disk fast again n{id}"));
        });
    }

    /// Fills or frees both disks of node `id`.
    pub fn set_disks_full(&self, id: NodeId, full: bool) {
        if let Some(slot) = lock(&self.slots).get(&id) {
            slot.log_disk.set_full(full);
            slot.state_disk.set_full(full);
        }
    }

    /// Frees every disk and makes it fast again (the heal).
    pub fn free_all_disks(&self) {
        for slot in lock(&self.slots).values() {
            slot.log_disk.set_full(false);
            slot.state_disk.set_full(false);
            slot.latency_us.store(0, Ordering::Relaxed);
        }
    }

    fn disks_full(&self, id: NodeId) -> bool {
        lock(&self.slots)
            .get(&id)
            .is_some_and(|slot| slot.log_disk.is_full() || slot.state_disk.is_full())
    }

    fn incarnation(&self, id: NodeId) -> u64 {
        lock(&self.slots)
            .get(&id)
            .map_or(0, |slot| slot.incarnation)
    }

    /// Crashes node `id`: its disks keep what the crash mode lets survive, and its process
    /// stops.
    pub async fn crash(&self, id: NodeId) {
        let node = {
            let mut slots = lock(&self.slots);
            let Some(slot) = slots.get_mut(&id) else {
                return;
            };
            let Some(node) = slot.node.take() else { return };
            let mut rng = lock(&self.disk_rng);
            slot.log_disk = slot.log_disk.crash(self.options.crash_mode, &mut rng);
            slot.state_disk = slot.state_disk.crash(self.options.crash_mode, &mut rng);
            node
        };
        self.router.down(id);
        self.readers.down(&address(id).api_url);
        event(&self.trace, "fault", &format!("crash n{id}"));
        node.shutdown().await;
    }

    /// Stops every node (the end of a run).
    pub async fn stop_all(&self) {
        for id in self.ids() {
            let node = lock(&self.slots)
                .get_mut(&id)
                .and_then(|slot| slot.node.take());
            if let Some(node) = node {
                self.router.down(id);
                node.shutdown().await;
            }
        }
    }
}

/// Crashes node `id` the moment its vote changes, with probability `Options::crash_on_vote`,
/// while triggered faults are on.
async fn crash_on_vote(
    cluster: Weak<Cluster>,
    raft: openraft::Raft<node::types::TypeConfig>,
    id: NodeId,
) {
    let mut metrics = raft.metrics();
    drop(raft);
    let mut last = metrics.borrow().vote;
    while metrics.changed().await.is_ok() {
        let vote = metrics.borrow().vote;
        if vote == last {
            continue;
        }
        last = vote;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        if cluster.triggered_faults.load(Ordering::Relaxed)
            && lock(&cluster.vote_rng).chance(cluster.options.crash_on_vote)
        {
            event(
                &cluster.trace,
                "fault",
                &format!("crash n{id} on vote {vote}"),
            );
            cluster.crash(id).await;
            return;
        }
    }
}

/// Traces a node's Raft metrics whenever their summary changes, records them for the election
/// invariant, and plays the process supervisor: when the Raft core stops (a storage error,
/// such as a full disk), the node's process exits (`cairn-node run` does) and is restarted once
/// its disks have space again.
async fn watch_metrics(
    cluster: Weak<Cluster>,
    raft: openraft::Raft<node::types::TypeConfig>,
    id: NodeId,
    incarnation: u64,
) {
    let mut metrics = raft.metrics();
    drop(raft);
    let mut last = String::new();
    loop {
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let line = {
            let m = metrics.borrow();
            cluster.router.history().observe(id, m.current_term);
            format!(
                "{:?} term {} leader {} log {} applied {} snapshot {} purged {}",
                m.state,
                m.current_term,
                m.current_leader
                    .map_or_else(|| "-".into(), |l| l.to_string()),
                m.last_log_index
                    .map_or_else(|| "-".into(), |i| i.to_string()),
                m.last_applied
                    .map_or_else(|| "-".into(), |l| l.index.to_string()),
                m.snapshot
                    .map_or_else(|| "-".into(), |l| l.index.to_string()),
                m.purged.map_or_else(|| "-".into(), |l| l.index.to_string()),
            )
        };
        if line != last {
            event(&cluster.trace, &format!("n{id}"), &line);
            last = line;
        }
        // A storage error or a panic stops the Raft core for good; a shutdown (a crash here)
        // is the crash's business.
        let stopped = metrics
            .borrow()
            .running_state
            .clone()
            .err()
            .filter(|fatal| !matches!(fatal, openraft::error::Fatal::Stopped));
        if let Some(error) = stopped {
            event(
                &cluster.trace,
                "fault",
                &format!("n{id} raft stopped: {error}"),
            );
            tokio::spawn(async move {
                if cluster.incarnation(id) != incarnation {
                    return;
                }
                cluster.crash(id).await;
                while cluster.disks_full(id) {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                cluster.start_in_background(id);
            });
            return;
        }
        drop(cluster);
        if metrics.changed().await.is_err() {
            break;
        }
    }
}

/// What a failed start reports, as the simulator's trace has always written it: whether the
/// surviving disks could not be opened, or the node over them did not start.
fn start_error(error: &node::node::StartError) -> String {
    match error {
        node::node::StartError::Disk(error) => format!("opening the surviving disks: {error}"),
        error => format!("start: {error}"),
    }
}
