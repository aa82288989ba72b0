//! Per-token open scrolls (`max_open_scrolls`, attack24): the scrolls one token holds open on
//! the backend at once, counted per esgate process like the other per-token limits
//! ([`crate::throttle`]).
//!
//! A scroll holds a search context on every shard it searched until it is cleared or its
//! keep-alive ends, and a node holds at most `search.max_open_scroll_context` (500) for every
//! client together: a token that opens scrolls without end (`?scroll=24h`, never cleared)
//! fails every other client's scrolls, esgate's own cluster store's included, for up to a day.
//!
//! What is counted, from what the es crate's permit says (`es::Holding`, its `scrolling`):
//! - a search that scrolls takes a place before it is forwarded ([`Scrolls::open`]); past the
//!   limit it is refused (429) and nothing is forwarded. Its place becomes the scroll, keyed
//!   by its backend id, when its answer's id is sealed ([`Opening::opened`]), and is given
//!   back when the backend opened nothing (an error answer, nothing sent). It holds its place
//!   until its answer is in, however long that takes (attack24b); one whose answer never came
//!   back after it was sent (the client went away) keeps it until its keep-alive ends, as the
//!   backend keeps the context;
//! - a scroll lives for its keep-alive (the open's `scroll`) from its last page, plus
//!   [`REAPER_SLACK`]: Elasticsearch frees expired contexts once a minute
//!   (`search.keep_alive_interval`), so a scroll kept alive for a second holds its context up
//!   to a minute (a count ending at the keep-alive let short keep-alives hold many times the
//!   limit); each next page keeps it alive for the longest keep-alive any of its requests
//!   set ([`Scrolls::next_page`]: its own `scroll`, else Elasticsearch's default
//!   [`DEFAULT_KEEP_ALIVE`]), as Elasticsearch does (`ReaderContext::tryUpdateKeepAlive` takes
//!   the larger: a page's shorter `scroll` does not shorten a context's life; attack24b),
//!   from when it reached the backend whatever its answer (each shard takes the keep-alive
//!   before it runs the query: a page or search that failed kept it alive too; attack25c) and
//!   again from its answer when that is a success;
//! - it ends at its clear (`DELETE /_search/scroll` with its id: esgate takes only ids sealed
//!   for the token, never `_all`) and at a next page answered 404 (the backend has no such
//!   context) ([`Scrolls::ended`]).
//!
//! A scroll is known by a keyed hash of its backend id (8 bytes, whatever the id's length: an
//! id names a context per shard). Nothing is recorded for a token without a limit, and
//! nothing is done for requests that are not scrolls'. Bounded: a token holds at most its
//! limit of entries (each needs a place to be made), and [`Scrolls::sweep`] forgets tokens
//! with none left that nothing holds, and deleted tokens.
//!
//! Points in time (`max_open_pits`, pit25) are counted by the same machinery, in a count of
//! their own ([`Scrolls::of`] with [`Context::Pit`]): OpenSearch keeps at most
//! `search.max_open_pit_context` (300) point-in-time contexts a node, and Elasticsearch caps
//! none (each pins its shard's segments and heap), so a token opening them without end
//! (`keep_alive=24h`, never closed) fails every other client's opens on OpenSearch and holds
//! a node's disk and memory on either. The permit's `pit` says what a request does: an open
//! (`POST /<index>/_pit`, OpenSearch `POST /<index>/_search/point_in_time`) takes a place as a
//! scroll's open does, for its `keep_alive`; a search or async search on one
//! ([`Scrolls::next_page`]) keeps it alive for the longer of its `pit.keep_alive` and the one
//! it had, or for the one it had when it gives none (Elasticsearch's `SearchService::getKeepAlive`
//! is -1 then: `ReaderContext::markAsUsed` only moves its last use), following the id its
//! answer names; a close (`DELETE /_pit`, OpenSearch `DELETE /_search/point_in_time`, with ids
//! sealed for the token, never `_all`) and a search on one answered 404 end it.
//!
//! Async searches running in the background (`max_running_async_searches`, async25) are
//! counted the same way ([`Context::AsyncSearch`], `App.async_searches`): a submit
//! (`POST /<index>/_async_search?wait_for_completion_timeout=0`) answers at once and its search
//! runs on, on the search thread pools every client shares, so a token held to one request at
//! a time could start thousands. A submit takes a place before it is forwarded; the place is
//! given back when its answer says `is_running: false` (or it failed without saying it runs),
//! and otherwise becomes the search, keyed by its backend id, for its `keep_alive`
//! (Elasticsearch's default 5 days) and [`REAPER_SLACK`]. A poll or status keeps it alive for
//! the poll's `keep_alive` (none: the one it had) and ends it when its answer says
//! `is_running: false`; a delete and a poll answered 404 end it. Refused submits get a
//! `Retry-After` of at most [`ASYNC_RETRY_AFTER`]: esgate cannot foresee when a poll will find
//! a search done.
//!
//! SQL cursors (sql26) are counted with points in time, in `App.pits` under `max_open_pits`
//! ([`Context::SqlCursor`]): Elasticsearch 8 pages a SQL query's hits through a point in time
//! on every shard, opened for the query's `page_timeout` (45 seconds unset; a client may ask
//! for a day), so one limit bounds every point in time a token holds, and a token held to one
//! request at a time could otherwise open thousands of cursors with `fetch_size: 1`. A query
//! takes a place before it is forwarded and gives it back when its answer, read to its end,
//! carries no cursor (one page: Elasticsearch closed the point in time itself); otherwise the
//! place becomes the cursor, keyed by its backend id, for its `page_timeout`. A next page
//! keeps it alive for the longer of its own `page_timeout` and the one it had and follows the
//! new cursor its answer names; an answer without one (the last page), a close
//! (`POST /_sql/close`) and a page answered 404 end it. A cursor that holds nothing on the
//! backend (an aggregation's pages) is counted the same: esgate cannot tell them apart. A
//! page on a cursor the count does not hold (an older cursor of the query: Elasticsearch's
//! stay good while their point in time lives, and each keeps it alive; one of before a
//! restart) takes a place as a query does (attack26d: it kept the point in time alive for a
//! day while the count let it lapse with the newest cursor); a place that comes to name a
//! cursor already counted is that one, kept for the longer keep-alive of the two.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::es::Context;
use crate::throttle::Limited;

