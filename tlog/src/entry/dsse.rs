//! DSSE: the envelope a client submits, its pre-authentication encoding (PAE), and the dsse
//! entries of Rekor v1 (v0.0.1) and Rekor v2 (v0.0.2).

use serde::Deserialize;
use serde_json::{Value, json};

use super::hashedrekord::signature_from_json;
use super::types::{Digest, HashAlgorithm, Signature, SignatureBytes, truncated};
use super::{
    BodyError, DSSE_ENVELOPE_BYTES_MAX, DSSE_PAYLOAD_TYPE_BYTES_MAX, DSSE_SIGNATURES_MAX,
    InputError, KeyMaterial, PEM_BYTES_MAX, field, object, string,
};

/// The DSSE pre-authentication encoding, the bytes every DSSE signature is over:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal byte counts
/// (secure-systems-lab/dsse `protocol.md`).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// One signature of a DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DsseSignature {
    /// The optional, unauthenticated key hint (`keyid`); not part of any entry.
    pub keyid: Option<String>,
    /// The signature over the PAE (`sig`).
    pub sig: SignatureBytes,
}

/// A DSSE envelope as submitted to Rekor v1 (`proposedContent.envelope`, a JSON string), with
/// the SHA-256 of that exact text, which the dsse v0.0.1 entry records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsseEnvelope {
    envelope_hash: Digest,
    payload_type: String,
    payload: Vec<u8>,
    signatures: Vec<DsseSignature>,
}

impl DsseEnvelope {
    /// Parses `{"payload": B64, "payloadType": T, "signatures": [{"keyid": K, "sig": B64}]}`.
    ///
    /// Stricter than Go's `encoding/json` as Rekor uses it: member names are case-sensitive,
    /// duplicates are refused, and base64 must be canonical standard base64 (Go also accepts
    /// URL-safe); unknown members are ignored, as Go does. 1 to [`DSSE_SIGNATURES_MAX`]
    /// signatures, all different.
    pub fn parse(text: &str) -> Result<DsseEnvelope, InputError> {
        const FIELD: &str = "envelope";
        if text.len() > DSSE_ENVELOPE_BYTES_MAX {
            return Err(InputError::TooLong {
                field: FIELD.to_owned(),
                actual: text.len(),
                max: DSSE_ENVELOPE_BYTES_MAX,
            });
        }
        let json: EnvelopeJson =
            serde_json::from_str(text).map_err(|error| InputError::Envelope {
                field: FIELD.to_owned(),
                reason: error.to_string(),
            })?;
        if json.payload_type.len() > DSSE_PAYLOAD_TYPE_BYTES_MAX {
            return Err(InputError::TooLong {
                field: "envelope.payloadType".to_owned(),
                actual: json.payload_type.len(),
                max: DSSE_PAYLOAD_TYPE_BYTES_MAX,
            });
        }
        let payload = if json.payload.is_empty() {
            Vec::new()
        } else {
            super::types::decode_base64(&json.payload, DSSE_ENVELOPE_BYTES_MAX, "envelope.payload")?
        };
        check_signature_count(json.signatures.len(), "envelope.signatures")?;
        let mut signatures: Vec<DsseSignature> = Vec::with_capacity(json.signatures.len());
        for (index, signature) in json.signatures.into_iter().enumerate() {
            let sig = SignatureBytes::from_base64_field(
                &signature.sig,
                &format!("envelope.signatures[{index}].sig"),
            )?;
            if signatures.iter().any(|s| s.sig == sig) {
                return Err(InputError::DuplicateSignature {
                    field: format!("envelope.signatures[{index}].sig"),
                });
            }
            signatures.push(DsseSignature {
                keyid: signature.keyid,
                sig,
            });
        }
        Ok(DsseEnvelope {
            envelope_hash: Digest::sha256(text.as_bytes()),
            payload_type: json.payload_type,
            payload,
            signatures,
        })
    }

    /// SHA-256 of the envelope text exactly as submitted (dsse v0.0.1 `envelopeHash`).
    pub fn envelope_hash(&self) -> &Digest {
        &self.envelope_hash
    }

