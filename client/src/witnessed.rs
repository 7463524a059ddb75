//! Witness cosignatures on a bundle's checkpoints: `cairn verify --witness-policy`.
//!
//! After the bundle verified (so each checkpoint is the log's and covers the entry), every log
//! entry's checkpoint must also satisfy a C2SP tlog-policy: a listed log key named after the
//! checkpoint's origin signed it, and valid cosignatures of listed witnesses meet the quorum.
//! A bundle whose entry has no checkpoint cannot show cosignatures and fails.

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
    let verified = policy.verify_checkpoint(note.as_bytes())?;
    Ok(verified
        .cosignatures
        .iter()
        .map(|c| c.witness.name.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tlog::checkpoint::Checkpoint;
    use tlog::cosignature::Cosigner;
    use tlog::note::Ed25519Signer;
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
}
