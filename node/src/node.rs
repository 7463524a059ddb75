//! One Cairn node, assembled: Raft over the redb stores and a network, the sequencer that
//! proposes through it, the state reader that serves reads, and the metrics.
//!
//! Production (`cairn-node`) and the simulator build a node through [`Node::start`] alike; they
//! differ only in the stores' disk, the Raft network and the clock they pass in.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, RaftNetworkFactory, SnapshotPolicy};

use crate::env::{Blocking, Checks, SharedClock};
use crate::keyless::KeylessCa;
use crate::metrics::{LogLabel, Metrics};
use crate::network::HttpClient;
use crate::sequencer::{BatchProofs, ProposeError, Proposer, Sequencer, SequencerConfig};
use crate::state_machine::Logs;
use crate::storage::{StateReader, Stores};
use crate::types::{Command, CommandOutcome, NodeId, TypeConfig};

/// Everything a node needs to start, besides its stores and network.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id in the cluster.
    pub id: NodeId,
    /// The logs the cluster hosts (identical on every node).
    pub logs: Logs,
    /// Raft timing and log-compaction settings.
    pub raft: openraft::Config,
    /// Batching bounds.
    pub sequencer: SequencerConfig,
    /// The bearer token of the admin API.
    pub admin_token: String,
    /// Where blocking storage reads run (the thread pool in production, inline in simulation).
    pub blocking: Blocking,
}

/// Raft settings for nodes on one machine or a LAN: 100 ms heartbeats, elections after 0.5 to
/// 1 s of silence, snapshots every 10,000 entries (each entry is a batch of leaves).
pub fn default_raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "cairn".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        // Entries are whole batches already; a few per AppendEntries keeps messages bounded.
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        ..openraft::Config::default()
    }
}

/// Why a membership change was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The change has no voter left.
    #[error("at least one voter is needed")]
    NoVoters,
    /// The change would remove the node that carries it out, the leader. openraft 0.9 lets a
    /// leader remove itself, but if it loses leadership before the final configuration commits,
    /// the node with the newest log is a learner that may not campaign while the remaining
    /// voters cannot win without its vote: no leader ever again (openraft issue 2091, fixed only
    /// in 0.10; simulator seed 637).
    #[error(
        "n{0} is the leader and cannot remove itself: stop its process so that another voter \
         leads, then ask the new leader (a leader removing itself can leave the cluster \
         leaderless; openraft issue 2091)"
    )]
    RemovesLeader(NodeId),
    /// Raft refused or failed the change (not the leader, a change already in progress, ...).
    #[error("{0}")]
    Raft(String),
}

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A log's size could not be read.
    #[error("reading a log's size: {0}")]
    Read(#[from] crate::storage::ReadError),
    /// The text encoding failed.
    #[error("encoding the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The Raft configuration is inconsistent.
    #[error("raft configuration: {0}")]
    Config(String),
    /// Raft failed to start over the stores.
    #[error("starting raft: {0}")]
    Raft(String),
}

