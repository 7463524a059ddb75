//! The signing certificate: its chain to a trusted CA at a given time, the Fulcio profile and
//! identity, and its embedded SCT.
//!
//! Chain building is deliberately narrow, as in sigstore-go: the only intermediates and roots
//! are those of one `certificateAuthorities` entry of the trusted root (its `certChain`, the
//! issuing certificate first, the anchor last); certificates the bundle carries besides the leaf
//! are never used. The chain must hold at every verified time (an RFC 3161 `genTime` or a
//! Rekor `integratedTime` backed by a SET), because a short-lived Fulcio certificate has long
//! expired by the time anyone verifies it: the logs' and TSAs' times stand in for "now".
//!
//! The SCT check is RFC 6962 §3.2: the log signed the *precertificate*, whose TBSCertificate is
//! the issued one's without the SCT-list extension (and without the poison, which the issued
//! certificate never has), bound to the issuer by `SHA-256(issuer SPKI)`.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::der::{self, tag};
use crate::key::{self, PublicKey, sha256};
use crate::time::UnixMillis;
use crate::trust_root::{CertificateAuthority, TransparencyLog};

/// `1.3.6.1.4.1.11129.2.4.2`, the embedded SCT list extension (RFC 6962 §3.3), as DER OID bytes.
const SCT_LIST_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];
/// `1.3.6.1.4.1.11129.2.4.3`, the precertificate poison extension.
const POISON_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03];
/// The CT precertificate-signing EKU: an issuer carrying it signs on behalf of the CA above.
const PRECERT_SIGNING_EKU: &str = "1.3.6.1.4.1.11129.2.4.4";
/// Fulcio's OIDC issuer extension, V2: a DER UTF8String.
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// Fulcio's OIDC issuer extension, V1 (deprecated): the raw UTF-8 bytes, no DER wrapper.
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's otherName SAN for username identities (a UTF8String).
const OID_OTHERNAME_USERNAME: &str = "1.3.6.1.4.1.57264.1.7";

/// Why the signing certificate was refused. Each variant is a distinct check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The certificate is not DER X.509, or its key is unusable.
    #[error("signing certificate is malformed: {0}")]
    Malformed(String),
    /// The certificate does not follow the Fulcio profile (key usage, EKU, not a CA).
    #[error("signing certificate profile: {0}")]
    Profile(&'static str),
    /// No trusted CA valid at the time issued this certificate.
    #[error("certificate chain: no trusted certificate authority verifies it at {time}: {reason}")]
    Chain {
        /// The verified time the chain was checked at.
        time: UnixMillis,
        /// Why the closest candidate failed.
        reason: String,
    },
    /// The time is outside the certificate's own validity.
    #[error(
        "certificate validity: {time} is outside notBefore {not_before} .. notAfter {not_after}"
    )]
    Expired {
        /// The verified time.
        time: UnixMillis,
        /// notBefore.
        not_before: UnixMillis,
        /// notAfter.
        not_after: UnixMillis,
    },
    /// The SCT check failed.
    #[error("signed certificate timestamp: {0}")]
    Sct(String),
    /// No SAN equals the expected identity.
    #[error("certificate identity: expected {expected:?}, certificate has {found:?}")]
    Identity {
        /// The identity asked for.
        expected: String,
        /// The SAN values found.
        found: Vec<String>,
    },
    /// The OIDC issuer is missing or differs.
    #[error("certificate OIDC issuer: expected {expected:?}, certificate has {found:?}")]
    Issuer {
        /// The issuer asked for.
        expected: String,
        /// The issuer found, if any.
        found: Option<String>,
    },
}

/// A parsed signing certificate.
#[derive(Debug)]
pub struct SigningCertificate<'a> {
    der: &'a [u8],
    certificate: X509Certificate<'a>,
    key: PublicKey,
}

