//! Verification of client signatures: the one place the write path checks them.
//!
//! A verifier is a DER SubjectPublicKeyInfo or a DER X.509 certificate (only its SPKI is used;
//! the certificate is parsed, not validated: Rekor does not check chains either) together with
//! the [`KeyDetails`] the client declared. [`PublicKey::new`] parses the key once, and refuses
//! it unless its actual type and size are exactly what `keyDetails` declares. Two checks then:
//!
//! - [`PublicKey::verify_prehashed`]: the signature is over a *digest* the server is given but
//!   cannot recompute (hashedrekord signs the artifact, which the log never sees). ECDSA
//!   signatures are ASN.1 DER over the digest; Ed25519ph is RFC 8032 §5.1 with an empty context
//!   over the SHA-512 digest; RSA is PKCS#1 v1.5 with the SHA-256 DigestInfo of the digest.
//! - [`PublicKey::verify_message`]: the signature is over the message itself (DSSE's PAE), for
//!   the same key types plus pure Ed25519; the message is hashed with the declared algorithm.
//!
//! Which crate does the work:
//!
//! - ECDSA P-256/P-384/P-521 and RSA PKCS#1 v1.5: aws-lc-rs. Its `verify_digest_sig` takes a
//!   digest imported with `Digest::import_less_safe`, so prehashed verification needs no
//!   hand-written padding or curve code, and it verifies P-256 about 5 times faster than the
//!   pure-Rust p256 crate on our machines (`benches/verify.rs`).
//! - Ed25519 and Ed25519ph: ed25519-dalek, strict verification (canonical `S`, no small-order
//!   `R` or key). aws-lc-rs cannot verify Ed25519ph at all (its `verify_digest_sig` returns an
//!   error for EdDSA), and its pure Ed25519 verify is no faster than dalek's here.
//!
//! Key parsing uses x509-parser 0.18 (SPKI and certificate DER, with the trailing-bytes,
//! algorithm-parameter and point-encoding checks below); aws-lc-rs parses the SPKI again and
//! checks the point is on the curve and the RSA key is well formed.

use aws_lc_rs::digest as lc_digest;
use aws_lc_rs::signature::{self as lc_signature, ParsedPublicKey, VerificationAlgorithm};
use ed25519_dalek::VerifyingKey;
use sha2::digest::{FixedOutput, HashMarker, Output, OutputSizeUser, Update};
use sha2::{Digest as _, Sha512};
use tlog::entry::{HashAlgorithm, KeyDetails, Verifier, VerifierKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as X509PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The smallest RSA modulus accepted: 2048 bits.
pub const RSA_BITS_MIN: usize = 2048;

/// The largest RSA modulus accepted: 4096 bits, the largest size `keyDetails` can declare.
pub const RSA_BITS_MAX: usize = 4096;

/// The largest RSA public exponent accepted: 2^31 − 1, Go's `crypto/rsa` limit (so nothing
/// Rekor refuses is accepted). The exponent must also be odd and at least 3.
pub const RSA_EXPONENT_MAX: u64 = (1 << 31) - 1;

/// The default field names errors carry; the request decoder replaces them with JSON paths.
const FIELD_PUBLIC_KEY: &str = "verifier.publicKey.rawBytes";
const FIELD_CERTIFICATE: &str = "verifier.x509Certificate.rawBytes";
const FIELD_SIGNATURE: &str = "signature";
const FIELD_DIGEST: &str = "digest";

/// Which input an error is about, so that a caller can name it by its own path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The public key or certificate (or its declared `keyDetails`).
    Key,
    /// The signature.
    Signature,
    /// The digest.
    Digest,
}

