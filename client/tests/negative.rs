//! Each check of the verifier, made to fail on its own: a valid conformance bundle (Rekor v1
//! with a SET, and Rekor v2 with an RFC 3161 timestamp) or its trusted root is altered in one
//! place, and the error must name the check that altered part feeds. This guards against a
//! check that silently passes (the conformance suite only says *that* a bundle is rejected).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use client::certificate::CertificateError;
use client::log_entry::LogEntryError;
use client::timestamp::TimestampError;
use client::{Artifact, Bundle, Policy, TrustedRoot, VerifyError};
use serde_json::Value;

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore-conformance")
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Rekor v1: hashedrekord 0.0.1, SET, checkpoint, public-good trusted root.
fn rekor_v1() -> (Value, Value) {
    (
        json(&suite().join("cases/happy-path-v0.3/bundle.sigstore.json")),
        json(&suite().join("public-good-trusted_root.json")),
    )
}

/// Rekor v2: hashedrekord 0.0.2, RFC 3161 timestamp, Ed25519 checkpoint, staging root.
fn rekor_v2() -> (Value, Value) {
    let case = suite().join("cases/rekor2-happy-path");
    (
        json(&case.join("bundle.sigstore.json")),
        json(&case.join("trusted_root.json")),
    )
}

fn artifact() -> Artifact {
    Artifact::from_bytes(&fs::read(suite().join("a.txt")).unwrap())
}

fn identity() -> Policy {
    Policy::Identity {
        identity: IDENTITY.to_owned(),
        issuer: ISSUER.to_owned(),
    }
}

fn check(
    bundle: &Value,
    root: &Value,
    artifact: &Artifact,
    policy: &Policy,
) -> Result<(), VerifyError> {
    let bundle = Bundle::from_json(&serde_json::to_vec(bundle).unwrap()).unwrap();
    let root = TrustedRoot::from_json(&serde_json::to_vec(root).unwrap()).unwrap();
    client::verify::verify(&bundle, &root, artifact, policy).map(|_| ())
}

fn entry(bundle: &mut Value) -> &mut Value {
    &mut bundle["verificationMaterial"]["tlogEntries"][0]
}

/// Flips one bit of the base64 value at `value`.
fn flip_base64(value: &mut Value, byte: usize) {
    let mut bytes = BASE64.decode(value.as_str().unwrap()).unwrap();
    bytes[byte] ^= 1;
    *value = Value::String(BASE64.encode(bytes));
}

#[test]
fn both_baselines_verify() {
    let (bundle, root) = rekor_v1();
    check(&bundle, &root, &artifact(), &identity()).unwrap();
    let (bundle, root) = rekor_v2();
    check(&bundle, &root, &artifact(), &identity()).unwrap();
}

#[test]
fn wrong_artifact_is_an_artifact_digest_failure() {
    let (bundle, root) = rekor_v1();
    let other = Artifact::from_bytes(b"not the artifact");
    assert_eq!(
        check(&bundle, &root, &other, &identity()),
        Err(VerifyError::ArtifactDigest(
            tlog::entry::HashAlgorithm::Sha256
        ))
    );
}

#[test]
fn wrong_identity_and_wrong_issuer_are_named() {
    let (bundle, root) = rekor_v1();
    let policy = Policy::Identity {
        identity: "someone@example.com".to_owned(),
        issuer: ISSUER.to_owned(),
    };
    assert!(matches!(
        check(&bundle, &root, &artifact(), &policy),
        Err(VerifyError::Certificate(CertificateError::Identity { .. }))
    ));
    let policy = Policy::Identity {
        identity: IDENTITY.to_owned(),
        issuer: "https://accounts.example.com".to_owned(),
    };
    assert!(matches!(
        check(&bundle, &root, &artifact(), &policy),
        Err(VerifyError::Certificate(CertificateError::Issuer { .. }))
    ));
}

#[test]
fn tampered_inclusion_proof_is_an_inclusion_proof_failure() {
    let (mut bundle, root) = rekor_v1();
    flip_base64(&mut entry(&mut bundle)["inclusionProof"]["hashes"][0], 0);
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::LogEntry(LogEntryError::InclusionProof(_)))
    ));
}

