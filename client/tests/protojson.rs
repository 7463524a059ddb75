//! Bundles as protobuf's JSON mapping writes them: a field holding its default value (0, an
//! empty list, no bytes) is left out, or may be `null`; names may be the proto field names;
//! enums may be numbers. The bundle here is the first entry of a log (index 0), the case where
//! Go's `protojson` and sigstore-js write no `logIndex` at all. It is fully verifiable: a
//! managed ECDSA P-256 key signs the artifact, a hashedrekord 0.0.1 entry is the only leaf of a
//! log whose Ed25519 key signs the checkpoint and the signed entry timestamp.

#![allow(clippy::unwrap_used)]

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use client::key::PublicKey;
use client::log_entry::LogEntryError;
use client::{Artifact, Bundle, Policy, TrustedRoot, VerifyError};
use ed25519_dalek::Signer as _;
use serde_json::{Value, json};
use tlog::entry::{CanonicalBody, Digest, HashedRekordV001, KeyMaterial, SignatureBytes};
use tlog::keys::Ed25519Signer;
use tlog::note::Note;

const ARTIFACT: &[u8] = b"the first artifact of a new log\n";
const ORIGIN: &str = "log.example";
const INTEGRATED_TIME: u64 = 1_760_000_000;

/// A verifiable bundle (v0.3, every field written) at log index 0, its trusted root and policy.
struct Fixture {
    bundle: Value,
    root: Value,
    policy: Policy,
}

fn fixture() -> Fixture {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let spki = signer.public_key().as_der().unwrap().as_ref().to_vec();
    let signature = signer.sign(&rng, ARTIFACT).unwrap().as_ref().to_vec();
    let digest = Digest::sha256(ARTIFACT);
    let body = CanonicalBody::new(HashedRekordV001::new(
        digest.clone(),
        SignatureBytes::new(&signature).unwrap(),
        KeyMaterial::from_public_key_der(&spki).unwrap(),
    ))
    .unwrap()
    .into_bytes();

    // The log: one leaf, so the root is its leaf hash and the proof has no hashes.
    let log_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let log_spki = tlog::keys::ed25519_spki_der(&log_key.verifying_key());
    let log_id = tlog::Hash::digest(&log_spki);
    let root_hash = tlog::leaf_hash(&body);
    let mut checkpoint = Note::new(&format!(
        "{ORIGIN}\n1\n{}\n",
        BASE64.encode(root_hash.as_bytes())
    ))
    .unwrap();
    checkpoint
        .sign(&Ed25519Signer::new(ORIGIN, log_key.clone()).unwrap())
        .unwrap();
    let set_payload = format!(
        r#"{{"body":"{}","integratedTime":{INTEGRATED_TIME},"logID":"{}","logIndex":0}}"#,
        BASE64.encode(&body),
        hex::encode(log_id.as_bytes()),
    );
    let set = log_key.sign(set_payload.as_bytes()).to_bytes();

    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "publicKey": { "hint": "" },
            "tlogEntries": [{
                "logIndex": "0",
                "logId": { "keyId": BASE64.encode(log_id.as_bytes()) },
                "kindVersion": { "kind": "hashedrekord", "version": "0.0.1" },
                "integratedTime": INTEGRATED_TIME.to_string(),
                "inclusionPromise": { "signedEntryTimestamp": BASE64.encode(set) },
                "inclusionProof": {
                    "logIndex": "0",
                    "rootHash": BASE64.encode(root_hash.as_bytes()),
                    "treeSize": "1",
                    "hashes": [],
                    "checkpoint": { "envelope": checkpoint.format().unwrap() },
                },
                "canonicalizedBody": BASE64.encode(&body),
            }],
            "timestampVerificationData": { "rfc3161Timestamps": [] },
        },
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": digest.to_base64() },
            "signature": BASE64.encode(&signature),
        },
    });
    let root = json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": format!("https://{ORIGIN}"),
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": BASE64.encode(&log_spki),
                "keyDetails": "PKIX_ED25519",
                "validFor": { "start": "2020-01-01T00:00:00Z" },
            },
            "logId": { "keyId": BASE64.encode(log_id.as_bytes()) },
        }],
    });
    Fixture {
        bundle,
        root,
        policy: Policy::Key(PublicKey::from_spki_der(&spki).unwrap()),
    }
}

