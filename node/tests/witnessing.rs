//! Witnessing in front of a cluster: three real `cairn-node` processes and three witnesses (the
//! `witness` crate's server, in this process, over loopback), with a 2-of-3 tlog-policy.
//!
//! Goal: a checkpoint is published (served, and returned with appends) only with a witness
//! quorum. Method: appends while all three witnesses run carry two or three cosignatures and
//! satisfy the policy as `cairn verify --witness-policy` checks it; with one witness stopped
//! appends still succeed; with two stopped they fail (503) and the published checkpoint does not
//! move (fail-closed); with one back, publication resumes. Then the log is "restored from an old
//! backup" (its data wiped, the same key): the witnesses answer 409 with their larger size and
//! the log publishes nothing smaller; with `fail_open` it publishes anyway, loudly. Rekor v1
//! reads and appends see only the published tree too.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use tlog::Hash;
use tlog::keys::Cosigner;
use tlog::policy::Policy;
use witness::config::Logs;
use witness::storage::RedbStore;
use witness::{Store, Witness};

use common::free_port;

/// One witness: its directory survives restarts; its server can be stopped.
struct TestWitness {
    dir: tempfile::TempDir,
    port: u16,
    logs: Logs,
    seed: u8,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestWitness {
    fn cosigner(&self) -> Cosigner {
        Cosigner::new(
            &format!("witness.test/w{}", self.seed),
            ed25519_dalek::SigningKey::from_bytes(&[self.seed; 32]),
        )
        .unwrap()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&self.dir.path().join("witness.redb")).unwrap());
        let witness = Arc::new(Witness::new(self.cosigner(), self.logs.clone(), store));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(witness::server::serve(
            listener,
            witness,
            async move {
                let _ = stopped.await;
            },
        )));
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

/// The node processes, with witnessing configured on them.
struct Cluster(common::cluster::Cluster);

// The tests use the processes' API (request, kill, ...) as the cluster's own.
impl std::ops::Deref for Cluster {
    type Target = common::cluster::Cluster;

    fn deref(&self) -> &common::cluster::Cluster {
        &self.0
    }
}

impl Cluster {
    fn init(name: &str, nodes: usize) -> Cluster {
        Cluster(common::cluster::Cluster::init(
            "witnessing",
            name,
            nodes,
            &[],
        ))
    }

    /// Adds a `[witnessing]` section to every node's config.
    fn configure_witnessing(&self, policy: &str, fail_open: bool) {
        let policy_path = self.dir.join("witness-policy.txt");
        std::fs::write(&policy_path, policy).unwrap();
        for id in 1..=self.urls.len() as u64 {
            self.edit_config(id, |config| {
                let mut section = toml::Table::new();
                section.insert(
                    "policy_file".into(),
                    toml::Value::String(policy_path.display().to_string()),
                );
                section.insert("append_timeout_ms".into(), toml::Value::Integer(2_000));
                section.insert("fail_open".into(), toml::Value::Boolean(fail_open));
                config.insert("witnessing".into(), toml::Value::Table(section));
            });
        }
    }

    /// Starts every node and makes them the cluster.
    async fn start(&mut self) {
        let nodes = self.urls.len();
        self.0.form(nodes).await;
    }

    fn stop(&mut self) {
        self.0.kill_all();
    }

