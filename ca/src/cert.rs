//! The CA's certificates: the root and intermediate `cairn-node init` makes, and the
//! Fulcio-profile leaf (sigstore/fulcio docs/certificate-specification.md), as a precertificate
//! and as the final certificate with its one embedded SCT.
//!
//! Both are built from the same [`Issuance`] with the same extensions in the same order, the
//! precertificate ending with the poison and the certificate with the SCT list, so that the
//! certificate's TBSCertificate without its SCT is byte for byte the precertificate's without
//! its poison: the bytes the SCT signs and the log holds. [`Authority::certificate`] asserts
//! this, in release builds too; a certificate that drifted from its logged precertificate would
//! be public evidence of misissuance.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};

use crate::ct::{POISON_OID, SCT_LIST_OID, Sct};
use crate::identity::{Identity, San};
use crate::{CertError, der};

/// How long a leaf certificate is valid: 20 minutes.
pub const LEAF_VALIDITY_SECONDS: u64 = 20 * 60;
/// How long the root and intermediate are valid: ten years.
const CA_VALIDITY_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The PEM files of a new CA: root (ECDSA P-384) and intermediate (ECDSA P-256).
#[derive(Clone)]
pub struct NewCa {
    /// The root certificate.
    pub root_pem: String,
    /// The intermediate certificate, issued by the root.
    pub intermediate_pem: String,
    /// The intermediate's private key, PKCS#8.
    pub intermediate_key_pem: String,
}

impl std::fmt::Debug for NewCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCa").finish_non_exhaustive()
    }
}

pub(crate) fn time_at(unix_seconds: u64) -> Result<time::OffsetDateTime, CertError> {
    i64::try_from(unix_seconds)
        .ok()
        .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
        .ok_or_else(|| CertError::Malformed(format!("time {unix_seconds} out of range")))
}

pub(crate) fn rcgen_error(what: &str) -> impl Fn(rcgen::Error) -> CertError + '_ {
    move |error| CertError::Key(format!("{what}: {error}"))
}

/// Makes a root and an intermediate valid from `now_unix_seconds` for ten years; the root's key
/// is dropped (nothing signs with it again: a new intermediate means a new root, made offline).
pub fn new_ca(organization: &str, now_unix_seconds: u64) -> Result<NewCa, CertError> {
    let not_before = time_at(now_unix_seconds)?;
    let not_after = time_at(now_unix_seconds + CA_VALIDITY_SECONDS)?;
    let root_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(rcgen_error("root key"))?;
    let mut root = CertificateParams::default();
    root.distinguished_name = DistinguishedName::new();
    root.distinguished_name
        .push(DnType::OrganizationName, organization);
    root.distinguished_name
        .push(DnType::CommonName, format!("{organization} root"));
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (root.not_before, root.not_after) = (not_before, not_after);
    let root_cert = root.self_signed(&root_key).map_err(rcgen_error("root"))?;
    let root_issuer = Issuer::new(root, &root_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(rcgen_error("intermediate key"))?;
    let mut intermediate = CertificateParams::default();
    intermediate.distinguished_name = DistinguishedName::new();
    intermediate
        .distinguished_name
        .push(DnType::OrganizationName, organization);
    intermediate
        .distinguished_name
        .push(DnType::CommonName, format!("{organization} intermediate"));
    intermediate.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    intermediate.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    intermediate.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    intermediate.use_authority_key_identifier_extension = true;
    (intermediate.not_before, intermediate.not_after) = (not_before, not_after);
    let intermediate_cert = intermediate
        .signed_by(&key, &root_issuer)
        .map_err(rcgen_error("intermediate"))?;
    Ok(NewCa {
        root_pem: root_cert.pem(),
        intermediate_pem: intermediate_cert.pem(),
        intermediate_key_pem: key.serialize_pem(),
    })
}

/// Everything chosen for one certificate before anything is logged. Chosen by the node that
/// issues (serial from its RNG, time from its clock), never by replicated apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuance {
    /// A random 160-bit serial; its top bit is cleared so the INTEGER is positive in 20 bytes.
    pub serial: [u8; 20],
    /// notBefore, and the SCT and log entry timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Who the token proved the caller to be.
    pub identity: Identity,
    /// The certified key, DER SubjectPublicKeyInfo, proven possessed.
    pub spki_der: Vec<u8>,
}

/// A precertificate and the bytes its SCT signs.
#[derive(Clone, Debug)]
pub struct Precertificate {
    /// The precertificate, DER (never handed out; useful to check the profile).
    pub der: Vec<u8>,
    /// Its TBSCertificate without the poison extension: what the log entry holds.
    pub tbs: Vec<u8>,
}

/// The issuing CA: intermediate key and chain.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    root_pem: String,
    intermediate_pem: String,
    issuer_key_hash: [u8; 32],
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

pub(crate) fn single_certificate(pem: &str, what: &str) -> Result<Vec<u8>, CertError> {
    let mut certificates = CertificateDer::pem_slice_iter(pem.as_bytes());
    let first = certificates
        .next()
        .ok_or_else(|| CertError::Key(format!("{what}: no certificate")))?
        .map_err(|error| CertError::Key(format!("{what}: {error}")))?;
    if certificates.next().is_some() {
        return Err(CertError::Key(format!("{what}: more than one certificate")));
    }
    Ok(first.to_vec())
}

