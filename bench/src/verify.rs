//! Verifies each append answer as a client must before it may count it as a success, with the
//! `client` library's checks.
//!
//! A Rekor v2 `TransparencyLogEntry` is only worth something if (1) its canonical body is the
//! entry we submitted, (2) its checkpoint is signed by the log key we trust, for the origin we
//! expect (and, with witnessing, cosigned by the policy's quorum), and (3) the inclusion proof
//! leads from that body's leaf hash to the checkpoint's root. A benchmark that counted
//! unverified 201s would measure a server that could be lying.
//!
//! Many entries share one checkpoint (one per committed batch), so a checkpoint's signatures
//! are verified once and remembered by its exact text: a tampered checkpoint is different text,
//! so it misses the cache and fails verification.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use client::bundle::TlogEntry;
use client::log_entry::{self, LogEntryError};
use client::time::{TimeRange, UnixMillis};
use client::trust_root::TransparencyLog;
use tlog::Hash;

/// How many verified checkpoints to remember. Checkpoints only grow, so old ones are rarely
/// seen again; clearing the whole cache when full is simpler than LRU and costs one re-verify
/// per live checkpoint.
const CACHE_ENTRIES_MAX: usize = 16_384;

/// Why a response did not verify; [`VerifyError::kind`] names the class for the error tally.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("response is not a TransparencyLogEntry: {0}")]
    Malformed(#[from] client::BundleError),
    #[error("canonicalizedBody is not the entry that was submitted")]
    WrongBody,
    #[error("logId.keyId is not the artifact log's key id")]
    WrongLogId,
    #[error("checkpoint origin {0:?} is not the artifact log's")]
    WrongOrigin(String),
    #[error("inclusionProof.{field} disagrees with the checkpoint's")]
    Mismatch { field: &'static str },
    #[error("{0}")]
    Entry(#[from] LogEntryError),
    #[error("checkpoint does not meet the witness policy: {0}")]
    Witnessing(tlog::policy::PolicyError),
}

impl VerifyError {
    /// A short stable class name for reports (`verify: proof`).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "verify: malformed",
            VerifyError::WrongBody => "verify: wrong body",
            VerifyError::WrongLogId => "verify: wrong log id",
            VerifyError::WrongOrigin(_) | VerifyError::Entry(LogEntryError::Checkpoint(_)) => {
                "verify: checkpoint"
            }
            VerifyError::Mismatch { .. } => "verify: mismatch",
            VerifyError::Entry(_) => "verify: proof",
            VerifyError::Witnessing(_) => "verify: witness quorum",
        }
    }
}

/// A verified append: where the entry is and the size of the checkpoint that covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    pub(crate) index: u64,
    pub(crate) tree_size: u64,
}

/// Verifies responses against one log's key; shared by every client task.
#[derive(Debug)]
pub(crate) struct ResponseVerifier {
    /// The log as a trusted root would list it: its Ed25519 key and its log id.
    log: TransparencyLog,
    origin: String,
    /// Checkpoint text → (size, root), for checkpoints whose signatures verified.
    cache: Mutex<HashMap<String, (u64, Hash)>>,
    checkpoint_signatures_verified: AtomicU64,
    /// With witnessing: every checkpoint must also carry the cosignatures this tlog-policy's
    /// quorum asks for.
    policy: Option<tlog::policy::Policy>,
}

impl ResponseVerifier {
    /// A verifier for a cluster: its log key, and its witness policy if it has one.
    pub(crate) fn for_cluster(
        cluster: &crate::cluster::Cluster,
    ) -> anyhow::Result<ResponseVerifier> {
        let mut verifier = ResponseVerifier::new(&cluster.verifier_key)?;
        if let Some(text) = &cluster.witness_policy {
            verifier.policy = Some(
                tlog::policy::Policy::parse(text)
                    .map_err(|error| anyhow::anyhow!("witness policy: {error}"))?,
            );
        }
        Ok(verifier)
    }

