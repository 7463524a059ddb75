//! intoto 0.0.2 entries through the Rekor v1 API's checks (`verify_and_canonicalize`), as
//! sigstore-js proposes them, and the errors for kinds and versions it does not take.

#![allow(clippy::unwrap_used)]

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature as EcdsaSignature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;
use tlog::entry::{CanonicalBody, Entry, KeyMaterial};

use super::*;
use serde_json::json;

const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const PAYLOAD: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

/// What sigstore-js posts for a DSSE envelope in its legacy mode (`toProposedIntotoEntry`).
fn proposed(signer: &SigningKey, key: &SigningKey) -> Value {
    let signature: EcdsaSignature = signer.sign(&tlog::entry::pae(PAYLOAD_TYPE, PAYLOAD));
    let spki = key.verifying_key().to_public_key_der().unwrap();
    let pem = KeyMaterial::from_public_key_der(spki.as_bytes())
        .unwrap()
        .to_pem();
    json!({
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": PAYLOAD_TYPE,
                    "payload": BASE64.encode(BASE64.encode(PAYLOAD)),
                    "signatures": [{
                        "sig": BASE64.encode(BASE64.encode(signature.to_der().as_bytes())),
                        "publicKey": BASE64.encode(pem),
                    }],
                },
                "hash": { "algorithm": "sha256", "value": "ab".repeat(32) },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hex::encode(Digest::sha256(PAYLOAD).as_bytes()),
                },
            },
        },
    })
}

#[test]
fn intoto_v002_entries_are_accepted_and_logged_as_rekor_does() {
    let key = signing_key(1);
    let body = verify_and_canonicalize(&proposed(&key, &key)).unwrap();
    let body = CanonicalBody::parse(body.as_bytes()).unwrap();
    let Entry::IntotoV002(entry) = body.entry() else {
        panic!("not an intoto entry: {:?}", body.entry());
    };
    assert_eq!(entry.payload_type(), PAYLOAD_TYPE);
    assert_eq!(entry.payload_hash(), &Digest::sha256(PAYLOAD));
    // Rekor drops the payload from the logged body.
    assert!(!String::from_utf8_lossy(body.as_bytes()).contains("payload\""));
    // `retrieve` finds it by the same body.
    assert_eq!(
        canonical_entry(&proposed(&key, &key)).unwrap().as_bytes(),
        body.as_bytes()
    );
}

#[test]
fn intoto_v002_signatures_must_verify_with_their_key() {
    let error = verify_and_canonicalize(&proposed(&signing_key(1), &signing_key(2))).unwrap_err();
    assert_eq!(error.code, "bad_signature", "{}", error.message);
    assert!(error.message.contains("signatures[0]"), "{}", error.message);
}

#[test]
fn unknown_kinds_and_versions_are_named_plainly() {
    let key = signing_key(1);
    let cases = [
        (
            "intoto",
            Some("0.0.1"),
            "unsupported_version",
            "intoto apiVersion \"0.0.1\"",
        ),
        (
            "dsse",
            Some("0.0.2"),
            "unsupported_version",
            "dsse apiVersion \"0.0.2\"",
        ),
        (
            "hashedrekord",
            None,
            "unsupported_version",
            "hashedrekord apiVersion missing",
        ),
        (
            "rekord",
            Some("0.0.1"),
            "unsupported_kind",
            "kind \"rekord\"",
        ),
    ];
    for (kind, version, code, text) in cases {
        let mut request = proposed(&key, &key);
        request["kind"] = json!(kind);
        match version {
            Some(version) => request["apiVersion"] = json!(version),
            None => {
                request.as_object_mut().unwrap().remove("apiVersion");
            }
        }
        let error = verify_and_canonicalize(&request).unwrap_err();
        assert_eq!(error.code, code, "{}", error.message);
        assert!(error.message.contains(text), "{}", error.message);
        assert!(!error.message.contains("Some("), "{}", error.message);
    }
    let mut request = proposed(&key, &key);
    request.as_object_mut().unwrap().remove("kind");
    let error = verify_and_canonicalize(&request).unwrap_err();
    assert_eq!(error.code, "unsupported_kind");
    assert!(
        error.message.starts_with("kind missing"),
        "{}",
        error.message
    );
}
