//! Certificate Transparency, as much as the CA needs: the certificate log's leaves, signed
//! certificate timestamps (RFC 6962 §3.2) with static-ct-api's `leaf_index` extension, and
//! their verification.
//!
//! Leaves: the certificate log stores RFC 6962 `MerkleTreeLeaf` structures (version 0,
//! `timestamped_entry`), so the log's leaf hashes are exactly CT's and its tiles hold CT leaves:
//! first a `precert_entry` (issuer key hash and the TBSCertificate the SCT signs), then, once
//! that is committed, an `x509_entry` holding the final certificate with its SCT. Both carry the
//! issuance timestamp chosen before the first append. The logged leaves' own `extensions` are
//! empty: a leaf's index is assigned by the replicated apply, after the leaf's bytes are fixed,
//! so unlike static-ct-api (whose sequencer writes `leaf_index` into the entry) the index is
//! carried only by the SCT, where it names the committed `precert_entry`.
//!
//! Key: SCTs must be ECDSA or RSA with SHA-256 (sigstore-python rejects anything else), and the
//! log's checkpoint key is Ed25519, so SCTs are signed by a separate ECDSA P-256 key, the "CT
//! key" of the certificate log; its `log_id` is SHA-256 of its DER SubjectPublicKeyInfo.

use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use sha2::{Digest as _, Sha256};

use crate::{CertError, der};

/// The precertificate poison extension (RFC 6962 §3.1), critical, value NULL.
pub const POISON_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 3];
/// The embedded SCT list extension (RFC 6962 §3.3).
pub const SCT_LIST_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// `LogEntryType` values.
const X509_ENTRY: u16 = 0;
const PRECERT_ENTRY: u16 = 1;
/// static-ct-api's `ExtensionType` for `leaf_index`.
const LEAF_INDEX_EXTENSION: u8 = 0;
/// The largest leaf index static-ct-api's 40-bit field holds.
pub const LEAF_INDEX_MAX: u64 = (1 << 40) - 1;

/// The certificate log's SCT signing key (ECDSA P-256).
///
/// Signing goes through aws-lc-rs, about four times faster than the p256 crate; its signatures
/// are randomized, which is fine: an SCT is made before anything is proposed, so replicated
/// state only ever holds finished bytes.
#[derive(Clone)]
pub struct CtKey {
    key: p256::ecdsa::SigningKey,
    signer: std::sync::Arc<aws_lc_rs::signature::EcdsaKeyPair>,
    spki_der: Vec<u8>,
    log_id: [u8; 32],
}

impl std::fmt::Debug for CtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtKey")
            .field("log_id", &hex_lower(&self.log_id))
            .finish_non_exhaustive()
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl CtKey {
    /// A key from 32 random bytes (the caller supplies the randomness).
    pub fn from_scalar(bytes: &[u8; 32]) -> Result<CtKey, CertError> {
        let key = p256::ecdsa::SigningKey::from_slice(bytes)
            .map_err(|error| CertError::Key(format!("CT key: {error}")))?;
        CtKey::new(key)
    }

    /// A key from its PKCS#8 PEM.
    pub fn from_pkcs8_pem(pem: &str) -> Result<CtKey, CertError> {
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map_err(|error| CertError::Key(format!("CT key: {error}")))?;
        CtKey::new(key)
    }

    fn new(key: p256::ecdsa::SigningKey) -> Result<CtKey, CertError> {
        let spki_der = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|error| CertError::Key(format!("CT key: {error}")))?
            .into_vec();
        let log_id = Sha256::digest(&spki_der).into();
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|error| CertError::Key(format!("CT key: {error}")))?;
        let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.as_bytes(),
        )
        .map_err(|error| CertError::Key(format!("CT key: {error}")))?;
        Ok(CtKey {
            key,
            signer: std::sync::Arc::new(signer),
            spki_der,
            log_id,
        })
    }

    /// The key as PKCS#8 PEM, for its key file.
    pub fn to_pkcs8_pem(&self) -> Result<String, CertError> {
        Ok(self
            .key
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .map_err(|error| CertError::Key(format!("CT key: {error}")))?
            .to_string())
    }

    /// The public key as DER SubjectPublicKeyInfo (what a trust root's `ctlogs` entry holds).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The CT log id: SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn log_id(&self) -> [u8; 32] {
        self.log_id
    }

    /// Signs an SCT for the precertificate entry `tbs` (the TBSCertificate without poison)
    /// issued under `issuer_key_hash`, logged at `leaf_index` with `timestamp_ms`.
    pub fn sign_precert(
        &self,
        timestamp_ms: u64,
        issuer_key_hash: &[u8; 32],
        tbs: &[u8],
        leaf_index: u64,
    ) -> Result<Sct, CertError> {
        let extensions = leaf_index_extension(leaf_index)?;
        let data = precert_signed_data(timestamp_ms, issuer_key_hash, tbs, &extensions)?;
        let signature = self
            .signer
            .sign(&aws_lc_rs::rand::SystemRandom::new(), &data)
            .map_err(|_| CertError::Sct("signing failed".into()))?;
        Ok(Sct {
            log_id: self.log_id,
            timestamp_ms,
            extensions,
            signature: signature.as_ref().to_vec(),
        })
    }
}

