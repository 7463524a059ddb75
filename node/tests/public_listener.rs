//! The public listener with real `cairn-node` processes.
//!
//! TLS: a node whose `api_url` is https, with a certificate from a private CA in `[http.tls]`,
//! answers HTTP/1.1 and HTTP/2 as ALPN chose (checked on the connection and on the answer) and
//! closes an idle HTTP/2 connection;
//! `cairn log get` and `cairn monitor` reach it with `SSL_CERT_FILE` naming the CA and refuse it
//! without; a certificate
//! replaced on disk is served on the next connection without a restart; a replacement whose key
//! is not its certificate's is refused (logged, counted) and the old one stays served.
//!
//! Limits per client address: from one loopback address (127.0.0.1) a burst of appends gets
//! 429 with `Retry-After` and the JSON error, while another (127.0.0.2) is unaffected; a forged
//! `x-cairn-forwarded-by` header changes nothing; writes a follower forwards still succeed and
//! are charged to the original client at the follower only (the leader charges neither the
//! client nor the follower); `X-Forwarded-For` names the client only when a trusted proxy
//! (127.0.0.3) sends it; certificate requests have their own bucket.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use node::tls::{ClusterCa, NodeCertificate};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

mod common;

use common::cluster::Cluster;

/// A v2 hashedrekord request for `artifact`, signed with a fixed P-256 key.
fn good_request(artifact: &[u8]) -> String {
    let key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
    let spki = key.verifying_key().to_public_key_der().unwrap();
    let digest = tlog::Hash::digest(artifact);
    let signature: p256::ecdsa::Signature = key.sign_prehash(digest.as_bytes()).unwrap();
    serde_json::json!({ "hashedRekordRequestV002": {
        "digest": BASE64.encode(digest.as_bytes()),
        "signature": {
            "content": BASE64.encode(signature.to_der().as_bytes()),
            "verifier": { "publicKey": { "rawBytes": BASE64.encode(spki.as_bytes()) },
                          "keyDetails": "PKIX_ECDSA_P256_SHA_256" } } } })
    .to_string()
}

/// One answer: status, `Retry-After`, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

/// POSTs `body` to `path` on `url` (plain http) over a connection from the local address
/// `source`, with `headers` added.
async fn post_from(
    source: &str,
    url: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let address: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::post(path)
        .header("host", address.to_string())
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Asserts `answer` is the limit's 429: `Retry-After` of whole seconds, at least 1 (at most a
/// minute at one token a minute), and the JSON error.
fn assert_limited(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 429, "{what}: {answer:?}");
    let seconds: u64 = answer.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{what}: {answer:?}");
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(json["code"], "rate_limited", "{what}: {answer:?}");
    assert!(
        json["message"].as_str().unwrap().contains("retry in"),
        "{what}"
    );
}

