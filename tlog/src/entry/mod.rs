//! The canonical bodies of Rekor entries, byte for byte as Rekor computes them, so that the same
//! signature over the same artifact gives the same leaf (and RFC 6962 leaf hash) in Cairn as in
//! Rekor.
//!
//! A log leaf is the entry's *canonicalized body*: JSON of `{"apiVersion", "kind", "spec"}`
//! serialised with RFC 8785 JCS. The private `jcs` module uses the `serde_json_canonicalizer`
//! crate, the same scheme as the `cyberphone/json-canonicalization` Go package both Rekors call;
//! its tests pin the RFC's examples. The kinds, and the upstream code each was matched against:
//!
//! - hashedrekord 0.0.1 (Rekor v1): `sigstore/rekor` v1.5.4+1 (eee7d8d6),
//!   `pkg/types/hashedrekord/v0.0.1/entry.go`, `pkg/generated/models/hashedrekord_v001_schema.go`,
//!   `pkg/pki/x509/x509.go` (PEM canonicalisation), `pkg/types/entries.go` (JCS).
//! - dsse 0.0.1 (Rekor v1): same commit, `pkg/types/dsse/v0.0.1/entry.go` and
//!   `dsse_v0_0_1_schema.json`.
//! - hashedrekord 0.0.2 (Rekor v2): `sigstore/rekor-tiles` v2.3.0+83 (74e3eb0e),
//!   `pkg/types/hashedrekord/hashedrekord.go`, `internal/server/service.go`,
//!   `internal/algorithmregistry/algorithmregistry.go`, `api/proto/rekor/v2/*.proto`.
//! - dsse 0.0.2 (Rekor v2, withdrawn): rekor-tiles `pkg/types/dsse/dsse.go` as of the parent of
//!   fa390b1c ("Drop DSSE support", #744), which removed it.
//! - intoto 0.0.2 (Rekor v1, deprecated but accepted): `sigstore/rekor` eee7d8d6,
//!   `pkg/types/intoto/v0.0.2/entry.go` and its schema.
//!
//! Enum names come from `sigstore/protobuf-specs` 104df670 `protos/sigstore_common.proto`.
//! Rekor v2 bodies are Go `protojson.Marshal` output (lowerCamel JSON names, `bytes` as standard
//! base64, enums by name, empty fields omitted; we never have empty fields because every one is
//! required) passed through JCS.
//!
//! The rule throughout: **accept a subset of what Rekor accepts, and for everything accepted
//! produce exactly Rekor's bytes.** Where Rekor normalises (PEM re-encoding, signature order) we
//! normalise the same way; where Rekor stores input as sent and a normal form is ambiguous
//! (uppercase hex digests, non-canonical or URL-safe base64), we refuse the input. This module
//! checks shapes, lengths and allow-lists only; the node verifies signatures (over the digest,
//! or over [`pae`] for DSSE) before logging.
//!
//! Verifiers use [`CanonicalBody::parse`] on bytes from a log (it fails on anything that is not
//! exactly the canonical form, including duplicate or reordered members), and compare a body
//! built from the bundle's certificate, signature and digest with the logged one byte for byte
//! (the CVE-2022-36056 check).

mod dsse;
mod hashedrekord;
mod intoto;
mod jcs;
mod pem;
mod template;
mod types;

use serde_json::{Map, Value};

use crate::hash::{Hash, leaf_hash};

pub use dsse::{DsseEnvelope, DsseSignature, DsseV001, DsseV001Signature, DsseV002, pae};
pub use hashedrekord::{HashedRekordV001, HashedRekordV002};
pub use intoto::{INTOTO_KEYID_BYTES_MAX, IntotoV002, IntotoV002Proposal, IntotoV002Signature};
pub use pem::KeyMaterial;
pub use types::{
    Digest, HashAlgorithm, KeyDetails, Signature, SignatureBytes, Verifier, VerifierKey,
};

/// The largest canonical body we build or accept: 65,535 bytes.
///
/// Real bodies are 0.5 KiB (hashedrekord with a public key) to about 4.5 KiB (with a Fulcio
/// certificate). The bound is the largest leaf a C2SP tlog-tiles entry bundle can carry (its
/// length prefix is 16 bits), so every logged body can be served in tiles; it leaves room for a
/// certificate chain or a DSSE entry with several signers, and bounds the memory a hostile body
/// can make a verifier spend. Checked on build and parse.
pub const BODY_BYTES_MAX: usize = crate::tile::BUNDLE_ENTRY_BYTES_MAX;

