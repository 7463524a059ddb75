//! The witness's HTTP server (hyper, HTTP/1.1 with keep-alive):
//! - `POST /add-checkpoint`: C2SP tlog-witness, answered by [`Witness::add_checkpoint`];
//! - `GET /<hex SHA-256(origin)>/checkpoint`: the latest checkpoint the witness cosigned for
//!   that origin, with the log's signature and the cosignature (the spec's monitoring read
//!   API; 404 before the first cosignature);
//! - `GET /split-views`: every split view recorded, as JSON (empty array when none);
//! - `GET /verifier-key`: the witness's C2SP verifier key.
//!
//! Store work runs on tokio's blocking pool: redb writes fsync. Whoever reaches the port can
//! send requests, so connections and checks are bounded: a request head must arrive within
//! [`HEADER_READ_TIMEOUT`] (also the idle keep-alive timeout), a body within
//! [`BODY_READ_TIMEOUT`]; at most [`CONNECTIONS_MAX`] connections are open (past it, 503 and
//! close); and `add-checkpoint`'s signature and proof checks run at most one per core at once,
//! with four per core waiting (past it, 503).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::cosigner::{Reply, Witness};
use crate::request::REQUEST_BYTES_MAX;

/// Longest a client may take to send a request head; hyper runs this timer also while a
/// keep-alive connection waits for its next request, so it is the idle timeout too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a request body may take to arrive once its head is read.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections open at once.
pub const CONNECTIONS_MAX: usize = 1024;

/// Raises this process's soft limit on open files to its hard limit and returns the soft limit
/// now in force. Every connection is a file descriptor, and the usual soft limit (1024) is not
/// above [`CONNECTIONS_MAX`], so without this a connection flood would leave no descriptor for
/// the store or the polls before the cap refused anything (`cairn-node` raises its own the same
/// way).
pub fn raise_open_files_limit() -> Result<u64, std::io::Error> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft >= hard {
        return Ok(soft);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    Ok(hard)
}

/// What a connection past [`CONNECTIONS_MAX`] gets before it is closed, written without waiting.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 22\r\n\r\ntoo many connections\r\n";

/// Bounds `add-checkpoint`'s checks: `admitted` permits for those running or waiting, `running`
/// for those running.
#[derive(Debug)]
struct Checks {
    admitted: Arc<tokio::sync::Semaphore>,
    running: Arc<tokio::sync::Semaphore>,
}

impl Checks {
    fn per_core() -> Checks {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Checks {
            admitted: Arc::new(tokio::sync::Semaphore::new(5 * cores)),
            running: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }
}

/// Seconds since the Unix epoch, the cosignature timestamp.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves `witness` on `listener` until `shutdown` resolves; then every open connection is
/// dropped too (a stopped witness must look stopped, also to keep-alive clients).
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let checks = Arc::new(Checks::per_core());
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (witness, checks) = (witness.clone(), checks.clone());
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request| {
                let (witness, checks) = (witness.clone(), checks.clone());
                let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
                async move { Ok::<_, Infallible>(route(&witness, &checks, deadline, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    witness: &Arc<Witness>,
    checks: &Checks,
    body_deadline: tokio::time::Instant,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/add-checkpoint") => {
            add_checkpoint(witness, checks, body_deadline, request).await
        }
        (&Method::GET, "/split-views") => split_views(witness).await,
        (&Method::GET, "/verifier-key") => text(200, format!("{}\n", witness.verifier_key())),
        (&Method::GET, path) if path.ends_with("/checkpoint") => {
            let hex = path.trim_start_matches('/').trim_end_matches("/checkpoint");
            latest(witness, hex).await
        }
        _ => text(404, format!("no endpoint {path}\n")),
    }
}

async fn add_checkpoint(
    witness: &Arc<Witness>,
    checks: &Checks,
    body_deadline: tokio::time::Instant,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let collect = Limited::new(request.into_body(), REQUEST_BYTES_MAX).collect();
    let body = match tokio::time::timeout_at(body_deadline, collect).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) => return text(400, format!("reading the request: {error}\n")),
        Err(_) => {
            let mut response = text(408, "the request body did not arrive in time\n".to_owned());
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let Ok(admitted) = Arc::clone(&checks.admitted).try_acquire_owned() else {
        return busy();
    };
    let Ok(running) = Arc::clone(&checks.running).acquire_owned().await else {
        return busy();
    };
    let witness = witness.clone();
    // The permits move into the task: a client that hangs up does not free its slot early.
    let reply = tokio::task::spawn_blocking(move || {
        let _permits = (admitted, running);
        witness.add_checkpoint(&body, unix_now())
    })
    .await;
    match reply {
        Ok(reply) => to_response(reply),
        Err(error) => text(500, format!("witness task failed: {error}\n")),
    }
}

fn busy() -> Response<Full<Bytes>> {
    let mut response = text(
        503,
        "busy checking other requests; retry shortly\n".to_owned(),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn latest(witness: &Arc<Witness>, hex: &str) -> Response<Full<Bytes>> {
    let Some(log) = witness
        .logs()
        .iter()
        .find(|log| tlog::Hash::digest(log.origin.as_bytes()).to_hex() == hex)
    else {
        return text(404, "unknown origin\n".to_owned());
    };
    let (witness, origin) = (witness.clone(), log.origin.clone());
    let stored = tokio::task::spawn_blocking(move || witness.store().latest(&origin)).await;
    match stored {
        Ok(Ok(Some(stored))) => {
            let mut response = text(200, stored.note);
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Ok(Ok(None)) => text(404, "nothing cosigned yet for this origin\n".to_owned()),
        Ok(Err(error)) => text(500, format!("{error}\n")),
        Err(error) => text(500, format!("witness task failed: {error}\n")),
    }
}

async fn split_views(witness: &Arc<Witness>) -> Response<Full<Bytes>> {
    let witness = witness.clone();
    match tokio::task::spawn_blocking(move || witness.store().split_views()).await {
        Ok(Ok(views)) => {
            let json = serde_json::to_string_pretty(&views).unwrap_or_else(|_| "[]".to_owned());
            let mut response = text(200, json);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Ok(Err(error)) => text(500, format!("{error}\n")),
        Err(error) => text(500, format!("witness task failed: {error}\n")),
    }
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = text(reply.status, reply.body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    response
}

fn text(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