/// How long past its keep-alive a scroll is still counted: Elasticsearch's reaper frees
/// expired contexts every `search.keep_alive_interval` (1 minute by default).
pub const REAPER_SLACK: Duration = Duration::from_secs(60);

/// Elasticsearch's `search.default_keep_alive`: the keep-alive a scroll's next page without
/// `scroll` sets (`SearchService::getScrollKeepAlive`; the context keeps the larger of it and
/// the one it had).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5 * 60);

/// The default `max_open_scrolls` (`[policies.limits]`): see docs/configuration.md.
pub const DEFAULT_MAX_OPEN_SCROLLS: u32 = 100;

/// The default `max_open_pits` (`[policies.limits]`): see docs/configuration.md.
pub const DEFAULT_MAX_OPEN_PITS: u32 = 50;

/// The default `max_running_async_searches` (`[policies.limits]`): see
/// docs/configuration.md (a Kibana dashboard of 30 slow panels runs 30).
pub const DEFAULT_MAX_RUNNING_ASYNC_SEARCHES: u32 = 100;

/// The longest `Retry-After` of a submit refused over `max_running_async_searches`: a place
/// frees when a poll finds one of the token's searches done (most within seconds), which
/// esgate cannot foresee; the keep-alive its count ends at is days away.
pub const ASYNC_RETRY_AFTER: Duration = Duration::from_secs(5);

/// One open scroll: until when it is counted, and the keep-alive its next page keeps when it
/// sets none.
#[derive(Debug, Clone, Copy)]
struct Kept {
    until: Instant,
    keep_alive: Duration,
    /// The place of an open whose answer is not in yet: counted whatever `until` says (an
    /// open slower than its keep-alive and slack freed its place while its context was being
    /// made; attack24b). Its [`Opening`] resolves it, or leaves it to `until` when dropped.
    under_way: bool,
}

/// One token's open scrolls, by the hash of their backend id (or, for an open whose answer is
/// not in, a key of its own).
#[derive(Debug, Default)]
struct Held {
    open: HashMap<u64, Kept>,
}

impl Held {
    fn prune(&mut self, now: Instant) {
        self.open.retain(|_, k| k.under_way || k.until > now);
    }
}

/// One kind of context's count, per token: scrolls ([`Scrolls::new`]) or points in time.
#[derive(Debug)]
pub struct Scrolls {
    kind: Context,
    tokens: DashMap<String, Arc<Mutex<Held>>, crate::FastHash>,
    /// Keys backend ids are hashed with (random per process: nobody can aim two ids at one
    /// key).
    keys: RandomState,
    /// Numbers the places of opens whose answers are not in yet.
    next_place: AtomicU64,
}

impl Default for Scrolls {
    fn default() -> Scrolls {
        Scrolls::new()
    }
}