/// The longest raw signature: 1 KiB. RSA-4096 signatures are 512 bytes, ECDSA P-521 DER at
/// most 139, Ed25519ph 64; nothing on the allow-list comes close.
pub const SIGNATURE_BYTES_MAX: usize = 1024;

/// The longest DER public key or certificate: 16 KiB (Fulcio certificates are about 2 KiB).
pub const KEY_DER_BYTES_MAX: usize = 16 * 1024;

/// The longest PEM text of a Rekor v1 key or certificate chain: 64 KiB.
pub const PEM_BYTES_MAX: usize = 64 * 1024;

/// The most certificates in a PEM chain: 10, Rekor's own limit
/// (`UnmarshalCertificatesFromPEMLimited(…, 10)` in `pkg/pki/x509/x509.go`).
pub const PEM_CERTIFICATES_MAX: usize = 10;

/// The most signatures in a DSSE envelope or entry: 10, rekor-tiles' `maxSignatures`.
pub const DSSE_SIGNATURES_MAX: usize = 10;

/// The longest DSSE envelope text we parse: 4 MiB, rekor-tiles' default request body limit
/// (`max-request-body-size`). The envelope itself is never logged, only its hashes.
pub const DSSE_ENVELOPE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The longest DSSE payload type: 256 bytes (`application/vnd.in-toto+json` is 28).
pub const DSSE_PAYLOAD_TYPE_BYTES_MAX: usize = 256;

// A hashedrekord v0.0.1 with the largest certificate and signature, and a SHA-512 digest, fits
// in a body (members and punctuation take well under 512 bytes).
const _: () = assert!(
    512 + base64_len(pem::certificate_pem_len(KEY_DER_BYTES_MAX))
        + base64_len(SIGNATURE_BYTES_MAX)
        + 128
        <= BODY_BYTES_MAX
);
// The PEM text allowed for a key has room for the largest certificate with CRLF line breaks.
const _: () = assert!(2 * pem::certificate_pem_len(KEY_DER_BYTES_MAX) <= PEM_BYTES_MAX);

