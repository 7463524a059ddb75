//! Retired signing material (`[[ca.retired]]`, `[[ca.tsa.retired]]`): CAs, SCT keys and
//! timestamp authorities that signed in a past window, public parts only. `cairn-node ca
//! promote` writes them when it moves `[ca.next]` into `[ca]`; the trusted root keeps listing
//! them with their windows so that bundles they signed still verify
//! (docs/decisions/0012-ca-key-rotation.md).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CaFile, ConfigError, UTC_FORMAT, parse_utc_ms};
use crate::keyless::Retired;

/// A `[[ca.retired]]` entry: a CA (root and intermediate certificates) and its SCT key's
/// public key, and the window in which they signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetiredCaFile {
    /// When it started signing: an RFC 3339 UTC time.
    pub from: String,
    /// When its successor took over: an RFC 3339 UTC time, after `from`. The trusted root
    /// lists the CA a leaf certificate's lifetime longer (certificates issued just before are
    /// used to sign until they expire), the SCT key until then.
    pub until: String,
    /// The root certificate (PEM).
    pub root_cert_file: PathBuf,
    /// The intermediate certificate (PEM), issued by the root.
    pub intermediate_cert_file: PathBuf,
    /// The SCT key's public key: a SubjectPublicKeyInfo, PEM (`PUBLIC KEY`) or DER, ECDSA
    /// P-256. Never the private key: a retired key signs nothing more.
    pub ct_public_key_file: PathBuf,
}

/// A `[[ca.tsa.retired]]` entry: a timestamp authority's certificates and the window in
/// which it signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetiredTsaFile {
    /// When it started signing: an RFC 3339 UTC time.
    pub from: String,
    /// When its successor took over: an RFC 3339 UTC time, after `from`.
    pub until: String,
    /// Its root certificate (PEM).
    pub root_cert_file: PathBuf,
    /// Its signing certificate (PEM), issued by that root.
    pub cert_file: PathBuf,
}

/// Resolves the retired entries' paths against the config file's directory `base`.
pub(super) fn resolve(ca: &mut CaFile, base: &Path) {
    for retired in &mut ca.retired {
        retired.root_cert_file = base.join(&retired.root_cert_file);
        retired.intermediate_cert_file = base.join(&retired.intermediate_cert_file);
        retired.ct_public_key_file = base.join(&retired.ct_public_key_file);
    }
    if let Some(tsa) = &mut ca.tsa {
        for retired in &mut tsa.retired {
            retired.root_cert_file = base.join(&retired.root_cert_file);
            retired.cert_file = base.join(&retired.cert_file);
        }
    }
}

/// Checks the retired entries' windows: each a valid time range, oldest first, none
/// overlapping the next, and all before a configured `[ca.next]` (`[ca.tsa.next]`).
pub(super) fn check(ca: &CaFile) -> Result<(), ConfigError> {
    let windows: Vec<_> = ca
        .retired
        .iter()
        .map(|retired| (retired.from.as_str(), retired.until.as_str()))
        .collect();
    check_windows(
        "ca.retired",
        &windows,
        ca.next.as_ref().map(|next| next.from.as_str()),
    )?;
    if let Some(tsa) = &ca.tsa {
        let windows: Vec<_> = tsa
            .retired
            .iter()
            .map(|retired| (retired.from.as_str(), retired.until.as_str()))
            .collect();
        check_windows(
            "ca.tsa.retired",
            &windows,
            tsa.next.as_ref().map(|next| next.from.as_str()),
        )?;
    }
    Ok(())
}