/// A place taken by a scroll being opened ([`Scrolls::open`]). Dropped unresolved, it is given
/// back unless [`Opening::sent`] said the open may have reached the backend: then it stays
/// counted for the open's keep-alive (the backend keeps the context; nobody can clear it).
#[derive(Debug)]
pub struct Opening {
    held: Arc<Mutex<Held>>,
    /// The place's key in `held` until the answer names the scroll.
    place: u64,
    keep_alive: Duration,
    /// The hash of backend ids, shared with [`Scrolls`].
    keys: RandomState,
    sent: bool,
    resolved: bool,
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    // A panic while holding it leaves a map of plain values: still sound to use.
    held.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts `kept` under `key`. A context the count already holds under that id (an answer
/// naming an id the token holds: a SQL cursor's page on an older cursor of its query names the
/// one its first next page named, attack26d) is the same context on the backend, kept alive
/// for the longest of the two: the later one never shortens it.
fn keep(held: &mut Held, key: u64, kept: Kept) {
    let merged = match held.open.get(&key) {
        Some(k) => Kept {
            until: k.until.max(kept.until),
            keep_alive: k.keep_alive.max(kept.keep_alive),
            under_way: kept.under_way,
        },
        None => kept,
    };
    held.open.insert(key, merged);
}

/// A keep-alive of `ms` milliseconds with the reaper's slack, from `now`.
fn until(now: Instant, keep_alive: Duration) -> Instant {
    now + keep_alive.saturating_add(REAPER_SLACK)
}

impl Opening {
    /// The request may reach the backend from now on: dropped unresolved, the place stays.
    pub fn sent(&mut self) {
        self.sent = true;
    }

    /// The backend opened the scroll and its answer's id is sealed: `backend_id` (when the
    /// answer's beginning names it) is the scroll from now on, kept alive from `now`.
    pub fn opened(mut self, backend_id: Option<&str>, now: Instant) {
        let key = backend_id.map_or(self.place, |id| self.keys.hash_one(id));
        let mut held = lock(&self.held);
        held.open.remove(&self.place);
        keep(
            &mut held,
            key,
            Kept {
                until: until(now, self.keep_alive),
                keep_alive: self.keep_alive,
                under_way: false,
            },
        );
        drop(held);
        self.resolved = true;
    }

    /// The backend opened nothing (its answer was an error, or nothing was sent): the place
    /// is free again.
    pub fn not_opened(mut self) {
        lock(&self.held).open.remove(&self.place);
        self.resolved = true;
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.resolved {
            return;
        }
        let mut held = lock(&self.held);
        if self.sent {
            // Sent and never answered: the place holds until its `until` (the open's
            // keep-alive from when it was made, with the reaper's slack).
            if let Some(kept) = held.open.get_mut(&self.place) {
                kept.under_way = false;
            }
        } else {
            held.open.remove(&self.place);
        }
    }
}

impl Scrolls {
    /// The count of open scrolls.
    pub fn new() -> Scrolls {
        Scrolls::of(Context::Scroll)
    }

    /// The count of open contexts of `kind`.
    pub fn of(kind: Context) -> Scrolls {
        Scrolls {
            kind,
            tokens: DashMap::default(),
            keys: RandomState::new(),
            next_place: AtomicU64::new(0),
        }
    }

    fn held(&self, token_id: &str) -> Option<Arc<Mutex<Held>>> {
        self.tokens.get(token_id).map(|h| Arc::clone(&h))
    }

    /// A place for a scroll `token_id` opens with `keep_alive_ms`, under its `max` (the
    /// token's `max_open_scrolls`, merged with the default; `None`: no limit, nothing
    /// recorded). Refused when the token's open scrolls and opens under way fill it.
    pub fn open(
        &self,
        token_id: &str,
        max: Option<u32>,
        keep_alive_ms: u64,
        now: Instant,
    ) -> Result<Option<Opening>, Limited> {
        self.open_unless_held(token_id, None, max, keep_alive_ms, now)
    }

    /// [`Scrolls::open`], but nothing (`Ok(None)`) when `backend_id` is given and `token_id`'s
    /// count holds it at `now` ([`Scrolls::holds`]): both under one look-up of the token and
    /// one lock (perf27b: a SQL cursor's next page looked its token up twice, for `holds`
    /// and then for `open`).
    pub fn open_unless_held(
        &self,
        token_id: &str,
        backend_id: Option<&str>,
        max: Option<u32>,
        keep_alive_ms: u64,
        now: Instant,
    ) -> Result<Option<Opening>, Limited> {
        let Some(max) = max.filter(|m| *m > 0) else {
            return Ok(None);
        };
        let held = match self.held(token_id) {
            Some(h) => h,
            None => Arc::clone(&self.tokens.entry(token_id.to_owned()).or_default()),
        };
        let keep_alive = Duration::from_millis(keep_alive_ms);
        let mut h = lock(&held);
        if let Some(id) = backend_id {
            let key = self.keys.hash_one(id);
            if h.open.get(&key).is_some_and(|k| k.until > now) {
                return Ok(None);
            }
        }
        // A place's key: a counter's number, hashed like backend ids (a collision would only
        // merge two of the token's own scrolls).
        let place = self
            .keys
            .hash_one(("place", self.next_place.fetch_add(1, Ordering::Relaxed)));
        h.prune(now);
        if h.open.len() >= max as usize {
            let first_free = h.open.values().map(|k| k.until).min().unwrap_or(now);
            let retry_after = first_free.saturating_duration_since(now);
            return Err(match self.kind {
                Context::Scroll => Limited::OpenScrolls { max, retry_after },
                Context::Pit | Context::SqlCursor => Limited::OpenPits { max, retry_after },
                Context::AsyncSearch => Limited::RunningAsyncSearches {
                    max,
                    retry_after: retry_after.min(ASYNC_RETRY_AFTER),
                },
            });
        }
        h.open.insert(
            place,
            Kept {
                until: until(now, keep_alive),
                keep_alive,
                under_way: true,
            },
        );
        drop(h);
        Ok(Some(Opening {
            held,
            place,
            keep_alive,
            keys: self.keys.clone(),
            sent: false,
            resolved: false,
        }))
    }

    /// A next page of the scroll `backend_id` (a search on the point in time) reached the backend,
    /// or was answered with success, at `now`: it is kept alive from `now` for the larger of its
    /// keep-alive so far and the page's `keep_alive_ms` (`None`: a scroll's [`DEFAULT_KEEP_ALIVE`],
    /// a point in time's own), as Elasticsearch keeps its context (attack24b: a page's shorter
    /// `scroll` shortened the count, not the context), under `answer_id`, the id its answer named
    /// (the backend may give a new one; `None`: unchanged). One esgate does not count (opened
    /// before a restart, on another esgate, before the token had a limit) is left uncounted
    /// here; a SQL cursor's such page took a place before it was sent (the proxy, attack26d).
    pub fn next_page(
        &self,
        token_id: &str,
        backend_id: &str,
        answer_id: Option<&str>,
        keep_alive_ms: Option<u64>,
        now: Instant,
    ) {
        let Some(held) = self.held(token_id) else {
            return;
        };
        let key = self.keys.hash_one(backend_id);
        let mut h = lock(&held);
        let Some(kept) = h.open.remove(&key) else {
            return;
        };
        let unset = match self.kind {
            Context::Scroll => DEFAULT_KEEP_ALIVE,
            // A SQL cursor's next page always says its `page_timeout` (es: its default when
            // unset).
            Context::Pit | Context::AsyncSearch | Context::SqlCursor => Duration::ZERO,
        };
        let page = keep_alive_ms.map_or(unset, Duration::from_millis);
        let keep_alive = kept.keep_alive.max(page);
        let key = answer_id.map_or(key, |id| self.keys.hash_one(id));
        keep(
            &mut h,
            key,
            Kept {
                until: until(now, keep_alive),
                keep_alive,
                under_way: false,
            },
        );
    }

    /// The scrolls `backend_ids` of `token_id` are gone: cleared, or a next page found no
    /// context.
    pub fn ended<'a>(&self, token_id: &str, backend_ids: impl IntoIterator<Item = &'a str>) {
        let Some(held) = self.held(token_id) else {
            return;
        };
        let mut h = lock(&held);
        for id in backend_ids {
            h.open.remove(&self.keys.hash_one(id));
        }
    }

    /// Whether `token_id`'s count holds `backend_id` at `now`.
    pub fn holds(&self, token_id: &str, backend_id: &str, now: Instant) -> bool {
        self.held(token_id).is_some_and(|held| {
            let key = self.keys.hash_one(backend_id);
            lock(&held).open.get(&key).is_some_and(|k| k.until > now)
        })
    }

    /// Scrolls `token_id` holds open at `now` (opens under way included).
    pub fn held_by(&self, token_id: &str, now: Instant) -> usize {
        self.held(token_id).map_or(0, |held| {
            let mut h = lock(&held);
            h.prune(now);
            h.open.len()
        })
    }

    /// Forgets what has expired, tokens with no open scroll left, and tokens `exists` no
    /// longer knows. Called by the server's chores.
    pub fn sweep(&self, now: Instant, exists: impl Fn(&str) -> bool) {
        self.tokens.retain(|id, held| {
            if !exists(id) {
                return false;
            }
            // Held elsewhere: by an open under way (its `Opening`, whose place may have
            // expired while its answer was slow) or by a call that found the entry and has not
            // locked it yet. Forgotten now, what they put in it would land in a map nobody
            // reads, uncounted, and the token's next open would start a new count (attack24b).
            // The map's lock is held here: a call that finds the entry after this keeps it.
            if Arc::strong_count(held) > 1 {
                return true;
            }
            let mut h = lock(held);
            h.prune(now);
            !h.open.is_empty()
        });
    }

    /// Tokens with an entry (for tests).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn opened(s: &Scrolls, token: &str, id: &str, ka: u64, now: Instant) {
        let o = s
            .open(token, Some(100), ka, now)
            .expect("a place")
            .expect("counted");
        o.opened(Some(id), now);
    }

