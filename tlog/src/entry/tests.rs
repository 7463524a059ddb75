//! Golden bodies from real Rekor logs (sigstore-conformance bundles in `tlog/testdata/entry/`),
//! rejection cases, and a build → parse round-trip property.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::proof::verify_inclusion_bytes;

const HAPPY_PATH_V03: &str = include_str!("../../testdata/entry/happy-path-v0.3.sigstore.json");
const MANAGED_KEY: &str = include_str!("../../testdata/entry/managed-key-happy-path.sigstore.json");
const MANAGED_KEY_PEM: &str = include_str!("../../testdata/entry/managed-key-happy-path.key.pub");
const DSSE_V001: &str = include_str!("../../testdata/entry/dsse-invalid-sig_fail.sigstore.json");
const REKOR2_HAPPY_PATH: &str =
    include_str!("../../testdata/entry/rekor2-happy-path.sigstore.json");
const REKOR2_DSSE: &str = include_str!("../../testdata/entry/rekor2-dsse-happy-path.sigstore.json");
const INTOTO_V002: &str =
    include_str!("../../testdata/entry/sigstore-js-intoto-v002.sigstore.json");

fn b64(value: &Value) -> Vec<u8> {
    BASE64.decode(value.as_str().unwrap()).unwrap()
}

fn bundle(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn tlog_entry(bundle: &Value) -> &Value {
    &bundle["verificationMaterial"]["tlogEntries"][0]
}

fn logged_body(bundle: &Value) -> Vec<u8> {
    b64(&tlog_entry(bundle)["canonicalizedBody"])
}

/// The one check every golden case makes: the rebuilt body is the logged one, it parses back
/// as canonical to the same entry, and its leaf hash is in the log per the bundle's proof.
fn check_golden(bundle: &Value, entry: &Entry) {
    let logged = logged_body(bundle);
    let built = CanonicalBody::new(entry.clone()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(built.as_bytes()),
        String::from_utf8_lossy(&logged)
    );
    let parsed = CanonicalBody::parse(&logged).unwrap();
    assert_eq!(parsed.entry(), entry);
    assert_eq!(&check_canonical(&logged).unwrap(), entry);

    let tlog = tlog_entry(bundle);
    assert_eq!(tlog["kindVersion"]["kind"], entry.kind());
    assert_eq!(tlog["kindVersion"]["version"], entry.api_version());
    let proof = &tlog["inclusionProof"];
    let index: u64 = proof["logIndex"].as_str().unwrap().parse().unwrap();
    let size: u64 = proof["treeSize"].as_str().unwrap().parse().unwrap();
    let hashes: Vec<Vec<u8>> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64)
        .collect();
    let root = b64(&proof["rootHash"]);
    verify_inclusion_bytes(index, size, built.leaf_hash().as_bytes(), &hashes, &root).unwrap();
    assert_eq!(built.leaf_bytes(), logged.as_slice());
}

fn message_signature_parts(bundle: &Value) -> (Digest, SignatureBytes) {
    let message = &bundle["messageSignature"];
    assert_eq!(message["messageDigest"]["algorithm"], "SHA2_256");
    let digest = Digest::new(
        HashAlgorithm::Sha256,
        &b64(&message["messageDigest"]["digest"]),
    );
    let signature = SignatureBytes::new(&b64(&message["signature"]));
    (digest.unwrap(), signature.unwrap())
}

fn certificate_der(bundle: &Value) -> Vec<u8> {
    b64(&bundle["verificationMaterial"]["certificate"]["rawBytes"])
}

#[test]
fn golden_hashedrekord_v001_certificate() {
    let bundle = bundle(HAPPY_PATH_V03);
    let (digest, signature) = message_signature_parts(&bundle);
    let key = KeyMaterial::from_certificate_der(&certificate_der(&bundle)).unwrap();
    check_golden(
        &bundle,
        &Entry::from(HashedRekordV001::new(digest, signature, key)),
    );
}

#[test]
fn golden_hashedrekord_v001_public_key() {
    let bundle = bundle(MANAGED_KEY);
    let (digest, signature) = message_signature_parts(&bundle);
    let key = KeyMaterial::from_pem(MANAGED_KEY_PEM.as_bytes()).unwrap();
    check_golden(
        &bundle,
        &Entry::from(HashedRekordV001::new(digest, signature, key)),
    );
}

