//! Log rotation with the real binaries (issue 21, point 1): a `cairn-node dev` cluster signs
//! two bundles (Rekor v1 and v2), `cairn-node log prepare` adds the successor to every config,
//! the cluster restarts with it, and `cairn-node log rotate` freezes the artifact log and opens
//! the successor through the leader. Then: appends to the frozen log are refused with 409
//! `log_frozen` naming the successor; its checkpoint is the final one, and its reads, proofs,
//! search and Rekor v1 reads still answer; the trusted root lists both logs, the frozen one with
//! the end of its window; bundles signed after the rotation are in the successor; and every
//! bundle, from before and after, verifies with `cairn verify`.
//!
//! Needs the `cairn` binary next to `cairn-node`: run with `cargo test -p node -p client`.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod dev_cluster;

use dev_cluster::{Dev, NODE_BIN, cairn, get_json, request, text};

/// Signs `name` (with `contents`) through `url`, over Rekor v1 or the signing config's v2:
/// the artifact and its bundle.
fn sign(home: &Path, dir: &Path, url: &str, name: &str, v1: bool) -> (PathBuf, PathBuf) {
    let artifact = dir.join(name);
    std::fs::write(&artifact, format!("{name} contents\n")).unwrap();
    let mut args = vec!["sign", "--url", url];
    if v1 {
        args.extend(["--rekor-version", "1"]);
    }
    args.push(artifact.to_str().unwrap());
    let signed = cairn(home, &args);
    assert!(signed.status.success(), "{}", text(&signed));
    let bundle = dir.join(format!("{name}.sigstore.json"));
    assert!(bundle.exists(), "{}", text(&signed));
    (artifact, bundle)
}