fn verify(fixture: &Fixture, bundle: &Value) -> Result<client::Verified, VerifyError> {
    let bundle = Bundle::from_json(&serde_json::to_vec(bundle).unwrap()).unwrap();
    let root = TrustedRoot::from_json(&serde_json::to_vec(&fixture.root).unwrap()).unwrap();
    client::verify::verify(
        &bundle,
        &root,
        &Artifact::from_bytes(ARTIFACT),
        &fixture.policy,
    )
}

fn entry(bundle: &mut Value) -> &mut Value {
    &mut bundle["verificationMaterial"]["tlogEntries"][0]
}

fn remove(value: &mut Value, key: &str) {
    value.as_object_mut().unwrap().remove(key).unwrap();
}

#[test]
fn every_field_written_verifies() {
    let fixture = fixture();
    let verified = verify(&fixture, &fixture.bundle).unwrap();
    assert_eq!(verified.log_indices, [0]);
}

#[test]
fn default_values_left_out_verify() {
    let fixture = fixture();
    let mut bundle = fixture.bundle.clone();
    // What Go's protojson writes for the first entry of a log: no index anywhere, no empty
    // list, no empty hint.
    remove(entry(&mut bundle), "logIndex");
    remove(&mut entry(&mut bundle)["inclusionProof"], "logIndex");
    remove(&mut entry(&mut bundle)["inclusionProof"], "hashes");
    remove(
        &mut bundle["verificationMaterial"]["timestampVerificationData"],
        "rfc3161Timestamps",
    );
    remove(&mut bundle["verificationMaterial"]["publicKey"], "hint");
    let verified = verify(&fixture, &bundle).unwrap();
    assert_eq!(verified.log_indices, [0]);

    // With the empty message left out too.
    remove(
        &mut bundle["verificationMaterial"],
        "timestampVerificationData",
    );
    verify(&fixture, &bundle).unwrap();
}

#[test]
fn null_is_the_default_value() {
    let fixture = fixture();
    let mut bundle = fixture.bundle.clone();
    entry(&mut bundle)["logIndex"] = Value::Null;
    entry(&mut bundle)["inclusionProof"]["logIndex"] = Value::Null;
    entry(&mut bundle)["inclusionProof"]["hashes"] = Value::Null;
    bundle["verificationMaterial"]["timestampVerificationData"] = Value::Null;
    assert_eq!(verify(&fixture, &bundle).unwrap().log_indices, [0]);
}

#[test]
fn numbers_proto_names_and_enum_numbers_are_read() {
    let fixture = fixture();
    let mut bundle = fixture.bundle.clone();
    entry(&mut bundle)["logIndex"] = json!(0);
    entry(&mut bundle)["inclusionProof"]["treeSize"] = json!(1);
    entry(&mut bundle)["integratedTime"] = json!(INTEGRATED_TIME);
    // HashAlgorithm.SHA2_256 = 1.
    bundle["messageSignature"]["messageDigest"]["algorithm"] = json!(1);
    verify(&fixture, &bundle).unwrap();

    // The proto field names instead of the lowerCamel ones.
    let text = serde_json::to_string(&fixture.bundle)
        .unwrap()
        .replace("\"mediaType\"", "\"media_type\"")
        .replace("\"verificationMaterial\"", "\"verification_material\"")
        .replace("\"tlogEntries\"", "\"tlog_entries\"")
        .replace("\"logIndex\"", "\"log_index\"")
        .replace("\"kindVersion\"", "\"kind_version\"")
        .replace("\"canonicalizedBody\"", "\"canonicalized_body\"")
        .replace("\"rootHash\"", "\"root_hash\"")
        .replace("\"signedEntryTimestamp\"", "\"signed_entry_timestamp\"");
    verify(&fixture, &serde_json::from_str(&text).unwrap()).unwrap();
}

