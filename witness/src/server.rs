//! The witness's HTTP server (hyper, HTTP/1.1 with keep-alive):
//! - `POST /add-checkpoint`: C2SP tlog-witness, answered by [`Witness::add_checkpoint`];
//! - `GET /<hex SHA-256(origin)>/checkpoint`: the latest checkpoint the witness cosigned for
//!   that origin, with the log's signature and the cosignature (the spec's monitoring read
//!   API; 404 before the first cosignature);
//! - `GET /split-views`: every split view recorded, as JSON (empty array when none);
//! - `GET /verifier-key`: the witness's C2SP verifier key.
//!
//! Store work runs on tokio's blocking pool: redb writes fsync.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::cosigner::{Reply, Witness};
use crate::request::REQUEST_BYTES_MAX;

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
        let _ = stream.set_nodelay(true);
        let witness = witness.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let witness = witness.clone();
                async move { Ok::<_, Infallible>(route(&witness, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(witness: &Arc<Witness>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/add-checkpoint") => add_checkpoint(witness, request).await,
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
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let body = match Limited::new(request.into_body(), REQUEST_BYTES_MAX)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => return text(400, format!("reading the request: {error}\n")),
    };
    let witness = witness.clone();
    let reply =
        tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, unix_now())).await;
    match reply {
        Ok(reply) => to_response(reply),
        Err(error) => text(500, format!("witness task failed: {error}\n")),
    }
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