impl Authority {
    /// Loads the CA from its PEM files, checking that the key matches the intermediate and that
    /// the intermediate is issued by the root.
    pub fn load(
        root_pem: &str,
        intermediate_pem: &str,
        intermediate_key_pem: &str,
    ) -> Result<Authority, CertError> {
        let root_der = single_certificate(root_pem, "root certificate")?;
        let intermediate_der = single_certificate(intermediate_pem, "intermediate certificate")?;
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(intermediate_key_pem.as_bytes())
            .map_err(|error| CertError::Key(format!("intermediate key: {error}")))?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(rcgen_error("intermediate key (want ECDSA P-256, PKCS#8)"))?;
        let (_, root) = x509_parser::parse_x509_certificate(&root_der)
            .map_err(|error| CertError::Key(format!("root certificate: {error}")))?;
        let (_, intermediate) = x509_parser::parse_x509_certificate(&intermediate_der)
            .map_err(|error| CertError::Key(format!("intermediate certificate: {error}")))?;
        let intermediate_spki = intermediate.public_key().raw.to_vec();
        if intermediate.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CertError::Key(
                "the intermediate key does not match the intermediate certificate".into(),
            ));
        }
        if intermediate.issuer() != root.subject() {
            return Err(CertError::Key(
                "the intermediate is not issued by the root".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(intermediate_der.clone()), key)
            .map_err(rcgen_error("intermediate certificate"))?;
        Ok(Authority {
            issuer,
            root_der,
            intermediate_der,
            root_pem: root_pem.trim().to_string() + "\n",
            intermediate_pem: intermediate_pem.trim().to_string() + "\n",
            issuer_key_hash: Sha256::digest(&intermediate_spki).into(),
        })
    }

    /// SHA-256 of the issuing CA's SubjectPublicKeyInfo (RFC 6962's `issuer_key_hash`).
    pub fn issuer_key_hash(&self) -> &[u8; 32] {
        &self.issuer_key_hash
    }

    /// The chain above a leaf, leaf-most first, as PEM: intermediate, root.
    pub fn chain_pem(&self) -> [&str; 2] {
        [&self.intermediate_pem, &self.root_pem]
    }

    /// The chain above a leaf, leaf-most first, as DER: intermediate, root.
    pub fn chain_der(&self) -> [&[u8]; 2] {
        [&self.intermediate_der, &self.root_der]
    }

    fn leaf_params(
        &self,
        issuance: &Issuance,
        last: CustomExtension,
    ) -> Result<CertificateParams, CertError> {
        let mut params = CertificateParams::default();
        // Empty subject: rcgen then marks the SAN critical, as RFC 5280 requires.
        params.distinguished_name = DistinguishedName::new();
        let mut serial = issuance.serial;
        serial[0] &= 0x7f;
        if serial.iter().all(|byte| *byte == 0) {
            return Err(CertError::Malformed("serial is zero".into()));
        }
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let seconds = issuance.timestamp_ms / 1000;
        params.not_before = time_at(seconds)?;
        params.not_after = time_at(seconds + LEAF_VALIDITY_SECONDS)?;
        params.subject_alt_names = vec![match &issuance.identity.san {
            San::Email(email) => SanType::Rfc822Name(
                email
                    .clone()
                    .try_into()
                    .map_err(|_| CertError::Malformed("email is not IA5".into()))?,
            ),
            San::Uri(uri) => SanType::URI(
                uri.clone()
                    .try_into()
                    .map_err(|_| CertError::Malformed("URI is not IA5".into()))?,
            ),
        }];
        // ExplicitNoCa: a leaf (CA:FALSE) that still gets its SubjectKeyIdentifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        params.custom_extensions = issuance
            .identity
            .extensions
            .iter()
            .map(|(oid, value)| CustomExtension::from_oid_content(oid, value.clone()))
            .collect();
        params.custom_extensions.push(last);
        Ok(params)
    }

    fn sign(&self, params: &CertificateParams, spki_der: &[u8]) -> Result<Vec<u8>, CertError> {
        let key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|error| CertError::Key(format!("certified key: {error}")))?;
        Ok(params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_error("signing the certificate"))?
            .der()
            .to_vec())
    }

    /// The precertificate: the leaf with the critical poison extension last.
    pub fn precertificate(&self, issuance: &Issuance) -> Result<Precertificate, CertError> {
        let mut poison = CustomExtension::from_oid_content(POISON_OID, der::NULL.to_vec());
        poison.set_criticality(true);
        let der = self.sign(&self.leaf_params(issuance, poison)?, &issuance.spki_der)?;
        let tbs = der::remove_last_extension(der::tbs_certificate(&der)?, POISON_OID)?;
        Ok(Precertificate { der, tbs })
    }

    /// The final certificate, with `sct` (signed over `precertificate.tbs`) embedded last.
    ///
    /// # Panics
    ///
    /// If the certificate without its SCT is not the logged precertificate TBS, byte for byte.
    pub fn certificate(
        &self,
        issuance: &Issuance,
        precertificate: &Precertificate,
        sct: &Sct,
    ) -> Result<Vec<u8>, CertError> {
        let list = CustomExtension::from_oid_content(SCT_LIST_OID, sct.list_extension_value());
        let der = self.sign(&self.leaf_params(issuance, list)?, &issuance.spki_der)?;
        let tbs = der::remove_last_extension(der::tbs_certificate(&der)?, SCT_LIST_OID)?;
        assert_eq!(
            tbs, precertificate.tbs,
            "certificate drifted from its logged precertificate"
        );
        Ok(der)
    }
}

/// PEM of a DER certificate.
pub fn to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The TBSCertificate of a final certificate without its SCT list: what the logged
/// precertificate entry holds (for verifiers and tests).
pub fn tbs_without_sct(certificate: &[u8]) -> Result<Vec<u8>, CertError> {
    der::remove_last_extension(der::tbs_certificate(certificate)?, SCT_LIST_OID)
}
