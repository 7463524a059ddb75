//! `cairn witness` through the binary: `init` makes the key once and prints its verifier key;
//! `serve` answers `add-checkpoint` (200, then 409 with the size), keeps its state across a
//! restart of the process, and two witnesses shown different roots for one size are caught by
//! `cairn witness gossip`, which exits 4 and prints both checkpoints.

#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tlog::checkpoint::Checkpoint;
use tlog::keys::{Ed25519Signer, Verifier};
use tlog::{TreeSize, leaf_hash};

const ORIGIN: &str = "log.example/test";

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A witness process; killed on drop.
struct Served(Child, u16);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, policy: &Path, port: u16) -> Served {
    let child = cairn()
        .args(["witness", "serve", "--name", "witness.example/w"])
        .arg("--dir")
        .arg(dir)
        .arg("--policy")
        .arg(policy)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "witness did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Served(child, port)
}

/// A one-shot HTTP/1.1 POST; the status and the body.
fn post(port: u16, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

fn checkpoint(signer: &Ed25519Signer, leaf: &[u8]) -> String {
    Checkpoint::new(ORIGIN, TreeSize(1), leaf_hash(leaf))
        .sign(&[signer])
        .unwrap()
        .format()
        .unwrap()
}

#[test]
fn init_serve_restart_and_gossip() {
    let dir = tempfile::tempdir().unwrap();
    let signer =
        Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[3; 32])).unwrap();
    let policy = dir.path().join("logs.policy");
    let port_log = free_port();
    std::fs::write(
        &policy,
        format!(
            "log {} http://127.0.0.1:{port_log}/log\n",
            signer.verifier()
        ),
    )
    .unwrap();

    // init: made once, then the same key.
    let w1 = dir.path().join("w1");
    let init = |dir: &Path| {
        let output = cairn()
            .args(["witness", "init", "--name", "witness.example/w"])
            .arg("--dir")
            .arg(dir)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let vkey = init(&w1);
    assert!(matches!(
        Verifier::parse(&vkey),
        Ok(Verifier::Cosignature(_))
    ));
    assert_eq!(init(&w1), vkey);

    // serve: 200, then a stale old size is 409 with the size; the same after a restart.
    let request = format!("old 0\n\n{}", checkpoint(&signer, b"a"));
    let port1 = free_port();
    {
        let served = serve(&w1, &policy, port1);
        let (status, body) = post(served.1, "/add-checkpoint", &request);
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("— witness.example/w "));
    }
    let _w1 = serve(&w1, &policy, port1);
    assert_eq!(
        post(port1, "/add-checkpoint", &request),
        (409, "1\n".to_owned())
    );

    // A second witness is shown another root for size 1: gossip finds the split view.
    let w2 = dir.path().join("w2");
    let port2 = free_port();
    let _w2 = serve(&w2, &policy, port2);
    let fork = format!("old 0\n\n{}", checkpoint(&signer, b"b"));
    assert_eq!(post(port2, "/add-checkpoint", &fork).0, 200);
    let output = cairn()
        .args(["witness", "gossip"])
        .arg("--policy")
        .arg(&policy)
        .args(["--witness", &format!("http://127.0.0.1:{port1}")])
        .args(["--witness", &format!("http://127.0.0.1:{port2}")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("two roots for tree size 1"), "{stdout}");
    assert!(stdout.contains(&leaf_hash(b"a").to_base64()));
    assert!(stdout.contains(&leaf_hash(b"b").to_base64()));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("SPLIT VIEW"), "{stderr}");
}
