//! Mutual TLS between nodes: the cluster CA and node certificates `cairn-node init` makes, and
//! the rustls configurations of the cluster listener and of the Raft client.
//!
//! Trust is the cluster CA and nothing else: the cluster listener accepts a connection only from
//! a client whose certificate chains to it, and the Raft client accepts a server only if its
//! certificate chains to it and names the host of the peer's `cluster_url`. Every node
//! certificate is valid both ways (serverAuth and clientAuth), so one certificate serves a node's
//! listener and its outgoing Raft calls. The CA is an ECDSA P-256 key; its private key is needed
//! only by `init`, never by a running node.
//!
//! Certificates are long-lived (CA ten years, nodes five) and there is no revocation: rotation
//! (a new CA trusted beside the old one, then new node certificates) is future work.
//!
//! `public` is the other listener's TLS: the operator's certificate for clients, reloadable.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::OffsetDateTime;

use crate::config::{ConfigError, write_file, write_secret};
use crate::types::NodeId;

pub mod public;

/// The DNS suffix of the names that identify nodes in their certificates (`node-1.cairn.cluster`).
pub const NODE_NAME_SUFFIX: &str = "cairn.cluster";
/// The cluster CA's certificate, inside the directory `init` writes.
pub const CA_CERT_FILE: &str = "cluster-ca/ca.crt";
/// The cluster CA's private key, inside the directory `init` writes; only `init` needs it.
pub const CA_KEY_FILE: &str = "cluster-ca/ca.key";

/// How long the cluster CA is valid.
const CA_VALIDITY: time::Duration = time::Duration::days(10 * 365);
/// How long a node certificate is valid (never past the CA).
const NODE_VALIDITY: time::Duration = time::Duration::days(5 * 365);
/// Certificates start an hour in the past, so a peer whose clock is a little behind accepts them.
const BACKDATE: time::Duration = time::Duration::hours(1);
/// An existing node certificate is reissued by `init` if it expires sooner than this.
const REISSUE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// The name that identifies node `id` in its certificate (a DNS SAN).
pub fn node_name(id: NodeId) -> String {
    format!("node-{id}.{NODE_NAME_SUFFIX}")
}

/// Cluster TLS material that could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] ConfigError),
    /// A file holds no usable certificate or key, or a key that does not match its certificate.
    #[error("{path}: {message}")]
    Material {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rcgen could not generate a key or certificate.
    #[error("generating the {what}: {source}")]
    Generate {
        /// What was being generated (`cluster CA`, `certificate of node 2`).
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },
    /// rustls refused the material (for example a key type it does not support).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A cluster URL whose host cannot be named in a certificate.
    #[error("cluster URL {url:?}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The crypto provider every TLS configuration here uses: the process-wide one when `main`
/// installed it, otherwise aws-lc-rs (tests). Never `ring`: with two providers compiled in,
/// rustls cannot choose a process-wide default, and building a configuration then panics.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The host of an `http(s)://host:port/...` URL, without brackets around an IPv6 address.
pub fn url_host(url: &str) -> Result<String, TlsError> {
    let bad = |message: &str| TlsError::Url {
        url: url.to_string(),
        message: message.into(),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if authority.contains('@') {
        return Err(bad("must not carry user information"));
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed
            .split_once(']')
            .map(|(host, _)| host)
            .ok_or_else(|| bad("unclosed '[' in the host"))?
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok(host.to_string())
}

/// The SAN naming `host`: an IP address SAN for an address, a DNS SAN otherwise.
fn host_san(host: &str) -> Result<SanType, rcgen::Error> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(host.to_string().try_into()?)),
    }
}