/// Why a key was refused or a signature did not verify. Every variant names the input field;
/// [`CryptoError::with_field`] renames it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key is not DER of a SubjectPublicKeyInfo (or a certificate), or its parts are
    /// malformed (bad parameters, compressed or invalid point, invalid RSA integers).
    #[error("{field}: malformed {what}: {reason}")]
    MalformedKey {
        /// The field.
        field: String,
        /// What was being parsed ("public key", "certificate").
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The key's algorithm is not one Cairn verifies (DSA, X25519, RSA-PSS keys, ...).
    #[error("{field}: unsupported key algorithm {algorithm}")]
    UnsupportedAlgorithm {
        /// The field.
        field: String,
        /// The algorithm OID (dotted decimal, at most 64 characters).
        algorithm: String,
    },
    /// An elliptic-curve key on a curve other than P-256, P-384 or P-521.
    #[error("{field}: unsupported elliptic curve {curve}")]
    UnsupportedCurve {
        /// The field.
        field: String,
        /// The curve OID (dotted decimal, at most 64 characters).
        curve: String,
    },
    /// The key's actual type or size is not what `keyDetails` declares (a P-256 key declared
    /// as P-384, a 3072-bit RSA key declared as 2048, an Ed25519 key declared as ECDSA...).
    #[error("{field}: the key is {actual}, but keyDetails declares {declared}")]
    KeyMismatch {
        /// The field.
        field: String,
        /// The declared algorithm.
        declared: KeyDetails,
        /// The key found ("an ECDSA P-256 key", "a 3072-bit RSA key", ...).
        actual: String,
    },
    /// An RSA modulus shorter than [`RSA_BITS_MIN`].
    #[error("{field}: RSA key is {bits} bits, at least {min} required")]
    RsaKeyTooSmall {
        /// The field.
        field: String,
        /// The modulus length found.
        bits: usize,
        /// [`RSA_BITS_MIN`].
        min: usize,
    },
    /// An RSA modulus longer than [`RSA_BITS_MAX`].
    #[error("{field}: RSA key is {bits} bits, at most {max} allowed")]
    RsaKeyTooLarge {
        /// The field.
        field: String,
        /// The modulus length found.
        bits: usize,
        /// [`RSA_BITS_MAX`].
        max: usize,
    },
    /// An RSA public exponent that is even, below 3 or above [`RSA_EXPONENT_MAX`].
    #[error("{field}: RSA public exponent {exponent} is not an odd number from 3 to {max}")]
    RsaExponent {
        /// The field.
        field: String,
        /// The exponent found (decimal, or its length when it does not fit 64 bits).
        exponent: String,
        /// [`RSA_EXPONENT_MAX`].
        max: u64,
    },
    /// A digest was given to a key that signs messages only (pure Ed25519).
    #[error("{field}: {key_details} signs messages, not digests")]
    NoPrehash {
        /// The field.
        field: String,
        /// The declared algorithm.
        key_details: KeyDetails,
    },
    /// The digest is not as long as the declared algorithm's hash output.
    #[error("{field}: digest is {actual} bytes, {key_details} needs {expected}")]
    DigestLength {
        /// The field.
        field: String,
        /// The declared algorithm.
        key_details: KeyDetails,
        /// The length found.
        actual: usize,
        /// The length required.
        expected: usize,
    },
    /// The signature is malformed or does not verify with the key.
    #[error("{field}: signature does not verify with {key_details}")]
    BadSignature {
        /// The field.
        field: String,
        /// The declared algorithm.
        key_details: KeyDetails,
    },
}