    /// A verifier for the log whose C2SP verifier key is `vkey` (`origin+keyid+base64`); the
    /// key name is the origin, as for every Cairn and Rekor v2 log.
    pub(crate) fn new(vkey: &str) -> anyhow::Result<ResponseVerifier> {
        let verifier = tlog::keys::Verifier::parse(vkey.trim())
            .map_err(|error| anyhow::anyhow!("verifier key {vkey:?}: {error}"))?;
        let tlog::keys::Verifier::Ed25519(key) = &verifier else {
            anyhow::bail!("verifier key {vkey:?}: the artifact log signs with Ed25519");
        };
        let origin = verifier.name().to_string();
        // The `logId.keyId` Rekor v2 clients match against their trusted root:
        // SHA-256(origin ‖ 0x0A ‖ 0x01 ‖ Ed25519 public key).
        let mut preimage = origin.as_bytes().to_vec();
        preimage.push(b'\n');
        preimage.push(verifier.key_type());
        preimage.extend_from_slice(&verifier.public_key());
        let log = TransparencyLog {
            base_url: format!("https://{origin}"),
            public_key: tlog::keys::ed25519_spki_der(key.key()),
            key_details: "PKIX_ED25519".into(),
            valid_for: TimeRange {
                start: UnixMillis(0),
                end: None,
            },
            log_id: Hash::digest(&preimage).as_bytes().to_vec(),
        };
        Ok(ResponseVerifier {
            log,
            origin,
            cache: Mutex::new(HashMap::new()),
            checkpoint_signatures_verified: AtomicU64::new(0),
            policy: None,
        })
    }

    /// How many checkpoint signatures were checked (cache misses), for the report.
    pub(crate) fn checkpoint_signatures_verified(&self) -> u64 {
        self.checkpoint_signatures_verified.load(Ordering::Relaxed)
    }

    /// Verifies a response body for the entry whose canonical body hashes to `expected_leaf`.
    pub(crate) fn verify(
        &self,
        body: &[u8],
        expected_leaf: &Hash,
    ) -> Result<Verified, VerifyError> {
        let entry = TlogEntry::from_json(body)?;
        if tlog::leaf_hash(&entry.canonicalized_body) != *expected_leaf {
            return Err(VerifyError::WrongBody);
        }
        if entry.log_id != self.log.log_id {
            return Err(VerifyError::WrongLogId);
        }
        // `from_json` holds a Rekor v2 entry to a v0.3 bundle's rules: both are there.
        let proof = entry
            .inclusion_proof
            .as_ref()
            .ok_or(LogEntryError::NoInclusionEvidence)?;
        let note = proof.checkpoint.as_deref().unwrap_or_default();
        let (size, root) = self.checkpoint(note)?;
        if proof.tree_size != size {
            return Err(VerifyError::Mismatch { field: "treeSize" });
        }
        if proof.root_hash.as_slice() != root.as_bytes().as_slice() {
            return Err(VerifyError::Mismatch { field: "rootHash" });
        }
        log_entry::verify_inclusion(&entry)?;
        Ok(Verified {
            index: entry.log_index,
            tree_size: size,
        })
    }

    /// The size and root of a checkpoint whose signatures verify, from the cache if this exact
    /// text was verified before.
    pub(crate) fn checkpoint(&self, note: &str) -> Result<(u64, Hash), VerifyError> {
        if let Some(known) = self.lock().get(note) {
            return Ok(*known);
        }
        // Verified outside the lock: two clients may verify the same new checkpoint at once,
        // which costs one extra signature check and never a wrong answer.
        let (size, root) = log_entry::verify_checkpoint(note, &self.log)?;
        self.checkpoint_signatures_verified
            .fetch_add(1, Ordering::Relaxed);
        let origin = note.split('\n').next().unwrap_or_default();
        if origin != self.origin {
            return Err(VerifyError::WrongOrigin(origin.to_string()));
        }
        if let Some(policy) = &self.policy {
            client::witnessed::check_checkpoint(note, policy).map_err(VerifyError::Witnessing)?;
        }
        let root = Hash::from_slice(&root)
            .map_err(|_| LogEntryError::Checkpoint("the root hash is not 32 bytes".into()))?;
        let mut cache = self.lock();
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(note.to_string(), (size, root));
        Ok((size, root))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Hash)>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts and
        // clears), so a poisoned cache is still a correct cache.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use tlog::LeafIndex;
    use tlog::checkpoint::Checkpoint;
    use tlog::keys::Ed25519Signer;
    use tlog::{MemoryTree, leaf_hash};