/// A node certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct NodeCertificate {
    /// The certificate (`CERTIFICATE`).
    pub cert_pem: String,
    /// The PKCS#8 private key (`PRIVATE KEY`).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs and panics.
        f.debug_struct("NodeCertificate")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The cluster CA: issues node certificates.
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new CA: an ECDSA P-256 key and a self-signed certificate valid from `now`.
    pub fn create(now: OffsetDateTime) -> Result<ClusterCa, TlsError> {
        let generate = |source| TlsError::Generate {
            what: "cluster CA".into(),
            source,
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Cairn cluster");
        params
            .distinguished_name
            .push(DnType::CommonName, "Cairn cluster CA");
        // Path length 0: the CA signs node certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let not_after = params.not_after;
        let cert = params.self_signed(&key).map_err(generate)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// The CA from its certificate and key (PEM), checking that they belong together.
    pub fn from_pem(cert_pem: &str, key_pem: &str, source: &Path) -> Result<ClusterCa, TlsError> {
        let material = |message: String| TlsError::Material {
            path: source.to_path_buf(),
            message,
        };
        let key = KeyPair::from_pem(key_pem).map_err(|error| material(format!("key: {error}")))?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|error| material(format!("certificate: {error}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|error| material(format!("certificate: {error}")))?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(material("the key is not the certificate's key".into()));
        }
        if !parsed.is_ca() {
            return Err(material("the certificate is not a CA certificate".into()));
        }
        let not_after = parsed.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|error| material(format!("certificate: {error}")))?;
        Ok(ClusterCa {
            cert_pem: cert_pem.to_string(),
            issuer,
            not_after,
        })
    }

    /// The CA kept in `dir` ([`CA_CERT_FILE`], [`CA_KEY_FILE`]), or a new one written there
    /// (key readable by its owner only) when there is none.
    pub fn load_or_create(dir: &Path, now: OffsetDateTime) -> Result<ClusterCa, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() || key_path.exists() {
            // Half a CA is a mistake to report, not to paper over: a new CA would silently
            // invalidate every node certificate already handed out.
            let cert_pem = read_text(&cert_path)?;
            let key_pem = read_text(&key_path)?;
            return ClusterCa::from_pem(&cert_pem, &key_pem, &key_path);
        }
        let ca = ClusterCa::create(now)?;
        write_secret(&key_path, ca.issuer.key().serialize_pem().as_bytes())?;
        write_file(&cert_path, ca.cert_pem.as_bytes())?;
        Ok(ca)
    }

    /// The CA certificate (PEM), the only root nodes trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A new key and certificate for node `id` reachable at `host` (an IP address or DNS name):
    /// SANs `host` and [`node_name`]`(id)`, valid for TLS server and client alike.
    pub fn issue(
        &self,
        id: NodeId,
        host: &str,
        now: OffsetDateTime,
    ) -> Result<NodeCertificate, TlsError> {
        let generate = |source| TlsError::Generate {
            what: format!("certificate of node {id}"),
            source,
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let name = node_name(id);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Cairn cluster");
        params.distinguished_name.push(DnType::CommonName, &name);
        params.subject_alt_names = vec![host_san(host).map_err(generate)?];
        if host != name {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.try_into().map_err(generate)?));
        }
        // ExplicitNoCa writes basicConstraints CA:false, so the certificate cannot act as a CA.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = (now + NODE_VALIDITY).min(self.not_after);
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Makes sure `cert_path` and `key_path` hold a certificate of node `id` for `host` from
    /// this CA, valid for at least another 30 days, with its key; issues and writes a new one
    /// otherwise. Returns whether it wrote a new one.
    pub fn ensure_node_certificate(
        &self,
        id: NodeId,
        host: &str,
        cert_path: &Path,
        key_path: &Path,
        now: OffsetDateTime,
    ) -> Result<bool, TlsError> {
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read_text(cert_path)?;
            let key_pem = read_text(key_path)?;
            if self.still_good(id, host, &cert_pem, &key_pem, now) {
                return Ok(false);
            }
        }
        let issued = self.issue(id, host, now)?;
        write_secret(key_path, issued.key_pem.as_bytes())?;
        write_file(cert_path, issued.cert_pem.as_bytes())?;
        Ok(true)
    }

    /// Whether an existing node certificate can be kept: it verifies under this CA for `host`
    /// and for the node's name, 30 days from now, and the key is its key.
    fn still_good(
        &self,
        id: NodeId,
        host: &str,
        cert_pem: &str,
        key_pem: &str,
        now: OffsetDateTime,
    ) -> bool {
        let Ok(cert) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
            return false;
        };
        let Ok(key) = KeyPair::from_pem(key_pem) else {
            return false;
        };
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&cert) else {
            return false;
        };
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return false;
        }
        let Ok(verifier) = server_verifier(self.cert_pem.as_bytes(), Path::new("cluster CA"))
        else {
            return false;
        };
        let Ok(seconds) = u64::try_from(now.unix_timestamp()) else {
            return false;
        };
        let later =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds) + REISSUE_WITHIN);
        [host.to_string(), node_name(id)].into_iter().all(|name| {
            ServerName::try_from(name).is_ok_and(|name| {
                verifier
                    .verify_server_cert(&cert, &[], &name, &[], later)
                    .is_ok()
            })
        })
    }
}

