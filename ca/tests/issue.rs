//! The CA library end to end without a network: tokens from an in-memory issuer (including bad
//! ones: malformed, oversized, `alg: none` or HMAC, unknown key, bad signature, expired, wrong
//! audience, unverified email), proofs of possession, and the certificate profile with its SCT.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ca::TokenError;
use ca::cert::{Authority, Issuance};
use ca::ct::{CtKey, LogLeaf, Sct};
use ca::identity::{IdentityKind, San};
use ca::oidc::{BoxFuture, Fetch, FetchError, IssuerConfig, TokenVerifier};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use x509_parser::prelude::*;

const ISSUER: &str = "http://127.0.0.1:9/oidc";
const NOW: u64 = 1_800_000_000;

struct MemoryIssuer {
    key: p256::ecdsa::SigningKey,
    fetches: AtomicUsize,
    /// Every fetch fails (the issuer is down).
    down: AtomicBool,
}

impl MemoryIssuer {
    fn jwks(&self) -> serde_json::Value {
        let point = self.key.verifying_key().to_sec1_point(false);
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }]})
    }
}

impl Fetch for MemoryIssuer {
    fn get<'a>(
        &'a self,
        url: &'a str,
        _limit: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async move {
                tokio::task::yield_now().await;
                Err(FetchError("connection refused".into()))
            });
        }
        let body = if url == format!("{ISSUER}/.well-known/openid-configuration") {
            serde_json::json!({
                "issuer": ISSUER, "jwks_uri": format!("{ISSUER}/jwks"),
                "authorization_endpoint": format!("{ISSUER}/auth"),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
        } else if url == format!("{ISSUER}/jwks") {
            self.jwks()
        } else {
            return Box::pin(async move { Err(FetchError(format!("no {url}"))) });
        };
        // A fetch takes time: concurrent requests overlap it.
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(serde_json::to_vec(&body).unwrap())
        })
    }
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn sign(
    key: &p256::ecdsa::SigningKey,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": ISSUER, "aud": "sigstore", "sub": "alice-id", "email": "alice@example.com",
        "email_verified": true, "iat": NOW - 10, "exp": NOW + 600,
    })
}

fn header() -> serde_json::Value {
    serde_json::json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})
}

fn setup() -> (Arc<MemoryIssuer>, TokenVerifier) {
    let issuer = Arc::new(MemoryIssuer {
        key: p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap(),
        fetches: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    });
    let verifier = TokenVerifier::new(
        vec![IssuerConfig {
            url: ISSUER.into(),
            client_id: "sigstore".into(),
            kind: IdentityKind::Email,
        }],
        issuer.clone(),
    );
    (issuer, verifier)
}

