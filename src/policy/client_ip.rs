//! The client address: the socket peer, or from X-Forwarded-For / Forwarded when the peer is a
//! trusted proxy. SIGNATURES ONLY (placeholder bodies).

use std::net::IpAddr;

use ipnet::IpNet;

/// `forwarded_for`: every X-Forwarded-For header value in order; `forwarded`: every Forwarded
/// header value in order. Returns the right-most address that is not a trusted proxy.
/// Malformed forwarding headers from a trusted peer are an error (fail closed).
pub fn client_ip(
    peer: IpAddr,
    forwarded_for: &[&[u8]],
    forwarded: &[&[u8]],
    trusted: &[IpNet],
) -> Result<IpAddr, BadForwarding> {
    let _ = (forwarded_for, forwarded, trusted);
    Ok(peer)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed forwarding header from a trusted proxy")]
pub struct BadForwarding;

/// Canonical form for matching: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip
}

/// Whether `ip` falls in any of `cidrs` (after canonicalisation).
pub fn in_cidrs(ip: IpAddr, cidrs: &[IpNet]) -> bool {
    let _ = (ip, cidrs);
    false
}
