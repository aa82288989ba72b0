//! HTTP/2 streams under `listen.max_connections` (rel20c), as nginx counts each stream as a
//! connection under `worker_connections`: an open stream is a request in flight costing about
//! 12 KiB of esgate's and hyper's state before any body (rel20b), so `h2_max_concurrent_streams`
//! streams on each of `max_connections` connections would be a million requests. A connection's
//! own place covers one stream at a time (an HTTP/1-like client pays nothing more); each stream
//! beyond it takes a place of the listener's (the data listener's and the Kibana front's
//! shared `places`) while it is in flight, and a stream that finds none free is answered at once
//! (503, `ProxyError::Connections`). With `listen.max_connections_per_ip`, such a stream also
//! takes one of its client address's places, as nginx's `limit_conn` counts each HTTP/2 request
//! as a connection: otherwise one address could hold `h2_max_concurrent_streams` times its
//! limit of the listener's places and keep every other client's new connections waiting.
//! HTTP/1 connections never look here.
//!
//! Invariant: a place taken is given back when the stream's answer is sent or dropped (the
//! stream reset, the connection gone), whichever way the request ends: it is held by the
//! service's future and then by the answer's body (`connection::Guarded`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::per_ip;

/// What a connection's streams beyond its first are counted under: the listener's places and,
/// with `listen.max_connections_per_ip`, the client address's (the connection's own address
/// entry; none for a trusted proxy's connection, which is not limited).
pub(super) struct Limits {
    pub(super) places: Arc<Semaphore>,
    pub(super) address: Option<per_ip::Address>,
}

/// One HTTP/2 connection's streams: the connection's own place, and the listener's places.
pub(super) struct Streams {
    /// Whether the connection's own place is free (no stream in flight holds it).
    own: Arc<AtomicBool>,
    limits: Limits,
}

/// A stream's place, given back when dropped.
pub(super) enum Place {
    /// The connection's own.
    Own(Arc<AtomicBool>),
    /// One of the listener's, and one of its address's when it is limited.
    Taken {
        _permit: OwnedSemaphorePermit,
        _address: Option<per_ip::Guard>,
    },
}

/// Why a stream found no place.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Full {
    /// No place of the listener's free (`listen.max_connections`).
    Places,
    /// Its address holds `listen.max_connections_per_ip` already (connections and streams).
    Address,
}

impl Streams {
    /// The streams of a connection that holds a place under `limits`.
    pub(super) fn new(limits: Limits) -> Streams {
        Streams {
            own: Arc::new(AtomicBool::new(true)),
            limits,
        }
    }

    /// A place for a stream that starts: the connection's own when free, else one of the
    /// listener's (and of its address's).
    pub(super) fn enter(&self) -> Result<Place, Full> {
        if self.own.swap(false, Ordering::Acquire) {
            return Ok(Place::Own(Arc::clone(&self.own)));
        }
        let address = match &self.limits.address {
            Some(address) => Some(address.enter().ok_or(Full::Address)?),
            None => None,
        };
        let permit = Arc::clone(&self.limits.places)
            .try_acquire_owned()
            .map_err(|_| Full::Places)?;
        Ok(Place::Taken {
            _permit: permit,
            _address: address,
        })
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
        let streams = unlimited(&places);
        let first = streams.enter().expect("the connection's own place");
        assert!(matches!(first, Place::Own(_)));
        assert_eq!(places.available_permits(), 2);
        let second = streams.enter().expect("a free place");
        let third = streams.enter().expect("the last free place");
        assert_eq!(places.available_permits(), 0);
        assert_eq!(streams.enter().err(), Some(Full::Places), "no place left");
        // The first stream ends: its place is the connection's, free for the next stream.
        drop(first);
        assert_eq!(places.available_permits(), 0);
        let fourth = streams.enter().expect("the connection's own place again");
        assert!(matches!(fourth, Place::Own(_)));
        assert!(streams.enter().is_err());
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
        let (a, b) = (unlimited(&places), unlimited(&places));
        let _a1 = a.enter().unwrap();
        let _b1 = b.enter().unwrap();
        let _a2 = a.enter().expect("the one free place");
        assert!(b.enter().is_err(), "taken by the other connection's stream");
    }

    fn unlimited(places: &Arc<Semaphore>) -> Streams {
        Streams::new(Limits {
            places: Arc::clone(places),
            address: None,
        })
    }

    /// With `listen.max_connections_per_ip`, a stream beyond a connection's first takes one of
    /// its address's places too: one address's connections and streams together hold at most
    /// that many, however many of the listener's places are free.
    #[test]
    fn streams_beyond_the_first_count_under_their_address() {
        let places = Arc::new(Semaphore::new(10));
        let table = per_ip::PerIp::new(2).unwrap();
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let connection = table.enter(ip).unwrap();
        let streams = Streams::new(Limits {
            places: Arc::clone(&places),
            address: Some(connection.address()),
        });
        let first = streams.enter().unwrap();
        let second = streams.enter().expect("the address's second place");
        assert_eq!(places.available_permits(), 9);
        assert_eq!(streams.enter().err(), Some(Full::Address));
        assert!(
            table.enter(ip).is_none(),
            "a new connection of the address too"
        );
        assert_eq!(places.available_permits(), 9, "nothing taken by a refusal");
        drop(second);
        assert_eq!(places.available_permits(), 10);
        let third = streams.enter().expect("its place came back");
        drop((first, third));
        assert!(table.enter(ip).is_some());
    }
}
