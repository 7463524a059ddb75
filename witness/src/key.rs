//! The witness's Ed25519 key: made on first start, kept in a file only its owner can read
//! (mode 0600), in the C2SP signed-note private key format (`PRIVATE+KEY+<name>+<id>+<key>`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rand08::RngCore as _;
use tlog::keys::Cosigner;
use tlog::keys::Ed25519Signer;

/// Why the key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not hold a valid key, or the name is not a valid key name.
    #[error("{path}: {detail}")]
    Invalid {
        /// The key file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The file holds a key for another name than the one asked for.
    #[error("{path} holds the key of witness {found:?}, not {wanted:?}")]
    NameMismatch {
        /// The key file.
        path: String,
        /// The name in the file.
        found: String,
        /// The name asked for.
        wanted: String,
    },
}

/// Loads the witness key at `path`, or makes one named `name` (a schema-less URL, by
/// convention) if the file does not exist. With `name` `None` the file must exist.
pub fn load_or_create(path: &Path, name: Option<&str>) -> Result<Cosigner, KeyFileError> {
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: shown.clone(),
        source,
    };
    let invalid = |detail: String| KeyFileError::Invalid {
        path: shown.clone(),
        detail,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let signer =
                Ed25519Signer::from_private_key(text.trim()).map_err(|e| invalid(e.to_string()))?;
            let found = tlog::note::NoteSigner::name(&signer).to_owned();
            if let Some(wanted) = name
                && wanted != found
            {
                return Err(KeyFileError::NameMismatch {
                    path: shown.clone(),
                    found,
                    wanted: wanted.to_owned(),
                });
            }
            Cosigner::new(&found, signer.signing_key().clone()).map_err(|e| invalid(e.to_string()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let name = name.ok_or_else(|| {
                invalid("no key yet: give the witness a name to make one".to_owned())
            })?;
            let mut seed = [0u8; 32];
            rand08::rngs::OsRng.fill_bytes(&mut seed);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let signer =
                Ed25519Signer::new(name, key.clone()).map_err(|e| invalid(e.to_string()))?;
            // create_new: never overwrite a key that appeared meanwhile.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(format!("{}\n", signer.to_private_key()).as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            Cosigner::new(name, key).map_err(|e| invalid(e.to_string()))
        }
        Err(error) => Err(io(error)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn made_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.key");
        let made = load_or_create(&path, Some("witness.example/w1")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = load_or_create(&path, None).unwrap();
        assert_eq!(made.verifier(), loaded.verifier());
        assert!(matches!(
            load_or_create(&path, Some("other")),
            Err(KeyFileError::NameMismatch { .. })
        ));
    }
}
