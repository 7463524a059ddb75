//! Validation of a configuration file: [`NodeFile::check`], whether its settings can work
//! together. Run on load, again after overrides are applied (`overrides`), and before a
//! successor log is added to a file (`provision`), so every way a file changes passes the same
//! checks.

use super::{ConfigError, NodeFile, UTC_FORMAT, parse_utc_ms, retired};

impl NodeFile {
    /// Checks that the settings can work together (also after overrides are applied).
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |setting: String, message: &str| ConfigError::Invalid {
            setting,
            message: message.into(),
        };
        if !(self.api_url.starts_with("http://") || self.api_url.starts_with("https://")) {
            return Err(invalid(
                "api_url".into(),
                "must be an http:// or https:// URL",
            ));
        }
        // Raft traffic is authenticated by mutual TLS only; a plain-http cluster URL would
        // fail every call, so refuse it at startup instead.
        if !self.cluster_url.starts_with("https://") {
            return Err(invalid("cluster_url".into(), "must be an https:// URL"));
        }
        if self.cluster_listen == self.listen {
            return Err(invalid(
                "cluster_listen".into(),
                "must differ from listen: Raft is served on its own mutual-TLS listener",
            ));
        }
        if self.logs.is_empty() {
            return Err(invalid("logs".into(), "at least one log is required"));
        }
        for (position, log) in self.logs.iter().enumerate() {
            let valid_name = !log.name.is_empty()
                && log.name.len() <= 64
                && log
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_name {
                return Err(invalid(
                    format!("logs[{position}].name"),
                    "use 1 to 64 of a-z, 0-9 and -",
                ));
            }
            if tlog::note::check_key_name(&log.origin).is_err() {
                return Err(invalid(
                    format!("logs[{position}].origin"),
                    "must be non-empty, with no spaces or '+'",
                ));
            }
            if self.logs[..position]
                .iter()
                .any(|other| other.name == log.name || other.origin == log.origin)
            {
                return Err(invalid(
                    format!("logs[{position}]"),
                    "two logs have this name or origin",
                ));
            }
            if let Some(predecessor) = &log.succeeds {
                let known = self.logs.iter().any(|other| &other.name == predecessor);
                let taken = self.logs[..position]
                    .iter()
                    .any(|other| other.succeeds.as_ref() == Some(predecessor));
                if !known || predecessor == &log.name || taken {
                    return Err(invalid(
                        format!("logs[{position}].succeeds"),
                        "must name another configured log that no other log succeeds",
                    ));
                }
            }
        }
        if let Some(ca) = &self.ca {
            if !self.logs.iter().any(|log| log.name == ca.log) {
                return Err(invalid("ca.log".into(), "must name one of the logs"));
            }
            if let Some(next) = &ca.next
                && parse_utc_ms(&next.from).is_none()
            {
                return Err(invalid("ca.next.from".into(), UTC_FORMAT));
            }
            if let Some(next) = ca.tsa.as_ref().and_then(|tsa| tsa.next.as_ref())
                && parse_utc_ms(&next.from).is_none()
            {
                return Err(invalid("ca.tsa.next.from".into(), UTC_FORMAT));
            }
            retired::check(ca)?;
            for (position, issuer) in ca.issuers.iter().enumerate() {
                let scheme_ok =
                    issuer.url.starts_with("https://") || issuer.url.starts_with("http://");
                if !scheme_ok || issuer.client_id.is_empty() {
                    return Err(invalid(
                        format!("ca.issuers[{position}]"),
                        "want an http(s) url and a non-empty client_id",
                    ));
                }
            }
        }
        if self.http.header_read_timeout_ms == 0
            || self.http.body_read_timeout_ms == 0
            || self.http.connections_max == 0
        {
            return Err(invalid(
                "http".into(),
                "header_read_timeout_ms, body_read_timeout_ms and connections_max must be above 0",
            ));
        }
        self.client_limits()?;
        if self.raft.election_timeout_min_ms <= self.raft.heartbeat_ms
            || self.raft.election_timeout_max_ms <= self.raft.election_timeout_min_ms
        {
            return Err(invalid(
                "raft".into(),
                "want heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms",
            ));
        }
        Ok(())
    }
}