#[test]
fn defaults_are_still_checked_where_they_are_wrong() {
    let fixture = fixture();
    // Both names of one field are one field given twice.
    let mut bundle = fixture.bundle.clone();
    entry(&mut bundle)["log_index"] = json!("0");
    assert!(Bundle::from_json(&serde_json::to_vec(&bundle).unwrap()).is_err());

    // No integrated time (0) under a SET: the SET cannot be checked.
    let mut bundle = fixture.bundle.clone();
    remove(entry(&mut bundle), "integratedTime");
    assert!(matches!(
        verify(&fixture, &bundle),
        Err(VerifyError::LogEntry(LogEntryError::SignedEntryTimestamp(
            _
        )))
    ));

    // An empty checkpoint is no checkpoint, which a v0.3 bundle must have.
    let mut bundle = fixture.bundle.clone();
    entry(&mut bundle)["inclusionProof"]["checkpoint"] = json!({});
    assert!(Bundle::from_json(&serde_json::to_vec(&bundle).unwrap()).is_err());

    // A tree of size 0 (the default) proves nothing.
    let mut bundle = fixture.bundle.clone();
    remove(&mut entry(&mut bundle)["inclusionProof"], "treeSize");
    assert!(matches!(
        verify(&fixture, &bundle),
        Err(VerifyError::LogEntry(LogEntryError::InclusionProof(_)))
    ));

    // An index the SET does not cover.
    let mut bundle = fixture.bundle.clone();
    entry(&mut bundle)["logIndex"] = json!("1");
    assert!(matches!(
        verify(&fixture, &bundle),
        Err(VerifyError::LogEntry(LogEntryError::SignedEntryTimestamp(
            _
        )))
    ));

    // An unset hash algorithm (0) is not one a digest can be checked with.
    let mut bundle = fixture.bundle.clone();
    remove(
        &mut bundle["messageSignature"]["messageDigest"],
        "algorithm",
    );
    assert!(Bundle::from_json(&serde_json::to_vec(&bundle).unwrap()).is_err());

    // No media type is no known version.
    let mut bundle = fixture.bundle.clone();
    remove(&mut bundle, "mediaType");
    assert!(Bundle::from_json(&serde_json::to_vec(&bundle).unwrap()).is_err());
}

fn verify_with_root(fixture: &Fixture, root: &Value) -> Result<client::Verified, client::Error> {
    client::verify_bundle(
        &serde_json::to_vec(&fixture.bundle).unwrap(),
        &serde_json::to_vec(root).unwrap(),
        &Artifact::from_bytes(ARTIFACT),
        &fixture.policy,
    )
}

#[test]
fn trusted_roots_follow_the_same_rules() {
    let fixture = fixture();
    // Empty lists left out or null, the hash algorithm by number, proto field names.
    let mut root = fixture.root.clone();
    root["certificateAuthorities"] = Value::Null;
    root["tlogs"][0]["hashAlgorithm"] = json!(1);
    let text = serde_json::to_string(&root)
        .unwrap()
        .replace("\"baseUrl\"", "\"base_url\"")
        .replace("\"publicKey\"", "\"public_key\"")
        .replace("\"rawBytes\"", "\"raw_bytes\"")
        .replace("\"validFor\"", "\"valid_for\"");
    let root: Value = serde_json::from_str(&text).unwrap();
    verify_with_root(&fixture, &root).unwrap();

    // A log with no baseUrl parses; like sigstore-go, the checkpoint check then has no name.
    let mut root = fixture.root.clone();
    remove(&mut root["tlogs"][0], "baseUrl");
    assert!(TrustedRoot::from_json(&serde_json::to_vec(&root).unwrap()).is_ok());

    // Defaults that are wrong are refused by the checks: no validity start, an unspecified
    // hash algorithm, no key.
    let edits: [fn(&mut Value); 3] = [
        |root: &mut Value| remove(&mut root["tlogs"][0]["publicKey"], "validFor"),
        |root: &mut Value| remove(&mut root["tlogs"][0], "hashAlgorithm"),
        |root: &mut Value| remove(&mut root["tlogs"][0], "publicKey"),
    ];
    for edit in edits {
        let mut root = fixture.root.clone();
        edit(&mut root);
        assert!(verify_with_root(&fixture, &root).is_err(), "{root}");
    }
}
