//! The public log API: C2SP tlog-tiles reads, proofs, entries, and Rekor v2 submissions.
//!
//! Every log is served under `/logs/<name>/`; the artifact log is also served under `/api/v2/`,
//! where Rekor v2 clients look for it. Reads come from committed state on whichever node
//! answers, off the consensus path; tiles are immutable and cached for a year, checkpoints are
//! not cached. Writes are validated and signature-checked by the node that receives them, then
//! sequenced by the leader (a follower relays the verified leaf, `append`), and answered only
//! once the entry is committed and covered by a committed signed checkpoint.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tlog::Hash;
use tlog::tile::{Tile, TileKind};

use super::append::{Raw, Target, append};
use super::{ApiError, Body, Forwarded, json, read_body, response};
use crate::node::Node;
use crate::state_machine::LogConfig;
use crate::storage::StateView;
use crate::types::LogName;

/// The log Rekor v2 clients write to and read from under `/api/v2/`.
pub(crate) const ARTIFACT_LOG: &str = "artifacts";
/// The largest submission body (a DSSE envelope can be a few MiB).
const SUBMISSION_BYTES_MAX: usize = tlog::entry::DSSE_ENVELOPE_BYTES_MAX;
/// Tiles and bundles never change once served: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

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
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    if method == Method::POST && path == "/api/v2/log/entries" {
        return submit_v2(node, request, None).await;
    }
    if method == Method::POST
        && let Some(name) = path
            .strip_prefix("/logs/")
            .and_then(|rest| rest.strip_suffix("/entries"))
    {
        let log = log_config(node, name)?.name.clone();
        return submit_v2(node, request, Some(log)).await;
    }
    if method != Method::GET {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} {path}"),
        ));
    }
    if path == "/logs" {
        return Ok(list_logs(node));
    }
    let (log, rest) = if let Some(rest) = path.strip_prefix("/api/v2/") {
        let active = node.active_log(&LogName(ARTIFACT_LOG.to_string()));
        (log_config(node, &active.0)?, rest)
    } else if let Some(rest) = path.strip_prefix("/logs/") {
        let (name, rest) = rest.split_once('/').unwrap_or((rest, ""));
        (log_config(node, name)?, rest)
    } else {
        return Err(ApiError::not_found(format!("no endpoint {path}")));
    };
    if rest == "checkpoint"
        && let Some(witnessing) = node.witnessing()
        && witnessing.is_witnessed(&log.name)
    {
        return witnessed_checkpoint(witnessing, log);
    }
    // Reads touch redb: run them where blocking work belongs, all from one consistent view.
    let (log, rest, reader) = (log.clone(), rest.to_string(), node.reader().clone());
    node.blocking()
        .run(move || {
            let view = reader.view().map_err(storage_error)?;
            read(&view, &log, &rest, &query)
        })
        .await
}

/// Answers a read of one log from one view of committed state.
fn read(
    view: &StateView,
    log: &LogConfig,
    rest: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    match rest {
        "checkpoint" => checkpoint(view, log),
        "proof/inclusion" => inclusion_proof(view, log, query),
        "proof/consistency" => consistency_proof(view, log, query),
        rest if rest.starts_with("tile/") => tile(view, log, rest),
        rest if rest.starts_with("entries/") => entry(view, log, &rest["entries/".len()..]),
        _ => Err(ApiError::not_found(format!(
            "no endpoint for log {}: {rest}",
            log.name
        ))),
    }
}

fn log_config<'a>(node: &'a Node, name: &str) -> Result<&'a LogConfig, ApiError> {
    node.logs()
        .get(&LogName(name.to_string()))
        .ok_or_else(|| ApiError::not_found(format!("no log named {name:?}")))
}

pub(super) fn storage_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage_error",
        error.to_string(),
    )
}

