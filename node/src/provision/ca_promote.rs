//! `cairn-node ca promote`: once a prepared rotation's `from` has passed, `[ca.next]` becomes
//! `[ca]` (and `[ca.tsa.next]` `[ca.tsa]`) in every node config, and the material they replace
//! is kept as `[[ca.retired]]` (`[[ca.tsa.retired]]`), public parts only, with the window it
//! signed in (docs/decisions/0012-ca-key-rotation.md).

use std::path::{Component, Path, PathBuf};

use super::{ProvisionError, node_configs, read_unresolved};
use crate::config::{
    CaFile, CaSettings, ConfigError, NodeFile, RetiredCaFile, RetiredTsaFile, ct_public_key_pem,
    format_utc, parse_utc_ms, write_file,
};

/// What [`promote_ca_rotation`] did.
#[derive(Debug, Default)]
pub struct PromotedCa {
    /// The configs rewritten.
    pub configs: Vec<PathBuf>,
    /// The public keys written for the retired SCT keys (`<key file>.pub`).
    pub public_keys: Vec<PathBuf>,
    /// The private keys of the retired material: no config names them any more, so they may
    /// be deleted.
    pub retired_private_keys: Vec<PathBuf>,
}

/// Promotes the rotation prepared in the cluster directory `dir`: in every
/// `DIR/node-*/config.toml` with a `[ca.next]` or `[ca.tsa.next]`, the next material replaces
/// the current one, which is appended to `[[ca.retired]]` (`[[ca.tsa.retired]]`) by its
/// certificates and the SCT key's public key (written beside the private key as `.pub`), with
/// its window: from when it took over (the last retired entry's `until`, or the root
/// certificate's notBefore for the first CA) until the next's `from`. Refused, with nothing
/// written, before every `from` has passed at `now_ms`: until then the current material still
/// signs, and the trusted root must list the next one. Configs with nothing to promote (already
/// promoted) are left as they are.
pub fn promote_ca_rotation(dir: &Path, now_ms: u64) -> Result<PromotedCa, ProvisionError> {
    let invalid = |setting: &str, message: String| {
        ProvisionError::Config(ConfigError::Invalid {
            setting: setting.into(),
            message,
        })
    };
    let configs = node_configs(dir)?;
    if configs.is_empty() {
        return Err(invalid(
            "--dir",
            format!("no node-*/config.toml in {}", dir.display()),
        ));
    }
    let now = format_utc(now_ms).unwrap_or_else(|| now_ms.to_string());
    let mut pending = Vec::new();
    for path in &configs {
        let file = read_unresolved(path)?;
        let Some(ca) = &file.ca else {
            return Err(invalid("ca", format!("{} has no [ca]", path.display())));
        };
        let froms = [
            ("ca.next", ca.next.as_ref().map(|next| &next.from)),
            (
                "ca.tsa.next",
                ca.tsa
                    .as_ref()
                    .and_then(|tsa| tsa.next.as_ref())
                    .map(|next| &next.from),
            ),
        ];
        if froms.iter().all(|(_, from)| from.is_none()) {
            continue;
        }
        for (section, from) in froms {
            let Some(from) = from else { continue };
            let from_ms = parse_utc_ms(from).ok_or_else(|| {
                invalid(
                    &format!("{section}.from"),
                    format!("{}: {from:?} is not an RFC 3339 UTC time", path.display()),
                )
            })?;
            if from_ms > now_ms {
                return Err(invalid(
                    &format!("{section}.from"),
                    format!(
                        "{}: [{section}] takes over at {from}, it is now {now}: promote after \
                         that (until then the current material signs, and the trusted root \
                         must list the next)",
                        path.display()
                    ),
                ));
            }
        }
        pending.push((path, file));
    }
    if pending.is_empty() {
        return Err(invalid(
            "ca.next",
            format!(
                "no config in {} has a [ca.next] or [ca.tsa.next] to promote (prepare one with \
                 `cairn-node ca prepare`)",
                dir.display()
            ),
        ));
    }
    let mut promoted = PromotedCa::default();
    for (path, mut file) in pending {
        let base = path.parent().unwrap_or(Path::new("."));
        promote(base, &mut file, &mut promoted)?;
        // Written beside the config and loaded from there (relative paths resolve alike), so
        // that a promotion that would not start the node is refused before it replaces
        // anything.
        let staged = path.with_extension("toml.promoted");
        file.save(&staged)?;
        let checked = NodeFile::load(&staged).and_then(|loaded| {
            loaded.ca.as_ref().map(CaSettings::load).transpose()?;
            Ok(())
        });
        if let Err(error) = checked {
            let _ = std::fs::remove_file(&staged);
            return Err(error.into());
        }
        std::fs::rename(&staged, path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        promoted.configs.push(path.clone());
    }
    Ok(promoted)
}

/// Moves the next material of one config (read unresolved, in directory `base`) into place.
fn promote(
    base: &Path,
    file: &mut NodeFile,
    promoted: &mut PromotedCa,
) -> Result<(), ProvisionError> {
    let Some(ca) = &mut file.ca else {
        return Ok(());
    };
    let note = |list: &mut Vec<PathBuf>, path: &Path| {
        let path = normalize(&base.join(path));
        if !list.contains(&path) {
            list.push(path);
        }
    };
    if let Some(next) = ca.next.take() {
        let from = match ca.retired.last() {
            Some(last) => last.until.clone(),
            None => not_before(&base.join(&ca.root_cert_file), "ca.root_cert_file")?,
        };
        let setting = "ca.ct_key_file";
        let key_path = base.join(&ca.ct_key_file);
        let key = ca::ct::CtKey::from_pkcs8_pem(&read(&key_path, setting)?)?;
        let public_key =
            ct_public_key_pem(key.spki_der()).map_err(|message| ConfigError::Invalid {
                setting: setting.into(),
                message,
            })?;
        let public_key_file = ca.ct_key_file.with_extension("pub");
        write_file(&base.join(&public_key_file), public_key.as_bytes())?;
        note(&mut promoted.public_keys, &public_key_file);
        note(
            &mut promoted.retired_private_keys,
            &ca.intermediate_key_file,
        );
        note(&mut promoted.retired_private_keys, &ca.ct_key_file);
        ca.retired.push(RetiredCaFile {
            from,
            until: next.from,
            root_cert_file: std::mem::replace(&mut ca.root_cert_file, next.root_cert_file),
            intermediate_cert_file: std::mem::replace(
                &mut ca.intermediate_cert_file,
                next.intermediate_cert_file,
            ),
            ct_public_key_file: public_key_file,
        });
        ca.intermediate_key_file = next.intermediate_key_file;
        ca.ct_key_file = next.ct_key_file;
    }
    if let Some(tsa) = &mut ca.tsa
        && let Some(next) = tsa.next.take()
    {
        let from = match tsa.retired.last() {
            Some(last) => last.until.clone(),
            None => not_before(&base.join(&tsa.root_cert_file), "ca.tsa.root_cert_file")?,
        };
        note(&mut promoted.retired_private_keys, &tsa.key_file);
        tsa.retired.push(RetiredTsaFile {
            from,
            until: next.from,
            root_cert_file: std::mem::replace(&mut tsa.root_cert_file, next.root_cert_file),
            cert_file: std::mem::replace(&mut tsa.cert_file, next.cert_file),
        });
        tsa.key_file = next.key_file;
    }
    Ok(())
}

fn read(path: &Path, setting: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Invalid {
        setting: setting.into(),
        message: format!("{}: {error}", path.display()),
    })
}

