//! The intoto v0.0.2 entry of Rekor v1: a DSSE envelope logged with each signature's key.
//!
//! Rekor still accepts it and clients still send it (sigstore-js logs DSSE envelopes as
//! `intoto` in its legacy mode and for attestations), although `dsse` 0.0.1 supersedes it.
//! Matched against `sigstore/rekor` v1.5.4+1 (eee7d8d6): `pkg/types/intoto/v0.0.2/entry.go`
//! (`DecodeEntry`, `Unmarshal`, `Canonicalize`), `intoto_v0_0_2_schema.json` and
//! `pkg/generated/models/intoto_v002_schema.go`.
//!
//! What Rekor does with a proposed entry, and what we do:
//! - `envelope.payload` and each `sig` are `format: byte` fields holding the DSSE envelope's own
//!   base64 text, so they are base64 twice over. Rekor decodes the outer layer, verifies each
//!   signature over the PAE with that signature's `publicKey` (PEM, base64 once), and computes
//!   `payloadHash` itself (a client's value is overwritten; we refuse one that differs).
//! - `hash`, the SHA-256 of the envelope as the client serialised it, is required and taken as
//!   stated: nobody can recompute it, since there is no standard serialisation.
//! - The canonical body drops `payload` and keeps the rest as submitted: the signatures in
//!   envelope order, `keyid` only when not empty, each `sig` and `publicKey` as sent. Where
//!   "as sent" has more than one form (the inner base64 of `sig`, which DSSE decoders accept
//!   in four alphabets; a PEM with other line breaks, which this Rekor keeps but later ones
//!   re-encode), we accept only the canonical form: standard base64 with padding, and the PEM
//!   `pem.EncodeToMemory` writes. Every body we build is then the one any Rekor would store.

use serde_json::{Map, Value, json};

use super::types::{Digest, HashAlgorithm, SignatureBytes, decode_base64};
use super::{
    BodyError, DSSE_ENVELOPE_BYTES_MAX, DSSE_PAYLOAD_TYPE_BYTES_MAX, DSSE_SIGNATURES_MAX,
    InputError, KeyMaterial, PEM_BYTES_MAX,
    dsse::{pae, v001_hash},
    field, object, string,
};

/// The longest `keyid`: 256 bytes (it is an unauthenticated hint, usually empty).
pub const INTOTO_KEYID_BYTES_MAX: usize = 256;

/// One signature of an intoto v0.0.2 entry, with the key that verifies it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IntotoV002Signature {
    /// The envelope's `keyid` hint, if not empty.
    pub keyid: Option<String>,
    /// The raw signature over the PAE (the body writes base64 of its base64 text).
    pub sig: SignatureBytes,
    /// The key or certificate (chain) that verifies it (the body writes base64 of its PEM).
    pub public_key: KeyMaterial,
}

/// The spec of an intoto v0.0.2 entry (Rekor v1).
///
/// Body: `{"apiVersion":"0.0.2","kind":"intoto","spec":{"content":{"envelope":{"payloadType":
/// T,"signatures":[{"keyid":K,"publicKey":B64PEM,"sig":B64B64}]},"hash":{"algorithm":"sha256",
/// "value":HEX},"payloadHash":{"algorithm":"sha256","value":HEX}}}}`, `keyid` only when set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IntotoV002 {
    envelope_hash: Digest,
    payload_hash: Digest,
    payload_type: String,
    signatures: Vec<IntotoV002Signature>,
}

impl IntotoV002 {
    /// The entry from its parts: SHA-256 hashes of the envelope (as the client serialised it)
    /// and of the payload, a non-empty payload type, and 1 to [`DSSE_SIGNATURES_MAX`]
    /// different signatures, kept in envelope order. An empty `keyid` is no `keyid`.
    pub fn new(
        envelope_hash: Digest,
        payload_hash: Digest,
        payload_type: String,
        signatures: Vec<IntotoV002Signature>,
    ) -> Result<IntotoV002, InputError> {
        require_sha256(&envelope_hash, "content.hash")?;
        require_sha256(&payload_hash, "content.payloadHash")?;
        super::types::check_len(
            payload_type.len(),
            DSSE_PAYLOAD_TYPE_BYTES_MAX,
            "content.envelope.payloadType",
        )?;
        let field = "content.envelope.signatures";
        if signatures.is_empty() {
            return Err(InputError::Empty {
                field: field.to_owned(),
            });
        }
        if signatures.len() > DSSE_SIGNATURES_MAX {
            return Err(InputError::TooMany {
                field: field.to_owned(),
                count: signatures.len(),
                max: DSSE_SIGNATURES_MAX,
            });
        }
        let mut kept: Vec<IntotoV002Signature> = Vec::with_capacity(signatures.len());
        for (index, mut signature) in signatures.into_iter().enumerate() {
            if kept.iter().any(|s| s.sig == signature.sig) {
                return Err(InputError::DuplicateSignature {
                    field: format!("{field}[{index}].sig"),
                });
            }
            signature.keyid = signature.keyid.filter(|keyid| !keyid.is_empty());
            if let Some(keyid) = &signature.keyid
                && keyid.len() > INTOTO_KEYID_BYTES_MAX
            {
                return Err(InputError::TooLong {
                    field: format!("{field}[{index}].keyid"),
                    actual: keyid.len(),
                    max: INTOTO_KEYID_BYTES_MAX,
                });
            }
            kept.push(signature);
        }
        Ok(IntotoV002 {
            envelope_hash,
            payload_hash,
            payload_type,
            signatures: kept,
        })
    }