/// A running node.
pub struct Node {
    /// This node's id.
    pub id: NodeId,
    /// The Raft handle.
    pub raft: Raft<TypeConfig>,
    /// Pools submissions into batches (effective on the leader).
    pub sequencer: Sequencer,
    /// Reads of committed state, off the consensus path.
    pub reader: StateReader,
    /// The logs the cluster hosts.
    pub logs: Logs,
    /// Client for forwarding writes to the leader.
    pub http: HttpClient,
    /// The node's clock.
    pub clock: SharedClock,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// Where blocking storage reads run.
    pub blocking: Blocking,
    /// Where client signature checks run: off the async workers, bounded (past the bound a
    /// request is refused with 503 rather than queued).
    pub checks: Checks,
    /// Witness cosigning and quorum publication, when configured (set once, after start).
    pub witnessing: std::sync::OnceLock<Arc<crate::witnessing::Witnessing>>,
    admin_token: String,
    /// The node's public URL (`api_url`), once set ([`Node::set_public_url`]).
    public_url: std::sync::OnceLock<String>,
    /// The keyless CA, once installed ([`Node::install_ca`]); without it the CA routes answer
    /// 404.
    ca: std::sync::OnceLock<Arc<KeylessCa>>,
    /// The timestamp authority, once installed ([`Node::install_tsa`]); without it the TSA
    /// routes answer 404 and the trust documents list no TSA.
    tsa: std::sync::OnceLock<Arc<ca::tsa::TimestampAuthority>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts Raft over `stores` and `network`, and the sequencer over Raft.
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        config: NodeConfig,
        stores: Stores,
        network: N,
        http: HttpClient,
        clock: SharedClock,
    ) -> Result<Arc<Node>, StartError> {
        let raft_config = Arc::new(
            config
                .raft
                .validate()
                .map_err(|error| StartError::Config(error.to_string()))?,
        );
        config
            .sequencer
            .validate()
            .map_err(|error| StartError::Config(error.to_string()))?;
        let Stores { log, state, reader } = stores;
        let known = state.known_members();
        let raft = Raft::new(config.id, raft_config, network, log, state)
            .await
            .map_err(|error| StartError::Raft(error.to_string()))?;
        tokio::spawn(track_members(raft.clone(), known));
        let metrics = Arc::new(Metrics::default());
        // The leader answers each batch's submissions with proofs made once for the batch.
        let proof_reader = reader.clone();
        let blocking = config.blocking;
        let proofs: BatchProofs = Arc::new(move |log, indices, tree_size| {
            let reader = proof_reader.clone();
            Box::pin(async move {
                blocking
                    .run(move || {
                        reader
                            .view()
                            .and_then(|view| view.inclusion_proofs(&log, &indices, tree_size))
                            .map_err(|error| error.to_string())
                    })
                    .await
            })
        });
        let sequencer = Sequencer::start_with_proofs(
            config.sequencer,
            RaftProposer {
                raft: raft.clone(),
                #[cfg(feature = "canaries")]
                scratch: (reader.clone(), config.logs.clone()),
            },
            Arc::clone(&clock),
            Arc::clone(&metrics),
            Some(proofs),
        );
        Ok(Arc::new(Node {
            id: config.id,
            raft,
            sequencer,
            reader,
            logs: config.logs,
            http,
            clock,
            metrics,
            admin_token: config.admin_token,
            blocking: config.blocking,
            checks: Checks::per_core(config.blocking),
            ca: std::sync::OnceLock::new(),
            tsa: std::sync::OnceLock::new(),
            public_url: std::sync::OnceLock::new(),
            witnessing: std::sync::OnceLock::new(),
        }))
    }

    /// Makes this node serve the keyless CA. Installed after start, so `Node::start` (and the
    /// simulator, which runs no CA) is unchanged. Returns false if a CA was already installed.
    pub fn install_ca(&self, ca: Arc<KeylessCa>) -> bool {
        self.ca.set(ca).is_ok()
    }

    /// Makes this node serve the timestamp authority (installed after start, like the CA).
    /// Returns false if one was already installed.
    pub fn install_tsa(&self, tsa: Arc<ca::tsa::TimestampAuthority>) -> bool {
        self.tsa.set(tsa).is_ok()
    }

    /// The timestamp authority, if installed.
    pub fn tsa(&self) -> Option<&Arc<ca::tsa::TimestampAuthority>> {
        self.tsa.get()
    }

    /// Sets the URL clients reach this node at (its configured `api_url`, without a trailing
    /// slash), which documents naming the node's services use. Returns false if already set.
    pub fn set_public_url(&self, url: &str) -> bool {
        self.public_url
            .set(url.trim_end_matches('/').to_owned())
            .is_ok()
    }

    /// The node's public URL, if set.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.get().map(String::as_str)
    }

    /// The keyless CA, if installed.
    pub fn ca(&self) -> Option<&Arc<KeylessCa>> {
        self.ca.get()
    }

    /// Whether `presented` is the admin token, compared in constant time.
    /// Makes `voters` the voters (joint consensus), run by this node, which must lead;
    /// removed voters stay on as learners when `retain`. New voters must already be learners.
    pub async fn change_voters(
        &self,
        voters: BTreeSet<NodeId>,
        retain: bool,
    ) -> Result<(), MembershipError> {
        if voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if !voters.contains(&self.id) {
            return Err(MembershipError::RemovesLeader(self.id));
        }
        self.raft
            .change_membership(voters, retain)
            .await
            .map(|_| ())
            .map_err(|error| MembershipError::Raft(error.to_string()))
    }

    pub fn admin_token_matches(&self, presented: &str) -> bool {
        let (expected, presented) = (self.admin_token.as_bytes(), presented.as_bytes());
        if expected.is_empty() || expected.len() != presented.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    /// The leader's API URL, if a leader is known (this node's own if it leads).
    pub fn leader_url(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let url = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .api_url
            .clone();
        Some((leader, url))
    }

    /// Refreshes the state gauges and renders every metric.
    pub fn render_metrics(&self) -> Result<String, MetricsError> {
        let raft = self.raft.metrics().borrow().clone();
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.metrics.raft_term.set(gauge(raft.current_term));
        self.metrics
            .raft_is_leader
            .set(i64::from(raft.current_leader == Some(self.id)));
        self.metrics
            .raft_applied_index
            .set(gauge(raft.last_applied.map_or(0, |id| id.index)));
        self.metrics
            .raft_log_index
            .set(gauge(raft.last_log_index.unwrap_or(0)));
        for log in self.logs.iter() {
            let size = self
                .reader
                .view()?
                .head(&log.name)?
                .map_or(0, |head| head.tree_size);
            self.metrics
                .tree_size
                .get_or_create(&LogLabel {
                    log: log.name.0.clone(),
                })
                .set(gauge(size));
        }
        Ok(self.metrics.render()?)
    }

    /// Stops Raft (the sequencer stops with it: its proposals fail).
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown");
        }
    }
}

