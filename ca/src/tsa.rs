//! The cluster's RFC 3161 timestamp authority: a `TimeStampReq` in, a `TimeStampResp` out,
//! signed by a certificate whose only purpose is timestamping.
//!
//! Rekor v2 entries carry no signed time, so a Sigstore client proves *when* it signed with a
//! timestamp from a TSA its trusted root lists (`timestampAuthorities`). The material is made
//! by `cairn-node init` ([`new_tsa`]): a root (ECDSA P-384, key dropped, as for the CA) and a
//! signing certificate (ECDSA P-256) with the extended key usage `timeStamping` marked
//! critical, as RFC 3161 §2.3 requires and Sigstore's verifiers check.
//!
//! Every request field is checked before anything is signed (RFC 3161 §2.4.1): version 1, a
//! SHA-256/384/512 imprint of the right length, no policy but ours, no extensions, a nonce of
//! at most [`NONCE_BYTES_MAX`] bytes. The token echoes the request's `messageImprint` and
//! nonce, names [`POLICY_OID`], carries the serial and `genTime` the caller chose (the node's
//! randomness and clock seams), and its signed attributes hold `contentType`, `messageDigest`
//! and a `signingCertificateV2` (RFC 5816) naming the signing certificate by its SHA-256. The
//! certificate itself is in the token when the request sets `certReq`.

use std::time::Duration;

use cms::cert::IssuerAndSerialNumber;
use cms::cert::x509::Certificate;
use cms::cert::x509::attr::Attribute;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode as _, Encode as _, Sequence, Tag};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SigningKey as _,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_tsp::{TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::CertError;
use crate::cert::{rcgen_error, single_certificate, time_at};

/// The policy every token names: the default of Sigstore's timestamp-authority, whose API this
/// one implements (clients do not require a particular policy; docs/decisions/0006).
pub const POLICY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.2");
/// The largest `TimeStampReq` accepted: a SHA-512 imprint with a nonce is about 100 bytes.
pub const REQUEST_BYTES_MAX: usize = 4 * 1024;
/// The longest nonce accepted (RFC 3161 suggests 64 bits; clients send 8 to 20 bytes).
pub const NONCE_BYTES_MAX: usize = 32;
/// How long the TSA's root and signing certificate are valid: ten years, like the CA's.
const VALIDITY_SECONDS: u64 = 10 * 365 * 24 * 3600;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// `id-ce-extKeyUsage` (2.5.29.37).
const ID_CE_EXT_KEY_USAGE: [u64; 4] = [2, 5, 29, 37];

/// Why a request was refused: the field at fault, for a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsaError {
    /// The body is larger than [`REQUEST_BYTES_MAX`].
    #[error("timestamp request is {0} bytes, at most {REQUEST_BYTES_MAX} allowed")]
    TooLarge(usize),
    /// The body is not a DER `TimeStampReq`.
    #[error("malformed timestamp request: {0}")]
    Malformed(String),
    /// `messageImprint.hashAlgorithm` is not SHA-256, SHA-384 or SHA-512.
    #[error("messageImprint.hashAlgorithm {0} is not supported (SHA-256, SHA-384, SHA-512)")]
    HashAlgorithm(String),
    /// `messageImprint.hashedMessage` has the wrong length for its algorithm.
    #[error("messageImprint.hashedMessage is {got} bytes, {want} expected for its algorithm")]
    ImprintLength {
        /// Its length.
        got: usize,
        /// The algorithm's digest length.
        want: usize,
    },
    /// `reqPolicy` names a policy this TSA does not apply.
    #[error("reqPolicy {0} is not this TSA's policy ({POLICY_OID})")]
    Policy(String),
    /// The request has extensions, none of which this TSA knows (RFC 3161 §2.4.1: refuse).
    #[error("extensions are not supported")]
    Extensions,
    /// The nonce is longer than [`NONCE_BYTES_MAX`].
    #[error("nonce is {0} bytes, at most {NONCE_BYTES_MAX} allowed")]
    Nonce(usize),
    /// The genTime given is not representable.
    #[error("genTime {0} ms is out of range")]
    Time(u64),
    /// Encoding or signing failed (not the client's fault).
    #[error("signing the timestamp failed: {0}")]
    Internal(String),
}

impl From<der::Error> for TsaError {
    fn from(error: der::Error) -> TsaError {
        TsaError::Internal(error.to_string())
    }
}

