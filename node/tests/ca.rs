//! The keyless CA against a real, independent OpenID provider (panva/oidc-provider from npm,
//! `ca/tests/oidc-provider/`, installed by `scripts/test` with `npm ci`) and real `cairn-node`
//! processes on loopback.
//!
//! - Valid tokens from the provider give certificates that chain to the trust bundle, carry the
//!   token's email and issuer, and embed an SCT that verifies with the CT key and whose
//!   `leaf_index` names a committed precertificate entry; the certificate itself is in the log.
//! - Bad tokens (malformed, unlisted issuer, `alg: none`, bad signature, expired, wrong
//!   audience, unverified email), bad CSRs and proofs of possession are refused with their
//!   status, append nothing, and an unlisted issuer is never contacted.
//! - The leader killed during issuance: every certificate any client received is in the log.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use bytes::Bytes;
use ca::ct::{LogLeaf, Sct};
use http_body_util::{BodyExt, Full};
use node::network::{HttpClient, http_client};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use x509_parser::prelude::*;

mod common;

use common::free_port;

const PROVIDER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ca/tests/oidc-provider");
const KID: &str = "test-key";

/// The npm oidc-provider on a loopback port, signing with a key the test also holds.
struct Provider {
    url: String,
    key: p256::ecdsa::SigningKey,
    child: Child,
}

