//! A node's configuration file (TOML) and the cluster material `cairn-node init` writes.
//!
//! Relative paths in a configuration file are relative to the file's own directory, so a
//! cluster directory can be moved or copied whole. Every section but the node's identity has
//! defaults; `deny_unknown_fields` everywhere turns a misspelt setting into an error at startup
//! instead of a silently ignored line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod check;
mod overrides;
mod retired;
mod settings;

pub use overrides::{OVERRIDABLE, Overridable};
pub use retired::{RetiredCaFile, RetiredTsaFile, ct_public_key_pem, ct_public_key_spki};

pub use settings::{CaSettings, ConnectionLimits, Settings, WitnessingConfig, default_raft_config};

use crate::sequencer::SequencerConfig;
use crate::state_machine::{LogConfig, Logs};
use crate::types::{LogName, NodeId};

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or missing settings.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A setting has a value that cannot work.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting, as written in the file (`logs[1].origin`).
        setting: String,
        /// Why the value cannot work.
        message: String,
    },
}

/// One node's configuration file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// This node's id in the cluster (never reused).
    pub id: NodeId,
    /// The address the HTTP API listens on.
    pub listen: SocketAddr,
    /// The public URL clients (and nodes forwarding client writes) use to reach this node.
    pub api_url: String,
    /// The address the cluster listener (Raft between nodes, mutual TLS) listens on.
    pub cluster_listen: SocketAddr,
    /// The `https://` URL other nodes send Raft traffic to; its host is named in the node
    /// certificate.
    pub cluster_url: String,
    /// The cluster CA certificate (PEM): the only root the cluster listener and the Raft client
    /// trust.
    pub cluster_ca_file: PathBuf,
    /// This node's certificate (PEM), issued by the cluster CA.
    pub cluster_cert_file: PathBuf,
    /// This node's certificate's private key (PEM, PKCS#8).
    pub cluster_key_file: PathBuf,
    /// Where the node keeps its databases.
    pub data_dir: PathBuf,
    /// A file holding the admin API's bearer token.
    pub admin_token_file: PathBuf,
    /// The logs the cluster hosts; identical on every node.
    pub logs: Vec<LogFile>,
    /// Batching bounds.
    #[serde(default)]
    pub sequencer: SequencerFile,
    /// Raft timing.
    #[serde(default)]
    pub raft: RaftFile,
    /// Bounds on the public listener's connections.
    #[serde(default)]
    pub http: HttpFile,
    /// The keyless CA; without this section the node serves no CA routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaFile>,
    /// Witness cosigning before publication (`node::witnessing`); absent: no witnesses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessing: Option<WitnessingFile>,
}

/// The keyless CA section (`[ca]`): its key material, the log it writes, its bounds and the
/// OIDC issuers it accepts tokens from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CaFile {
    /// The root certificate (PEM): the trust anchor of every certificate the CA issues.
    pub root_cert_file: PathBuf,
    /// The intermediate certificate (PEM) that signs leaves, issued by the root.
    pub intermediate_cert_file: PathBuf,
    /// The intermediate's private key (PEM, PKCS#8, ECDSA P-256).
    pub intermediate_key_file: PathBuf,
    /// The certificate log's SCT key (PEM, PKCS#8, ECDSA P-256): CT requires ECDSA or RSA,
    /// and the log's checkpoint key is Ed25519.
    pub ct_key_file: PathBuf,
    /// The log certificates are written to.
    #[serde(default = "default_ca_log")]
    pub log: String,
    /// Most certificate requests per identity per minute (past it, 429); 0 for no limit.
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_identity_per_minute: u32,
    /// The OIDC issuers whose tokens are accepted, matched exactly against `iss`.
    #[serde(default)]
    pub issuers: Vec<ca::oidc::IssuerConfig>,
    /// The RFC 3161 timestamp authority served beside the CA (`[ca.tsa]`); without it the
    /// signing config offers no TSA and no Rekor v2 API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa: Option<TsaFile>,
    /// The material that replaces the intermediate and the SCT key at `from` (`[ca.next]`,
    /// written by `cairn-node ca prepare`; docs/decisions/0012-ca-key-rotation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<CaNextFile>,
    /// CAs and SCT keys that signed before, public parts only (`[[ca.retired]]`, written by
    /// `cairn-node ca promote`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredCaFile>,
}

