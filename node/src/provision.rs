//! Provisioning a cluster (`cairn-node init`, and `dev` before it starts its nodes): the logs'
//! keys, the admin token, the keyless CA's and the timestamp authority's certificates, the
//! cluster CA, and per node a certificate and a configuration file. Every step keeps what
//! exists (a key, a token, a CA, a node certificate that still fits), so running it again
//! over a directory changes only what is missing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand08::RngCore as _;

use crate::config::{
    CaFile, ConfigError, HttpFile, LogFile, NodeFile, RaftFile, SequencerFile, TsaFile, write_file,
    write_secret,
};
use crate::env::{Clock, SystemClock};
use crate::tls::{ClusterCa, TlsError};

mod ca_next;
mod ca_promote;
pub use ca_next::{PreparedCa, prepare_ca_rotation};
pub use ca_promote::{PromotedCa, promote_ca_rotation};

/// Why provisioning stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The origin domain would not make every log origin a host name.
    #[error(
        "--origin-domain {0:?}: give a host name (letters, digits, '-' and '.'), with no scheme, \
         path or port"
    )]
    OriginDomain(String),
    /// A log origin is not a valid note key name.
    #[error("origin {origin:?}: {source}")]
    Origin {
        /// The origin.
        origin: String,
        /// Why the key name was refused.
        source: tlog::keys::KeyError,
    },
    /// Cluster URLs were given, but not one per node.
    #[error("{cluster_urls} --cluster-url for {node_urls} --node-url: give one per node or none")]
    ClusterUrlCount {
        /// How many cluster URLs were given.
        cluster_urls: usize,
        /// How many node URLs were given.
        node_urls: usize,
    },
    /// A cluster URL is not `https://`.
    #[error("cluster URL {0}: must start with https://")]
    ClusterUrlScheme(String),
    /// A URL has no usable address.
    #[error("URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The default cluster port (the API port + 100) does not exist.
    #[error("API port {0} + 100 is past 65535; pass --cluster-url")]
    PortOverflow(u16),
    /// More nodes than ids.
    #[error("too many nodes")]
    TooManyNodes,
    /// The clock reads before 1970.
    #[error("the system clock is before 1970")]
    Clock,
    /// Reading or writing a file, or a configuration, failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cluster CA or a node certificate could not be made or loaded.
    #[error("the cluster CA: {0}")]
    Tls(#[from] TlsError),
    /// The keyless CA's, the TSA's or the CT log's keys or certificates could not be made.
    #[error("the CA certificates: {0}")]
    Cert(#[from] ca::CertError),
}

/// The logs every cluster hosts.
pub const LOG_NAMES: [&str; 2] = ["artifacts", "certificates"];

/// The domain `cairn-node dev` (and `init` by default) names its logs under. Under `.localhost`,
/// which resolves to the loopback address (RFC 6761).
pub const DEV_ORIGIN_DOMAIN: &str = "cairn.localhost";

/// A log's origin: `<log name>.<domain>`, a bare host name. Sigstore clients find the log that
/// signed a checkpoint by its key name (the origin) in the trusted root's `baseUrl`: sigstore-go
/// requires it to be the URL's host name, sigstore-js a substring of the URL; a path or a port
/// in the origin fails the first.
pub fn log_origin(name: &str, domain: &str) -> String {
    format!("{name}.{domain}")
}

/// The origin domain must make every origin a host name: DNS labels, no path, port or spaces.
pub fn check_origin_domain(domain: &str) -> Result<(), ProvisionError> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if domain.len() > 200 || !domain.split('.').all(label_ok) {
        return Err(ProvisionError::OriginDomain(domain.to_owned()));
    }
    Ok(())
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand08::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Writes keys, the admin token, the cluster CA and per node a config and a certificate, keeping
/// any key, token or CA that exists and any node certificate that still fits.
pub fn init(
    dir: &Path,
    node_urls: &[String],
    cluster_urls: &[String],
    origin_domain: &str,
    issuers: Vec<ca::oidc::IssuerConfig>,
) -> Result<Vec<PathBuf>, ProvisionError> {
    check_origin_domain(origin_domain)?;
    if !cluster_urls.is_empty() && cluster_urls.len() != node_urls.len() {
        return Err(ProvisionError::ClusterUrlCount {
            cluster_urls: cluster_urls.len(),
            node_urls: node_urls.len(),
        });
    }
    let token_path = dir.join("admin-token");
    if !token_path.exists() {
        write_secret(&token_path, hex_string(&random_bytes::<32>()).as_bytes())?;
    }
    let mut logs = Vec::new();
    for name in LOG_NAMES {
        let origin = log_origin(name, origin_domain);
        let key_path = dir.join("keys").join(format!("{name}.key"));
        if !key_path.exists() {
            write_new_log_key(&key_path, &origin)?;
        }
        logs.push(LogFile {
            name: name.to_string(),
            origin,
            key_file: Path::new("..").join("keys").join(format!("{name}.key")),
            succeeds: None,
        });
    }
    let ca_file = init_keyless_ca(dir, issuers)?;
    let now = time::OffsetDateTime::now_utc();
    let ca = ClusterCa::load_or_create(dir, now)?;
    let mut configs = Vec::new();
    for (position, url) in node_urls.iter().enumerate() {
        let id = u64::try_from(position + 1).map_err(|_| ProvisionError::TooManyNodes)?;
        let listen = listen_address(url)?;
        let cluster_url = match cluster_urls.get(position) {
            Some(cluster_url) => cluster_url.trim_end_matches('/').to_string(),
            None => default_cluster_url(listen)?,
        };
        if !cluster_url.starts_with("https://") {
            return Err(ProvisionError::ClusterUrlScheme(cluster_url));
        }
        let cluster_listen = listen_address(&cluster_url)?;
        let node_dir = dir.join(format!("node-{id}"));
        // Logs added since (successors `prepare_successor` wrote) stay in the config, and so
        // do the CA's and TSA's material: a prepared rotation (`prepare_ca_rotation`), and
        // after a promotion (`promote_ca_rotation`) the material in use and the retired.
        let mut node_logs = logs.clone();
        let mut node_ca = ca_file.clone();
        if let Ok(text) = std::fs::read_to_string(node_dir.join("config.toml"))
            && let Ok(existing) = toml::from_str::<NodeFile>(&text)
        {
            node_logs.extend(
                existing
                    .logs
                    .into_iter()
                    .filter(|log| !LOG_NAMES.contains(&log.name.as_str())),
            );
            if let Some(existing) = existing.ca {
                ca_promote::keep_signing_material(&mut node_ca, existing);
            }
        }
        let host = crate::tls::url_host(&cluster_url)?;
        ca.ensure_node_certificate(
            id,
            &host,
            &node_dir.join("node.crt"),
            &node_dir.join("node.key"),
            now,
        )?;
        let config = NodeFile {
            id,
            listen,
            api_url: url.trim_end_matches('/').to_string(),
            cluster_listen,
            cluster_url,
            cluster_ca_file: Path::new("..").join(crate::tls::CA_CERT_FILE),
            cluster_cert_file: PathBuf::from("node.crt"),
            cluster_key_file: PathBuf::from("node.key"),
            data_dir: PathBuf::from("data"),
            admin_token_file: PathBuf::from("../admin-token"),
            logs: node_logs,
            sequencer: SequencerFile::default(),
            raft: RaftFile::default(),
            http: HttpFile::default(),
            ca: Some(node_ca),
            witnessing: None,
        };
        let path = node_dir.join("config.toml");
        config.save(&path)?;
        configs.push(path);
    }
    Ok(configs)
}

/// What [`prepare_successor`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The successor's name.
    pub name: String,
    /// Its origin.
    pub origin: String,
    /// Its checkpoint key file (`DIR/keys/<name>.key`).
    pub key_file: PathBuf,
    /// Its C2SP verifier key (`origin+keyid+base64`).
    pub verifier_key: String,
    /// The node configs that now list it.
    pub configs: Vec<PathBuf>,
}

