//! What keeps a client connection honest: the service notes when requests start and when their
//! answers are done, and `Watchdog` decides when a connection that makes no progress must close.
//!
//! Rules (issue #9 item 1): a connection must start its first request within the header
//! timeout of its start (a socket that sends nothing, or only an HTTP/2 preface or SETTINGS,
//! is closed; hyper's HTTP/1 header timer only starts after the HTTP/1-vs-HTTP/2 detection);
//! afterwards, a connection with no request in flight and none started or finished for the
//! idle timeout is closed. Progress is counted in requests, not bytes: an HTTP/2 client that
//! answers PINGs or sends SETTINGS and WINDOW_UPDATE frames forever, but no request, is idle.
//! A request in flight is not cut by these timers while it waits on the backend (the backend's
//! own timeouts bound it), but a client that reads nothing of its answer for the idle timeout
//! (the connection has handed a chunk of it to the socket and is still waiting to write more)
//! is closed (session 12): an answer esgate built in memory (up to 256 MiB, charged to the
//! body budget until it is sent) is not held for a client that never reads it, nor is a
//! backend connection for a streamed one. As nginx's `send_timeout`, this counts time between
//! writes, not the answer's whole length; it is checked every idle timeout, so it acts
//! between one and two idle timeouts after the client stopped reading. It is kept per answer
//! (per HTTP/2 stream): a stream whose client grants it no window is cut even while the
//! connection's other streams are read, and a stream reset by its client leaves nothing behind.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use super::streams::Place;
use crate::body::{Body, BoxError};