    const ORIGIN: &str = "cairn.localhost/artifacts";

    struct Fixture {
        signer: Ed25519Signer,
        leaves: Vec<Vec<u8>>,
        tree: MemoryTree,
    }

    impl Fixture {
        fn new() -> Fixture {
            let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
            let signer = Ed25519Signer::new(ORIGIN, key).unwrap();
            let mut tree = MemoryTree::new();
            let leaves: Vec<Vec<u8>> = (0..13)
                .map(|i| format!("{{\"entry\":{i}}}").into_bytes())
                .collect();
            for leaf in &leaves {
                tree.append(leaf_hash(leaf)).unwrap();
            }
            Fixture {
                signer,
                leaves,
                tree,
            }
        }

        fn verifier(&self) -> ResponseVerifier {
            ResponseVerifier::new(&self.signer.verifier().to_vkey()).unwrap()
        }

        fn checkpoint(&self) -> String {
            Checkpoint::new(ORIGIN, self.tree.size(), self.tree.root())
                .sign(&[&self.signer])
                .unwrap()
                .format()
                .unwrap()
        }

        /// The response a correct node sends for leaf `index`.
        fn response(&self, index: u64) -> serde_json::Value {
            let proof =
                tlog::proof::inclusion_proof(&self.tree.store, LeafIndex(index), self.tree.size())
                    .unwrap();
            let verifier = self.verifier();
            serde_json::json!({
                "logIndex": index.to_string(),
                "logId": { "keyId": BASE64.encode(&verifier.log.log_id) },
                "kindVersion": { "kind": "hashedrekord", "version": "0.0.2" },
                "inclusionProof": {
                    "logIndex": index.to_string(),
                    "rootHash": self.tree.root().to_base64(),
                    "treeSize": self.tree.size().0.to_string(),
                    "hashes": proof.hashes.iter().map(Hash::to_base64).collect::<Vec<_>>(),
                    "checkpoint": { "envelope": self.checkpoint() },
                },
                "canonicalizedBody": BASE64.encode(&self.leaves[usize::try_from(index).unwrap()]),
            })
        }

        fn expected(&self, index: usize) -> Hash {
            leaf_hash(&self.leaves[index])
        }
    }

