//! A transparency log entry in a bundle: that its body is the entry for this bundle's
//! signature, that it is in the log (inclusion proof to a checkpoint the log signed), and the
//! log's promise to include it (the signed entry timestamp, SET).
//!
//! - **Body** (the CVE-2022-36056 check): the canonical body is rebuilt with `tlog::entry` from
//!   the bundle's own signature, key or certificate and the artifact's digest, and compared with
//!   the logged bytes. Parts the bundle cannot reproduce (the DSSE `envelopeHash`, over the
//!   envelope text as first submitted; the key details a Rekor v2 entry declares) are taken
//!   from the logged entry, so everything else must match byte for byte. The deprecated
//!   `intoto` 0.0.2 kind, which `tlog::entry` does not build, is compared field by field.
//! - **Inclusion**: RFC 6962 proof from `SHA-256(0x00 ‖ body)` to `rootHash` (`tlog::proof`),
//!   and a checkpoint, signed by the log's key from the trusted root under the log's host name
//!   (`tlog::checkpoint`), whose root hash and size are the proof's. Signature lines from other
//!   keys (witness cosignatures) are ignored.
//! - **SET**: the log key's signature over the RFC 8785 JSON of `{body, integratedTime, logID,
//!   logIndex}`; only then is `integratedTime` a verified time.
//!
//! The inclusion and consistency proofs a log's API answers on their own (`proof/inclusion`,
//! `proof/consistency`) are checked against roots the caller trusts
//! ([`verify_inclusion_answer`], [`verify_consistency_answer`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use tlog::entry::{
    CanonicalBody, Digest, DsseV001, DsseV001Signature, DsseV002, Entry, HashedRekordV001,
    HashedRekordV002, KeyMaterial, Signature, SignatureBytes, Verifier as EntryVerifier,
};
use tlog::keys::{EcdsaVerifier, Ed25519Verifier, Verifier as NoteVerifier, Verifiers};
use tlog::{Hash, LeafIndex, TreeSize};

use crate::bundle::{Content, InclusionProof, TlogEntry};
use crate::key::{KeyAlgorithm, PublicKey};
use crate::time::UnixMillis;
use crate::trust_root::{TransparencyLog, TrustedRoot};
use crate::verify::Artifact;

/// Why a log entry did not verify. Each variant is a distinct check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogEntryError {
    /// The entry's log is not in the trusted root.
    #[error("transparency log {0} is not in the trusted root")]
    UnknownLog(String),
    /// The entry kind is not one this verifier knows.
    #[error("log entry kind {kind} {version} is not supported")]
    UnsupportedKind {
        /// `kindVersion.kind`.
        kind: String,
        /// `kindVersion.version`.
        version: String,
    },
    /// The logged body is not the entry for this bundle.
    #[error("log entry body does not match the bundle: {0}")]
    BodyMismatch(String),
    /// The entry has neither an inclusion proof nor a SET: nothing shows it was logged.
    #[error("the entry has neither an inclusion proof nor a signed entry timestamp")]
    NoInclusionEvidence,
    /// The inclusion proof does not lead from the body to the root hash.
    #[error("inclusion proof: {0}")]
    InclusionProof(String),
    /// The checkpoint is malformed, not signed by the log, or not for the proof's tree.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The signed entry timestamp does not verify.
    #[error("signed entry timestamp: {0}")]
    SignedEntryTimestamp(String),
}

/// What verifying one entry established.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerifiedEntry<'r> {
    /// The log, from the trusted root.
    pub(crate) log: &'r TransparencyLog,
    /// `integratedTime`, if a SET vouched for it.
    pub(crate) integrated_time: Option<UnixMillis>,
}

/// The key or certificate as the log entry records it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SignerMaterial<'a> {
    /// A DER certificate.
    Certificate(&'a [u8]),
    /// A DER SubjectPublicKeyInfo.
    PublicKey(&'a [u8]),
}

/// Verifies `entry` for a bundle whose content is `content`, signed by `signer`.
pub(crate) fn verify<'r>(
    entry: &TlogEntry,
    content: &Content,
    signer: SignerMaterial<'_>,
    artifact: &Artifact,
    root: &'r TrustedRoot,
) -> Result<VerifiedEntry<'r>, LogEntryError> {
    let log = root
        .tlog(&entry.log_id)
        .ok_or_else(|| LogEntryError::UnknownLog(BASE64.encode(&entry.log_id)))?;
    check_body(entry, content, signer, artifact)?;
    // `Bundle::from_json` refuses such an entry, but a `Bundle` can be built by other means;
    // a matching body alone would pass every check below.
    if entry.inclusion_proof.is_none() && entry.signed_entry_timestamp.is_none() {
        return Err(LogEntryError::NoInclusionEvidence);
    }

    if let Some(proof) = &entry.inclusion_proof {
        verify_inclusion(entry)?;
        match &proof.checkpoint {
            Some(note) => check_checkpoint(note, log, proof.tree_size, &proof.root_hash)?,
            // Only v0.1 bundles may omit it (checked on parse); then the SET must carry trust.
            None if entry.signed_entry_timestamp.is_some() => {}
            None => {
                return Err(LogEntryError::Checkpoint(
                    "the inclusion proof has no checkpoint".to_owned(),
                ));
            }
        }
    }

    let integrated_time = match &entry.signed_entry_timestamp {
        None => None,
        Some(set) => Some(check_set(entry, log, set)?),
    };
    Ok(VerifiedEntry {
        log,
        integrated_time,
    })
}

