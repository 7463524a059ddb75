//! An HTTP client for what witnesses and monitors read: a log's checkpoint, consistency proofs
//! (Cairn's `proof/consistency` endpoint, or computed from tlog-tiles hash tiles when the log
//! serves only tiles), entry bundles, and other witnesses' cosigned checkpoints.
//!
//! Nothing fetched is trusted: callers verify checkpoints against the log's key and proofs
//! against verified roots. `http://`, and `https://` trusting the web PKI roots and the
//! certificates of the file `SSL_CERT_FILE` names, if set ([`tls_roots`], [`ssl_cert_file`],
//! which `cairn` uses for all its requests; `cairn-node`'s clients follow the same rule).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tlog::tile::{Tile, TileHashStore, TileReader};
use tlog::tree::StoreError as HashStoreError;
use tlog::{Hash, InclusionProof, TreeSize};

/// The most bytes read from any response.
pub const RESPONSE_BYTES_MAX: usize = 2 << 20;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is not a valid `http://` or `https://` URL.
    #[error("bad URL {0:?}")]
    Url(String),
    /// Connecting, sending or reading failed, or took longer than [`REQUEST_TIMEOUT`].
    #[error("{url}: {detail}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The server answered with an unexpected status.
    #[error("{url}: status {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The response does not parse.
    #[error("{url}: malformed response: {detail}")]
    Malformed {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// Computing a proof from tiles failed (a tile is missing or malformed).
    #[error("proof from tiles: {0}")]
    Tiles(String),
}

/// The web PKI roots (Mozilla's) and `extra` (a private CA's certificates; one that is not a
/// usable root is left out).
pub fn tls_roots(extra: &[CertificateDer<'static>]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.add_parsable_certificates(extra.iter().cloned());
    roots
}

/// The certificates (PEM) of the file the `SSL_CERT_FILE` environment variable names: none if it
/// is not set, an error naming the file if it cannot be read or holds none.
pub fn ssl_cert_file() -> Result<Vec<CertificateDer<'static>>, String> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE") else {
        return Ok(Vec::new());
    };
    let path = std::path::PathBuf::from(path);
    let failed = |message: String| format!("SSL_CERT_FILE {}: {message}", path.display());
    let pem = std::fs::read(&path).map_err(|error| failed(error.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| failed(error.to_string()))?;
    if certificates.is_empty() {
        return Err(failed("no certificate".into()));
    }
    Ok(certificates)
}

/// A TLS client configuration trusting `roots` (rustls on aws-lc-rs, TLS 1.2 and 1.3).
pub fn tls_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // Holds: aws-lc-rs has cipher suites for every default protocol version.
        .expect("aws-lc-rs supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An HTTP/1.1 client with keep-alive, for `http://` and `https://` URLs.
#[derive(Clone, Debug)]
pub struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

impl Http {
    /// A new client trusting the web PKI roots and `SSL_CERT_FILE`'s certificates (an
    /// unreadable `SSL_CERT_FILE` is logged and left out).
    pub fn new() -> Http {
        let extra = ssl_cert_file().unwrap_or_else(|error| {
            tracing::warn!(%error, "SSL_CERT_FILE is not used");
            Vec::new()
        });
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        // The TLS connector hands https URLs on, which the TCP connector refuses by default.
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(tls_roots(&extra)))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends a request and returns the status and (bounded) body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), FetchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(FetchError::Url(url.to_owned()));
        }
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| FetchError::Url(url.to_owned()))?;
        let transport = |detail: String| FetchError::Transport {
            url: url.to_owned(),
            detail,
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| transport("timed out".to_owned()))?
    }

    /// GET, expecting 200.
    pub async fn get_ok(&self, url: &str) -> Result<Bytes, FetchError> {
        let (status, body) = self.send(Method::GET, url, None).await?;
        if status != 200 {
            return Err(status_error(url, status, &body));
        }
        Ok(body)
    }
}

fn status_error(url: &str, status: u16, body: &[u8]) -> FetchError {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    FetchError::Status {
        url: url.to_owned(),
        status,
        body: text.trim().to_owned(),
    }
}

/// Tiles fetched so far, shared by the proofs computed from them. [`TileHashStore`] reads
/// synchronously, so a proof is computed in rounds: a round that needs a tile not yet here
/// records it and fails, the tile is fetched, and the next round goes further.
#[derive(Debug, Default)]
pub struct TileCache {
    /// The tiles, by coordinates (a partial tile's width is part of its key).
    tiles: Mutex<BTreeMap<Tile, Vec<u8>>>,
    /// The tile the last round lacked.
    missing: Mutex<Option<Tile>>,
}

impl TileCache {
    fn tiles(&self) -> std::sync::MutexGuard<'_, BTreeMap<Tile, Vec<u8>>> {
        // Nothing panics while holding these locks; a poisoned map is still consistent.
        self.tiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn missing(&self) -> std::sync::MutexGuard<'_, Option<Tile>> {
        self.missing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TileReader for &TileCache {
    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, HashStoreError> {
        if let Some(data) = self.tiles().get(&tile) {
            return Ok(data.clone());
        }
        *self.missing() = Some(tile);
        Err(HashStoreError::Read("tile not fetched yet".into()))
    }
}

/// The most fetch rounds one proof may take (each fetches one tile; a proof touches at most a
/// few tiles per tile level).
const PROOF_ROUNDS_MAX: usize = 64;

/// A log's read API under its tlog-tiles prefix.
#[derive(Clone, Debug)]
pub struct LogClient {
    http: Http,
    prefix: String,
}

impl LogClient {
    /// The log whose tlog-tiles prefix is `prefix` (no trailing slash needed).
    pub fn new(http: Http, prefix: &str) -> LogClient {
        LogClient {
            http,
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The log's current signed checkpoint, unverified.
    pub async fn checkpoint(&self) -> Result<Bytes, FetchError> {
        self.http
            .get_ok(&format!("{}/checkpoint", self.prefix))
            .await
    }

    /// One tile, unverified (its length is checked).
    pub async fn tile(&self, tile: Tile) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}/{}", self.prefix, tile.path());
        let data = self.http.get_ok(&url).await?.to_vec();
        if tile.kind == tlog::tile::TileKind::Entries {
            return Ok(data);
        }
        tile.check_len(&data).map_err(|e| FetchError::Malformed {
            url,
            detail: e.to_string(),
        })?;
        Ok(data)
    }