impl<'a> SigningCertificate<'a> {
    /// Parses a DER certificate and its public key, and checks the Fulcio leaf profile:
    /// not a CA, key usage digitalSignature, extended key usage codeSigning.
    pub fn parse(der: &'a [u8]) -> Result<SigningCertificate<'a>, CertificateError> {
        let (rest, certificate) = X509Certificate::from_der(der)
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertificateError::Malformed(
                "trailing bytes after the certificate".to_owned(),
            ));
        }
        let key = PublicKey::from_spki_der(certificate.public_key().raw)
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        if certificate.is_ca() {
            return Err(CertificateError::Profile("the signing certificate is a CA"));
        }
        // RFC 5280 §4.2: a certificate with a critical extension the verifier does not
        // understand must be rejected (Go's x509.Verify does the same for sigstore-go).
        if certificate.extensions().iter().any(|e| {
            e.critical
                && matches!(
                    e.parsed_extension(),
                    ParsedExtension::UnsupportedExtension { .. }
                        | ParsedExtension::ParseError { .. }
                )
        }) {
            return Err(CertificateError::Profile(
                "the signing certificate has an unknown critical extension",
            ));
        }
        let key_usage = certificate
            .key_usage()
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        if !key_usage.is_some_and(|ku| ku.value.digital_signature()) {
            return Err(CertificateError::Profile(
                "key usage does not include digitalSignature",
            ));
        }
        let eku = certificate
            .extended_key_usage()
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        if !eku.is_some_and(|eku| eku.value.code_signing) {
            return Err(CertificateError::Profile(
                "extended key usage does not include codeSigning",
            ));
        }
        Ok(SigningCertificate {
            der,
            certificate,
            key,
        })
    }

    /// The certificate's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The DER certificate.
    pub fn der(&self) -> &'a [u8] {
        self.der
    }

    /// Checks that `time` is within the certificate's validity.
    pub fn check_valid_at(&self, time: UnixMillis) -> Result<(), CertificateError> {
        let (not_before, not_after) = validity(&self.certificate);
        if time < not_before || time > not_after {
            return Err(CertificateError::Expired {
                time,
                not_before,
                not_after,
            });
        }
        Ok(())
    }

    /// Finds a CA of the trusted root that is valid at `time` and whose chain verifies this
    /// certificate at `time`; returns it.
    pub fn verify_chain<'c>(
        &self,
        authorities: &'c [CertificateAuthority],
        time: UnixMillis,
    ) -> Result<&'c CertificateAuthority, CertificateError> {
        self.check_valid_at(time)?;
        let mut reason = "the trusted root has no certificate authority".to_owned();
        for authority in authorities {
            if !authority.valid_for.contains(time) {
                reason = format!("{} is not valid at that time", authority.uri);
                continue;
            }
            match verify_chain_to(&self.certificate, &authority.cert_chain, time) {
                Ok(()) => return Ok(authority),
                Err(why) => reason = format!("{}: {why}", authority.uri),
            }
        }
        Err(CertificateError::Chain { time, reason })
    }

    /// Checks that exactly one SCT is embedded and that a trusted CT log signed it for the
    /// precertificate issued by the first certificate of `authority`'s chain.
    pub fn verify_sct(
        &self,
        authority: &CertificateAuthority,
        ctlogs: &[TransparencyLog],
    ) -> Result<(), CertificateError> {
        let sct_error = |reason: &str| CertificateError::Sct(reason.to_owned());
        let mut scts = Vec::new();
        for extension in self.certificate.extensions() {
            if extension.oid.as_bytes() != SCT_LIST_OID {
                continue;
            }
            match extension.parsed_extension() {
                ParsedExtension::SCT(list) => scts.extend(list.iter().cloned()),
                _ => return Err(sct_error("the SCT list extension is malformed")),
            }
        }
        let [sct] = scts.as_slice() else {
            return Err(CertificateError::Sct(format!(
                "expected exactly one embedded SCT, found {}",
                scts.len()
            )));
        };
        if sct.version.0 != 0 {
            return Err(sct_error("not a v1 SCT"));
        }
        // SHA-256 is the only hash RFC 6962 v1 logs use (DigitallySigned hash id 4).
        if sct.signature.hash_alg_id != 4 {
            return Err(sct_error("the SCT is not signed with SHA-256"));
        }
        let issuer = sct_issuer(&authority.cert_chain).map_err(|e| sct_error(&e))?;
        let tbs = precertificate_tbs(self.certificate.tbs_certificate.as_ref())
            .map_err(|e| CertificateError::Sct(format!("precertificate TBS: {e}")))?;
        let tbs_len = u32::try_from(tbs.len())
            .ok()
            .filter(|&len| len < 1 << 24)
            .ok_or_else(|| sct_error("the TBSCertificate is too long"))?;
        let extensions = sct.extensions.0;
        let extensions_len =
            u16::try_from(extensions.len()).map_err(|_| sct_error("SCT extensions too long"))?;
        // RFC 6962 §3.2 `digitally-signed struct` for a precert_entry.
        let mut signed = Vec::with_capacity(tbs.len() + extensions.len() + 64);
        signed.push(0); // sct_version v1
        signed.push(0); // signature_type certificate_timestamp
        signed.extend_from_slice(&sct.timestamp.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
        signed.extend_from_slice(&sha256(&issuer));
        signed.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&extensions_len.to_be_bytes());
        signed.extend_from_slice(extensions);

        // As sigstore-go does, a CT log key counts only within its `validFor`: a key retired
        // (or not yet in use) at the SCT's time may be compromised, or another log's.
        let mut trusted = ctlogs
            .iter()
            .filter(|log| log.log_id == sct.id.key_id.as_slice())
            .peekable();
        if trusted.peek().is_none() {
            return Err(sct_error("the SCT's log is not a trusted CT log"));
        }
        let time = i64::try_from(sct.timestamp)
            .map(UnixMillis)
            .map_err(|_| sct_error("the SCT timestamp is out of range"))?;
        let log = trusted
            .find(|log| log.valid_for.contains(time))
            .ok_or_else(|| {
                CertificateError::Sct(format!(
                    "the SCT's CT log key is not valid at the SCT's time {time}"
                ))
            })?;
        let verified = if log.key_details.starts_with("PKCS1_RSA") {
            key::verify_pkcs1_rsa_sha256(&log.public_key, &signed, sct.signature.data)
        } else {
            PublicKey::from_spki_der(&log.public_key)
                .map_err(|e| CertificateError::Sct(format!("CT log key: {e}")))?
                .verify(
                    Some(tlog::entry::HashAlgorithm::Sha256),
                    &signed,
                    sct.signature.data,
                )
        };
        if !verified {
            return Err(sct_error("the SCT signature does not verify"));
        }
        Ok(())
    }

    /// The SAN identities: e-mail addresses, URIs and Fulcio username otherNames.
    pub fn identities(&self) -> Vec<String> {
        let Ok(Some(san)) = self.certificate.subject_alternative_name() else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::RFC822Name(email) => Some((*email).to_owned()),
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                GeneralName::OtherName(oid, value)
                    if oid.to_id_string() == OID_OTHERNAME_USERNAME =>
                {
                    other_name_utf8(value)
                }
                _ => None,
            })
            .collect()
    }

    /// The OIDC issuer: extension `1.3.6.1.4.1.57264.1.8` (DER UTF8String) if present, else
    /// the deprecated `.1.1` (raw bytes).
    pub fn oidc_issuer(&self) -> Option<String> {
        let extension = |oid: &str| {
            self.certificate
                .extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == oid)
                .map(|e| e.value)
        };
        if let Some(value) = extension(OID_ISSUER_V2) {
            return der::parse_one(value, tag::UTF8_STRING)
                .ok()
                .and_then(|tlv| std::str::from_utf8(tlv.value).ok())
                .map(str::to_owned);
        }
        extension(OID_ISSUER_V1)
            .and_then(|value| std::str::from_utf8(value).ok())
            .map(str::to_owned)
    }

    /// Checks the identity (an exact SAN match) and the OIDC issuer (exact match).
    pub fn check_identity(&self, identity: &str, issuer: &str) -> Result<(), CertificateError> {
        let found = self.identities();
        if !found.iter().any(|san| san == identity) {
            return Err(CertificateError::Identity {
                expected: identity.to_owned(),
                found,
            });
        }
        let found = self.oidc_issuer();
        if found.as_deref() != Some(issuer) {
            return Err(CertificateError::Issuer {
                expected: issuer.to_owned(),
                found,
            });
        }
        Ok(())
    }
}

