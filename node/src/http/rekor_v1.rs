//! The Rekor v1 REST API over the artifact log, for clients that speak only v1 (sigstore-python's
//! default, sigstore-rs, cosign's older paths, rekor-cli).
//!
//! It is the same log the v2 API and the C2SP tile reads serve: the same leaves, tree and
//! committed signed checkpoint, seen as a Rekor v1 log (docs/decisions/0004-v1-checkpoint.md).
//! What v1 adds is served, not stored, and made with the log's own Ed25519 key:
//! - `logID` is Rekor v1's log id, `SHA-256(DER SPKI)` of that key ([`v1_log_id`]), and the
//!   tree id a stable number derived from the log ([`tree_id`]).
//! - every checkpoint v1 serves is the v1 form of the committed one ([`v1_checkpoint`]): the
//!   same size, root and other lines, under the origin `<C2SP origin> - <tree id>`, signed as
//!   `<C2SP origin>` with key id `logID[:4]` — what cosign and sigstore-go need to take an entry
//!   for a v1 one (the origin's ` - <digits>` suffix), what Rekor's Go verifier requires of
//!   every signature line (that key id), and what sigstore-python picks (the line whose key id
//!   is `logID[:4]`). The v2 API, the tiles and the witnesses see only the C2SP checkpoint.
//! - the signed entry timestamp (SET) is an Ed25519 signature by the same key over the RFC 8785
//!   JSON of `{body, integratedTime, logID, logIndex}`.
//!
//! Ed25519 is deterministic, so every node serves the same bytes for each; and nothing signed
//! here claims more than committed state (the checkpoint's size and root, the replicated
//! integrated time).
//! - `integratedTime` is the entry's batch time, chosen by the leader and stored per batch by
//!   apply (`StateView::integrated_time_ms`), in seconds.
//!
//! Entry bodies are the canonical JSON Rekor stores (JCS, Rekor's exact field set), because
//! sigstore-rs re-canonicalises the body before hashing it: any other byte string would give
//! Rust clients a different leaf hash.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tlog::Hash;
use tlog::entry::{
    CanonicalBody, Digest, DsseEnvelope, DsseV001, Entry, HashAlgorithm, HashedRekordV001,
    InputError, IntotoV002Proposal, KeyDetails, KeyMaterial, SignatureBytes,
};

use super::log_api::{ARTIFACT_LOG, FORWARDED_BY, log_key_id, submit_or_forward, witnessed};
use super::{ApiError, Body, read_body, response};
use crate::crypto::PublicKey;
use crate::node::Node;
use crate::state_machine::LogConfig;
use crate::storage::StateView;
use tlog::keys::Ed25519Signer;
use tlog::note::Note;

/// The paths this module answers (prefix match on the first, exact on the others).
pub(super) const PREFIX: &str = "/api/v1/log";
/// The largest submission (a DSSE envelope can be a few MiB).
const SUBMISSION_BYTES_MAX: usize = tlog::entry::DSSE_ENVELOPE_BYTES_MAX * 2;
/// The most entries one `retrieve` request may ask for.
const RETRIEVE_MAX: usize = 64;
/// The strict JSON reader's bounds for v1 request bodies (arrays are bounded again by each
/// endpoint, with its own error).
const JSON_LIMITS: crate::api::json::Limits = crate::api::json::Limits {
    bytes: SUBMISSION_BYTES_MAX,
    depth: 32,
    members: 1024,
};