/// The name a log's successor gets by default: `artifacts` → `artifacts-2`, `artifacts-2` →
/// `artifacts-3`.
pub fn successor_name(log: &str) -> String {
    match log.rsplit_once('-') {
        Some((stem, number))
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let next = number.parse::<u64>().map_or(2, |n| n.saturating_add(1));
            format!("{stem}-{next}")
        }
        _ => format!("{log}-2"),
    }
}

/// The origin a successor gets by default: the log's origin with its first DNS label replaced
/// by the successor's name (`artifacts.example.com` → `artifacts-2.example.com`), when that
/// label is the log's name; otherwise the operator must choose one.
pub fn successor_origin(log: &str, origin: &str, successor: &str) -> Option<String> {
    let (label, domain) = origin.split_once('.')?;
    (label == log && !domain.contains(['/', ':'])).then(|| format!("{successor}.{domain}"))
}

/// Prepares the successor of `log` in the cluster directory `dir` that [`init`] made: writes
/// its checkpoint key to `DIR/keys/<successor>.key` (kept if present) and adds it, with
/// `succeeds = <log>`, to every `DIR/node-*/config.toml` that lists `log` (a config that lists
/// it already is left as it is). The nodes must then be restarted with these configs (and the
/// key) before `cairn-node log rotate` opens it.
pub fn prepare_successor(
    dir: &Path,
    log: &str,
    successor: &str,
    origin: Option<&str>,
) -> Result<Prepared, ProvisionError> {
    let configs = node_configs(dir)?;
    let invalid = |message: String| {
        ProvisionError::Config(ConfigError::Invalid {
            setting: "logs".into(),
            message,
        })
    };
    let read = read_unresolved;
    let first = configs
        .first()
        .ok_or_else(|| invalid(format!("no node-*/config.toml in {}", dir.display())))?;
    let template = read(first)?;
    let predecessor = template
        .logs
        .iter()
        .find(|file| file.name == log)
        .ok_or_else(|| invalid(format!("{} has no log {log:?}", first.display())))?
        .clone();
    let origin = match origin {
        Some(origin) => origin.to_owned(),
        None => successor_origin(log, &predecessor.origin, successor).ok_or_else(|| {
            invalid(format!(
                "cannot derive an origin from {:?}; pass --origin",
                predecessor.origin
            ))
        })?,
    };
    let key_path = dir.join("keys").join(format!("{successor}.key"));
    let signer = if key_path.exists() {
        let text = std::fs::read_to_string(&key_path).map_err(|source| ConfigError::Io {
            path: key_path.clone(),
            source,
        })?;
        tlog::keys::Ed25519Signer::from_private_key(text.trim()).map_err(|source| {
            ProvisionError::Origin {
                origin: origin.clone(),
                source,
            }
        })?
    } else {
        write_new_log_key(&key_path, &origin)?
    };
    if tlog::note::NoteSigner::name(&signer) != origin {
        return Err(invalid(format!(
            "{} holds a key named {:?}, not {origin:?}",
            key_path.display(),
            tlog::note::NoteSigner::name(&signer)
        )));
    }
    let file = LogFile {
        name: successor.to_owned(),
        origin: origin.clone(),
        key_file: Path::new("..")
            .join("keys")
            .join(format!("{successor}.key")),
        succeeds: Some(log.to_owned()),
    };
    let mut written = Vec::new();
    for path in &configs {
        let mut config = read(path)?;
        if config.logs.iter().any(|other| other.name == successor) {
            continue;
        }
        if !config.logs.iter().any(|other| other.name == log) {
            continue;
        }
        config.logs.push(file.clone());
        config.check()?;
        config.save(path)?;
        written.push(path.clone());
    }
    let verifier_key =
        tlog::keys::Ed25519Verifier::new(&origin, signer.signing_key().verifying_key())
            .map(|verifier| tlog::keys::Verifier::Ed25519(verifier).to_vkey())
            .map_err(|source| ProvisionError::Origin {
                origin: origin.clone(),
                source,
            })?;
    Ok(Prepared {
        name: successor.to_owned(),
        origin,
        key_file: key_path,
        verifier_key,
        configs: written,
    })
}