/// Checks an entry's inclusion proof: without a SET the entry's `logIndex` must be the
/// proof's, and the proof must lead from the canonical body's leaf hash to the proof's root
/// hash. What is left is the checkpoint, which must be the log's and sign that root and size
/// ([`verify_checkpoint`]). Returns the proof.
pub fn verify_inclusion(entry: &TlogEntry) -> Result<&InclusionProof, LogEntryError> {
    let proof = entry
        .inclusion_proof
        .as_ref()
        .ok_or(LogEntryError::NoInclusionEvidence)?;
    // Without a SET (Rekor v2 never has one) nothing signs the entry's `logIndex` but the
    // proof, so it must be the proof's. Rekor v1 entries may differ: their SET signs the
    // global index, the proof the index within the shard's tree.
    if entry.signed_entry_timestamp.is_none() && entry.log_index != proof.log_index {
        return Err(LogEntryError::InclusionProof(format!(
            "the entry's logIndex {} is not the inclusion proof's {}",
            entry.log_index, proof.log_index
        )));
    }
    let leaf = tlog::leaf_hash(&entry.canonicalized_body);
    tlog::proof::verify_inclusion_bytes(
        proof.log_index,
        proof.tree_size,
        leaf.as_bytes(),
        &proof.hashes,
        &proof.root_hash,
    )
    .map_err(|e| LogEntryError::InclusionProof(e.to_string()))?;
    Ok(proof)
}

/// Verifies a log's signed checkpoint (a signed note, as `GET /api/v1/log` returns it) with
/// the log's key from the trusted root, and returns the tree size and root hash it signs.
pub fn verify_checkpoint(
    note: &str,
    log: &TransparencyLog,
) -> Result<(u64, Vec<u8>), LogEntryError> {
    let fail = |reason: &str| LogEntryError::Checkpoint(reason.to_owned());
    let mut lines = note.split('\n').skip(1);
    let size = lines
        .next()
        .and_then(|line| tlog::checkpoint::parse_decimal(line).ok())
        .ok_or_else(|| fail("its second line is not a tree size"))?;
    let root = lines
        .next()
        .and_then(|line| BASE64.decode(line).ok())
        .ok_or_else(|| fail("its third line is not a base64 root hash"))?;
    check_checkpoint(note, log, size, &root)?;
    Ok((size, root))
}

/// Why an answer of a log's proof API (`GET proof/inclusion` or `GET proof/consistency`: JSON
/// with the parameters the proof is for and its `hashes` in base64) did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofAnswerError {
    /// The answer is not JSON with a list of base64 hashes.
    #[error("the proof answer is malformed")]
    Malformed,
    /// The answer is for another leaf index or tree size than the one asked for.
    #[error("the proof answer's {0} is not the one asked for")]
    WrongParameters(&'static str),
    /// The proof does not lead to the trusted root.
    #[error("the proof does not verify: {0}")]
    Proof(String),
}

/// Verifies an inclusion proof answer (`{"leaf_index", "tree_size", "hashes"}`): it is for the
/// leaf `leaf` at `index` in the tree of `tree_size` leaves, and leads from it to `root`.
pub fn verify_inclusion_answer(
    answer: &[u8],
    (index, leaf): (u64, &Hash),
    (tree_size, root): (u64, &Hash),
) -> Result<(), ProofAnswerError> {
    let hashes = proof_answer_hashes(answer, [("leaf_index", index), ("tree_size", tree_size)])?;
    let (leaf_index, tree_size) = (LeafIndex(index), TreeSize(tree_size));
    let proof = tlog::InclusionProof {
        leaf_index,
        tree_size,
        hashes,
    };
    (proof.verify(leaf, root)).map_err(|error| ProofAnswerError::Proof(error.to_string()))
}

