//! Host name lookups for esgate's connections (the backend nodes', the Kibana front's), one at
//! a time per name.
//!
//! The system resolver (`getaddrinfo`) blocks a thread of the runtime's blocking pool until it
//! answers, however long after the connect that wanted the answer gave up (glibc: 5 s a try,
//! twice on each name server). When every connect started its own lookup (rel23), each request
//! that tried a node while its name servers stalled left a thread behind, up to tokio's 512 a
//! runtime, then a queue of lookups that grew with the request rate.
//!
//! Invariant: at most one lookup of a [`Lookup`]'s name is under way; a caller that finds one
//! waits for its answer (within its own connect's time limit). Answers are not kept: the first
//! caller after a lookup ended starts the next one, so a changed address is seen at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// Resolves a host name, blocking (the system resolver; a stalling one in tests).
pub(crate) type Resolve = fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

/// The system resolver.
pub(crate) fn system(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect)
}

/// A lookup's answer, once it came: the addresses, or why there are none.
type Answer = tokio::sync::watch::Receiver<Option<Result<Vec<SocketAddr>, String>>>;

/// One host name's lookups (an IP address is its own answer).
pub(crate) struct Lookup {
    host: String,
    port: u16,
    under_way: Mutex<Option<Answer>>,
}

impl Lookup {
    /// `host` (no brackets around an IPv6 address), its addresses given `port`.
    pub(crate) fn new(host: &str, port: u16) -> Lookup {
        Lookup {
            host: host.to_owned(),
            port,
            under_way: Mutex::default(),
        }
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    #[cfg(test)]
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The addresses: from the lookup under way, else from a new one by `resolve` on the
    /// runtime's blocking pool. The error names the host and why, never more.
    pub(crate) async fn addresses(&self, resolve: Resolve) -> Result<Vec<SocketAddr>, String> {
        let host = &self.host;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let mut answer = {
            let mut under_way = self.under_way.lock().unwrap_or_else(|p| p.into_inner());
            match &*under_way {
                // No answer yet, and its thread still holds the sender.
                Some(a) if a.borrow().is_none() && a.has_changed().is_ok() => a.clone(),
                _ => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    let (name, port) = (host.clone(), self.port);
                    drop(tokio::task::spawn_blocking(move || {
                        let found = resolve(&name, port).map_err(|e| e.to_string());
                        tx.send_replace(Some(found));
                    }));
                    *under_way = Some(rx.clone());
                    rx
                }
            }
        };
        let found = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| format!("resolving {host}: the lookup failed"))?;
        match &*found {
            Some(Ok(addrs)) if addrs.is_empty() => Err(format!("{host} resolved to no address")),
            Some(Ok(addrs)) => Ok(addrs.clone()),
            Some(Err(e)) => Err(format!("resolving {host}: {e}")),
            None => Err(format!("resolving {host}: no answer")),
        }
    }
}

/// The Kibana front's resolver (hyper-util's connector asks it; it sets the port): Kibana's
/// host through its [`Lookup`], any other name (none is asked) by a lookup of its own.
#[derive(Clone)]
pub(crate) struct Shared(pub(crate) std::sync::Arc<Lookup>);

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for Shared {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, std::io::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let lookup = if name.as_str() == self.0.host() {
            std::sync::Arc::clone(&self.0)
        } else {
            std::sync::Arc::new(Lookup::new(name.as_str(), 0))
        };
        Box::pin(async move {
            lookup
                .addresses(system)
                .await
                .map(Vec::into_iter)
                .map_err(std::io::Error::other)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    /// The system resolver's answer, for a node and for the Kibana front's connector (which
    /// sets the port itself); an IP address is its own answer, never looked up.
    #[tokio::test(flavor = "current_thread")]
    async fn names_resolve_through_the_system_resolver_and_addresses_are_their_own() {
        let node = Lookup::new("localhost", 9200);
        let addrs = node.addresses(system).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9200));

        let mut front = Shared(std::sync::Arc::new(Lookup::new("localhost", 0)));
        let name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = front.call(name).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));

        let never = |_: &str, _: u16| -> std::io::Result<Vec<SocketAddr>> {
            panic!("an IP address is not looked up")
        };
        let ip = Lookup::new("::1", 9200);
        assert_eq!(
            ip.addresses(never).await.unwrap(),
            vec!["[::1]:9200".parse::<SocketAddr>().unwrap()]
        );
        let nowhere = Lookup::new("nowhere.test", 9200);
        let failing = |_: &str, _: u16| -> std::io::Result<Vec<SocketAddr>> { Ok(vec![]) };
        assert_eq!(
            nowhere.addresses(failing).await.unwrap_err(),
            "nowhere.test resolved to no address"
        );
    }
}
