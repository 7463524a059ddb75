//! A log's lifecycle: a log is open (takes appends), frozen (its final checkpoint is signed and
//! it takes no more appends, but it is served, proven and searched as before) or waiting (a
//! successor configured on every node that no rotation has opened yet).
//!
//! The configuration says which logs exist and which one may succeed which (`succeeds`); the
//! replicated [`Lifecycle`] says which rotations happened. It changes only through
//! `Command::Rotate`, applied by `state_machine::apply` on every replica alike, so every node
//! agrees on which log of a family takes appends. Pure data and rules, no IO
//! (docs/decisions/0010-log-lifecycle.md).

use serde::{Deserialize, Serialize};

use crate::state_machine::Logs;
use crate::types::LogName;

/// The most rotations a cluster records: a rotation a day for decades. Bounds the state's
/// size and every walk along a family.
pub const ROTATIONS_MAX: usize = 16_384;

/// How far the trusted root's validity windows of a frozen log and its successor overlap, on
/// either side of the rotation's time: leaders' clocks differ, and a Rekor v2 entry is dated
/// by the timestamp its client fetched before it submitted the entry.
pub const WINDOW_MARGIN_MS: u64 = 5 * 60 * 1000;

/// One rotation: `log` froze and `successor` opened, at the leader's `at_unix_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRecord {
    /// The log frozen.
    pub log: LogName,
    /// The log opened in its place.
    pub successor: LogName,
    /// When the rotation was proposed, by the leader's clock, in milliseconds since the epoch.
    pub at_unix_ms: u64,
    /// The frozen log's final size.
    pub final_size: u64,
    /// The frozen log's final checkpoint (a signed note): the last one it will ever sign.
    pub final_checkpoint: String,
}

/// The rotations a cluster went through, oldest first: replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Every rotation so far.
    pub rotations: Vec<RotationRecord>,
}

/// Where a log is in its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogState<'a> {
    /// It takes appends.
    Open,
    /// It was frozen by this rotation.
    Frozen(&'a RotationRecord),
    /// It succeeds this log once a rotation opens it; until then it takes no appends.
    Waiting(&'a LogName),
}

impl LogState<'_> {
    /// `open`, `frozen` or `waiting`, as the API reports it.
    pub fn name(&self) -> &'static str {
        match self {
            LogState::Open => "open",
            LogState::Frozen(_) => "frozen",
            LogState::Waiting(_) => "waiting",
        }
    }
}

/// Why a rotation cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// The two names are the same log.
    #[error("a log cannot succeed itself")]
    Itself,
    /// A log the rotation names is not configured on this node.
    #[error("log {0:?} is not configured on this node")]
    Unknown(LogName),
    /// The successor's configuration does not name the log as the one it succeeds.
    #[error(
        "log {successor} is not configured to succeed {log} (its `succeeds` is {configured:?}); \
         `cairn-node log prepare` writes that setting"
    )]
    NotItsSuccessor {
        /// The log to freeze.
        log: LogName,
        /// The successor named.
        successor: LogName,
        /// What the successor's configuration says it succeeds.
        configured: Option<LogName>,
    },
    /// The successor has the frozen log's origin or key: its checkpoints would be confused
    /// with the frozen log's.
    #[error("log {0} has the same origin or checkpoint key as the log it succeeds")]
    SameIdentity(LogName),
    /// The log is frozen already.
    #[error("log {log} is frozen already; its successor is {successor}")]
    Frozen {
        /// The log.
        log: LogName,
        /// Its successor.
        successor: LogName,
    },
    /// The log is a successor that no rotation has opened yet.
    #[error("log {0} is not open yet, so it cannot be frozen")]
    NotOpen(LogName),
    /// The successor was opened (or frozen) by an earlier rotation.
    #[error("log {0} was opened by an earlier rotation")]
    Used(LogName),
    /// The cluster has recorded as many rotations as it may.
    #[error("{ROTATIONS_MAX} rotations are recorded already")]
    TooMany,
}

impl RotationError {
    /// Whether the error comes from a node's configuration rather than from the replicated
    /// state: a replica that meets one while applying a committed rotation differs from the
    /// leader that proposed it, and must stop rather than diverge.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            RotationError::Unknown(_)
                | RotationError::NotItsSuccessor { .. }
                | RotationError::SameIdentity(_)
                | RotationError::Itself
        )
    }
}

