//! The bodies of the Rekor v1 API's requests: a proposed entry (`POST /api/v1/log/entries`),
//! checked (its signatures against its keys or certificates) and turned into the canonical body
//! Rekor would log, and a `retrieve` request; pure functions, no IO. `http::rekor_v1` serves
//! them. Bodies are read with the strict reader ([`super::json`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use tlog::Hash;
use tlog::entry::{
    CanonicalBody, Digest, DsseEnvelope, DsseV001, Entry, HashAlgorithm, HashedRekordV001,
    InputError, IntotoV002Proposal, KeyDetails, KeyMaterial, SignatureBytes,
};

use super::json;
use crate::crypto::PublicKey;

/// The largest v1 submission (a DSSE envelope can be a few MiB).
pub const SUBMISSION_BYTES_MAX: usize = tlog::entry::DSSE_ENVELOPE_BYTES_MAX * 2;
/// The most entries one `retrieve` request may ask for.
pub const RETRIEVE_MAX: usize = 64;
/// The strict JSON reader's bounds for v1 request bodies (arrays are bounded again by each
/// check, with its own error).
const JSON_LIMITS: json::Limits = json::Limits {
    bytes: SUBMISSION_BYTES_MAX,
    depth: 32,
    members: 1024,
};

/// Why a v1 request was refused: a stable code (`invalid_json`, `invalid_entry`,
/// `bad_signature`, `invalid_uuid`, ...) and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The HTTP status: 413 for a body over the size bound, 400 for everything else.
    pub http_status: u16,
}

impl RequestError {
    fn new(code: &'static str, message: impl Into<String>) -> RequestError {
        RequestError {
            code,
            message: message.into(),
            http_status: 400,
        }
    }
}

impl From<json::JsonError> for RequestError {
    fn from(error: json::JsonError) -> RequestError {
        RequestError {
            http_status: error.http_status(),
            ..RequestError::new(error.code(), error.to_string())
        }
    }
}

/// An entry UUID: the hex leaf hash, optionally behind Rekor's 16-hex-digit tree id.
pub fn parse_uuid(uuid: &str) -> Result<Hash, RequestError> {
    // Checked first: slicing at byte 16 is only safe on ASCII (a UUID is hex digits anyway).
    if !uuid.is_ascii() {
        return Err(RequestError::new(
            "invalid_uuid",
            "an entry UUID is hex digits",
        ));
    }
    let hex = match uuid.len() {
        64 => uuid,
        80 => &uuid[16..],
        _ => {
            return Err(RequestError::new(
                "invalid_uuid",
                "an entry UUID is 64 hex digits (80 with a tree id)",
            ));
        }
    };
    Hash::from_hex(hex)
        .map_err(|_| RequestError::new("invalid_uuid", "an entry UUID is hex digits"))
}

/// One thing a `retrieve` request asks for.
#[derive(Debug)]
pub enum Lookup {
    /// The entry at this log index.
    Index(u64),
    /// The entry with this leaf hash.
    LeafHash(Hash),
}

/// `{"entryUUIDs": [...], "logIndexes": [...], "entries": [<proposed entry>...]}`: a proposed
/// entry is found by the leaf hash of its canonical body. Public for the fuzz targets (`fuzz/`).
pub fn retrieve_request(body: &[u8]) -> Result<Vec<Lookup>, RequestError> {
    let request = json::parse(body, &JSON_LIMITS).map_err(RequestError::from)?;
    let mut wanted = Vec::new();
    if let Some(uuids) = request.get("entryUUIDs").and_then(Value::as_array) {
        for uuid in uuids {
            let uuid = uuid
                .as_str()
                .ok_or_else(|| RequestError::new("invalid_uuid", "entryUUIDs: strings"))?;
            wanted.push(Lookup::LeafHash(parse_uuid(uuid)?));
        }
    }
    if let Some(indexes) = request.get("logIndexes").and_then(Value::as_array) {
        for index in indexes {
            let index = index.as_u64().ok_or_else(|| {
                RequestError::new("invalid_index", "logIndexes: non-negative integers")
            })?;
            wanted.push(Lookup::Index(index));
        }
    }
    if let Some(entries) = request.get("entries").and_then(Value::as_array) {
        for proposed in entries {
            let canonical = canonical_entry(proposed)?;
            wanted.push(Lookup::LeafHash(tlog::leaf_hash(canonical.as_bytes())));
        }
    }
    if wanted.len() > RETRIEVE_MAX {
        return Err(RequestError::new(
            "too_many",
            format!("ask for at most {RETRIEVE_MAX} entries at once"),
        ));
    }
    Ok(wanted)
}

