//! `cairn-bench reads` and `cairn-bench mix`: reads of the public log API (checkpoints, hash
//! tiles, entry bundles, inclusion and consistency proofs) on a cluster holding a pre-filled
//! log, alone or mixed with appends.
//!
//! Every counted read is verified, so a fast but wrong server cannot score:
//! - before the run, the benchmark appends `--prefill` entries (each verified as `appends`
//!   does), fetches and verifies a signed checkpoint of size N, downloads every entry bundle of
//!   that tree and checks that their leaves hash to the checkpoint's root. That gives it a
//!   *reference*: every leaf hash, every full tile's bytes, every full bundle's bytes, and the
//!   root of every smaller tree, all derived from leaves proven to be under a signed root;
//! - a checkpoint read must carry a valid log signature (each distinct text is checked once),
//!   be at least N, and at N have the reference root;
//! - a tile or bundle read must be byte for byte the reference's (its SHA-256 is compared);
//! - an inclusion proof for leaf i in the tree of size N must lead from the reference's leaf
//!   hash to the signed root; a consistency proof from size m to N must lead from the
//!   reference's root at m to the signed root.
//!
//! Only full (immutable) tiles and bundles are read, as a client caching tiles mostly would, so
//! the same reads stay valid while the mix grows the log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use serde::{Deserialize, Serialize};
use tlog::tile::{Tile, TileKind};
use tlog::{ConsistencyProof, Hash, InclusionProof, LeafIndex, MemoryTree, TreeSize};
use tokio::time::Instant;

use crate::cluster::{self, Cluster, ProcessUsage};
use crate::progress::{Counters, Phases};
use crate::stats::{Latencies, LatencySummary, Tally, per_second};
use crate::verify::ResponseVerifier;
use crate::workload::Prepared;

/// The `reads` and `mix` subcommands' arguments (also the settings `cairn-bench report`
/// passes).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ReadsArgs {
    /// Cluster size to start.
    #[arg(long, default_value_t = 3)]
    pub(crate) nodes: u16,
    /// Concurrent clients, one run per value (comma-separated); each is one keep-alive
    /// HTTP/1.1 connection to node i mod n with one request in flight.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    pub(crate) clients: Vec<usize>,
    /// Seconds of measurement per run.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) warmup: f64,
    /// Entries appended (and verified) before the runs; the reads cover the tree they make.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) prefill: usize,
    /// Relative weights of the read kinds: checkpoint, tile (full hash tiles of levels 0 and
    /// up), entries (full entry bundles), inclusion, consistency.
    #[arg(
        long,
        default_value = "checkpoint=1,tile=3,entries=2,inclusion=3,consistency=1"
    )]
    pub(crate) read_mix: String,
    /// Percent of operations that are appends (pre-signed hashedrekord entries, verified as in
    /// `appends`). `reads` defaults to 0, `mix` to 10.
    #[arg(long)]
    pub(crate) appends_percent: Option<f64>,
    /// The cairn-node binary. Default: next to this binary, then PATH.
    #[arg(long)]
    pub(crate) node_bin: Option<std::path::PathBuf>,
    /// Where the started cluster keeps its data. Default: the system temp directory.
    #[arg(long)]
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// Keep the cluster's data directory after the run.
    #[arg(long)]
    pub(crate) keep_data: bool,
    /// Worker threads of the benchmark's own runtime.
    #[arg(long, default_value_t = 2)]
    pub(crate) client_threads: usize,
    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) timeout: f64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<std::path::PathBuf>,
}

/// What a read asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReadKind {
    Checkpoint,
    Tile,
    Entries,
    Inclusion,
    Consistency,
}

impl ReadKind {
    const ALL: [ReadKind; 5] = [
        ReadKind::Checkpoint,
        ReadKind::Tile,
        ReadKind::Entries,
        ReadKind::Inclusion,
        ReadKind::Consistency,
    ];

    fn name(self) -> &'static str {
        match self {
            ReadKind::Checkpoint => "checkpoint",
            ReadKind::Tile => "tile",
            ReadKind::Entries => "entries",
            ReadKind::Inclusion => "inclusion",
            ReadKind::Consistency => "consistency",
        }
    }
}

/// Parses `kind=weight,...`; every kind not named has weight 0; at least one must be positive.
pub(crate) fn parse_read_mix(text: &str) -> anyhow::Result<Vec<(ReadKind, u32)>> {
    let mut weights: BTreeMap<ReadKind, u32> = BTreeMap::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (name, weight) = part
            .split_once('=')
            .with_context(|| format!("--read-mix: {part:?} is not kind=weight"))?;
        let kind = ReadKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name.trim())
            .with_context(|| {
                format!(
                    "--read-mix: unknown read kind {name:?} (checkpoint, tile, entries, inclusion, consistency)"
                )
            })?;
        let weight: u32 = weight
            .trim()
            .parse()
            .ok()
            .filter(|weight| *weight <= 1_000_000)
            .with_context(|| format!("--read-mix: weight {weight:?} is not 0 to 1000000"))?;
        anyhow::ensure!(
            weights.insert(kind, weight).is_none(),
            "--read-mix: {name} given twice"
        );
    }
    let weights: Vec<(ReadKind, u32)> = weights.into_iter().filter(|(_, w)| *w > 0).collect();
    anyhow::ensure!(
        !weights.is_empty(),
        "--read-mix: give at least one kind a positive weight"
    );
    Ok(weights)
}