impl CryptoError {
    /// A stable, machine-readable code: `invalid_key`, `unsupported_key`, `key_mismatch`,
    /// `weak_key`, `invalid_digest` or `bad_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::MalformedKey { .. } => "invalid_key",
            CryptoError::UnsupportedAlgorithm { .. }
            | CryptoError::UnsupportedCurve { .. }
            | CryptoError::RsaKeyTooLarge { .. }
            | CryptoError::NoPrehash { .. } => "unsupported_key",
            CryptoError::KeyMismatch { .. } => "key_mismatch",
            CryptoError::RsaKeyTooSmall { .. } | CryptoError::RsaExponent { .. } => "weak_key",
            CryptoError::DigestLength { .. } => "invalid_digest",
            CryptoError::BadSignature { .. } => "bad_signature",
        }
    }

    /// Which input the error is about.
    pub fn part(&self) -> Part {
        match self {
            CryptoError::MalformedKey { .. }
            | CryptoError::UnsupportedAlgorithm { .. }
            | CryptoError::UnsupportedCurve { .. }
            | CryptoError::KeyMismatch { .. }
            | CryptoError::RsaKeyTooSmall { .. }
            | CryptoError::RsaKeyTooLarge { .. }
            | CryptoError::RsaExponent { .. }
            | CryptoError::NoPrehash { .. } => Part::Key,
            CryptoError::DigestLength { .. } => Part::Digest,
            CryptoError::BadSignature { .. } => Part::Signature,
        }
    }

    /// The field the error names.
    pub fn field(&self) -> &str {
        match self {
            CryptoError::MalformedKey { field, .. }
            | CryptoError::UnsupportedAlgorithm { field, .. }
            | CryptoError::UnsupportedCurve { field, .. }
            | CryptoError::KeyMismatch { field, .. }
            | CryptoError::RsaKeyTooSmall { field, .. }
            | CryptoError::RsaKeyTooLarge { field, .. }
            | CryptoError::RsaExponent { field, .. }
            | CryptoError::NoPrehash { field, .. }
            | CryptoError::DigestLength { field, .. }
            | CryptoError::BadSignature { field, .. } => field,
        }
    }

    /// The same error naming `field` instead.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> CryptoError {
        let slot = match &mut self {
            CryptoError::MalformedKey { field, .. }
            | CryptoError::UnsupportedAlgorithm { field, .. }
            | CryptoError::UnsupportedCurve { field, .. }
            | CryptoError::KeyMismatch { field, .. }
            | CryptoError::RsaKeyTooSmall { field, .. }
            | CryptoError::RsaKeyTooLarge { field, .. }
            | CryptoError::RsaExponent { field, .. }
            | CryptoError::NoPrehash { field, .. }
            | CryptoError::DigestLength { field, .. }
            | CryptoError::BadSignature { field, .. } => field,
        };
        *slot = field.into();
        self
    }
}

/// A client's public key, parsed and checked against its declared [`KeyDetails`].
#[derive(Debug)]
pub struct PublicKey {
    key_details: KeyDetails,
    key: Key,
}

#[derive(Debug)]
enum Key {
    /// ECDSA or RSA, verified by aws-lc-rs.
    AwsLc(ParsedPublicKey),
    /// Ed25519 or Ed25519ph, verified by ed25519-dalek.
    Ed25519(VerifyingKey),
}

/// What the SPKI holds, as far as the allow-list cares.
enum Actual<'a> {
    Ec(KeyDetails),
    Ed25519(&'a [u8]),
    Rsa { bits: usize },
}

impl PublicKey {
    /// Parses a Rekor v2 verifier: its key or certificate, and its declared algorithm.
    pub fn new(verifier: &Verifier) -> Result<PublicKey, CryptoError> {
        match verifier.key() {
            VerifierKey::PublicKey(der) => PublicKey::from_spki_der(der, verifier.key_details()),
            VerifierKey::X509Certificate(der) => {
                PublicKey::from_certificate_der(der, verifier.key_details())
            }
            // `VerifierKey` is non-exhaustive; a new kind of key is refused until handled here.
            _ => Err(CryptoError::UnsupportedAlgorithm {
                field: "verifier".to_owned(),
                algorithm: "unknown verifier kind".to_owned(),
            }),
        }
    }

    /// Parses a DER SubjectPublicKeyInfo (nothing may follow it).
    pub fn from_spki_der(der: &[u8], key_details: KeyDetails) -> Result<PublicKey, CryptoError> {
        let malformed = |reason: String| CryptoError::MalformedKey {
            field: FIELD_PUBLIC_KEY.to_owned(),
            what: "public key",
            reason,
        };
        let (rest, spki) =
            SubjectPublicKeyInfo::from_der(der).map_err(|error| malformed(error.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} bytes after the key", rest.len())));
        }
        PublicKey::from_spki(&spki, key_details, FIELD_PUBLIC_KEY)
    }