/// The C2SP verifier key of a log's checkpoint key (`origin+keyid+base64`).
pub(crate) fn verifier_key(log: &LogConfig) -> String {
    tlog::keys::Ed25519Verifier::new(&log.origin, log.signing_key.verifying_key())
        .map(|verifier| tlog::keys::Verifier::Ed25519(verifier).to_vkey())
        .unwrap_or_default()
}

/// The full 32-byte key id Rekor v2 clients expect as `logId.keyId`:
/// SHA-256(origin ‖ 0x0A ‖ 0x01 ‖ public key), the untruncated checkpoint key id.
pub(crate) fn log_key_id(log: &LogConfig) -> Hash {
    let mut preimage = log.origin.as_bytes().to_vec();
    preimage.push(b'\n');
    preimage.push(0x01);
    preimage.extend_from_slice(log.signing_key.verifying_key().as_bytes());
    Hash::digest(&preimage)
}

fn list_logs(node: &Node) -> Response<Body> {
    let lifecycle = node.lifecycle();
    let logs: Vec<serde_json::Value> = node
        .logs()
        .iter()
        .map(|log| {
            let state = lifecycle.state(node.logs(), &log.name);
            let mut entry = serde_json::json!({
                "name": log.name.0,
                "origin": log.origin,
                "verifier_key": verifier_key(log),
                "prefix": format!("/logs/{}/", log.name.0),
                "state": state.name(),
            });
            if let Some(predecessor) = &log.succeeds {
                entry["succeeds"] = serde_json::json!(predecessor.0);
            }
            if let Some(record) = lifecycle.opened(&log.name) {
                entry["opened_unix_ms"] = serde_json::json!(record.at_unix_ms);
            }
            if let crate::lifecycle::LogState::Frozen(record) = state {
                entry["successor"] = serde_json::json!(record.successor.0);
                entry["frozen_unix_ms"] = serde_json::json!(record.at_unix_ms);
                entry["final_size"] = serde_json::json!(record.final_size);
                entry["final_checkpoint"] = serde_json::json!(record.final_checkpoint);
            }
            entry
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "logs": logs }))
}

/// The checkpoint of a log with no entries: size 0 and the empty tree's root, signed with
/// the log's key. Served from the moment the log exists (as Sunlight and Tessera do), so that
/// witnesses and monitors can start on a new log. It needs no replicated state: Ed25519
/// signatures are deterministic (RFC 8032), so every node serves the same bytes, and every
/// later checkpoint is trivially consistent with it (a proof from size 0 is empty).
pub(crate) fn empty_checkpoint(log: &LogConfig) -> Result<String, ApiError> {
    tlog::checkpoint::Checkpoint::new(&log.origin, tlog::TreeSize(0), Hash::EMPTY_ROOT)
        .sign_ed25519(&log.signing_key)
        .map_err(|error| error.to_string())
        .and_then(|note| note.format().map_err(|error| error.to_string()))
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checkpoint_failed",
                format!("signing the empty checkpoint of log {}: {error}", log.name),
            )
        })
}

fn checkpoint(view: &StateView, log: &LogConfig) -> Result<Response<Body>, ApiError> {
    let checkpoint = match view.checkpoint(&log.name).map_err(storage_error)? {
        Some(checkpoint) => checkpoint,
        None => empty_checkpoint(log)?,
    };
    let mut reply = response(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        Bytes::from(checkpoint),
    );
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(reply)
}

fn tile(view: &StateView, log: &LogConfig, path: &str) -> Result<Response<Body>, ApiError> {
    let tile = Tile::from_path(path)
        .map_err(|error| ApiError::bad_request("invalid_tile_path", format!("{path}: {error}")))?;
    let data = match tile.kind {
        TileKind::Hashes { .. } => view.hash_tile(&log.name, tile),
        TileKind::Entries => view.entry_bundle(&log.name, tile.index, tile.width),
    }
    .map_err(storage_error)?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "tile {path} does not exist at the current tree size"
        ))
    })?;
    let mut reply = response(
        StatusCode::OK,
        "application/octet-stream",
        Bytes::from(data),
    );
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    Ok(reply)
}

