//! The Raft transport between nodes: openraft RPCs as HTTP POSTs to the peer's cluster
//! listener (`NodeAddress::cluster_url`), postcard-encoded, over mutual TLS: the client presents
//! this node's certificate and accepts a peer only if its certificate chains to the cluster CA
//! and names the peer's host (see `tls`).
//!
//! This is the production half of the network seam; the simulator supplies its own
//! `RaftNetworkFactory` that delivers the same messages in memory with seeded faults. Every
//! transport failure is reported to openraft as `Unreachable`, which makes it back off before
//! retrying, and every call is bounded by the deadline openraft passes (`RPCOption::hard_ttl`),
//! so a peer that never answers cannot wedge a replication stream.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::tls::ClusterTls;
use crate::types::{NodeAddress, NodeId, TypeConfig};

pub mod bundles;
pub mod fetch;
pub mod forward;

/// The header every Raft message carries with the format its entries need
/// (`types::Command::format`; absent: 1, a node from before formats were numbered).
pub const RAFT_FORMAT_HEADER: &str = "cairn-raft-format";

/// Path prefix of the Raft endpoints, served on every node's cluster listener only.
pub const RAFT_PATH: &str = "/internal/raft";
/// Path of the batch-times endpoint snapshot catch-up asks members (cluster listener only):
/// POST a postcard `(log name, first, end)`, get back a postcard
/// `Option<catch_up::BatchTimes>` (`None`: the member has fewer than `end` leaves).
pub const BATCH_TIMES_PATH: &str = "/internal/catch-up/batch-times";
/// The largest Raft RPC body a node accepts or reads back (a batch entry is at most a few MiB;
/// AppendEntries carries several).
pub const RAFT_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A client for public listeners (witnesses, and nodes' public APIs in the dev supervisor, the
/// tests and the bench): `http://`, and `https://` trusting the web PKI roots and the
/// certificates of the file `SSL_CERT_FILE` names, if set.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client of every call between nodes (Raft, forwarded writes, catch-up, a rotation's
/// check): https only, with the node's certificate, trusting the cluster CA only.
pub type ClusterClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

fn tcp_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector
}

/// A new HTTP/1.1 client with keep-alive (see [`HttpClient`]); an unreadable `SSL_CERT_FILE`
/// is logged and left out.
pub fn http_client() -> HttpClient {
    let extra = match ssl_cert_file() {
        Ok(certificates) => certificates,
        Err(error) => {
            tracing::warn!(%error, "SSL_CERT_FILE is not used");
            Vec::new()
        }
    };
    http_client_trusting(&extra)
}

