//! RFC 3161 timestamps: a trusted timestamp authority's signed statement that the bundle's
//! signature existed at `genTime`. For Rekor v2 entries, which carry no integrated time, this
//! is the only source of the time at which the certificate must have been valid.
//!
//! What is checked, in order (RFC 3161 §2.4.2, RFC 5652 §5):
//! 1. the `TimeStampResp` status is granted (0) or grantedWithMods (1), and the token is a CMS
//!    `SignedData` with one `SignerInfo` over an `id-ct-TSTInfo`;
//! 2. `TSTInfo.messageImprint` is the hash (by its own algorithm) of the bundle's signature;
//! 3. the signed attributes carry `contentType` = `id-ct-TSTInfo` and a `messageDigest` equal to
//!    the hash of the encapsulated `TSTInfo`;
//! 4. for some timestamp authority of the trusted root valid at `genTime`: its first
//!    certificate's key signed the DER `SET OF` signed attributes, that certificate chains to
//!    the rest of the authority's chain, and every certificate of the chain is valid at
//!    `genTime` (so an expired TSA chain still proves old times, but not later ones).
//!
//! Certificates embedded in the token are not used: trust comes only from the trusted root,
//! which also makes a token from an unknown TSA fail whether or not it embeds its chain.

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::certificate::verify_chain_to;
use crate::der::{self, Reader, tag};
use crate::key::{self, PublicKey};
use crate::time::UnixMillis;
use crate::trust_root::CertificateAuthority;
use tlog::entry::HashAlgorithm;

/// The largest timestamp response accepted: 64 KiB (Sigstore's are about 1.3 KiB, 3 KiB with an
/// embedded chain).
pub const TIMESTAMP_BYTES_MAX: usize = 64 * 1024;

/// DER OID bytes of `id-signedData` (1.2.840.113549.1.7.2).
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// DER OID bytes of `id-ct-TSTInfo` (1.2.840.113549.1.9.16.1.4).
const OID_TST_INFO: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
];
/// DER OID bytes of the `contentType` attribute (1.2.840.113549.1.9.3).
const OID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
/// DER OID bytes of the `messageDigest` attribute (1.2.840.113549.1.9.4).
const OID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
/// DER OID bytes of SHA-256, SHA-384 and SHA-512 (2.16.840.1.101.3.4.2.{1,2,3}).
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// A DER `TimeStampReq` for `signature`, as Sigstore clients send it: a SHA-256 imprint of
/// the signature, `nonce` (made positive), no policy, and `certReq` set.
pub fn request(signature: &[u8], nonce: [u8; 8]) -> Result<Vec<u8>, TimestampError> {
    use ::der::Encode as _;
    let malformed = |error: ::der::Error| TimestampError::Malformed(error.to_string());
    let mut nonce = nonce;
    nonce[0] = (nonce[0] & 0x7f) | 0x01;
    x509_tsp::TimeStampReq {
        version: x509_tsp::TspVersion::V1,
        message_imprint: x509_tsp::MessageImprint {
            hash_algorithm: x509_cert::spki::AlgorithmIdentifier {
                oid: ::der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
                parameters: None,
            },
            hashed_message: ::der::asn1::OctetString::new(
                HashAlgorithm::Sha256.hash(signature).as_bytes(),
            )
            .map_err(malformed)?,
        },
        req_policy: None,
        nonce: Some(::der::asn1::Int::new(&nonce).map_err(malformed)?),
        cert_req: true,
        extensions: None,
    }
    .to_der()
    .map_err(malformed)
}

