//! A cluster of real `cairn-node` processes on loopback, on a real disk, with fsync on.
//!
//! Goal: nothing acknowledged is ever lost or forked, whatever single process dies. Method:
//! clients append hashedrekord entries through every node while the test kills the leader with
//! SIGKILL, then a follower, then restarts them; every acknowledged response is verified as a
//! client would (inclusion proof against the returned checkpoint, checkpoint signature against
//! the log key). At the end every node must hold every acknowledged entry at its index, all
//! nodes must report the same root at the same size, and every pair of checkpoints the clients
//! saw must be consistent. A full restart must resume at the same size and root, and a learner
//! added late must catch up and serve the same tiles. Raft traffic goes over the nodes' cluster
//! listeners, mutual TLS with the certificates `cairn-node init` made.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use tlog::checkpoint::Checkpoint;
use tlog::keys::Verifiers;
use tlog::{Hash, InclusionProof, LeafIndex, TreeSize};

mod common;

/// The processes, and the `artifacts` log's key to verify what they sign.
struct Cluster {
    nodes: common::cluster::Cluster,
    verifiers: Verifiers,
}

// The tests use the processes' API (spawn, kill, request, ...) as the cluster's own.
impl std::ops::Deref for Cluster {
    type Target = common::cluster::Cluster;

    fn deref(&self) -> &common::cluster::Cluster {
        &self.nodes
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut common::cluster::Cluster {
        &mut self.nodes
    }
}

impl Cluster {
    /// Writes material for `nodes` nodes and starts the first `voters` of them as the cluster.
    async fn start(name: &str, nodes: usize, voters: usize) -> Cluster {
        Cluster::start_configured(name, nodes, voters, None).await
    }

    /// As [`Cluster::start`], with every node's config.toml changed by `configure` first.
    async fn start_configured(
        name: &str,
        nodes: usize,
        voters: usize,
        configure: Option<fn(&mut toml::Table)>,
    ) -> Cluster {
        let mut processes = common::cluster::Cluster::init("cluster", name, nodes, &[]);
        let mut verifiers = Verifiers::new();
        verifiers.push(processes.log_signer().verifier()).unwrap();
        if let Some(configure) = configure {
            for id in 1..=nodes as u64 {
                processes.edit_config(id, configure);
            }
        }
        processes.form(voters).await;
        Cluster {
            nodes: processes,
            verifiers,
        }
    }

    async fn checkpoint(&self, id: u64) -> Checkpoint {
        let (status, body) = self
            .request("GET", id, "/api/v2/checkpoint", None)
            .await
            .unwrap();
        assert_eq!(status, 200);
        tlog::checkpoint::open(&body, &self.verifiers)
            .unwrap()
            .checkpoint
    }
}

/// A signer of hashedrekord v0.0.2 requests: an ECDSA P-256 key.
struct Client {
    key: p256::ecdsa::SigningKey,
    spki: Vec<u8>,
}

impl Client {
    fn new(seed: u8) -> Client {
        let key = p256::ecdsa::SigningKey::from_slice(&[seed.max(1); 32]).unwrap();
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        Client { key, spki }
    }

