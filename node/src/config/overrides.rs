//! Overrides of a configuration file's settings by flags and environment variables, declared
//! once in [`OVERRIDABLE`]: each entry names a setting by its path in the file, and its flag
//! and variable follow from that path (`sequencer.batch_age_ms` is `--batch-age-ms` and
//! `CAIRN_BATCH_AGE_MS`; a setting of the `[ca]` section keeps its `ca_` prefix). The value is
//! put into the file's TOML at that path and the file is read again, so a flag is checked
//! exactly as the file's own line would be.

use super::{ConfigError, NodeFile};

/// One setting that flags and environment variables may override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overridable {
    /// The setting's path in the file: `listen`, `sequencer.batch_age_ms`.
    pub path: &'static str,
    /// What the setting does, for `--help`.
    pub help: &'static str,
}

impl Overridable {
    /// The setting's name without its section (except `ca_`): `batch_age_ms`.
    pub fn name(&self) -> String {
        match self.path.split_once('.') {
            Some(("ca", leaf)) => format!("ca_{leaf}"),
            Some((_, leaf)) => leaf.to_owned(),
            None => self.path.to_owned(),
        }
    }

    /// The flag: `batch-age-ms` (for `--batch-age-ms`).
    pub fn flag(&self) -> String {
        self.name().replace('_', "-")
    }

    /// The environment variable: `CAIRN_BATCH_AGE_MS`.
    pub fn env(&self) -> String {
        format!("CAIRN_{}", self.name().to_ascii_uppercase())
    }
}

macro_rules! overridable {
    ($($path:literal: $help:literal,)*) => {
        /// Every setting a flag or environment variable may override. The logs are not here:
        /// they must be identical on every node, so they are set in the file only.
        pub const OVERRIDABLE: &[Overridable] = &[$(Overridable { path: $path, help: $help }),*];
    };
}

overridable! {
    "listen": "The address the public HTTP API listens on.",
    "api_url": "The URL clients and other nodes use for the public API.",
    "cluster_listen": "The address the mutual-TLS cluster listener (Raft traffic) listens on.",
    "cluster_url": "The https URL other nodes use for Raft traffic.",
    "cluster_ca_file": "The cluster CA certificate (PEM).",
    "cluster_cert_file": "This node's cluster certificate (PEM).",
    "cluster_key_file": "This node's cluster certificate key (PEM).",
    "data_dir": "Where the node keeps its databases.",
    "admin_token_file": "A file holding the admin API's bearer token.",
    "sequencer.batch_leaves_max": "Most leaves in one batch (one Raft entry).",
    "sequencer.batch_bytes_max": "Most leaf bytes in one batch.",
    "sequencer.batch_age_ms": "Longest a submission waits for its batch to fill, in milliseconds.",
    "sequencer.pool_leaves_max":
        "Most submissions waiting to be batched; past it, submissions get 429.",
    "sequencer.proposals_in_flight_max": "Most batches proposed to Raft and not yet answered.",
    "sequencer.propose_timeout_ms":
        "Longest a proposed batch waits for its outcome before its submissions are answered \
         \"outcome unknown\", in milliseconds.",
    "raft.heartbeat_ms": "Raft leader heartbeat interval, in milliseconds.",
    "raft.election_timeout_min_ms":
        "Shortest silence before a follower stands for election, in milliseconds.",
    "raft.election_timeout_max_ms":
        "Longest silence before a follower stands for election, in milliseconds.",
    "raft.snapshot_every_entries": "Take a snapshot every this many Raft entries.",
    "raft.snapshot_keep_entries":
        "Raft entries kept after a snapshot (for followers that are slightly behind).",
    "http.header_read_timeout_ms":
        "Longest a client may take to send a request's head (and a keep-alive connection may \
         stay idle), in milliseconds.",
    "http.body_read_timeout_ms":
        "Longest a request body may take to arrive once its head is read, in milliseconds.",
    "http.connections_max":
        "Most connections the public listener keeps open; past it, new ones get a 503.",
    "http.writes_per_minute":
        "Appends per client address per minute on the public listener; past it, 429. 0 for no \
         limit.",
    "http.writes_burst": "Most appends a client address may send at once.",
    "http.certificates_per_minute":
        "Certificate requests per client address per minute; past it, 429. 0 for no limit.",
    "http.certificates_burst": "Most certificate requests a client address may send at once.",
    "ca.requests_per_identity_per_minute":
        "Most certificate requests per identity per minute (the `[ca]` section's setting); 0 \
         for no limit.",
}

