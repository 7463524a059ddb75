//! Proof of possession: the certified key must be held by the caller. Either a PKCS#10 CSR whose
//! self-signature verifies (only its public key is used: subject, attributes and requested
//! extensions are ignored, the certificate carries only what the token proves), or a public key
//! plus a signature over the identity's challenge (email or `sub`), as cosign sends.
//!
//! Key types allowed: ECDSA P-256 and P-384, Ed25519, RSA of 2048 to 8192 bits.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateSigningRequestDer, SubjectPublicKeyInfoDer};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Largest CSR or public key accepted (PEM or DER): an RSA-8192 CSR is about 2.5 KiB.
pub const KEY_BYTES_MAX: usize = 8 * 1024;
/// Largest proof-of-possession signature (an RSA-8192 signature is 1 KiB).
pub const PROOF_BYTES_MAX: usize = 1024;

/// Why a key request was refused (all 400: the caller sent something unusable).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Over [`KEY_BYTES_MAX`] or [`PROOF_BYTES_MAX`].
    #[error("{0} is larger than {1} bytes")]
    TooLarge(&'static str, usize),
    /// Not a parseable CSR or key.
    #[error("malformed {0}: {1}")]
    Malformed(&'static str, String),
    /// A key type or size that is not allowed.
    #[error("unsupported key: {0} (allowed: ECDSA P-256, P-384, Ed25519, RSA 2048 to 8192 bits)")]
    Unsupported(String),
    /// The CSR's self-signature does not verify.
    #[error("the CSR's signature does not verify")]
    BadCsrSignature,
    /// The proof of possession does not verify over the challenge with the key.
    #[error("the proof of possession does not verify over {0:?} with this key")]
    BadProof(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const ED25519: &str = "1.3.101.112";
const RSA: &str = "1.2.840.113549.1.1.1";

/// Classifies a DER SubjectPublicKeyInfo, refusing key types and sizes not allowed.
fn classify(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyKind, KeyError> {
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match algorithm.as_str() {
        EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|parameters| parameters.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                P256 => Ok(KeyKind::P256),
                P384 => Ok(KeyKind::P384),
                other => Err(KeyError::Unsupported(format!("EC curve {other:?}"))),
            }
        }
        ED25519 if spki.subject_public_key.data.len() == 32 => Ok(KeyKind::Ed25519),
        RSA => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(key)) => {
                let bits = key.key_size();
                if (2048..=8192).contains(&bits) {
                    Ok(KeyKind::Rsa)
                } else {
                    Err(KeyError::Unsupported(format!("RSA of {bits} bits")))
                }
            }
            _ => Err(KeyError::Malformed("public key", "bad RSA key".into())),
        },
        other => Err(KeyError::Unsupported(format!("algorithm {other}"))),
    }
}

/// The verification algorithms a signature by `kind` may use, by signature-algorithm OID
/// (`None`: a bare proof of possession, where the hash is the key type's usual one).
fn algorithms(
    kind: KeyKind,
    signature_oid: Option<&str>,
) -> Vec<&'static dyn VerificationAlgorithm> {
    match (kind, signature_oid) {
        (KeyKind::P256, None | Some("1.2.840.10045.4.3.2")) => {
            vec![&signature::ECDSA_P256_SHA256_ASN1]
        }
        (KeyKind::P256, Some("1.2.840.10045.4.3.3")) => vec![&signature::ECDSA_P256_SHA384_ASN1],
        (KeyKind::P384, None) => vec![
            &signature::ECDSA_P384_SHA384_ASN1,
            &signature::ECDSA_P384_SHA256_ASN1,
        ],
        (KeyKind::P384, Some("1.2.840.10045.4.3.3")) => vec![&signature::ECDSA_P384_SHA384_ASN1],
        (KeyKind::P384, Some("1.2.840.10045.4.3.2")) => vec![&signature::ECDSA_P384_SHA256_ASN1],
        (KeyKind::Ed25519, None | Some(ED25519)) => vec![&signature::ED25519],
        (KeyKind::Rsa, None | Some("1.2.840.113549.1.1.11")) => {
            vec![&signature::RSA_PKCS1_2048_8192_SHA256]
        }
        (KeyKind::Rsa, Some("1.2.840.113549.1.1.12")) => {
            vec![&signature::RSA_PKCS1_2048_8192_SHA384]
        }
        (KeyKind::Rsa, Some("1.2.840.113549.1.1.13")) => {
            vec![&signature::RSA_PKCS1_2048_8192_SHA512]
        }
        _ => Vec::new(),
    }
}

