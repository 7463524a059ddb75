//! TLS on the public listener: the operator's certificate (from any CA), served to clients
//! that offer HTTP/2 or HTTP/1.1 by ALPN, and re-read without a restart when its files change.
//!
//! [`PublicTls`] is the rustls certificate resolver: every handshake gets the certificate held
//! in memory, and [`PublicTls::reload_if_changed`] (which the listener calls every
//! [`RELOAD_CHECK_INTERVAL`], off the async workers) re-reads both files once either's
//! modification time or size changed. A replacement that does not parse, or whose key is not
//! its certificate's, is refused: the old certificate stays in service and the caller logs the
//! error and counts it. The files are then read again only when they change again, so a
//! certificate and key written one after the other are picked up once both are in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{TlsError, certificates, crypto_provider, read_bytes};

/// How often the listener looks at the files' modification times.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What a file looked like when last read: modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// A served certificate: the chain and key rustls signs with, and the end-entity
/// certificate's expiry (seconds since the Unix epoch).
#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    not_after: i64,
}

/// The public listener's certificate, reloadable (see the module's notes).
#[derive(Debug)]
pub struct PublicTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    served: RwLock<Served>,
    /// The files' stamps when last read, successfully or not.
    read: Mutex<[Stamp; 2]>,
}

impl PublicTls {
    /// Reads the certificate chain and key; an error if either does not parse or they do not
    /// belong together.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<PublicTls, TlsError> {
        let stamps = [stamp(cert_file), stamp(key_file)];
        let served = read_pair(cert_file, key_file)?;
        Ok(PublicTls {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            served: RwLock::new(served),
            read: Mutex::new(stamps),
        })
    }

    /// Re-reads the files if either changed since last read: `Ok(true)` when a new certificate
    /// is now served, `Ok(false)` when nothing changed, `Err` when the new files were refused
    /// (the old certificate stays served). Blocking file IO: call it off the async workers.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamps = [stamp(&self.cert_file), stamp(&self.key_file)];
        {
            let mut read = self
                .read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *read == stamps {
                return Ok(false);
            }
            *read = stamps;
        }
        let served = read_pair(&self.cert_file, &self.key_file)?;
        *self
            .served
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = served;
        Ok(true)
    }

    /// When the served certificate expires, in seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.served
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .not_after
    }

    /// The rustls configuration serving this certificate: TLS 1.2 and 1.3, no client
    /// certificate, ALPN `h2` then `http/1.1`.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for PublicTls {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .served
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .key,
        ))
    }
}

/// Reads a chain and its key and checks that they belong together.
fn read_pair(cert_file: &Path, key_file: &Path) -> Result<Served, TlsError> {
    let chain = certificates(&read_bytes(cert_file)?, cert_file)?;
    let material = |path: &Path, message: String| TlsError::Material {
        path: path.to_path_buf(),
        message,
    };
    let key = PrivateKeyDer::from_pem_slice(&read_bytes(key_file)?)
        .map_err(|error| material(key_file, format!("no private key: {error}")))?;
    let not_after = chain
        .first()
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
        .map(|(_, parsed)| parsed.validity().not_after.timestamp())
        .ok_or_else(|| material(cert_file, "the first certificate does not parse".into()))?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| material(key_file, format!("unusable private key: {error}")))?;
    let key = CertifiedKey::new(chain, signing_key);
    // An unknown answer (a key type whose public half rustls cannot derive) is a refusal too:
    // a mismatch would fail every handshake.
    key.keys_match().map_err(|error| {
        material(
            key_file,
            format!(
                "not the key of the certificate in {}: {error}",
                cert_file.display()
            ),
        )
    })?;
    Ok(Served {
        key: Arc::new(key),
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ClusterCa;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn served_der(tls: &PublicTls) -> Vec<u8> {
        tls.served.read().unwrap().key.cert[0].to_vec()
    }

    #[test]
    fn a_changed_pair_is_served_and_a_bad_one_refused() {
        let now = time::OffsetDateTime::now_utc();
        let ca = ClusterCa::create(now).unwrap();
        let first = ca.issue(1, "127.0.0.1", now).unwrap();
        let second = ca.issue(2, "127.0.0.1", now).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = write(dir.path(), "tls.crt", &first.cert_pem);
        let key = write(dir.path(), "tls.key", &first.key_pem);
        let tls = PublicTls::load(&cert, &key).unwrap();
        assert!(tls.not_after() > now.unix_timestamp());
        let original = served_der(&tls);
        assert!(!tls.reload_if_changed().unwrap());

        // A certificate whose key is another's: refused, the old one kept, not retried.
        write(dir.path(), "tls.crt", &format!("{}\n", second.cert_pem));
        assert!(
            tls.reload_if_changed()
                .unwrap_err()
                .to_string()
                .contains("not the key")
        );
        assert_eq!(served_der(&tls), original);
        assert!(!tls.reload_if_changed().unwrap());
        // Garbage: refused.
        write(dir.path(), "tls.key", "not a key");
        assert!(tls.reload_if_changed().is_err());
        assert_eq!(served_der(&tls), original);
        // The matching key arrives: served.
        write(dir.path(), "tls.key", &second.key_pem);
        assert!(tls.reload_if_changed().unwrap());
        assert_ne!(served_der(&tls), original);

        // Loading a mismatched pair at startup is an error naming the key file.
        let wrong = write(dir.path(), "wrong.key", &first.key_pem);
        let error = PublicTls::load(&cert, &wrong).unwrap_err().to_string();
        assert!(error.contains("wrong.key"), "{error}");
        let missing = PublicTls::load(&dir.path().join("none.crt"), &key).unwrap_err();
        assert!(missing.to_string().contains("none.crt"), "{missing}");
    }
}
