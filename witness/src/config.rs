//! Which logs a witness (or gossip) checks: the `log <vkey> [<url>]` lines of a C2SP
//! tlog-policy file. The key name of each `log` line is the log's origin; the URL, when given,
//! is the log's tlog-tiles prefix (for Cairn, `http://host:port/logs/<name>`), which the poller
//! and gossip read. `witness`, `group` and `quorum` lines are allowed and ignored here; a file
//! with only `log` lines needs no `quorum` line.

use std::collections::BTreeMap;

use tlog::keys::{Verifier, Verifiers};
use tlog::policy::{Policy, PolicyError};

/// Why the log list is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The policy file does not parse.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    /// The policy lists no log.
    #[error("the policy lists no log to witness")]
    NoLogs,
    /// A log key cannot sign checkpoints for an origin (a key in the wrong place).
    #[error("log key {0}: {1}")]
    Key(String, tlog::keys::KeyError),
    /// Two `log` lines for one origin give different URLs.
    #[error("origin {0:?} has two different URLs")]
    ConflictingUrls(String),
}

/// One witnessed log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Its origin (the key name of its `log` lines).
    pub origin: String,
    /// Its checkpoint keys (several while a key rotates).
    pub verifiers: Verifiers,
    /// Its tlog-tiles prefix, if the policy gives one.
    pub url: Option<String>,
}

/// The witnessed logs, by origin.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    by_origin: BTreeMap<String, LogConfig>,
}

impl Logs {
    /// The logs of a tlog-policy file.
    pub fn from_policy_text(text: &str) -> Result<Logs, ConfigError> {
        let policy = match Policy::parse(text) {
            Ok(policy) => policy,
            // A witness's file need not say what quorum clients want.
            Err(PolicyError::MissingQuorum) => Policy::parse(&format!("{text}\nquorum none\n"))?,
            Err(error) => return Err(error.into()),
        };
        Logs::from_policy(&policy)
    }

    /// The logs of a parsed policy.
    pub fn from_policy(policy: &Policy) -> Result<Logs, ConfigError> {
        let mut by_origin: BTreeMap<String, LogConfig> = BTreeMap::new();
        for log in policy.logs() {
            let origin = log.verifier.name().to_owned();
            let entry = by_origin
                .entry(origin.clone())
                .or_insert_with(|| LogConfig {
                    origin: origin.clone(),
                    verifiers: Verifiers::new(),
                    url: None,
                });
            entry
                .verifiers
                .push(log.verifier.clone())
                .map_err(|e| ConfigError::Key(log.verifier.to_vkey(), e))?;
            if let Some(url) = &log.url {
                let url = url.trim_end_matches('/').to_owned();
                match &entry.url {
                    Some(existing) if *existing != url => {
                        return Err(ConfigError::ConflictingUrls(origin));
                    }
                    _ => entry.url = Some(url),
                }
            }
        }
        if by_origin.is_empty() {
            return Err(ConfigError::NoLogs);
        }
        Ok(Logs { by_origin })
    }

    /// The log with this origin.
    pub fn get(&self, origin: &str) -> Option<&LogConfig> {
        self.by_origin.get(origin)
    }

    /// Every log, by origin.
    pub fn iter(&self) -> impl Iterator<Item = &LogConfig> {
        self.by_origin.values()
    }

    /// A list of one log (for tests and in-process use).
    pub fn single(origin: &str, verifier: Verifier, url: Option<String>) -> Logs {
        let mut verifiers = Verifiers::new();
        // A single verifier cannot collide with another.
        let _ = verifiers.push(verifier);
        let mut by_origin = BTreeMap::new();
        by_origin.insert(
            origin.to_owned(),
            LogConfig {
                origin: origin.to_owned(),
                verifiers,
                url,
            },
        );
        Logs { by_origin }
    }
}
