//! Keyless signing end to end, with the real binaries: `cairn-node dev` starts a 3-node cluster
//! with the CA and the dev issuer and writes its Sigstore trust documents; `cairn login --dev`,
//! `cairn sign` and `cairn attest` go through a follower (so writes are forwarded); `cairn
//! verify` accepts the bundles offline with the trusted root the cluster wrote, and rejects a
//! wrong artifact, identity or issuer, a tampered inclusion proof, a tampered checkpoint and a
//! trusted root with another log's key, each with the check that failed. The Rekor v1 read
//! endpoints answer for the same entries.
//!
//! Issue 18: the signing config offers Rekor v2 with the cluster's timestamp authority, so
//! `cairn sign` and `cairn attest` log through v2 with an RFC 3161 timestamp unless told
//! `--rekor-version 1`; both kinds of bundle verify with the trusted root exactly as
//! `cairn-node dev` wrote it (which lists the TSA), and a v2 bundle without its timestamp, or
//! with a trusted root without the TSA, does not. Before anything is logged, every node serves
//! the same size-0 checkpoint of each log, which `cairn log info`, `cairn monitor` and a
//! polling witness accept.
//!
//! Needs the `cairn` binary next to `cairn-node`: run with `cargo test -p node -p client`.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

mod dev_cluster;

use dev_cluster::{Dev, cairn, get, get_json, request, text};

/// Runs `cairn verify` on `artifact` with `bundle`; returns the output.
fn verify(
    home: &Path,
    artifact: &Path,
    bundle: &Path,
    identity: &str,
    issuer: &str,
    root: &Path,
) -> Output {
    cairn(
        home,
        &[
            "verify",
            artifact.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            issuer,
            "--trust-root",
            root.to_str().unwrap(),
        ],
    )
}

fn assert_rejected(output: &Output, reason: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", text(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(reason),
        "want a failure naming {reason:?}; {}",
        text(output)
    );
}

/// Edits a JSON file (a bundle, a trusted root) and writes the result to `path`.
fn tampered(bundle: &Path, path: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    path.to_path_buf()
}

