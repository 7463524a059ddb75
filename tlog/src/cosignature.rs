//! C2SP tlog-cosignature v1 (c2sp.org/tlog-cosignature), the Ed25519 type: timestamped witness
//! cosignatures of checkpoints, note signature type 0x04.
//!
//! A cosignature is an ordinary note signature line whose key id is
//! `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ 32-byte public key)[:4]` and whose signature bytes are
//! `u64 big-endian timestamp ‖ 64-byte Ed25519 signature` (76 bytes with the key id). The
//! Ed25519 signature covers `cosignature/v1\ntime <timestamp>\n` followed by the whole
//! checkpoint note text, extension lines included. The message does not bind the cosigner's
//! name, so every cosigner needs its own key.
//!
//! The keys that make and check cosignatures are [`crate::keys::Cosigner`] and
//! [`crate::keys::CosignatureVerifier`]; this module is the message alone (its tests sign and
//! verify with those keys). The ML-DSA-44 type (0x06) is not implemented. Callers pass
//! timestamps in: nothing here reads a clock, and whether a future timestamp is acceptable is
//! the caller's decision.

use crate::note::{KeyId, SIGNATURE_TYPE_COSIGNATURE_V1};

/// The first line of every signed cosignature message, for domain separation.
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1\n";

/// Length of a cosignature's signature bytes after the key id: an 8-byte timestamp and a
/// 64-byte Ed25519 signature.
pub const COSIGNATURE_BYTES_LEN: usize = 8 + 64;

/// The largest timestamp the spec allows, 2^63 - 1.
pub const TIMESTAMP_MAX: u64 = (1 << 63) - 1;

/// Why a cosignature was not made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The signature bytes after the key id are not 72 bytes long.
    #[error("cosignature is {len} bytes long after the key id, want 72")]
    Length {
        /// The length given.
        len: usize,
    },
    /// The timestamp is above 2^63 - 1.
    #[error("cosignature timestamp {0} is above 2^63 - 1")]
    TimestampRange(u64),
    /// The Ed25519 signature does not verify for this key, timestamp and checkpoint.
    #[error("cosignature by {name}+{key_id} does not verify")]
    Invalid {
        /// The cosigner's key name.
        name: String,
        /// The cosigner's key id.
        key_id: KeyId,
    },
}

/// The message an Ed25519 cosignature signs: the header line, the time line and the whole
/// checkpoint note text.
pub fn cosigned_message(checkpoint_text: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_V1_HEADER}time {timestamp}\n{checkpoint_text}")
}

/// The key id of a cosigner: `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]`.
pub fn key_id(name: &str, key: &ed25519_dalek::VerifyingKey) -> KeyId {
    KeyId::for_key(name, SIGNATURE_TYPE_COSIGNATURE_V1, key.as_bytes())
}