/// Checks a proposed hashedrekord 0.0.1, dsse 0.0.1 or intoto 0.0.2 entry (its signatures
/// against their keys or certificates) and returns its canonical body, built by `tlog::entry`
/// exactly as Rekor canonicalises it (the same code verifiers use to rebuild it).
/// The body of `POST /api/v1/log/entries` to the canonical entry it would log: the parsing and
/// checks the endpoint runs before sequencing. Public for the fuzz targets (`fuzz/`).
pub fn parse_submission(body: &[u8]) -> Result<String, RequestError> {
    let proposed = json::parse(body, &JSON_LIMITS).map_err(RequestError::from)?;
    verify_and_canonicalize(&proposed)
}

pub(crate) fn verify_and_canonicalize(proposed: &Value) -> Result<String, RequestError> {
    let (kind, spec) = kind_and_spec(proposed)?;
    match kind {
        "hashedrekord" => {
            let entry = hashedrekord(spec)?;
            let key = public_keys(entry.public_key(), &HASHEDREKORD_KEYS)?;
            let (digest, signature) = (entry.digest().as_bytes(), entry.signature().as_bytes());
            if !key
                .iter()
                .any(|key| key.verify_prehashed(digest, signature).is_ok())
            {
                return Err(RequestError::new(
                    "bad_signature",
                    "spec.signature.content does not verify over spec.data.hash with \
                     spec.signature.publicKey",
                ));
            }
            canonical(entry)
        }
        "intoto" => intoto(spec, true),
        _ => dsse(spec, true),
    }
}

/// The canonical body of a proposed entry, without verifying it (for `retrieve`).
fn canonical_entry(proposed: &Value) -> Result<String, RequestError> {
    let (kind, spec) = kind_and_spec(proposed)?;
    match kind {
        "hashedrekord" => canonical(hashedrekord(spec)?),
        "intoto" => intoto(spec, false),
        _ => dsse(spec, false),
    }
}

/// What a hashedrekord 0.0.1 signature over a SHA-256 digest may be made with.
const HASHEDREKORD_KEYS: [KeyDetails; 4] = [
    KeyDetails::EcdsaP256Sha256,
    KeyDetails::Rsa2048Pkcs1v15Sha256,
    KeyDetails::Rsa3072Pkcs1v15Sha256,
    KeyDetails::Rsa4096Pkcs1v15Sha256,
];

/// What a v1 entry may be, as Rekor v1 names them.
const KINDS: &str = "hashedrekord 0.0.1, dsse 0.0.1 and intoto 0.0.2";

fn kind_and_spec(proposed: &Value) -> Result<(&'static str, &Value), RequestError> {
    let kind = proposed.get("kind").and_then(Value::as_str);
    let api_version = proposed.get("apiVersion").and_then(Value::as_str);
    let kind = match (kind, api_version) {
        (Some("hashedrekord"), Some("0.0.1")) => "hashedrekord",
        (Some("dsse"), Some("0.0.1")) => "dsse",
        (Some("intoto"), Some("0.0.2")) => "intoto",
        (Some(kind @ ("hashedrekord" | "dsse" | "intoto")), version) => {
            return Err(RequestError::new(
                "unsupported_version",
                format!(
                    "{kind} apiVersion {}: this log accepts {KINDS} (v2 entries go to /api/v2)",
                    quoted(version)
                ),
            ));
        }
        (other, _) => {
            return Err(RequestError::new(
                "unsupported_kind",
                format!("kind {}: this log accepts {KINDS}", quoted(other)),
            ));
        }
    };
    let spec = proposed
        .get("spec")
        .filter(|spec| spec.is_object())
        .ok_or_else(|| RequestError::new("invalid_entry", "spec: an object is required"))?;
    Ok((kind, spec))
}

/// A member's value for an error message: quoted and shortened, or "missing".
fn quoted(value: Option<&str>) -> String {
    match value {
        Some(value) => format!("{:?}", value.chars().take(64).collect::<String>()),
        None => "missing".to_owned(),
    }
}

