//! The keys of C2SP signed notes: verifier keys ("vkeys"), sets of them, signers, and
//! verifying a [`Note`] against a set.
//!
//! A verifier knows a set of keys ([`Verifiers`]); a signature line is matched to a key by (key
//! name, key id), lines that match no known key are skipped (that is what lets witnesses add
//! cosignatures later), a known key whose signature fails rejects the whole note, and at least
//! one known key must verify.
//!
//! Signature types supported, by their type byte:
//! - `0x01` Ed25519 over the note text; key id `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`.
//! - `0x02` ECDSA P-256 with SHA-256, ASN.1 DER signatures, over the note text. The key id is
//!   Rekor's and transparency-dev's: `SHA-256(DER SubjectPublicKeyInfo)[:4]`, without the name.
//!   The vkey carries `0x02 ‖ DER SPKI`.
//! - `0x04` timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature): [`Cosigner`] and
//!   [`CosignatureVerifier`], over the message [`crate::cosignature`] defines.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};

use crate::cosignature::{
    COSIGNATURE_BYTES_LEN, CosignatureError, TIMESTAMP_MAX, cosigned_message, key_id, timestamp,
};
use crate::note::{
    KeyId, KeyNameError, Note, NoteError, NoteSignature, NoteSigner, SIGNATURE_TYPE_COSIGNATURE_V1,
    SIGNATURE_TYPE_ECDSA, SIGNATURE_TYPE_ED25519, check_key_name,
};

/// The longest verifier key or private key string accepted, in bytes.
pub const KEY_TEXT_BYTES_MAX: usize = 8192;

/// The prefix of Go's private key encoding.
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Length of an Ed25519 public key and of a private key seed.
const ED25519_KEY_LEN: usize = 32;

/// Verifying a note against a set of keys.
impl Note {
    /// The known keys whose signatures verify, each once, in signature order. Signatures from
    /// unknown keys are skipped; a known key's signature that fails rejects the note. Unlike
    /// [`Note::verify`] it is not an error for no known key to have signed (cosignatures are
    /// optional until a policy says otherwise).
    pub fn verify_known<'v>(
        &self,
        verifiers: &'v Verifiers,
    ) -> Result<Vec<VerifiedSignature<'v>>, NoteError> {
        let mut verified: Vec<VerifiedSignature<'v>> = Vec::new();
        for signature in self.signatures() {
            let Some(verifier) = verifiers.find(&signature.name, signature.key_id) else {
                continue;
            };
            if !verifier.verify(self.text(), &signature.signature) {
                return Err(NoteError::SignatureInvalid {
                    name: signature.name.clone(),
                    key_id: signature.key_id,
                });
            }
            if !verified.iter().any(|v| std::ptr::eq(v.verifier, verifier)) {
                verified.push(VerifiedSignature {
                    verifier,
                    signature: signature.clone(),
                });
            }
        }
        Ok(verified)
    }

    /// Verifies the note: as [`Note::verify_known`], and at least one known key must verify.
    pub fn verify<'v>(
        &self,
        verifiers: &'v Verifiers,
    ) -> Result<Vec<VerifiedSignature<'v>>, NoteError> {
        let verified = self.verify_known(verifiers)?;
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        Ok(verified)
    }
}

/// Parses and verifies a signed note in one step: the note and the known keys that verified it.
pub fn open<'v>(
    bytes: &[u8],
    verifiers: &'v Verifiers,
) -> Result<(Note, Vec<VerifiedSignature<'v>>), NoteError> {
    let note = Note::parse(bytes)?;
    let verified = note.verify(verifiers)?;
    Ok((note, verified))
}

/// A signature line that a known key verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature<'v> {
    /// The key that verified it.
    pub verifier: &'v Verifier,
    /// The signature line.
    pub signature: NoteSignature,
}

impl VerifiedSignature<'_> {
    /// The cosignature timestamp, for a verified cosignature (type 0x04); `None` otherwise.
    pub fn timestamp(&self) -> Option<u64> {
        match self.verifier {
            Verifier::Cosignature(_) => {
                crate::cosignature::timestamp(&self.signature.signature).ok()
            }
            _ => None,
        }
    }
}

/// Why a verifier key, a private key or a set of verifiers was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key text is longer than [`KEY_TEXT_BYTES_MAX`].
    #[error("key is {len} bytes long, more than the limit of {max}")]
    TooLong {
        /// The length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text is not `<name>+<key id>+<base64 key>`.
    #[error("verifier key is not <name>+<key id>+<base64 key>")]
    Format,
    /// The text does not start with `PRIVATE+KEY+` and have the vkey fields after it.
    #[error("private key is not PRIVATE+KEY+<name>+<key id>+<base64 key>")]
    PrivateFormat,
    /// The key name is not allowed.
    #[error(transparent)]
    Name(#[from] KeyNameError),
    /// The key id is not 8 lowercase hex digits.
    #[error("key id is not 8 lowercase hex digits")]
    KeyIdHex,
    /// The key is not valid base64.
    #[error("key is not valid base64")]
    Base64,
    /// The decoded key is empty (it must start with a signature type byte).
    #[error("key has no signature type byte")]
    MissingType,
    /// The signature type byte is not one this crate implements.
    #[error("signature type 0x{0:02x} is not supported")]
    UnsupportedType(u8),
    /// The key material has the wrong length for its type.
    #[error("key of signature type 0x{key_type:02x} is {len} bytes long, want {want}")]
    Length {
        /// The signature type byte.
        key_type: u8,
        /// The length given.
        len: usize,
        /// The length the type requires.
        want: usize,
    },
    /// The Ed25519 public key is not a valid curve point.
    #[error("Ed25519 public key is not a valid point")]
    Ed25519Point,
    /// The ECDSA key is not a DER SubjectPublicKeyInfo holding a P-256 point.
    #[error("ECDSA key is not a DER SubjectPublicKeyInfo of a P-256 point")]
    EcdsaSpki,
    /// The key id stated does not match the one computed from the name and key.
    #[error("key id {stated} does not match the key (computed {computed})")]
    KeyIdMismatch {
        /// The key id in the text.
        stated: KeyId,
        /// The key id computed from the key.
        computed: KeyId,
    },
    /// Two verifiers in one set share a key name and key id, so signatures are ambiguous.
    #[error("two verifiers share key name {name} and key id {key_id}")]
    Duplicate {
        /// The key name.
        name: String,
        /// The key id.
        key_id: KeyId,
    },
}

/// A note verifier key: one of the signature types this crate verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verifier {
    /// An Ed25519 note key (type 0x01).
    Ed25519(Ed25519Verifier),
    /// An ECDSA P-256 note key (type 0x02), Rekor v1 style.
    Ecdsa(EcdsaVerifier),
    /// A witness's timestamped Ed25519 cosignature key (type 0x04).
    Cosignature(CosignatureVerifier),
}

