//! The public listener's connections and its limits per client address.
//!
//! Plain HTTP/1.1 by default; with `[http.tls]`, TLS (`tls::public`: TLS 1.2 and 1.3, the
//! certificate re-read when its files change) and then HTTP/2 or HTTP/1.1 as ALPN chose. The
//! bounds hold on both: the connection cap, the TLS handshake timeout, the header read timeout
//! (for HTTP/2, how long a connection may stay without a request before it is sent GOAWAY),
//! the body deadline, and on HTTP/2 a cap on concurrent streams and header size.
//!
//! Every request is first checked against the limits per client address (`rate_limit`):
//! appends and certificate requests take a token from their client's bucket before their body
//! is read, and one that finds none gets a 429 with `Retry-After`. The client is the peer's
//! address, or, from a trusted proxy only, the one its `X-Forwarded-For` names. Writes a
//! follower forwards reach the leader on the cluster listener, which applies no such limit: the
//! client was charged where it connected.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
// Connection timers pair with tokio's interval ticks: one clock for both.
use tokio::time::Instant;

use super::{
    ApiError, Body, BodyDeadline, REFUSED, TLS_HANDSHAKE_TIMEOUT, accept_loop, ca_api, route,
};
use crate::config::ConnectionLimits;
use crate::metrics::ClassLabel;
use crate::node::Node;
use crate::rate_limit::{Class, ClientLimits, Limiter};
use crate::tls::TlsError;
use crate::tls::public::{PublicTls, RELOAD_CHECK_INTERVAL};

/// Most concurrent HTTP/2 streams per connection (each is a request in flight).
const H2_STREAMS_MAX: u32 = 128;
/// Largest body of a refused request read before the refusal is sent.
const DRAIN_BYTES_MAX: usize = 64 * 1024;
/// Largest HTTP/2 header list a client may send.
const H2_HEADER_LIST_BYTES_MAX: u32 = 64 * 1024;

/// How the public listener serves: connection bounds, limits per client address, and TLS.
#[derive(Clone, Debug)]
pub struct PublicOptions {
    limits: ConnectionLimits,
    client_limits: ClientLimits,
    tls: Option<(Arc<PublicTls>, Arc<rustls::ServerConfig>)>,
}

impl PublicOptions {
    /// `limits` and `client_limits`, over TLS with `tls` if given.
    pub fn new(
        limits: ConnectionLimits,
        client_limits: ClientLimits,
        tls: Option<Arc<PublicTls>>,
    ) -> Result<PublicOptions, TlsError> {
        let tls = tls
            .map(|tls| tls.server_config().map(|config| (tls, config)))
            .transpose()?;
        Ok(PublicOptions {
            limits,
            client_limits,
            tls,
        })
    }

    /// Plain HTTP within `limits`, no limits per client address.
    pub fn plain(limits: ConnectionLimits) -> PublicOptions {
        PublicOptions {
            limits,
            client_limits: ClientLimits::unlimited(),
            tls: None,
        }
    }
}