    #[test]
    fn no_limit_records_nothing() {
        let s = Scrolls::new();
        let now = Instant::now();
        for _ in 0..10 {
            assert!(matches!(s.open("a", None, MIN, now), Ok(None)));
        }
        assert!(s.is_empty());
        s.next_page("a", "x", None, Some(MIN), now);
        s.ended("a", ["x"]);
        assert!(s.is_empty());
    }

    #[test]
    fn opens_past_the_limit_are_refused_until_one_ends() {
        let s = Scrolls::new();
        let now = Instant::now();
        for i in 0..3 {
            let o = s.open("a", Some(3), MIN, now).unwrap().unwrap();
            o.opened(Some(&format!("s{i}")), now);
        }
        assert_eq!(s.held_by("a", now), 3);
        let refused = s.open("a", Some(3), MIN, now).unwrap_err();
        assert!(
            matches!(refused, Limited::OpenScrolls { max: 3, retry_after }
                if retry_after == Duration::from_millis(MIN) + REAPER_SLACK),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("max_open_scrolls"),
            "{refused}"
        );
        assert_eq!(refused.retry_after_secs(), 120);
        // Another token has its own count; a higher limit of the same token lets one more.
        assert!(s.open("b", Some(3), MIN, now).unwrap().is_some());
        let fourth = s.open("a", Some(4), MIN, now).unwrap();
        assert!(fourth.is_some());
        // Cleared: its place is free.
        s.ended("a", ["s1", "unknown"]);
        assert_eq!(s.held_by("a", now), 3, "s0, s2 and the fourth's place");
        s.ended("a", ["s0"]);
        assert!(s.open("a", Some(3), MIN, now).unwrap().is_some());
    }

