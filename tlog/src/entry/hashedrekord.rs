//! hashedrekord: a signature over a digest, in its Rekor v1 (v0.0.1) and Rekor v2 (v0.0.2)
//! shapes.

use serde_json::{Value, json};

use super::types::{Digest, HashAlgorithm, KeyDetails, Signature, SignatureBytes, Verifier};
use super::{BodyError, InputError, KeyMaterial, field, object, string};

/// The spec of a hashedrekord v0.0.1 entry (Rekor v1).
///
/// Body: `{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":A,
/// "value":HEX}},"signature":{"content":B64SIG,"publicKey":{"content":B64PEM}}}}`, as
/// `V001Entry.Canonicalize` in `sigstore/rekor:pkg/types/hashedrekord/v0.0.1/entry.go` writes it:
/// the hash as sent (`sha256`, `sha384` or `sha512`, its hex length checked), the signature
/// bytes as sent, and the key or certificate re-encoded as canonical PEM; `data.content` and
/// any key URL are never stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HashedRekordV001 {
    digest: Digest,
    signature: SignatureBytes,
    public_key: KeyMaterial,
}

impl HashedRekordV001 {
    /// The entry for `signature` by `public_key` over `digest` (every part already validated).
    pub fn new(digest: Digest, signature: SignatureBytes, public_key: KeyMaterial) -> Self {
        HashedRekordV001 {
            digest,
            signature,
            public_key,
        }
    }

    /// The signed digest (`spec.data.hash`).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The signature (`spec.signature.content`).
    pub fn signature(&self) -> &SignatureBytes {
        &self.signature
    }

    /// The key or certificate (`spec.signature.publicKey.content`).
    pub fn public_key(&self) -> &KeyMaterial {
        &self.public_key
    }

    pub(super) fn spec_json(&self) -> Value {
        json!({
            "data": {
                "hash": {
                    "algorithm": self.digest.algorithm().rekor_v1_name(),
                    "value": self.digest.to_hex(),
                },
            },
            "signature": {
                "content": self.signature.to_base64(),
                "publicKey": { "content": self.public_key.to_base64_pem() },
            },
        })
    }

    pub(super) fn from_spec_json(spec: &Value) -> Result<Self, BodyError> {
        let spec = object(spec, "spec", &["data", "signature"])?;
        let data = object(field(spec, "data"), "spec.data", &["hash"])?;
        let hash = object(
            field(data, "hash"),
            "spec.data.hash",
            &["algorithm", "value"],
        )?;
        let algorithm_name = string(hash, "algorithm", "spec.data.hash.algorithm")?;
        let algorithm = HashAlgorithm::from_rekor_v1_name(algorithm_name).ok_or_else(|| {
            InputError::UnknownHashAlgorithm {
                field: "spec.data.hash.algorithm".to_owned(),
                value: super::types::truncated(algorithm_name),
            }
        })?;
        let digest = Digest::from_hex_field(
            algorithm,
            string(hash, "value", "spec.data.hash.value")?,
            "spec.data.hash.value",
        )?;
        let signature = object(
            field(spec, "signature"),
            "spec.signature",
            &["content", "publicKey"],
        )?;
        let content = SignatureBytes::from_base64_field(
            string(signature, "content", "spec.signature.content")?,
            "spec.signature.content",
        )?;
        let public_key = object(
            field(signature, "publicKey"),
            "spec.signature.publicKey",
            &["content"],
        )?;
        let pem = super::types::decode_base64(
            string(public_key, "content", "spec.signature.publicKey.content")?,
            super::PEM_BYTES_MAX,
            "spec.signature.publicKey.content",
        )?;
        let public_key = KeyMaterial::from_pem_field(&pem, "spec.signature.publicKey.content")?;
        Ok(HashedRekordV001::new(digest, content, public_key))
    }
}

/// The spec of a hashedrekord v0.0.2 entry (Rekor v2).
///
/// Body: `{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":
/// {"algorithm":ALG,"digest":B64},"signature":{"content":B64,"verifier":{"x509Certificate"|
/// "publicKey":{"rawBytes":B64},"keyDetails":KD}}}}}`: the protobuf JSON of rekor-tiles
/// `Entry` as built by `ToLogEntry` in `sigstore/rekor-tiles:pkg/types/hashedrekord/
/// hashedrekord.go`, then JCS. The digest algorithm is not sent by the client: it is the
/// prehash of the declared `keyDetails`, and the digest must have its length.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HashedRekordV002 {
    digest: Digest,
    signature: Signature,
}