/// A v1 signed certificate timestamp, ECDSA-SHA256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sct {
    /// SHA-256 of the CT key's SubjectPublicKeyInfo.
    pub log_id: [u8; 32],
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// `CtExtensions` (static-ct-api: one `leaf_index`).
    pub extensions: Vec<u8>,
    /// DER ECDSA signature over the precertificate signed data.
    pub signature: Vec<u8>,
}

impl Sct {
    /// The TLS encoding of the SCT.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8]; // v1
        out.extend_from_slice(&self.log_id);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        push_u16_prefixed(&mut out, &self.extensions);
        out.extend_from_slice(&[4, 3]); // sha256, ecdsa
        push_u16_prefixed(&mut out, &self.signature);
        out
    }

    /// The value of the certificate extension `1.3.6.1.4.1.11129.2.4.2` holding exactly this
    /// SCT: an OCTET STRING around a `SignedCertificateTimestampList`.
    pub fn list_extension_value(&self) -> Vec<u8> {
        let mut list = Vec::new();
        push_u16_prefixed(&mut list, &self.encode());
        let mut outer = Vec::new();
        push_u16_prefixed(&mut outer, &list);
        der::octet_string(&outer)
    }

    /// The leaf index named by the `leaf_index` extension.
    pub fn leaf_index(&self) -> Result<u64, CertError> {
        parse_leaf_index(&self.extensions)
    }

    /// Checks the signature with a CT public key (DER SPKI) over a precertificate entry.
    pub fn verify_precert(
        &self,
        spki_der: &[u8],
        issuer_key_hash: &[u8; 32],
        tbs: &[u8],
    ) -> Result<(), CertError> {
        use x509_parser::prelude::FromDer as _;
        let (_, key) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|error| CertError::Key(format!("CT public key: {error}")))?;
        if Sha256::digest(spki_der).as_slice() != self.log_id {
            return Err(CertError::Sct("log_id is not this key's".into()));
        }
        let data = precert_signed_data(self.timestamp_ms, issuer_key_hash, tbs, &self.extensions)?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            key.subject_public_key.data.as_ref(),
        )
        .verify(&data, &self.signature)
        .map_err(|_| CertError::Sct("signature does not verify".into()))
    }

    /// Parses the value of an SCT list extension holding exactly one SCT.
    pub fn parse_list_extension(value: &[u8]) -> Result<Sct, CertError> {
        let bad = |what: &str| CertError::Sct(format!("SCT list: {what}"));
        // OCTET STRING, short or one-byte long form only (a list of one SCT is small).
        let list = match value {
            [0x04, length, rest @ ..] if usize::from(*length) == rest.len() && *length < 0x80 => {
                rest
            }
            [0x04, 0x81, length, rest @ ..] if usize::from(*length) == rest.len() => rest,
            [0x04, 0x82, high, low, rest @ ..]
                if usize::from(u16::from_be_bytes([*high, *low])) == rest.len() =>
            {
                rest
            }
            _ => return Err(bad("not an OCTET STRING")),
        };
        let mut reader = Reader(list);
        let mut items = Reader(reader.u16_prefixed()?);
        reader.end()?;
        let sct = items.u16_prefixed()?;
        if !items.0.is_empty() {
            return Err(bad("more than one SCT"));
        }
        let mut sct = Reader(sct);
        if sct.take(1)? != [0] {
            return Err(bad("not v1"));
        }
        let log_id = sct.take(32)?.try_into().map_err(|_| bad("log_id"))?;
        let timestamp_ms = u64::from_be_bytes(sct.take(8)?.try_into().map_err(|_| bad("time"))?);
        let extensions = sct.u16_prefixed()?.to_vec();
        if sct.take(2)? != [4, 3] {
            return Err(bad("not ECDSA-SHA256"));
        }
        let signature = sct.u16_prefixed()?.to_vec();
        sct.end()?;
        Ok(Sct {
            log_id,
            timestamp_ms,
            extensions,
            signature,
        })
    }
}