    #[test]
    fn opens_under_way_hold_their_place_and_give_it_back_unless_sent() {
        let s = Scrolls::new();
        let now = Instant::now();
        let first = s.open("a", Some(2), MIN, now).unwrap().unwrap();
        let mut second = s.open("a", Some(2), MIN, now).unwrap().unwrap();
        assert!(
            s.open("a", Some(2), MIN, now).is_err(),
            "two opens under way fill it"
        );
        // Refused or failed before it was sent: given back.
        drop(first);
        assert_eq!(s.held_by("a", now), 1);
        // An error answer: given back.
        let third = s.open("a", Some(2), MIN, now).unwrap().unwrap();
        third.not_opened();
        assert_eq!(s.held_by("a", now), 1);
        // Sent and never answered (the client went away): held for its keep-alive.
        second.sent();
        drop(second);
        assert_eq!(s.held_by("a", now), 1);
        let later = now + Duration::from_millis(MIN) + REAPER_SLACK;
        assert_eq!(s.held_by("a", later), 0);
    }

    #[test]
    fn a_scroll_lives_for_its_keep_alive_and_the_reaper_slack() {
        let s = Scrolls::new();
        let now = Instant::now();
        opened(&s, "a", "short", 1_000, now);
        opened(&s, "a", "long", 10 * MIN, now);
        // One second of keep-alive is still counted for the reaper's minute.
        assert_eq!(s.held_by("a", now + Duration::from_secs(60)), 2);
        assert_eq!(s.held_by("a", now + Duration::from_millis(61_000)), 1);
        assert_eq!(s.held_by("a", now + Duration::from_secs(11 * 60)), 0);
    }

