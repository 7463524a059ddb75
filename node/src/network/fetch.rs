//! The CA's outbound HTTP: GETs of allow-listed issuers' discovery documents and key sets.
//! http or https (web PKI roots), no redirects followed, a timeout, and a body limit.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one discovery or key-set fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// [`ca::oidc::Fetch`] over hyper.
#[derive(Clone, Debug)]
pub struct HttpFetch {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpFetch {
    /// A client trusting the web PKI roots for https issuers.
    pub fn new() -> HttpFetch {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(Duration::from_secs(5)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        HttpFetch {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl Default for HttpFetch {
    fn default() -> HttpFetch {
        HttpFetch::new()
    }
}

impl ca::oidc::Fetch for HttpFetch {
    fn get<'a>(
        &'a self,
        url: &'a str,
        limit: usize,
    ) -> ca::oidc::BoxFuture<'a, Result<Vec<u8>, ca::oidc::FetchError>> {
        Box::pin(async move {
            let error = |message: String| ca::oidc::FetchError(message);
            let request = hyper::Request::get(url)
                .header(hyper::header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| error(e.to_string()))?;
            let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
                .await
                .map_err(|_| error("timed out".into()))?
                .map_err(|e| error(e.to_string()))?;
            // Redirects are not followed: a 3xx is an error like any other non-200.
            if response.status() != hyper::StatusCode::OK {
                return Err(error(format!("status {}", response.status())));
            }
            let body = tokio::time::timeout(
                FETCH_TIMEOUT,
                Limited::new(response.into_body(), limit).collect(),
            )
            .await
            .map_err(|_| error("timed out".into()))?
            .map_err(|e| error(format!("body: {e}")))?;
            Ok(body.to_bytes().to_vec())
        })
    }
}
