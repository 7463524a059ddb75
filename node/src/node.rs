//! One Cairn node, assembled: Raft over the redb stores and a network, the sequencer that
//! proposes through it, the state reader that serves reads, the keyless CA and witnessing, and
//! the metrics.
//!
//! [`Node::start`] takes what the node is told ([`Settings`]) and what its environment provides
//! ([`Env`]: clock, blocking runner, disks, Raft network, bundle source, witness transport,
//! the client that forwards writes, the OIDC fetcher). Production builds its environment
//! with [`Env::production`]; the simulator builds its own. Nothing else differs.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, RaftNetworkFactory};

use crate::catch_up::SharedBundleSource;
use crate::config::Settings;
use crate::env::{Blocking, Checks, SharedClock, SystemClock};
use crate::keyless::{KeylessCa, Rotating};
use crate::lifecycle::{Lifecycle, RotationError, RotationRecord};
use crate::metrics::{LogLabel, Metrics, NodeLabel};
use crate::network::forward::Forwarder;
use crate::network::{ClusterClient, HttpNetwork, cluster_client, http_client};
use crate::sequencer::{BatchProofs, ProposeError, Proposer, Sequencer};
use crate::state_machine::Logs;
use crate::storage::{Disks, StateReader, Stores};
use crate::tls::ClusterTls;
use crate::types::{Command, CommandOutcome, LogName, NodeId, Rotation, TypeConfig};
use crate::witnessing::{Committed, WitnessTransport, Witnessing};

/// Everything a node's environment provides: the one seam between production and the
/// simulator.
pub struct Env<N> {
    /// Wall-clock time for timestamps that end up in replicated state and responses.
    pub clock: SharedClock,
    /// Where blocking storage work runs.
    pub blocking: Blocking,
    /// Where the two databases live.
    pub disks: Disks,
    /// How Raft messages reach the other members.
    pub raft_network: N,
    /// Where a snapshot install fetches the leaves it lacks.
    pub bundles: SharedBundleSource,
    /// The client a follower relays client writes to the leader's cluster listener with
    /// (mutual TLS); without one (the simulator's clients reach nodes directly), a follower
    /// answers that no leader is known.
    pub forward: Option<ClusterClient>,
    /// How `add-checkpoint` requests reach witnesses; needed when the settings name witnessing.
    pub witness_transport: Option<Arc<dyn WitnessTransport>>,
    /// How the CA fetches OpenID discovery documents and key sets.
    pub oidc_fetch: Arc<dyn ca::oidc::Fetch>,
}

impl<N> std::fmt::Debug for Env<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("blocking", &self.blocking)
            .field("disks", &self.disks)
            .finish_non_exhaustive()
    }
}