impl Verifier {
    /// Parses a vkey, `<name>+<8 lowercase hex key id>+<base64(type ‖ public key)>`, and checks
    /// that the key id matches the key.
    pub fn parse(vkey: &str) -> Result<Verifier, KeyError> {
        if vkey.len() > KEY_TEXT_BYTES_MAX {
            return Err(KeyError::TooLong {
                len: vkey.len(),
                max: KEY_TEXT_BYTES_MAX,
            });
        }
        let (name, stated, key) = split_key_text(vkey, KeyError::Format)?;
        let (&key_type, material) = key.split_first().ok_or(KeyError::MissingType)?;
        let verifier = match key_type {
            SIGNATURE_TYPE_ED25519 => Verifier::Ed25519(Ed25519Verifier::new(
                name,
                ed25519_public_key(key_type, material)?,
            )?),
            SIGNATURE_TYPE_ECDSA => Verifier::Ecdsa(EcdsaVerifier::from_spki(name, material)?),
            SIGNATURE_TYPE_COSIGNATURE_V1 => Verifier::Cosignature(CosignatureVerifier::new(
                name,
                ed25519_public_key(key_type, material)?,
            )?),
            other => return Err(KeyError::UnsupportedType(other)),
        };
        if verifier.key_id() != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                computed: verifier.key_id(),
            });
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        match self {
            Verifier::Ed25519(v) => v.name(),
            Verifier::Ecdsa(v) => v.name(),
            Verifier::Cosignature(v) => v.name(),
        }
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        match self {
            Verifier::Ed25519(v) => v.key_id(),
            Verifier::Ecdsa(v) => v.key_id(),
            Verifier::Cosignature(v) => v.key_id(),
        }
    }

    /// The signature type byte.
    pub fn key_type(&self) -> u8 {
        match self {
            Verifier::Ed25519(_) => SIGNATURE_TYPE_ED25519,
            Verifier::Ecdsa(_) => SIGNATURE_TYPE_ECDSA,
            Verifier::Cosignature(_) => SIGNATURE_TYPE_COSIGNATURE_V1,
        }
    }

    /// The public key as the vkey encodes it after the type byte: 32 bytes for Ed25519 and
    /// cosignature keys, the DER SubjectPublicKeyInfo for ECDSA.
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            Verifier::Ed25519(v) => v.key().to_bytes().to_vec(),
            Verifier::Ecdsa(v) => v.spki_der().to_vec(),
            Verifier::Cosignature(v) => v.key().to_bytes().to_vec(),
        }
    }

    /// Whether `signature` (the bytes after the key id) is this key's signature of `text`.
    pub fn verify(&self, text: &str, signature: &[u8]) -> bool {
        match self {
            Verifier::Ed25519(v) => v.verify(text, signature),
            Verifier::Ecdsa(v) => v.verify(text, signature),
            Verifier::Cosignature(v) => v.verify(text, signature).is_ok(),
        }
    }

    /// The vkey text.
    pub fn to_vkey(&self) -> String {
        let mut key = vec![self.key_type()];
        key.extend_from_slice(&self.public_key());
        format!("{}+{}+{}", self.name(), self.key_id(), BASE64.encode(key))
    }
}

impl fmt::Display for Verifier {
    /// The vkey text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for Verifier {
    type Err = KeyError;

    fn from_str(vkey: &str) -> Result<Verifier, KeyError> {
        Verifier::parse(vkey)
    }
}

/// An Ed25519 note verifier key (type 0x01).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Verifier {
    name: String,
    key_id: KeyId,
    key: ed25519_dalek::VerifyingKey,
}

impl Ed25519Verifier {
    /// The verifier for `key` under key name `name`.
    pub fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> Result<Ed25519Verifier, KeyError> {
        check_key_name(name)?;
        Ok(Ed25519Verifier {
            name: name.to_owned(),
            key_id: KeyId::for_key(name, SIGNATURE_TYPE_ED25519, key.as_bytes()),
            key,
        })
    }

