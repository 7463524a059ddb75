//! ECDSA P-256 prehashed verification: the `node::crypto` path (aws-lc-rs) against the
//! pure-Rust p256 crate, the alternative, about 5 times slower at verification.
//!
//! `cargo bench -p node --bench verify`

use std::hint::black_box;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use criterion::{Criterion, criterion_group, criterion_main};
use node::crypto::{self, PublicKey};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest as _, Sha256};
use tlog::entry::{KeyDetails, Verifier};

fn p256_verify(c: &mut Criterion) {
    let pair = lc::EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
    let spki = pair.public_key().as_der().expect("spki").as_ref().to_vec();
    let message = b"an artifact the log never sees";
    let digest = Sha256::digest(message);
    let signature = pair
        .sign(&SystemRandom::new(), message)
        .expect("sign")
        .as_ref()
        .to_vec();

    let key = PublicKey::from_spki_der(&spki, KeyDetails::EcdsaP256Sha256).expect("key");
    key.verify_prehashed(&digest, &signature)
        .expect("the benchmarked signature verifies");
    c.bench_function(
        "p256 prehashed verify, aws-lc-rs (node::crypto, key parsed)",
        |b| {
            b.iter(|| {
                key.verify_prehashed(black_box(&digest), black_box(&signature))
                    .is_ok()
            });
        },
    );
    let verifier = Verifier::public_key(&spki, KeyDetails::EcdsaP256Sha256).expect("verifier");
    c.bench_function(
        "p256 prehashed verify, aws-lc-rs (node::crypto, parse + verify)",
        |b| {
            b.iter(|| crypto::verify_prehashed(black_box(&verifier), &digest, &signature).is_ok());
        },
    );
    let rustcrypto =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(pair.public_key().as_ref()).expect("key");
    let der = p256::ecdsa::DerSignature::from_bytes(&signature).expect("der");
    rustcrypto
        .verify_prehash(&digest, &der)
        .expect("p256 verifies it too");
    c.bench_function(
        "p256 prehashed verify, p256 0.14 (RustCrypto, key parsed)",
        |b| {
            b.iter(|| {
                rustcrypto
                    .verify_prehash(black_box(&digest), black_box(&der))
                    .is_ok()
            });
        },
    );
}

criterion_group!(benches, p256_verify);
criterion_main!(benches);
