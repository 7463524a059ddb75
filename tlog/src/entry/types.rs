//! The field types shared by every entry kind: digests, raw signatures, and the Rekor v2
//! verifier (a DER public key or certificate with its `PublicKeyDetails`).
//!
//! Every type here is validated when it is built, so an entry made of them is well formed by
//! construction; the checks are the ones Rekor makes before logging (lengths, allow-lists), plus
//! bounds of our own.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::{InputError, KEY_DER_BYTES_MAX, SIGNATURE_BYTES_MAX};

/// A digest algorithm that may appear in an entry.
///
/// The set is Rekor's: `sha256`, `sha384` and `sha512` in hashedrekord v0.0.1
/// (`hashedrekord_v0_0_1_schema.json`), and `SHA2_256`, `SHA2_384` and `SHA2_512` of
/// protobuf-specs `HashAlgorithm` in v0.0.2 (the SHA-3 values there are deprecated, LMS only,
/// and no allowed key uses them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-256 (32-byte digests).
    Sha256,
    /// SHA-384 (48-byte digests).
    Sha384,
    /// SHA-512 (64-byte digests).
    Sha512,
}

impl HashAlgorithm {
    /// The length in bytes of this algorithm's digests.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The name in Rekor v1 entries: `sha256`, `sha384` or `sha512`.
    pub fn rekor_v1_name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// The protobuf-specs `HashAlgorithm` name used by Rekor v2: `SHA2_256`, `SHA2_384` or
    /// `SHA2_512`.
    pub fn protobuf_name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA2_256",
            HashAlgorithm::Sha384 => "SHA2_384",
            HashAlgorithm::Sha512 => "SHA2_512",
        }
    }

    /// The algorithm with Rekor v1 name `name` (exact, lowercase, as Rekor's schema enum).
    pub fn from_rekor_v1_name(name: &str) -> Option<HashAlgorithm> {
        [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|a| a.rekor_v1_name() == name)
    }

    /// The algorithm with protobuf name `name` (exact).
    pub fn from_protobuf_name(name: &str) -> Option<HashAlgorithm> {
        [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|a| a.protobuf_name() == name)
    }

    /// Hashes `data` with this algorithm.
    pub fn hash(self, data: &[u8]) -> Digest {
        let bytes = match self {
            HashAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha384 => Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha512 => Sha512::digest(data).to_vec(),
        };
        Digest {
            algorithm: self,
            bytes,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    /// The Rekor v1 name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rekor_v1_name())
    }
}

/// A digest together with its algorithm; the length always matches the algorithm.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: HashAlgorithm,
    bytes: Vec<u8>,
}

impl Digest {
    /// A digest from raw bytes, which must be exactly as long as `algorithm`'s output.
    pub fn new(algorithm: HashAlgorithm, bytes: &[u8]) -> Result<Digest, InputError> {
        Digest::new_field(algorithm, bytes, "digest")
    }

    /// A digest from lowercase hex, the encoding of Rekor v1 (`data.hash.value`, whose schema
    /// says "lower case hexadecimal"). Uppercase is refused rather than folded: Rekor would
    /// store it as sent, so folding it would give a different leaf than Rekor's.
    pub fn from_hex(algorithm: HashAlgorithm, text: &str) -> Result<Digest, InputError> {
        Digest::from_hex_field(algorithm, text, "digest")
    }