/// Verifies a consistency proof answer (`{"old", "new", "hashes"}`): it is for the tree sizes
/// `old` and `new`, and proves the tree with root `old_root` a prefix of the one with `root`.
pub fn verify_consistency_answer(
    answer: &[u8],
    (old, old_root): (u64, &Hash),
    (new, root): (u64, &Hash),
) -> Result<(), ProofAnswerError> {
    let hashes = proof_answer_hashes(answer, [("old", old), ("new", new)])?;
    let (old_size, new_size) = (TreeSize(old), TreeSize(new));
    let proof = tlog::ConsistencyProof {
        old_size,
        new_size,
        hashes,
    };
    (proof.verify(old_root, root)).map_err(|error| ProofAnswerError::Proof(error.to_string()))
}

/// The hashes of a proof answer whose parameters must be `claims`.
fn proof_answer_hashes(
    answer: &[u8],
    claims: [(&'static str, u64); 2],
) -> Result<Vec<Hash>, ProofAnswerError> {
    let answer: Value = serde_json::from_slice(answer).map_err(|_| ProofAnswerError::Malformed)?;
    let asked = |(key, want): &(&str, u64)| answer[*key].as_u64() == Some(*want);
    if let Some((key, _)) = claims.into_iter().find(|claim| !asked(claim)) {
        return Err(ProofAnswerError::WrongParameters(key));
    }
    let hashes = answer["hashes"]
        .as_array()
        .ok_or(ProofAnswerError::Malformed)?;
    (hashes.iter())
        .map(|hash| hash.as_str().and_then(|hash| Hash::from_base64(hash).ok()))
        .collect::<Option<_>>()
        .ok_or(ProofAnswerError::Malformed)
}

fn check_checkpoint(
    note: &str,
    log: &TransparencyLog,
    tree_size: u64,
    root_hash: &[u8],
) -> Result<(), LogEntryError> {
    let fail = |reason: String| LogEntryError::Checkpoint(reason);
    let name = log.host();
    let key = PublicKey::from_spki_der(&log.public_key)
        .map_err(|e| fail(format!("log key in the trusted root: {e}")))?;
    // Rekor v1 signs as `<host>` with its ECDSA key and key id SHA-256(SPKI)[:4]; Rekor v2 as
    // `<host>` (its origin) with Ed25519 and the C2SP key id.
    let verifier = match key.algorithm() {
        KeyAlgorithm::EcdsaP256 => EcdsaVerifier::from_spki(name, key.spki_der())
            .map(NoteVerifier::Ecdsa)
            .map_err(|e| fail(format!("log key: {e}")))?,
        KeyAlgorithm::Ed25519 => {
            let bytes: [u8; 32] = key
                .raw_key()
                .try_into()
                .map_err(|_| fail("log key is not a 32-byte Ed25519 key".to_owned()))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| fail("log key is not an Ed25519 point".to_owned()))?;
            let mut verifiers = vec![
                Ed25519Verifier::new(name, key)
                    .map(NoteVerifier::Ed25519)
                    .map_err(|e| fail(format!("log key: {e}")))?,
            ];
            let origin = note.split('\n').next().unwrap_or_default();
            // A C2SP log names its key by its origin (the note's first line), which need not
            // be a bare host (Cairn's is `<host>/<log>`). The name only picks the signature
            // line; the signature must still verify with the trusted key over the whole body.
            if origin != name
                && let Ok(verifier) = Ed25519Verifier::new(origin, key)
            {
                verifiers.push(NoteVerifier::Ed25519(verifier));
            }
            // A Rekor v1 checkpoint with an Ed25519 key (Cairn's v1 API): origin exactly
            // `<key name> - <tree id>`, signed under `<key name>` with Rekor's key id
            // SHA-256(SPKI)[:4]. Any other origin finds no verifier here.
            if let Some(key_name) = v1_key_name(origin)
                && let Ok(verifier) = Ed25519Verifier::with_spki_key_id(key_name, key)
                && verifiers
                    .iter()
                    .all(|known| known.name() != key_name || known.key_id() != verifier.key_id())
            {
                verifiers.push(NoteVerifier::Ed25519(verifier));
            }
            let verifiers =
                Verifiers::from_verifiers(verifiers).map_err(|e| fail(format!("log key: {e}")))?;
            return open_checkpoint(note, &verifiers, tree_size, root_hash);
        }
        other => return Err(fail(format!("{other:?} log keys are not supported"))),
    };
    let verifiers =
        Verifiers::from_verifiers([verifier]).map_err(|e| fail(format!("log key: {e}")))?;
    open_checkpoint(note, &verifiers, tree_size, root_hash)
}

/// The key name of a Rekor v1 origin line, `<key name> - <decimal tree id>`, if it is one.
pub(crate) fn v1_key_name(origin: &str) -> Option<&str> {
    let (key_name, tree_id) = origin.rsplit_once(" - ")?;
    tlog::checkpoint::parse_decimal(tree_id).ok()?;
    tlog::note::check_key_name(key_name).ok()?;
    Some(key_name)
}

/// Opens `note` with `verifiers` and checks it is the checkpoint of the proof's tree.
fn open_checkpoint(
    note: &str,
    verifiers: &Verifiers,
    tree_size: u64,
    root_hash: &[u8],
) -> Result<(), LogEntryError> {
    let fail = |reason: String| LogEntryError::Checkpoint(reason);
    let signed =
        tlog::checkpoint::open(note.as_bytes(), verifiers).map_err(|e| fail(e.to_string()))?;
    if signed.checkpoint.root.as_bytes().as_slice() != root_hash {
        return Err(fail(
            "its root hash is not the inclusion proof's root hash".to_owned(),
        ));
    }
    if signed.checkpoint.size.0 != tree_size {
        return Err(fail(format!(
            "its tree size {} is not the inclusion proof's {tree_size}",
            signed.checkpoint.size.0
        )));
    }
    Ok(())
}

fn check_set(
    entry: &TlogEntry,
    log: &TransparencyLog,
    set: &[u8],
) -> Result<UnixMillis, LogEntryError> {
    let fail = |reason: &str| LogEntryError::SignedEntryTimestamp(reason.to_owned());
    let integrated_time = entry
        .integrated_time
        .ok_or_else(|| fail("the entry has a SET but no integratedTime"))?;
    // RFC 8785 JSON of these four members: keys in this (sorted) order, integers as JSON
    // numbers, and strings (base64 and hex) that need no escaping.
    let payload = format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        BASE64.encode(&entry.canonicalized_body),
        integrated_time,
        hex::encode(&entry.log_id),
        entry.log_index
    );
    let key = PublicKey::from_spki_der(&log.public_key)
        .map_err(|e| LogEntryError::SignedEntryTimestamp(format!("log key: {e}")))?;
    if !key.verify_message(payload.as_bytes(), set) {
        return Err(fail("the signature does not verify with the log's key"));
    }
    UnixMillis::from_seconds(integrated_time).ok_or_else(|| fail("integratedTime out of range"))
}