/// A field of an entry that failed validation. Every variant names the field, as a JSON path
/// when it came from a body (`spec.data.hash.value`) or the request field otherwise.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A digest is not as long as its algorithm's output.
    #[error("{field}: digest is {actual} bytes, {algorithm} needs {expected}")]
    DigestLength {
        /// The field.
        field: String,
        /// The digest algorithm.
        algorithm: HashAlgorithm,
        /// The length found.
        actual: usize,
        /// The length required.
        expected: usize,
    },
    /// A digest uses a different algorithm than required.
    #[error("{field}: digest algorithm is {actual}, {expected} is required")]
    DigestAlgorithmMismatch {
        /// The field.
        field: String,
        /// The algorithm found.
        actual: HashAlgorithm,
        /// The algorithm required.
        expected: HashAlgorithm,
    },
    /// A hex value is not lowercase hex of an even length.
    #[error("{field}: not lowercase hex")]
    Hex {
        /// The field.
        field: String,
    },
    /// A base64 value is not canonical standard base64 with padding (RFC 4648 §4).
    #[error("{field}: not canonical standard base64 with padding")]
    Base64 {
        /// The field.
        field: String,
    },
    /// A value that must not be empty is.
    #[error("{field}: empty")]
    Empty {
        /// The field.
        field: String,
    },
    /// A value is longer than its bound.
    #[error("{field}: {actual} bytes, at most {max} allowed")]
    TooLong {
        /// The field.
        field: String,
        /// The length found (for base64, an upper bound of the decoded length).
        actual: usize,
        /// The bound.
        max: usize,
    },
    /// A list has more items than its bound.
    #[error("{field}: {count} items, at most {max} allowed")]
    TooMany {
        /// The field.
        field: String,
        /// The number found.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A hash algorithm name is not one the entry kind allows.
    #[error("{field}: unknown hash algorithm {value:?}")]
    UnknownHashAlgorithm {
        /// The field.
        field: String,
        /// The name found (at most 64 characters of it).
        value: String,
    },
    /// A `keyDetails` name is not on the allow-list (see [`KeyDetails`]).
    #[error("{field}: key details {value:?} are not allowed")]
    UnknownKeyDetails {
        /// The field.
        field: String,
        /// The name found (at most 64 characters of it).
        value: String,
    },
    /// The key details name an algorithm without a prehash (pure Ed25519), which cannot sign
    /// a hashedrekord digest.
    #[error("{field}: {key_details} has no digest algorithm, so it cannot sign a hashedrekord")]
    NoDigestAlgorithm {
        /// The field.
        field: String,
        /// The key details found.
        key_details: KeyDetails,
    },
    /// PEM key material is malformed or of an unaccepted shape.
    #[error("{field}: malformed PEM: {reason}")]
    Pem {
        /// The field.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two signatures of one DSSE envelope or entry are equal.
    #[error("{field}: duplicate signature")]
    DuplicateSignature {
        /// The field.
        field: String,
    },
    /// The number of verifiers given does not match the number of envelope signatures.
    #[error("{field}: {verifiers} verifiers for {signatures} signatures")]
    VerifierCount {
        /// The field.
        field: String,
        /// The number of envelope signatures.
        signatures: usize,
        /// The number of verifiers.
        verifiers: usize,
    },
    /// A value a client states is not the one computed from the rest of the input.
    #[error("{field}: not {expected}")]
    Mismatch {
        /// The field.
        field: String,
        /// What it should have been.
        expected: &'static str,
    },
    /// A DSSE envelope is not the JSON object DSSE specifies.
    #[error("{field}: malformed DSSE envelope: {reason}")]
    Envelope {
        /// The field.
        field: String,
        /// The JSON parser's message.
        reason: String,
    },
}

impl InputError {
    /// The name of the field that failed.
    pub fn field(&self) -> &str {
        self.field_slot()
    }

    fn field_slot(&self) -> &String {
        match self {
            InputError::DigestLength { field, .. }
            | InputError::DigestAlgorithmMismatch { field, .. }
            | InputError::Hex { field }
            | InputError::Base64 { field }
            | InputError::Empty { field }
            | InputError::TooLong { field, .. }
            | InputError::TooMany { field, .. }
            | InputError::UnknownHashAlgorithm { field, .. }
            | InputError::UnknownKeyDetails { field, .. }
            | InputError::NoDigestAlgorithm { field, .. }
            | InputError::Pem { field, .. }
            | InputError::DuplicateSignature { field }
            | InputError::VerifierCount { field, .. }
            | InputError::Mismatch { field, .. }
            | InputError::Envelope { field, .. } => field,
        }
    }

    fn field_slot_mut(&mut self) -> &mut String {
        match self {
            InputError::DigestLength { field, .. }
            | InputError::DigestAlgorithmMismatch { field, .. }
            | InputError::Hex { field }
            | InputError::Base64 { field }
            | InputError::Empty { field }
            | InputError::TooLong { field, .. }
            | InputError::TooMany { field, .. }
            | InputError::UnknownHashAlgorithm { field, .. }
            | InputError::UnknownKeyDetails { field, .. }
            | InputError::NoDigestAlgorithm { field, .. }
            | InputError::Pem { field, .. }
            | InputError::DuplicateSignature { field }
            | InputError::VerifierCount { field, .. }
            | InputError::Mismatch { field, .. }
            | InputError::Envelope { field, .. } => field,
        }
    }

    fn with_field(mut self, field: &str) -> InputError {
        *self.field_slot_mut() = field.to_owned();
        self
    }

    fn with_field_prefix(mut self, prefix: &str) -> InputError {
        let slot = self.field_slot_mut();
        *slot = format!("{prefix}{slot}");
        self
    }
}

/// Why bytes are not an entry body we accept, or an entry could not be made into one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is longer than [`BODY_BYTES_MAX`].
    #[error("body is {actual} bytes, at most {max} allowed")]
    TooLarge {
        /// The length found (or built).
        actual: usize,
        /// The bound.
        max: usize,
    },
    /// The body is not JSON.
    #[error("body is not JSON: {reason}")]
    Json {
        /// The JSON parser's message.
        reason: String,
    },
    /// A member has the wrong JSON type.
    #[error("{path}: expected {expected}")]
    Shape {
        /// JSON path of the member.
        path: String,
        /// The JSON type required.
        expected: &'static str,
    },
    /// A required member is missing.
    #[error("{path}: missing")]
    MissingField {
        /// JSON path of the member.
        path: String,
    },
    /// A member the format does not have is present.
    #[error("{path}: unknown member")]
    UnknownField {
        /// JSON path of the member.
        path: String,
    },
    /// The `kind` and `apiVersion` are not one of the five this module knows.
    #[error("unknown entry kind {kind:?} version {api_version:?}")]
    UnknownKind {
        /// The `kind` found (at most 64 characters of it).
        kind: String,
        /// The `apiVersion` found (at most 64 characters of it).
        api_version: String,
    },
    /// A member's value failed validation.
    #[error(transparent)]
    Field(#[from] InputError),
    /// The body is a valid entry but not byte-identical to its canonical form.
    #[error("body is a valid entry but not in canonical form")]
    NotCanonical,
}

/// A typed entry: kind, version and spec.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Entry {
    /// hashedrekord 0.0.1 (Rekor v1).
    HashedRekordV001(HashedRekordV001),
    /// hashedrekord 0.0.2 (Rekor v2).
    HashedRekordV002(HashedRekordV002),
    /// dsse 0.0.1 (Rekor v1).
    DsseV001(DsseV001),
    /// dsse 0.0.2 (Rekor v2 before it dropped DSSE).
    DsseV002(DsseV002),
    /// intoto 0.0.2 (Rekor v1).
    IntotoV002(IntotoV002),
}