    /// The payload type.
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The decoded payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// SHA-256 of the decoded payload (`payloadHash` in both dsse versions).
    pub fn payload_hash(&self) -> Digest {
        Digest::sha256(&self.payload)
    }

    /// The signatures, in envelope order.
    pub fn signatures(&self) -> &[DsseSignature] {
        &self.signatures
    }

    /// The PAE of this envelope: what each signature must verify over.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

/// A signature of a dsse v0.0.1 entry and the PEM key material that verified it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DsseV001Signature {
    /// The envelope signature (`signature`, written as standard base64).
    pub signature: SignatureBytes,
    /// The key or certificate that verified it (`verifier`, canonical PEM in base64).
    pub verifier: KeyMaterial,
}

/// The spec of a dsse v0.0.1 entry (Rekor v1).
///
/// Body: `{"apiVersion":"0.0.1","kind":"dsse","spec":{"envelopeHash":{"algorithm":"sha256",
/// "value":HEX},"payloadHash":{"algorithm":"sha256","value":HEX},"signatures":[{"signature":
/// B64,"verifier":B64PEM}]}}`, as `V001Entry.Unmarshal` and `Canonicalize` in
/// `sigstore/rekor:pkg/types/dsse/v0.0.1/entry.go` build it: `proposedContent` dropped,
/// signatures sorted by their base64 text (Go string order, i.e. bytewise), each verifier
/// re-encoded as canonical PEM.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DsseV001 {
    envelope_hash: Digest,
    payload_hash: Digest,
    signatures: Vec<DsseV001Signature>,
}

impl DsseV001 {
    /// The entry from its parts. Both hashes must be SHA-256; 1 to [`DSSE_SIGNATURES_MAX`]
    /// signatures, all different (Rekor would silently merge equal ones; we refuse them).
    pub fn new(
        envelope_hash: Digest,
        payload_hash: Digest,
        signatures: Vec<DsseV001Signature>,
    ) -> Result<DsseV001, InputError> {
        require_sha256(&envelope_hash, "envelopeHash")?;
        require_sha256(&payload_hash, "payloadHash")?;
        check_signature_count(signatures.len(), "signatures")?;
        let mut signatures = signatures;
        signatures.sort_by_cached_key(|s| s.signature.to_base64());
        if signatures
            .windows(2)
            .any(|pair| pair[0].signature == pair[1].signature)
        {
            return Err(InputError::DuplicateSignature {
                field: "signatures".to_owned(),
            });
        }
        Ok(DsseV001 {
            envelope_hash,
            payload_hash,
            signatures,
        })
    }

    /// The entry for `envelope`, where `verifiers[i]` is the key that verified
    /// `envelope.signatures()[i]` (the node checks that with its crypto module first).
    pub fn from_envelope(
        envelope: &DsseEnvelope,
        verifiers: Vec<KeyMaterial>,
    ) -> Result<DsseV001, InputError> {
        check_verifier_count(envelope, verifiers.len())?;
        let signatures = envelope
            .signatures
            .iter()
            .zip(verifiers)
            .map(|(s, verifier)| DsseV001Signature {
                signature: s.sig.clone(),
                verifier,
            })
            .collect();
        DsseV001::new(
            envelope.envelope_hash.clone(),
            envelope.payload_hash(),
            signatures,
        )
    }

    /// SHA-256 of the submitted envelope text.
    pub fn envelope_hash(&self) -> &Digest {
        &self.envelope_hash
    }

    /// SHA-256 of the payload.
    pub fn payload_hash(&self) -> &Digest {
        &self.payload_hash
    }

    /// The signatures, in canonical order.
    pub fn signatures(&self) -> &[DsseV001Signature] {
        &self.signatures
    }

