//! The PEM key material of Rekor v1 entries (`publicKey.content` in hashedrekord v0.0.1,
//! `verifier` in dsse v0.0.1), and Rekor's canonical re-encoding of it.
//!
//! Rekor does not store the PEM a client sends. `x509.NewPublicKey`
//! (`sigstore/rekor:pkg/pki/x509/x509.go`) trims whitespace, decodes one PEM block (or a chain
//! of up to 10 `CERTIFICATE` blocks), and `CanonicalValue` re-encodes it with Go's
//! `pem.EncodeToMemory`: `-----BEGIN T-----\n`, base64 in 64-column lines, `-----END T-----\n`,
//! no headers. We decode a strict subset of what Go's `pem.Decode` accepts (no text around or
//! between blocks, no headers, canonical base64) and re-encode the same way, so every PEM we
//! accept becomes the bytes Rekor would store.
//!
//! One difference cannot be closed without parsing keys: for a `PUBLIC KEY` block Rekor
//! re-marshals the parsed key (`x509.MarshalPKIXPublicKey`) while we keep its DER. The two agree
//! for DER-encoded (canonical) SubjectPublicKeyInfo, which is what every client sends; the
//! node's crypto module, which parses the key anyway, should refuse one that does not
//! re-encode to itself. Certificates are re-encoded from their original DER (`cert.Raw`), so
//! they always agree.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::types::check_len;
use super::{InputError, KEY_DER_BYTES_MAX, PEM_BYTES_MAX, PEM_CERTIFICATES_MAX};

const CERTIFICATE_LABEL: &str = "CERTIFICATE";
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// A public key or certificate (chain) in a Rekor v1 entry, held as DER and written as
/// Rekor's canonical PEM.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyMaterial {
    /// One `PUBLIC KEY` block: a DER SubjectPublicKeyInfo.
    PublicKey(Vec<u8>),
    /// One to [`PEM_CERTIFICATES_MAX`] `CERTIFICATE` blocks, leaf first: DER certificates.
    Certificates(Vec<Vec<u8>>),
}

impl KeyMaterial {
    /// Parses PEM as a client submits it: one `PUBLIC KEY` block, or one or more `CERTIFICATE`
    /// blocks. Whitespace around and between blocks, and line breaks of any width inside them,
    /// are accepted; headers, other labels and other text are refused.
    pub fn from_pem(pem: &[u8]) -> Result<KeyMaterial, InputError> {
        KeyMaterial::from_pem_field(pem, "publicKey")
    }

    /// One DER certificate (as in a bundle's `verificationMaterial.certificate.rawBytes`).
    pub fn from_certificate_der(der: &[u8]) -> Result<KeyMaterial, InputError> {
        check_len(der.len(), KEY_DER_BYTES_MAX, "certificate")?;
        Ok(KeyMaterial::Certificates(vec![der.to_vec()]))
    }

    /// One DER SubjectPublicKeyInfo.
    pub fn from_public_key_der(der: &[u8]) -> Result<KeyMaterial, InputError> {
        check_len(der.len(), KEY_DER_BYTES_MAX, "public key")?;
        Ok(KeyMaterial::PublicKey(der.to_vec()))
    }

    /// Rekor's canonical PEM (Go `pem.EncodeToMemory` of each block, concatenated).
    pub fn to_pem(&self) -> String {
        match self {
            KeyMaterial::PublicKey(der) => encode_block(PUBLIC_KEY_LABEL, der),
            KeyMaterial::Certificates(chain) => chain
                .iter()
                .map(|der| encode_block(CERTIFICATE_LABEL, der))
                .collect(),
        }
    }

    /// Base64 of the canonical PEM, as the JSON body carries it.
    pub fn to_base64_pem(&self) -> String {
        BASE64.encode(self.to_pem())
    }

    /// The DER of the leaf certificate or of the public key.
    pub fn leaf_der(&self) -> &[u8] {
        match self {
            KeyMaterial::PublicKey(der) => der,
            // Never empty: every constructor checks for at least one certificate.
            KeyMaterial::Certificates(chain) => chain.first().map_or(&[], Vec::as_slice),
        }
    }

    pub(super) fn from_pem_field(pem: &[u8], field: &str) -> Result<KeyMaterial, InputError> {
        if pem.len() > PEM_BYTES_MAX {
            return Err(InputError::TooLong {
                field: field.to_owned(),
                actual: pem.len(),
                max: PEM_BYTES_MAX,
            });
        }
        let malformed = |reason: &'static str| InputError::Pem {
            field: field.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(pem).map_err(|_| malformed("not UTF-8"))?;
        let mut lines = text.trim_ascii().lines().map(str::trim_ascii);
        let mut blocks: Vec<(&str, Vec<u8>)> = Vec::new();
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            let label = line
                .strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
                .ok_or(malformed("text outside a BEGIN/END block"))?;
            let mut body = String::new();
            loop {
                let line = lines.next().ok_or(malformed("block has no END line"))?;
                if let Some(rest) = line.strip_prefix("-----END ") {
                    if rest.strip_suffix("-----") != Some(label) {
                        return Err(malformed("END label differs from BEGIN label"));
                    }
                    break;
                }
                if line.contains(':') {
                    return Err(malformed("PEM headers are not accepted"));
                }
                body.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
            }
            if blocks.len() == PEM_CERTIFICATES_MAX {
                return Err(InputError::TooMany {
                    field: field.to_owned(),
                    count: blocks.len() + 1,
                    max: PEM_CERTIFICATES_MAX,
                });
            }
            let der = super::types::decode_base64(&body, KEY_DER_BYTES_MAX, field)?;
            check_len(der.len(), KEY_DER_BYTES_MAX, field)?;
            blocks.push((label, der));
        }
        if blocks.is_empty() {
            return Err(malformed("no PEM block"));
        }
        if blocks.len() == 1 && blocks[0].0 == PUBLIC_KEY_LABEL {
            let (_, der) = blocks.swap_remove(0);
            return Ok(KeyMaterial::PublicKey(der));
        }
        if blocks.iter().all(|(label, _)| *label == CERTIFICATE_LABEL) {
            let chain = blocks.into_iter().map(|(_, der)| der).collect();
            return Ok(KeyMaterial::Certificates(chain));
        }
        Err(malformed(
            "want one PUBLIC KEY block or CERTIFICATE blocks only",
        ))
    }
}