    /// SHA-256 of the envelope as the client serialised it (`content.hash`, unverifiable).
    pub fn envelope_hash(&self) -> &Digest {
        &self.envelope_hash
    }

    /// SHA-256 of the payload.
    pub fn payload_hash(&self) -> &Digest {
        &self.payload_hash
    }

    /// The payload type.
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The signatures, in envelope order.
    pub fn signatures(&self) -> &[IntotoV002Signature] {
        &self.signatures
    }

    pub(super) fn spec_json(&self) -> Value {
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| {
                let mut item = Map::new();
                if let Some(keyid) = &s.keyid {
                    item.insert("keyid".to_owned(), Value::String(keyid.clone()));
                }
                item.insert(
                    "publicKey".to_owned(),
                    Value::String(s.public_key.to_base64_pem()),
                );
                item.insert("sig".to_owned(), Value::String(double_base64(&s.sig)));
                Value::Object(item)
            })
            .collect();
        json!({
            "content": {
                "envelope": {
                    "payloadType": self.payload_type,
                    "signatures": signatures,
                },
                "hash": { "algorithm": "sha256", "value": self.envelope_hash.to_hex() },
                "payloadHash": { "algorithm": "sha256", "value": self.payload_hash.to_hex() },
            },
        })
    }

    /// Parses the spec of a logged (canonical) body: no `payload`, every other member required.
    pub(super) fn from_spec_json(spec: &Value) -> Result<IntotoV002, BodyError> {
        let spec = object(spec, "spec", &["content"])?;
        let content = object(
            field(spec, "content"),
            "spec.content",
            &["envelope", "hash", "payloadHash"],
        )?;
        let envelope = object(
            field(content, "envelope"),
            "spec.content.envelope",
            &["payloadType", "signatures"],
        )?;
        let payload_type = string(envelope, "payloadType", "spec.content.envelope.payloadType")?;
        let signatures = signatures(envelope, "spec.content.envelope", true)?;
        let envelope_hash = v001_hash(field(content, "hash"), "spec.content.hash")?;
        let payload_hash = v001_hash(field(content, "payloadHash"), "spec.content.payloadHash")?;
        IntotoV002::new(
            envelope_hash,
            payload_hash,
            payload_type.to_owned(),
            signatures,
        )
        .map_err(|error| error.with_field_prefix("spec.").into())
    }
}

/// A proposed intoto v0.0.2 entry, the `spec` a client posts to Rekor v1's
/// `POST /api/v1/log/entries` with `"kind":"intoto","apiVersion":"0.0.2"`: the entry it
/// becomes and the payload its signatures are over. Nothing here is verified; the caller
/// checks each signature over [`IntotoV002Proposal::pae`] with its `public_key` first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntotoV002Proposal {
    entry: IntotoV002,
    payload: Vec<u8>,
}

impl IntotoV002Proposal {
    /// Parses a proposed `spec`. Unknown members are ignored, as Rekor does; `payload`,
    /// `payloadType`, `signatures` (each with `sig` and `publicKey`) and `hash` are required;
    /// `payloadHash`, if given, must be the payload's SHA-256.
    pub fn parse(spec: &Value) -> Result<IntotoV002Proposal, BodyError> {
        let path = "spec.content";
        let content = member_object(spec, "content", "spec")?;
        let envelope = member_object_map(content, "envelope", path)?;
        let envelope_path = "spec.content.envelope";
        let payload_field = "spec.content.envelope.payload";
        let payload_b64 = string(envelope, "payload", payload_field)?;
        // Rekor logs nothing for an envelope without a payload ("missing envelope content").
        if payload_b64.is_empty() {
            return Err(InputError::Empty {
                field: payload_field.to_owned(),
            }
            .into());
        }
        let payload_text = decode_base64(payload_b64, DSSE_ENVELOPE_BYTES_MAX, payload_field)?;
        let payload_text = String::from_utf8(payload_text).map_err(|_| InputError::Base64 {
            field: payload_field.to_owned(),
        })?;
        let payload = decode_base64(&payload_text, DSSE_ENVELOPE_BYTES_MAX, payload_field)?;
        let payload_type = string(envelope, "payloadType", "spec.content.envelope.payloadType")?;
        let signatures = signatures(envelope, envelope_path, false)?;
        let envelope_hash = v001_hash(
            content.get("hash").ok_or_else(|| BodyError::MissingField {
                path: "spec.content.hash".to_owned(),
            })?,
            "spec.content.hash",
        )?;
        let payload_hash = Digest::sha256(&payload);
        if let Some(stated) = content.get("payloadHash")
            && v001_hash(stated, "spec.content.payloadHash")? != payload_hash
        {
            return Err(InputError::Mismatch {
                field: "spec.content.payloadHash.value".to_owned(),
                expected: "the SHA-256 of the payload",
            }
            .into());
        }
        let entry = IntotoV002::new(
            envelope_hash,
            payload_hash,
            payload_type.to_owned(),
            signatures,
        )
        .map_err(|error| error.with_field_prefix("spec."))?;
        Ok(IntotoV002Proposal { entry, payload })
    }