/// A node's TLS configurations for the cluster listener (server) and the Raft client, both
/// trusting the cluster CA only and presenting the node's certificate.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl ClusterTls {
    /// Reads the CA certificate, the node certificate and its key from PEM files.
    pub fn load(ca_file: &Path, cert_file: &Path, key_file: &Path) -> Result<ClusterTls, TlsError> {
        let ca = read_bytes(ca_file)?;
        let cert = read_bytes(cert_file)?;
        let key = read_bytes(key_file)?;
        ClusterTls::from_pem(&ca, &cert, &key, [ca_file, cert_file, key_file])
    }

    /// The configurations from PEM bytes; `paths` (CA, certificate, key) name them in errors.
    pub fn from_pem(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        paths: [&Path; 3],
    ) -> Result<ClusterTls, TlsError> {
        let [ca_path, cert_path, key_path] = paths;
        let roots = roots(ca_pem, ca_path)?;
        let chain = certificates(cert_pem, cert_path)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| TlsError::Material {
            path: key_path.to_path_buf(),
            message: format!("no private key: {error}"),
        })?;
        let provider = crypto_provider();
        let config = |error: rustls::Error| TlsError::Config(error.to_string());
        // Only the cluster CA is a root, so "chains to a root" means "is a node of this
        // cluster". TLS 1.3 only: both ends are Cairn nodes, nothing older needs serving.
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|error| TlsError::Config(error.to_string()))?;
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(config)?;
        Ok(ClusterTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The cluster listener's configuration: requires a client certificate from the cluster CA.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server)
    }

    /// The Raft client's configuration: presents the node certificate, trusts the cluster CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.client)
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let material = |message: String| TlsError::Material {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| material(error.to_string()))?;
    if certs.is_empty() {
        return Err(material("no certificate".into()));
    }
    Ok(certs)
}

fn roots(ca_pem: &[u8], path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, path)? {
        roots.add(cert).map_err(|error| TlsError::Material {
            path: path.to_path_buf(),
            message: format!("not a usable CA certificate: {error}"),
        })?;
    }
    Ok(Arc::new(roots))
}

