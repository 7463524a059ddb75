//! The fuzz targets: one function per parser that reads bytes from the network or the disk,
//! each a thin call of the real public parser in the library crates. The AFL++ harness in
//! `fuzz/` (outside the workspace, built by `scripts/fuzz`) runs them under the fuzzer; the
//! replay test in `tests/replay.rs` runs every saved corpus file through them on each
//! `cargo test`, so a regression shows up in CI without the fuzzer's toolchain.
//!
//! A target must never panic: the parsers return errors for any input. Outcomes are discarded;
//! a panic (or an abort, or a hang) is the finding.
//!
//! Fixed keys: where a parser is followed by a verification (checkpoints, cosignatures, ID
//! tokens), the target verifies with the fixed keys of [`seeds`], so that the seeds, which are
//! signed with them, reach the verification code and its paths after a successful parse.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub mod seeds;

/// A fuzz target: takes any bytes, returns nothing, must not panic.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus directory has (`fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("note", note),
    ("checkpoint", checkpoint),
    ("cosignature", cosignature),
    ("vkey", vkey),
    ("tile_path", tile_path),
    ("entry_bundle", entry_bundle),
    ("tlog_proof", tlog_proof),
    ("policy", policy),
    ("witness_request", witness_request),
    ("entry_body", entry_body),
    ("bundle", bundle),
    ("trusted_root", trusted_root),
    ("certificate", certificate),
    ("rfc3161", rfc3161),
    ("rekor_v1_entry", rekor_v1_entry),
    ("rekor_v1_retrieve", rekor_v1_retrieve),
    ("rekor_v2_request", rekor_v2_request),
    ("csr", csr),
    ("id_token", id_token),
    ("raft_message", raft_message),
    ("snapshot_descriptor", snapshot_descriptor),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, target)| *target)
}

/// A signed note (`tlog::note`): parse, then verify against the seeds' log key.
pub fn note(data: &[u8]) {
    let _ = tlog::keys::open(data, log_verifiers());
    if let Ok(note) = tlog::note::Note::parse(data) {
        // What parses must format again (the node re-serves stored notes).
        let _ = note.format();
    }
}

/// A checkpoint: the text alone, and as a signed note opened with the seeds' log key.
pub fn checkpoint(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(checkpoint) = tlog::checkpoint::Checkpoint::parse(text)
    {
        let _ = checkpoint.to_text();
    }
    let _ = tlog::checkpoint::open(data, log_verifiers());
}

/// Cosignatures: every signature line of a note checked as a witness cosignature (timestamp,
/// then signature) with the seeds' witness key, as the client and the node check them.
pub fn cosignature(data: &[u8]) {
    let Ok(note) = tlog::note::Note::parse(data) else {
        return;
    };
    let witness = seeds::witness_verifier();
    for signature in note.signatures() {
        let _ = tlog::cosignature::timestamp(&signature.signature);
        let _ = witness.verify(note.text(), &signature.signature);
    }
}

/// A verifier key (vkey) as policy and configuration files carry it.
pub fn vkey(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(verifier) = tlog::keys::Verifier::parse(text)
    {
        let _ = verifier.to_vkey();
    }
}

/// A tile path (`tile/...`), as the tile endpoints and the client's tile fetcher read it.
pub fn tile_path(data: &[u8]) {
    if let Ok(path) = std::str::from_utf8(data)
        && let Ok(tile) = tlog::tile::Tile::from_path(path)
    {
        let _ = tile.path();
        let _ = tile.check_len(data);
    }
}

/// An entry bundle (`tile/entries/...`): the first byte chooses the tile width (1 to 256).
pub fn entry_bundle(data: &[u8]) {
    let Some((&width, bundle)) = data.split_first() else {
        return;
    };
    let _ = tlog::tile::decode_bundle(bundle, u16::from(width) + 1);
}

/// A tlog-proof file, then verified against the seeds' log key.
pub fn tlog_proof(data: &[u8]) {
    if let Ok(proof) = tlog::tlog_proof::TlogProof::parse(data) {
        let _ = proof.format();
        let _ = proof.verify(&tlog::leaf_hash(seeds::LEAVES[0]), log_verifiers());
    }
}

/// A tlog-policy file, as the client, the node and the witness read it.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = tlog::policy::Policy::parse(text) {
        let _ = policy.verify_checkpoint(seeds::signed_checkpoint().as_bytes());
    }
    let _ = witness::config::Logs::from_policy_text(text);
}

/// The witness's `add-checkpoint` request body.
pub fn witness_request(data: &[u8]) {
    let _ = witness::request::AddCheckpoint::parse(data);
}

/// A canonicalized Rekor entry body, as bundles carry it and the node stores it.
pub fn entry_body(data: &[u8]) {
    let _ = tlog::entry::Entry::parse(data);
    let _ = tlog::entry::CanonicalBody::parse(data);
}

/// A Sigstore bundle (`cairn verify`).
pub fn bundle(data: &[u8]) {
    let _ = client::Bundle::from_json(data);
}

/// A Sigstore trusted root (`--trusted-root`, `cairn trust`).
pub fn trusted_root(data: &[u8]) {
    let _ = client::TrustedRoot::from_json(data);
}

