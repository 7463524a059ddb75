//! Witness cosignatures on a bundle's checkpoints: `cairn verify --witness-policy`.
//!
//! After the bundle verified (so each checkpoint is the log's and covers the entry), every log
//! entry's checkpoint must also satisfy a C2SP tlog-policy: a listed log key named after the
//! checkpoint's origin signed it, and valid cosignatures of listed witnesses meet the quorum.
//! A bundle whose entry has no checkpoint cannot show cosignatures and fails.
//!
//! A checkpoint in Rekor v1 form (Cairn's v1 API, docs/decisions/0004-v1-checkpoint.md: origin
//! `<key name> - <tree id>`, the log's Ed25519 key with Rekor's key id) is the listed log's if
//! that key, named `<key name>` in the policy, signed it; witnesses cosign only the C2SP form,
//! so such a checkpoint carries no cosignatures and holds only for a policy needing none.

use tlog::checkpoint::Checkpoint;
use tlog::keys::{Ed25519Verifier, Verifier, Verifiers};
use tlog::note::Note;
use tlog::policy::{Policy, PolicyError};

use crate::Bundle;

/// Why a bundle's checkpoints do not satisfy a witness policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessPolicyError {
    /// The bundle has no log entry.
    #[error("the bundle has no log entry")]
    NoEntry,
    /// A log entry has no checkpoint to carry cosignatures.
    #[error("log entry {index} has no checkpoint")]
    NoCheckpoint {
        /// The entry's log index.
        index: u64,
    },
    /// A checkpoint does not satisfy the policy.
    #[error("log entry {index}: {source}")]
    Policy {
        /// The entry's log index.
        index: u64,
        /// Why.
        source: PolicyError,
    },
}

/// Checks every log entry's checkpoint against `policy`; returns, per entry, the names of the
/// witnesses whose cosignatures verified.
pub fn check_bundle(
    bundle: &Bundle,
    policy: &Policy,
) -> Result<Vec<Vec<String>>, WitnessPolicyError> {
    if bundle.tlog_entries.is_empty() {
        return Err(WitnessPolicyError::NoEntry);
    }
    bundle
        .tlog_entries
        .iter()
        .map(|entry| {
            let index = entry.log_index;
            let note = entry
                .inclusion_proof
                .as_ref()
                .and_then(|proof| proof.checkpoint.as_deref())
                .ok_or(WitnessPolicyError::NoCheckpoint { index })?;
            check_checkpoint(note, policy)
                .map_err(|source| WitnessPolicyError::Policy { index, source })
        })
        .collect()
}

/// Checks one signed checkpoint against `policy`; returns the witnesses that cosigned it.
pub fn check_checkpoint(note: &str, policy: &Policy) -> Result<Vec<String>, PolicyError> {
    let origin = note.split('\n').next().unwrap_or_default();
    if let Some(key_name) = crate::log_entry::v1_key_name(origin) {
        return check_v1_checkpoint(note, key_name, policy);
    }
    let verified = policy.verify_checkpoint(note.as_bytes())?;
    Ok(verified
        .cosignatures
        .iter()
        .map(|c| c.witness.name.clone())
        .collect())
}

/// [`check_checkpoint`] for a checkpoint in Rekor v1 form whose key name is `key_name`.
fn check_v1_checkpoint(
    note: &str,
    key_name: &str,
    policy: &Policy,
) -> Result<Vec<String>, PolicyError> {
    let parsed = Note::parse(note.as_bytes()).map_err(PolicyError::LogSignature)?;
    let verifiers = policy
        .logs()
        .iter()
        .filter_map(|log| match &log.verifier {
            Verifier::Ed25519(key) if key.name() == key_name => {
                Ed25519Verifier::with_spki_key_id(key_name, *key.key())
                    .ok()
                    .map(Verifier::Ed25519)
            }
            _ => None,
        })
        .collect::<Vec<_>>();
    if verifiers.is_empty() {
        return Err(PolicyError::OriginMismatch {
            origin: origin_of(note),
        });
    }
    let verifiers =
        Verifiers::from_verifiers(verifiers).map_err(|_| PolicyError::OriginMismatch {
            origin: origin_of(note),
        })?;
    parsed
        .verify(&verifiers)
        .map_err(PolicyError::LogSignature)?;
    Checkpoint::parse(parsed.text()).map_err(PolicyError::Checkpoint)?;
    if !policy.is_satisfied_by(std::iter::empty()) {
        return Err(PolicyError::QuorumNotMet { cosignatures: 0 });
    }
    Ok(Vec::new())
}