pub(super) async fn handle(node: &Arc<Node>, request: Request<Incoming>) -> Response<Body> {
    match dispatch(node, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(
    node: &Arc<Node>,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    let log = node
        .logs
        .get(&crate::types::LogName(ARTIFACT_LOG.to_string()))
        .ok_or_else(|| ApiError::not_found("this cluster has no artifact log"))?
        .clone();
    match (&method, path.as_str()) {
        (&Method::POST, "/api/v1/log/entries") => submit(node, &log, request).await,
        (&Method::POST, "/api/v1/log/entries/retrieve") => {
            let body = read_body(request, SUBMISSION_BYTES_MAX).await?;
            // Parsing up to 8 MiB of JSON and hashing proposed entries is CPU work: bounded.
            let wanted = node.checks.run(move || retrieve_request(&body)).await??;
            read(node, move |view, log, served| {
                let mut found = Vec::new();
                for lookup in &wanted {
                    let index = match lookup {
                        Lookup::Index(index) => Some(*index),
                        Lookup::LeafHash(hash) => {
                            view.find_leaf(&log.name, hash).map_err(storage_error)?
                        }
                    };
                    if let Some(index) = index
                        && let Some(entry) = entry(view, log, served, index)?
                    {
                        found.push(entry);
                    }
                }
                Ok(json_response(StatusCode::OK, &Value::Array(found)))
            })
            .await
        }
        (&Method::GET, "/api/v1/log/entries") => {
            let index = query_number(&query, "logIndex")?
                .ok_or_else(|| ApiError::bad_request("invalid_query", "logIndex: required"))?;
            read(node, move |view, log, served| {
                let entry = entry(view, log, served, index)?
                    .ok_or_else(|| ApiError::not_found(format!("no entry at index {index}")))?;
                Ok(json_response(StatusCode::OK, &entry))
            })
            .await
        }
        (&Method::GET, p) if p.starts_with("/api/v1/log/entries/") => {
            let hash = parse_uuid(&p["/api/v1/log/entries/".len()..])?;
            read(node, move |view, log, served| {
                let index = view
                    .find_leaf(&log.name, &hash)
                    .map_err(storage_error)?
                    .ok_or_else(|| ApiError::not_found("no entry with that UUID"))?;
                let entry = entry(view, log, served, index)?
                    .ok_or_else(|| ApiError::not_found("no entry with that UUID"))?;
                Ok(json_response(StatusCode::OK, &entry))
            })
            .await
        }
        (&Method::GET, "/api/v1/log") => read(node, |_, log, served| log_info(log, served)).await,
        (&Method::GET, "/api/v1/log/proof") => {
            let first = query_number(&query, "firstSize")?.unwrap_or(1);
            let last = query_number(&query, "lastSize")?
                .ok_or_else(|| ApiError::bad_request("invalid_query", "lastSize: required"))?;
            read(node, move |view, log, served| {
                consistency(view, log, served, first, last)
            })
            .await
        }
        (&Method::GET, "/api/v1/log/publicKey") => Ok(response(
            StatusCode::OK,
            "application/x-pem-file",
            Bytes::from(public_key_pem(&log)),
        )),
        _ => Err(ApiError::not_found(format!("no endpoint {method} {path}"))),
    }
}

/// Runs `answer` on one consistent view of committed state, off the async threads, with the
/// tree v1 answers against in that view.
async fn read(
    node: &Arc<Node>,
    answer: impl FnOnce(&StateView, &LogConfig, &Served) -> Result<Response<Body>, ApiError>
    + Send
    + 'static,
) -> Result<Response<Body>, ApiError> {
    let log = node
        .logs
        .get(&crate::types::LogName(ARTIFACT_LOG.to_string()))
        .ok_or_else(|| ApiError::not_found("this cluster has no artifact log"))?
        .clone();
    let published = match node.witnessing.get() {
        Some(witnessing) if witnessing.is_witnessed(&log.name) => {
            Some(witnessing.published(&log.name).ok_or_else(|| {
                ApiError::unavailable(
                    "not_witnessed",
                    format!(
                        "no checkpoint of log {} has reached its witness quorum yet",
                        log.name
                    ),
                )
            })?)
        }
        _ => None,
    };
    let reader = node.reader.clone();
    node.blocking
        .run(move || {
            let view = reader.view().map_err(storage_error)?;
            let served = Served::new(&view, &log, published.as_ref())?;
            answer(&view, &log, &served)
        })
        .await
}

/// The tree v1 answers against: the head, or for a witnessed log the latest checkpoint that
/// met its witness quorum (what the v2 checkpoint endpoint serves), so that v1 never serves or
/// proves against a tree the witnesses have not cosigned.
#[derive(Debug)]
struct Served {
    size: u64,
    root: Hash,
    /// The committed checkpoint at `size` (C2SP form, perhaps with cosignatures); empty for an
    /// empty log.
    checkpoint: String,
}

impl Served {
    fn new(
        view: &StateView,
        log: &LogConfig,
        published: Option<&crate::witnessing::Published>,
    ) -> Result<Served, ApiError> {
        let Some(published) = published else {
            let head = view
                .head(&log.name)
                .map_err(storage_error)?
                .unwrap_or_default();
            let root = if head.tree_size == 0 {
                Hash::EMPTY_ROOT
            } else {
                head.root
            };
            // A log with nothing committed has its size-0 checkpoint (`log_api`).
            let checkpoint = if head.checkpoint.is_empty() {
                super::log_api::empty_checkpoint(log)?
            } else {
                head.checkpoint
            };
            return Ok(Served {
                size: head.tree_size,
                root,
                checkpoint,
            });
        };
        let checkpoint = Note::parse(published.note.as_bytes())
            .ok()
            .and_then(|note| tlog::checkpoint::Checkpoint::parse(note.text()).ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "checkpoint_error",
                    "the published checkpoint does not parse",
                )
            })?;
        Ok(Served {
            size: published.size,
            root: checkpoint.root,
            checkpoint: published.note.to_string(),
        })
    }
}

