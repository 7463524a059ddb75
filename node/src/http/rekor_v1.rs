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

use super::append::{Answered, Raw, Target, append};
use super::log_api::{ARTIFACT_LOG, log_key_id};
use super::{ApiError, Body, read_body, response};
use crate::api::v1_request::{
    Lookup, RequestError, SUBMISSION_BYTES_MAX, parse_submission, parse_uuid, retrieve_request,
};
use crate::node::Node;
use crate::state_machine::LogConfig;
use crate::storage::StateView;
use crate::types::LogName;
use tlog::keys::Ed25519Signer;
use tlog::note::Note;

/// The paths this module answers (prefix match on the first, exact on the others).
pub(super) const PREFIX: &str = "/api/v1/log";

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> ApiError {
        let status = StatusCode::from_u16(error.http_status).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, error.code, error.message)
    }
}

/// Serves the v1 API at `/api/v1/log/...` over the artifact log that is open now (lookups by
/// UUID and retrieval by hash also search its frozen predecessors), or, when `named`, at
/// `/logs/<name>/api/v1/log/...` over that log alone (frozen ones too; `path` is then the rest
/// from `/api/v1/log`).
pub(super) async fn handle(
    node: &Arc<Node>,
    request: Request<Incoming>,
    named: Option<(LogName, String)>,
) -> Response<Body> {
    match dispatch(node, request, named).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(
    node: &Arc<Node>,
    request: Request<Incoming>,
    named: Option<(LogName, String)>,
) -> Result<Response<Body>, ApiError> {
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    let family = LogName(ARTIFACT_LOG.to_string());
    let (target, path) = match named {
        Some((log, rest)) => (Target::Exact(log), rest),
        None => (
            Target::Family(family.clone()),
            request.uri().path().trim_end_matches('/').to_string(),
        ),
    };
    // Where lookups by hash search: the log named, or the open one and then its frozen
    // predecessors, newest first (an entry is in exactly one log of the family).
    let (log, searched) = match &target {
        Target::Exact(log) => (log.clone(), vec![log.clone()]),
        Target::Family(family) => {
            let mut searched = node.lifecycle().family(family);
            searched.reverse();
            (node.active_log(family), searched)
        }
    };
    let log = node
        .logs()
        .get(&log)
        .ok_or_else(|| ApiError::not_found(format!("no log named {:?}", log.0)))?
        .clone();
    match (&method, path.as_str()) {
        (&Method::POST, "/api/v1/log/entries") => submit(node, &target, request).await,
        (&Method::POST, "/api/v1/log/entries/retrieve") => {
            let body = read_body(request, SUBMISSION_BYTES_MAX).await?;
            // Parsing up to 8 MiB of JSON and hashing proposed entries is CPU work: bounded.
            let wanted = Arc::new(node.checks().run(move || retrieve_request(&body)).await??);
            let mut found = Vec::new();
            for (position, searched) in searched.into_iter().enumerate() {
                let wanted = Arc::clone(&wanted);
                // Indices name entries of the log served, never of its predecessors.
                let by_index = position == 0;
                found.extend(
                    read(node, &searched, move |view, log, served| {
                        let mut found = Vec::new();
                        for lookup in wanted.iter() {
                            let index = match lookup {
                                Lookup::Index(index) => by_index.then_some(*index),
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
                        Ok(found)
                    })
                    .await?,
                );
            }
            Ok(json_response(StatusCode::OK, &Value::Array(found)))
        }
        (&Method::GET, "/api/v1/log/entries") => {
            let index = query_number(&query, "logIndex")?
                .ok_or_else(|| ApiError::bad_request("invalid_query", "logIndex: required"))?;
            read(node, &log.name, move |view, log, served| {
                let entry = entry(view, log, served, index)?
                    .ok_or_else(|| ApiError::not_found(format!("no entry at index {index}")))?;
                Ok(json_response(StatusCode::OK, &entry))
            })
            .await
        }
        (&Method::GET, p) if p.starts_with("/api/v1/log/entries/") => {
            let hash = parse_uuid(&p["/api/v1/log/entries/".len()..])?;
            for searched in &searched {
                let found = read(node, searched, move |view, log, served| {
                    match view.find_leaf(&log.name, &hash).map_err(storage_error)? {
                        Some(index) => entry(view, log, served, index),
                        None => Ok(None),
                    }
                })
                .await?;
                if let Some(entry) = found {
                    return Ok(json_response(StatusCode::OK, &entry));
                }
            }
            Err(ApiError::not_found("no entry with that UUID"))
        }
        (&Method::GET, "/api/v1/log") => {
            read(node, &log.name, |_, log, served| log_info(log, served)).await
        }
        (&Method::GET, "/api/v1/log/proof") => {
            let first = query_number(&query, "firstSize")?.unwrap_or(1);
            let last = query_number(&query, "lastSize")?
                .ok_or_else(|| ApiError::bad_request("invalid_query", "lastSize: required"))?;
            read(node, &log.name, move |view, log, served| {
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
/// tree v1 answers against in that view, for `log`.
async fn read<T: Send + 'static>(
    node: &Arc<Node>,
    log: &LogName,
    answer: impl FnOnce(&StateView, &LogConfig, &Served) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let log = node
        .logs()
        .get(log)
        .ok_or_else(|| ApiError::not_found(format!("no log named {:?}", log.0)))?
        .clone();
    let published = match node.witnessing() {
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
    let reader = node.reader().clone();
    node.blocking()
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
        .map_err(storage_error)?;
    let proof = view
        .inclusion_proof(&log.name, index, served.size)
        .map_err(storage_error)?;
    let proven = Proven {
        hashes: &proof.hashes,
        root: served.root,
        tree_size: served.size,
        checkpoint: &served.checkpoint,
    };
    v1_entry(log, &leaf, index, integrated_ms, &proven).map(Some)
}

/// An entry's inclusion proof and the committed checkpoint (C2SP form) it leads to.
struct Proven<'a> {
    hashes: &'a [Hash],
    root: Hash,
    tree_size: u64,
    checkpoint: &'a str,
}

/// The entry `leaf` at `index` as Rekor v1 answers it, read back or just appended:
/// `{uuid: {body, integratedTime, logID, logIndex, verification}}`, with the SET and the v1
/// form of the checkpoint, both signed here (Ed25519: the same bytes on every node).
fn v1_entry(
    log: &LogConfig,
    leaf: &[u8],
    index: u64,
    integrated_ms: Option<u64>,
    proven: &Proven<'_>,
) -> Result<Value, ApiError> {
    let integrated_ms = integrated_ms.ok_or_else(|| {
        ApiError::unavailable(
            "time_unknown",
            format!(
                "this replica caught up on entry {index} from a snapshot and does not know \
                 its integrated time; ask another node"
            ),
        )
    })?;
    let checkpoint = v1_checkpoint(log, proven.checkpoint)?;
    let body = BASE64.encode(leaf);
    let integrated_time = integrated_ms / 1000;
    let log_id = hex::encode(v1_log_id(log).as_bytes());
    let set = signed_entry_timestamp(log, &body, integrated_time, &log_id, index);
    let uuid = hex::encode(tlog::leaf_hash(leaf).as_bytes());
    Ok(json!({
        (uuid): {
            "body": body,
            "integratedTime": integrated_time,
            "logID": log_id,
            "logIndex": index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": checkpoint,
                    "hashes": proven.hashes.iter().map(|hash| hex::encode(hash.as_bytes())).collect::<Vec<_>>(),
                    "logIndex": index,
                    "rootHash": hex::encode(proven.root.as_bytes()),
                    "treeSize": proven.tree_size,
                },
                "signedEntryTimestamp": BASE64.encode(set),
            },
        }
    }))
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

/// `POST /api/v1/log/entries`: verify, canonicalise, sequence; 201 with the entry, or 409 with
/// the entry already logged. The answer is made from the append's own checkpoint, proof and
/// integrated time, on the leader and on a follower alike (which gets them from the leader), so
/// it reads nothing this node may not have applied yet.
async fn submit(
    node: &Arc<Node>,
    target: &Target,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = match target {
        Target::Family(_) => "/api/v1/log/entries".to_string(),
        Target::Exact(log) => format!("/logs/{log}/api/v1/log/entries"),
    };
    let forwarded = super::Forwarded::is(&request);
    let body = read_body(request, SUBMISSION_BYTES_MAX).await?;
    // Parsing and signature checks run bounded (`env::Checks`).
    let checked = body.clone();
    let canonical = node
        .checks()
        .run(move || parse_submission(&checked))
        .await??;
    let leaf = canonical.into_bytes();
    let raw = Raw { path: &path, body };
    // For a witnessed log the append is answered only once a cosigned checkpoint covers the
    // entry, as v2 does.
    let answered = match append(node, target, leaf.clone(), true, raw, forwarded).await? {
        Ok(answered) => answered,
        Err(relayed) => return Ok(relayed),
    };
    let log = node
        .logs()
        .get(&answered.log)
        .ok_or_else(|| ApiError::not_found(format!("no log named {:?}", answered.log.0)))?;
    let status = if answered.appended.duplicate {
        StatusCode::CONFLICT
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(
        status,
        &appended_entry(log, &leaf, &answered)?,
    ))
}

/// The v1 entry of an append just answered.
fn appended_entry(log: &LogConfig, leaf: &[u8], answered: &Answered) -> Result<Value, ApiError> {
    let appended = &answered.appended;
    let proven = Proven {
        hashes: &appended.inclusion_proof.hashes,
        root: appended.root,
        tree_size: appended.tree_size,
        checkpoint: &appended.checkpoint,
    };
    v1_entry(
        log,
        leaf,
        appended.index,
        answered.integrated_time_ms,
        &proven,
    )
}
