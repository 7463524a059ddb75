//! The node's HTTP servers: the only module of the node that serves HTTP.
//!
//! Two listeners. The public one (`public`: plain HTTP/1.1, or TLS with HTTP/2 or HTTP/1.1,
//! and limits per client address on appends and certificate requests) serves the log API
//! (C2SP tlog-tiles reads, Rekor v2 writes, proofs, the Rekor v1 API in `rekor_v1`, search in
//! `search_api`), the keyless CA, the RFC 3161 timestamp authority (`tsa_api`), Sigstore trust
//! documents (`trust`), the log explorer at `/` (`explorer`), the operational endpoints
//! (`/healthz`, `/readyz`, `/metrics`) and the admin API (bearer token); it answers 404 under
//! `/internal/`. The cluster listener speaks TLS 1.3, accepts only clients with a certificate
//! from the cluster CA (mutual TLS, see `tls`), and serves the Raft endpoints, the writes a
//! member relays to the leader (batches of verified leaves, `append`), and what catch-up
//! fetches, so nobody outside the cluster can vote, pass as a member, or have an unverified
//! leaf sequenced.
//! Handlers never fail at the HTTP level: every error becomes a response with a status and a
//! JSON body `{"code", "message"}` naming the field or limit at fault, and every request body is
//! read through a size limit before it is parsed.

mod admin;
mod append;
mod ca_api;
pub mod dev_issuer;
mod explorer;
mod log_api;
mod public;
mod raft;
mod rekor_v1;
mod search_api;
mod trust;
mod tsa_api;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::config::ConnectionLimits;
use crate::node::Node;

pub use public::{PublicOptions, serve_public};

/// A response body: always fully in memory (the largest is a tile or an entry bundle).
pub type Body = Full<Bytes>;

/// Longest a cluster connection may take to finish its TLS handshake; past it the connection is
/// dropped, so idle or slow strangers cannot pile up on the cluster port.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections the cluster listener keeps open (a cluster has a handful of members, each
/// with a few pooled connections); past it a new connection is closed at once.
const CLUSTER_CONNECTIONS_MAX: usize = 1024;

impl ConnectionLimits {
    /// The HTTP/1.1 connection settings for these limits.
    fn http1(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(true);
        builder
    }
}

/// When a request's body must have arrived: set on every public request (as an extension) and
/// enforced by [`read_body`].
#[derive(Clone, Copy, Debug)]
struct BodyDeadline(tokio::time::Instant);

impl BodyDeadline {
    /// Stamps `request` with the deadline for its body: `limits.body_read_timeout` from now.
    fn stamp<B>(request: &mut Request<B>, limits: &ConnectionLimits) {
        let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
        request.extensions_mut().insert(BodyDeadline(deadline));
    }
}

/// Marks a request that reached the cluster listener: a write a member forwarded to this node
/// as to the leader. It is never forwarded again, and the limits per client address were
/// applied where the client connected.
#[derive(Clone, Copy, Debug)]
struct Forwarded;

impl Forwarded {
    /// Whether `request` was forwarded here by a member.
    fn is<B>(request: &Request<B>) -> bool {
        request.extensions().get::<Forwarded>().is_some()
    }
}

/// Serves `node`'s Raft endpoints on `listener`, over TLS with `tls` (which must require a
/// client certificate: `tls::ClusterTls::server_config`), until `shutdown` resolves.
pub async fn serve_cluster(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    accept_loop(
        listener,
        shutdown,
        CLUSTER_CONNECTIONS_MAX,
        // A TLS client would read a plain-text answer as garbage: just close.
        b"",
        |stream, peer, slot| {
            let node = Arc::clone(&node);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _slot = slot;
                // The handshake runs in the connection's task, so a slow one never holds up accept.
                let stream = match tokio::time::timeout(
                    TLS_HANDSHAKE_TIMEOUT,
                    acceptor.accept(stream),
                )
                .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        // Info, not warn: anyone who can reach the port can cause this line.
                        tracing::info!(%error, %peer, "cluster TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "cluster TLS handshake timed out");
                        return;
                    }
                };
                let service = service_fn(move |request| {
                    let node = Arc::clone(&node);
                    async move { Ok::<_, Infallible>(route_cluster(node, peer, request).await) }
                });
                if let Err(error) = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, %peer, "cluster connection ended with an error");
                }
            });
        },
    )
    .await;
}

