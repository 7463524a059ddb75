//! Offline verification of a Sigstore bundle against a trusted root and a policy, as
//! sigstore-go and sigstore-python do it, in this order:
//!
//! 1. **Material**: the bundle's certificate (Fulcio profile) or, for a managed-key bundle, the
//!    key the caller supplies; the one must match the policy's kind.
//! 2. **Signature**: over the artifact's digest (`messageSignature`, whose stated
//!    `messageDigest` must be the artifact's), or over the DSSE PAE, with an in-toto statement
//!    whose `subject` names the artifact's SHA-256.
//! 3. **Timestamps**: every RFC 3161 timestamp must verify against a trusted TSA
//!    ([`crate::timestamp`]); each gives a verified time.
//! 4. **Log entries**: each must match the bundle, be included under a checkpoint signed by a
//!    trusted log, and, if it has a SET, that SET must verify; a verified SET makes its
//!    `integratedTime` a verified time. The log's key must be valid at the entry's time.
//! 5. **Time**: at least one verified time is required ("observer timestamps"); an entry
//!    without a SET (Rekor v2) needs an RFC 3161 one.
//! 6. **Certificate**: at every verified time, the leaf chains to a trusted CA valid then and is
//!    itself valid; exactly one embedded SCT from a trusted CT log verifies; the SAN and the
//!    OIDC issuer are the policy's.
//!
//! Nothing is fetched and no clock is read: the verified times stand in for "now".

use std::io::Read;

use serde_json::Value;
use tlog::entry::{Digest, HashAlgorithm};

use crate::bundle::{Bundle, Content, VerificationMaterial};
use crate::certificate::{CertificateError, SigningCertificate};
use crate::key::PublicKey;
use crate::log_entry::{self, LogEntryError, SignerMaterial};
use crate::time::UnixMillis;
use crate::timestamp::{self, TimestampError};
use crate::trust_root::TrustedRoot;

