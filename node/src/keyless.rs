//! The keyless CA as a node runs it: the `ca` crate's parts, made from the node's
//! [`crate::config::CaSettings`]. The HTTP side, and the order that makes every certificate logged before
//! it is returned, is `http::ca_api`.

use std::sync::Arc;

use crate::sequencer::{SequenceError, Sequenced, Sequencer};
use crate::types::LogName;

/// Longest one append of an issuance may take to commit. Past it the caller gets no
/// certificate (503; a leader cut off from its quorum would otherwise hold the request
/// forever); the entry may still commit later, which only ever logs a certificate nobody
/// received.
pub const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A fresh certificate serial: 160 random bits, positive and never zero in 20 bytes. Drawn from
/// the node's randomness seam ([`crate::runtime::SeededRng`]: the operating system's entropy in
/// production, the run's seed in the simulator), so simulated issuance replays.
pub fn new_serial() -> [u8; 20] {
    let mut serial = [0u8; 20];
    rand08::RngCore::fill_bytes(&mut crate::runtime::SeededRng, &mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial
}

/// A certificate issued and logged.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate, DER, with its one embedded SCT.
    pub certificate: Vec<u8>,
    /// The certificate log's leaf for the precertificate, and its index.
    pub precertificate_leaf: Vec<u8>,
    /// Where the precertificate entry was committed.
    pub precertificate: Sequenced,
    /// The certificate log's leaf for the certificate.
    pub certificate_leaf: Vec<u8>,
    /// Where the certificate entry was committed.
    pub logged: Sequenced,
}

/// Why no certificate was issued. In every case none exists outside the log: the caller
/// holds nothing.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// This node is not the leader and nothing was appended: the leader issues.
    #[error("not the leader")]
    NotLeader,
    /// An append did not commit (in time, or at all).
    #[error("the {what} could not be logged ({error}); no certificate was issued, retry")]
    NotLogged {
        /// `precertificate` or `certificate`.
        what: &'static str,
        /// What the sequencer said.
        error: SequenceError,
    },
    /// Building or signing failed.
    #[error("issuance failed: {0}")]
    Internal(#[from] ca::CertError),
    /// This node runs no CA.
    #[error("this node runs no CA")]
    NoCa,
}

/// Signing material that is replaced at a time (docs/decisions/0012-ca-key-rotation.md):
/// `current` signs before `next.from_ms`, `next` from then on. Which one signs is chosen by
/// the time that goes into what is signed (a certificate's notBefore and its SCT's timestamp,
/// a timestamp's genTime), read from the node's clock, so that the time always lies in the
/// signer's window in the trusted root. `retired` is what signed before `current`, public parts
/// only: it signs nothing more, but the trusted root keeps listing it so that what it signed
/// stays verifiable.
#[derive(Debug)]
pub struct Rotating<T> {
    /// Material that signed before `current`, oldest first, each until the next took over
    /// (`[[ca.retired]]`, `[[ca.tsa.retired]]`).
    pub retired: Vec<Retired>,
    /// The material in use until `next` takes over.
    pub current: T,
    /// What takes over, and when.
    pub next: Option<Next<T>>,
}

/// Material that signed in a past window: its public parts, all clients need to verify what it
/// signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired {
    /// From when it signed (milliseconds since the epoch).
    pub from_ms: u64,
    /// Until when it signed: the time its successor took over.
    pub until_ms: u64,
    /// Its chain, DER, signer first: a CA's intermediate and root, or a TSA's signing
    /// certificate and root.
    pub chain_der: [Vec<u8>; 2],
    /// A retired CA's SCT key (DER SubjectPublicKeyInfo); `None` for a TSA.
    pub ct_spki_der: Option<Vec<u8>>,
}

/// Material that takes over at a time.
#[derive(Debug)]
pub struct Next<T> {
    /// From when (milliseconds since the epoch, by the node's clock) it signs.
    pub from_ms: u64,
    /// The material.
    pub material: T,
}

impl<T> Rotating<T> {
    /// Material that is never replaced.
    pub fn fixed(current: T) -> Rotating<T> {
        Rotating {
            retired: Vec::new(),
            current,
            next: None,
        }
    }

    /// The material that signs at `unix_ms`.
    pub fn at(&self, unix_ms: u64) -> &T {
        match &self.next {
            Some(next) if unix_ms >= next.from_ms => &next.material,
            _ => &self.current,
        }
    }

    /// Every material that can sign, current first, with the time it takes over (`None` for
    /// the first ever, which signs since its certificates were made) and the time it is
    /// replaced at (`None` for the last). The current one took over when the last retired one
    /// stopped.
    pub fn all(&self) -> Vec<(&T, Option<u64>, Option<u64>)> {
        let current_from = self.retired.last().map(|retired| retired.until_ms);
        match &self.next {
            Some(next) => vec![
                (&self.current, current_from, Some(next.from_ms)),
                (&next.material, Some(next.from_ms), None),
            ],
            None => vec![(&self.current, current_from, None)],
        }
    }