/// What a connection refused past the cap gets, written without waiting (a new socket's send
/// buffer is empty) so a flood costs the accept loop nothing.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 77\r\n\r\n\
{\"code\":\"too_many_connections\",\"message\":\"too many open connections; retry\"}\n";

/// Accepts connections until `shutdown` resolves, handing each to `connected` with its slot
/// (to hold until the connection ends); at most `connections_max` slots exist, and a connection
/// accepted when none is free gets `refusal` ([`REFUSED`] on plain HTTP) and is closed.
async fn accept_loop(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    connections_max: usize,
    refusal: &'static [u8],
    mut connected: impl FnMut(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit),
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        connections_max.min(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if !refusal.is_empty() {
                let _ = stream.try_write(refusal);
            }
            tracing::debug!(%peer, connections_max, "connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        connected(stream, peer, slot);
    }
}

/// Dispatches one cluster request: the Raft endpoints, catch-up's batch times and entry
/// bundles, the list of logs, batches of verified leaves for the leader, and writes forwarded
/// to the leader as clients sent them; nothing else.
async fn route_cluster(
    node: Arc<Node>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = if method == Method::POST && path.starts_with(crate::network::RAFT_PATH) {
        raft::handle(&node, &path, request).await
    } else if method == Method::POST && path == crate::network::BATCH_TIMES_PATH {
        raft::batch_times(&node, request).await
    } else if method == Method::POST && path == crate::network::forward::APPENDS_PATH {
        append::forwarded_appends(&node, request).await
    } else if public::limited_class(&method, &path).is_some() {
        // The same handlers as on the public listener, marked so they never forward it again.
        request.extensions_mut().insert(Forwarded);
        route(node, peer, request).await
    } else if method == Method::GET
        && (path == "/logs" || path.starts_with("/logs/") && path.contains("/tile/entries/"))
    {
        // The logs a member serves (a rotation checks its members have the successor) and
        // catch-up's entry bundles.
        log_api::handle(&node, request).await
    } else {
        ApiError::not_found(format!("no cluster endpoint {method} {path}")).into_response()
    };
    tracing::debug!(%peer, %method, %path, status = response.status().as_u16(), "cluster request");
    response
}

/// Dispatches one request by method and path.
async fn route(node: Arc<Node>, peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => admin::ready(&node).await,
        (&Method::GET, "/metrics") => admin::metrics(&node),
        // Cluster-internal endpoints live on the cluster listener only; say so explicitly
        // rather than rely on no public route matching them.
        (_, p) if p.starts_with("/internal/") => {
            ApiError::not_found(format!("no endpoint {p}")).into_response()
        }
        (_, p) if p.starts_with("/admin/") => admin::handle(&node, request).await,
        (_, p) if ca_api::ROUTES.contains(&p) => ca_api::handle(&node, request).await,
        (_, p) if trust::ROUTES.contains(&p) => trust::handle(&node, request).await,
        (_, p) if tsa_api::ROUTES.contains(&p.trim_end_matches('/')) => {
            tsa_api::handle(&node, request).await
        }
        (_, p) if p.starts_with(rekor_v1::PREFIX) => rekor_v1::handle(&node, request, None).await,
        (_, p) if let Some((log, rest)) = per_log_v1(p) => {
            rekor_v1::handle(&node, request, Some((log, rest))).await
        }
        (_, p) if [search_api::RETRIEVE, search_api::PAGED].contains(&p.trim_end_matches('/')) => {
            search_api::handle(&node, request).await
        }
        (_, p) if explorer::serves(p) => {
            explorer::handle(&node, &method, p, request.uri().query().unwrap_or("")).await
        }
        _ => log_api::handle(&node, request).await,
    };
    tracing::debug!(%peer, %method, %path, status = response.status().as_u16(), "request");
    response
}

/// `/logs/<name>/api/v1/log...`: the Rekor v1 API of one log (a frozen one too), as the log
/// name and the path from `/api/v1/log`.
fn per_log_v1(path: &str) -> Option<(crate::types::LogName, String)> {
    let (name, rest) = path.strip_prefix("/logs/")?.split_once('/')?;
    let rest = format!("/{}", rest.trim_end_matches('/'));
    rest.starts_with(rekor_v1::PREFIX)
        .then(|| (crate::types::LogName(name.to_string()), rest))
}

/// An API error: a status, a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code scripts can match on (`invalid_json`, `not_found`, ...).
    pub code: &'static str,
    /// What went wrong, naming the field or limit.
    pub message: String,
    /// Seconds to wait before retrying, for 429 and 503 answers.
    pub retry_after_seconds: Option<u32>,
}