/// Checks a TSA's reply to [`request`] before it goes into a bundle: granted, a token whose
/// `TSTInfo` timestamps `signature` (SHA-256) and echoes `nonce`. Whether a trusted authority
/// signed it is [`verify`]'s question, asked with a trusted root.
pub fn check_reply(reply: &[u8], signature: &[u8], nonce: [u8; 8]) -> Result<(), TimestampError> {
    use ::der::{Decode as _, Encode as _};
    if reply.len() > TIMESTAMP_BYTES_MAX {
        return Err(TimestampError::TooLarge {
            len: reply.len(),
            max: TIMESTAMP_BYTES_MAX,
        });
    }
    let malformed = |error: ::der::Error| TimestampError::Malformed(error.to_string());
    let response = x509_tsp::TimeStampResp::from_der(reply).map_err(malformed)?;
    use cmpv2::status::PkiStatus;
    match response.status.status {
        PkiStatus::Accepted | PkiStatus::GrantedWithMods => {}
        other => return Err(TimestampError::Status(other as u8)),
    }
    let token = response
        .time_stamp_token
        .ok_or_else(|| TimestampError::Malformed("granted reply without a token".to_owned()))?;
    let signed_data =
        cms::signed_data::SignedData::from_der(&token.content.to_der().map_err(malformed)?)
            .map_err(malformed)?;
    let content = signed_data
        .encap_content_info
        .econtent
        .ok_or_else(|| TimestampError::Malformed("token without a TSTInfo".to_owned()))?;
    let tst = x509_tsp::TstInfo::from_der(content.value()).map_err(malformed)?;
    if tst.message_imprint.hashed_message.as_bytes()
        != HashAlgorithm::Sha256.hash(signature).as_bytes()
    {
        return Err(TimestampError::ImprintMismatch);
    }
    let mut sent = nonce;
    sent[0] = (sent[0] & 0x7f) | 0x01;
    if tst.nonce.as_ref().map(::der::asn1::Int::as_bytes) != Some(&sent[..]) {
        return Err(TimestampError::Malformed(
            "the token does not carry the request's nonce".to_owned(),
        ));
    }
    Ok(())
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The response is larger than [`TIMESTAMP_BYTES_MAX`].
    #[error("timestamp is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The DER structure is not a timestamp response.
    #[error("malformed timestamp: {0}")]
    Malformed(String),
    /// The TSA did not grant the request.
    #[error("timestamp response status {0} is not granted")]
    Status(u8),
    /// The message imprint is not the hash of the bundle's signature.
    #[error("timestamp message imprint does not match the bundle's signature")]
    ImprintMismatch,
    /// The signed attributes do not match the TSTInfo.
    #[error("timestamp signed attributes: {0}")]
    SignedAttributes(&'static str),
    /// The trusted root lists no timestamp authority.
    #[error("the trusted root has no timestamp authority to verify the bundle's timestamps")]
    NoAuthority,
    /// No trusted authority valid at `genTime` signed the token.
    #[error(
        "timestamp at {time} is not signed by a trusted timestamp authority valid then: {reason}"
    )]
    Untrusted {
        /// The token's `genTime`.
        time: UnixMillis,
        /// Why the last candidate failed.
        reason: String,
    },
}

impl From<der::DerError> for TimestampError {
    fn from(error: der::DerError) -> TimestampError {
        TimestampError::Malformed(error.to_string())
    }
}

/// Parses a DER `TimeStampResp` without verifying anything and returns its unverified
/// `genTime`: the parser [`verify`] runs first, public for the fuzz targets (`fuzz/`).
pub fn parse(response: &[u8]) -> Result<UnixMillis, TimestampError> {
    if response.len() > TIMESTAMP_BYTES_MAX {
        return Err(TimestampError::TooLarge {
            len: response.len(),
            max: TIMESTAMP_BYTES_MAX,
        });
    }
    Ok(Token::parse(response)?.gen_time)
}

/// Verifies a DER `TimeStampResp` over `signature` against the trusted `authorities`; returns
/// the verified `genTime`.
pub fn verify(
    response: &[u8],
    signature: &[u8],
    authorities: &[CertificateAuthority],
) -> Result<UnixMillis, TimestampError> {
    if response.len() > TIMESTAMP_BYTES_MAX {
        return Err(TimestampError::TooLarge {
            len: response.len(),
            max: TIMESTAMP_BYTES_MAX,
        });
    }
    let token = Token::parse(response)?;

    let imprint_hash = hash_algorithm(token.imprint_algorithm)?;
    if imprint_hash.hash(signature).as_bytes() != token.imprint {
        return Err(TimestampError::ImprintMismatch);
    }
    if token.content_type != Some(OID_TST_INFO) {
        return Err(TimestampError::SignedAttributes(
            "contentType is not id-ct-TSTInfo",
        ));
    }
    let digest_hash = hash_algorithm(token.digest_algorithm)?;
    if token.message_digest != Some(digest_hash.hash(token.tst_info).as_bytes()) {
        return Err(TimestampError::SignedAttributes(
            "messageDigest is not the hash of the TSTInfo",
        ));
    }

    if authorities.is_empty() {
        return Err(TimestampError::NoAuthority);
    }
    let time = token.gen_time;
    // The signature is over the DER `SET OF Attribute`: the `[0] IMPLICIT` tag of the field
    // replaced by the universal SET tag (RFC 5652 §5.4).
    let mut signed_attributes = token.signed_attributes_raw.to_vec();
    if let Some(first) = signed_attributes.first_mut() {
        *first = tag::SET;
    }
    let signature_hash = match key::signature_hash_der(token.signature_algorithm) {
        Some(hash) => hash,
        // `id-ecPublicKey` or `rsaEncryption` as the "signature algorithm": the digest
        // algorithm says which hash.
        None => Some(digest_hash),
    };
    let mut reason = "no timestamp authority is valid at that time".to_owned();
    for authority in authorities {
        if !authority.valid_for.contains(time) {
            continue;
        }
        match verify_with(
            authority,
            time,
            signature_hash,
            &signed_attributes,
            token.signature,
        ) {
            Ok(()) => return Ok(time),
            Err(why) => reason = format!("{}: {why}", authority.uri),
        }
    }
    Err(TimestampError::Untrusted { time, reason })
}