/// The timestamp of a cosignature's signature bytes (after the key id), without verifying it.
pub fn timestamp(signature: &[u8]) -> Result<u64, CosignatureError> {
    let bytes: &[u8; COSIGNATURE_BYTES_LEN] =
        signature.try_into().map_err(|_| CosignatureError::Length {
            len: signature.len(),
        })?;
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&bytes[..8]);
    let timestamp = u64::from_be_bytes(timestamp);
    if timestamp > TIMESTAMP_MAX {
        return Err(CosignatureError::TimestampRange(timestamp));
    }
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;
    use crate::keys::{Cosigner, Verifier, Verifiers, open};
    use crate::note::{Note, NoteError, NoteSignature};

    const CHECKPOINT: &str = "example.com/behind-the-sofa\n20852163\n\
                              CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn cosigner(seed: u8) -> Cosigner {
        Cosigner::new(
            "witness.example.com/w1",
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        )
        .unwrap()
    }

    #[test]
    fn message_layout_matches_the_spec() {
        assert_eq!(
            cosigned_message(CHECKPOINT, 1679315147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n\
             CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn spec_example_line_decodes() {
        // The cosignature line of the tlog-cosignature spec's example: key id 8d66cf3f,
        // timestamp 1679315147.
        let line = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";
        let signatures = NoteSignature::parse_lines(line).unwrap();
        assert_eq!(signatures[0].key_id, KeyId([0x8d, 0x66, 0xcf, 0x3f]));
        assert_eq!(timestamp(&signatures[0].signature), Ok(1679315147));
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let witness = cosigner(3);
        let verifier = witness.verifier();
        let signature = witness.sign(CHECKPOINT, 1_700_000_000).unwrap();
        assert_eq!(signature.signature.len(), COSIGNATURE_BYTES_LEN);
        // Key id and signature bytes make the 76 bytes of the line.
        assert_eq!(
            BASE64
                .decode(signature.to_line().trim_end().rsplit_once(' ').unwrap().1)
                .unwrap()
                .len(),
            76
        );
        let Verifier::Cosignature(cosignature) = &verifier else {
            panic!("not a cosignature verifier")
        };
        assert_eq!(
            cosignature.verify(CHECKPOINT, &signature.signature),
            Ok(1_700_000_000)
        );
        assert!(verifier.verify(CHECKPOINT, &signature.signature));
        // The vkey is type 0x04 and round-trips.
        let vkey = verifier.to_vkey();
        assert_eq!(Verifier::parse(&vkey).unwrap(), verifier);
        // Another checkpoint, another key, a truncated signature: rejected.
        assert!(
            cosignature
                .verify(&CHECKPOINT.replace("163", "164"), &signature.signature)
                .is_err()
        );
        let other = cosigner(4).verifier();
        assert!(!other.verify(CHECKPOINT, &signature.signature));
        assert_eq!(
            cosignature.verify(CHECKPOINT, &signature.signature[..71]),
            Err(CosignatureError::Length { len: 71 })
        );
    }

    #[test]
    fn tampered_timestamp_is_rejected() {
        let witness = cosigner(3);
        let Verifier::Cosignature(verifier) = witness.verifier() else {
            panic!("not a cosignature verifier")
        };
        let mut signature = witness.sign(CHECKPOINT, 1_700_000_000).unwrap().signature;
        signature[7] ^= 1;
        assert!(matches!(
            verifier.verify(CHECKPOINT, &signature),
            Err(CosignatureError::Invalid { .. })
        ));
        signature[0] = 0x80;
        assert!(matches!(
            verifier.verify(CHECKPOINT, &signature),
            Err(CosignatureError::TimestampRange(_))
        ));
        assert_eq!(
            witness.sign(CHECKPOINT, 1 << 63).unwrap_err(),
            CosignatureError::TimestampRange(1 << 63)
        );
    }

    #[test]
    fn fixed_key_known_answer() {
        // Ed25519 is deterministic: a fixed seed, name, checkpoint and time pin the line. The
        // pinned values were computed independently with Python's pyca/cryptography from the
        // spec's formulas (seed 32 bytes of 42, time 1679315147).
        let witness = cosigner(42);
        assert_eq!(witness.key_id().to_string(), PINNED_KEY_ID);
        assert_eq!(witness.verifier().to_vkey(), PINNED_VKEY);
        let line = witness.sign(CHECKPOINT, 1679315147).unwrap().to_line();
        assert_eq!(line, PINNED_LINE);
    }

    const PINNED_KEY_ID: &str = "b2b3731c";
    const PINNED_VKEY: &str =
        "witness.example.com/w1+b2b3731c+BBl/ayPhbIUyxqvIOPrNXqeJvgx2spIDNAOb+os9No1h";
    const PINNED_LINE: &str = "\u{2014} witness.example.com/w1 srNzHAAAAABkGFDLO3QHuVkoSLXBTFXEZirSXMcqft7KH9IJ/9dNoJmEuYKyHYdwR8Hl82lSBc3HRuL0pix1dLkwMzmSzwYLULbTBA==\n";

    #[test]
    fn cosigned_note_verifies_log_and_witnesses_separately() {
        let log = crate::keys::Ed25519Signer::new(
            "example.com/behind-the-sofa",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let witness = cosigner(3);
        let mut note = Note::new(CHECKPOINT).unwrap();
        note.sign(&log).unwrap();
        note.sign(&witness.at(1_700_000_000).unwrap()).unwrap();
        let text = note.format().unwrap();

        let logs = Verifiers::from_verifiers([log.verifier()]).unwrap();
        let witnesses = Verifiers::from_verifiers([witness.verifier()]).unwrap();
        let (note, verified) = open(text.as_bytes(), &logs).unwrap();
        assert_eq!(verified.len(), 1);
        assert_eq!(verified[0].timestamp(), None);
        let cosigned = note.verify_known(&witnesses).unwrap();
        assert_eq!(cosigned.len(), 1);
        assert_eq!(cosigned[0].timestamp(), Some(1_700_000_000));

        // Cosignatures are ordinary signatures to a generic verifier set: one set with both.
        let both = Verifiers::from_verifiers([log.verifier(), witness.verifier()]).unwrap();
        assert_eq!(note.verify(&both).unwrap().len(), 2);

        // A cosignature whose timestamp was altered in the line fails and rejects the note.
        let mut signature = note.signatures()[1].clone();
        signature.signature[7] ^= 1;
        let mut tampered = Note::new(CHECKPOINT).unwrap();
        tampered
            .add_signature(note.signatures()[0].clone())
            .unwrap();
        tampered.add_signature(signature).unwrap();
        assert!(matches!(
            tampered.verify_known(&witnesses),
            Err(NoteError::SignatureInvalid { .. })
        ));
    }
}
