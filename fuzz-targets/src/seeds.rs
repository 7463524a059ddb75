//! Generated seeds: well-formed, signed inputs for the targets whose formats a fuzzer would
//! take long to find on its own (signed notes with cosignatures, tlog-proofs, policies, witness
//! requests, ID tokens, postcard-encoded Raft messages and snapshot descriptors), made with the
//! project's own encoders and fixed keys. `cairn-fuzz --write-seeds` writes them into the
//! corpus; the replay test runs them too. The other targets are seeded from real files (the
//! Sigstore conformance bundles and trusted roots; see `fuzz/seeds.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Signer as _;

/// The log's origin, which is also its key name.
pub const ORIGIN: &str = "cairn.example/fuzz";
/// The witness's key name.
pub const WITNESS: &str = "witness.example/fuzz";
/// The OIDC issuer the `id_token` target trusts.
pub const ISSUER: &str = "https://issuer.example";
/// The issuer key's id.
pub const ISSUER_KID: &str = "fuzz";
/// The time the `id_token` target verifies at.
pub const NOW_UNIX_SECONDS: u64 = 1_800_000_000;
/// The leaves of the seeds' two-leaf tree.
pub const LEAVES: [&[u8]; 2] = [b"entry 0", b"entry 1"];

/// The log's Ed25519 signer (a fixed seed: fuzzing wants repeatable inputs, not secrets).
pub fn log_signer() -> tlog::keys::Ed25519Signer {
    tlog::keys::Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[1; 32]))
        .expect("the origin is a valid key name")
}

fn witness_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[2; 32])
}

fn cosigner() -> tlog::keys::Cosigner {
    tlog::keys::Cosigner::new(WITNESS, witness_key()).expect("a valid key name")
}

/// The witness's cosignature verifier.
pub fn witness_verifier() -> tlog::keys::CosignatureVerifier {
    tlog::keys::CosignatureVerifier::new(WITNESS, witness_key().verifying_key())
        .expect("a valid key name")
}

/// The OIDC issuer's P-256 key.
pub fn issuer_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[3; 32]).expect("a valid scalar")
}

fn leaf_hashes() -> [tlog::Hash; 2] {
    [tlog::leaf_hash(LEAVES[0]), tlog::leaf_hash(LEAVES[1])]
}

/// The checkpoint of the two-leaf tree, signed by the log and cosigned by the witness.
pub fn signed_checkpoint() -> &'static str {
    static NOTE: OnceLock<String> = OnceLock::new();
    NOTE.get_or_init(|| {
        let [left, right] = leaf_hashes();
        let checkpoint = tlog::checkpoint::Checkpoint::new(
            ORIGIN,
            tlog::TreeSize(2),
            tlog::node_hash(&left, &right),
        );
        let mut note = checkpoint
            .sign(&[&log_signer()])
            .expect("a well-formed checkpoint signs");
        let cosigner = cosigner();
        let at = cosigner.at(NOW_UNIX_SECONDS).expect("a timestamp in range");
        note.sign(&at).expect("a second signer signs");
        note.format().expect("a signed note formats")
    })
}

/// A tlog-policy listing the log and the witness, with a quorum of it.
fn policy() -> String {
    format!(
        "# seed\nlog {}\nwitness w {}\nquorum w\n",
        log_signer().verifier().to_vkey(),
        witness_verifier_vkey(),
    )
}

fn witness_verifier_vkey() -> String {
    cosigner().verifier().to_vkey()
}