/// A new client like [`http_client`] that also trusts `extra` (a private CA's certificates).
pub fn http_client_trusting(extra: &[CertificateDer<'static>]) -> HttpClient {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // A certificate that is not a usable root would fail every handshake it alone could
    // verify; the rest still work.
    let (_, unusable) = roots.add_parsable_certificates(extra.iter().cloned());
    if unusable > 0 {
        tracing::warn!(
            unusable,
            "certificates not usable as trust roots were left out"
        );
    }
    let config = ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        // Holds: aws-lc-rs has cipher suites for every default protocol version.
        .expect("the crypto provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = tcp_connector();
    // The TLS connector hands https URLs to the TCP connector, which by default only takes http.
    tcp.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The certificates of the PEM file `SSL_CERT_FILE` names (none if it is not set).
pub fn ssl_cert_file() -> Result<Vec<CertificateDer<'static>>, String> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE") else {
        return Ok(Vec::new());
    };
    let path = std::path::PathBuf::from(path);
    let pem = std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(certificates)
}

/// The most bytes [`exchange`] reads of an answer.
const CALL_ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// An answer to [`exchange`]: its status, its headers and its body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The answer's headers (the bench reads `Retry-After`).
    pub headers: hyper::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Why [`exchange`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer's head within the timeout.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The request failed before an answer came (`is_connect`: no connection was made).
    #[error(transparent)]
    Request(hyper_util::client::legacy::Error),
    /// The answer's body failed, or was longer than 16 MiB.
    #[error("{0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// Sends `request` with `client`: the answer's head within `timeout`, then its body (at most
/// 16 MiB; the caller bounds how long that takes, if it must).
pub async fn exchange(
    client: &HttpClient,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Answer, CallError> {
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| CallError::Timeout(timeout))?
        .map_err(CallError::Request)?;
    let (head, body) = response.into_parts();
    let body = Limited::new(body, CALL_ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(CallError::Body)?
        .to_bytes();
    Ok(Answer {
        status: head.status.as_u16(),
        headers: head.headers,
        body,
    })
}

/// One JSON request with `client` (an admin or health call to a node): the status and the
/// body, or why no answer came within `timeout`.
pub async fn call(
    client: &HttpClient,
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: String,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        request = request.header(hyper::header::AUTHORIZATION, authorization);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| format!("{url}: {error}"))?;
    let answer = exchange(client, request, timeout)
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    Ok((answer.status, answer.body))
}

/// A new HTTP/1.1-over-TLS client with keep-alive for Raft RPCs, authenticating with `tls`.
/// It refuses `http://` URLs, so Raft traffic can never go out in the clear.
pub fn cluster_client(tls: &ClusterTls) -> ClusterClient {
    let mut tcp = tcp_connector();
    // The TLS connector hands https URLs to the TCP connector, which by default only takes http.
    tcp.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(ClientConfig::clone(&tls.client_config()))
        .https_only()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Creates a connection per peer; all of them share one client and its connection pool.
#[derive(Clone, Debug)]
pub struct HttpNetwork {
    client: ClusterClient,
}

impl HttpNetwork {
    /// A network over `client`.
    pub fn new(client: ClusterClient) -> HttpNetwork {
        HttpNetwork { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpPeer;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddress) -> HttpPeer {
        HttpPeer {
            target,
            base: node.cluster_url.trim_end_matches('/').to_string(),
            client: self.client.clone(),
        }
    }
}

/// One peer's Raft endpoint.
#[derive(Debug)]
pub struct HttpPeer {
    target: NodeId,
    base: String,
    client: ClusterClient,
}

/// A transport failure, before openraft's error types.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("building request to {0}: {1}")]
    Request(String, String),
    #[error("sending to {0}: {1}")]
    Send(String, String),
    #[error("{0} answered HTTP {1}")]
    Status(String, u16),
    #[error("reading answer from {0}: {1}")]
    Body(String, String),
    #[error("decoding answer from {0}: {1}")]
    Decode(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

impl HttpPeer {
    /// POSTs `request`, of Raft format `format`, to `path` and decodes the peer's `Result`
    /// answer.
    async fn call<Request, Response, Error>(
        &self,
        path: &str,
        format: u32,
        request: &Request,
        deadline: Duration,
    ) -> Result<Result<Response, Error>, TransportError>
    where
        Request: Serialize,
        Response: DeserializeOwned,
        Error: DeserializeOwned,
    {
        let url = format!("{}{RAFT_PATH}/{path}", self.base);
        let body = postcard::to_stdvec(request)
            .map_err(|error| TransportError::Request(url.clone(), error.to_string()))?;
        let http_request = hyper::Request::post(&url)
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .header(RAFT_FORMAT_HEADER, format)
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| TransportError::Request(url.clone(), error.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(http_request)
                .await
                .map_err(|error| TransportError::Send(url.clone(), error.to_string()))?;
            if !response.status().is_success() {
                return Err(TransportError::Status(
                    url.clone(),
                    response.status().as_u16(),
                ));
            }
            let bytes = Limited::new(response.into_body(), RAFT_BODY_BYTES_MAX)
                .collect()
                .await
                .map_err(|error| TransportError::Body(url.clone(), error.to_string()))?
                .to_bytes();
            postcard::from_bytes(&bytes)
                .map_err(|error| TransportError::Decode(url.clone(), error.to_string()))
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| TransportError::Timeout(url.clone(), deadline))?
    }
}

/// Maps a call's result to openraft's error types: the peer's own error is a `RemoteError`, a
/// garbled exchange a `NetworkError`, anything else (refused, timed out, cut) `Unreachable`.
// openraft dictates the error type; boxing it would only move the allocation.
#[allow(clippy::result_large_err)]
fn into_rpc<Response, E: std::error::Error>(
    target: NodeId,
    answer: Result<Result<Response, RaftError<NodeId, E>>, TransportError>,
) -> Result<Response, RPCError<NodeId, NodeAddress, RaftError<NodeId, E>>> {
    match answer {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(RPCError::RemoteError(RemoteError::new(target, error))),
        Err(error @ (TransportError::Decode(..) | TransportError::Request(..))) => {
            Err(RPCError::Network(NetworkError::new(&error)))
        }
        Err(error) => Err(RPCError::Unreachable(Unreachable::new(&error))),
    }
}

impl RaftNetwork<TypeConfig> for HttpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeAddress, RaftError<NodeId>>>
    {
        // The format the entries need: older members read messages without newer commands.
        let format = rpc
            .entries
            .iter()
            .map(|entry| match &entry.payload {
                openraft::EntryPayload::Normal(command) => command.format(),
                _ => 1,
            })
            .max()
            .unwrap_or(1);
        into_rpc(
            self.target,
            self.call("append", format, &rpc, option.hard_ttl()).await,
        )
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeAddress, RaftError<NodeId, InstallSnapshotError>>,
    > {
        into_rpc(
            self.target,
            self.call("snapshot", 1, &rpc, option.hard_ttl()).await,
        )
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddress, RaftError<NodeId>>> {
        into_rpc(
            self.target,
            self.call("vote", 1, &rpc, option.hard_ttl()).await,
        )
    }
}
