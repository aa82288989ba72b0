//! Per-token policy on the request path: expiry and the IP filter; and the client address.
//!
//! Invariant: pure (time and addresses are arguments).

pub mod client_ip;

use std::net::IpAddr;

use crate::store::model::{IpFilter, Token, UnixTime};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("token expired")]
    Expired,
    #[error("client address is not allowed by the token's IP filter")]
    IpNotAllowed,
    #[error("token configuration is incomplete: {0}")]
    Dangling(String),
    /// A share link (or its session or credential) that no longer opens anything.
    #[error("share link is not valid: {0}")]
    Link(&'static str),
}

/// Checks expiry and the IP filter. `ip_filter` is the token's named filter, looked up by the
/// caller; a token whose `ip_filter` names a missing filter is denied (fail closed).
///
/// Order: expiry (`now >= expires_at`), then a missing or mismatched filter, then the client
/// address against the filter's CIDRs (an empty CIDR list allows nothing). A filter passed for a
/// token that names none is still applied (more restrictive, never less).
pub fn check(
    token: &Token,
    ip_filter: Option<&IpFilter>,
    client_ip: IpAddr,
    now: UnixTime,
) -> Result<(), Denied> {
    check_address(token, ip_filter, Some(client_ip), now)
}

/// [`check`], where `client_ip` may be unknown (`POST /explain` without a `client_ip`): then
/// everything but the address match is checked (expiry, a missing IP filter still denies).
pub fn check_address(
    token: &Token,
    ip_filter: Option<&IpFilter>,
    client_ip: Option<IpAddr>,
    now: UnixTime,
) -> Result<(), Denied> {
    if token.is_expired(now) {
        return Err(Denied::Expired);
    }
    let filter = match (token.ip_filter.as_deref(), ip_filter) {
        (Some(name), None) => {
            return Err(Denied::Dangling(format!(
                "IP filter '{name}' does not exist"
            )));
        }
        (Some(name), Some(filter)) if filter.name != name => {
            return Err(Denied::Dangling(format!(
                "IP filter '{name}' does not exist"
            )));
        }
        (_, filter) => filter,
    };
    match (filter, client_ip) {
        (Some(filter), Some(ip)) if !client_ip::in_cidrs(ip, &filter.cidrs) => {
            Err(Denied::IpNotAllowed)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