    #[test]
    fn each_next_page_refreshes_the_keep_alive_and_follows_a_new_id() {
        let s = Scrolls::new();
        let start = Instant::now();
        opened(&s, "a", "s", MIN, start);
        opened(&s, "a", "t", MIN, start);
        // Pages a minute and a half later (within keep-alive and slack): `t`'s with no
        // `scroll` sets Elasticsearch's default (five minutes, longer than the minute it had),
        // from this page; `s`'s sets its own, and the backend's new id is the scroll from then.
        let page = start + Duration::from_secs(90);
        s.next_page("a", "t", None, None, page);
        s.next_page("a", "s", Some("s2"), Some(10 * MIN), page);
        assert_eq!(s.held_by("a", page + Duration::from_secs(359)), 2);
        assert_eq!(s.held_by("a", page + Duration::from_secs(361)), 1);
        assert_eq!(s.held_by("a", page + Duration::from_secs(10 * 60)), 1);
        s.ended("a", ["s"]);
        assert_eq!(s.held_by("a", page), 1, "the old id names nothing now");
        s.ended("a", ["s2"]);
        assert_eq!(s.held_by("a", page), 0);
        // A page of a scroll not counted here is not adopted.
        s.next_page("a", "elsewhere", None, Some(MIN), page);
        assert_eq!(s.held_by("a", page), 0);
    }

    /// Attack26d: a place that comes to name an id already counted (a SQL cursor's page on an
    /// older cursor of its query names the cursor its first next page named) is that one
    /// context: counted once, for the longer keep-alive of the two, whichever came last.
    #[test]
    fn an_id_counted_twice_is_one_context_kept_for_the_longer_keep_alive() {
        let s = Scrolls::of(Context::SqlCursor);
        let now = Instant::now();
        let day = 24 * 60 * MIN;
        opened(&s, "a", "c1", day, now);
        assert!(s.holds("a", "c1", now));
        assert!(!s.holds("a", "c0", now) && !s.holds("b", "c1", now));
        opened(&s, "a", "c1", 1, now);
        assert_eq!(s.held_by("a", now), 1);
        assert_eq!(s.held_by("a", now + Duration::from_millis(day)), 1);
        opened(&s, "a", "c2", 1, now);
        s.next_page("a", "c2", Some("c1"), Some(1), now);
        assert_eq!(s.held_by("a", now + Duration::from_millis(day)), 1);
        assert!(!s.holds("a", "c1", now + Duration::from_millis(day) + REAPER_SLACK));
    }

    /// perf27b: `open_unless_held` is `holds`, then `open` when it does not hold the id: a
    /// held id (not yet expired) takes no place, an unheld one, an expired one or another
    /// token's takes one under the limit, and no limit records nothing.
    #[test]
    fn open_unless_held_opens_only_what_the_count_does_not_hold() {
        let s = Scrolls::of(Context::SqlCursor);
        let now = Instant::now();
        opened(&s, "a", "c1", MIN, now);
        let unless = |token, id, max, at| s.open_unless_held(token, id, max, MIN, at);
        for _ in 0..3 {
            assert!(matches!(unless("a", Some("c1"), Some(2), now), Ok(None)));
        }
        assert_eq!(s.held_by("a", now), 1, "a held cursor takes no place");
        let other = unless("a", Some("c0"), Some(2), now).unwrap();
        assert!(other.is_some(), "an unheld cursor takes one");
        assert_eq!(s.held_by("a", now), 2);
        assert!(
            matches!(
                unless("a", Some("c9"), Some(2), now),
                Err(Limited::OpenPits { max: 2, .. })
            ),
            "past the limit: refused"
        );
        assert!(matches!(unless("a", Some("c1"), Some(2), now), Ok(None)));
        drop(other);
        let expired = now + Duration::from_millis(MIN) + REAPER_SLACK;
        assert!(!s.holds("a", "c1", expired));
        assert!(unless("a", Some("c1"), Some(2), expired).unwrap().is_some());
        assert!(unless("b", Some("c1"), Some(2), now).unwrap().is_some());
        assert!(unless("a", None, Some(9), now).unwrap().is_some());
        assert!(matches!(unless("c", Some("c0"), None, now), Ok(None)));
        assert!(matches!(unless("c", Some("c0"), Some(0), now), Ok(None)));
        assert_eq!(s.held_by("c", now), 0, "no limit records nothing");
    }

