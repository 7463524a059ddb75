//! The production [`BundleSource`]: entry bundles fetched from a member's cluster listener.
//!
//! Catch-up reads the C2SP tlog-tiles entry bundles clients read, at the same path
//! (`GET {cluster_url}/logs/{log}/tile/entries/...`), but from the member's cluster listener
//! over mutual TLS with the cluster client: so it works whatever certificate, proxy or limits
//! the public listener has, and any member that has applied far enough can answer. Nothing
//! fetched is trusted: the installer verifies the leaves against the snapshot's signed root.
//!
//! The leaves' integrated times are not covered by that root, so they are asked of the same
//! listener (`network::BATCH_TIMES_PATH`): only a cluster member can answer them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tlog::tile::Tile;

use super::{BATCH_TIMES_PATH, ClusterClient};
use crate::catch_up::{BatchTimes, BundleFuture, BundleSource, FetchError, TimesFuture};
use crate::types::{LogName, NodeAddress};

/// The largest entry bundle: 256 entries, each a 2-byte length and at most 65535 bytes.
pub const BUNDLE_BYTES_MAX: usize = 256 * (2 + 65_535);

/// The largest batch-times answer: 256 rows of two numbers and an option, postcard-encoded.
const BATCH_TIMES_BYTES_MAX: usize = 256 * 24 + 16;

/// Fetches entry bundles and batch times with the cluster client.
#[derive(Clone, Debug)]
pub struct HttpBundleSource {
    cluster: ClusterClient,
    timeout: Duration,
}

impl HttpBundleSource {
    /// A source over `cluster` (the members' cluster listeners); each fetch (connect, headers
    /// and body) is bounded by 30 s, long enough for a 16 MiB bundle on a slow link, short
    /// enough to move on from a stalled member.
    pub fn new(cluster: ClusterClient) -> HttpBundleSource {
        HttpBundleSource {
            cluster,
            timeout: Duration::from_secs(30),
        }
    }
}

impl BundleSource for HttpBundleSource {
    fn entry_bundle<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        index: u64,
        width: u16,
    ) -> BundleFuture<'a> {
        Box::pin(async move {
            let base = member.cluster_url.trim_end_matches('/');
            let url = format!("{base}/logs/{log}/{}", Tile::entries(index, width).path());
            let failed = |reason: String| FetchError::Failed {
                member: member.cluster_url.clone(),
                reason,
            };
            let request = hyper::Request::get(&url)
                .body(Full::new(Bytes::new()))
                .map_err(|error| failed(format!("building GET {url}: {error}")))?;
            let exchange = async {
                let response = self
                    .cluster
                    .request(request)
                    .await
                    .map_err(|error| failed(format!("GET {url}: {error}")))?;
                let status = response.status();
                if status == hyper::StatusCode::NOT_FOUND {
                    return Err(FetchError::NotFound {
                        member: member.cluster_url.clone(),
                        log: log.clone(),
                        index,
                        width,
                    });
                }
                if !status.is_success() {
                    return Err(failed(format!("GET {url}: HTTP {}", status.as_u16())));
                }
                let body = Limited::new(response.into_body(), BUNDLE_BYTES_MAX)
                    .collect()
                    .await
                    .map_err(|error| failed(format!("reading {url}: {error}")))?;
                Ok(body.to_bytes().to_vec())
            };
            tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| failed(format!("GET {url}: no answer within {:?}", self.timeout)))?
        })
    }

    fn batch_times<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        first: u64,
        end: u64,
    ) -> TimesFuture<'a> {
        Box::pin(async move {
            let url = format!(
                "{}{BATCH_TIMES_PATH}",
                member.cluster_url.trim_end_matches('/')
            );
            let failed = |reason: String| FetchError::Failed {
                member: member.cluster_url.clone(),
                reason,
            };
            let body = postcard::to_stdvec(&(log.0.as_str(), first, end))
                .map_err(|error| failed(format!("encoding the request: {error}")))?;
            let request = hyper::Request::post(&url)
                .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(Bytes::from(body)))
                .map_err(|error| failed(format!("building POST {url}: {error}")))?;
            let exchange = async {
                let response = self
                    .cluster
                    .request(request)
                    .await
                    .map_err(|error| failed(format!("POST {url}: {error}")))?;
                let status = response.status();
                if !status.is_success() {
                    return Err(failed(format!("POST {url}: HTTP {}", status.as_u16())));
                }
                let body = Limited::new(response.into_body(), BATCH_TIMES_BYTES_MAX)
                    .collect()
                    .await
                    .map_err(|error| failed(format!("reading {url}: {error}")))?;
                let rows: Option<BatchTimes> = postcard::from_bytes(&body.to_bytes())
                    .map_err(|error| failed(format!("decoding {url}: {error}")))?;
                rows.ok_or_else(|| FetchError::NotFound {
                    member: member.cluster_url.clone(),
                    log: log.clone(),
                    index: first,
                    width: u16::try_from(end - first).unwrap_or(u16::MAX),
                })
            };
            tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| failed(format!("POST {url}: no answer within {:?}", self.timeout)))?
        })
    }
}