/// The PEM files of a new timestamp authority.
#[derive(Clone)]
pub struct NewTsa {
    /// The root certificate (its key is dropped).
    pub root_pem: String,
    /// The signing certificate, issued by the root, EKU timeStamping (critical).
    pub signer_pem: String,
    /// The signing certificate's private key, PKCS#8.
    pub signer_key_pem: String,
}

impl std::fmt::Debug for NewTsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTsa").finish_non_exhaustive()
    }
}

/// Makes a TSA root and signing certificate valid from `now_unix_seconds` for ten years.
pub fn new_tsa(organization: &str, now_unix_seconds: u64) -> Result<NewTsa, CertError> {
    let not_before = time_at(now_unix_seconds)?;
    let not_after = time_at(now_unix_seconds + VALIDITY_SECONDS)?;
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
        .map_err(rcgen_error("TSA root key"))?;
    let mut root = CertificateParams::default();
    root.distinguished_name = DistinguishedName::new();
    root.distinguished_name
        .push(DnType::OrganizationName, organization);
    root.distinguished_name.push(
        DnType::CommonName,
        format!("{organization} timestamping root"),
    );
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (root.not_before, root.not_after) = (not_before, not_after);
    let root_cert = root
        .self_signed(&root_key)
        .map_err(rcgen_error("TSA root"))?;
    let root_issuer = Issuer::new(root, &root_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(rcgen_error("TSA signing key"))?;
    let mut signer = CertificateParams::default();
    signer.distinguished_name = DistinguishedName::new();
    signer
        .distinguished_name
        .push(DnType::OrganizationName, organization);
    signer.distinguished_name.push(
        DnType::CommonName,
        format!("{organization} timestamp authority"),
    );
    signer.is_ca = IsCa::ExplicitNoCa;
    signer.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // rcgen writes its extended key usage extension non-critical; RFC 3161 §2.3 wants it
    // critical and containing only timeStamping, so it is written by hand:
    // SEQUENCE { OID id-kp-timeStamping }.
    let mut eku = CustomExtension::from_oid_content(
        &ID_CE_EXT_KEY_USAGE,
        vec![
            0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
        ],
    );
    eku.set_criticality(true);
    signer.custom_extensions = vec![eku];
    signer.use_authority_key_identifier_extension = true;
    (signer.not_before, signer.not_after) = (not_before, not_after);
    let signer_cert = signer
        .signed_by(&key, &root_issuer)
        .map_err(rcgen_error("TSA signing certificate"))?;
    Ok(NewTsa {
        root_pem: root_cert.pem(),
        signer_pem: signer_cert.pem(),
        signer_key_pem: key.serialize_pem(),
    })
}

/// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash, issuerSerial OPTIONAL }`
/// (RFC 5035), with the default algorithm and no `issuerSerial`.
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies OPTIONAL }`.
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// A request accepted: what the token will say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    request: TimeStampReq,
}

impl Request {
    /// Parses and checks a DER `TimeStampReq`.
    pub fn parse(der: &[u8]) -> Result<Request, TsaError> {
        if der.len() > REQUEST_BYTES_MAX {
            return Err(TsaError::TooLarge(der.len()));
        }
        let request =
            TimeStampReq::from_der(der).map_err(|error| TsaError::Malformed(error.to_string()))?;
        let imprint = &request.message_imprint;
        let want = match imprint.hash_algorithm.oid {
            ID_SHA256 => 32,
            ID_SHA384 => 48,
            ID_SHA512 => 64,
            other => return Err(TsaError::HashAlgorithm(other.to_string())),
        };
        let got = imprint.hashed_message.as_bytes().len();
        if got != want {
            return Err(TsaError::ImprintLength { got, want });
        }
        if let Some(policy) = request.req_policy
            && policy != POLICY_OID
        {
            return Err(TsaError::Policy(policy.to_string()));
        }
        if request.extensions.is_some() {
            return Err(TsaError::Extensions);
        }
        if let Some(nonce) = &request.nonce
            && nonce.as_bytes().len() > NONCE_BYTES_MAX
        {
            return Err(TsaError::Nonce(nonce.as_bytes().len()));
        }
        Ok(Request { request })
    }

    /// Parses and checks the JSON form of Sigstore's timestamp-authority
    /// (`{"artifactHash": base64, "hashAlgorithm": "sha256"|"sha384"|"sha512", "nonce": number,
    /// "certificates": bool, "tsaPolicyOID": "1.2.3"}`), checked like a DER request.
    pub fn from_json(json: &[u8]) -> Result<Request, TsaError> {
        use base64::Engine as _;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct JsonRequest {
            artifact_hash: String,
            hash_algorithm: String,
            #[serde(default)]
            nonce: Option<u64>,
            #[serde(default)]
            certificates: bool,
            #[serde(default, rename = "tsaPolicyOID")]
            tsa_policy_oid: Option<String>,
        }
        if json.len() > REQUEST_BYTES_MAX {
            return Err(TsaError::TooLarge(json.len()));
        }
        let request: JsonRequest =
            serde_json::from_slice(json).map_err(|error| TsaError::Malformed(error.to_string()))?;
        let oid = match request.hash_algorithm.to_ascii_lowercase().as_str() {
            "sha256" => ID_SHA256,
            "sha384" => ID_SHA384,
            "sha512" => ID_SHA512,
            _ => return Err(TsaError::HashAlgorithm(request.hash_algorithm)),
        };
        let hash = base64::engine::general_purpose::STANDARD
            .decode(&request.artifact_hash)
            .map_err(|error| TsaError::Malformed(format!("artifactHash: {error}")))?;
        let req_policy = request
            .tsa_policy_oid
            .filter(|oid| !oid.is_empty())
            .map(|oid| ObjectIdentifier::new(&oid).map_err(|_| TsaError::Policy(oid.clone())))
            .transpose()?;
        let nonce = request
            .nonce
            .map(|nonce| {
                // The minimal positive INTEGER: no leading zero bytes, but one when the top bit
                // is set (and a single zero for 0).
                let be = nonce.to_be_bytes();
                let first = be
                    .iter()
                    .position(|&byte| byte != 0)
                    .unwrap_or(be.len() - 1);
                let mut bytes = Vec::with_capacity(9);
                if be[first] & 0x80 != 0 {
                    bytes.push(0);
                }
                bytes.extend_from_slice(&be[first..]);
                Int::new(&bytes)
            })
            .transpose()?;
        let der = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: x509_tsp::MessageImprint {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid,
                    parameters: None,
                },
                hashed_message: OctetString::new(hash)?,
            },
            req_policy,
            nonce,
            cert_req: request.certificates,
            extensions: None,
        }
        .to_der()?;
        Request::parse(&der)
    }

    /// The hashed message the request asks to timestamp.
    pub fn hashed_message(&self) -> &[u8] {
        self.request.message_imprint.hashed_message.as_bytes()
    }

    /// Whether the request asks for the signing certificate in the token.
    pub fn cert_req(&self) -> bool {
        self.request.cert_req
    }
}

