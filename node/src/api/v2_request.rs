//! The body of Rekor v2 `POST /api/v2/log/entries`: strict decoding, validation, signature
//! verification, and the canonical entry (the log leaf) it produces.
//!
//! The body is protobuf JSON of rekor-tiles `CreateEntryRequest` (`api/proto/rekor/v2/
//! entry.proto`, `hashedrekord.proto`, `dsse.proto`, `verifier.proto`), with exactly one of:
//!
//! ```json
//! {"hashedRekordRequestV002": {"digest": B64,
//!   "signature": {"content": B64,
//!                 "verifier": {"publicKey": {"rawBytes": B64}} | {"x509Certificate": {"rawBytes": B64}},
//!                              "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}}
//! {"dsseRequestV002": {"envelope": {"payload": B64, "payloadType": T, "signatures": [{"sig": B64, "keyid": K}]},
//!   "verifiers": [{"publicKey" | "x509Certificate": {"rawBytes": B64}, "keyDetails": KD}]}}
//! ```
//!
//! The rule of `tlog::entry` holds here too: accept a subset of what rekor-tiles accepts. Go's
//! protojson also takes the proto field names (`hashed_rekord_request_v002`, `raw_bytes`),
//! enum numbers, URL-safe or unpadded base64, `null` for absent fields and duplicate members;
//! none of that is accepted. Real clients (sigstore-python, sigstore-go, cosign) send exactly
//! the shape above.
//!
//! Strictness, so that a bad body gets a clear 4xx and changes nothing: at most
//! [`REQUEST_BYTES_MAX`] bytes; JSON with no duplicate member, no trailing data, nesting at most
//! [`JSON_DEPTH_MAX`] deep and at most [`JSON_MEMBERS_MAX`] members per object or array; no
//! unknown members (fields the server controls, such as `logIndex` or `integratedTime`, get
//! their own error); every field present, of its JSON type, non-empty and within its bound;
//! canonical standard base64; a digest as long as the declared algorithm's hash.
//!
//! DSSE: rekor-tiles dropped `dsseRequestV002` in fa390b1c ("Drop DSSE support", #744;
//! clients now log a hashedrekord over the PAE digest). Cairn still accepts it, as its API
//! promises, and logs the dsse v0.0.2 entry rekor-tiles logged before that commit. One
//! difference: rekor-tiles let one verifier account for several signatures and accepted extra
//! verifiers; here there must be as many verifiers as signatures, and each signature must
//! verify with a distinct verifier (a perfect matching, found whatever the order). Each
//! signature is over the envelope's PAE, hashed with the verifier's declared algorithm
//! (rekor-tiles always used SHA-256 there).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use tlog::entry::{
    BodyError, CanonicalBody, DSSE_ENVELOPE_BYTES_MAX, DSSE_PAYLOAD_TYPE_BYTES_MAX,
    DSSE_SIGNATURES_MAX, DsseEnvelope, DsseV002, HashedRekordV002, InputError, KEY_DER_BYTES_MAX,
    KeyDetails, SIGNATURE_BYTES_MAX, Signature, SignatureBytes, Verifier,
};

use super::json;
use crate::crypto::{CryptoError, Part, PublicKey};

/// The largest request body: 4 MiB, rekor-tiles' default `max-request-body-size` (and the
/// largest DSSE envelope `tlog::entry` parses). The HTTP layer should stop reading there.
pub const REQUEST_BYTES_MAX: usize = DSSE_ENVELOPE_BYTES_MAX;

/// The deepest JSON nesting accepted: 32 levels (a valid request uses 5).
pub const JSON_DEPTH_MAX: usize = 32;

/// The most members of any one JSON object, or items of any one array: 64 (a valid request
/// has at most 10, the DSSE signature and verifier limit).
pub const JSON_MEMBERS_MAX: usize = 64;

/// The strict reader's bounds for a v2 request body.
const JSON_LIMITS: json::Limits = json::Limits {
    bytes: REQUEST_BYTES_MAX,
    depth: JSON_DEPTH_MAX,
    members: JSON_MEMBERS_MAX,
};

/// The longest DSSE `keyid`: 1 KiB. It is an unauthenticated hint and never logged.
pub const KEYID_BYTES_MAX: usize = 1024;

/// The longest `digest`, in bytes (SHA-512).
const DIGEST_BYTES_MAX: usize = 64;

