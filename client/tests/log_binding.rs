//! `cairn log` binds every checkpoint it verifies to the log it asked: the trusted root holds
//! two logs, A and B, whose trees are identical (one same leaf), and a loopback server at the
//! URL asked mixes their checkpoints. Each checkpoint verifies under some trusted key and every
//! size and root agree, so only the binding to one log tells them apart.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tlog::checkpoint::Checkpoint;
use tlog::keys::Ed25519Signer;

type Answers = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

const LEAF: &[u8] = br#"{"n":0}"#;

/// Serves `answers` by request path (with its query), one request per connection.
fn serve(answers: Answers) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("");
            let found = answers.lock().unwrap().get(path).cloned();
            let (status, body) = match found {
                Some(body) => ("200 OK", body),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{address}")
}

/// A log: its origin and key.
struct Log {
    origin: &'static str,
    key: ed25519_dalek::SigningKey,
}

impl Log {
    fn new(origin: &'static str, seed: u8) -> Log {
        Log {
            origin,
            key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// Its signed checkpoint of the one-leaf tree.
    fn checkpoint(&self) -> String {
        let signer = Ed25519Signer::new(self.origin, self.key.clone()).unwrap();
        Checkpoint::new(self.origin, tlog::TreeSize(1), tlog::leaf_hash(LEAF))
            .sign(&[&signer])
            .unwrap()
            .format()
            .unwrap()
    }

    fn trusted(&self) -> Value {
        let spki = tlog::keys::ed25519_spki_der(&self.key.verifying_key());
        json!({
            "baseUrl": format!("https://{}", self.origin),
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": BASE64.encode(&spki),
                "keyDetails": "PKIX_ED25519",
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            },
            "logId": {"keyId": BASE64.encode(tlog::Hash::digest(&spki).as_bytes())},
        })
    }
}

/// `GET /api/v1/log` answering `checkpoint`.
fn log_answer(checkpoint: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "signedTreeHead": checkpoint,
        "treeSize": 1,
        "rootHash": hex::encode(tlog::leaf_hash(LEAF).as_bytes()),
    }))
    .unwrap()
}

/// Entry 0, its inclusion proof under `checkpoint`.
fn entry_answer(checkpoint: &str) -> Vec<u8> {
    let leaf = hex::encode(tlog::leaf_hash(LEAF).as_bytes());
    serde_json::to_vec(&json!({ leaf.clone(): {
        "body": BASE64.encode(LEAF),
        "logIndex": 0,
        "verification": {"inclusionProof": {
            "logIndex": 0,
            "treeSize": 1,
            "rootHash": leaf,
            "hashes": [],
            "checkpoint": checkpoint,
        }},
    }}))
    .unwrap()
}

fn cairn(home: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_HOME", home)
        .args(args)
        .output()
        .unwrap()
}

fn setup() -> (Log, Log, tempfile::TempDir, String) {
    let (a, b) = (Log::new("a.example", 1), Log::new("b.example", 2));
    let dir = tempfile::tempdir().unwrap();
    let root = json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [a.trusted(), b.trusted()],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": [],
    });
    let path = dir.path().join("trusted_root.json");
    std::fs::write(&path, serde_json::to_vec(&root).unwrap()).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (a, b, dir, path)
}

#[test]
fn an_entry_proved_under_another_logs_checkpoint_is_refused() {
    let (a, b, dir, root) = setup();
    let answers: Answers = Arc::default();
    let url = serve(answers.clone());
    answers.lock().unwrap().extend([
        ("/api/v1/log".to_owned(), log_answer(&a.checkpoint())),
        (
            "/api/v1/log/entries?logIndex=0".to_owned(),
            entry_answer(&a.checkpoint()),
        ),
    ]);
    let verify = [
        "log",
        "verify",
        "--index",
        "0",
        "--trust-root",
        &root,
        "--url",
        &url,
    ];
    let output = cairn(dir.path(), &verify);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The same entry, proved under log B's checkpoint of the same tree.
    answers.lock().unwrap().insert(
        "/api/v1/log/entries?logIndex=0".to_owned(),
        entry_answer(&b.checkpoint()),
    );
    let output = cairn(dir.path(), &verify);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.example"), "{stderr}");
}

#[test]
fn a_url_that_switches_logs_is_refused() {
    let (a, b, dir, root) = setup();
    let answers: Answers = Arc::default();
    let url = serve(answers.clone());
    answers
        .lock()
        .unwrap()
        .insert("/api/v1/log".to_owned(), log_answer(&a.checkpoint()));
    let info = ["log", "info", "--trust-root", &root, "--url", &url];
    let output = cairn(dir.path(), &info);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The URL now answers log B's checkpoint of the same tree.
    answers
        .lock()
        .unwrap()
        .insert("/api/v1/log".to_owned(), log_answer(&b.checkpoint()));
    let output = cairn(dir.path(), &info);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.example"), "{stderr}");
}