#[test]
fn sign_attest_and_verify_against_a_dev_cluster() {
    let temp = tempfile::tempdir().unwrap();
    let dev = Dev::start(&temp.path().join("cluster"));
    let home = temp.path().join("home");
    let root = dev.0.dir().join("trusted_root.json");
    let issuer = dev.issuer();

    // Before anything is logged, every node serves the same signed checkpoint of each log at
    // size 0 (the empty tree's root), and a consistency proof from size 0 is empty.
    let empty: Vec<Vec<u8>> = (0..3)
        .map(|node| {
            let (status, body) = get(&format!("{}/logs/certificates/checkpoint", dev.url(node)));
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            body
        })
        .collect();
    assert!(empty.iter().all(|body| *body == empty[0]));
    let empty = String::from_utf8(empty[0].clone()).unwrap();
    let mut lines = empty.lines();
    assert_eq!(lines.next(), Some("certificates.cairn.localhost"));
    assert_eq!(lines.next(), Some("0"));
    assert_eq!(
        lines.next(),
        Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
    );
    let proof = get_json(&format!(
        "{}/logs/certificates/proof/consistency?old=0&new=0",
        dev.url(1)
    ));
    assert_eq!(proof["hashes"], serde_json::json!([]));
    // `cairn log info` verifies and records the artifact log's size-0 checkpoint; later runs
    // (below) prove the grown log consistent with it.
    let empty_info = cairn(
        &home,
        &[
            "log",
            "info",
            "--url",
            &dev.url(0),
            "--trust-root",
            root.to_str().unwrap(),
        ],
    );
    assert!(empty_info.status.success(), "{}", text(&empty_info));
    // A witness polling the empty certificate log cosigns its size-0 checkpoint (and, at the
    // end of the test, the grown log, consistent with it); `cairn monitor` starts on it.
    let logs = get_json(&format!("{}/logs", dev.url(0)));
    let verifier_key = |name: &str| {
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|log| log["name"] == name)
            .unwrap()["verifier_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let vkey = verifier_key("certificates");
    let certificates_url = format!("{}/logs/certificates", dev.url(0));
    let policy = temp.path().join("witness-policy.txt");
    std::fs::write(&policy, format!("log {vkey} {certificates_url}\n")).unwrap();
    let witness = Witness::start(&temp.path().join("witness"), &policy);
    let cosigned = witness.wait_for(|size| size == 0);
    assert_eq!(
        cosigned
            .lines()
            .filter(|line| line.starts_with('\u{2014}'))
            .count(),
        2,
        "the log's signature and the witness's: {cosigned}"
    );
    let monitor = cairn(
        &home,
        &[
            "monitor",
            "--log",
            &certificates_url,
            "--log-key",
            &vkey,
            "--identity",
            "alice@example.com",
            "--once",
            "--cursor",
            temp.path().join("monitor-cursor").to_str().unwrap(),
        ],
    );
    assert!(monitor.status.success(), "{}", text(&monitor));

    // Log in against the dev issuer; the token is cached under CAIRN_HOME.
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
    assert!(home.join("identity-token").exists());

    // Sign through node 2 and node 3 (at least one is a follower, which forwards the writes).
    let artifact = temp.path().join("hello.txt");
    std::fs::write(&artifact, b"hello, cairn\n").unwrap();
    let url = dev.url(1);
    // The Rekor v1 API on request (the signing config offers v2, which `cairn` picks unless
    // told otherwise); its entries carry a signed entry timestamp.
    let sign = cairn(
        &home,
        &[
            "sign",
            "--url",
            &url,
            "--rekor-version",
            "1",
            artifact.to_str().unwrap(),
        ],
    );
    assert!(sign.status.success(), "{}", text(&sign));
    let bundle = temp.path().join("hello.txt.sigstore.json");
    assert!(bundle.exists(), "{}", text(&sign));
    // `cairn monitor` on the artifact log reports the entry in one readable line: index,
    // identity, the certificate's issuer, the signed digest and when it was certified.
    let artifacts_vkey = verifier_key("artifacts");
    let artifacts_monitor = cairn(
        &home,
        &[
            "monitor",
            "--log",
            &format!("{}/logs/artifacts", dev.url(0)),
            "--log-key",
            &artifacts_vkey,
            "--identity",
            "alice@example.com",
            "--once",
            "--cursor",
            temp.path().join("artifacts-cursor").to_str().unwrap(),
        ],
    );
    assert!(
        artifacts_monitor.status.success(),
        "{}",
        text(&artifacts_monitor)
    );
    let digest = tlog::entry::Digest::sha256(b"hello, cairn\n").to_hex();
    let stdout = String::from_utf8_lossy(&artifacts_monitor.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    assert!(
        line.contains("alice@example.com")
            && line.contains(&format!("issuer {issuer}"))
            && line.contains(&format!("sha256:{digest}"))
            && line.contains("certified 20"),
        "{}",
        text(&artifacts_monitor)
    );
    assert!(!line.starts_with('{'), "JSON only with --json: {line}");

    let other = temp.path().join("other.bin");
    std::fs::write(&other, b"another artifact").unwrap();
    let sign = cairn(
        &home,
        &[
            "sign",
            "--url",
            &dev.url(2),
            "--json",
            other.to_str().unwrap(),
        ],
    );
    assert!(sign.status.success(), "{}", text(&sign));
    let report: serde_json::Value = serde_json::from_slice(&sign.stdout).unwrap();
    assert_eq!(report["identity"], "alice@example.com");
    // Following the signing config: the Rekor v2 API, with an RFC 3161 timestamp from the
    // cluster's TSA and no signed entry timestamp.
    let v2_bundle = temp.path().join("other.bin.sigstore.json");
    let v2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&v2_bundle).unwrap()).unwrap();
    let material = &v2["verificationMaterial"];
    assert_eq!(
        material["tlogEntries"][0]["kindVersion"],
        serde_json::json!({ "kind": "hashedrekord", "version": "0.0.2" })
    );
    assert!(material["tlogEntries"][0].get("inclusionPromise").is_none());
    assert_eq!(
        material["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ok = verify(
        &home,
        &other,
        &v2_bundle,
        "alice@example.com",
        &issuer,
        &root,
    );
    assert!(ok.status.success(), "{}", text(&ok));
    // Without its timestamp a v2 bundle has no verified time; with a trusted root that lists
    // no timestamp authority its timestamp is not trusted.
    let untimed = tampered(&v2_bundle, &temp.path().join("untimed.json"), |value| {
        value["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
            serde_json::json!([]);
    });
    let wrong = verify(&home, &other, &untimed, "alice@example.com", &issuer, &root);
    assert_rejected(&wrong, "RFC 3161");
    let no_tsa = tampered(&root, &temp.path().join("no-tsa-root.json"), |value| {
        value["timestampAuthorities"] = serde_json::json!([]);
    });
    let wrong = verify(
        &home,
        &other,
        &v2_bundle,
        "alice@example.com",
        &issuer,
        &no_tsa,
    );
    assert_rejected(&wrong, "timestamp authority");

    // Verified offline with the trusted root the cluster wrote.
    let ok = verify(
        &home,
        &artifact,
        &bundle,
        "alice@example.com",
        &issuer,
        &root,
    );
    assert!(ok.status.success(), "{}", text(&ok));

    // An attestation.
    let predicate = temp.path().join("predicate.json");
    std::fs::write(
        &predicate,
        br#"{"builder": {"id": "https://example.com/ci"}}"#,
    )
    .unwrap();
    let attest = cairn(
        &home,
        &[
            "attest",
            "--url",
            &url,
            artifact.to_str().unwrap(),
            "--predicate",
            predicate.to_str().unwrap(),
            "--type",
            "https://slsa.dev/provenance/v1",
        ],
    );
    assert!(attest.status.success(), "{}", text(&attest));
    let attestation = temp.path().join("hello.txt.att.sigstore.json");
    let attested: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&attestation).unwrap()).unwrap();
    assert_eq!(
        attested["verificationMaterial"]["tlogEntries"][0]["kindVersion"],
        serde_json::json!({ "kind": "hashedrekord", "version": "0.0.2" })
    );
    let ok = verify(
        &home,
        &artifact,
        &attestation,
        "alice@example.com",
        &issuer,
        &root,
    );
    assert!(ok.status.success(), "{}", text(&ok));

    // Negative cases, each with the check that failed.
    let wrong = verify(&home, &other, &bundle, "alice@example.com", &issuer, &root);
    assert_rejected(&wrong, "artifact digest");
    let wrong = verify(
        &home,
        &artifact,
        &bundle,
        "mallory@example.com",
        &issuer,
        &root,
    );
    assert_rejected(&wrong, "identity");
    let wrong = verify(
        &home,
        &artifact,
        &bundle,
        "alice@example.com",
        "https://accounts.example.com",
        &root,
    );
    assert_rejected(&wrong, "issuer");
    let bad_proof = tampered(&bundle, &temp.path().join("bad-proof.json"), |value| {
        let proof = &mut value["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
        proof["rootHash"] = BASE64.encode([7u8; 32]).into();
    });
    let wrong = verify(
        &home,
        &artifact,
        &bad_proof,
        "alice@example.com",
        &issuer,
        &root,
    );
    assert_rejected(&wrong, "inclusion proof");
    let bad_checkpoint = tampered(&bundle, &temp.path().join("bad-checkpoint.json"), |value| {
        let checkpoint = &mut value["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
            ["envelope"];
        let note = checkpoint.as_str().unwrap().to_owned();
        // Another origin line: the log's signature no longer covers the note.
        *checkpoint = note.replacen("cairn.localhost", "cairn.invalid", 1).into();
    });
    let wrong = verify(
        &home,
        &artifact,
        &bad_checkpoint,
        "alice@example.com",
        &issuer,
        &root,
    );
    assert_rejected(&wrong, "checkpoint");

    // A managed key (`--key`): no token, no certificate; verified with the public key.
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let managed = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
    let private_pem = temp.path().join("managed.key");
    std::fs::write(
        &private_pem,
        managed.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let public_pem = temp.path().join("managed.pub");
    let public = managed
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(&public_pem, public).unwrap();
    let key_bundle = temp.path().join("hello.key.json");
    let sign = cairn(
        &home,
        &[
            "sign",
            "--url",
            &url,
            "--key",
            private_pem.to_str().unwrap(),
            "--bundle",
            key_bundle.to_str().unwrap(),
            artifact.to_str().unwrap(),
        ],
    );
    assert!(sign.status.success(), "{}", text(&sign));
    let by_key = |public: &Path| {
        cairn(
            &home,
            &[
                "verify",
                artifact.to_str().unwrap(),
                "--bundle",
                key_bundle.to_str().unwrap(),
                "--key",
                public.to_str().unwrap(),
                "--trust-root",
                root.to_str().unwrap(),
            ],
        )
    };
    let ok = by_key(&public_pem);
    assert!(ok.status.success(), "{}", text(&ok));
    let stranger = temp.path().join("stranger.pub");
    let stranger_key = p256::ecdsa::SigningKey::from_slice(&[6; 32])
        .unwrap()
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(&stranger, stranger_key).unwrap();
    assert_eq!(by_key(&stranger).status.code(), Some(1));

    // A trusted root with another log's key under the same log id: the checkpoint (checked
    // before the SET) no longer verifies.
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(other_key.as_bytes());
    let other_root = tampered(&root, &temp.path().join("other-root.json"), |value| {
        value["tlogs"][0]["publicKey"]["rawBytes"] = BASE64.encode(&spki).into();
    });
    let wrong = verify(
        &home,
        &artifact,
        &bundle,
        "alice@example.com",
        &issuer,
        &other_root,
    );
    assert_rejected(&wrong, "checkpoint");

    // `cairn log info`: the checkpoint verifies, and is consistent with the one seen before;
    // a state file recording another history makes it fail.
    let info = |home: &Path| {
        cairn(
            home,
            &[
                "log",
                "info",
                "--url",
                &dev.url(0),
                "--trust-root",
                root.to_str().unwrap(),
            ],
        )
    };
    let first = info(&home);
    assert!(first.status.success(), "{}", text(&first));
    let more = temp.path().join("more.txt");
    std::fs::write(&more, b"one more").unwrap();
    let sign = cairn(&home, &["sign", "--url", &url, more.to_str().unwrap()]);
    assert!(sign.status.success(), "{}", text(&sign));
    let second = info(&home);
    assert!(second.status.success(), "{}", text(&second));
    assert!(String::from_utf8_lossy(&second.stdout).contains("consistent with size"));
    let state = home.join("log-state.json");
    let mut seen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    seen[dev.url(0)]["tree_size"] = 2.into();
    seen[dev.url(0)]["root_hash"] = hex::encode([7u8; 32]).into();
    std::fs::write(&state, serde_json::to_vec(&seen).unwrap()).unwrap();
    assert_rejected(&info(&home), "not consistent");

    // `cairn trust` fetches the same trusted root the cluster wrote (from node 1, whose URL it
    // names).
    let trust_dir = temp.path().join("trust");
    let trust = cairn(
        &home,
        &[
            "trust",
            "--url",
            &dev.url(0),
            "--out",
            trust_dir.to_str().unwrap(),
        ],
    );
    assert!(trust.status.success(), "{}", text(&trust));
    let fetched: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trust_dir.join("trusted_root.json")).unwrap())
            .unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&root).unwrap()).unwrap();
    assert_eq!(fetched, written);
    check_trust_documents(&dev, &written);

    // The Rekor v1 reads answer for the signed entry, on every node alike.
    let entry = &serde_json::from_slice::<serde_json::Value>(&std::fs::read(&bundle).unwrap())
        .unwrap()["verificationMaterial"]["tlogEntries"][0];
    let index = entry["logIndex"].as_str().unwrap();
    let by_index = get_json(&format!(
        "{}/api/v1/log/entries?logIndex={index}",
        dev.url(2)
    ));
    let (uuid, logged) = by_index.as_object().unwrap().iter().next().unwrap();
    assert_eq!(logged["body"], entry["canonicalizedBody"]);
    assert_eq!(
        logged["integratedTime"].as_u64().unwrap().to_string(),
        entry["integratedTime"].as_str().unwrap()
    );
    let by_uuid = get_json(&format!("{}/api/v1/log/entries/{uuid}", dev.url(0)));
    assert_eq!(
        by_uuid[uuid]["verification"]["signedEntryTimestamp"],
        logged["verification"]["signedEntryTimestamp"]
    );
    let info = get_json(&format!("{}/api/v1/log", dev.url(0)));
    assert!(info["treeSize"].as_u64().unwrap() >= 3);
    check_v1_checkpoint(&dev, logged, &info);
    let proof = get_json(&format!(
        "{}/api/v1/log/proof?firstSize=1&lastSize={}",
        dev.url(0),
        info["treeSize"]
    ));
    assert_eq!(proof["rootHash"], info["rootHash"]);
    // The logged body is itself a valid proposed entry: posting it again is a duplicate, 409
    // with the existing entry (through a node that may have to forward it).
    let body = BASE64.decode(logged["body"].as_str().unwrap()).unwrap();
    let (status, answer) = request("POST", &format!("{}/api/v1/log/entries", dev.url(2)), &body);
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer[uuid]["logIndex"], logged["logIndex"]);
    // Retrieve by UUID, by index and by proposed entry: the same entry three times.
    let query = serde_json::json!({
        "entryUUIDs": [uuid],
        "logIndexes": [logged["logIndex"]],
        "entries": [serde_json::from_slice::<serde_json::Value>(&body).unwrap()],
    });
    let (status, found) = request(
        "POST",
        &format!("{}/api/v1/log/entries/retrieve/", dev.url(1)),
        &serde_json::to_vec(&query).unwrap(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&found));
    let found: Vec<serde_json::Value> = serde_json::from_slice(&found).unwrap();
    assert_eq!(found.len(), 3);
    assert!(
        found
            .iter()
            .all(|entry| entry[uuid]["body"] == logged["body"])
    );
    let (status, _) = request(
        "POST",
        &format!("{}/api/v1/log/entries", dev.url(0)),
        br#"{"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}"#,
    );
    assert_eq!(status, 400);

    let (status, key) = get(&format!("{}/api/v1/log/publicKey", dev.url(0)));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&key).starts_with("-----BEGIN PUBLIC KEY-----"));

    // The witness that started on the size-0 checkpoint cosigns the grown certificate log.
    witness.wait_for(|size| size > 0);
}

