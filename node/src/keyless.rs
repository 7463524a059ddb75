//! The keyless CA as a node runs it: the `ca` crate's parts loaded from the `[ca]` section of
//! the configuration. The HTTP side, and the order that makes every certificate logged before
//! it is returned, is `http::ca_api`.

use std::path::Path;
use std::sync::Arc;

use crate::config::{CaFile, ConfigError};
use crate::types::LogName;

/// Everything the CA routes need.
pub struct KeylessCa {
    /// The intermediate that signs leaves, and the chain.
    pub authority: ca::cert::Authority,
    /// The certificate log's SCT key.
    pub ct_key: ca::ct::CtKey,
    /// Token verification against the allow-listed issuers.
    pub verifier: ca::oidc::TokenVerifier,
    /// Requests per identity per minute.
    pub limiter: ca::rate::RateLimiter,
    /// The log certificates are written to.
    pub log: LogName,
}

impl std::fmt::Debug for KeylessCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessCa")
            .field("log", &self.log)
            .field("issuers", &self.verifier.issuers())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path, setting: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Invalid {
        setting: setting.into(),
        message: format!("{}: {error}", path.display()),
    })
}

impl KeylessCa {
    /// Loads the CA's keys and certificates; discovery documents and key sets are fetched
    /// through `fetch` when tokens arrive.
    pub fn load(file: &CaFile, fetch: Arc<dyn ca::oidc::Fetch>) -> Result<KeylessCa, ConfigError> {
        let invalid = |setting: &str, error: ca::CertError| ConfigError::Invalid {
            setting: setting.into(),
            message: error.to_string(),
        };
        let authority = ca::cert::Authority::load(
            &read(&file.root_cert_file, "ca.root_cert_file")?,
            &read(&file.intermediate_cert_file, "ca.intermediate_cert_file")?,
            &read(&file.intermediate_key_file, "ca.intermediate_key_file")?,
        )
        .map_err(|error| invalid("ca", error))?;
        let ct_key = ca::ct::CtKey::from_pkcs8_pem(&read(&file.ct_key_file, "ca.ct_key_file")?)
            .map_err(|error| invalid("ca.ct_key_file", error))?;
        Ok(KeylessCa {
            authority,
            ct_key,
            verifier: ca::oidc::TokenVerifier::new(file.issuers.clone(), fetch),
            limiter: ca::rate::RateLimiter::new(file.requests_per_identity_per_minute),
            log: LogName(file.log.clone()),
        })
    }
}
