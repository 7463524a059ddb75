//! `cairn-bench reads` and `mix`: verified reads of the public log API on a pre-filled log,
//! alone or mixed with appends. Each read is checked against a *reference*: the entry bundles of
//! a signed checkpoint of size N, whose leaves must hash to its root. A checkpoint must be
//! signed, at least N, and at N have the reference root; a tile or bundle must be the
//! reference's bytes; a proof must lead to the signed root. Only full (immutable) tiles and
//! bundles are read, so the reads stay valid while the mix grows the log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use tlog::tile::Tile;
use tlog::tile::TileKind::Hashes;
use tlog::{Hash, HashStore as _, MemoryTree, NodeId, TreeSize};
use tokio::time::Instant;

use crate::appends::AppendLoad;
use crate::cluster::Cluster;
use crate::net::{self, Answer};
use crate::run::{self, Context, Done, Failure, Phases, RunArgs, Target, Workload};
use crate::stats::per_second;
use crate::verify::{ResponseVerifier, proof_kind};
use client::log_entry::{verify_consistency_answer, verify_inclusion_answer};

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ReadsArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
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
}

/// What a read asks for; its name is what `--read-mix` and the per-kind results call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub(crate) enum ReadKind {
    Checkpoint,
    Tile,
    Entries,
    Inclusion,
    Consistency,
}

impl ReadKind {
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
        let kind: ReadKind = clap::ValueEnum::from_str(name.trim(), false)
            .map_err(|_| anyhow::anyhow!("--read-mix: unknown read kind {name:?}"))?;
        let weight = (weight
            .trim()
            .parse()
            .ok()
            .filter(|weight| *weight <= 1_000_000))
        .with_context(|| format!("--read-mix: {weight:?} is not 0 to 1000000"))?;
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

/// The log as the benchmark knows it, from leaves proven to hash to a signed checkpoint's root.
#[derive(Debug)]
pub(crate) struct Reference {
    size: u64,
    root: Hash,
    /// Every complete subtree's hash, leaves included: for proofs' leaves and older roots.
    tree: MemoryTree,
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
        let mut full = Vec::new();
        for (index, bundle) in bundles.iter().enumerate() {
            let count = (size - index as u64 * width).min(width);
            let count = u16::try_from(count).context("bundle width")?;
            let entries = tlog::tile::decode_bundle(bundle, count)
                .with_context(|| format!("entry bundle {index}"))?;
            for entry in entries {
                tree.append(tlog::leaf_hash(entry))?;
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
            tiles,
            bundles: full,
        })
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

    /// Checks an answer to `read` as a client would; the error is the tally kind.
    pub(crate) fn check(
        &self,
        verifier: &ResponseVerifier,
        read: Read,
        status: u16,
        body: &[u8],
    ) -> Result<(), &'static str> {
        if status != 200 {
            return Err("http error");
        }
        let at = |index: u64| usize::try_from(index).map_err(|_| "verify: wrong parameters");
        match read {
            Read::Checkpoint => {
                let text = std::str::from_utf8(body).map_err(|_| "verify: malformed")?;
                let (size, root) = verifier.checkpoint(text).map_err(|error| error.kind())?;
                if size < self.size {
                    return Err("verify: rollback");
                }
                if size == self.size && root != self.root {
                    return Err("verify: split view");
                }
            }
            Read::Tile(n) if Hash::digest(body) != self.tiles[n].1 => {
                return Err("verify: wrong bytes");
            }
            Read::Tile(_) => {}
            Read::Entries(index) => match self.bundles.get(at(index)?) {
                Some(expected) if Hash::digest(body) == *expected => {}
                Some(_) => return Err("verify: wrong bytes"),
                None => return Err("verify: wrong parameters"),
            },
            Read::Inclusion(index) => {
                let leaf = (self.tree.store.node_hash(NodeId::new(0, index)))
                    .map_err(|_| "verify: wrong parameters")?;
                verify_inclusion_answer(body, (index, &leaf), (self.size, &self.root))
                    .map_err(|error| proof_kind(&error))?;
            }
            Read::Consistency(old) => {
                let old_root = tlog::tree::root_at(&self.tree.store, TreeSize(old))
                    .map_err(|_| "verify: wrong parameters")?;
                verify_consistency_answer(body, (old, &old_root), (self.size, &self.root))
                    .map_err(|error| proof_kind(&error))?;
            }
        }
        Ok(())
    }
}

