//! The few HTTP requests `cairn` makes (CA, log, dev issuer, trust documents): HTTP/1.1 over
//! hyper on a current-thread runtime, one request at a time; `https://` with the web PKI roots
//! and the certificates of the file `SSL_CERT_FILE` names, if set (a log whose certificate
//! comes from a private CA), with rustls on aws-lc-rs as the node; `http://` for local
//! clusters. Every answer is bounded in size and time, and a non-2xx answer becomes an error
//! carrying the server's `message`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The largest answer read (a log entry with a large DSSE body is well under this).
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// The `content-type` header, when it is text.
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub(crate) fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the server's answer is not JSON")
    }
}

/// The TLS configuration of `https://` requests: the web PKI roots, and the certificates in
/// `SSL_CERT_FILE` if it is set (an error if that file cannot be read or holds none).
fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let extra = witness::fetch::ssl_cert_file().map_err(anyhow::Error::msg)?;
    Ok(witness::fetch::tls_config(witness::fetch::tls_roots(
        &extra,
    )))
}

/// An HTTP client for `https://` (web PKI and `SSL_CERT_FILE`) and `http://` URLs.
pub(crate) struct Http {
    runtime: tokio::runtime::Runtime,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    pub(crate) fn new() -> anyhow::Result<Http> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the HTTP runtime")?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Http { runtime, client })
    }

    /// Sends one request; `Err` for transport failures and for non-2xx answers other than the
    /// `accept` statuses.
    pub(crate) fn send(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        accept: &[u16],
    ) -> anyhow::Result<Answer> {
        let method_name = method.to_string();
        let mut request = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .with_context(|| format!("{method_name} {url}"))?;
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT, async {
                let response = self.client.request(request).await?;
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(hyper::header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let body = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                    .collect()
                    .await
                    .map_err(|error| anyhow::anyhow!("reading the answer: {error}"))?
                    .to_bytes();
                anyhow::Ok(Answer {
                    status,
                    content_type,
                    body,
                })
            })
            .await
        });
        let answer = answer
            .map_err(|_| {
                anyhow::anyhow!("{method_name} {url}: no answer within {REQUEST_TIMEOUT:?}")
            })?
            .with_context(|| format!("{method_name} {url}"))?;
        if (200..300).contains(&answer.status) || accept.contains(&answer.status) {
            return Ok(answer);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|value| value["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(500)
                    .collect()
            });
        bail!("{method_name} {url}: HTTP {}: {message}", answer.status)
    }

    /// `GET url` as JSON.
    pub(crate) fn get_json(&self, url: &str) -> anyhow::Result<serde_json::Value> {
        self.send(hyper::Method::GET, url, &[], Vec::new(), &[])?
            .json()
    }
}