fn check_body(
    entry: &TlogEntry,
    content: &Content,
    signer: SignerMaterial<'_>,
    artifact: &Artifact,
) -> Result<(), LogEntryError> {
    let mismatch = |reason: &str| LogEntryError::BodyMismatch(reason.to_owned());
    let body = &entry.canonicalized_body;
    if (entry.kind.as_str(), entry.version.as_str()) == ("intoto", "0.0.2") {
        return check_intoto_v002(body, content, signer);
    }
    let logged = CanonicalBody::parse(body).map_err(|e| match e {
        tlog::entry::BodyError::UnknownKind { .. } => LogEntryError::UnsupportedKind {
            kind: entry.kind.clone(),
            version: entry.version.clone(),
        },
        other => LogEntryError::BodyMismatch(format!("logged body: {other}")),
    })?;
    let logged_entry = logged.entry();
    if logged_entry.kind() != entry.kind || logged_entry.api_version() != entry.version {
        return Err(mismatch("kindVersion is not the body's kind and version"));
    }
    let key_material = || match signer {
        SignerMaterial::Certificate(der) => KeyMaterial::from_certificate_der(der),
        SignerMaterial::PublicKey(der) => KeyMaterial::from_public_key_der(der),
    };
    let invalid = |e: tlog::entry::InputError| LogEntryError::BodyMismatch(e.to_string());
    let expected: Entry = match (logged_entry, content) {
        (Entry::HashedRekordV001(logged), Content::MessageSignature { signature, .. }) => {
            let algorithm = logged.digest().algorithm();
            let digest = artifact
                .digest(algorithm)
                .ok_or_else(|| mismatch(&format!("the artifact's {algorithm} is not known")))?;
            HashedRekordV001::new(
                digest.clone(),
                SignatureBytes::new(signature).map_err(invalid)?,
                key_material().map_err(invalid)?,
            )
            .into()
        }
        (Entry::HashedRekordV002(logged), content) => {
            let key_details = logged.signature().verifier.key_details();
            let verifier = match signer {
                SignerMaterial::Certificate(der) => {
                    EntryVerifier::x509_certificate(der, key_details)
                }
                SignerMaterial::PublicKey(der) => EntryVerifier::public_key(der, key_details),
            }
            .map_err(invalid)?;
            let algorithm = key_details
                .hash_algorithm()
                .ok_or_else(|| mismatch("the logged key details have no prehash"))?;
            // Rekor v2 logs a DSSE envelope as a hashedrekord over the digest of its PAE.
            let (digest, signature) = match content {
                Content::MessageSignature { signature, .. } => (
                    artifact
                        .digest(algorithm)
                        .ok_or_else(|| {
                            mismatch(&format!("the artifact's {algorithm} is not known"))
                        })?
                        .clone(),
                    signature,
                ),
                Content::Dsse(envelope) => (
                    algorithm.hash(&tlog::entry::pae(&envelope.payload_type, &envelope.payload)),
                    &envelope.signature,
                ),
            };
            HashedRekordV002::new(
                digest.as_bytes(),
                Signature {
                    content: SignatureBytes::new(signature).map_err(invalid)?,
                    verifier,
                },
            )
            .map_err(invalid)?
            .into()
        }
        (Entry::DsseV001(logged), Content::Dsse(envelope)) => DsseV001::new(
            logged.envelope_hash().clone(),
            Digest::sha256(&envelope.payload),
            vec![DsseV001Signature {
                signature: SignatureBytes::new(&envelope.signature).map_err(invalid)?,
                verifier: key_material().map_err(invalid)?,
            }],
        )
        .map_err(invalid)?
        .into(),
        // Rekor v2 logged DSSE envelopes as dsse 0.0.2 before it dropped the kind, and Cairn's
        // v2 API still does: the payload's SHA-256 and the signature with its verifier, whose
        // key details (not in the bundle) are taken from the logged entry.
        (Entry::DsseV002(logged), Content::Dsse(envelope)) => {
            let [logged_signature] = logged.signatures() else {
                return Err(mismatch(
                    "the entry does not record exactly the bundle's one signature",
                ));
            };
            let key_details = logged_signature.verifier.key_details();
            let verifier = match signer {
                SignerMaterial::Certificate(der) => {
                    EntryVerifier::x509_certificate(der, key_details)
                }
                SignerMaterial::PublicKey(der) => EntryVerifier::public_key(der, key_details),
            }
            .map_err(invalid)?;
            DsseV002::new(
                Digest::sha256(&envelope.payload),
                vec![Signature {
                    content: SignatureBytes::new(&envelope.signature).map_err(invalid)?,
                    verifier,
                }],
            )
            .map_err(invalid)?
            .into()
        }
        _ => {
            return Err(mismatch(
                "the entry's kind does not record this bundle's kind of content",
            ));
        }
    };
    let expected = CanonicalBody::new(expected).map_err(|e| mismatch(&e.to_string()))?;
    if expected.as_bytes() != body.as_slice() {
        return Err(mismatch(
            "the logged signature, key or digest differs from the bundle's",
        ));
    }
    Ok(())
}