impl ApiError {
    /// An error with no retry advice.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 with a retry hint.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after_seconds: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// The JSON response.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "code": self.code, "message": self.message });
        let mut response = json(self.status, &body);
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a late body may still be on its way: close rather than drain it.
            response
                .headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<crate::env::Busy> for ApiError {
    fn from(busy: crate::env::Busy) -> ApiError {
        ApiError::unavailable("busy", busy.to_string())
    }
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    response(status, "application/json", Bytes::from(bytes))
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(body.into()),
    )
}

/// A response with a body and content type.
pub fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A postcard answer between cluster members: 200 with the encoded bytes, or 500 if encoding
/// failed (`what` says what was being encoded).
pub(crate) fn binary_answer<E: std::fmt::Display>(
    encoded: Result<Vec<u8>, E>,
    what: &str,
) -> Response<Body> {
    match encoded {
        Ok(bytes) => response(
            StatusCode::OK,
            "application/octet-stream",
            Bytes::from(bytes),
        ),
        Err(error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding_failed",
            format!("encoding {what}: {error}"),
        )
        .into_response(),
    }
}

/// Reads a JSON request body with the one strict reader (`api::json`: no duplicate member,
/// bounded size, depth and width, the JSON path in errors): 413 past the size, 400 otherwise,
/// with the reader's code.
pub fn strict_json(
    body: &[u8],
    limits: &crate::api::json::Limits,
) -> Result<serde_json::Value, ApiError> {
    crate::api::json::parse(body, limits).map_err(|error| {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, error.code(), error.to_string())
    })
}

/// Reads a JSON request body strictly ([`strict_json`]) into `T`; a value of the wrong shape
/// for `T` is a 400 `invalid_json` naming what serde found.
pub fn strict_json_as<T: serde::de::DeserializeOwned>(
    body: &[u8],
    limits: &crate::api::json::Limits,
) -> Result<T, ApiError> {
    serde_json::from_value(strict_json(body, limits)?)
        .map_err(|error| ApiError::bad_request("invalid_json", error.to_string()))
}

/// Reads a request body of at most `limit` bytes; a longer body is a 413 that names the limit,
/// and one that has not arrived by the request's [`BodyDeadline`] a 408.
pub async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let deadline = request.extensions().get::<BodyDeadline>().copied();
    if let Some(length) = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large(limit));
    }
    let collect = Limited::new(request.into_body(), limit).collect();
    let collected =
        match deadline {
            Some(BodyDeadline(deadline)) => tokio::time::timeout_at(deadline, collect)
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        "the request body did not arrive in time",
                    )
                })?,
            None => collect.await,
        };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(error) => Err(ApiError::bad_request(
            "bad_body",
            format!("reading request body: {error}"),
        )),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body is larger than {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::REFUSED;

    /// The canned refusal is a well-formed response: its Content-Length is its body's length.
    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "too_many_connections");
    }
}