/// The `DIR/node-*/config.toml` files of a cluster directory, sorted.
fn node_configs(dir: &Path) -> Result<Vec<PathBuf>, ProvisionError> {
    let mut configs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path().join("config.toml");
        let is_node = entry.file_name().to_string_lossy().starts_with("node-");
        if is_node && path.is_file() {
            configs.push(path);
        }
    }
    configs.sort();
    Ok(configs)
}

/// A node config read without resolving its paths, so that it is written back with its own
/// relative ones.
fn read_unresolved(path: &Path) -> Result<NodeFile, ProvisionError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| {
        ProvisionError::Config(ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
    })
}

/// Makes a new checkpoint key for a log of `origin` and writes it (secret) to `key_path`.
fn write_new_log_key(
    key_path: &Path,
    origin: &str,
) -> Result<tlog::keys::Ed25519Signer, ProvisionError> {
    let key = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>());
    let signer =
        tlog::keys::Ed25519Signer::new(origin, key).map_err(|source| ProvisionError::Origin {
            origin: origin.to_owned(),
            source,
        })?;
    write_secret(
        key_path,
        format!("{}\n", signer.to_private_key()).as_bytes(),
    )?;
    Ok(signer)
}

/// Writes the config and certificate of a node `id` to add to the cluster [`init`] made in
/// `dir`: a copy of `template` (another node's config: same logs, CA and settings) with the
/// new id, URLs and listen addresses, and its own files in `DIR/node-<id>/`. Returns the
/// config's path.
pub fn add_node(
    dir: &Path,
    template: &Path,
    id: u64,
    api_url: &str,
    cluster_url: &str,
) -> Result<PathBuf, ProvisionError> {
    let (api_url, cluster_url) = (
        api_url.trim_end_matches('/'),
        cluster_url.trim_end_matches('/'),
    );
    if !cluster_url.starts_with("https://") {
        return Err(ProvisionError::ClusterUrlScheme(cluster_url.to_string()));
    }
    let node_dir = dir.join(format!("node-{id}"));
    let mut config = NodeFile::load(template)?;
    config.id = id;
    (config.listen, config.cluster_listen) =
        (listen_address(api_url)?, listen_address(cluster_url)?);
    (config.api_url, config.cluster_url) = (api_url.to_string(), cluster_url.to_string());
    config.cluster_cert_file = node_dir.join("node.crt");
    config.cluster_key_file = node_dir.join("node.key");
    config.data_dir = node_dir.join("data");
    let now = time::OffsetDateTime::now_utc();
    ClusterCa::load_or_create(dir, now)?.ensure_node_certificate(
        id,
        &crate::tls::url_host(cluster_url)?,
        &config.cluster_cert_file,
        &config.cluster_key_file,
        now,
    )?;
    let path = node_dir.join("config.toml");
    config.save(&path)?;
    Ok(path)
}