    /// The entry this proposal becomes once its signatures verify.
    pub fn entry(&self) -> &IntotoV002 {
        &self.entry
    }

    /// The entry, by value.
    pub fn into_entry(self) -> IntotoV002 {
        self.entry
    }

    /// The decoded payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The PAE every signature must verify over.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.entry.payload_type, &self.payload)
    }
}

/// `sig` as the body carries it: base64 of the signature's base64 text.
fn double_base64(sig: &SignatureBytes) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(sig.to_base64())
}

/// The `signatures` of `envelope` (at `path`). `logged`: a body's, whose items hold exactly
/// `sig`, `publicKey` and an optional `keyid`, with the PEM in canonical form (checked when
/// the whole body is compared with its re-serialisation); otherwise a proposal's, whose
/// unknown members are ignored and whose PEM must already be canonical.
fn signatures(
    envelope: &Map<String, Value>,
    path: &str,
    logged: bool,
) -> Result<Vec<IntotoV002Signature>, BodyError> {
    let items_path = format!("{path}.signatures");
    let items = envelope
        .get("signatures")
        .ok_or_else(|| BodyError::MissingField {
            path: items_path.clone(),
        })?
        .as_array()
        .ok_or_else(|| BodyError::Shape {
            path: items_path.clone(),
            expected: "an array",
        })?;
    if items.len() > DSSE_SIGNATURES_MAX {
        return Err(InputError::TooMany {
            field: items_path,
            count: items.len(),
            max: DSSE_SIGNATURES_MAX,
        }
        .into());
    }
    let mut signatures = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{items_path}[{index}]");
        let item = if logged {
            let keys: &[&str] = match item.get("keyid") {
                Some(_) => &["keyid", "publicKey", "sig"],
                None => &["publicKey", "sig"],
            };
            object(item, &item_path, keys)?
        } else {
            item.as_object().ok_or_else(|| BodyError::Shape {
                path: item_path.clone(),
                expected: "an object",
            })?
        };
        let keyid = match item.get("keyid") {
            None => None,
            Some(Value::Null) if !logged => None,
            Some(_) => Some(string(item, "keyid", &format!("{item_path}.keyid"))?.to_owned()),
        };
        let sig_path = format!("{item_path}.sig");
        let sig_text = decode_base64(
            string(item, "sig", &sig_path)?,
            super::SIGNATURE_BYTES_MAX * 2,
            &sig_path,
        )?;
        let sig_text = String::from_utf8(sig_text).map_err(|_| InputError::Base64 {
            field: sig_path.clone(),
        })?;
        let sig = SignatureBytes::from_base64_field(&sig_text, &sig_path)?;
        let key_path = format!("{item_path}.publicKey");
        let pem = decode_base64(
            string(item, "publicKey", &key_path)?,
            PEM_BYTES_MAX,
            &key_path,
        )?;
        let public_key = KeyMaterial::from_pem_field(&pem, &key_path)?;
        if !logged && public_key.to_pem().as_bytes() != pem.as_slice() {
            return Err(InputError::Pem {
                field: key_path,
                reason: "not in canonical form (Go's pem.EncodeToMemory: 64-column lines, \
                         each block ending in a newline, nothing around the blocks)",
            }
            .into());
        }
        signatures.push(IntotoV002Signature {
            keyid,
            sig,
            public_key,
        });
    }
    Ok(signatures)
}

fn member_object<'a>(
    value: &'a Value,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, BodyError> {
    let map = value.as_object().ok_or_else(|| BodyError::Shape {
        path: path.to_owned(),
        expected: "an object",
    })?;
    member_object_map(map, key, path)
}

fn member_object_map<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, BodyError> {
    let member_path = format!("{path}.{key}");
    map.get(key)
        .ok_or_else(|| BodyError::MissingField {
            path: member_path.clone(),
        })?
        .as_object()
        .ok_or(BodyError::Shape {
            path: member_path,
            expected: "an object",
        })
}

fn require_sha256(digest: &Digest, field: &str) -> Result<(), InputError> {
    if digest.algorithm() == HashAlgorithm::Sha256 {
        Ok(())
    } else {
        Err(InputError::DigestAlgorithmMismatch {
            field: field.to_owned(),
            actual: digest.algorithm(),
            expected: HashAlgorithm::Sha256,
        })
    }
}
