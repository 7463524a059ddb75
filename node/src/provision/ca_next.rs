//! `cairn-node ca prepare`: the next CA (root and intermediate), SCT key and timestamp
//! authority of a cluster directory, added as `[ca.next]` and `[ca.tsa.next]` to every node
//! config (docs/decisions/0012-ca-key-rotation.md).

use std::path::{Path, PathBuf};

use super::{ProvisionError, node_configs, random_bytes, read_unresolved};
use crate::config::{
    CaNextFile, ConfigError, TsaNextFile, format_utc, parse_utc_ms, write_file, write_secret,
};

/// What [`prepare_ca_rotation`] wrote.
#[derive(Debug)]
pub struct PreparedCa {
    /// The time the next material takes over, as written in the configs.
    pub from: String,
    /// The directory of the next CA's root, intermediate and intermediate key.
    pub ca_dir: PathBuf,
    /// The next SCT key.
    pub ct_key_file: PathBuf,
    /// The directory of the next TSA's root, signing certificate and key, if the cluster runs
    /// a TSA.
    pub tsa_dir: Option<PathBuf>,
    /// The configs the sections were added to.
    pub configs: Vec<PathBuf>,
}

/// Prepares a rotation of the CA, its SCT key and its TSA in the cluster directory `dir` that
/// `init` made: a new root and intermediate in `DIR/ca-N/` (the root's key is dropped, as at
/// `init`: nothing else is ever signed with it), a new SCT key `DIR/keys/ct-N.key` and, if the
/// cluster runs a TSA, a new TSA in `DIR/tsa-N/`, where N is the first number from 2 not taken;
/// then `[ca.next]` and `[ca.tsa.next]` with `from` = `from` in every `DIR/node-*/config.toml`.
/// `from` must be later than `now_ms`: clients learn the new keys from the trusted root before
/// they are used. Refused if a config already has a `[ca.next]`.
pub fn prepare_ca_rotation(
    dir: &Path,
    from: &str,
    now_ms: u64,
) -> Result<PreparedCa, ProvisionError> {
    let invalid = |setting: &str, message: String| {
        ProvisionError::Config(ConfigError::Invalid {
            setting: setting.into(),
            message,
        })
    };
    let from_ms = parse_utc_ms(from).ok_or_else(|| {
        invalid(
            "--from",
            format!("{from:?}: want an RFC 3339 UTC time like 2026-12-08T00:00:00Z"),
        )
    })?;
    if from_ms <= now_ms {
        return Err(invalid(
            "--from",
            format!("{from} is not in the future: the new keys must be published before use"),
        ));
    }
    // Whole seconds (rounded down): the trusted root's windows are in seconds.
    let from = format_utc(from_ms).ok_or_else(|| invalid("--from", "out of range".into()))?;
    let configs = node_configs(dir)?;
    if configs.is_empty() {
        return Err(invalid(
            "--dir",
            format!("no node-*/config.toml in {}", dir.display()),
        ));
    }
    let mut files = Vec::new();
    for path in &configs {
        let file = read_unresolved(path)?;
        match &file.ca {
            None => return Err(invalid("ca", format!("{} has no [ca]", path.display()))),
            Some(ca) if ca.next.is_some() || ca.tsa.as_ref().is_some_and(|t| t.next.is_some()) => {
                return Err(invalid(
                    "ca.next",
                    format!(
                        "{} already has a [ca.next] or [ca.tsa.next]: one rotation is \
                         prepared at a time (once its `from` has passed, `cairn-node ca \
                         promote` makes it the current one)",
                        path.display()
                    ),
                ));
            }
            Some(_) => files.push((path, file)),
        }
    }
    let has_tsa = files
        .iter()
        .any(|(_, file)| file.ca.as_ref().is_some_and(|ca| ca.tsa.is_some()));
    let number = (2u32..)
        .find(|n| {
            !dir.join(format!("ca-{n}")).exists()
                && !dir.join("keys").join(format!("ct-{n}.key")).exists()
                && !dir.join(format!("tsa-{n}")).exists()
        })
        .ok_or_else(|| invalid("--dir", "no free number for the new material".into()))?;
    let now_seconds = now_ms / 1000;
    let (ca_name, ct_name, tsa_name) = (
        format!("ca-{number}"),
        format!("ct-{number}.key"),
        format!("tsa-{number}"),
    );
    let ca_dir = dir.join(&ca_name);
    let new = ca::cert::new_ca("Cairn", now_seconds)?;
    write_file(&ca_dir.join("root.crt"), new.root_pem.as_bytes())?;
    write_file(
        &ca_dir.join("intermediate.crt"),
        new.intermediate_pem.as_bytes(),
    )?;
    write_secret(
        &ca_dir.join("intermediate.key"),
        new.intermediate_key_pem.as_bytes(),
    )?;
    let ct_key_file = dir.join("keys").join(&ct_name);
    let key = ca::ct::CtKey::from_scalar(&random_bytes::<32>())?;
    write_secret(&ct_key_file, key.to_pkcs8_pem()?.as_bytes())?;
    let tsa_dir = if has_tsa {
        let tsa_dir = dir.join(&tsa_name);
        let new = ca::tsa::new_tsa("Cairn", now_seconds)?;
        write_file(&tsa_dir.join("root.crt"), new.root_pem.as_bytes())?;
        write_file(&tsa_dir.join("signer.crt"), new.signer_pem.as_bytes())?;
        write_secret(&tsa_dir.join("signer.key"), new.signer_key_pem.as_bytes())?;
        Some(tsa_dir)
    } else {
        None
    };
    // Relative to each node's directory, as `init` writes them.
    let up = |parts: &[&str]| {
        parts
            .iter()
            .fold(Path::new("..").to_path_buf(), |path, part| path.join(part))
    };
    let mut written = Vec::new();
    for (path, mut file) in files {
        let Some(ca) = &mut file.ca else { continue };
        ca.next = Some(CaNextFile {
            from: from.clone(),
            root_cert_file: up(&[&ca_name, "root.crt"]),
            intermediate_cert_file: up(&[&ca_name, "intermediate.crt"]),
            intermediate_key_file: up(&[&ca_name, "intermediate.key"]),
            ct_key_file: up(&["keys", &ct_name]),
        });
        if let Some(tsa) = &mut ca.tsa
            && tsa_dir.is_some()
        {
            tsa.next = Some(TsaNextFile {
                from: from.clone(),
                root_cert_file: up(&[&tsa_name, "root.crt"]),
                cert_file: up(&[&tsa_name, "signer.crt"]),
                key_file: up(&[&tsa_name, "signer.key"]),
            });
        }
        file.check()?;
        file.save(path)?;
        written.push(path.clone());
    }
    Ok(PreparedCa {
        from,
        ca_dir,
        ct_key_file,
        tsa_dir,
        configs: written,
    })
}