#[tokio::test]
async fn good_tokens_verify_and_bad_ones_are_refused_with_their_status() {
    let (issuer, verifier) = setup();
    let good = sign(&issuer.key, &header(), &claims());
    let identity = verifier.verify(&good, NOW).await.unwrap();
    assert_eq!(identity.san, San::Email("alice@example.com".into()));
    assert_eq!(identity.issuer, ISSUER);
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        2,
        "discovery and JWKS, once"
    );
    verifier.verify(&good, NOW).await.unwrap();
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2, "cached");
    // A remembered token still expires: exp is NOW + 600, with 60 s of skew.
    verifier.verify(&good, NOW + 650).await.unwrap();
    let expired = verifier.verify(&good, NOW + 700).await.unwrap_err();
    assert!(matches!(expired, TokenError::Expired(_)), "{expired}");

    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = claims();
        change(&mut claims);
        sign(&issuer.key, &header(), &claims)
    };
    let other_key = p256::ecdsa::SigningKey::from_slice(&[4u8; 32]).unwrap();
    // A character inside the signature: the last one also carries padding bits that a
    // base64 decoder ignores, so changing it may not change the signature at all.
    let mut tampered = good.clone().into_bytes();
    let inside = tampered.len() - 10;
    tampered[inside] = if tampered[inside] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let hmac = {
        let header = serde_json::json!({"alg": "HS256", "kid": "k1"});
        format!(
            "{}.{}.{}",
            b64(&header),
            b64(&claims()),
            URL_SAFE_NO_PAD.encode([1u8; 32])
        )
    };
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none"})),
        b64(&claims())
    );
    let cases: Vec<(&str, String, u16)> = vec![
        ("alg none", none, 401),
        ("HMAC", hmac, 401),
        (
            "unknown kid",
            sign(
                &other_key,
                &serde_json::json!({"alg": "ES256", "kid": "k2"}),
                &claims(),
            ),
            401,
        ),
        ("bad signature", tampered, 401),
        (
            "other key, known kid",
            sign(&other_key, &header(), &claims()),
            401,
        ),
        ("wrong aud", with(&|c| c["aud"] = "other".into()), 401),
        (
            "missing aud",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            401,
        ),
        (
            "several audiences",
            with(&|c| c["aud"] = serde_json::json!(["sigstore", "x"])),
            401,
        ),
        ("expired", with(&|c| c["exp"] = (NOW - 61).into()), 401),
        ("future iat", with(&|c| c["iat"] = (NOW + 120).into()), 401),
        ("future nbf", with(&|c| c["nbf"] = (NOW + 120).into()), 401),
        (
            "unverified email",
            with(&|c| c["email_verified"] = false.into()),
            400,
        ),
        (
            "missing email_verified",
            with(&|c| {
                c.as_object_mut().unwrap().remove("email_verified");
            }),
            400,
        ),
        ("invalid email", with(&|c| c["email"] = "alice".into()), 400),
        ("two parts", "a.b".into(), 400),
        ("many dots", ".".repeat(10_000), 400),
        ("too long", "a".repeat(20_000), 400),
    ];
    for (name, token, status) in cases {
        let error = verifier.verify(&token, NOW).await.unwrap_err();
        assert_eq!(error.http_status(), status, "{name}: {error}");
    }
    // Within the skew: expired 30 s ago, issued 30 s ahead.
    verifier
        .verify(&with(&|c| c["exp"] = (NOW - 30).into()), NOW)
        .await
        .unwrap();
    verifier
        .verify(&with(&|c| c["iat"] = (NOW + 30).into()), NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn unlisted_issuers_cause_no_fetch() {
    let (issuer, verifier) = setup();
    for iss in [
        "http://127.0.0.1:9/oidc/",
        "HTTP://127.0.0.1:9/oidc",
        "http://127.0.0.1:9/OIDC",
        "http://127.0.0.1:9/oidc?x",
        "http://localhost?http://127.0.0.1:9/oidc",
        "http://127.0.0.1:9/oidc/../oidc",
        "http://127.0.0.1:9/oidc#",
        "https://evil.example",
    ] {
        let mut claims = claims();
        claims["iss"] = iss.into();
        let token = sign(&issuer.key, &header(), &claims);
        let error = verifier.verify(&token, NOW).await.unwrap_err();
        assert!(
            matches!(error, TokenError::UnknownIssuer(_)),
            "{iss}: {error}"
        );
        assert_eq!(error.http_status(), 400);
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_key_ids_refresh_at_most_every_ten_seconds() {
    let (issuer, verifier) = setup();
    verifier
        .verify(&sign(&issuer.key, &header(), &claims()), NOW)
        .await
        .unwrap();
    let other = p256::ecdsa::SigningKey::from_slice(&[4u8; 32]).unwrap();
    let token = sign(
        &other,
        &serde_json::json!({"alg": "ES256", "kid": "k9"}),
        &claims(),
    );
    // Just fetched: an unknown key id does not refetch yet.
    assert!(verifier.verify(&token, NOW + 1).await.is_err());
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
    assert!(verifier.verify(&token, NOW + 11).await.is_err());
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 4, "one refresh");
    for _ in 0..5 {
        assert!(verifier.verify(&token, NOW + 12).await.is_err());
    }
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        4,
        "no more within 10 s"
    );
}

fn ca() -> Authority {
    let new = ca::cert::new_ca("Cairn test", NOW - 3600).unwrap();
    Authority::load(
        &new.root_pem,
        &new.intermediate_pem,
        &new.intermediate_key_pem,
    )
    .unwrap()
}

fn csr(key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::default();
    // A CSR asking for more than the token proves: the CA must ignore all of it.
    params.subject_alt_names = vec![rcgen::SanType::DnsName("evil.example".try_into().unwrap())];
    params.serialize_request(key).unwrap().der().to_vec()
}

#[test]
fn proofs_of_possession() {
    use ca::pop::{KeyError, key_from_csr, key_from_proof};
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let spki = key_from_csr(&csr(&key)).unwrap();
        assert_eq!(spki, rcgen::PublicKeyData::subject_public_key_info(&key));
        let pem = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        key_from_csr(pem.as_bytes()).unwrap();
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut bad = csr(&key);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        key_from_csr(&bad),
        Err(KeyError::BadCsrSignature | KeyError::Malformed(..))
    ));
    assert!(key_from_csr(b"not a csr").is_err());
    assert!(matches!(
        key_from_csr(&vec![0u8; 9000]),
        Err(KeyError::TooLarge(..))
    ));

    // Public key plus a signature over the challenge, as cosign sends.
    let signer = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
    let pem = signer
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let proof: p256::ecdsa::Signature = signer.sign(b"alice@example.com");
    let proof = proof.to_der().as_bytes().to_vec();
    key_from_proof(pem.as_bytes(), &proof, "alice@example.com").unwrap();
    assert!(matches!(
        key_from_proof(pem.as_bytes(), &proof, "mallory@example.com"),
        Err(KeyError::BadProof(_))
    ));
    let other = p256::ecdsa::SigningKey::from_slice(&[6u8; 32]).unwrap();
    let other_pem = other
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    assert!(key_from_proof(other_pem.as_bytes(), &proof, "alice@example.com").is_err());
    // A P-521 key is not allowed.
    let p521 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512);
    if let Ok(p521) = p521 {
        assert!(matches!(
            key_from_csr(&csr(&p521)),
            Err(KeyError::Unsupported(_))
        ));
    }
}

