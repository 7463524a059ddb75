//! Pre-signed hashedrekord v0.0.2 submissions, made before the window (signing is the client's
//! cost). Each signs a distinct artifact, `cairn-bench <run tag> <n>`, under a fresh P-256 key,
//! with the leaf hash of the canonical body the log must store for it (`tlog::entry`, as the
//! node makes it), so the verifier can check that the log logged *this* entry.

use std::time::Instant;

use anyhow::Context as _;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use tlog::Hash;
use tlog::entry::{
    CanonicalBody, HashedRekordV002, KeyDetails, Signature, SignatureBytes, Verifier,
};

/// One ready-to-send submission.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    /// The JSON request body.
    pub(crate) body: Bytes,
    /// The RFC 6962 leaf hash of the canonical body the log must answer with.
    pub(crate) leaf_hash: Hash,
}

/// Every submission of one run, and what they cost to make.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) requests: Vec<Prepared>,
    /// Mean request body size in bytes.
    pub(crate) request_bytes: usize,
    /// Mean canonical body (log leaf) size in bytes.
    pub(crate) leaf_bytes: usize,
    /// Signed requests per second while pre-generating (all threads).
    pub(crate) signing_rate: f64,
}

/// A new P-256 signing key and its DER SubjectPublicKeyInfo, for the entries it signs.
pub(crate) fn fresh_p256_key() -> anyhow::Result<(EcdsaKeyPair, Vec<u8>)> {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|_| anyhow::anyhow!("generating a P-256 key"))?;
    let spki = key
        .public_key()
        .as_der()
        .map_err(|_| anyhow::anyhow!("encoding the P-256 public key"))?
        .as_ref()
        .to_vec();
    Ok((key, spki))
}

/// Builds `count` signed submissions on `threads` threads.
pub(crate) fn generate(count: usize, threads: usize) -> anyhow::Result<Signed> {
    let started = Instant::now();
    let (key, spki) = fresh_p256_key()?;
    let tag = random_tag();
    let threads = threads.clamp(1, 64);
    let chunk = count.div_ceil(threads).max(1);
    let parts: Vec<anyhow::Result<(Vec<Prepared>, usize)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                let (key, spki, tag) = (&key, &spki, &tag);
                scope.spawn(move || make_range(key, spki, tag, start..(start + chunk).min(count)))
            })
            .collect();
        let panicked = |_| Err(anyhow::anyhow!("a signing thread panicked"));
        let joined = handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(panicked));
        joined.collect()
    });
    let mut requests = Vec::with_capacity(count);
    let mut leaf_bytes = 0usize;
    for part in parts {
        let (part, bytes) = part?;
        requests.extend(part);
        leaf_bytes += bytes;
    }
    let request_bytes = requests.iter().map(|r| r.body.len()).sum::<usize>();
    let n = requests.len().max(1);
    Ok(Signed {
        signing_rate: requests.len() as f64 / started.elapsed().as_secs_f64().max(1e-9),
        request_bytes: request_bytes / n,
        leaf_bytes: leaf_bytes / n,
        requests,
    })
}

/// The canonical body of an entry with tlog's own code (its template, as the node writes it).
fn canonical_body(verifier: &Verifier, digest: &Hash, signature: &[u8]) -> anyhow::Result<Vec<u8>> {
    let entry = HashedRekordV002::new(
        digest.as_bytes(),
        Signature {
            content: SignatureBytes::new(signature)?,
            verifier: verifier.clone(),
        },
    )?;
    Ok(CanonicalBody::new(entry)
        .context("canonical body")?
        .as_bytes()
        .to_vec())
}

fn make_range(
    key: &EcdsaKeyPair,
    spki: &[u8],
    tag: &str,
    range: std::ops::Range<usize>,
) -> anyhow::Result<(Vec<Prepared>, usize)> {
    let spki_base64 = BASE64.encode(spki);
    let signer = EntrySigner::new(key, spki)?;
    let mut out = Vec::with_capacity(range.len());
    let mut leaf_bytes = 0;
    for n in range {
        let (leaf, digest_base64, signature_base64) =
            signer.sign(&format!("cairn-bench {tag} {n}"))?;
        let body = format!(
            concat!(
                r#"{{"hashedRekordRequestV002":{{"digest":"{}","signature":{{"content":"{}","#,
                r#""verifier":{{"publicKey":{{"rawBytes":"{}"}},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}}}}}"#
            ),
            digest_base64, signature_base64, spki_base64,
        );
        leaf_bytes += leaf.len();
        out.push(Prepared {
            body: Bytes::from(body),
            leaf_hash: tlog::leaf_hash(&leaf),
        });
    }
    Ok((out, leaf_bytes))
}

