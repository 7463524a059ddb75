//! Requests per identity per minute: a fixed one-minute window per identity, bounded in memory.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most identities tracked at once; past it, windows of earlier minutes are dropped first.
const IDENTITIES_MAX: usize = 100_000;

/// Counts requests per identity in the current minute.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per identity per minute (0: no limit).
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request by `identity` at `now_unix_seconds`; `Err(seconds to wait)` past the
    /// limit.
    pub fn check(&self, identity: &str, now_unix_seconds: u64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let minute = now_unix_seconds / 60;
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= IDENTITIES_MAX && !windows.contains_key(identity) {
            windows.retain(|_, (window, _)| *window == minute);
            if windows.len() >= IDENTITIES_MAX {
                return Err(60 - now_unix_seconds % 60);
            }
        }
        let entry = windows.entry(identity.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= self.per_minute {
            return Err(60 - now_unix_seconds % 60);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_identity_per_minute() {
        let limiter = RateLimiter::new(2);
        assert_eq!(limiter.check("a", 120), Ok(()));
        assert_eq!(limiter.check("a", 121), Ok(()));
        assert_eq!(limiter.check("a", 130), Err(50));
        assert_eq!(limiter.check("b", 130), Ok(()));
        assert_eq!(limiter.check("a", 180), Ok(()));
    }
}
