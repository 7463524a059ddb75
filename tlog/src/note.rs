//! C2SP signed-note (c2sp.org/signed-note, v1.0.0): the format. Notes, signature lines, key
//! names and key ids; signing and verifying a note with keys is [`crate::keys`]'s part.
//!
//! Model. A [`Note`] is a text (UTF-8, ending in a newline, no control characters but newline)
//! and one or more signature lines `— <key name> <base64(key id ‖ signature)>`. The text ends at
//! the *last* blank line, so a text may itself contain blank lines. A signature line names its
//! key by (key name, key id); which keys a verifier knows, and what a known key's signature
//! must satisfy, is in [`crate::keys`].
//!
//! Limits: a note is at most [`NOTE_BYTES_MAX`] bytes with at most [`SIGNATURES_MAX`] signature
//! lines of at most [`SIGNATURE_LINE_BYTES_MAX`] bytes each; every limit is checked before the
//! bytes it bounds are decoded.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

/// The largest note accepted, in bytes (1 MiB, as Go's `x/mod/sumdb/note` and `signed_note`).
pub const NOTE_BYTES_MAX: usize = 1 << 20;

/// The most signature lines a note may carry. The spec requires accepting at least 16; Go's
/// implementation allows 100.
pub const SIGNATURES_MAX: usize = 100;

/// The longest signature line accepted, in bytes, newline excluded. Post-quantum signatures
/// reach about 5 kB (6.7 kB of base64); this leaves room for them and a long key name.
pub const SIGNATURE_LINE_BYTES_MAX: usize = 8192;

/// Signature type byte of Ed25519 note signatures.
pub const SIGNATURE_TYPE_ED25519: u8 = 0x01;

/// Signature type byte of ECDSA note signatures (transparency-dev and Rekor v1 style).
pub const SIGNATURE_TYPE_ECDSA: u8 = 0x02;

/// Signature type byte of timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature).
pub const SIGNATURE_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// The start of every signature line: U+2014 EM DASH and a space.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// The 4-byte identifier that, with the key name, selects the key of a signature line.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KeyId(pub [u8; 4]);

impl KeyId {
    /// The recommended key id: `SHA-256(name ‖ 0x0A ‖ key type ‖ public key)[:4]`.
    pub fn for_key(name: &str, key_type: u8, public_key: &[u8]) -> KeyId {
        let mut hasher = Sha256::new();
        hasher.update(name.as_bytes());
        hasher.update([b'\n', key_type]);
        hasher.update(public_key);
        KeyId::from_digest(&hasher.finalize())
    }

    /// Rekor's ECDSA key id: `SHA-256(DER SubjectPublicKeyInfo)[:4]`, with no name.
    pub fn for_spki(spki_der: &[u8]) -> KeyId {
        KeyId::from_digest(&Sha256::digest(spki_der))
    }

    /// Parses exactly 8 lowercase hex digits, the form key ids take in vkeys.
    pub fn from_hex(text: &str) -> Option<KeyId> {
        let lowercase_hex = text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if text.len() != 8 || !lowercase_hex {
            return None;
        }
        let mut id = [0u8; 4];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(KeyId(id))
    }

