//! HTTP/2 streams under `listen.max_connections` (rel20c), as nginx counts each stream as a
//! connection under `worker_connections`: an open stream is a request in flight costing about
//! 12 KiB of esgate's and hyper's state before any body (rel20b), so `h2_max_concurrent_streams`
//! streams on each of `max_connections` connections would be a million requests. A connection's
//! own place covers one stream at a time (an HTTP/1-like client pays nothing more); each stream
//! beyond it takes a place of the listener's (the data listener's and the Kibana front's
//! shared `places`) while it is in flight, and a stream that finds none free is answered at once
//! (503, `ProxyError::Connections`). HTTP/1 connections never look here.
//!
//! Invariant: a place taken is given back when the stream's answer is sent or dropped (the
//! stream reset, the connection gone), whichever way the request ends: it is held by the
//! service's future and then by the answer's body (`connection::Guarded`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One HTTP/2 connection's streams: the connection's own place, and the listener's places.
pub(super) struct Streams {
    /// Whether the connection's own place is free (no stream in flight holds it).
    own: Arc<AtomicBool>,
    places: Arc<Semaphore>,
}

/// A stream's place, given back when dropped.
pub(super) enum Place {
    /// The connection's own.
    Own(Arc<AtomicBool>),
    /// One of the listener's.
    Taken { _permit: OwnedSemaphorePermit },
}

impl Streams {
    /// The streams of a connection that holds a place of `places`.
    pub(super) fn new(places: Arc<Semaphore>) -> Streams {
        Streams {
            own: Arc::new(AtomicBool::new(true)),
            places,
        }
    }

    /// A place for a stream that starts: the connection's own when free, else one of the
    /// listener's; `None` when there is none.
    pub(super) fn enter(&self) -> Option<Place> {
        if self.own.swap(false, Ordering::Acquire) {
            return Some(Place::Own(Arc::clone(&self.own)));
        }
        Arc::clone(&self.places)
            .try_acquire_owned()
            .ok()
            .map(|_permit| Place::Taken { _permit })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Place::Own(own) = self {
            own.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection's own place covers one stream; the others take the listener's places
    /// while they are in flight, and give them back, whichever ends first.
    #[test]
    fn a_connection_holds_one_stream_on_its_own_place_and_the_rest_on_free_places() {
        let places = Arc::new(Semaphore::new(2));
        let streams = Streams::new(Arc::clone(&places));
        let first = streams.enter().expect("the connection's own place");
        assert!(matches!(first, Place::Own(_)));
        assert_eq!(places.available_permits(), 2);
        let second = streams.enter().expect("a free place");
        let third = streams.enter().expect("the last free place");
        assert_eq!(places.available_permits(), 0);
        assert!(streams.enter().is_none(), "no place left");
        // The first stream ends: its place is the connection's, free for the next stream.
        drop(first);
        assert_eq!(places.available_permits(), 0);
        let fourth = streams.enter().expect("the connection's own place again");
        assert!(matches!(fourth, Place::Own(_)));
        assert!(streams.enter().is_none());
        // A stream on a listener's place ends: the place goes back to the listener.
        drop(second);
        assert_eq!(places.available_permits(), 1);
        drop((third, fourth));
        assert_eq!(places.available_permits(), 2);
        assert!(streams.own.load(Ordering::Relaxed));
    }

    /// Two connections share the listener's places; each keeps its own.
    #[test]
    fn connections_share_the_listeners_places() {
        let places = Arc::new(Semaphore::new(1));
        let (a, b) = (
            Streams::new(Arc::clone(&places)),
            Streams::new(Arc::clone(&places)),
        );
        let _a1 = a.enter().unwrap();
        let _b1 = b.enter().unwrap();
        let _a2 = a.enter().expect("the one free place");
        assert!(
            b.enter().is_none(),
            "taken by the other connection's stream"
        );
    }
}
