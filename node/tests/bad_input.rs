//! Every malformed, oversized, unauthenticated or out-of-range request to a real node, to the
//! log submission API or to the read and proof APIs, gets a clear 4xx with a machine-readable
//! code, changes nothing, and leaves the process serving.
//!
//! Method: one single-node cluster started with `cairn-node dev`, a few good appends, then the
//! bad requests; afterwards the signed checkpoint must be byte-for-byte the one from before.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use node::network::{HttpClient, http_client};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

struct DevCluster {
    dev: Option<node::dev_process::DevProcess>,
    url: String,
    token: String,
    client: HttpClient,
}

impl DevCluster {
    async fn start() -> DevCluster {
        let dir = std::env::temp_dir().join(format!("cairn-bad-input-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = node::dev_process::DevOptions::new(Path::new(BIN), &dir, 1);
        let dev =
            tokio::task::spawn_blocking(move || node::dev_process::DevProcess::start(options))
                .await
                .unwrap()
                .unwrap();
        let cluster = dev.cluster_json().unwrap();
        DevCluster {
            url: cluster["nodes"][0]["url"].as_str().unwrap().to_string(),
            token: cluster["admin_token"].as_str().unwrap().to_string(),
            dev: Some(dev),
            client: http_client(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (u16, Value) {
        self.send_typed(method, path, body, token, None).await
    }

    async fn send_typed(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error:?}"));
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn checkpoint(&self) -> String {
        let (status, body) = self
            .send("GET", "/api/v2/checkpoint", Vec::new(), None)
            .await;
        assert_eq!(status, 200);
        body.as_str().unwrap().to_string()
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if let Some(dev) = self.dev.take() {
            let dir = dev.dir().to_path_buf();
            dev.stop();
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_file(dir.with_extension("dev.log"));
            }
        }
    }
}

fn signed_request(artifact: &[u8]) -> Value {
    let key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let spki = key.verifying_key().to_public_key_der().unwrap();
    let digest = tlog::Hash::digest(artifact);
    let signature: p256::ecdsa::Signature = key.sign_prehash(digest.as_bytes()).unwrap();
    json!({ "hashedRekordRequestV002": {
        "digest": BASE64.encode(digest.as_bytes()),
        "signature": {
            "content": BASE64.encode(signature.to_der().as_bytes()),
            "verifier": { "publicKey": { "rawBytes": BASE64.encode(spki.as_bytes()) },
                          "keyDetails": "PKIX_ECDSA_P256_SHA_256" } } } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_change_nothing() {
    let cluster = DevCluster::start().await;
    for i in 0..3 {
        let body = serde_json::to_vec(&signed_request(format!("good {i}").as_bytes())).unwrap();
        let (status, answer) = cluster
            .send("POST", "/api/v2/log/entries", body, None)
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    let before = cluster.checkpoint().await;

    let good = signed_request(b"good 0");
    let mut wrong_signature = signed_request(b"another artifact");
    wrong_signature["hashedRekordRequestV002"]["digest"] =
        good["hashedRekordRequestV002"]["digest"].clone();
    let mut short_digest = good.clone();
    short_digest["hashedRekordRequestV002"]["digest"] = json!(BASE64.encode([0u8; 20]));
    let mut bad_base64 = good.clone();
    bad_base64["hashedRekordRequestV002"]["signature"]["content"] = json!("not base64!");
    let mut mismatched_key = good.clone();
    mismatched_key["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] =
        json!("PKIX_RSA_PKCS1V15_2048_SHA256");
    let mut server_field = good.clone();
    server_field["logIndex"] = json!("7");
    let mut missing = good.clone();
    missing["hashedRekordRequestV002"]["signature"]
        .as_object_mut()
        .unwrap()
        .remove("verifier");
    let good_text = serde_json::to_string(&good).unwrap();
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));

    let submissions: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", Vec::new(), 400, "invalid_json"),
        (
            "truncated json",
            good_text.as_bytes()[..good_text.len() / 2].to_vec(),
            400,
            "invalid_json",
        ),
        (
            "trailing garbage",
            format!("{good_text} x").into_bytes(),
            400,
            "invalid_json",
        ),
        ("not utf-8", vec![b'{', 0xff, b'}'], 400, "invalid_json"),
        (
            "duplicate member",
            format!(
                "{{\"hashedRekordRequestV002\":{},\"hashedRekordRequestV002\":{}}}",
                good["hashedRekordRequestV002"], good["hashedRekordRequestV002"]
            )
            .into_bytes(),
            400,
            "duplicate_member",
        ),
        ("too deep", deep.into_bytes(), 400, "too_deep"),
        (
            "unknown kind",
            br#"{"rekordRequestV002": {}}"#.to_vec(),
            400,
            "unknown_field",
        ),
        (
            "missing verifier",
            serde_json::to_vec(&missing).unwrap(),
            400,
            "missing_field",
        ),
        (
            "bad base64",
            serde_json::to_vec(&bad_base64).unwrap(),
            400,
            "invalid_base64",
        ),
        (
            "short digest",
            serde_json::to_vec(&short_digest).unwrap(),
            400,
            "invalid_digest",
        ),
        (
            "wrong signature",
            serde_json::to_vec(&wrong_signature).unwrap(),
            400,
            "bad_signature",
        ),
        (
            "key type mismatch",
            serde_json::to_vec(&mismatched_key).unwrap(),
            400,
            "key_mismatch",
        ),
        (
            "client sets a server field",
            serde_json::to_vec(&server_field).unwrap(),
            400,
            "server_field",
        ),
    ];
    for (what, body, want_status, want_code) in submissions {
        let (status, answer) = cluster
            .send("POST", "/api/v2/log/entries", body, None)
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (want_status, Some(want_code)),
            "{what}: {answer}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: no message"
        );
    }

    // An oversized body is refused from its Content-Length alone, before it is read: send only
    // the head of the request, as a client would that waits for `100 Continue`.
    let address = cluster.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v2/log/entries HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
        5 * 1024 * 1024
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::io::AsyncReadExt::read(&mut stream, &mut answer)
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    let reads: Vec<(&str, &str, u16)> = vec![
        ("GET", "/logs/artifacts/proof/inclusion?index=abc", 400),
        ("GET", "/logs/artifacts/proof/inclusion?index=-1", 400),
        (
            "GET",
            "/logs/artifacts/proof/inclusion?index=18446744073709551616",
            400,
        ),
        ("GET", "/logs/artifacts/proof/inclusion?index=3", 404),
        (
            "GET",
            "/logs/artifacts/proof/inclusion?index=0&tree_size=4",
            400,
        ),
        (
            "GET",
            "/logs/artifacts/proof/inclusion?index=0&index=1",
            400,
        ),
        ("GET", "/logs/artifacts/proof/inclusion?leaf_hash=zz", 400),
        ("GET", "/logs/artifacts/proof/consistency?old=3&new=2", 400),
        ("GET", "/logs/artifacts/proof/consistency?old=1&new=4", 400),
        ("GET", "/logs/artifacts/proof/consistency", 400),
        ("GET", "/logs/artifacts/entries/3", 404),
        ("GET", "/logs/artifacts/entries/x", 400),
        ("GET", "/api/v2/tile/0/000.p/0", 400),
        ("GET", "/api/v2/tile/0/x000/000", 400),
        ("GET", "/api/v2/tile/64/000", 400),
        ("GET", "/api/v2/tile/0/000", 404),
        ("GET", "/api/v2/tile/0/000.p/4", 404),
        ("GET", "/api/v2/tile/entries/001", 404),
        ("GET", "/logs/nope/checkpoint", 404),
        // The timestamp authority: a DER request, POSTed as application/timestamp-query.
        ("POST", "/api/v1/timestamp", 415),
        ("GET", "/api/v1/timestamp", 405),
        ("POST", "/api/v1/timestamp/certchain", 405),
        ("GET", "/nothing/here", 404),
        ("DELETE", "/api/v2/checkpoint", 405),
        ("GET", "/admin/status", 401),
        ("POST", "/admin/init", 401),
    ];
    for (method, path, want_status) in reads {
        let (status, answer) = cluster.send(method, path, Vec::new(), None).await;
        assert_eq!(status, want_status, "{method} {path}: {answer}");
        assert!(
            answer["code"].as_str().is_some(),
            "{method} {path}: no error code in {answer}"
        );
    }
    // Timestamp requests that are not a well-formed `TimeStampReq` SHA-256/384/512 imprint
    // (RFC 3161 §2.4.1), each a 400 naming what is wrong; an oversized one a 413.
    let sha256 = [
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    ];
    let request = |algorithm: &[u8], hash: &[u8]| {
        let mut imprint = algorithm.to_vec();
        imprint.extend_from_slice(&[0x04, u8::try_from(hash.len()).unwrap()]);
        imprint.extend_from_slice(hash);
        let mut body = vec![0x02, 0x01, 0x01, 0x30, u8::try_from(imprint.len()).unwrap()];
        body.extend_from_slice(&imprint);
        let mut der = vec![0x30, u8::try_from(body.len()).unwrap()];
        der.extend_from_slice(&body);
        der
    };
    let md5 = [
        0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00,
    ];
    for (what, body, want_status, want_message) in [
        ("not DER", b"hello".to_vec(), 400, "malformed"),
        ("empty", Vec::new(), 400, "malformed"),
        (
            "short imprint",
            request(&sha256, &[1; 20]),
            400,
            "hashedMessage",
        ),
        ("MD5", request(&md5, &[1; 16]), 400, "hashAlgorithm"),
        ("oversized", vec![0x30; 4 * 1024 + 1], 413, "larger than"),
    ] {
        let (status, answer) = cluster
            .send_typed(
                "POST",
                "/api/v1/timestamp",
                body,
                None,
                Some("application/timestamp-query"),
            )
            .await;
        assert_eq!(status, want_status, "{what}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|message| message.contains(want_message)),
            "{what}: {answer}"
        );
    }
    // A good one is granted (201, a DER TimeStampResp).
    let (status, _) = cluster
        .send_typed(
            "POST",
            "/api/v1/timestamp",
            request(&sha256, &[1; 32]),
            None,
            Some("application/timestamp-query"),
        )
        .await;
    assert_eq!(status, 201);

    // A log with no entries serves its size-0 checkpoint, and a proof from size 0 is empty.
    let (status, empty) = cluster
        .send("GET", "/logs/certificates/checkpoint", Vec::new(), None)
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty.as_str().unwrap().lines().nth(1), Some("0"));
    let (status, proof) = cluster
        .send(
            "GET",
            "/logs/artifacts/proof/consistency?old=0&new=2",
            Vec::new(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["hashes"], json!([]));

    let (status, _) = cluster
        .send("GET", "/admin/status", Vec::new(), Some("wrong-token"))
        .await;
    assert_eq!(status, 401);
    let (status, answer) = cluster
        .send(
            "POST",
            "/admin/membership",
            b"{\"voters\": []}".to_vec(),
            Some(&cluster.token),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    // The leader never removes itself (openraft 0.9 can be left leaderless; issue 2091).
    let (status, answer) = cluster
        .send(
            "POST",
            "/admin/membership",
            b"{\"voters\": [2]}".to_vec(),
            Some(&cluster.token),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|message| message.contains("cannot remove itself")),
        "{answer}"
    );

    // Every JSON endpoint reads its body with the one strict reader: a duplicate member is a
    // 400 naming its path, whichever API it is sent to.
    let duplicated: Vec<(&str, &[u8], Option<&str>, &str)> = vec![
        (
            "/api/v1/log/entries",
            br#"{"kind": "hashedrekord", "kind": "hashedrekord"}"#,
            None,
            "kind",
        ),
        (
            "/api/v1/log/entries/retrieve",
            br#"{"logIndexes": [0], "logIndexes": [1]}"#,
            None,
            "logIndexes",
        ),
        (
            "/api/v1/index/retrieve",
            br#"{"hash": "sha256:00", "hash": "sha256:11"}"#,
            None,
            "hash",
        ),
        (
            "/admin/membership",
            br#"{"voters": [1], "voters": [1, 2]}"#,
            Some(&cluster.token),
            "voters",
        ),
    ];
    for (path, body, token, member) in duplicated {
        let (status, answer) = cluster.send("POST", path, body.to_vec(), token).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("duplicate_member")),
            "{path}: {answer}"
        );
        assert_eq!(
            answer["message"].as_str(),
            Some(format!("{member}: duplicate member").as_str()),
            "{path}"
        );
    }

    // Good reads still work, nothing changed, and the node is still serving.
    let (status, proof) = cluster
        .send(
            "GET",
            "/logs/artifacts/proof/inclusion?index=2",
            Vec::new(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(cluster.checkpoint().await, before);
    let (status, _) = cluster.send("GET", "/healthz", Vec::new(), None).await;
    assert_eq!(status, 200);
}
