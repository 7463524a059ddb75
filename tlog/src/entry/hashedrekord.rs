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
        let signature = object(
            field(spec, "signature"),
            "spec.signature",
            &["content", "publicKey"],
        )?;
        let public_key = object(
            field(signature, "publicKey"),
            "spec.signature.publicKey",
            &["content"],
        )?;
        HashedRekordV001::from_strings(&V001Strings {
            algorithm: string(hash, "algorithm", "spec.data.hash.algorithm")?,
            value: string(hash, "value", "spec.data.hash.value")?,
            content: string(signature, "content", "spec.signature.content")?,
            public_key: string(public_key, "content", "spec.signature.publicKey.content")?,
        })
    }

    /// The entry whose spec has these string values, each validated as on build.
    pub(super) fn from_strings(strings: &V001Strings<'_>) -> Result<Self, BodyError> {
        let algorithm = HashAlgorithm::from_rekor_v1_name(strings.algorithm).ok_or_else(|| {
            InputError::UnknownHashAlgorithm {
                field: "spec.data.hash.algorithm".to_owned(),
                value: super::types::truncated(strings.algorithm),
            }
        })?;
        let digest = Digest::from_hex_field(algorithm, strings.value, "spec.data.hash.value")?;
        let content = SignatureBytes::from_base64_field(strings.content, "spec.signature.content")?;
        let pem = super::types::decode_base64(
            strings.public_key,
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
        let spec = object(spec, "spec", &["hashedRekordV002"])?;
        let entry = object(
            field(spec, "hashedRekordV002"),
            "spec.hashedRekordV002",
            &["data", "signature"],
        )?;
        let data = object(
            field(entry, "data"),
            "spec.hashedRekordV002.data",
            &["algorithm", "digest"],
        )?;
        HashedRekordV002::from_strings(&V002Strings {
            algorithm: string(data, "algorithm", "spec.hashedRekordV002.data.algorithm")?,
            digest: string(data, "digest", "spec.hashedRekordV002.data.digest")?,
            signature: signature_strings(
                field(entry, "signature"),
                "spec.hashedRekordV002.signature",
            )?,
        })
    }

    /// The entry whose spec has these string values, each validated as on build.
    pub(super) fn from_strings(strings: &V002Strings<'_>) -> Result<Self, BodyError> {
        let algorithm = HashAlgorithm::from_protobuf_name(strings.algorithm).ok_or_else(|| {
            InputError::UnknownHashAlgorithm {
                field: "spec.hashedRekordV002.data.algorithm".to_owned(),
                value: super::types::truncated(strings.algorithm),
            }
        })?;
        let digest = Digest::from_base64_field(
            algorithm,
            strings.digest,
            "spec.hashedRekordV002.data.digest",
        )?;
        let signature =
            signature_from_strings(&strings.signature, "spec.hashedRekordV002.signature")?;
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

/// The string values of a hashedrekord v0.0.1 spec: read from its JSON, or from a canonical
/// body by the `template` module.
pub(super) struct V001Strings<'a> {
    /// `data.hash.algorithm`.
    pub algorithm: &'a str,
    /// `data.hash.value`.
    pub value: &'a str,
    /// `signature.content`.
    pub content: &'a str,
    /// `signature.publicKey.content`.
    pub public_key: &'a str,
}

/// The string values of a hashedrekord v0.0.2 spec (see [`V001Strings`]).
pub(super) struct V002Strings<'a> {
    /// `hashedRekordV002.data.algorithm`.
    pub algorithm: &'a str,
    /// `hashedRekordV002.data.digest`.
    pub digest: &'a str,
    /// `hashedRekordV002.signature`.
    pub signature: SignatureStrings<'a>,
}

/// The string values of a protobuf-JSON `Signature` message.
pub(super) struct SignatureStrings<'a> {
    /// `content`.
    pub content: &'a str,
    /// The verifier's key member: `publicKey` or `x509Certificate`.
    pub key_name: &'static str,
    /// `verifier.keyDetails`.
    pub key_details: &'a str,
    /// `verifier.<key_name>.rawBytes`.
    pub raw_bytes: &'a str,
}

/// Parses a protobuf-JSON `Signature` message at `path`.
pub(super) fn signature_from_json(value: &Value, path: &str) -> Result<Signature, BodyError> {
    signature_from_strings(&signature_strings(value, path)?, path)
}

/// The string values of the protobuf-JSON `Signature` message at `path`, its shape checked.
fn signature_strings<'a>(value: &'a Value, path: &str) -> Result<SignatureStrings<'a>, BodyError> {
    let signature = object(value, path, &["content", "verifier"])?;
    let verifier_path = format!("{path}.verifier");
    let verifier_value = field(signature, "verifier");
    let key_name = if verifier_value.get("publicKey").is_some() {
        "publicKey"
    } else {
        "x509Certificate"
    };
    let verifier = object(verifier_value, &verifier_path, &[key_name, "keyDetails"])?;
    let key_path = format!("{verifier_path}.{key_name}");
    let key = object(field(verifier, key_name), &key_path, &["rawBytes"])?;
    Ok(SignatureStrings {
        content: string(signature, "content", &format!("{path}.content"))?,
        key_name,
        key_details: string(
            verifier,
            "keyDetails",
            &format!("{verifier_path}.keyDetails"),
        )?,
        raw_bytes: string(key, "rawBytes", &format!("{key_path}.rawBytes"))?,
    })
}

/// The `Signature` at `path` with these string values, each validated as on build.
pub(super) fn signature_from_strings(
    strings: &SignatureStrings<'_>,
    path: &str,
) -> Result<Signature, BodyError> {
    // The field paths only name an error, and this runs for every leaf parsed (apply,
    // catch-up, reindex): they are built only when validation fails, by validating again
    // with them (it is deterministic, so it fails the same way).
    signature_at(strings, &SignaturePaths::default()).or_else(|_| {
        let verifier = format!("{path}.verifier");
        let paths = SignaturePaths {
            content: format!("{path}.content"),
            key_details: format!("{verifier}.keyDetails"),
            raw_bytes: format!("{verifier}.{}.rawBytes", strings.key_name),
        };
        signature_at(strings, &paths)
    })
}

/// The field paths [`signature_at`] names in its errors.
#[derive(Default)]
struct SignaturePaths {
    content: String,
    key_details: String,
    raw_bytes: String,
}

fn signature_at(
    strings: &SignatureStrings<'_>,
    paths: &SignaturePaths,
) -> Result<Signature, BodyError> {
    let content = SignatureBytes::from_base64_field(strings.content, &paths.content)?;
    let key_details =
        KeyDetails::from_protobuf_name_field(strings.key_details, &paths.key_details)?;
    let der = super::types::decode_base64(
        strings.raw_bytes,
        super::KEY_DER_BYTES_MAX,
        &paths.raw_bytes,
    )?;
    let verifier = if strings.key_name == "publicKey" {
        Verifier::public_key(&der, key_details)
    } else {
        Verifier::x509_certificate(&der, key_details)
    }
    .map_err(|error| error.with_field(&paths.raw_bytes))?;
    Ok(Signature { content, verifier })
}