/// A random tag in hex, so that no two runs sign the same artifact.
pub(crate) fn random_tag() -> String {
    node::provision::hex_string(&node::provision::random_bytes::<8>())
}

/// Signs artifacts under one P-256 key and makes the canonical log entry of each.
pub(crate) struct EntrySigner<'k> {
    key: &'k EcdsaKeyPair,
    verifier: Verifier,
    rng: aws_lc_rs::rand::SystemRandom,
}

impl<'k> EntrySigner<'k> {
    /// A signer with `key`, whose DER SubjectPublicKeyInfo is `spki`.
    pub(crate) fn new(key: &'k EcdsaKeyPair, spki: &[u8]) -> anyhow::Result<EntrySigner<'k>> {
        Ok(EntrySigner {
            key,
            verifier: Verifier::public_key(spki, KeyDetails::EcdsaP256Sha256)?,
            rng: aws_lc_rs::rand::SystemRandom::new(),
        })
    }

    /// Signs `artifact`: the canonical log entry, and the artifact's digest and the signature
    /// in base64.
    pub(crate) fn sign(&self, artifact: &str) -> anyhow::Result<(Vec<u8>, String, String)> {
        let digest = Hash::digest(artifact.as_bytes());
        // ECDSA_P256_SHA256 hashes the message with SHA-256 before signing, so signing the
        // artifact is signing its digest: exactly what the node verifies (a prehash signature).
        let signature = self
            .key
            .sign(&self.rng, artifact.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing {artifact:?}"))?;
        let signature = signature.as_ref();
        let leaf = canonical_body(&self.verifier, &digest, signature)?;
        Ok((
            leaf,
            BASE64.encode(digest.as_bytes()),
            BASE64.encode(signature),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The requests, and through [`EntrySigner`] the fill's entries too.
    #[test]
    fn requests_are_distinct_validly_signed_and_carry_their_leaf_hash() {
        let (key, spki) = fresh_p256_key().unwrap();
        let (fast, _) = make_range(&key, &spki, "t", 0..500).unwrap();
        let verifier = Verifier::public_key(&spki, KeyDetails::EcdsaP256Sha256).unwrap();
        // The uncompressed point at the end of a P-256 SubjectPublicKeyInfo (65 bytes).
        let point = &spki[spki.len() - 65..];
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            point,
        );
        for (n, prepared) in fast.iter().enumerate().step_by(101) {
            let value: serde_json::Value = serde_json::from_slice(&prepared.body).unwrap();
            let request = &value["hashedRekordRequestV002"];
            let kind = &request["signature"]["verifier"]["keyDetails"];
            assert_eq!(kind, "PKIX_ECDSA_P256_SHA_256");
            // Over the artifact's digest, with a signature the node accepts.
            let digest = Hash::from_base64(request["digest"].as_str().unwrap()).unwrap();
            let artifact = format!("cairn-bench t {n}");
            assert_eq!(digest, Hash::digest(artifact.as_bytes()));
            let signature = request["signature"]["content"].as_str().unwrap();
            let signature = BASE64.decode(signature).unwrap();
            public.verify(artifact.as_bytes(), &signature).unwrap();
            let exact = canonical_body(&verifier, &digest, &signature).unwrap();
            assert_eq!(prepared.leaf_hash, tlog::leaf_hash(&exact));
        }
        // On several threads, every submission is distinct.
        let workload = generate(10, 3).unwrap();
        let mut leaves: Vec<Hash> = workload.requests.iter().map(|r| r.leaf_hash).collect();
        leaves.sort_unstable_by_key(|h| h.0);
        leaves.dedup();
        assert_eq!((workload.requests.len(), leaves.len()), (10, 10));
        assert!(workload.leaf_bytes > 200, "{}", workload.leaf_bytes);
    }
}