fn storage_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage_error",
        error.to_string(),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    super::json(status, value)
}

fn query_number(query: &str, name: &str) -> Result<Option<u64>, ApiError> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == name {
            let number = tlog::checkpoint::parse_decimal(&value).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{name}: {value:?} is not a decimal u64"),
                )
            })?;
            found = Some(number);
        }
    }
    Ok(found)
}

/// An entry UUID: the hex leaf hash, optionally behind Rekor's 16-hex-digit tree id.
fn parse_uuid(uuid: &str) -> Result<Hash, ApiError> {
    // Checked first: slicing at byte 16 is only safe on ASCII (a UUID is hex digits anyway).
    if !uuid.is_ascii() {
        return Err(ApiError::bad_request(
            "invalid_uuid",
            "an entry UUID is hex digits",
        ));
    }
    let hex = match uuid.len() {
        64 => uuid,
        80 => &uuid[16..],
        _ => {
            return Err(ApiError::bad_request(
                "invalid_uuid",
                "an entry UUID is 64 hex digits (80 with a tree id)",
            ));
        }
    };
    Hash::from_hex(hex)
        .map_err(|_| ApiError::bad_request("invalid_uuid", "an entry UUID is hex digits"))
}

/// The entry at `index` as Rekor v1 answers it: `{uuid: {body, integratedTime, logID, logIndex,
/// verification}}`, with the inclusion proof at the served size and its signed checkpoint. An
/// entry beyond the served size is not served (committed, but not yet witnessed).
fn entry(
    view: &StateView,
    log: &LogConfig,
    served: &Served,
    index: u64,
) -> Result<Option<Value>, ApiError> {
    if index >= served.size {
        return Ok(None);
    }
    let Some(leaf) = view.leaf(&log.name, index).map_err(storage_error)? else {
        return Ok(None);
    };
    let integrated_ms = view
        .integrated_time_ms(&log.name, index)
        .map_err(storage_error)?
        .ok_or_else(|| {
            ApiError::unavailable(
                "time_unknown",
                format!(
                    "this replica caught up on entry {index} from a snapshot and does not know \
                     its integrated time; ask another node"
                ),
            )
        })?;
    let proof = view
        .inclusion_proof(&log.name, index, served.size)
        .map_err(storage_error)?;
    let checkpoint = v1_checkpoint(log, &served.checkpoint)?;
    let body = BASE64.encode(&leaf);
    let integrated_time = integrated_ms / 1000;
    let log_id = hex::encode(v1_log_id(log).as_bytes());
    let set = signed_entry_timestamp(log, &body, integrated_time, &log_id, index);
    let uuid = hex::encode(tlog::leaf_hash(&leaf).as_bytes());
    Ok(Some(json!({
        (uuid): {
            "body": body,
            "integratedTime": integrated_time,
            "logID": log_id,
            "logIndex": index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": checkpoint,
                    "hashes": proof.hashes.iter().map(|hash| hex::encode(hash.as_bytes())).collect::<Vec<_>>(),
                    "logIndex": index,
                    "rootHash": hex::encode(served.root.as_bytes()),
                    "treeSize": served.size,
                },
                "signedEntryTimestamp": BASE64.encode(set),
            },
        }
    })))
}