impl Entry {
    /// Parses a body in any JSON layout (member order and whitespace are free; for duplicate
    /// member names the last wins, as in Go). Every field is validated as on build. For bytes
    /// from a log, use [`CanonicalBody::parse`], which also requires the canonical form.
    ///
    /// A Rekor v1 hashedrekord request (`POST /api/v1/log/entries`) has exactly the body's
    /// members, so this also parses one (its PEM is canonicalised on the way); dsse requests
    /// (`proposedContent`) do not, and go through [`DsseEnvelope::parse`].
    pub fn parse(body: &[u8]) -> Result<Entry, BodyError> {
        if body.len() > BODY_BYTES_MAX {
            return Err(BodyError::TooLarge {
                actual: body.len(),
                max: BODY_BYTES_MAX,
            });
        }
        match template::parse(body) {
            Some(entry) => Ok(entry),
            None => Entry::parse_json(body),
        }
    }

    /// [`Entry::parse`] through a JSON tree, for any layout.
    fn parse_json(body: &[u8]) -> Result<Entry, BodyError> {
        let value: Value = serde_json::from_slice(body).map_err(|error| BodyError::Json {
            reason: error.to_string(),
        })?;
        let top = value.as_object().ok_or_else(|| BodyError::Shape {
            path: "body".to_owned(),
            expected: "an object",
        })?;
        let kind = string(top, "kind", "kind")?;
        let api_version = string(top, "apiVersion", "apiVersion")?;
        let parse_spec: fn(&Value) -> Result<Entry, BodyError> = match (kind, api_version) {
            ("hashedrekord", "0.0.1") => {
                |spec: &Value| HashedRekordV001::from_spec_json(spec).map(Entry::HashedRekordV001)
            }
            ("hashedrekord", "0.0.2") => {
                |spec: &Value| HashedRekordV002::from_spec_json(spec).map(Entry::HashedRekordV002)
            }
            ("dsse", "0.0.1") => |spec: &Value| DsseV001::from_spec_json(spec).map(Entry::DsseV001),
            ("dsse", "0.0.2") => |spec: &Value| DsseV002::from_spec_json(spec).map(Entry::DsseV002),
            ("intoto", "0.0.2") => {
                |spec: &Value| IntotoV002::from_spec_json(spec).map(Entry::IntotoV002)
            }
            _ => {
                return Err(BodyError::UnknownKind {
                    kind: types::truncated(kind),
                    api_version: types::truncated(api_version),
                });
            }
        };
        let top = object(&value, "body", &["apiVersion", "kind", "spec"])?;
        parse_spec(field(top, "spec"))
    }

    /// The `kind`: `hashedrekord`, `dsse` or `intoto`.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::HashedRekordV001(_) | Entry::HashedRekordV002(_) => "hashedrekord",
            Entry::DsseV001(_) | Entry::DsseV002(_) => "dsse",
            Entry::IntotoV002(_) => "intoto",
        }
    }

    /// The `apiVersion`: `0.0.1` or `0.0.2`.
    pub fn api_version(&self) -> &'static str {
        match self {
            Entry::HashedRekordV001(_) | Entry::DsseV001(_) => "0.0.1",
            Entry::HashedRekordV002(_) | Entry::DsseV002(_) | Entry::IntotoV002(_) => "0.0.2",
        }
    }

    /// The digest the entry's signatures cover: the artifact's for a hashedrekord, the
    /// payload's for dsse and intoto (what a monitor reports as what was signed).
    pub fn signed_digest(&self) -> &Digest {
        match self {
            Entry::HashedRekordV001(entry) => entry.digest(),
            Entry::HashedRekordV002(entry) => entry.digest(),
            Entry::DsseV001(entry) => entry.payload_hash(),
            Entry::DsseV002(entry) => entry.payload_hash(),
            Entry::IntotoV002(entry) => entry.payload_hash(),
        }
    }

    fn to_json(&self) -> Value {
        let spec = match self {
            Entry::HashedRekordV001(entry) => entry.spec_json(),
            Entry::HashedRekordV002(entry) => entry.spec_json(),
            Entry::DsseV001(entry) => entry.spec_json(),
            Entry::DsseV002(entry) => entry.spec_json(),
            Entry::IntotoV002(entry) => entry.spec_json(),
        };
        serde_json::json!({
            "apiVersion": self.api_version(),
            "kind": self.kind(),
            "spec": spec,
        })
    }
}