fn verify_with(
    authority: &CertificateAuthority,
    time: UnixMillis,
    hash: Option<HashAlgorithm>,
    signed_attributes: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let (signer_der, above) = authority
        .cert_chain
        .split_first()
        .ok_or("empty certificate chain")?;
    let (_, signer) = X509Certificate::from_der(signer_der)
        .map_err(|e| format!("TSA certificate is malformed: {e}"))?;
    // RFC 3161 §2.3: the TSA's certificate is for timestamping (sigstore-go checks it too).
    let eku = signer.extended_key_usage().ok().flatten();
    if !eku.is_some_and(|eku| eku.value.time_stamping) {
        return Err("the TSA certificate lacks the timeStamping extended key usage".to_owned());
    }
    let key =
        PublicKey::from_spki_der(signer.public_key().raw).map_err(|e| format!("TSA key: {e}"))?;
    if !key.verify(hash, signed_attributes, signature) {
        return Err("the token is not signed by this authority's key".to_owned());
    }
    let validity = signer.validity();
    let not_before = UnixMillis::from_seconds(validity.not_before.timestamp());
    let not_after = UnixMillis::from_seconds(validity.not_after.timestamp())
        .map(|t| UnixMillis(t.0.saturating_add(999)));
    if not_before.is_none_or(|nb| time < nb) || not_after.is_none_or(|na| time > na) {
        return Err("genTime is outside the TSA certificate's validity".to_owned());
    }
    verify_chain_to(&signer, above, time)
}

/// The fields of a timestamp token the checks need, as spans of the response.
struct Token<'a> {
    imprint_algorithm: &'a [u8],
    imprint: &'a [u8],
    gen_time: UnixMillis,
    tst_info: &'a [u8],
    digest_algorithm: &'a [u8],
    signed_attributes_raw: &'a [u8],
    content_type: Option<&'a [u8]>,
    message_digest: Option<&'a [u8]>,
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
}