    /// SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> Digest {
        HashAlgorithm::Sha256.hash(data)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lowercase hex, as in Rekor v1 entries.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// Standard base64 with padding, as protobuf JSON writes `bytes` in Rekor v2 entries.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    pub(super) fn new_field(
        algorithm: HashAlgorithm,
        bytes: &[u8],
        field: &str,
    ) -> Result<Digest, InputError> {
        if bytes.len() != algorithm.digest_len() {
            return Err(InputError::DigestLength {
                field: field.to_owned(),
                algorithm,
                actual: bytes.len(),
                expected: algorithm.digest_len(),
            });
        }
        Ok(Digest {
            algorithm,
            bytes: bytes.to_vec(),
        })
    }

    pub(super) fn from_hex_field(
        algorithm: HashAlgorithm,
        text: &str,
        field: &str,
    ) -> Result<Digest, InputError> {
        let lowercase_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if !text.bytes().all(lowercase_hex) || !text.len().is_multiple_of(2) {
            return Err(InputError::Hex {
                field: field.to_owned(),
            });
        }
        // Length is checked on the text first so that long input is never decoded.
        if text.len() != 2 * algorithm.digest_len() {
            return Err(InputError::DigestLength {
                field: field.to_owned(),
                algorithm,
                actual: text.len() / 2,
                expected: algorithm.digest_len(),
            });
        }
        let bytes = hex::decode(text).map_err(|_| InputError::Hex {
            field: field.to_owned(),
        })?;
        Digest::new_field(algorithm, &bytes, field)
    }

    pub(super) fn from_base64_field(
        algorithm: HashAlgorithm,
        text: &str,
        field: &str,
    ) -> Result<Digest, InputError> {
        let bytes = decode_base64(text, algorithm.digest_len(), field)?;
        Digest::new_field(algorithm, &bytes, field)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({}:{})", self.algorithm, self.to_hex())
    }
}

/// The raw bytes of a signature (ASN.1 DER for ECDSA, 64 bytes for Ed25519ph, PKCS#1 for RSA):
/// non-empty and at most [`SIGNATURE_BYTES_MAX`] long. Not verified here.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignatureBytes(Vec<u8>);

impl SignatureBytes {
    /// Checks the length bounds.
    pub fn new(bytes: &[u8]) -> Result<SignatureBytes, InputError> {
        SignatureBytes::new_field(bytes, "signature")
    }

    /// Decodes standard base64 with padding (RFC 4648 §4); the encoding must be canonical, so
    /// that re-encoding gives back exactly `text` (Rekor v1 DSSE entries store the text).
    pub fn from_base64(text: &str) -> Result<SignatureBytes, InputError> {
        SignatureBytes::from_base64_field(text, "signature")
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Standard base64 with padding.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    pub(super) fn new_field(bytes: &[u8], field: &str) -> Result<SignatureBytes, InputError> {
        check_len(bytes.len(), SIGNATURE_BYTES_MAX, field)?;
        Ok(SignatureBytes(bytes.to_vec()))
    }

    pub(super) fn from_base64_field(text: &str, field: &str) -> Result<SignatureBytes, InputError> {
        let bytes = decode_base64(text, SIGNATURE_BYTES_MAX, field)?;
        SignatureBytes::new_field(&bytes, field)
    }
}

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureBytes({})", self.to_base64())
    }
}

/// A signing algorithm a Rekor v2 verifier may declare: protobuf-specs `PublicKeyDetails`,
/// restricted to what rekor-tiles accepts.
///
/// The allow-list is rekor-tiles' `AllowedClientSigningAlgorithms`
/// (`internal/algorithmregistry/algorithmregistry.go`), plus pure [`KeyDetails::Ed25519`],
/// which only the deprecated dsse v0.0.2 could carry: a hashedrekord signs a digest, and pure
/// Ed25519 has none, so hashedrekord refuses it as rekor-tiles does. Deprecated values
/// (`PKIX_RSA_PKCS1V5`, `PKIX_ECDSA_P384_SHA_256`, ...), RSA-PSS, LMS and ML-DSA are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyDetails {
    /// `PKIX_ECDSA_P256_SHA_256`: ECDSA on P-256 over a SHA-256 digest.
    EcdsaP256Sha256,
    /// `PKIX_ECDSA_P384_SHA_384`: ECDSA on P-384 over a SHA-384 digest.
    EcdsaP384Sha384,
    /// `PKIX_ECDSA_P521_SHA_512`: ECDSA on P-521 over a SHA-512 digest.
    EcdsaP521Sha512,
    /// `PKIX_ED25519`: pure Ed25519 (no prehash; dsse v0.0.2 only).
    Ed25519,
    /// `PKIX_ED25519_PH`: Ed25519ph over a SHA-512 digest.
    Ed25519Ph,
    /// `PKIX_RSA_PKCS1V15_2048_SHA256`: RSA-2048, PKCS#1 v1.5, SHA-256.
    Rsa2048Pkcs1v15Sha256,
    /// `PKIX_RSA_PKCS1V15_3072_SHA256`: RSA-3072, PKCS#1 v1.5, SHA-256.
    Rsa3072Pkcs1v15Sha256,
    /// `PKIX_RSA_PKCS1V15_4096_SHA256`: RSA-4096, PKCS#1 v1.5, SHA-256.
    Rsa4096Pkcs1v15Sha256,
}

