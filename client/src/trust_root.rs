//! Sigstore `trusted_root.json` (protobuf-specs `TrustedRoot`, media type
//! `application/vnd.dev.sigstore.trustedroot+json;version=0.1`): the keys and certificates a
//! verifier trusts, each with the time range in which it may be used.
//!
//! Parsing is strict: unknown members, a missing `validFor.start`, bad base64 or timestamps are
//! errors, so that a damaged trust file is never read as a weaker one (conformance case
//! `trust-root-tlog-missing-validity-start_fail`). Keys are kept as bytes with their declared
//! `keyDetails` and parsed when used, because real trusted roots carry keys this verifier never
//! needs in forms it need not read (a CT log's bare PKCS#1 RSA key, for instance).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tlog::entry::HashAlgorithm;

use crate::time::{TimeRange, UnixMillis};

/// The only trusted root media type accepted (sigstore-python 4.5 accepts only this one too).
pub const TRUSTED_ROOT_MEDIA_TYPE_V01: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";

/// The largest trusted root file read: 1 MiB (the public-good one is about 6 KiB).
pub const TRUSTED_ROOT_BYTES_MAX: usize = 1 << 20;

/// The most entries of each kind (logs, CAs, TSAs) and certificates per chain.
pub const TRUSTED_ROOT_ITEMS_MAX: usize = 64;

/// Why a trusted root was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustRootError {
    /// The file is larger than [`TRUSTED_ROOT_BYTES_MAX`].
    #[error("trusted root is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The JSON does not match the TrustedRoot schema.
    #[error("trusted root JSON: {0}")]
    Json(String),
    /// The media type is not the supported one.
    #[error("trusted root media type {0:?} is not supported")]
    MediaType(String),
    /// A field's value is invalid.
    #[error("trusted root {field}: {reason}")]
    Field {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A transparency log (Rekor) or certificate transparency log the verifier trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransparencyLog {
    /// The log's base URL, whose host is the key name of its checkpoint signatures.
    pub base_url: String,
    /// The log's public key bytes (`publicKey.rawBytes`, usually a DER SPKI).
    pub public_key: Vec<u8>,
    /// The declared key details (`publicKey.keyDetails`), e.g. `PKIX_ECDSA_P256_SHA_256`.
    pub key_details: String,
    /// When the key may be used.
    pub valid_for: TimeRange,
    /// The log id (`logId.keyId`): SHA-256 of the key for Rekor v1 and CT logs.
    pub log_id: Vec<u8>,
}

impl TransparencyLog {
    /// The host (and port) of [`TransparencyLog::base_url`]: the name Rekor signs its
    /// checkpoints under.
    pub fn host(&self) -> &str {
        let without_scheme = self
            .base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, rest)| rest);
        without_scheme
            .split(['/', '?', '#'])
            .next()
            .unwrap_or(without_scheme)
    }
}

/// A certificate authority or timestamp authority: a chain whose last certificate is the
/// trust anchor, and when it may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateAuthority {
    /// The authority's URI, for messages.
    pub uri: String,
    /// DER certificates, the issuing (or timestamping) certificate first, the root last.
    pub cert_chain: Vec<Vec<u8>>,
    /// When the authority may be used.
    pub valid_for: TimeRange,
}

/// A parsed, checked trusted root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedRoot {
    /// Rekor logs.
    pub tlogs: Vec<TransparencyLog>,
    /// Fulcio-like certificate authorities.
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// Certificate transparency logs.
    pub ctlogs: Vec<TransparencyLog>,
    /// RFC 3161 timestamp authorities.
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

impl TrustedRoot {
    /// Parses and checks a `trusted_root.json`.
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, TrustRootError> {
        if bytes.len() > TRUSTED_ROOT_BYTES_MAX {
            return Err(TrustRootError::TooLarge {
                len: bytes.len(),
                max: TRUSTED_ROOT_BYTES_MAX,
            });
        }
        let json: json::TrustedRoot =
            serde_json::from_slice(bytes).map_err(|e| TrustRootError::Json(e.to_string()))?;
        if json.media_type != TRUSTED_ROOT_MEDIA_TYPE_V01 {
            return Err(TrustRootError::MediaType(
                json.media_type.chars().take(100).collect(),
            ));
        }
        Ok(TrustedRoot {
            tlogs: logs(&json.tlogs, "tlogs")?,
            certificate_authorities: authorities(
                &json.certificate_authorities,
                "certificateAuthorities",
            )?,
            ctlogs: logs(&json.ctlogs, "ctlogs")?,
            timestamp_authorities: authorities(
                &json.timestamp_authorities,
                "timestampAuthorities",
            )?,
        })
    }

    /// The Rekor log with this log id.
    pub fn tlog(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.tlogs.iter().find(|log| log.log_id == log_id)
    }
}

fn logs(items: &[json::Log], field: &str) -> Result<Vec<TransparencyLog>, TrustRootError> {
    bound(items.len(), field)?;
    items
        .iter()
        .enumerate()
        .map(|(i, log)| {
            let path = format!("{field}[{i}]");
            if log.hash_algorithm.hash_algorithm() != Some(HashAlgorithm::Sha256) {
                return Err(invalid(
                    &format!("{path}.hashAlgorithm"),
                    "only SHA2_256 logs are supported",
                ));
            }
            Ok(TransparencyLog {
                base_url: log.base_url.clone(),
                public_key: base64(&log.public_key.raw_bytes, &format!("{path}.publicKey"))?,
                key_details: log.public_key.key_details.clone(),
                valid_for: time_range(
                    &log.public_key.valid_for,
                    &format!("{path}.publicKey.validFor"),
                )?,
                log_id: base64(&log.log_id.key_id, &format!("{path}.logId.keyId"))?,
            })
        })
        .collect()
}

