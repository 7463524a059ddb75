//! Pushed witnessing in the simulation (`Options::pushed_witnesses`): every node runs the
//! production `node::witnessing` loop, whose `add-checkpoint` requests go through
//! [`SimTransport`], the simulated network (the seeded delay and loss of the Raft messages, a
//! loss costing a TCP retransmission timeout; the sender's process pauses; and witness faults:
//! a witness down, which refuses connections, or a node cut off from one, which never answers),
//! to production witnesses (`witness::Witness::add_checkpoint`, the function the witness's HTTP
//! server calls) over in-memory stores that outlive every fault. The nodes publish a checkpoint
//! only with the quorum of a tlog-policy over these witnesses.
//!
//! The witnesses also gossip (`witness::gossip::compare_with`, as `cairn witness gossip`
//! does): now and then one of them compares every witness's latest cosigned checkpoint, with
//! consistency proofs from the log, and keeps any split view it finds as evidence. A lying log
//! operator ([`crate::malicious`]) may show some witnesses a second root for a size.
//!
//! What a witness ever cosigned is recorded in a ledger ([`crate::invariants::cosigning`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use node::types::{LogName, NodeId};
use node::witnessing::{REQUEST_TIMEOUT, TransportFuture, WitnessTransport, WitnessingConfig};
use tlog::Hash;
use tlog::checkpoint::Checkpoint;
use tlog::note::Note;
use tlog::policy::Policy;
use witness::Witness;
use witness::cosigner::Reply;
use witness::gossip::GossipSource;

use crate::cluster::Cluster;
use crate::invariants::cosigning::Ledger;
use crate::net::SharedRouter;
use crate::options::Options;
use crate::rng::SimRng;
use crate::trace::{SharedTrace, event};

/// How long an append waits for a checkpoint covering it to reach the quorum (the client's own
/// patience, `workload::SUBMIT_TIMEOUT`).
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(3);

/// One pushed witness.
#[derive(Debug)]
pub struct PushedWitness {
    /// Its name in the policy (`p0`, `p1`, ...).
    pub name: String,
    /// Its URL in the policy.
    pub url: String,
    /// The production witness.
    pub witness: Witness,
}

/// A second root for a size, signed with the log's key by the lying operator.
#[derive(Clone, Debug)]
pub struct Fork {
    /// The log.
    pub log: LogName,
    /// Its origin.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The forged root.
    pub root: Hash,
    /// The witnesses (by index) it was shown to.
    pub victims: BTreeSet<usize>,
}

/// What changes during a run.
#[derive(Debug, Default)]
struct State {
    /// Witnesses that are down (they answer nobody).
    down: BTreeSet<usize>,
    /// Links cut between a node and a witness (both directions).
    cut: BTreeSet<(NodeId, usize)>,
    /// A witness that never answers, whatever the heal (`Options::black_holed_witness`).
    black_hole: Option<usize>,
    /// The operator's fork, once made.
    fork: Option<Fork>,
    /// Why the operator failed to fork at a moment it could have (every victim up and behind
    /// a size the log has): a fault in the harness, not in the system under test.
    operator_failure: Option<String>,
    /// The size each witness last cosigned, per origin (for the trace).
    sizes: BTreeMap<(usize, String), u64>,
    /// Everything the witnesses cosigned.
    ledger: Ledger,
}

/// The pushed witnesses and their policy.
#[derive(Debug)]
pub struct Witnesses {
    /// The witnesses, in policy order.
    pub list: Vec<PushedWitness>,
    /// The policy the nodes publish with.
    pub policy: Policy,
    /// The logs the witnesses witness.
    pub logs: witness::config::Logs,
    /// Origin to log name.
    names: BTreeMap<String, LogName>,
    trace: SharedTrace,
    /// When the run started: the witnesses' clock reads virtual time from the run's epoch.
    start: tokio::time::Instant,
    state: Mutex<State>,
}

