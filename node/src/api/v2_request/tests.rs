use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tlog::entry::{Entry, pae};

use super::*;

const ARTIFACT: &[u8] = b"cairn v2 request test artifact";

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialises")
}

fn read(path: &str) -> Vec<u8> {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

struct P256 {
    pair: lc::EcdsaKeyPair,
    spki: Vec<u8>,
}

impl P256 {
    fn new() -> P256 {
        let pair = lc::EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        let spki = pair.public_key().as_der().expect("spki").as_ref().to_vec();
        P256 { pair, spki }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .expect("sign")
            .as_ref()
            .to_vec()
    }

    fn verifier(&self) -> Value {
        json!({"publicKey": {"rawBytes": b64(&self.spki)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"})
    }
}

/// A valid hashedrekord request by `key` over ARTIFACT.
fn hashed_rekord(key: &P256) -> Value {
    json!({"hashedRekordRequestV002": {
        "digest": b64(&Sha256::digest(ARTIFACT)),
        "signature": {"content": b64(&key.sign(ARTIFACT)), "verifier": key.verifier()},
    }})
}

fn error_of(value: &Value) -> RequestError {
    decode(&bytes(value)).expect_err("request must be refused")
}

fn assert_refused(body: &[u8], code: &str, message_contains: &str) {
    let error = decode(body).expect_err("request must be refused");
    assert_eq!(error.code(), code, "{error}");
    assert!(
        error.to_string().contains(message_contains),
        "{error:?} / {error}"
    );
}

#[test]
fn hashed_rekord_round_trip() {
    let key = P256::new();
    let request = hashed_rekord(&key);
    let accepted = decode(&bytes(&request)).expect("valid request");
    assert_eq!((accepted.kind, accepted.version), ("hashedrekord", "0.0.2"));
    let Entry::HashedRekordV002(entry) = accepted.body.entry() else {
        panic!("not a hashedrekord v0.0.2: {:?}", accepted.body.entry());
    };
    assert_eq!(
        entry.digest().as_bytes(),
        Sha256::digest(ARTIFACT).as_slice()
    );
    // The body parses back as canonical.
    assert_eq!(
        CanonicalBody::parse(accepted.body.as_bytes()).expect("canonical"),
        accepted.body
    );

    // Tamper with the digest: same shape, signature no longer verifies.
    let mut tampered = request.clone();
    tampered["hashedRekordRequestV002"]["digest"] =
        json!(b64(&Sha256::digest(b"another artifact")));
    let error = error_of(&tampered);
    assert_eq!(error.code(), "bad_signature");
    assert_eq!(
        error.to_string(),
        "hashedRekordRequestV002.signature.content: signature does not verify with PKIX_ECDSA_P256_SHA_256"
    );
    // Another key's verifier.
    let mut other = request.clone();
    other["hashedRekordRequestV002"]["signature"]["verifier"] = P256::new().verifier();
    assert_eq!(error_of(&other).code(), "bad_signature");
}

#[test]
fn rsa_certificate_verifier() {
    let message = read("testdata/crypto/message.txt");
    let request = json!({"hashedRekordRequestV002": {
        "digest": b64(&Sha256::digest(&message)),
        "signature": {
            "content": b64(&read("testdata/crypto/rsa2048.message.sig")),
            "verifier": {"x509Certificate": {"rawBytes": b64(&read("testdata/crypto/rsa2048.cert.der"))},
                         "keyDetails": "PKIX_RSA_PKCS1V15_2048_SHA256"},
        },
    }});
    decode(&bytes(&request)).expect("valid RSA request");
    let mut wrong_size = request.clone();
    wrong_size["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] =
        json!("PKIX_RSA_PKCS1V15_3072_SHA256");
    let error = error_of(&wrong_size);
    assert_eq!(error.code(), "key_mismatch");
    assert_eq!(
        error.to_string(),
        "hashedRekordRequestV002.signature.verifier.x509Certificate.rawBytes: the key is a 2048-bit RSA key, \
         but keyDetails declares PKIX_RSA_PKCS1V15_3072_SHA256"
    );
    let mut weak = request.clone();
    weak["hashedRekordRequestV002"]["signature"]["verifier"] = json!({
        "publicKey": {"rawBytes": b64(&read("testdata/crypto/rsa1024.spki.der"))},
        "keyDetails": "PKIX_RSA_PKCS1V15_2048_SHA256"});
    let error = error_of(&weak);
    assert_eq!(error.code(), "weak_key");
    assert_eq!(
        error.to_string(),
        "hashedRekordRequestV002.signature.verifier.publicKey.rawBytes: RSA key is 1024 bits, at least 2048 required"
    );
}

/// The sigstore-conformance `rekor2-happy-path` bundle (logged by Rekor v2 staging): its
/// certificate, signature and digest, sent as a v2 request, give exactly its logged body.
#[test]
fn conformance_bundle_hashed_rekord() {
    let bundle: Value = serde_json::from_slice(&read(
        "../tlog/testdata/entry/rekor2-happy-path.sigstore.json",
    ))
    .expect("bundle");
    let logged = BASE64
        .decode(
            bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]
                .as_str()
                .expect("body"),
        )
        .expect("base64");
    let request = json!({"hashedRekordRequestV002": {
        "digest": bundle["messageSignature"]["messageDigest"]["digest"],
        "signature": {
            "content": bundle["messageSignature"]["signature"],
            "verifier": {"x509Certificate": {"rawBytes": bundle["verificationMaterial"]["certificate"]["rawBytes"]},
                         "keyDetails": "PKIX_ECDSA_P256_SHA_256"},
        },
    }});
    let accepted = decode(&bytes(&request)).expect("the real bundle verifies");
    assert_eq!(
        String::from_utf8_lossy(accepted.body.as_bytes()),
        String::from_utf8_lossy(&logged)
    );
    // One flipped bit of the digest and it no longer verifies.
    let mut digest = BASE64
        .decode(
            request["hashedRekordRequestV002"]["digest"]
                .as_str()
                .expect("s"),
        )
        .expect("b64");
    digest[31] ^= 1;
    let mut tampered = request.clone();
    tampered["hashedRekordRequestV002"]["digest"] = json!(b64(&digest));
    assert_eq!(error_of(&tampered).code(), "bad_signature");
}

/// The `rekor2-dsse-happy-path` bundle: its envelope, logged as Rekor v2 clients do now (a
/// hashedrekord over the SHA-256 of the PAE), gives the logged body; sent as a
/// `dsseRequestV002`, the same real signature verifies over the PAE.
#[test]
fn conformance_bundle_dsse() {
    let bundle: Value = serde_json::from_slice(&read(
        "../tlog/testdata/entry/rekor2-dsse-happy-path.sigstore.json",
    ))
    .expect("bundle");
    let envelope = &bundle["dsseEnvelope"];
    let payload = BASE64
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("b64");
    let pae_digest = Sha256::digest(pae(
        envelope["payloadType"].as_str().expect("type"),
        &payload,
    ));
    let certificate = &bundle["verificationMaterial"]["certificate"]["rawBytes"];
    let verifier = json!({"x509Certificate": {"rawBytes": certificate}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"});
    let request = json!({"hashedRekordRequestV002": {
        "digest": b64(&pae_digest),
        "signature": {"content": envelope["signatures"][0]["sig"], "verifier": verifier},
    }});
    let logged = BASE64
        .decode(
            bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]
                .as_str()
                .expect("body"),
        )
        .expect("base64");
    assert_eq!(
        decode(&bytes(&request)).expect("verifies").body.as_bytes(),
        logged.as_slice()
    );

    let dsse = json!({"dsseRequestV002": {"envelope": envelope, "verifiers": [verifier]}});
    let accepted = decode(&bytes(&dsse)).expect("dsse request verifies");
    assert_eq!((accepted.kind, accepted.version), ("dsse", "0.0.2"));
    let Entry::DsseV002(entry) = accepted.body.entry() else {
        panic!("not dsse v0.0.2");
    };
    assert_eq!(
        entry.payload_hash().as_bytes(),
        Sha256::digest(&payload).as_slice()
    );
    // A changed payload type changes the PAE: refused.
    let mut tampered = dsse.clone();
    tampered["dsseRequestV002"]["envelope"]["payloadType"] = json!("text/plain");
    let error = error_of(&tampered);
    assert_eq!(error.code(), "bad_signature");
    assert_eq!(
        error.to_string(),
        "dsseRequestV002.envelope.signatures[0].sig: verifies with none of the verifiers"
    );
}

fn dsse_request(payload: &[u8], signers: &[&P256], verifiers: &[&P256]) -> Value {
    let signed = pae("application/vnd.in-toto+json", payload);
    let signatures: Vec<Value> = signers
        .iter()
        .map(|key| json!({"sig": b64(&key.sign(&signed))}))
        .collect();
    json!({"dsseRequestV002": {
        "envelope": {"payload": b64(payload), "payloadType": "application/vnd.in-toto+json", "signatures": signatures},
        "verifiers": verifiers.iter().map(|key| key.verifier()).collect::<Vec<_>>(),
    }})
}

#[test]
fn dsse_signatures_are_matched_to_distinct_verifiers() {
    let (a, b, c) = (P256::new(), P256::new(), P256::new());
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
    // Verifiers in any order.
    let in_order =
        decode(&bytes(&dsse_request(payload, &[&a, &b, &c], &[&a, &b, &c]))).expect("in order");
    let shuffled =
        decode(&bytes(&dsse_request(payload, &[&a, &b, &c], &[&c, &a, &b]))).expect("shuffled");
    let Entry::DsseV002(entry) = shuffled.body.entry() else {
        panic!("not dsse")
    };
    assert_eq!(entry.signatures().len(), 3);
    assert_eq!(in_order.body.entry().kind(), "dsse");
    // Each signature's verifier in the entry is the key that made it.
    for signature in entry.signatures() {
        PublicKey::new(&signature.verifier)
            .expect("key")
            .verify_message(
                &pae("application/vnd.in-toto+json", payload),
                signature.content.as_bytes(),
            )
            .expect("entry pairs each signature with its verifier");
    }
    // A signer that is not among the verifiers.
    let error = error_of(&dsse_request(payload, &[&a, &b], &[&a, &c]));
    assert_eq!(error.code(), "bad_signature");
    assert_eq!(
        error.to_string(),
        "dsseRequestV002.envelope.signatures[1].sig: verifies with none of the verifiers"
    );
    // Two signatures by one key cannot share its one verifier.
    let error = error_of(&dsse_request(payload, &[&a, &a], &[&a, &b]));
    assert_eq!(
        error.to_string(),
        "dsseRequestV002.envelope.signatures[1].sig: verifies only with verifiers already used by other signatures"
    );
    // As many verifiers as signatures.
    let error = error_of(&dsse_request(payload, &[&a], &[&a, &b]));
    assert_eq!(error.code(), "verifier_count");
    assert_eq!(
        error.to_string(),
        "dsseRequestV002.verifiers: 2 verifiers for 1 signatures"
    );
    // Empty payload, duplicate signature, empty signature list.
    let mut empty = dsse_request(payload, &[&a], &[&a]);
    empty["dsseRequestV002"]["envelope"]["payload"] = json!("");
    assert_refused(
        &bytes(&empty),
        "empty_field",
        "dsseRequestV002.envelope.payload: empty",
    );
    let mut duplicate = dsse_request(payload, &[&a, &b], &[&a, &b]);
    duplicate["dsseRequestV002"]["envelope"]["signatures"][1] =
        duplicate["dsseRequestV002"]["envelope"]["signatures"][0].clone();
    assert_refused(
        &bytes(&duplicate),
        "duplicate_signature",
        "dsseRequestV002.envelope.signatures[1].sig",
    );
    let mut none = dsse_request(payload, &[&a], &[&a]);
    none["dsseRequestV002"]["envelope"]["signatures"] = json!([]);
    assert_refused(
        &bytes(&none),
        "empty_field",
        "dsseRequestV002.envelope.signatures: empty",
    );
    // keyid is allowed, unknown signature members are not.
    let mut keyid = dsse_request(payload, &[&a], &[&a]);
    keyid["dsseRequestV002"]["envelope"]["signatures"][0]["keyid"] = json!("");
    decode(&bytes(&keyid)).expect("keyid is accepted");
    keyid["dsseRequestV002"]["envelope"]["signatures"][0]["extra"] = json!("x");
    assert_refused(
        &bytes(&keyid),
        "unknown_field",
        "dsseRequestV002.envelope.signatures[0].extra",
    );
}

#[test]
fn size_and_json_syntax() {
    let key = P256::new();
    let valid = bytes(&hashed_rekord(&key));
    // Size.
    let mut huge = valid.clone();
    huge.resize(REQUEST_BYTES_MAX + 1, b' ');
    let error = decode(&huge).expect_err("too large");
    assert_eq!((error.code(), error.http_status()), ("body_too_large", 413));
    // Whitespace up to the limit is fine.
    let mut padded = valid.clone();
    padded.resize(REQUEST_BYTES_MAX, b' ');
    decode(&padded).expect("padding within the limit");
    // Syntax.
    assert_refused(&valid[..valid.len() - 1], "invalid_json", "EOF");
    assert_refused(
        &[valid.as_slice(), b"{}"].concat(),
        "invalid_json",
        "trailing",
    );
    assert_refused(b"", "invalid_json", "");
    assert_refused(b"{\"hashedRekordRequestV002\": NaN}", "invalid_json", "");
    let mut invalid_utf8 = valid.clone();
    let at = invalid_utf8
        .windows(6)
        .position(|w| w == b"digest")
        .expect("digest member");
    invalid_utf8[at] = 0xff;
    assert_refused(&invalid_utf8, "invalid_json", "");
    // Not an object, null, numbers where strings belong.
    assert_refused(b"[]", "wrong_type", "request: expected an object");
    assert_refused(
        b"{\"hashedRekordRequestV002\": null}",
        "wrong_type",
        "hashedRekordRequestV002: expected an object",
    );
    let mut number = hashed_rekord(&key);
    number["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] = json!(1);
    assert_refused(
        &bytes(&number),
        "wrong_type",
        "hashedRekordRequestV002.signature.verifier.keyDetails: expected a string",
    );
    assert_refused(
        b"{\"hashedRekordRequestV002\": {\"digest\": 1e999}}",
        "invalid_json",
        "",
    );
}

#[test]
fn duplicate_members_depth_and_width() {
    let key = P256::new();
    let valid = String::from_utf8(bytes(&hashed_rekord(&key))).expect("utf8");
    // A duplicate member, nested: serde_json would keep the last one silently.
    let duplicated = valid.replacen("\"digest\":", "\"digest\":\"AAAA\",\"digest\":", 1);
    let error = decode(duplicated.as_bytes()).expect_err("duplicate");
    assert_eq!(error.code(), "duplicate_member");
    assert_eq!(
        error.to_string(),
        "hashedRekordRequestV002.digest: duplicate member"
    );
    let top = format!("{{\"dsseRequestV002\":{{}},{}", &valid[1..]).replacen(
        "{\"dsseRequestV002\":{},",
        "{\"a\":1,\"a\":2,",
        1,
    );
    assert_refused(top.as_bytes(), "duplicate_member", "a: duplicate member");
    // Depth: 32 levels parse (and are then refused for their shape), 33 do not.
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_refused(nested(JSON_DEPTH_MAX).as_bytes(), "wrong_type", "");
    let error = decode(nested(JSON_DEPTH_MAX + 1).as_bytes()).expect_err("too deep");
    assert_eq!(error.code(), "too_deep");
    assert!(
        error
            .to_string()
            .ends_with("JSON nested deeper than 32 levels"),
        "{error}"
    );
    let deep_object = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    assert_refused(deep_object.as_bytes(), "too_deep", "a.a.a");
    // Width.
    let wide: Vec<u8> = format!("[{}0]", "0,".repeat(JSON_MEMBERS_MAX)).into_bytes();
    assert_refused(&wide, "too_many", "request: 65 items, at most 64 allowed");
    let members: Vec<String> = (0..=JSON_MEMBERS_MAX)
        .map(|i| format!("\"m{i}\":0"))
        .collect();
    assert_refused(
        format!("{{{}}}", members.join(",")).as_bytes(),
        "too_many",
        "request: 65 items",
    );
    let nested_wide = format!("{{\"hashedRekordRequestV002\":{{{}}}}}", members.join(","));
    assert_refused(
        nested_wide.as_bytes(),
        "too_many",
        "hashedRekordRequestV002: 65 items",
    );
}

#[test]
fn unknown_server_and_missing_fields() {
    let key = P256::new();
    let valid = hashed_rekord(&key);
    let with = |path: &[&str], name: &str, value: Value| {
        let mut request = valid.clone();
        let mut target = &mut request;
        for segment in path {
            target = &mut target[*segment];
        }
        target[name] = value;
        request
    };
    let error = error_of(&with(
        &["hashedRekordRequestV002", "signature"],
        "extra",
        json!("x"),
    ));
    assert_eq!(
        (error.code(), error.to_string().as_str()),
        (
            "unknown_field",
            "hashedRekordRequestV002.signature.extra: unknown field"
        )
    );
    for server in [
        "logIndex",
        "integratedTime",
        "canonicalizedBody",
        "inclusionProof",
        "logId",
    ] {
        let error = error_of(&with(&[], server, json!("0")));
        assert_eq!(error.code(), "server_field", "{server}");
        assert_eq!(
            error.to_string(),
            format!("{server}: set by the log, not by the client")
        );
        let nested = error_of(&with(&["hashedRekordRequestV002"], server, json!(7)));
        assert_eq!(nested.code(), "server_field");
    }
    // Proto field names are not accepted.
    let mut snake = Map::new();
    snake.insert(
        "hashed_rekord_request_v002".to_owned(),
        valid["hashedRekordRequestV002"].clone(),
    );
    assert_refused(
        &bytes(&Value::Object(snake)),
        "unknown_field",
        "hashed_rekord_request_v002",
    );
    // Missing members, at every level.
    for (path, member) in [
        (vec!["hashedRekordRequestV002"], "digest"),
        (vec!["hashedRekordRequestV002"], "signature"),
        (vec!["hashedRekordRequestV002", "signature"], "content"),
        (vec!["hashedRekordRequestV002", "signature"], "verifier"),
        (
            vec!["hashedRekordRequestV002", "signature", "verifier"],
            "keyDetails",
        ),
        (
            vec![
                "hashedRekordRequestV002",
                "signature",
                "verifier",
                "publicKey",
            ],
            "rawBytes",
        ),
    ] {
        let mut request = valid.clone();
        let mut target = &mut request;
        for segment in &path {
            target = &mut target[*segment];
        }
        target.as_object_mut().expect("object").remove(member);
        let error = error_of(&request);
        assert_eq!(error.code(), "missing_field", "{error}");
        assert_eq!(
            error.to_string(),
            format!("{}.{member}: missing", path.join("."))
        );
    }
    // Empty values.
    let error = error_of(&with(&["hashedRekordRequestV002"], "digest", json!("")));
    assert_eq!(error.to_string(), "hashedRekordRequestV002.digest: empty");
    assert_eq!(error.code(), "empty_field");
    let error = error_of(&with(
        &["hashedRekordRequestV002", "signature"],
        "content",
        json!(""),
    ));
    assert_eq!(error.code(), "empty_field");
}

#[test]
fn one_of_rules() {
    let key = P256::new();
    let valid = hashed_rekord(&key);
    assert_refused(
        b"{}",
        "one_of",
        "request: exactly one of hashedRekordRequestV002, dsseRequestV002 required, 0 present",
    );
    let mut both = valid.clone();
    both["dsseRequestV002"] = json!({});
    assert_refused(&bytes(&both), "one_of", "2 present");
    let mut two_keys = valid.clone();
    two_keys["hashedRekordRequestV002"]["signature"]["verifier"]["x509Certificate"] =
        json!({"rawBytes": b64(&key.spki)});
    assert_refused(
        &bytes(&two_keys),
        "one_of",
        "hashedRekordRequestV002.signature.verifier: exactly one of publicKey, x509Certificate required, 2 present",
    );
    let mut no_key = valid.clone();
    no_key["hashedRekordRequestV002"]["signature"]["verifier"]
        .as_object_mut()
        .expect("o")
        .remove("publicKey");
    assert_refused(&bytes(&no_key), "one_of", "0 present");
}

#[test]
fn base64_digest_and_key_details() {
    let key = P256::new();
    let valid = hashed_rekord(&key);
    let digest = Sha256::digest(ARTIFACT);
    let set_digest = |text: String| {
        let mut request = valid.clone();
        request["hashedRekordRequestV002"]["digest"] = json!(text);
        request
    };
    // Unpadded, URL-safe, non-canonical trailing bits, garbage.
    let standard = b64(&digest);
    for bad in [
        standard.trim_end_matches('=').to_owned(),
        base64::engine::general_purpose::URL_SAFE.encode([0xfb; 32]),
        format!("{}B=", &standard[..standard.len() - 2]),
        "not base64!".to_owned(),
    ] {
        let error = error_of(&set_digest(bad.clone()));
        assert_eq!(error.code(), "invalid_base64", "{bad}: {error}");
        assert_eq!(
            error.to_string(),
            "hashedRekordRequestV002.digest: not canonical standard base64 with padding"
        );
    }
    // A digest of the wrong length for the declared key details.
    let error = error_of(&set_digest(b64(&digest[..20])));
    assert_eq!(error.code(), "invalid_digest");
    assert_eq!(
        error.to_string(),
        "hashedRekordRequestV002.digest: digest is 20 bytes, sha256 needs 32"
    );
    let error = error_of(&set_digest(b64(&[0; 100])));
    assert_eq!(error.code(), "too_long");
    // Key details: unknown, deprecated, and pure Ed25519 (no digest to sign).
    for (details, code) in [
        ("PKIX_ECDSA_P256_SHA_999", "unsupported_key"),
        ("PKIX_RSA_PKCS1V5", "unsupported_key"),
        ("PKIX_ED25519", "unsupported_key"),
    ] {
        let mut request = valid.clone();
        request["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] = json!(details);
        let error = error_of(&request);
        assert_eq!(error.code(), code, "{details}: {error}");
        assert!(
            error
                .to_string()
                .starts_with("hashedRekordRequestV002.signature.verifier.keyDetails: "),
            "{error}"
        );
    }
    // A P-256 key declared as P-384 (with a SHA-384-sized digest so the digest check passes).
    let mut mismatch = valid.clone();
    mismatch["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] =
        json!("PKIX_ECDSA_P384_SHA_384");
    mismatch["hashedRekordRequestV002"]["digest"] = json!(b64(&[1; 48]));
    let error = error_of(&mismatch);
    assert_eq!(error.code(), "key_mismatch");
    assert_eq!(
        error.to_string(),
        "hashedRekordRequestV002.signature.verifier.publicKey.rawBytes: the key is an ECDSA P-256 key, \
         but keyDetails declares PKIX_ECDSA_P384_SHA_384"
    );
    // Malformed DER.
    let mut garbage = valid.clone();
    garbage["hashedRekordRequestV002"]["signature"]["verifier"]["publicKey"]["rawBytes"] =
        json!(b64(b"garbage"));
    assert_refused(
        &bytes(&garbage),
        "invalid_key",
        "hashedRekordRequestV002.signature.verifier.publicKey.rawBytes: malformed",
    );
}

#[test]
fn parse_does_not_verify() {
    // The split API: `parse` accepts a well-formed request with a wrong signature, `verify`
    // refuses it.
    let key = P256::new();
    let mut request = hashed_rekord(&key);
    request["hashedRekordRequestV002"]["signature"]["content"] =
        json!(b64(&key.sign(b"something else")));
    let parsed = parse(&bytes(&request)).expect("well formed");
    assert_eq!(parsed.kind(), "hashedrekord");
    assert_eq!(
        parsed.verify().expect_err("bad signature").code(),
        "bad_signature"
    );
}