/// Query parameters, each at most once.
fn query_params(query: &str) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let mut params = std::collections::BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if params.insert(key.to_string(), value.to_string()).is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("{key} given twice"),
            ));
        }
    }
    Ok(params)
}

fn number(
    params: &std::collections::BTreeMap<String, String>,
    name: &str,
) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|text| {
            tlog::checkpoint::parse_decimal(text).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{name}: {text:?} is not a decimal u64"),
                )
            })
        })
        .transpose()
}

fn current_size(view: &StateView, log: &LogConfig) -> Result<u64, ApiError> {
    Ok(view
        .head(&log.name)
        .map_err(storage_error)?
        .map_or(0, |head| head.tree_size))
}

fn inclusion_proof(
    view: &StateView,
    log: &LogConfig,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let params = query_params(query)?;
    let size = current_size(view, log)?;
    let tree_size = number(&params, "tree_size")?.unwrap_or(size);
    if tree_size == 0 || tree_size > size {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("tree_size {tree_size} must be 1 to the current size {size}"),
        ));
    }
    let index = match (number(&params, "index")?, params.get("leaf_hash")) {
        (Some(index), None) => index,
        (None, Some(text)) => {
            let hash = Hash::from_hex(text)
                .or_else(|_| Hash::from_base64(text))
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        "leaf_hash: want 32 bytes as hex or base64",
                    )
                })?;
            view.find_leaf(&log.name, &hash)
                .map_err(storage_error)?
                .ok_or_else(|| ApiError::not_found("no leaf with that leaf hash"))?
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give exactly one of index and leaf_hash",
            ));
        }
    };
    if index >= tree_size {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("leaf index {index} is not in a tree of size {tree_size}"),
        ));
    }
    let proof = view
        .inclusion_proof(&log.name, index, tree_size)
        .map_err(storage_error)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "leaf_index": index,
            "tree_size": tree_size,
            "hashes": proof.hashes.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        }),
    ))
}

fn consistency_proof(
    view: &StateView,
    log: &LogConfig,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let params = query_params(query)?;
    let size = current_size(view, log)?;
    let old = number(&params, "old")?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "old: required"))?;
    let new = number(&params, "new")?.unwrap_or(size);
    if old > new || new > size {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("want 0 <= old <= new <= current size {size}, got old {old} new {new}"),
        ));
    }
    // Every tree extends the empty one, and the proof of that is empty (C2SP tlog-witness: a
    // consistency proof from size 0 has no lines; RFC 9162 defines proofs for 0 < old only).
    let hashes = if old == 0 {
        Vec::new()
    } else {
        view.consistency_proof(&log.name, old, new)
            .map_err(storage_error)?
            .hashes
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "old": old,
            "new": new,
            "hashes": hashes.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        }),
    ))
}

fn entry(view: &StateView, log: &LogConfig, index: &str) -> Result<Response<Body>, ApiError> {
    let index: u64 = index.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_path",
            format!("entry index {index:?} is not a number"),
        )
    })?;
    let leaf = view
        .leaf(&log.name, index)
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found(format!("no entry {index} in log {}", log.name)))?;
    Ok(response(
        StatusCode::OK,
        "application/json",
        Bytes::from(leaf),
    ))
}