#[test]
fn tampered_checkpoint_is_a_checkpoint_failure() {
    for (mut bundle, root) in [rekor_v1(), rekor_v2()] {
        let envelope = &mut entry(&mut bundle)["inclusionProof"]["checkpoint"]["envelope"];
        let text = envelope.as_str().unwrap();
        // Change the tree size line: the log's signature no longer covers the text.
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        lines[1] = format!("{}", lines[1].parse::<u64>().unwrap() + 1);
        *envelope = Value::String(lines.join("\n"));
        assert!(matches!(
            check(&bundle, &root, &artifact(), &identity()),
            Err(VerifyError::LogEntry(LogEntryError::Checkpoint(_)))
        ));
    }
}

#[test]
fn another_logs_key_fails_the_checkpoint() {
    // The public-good root with its Rekor v1 key replaced by the (valid) key of another log:
    // nothing the log signed can verify.
    let (bundle, mut root) = rekor_v1();
    let (_, staging) = rekor_v2();
    root["tlogs"][0]["publicKey"] = staging["tlogs"][0]["publicKey"].clone();
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::LogEntry(LogEntryError::Checkpoint(_)))
    ));
}

#[test]
fn tampered_set_and_integrated_time_are_set_failures() {
    let (mut bundle, root) = rekor_v1();
    flip_base64(
        &mut entry(&mut bundle)["inclusionPromise"]["signedEntryTimestamp"],
        10,
    );
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::LogEntry(LogEntryError::SignedEntryTimestamp(
            _
        )))
    ));
    let (mut bundle, root) = rekor_v1();
    let time: i64 = entry(&mut bundle)["integratedTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    entry(&mut bundle)["integratedTime"] = Value::String((time + 1).to_string());
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::LogEntry(LogEntryError::SignedEntryTimestamp(
            _
        )))
    ));
}

#[test]
fn untrusted_ct_logs_fail_the_sct() {
    let (bundle, mut root) = rekor_v1();
    root["ctlogs"] = Value::Array(Vec::new());
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::Certificate(CertificateError::Sct(_)))
    ));
}

#[test]
fn untrusted_ca_fails_the_chain() {
    let (bundle, mut root) = rekor_v1();
    let (_, staging) = rekor_v2();
    root["certificateAuthorities"] = staging["certificateAuthorities"].clone();
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::Certificate(CertificateError::Chain { .. }))
    ));
}

#[test]
fn tampered_timestamp_fails_and_missing_tsa_fails() {
    let (mut bundle, root) = rekor_v2();
    let token = &mut bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        [0]["signedTimestamp"];
    let len = BASE64.decode(token.as_str().unwrap()).unwrap().len();
    // The last byte is inside the signature.
    flip_base64(token, len - 2);
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::Timestamp(_))
    ));
    let (bundle, mut root) = rekor_v2();
    root["timestampAuthorities"] = Value::Array(Vec::new());
    assert_eq!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::Timestamp(TimestampError::NoAuthority))
    );
}

#[test]
fn tampered_log_body_is_a_body_mismatch() {
    // A log entry for another signature: swap in the body (and proof) of a different bundle.
    let (mut bundle, root) = rekor_v1();
    let other = json(&suite().join("cases/happy-path-v0.1/bundle.sigstore.json"));
    entry(&mut bundle)["canonicalizedBody"] =
        other["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"].clone();
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::LogEntry(LogEntryError::BodyMismatch(_)))
    ));
}

#[test]
fn managed_key_bundles_need_the_right_key() {
    let case = suite().join("cases/managed-key-happy-path");
    let bundle = json(&case.join("bundle.sigstore.json"));
    let (_, root) = rekor_v1();
    let key = client::key::PublicKey::from_pem(&fs::read(case.join("key.pub")).unwrap()).unwrap();
    check(&bundle, &root, &artifact(), &Policy::Key(key)).unwrap();
    // Another P-256 key (the public-good CT log's) does not verify the signature.
    let other = BASE64
        .decode(root["ctlogs"][1]["publicKey"]["rawBytes"].as_str().unwrap())
        .unwrap();
    let other = client::key::PublicKey::from_spki_der(&other).unwrap();
    assert_eq!(
        check(&bundle, &root, &artifact(), &Policy::Key(other)),
        Err(VerifyError::Signature("message signature"))
    );
}

