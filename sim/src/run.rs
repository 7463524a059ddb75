//! One run: build the seeded runtime, start the cluster, run the safety phase (workload,
//! faults, continuous checks), heal, run the liveness phase, and check everything at the end.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use node::types::{LogName, NodeId};
use tokio::runtime::{Builder, RngSeed};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::invariants::{Checker, liveness};
use crate::membership;
use crate::net::{NetParams, SharedRouter};
use crate::options::Options;
use crate::rng::{SimRng, stream};
use crate::trace::{SharedTrace, Trace, event};
use crate::workload::{self, ClientStats, Shared, Submitted};

/// How often the invariants are checked during a run (virtual time).
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// What a run came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The options it ran with.
    pub options: Options,
    /// The trace's hash.
    pub trace_hash: u64,
    /// Trace events.
    pub events: u64,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Faults injected.
    pub faults: u64,
    /// Acknowledged submissions.
    pub acked: u64,
    /// Submissions with an unknown outcome.
    pub unknown: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Raft messages delivered.
    pub messages: u64,
    /// The network's counters.
    pub network: crate::net::NetStats,
    /// Witnessed checkpoints the nodes published (and the checker verified).
    pub published: u64,
    /// Acknowledged appends whose answer found no witnessed checkpoint covering them in time.
    pub unwitnessed: u64,
    /// Whether the lying operator forked the log.
    pub forked: bool,
    /// Pushed witnesses holding split-view evidence at the end.
    pub alarms: u64,
    /// Invariant violations (empty if the run passed).
    pub violations: Vec<String>,
}

/// Runs `seed` with its derived options and a safety phase of `safety`.
pub fn run_seed(seed: u64, safety: Duration, trace: bool) -> Outcome {
    run_with(Options::from_seed(seed, safety), trace)
}

/// How many Ed25519 signatures (and as many verifications) the process remembers: a few
/// seeds' worth (about 10 MB).
const ED25519_RESULTS_REMEMBERED: usize = 1 << 16;

/// Runs with explicit options. A panic anywhere in the run (a node's `assert!`, a node that
/// cannot reopen its disk) is reported as a violation.
pub fn run_with(options: Options, trace: bool) -> Outcome {
    install_panic_hook();
    // Every simulated machine signs and verifies in this one process, the same checkpoint
    // many times over; remembering the (pure) results changes nothing but the wall time.
    tlog::ed25519::remember_results(ED25519_RESULTS_REMEMBERED);
    FIRST_PANIC.with(|first| first.borrow_mut().take());
    let for_panic = options.clone();
    node::runtime::seed_thread_rng(SimRng::new(options.seed, stream::RAFT).next_u64());
    let runtime = Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .rng_seed(RngSeed::from_bytes(&options.seed.to_le_bytes()))
        .build()
        .expect("building a current-thread runtime cannot fail without IO drivers");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(simulate(options, trace))
    }));
    match &result {
        // Dropping the tasks of a run that panicked can panic again; keep them.
        Err(_) => std::mem::forget(runtime),
        Ok(_) => drop(runtime),
    }
    result.unwrap_or_else(|_| {
        let message = FIRST_PANIC
            .with(|first| first.borrow_mut().take())
            .unwrap_or_else(|| "panic".into());
        Outcome {
            options: for_panic,
            trace_hash: 0,
            events: 0,
            simulated: Duration::ZERO,
            faults: 0,
            acked: 0,
            unknown: 0,
            checkpoints: 0,
            messages: 0,
            network: crate::net::NetStats::default(),
            published: 0,
            unwitnessed: 0,
            forked: false,
            alarms: 0,
            violations: vec![format!("panic: {message}")],
        }
    })
}

