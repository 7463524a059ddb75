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
    let tag = random_tag()?;
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

/// The canonical body of entry `n` with tlog's own code (JSON, then RFC 8785).
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

/// How often the fast template is checked against tlog's canonicalisation.
pub(crate) const TEMPLATE_CHECK_EVERY: usize = 997;

fn make_range(
    key: &EcdsaKeyPair,
    spki: &[u8],
    tag: &str,
    range: std::ops::Range<usize>,
) -> anyhow::Result<(Vec<Prepared>, usize)> {
    let spki_base64 = BASE64.encode(spki);
    let mut signer = EntrySigner::new(key, spki)?;
    let mut out = Vec::with_capacity(range.len());
    let mut leaf_bytes = 0;
    for (position, n) in range.enumerate() {
        let (leaf, digest_base64, signature_base64) =
            signer.sign(&format!("cairn-bench {tag} {n}"), position)?;
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
pub(crate) fn random_tag() -> anyhow::Result<String> {
    let mut tag = [0u8; 8];
    aws_lc_rs::rand::fill(&mut tag).map_err(|_| anyhow::anyhow!("reading randomness"))?;
    Ok(tag.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Signs artifacts under one P-256 key and makes the canonical log entry of each.
pub(crate) struct EntrySigner<'k> {
    key: &'k EcdsaKeyPair,
    verifier: Verifier,
    rng: aws_lc_rs::rand::SystemRandom,
    template: LeafTemplate,
}

impl<'k> EntrySigner<'k> {
    /// A signer with `key`, whose DER SubjectPublicKeyInfo is `spki`.
    pub(crate) fn new(key: &'k EcdsaKeyPair, spki: &[u8]) -> anyhow::Result<EntrySigner<'k>> {
        Ok(EntrySigner {
            key,
            verifier: Verifier::public_key(spki, KeyDetails::EcdsaP256Sha256)?,
            rng: aws_lc_rs::rand::SystemRandom::new(),
            template: LeafTemplate::default(),
        })
    }

    /// Signs `artifact`, entry number `position` of this signer: the canonical log entry, and
    /// the artifact's digest and the signature in base64.
    pub(crate) fn sign(
        &mut self,
        artifact: &str,
        position: usize,
    ) -> anyhow::Result<(Vec<u8>, String, String)> {
        let digest = Hash::digest(artifact.as_bytes());
        // ECDSA_P256_SHA256 hashes the message with SHA-256 before signing, so signing the
        // artifact is signing its digest: exactly what the node verifies (a prehash signature).
        let signature = self
            .key
            .sign(&self.rng, artifact.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing {artifact:?}"))?;
        let signature = signature.as_ref();
        let (digest_base64, signature_base64) =
            (BASE64.encode(digest.as_bytes()), BASE64.encode(signature));
        let leaf = self.template.leaf(
            &self.verifier,
            &digest,
            signature,
            (&digest_base64, &signature_base64),
            position,
        )?;
        Ok((leaf, digest_base64, signature_base64))
    }
}

/// Canonical bodies made fast (canonicalising costs as much as signing): bodies under one key
/// differ only in digest and signature, so tlog's first body becomes a template with those cut
/// out, and every TEMPLATE_CHECK_EVERY-th body is made by tlog again and must match it.
#[derive(Default)]
struct LeafTemplate(Option<(String, String, String)>);

impl LeafTemplate {
    /// The canonical body of entry number `position` with this digest and signature, whose
    /// base64 forms are `encoded`.
    fn leaf(
        &mut self,
        verifier: &Verifier,
        digest: &Hash,
        signature: &[u8],
        (digest_base64, signature_base64): (&str, &str),
        position: usize,
    ) -> anyhow::Result<Vec<u8>> {
        if let Some((head, middle, tail)) = &self.0
            && !position.is_multiple_of(TEMPLATE_CHECK_EVERY)
        {
            return Ok(
                format!("{head}{digest_base64}{middle}{signature_base64}{tail}").into_bytes(),
            );
        }
        let exact = canonical_body(verifier, digest, signature)?;
        let text = String::from_utf8(exact.clone())?;
        let made = split_template(&text, digest_base64, signature_base64)
            .context("the canonical body does not hold the digest and signature once each")?;
        if let Some(known) = &self.0 {
            anyhow::ensure!(
                *known == made,
                "canonical body template changed at entry {position}"
            );
        }
        self.0 = Some(made);
        Ok(exact)
    }
}

/// Splits `text` around `first` and then `second`, each of which must occur exactly once.
pub(crate) fn split_template(
    text: &str,
    first: &str,
    second: &str,
) -> Option<(String, String, String)> {
    if text.matches(first).count() != 1 || text.matches(second).count() != 1 {
        return None;
    }
    let (head, rest) = text.split_once(first)?;
    let (middle, tail) = rest.split_once(second)?;
    Some((head.to_string(), middle.to_string(), tail.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The requests, and through [`EntrySigner`] the fill's entries too.
    #[test]
    fn requests_are_distinct_validly_signed_and_the_template_gives_the_same_leaves_as_tlog() {
        // 2,000 entries on one thread: the template is used for most and re-checked twice.
        let (key, spki) = fresh_p256_key().unwrap();
        let (fast, _) = make_range(&key, &spki, "t", 0..2000).unwrap();
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