    /// Parses a DER X.509 certificate (nothing may follow it) and takes its public key. The
    /// certificate is not validated (no chain, validity or extension checks).
    pub fn from_certificate_der(
        der: &[u8],
        key_details: KeyDetails,
    ) -> Result<PublicKey, CryptoError> {
        let malformed = |reason: String| CryptoError::MalformedKey {
            field: FIELD_CERTIFICATE.to_owned(),
            what: "certificate",
            reason,
        };
        let (rest, certificate) =
            X509Certificate::from_der(der).map_err(|error| malformed(error.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        PublicKey::from_spki(certificate.public_key(), key_details, FIELD_CERTIFICATE)
    }

    /// The declared algorithm, which the key was checked to match.
    pub fn key_details(&self) -> KeyDetails {
        self.key_details
    }

    /// Verifies `signature` over `digest`, the hash (by the declared algorithm's hash) of a
    /// message the caller does not have. Refused for pure Ed25519.
    pub fn verify_prehashed(&self, digest: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let Some(algorithm) = self.key_details.hash_algorithm() else {
            return Err(CryptoError::NoPrehash {
                field: FIELD_DIGEST.to_owned(),
                key_details: self.key_details,
            });
        };
        if digest.len() != algorithm.digest_len() {
            return Err(CryptoError::DigestLength {
                field: FIELD_DIGEST.to_owned(),
                key_details: self.key_details,
                actual: digest.len(),
                expected: algorithm.digest_len(),
            });
        }
        let verified = match &self.key {
            Key::AwsLc(key) => lc_digest::Digest::import_less_safe(digest, lc_hash(algorithm))
                .is_ok_and(|digest| key.verify_digest_sig(&digest, signature).is_ok()),
            Key::Ed25519(key) => {
                let prehash = Sha512Output::new(digest);
                ed25519_signature(signature).is_some_and(|signature| {
                    prehash.is_some_and(|prehash| {
                        key.verify_prehashed_strict(prehash, None, &signature)
                            .is_ok()
                    })
                })
            }
        };
        self.verdict(verified)
    }

    /// Verifies `signature` over `message` itself (for DSSE, over the PAE). The message is
    /// hashed with the declared algorithm's hash; pure Ed25519 signs it directly.
    pub fn verify_message(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        match (&self.key, self.key_details.hash_algorithm()) {
            (Key::AwsLc(key), _) => self.verdict(key.verify_sig(message, signature).is_ok()),
            (Key::Ed25519(key), None) => self.verdict(
                ed25519_signature(signature)
                    .is_some_and(|signature| key.verify_strict(message, &signature).is_ok()),
            ),
            (Key::Ed25519(_), Some(algorithm)) => {
                self.verify_prehashed(algorithm.hash(message).as_bytes(), signature)
            }
        }
    }

    fn verdict(&self, verified: bool) -> Result<(), CryptoError> {
        if verified {
            Ok(())
        } else {
            Err(CryptoError::BadSignature {
                field: FIELD_SIGNATURE.to_owned(),
                key_details: self.key_details,
            })
        }
    }

    fn from_spki(
        spki: &SubjectPublicKeyInfo<'_>,
        key_details: KeyDetails,
        field: &str,
    ) -> Result<PublicKey, CryptoError> {
        let actual = classify(spki, field)?;
        let mismatch = |actual: String| CryptoError::KeyMismatch {
            field: field.to_owned(),
            declared: key_details,
            actual,
        };
        let aws_lc_algorithm: &'static dyn VerificationAlgorithm = match (&actual, key_details) {
            (Actual::Ec(curve), declared) if *curve == declared => match declared {
                KeyDetails::EcdsaP256Sha256 => &lc_signature::ECDSA_P256_SHA256_ASN1,
                KeyDetails::EcdsaP384Sha384 => &lc_signature::ECDSA_P384_SHA384_ASN1,
                _ => &lc_signature::ECDSA_P521_SHA512_ASN1,
            },
            (Actual::Ec(curve), _) => return Err(mismatch(describe_curve(*curve))),
            (&Actual::Ed25519(point), KeyDetails::Ed25519 | KeyDetails::Ed25519Ph) => {
                let bytes: &[u8; 32] = point.try_into().map_err(|_| CryptoError::MalformedKey {
                    field: field.to_owned(),
                    what: "public key",
                    reason: format!("Ed25519 key is {} bytes, 32 required", point.len()),
                })?;
                let key =
                    VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::MalformedKey {
                        field: field.to_owned(),
                        what: "public key",
                        reason: "not an Ed25519 point".to_owned(),
                    })?;
                return Ok(PublicKey {
                    key_details,
                    key: Key::Ed25519(key),
                });
            }
            (Actual::Ed25519(_), _) => return Err(mismatch("an Ed25519 key".to_owned())),
            (Actual::Rsa { bits }, declared) => {
                let wanted = match declared {
                    KeyDetails::Rsa2048Pkcs1v15Sha256 => 2048,
                    KeyDetails::Rsa3072Pkcs1v15Sha256 => 3072,
                    KeyDetails::Rsa4096Pkcs1v15Sha256 => 4096,
                    _ => return Err(mismatch(format!("a {bits}-bit RSA key"))),
                };
                if *bits != wanted {
                    return Err(mismatch(format!("a {bits}-bit RSA key")));
                }
                &lc_signature::RSA_PKCS1_2048_8192_SHA256
            }
        };
        let key = ParsedPublicKey::new(aws_lc_algorithm, spki.raw).map_err(|rejected| {
            CryptoError::MalformedKey {
                field: field.to_owned(),
                what: "public key",
                reason: rejected.to_string(),
            }
        })?;
        Ok(PublicKey {
            key_details,
            key: Key::AwsLc(key),
        })
    }
}