/// The SET: the log key's signature over the RFC 8785 JSON of the four fields. Keys are written
/// in sorted order, numbers are integers and the strings are base64 and hex, which JSON never
/// escapes, so this `format!` is exactly the canonical form.
fn signed_entry_timestamp(
    log: &LogConfig,
    body: &str,
    integrated_time: u64,
    log_id: &str,
    index: u64,
) -> Vec<u8> {
    use ed25519_dalek::Signer as _;
    let payload = format!(
        r#"{{"body":"{body}","integratedTime":{integrated_time},"logID":"{log_id}","logIndex":{index}}}"#
    );
    log.signing_key.sign(payload.as_bytes()).to_bytes().to_vec()
}

/// The DER SubjectPublicKeyInfo of the log's Ed25519 key (RFC 8410: a fixed 12-byte header).
pub(crate) fn public_key_spki(log: &LogConfig) -> Vec<u8> {
    tlog::keys::ed25519_spki_der(&log.signing_key.verifying_key())
}

/// The log's Rekor v1 log id: `SHA-256(DER SPKI)` of its key, as Rekor v1 defines it. Its
/// first 4 bytes are the key id on v1 checkpoints' signature lines.
pub(crate) fn v1_log_id(log: &LogConfig) -> Hash {
    Hash::digest(&public_key_spki(log))
}

/// The log's v1 tree id (Rekor's Trillian tree id, the origin's ` - <treeID>` suffix): the
/// first 8 bytes of its C2SP key id as a positive 63-bit integer, so it is stable for as long
/// as the origin and key are, the same on every node, and needs no configuration.
pub(crate) fn tree_id(log: &LogConfig) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&log_key_id(log).as_bytes()[..8]);
    u64::from_be_bytes(first) & (i64::MAX as u64)
}

/// The v1 form of a committed C2SP checkpoint of `log` (see the module docs): the first line
/// becomes `<origin> - <tree id>`, the other lines stay, and the only signature is the log
/// key's under the name `<origin>` with key id `SHA-256(SPKI)[:4]`. The committed checkpoint is
/// trusted (it is committed state), so only its origin is checked. Empty for an empty log.
pub(crate) fn v1_checkpoint(log: &LogConfig, committed: &str) -> Result<String, ApiError> {
    if committed.is_empty() {
        return Ok(String::new());
    }
    let failed = |reason: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "checkpoint_error",
            format!("the v1 form of the committed checkpoint: {reason}"),
        )
    };
    let note = Note::parse(committed.as_bytes()).map_err(|error| failed(error.to_string()))?;
    let rest = note
        .text()
        .strip_prefix(log.origin.as_str())
        .and_then(|rest| rest.strip_prefix('\n'))
        .ok_or_else(|| failed(format!("its origin is not {}", log.origin)))?;
    let text = format!("{} - {}\n{rest}", log.origin, tree_id(log));
    let signer = Ed25519Signer::with_spki_key_id(&log.origin, log.signing_key.clone())
        .map_err(|error| failed(error.to_string()))?;
    let mut v1 = Note::new(&text).map_err(|error| failed(error.to_string()))?;
    v1.sign(&signer)
        .map_err(|error| failed(error.to_string()))?;
    v1.format().map_err(|error| failed(error.to_string()))
}