    pub(crate) fn from_digest(digest: &[u8]) -> KeyId {
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    /// Eight lowercase hex digits, as in vkeys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why a key name is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyNameError {
    /// The name is empty.
    #[error("key name is empty")]
    Empty,
    /// The name contains '+', the separator of verifier keys.
    #[error("key name contains '+'")]
    Plus,
    /// The name contains a Unicode whitespace character (it would split the signature line).
    #[error("key name contains whitespace")]
    Whitespace,
    /// The name contains a control character.
    #[error("key name contains a control character")]
    Control,
}

/// Checks a key name: non-empty, with no whitespace, no control characters and no '+'.
pub fn check_key_name(name: &str) -> Result<(), KeyNameError> {
    if name.is_empty() {
        return Err(KeyNameError::Empty);
    }
    for c in name.chars() {
        if c == '+' {
            return Err(KeyNameError::Plus);
        }
        if c.is_whitespace() {
            return Err(KeyNameError::Whitespace);
        }
        if c.is_control() {
            return Err(KeyNameError::Control);
        }
    }
    Ok(())
}

/// Why a note was not parsed, built, signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note (or note text) is longer than [`NOTE_BYTES_MAX`].
    #[error("note is {len} bytes long, more than the limit of {max}")]
    TooLarge {
        /// The length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8")]
    NotUtf8,
    /// The note contains a control character other than newline.
    #[error("line {line}: control character U+{code:04X}")]
    ControlCharacter {
        /// The line it is on, counted from 1.
        line: usize,
        /// The character's code point.
        code: u32,
    },
    /// The note or the note text does not end in a newline.
    #[error("note does not end in a newline")]
    MissingFinalNewline,
    /// There is no blank line separating the text from the signatures.
    #[error("note has no blank line before its signatures")]
    MissingBlankLine,
    /// The note has no signature lines (or a signed note was asked of an unsigned one).
    #[error("note has no signatures")]
    NoSignatures,
    /// The note has more than [`SIGNATURES_MAX`] signature lines.
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A signature line is longer than [`SIGNATURE_LINE_BYTES_MAX`].
    #[error("signature line {signature}: {len} bytes long, more than the limit of {max}")]
    SignatureLineTooLong {
        /// The signature line, counted from 1.
        signature: usize,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A line after the blank line does not start with an em dash and a space.
    #[error("signature line {signature}: does not start with an em dash (U+2014) and a space")]
    SignaturePrefix {
        /// The signature line, counted from 1.
        signature: usize,
    },
    /// A signature line has no space between the key name and the signature.
    #[error("signature line {signature}: no space between key name and signature")]
    SignatureMissing {
        /// The signature line, counted from 1.
        signature: usize,
    },
    /// A signature line's key name is not allowed.
    #[error("signature line {signature}: {problem}")]
    KeyName {
        /// The signature line, counted from 1 (0 for a signature added through the API).
        signature: usize,
        /// What is wrong with the name.
        problem: KeyNameError,
    },
    /// A signature is not valid base64 (standard alphabet, canonical padding).
    #[error("signature line {signature}: signature is not valid base64")]
    SignatureBase64 {
        /// The signature line, counted from 1.
        signature: usize,
    },
    /// A signature is too short to hold a key id and a signature.
    #[error("signature line {signature}: signature is {len} bytes, need at least 5")]
    SignatureTooShort {
        /// The signature line, counted from 1.
        signature: usize,
        /// The decoded length.
        len: usize,
    },
    /// The signature of a known key does not verify, which rejects the whole note.
    #[error("signature by known key {name}+{key_id} does not verify")]
    SignatureInvalid {
        /// The key name.
        name: String,
        /// The key id.
        key_id: KeyId,
    },
    /// No signature line is from a known key, or none of them verified.
    #[error("note has no signature from a known key")]
    NoKnownSignature,
}

/// One signature line: the key name, the key id and the signature bytes after the key id.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id (the first 4 decoded bytes).
    pub key_id: KeyId,
    /// The signature proper (the decoded bytes after the key id).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// Parses one signature line, without its final newline. `signature` numbers the line in
    /// errors.
    fn parse_line(line: &str, signature: usize) -> Result<NoteSignature, NoteError> {
        if line.len() > SIGNATURE_LINE_BYTES_MAX {
            return Err(NoteError::SignatureLineTooLong {
                signature,
                len: line.len(),
                max: SIGNATURE_LINE_BYTES_MAX,
            });
        }
        let rest = line
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .ok_or(NoteError::SignaturePrefix { signature })?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or(NoteError::SignatureMissing { signature })?;
        check_key_name(name).map_err(|problem| NoteError::KeyName { signature, problem })?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| NoteError::SignatureBase64 { signature })?;
        if bytes.len() < 5 {
            return Err(NoteError::SignatureTooShort {
                signature,
                len: bytes.len(),
            });
        }
        let (id, signature_bytes) = bytes.split_at(4);
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id: KeyId::from_digest(id),
            signature: signature_bytes.to_vec(),
        })
    }

    /// Parses a block of signature lines, each ending in a newline (for example a witness's
    /// response to `add-checkpoint`). At most [`SIGNATURES_MAX`] lines.
    pub fn parse_lines(text: &str) -> Result<Vec<NoteSignature>, NoteError> {
        if text.len() > NOTE_BYTES_MAX {
            return Err(NoteError::TooLarge {
                len: text.len(),
                max: NOTE_BYTES_MAX,
            });
        }
        check_characters(text)?;
        if !text.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        let mut signatures = Vec::new();
        for (i, line) in text.split_terminator('\n').enumerate() {
            if i >= SIGNATURES_MAX {
                return Err(NoteError::TooManySignatures {
                    max: SIGNATURES_MAX,
                });
            }
            signatures.push(NoteSignature::parse_line(line, i + 1)?);
        }
        if signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        Ok(signatures)
    }

    /// The signature line, with its final newline: `— <name> <base64(key id ‖ signature)>\n`.
    pub fn to_line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.0);
        bytes.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(bytes)
        )
    }

    /// Checks what the parser checks, for a signature built through the API.
    fn check(&self) -> Result<(), NoteError> {
        check_key_name(&self.name).map_err(|problem| NoteError::KeyName {
            signature: 0,
            problem,
        })?;
        if self.signature.is_empty() {
            return Err(NoteError::SignatureTooShort {
                signature: 0,
                len: 4,
            });
        }
        let line_len = self.to_line().len() - 1;
        if line_len > SIGNATURE_LINE_BYTES_MAX {
            return Err(NoteError::SignatureLineTooLong {
                signature: 0,
                len: line_len,
                max: SIGNATURE_LINE_BYTES_MAX,
            });
        }
        Ok(())
    }
}

