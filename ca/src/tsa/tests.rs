use super::*;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use x509_tsp::MessageImprint;

fn authority() -> TimestampAuthority {
    let new = new_tsa("Test", 1_700_000_000).unwrap();
    TimestampAuthority::load(&new.root_pem, &new.signer_pem, &new.signer_key_pem).unwrap()
}

fn request_der(
    oid: ObjectIdentifier,
    hash: &[u8],
    nonce: Option<&[u8]>,
    cert_req: bool,
) -> Vec<u8> {
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: x509_cert::spki::AlgorithmIdentifier {
                oid,
                parameters: None,
            },
            hashed_message: OctetString::new(hash.to_vec()).unwrap(),
        },
        req_policy: None,
        nonce: nonce.map(|nonce| Int::new(nonce).unwrap()),
        cert_req,
        extensions: None,
    }
    .to_der()
    .unwrap()
}

/// The token says what was asked (imprint, nonce), when (genTime), under which policy and
/// serial, and its signature over the signed attributes verifies with the signing
/// certificate's key; the certificate is in it only when asked for.
#[test]
fn a_request_round_trips_into_a_signed_token() {
    let tsa = authority();
    let hash = Sha256::digest(b"a signature").to_vec();
    for cert_req in [false, true] {
        let request = Request::parse(&request_der(
            ID_SHA256,
            &hash,
            Some(&[0x12, 0x34, 0x56, 0x78, 0x9a]),
            cert_req,
        ))
        .unwrap();
        assert_eq!(request.hashed_message(), hash);
        let der = tsa
            .respond(&request, 1_750_000_000_123, &[0xff; 16])
            .unwrap();
        let response = TimeStampResp::from_der(&der).unwrap();
        assert_eq!(response.status.status, cmpv2::status::PkiStatus::Accepted);
        let token = response.time_stamp_token.unwrap();
        assert_eq!(token.content_type, ID_SIGNED_DATA);
        let signed_data = SignedData::from_der(&token.content.to_der().unwrap()).unwrap();
        assert_eq!(signed_data.certificates.is_some(), cert_req);
        let econtent = signed_data.encap_content_info.econtent.unwrap();
        let tst = TstInfo::from_der(econtent.value()).unwrap();
        assert_eq!(tst.policy, POLICY_OID);
        assert_eq!(tst.message_imprint.hashed_message.as_bytes(), hash);
        assert_eq!(
            tst.nonce.unwrap().as_bytes(),
            [0x12, 0x34, 0x56, 0x78, 0x9a]
        );
        assert_eq!(
            tst.gen_time.to_unix_duration(),
            Duration::from_secs(1_750_000_000)
        );
        // Positive: the top bit of the drawn serial is cleared.
        assert_eq!(tst.serial_number.as_bytes()[0], 0x7f);

        let signer = signed_data.signer_infos.0.get(0).unwrap();
        let attributes = signer.signed_attrs.as_ref().unwrap();
        let digest = attributes
            .iter()
            .find(|attribute| attribute.oid == ID_MESSAGE_DIGEST)
            .unwrap();
        let digest =
            OctetString::from_der(&digest.values.get(0).unwrap().to_der().unwrap()).unwrap();
        assert_eq!(
            digest.as_bytes(),
            Sha256::digest(econtent.value()).as_slice()
        );
        let ess = attributes
            .iter()
            .find(|attribute| attribute.oid == ID_SIGNING_CERTIFICATE_V2)
            .unwrap();
        let ess =
            SigningCertificateV2::from_der(&ess.values.get(0).unwrap().to_der().unwrap()).unwrap();
        assert_eq!(
            ess.certs[0].cert_hash.as_bytes(),
            Sha256::digest(tsa.chain_der()[0]).as_slice()
        );
        let (_, certificate) = x509_parser::parse_x509_certificate(tsa.chain_der()[0]).unwrap();
        UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            certificate.public_key().subject_public_key.data.as_ref(),
        )
        .verify(&attributes.to_der().unwrap(), signer.signature.as_bytes())
        .unwrap();
    }
}

#[test]
fn the_chain_is_for_timestamping_only() {
    let tsa = authority();
    let (_, signer) = x509_parser::parse_x509_certificate(tsa.chain_der()[0]).unwrap();
    let eku = signer.extended_key_usage().unwrap().unwrap();
    assert!(eku.critical);
    assert!(eku.value.time_stamping && !eku.value.code_signing && eku.value.other.is_empty());
    assert!(!signer.is_ca());
    let (_, root) = x509_parser::parse_x509_certificate(tsa.chain_der()[1]).unwrap();
    assert_eq!(signer.issuer(), root.subject());
    signer.verify_signature(Some(root.public_key())).unwrap();
    assert!(tsa.chain_pem().matches("BEGIN CERTIFICATE").count() == 2);
}

/// A request and the refusal it must get.
type Case = (Vec<u8>, fn(&TsaError) -> bool);