/// Members that only a server writes (in a `TransparencyLogEntry` or a Rekor v1 `LogEntry`);
/// a request carrying one is refused with [`RequestError::ServerField`].
pub const SERVER_FIELDS: &[&str] = &[
    "logIndex",
    "logId",
    "logID",
    "integratedTime",
    "inclusionProof",
    "inclusionPromise",
    "canonicalizedBody",
    "kindVersion",
    "uuid",
    "entryUUID",
    "treeID",
    "treeId",
    "treeSize",
    "verification",
    "signedEntryTimestamp",
];

/// The two request kinds (the `oneof spec` of `CreateEntryRequest`).
const REQUEST_KINDS: &[&str] = &["hashedRekordRequestV002", "dsseRequestV002"];

mod error;

pub use error::RequestError;

/// A request that passed every check, signatures included: the entry to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The canonical body, i.e. the log leaf.
    pub body: CanonicalBody,
    /// The entry kind: `hashedrekord` or `dsse`.
    pub kind: &'static str,
    /// The entry version: `0.0.2`.
    pub version: &'static str,
}

/// A request that is well formed, with signatures not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// `hashedRekordRequestV002`: a signature over a digest.
    HashedRekord(HashedRekordV002),
    /// `dsseRequestV002`: an envelope and one verifier per signature.
    Dsse {
        /// The envelope.
        envelope: DsseEnvelope,
        /// The verifiers, in request order.
        verifiers: Vec<Verifier>,
    },
}

/// Decodes, validates and verifies a request body: [`parse`] then [`Request::verify`].
pub fn decode(body: &[u8]) -> Result<Accepted, RequestError> {
    parse(body)?.verify()
}

/// Decodes and validates a request body without verifying signatures (cheap checks only, so
/// that a caller may run the verification elsewhere).
pub fn parse(body: &[u8]) -> Result<Request, RequestError> {
    let value = json::parse(body, &JSON_LIMITS).map_err(RequestError::from)?;
    let top = object(&value, "", &[], REQUEST_KINDS)?;
    let found = REQUEST_KINDS
        .iter()
        .filter(|kind| top.contains_key(**kind))
        .count();
    if found != 1 {
        return Err(RequestError::OneOf {
            path: "request".to_owned(),
            members: REQUEST_KINDS,
            found,
        });
    }
    if let Some(request) = top.get("hashedRekordRequestV002") {
        parse_hashed_rekord(request)
    } else {
        parse_dsse(field(top, "dsseRequestV002"))
    }
}

impl Request {
    /// The entry kind this request makes: `hashedrekord` or `dsse`.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::HashedRekord(_) => "hashedrekord",
            Request::Dsse { .. } => "dsse",
        }
    }

    /// Verifies the signatures and builds the canonical entry.
    pub fn verify(&self) -> Result<Accepted, RequestError> {
        match self {
            Request::HashedRekord(entry) => {
                verify_hashed_rekord(entry)?;
                accepted(entry.clone(), "hashedrekord")
            }
            Request::Dsse {
                envelope,
                verifiers,
            } => {
                let ordered = verify_dsse(envelope, verifiers)?;
                let entry = DsseV002::from_envelope(envelope, ordered).map_err(|source| {
                    RequestError::Field {
                        prefix: "dsseRequestV002.".to_owned(),
                        source,
                    }
                })?;
                accepted(entry, "dsse")
            }
        }
    }
}

fn accepted(
    entry: impl Into<tlog::entry::Entry>,
    kind: &'static str,
) -> Result<Accepted, RequestError> {
    let body = CanonicalBody::new(entry).map_err(|error| match error {
        BodyError::TooLarge { actual, max } => RequestError::EntryTooLarge { actual, max },
        other => RequestError::Entry(other),
    })?;
    Ok(Accepted {
        body,
        kind,
        version: "0.0.2",
    })
}

fn parse_hashed_rekord(value: &Value) -> Result<Request, RequestError> {
    const PATH: &str = "hashedRekordRequestV002";
    let request = object(value, PATH, &["digest", "signature"], &[])?;
    let digest = base64_field(request, "digest", PATH, DIGEST_BYTES_MAX)?;
    let signature_path = format!("{PATH}.signature");
    let signature = object(
        field(request, "signature"),
        &signature_path,
        &["content", "verifier"],
        &[],
    )?;
    let content = base64_field(signature, "content", &signature_path, SIGNATURE_BYTES_MAX)?;
    let content_path = format!("{signature_path}.content");
    let content =
        SignatureBytes::new(&content).map_err(|error| input_error(error, &content_path))?;
    let verifier = parse_verifier(
        field(signature, "verifier"),
        &format!("{signature_path}.verifier"),
    )?;
    let entry =
        HashedRekordV002::new(&digest, Signature { content, verifier }).map_err(|source| {
            RequestError::Field {
                prefix: format!("{PATH}."),
                source,
            }
        })?;
    Ok(Request::HashedRekord(entry))
}