/// Verified reads of the reference's tree, with a share of appends for `mix`.
struct ReadLoad {
    reference: Arc<Reference>,
    verifier: Arc<ResponseVerifier>,
    mix: Vec<(ReadKind, u32)>,
    /// Picks an index of `mix` by its weights.
    weights: WeightedIndex<u32>,
    urls: Vec<String>,
    timeout: Duration,
    /// The probability that an operation is an append.
    append_share: f64,
    appends: Option<AppendLoad>,
    next_append: AtomicUsize,
}

enum ReadAnswer {
    Read(Read, &'static str, Answer),
    Append((usize, Answer)),
}

impl Workload for ReadLoad {
    /// The URL of the node the client talks to, and its generator.
    type Client = (String, SmallRng);
    type Answer = ReadAnswer;

    async fn prepare(&self, id: usize) -> anyhow::Result<(String, SmallRng)> {
        let url = self.urls[id % self.urls.len()].clone();
        Ok((url, SmallRng::try_from_os_rng()?))
    }

    async fn issue(
        &self,
        (url, random): &mut (String, SmallRng),
        _: usize,
        context: &Context<'_>,
    ) -> Result<ReadAnswer, Failure> {
        if let Some(appends) = &self.appends
            && random.random_bool(self.append_share)
        {
            let index = self.next_append.fetch_add(1, Ordering::Relaxed);
            let answer = appends.issue(url, index, context).await?;
            return Ok(ReadAnswer::Append(answer));
        }
        let kind = self.mix[random.sample(&self.weights)].0;
        let read = self.reference.pick(kind, random.random());
        // Level 0 hash tiles are reported apart from the higher levels.
        let label = match read {
            Read::Tile(n) if matches!(self.reference.tiles[n].0.kind, Hashes { level: 1.. }) => {
                "tile level 1+"
            }
            Read::Tile(_) => "tile level 0",
            _ => kind.name(),
        };
        let path = self.reference.path(read);
        let answer = net::send(&format!("{url}{path}"), None, None, self.timeout).await?;
        Ok(ReadAnswer::Read(read, label, answer))
    }

