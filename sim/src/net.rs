//! The packet simulator at the `RaftNetwork` seam: a call is delivered straight to the target
//! node's `Raft::{append_entries, vote, install_snapshot}`, after a seeded delay, unless the
//! request is lost; the response comes back after another delay unless it is lost (a lost
//! response after a successful append is a case of its own).
//! Requests may be delivered twice (the copy later, its answer discarded), which is how a stream
//! gets reordered under 0.9's one-request-in-flight replication. A crashed or partitioned target
//! is `Unreachable` at once; a lost message is noticed by the caller only at its deadline:
//! every call is bounded by `RPCOption::hard_ttl()`, as production's transport is.
//!
//! A paused node (a process stopped by the scheduler, a long GC or VM pause) sends nothing
//! and handles nothing until it resumes: what it would send waits, and what is sent to it is
//! delivered only after it resumes, however long the sender has given up on it: stale
//! requests arriving late, which a partition (that drops them) never produces.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use node::types::{NodeAddress, NodeId, TypeConfig};
use openraft::Raft;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::invariants::election::RaftHistory;
use crate::rng::SimRng;

/// The network's fault rates.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetParams {
    /// Largest one-way delay, in milliseconds.
    pub delay_max_ms: u64,
    /// Probability that a request is lost.
    pub loss_request: f64,
    /// Probability that a response is lost.
    pub loss_response: f64,
    /// Probability that a request is delivered twice.
    pub duplicate: f64,
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Requests delivered (duplicates included).
    pub delivered: u64,
    /// Requests or responses lost.
    pub lost: u64,
    /// Requests refused as unreachable (crashed or partitioned target).
    pub unreachable: u64,
    /// Requests delivered a second time.
    pub duplicated: u64,
}