/// `POST /api/v2/log/entries` (to the artifact log that is open now) and
/// `POST /logs/<name>/entries` (to that log of the artifact family, which must be open):
/// validate, verify the signature, sequence, answer with a `TransparencyLogEntry` once
/// committed and covered by a signed checkpoint.
async fn submit_v2(
    node: &Arc<Node>,
    request: Request<Incoming>,
    named: Option<LogName>,
) -> Result<Response<Body>, ApiError> {
    let target = match named {
        None => Target::Family(LogName(ARTIFACT_LOG.to_string())),
        Some(log) => {
            if configured_root(node, &log).0 != ARTIFACT_LOG {
                return Err(ApiError::not_found(format!(
                    "log {log} takes no entries through this API (only the artifact logs do)"
                )));
            }
            Target::Exact(log)
        }
    };
    let path = match &target {
        Target::Family(_) => "/api/v2/log/entries".to_string(),
        Target::Exact(log) => format!("/logs/{log}/entries"),
    };
    let forwarded = Forwarded::is(&request);
    let body = read_body(request, SUBMISSION_BYTES_MAX).await?;
    // Decoding and the signature checks run bounded (`env::Checks`).
    let checked = body.clone();
    let decoded = node
        .checks()
        .run(move || crate::api::v2_request::decode(&checked))
        .await?
        .map_err(|error| {
            let status =
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            ApiError::new(status, error.code(), error.to_string())
        })?;
    let leaf = decoded.body.as_bytes().to_vec();
    let raw = Raw { path: &path, body };
    // Answered here, or by the leader for a follower, which answers from what it got back:
    // the same bytes either way.
    let answered = match append(node, &target, leaf.clone(), false, raw, forwarded).await? {
        Ok(answered) => answered,
        Err(relayed) => return Ok(relayed),
    };
    let log = log_config(node, &answered.log.0)?;
    let appended = answered.appended;
    let entry = serde_json::json!({
        "logIndex": appended.index.to_string(),
        "logId": { "keyId": BASE64.encode(log_key_id(log).as_bytes()) },
        "kindVersion": { "kind": decoded.kind, "version": decoded.version },
        "inclusionProof": {
            "logIndex": appended.index.to_string(),
            "rootHash": appended.root.to_base64(),
            "treeSize": appended.tree_size.to_string(),
            "hashes": appended.inclusion_proof.hashes.iter().map(Hash::to_base64).collect::<Vec<_>>(),
            "checkpoint": { "envelope": &*appended.checkpoint },
        },
        "canonicalizedBody": BASE64.encode(&leaf),
    });
    let status = if appended.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(status, &entry))
}

/// A witnessed log's checkpoint endpoint: the latest checkpoint that met its witness quorum
/// (`node::witnessing`), never one that did not.
fn witnessed_checkpoint(
    witnessing: &crate::witnessing::Witnessing,
    log: &LogConfig,
) -> Result<Response<Body>, ApiError> {
    let published = witnessing.published(&log.name).ok_or_else(|| {
        ApiError::unavailable(
            "not_witnessed",
            format!(
                "no checkpoint of log {} has reached its witness quorum yet",
                log.name
            ),
        )
    })?;
    let mut reply = response(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        Bytes::from(published.note.to_string()),
    );
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(reply)
}

/// The first log of `log`'s family as configured: following `succeeds` back (a successor
/// belongs to its family before a rotation opens it).
fn configured_root(node: &Node, log: &LogName) -> LogName {
    let mut current = log.clone();
    for _ in 0..=node.logs().iter().count() {
        match node
            .logs()
            .get(&current)
            .and_then(|config| config.succeeds.clone())
        {
            Some(predecessor) => current = predecessor,
            None => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    /// The README's copy-paste example must stay a valid, verifiable submission.
    #[test]
    fn the_readme_example_request_verifies() {
        let body = include_bytes!("../../../docs/examples/hashedrekord-request.json");
        let accepted = crate::api::v2_request::decode(body).unwrap();
        assert_eq!((accepted.kind, accepted.version), ("hashedrekord", "0.0.2"));
        let artifact = include_bytes!("../../../docs/examples/hello.txt");
        let request: serde_json::Value = serde_json::from_slice(body).unwrap();
        let digest = request["hashedRekordRequestV002"]["digest"]
            .as_str()
            .unwrap();
        assert_eq!(digest, tlog::Hash::digest(artifact).to_base64());
    }
}
