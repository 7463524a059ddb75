//! Cosignatures per second of one witness, sans HTTP: the request parsing, the log signature
//! check, the consistency proof, the cosignature and the store's atomic check-and-store (fsync
//! on redb). A measurement, not a check: run with `cargo bench -p bench --bench witness`.
//! The test log is the witness crate's own test helper.

#![allow(clippy::unwrap_used)]

#[path = "../../witness/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::TestLog;
use tlog::keys::Cosigner;
use witness::config::Logs;
use witness::storage::RedbStore;
use witness::store::MemoryStore;
use witness::{Store, Witness};

const ORIGIN: &str = "example.com/log";

fn measure(name: &str, store: Arc<dyn Store>, count: usize) {
    let mut log = TestLog::new(ORIGIN, 1);
    let cosigner = Cosigner::new(
        "witness.example/w1",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    let witness = Witness::new(cosigner, Logs::single(ORIGIN, log.verifier(), None), store);
    // The requests are made first: the log's signing and proofs are not the witness's cost.
    let mut requests = Vec::with_capacity(count);
    let mut old = 0;
    for _ in 0..count {
        log.grow(16, "x");
        requests.push(log.request(old));
        old = log.size();
    }
    let started = Instant::now();
    for request in &requests {
        let reply = witness.add_checkpoint(request, 1_700_000_000);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{name}: {count} cosignatures in {seconds:.3} s: {:.0} per second, {:.3} ms each",
        count as f64 / seconds,
        seconds * 1000.0 / count as f64
    );
}

fn main() {
    measure("memory store", Arc::new(MemoryStore::new()), 5_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("w.redb")).unwrap());
    measure("redb store (fsync per cosignature)", store, 1_000);
}
