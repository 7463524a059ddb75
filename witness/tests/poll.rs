//! The witness over HTTP against a log that serves only static tlog-tiles files on loopback
//! (no proof endpoint, so consistency proofs are computed from tiles): polling and cosigning,
//! the read endpoint, a 409 over HTTP, a forked log caught by the poller, by gossip between two
//! witnesses and by the monitor, which also reports the entries naming an identity with
//! verified inclusion proofs and resumes from its cursor.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use common::TestLog;
use http_body_util::Full;
use hyper::{Method, Response};
use hyper_util::rt::TokioIo;
use tlog::keys::Cosigner;
use tlog::keys::Verifiers;
use tlog::note::Note;
use witness::config::Logs;
use witness::fetch::{Http, LogClient, witness_checkpoint_path};
use witness::monitor::{Monitor, MonitorError};
use witness::poller::{PollOutcome, poll_once};
use witness::storage::RedbStore;
use witness::{Store, Witness};

const ORIGIN: &str = "example.com/log";

type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// Serves `files` under `/log/` on a loopback port, like a static directory.
async fn static_log(files: Files) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let files = files.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let path = request.uri().path().trim_start_matches("/log/").to_owned();
                    let found = files.lock().unwrap().get(&path).cloned();
                    let mut response =
                        Response::new(Full::new(Bytes::from(found.clone().unwrap_or_default())));
                    if found.is_none() {
                        *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                    }
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{address}/log")
}