/// The `[ca.next]` section: a CA (root and intermediate) and an SCT key that take over from
/// the current ones at `from`, and are published in the trusted root as soon as configured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CaNextFile {
    /// When the node starts issuing with this material: an RFC 3339 UTC time
    /// (`2026-12-08T00:00:00Z`), by the node's clock.
    pub from: String,
    /// The root certificate (PEM) that issued the next intermediate.
    pub root_cert_file: PathBuf,
    /// The next intermediate certificate (PEM).
    pub intermediate_cert_file: PathBuf,
    /// The next intermediate's private key (PEM, PKCS#8, ECDSA P-256).
    pub intermediate_key_file: PathBuf,
    /// The next SCT key (PEM, PKCS#8, ECDSA P-256).
    pub ct_key_file: PathBuf,
}

/// The timestamp authority section (`[ca.tsa]`): its certificates and signing key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TsaFile {
    /// The TSA's root certificate (PEM): the trust anchor clients get in the trusted root.
    pub root_cert_file: PathBuf,
    /// The signing certificate (PEM), issued by the root, extended key usage timeStamping.
    pub cert_file: PathBuf,
    /// The signing certificate's private key (PEM, PKCS#8, ECDSA P-256).
    pub key_file: PathBuf,
    /// The TSA that takes over at `from` (`[ca.tsa.next]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<TsaNextFile>,
    /// Timestamp authorities that signed before, public parts only (`[[ca.tsa.retired]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredTsaFile>,
}

/// The `[ca.tsa.next]` section: a timestamp authority that signs from `from` on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TsaNextFile {
    /// When the node starts timestamping with it: an RFC 3339 UTC time, by the node's clock.
    pub from: String,
    /// Its root certificate (PEM).
    pub root_cert_file: PathBuf,
    /// Its signing certificate (PEM), issued by that root.
    pub cert_file: PathBuf,
    /// The signing certificate's private key (PEM, PKCS#8, ECDSA P-256).
    pub key_file: PathBuf,
}

fn default_ca_log() -> String {
    "certificates".into()
}

fn default_requests_per_minute() -> u32 {
    60
}

/// The `[witnessing]` section: which witnesses cosign, and the quorum publication needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessingFile {
    /// A C2SP tlog-policy file: a `log` line per witnessed log (its origin and key), `witness`
    /// lines with the witnesses' URLs, groups, and the quorum.
    pub policy_file: PathBuf,
    /// Publish checkpoints that miss the quorum: for bring-up only, logged loudly.
    #[serde(default)]
    pub fail_open: bool,
    /// How long an append waits for a checkpoint covering it to reach the quorum.
    #[serde(default = "default_append_timeout_ms")]
    pub append_timeout_ms: u64,
}

fn default_append_timeout_ms() -> u64 {
    10_000
}

/// One log in a configuration file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// The log's short name (`artifacts`, `certificates`).
    pub name: String,
    /// The checkpoint origin (a schemeless URL: no spaces, no `+`).
    pub origin: String,
    /// A file holding the checkpoint key in the C2SP/Go note private-key form
    /// (`PRIVATE+KEY+<origin>+<keyid>+<base64>`).
    pub key_file: PathBuf,
    /// The log this one succeeds: it takes no appends until `cairn-node log rotate` freezes
    /// that log and opens this one (docs/decisions/0010-log-lifecycle.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeds: Option<String>,
}

/// The sequencer section; see [`SequencerConfig`] for what each bound does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SequencerFile {
    /// Most leaves per batch.
    pub batch_leaves_max: usize,
    /// Most bytes per batch.
    pub batch_bytes_max: usize,
    /// Longest a submission waits for its batch, in milliseconds.
    pub batch_age_ms: u64,
    /// Most submissions waiting; past it, 429.
    pub pool_leaves_max: usize,
    /// Most batches in flight.
    pub proposals_in_flight_max: usize,
    /// Longest a batch waits for its outcome, in milliseconds.
    pub propose_timeout_ms: u64,
}

impl Default for SequencerFile {
    fn default() -> SequencerFile {
        let defaults = SequencerConfig::default();
        SequencerFile {
            batch_leaves_max: defaults.batch_leaves_max,
            batch_bytes_max: defaults.batch_bytes_max,
            batch_age_ms: u64::try_from(defaults.batch_age_max.as_millis()).unwrap_or(u64::MAX),
            pool_leaves_max: defaults.pool_leaves_max,
            proposals_in_flight_max: defaults.proposals_in_flight_max,
            propose_timeout_ms: u64::try_from(defaults.propose_timeout.as_millis())
                .unwrap_or(u64::MAX),
        }
    }
}