fn origin_of(note: &str) -> String {
    note.split('\n').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tlog::keys::Cosigner;
    use tlog::keys::Ed25519Signer;
    use tlog::{Hash, TreeSize};

    use super::*;

    #[test]
    fn two_of_three_cosignatures_are_needed() {
        let log = Ed25519Signer::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let witnesses: Vec<Cosigner> = (0..3u8)
            .map(|i| {
                Cosigner::new(
                    &format!("w{i}.example"),
                    ed25519_dalek::SigningKey::from_bytes(&[10 + i; 32]),
                )
                .unwrap()
            })
            .collect();
        let mut policy = format!("log {}\n", log.verifier());
        for (i, w) in witnesses.iter().enumerate() {
            policy.push_str(&format!("witness w{i} {}\n", w.verifier()));
        }
        policy.push_str("group q 2 w0 w1 w2\nquorum q\n");
        let policy = Policy::parse(&policy).unwrap();
        let mut note = Checkpoint::new("log.example", TreeSize(3), Hash::digest(b"r"))
            .sign(&[&log])
            .unwrap();
        note.sign(&witnesses[0].at(1).unwrap()).unwrap();
        assert!(matches!(
            check_checkpoint(&note.format().unwrap(), &policy),
            Err(PolicyError::QuorumNotMet { cosignatures: 1 })
        ));
        note.sign(&witnesses[2].at(2).unwrap()).unwrap();
        assert_eq!(
            check_checkpoint(&note.format().unwrap(), &policy).unwrap(),
            vec!["w0".to_owned(), "w2".to_owned()]
        );
    }

    #[test]
    fn v1_form_checkpoints_hold_only_for_policies_needing_no_witness() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let log = Ed25519Signer::new("log.example/a", key.clone()).unwrap();
        let v1 = Ed25519Signer::with_spki_key_id("log.example/a", key).unwrap();
        let witness = Cosigner::new(
            "w.example",
            ed25519_dalek::SigningKey::from_bytes(&[10; 32]),
        )
        .unwrap();
        let none = Policy::parse(&format!("log {}\nquorum none\n", log.verifier())).unwrap();
        let one = Policy::parse(&format!(
            "log {}\nwitness w {}\nquorum w\n",
            log.verifier(),
            witness.verifier()
        ))
        .unwrap();
        let signed = |origin: &str, signer: &Ed25519Signer| {
            let mut note = Note::new(&format!(
                "{origin}\n3\n{}\n",
                Hash::digest(b"r").to_base64()
            ))
            .unwrap();
            note.sign(signer).unwrap();
            note.format().unwrap()
        };
        let note = signed("log.example/a - 77", &v1);
        assert_eq!(
            check_checkpoint(&note, &none).unwrap(),
            Vec::<String>::new()
        );
        assert!(matches!(
            check_checkpoint(&note, &one),
            Err(PolicyError::QuorumNotMet { cosignatures: 0 })
        ));
        // Another key name than the policy's log, or the C2SP key id: refused.
        let other = Ed25519Signer::with_spki_key_id(
            "log.example/b",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        assert!(check_checkpoint(&signed("log.example/b - 77", &other), &none).is_err());
        assert!(check_checkpoint(&signed("log.example/a - 77", &log), &none).is_err());
    }
}