struct RunningWitness {
    witness: Arc<Witness>,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_witness(name: &str, seed: u8, logs: Logs) -> RunningWitness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("w.redb")).unwrap());
    let cosigner = Cosigner::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap();
    let witness = Arc::new(Witness::new(cosigner, logs, store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(witness::server::serve(
        listener,
        witness.clone(),
        std::future::pending(),
    ));
    RunningWitness {
        witness,
        url,
        _dir: dir,
    }
}

fn publish(files: &Files, log: &TestLog) {
    let mut files = files.lock().unwrap();
    files.clear();
    files.extend(log.tiles());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_gossip_and_monitor_against_static_tiles() {
    let mut log = TestLog::new(ORIGIN, 1);
    let files: Files = Arc::default();
    let url = static_log(files.clone()).await;
    let logs = Logs::single(ORIGIN, log.verifier(), Some(url.clone()));
    let w1 = start_witness("witness.example/w1", 11, logs.clone()).await;
    let http = Http::new();
    let config = logs.get(ORIGIN).unwrap();

    // An empty tree, then more than a tile of leaves, then more: each poll cosigns, the later
    // ones with proofs computed from the log's tiles.
    publish(&files, &log);
    assert_eq!(
        poll_once(&w1.witness, &http, config).await.unwrap(),
        PollOutcome::Cosigned(0)
    );
    for (n, want) in [(300, 300), (213, 513), (1, 514)] {
        log.grow(n, "a");
        publish(&files, &log);
        assert_eq!(
            poll_once(&w1.witness, &http, config).await.unwrap(),
            PollOutcome::Cosigned(want)
        );
    }
    assert_eq!(
        poll_once(&w1.witness, &http, config).await.unwrap(),
        PollOutcome::Unchanged
    );

    // The read endpoint serves the log's checkpoint with the witness's cosignature.
    let latest = http
        .get_ok(&format!("{}/{}", w1.url, witness_checkpoint_path(ORIGIN)))
        .await
        .unwrap();
    let note = Note::parse(&latest).unwrap();
    let mut verifiers = Verifiers::new();
    verifiers
        .push(
            Cosigner::new(
                "witness.example/w1",
                ed25519_dalek::SigningKey::from_bytes(&[11; 32]),
            )
            .unwrap()
            .verifier(),
        )
        .unwrap();
    note.verify(&verifiers).unwrap();

    // A push with a stale old size over HTTP: 409, the size in the body.
    let (status, body) = http
        .send(
            Method::POST,
            &format!("{}/add-checkpoint", w1.url),
            Some(Bytes::from(log.request(300))),
        )
        .await
        .unwrap();
    assert_eq!((status, &body[..]), (409, &b"514\n"[..]));

    // A second witness is shown a fork of the same size (another history, same key).
    let mut fork = TestLog::new(ORIGIN, 1);
    fork.grow(514, "b");
    let fork_files: Files = Arc::default();
    let fork_url = static_log(fork_files.clone()).await;
    publish(&fork_files, &fork);
    let fork_logs = Logs::single(ORIGIN, log.verifier(), Some(fork_url.clone()));
    let w2 = start_witness("witness.example/w2", 12, fork_logs.clone()).await;
    assert_eq!(
        poll_once(&w2.witness, &http, fork_logs.get(ORIGIN).unwrap())
            .await
            .unwrap(),
        PollOutcome::Cosigned(514)
    );
    // Each witness is content on its own; gossip compares them and finds the split view.
    let report = witness::gossip::compare(&http, &logs, &[w1.url.clone(), w2.url.clone()]).await;
    assert_eq!(report.split_views.len(), 1, "{report:?}");
    assert!(
        report.split_views[0]
            .reason
            .contains("two roots for tree size 514")
    );

    // The first witness then polls the forked log after it grew: no consistency proof exists
    // from what it cosigned, so it records the split view with both checkpoints.
    fork.grow(10, "b");
    publish(&files, &fork);
    let outcome = poll_once(&w1.witness, &http, config).await.unwrap();
    let PollOutcome::SplitView(evidence) = outcome else {
        panic!("want a split view, got {outcome:?}");
    };
    assert!(
        evidence
            .reason
            .contains("no valid consistency proof from size 514 to 524")
    );
    let views = w1.witness.store().split_views().unwrap();
    assert_eq!(views.len(), 1);
    assert!(views[0].first.contains(&log.root().to_base64()));
    assert!(views[0].second.contains(&fork.root().to_base64()));
    let (status, body) = http
        .send(Method::GET, &format!("{}/split-views", w1.url), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("no valid consistency proof"));
    // And it still holds (and serves) what it cosigned.
    assert_eq!(
        w1.witness.store().latest(ORIGIN).unwrap().unwrap().size,
        514
    );

    // A lagging checkpoint (an older one, beside current tiles) is fine if it is a prefix of
    // what was cosigned, and a split view if it is not.
    let mut prefix = TestLog::new(ORIGIN, 1);
    prefix.grow(300, "a");
    let mut files_now = log.tiles();
    files_now.insert("checkpoint".to_owned(), prefix.checkpoint().into_bytes());
    *files.lock().unwrap() = files_now.clone();
    assert_eq!(
        poll_once(&w1.witness, &http, config).await.unwrap(),
        PollOutcome::Unchanged
    );
    let mut other = TestLog::new(ORIGIN, 1);
    other.grow(300, "c");
    files_now.insert("checkpoint".to_owned(), other.checkpoint().into_bytes());
    *files.lock().unwrap() = files_now;
    let outcome = poll_once(&w1.witness, &http, config).await.unwrap();
    assert!(
        matches!(&outcome, PollOutcome::SplitView(e) if e.reason.contains("from size 300 to 514")),
        "{outcome:?}"
    );
    assert_eq!(w1.witness.store().split_views().unwrap().len(), 2);
}

fn certificate_entry(identity: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![if identity.contains('@') {
        rcgen::SanType::Rfc822Name(identity.try_into().unwrap())
    } else {
        rcgen::SanType::URI(identity.try_into().unwrap())
    }];
    // Fulcio's issuer extension (a DER UTF8String) and a known start of validity, which the
    // monitor reports.
    let issuer = b"https://issuer.example";
    let mut content = vec![0x0c, u8::try_from(issuer.len()).unwrap()];
    content.extend_from_slice(issuer);
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
        content,
    )];
    params.not_before = rcgen::date_time_ymd(2026, 12, 1);
    let cert = params.self_signed(&key).unwrap();
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": { "hashedRekordV002": { "signature": { "verifier": {
            "x509Certificate": { "rawBytes": BASE64.encode(cert.der()) }
        }}}}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_reports_identity_resumes_and_catches_a_fork() {
    let mut log = TestLog::new(ORIGIN, 1);
    let files: Files = Arc::default();
    let url = static_log(files.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cursor_path = dir.path().join("cursor.json");
    let mut verifiers = Verifiers::new();
    verifiers.push(log.verifier()).unwrap();
    let monitor = Monitor::new(
        LogClient::new(Http::new(), &url),
        ORIGIN,
        verifiers,
        "alice@example.com",
        &cursor_path,
    );

    log.grow(5, "x");
    log.append(certificate_entry("alice@example.com"));
    log.append(certificate_entry("bob@example.com"));
    log.grow(270, "x");
    log.append(certificate_entry("alice@example.com"));
    publish(&files, &log);
    let cursor = monitor.load_cursor(0).unwrap();
    let (cursor, matches) = monitor.step(&cursor).await.unwrap();
    assert_eq!(
        matches.iter().map(|m| m.index).collect::<Vec<_>>(),
        vec![5, 277]
    );
    assert_eq!(cursor.next_index, 278);
    assert_eq!(matches[0].issuer.as_deref(), Some("https://issuer.example"));
    assert_eq!(matches[0].certified_at, "2026-12-01T00:00:00Z");
    // Not a complete hashedrekord: nothing to say about what was signed.
    assert_eq!(matches[0].signed_digest, None);
    monitor.save_cursor(&cursor).unwrap();

    // Resumed from disk: only new entries are read.
    log.append(certificate_entry("https://github.com/alice/repo"));
    log.append(certificate_entry("alice@example.com"));
    publish(&files, &log);
    let cursor = monitor.load_cursor(0).unwrap();
    let (cursor, matches) = monitor.step(&cursor).await.unwrap();
    assert_eq!(
        matches.iter().map(|m| m.index).collect::<Vec<_>>(),
        vec![279]
    );
    assert_eq!(matches[0].tree_size, 280);
    monitor.save_cursor(&cursor).unwrap();

    // The log now shows a fork that does not extend what the monitor verified.
    let mut fork = TestLog::new(ORIGIN, 1);
    fork.grow(290, "y");
    publish(&files, &fork);
    let error = monitor.step(&cursor).await.unwrap_err();
    let MonitorError::SplitView(evidence) = error else {
        panic!("want a split view, got {error}");
    };
    assert!(evidence.first.contains(&log.root().to_base64()));
    assert!(evidence.second.contains(&fork.root().to_base64()));

    // A log that serves a doctored entry (from the start, or resuming mid-tree) is caught:
    // the entries no longer reproduce the signed root.
    let mut doctored = log.tiles();
    let mut entries = log.leaves[256..].to_vec();
    entries[22] = certificate_entry("mallory@example.com");
    let bundle = tlog::tile::Tile::entries(1, u16::try_from(entries.len()).unwrap());
    doctored.insert(bundle.path(), tlog::tile::encode_bundle(&entries).unwrap());
    *files.lock().unwrap() = doctored;
    for start in [0, 270] {
        let fresh = Monitor::new(
            LogClient::new(Http::new(), &url),
            ORIGIN,
            {
                let mut verifiers = Verifiers::new();
                verifiers.push(log.verifier()).unwrap();
                verifiers
            },
            "mallory@example.com",
            &dir.path().join(format!("fresh-{start}.json")),
        );
        let cursor = fresh.load_cursor(start).unwrap();
        let error = fresh.step(&cursor).await.unwrap_err();
        assert!(
            matches!(error, MonitorError::Entry { .. }),
            "want a bad entry, got {error}"
        );
    }
}