    /// The verifier for `key` under key name `name` with Rekor v1's key id rule,
    /// `SHA-256(DER SubjectPublicKeyInfo)[:4]`, instead of C2SP's: how a Rekor v1 log with an
    /// Ed25519 key signs its checkpoints (Rekor's Go verifier requires this key id on every
    /// signature line). Its vkey states a key id C2SP parsers reject; it is for Rekor v1 notes.
    pub fn with_spki_key_id(
        name: &str,
        key: ed25519_dalek::VerifyingKey,
    ) -> Result<Ed25519Verifier, KeyError> {
        check_key_name(name)?;
        Ok(Ed25519Verifier {
            name: name.to_owned(),
            key_id: KeyId::for_spki(&ed25519_spki_der(&key)),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public key.
    pub fn key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }

    /// Whether `signature` is this key's Ed25519 signature of `text`.
    pub fn verify(&self, text: &str, signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        // Strict verification: every honest signature passes, and signatures under weak keys
        // or with non-canonical encodings do not.
        crate::ed25519::verify_strict(&self.key, text.as_bytes(), &signature)
    }
}

/// The DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410: a fixed 12-byte header, then
/// the 32-byte key).
pub fn ed25519_spki_der(key: &ed25519_dalek::VerifyingKey) -> Vec<u8> {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    der
}

/// An ECDSA P-256 note verifier key (type 0x02), with Rekor's key id rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaVerifier {
    name: String,
    key_id: KeyId,
    key: p256::ecdsa::VerifyingKey,
    spki_der: Vec<u8>,
}

impl EcdsaVerifier {
    /// The verifier for `key` under key name `name` (Rekor v1 uses the log's host name).
    pub fn new(name: &str, key: p256::ecdsa::VerifyingKey) -> Result<EcdsaVerifier, KeyError> {
        let spki_der = key
            .to_public_key_der()
            .map_err(|_| KeyError::EcdsaSpki)?
            .as_bytes()
            .to_vec();
        EcdsaVerifier::from_spki(name, &spki_der)
    }

