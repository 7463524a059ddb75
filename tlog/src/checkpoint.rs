//! C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint, v1.0.0): the signed statement of a log's
//! origin, tree size and root hash.
//!
//! A checkpoint is the text of a signed note: the origin line, the tree size in decimal (no
//! leading zeros), the root hash in base64, then optional non-empty extension lines. The log
//! signs it under a key whose name is the origin (Ed25519), or, in Rekor v1's style, an ECDSA
//! key named after the log's host with the origin `<host> - <tree id>`. Witnesses add
//! cosignatures ([`crate::cosignature`]).
//!
//! [`open`] verifies the note and parses the checkpoint in one step. It does not compare the
//! origin with anything: a caller that knows which log it expects checks
//! [`Checkpoint::origin`], and [`crate::policy`] checks that the log key's name is the origin.

use crate::hash::{Hash, HashError};
use crate::keys::{EcdsaSigner, Ed25519Signer, KeyError, VerifiedSignature, Verifiers};
use crate::note::{NOTE_BYTES_MAX, Note, NoteError, NoteSigner};
use crate::tree::TreeSize;

/// Why a checkpoint was not parsed, formatted, signed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text is longer than a note may be.
    #[error("checkpoint is {len} bytes long, more than the limit of {max}")]
    TooLarge {
        /// The length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text does not end in a newline.
    #[error("checkpoint does not end in a newline")]
    MissingFinalNewline,
    /// The text has fewer than the three required lines.
    #[error("checkpoint has {lines} lines, need at least 3 (origin, tree size, root hash)")]
    TooFewLines {
        /// The number of lines found.
        lines: usize,
    },
    /// A control character (other than the newlines ending lines) is in the text or a field.
    #[error("line {line}: control character")]
    ControlCharacter {
        /// The line, counted from 1.
        line: usize,
    },
    /// The origin line is empty.
    #[error("line 1: origin is empty")]
    OriginEmpty,
    /// The tree size line is not a decimal number without leading zeros.
    #[error("line 2: tree size is not a decimal number without leading zeros")]
    Size,
    /// The tree size does not fit in 64 bits.
    #[error("line 2: tree size does not fit in 64 bits")]
    SizeOverflow,
    /// The root hash line is not the base64 of 32 bytes.
    #[error("line 3: root hash: {0}")]
    Root(HashError),
    /// An extension line is empty.
    #[error("line {line}: extension line is empty")]
    ExtensionEmpty {
        /// The line, counted from 1.
        line: usize,
    },
    /// The signed note is malformed, or its signatures did not verify.
    #[error("signed note: {0}")]
    Note(#[from] NoteError),
    /// A signing key could not be used (for example a key name that is not a valid note key
    /// name, such as a Rekor v1 origin with spaces).
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
}

/// A checkpoint: which log, how many leaves, and the root of that tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin: its identity, by convention a schema-less URL.
    pub origin: String,
    /// The tree size.
    pub size: TreeSize,
    /// The root hash of the tree of that size.
    pub root: Hash,
    /// Extension lines, without their newlines (discouraged by the spec; carried verbatim).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: TreeSize, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Parses a checkpoint from a note text (which ends in a newline).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        if text.len() > NOTE_BYTES_MAX {
            return Err(CheckpointError::TooLarge {
                len: text.len(),
                max: NOTE_BYTES_MAX,
            });
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            check_field(line, i + 1)?;
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        if origin.is_empty() {
            return Err(CheckpointError::OriginEmpty);
        }
        let size = parse_decimal(size).map_err(|overflow| {
            if overflow {
                CheckpointError::SizeOverflow
            } else {
                CheckpointError::Size
            }
        })?;
        let root = Hash::from_base64(root).map_err(CheckpointError::Root)?;
        for (i, extension) in extensions.iter().enumerate() {
            if extension.is_empty() {
                return Err(CheckpointError::ExtensionEmpty { line: i + 4 });
            }
        }
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size: TreeSize(size),
            root,
            extensions: extensions.iter().map(|&e| e.to_owned()).collect(),
        })
    }

    /// The note text, after checking every field would parse back unchanged.
    pub fn to_text(&self) -> Result<String, CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::OriginEmpty);
        }
        check_field(&self.origin, 1)?;
        for (i, extension) in self.extensions.iter().enumerate() {
            if extension.is_empty() {
                return Err(CheckpointError::ExtensionEmpty { line: i + 4 });
            }
            check_field(extension, i + 4)?;
        }
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size.0, self.root);
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        if text.len() > NOTE_BYTES_MAX {
            return Err(CheckpointError::TooLarge {
                len: text.len(),
                max: NOTE_BYTES_MAX,
            });
        }
        Ok(text)
    }

    /// The checkpoint as a note signed by each of `signers`, in order.
    pub fn sign(&self, signers: &[&dyn NoteSigner]) -> Result<Note, CheckpointError> {
        let mut note = Note::new(&self.to_text()?)?;
        for signer in signers {
            note.sign(*signer)?;
        }
        Ok(note)
    }

    /// The checkpoint signed with the log's Ed25519 key under the key name = origin, as
    /// tlog-checkpoint and Rekor v2 do.
    pub fn sign_ed25519(&self, key: &ed25519_dalek::SigningKey) -> Result<Note, CheckpointError> {
        let signer = Ed25519Signer::new(&self.origin, key.clone())?;
        self.sign(&[&signer])
    }

    /// The checkpoint signed with an ECDSA P-256 key in Rekor v1's style: the key name is the
    /// log's host name (`name`), the key id `SHA-256(DER SPKI)[:4]`.
    pub fn sign_ecdsa(
        &self,
        name: &str,
        key: &p256::ecdsa::SigningKey,
    ) -> Result<Note, CheckpointError> {
        let signer = EcdsaSigner::new(name, key.clone())?;
        self.sign(&[&signer])
    }
}