/// One read: what to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Checkpoint,
    /// The `n`th full hash tile of the reference.
    Tile(usize),
    /// The full entry bundle with this index.
    Entries(u64),
    /// Leaf index, in the reference tree.
    Inclusion(u64),
    /// Old size, to the reference size.
    Consistency(u64),
}

/// Why a read did not verify.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("http {0}")]
    Status(u16),
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::verify::VerifyError),
    #[error("checkpoint of size {got} is smaller than the verified size {want}")]
    Rollback { got: u64, want: u64 },
    #[error("checkpoint at size {0} has another root than the verified one")]
    SplitView(u64),
    #[error("{0} bytes differ from the verified reference")]
    WrongBytes(&'static str),
    #[error("proof answer is for other parameters")]
    WrongParameters,
    #[error("proof: {0}")]
    Proof(#[from] tlog::ProofError),
}

impl ReadError {
    /// A short class name for the error tally.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ReadError::Status(_) => "http error",
            ReadError::Malformed(_) => "verify: malformed",
            ReadError::Checkpoint(_) => "verify: checkpoint",
            ReadError::Rollback { .. } => "verify: rollback",
            ReadError::SplitView(_) => "verify: split view",
            ReadError::WrongBytes(_) => "verify: wrong bytes",
            ReadError::WrongParameters => "verify: wrong parameters",
            ReadError::Proof(_) => "verify: proof",
        }
    }
}

#[derive(Deserialize)]
struct InclusionJson {
    leaf_index: u64,
    tree_size: u64,
    hashes: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyJson {
    old: u64,
    new: u64,
    hashes: Vec<String>,
}

/// The log as the benchmark knows it, every part derived from leaves proven to hash to a
/// signed checkpoint's root.
#[derive(Debug)]
pub(crate) struct Reference {
    size: u64,
    root: Hash,
    tree: MemoryTree,
    leaf_hashes: Vec<Hash>,
    /// Full hash tiles at `size` and the SHA-256 of their bytes.
    tiles: Vec<(Tile, Hash)>,
    /// SHA-256 of each full entry bundle, by bundle index.
    bundles: Vec<Hash>,
}

impl Reference {
    /// Builds the reference from the entry bundles of a tree of `size` leaves (full bundles,
    /// then the partial one if any) and checks that they hash to `root`.
    pub(crate) fn build(size: u64, root: Hash, bundles: &[Bytes]) -> anyhow::Result<Reference> {
        let width = u64::from(tlog::tile::TILE_WIDTH);
        anyhow::ensure!(size > 0, "the log is empty");
        anyhow::ensure!(
            bundles.len() as u64 == size.div_ceil(width),
            "{} bundles for a tree of {size}",
            bundles.len()
        );
        let mut tree = MemoryTree::new();
        let mut leaf_hashes = Vec::new();
        let mut full = Vec::new();
        for (index, bundle) in bundles.iter().enumerate() {
            let count = (size - index as u64 * width).min(width);
            let count = u16::try_from(count).context("bundle width")?;
            let entries = tlog::tile::decode_bundle(bundle, count)
                .with_context(|| format!("entry bundle {index}"))?;
            for entry in entries {
                let hash = tlog::leaf_hash(entry);
                leaf_hashes.push(hash);
                tree.append(hash)?;
            }
            if u64::from(count) == width {
                full.push(Hash::digest(bundle));
            }
        }
        anyhow::ensure!(
            tree.root() == root,
            "the log's entry bundles do not hash to its signed checkpoint's root"
        );
        let mut tiles = Vec::new();
        for tile in tlog::tile::tiles_for_size(TreeSize(size)) {
            if tile.is_full() {
                let data = tlog::tile::tile_data(&tree.store, tile)?;
                tiles.push((tile, Hash::digest(&data)));
            }
        }
        Ok(Reference {
            size,
            root,
            tree,
            leaf_hashes,
            tiles,
            bundles: full,
        })
    }

    /// The tree size reads are made against.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// A random read of `kind` (`random` is any 64-bit number).
    fn pick(&self, kind: ReadKind, random: u64) -> Read {
        let pick = |count: u64| random % count.max(1);
        match kind {
            ReadKind::Checkpoint => Read::Checkpoint,
            ReadKind::Tile if !self.tiles.is_empty() => {
                Read::Tile(usize::try_from(pick(self.tiles.len() as u64)).unwrap_or(0))
            }
            ReadKind::Entries if !self.bundles.is_empty() => {
                Read::Entries(pick(self.bundles.len() as u64))
            }
            // Less than one full tile: read the proofs instead.
            ReadKind::Tile | ReadKind::Entries | ReadKind::Inclusion => {
                Read::Inclusion(pick(self.size))
            }
            ReadKind::Consistency if self.size > 1 => Read::Consistency(1 + pick(self.size - 1)),
            ReadKind::Consistency => Read::Checkpoint,
        }
    }