/// A signing certificate (DER), as a bundle carries it.
pub fn certificate(data: &[u8]) {
    let _ = client::certificate::SigningCertificate::parse(data);
}

/// An RFC 3161 `TimeStampResp`, as a bundle carries it.
pub fn rfc3161(data: &[u8]) {
    let _ = client::timestamp::parse(data);
    let _ = client::timestamp::verify(data, b"signature", &[]);
}

/// `POST /api/v1/log/entries`: parse, check and canonicalise the proposed entry.
pub fn rekor_v1_entry(data: &[u8]) {
    let _ = node::api::v1_request::parse_submission(data);
}

/// `POST /api/v1/log/entries/retrieve`.
pub fn rekor_v1_retrieve(data: &[u8]) {
    let _ = node::api::v1_request::retrieve_request(data);
}

/// `POST /api/v2/log/entries`: parse, then verify (signatures checked against the request's
/// own keys, as the node does after parsing).
pub fn rekor_v2_request(data: &[u8]) {
    if let Ok(request) = node::api::v2_request::parse(data) {
        let _ = request.verify();
    }
}

/// A PKCS#10 certificate signing request, as `POST /api/v2/signingCert` carries it.
pub fn csr(data: &[u8]) {
    let _ = ca::pop::key_from_csr(data);
}

/// An OIDC ID token, verified by the CA's verifier against one issuer (the seeds' issuer, whose
/// discovery document and keys are served from memory) at a fixed time.
pub fn id_token(data: &[u8]) {
    let _ = verify_id_token(data);
}

/// What [`id_token`] does, with the outcome: `None` when the bytes are not UTF-8.
pub fn verify_id_token(data: &[u8]) -> Option<Result<ca::identity::Identity, ca::TokenError>> {
    let token = std::str::from_utf8(data).ok()?;
    let verifier = ca::oidc::TokenVerifier::new(
        vec![ca::oidc::IssuerConfig {
            url: seeds::ISSUER.to_owned(),
            client_id: "sigstore".to_owned(),
            kind: ca::identity::IdentityKind::Email,
        }],
        Arc::new(IssuerDocuments),
    );
    Some(runtime().block_on(verifier.verify(token, seeds::NOW_UNIX_SECONDS)))
}

/// A Raft message body as the cluster endpoints decode it: the first byte chooses the
/// endpoint (append, vote, install-snapshot, and batch times, whose bodies are also read as a
/// follower's batch of appends and the leader's answers to it), the rest is the postcard body.
pub fn raft_message(data: &[u8]) {
    use node::types::TypeConfig;
    use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
    let Some((&endpoint, body)) = data.split_first() else {
        return;
    };
    match endpoint % 4 {
        0 => {
            let _ = postcard::from_bytes::<AppendEntriesRequest<TypeConfig>>(body);
        }
        1 => {
            let _ = postcard::from_bytes::<VoteRequest<u64>>(body);
        }
        2 => {
            let _ = postcard::from_bytes::<InstallSnapshotRequest<TypeConfig>>(body);
        }
        _ => {
            let _ = postcard::from_bytes::<(String, u64, u64)>(body);
            // What decodes is within the batch's bounds, and encodes again.
            if let Ok(leaves) = node::network::forward::decode_batch(body) {
                assert!(node::network::forward::encode_batch(&leaves).is_ok());
            }
            let _ = node::network::forward::decode_answers(body, usize::from(endpoint));
        }
    }
}

/// A snapshot's data: the descriptor and the members its sender appended.
pub fn snapshot_descriptor(data: &[u8]) {
    let _ = node::storage::snapshot::split_data(data);
}

/// The seeds' log key, as a verifier set.
fn log_verifiers() -> &'static tlog::keys::Verifiers {
    static VERIFIERS: OnceLock<tlog::keys::Verifiers> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        let mut verifiers = tlog::keys::Verifiers::new();
        // A fresh set cannot hold a duplicate.
        let _ = verifiers.push(seeds::log_signer().verifier());
        verifiers
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime without IO or timers builds")
    })
}

/// The seeds' OIDC issuer: its discovery document and JWKS, from memory.
#[derive(Debug)]
struct IssuerDocuments;

impl ca::oidc::Fetch for IssuerDocuments {
    fn get<'a>(
        &'a self,
        url: &'a str,
        _limit: usize,
    ) -> ca::oidc::BoxFuture<'a, Result<Vec<u8>, ca::oidc::FetchError>> {
        let issuer = seeds::ISSUER;
        let body = if url == format!("{issuer}/.well-known/openid-configuration") {
            Ok(serde_json::json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/jwks"),
                "authorization_endpoint": format!("{issuer}/auth"),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
            .to_string()
            .into_bytes())
        } else if url == format!("{issuer}/jwks") {
            let key = seeds::issuer_key();
            let point = key.verifying_key().to_sec1_point(false);
            let coordinate = |bytes: Option<&p256::FieldBytes>| {
                bytes
                    .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
                    .unwrap_or_default()
            };
            Ok(serde_json::json!({ "keys": [{
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": seeds::ISSUER_KID,
                "x": coordinate(point.x()), "y": coordinate(point.y()),
            }]})
            .to_string()
            .into_bytes())
        } else {
            Err(ca::oidc::FetchError(format!("no {url}")))
        };
        Box::pin(async move { body })
    }
}