impl Witnesses {
    /// `options.pushed_witnesses` witnesses of every log in `logs`, behind a policy that needs
    /// `options.witness_quorum` of them.
    pub fn new(
        options: &Options,
        logs: &node::state_machine::Logs,
        rng: &mut SimRng,
        trace: SharedTrace,
    ) -> Result<Witnesses, String> {
        let mut log_lines = String::new();
        let mut names = BTreeMap::new();
        for log in logs.iter() {
            let verifier =
                tlog::keys::Ed25519Verifier::new(&log.origin, log.signing_key.verifying_key())
                    .map_err(|e| e.to_string())?;
            log_lines.push_str(&format!(
                "log {}\n",
                tlog::keys::Verifier::Ed25519(verifier).to_vkey()
            ));
            names.insert(log.origin.clone(), log.name.clone());
        }
        let witness_logs =
            witness::config::Logs::from_policy_text(&log_lines).map_err(|e| e.to_string())?;
        let mut policy = log_lines;
        let mut list = Vec::new();
        for i in 0..options.pushed_witnesses {
            let mut seed = [0u8; 32];
            for chunk in seed.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            let cosigner = tlog::keys::Cosigner::new(
                &format!("witness.sim/p{i}"),
                ed25519_dalek::SigningKey::from_bytes(&seed),
            )
            .map_err(|e| e.to_string())?;
            let (name, url) = (format!("p{i}"), format!("sim-witness://p{i}"));
            policy.push_str(&format!(
                "witness {name} {} {url}\n",
                cosigner.verifier().to_vkey()
            ));
            let witness = Witness::new(
                cosigner,
                witness_logs.clone(),
                Arc::new(witness::store::MemoryStore::new()),
            );
            list.push(PushedWitness { name, url, witness });
        }
        let members: Vec<&str> = list.iter().map(|w| w.name.as_str()).collect();
        policy.push_str(&format!(
            "group q {} {}\nquorum q\n",
            options.witness_quorum,
            members.join(" ")
        ));
        let policy = Policy::parse(&policy).map_err(|e| e.to_string())?;
        Ok(Witnesses {
            list,
            policy,
            logs: witness_logs,
            names,
            trace,
            start: tokio::time::Instant::now(),
            state: Mutex::new(State {
                black_hole: (options.black_holed_witness)
                    .then(|| usize::try_from(options.pushed_witnesses.saturating_sub(1)).ok())
                    .flatten(),
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `[witnessing]` settings every node runs with.
    pub fn config(&self) -> WitnessingConfig {
        WitnessingConfig {
            policy: self.policy.clone(),
            fail_open: false,
            append_timeout: APPEND_TIMEOUT,
        }
    }

    /// The transport node `from`'s witnessing reaches these witnesses through: the simulated
    /// network, with its faults.
    pub fn transport(
        self: &Arc<Witnesses>,
        from: node::types::NodeId,
        router: SharedRouter,
    ) -> Arc<dyn node::witnessing::WitnessTransport> {
        Arc::new(SimTransport {
            from,
            witnesses: Arc::clone(self),
            router,
        })
    }

    /// The log named by `origin`.
    pub fn log_name(&self, origin: &str) -> Option<&LogName> {
        self.names.get(origin)
    }

    /// Whether witness `index` is up.
    pub fn is_up(&self, index: usize) -> bool {
        !self.lock().down.contains(&index)
    }

    /// Whether node `from` can reach witness `index`.
    fn reachable(&self, from: NodeId, index: usize) -> bool {
        let state = self.lock();
        !state.down.contains(&index)
            && !state.cut.contains(&(from, index))
            && state.black_hole != Some(index)
    }

    /// The operator's fork, once made.
    pub fn fork(&self) -> Option<Fork> {
        self.lock().fork.clone()
    }

    /// Records the operator's fork before it is shown to anyone.
    pub fn set_fork(&self, fork: Fork) {
        self.lock().fork = Some(fork);
    }

    /// Records that the operator had its moment and still failed to fork, and why.
    pub fn set_operator_failure(&self, why: String) {
        self.lock().operator_failure = Some(why);
    }

    /// Why the operator failed to fork at a moment it could have, if it did.
    pub fn operator_failure(&self) -> Option<String> {
        self.lock().operator_failure.clone()
    }

    /// Takes the violations found so far: (invariant, what).
    pub fn take_violations(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.lock().ledger.violations)
    }

    /// Ends every witness fault (the heal).
    pub fn heal(&self) {
        let mut state = self.lock();
        state.down.clear();
        state.cut.clear();
    }

    /// Answers an `add-checkpoint` request to witness `index` from `who`, as its HTTP server
    /// would, and records what it cosigned. The current time is virtual time from the run's
    /// epoch: witnesses have no skew.
    pub fn add_checkpoint(&self, index: usize, body: &[u8], who: &str) -> Reply {
        let Some(pushed) = self.list.get(index) else {
            return Reply {
                status: 404,
                content_type: "text/plain; charset=utf-8",
                body: "no such witness\n".into(),
            };
        };
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(0);
        let now = crate::clock::EPOCH_UNIX_MS.saturating_add(elapsed) / 1000;
        let reply = pushed.witness.add_checkpoint(body, now);
        let opened = witness::request::AddCheckpoint::parse(body)
            .ok()
            .and_then(|request| Note::parse(request.checkpoint.as_bytes()).ok())
            .and_then(|note| Checkpoint::parse(note.text()).ok());
        let mut state = self.lock();
        let fork = state.fork.clone();
        match (reply.status, opened) {
            (200, Some(checkpoint)) => {
                let key = (index, checkpoint.origin.clone());
                if state.sizes.get(&key).is_none_or(|&s| s < checkpoint.size.0) {
                    state.sizes.insert(key, checkpoint.size.0);
                    event(
                        &self.trace,
                        &pushed.name,
                        &format!(
                            "cosigned {who} {} size {}",
                            checkpoint.origin, checkpoint.size.0
                        ),
                    );
                }
                state.ledger.record(
                    &self.policy,
                    &pushed.name,
                    &checkpoint,
                    fork.as_ref().map(|f| (f.origin.as_str(), f.size, f.root)),
                );
            }
            (200 | 409, _) => {}
            (status, checkpoint) => {
                let size = checkpoint.as_ref().map_or(0, |c| c.size.0);
                event(
                    &self.trace,
                    &pushed.name,
                    &format!("refused {who} size {size}: {status}"),
                );
                // A witness that holds the operator's fork refuses the honest log from then
                // on; any other refusal means the honest cluster showed a witness something
                // inconsistent.
                let holds_fork = fork.as_ref().is_some_and(|f| f.victims.contains(&index));
                if !holds_fork {
                    state.ledger.violations.push((
                        "witness",
                        format!(
                            "{} refused {who}'s checkpoint of size {size}: {status} {}",
                            pushed.name,
                            reply.body.trim()
                        ),
                    ));
                }
            }
        }
        reply
    }

    /// Every witness's latest cosigned checkpoint of `origin`, with the witness's index.
    pub fn latest(&self, origin: &str) -> Vec<(usize, Option<witness::store::Stored>)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, w)| (i, w.witness.store().latest(origin).ok().flatten()))
            .collect()
    }
}

/// [`WitnessTransport`] over the simulated network: what production sends over HTTP.
#[derive(Debug)]
pub struct SimTransport {
    from: NodeId,
    witnesses: Arc<Witnesses>,
    router: SharedRouter,
}

impl WitnessTransport for SimTransport {
    fn post(&self, url: String, body: String) -> TransportFuture {
        let (from, witnesses, router) =
            (self.from, Arc::clone(&self.witnesses), self.router.clone());
        Box::pin(async move {
            let index = witnesses
                .list
                .iter()
                .position(|w| url.strip_prefix(w.url.as_str()) == Some("/add-checkpoint"))
                .ok_or_else(|| format!("no witness at {url}"))?;
            let exchange = async {
                // A paused process sends once it resumes.
                if let Some(resume) = router.paused_until(from) {
                    tokio::time::sleep_until(resume).await;
                }
                // A witness process that is down refuses the connection at once; one cut off
                // by a partition never answers, and the node notices at its deadline.
                if !witnesses.is_up(index) {
                    return Err("connection refused".to_owned());
                }
                if !witnesses.reachable(from, index) {
                    return std::future::pending().await;
                }
                // HTTP runs over TCP: a lost segment is sent again after a retransmission
                // timeout (200 ms, doubling), so loss shows as delay, not as a lost request.
                let there = transit(&router, true);
                tokio::time::sleep(there).await;
                if !witnesses.reachable(from, index) {
                    return std::future::pending().await;
                }
                let reply = witnesses.add_checkpoint(index, body.as_bytes(), &format!("n{from}"));
                let back = transit(&router, false);
                tokio::time::sleep(back).await;
                Ok((reply.status, reply.body))
            };
            tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                .await
                .map_err(|_| "timed out".to_owned())?
        })
    }
}

/// How long one message over a TCP connection takes: the network's delay, plus a
/// retransmission timeout (200 ms, doubling) for every time it is lost.
fn transit(router: &SharedRouter, request: bool) -> Duration {
    let mut rto = Duration::from_millis(200);
    let mut extra = Duration::ZERO;
    loop {
        let leg = if request {
            router.outbound()
        } else {
            router.inbound()
        };
        match leg {
            Some(delay) => return extra + delay,
            None => {
                extra += rto;
                rto *= 2;
            }
        }
    }
}

/// Witness faults until `stop`: a witness down, or a node cut off from a witness, each for a
/// while.
pub async fn faults(
    cluster: Arc<Cluster>,
    witnesses: Arc<Witnesses>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    mut rng: SimRng,
) {
    let Some(every) = cluster.options.witness_faults else {
        return;
    };
    let mean = u64::try_from(every.as_millis()).unwrap_or(1000).max(1);
    let n = witnesses.list.len() as u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.range(mean / 2..mean * 3 / 2 + 1))).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        count.fetch_add(1, Ordering::Relaxed);
        let index = usize::try_from(rng.range(0..n)).unwrap_or(0);
        let duration = Duration::from_millis(rng.range(200..8000));
        let name = witnesses.list.get(index).map_or("?", |w| w.name.as_str());
        if rng.chance(0.5) {
            witnesses.lock().down.insert(index);
            event(
                &cluster.trace,
                "fault",
                &format!("witness {name} down {}ms", duration.as_millis()),
            );
            let witnesses = Arc::clone(&witnesses);
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                witnesses.lock().down.remove(&index);
            });
        } else {
            let Some(&node) = rng.pick(&cluster.ids()) else {
                continue;
            };
            witnesses.lock().cut.insert((node, index));
            event(
                &cluster.trace,
                "fault",
                &format!("cut n{node} from witness {name} {}ms", duration.as_millis()),
            );
            let witnesses = Arc::clone(&witnesses);
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                witnesses.lock().cut.remove(&(node, index));
            });
        }
    }
}