/// Parsing is strict: each of these is refused before any signature is checked.
#[test]
fn malformed_bundles_and_roots_are_refused_by_name() {
    let (bundle, root) = rekor_v1();
    let parse_bundle = |value: &Value| Bundle::from_json(&serde_json::to_vec(value).unwrap());
    let parse_root = |value: &Value| TrustedRoot::from_json(&serde_json::to_vec(value).unwrap());

    let mut unknown = bundle.clone();
    unknown["surprise"] = Value::Bool(true);
    assert!(matches!(
        parse_bundle(&unknown),
        Err(client::BundleError::Json(_))
    ));

    let mut chain_in_v3 = bundle.clone();
    let certificate = chain_in_v3["verificationMaterial"]["certificate"].take();
    let material = chain_in_v3["verificationMaterial"].as_object_mut().unwrap();
    material.remove("certificate");
    material.insert(
        "x509CertificateChain".to_owned(),
        serde_json::json!({ "certificates": [certificate] }),
    );
    assert!(matches!(
        parse_bundle(&chain_in_v3),
        Err(client::BundleError::Field { .. })
    ));

    let mut both = bundle.clone();
    both["dsseEnvelope"] = serde_json::json!({"payload": "", "payloadType": "x", "signatures": []});
    assert!(matches!(
        parse_bundle(&both),
        Err(client::BundleError::Field { .. })
    ));

    let mut no_entries = bundle.clone();
    no_entries["verificationMaterial"]["tlogEntries"] = Value::Array(Vec::new());
    assert!(matches!(
        parse_bundle(&no_entries),
        Err(client::BundleError::Field { .. })
    ));

    let mut unknown = root.clone();
    unknown["tlogs"][0]["surprise"] = Value::Bool(true);
    assert!(matches!(
        parse_root(&unknown),
        Err(client::TrustRootError::Json(_))
    ));

    let mut newer = root.clone();
    newer["mediaType"] =
        Value::String("application/vnd.dev.sigstore.trustedroot.v0.2+json".to_owned());
    assert!(matches!(
        parse_root(&newer),
        Err(client::TrustRootError::MediaType(_))
    ));

    let mut bad_time = root.clone();
    bad_time["certificateAuthorities"][0]["validFor"]["end"] =
        Value::String("yesterday".to_owned());
    assert!(matches!(
        parse_root(&bad_time),
        Err(client::TrustRootError::Field { .. })
    ));
}

/// A Rekor v2 entry has no SET to sign its `logIndex`, so the index it reports (and
/// [`client::Verified::log_indices`] repeats) is only as good as the inclusion proof's.
#[test]
fn rekor_v2_log_index_must_be_the_inclusion_proofs() {
    let (mut bundle, root) = rekor_v2();
    let index: u64 = entry(&mut bundle)["logIndex"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    entry(&mut bundle)["logIndex"] = Value::String((index + 1).to_string());
    assert!(matches!(
        check(&bundle, &root, &artifact(), &identity()),
        Err(VerifyError::LogEntry(LogEntryError::InclusionProof(_)))
    ));
}

/// `verify` checks its own preconditions: a `Bundle` need not come from `Bundle::from_json`.
#[test]
fn bundles_built_without_log_evidence_are_refused() {
    let (bundle, root) = rekor_v2();
    let mut bundle = Bundle::from_json(&serde_json::to_vec(&bundle).unwrap()).unwrap();
    let root = TrustedRoot::from_json(&serde_json::to_vec(&root).unwrap()).unwrap();
    let policy = identity();
    client::verify::verify(&bundle, &root, &artifact(), &policy).unwrap();

    // An entry with neither an inclusion proof nor a SET proves nothing was logged.
    let mut unproved = bundle.clone();
    unproved.tlog_entries[0].inclusion_proof = None;
    assert_eq!(
        client::verify::verify(&unproved, &root, &artifact(), &policy),
        Err(VerifyError::LogEntry(LogEntryError::NoInclusionEvidence))
    );

    // No entry at all: the RFC 3161 timestamp alone does not make it transparent.
    bundle.tlog_entries.clear();
    assert_eq!(
        client::verify::verify(&bundle, &root, &artifact(), &policy),
        Err(VerifyError::NoLogEntry)
    );
}

/// A CT log's key counts only within its `validFor` in the trusted root (as sigstore-go
/// checks it): an SCT dated before its start or after its end is not valid.
#[test]
fn scts_outside_their_ct_logs_validity_fail_the_sct() {
    for valid_for in [
        serde_json::json!({"start": "2000-01-01T00:00:00Z", "end": "2001-01-01T00:00:00Z"}),
        serde_json::json!({"start": "2100-01-01T00:00:00Z"}),
    ] {
        let (bundle, mut root) = rekor_v1();
        for ctlog in root["ctlogs"].as_array_mut().unwrap() {
            ctlog["publicKey"]["validFor"] = valid_for.clone();
        }
        assert!(matches!(
            check(&bundle, &root, &artifact(), &identity()),
            Err(VerifyError::Certificate(CertificateError::Sct(_)))
        ));
    }
}
