//! The log side of C2SP tlog-witness: the node sends each new checkpoint of a witnessed log to
//! the witnesses of its tlog-policy, with a consistency proof from the size each witness last
//! cosigned, attaches the cosignatures they return, and publishes the checkpoint (serves it at
//! the checkpoint endpoint and in append responses) only once the policy's quorum is met.
//!
//! Where it runs: outside Raft, after commit, on every node. Apply stays deterministic and
//! signs the checkpoint; this loop only reads committed state (the latest signed checkpoint and
//! consistency proofs) through the [`StateReader`], so a follower publishes what it has applied
//! and a new leader needs no hand-over. Witnesses treat a checkpoint they already cosigned as a
//! fresh request for the same size, so several nodes submitting is harmless.
//!
//! 409: the witness's body is its stored size; the node adopts it and retries once with a proof
//! from that size. A witness whose size is above this node's checkpoint has cosigned a larger
//! tree than this log now has: the log was restored from an old backup (or forked). The node
//! then never publishes anything smaller, and says so loudly.
//!
//! Fail-open (`[witnessing] fail_open = true`) publishes a checkpoint without its quorum, for
//! bring-up only, and logs a warning for every such checkpoint. The default is fail-closed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tlog::checkpoint::Checkpoint;
use tlog::note::{Note, NoteSignature};
use tlog::policy::PolicyWitness;
use tokio::sync::watch;
// Tokio's clock, so a simulator with paused time drives the pacing too.
use tokio::time::Instant;

pub use crate::config::WitnessingConfig;
use crate::env::Blocking;
use crate::metrics::Metrics;
use crate::network::HttpClient;
use crate::state_machine::{LogConfig, Logs};
use crate::storage::StateReader;
use crate::types::{LogName, NodeAddress, NodeId};

/// What the witnessing loop reads: committed state only, and Raft's progress to know when
/// there may be a new checkpoint.
#[derive(Clone)]
pub(crate) struct Committed {
    /// This node's id.
    pub(crate) id: NodeId,
    /// Raft's metrics (the applied index moves with every new checkpoint).
    pub(crate) raft: watch::Receiver<openraft::RaftMetrics<NodeId, NodeAddress>>,
    /// Reads of committed state.
    pub(crate) reader: StateReader,
    /// Where those reads run.
    pub(crate) blocking: Blocking,
    /// The node's logs.
    pub(crate) logs: Logs,
    /// Where the cosigning time and quorum failures are counted.
    pub(crate) metrics: Arc<Metrics>,
}

/// The longest the loop sleeps between looks for a new checkpoint (it also wakes on Raft
/// events).
const TICK: Duration = Duration::from_millis(50);
/// How long one witness request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait before asking again about a checkpoint that did not reach its quorum.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// The most bytes read from a witness's answer.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// The boxed future a [`WitnessTransport`] returns: the status and body, or why no answer came.
pub type TransportFuture = Pin<Box<dyn Future<Output = Result<(u16, String), String>> + Send>>;

/// How `add-checkpoint` requests reach witnesses: HTTP in production ([`HttpTransport`]); the
/// simulator can answer them in process with `witness::Witness::add_checkpoint`.
pub trait WitnessTransport: Send + Sync + std::fmt::Debug {
    /// POSTs `body` to `url` and returns the status and body.
    fn post(&self, url: String, body: String) -> TransportFuture;
}

/// [`WitnessTransport`] over the node's hyper client, with a timeout and a bounded answer.
#[derive(Clone, Debug)]
pub struct HttpTransport(pub HttpClient);

impl WitnessTransport for HttpTransport {
    fn post(&self, url: String, body: String) -> TransportFuture {
        let http = self.0.clone();
        Box::pin(async move { post(&http, &url, body).await })
    }
}

/// A checkpoint that met the quorum (or was published fail-open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// Its tree size.
    pub size: u64,
    /// The checkpoint note with the log's signature and the witnesses' cosignatures.
    pub note: Arc<str>,
}

/// Why an append could not be answered with a published checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishWaitError {
    /// No checkpoint covering the entry reached the quorum in time.
    #[error("no checkpoint of size {0} or more has reached its witness quorum yet")]
    Timeout(u64),
}

/// Per log: the publication channel and what each witness last cosigned.
#[derive(Debug)]
struct LogState {
    published: watch::Sender<Option<Published>>,
    /// The size each witness (by policy name) last cosigned, as far as this node knows.
    witness_sizes: Mutex<BTreeMap<String, u64>>,
}