/// What one connection has done, shared by its I/O, its service and its watchdog.
pub(super) struct Activity {
    origin: Instant,
    /// Milliseconds since `origin` when the last request started or its answer was done.
    last_ms: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// The unread marks of the answers being sent (one per HTTP/2 stream): each is 1 + the
    /// milliseconds since `origin` when its answer handed the connection a chunk and was not
    /// asked for the next one since, 0 when it does not wait so. One mark per answer, not one
    /// per connection (session 12 review): with a shared mark, any stream's poll cleared a
    /// stalled stream's wait, and a stream reset while it waited left its mark behind to cut
    /// the connection's other requests.
    unread: Mutex<Vec<Arc<AtomicU64>>>,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request started; it counts as in flight until the returned guard is dropped.
    pub(super) fn request_started(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// 1 + when the answer that has waited longest for its client to read began waiting; 0
    /// if none waits.
    fn oldest_unread(&self) -> u64 {
        let marks = self.unread.lock().unwrap_or_else(|p| p.into_inner());
        marks
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .filter(|&m| m != 0)
            .min()
            .unwrap_or(0)
    }
}

/// One request in flight; dropping it ends it.
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    /// Keeps the request in flight, and its HTTP/2 stream's `place` under
    /// `listen.max_connections` (`streams`), until `response`'s body is sent (or dropped). The
    /// guarded body is the connection's answer body as it is, not boxed once more (issue 10: an
    /// allocation and a dynamic call per poll of every answer).
    pub(super) fn hold_until_sent(
        self,
        response: Response<Body>,
        place: Option<Place>,
    ) -> Response<Guarded> {
        response.map(|inner| Guarded {
            inner,
            unread: None,
            in_flight: self,
            _place: place,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_ms.store(a.now_ms(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer's body that keeps its request in flight until it is sent or dropped.
pub(super) struct Guarded {
    inner: Body,
    /// This answer's mark in [`Activity::unread`], registered when it first hands out a chunk
    /// with more to come (most answers are one chunk: no allocation or lock for them).
    unread: Option<Arc<AtomicU64>>,
    in_flight: InFlight,
    /// An HTTP/2 stream's place, given back with the answer.
    _place: Option<Place>,
}

impl Drop for Guarded {
    /// Sent or dropped (an HTTP/2 stream reset by its client): no longer waits to be read.
    fn drop(&mut self) {
        let Some(unread) = &self.unread else {
            return;
        };
        let mut marks = self
            .in_flight
            .0
            .unread
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(i) = marks.iter().position(|m| Arc::ptr_eq(m, unread)) {
            marks.swap_remove(i);
        }
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        // Asked for more: the client read what was handed out before.
        if let Some(unread) = &this.unread {
            if unread.load(Ordering::Relaxed) != 0 {
                unread.store(0, Ordering::Relaxed);
            }
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        // A chunk handed out with more to come: until the connection asks again, it waits for
        // the client to read (a last chunk ends the body, and the request with it).
        if matches!(frame, Poll::Ready(Some(Ok(_)))) && !this.inner.is_end_stream() {
            let activity = &this.in_flight.0;
            let now = activity.now_ms().saturating_add(1);
            match &this.unread {
                Some(unread) => unread.store(now, Ordering::Relaxed),
                None => {
                    let unread = Arc::new(AtomicU64::new(now));
                    activity
                        .unread
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Arc::clone(&unread));
                    this.unread = Some(unread);
                }
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// No request started within the header timeout of the connection's start.
    NoRequest,
    /// Nothing in flight and nothing received for the idle timeout.
    Idle,
    /// The client read nothing of an answer for the idle timeout.
    Unread,
}

pub(super) struct Watchdog {
    activity: Arc<Activity>,
    first_request: Duration,
    idle: Duration,
}

impl Watchdog {
    pub(super) fn new(first_request: Duration, idle: Duration) -> Watchdog {
        Watchdog {
            activity: Arc::new(Activity {
                origin: Instant::now(),
                last_ms: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                unread: Mutex::new(Vec::new()),
            }),
            first_request,
            idle,
        }
    }

    pub(super) fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    /// Resolves when the connection must close, and says why.
    pub(super) async fn expired(&self) -> Expired {
        let a = &self.activity;
        loop {
            let now_ms = a.now_ms();
            let state = State {
                now_ms,
                requests: a.requests.load(Ordering::Relaxed),
                in_flight: a.in_flight.load(Ordering::Relaxed),
                last_ms: a.last_ms.load(Ordering::Relaxed),
                unread_ms: a.oldest_unread(),
            };
            match decide(&state, self.first_request, self.idle) {
                Ok(expired) => return expired,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// A connection's state as the watchdog sees it.
struct State {
    now_ms: u64,
    requests: u64,
    in_flight: usize,
    /// When the last request started or was done, in ms since the start.
    last_ms: u64,
    /// 1 + when the answer that has waited longest for its client to read began waiting, in
    /// ms since the start; 0 if none waits.
    unread_ms: u64,
}

/// The watchdog's rule, pure: expired, or how long to wait before looking again. No wait is
/// longer than the idle timeout, so each rule acts at its own time: before the first request
/// the watchdog looks again at the header deadline or after the idle timeout, whichever comes
/// first (session 13: with a header timeout longer than the idle timeout, a first request that
/// started and finished, or whose answer went unread, was only looked at once the header
/// deadline had passed).
fn decide(s: &State, first_request: Duration, idle: Duration) -> Result<Expired, Duration> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if s.requests == 0 {
        let deadline = ms(first_request);
        return match deadline.checked_sub(s.now_ms) {
            Some(left) if left > 0 => Err(Duration::from_millis(left).min(idle)),
            _ => Ok(Expired::NoRequest),
        };
    }
    if s.in_flight > 0 {
        let Some(since) = s.unread_ms.checked_sub(1) else {
            return Err(idle);
        };
        return match since.saturating_add(ms(idle)).checked_sub(s.now_ms) {
            Some(left) if left > 0 => Err(Duration::from_millis(left)),
            _ => Ok(Expired::Unread),
        };
    }
    let deadline = s.last_ms.saturating_add(ms(idle));
    match deadline.checked_sub(s.now_ms) {
        Some(left) if left > 0 => Err(Duration::from_millis(left)),
        _ => Ok(Expired::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(3);
    const IDLE: Duration = Duration::from_secs(10);

    fn state(now_ms: u64, requests: u64, in_flight: usize, last_ms: u64) -> State {
        State {
            now_ms,
            requests,
            in_flight,
            last_ms,
            unread_ms: 0,
        }
    }

    /// `state` with an answer waiting for the client to read since `since` ms.
    fn unread(now_ms: u64, since: u64) -> State {
        State {
            unread_ms: since + 1,
            ..state(now_ms, 1, 1, 0)
        }
    }

    #[test]
    fn the_watchdog_closes_connections_that_make_no_progress() {
        let ms = Duration::from_millis;
        let cases = [
            // No request yet: the first one must start within the header timeout, whatever
            // was received (an HTTP/2 preface, SETTINGS, one byte at a time).
            (state(0, 0, 0, 0), Err(FIRST)),
            (state(2_000, 0, 0, 1_999), Err(ms(1_000))),
            (state(3_000, 0, 0, 2_999), Ok(Expired::NoRequest)),
            (state(9_000, 0, 0, 0), Ok(Expired::NoRequest)),
            // A request in flight waiting on the backend is never cut here.
            (state(60_000, 1, 1, 0), Err(IDLE)),
            // Session 12: one whose client reads nothing of its answer is, after the idle
            // timeout.
            (unread(60_000, 55_000), Err(ms(5_000))),
            (unread(60_000, 50_001), Err(ms(1))),
            (unread(60_000, 50_000), Ok(Expired::Unread)),
            (unread(60_000, 0), Ok(Expired::Unread)),
            // Idle: nothing in flight, no request started or done for the idle timeout.
            (state(5_000, 1, 0, 1_000), Err(ms(6_000))),
            (state(11_000, 1, 0, 1_000), Ok(Expired::Idle)),
            (state(11_000, 3, 0, 4_000), Err(ms(3_000))),
        ];
        check(&cases, FIRST, IDLE);
    }

    /// Session 13: with a header timeout longer than the idle timeout, the first look was at
    /// the header deadline, so a first request's unread answer or its idle connection was
    /// closed that late. Before the first request, no wait is longer than the idle timeout.
    #[test]
    fn each_rule_acts_at_its_own_time_when_the_header_timeout_is_longer() {
        let ms = Duration::from_millis;
        const FIRST: Duration = Duration::from_secs(60);
        let cases = [
            // No request yet: looked at again within the idle timeout, still closed at the
            // header deadline.
            (state(0, 0, 0, 0), Err(IDLE)),
            (state(45_000, 0, 0, 0), Err(IDLE)),
            (state(55_000, 0, 0, 0), Err(ms(5_000))),
            (state(60_000, 0, 0, 0), Ok(Expired::NoRequest)),
            // The request that started meanwhile is judged at its own time.
            (unread(10_000, 1_000), Err(ms(1_000))),
            (unread(11_000, 1_000), Ok(Expired::Unread)),
            (state(12_000, 1, 0, 2_000), Ok(Expired::Idle)),
            (state(10_000, 1, 0, 2_000), Err(ms(2_000))),
        ];
        check(&cases, FIRST, IDLE);
        // Looking again after each wait, a first request whose answer is unread from 1 s is
        // cut between one and two idle timeouts later, never at the header deadline.
        let mut now = 0;
        let verdict = loop {
            let s = if now < 1_000 {
                state(now, 0, 0, 0)
            } else {
                unread(now, 1_000)
            };
            match decide(&s, FIRST, IDLE) {
                Ok(v) => break v,
                Err(wait) => now += u64::try_from(wait.as_millis()).unwrap(),
            }
        };
        assert_eq!(verdict, Expired::Unread);
        assert!((11_000..=21_000).contains(&now), "cut at {now} ms");
    }

    fn check(cases: &[(State, Result<Expired, Duration>)], first: Duration, idle: Duration) {
        for (s, expected) in cases {
            assert_eq!(
                decide(s, first, idle),
                *expected,
                "now {} requests {} in flight {} last {}",
                s.now_ms,
                s.requests,
                s.in_flight,
                s.last_ms
            );
        }
    }

    /// An answer that always has more to send.
    fn endless() -> Body {
        use http_body_util::BodyExt;
        let chunks = futures_util::stream::repeat_with(|| {
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"chunk")))
        });
        http_body_util::StreamBody::new(chunks).boxed()
    }

    /// An answer of `watchdog`'s connection being sent.
    fn sending(watchdog: &Watchdog) -> Guarded {
        let in_flight = watchdog.activity().request_started();
        in_flight
            .hold_until_sent(Response::new(endless()), None)
            .into_body()
    }

    async fn poll_once(answer: &mut Guarded) {
        use http_body_util::BodyExt;
        let frame = answer.frame().await.unwrap().unwrap();
        assert!(frame.is_data());
    }

    /// Session 12 review: the unread rule is per answer (per HTTP/2 stream). A stream reset by
    /// its client while its answer waited to be read (the body dropped) must not cut the
    /// connection's other request, which waits on the backend; and a stream whose client
    /// grants no window must be cut although another stream of the connection is read.
    /// Before, one mark per connection did both.
    #[tokio::test]
    async fn the_unread_rule_is_per_answer() {
        const IDLE: Duration = Duration::from_millis(200);
        // A stream's answer handed a chunk, then the stream was reset; another request waits
        // on the backend (in flight, nothing to send yet).
        let watchdog = Watchdog::new(FIRST, IDLE);
        let mut reset = sending(&watchdog);
        poll_once(&mut reset).await;
        drop(reset);
        let _waiting = watchdog.activity().request_started();
        let verdict = tokio::time::timeout(IDLE * 4, watchdog.expired()).await;
        assert!(
            verdict.is_err(),
            "cut a request waiting on the backend: {verdict:?}"
        );

        // A stalled stream beside one whose client reads on.
        let watchdog = Watchdog::new(FIRST, IDLE);
        let mut stalled = sending(&watchdog);
        poll_once(&mut stalled).await;
        let mut read = sending(&watchdog);
        let reading = async {
            loop {
                poll_once(&mut read).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let verdict = tokio::select! {
            v = tokio::time::timeout(IDLE * 4, watchdog.expired()) => v,
            _ = reading => unreachable!(),
        };
        assert_eq!(verdict.ok(), Some(Expired::Unread));

        // Every answer asked for more within the idle timeout: nothing is cut.
        let watchdog = Watchdog::new(FIRST, IDLE);
        let mut one = sending(&watchdog);
        let mut two = sending(&watchdog);
        let reading = async {
            loop {
                poll_once(&mut one).await;
                poll_once(&mut two).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let verdict = tokio::select! {
            v = tokio::time::timeout(IDLE * 4, watchdog.expired()) => v,
            _ = reading => unreachable!(),
        };
        assert!(verdict.is_err(), "cut answers being read: {verdict:?}");
        // A sent (or dropped) answer leaves no mark behind.
        drop((one, two));
        assert!(watchdog.activity().unread.lock().unwrap().is_empty());
    }
}
