//! What a client is answered: the append and certificate-issuing sequences, written once for
//! the HTTP handlers (`http::log_api`, `http::rekor_v1`, `http::ca_api`) and the simulator's
//! workload, so that the simulator checks the very answers clients get.
//!
//! An append is two steps, because a follower relays the first to the leader and only the
//! leader's node answers: [`commit`] (sequenced, committed, covered by a signed checkpoint),
//! then [`answer`] (for a witnessed log, the published checkpoint that covers the entry; the
//! inclusion proof to that checkpoint, checked against its root before anyone sees it).

use std::sync::Arc;

use tlog::Hash;

use crate::keyless::{IssueError, Issued};
use crate::node::Node;
use crate::sequencer::{SequenceError, Sequenced};
use crate::types::LogName;
use crate::witnessing::PublishWaitError;

/// An append's answer: where the entry is, the checkpoint the client verifies it against, and
/// the proof from the entry to that checkpoint's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The entry's leaf index.
    pub index: u64,
    /// Whether the entry was already logged (the index is then the earlier one's).
    pub duplicate: bool,
    /// The tree size of `checkpoint`.
    pub tree_size: u64,
    /// The signed checkpoint (with the witnesses' cosignatures, for a witnessed log).
    pub checkpoint: Arc<str>,
    /// The inclusion proof of the entry at `tree_size`.
    pub inclusion_proof: tlog::InclusionProof,
    /// The root `inclusion_proof` leads to: `checkpoint`'s root.
    pub root: Hash,
}

/// Why a committed entry could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The entry is committed, but no checkpoint covering it reached the witness quorum in
    /// time; retrying is safe (dedup answers with the same entry).
    #[error("entry {index} is committed, but {error}; retrying is safe")]
    NotWitnessed {
        /// The entry's leaf index.
        index: u64,
        /// What the wait ended with.
        error: PublishWaitError,
    },
    /// The inclusion proof could not be read.
    #[error("reading the inclusion proof of entry {index}: {message}")]
    Proof {
        /// The entry's leaf index.
        index: u64,
        /// Why.
        message: String,
    },
    /// The proof does not lead to the checkpoint's root: a bug, never shown to a client.
    #[error("the inclusion proof of entry {index} does not lead to its checkpoint: {message}")]
    Mismatch {
        /// The entry's leaf index.
        index: u64,
        /// What differs.
        message: String,
    },
}

/// Step one of an append: sequences `leaf` into `log` on this node, which must lead, and waits
/// until it is committed and covered by a committed signed checkpoint.
pub async fn commit(node: &Node, log: &LogName, leaf: Vec<u8>) -> Result<Sequenced, SequenceError> {
    node.sequencer().submit(log.clone(), leaf).await
}

/// Step one of an append to a family of logs (`crate::lifecycle`): sequences `leaf` into the
/// log of `family` that takes appends now, and returns that log with the outcome. A rotation
/// that commits while the leaf waits in the pool freezes the log it was pooled for; the leaf
/// is then sequenced once more, into the successor, so that a client of the family never sees
/// a rotation.
pub async fn commit_to_active(
    node: &Node,
    family: &LogName,
    leaf: Vec<u8>,
) -> Result<(LogName, Sequenced), SequenceError> {
    let log = node.active_log(family);
    match commit(node, &log, leaf.clone()).await {
        Err(SequenceError::Frozen { successor, .. }) => {
            let sequenced = commit(node, &successor, leaf).await?;
            Ok((successor, sequenced))
        }
        other => other.map(|sequenced| (log, sequenced)),
    }
}

/// Step two: the answer to the committed `leaf` of `log`. For a witnessed log it waits for a
/// published checkpoint covering the entry, and the answer names that checkpoint; the proof is
/// the batch's (made once for all its leaves), or read now if that failed or the published
/// checkpoint is larger.
pub async fn answer(
    node: &Node,
    log: &LogName,
    leaf: &[u8],
    mut sequenced: Sequenced,
) -> Result<Appended, AnswerError> {
    let index = sequenced.index;
    if let Some(witnessing) = node.witnessing().filter(|w| w.is_witnessed(log)) {
        let published = witnessing
            .wait_published(log, sequenced.tree_size)
            .await
            .map_err(|error| AnswerError::NotWitnessed { index, error })?;
        if published.size != sequenced.tree_size {
            // The proof must lead to the published checkpoint's root.
            sequenced.inclusion_proof = None;
            sequenced.tree_size = published.size;
        }
        sequenced.checkpoint = published.note;
    }
    let tree_size = sequenced.tree_size;
    let inclusion_proof = match sequenced.inclusion_proof {
        Some(proof) => proof,
        None => {
            let (reader, name) = (node.reader().clone(), log.clone());
            node.blocking()
                .run(move || {
                    reader
                        .view()
                        .and_then(|view| view.inclusion_proof(&name, index, tree_size))
                })
                .await
                .map_err(|error| AnswerError::Proof {
                    index,
                    message: error.to_string(),
                })?
        }
    };
    let root = checked_root(&inclusion_proof, leaf, &sequenced.checkpoint, tree_size)
        .map_err(|message| AnswerError::Mismatch { index, message })?;
    Ok(Appended {
        index,
        duplicate: sequenced.duplicate,
        tree_size,
        checkpoint: sequenced.checkpoint,
        inclusion_proof,
        root,
    })
}