/// A checkpoint whose note verified: the parsed checkpoint, the note (with every signature
/// line, cosignatures included) and the known keys that verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint<'v> {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The note it was parsed from.
    pub note: Note,
    /// The known keys whose signatures verified (at least one).
    pub verified: Vec<VerifiedSignature<'v>>,
}

/// Parses a signed checkpoint, verifies it with `verifiers` (at least one must verify, and no
/// known key may fail) and parses the checkpoint text.
pub fn open<'v>(
    bytes: &[u8],
    verifiers: &'v Verifiers,
) -> Result<SignedCheckpoint<'v>, CheckpointError> {
    let note = Note::parse(bytes)?;
    open_note(note, verifiers)
}

/// As [`open`], for a note already parsed.
pub fn open_note<'v>(
    note: Note,
    verifiers: &'v Verifiers,
) -> Result<SignedCheckpoint<'v>, CheckpointError> {
    let verified = note.verify(verifiers)?;
    let checkpoint = Checkpoint::parse(note.text())?;
    Ok(SignedCheckpoint {
        checkpoint,
        note,
        verified,
    })
}

/// Parses a decimal `u64` without sign or leading zeros ("0" itself is fine): the one
/// canonical form every tlog text format (checkpoints, tile paths, proofs, policies) uses for
/// numbers. The error is `true` when the digits are canonical but the value overflows.
pub fn parse_decimal(text: &str) -> Result<u64, bool> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(false);
    }
    // u64::MAX has 20 digits; a longer canonical number certainly overflows.
    if text.len() > 20 {
        return Err(true);
    }
    text.parse().map_err(|_| true)
}