/// The RFC 6962 `digitally-signed` input of a precertificate SCT.
fn precert_signed_data(
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, CertError> {
    let mut out = vec![0u8, 0u8]; // v1, certificate_timestamp
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    push_precert_entry(&mut out, issuer_key_hash, tbs)?;
    push_u16_prefixed(&mut out, extensions);
    Ok(out)
}

fn push_precert_entry(
    out: &mut Vec<u8>,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
) -> Result<(), CertError> {
    out.extend_from_slice(&PRECERT_ENTRY.to_be_bytes());
    out.extend_from_slice(issuer_key_hash);
    push_u24_prefixed(out, tbs)
}

/// The certificate log's leaf for a precertificate: an RFC 6962 `MerkleTreeLeaf`.
pub fn precert_leaf(
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
) -> Result<Vec<u8>, CertError> {
    let mut out = vec![0u8, 0u8]; // v1, timestamped_entry
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    push_precert_entry(&mut out, issuer_key_hash, tbs)?;
    push_u16_prefixed(&mut out, &[]);
    Ok(out)
}

/// The certificate log's leaf for a final certificate: an RFC 6962 `MerkleTreeLeaf`.
pub fn x509_leaf(timestamp_ms: u64, certificate: &[u8]) -> Result<Vec<u8>, CertError> {
    let mut out = vec![0u8, 0u8];
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&X509_ENTRY.to_be_bytes());
    push_u24_prefixed(&mut out, certificate)?;
    push_u16_prefixed(&mut out, &[]);
    Ok(out)
}

/// A certificate log leaf, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogLeaf {
    /// A precertificate entry.
    Precert {
        /// The entry's timestamp.
        timestamp_ms: u64,
        /// SHA-256 of the issuing CA's SubjectPublicKeyInfo.
        issuer_key_hash: [u8; 32],
        /// The TBSCertificate without the poison.
        tbs: Vec<u8>,
    },
    /// A final certificate entry.
    X509 {
        /// The entry's timestamp.
        timestamp_ms: u64,
        /// The certificate, DER.
        certificate: Vec<u8>,
    },
}

impl LogLeaf {
    /// Parses a `MerkleTreeLeaf` as [`precert_leaf`] and [`x509_leaf`] write them.
    pub fn parse(bytes: &[u8]) -> Result<LogLeaf, CertError> {
        let bad = |what: &str| CertError::Malformed(format!("log leaf: {what}"));
        let mut reader = Reader(bytes);
        if reader.take(2)? != [0, 0] {
            return Err(bad("not a v1 timestamped_entry"));
        }
        let timestamp_ms = u64::from_be_bytes(reader.take(8)?.try_into().map_err(|_| bad("t"))?);
        let kind = u16::from_be_bytes(reader.take(2)?.try_into().map_err(|_| bad("type"))?);
        let leaf = match kind {
            X509_ENTRY => LogLeaf::X509 {
                timestamp_ms,
                certificate: reader.u24_prefixed()?.to_vec(),
            },
            PRECERT_ENTRY => LogLeaf::Precert {
                timestamp_ms,
                issuer_key_hash: reader.take(32)?.try_into().map_err(|_| bad("hash"))?,
                tbs: reader.u24_prefixed()?.to_vec(),
            },
            _ => return Err(bad("unknown entry type")),
        };
        reader.u16_prefixed()?;
        reader.end()?;
        Ok(leaf)
    }
}