    /// Appends one hashedrekord through node `id`; the status and the response body.
    async fn append(&self, id: u64, artifact: &[u8]) -> (u16, serde_json::Value) {
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let digest = Hash::digest(artifact);
        let signature: p256::ecdsa::Signature = key.sign_prehash(digest.as_bytes()).unwrap();
        let request = serde_json::json!({
            "hashedRekordRequestV002": {
                "digest": BASE64.encode(digest.as_bytes()),
                "signature": {
                    "content": BASE64.encode(signature.to_der().as_bytes()),
                    "verifier": {
                        "publicKey": { "rawBytes": BASE64.encode(spki.as_bytes()) },
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256"
                    }
                }
            }
        });
        let (status, body) = self
            .request("POST", id, "/api/v2/log/entries", Some(request))
            .await
            .unwrap();
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// Appends one Rekor v1 hashedrekord through node `id`; the status and the response body.
    async fn append_v1(&self, id: u64, artifact: &[u8]) -> (u16, serde_json::Value) {
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let request = common::v1_hashedrekord_request(&key, artifact);
        let (status, body) = self
            .request("POST", id, "/api/v1/log/entries", Some(request))
            .await
            .unwrap();
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    async fn checkpoint(&self, id: u64) -> (u16, String) {
        let (status, body) = self
            .request("GET", id, "/api/v2/checkpoint", None)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// The checkpoint of an append response, checked against the policy; the cosigners.
fn cosigners(policy: &Policy, entry: &serde_json::Value) -> Vec<String> {
    let note = entry["inclusionProof"]["checkpoint"]["envelope"]
        .as_str()
        .unwrap();
    let size: u64 = entry["inclusionProof"]["treeSize"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let verified = policy.verify_checkpoint(note.as_bytes()).unwrap();
    assert_eq!(verified.checkpoint.size.0, size);
    let mut names = client::witnessed::check_checkpoint(note, policy).unwrap();
    names.sort();
    names
}

fn size_of(note: &str) -> u64 {
    let note = tlog::note::Note::parse(note.as_bytes()).unwrap();
    tlog::checkpoint::Checkpoint::parse(note.text())
        .unwrap()
        .size
        .0
}

/// Mean milliseconds of `count` sequential appends through node 1.
async fn append_ms(cluster: &Cluster, tag: &str, count: u64) -> f64 {
    let started = Instant::now();
    for i in 0..count {
        let (status, entry) = cluster.append(1, format!("{tag} {i}").as_bytes()).await;
        assert_eq!(status, 201, "{entry}");
    }
    started.elapsed().as_secs_f64() * 1000.0 / count as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publication_needs_a_two_of_three_witness_quorum() {
    // The baseline for the latency witnessing adds: the same appends without witnesses.
    let baseline_ms = {
        let mut plain = Cluster::init("plain", 3);
        plain.start().await;
        append_ms(&plain, "plain", 10).await
    };
    let mut cluster = Cluster::init("quorum", 3);
    let log_vkey = cluster.log_signer().verifier().to_vkey();
    let logs = Logs::from_policy_text(&format!("log {log_vkey}\n")).unwrap();
    let mut witnesses = Vec::new();
    for seed in 1..=3u8 {
        let mut witness = TestWitness {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            logs: logs.clone(),
            seed,
            stop: None,
            server: None,
        };
        witness.start().await;
        witnesses.push(witness);
    }
    let mut policy_text = format!("log {log_vkey}\n");
    for (i, witness) in witnesses.iter().enumerate() {
        policy_text.push_str(&format!(
            "witness w{} {} {}\n",
            i + 1,
            witness.cosigner().verifier().to_vkey(),
            witness.url()
        ));
    }
    policy_text.push_str("group two-of-three 2 w1 w2 w3\nquorum two-of-three\n");
    let policy = Policy::parse(&policy_text).unwrap();
    cluster.configure_witnessing(&policy_text, false);
    cluster.start().await;

    // All three up: every append's checkpoint meets the quorum, through any node.
    for i in 0..3u64 {
        let (status, entry) = cluster
            .append(1 + i % 3, format!("all {i}").as_bytes())
            .await;
        assert_eq!(status, 201, "{entry}");
        assert!(cosigners(&policy, &entry).len() >= 2);
    }
    for id in 1..=3 {
        let (status, note) = cluster.checkpoint(id).await;
        assert_eq!(status, 200, "{note}");
        client::witnessed::check_checkpoint(&note, &policy).unwrap();
    }
    // The added latency: sequential appends, and the witnessing rounds behind them.
    let append_ms = append_ms(&cluster, "timed", 10).await;
    let (_, metrics) = cluster.request("GET", 1, "/metrics", None).await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap()
    };
    let rounds = metric("cairn_witness_cosign_seconds_count");
    let cosign_ms = metric("cairn_witness_cosign_seconds_sum") * 1000.0 / rounds;
    eprintln!(
        "witnessed appends (debug build, 3 witnesses, 2-of-3): {append_ms:.1} ms per sequential \
         append, {baseline_ms:.1} ms without witnesses; witnessing round {cosign_ms:.1} ms on \
         average over {rounds} rounds"
    );

    // One witness down: still published, now with exactly the two others.
    witnesses[2].stop().await;
    for i in 0..2u64 {
        let (status, entry) = cluster.append(1, format!("two {i}").as_bytes()).await;
        assert_eq!(status, 201, "{entry}");
        assert_eq!(cosigners(&policy, &entry), vec!["w1", "w2"]);
    }
    let (_, before) = cluster.checkpoint(1).await;
    let published_size = size_of(&before);
    assert_eq!(published_size, 15);

    // Two down: the entry is committed but no checkpoint covering it is published.
    witnesses[1].stop().await;
    let (status, entry) = cluster.append(1, b"one witness left").await;
    assert_eq!(
        (status, entry["code"].as_str()),
        (503, Some("not_witnessed")),
        "{entry}"
    );
    // Rekor v1 serves and proves against the published tree only, and its appends wait for a
    // cosigned checkpoint as v2's do.
    let (status, info) = cluster
        .request("GET", 1, "/api/v1/log", None)
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(
        (status, info["treeSize"].as_u64()),
        (200, Some(published_size)),
        "{info}"
    );
    let (status, _) = cluster
        .request(
            "GET",
            1,
            &format!("/api/v1/log/entries?logIndex={published_size}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 404, "an entry beyond the published tree was served");
    let (status, entry) = cluster
        .request("GET", 1, "/api/v1/log/entries?logIndex=0", None)
        .await
        .unwrap();
    let entry: serde_json::Value = serde_json::from_slice(&entry).unwrap();
    let proof =
        &entry.as_object().unwrap().values().next().unwrap()["verification"]["inclusionProof"];
    assert_eq!(
        (status, proof["treeSize"].as_u64()),
        (200, Some(published_size)),
        "{entry}"
    );
    let (status, entry) = cluster.append_v1(1, b"v1 with one witness left").await;
    assert_eq!(
        (status, entry["code"].as_str()),
        (503, Some("not_witnessed")),
        "{entry}"
    );
    for id in 1..=3 {
        let (status, note) = cluster.checkpoint(id).await;
        assert_eq!(status, 200);
        // A follower may not have reached size 15 before the witnesses went; none goes past it.
        assert!(
            size_of(&note) <= published_size,
            "published without a quorum"
        );
    }

    // One back (restarted on its state): publication resumes, from its remembered size.
    witnesses[1].start().await;
    let (status, entry) = cluster.append(2, b"quorum again").await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(cosigners(&policy, &entry), vec!["w1", "w2"]);

    // Restored from an old backup: the same key, the data gone. The witnesses hold size 18.
    witnesses[2].start().await;
    cluster.stop();
    for id in 1..=3 {
        std::fs::remove_dir_all(cluster.dir.join(format!("node-{id}/data"))).unwrap();
    }
    cluster.start().await;
    let (status, entry) = cluster.append(1, b"after restore").await;
    assert_eq!(
        (status, entry["code"].as_str()),
        (503, Some("not_witnessed")),
        "a smaller tree was published: {entry}"
    );
    let (status, _) = cluster.checkpoint(1).await;
    assert_eq!(status, 503);
    // And the leader said why, loudly.
    let alarmed = (1..=3).any(|id| {
        std::fs::read_to_string(cluster.dir.join(format!("node-{id}/node.log")))
            .unwrap()
            .contains("LARGER tree")
    });
    assert!(alarmed, "no restore alarm in the nodes' logs");

    // Fail-open (bring-up only): the same situation publishes, and says so.
    cluster.stop();
    for id in 1..=3 {
        std::fs::remove_dir_all(cluster.dir.join(format!("node-{id}/data"))).unwrap();
    }
    cluster.configure_witnessing(&policy_text, true);
    cluster.start().await;
    let (status, entry) = cluster.append(1, b"fail open").await;
    assert_eq!(status, 201, "{entry}");
    let warned = (1..=3).any(|id| {
        std::fs::read_to_string(cluster.dir.join(format!("node-{id}/node.log")))
            .unwrap()
            .contains("WITNESSING FAIL-OPEN: publishing")
    });
    assert!(warned, "no fail-open warning in the nodes' logs");
    for witness in &mut witnesses {
        witness.stop().await;
    }
}
