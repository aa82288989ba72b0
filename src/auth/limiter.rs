//! Slows down credential guessing. SIGNATURES ONLY (placeholder bodies).

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Counts authentication failures per client address in a sliding window.
pub struct FailureLimiter {
    _max_failures: u32,
    _window: Duration,
}

/// Refused: too many failures; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            _max_failures: max_failures,
            _window: window,
        }
    }

    /// Err when `ip` is currently locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let _ = (ip, now);
        Ok(())
    }

    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let _ = (ip, now);
    }

    /// Drops old entries; called periodically.
    pub fn sweep(&self, now: Instant) {
        let _ = now;
    }
}