fn field<'a>(value: &'a Value, path: &[&str]) -> Result<&'a str, RequestError> {
    let mut at = value;
    for name in path {
        at = at.get(name).ok_or_else(|| missing(path))?;
    }
    at.as_str().ok_or_else(|| missing(path))
}

fn missing(path: &[&str]) -> RequestError {
    RequestError::new(
        "invalid_entry",
        format!("spec.{}: a string is required", path.join(".")),
    )
}

fn input_error(error: &InputError) -> RequestError {
    RequestError::new("invalid_entry", error.to_string())
}

fn canonical(entry: impl Into<Entry>) -> Result<String, RequestError> {
    let body = CanonicalBody::new(entry)
        .map_err(|error| RequestError::new("invalid_entry", error.to_string()))?;
    String::from_utf8(body.as_bytes().to_vec())
        .map_err(|error| RequestError::new("invalid_entry", error.to_string()))
}

/// The key (a public key, or a certificate chain's leaf) parsed as each of `allowed` that it
/// can be: the v1 entry does not declare its algorithm.
fn public_keys(
    material: &KeyMaterial,
    allowed: &[KeyDetails],
) -> Result<Vec<PublicKey>, RequestError> {
    let keys: Vec<PublicKey> = allowed
        .iter()
        .filter_map(|&details| match material {
            KeyMaterial::PublicKey(der) => PublicKey::from_spki_der(der, details).ok(),
            KeyMaterial::Certificates(chain) => chain
                .first()
                .and_then(|leaf| PublicKey::from_certificate_der(leaf, details).ok()),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return Err(RequestError::new(
            "unsupported_key",
            "the key is not one this log accepts (ECDSA P-256/384/521, RSA 2048-4096, Ed25519)",
        ));
    }
    Ok(keys)
}

/// hashedrekord 0.0.1 from its spec.
fn hashedrekord(spec: &Value) -> Result<HashedRekordV001, RequestError> {
    let algorithm = field(spec, &["data", "hash", "algorithm"])?;
    if algorithm != "sha256" {
        return Err(RequestError::new(
            "unsupported_hash",
            format!("spec.data.hash.algorithm {algorithm:?}: want sha256"),
        ));
    }
    let digest = hex::decode(field(spec, &["data", "hash", "value"])?)
        .map_err(|_| RequestError::new("invalid_entry", "spec.data.hash.value: hex"))?;
    let digest = Digest::new(HashAlgorithm::Sha256, &digest).map_err(|e| input_error(&e))?;
    let signature = SignatureBytes::from_base64(field(spec, &["signature", "content"])?)
        .map_err(|e| input_error(&e))?;
    let pem = BASE64
        .decode(field(spec, &["signature", "publicKey", "content"])?)
        .map_err(|_| {
            RequestError::new("invalid_entry", "spec.signature.publicKey.content: base64")
        })?;
    let key = KeyMaterial::from_pem(&pem).map_err(|e| input_error(&e))?;
    Ok(HashedRekordV001::new(digest, signature, key))
}

/// dsse 0.0.1 from `spec.proposedContent`: each envelope signature must verify with one of the
/// verifiers (when `verify`; without, for `retrieve`, the first verifier is taken for each).
///
/// The cost is bounded: at most one verifier per signature (as the v2 API requires; at most
/// [`tlog::entry::DSSE_SIGNATURES_MAX`] of each), each verifier's key parsed once, the PAE
/// hashed once per hash algorithm for every key that signs a digest, and the `i`-th verifier
/// tried first for the `i`-th signature, so an in-order request costs one check per signature.
fn dsse(spec: &Value, verify: bool) -> Result<String, RequestError> {
    let envelope = DsseEnvelope::parse(field(spec, &["proposedContent", "envelope"])?)
        .map_err(|e| input_error(&e))?;
    let verifiers = spec
        .get("proposedContent")
        .and_then(|content| content.get("verifiers"))
        .and_then(Value::as_array)
        .filter(|verifiers| !verifiers.is_empty())
        .ok_or_else(|| {
            RequestError::new(
                "invalid_entry",
                "spec.proposedContent.verifiers: a non-empty array is required",
            )
        })?;
    // Before any verifier is decoded: thousands of copies of one key once cost minutes of CPU.
    let signatures = envelope.signatures();
    if verifiers.len() > signatures.len() {
        return Err(RequestError::new(
            "too_many_verifiers",
            format!(
                "spec.proposedContent.verifiers: {} verifiers for {} signatures; give at most one \
                 per signature",
                verifiers.len(),
                signatures.len()
            ),
        ));
    }
    let mut keys = Vec::new();
    for (position, verifier) in verifiers.iter().enumerate() {
        let what = format!("spec.proposedContent.verifiers[{position}]");
        let pem = verifier
            .as_str()
            .and_then(|text| BASE64.decode(text).ok())
            .ok_or_else(|| RequestError::new("invalid_entry", format!("{what}: base64 of PEM")))?;
        keys.push(KeyMaterial::from_pem(&pem).map_err(|e| input_error(&e))?);
    }
    let mut matched = Vec::new();
    if verify {
        // Every key type each verifier can be (v1 does not declare it), parsed once.
        let parsed: Vec<Vec<PublicKey>> = keys
            .iter()
            .map(|key| public_keys(key, &KeyDetails::ALL).unwrap_or_default())
            .collect();
        let pae = envelope.pae();
        let mut digests = PaeDigests::new(&pae);
        for (position, signature) in signatures.iter().enumerate() {
            let sig = signature.sig.as_bytes();
            let found = (0..keys.len())
                .map(|offset| (position + offset) % keys.len())
                .find(|&index| {
                    parsed.get(index).is_some_and(|candidates| {
                        candidates
                            .iter()
                            .any(|candidate| digests.verify(candidate, sig))
                    })
                });
            let key = found.and_then(|index| keys.get(index)).ok_or_else(|| {
                RequestError::new(
                    "bad_signature",
                    format!("envelope.signatures[{position}] verifies with none of the verifiers"),
                )
            })?;
            matched.push(key.clone());
        }
    } else {
        for _ in signatures {
            matched.extend(keys.first().cloned());
        }
    }
    let entry = DsseV001::from_envelope(&envelope, matched).map_err(|e| input_error(&e))?;
    canonical(entry)
}

/// What an intoto 0.0.2 signature may be made with: Rekor verifies it with
/// `signature.LoadVerifier(key, crypto.SHA256)`, so ECDSA over SHA-256, RSA PKCS#1 v1.5 with
/// SHA-256, or pure Ed25519.
const INTOTO_KEYS: [KeyDetails; 5] = [
    KeyDetails::EcdsaP256Sha256,
    KeyDetails::Rsa2048Pkcs1v15Sha256,
    KeyDetails::Rsa3072Pkcs1v15Sha256,
    KeyDetails::Rsa4096Pkcs1v15Sha256,
    KeyDetails::Ed25519,
];

/// intoto 0.0.2 from its proposed spec: each signature must verify over the PAE with its own
/// `publicKey` (when `verify`; not for `retrieve`).
fn intoto(spec: &Value, verify: bool) -> Result<String, RequestError> {
    let proposal = IntotoV002Proposal::parse(spec)
        .map_err(|error| RequestError::new("invalid_entry", error.to_string()))?;
    if verify {
        let pae = proposal.pae();
        for (position, signature) in proposal.entry().signatures().iter().enumerate() {
            let keys = public_keys(&signature.public_key, &INTOTO_KEYS)?;
            if !keys
                .iter()
                .any(|key| key.verify_message(&pae, signature.sig.as_bytes()).is_ok())
            {
                return Err(RequestError::new(
                    "bad_signature",
                    format!(
                        "spec.content.envelope.signatures[{position}].sig does not verify with \
                         its publicKey"
                    ),
                ));
            }
        }
    }
    canonical(proposal.into_entry())
}

/// The PAE's digests, each computed at most once per request: a multi-MiB payload checked
/// against several keys is hashed once per hash algorithm, not once per key. Only pure
/// Ed25519, which hashes the message together with the signature's `R`, reads it again.
struct PaeDigests<'a> {
    pae: &'a [u8],
    digests: Vec<(HashAlgorithm, Vec<u8>)>,
}