fn server_verifier(
    ca_pem: &[u8],
    path: &Path,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, TlsError> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(ca_pem, path)?,
        crypto_provider(),
    )
    .build()
    .map_err(|error| TlsError::Config(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn unix_now() -> UnixTime {
        UnixTime::now()
    }

    fn tls(ca: &ClusterCa, node: &NodeCertificate) -> ClusterTls {
        let path = Path::new("test");
        ClusterTls::from_pem(
            ca.cert_pem().as_bytes(),
            node.cert_pem.as_bytes(),
            node.key_pem.as_bytes(),
            [path, path, path],
        )
        .unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn node_certificates_chain_to_the_ca_and_name_the_node() {
        let ca = ClusterCa::create(now()).unwrap();
        let node = ca.issue(2, "127.0.0.1", now()).unwrap();
        let cert = der(&node.cert_pem);

        let verifier = server_verifier(ca.cert_pem().as_bytes(), Path::new("ca")).unwrap();
        for name in ["127.0.0.1", "node-2.cairn.cluster"] {
            let name = ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&cert, &[], &name, &[], unix_now())
                .unwrap();
        }
        let other_name = ServerName::try_from("node-3.cairn.cluster").unwrap();
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &other_name, &[], unix_now())
                .is_err()
        );
        let client_verifier = WebPkiClientVerifier::builder_with_provider(
            roots(ca.cert_pem().as_bytes(), Path::new("ca")).unwrap(),
            crypto_provider(),
        )
        .build()
        .unwrap();
        client_verifier
            .verify_client_cert(&cert, &[], unix_now())
            .unwrap();

        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let sans = parsed.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|name| format!("{name:?}"))
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.contains("IPAddress([127, 0, 0, 1])")),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n.contains("node-2.cairn.cluster")),
            "{names:?}"
        );
        assert!(!parsed.is_ca());
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let ca_der = der(ca.cert_pem());
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca_parsed.is_ca());
        assert_eq!(parsed.issuer(), ca_parsed.subject());
        // A node certificate outliving its CA would stop verifying before its own expiry.
        assert!(parsed.validity().not_after <= ca_parsed.validity().not_after);
    }

    #[test]
    fn a_certificate_from_another_ca_does_not_verify() {
        let ca = ClusterCa::create(now()).unwrap();
        let other = ClusterCa::create(now()).unwrap();
        let stranger = der(&other.issue(1, "127.0.0.1", now()).unwrap().cert_pem);
        let verifier = server_verifier(ca.cert_pem().as_bytes(), Path::new("ca")).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        assert!(
            verifier
                .verify_server_cert(&stranger, &[], &name, &[], unix_now())
                .is_err()
        );
    }

    #[test]
    fn dns_hosts_and_ipv6_are_named() {
        assert_eq!(url_host("https://10.0.0.5:7101").unwrap(), "10.0.0.5");
        assert_eq!(url_host("https://[::1]:7101/x").unwrap(), "::1");
        assert_eq!(
            url_host("https://raft.example:7101").unwrap(),
            "raft.example"
        );
        assert!(url_host("ftp://x").is_err());
        assert!(url_host("https://:7101").is_err());
        let ca = ClusterCa::create(now()).unwrap();
        let node = ca.issue(1, "raft.example", now()).unwrap();
        let verifier = server_verifier(ca.cert_pem().as_bytes(), Path::new("ca")).unwrap();
        let name = ServerName::try_from("raft.example").unwrap();
        verifier
            .verify_server_cert(&der(&node.cert_pem), &[], &name, &[], unix_now())
            .unwrap();
    }

    #[test]
    fn the_ca_is_kept_and_node_certificates_reissued_only_when_needed() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path(), now()).unwrap();
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ClusterCa::load_or_create(dir.path(), now()).unwrap();
        assert_eq!(ca.cert_pem(), again.cert_pem());

        let (cert, key) = (dir.path().join("node.crt"), dir.path().join("node.key"));
        assert!(
            again
                .ensure_node_certificate(1, "127.0.0.1", &cert, &key, now())
                .unwrap()
        );
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            !ca.ensure_node_certificate(1, "127.0.0.1", &cert, &key, now())
                .unwrap()
        );
        // Another host, another node id, or another CA: the certificate no longer fits.
        assert!(
            ca.ensure_node_certificate(1, "127.0.0.2", &cert, &key, now())
                .unwrap()
        );
        assert!(
            ca.ensure_node_certificate(2, "127.0.0.2", &cert, &key, now())
                .unwrap()
        );
        let other = ClusterCa::create(now()).unwrap();
        assert!(
            other
                .ensure_node_certificate(2, "127.0.0.2", &cert, &key, now())
                .unwrap()
        );

        // Half a CA is an error, not a reason to make a new one.
        std::fs::remove_file(dir.path().join(CA_CERT_FILE)).unwrap();
        assert!(ClusterCa::load_or_create(dir.path(), now()).is_err());
    }

    /// Runs one TLS exchange over an in-memory pipe: the client writes "ping", the server
    /// answers "pong". Returns whether the client got the answer.
    async fn exchange(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> bool {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let server_task = tokio::spawn(async move {
            let mut stream = acceptor.accept(server_io).await.ok()?;
            let mut ping = [0u8; 4];
            stream.read_exact(&mut ping).await.ok()?;
            stream.write_all(b"pong").await.ok()?;
            stream.shutdown().await.ok()
        });
        let connector = tokio_rustls::TlsConnector::from(client);
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let answered = async {
            let mut stream = connector.connect(name, client_io).await.ok()?;
            stream.write_all(b"ping").await.ok()?;
            let mut pong = [0u8; 4];
            stream.read_exact(&mut pong).await.ok()?;
            (&pong == b"pong").then_some(())
        }
        .await
        .is_some();
        let _ = server_task.await;
        answered
    }

    fn client_without_certificate(ca: &ClusterCa) -> Arc<ClientConfig> {
        let roots = roots(ca.cert_pem().as_bytes(), Path::new("ca")).unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(crypto_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    #[tokio::test]
    async fn only_nodes_of_the_cluster_get_through() {
        let ca = ClusterCa::create(now()).unwrap();
        let server = tls(&ca, &ca.issue(1, "127.0.0.1", now()).unwrap());
        let member = tls(&ca, &ca.issue(2, "127.0.0.1", now()).unwrap());
        assert!(exchange(server.server_config(), member.client_config()).await);

        // No client certificate.
        assert!(!exchange(server.server_config(), client_without_certificate(&ca)).await);

        // A certificate from another CA, presented by a client that trusts our CA.
        let other = ClusterCa::create(now()).unwrap();
        let stranger = other.issue(3, "127.0.0.1", now()).unwrap();
        let path = Path::new("test");
        let stranger_client = ClusterTls::from_pem(
            ca.cert_pem().as_bytes(),
            stranger.cert_pem.as_bytes(),
            stranger.key_pem.as_bytes(),
            [path, path, path],
        )
        .unwrap();
        assert!(!exchange(server.server_config(), stranger_client.client_config()).await);

        // And a node refuses a server whose certificate comes from another CA.
        let impostor = tls(&other, &stranger);
        assert!(!exchange(impostor.server_config(), member.client_config()).await);
    }
}