/// The Raft section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftFile {
    /// Leader heartbeat interval, in milliseconds.
    pub heartbeat_ms: u64,
    /// Shortest silence before a follower stands for election, in milliseconds.
    pub election_timeout_min_ms: u64,
    /// Longest silence before a follower stands for election, in milliseconds.
    pub election_timeout_max_ms: u64,
    /// Take a snapshot (and allow purging the Raft log) every this many entries.
    pub snapshot_every_entries: u64,
    /// Raft entries kept after a snapshot, for followers a little behind; one further behind
    /// installs the snapshot and fetches the leaves it lacks.
    pub snapshot_keep_entries: u64,
}

impl Default for RaftFile {
    fn default() -> RaftFile {
        let defaults = default_raft_config();
        RaftFile {
            heartbeat_ms: defaults.heartbeat_interval,
            election_timeout_min_ms: defaults.election_timeout_min,
            election_timeout_max_ms: defaults.election_timeout_max,
            snapshot_every_entries: 10_000,
            snapshot_keep_entries: defaults.max_in_snapshot_log_to_keep,
        }
    }
}

/// The `[http]` section: bounds on the public listener's connections; see
/// [`ConnectionLimits`] for what each does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFile {
    /// Longest a client may take to send a request's head (and a keep-alive connection may
    /// stay idle), in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Longest a request body may take to arrive once its head is read, in milliseconds.
    pub body_read_timeout_ms: u64,
    /// Most connections open at once; past it, new ones get a 503 and are closed.
    pub connections_max: usize,
    /// Appends (Rekor v2 and v1 entries) per client address per minute; past it, 429. 0: no
    /// limit (see `rate_limit`).
    pub writes_per_minute: u32,
    /// Most appends a client address may send at once before the rate applies.
    pub writes_burst: u32,
    /// Certificate requests per client address per minute; 0: no limit.
    pub certificates_per_minute: u32,
    /// Most certificate requests a client address may send at once.
    pub certificates_burst: u32,
    /// Most client addresses whose buckets are kept, per class (oldest idle evicted first).
    pub client_addresses_max: usize,
    /// Proxies (addresses or `address/bits` ranges) whose `X-Forwarded-For` names the client
    /// the limits apply to; empty: the header is never believed.
    pub trusted_proxies: Vec<String>,
    /// TLS on the public listener (`[http.tls]`); absent: plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<PublicTlsFile>,
}