/// Go's `pem.EncodeToMemory` of a block without headers.
fn encode_block(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // Base64 text is ASCII, so every 64th byte is a character boundary.
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at_checked(64).unwrap_or((rest, ""));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// The length of [`encode_block`]'s output for a certificate of `der_len` bytes; used for the
/// compile-time bound check in the parent module.
pub(super) const fn certificate_pem_len(der_len: usize) -> usize {
    let body = der_len.div_ceil(3) * 4;
    let lines = body.div_ceil(64);
    let label = CERTIFICATE_LABEL.len();
    // "-----BEGIN " + label + "-----\n" and "-----END " + label + "-----\n".
    (11 + label + 6) + body + lines + (9 + label + 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reencodes_like_go() {
        let der: Vec<u8> = (0..=99).collect();
        let key = KeyMaterial::from_certificate_der(&der).unwrap();
        let pem = key.to_pem();
        let lines: Vec<&str> = pem.split_inclusive('\n').collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----\n");
        // 100 bytes are 136 base64 characters: lines of 64, 64 and 8, each with its newline.
        assert_eq!(lines[1].len(), 65);
        assert_eq!(lines[2].len(), 65);
        assert_eq!(lines[3].len(), 9);
        assert_eq!(lines[4], "-----END CERTIFICATE-----\n");
        assert_eq!(lines.len(), 5);
        assert_eq!(pem.len(), certificate_pem_len(der.len()));
        // Our own output parses back to the same value.
        assert_eq!(KeyMaterial::from_pem(pem.as_bytes()).unwrap(), key);
    }

    #[test]
    fn accepts_other_line_widths_and_crlf_then_canonicalises() {
        let der: Vec<u8> = (0..200u8).collect();
        let body = BASE64.encode(&der);
        let mut sloppy = String::from("\n  -----BEGIN PUBLIC KEY-----\r\n");
        for chunk in body.as_bytes().chunks(76) {
            sloppy.push_str(std::str::from_utf8(chunk).unwrap());
            sloppy.push_str("\r\n");
        }
        sloppy.push_str("-----END PUBLIC KEY-----");
        let key = KeyMaterial::from_pem(sloppy.as_bytes()).unwrap();
        assert_eq!(key, KeyMaterial::PublicKey(der.clone()));
        assert!(key.to_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(key.to_pem().ends_with("\n-----END PUBLIC KEY-----\n"));
    }

    #[test]
    fn chains_keep_order() {
        let a = encode_block(CERTIFICATE_LABEL, b"leaf");
        let b = encode_block(CERTIFICATE_LABEL, b"intermediate");
        let key = KeyMaterial::from_pem(format!("{a}\n{b}").as_bytes()).unwrap();
        assert_eq!(
            key,
            KeyMaterial::Certificates(vec![b"leaf".to_vec(), b"intermediate".to_vec()])
        );
        assert_eq!(key.to_pem(), format!("{a}{b}"));
        assert_eq!(key.leaf_der(), b"leaf");
    }

    #[test]
    fn refuses_what_rekor_would_rewrite_or_reject() {
        let cert = encode_block(CERTIFICATE_LABEL, b"x");
        let key = encode_block(PUBLIC_KEY_LABEL, b"x");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            (format!("junk\n{cert}"), "leading text"),
            (format!("{cert}junk"), "trailing text"),
            (format!("{key}{key}"), "two keys"),
            (format!("{key}{cert}"), "key then certificate"),
            (encode_block("EC PUBLIC KEY", b"x"), "other label"),
            (encode_block("CERTIFICATE", b""), "empty block"),
            (
                "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\neA==\n-----END CERTIFICATE-----\n"
                    .to_owned(),
                "headers",
            ),
            (
                "-----BEGIN CERTIFICATE-----\neA=\n-----END CERTIFICATE-----\n".to_owned(),
                "bad padding",
            ),
            (
                "-----BEGIN CERTIFICATE-----\neB==\n-----END CERTIFICATE-----\n".to_owned(),
                "non-canonical trailing bits",
            ),
            (
                "-----BEGIN CERTIFICATE-----\neA==\n-----END PUBLIC KEY-----\n".to_owned(),
                "mismatched END",
            ),
            (
                "-----BEGIN CERTIFICATE-----\neA==\n".to_owned(),
                "no END",
            ),
            (cert.repeat(PEM_CERTIFICATES_MAX + 1), "chain too long"),
        ];
        for (pem, why) in cases {
            assert!(
                KeyMaterial::from_pem(pem.as_bytes()).is_err(),
                "accepted: {why}"
            );
        }
        assert!(KeyMaterial::from_pem(cert.repeat(PEM_CERTIFICATES_MAX).as_bytes()).is_ok());
        let huge = vec![b'A'; PEM_BYTES_MAX + 1];
        assert!(matches!(
            KeyMaterial::from_pem(&huge),
            Err(InputError::TooLong { .. })
        ));
    }
}
