//! Public keys and signature checks: the one place the verifier calls into cryptography.
//!
//! A [`PublicKey`] is parsed from a DER SubjectPublicKeyInfo (a certificate's, a trusted root's
//! or a PEM `--key`) and knows its algorithm family. Signatures are checked with aws-lc-rs,
//! the provider the rest of the workspace uses: ECDSA (ASN.1 DER signatures) on P-256, P-384 and
//! P-521 with any SHA-2 hash, RSA PKCS#1 v1.5 (2048 to 8192 bits) and pure Ed25519.
//! [`PublicKey::verify_prehashed`] checks a signature over a digest the verifier was given
//! instead of the message (a hashedrekord signature, when only the artifact's digest is known).

use aws_lc_rs::digest as lc_digest;
use aws_lc_rs::signature::{self as lc, UnparsedPublicKey, VerificationAlgorithm};
use tlog::entry::HashAlgorithm;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The longest DER public key accepted: 16 KiB (an RSA-8192 key is about 1.1 KiB).
pub const PUBLIC_KEY_DER_BYTES_MAX: usize = 16 * 1024;

/// Why a public key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not a DER SubjectPublicKeyInfo.
    #[error("public key is not a DER SubjectPublicKeyInfo")]
    Malformed,
    /// The key is longer than [`PUBLIC_KEY_DER_BYTES_MAX`].
    #[error("public key is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The key's algorithm is not one this verifier supports.
    #[error("unsupported public key algorithm {0}")]
    Unsupported(String),
    /// A PEM `PUBLIC KEY` block could not be read.
    #[error("public key PEM: {0}")]
    Pem(String),
}

/// The algorithm family of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on NIST P-521.
    EcdsaP521,
    /// Ed25519.
    Ed25519,
    /// RSA (verified as PKCS#1 v1.5).
    Rsa,
}

impl KeyAlgorithm {
    /// The hash this kind of key signs messages with when nothing says otherwise, as Sigstore's
    /// default key details do; `None` for pure Ed25519.
    pub fn default_hash(self) -> Option<HashAlgorithm> {
        match self {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Rsa => Some(HashAlgorithm::Sha256),
            KeyAlgorithm::EcdsaP384 => Some(HashAlgorithm::Sha384),
            KeyAlgorithm::EcdsaP521 => Some(HashAlgorithm::Sha512),
            KeyAlgorithm::Ed25519 => None,
        }
    }
}

/// A public key and its algorithm family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    /// The SPKI's BIT STRING contents, the form aws-lc-rs' `UnparsedPublicKey` wants: an
    /// uncompressed point, a PKCS#1 RSAPublicKey, or 32 Ed25519 bytes.
    raw_key: Vec<u8>,
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if der.len() > PUBLIC_KEY_DER_BYTES_MAX {
            return Err(KeyError::TooLarge {
                len: der.len(),
                max: PUBLIC_KEY_DER_BYTES_MAX,
            });
        }
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::Malformed)?;
        if !rest.is_empty() {
            return Err(KeyError::Malformed);
        }
        let algorithm = classify(&spki)?;
        Ok(PublicKey {
            algorithm,
            spki_der: der.to_vec(),
            raw_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Parses one PEM `PUBLIC KEY` block (a managed signing key, `--key`).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        if pem.len() > 4 * PUBLIC_KEY_DER_BYTES_MAX {
            return Err(KeyError::TooLarge {
                len: pem.len(),
                max: 4 * PUBLIC_KEY_DER_BYTES_MAX,
            });
        }
        let (rest, block) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|error| KeyError::Pem(error.to_string()))?;
        if block.label != "PUBLIC KEY" {
            return Err(KeyError::Pem(format!(
                "expected a PUBLIC KEY block, found {:?}",
                block.label.chars().take(32).collect::<String>()
            )));
        }
        if !rest.iter().all(u8::is_ascii_whitespace) {
            return Err(KeyError::Pem("text after the PUBLIC KEY block".to_owned()));
        }
        PublicKey::from_spki_der(&block.contents)
    }

    /// The algorithm family.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The SPKI's BIT STRING contents (for Ed25519, the 32-byte key).
    pub fn raw_key(&self) -> &[u8] {
        &self.raw_key
    }

    /// Whether `signature` is this key's signature of `message`, hashed with `hash` (ignored
    /// for Ed25519, which signs the message itself).
    pub fn verify(&self, hash: Option<HashAlgorithm>, message: &[u8], signature: &[u8]) -> bool {
        let Some(algorithm) = self.aws_lc_algorithm(hash) else {
            return false;
        };
        UnparsedPublicKey::new(algorithm, &self.raw_key)
            .verify(message, signature)
            .is_ok()
    }

    /// Whether `signature` is this key's signature of `message` with its default hash.
    pub fn verify_message(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify(self.algorithm.default_hash(), message, signature)
    }

    /// Whether `signature` is this key's signature over a message whose `hash` digest is
    /// `digest`. Always false for Ed25519: pure Ed25519 has no prehashed form.
    pub fn verify_prehashed(&self, hash: HashAlgorithm, digest: &[u8], signature: &[u8]) -> bool {
        if self.algorithm == KeyAlgorithm::Ed25519 {
            return false;
        }
        let Some(algorithm) = self.aws_lc_algorithm(Some(hash)) else {
            return false;
        };
        let Ok(digest) = lc_digest::Digest::import_less_safe(digest, lc_hash(hash)) else {
            return false;
        };
        // `ParsedPublicKey` is the aws-lc-rs type with a digest-verifying entry point.
        lc::ParsedPublicKey::new(algorithm, &self.spki_der)
            .is_ok_and(|key| key.verify_digest_sig(&digest, signature).is_ok())
    }

    fn aws_lc_algorithm(
        &self,
        hash: Option<HashAlgorithm>,
    ) -> Option<&'static dyn VerificationAlgorithm> {
        use HashAlgorithm::{Sha256, Sha384, Sha512};
        // Pure Ed25519 signs the message itself: it has no hash to choose (and its default
        // hash is none), so it must not wait for one.
        if self.algorithm == KeyAlgorithm::Ed25519 {
            return Some(&lc::ED25519);
        }
        Some(match (self.algorithm, hash?) {
            (KeyAlgorithm::EcdsaP256, Sha256) => &lc::ECDSA_P256_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP256, Sha384) => &lc::ECDSA_P256_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP256, Sha512) => &lc::ECDSA_P256_SHA512_ASN1,
            (KeyAlgorithm::EcdsaP384, Sha256) => &lc::ECDSA_P384_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP384, Sha384) => &lc::ECDSA_P384_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP384, Sha512) => &lc::ECDSA_P384_SHA512_ASN1,
            (KeyAlgorithm::EcdsaP521, Sha256) => &lc::ECDSA_P521_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP521, Sha384) => &lc::ECDSA_P521_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP521, Sha512) => &lc::ECDSA_P521_SHA512_ASN1,
            (KeyAlgorithm::Rsa, Sha256) => &lc::RSA_PKCS1_2048_8192_SHA256,
            (KeyAlgorithm::Rsa, Sha384) => &lc::RSA_PKCS1_2048_8192_SHA384,
            (KeyAlgorithm::Rsa, Sha512) => &lc::RSA_PKCS1_2048_8192_SHA512,
            _ => return None,
        })
    }
}

