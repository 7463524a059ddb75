//! Search: Rekor v1's `POST /api/v1/index/retrieve` over the artifact log, and Cairn's paged
//! `GET /api/v1/cairn/index` over any log (the certificate log too), for monitors.
//!
//! Both read the replicated search index (`node::search`, `StateView::search`), which every
//! replica writes with the leaves it indexes, including a replica that caught up from a
//! snapshot: unlike Rekor's separate Redis index, the answer is complete.
//!
//! Bounds: `index/retrieve` answers at most [`RETRIEVE_RESULTS_MAX`] UUIDs per criterion and
//! refuses (400 `too_many_results`) rather than truncate; past it, page with `cairn/index`,
//! which returns at most [`PAGE_MAX`] entries per request and a `next` cursor.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tlog::entry::KeyMaterial;

use super::log_api::ARTIFACT_LOG;
use super::{ApiError, Body, read_body};
use crate::node::Node;
use crate::search::SearchKey;
use crate::storage::StateView;
use crate::types::LogName;

/// Rekor's search endpoint.
pub(super) const RETRIEVE: &str = "/api/v1/index/retrieve";
/// Cairn's paged index endpoint.
pub(super) const PAGED: &str = "/api/v1/cairn/index";
/// The most UUIDs one criterion of `index/retrieve` may match.
pub(super) const RETRIEVE_RESULTS_MAX: usize = 1000;
/// The most entries one page of `cairn/index` holds (and its default).
pub(super) const PAGE_MAX: usize = 1000;
/// The default page size of `cairn/index`.
pub(super) const PAGE_DEFAULT: usize = 100;
/// The largest `index/retrieve` request (a certificate chain in PEM is a few KiB).
const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// The strict JSON reader's bounds for an `index/retrieve` body.
const JSON_LIMITS: crate::api::json::Limits = crate::api::json::Limits {
    bytes: REQUEST_BYTES_MAX,
    depth: 8,
    members: 64,
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
    let method = request.method().clone();
    match (&method, path.as_str()) {
        (&Method::POST, RETRIEVE) => {
            let body = read_body(request, REQUEST_BYTES_MAX).await?;
            let (keys, operator) = retrieve_request(&body)?;
            // The artifact logs, newest first: a frozen log's entries are still found, and
            // the v1 API looks their UUIDs up in the same logs.
            let mut logs = node.lifecycle().family(&artifact_log(node)?);
            logs.reverse();
            read(node, move |view| {
                let mut uuids = Vec::new();
                for log in &logs {
                    uuids.extend(retrieve(view, log, &keys, operator)?);
                }
                Ok(super::json(StatusCode::OK, &Value::Array(uuids)))
            })
            .await
        }
        (&Method::GET, PAGED) => {
            let query = paged_request(request.uri().query().unwrap_or(""))?;
            if node.logs().get(&query.log).is_none() {
                return Err(ApiError::not_found(format!("no log {:?}", query.log.0)));
            }
            read(node, move |view| page(view, &query)).await
        }
        _ => Err(ApiError::not_found(format!("no endpoint {method} {path}"))),
    }
}

fn artifact_log(node: &Node) -> Result<LogName, ApiError> {
    let log = LogName(ARTIFACT_LOG.to_owned());
    node.logs()
        .get(&log)
        .ok_or_else(|| ApiError::not_found("this cluster has no artifact log"))?;
    Ok(log)
}

/// Runs `answer` on one consistent view of committed state, off the async threads.
async fn read(
    node: &Arc<Node>,
    answer: impl FnOnce(&StateView) -> Result<Response<Body>, ApiError> + Send + 'static,
) -> Result<Response<Body>, ApiError> {
    let reader = node.reader().clone();
    node.blocking()
        .run(move || {
            let view = reader.view().map_err(storage_error)?;
            answer(&view)
        })
        .await
}

fn storage_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage_error",
        error.to_string(),
    )
}

/// One criterion of `index/retrieve`: its field name (for errors) and its search key.
type Criterion = (&'static str, SearchKey);

/// How `index/retrieve` combines its criteria.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    And,
    Or,
}

