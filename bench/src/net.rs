//! The benchmark's HTTP: one pooled keep-alive HTTP/1.1 client (the node's own,
//! `node::network::http_client`) that every client task and every setup request shares. A
//! client has one request in flight at a time, to node i mod n, so under load the pool holds
//! about one connection per client.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header;
pub(crate) use node::network::Answer;
use node::network::{CallError, HttpClient};

static CLIENT: LazyLock<HttpClient> = LazyLock::new(node::network::http_client);

/// A GET of `url`, or a JSON POST when `body` is given, with an optional bearer token, through
/// the node library's `exchange`. A transport failure or timeout (of the whole exchange, body
/// included) is named by its kind (`connect`, `transport`, `timeout`).
pub(crate) async fn send(
    url: &str,
    body: Option<Bytes>,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<Answer, &'static str> {
    let mut builder = match &body {
        Some(_) => hyper::Request::post(url).header(header::CONTENT_TYPE, "application/json"),
        None => hyper::Request::get(url),
    };
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = (builder.body(Full::new(body.unwrap_or_default()))).map_err(|_| "request")?;
    let exchange = node::network::exchange(&CLIENT, request, timeout);
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(CallError::Request(error))) if error.is_connect() => Err("connect"),
        Ok(Err(CallError::Timeout(_))) | Err(_) => Err("timeout"),
        Ok(Err(_)) => Err("transport"),
    }
}

/// An answer's `Retry-After` seconds, if any.
pub(crate) fn retry_after(answer: &Answer) -> Option<u64> {
    (answer.headers.get(header::RETRY_AFTER)).and_then(|value| value.to_str().ok()?.parse().ok())
}

/// One request for setup: a GET, or a JSON POST of `body`; the body of a 2xx answer, an error
/// otherwise.
pub(crate) async fn request(
    url: &str,
    body: Option<String>,
    bearer: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Bytes> {
    let method = if body.is_some() { "POST" } else { "GET" };
    match send(url, body.map(Bytes::from), bearer, timeout).await {
        Ok(answer) if (200..300).contains(&answer.status) => Ok(answer.body),
        Ok(Answer { status, body, .. }) => {
            let text = String::from_utf8_lossy(&body);
            anyhow::bail!("{method} {url}: http {status}: {text}")
        }
        Err(kind) => anyhow::bail!("{method} {url}: {kind}"),
    }
}

/// A plain GET, for `/metrics`, `/logs`, checkpoints and entry bundles.
pub(crate) async fn get(url: &str) -> anyhow::Result<Bytes> {
    request(url, None, None, Duration::from_secs(30)).await
}