fn parse_dsse(value: &Value) -> Result<Request, RequestError> {
    const PATH: &str = "dsseRequestV002";
    let request = object(value, PATH, &["envelope", "verifiers"], &[])?;
    let envelope_path = format!("{PATH}.envelope");
    let envelope_value = field(request, "envelope");
    let envelope = object(
        envelope_value,
        &envelope_path,
        &["payload", "payloadType", "signatures"],
        &[],
    )?;
    // Shapes here; base64 and duplicate signatures are checked by `DsseEnvelope::parse`.
    string_field(envelope, "payload", &envelope_path, usize::MAX)?;
    string_field(
        envelope,
        "payloadType",
        &envelope_path,
        DSSE_PAYLOAD_TYPE_BYTES_MAX,
    )?;
    let signatures_path = format!("{envelope_path}.signatures");
    let signatures = array_field(envelope, "signatures", &envelope_path, DSSE_SIGNATURES_MAX)?;
    for (index, signature) in signatures.iter().enumerate() {
        let path = format!("{signatures_path}[{index}]");
        let signature = object(signature, &path, &["sig"], &["keyid"])?;
        string_field(signature, "sig", &path, usize::MAX)?;
        if let Some(keyid) = signature.get("keyid") {
            let keyid_path = format!("{path}.keyid");
            let keyid = keyid.as_str().ok_or_else(|| RequestError::WrongType {
                path: keyid_path.clone(),
                expected: "a string",
            })?;
            if keyid.len() > KEYID_BYTES_MAX {
                return Err(RequestError::TooLong {
                    path: keyid_path,
                    actual: keyid.len(),
                    max: KEYID_BYTES_MAX,
                });
            }
        }
    }
    let verifier_values = array_field(request, "verifiers", PATH, DSSE_SIGNATURES_MAX)?;
    let verifiers = verifier_values
        .iter()
        .enumerate()
        .map(|(index, verifier)| parse_verifier(verifier, &format!("{PATH}.verifiers[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if verifiers.len() != signatures.len() {
        return Err(RequestError::Field {
            prefix: format!("{PATH}."),
            source: InputError::VerifierCount {
                field: "verifiers".to_owned(),
                signatures: signatures.len(),
                verifiers: verifiers.len(),
            },
        });
    }
    // The envelope as DSSE's JSON text, for `tlog::entry`'s parser: only the members checked
    // above remain, and serde_json writes strings back exactly.
    let text = serde_json::to_string(envelope_value).map_err(|error| RequestError::Json {
        reason: error.to_string(),
    })?;
    let envelope = DsseEnvelope::parse(&text).map_err(|source| RequestError::Field {
        prefix: format!("{PATH}."),
        source,
    })?;
    Ok(Request::Dsse {
        envelope,
        verifiers,
    })
}

/// A protobuf-JSON `Verifier` at `path`: exactly one of `publicKey` or `x509Certificate`,
/// and `keyDetails`.
fn parse_verifier(value: &Value, path: &str) -> Result<Verifier, RequestError> {
    let verifier = object(
        value,
        path,
        &["keyDetails"],
        &["publicKey", "x509Certificate"],
    )?;
    const KEYS: &[&str] = &["publicKey", "x509Certificate"];
    let found = KEYS
        .iter()
        .filter(|key| verifier.contains_key(**key))
        .count();
    if found != 1 {
        return Err(RequestError::OneOf {
            path: path.to_owned(),
            members: KEYS,
            found,
        });
    }
    let details_path = format!("{path}.keyDetails");
    let details = string_field(verifier, "keyDetails", path, usize::MAX)?;
    let key_details = KeyDetails::from_protobuf_name(details)
        .map_err(|error| input_error(error, &details_path))?;
    let key_name = if verifier.contains_key("publicKey") {
        "publicKey"
    } else {
        "x509Certificate"
    };
    let key_path = format!("{path}.{key_name}");
    let key = object(field(verifier, key_name), &key_path, &["rawBytes"], &[])?;
    let der = base64_field(key, "rawBytes", &key_path, KEY_DER_BYTES_MAX)?;
    let raw_path = format!("{key_path}.rawBytes");
    if key_name == "publicKey" {
        Verifier::public_key(&der, key_details)
    } else {
        Verifier::x509_certificate(&der, key_details)
    }
    .map_err(|error| input_error(error, &raw_path))
}

/// Verifies a hashedrekord's signature over its digest.
fn verify_hashed_rekord(entry: &HashedRekordV002) -> Result<(), RequestError> {
    const PATH: &str = "hashedRekordRequestV002";
    let signature = entry.signature();
    let key = PublicKey::new(&signature.verifier)
        .map_err(|error| crypto_error(error, &format!("{PATH}.signature"), &signature.verifier))?;
    key.verify_prehashed(entry.digest().as_bytes(), signature.content.as_bytes())
        .map_err(|error| crypto_error(error, &format!("{PATH}.signature"), &signature.verifier))
}

/// Verifies every envelope signature over the PAE with a verifier of its own; returns the
/// verifiers reordered so that the `i`-th verified the `i`-th signature.
fn verify_dsse(
    envelope: &DsseEnvelope,
    verifiers: &[Verifier],
) -> Result<Vec<Verifier>, RequestError> {
    const PATH: &str = "dsseRequestV002";
    let keys = verifiers
        .iter()
        .enumerate()
        .map(|(index, verifier)| {
            PublicKey::new(verifier).map_err(|error| {
                crypto_error(error, &format!("{PATH}.verifiers[{index}]"), verifier)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pae = envelope.pae();
    let signatures = envelope.signatures();
    let mut matcher = Matcher {
        count: keys.len(),
        memo: vec![None; keys.len() * signatures.len()],
        verifier_of_signature: vec![None; signatures.len()],
        signature_of_verifier: vec![None; keys.len()],
        verifies: |signature: usize, verifier: usize| {
            keys.get(verifier)
                .zip(signatures.get(signature))
                .is_some_and(|(key, s)| key.verify_message(&pae, s.sig.as_bytes()).is_ok())
        },
    };
    for signature in 0..signatures.len() {
        let mut visited = vec![false; keys.len()];
        if !matcher.augment(signature, &mut visited) {
            let any = (0..keys.len()).any(|verifier| matcher.check(signature, verifier));
            return Err(RequestError::UnverifiedSignature {
                path: format!("{PATH}.envelope.signatures[{signature}].sig"),
                reason: if any {
                    "verifies only with verifiers already used by other signatures"
                } else {
                    "verifies with none of the verifiers"
                },
            });
        }
    }
    matcher
        .verifier_of_signature
        .iter()
        .map(|verifier| {
            verifier
                .and_then(|index| verifiers.get(index).cloned())
                .ok_or_else(|| RequestError::UnverifiedSignature {
                    path: format!("{PATH}.envelope.signatures"),
                    reason: "not every signature has a verifier",
                })
        })
        .collect()
}

/// Bipartite matching of signatures to verifiers (Kuhn's augmenting paths), verifying each
/// (signature, verifier) pair at most once and only when needed; the `i`-th verifier is tried
/// first for the `i`-th signature, so a request in order costs one verification per signature.
struct Matcher<F: FnMut(usize, usize) -> bool> {
    count: usize,
    memo: Vec<Option<bool>>,
    verifier_of_signature: Vec<Option<usize>>,
    signature_of_verifier: Vec<Option<usize>>,
    verifies: F,
}

impl<F: FnMut(usize, usize) -> bool> Matcher<F> {
    fn check(&mut self, signature: usize, verifier: usize) -> bool {
        let slot = signature * self.count + verifier;
        if let Some(Some(known)) = self.memo.get(slot) {
            return *known;
        }
        let result = (self.verifies)(signature, verifier);
        if let Some(entry) = self.memo.get_mut(slot) {
            *entry = Some(result);
        }
        result
    }

    fn augment(&mut self, signature: usize, visited: &mut [bool]) -> bool {
        for offset in 0..self.count {
            let verifier = (signature + offset) % self.count;
            if visited.get(verifier).copied().unwrap_or(true) || !self.check(signature, verifier) {
                continue;
            }
            if let Some(seen) = visited.get_mut(verifier) {
                *seen = true;
            }
            let holder = self.signature_of_verifier.get(verifier).copied().flatten();
            if holder.is_none_or(|other| self.augment(other, visited)) {
                if let Some(slot) = self.signature_of_verifier.get_mut(verifier) {
                    *slot = Some(signature);
                }
                if let Some(slot) = self.verifier_of_signature.get_mut(signature) {
                    *slot = Some(verifier);
                }
                return true;
            }
        }
        false
    }
}

/// A crypto error with its field renamed to the JSON path: `prefix` is the path of the
/// `Signature` message (hashedrekord) or of the `Verifier` (dsse).
fn crypto_error(error: CryptoError, prefix: &str, verifier: &Verifier) -> RequestError {
    let key_name = match verifier.key() {
        tlog::entry::VerifierKey::PublicKey(_) => "publicKey",
        _ => "x509Certificate",
    };
    let hashed_rekord = prefix.starts_with("hashedRekordRequestV002");
    let field = match error.part() {
        Part::Key if hashed_rekord => format!("{prefix}.verifier.{key_name}.rawBytes"),
        Part::Key => format!("{prefix}.{key_name}.rawBytes"),
        Part::Signature if hashed_rekord => format!("{prefix}.content"),
        Part::Digest if hashed_rekord => "hashedRekordRequestV002.digest".to_owned(),
        _ => prefix.to_owned(),
    };
    RequestError::Crypto(error.with_field(field))
}

/// A `tlog::entry` validation error for a value at `path` (which replaces its own field).
fn input_error(error: InputError, path: &str) -> RequestError {
    let own = error.field().to_owned();
    let prefix = path.strip_suffix(own.as_str()).unwrap_or("").to_owned();
    if path.ends_with(own.as_str()) {
        RequestError::Field {
            prefix,
            source: error,
        }
    } else {
        // The error names a field that is not the tail of `path`: show the path before it.
        RequestError::Field {
            prefix: format!("{path}: "),
            source: error,
        }
    }
}

/// `value` as an object whose members are all among `required` and `optional`, with every
/// `required` member present.
fn object<'a>(
    value: &'a Value,
    path: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<&'a Map<String, Value>, RequestError> {
    let shown = if path.is_empty() { "request" } else { path };
    let map = value.as_object().ok_or_else(|| RequestError::WrongType {
        path: shown.to_owned(),
        expected: "an object",
    })?;
    for key in map.keys() {
        if required.contains(&key.as_str()) || optional.contains(&key.as_str()) {
            continue;
        }
        let member = join(path, &truncated(key));
        return Err(if SERVER_FIELDS.contains(&key.as_str()) {
            RequestError::ServerField { path: member }
        } else {
            RequestError::UnknownField { path: member }
        });
    }
    if let Some(missing) = required.iter().find(|key| !map.contains_key(**key)) {
        return Err(RequestError::MissingField {
            path: join(path, missing),
        });
    }
    Ok(map)
}

/// The member `key` of an object already checked to have it.
fn field<'a>(map: &'a Map<String, Value>, key: &str) -> &'a Value {
    map.get(key).unwrap_or(&Value::Null)
}

/// The non-empty string member `key` of the object at `path`, at most `max` bytes.
fn string_field<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
    max: usize,
) -> Result<&'a str, RequestError> {
    let member = || join(path, key);
    let text = map
        .get(key)
        .ok_or_else(|| RequestError::MissingField { path: member() })?
        .as_str()
        .ok_or_else(|| RequestError::WrongType {
            path: member(),
            expected: "a string",
        })?;
    if text.is_empty() {
        return Err(RequestError::Empty { path: member() });
    }
    if text.len() > max {
        return Err(RequestError::TooLong {
            path: member(),
            actual: text.len(),
            max,
        });
    }
    Ok(text)
}

/// The non-empty array member `key` of the object at `path`, at most `max` items.
fn array_field<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
    max: usize,
) -> Result<&'a [Value], RequestError> {
    let member = || join(path, key);
    let items = map
        .get(key)
        .ok_or_else(|| RequestError::MissingField { path: member() })?
        .as_array()
        .ok_or_else(|| RequestError::WrongType {
            path: member(),
            expected: "an array",
        })?;
    if items.is_empty() {
        return Err(RequestError::Empty { path: member() });
    }
    if items.len() > max {
        return Err(RequestError::TooMany {
            path: member(),
            count: items.len(),
            max,
        });
    }
    Ok(items)
}

/// The base64 member `key` of the object at `path`, decoded: non-empty, canonical standard
/// base64 with padding, at most `max` bytes (checked before decoding).
fn base64_field(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
    max: usize,
) -> Result<Vec<u8>, RequestError> {
    let text = string_field(map, key, path, usize::MAX)?;
    let upper_bound = text.len() / 4 * 3;
    if upper_bound > max.saturating_add(2) {
        return Err(RequestError::TooLong {
            path: join(path, key),
            actual: upper_bound,
            max,
        });
    }
    let bytes = BASE64.decode(text).map_err(|_| RequestError::Base64 {
        path: join(path, key),
    })?;
    if bytes.len() > max {
        return Err(RequestError::TooLong {
            path: join(path, key),
            actual: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