/// Rejects control characters in one line of a checkpoint.
fn check_field(field: &str, line: usize) -> Result<(), CheckpointError> {
    if field.chars().any(|c| c < ' ') {
        return Err(CheckpointError::ControlCharacter { line });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Verifier;
    use crate::note::NoteSignature;
    use proptest::prelude::*;

    const ORIGIN: &str = "example.com/behind-the-sofa";
    const TEXT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn log_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[1; 32])
    }

    fn log_verifiers() -> Verifiers {
        let signer = Ed25519Signer::new(ORIGIN, log_key()).unwrap();
        Verifiers::from_verifiers([signer.verifier()]).unwrap()
    }

    #[test]
    fn spec_example_round_trips() {
        let checkpoint = Checkpoint::parse(TEXT).unwrap();
        assert_eq!(checkpoint.origin, ORIGIN);
        assert_eq!(checkpoint.size, TreeSize(20852163));
        assert_eq!(
            checkpoint.root.to_base64(),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert!(checkpoint.extensions.is_empty());
        assert_eq!(checkpoint.to_text().unwrap(), TEXT);

        let with_extensions = format!("{TEXT}ext one\n\u{e9}xt two\n");
        let checkpoint = Checkpoint::parse(&with_extensions).unwrap();
        assert_eq!(checkpoint.extensions, ["ext one", "\u{e9}xt two"]);
        assert_eq!(checkpoint.to_text().unwrap(), with_extensions);
    }

    #[test]
    fn sizes_are_canonical_decimals() {
        let with_size = |size: &str| {
            Checkpoint::parse(&format!(
                "o\n{size}\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
            ))
        };
        assert_eq!(with_size("0").unwrap().size, TreeSize(0));
        assert_eq!(
            with_size("18446744073709551615").unwrap().size,
            TreeSize(u64::MAX)
        );
        assert_eq!(
            with_size("18446744073709551616"),
            Err(CheckpointError::SizeOverflow)
        );
        assert_eq!(
            with_size(&"9".repeat(30)),
            Err(CheckpointError::SizeOverflow)
        );
        for bad in [
            "", "00", "01", "+1", "-1", " 1", "1 ", "1.0", "0x10", "\u{661}",
        ] {
            assert_eq!(with_size(bad), Err(CheckpointError::Size), "{bad:?}");
        }
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        let unpadded = Hash::EMPTY_ROOT.to_base64().replace('=', "");
        let cases: Vec<(String, CheckpointError)> = vec![
            (
                TEXT.trim_end().to_owned(),
                CheckpointError::MissingFinalNewline,
            ),
            (
                "o\n1\n".to_owned(),
                CheckpointError::TooFewLines { lines: 2 },
            ),
            (
                "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n".to_owned(),
                CheckpointError::OriginEmpty,
            ),
            (
                format!("{TEXT}\n"),
                CheckpointError::ExtensionEmpty { line: 4 },
            ),
            (
                format!("{TEXT}a\n\nb\n"),
                CheckpointError::ExtensionEmpty { line: 5 },
            ),
            (
                format!("o\n1\n{}\n", base64_of(&[0u8; 31])),
                CheckpointError::Root(HashError::Length(31)),
            ),
            (
                format!("o\n1\n{}\n", base64_of(&[0u8; 33])),
                CheckpointError::Root(HashError::Length(33)),
            ),
            (
                format!("o\n1\n{unpadded}\n"),
                CheckpointError::Root(HashError::Base64),
            ),
            (
                "o\n1\n!!!!AapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n".to_owned(),
                CheckpointError::Root(HashError::Base64),
            ),
            (
                TEXT.replace("sofa", "so\tfa"),
                CheckpointError::ControlCharacter { line: 1 },
            ),
            (
                format!("{TEXT}a\rb\n"),
                CheckpointError::ControlCharacter { line: 4 },
            ),
        ];
        for (text, error) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(error), "{text:?}");
        }
        let oversized = format!("{TEXT}{}\n", "e".repeat(NOTE_BYTES_MAX));
        assert!(matches!(
            Checkpoint::parse(&oversized),
            Err(CheckpointError::TooLarge { .. })
        ));
        // Every truncation of a valid checkpoint fails.
        for end in 0..TEXT.len() - 1 {
            assert!(
                Checkpoint::parse(&TEXT[..end]).is_err(),
                "{:?}",
                &TEXT[..end]
            );
        }
    }

    #[test]
    fn invalid_fields_are_not_formatted() {
        let mut checkpoint = Checkpoint::new(ORIGIN, TreeSize(1), Hash::EMPTY_ROOT);
        checkpoint.origin = "two\nlines".to_owned();
        assert_eq!(
            checkpoint.to_text(),
            Err(CheckpointError::ControlCharacter { line: 1 })
        );
        checkpoint.origin = String::new();
        assert_eq!(checkpoint.to_text(), Err(CheckpointError::OriginEmpty));
        checkpoint.origin = ORIGIN.to_owned();
        checkpoint.extensions = vec!["ok".to_owned(), String::new()];
        assert_eq!(
            checkpoint.to_text(),
            Err(CheckpointError::ExtensionEmpty { line: 5 })
        );
    }

    #[test]
    fn ed25519_signed_checkpoint_opens() {
        let checkpoint = Checkpoint::parse(TEXT).unwrap();
        let note = checkpoint.sign_ed25519(&log_key()).unwrap();
        assert_eq!(note.signatures()[0].name, ORIGIN);
        let bytes = note.format().unwrap();
        let verifiers = log_verifiers();
        let signed = open(bytes.as_bytes(), &verifiers).unwrap();
        assert_eq!(signed.checkpoint, checkpoint);
        assert_eq!(signed.verified.len(), 1);
        assert_eq!(signed.note, note);

        // Wrong key: nothing known verifies.
        let other =
            Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[2; 32])).unwrap();
        let others = Verifiers::from_verifiers([other.verifier()]).unwrap();
        assert_eq!(
            open(bytes.as_bytes(), &others),
            Err(CheckpointError::Note(NoteError::NoKnownSignature))
        );
        // A changed size breaks the log signature, which rejects the note.
        let forged = bytes.replacen("20852163", "20852164", 1);
        assert!(matches!(
            open(forged.as_bytes(), &verifiers),
            Err(CheckpointError::Note(NoteError::SignatureInvalid { .. }))
        ));
    }

    #[test]
    fn signed_but_malformed_checkpoint_is_rejected() {
        // A valid signature over a text that is not a checkpoint.
        let signer = Ed25519Signer::new(ORIGIN, log_key()).unwrap();
        let mut note = Note::new("o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n").unwrap();
        note.sign(&signer).unwrap();
        assert_eq!(
            open(note.format().unwrap().as_bytes(), &log_verifiers()),
            Err(CheckpointError::Size)
        );
    }

    #[test]
    fn ecdsa_signed_checkpoint_opens_rekor_v1_style() {
        let key = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let checkpoint = Checkpoint {
            origin: "rekor.example - 1193050959916656506".to_owned(),
            size: TreeSize(42),
            root: Hash::EMPTY_ROOT,
            extensions: vec!["Timestamp: 1700000000000000000".to_owned()],
        };
        // The origin has spaces, so it cannot be a key name: Rekor v1 names the key by host.
        assert!(matches!(
            checkpoint.sign_ed25519(&log_key()),
            Err(CheckpointError::Key(KeyError::Name(_)))
        ));
        let note = checkpoint.sign_ecdsa("rekor.example", &key).unwrap();
        let verifier = EcdsaSigner::new("rekor.example", key)
            .unwrap()
            .verifier()
            .unwrap();
        let verifiers = Verifiers::from_verifiers([verifier]).unwrap();
        let signed = open(note.format().unwrap().as_bytes(), &verifiers).unwrap();
        assert_eq!(signed.checkpoint, checkpoint);
        assert!(matches!(signed.verified[0].verifier, Verifier::Ecdsa(_)));
    }

    #[test]
    fn unknown_signatures_ride_along() {
        let checkpoint = Checkpoint::parse(TEXT).unwrap();
        let mut note = checkpoint.sign_ed25519(&log_key()).unwrap();
        note.add_signature(NoteSignature {
            name: "witness.example".to_owned(),
            key_id: crate::note::KeyId([1, 2, 3, 4]),
            signature: vec![0; 72],
        })
        .unwrap();
        let verifiers = log_verifiers();
        let signed = open(note.format().unwrap().as_bytes(), &verifiers).unwrap();
        assert_eq!(signed.note.signatures().len(), 2);
        assert_eq!(signed.verified.len(), 1);
    }

    fn base64_of(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(
            origin in "[!-~][ -~\u{a0}-\u{2fff}]{0,30}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            extensions in proptest::collection::vec("[ -~\u{a0}-\u{2fff}]{1,20}", 0..4),
        ) {
            let checkpoint = Checkpoint { origin, size: TreeSize(size), root: Hash(root), extensions };
            let text = checkpoint.to_text().unwrap();
            prop_assert_eq!(Checkpoint::parse(&text).unwrap(), checkpoint);
        }
    }
}