    /// attack24b (M): Elasticsearch keeps a scroll's context alive for the longest keep-alive
    /// any of its requests set (`ReaderContext::tryUpdateKeepAlive`, `Math::max`), so a next page
    /// with a shorter `scroll` (or none: the five-minute default) shortens nothing there. When
    /// the page's keep-alive replaced the count's, a token opened its limit of scrolls with
    /// `scroll=24h`, paged each with `scroll=1ms`, and opened its limit again a minute later,
    /// the contexts before still held for a day.
    #[test]
    fn a_next_page_never_shortens_the_keep_alive() {
        let s = Scrolls::new();
        let start = Instant::now();
        let day = 24 * 60 * MIN;
        opened(&s, "a", "long", day, start);
        opened(&s, "a", "default", 1_000, start);
        s.next_page("a", "long", None, Some(1), start);
        s.next_page("a", "default", None, None, start);
        let later = start + Duration::from_secs(5 * 60) + REAPER_SLACK;
        assert_eq!(s.held_by("a", later - Duration::from_secs(1)), 2);
        assert_eq!(s.held_by("a", later + Duration::from_secs(1)), 1);
        // A later page's shorter `scroll` neither.
        s.next_page("a", "long", None, Some(1), later);
        assert_eq!(
            s.held_by(
                "a",
                later + Duration::from_millis(day) - Duration::from_secs(1)
            ),
            1
        );
        assert_eq!(
            s.held_by("a", later + Duration::from_millis(day) + REAPER_SLACK),
            0
        );
    }

    #[test]
    fn sweep_forgets_expired_scrolls_and_deleted_tokens() {
        let s = Scrolls::new();
        let now = Instant::now();
        opened(&s, "kept", "k", MIN, now);
        opened(&s, "deleted", "d", MIN, now);
        opened(&s, "expired", "e", 1, now);
        s.sweep(now + Duration::from_secs(61), |id| id != "deleted");
        assert_eq!(s.len(), 1);
        assert_eq!(s.held_by("kept", now), 1);
        s.sweep(now + Duration::from_secs(121), |_| true);
        assert!(s.is_empty());
    }

    /// attack24b (L): an open slower than its keep-alive and slack (a `scroll=0ms` search whose
    /// answer takes over a minute) holds its place until its answer is in; and an open that found
    /// the token's entry just before a sweep lands in the token's count, not in an entry the
    /// sweep forgot (which nobody reads: the scroll uncounted, the token's next open counting
    /// anew).
    #[test]
    fn an_open_under_way_holds_its_place_however_long_it_takes() {
        let s = Scrolls::new();
        let now = Instant::now();
        let mut slow = s.open("a", Some(1), 0, now).unwrap().unwrap();
        slow.sent();
        let later = now + REAPER_SLACK + Duration::from_secs(1);
        assert!(s.open("a", Some(1), 0, later).is_err(), "its place holds");
        s.sweep(later, |_| true);
        assert_eq!(s.len(), 1, "an open under way holds its token's entry");
        slow.opened(Some("x"), later);
        assert_eq!(s.held_by("a", later), 1);
        assert!(s.open("a", Some(1), MIN, later).is_err(), "the limit holds");
        // A call that found the entry before the sweep keeps it.
        let found = s.held("b");
        assert!(found.is_none());
        let o = s.open("b", Some(1), 0, now).unwrap().unwrap();
        drop(o);
        let found = s.held("b").expect("its entry");
        s.sweep(later, |_| true);
        assert_eq!(s.len(), 2);
        drop(found);
        s.sweep(later, |_| true);
        assert_eq!(
            s.len(),
            1,
            "b's entry, empty and held by nobody, is forgotten"
        );
        // Dropped unanswered after it was sent, an open's place counts until its keep-alive
        // and slack from its open, and a deleted token is forgotten whatever holds it.
        let mut gone = s.open("c", Some(1), 0, now).unwrap().unwrap();
        gone.sent();
        drop(gone);
        assert_eq!(s.held_by("c", now + Duration::from_secs(59)), 1);
        assert_eq!(s.held_by("c", later), 0);
        let held = s.held("a");
        s.sweep(later, |_| false);
        assert!(s.is_empty());
        drop(held);
    }