impl KeyDetails {
    /// Every allowed value.
    pub const ALL: [KeyDetails; 8] = [
        KeyDetails::EcdsaP256Sha256,
        KeyDetails::EcdsaP384Sha384,
        KeyDetails::EcdsaP521Sha512,
        KeyDetails::Ed25519,
        KeyDetails::Ed25519Ph,
        KeyDetails::Rsa2048Pkcs1v15Sha256,
        KeyDetails::Rsa3072Pkcs1v15Sha256,
        KeyDetails::Rsa4096Pkcs1v15Sha256,
    ];

    /// The protobuf-specs enum value name, as protobuf JSON writes it.
    pub fn protobuf_name(self) -> &'static str {
        match self {
            KeyDetails::EcdsaP256Sha256 => "PKIX_ECDSA_P256_SHA_256",
            KeyDetails::EcdsaP384Sha384 => "PKIX_ECDSA_P384_SHA_384",
            KeyDetails::EcdsaP521Sha512 => "PKIX_ECDSA_P521_SHA_512",
            KeyDetails::Ed25519 => "PKIX_ED25519",
            KeyDetails::Ed25519Ph => "PKIX_ED25519_PH",
            KeyDetails::Rsa2048Pkcs1v15Sha256 => "PKIX_RSA_PKCS1V15_2048_SHA256",
            KeyDetails::Rsa3072Pkcs1v15Sha256 => "PKIX_RSA_PKCS1V15_3072_SHA256",
            KeyDetails::Rsa4096Pkcs1v15Sha256 => "PKIX_RSA_PKCS1V15_4096_SHA256",
        }
    }

    /// The allowed value named `name` (exact protobuf enum name).
    pub fn from_protobuf_name(name: &str) -> Result<KeyDetails, InputError> {
        KeyDetails::from_protobuf_name_field(name, "keyDetails")
    }

    /// The digest the signature is computed over, as sigstore/sigstore's
    /// `GetAlgorithmDetails(...).GetHashType()`; `None` for pure Ed25519.
    pub fn hash_algorithm(self) -> Option<HashAlgorithm> {
        match self {
            KeyDetails::EcdsaP256Sha256
            | KeyDetails::Rsa2048Pkcs1v15Sha256
            | KeyDetails::Rsa3072Pkcs1v15Sha256
            | KeyDetails::Rsa4096Pkcs1v15Sha256 => Some(HashAlgorithm::Sha256),
            KeyDetails::EcdsaP384Sha384 => Some(HashAlgorithm::Sha384),
            KeyDetails::EcdsaP521Sha512 | KeyDetails::Ed25519Ph => Some(HashAlgorithm::Sha512),
            KeyDetails::Ed25519 => None,
        }
    }

    pub(super) fn from_protobuf_name_field(
        name: &str,
        field: &str,
    ) -> Result<KeyDetails, InputError> {
        KeyDetails::ALL
            .into_iter()
            .find(|k| k.protobuf_name() == name)
            .ok_or_else(|| InputError::UnknownKeyDetails {
                field: field.to_owned(),
                value: truncated(name),
            })
    }
}

impl fmt::Display for KeyDetails {
    /// The protobuf name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protobuf_name())
    }
}

/// The key of a Rekor v2 verifier: a DER public key or a DER certificate (the `oneof verifier`
/// of rekor-tiles `Verifier`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifierKey {
    /// `publicKey.rawBytes`: a DER SubjectPublicKeyInfo.
    PublicKey(Vec<u8>),
    /// `x509Certificate.rawBytes`: a DER X.509 certificate.
    X509Certificate(Vec<u8>),
}