/// A signed note: a text and its signature lines, in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// An unsigned note with this text, which must end in a newline and contain no control
    /// characters other than newline. Sign it with [`Note::sign`] before formatting it.
    pub fn new(text: &str) -> Result<Note, NoteError> {
        if text.len() > NOTE_BYTES_MAX {
            return Err(NoteError::TooLarge {
                len: text.len(),
                max: NOTE_BYTES_MAX,
            });
        }
        check_characters(text)?;
        if !text.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note, checking its syntax and limits but no signature.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > NOTE_BYTES_MAX {
            return Err(NoteError::TooLarge {
                len: bytes.len(),
                max: NOTE_BYTES_MAX,
            });
        }
        let message = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        check_characters(message)?;
        if !message.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        // The text ends at the last blank line: the text may contain blank lines, the
        // signature lines cannot.
        let split = message.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
        let (text, signature_lines) = (&message[..split + 1], &message[split + 2..]);
        if signature_lines.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let signatures = NoteSignature::parse_lines(signature_lines)?;
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// The signed note: the text, a blank line and the signature lines. Fails on a note with no
    /// signatures, which would not parse back.
    pub fn format(&self) -> Result<String, NoteError> {
        if self.signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let mut out = String::with_capacity(self.encoded_len());
        out.push_str(&self.text);
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.to_line());
        }
        Ok(out)
    }

    /// Adds a signature line, replacing any existing one with the same key name and key id
    /// (as Go does, so re-signing a note does not duplicate the line). Checks the key name
    /// and every limit the parser checks.
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        signature.check()?;
        let existing = self
            .signatures
            .iter()
            .position(|s| s.name == signature.name && s.key_id == signature.key_id);
        let removed = existing.map(|i| self.signatures.remove(i));
        if self.signatures.len() >= SIGNATURES_MAX {
            self.restore(removed, existing);
            return Err(NoteError::TooManySignatures {
                max: SIGNATURES_MAX,
            });
        }
        self.signatures.push(signature);
        let len = self.encoded_len();
        if len > NOTE_BYTES_MAX {
            self.signatures.pop();
            self.restore(removed, existing);
            return Err(NoteError::TooLarge {
                len,
                max: NOTE_BYTES_MAX,
            });
        }
        Ok(())
    }

    /// Signs the note text with `signer` and adds the signature line.
    pub fn sign(&mut self, signer: &dyn NoteSigner) -> Result<(), NoteError> {
        let signature = NoteSignature {
            name: signer.name().to_owned(),
            key_id: signer.key_id(),
            signature: signer.sign(&self.text),
        };
        self.add_signature(signature)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        let lines: usize = self
            .signatures
            .iter()
            .map(|s| {
                SIGNATURE_LINE_PREFIX.len()
                    + s.name.len()
                    + 1
                    + (4 + s.signature.len()).div_ceil(3) * 4
                    + 1
            })
            .sum();
        self.text.len() + 1 + lines
    }

    fn restore(&mut self, removed: Option<NoteSignature>, at: Option<usize>) {
        if let (Some(signature), Some(i)) = (removed, at) {
            self.signatures.insert(i, signature);
        }
    }
}

/// Something that signs note texts: a log key, a witness key at a given time.
pub trait NoteSigner {
    /// The key name written on the signature line.
    fn name(&self) -> &str;
    /// The key id written before the signature.
    fn key_id(&self) -> KeyId;
    /// The signature bytes (after the key id) for this note text.
    fn sign(&self, text: &str) -> Vec<u8>;
}

/// Rejects control characters other than newline (C0 controls, as the spec says).
fn check_characters(text: &str) -> Result<(), NoteError> {
    let mut line = 1;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        } else if c < ' ' {
            return Err(NoteError::ControlCharacter {
                line,
                code: u32::from(c),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_keep_unknown_signature_lines() {
        let mut note = Note::new("origin.example\n5\nAAAA\n").unwrap();
        for (name, id) in [("a.example", [1, 2, 3, 4]), ("b.example", [5, 6, 7, 8])] {
            note.add_signature(NoteSignature {
                name: name.to_owned(),
                key_id: KeyId(id),
                signature: vec![9; 64],
            })
            .unwrap();
        }
        let text = note.format().unwrap();
        assert_eq!(text.len(), note.encoded_len());
        let parsed = Note::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(parsed.text(), "origin.example\n5\nAAAA\n");
        assert_eq!(parsed.signatures().len(), 2);
        assert_eq!(parsed.signatures()[1].key_id, KeyId([5, 6, 7, 8]));
    }

    #[test]
    fn texts_are_checked() {
        assert!(Note::new("no newline").is_err());
        assert!(matches!(
            Note::new("a\u{7}bell\n"),
            Err(NoteError::ControlCharacter { line: 1, code: 7 })
        ));
        assert!(Note::parse(b"text\n\nnot a signature line\n").is_err());
        assert_eq!(KeyId::from_hex("0a0B0c0d"), None);
        assert_eq!(KeyId::from_hex("0a0b0c0d"), Some(KeyId([10, 11, 12, 13])));
        assert!(check_key_name("a+b").is_err());
    }
}