/// Gossip's view of the simulation: the witnesses' stores (a down witness does not answer)
/// and the log's consistency proofs from a running node.
struct SimGossip<'a> {
    cluster: &'a Cluster,
    witnesses: &'a Witnesses,
}

impl GossipSource for SimGossip<'_> {
    async fn witness_checkpoint(&self, witness: &str, origin: &str) -> Result<Vec<u8>, String> {
        let (index, pushed) = self
            .witnesses
            .list
            .iter()
            .enumerate()
            .find(|(_, w)| w.name == witness)
            .ok_or_else(|| format!("no witness {witness}"))?;
        if !self.witnesses.is_up(index) {
            return Err(format!("{witness}: down"));
        }
        match pushed.witness.store().latest(origin) {
            Ok(Some(stored)) => Ok(stored.note.into_bytes()),
            Ok(None) => Err(format!("{witness}: nothing cosigned for {origin}")),
            Err(error) => Err(format!("{witness}: {error}")),
        }
    }

    async fn consistency_proof(
        &self,
        log: &witness::config::LogConfig,
        old: u64,
        new: u64,
    ) -> Result<Option<Vec<Hash>>, String> {
        let name = self
            .witnesses
            .log_name(&log.origin)
            .ok_or_else(|| format!("no log {}", log.origin))?;
        for node in self.cluster.running() {
            let Ok(view) = node.reader().view() else {
                continue;
            };
            if view
                .head(name)
                .ok()
                .flatten()
                .is_some_and(|head| head.tree_size >= new)
            {
                return view
                    .consistency_proof(name, old, new)
                    .map(|proof| Some(proof.hashes))
                    .map_err(|e| e.to_string());
            }
        }
        Err(format!("no running node has {} at size {new}", log.origin))
    }
}