/// Who is up and who can talk to whom.
pub struct Router {
    rafts: BTreeMap<NodeId, Raft<TypeConfig>>,
    /// Per node, how many times it came up: a process's answer counts only if the process
    /// that computed it is still the one running.
    incarnations: BTreeMap<NodeId, u64>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Paused nodes and when they resume.
    paused: BTreeMap<NodeId, tokio::time::Instant>,
    rng: SimRng,
    params: NetParams,
    stats: NetStats,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("up", &self.rafts.keys().collect::<Vec<_>>())
            .field("blocked", &self.blocked)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The router every node's network shares.
#[derive(Debug, Clone)]
pub struct SharedRouter {
    router: Arc<Mutex<Router>>,
    history: Arc<Mutex<RaftHistory>>,
}

#[derive(Debug)]
struct Unreached(&'static str);

impl std::fmt::Display for Unreached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Unreached {}

impl SharedRouter {
    /// A router with nobody up.
    pub fn new(rng: SimRng, params: NetParams) -> SharedRouter {
        SharedRouter {
            router: Arc::new(Mutex::new(Router {
                rafts: BTreeMap::new(),
                incarnations: BTreeMap::new(),
                blocked: BTreeSet::new(),
                paused: BTreeMap::new(),
                rng,
                params,
                stats: NetStats::default(),
            })),
            history: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Router> {
        self.router
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks a node up, reachable through `raft`.
    pub fn up(&self, id: NodeId, raft: Raft<TypeConfig>) {
        let mut router = self.lock();
        router.rafts.insert(id, raft);
        *router.incarnations.entry(id).or_default() += 1;
    }

    /// Whether node `id` is up as incarnation `incarnation` (not crashed since).
    fn still_up(&self, id: NodeId, incarnation: u64) -> bool {
        let router = self.lock();
        router.rafts.contains_key(&id) && router.incarnations.get(&id) == Some(&incarnation)
    }

    /// Marks a node down.
    pub fn down(&self, id: NodeId) {
        self.lock().rafts.remove(&id);
    }

    /// Replaces the cut links (directed pairs).
    pub fn set_blocked(&self, blocked: BTreeSet<(NodeId, NodeId)>) {
        self.lock().blocked = blocked;
    }

    /// What the nodes' Raft showed and answered ([`crate::invariants::election`]).
    pub fn history(&self) -> MutexGuard<'_, RaftHistory> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pauses node `id` for `pause` (from now).
    pub fn pause(&self, id: NodeId, pause: Duration) {
        let until = tokio::time::Instant::now() + pause;
        self.lock().paused.insert(id, until);
    }

    /// Resumes every paused node (the heal).
    pub fn resume_all(&self) {
        self.lock().paused.clear();
    }

    /// When node `id` resumes, if it is paused now.
    pub fn paused_until(&self, id: NodeId) -> Option<tokio::time::Instant> {
        let mut router = self.lock();
        let until = *router.paused.get(&id)?;
        if until <= tokio::time::Instant::now() {
            router.paused.remove(&id);
            return None;
        }
        Some(until)
    }

    /// Replaces the fault rates.
    pub fn set_params(&self, params: NetParams) {
        self.lock().params = params;
    }

    /// Whether `from` can currently reach `to`.
    pub fn can_reach(&self, from: NodeId, to: NodeId) -> bool {
        let router = self.lock();
        from == to || !router.blocked.contains(&(from, to))
    }

    /// The counters so far.
    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    fn delay(router: &mut Router) -> Duration {
        let max = router.params.delay_max_ms.max(1) * 1000;
        Duration::from_micros(router.rng.range(max / 10..max + 1))
    }

    /// The first leg: the target's handle and the delay, or why it is not delivered.
    fn send(&self, from: NodeId, to: NodeId) -> Result<Leg, Unreached> {
        let mut router = self.lock();
        if router.blocked.contains(&(from, to)) || !router.rafts.contains_key(&to) {
            router.stats.unreachable += 1;
            return Err(Unreached("target crashed or partitioned"));
        }
        let delay = Self::delay(&mut router);
        let loss = router.params.loss_request;
        let lost = router.rng.chance(loss);
        let dup = router.params.duplicate;
        let duplicate = router.rng.chance(dup).then(|| Self::delay(&mut router) * 4);
        if lost {
            router.stats.lost += 1;
        }
        Ok(Leg {
            delay,
            lost,
            duplicate,
        })
    }

    /// The target's handle and incarnation at delivery time, if the link is still open.
    fn deliver(&self, from: NodeId, to: NodeId) -> Option<(Raft<TypeConfig>, u64)> {
        let mut router = self.lock();
        if router.blocked.contains(&(from, to)) {
            router.stats.lost += 1;
            return None;
        }
        let raft = router.rafts.get(&to).cloned()?;
        router.stats.delivered += 1;
        let incarnation = router.incarnations.get(&to).copied().unwrap_or(0);
        Some((raft, incarnation))
    }

    /// The second leg: the response's delay, or `None` if it is lost.
    fn reply(&self, from: NodeId, to: NodeId) -> Option<Duration> {
        let mut router = self.lock();
        let loss = router.params.loss_response;
        if router.blocked.contains(&(to, from)) || router.rng.chance(loss) {
            router.stats.lost += 1;
            return None;
        }
        Some(Self::delay(&mut router))
    }

    /// A request from a node to a party outside the cluster (a witness): its delay, or `None`
    /// if it is lost. Drawn from the same stream and rates as Raft messages.
    pub fn outbound(&self) -> Option<Duration> {
        let mut router = self.lock();
        let loss = router.params.loss_request;
        if router.rng.chance(loss) {
            router.stats.lost += 1;
            return None;
        }
        router.stats.delivered += 1;
        Some(Self::delay(&mut router))
    }

    /// The answer of a party outside the cluster to a node: its delay, or `None` if it is
    /// lost.
    pub fn inbound(&self) -> Option<Duration> {
        let mut router = self.lock();
        let loss = router.params.loss_response;
        if router.rng.chance(loss) {
            router.stats.lost += 1;
            return None;
        }
        Some(Self::delay(&mut router))
    }

    fn duplicated(&self) {
        self.lock().stats.duplicated += 1;
    }
}

struct Leg {
    delay: Duration,
    lost: bool,
    duplicate: Option<Duration>,
}

/// One node's network: the factory openraft asks for connections.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    from: NodeId,
    router: SharedRouter,
}

impl SimNetwork {
    /// The network as node `from` sees it.
    pub fn new(from: NodeId, router: SharedRouter) -> SimNetwork {
        SimNetwork { from, router }
    }
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimPeer;

    async fn new_client(&mut self, target: NodeId, _node: &NodeAddress) -> SimPeer {
        SimPeer {
            from: self.from,
            to: target,
            router: self.router.clone(),
        }
    }
}

/// A connection from one node to another.
#[derive(Debug)]
pub struct SimPeer {
    from: NodeId,
    to: NodeId,
    router: SharedRouter,
}

type RpcResult<Resp, E> = Result<Resp, RPCError<NodeId, NodeAddress, RaftError<NodeId, E>>>;

impl SimPeer {
    async fn call<Req, Resp, E, F, Fut>(
        &self,
        request: Req,
        option: &RPCOption,
        f: F,
    ) -> RpcResult<Resp, E>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Raft<TypeConfig>, Req) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Resp, RaftError<NodeId, E>>> + Send + 'static,
    {
        let unreachable = |why| RPCError::Unreachable(Unreachable::new(&Unreached(why)));
        let (from, to, router) = (self.from, self.to, self.router.clone());
        // A paused sender sends once it resumes.
        if let Some(resume) = router.paused_until(from) {
            tokio::time::sleep_until(resume).await;
        }
        let leg = router
            .send(from, to)
            .map_err(|Unreached(why)| unreachable(why))?;
        if let Some(later) = leg.duplicate {
            let (router, request, f) = (router.clone(), request.clone(), f.clone());
            tokio::spawn(async move {
                tokio::time::sleep(later).await;
                if let Some((raft, _)) = router.deliver(from, to) {
                    router.duplicated();
                    let _ = f(raft, request).await;
                }
            });
        }
        // A paused target gets the request when it resumes, whether or not the sender is still
        // waiting: delivered late, in its own task, its answer discarded.
        if !leg.lost
            && let Some(resume) = router.paused_until(to)
        {
            tokio::spawn(async move {
                tokio::time::sleep_until(resume + leg.delay).await;
                if let Some((raft, _)) = router.deliver(from, to) {
                    let _ = f(raft, request).await;
                }
            });
            tokio::time::sleep(option.hard_ttl()).await;
            return Err(unreachable("no answer before the deadline (target paused)"));
        }
        let exchange = async move {
            tokio::time::sleep(leg.delay).await;
            if leg.lost {
                return std::future::pending().await;
            }
            let Some((raft, incarnation)) = router.deliver(from, to) else {
                return std::future::pending().await;
            };
            let answer = f(raft, request).await;
            // A process that crashed while handling the request sends no answer: what it did
            // after the crash (an append it flushed to a disk image that no longer exists) must
            // not count. Its connections are reset.
            if !router.still_up(to, incarnation) {
                return Err(unreachable("target crashed while handling the request"));
            }
            let Some(back) = router.reply(from, to) else {
                return std::future::pending().await;
            };
            tokio::time::sleep(back).await;
            match answer {
                Ok(response) => Ok(response),
                Err(RaftError::Fatal(_)) => Err(unreachable("target stopped")),
                Err(error) => Err(RPCError::RemoteError(RemoteError::new(to, error))),
            }
        };
        match tokio::time::timeout(option.hard_ttl(), exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(unreachable("no answer before the deadline")),
        }
    }
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(rpc, &option, |raft: Raft<TypeConfig>, rpc| async move {
            raft.append_entries(rpc).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(rpc, &option, |raft: Raft<TypeConfig>, rpc| async move {
            raft.install_snapshot(rpc).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        let term = rpc.vote.leader_id().term;
        let answer = self
            .call(rpc, &option, |raft: Raft<TypeConfig>, rpc| async move {
                raft.vote(rpc).await
            })
            .await;
        if let Ok(response) = &answer
            && response.vote_granted
        {
            self.router.history().granted(self.to, term);
        }
        answer
    }
}