/// `cairn witness poll` on loopback, killed when dropped.
struct Witness {
    child: std::process::Child,
    port: u16,
    origin_hex: String,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Witness {
    fn start(dir: &Path, policy: &Path) -> Witness {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(dev_cluster::cairn_bin())
            .args(["witness", "poll", "--name", "witness.example/w1", "--dir"])
            .arg(dir)
            .arg("--policy")
            .arg(policy)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--interval",
                "0.2",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.with_extension("log")).unwrap())
            .spawn()
            .unwrap();
        use sha2::Digest as _;
        let origin_hex = hex::encode(sha2::Sha256::digest(b"certificates.cairn.localhost"));
        Witness {
            child,
            port,
            origin_hex,
        }
    }

    /// Waits until the witness has cosigned a checkpoint whose size satisfies `wanted`; returns
    /// that cosigned checkpoint.
    fn wait_for(&self, wanted: impl Fn(u64) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                drop(stream);
                let (status, body) = get(&format!(
                    "http://127.0.0.1:{}/{}/checkpoint",
                    self.port, self.origin_hex
                ));
                let body = String::from_utf8_lossy(&body).into_owned();
                if status == 200
                    && body
                        .lines()
                        .nth(1)
                        .and_then(|size| size.parse().ok())
                        .is_some_and(&wanted)
                {
                    return body;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the witness cosigned no such checkpoint"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// What Sigstore clients match in the trust documents (see
/// docs/decisions/0005-origins-and-base-urls.md): a checkpoint's key name, the origin, is the
/// host name of each tlog's `baseUrl` (sigstore-go verifies a C2SP checkpoint under
/// `url.Hostname()`) and inside it (sigstore-js looks it up as a substring); and no selector of
/// the signing config asks for more services than it lists. The artifact log is listed twice
/// (its v1 and C2SP log ids), first; the certificate log once, by its C2SP key id (what the
/// explorer pins its key from), after it.
fn check_trust_documents(dev: &Dev, root: &serde_json::Value) {
    let tlogs = root["tlogs"].as_array().unwrap();
    let mut listed = Vec::new();
    for log in ["artifacts", "certificates"] {
        let committed =
            String::from_utf8(get(&format!("{}/logs/{log}/checkpoint", dev.url(0))).1).unwrap();
        let origin = committed.lines().next().unwrap();
        let key_name = committed
            .lines()
            .find_map(|line| line.strip_prefix("\u{2014} "))
            .and_then(|line| line.split(' ').next())
            .unwrap();
        assert_eq!(key_name, origin);
        for (position, tlog) in tlogs.iter().enumerate() {
            let base_url = tlog["baseUrl"].as_str().unwrap();
            let authority = base_url.split_once("://").unwrap().1;
            let host = authority.split(['/', ':']).next().unwrap();
            if host == origin {
                assert!(base_url.contains(key_name), "{base_url}");
                listed.push((log, position));
            }
        }
    }
    assert_eq!(
        listed,
        [("artifacts", 0), ("artifacts", 1), ("certificates", 2)],
        "{root}"
    );
    // The certificate log's log id is its C2SP key id: SHA-256(origin, 0x0A, 0x01, key).
    let certificates = &tlogs[2];
    let spki = BASE64
        .decode(certificates["publicKey"]["rawBytes"].as_str().unwrap())
        .unwrap();
    let mut preimage = b"certificates.cairn.localhost\n\x01".to_vec();
    preimage.extend_from_slice(&spki[12..]);
    assert_eq!(
        certificates["logId"]["keyId"],
        BASE64.encode(tlog::Hash::digest(&preimage).as_bytes())
    );
    assert_eq!(certificates["publicKey"]["keyDetails"], "PKIX_ED25519");
    assert!(certificates["publicKey"]["validFor"]["start"].is_string());
    let signing: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dev.0.dir().join("signing_config.json")).unwrap())
            .unwrap();
    // The timestamp authority: in the trusted root with its chain (signing certificate with a
    // critical timeStamping EKU, then its root), and in the signing config with the Rekor v2
    // API beside v1.
    let authorities = root["timestampAuthorities"].as_array().unwrap();
    assert_eq!(authorities.len(), 1);
    let tsa_url = authorities[0]["uri"].as_str().unwrap();
    assert_eq!(tsa_url, format!("{}/api/v1/timestamp", dev.url(0)));
    assert_eq!(authorities[0]["subject"]["organization"], "Cairn");
    assert!(authorities[0]["validFor"]["start"].is_string());
    let chain: Vec<Vec<u8>> = authorities[0]["certChain"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|certificate| {
            BASE64
                .decode(certificate["rawBytes"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(chain.len(), 2);
    let (_, signer) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let eku = signer.extended_key_usage().unwrap().unwrap();
    assert!(eku.critical && eku.value.time_stamping);
    assert_eq!(signing["tsaUrls"][0]["url"], tsa_url);
    assert_eq!(signing["tsaUrls"][0]["majorApiVersion"], 1);
    let versions: Vec<u64> = signing["rekorTlogUrls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|service| service["majorApiVersion"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    // The TSA's chain endpoint serves the same chain; Sigstore's JSON request form is granted
    // too, and a JSON request without a hash is a 400.
    let (status, pem) = get(&format!("{tsa_url}/certchain"));
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8_lossy(&pem)
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    let (status, answer) = request("POST", tsa_url, b"{}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("artifactHash"));
    let json = serde_json::json!({
        "artifactHash": BASE64.encode([7u8; 32]),
        "hashAlgorithm": "sha256",
        "nonce": 42,
        "certificates": true,
    });
    let (status, reply) = request("POST", tsa_url, &serde_json::to_vec(&json).unwrap());
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(reply.first(), Some(&0x30));
    for (services, config) in [
        ("rekorTlogUrls", "rekorTlogConfig"),
        ("tsaUrls", "tsaConfig"),
    ] {
        let listed = signing[services]
            .as_array()
            .map_or(0, |list| list.len() as u64);
        if let Some(config) = signing.get(config) {
            let wanted = match config["selector"].as_str().unwrap() {
                "ALL" => 0,
                "ANY" => 1,
                _ => config["count"].as_u64().unwrap(),
            };
            assert!(listed >= wanted, "{services}: {signing}");
        }
    }
}

/// The v1 API's checkpoints are in Rekor v1 form, as cosign, sigstore-go and sigstore-python
/// check them (docs/decisions/0004-v1-checkpoint.md), over the committed C2SP checkpoint's tree.
fn check_v1_checkpoint(dev: &Dev, logged: &serde_json::Value, info: &serde_json::Value) {
    use ed25519_dalek::Verifier as _;
    use sha2::Digest as _;

    let (status, pem) = get(&format!("{}/api/v1/log/publicKey", dev.url(0)));
    assert_eq!(status, 200);
    let pem = String::from_utf8(pem).unwrap();
    let spki: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let spki = BASE64.decode(spki).unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&spki[12..].try_into().unwrap()).unwrap();
    // logID is Rekor v1's: SHA-256 of the key's SPKI.
    let log_id = sha2::Sha256::digest(&spki);
    assert_eq!(logged["logID"].as_str().unwrap(), hex::encode(log_id));

    let committed =
        String::from_utf8(get(&format!("{}/logs/artifacts/checkpoint", dev.url(0))).1).unwrap();
    let origin = committed.lines().next().unwrap().to_owned();
    let tree_id = info["treeID"].as_str().unwrap();
    assert!(!tree_id.is_empty() && tree_id.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        tree_id.parse::<i64>().is_ok(),
        "a Trillian tree id is an int64"
    );
    for note in [
        info["signedTreeHead"].as_str().unwrap(),
        logged["verification"]["inclusionProof"]["checkpoint"]
            .as_str()
            .unwrap(),
    ] {
        let (body, signatures) = note.split_once("\n\n").unwrap();
        let body = format!("{body}\n");
        let mut lines = body.lines();
        // sigstore-go's hasRekorV1STH: the first line matches `.* - [0-9]+$`.
        assert_eq!(lines.next().unwrap(), format!("{origin} - {tree_id}"));
        // The committed checkpoint's tree (no entries were added meanwhile).
        assert_eq!(
            lines.collect::<Vec<_>>(),
            committed
                .split_once("\n\n")
                .unwrap()
                .0
                .lines()
                .skip(1)
                .collect::<Vec<_>>()
        );
        // One signature line (Rekor's Go verifier requires every line to verify with the log
        // key and carry its key id), named without spaces, with key id logID[:4].
        let signatures: Vec<&str> = signatures.lines().collect();
        assert_eq!(signatures.len(), 1, "{note}");
        let (name, signature) = signatures[0]
            .strip_prefix("\u{2014} ")
            .unwrap()
            .split_once(' ')
            .unwrap();
        assert_eq!(name, origin);
        let signature = BASE64.decode(signature).unwrap();
        assert_eq!(&signature[..4], &log_id[..4]);
        let signature = ed25519_dalek::Signature::from_slice(&signature[4..]).unwrap();
        key.verify(body.as_bytes(), &signature).unwrap();
    }
}