    /// The consistency proof from `old` to `new` (0 < old < new), unverified: from Cairn's
    /// `proof/consistency` endpoint if the log has one, else computed from its tiles.
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
        tiles: &TileCache,
    ) -> Result<Vec<Hash>, FetchError> {
        let url = format!("{}/proof/consistency?old={old}&new={new}", self.prefix);
        if let Ok((200, body)) = self.http.send(Method::GET, &url, None).await {
            return parse_proof_json(&url, &body);
        }
        self.consistency_proof_from_tiles(old, new, tiles).await
    }

    /// The consistency proof from `old` to `new`, computed from the hash tiles of the tree of
    /// size `new`.
    pub async fn consistency_proof_from_tiles(
        &self,
        old: u64,
        new: u64,
        tiles: &TileCache,
    ) -> Result<Vec<Hash>, FetchError> {
        for _ in 0..PROOF_ROUNDS_MAX {
            let store = TileHashStore::new(tiles, TreeSize(new));
            match tlog::proof::consistency_proof(&store, TreeSize(old), TreeSize(new)) {
                Ok(proof) => return Ok(proof.hashes),
                Err(error) => self.fetch_missing(tiles, &error.to_string()).await?,
            }
        }
        Err(FetchError::Tiles("too many rounds".to_owned()))
    }

    /// The inclusion proof of leaf `index` in the tree of `size`, computed from tiles.
    pub async fn inclusion_proof_from_tiles(
        &self,
        index: u64,
        size: u64,
        tiles: &TileCache,
    ) -> Result<InclusionProof, FetchError> {
        for _ in 0..PROOF_ROUNDS_MAX {
            let store = TileHashStore::new(tiles, TreeSize(size));
            match tlog::proof::inclusion_proof(&store, tlog::LeafIndex(index), TreeSize(size)) {
                Ok(proof) => return Ok(proof),
                Err(error) => self.fetch_missing(tiles, &error.to_string()).await?,
            }
        }
        Err(FetchError::Tiles("too many rounds".to_owned()))
    }

    /// The right edge of the tree of `start` leaves (its complete subtrees' hashes), read from
    /// the tiles of the tree of `size` (`start <= size`). Unverified: callers append the leaves
    /// up to `size` and compare the root with a verified checkpoint's, which checks the edge too.
    pub async fn edge_from_tiles(
        &self,
        start: u64,
        size: u64,
        tiles: &TileCache,
    ) -> Result<tlog::Tree, FetchError> {
        let nodes = tlog::Tree::edge_nodes(TreeSize(start));
        for _ in 0..PROOF_ROUNDS_MAX {
            let store = TileHashStore::new(tiles, TreeSize(size));
            match tlog::HashStore::node_hashes(&store, &nodes) {
                Ok(hashes) => {
                    return tlog::Tree::from_edge(TreeSize(start), hashes)
                        .map_err(|e| FetchError::Tiles(e.to_string()));
                }
                Err(error) => self.fetch_missing(tiles, &error.to_string()).await?,
            }
        }
        Err(FetchError::Tiles("too many rounds".to_owned()))
    }

    async fn fetch_missing(&self, tiles: &TileCache, error: &str) -> Result<(), FetchError> {
        let missing = tiles.missing().take();
        let Some(tile) = missing else {
            return Err(FetchError::Tiles(error.to_owned()));
        };
        let data = self.tile(tile).await?;
        tiles.tiles().insert(tile, data);
        Ok(())
    }

    /// The entries of the entry bundle `index` of `width` entries, unverified.
    pub async fn entries(&self, index: u64, width: u16) -> Result<Vec<Vec<u8>>, FetchError> {
        let tile = Tile::entries(index, width);
        let bundle = self.tile(tile).await?;
        let entries =
            tlog::tile::decode_bundle(&bundle, width).map_err(|e| FetchError::Malformed {
                url: format!("{}/{}", self.prefix, tile.path()),
                detail: e.to_string(),
            })?;
        Ok(entries.into_iter().map(<[u8]>::to_vec).collect())
    }
}

fn parse_proof_json(url: &str, body: &[u8]) -> Result<Vec<Hash>, FetchError> {
    let malformed = |detail: &str| FetchError::Malformed {
        url: url.to_owned(),
        detail: detail.to_owned(),
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed(&e.to_string()))?;
    let hashes = value
        .get("hashes")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| malformed("no hashes"))?;
    if hashes.len() > tlog::proof::PROOF_HASHES_MAX {
        return Err(malformed("too many hashes"));
    }
    hashes
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| Hash::from_base64(s).ok())
                .ok_or_else(|| malformed("a hash is not base64 of 32 bytes"))
        })
        .collect()
}

/// The path of a witness's read endpoint for an origin: `<hex SHA-256(origin)>/checkpoint`.
pub fn witness_checkpoint_path(origin: &str) -> String {
    format!("{}/checkpoint", Hash::digest(origin.as_bytes()).to_hex())
}