/// Parses `verifier` and verifies `signature` over `digest` (see
/// [`PublicKey::verify_prehashed`]).
pub fn verify_prehashed(
    verifier: &Verifier,
    digest: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    PublicKey::new(verifier)?.verify_prehashed(digest, signature)
}

/// Parses `verifier` and verifies `signature` over `message` (see
/// [`PublicKey::verify_message`]).
pub fn verify_message(
    verifier: &Verifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    PublicKey::new(verifier)?.verify_message(message, signature)
}

/// Classifies the SPKI and applies the checks that do not depend on the declared algorithm:
/// supported algorithm and curve, parameters as RFC 3279/5480/8410 require, uncompressed EC
/// points, RSA size and exponent bounds.
fn classify<'a>(
    spki: &'a SubjectPublicKeyInfo<'_>,
    field: &str,
) -> Result<Actual<'a>, CryptoError> {
    let malformed = |reason: &str| CryptoError::MalformedKey {
        field: field.to_owned(),
        what: "public key",
        reason: reason.to_owned(),
    };
    let algorithm = &spki.algorithm.algorithm;
    let parameters = spki.algorithm.parameters.as_ref();
    let key_bits: &'a [u8] = &spki.subject_public_key.data;
    if spki.subject_public_key.unused_bits != 0 {
        return Err(malformed("key bit string has unused bits"));
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = parameters
            .and_then(|any| any.as_oid().ok())
            .ok_or_else(|| malformed("EC key parameters are not a named curve"))?;
        let (details, coordinate_len) = if curve == OID_EC_P256 {
            (KeyDetails::EcdsaP256Sha256, 32)
        } else if curve == OID_NIST_EC_P384 {
            (KeyDetails::EcdsaP384Sha384, 48)
        } else if curve == OID_NIST_EC_P521 {
            (KeyDetails::EcdsaP521Sha512, 66)
        } else {
            return Err(CryptoError::UnsupportedCurve {
                field: field.to_owned(),
                curve: truncated(&curve.to_id_string()),
            });
        };
        // Uncompressed points only, as Go's crypto/x509 (and so Rekor) accepts.
        if key_bits.len() != 1 + 2 * coordinate_len || key_bits.first() != Some(&0x04) {
            return Err(malformed(
                "EC point is not an uncompressed point of its curve",
            ));
        }
        Ok(Actual::Ec(details))
    } else if *algorithm == OID_SIG_ED25519 {
        if parameters.is_some() {
            return Err(malformed("Ed25519 key has algorithm parameters"));
        }
        Ok(Actual::Ed25519(key_bits))
    } else if *algorithm == OID_PKCS1_RSAENCRYPTION {
        if !parameters.is_some_and(|any| any.tag() == x509_parser::der_parser::asn1_rs::Tag::Null) {
            return Err(malformed("RSA key parameters are not NULL"));
        }
        let Ok(X509PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(malformed("not a PKCS#1 RSAPublicKey"));
        };
        let bits = positive_integer_bits(rsa.modulus)
            .ok_or_else(|| malformed("RSA modulus is not a positive DER integer"))?;
        if bits < RSA_BITS_MIN {
            return Err(CryptoError::RsaKeyTooSmall {
                field: field.to_owned(),
                bits,
                min: RSA_BITS_MIN,
            });
        }
        if bits > RSA_BITS_MAX {
            return Err(CryptoError::RsaKeyTooLarge {
                field: field.to_owned(),
                bits,
                max: RSA_BITS_MAX,
            });
        }
        check_exponent(rsa.exponent, field)?;
        Ok(Actual::Rsa { bits })
    } else {
        Err(CryptoError::UnsupportedAlgorithm {
            field: field.to_owned(),
            algorithm: truncated(&algorithm.to_id_string()),
        })
    }
}

