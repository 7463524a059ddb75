//! Sign → verify → tamper → reject for every supported key type, with signatures made by other
//! libraries (RustCrypto, aws-lc-rs, OpenSSL, RFC 8032) than the one verifying.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::*;

const MESSAGE: &[u8] = b"cairn crypto test message";

fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/crypto/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Flips one bit of `bytes` at `index`.
fn tampered(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 0x01;
    out
}

/// Checks a valid prehashed signature, then that a changed digest, a changed signature and a
/// changed message are each refused.
fn check_prehashed(key: &PublicKey, message: &[u8], digest: &[u8], signature: &[u8]) {
    key.verify_prehashed(digest, signature)
        .expect("valid signature verifies");
    assert_eq!(
        key.verify_prehashed(&tampered(digest, 0), signature)
            .unwrap_err()
            .code(),
        "bad_signature"
    );
    let last = signature.len() - 1;
    assert!(
        key.verify_prehashed(digest, &tampered(signature, last))
            .is_err()
    );
    assert!(
        key.verify_prehashed(digest, &tampered(signature, 8))
            .is_err()
    );
    // The message path hashes it the same way.
    key.verify_message(message, signature)
        .expect("message path verifies");
    assert!(
        key.verify_message(&tampered(message, 0), signature)
            .is_err()
    );
}

