//! Per-token request limits (issue 13): a rate with a burst (`requests_per_second`, `burst`)
//! and a cap on requests in flight (`max_concurrent`), checked right after authentication for
//! every token (`read` and `all` alike). Over either: 429 with `Retry-After`.
//!
//! The rate is a token bucket in its GCRA form: one atomic "theoretical arrival time" per
//! token, advanced by compare-and-swap, so admitting a request takes no lock (a `DashMap`
//! shard read to find the token's entry, one CAS; the entry is created once). A concurrency
//! slot is an atomic counter; the [`Slot`] given out releases it when dropped, which the proxy
//! ties to the end (or the drop) of the response body.
//!
//! An `_msearch` is admitted as one request and, once its body is read and its searches
//! counted, charged for the others as debt (msearch27, [`Throttle::charge`]): the bucket's
//! theoretical arrival time moves on by an interval a search, never refused (a dashboard's
//! `_msearch` larger than the burst still runs), and the token's next requests wait the debt
//! out. How many searches one `_msearch` may carry is `max_msearch_searches`, checked by the
//! es crate as it splits the body's lines.
//!
//! Bounded: an entry at rest (bucket full again, nothing in flight) is the same as no entry, so
//! [`Throttle::sweep`] removes those and the entries of deleted tokens; at most the tokens
//! active in the last sweep interval have one.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::store::model::TokenLimits;

/// The default `max_msearch_searches` (`[policies.limits]`): see docs/configuration.md.
pub const DEFAULT_MAX_MSEARCH_SEARCHES: u32 = 1000;

/// The rate's interval between two requests, in nanoseconds (admission and charges alike).
fn interval_nanos(rate: u32) -> u64 {
    1_000_000_000 / u64::from(rate).max(1)
}

/// Why a request was refused, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    #[error(
        "this token is over its rate limit of {rate} requests per second (burst {burst}); retry later"
    )]
    Rate {
        rate: u32,
        burst: u32,
        retry_after: Duration,
    },
    #[error("this token already has {max} requests in flight (its max_concurrent); retry later")]
    Concurrency { max: u32 },
    /// Over `max_open_scrolls` (`crate::scrolls`): `retry_after` is when the first of the
    /// token's scrolls is no longer counted, unless the client clears one first.
    #[error(
        "this token already holds {max} open scrolls (its max_open_scrolls); clear a scroll it no longer needs (DELETE /_search/scroll) or retry later"
    )]
    OpenScrolls { max: u32, retry_after: Duration },
    /// Over `max_open_pits` (`crate::scrolls`, pit25; SQL cursors counted with them, sql26):
    /// `retry_after` is when the first of the token's points in time is no longer counted,
    /// unless the client closes one first.
    #[error(
        "this token already holds {max} open points in time (its max_open_pits), SQL cursors included; close one it no longer needs (DELETE /_pit, on OpenSearch DELETE /_search/point_in_time; a SQL cursor: POST /_sql/close, or read it to its last page) or retry later"
    )]
    OpenPits { max: u32, retry_after: Duration },
    /// Over `max_running_async_searches` (`crate::scrolls`, async25): `retry_after` is a guess
    /// (a place frees when a poll finds one of the token's searches done, which esgate cannot
    /// foresee), at most [`crate::scrolls::ASYNC_RETRY_AFTER`].
    #[error(
        "this token already has {max} async searches running (its max_running_async_searches); wait for one to complete (GET /_async_search/<id>), delete one it no longer needs (DELETE /_async_search/<id>) or retry later"
    )]
    RunningAsyncSearches { max: u32, retry_after: Duration },
}

impl Limited {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Limited::Rate { retry_after, .. }
            | Limited::OpenScrolls { retry_after, .. }
            | Limited::OpenPits { retry_after, .. }
            | Limited::RunningAsyncSearches { retry_after, .. } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                secs.max(1)
            }
            Limited::Concurrency { .. } => 1,
        }
    }
}

/// One token's state.
#[derive(Debug, Default)]
struct Entry {
    /// GCRA theoretical arrival time, nanoseconds since [`Throttle::base`].
    tat: AtomicU64,
    in_flight: AtomicU32,
}

