//! The benchmark's HTTP: one keep-alive HTTP/1.1 connection per client (raw hyper, not a pool,
//! so a client is one connection with one request in flight, to node i mod n), and one-shot
//! requests for setup.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// One node's `host:port`, for a raw connection.
fn authority(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// node URLs are supported"))?;
    Ok(rest.split('/').next().unwrap_or(rest).to_string())
}

async fn connect(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    // Small request/response exchanges: Nagle's algorithm would add delayed-ACK stalls.
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it; either way
        // the client notices on its next request and reconnects.
        let _ = connection.await;
    });
    Ok(sender)
}

/// An answer: its status, its `Retry-After` seconds if any, and its body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Bytes,
}

/// One keep-alive connection to one node, opened on first use and after any failure.
#[derive(Debug)]
pub(crate) struct Connection {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// A GET whose answer must be 200: its body.
    pub(crate) async fn get_ok(&mut self, path: &str) -> anyhow::Result<Bytes> {
        match self.send(path, None, None, Duration::from_secs(30)).await {
            Ok(answer) if answer.status == 200 => Ok(answer.body),
            Ok(answer) => anyhow::bail!("GET {path}: http {}", answer.status),
            Err(kind) => anyhow::bail!("GET {path}: {kind}"),
        }
    }

    pub(crate) fn new(url: &str) -> anyhow::Result<Connection> {
        Ok(Connection {
            authority: authority(url)?,
            sender: None,
        })
    }

    /// A GET, or a JSON POST when `body` is given, with an optional bearer token. A transport
    /// failure or timeout is named by its kind and resets the connection (it may be half-used).
    pub(crate) async fn send(
        &mut self,
        path: &str,
        body: Option<Bytes>,
        bearer: Option<&str>,
        timeout: Duration,
    ) -> Result<Answer, &'static str> {
        let exchange = async {
            if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
                self.sender = Some(connect(&self.authority).await.map_err(|_| "connect")?);
            }
            let sender = self.sender.as_mut().ok_or("connect")?;
            sender.ready().await.map_err(|_| "transport")?;
            let mut builder = match &body {
                Some(_) => hyper::Request::post(path)
                    .header(hyper::header::CONTENT_TYPE, "application/json"),
                None => hyper::Request::get(path),
            };
            if let Some(token) = bearer {
                builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = builder
                .header(hyper::header::HOST, &self.authority)
                .body(Full::new(body.clone().unwrap_or_default()))
                .map_err(|_| "request")?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| "transport")?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok());
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| "transport")?
                .to_bytes();
            Ok::<_, &'static str>(Answer {
                status,
                retry_after,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(kind)) => {
                self.sender = None;
                Err(kind)
            }
            Err(_) => {
                self.sender = None;
                Err("timeout")
            }
        }
    }
}

/// One request for setup, with node's own client (`node::network::call`): a GET, or a JSON
/// POST of `body`; the body of a 2xx answer, an error otherwise.
pub(crate) async fn request(
    url: &str,
    body: Option<String>,
    bearer: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Bytes> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let (client, bearer) = (
        node::network::http_client(),
        bearer.map(|t| format!("Bearer {t}")),
    );
    let (status, answer) = (node::network::call(
        &client,
        method,
        url,
        bearer.as_deref(),
        body.unwrap_or_default(),
        timeout,
    )
    .await)
        .map_err(|error| anyhow::anyhow!("{method} {error}"))?;
    let text = String::from_utf8_lossy(&answer);
    anyhow::ensure!(
        (200..300).contains(&status),
        "{method} {url}: http {status}: {text}"
    );
    Ok(answer)
}

/// A plain GET, for `/metrics`, `/logs` and checkpoints.
pub(crate) async fn get(url: &str) -> anyhow::Result<Bytes> {
    request(url, None, None, Duration::from_secs(30)).await
}
