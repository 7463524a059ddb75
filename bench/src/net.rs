//! The benchmark's HTTP: one pooled keep-alive HTTP/1.1 client (the node's own,
//! `node::network::http_client`) that every client task and every setup request shares. A
//! client has one request in flight at a time, to node i mod n, so under load the pool holds
//! about one connection per client.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header;
use node::network::HttpClient;

static CLIENT: LazyLock<HttpClient> = LazyLock::new(node::network::http_client);

/// An answer: its status, its `Retry-After` seconds if any, and its body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Bytes,
}

/// A GET of `url`, or a JSON POST when `body` is given, with an optional bearer token. A
/// transport failure or timeout is named by its kind (`connect`, `transport`, `timeout`).
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
    let exchange = async {
        let response = CLIENT.request(request).await.map_err(|error| {
            if error.is_connect() {
                "connect"
            } else {
                "transport"
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = (response.headers().get(header::RETRY_AFTER))
            .and_then(|value| value.to_str().ok()?.parse().ok());
        let body = response.into_body().collect().await;
        let body = body.map_err(|_| "transport")?.to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err("timeout"))
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