impl Lifecycle {
    /// The rotation that froze `log`, if any.
    pub fn frozen(&self, log: &LogName) -> Option<&RotationRecord> {
        self.rotations.iter().find(|record| &record.log == log)
    }

    /// The rotation that opened `log`, if any.
    pub fn opened(&self, log: &LogName) -> Option<&RotationRecord> {
        self.rotations
            .iter()
            .find(|record| &record.successor == log)
    }

    /// Where `log` is in its lifecycle, given the configured `logs`.
    pub fn state<'a>(&'a self, logs: &'a Logs, log: &LogName) -> LogState<'a> {
        if let Some(record) = self.frozen(log) {
            return LogState::Frozen(record);
        }
        match logs.get(log).and_then(|config| config.succeeds.as_ref()) {
            Some(predecessor) if self.opened(log).is_none() => LogState::Waiting(predecessor),
            _ => LogState::Open,
        }
    }

    /// The log of `log`'s family that takes appends now: `log` itself, or the successor of
    /// its successor ... that is not frozen.
    pub fn active<'a>(&'a self, log: &'a LogName) -> &'a LogName {
        let mut current = log;
        // Each step follows a distinct rotation (a log is frozen at most once), so the walk
        // ends; the bound is a second guard.
        for _ in 0..=self.rotations.len() {
            match self.frozen(current) {
                Some(record) => current = &record.successor,
                None => return current,
            }
        }
        current
    }

    /// The family `log` heads, oldest first: `log` and each successor the rotations opened.
    pub fn family(&self, log: &LogName) -> Vec<LogName> {
        let mut family = vec![log.clone()];
        while family.len() <= self.rotations.len() {
            match family.last().and_then(|last| self.frozen(last)) {
                Some(record) => family.push(record.successor.clone()),
                None => break,
            }
        }
        family
    }

    /// The first log of the family `log` belongs to (following the rotations back).
    pub fn root<'a>(&'a self, log: &'a LogName) -> &'a LogName {
        let mut current = log;
        for _ in 0..=self.rotations.len() {
            match self.opened(current) {
                Some(record) => current = &record.log,
                None => return current,
            }
        }
        current
    }

    /// Checks that `log` can be frozen and `successor` opened, from the configuration and
    /// this state: the leader before it proposes, and every replica as it applies.
    pub fn check_rotation(
        &self,
        logs: &Logs,
        log: &LogName,
        successor: &LogName,
    ) -> Result<(), RotationError> {
        if log == successor {
            return Err(RotationError::Itself);
        }
        let frozen = logs
            .get(log)
            .ok_or_else(|| RotationError::Unknown(log.clone()))?;
        let next = logs
            .get(successor)
            .ok_or_else(|| RotationError::Unknown(successor.clone()))?;
        if next.succeeds.as_ref() != Some(log) {
            return Err(RotationError::NotItsSuccessor {
                log: log.clone(),
                successor: successor.clone(),
                configured: next.succeeds.clone(),
            });
        }
        if next.origin == frozen.origin
            || next.signing_key.verifying_key() == frozen.signing_key.verifying_key()
        {
            return Err(RotationError::SameIdentity(successor.clone()));
        }
        match self.state(logs, log) {
            LogState::Frozen(record) => {
                return Err(RotationError::Frozen {
                    log: log.clone(),
                    successor: record.successor.clone(),
                });
            }
            LogState::Waiting(_) => return Err(RotationError::NotOpen(log.clone())),
            LogState::Open => {}
        }
        if self.opened(successor).is_some() || self.frozen(successor).is_some() {
            return Err(RotationError::Used(successor.clone()));
        }
        if self.rotations.len() >= ROTATIONS_MAX {
            return Err(RotationError::TooMany);
        }
        Ok(())
    }