impl<'a> PaeDigests<'a> {
    fn new(pae: &'a [u8]) -> PaeDigests<'a> {
        PaeDigests {
            pae,
            digests: Vec::new(),
        }
    }

    fn verify(&mut self, key: &PublicKey, signature: &[u8]) -> bool {
        let Some(algorithm) = key.key_details().hash_algorithm() else {
            return key.verify_message(self.pae, signature).is_ok();
        };
        let position = match self
            .digests
            .iter()
            .position(|(known, _)| *known == algorithm)
        {
            Some(position) => position,
            None => {
                let digest = algorithm.hash(self.pae).as_bytes().to_vec();
                self.digests.push((algorithm, digest));
                self.digests.len() - 1
            }
        };
        self.digests
            .get(position)
            .is_some_and(|(_, digest)| key.verify_prehashed(digest, signature).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A v1 dsse entry over `payload` signed (pure Ed25519) by `signers`, naming `verifiers`.
    fn dsse_entry(signers: &[u8], verifiers: &[u8]) -> Value {
        use ed25519_dalek::Signer as _;
        let key = |seed: u8| ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let envelope = |signatures: Vec<Value>| {
            json!({
                "payloadType": "application/vnd.in-toto+json",
                "payload": BASE64.encode(b"{\"_type\":\"https://in-toto.io/Statement/v1\"}"),
                "signatures": signatures,
            })
            .to_string()
        };
        let unsigned = envelope(vec![json!({ "sig": BASE64.encode([1u8; 64]) })]);
        let pae = DsseEnvelope::parse(&unsigned).unwrap().pae();
        let signatures = signers
            .iter()
            .map(|&seed| json!({ "sig": BASE64.encode(key(seed).sign(&pae).to_bytes()) }))
            .collect();
        let verifiers: Vec<String> = verifiers
            .iter()
            .map(|&seed| {
                let spki = tlog::keys::ed25519_spki_der(&key(seed).verifying_key());
                let pem = format!(
                    "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                    BASE64.encode(spki)
                );
                BASE64.encode(pem)
            })
            .collect();
        json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": { "proposedContent": {
                "envelope": envelope(signatures),
                "verifiers": verifiers,
            } },
        })
    }

    /// At most one verifier per signature: more is refused before any key is parsed or any
    /// signature checked (27,000 copies of one key once kept a node busy for minutes). Within
    /// the bound, each signature may verify with any verifier, in any order.
    #[test]
    fn dsse_verifiers_are_at_most_one_per_signature() {
        assert!(verify_and_canonicalize(&dsse_entry(&[1], &[1])).is_ok());
        assert!(verify_and_canonicalize(&dsse_entry(&[1, 2], &[2, 1])).is_ok());
        let error = verify_and_canonicalize(&dsse_entry(&[1], &[2, 1])).unwrap_err();
        assert_eq!((error.http_status, error.code), (400, "too_many_verifiers"));
        let error = verify_and_canonicalize(&dsse_entry(&[1], &[2])).unwrap_err();
        assert_eq!(error.code, "bad_signature");
        let error = verify_and_canonicalize(&dsse_entry(&[1, 2], &[1, 1])).unwrap_err();
        assert_eq!(error.code, "bad_signature");
    }

    /// An 80-byte UUID whose 16th byte falls inside a multi-byte character once panicked on
    /// the slice at the tree id; any non-ASCII UUID is a 400 instead.
    #[test]
    fn a_non_ascii_uuid_is_a_400_not_a_panic() {
        let tree_id = "0123456789abcde"; // 15 bytes, then a 2-byte 'é' across byte 16
        let uuid = format!("{tree_id}é{}", "a".repeat(63));
        assert_eq!(uuid.len(), 80);
        assert!(!uuid.is_char_boundary(16));
        let error = parse_uuid(&uuid).unwrap_err();
        assert_eq!((error.http_status, error.code), (400, "invalid_uuid"));
        let short = format!("é{}", "a".repeat(62));
        assert_eq!(short.len(), 64);
        assert_eq!(parse_uuid(&short).unwrap_err().code, "invalid_uuid");
        let good = "ab".repeat(32);
        assert!(parse_uuid(&good).is_ok());
        assert!(parse_uuid(&format!("{}{good}", "0".repeat(16))).is_ok());
    }
}

#[cfg(test)]
#[path = "v1_request/intoto_tests.rs"]
mod intoto_tests;