/// The witnessing of a node's logs.
#[derive(Debug)]
pub struct Witnessing {
    config: WitnessingConfig,
    transport: Arc<dyn WitnessTransport>,
    logs: BTreeMap<LogName, LogState>,
}

impl Witnessing {
    /// Witnessing for those of `logs` whose origin and key the policy lists.
    pub fn new<'a>(
        config: WitnessingConfig,
        logs: impl IntoIterator<Item = &'a LogConfig>,
        transport: Arc<dyn WitnessTransport>,
    ) -> Witnessing {
        let mut states = BTreeMap::new();
        for log in logs {
            let listed = config.policy.logs().iter().any(|listed| {
                listed.verifier.name() == log.origin
                    && listed.verifier.public_key() == log.signing_key.verifying_key().as_bytes()
            });
            if listed {
                states.insert(
                    log.name.clone(),
                    LogState {
                        published: watch::Sender::new(None),
                        witness_sizes: Mutex::new(BTreeMap::new()),
                    },
                );
            }
        }
        if states.is_empty() {
            tracing::error!(
                "witnessing: the policy lists none of this node's logs (by origin and key), so \
                 no log is witnessed"
            );
        }
        if config.fail_open {
            tracing::warn!(
                "WITNESSING FAIL-OPEN: checkpoints without a witness quorum will be published; \
                 use this for bring-up only"
            );
        }
        Witnessing {
            config,
            transport,
            logs: states,
        }
    }

    /// Whether `log` is witnessed (its checkpoints are published only with a quorum).
    pub fn is_witnessed(&self, log: &LogName) -> bool {
        self.logs.contains_key(log)
    }

    /// The tlog-policy the witnessed logs' checkpoints must satisfy.
    pub fn policy(&self) -> &tlog::policy::Policy {
        &self.config.policy
    }

    /// The size each witness (by policy name) last cosigned of `log`, as far as this node
    /// knows (empty for a log that is not witnessed, or before the first round).
    pub fn witness_sizes(&self, log: &LogName) -> BTreeMap<String, u64> {
        self.logs.get(log).map_or_else(BTreeMap::new, |state| {
            state
                .witness_sizes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }

    /// The latest published checkpoint of a witnessed log.
    pub fn published(&self, log: &LogName) -> Option<Published> {
        self.logs.get(log)?.published.borrow().clone()
    }

    /// Waits until a checkpoint of at least `size` is published for `log`.
    pub async fn wait_published(
        &self,
        log: &LogName,
        size: u64,
    ) -> Result<Published, PublishWaitError> {
        let Some(state) = self.logs.get(log) else {
            return Err(PublishWaitError::Timeout(size));
        };
        let mut receiver = state.published.subscribe();
        let waited = tokio::time::timeout(
            self.config.append_timeout,
            receiver.wait_for(|p| p.as_ref().is_some_and(|p| p.size >= size)),
        )
        .await;
        match waited {
            Ok(Ok(published)) => published.clone().ok_or(PublishWaitError::Timeout(size)),
            _ => Err(PublishWaitError::Timeout(size)),
        }
    }

    /// Runs the witnessing loop over `node`'s committed state until its Raft core stops.
    pub(crate) async fn run(self: Arc<Self>, node: Committed) {
        // Per log: the size of the last checkpoint submitted and when, to pace retries.
        let mut attempted: BTreeMap<LogName, (u64, Instant)> = BTreeMap::new();
        let mut raft_events = node.raft.clone();
        let mut applied_seen = raft_events.borrow_and_update().last_applied;
        loop {
            for log in node.logs.iter() {
                let Some(state) = self.logs.get(&log.name) else {
                    continue;
                };
                let (reader, name) = (node.reader.clone(), log.name.clone());
                let read = node
                    .blocking
                    .run(move || reader.view().and_then(|view| view.checkpoint(&name)))
                    .await;
                let note = match read {
                    Ok(Some(note)) => note,
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::warn!(log = %log.name, %error, "witnessing: reading the checkpoint");
                        continue;
                    }
                };
                let Ok(checkpoint) = Note::parse(note.as_bytes())
                    .map_err(|e| e.to_string())
                    .and_then(|n| Checkpoint::parse(n.text()).map_err(|e| e.to_string()))
                else {
                    continue;
                };
                let size = checkpoint.size.0;
                let published = state.published.borrow().as_ref().map(|p| p.size);
                if published.is_some_and(|p| p >= size) {
                    continue;
                }
                if let Some((tried, at)) = attempted.get(&log.name)
                    && *tried == size
                    && at.elapsed() < RETRY_AFTER
                {
                    continue;
                }
                attempted.insert(log.name.clone(), (size, Instant::now()));
                let started = Instant::now();
                match self.cosign(&node, log, state, &note, size).await {
                    Ok(cosigned) => {
                        node.metrics
                            .witness_cosign_seconds
                            .observe(started.elapsed().as_secs_f64());
                        state.published.send_replace(Some(Published {
                            size,
                            note: cosigned.into(),
                        }));
                    }
                    Err(error) => {
                        node.metrics.witness_quorum_failures.inc();
                        if self.config.fail_open {
                            tracing::warn!(
                                log = %log.name, size,
                                "WITNESSING FAIL-OPEN: publishing a checkpoint without its \
                                 witness quorum: {error}"
                            );
                            state.published.send_replace(Some(Published {
                                size,
                                note: note.clone().into(),
                            }));
                        } else {
                            tracing::error!(
                                log = %log.name, size,
                                "checkpoint not published: {error}"
                            );
                        }
                    }
                }
            }
            // Wake when the applied index moves (a new checkpoint comes only with one), or
            // after a tick for retries; the metrics also change on every heartbeat and
            // replication reply, which carry no checkpoint. Once the Raft core has stopped (a
            // shutdown, a fatal storage error) nothing new can be committed, and the closed
            // channel would wake the loop at once, forever: stop.
            let applied_moved = async {
                loop {
                    raft_events.changed().await?;
                    let applied = raft_events.borrow_and_update().last_applied;
                    if applied != applied_seen {
                        return Ok::<_, tokio::sync::watch::error::RecvError>(applied);
                    }
                }
            };
            match tokio::time::timeout(TICK, applied_moved).await {
                Err(_elapsed) => {}
                Ok(Ok(applied)) => applied_seen = applied,
                Ok(Err(_stopped)) => {
                    tracing::info!("witnessing: the Raft core has stopped; witnessing stops");
                    return;
                }
            }
        }
    }

    /// Asks every witness to cosign `note` (of `size`) and returns it with the cosignatures,
    /// if they meet the quorum.
    async fn cosign(
        &self,
        node: &Committed,
        log: &LogConfig,
        state: &LogState,
        note: &str,
        size: u64,
    ) -> Result<String, String> {
        let mut requests = tokio::task::JoinSet::new();
        for witness in self.config.policy.witnesses() {
            let Some(url) = witness.url.clone() else {
                continue;
            };
            let known = state
                .witness_sizes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&witness.name)
                .copied()
                .unwrap_or(0);
            let (node, transport, name, witness, note) = (
                node.clone(),
                Arc::clone(&self.transport),
                log.name.clone(),
                witness.clone(),
                note.to_owned(),
            );
            requests.spawn(async move {
                let result = submit(
                    &node,
                    transport.as_ref(),
                    &name,
                    &witness,
                    &url,
                    &note,
                    size,
                    known,
                )
                .await;
                (witness, result)
            });
        }
        let mut signed = Note::parse(note.as_bytes()).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        // The witnesses (by policy name) whose cosignature verified and was attached.
        let mut cosigned_by: Vec<String> = Vec::new();
        while let Some(joined) = requests.join_next().await {
            let Ok((witness, result)) = joined else {
                continue;
            };
            match result {
                Ok((cosigned_size, lines)) => {
                    self.remember(state, &witness.name, cosigned_size);
                    for line in lines {
                        // Only a cosignature that verifies under the policy's key is kept: one
                        // bad line would make every verifier reject the whole checkpoint.
                        if line.name == witness.verifier.name()
                            && line.key_id == witness.verifier.key_id()
                            && witness.verifier.verify(signed.text(), &line.signature)
                            && signed.add_signature(line).is_ok()
                        {
                            cosigned_by.push(witness.name.clone());
                        }
                    }
                }
                Err(Submit::Conflict(witness_size)) => {
                    self.remember(state, &witness.name, witness_size);
                    problems.push(format!("{}: at size {witness_size}", witness.name));
                }
                Err(Submit::Ahead(witness_size)) => {
                    self.remember(state, &witness.name, witness_size);
                    // A follower that has not applied as far as another node is merely behind;
                    // on the leader, whose applied state is the cluster's latest, it means the
                    // log lost what witnesses already cosigned.
                    let leads = node.raft.borrow().current_leader == Some(node.id);
                    if leads {
                        tracing::error!(
                            log = %log.name, witness = %witness.name, witness_size, size,
                            "witness has cosigned a LARGER tree than this log's checkpoint: the \
                             log was restored from an old backup or forked; refusing to publish \
                             anything smaller than the size witnesses have cosigned"
                        );
                    } else {
                        tracing::debug!(
                            log = %log.name, witness = %witness.name, witness_size, size,
                            "witness is ahead of this follower's checkpoint"
                        );
                    }
                    problems.push(format!("{}: ahead at size {witness_size}", witness.name));
                }
                Err(Submit::Failed(reason)) => problems.push(format!("{}: {reason}", witness.name)),
            }
            // Publish as soon as the quorum holds: a witness that is slow or unreachable (a
            // request that times out after REQUEST_TIMEOUT) must not hold up every checkpoint
            // when the others already make the quorum. Its request goes on in the background;
            // the next round resynchronises its size by a 409 if need be.
            // (By name: each line was verified as it was attached, and the log's own signature
            // is this node's, over its own applied state.)
            if self
                .config
                .policy
                .is_satisfied_by(cosigned_by.iter().map(String::as_str))
            {
                requests.detach_all();
                break;
            }
        }
        if !self
            .config
            .policy
            .is_satisfied_by(cosigned_by.iter().map(String::as_str))
        {
            return Err(format!(
                "witness quorum not met ({} cosignatures; {})",
                cosigned_by.len(),
                problems.join("; ")
            ));
        }
        signed.format().map_err(|e| e.to_string())
    }

    fn remember(&self, state: &LogState, witness: &str, size: u64) {
        state
            .witness_sizes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(witness.to_owned(), size);
    }
}