    fn request(&self, artifact: &[u8]) -> serde_json::Value {
        let digest = Hash::digest(artifact);
        let signature: p256::ecdsa::Signature = self.key.sign_prehash(digest.as_bytes()).unwrap();
        serde_json::json!({
            "hashedRekordRequestV002": {
                "digest": BASE64.encode(digest.as_bytes()),
                "signature": {
                    "content": BASE64.encode(signature.to_der().as_bytes()),
                    "verifier": {
                        "publicKey": { "rawBytes": BASE64.encode(&self.spki) },
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256"
                    }
                }
            }
        })
    }
}

/// An acknowledged append, verified.
#[derive(Clone, Debug)]
struct Acked {
    index: u64,
    leaf: Vec<u8>,
    checkpoint: Checkpoint,
}

/// Verifies a `TransparencyLogEntry` as a client must: the checkpoint is signed by the log
/// key, the inclusion proof leads from the canonical body to the checkpoint's root.
fn verify_entry(verifiers: &Verifiers, body: &[u8]) -> Acked {
    let entry: serde_json::Value = serde_json::from_slice(body).unwrap();
    let leaf = BASE64
        .decode(entry["canonicalizedBody"].as_str().unwrap())
        .unwrap();
    let index: u64 = entry["logIndex"].as_str().unwrap().parse().unwrap();
    let proof = &entry["inclusionProof"];
    let envelope = proof["checkpoint"]["envelope"].as_str().unwrap();
    let checkpoint = tlog::checkpoint::open(envelope.as_bytes(), verifiers)
        .unwrap()
        .checkpoint;
    let tree_size: u64 = proof["treeSize"].as_str().unwrap().parse().unwrap();
    assert_eq!(tree_size, checkpoint.size.0);
    let hashes = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    let inclusion = InclusionProof {
        leaf_index: LeafIndex(index),
        tree_size: TreeSize(tree_size),
        hashes,
    };
    inclusion
        .verify(&tlog::leaf_hash(&leaf), &checkpoint.root)
        .unwrap();
    assert_eq!(
        Hash::from_base64(proof["rootHash"].as_str().unwrap()).unwrap(),
        checkpoint.root
    );
    Acked {
        index,
        leaf,
        checkpoint,
    }
}

/// Appends `count` artifacts through the live nodes in turn, retrying until each is
/// acknowledged; returns the acknowledgements.
async fn append(cluster: &Cluster, client: &Client, tag: &str, count: usize) -> Vec<Acked> {
    let mut acked = Vec::new();
    for i in 0..count {
        let request = client.request(format!("{tag} {i}").as_bytes());
        let started = Instant::now();
        loop {
            let ids: Vec<u64> = cluster.running();
            let id = ids[(i + acked.len()) % ids.len()];
            match cluster
                .request("POST", id, "/api/v2/log/entries", Some(request.clone()))
                .await
            {
                Ok((200 | 201, body)) => {
                    acked.push(verify_entry(&cluster.verifiers, &body));
                    break;
                }
                Ok((status, body)) => {
                    assert!(
                        status == 503 || status == 429,
                        "append: {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                Err(_) => {}
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "append of {tag} {i} never acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    acked
}

/// Every node holds every acknowledged leaf at its index, and all report one root per size.
async fn check_agreement(cluster: &Cluster, acked: &[Acked]) {
    let leader = cluster.leader().await;
    let final_checkpoint = cluster.checkpoint(leader).await;
    for id in cluster.running() {
        // Followers apply shortly after the leader; wait for them to reach the same size.
        let started = Instant::now();
        loop {
            let checkpoint = cluster.checkpoint(id).await;
            if checkpoint.size >= final_checkpoint.size {
                if checkpoint.size == final_checkpoint.size {
                    assert_eq!(checkpoint.root, final_checkpoint.root, "node {id} forked");
                }
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node {id} stuck at {}",
                checkpoint.size
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for ack in acked {
            let (status, leaf) = cluster
                .request(
                    "GET",
                    id,
                    &format!("/logs/artifacts/entries/{}", ack.index),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "node {id} lost entry {}", ack.index);
            assert_eq!(
                leaf.as_ref(),
                ack.leaf.as_slice(),
                "node {id} has another leaf at {}",
                ack.index
            );
        }
    }
    // Every checkpoint a client saw is consistent with the final one.
    for ack in acked {
        if ack.checkpoint.size == final_checkpoint.size {
            assert_eq!(ack.checkpoint.root, final_checkpoint.root);
            continue;
        }
        let path = format!(
            "/logs/artifacts/proof/consistency?old={}&new={}",
            ack.checkpoint.size, final_checkpoint.size
        );
        let (status, body) = cluster.request("GET", leader, &path, None).await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let proof: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let hashes = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
            .collect();
        let consistency = tlog::ConsistencyProof {
            old_size: ack.checkpoint.size,
            new_size: final_checkpoint.size,
            hashes,
        };
        consistency
            .verify(&ack.checkpoint.root, &final_checkpoint.root)
            .unwrap();
    }
}

/// Clients appending continuously in the background, through every node in turn, while the
/// test kills and restarts nodes. A submission whose answer is lost is retried (the dedup index
/// makes that safe); only verified answers count as acknowledged.
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Acked>>>,
}

impl Writers {
    fn start(cluster: &Cluster, count: usize, tag: &str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for writer in 0..count {
            let (urls, http, verifiers) = (
                cluster.urls.clone(),
                cluster.http.clone(),
                cluster.verifiers.clone(),
            );
            let (stop, tag) = (Arc::clone(&stop), format!("{tag} writer {writer}"));
            tasks.push(tokio::spawn(async move {
                let client = Client::new(u8::try_from(40 + writer).unwrap());
                let mut acked = Vec::new();
                let mut attempt = writer;
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = serde_json::to_vec(&client.request(format!("{tag} {i}").as_bytes()))
                        .unwrap();
                    // Retry this entry until it is acknowledged or the test stops the writers.
                    while !stop.load(Ordering::SeqCst) {
                        attempt += 1;
                        let url = format!("{}/api/v2/log/entries", urls[attempt % urls.len()]);
                        let request = hyper::Request::post(&url)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body.clone())))
                            .unwrap();
                        let answer =
                            tokio::time::timeout(Duration::from_secs(10), http.request(request))
                                .await;
                        if let Ok(Ok(response)) = answer {
                            let status = response.status().as_u16();
                            let bytes = response
                                .into_body()
                                .collect()
                                .await
                                .map(http_body_util::Collected::to_bytes);
                            match (status, bytes) {
                                (200 | 201, Ok(bytes)) => {
                                    acked.push(verify_entry(&verifiers, &bytes));
                                    break;
                                }
                                (429 | 503, _) | (_, Err(_)) => {}
                                (status, Ok(bytes)) => {
                                    panic!("append: {status}: {}", String::from_utf8_lossy(&bytes))
                                }
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                acked
            }));
        }
        Writers { stop, tasks }
    }

    /// Stops the writers and returns everything they saw acknowledged.
    async fn stop(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::SeqCst);
        let mut acked = Vec::new();
        for task in self.tasks {
            acked.extend(task.await.unwrap());
        }
        acked
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_through_crashes_and_restarts() {
    let mut cluster = Cluster::start("crash", 3, 3).await;
    let client = Client::new(7);
    let mut acked = append(&cluster, &client, "before", 30).await;

    // SIGKILL the leader while four clients are appending through every node.
    let writers = Writers::start(&cluster, 4, "leader crash");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = cluster.leader().await;
    cluster.kill(leader);
    acked.extend(append(&cluster, &client, "leader down", 20).await);
    cluster.spawn(leader);
    cluster.wait_for(leader, "/healthz").await;
    let during_leader_crash = writers.stop().await;
    assert!(
        during_leader_crash.len() >= 4,
        "writers acknowledged only {}",
        during_leader_crash.len()
    );
    acked.extend(during_leader_crash);

    // Then a follower, again under load.
    let writers = Writers::start(&cluster, 4, "follower crash");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower_of(leader);
    cluster.kill(follower);
    acked.extend(append(&cluster, &client, "follower down", 20).await);
    cluster.spawn(follower);
    cluster.wait_for(follower, "/readyz").await;
    acked.extend(writers.stop().await);
    check_agreement(&cluster, &acked).await;

    // A duplicate submission is answered with the existing entry.
    let (status, body) = cluster
        .request(
            "POST",
            1,
            "/api/v2/log/entries",
            Some(client.request(b"before 0")),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        verify_entry(&cluster.verifiers, &body).index,
        acked[0].index
    );

    // Restart everything: the log resumes at the same size and root.
    let before = cluster.checkpoint(cluster.leader().await).await;
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    for id in [1, 2, 3] {
        cluster.spawn(id);
    }
    for id in [1, 2, 3] {
        cluster.wait_for(id, "/readyz").await;
    }
    for id in [1, 2, 3] {
        let after = cluster.checkpoint(id).await;
        assert_eq!(
            (after.size, after.root),
            (before.size, before.root),
            "node {id} after restart"
        );
    }
    acked.extend(append(&cluster, &client, "after restart", 10).await);
    check_agreement(&cluster, &acked).await;
}

/// Posts `body` to node `id`'s `path` until it is answered with neither 503 nor 429.
async fn post_answered(cluster: &Cluster, id: u64, path: &str, body: &str) -> (u16, Bytes) {
    let started = Instant::now();
    loop {
        match cluster
            .request_as("POST", id, path, None, Some(body.to_string()))
            .await
        {
            Ok((status, answer)) if status != 503 && status != 429 => return (status, answer),
            _ => assert!(
                started.elapsed() < Duration::from_secs(60),
                "{path} on {id}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A follower relays only the verified leaf to the leader (in a batch, `/internal/appends`)
/// and answers the client itself from the leader's outcome: a v2 or v1 answer from a follower
/// verifies and is the very answer the leader gives (byte for byte, SET and v1 checkpoint
/// included), a duplicate through a follower gets the original index, the batch endpoint is
/// not on the public listener, and on a follower's cluster listener it forwards nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_answers_appends_as_the_leader_does() {
    let cluster = Cluster::start("relay", 3, 3).await;
    let client = Client::new(11);
    let leader = cluster.leader().await;
    let follower = cluster.follower_of(leader);

    // v2: created through the follower, verified; the same request again, through the leader
    // and through the follower, is the existing entry, answered alike.
    let v2 = client.request(b"relayed v2").to_string();
    let path = "/api/v2/log/entries";
    let (status, created) = post_answered(&cluster, follower, path, &v2).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&created));
    let acked = verify_entry(&cluster.verifiers, &created);
    let (status, by_leader) = post_answered(&cluster, leader, path, &v2).await;
    assert_eq!(status, 200);
    let (status, by_follower) = post_answered(&cluster, follower, path, &v2).await;
    assert_eq!(status, 200);
    assert_eq!(
        verify_entry(&cluster.verifiers, &by_follower).index,
        acked.index
    );
    assert_eq!(
        String::from_utf8_lossy(&by_follower),
        String::from_utf8_lossy(&by_leader)
    );
    let shape = |body: &[u8]| {
        let entry: serde_json::Value = serde_json::from_slice(body).unwrap();
        entry
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&created), shape(&by_leader));

    // v1: created through the follower; the leader's answer to the same request (409, the
    // entry at the same size) and its read of the entry are the follower's bytes.
    let v1 = common::v1_hashedrekord_request(&client.key, b"relayed v1").to_string();
    let path = "/api/v1/log/entries";
    let (status, created) = post_answered(&cluster, follower, path, &v1).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&created));
    let (status, by_leader) = post_answered(&cluster, leader, path, &v1).await;
    assert_eq!(status, 409);
    assert_eq!(
        String::from_utf8_lossy(&created),
        String::from_utf8_lossy(&by_leader)
    );
    let (status, by_follower) = post_answered(&cluster, follower, path, &v1).await;
    assert_eq!(status, 409);
    assert_eq!(created, by_follower);
    let entry: serde_json::Value = serde_json::from_slice(&created).unwrap();
    let index = entry.as_object().unwrap().values().next().unwrap()["logIndex"]
        .as_u64()
        .unwrap();
    let read = format!("/api/v1/log/entries?logIndex={index}");
    let (status, read_back) = cluster.request("GET", leader, &read, None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        read_back, created,
        "the leader reads the entry back otherwise"
    );
    // The SET and the inclusion proof verify (the checks of the crash test's v1 reads).
    let leaf = BASE64
        .decode(
            entry.as_object().unwrap().values().next().unwrap()["body"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let checkpoint = cluster.checkpoint(leader).await;
    check_v1_reads(
        &cluster,
        leader,
        leader,
        &[Acked {
            index,
            leaf,
            checkpoint,
        }],
    )
    .await;

    // The batch endpoint is not on the public listener: nobody outside the cluster can have a
    // leaf sequenced unverified.
    let forged = node::network::forward::encode_batch(&[node::network::forward::ForwardedLeaf {
        destination: node::network::forward::Destination::Family(node::types::LogName(
            "artifacts".into(),
        )),
        leaf: b"{\"forged\":true}".to_vec(),
        integrated_time: false,
    }])
    .unwrap();
    for id in [leader, follower] {
        let url = format!(
            "{}{}",
            cluster.urls[usize::try_from(id - 1).unwrap()],
            node::network::forward::APPENDS_PATH
        );
        let request = hyper::Request::post(url)
            .body(Full::new(Bytes::from(forged.clone())))
            .unwrap();
        let answer = cluster.http.request(request).await.unwrap();
        assert_eq!(answer.status(), 404, "node {id}");
    }

    // On a follower's cluster listener, a member's batch is never forwarded again: each leaf
    // is answered "no leader".
    let position = usize::try_from(follower - 1).unwrap();
    let member = cluster.member_client(leader);
    let request = hyper::Request::post(format!(
        "{}{}",
        cluster.cluster_urls[position],
        node::network::forward::APPENDS_PATH
    ))
    .body(Full::new(Bytes::from(forged)))
    .unwrap();
    let answer = member.request(request).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        node::network::forward::decode_answers(&body, 1).unwrap(),
        vec![node::network::forward::LeafAnswer::Failed(
            node::network::forward::Failure::NoLeader
        )]
    );

    // Concurrent appends through the follower share batches, and each client gets the answer
    // for its own entry.
    let appends = (0..48).map(|i| {
        let request = client
            .request(format!("concurrent {i}").as_bytes())
            .to_string();
        let (http, urls) = (cluster.http.clone(), cluster.urls.clone());
        tokio::spawn(async move {
            let path = "/api/v2/log/entries";
            loop {
                let answer = common::cluster::request_to(
                    &http,
                    &urls,
                    "POST",
                    follower,
                    path,
                    None,
                    Some(request.clone()),
                )
                .await;
                match answer {
                    Ok((201, body)) => return (i, body),
                    Ok((503 | 429, _)) | Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok((status, body)) => {
                        panic!("{status}: {}", String::from_utf8_lossy(&body))
                    }
                }
            }
        })
    });
    let mut indices = std::collections::BTreeSet::new();
    for append in appends.collect::<Vec<_>>() {
        let (i, body) = append.await.unwrap();
        let acked = verify_entry(&cluster.verifiers, &body);
        let logged: serde_json::Value = serde_json::from_slice(&acked.leaf).unwrap();
        let digest = Hash::digest(format!("concurrent {i}").as_bytes());
        assert_eq!(
            logged["spec"]["hashedRekordV002"]["data"]["digest"],
            digest.to_base64(),
            "append {i} was answered with another entry"
        );
        assert!(indices.insert(acked.index));
    }

    // The follower counted its batches and their leaves: fewer batches than leaves.
    let (_, metrics) = cluster
        .request("GET", follower, "/metrics", None)
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    let count = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let batches = count("cairn_forwarded_batches_total ");
    let leaves = count("cairn_forwarded_leaves_total ");
    assert!(leaves >= 52.0, "{leaves} leaves forwarded");
    assert!(batches < leaves, "{batches} batches for {leaves} leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_and_serves_the_same_tiles() {
    // Snapshots every 20 entries keeping 5: by the time the learner joins, the Raft log it
    // would need is purged, so it must install a snapshot (a descriptor) and fetch the leaves
    // from the members' entry bundles.
    fn snapshot_often(config: &mut toml::Table) {
        let raft = config["raft"].as_table_mut().unwrap();
        raft.insert("snapshot_every_entries".into(), 20.into());
        raft.insert("snapshot_keep_entries".into(), 5.into());
    }
    let mut cluster = Cluster::start_configured("learner", 4, 3, Some(snapshot_often)).await;
    let client = Client::new(9);
    // More than one full level-0 tile, so the learner must rebuild full and partial tiles.
    let mut acked = append(&cluster, &client, "early", 300).await;

    // The learner logs JSON lines (read back below).
    cluster.processes.set_env("CAIRN_LOG_FORMAT", "json");
    cluster.spawn(4);
    cluster.wait_for(4, "/healthz").await;
    let leader = cluster.leader().await;
    add_learner(&cluster, leader, 4).await;
    acked.extend(append(&cluster, &client, "late", 20).await);
    check_agreement(&cluster, &acked).await;

    let size = cluster.checkpoint(leader).await.size;
    for tile in tlog::tile::tiles_for_size(size) {
        let path = format!("/api/v2/{}", tile.path());
        let (leader_status, leader_tile) =
            cluster.request("GET", leader, &path, None).await.unwrap();
        let (learner_status, learner_tile) = cluster.request("GET", 4, &path, None).await.unwrap();
        assert_eq!((leader_status, learner_status), (200, 200), "{path}");
        assert_eq!(leader_tile, learner_tile, "{path} differs on the learner");
    }
    // A learner says so in its metrics, and the leader reports how far behind it is.
    let metric = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let (_, learner_metrics) = cluster.request("GET", 4, "/metrics", None).await.unwrap();
    let learner_metrics = String::from_utf8_lossy(&learner_metrics);
    assert_eq!(metric(&learner_metrics, "cairn_raft_is_learner"), Some(1.0));
    assert_eq!(metric(&learner_metrics, "cairn_raft_has_leader"), Some(1.0));
    assert!(metric(&learner_metrics, "cairn_data_disk_size_bytes").unwrap_or(0.0) > 0.0);
    let (_, leader_metrics) = cluster
        .request("GET", leader, "/metrics", None)
        .await
        .unwrap();
    let leader_metrics = String::from_utf8_lossy(&leader_metrics);
    assert!(
        metric(&leader_metrics, "cairn_raft_member_lag_entries{node=\"4\"}").is_some(),
        "{leader_metrics}"
    );
    // Every line of its log is a JSON object; the install's names the leaves it fetched.
    let log = std::fs::read_to_string(cluster.dir.join("node-4/node.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let installed = lines
        .iter()
        .find(|line| line["fields"]["message"] == "installed snapshot")
        .unwrap_or_else(|| panic!("the learner installed no snapshot:\n{log}"));
    let fetched = installed["fields"]["leaves_fetched"].as_u64().unwrap();
    assert!(
        fetched > 256,
        "the learner fetched only {fetched} leaves: {installed}"
    );
    // The search index is replicated state: the learner, which fetched most of its leaves
    // through snapshot catch-up, answers exactly as the voters do.
    for id in 1..=4 {
        check_search(&cluster, id, &client, &acked).await;
    }
    // Integrated times are replicated too: the learner fetched them from the members with the
    // leaves, so its Rekor v1 reads of entries from before it joined answer as the leader's do,
    // with an integratedTime and a SET that verifies.
    check_v1_reads(&cluster, leader, 4, &acked).await;
}

/// Runs `cairn-node` with `args` to completion, off the test's async workers.
async fn cairn_node(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let args: Vec<std::ffi::OsString> = args.iter().map(|arg| arg.as_ref().to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn-node"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The signed checkpoint node `id` serves, also written to `path` (a published checkpoint).
async fn save_checkpoint(cluster: &Cluster, id: u64, path: &std::path::Path) -> Checkpoint {
    let (status, body) = cluster
        .request("GET", id, "/api/v2/checkpoint", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    std::fs::write(path, &body).unwrap();
    tlog::checkpoint::open(&body, &cluster.verifiers)
        .unwrap()
        .checkpoint
}

/// Backs node `id` up into `backup` with `cairn-node backup`; returns the first log's (size,
/// bundles fetched) from the backup.json it wrote.
async fn take_backup(cluster: &Cluster, id: u64, backup: &std::path::Path) -> (u64, u64) {
    let out = cairn_node(&[
        &"backup",
        &"--config",
        &cluster.config(id),
        &"--out",
        &backup,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("backup.json")).unwrap()).unwrap();
    let log = &summary["logs"][0];
    assert_eq!(log["log"], "artifacts", "{summary}");
    (
        log["tree_size"].as_u64().unwrap(),
        log["bundles_fetched"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_running_cluster_restores_a_member_and_a_new_cluster() {
    let mut cluster = Cluster::start("backup", 4, 3).await;
    let client = Client::new(11);
    let mut acked = append(&cluster, &client, "before", 300).await;
    let leader = cluster.leader().await;

    // Taken from the running leader while clients keep appending.
    let backup = cluster.dir.join("backup");
    let writers = Writers::start(&cluster, 2, "during");
    let (first_size, fetched) = take_backup(&cluster, leader, &backup).await;
    acked.extend(writers.stop().await);
    assert!(first_size >= 300);
    assert_eq!(fetched, first_size.div_ceil(256));
    acked.extend(append(&cluster, &client, "after", 100).await);
    let published = cluster.dir.join("published");
    let latest = save_checkpoint(&cluster, leader, &published).await;

    // Node 4 has no data yet. A new cluster from this backup would sign smaller checkpoints
    // than the one just published: refused, and so is a new cluster with no published
    // checkpoint to compare with.
    let node_4 = cluster.config(4);
    // A refused restore writes no data.
    let dir = cluster.dir.clone();
    let refused_restore = async |config: &std::path::Path, data: &str, reason: &str| {
        let refused = cairn_node(&[
            &"restore",
            &"--config",
            &config,
            &"--backup",
            &backup,
            &"--new-cluster",
            &"--published",
            &published,
        ])
        .await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(reason),
            "{stderr}"
        );
        assert!(!dir.join(data).exists(), "a refused restore wrote {data}");
    };
    refused_restore(&node_4, "node-4/data", "roll the log back").await;
    let refused = cairn_node(&[
        &"restore",
        &"--config",
        &node_4,
        &"--backup",
        &backup,
        &"--new-cluster",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("--published"),
        "{stderr}"
    );

    // As a new member of the running cluster, node 4 gets from it what came after the backup.
    let out = cairn_node(&[&"restore", &"--config", &node_4, &"--backup", &backup]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.spawn(4);
    cluster.wait_for(4, "/healthz").await;
    add_learner(&cluster, leader, 4).await;
    check_agreement(&cluster, &acked).await;
    check_v1_reads(&cluster, leader, 4, &acked).await;

    // The next backup into the same directory fetches only the bundles that are new or were
    // partial; with no writes since the published checkpoint, it holds all of it.
    let (size, fetched) = take_backup(&cluster, leader, &backup).await;
    assert_eq!(size, latest.size.0);
    assert_eq!(fetched, size.div_ceil(256) - first_size / 256);
    let (_, v1_before) = cluster
        .request("GET", leader, "/api/v1/log/entries?logIndex=5", None)
        .await
        .unwrap();

    // Disaster: every node's data is lost; the backup and the published checkpoint remain.
    cluster.kill_all();
    for id in 1..=4 {
        let data = cluster.dir.join(format!("node-{id}/data"));
        std::fs::rename(&data, data.with_extension("lost")).unwrap();
    }
    // A backup whose leaves were altered does not restore: the roots are recomputed.
    let bundle = backup.join("logs/artifacts/tile/entries/000");
    let original = std::fs::read(&bundle).unwrap();
    let mut altered = original.clone();
    *altered.last_mut().unwrap() ^= 1;
    std::fs::write(&bundle, &altered).unwrap();
    refused_restore(&cluster.config(1), "node-1/data", "root").await;
    std::fs::write(&bundle, &original).unwrap();
    for id in 1..=3 {
        let out = cairn_node(&[
            &"restore",
            &"--config",
            &cluster.config(id),
            &"--backup",
            &backup,
            &"--new-cluster",
            &"--published",
            &published,
        ])
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cluster.form(3).await;
    let leader = cluster.leader().await;
    let restored = cluster.checkpoint(leader).await;
    assert_eq!((restored.size, restored.root), (latest.size, latest.root));
    // The log goes on from there: every earlier checkpoint is consistent with the new ones,
    // entries keep their index (a resubmission is a duplicate) and their integrated time.
    acked.extend(append(&cluster, &client, "restored", 5).await);
    assert_eq!(append(&cluster, &client, "before", 1).await[0].index, 0);
    let (_, v1_after) = cluster
        .request("GET", leader, "/api/v1/log/entries?logIndex=5", None)
        .await
        .unwrap();
    // The same entry with the same integrated time and SET (its proof is to a larger tree now).
    let entry = |answer: &[u8]| {
        let answer: serde_json::Value = serde_json::from_slice(answer).unwrap();
        let entry = answer.as_object().unwrap().values().next().unwrap().clone();
        let set = entry["verification"]["signedEntryTimestamp"].clone();
        (entry["body"].clone(), entry["integratedTime"].clone(), set)
    };
    assert_eq!(entry(&v1_after), entry(&v1_before));
    check_agreement(&cluster, &acked).await;
}

/// A data directory from before formats were numbered (format 1 of both databases), written by
/// `cairn-node dev --nodes 1` at commit 362da66 (tests/fixtures/format-1/README.md): this
/// version opens it, serves what it holds, records its format and appends after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_the_previous_format_opens_and_grows() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1");
    let nodes = common::cluster::Cluster::copy_of(&fixture, "format-1", 1);
    let mut verifiers = Verifiers::new();
    verifiers.push(nodes.log_signer().verifier()).unwrap();
    let mut cluster = Cluster { nodes, verifiers };
    cluster.spawn(1);
    cluster.wait_for(1, "/readyz").await;
    let old = cluster.checkpoint(1).await;
    assert_eq!(old.size.0, 4);
    assert_eq!(
        old.root,
        Hash::from_base64("rdqH+WkoX8gtJ8ys7SJ3TZNCTOIYbTf7UyN00KHC5Hs=").unwrap()
    );
    // Entry 3 was made with Rekor v1: its integrated time and SET are still served.
    let (status, body) = cluster
        .request("GET", 1, "/api/v1/log/entries?logIndex=3", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let entry = answer.as_object().unwrap().values().next().unwrap();
    assert!(
        entry["integratedTime"].as_u64().unwrap() > 1_700_000_000,
        "{entry}"
    );
    let client = Client::new(13);
    let acked = append(&cluster, &client, "after the upgrade", 3).await;
    assert_eq!(acked[0].index, 4);
    check_agreement(&cluster, &acked).await;
    let (status, body) = cluster
        .request(
            "GET",
            1,
            "/logs/artifacts/proof/consistency?old=4&new=7",
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let proof: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let hashes = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    let new = cluster.checkpoint(1).await;
    tlog::ConsistencyProof {
        old_size: old.size,
        new_size: new.size,
        hashes,
    }
    .verify(&old.root, &new.root)
    .unwrap();
    // Restarted, it opens what it wrote in its own format.
    cluster.kill(1);
    cluster.spawn(1);
    cluster.wait_for(1, "/readyz").await;
    assert_eq!(cluster.checkpoint(1).await.size, new.size);
}

/// Asks the `leader` to add node `id` as a learner.
async fn add_learner(cluster: &Cluster, leader: u64, id: u64) {
    let mut learner = cluster.address(id);
    learner["id"] = id.into();
    let (status, body) = cluster
        .request("POST", leader, "/admin/learners", Some(learner))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// Node `id` answers Rekor v1 entry reads byte for byte as node `reference` does, for entries
/// across the whole log, each with a SET that verifies with the log key.
async fn check_v1_reads(cluster: &Cluster, reference: u64, id: u64, acked: &[Acked]) {
    use ed25519_dalek::Verifier as _;

    let (status, pem) = cluster
        .request("GET", id, "/api/v1/log/publicKey", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let spki: String = String::from_utf8_lossy(&pem)
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let spki = BASE64.decode(spki).unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&spki[12..].try_into().unwrap()).unwrap();
    for acked in acked.iter().step_by(23) {
        let path = format!("/api/v1/log/entries?logIndex={}", acked.index);
        let (status, answer) = cluster.request("GET", id, &path, None).await.unwrap();
        assert_eq!(
            status,
            200,
            "node {id}: {}",
            String::from_utf8_lossy(&answer)
        );
        let (_, expected) = cluster
            .request("GET", reference, &path, None)
            .await
            .unwrap();
        assert_eq!(answer, expected, "node {id} answers {path} otherwise");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        let entry = answer.as_object().unwrap().values().next().unwrap();
        let time = entry["integratedTime"].as_u64().unwrap();
        assert!(time > 1_700_000_000, "{entry}");
        let payload = format!(
            r#"{{"body":"{}","integratedTime":{time},"logID":"{}","logIndex":{}}}"#,
            entry["body"].as_str().unwrap(),
            entry["logID"].as_str().unwrap(),
            acked.index
        );
        let set = BASE64
            .decode(
                entry["verification"]["signedEntryTimestamp"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let set = ed25519_dalek::Signature::from_slice(&set).unwrap();
        key.verify(payload.as_bytes(), &set)
            .unwrap_or_else(|_| panic!("node {id}: the SET of entry {} fails", acked.index));
    }
}

/// Node `id`'s search index finds every acknowledged entry by its digest and by the key that
/// signed it (all of `acked` were signed by `client`), completely, through both endpoints.
async fn check_search(cluster: &Cluster, id: u64, client: &Client, acked: &[Acked]) {
    let uuid = |leaf: &[u8]| hex::encode(tlog::leaf_hash(leaf).as_bytes());
    let digest = |leaf: &[u8]| match tlog::entry::Entry::parse(leaf).unwrap() {
        tlog::entry::Entry::HashedRekordV002(entry) => hex::encode(entry.digest().as_bytes()),
        other => panic!("unexpected entry {other:?}"),
    };
    let post = |body: serde_json::Value| async move {
        let (status, bytes) = cluster
            .request("POST", id, "/api/v1/index/retrieve", Some(body))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or(text.into()),
        )
    };
    // By digest, with and without the algorithm, a few entries across the whole log.
    for acked in acked.iter().step_by(37) {
        let hex = digest(&acked.leaf);
        for hash in [format!("sha256:{hex}"), hex.to_uppercase()] {
            let (status, found) = post(serde_json::json!({ "hash": hash })).await;
            assert_eq!(status, 200, "node {id}: {found}");
            assert_eq!(found, serde_json::json!([uuid(&acked.leaf)]), "node {id}");
        }
    }
    // By key: every entry, in log order, on every node.
    let pem = tlog::entry::KeyMaterial::from_public_key_der(&client.spki)
        .unwrap()
        .to_pem();
    let mut all: Vec<&Acked> = acked.iter().collect();
    all.sort_by_key(|acked| acked.index);
    let expected: Vec<String> = all.iter().map(|acked| uuid(&acked.leaf)).collect();
    let (status, found) = post(serde_json::json!({
        "publicKey": { "format": "x509", "content": BASE64.encode(&pem) }
    }))
    .await;
    assert_eq!(status, 200, "node {id}: {found}");
    assert_eq!(
        found,
        serde_json::json!(expected),
        "node {id}: search by key"
    );
    // "and" narrows to the one entry with both; "or" with an unknown digest changes nothing.
    let first = all[0];
    let (status, found) = post(serde_json::json!({
        "publicKey": { "format": "x509", "content": pem },
        "hash": format!("sha256:{}", digest(&first.leaf)),
        "operator": "and",
    }))
    .await;
    assert_eq!(status, 200, "node {id}: {found}");
    assert_eq!(found, serde_json::json!([uuid(&first.leaf)]), "node {id}");
    let (status, found) =
        post(serde_json::json!({ "hash": format!("sha256:{}", "0".repeat(64)) })).await;
    assert_eq!((status, found), (200, serde_json::json!([])), "node {id}");
    // Bad input is a 400 naming the problem.
    let (status, found) = post(serde_json::json!({ "hash": "sha256:abc" })).await;
    assert_eq!(status, 400, "node {id}: {found}");
    assert_eq!(found["code"], "invalid_hash");
    let (status, _) = post(serde_json::json!({})).await;
    assert_eq!(status, 400);

    // Paged: 100 at a time with a cursor, the same entries with their indices.
    let key_hash = hex::encode(tlog::Hash::digest(pem.as_bytes()).as_bytes());
    let mut after: Option<u64> = None;
    let mut paged = Vec::new();
    loop {
        let mut path = format!("/api/v1/cairn/index?publicKeyHash={key_hash}&limit=100");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let (status, body) = cluster.request("GET", id, &path, None).await.unwrap();
        assert_eq!(status, 200, "node {id}: {}", String::from_utf8_lossy(&body));
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 100);
        for entry in entries {
            paged.push((
                entry["logIndex"].as_u64().unwrap(),
                entry["uuid"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<(u64, String)> = all
        .iter()
        .map(|acked| (acked.index, uuid(&acked.leaf)))
        .collect();
    assert_eq!(paged, expected, "node {id}: paged search by key");
    // Bad pages are refused, naming the parameter.
    for (query, status) in [
        (format!("publicKeyHash={key_hash}&limit=0"), 400),
        (format!("publicKeyHash={key_hash}&limit=1001"), 400),
        (format!("publicKeyHash={key_hash}&identity=a@b.c"), 400),
        ("identity=".to_owned(), 400),
        ("hash=sha256:12".to_owned(), 400),
        ("after=1".to_owned(), 400),
        ("log=nope&identity=a@b.c".to_owned(), 404),
    ] {
        let path = format!("/api/v1/cairn/index?{query}");
        let (got, body) = cluster.request("GET", id, &path, None).await.unwrap();
        assert_eq!(got, status, "{path}: {}", String::from_utf8_lossy(&body));
    }
}