#[test]
fn bad_requests_are_refused_naming_the_field() {
    let sha256 = Sha256::digest(b"x").to_vec();
    let cases: Vec<Case> = vec![
        (b"not DER".to_vec(), |e| matches!(e, TsaError::Malformed(_))),
        (Vec::new(), |e| matches!(e, TsaError::Malformed(_))),
        (vec![0x30; REQUEST_BYTES_MAX + 1], |e| {
            matches!(e, TsaError::TooLarge(_))
        }),
        (request_der(ID_SHA256, &sha256[..20], None, false), |e| {
            matches!(e, TsaError::ImprintLength { got: 20, want: 32 })
        }),
        (request_der(ID_SHA512, &sha256, None, false), |e| {
            matches!(e, TsaError::ImprintLength { got: 32, want: 64 })
        }),
        (
            // SHA-1.
            request_der(
                ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
                &sha256[..20],
                None,
                false,
            ),
            |e| matches!(e, TsaError::HashAlgorithm(_)),
        ),
        (
            request_der(ID_SHA256, &sha256, Some(&[1; NONCE_BYTES_MAX + 1]), false),
            |e| matches!(e, TsaError::Nonce(_)),
        ),
    ];
    for (der, expected) in cases {
        let error = Request::parse(&der).unwrap_err();
        assert!(expected(&error), "{error:?}");
    }
    // Trailing bytes after the request.
    let mut der = request_der(ID_SHA256, &sha256, None, false);
    der.push(0);
    assert!(matches!(Request::parse(&der), Err(TsaError::Malformed(_))));

    // Another policy, and extensions.
    let mut request =
        TimeStampReq::from_der(&request_der(ID_SHA256, &sha256, None, false)).unwrap();
    request.req_policy = Some(ObjectIdentifier::new_unwrap("1.2.3.4"));
    assert!(matches!(
        Request::parse(&request.to_der().unwrap()),
        Err(TsaError::Policy(_))
    ));
    request.req_policy = Some(POLICY_OID);
    assert!(Request::parse(&request.to_der().unwrap()).is_ok());
    request.extensions = Some(vec![x509_cert::ext::Extension {
        extn_id: ObjectIdentifier::new_unwrap("1.2.3.4"),
        critical: false,
        extn_value: OctetString::new(vec![5]).unwrap(),
    }]);
    assert!(matches!(
        Request::parse(&request.to_der().unwrap()),
        Err(TsaError::Extensions)
    ));
}

#[test]
fn load_refuses_mismatched_material() {
    let one = new_tsa("Test", 1_700_000_000).unwrap();
    let two = new_tsa("Test", 1_700_000_000).unwrap();
    assert!(TimestampAuthority::load(&one.root_pem, &one.signer_pem, &two.signer_key_pem).is_err());
    assert!(TimestampAuthority::load(&two.root_pem, &one.signer_pem, &one.signer_key_pem).is_err());
    // The keyless CA's intermediate is not a timestamping certificate.
    let ca = crate::cert::new_ca("Test", 1_700_000_000).unwrap();
    assert!(
        TimestampAuthority::load(&ca.root_pem, &ca.intermediate_pem, &ca.intermediate_key_pem)
            .is_err()
    );
}

/// The JSON form of Sigstore's timestamp-authority makes the same request as the DER one.
#[test]
fn the_json_form_is_the_same_request() {
    use base64::Engine as _;
    let hash = Sha256::digest(b"a signature").to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&hash);
    let json = format!(
        r#"{{"artifactHash": "{b64}", "hashAlgorithm": "sha256", "nonce": 1234605616436508552,
            "certificates": true, "tsaPolicyOID": "1.3.6.1.4.1.57264.2"}}"#
    );
    let from_json = Request::from_json(json.as_bytes()).unwrap();
    let mut der = TimeStampReq::from_der(&request_der(
        ID_SHA256,
        &hash,
        Some(&1_234_605_616_436_508_552u64.to_be_bytes()),
        true,
    ))
    .unwrap();
    der.req_policy = Some(POLICY_OID);
    assert_eq!(from_json, Request::parse(&der.to_der().unwrap()).unwrap());
    // A nonce with its top bit set stays positive; 0 is one zero byte.
    for (nonce, want) in [
        (
            u64::MAX,
            vec![0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        (0, vec![0]),
    ] {
        let json =
            format!(r#"{{"artifactHash": "{b64}", "hashAlgorithm": "sha256", "nonce": {nonce}}}"#);
        let request = Request::from_json(json.as_bytes()).unwrap();
        assert_eq!(request.request.nonce.unwrap().as_bytes(), want);
    }
    for (json, what) in [
        (
            r#"{"hashAlgorithm": "sha256"}"#.to_owned(),
            "missing artifactHash",
        ),
        (
            format!(r#"{{"artifactHash": "{b64}", "hashAlgorithm": "md5"}}"#),
            "md5",
        ),
        (
            r#"{"artifactHash": "AAAA", "hashAlgorithm": "sha256"}"#.to_owned(),
            "short hash",
        ),
        (
            format!(
                r#"{{"artifactHash": "{b64}", "hashAlgorithm": "sha256", "tsaPolicyOID": "1.2.3"}}"#
            ),
            "policy",
        ),
        (
            format!(r#"{{"artifactHash": "{b64}", "hashAlgorithm": "sha256", "extra": 1}}"#),
            "unknown field",
        ),
    ] {
        assert!(Request::from_json(json.as_bytes()).is_err(), "{what}");
    }
}