/// The only DSSE payload type Sigstore verifies: an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why a bundle did not verify. Every variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The bundle and the policy disagree on how it was signed.
    #[error("verification material: {0}")]
    Material(&'static str),
    /// The signing certificate failed a check.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The bundle's stated digest is not the artifact's.
    #[error("artifact digest: the bundle's messageDigest is not the artifact's {0}")]
    ArtifactDigest(HashAlgorithm),
    /// The digest the signature needs was not given (only a SHA-256 digest was).
    #[error("artifact digest: the signature is over a {0} digest; pass the artifact itself")]
    DigestUnavailable(HashAlgorithm),
    /// The signature over the artifact or DSSE envelope does not verify.
    #[error("signature: the {0} does not verify with the signing key")]
    Signature(&'static str),
    /// The DSSE envelope is not an in-toto statement about this artifact.
    #[error("in-toto statement: {0}")]
    Statement(&'static str),
    /// An RFC 3161 timestamp failed.
    #[error("RFC 3161 timestamp: {0}")]
    Timestamp(#[from] TimestampError),
    /// The bundle has no transparency log entry.
    #[error("transparency log entry: at least one is required")]
    NoLogEntry,
    /// A transparency log entry failed.
    #[error("transparency log entry: {0}")]
    LogEntry(#[from] LogEntryError),
    /// The log's key is not valid at the entry's time.
    #[error("transparency log key of {log} is not valid at {time}")]
    LogKeyValidity {
        /// The log's URL.
        log: String,
        /// The time of the entry.
        time: UnixMillis,
    },
    /// No time was verified, or a Rekor v2 entry has no timestamp.
    #[error("verified time: {0}")]
    NoVerifiedTime(&'static str),
}

/// Who must have signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// A Fulcio certificate for this identity (an exact SAN: e-mail, URI or username) from this
    /// OIDC issuer.
    Identity {
        /// `--certificate-identity`.
        identity: String,
        /// `--certificate-oidc-issuer`.
        issuer: String,
    },
    /// A managed key.
    Key(PublicKey),
}

/// The artifact, as the digests the verifier may need: always SHA-256, and SHA-384 and SHA-512
/// when the artifact itself was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    digests: Vec<Digest>,
}

impl Artifact {
    /// The artifact's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Artifact {
        Artifact {
            digests: [
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha384,
                HashAlgorithm::Sha512,
            ]
            .map(|algorithm| algorithm.hash(bytes))
            .to_vec(),
        }
    }

    /// Streams the artifact from `reader`, hashing it once with each algorithm.
    pub fn from_reader(mut reader: impl Read) -> std::io::Result<Artifact> {
        use aws_lc_rs::digest::{Context, SHA256, SHA384, SHA512};
        let mut contexts = [
            Context::new(&SHA256),
            Context::new(&SHA384),
            Context::new(&SHA512),
        ];
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            for context in &mut contexts {
                context.update(&buffer[..read]);
            }
        }
        let algorithms = [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ];
        let digests = contexts
            .into_iter()
            .zip(algorithms)
            .map(|(context, algorithm)| Digest::new(algorithm, context.finish().as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        Ok(Artifact { digests })
    }

    /// Only the artifact's SHA-256 digest (`sha256:<hex>` on the command line).
    pub fn from_sha256(digest: [u8; 32]) -> Artifact {
        Artifact {
            // 32 bytes is the SHA-256 length, so `Digest::new` cannot fail.
            digests: Digest::new(HashAlgorithm::Sha256, &digest)
                .into_iter()
                .collect(),
        }
    }

    /// The digest by `algorithm`, if known.
    pub fn digest(&self, algorithm: HashAlgorithm) -> Option<&Digest> {
        self.digests.iter().find(|d| d.algorithm() == algorithm)
    }
}

/// Where a verified time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// A log entry's `integratedTime`, vouched for by its SET.
    SignedEntryTimestamp,
    /// An RFC 3161 timestamp's `genTime`.
    Rfc3161,
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The verified times and their sources.
    pub times: Vec<(UnixMillis, TimeSource)>,
    /// The certificate's identity (the SAN the policy matched), for certificate bundles.
    pub identity: Option<String>,
    /// The certificate's OIDC issuer, for certificate bundles.
    pub issuer: Option<String>,
    /// The log indices of the verified entries.
    pub log_indices: Vec<u64>,
}

/// Verifies `bundle` for `artifact` under `policy`, with trust only from `root`.
pub fn verify(
    bundle: &Bundle,
    root: &TrustedRoot,
    artifact: &Artifact,
    policy: &Policy,
) -> Result<Verified, VerifyError> {
    // 1. Material.
    let certificate = match (&bundle.material, policy) {
        (VerificationMaterial::Certificate(der), Policy::Identity { .. }) => {
            Some(SigningCertificate::parse(der)?)
        }
        (VerificationMaterial::PublicKey { .. }, Policy::Key(_)) => None,
        (VerificationMaterial::PublicKey { .. }, Policy::Identity { .. }) => {
            return Err(VerifyError::Material(
                "the bundle is signed with a managed key; verify it with that key",
            ));
        }
        (VerificationMaterial::Certificate(_), Policy::Key(_)) => {
            return Err(VerifyError::Material(
                "the bundle is signed with a certificate, not a managed key; verify its identity",
            ));
        }
    };
    let key = match (&certificate, policy) {
        (Some(certificate), _) => certificate.public_key(),
        (None, Policy::Key(key)) => key,
        (None, Policy::Identity { .. }) => {
            return Err(VerifyError::Material("no signing key"));
        }
    };
    let signer = match &certificate {
        Some(certificate) => SignerMaterial::Certificate(certificate.der()),
        None => SignerMaterial::PublicKey(key.spki_der()),
    };

    // 2. Signature.
    check_signature(&bundle.content, key, artifact)?;

    // 3. Timestamps.
    let mut times = Vec::new();
    for token in &bundle.timestamps {
        let time = timestamp::verify(token, bundle.signature(), &root.timestamp_authorities)?;
        times.push((time, TimeSource::Rfc3161));
    }
    let rfc3161_times: Vec<UnixMillis> = times.iter().map(|&(time, _)| time).collect();

    // 4. Log entries. `Bundle::from_json` requires one, but a `Bundle` can be built by other
    // means, and without one a timestamped signature would verify without being logged.
    if bundle.tlog_entries.is_empty() {
        return Err(VerifyError::NoLogEntry);
    }
    let mut log_indices = Vec::new();
    for entry in &bundle.tlog_entries {
        let verified = log_entry::verify(entry, &bundle.content, signer, artifact, root)?;
        let entry_times = match verified.integrated_time {
            Some(time) => {
                times.push((time, TimeSource::SignedEntryTimestamp));
                vec![time]
            }
            // 5. An entry without a SET (Rekor v2 has no integrated time) is dated only by
            // the TSA.
            None if rfc3161_times.is_empty() => {
                return Err(VerifyError::NoVerifiedTime(
                    "a log entry without a signed entry timestamp needs an RFC 3161 timestamp",
                ));
            }
            None => rfc3161_times.clone(),
        };
        for time in entry_times {
            if !verified.log.valid_for.contains(time) {
                return Err(VerifyError::LogKeyValidity {
                    log: verified.log.base_url.clone(),
                    time,
                });
            }
        }
        log_indices.push(entry.log_index);
    }
    if times.is_empty() {
        return Err(VerifyError::NoVerifiedTime(
            "neither a signed entry timestamp nor an RFC 3161 timestamp verified",
        ));
    }

    // 6. Certificate.
    let (identity, issuer) = match (&certificate, policy) {
        (Some(certificate), Policy::Identity { identity, issuer }) => {
            let mut authority = None;
            for &(time, _) in &times {
                authority = Some(certificate.verify_chain(&root.certificate_authorities, time)?);
            }
            if let Some(authority) = authority {
                certificate.verify_sct(authority, &root.ctlogs)?;
            }
            certificate.check_identity(identity, issuer)?;
            (Some(identity.clone()), Some(issuer.clone()))
        }
        _ => (None, None),
    };

    Ok(Verified {
        times,
        identity,
        issuer,
        log_indices,
    })
}

fn check_signature(
    content: &Content,
    key: &PublicKey,
    artifact: &Artifact,
) -> Result<(), VerifyError> {
    match content {
        Content::MessageSignature { digest, signature } => {
            let algorithm = match digest {
                Some((algorithm, _)) => *algorithm,
                None => key
                    .algorithm()
                    .default_hash()
                    .unwrap_or(HashAlgorithm::Sha256),
            };
            let artifact_digest = artifact
                .digest(algorithm)
                .ok_or(VerifyError::DigestUnavailable(algorithm))?;
            if let Some((_, stated)) = digest
                && stated.as_slice() != artifact_digest.as_bytes()
            {
                return Err(VerifyError::ArtifactDigest(algorithm));
            }
            if !key.verify_prehashed(algorithm, artifact_digest.as_bytes(), signature) {
                return Err(VerifyError::Signature("message signature"));
            }
        }
        Content::Dsse(envelope) => {
            if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(VerifyError::Statement(
                    "the DSSE payload type is not application/vnd.in-toto+json",
                ));
            }
            let pae = tlog::entry::pae(&envelope.payload_type, &envelope.payload);
            if !key.verify_message(&pae, &envelope.signature) {
                return Err(VerifyError::Signature("DSSE envelope signature"));
            }
            let sha256 = artifact
                .digest(HashAlgorithm::Sha256)
                .ok_or(VerifyError::DigestUnavailable(HashAlgorithm::Sha256))?;
            check_statement_subject(&envelope.payload, &sha256.to_hex())?;
        }
    }
    Ok(())
}

/// Checks that the in-toto statement has a subject whose `sha256` digest is `sha256_hex`.
fn check_statement_subject(payload: &[u8], sha256_hex: &str) -> Result<(), VerifyError> {
    let statement: Value = serde_json::from_slice(payload)
        .map_err(|_| VerifyError::Statement("the DSSE payload is not JSON"))?;
    let subjects = statement["subject"]
        .as_array()
        .ok_or(VerifyError::Statement("the statement has no subject list"))?;
    let matches = subjects.iter().any(|subject| {
        subject["digest"]["sha256"]
            .as_str()
            .is_some_and(|hex| hex.eq_ignore_ascii_case(sha256_hex))
    });
    if !matches {
        return Err(VerifyError::Statement(
            "no subject of the statement has the artifact's sha256 digest",
        ));
    }
    Ok(())
}
