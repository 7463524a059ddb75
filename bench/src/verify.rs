//! Verifies answers as a client must before they count, with the `client` library's checks: an
//! append's body is the entry submitted, its checkpoint is signed by the trusted log key (and,
//! with witnessing, cosigned by the policy's quorum), and its inclusion proof leads from the
//! body to the checkpoint's root. Many entries share one checkpoint, so a checkpoint is
//! verified once and remembered by its exact text: a tampered one is other text.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use client::bundle::TlogEntry;
use client::log_entry::{self, LogEntryError, ProofAnswerError};
use client::time::{TimeRange, UnixMillis};
use client::trust_root::TransparencyLog;
use tlog::Hash;

/// How many verified checkpoints to remember; a full cache is cleared (old ones are rarely seen
/// again).
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
            let policy = tlog::policy::Policy::parse(text);
            verifier.policy =
                Some(policy.map_err(|error| anyhow::anyhow!("witness policy: {error}"))?);
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
        let key_type = [b'\n', verifier.key_type()];
        let preimage = [origin.as_bytes(), &key_type, &verifier.public_key()].concat();
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
    pub(crate) fn verify(&self, body: &[u8], expected_leaf: &Hash) -> Result<(), VerifyError> {
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
        Ok(())
    }

    /// The size and root of a checkpoint whose signatures verify, from the cache if this exact
    /// text was verified before.
    pub(crate) fn checkpoint(&self, note: &str) -> Result<(u64, Hash), VerifyError> {
        if let Some(known) = crate::run::lock(&self.cache).get(note) {
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
        let mut cache = crate::run::lock(&self.cache);
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(note.to_string(), (size, root));
        Ok((size, root))
    }

    /// Fetches node `url`'s latest checkpoint and verifies it: its size, root and text.
    pub(crate) async fn fetch_checkpoint(&self, url: &str) -> anyhow::Result<(u64, Hash, String)> {
        let body = crate::net::get(&format!("{url}/api/v2/checkpoint")).await?;
        let text = String::from_utf8(body.to_vec())?;
        let (size, root) = self
            .checkpoint(&text)
            .map_err(|error| anyhow::anyhow!("checkpoint from {url}: {error}"))?;
        Ok((size, root, text))
    }
}