    /// The path of a read under the artifact log's Rekor v2 prefix.
    fn path(&self, read: Read) -> String {
        match read {
            Read::Checkpoint => "/api/v2/checkpoint".into(),
            Read::Tile(n) => format!("/api/v2/{}", self.tiles[n].0.path()),
            Read::Entries(index) => format!("/api/v2/{}", Tile::entries(index, 256).path()),
            Read::Inclusion(index) => format!(
                "/api/v2/proof/inclusion?index={index}&tree_size={}",
                self.size
            ),
            Read::Consistency(old) => {
                format!("/api/v2/proof/consistency?old={old}&new={}", self.size)
            }
        }
    }

    /// Checks an answer to `read` as a client would.
    pub(crate) fn check(
        &self,
        verifier: &ResponseVerifier,
        read: Read,
        status: u16,
        body: &[u8],
    ) -> Result<(), ReadError> {
        if status != 200 {
            return Err(ReadError::Status(status));
        }
        let malformed = |error: &dyn std::fmt::Display| ReadError::Malformed(error.to_string());
        let hashes = |hashes: &[String]| {
            hashes
                .iter()
                .map(|hash| Hash::from_base64(hash))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| malformed(&error))
        };
        match read {
            Read::Checkpoint => {
                let text = std::str::from_utf8(body).map_err(|error| malformed(&error))?;
                let (size, root) = verifier.checkpoint(text)?;
                if size < self.size {
                    return Err(ReadError::Rollback {
                        got: size,
                        want: self.size,
                    });
                }
                if size == self.size && root != self.root {
                    return Err(ReadError::SplitView(size));
                }
            }
            Read::Tile(n) => {
                if Hash::digest(body) != self.tiles[n].1 {
                    return Err(ReadError::WrongBytes("tile"));
                }
            }
            Read::Entries(index) => {
                let expected = usize::try_from(index)
                    .ok()
                    .and_then(|index| self.bundles.get(index))
                    .ok_or(ReadError::WrongParameters)?;
                if Hash::digest(body) != *expected {
                    return Err(ReadError::WrongBytes("entry bundle"));
                }
            }
            Read::Inclusion(index) => {
                let answer: InclusionJson =
                    serde_json::from_slice(body).map_err(|error| malformed(&error))?;
                if answer.leaf_index != index || answer.tree_size != self.size {
                    return Err(ReadError::WrongParameters);
                }
                let leaf = usize::try_from(index)
                    .ok()
                    .and_then(|index| self.leaf_hashes.get(index))
                    .ok_or(ReadError::WrongParameters)?;
                InclusionProof {
                    leaf_index: LeafIndex(index),
                    tree_size: TreeSize(self.size),
                    hashes: hashes(&answer.hashes)?,
                }
                .verify(leaf, &self.root)?;
            }
            Read::Consistency(old) => {
                let answer: ConsistencyJson =
                    serde_json::from_slice(body).map_err(|error| malformed(&error))?;
                if answer.old != old || answer.new != self.size {
                    return Err(ReadError::WrongParameters);
                }
                let old_root = tlog::tree::root_at(&self.tree.store, TreeSize(old))
                    .map_err(|error| malformed(&error))?;
                ConsistencyProof {
                    old_size: TreeSize(old),
                    new_size: TreeSize(self.size),
                    hashes: hashes(&answer.hashes)?,
                }
                .verify(&old_root, &self.root)?;
            }
        }
        Ok(())
    }
}

/// Whether a tile is a hash tile of level 1 or above (reported separately from level 0).
fn tile_level(tile: &Tile) -> u8 {
    match tile.kind {
        TileKind::Hashes { level } => level,
        TileKind::Entries => 0,
    }
}

/// A small fast generator for picking reads (splitmix64); not for anything secret.
#[derive(Debug)]
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One keep-alive connection to one node.
struct Connection {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(url: &str) -> anyhow::Result<Connection> {
        Ok(Connection {
            authority: crate::load::authority(url)?,
            sender: None,
        })
    }

    /// One request; transport failures reset the connection.
    async fn send(
        &mut self,
        post: Option<Bytes>,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, Bytes), &'static str> {
        let exchange = async {
            if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
                self.sender = Some(
                    crate::load::connect(&self.authority)
                        .await
                        .map_err(|_| "connect")?,
                );
            }
            let sender = self.sender.as_mut().ok_or("connect")?;
            sender.ready().await.map_err(|_| "transport")?;
            let builder = match &post {
                Some(_) => hyper::Request::post(path)
                    .header(hyper::header::CONTENT_TYPE, "application/json"),
                None => hyper::Request::get(path),
            };
            let request = builder
                .header(hyper::header::HOST, &self.authority)
                .body(Full::new(post.clone().unwrap_or_default()))
                .map_err(|_| "request")?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| "transport")?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| "transport")?
                .to_bytes();
            Ok::<_, &'static str>((status, body))
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