fn leaf_index_extension(leaf_index: u64) -> Result<Vec<u8>, CertError> {
    if leaf_index > LEAF_INDEX_MAX {
        return Err(CertError::Sct(format!(
            "leaf index {leaf_index} does not fit static-ct-api's 40 bits"
        )));
    }
    let mut out = vec![LEAF_INDEX_EXTENSION, 0, 5];
    out.extend_from_slice(&leaf_index.to_be_bytes()[3..]);
    Ok(out)
}

fn parse_leaf_index(extensions: &[u8]) -> Result<u64, CertError> {
    let mut reader = Reader(extensions);
    while !reader.0.is_empty() {
        let kind = reader.take(1)?[0];
        let data = reader.u16_prefixed()?;
        if kind == LEAF_INDEX_EXTENSION {
            if data.len() != 5 {
                return Err(CertError::Sct("leaf_index is not 5 bytes".into()));
            }
            let mut bytes = [0u8; 8];
            bytes[3..].copy_from_slice(data);
            return Ok(u64::from_be_bytes(bytes));
        }
    }
    Err(CertError::Sct("no leaf_index extension".into()))
}

fn push_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every caller's input is far below 64 KiB (an SCT, a list of one, a 5-byte extension).
    let length = u16::try_from(bytes.len()).expect("TLS u16 vector over 64 KiB");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn push_u24_prefixed(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CertError> {
    if bytes.len() >= 1 << 24 {
        return Err(CertError::Malformed("certificate over 16 MiB".into()));
    }
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_be_bytes()[1..]);
    out.extend_from_slice(bytes);
    Ok(())
}

/// A bounds-checked reader of TLS-encoded structures.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], CertError> {
        if self.0.len() < count {
            return Err(CertError::Malformed("TLS structure truncated".into()));
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(head)
    }

    fn u16_prefixed(&mut self) -> Result<&'a [u8], CertError> {
        let length = self.take(2)?;
        self.take(usize::from(u16::from_be_bytes([length[0], length[1]])))
    }

    fn u24_prefixed(&mut self) -> Result<&'a [u8], CertError> {
        let length = self.take(3)?;
        self.take(
            usize::from(length[0]) << 16 | usize::from(length[1]) << 8 | usize::from(length[2]),
        )
    }

    fn end(&self) -> Result<(), CertError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CertError::Malformed("trailing bytes".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_sct_round_trips_and_verifies() {
        let key = CtKey::from_scalar(&[7u8; 32]).unwrap();
        let hash = [9u8; 32];
        let sct = key
            .sign_precert(1_700_000_000_000, &hash, b"tbs", 42)
            .unwrap();
        let parsed = Sct::parse_list_extension(&sct.list_extension_value()).unwrap();
        assert_eq!(parsed, sct);
        assert_eq!(parsed.leaf_index().unwrap(), 42);
        parsed
            .verify_precert(key.spki_der(), &hash, b"tbs")
            .unwrap();
        assert!(
            parsed
                .verify_precert(key.spki_der(), &hash, b"tbx")
                .is_err()
        );
        let pem = key.to_pkcs8_pem().unwrap();
        assert_eq!(CtKey::from_pkcs8_pem(&pem).unwrap().log_id(), key.log_id());
    }

    #[test]
    fn leaves_round_trip() {
        let leaf = precert_leaf(5, &[1u8; 32], b"abc").unwrap();
        assert_eq!(
            LogLeaf::parse(&leaf).unwrap(),
            LogLeaf::Precert {
                timestamp_ms: 5,
                issuer_key_hash: [1u8; 32],
                tbs: b"abc".to_vec()
            }
        );
        let leaf = x509_leaf(6, b"cert").unwrap();
        assert!(matches!(
            LogLeaf::parse(&leaf).unwrap(),
            LogLeaf::X509 {
                timestamp_ms: 6,
                ..
            }
        ));
        assert!(LogLeaf::parse(&leaf[..leaf.len() - 1]).is_err());
    }
}
