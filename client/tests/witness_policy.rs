//! `cairn verify --witness-policy`: the conformance suite's Rekor v2 bundle whose checkpoint
//! carries a witness cosignature verifies under a policy that lists its log and needs no
//! cosignature, and fails (exit 1, naming the quorum) under one that needs a witness it lacks.
//! The policy is checked on the bundle that verified, not on the file read again.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const ORIGIN: &str = "log2025-alpha1.rekor.sigstage.dev";
/// The log's Ed25519 key in the case's trusted root (SubjectPublicKeyInfo, base64).
const LOG_SPKI: &str = "MCowBQYDK2VwAyEAPn+AREHoBaZ7wgS1zBqpxmLSGnyhxXj4lFxSdWVB8o8=";

fn case() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sigstore-conformance/cases/rekor2-checkpoint-cosigned")
}

fn verify(policy: &Path) -> std::process::Output {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore-conformance");
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("verify")
        .arg(suite.join("a.txt"))
        .arg("--bundle")
        .arg(case().join("bundle.sigstore.json"))
        .args(["--cert-identity", IDENTITY, "--cert-oidc-issuer", ISSUER])
        .arg("--trust-root")
        .arg(case().join("trusted_root.json"))
        .arg("--witness-policy")
        .arg(policy)
        .output()
        .unwrap()
}

#[test]
fn witness_policy_is_enforced() {
    let spki = BASE64.decode(LOG_SPKI).unwrap();
    let raw: [u8; 32] = spki[spki.len() - 32..].try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).unwrap();
    let log = tlog::keys::Verifier::Ed25519(tlog::keys::Ed25519Verifier::new(ORIGIN, key).unwrap());
    let dir = tempfile::tempdir().unwrap();

    let lenient = dir.path().join("lenient.policy");
    std::fs::write(&lenient, format!("log {log}\nquorum none\n")).unwrap();
    let output = verify(&lenient);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("log entry 0 cosigned by"));

    let witness = tlog::keys::Cosigner::new(
        "witness.example",
        ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
    )
    .unwrap();
    let strict = dir.path().join("strict.policy");
    std::fs::write(
        &strict,
        format!("log {log}\nwitness w {}\nquorum w\n", witness.verifier()),
    )
    .unwrap();
    let output = verify(&strict);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("quorum not met"));
}

/// The witness policy is checked on the bundle that was verified: the bundle is read once. The
/// `--bundle` here is a FIFO that gives the verified bundle to the first read and, to any
/// second read, a copy whose checkpoint is another log's, cosigned as the policy asks.
#[cfg(unix)]
#[test]
fn witness_policy_checks_the_verified_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let verified = std::fs::read(case().join("bundle.sigstore.json")).unwrap();

    let other_log = tlog::keys::Ed25519Signer::new(
        "other.example",
        ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
    )
    .unwrap();
    let witness = tlog::keys::Cosigner::new(
        "witness.example",
        ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
    )
    .unwrap();
    let cosigner = witness.at(1_700_000_000).unwrap();
    let checkpoint = tlog::checkpoint::Checkpoint::new(
        "other.example",
        tlog::TreeSize(1),
        tlog::leaf_hash(b"x"),
    )
    .sign(&[&other_log, &cosigner])
    .unwrap()
    .format()
    .unwrap();
    let mut swapped: serde_json::Value = serde_json::from_slice(&verified).unwrap();
    swapped["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"] =
        serde_json::Value::String(checkpoint);
    let swapped = serde_json::to_vec(&swapped).unwrap();

    let policy = dir.path().join("other.policy");
    std::fs::write(
        &policy,
        format!(
            "log {}\nwitness w {}\nquorum w\n",
            other_log.verifier(),
            witness.verifier()
        ),
    )
    .unwrap();

    let fifo = dir.path().join("bundle.sigstore.json");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let writer = fifo.clone();
    // A reader sees the end of the first bundle once the writer closes; the pause keeps the
    // second open from joining that first read. A second open blocks until a second read,
    // which (once fixed) never comes; the thread dies with the test.
    std::thread::spawn(move || {
        for (i, bytes) in [verified, swapped].into_iter().enumerate() {
            if i > 0 {
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&writer)
                .unwrap();
            std::io::Write::write_all(&mut file, &bytes).unwrap();
        }
    });

    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore-conformance");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("verify")
        .arg(suite.join("a.txt"))
        .arg("--bundle")
        .arg(&fifo)
        .args(["--cert-identity", IDENTITY, "--cert-oidc-issuer", ISSUER])
        .arg("--trust-root")
        .arg(case().join("trusted_root.json"))
        .arg("--witness-policy")
        .arg(&policy)
        .output()
        .unwrap();
    // The verified bundle's checkpoint is not signed by the policy's log, and that is the
    // failure (not a bundle that failed to parse).
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no signature from a known key"), "{stderr}");
}
