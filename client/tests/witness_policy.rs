//! `cairn verify --witness-policy`: the conformance suite's Rekor v2 bundle whose checkpoint
//! carries a witness cosignature verifies under a policy that lists its log and needs no
//! cosignature, and fails (exit 1, naming the quorum) under one that needs a witness it lacks.

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
    let log = tlog::note::Verifier::Ed25519(tlog::note::Ed25519Verifier::new(ORIGIN, key).unwrap());
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

    let witness = tlog::cosignature::Cosigner::new(
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
