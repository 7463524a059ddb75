//! Hostile traffic against a real node: what anyone who reaches the public port can send must
//! cost each request a quick refusal, never the node's workers or sockets.
//!
//! Method: a one-node cluster of `cairn-node` processes (the shared harness) with short
//! connection timeouts set through its config (`[http]`), a few acknowledged appends, then at
//! once: four Rekor v1 DSSE floods (a 3 MB payload with 27,000 copies of one Ed25519 verifier,
//! about 8 MiB), 300 half-sent requests (half a head, or a head and part of its body), an
//! oversized and a deeply nested body. Each flood must be refused within 2 s, `/healthz` must
//! answer within 1 s throughout, a well-behaved client's appends must keep succeeding, and the
//! half-sent connections must be closed (within 60 s; here within seconds, as configured).
//! Then a connection flood past `connections_max`: the connections beyond it get a 503 at
//! once, the idle ones are closed, and the node serves again. A forged `Host` header does not
//! steer the trust documents. Nothing acknowledged changes.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

/// The node's `[http]` bounds in this test: short, so that it stays fast.
const HEADER_READ_TIMEOUT_MS: i64 = 2_000;
const BODY_READ_TIMEOUT_MS: i64 = 3_000;
const CONNECTIONS_MAX: i64 = 400;
const HALF_SENT: usize = 300;

/// The fixed P-256 key every request of these tests is signed with.
fn signer() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap()
}

/// A v2 hashedrekord request for `artifact`, signed by [`signer`].
fn good_request(artifact: &[u8]) -> String {
    let key = signer();
    let spki = key.verifying_key().to_public_key_der().unwrap();
    let digest = tlog::Hash::digest(artifact);
    let signature: p256::ecdsa::Signature = key.sign_prehash(digest.as_bytes()).unwrap();
    json!({ "hashedRekordRequestV002": {
        "digest": BASE64.encode(digest.as_bytes()),
        "signature": {
            "content": BASE64.encode(signature.to_der().as_bytes()),
            "verifier": { "publicKey": { "rawBytes": BASE64.encode(spki.as_bytes()) },
                          "keyDetails": "PKIX_ECDSA_P256_SHA_256" } } } })
    .to_string()
}

/// The review's flood: a Rekor v1 dsse entry with a 3 MB payload, a signature that verifies
/// with nothing, and 27,000 copies of one Ed25519 verifier.
fn dsse_flood() -> String {
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend_from_slice(
        ed25519_dalek::SigningKey::from_bytes(&[9; 32])
            .verifying_key()
            .as_bytes(),
    );
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        BASE64.encode(&spki)
    );
    let verifier = Value::String(BASE64.encode(pem));
    let envelope = json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": BASE64.encode(vec![b'x'; 3_000_000]),
        "signatures": [{ "keyid": "", "sig": BASE64.encode([7u8; 64]) }],
    });
    let body = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": { "proposedContent": {
            "envelope": envelope.to_string(),
            "verifiers": vec![verifier; 27_000],
        } },
    })
    .to_string();
    assert!(
        body.len() > 8_000_000 && body.len() < 8 * 1024 * 1024,
        "{}",
        body.len()
    );
    body
}

