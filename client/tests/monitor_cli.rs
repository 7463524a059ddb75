//! `cairn monitor` through the binary, against a log served as static tlog-tiles files by a
//! tiny loopback server: `--once` verifies and saves its cursor (exit 0); when the log then
//! shows a checkpoint that does not extend the one in the cursor, it exits 4 and prints both.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use tlog::checkpoint::Checkpoint;
use tlog::keys::Ed25519Signer;
use tlog::tile::{TILE_WIDTH, Tile};
use tlog::{MemoryTree, leaf_hash};

const ORIGIN: &str = "log.example/monitored";

type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// Serves `files` under `/log/`, one request per connection.
fn serve(files: Files) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            // Skip the headers.
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("");
            let path = path.trim_start_matches("/log/");
            let found = files.lock().unwrap().get(path).cloned();
            let (status, body) = match found {
                Some(body) => ("200 OK", body),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{address}/log")
}

/// The tlog-tiles files of a log of `leaves`, signed by `signer`.
fn files_of(signer: &Ed25519Signer, leaves: &[Vec<u8>]) -> BTreeMap<String, Vec<u8>> {
    let mut tree = MemoryTree::new();
    for leaf in leaves {
        tree.append(leaf_hash(leaf)).unwrap();
    }
    let mut files = BTreeMap::new();
    for tile in tlog::tile::tiles_for_size(tree.size()) {
        files.insert(
            tile.path(),
            tlog::tile::tile_data(&tree.store, tile).unwrap(),
        );
    }
    for (bundle, chunk) in leaves.chunks(usize::from(TILE_WIDTH)).enumerate() {
        let tile = Tile::entries(bundle as u64, chunk.len() as u16);
        files.insert(tile.path(), tlog::tile::encode_bundle(chunk).unwrap());
    }
    let checkpoint = Checkpoint::new(ORIGIN, tree.size(), tree.root())
        .sign(&[signer])
        .unwrap()
        .format()
        .unwrap();
    files.insert("checkpoint".to_owned(), checkpoint.into_bytes());
    files
}

fn monitor(url: &str, vkey: &str, cursor: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["monitor", "--log", url, "--log-key", vkey])
        .args(["--identity", "alice@example.com", "--once"])
        .arg("--cursor")
        .arg(cursor)
        .output()
        .unwrap()
}

#[test]
fn monitor_once_then_split_view() {
    let signer =
        Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[4; 32])).unwrap();
    let vkey = signer.verifier().to_vkey();
    let honest: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let files: Files = Arc::new(Mutex::new(files_of(&signer, &honest)));
    let url = serve(files.clone());
    let dir = tempfile::tempdir().unwrap();
    let cursor = dir.path().join("cursor.json");

    let output = monitor(&url, &vkey, &cursor);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cursor).unwrap()).unwrap();
    assert_eq!(saved["next_index"], 300);

    // Another history of 310 entries under the same key: no consistency proof from 300.
    let fork: Vec<Vec<u8>> = (0..310)
        .map(|i| format!("{{\"m\":{i}}}").into_bytes())
        .collect();
    *files.lock().unwrap() = files_of(&signer, &fork);
    let output = monitor(&url, &vkey, &cursor);
    assert_eq!(output.status.code(), Some(4));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("no consistency proof from size 300 to 310"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("SPLIT VIEW"));
}