    /// The verifier for a DER SubjectPublicKeyInfo; the key id is computed over these bytes.
    pub fn from_spki(name: &str, spki_der: &[u8]) -> Result<EcdsaVerifier, KeyError> {
        check_key_name(name)?;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der)
            .map_err(|_| KeyError::EcdsaSpki)?;
        Ok(EcdsaVerifier {
            name: name.to_owned(),
            key_id: KeyId::for_spki(spki_der),
            key,
            spki_der: spki_der.to_vec(),
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id, `SHA-256(DER SPKI)[:4]`.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public key.
    pub fn key(&self) -> &p256::ecdsa::VerifyingKey {
        &self.key
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Whether `signature` is this key's ASN.1 DER ECDSA-SHA256 signature of `text`.
    pub fn verify(&self, text: &str, signature: &[u8]) -> bool {
        let Ok(signature) = p256::ecdsa::DerSignature::from_bytes(signature) else {
            return false;
        };
        self.key.verify(text.as_bytes(), &signature).is_ok()
    }
}

/// A set of known verifier keys, at most one per (key name, key id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verifiers {
    verifiers: Vec<Verifier>,
}

impl Verifiers {
    /// The empty set.
    pub fn new() -> Verifiers {
        Verifiers::default()
    }

    /// A set of these verifiers; fails if two share a key name and key id.
    pub fn from_verifiers(
        verifiers: impl IntoIterator<Item = Verifier>,
    ) -> Result<Verifiers, KeyError> {
        let mut set = Verifiers::new();
        for verifier in verifiers {
            set.push(verifier)?;
        }
        Ok(set)
    }

    /// Adds a verifier; fails if one with the same key name and key id is already known,
    /// since a signature line could then not say which key made it.
    pub fn push(&mut self, verifier: Verifier) -> Result<(), KeyError> {
        if self.find(verifier.name(), verifier.key_id()).is_some() {
            return Err(KeyError::Duplicate {
                name: verifier.name().to_owned(),
                key_id: verifier.key_id(),
            });
        }
        self.verifiers.push(verifier);
        Ok(())
    }

    /// The verifier with this key name and key id, if known.
    pub fn find(&self, name: &str, key_id: KeyId) -> Option<&Verifier> {
        self.verifiers
            .iter()
            .find(|v| v.key_id() == key_id && v.name() == name)
    }

    /// The verifiers, in the order added.
    pub fn as_slice(&self) -> &[Verifier] {
        &self.verifiers
    }

    /// The number of verifiers.
    pub fn len(&self) -> usize {
        self.verifiers.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.verifiers.is_empty()
    }
}

/// Splits the `<name>+<key id>+<base64 key>` form shared by verifier keys and Go's private
/// keys into the checked name, the stated key id and the decoded key bytes; `format` is the
/// error for text without three fields.
fn split_key_text(text: &str, format: KeyError) -> Result<(&str, KeyId, Vec<u8>), KeyError> {
    // A name holds no '+', but base64 may: split off only the first two fields.
    let mut fields = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(encoded)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(format);
    };
    check_key_name(name)?;
    let stated = KeyId::from_hex(id_hex).ok_or(KeyError::KeyIdHex)?;
    let key = BASE64.decode(encoded).map_err(|_| KeyError::Base64)?;
    Ok((name, stated, key))
}

/// An Ed25519 note signer (type 0x01).
#[derive(Clone, Debug)]
pub struct Ed25519Signer {
    name: String,
    key_id: KeyId,
    key: ed25519_dalek::SigningKey,
}

impl Ed25519Signer {
    /// The signer for `key` under key name `name` (for a log, the name is its origin).
    pub fn new(name: &str, key: ed25519_dalek::SigningKey) -> Result<Ed25519Signer, KeyError> {
        check_key_name(name)?;
        Ok(Ed25519Signer {
            name: name.to_owned(),
            key_id: KeyId::for_key(name, SIGNATURE_TYPE_ED25519, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// The signer for `key` under key name `name` with Rekor v1's key id rule,
    /// `SHA-256(DER SubjectPublicKeyInfo)[:4]` (see [`Ed25519Verifier::with_spki_key_id`]).
    pub fn with_spki_key_id(
        name: &str,
        key: ed25519_dalek::SigningKey,
    ) -> Result<Ed25519Signer, KeyError> {
        check_key_name(name)?;
        Ok(Ed25519Signer {
            name: name.to_owned(),
            key_id: KeyId::for_spki(&ed25519_spki_der(&key.verifying_key())),
            key,
        })
    }

    /// Parses Go's private key encoding,
    /// `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ 32-byte seed)>`, checking the key id.
    pub fn from_private_key(text: &str) -> Result<Ed25519Signer, KeyError> {
        if text.len() > KEY_TEXT_BYTES_MAX {
            return Err(KeyError::TooLong {
                len: text.len(),
                max: KEY_TEXT_BYTES_MAX,
            });
        }
        let rest = text
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(KeyError::PrivateFormat)?;
        let (name, stated, key) = split_key_text(rest, KeyError::PrivateFormat)?;
        let (&key_type, seed) = key.split_first().ok_or(KeyError::MissingType)?;
        if key_type != SIGNATURE_TYPE_ED25519 {
            return Err(KeyError::UnsupportedType(key_type));
        }
        let seed: [u8; ED25519_KEY_LEN] = seed.try_into().map_err(|_| KeyError::Length {
            key_type,
            len: seed.len(),
            want: ED25519_KEY_LEN,
        })?;
        let signer = Ed25519Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&seed))?;
        if signer.key_id != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// Go's private key encoding of this signer. The result is secret.
    pub fn to_private_key(&self) -> String {
        let mut key = vec![SIGNATURE_TYPE_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{PRIVATE_KEY_PREFIX}{}+{}+{}",
            self.name,
            self.key_id,
            BASE64.encode(key)
        )
    }

    /// The private key. Secret.
    pub fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier::Ed25519(Ed25519Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        })
    }
}

impl NoteSigner for Ed25519Signer {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn sign(&self, text: &str) -> Vec<u8> {
        crate::ed25519::sign(&self.key, text.as_bytes())
            .to_bytes()
            .to_vec()
    }
}

/// An ECDSA P-256 note signer (type 0x02): RFC 6979 deterministic signatures, ASN.1 DER, with
/// Rekor's key id `SHA-256(DER SPKI)[:4]`.
#[derive(Clone, Debug)]
pub struct EcdsaSigner {
    name: String,
    key_id: KeyId,
    key: p256::ecdsa::SigningKey,
}

impl EcdsaSigner {
    /// The signer for `key` under key name `name` (Rekor v1 uses the log's host name).
    pub fn new(name: &str, key: p256::ecdsa::SigningKey) -> Result<EcdsaSigner, KeyError> {
        let verifier = EcdsaVerifier::new(name, *key.verifying_key())?;
        Ok(EcdsaSigner {
            name: name.to_owned(),
            key_id: verifier.key_id,
            key,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Result<Verifier, KeyError> {
        Ok(Verifier::Ecdsa(EcdsaVerifier::new(
            &self.name,
            *self.key.verifying_key(),
        )?))
    }
}

impl NoteSigner for EcdsaSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn sign(&self, text: &str) -> Vec<u8> {
        let signature: p256::ecdsa::DerSignature = self.key.sign(text.as_bytes());
        signature.as_bytes().to_vec()
    }
}

/// An Ed25519 public key from vkey material of type `key_type`.
pub(crate) fn ed25519_public_key(
    key_type: u8,
    material: &[u8],
) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    let bytes: &[u8; ED25519_KEY_LEN] = material.try_into().map_err(|_| KeyError::Length {
        key_type,
        len: material.len(),
        want: ED25519_KEY_LEN,
    })?;
    ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::Ed25519Point)
}

// ---- Cosignature keys (c2sp.org/tlog-cosignature) ----

/// A witness's cosigning key.
#[derive(Clone, Debug)]
pub struct Cosigner {
    name: String,
    key_id: KeyId,
    key: ed25519_dalek::SigningKey,
}

impl Cosigner {
    /// The cosigner named `name` (a schema-less URL, by convention) with this key.
    pub fn new(name: &str, key: ed25519_dalek::SigningKey) -> Result<Cosigner, KeyError> {
        check_key_name(name)?;
        Ok(Cosigner {
            name: name.to_owned(),
            key_id: key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The cosignature of a checkpoint note text at `timestamp` (POSIX seconds).
    pub fn sign(
        &self,
        checkpoint_text: &str,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.at(timestamp)?.sign(checkpoint_text),
        })
    }

    /// This cosigner fixed at `timestamp`, as a [`NoteSigner`] to pass to
    /// [`crate::note::Note::sign`].
    pub fn at(&self, timestamp: u64) -> Result<TimestampedCosigner<'_>, CosignatureError> {
        if timestamp > TIMESTAMP_MAX {
            return Err(CosignatureError::TimestampRange(timestamp));
        }
        Ok(TimestampedCosigner {
            cosigner: self,
            timestamp,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier::Cosignature(CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        })
    }
}

/// A [`Cosigner`] at a fixed timestamp: a [`NoteSigner`] whose signatures are cosignatures.
#[derive(Clone, Copy, Debug)]
pub struct TimestampedCosigner<'a> {
    cosigner: &'a Cosigner,
    timestamp: u64,
}

impl NoteSigner for TimestampedCosigner<'_> {
    fn name(&self) -> &str {
        &self.cosigner.name
    }

    fn key_id(&self) -> KeyId {
        self.cosigner.key_id
    }

    fn sign(&self, text: &str) -> Vec<u8> {
        let message = cosigned_message(text, self.timestamp);
        let signature = crate::ed25519::sign(&self.cosigner.key, message.as_bytes());
        let mut bytes = Vec::with_capacity(COSIGNATURE_BYTES_LEN);
        bytes.extend_from_slice(&self.timestamp.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        bytes
    }
}

/// A witness's cosignature verifier key (vkey type 0x04).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: KeyId,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureVerifier {
    /// The verifier for cosigner `name` with public key `key`.
    pub fn new(
        name: &str,
        key: ed25519_dalek::VerifyingKey,
    ) -> Result<CosignatureVerifier, KeyError> {
        check_key_name(name)?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public key.
    pub fn key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }

    /// Verifies a cosignature's signature bytes (after the key id) over a checkpoint note text
    /// and returns its timestamp.
    pub fn verify(&self, checkpoint_text: &str, signature: &[u8]) -> Result<u64, CosignatureError> {
        let timestamp = timestamp(signature)?;
        let invalid = || CosignatureError::Invalid {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        let ed25519 =
            ed25519_dalek::Signature::from_slice(&signature[8..]).map_err(|_| invalid())?;
        let message = cosigned_message(checkpoint_text, timestamp);
        if !crate::ed25519::verify_strict(&self.key, message.as_bytes(), &ed25519) {
            return Err(invalid());
        }
        Ok(timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{NOTE_BYTES_MAX, SIGNATURE_LINE_BYTES_MAX, SIGNATURES_MAX};
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha256};

    // The signed-note spec's example (c2sp.org/signed-note): its verifier key, and its note
    // text with the signature line that key verifies.
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    // Test vectors from golang.org/x/mod, sumdb/note/note_test.go (commit 02c99138),
    // Copyright 2019 The Go Authors, BSD-3-Clause licence.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn set(vkeys: &[&str]) -> Verifiers {
        Verifiers::from_verifiers(vkeys.iter().map(|k| Verifier::parse(k).unwrap())).unwrap()
    }

    fn ed25519_signer(name: &str, seed: u8) -> Ed25519Signer {
        Ed25519Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn ecdsa_signer(name: &str) -> EcdsaSigner {
        EcdsaSigner::new(
            name,
            p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn spec_example_verifies() {
        let verifiers = set(&[SPEC_VKEY]);
        let (note, verified) = open(SPEC_NOTE.as_bytes(), &verifiers).unwrap();
        assert_eq!(note.text(), "This is an example message.\n");
        assert_eq!(verified.len(), 1);
        assert_eq!(verified[0].verifier.name(), "example.com/foo");
        assert_eq!(verified[0].verifier.key_id().to_string(), "530d903a");
        assert_eq!(verified[0].timestamp(), None);
        assert_eq!(note.format().unwrap(), SPEC_NOTE);
    }

    #[test]
    fn go_vectors_verify_and_sign() {
        let peter = Verifier::parse(PETER_VKEY).unwrap();
        assert_eq!(peter.to_vkey(), PETER_VKEY);
        let signer = Ed25519Signer::from_private_key(PETER_SKEY).unwrap();
        assert_eq!(signer.to_private_key(), PETER_SKEY);
        assert_eq!(signer.verifier(), peter);

        // Go's TestSign: the signed message is pinned.
        let mut note = Note::new(GO_TEXT).unwrap();
        note.sign(&signer).unwrap();
        let want = format!("{GO_TEXT}\n{PETER_SIG}");
        assert_eq!(note.format().unwrap(), want);
        // Re-signing replaces the line rather than adding a second one.
        note.sign(&signer).unwrap();
        assert_eq!(note.format().unwrap(), want);

        // Go's TestOpen: one known key, one unknown.
        let message = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let peter_only = set(&[PETER_VKEY]);
        let (note, verified) = open(message.as_bytes(), &peter_only).unwrap();
        assert_eq!(note.text(), GO_TEXT);
        assert_eq!(note.signatures().len(), 2);
        assert_eq!(verified.len(), 1);
        assert_eq!(
            verified[0].signature.key_id,
            KeyId([0xc7, 0x4f, 0x20, 0xa3])
        );
        let both = set(&[PETER_VKEY, ENOCH_VKEY]);
        assert_eq!(open(message.as_bytes(), &both).unwrap().1.len(), 2);
        assert_eq!(
            open(message.as_bytes(), &Verifiers::new()).unwrap_err(),
            NoteError::NoKnownSignature
        );

        // Duplicated signature lines are verified and reported once.
        let doubled = format!("{GO_TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(open(doubled.as_bytes(), &peter_only).unwrap().1.len(), 1);

        // Go's corrupted signature: the known key fails, so the note is rejected.
        let corrupted = format!("{GO_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(
            open(corrupted.as_bytes(), &peter_only),
            Err(NoteError::SignatureInvalid { .. })
        ));
    }

    #[test]
    fn go_malformed_messages_are_rejected() {
        let peter_only = set(&[PETER_VKEY]);
        let bad = [
            GO_TEXT.to_owned(),
            format!("{GO_TEXT}\n"),
            format!("{GO_TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{GO_TEXT}\n{PETER_SIG}"),
            format!(
                "{GO_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{GO_TEXT}\n{PETER_SIG}Unexpected line.\n"),
        ];
        for message in &bad {
            assert!(
                open(message.as_bytes(), &peter_only).is_err(),
                "accepted {message:?}"
            );
        }
        let mut not_utf8 = vec![0xff];
        not_utf8.extend_from_slice(format!("{GO_TEXT}\n{PETER_SIG}").as_bytes());
        assert_eq!(Note::parse(&not_utf8), Err(NoteError::NotUtf8));
    }

    #[test]
    fn go_vkey_manglings_are_rejected() {
        let bytes = PETER_VKEY.as_bytes();
        for i in 0..bytes.len() {
            let mut mangled = bytes.to_vec();
            mangled[i] = mangled[i].wrapping_add(1);
            if let Ok(text) = std::str::from_utf8(&mangled) {
                assert!(Verifier::parse(text).is_err(), "accepted {text}");
            }
        }
        for end in 1..bytes.len() {
            assert!(Verifier::parse(&PETER_VKEY[..end]).is_err());
        }
        // Wrong key length with an adjusted key id (Go's vector; its last base64 quantum has
        // non-zero trailing bits, which this decoder refuses before the length is seen), and an
        // unknown type with an adjusted id.
        assert_eq!(
            Verifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            ),
            Err(KeyError::Base64)
        );
        let material = [7u8; 33];
        let id = KeyId::for_key("PeterNeumann", SIGNATURE_TYPE_ED25519, &material);
        let long_key = BASE64.encode([&[SIGNATURE_TYPE_ED25519][..], &material].concat());
        assert!(matches!(
            Verifier::parse(&format!("PeterNeumann+{id}+{long_key}")),
            Err(KeyError::Length { len: 33, .. })
        ));
        assert_eq!(
            Verifier::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(KeyError::UnsupportedType(0x65))
        );
        // Uppercase hex key ids are not the canonical form.
        assert_eq!(
            Verifier::parse(&PETER_VKEY.replace("c74f20a3", "C74F20A3")),
            Err(KeyError::KeyIdHex)
        );
        assert!(matches!(
            Verifier::parse(&PETER_VKEY.replace("c74f20a3", "c74f20a4")),
            Err(KeyError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn private_key_manglings_are_rejected() {
        for end in 1..PETER_SKEY.len() {
            assert!(Ed25519Signer::from_private_key(&PETER_SKEY[..end]).is_err());
        }
        assert!(matches!(
            Ed25519Signer::from_private_key(&PETER_SKEY.replace("c74f20a3", "c74f20a4")),
            Err(KeyError::KeyIdMismatch { .. })
        ));
        assert_eq!(
            Ed25519Signer::from_private_key(&PETER_SKEY.replace("PRIVATE", "PUBLIC")).unwrap_err(),
            KeyError::PrivateFormat
        );
    }

    #[test]
    fn structural_errors_are_rejected() {
        let signer = ed25519_signer("log.example", 1);
        let mut note = Note::new("a\n").unwrap();
        note.sign(&signer).unwrap();
        let good = note.format().unwrap();

        assert_eq!(
            Note::parse(good.trim_end_matches('\n').as_bytes()),
            Err(NoteError::MissingFinalNewline)
        );
        // A blank line after the signatures moves the split point: no signatures remain.
        assert_eq!(
            Note::parse(format!("{good}\n").as_bytes()),
            Err(NoteError::NoSignatures)
        );
        assert_eq!(Note::parse(b"a\nb\n"), Err(NoteError::MissingBlankLine));
        assert_eq!(Note::parse(b""), Err(NoteError::MissingFinalNewline));
        assert_eq!(
            Note::parse(good.replacen("a\n", "a\r\n", 1).as_bytes()),
            Err(NoteError::ControlCharacter {
                line: 1,
                code: 0x0d
            })
        );
        assert_eq!(
            Note::new("tab\there\n"),
            Err(NoteError::ControlCharacter {
                line: 1,
                code: 0x09
            })
        );
        assert_eq!(Note::new("no newline"), Err(NoteError::MissingFinalNewline));
        // Truncations never parse to something else with a valid signature.
        let verifiers = Verifiers::from_verifiers([signer.verifier()]).unwrap();
        for end in 0..good.len() {
            if good.is_char_boundary(end) {
                assert!(open(&good.as_bytes()[..end], &verifiers).is_err());
            }
        }
        // Non-ASCII text is fine.
        let mut note = Note::new("h\u{e9}llo \u{1f600}\n").unwrap();
        note.sign(&signer).unwrap();
        open(note.format().unwrap().as_bytes(), &verifiers).unwrap();
        assert_eq!(
            Note::new("x\n").unwrap().format(),
            Err(NoteError::NoSignatures)
        );
    }

    #[test]
    fn size_and_count_limits() {
        let oversized = vec![b'a'; NOTE_BYTES_MAX + 1];
        assert_eq!(
            Note::parse(&oversized),
            Err(NoteError::TooLarge {
                len: NOTE_BYTES_MAX + 1,
                max: NOTE_BYTES_MAX
            })
        );
        let signer = ed25519_signer("log.example", 1);
        let verifiers = Verifiers::from_verifiers([signer.verifier()]).unwrap();
        let mut note = Note::new("text\n").unwrap();
        note.sign(&signer).unwrap();
        let line = note.signatures()[0].to_line();

        // Up to the limit of lines (16 required by the spec, 100 here) is accepted.
        let message = format!("text\n\n{}", line.repeat(SIGNATURES_MAX));
        assert_eq!(open(message.as_bytes(), &verifiers).unwrap().1.len(), 1);
        let message = format!("text\n\n{}", line.repeat(SIGNATURES_MAX + 1));
        assert_eq!(
            Note::parse(message.as_bytes()),
            Err(NoteError::TooManySignatures {
                max: SIGNATURES_MAX
            })
        );
        // Adding signatures through the API hits the same limit.
        let mut note = Note::new("text\n").unwrap();
        for seed in 0..SIGNATURES_MAX {
            note.sign(&ed25519_signer(&format!("k{seed}"), 1)).unwrap();
        }
        assert_eq!(
            note.sign(&ed25519_signer("one-more", 1)),
            Err(NoteError::TooManySignatures {
                max: SIGNATURES_MAX
            })
        );
        assert_eq!(note.signatures().len(), SIGNATURES_MAX);
        // And the size computed without formatting is the real one.
        assert_eq!(note.encoded_len(), note.format().unwrap().len());
    }

    #[test]
    fn unknown_keys_and_types_are_ignored_and_known_failures_reject() {
        let log = ed25519_signer("log.example", 1);
        let verifiers = Verifiers::from_verifiers([log.verifier()]).unwrap();
        let mut note = Note::new("origin\n1\nroot\n").unwrap();
        note.sign(&log).unwrap();
        // A future signature type from an unknown key, with a large signature.
        note.add_signature(NoteSignature {
            name: "pq.example".to_owned(),
            key_id: KeyId([0xff, 1, 2, 3]),
            signature: vec![9; 2420],
        })
        .unwrap();
        // Same name as the known key but a different id: not the known key, ignored.
        note.add_signature(NoteSignature {
            name: "log.example".to_owned(),
            key_id: KeyId([0, 0, 0, 0]),
            signature: vec![1; 64],
        })
        .unwrap();
        let text = note.format().unwrap();
        let (_, verified) = open(text.as_bytes(), &verifiers).unwrap();
        assert_eq!(verified.len(), 1);

        // The known key's signature over a different text fails: the whole note is rejected.
        let forged = text.replacen("origin", "0rigin", 1);
        assert_eq!(
            open(forged.as_bytes(), &verifiers).unwrap_err(),
            NoteError::SignatureInvalid {
                name: "log.example".to_owned(),
                key_id: log.key_id()
            }
        );
        // A different key with the same name (so a different id) does not verify it.
        let other = ed25519_signer("log.example", 2);
        let wrong = Verifiers::from_verifiers([other.verifier()]).unwrap();
        assert_eq!(
            open(text.as_bytes(), &wrong).unwrap_err(),
            NoteError::NoKnownSignature
        );
        // A verifier under a wrong key but the right name and id is a failing known key.
        let impostor = Verifier::Ed25519(Ed25519Verifier {
            name: "log.example".to_owned(),
            key_id: log.key_id(),
            key: other.key.verifying_key(),
        });
        let impostors = Verifiers::from_verifiers([impostor]).unwrap();
        assert!(matches!(
            open(text.as_bytes(), &impostors),
            Err(NoteError::SignatureInvalid { .. })
        ));
    }

    #[test]
    fn ecdsa_signatures_use_rekor_key_ids() {
        let signer = ecdsa_signer("rekor.example");
        let verifier = signer.verifier().unwrap();
        let Verifier::Ecdsa(ecdsa) = &verifier else {
            panic!("not an ECDSA verifier")
        };
        assert_eq!(verifier.key_id(), KeyId::for_spki(ecdsa.spki_der()));
        assert_eq!(
            ecdsa.key_id(),
            KeyId::from_digest(&Sha256::digest(ecdsa.spki_der()))
        );
        // The vkey round-trips and is type 0x02 followed by the DER SPKI.
        let vkey = verifier.to_vkey();
        assert_eq!(Verifier::parse(&vkey).unwrap(), verifier);
        let encoded = vkey.rsplit_once('+').unwrap().1;
        assert_eq!(BASE64.decode(encoded).unwrap()[0], SIGNATURE_TYPE_ECDSA);

        let text = "rekor.example - 1234\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let mut note = Note::new(text).unwrap();
        note.sign(&signer).unwrap();
        // The signature is DER: a SEQUENCE of two INTEGERs.
        assert_eq!(note.signatures()[0].signature[0], 0x30);
        let verifiers = Verifiers::from_verifiers([verifier]).unwrap();
        let formatted = note.format().unwrap();
        open(formatted.as_bytes(), &verifiers).unwrap();
        let tampered = formatted.replacen('5', "6", 1);
        assert!(matches!(
            open(tampered.as_bytes(), &verifiers),
            Err(NoteError::SignatureInvalid { .. })
        ));
        // A fixed-size (r ‖ s) signature is not DER and does not verify.
        let der = p256::ecdsa::DerSignature::from_bytes(&note.signatures()[0].signature).unwrap();
        let fixed = p256::ecdsa::Signature::from_der(der.as_bytes()).unwrap();
        assert!(!verifiers.as_slice()[0].verify(text, fixed.to_bytes().as_slice()));
    }

    #[test]
    fn ed25519_with_rekor_v1_key_ids() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let spki = ed25519_spki_der(&key.verifying_key());
        // RFC 8410 SPKI: 44 bytes, the key at the end.
        assert_eq!(spki.len(), 44);
        assert_eq!(&spki[12..], key.verifying_key().as_bytes());
        let signer = Ed25519Signer::with_spki_key_id("example.com/log", key.clone()).unwrap();
        assert_eq!(signer.key_id(), KeyId::for_spki(&spki));
        let text = "example.com/log - 42\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let mut note = Note::new(text).unwrap();
        note.sign(&signer).unwrap();
        let formatted = note.format().unwrap();
        let rekor =
            Ed25519Verifier::with_spki_key_id("example.com/log", key.verifying_key()).unwrap();
        assert_eq!(rekor.key_id(), signer.key_id());
        let verifiers = Verifiers::from_verifiers([Verifier::Ed25519(rekor)]).unwrap();
        open(formatted.as_bytes(), &verifiers).unwrap();
        // The C2SP verifier for the same name and key has another key id: the line is unknown.
        let c2sp = Ed25519Verifier::new("example.com/log", key.verifying_key()).unwrap();
        assert_ne!(c2sp.key_id(), signer.key_id());
        let verifiers = Verifiers::from_verifiers([Verifier::Ed25519(c2sp)]).unwrap();
        assert!(open(formatted.as_bytes(), &verifiers).is_err());
        // Names with spaces are refused, as for every key.
        assert!(Ed25519Signer::with_spki_key_id("example.com - 42", key).is_err());
    }

    #[test]
    fn ecdsa_interop_with_openssl() {
        // Generated with Python's pyca/cryptography (OpenSSL): the P-256 key with scalar 32
        // bytes of 7, its DER SPKI as a type 0x02 vkey, and a random-k DER signature.
        const VKEY: &str = "rekor.example+ce97ec20+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABB4YUy/UdUwC8wQdnHXOszuD/9gax85P6ILMscmLxYlupGwxHE4v9A3ZajZT5uRURdMt/khuztdcepDGoYiBwKM=";
        const NOTE: &str = "rekor.example - 1234\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} rekor.example zpfsIDBEAiBGqniY3ojKw8Rcd2hJMNkv1/HEcrqse6stGprEjWFDpwIgQ8mW7rVK45X4tAovACXhVx+gm6jloAfKgOihgdVr5oo=\n";
        let verifier = Verifier::parse(VKEY).unwrap();
        assert_eq!(verifier.to_vkey(), VKEY);
        // Our signer for the same key has the same vkey.
        assert_eq!(ecdsa_signer("rekor.example").verifier().unwrap(), verifier);
        let verifiers = Verifiers::from_verifiers([verifier]).unwrap();
        open(NOTE.as_bytes(), &verifiers).unwrap();
    }

    #[test]
    fn verifier_sets_reject_ambiguous_keys() {
        let a = ed25519_signer("a.example", 1).verifier();
        let mut verifiers = Verifiers::new();
        verifiers.push(a.clone()).unwrap();
        assert!(matches!(verifiers.push(a), Err(KeyError::Duplicate { .. })));
        assert_eq!(verifiers.len(), 1);
        assert!(!verifiers.is_empty());
    }

    #[test]
    fn key_names_are_checked() {
        assert_eq!(check_key_name(""), Err(KeyNameError::Empty));
        assert_eq!(check_key_name("a+b"), Err(KeyNameError::Plus));
        assert_eq!(check_key_name("a b"), Err(KeyNameError::Whitespace));
        assert_eq!(check_key_name("a\u{2003}b"), Err(KeyNameError::Whitespace));
        assert_eq!(check_key_name("a\u{7f}b"), Err(KeyNameError::Control));
        assert_eq!(check_key_name("example.com/log-1"), Ok(()));
        assert!(matches!(
            Ed25519Signer::new("a b", ed25519_dalek::SigningKey::from_bytes(&[1; 32])),
            Err(KeyError::Name(KeyNameError::Whitespace))
        ));
        let mut note = Note::new("x\n").unwrap();
        assert!(matches!(
            note.add_signature(NoteSignature {
                name: "a+b".to_owned(),
                key_id: KeyId::default(),
                signature: vec![1],
            }),
            Err(NoteError::KeyName { .. })
        ));
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        // Lines of printable characters (including non-ASCII and the em dash), some blank.
        proptest::collection::vec("[ -~\u{a0}-\u{2fff}]{0,20}", 1..6)
            .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(
            text in text_strategy(),
            names in proptest::collection::btree_set("[a-z0-9./-]{1,12}", 1..4),
            seed in any::<u8>(),
        ) {
            let mut note = Note::new(&text).unwrap();
            let signers: Vec<Ed25519Signer> =
                names.iter().map(|n| ed25519_signer(n, seed)).collect();
            for signer in &signers {
                note.sign(signer).unwrap();
            }
            let formatted = note.format().unwrap();
            let parsed = Note::parse(formatted.as_bytes()).unwrap();
            prop_assert_eq!(&parsed, &note);
            prop_assert_eq!(parsed.text(), text.as_str());
            let verifiers =
                Verifiers::from_verifiers(signers.iter().map(Ed25519Signer::verifier)).unwrap();
            prop_assert_eq!(parsed.verify(&verifiers).unwrap().len(), signers.len());
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Note::parse(&bytes);
        }
    }

    #[test]
    fn signature_line_errors_name_the_problem() {
        let signer = ed25519_signer("log.example", 1);
        let mut note = Note::new("hello\n").unwrap();
        note.sign(&signer).unwrap();
        let good = note.format().unwrap();
        let line = good.strip_prefix("hello\n\n").unwrap();
        let with = |second: &str| format!("hello\n\n{line}{second}");

        let err = Note::parse(with("\u{2014} a+b AAAAAAAA\n").as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "signature line 2: key name contains '+'");
        assert_eq!(
            Note::parse(with("\u{2014} a\u{a0}b AAAAAAAA\n").as_bytes()).unwrap_err(),
            NoteError::KeyName {
                signature: 2,
                problem: KeyNameError::Whitespace
            }
        );
        assert_eq!(
            Note::parse(with("\u{2014}  AAAAAAAA\n").as_bytes()).unwrap_err(),
            NoteError::KeyName {
                signature: 2,
                problem: KeyNameError::Empty
            }
        );
        assert_eq!(
            Note::parse(with("- name AAAAAAAA\n").as_bytes()).unwrap_err(),
            NoteError::SignaturePrefix { signature: 2 }
        );
        assert_eq!(
            Note::parse(with("\u{2014} name\n").as_bytes()).unwrap_err(),
            NoteError::SignatureMissing { signature: 2 }
        );
        assert_eq!(
            Note::parse(with("\u{2014} name AAAA!AAA\n").as_bytes()).unwrap_err(),
            NoteError::SignatureBase64 { signature: 2 }
        );
        // Non-canonical padding and trailing bits are not base64 here.
        assert_eq!(
            Note::parse(with("\u{2014} name AAAAAAB=\n").as_bytes()).unwrap_err(),
            NoteError::SignatureBase64 { signature: 2 }
        );
        assert_eq!(
            Note::parse(with("\u{2014} name AAAAAA==\n").as_bytes()).unwrap_err(),
            NoteError::SignatureTooShort {
                signature: 2,
                len: 4
            }
        );
        let long = format!("\u{2014} name {}\n", "A".repeat(SIGNATURE_LINE_BYTES_MAX));
        assert!(matches!(
            Note::parse(with(&long).as_bytes()).unwrap_err(),
            NoteError::SignatureLineTooLong { signature: 2, .. }
        ));
    }

    #[test]
    fn signature_blocks_parse() {
        let lines = format!("{PETER_SIG}{ENOCH_SIG}");
        let parsed = NoteSignature::parse_lines(&lines).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed
                .iter()
                .map(NoteSignature::to_line)
                .collect::<String>(),
            lines
        );
        assert_eq!(
            NoteSignature::parse_lines(""),
            Err(NoteError::MissingFinalNewline)
        );
        assert_eq!(
            NoteSignature::parse_lines(&lines[..lines.len() - 1]),
            Err(NoteError::MissingFinalNewline)
        );
    }
}