fn id_token(claims: &serde_json::Value) -> String {
    let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let input = format!(
        "{}.{}",
        part(serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": ISSUER_KID })),
        part(claims.clone()),
    );
    let signature: p256::ecdsa::Signature = issuer_key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn postcard<T: serde::Serialize>(endpoint: u8, value: &T) -> Vec<u8> {
    let mut bytes = vec![endpoint];
    bytes.extend(postcard::to_stdvec(value).expect("the node's types encode"));
    bytes
}

/// Every generated seed: (target, file name, bytes).
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    use node::types::{AppendBatch, Command, NodeAddress, TypeConfig};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership};

    let note = signed_checkpoint().as_bytes().to_vec();
    let [left, right] = leaf_hashes();
    let tlog_proof = format!(
        "c2sp.org/tlog-proof@v1\nextra {}\nindex 0\n{}\n\n{}",
        STANDARD.encode(b"extra"),
        right.to_base64(),
        signed_checkpoint()
    );
    let witness_request = format!("old 1\n{}\n\n{}", right.to_base64(), signed_checkpoint());
    let _ = left;
    let email = "alice@example.com";
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": "sigstore", "sub": email, "email": email,
        "email_verified": true, "iat": NOW_UNIX_SECONDS, "exp": NOW_UNIX_SECONDS + 600,
    });

    let log_id = LogId::new(CommittedLeaderId::new(1, 1), 3);
    let address = NodeAddress {
        api_url: "http://127.0.0.1:7300".to_owned(),
        cluster_url: "https://127.0.0.1:7400".to_owned(),
    };
    let membership = StoredMembership::new(
        Some(log_id),
        Membership::new(
            vec![BTreeSet::from([1])],
            BTreeMap::from([(1, address.clone())]),
        ),
    );
    let append = openraft::raft::AppendEntriesRequest::<TypeConfig> {
        vote: openraft::Vote::new_committed(1, 1),
        prev_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 2)),
        entries: vec![Entry::<TypeConfig> {
            log_id,
            payload: EntryPayload::Normal(Command::Append(AppendBatch {
                log: node::types::LogName("artifacts".to_owned()),
                leaves: LEAVES.iter().map(|leaf| leaf.to_vec()).collect(),
                timestamp_unix_ms: NOW_UNIX_SECONDS * 1000,
            })),
        }],
        leader_commit: Some(log_id),
    };
    let vote = openraft::raft::VoteRequest::new(openraft::Vote::new(2, 1), Some(log_id));
    let descriptor = node::storage::snapshot::Descriptor {
        last_applied: Some(log_id),
        last_membership: membership.clone(),
        heads: vec![(
            node::types::LogName("artifacts".to_owned()),
            node::state_machine::LogHead {
                tree_size: 2,
                edge: vec![tlog::node_hash(&left, &right)],
                root: tlog::node_hash(&left, &right),
                checkpoint: signed_checkpoint().to_owned(),
            },
        )],
    };
    let mut descriptor_bytes = postcard::to_stdvec(&descriptor).expect("a descriptor encodes");
    descriptor_bytes.extend(postcard::to_stdvec(&vec![address]).expect("members encode"));
    let install = openraft::raft::InstallSnapshotRequest::<TypeConfig> {
        vote: openraft::Vote::new_committed(1, 1),
        meta: openraft::SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: membership,
            snapshot_id: "1-1-3-1".to_owned(),
        },
        offset: 0,
        data: descriptor_bytes.clone(),
        done: true,
    };

    vec![
        ("note", "signed-cosigned", note.clone()),
        ("checkpoint", "signed-cosigned", note.clone()),
        ("cosignature", "signed-cosigned", note.clone()),
        (
            "vkey",
            "ed25519",
            log_signer().verifier().to_vkey().into_bytes(),
        ),
        ("vkey", "cosignature", witness_verifier_vkey().into_bytes()),
        ("tlog_proof", "index-0", tlog_proof.into_bytes()),
        ("policy", "log-witness-quorum", policy().into_bytes()),
        ("witness_request", "old-1", witness_request.into_bytes()),
        ("id_token", "email", id_token(&claims).into_bytes()),
        ("raft_message", "append", postcard(0, &append)),
        ("raft_message", "vote", postcard(1, &vote)),
        ("raft_message", "install-snapshot", postcard(2, &install)),
        (
            "raft_message",
            "batch-times",
            postcard(3, &("artifacts".to_owned(), 0_u64, 2_u64)),
        ),
        ("snapshot_descriptor", "one-log", descriptor_bytes),
    ]
}
