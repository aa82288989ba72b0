//! Slows down credential guessing (security.md G3): failures are counted per client address
//! (IPv4 by address, IPv6 by /64, IPv4-mapped IPv6 as IPv4) and an address that fails
//! `max_failures` times within `window` is refused for one `window` from the failure that
//! tripped the limit.
//!
//! How callers use it (issue #9 item 3): the credential is checked *first* (a constant-time hash
//! lookup), and a valid one is never refused because of failures from its address (behind a
//! shared NAT one stale dashboard would otherwise lock everyone out); only a failed attempt from
//! a locked address gets 429 instead of 401. Only wrong or malformed credentials count, never a
//! request without any (probes). Each listener has its own limiter.
//!
//! Invariants: pure in time (every `Instant` is an argument); memory is bounded: at most
//! `max_entries` addresses are tracked, and when the map is full (after one attempt to sweep
//! stale entries) a new address evicts an entry that is not locked (or the one whose lock ends
//! soonest), so filling the table from many addresses never stops new addresses from being
//! limited. Never panics.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::policy::client_ip::canonical;

/// Default bound on the number of tracked addresses.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// How often a full map may trigger an inline sweep.
const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Counts authentication failures per client address in a window.
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    max_entries: usize,
    entries: DashMap<IpAddr, Entry>,
    /// When the map was last swept because it was full (rate-limits those sweeps).
    last_full_sweep: Mutex<Option<Instant>>,
}

/// Refused: too many failures; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Start of the current counting window (the first failure in it).
    window_start: Instant,
    failures: u32,
    /// When the limit was reached; the address is refused for `window` from then.
    tripped_at: Option<Instant>,
}

impl FailureLimiter {
    /// `max_failures == 0` disables the limiter.
    pub fn new(max_failures: u32, window: Duration) -> FailureLimiter {
        FailureLimiter::with_max_entries(max_failures, window, DEFAULT_MAX_ENTRIES)
    }