fn check_windows(
    section: &str,
    windows: &[(&str, &str)],
    next_from: Option<&str>,
) -> Result<(), ConfigError> {
    let mut previous_until = None;
    for (position, (from, until)) in windows.iter().enumerate() {
        let setting = |field: &str| format!("{section}[{position}].{field}");
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            setting: setting(field),
            message,
        };
        let from_ms = parse_utc_ms(from).ok_or_else(|| invalid("from", UTC_FORMAT.into()))?;
        let until_ms = parse_utc_ms(until).ok_or_else(|| invalid("until", UTC_FORMAT.into()))?;
        if until_ms <= from_ms {
            return Err(invalid(
                "until",
                format!("{until} is not after `from` {from}"),
            ));
        }
        if previous_until.is_some_and(|previous| from_ms < previous) {
            return Err(invalid(
                "from",
                "starts before the previous entry's `until`: list retired material oldest \
                 first, windows not overlapping"
                    .into(),
            ));
        }
        previous_until = Some(until_ms);
    }
    if let (Some(until_ms), Some(next_from)) = (previous_until, next_from)
        && parse_utc_ms(next_from).is_some_and(|from_ms| from_ms < until_ms)
    {
        return Err(ConfigError::Invalid {
            setting: format!("{section}[{}].until", windows.len() - 1),
            message: format!("after the next material's `from` {next_from}"),
        });
    }
    Ok(())
}

/// Loads the `[[ca.retired]]` entries: the certificates parse and chain, the SCT key is a
/// P-256 public key, and no file holds a private key.
pub(super) fn load_retired_cas(entries: &[RetiredCaFile]) -> Result<Vec<Retired>, ConfigError> {
    entries
        .iter()
        .enumerate()
        .map(|(position, entry)| {
            let section = format!("ca.retired[{position}]");
            let (from_ms, until_ms) = window(&section, &entry.from, &entry.until)?;
            let chain_der = load_chain(
                &section,
                ("root_cert_file", &entry.root_cert_file),
                ("intermediate_cert_file", &entry.intermediate_cert_file),
            )?;
            let setting = format!("{section}.ct_public_key_file");
            let bytes = read_public(&entry.ct_public_key_file, &setting)?;
            let spki = ct_public_key_spki(&bytes).map_err(|message| ConfigError::Invalid {
                setting,
                message: format!("{}: {message}", entry.ct_public_key_file.display()),
            })?;
            Ok(Retired {
                from_ms,
                until_ms,
                chain_der,
                ct_spki_der: Some(spki),
            })
        })
        .collect()
}

/// Loads the `[[ca.tsa.retired]]` entries, checked like [`load_retired_cas`].
pub(super) fn load_retired_tsas(entries: &[RetiredTsaFile]) -> Result<Vec<Retired>, ConfigError> {
    entries
        .iter()
        .enumerate()
        .map(|(position, entry)| {
            let section = format!("ca.tsa.retired[{position}]");
            let (from_ms, until_ms) = window(&section, &entry.from, &entry.until)?;
            let chain_der = load_chain(
                &section,
                ("root_cert_file", &entry.root_cert_file),
                ("cert_file", &entry.cert_file),
            )?;
            Ok(Retired {
                from_ms,
                until_ms,
                chain_der,
                ct_spki_der: None,
            })
        })
        .collect()
}

fn window(section: &str, from: &str, until: &str) -> Result<(u64, u64), ConfigError> {
    let parse = |text: &str, field: &str| {
        parse_utc_ms(text).ok_or_else(|| ConfigError::Invalid {
            setting: format!("{section}.{field}"),
            message: format!("{text:?}: {UTC_FORMAT}"),
        })
    };
    Ok((parse(from, "from")?, parse(until, "until")?))
}

/// A file of public material, refused if it holds a private key: retired keys sign nothing
/// more, so a node has no reason to hold them.
fn read_public(path: &Path, setting: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Invalid {
        setting: setting.into(),
        message: format!("{}: {error}", path.display()),
    })?;
    if bytes.windows(11).any(|window| window == b"PRIVATE KEY") {
        return Err(ConfigError::Invalid {
            setting: setting.into(),
            message: format!(
                "{} holds a private key: retired material is listed by its public parts only",
                path.display()
            ),
        });
    }
    Ok(bytes)
}