fn verifies(
    kind: KeyKind,
    signature_oid: Option<&str>,
    spki: &SubjectPublicKeyInfo<'_>,
    message: &[u8],
    signature: &[u8],
) -> bool {
    algorithms(kind, signature_oid)
        .into_iter()
        .any(|algorithm| {
            UnparsedPublicKey::new(algorithm, spki.subject_public_key.data.as_ref())
                .verify(message, signature)
                .is_ok()
        })
}

/// A PEM or DER CSR: checks its self-signature and key, and returns the key's DER
/// SubjectPublicKeyInfo.
pub fn key_from_csr(csr: &[u8]) -> Result<Vec<u8>, KeyError> {
    if csr.len() > KEY_BYTES_MAX {
        return Err(KeyError::TooLarge("CSR", KEY_BYTES_MAX));
    }
    let der = if csr.starts_with(b"-----BEGIN") {
        CertificateSigningRequestDer::from_pem_slice(csr)
            .map_err(|error| KeyError::Malformed("CSR", error.to_string()))?
            .as_ref()
            .to_vec()
    } else {
        csr.to_vec()
    };
    let (rest, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .map_err(|error| KeyError::Malformed("CSR", error.to_string()))?;
    if !rest.is_empty() {
        return Err(KeyError::Malformed("CSR", "trailing bytes".into()));
    }
    let info = &request.certification_request_info;
    let kind = classify(&info.subject_pki)?;
    let signature_oid = request.signature_algorithm.algorithm.to_id_string();
    if !verifies(
        kind,
        Some(&signature_oid),
        &info.subject_pki,
        info.raw,
        request.signature_value.data.as_ref(),
    ) {
        return Err(KeyError::BadCsrSignature);
    }
    Ok(info.subject_pki.raw.to_vec())
}

/// A PEM or DER public key and a signature over `challenge`: checks both, and returns the key's
/// DER SubjectPublicKeyInfo.
pub fn key_from_proof(
    public_key: &[u8],
    proof: &[u8],
    challenge: &str,
) -> Result<Vec<u8>, KeyError> {
    if public_key.len() > KEY_BYTES_MAX {
        return Err(KeyError::TooLarge("public key", KEY_BYTES_MAX));
    }
    if proof.len() > PROOF_BYTES_MAX {
        return Err(KeyError::TooLarge("proof of possession", PROOF_BYTES_MAX));
    }
    let der = if public_key.starts_with(b"-----BEGIN") {
        SubjectPublicKeyInfoDer::from_pem_slice(public_key)
            .map_err(|error| KeyError::Malformed("public key", error.to_string()))?
            .as_ref()
            .to_vec()
    } else {
        public_key.to_vec()
    };
    let (rest, spki) = SubjectPublicKeyInfo::from_der(&der)
        .map_err(|error| KeyError::Malformed("public key", error.to_string()))?;
    if !rest.is_empty() {
        return Err(KeyError::Malformed("public key", "trailing bytes".into()));
    }
    let kind = classify(&spki)?;
    if !verifies(kind, None, &spki, challenge.as_bytes(), proof) {
        return Err(KeyError::BadProof(challenge.to_string()));
    }
    Ok(spki.raw.to_vec())
}
