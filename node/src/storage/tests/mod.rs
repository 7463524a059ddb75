//! Tests of the storage module: openraft's storage suite, equivalence with the in-memory apply,
//! reopen, reads across tile boundaries, group commit on a disk that loses unsynced writes,
//! purge and truncate boundaries, corruption, and snapshots: descriptors, catch-up by fetching
//! entry bundles from a second store, bad sources and crashes mid-install.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, Vote,
};
use redb::StorageBackend;
use redb::backends::InMemoryBackend;

/// redb 4.6 without `experimental-api-5`: backend methods return `std::io::Error`.
type BackendIoError = std::io::Error;
use tlog::keys::{Ed25519Verifier, Verifier, Verifiers};
use tlog::tile::{Tile, decode_bundle, tile_data, tiles_for_size};
use tlog::{Hash, MemoryTree, TreeSize, leaf_hash};

use super::*;
use crate::catch_up::{
    BundleFuture, BundleSource, CatchUpPolicy, FetchError, NoBundles, TimesFuture,
};
use crate::state_machine::tests::{MemoryState, test_logs};
use crate::state_machine::{self, LogHead, StateAccess};
use crate::types::{
    AppendBatch, Command, CommandOutcome, LeafOutcome, LogName, NodeAddress, NodeId, TypeConfig,
};

mod apply;
mod index;
mod reads;
mod snapshots;

// ---- Helpers ----

/// A disk that keeps what was synced apart from what was only written, so a test can "crash"
/// it: [`TestDisk::crash_image`] is the disk as it would be after power loss.
#[derive(Debug, Default, Clone)]
struct TestDisk(Arc<Mutex<DiskState>>);

#[derive(Debug, Default)]
struct DiskState {
    live: Vec<u8>,
    durable: Vec<u8>,
    syncs: u64,
}

impl TestDisk {
    fn syncs(&self) -> u64 {
        self.0.lock().unwrap().syncs
    }

    /// A new disk holding only what this one had synced.
    fn crash_image(&self) -> TestDisk {
        let durable = self.0.lock().unwrap().durable.clone();
        TestDisk(Arc::new(Mutex::new(DiskState {
            live: durable.clone(),
            durable,
            syncs: 0,
        })))
    }
}

fn out_of_range() -> BackendIoError {
    std::io::Error::other("out of range")
}

impl StorageBackend for TestDisk {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.0.lock().unwrap().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let state = self.0.lock().unwrap();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let source = state
            .live
            .get(start..start + out.len())
            .ok_or_else(out_of_range)?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.0.lock().unwrap().live.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let mut state = self.0.lock().unwrap();
        state.durable = state.live.clone();
        state.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut state = self.0.lock().unwrap();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        state
            .live
            .get_mut(start..start + data.len())
            .ok_or_else(out_of_range)?
            .copy_from_slice(data);
        Ok(())
    }
}

fn memory_stores(blocking: &Blocking) -> Stores {
    Stores::open_backends(
        InMemoryBackend::new(),
        InMemoryBackend::new(),
        test_logs(),
        blocking,
        Arc::new(NoBundles),
    )
    .unwrap()
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload,
    }
}

fn blank(index: u64) -> Entry<TypeConfig> {
    entry(index, EntryPayload::Blank)
}

fn append_command(log: &str, leaves: Vec<Vec<u8>>) -> Command {
    Command::Append(AppendBatch {
        log: LogName(log.into()),
        leaves,
        timestamp_unix_ms: 1_700_000_000_000,
    })
}

fn artifacts() -> LogName {
    LogName("artifacts".into())
}

fn verifiers(log: &LogName) -> Verifiers {
    let logs = test_logs();
    let config = logs.get(log).unwrap();
    let verifier =
        Ed25519Verifier::new(&config.origin, config.signing_key.verifying_key()).unwrap();
    let mut verifiers = Verifiers::new();
    verifiers.push(Verifier::Ed25519(verifier)).unwrap();
    verifiers
}