#[tokio::test]
async fn the_certificate_follows_the_fulcio_profile_and_embeds_a_verifying_sct() {
    let (issuer, verifier) = setup();
    let identity = verifier
        .verify(&sign(&issuer.key, &header(), &claims()), NOW)
        .await
        .unwrap();
    let authority = ca();
    let ct = CtKey::from_scalar(&[8u8; 32]).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuance = Issuance {
        serial: [0xff; 20],
        timestamp_ms: NOW * 1000 + 123,
        identity,
        spki_der: ca::pop::key_from_csr(&csr(&key)).unwrap(),
    };
    let precert = authority.precertificate(&issuance).unwrap();
    let leaf = ca::ct::precert_leaf(
        issuance.timestamp_ms,
        authority.issuer_key_hash(),
        &precert.tbs,
    )
    .unwrap();
    assert!(matches!(
        LogLeaf::parse(&leaf).unwrap(),
        LogLeaf::Precert { .. }
    ));
    let sct = ct
        .sign_precert(
            issuance.timestamp_ms,
            authority.issuer_key_hash(),
            &precert.tbs,
            17,
        )
        .unwrap();
    let der = authority.certificate(&issuance, &precert, &sct).unwrap();
    assert_eq!(ca::cert::tbs_without_sct(&der).unwrap(), precert.tbs);

    let (_, cert) = parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.subject().iter().count(), 0, "empty subject");
    assert_eq!(cert.raw_serial().len(), 20);
    assert_eq!(cert.raw_serial()[0], 0x7f);
    let validity = cert.validity();
    assert_eq!(
        validity.not_after.timestamp() - validity.not_before.timestamp(),
        20 * 60
    );
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical);
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::RFC822Name("alice@example.com")]
    );
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .code_signing
    );
    assert!(
        cert.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
            .unwrap()
            .is_some()
    );
    let aki = match cert
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    {
        ParsedExtension::AuthorityKeyIdentifier(aki) => {
            aki.key_identifier.clone().unwrap().0.to_vec()
        }
        other => panic!("{other:?}"),
    };
    let (_, intermediate) = parse_x509_certificate(authority.chain_der()[0]).unwrap();
    let ski = match intermediate
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    {
        ParsedExtension::SubjectKeyIdentifier(ski) => ski.0.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(aki, ski);
    let value = |oid: &str| {
        let oid: x509_parser::oid_registry::Oid<'static> = oid.parse().unwrap();
        cert.get_extension_unique(&oid)
            .unwrap()
            .unwrap()
            .value
            .to_vec()
    };
    assert_eq!(value("1.3.6.1.4.1.57264.1.1"), ISSUER.as_bytes());
    let mut utf8 = vec![0x0c, u8::try_from(ISSUER.len()).unwrap()];
    utf8.extend_from_slice(ISSUER.as_bytes());
    assert_eq!(value("1.3.6.1.4.1.57264.1.8"), utf8);
    assert!(
        cert.get_extension_unique(&"1.3.6.1.4.1.11129.2.4.3".parse().unwrap())
            .unwrap()
            .is_none()
    );
    let sct = Sct::parse_list_extension(&value("1.3.6.1.4.1.11129.2.4.2")).unwrap();
    assert_eq!(sct.leaf_index().unwrap(), 17);
    sct.verify_precert(
        ct.spki_der(),
        authority.issuer_key_hash(),
        &ca::cert::tbs_without_sct(&der).unwrap(),
    )
    .unwrap();
    // The chain: leaf by intermediate, intermediate by root.
    let (_, root) = parse_x509_certificate(authority.chain_der()[1]).unwrap();
    verify_signed_by(
        &cert,
        &intermediate,
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
    );
    verify_signed_by(
        &intermediate,
        &root,
        &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
    );
    let _ = STANDARD;
}