fn authorities(
    items: &[json::Authority],
    field: &str,
) -> Result<Vec<CertificateAuthority>, TrustRootError> {
    bound(items.len(), field)?;
    items
        .iter()
        .enumerate()
        .map(|(i, authority)| {
            let path = format!("{field}[{i}]");
            let certificates = &authority.cert_chain.certificates;
            if certificates.is_empty() {
                return Err(invalid(&format!("{path}.certChain"), "empty"));
            }
            bound(certificates.len(), &format!("{path}.certChain"))?;
            Ok(CertificateAuthority {
                uri: authority.uri.clone().unwrap_or_default(),
                cert_chain: certificates
                    .iter()
                    .enumerate()
                    .map(|(j, c)| base64(&c.raw_bytes, &format!("{path}.certChain[{j}]")))
                    .collect::<Result<_, _>>()?,
                valid_for: time_range(&authority.valid_for, &format!("{path}.validFor"))?,
            })
        })
        .collect()
}

fn time_range(range: &json::TimeRange, field: &str) -> Result<TimeRange, TrustRootError> {
    let parse = |text: &str, which: &str| {
        UnixMillis::parse_rfc3339(text)
            .ok_or_else(|| invalid(&format!("{field}.{which}"), "not an RFC 3339 UTC timestamp"))
    };
    let start = range
        .start
        .as_deref()
        .ok_or_else(|| invalid(field, "start is required"))?;
    let start = parse(start, "start")?;
    let end = range
        .end
        .as_deref()
        .map(|end| parse(end, "end"))
        .transpose()?;
    Ok(TimeRange { start, end })
}

fn base64(text: &str, field: &str) -> Result<Vec<u8>, TrustRootError> {
    BASE64
        .decode(text)
        .map_err(|_| invalid(field, "not valid base64"))
}

fn bound(len: usize, field: &str) -> Result<(), TrustRootError> {
    if len > TRUSTED_ROOT_ITEMS_MAX {
        return Err(invalid(
            field,
            &format!("{len} items, at most {TRUSTED_ROOT_ITEMS_MAX} allowed"),
        ));
    }
    Ok(())
}

fn invalid(field: &str, reason: &str) -> TrustRootError {
    TrustRootError::Field {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The JSON shapes, as protobuf's JSON mapping defines them (`crate::protojson`): lowerCamel
/// names, and the proto field names too; a field at its default value (or a message left out)
/// may be absent or `null`. Unknown members are refused. Defaults are judged by the checks
/// (a log without `validFor.start`, an unspecified hash algorithm), not by the shape.
mod json {
    use serde::Deserialize;

    use crate::protojson::{Enum, or_default};

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct TrustedRoot {
        #[serde(default, deserialize_with = "or_default", alias = "media_type")]
        pub(super) media_type: String,
        #[serde(default, deserialize_with = "or_default")]
        pub(super) tlogs: Vec<Log>,
        #[serde(
            default,
            deserialize_with = "or_default",
            alias = "certificate_authorities"
        )]
        pub(super) certificate_authorities: Vec<Authority>,
        #[serde(default, deserialize_with = "or_default")]
        pub(super) ctlogs: Vec<Log>,
        #[serde(
            default,
            deserialize_with = "or_default",
            alias = "timestamp_authorities"
        )]
        pub(super) timestamp_authorities: Vec<Authority>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Log {
        #[serde(default, deserialize_with = "or_default", alias = "base_url")]
        pub(super) base_url: String,
        #[serde(default, deserialize_with = "or_default", alias = "hash_algorithm")]
        pub(super) hash_algorithm: Enum,
        #[serde(default, deserialize_with = "or_default", alias = "public_key")]
        pub(super) public_key: PublicKey,
        #[serde(default, deserialize_with = "or_default", alias = "log_id")]
        pub(super) log_id: LogId,
        #[serde(default, alias = "checkpoint_key_id")]
        #[allow(dead_code)]
        pub(super) checkpoint_key_id: Option<LogId>,
        #[serde(default)]
        #[allow(dead_code)]
        pub(super) operator: Option<String>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct PublicKey {
        #[serde(default, deserialize_with = "or_default", alias = "raw_bytes")]
        pub(super) raw_bytes: String,
        #[serde(default, deserialize_with = "or_default", alias = "key_details")]
        pub(super) key_details: String,
        #[serde(default, deserialize_with = "or_default", alias = "valid_for")]
        pub(super) valid_for: TimeRange,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct LogId {
        #[serde(default, deserialize_with = "or_default", alias = "key_id")]
        pub(super) key_id: String,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Authority {
        #[serde(default)]
        #[allow(dead_code)]
        pub(super) subject: Option<Subject>,
        #[serde(default)]
        pub(super) uri: Option<String>,
        #[serde(default, deserialize_with = "or_default", alias = "cert_chain")]
        pub(super) cert_chain: CertChain,
        #[serde(default, deserialize_with = "or_default", alias = "valid_for")]
        pub(super) valid_for: TimeRange,
        #[serde(default)]
        #[allow(dead_code)]
        pub(super) operator: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Subject {
        #[serde(default)]
        #[allow(dead_code)]
        pub(super) organization: Option<String>,
        #[serde(default, alias = "common_name")]
        #[allow(dead_code)]
        pub(super) common_name: Option<String>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct CertChain {
        #[serde(default, deserialize_with = "or_default")]
        pub(super) certificates: Vec<RawBytes>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct RawBytes {
        #[serde(default, deserialize_with = "or_default", alias = "raw_bytes")]
        pub(super) raw_bytes: String,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct TimeRange {
        #[serde(default)]
        pub(super) start: Option<String>,
        #[serde(default)]
        pub(super) end: Option<String>,
    }
}
