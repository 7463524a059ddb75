//! The node's HTTP servers: the only module of the node that serves HTTP.
//!
//! Two listeners. The public one serves the log API (C2SP tlog-tiles reads, Rekor v2 writes,
//! proofs, the Rekor v1 API in `rekor_v1`, search in `search_api`), the keyless CA, Sigstore trust documents
//! (`trust`), the operational endpoints (`/healthz`, `/readyz`, `/metrics`) and the admin API
//! (bearer token); it answers 404 under `/internal/`. The cluster listener speaks TLS 1.3, accepts
//! only clients with a certificate from the cluster CA (mutual TLS, see `tls`), and serves the
//! Raft endpoints and nothing else, so nobody outside the cluster can vote or append.
//! Handlers never fail at the HTTP level: every error becomes a response with a status and a
//! JSON body `{"code", "message"}` naming the field or limit at fault, and every request body is
//! read through a size limit before it is parsed.

mod admin;
mod ca_api;
pub mod dev_issuer;
mod log_api;
mod raft;
mod rekor_v1;
mod search_api;
mod trust;

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
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::node::Node;

/// A response body: always fully in memory (the largest is a tile or an entry bundle).
pub type Body = Full<Bytes>;

/// Longest a cluster connection may take to finish its TLS handshake; past it the connection is
/// dropped, so idle or slow strangers cannot pile up on the cluster port.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `node`'s public API on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, node: Arc<Node>, shutdown: impl Future<Output = ()>) {
    accept_loop(listener, shutdown, |stream, peer| {
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let node = Arc::clone(&node);
                async move { Ok::<_, Infallible>(route(node, peer, request).await) }
            });
            if let Err(error) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    })
    .await;
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
    accept_loop(listener, shutdown, |stream, peer| {
        let node = Arc::clone(&node);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // The handshake runs in the connection's task, so a slow one never holds up accept.
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
    })
    .await;
}

/// Accepts connections until `shutdown` resolves, handing each to `connected`.
async fn accept_loop(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut connected: impl FnMut(TcpStream, SocketAddr),
) {
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
        let _ = stream.set_nodelay(true);
        connected(stream, peer);
    }
}

/// Dispatches one cluster request: the Raft endpoints and catch-up's batch times, nothing else.
async fn route_cluster(
    node: Arc<Node>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = if method == Method::POST && path.starts_with(crate::network::RAFT_PATH) {
        raft::handle(&node, &path, request).await
    } else if method == Method::POST && path == crate::network::BATCH_TIMES_PATH {
        raft::batch_times(&node, request).await
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
        (_, p) if p.starts_with(rekor_v1::PREFIX) => rekor_v1::handle(&node, request).await,
        (_, p) if [search_api::RETRIEVE, search_api::PAGED].contains(&p.trim_end_matches('/')) => {
            search_api::handle(&node, request).await
        }
        _ => log_api::handle(&node, request).await,
    };
    tracing::debug!(%peer, %method, %path, status = response.status().as_u16(), "request");
    response
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

/// Reads a request body of at most `limit` bytes; a longer body is a 413 that names the limit.
pub async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    if let Some(length) = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large(limit));
    }
    match Limited::new(request.into_body(), limit).collect().await {
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
