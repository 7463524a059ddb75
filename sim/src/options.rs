//! The options of one run, derived from its seed (swarm testing: every fault type is switched on
//! or off per seed, and when on gets a random rate), printed on failure so that seed plus commit
//! replays the run (as TigerBeetle's VOPR does).

use std::time::Duration;

use crate::rng::{SimRng, stream};

/// How a crash treats a disk's writes that were never synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost.
    DropAll,
    /// Each unsynced page write survives or not, at random.
    Pages,
    /// The unsynced writes survive in order up to one that is torn at a sector boundary.
    Torn,
}

/// Everything a run does, derived from its seed.
#[derive(Clone, Debug)]
pub struct Options {
    /// The run's seed.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Longest pause of a client between two requests, in milliseconds (each pause is uniform
    /// below it): 20 keeps the cluster saturated, 1000 is a quiet log.
    pub think_max_ms: u64,
    /// Length of the safety phase (faults on), in virtual time.
    pub safety: Duration,
    /// How long the liveness phase (faults healed) may take.
    pub liveness: Duration,
    /// Largest one-way message delay, in milliseconds (the smallest is a tenth of it).
    pub delay_max_ms: u64,
    /// Probability that a request is lost.
    pub loss_request: f64,
    /// Probability that a response is lost.
    pub loss_response: f64,
    /// Probability that a request is delivered a second time, later.
    pub duplicate: f64,
    /// Mean time between partition changes (none if `None`).
    pub partitions: Option<Duration>,
    /// Mean time between crashes or restarts (none if `None`).
    pub crashes: Option<Duration>,
    /// Mean time between process pauses (none if `None`).
    pub pauses: Option<Duration>,
    /// Mean time between disks filling up (none if `None`).
    pub disk_full: Option<Duration>,
    /// Mean time between membership changes (none if `None`).
    pub membership: Option<Duration>,
    /// Mean time between disks turning slow (none if `None`).
    pub slow_disk: Option<Duration>,
    /// What a crash keeps of unsynced writes.
    pub crash_mode: CrashMode,
    /// Largest application-clock skew per node, in milliseconds (none if 0).
    pub clock_skew_max_ms: u64,
    /// Raft log entries between snapshots.
    pub snapshot_every: u64,
    /// Largest sequencer batch.
    pub batch_leaves_max: usize,
    /// Probability that a client submits a leaf it (or another client) submitted before.
    pub duplicate_leaves: f64,
    /// Canary: `sync_data` on the Raft log databases does nothing (the vote and the log are never
    /// made durable). Only tests set it, to show the simulator catches a missing fsync.
    pub canary_unsynced_raft_log: bool,
    /// Probability that a node crashes the moment its Raft vote changes, before anything else
    /// runs (safety phase only): aims crashes at the window between a vote and its next sync.
    /// Zero except in canary runs ([`Options::crash_heavy`]).
    pub crash_on_vote: f64,
    /// Pushed witnessing (`node::witnessing`): the nodes send every checkpoint to this many
    /// witnesses and publish it only with a quorum of them (0: off).
    pub pushed_witnesses: u64,
    /// How many cosignatures of the pushed witnesses the policy needs (`group q K ...`).
    pub witness_quorum: u64,
    /// Mean time between witness faults: a witness down, or a node cut off from a witness
    /// (none if `None`).
    pub witness_faults: Option<Duration>,
    /// A lying log operator, holding the log's real key, signs a second root for a size and
    /// shows it to fewer witnesses than the quorum (needs pushed witnesses).
    pub malicious_log: bool,
    /// The last pushed witness accepts connections and never answers, for the whole run
    /// (tests only: a witness that stalls must not hold up publication when the others make
    /// the quorum).
    pub black_holed_witness: bool,
}