impl Provider {
    fn start() -> Provider {
        assert!(
            std::path::Path::new(PROVIDER_DIR)
                .join("node_modules/oidc-provider")
                .exists(),
            "the test OpenID provider is not installed: run `npm ci` in {PROVIDER_DIR} \
             (scripts/test does)"
        );
        let key = p256::ecdsa::SigningKey::from_slice(&random32()).unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            "d": URL_SAFE_NO_PAD.encode(key.to_bytes()),
        });
        let port = free_port();
        let mut child = Command::new("node")
            .arg("server.js")
            .arg(port.to_string())
            .arg(jwk.to_string())
            .current_dir(PROVIDER_DIR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running node (Node.js) for the test OpenID provider");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(line.starts_with("ready "), "provider said {line:?}");
        Provider {
            url: format!("http://127.0.0.1:{port}"),
            key,
            child,
        }
    }

    /// A token from the provider itself.
    async fn mint(&self, client: &HttpClient, email: &str, verified: bool) -> String {
        let form = format!(
            "grant_type=urn%3Acairn%3Atest%3Amint&client_id=sigstore&client_secret=cairn-test\
             &email={}&email_verified={verified}",
            email.replace('@', "%40")
        );
        let request = hyper::Request::post(format!("{}/token", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        body["id_token"].as_str().unwrap().to_string()
    }

    /// A token the provider would never issue, signed with its key.
    fn forge(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        forge_with(&self.key, header, claims)
    }

    fn claims(&self, email: &str) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        serde_json::json!({
            "iss": self.url, "aud": "sigstore", "sub": email, "email": email,
            "email_verified": true, "iat": now, "exp": now + 600,
        })
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forge_with(
    key: &p256::ecdsa::SigningKey,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let part = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let input = format!("{}.{}", part(header), part(claims));
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand08::RngCore::fill_bytes(&mut rand08::rngs::OsRng, &mut bytes);
    bytes
}

fn es256() -> serde_json::Value {
    serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": KID})
}

/// The node processes, with the CA trusting one OIDC issuer.
struct Cluster(common::cluster::Cluster);

// The tests use the processes' API (request_as, kill, leader, ...) as the cluster's own.
impl std::ops::Deref for Cluster {
    type Target = common::cluster::Cluster;

    fn deref(&self) -> &common::cluster::Cluster {
        &self.0
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut common::cluster::Cluster {
        &mut self.0
    }
}

impl Cluster {
    async fn start(name: &str, nodes: usize, issuer: &str, per_minute: u32) -> Cluster {
        let mut processes =
            common::cluster::Cluster::init("ca", name, nodes, &["--oidc-issuer", issuer]);
        for id in 1..=nodes as u64 {
            processes.edit_config(id, |config| {
                config["ca"].as_table_mut().unwrap().insert(
                    "requests_per_identity_per_minute".into(),
                    i64::from(per_minute).into(),
                );
            });
        }
        processes.form(nodes).await;
        Cluster(processes)
    }

    async fn get_json(&self, id: u64, path: &str) -> serde_json::Value {
        let (status, body) = self.request_as("GET", id, path, None, None).await.unwrap();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// The certificate log's size as node `id` has applied it (0 if empty).
    async fn certificate_log_size(&self, id: u64) -> u64 {
        let (status, body) = self
            .request_as("GET", id, "/logs/certificates/checkpoint", None, None)
            .await
            .unwrap();
        if status == 404 {
            return 0;
        }
        assert_eq!(status, 200);
        let text = String::from_utf8(body.to_vec()).unwrap();
        text.lines().nth(1).unwrap().parse().unwrap()
    }

    /// Every leaf of the certificate log, parsed, as node `id` serves them.
    async fn certificate_log(&self, id: u64) -> Vec<LogLeaf> {
        let size = self.certificate_log_size(id).await;
        let mut leaves = Vec::new();
        for index in 0..size {
            let path = format!("/logs/certificates/entries/{index}");
            let (status, body) = self.request_as("GET", id, &path, None, None).await.unwrap();
            assert_eq!(status, 200, "{path}");
            leaves.push(LogLeaf::parse(&body).unwrap());
        }
        leaves
    }
}

/// A CSR as sigstore-python sends it: base64 of the PEM.
fn csr_request(key: &rcgen::KeyPair) -> String {
    let pem = rcgen::CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap();
    serde_json::json!({ "certificateSigningRequest": BASE64.encode(pem) }).to_string()
}

fn p256_csr() -> String {
    csr_request(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
}

/// What a client checks about a certificate chain it received.
struct Issued {
    leaf_der: Vec<u8>,
    leaf_index: u64,
}

fn pem_der(pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    pem.contents
}

fn verify_signed_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) {
    let algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm =
        match child.signature_algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.10045.4.3.2" => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            "1.2.840.10045.4.3.3" => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
            other => panic!("unexpected signature algorithm {other}"),
        };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        algorithm,
        parent.public_key().subject_public_key.data.as_ref(),
    )
    .verify(
        child.tbs_certificate.as_ref(),
        child.signature_value.data.as_ref(),
    )
    .unwrap();
    assert_eq!(child.issuer(), parent.subject());
}

/// Checks an issued chain as a Sigstore client would: chain to the trust bundle, SAN, issuer
/// extensions, the SCT with the CT key.
fn check_chain(
    response: &[u8],
    bundle: &serde_json::Value,
    ct_log: &serde_json::Value,
    email: &str,
    issuer: &str,
) -> Issued {
    let response: serde_json::Value = serde_json::from_slice(response).unwrap();
    let chain: Vec<Vec<u8>> = response["signedCertificateEmbeddedSct"]["chain"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pem| pem_der(pem.as_str().unwrap()))
        .collect();
    assert_eq!(chain.len(), 3);
    let trusted: Vec<Vec<u8>> = bundle["chains"][0]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pem| pem_der(pem.as_str().unwrap()))
        .collect();
    assert_eq!(chain[1..], trusted[..], "the chain is the trust bundle's");
    let (_, leaf) = parse_x509_certificate(&chain[0]).unwrap();
    let (_, intermediate) = parse_x509_certificate(&trusted[0]).unwrap();
    let (_, root) = parse_x509_certificate(&trusted[1]).unwrap();
    verify_signed_by(&leaf, &intermediate);
    verify_signed_by(&intermediate, &root);
    verify_signed_by(&root, &root);
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical);
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::RFC822Name(email)]
    );
    let extension = |oid: &str| {
        let oid: x509_parser::oid_registry::Oid<'static> = oid.parse().unwrap();
        leaf.get_extension_unique(&oid)
            .unwrap()
            .unwrap()
            .value
            .to_vec()
    };
    assert_eq!(extension("1.3.6.1.4.1.57264.1.1"), issuer.as_bytes());
    assert_eq!(&extension("1.3.6.1.4.1.57264.1.8")[2..], issuer.as_bytes());
    let validity = leaf.validity();
    assert_eq!(
        validity.not_after.timestamp() - validity.not_before.timestamp(),
        1200
    );
    let sct = Sct::parse_list_extension(&extension("1.3.6.1.4.1.11129.2.4.2")).unwrap();
    let ct_key = BASE64
        .decode(ct_log["publicKey"].as_str().unwrap())
        .unwrap();
    let issuer_key_hash: [u8; 32] =
        <sha2::Sha256 as sha2::Digest>::digest(intermediate.public_key().raw).into();
    let tbs = ca::cert::tbs_without_sct(&chain[0]).unwrap();
    sct.verify_precert(&ct_key, &issuer_key_hash, &tbs).unwrap();
    Issued {
        leaf_der: chain[0].clone(),
        leaf_index: sct.leaf_index().unwrap(),
    }
}