/// `{"hash": "sha256:<hex>", "publicKey": {"format": "x509", "content": ...}, "email": ...,
/// "operator": "and"|"or"}`: the criteria given, as search keys, each named for errors.
fn retrieve_request(body: &[u8]) -> Result<(Vec<Criterion>, Operator), ApiError> {
    let request = super::strict_json(body, &JSON_LIMITS)?;
    let request = request
        .as_object()
        .ok_or_else(|| ApiError::bad_request("invalid_json", "the body is not a JSON object"))?;
    let string = |name: &str| -> Result<Option<&str>, ApiError> {
        match request.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ApiError::bad_request(
                "invalid_query",
                format!("{name}: a string is required"),
            )),
        }
    };
    let mut keys = Vec::new();
    if let Some(hash) = string("hash")? {
        let key = SearchKey::for_digest(hash).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_hash",
                format!(
                    "hash {:?}: want sha256:<64 hex digits> (or sha384:, sha512:, or bare \
                     SHA-256 hex)",
                    truncated(hash)
                ),
            )
        })?;
        keys.push(("hash", key));
    }
    if let Some(key) = request.get("publicKey").filter(|key| !key.is_null()) {
        keys.push(("publicKey", public_key(key)?));
    }
    if let Some(email) = string("email")? {
        if !email.contains('@') || email.contains("://") {
            return Err(ApiError::bad_request(
                "invalid_email",
                format!("email {:?} is not an e-mail address", truncated(email)),
            ));
        }
        keys.push(("email", SearchKey::for_identity(email)));
    }
    if keys.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "give at least one of hash, publicKey, email",
        ));
    }
    let operator = match string("operator")? {
        None | Some("or") => Operator::Or,
        Some("and") => Operator::And,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("operator {:?}: want \"and\" or \"or\"", truncated(other)),
            ));
        }
    };
    Ok((keys, operator))
}

/// Rekor's `publicKey`: x509 only (a PEM public key or certificate), inline only; `content`
/// is the PEM, or its base64.
fn public_key(key: &Value) -> Result<SearchKey, ApiError> {
    let bad = |message: String| ApiError::bad_request("invalid_public_key", message);
    let format = key.get("format").and_then(Value::as_str).unwrap_or("");
    if format != "x509" {
        return Err(ApiError::bad_request(
            "unsupported_pki_format",
            format!(
                "publicKey.format {:?}: this log holds x509 keys and certificates only",
                truncated(format)
            ),
        ));
    }
    if key.get("url").is_some_and(|url| !url.is_null()) {
        return Err(bad(
            "publicKey.url: the log fetches nothing; send the key in publicKey.content".into(),
        ));
    }
    let content = key
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("publicKey.content: a string is required".into()))?;
    let pem = if content.trim_start().starts_with("-----BEGIN") {
        content.as_bytes().to_vec()
    } else {
        BASE64
            .decode(content.trim())
            .map_err(|_| bad("publicKey.content: PEM, or base64 of PEM".into()))?
    };
    let material =
        KeyMaterial::from_pem(&pem).map_err(|error| bad(format!("publicKey.content: {error}")))?;
    Ok(SearchKey::for_key(&material))
}

fn truncated(text: &str) -> String {
    text.chars().take(100).collect()
}

fn retrieve(
    view: &StateView,
    log: &LogName,
    keys: &[Criterion],
    operator: Operator,
) -> Result<Vec<Value>, ApiError> {
    let mut result: Option<BTreeSet<u64>> = None;
    for (name, key) in keys {
        let (found, more) = view
            .search(log, key, None, RETRIEVE_RESULTS_MAX)
            .map_err(storage_error)?;
        if more {
            return Err(ApiError::bad_request(
                "too_many_results",
                format!(
                    "{name} matches more than {RETRIEVE_RESULTS_MAX} entries; page through them \
                     with GET {PAGED}?log={log}&... (see the README)"
                ),
            ));
        }
        let found: BTreeSet<u64> = found.into_iter().collect();
        result = Some(match (result, operator) {
            (None, _) => found,
            (Some(so_far), Operator::Or) => so_far.union(&found).copied().collect(),
            (Some(so_far), Operator::And) => so_far.intersection(&found).copied().collect(),
        });
    }
    result
        .unwrap_or_default()
        .into_iter()
        .map(|index| uuid(view, log, index).map(Value::String))
        .collect()
}