impl HashedRekordV002 {
    /// The entry for a `HashedRekordRequestV002` (`digest`, `signature`). Refuses key details
    /// without a prehash (pure Ed25519) and a digest whose length is not the prehash's.
    pub fn new(digest: &[u8], signature: Signature) -> Result<Self, InputError> {
        HashedRekordV002::new_field(digest, signature, "digest")
    }

    /// The signed digest (`data`).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The signature and its verifier (`signature`).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    fn new_field(digest: &[u8], signature: Signature, field: &str) -> Result<Self, InputError> {
        let key_details = signature.verifier.key_details();
        let algorithm =
            key_details
                .hash_algorithm()
                .ok_or_else(|| InputError::NoDigestAlgorithm {
                    field: "signature.verifier.keyDetails".to_owned(),
                    key_details,
                })?;
        let digest = Digest::new_field(algorithm, digest, field)?;
        Ok(HashedRekordV002 { digest, signature })
    }

    pub(super) fn spec_json(&self) -> Value {
        json!({
            "hashedRekordV002": {
                "data": {
                    "algorithm": self.digest.algorithm().protobuf_name(),
                    "digest": self.digest.to_base64(),
                },
                "signature": self.signature.to_json(),
            },
        })
    }

    pub(super) fn from_spec_json(spec: &Value) -> Result<Self, BodyError> {
        const PATH: &str = "spec.hashedRekordV002";
        let spec = object(spec, "spec", &["hashedRekordV002"])?;
        let entry = object(
            field(spec, "hashedRekordV002"),
            PATH,
            &["data", "signature"],
        )?;
        let data = object(
            field(entry, "data"),
            "spec.hashedRekordV002.data",
            &["algorithm", "digest"],
        )?;
        let algorithm_name = string(data, "algorithm", "spec.hashedRekordV002.data.algorithm")?;
        let algorithm = HashAlgorithm::from_protobuf_name(algorithm_name).ok_or_else(|| {
            InputError::UnknownHashAlgorithm {
                field: "spec.hashedRekordV002.data.algorithm".to_owned(),
                value: super::types::truncated(algorithm_name),
            }
        })?;
        let digest = Digest::from_base64_field(
            algorithm,
            string(data, "digest", "spec.hashedRekordV002.data.digest")?,
            "spec.hashedRekordV002.data.digest",
        )?;
        let signature =
            signature_from_json(field(entry, "signature"), "spec.hashedRekordV002.signature")?;
        let entry = HashedRekordV002::new_field(
            digest.as_bytes(),
            signature,
            "spec.hashedRekordV002.data.digest",
        )?;
        if entry.digest.algorithm() != algorithm {
            return Err(InputError::DigestAlgorithmMismatch {
                field: "spec.hashedRekordV002.data.algorithm".to_owned(),
                actual: algorithm,
                expected: entry.digest.algorithm(),
            }
            .into());
        }
        Ok(entry)
    }
}

/// Parses a protobuf-JSON `Signature` message at `path`.
pub(super) fn signature_from_json(value: &Value, path: &str) -> Result<Signature, BodyError> {
    let signature = object(value, path, &["content", "verifier"])?;
    let content_path = format!("{path}.content");
    let content = SignatureBytes::from_base64_field(
        string(signature, "content", &content_path)?,
        &content_path,
    )?;
    let verifier_path = format!("{path}.verifier");
    let verifier_value = field(signature, "verifier");
    let key_name = if verifier_value.get("publicKey").is_some() {
        "publicKey"
    } else {
        "x509Certificate"
    };
    let verifier = object(verifier_value, &verifier_path, &[key_name, "keyDetails"])?;
    let details_path = format!("{verifier_path}.keyDetails");
    let key_details = KeyDetails::from_protobuf_name_field(
        string(verifier, "keyDetails", &details_path)?,
        &details_path,
    )?;
    let key_path = format!("{verifier_path}.{key_name}");
    let key = object(field(verifier, key_name), &key_path, &["rawBytes"])?;
    let raw_path = format!("{key_path}.rawBytes");
    let der = super::types::decode_base64(
        string(key, "rawBytes", &raw_path)?,
        super::KEY_DER_BYTES_MAX,
        &raw_path,
    )?;
    let verifier = if key_name == "publicKey" {
        Verifier::public_key(&der, key_details)
    } else {
        Verifier::x509_certificate(&der, key_details)
    }
    .map_err(|error| error.with_field(&raw_path))?;
    Ok(Signature { content, verifier })
}