/// notBefore and notAfter (both inclusive, RFC 5280 §4.1.2.5).
fn validity(certificate: &X509Certificate<'_>) -> (UnixMillis, UnixMillis) {
    let validity = certificate.validity();
    let millis = |seconds: i64| UnixMillis::from_seconds(seconds).unwrap_or(UnixMillis(i64::MAX));
    (
        millis(validity.not_before.timestamp()),
        // The whole last second is valid.
        UnixMillis(millis(validity.not_after.timestamp()).0.saturating_add(999)),
    )
}

/// Verifies `child` up `chain` (issuer first, trust anchor last) at `time`: each certificate
/// is a CA, valid at `time`, named as the child's issuer, and signed the child.
pub(crate) fn verify_chain_to(
    child: &X509Certificate<'_>,
    chain: &[Vec<u8>],
    time: UnixMillis,
) -> Result<(), String> {
    let mut child = child.clone();
    for (i, der) in chain.iter().enumerate() {
        let (_, issuer) = X509Certificate::from_der(der)
            .map_err(|e| format!("chain certificate {i} is malformed: {e}"))?;
        if !issuer.is_ca() {
            return Err(format!("chain certificate {i} is not a CA"));
        }
        if let Ok(Some(key_usage)) = issuer.key_usage()
            && !key_usage.value.key_cert_sign()
        {
            return Err(format!("chain certificate {i} may not sign certificates"));
        }
        let (not_before, not_after) = validity(&issuer);
        if time < not_before || time > not_after {
            return Err(format!(
                "chain certificate {i} is not valid at that time ({not_before} .. {not_after})"
            ));
        }
        if child.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(format!(
                "chain certificate {i} is not the issuer of the certificate below it"
            ));
        }
        if !signed_by(&child, &issuer) {
            return Err(format!(
                "the certificate below chain certificate {i} is not signed by it"
            ));
        }
        child = issuer;
    }
    Ok(())
}

