//! The scale benchmark's fill writes the state the node itself would (`cairn-bench fill` on a
//! stopped one-node `cairn-node dev` cluster, read back over the public API), and `cairn-bench
//! scale` runs end to end at small sizes. No timing is asserted.
//!
//! Both need the `cairn-node` binary of the same build next to `cairn-bench`:
//! `cargo build -p node --bin cairn-node` (a workspace build, as `scripts/test` runs, makes it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tlog::MemoryTree;

fn bench_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn-bench"))
}

fn node_bin() -> PathBuf {
    let path = bench_bin().with_file_name("cairn-node");
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build -p node --bin cairn-node` (same profile)",
        path.display()
    );
    path
}

/// `cairn-node dev` with one node in `dir` on `port` (`node::dev_process`: created, or resumed
/// with its data), stopped with SIGTERM on drop.
fn dev(dir: &Path, port: u16) -> node::dev_process::DevProcess {
    let options = node::dev_process::DevOptions {
        base_port: port,
        env: vec![("RUST_LOG".into(), "warn".into())],
        log: dir.join("dev.log"),
        ready_within: Duration::from_secs(120),
        ..node::dev_process::DevOptions::new(&node_bin(), dir, 1)
    };
    node::dev_process::DevProcess::start(options).unwrap()
}

/// A GET with the node library's client: (status, body).
async fn get(url: &str) -> (u16, Vec<u8>) {
    let (client, timeout) = (node::network::http_client(), Duration::from_secs(30));
    let answer = node::network::call(&client, "GET", url, None, String::new(), timeout).await;
    let (status, body) = answer.unwrap();
    (status, body.to_vec())
}

fn run_fill(dir: &Path, args: &str) -> bool {
    let mut command = Command::new(bench_bin());
    command
        .arg("fill")
        .args(args.split_whitespace())
        .arg("--dir")
        .arg(dir);
    command.status().unwrap().success()
}

#[tokio::test]
async fn fill_stores_exactly_the_entries_it_signed_and_a_verifiable_checkpoint() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("dev");
    std::fs::create_dir_all(&dir).unwrap();
    let port = node::dev_process::free_base_port(1).unwrap();
    drop(dev(&dir, port));

    // 2,500 entries in batches of 1,000: two full batches and a short one.
    let json = dir.join("fill.json");
    let settings = format!(
        "--to 2500 --batch 1000 --in-flight 2 --json {}",
        json.display()
    );
    assert!(run_fill(&dir, &settings));
    let fill: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(fill["from"], 0);
    assert_eq!(fill["to"], 2500);
    assert_eq!(fill["checkpoints"].as_array().unwrap().len(), 3);

    // A fill to a smaller size than the log has is refused, and changes nothing.
    assert!(!run_fill(&dir, "--to 100"));

    // The restarted node serves what the fill wrote; everything is checked from outside.
    let dev = dev(&dir, port);
    let json = dev.cluster_json().unwrap();
    let url = json["nodes"][0]["url"].as_str().unwrap().to_string();
    let logs = json["logs"].as_array().unwrap();
    let log = logs.iter().find(|log| log["name"] == "artifacts").unwrap();
    let vkey = log["verifier_key"].as_str().unwrap();
    let verifier = tlog::keys::Verifier::parse(vkey).unwrap();
    let verifiers = tlog::keys::Verifiers::from_verifiers([verifier]).unwrap();
    let (status, body) = get(&format!("{url}/api/v2/checkpoint")).await;
    assert_eq!(status, 200);
    let signed = tlog::checkpoint::open(&body, &verifiers).unwrap();
    assert_eq!(signed.checkpoint.size.0, 2500);
    // The last checkpoint the fill got is the one the node serves.
    assert_eq!(
        fill["checkpoints"][2].as_str().unwrap().as_bytes(),
        &body[..]
    );

    let mut tree = MemoryTree::new();
    let mut seen = std::collections::BTreeSet::new();
    for index in 0..2500 {
        let (status, leaf) = get(&format!("{url}/api/v2/entries/{index}")).await;
        assert_eq!(status, 200, "entry {index}");
        // Canonical, as the node's own v2 path stores it.
        tlog::entry::CanonicalBody::parse(&leaf).unwrap();
        let hash = tlog::leaf_hash(&leaf);
        assert!(seen.insert(hash.0), "entry {index} is a duplicate");
        tree.append(hash).unwrap();
    }
    assert_eq!(
        tree.root(),
        signed.checkpoint.root,
        "the leaves give the signed root"
    );
    let (status, _) = get(&format!("{url}/api/v2/entries/2500")).await;
    assert_eq!(status, 404);
}

#[test]
fn scale_runs_end_to_end_at_small_sizes() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("scale.json");
    let settings = "scale --nodes 1 --sizes 3000,6000 --proofs 40 --proof-clients 2 --clients 4 \
                    --duration 1 --warmup 0.5 --fill-batch 1000";
    let status = Command::new(bench_bin())
        .args(settings.split_whitespace())
        .arg("--node-bin")
        .arg(node_bin())
        .arg("--data-dir")
        .arg(temp.path())
        .arg("--json")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for (point, size) in points.iter().zip([3000u64, 6000]) {
        let entries = point["entries"].as_u64().unwrap();
        assert!(entries >= size, "{entries} < {size}");
        assert_eq!(point["fill"]["to"].as_u64().unwrap(), entries);
        assert!(point["disk"]["state_bytes_per_entry"].as_f64().unwrap() > 0.0);
        assert_eq!(point["proofs"]["inclusion"]["count"], 40);
        assert_eq!(point["proofs"]["consistency"]["count"], 40);
        let catch_up = &point["catch_up"];
        assert_eq!(catch_up["tree_size"].as_u64().unwrap(), entries);
        assert!(catch_up["state_bytes"].as_u64().unwrap() > 0);
        assert!(point["entries_after_appends"].as_u64().unwrap() >= entries);
    }
    // The cluster directory is removed unless --keep-data.
    let names = std::fs::read_dir(temp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name());
    let ours = |name: &std::ffi::OsString| name.to_string_lossy().starts_with("cairn-bench-scale");
    let left: Vec<_> = names.filter(ours).collect();
    assert!(left.is_empty(), "{left:?}");
}