    /// When the oldest retired material started signing, if any: the deployment is older than
    /// the current material's certificates.
    pub fn first_from_ms(&self) -> Option<u64> {
        self.retired.first().map(|retired| retired.from_ms)
    }
}

/// What the CA signs with: the intermediate (and its chain) and the certificate log's SCT key.
pub struct CaMaterial {
    /// The intermediate that signs leaves, and the chain.
    pub authority: ca::cert::Authority,
    /// The certificate log's SCT key.
    pub ct_key: ca::ct::CtKey,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial")
            .field("ct_log_id", &self.ct_key.log_id())
            .finish_non_exhaustive()
    }
}

/// Everything the CA routes need.
pub struct KeylessCa {
    /// The intermediates and SCT keys, and when each signs.
    pub material: Rotating<CaMaterial>,
    /// Token verification against the allow-listed issuers.
    pub verifier: ca::oidc::TokenVerifier,
    /// Requests per identity per minute.
    pub limiter: ca::rate::RateLimiter,
    /// The log certificates are written to: the first of its family; issuance writes to the
    /// one of the family that is open (`crate::lifecycle`).
    pub log: LogName,
}

impl std::fmt::Debug for KeylessCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessCa")
            .field("log", &self.log)
            .field("issuers", &self.verifier.issuers())
            .finish_non_exhaustive()
    }
}

impl KeylessCa {
    /// The CA of `material` and the rest of `settings` (less the TSA); discovery
    /// documents and key sets are fetched through `fetch` when tokens arrive.
    pub(crate) fn new(
        material: Rotating<CaMaterial>,
        issuers: Vec<ca::oidc::IssuerConfig>,
        requests_per_identity_per_minute: u32,
        log: LogName,
        fetch: Arc<dyn ca::oidc::Fetch>,
    ) -> KeylessCa {
        KeylessCa {
            material,
            verifier: ca::oidc::TokenVerifier::new(issuers, fetch),
            limiter: ca::rate::RateLimiter::new(requests_per_identity_per_minute),
            log,
        }
    }
}

impl KeylessCa {
    /// Issues the certificate `issuance` describes, logged before it is returned: the
    /// precertificate's leaf is appended to the certificate log and committed, the SCT signed
    /// over it carries its `leaf_index`, the certificate with that SCT is appended and
    /// committed, and only then is it returned. Every choice that ends up in the log (serial,
    /// time) is in `issuance`, made once by the caller, so replicas stay deterministic.
    /// Both entries go to `log`, the certificate log that is open (frozen in between, the
    /// second append fails and nothing is returned). The intermediate and SCT key are those
    /// in use at `issuance.timestamp_ms` ([`Rotating::at`]).
    pub async fn issue(
        &self,
        sequencer: &Sequencer,
        log: &LogName,
        issuance: &ca::cert::Issuance,
    ) -> Result<Issued, IssueError> {
        let material = self.material.at(issuance.timestamp_ms);
        let precertificate = material.authority.precertificate(issuance)?;
        let issuer_key_hash = material.authority.issuer_key_hash();
        let precertificate_leaf =
            ca::ct::precert_leaf(issuance.timestamp_ms, issuer_key_hash, &precertificate.tbs)?;
        let logged_precertificate = match self
            .append(sequencer, log, precertificate_leaf.clone())
            .await
        {
            Err(SequenceError::NotLeader(_)) => return Err(IssueError::NotLeader),
            other => other.map_err(|error| IssueError::NotLogged {
                what: "precertificate",
                error,
            })?,
        };
        let sct = material.ct_key.sign_precert(
            issuance.timestamp_ms,
            issuer_key_hash,
            &precertificate.tbs,
            logged_precertificate.index,
        )?;
        let certificate = material
            .authority
            .certificate(issuance, &precertificate, &sct)?;
        let certificate_leaf = ca::ct::x509_leaf(issuance.timestamp_ms, &certificate)?;
        let logged = self
            .append(sequencer, log, certificate_leaf.clone())
            .await
            .map_err(|error| IssueError::NotLogged {
                what: "certificate",
                error,
            })?;
        Ok(Issued {
            certificate,
            precertificate_leaf,
            precertificate: logged_precertificate,
            certificate_leaf,
            logged,
        })
    }

    /// Appends one leaf to the certificate log `log` and waits, at most [`COMMIT_TIMEOUT`], for its
    /// commit.
    async fn append(
        &self,
        sequencer: &Sequencer,
        log: &LogName,
        leaf: Vec<u8>,
    ) -> Result<Sequenced, SequenceError> {
        tokio::time::timeout(COMMIT_TIMEOUT, sequencer.submit(log.clone(), leaf))
            .await
            .unwrap_or_else(|_| {
                Err(SequenceError::Unknown(format!(
                    "not committed within {} s",
                    COMMIT_TIMEOUT.as_secs()
                )))
            })
    }
}
