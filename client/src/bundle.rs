//! Sigstore bundles (protobuf-specs `Bundle`, media types v0.1, v0.2 and v0.3): the signature,
//! the material to verify it, and the transparency log and timestamp evidence.
//!
//! [`Bundle::from_json`] decodes the JSON strictly (unknown members are refused, every base64
//! field is decoded, every list is bounded) and checks the rules that depend on the version:
//! v0.1 and v0.2 carry `x509CertificateChain` (leaf first), v0.3 a single `certificate`; a
//! chain may not carry a root, since the verifier takes trust anchors only from the trusted
//! root; from v0.2 on, every log entry needs an inclusion proof with a checkpoint. What the
//! evidence proves is checked later, by [`crate::verify`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tlog::entry::HashAlgorithm;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The largest bundle read: 32 MiB (a DSSE payload is the only large part; Rekor v1 caps an
/// envelope at about that much).
pub const BUNDLE_BYTES_MAX: usize = 32 << 20;

/// The most transparency log entries in a bundle.
pub const TLOG_ENTRIES_MAX: usize = 8;

/// The most RFC 3161 timestamps in a bundle.
pub const TIMESTAMPS_MAX: usize = 8;

/// The most certificates in an `x509CertificateChain`.
pub const CHAIN_CERTIFICATES_MAX: usize = 10;

/// Why a bundle was refused before any signature was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file is larger than [`BUNDLE_BYTES_MAX`].
    #[error("bundle is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The JSON is malformed or does not match the Bundle schema.
    #[error("bundle JSON: {0}")]
    Json(String),
    /// The media type is not a known bundle version.
    #[error("bundle media type {0:?} is not a supported version (0.1, 0.2 or 0.3)")]
    MediaType(String),
    /// A field's value is invalid, missing or not allowed in this version.
    #[error("bundle {field}: {reason}")]
    Field {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The bundle format version, from the media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    /// `application/vnd.dev.sigstore.bundle+json;version=0.1`.
    V01,
    /// `application/vnd.dev.sigstore.bundle+json;version=0.2`.
    V02,
    /// `application/vnd.dev.sigstore.bundle+json;version=0.3` or
    /// `application/vnd.dev.sigstore.bundle.v0.3+json`.
    V03,
}

/// What the signature is verified with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerificationMaterial {
    /// A signing certificate (DER), to be chained to a trusted CA.
    Certificate(Vec<u8>),
    /// A managed key, identified only by a hint; the verifier supplies the key.
    PublicKey {
        /// The unauthenticated hint, if any.
        hint: Option<String>,
    },
}

/// What was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A signature over the artifact (hashedrekord).
    MessageSignature {
        /// The artifact digest the bundle states, if any.
        digest: Option<(HashAlgorithm, Vec<u8>)>,
        /// The signature.
        signature: Vec<u8>,
    },
    /// A DSSE envelope (an in-toto attestation) with exactly one signature.
    Dsse(DsseEnvelope),
}

/// A DSSE envelope as a bundle carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsseEnvelope {
    /// `payloadType`.
    pub payload_type: String,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The signature over the PAE.
    pub signature: Vec<u8>,
}

/// An inclusion proof with its checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf index the proof is for.
    pub log_index: u64,
    /// The root hash the proof leads to.
    pub root_hash: Vec<u8>,
    /// The size of that tree.
    pub tree_size: u64,
    /// Sibling hashes, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The signed checkpoint (a signed note), if present.
    pub checkpoint: Option<String>,
}

/// One transparency log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogEntry {
    /// The entry's index (for Rekor v1, the global index the SET covers).
    pub log_index: u64,
    /// The log id (`logId.keyId`).
    pub log_id: Vec<u8>,
    /// `kindVersion.kind`.
    pub kind: String,
    /// `kindVersion.version`.
    pub version: String,
    /// Rekor v1's `integratedTime`, in Unix seconds (absent or 0 for Rekor v2).
    pub integrated_time: Option<i64>,
    /// The signed entry timestamp (`inclusionPromise.signedEntryTimestamp`).
    pub signed_entry_timestamp: Option<Vec<u8>>,
    /// The inclusion proof.
    pub inclusion_proof: Option<InclusionProof>,
    /// The canonicalized body: the exact log leaf.
    pub canonicalized_body: Vec<u8>,
}