/// An RSA public key given as a bare PKCS#1 `RSAPublicKey` (as some trusted roots carry CT
/// log keys, `keyDetails: PKCS1_RSA_PKCS1V5`): checked with SHA-256, the only hash CT uses.
pub(crate) fn verify_pkcs1_rsa_sha256(rsa_public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&lc::RSA_PKCS1_2048_8192_SHA256, rsa_public_key)
        .verify(message, sig)
        .is_ok()
}

/// The hash of a signature algorithm OID in a certificate (`ecdsa-with-SHA*`,
/// `sha*WithRSAEncryption`): `Some(None)` for Ed25519, `None` if unsupported.
pub(crate) fn signature_hash(
    oid: &x509_parser::der_parser::oid::Oid<'_>,
) -> Option<Option<HashAlgorithm>> {
    signature_hash_der(oid.as_bytes())
}

/// As [`signature_hash`], from the DER contents of the OID.
pub(crate) fn signature_hash_der(oid: &[u8]) -> Option<Option<HashAlgorithm>> {
    const ECDSA_WITH: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    if oid == ED25519 {
        return Some(None);
    }
    let hash = match (oid.split_last()?, oid.len()) {
        ((&2, prefix), 8) if prefix == ECDSA_WITH => HashAlgorithm::Sha256,
        ((&3, prefix), 8) if prefix == ECDSA_WITH => HashAlgorithm::Sha384,
        ((&4, prefix), 8) if prefix == ECDSA_WITH => HashAlgorithm::Sha512,
        ((&11, prefix), 9) if prefix == PKCS1 => HashAlgorithm::Sha256,
        ((&12, prefix), 9) if prefix == PKCS1 => HashAlgorithm::Sha384,
        ((&13, prefix), 9) if prefix == PKCS1 => HashAlgorithm::Sha512,
        _ => return None,
    };
    Some(Some(hash))
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = lc_digest::digest(&lc_digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn lc_hash(hash: HashAlgorithm) -> &'static lc_digest::Algorithm {
    match hash {
        HashAlgorithm::Sha384 => &lc_digest::SHA384,
        HashAlgorithm::Sha512 => &lc_digest::SHA512,
        _ => &lc_digest::SHA256,
    }
}

fn classify(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyAlgorithm, KeyError> {
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or(KeyError::Malformed)?;
        if curve == OID_EC_P256 {
            Ok(KeyAlgorithm::EcdsaP256)
        } else if curve == OID_NIST_EC_P384 {
            Ok(KeyAlgorithm::EcdsaP384)
        } else if curve == OID_NIST_EC_P521 {
            Ok(KeyAlgorithm::EcdsaP521)
        } else {
            Err(KeyError::Unsupported(format!("elliptic curve {curve}")))
        }
    } else if *oid == OID_SIG_ED25519 {
        Ok(KeyAlgorithm::Ed25519)
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        Ok(KeyAlgorithm::Rsa)
    } else {
        Err(KeyError::Unsupported(oid.to_id_string()))
    }
}
