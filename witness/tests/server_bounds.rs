//! The witness's HTTP server bounds what anyone who reaches its port can hold: a half-sent
//! request is closed after the header read timeout, and past the connection cap a new
//! connection gets a 503 at once.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestLog;
use tlog::keys::Cosigner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use witness::config::Logs;
use witness::server::{CONNECTIONS_MAX, HEADER_READ_TIMEOUT};
use witness::storage::RedbStore;
use witness::{Store, Witness};

/// Reads until the peer closes the connection, or `within` passes (`None`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
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
async fn half_sent_requests_are_closed_and_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new("example.com/log", 1);
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("w.redb")).unwrap());
    let cosigner = Cosigner::new(
        "witness.example/w1",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .unwrap();
    let logs = Logs::single("example.com/log", log.verifier(), None);
    let witness = Arc::new(Witness::new(cosigner, logs, store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(witness::server::serve(
        listener,
        witness,
        std::future::pending(),
    ));

    // Half a request head: closed after the header read timeout, not kept forever.
    let mut half = TcpStream::connect(address).await.unwrap();
    half.write_all(b"POST /add-checkpoint HTTP/1.1\r\nContent-Le")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        read_until_closed(&mut half, HEADER_READ_TIMEOUT + Duration::from_secs(5))
            .await
            .is_some(),
        "a half-sent request was kept open"
    );
    assert!(started.elapsed() >= HEADER_READ_TIMEOUT - Duration::from_secs(1));

    // Past the cap, a new connection is refused with a 503.
    let mut open = Vec::new();
    for _ in 0..CONNECTIONS_MAX {
        open.push(TcpStream::connect(address).await.unwrap());
    }
    let mut extra = TcpStream::connect(address).await.unwrap();
    let answer = read_until_closed(&mut extra, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
    drop(open);
}