/// Appends one pre-signed entry and verifies the answer, retrying 429 and 503 (the log
/// deduplicates a resubmission).
async fn append(
    connection: &mut Connection,
    verifier: &ResponseVerifier,
    request: &Prepared,
    timeout: Duration,
) -> Result<(), String> {
    for attempt in 1..=5 {
        match connection
            .send(Some(request.body.clone()), "/api/v2/log/entries", timeout)
            .await
        {
            Ok((200 | 201, body)) => {
                return verifier
                    .verify(&body, &request.leaf_hash)
                    .map(|_| ())
                    .map_err(|error| error.kind().to_string());
            }
            Ok((status @ (429 | 503), _)) if attempt < 5 => {
                let _ = status;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok((status, _)) => return Err(format!("http {status}")),
            Err(_) if attempt < 5 => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(kind) => return Err(kind.to_string()),
        }
    }
    Err("retries exhausted".into())
}

/// Fills the log with `count` verified appends from 64 concurrent clients.
async fn prefill(cluster: &Cluster, count: usize, timeout: Duration) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    eprintln!("pre-filling the log: signing {count} hashedrekord entries ...");
    let workload = tokio::task::block_in_place(|| crate::workload::generate(count, threads))?;
    let requests = Arc::new(workload.requests);
    let verifier = Arc::new(ResponseVerifier::new(&cluster.verifier_key)?);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..64 {
        let mut connection = Connection::new(&cluster.urls[id % cluster.urls.len()])?;
        let (requests, verifier, next, done) = (
            Arc::clone(&requests),
            Arc::clone(&verifier),
            Arc::clone(&next),
            Arc::clone(&done),
        );
        tasks.push(tokio::spawn(async move {
            while let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                append(&mut connection, &verifier, request, timeout)
                    .await
                    .map_err(|kind| anyhow::anyhow!("pre-fill append failed: {kind}"))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let reporter = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                eprintln!(
                    "  pre-fill: {} of {count} appended",
                    done.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut result = Ok(());
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => result = Err(error),
            Err(error) => result = Err(anyhow::anyhow!("a pre-fill task failed: {error}")),
        }
    }
    reporter.abort();
    result?;
    eprintln!(
        "  pre-filled {count} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fetches a verified checkpoint from every node until all are at the same size (followers
/// apply a moment after the leader), then builds the reference from node 1's bundles.
async fn reference(
    cluster: &Cluster,
    verifier: &ResponseVerifier,
    timeout: Duration,
) -> anyhow::Result<Reference> {
    let started = Instant::now();
    let (size, root) = loop {
        let mut seen = Vec::new();
        for url in &cluster.urls {
            let body = crate::load::get(&format!("{url}/api/v2/checkpoint")).await?;
            let text = std::str::from_utf8(&body).context("checkpoint is not UTF-8")?;
            seen.push(
                verifier
                    .checkpoint(text)
                    .map_err(|error| anyhow::anyhow!("node {url}: checkpoint: {error}"))?,
            );
        }
        if seen.windows(2).all(|pair| pair[0] == pair[1]) {
            break seen[0];
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the nodes' checkpoints did not agree within 30 s: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("building the verified reference: tree size {size}, downloading its entry bundles");
    let mut connection = Connection::new(&cluster.urls[0])?;
    let width = u64::from(tlog::tile::TILE_WIDTH);
    let mut bundles = Vec::new();
    for index in 0..size.div_ceil(width) {
        let count = u16::try_from((size - index * width).min(width))?;
        let path = format!("/api/v2/{}", Tile::entries(index, count).path());
        match connection.send(None, &path, timeout).await {
            Ok((200, body)) => bundles.push(body),
            Ok((status, _)) => bail!("GET {path}: http {status}"),
            Err(kind) => bail!("GET {path}: {kind}"),
        }
    }
    tokio::task::block_in_place(|| Reference::build(size, root, &bundles))
}

/// Latency and count of one kind of operation in the window.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct KindResult {
    pub(crate) verified: u64,
    pub(crate) per_second: f64,
    pub(crate) latency: LatencySummary,
}

/// One run's results.
#[derive(Debug, Serialize)]
pub(crate) struct ReadsRun {
    pub(crate) nodes: usize,
    pub(crate) clients: usize,
    pub(crate) appends_percent: f64,
    pub(crate) tree_size: u64,
    pub(crate) warmup_s: f64,
    pub(crate) measured_s: f64,
    /// Verified reads of every kind per second.
    pub(crate) reads_per_second: f64,
    pub(crate) reads_latency: LatencySummary,
    /// Verified appends per second (mix only).
    pub(crate) appends_per_second: f64,
    pub(crate) appends_latency: LatencySummary,
    pub(crate) by_kind: BTreeMap<String, KindResult>,
    pub(crate) errors: Tally,
    pub(crate) presigned_exhausted: bool,
    pub(crate) node_usage: Vec<ProcessUsage>,
    pub(crate) bench_usage: Option<ProcessUsage>,
    pub(crate) machine_cpu_percent: Option<f64>,
    pub(crate) other_cpu_percent: Option<f64>,
    /// Verified operations completed in each second (warm-up included).
    pub(crate) timeline: Vec<u64>,
}

/// The reads (or mix) report.
#[derive(Debug, Serialize)]
pub(crate) struct ReadsReport {
    pub(crate) environment: crate::Environment,
    pub(crate) prefill: usize,
    pub(crate) read_mix: String,
    pub(crate) runs: Vec<ReadsRun>,
}

#[derive(Debug)]
struct ClientStats {
    reads: BTreeMap<&'static str, (u64, Latencies)>,
    appends: (u64, Latencies),
    errors: Tally,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain counters: a panic elsewhere cannot leave them inconsistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a cluster, pre-fills it, and runs once per client count.
pub(crate) async fn run_reads(args: &ReadsArgs) -> anyhow::Result<ReadsReport> {
    anyhow::ensure!(
        args.duration > 0.0 && args.warmup >= 0.0 && args.timeout > 0.0,
        "--duration and --timeout must be positive, --warmup not negative"
    );
    anyhow::ensure!(
        !args.clients.is_empty() && !args.clients.contains(&0),
        "--clients must be at least 1"
    );
    anyhow::ensure!((1..=7).contains(&args.nodes), "--nodes must be 1 to 7");
    anyhow::ensure!(
        (1..=100_000_000).contains(&args.prefill),
        "--prefill must be 1 to 100000000"
    );
    let appends_percent = args.appends_percent.unwrap_or(0.0);
    anyhow::ensure!(
        (0.0..=100.0).contains(&appends_percent),
        "--appends-percent must be 0 to 100"
    );
    let mix = parse_read_mix(&args.read_mix)?;
    let node_bin = match &args.node_bin {
        Some(path) => path.clone(),
        None => cluster::find_node_binary()?,
    };
    let parent = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let environment = crate::environment();
    eprintln!(
        "machine: {} ({} cores, {:.1} GiB), commit {}",
        environment.cpu_model, environment.cores, environment.memory_gib, environment.commit
    );
    eprintln!("starting a {}-node cluster", args.nodes);
    let mut cluster =
        tokio::task::block_in_place(|| Cluster::start(&node_bin, args.nodes, &parent))?;
    if args.keep_data {
        cluster.keep_data();
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let result = async {
        prefill(&cluster, args.prefill, timeout).await?;
        let verifier = Arc::new(ResponseVerifier::new(&cluster.verifier_key)?);
        let reference = Arc::new(reference(&cluster, &verifier, timeout).await?);
        let mut runs = Vec::new();
        for &clients in &args.clients {
            let run = run_once(
                args,
                &cluster,
                &reference,
                &verifier,
                &mix,
                appends_percent,
                clients,
            )
            .await?;
            print_run(&run);
            runs.push(run);
        }
        anyhow::Ok(runs)
    }
    .await;
    eprintln!("stopping the cluster");
    tokio::task::block_in_place(|| drop(cluster));
    Ok(ReadsReport {
        environment,
        prefill: args.prefill,
        read_mix: args.read_mix.clone(),
        runs: result?,
    })
}

/// Closed-loop appends/s this machine can reach with room to spare: a mix run pre-signs enough
/// for its share of that.
const MIX_PRESIGN_RATE: f64 = 10_000.0;

async fn run_once(
    args: &ReadsArgs,
    cluster: &Cluster,
    reference: &Arc<Reference>,
    verifier: &Arc<ResponseVerifier>,
    mix: &[(ReadKind, u32)],
    appends_percent: f64,
    clients: usize,
) -> anyhow::Result<ReadsRun> {
    let (warmup, duration) = (
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.duration),
    );
    let requests = if appends_percent > 0.0 {
        // A count of requests: `as` saturates for absurd durations instead of wrapping.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = (MIX_PRESIGN_RATE * (args.warmup + args.duration) * appends_percent / 100.0)
            .ceil() as usize
            + clients;
        eprintln!("{clients} clients: pre-signing {count} appends for the mix ...");
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        tokio::task::block_in_place(|| crate::workload::generate(count, threads))?.requests
    } else {
        Vec::new()
    };
    let requests = Arc::new(requests);
    let next_request = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let total_weight: u64 = mix.iter().map(|(_, w)| u64::from(*w)).sum();
    let mix: Arc<Vec<(ReadKind, u32)>> = Arc::new(mix.to_vec());
    // Appends are chosen with probability appends_percent/100, in parts per million.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let append_ppm = (appends_percent * 10_000.0).round() as u64;
    let counters = Arc::new(Counters::default());
    let phases = Phases::from_now(warmup, duration);
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut tasks = Vec::new();
    let mut all_stats = Vec::new();
    let mut seed = [0u8; 8];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("reading randomness"))?;
    for id in 0..clients {
        let stats = Arc::new(Mutex::new(ClientStats {
            reads: BTreeMap::new(),
            appends: (0, Latencies::new()),
            errors: Tally::default(),
        }));
        all_stats.push(Arc::clone(&stats));
        let mut connection = Connection::new(&cluster.urls[id % cluster.urls.len()])?;
        let mut random = Random(u64::from_be_bytes(seed) ^ (id as u64).wrapping_mul(0x2545_f491));
        let (reference, verifier, mix, requests, next_request, exhausted, counters) = (
            Arc::clone(reference),
            Arc::clone(verifier),
            Arc::clone(&mix),
            Arc::clone(&requests),
            Arc::clone(&next_request),
            Arc::clone(&exhausted),
            Arc::clone(&counters),
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(phases.start).await;
            while Instant::now() < phases.end {
                let append_this = append_ppm > 0 && random.next() % 1_000_000 < append_ppm;
                let started = Instant::now();
                counters.in_flight.fetch_add(1, Ordering::Relaxed);
                let (label, outcome) = if append_this {
                    let Some(request) = requests.get(next_request.fetch_add(1, Ordering::Relaxed))
                    else {
                        exhausted.store(true, Ordering::Relaxed);
                        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                        return;
                    };
                    (
                        None,
                        append(&mut connection, &verifier, request, timeout).await,
                    )
                } else {
                    let mut point = random.next() % total_weight;
                    let kind = mix
                        .iter()
                        .find(|(_, weight)| {
                            let hit = point < u64::from(*weight);
                            point = point.saturating_sub(u64::from(*weight));
                            hit
                        })
                        .map_or(ReadKind::Checkpoint, |(kind, _)| *kind);
                    let read = reference.pick(kind, random.next());
                    let label = match read {
                        Read::Tile(n) if tile_level(&reference.tiles[n].0) > 0 => "tile level 1+",
                        Read::Tile(_) => "tile level 0",
                        _ => kind.name(),
                    };
                    let outcome = match connection.send(None, &reference.path(read), timeout).await
                    {
                        Ok((status, body)) => reference
                            .check(&verifier, read, status, &body)
                            .map_err(|error| error.kind().to_string()),
                        Err(kind) => Err(kind.to_string()),
                    };
                    (Some(label), outcome)
                };
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                let finished = Instant::now();
                let counted = phases.in_window(finished);
                let failed = {
                    let mut stats = lock(&stats);
                    match outcome {
                        Ok(()) => {
                            counters.done(label.is_none());
                            if counted {
                                let slot = match label {
                                    Some(label) => stats
                                        .reads
                                        .entry(label)
                                        .or_insert_with(|| (0, Latencies::new())),
                                    None => &mut stats.appends,
                                };
                                slot.0 += 1;
                                slot.1.record(finished - started);
                            }
                            false
                        }
                        Err(kind) => {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            if counted {
                                stats.errors.add(&kind);
                            }
                            true
                        }
                    }
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let progress = tokio::spawn(crate::progress::progress(
        Arc::clone(&counters),
        phases,
        "ops",
    ));
    tokio::time::sleep_until(phases.window_start).await;
    let before = crate::etcd::sample(&cluster.pids);
    let window_started = Instant::now();
    tokio::time::sleep_until(phases.end).await;
    let after = crate::etcd::sample(&cluster.pids);
    let window = window_started.elapsed();
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    let timeline = progress.await.unwrap_or_default();
    let (mut reads, mut appends) = (Latencies::new(), Latencies::new());
    let mut appends_ok = 0;
    let mut by_kind: BTreeMap<String, (u64, Latencies)> = BTreeMap::new();
    let mut errors = Tally::default();
    for stats in &all_stats {
        let stats = lock(stats);
        for (label, (count, latencies)) in &stats.reads {
            reads.merge(latencies);
            let slot = by_kind
                .entry((*label).to_string())
                .or_insert_with(|| (0, Latencies::new()));
            slot.0 += count;
            slot.1.merge(latencies);
        }
        appends_ok += stats.appends.0;
        appends.merge(&stats.appends.1);
        errors.merge(&stats.errors);
    }
    let reads_ok: u64 = by_kind.values().map(|(count, _)| count).sum();
    let usage = crate::etcd::usage(&before, &after, window, "node ");
    let exhausted = exhausted.load(Ordering::Relaxed);
    if exhausted {
        eprintln!("warning: the mix used all its pre-signed appends before the window ended");
    }
    Ok(ReadsRun {
        nodes: cluster.urls.len(),
        clients,
        appends_percent,
        tree_size: reference.size(),
        warmup_s: args.warmup,
        measured_s: window.as_secs_f64(),
        reads_per_second: per_second(reads_ok, window),
        reads_latency: reads.summary(),
        appends_per_second: per_second(appends_ok, window),
        appends_latency: appends.summary(),
        by_kind: by_kind
            .into_iter()
            .map(|(label, (count, latencies))| {
                (
                    label,
                    KindResult {
                        verified: count,
                        per_second: per_second(count, window),
                        latency: latencies.summary(),
                    },
                )
            })
            .collect(),
        errors,
        presigned_exhausted: exhausted,
        node_usage: usage.processes,
        bench_usage: usage.bench,
        machine_cpu_percent: usage.machine,
        other_cpu_percent: usage.other,
        timeline,
    })
}

/// The `reads` and `mix` subcommands: run, print, write JSON.
pub(crate) async fn reads(args: ReadsArgs) -> anyhow::Result<()> {
    let report = run_reads(&args).await?;
    print_table(&mut std::io::stdout(), &report)?;
    if let Some(path) = &args.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

fn print_run(run: &ReadsRun) {
    println!(
        "\n{} node(s), {} clients, {}% appends, tree size {}, {:.1} s measured after {:.1} s warm-up",
        run.nodes, run.clients, run.appends_percent, run.tree_size, run.measured_s, run.warmup_s
    );
    let line = |name: &str, per_second: f64, latency: &LatencySummary| {
        println!(
            "  {name:<14} {per_second:>8.0}/s  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms",
            latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms
        );
    };
    line("all reads", run.reads_per_second, &run.reads_latency);
    for (kind, result) in &run.by_kind {
        line(kind, result.per_second, &result.latency);
    }
    if run.appends_percent > 0.0 {
        line("appends", run.appends_per_second, &run.appends_latency);
    }
    cluster::print_errors_and_usage(
        &run.errors,
        &run.node_usage,
        run.bench_usage.as_ref(),
        run.machine_cpu_percent,
        run.other_cpu_percent,
    );
}

/// A Markdown table with one row per run.
pub(crate) fn print_table(
    out: &mut dyn std::io::Write,
    report: &ReadsReport,
) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "| nodes | clients | appends % | reads/s | p50 ms | p90 ms | p99 ms | max ms | appends/s | append p99 ms | errors | node CPU % | bench CPU % | other CPU % |"
    )?;
    writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    )?;
    for run in &report.runs {
        let latency = &run.reads_latency;
        writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {} | {} | {} | {} |",
            run.nodes,
            run.clients,
            run.appends_percent,
            run.reads_per_second,
            latency.p50_ms,
            latency.p90_ms,
            latency.p99_ms,
            latency.max_ms,
            run.appends_per_second,
            run.appends_latency.p99_ms,
            run.errors.total(),
            run.node_usage
                .iter()
                .map(|u| format!("{:.0}", u.cpu_percent))
                .collect::<Vec<_>>()
                .join(" + "),
            run.bench_usage
                .as_ref()
                .map_or("-".into(), |u| format!("{:.0}", u.cpu_percent)),
            run.other_cpu_percent
                .map_or("-".into(), |other| format!("{other:.0}")),
        )?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tlog::checkpoint::Checkpoint;
    use tlog::keys::Ed25519Signer;

    const ORIGIN: &str = "cairn.localhost/artifacts";
    /// Two full tiles and a partial one: full bundles, a level-0 tile set and proofs.
    const SIZE: u64 = 600;

    struct Fixture {
        signer: Ed25519Signer,
        tree: MemoryTree,
        bundles: Vec<Bytes>,
        reference: Reference,
    }

    fn fixture() -> Fixture {
        let signer =
            Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap();
        let leaves: Vec<Vec<u8>> = (0..SIZE)
            .map(|i| format!("{{\"entry\":{i}}}").into_bytes())
            .collect();
        let mut tree = MemoryTree::new();
        for leaf in &leaves {
            tree.append(tlog::leaf_hash(leaf)).unwrap();
        }
        let bundles: Vec<Bytes> = leaves
            .chunks(256)
            .map(|chunk| Bytes::from(tlog::tile::encode_bundle(chunk).unwrap()))
            .collect();
        let reference = Reference::build(SIZE, tree.root(), &bundles).unwrap();
        Fixture {
            signer,
            tree,
            bundles,
            reference,
        }
    }

    impl Fixture {
        fn verifier(&self) -> ResponseVerifier {
            ResponseVerifier::new(&self.signer.verifier().to_vkey()).unwrap()
        }

        fn checkpoint(&self, size: u64, root: Hash) -> Vec<u8> {
            Checkpoint::new(ORIGIN, TreeSize(size), root)
                .sign(&[&self.signer])
                .unwrap()
                .format()
                .unwrap()
                .into_bytes()
        }

        fn inclusion(&self, index: u64) -> serde_json::Value {
            let proof =
                tlog::proof::inclusion_proof(&self.tree.store, LeafIndex(index), TreeSize(SIZE))
                    .unwrap();
            serde_json::json!({
                "leaf_index": index,
                "tree_size": SIZE,
                "hashes": proof.hashes.iter().map(Hash::to_base64).collect::<Vec<_>>(),
            })
        }

        fn consistency(&self, old: u64) -> serde_json::Value {
            let proof =
                tlog::proof::consistency_proof(&self.tree.store, TreeSize(old), TreeSize(SIZE))
                    .unwrap();
            serde_json::json!({
                "old": old,
                "new": SIZE,
                "hashes": proof.hashes.iter().map(Hash::to_base64).collect::<Vec<_>>(),
            })
        }

        fn check(&self, read: Read, body: &[u8]) -> Result<(), ReadError> {
            self.reference.check(&self.verifier(), read, 200, body)
        }
    }

    fn bytes(value: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn flip(mut data: Vec<u8>, at: usize) -> Vec<u8> {
        data[at] ^= 1;
        data
    }

    #[test]
    fn the_reference_refuses_bundles_that_do_not_hash_to_the_root() {
        let fixture = fixture();
        let mut bundles = fixture.bundles.clone();
        bundles[1] = Bytes::from(flip(bundles[1].to_vec(), 5));
        let error = Reference::build(SIZE, fixture.tree.root(), &bundles).unwrap_err();
        assert!(error.to_string().contains("do not hash"), "{error}");
        assert!(Reference::build(SIZE, fixture.tree.root(), &fixture.bundles[..2]).is_err());
    }

    #[test]
    fn correct_answers_verify() {
        let fixture = fixture();
        let reference = &fixture.reference;
        assert_eq!(reference.tiles.len(), 2, "two full level-0 tiles");
        assert_eq!(reference.bundles.len(), 2);
        let checkpoint = fixture.checkpoint(SIZE, fixture.tree.root());
        fixture.check(Read::Checkpoint, &checkpoint).unwrap();
        for n in 0..2 {
            let data = tlog::tile::tile_data(&fixture.tree.store, reference.tiles[n].0).unwrap();
            fixture.check(Read::Tile(n), &data).unwrap();
            fixture
                .check(Read::Entries(n as u64), &fixture.bundles[n])
                .unwrap();
        }
        for index in [0, 1, 255, 256, 599] {
            fixture
                .check(Read::Inclusion(index), &bytes(&fixture.inclusion(index)))
                .unwrap();
        }
        for old in [1, 2, 256, 300, 599] {
            fixture
                .check(Read::Consistency(old), &bytes(&fixture.consistency(old)))
                .unwrap();
        }
        assert_eq!(
            reference.path(Read::Inclusion(7)),
            "/api/v2/proof/inclusion?index=7&tree_size=600"
        );
        assert_eq!(reference.path(Read::Entries(1)), "/api/v2/tile/entries/001");
    }

    #[test]
    fn wrong_answers_are_rejected() {
        let fixture = fixture();
        let reference = &fixture.reference;
        let kind = |result: Result<(), ReadError>| result.unwrap_err().kind();

        // A tile or bundle with one bit changed.
        let tile = tlog::tile::tile_data(&fixture.tree.store, reference.tiles[0].0).unwrap();
        assert_eq!(
            kind(fixture.check(Read::Tile(0), &flip(tile, 40))),
            "verify: wrong bytes"
        );
        assert_eq!(
            kind(fixture.check(Read::Entries(1), &flip(fixture.bundles[1].to_vec(), 9))),
            "verify: wrong bytes"
        );
        // The right bundle under the wrong index.
        assert_eq!(
            kind(fixture.check(Read::Entries(0), &fixture.bundles[1])),
            "verify: wrong bytes"
        );

        // A proof with a tampered hash, or for another leaf.
        let mut proof = fixture.inclusion(300);
        let first = Hash::from_base64(proof["hashes"][0].as_str().unwrap()).unwrap();
        let mut tampered = first;
        tampered.0[3] ^= 0x10;
        proof["hashes"][0] = tampered.to_base64().into();
        assert_eq!(
            kind(fixture.check(Read::Inclusion(300), &bytes(&proof))),
            "verify: proof"
        );
        assert_eq!(
            kind(fixture.check(Read::Inclusion(301), &bytes(&fixture.inclusion(300)))),
            "verify: wrong parameters"
        );
        let mut relabelled = fixture.inclusion(300);
        relabelled["leaf_index"] = 301.into();
        assert_eq!(
            kind(fixture.check(Read::Inclusion(301), &bytes(&relabelled))),
            "verify: proof"
        );
        let mut consistency = fixture.consistency(100);
        consistency["old"] = 101.into();
        assert_eq!(
            kind(fixture.check(Read::Consistency(101), &bytes(&consistency))),
            "verify: proof"
        );

        // Checkpoints: another key, a smaller tree, another root at the same size.
        let other =
            Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[8; 32])).unwrap();
        let forged = Checkpoint::new(ORIGIN, TreeSize(SIZE), fixture.tree.root())
            .sign(&[&other])
            .unwrap()
            .format()
            .unwrap();
        assert_eq!(
            kind(fixture.check(Read::Checkpoint, forged.as_bytes())),
            "verify: checkpoint"
        );
        let old_root = tlog::tree::root_at(&fixture.tree.store, TreeSize(500)).unwrap();
        assert_eq!(
            kind(fixture.check(Read::Checkpoint, &fixture.checkpoint(500, old_root))),
            "verify: rollback"
        );
        let mut other_root = fixture.tree.root();
        other_root.0[0] ^= 1;
        assert_eq!(
            kind(fixture.check(Read::Checkpoint, &fixture.checkpoint(SIZE, other_root))),
            "verify: split view"
        );

        // A failed status never counts, whatever the body.
        assert_eq!(
            reference
                .check(&fixture.verifier(), Read::Tile(0), 503, b"")
                .unwrap_err()
                .kind(),
            "http error"
        );
    }

    #[test]
    fn read_mixes_parse_strictly() {
        let mix = parse_read_mix("tile=3, inclusion=1,checkpoint=0").unwrap();
        assert_eq!(mix, [(ReadKind::Tile, 3), (ReadKind::Inclusion, 1)]);
        assert!(parse_read_mix("tile=1,tile=2").is_err());
        assert!(parse_read_mix("tiles=1").is_err());
        assert!(parse_read_mix("tile").is_err());
        assert!(parse_read_mix("tile=0").is_err());
        assert!(parse_read_mix("tile=-1").is_err());
    }
}