/// The intoto 0.0.2 entry of the sigstore-js vector, rebuilt from its bundle (see the README):
/// the entry, and the parts a client proposes (payload, signature, certificate PEM).
fn intoto_golden() -> (Value, IntotoV002, Vec<u8>) {
    let bundle = bundle(INTOTO_V002);
    let envelope = &bundle["dsseEnvelope"];
    let payload = b64(&envelope["payload"]);
    let certificate =
        b64(&bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"]);
    let logged: Value = serde_json::from_slice(&logged_body(&bundle)).unwrap();
    let envelope_hash = Digest::from_hex(
        HashAlgorithm::Sha256,
        logged["spec"]["content"]["hash"]["value"].as_str().unwrap(),
    )
    .unwrap();
    let entry = IntotoV002::new(
        envelope_hash,
        Digest::sha256(&payload),
        envelope["payloadType"].as_str().unwrap().to_owned(),
        vec![IntotoV002Signature {
            keyid: Some(
                envelope["signatures"][0]["keyid"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            sig: SignatureBytes::new(&b64(&envelope["signatures"][0]["sig"])).unwrap(),
            public_key: KeyMaterial::from_certificate_der(&certificate).unwrap(),
        }],
    )
    .unwrap();
    (bundle, entry, payload)
}

#[test]
fn golden_intoto_v002() {
    let (bundle, entry, _) = intoto_golden();
    // The bundle's empty keyid is no keyid, as Rekor omits it.
    assert_eq!(entry.signatures()[0].keyid, None);
    let logged = logged_body(&bundle);
    let built = CanonicalBody::new(entry.clone()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(built.as_bytes()),
        String::from_utf8_lossy(&logged)
    );
    let parsed = CanonicalBody::parse(&logged).unwrap();
    assert_eq!(parsed.entry(), &Entry::IntotoV002(entry));
    assert_eq!(parsed.entry().kind(), "intoto");
    assert_eq!(parsed.entry().api_version(), "0.0.2");
    let tlog = tlog_entry(&bundle);
    assert_eq!(tlog["kindVersion"]["kind"], "intoto");
    assert_eq!(tlog["kindVersion"]["version"], "0.0.2");
}

/// The proposed spec sigstore-js posts for the golden vector's envelope (`toProposedIntotoEntry`
/// in `packages/sign/src/witness/tlog/entry.ts`): payload and signature base64 twice over, the
/// PEM base64 once, `keyid` left out when empty, and both hashes.
fn intoto_proposal(entry: &IntotoV002, payload: &[u8]) -> Value {
    let signature = &entry.signatures()[0];
    serde_json::json!({
        "content": {
            "envelope": {
                "payloadType": entry.payload_type(),
                "payload": BASE64.encode(BASE64.encode(payload)),
                "signatures": [{
                    "sig": BASE64.encode(signature.sig.to_base64()),
                    "publicKey": signature.public_key.to_base64_pem(),
                }],
            },
            "hash": { "algorithm": "sha256", "value": entry.envelope_hash().to_hex() },
            "payloadHash": { "algorithm": "sha256", "value": entry.payload_hash().to_hex() },
        },
    })
}

/// A change to a proposed spec.
type Edit<'a> = Box<dyn Fn(&mut Value) + 'a>;

#[test]
fn intoto_v002_proposals_become_rekors_entry() {
    let (bundle, entry, payload) = intoto_golden();
    let proposed = intoto_proposal(&entry, &payload);
    let proposal = IntotoV002Proposal::parse(&proposed).unwrap();
    assert_eq!(proposal.payload(), payload.as_slice());
    assert_eq!(proposal.pae(), pae(entry.payload_type(), &payload));
    assert_eq!(proposal.entry(), &entry);
    let body = CanonicalBody::new(proposal.into_entry()).unwrap();
    assert_eq!(body.as_bytes(), logged_body(&bundle).as_slice());

    // `payloadHash` may be left out (Rekor computes it), `keyid` may be empty or set, and
    // members Rekor does not read are ignored.
    let mut variant = proposed.clone();
    variant["content"]
        .as_object_mut()
        .unwrap()
        .remove("payloadHash");
    variant["content"]["envelope"]["signatures"][0]["keyid"] = Value::String(String::new());
    variant["content"]["extra"] = Value::Bool(true);
    assert_eq!(IntotoV002Proposal::parse(&variant).unwrap().entry(), &entry);
    variant["content"]["envelope"]["signatures"][0]["keyid"] = Value::String("k1".to_owned());
    let with_keyid = IntotoV002Proposal::parse(&variant).unwrap().into_entry();
    assert_eq!(with_keyid.signatures()[0].keyid.as_deref(), Some("k1"));
    let body = CanonicalBody::new(with_keyid.clone()).unwrap();
    assert!(String::from_utf8_lossy(body.as_bytes()).contains(r#"{"keyid":"k1","publicKey":"#));
    assert_eq!(
        CanonicalBody::parse(body.as_bytes()).unwrap().entry(),
        &Entry::IntotoV002(with_keyid)
    );

    let pem = entry.signatures()[0].public_key.to_pem();
    let refused: Vec<(&str, Edit<'_>)> = vec![
        (
            "a PEM without its final newline (stored as sent by Rekor, re-encoded by later ones)",
            Box::new(|p: &mut Value| {
                p["content"]["envelope"]["signatures"][0]["publicKey"] =
                    Value::String(BASE64.encode(pem.trim_end()));
            }),
        ),
        (
            "an inner signature in URL-safe base64",
            Box::new(|p: &mut Value| {
                let sig = entry.signatures()[0]
                    .sig
                    .to_base64()
                    .replace('+', "-")
                    .replace('/', "_");
                p["content"]["envelope"]["signatures"][0]["sig"] =
                    Value::String(BASE64.encode(sig));
            }),
        ),
        (
            "a signature base64 once only",
            Box::new(|p: &mut Value| {
                p["content"]["envelope"]["signatures"][0]["sig"] =
                    Value::String(entry.signatures()[0].sig.to_base64());
            }),
        ),
        (
            "a payloadHash that is not the payload's",
            Box::new(|p: &mut Value| {
                p["content"]["payloadHash"]["value"] = Value::String("00".repeat(32));
            }),
        ),
        (
            "no hash",
            Box::new(|p: &mut Value| {
                p["content"].as_object_mut().unwrap().remove("hash");
            }),
        ),
        (
            "an uppercase hash",
            Box::new(|p: &mut Value| {
                let upper = entry.envelope_hash().to_hex().to_uppercase();
                p["content"]["hash"]["value"] = Value::String(upper);
            }),
        ),
        (
            "an empty payload",
            Box::new(|p: &mut Value| {
                p["content"]["envelope"]["payload"] = Value::String(String::new());
            }),
        ),
        (
            "no payload type",
            Box::new(|p: &mut Value| {
                p["content"]["envelope"]["payloadType"] = Value::String(String::new());
            }),
        ),
        (
            "no signatures",
            Box::new(|p: &mut Value| {
                p["content"]["envelope"]["signatures"] = Value::Array(Vec::new());
            }),
        ),
        (
            "the same signature twice",
            Box::new(|p: &mut Value| {
                let one = p["content"]["envelope"]["signatures"][0].clone();
                p["content"]["envelope"]["signatures"] = Value::Array(vec![one.clone(), one]);
            }),
        ),
        (
            "no publicKey",
            Box::new(|p: &mut Value| {
                p["content"]["envelope"]["signatures"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("publicKey");
            }),
        ),
        (
            "a keyid that is not a string",
            Box::new(|p: &mut Value| {
                p["content"]["envelope"]["signatures"][0]["keyid"] = Value::Bool(true);
            }),
        ),
    ];
    for (why, edit) in refused {
        let mut bad = proposed.clone();
        edit(&mut bad);
        assert!(IntotoV002Proposal::parse(&bad).is_err(), "accepted {why}");
    }
}

#[test]
fn golden_dsse_v001() {
    let bundle = bundle(DSSE_V001);
    let envelope = &bundle["dsseEnvelope"];
    let payload_hash = Digest::sha256(&b64(&envelope["payload"]));
    // No bundle keeps the envelope text whose hash Rekor logged, and this case replaced the
    // envelope's signature, so those two parts come from the logged body (see the README).
    let logged: Value = serde_json::from_slice(&logged_body(&bundle)).unwrap();
    let envelope_hash = Digest::from_hex(
        HashAlgorithm::Sha256,
        logged["spec"]["envelopeHash"]["value"].as_str().unwrap(),
    )
    .unwrap();
    let signature = SignatureBytes::from_base64(
        logged["spec"]["signatures"][0]["signature"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let verifier = KeyMaterial::from_certificate_der(&certificate_der(&bundle)).unwrap();
    let entry = DsseV001::new(
        envelope_hash,
        payload_hash,
        vec![DsseV001Signature {
            signature,
            verifier,
        }],
    )
    .unwrap();
    check_golden(&bundle, &Entry::from(entry));
}

#[test]
fn golden_hashedrekord_v002_certificate() {
    let bundle = bundle(REKOR2_HAPPY_PATH);
    let (digest, signature) = message_signature_parts(&bundle);
    let verifier =
        Verifier::x509_certificate(&certificate_der(&bundle), KeyDetails::EcdsaP256Sha256).unwrap();
    let entry = HashedRekordV002::new(
        digest.as_bytes(),
        Signature {
            content: signature,
            verifier,
        },
    )
    .unwrap();
    check_golden(&bundle, &Entry::from(entry));
}

#[test]
fn golden_hashedrekord_v002_over_dsse_pae() {
    let bundle = bundle(REKOR2_DSSE);
    let json = &bundle["dsseEnvelope"];
    let envelope = DsseEnvelope::parse(&json.to_string()).unwrap();
    assert_eq!(envelope.payload_type(), "application/vnd.in-toto+json");
    let digest = Digest::sha256(&envelope.pae());
    let verifier =
        Verifier::x509_certificate(&certificate_der(&bundle), KeyDetails::EcdsaP256Sha256).unwrap();
    let entry = HashedRekordV002::new(
        digest.as_bytes(),
        Signature {
            content: envelope.signatures()[0].sig.clone(),
            verifier,
        },
    )
    .unwrap();
    check_golden(&bundle, &Entry::from(entry));
}

#[test]
fn golden_bodies_fail_when_a_part_changes() {
    // The golden check can fail: a different signature gives a different body and leaf.
    let bundle = bundle(HAPPY_PATH_V03);
    let (digest, _) = message_signature_parts(&bundle);
    let key = KeyMaterial::from_certificate_der(&certificate_der(&bundle)).unwrap();
    let other = HashedRekordV001::new(digest, SignatureBytes::new(b"x").unwrap(), key);
    let built = CanonicalBody::new(other).unwrap();
    assert_ne!(built.as_bytes(), logged_body(&bundle).as_slice());
}

/// Logged hashedrekord bodies from Rekor: v0.0.1 with a certificate and with a key, v0.0.2
/// with a certificate.
fn golden_hashedrekord_bodies() -> Vec<Vec<u8>> {
    [HAPPY_PATH_V03, MANAGED_KEY, REKOR2_HAPPY_PATH]
        .into_iter()
        .map(|text| logged_body(&bundle(text)))
        .collect()
}

#[test]
fn canonical_hashedrekord_bodies_are_read_by_their_template() {
    for body in golden_hashedrekord_bodies() {
        let entry = template::parse(&body).expect("the template matches a canonical body");
        // Written back from the same template: the log's bytes exactly.
        assert_eq!(template::write(&entry).as_deref(), Some(&body[..]));
        assert_eq!(Entry::parse_json(&body), Ok(entry));
    }
}

/// Whatever the template path accepts, the JSON path reads to the same entry.
fn check_template_agrees(body: &[u8]) {
    if let Some(entry) = template::parse(body) {
        assert_eq!(
            Entry::parse_json(body).as_ref(),
            Ok(&entry),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn the_template_path_never_disagrees_with_the_json_path() {
    let mut accepted = 0;
    for body in golden_hashedrekord_bodies() {
        for position in 0..body.len() {
            for byte in [
                b'"', b'\\', b' ', b'A', b'a', b'0', b'=', b'+', b'}', b',', 0xC3,
            ] {
                let mut altered = body.clone();
                altered[position] = byte;
                check_template_agrees(&altered);
                accepted += usize::from(template::parse(&altered).is_some());
            }
            let mut spaced = body.clone();
            spaced.insert(position, b' ');
            check_template_agrees(&spaced);
            check_template_agrees(&body[..position]);
        }
    }
    // Some alterations stay valid (a changed signature or digest character), and the template
    // reads them: the comparison above was made, not skipped.
    assert!(accepted > 100, "{accepted}");
    // A value with a JSON escape is left to the JSON path, which decodes it.
    let body = String::from_utf8(golden_hashedrekord_bodies().remove(1)).unwrap();
    let escaped = body.replacen("sha256", "sha\\u0032\\u0035\\u0036", 1);
    assert_ne!(escaped, body);
    assert_eq!(template::parse(escaped.as_bytes()), None);
    assert_eq!(
        Entry::parse(escaped.as_bytes()),
        Entry::parse(body.as_bytes())
    );
}

fn sample_v001() -> CanonicalBody {
    let bundle = bundle(MANAGED_KEY);
    CanonicalBody::parse(&logged_body(&bundle)).unwrap()
}

fn sample_json() -> Value {
    serde_json::from_slice(sample_v001().as_bytes()).unwrap()
}

fn jcs_of(value: &Value) -> Vec<u8> {
    jcs::canonicalize(value)
}

#[test]
fn rejects_bad_digests() {
    let mut body = sample_json();
    let value = body["spec"]["data"]["hash"]["value"]
        .as_str()
        .unwrap()
        .to_uppercase();
    body["spec"]["data"]["hash"]["value"] = Value::String(value);
    let error = CanonicalBody::parse(&jcs_of(&body)).unwrap_err();
    assert_eq!(
        error,
        BodyError::Field(InputError::Hex {
            field: "spec.data.hash.value".to_owned()
        })
    );
    assert!(error.to_string().contains("spec.data.hash.value"));

    let mut body = sample_json();
    body["spec"]["data"]["hash"]["value"] = Value::String("zz".repeat(32));
    assert!(matches!(
        Entry::parse(&jcs_of(&body)),
        Err(BodyError::Field(InputError::Hex { .. }))
    ));

    // A SHA-256 value labelled sha512.
    let mut body = sample_json();
    body["spec"]["data"]["hash"]["algorithm"] = Value::String("sha512".to_owned());
    assert!(matches!(
        Entry::parse(&jcs_of(&body)),
        Err(BodyError::Field(InputError::DigestLength {
            expected: 64,
            actual: 32,
            ..
        }))
    ));
    let mut body = sample_json();
    body["spec"]["data"]["hash"]["algorithm"] = Value::String("md5".to_owned());
    assert!(matches!(
        Entry::parse(&jcs_of(&body)),
        Err(BodyError::Field(InputError::UnknownHashAlgorithm { .. }))
    ));

    assert!(matches!(
        Digest::new(HashAlgorithm::Sha384, &[0; 32]),
        Err(InputError::DigestLength { expected: 48, .. })
    ));
    assert!(Digest::from_hex(HashAlgorithm::Sha256, &"ab".repeat(31)).is_err());
    assert!(Digest::from_hex(HashAlgorithm::Sha256, &"ab".repeat(32)).is_ok());
    assert!(Digest::from_hex(HashAlgorithm::Sha256, &"AB".repeat(32)).is_err());
}

#[test]
fn rejects_unknown_kinds_and_versions() {
    for (kind, version) in [
        ("rekord", "0.0.1"),
        ("hashedrekord", "0.0.3"),
        ("intoto", "0.0.1"),
        ("dsse", "0.0.1 "),
    ] {
        let mut body = sample_json();
        body["kind"] = Value::String(kind.to_owned());
        body["apiVersion"] = Value::String(version.to_owned());
        assert_eq!(
            Entry::parse(&jcs_of(&body)),
            Err(BodyError::UnknownKind {
                kind: kind.to_owned(),
                api_version: version.to_owned()
            })
        );
    }
    // Bodies from sigstore-conformance's malformed-bundle cases.
    assert_eq!(
        Entry::parse(br#"{"apiVersion":"0.0.1","kind":"hashedrekord"}"#),
        Err(BodyError::MissingField {
            path: "body.spec".to_owned()
        })
    );
    assert_eq!(
        Entry::parse(br#"{"apiVersion":"0.0.1"}"#),
        Err(BodyError::MissingField {
            path: "kind".to_owned()
        })
    );
    assert!(matches!(Entry::parse(b"[]"), Err(BodyError::Shape { .. })));
    assert!(matches!(Entry::parse(b"{"), Err(BodyError::Json { .. })));
}

#[test]
fn rejects_unknown_and_missing_members() {
    let mut body = sample_json();
    body["spec"]["data"]["content"] = Value::String("aGk=".to_owned());
    assert_eq!(
        Entry::parse(&jcs_of(&body)),
        Err(BodyError::UnknownField {
            path: "spec.data.content".to_owned()
        })
    );
    let mut body = sample_json();
    body["spec"]["signature"]
        .as_object_mut()
        .unwrap()
        .remove("publicKey");
    assert_eq!(
        Entry::parse(&jcs_of(&body)),
        Err(BodyError::MissingField {
            path: "spec.signature.publicKey".to_owned()
        })
    );
    let mut body = sample_json();
    body["spec"]["signature"]["content"] = Value::from(7);
    assert_eq!(
        Entry::parse(&jcs_of(&body)),
        Err(BodyError::Shape {
            path: "spec.signature.content".to_owned(),
            expected: "a string"
        })
    );
}

#[test]
fn rejects_oversize() {
    let mut body = sample_v001().into_bytes();
    body.resize(BODY_BYTES_MAX + 1, b' ');
    assert_eq!(
        Entry::parse(&body),
        Err(BodyError::TooLarge {
            actual: BODY_BYTES_MAX + 1,
            max: BODY_BYTES_MAX
        })
    );
    // A chain of ten maximal certificates builds a body over the bound.
    let chain = vec![vec![0x30; KEY_DER_BYTES_MAX]; PEM_CERTIFICATES_MAX];
    let entry = HashedRekordV001::new(
        Digest::sha256(b""),
        SignatureBytes::new(b"s").unwrap(),
        KeyMaterial::Certificates(chain),
    );
    assert!(matches!(
        CanonicalBody::new(entry),
        Err(BodyError::TooLarge { .. })
    ));
    assert!(matches!(
        SignatureBytes::new(&[1; SIGNATURE_BYTES_MAX + 1]),
        Err(InputError::TooLong { .. })
    ));
    assert!(matches!(
        SignatureBytes::new(&[]),
        Err(InputError::Empty { .. })
    ));
    assert!(matches!(
        Verifier::public_key(&[1; KEY_DER_BYTES_MAX + 1], KeyDetails::EcdsaP256Sha256),
        Err(InputError::TooLong { .. })
    ));
}

#[test]
fn rejects_non_canonical_bodies() {
    let canonical = sample_v001();
    let text = String::from_utf8(canonical.as_bytes().to_vec()).unwrap();
    let pretty = serde_json::to_vec_pretty(&sample_json()).unwrap();
    let reordered = text.replacen(
        r#"{"apiVersion":"0.0.1","kind":"hashedrekord","#,
        r#"{"kind":"hashedrekord","apiVersion":"0.0.1","#,
        1,
    );
    let duplicated = text.replacen(
        r#"{"apiVersion":"0.0.1","#,
        r#"{"apiVersion":"0.0.1","apiVersion":"0.0.1","#,
        1,
    );
    let escaped = text.replacen("hashedrekord", "hashedr\\u0065kord", 1);
    for (body, why) in [
        (pretty, "whitespace"),
        (reordered.into_bytes(), "member order"),
        (duplicated.into_bytes(), "duplicate member"),
        (escaped.into_bytes(), "needless escape"),
        (format!("{text}\n").into_bytes(), "trailing newline"),
    ] {
        // Still a valid entry, equal to the canonical one...
        assert_eq!(Entry::parse(&body).as_ref(), Ok(canonical.entry()), "{why}");
        // ...but not the canonical bytes.
        assert_eq!(
            CanonicalBody::parse(&body),
            Err(BodyError::NotCanonical),
            "{why}"
        );
        assert_eq!(
            check_canonical(&body),
            Err(BodyError::NotCanonical),
            "{why}"
        );
    }

    // A PEM Rekor would have re-encoded (76-column lines) is a valid entry, not canonical.
    let mut body = sample_json();
    let pem = String::from_utf8(b64(&body["spec"]["signature"]["publicKey"]["content"])).unwrap();
    let unwrapped: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let sloppy = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
        &unwrapped[..76],
        &unwrapped[76..]
    );
    body["spec"]["signature"]["publicKey"]["content"] = Value::String(BASE64.encode(sloppy));
    let sloppy_body = jcs_of(&body);
    assert_eq!(Entry::parse(&sloppy_body).as_ref(), Ok(canonical.entry()));
    assert_eq!(
        CanonicalBody::parse(&sloppy_body),
        Err(BodyError::NotCanonical)
    );
}

#[test]
fn hashedrekord_v002_key_details() {
    let verifier = |details| Verifier::public_key(b"key", details).unwrap();
    let signature = |details| Signature {
        content: SignatureBytes::new(b"sig").unwrap(),
        verifier: verifier(details),
    };
    // The digest algorithm follows the key details.
    let entry = HashedRekordV002::new(&[7; 48], signature(KeyDetails::EcdsaP384Sha384)).unwrap();
    assert_eq!(entry.digest().algorithm(), HashAlgorithm::Sha384);
    let body = CanonicalBody::new(entry).unwrap();
    let text = std::str::from_utf8(body.as_bytes()).unwrap();
    assert!(
        text.contains(r#""data":{"algorithm":"SHA2_384","#),
        "{text}"
    );
    assert!(
        text.contains(
            r#""verifier":{"keyDetails":"PKIX_ECDSA_P384_SHA_384","publicKey":{"rawBytes":"a2V5"}}"#
        ),
        "{text}"
    );

    assert!(matches!(
        HashedRekordV002::new(&[7; 32], signature(KeyDetails::EcdsaP384Sha384)),
        Err(InputError::DigestLength { expected: 48, .. })
    ));
    assert_eq!(
        HashedRekordV002::new(&[7; 64], signature(KeyDetails::Ed25519)),
        Err(InputError::NoDigestAlgorithm {
            field: "signature.verifier.keyDetails".to_owned(),
            key_details: KeyDetails::Ed25519
        })
    );
    for name in [
        "PKIX_RSA_PSS_2048_SHA256",
        "PKIX_ECDSA_P384_SHA_256",
        "ML_DSA_65",
        "PUBLIC_KEY_DETAILS_UNSPECIFIED",
        "pkix_ecdsa_p256_sha_256",
    ] {
        assert!(KeyDetails::from_protobuf_name(name).is_err(), "{name}");
    }
    for details in KeyDetails::ALL {
        assert_eq!(
            KeyDetails::from_protobuf_name(details.protobuf_name()),
            Ok(details)
        );
    }

    // A logged body whose data.algorithm disagrees with its key details is refused.
    let bad = text.replace("SHA2_384", "SHA2_256");
    assert!(Entry::parse(bad.as_bytes()).is_err());
    let bad = text.replace("PKIX_ECDSA_P384_SHA_384", "PKIX_ECDSA_P256_SHA_256");
    assert!(matches!(
        Entry::parse(bad.as_bytes()),
        Err(BodyError::Field(InputError::DigestLength { .. }))
    ));
    // A verifier with both or neither key form is refused.
    let both = text.replace(
        r#""publicKey":{"rawBytes":"a2V5"}"#,
        r#""publicKey":{"rawBytes":"a2V5"},"x509Certificate":{"rawBytes":"a2V5"}"#,
    );
    assert!(matches!(
        Entry::parse(both.as_bytes()),
        Err(BodyError::UnknownField { .. })
    ));
    let neither = text.replace(r#","publicKey":{"rawBytes":"a2V5"}"#, "");
    assert!(matches!(
        Entry::parse(neither.as_bytes()),
        Err(BodyError::MissingField { .. })
    ));
}

#[test]
fn dsse_entries_from_an_envelope() {
    let text = r#"{"payload":"aGVsbG8gd29ybGQ=","payloadType":"http://example.com/HelloWorld","signatures":[{"sig":"AQID"},{"sig":"+w=="}]}"#;
    let envelope = DsseEnvelope::parse(text).unwrap();
    let key = KeyMaterial::from_public_key_der(b"k").unwrap();
    assert!(matches!(
        DsseV001::from_envelope(&envelope, vec![key.clone()]),
        Err(InputError::VerifierCount { .. })
    ));
    let v1 = DsseV001::from_envelope(&envelope, vec![key.clone(), key]).unwrap();
    let body = CanonicalBody::new(v1.clone()).unwrap();
    let want = format!(
        concat!(
            r#"{{"apiVersion":"0.0.1","kind":"dsse","spec":{{"envelopeHash":{{"algorithm":"sha256","value":"{}"}},"#,
            r#""payloadHash":{{"algorithm":"sha256","value":"{}"}},"#,
            r#""signatures":[{{"signature":"+w==","verifier":"{pem}"}},{{"signature":"AQID","verifier":"{pem}"}}]}}}}"#
        ),
        Digest::sha256(text.as_bytes()).to_hex(),
        Digest::sha256(b"hello world").to_hex(),
        pem = BASE64.encode("-----BEGIN PUBLIC KEY-----\naw==\n-----END PUBLIC KEY-----\n"),
    );
    assert_eq!(std::str::from_utf8(body.as_bytes()).unwrap(), want);
    assert_eq!(
        CanonicalBody::parse(want.as_bytes()).unwrap().entry(),
        &Entry::DsseV001(v1)
    );

    // Signatures out of order in a logged body: valid, not canonical.
    let swapped = want
        .replacen("+w==", "TMP", 1)
        .replacen("AQID", "+w==", 1)
        .replacen("TMP", "AQID", 1);
    assert_eq!(
        CanonicalBody::parse(swapped.as_bytes()),
        Err(BodyError::NotCanonical)
    );

    let verifier = Verifier::public_key(b"k", KeyDetails::Ed25519).unwrap();
    let v2 = DsseV002::from_envelope(&envelope, vec![verifier.clone(), verifier]).unwrap();
    let body = CanonicalBody::new(v2.clone()).unwrap();
    let text = std::str::from_utf8(body.as_bytes()).unwrap();
    assert!(text.starts_with(
        r#"{"apiVersion":"0.0.2","kind":"dsse","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="},"signatures":[{"content":"AQID""#
    ), "{text}");
    assert_eq!(
        CanonicalBody::parse(body.as_bytes()).unwrap().entry(),
        &Entry::DsseV002(v2)
    );
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..=max)
}

fn arb_digest() -> impl Strategy<Value = Digest> {
    prop_oneof![
        Just(HashAlgorithm::Sha256),
        Just(HashAlgorithm::Sha384),
        Just(HashAlgorithm::Sha512)
    ]
    .prop_flat_map(|algorithm| {
        proptest::collection::vec(any::<u8>(), algorithm.digest_len())
            .prop_map(move |bytes| Digest::new(algorithm, &bytes).unwrap())
    })
}

fn arb_sha256() -> impl Strategy<Value = Digest> {
    proptest::collection::vec(any::<u8>(), 32)
        .prop_map(|bytes| Digest::new(HashAlgorithm::Sha256, &bytes).unwrap())
}

fn arb_signature_bytes() -> impl Strategy<Value = SignatureBytes> {
    arb_bytes(140).prop_map(|bytes| SignatureBytes::new(&bytes).unwrap())
}

fn arb_key_material() -> impl Strategy<Value = KeyMaterial> {
    prop_oneof![
        arb_bytes(200).prop_map(KeyMaterial::PublicKey),
        proptest::collection::vec(arb_bytes(200), 1..=3).prop_map(KeyMaterial::Certificates),
    ]
}

fn arb_verifier(details: impl Strategy<Value = KeyDetails>) -> impl Strategy<Value = Verifier> {
    (arb_bytes(200), any::<bool>(), details).prop_map(|(der, certificate, details)| {
        if certificate {
            Verifier::x509_certificate(&der, details).unwrap()
        } else {
            Verifier::public_key(&der, details).unwrap()
        }
    })
}

fn arb_key_details() -> impl Strategy<Value = KeyDetails> {
    proptest::sample::select(KeyDetails::ALL.to_vec())
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    let v001 = (arb_digest(), arb_signature_bytes(), arb_key_material())
        .prop_map(|(d, s, k)| Entry::from(HashedRekordV001::new(d, s, k)));
    let v002 = (
        arb_verifier(arb_key_details().prop_filter("prehash", |k| k.hash_algorithm().is_some())),
        arb_signature_bytes(),
        any::<u8>(),
    )
        .prop_map(|(verifier, content, fill)| {
            let len = verifier
                .key_details()
                .hash_algorithm()
                .unwrap()
                .digest_len();
            let signature = Signature { content, verifier };
            Entry::from(HashedRekordV002::new(&vec![fill; len], signature).unwrap())
        });
    let dsse_v001 = (
        arb_sha256(),
        arb_sha256(),
        proptest::collection::vec((arb_signature_bytes(), arb_key_material()), 1..=4),
    )
        .prop_filter_map("distinct signatures", |(e, p, sigs)| {
            let sigs = sigs
                .into_iter()
                .map(|(signature, verifier)| DsseV001Signature {
                    signature,
                    verifier,
                })
                .collect();
            DsseV001::new(e, p, sigs).ok().map(Entry::from)
        });
    let dsse_v002 = (
        arb_sha256(),
        proptest::collection::vec(
            (arb_signature_bytes(), arb_verifier(arb_key_details())),
            1..=4,
        ),
    )
        .prop_filter_map("distinct signatures", |(p, sigs)| {
            let sigs = sigs
                .into_iter()
                .map(|(content, verifier)| Signature { content, verifier })
                .collect();
            DsseV002::new(p, sigs).ok().map(Entry::from)
        });
    let intoto_v002 = (
        arb_sha256(),
        arb_sha256(),
        "[a-z/+.-]{1,40}",
        proptest::collection::vec(
            (
                proptest::option::of("[ -~]{0,20}"),
                arb_signature_bytes(),
                arb_key_material(),
            ),
            1..=4,
        ),
    )
        .prop_filter_map("distinct signatures", |(e, p, payload_type, sigs)| {
            let sigs = sigs
                .into_iter()
                .map(|(keyid, sig, public_key)| IntotoV002Signature {
                    keyid,
                    sig,
                    public_key,
                })
                .collect();
            IntotoV002::new(e, p, payload_type, sigs)
                .ok()
                .map(Entry::from)
        });
    prop_oneof![v001, v002, dsse_v001, dsse_v002, intoto_v002]
}

proptest! {
    #[test]
    fn build_then_parse_round_trips(entry in arb_entry()) {
        let body = CanonicalBody::new(entry.clone()).unwrap();
        // A hashedrekord's body is written from its template: the very bytes of JCS.
        prop_assert_eq!(body.as_bytes(), &jcs::canonicalize(&entry.to_json())[..]);
        let parsed = CanonicalBody::parse(body.as_bytes()).unwrap();
        prop_assert_eq!(parsed.entry(), &entry);
        prop_assert_eq!(parsed.as_bytes(), body.as_bytes());
        prop_assert_eq!(parsed.leaf_hash(), crate::hash::leaf_hash(body.as_bytes()));
        // A canonical hashedrekord is read by its template, to the entry the JSON path gives.
        if matches!(entry, Entry::HashedRekordV001(_) | Entry::HashedRekordV002(_)) {
            prop_assert_eq!(template::parse(body.as_bytes()), Some(entry.clone()));
        }
        prop_assert_eq!(Entry::parse_json(body.as_bytes()), Ok(entry.clone()));
        // Any other layout of the same JSON parses to the same entry but is not canonical.
        let value: Value = serde_json::from_slice(body.as_bytes()).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        prop_assert_eq!(Entry::parse(&pretty).unwrap(), entry);
        prop_assert_eq!(CanonicalBody::parse(&pretty), Err(BodyError::NotCanonical));
    }
}

/// The field paths of a signature's values are built only when one fails to validate: a bad
/// value still names its field, through either reading path.
#[test]
fn a_bad_signature_value_names_its_field() {
    let body = String::from_utf8(golden_hashedrekord_bodies().remove(2)).unwrap();
    let raw_bytes = body.find("\"rawBytes\":\"").unwrap() + "\"rawBytes\":\"".len();
    let content = body.find("\"content\":\"").unwrap() + "\"content\":\"".len();
    for (at, field) in [
        (
            raw_bytes,
            "spec.hashedRekordV002.signature.verifier.x509Certificate.rawBytes",
        ),
        (content, "spec.hashedRekordV002.signature.content"),
    ] {
        // A base64 character that cannot start a value ("=").
        let mut bad = body.clone().into_bytes();
        bad[at] = b'=';
        let error = Entry::parse(&bad).unwrap_err().to_string();
        assert!(error.contains(field), "{error}");
        assert_eq!(Entry::parse_json(&bad).unwrap_err().to_string(), error);
    }
}