    fn bytes(value: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    #[test]
    fn a_correct_response_verifies_and_its_checkpoint_is_checked_once() {
        let fixture = Fixture::new();
        let verifier = fixture.verifier();
        for index in 0..13u64 {
            let verified = verifier
                .verify(
                    &bytes(&fixture.response(index)),
                    &fixture.expected(usize::try_from(index).unwrap()),
                )
                .unwrap();
            assert_eq!(
                verified,
                Verified {
                    index,
                    tree_size: 13
                }
            );
        }
        assert_eq!(verifier.checkpoint_signatures_verified(), 1);
    }

    #[test]
    fn a_tampered_proof_hash_is_rejected() {
        let fixture = Fixture::new();
        let mut response = fixture.response(5);
        let first = response["inclusionProof"]["hashes"][0]
            .as_str()
            .unwrap()
            .to_string();
        let mut hash = Hash::from_base64(&first).unwrap();
        hash.0[0] ^= 1;
        response["inclusionProof"]["hashes"][0] = hash.to_base64().into();
        let error = fixture
            .verifier()
            .verify(&bytes(&response), &fixture.expected(5))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: proof", "{error}");
    }

    #[test]
    fn a_proof_for_another_index_is_rejected() {
        let fixture = Fixture::new();
        let mut response = fixture.response(5);
        response["logIndex"] = "6".into();
        response["inclusionProof"]["logIndex"] = "6".into();
        let error = fixture
            .verifier()
            .verify(&bytes(&response), &fixture.expected(5))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: proof", "{error}");
    }

    #[test]
    fn a_tampered_checkpoint_is_rejected_even_after_the_genuine_one_was_cached() {
        let fixture = Fixture::new();
        let verifier = fixture.verifier();
        verifier
            .verify(&bytes(&fixture.response(2)), &fixture.expected(2))
            .unwrap();
        // Same signature line, different root: the text differs, so it is not a cache hit.
        let mut response = fixture.response(2);
        let envelope = response["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap()
            .to_string();
        let root = fixture.tree.root().to_base64();
        let mut other = fixture.tree.root();
        other.0[31] ^= 0x80;
        let forged = envelope.replace(&root, &other.to_base64());
        assert_ne!(forged, envelope);
        response["inclusionProof"]["checkpoint"]["envelope"] = forged.into();
        response["inclusionProof"]["rootHash"] = other.to_base64().into();
        let error = verifier
            .verify(&bytes(&response), &fixture.expected(2))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: checkpoint", "{error}");
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_rejected() {
        let fixture = Fixture::new();
        let mut response = fixture.response(0);
        let stranger =
            Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap();
        let envelope = Checkpoint::new(ORIGIN, fixture.tree.size(), fixture.tree.root())
            .sign(&[&stranger])
            .unwrap()
            .format()
            .unwrap();
        response["inclusionProof"]["checkpoint"]["envelope"] = envelope.into();
        let error = fixture
            .verifier()
            .verify(&bytes(&response), &fixture.expected(0))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: checkpoint", "{error}");
    }

    #[test]
    fn another_entrys_body_and_inconsistent_fields_are_rejected() {
        let fixture = Fixture::new();
        let verifier = fixture.verifier();
        let response = bytes(&fixture.response(3));
        let error = verifier
            .verify(&response, &fixture.expected(4))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: wrong body");

        let mut response = fixture.response(3);
        response["inclusionProof"]["treeSize"] = "12".into();
        let error = verifier
            .verify(&bytes(&response), &fixture.expected(3))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: mismatch", "{error}");

        let mut response = fixture.response(3);
        response["logId"]["keyId"] = Hash::digest(b"other").to_base64().into();
        let error = verifier
            .verify(&bytes(&response), &fixture.expected(3))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: wrong log id");

        let error = verifier
            .verify(b"{\"logIndex\":\"3\"}", &fixture.expected(3))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: malformed");
    }

    #[test]
    fn with_a_witness_policy_an_uncosigned_checkpoint_is_rejected() {
        let fixture = Fixture::new();
        let cosigner = tlog::keys::Cosigner::new(
            "witness.test/w1",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .unwrap();
        let mut verifier = fixture.verifier();
        verifier.policy = Some(
            tlog::policy::Policy::parse(&format!(
                "log {}\nwitness w1 {} http://127.0.0.1:1\ngroup g 1 w1\nquorum g\n",
                fixture.signer.verifier().to_vkey(),
                cosigner.verifier().to_vkey()
            ))
            .unwrap(),
        );
        // Signed by the log alone: the quorum is not met.
        let error = verifier
            .verify(&bytes(&fixture.response(4)), &fixture.expected(4))
            .unwrap_err();
        assert_eq!(error.kind(), "verify: witness quorum", "{error}");
        // Cosigned: it verifies.
        let cosigned = Checkpoint::new(ORIGIN, fixture.tree.size(), fixture.tree.root())
            .sign(&[&fixture.signer, &cosigner.at(1_700_000_000).unwrap()])
            .unwrap()
            .format()
            .unwrap();
        let mut response = fixture.response(4);
        response["inclusionProof"]["checkpoint"]["envelope"] = cosigned.into();
        verifier
            .verify(&bytes(&response), &fixture.expected(4))
            .unwrap();
    }
}