/// The tally kind of a proof answer (`proof/inclusion` or `proof/consistency`) that did not
/// verify with the `client` library's checks.
pub(crate) fn proof_kind(error: &ProofAnswerError) -> &'static str {
    match error {
        ProofAnswerError::Malformed => "verify: malformed",
        ProofAnswerError::WrongParameters(_) => "verify: wrong parameters",
        _ => "verify: proof",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use tlog::checkpoint::Checkpoint;
    use tlog::keys::Ed25519Signer;
    use tlog::{LeafIndex, MemoryTree, TreeSize, leaf_hash};

    pub(crate) const ORIGIN: &str = "cairn.localhost/artifacts";

    pub(crate) fn signer(seed: u8) -> Ed25519Signer {
        Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    /// A log of `{"entry":i}` leaves signed by `signer(7)`, and what a correct node answers.
    pub(crate) struct Fixture {
        pub(crate) signer: Ed25519Signer,
        pub(crate) leaves: Vec<Vec<u8>>,
        pub(crate) tree: MemoryTree,
    }

    impl Fixture {
        pub(crate) fn new(size: u64) -> Fixture {
            let leaves: Vec<Vec<u8>> = (0..size)
                .map(|i| format!("{{\"entry\":{i}}}").into_bytes())
                .collect();
            let mut tree = MemoryTree::new();
            for leaf in &leaves {
                tree.append(leaf_hash(leaf)).unwrap();
            }
            Fixture {
                signer: signer(7),
                leaves,
                tree,
            }
        }

        pub(crate) fn verifier(&self) -> ResponseVerifier {
            ResponseVerifier::new(&self.signer.verifier().to_vkey()).unwrap()
        }

        pub(crate) fn checkpoint(&self, size: u64, root: Hash, signer: &Ed25519Signer) -> String {
            let checkpoint = Checkpoint::new(ORIGIN, TreeSize(size), root);
            checkpoint.sign(&[signer]).unwrap().format().unwrap()
        }

        pub(crate) fn hashes(proof: &[Hash]) -> Vec<String> {
            proof.iter().map(Hash::to_base64).collect()
        }

        /// The response a correct node sends for leaf `index`.
        fn response(&self, index: u64) -> serde_json::Value {
            let (size, root) = (self.tree.size(), self.tree.root());
            let proof =
                tlog::proof::inclusion_proof(&self.tree.store, LeafIndex(index), size).unwrap();
            serde_json::json!({
                "logIndex": index.to_string(),
                "logId": { "keyId": BASE64.encode(&self.verifier().log.log_id) },
                "kindVersion": { "kind": "hashedrekord", "version": "0.0.2" },
                "inclusionProof": {
                    "logIndex": index.to_string(),
                    "rootHash": root.to_base64(),
                    "treeSize": size.0.to_string(),
                    "hashes": Fixture::hashes(&proof.hashes),
                    "checkpoint": { "envelope": self.checkpoint(size.0, root, &self.signer) },
                },
                "canonicalizedBody": BASE64.encode(&self.leaves[usize::try_from(index).unwrap()]),
            })
        }
    }

    fn bytes(value: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    #[test]
    fn correct_responses_verify_once_per_checkpoint_and_tampered_ones_are_rejected() {
        let fixture = Fixture::new(13);
        let verifier = fixture.verifier();
        for (index, leaf) in fixture.leaves.iter().enumerate() {
            let response = bytes(&fixture.response(index as u64));
            verifier.verify(&response, &leaf_hash(leaf)).unwrap();
        }
        assert_eq!(verifier.checkpoint_signatures_verified(), 1);
        // Every tampered answer fails, though its genuine checkpoint is in the cache.
        let expected = leaf_hash(&fixture.leaves[5]);
        let (root, mut other) = (fixture.tree.root(), fixture.tree.root());
        other.0[31] ^= 0x80;
        let forged = (fixture.checkpoint(13, root, &fixture.signer))
            .replace(&root.to_base64(), &other.to_base64());
        let stranger = fixture.checkpoint(13, root, &signer(9));
        let other = serde_json::Value::from(other.to_base64());
        let (envelope, index) = (
            "/inclusionProof/checkpoint/envelope",
            "/inclusionProof/logIndex",
        );
        let body = BASE64.encode(b"{}").into();
        let cases = [
            (
                "verify: proof",
                vec![("/inclusionProof/hashes/0", other.clone())],
            ),
            (
                "verify: proof",
                vec![("/logIndex", "6".into()), (index, "6".into())],
            ),
            (
                "verify: mismatch",
                vec![("/inclusionProof/treeSize", "12".into())],
            ),
            (
                "verify: wrong log id",
                vec![("/logId/keyId", other.clone())],
            ),
            ("verify: wrong body", vec![("/canonicalizedBody", body)]),
            (
                "verify: checkpoint",
                vec![
                    (envelope, forged.into()),
                    ("/inclusionProof/rootHash", other),
                ],
            ),
            ("verify: checkpoint", vec![(envelope, stranger.into())]),
        ];
        for (kind, edits) in cases {
            let mut response = fixture.response(5);
            for (pointer, value) in edits {
                *response.pointer_mut(pointer).unwrap() = value;
            }
            let error = verifier.verify(&bytes(&response), &expected).unwrap_err();
            assert_eq!(error.kind(), kind, "{error}");
        }
        let error = verifier.verify(b"{\"logIndex\":\"3\"}", &expected);
        assert_eq!(error.unwrap_err().kind(), "verify: malformed");
    }

    #[test]
    fn with_a_witness_policy_an_uncosigned_checkpoint_is_rejected() {
        let fixture = Fixture::new(13);
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let cosigner = tlog::keys::Cosigner::new("witness.test/w1", key).unwrap();
        let mut verifier = fixture.verifier();
        let (log, witness) = (fixture.signer.verifier(), cosigner.verifier());
        let (log, witness) = (log.to_vkey(), witness.to_vkey());
        let policy =
            format!("log {log}\nwitness w1 {witness} http://127.0.0.1:1\ngroup g 1 w1\nquorum g\n");
        verifier.policy = Some(tlog::policy::Policy::parse(&policy).unwrap());
        let expected = leaf_hash(&fixture.leaves[4]);
        let error = verifier.verify(&bytes(&fixture.response(4)), &expected);
        assert_eq!(error.unwrap_err().kind(), "verify: witness quorum");
        let checkpoint = Checkpoint::new(ORIGIN, fixture.tree.size(), fixture.tree.root());
        let witnessed = cosigner.at(1_700_000_000).unwrap();
        let note = checkpoint.sign(&[&fixture.signer, &witnessed]).unwrap();
        let cosigned = note.format().unwrap();
        let mut response = fixture.response(4);
        response["inclusionProof"]["checkpoint"]["envelope"] = cosigned.into();
        verifier.verify(&bytes(&response), &expected).unwrap();
    }
}