impl Options {
    /// The options of `seed`, with a safety phase of `safety`.
    pub fn from_seed(seed: u64, safety: Duration) -> Options {
        let mut rng = SimRng::new(seed, stream::OPTIONS);
        let on = |rng: &mut SimRng| rng.chance(0.5);
        let nodes = if rng.chance(0.25) { 5 } else { 3 };
        let clients = rng.range(2..7);
        let delay_max_ms = *rng.pick(&[2, 5, 20, 50]).unwrap_or(&5);
        let loss_request = if on(&mut rng) { rng.unit() * 0.1 } else { 0.0 };
        let loss_response = if on(&mut rng) { rng.unit() * 0.1 } else { 0.0 };
        let duplicate = if on(&mut rng) { rng.unit() * 0.1 } else { 0.0 };
        let partitions = on(&mut rng).then(|| Duration::from_millis(rng.range(300..3000)));
        let crashes = on(&mut rng).then(|| Duration::from_millis(rng.range(500..4000)));
        let crash_mode = *rng
            .pick(&[CrashMode::DropAll, CrashMode::Pages, CrashMode::Torn])
            .unwrap_or(&CrashMode::DropAll);
        let clock_skew_max_ms = if on(&mut rng) {
            rng.range(1..120_000)
        } else {
            0
        };
        let snapshot_every = *rng.pick(&[10_000, 50, 15]).unwrap_or(&10_000);
        let batch_leaves_max = *rng.pick(&[1, 4, 16, 256]).unwrap_or(&16);
        let duplicate_leaves = rng.unit() * 0.3;
        // Drawn last, so the draws above (and the seeds' fault patterns) stay what they were.
        let think_max_ms = *rng.pick(&[20, 20, 200, 1000]).unwrap_or(&20);
        let pauses = on(&mut rng).then(|| Duration::from_millis(rng.range(1000..6000)));
        let disk_full = rng
            .chance(0.3)
            .then(|| Duration::from_millis(rng.range(3000..10_000)));
        let membership = rng
            .chance(0.3)
            .then(|| Duration::from_millis(rng.range(3000..10_000)));
        let slow_disk = on(&mut rng).then(|| Duration::from_millis(rng.range(1000..6000)));
        // Witnessing, drawn after everything above so the seeds' other options stay as they were.
        let pushed_witnesses = if on(&mut rng) {
            *rng.pick(&[3, 3, 5]).unwrap_or(&3)
        } else {
            0
        };
        let witness_quorum = pushed_witnesses / 2 + 1;
        let witness_faults = (pushed_witnesses > 0 && on(&mut rng))
            .then(|| Duration::from_millis(rng.range(1000..6000)));
        let malicious_log = pushed_witnesses > 0 && rng.chance(0.08);
        Options {
            seed,
            nodes,
            clients,
            think_max_ms,
            safety,
            liveness: Duration::from_secs(30),
            delay_max_ms,
            loss_request,
            loss_response,
            duplicate,
            partitions,
            crashes,
            pauses,
            disk_full,
            membership,
            slow_disk,
            crash_mode,
            clock_skew_max_ms,
            snapshot_every,
            batch_leaves_max,
            duplicate_leaves,
            canary_unsynced_raft_log: false,
            crash_on_vote: 0.0,
            pushed_witnesses,
            witness_quorum,
            witness_faults,
            malicious_log,
            black_holed_witness: false,
        }
    }

    /// These options with crashes every 700 ms (mean) that drop every unsynced write, a
    /// crash the moment a vote changes one time in five, and busy clients: the faults a canary run
    /// (`cairn-sim --canary`, `tests/canaries.rs`) uses to find a planted bug.
    pub fn crash_heavy(mut self) -> Options {
        self.crashes = Some(Duration::from_millis(700));
        self.crash_mode = CrashMode::DropAll;
        self.crash_on_vote = 0.2;
        self.think_max_ms = 20;
        self
    }

    /// These options with three pushed witnesses behind a 2-of-3 policy (if witnessing was off)
    /// and a lying log operator: the named malicious-log test (`tests/witnessing.rs`).
    pub fn malicious(mut self) -> Options {
        if self.pushed_witnesses == 0 {
            self.pushed_witnesses = 3;
            self.witness_quorum = 2;
        }
        self.malicious_log = true;
        self
    }

    /// The number of fault types switched on.
    pub fn fault_types(&self) -> u64 {
        [
            self.loss_request > 0.0,
            self.loss_response > 0.0,
            self.duplicate > 0.0,
            self.partitions.is_some(),
            self.crashes.is_some(),
            self.pauses.is_some(),
            self.disk_full.is_some(),
            self.membership.is_some(),
            self.slow_disk.is_some(),
            self.clock_skew_max_ms > 0,
            self.witness_faults.is_some(),
        ]
        .iter()
        .map(|&on| u64::from(on))
        .sum()
    }
}