/// The SCT's leaf index names the precertificate entry of this certificate, and the log holds
/// the certificate itself.
fn check_logged(leaves: &[LogLeaf], issued: &Issued) {
    let tbs = ca::cert::tbs_without_sct(&issued.leaf_der).unwrap();
    match &leaves[usize::try_from(issued.leaf_index).unwrap()] {
        LogLeaf::Precert { tbs: logged, .. } => assert_eq!(*logged, tbs),
        other => panic!("leaf {} is {other:?}", issued.leaf_index),
    }
    assert!(
        leaves.iter().any(|leaf| matches!(
            leaf,
            LogLeaf::X509 { certificate, .. } if *certificate == issued.leaf_der
        )),
        "the certificate is not in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_a_real_provider_chain_verify_and_are_logged() {
    let provider = Provider::start();
    let cluster = Cluster::start("valid", 3, &provider.url, 0).await;
    let bundle = cluster.get_json(2, "/api/v2/trustBundle").await;
    let ct_log = cluster.get_json(3, "/api/v2/ctLog").await;
    let configuration = cluster.get_json(1, "/api/v2/configuration").await;
    assert_eq!(configuration["issuers"][0]["issuerUrl"], provider.url);
    assert_eq!(configuration["issuers"][0]["audience"], "sigstore");

    let mut issued = Vec::new();
    // Through every node (followers forward to the leader), the token in the header.
    for id in 1..=3 {
        let email = format!("user{id}@example.com");
        let token = provider.mint(&cluster.http, &email, true).await;
        let (status, body) = cluster
            .request_as(
                "POST",
                id,
                "/api/v2/signingCert",
                Some(&format!("Bearer {token}")),
                Some(p256_csr()),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        issued.push(check_chain(&body, &bundle, &ct_log, &email, &provider.url));
    }
    // The token in the body; a P-384 and an Ed25519 CSR.
    let token = provider.mint(&cluster.http, "body@example.com", true).await;
    for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
        let mut request: serde_json::Value =
            serde_json::from_str(&csr_request(&rcgen::KeyPair::generate_for(alg).unwrap()))
                .unwrap();
        request["credentials"] = serde_json::json!({ "oidcIdentityToken": token });
        let (status, body) = cluster
            .request_as(
                "POST",
                2,
                "/api/v2/signingCert",
                None,
                Some(request.to_string()),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        issued.push(check_chain(
            &body,
            &bundle,
            &ct_log,
            "body@example.com",
            &provider.url,
        ));
    }
    // A public key and a signature over the email, as cosign sends.
    let token = provider
        .mint(&cluster.http, "cosign@example.com", true)
        .await;
    let key = p256::ecdsa::SigningKey::from_slice(&random32()).unwrap();
    let proof: p256::ecdsa::Signature = key.sign(b"cosign@example.com");
    let request = serde_json::json!({
        "credentials": { "oidcIdentityToken": token },
        "publicKeyRequest": {
            "publicKey": {
                "algorithm": "ECDSA",
                "content": key.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap(),
            },
            "proofOfPossession": BASE64.encode(proof.to_der().as_bytes()),
        },
    });
    let (status, body) = cluster
        .request_as(
            "POST",
            3,
            "/api/v2/signingCert",
            None,
            Some(request.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    issued.push(check_chain(
        &body,
        &bundle,
        &ct_log,
        "cosign@example.com",
        &provider.url,
    ));

    // Two entries per certificate, on every node.
    for id in 1..=3 {
        let started = Instant::now();
        while cluster.certificate_log_size(id).await < 12 {
            assert!(started.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let leaves = cluster.certificate_log(id).await;
        assert_eq!(leaves.len(), 12);
        for issued in &issued {
            check_logged(&leaves, issued);
        }
    }
}

/// Counts connections to a port nobody should ever contact.
fn tripwire() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_keys_and_proofs_are_refused_and_append_nothing() {
    let provider = Provider::start();
    let cluster = Cluster::start("bad", 1, &provider.url, 3).await;
    // One good certificate first, so the provider's keys are cached and the log is not empty.
    let token = provider
        .mint(&cluster.http, "alice@example.com", true)
        .await;
    let (status, body) = cluster
        .request_as(
            "POST",
            1,
            "/api/v2/signingCert",
            Some(&format!("Bearer {token}")),
            Some(p256_csr()),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let size = cluster.certificate_log_size(1).await;
    assert_eq!(size, 2);

    let (unlisted, contacted) = tripwire();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = provider.claims("mallory@example.com");
        change(&mut claims);
        provider.forge(&es256(), &claims)
    };
    let good = with(&|_| ());
    // A character inside the signature: the last one also carries padding bits that a
    // base64 decoder ignores, so changing it may not change the signature at all.
    let mut tampered = good.clone().into_bytes();
    let inside = tampered.len() - 10;
    tampered[inside] = if tampered[inside] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let part = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let claims = provider.claims("mallory@example.com");
    let stranger = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
    let provider_host = provider.url.trim_start_matches("http://");
    let mut cases: Vec<(String, String, u16)> = vec![
        (
            "alg none".into(),
            format!(
                "{}.{}.",
                part(&serde_json::json!({"alg": "none"})),
                part(&claims)
            ),
            401,
        ),
        (
            "HMAC".into(),
            format!(
                "{}.{}.{}",
                part(&serde_json::json!({"alg": "HS256", "kid": KID})),
                part(&claims),
                URL_SAFE_NO_PAD.encode([7u8; 32])
            ),
            401,
        ),
        (
            "unknown kid".into(),
            forge_with(
                &stranger,
                &serde_json::json!({"alg": "ES256", "kid": "nope"}),
                &claims,
            ),
            401,
        ),
        ("bad signature".into(), tampered, 401),
        (
            "another key under the known kid".into(),
            forge_with(&stranger, &es256(), &claims),
            401,
        ),
        (
            "wrong aud".into(),
            with(&|c| c["aud"] = "not-sigstore".into()),
            401,
        ),
        (
            "missing aud".into(),
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            401,
        ),
        (
            "aud among others".into(),
            with(&|c| c["aud"] = serde_json::json!(["sigstore", "other"])),
            401,
        ),
        (
            "expired".into(),
            with(&|c| c["exp"] = (c["iat"].as_u64().unwrap() - 120).into()),
            401,
        ),
        (
            "iat in the future".into(),
            with(&|c| c["iat"] = (c["iat"].as_u64().unwrap() + 300).into()),
            401,
        ),
        (
            "nbf in the future".into(),
            with(&|c| c["nbf"] = (c["iat"].as_u64().unwrap() + 300).into()),
            401,
        ),
        (
            "email_verified missing".into(),
            with(&|c| {
                c.as_object_mut().unwrap().remove("email_verified");
            }),
            400,
        ),
        (
            "invalid email".into(),
            with(&|c| c["email"] = "mallory".into()),
            400,
        ),
        ("three parts only".into(), "a.b".into(), 400),
        ("many dots".into(), ".".repeat(8000), 400),
        ("too long".into(), "a".repeat(17_000), 400),
    ];
    for iss in [
        unlisted.clone(),
        format!("{unlisted}/"),
        format!("{}/", provider.url),
        provider.url.to_uppercase(),
        format!(
            "http://localhost:{}",
            provider.url.rsplit(':').next().unwrap()
        ),
        format!("{unlisted}?{}", provider.url),
        format!("{unlisted}/{provider_host}"),
        format!("{}/../", provider.url),
        format!("{unlisted}#{}", provider.url),
        format!(
            "http://{provider_host}@{}",
            unlisted.trim_start_matches("http://")
        ),
    ] {
        let token = with(&|c| c["iss"] = iss.clone().into());
        cases.push((format!("issuer {iss}"), token, 400));
    }
    // Unverified email from the provider itself.
    cases.push((
        "email_verified false (from the provider)".into(),
        provider
            .mint(&cluster.http, "unverified@example.com", false)
            .await,
        400,
    ));
    for (name, token, expected) in &cases {
        let (status, body) = cluster
            .request_as(
                "POST",
                1,
                "/api/v2/signingCert",
                Some(&format!("Bearer {token}")),
                Some(p256_csr()),
            )
            .await
            .unwrap();
        assert_eq!(
            status,
            *expected,
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{name}"
        );
    }
    // No token at all.
    let (status, _) = cluster
        .request_as("POST", 1, "/api/v2/signingCert", None, Some(p256_csr()))
        .await
        .unwrap();
    assert_eq!(status, 401);

    // Bad keys and proofs, each with a valid token of its own identity.
    let bad_csr = {
        let request: serde_json::Value = serde_json::from_str(&p256_csr()).unwrap();
        let pem = BASE64
            .decode(request["certificateSigningRequest"].as_str().unwrap())
            .unwrap();
        let mut der = pem_der_csr(&pem);
        let last = der.len() - 2;
        der[last] ^= 0x55;
        serde_json::json!({ "certificateSigningRequest": BASE64.encode(&der) }).to_string()
    };
    let p521 = csr_request(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap());
    let key = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
    let public_key = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let proof_over = |subject: &[u8], signer: &p256::ecdsa::SigningKey| {
        let proof: p256::ecdsa::Signature = signer.sign(subject);
        serde_json::json!({ "publicKeyRequest": {
            "publicKey": { "content": public_key },
            "proofOfPossession": BASE64.encode(proof.to_der().as_bytes()),
        }})
        .to_string()
    };
    let key_cases: Vec<(&str, String)> = vec![
        ("CSR with a bad signature", bad_csr),
        (
            "CSR not base64",
            serde_json::json!({"certificateSigningRequest": "%%%"}).to_string(),
        ),
        (
            "CSR garbage",
            serde_json::json!({"certificateSigningRequest": BASE64.encode(b"garbage")}).to_string(),
        ),
        ("P-521 key", p521),
        (
            "proof over another subject",
            proof_over(b"someone@example.com", &key),
        ),
        (
            "proof by another key",
            proof_over(b"key0@example.com", &stranger),
        ),
        ("both CSR and key", {
            let mut both: serde_json::Value =
                serde_json::from_str(&proof_over(b"x", &key)).unwrap();
            both["certificateSigningRequest"] = "x".into();
            both.to_string()
        }),
        ("neither", "{}".into()),
        ("not JSON", "{".into()),
    ];
    for (position, (name, body)) in key_cases.into_iter().enumerate() {
        let email = format!("key{position}@example.com");
        let token = provider.mint(&cluster.http, &email, true).await;
        let (status, answer) = cluster
            .request_as(
                "POST",
                1,
                "/api/v2/signingCert",
                Some(&format!("Bearer {token}")),
                Some(body),
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{name}: {}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(
        cluster.certificate_log_size(1).await,
        size,
        "nothing appended"
    );
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "an unlisted issuer was contacted"
    );

    // The rate limit: 3 per identity per minute (alice used 1 above, in this minute or the
    // last; carol starts fresh).
    let token = provider
        .mint(&cluster.http, "carol@example.com", true)
        .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _) = cluster
            .request_as(
                "POST",
                1,
                "/api/v2/signingCert",
                Some(&format!("Bearer {token}")),
                Some(p256_csr()),
            )
            .await
            .unwrap();
        statuses.push(status);
    }
    // A minute boundary may fall between the requests; within one minute the fourth is refused.
    assert!(statuses.contains(&429) || statuses.iter().filter(|s| **s == 201).count() == 4);
    assert_eq!(statuses[..3], [201, 201, 201]);
}

fn pem_der_csr(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(pem.to_vec()).unwrap();
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    BASE64.decode(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_issuance_hands_out_only_logged_certificates() {
    let provider = Provider::start();
    let mut cluster = Cluster::start("kill", 3, &provider.url, 0).await;
    let bundle = cluster.get_json(1, "/api/v2/trustBundle").await;
    let ct_log = cluster.get_json(1, "/api/v2/ctLog").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client_id in 0..4u64 {
        let email = format!("client{client_id}@example.com");
        let token = provider.mint(&cluster.http, &email, true).await;
        let (urls, stop) = (cluster.urls.clone(), Arc::clone(&stop));
        let (bundle, ct_log, issuer) = (bundle.clone(), ct_log.clone(), provider.url.clone());
        clients.push(tokio::spawn(async move {
            let client = http_client();
            let mut issued = Vec::new();
            let mut refused = 0u32;
            let mut attempt = 0u64;
            while !stop.load(Ordering::SeqCst) {
                attempt += 1;
                let id = 1 + (client_id + attempt) % 3;
                let auth = format!("Bearer {token}");
                match common::cluster::request_to(
                    &client,
                    &urls,
                    "POST",
                    id,
                    "/api/v2/signingCert",
                    Some(&auth),
                    Some(p256_csr()),
                )
                .await
                {
                    Ok((201, body)) => {
                        issued.push(check_chain(&body, &bundle, &ct_log, &email, &issuer));
                    }
                    Ok((status, body)) => {
                        assert!(
                            [503, 429].contains(&status),
                            "{status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(_) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (issued, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = cluster.leader().await;
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    cluster.spawn(leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut issued = Vec::new();
    let mut refused = 0;
    for client in clients {
        let (mut more, refusals) = client.await.unwrap();
        issued.append(&mut more);
        refused += refusals;
    }
    assert!(!issued.is_empty());
    // Let every node apply everything, then check from each that every certificate any client
    // received is in the log, at the index its SCT names.
    let started = Instant::now();
    let sizes = loop {
        let mut sizes = BTreeSet::new();
        for id in 1..=3 {
            sizes.insert(cluster.certificate_log_size(id).await);
        }
        if sizes.len() == 1 || started.elapsed() > Duration::from_secs(30) {
            break sizes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sizes.len(), 1, "nodes disagree on the size: {sizes:?}");
    for id in 1..=3 {
        let leaves = cluster.certificate_log(id).await;
        for issued in &issued {
            check_logged(&leaves, issued);
        }
    }
    eprintln!(
        "{} certificates issued, {refused} requests refused or failed around the leader's death",
        issued.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_commit_answers_503_and_issues_nothing() {
    let provider = Provider::start();
    let mut cluster = Cluster::start("nocommit", 3, &provider.url, 0).await;
    let leader = cluster.leader().await;
    let size = cluster.certificate_log_size(leader).await;
    for id in 1..=3 {
        if id != leader {
            cluster.kill(id);
        }
    }
    let token = provider
        .mint(&cluster.http, "alone@example.com", true)
        .await;
    let started = Instant::now();
    let (status, body) = cluster
        .request_as(
            "POST",
            leader,
            "/api/v2/signingCert",
            Some(&format!("Bearer {token}")),
            Some(p256_csr()),
        )
        .await
        .unwrap();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(error.get("signedCertificateEmbeddedSct").is_none());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        cluster.certificate_log_size(leader).await,
        size,
        "nothing committed"
    );
}