/// The timestamp authority: its signing key and certificate chain.
pub struct TimestampAuthority {
    key: KeyPair,
    signer: Certificate,
    signer_der: Vec<u8>,
    root_der: Vec<u8>,
    chain_pem: String,
}

impl std::fmt::Debug for TimestampAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimestampAuthority").finish_non_exhaustive()
    }
}

impl TimestampAuthority {
    /// Loads the TSA from its PEM files, checking that the key matches the signing
    /// certificate, that the root issued it, and that it is for timestamping (critical EKU).
    pub fn load(
        root_pem: &str,
        signer_pem: &str,
        signer_key_pem: &str,
    ) -> Result<TimestampAuthority, CertError> {
        let root_der = single_certificate(root_pem, "TSA root certificate")?;
        let signer_der = single_certificate(signer_pem, "TSA signing certificate")?;
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(signer_key_pem.as_bytes())
            .map_err(|error| CertError::Key(format!("TSA signing key: {error}")))?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(rcgen_error("TSA signing key (want ECDSA P-256, PKCS#8)"))?;
        let (_, root) = x509_parser::parse_x509_certificate(&root_der)
            .map_err(|error| CertError::Key(format!("TSA root certificate: {error}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&signer_der)
            .map_err(|error| CertError::Key(format!("TSA signing certificate: {error}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CertError::Key(
                "the TSA signing key does not match its certificate".into(),
            ));
        }
        if parsed.issuer() != root.subject()
            || parsed.verify_signature(Some(root.public_key())).is_err()
        {
            return Err(CertError::Key(
                "the TSA signing certificate is not issued by the TSA root".into(),
            ));
        }
        let eku = parsed
            .extended_key_usage()
            .map_err(|error| CertError::Key(format!("TSA signing certificate: {error}")))?;
        if !eku.is_some_and(|eku| eku.critical && eku.value.time_stamping) {
            return Err(CertError::Key(
                "the TSA signing certificate lacks a critical timeStamping extended key usage"
                    .into(),
            ));
        }
        let signer = Certificate::from_der(&signer_der)
            .map_err(|error| CertError::Key(format!("TSA signing certificate: {error}")))?;
        let chain_pem = format!("{}\n{}\n", signer_pem.trim(), root_pem.trim());
        Ok(TimestampAuthority {
            key,
            signer,
            signer_der,
            root_der,
            chain_pem,
        })
    }

    /// The chain, signing certificate first: what the trusted root's `certChain` lists.
    pub fn chain_der(&self) -> [&[u8]; 2] {
        [&self.signer_der, &self.root_der]
    }

    /// The chain as PEM, signing certificate first (`GET /api/v1/timestamp/certchain`).
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// Signs a timestamp for `request`: a DER `TimeStampResp` with status granted whose token
    /// says `gen_time_ms` (truncated to seconds) and carries `serial` (a positive INTEGER; the
    /// caller draws it at random, so serials are unique without shared state).
    pub fn respond(
        &self,
        request: &Request,
        gen_time_ms: u64,
        serial: &[u8; 16],
    ) -> Result<Vec<u8>, TsaError> {
        let request = &request.request;
        let gen_time = GeneralizedTime::from_unix_duration(Duration::from_secs(gen_time_ms / 1000))
            .map_err(|_| TsaError::Time(gen_time_ms))?;
        let mut serial = *serial;
        // Positive and never zero, so the INTEGER always has its 16 bytes.
        serial[0] = (serial[0] & 0x7f) | 0x01;
        let tst_info = TstInfo {
            version: TspVersion::V1,
            policy: POLICY_OID,
            message_imprint: request.message_imprint.clone(),
            serial_number: Int::new(&serial)?,
            gen_time,
            accuracy: None,
            ordering: false,
            nonce: request.nonce.clone(),
            tsa: None,
            extensions: None,
        }
        .to_der()?;

        let sha256 = AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        };
        let signing_certificate = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(Sha256::digest(&self.signer_der).to_vec())?,
            }],
        };
        let attribute = |oid, value: Any| -> Result<Attribute, TsaError> {
            Ok(Attribute {
                oid,
                values: SetOfVec::try_from(vec![value])?,
            })
        };
        let signed_attributes = SetOfVec::try_from(vec![
            attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_CT_TST_INFO)?)?,
            attribute(
                ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(Sha256::digest(&tst_info).to_vec())?)?,
            )?,
            attribute(
                ID_SIGNING_CERTIFICATE_V2,
                Any::encode_from(&signing_certificate)?,
            )?,
        ])?;
        // RFC 5652 §5.4: the signature is over the DER `SET OF Attribute`.
        let signature = self
            .key
            .sign(&signed_attributes.to_der()?)
            .map_err(|error| TsaError::Internal(error.to_string()))?;
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: self.signer.tbs_certificate.issuer.clone(),
                serial_number: self.signer.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(signed_attributes),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            signature: OctetString::new(signature)?,
            unsigned_attrs: None,
        };
        let certificates = if request.cert_req {
            Some(CertificateSet(SetOfVec::try_from(vec![
                cms::cert::CertificateChoices::Certificate(self.signer.clone()),
            ])?))
        } else {
            None
        };
        let signed_data = SignedData {
            // v3: the encapsulated content is not id-data (RFC 5652 §5.1).
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![sha256])?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_CT_TST_INFO,
                econtent: Some(Any::new(Tag::OctetString, tst_info)?),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
        };
        let response = TimeStampResp {
            status: cmpv2_status_granted(),
            time_stamp_token: Some(ContentInfo {
                content_type: ID_SIGNED_DATA,
                content: Any::encode_from(&signed_data)?,
            }),
        };
        Ok(response.to_der()?)
    }
}

/// `PKIStatusInfo { status granted }`.
fn cmpv2_status_granted() -> cmpv2::status::PkiStatusInfo<'static> {
    cmpv2::status::PkiStatusInfo {
        status: cmpv2::status::PkiStatus::Accepted,
        status_string: None,
        fail_info: None,
    }
}

#[cfg(test)]
mod tests;