/// A root and the certificate it issued (intermediate, or TSA signing certificate), each one
/// PEM certificate, checked to chain; returned signer first, as the trusted root lists them.
fn load_chain(
    section: &str,
    (root_field, root_path): (&str, &Path),
    (signer_field, signer_path): (&str, &Path),
) -> Result<[Vec<u8>; 2], ConfigError> {
    let certificate = |field: &str, path: &Path| -> Result<Vec<u8>, ConfigError> {
        let setting = format!("{section}.{field}");
        let bytes = read_public(path, &setting)?;
        single_certificate(&bytes).map_err(|message| ConfigError::Invalid {
            setting,
            message: format!("{}: {message}", path.display()),
        })
    };
    let root_der = certificate(root_field, root_path)?;
    let signer_der = certificate(signer_field, signer_path)?;
    let parse = |der| x509_parser::parse_x509_certificate(der).map(|(_, parsed)| parsed);
    let (Ok(root), Ok(signer)) = (parse(&root_der), parse(&signer_der)) else {
        return Err(ConfigError::Invalid {
            setting: section.into(),
            message: "a certificate does not parse".into(),
        });
    };
    if signer.issuer() != root.subject()
        || signer.verify_signature(Some(root.public_key())).is_err()
    {
        return Err(ConfigError::Invalid {
            setting: format!("{section}.{signer_field}"),
            message: format!(
                "{} is not issued by {}",
                signer_path.display(),
                root_path.display()
            ),
        });
    }
    Ok([signer_der, root_der])
}

/// The one certificate of a PEM file, DER.
fn single_certificate(pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut certificates = CertificateDer::pem_slice_iter(pem);
    let first = certificates
        .next()
        .ok_or("no PEM certificate")?
        .map_err(|error| error.to_string())?;
    if certificates.next().is_some() {
        return Err("more than one certificate".into());
    }
    Ok(first.to_vec())
}

/// An SCT key's public key, PEM or DER SubjectPublicKeyInfo, as DER (its log id is the
/// SHA-256 of these bytes).
pub fn ct_public_key_spki(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
    let key = match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => p256::PublicKey::from_public_key_pem(text),
        _ => p256::PublicKey::from_public_key_der(bytes),
    }
    .map_err(|error| format!("not an ECDSA P-256 public key (SubjectPublicKeyInfo): {error}"))?;
    key.to_public_key_der()
        .map(p256::pkcs8::Document::into_vec)
        .map_err(|error| error.to_string())
}