    /// pit25: points in time are counted apart from scrolls, refused past `max_open_pits`
    /// with their own error; a search on one without `keep_alive` keeps it alive for the one
    /// it had from then (Elasticsearch: -1, no change but its last use; a scroll's page takes
    /// the five-minute default), a shorter one shortens nothing, a longer one extends it.
    #[test]
    fn points_in_time_are_counted_apart_and_keep_their_own_keep_alive() {
        let pits = Scrolls::of(Context::Pit);
        let scrolls = Scrolls::new();
        let start = Instant::now();
        for id in ["p", "q"] {
            let o = pits.open("a", Some(2), MIN, start).unwrap().unwrap();
            o.opened(Some(id), start);
        }
        let refused = pits.open("a", Some(2), MIN, start).unwrap_err();
        assert!(
            matches!(refused, Limited::OpenPits { max: 2, retry_after }
                if retry_after == Duration::from_millis(MIN) + REAPER_SLACK),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("max_open_pits"), "{refused}");
        assert!(
            scrolls.open("a", Some(2), MIN, start).unwrap().is_some(),
            "scrolls have their own count"
        );
        // Searches 90 s later: `p`'s without keep_alive keeps its minute from then (not the
        // five minutes a scroll's page without `scroll` sets); `q`'s shorter one shortens
        // nothing, and its answer names a new id.
        let search = start + Duration::from_secs(90);
        pits.next_page("a", "p", None, None, search);
        pits.next_page("a", "q", Some("q2"), Some(1), search);
        pits.ended("a", ["q"]);
        assert_eq!(pits.held_by("a", search), 2, "q's old id names nothing now");
        let counted_until = search + Duration::from_millis(MIN) + REAPER_SLACK;
        assert_eq!(pits.held_by("a", counted_until - Duration::from_secs(1)), 2);
        assert_eq!(pits.held_by("a", counted_until + Duration::from_secs(1)), 0);
        // A longer one extends it; a close of the id its answer named frees it.
        let o = pits.open("a", Some(2), MIN, search).unwrap().unwrap();
        o.opened(Some("r"), search);
        pits.next_page("a", "r", Some("r2"), Some(10 * MIN), search);
        assert_eq!(pits.held_by("a", counted_until + Duration::from_secs(1)), 1);
        pits.ended("a", ["r2"]);
        assert_eq!(pits.held_by("a", search), 0);
    }

    /// async25: async searches running in the background are counted apart from scrolls and
    /// points in time, refused past `max_running_async_searches` with their own error and a
    /// short `Retry-After` (a place frees when a poll finds a search done, not at its days of
    /// keep-alive); a submit whose search completed gives its place back; a poll without
    /// `keep_alive` keeps the one it had (not a scroll's five minutes), a longer one extends
    /// it; a poll that finds it done, or a delete, ends it.
    #[test]
    fn running_async_searches_are_counted_apart_and_freed_when_done() {
        let running = Scrolls::of(Context::AsyncSearch);
        let pits = Scrolls::of(Context::Pit);
        let start = Instant::now();
        let five_days = 5 * 24 * 60 * MIN;
        // Completed within its wait: its place is given back at once.
        for _ in 0..5 {
            let done = running
                .open("a", Some(2), five_days, start)
                .unwrap()
                .unwrap();
            done.not_opened();
        }
        for (id, ka) in [("r", MIN), ("s", five_days)] {
            let o = running.open("a", Some(2), ka, start).unwrap().unwrap();
            o.opened(Some(id), start);
        }
        let refused = running.open("a", Some(2), MIN, start).unwrap_err();
        assert!(
            matches!(refused, Limited::RunningAsyncSearches { max: 2, retry_after }
                if retry_after == ASYNC_RETRY_AFTER),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("max_running_async_searches"),
            "{refused}"
        );
        assert_eq!(refused.retry_after_secs(), 5);
        assert!(
            pits.open("a", Some(2), MIN, start).unwrap().is_some(),
            "points in time have their own count"
        );
        // Polled 90 s later without keep_alive: `r` keeps its minute from then.
        let poll = start + Duration::from_secs(90);
        running.next_page("a", "r", None, None, poll);
        let counted_until = poll + Duration::from_millis(MIN) + REAPER_SLACK;
        assert_eq!(
            running.held_by("a", counted_until - Duration::from_secs(1)),
            2
        );
        // A poll that finds `s` done (or its delete) ends it, days before its keep-alive.
        running.ended("a", ["s"]);
        assert_eq!(
            running.held_by("a", counted_until - Duration::from_secs(1)),
            1
        );
        let t = running.open("a", Some(2), 10 * MIN, poll).unwrap().unwrap();
        t.opened(Some("t"), poll);
        assert_eq!(
            running.held_by("a", counted_until + Duration::from_secs(1)),
            1,
            "r's minute is over; the new one's is not"
        );
    }

    #[test]
    fn concurrent_opens_never_exceed_the_limit() {
        let s = Arc::new(Scrolls::new());
        let now = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut n = 0;
                    for i in 0..50 {
                        if let Ok(Some(o)) = s.open("a", Some(30), MIN, now) {
                            o.opened(Some(&format!("{t}-{i}")), now);
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 30);
        assert_eq!(s.held_by("a", now), 30);
    }
}