/// The log id of a bundle's entry, base64.
fn bundle_log_id(bundle: &Path) -> String {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    value["verificationMaterial"]["tlogEntries"][0]["logId"]["keyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn node_command(args: &[&str]) -> std::process::Output {
    Command::new(NODE_BIN).args(args).output().unwrap()
}

#[test]
fn a_rotated_log_stays_verifiable_and_its_successor_takes_the_appends() {
    let temp = tempfile::tempdir().unwrap();
    let cluster = temp.path().join("cluster");
    let home = temp.path().join("home");
    let dev = Dev::start(&cluster);
    let issuer = dev.issuer();
    let login = cairn(
        &home,
        &[
            "login",
            "--dev",
            "alice@example.com",
            "--dev-issuer",
            &issuer,
        ],
    );
    assert!(login.status.success(), "{}", text(&login));

    // Before: one bundle over Rekor v1 (with a signed entry timestamp), one over v2 (with an
    // RFC 3161 timestamp).
    let before_v1 = sign(&home, temp.path(), &dev.url(1), "before-v1.txt", true);
    let before_v2 = sign(&home, temp.path(), &dev.url(2), "before-v2.txt", false);

    // The successor, in every config, then a restart of the cluster with it.
    let prepared = node_command(&[
        "log",
        "prepare",
        "--dir",
        cluster.to_str().unwrap(),
        "--log",
        "artifacts",
    ]);
    assert!(prepared.status.success(), "{}", text(&prepared));
    assert!(cluster.join("keys/artifacts-2.key").exists());
    dev.0.stop();
    let dev = Dev::start(&cluster);
    let logs = get_json(&format!("{}/logs", dev.url(0)));
    let state = |logs: &serde_json::Value, name: &str| {
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|log| log["name"] == name)
            .unwrap_or_else(|| panic!("no log {name} in {logs}"))
            .clone()
    };
    let waiting = state(&logs, "artifacts-2");
    assert_eq!(waiting["state"], "waiting");
    assert_eq!(waiting["origin"], "artifacts-2.cairn.localhost");
    // A waiting successor takes nothing yet.
    let request_body = std::fs::read("../docs/examples/hashedrekord-request.json").unwrap();
    let (status, body) = request(
        "POST",
        &format!("{}/logs/artifacts-2/entries", dev.url(0)),
        &request_body,
    );
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("log_not_open"));

    // The rotation, through node 3 (the command finds the leader).
    let rotated = node_command(&[
        "log",
        "rotate",
        "--url",
        &dev.url(2),
        "--admin-token-file",
        cluster.join("admin-token").to_str().unwrap(),
        "--log",
        "artifacts",
    ]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    let answer: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(answer["frozen"]["name"], "artifacts");
    assert_eq!(answer["frozen"]["final_size"], 2);
    assert_eq!(answer["opened"]["name"], "artifacts-2");
    let final_checkpoint = answer["frozen"]["final_checkpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second rotation of the frozen log is refused.
    let again = node_command(&[
        "log",
        "rotate",
        "--url",
        &dev.url(0),
        "--admin-token-file",
        cluster.join("admin-token").to_str().unwrap(),
        "--log",
        "artifacts",
    ]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("frozen"),
        "{}",
        text(&again)
    );

    // Every node agrees, and refuses appends to the frozen log, naming its successor.
    for node in 0..3 {
        let logs = get_json(&format!("{}/logs", dev.url(node)));
        let frozen = state(&logs, "artifacts");
        assert_eq!(frozen["state"], "frozen", "node {node}: {logs}");
        assert_eq!(frozen["successor"], "artifacts-2");
        assert_eq!(state(&logs, "artifacts-2")["state"], "open");
        let (status, body) = request(
            "POST",
            &format!("{}/logs/artifacts/entries", dev.url(node)),
            &request_body,
        );
        assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["code"], "log_frozen");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("artifacts is frozen") && message.contains("artifacts-2"));
        // Reads of the frozen log: its checkpoint is the final one, proofs and entries answer.
        let (status, checkpoint) = request(
            "GET",
            &format!("{}/logs/artifacts/checkpoint", dev.url(node)),
            b"",
        );
        assert_eq!(
            (status, String::from_utf8(checkpoint).unwrap()),
            (200, final_checkpoint.clone())
        );
        let proof = get_json(&format!(
            "{}/logs/artifacts/proof/inclusion?index=1&tree_size=2",
            dev.url(node)
        ));
        assert_eq!(proof["leaf_index"], 1);
        let v1 = get_json(&format!(
            "{}/logs/artifacts/api/v1/log/entries?logIndex=0",
            dev.url(node)
        ));
        let uuid = v1.as_object().unwrap().keys().next().unwrap().clone();
        // The root v1 API finds the frozen log's entry by UUID, and search finds it by hash.
        let by_uuid = get_json(&format!("{}/api/v1/log/entries/{uuid}", dev.url(node)));
        assert!(by_uuid.get(&uuid).is_some(), "{by_uuid}");
    }
    let digest = tlog::entry::Digest::sha256(b"before-v1.txt contents\n").to_hex();
    let (status, found) = request(
        "POST",
        &format!("{}/api/v1/index/retrieve", dev.url(0)),
        serde_json::json!({ "hash": format!("sha256:{digest}") })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&found));
    let found: serde_json::Value = serde_json::from_slice(&found).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");

    // The trusted root lists both logs (v1 and C2SP identities each), the frozen one with an
    // end to its window, the successor from its opening; then the certificate log (its C2SP
    // identity), open.
    let root_json = get_json(&format!("{}/trust/trusted_root.json", dev.url(0)));
    let tlogs = root_json["tlogs"].as_array().unwrap();
    assert_eq!(tlogs.len(), 5, "{root_json}");
    for (position, tlog) in tlogs.iter().enumerate() {
        let window = &tlog["publicKey"]["validFor"];
        let frozen = position < 2;
        assert_eq!(window.get("end").is_some(), frozen, "{tlog}");
        let host = match position {
            0 | 1 => "artifacts.",
            2 | 3 => "artifacts-2.",
            _ => "certificates.",
        };
        assert!(tlog["baseUrl"].as_str().unwrap().contains(host), "{tlog}");
    }
    let root = temp.path().join("trusted_root.json");
    std::fs::write(&root, serde_json::to_vec_pretty(&root_json).unwrap()).unwrap();

    // After: both APIs write to the successor.
    let after_v1 = sign(&home, temp.path(), &dev.url(0), "after-v1.txt", true);
    let after_v2 = sign(&home, temp.path(), &dev.url(1), "after-v2.txt", false);
    let log_ids: Vec<String> = tlogs
        .iter()
        .map(|tlog| tlog["logId"]["keyId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bundle_log_id(&before_v1.1), log_ids[0]);
    assert_eq!(bundle_log_id(&before_v2.1), log_ids[1]);
    assert_eq!(bundle_log_id(&after_v1.1), log_ids[2]);
    assert_eq!(bundle_log_id(&after_v2.1), log_ids[3]);

    // Every bundle verifies offline with the trusted root that lists both logs.
    for (artifact, bundle) in [&before_v1, &before_v2, &after_v1, &after_v2] {
        let verified = cairn(
            &home,
            &[
                "verify",
                artifact.to_str().unwrap(),
                "--bundle",
                bundle.to_str().unwrap(),
                "--cert-identity",
                "alice@example.com",
                "--cert-oidc-issuer",
                &issuer,
                "--trust-root",
                root.to_str().unwrap(),
            ],
        );
        assert!(
            verified.status.success(),
            "{}: {}",
            bundle.display(),
            text(&verified)
        );
    }
    // The frozen log's window ends: a trusted root that ends it before the entry's time
    // refuses the bundle made before the rotation.
    let mut early = root_json.clone();
    for tlog in early["tlogs"].as_array_mut().unwrap().iter_mut().take(2) {
        tlog["publicKey"]["validFor"]["end"] = serde_json::json!("2000-01-01T00:00:00Z");
    }
    let early_root = temp.path().join("early-root.json");
    std::fs::write(&early_root, serde_json::to_vec(&early).unwrap()).unwrap();
    let refused = cairn(
        &home,
        &[
            "verify",
            before_v1.0.to_str().unwrap(),
            "--bundle",
            before_v1.1.to_str().unwrap(),
            "--cert-identity",
            "alice@example.com",
            "--cert-oidc-issuer",
            &issuer,
            "--trust-root",
            early_root.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
}