impl From<HashedRekordV001> for Entry {
    fn from(entry: HashedRekordV001) -> Entry {
        Entry::HashedRekordV001(entry)
    }
}

impl From<HashedRekordV002> for Entry {
    fn from(entry: HashedRekordV002) -> Entry {
        Entry::HashedRekordV002(entry)
    }
}

impl From<DsseV001> for Entry {
    fn from(entry: DsseV001) -> Entry {
        Entry::DsseV001(entry)
    }
}

impl From<DsseV002> for Entry {
    fn from(entry: DsseV002) -> Entry {
        Entry::DsseV002(entry)
    }
}

impl From<IntotoV002> for Entry {
    fn from(entry: IntotoV002) -> Entry {
        Entry::IntotoV002(entry)
    }
}

/// An entry together with its canonical body: the exact bytes of the log leaf.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CanonicalBody {
    entry: Entry,
    bytes: Vec<u8>,
}

impl CanonicalBody {
    /// Serialises `entry` as Rekor does (JSON, then RFC 8785); fails only if the result is
    /// longer than [`BODY_BYTES_MAX`].
    pub fn new(entry: impl Into<Entry>) -> Result<CanonicalBody, BodyError> {
        let entry = entry.into();
        let bytes = template::write(&entry).unwrap_or_else(|| jcs::canonicalize(&entry.to_json()));
        if bytes.len() > BODY_BYTES_MAX {
            return Err(BodyError::TooLarge {
                actual: bytes.len(),
                max: BODY_BYTES_MAX,
            });
        }
        Ok(CanonicalBody { entry, bytes })
    }

    /// Parses a body from a log and checks that it is canonical: re-serialising the parsed
    /// entry must give back exactly `body`.
    pub fn parse(body: &[u8]) -> Result<CanonicalBody, BodyError> {
        let canonical = CanonicalBody::new(Entry::parse(body)?)?;
        if canonical.bytes != body {
            return Err(BodyError::NotCanonical);
        }
        Ok(canonical)
    }

    /// The typed entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The canonical body.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The canonical body, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The bytes of the log leaf, which are the canonical body itself (Rekor's
    /// `canonicalizedBody`).
    pub fn leaf_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The RFC 6962 leaf hash, `SHA-256(0x00 ‖ body)`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.bytes)
    }
}

/// Checks that `body` is a valid entry in canonical form, returning the typed entry; the same
/// check as [`CanonicalBody::parse`].
pub fn check_canonical(body: &[u8]) -> Result<Entry, BodyError> {
    CanonicalBody::parse(body).map(|canonical| canonical.entry)
}

/// `value` as an object holding exactly the members `keys` (all required, nothing else).
fn object<'a>(
    value: &'a Value,
    path: &str,
    keys: &[&str],
) -> Result<&'a Map<String, Value>, BodyError> {
    let map = value.as_object().ok_or_else(|| BodyError::Shape {
        path: path.to_owned(),
        expected: "an object",
    })?;
    if let Some(missing) = keys.iter().find(|key| !map.contains_key(**key)) {
        return Err(BodyError::MissingField {
            path: format!("{path}.{missing}"),
        });
    }
    if let Some(unknown) = map.keys().find(|key| !keys.contains(&key.as_str())) {
        return Err(BodyError::UnknownField {
            path: format!("{path}.{}", types::truncated(unknown)),
        });
    }
    Ok(map)
}

/// The member `key` of an object already checked by [`object`] to have it.
fn field<'a>(map: &'a Map<String, Value>, key: &str) -> &'a Value {
    map.get(key).unwrap_or(&Value::Null)
}

/// The string member `key`, at JSON path `path`.
fn string<'a>(map: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, BodyError> {
    match map.get(key) {
        None => Err(BodyError::MissingField {
            path: path.to_owned(),
        }),
        Some(value) => value.as_str().ok_or_else(|| BodyError::Shape {
            path: path.to_owned(),
            expected: "a string",
        }),
    }
}

/// The length of standard base64 with padding for `len` bytes.
const fn base64_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

#[cfg(test)]
mod tests;