/// The root `proof` leads to from `leaf`, if it is the root and size `checkpoint` signs.
pub(crate) fn checked_root(
    proof: &tlog::InclusionProof,
    leaf: &[u8],
    checkpoint: &str,
    tree_size: u64,
) -> Result<Hash, String> {
    let root = proof
        .root_from(&tlog::leaf_hash(leaf))
        .map_err(|error| error.to_string())?;
    let note = tlog::note::Note::parse(checkpoint.as_bytes()).map_err(|e| e.to_string())?;
    let signed = tlog::checkpoint::Checkpoint::parse(note.text()).map_err(|e| e.to_string())?;
    if signed.size.0 != tree_size || signed.root != root {
        return Err(format!(
            "the proof leads to size {tree_size} root {}, the checkpoint signs size {} root {}",
            root.to_base64(),
            signed.size.0,
            signed.root.to_base64()
        ));
    }
    Ok(root)
}

/// Issues a certificate for `identity`'s `spki_der` at `timestamp_ms` (the time the request
/// was checked at) on this node, which must lead: a fresh serial from the node's randomness
/// seam, then the CA's logged-before-returned sequence ([`crate::keyless::KeylessCa::issue`]).
pub async fn issue_certificate(
    node: &Node,
    identity: ca::identity::Identity,
    spki_der: Vec<u8>,
    timestamp_ms: u64,
) -> Result<(ca::cert::Issuance, Issued), IssueError> {
    let ca = node.ca().ok_or(IssueError::NoCa)?;
    let issuance = ca::cert::Issuance {
        serial: crate::keyless::new_serial(),
        timestamp_ms,
        identity,
        spki_der,
    };
    let issued = ca
        .issue(node.sequencer(), &node.active_log(&ca.log), &issuance)
        .await?;
    Ok((issuance, issued))
}

#[cfg(test)]
mod tests {
    use tlog::checkpoint::Checkpoint;
    use tlog::{LeafIndex, MemoryTree, TreeSize};

    use super::*;

    /// A tree of `size` leaves, the proof of leaf `index` at that size, and the checkpoint the
    /// log signs for it.
    fn fixture(size: u64, index: u64) -> (Vec<Vec<u8>>, tlog::InclusionProof, String) {
        let leaves: Vec<Vec<u8>> = (0..size)
            .map(|i| format!("leaf {i}").into_bytes())
            .collect();
        let mut tree = MemoryTree::new();
        for leaf in &leaves {
            tree.append(tlog::leaf_hash(leaf)).unwrap();
        }
        let proof =
            tlog::proof::inclusion_proof(&tree.store, LeafIndex(index), TreeSize(size)).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let note = Checkpoint::new("test.cairn/artifacts", TreeSize(size), tree.root())
            .sign_ed25519(&key)
            .unwrap();
        (leaves, proof, note.format().unwrap())
    }

    #[test]
    fn an_answer_leads_from_its_leaf_to_its_checkpoint_root() {
        let (leaves, proof, checkpoint) = fixture(13, 6);
        let root = checked_root(&proof, &leaves[6], &checkpoint, 13).unwrap();
        let signed = tlog::note::Note::parse(checkpoint.as_bytes()).unwrap();
        assert_eq!(root, Checkpoint::parse(signed.text()).unwrap().root);
    }

    #[test]
    fn a_proof_that_does_not_lead_to_the_checkpoint_is_never_an_answer() {
        let (leaves, mut proof, checkpoint) = fixture(13, 6);
        // Another leaf, another size, a tampered sibling: each refused, naming both roots.
        let error = checked_root(&proof, &leaves[5], &checkpoint, 13).unwrap_err();
        assert!(error.contains("the checkpoint signs size 13"), "{error}");
        assert!(checked_root(&proof, &leaves[6], &checkpoint, 12).is_err());
        proof.hashes[0] = tlog::Hash::digest(b"not a sibling");
        assert!(checked_root(&proof, &leaves[6], &checkpoint, 13).is_err());
        assert!(checked_root(&proof, &leaves[6], "not a note", 13).is_err());
    }
}