    pub(super) fn spec_json(&self) -> Value {
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| {
                json!({
                    "signature": s.signature.to_base64(),
                    "verifier": s.verifier.to_base64_pem(),
                })
            })
            .collect();
        json!({
            "envelopeHash": {
                "algorithm": "sha256",
                "value": self.envelope_hash.to_hex(),
            },
            "payloadHash": {
                "algorithm": "sha256",
                "value": self.payload_hash.to_hex(),
            },
            "signatures": signatures,
        })
    }

    pub(super) fn from_spec_json(spec: &Value) -> Result<DsseV001, BodyError> {
        let spec = object(spec, "spec", &["envelopeHash", "payloadHash", "signatures"])?;
        let envelope_hash = v001_hash(field(spec, "envelopeHash"), "spec.envelopeHash")?;
        let payload_hash = v001_hash(field(spec, "payloadHash"), "spec.payloadHash")?;
        let items = array(field(spec, "signatures"), "spec.signatures")?;
        let mut signatures = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("spec.signatures[{index}]");
            let item = object(item, &path, &["signature", "verifier"])?;
            let signature_path = format!("{path}.signature");
            let signature = SignatureBytes::from_base64_field(
                string(item, "signature", &signature_path)?,
                &signature_path,
            )?;
            let verifier_path = format!("{path}.verifier");
            let pem = super::types::decode_base64(
                string(item, "verifier", &verifier_path)?,
                PEM_BYTES_MAX,
                &verifier_path,
            )?;
            let verifier = KeyMaterial::from_pem_field(&pem, &verifier_path)?;
            signatures.push(DsseV001Signature {
                signature,
                verifier,
            });
        }
        DsseV001::new(envelope_hash, payload_hash, signatures)
            .map_err(|error| error.with_field_prefix("spec.").into())
    }
}

/// The spec of a dsse v0.0.2 entry (Rekor v2, deprecated).
///
/// Body: `{"apiVersion":"0.0.2","kind":"dsse","spec":{"dsseV002":{"payloadHash":{"algorithm":
/// "SHA2_256","digest":B64},"signatures":[{"content":B64,"verifier":{...}}]}}}`, as
/// `ToLogEntry` in `sigstore/rekor-tiles:pkg/types/dsse/dsse.go` built it before rekor-tiles
/// dropped DSSE (commit fa390b1c, "Drop DSSE support", #744; clients now log a hashedrekord
/// v0.0.2 over the PAE digest instead). Signatures are sorted by their raw bytes. Kept so that
/// such entries can be built and parsed; rekor-tiles no longer accepts new ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DsseV002 {
    payload_hash: Digest,
    signatures: Vec<Signature>,
}

impl DsseV002 {
    /// The entry from its parts: a SHA-256 payload hash and 1 to [`DSSE_SIGNATURES_MAX`]
    /// different signatures.
    pub fn new(payload_hash: Digest, signatures: Vec<Signature>) -> Result<DsseV002, InputError> {
        require_sha256(&payload_hash, "payloadHash")?;
        check_signature_count(signatures.len(), "signatures")?;
        let mut signatures = signatures;
        signatures.sort_by(|a, b| a.content.as_bytes().cmp(b.content.as_bytes()));
        if signatures
            .windows(2)
            .any(|pair| pair[0].content == pair[1].content)
        {
            return Err(InputError::DuplicateSignature {
                field: "signatures".to_owned(),
            });
        }
        Ok(DsseV002 {
            payload_hash,
            signatures,
        })
    }

    /// The entry for `envelope`, where `verifiers[i]` verified `envelope.signatures()[i]`.
    pub fn from_envelope(
        envelope: &DsseEnvelope,
        verifiers: Vec<super::Verifier>,
    ) -> Result<DsseV002, InputError> {
        check_verifier_count(envelope, verifiers.len())?;
        let signatures = envelope
            .signatures
            .iter()
            .zip(verifiers)
            .map(|(s, verifier)| Signature {
                content: s.sig.clone(),
                verifier,
            })
            .collect();
        DsseV002::new(envelope.payload_hash(), signatures)
    }

    /// SHA-256 of the payload.
    pub fn payload_hash(&self) -> &Digest {
        &self.payload_hash
    }

