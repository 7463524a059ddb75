//! What a node is told, as opposed to what its environment provides ([`crate::node::Env`]):
//! its identity, logs, bounds and services, loaded from a [`NodeFile`] by
//! [`NodeFile::settings`] or made by the simulator, and handed to [`crate::node::Node::start`].

use std::path::Path;
use std::time::Duration;

use openraft::SnapshotPolicy;

use super::{CaFile, ConfigError, NodeFile, TsaFile};
use crate::sequencer::SequencerConfig;
use crate::state_machine::Logs;
use crate::storage::IndexShape;
use crate::types::{LogName, NodeId};

/// Everything a node is told.
#[derive(Debug)]
pub struct Settings {
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
    /// The URL clients reach this node at, without a trailing slash: the documents naming the
    /// node's services (the trusted root, the signing config) need it.
    pub public_url: Option<String>,
    /// The leaf index's shape (the default, except in the simulator's short runs).
    pub leaf_index: IndexShape,
    /// The keyless CA (and timestamp authority) this node serves, if any.
    pub ca: Option<CaSettings>,
    /// Witness cosigning before publication, if configured.
    pub witnessing: Option<WitnessingConfig>,
}

/// What the `[witnessing]` section asks for.
#[derive(Clone, Debug)]
pub struct WitnessingConfig {
    /// The policy: `log` lines for the logs to witness (by origin and key), `witness` lines
    /// with URLs, groups and the quorum.
    pub policy: tlog::policy::Policy,
    /// Publish checkpoints that miss the quorum (bring-up only; loudly logged).
    pub fail_open: bool,
    /// How long an append waits for a checkpoint covering it to reach the quorum.
    pub append_timeout: Duration,
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

/// Bounds on a public listener's connections, so that slow or idle clients cannot hold the
/// node's sockets and memory: whoever reaches the port can open connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's head. Hyper runs this timer whenever a
    /// connection waits for a request head, also between keep-alive requests, so it is also
    /// how long a keep-alive connection may stay idle.
    pub header_read_timeout: Duration,
    /// Longest a request's body may take to arrive, counted from when its head was read; past
    /// it the request gets a 408 and the connection is closed.
    pub body_read_timeout: Duration,
    /// Most connections open at once; past it a new connection gets a 503 and is closed.
    pub connections_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            connections_max: 4096,
        }
    }
}

/// What a node's keyless CA is made of: loaded from a `[ca]` section ([`CaSettings::load`]), or
/// made by the simulator.
pub struct CaSettings {
    /// The intermediate that signs leaves, and the chain.
    pub authority: ca::cert::Authority,
    /// The certificate log's SCT key.
    pub ct_key: ca::ct::CtKey,
    /// The OpenID issuers whose tokens are accepted.
    pub issuers: Vec<ca::oidc::IssuerConfig>,
    /// Certificates per identity per minute (0: no limit).
    pub requests_per_identity_per_minute: u32,
    /// The log certificates are written to.
    pub log: LogName,
    /// The timestamp authority served beside the CA, if any.
    pub tsa: Option<ca::tsa::TimestampAuthority>,
}

impl std::fmt::Debug for CaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSettings")
            .field("log", &self.log)
            .field("issuers", &self.issuers.len())
            .field("tsa", &self.tsa.is_some())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path, setting: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Invalid {
        setting: setting.into(),
        message: format!("{}: {error}", path.display()),
    })
}

impl CaSettings {
    /// Loads the CA's keys and certificates (and the TSA's, if configured) named by `file`.
    pub fn load(file: &CaFile) -> Result<CaSettings, ConfigError> {
        let invalid = |setting: &str, error: ca::CertError| ConfigError::Invalid {
            setting: setting.into(),
            message: error.to_string(),
        };
        let authority = ca::cert::Authority::load(
            &read(&file.root_cert_file, "ca.root_cert_file")?,
            &read(&file.intermediate_cert_file, "ca.intermediate_cert_file")?,
            &read(&file.intermediate_key_file, "ca.intermediate_key_file")?,
        )
        .map_err(|error| invalid("ca", error))?;
        let ct_key = ca::ct::CtKey::from_pkcs8_pem(&read(&file.ct_key_file, "ca.ct_key_file")?)
            .map_err(|error| invalid("ca.ct_key_file", error))?;
        Ok(CaSettings {
            authority,
            ct_key,
            issuers: file.issuers.clone(),
            requests_per_identity_per_minute: file.requests_per_identity_per_minute,
            log: LogName(file.log.clone()),
            tsa: file.tsa.as_ref().map(load_tsa).transpose()?,
        })
    }
}

/// Loads the timestamp authority of a `[ca.tsa]` section.
fn load_tsa(file: &TsaFile) -> Result<ca::tsa::TimestampAuthority, ConfigError> {
    ca::tsa::TimestampAuthority::load(
        &read(&file.root_cert_file, "ca.tsa.root_cert_file")?,
        &read(&file.cert_file, "ca.tsa.cert_file")?,
        &read(&file.key_file, "ca.tsa.key_file")?,
    )
    .map_err(|error| ConfigError::Invalid {
        setting: "ca.tsa".into(),
        message: error.to_string(),
    })
}

impl NodeFile {
    /// The node's settings, with every file they name read and checked (log keys, the admin
    /// token, the CA's and TSA's keys, the witness policy): a bad one stops the node before its
    /// storage opens.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        Ok(Settings {
            id: self.id,
            logs: self.load_logs()?,
            raft: self.raft_config(),
            sequencer: self.sequencer_config(),
            admin_token: self.load_admin_token()?,
            public_url: Some(self.api_url.trim_end_matches('/').to_owned()),
            leaf_index: IndexShape::default(),
            ca: self.ca.as_ref().map(CaSettings::load).transpose()?,
            witnessing: self.load_witnessing()?,
        })
    }
}