/// A decoded and structurally checked bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The format version.
    pub version: BundleVersion,
    /// The certificate or key reference.
    pub material: VerificationMaterial,
    /// The transparency log entries (at least one).
    pub tlog_entries: Vec<TlogEntry>,
    /// RFC 3161 `TimeStampResp` DER blobs.
    pub timestamps: Vec<Vec<u8>>,
    /// The signed content.
    pub content: Content,
}

impl Bundle {
    /// Parses and checks a bundle's JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        if bytes.len() > BUNDLE_BYTES_MAX {
            return Err(BundleError::TooLarge {
                len: bytes.len(),
                max: BUNDLE_BYTES_MAX,
            });
        }
        let json: json::Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Json(e.to_string()))?;
        let version = match json.media_type.as_str() {
            "application/vnd.dev.sigstore.bundle+json;version=0.1" => BundleVersion::V01,
            "application/vnd.dev.sigstore.bundle+json;version=0.2" => BundleVersion::V02,
            "application/vnd.dev.sigstore.bundle+json;version=0.3"
            | "application/vnd.dev.sigstore.bundle.v0.3+json" => BundleVersion::V03,
            other => return Err(BundleError::MediaType(other.chars().take(100).collect())),
        };
        let vm = &json.verification_material;
        let material = material(version, vm)?;

        if vm.tlog_entries.is_empty() {
            return Err(invalid(
                "verificationMaterial.tlogEntries",
                "at least one transparency log entry is required",
            ));
        }
        if vm.tlog_entries.len() > TLOG_ENTRIES_MAX {
            return Err(invalid(
                "verificationMaterial.tlogEntries",
                &format!("at most {TLOG_ENTRIES_MAX} entries allowed"),
            ));
        }
        let tlog_entries = vm
            .tlog_entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                tlog_entry(
                    version,
                    entry,
                    &format!("verificationMaterial.tlogEntries[{i}]"),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;

        let timestamps = match &vm.timestamp_verification_data {
            None => Vec::new(),
            Some(data) => {
                if data.rfc3161_timestamps.len() > TIMESTAMPS_MAX {
                    return Err(invalid(
                        "verificationMaterial.timestampVerificationData",
                        &format!("at most {TIMESTAMPS_MAX} timestamps allowed"),
                    ));
                }
                data.rfc3161_timestamps
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        base64(
                            &t.signed_timestamp,
                            &format!(
                                "verificationMaterial.timestampVerificationData.rfc3161Timestamps[{i}]"
                            ),
                        )
                    })
                    .collect::<Result<_, _>>()?
            }
        };

        let content = match (&json.message_signature, &json.dsse_envelope) {
            (Some(message), None) => {
                let digest = message
                    .message_digest
                    .as_ref()
                    .map(|d| {
                        let algorithm = d.algorithm.hash_algorithm().ok_or_else(|| {
                            invalid(
                                "messageSignature.messageDigest.algorithm",
                                "unsupported hash algorithm",
                            )
                        })?;
                        let bytes = base64(&d.digest, "messageSignature.messageDigest.digest")?;
                        if bytes.len() != algorithm.digest_len() {
                            return Err(invalid(
                                "messageSignature.messageDigest.digest",
                                "wrong length for its algorithm",
                            ));
                        }
                        Ok((algorithm, bytes))
                    })
                    .transpose()?;
                let signature = base64(&message.signature, "messageSignature.signature")?;
                Content::MessageSignature { digest, signature }
            }
            (None, Some(envelope)) => {
                if envelope.signatures.len() != 1 {
                    return Err(invalid(
                        "dsseEnvelope.signatures",
                        "exactly one signature is required",
                    ));
                }
                let signature = envelope
                    .signatures
                    .first()
                    .map(|s| base64(&s.sig, "dsseEnvelope.signatures[0].sig"))
                    .transpose()?
                    .unwrap_or_default();
                Content::Dsse(DsseEnvelope {
                    payload_type: envelope.payload_type.clone(),
                    payload: base64(&envelope.payload, "dsseEnvelope.payload")?,
                    signature,
                })
            }
            _ => {
                return Err(invalid(
                    "content",
                    "exactly one of messageSignature and dsseEnvelope is required",
                ));
            }
        };

        Ok(Bundle {
            version,
            material,
            tlog_entries,
            timestamps,
            content,
        })
    }

    /// The signature whose timestamps RFC 3161 tokens attest (the message signature, or the
    /// DSSE envelope's signature).
    pub fn signature(&self) -> &[u8] {
        match &self.content {
            Content::MessageSignature { signature, .. } => signature,
            Content::Dsse(envelope) => &envelope.signature,
        }
    }
}