    /// The signatures with their verifiers, in canonical order.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    pub(super) fn spec_json(&self) -> Value {
        let signatures: Vec<Value> = self.signatures.iter().map(Signature::to_json).collect();
        json!({
            "dsseV002": {
                "payloadHash": {
                    "algorithm": self.payload_hash.algorithm().protobuf_name(),
                    "digest": self.payload_hash.to_base64(),
                },
                "signatures": signatures,
            },
        })
    }

    pub(super) fn from_spec_json(spec: &Value) -> Result<DsseV002, BodyError> {
        let spec = object(spec, "spec", &["dsseV002"])?;
        let entry = object(
            field(spec, "dsseV002"),
            "spec.dsseV002",
            &["payloadHash", "signatures"],
        )?;
        let hash = object(
            field(entry, "payloadHash"),
            "spec.dsseV002.payloadHash",
            &["algorithm", "digest"],
        )?;
        let algorithm_path = "spec.dsseV002.payloadHash.algorithm";
        let algorithm_name = string(hash, "algorithm", algorithm_path)?;
        let algorithm = HashAlgorithm::from_protobuf_name(algorithm_name).ok_or_else(|| {
            InputError::UnknownHashAlgorithm {
                field: algorithm_path.to_owned(),
                value: truncated(algorithm_name),
            }
        })?;
        let digest_path = "spec.dsseV002.payloadHash.digest";
        let payload_hash = Digest::from_base64_field(
            algorithm,
            string(hash, "digest", digest_path)?,
            digest_path,
        )?;
        let items = array(field(entry, "signatures"), "spec.dsseV002.signatures")?;
        let signatures = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                signature_from_json(item, &format!("spec.dsseV002.signatures[{index}]"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        DsseV002::new(payload_hash, signatures)
            .map_err(|error| error.with_field_prefix("spec.dsseV002.").into())
    }
}

#[derive(Deserialize)]
struct EnvelopeJson {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<EnvelopeSignatureJson>,
}

#[derive(Deserialize)]
struct EnvelopeSignatureJson {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
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

fn check_signature_count(count: usize, field: &str) -> Result<(), InputError> {
    if count == 0 {
        return Err(InputError::Empty {
            field: field.to_owned(),
        });
    }
    if count > DSSE_SIGNATURES_MAX {
        return Err(InputError::TooMany {
            field: field.to_owned(),
            count,
            max: DSSE_SIGNATURES_MAX,
        });
    }
    Ok(())
}

fn check_verifier_count(envelope: &DsseEnvelope, verifiers: usize) -> Result<(), InputError> {
    if envelope.signatures.len() == verifiers {
        Ok(())
    } else {
        Err(InputError::VerifierCount {
            field: "verifiers".to_owned(),
            signatures: envelope.signatures.len(),
            verifiers,
        })
    }
}

/// A Rekor v1 `{"algorithm":"sha256","value":HEX}` object at `path` (members beyond these
/// refused): dsse 0.0.1's hashes and intoto 0.0.2's.
pub(super) fn v001_hash(value: &Value, path: &str) -> Result<Digest, BodyError> {
    let hash = object(value, path, &["algorithm", "value"])?;
    let algorithm_path = format!("{path}.algorithm");
    let algorithm_name = string(hash, "algorithm", &algorithm_path)?;
    if algorithm_name != "sha256" {
        return Err(InputError::UnknownHashAlgorithm {
            field: algorithm_path,
            value: truncated(algorithm_name),
        }
        .into());
    }
    let value_path = format!("{path}.value");
    Ok(Digest::from_hex_field(
        HashAlgorithm::Sha256,
        string(hash, "value", &value_path)?,
        &value_path,
    )?)
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, BodyError> {
    value.as_array().ok_or_else(|| BodyError::Shape {
        path: path.to_owned(),
        expected: "an array",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_known_answer() {
        // The example of secure-systems-lab/dsse protocol.md.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        // Lengths are byte counts, not character counts.
        assert_eq!(pae("é", b""), "DSSEv1 2 é 0 ".as_bytes());
    }

    #[test]
    fn envelope_parse_hashes_the_text_as_sent() {
        let text = r#"{"payload":"aGVsbG8gd29ybGQ=","payloadType":"http://example.com/HelloWorld","signatures":[{"keyid":"k","sig":"AQID"}],"extra":1}"#;
        let envelope = DsseEnvelope::parse(text).unwrap();
        assert_eq!(envelope.payload(), b"hello world");
        assert_eq!(envelope.envelope_hash(), &Digest::sha256(text.as_bytes()));
        assert_eq!(envelope.payload_hash(), Digest::sha256(b"hello world"));
        assert_eq!(envelope.signatures()[0].keyid.as_deref(), Some("k"));
        assert_eq!(
            envelope.pae(),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        // Same content, different text: a different envelope hash.
        let spaced = text.replace(",\"extra\":1", ", \"extra\": 1");
        let other = DsseEnvelope::parse(&spaced).unwrap();
        assert_ne!(other.envelope_hash(), envelope.envelope_hash());
    }

    #[test]
    fn envelope_parse_refuses_bad_input() {
        let cases = [
            (
                r#"{"payload":"aGk=","payloadType":"t","signatures":[]}"#,
                "no signatures",
            ),
            (
                r#"{"payload":"aGk=","payloadType":"t"}"#,
                "signatures missing",
            ),
            (
                r#"{"payload":"aGk","payloadType":"t","signatures":[{"sig":"AQID"}]}"#,
                "padding",
            ),
            (
                r#"{"payload":"aGk=","payloadType":"t","signatures":[{"sig":"AQ-_"}]}"#,
                "url b64",
            ),
            (
                r#"{"payload":"aGk=","payloadType":"t","signatures":[{"sig":""}]}"#,
                "empty sig",
            ),
            (
                r#"{"payload":"aGk=","payloadType":"t","signatures":[{"sig":"AQID"},{"sig":"AQID"}]}"#,
                "duplicate",
            ),
            (
                r#"{"payload":"aGk=","payload":"aGk=","payloadType":"t","signatures":[{"sig":"AQID"}]}"#,
                "duplicate member",
            ),
            ("not json", "not json"),
        ];
        for (text, why) in cases {
            assert!(DsseEnvelope::parse(text).is_err(), "accepted: {why}");
        }
        let many: Vec<String> = (0..=u8::try_from(DSSE_SIGNATURES_MAX).unwrap())
            .map(|i| {
                format!(
                    r#"{{"sig":"{}"}}"#,
                    SignatureBytes::new(&[1, i]).unwrap().to_base64()
                )
            })
            .collect();
        let text = format!(
            r#"{{"payload":"","payloadType":"t","signatures":[{}]}}"#,
            many.join(",")
        );
        assert!(matches!(
            DsseEnvelope::parse(&text),
            Err(InputError::TooMany { .. })
        ));
    }

    #[test]
    fn v001_signatures_sort_by_base64_text() {
        // Raw 0xfb.. encodes as "+w==", raw 0x00.. as "AA==": '+' sorts before 'A' in the text
        // although 0xfb sorts after 0x00 as bytes, so v0.0.1 and v0.0.2 order them differently.
        let key = KeyMaterial::from_public_key_der(b"k").unwrap();
        let high = SignatureBytes::new(&[0xfb]).unwrap();
        let low = SignatureBytes::new(&[0x00]).unwrap();
        let hash = Digest::sha256(b"");
        let entry = DsseV001::new(
            hash.clone(),
            hash.clone(),
            vec![
                DsseV001Signature {
                    signature: low.clone(),
                    verifier: key.clone(),
                },
                DsseV001Signature {
                    signature: high.clone(),
                    verifier: key.clone(),
                },
            ],
        )
        .unwrap();
        assert_eq!(entry.signatures()[0].signature, high);

        let verifier =
            super::super::Verifier::public_key(b"k", super::super::KeyDetails::Ed25519).unwrap();
        let v2 = DsseV002::new(
            hash.clone(),
            vec![
                Signature {
                    content: high.clone(),
                    verifier: verifier.clone(),
                },
                Signature {
                    content: low.clone(),
                    verifier,
                },
            ],
        )
        .unwrap();
        assert_eq!(v2.signatures()[0].content, low);
        assert!(matches!(
            DsseV001::new(HashAlgorithm::Sha512.hash(b""), hash, vec![]),
            Err(InputError::DigestAlgorithmMismatch { .. })
        ));
    }
}