impl<'a> Token<'a> {
    fn parse(response: &'a [u8]) -> Result<Token<'a>, TimestampError> {
        let malformed = |what: &str| TimestampError::Malformed(what.to_owned());

        // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo }
        let response = der::parse_one(response, tag::SEQUENCE)?;
        let mut fields = response.reader();
        let status_info = fields.next(tag::SEQUENCE)?;
        let status = status_info.reader().next(tag::INTEGER)?;
        match status.value {
            [0] | [1] => {}
            [other] => return Err(TimestampError::Status(*other)),
            _ => return Err(malformed("status")),
        }
        let content_info = fields.next(tag::SEQUENCE)?;
        fields.finish()?;

        // ContentInfo ::= SEQUENCE { contentType id-signedData, content [0] EXPLICIT SignedData }
        let mut fields = content_info.reader();
        if fields.next(tag::OID)?.value != OID_SIGNED_DATA {
            return Err(malformed("token is not CMS SignedData"));
        }
        let explicit = fields.next(tag::CONTEXT_0)?;
        fields.finish()?;
        let signed_data = der::parse_one(explicit.value, tag::SEQUENCE)?;

        // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
        //   certificates [0] OPTIONAL, crls [1] OPTIONAL, signerInfos SET }
        let mut fields = signed_data.reader();
        fields.next(tag::INTEGER)?;
        fields.next(tag::SET)?;
        let encapsulated = fields.next(tag::SEQUENCE)?;
        fields.optional(tag::CONTEXT_0)?;
        fields.optional(tag::CONTEXT_1)?;
        let signer_infos = fields.next(tag::SET)?;
        fields.finish()?;

        let mut encapsulated = encapsulated.reader();
        if encapsulated.next(tag::OID)?.value != OID_TST_INFO {
            return Err(malformed("encapsulated content is not a TSTInfo"));
        }
        let explicit = encapsulated.next(tag::CONTEXT_0)?;
        encapsulated.finish()?;
        let tst_info = der::parse_one(explicit.value, tag::OCTET_STRING)?.value;

        // TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime, ... }
        let tst = der::parse_one(tst_info, tag::SEQUENCE)?;
        let mut fields = tst.reader();
        fields.next(tag::INTEGER)?;
        fields.next(tag::OID)?;
        let imprint = fields.next(tag::SEQUENCE)?;
        fields.next(tag::INTEGER)?;
        let gen_time = fields.next(tag::GENERALIZED_TIME)?;
        let gen_time = UnixMillis::parse_generalized_time(gen_time.value)
            .ok_or_else(|| malformed("genTime"))?;
        let mut imprint = imprint.reader();
        let imprint_algorithm = algorithm_oid(&mut imprint)?;
        let hashed_message = imprint.next(tag::OCTET_STRING)?.value;
        imprint.finish()?;

        // Exactly one SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm,
        //   signedAttrs [0] IMPLICIT, signatureAlgorithm, signature OCTET STRING, ... }
        let mut signers = signer_infos.reader();
        let signer = signers.next(tag::SEQUENCE)?;
        if !signers.is_empty() {
            return Err(malformed("more than one SignerInfo"));
        }
        let mut fields = signer.reader();
        fields.next(tag::INTEGER)?;
        fields.next_any()?; // sid: issuerAndSerialNumber or [0] subjectKeyIdentifier
        let digest_algorithm = algorithm_oid(&mut fields)?;
        let signed_attributes = fields
            .optional(tag::CONTEXT_0)?
            .ok_or_else(|| malformed("SignerInfo has no signed attributes"))?;
        let signature_algorithm = algorithm_oid(&mut fields)?;
        let signature = fields.next(tag::OCTET_STRING)?.value;

        let mut content_type = None;
        let mut message_digest = None;
        let mut attributes = signed_attributes.reader();
        while !attributes.is_empty() {
            let attribute = attributes.next(tag::SEQUENCE)?;
            let mut attribute = attribute.reader();
            let oid = attribute.next(tag::OID)?.value;
            let values = attribute.next(tag::SET)?;
            let mut values = values.reader();
            let duplicate = || malformed("duplicate signed attribute");
            if oid == OID_CONTENT_TYPE {
                if content_type.is_some() {
                    return Err(duplicate());
                }
                content_type = Some(values.next(tag::OID)?.value);
                values.finish()?;
            } else if oid == OID_MESSAGE_DIGEST {
                if message_digest.is_some() {
                    return Err(duplicate());
                }
                message_digest = Some(values.next(tag::OCTET_STRING)?.value);
                values.finish()?;
            }
        }

        Ok(Token {
            imprint_algorithm,
            imprint: hashed_message,
            gen_time,
            tst_info,
            digest_algorithm,
            signed_attributes_raw: signed_attributes.raw,
            content_type,
            message_digest,
            signature_algorithm,
            signature,
        })
    }
}

/// The OID bytes of an `AlgorithmIdentifier` (parameters ignored).
fn algorithm_oid<'a>(reader: &mut Reader<'a>) -> Result<&'a [u8], TimestampError> {
    let identifier = reader.next(tag::SEQUENCE)?;
    Ok(identifier.reader().next(tag::OID)?.value)
}

fn hash_algorithm(oid: &[u8]) -> Result<HashAlgorithm, TimestampError> {
    match oid {
        OID_SHA256 => Ok(HashAlgorithm::Sha256),
        OID_SHA384 => Ok(HashAlgorithm::Sha384),
        OID_SHA512 => Ok(HashAlgorithm::Sha512),
        _ => Err(TimestampError::Malformed(
            "unsupported hash algorithm".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::der::Decode as _;

    /// The request is a DER `TimeStampReq` over SHA-256 of the signature, with a positive
    /// nonce and `certReq`; a reply that is not a granted token for it is refused.
    #[test]
    fn requests_are_well_formed_and_bad_replies_refused() {
        let der = request(b"signature", [0xff; 8]).unwrap();
        let parsed = x509_tsp::TimeStampReq::from_der(&der).unwrap();
        assert_eq!(
            parsed.message_imprint.hashed_message.as_bytes(),
            HashAlgorithm::Sha256.hash(b"signature").as_bytes()
        );
        assert_eq!(parsed.nonce.unwrap().as_bytes()[0], 0x7f);
        assert!(parsed.cert_req);

        assert!(matches!(
            check_reply(b"junk", b"signature", [1; 8]),
            Err(TimestampError::Malformed(_))
        ));
        assert!(matches!(
            check_reply(&vec![0x30; TIMESTAMP_BYTES_MAX + 1], b"signature", [1; 8]),
            Err(TimestampError::TooLarge { .. })
        ));
        // A rejection: PKIStatusInfo { status 2 } and no token.
        let rejection = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02];
        assert_eq!(
            check_reply(&rejection, b"signature", [1; 8]),
            Err(TimestampError::Status(2))
        );
    }
}