/// The `[http.tls]` section: the public listener's certificate, re-read when the files change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PublicTlsFile {
    /// The certificate chain (PEM): the server's certificate first, then intermediates.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl Default for HttpFile {
    fn default() -> HttpFile {
        let defaults = ConnectionLimits::default();
        let limits = crate::rate_limit::ClientLimits::default();
        HttpFile {
            header_read_timeout_ms: u64::try_from(defaults.header_read_timeout.as_millis())
                .unwrap_or(u64::MAX),
            body_read_timeout_ms: u64::try_from(defaults.body_read_timeout.as_millis())
                .unwrap_or(u64::MAX),
            connections_max: defaults.connections_max,
            writes_per_minute: limits.writes.per_minute,
            writes_burst: limits.writes.burst,
            certificates_per_minute: limits.certificates.per_minute,
            certificates_burst: limits.certificates.burst,
            client_addresses_max: limits.addresses_max,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

impl NodeFile {
    /// Reads and checks a configuration file, resolving its relative paths.
    pub fn load(path: &Path) -> Result<NodeFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file: NodeFile = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.data_dir = base.join(&file.data_dir);
        file.admin_token_file = base.join(&file.admin_token_file);
        file.cluster_ca_file = base.join(&file.cluster_ca_file);
        file.cluster_cert_file = base.join(&file.cluster_cert_file);
        file.cluster_key_file = base.join(&file.cluster_key_file);
        for log in &mut file.logs {
            log.key_file = base.join(&log.key_file);
        }
        if let Some(ca) = &mut file.ca {
            ca.root_cert_file = base.join(&ca.root_cert_file);
            ca.intermediate_cert_file = base.join(&ca.intermediate_cert_file);
            ca.intermediate_key_file = base.join(&ca.intermediate_key_file);
            ca.ct_key_file = base.join(&ca.ct_key_file);
            if let Some(tsa) = &mut ca.tsa {
                tsa.root_cert_file = base.join(&tsa.root_cert_file);
                tsa.cert_file = base.join(&tsa.cert_file);
                tsa.key_file = base.join(&tsa.key_file);
                if let Some(next) = &mut tsa.next {
                    next.root_cert_file = base.join(&next.root_cert_file);
                    next.cert_file = base.join(&next.cert_file);
                    next.key_file = base.join(&next.key_file);
                }
            }
            if let Some(next) = &mut ca.next {
                next.root_cert_file = base.join(&next.root_cert_file);
                next.intermediate_cert_file = base.join(&next.intermediate_cert_file);
                next.intermediate_key_file = base.join(&next.intermediate_key_file);
                next.ct_key_file = base.join(&next.ct_key_file);
            }
            retired::resolve(ca, base);
        }
        if let Some(witnessing) = &mut file.witnessing {
            witnessing.policy_file = base.join(&witnessing.policy_file);
        }
        if let Some(tls) = &mut file.http.tls {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        file.check()?;
        Ok(file)
    }

    /// Writes the file as TOML.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|error| ConfigError::Invalid {
            setting: "config".into(),
            message: error.to_string(),
        })?;
        write_file(path, text.as_bytes())
    }

    /// The logs, with their keys read from their key files.
    pub fn load_logs(&self) -> Result<Logs, ConfigError> {
        let mut configs = Vec::new();
        for (position, log) in self.logs.iter().enumerate() {
            let text = read_secret(&log.key_file)?;
            let signer =
                tlog::keys::Ed25519Signer::from_private_key(text.trim()).map_err(|error| {
                    ConfigError::Invalid {
                        setting: format!("logs[{position}].key_file"),
                        message: format!("{}: {error}", log.key_file.display()),
                    }
                })?;
            if tlog::note::NoteSigner::name(&signer) != log.origin {
                return Err(ConfigError::Invalid {
                    setting: format!("logs[{position}].key_file"),
                    message: format!(
                        "key is named {:?}, the log's origin is {:?}",
                        tlog::note::NoteSigner::name(&signer),
                        log.origin
                    ),
                });
            }
            configs.push(LogConfig {
                name: LogName(log.name.clone()),
                origin: log.origin.clone(),
                signing_key: signer.signing_key().clone(),
                succeeds: log.succeeds.clone().map(LogName),
            });
        }
        Ok(Logs::new(configs))
    }

    /// The witnessing settings, with the policy read and parsed; `None` without a section.
    pub fn load_witnessing(&self) -> Result<Option<WitnessingConfig>, ConfigError> {
        let Some(witnessing) = &self.witnessing else {
            return Ok(None);
        };
        let text =
            std::fs::read_to_string(&witnessing.policy_file).map_err(|source| ConfigError::Io {
                path: witnessing.policy_file.clone(),
                source,
            })?;
        let policy = tlog::policy::Policy::parse(&text).map_err(|error| ConfigError::Invalid {
            setting: "witnessing.policy_file".into(),
            message: format!("{}: {error}", witnessing.policy_file.display()),
        })?;
        Ok(Some(WitnessingConfig {
            policy,
            fail_open: witnessing.fail_open,
            append_timeout: std::time::Duration::from_millis(witnessing.append_timeout_ms),
        }))
    }

    /// The admin token, from its file.
    pub fn load_admin_token(&self) -> Result<String, ConfigError> {
        let token = read_secret(&self.admin_token_file)?.trim().to_string();
        if token.len() < 32 {
            return Err(ConfigError::Invalid {
                setting: "admin_token_file".into(),
                message: "the token must be at least 32 characters".into(),
            });
        }
        Ok(token)
    }

    /// The sequencer bounds.
    pub fn sequencer_config(&self) -> SequencerConfig {
        SequencerConfig {
            batch_leaves_max: self.sequencer.batch_leaves_max,
            batch_bytes_max: self.sequencer.batch_bytes_max,
            batch_age_max: Duration::from_millis(self.sequencer.batch_age_ms),
            pool_leaves_max: self.sequencer.pool_leaves_max,
            proposals_in_flight_max: self.sequencer.proposals_in_flight_max,
            propose_timeout: Duration::from_millis(self.sequencer.propose_timeout_ms),
        }
    }

    /// The public listener's connection bounds.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.http.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.http.body_read_timeout_ms),
            connections_max: self.http.connections_max,
        }
    }

    /// The public listener's limits per client address, checked: a limited class needs a
    /// burst of at least 1, the table at least one address, and each proxy must parse.
    pub fn client_limits(&self) -> Result<crate::rate_limit::ClientLimits, ConfigError> {
        use crate::rate_limit::{ClientLimits, Rate, TrustedProxies};
        let http = &self.http;
        let invalid = |setting: &str, message: String| ConfigError::Invalid {
            setting: format!("http.{setting}"),
            message,
        };
        for (rate, burst, name) in [
            (http.writes_per_minute, http.writes_burst, "writes_burst"),
            (
                http.certificates_per_minute,
                http.certificates_burst,
                "certificates_burst",
            ),
        ] {
            if rate > 0 && burst == 0 {
                return Err(invalid(name, "must be at least 1 when the rate is".into()));
            }
        }
        if http.client_addresses_max == 0 {
            return Err(invalid("client_addresses_max", "must be at least 1".into()));
        }
        let trusted_proxies = TrustedProxies::parse(&http.trusted_proxies)
            .map_err(|message| invalid("trusted_proxies", message))?;
        Ok(ClientLimits {
            writes: Rate {
                per_minute: http.writes_per_minute,
                burst: http.writes_burst,
            },
            certificates: Rate {
                per_minute: http.certificates_per_minute,
                burst: http.certificates_burst,
            },
            addresses_max: http.client_addresses_max,
            trusted_proxies,
        })
    }

    /// The public listener's options: connection bounds, limits per client address, and TLS
    /// with its certificate read and checked (`[http.tls]`).
    pub fn public_options(&self) -> Result<crate::http::PublicOptions, ConfigError> {
        let invalid = |error: crate::tls::TlsError| ConfigError::Invalid {
            setting: "http.tls".into(),
            message: error.to_string(),
        };
        let tls = self
            .http
            .tls
            .as_ref()
            .map(|tls| crate::tls::public::PublicTls::load(&tls.cert_file, &tls.key_file))
            .transpose()
            .map_err(invalid)?
            .map(std::sync::Arc::new);
        crate::http::PublicOptions::new(self.connection_limits(), self.client_limits()?, tls)
            .map_err(invalid)
    }

    /// The Raft configuration.
    pub fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            heartbeat_interval: self.raft.heartbeat_ms,
            election_timeout_min: self.raft.election_timeout_min_ms,
            election_timeout_max: self.raft.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.raft.snapshot_every_entries,
            ),
            max_in_snapshot_log_to_keep: self.raft.snapshot_keep_entries,
            ..default_raft_config()
        }
    }
}