/// Held while a request counts against its token's `max_concurrent`; releases on drop.
#[derive(Debug)]
pub struct Slot {
    entry: Arc<Entry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.entry.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
pub struct Throttle {
    base: Instant,
    entries: DashMap<String, Arc<Entry>, crate::FastHash>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            base: Instant::now(),
            entries: DashMap::default(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn entry(&self, token_id: &str) -> Arc<Entry> {
        if let Some(e) = self.entries.get(token_id) {
            return Arc::clone(&e);
        }
        Arc::clone(&self.entries.entry(token_id.to_owned()).or_default())
    }

    /// Admits one request of `token_id` under `limits` (the token's own merged with the
    /// defaults) at `now`. `Ok(Some(slot))` when `max_concurrent` applies: keep the slot until
    /// the answer is done. Without a rate or concurrency limit nothing is recorded.
    pub fn admit(
        &self,
        token_id: &str,
        limits: &TokenLimits,
        now: Instant,
    ) -> Result<Option<Slot>, Limited> {
        let rate = limits.requests_per_second.filter(|r| *r > 0);
        let max = limits.max_concurrent.filter(|m| *m > 0);
        if rate.is_none() && max.is_none() {
            return Ok(None);
        }
        let entry = self.entry(token_id);
        // The slot first: it can be given back if the rate refuses.
        let slot = match max {
            None => None,
            Some(max) => {
                let before = entry.in_flight.fetch_add(1, Ordering::AcqRel);
                let slot = Slot {
                    entry: Arc::clone(&entry),
                };
                if before >= max {
                    drop(slot);
                    return Err(Limited::Concurrency { max });
                }
                Some(slot)
            }
        };
        if let Some(rate) = rate {
            let burst = limits.burst.filter(|b| *b > 0).unwrap_or(rate);
            let interval = interval_nanos(rate);
            let tolerance = interval.saturating_mul(u64::from(burst));
            let now = self.nanos(now);
            let mut tat = entry.tat.load(Ordering::Acquire);
            loop {
                let next = tat.max(now).saturating_add(interval);
                let ahead = next - now;
                if ahead > tolerance {
                    return Err(Limited::Rate {
                        rate,
                        burst,
                        retry_after: Duration::from_nanos(ahead - tolerance),
                    });
                }
                match entry.tat.compare_exchange_weak(
                    tat,
                    next,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(current) => tat = current,
                }
            }
        }
        Ok(slot)
    }

    /// Charges `extra` more requests of `token_id` under `limits` at `now` as debt: the rate's
    /// theoretical arrival time moved on by `extra` intervals, whatever the burst (never
    /// refused: the request was admitted, [`Throttle::admit`]); the token's next requests are
    /// refused until it is paid. Without a rate nothing is recorded. An `_msearch` of N
    /// searches is charged N - 1 once they are counted (msearch27).
    pub fn charge(&self, token_id: &str, limits: &TokenLimits, extra: u64, now: Instant) {
        let Some(rate) = limits.requests_per_second.filter(|r| *r > 0) else {
            return;
        };
        if extra == 0 {
            return;
        }
        let interval = interval_nanos(rate);
        let debt = interval.saturating_mul(extra);
        let entry = self.entry(token_id);
        let now = self.nanos(now);
        let mut tat = entry.tat.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(debt);
            match entry
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(current) => tat = current,
            }
        }
    }

    /// Forgets entries at rest (their bucket full, nothing in flight) and those of tokens
    /// `exists` no longer knows. Called by the server's chores.
    pub fn sweep(&self, now: Instant, exists: impl Fn(&str) -> bool) {
        let now = self.nanos(now);
        self.entries.retain(|id, e| {
            let busy = e.in_flight.load(Ordering::Acquire) > 0;
            let draining = e.tat.load(Ordering::Acquire) > now;
            exists(id) && (busy || draining)
        });
    }