/// Whether `issuer`'s key made `child`'s signature.
pub(crate) fn signed_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let Some(hash) = key::signature_hash(&child.signature_algorithm.algorithm) else {
        return false;
    };
    PublicKey::from_spki_der(issuer.public_key().raw).is_ok_and(|key| {
        key.verify(
            hash,
            child.tbs_certificate.as_ref(),
            &child.signature_value.data,
        )
    })
}

/// The DER SPKI of the certificate that issued the leaf for CT purposes: the first of the
/// chain, or the one above it if the first is a precertificate-signing certificate.
fn sct_issuer(chain: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
        X509Certificate::from_der(der)
            .map(|(_, c)| c)
            .map_err(|e| format!("issuer certificate is malformed: {e}"))
    }
    let first = chain.first().ok_or("empty CA chain")?;
    let issuer = parse(first)?;
    let precert_signer = issuer
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| {
            eku.value
                .other
                .iter()
                .any(|oid| oid.to_id_string() == PRECERT_SIGNING_EKU)
        });
    if precert_signer {
        let above = chain
            .get(1)
            .ok_or("precertificate signer without a CA above it")?;
        Ok(parse(above)?.public_key().raw.to_vec())
    } else {
        Ok(issuer.public_key().raw.to_vec())
    }
}

/// The precertificate TBSCertificate: `tbs` with the SCT-list and poison extensions removed,
/// re-encoded in DER (RFC 6962 §3.2).
pub(crate) fn precertificate_tbs(tbs: &[u8]) -> Result<Vec<u8>, der::DerError> {
    let tbs = der::parse_one(tbs, tag::SEQUENCE)?;
    let mut fields = tbs.reader();
    let mut out = Vec::with_capacity(tbs.value.len());
    while !fields.is_empty() {
        let field = fields.next_any()?;
        if field.tag != tag::CONTEXT_3 {
            out.extend_from_slice(field.raw);
            continue;
        }
        let extensions = der::parse_one(field.value, tag::SEQUENCE)?;
        let mut reader = extensions.reader();
        let mut kept = Vec::with_capacity(extensions.value.len());
        while !reader.is_empty() {
            let extension = reader.next(tag::SEQUENCE)?;
            let oid = extension.reader().next(tag::OID)?;
            if oid.value == SCT_LIST_OID || oid.value == POISON_OID {
                continue;
            }
            kept.extend_from_slice(extension.raw);
        }
        out.extend_from_slice(&der::encode(
            tag::CONTEXT_3,
            &der::encode(tag::SEQUENCE, &kept),
        ));
    }
    Ok(der::encode(tag::SEQUENCE, &out))
}

/// The UTF8String inside an otherName value (`[0] EXPLICIT UTF8String`, with or without the
/// `[0]` wrapper depending on how the parser sliced it).
fn other_name_utf8(value: &[u8]) -> Option<String> {
    let inner = der::parse_one(value, tag::CONTEXT_0)
        .map(|tlv| tlv.value)
        .unwrap_or(value);
    der::parse_one(inner, tag::UTF8_STRING)
        .ok()
        .and_then(|tlv| std::str::from_utf8(tlv.value).ok())
        .map(str::to_owned)
}