/// What a `from` time must look like.
const UTC_FORMAT: &str = "want an RFC 3339 UTC time after 1970, like 2026-12-08T00:00:00Z";

/// An RFC 3339 UTC time (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`) as milliseconds since the epoch;
/// `None` for anything else (other offsets included: one spelling, no ambiguity).
pub fn parse_utc_ms(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = bytes.get(range)?;
        part.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if bytes.len() < 20
        || !separators.iter().all(|&(at, want)| bytes[at] == want)
        || !matches!(bytes[10], b'T' | b't')
        || !matches!(bytes[bytes.len() - 1], b'Z' | b'z')
    {
        return None;
    }
    let millis = match &bytes[19..bytes.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if !fraction.is_empty() && fraction.len() <= 9 => {
            if !fraction.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // Milliseconds: the first three digits, padded with zeros, the rest dropped.
            (0..3).fold(0u64, |acc, at| {
                acc * 10 + u64::from(fraction.get(at).map_or(0, |digit| digit - b'0'))
            })
        }
        _ => return None,
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(year, month, u8::try_from(digits(8..10)?).ok()?).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(digits(11..13)?).ok()?,
        u8::try_from(digits(14..16)?).ok()?,
        u8::try_from(digits(17..19)?).ok()?,
    )
    .ok()?;
    let seconds = u64::try_from(date.with_time(clock).assume_utc().unix_timestamp()).ok()?;
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// Milliseconds since the epoch as RFC 3339 UTC, to the second (rounded down).
pub fn format_utc(unix_ms: u64) -> Option<String> {
    let seconds = i64::try_from(unix_ms / 1000).ok()?;
    let time = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    ))
}

fn read_secret(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file, creating its directory; files holding secrets are made readable by the owner
/// only.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, bytes).map_err(io)
}

/// Writes a secret (key or token) readable by its owner only.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // Created 0600, so the secret is never readable by others, not even for a moment; an
    // existing file keeps its mode on open, hence the explicit chmod before writing.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests;