    /// The validity window of `log`'s checkpoint key for the trusted root, in milliseconds
    /// since the epoch: from its opening (`first_start` for a log no rotation opened) to its
    /// freezing, each widened by [`WINDOW_MARGIN_MS`].
    pub fn window(&self, log: &LogName, first_start: u64) -> (u64, Option<u64>) {
        let start = self.opened(log).map_or(first_start, |record| {
            record.at_unix_ms.saturating_sub(WINDOW_MARGIN_MS)
        });
        let end = self
            .frozen(log)
            .map(|record| record.at_unix_ms.saturating_add(WINDOW_MARGIN_MS));
        (start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::LogConfig;

    fn logs() -> Logs {
        let config = |name: &str, key: u8, succeeds: Option<&str>| LogConfig {
            name: LogName(name.into()),
            origin: format!("{name}.example.com"),
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[key; 32]),
            succeeds: succeeds.map(|name| LogName(name.into())),
        };
        Logs::new([
            config("a", 1, None),
            config("a-2", 2, Some("a")),
            config("a-3", 3, Some("a-2")),
            config("b", 4, None),
            config("b-2", 4, Some("b")),
        ])
    }

    fn rotate(lifecycle: &mut Lifecycle, log: &str, successor: &str, at: u64) {
        lifecycle.rotations.push(RotationRecord {
            log: LogName(log.into()),
            successor: LogName(successor.into()),
            at_unix_ms: at,
            final_size: 0,
            final_checkpoint: String::new(),
        });
    }

    #[test]
    fn a_family_follows_its_rotations() {
        let logs = logs();
        let name = |name: &str| LogName(name.into());
        let mut lifecycle = Lifecycle::default();
        assert_eq!(
            lifecycle.state(&logs, &name("a-2")),
            LogState::Waiting(&name("a"))
        );
        assert_eq!(lifecycle.active(&name("a")), &name("a"));
        lifecycle
            .check_rotation(&logs, &name("a"), &name("a-2"))
            .unwrap();
        rotate(&mut lifecycle, "a", "a-2", 10 * WINDOW_MARGIN_MS);
        rotate(&mut lifecycle, "a-2", "a-3", 20 * WINDOW_MARGIN_MS);
        assert_eq!(lifecycle.active(&name("a")), &name("a-3"));
        assert_eq!(
            lifecycle.family(&name("a")),
            [name("a"), name("a-2"), name("a-3")]
        );
        assert_eq!(lifecycle.root(&name("a-3")), &name("a"));
        assert_eq!(lifecycle.state(&logs, &name("a-3")), LogState::Open);
        assert_eq!(lifecycle.state(&logs, &name("a")).name(), "frozen");
        assert_eq!(
            lifecycle.window(&name("a-2"), 0),
            (9 * WINDOW_MARGIN_MS, Some(21 * WINDOW_MARGIN_MS))
        );
        assert_eq!(
            lifecycle.window(&name("a"), 7),
            (7, Some(11 * WINDOW_MARGIN_MS))
        );
    }

    #[test]
    fn rotations_that_cannot_work_are_named() {
        let logs = logs();
        let name = |name: &str| LogName(name.into());
        let mut lifecycle = Lifecycle::default();
        let check = |lifecycle: &Lifecycle, log: &str, successor: &str| {
            lifecycle.check_rotation(&logs, &name(log), &name(successor))
        };
        assert_eq!(check(&lifecycle, "a", "a"), Err(RotationError::Itself));
        assert!(matches!(
            check(&lifecycle, "a", "nope"),
            Err(RotationError::Unknown(_))
        ));
        assert!(matches!(
            check(&lifecycle, "a", "a-3"),
            Err(RotationError::NotItsSuccessor { .. })
        ));
        assert!(matches!(
            check(&lifecycle, "b", "b-2"),
            Err(RotationError::SameIdentity(_))
        ));
        assert!(matches!(
            check(&lifecycle, "a-2", "a-3"),
            Err(RotationError::NotOpen(_))
        ));
        rotate(&mut lifecycle, "a", "a-2", 1);
        assert!(matches!(
            check(&lifecycle, "a", "a-2"),
            Err(RotationError::Frozen { .. })
        ));
        assert!(
            check(&lifecycle, "a", "a-2")
                .unwrap_err()
                .to_string()
                .contains("a-2")
        );
        check(&lifecycle, "a-2", "a-3").unwrap();
        assert!(RotationError::Unknown(name("x")).is_configuration());
        assert!(!RotationError::Used(name("x")).is_configuration());
    }
}
