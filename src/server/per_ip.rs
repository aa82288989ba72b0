//! `listen.max_connections_per_ip`: connections one client address may hold open at once on
//! the data listener and the Kibana front together (off by default; one table for both, as
//! they share `listen.max_connections`). Without it one address can take every one of
//! `listen.max_connections`.
//!
//! Invariants:
//! - Counted per address at accept, before any byte is read (an address over its limit has its
//!   connection closed at once, unanswered, as nginx's `limit_conn` does for streams it cannot
//!   answer); the count ends with the connection (the [`Guard`] is held with its listener
//!   place), and the table holds only addresses with an open connection, so it is bounded by
//!   `listen.max_connections`.
//! - The TCP peer is counted, never a forwarded header (none is read yet). An IPv6 client is
//!   counted by its /64 (one host usually holds a whole /64, and would otherwise get a fresh
//!   limit per address); a v4-mapped address as its IPv4 address.
//! - Peers in `auth.trusted_proxies` are not counted: a proxy carries many clients' connections.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

pub(super) struct PerIp {
    max: usize,
    /// SipHash: the addresses are partly the clients' choice (ARCHITECTURE, foldhash).
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place under its address's limit, given back when dropped.
pub(crate) struct Guard {
    table: Arc<PerIp>,
    key: IpAddr,
}

impl PerIp {
    /// The table for a limit of `max` (0: no limit, no table).
    pub(super) fn new(max: usize) -> Option<Arc<PerIp>> {
        (max > 0).then(|| {
            Arc::new(PerIp {
                max,
                open: Mutex::default(),
            })
        })
    }

    /// A place for a connection from `ip`, or `None` when its address holds `max` already.
    pub(super) fn enter(self: &Arc<PerIp>, ip: IpAddr) -> Option<Guard> {
        self.enter_key(key(ip))
    }

    fn enter_key(self: &Arc<PerIp>, key: IpAddr) -> Option<Guard> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Guard {
            table: Arc::clone(self),
            key,
        })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

/// The address a [`Guard`] counts, to count more places of it: an HTTP/2 connection's streams
/// beyond its first each take one (`streams`), as nginx's `limit_conn` counts each HTTP/2
/// request as a connection.
#[derive(Clone)]
pub(super) struct Address {
    table: Arc<PerIp>,
    key: IpAddr,
}

impl Guard {
    pub(super) fn address(&self) -> Address {
        Address {
            table: Arc::clone(&self.table),
            key: self.key,
        }
    }
}

impl Address {
    /// One more place of this address, or `None` when it holds `max` already.
    pub(super) fn enter(&self) -> Option<Guard> {
        self.table.enter_key(self.key)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What an address is counted as: IPv4 as is (v4-mapped IPv6 included), IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match crate::policy::client_ip::canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_and_gets_its_places_back() {
        assert!(PerIp::new(0).is_none(), "0 is off");
        let table = PerIp::new(2).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = table.enter(a).unwrap();
        let second = table.enter(a).unwrap();
        assert!(table.enter(a).is_none(), "a third from one address");
        // The same address written as v4-mapped IPv6 is the same client.
        assert!(table.enter("::ffff:192.0.2.1".parse().unwrap()).is_none());
        let other = table.enter(b).unwrap();
        drop(first);
        let again = table.enter(a).unwrap();
        drop((second, again, other));
        assert_eq!(table.addresses(), 0, "no entry outlives its connections");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let table = PerIp::new(1).unwrap();
        let _held = table.enter("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(table
            .enter("2001:db8:1:2:ffff::9".parse().unwrap())
            .is_none());
        assert!(table.enter("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
}