    fn verify(
        &self,
        (url, _): &mut (String, SmallRng),
        answer: ReadAnswer,
    ) -> Result<Done, String> {
        match answer {
            ReadAnswer::Append(answer) => match &self.appends {
                Some(appends) => appends.verify(url, answer),
                None => Err("verify: unexpected append".into()),
            },
            ReadAnswer::Read(read, label, answer) => self
                .reference
                .check(&self.verifier, read, answer.status, &answer.body)
                .map(|()| Done::read(label))
                .map_err(str::to_string),
        }
    }
}

/// Fills the log with `count` verified appends from 64 concurrent clients: the phase loop
/// without warm-up, until the requests run out.
async fn prefill(cluster: &Cluster, count: usize, timeout: Duration) -> anyhow::Result<()> {
    eprintln!("pre-filling the log: signing {count} hashedrekord entries ...");
    let load = Arc::new(AppendLoad::presign(cluster, count, timeout, 5)?);
    let started = Instant::now();
    let phases = Phases {
        clients: 64,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(24 * 3600),
        rate: None,
        profile: false,
        unit: "pre-fill appends",
    };
    let measured = run::measure(&load, &phases, Target::cluster(cluster)).await?;
    let (appended, _) = measured.total(|_| true);
    if let Some((kind, _)) = measured.counts.errors.iter().next() {
        bail!("pre-fill appends failed: {kind}");
    }
    anyhow::ensure!(
        appended == count as u64,
        "pre-fill: {appended} of {count} appended"
    );
    eprintln!(
        "  pre-filled {count} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Fetches a verified checkpoint from every node until all are at the same size (followers
/// apply a moment after the leader), then builds the reference from node 1's bundles.
async fn reference(cluster: &Cluster, verifier: &ResponseVerifier) -> anyhow::Result<Reference> {
    let started = Instant::now();
    let (size, root) = loop {
        let mut seen = Vec::new();
        for url in &cluster.urls {
            let (size, root, _) = verifier.fetch_checkpoint(url).await?;
            seen.push((size, root));
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
    let width = u64::from(tlog::tile::TILE_WIDTH);
    let mut bundles = Vec::new();
    for index in 0..size.div_ceil(width) {
        let count = u16::try_from((size - index * width).min(width))?;
        let bundle = Tile::entries(index, count).path();
        bundles.push(net::get(&format!("{}/api/v2/{bundle}", cluster.urls[0])).await?);
    }
    tokio::task::block_in_place(|| Reference::build(size, root, &bundles))
}

/// The `reads` and `mix` subcommands: start a cluster, pre-fill it, run once per client count.
pub(crate) async fn reads(args: ReadsArgs) -> anyhow::Result<()> {
    args.run.check()?;
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
    let environment = run::environment();
    let runs = async |cluster: &Cluster| {
        prefill(cluster, args.prefill, args.run.timeout()).await?;
        let verifier = Arc::new(ResponseVerifier::new(&cluster.verifier_key)?);
        let reference = Arc::new(reference(cluster, &verifier).await?);
        let reads = (mix.as_slice(), appends_percent);
        let once =
            async |clients| run_once(&args, cluster, (&reference, &verifier), reads, clients).await;
        args.run.each(COLUMNS, once).await
    };
    let runs = args.run.on_clusters(&[], None, runs).await?;
    let (prefill, read_mix) = (args.prefill, &args.read_mix);
    let report = serde_json::json!({
        "environment": environment, "prefill": prefill, "read_mix": read_mix, "runs": runs,
    });
    args.run.finish(&report, table, true)
}

/// Closed-loop appends/s this machine can reach with room to spare: a mix run pre-signs enough
/// for its share of that.
const MIX_PRESIGN_RATE: f64 = 10_000.0;

/// One run: the mix of reads (and `appends_percent` of appends) against the reference.
async fn run_once(
    args: &ReadsArgs,
    cluster: &Cluster,
    (reference, verifier): (&Arc<Reference>, &Arc<ResponseVerifier>),
    (mix, appends_percent): (&[(ReadKind, u32)], f64),
    clients: usize,
) -> anyhow::Result<serde_json::Value> {
    let appends = if appends_percent > 0.0 {
        let share = appends_percent / 100.0 * (args.run.warmup + args.run.duration);
        // A count of requests: `as` saturates for absurd durations instead of wrapping.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = (MIX_PRESIGN_RATE * share).ceil() as usize + clients;
        eprintln!("{clients} clients: pre-signing {count} appends for the mix ...");
        Some(AppendLoad::presign(cluster, count, args.run.timeout(), 5)?)
    } else {
        None
    };
    let load = Arc::new(ReadLoad {
        reference: Arc::clone(reference),
        verifier: Arc::clone(verifier),
        mix: mix.to_vec(),
        weights: WeightedIndex::new(mix.iter().map(|(_, weight)| *weight))?,
        urls: cluster.urls.clone(),
        timeout: args.run.timeout(),
        append_share: appends_percent / 100.0,
        appends,
        next_append: AtomicUsize::new(0),
    });
    let measured = run::measure(
        &load,
        &args.run.phases(clients, "ops"),
        Target::cluster(cluster),
    )
    .await?;
    let window = measured.window;
    if measured.exhausted {
        eprintln!("warning: the mix used all its pre-signed appends before the window ended");
    }
    let (reads_ok, reads) = measured.total(|label| label != "appends");
    let (appends_ok, appends) = measured.total(|label| label == "appends");
    // Each kind of read on its own: its count and latency in the window.
    let by_kind: serde_json::Map<String, serde_json::Value> = (measured.counts.kinds.iter())
        .filter(|(label, _)| **label != "appends")
        .map(|(label, latencies)| {
            let count = latencies.count();
            let (per_second, latency) = (per_second(count, window), latencies.summary());
            let kind = json!({ "verified": count, "per_second": per_second, "latency": latency });
            ((*label).to_string(), kind)
        })
        .collect();
    // `reads_per_second`: verified reads of every kind; `appends_per_second`: mix only.
    Ok(measured.with(json!({
        "nodes": cluster.urls.len(), "appends_percent": appends_percent,
        "tree_size": reference.size, "reads_per_second": per_second(reads_ok, window),
        "reads_latency": reads.summary(), "appends_per_second": per_second(appends_ok, window),
        "appends_latency": appends.summary(), "by_kind": by_kind,
        "presigned_exhausted": measured.exhausted, "node_usage": measured.processes,
    })))
}

/// The columns of the `reads` and `mix` table (also the suite report's).
const COLUMNS: &str = "nodes=nodes | clients=clients | tree size=tree_size \
    | appends %=appends_percent | reads/s=reads_per_second:0 | p50 ms=reads_latency.p50_ms:2 \
    | p90 ms=reads_latency.p90_ms:2 | p99 ms=reads_latency.p99_ms:2 \
    | max ms=reads_latency.max_ms:2 | appends/s=appends_per_second:0 \
    | append p99 ms=appends_latency.p99_ms:1 | errors=errors:sum | node CPU %=node_usage:cpu \
    | bench CPU %=bench_usage.cpu_percent:0 | other CPU %=other_cpu_percent:0";

pub(crate) fn table(report: &serde_json::Value) -> String {
    crate::stats::table(COLUMNS, report["runs"].as_array().into_iter().flatten())
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::tests::{Fixture, signer};
    use tlog::LeafIndex;

    /// Two full tiles and a partial one: full bundles, a level-0 tile set and proofs.
    const SIZE: u64 = 600;

    fn fixture() -> (Fixture, Vec<Bytes>, Reference) {
        let fixture = Fixture::new(SIZE);
        let bundles: Vec<Bytes> = (fixture.leaves.chunks(256))
            .map(|chunk| Bytes::from(tlog::tile::encode_bundle(chunk).unwrap()))
            .collect();
        let reference = Reference::build(SIZE, fixture.tree.root(), &bundles).unwrap();
        (fixture, bundles, reference)
    }

    fn inclusion(fixture: &Fixture, index: u64) -> serde_json::Value {
        let store = &fixture.tree.store;
        let proof = tlog::proof::inclusion_proof(store, LeafIndex(index), TreeSize(SIZE));
        let hashes = Fixture::hashes(&proof.unwrap().hashes);
        serde_json::json!({ "leaf_index": index, "tree_size": SIZE, "hashes": hashes })
    }

    fn consistency(fixture: &Fixture, old: u64) -> serde_json::Value {
        let store = &fixture.tree.store;
        let proof = tlog::proof::consistency_proof(store, TreeSize(old), TreeSize(SIZE));
        let hashes = Fixture::hashes(&proof.unwrap().hashes);
        serde_json::json!({ "old": old, "new": SIZE, "hashes": hashes })
    }

    fn flip(mut data: Vec<u8>, at: usize) -> Vec<u8> {
        data[at] ^= 1;
        data
    }

    #[test]
    fn correct_answers_verify_and_wrong_ones_are_rejected() {
        let (fixture, mut bundles, reference) = fixture();
        let verifier = fixture.verifier();
        let check = |read: Read, body: &[u8]| reference.check(&verifier, read, 200, body);
        let rejects = |read: Read, body: &[u8], kind| assert_eq!(check(read, body), Err(kind));
        let json = |value: &serde_json::Value| serde_json::to_vec(value).unwrap();
        let (root, key) = (fixture.tree.root(), &fixture.signer);
        assert_eq!((reference.tiles.len(), reference.bundles.len()), (2, 2));
        check(
            Read::Checkpoint,
            fixture.checkpoint(SIZE, root, key).as_bytes(),
        )
        .unwrap();
        for (n, (tile, _)) in reference.tiles.iter().enumerate() {
            let data = tlog::tile::tile_data(&fixture.tree.store, *tile).unwrap();
            check(Read::Tile(n), &data).unwrap();
            check(Read::Entries(n as u64), &bundles[n]).unwrap();
        }
        for index in [0, 1, 255, 256, 599] {
            check(Read::Inclusion(index), &json(&inclusion(&fixture, index))).unwrap();
            let proof = json(&consistency(&fixture, index + 1));
            check(Read::Consistency(index + 1), &proof).unwrap();
        }
        let path = reference.path(Read::Inclusion(7));
        assert_eq!(path, "/api/v2/proof/inclusion?index=7&tree_size=600");
        assert_eq!(reference.path(Read::Entries(1)), "/api/v2/tile/entries/001");

        // A tile or bundle with one bit changed, or the right bundle under the wrong index.
        let tile = tlog::tile::tile_data(&fixture.tree.store, reference.tiles[0].0).unwrap();
        rejects(Read::Tile(0), &flip(tile, 40), "verify: wrong bytes");
        rejects(
            Read::Entries(1),
            &flip(bundles[1].to_vec(), 9),
            "verify: wrong bytes",
        );
        rejects(Read::Entries(0), &bundles[1], "verify: wrong bytes");
        // A proof with a tampered hash, for another leaf, or relabelled.
        let mut proof = inclusion(&fixture, 300);
        let mut tampered = Hash::from_base64(proof["hashes"][0].as_str().unwrap()).unwrap();
        tampered.0[3] ^= 0x10;
        proof["hashes"][0] = tampered.to_base64().into();
        rejects(Read::Inclusion(300), &json(&proof), "verify: proof");
        let other_leaf = json(&inclusion(&fixture, 300));
        rejects(
            Read::Inclusion(301),
            &other_leaf,
            "verify: wrong parameters",
        );
        let mut relabelled = inclusion(&fixture, 300);
        relabelled["leaf_index"] = 301.into();
        rejects(Read::Inclusion(301), &json(&relabelled), "verify: proof");
        let mut relabelled = consistency(&fixture, 100);
        relabelled["old"] = 101.into();
        rejects(Read::Consistency(101), &json(&relabelled), "verify: proof");
        // Checkpoints: another key, a smaller tree, another root at the same size.
        let forged = fixture.checkpoint(SIZE, root, &signer(8));
        rejects(Read::Checkpoint, forged.as_bytes(), "verify: checkpoint");
        let old_root = tlog::tree::root_at(&fixture.tree.store, TreeSize(500)).unwrap();
        let old = fixture.checkpoint(500, old_root, key);
        rejects(Read::Checkpoint, old.as_bytes(), "verify: rollback");
        let mut other_root = root;
        other_root.0[0] ^= 1;
        let split = fixture.checkpoint(SIZE, other_root, key);
        rejects(Read::Checkpoint, split.as_bytes(), "verify: split view");
        // A failed status never counts, whatever the body.
        let failed = reference.check(&verifier, Read::Tile(0), 503, b"");
        assert_eq!(failed, Err("http error"));

        // The reference refuses bundles that are missing or do not hash to the signed root.
        assert!(Reference::build(SIZE, root, &bundles[..2]).is_err());
        bundles[1] = Bytes::from(flip(bundles[1].to_vec(), 5));
        let error = Reference::build(SIZE, root, &bundles).unwrap_err();
        assert!(error.to_string().contains("do not hash"), "{error}");
    }

    #[test]
    fn read_mixes_parse_strictly() {
        let mix = parse_read_mix("tile=3, inclusion=1,checkpoint=0").unwrap();
        assert_eq!(mix, [(ReadKind::Tile, 3), (ReadKind::Inclusion, 1)]);
        for wrong in ["tile=1,tile=2", "tiles=1", "tile", "tile=0", "tile=-1"] {
            assert!(parse_read_mix(wrong).is_err(), "{wrong}");
        }
    }
}