/// Proposes through Raft: commit, apply on this node, and the apply's outcome.
#[derive(Clone)]
struct RaftProposer {
    raft: Raft<TypeConfig>,
    /// The canaries' scratch state (`StateReader::predict`).
    #[cfg(feature = "canaries")]
    scratch: (StateReader, Logs),
}

impl Proposer for RaftProposer {
    async fn propose(&self, command: Command) -> Result<CommandOutcome, ProposeError> {
        #[cfg(feature = "canaries")] // The planted bugs: answer from a scratch apply.
        let predicted = [
            crate::canary::Canary::AckBeforeCommit,
            crate::canary::Canary::SignBeforeCommit,
        ]
        .into_iter()
        .any(crate::canary::is)
        .then(|| self.scratch.0.predict(&self.scratch.1, &command));
        #[cfg(feature = "canaries")] // AckBeforeCommit: the indices before the commit.
        if crate::canary::is(crate::canary::Canary::AckBeforeCommit)
            && self.raft.metrics().borrow().state.is_leader()
        {
            let raft = self.raft.clone();
            tokio::spawn(async move { raft.client_write(command).await });
            return predicted
                .unwrap_or_else(|| Err("no prediction".into()))
                .map_err(ProposeError::Failed);
        }
        match self.raft.client_write(command).await {
            #[cfg(feature = "canaries")] // SignBeforeCommit: the checkpoint before the commit.
            Ok(mut response) if crate::canary::is(crate::canary::Canary::SignBeforeCommit) => {
                if let (
                    CommandOutcome::Appended(batch),
                    Some(Ok(CommandOutcome::Appended(early))),
                ) = (&mut response.data, predicted)
                {
                    (batch.tree_size, batch.checkpoint) = (early.tree_size, early.checkpoint);
                }
                Ok(response.data)
            }
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                let leader = forward.leader_id.zip(forward.leader_node);
                Err(ProposeError::NotLeader(leader))
            }
            Err(error) => Err(ProposeError::Failed(error.to_string())),
        }
    }
}

/// How long a follower waits for the leader when forwarding a write.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps `known` equal to the members (voters and learners) of Raft's current membership, for
/// catch-up; ends when Raft does.
async fn track_members(raft: Raft<TypeConfig>, known: crate::catch_up::KnownMembers) {
    let mut metrics = raft.metrics();
    drop(raft);
    loop {
        let members: Vec<crate::types::NodeAddress> = metrics
            .borrow()
            .membership_config
            .nodes()
            .map(|(_, node)| node.clone())
            .collect();
        if members != known.get() {
            known.set(members);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