/// A PEM certificate's notBefore as RFC 3339 UTC: when the first material of a deployment
/// started signing (the trusted root starts its window there too).
fn not_before(path: &Path, setting: &str) -> Result<String, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let invalid = |message: String| ConfigError::Invalid {
        setting: setting.into(),
        message: format!("{}: {message}", path.display()),
    };
    let der = CertificateDer::from_pem_slice(read(path, setting)?.as_bytes())
        .map_err(|error| invalid(error.to_string()))?;
    let (_, certificate) =
        x509_parser::parse_x509_certificate(&der).map_err(|error| invalid(error.to_string()))?;
    let seconds = u64::try_from(certificate.validity().not_before.timestamp())
        .map_err(|_| invalid("notBefore is before 1970".into()))?;
    format_utc(seconds.saturating_mul(1000)).ok_or_else(|| invalid("notBefore out of range".into()))
}

/// `path` with `.` and `dir/..` dropped, for messages (`DIR/node-1/../ca/x` → `DIR/ca/x`).
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(normal.components().next_back(), Some(Component::Normal(_))) =>
            {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// What `init` keeps of a node's existing `[ca]` (`existing`) over the fresh one it made: the
/// material in use, the prepared next and the retired, with the TSA's. The rest (issuers,
/// bounds) is `init`'s.
pub(super) fn keep_signing_material(fresh: &mut CaFile, existing: CaFile) {
    fresh.root_cert_file = existing.root_cert_file;
    fresh.intermediate_cert_file = existing.intermediate_cert_file;
    fresh.intermediate_key_file = existing.intermediate_key_file;
    fresh.ct_key_file = existing.ct_key_file;
    fresh.next = existing.next;
    fresh.retired = existing.retired;
    if existing.tsa.is_some() {
        fresh.tsa = existing.tsa;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DEV_ORIGIN_DOMAIN, init, prepare_ca_rotation};
    use super::*;

    #[test]
    fn promotion_waits_for_from_retires_public_parts_and_survives_init() {
        let dir = tempfile::tempdir().unwrap();
        let urls = ["http://127.0.0.1:7001".to_owned()];
        let configs = init(dir.path(), &urls, &[], DEV_ORIGIN_DOMAIN, Vec::new()).unwrap();
        let now_ms = crate::env::Clock::now_unix_ms(&crate::env::SystemClock);
        let from = format_utc(now_ms + 60_000).unwrap();
        prepare_ca_rotation(dir.path(), &from, now_ms).unwrap();
        let prepared = std::fs::read(&configs[0]).unwrap();

        let error = promote_ca_rotation(dir.path(), now_ms)
            .unwrap_err()
            .to_string();
        assert!(error.contains("promote after"), "{error}");
        assert_eq!(std::fs::read(&configs[0]).unwrap(), prepared);

        let after = parse_utc_ms(&from).unwrap();
        let promoted = promote_ca_rotation(dir.path(), after).unwrap();
        assert_eq!(promoted.configs, configs);
        assert_eq!(promoted.public_keys, [dir.path().join("keys/ct.pub")]);
        assert!(
            promoted
                .retired_private_keys
                .contains(&dir.path().join("ca/intermediate.key"))
        );
        let check = |path: &Path| {
            let file = NodeFile::load(path).unwrap();
            let ca = file.ca.clone().unwrap();
            assert_eq!(ca.next, None);
            assert!(ca.intermediate_key_file.ends_with("ca-2/intermediate.key"));
            assert_eq!(ca.retired.len(), 1);
            assert_eq!(ca.retired[0].until, from);
            assert!(ca.retired[0].ct_public_key_file.ends_with("keys/ct.pub"));
            let tsa = ca.tsa.clone().unwrap();
            assert!(tsa.key_file.ends_with("tsa-2/signer.key"));
            assert_eq!(tsa.retired.len(), 1);
            let settings = CaSettings::load(&ca).unwrap();
            assert_eq!(settings.material.retired.len(), 1);
            assert_eq!(settings.material.all()[0].1, parse_utc_ms(&from));
        };
        check(&configs[0]);
        let error = promote_ca_rotation(dir.path(), after)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no config"), "{error}");

        // `init` over the directory keeps what was promoted, also with the retired private
        // keys deleted: the retired certificates are not replaced.
        let root = std::fs::read(dir.path().join("ca/root.crt")).unwrap();
        for key in &promoted.retired_private_keys {
            std::fs::remove_file(key).unwrap();
        }
        init(dir.path(), &urls, &[], DEV_ORIGIN_DOMAIN, Vec::new()).unwrap();
        check(&configs[0]);
        assert_eq!(std::fs::read(dir.path().join("ca/root.crt")).unwrap(), root);
        assert!(!dir.path().join("ca/intermediate.key").exists());
        assert!(!dir.path().join("keys/ct.key").exists());
    }
}