/// Reads from `stream` until the peer closes it (or `within` passes): what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(received),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_traffic_is_refused_quickly_and_changes_nothing() {
    let mut cluster = common::cluster::Cluster::init("hostile", "flood", 1, &[]);
    cluster.edit_config(1, |config| {
        let mut http = toml::Table::new();
        for (setting, value) in [
            ("header_read_timeout_ms", HEADER_READ_TIMEOUT_MS),
            ("body_read_timeout_ms", BODY_READ_TIMEOUT_MS),
            ("connections_max", CONNECTIONS_MAX),
        ] {
            http.insert(setting.into(), toml::Value::Integer(value));
        }
        config.insert("http".into(), toml::Value::Table(http));
    });
    cluster.form(1).await;
    let address = cluster.urls[0].trim_start_matches("http://").to_string();

    // Acknowledged before the attack: these must not change.
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let (status, body) = cluster
            .request_as(
                "POST",
                1,
                "/api/v2/log/entries",
                None,
                Some(good_request(format!("before {i}").as_bytes())),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let entry: Value = serde_json::from_slice(&body).unwrap();
        acknowledged.push((
            entry["logIndex"].as_str().unwrap().to_string(),
            BASE64
                .decode(entry["canonicalizedBody"].as_str().unwrap())
                .unwrap(),
        ));
    }

    // 300 half-sent requests: half of them stop inside the head, half inside the body. Each
    // is watched from now on: when the node closes it, and what it said first.
    let mut half_sent = Vec::new();
    for i in 0..HALF_SENT {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let partial = if i % 2 == 0 {
            format!("POST /api/v1/log/entries HTTP/1.1\r\nHost: {address}\r\nContent-Le")
        } else {
            format!(
                "POST /api/v1/log/entries HTTP/1.1\r\nHost: {address}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"apiVersion\""
            )
        };
        stream.write_all(partial.as_bytes()).await.unwrap();
        half_sent.push(tokio::spawn(async move {
            let started = Instant::now();
            let received = read_until_closed(&mut stream, Duration::from_secs(60)).await;
            (started.elapsed(), received)
        }));
    }

    // Four floods at once; each must be refused within 2 s.
    let flood = dsse_flood();
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let (http, urls, flood) = (cluster.http.clone(), cluster.urls.clone(), flood.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let answer = common::cluster::request_to(
                    &http,
                    &urls,
                    "POST",
                    1,
                    "/api/v1/log/entries",
                    None,
                    Some(flood),
                )
                .await;
                (started.elapsed(), answer)
            })
        })
        .collect();
    // Meanwhile `/healthz` answers within 1 s, and a well-behaved client keeps appending.
    let mut during = 0;
    while floods.iter().any(|flood| !flood.is_finished()) || during < 3 {
        let started = Instant::now();
        let answer = cluster.request_as("GET", 1, "/healthz", None, None).await;
        assert!(
            matches!(answer, Ok((200, _))) && started.elapsed() < Duration::from_secs(1),
            "/healthz during the flood: {answer:?} after {:?}",
            started.elapsed()
        );
        let (status, body) = cluster
            .request_as(
                "POST",
                1,
                "/api/v2/log/entries",
                None,
                Some(good_request(format!("during {during}").as_bytes())),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        during += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for flood in floods {
        let (took, answer) = flood.await.unwrap();
        let (status, body) = answer.unwrap();
        let error: Value = serde_json::from_slice(&body).unwrap();
        // The strict JSON reader stops at the array's 1,025th item, before any key is parsed
        // (the entry's own one-verifier-per-signature check is a unit test of api::v1_request).
        assert_eq!(
            (status, error["code"].as_str()),
            (400, Some("too_many")),
            "{error}"
        );
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("spec.proposedContent.verifiers")),
            "{error}"
        );
        assert!(took < Duration::from_secs(2), "a flood took {took:?}");
        eprintln!("a DSSE flood was refused after {took:?}");
    }
    eprintln!("{during} appends succeeded during the floods");

    // Deeply nested and oversized bodies are refused too, quickly; an oversized one from its
    // Content-Length alone, before it is sent.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for path in ["/api/v1/log/entries", "/api/v2/log/entries"] {
        let started = Instant::now();
        let (status, answer) = cluster
            .request_as("POST", 1, path, None, Some(deep.clone()))
            .await
            .unwrap();
        assert_eq!(status, 400, "{path}: {}", String::from_utf8_lossy(&answer));
        assert!(started.elapsed() < Duration::from_secs(2), "{path}");
    }
    for path in ["/api/v1/log/entries", "/api/v2/log/entries"] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
            64 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut stream, Duration::from_secs(2))
            .await
            .unwrap_or_default();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }

    // Every half-sent connection is closed by the node, a head cut short after the header read
    // timeout and a body cut short after the body read timeout, with a 408.
    let mut timed_out_bodies = 0;
    for (i, watch) in half_sent.into_iter().enumerate() {
        let (took, received) = watch.await.unwrap();
        let received =
            received.unwrap_or_else(|| panic!("half-sent connection {i} still open after 60 s"));
        let limit = if i % 2 == 0 {
            HEADER_READ_TIMEOUT_MS
        } else {
            BODY_READ_TIMEOUT_MS
        };
        let limit = Duration::from_millis(u64::try_from(limit).unwrap());
        assert!(
            took < limit + Duration::from_secs(5),
            "half-sent connection {i} closed only after {took:?}"
        );
        if String::from_utf8_lossy(&received).starts_with("HTTP/1.1 408") {
            timed_out_bodies += 1;
        }
    }
    assert_eq!(timed_out_bodies, HALF_SENT / 2);
    eprintln!("{HALF_SENT} half-sent connections closed by the node");

    // A connection flood: past `connections_max`, new connections get a 503 at once; the
    // others, idle, are closed after the header read timeout, and the node serves again.
    let mut flood = Vec::new();
    for _ in 0..CONNECTIONS_MAX + 50 {
        flood.push(TcpStream::connect(&address).await.unwrap());
    }
    let flooded_at = Instant::now();
    let mut refused = 0;
    for stream in &mut flood {
        let left = Duration::from_secs(30).saturating_sub(flooded_at.elapsed());
        let received = read_until_closed(stream, left)
            .await
            .unwrap_or_else(|| panic!("a flood connection was never closed"));
        if received.starts_with(b"HTTP/1.1 503") {
            refused += 1;
        }
    }
    assert!(refused >= 50, "only {refused} connections refused");
    eprintln!("{refused} flood connections refused; the others closed when idle");
    drop(flood);
    cluster.wait_for(1, "/healthz").await;

    // A forged Host header does not steer the trust documents' URLs elsewhere.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"GET /trust/signing_config.json HTTP/1.1\r\nHost: evil.example\r\n\
              Connection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("evil.example"), "{answer}");
    assert!(answer.contains(&cluster.urls[0]), "{answer}");

    // A well-behaved client still appends, and everything acknowledged is unchanged.
    let (status, body) = cluster
        .request_as(
            "POST",
            1,
            "/api/v2/log/entries",
            None,
            Some(good_request(b"after")),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    for (index, leaf) in &acknowledged {
        let (status, stored) = cluster
            .request_as(
                "GET",
                1,
                &format!("/logs/artifacts/entries/{index}"),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(&stored[..], &leaf[..], "entry {index} changed");
    }
}

/// A write that reached a node forwarded (as to the leader) is never forwarded again, v1 or
/// v2: sent to a follower's cluster listener by a member (as a forwarding follower does), the
/// follower answers it 503 itself. On the public listener a client cannot make a write count as
/// forwarded: the old `x-cairn-forwarded-by` header is ignored, and the write is forwarded to
/// the leader and logged as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_is_never_forwarded_again() {
    let mut cluster = common::cluster::Cluster::init("hostile", "hop", 2, &[]);
    cluster.form(2).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower_of(leader);
    let position = usize::try_from(follower - 1).unwrap();
    let (url, cluster_url) = (&cluster.urls[position], &cluster.cluster_urls[position]);
    let member = cluster.member_client(leader);
    for (path, body, created) in [
        ("/api/v2/log/entries", good_request(b"hop v2"), 201),
        (
            "/api/v1/log/entries",
            common::v1_hashedrekord_request(&signer(), b"hop v1").to_string(),
            201,
        ),
    ] {
        for via_cluster in [true, false] {
            let base = if via_cluster { cluster_url } else { url };
            let request = hyper::Request::post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .header("x-cairn-forwarded-by", leader.to_string())
                .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                .unwrap();
            let response = if via_cluster {
                member.request(request).await.unwrap()
            } else {
                cluster.http.request(request).await.unwrap()
            };
            let status = response.status().as_u16();
            let answer = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            let answer = String::from_utf8_lossy(&answer);
            if via_cluster {
                assert_eq!(status, 503, "{path}: {answer}");
                assert!(answer.contains("no_leader"), "{path}: {answer}");
            } else {
                assert_eq!(status, created, "{path}: {answer}");
            }
        }
    }
}
