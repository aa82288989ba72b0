//! The backend's REST dialect and how it makes empty histogram buckets
//! (`es::request::dialect::Banner`), learned from its `GET /` answer the first time a request
//! needs it, and kept for the life of the process once known (every node of one cluster speaks
//! the same dialect and runs the same version).
//!
//! Invariants: only a recognised answer is cached for good. A lookup that fails or is not
//! recognised is remembered for [`UNKNOWN_FOR`]: until then the banner is unknown without
//! asking (every caller fails closed on unknown: histograms count as making their empty buckets
//! first, a point-in-time route is refused), so a backend that does not say (a canned one, a
//! credential without `monitor`, one down) costs one `GET /` per window, not one per request.
//! One lookup is in flight at a time: requests arriving meanwhile wait for it and read what it
//! found (the one that asked gets its error, the others unknown).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::{Upstream, UpstreamError};
use crate::es::request::dialect::{self, Banner, Dialect, EmptyBuckets};

/// Largest `GET /` answer read (the banner is a few hundred bytes).
const MAX_ROOT_ANSWER: usize = 64 * 1024;

/// How long a failed or unrecognised `GET /` is remembered before the backend is asked again.
pub const UNKNOWN_FOR: Duration = Duration::from_secs(10);

/// The cached banner (dialect, how empty histogram buckets are made) of one `Upstream`.
pub struct DialectCache {
    /// The recognised banner, for good.
    known: OnceCell<Banner>,
    /// Until when the last lookup's failure or unrecognised answer stands (`None`: no such).
    unknown_until: Mutex<Option<Instant>>,
    /// Held by the one lookup in flight.
    asking: tokio::sync::Mutex<()>,
    /// [`UNKNOWN_FOR`], shorter in tests.
    unknown_for: Duration,
}

impl Default for DialectCache {
    fn default() -> Self {
        Self::remembering_unknown_for(UNKNOWN_FOR)
    }
}

impl DialectCache {
    /// A cache that remembers a failed or unrecognised lookup for `unknown_for`.
    fn remembering_unknown_for(unknown_for: Duration) -> Self {
        Self {
            known: OnceCell::new(),
            unknown_until: Mutex::new(None),
            asking: tokio::sync::Mutex::new(()),
            unknown_for,
        }
    }

    /// The banner if known; `Some(None)` while a failed or unrecognised lookup stands; `None`
    /// when the backend is to be asked.
    fn settled(&self) -> Option<Option<Banner>> {
        if let Some(b) = self.known.get() {
            return Some(Some(*b));
        }
        let until = *self
            .unknown_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.filter(|u| Instant::now() < *u).map(|_| None)
    }

    /// The banner, from the cache or from `ask` (the `GET /`), which runs only when nothing
    /// settled stands and no other lookup is in flight (one that was is waited for and read).
    async fn find<E>(
        &self,
        ask: impl std::future::Future<Output = Result<Option<Banner>, E>>,
    ) -> Result<Option<Banner>, E> {
        if let Some(settled) = self.settled() {
            return Ok(settled);
        }
        let _turn = self.asking.lock().await;
        // The lookup waited for may have settled it.
        if let Some(settled) = self.settled() {
            return Ok(settled);
        }
        let found = ask.await;
        if let Ok(Some(b)) = &found {
            let _ = self.known.set(*b);
        } else {
            *self
                .unknown_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + self.unknown_for);
        }
        found
    }
}

impl Upstream {
    /// The backend's dialect: `None` when its `GET /` answer does not say (or a failed or
    /// unrecognised one is remembered).
    pub(crate) async fn dialect(
        &self,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Option<Dialect>, UpstreamError> {
        Ok(self.banner(authorization).await?.map(|b| b.dialect))
    }

    /// How the backend makes empty histogram buckets, without asking: what its `GET /` said
    /// once read, made first (fail closed) while a failed or unrecognised lookup is
    /// remembered, `None` when it is to be asked.
    pub(crate) fn empty_buckets_settled(&self) -> Option<EmptyBuckets> {
        self.dialect
            .settled()
            .map(|b| b.map_or(EmptyBuckets::MadeFirst, |b| b.empty_buckets))
    }

    /// What the backend's `GET /` says of it: `None` when it does not say (or a failed or
    /// unrecognised answer is remembered: [`UNKNOWN_FOR`]).
    pub(crate) async fn banner(
        &self,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Option<Banner>, UpstreamError> {
        self.dialect
            .find(async {
                let (status, body) = self.get_own("/", authorization, MAX_ROOT_ANSWER).await?;
                Ok(if status == 200 {
                    dialect::banner(&body)
                } else {
                    None
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A lookup counted in `asked`, answering `answer` after a pause (long enough for others
    /// to arrive while it is in flight).
    async fn lookup(
        asked: &AtomicUsize,
        answer: Result<Option<Banner>, ()>,
    ) -> Result<Option<Banner>, ()> {
        asked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer
    }

    fn opensearch() -> Banner {
        dialect::banner(br#"{"version":{"distribution":"opensearch","number":"2.19.0"}}"#).unwrap()
    }

    #[tokio::test]
    async fn an_unrecognised_or_failed_lookup_is_remembered_for_its_window() {
        for answer in [Ok(None), Err(())] {
            let cache = DialectCache::default();
            let asked = AtomicUsize::new(0);
            assert_eq!(cache.find(lookup(&asked, answer)).await, answer);
            for _ in 0..5 {
                assert_eq!(
                    cache.find(lookup(&asked, Ok(Some(opensearch())))).await,
                    Ok(None)
                );
            }
            assert_eq!(asked.load(Ordering::SeqCst), 1, "{answer:?}");
            assert_eq!(cache.known.get(), None);
        }
    }

    #[tokio::test]
    async fn past_its_window_an_unknown_banner_is_asked_again_and_a_recognised_one_kept() {
        let cache = DialectCache::remembering_unknown_for(Duration::ZERO);
        let asked = AtomicUsize::new(0);
        assert_eq!(cache.find(lookup(&asked, Err(()))).await, Err(()));
        assert_eq!(cache.find(lookup(&asked, Ok(None))).await, Ok(None));
        let b = opensearch();
        assert_eq!(cache.find(lookup(&asked, Ok(Some(b)))).await, Ok(Some(b)));
        assert_eq!(cache.find(lookup(&asked, Err(()))).await, Ok(Some(b)));
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_the_lookup_in_flight() {
        for answer in [Ok(None), Err(()), Ok(Some(opensearch()))] {
            let cache = Arc::new(DialectCache::default());
            let asked = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (cache, asked) = (Arc::clone(&cache), Arc::clone(&asked));
                    tokio::spawn(async move { cache.find(lookup(&asked, answer)).await })
                })
                .collect();
            let mut got = Vec::new();
            for t in tasks {
                got.push(t.await.unwrap());
            }
            assert_eq!(asked.load(Ordering::SeqCst), 1, "{answer:?}: {got:?}");
            // The one that asked gets its answer, the others what it settled.
            let settled = Ok(answer.unwrap_or(None));
            assert!(got.contains(&answer), "{got:?}");
            assert!(got.iter().all(|g| *g == answer || *g == settled), "{got:?}");
        }
    }
}