/// The UUID (hex leaf hash) of leaf `index`, which the index says exists.
fn uuid(view: &StateView, log: &LogName, index: u64) -> Result<String, ApiError> {
    let leaf = view
        .leaf(log, index)
        .map_err(storage_error)?
        .ok_or_else(|| storage_error(format!("indexed leaf {index} of log {log} is not stored")))?;
    Ok(hex::encode(tlog::leaf_hash(&leaf).as_bytes()))
}

/// A request for one page of `cairn/index`.
#[derive(Debug)]
struct PageQuery {
    log: LogName,
    key: SearchKey,
    after: Option<u64>,
    limit: usize,
}

/// `log=<name>` (default the artifact log), exactly one of `identity=`, `hash=` and
/// `publicKeyHash=` (hex SHA-256 of the canonical PEM), `after=<leaf index>`, `limit=<1..1000>`.
fn paged_request(query: &str) -> Result<PageQuery, ApiError> {
    let bad = |message: String| ApiError::bad_request("invalid_query", message);
    let mut log = LogName(ARTIFACT_LOG.to_owned());
    let mut key = None;
    let mut after = None;
    let mut limit = PAGE_DEFAULT;
    let mut set_key = |name: &str, found: SearchKey| {
        if key.replace(found).is_some() {
            return Err(bad(format!(
                "{name}: give exactly one of identity, hash, publicKeyHash"
            )));
        }
        Ok(())
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "log" => log = LogName(value.into_owned()),
            "identity" => {
                if value.trim().is_empty() {
                    return Err(bad("identity: give an e-mail address or URI".into()));
                }
                set_key("identity", SearchKey::for_identity(&value))?;
            }
            "hash" => {
                let found = SearchKey::for_digest(&value).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_hash",
                        format!("hash {:?}: want sha256:<64 hex digits>", truncated(&value)),
                    )
                })?;
                set_key("hash", found)?;
            }
            "publicKeyHash" => {
                if value.len() != 64 || !value.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                    return Err(bad(format!(
                        "publicKeyHash {:?}: want the 64 hex digits of SHA-256 of the key's PEM",
                        truncated(&value)
                    )));
                }
                set_key("publicKeyHash", SearchKey::for_key_hash(&value))?;
            }
            "after" => {
                after =
                    Some(tlog::checkpoint::parse_decimal(&value).map_err(|_| {
                        bad(format!("after {:?}: a leaf index", truncated(&value)))
                    })?);
            }
            "limit" => {
                limit = tlog::checkpoint::parse_decimal(&value)
                    .ok()
                    .and_then(|limit| usize::try_from(limit).ok())
                    .filter(|limit| (1..=PAGE_MAX).contains(limit))
                    .ok_or_else(|| {
                        bad(format!("limit {:?}: 1 to {PAGE_MAX}", truncated(&value)))
                    })?;
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter {:?} (log, identity, hash, publicKeyHash, after, limit)",
                    truncated(other)
                )));
            }
        }
    }
    let key = key.ok_or_else(|| bad("give one of identity, hash, publicKeyHash".into()))?;
    Ok(PageQuery {
        log,
        key,
        after,
        limit,
    })
}

/// `{"log", "treeSize", "entries": [{"logIndex", "uuid"}], "next"}`: `next` is the `after` of
/// the following page, or null on the last one. The entries are those within `treeSize`.
fn page(view: &StateView, query: &PageQuery) -> Result<Response<Body>, ApiError> {
    let (found, more) = view
        .search(&query.log, &query.key, query.after, query.limit)
        .map_err(storage_error)?;
    let tree_size = view
        .head(&query.log)
        .map_err(storage_error)?
        .map_or(0, |head| head.tree_size);
    let entries = found
        .iter()
        .map(|&index| Ok(json!({"logIndex": index, "uuid": uuid(view, &query.log, index)?})))
        .collect::<Result<Vec<Value>, ApiError>>()?;
    let next = if more { found.last().copied() } else { None };
    Ok(super::json(
        StatusCode::OK,
        &json!({
            "log": query.log.0,
            "treeSize": tree_size,
            "entries": entries,
            "next": next,
        }),
    ))
}