impl TlogEntry {
    /// Parses one Rekor v2 `TransparencyLogEntry` as a log answers an upload: the shape of a
    /// bundle's `tlogEntries` item, under a v0.3 bundle's rules (an inclusion proof with its
    /// checkpoint is required).
    pub fn from_json(bytes: &[u8]) -> Result<TlogEntry, BundleError> {
        if bytes.len() > BUNDLE_BYTES_MAX {
            return Err(BundleError::TooLarge {
                len: bytes.len(),
                max: BUNDLE_BYTES_MAX,
            });
        }
        let json: json::TlogEntry =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Json(e.to_string()))?;
        tlog_entry(BundleVersion::V03, &json, "transparencyLogEntry")
    }
}

fn material(
    version: BundleVersion,
    vm: &json::VerificationMaterial,
) -> Result<VerificationMaterial, BundleError> {
    const FIELD: &str = "verificationMaterial";
    match (&vm.public_key, &vm.x509_certificate_chain, &vm.certificate) {
        (Some(key), None, None) => Ok(VerificationMaterial::PublicKey {
            hint: key.hint.clone(),
        }),
        (None, Some(chain), None) if version < BundleVersion::V03 => {
            let certificates = &chain.certificates;
            let field = "verificationMaterial.x509CertificateChain.certificates";
            if certificates.is_empty() {
                return Err(invalid(field, "empty certificate chain"));
            }
            if certificates.len() > CHAIN_CERTIFICATES_MAX {
                return Err(invalid(
                    field,
                    &format!("at most {CHAIN_CERTIFICATES_MAX} certificates allowed"),
                ));
            }
            let ders = certificates
                .iter()
                .enumerate()
                .map(|(i, c)| base64(&c.raw_bytes, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            // The verifier chains the leaf to a CA from the trusted root and ignores the rest;
            // a bundle that ships its own root is malformed (or an attempt to smuggle a trust
            // anchor), so it is refused rather than silently ignored.
            for (i, der) in ders.iter().enumerate().skip(1) {
                let (_, certificate) = X509Certificate::from_der(der)
                    .map_err(|_| invalid(&format!("{field}[{i}]"), "not a DER certificate"))?;
                if certificate.subject().as_raw() == certificate.issuer().as_raw() {
                    return Err(invalid(
                        &format!("{field}[{i}]"),
                        "the chain contains a root (self-issued) certificate",
                    ));
                }
            }
            let leaf = ders.into_iter().next().unwrap_or_default();
            Ok(VerificationMaterial::Certificate(leaf))
        }
        (None, None, Some(certificate)) if version == BundleVersion::V03 => {
            Ok(VerificationMaterial::Certificate(base64(
                &certificate.raw_bytes,
                "verificationMaterial.certificate",
            )?))
        }
        (None, Some(_), None) => Err(invalid(
            FIELD,
            "bundle v0.3 carries a single certificate, not x509CertificateChain",
        )),
        (None, None, Some(_)) => Err(invalid(
            FIELD,
            "bundles before v0.3 carry x509CertificateChain, not certificate",
        )),
        _ => Err(invalid(
            FIELD,
            "exactly one of publicKey, x509CertificateChain and certificate is required",
        )),
    }
}

fn tlog_entry(
    version: BundleVersion,
    entry: &json::TlogEntry,
    path: &str,
) -> Result<TlogEntry, BundleError> {
    let inclusion_proof = entry
        .inclusion_proof
        .as_ref()
        .map(|proof| {
            let proof_path = format!("{path}.inclusionProof");
            if proof.hashes.len() > tlog::proof::PROOF_HASHES_MAX {
                return Err(invalid(&format!("{proof_path}.hashes"), "too many hashes"));
            }
            Ok(InclusionProof {
                log_index: unsigned(&proof.log_index, &format!("{proof_path}.logIndex"))?,
                root_hash: base64(&proof.root_hash, &format!("{proof_path}.rootHash"))?,
                tree_size: unsigned(&proof.tree_size, &format!("{proof_path}.treeSize"))?,
                hashes: proof
                    .hashes
                    .iter()
                    .enumerate()
                    .map(|(i, h)| base64(h, &format!("{proof_path}.hashes[{i}]")))
                    .collect::<Result<_, _>>()?,
                // An empty envelope is the field's default: no checkpoint.
                checkpoint: proof
                    .checkpoint
                    .as_ref()
                    .map(|c| c.envelope.clone())
                    .filter(|envelope| !envelope.is_empty()),
            })
        })
        .transpose()?;
    match &inclusion_proof {
        // From v0.2 on, offline verification must not depend on the SET alone.
        Some(proof) if version >= BundleVersion::V02 && proof.checkpoint.is_none() => {
            return Err(invalid(
                &format!("{path}.inclusionProof.checkpoint"),
                "required from bundle v0.2 on",
            ));
        }
        None if version >= BundleVersion::V02 => {
            return Err(invalid(
                &format!("{path}.inclusionProof"),
                "required from bundle v0.2 on",
            ));
        }
        None if entry.inclusion_promise.is_none() => {
            return Err(invalid(
                path,
                "neither an inclusion proof nor an inclusion promise",
            ));
        }
        _ => {}
    }
    // 0, the default, is what a Rekor v2 entry (which has no integrated time) carries.
    let integrated_time = Some(signed(
        &entry.integrated_time,
        &format!("{path}.integratedTime"),
    )?)
    .filter(|&t| t != 0);
    Ok(TlogEntry {
        log_index: unsigned(&entry.log_index, &format!("{path}.logIndex"))?,
        log_id: base64(&entry.log_id.key_id, &format!("{path}.logId.keyId"))?,
        kind: entry.kind_version.kind.clone(),
        version: entry.kind_version.version.clone(),
        integrated_time,
        signed_entry_timestamp: entry
            .inclusion_promise
            .as_ref()
            .map(|p| {
                base64(
                    &p.signed_entry_timestamp,
                    &format!("{path}.inclusionPromise.signedEntryTimestamp"),
                )
            })
            .transpose()?,
        inclusion_proof,
        canonicalized_body: base64(
            &entry.canonicalized_body,
            &format!("{path}.canonicalizedBody"),
        )?,
    })
}

fn base64(text: &str, field: &str) -> Result<Vec<u8>, BundleError> {
    BASE64
        .decode(text)
        .map_err(|_| invalid(field, "not valid base64"))
}

fn unsigned(value: &json::Int64, field: &str) -> Result<u64, BundleError> {
    let number = signed(value, field)?;
    u64::try_from(number).map_err(|_| invalid(field, "negative"))
}

/// protobuf JSON writes 64-bit integers as decimal strings, and parsers accept numbers too.
fn signed(value: &json::Int64, field: &str) -> Result<i64, BundleError> {
    value
        .value()
        .ok_or_else(|| invalid(field, "not a 64-bit integer"))
}

fn invalid(field: &str, reason: &str) -> BundleError {
    BundleError::Field {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The JSON shapes, as protobuf's JSON mapping defines them (`crate::protojson`): lowerCamel
/// names, and the proto field names too; a field at its default value may be absent or `null`.
/// Unknown members are refused. Whether a value is acceptable (a zero tree size, an empty
/// signature) is decided after parsing, with the field's name, not by the shape.
mod json {
    use serde::Deserialize;

    use crate::protojson::or_default;
    pub(super) use crate::protojson::{Enum, Int64};

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Bundle {
        #[serde(default, deserialize_with = "or_default", alias = "media_type")]
        pub(super) media_type: String,
        #[serde(
            default,
            deserialize_with = "or_default",
            alias = "verification_material"
        )]
        pub(super) verification_material: VerificationMaterial,
        #[serde(default, alias = "message_signature")]
        pub(super) message_signature: Option<MessageSignature>,
        #[serde(default, alias = "dsse_envelope")]
        pub(super) dsse_envelope: Option<Envelope>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct VerificationMaterial {
        #[serde(default, alias = "public_key")]
        pub(super) public_key: Option<PublicKeyIdentifier>,
        #[serde(default, alias = "x509_certificate_chain")]
        pub(super) x509_certificate_chain: Option<CertificateChain>,
        #[serde(default)]
        pub(super) certificate: Option<RawBytes>,
        #[serde(default, deserialize_with = "or_default", alias = "tlog_entries")]
        pub(super) tlog_entries: Vec<TlogEntry>,
        #[serde(default, alias = "timestamp_verification_data")]
        pub(super) timestamp_verification_data: Option<TimestampVerificationData>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct PublicKeyIdentifier {
        #[serde(default)]
        pub(super) hint: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct CertificateChain {
        #[serde(default, deserialize_with = "or_default")]
        pub(super) certificates: Vec<RawBytes>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct RawBytes {
        #[serde(default, deserialize_with = "or_default", alias = "raw_bytes")]
        pub(super) raw_bytes: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct TimestampVerificationData {
        #[serde(default, deserialize_with = "or_default", alias = "rfc3161_timestamps")]
        pub(super) rfc3161_timestamps: Vec<Rfc3161Timestamp>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Rfc3161Timestamp {
        #[serde(default, deserialize_with = "or_default", alias = "signed_timestamp")]
        pub(super) signed_timestamp: String,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct TlogEntry {
        #[serde(default, deserialize_with = "or_default", alias = "log_index")]
        pub(super) log_index: Int64,
        #[serde(default, deserialize_with = "or_default", alias = "log_id")]
        pub(super) log_id: LogId,
        #[serde(default, deserialize_with = "or_default", alias = "kind_version")]
        pub(super) kind_version: KindVersion,
        #[serde(default, deserialize_with = "or_default", alias = "integrated_time")]
        pub(super) integrated_time: Int64,
        #[serde(default, alias = "inclusion_promise")]
        pub(super) inclusion_promise: Option<InclusionPromise>,
        #[serde(default, alias = "inclusion_proof")]
        pub(super) inclusion_proof: Option<InclusionProof>,
        #[serde(default, deserialize_with = "or_default", alias = "canonicalized_body")]
        pub(super) canonicalized_body: String,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct LogId {
        #[serde(default, deserialize_with = "or_default", alias = "key_id")]
        pub(super) key_id: String,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct KindVersion {
        #[serde(default, deserialize_with = "or_default")]
        pub(super) kind: String,
        #[serde(default, deserialize_with = "or_default")]
        pub(super) version: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct InclusionPromise {
        #[serde(
            default,
            deserialize_with = "or_default",
            alias = "signed_entry_timestamp"
        )]
        pub(super) signed_entry_timestamp: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct InclusionProof {
        #[serde(default, deserialize_with = "or_default", alias = "log_index")]
        pub(super) log_index: Int64,
        #[serde(default, deserialize_with = "or_default", alias = "root_hash")]
        pub(super) root_hash: String,
        #[serde(default, deserialize_with = "or_default", alias = "tree_size")]
        pub(super) tree_size: Int64,
        #[serde(default, deserialize_with = "or_default")]
        pub(super) hashes: Vec<String>,
        #[serde(default)]
        pub(super) checkpoint: Option<Checkpoint>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Checkpoint {
        #[serde(default, deserialize_with = "or_default")]
        pub(super) envelope: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct MessageSignature {
        #[serde(default, alias = "message_digest")]
        pub(super) message_digest: Option<MessageDigest>,
        #[serde(default, deserialize_with = "or_default")]
        pub(super) signature: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct MessageDigest {
        #[serde(default, deserialize_with = "or_default")]
        pub(super) algorithm: Enum,
        #[serde(default, deserialize_with = "or_default")]
        pub(super) digest: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Envelope {
        #[serde(default, deserialize_with = "or_default")]
        pub(super) payload: String,
        #[serde(default, deserialize_with = "or_default", alias = "payload_type")]
        pub(super) payload_type: String,
        #[serde(default, deserialize_with = "or_default")]
        pub(super) signatures: Vec<EnvelopeSignature>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct EnvelopeSignature {
        #[serde(default, deserialize_with = "or_default")]
        pub(super) sig: String,
        #[serde(default)]
        #[allow(dead_code)]
        pub(super) keyid: Option<String>,
    }
}