/// Writes the keyless CA's material unless present: root and intermediate in `DIR/ca/` (the
/// root's key is never written: a new intermediate means a new root) and the certificate log's
/// SCT key `DIR/keys/ct.key`, and the timestamp authority's root and signing certificate and
/// key in `DIR/tsa/` (the same pattern: the root's key is dropped). Returns the `[ca]` section the node configs get.
fn init_keyless_ca(
    dir: &Path,
    issuers: Vec<ca::oidc::IssuerConfig>,
) -> Result<CaFile, ProvisionError> {
    let (root, intermediate, intermediate_key) = (
        dir.join("ca").join("root.crt"),
        dir.join("ca").join("intermediate.crt"),
        dir.join("ca").join("intermediate.key"),
    );
    // A certificate without its key is a CA retired by `ca promote` whose key the operator
    // deleted: its certificates stay listed in the trusted root, so they are never replaced.
    if !intermediate_key.exists() && !intermediate.exists() {
        let now = Clock::now_unix_ms(&SystemClock) / 1000;
        if now == 0 {
            return Err(ProvisionError::Clock);
        }
        let new = ca::cert::new_ca("Cairn", now)?;
        write_file(&root, new.root_pem.as_bytes())?;
        write_file(&intermediate, new.intermediate_pem.as_bytes())?;
        write_secret(&intermediate_key, new.intermediate_key_pem.as_bytes())?;
    }
    // The timestamp authority: its own root (key dropped) and signing certificate in tsa/.
    let (tsa_root, tsa_cert, tsa_key) = (
        dir.join("tsa").join("root.crt"),
        dir.join("tsa").join("signer.crt"),
        dir.join("tsa").join("signer.key"),
    );
    if !tsa_key.exists() && !tsa_cert.exists() {
        let now = Clock::now_unix_ms(&SystemClock) / 1000;
        let new = ca::tsa::new_tsa("Cairn", now)?;
        write_file(&tsa_root, new.root_pem.as_bytes())?;
        write_file(&tsa_cert, new.signer_pem.as_bytes())?;
        write_secret(&tsa_key, new.signer_key_pem.as_bytes())?;
    }
    let ct_key = dir.join("keys").join("ct.key");
    if !ct_key.exists() && !ct_key.with_extension("pub").exists() {
        let key = ca::ct::CtKey::from_scalar(&random_bytes::<32>())?;
        write_secret(&ct_key, key.to_pkcs8_pem()?.as_bytes())?;
    }
    let relative = |parts: &[&str]| {
        parts
            .iter()
            .fold(Path::new("..").to_path_buf(), |path, part| path.join(part))
    };
    Ok(CaFile {
        root_cert_file: relative(&["ca", "root.crt"]),
        intermediate_cert_file: relative(&["ca", "intermediate.crt"]),
        intermediate_key_file: relative(&["ca", "intermediate.key"]),
        ct_key_file: relative(&["keys", "ct.key"]),
        log: "certificates".into(),
        requests_per_identity_per_minute: 60,
        issuers,
        tsa: Some(TsaFile {
            root_cert_file: relative(&["tsa", "root.crt"]),
            cert_file: relative(&["tsa", "signer.crt"]),
            key_file: relative(&["tsa", "signer.key"]),
            next: None,
            retired: Vec::new(),
        }),
        next: None,
        retired: Vec::new(),
    })
}