/// The value of the metric line starting with `series` on node `id`.
async fn metric(cluster: &Cluster, id: u64, series: &str) -> f64 {
    let (status, text) = cluster.request("GET", id, "/metrics", None).await.unwrap();
    assert_eq!(status, 200);
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_per_client_address_hold_through_forwarding_and_forged_headers() {
    let mut cluster = Cluster::init("public", "limits", 2, &[]);
    // One token a minute: nothing refills during the test, so every count below is exact.
    for (name, value) in [
        ("CAIRN_WRITES_PER_MINUTE", "1"),
        ("CAIRN_WRITES_BURST", "3"),
        ("CAIRN_CERTIFICATES_PER_MINUTE", "1"),
        ("CAIRN_CERTIFICATES_BURST", "1"),
    ] {
        cluster.processes.set_env(name, value);
    }
    for id in [1, 2] {
        cluster.edit_config(id, |config| {
            let http = config.get_mut("http").unwrap().as_table_mut().unwrap();
            http.insert(
                "trusted_proxies".into(),
                toml::Value::Array(vec!["127.0.0.3".into()]),
            );
        });
    }
    cluster.form(2).await;
    let leader = cluster.leader().await;
    let follower = 3 - leader;
    let url = |id: u64| cluster.urls[usize::try_from(id - 1).unwrap()].clone();
    let (leader_url, follower_url) = (url(leader), url(follower));
    let v2 = "/api/v2/log/entries";
    let mut artifact = 0u32;
    let mut write = |source: &'static str, url: String, headers: &'static [(&str, &str)]| {
        artifact += 1;
        let body = good_request(format!("limited artifact {artifact}").as_bytes());
        async move { post_from(source, &url, v2, &body, headers).await }
    };
    let forged: &[(&str, &str)] = &[("x-cairn-forwarded-by", "1")];

    // 127.0.0.1 at the follower: its burst of 3, forwarded to the leader and logged, then 429,
    // also with a forged forwarding header, on the v1 endpoint and to a log by name (the same
    // class).
    for _ in 0..3 {
        let answer = write("127.0.0.1", follower_url.clone(), &[]).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    assert_limited(&write("127.0.0.1", follower_url.clone(), &[]).await, "4th");
    assert_limited(
        &write("127.0.0.1", follower_url.clone(), forged).await,
        "forged",
    );
    let v1 = post_from("127.0.0.1", &follower_url, "/api/v1/log/entries", "{}", &[]).await;
    assert_limited(&v1, "v1");
    let named = post_from(
        "127.0.0.1",
        &follower_url,
        "/logs/artifacts/entries",
        "{}",
        &[],
    )
    .await;
    assert_limited(&named, "a named log");

    // 127.0.0.2 at the follower: unaffected. The leader has now sequenced six forwarded
    // writes from one follower: had it charged the follower's address, the last three would
    // have been refused.
    for _ in 0..2 {
        let answer = write("127.0.0.2", follower_url.clone(), &[]).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    // The third to the artifact log by name, forwarded on that path.
    let body = good_request(b"to a named log");
    let answer = post_from(
        "127.0.0.2",
        &follower_url,
        "/logs/artifacts/entries",
        &body,
        &[],
    )
    .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_limited(
        &write("127.0.0.2", follower_url.clone(), &[]).await,
        "2nd address",
    );

    // 127.0.0.1 at the leader: not charged there for what it sent through the follower; a
    // forged header does not exempt it once its burst is spent.
    for _ in 0..3 {
        let answer = write("127.0.0.1", leader_url.clone(), forged).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    assert_limited(
        &write("127.0.0.1", leader_url.clone(), forged).await,
        "leader",
    );

    // X-Forwarded-For: believed from the trusted proxy 127.0.0.3 (per named client), ignored
    // from anyone else.
    let client_a: &[(&str, &str)] = &[("x-forwarded-for", "198.51.100.7")];
    let client_b: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.1, 198.51.100.8")];
    for _ in 0..3 {
        let answer = write("127.0.0.3", follower_url.clone(), client_a).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let answer = write("127.0.0.3", follower_url.clone(), client_a).await;
    assert_limited(&answer, "proxied client");
    assert!(answer.body.contains("198.51.100.7"), "{answer:?}");
    let answer = write("127.0.0.3", follower_url.clone(), client_b).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = write("127.0.0.1", follower_url.clone(), client_b).await;
    assert_limited(&answer, "untrusted proxy");

    // Certificate requests have their own bucket: 127.0.0.1's spent writes do not count, its
    // one certificate token does (the request itself is refused for lack of a token).
    let signing = "/api/v2/signingCert";
    let first = post_from("127.0.0.1", &follower_url, signing, "{}", &[]).await;
    assert_ne!(first.status, 429, "{first:?}");
    let second = post_from("127.0.0.1", &follower_url, signing, "{}", &[]).await;
    assert_limited(&second, "certificates");

    // Refusals are counted per class, where they happened.
    let refused = "cairn_rate_limited_requests_total{class=\"writes\"}";
    assert_eq!(metric(&cluster, follower, refused).await, 7.0);
    assert_eq!(metric(&cluster, leader, refused).await, 1.0);
    let refused = "cairn_rate_limited_requests_total{class=\"certificates\"}";
    assert_eq!(metric(&cluster, follower, refused).await, 1.0);
}

/// Writes `issued` as the public certificate and key files.
fn install(cert_file: &Path, key_file: &Path, issued: &NodeCertificate) {
    std::fs::write(key_file, &issued.key_pem).unwrap();
    std::fs::write(cert_file, &issued.cert_pem).unwrap();
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A TLS connection to `url` (https) offering `alpn`, trusting only `ca`.
async fn connect(
    url: &str,
    ca: &CertificateDer<'static>,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(node::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let address = url.strip_prefix("https://").unwrap();
    let stream = TcpStream::connect(address).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), stream)
        .await
        .unwrap()
}

/// The end-entity certificate a new connection to `url` is served.
async fn served(url: &str, ca: &CertificateDer<'static>) -> Vec<u8> {
    let stream = connect(url, ca, b"http/1.1").await;
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// `request` over a new connection to `url` with ALPN `alpn` (`h2` or `http/1.1`): the
/// negotiated protocol, the answer's HTTP version, status and body.
async fn exchange(
    url: &str,
    ca: &CertificateDer<'static>,
    alpn: &[u8],
    request: hyper::Request<Full<Bytes>>,
) -> (Vec<u8>, hyper::Version, u16, String) {
    let stream = connect(url, ca, alpn).await;
    let negotiated = stream.get_ref().1.alpn_protocol().unwrap().to_vec();
    let io = TokioIo::new(stream);
    let response = if negotiated == b"h2" {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let (version, status) = (response.version(), response.status().as_u16());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        negotiated,
        version,
        status,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The TLS node's header read timeout, also HTTP/2's idle timeout, in milliseconds.
const IDLE_MS: u64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http1_and_http2_and_reloads_its_certificate() {
    let mut cluster = Cluster::init_with_scheme("public", "tls", 1, &[], "https");
    // An operator's private CA and its certificates for the node's address.
    let now = time::OffsetDateTime::now_utc();
    let ca = ClusterCa::create(now).unwrap();
    let ca_der = CertificateDer::from(der(ca.cert_pem()));
    let ca_file = cluster.dir.join("public-ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let (cert_file, key_file) = (cluster.dir.join("tls.crt"), cluster.dir.join("tls.key"));
    let [first, second, third] = [1, 2, 3].map(|n| ca.issue(n, "127.0.0.1", now).unwrap());
    install(&cert_file, &key_file, &first);
    cluster.edit_config(1, |config| {
        let http = config.get_mut("http").unwrap().as_table_mut().unwrap();
        let mut tls = toml::Table::new();
        tls.insert("cert_file".into(), cert_file.display().to_string().into());
        tls.insert("key_file".into(), key_file.display().to_string().into());
        http.insert("tls".into(), toml::Value::Table(tls));
    });
    // Short, so that an idle HTTP/2 connection is closed within the test.
    cluster
        .processes
        .set_env("CAIRN_HEADER_READ_TIMEOUT_MS", &IDLE_MS.to_string());
    cluster.processes.trust(std::slice::from_ref(&ca_der));
    cluster.http = node::network::http_client_trusting(std::slice::from_ref(&ca_der));
    cluster.form(1).await;
    let url = cluster.urls[0].clone();
    assert!(url.starts_with("https://"));

    // HTTP/2 by ALPN, an append through it; HTTP/1.1 by ALPN.
    let append = hyper::Request::post(format!("{url}/api/v2/log/entries"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(good_request(b"over h2"))))
        .unwrap();
    let (alpn, version, status, body) = exchange(&url, &ca_der, b"h2", append).await;
    assert_eq!(
        (alpn.as_slice(), version, status),
        (&b"h2"[..], hyper::Version::HTTP_2, 201),
        "{body}"
    );
    let health = hyper::Request::get("/healthz")
        .header("host", url.trim_start_matches("https://"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (alpn, version, status, body) = exchange(&url, &ca_der, b"http/1.1", health).await;
    assert_eq!(
        (alpn.as_slice(), version, status, body.as_str()),
        (&b"http/1.1"[..], hyper::Version::HTTP_11, 200, "ok\n")
    );
    // An HTTP/2 connection without a request for the header read timeout is closed (GOAWAY).
    let stream = connect(&url, &ca_der, b"h2").await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let health = hyper::Request::get(format!("{url}/healthz"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(sender.send_request(health).await.unwrap().status(), 200);
    let idle_since = Instant::now();
    tokio::time::timeout(Duration::from_millis(IDLE_MS * 5), connection)
        .await
        .expect("an idle HTTP/2 connection stayed open")
        .unwrap()
        .unwrap();
    assert!(idle_since.elapsed() >= Duration::from_millis(IDLE_MS / 2));

    let not_after = "cairn_public_tls_not_after_seconds";
    assert!(metric(&cluster, 1, not_after).await > now.unix_timestamp() as f64);

    // `cairn` trusts the private CA through SSL_CERT_FILE, and only then.
    let cairn = Path::new(env!("CARGO_BIN_EXE_cairn-node")).with_file_name("cairn");
    assert!(
        cairn.exists(),
        "build the client too: cargo test -p node -p client"
    );
    let get = |ssl_cert_file: Option<&Path>| {
        let mut command = std::process::Command::new(&cairn);
        command
            .args(["log", "get", "0", "--url", &url])
            .env("CAIRN_HOME", cluster.dir.join("cairn-home"))
            .env_remove("SSL_CERT_FILE");
        if let Some(file) = ssl_cert_file {
            command.env("SSL_CERT_FILE", file);
        }
        command.output().unwrap()
    };
    let trusted = get(Some(&ca_file));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = get(None);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    // So does `cairn monitor`, which reads tiles with the witness crate's client.
    let (_, logs) = cluster.request("GET", 1, "/logs", None).await.unwrap();
    let logs: serde_json::Value = serde_json::from_slice(&logs).unwrap();
    let vkey = logs["logs"][0]["verifier_key"].as_str().unwrap().to_owned();
    let prefix = format!("{url}{}", logs["logs"][0]["prefix"].as_str().unwrap());
    let monitor = |ssl_cert_file: Option<&Path>| {
        let mut command = std::process::Command::new(&cairn);
        command
            .args([
                "monitor",
                "--log",
                prefix.trim_end_matches('/'),
                "--log-key",
                &vkey,
            ])
            .args(["--identity", "nobody@example.com", "--once", "--cursor"])
            .arg(cluster.dir.join("monitor-cursor.json"))
            .env_remove("SSL_CERT_FILE");
        if let Some(file) = ssl_cert_file {
            command.env("SSL_CERT_FILE", file);
        }
        command.output().unwrap()
    };
    let trusted = monitor(Some(&ca_file));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(!monitor(None).status.success());

    // A replacement is served on new connections without a restart.
    assert_eq!(served(&url, &ca_der).await, der(&first.cert_pem));
    install(&cert_file, &key_file, &second);
    let started = Instant::now();
    while served(&url, &ca_der).await != der(&second.cert_pem) {
        assert!(started.elapsed() < Duration::from_secs(20), "not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A certificate whose key is not in the key file: refused, counted, logged, and the
    // previous certificate stays served.
    let failures = "cairn_public_tls_reload_failures_total";
    let before = metric(&cluster, 1, failures).await;
    std::fs::write(&cert_file, &third.cert_pem).unwrap();
    let started = Instant::now();
    while metric(&cluster, 1, failures).await <= before {
        assert!(started.elapsed() < Duration::from_secs(20), "not refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(served(&url, &ca_der).await, der(&second.cert_pem));
    let log = std::fs::read_to_string(cluster.dir.join("node-1/node.log")).unwrap();
    assert!(log.contains("were refused"), "{log}");
    let (status, _) = cluster.request("GET", 1, "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
}