impl VerifierKey {
    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        match self {
            VerifierKey::PublicKey(der) | VerifierKey::X509Certificate(der) => der,
        }
    }
}

/// A Rekor v2 `Verifier`: the key (or certificate) and the algorithm it signs with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Verifier {
    key: VerifierKey,
    key_details: KeyDetails,
}

impl Verifier {
    /// A verifier from a DER SubjectPublicKeyInfo (non-empty, at most [`KEY_DER_BYTES_MAX`]).
    pub fn public_key(der: &[u8], key_details: KeyDetails) -> Result<Verifier, InputError> {
        check_len(der.len(), KEY_DER_BYTES_MAX, "verifier.publicKey.rawBytes")?;
        Ok(Verifier {
            key: VerifierKey::PublicKey(der.to_vec()),
            key_details,
        })
    }

    /// A verifier from a DER certificate (non-empty, at most [`KEY_DER_BYTES_MAX`]).
    pub fn x509_certificate(der: &[u8], key_details: KeyDetails) -> Result<Verifier, InputError> {
        check_len(
            der.len(),
            KEY_DER_BYTES_MAX,
            "verifier.x509Certificate.rawBytes",
        )?;
        Ok(Verifier {
            key: VerifierKey::X509Certificate(der.to_vec()),
            key_details,
        })
    }

    /// The key or certificate.
    pub fn key(&self) -> &VerifierKey {
        &self.key
    }

    /// The declared signing algorithm.
    pub fn key_details(&self) -> KeyDetails {
        self.key_details
    }

    /// Protobuf JSON of the message (fields with their JSON names, `bytes` as base64).
    pub(super) fn to_json(&self) -> serde_json::Value {
        let (name, der) = match &self.key {
            VerifierKey::PublicKey(der) => ("publicKey", der),
            VerifierKey::X509Certificate(der) => ("x509Certificate", der),
        };
        let mut object = serde_json::Map::new();
        object.insert(
            name.to_owned(),
            serde_json::json!({ "rawBytes": BASE64.encode(der) }),
        );
        object.insert(
            "keyDetails".to_owned(),
            serde_json::Value::String(self.key_details.protobuf_name().to_owned()),
        );
        serde_json::Value::Object(object)
    }
}

/// A Rekor v2 `Signature` message: signature bytes and the verifier that checks them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The raw signature (`content`).
    pub content: SignatureBytes,
    /// The key or certificate, with its algorithm (`verifier`).
    pub verifier: Verifier,
}

impl Signature {
    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "content": self.content.to_base64(),
            "verifier": self.verifier.to_json(),
        })
    }
}

/// Refuses empty values and values longer than `max`.
pub(super) fn check_len(len: usize, max: usize, field: &str) -> Result<(), InputError> {
    if len == 0 {
        return Err(InputError::Empty {
            field: field.to_owned(),
        });
    }
    if len > max {
        return Err(InputError::TooLong {
            field: field.to_owned(),
            actual: len,
            max,
        });
    }
    Ok(())
}

/// Decodes canonical standard base64 with padding, refusing (before decoding) text that would
/// decode to more than `decoded_max` bytes.
pub(super) fn decode_base64(
    text: &str,
    decoded_max: usize,
    field: &str,
) -> Result<Vec<u8>, InputError> {
    let decoded_upper_bound = text.len() / 4 * 3;
    if decoded_upper_bound > decoded_max.saturating_add(2) {
        return Err(InputError::TooLong {
            field: field.to_owned(),
            actual: decoded_upper_bound,
            max: decoded_max,
        });
    }
    // The STANDARD engine requires canonical padding and zero trailing bits, so the text is the
    // only encoding of its bytes.
    BASE64.decode(text).map_err(|_| InputError::Base64 {
        field: field.to_owned(),
    })
}

/// A value from the input, shortened for an error message.
pub(super) fn truncated(value: &str) -> String {
    value.chars().take(64).collect()
}