fn public_key_pem(log: &LogConfig) -> String {
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        BASE64.encode(public_key_spki(log))
    )
}

fn log_info(log: &LogConfig, served: &Served) -> Result<Response<Body>, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "inactiveShards": [],
            "rootHash": hex::encode(served.root.as_bytes()),
            "signedTreeHead": v1_checkpoint(log, &served.checkpoint)?,
            "treeID": tree_id(log).to_string(),
            "treeSize": served.size,
        }),
    ))
}

fn consistency(
    view: &StateView,
    log: &LogConfig,
    served: &Served,
    first: u64,
    last: u64,
) -> Result<Response<Body>, ApiError> {
    if first == 0 || first > last || last > served.size {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "want 1 <= firstSize <= lastSize <= {}, got {first} and {last}",
                served.size
            ),
        ));
    }
    let proof = view
        .consistency_proof(&log.name, first, last)
        .map_err(storage_error)?;
    // The root at `lastSize`: the served one, or recomputed from the stored tiles.
    let root = if last == served.size {
        served.root
    } else {
        view.root_at(&log.name, last).map_err(storage_error)?
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "hashes": proof.hashes.iter().map(|hash| hex::encode(hash.as_bytes())).collect::<Vec<_>>(),
            "rootHash": hex::encode(root.as_bytes()),
        }),
    ))
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
pub fn retrieve_request(body: &[u8]) -> Result<Vec<Lookup>, ApiError> {
    let request = super::strict_json(body, &JSON_LIMITS)?;
    let mut wanted = Vec::new();
    if let Some(uuids) = request.get("entryUUIDs").and_then(Value::as_array) {
        for uuid in uuids {
            let uuid = uuid
                .as_str()
                .ok_or_else(|| ApiError::bad_request("invalid_uuid", "entryUUIDs: strings"))?;
            wanted.push(Lookup::LeafHash(parse_uuid(uuid)?));
        }
    }
    if let Some(indexes) = request.get("logIndexes").and_then(Value::as_array) {
        for index in indexes {
            let index = index.as_u64().ok_or_else(|| {
                ApiError::bad_request("invalid_index", "logIndexes: non-negative integers")
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
        return Err(ApiError::bad_request(
            "too_many",
            format!("ask for at most {RETRIEVE_MAX} entries at once"),
        ));
    }
    Ok(wanted)
}

/// `POST /api/v1/log/entries`: verify, canonicalise, sequence; 201 with the entry, or 409 with
/// the entry already logged.
async fn submit(
    node: &Arc<Node>,
    log: &LogConfig,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let forwarded = request.headers().contains_key(FORWARDED_BY);
    let body = read_body(request, SUBMISSION_BYTES_MAX).await?;
    // Parsing and signature checks run off the async workers, bounded (`env::Checks`).
    let checked = body.clone();
    let canonical = node
        .checks
        .run(move || parse_submission(&checked))
        .await??;
    let sequenced = match submit_or_forward(
        node,
        &log.name,
        canonical.into_bytes(),
        "/api/v1/log/entries",
        body,
        forwarded,
    )
    .await?
    {
        Ok(sequenced) => sequenced,
        Err(forwarded) => return Ok(forwarded),
    };
    // For a witnessed log, answer only once a cosigned checkpoint covers the entry, as v2 does.
    let sequenced = witnessed(node, log, sequenced).await?;
    let (index, duplicate) = (sequenced.index, sequenced.duplicate);
    let status = if duplicate {
        StatusCode::CONFLICT
    } else {
        StatusCode::CREATED
    };
    // The entry is committed and signed; this node's state may lag the leader's commit by a
    // moment, so wait briefly for it to apply before reading it back.
    for _ in 0..50 {
        let answer = read(node, move |view, log, served| {
            let entry = entry(view, log, served, index)?.ok_or_else(|| {
                ApiError::unavailable("not_applied", "the entry is not applied here yet")
            })?;
            Ok(json_response(status, &entry))
        })
        .await;
        match answer {
            Err(error) if error.code == "not_applied" => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
    Err(ApiError::unavailable(
        "not_applied",
        "the entry is committed but not yet applied here; get it by index shortly",
    ))
}

/// Checks a proposed hashedrekord 0.0.1, dsse 0.0.1 or intoto 0.0.2 entry (its signatures
/// against their keys or certificates) and returns its canonical body, built by `tlog::entry`
/// exactly as Rekor canonicalises it (the same code verifiers use to rebuild it).
/// The body of `POST /api/v1/log/entries` to the canonical entry it would log: the parsing and
/// checks the endpoint runs before sequencing. Public for the fuzz targets (`fuzz/`).
pub fn parse_submission(body: &[u8]) -> Result<String, ApiError> {
    let proposed = super::strict_json(body, &JSON_LIMITS)?;
    verify_and_canonicalize(&proposed)
}

pub(crate) fn verify_and_canonicalize(proposed: &Value) -> Result<String, ApiError> {
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
                return Err(ApiError::bad_request(
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
fn canonical_entry(proposed: &Value) -> Result<String, ApiError> {
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

fn kind_and_spec(proposed: &Value) -> Result<(&'static str, &Value), ApiError> {
    let kind = proposed.get("kind").and_then(Value::as_str);
    let api_version = proposed.get("apiVersion").and_then(Value::as_str);
    let kind = match (kind, api_version) {
        (Some("hashedrekord"), Some("0.0.1")) => "hashedrekord",
        (Some("dsse"), Some("0.0.1")) => "dsse",
        (Some("intoto"), Some("0.0.2")) => "intoto",
        (Some(kind @ ("hashedrekord" | "dsse" | "intoto")), version) => {
            return Err(ApiError::bad_request(
                "unsupported_version",
                format!(
                    "{kind} apiVersion {}: this log accepts {KINDS} (v2 entries go to /api/v2)",
                    quoted(version)
                ),
            ));
        }
        (other, _) => {
            return Err(ApiError::bad_request(
                "unsupported_kind",
                format!("kind {}: this log accepts {KINDS}", quoted(other)),
            ));
        }
    };
    let spec = proposed
        .get("spec")
        .filter(|spec| spec.is_object())
        .ok_or_else(|| ApiError::bad_request("invalid_entry", "spec: an object is required"))?;
    Ok((kind, spec))
}

/// A member's value for an error message: quoted and shortened, or "missing".
fn quoted(value: Option<&str>) -> String {
    match value {
        Some(value) => format!("{:?}", value.chars().take(64).collect::<String>()),
        None => "missing".to_owned(),
    }
}

fn field<'a>(value: &'a Value, path: &[&str]) -> Result<&'a str, ApiError> {
    let mut at = value;
    for name in path {
        at = at.get(name).ok_or_else(|| missing(path))?;
    }
    at.as_str().ok_or_else(|| missing(path))
}

fn missing(path: &[&str]) -> ApiError {
    ApiError::bad_request(
        "invalid_entry",
        format!("spec.{}: a string is required", path.join(".")),
    )
}

fn input_error(error: &InputError) -> ApiError {
    ApiError::bad_request("invalid_entry", error.to_string())
}

fn canonical(entry: impl Into<Entry>) -> Result<String, ApiError> {
    let body = CanonicalBody::new(entry)
        .map_err(|error| ApiError::bad_request("invalid_entry", error.to_string()))?;
    String::from_utf8(body.as_bytes().to_vec())
        .map_err(|error| ApiError::bad_request("invalid_entry", error.to_string()))
}

/// The key (a public key, or a certificate chain's leaf) parsed as each of `allowed` that it
/// can be: the v1 entry does not declare its algorithm.
fn public_keys(material: &KeyMaterial, allowed: &[KeyDetails]) -> Result<Vec<PublicKey>, ApiError> {
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
        return Err(ApiError::bad_request(
            "unsupported_key",
            "the key is not one this log accepts (ECDSA P-256/384/521, RSA 2048-4096, Ed25519)",
        ));
    }
    Ok(keys)
}

/// hashedrekord 0.0.1 from its spec.
fn hashedrekord(spec: &Value) -> Result<HashedRekordV001, ApiError> {
    let algorithm = field(spec, &["data", "hash", "algorithm"])?;
    if algorithm != "sha256" {
        return Err(ApiError::bad_request(
            "unsupported_hash",
            format!("spec.data.hash.algorithm {algorithm:?}: want sha256"),
        ));
    }
    let digest = hex::decode(field(spec, &["data", "hash", "value"])?)
        .map_err(|_| ApiError::bad_request("invalid_entry", "spec.data.hash.value: hex"))?;
    let digest = Digest::new(HashAlgorithm::Sha256, &digest).map_err(|e| input_error(&e))?;
    let signature = SignatureBytes::from_base64(field(spec, &["signature", "content"])?)
        .map_err(|e| input_error(&e))?;
    let pem = BASE64
        .decode(field(spec, &["signature", "publicKey", "content"])?)
        .map_err(|_| {
            ApiError::bad_request("invalid_entry", "spec.signature.publicKey.content: base64")
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
fn dsse(spec: &Value, verify: bool) -> Result<String, ApiError> {
    let envelope = DsseEnvelope::parse(field(spec, &["proposedContent", "envelope"])?)
        .map_err(|e| input_error(&e))?;
    let verifiers = spec
        .get("proposedContent")
        .and_then(|content| content.get("verifiers"))
        .and_then(Value::as_array)
        .filter(|verifiers| !verifiers.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_entry",
                "spec.proposedContent.verifiers: a non-empty array is required",
            )
        })?;
    // Before any verifier is decoded: thousands of copies of one key once cost minutes of CPU.
    let signatures = envelope.signatures();
    if verifiers.len() > signatures.len() {
        return Err(ApiError::bad_request(
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
            .ok_or_else(|| {
                ApiError::bad_request("invalid_entry", format!("{what}: base64 of PEM"))
            })?;
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
                ApiError::bad_request(
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
fn intoto(spec: &Value, verify: bool) -> Result<String, ApiError> {
    let proposal = IntotoV002Proposal::parse(spec)
        .map_err(|error| ApiError::bad_request("invalid_entry", error.to_string()))?;
    if verify {
        let pae = proposal.pae();
        for (position, signature) in proposal.entry().signatures().iter().enumerate() {
            let keys = public_keys(&signature.public_key, &INTOTO_KEYS)?;
            if !keys
                .iter()
                .any(|key| key.verify_message(&pae, signature.sig.as_bytes()).is_ok())
            {
                return Err(ApiError::bad_request(
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
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "too_many_verifiers")
        );
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
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "invalid_uuid")
        );
        let short = format!("é{}", "a".repeat(62));
        assert_eq!(short.len(), 64);
        assert_eq!(parse_uuid(&short).unwrap_err().code, "invalid_uuid");
        let good = "ab".repeat(32);
        assert!(parse_uuid(&good).is_ok());
        assert!(parse_uuid(&format!("{}{good}", "0".repeat(16))).is_ok());
    }
}

#[cfg(test)]
#[path = "rekor_v1_intoto_tests.rs"]
mod intoto_tests;