/// Appends through the log store and waits until the entries are durable.
async fn append_durably(log: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    log.append_with(
        entries,
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    )
    .await
    .unwrap();
    receiver.await.unwrap().unwrap();
}

/// Every table's content as seen by one view, for comparing two stores.
fn dump(view: &StateView, logs: &[LogName]) -> Vec<String> {
    let mut out = vec![format!("applied {:?}", view.last_applied().unwrap())];
    for log in logs {
        let head = view.head(log).unwrap();
        out.push(format!("{log} head {head:?}"));
        let size = head.map_or(0, |head| head.tree_size);
        for tile in tiles_for_size(TreeSize(size)) {
            out.push(format!(
                "{log} {tile} {:?}",
                view.hash_tile(log, tile).unwrap()
            ));
            if tile.merkle_level() == 0 {
                let bundle = view.entry_bundle(log, tile.index, tile.width).unwrap();
                out.push(format!("{log} bundle {} {bundle:?}", tile.index));
            }
        }
        let mut keys = 0;
        for index in 0..size {
            let leaf = view.leaf(log, index).unwrap().unwrap();
            assert_eq!(view.find_leaf(log, &leaf_hash(&leaf)).unwrap(), Some(index));
            // Every key of every leaf finds it, and the index holds nothing else.
            for key in crate::search::keys(&leaf) {
                let (found, _) = view.search(log, &key, index.checked_sub(1), 1).unwrap();
                assert_eq!(found, [index], "{log} leaf {index} by {key:?}");
                keys += 1;
            }
        }
        let pairs = view.index_pairs(log);
        assert_eq!(
            pairs.len() as u64,
            size + keys,
            "{log}: index pairs beyond the leaves' hashes and keys"
        );
        out.push(format!("{log} index {pairs:?}"));
    }
    out
}

/// A leaf with search keys: every seventh artifact leaf (from 3 on) is a hashedrekord entry
/// signed by one of three keys, every fifth certificate leaf a certificate for one of two
/// e-mail addresses; the rest are plain bytes, which have none.
fn catch_up_leaf(log: &str, label: &str, i: u64) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey as _;
    use tlog::entry::{CanonicalBody, Digest, HashAlgorithm, HashedRekordV001, KeyMaterial};
    let plain = format!("{log} {label}{i}").into_bytes();
    match log {
        "artifact" if i % 7 == 3 => {
            let seed = u8::try_from(i % 3).unwrap() + 1;
            let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            let spki = key.verifying_key().to_public_key_der().unwrap();
            let digest = Digest::new(HashAlgorithm::Sha256, Hash::digest(&plain).as_bytes());
            let entry = HashedRekordV001::new(
                digest.unwrap(),
                tlog::entry::SignatureBytes::new(&[seed; 64]).unwrap(),
                KeyMaterial::from_public_key_der(spki.as_bytes()).unwrap(),
            );
            CanonicalBody::new(entry).unwrap().into_bytes()
        }
        "certificate" if i.is_multiple_of(5) => {
            // ECDSA signatures are randomized: make each certificate once, so every call gives
            // the same leaves (the timestamp, `i`, tells the leaves apart).
            static CERTIFICATES: std::sync::OnceLock<[Vec<u8>; 2]> = std::sync::OnceLock::new();
            let certificates = CERTIFICATES.get_or_init(|| {
                ["Alice@Example.com", "bob@example.com"].map(|email| {
                    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
                    params.subject_alt_names =
                        vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
                    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                    params.self_signed(&key).unwrap().der().to_vec()
                })
            });
            let certificate = &certificates[usize::try_from(i % 2).unwrap()];
            ca::ct::x509_leaf(i, certificate).unwrap()
        }
        _ => plain,
    }
}

/// The two logs of the test configuration.
fn both_logs() -> [LogName; 2] {
    [artifacts(), LogName("certificates".into())]
}