/// Lowercase hex.
pub fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The cluster URL a node gets when none is given: its API address with the port + 100.
pub fn default_cluster_url(api: SocketAddr) -> Result<String, ProvisionError> {
    let port = api
        .port()
        .checked_add(100)
        .ok_or(ProvisionError::PortOverflow(api.port()))?;
    Ok(format!("https://{}", SocketAddr::new(api.ip(), port)))
}

/// The socket address in an `http://host:port` URL.
pub fn listen_address(url: &str) -> Result<SocketAddr, ProvisionError> {
    let bad = |reason: &str| ProvisionError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .parse()
        .map_err(|_| bad(&format!("{authority:?} is not an IP address and port")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_host_names_under_the_domain() {
        assert_eq!(
            log_origin("artifacts", DEV_ORIGIN_DOMAIN),
            "artifacts.cairn.localhost"
        );
        check_origin_domain(DEV_ORIGIN_DOMAIN).unwrap();
        check_origin_domain("rekor.example.com").unwrap();
        for bad in [
            "cairn.localhost/logs",
            "cairn.localhost:8080",
            "https://cairn.localhost",
            "",
            "a..b",
            "-a.b",
            "a b",
        ] {
            assert!(check_origin_domain(bad).is_err(), "accepted {bad:?}");
        }
        // Every origin is a valid note key name.
        for name in LOG_NAMES {
            let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
            tlog::keys::Ed25519Signer::new(&log_origin(name, DEV_ORIGIN_DOMAIN), key).unwrap();
        }
    }

    /// `init` writes what a cluster needs, and a second run over the same directory keeps
    /// every key, token and certificate (a node of a running cluster keeps its identity).
    #[test]
    fn init_writes_a_cluster_and_keeps_it_when_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let urls = [
            "http://127.0.0.1:7001".to_owned(),
            "http://127.0.0.1:7002".to_owned(),
        ];
        let configs = init(dir.path(), &urls, &[], DEV_ORIGIN_DOMAIN, Vec::new()).unwrap();
        assert_eq!(configs.len(), 2);
        let secrets = [
            "admin-token",
            "keys/artifacts.key",
            "keys/certificates.key",
            "keys/ct.key",
            "ca/intermediate.key",
            "tsa/signer.key",
            "node-1/node.key",
            "node-2/node.key",
        ];
        let read = |path: &str| std::fs::read(dir.path().join(path)).unwrap();
        let before: Vec<Vec<u8>> = secrets.iter().map(|path| read(path)).collect();
        for path in secrets {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{path} is readable by others");
        }
        let node = NodeFile::load(&configs[1]).unwrap();
        assert_eq!(node.id, 2);
        assert_eq!(node.api_url, "http://127.0.0.1:7002");
        assert_eq!(node.cluster_url, "https://127.0.0.1:7102");
        assert_eq!(node.load_logs().unwrap().iter().count(), 2);

        init(dir.path(), &urls, &[], DEV_ORIGIN_DOMAIN, Vec::new()).unwrap();
        let after: Vec<Vec<u8>> = secrets.iter().map(|path| read(path)).collect();
        assert_eq!(before, after, "a second init replaced a secret");
    }

    /// `add_node` writes a config for a further node of an `init` cluster: its own id,
    /// addresses, certificate and data, the template's logs.
    #[test]
    fn add_node_writes_a_further_node() {
        let dir = tempfile::tempdir().unwrap();
        let urls = ["http://127.0.0.1:7001".to_owned()];
        let configs = init(dir.path(), &urls, &[], DEV_ORIGIN_DOMAIN, Vec::new()).unwrap();
        let (api, cluster) = ("http://127.0.0.1:7005/", "https://127.0.0.1:7105");
        let path = add_node(dir.path(), &configs[0], 5, api, cluster).unwrap();
        assert_eq!(path, dir.path().join("node-5/config.toml"));
        let node = NodeFile::load(&path).unwrap();
        assert_eq!(
            (node.id, node.api_url.as_str()),
            (5, "http://127.0.0.1:7005")
        );
        assert_eq!(node.cluster_url, cluster);
        assert_eq!(node.listen, ([127, 0, 0, 1], 7005).into());
        assert_eq!(node.cluster_listen, ([127, 0, 0, 1], 7105).into());
        assert_eq!(node.data_dir, dir.path().join("node-5/data"));
        assert!(dir.path().join("node-5/node.key").exists());
        assert_eq!(node.load_logs().unwrap().iter().count(), 2);
        let plain = add_node(dir.path(), &configs[0], 6, api, "http://127.0.0.1:7106");
        assert!(matches!(plain, Err(ProvisionError::ClusterUrlScheme(_))));
    }

    #[test]
    fn bad_urls_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let urls = ["http://127.0.0.1:7001".to_owned()];
        let error = init(
            dir.path(),
            &urls,
            &["http://127.0.0.1:7101".to_owned()],
            DEV_ORIGIN_DOMAIN,
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            matches!(error, ProvisionError::ClusterUrlScheme(_)),
            "{error}"
        );
        let error = init(dir.path(), &urls, &[], "bad domain", Vec::new()).unwrap_err();
        assert!(matches!(error, ProvisionError::OriginDomain(_)), "{error}");
        assert!(matches!(
            listen_address("ftp://x"),
            Err(ProvisionError::Url { .. })
        ));
        assert!(matches!(
            default_cluster_url("127.0.0.1:65500".parse().unwrap()),
            Err(ProvisionError::PortOverflow(65500))
        ));
    }
}