/// Checks that the exponent (DER INTEGER content) is odd and in `3..=RSA_EXPONENT_MAX`.
fn check_exponent(exponent: &[u8], field: &str) -> Result<(), CryptoError> {
    let error = |shown: String| CryptoError::RsaExponent {
        field: field.to_owned(),
        exponent: shown,
        max: RSA_EXPONENT_MAX,
    };
    if positive_integer_bits(exponent).is_none() {
        return Err(error("(not a positive integer)".to_owned()));
    }
    let significant = exponent.strip_prefix(&[0]).unwrap_or(exponent);
    if significant.len() > 8 {
        return Err(error(format!("of {} bytes", significant.len())));
    }
    let value = significant
        .iter()
        .fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
    if !(3..=RSA_EXPONENT_MAX).contains(&value) || value % 2 == 0 {
        return Err(error(value.to_string()));
    }
    Ok(())
}

/// The bit length of a positive, minimally encoded DER INTEGER's content bytes.
fn positive_integer_bits(bytes: &[u8]) -> Option<usize> {
    let (first, rest) = bytes.split_first()?;
    if *first & 0x80 != 0 {
        return None; // negative
    }
    if *first == 0 {
        // A leading zero is only allowed (and required) before a byte with the top bit set.
        let second = rest.first()?;
        if second & 0x80 == 0 {
            return None;
        }
        return Some(rest.len() * 8);
    }
    Some(rest.len() * 8 + (8 - first.leading_zeros() as usize))
}

fn describe_curve(curve: KeyDetails) -> String {
    match curve {
        KeyDetails::EcdsaP256Sha256 => "an ECDSA P-256 key",
        KeyDetails::EcdsaP384Sha384 => "an ECDSA P-384 key",
        _ => "an ECDSA P-521 key",
    }
    .to_owned()
}

fn lc_hash(algorithm: HashAlgorithm) -> &'static lc_digest::Algorithm {
    match algorithm {
        HashAlgorithm::Sha256 => &lc_digest::SHA256,
        HashAlgorithm::Sha384 => &lc_digest::SHA384,
        _ => &lc_digest::SHA512,
    }
}

fn ed25519_signature(signature: &[u8]) -> Option<ed25519_dalek::Signature> {
    ed25519_dalek::Signature::from_slice(signature).ok()
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

/// A SHA-512 "hasher" already holding its output: ed25519-dalek's Ed25519ph verification takes
/// a hash state and finalises it, but the log is given only the finished digest. dalek only
/// finalises it; were more input ever absorbed, the output becomes SHA-512(digest ‖ input), so
/// it can never pass for the digest.
#[derive(Clone, Default)]
struct Sha512Output {
    digest: Output<Sha512>,
    extra: Option<Sha512>,
}

impl Sha512Output {
    fn new(digest: &[u8]) -> Option<Sha512Output> {
        let digest = Output::<Sha512>::try_from(digest).ok()?;
        Some(Sha512Output {
            digest,
            extra: None,
        })
    }
}

impl OutputSizeUser for Sha512Output {
    type OutputSize = <Sha512 as OutputSizeUser>::OutputSize;
}

impl HashMarker for Sha512Output {}

impl Update for Sha512Output {
    fn update(&mut self, data: &[u8]) {
        let digest = self.digest;
        Update::update(
            self.extra
                .get_or_insert_with(|| Sha512::new().chain_update(digest)),
            data,
        );
    }
}

impl FixedOutput for Sha512Output {
    fn finalize_into(self, out: &mut Output<Self>) {
        match self.extra {
            None => out.copy_from_slice(&self.digest),
            Some(hasher) => out.copy_from_slice(&hasher.finalize()),
        }
    }
}

#[cfg(test)]
mod tests;