fn verify_signed_by(
    child: &X509Certificate<'_>,
    parent: &X509Certificate<'_>,
    algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
) {
    aws_lc_rs::signature::UnparsedPublicKey::new(
        algorithm,
        parent.public_key().subject_public_key.data.as_ref(),
    )
    .verify(
        child.tbs_certificate.as_ref(),
        child.signature_value.data.as_ref(),
    )
    .unwrap();
}

/// Concurrent requests on an empty cache share one fetch of discovery and keys.
#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let (issuer, verifier) = setup();
    let tokens: Vec<String> = (0..4)
        .map(|i| {
            let mut claims = claims();
            claims["sub"] = serde_json::json!(format!("alice-{i}"));
            sign(&issuer.key, &header(), &claims)
        })
        .collect();
    let (a, b, c, d) = tokio::join!(
        verifier.verify(&tokens[0], NOW),
        verifier.verify(&tokens[1], NOW),
        verifier.verify(&tokens[2], NOW),
        verifier.verify(&tokens[3], NOW),
    );
    for result in [a, b, c, d] {
        result.unwrap();
    }
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        2,
        "one discovery, one JWKS"
    );
}

/// A token signed at `at` (valid for ten minutes), told apart by `sub`.
fn token_at(issuer: &MemoryIssuer, at: u64, sub: &str) -> String {
    let mut claims = claims();
    claims["iat"] = serde_json::json!(at - 10);
    claims["exp"] = serde_json::json!(at + 600);
    claims["sub"] = serde_json::json!(sub);
    sign(&issuer.key, &header(), &claims)
}

/// An issuer that is down is asked once per interval (the failure is remembered between), and
/// keys whose refresh fails keep verifying for up to a day past their TTL.
#[tokio::test]
async fn a_failing_issuer_is_asked_once_per_interval_and_stale_keys_still_verify() {
    let (issuer, verifier) = setup();
    issuer.down.store(true, Ordering::SeqCst);
    for (at, fetches) in [(NOW, 1), (NOW + 1, 1), (NOW + 9, 1), (NOW + 10, 2)] {
        let error = verifier
            .verify(&token_at(&issuer, at, "a"), at)
            .await
            .unwrap_err();
        assert!(matches!(error, TokenError::Discovery(_)), "{error}");
        assert!(error.to_string().contains("connection refused"), "{error}");
        assert_eq!(issuer.fetches.load(Ordering::SeqCst), fetches, "at {at}");
    }

    issuer.down.store(false, Ordering::SeqCst);
    let up = NOW + 20;
    verifier
        .verify(&token_at(&issuer, up, "b"), up)
        .await
        .unwrap();
    let fetched = issuer.fetches.load(Ordering::SeqCst);
    assert_eq!(fetched, 4, "discovery and JWKS after the failures");

    // Past the TTL, with the issuer down again: the refresh fails, the stale keys verify.
    issuer.down.store(true, Ordering::SeqCst);
    let stale = up + 3600 + 5;
    verifier
        .verify(&token_at(&issuer, stale, "c"), stale)
        .await
        .unwrap();
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        fetched + 1,
        "one refresh tried"
    );
    verifier
        .verify(&token_at(&issuer, stale + 1, "d"), stale + 1)
        .await
        .unwrap();
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        fetched + 1,
        "throttled"
    );

    // More than a day past the TTL, stale keys are no longer trusted.
    let too_old = up + 3600 + 24 * 3600 + 5;
    let error = verifier
        .verify(&token_at(&issuer, too_old, "e"), too_old)
        .await
        .unwrap_err();
    assert!(matches!(error, TokenError::Discovery(_)), "{error}");
}