/// The paths whose requests are limited per client address, and their class: appends (Rekor
/// v2 and v1, to the open artifact log or to one named log) and certificate requests. They are
/// also the writes a follower forwards to the leader.
pub(super) fn limited_class(method: &Method, path: &str) -> Option<Class> {
    if method != Method::POST {
        return None;
    }
    let path = path.trim_end_matches('/');
    if path == ca_api::SIGNING_CERT {
        return Some(Class::Certificates);
    }
    let per_log = path
        .strip_prefix("/logs/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, rest)| rest);
    let append = matches!(path, "/api/v2/log/entries" | "/api/v1/log/entries")
        || matches!(per_log, Some("entries" | "api/v1/log/entries"));
    append.then_some(Class::Writes)
}

/// The limits per client address of one listener, timed by the node's clock (the seam).
#[derive(Debug)]
struct Gate {
    limiter: Limiter,
}

impl Gate {
    /// A 429 for `request` if its client has no token left for it.
    fn refuse(
        &self,
        node: &Node,
        peer: SocketAddr,
        request: &Request<Incoming>,
    ) -> Option<Response<Body>> {
        let class = limited_class(request.method(), request.uri().path())?;
        let forwarded_for = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        let client = self
            .limiter
            .limits()
            .trusted_proxies
            .client(peer.ip(), forwarded_for);
        let wait = self
            .limiter
            .check(class, client, node.clock().now_unix_ms())
            .err()?;
        node.metrics()
            .rate_limited_requests
            .get_or_create(&ClassLabel {
                class: class.name().to_owned(),
            })
            .inc();
        tracing::debug!(%client, %peer, class = class.name(), wait, "request refused: rate limited");
        let error = ApiError {
            retry_after_seconds: Some(u32::try_from(wait).unwrap_or(u32::MAX)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many {} from {client}; retry in {wait} s", class.name()),
            )
        };
        Some(error.into_response())
    }
}

/// Serves `node`'s public API on `listener` as `options` say until `shutdown` resolves; with
/// TLS, also re-reads the certificate files every [`RELOAD_CHECK_INTERVAL`].
pub async fn serve_public(
    listener: TcpListener,
    node: Arc<Node>,
    options: PublicOptions,
    shutdown: impl Future<Output = ()>,
) {
    let limits = options.limits;
    let gate = Arc::new(Gate {
        limiter: Limiter::new(options.client_limits),
    });
    let (acceptor, reloader) = match options.tls {
        Some((tls, config)) => (
            Some(tokio_rustls::TlsAcceptor::from(config)),
            Some(tokio::spawn(reload_certificate(tls, Arc::clone(&node)))),
        ),
        None => (None, None),
    };
    let refusal = if acceptor.is_some() { b"" } else { REFUSED };
    accept_loop(
        listener,
        shutdown,
        limits.connections_max,
        refusal,
        |stream, peer, slot| {
            let (node, gate, acceptor) = (Arc::clone(&node), Arc::clone(&gate), acceptor.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let activity = Arc::new(Activity::new());
                let watched = Arc::clone(&activity);
                let service = service_fn(move |mut request: Request<Incoming>| {
                    let (node, gate) = (Arc::clone(&node), Arc::clone(&gate));
                    let busy = watched.begin();
                    BodyDeadline::stamp(&mut request, &limits);
                    async move {
                        let _busy = busy;
                        if let Some(refused) = gate.refuse(&node, peer, &request) {
                            drain_small_body(request).await;
                            return Ok::<_, Infallible>(refused);
                        }
                        Ok(route(node, peer, request).await)
                    }
                });
                let result = match acceptor {
                    None => limits
                        .http1()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                        .map_err(|error| error.to_string()),
                    Some(acceptor) => {
                        serve_tls(acceptor, stream, peer, &limits, &activity, service).await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            });
        },
    )
    .await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
}

/// Reads a refused request's body first if it is small: answered early, an HTTP/2 client still
/// sending its body gets the stream reset after the answer, which some (curl 7) report as an
/// error instead of the 429. A larger body is not waited for.
async fn drain_small_body(request: Request<Incoming>) {
    let _ = super::read_body(request, DRAIN_BYTES_MAX).await;
}

/// One TLS connection: the handshake within [`TLS_HANDSHAKE_TIMEOUT`], then HTTP/2 if ALPN
/// chose it, HTTP/1.1 otherwise.
async fn serve_tls<S>(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    limits: &ConnectionLimits,
    activity: &Activity,
    service: S,
) -> Result<(), String>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        // Debug: anyone who can reach the port can cause these.
        Ok(Err(error)) => return Err(format!("TLS handshake refused: {error}")),
        Err(_) => return Err("TLS handshake timed out".into()),
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS_MAX)
        .max_header_list_size(H2_HEADER_LIST_BYTES_MAX)
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    if !h2 {
        // Hyper's HTTP/1.1 header read timeout also closes idle keep-alive connections.
        return connection.await.map_err(|error| error.to_string());
    }
    // HTTP/2 has no such timer: send GOAWAY once no request has been in flight for the header
    // read timeout, and drop the connection if it has not closed one timeout after that.
    let mut connection = std::pin::pin!(connection);
    let idle_limit = limits.header_read_timeout;
    let mut ticks = tokio::time::interval(Duration::from_millis(250).min(idle_limit));
    let mut closing_since: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => return result.map_err(|error| error.to_string()),
            _ = ticks.tick() => {}
        }
        match closing_since {
            None if activity.idle_for() >= idle_limit => {
                tracing::debug!(%peer, "idle HTTP/2 connection sent GOAWAY");
                connection.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
            Some(since) if since.elapsed() >= idle_limit => {
                return Err("idle HTTP/2 connection did not close; dropped".into());
            }
            _ => {}
        }
    }
}

/// A connection's requests in flight and when the last one ended.
#[derive(Debug)]
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when a request last began or ended.
    last_ms: AtomicU64,
}

/// A request in flight: counted until dropped.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(Arc::clone(self))
    }

    /// How long the connection has had no request in flight (zero while one is).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Re-reads the public certificate when its files change (off the async workers), keeping the
/// served one on a refused replacement: logged as an error and counted.
async fn reload_certificate(tls: Arc<PublicTls>, node: Arc<Node>) {
    let metrics = node.metrics();
    metrics.public_tls_not_after_seconds.set(tls.not_after());
    let mut ticks = tokio::time::interval(RELOAD_CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let checked = Arc::clone(&tls);
        match tokio::task::spawn_blocking(move || checked.reload_if_changed()).await {
            Ok(Ok(false)) | Err(_) => {}
            Ok(Ok(true)) => {
                metrics.public_tls_not_after_seconds.set(tls.not_after());
                tracing::info!(
                    not_after = tls.not_after(),
                    "public TLS certificate reloaded"
                );
            }
            Ok(Err(error)) => {
                metrics.public_tls_reload_failures.inc();
                tracing::error!(
                    %error,
                    "public TLS certificate files changed but were refused; still serving the \
                     previous certificate"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_certificate_requests_are_limited_nothing_else() {
        for path in [
            "/api/v2/log/entries",
            "/api/v1/log/entries",
            "/api/v1/log/entries/",
            "/logs/artifacts/entries",
            "/logs/artifacts-2/api/v1/log/entries",
        ] {
            assert_eq!(
                limited_class(&Method::POST, path),
                Some(Class::Writes),
                "{path}"
            );
        }
        assert_eq!(
            limited_class(&Method::POST, "/api/v2/signingCert"),
            Some(Class::Certificates)
        );
        for (method, path) in [
            (Method::GET, "/api/v2/log/entries"),
            (Method::POST, "/api/v1/log/entries/retrieve"),
            (Method::POST, "/api/v1/index/retrieve"),
            (Method::POST, "/api/v1/timestamp"),
            (Method::POST, "/admin/init"),
            (Method::GET, "/logs/artifacts/tile/entries/000"),
        ] {
            assert_eq!(limited_class(&method, path), None, "{method} {path}");
        }
    }
}
