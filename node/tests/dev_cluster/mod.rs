//! A `cairn-node dev` cluster and the `cairn` binary, for tests of the client's commands
//! against real nodes.

// Test harness code: a failed unwrap is a failed test. Not every test file uses every helper.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const NODE_BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

/// The `cairn` binary, built next to `cairn-node` (`cargo test -p node -p client`).
pub(crate) fn cairn_bin() -> PathBuf {
    let path = Path::new(NODE_BIN).with_file_name("cairn");
    assert!(
        path.exists(),
        "{} is missing: build the client too (cargo test -p node -p client)",
        path.display()
    );
    path
}

/// `cairn-node dev` with three nodes, the CA and the dev issuer (`node::dev_process`), stopped
/// when dropped.
pub(crate) struct Dev(pub(crate) node::dev_process::DevProcess);

impl Dev {
    /// Starts three nodes and waits for their trust documents.
    pub(crate) fn start(dir: &Path) -> Dev {
        let options = node::dev_process::DevOptions::new(Path::new(NODE_BIN), dir, 3);
        Dev(node::dev_process::DevProcess::start(options).unwrap())
    }

    /// Node `node`'s (0-based) public URL.
    pub(crate) fn url(&self, node: u16) -> String {
        self.0.url(node)
    }

    /// The dev issuer's URL.
    pub(crate) fn issuer(&self) -> String {
        self.0.issuer()
    }
}

/// Runs `cairn` with `home` as `CAIRN_HOME`.
pub(crate) fn cairn(home: &Path, args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .env("CAIRN_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("CAIRN_URL")
        .env_remove("CAIRN_TRUST_ROOT")
        .args(args)
        .output()
        .unwrap()
}

/// A command's outcome, for assertion messages.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A plain HTTP/1.1 request on loopback: (status, body).
pub(crate) fn request(method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer[split + 4..].to_vec())
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub(crate) fn get(url: &str) -> (u16, Vec<u8>) {
    request("GET", url, b"")
}

/// The JSON body of a GET that must answer 200.
pub(crate) fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}