thread_local! {
    /// The first panic of the run on this thread. A task that panics (a node's `assert!`, an
    /// openraft consistency check) just stops, as tokio does by default; the run notices the
    /// panic here, ends early, and reports it as a violation.
    static FIRST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records each thread's first panic message (and keeps the default report).
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| {
                    info.payload()
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                })
                .unwrap_or_else(|| "panic".into());
            let location = info.location().map(ToString::to_string).unwrap_or_default();
            FIRST_PANIC.with(|first| {
                first
                    .borrow_mut()
                    .get_or_insert_with(|| format!("{message} at {location}"));
            });
            if std::env::var_os("CAIRN_SIM_QUIET_PANICS").is_none() {
                previous(info);
            }
        }));
    });
}

/// Whether anything in this run panicked so far.
fn panicked() -> bool {
    FIRST_PANIC.with(|first| first.borrow().is_some())
}

fn net_params(options: &Options) -> NetParams {
    NetParams {
        delay_max_ms: options.delay_max_ms,
        loss_request: options.loss_request,
        loss_response: options.loss_response,
        duplicate: options.duplicate,
    }
}

async fn simulate(options: Options, print: bool) -> Outcome {
    let start = Instant::now();
    let trace: SharedTrace = Arc::new(Mutex::new(Trace::new(print)));
    let router = SharedRouter::new(
        SimRng::new(options.seed, stream::NETWORK),
        net_params(&options),
    );
    let cluster = Cluster::new(options.clone(), router.clone(), trace.clone());
    for id in cluster.ids() {
        cluster.start(id).await;
    }
    cluster.initialize().await;
    let checker = Arc::new(Mutex::new(Checker::new(&cluster.logs)));
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Shared {
        cluster: cluster.clone(),
        checker: checker.clone(),
        stop: stop.clone(),
        stats: Arc::new(ClientStats::default()),
    };

    // Safety phase.
    event(&trace, "phase", "safety");
    let checking = Arc::new(AtomicBool::new(true));
    let checker_task = tokio::spawn(check_continuously(
        cluster.clone(),
        checker.clone(),
        checking.clone(),
    ));
    let faults = Arc::new(AtomicU64::new(0));
    let fault_task = tokio::spawn(inject_faults(cluster.clone(), stop.clone(), faults.clone()));
    // Pushed witnesses: their faults and the lying operator stop with the safety phase;
    // gossip goes on until the end, so the alarm can still be raised after healing.
    let mut witness_tasks = Vec::new();
    let mut gossip_task = None;
    if let Some(witnesses) = &cluster.witnesses {
        witness_tasks.push(tokio::spawn(crate::witnessing::faults(
            cluster.clone(),
            witnesses.clone(),
            stop.clone(),
            faults.clone(),
            SimRng::new(options.seed, stream::WITNESS_FAULTS),
        )));
        if options.malicious_log {
            witness_tasks.push(tokio::spawn(crate::malicious::operate(
                cluster.clone(),
                witnesses.clone(),
                stop.clone(),
                SimRng::new(options.seed, stream::OPERATOR),
            )));
        }
        gossip_task = Some(tokio::spawn(crate::witnessing::gossip(
            cluster.clone(),
            witnesses.clone(),
            checking.clone(),
            SimRng::new(options.seed, stream::GOSSIP),
        )));
    }
    let witnesses: Vec<_> = (0..2u64)
        .map(|id| {
            tokio::spawn(crate::witnesses::poll(
                shared.clone(),
                format!("witness.sim/w{id}"),
                SimRng::new(options.seed, stream::WITNESSES + id),
            ))
        })
        .collect();
    let clients: Vec<_> = (0..options.clients)
        .map(|id| {
            let rng = SimRng::new(options.seed, stream::CLIENTS + id);
            tokio::spawn(workload::client(
                shared.clone(),
                id,
                rng,
                options.duplicate_leaves,
            ))
        })
        .collect();
    let safety_end = Instant::now() + options.safety;
    while Instant::now() < safety_end && !panicked() {
        tokio::time::sleep(CHECK_EVERY).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = fault_task.await;
    for client in clients {
        let _ = client.await;
    }
    for witness in witnesses {
        let _ = witness.await;
    }
    for task in witness_tasks {
        let _ = task.await;
    }

    // Liveness phase: heal everything, then writes must succeed and every node converge.
    event(&trace, "phase", "heal");
    cluster.stop_triggered_faults();
    router.set_blocked(BTreeSet::new());
    router.resume_all();
    if let Some(witnesses) = &cluster.witnesses {
        witnesses.heal();
    }
    cluster.free_all_disks();
    router.set_params(NetParams {
        delay_max_ms: options.delay_max_ms,
        ..NetParams::default()
    });
    for id in cluster.down() {
        cluster.start_in_background(id);
    }
    let deadline = Instant::now() + options.liveness;
    if !panicked() {
        let live = match membership::reconcile(&cluster, deadline).await {
            Ok(()) => liveness_phase(&shared, deadline).await,
            Err(problem) => Err(problem),
        };
        if let Err(problem) = live {
            lock(&checker).violation("liveness", problem);
        }
    }
    checking.store(false, Ordering::Relaxed);
    let _ = checker_task.await;
    if let Some(gossip) = gossip_task {
        let _ = gossip.await;
    }
    lock(&checker).finish(&cluster);
    event(&trace, "phase", "end");
    cluster.stop_all().await;

    let mut checker = lock(&checker);
    if let Some(panic) = FIRST_PANIC.with(|first| first.borrow().clone()) {
        checker.violations.insert(0, format!("panic: {panic}"));
    }
    let trace = lock(&trace);
    Outcome {
        options,
        trace_hash: trace.hash(),
        events: trace.events(),
        simulated: start.elapsed(),
        faults: faults.load(Ordering::Relaxed),
        acked: shared.stats.acked.load(Ordering::Relaxed),
        unknown: shared.stats.unknown.load(Ordering::Relaxed),
        checkpoints: checker.checkpoints_seen,
        messages: router.stats().delivered,
        network: router.stats(),
        published: checker.published_seen,
        unwitnessed: shared.stats.unwitnessed.load(Ordering::Relaxed),
        forked: cluster
            .witnesses
            .as_ref()
            .is_some_and(|w| w.fork().is_some()),
        alarms: cluster.witnesses.as_ref().map_or(0, |w| {
            w.list
                .iter()
                .filter(|p| {
                    p.witness
                        .store()
                        .split_views()
                        .is_ok_and(|views| !views.is_empty())
                })
                .count() as u64
        }),
        violations: checker.violations.clone(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn check_continuously(
    cluster: Arc<Cluster>,
    checker: Arc<Mutex<Checker>>,
    running: Arc<AtomicBool>,
) {
    while running.load(Ordering::Relaxed) {
        tokio::time::sleep(CHECK_EVERY).await;
        lock(&checker).tick(&cluster);
    }
}

/// After healing: one write to each log must be acknowledged, then every node must cover
/// every acknowledged leaf with a signed checkpoint, all before `deadline`.
async fn liveness_phase(shared: &Shared, deadline: Instant) -> Result<(), String> {
    let cluster = &shared.cluster;
    let logs: Vec<LogName> = cluster.logs.iter().map(|log| log.name.clone()).collect();
    let mut target: NodeId = 1;
    for log in &logs {
        let mut attempt = 0u64;
        loop {
            if panicked() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no write to {log} acknowledged within the bound after healing"
                ));
            }
            attempt += 1;
            let leaf = format!("liveness-{log}-{attempt}").into_bytes();
            match workload::submit_once(shared, "probe", target, log, leaf).await {
                Submitted::Acked(_) => break,
                Submitted::Redirect(Some(leader)) => target = leader,
                Submitted::Redirect(None) | Submitted::Unknown => {
                    let ids = cluster.ids();
                    let pick = usize::try_from(attempt).unwrap_or(0) % ids.len().max(1);
                    target = ids.get(pick).copied().unwrap_or(1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    loop {
        let status = liveness::converged(&mut lock(&shared.checker), cluster);
        match status {
            Ok(()) => return Ok(()),
            Err(_) if panicked() => return Ok(()),
            Err(problem) if Instant::now() >= deadline => {
                return Err(format!(
                    "not converged within the bound after healing: {problem}"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The fault scheduler: partitions, crashes and restarts, clock skew, each only if the seed
/// switched it on.
async fn inject_faults(cluster: Arc<Cluster>, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) {
    let options = cluster.options.clone();
    let mut rng = SimRng::new(options.seed, stream::FAULTS);
    let mut kinds = Vec::new();
    if let Some(every) = options.partitions {
        kinds.push(("partition", every));
    }
    if let Some(every) = options.crashes {
        kinds.push(("crash", every));
    }
    if options.clock_skew_max_ms > 0 {
        kinds.push(("skew", Duration::from_secs(2)));
    }
    if let Some(every) = options.pauses {
        kinds.push(("pause", every));
    }
    if let Some(every) = options.disk_full {
        kinds.push(("disk-full", every));
    }
    if let Some(every) = options.membership {
        kinds.push(("membership", every));
    }
    if let Some(every) = options.slow_disk {
        kinds.push(("slow-disk", every));
    }
    if kinds.is_empty() {
        return;
    }
    let mean = kinds
        .iter()
        .map(|(_, every)| *every)
        .min()
        .unwrap_or(Duration::from_secs(1));
    let mean_ms = u64::try_from(mean.as_millis()).unwrap_or(1000).max(1);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(
            rng.range(mean_ms / 2..mean_ms * 3 / 2 + 1),
        ))
        .await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(&(kind, _)) = rng.pick(&kinds) else {
            break;
        };
        let ids = cluster.ids();
        count.fetch_add(1, Ordering::Relaxed);
        match kind {
            "partition" if rng.chance(0.15) => isolate_leader_as_it_signs(&cluster).await,
            "partition" => partition(&cluster, &mut rng, &ids),
            "membership" => {
                // Keep three to five voters; replacing is the common case.
                let change = match (ids.len(), rng.range(0..3)) {
                    (0..=3, 0) | (0..=2, _) => membership::Change::Add,
                    (5.., 0) | (4.., 1) => {
                        membership::Change::Remove(*rng.pick(&ids).unwrap_or(&1))
                    }
                    _ => membership::Change::Replace(*rng.pick(&ids).unwrap_or(&1)),
                };
                tokio::spawn(membership::change(cluster.clone(), change));
            }
            "slow-disk" => {
                if let Some(&id) = rng.pick(&ids) {
                    let latency =
                        Duration::from_millis(*rng.pick(&[1, 10, 50, 300]).unwrap_or(&10));
                    let duration = Duration::from_millis(rng.range(500..5000));
                    cluster.slow_disk(id, latency, duration);
                }
            }
            "disk-full" => {
                if let Some(&id) = rng.pick(&ids) {
                    cluster.fill_disks(id, Duration::from_millis(rng.range(200..4000)));
                }
            }
            "pause" => {
                // Mostly the leader: a paused leader wakes up believing it still leads.
                let leader = current_leader(&cluster);
                let id = match leader {
                    Some(leader) if rng.chance(0.6) => leader,
                    _ => *rng.pick(&ids).unwrap_or(&1),
                };
                let pause = Duration::from_millis(rng.range(100..5000));
                cluster.router.pause(id, pause);
                event(
                    &cluster.trace,
                    "fault",
                    &format!("pause n{id} {}ms", pause.as_millis()),
                );
            }
            "crash" => {
                let down = cluster.down();
                if !down.is_empty() && rng.chance(0.6) {
                    if let Some(&id) = rng.pick(&down) {
                        cluster.start_in_background(id);
                    }
                } else {
                    let up: Vec<NodeId> = ids
                        .iter()
                        .copied()
                        .filter(|id| !down.contains(id))
                        .collect();
                    if let Some(&id) = rng.pick(&up) {
                        cluster.crash(id).await;
                    }
                }
            }
            _ => {
                if let Some(&id) = rng.pick(&ids) {
                    let max = options.clock_skew_max_ms;
                    let skew = i64::try_from(rng.range(0..2 * max + 1)).unwrap_or(0)
                        - i64::try_from(max).unwrap_or(0);
                    cluster.set_skew(id, skew);
                    event(&cluster.trace, "fault", &format!("skew n{id} {skew}ms"));
                }
            }
        }
    }
}

/// The leader some running node knows of.
fn current_leader(cluster: &Cluster) -> Option<NodeId> {
    cluster
        .running()
        .iter()
        .find_map(|node| node.raft().metrics().borrow().current_leader)
}

/// Waits (up to a second) for the leader to apply its next entry, which signs a checkpoint,
/// and cuts it off from everyone at that moment: its answer and its signed checkpoint may
/// reach no one, and the rest elect a new leader that must not fork the log.
async fn isolate_leader_as_it_signs(cluster: &Cluster) {
    let Some(leader) = current_leader(cluster) else {
        return;
    };
    let Some(node) = cluster.node(leader) else {
        return;
    };
    let mut metrics = node.raft().metrics();
    drop(node);
    let applied = metrics.borrow().last_applied;
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        metrics.wait_for(|m| m.last_applied != applied),
    )
    .await;
    let ids = cluster.ids();
    let mut blocked = BTreeSet::new();
    for &other in &ids {
        if other != leader {
            blocked.insert((leader, other));
            blocked.insert((other, leader));
        }
    }
    cluster.router.set_blocked(blocked);
    event(
        &cluster.trace,
        "fault",
        &format!("partition isolate leader n{leader} as it signs"),
    );
}

/// Cuts links: heal, isolate the leader, split majority from minority, a bridge, or cut one
/// direction.
fn partition(cluster: &Cluster, rng: &mut SimRng, ids: &[NodeId]) {
    let mut blocked = BTreeSet::new();
    let cut = |blocked: &mut BTreeSet<(NodeId, NodeId)>, side: &[NodeId]| {
        for &a in side {
            for &b in ids {
                if !side.contains(&b) {
                    blocked.insert((a, b));
                    blocked.insert((b, a));
                }
            }
        }
    };
    let description = match rng.range(0..5) {
        0 => "heal".to_string(),
        1 => {
            let leader = current_leader(cluster).unwrap_or(1);
            cut(&mut blocked, &[leader]);
            format!("isolate leader n{leader}")
        }
        4 => {
            // A bridge: two halves that cannot reach each other, and one node both can reach
            // (Jepsen's "bridge"): each half may see the bridge as a majority's member.
            let mut order = ids.to_vec();
            rng.shuffle(&mut order);
            let Some((&bridge, rest)) = order.split_first() else {
                return;
            };
            let (left, right) = rest.split_at(rest.len() / 2);
            for &a in left {
                for &b in right {
                    blocked.insert((a, b));
                    blocked.insert((b, a));
                }
            }
            format!("bridge n{bridge} between {left:?} and {right:?}")
        }
        2 => {
            let mut minority: Vec<NodeId> = Vec::new();
            let size = usize::try_from(rng.range(1..(ids.len() as u64).div_ceil(2))).unwrap_or(1);
            while minority.len() < size {
                if let Some(&id) = rng.pick(ids)
                    && !minority.contains(&id)
                {
                    minority.push(id);
                }
            }
            minority.sort_unstable();
            cut(&mut blocked, &minority);
            format!("split minority {minority:?}")
        }
        _ => {
            let (Some(&a), Some(&b)) = (rng.pick(ids), rng.pick(ids)) else {
                return;
            };
            if a == b {
                return;
            }
            blocked.insert((a, b));
            format!("cut one way n{a} -> n{b}")
        }
    };
    cluster.router.set_blocked(blocked);
    event(&cluster.trace, "fault", &format!("partition {description}"));
}