/// Gossip until `running` is cleared: every 1 to 3 simulated seconds one witness compares every witness's
/// latest cosigned checkpoint and keeps each split view it finds (once) as evidence. An honest
/// log never gives gossip a split view.
pub async fn gossip(
    cluster: Arc<Cluster>,
    witnesses: Arc<Witnesses>,
    running: Arc<AtomicBool>,
    mut rng: SimRng,
) {
    let names: Vec<String> = witnesses.list.iter().map(|w| w.name.clone()).collect();
    let n = witnesses.list.len() as u64;
    while running.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.range(1000..3000))).await;
        let index = usize::try_from(rng.range(0..n)).unwrap_or(0);
        if !witnesses.is_up(index) {
            continue;
        }
        let source = SimGossip {
            cluster: &cluster,
            witnesses: &witnesses,
        };
        let report = witness::gossip::compare_with(&source, &witnesses.logs, &names).await;
        let Some(me) = witnesses.list.get(index) else {
            continue;
        };
        for evidence in report.split_views {
            let known = me.witness.store().split_views().unwrap_or_default();
            if known.contains(&evidence) {
                continue;
            }
            event(
                &cluster.trace,
                &me.name,
                &format!("ALARM split view by gossip: {}", evidence.reason),
            );
            if let Err(error) = me.witness.record_split_view(&evidence) {
                witnesses.lock().ledger.violations.push((
                    "witness",
                    format!("{} could not keep evidence: {error}", me.name),
                ));
            }
            if witnesses.fork().is_none() {
                witnesses.lock().ledger.violations.push((
                    "witness",
                    format!(
                        "gossip found a split view of an honest log: {}",
                        evidence.reason
                    ),
                ));
            }
        }
    }
}