/// The deprecated `intoto` 0.0.2 kind (Rekor v1): `spec.content.envelope` holds the envelope
/// with payload and signatures base64-encoded once more, and each signature's `publicKey` is
/// the base64 PEM of the signer; `spec.content.payloadHash` is SHA-256 of the payload.
fn check_intoto_v002(
    body: &[u8],
    content: &Content,
    signer: SignerMaterial<'_>,
) -> Result<(), LogEntryError> {
    let mismatch = |reason: &str| LogEntryError::BodyMismatch(reason.to_owned());
    let Content::Dsse(envelope) = content else {
        return Err(mismatch("an intoto entry records a DSSE envelope"));
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|_| mismatch("the logged body is not JSON"))?;
    let content_json = &value["spec"]["content"];
    let logged_envelope = &content_json["envelope"];
    if logged_envelope["payloadType"].as_str() != Some(envelope.payload_type.as_str()) {
        return Err(mismatch("payloadType differs"));
    }
    let payload_hash = hex::encode(Digest::sha256(&envelope.payload).as_bytes());
    if content_json["payloadHash"]["algorithm"].as_str() != Some("sha256")
        || content_json["payloadHash"]["value"].as_str() != Some(payload_hash.as_str())
    {
        return Err(mismatch("payloadHash is not the SHA-256 of the payload"));
    }
    if let Some(payload) = logged_envelope["payload"].as_str()
        && payload != BASE64.encode(BASE64.encode(&envelope.payload))
    {
        return Err(mismatch("the logged payload differs"));
    }
    let signatures = logged_envelope["signatures"]
        .as_array()
        .ok_or_else(|| mismatch("no signatures"))?;
    let [logged_signature] = signatures.as_slice() else {
        return Err(mismatch("the entry does not have exactly one signature"));
    };
    if logged_signature["sig"].as_str()
        != Some(BASE64.encode(BASE64.encode(&envelope.signature)).as_str())
    {
        return Err(mismatch("the logged signature differs from the envelope's"));
    }
    let expected_pem = match signer {
        SignerMaterial::Certificate(der) => KeyMaterial::from_certificate_der(der),
        SignerMaterial::PublicKey(der) => KeyMaterial::from_public_key_der(der),
    }
    .map_err(|e| mismatch(&e.to_string()))?;
    let logged_key = logged_signature["publicKey"]
        .as_str()
        .and_then(|b64| BASE64.decode(b64).ok())
        .and_then(|pem| KeyMaterial::from_pem(&pem).ok())
        .ok_or_else(|| mismatch("the logged publicKey is not PEM"))?;
    if logged_key.leaf_der() != expected_pem.leaf_der() {
        return Err(mismatch("the logged key differs from the bundle's"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tlog::keys::Ed25519Signer;
    use tlog::note::{Note, NoteSigner};

    use super::*;
    use crate::time::TimeRange;

    const ROOT: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[5; 32])
    }

    fn log() -> TransparencyLog {
        let spki = tlog::keys::ed25519_spki_der(&key().verifying_key());
        TransparencyLog {
            base_url: "http://cairn.localhost:3000".into(),
            log_id: tlog::Hash::digest(&spki).as_bytes().to_vec(),
            public_key: spki,
            key_details: "PKIX_ED25519".into(),
            valid_for: TimeRange {
                start: UnixMillis::from_seconds(0).unwrap(),
                end: None,
            },
        }
    }

    #[test]
    fn a_transparency_log_entry_parses_and_its_inclusion_is_checked() {
        let body = br#"{"entry":1}"#;
        let leaf = tlog::leaf_hash(body);
        let json = serde_json::json!({
            "logIndex": "0",
            "logId": { "keyId": BASE64.encode(&log().log_id) },
            "kindVersion": { "kind": "hashedrekord", "version": "0.0.2" },
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": BASE64.encode(leaf.as_bytes()),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": { "envelope": "a checkpoint" },
            },
            "canonicalizedBody": BASE64.encode(body),
        });
        let entry = TlogEntry::from_json(json.to_string().as_bytes()).unwrap();
        let proof = verify_inclusion(&entry).unwrap();
        assert_eq!(
            (proof.tree_size, proof.checkpoint.as_deref()),
            (1, Some("a checkpoint"))
        );
        let mut other = entry.clone();
        other.canonicalized_body = b"{}".to_vec();
        assert!(matches!(
            verify_inclusion(&other),
            Err(LogEntryError::InclusionProof(_))
        ));
        let mut relabelled = entry.clone();
        relabelled.log_index = 1;
        assert!(matches!(
            verify_inclusion(&relabelled),
            Err(LogEntryError::InclusionProof(_))
        ));
        let mut no_checkpoint = json;
        no_checkpoint["inclusionProof"]["checkpoint"] = serde_json::Value::Null;
        assert!(TlogEntry::from_json(no_checkpoint.to_string().as_bytes()).is_err());
    }

    #[test]
    fn proof_answers_verify_only_for_what_was_asked() {
        let mut tree = tlog::MemoryTree::new();
        for i in 0..10u64 {
            tree.append(tlog::leaf_hash(&i.to_le_bytes())).unwrap();
        }
        let (root, leaf) = (tree.root(), tlog::leaf_hash(&3u64.to_le_bytes()));
        let old_root = tlog::tree::root_at(&tree.store, TreeSize(4)).unwrap();
        let hashes = |hashes: &[Hash]| hashes.iter().map(Hash::to_base64).collect::<Vec<_>>();
        let proof = tlog::proof::inclusion_proof(&tree.store, LeafIndex(3), TreeSize(10));
        let inclusion = serde_json::json!({
            "leaf_index": 3, "tree_size": 10, "hashes": hashes(&proof.unwrap().hashes),
        });
        let proof = tlog::proof::consistency_proof(&tree.store, TreeSize(4), TreeSize(10));
        let consistency = serde_json::json!({
            "old": 4, "new": 10, "hashes": hashes(&proof.unwrap().hashes),
        });
        let (inclusion, consistency) = (inclusion.to_string(), consistency.to_string());
        let included = |answer: &str, index| {
            verify_inclusion_answer(answer.as_bytes(), (index, &leaf), (10, &root))
        };
        included(&inclusion, 3).unwrap();
        let asked = ProofAnswerError::WrongParameters("leaf_index");
        assert_eq!(included(&inclusion, 4), Err(asked));
        let relabelled = inclusion.replace("\"leaf_index\":3", "\"leaf_index\":4");
        assert!(matches!(
            included(&relabelled, 4),
            Err(ProofAnswerError::Proof(_))
        ));
        let malformed = inclusion.replace("\"hashes\":[\"", "\"hashes\":[\"!");
        assert_eq!(included(&malformed, 3), Err(ProofAnswerError::Malformed));
        let consistent = |answer: &str, old_root| {
            verify_consistency_answer(answer.as_bytes(), (4, old_root), (10, &root))
        };
        consistent(&consistency, &old_root).unwrap();
        assert!(matches!(
            consistent(&consistency, &root),
            Err(ProofAnswerError::Proof(_))
        ));
        assert_eq!(
            consistent("[]", &old_root),
            Err(ProofAnswerError::WrongParameters("old"))
        );
    }

    fn signed(origin: &str, signer: &dyn NoteSigner) -> String {
        let mut note = Note::new(&format!("{origin}\n7\n{ROOT}\n")).unwrap();
        note.sign(signer).unwrap();
        note.format().unwrap()
    }

    /// Gives `entry` what shows it was logged: an inclusion proof of its body as the one leaf
    /// of the fixture log's tree, under a checkpoint that log signed.
    fn prove(entry: &mut TlogEntry) {
        let origin = "cairn.localhost/artifacts";
        let root = tlog::leaf_hash(&entry.canonicalized_body);
        let mut note = Note::new(&format!(
            "{origin}\n1\n{}\n",
            BASE64.encode(root.as_bytes())
        ))
        .unwrap();
        note.sign(&Ed25519Signer::new(origin, key()).unwrap())
            .unwrap();
        entry.inclusion_proof = Some(crate::bundle::InclusionProof {
            log_index: entry.log_index,
            root_hash: root.as_bytes().to_vec(),
            tree_size: 1,
            hashes: Vec::new(),
            checkpoint: Some(note.format().unwrap()),
        });
    }

    fn v1_signer(name: &str) -> Ed25519Signer {
        Ed25519Signer::with_spki_key_id(name, key()).unwrap()
    }

    #[test]
    fn checkpoints_in_v1_form_verify() {
        let root = BASE64.decode(ROOT).unwrap();
        let origin = "cairn.localhost/artifacts";
        // The v1 form: `<key name> - <digits>`, signed under the key name with key id
        // SHA-256(SPKI)[:4].
        let note = signed(&format!("{origin} - 4242"), &v1_signer(origin));
        check_checkpoint(&note, &log(), 7, &root).unwrap();
        assert_eq!(verify_checkpoint(&note, &log()).unwrap(), (7, root.clone()));
        // The committed C2SP form still verifies.
        let c2sp = signed(origin, &Ed25519Signer::new(origin, key()).unwrap());
        check_checkpoint(&c2sp, &log(), 7, &root).unwrap();
        // A wrong size or root is still caught.
        assert!(check_checkpoint(&note, &log(), 8, &root).is_err());
    }

    /// A DSSE bundle whose entry is a dsse 0.0.2 body (what the v2 API logs for a DSSE
    /// request), signed with an Ed25519 key `signer`: the content, the signer's SPKI, the entry
    /// and the trusted root holding the log.
    fn dsse_v002_bundle(
        signer: &ed25519_dalek::SigningKey,
    ) -> (Content, Vec<u8>, TlogEntry, TrustedRoot) {
        use ed25519_dalek::Signer as _;
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#.to_vec();
        let payload_type = crate::verify::IN_TOTO_PAYLOAD_TYPE.to_owned();
        let signature = signer
            .sign(&tlog::entry::pae(&payload_type, &payload))
            .to_bytes()
            .to_vec();
        let spki = tlog::keys::ed25519_spki_der(&signer.verifying_key());
        let entry = DsseV002::new(
            Digest::sha256(&payload),
            vec![Signature {
                content: SignatureBytes::new(&signature).unwrap(),
                verifier: EntryVerifier::public_key(&spki, tlog::entry::KeyDetails::Ed25519)
                    .unwrap(),
            }],
        )
        .unwrap();
        let body = CanonicalBody::new(entry).unwrap().into_bytes();
        let log = log();
        let mut tlog_entry = TlogEntry {
            log_index: 0,
            log_id: log.log_id.clone(),
            kind: "dsse".to_owned(),
            version: "0.0.2".to_owned(),
            integrated_time: None,
            signed_entry_timestamp: None,
            inclusion_proof: None,
            canonicalized_body: body,
        };
        prove(&mut tlog_entry);
        let root = TrustedRoot {
            tlogs: vec![log],
            certificate_authorities: Vec::new(),
            ctlogs: Vec::new(),
            timestamp_authorities: Vec::new(),
        };
        let content = Content::Dsse(crate::bundle::DsseEnvelope {
            payload_type,
            payload,
            signature,
        });
        (content, spki, tlog_entry, root)
    }

    #[test]
    fn dsse_v002_entries_match_their_bundles() {
        let signer = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let (content, spki, entry, root) = dsse_v002_bundle(&signer);
        let artifact = Artifact::from_bytes(b"");
        verify(
            &entry,
            &content,
            SignerMaterial::PublicKey(&spki),
            &artifact,
            &root,
        )
        .unwrap();

        // Another signer's key, another payload or another signature is a mismatch.
        let other = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
        let other_spki = tlog::keys::ed25519_spki_der(&other.verifying_key());
        let (other_content, _, other_entry, _) = dsse_v002_bundle(&other);
        let mismatches = [
            (&entry, &content, other_spki.as_slice()),
            (&other_entry, &content, spki.as_slice()),
            (&entry, &other_content, spki.as_slice()),
        ];
        for (entry, content, spki) in mismatches {
            assert!(matches!(
                verify(
                    entry,
                    content,
                    SignerMaterial::PublicKey(spki),
                    &artifact,
                    &root
                ),
                Err(LogEntryError::BodyMismatch(_))
            ));
        }
        let Content::Dsse(mut envelope) = content.clone() else {
            unreachable!()
        };
        envelope.payload.push(b' ');
        assert!(matches!(
            verify(
                &entry,
                &Content::Dsse(envelope),
                SignerMaterial::PublicKey(&spki),
                &artifact,
                &root
            ),
            Err(LogEntryError::BodyMismatch(_))
        ));
        // A message signature is not what a dsse entry records.
        let message = Content::MessageSignature {
            digest: None,
            signature: vec![1; 64],
        };
        assert!(matches!(
            verify(
                &entry,
                &message,
                SignerMaterial::PublicKey(&spki),
                &artifact,
                &root
            ),
            Err(LogEntryError::BodyMismatch(_))
        ));
    }

    /// An intoto 0.0.2 body as Cairn's v1 API logs it (`tlog::entry::IntotoV002`, Rekor's form:
    /// no payload) matches its DSSE bundle, and not another signer's.
    #[test]
    fn intoto_v002_bodies_as_cairn_logs_them_match_their_bundles() {
        let signer = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let (content, spki, mut entry, root) = dsse_v002_bundle(&signer);
        let Content::Dsse(envelope) = &content else {
            unreachable!()
        };
        let body = |spki: &[u8]| {
            let intoto = tlog::entry::IntotoV002::new(
                Digest::sha256(b"the envelope as the client wrote it"),
                Digest::sha256(&envelope.payload),
                envelope.payload_type.clone(),
                vec![tlog::entry::IntotoV002Signature {
                    keyid: None,
                    sig: SignatureBytes::new(&envelope.signature).unwrap(),
                    public_key: KeyMaterial::from_public_key_der(spki).unwrap(),
                }],
            )
            .unwrap();
            CanonicalBody::new(intoto).unwrap().into_bytes()
        };
        entry.kind = "intoto".to_owned();
        entry.canonicalized_body = body(&spki);
        prove(&mut entry);
        let artifact = Artifact::from_bytes(b"");
        verify(
            &entry,
            &content,
            SignerMaterial::PublicKey(&spki),
            &artifact,
            &root,
        )
        .unwrap();
        let other = tlog::keys::ed25519_spki_der(
            &ed25519_dalek::SigningKey::from_bytes(&[10; 32]).verifying_key(),
        );
        entry.canonicalized_body = body(&other);
        assert!(matches!(
            verify(
                &entry,
                &content,
                SignerMaterial::PublicKey(&spki),
                &artifact,
                &root
            ),
            Err(LogEntryError::BodyMismatch(_))
        ));
    }

    #[test]
    fn other_origins_are_refused() {
        let root = BASE64.decode(ROOT).unwrap();
        let origin = "cairn.localhost/artifacts";
        let refused = [
            // Signed under another name than the origin's.
            signed(
                &format!("{origin} - 4242"),
                &v1_signer("other.example/artifacts"),
            ),
            // Not a decimal tree id, or not exactly ` - `.
            signed(&format!("{origin} - 42a"), &v1_signer(origin)),
            signed(&format!("{origin} - 042"), &v1_signer(origin)),
            signed(&format!("{origin} -  42"), &v1_signer(origin)),
            signed(&format!("{origin}- 42"), &v1_signer(origin)),
            signed(&format!("{origin} - "), &v1_signer(origin)),
            // The v1 origin with the C2SP key id.
            signed(
                &format!("{origin} - 4242"),
                &Ed25519Signer::new(origin, key()).unwrap(),
            ),
            // A plain origin signed with the v1 key id.
            signed(origin, &v1_signer(origin)),
        ];
        for note in refused {
            assert!(
                check_checkpoint(&note, &log(), 7, &root).is_err(),
                "accepted {note}"
            );
        }
        // Another key, with everything else right.
        let other = Ed25519Signer::with_spki_key_id(
            origin,
            ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
        )
        .unwrap();
        let note = signed(&format!("{origin} - 4242"), &other);
        assert!(check_checkpoint(&note, &log(), 7, &root).is_err());
    }
}
