//! hyper's timer for one HTTP/1 connection's head reads (`listen.header_timeout`, hyper's own
//! rule: a head must be read whole within it of the moment hyper starts reading it, the wait
//! for a kept-alive connection's next request included), with one tokio timer entry kept for
//! the connection's life.
//!
//! hyper (1.13) asks its timer for a new sleep each time it starts reading a head and drops it
//! once the head is read. With hyper-util's `TokioTimer` that was, on every request, a boxed
//! `tokio::time::Sleep` entered in the runtime's timer wheel when first polled (the driver's
//! lock and an insert; and when its deadline came before every other timer of the runtime,
//! which is often the case on a worker whose other timers are the connections' 60 s ones, a
//! write to the runtime's eventfd and an `epoll_wait` more, tokio issue #5207) and taken out
//! again when dropped (the lock and a removal). Here a connection's one sleep is lent to each
//! head read and comes back, still entered, when hyper drops it; the next head's deadline,
//! later than the last one's, only moves its expiry (`Sleep::reset` to a later instant is an
//! atomic compare-and-swap: tokio files the entry again when the old expiry comes up).
//!
//! The deadline is hyper's own (its `now()` plus the timeout, as before), and a sleep fires at
//! it as a new one would. A sleep handed back keeps its last deadline, so when no head read
//! starts before it passes (a request in flight for longer than `header_timeout`), the
//! connection's task is woken once for nothing (hyper finds nothing to do); HTTP/2 connections
//! keep hyper-util's timer (their timers are per connection, not per request).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// The sleep a connection's head reads share.
type Entry = Pin<Box<tokio::time::Sleep>>;

/// One HTTP/1 connection's timer (`http1::Builder::timer`): made per connection.
#[derive(Default)]
pub(super) struct HeadTimer {
    /// The connection's sleep while no head read holds it (none before the first).
    spare: Arc<Mutex<Option<Entry>>>,
}

impl HeadTimer {
    /// A sleep until `deadline`: the connection's own, when no other read holds it.
    fn lend(&self, deadline: tokio::time::Instant) -> Lent {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let entry = match spare {
            Some(mut entry) => {
                entry.as_mut().reset(deadline);
                entry
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Lent {
            entry: Some(entry),
            home: Arc::clone(&self.spare),
        }
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        // As `tokio::time::sleep`: a duration past what an `Instant` holds waits "forever".
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(duration)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        Box::pin(self.lend(deadline))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.lend(deadline.into()))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Lent>() {
            Some(lent) => lent.reset(new_deadline.into()),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into()
    }
}

/// A head read's sleep; dropped, it goes back to its connection's timer.
struct Lent {
    /// Always `Some` until dropped.
    entry: Option<Entry>,
    home: Arc<Mutex<Option<Entry>>>,
}

impl Lent {
    fn reset(self: Pin<&mut Self>, deadline: tokio::time::Instant) {
        if let Some(entry) = &mut self.get_mut().entry {
            entry.as_mut().reset(deadline);
        }
    }
}

impl Future for Lent {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.get_mut().entry {
            Some(entry) => entry.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Sleep for Lent {}

impl Drop for Lent {
    fn drop(&mut self) {
        let mut home = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        // A second sleep lent meanwhile (hyper holds one at a time) keeps its own.
        if home.is_none() {
            *home = self.entry.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_address(timer: &HeadTimer) -> Option<*const tokio::time::Sleep> {
        let spare = timer.spare.lock().unwrap();
        spare.as_ref().map(|e| &**e as *const tokio::time::Sleep)
    }

    /// Polls `sleep` once, as hyper does while a head has not come (which enters it).
    async fn pending(sleep: &mut Pin<Box<dyn Sleep>>) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx).is_pending())).await
    }

    fn in_ms(timer: &HeadTimer, ms: u64) -> Instant {
        timer.now() + Duration::from_millis(ms)
    }

    /// Each head read's sleep is the connection's one entry, moved to the new deadline: none is
    /// made (and entered in the timer wheel) per request. With hyper-util's timer (a new sleep
    /// each time, dropped by hyper) nothing comes back.
    #[tokio::test]
    async fn a_connections_head_reads_share_one_sleep() {
        let timer = HeadTimer::default();
        let mut first = timer.sleep_until(in_ms(&timer, 30_000));
        // Polled as hyper polls it while the head has not come: entered.
        assert!(pending(&mut first).await);
        drop(first);
        let entered = entry_address(&timer).expect("the sleep came back");
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let mut next = timer.sleep_until(in_ms(&timer, 30_000));
            assert_eq!(entry_address(&timer), None, "lent");
            assert!(pending(&mut next).await);
            drop(next);
            assert_eq!(entry_address(&timer), Some(entered), "a new sleep was made");
        }
    }

    /// A reused sleep fires at its new deadline, not at the one it had before; one handed back
    /// after it fired waits anew; an earlier deadline (hyper's `reset`) is kept too.
    #[tokio::test]
    async fn a_reused_sleep_fires_at_its_own_deadline() {
        let timer = HeadTimer::default();
        let mut first = timer.sleep(Duration::from_millis(100));
        assert!(pending(&mut first).await);
        drop(first);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let started = std::time::Instant::now();
        let mut second = timer.sleep_until(in_ms(&timer, 300));
        assert!(pending(&mut second).await);
        // Well past the first deadline.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(pending(&mut second).await, "fired at the old deadline");
        second.as_mut().await;
        assert!(started.elapsed() >= Duration::from_millis(300));

        drop(second);
        let started = std::time::Instant::now();
        let mut third = timer.sleep_until(in_ms(&timer, 100));
        assert!(pending(&mut third).await);
        third.as_mut().await;
        assert!(started.elapsed() >= Duration::from_millis(100));

        let started = std::time::Instant::now();
        let mut fourth = timer.sleep_until(in_ms(&timer, 60_000));
        assert!(pending(&mut fourth).await);
        timer.reset(&mut fourth, in_ms(&timer, 100));
        tokio::time::timeout(Duration::from_secs(20), fourth.as_mut())
            .await
            .expect("fired at the earlier deadline");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    /// Two sleeps at once (hyper holds one at a time) are two entries, each with its deadline.
    #[tokio::test]
    async fn sleeps_lent_at_once_keep_their_own_deadlines() {
        let timer = HeadTimer::default();
        let started = std::time::Instant::now();
        let mut long = timer.sleep_until(in_ms(&timer, 400));
        let short = timer.sleep_until(in_ms(&timer, 100));
        short.await;
        let at = started.elapsed();
        assert!(at >= Duration::from_millis(100), "{at:?}");
        assert!(pending(&mut long).await || at >= Duration::from_millis(400));
        long.await;
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(entry_address(&timer).is_some());
    }
}