    /// Tokens with an entry (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: Option<u32>, burst: Option<u32>, max: Option<u32>) -> TokenLimits {
        TokenLimits {
            requests_per_second: rps,
            burst,
            max_concurrent: max,
            ..TokenLimits::default()
        }
    }

    #[test]
    fn no_limit_records_nothing() {
        let t = Throttle::new();
        let now = Instant::now();
        for _ in 0..100 {
            assert!(matches!(
                t.admit("a", &TokenLimits::default(), now),
                Ok(None)
            ));
        }
        assert!(t.is_empty());
    }

    #[test]
    fn the_bucket_allows_the_burst_then_the_rate() {
        let t = Throttle::new();
        let l = limits(Some(10), Some(5), None);
        let start = Instant::now();
        for i in 0..5 {
            assert!(t.admit("a", &l, start).is_ok(), "burst request {i}");
        }
        let refused = t.admit("a", &l, start).unwrap_err();
        assert!(
            matches!(refused, Limited::Rate { rate: 10, burst: 5, retry_after } if retry_after <= Duration::from_millis(100))
        );
        assert_eq!(refused.retry_after_secs(), 1);
        // Another token has its own bucket.
        assert!(t.admit("b", &l, start).is_ok());
        // One interval later, one more request.
        let later = start + Duration::from_millis(100);
        assert!(t.admit("a", &l, later).is_ok());
        assert!(t.admit("a", &l, later).is_err());
        // A second later, the bucket has refilled (to the burst, no more).
        let much_later = start + Duration::from_secs(2);
        for _ in 0..5 {
            assert!(t.admit("a", &l, much_later).is_ok());
        }
        assert!(t.admit("a", &l, much_later).is_err());
    }

    #[test]
    fn burst_defaults_to_the_rate_and_retry_after_is_in_whole_seconds() {
        let t = Throttle::new();
        let now = Instant::now();
        let l = limits(Some(1), None, None);
        assert!(t.admit("a", &l, now).is_ok());
        let e = t.admit("a", &l, now).unwrap_err();
        assert_eq!(e.retry_after_secs(), 1);
        assert!(e.to_string().contains("1 requests per second"));
    }

    #[test]
    fn slots_are_released_when_dropped_and_refusals_hold_none() {
        let t = Throttle::new();
        let now = Instant::now();
        let l = limits(None, None, Some(2));
        let a = t.admit("a", &l, now).unwrap().expect("a slot");
        let b = t.admit("a", &l, now).unwrap().expect("a slot");
        assert_eq!(
            t.admit("a", &l, now).unwrap_err(),
            Limited::Concurrency { max: 2 }
        );
        drop(a);
        let c = t.admit("a", &l, now).unwrap().expect("a slot");
        drop((b, c));
        // A rate refusal gives its slot back.
        let l = limits(Some(1), Some(1), Some(1));
        let s = t.admit("r", &l, now).unwrap();
        drop(s);
        assert!(matches!(t.admit("r", &l, now), Err(Limited::Rate { .. })));
        assert!(t.admit("r", &l, now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn sweep_keeps_only_busy_entries_of_existing_tokens() {
        let t = Throttle::new();
        let now = Instant::now();
        let l = limits(Some(1), Some(1), Some(5));
        let held = t.admit("busy", &l, now).unwrap();
        let _ = t.admit("draining", &l, now).unwrap();
        let _ = t.admit("deleted", &l, now).unwrap();
        let _ = t.admit("idle", &l, now - Duration::from_secs(0)).unwrap();
        assert_eq!(t.len(), 4);
        t.sweep(now, |id| id != "deleted");
        assert_eq!(
            t.len(),
            3,
            "busy, draining and idle are still within their interval"
        );
        t.sweep(now + Duration::from_secs(5), |id| id != "deleted");
        assert_eq!(t.len(), 1, "only the one with a request in flight stays");
        drop(held);
        t.sweep(now + Duration::from_secs(5), |_| true);
        assert!(t.is_empty());
    }

    /// msearch27: an `_msearch` of N is charged N - 1 more once counted, whatever the burst;
    /// the next request waits N - 1 intervals more than after a single request.
    #[test]
    fn a_charge_is_debt_the_next_requests_wait_out() {
        let t = Throttle::new();
        let start = Instant::now();
        let interval = Duration::from_millis(100);
        // Burst 1: after one request, the next is admitted one interval later.
        let l = limits(Some(10), Some(1), None);
        assert!(t.admit("single", &l, start).is_ok());
        assert!(t.admit("single", &l, start + interval).is_ok());
        // An msearch of 5: admitted, then charged 4, never refused for being over the burst.
        assert!(t.admit("m", &l, start).is_ok());
        t.charge("m", &l, 4, start);
        for waited in [1, 2, 3, 4] {
            let refused = t.admit("m", &l, start + interval * waited).unwrap_err();
            assert!(
                matches!(refused, Limited::Rate { retry_after, .. } if retry_after == interval * (5 - waited)),
                "{waited}: {refused:?}"
            );
        }
        assert!(t
            .admit("m", &l, start + interval * 5 - Duration::from_nanos(1))
            .is_err());
        assert!(t.admit("m", &l, start + interval * 5).is_ok());
        // A charge larger than the burst (a dashboard's 20 searches under burst 10) is taken
        // whole: the whole burst is spent and the rest waited out.
        let l = limits(Some(10), Some(10), None);
        assert!(t.admit("d", &l, start).is_ok());
        t.charge("d", &l, 19, start);
        assert!(t.admit("d", &l, start + interval * 10).is_err());
        assert!(t.admit("d", &l, start + interval * 11).is_ok());
        assert!(t.admit("d", &l, start + interval * 11).is_err());
        // Retry-After says when the debt is paid.
        t.charge("d", &l, 100, start + interval * 11);
        let refused = t.admit("d", &l, start + interval * 11).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 11);
        // A bucket full again takes the debt from now, not from the past.
        let later = start + Duration::from_secs(60);
        t.charge("late", &l, 0, later);
        assert_eq!(t.len(), 3, "a charge of nothing records nothing");
        assert!(t.admit("late", &l, later).is_ok());
        t.charge("late", &l, 8, later);
        assert!(
            t.admit("late", &l, later).is_ok(),
            "1 + 8 + 1: the burst of 10"
        );
        assert!(t.admit("late", &l, later).is_err());
    }

    #[test]
    fn a_charge_without_a_rate_records_nothing() {
        let t = Throttle::new();
        let now = Instant::now();
        t.charge("a", &TokenLimits::default(), 999_999, now);
        t.charge("a", &limits(None, None, Some(3)), 999_999, now);
        assert!(t.is_empty());
        // Concurrency alone: the charge changes nothing either.
        let l = limits(None, None, Some(1));
        let slot = t.admit("a", &l, now).unwrap();
        assert!(slot.is_some());
        drop(slot);
        assert!(t.admit("a", &l, now).is_ok());
    }

    #[test]
    fn concurrent_admissions_never_exceed_the_burst() {
        let t = Arc::new(Throttle::new());
        let now = Instant::now();
        let l = limits(Some(1), Some(50), None);
        let admitted = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (t, admitted) = (Arc::clone(&t), Arc::clone(&admitted));
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if t.admit("a", &l, now).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().expect("thread");
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 50);
    }
}