/// An SCT key's public key as PEM, from its DER SubjectPublicKeyInfo: what `ca promote` writes
/// for a retired key.
pub fn ct_public_key_pem(spki_der: &[u8]) -> Result<String, String> {
    use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _, LineEnding};
    p256::PublicKey::from_public_key_der(spki_der)
        .and_then(|key| key.to_public_key_pem(LineEnding::LF))
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, from: &str, until: &str) -> RetiredCaFile {
        RetiredCaFile {
            from: from.into(),
            until: until.into(),
            root_cert_file: dir.join("root.crt"),
            intermediate_cert_file: dir.join("intermediate.crt"),
            ct_public_key_file: dir.join("ct.pub"),
        }
    }

    #[test]
    fn retired_windows_are_ordered_and_before_the_next() {
        let ok = [
            ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
            ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        ];
        assert!(check_windows("ca.retired", &ok, Some("2026-03-01T00:00:00Z")).is_ok());
        assert!(check_windows("ca.retired", &ok, None).is_ok());
        let error = check_windows("ca.retired", &ok, Some("2026-02-15T00:00:00Z")).unwrap_err();
        assert!(error.to_string().contains("ca.retired[1].until"), "{error}");
        let overlapping = [ok[0], ("2026-01-15T00:00:00Z", "2026-03-01T00:00:00Z")];
        let error = check_windows("ca.retired", &overlapping, None).unwrap_err();
        assert!(error.to_string().contains("ca.retired[1].from"), "{error}");
        let empty = [("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")];
        let error = check_windows("ca.tsa.retired", &empty, None).unwrap_err();
        assert!(
            error.to_string().contains("ca.tsa.retired[0].until"),
            "{error}"
        );
        let bad = [("2026-01-01", "2026-02-01T00:00:00Z")];
        let error = check_windows("ca.retired", &bad, None).unwrap_err();
        assert!(error.to_string().contains("ca.retired[0].from"), "{error}");
    }

    #[test]
    fn retired_entries_round_trip_through_toml() {
        let ca = CaFile {
            root_cert_file: "../ca-3/root.crt".into(),
            intermediate_cert_file: "../ca-3/intermediate.crt".into(),
            intermediate_key_file: "../ca-3/intermediate.key".into(),
            ct_key_file: "../keys/ct-3.key".into(),
            log: "certificates".into(),
            requests_per_identity_per_minute: 60,
            issuers: Vec::new(),
            tsa: Some(super::super::TsaFile {
                root_cert_file: "../tsa-2/root.crt".into(),
                cert_file: "../tsa-2/signer.crt".into(),
                key_file: "../tsa-2/signer.key".into(),
                next: None,
                retired: vec![RetiredTsaFile {
                    from: "2026-01-01T00:00:00Z".into(),
                    until: "2026-02-01T00:00:00Z".into(),
                    root_cert_file: "../tsa/root.crt".into(),
                    cert_file: "../tsa/signer.crt".into(),
                }],
            }),
            next: None,
            retired: vec![
                entry(
                    Path::new("../ca"),
                    "2026-01-01T00:00:00Z",
                    "2026-02-01T00:00:00Z",
                ),
                entry(
                    Path::new("../ca-2"),
                    "2026-02-01T00:00:00Z",
                    "2026-03-01T00:00:00Z",
                ),
            ],
        };
        let text = toml::to_string_pretty(&ca).unwrap();
        assert!(
            text.contains("[[retired]]") && text.contains("[[tsa.retired]]"),
            "{text}"
        );
        assert_eq!(toml::from_str::<CaFile>(&text).unwrap(), ca);
        assert!(check(&ca).is_ok());
        // No private key has a place in an entry.
        let with_key = text.replacen(
            "[[retired]]\n",
            "[[retired]]\nintermediate_key_file = \"../ca/intermediate.key\"\n",
            1,
        );
        let error = toml::from_str::<CaFile>(&with_key).unwrap_err().to_string();
        assert!(error.contains("intermediate_key_file"), "{error}");
    }

    #[test]
    fn retired_material_loads_by_its_public_parts_only() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let made = ca::cert::new_ca("Cairn", 1_796_688_000).unwrap();
        let other = ca::cert::new_ca("Cairn", 1_796_688_000).unwrap();
        let ct_key = ca::ct::CtKey::from_scalar(&[7; 32]).unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write("root.crt", &made.root_pem);
        write("intermediate.crt", &made.intermediate_pem);
        write("ct.pub", &ct_public_key_pem(ct_key.spki_der()).unwrap());
        let good = entry(dir, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");
        let loaded = load_retired_cas(std::slice::from_ref(&good)).unwrap();
        assert_eq!(loaded[0].ct_spki_der.as_deref(), Some(ct_key.spki_der()));
        assert_eq!(loaded[0].chain_der[1], made_der(&made.root_pem));
        assert_eq!(loaded[0].until_ms - loaded[0].from_ms, 31 * 86_400_000);
        // DER works as well as PEM.
        std::fs::write(dir.join("ct.der"), ct_key.spki_der()).unwrap();
        let der = RetiredCaFile {
            ct_public_key_file: dir.join("ct.der"),
            ..good.clone()
        };
        assert!(load_retired_cas(&[der]).is_ok());

        // A private key, in place of the public one or beside a certificate, is refused.
        write("ct.key", &ct_key.to_pkcs8_pem().unwrap());
        let private = RetiredCaFile {
            ct_public_key_file: dir.join("ct.key"),
            ..good.clone()
        };
        let error = load_retired_cas(&[private]).unwrap_err().to_string();
        assert!(error.contains("private key"), "{error}");
        write(
            "with-key.crt",
            &format!("{}{}", made.intermediate_pem, made.intermediate_key_pem),
        );
        let private = RetiredCaFile {
            intermediate_cert_file: dir.join("with-key.crt"),
            ..good.clone()
        };
        let error = load_retired_cas(&[private]).unwrap_err().to_string();
        assert!(
            error.contains("ca.retired[0].intermediate_cert_file") && error.contains("private"),
            "{error}"
        );
        // An intermediate another root issued does not chain.
        write("other.crt", &other.intermediate_pem);
        let unchained = RetiredCaFile {
            intermediate_cert_file: dir.join("other.crt"),
            ..good
        };
        let error = load_retired_cas(&[unchained]).unwrap_err().to_string();
        assert!(error.contains("not issued by"), "{error}");
    }

    fn made_der(pem: &str) -> Vec<u8> {
        single_certificate(pem.as_bytes()).unwrap()
    }
}