fn ecdsa_spki(keys: &[(KeyDetails, &'static lc::EcdsaSigningAlgorithm)]) {
    let rng = SystemRandom::new();
    for (details, algorithm) in keys {
        let pair = lc::EcdsaKeyPair::generate(algorithm).expect("generate");
        let spki = pair.public_key().as_der().expect("spki");
        let key = PublicKey::from_spki_der(spki.as_ref(), *details).expect("key parses");
        let signature = pair.sign(&rng, MESSAGE).expect("sign");
        let digest = details
            .hash_algorithm()
            .expect("ecdsa hashes")
            .hash(MESSAGE);
        check_prehashed(&key, MESSAGE, digest.as_bytes(), signature.as_ref());
    }
}

#[test]
fn ecdsa_signed_by_aws_lc_rs() {
    ecdsa_spki(&[
        (
            KeyDetails::EcdsaP256Sha256,
            &lc::ECDSA_P256_SHA256_ASN1_SIGNING,
        ),
        (
            KeyDetails::EcdsaP384Sha384,
            &lc::ECDSA_P384_SHA384_ASN1_SIGNING,
        ),
        (
            KeyDetails::EcdsaP521Sha512,
            &lc::ECDSA_P521_SHA512_ASN1_SIGNING,
        ),
    ]);
}

#[test]
fn ecdsa_signed_by_rustcrypto() {
    // P-256.
    let signer = p256::ecdsa::SigningKey::from_slice(&[0x11; 32]).expect("key");
    let digest = Sha256::digest(MESSAGE);
    let signature: p256::ecdsa::DerSignature = signer.sign_prehash(&digest).expect("sign");
    let spki = signer.verifying_key().to_public_key_der().expect("spki");
    let key = PublicKey::from_spki_der(spki.as_bytes(), KeyDetails::EcdsaP256Sha256).expect("key");
    check_prehashed(&key, MESSAGE, &digest, signature.as_bytes());
    // P-384.
    let signer = p384::ecdsa::SigningKey::from_slice(&[0x22; 48]).expect("key");
    let digest = Sha384::digest(MESSAGE);
    let signature: p384::ecdsa::DerSignature = signer.sign_prehash(&digest).expect("sign");
    let spki =
        p384::pkcs8::EncodePublicKey::to_public_key_der(signer.verifying_key()).expect("spki");
    let key = PublicKey::from_spki_der(spki.as_bytes(), KeyDetails::EcdsaP384Sha384).expect("key");
    check_prehashed(&key, MESSAGE, &digest, signature.as_bytes());
    // P-521.
    let mut secret = [0x33; 66];
    secret[0] = 0;
    let signer = p521::ecdsa::SigningKey::from_slice(&secret).expect("key");
    let digest = Sha512::digest(MESSAGE);
    let signature: p521::ecdsa::DerSignature = signer.sign_prehash(&digest).expect("sign");
    let spki =
        p521::pkcs8::EncodePublicKey::to_public_key_der(signer.verifying_key()).expect("spki");
    let key = PublicKey::from_spki_der(spki.as_bytes(), KeyDetails::EcdsaP521Sha512).expect("key");
    check_prehashed(&key, MESSAGE, &digest, signature.as_bytes());
}

#[test]
fn ecdsa_aws_lc_rs_signature_verifies_with_rustcrypto() {
    // The other direction of the cross-check: what aws-lc-rs signs, p256 accepts.
    let rng = SystemRandom::new();
    let pair = lc::EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
    let signature = pair.sign(&rng, MESSAGE).expect("sign");
    let verifier =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(pair.public_key().as_ref()).expect("key");
    let der = p256::ecdsa::DerSignature::from_bytes(signature.as_ref()).expect("der");
    verifier
        .verify_prehash(&Sha256::digest(MESSAGE), &der)
        .expect("p256 verifies");
}

#[test]
fn ecdsa_signed_by_openssl() {
    let key = PublicKey::from_spki_der(&testdata("p256.spki.der"), KeyDetails::EcdsaP256Sha256)
        .expect("key");
    let message = testdata("message.txt");
    let digest = Sha256::digest(&message);
    check_prehashed(&key, &message, &digest, &testdata("p256.message.sig"));
}

#[test]
fn rsa_every_size() {
    let rng = SystemRandom::new();
    for (bits, details) in [
        (2048, KeyDetails::Rsa2048Pkcs1v15Sha256),
        (3072, KeyDetails::Rsa3072Pkcs1v15Sha256),
        (4096, KeyDetails::Rsa4096Pkcs1v15Sha256),
    ] {
        let pair =
            lc::RsaKeyPair::from_pkcs8(&testdata(&format!("rsa{bits}.pk8.der"))).expect("key");
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(&lc::RSA_PKCS1_SHA256, &rng, MESSAGE, &mut signature)
            .expect("sign");
        let key = PublicKey::from_spki_der(&testdata(&format!("rsa{bits}.spki.der")), details)
            .expect("key");
        check_prehashed(&key, MESSAGE, &Sha256::digest(MESSAGE), &signature);
    }
}

#[test]
fn rsa_signed_by_openssl_with_certificate() {
    let message = testdata("message.txt");
    let digest = Sha256::digest(&message);
    let signature = testdata("rsa2048.message.sig");
    let from_cert = PublicKey::from_certificate_der(
        &testdata("rsa2048.cert.der"),
        KeyDetails::Rsa2048Pkcs1v15Sha256,
    )
    .expect("cert");
    check_prehashed(&from_cert, &message, &digest, &signature);
    let verifier = Verifier::x509_certificate(
        &testdata("rsa2048.cert.der"),
        KeyDetails::Rsa2048Pkcs1v15Sha256,
    )
    .expect("verifier");
    verify_prehashed(&verifier, &digest, &signature).expect("free function verifies");
}

fn ed25519_spki(public: &[u8]) -> Vec<u8> {
    // RFC 8410: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING { 0, key } }.
    let mut der = hex::decode("302a300506032b6570032100").expect("hex");
    der.extend_from_slice(public);
    der
}

#[test]
fn ed25519ph_rfc8032_vector() {
    // RFC 8032 §7.3, "TEST abc": Ed25519ph, empty context.
    let public = hex::decode("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
        .expect("hex");
    let signature = hex::decode(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
         31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
    )
    .expect("hex");
    let key = PublicKey::from_spki_der(&ed25519_spki(&public), KeyDetails::Ed25519Ph).expect("key");
    check_prehashed(&key, b"abc", &Sha512::digest(b"abc"), &signature);
    // The same key as pure Ed25519 does not accept the Ed25519ph signature (domain separation).
    let pure = PublicKey::from_spki_der(&ed25519_spki(&public), KeyDetails::Ed25519).expect("key");
    assert!(pure.verify_message(b"abc", &signature).is_err());
}

#[test]
fn ed25519ph_signed_by_dalek() {
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let signature = signer
        .sign_prehashed(Sha512::new().chain_update(MESSAGE), None)
        .expect("sign");
    let key = PublicKey::from_spki_der(
        &ed25519_spki(signer.verifying_key().as_bytes()),
        KeyDetails::Ed25519Ph,
    )
    .expect("key");
    check_prehashed(
        &key,
        MESSAGE,
        &Sha512::digest(MESSAGE),
        &signature.to_bytes(),
    );
    // A 64-byte digest of the wrong length is refused before verifying.
    let error = key
        .verify_prehashed(&[0; 32], &signature.to_bytes())
        .unwrap_err();
    assert!(
        matches!(
            error,
            CryptoError::DigestLength {
                actual: 32,
                expected: 64,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn pure_ed25519_signed_by_aws_lc_rs() {
    let pair = lc::Ed25519KeyPair::generate().expect("key");
    let spki = pair.public_key().as_der().expect("spki");
    let key = PublicKey::from_spki_der(spki.as_ref(), KeyDetails::Ed25519).expect("key");
    let signature = pair.sign(MESSAGE);
    key.verify_message(MESSAGE, signature.as_ref())
        .expect("verifies");
    assert!(
        key.verify_message(&tampered(MESSAGE, 3), signature.as_ref())
            .is_err()
    );
    assert!(
        key.verify_message(MESSAGE, &tampered(signature.as_ref(), 40))
            .is_err()
    );
    // Pure Ed25519 cannot verify a digest.
    let error = key
        .verify_prehashed(&Sha512::digest(MESSAGE), signature.as_ref())
        .unwrap_err();
    assert!(matches!(error, CryptoError::NoPrehash { .. }), "{error}");
    // And dalek's own signature verifies too.
    let signer = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let key = PublicKey::from_spki_der(
        &ed25519_spki(signer.verifying_key().as_bytes()),
        KeyDetails::Ed25519,
    )
    .expect("key");
    key.verify_message(MESSAGE, &signer.sign(MESSAGE).to_bytes())
        .expect("verifies");
}

#[test]
fn declared_type_must_match_the_key() {
    let p256 = testdata("p256.spki.der");
    let error = PublicKey::from_spki_der(&p256, KeyDetails::EcdsaP384Sha384).unwrap_err();
    assert!(
        matches!(
            &error,
            CryptoError::KeyMismatch {
                declared: KeyDetails::EcdsaP384Sha384,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.code(), "key_mismatch");
    assert_eq!(
        error.to_string(),
        "verifier.publicKey.rawBytes: the key is an ECDSA P-256 key, but keyDetails declares PKIX_ECDSA_P384_SHA_384"
    );
    for details in [
        KeyDetails::Rsa2048Pkcs1v15Sha256,
        KeyDetails::Ed25519Ph,
        KeyDetails::EcdsaP521Sha512,
    ] {
        assert_eq!(
            PublicKey::from_spki_der(&p256, details).unwrap_err().code(),
            "key_mismatch"
        );
    }
    let rsa3072 = testdata("rsa3072.spki.der");
    let error = PublicKey::from_spki_der(&rsa3072, KeyDetails::Rsa2048Pkcs1v15Sha256).unwrap_err();
    assert_eq!(
        error.to_string(),
        "verifier.publicKey.rawBytes: the key is a 3072-bit RSA key, but keyDetails declares PKIX_RSA_PKCS1V15_2048_SHA256"
    );
    assert_eq!(
        PublicKey::from_spki_der(&rsa3072, KeyDetails::EcdsaP256Sha256)
            .unwrap_err()
            .code(),
        "key_mismatch"
    );
    let ed = ed25519_spki(&[0x5a; 32]);
    assert_eq!(
        PublicKey::from_spki_der(&ed, KeyDetails::EcdsaP256Sha256)
            .unwrap_err()
            .code(),
        "key_mismatch"
    );
    // A certificate's key is checked the same way, and named as the certificate.
    let error = PublicKey::from_certificate_der(
        &testdata("rsa2048.cert.der"),
        KeyDetails::Rsa4096Pkcs1v15Sha256,
    )
    .unwrap_err();
    assert_eq!(error.field(), "verifier.x509Certificate.rawBytes");
    assert_eq!(error.code(), "key_mismatch");
}

#[test]
fn weak_and_unsupported_keys() {
    let error = PublicKey::from_spki_der(
        &testdata("rsa1024.spki.der"),
        KeyDetails::Rsa2048Pkcs1v15Sha256,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "verifier.publicKey.rawBytes: RSA key is 1024 bits, at least 2048 required"
    );
    assert_eq!(error.code(), "weak_key");
    let error =
        PublicKey::from_spki_der(&testdata("secp256k1.spki.der"), KeyDetails::EcdsaP256Sha256)
            .unwrap_err();
    assert!(
        matches!(&error, CryptoError::UnsupportedCurve { curve, .. } if curve == "1.3.132.0.10"),
        "{error}"
    );
    let error =
        PublicKey::from_spki_der(&testdata("x25519.spki.der"), KeyDetails::Ed25519).unwrap_err();
    assert!(
        matches!(&error, CryptoError::UnsupportedAlgorithm { algorithm, .. } if algorithm == "1.3.101.110"),
        "{error}"
    );
    let error = PublicKey::from_spki_der(
        &testdata("p256-compressed.spki.der"),
        KeyDetails::EcdsaP256Sha256,
    )
    .unwrap_err();
    assert_eq!(error.code(), "invalid_key", "{error}");
}

/// DER of an RSA SubjectPublicKeyInfo with the given modulus and exponent contents.
fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let [high, low] = u16::try_from(content.len()).expect("short").to_be_bytes();
        match (high, low) {
            (0, low) if low < 0x80 => out.push(low),
            (0, low) => out.extend_from_slice(&[0x81, low]),
            (high, low) => out.extend_from_slice(&[0x82, high, low]),
        }
        out.extend_from_slice(content);
        out
    }
    let rsa_key = tlv(0x30, &[tlv(0x02, modulus), tlv(0x02, exponent)].concat());
    let algorithm = hex::decode("300d06092a864886f70d0101010500").expect("hex");
    let bits = tlv(0x03, &[&[0u8][..], &rsa_key].concat());
    tlv(0x30, &[algorithm, bits].concat())
}

#[test]
fn rsa_exponent_bounds() {
    let mut modulus = vec![0x00, 0xc5];
    modulus.extend_from_slice(&[0x5b; 255]); // 2048 bits, odd
    // Sanity: the hand-built SPKI with e = 65537 is accepted by the exponent check.
    assert!(
        PublicKey::from_spki_der(
            &rsa_spki(&modulus, &[0x01, 0x00, 0x01]),
            KeyDetails::Rsa2048Pkcs1v15Sha256
        )
        .is_ok()
    );
    for exponent in [
        &[0x01][..],                                          // 1
        &[0x02],                                              // even
        &[0x01, 0x00, 0x00],                                  // 65536, even
        &[0x01, 0x00, 0x00, 0x00, 0x01],                      // 2^32 + 1, too large
        &[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // 2^120 + 1
        &[0xff],                                              // negative
    ] {
        let error = PublicKey::from_spki_der(
            &rsa_spki(&modulus, exponent),
            KeyDetails::Rsa2048Pkcs1v15Sha256,
        )
        .unwrap_err();
        assert!(
            matches!(error, CryptoError::RsaExponent { .. }),
            "{exponent:?}: {error}"
        );
        assert_eq!(error.code(), "weak_key");
    }
    // A modulus over 4096 bits is refused as too large, whatever is declared.
    let mut big = vec![0x00, 0xc5];
    big.extend_from_slice(&[0x5b; 1023]);
    let error = PublicKey::from_spki_der(
        &rsa_spki(&big, &[0x01, 0x00, 0x01]),
        KeyDetails::Rsa4096Pkcs1v15Sha256,
    )
    .unwrap_err();
    assert!(
        matches!(error, CryptoError::RsaKeyTooLarge { bits: 8192, .. }),
        "{error}"
    );
}

#[test]
fn malformed_keys() {
    let spki = testdata("p256.spki.der");
    for bad in [
        &[][..],
        &spki[..spki.len() - 1],
        &[spki.as_slice(), &[0]].concat(),
        b"not der at all",
    ] {
        let error = PublicKey::from_spki_der(bad, KeyDetails::EcdsaP256Sha256).unwrap_err();
        assert_eq!(error.code(), "invalid_key", "{error}");
    }
    // A point not on the curve: aws-lc-rs refuses it.
    let mut off_curve = spki.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 0x01;
    assert_eq!(
        PublicKey::from_spki_der(&off_curve, KeyDetails::EcdsaP256Sha256)
            .unwrap_err()
            .code(),
        "invalid_key"
    );
    // A certificate that is not one, or a key given as a certificate.
    assert_eq!(
        PublicKey::from_certificate_der(&spki, KeyDetails::EcdsaP256Sha256)
            .unwrap_err()
            .code(),
        "invalid_key"
    );
    let cert = testdata("rsa2048.cert.der");
    assert_eq!(
        PublicKey::from_certificate_der(
            &[cert.as_slice(), &[0]].concat(),
            KeyDetails::Rsa2048Pkcs1v15Sha256
        )
        .unwrap_err()
        .code(),
        "invalid_key"
    );
}

#[test]
fn garbage_signatures_are_refused_not_panicked_on() {
    let keys = [
        PublicKey::from_spki_der(&testdata("p256.spki.der"), KeyDetails::EcdsaP256Sha256)
            .expect("key"),
        PublicKey::from_spki_der(
            &testdata("rsa2048.spki.der"),
            KeyDetails::Rsa2048Pkcs1v15Sha256,
        )
        .expect("key"),
        PublicKey::from_spki_der(
            &ed25519_spki(
                ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                    .verifying_key()
                    .as_bytes(),
            ),
            KeyDetails::Ed25519Ph,
        )
        .expect("key"),
    ];
    for key in &keys {
        let digest = key
            .key_details()
            .hash_algorithm()
            .expect("prehash")
            .hash(MESSAGE);
        for signature in [
            &[][..],
            &[0; 1],
            &[0x30, 0x00],
            &[0; 64],
            &[0xff; 512],
            &[0; 1024],
        ] {
            let error = key
                .verify_prehashed(digest.as_bytes(), signature)
                .unwrap_err();
            assert_eq!(error.code(), "bad_signature");
            assert_eq!(
                error.to_string(),
                format!(
                    "signature: signature does not verify with {}",
                    key.key_details()
                )
            );
        }
    }
}