impl NodeFile {
    /// This file with `overrides` (a setting and its value as given) applied, checked as the
    /// file itself is. A setting of a section the file does not have (`[ca]`) is refused.
    pub fn with_overrides(
        &self,
        overrides: &[(Overridable, String)],
    ) -> Result<NodeFile, ConfigError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let invalid = |setting: &str, message: String| ConfigError::Invalid {
            setting: setting.to_owned(),
            message,
        };
        let mut table =
            toml::Table::try_from(self).map_err(|error| invalid("config", error.to_string()))?;
        for (setting, value) in overrides {
            let (section, leaf) = match setting.path.split_once('.') {
                Some((section, leaf)) => (Some(section), leaf),
                None => (None, setting.path),
            };
            let target = match section {
                None => &mut table,
                Some(section) => table
                    .get_mut(section)
                    .and_then(toml::Value::as_table_mut)
                    .ok_or_else(|| {
                        invalid(
                            setting.path,
                            format!(
                                "--{} (or {}) needs a [{section}] section in the file",
                                setting.flag(),
                                setting.env()
                            ),
                        )
                    })?,
            };
            // The value takes the type the setting has in the file: a number stays a number.
            let typed = match target.get(leaf) {
                Some(toml::Value::Integer(_)) => value
                    .trim()
                    .parse()
                    .map(toml::Value::Integer)
                    .map_err(|_| {
                        invalid(
                            setting.path,
                            format!(
                                "--{} (or {}): {value:?} is not a whole number",
                                setting.flag(),
                                setting.env()
                            ),
                        )
                    })?,
                _ => toml::Value::String(value.clone()),
            };
            target.insert(leaf.to_owned(), typed);
        }
        let file: NodeFile =
            toml::Value::Table(table)
                .try_into()
                .map_err(|error: toml::de::Error| ConfigError::Parse {
                    path: "flags and environment variables".into(),
                    message: error.to_string(),
                })?;
        file.check()?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(path: &str) -> Overridable {
        *OVERRIDABLE
            .iter()
            .find(|setting| setting.path == path)
            .unwrap()
    }

    #[test]
    fn names_follow_from_paths() {
        let batch = setting("sequencer.batch_age_ms");
        assert_eq!(batch.flag(), "batch-age-ms");
        assert_eq!(batch.env(), "CAIRN_BATCH_AGE_MS");
        let ca = setting("ca.requests_per_identity_per_minute");
        assert_eq!(ca.flag(), "ca-requests-per-identity-per-minute");
        assert_eq!(ca.env(), "CAIRN_CA_REQUESTS_PER_IDENTITY_PER_MINUTE");
        assert_eq!(setting("listen").env(), "CAIRN_LISTEN");
        // No two settings share a flag.
        let mut flags: Vec<String> = OVERRIDABLE.iter().map(Overridable::flag).collect();
        flags.sort();
        flags.dedup();
        assert_eq!(flags.len(), OVERRIDABLE.len());
    }

    #[test]
    fn overrides_are_typed_and_checked_like_the_file() {
        let file = super::super::tests::sample(std::path::Path::new("/keys"));
        let changed = file
            .with_overrides(&[
                (setting("sequencer.batch_age_ms"), "7".into()),
                (setting("data_dir"), "elsewhere".into()),
                (setting("listen"), "127.0.0.1:9".into()),
            ])
            .unwrap();
        assert_eq!(changed.sequencer.batch_age_ms, 7);
        assert_eq!(changed.data_dir, std::path::PathBuf::from("elsewhere"));
        assert_eq!(changed.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(changed.logs, file.logs);
        let error = file
            .with_overrides(&[(setting("sequencer.batch_age_ms"), "soon".into())])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--batch-age-ms") && error.contains("whole number"),
            "{error}"
        );
        let error = file
            .with_overrides(&[(setting("listen"), "nowhere".into())])
            .unwrap_err()
            .to_string();
        assert!(error.contains("flags and environment"), "{error}");
        let error = file
            .with_overrides(&[(setting("http.connections_max"), "0".into())])
            .unwrap_err()
            .to_string();
        assert!(error.contains("http"), "{error}");
        let error = file
            .with_overrides(&[(setting("ca.requests_per_identity_per_minute"), "5".into())])
            .unwrap_err()
            .to_string();
        assert!(error.contains("[ca] section"), "{error}");
    }
}
