//! What a node is told, as opposed to what its environment provides ([`crate::node::Env`]):
//! its identity, logs, bounds and services, loaded from a [`NodeFile`] by
//! [`NodeFile::settings`] or made by the simulator, and handed to [`crate::node::Node::start`].

use std::path::Path;
use std::time::Duration;

use openraft::SnapshotPolicy;

use super::{CaFile, ConfigError, NodeFile, TsaFile, parse_utc_ms};
use crate::keyless::{CaMaterial, Next, Rotating};
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
    /// The intermediate that signs leaves with its chain, and the SCT key; and what replaces
    /// them at a time, if configured (`[ca.next]`).
    pub material: Rotating<CaMaterial>,
    /// The OpenID issuers whose tokens are accepted.
    pub issuers: Vec<ca::oidc::IssuerConfig>,
    /// Certificates per identity per minute (0: no limit).
    pub requests_per_identity_per_minute: u32,
    /// The log certificates are written to.
    pub log: LogName,
    /// The timestamp authority served beside the CA, if any, and its successor.
    pub tsa: Option<Rotating<ca::tsa::TimestampAuthority>>,
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
        let current = load_ca_material(
            "ca",
            &file.root_cert_file,
            &file.intermediate_cert_file,
            &file.intermediate_key_file,
            &file.ct_key_file,
        )?;
        let next = match &file.next {
            Some(next) => {
                let from_ms = from_ms(&next.from, "ca.next.from")?;
                let material = load_ca_material(
                    "ca.next",
                    &next.root_cert_file,
                    &next.intermediate_cert_file,
                    &next.intermediate_key_file,
                    &next.ct_key_file,
                )?;
                // A certificate issued at `from` must lie within its intermediate's validity.
                not_before_at_most(
                    material.authority.chain_der()[0],
                    from_ms,
                    "ca.next.intermediate_cert_file",
                )?;
                Some(Next { from_ms, material })
            }
            None => None,
        };
        Ok(CaSettings {
            material: Rotating {
                retired: super::retired::load_retired_cas(&file.retired)?,
                current,
                next,
            },
            issuers: file.issuers.clone(),
            requests_per_identity_per_minute: file.requests_per_identity_per_minute,
            log: LogName(file.log.clone()),
            tsa: file.tsa.as_ref().map(load_tsa).transpose()?,
        })
    }
}

/// A CA's chain and intermediate key, and an SCT key, from the files of section `section`.
fn load_ca_material(
    section: &str,
    root: &Path,
    intermediate: &Path,
    intermediate_key: &Path,
    ct_key: &Path,
) -> Result<CaMaterial, ConfigError> {
    let invalid = |setting: String, error: ca::CertError| ConfigError::Invalid {
        setting,
        message: error.to_string(),
    };
    let authority = ca::cert::Authority::load(
        &read(root, &format!("{section}.root_cert_file"))?,
        &read(intermediate, &format!("{section}.intermediate_cert_file"))?,
        &read(
            intermediate_key,
            &format!("{section}.intermediate_key_file"),
        )?,
    )
    .map_err(|error| invalid(section.to_owned(), error))?;
    let setting = format!("{section}.ct_key_file");
    let ct_key = ca::ct::CtKey::from_pkcs8_pem(&read(ct_key, &setting)?)
        .map_err(|error| invalid(setting, error))?;
    Ok(CaMaterial { authority, ct_key })
}

/// A `from` setting as milliseconds since the epoch.
fn from_ms(text: &str, setting: &str) -> Result<u64, ConfigError> {
    parse_utc_ms(text).ok_or_else(|| ConfigError::Invalid {
        setting: setting.into(),
        message: format!("{text:?}: {}", super::UTC_FORMAT),
    })
}

/// Refuses a certificate that is not yet valid at `unix_ms`.
fn not_before_at_most(der: &[u8], unix_ms: u64, setting: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        setting: setting.into(),
        message,
    };
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|error| invalid(error.to_string()))?;
    let not_before = certificate.validity().not_before.timestamp();
    if i128::from(not_before) * 1000 > i128::from(unix_ms) {
        return Err(invalid(format!(
            "the certificate is valid only from {not_before} (unix seconds), after `from`"
        )));
    }
    Ok(())
}

/// Loads the timestamp authority of a `[ca.tsa]` section, and its `[ca.tsa.next]`.
fn load_tsa(file: &TsaFile) -> Result<Rotating<ca::tsa::TimestampAuthority>, ConfigError> {
    let load = |section: &str, root: &Path, cert: &Path, key: &Path| {
        ca::tsa::TimestampAuthority::load(
            &read(root, &format!("{section}.root_cert_file"))?,
            &read(cert, &format!("{section}.cert_file"))?,
            &read(key, &format!("{section}.key_file"))?,
        )
        .map_err(|error| ConfigError::Invalid {
            setting: section.into(),
            message: error.to_string(),
        })
    };
    let current = load(
        "ca.tsa",
        &file.root_cert_file,
        &file.cert_file,
        &file.key_file,
    )?;
    let next = match &file.next {
        Some(next) => {
            let from_ms = from_ms(&next.from, "ca.tsa.next.from")?;
            let material = load(
                "ca.tsa.next",
                &next.root_cert_file,
                &next.cert_file,
                &next.key_file,
            )?;
            not_before_at_most(material.chain_der()[0], from_ms, "ca.tsa.next.cert_file")?;
            Some(Next { from_ms, material })
        }
        None => None,
    };
    Ok(Rotating {
        retired: super::retired::load_retired_tsas(&file.retired)?,
        current,
        next,
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