    /// Like [`FailureLimiter::new`] with an explicit bound on tracked addresses.
    pub fn with_max_entries(
        max_failures: u32,
        window: Duration,
        max_entries: usize,
    ) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            max_entries,
            entries: DashMap::new(),
            last_full_sweep: Mutex::new(None),
        }
    }

    /// Err when `ip` is currently locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let Some(entry) = self.entries.get(&key(ip)) else {
            return Ok(());
        };
        match self.lock_remaining(&entry, now) {
            Some(remaining) => Err(RetryAfter(remaining)),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        if self.max_failures == 0 {
            return;
        }
        let key = key(ip);
        if let Some(mut entry) = self.entries.get_mut(&key) {
            self.count(&mut entry, now);
            return;
        }
        if self.entries.len() >= self.max_entries && !self.make_room(now) {
            self.evict_one(now);
        }
        let mut entry = self.entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            tripped_at: None,
        });
        self.count(&mut entry, now);
    }

    /// Drops entries that neither lock an address nor hold failures of a current window.
    pub fn sweep(&self, now: Instant) {
        self.entries.retain(|_, entry| !self.is_stale(entry, now));
    }

    /// Number of tracked addresses (for metrics and tests).
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    // === internals ===

    fn count(&self, entry: &mut Entry, now: Instant) {
        if self.lock_remaining(entry, now).is_some() {
            // Already refused: failures during the lock do not extend it.
            return;
        }
        if entry.tripped_at.is_some() || elapsed(entry.window_start, now) >= self.window {
            *entry = Entry {
                window_start: now,
                failures: 0,
                tripped_at: None,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= self.max_failures {
            entry.tripped_at = Some(now);
        }
    }

    fn lock_remaining(&self, entry: &Entry, now: Instant) -> Option<Duration> {
        let tripped = entry.tripped_at?;
        let passed = elapsed(tripped, now);
        (passed < self.window).then(|| self.window - passed)
    }

    fn is_stale(&self, entry: &Entry, now: Instant) -> bool {
        self.lock_remaining(entry, now).is_none() && elapsed(entry.window_start, now) >= self.window
    }

    /// The map is full: sweep (at most once per `FULL_SWEEP_INTERVAL`) and report whether a new
    /// entry now fits.
    fn make_room(&self, now: Instant) -> bool {
        let sweep_due = match self.last_full_sweep.lock() {
            Ok(mut last) => {
                let due = match *last {
                    Some(t) => elapsed(t, now) >= FULL_SWEEP_INTERVAL,
                    None => true,
                };
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if sweep_due {
            self.sweep(now);
        }
        self.entries.len() < self.max_entries
    }
}

impl FailureLimiter {
    /// The map is full of current entries: drops one to make room for a new address. Looks at
    /// a bounded sample (filling the table is what an attacker does, so the sample is mostly
    /// theirs) and drops an unlocked entry with the oldest window, or else the lock ending
    /// soonest.
    fn evict_one(&self, now: Instant) {
        let victim = self
            .entries
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|e| {
                let remaining = self.lock_remaining(e.value(), now);
                (remaining.is_some(), remaining, e.value().window_start)
            })
            .map(|e| *e.key());
        if let Some(key) = victim {
            self.entries.remove(&key);
        }
    }
}

/// Entries looked at to choose one to evict from a full map.
const EVICTION_SAMPLE: usize = 64;

/// Time from `earlier` to `now`; zero if `now` is before `earlier`.
fn elapsed(earlier: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(earlier)
}

/// The address a failure is counted against: IPv4 as is (mapped IPv6 included), IPv6 by /64
/// (one host usually owns a whole /64).
fn key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn locks_after_max_failures_until_the_window_passes() {
        let l = FailureLimiter::new(3, W);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        l.record_failure(a, t0);
        l.record_failure(a, t0 + Duration::from_secs(1));
        assert_eq!(l.check(a, t0 + Duration::from_secs(2)), Ok(()));
        l.record_failure(a, t0 + Duration::from_secs(10));
        assert_eq!(l.check(a, t0 + Duration::from_secs(10)), Err(RetryAfter(W)));
        assert_eq!(
            l.check(a, t0 + Duration::from_secs(40)),
            Err(RetryAfter(Duration::from_secs(30)))
        );
        assert_eq!(l.check(a, t0 + Duration::from_secs(70)), Ok(()));
        // Other addresses are unaffected.
        assert_eq!(
            l.check(ip("192.0.2.2"), t0 + Duration::from_secs(10)),
            Ok(())
        );
    }

    #[test]
    fn failures_spread_over_more_than_a_window_do_not_lock() {
        let l = FailureLimiter::new(3, W);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..10u64 {
            l.record_failure(a, t0 + Duration::from_secs(i * 31));
            assert_eq!(l.check(a, t0 + Duration::from_secs(i * 31)), Ok(()), "{i}");
        }
    }

    #[test]
    fn failures_during_a_lock_do_not_extend_it_and_a_new_window_starts_after() {
        let l = FailureLimiter::new(2, W);
        let t0 = Instant::now();
        let a = ip("198.51.100.7");
        l.record_failure(a, t0);
        l.record_failure(a, t0);
        l.record_failure(a, t0 + Duration::from_secs(50));
        assert_eq!(l.check(a, t0 + Duration::from_secs(61)), Ok(()));
        l.record_failure(a, t0 + Duration::from_secs(61));
        assert_eq!(l.check(a, t0 + Duration::from_secs(62)), Ok(()));
        l.record_failure(a, t0 + Duration::from_secs(62));
        assert!(l.check(a, t0 + Duration::from_secs(62)).is_err());
    }

    #[test]
    fn ipv6_is_grouped_by_slash_64_and_mapped_ipv4_counts_as_ipv4() {
        let l = FailureLimiter::new(2, W);
        let t0 = Instant::now();
        l.record_failure(ip("2001:db8:1:2::1"), t0);
        l.record_failure(ip("2001:db8:1:2:ffff::9"), t0);
        assert!(l.check(ip("2001:db8:1:2::abcd"), t0).is_err());
        assert_eq!(l.check(ip("2001:db8:1:3::1"), t0), Ok(()));

        l.record_failure(ip("::ffff:203.0.113.5"), t0);
        l.record_failure(ip("203.0.113.5"), t0);
        assert!(l.check(ip("203.0.113.5"), t0).is_err());
        assert!(l.check(ip("::ffff:203.0.113.5"), t0).is_err());
        assert_eq!(l.check(ip("203.0.113.6"), t0), Ok(()));
    }

    #[test]
    fn zero_max_failures_disables_the_limiter() {
        let l = FailureLimiter::new(0, W);
        let t0 = Instant::now();
        for _ in 0..100 {
            l.record_failure(ip("192.0.2.1"), t0);
        }
        assert_eq!(l.check(ip("192.0.2.1"), t0), Ok(()));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn sweep_drops_only_stale_entries() {
        let l = FailureLimiter::new(2, W);
        let t0 = Instant::now();
        l.record_failure(ip("192.0.2.1"), t0); // stale after W
        l.record_failure(ip("192.0.2.2"), t0 + Duration::from_secs(50)); // window still open
        l.record_failure(ip("192.0.2.3"), t0 + Duration::from_secs(30));
        l.record_failure(ip("192.0.2.3"), t0 + Duration::from_secs(30)); // locked until 90
        l.sweep(t0 + Duration::from_secs(70));
        assert_eq!(l.tracked(), 2);
        assert!(l
            .check(ip("192.0.2.3"), t0 + Duration::from_secs(70))
            .is_err());
        l.sweep(t0 + Duration::from_secs(200));
        assert_eq!(l.tracked(), 0);
    }

    /// Issue #9 item 3: about `max_entries` distinct addresses used to disable limiting for
    /// every new address. A full map now evicts an unlocked entry instead.
    #[test]
    fn full_map_still_limits_new_addresses_and_keeps_locks() {
        let l = FailureLimiter::with_max_entries(2, W, 3);
        let t0 = Instant::now();
        // One locked address, then the map filled by others.
        l.record_failure(ip("192.0.2.1"), t0);
        l.record_failure(ip("192.0.2.1"), t0);
        for last in 2..=3 {
            l.record_failure(ip(&format!("192.0.2.{last}")), t0);
        }
        assert_eq!(l.tracked(), 3);
        // Many new addresses: each is tracked and limited; the table stays bounded.
        for last in 10..200 {
            let a = ip(&format!("198.51.100.{last}"));
            let t = t0 + Duration::from_secs(1);
            l.record_failure(a, t);
            l.record_failure(a, t);
            assert!(l.check(a, t).is_err(), "{a} not limited");
            assert!(l.tracked() <= 3);
        }
        // The locked address stayed locked while unlocked entries were evicted first... until
        // only locked entries are left, then the lock ending soonest goes.
        let fresh = FailureLimiter::with_max_entries(2, W, 2);
        fresh.record_failure(ip("192.0.2.1"), t0);
        fresh.record_failure(ip("192.0.2.1"), t0);
        fresh.record_failure(ip("192.0.2.2"), t0);
        fresh.record_failure(ip("192.0.2.3"), t0 + Duration::from_secs(1));
        assert!(fresh.check(ip("192.0.2.1"), t0).is_err());
        assert_eq!(fresh.tracked(), 2);
        // Once old entries are stale, a full map makes room by sweeping.
        let later = t0 + Duration::from_secs(200);
        l.record_failure(ip("192.0.2.99"), later);
        l.record_failure(ip("192.0.2.99"), later);
        assert!(l.check(ip("192.0.2.99"), later).is_err());
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn instants_before_the_entry_do_not_panic() {
        let l = FailureLimiter::new(1, W);
        let t0 = Instant::now() + Duration::from_secs(1000);
        l.record_failure(ip("192.0.2.1"), t0);
        let earlier = t0 - Duration::from_secs(500);
        assert_eq!(l.check(ip("192.0.2.1"), earlier), Err(RetryAfter(W)));
        l.sweep(earlier);
        l.record_failure(ip("192.0.2.1"), earlier);
        assert_eq!(l.tracked(), 1);
    }
}