impl Env<HttpNetwork> {
    /// A production node's environment: the system clock, tokio's blocking pool, databases in
    /// `data_dir`, Raft, catch-up and write forwarding over mutual TLS with `tls`, HTTP(S) for
    /// witnesses and OpenID providers.
    pub fn production(data_dir: &Path, tls: &ClusterTls) -> Env<HttpNetwork> {
        let http = http_client();
        let cluster = cluster_client(tls);
        Env {
            clock: Arc::new(SystemClock),
            blocking: Blocking::Pool,
            disks: Disks::Dir(data_dir.to_path_buf()),
            bundles: Arc::new(crate::network::bundles::HttpBundleSource::new(
                cluster.clone(),
            )),
            raft_network: HttpNetwork::new(cluster.clone()),
            witness_transport: Some(Arc::new(crate::witnessing::HttpTransport(http))),
            forward: Some(cluster),
            oidc_fetch: Arc::new(crate::network::fetch::HttpFetch::new()),
        }
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
    /// The databases could not be opened.
    #[error("opening storage: {0}")]
    Disk(#[from] crate::storage::DiskError),
    /// Raft failed to start over the stores.
    #[error("starting raft: {0}")]
    Raft(String),
    /// The settings name witnessing but the environment has no witness transport.
    #[error("witnessing is configured but the environment has no witness transport")]
    NoWitnessTransport,
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// This node does not lead; the leader's API URL, if one is known.
    #[error("this node does not lead; the leader is {}", .0.as_deref().unwrap_or("not known"))]
    NotLeader(Option<String>),
    /// The rotation breaks a rule of the configuration or the state.
    #[error(transparent)]
    Invalid(RotationError),
    /// Every replica refused it (another rotation came first).
    #[error("refused: {0}")]
    Refused(String),
    /// It was proposed but no outcome came (leadership lost, shutdown): it may have applied.
    #[error("outcome unknown: {0}")]
    Failed(String),
}

/// A running node.
pub struct Node {
    id: NodeId,
    raft: Raft<TypeConfig>,
    /// Pools submissions into batches (effective on the leader).
    sequencer: Sequencer,
    /// Reads of committed state, off the consensus path.
    reader: StateReader,
    logs: Logs,
    /// Relays writes to the leader's cluster listener, if the environment can.
    forward: Option<ClusterClient>,
    /// Relays verified leaves to the leader in batches, over `forward`.
    forwarder: Option<Arc<Forwarder>>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    blocking: Blocking,
    /// Where client signature checks run: on the request's task, bounded (past the bound a
    /// request is refused with 503 rather than queued).
    checks: Checks,
    admin_token: String,
    public_url: Option<String>,
    /// Without a CA the CA routes answer 404.
    ca: Option<Arc<KeylessCa>>,
    /// Without a TSA the TSA routes answer 404 and the trust documents list none.
    tsa: Option<Arc<Rotating<ca::tsa::TimestampAuthority>>>,
    /// Witness cosigning and quorum publication, when configured, and its loop (stopped with
    /// the node).
    witnessing: Option<(Arc<Witnessing>, tokio::task::AbortHandle)>,
    /// The data directory, when the disks are one (its free space is a metric).
    data_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the stores on `env`'s disks, starts Raft over them and `env`'s network, the
    /// sequencer over Raft, and the CA and witnessing the settings name.
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        settings: Settings,
        env: Env<N>,
    ) -> Result<Arc<Node>, StartError> {
        let raft_config = Arc::new(
            settings
                .raft
                .validate()
                .map_err(|error| StartError::Config(error.to_string()))?,
        );
        settings
            .sequencer
            .validate()
            .map_err(|error| StartError::Config(error.to_string()))?;
        if settings.witnessing.is_some() && env.witness_transport.is_none() {
            return Err(StartError::NoWitnessTransport);
        }
        let data_dir = match &env.disks {
            Disks::Dir(dir) => Some(dir.clone()),
            Disks::Backends { .. } => None,
        };
        let Stores { log, state, reader } = Stores::open(
            env.disks,
            settings.logs.clone(),
            &env.blocking,
            env.bundles,
            settings.leaf_index,
        )?;
        let known = state.known_members();
        let raft = Raft::new(settings.id, raft_config, env.raft_network, log, state)
            .await
            .map_err(|error| StartError::Raft(error.to_string()))?;
        tokio::spawn(track_members(raft.clone(), known));
        let metrics = Arc::new(Metrics::default());
        // The leader answers each batch's submissions with proofs made once for the batch.
        let proof_reader = reader.clone();
        let blocking = env.blocking.clone();
        let proofs: BatchProofs = Arc::new(move |log, indices, tree_size| {
            let (reader, blocking) = (proof_reader.clone(), blocking.clone());
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
            settings.sequencer,
            RaftProposer {
                raft: raft.clone(),
                #[cfg(feature = "canaries")]
                scratch: (reader.clone(), settings.logs.clone()),
            },
            Arc::clone(&env.clock),
            Arc::clone(&metrics),
            Some(proofs),
        );
        let (ca, tsa) = match settings.ca {
            Some(ca) => (
                Some(Arc::new(KeylessCa::new(
                    ca.material,
                    ca.issuers,
                    ca.requests_per_identity_per_minute,
                    ca.log,
                    env.oidc_fetch,
                ))),
                ca.tsa.map(Arc::new),
            ),
            None => (None, None),
        };
        // Witnessing runs beside the node, outside Raft, reading only committed state; spawned
        // last, after everything else this start spawns.
        let witnessing =
            settings
                .witnessing
                .zip(env.witness_transport)
                .map(|(config, transport)| {
                    let witnessing =
                        Arc::new(Witnessing::new(config, settings.logs.iter(), transport));
                    let committed = Committed {
                        id: settings.id,
                        raft: raft.metrics(),
                        reader: reader.clone(),
                        blocking: env.blocking.clone(),
                        logs: settings.logs.clone(),
                        metrics: Arc::clone(&metrics),
                    };
                    let task = tokio::spawn(Arc::clone(&witnessing).run(committed)).abort_handle();
                    (witnessing, task)
                });
        // Only where writes can be relayed: the simulator's nodes have no relay and start no
        // relay tasks.
        let forwarder = env.forward.clone().map(|client| {
            let (id, watch) = (settings.id, raft.metrics());
            let leader = move || leader_of(&watch.borrow()).filter(|(leader, _)| *leader != id);
            Forwarder::new(client, leader, Arc::clone(&metrics))
        });
        Ok(Arc::new(Node {
            id: settings.id,
            raft,
            sequencer,
            reader,
            logs: settings.logs,
            forward: env.forward,
            forwarder,
            clock: env.clock,
            metrics,
            admin_token: settings.admin_token,
            checks: Checks::per_core(),
            blocking: env.blocking,
            public_url: settings.public_url,
            ca,
            tsa,
            witnessing,
            data_dir,
        }))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The sequencer, which pools submissions into batches (effective on the leader).
    pub fn sequencer(&self) -> &Sequencer {
        &self.sequencer
    }

    /// Reads of committed state.
    pub fn reader(&self) -> &StateReader {
        &self.reader
    }

    /// The logs the cluster hosts.
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// The node's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where blocking storage reads run.
    pub fn blocking(&self) -> &Blocking {
        &self.blocking
    }

    /// Where client signature checks run (bounded; see [`Checks`]).
    pub fn checks(&self) -> &Checks {
        &self.checks
    }

    /// The client that relays writes to the leader's cluster listener, if the environment has
    /// one.
    pub fn forward_client(&self) -> Option<&ClusterClient> {
        self.forward.as_ref()
    }

    /// The batching relay of verified leaves to the leader, if the environment can relay.
    pub fn forwarder(&self) -> Option<&Arc<Forwarder>> {
        self.forwarder.as_ref()
    }

    /// Witness cosigning and quorum publication, if configured.
    pub fn witnessing(&self) -> Option<&Arc<Witnessing>> {
        self.witnessing.as_ref().map(|(witnessing, _)| witnessing)
    }

    /// The timestamp authority, if configured.
    pub fn tsa(&self) -> Option<&Arc<Rotating<ca::tsa::TimestampAuthority>>> {
        self.tsa.as_ref()
    }

    /// The node's public URL, if set.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The keyless CA, if configured.
    pub fn ca(&self) -> Option<&Arc<KeylessCa>> {
        self.ca.as_ref()
    }

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

    /// The rotations this node has applied (`crate::lifecycle`).
    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.reader.lifecycle()
    }

    /// The log of `log`'s family that takes appends now (`log` itself until it is rotated).
    pub fn active_log(&self, log: &LogName) -> LogName {
        self.lifecycle().active(log).clone()
    }

    /// Freezes `log` and opens `successor` through Raft, run by this node, which must lead.
    /// Checked against this node's configuration and state first; every replica checks again
    /// as it applies.
    pub async fn rotate(
        &self,
        log: &LogName,
        successor: &LogName,
    ) -> Result<RotationRecord, RotateError> {
        self.lifecycle()
            .check_rotation(&self.logs, log, successor)
            .map_err(RotateError::Invalid)?;
        let command = Command::Rotate(Rotation {
            log: log.clone(),
            successor: successor.clone(),
            timestamp_unix_ms: self.clock.now_unix_ms(),
        });
        match self.raft.client_write(command).await {
            Ok(response) => match response.data {
                CommandOutcome::Rotated(record) => Ok(record),
                CommandOutcome::Refused(reason) => Err(RotateError::Refused(reason)),
                other => Err(RotateError::Failed(format!("applied as {other:?}"))),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => Err(
                RotateError::NotLeader(forward.leader_node.map(|node| node.api_url)),
            ),
            Err(error) => Err(RotateError::Failed(error.to_string())),
        }
    }

    /// Whether `presented` is the admin token, compared in constant time.
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
        self.leader_address()
            .map(|(leader, address)| (leader, address.api_url))
    }

    /// The leader's addresses, if a leader is known (this node's own if it leads).
    pub fn leader_address(&self) -> Option<(NodeId, crate::types::NodeAddress)> {
        leader_of(&self.raft.metrics().borrow())
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
        self.metrics
            .raft_has_leader
            .set(i64::from(raft.current_leader.is_some()));
        self.metrics
            .raft_is_learner
            .set(i64::from(raft.state == openraft::ServerState::Learner));
        self.metrics
            .raft_millis_since_quorum_ack
            .set(raft.millis_since_quorum_ack.map_or(-1, gauge));
        // Only current members, and only on the leader: a series per removed member or per
        // former leadership would alert forever.
        self.metrics.raft_member_lag_entries.clear();
        let last = raft.last_log_index.unwrap_or(0);
        for (member, matched) in raft.replication.iter().flatten() {
            let lag = match matched {
                Some(matched) => last.saturating_sub(matched.index),
                None => last + 1,
            };
            self.metrics
                .raft_member_lag_entries
                .get_or_create(&NodeLabel {
                    node: member.to_string(),
                })
                .set(gauge(lag));
        }
        if let Some(dir) = &self.data_dir {
            match crate::storage::disk_space(dir) {
                Ok((available, size)) => {
                    self.metrics.data_disk_available_bytes.set(gauge(available));
                    self.metrics.data_disk_size_bytes.set(gauge(size));
                }
                Err(error) => {
                    tracing::warn!(%error, dir = %dir.display(), "reading free disk space");
                }
            }
        }
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

    /// Resolves when the Raft core has stopped on its own (a storage error: a full or failing
    /// disk), with the reason; it never restarts.
    pub async fn raft_stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        let stopped = metrics.wait_for(|m| m.running_state.is_err()).await;
        let reason = stopped.map_or_else(
            |_| "raft stopped".to_string(),
            |m| format!("{:?}", m.running_state),
        );
        tracing::error!(%reason, "raft stopped");
        reason
    }

    /// Stops witnessing and Raft (the sequencer stops with it: its proposals fail).
    pub async fn shutdown(&self) {
        if let Some((_, task)) = &self.witnessing {
            task.abort();
        }
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.witnessing {
            task.abort();
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

/// The leader `metrics` name and its addresses, if it is known and in the membership.
fn leader_of(
    metrics: &openraft::RaftMetrics<NodeId, crate::types::NodeAddress>,
) -> Option<(NodeId, crate::types::NodeAddress)> {
    let leader = metrics.current_leader?;
    let address = metrics
        .membership_config
        .membership()
        .get_node(&leader)?
        .clone();
    Some((leader, address))
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