/// Why one witness did not cosign.
enum Submit {
    /// Still 409 after resynchronising; carries the witness's size.
    Conflict(u64),
    /// The witness's size is above the checkpoint's.
    Ahead(u64),
    /// Anything else.
    Failed(String),
}

/// Sends one add-checkpoint request (and, after a 409, one more from the witness's size);
/// returns the size cosigned and the cosignature lines.
#[allow(clippy::too_many_arguments)]
async fn submit(
    node: &Committed,
    transport: &dyn WitnessTransport,
    log: &LogName,
    witness: &PolicyWitness,
    url: &str,
    note: &str,
    size: u64,
    mut old: u64,
) -> Result<(u64, Vec<NoteSignature>), Submit> {
    let endpoint = format!("{}/add-checkpoint", url.trim_end_matches('/'));
    for _ in 0..2 {
        if old > size {
            return Err(Submit::Ahead(old));
        }
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            let (reader, name) = (node.reader.clone(), log.clone());
            node.blocking
                .run(move || {
                    reader
                        .view()
                        .and_then(|view| view.consistency_proof(&name, old, size))
                })
                .await
                .map_err(|e| Submit::Failed(format!("consistency proof {old}..{size}: {e}")))?
                .hashes
        };
        let mut body = format!("old {old}\n");
        for hash in &proof {
            body.push_str(&hash.to_base64());
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let (status, answer) = transport
            .post(endpoint.clone(), body)
            .await
            .map_err(Submit::Failed)?;
        match status {
            200 => {
                let lines = NoteSignature::parse_lines(&answer)
                    .map_err(|e| Submit::Failed(format!("cosignature lines: {e}")))?;
                return Ok((size, lines));
            }
            409 => {
                let stored = tlog::checkpoint::parse_decimal(answer.trim_end_matches('\n'))
                    .map_err(|_| Submit::Failed(format!("409 without a size: {answer:?}")))?;
                tracing::info!(witness = %witness.name, stored, "witness resync after 409");
                if stored == old {
                    return Err(Submit::Conflict(stored));
                }
                old = stored;
            }
            status => {
                return Err(Submit::Failed(format!(
                    "status {status}: {}",
                    answer.trim()
                )));
            }
        }
    }
    Err(Submit::Conflict(old))
}

async fn post(http: &HttpClient, url: &str, body: String) -> Result<(u16, String), String> {
    let request = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(url)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = http.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}
