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
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::model::{Permission, SecretHash};

    fn token(expires_at: Option<UnixTime>, ip_filter: Option<&str>) -> Token {
        Token {
            id: "t1".into(),
            name: "test".into(),
            secret_hash: SecretHash([7; 32]),
            filters: vec![],
            indices: vec!["*".into()],
            permissions: BTreeSet::from([Permission::Read]),
            created_at: 0,
            expires_at,
            ip_filter: ip_filter.map(str::to_owned),
            previous_secret: None,
            limits: Default::default(),
            kibana_spaces: vec!["default".into()],
        }
    }

    fn filter(name: &str, cidrs: &[&str]) -> IpFilter {
        IpFilter {
            name: name.into(),
            cidrs: cidrs
                .iter()
                .map(|c| c.parse().expect("test cidr"))
                .collect(),
            created_at: 0,
        }
    }

    #[test]
    fn policy_decisions() {
        let office = filter("office", &["192.0.2.0/24", "2001:db8::/32"]);
        let empty = filter("office", &[]);
        let other = filter("other", &["0.0.0.0/0"]);
        let dangling = Err(Denied::Dangling("IP filter 'office' does not exist".into()));
        // (case, token, its IP filter, client address, now, expected)
        type Case<'a> = (
            &'a str,
            Token,
            Option<&'a IpFilter>,
            &'a str,
            UnixTime,
            Result<(), Denied>,
        );
        let cases: Vec<Case> = vec![
            (
                "no expiry, no filter",
                token(None, None),
                None,
                "203.0.113.1",
                100,
                Ok(()),
            ),
            (
                "before expiry",
                token(Some(101), None),
                None,
                "203.0.113.1",
                100,
                Ok(()),
            ),
            (
                "at expiry",
                token(Some(100), None),
                None,
                "203.0.113.1",
                100,
                Err(Denied::Expired),
            ),
            (
                "after expiry",
                token(Some(50), None),
                None,
                "203.0.113.1",
                100,
                Err(Denied::Expired),
            ),
            (
                "expiry is checked before the filter",
                token(Some(50), Some("office")),
                None,
                "192.0.2.1",
                100,
                Err(Denied::Expired),
            ),
            (
                "missing filter",
                token(None, Some("office")),
                None,
                "192.0.2.1",
                100,
                dangling.clone(),
            ),
            (
                "filter with another name",
                token(None, Some("office")),
                Some(&other),
                "192.0.2.1",
                100,
                dangling,
            ),
            (
                "inside v4",
                token(None, Some("office")),
                Some(&office),
                "192.0.2.77",
                100,
                Ok(()),
            ),
            (
                "inside mapped",
                token(None, Some("office")),
                Some(&office),
                "::ffff:192.0.2.77",
                100,
                Ok(()),
            ),
            (
                "inside v6",
                token(None, Some("office")),
                Some(&office),
                "2001:db8::9",
                100,
                Ok(()),
            ),
            (
                "outside",
                token(None, Some("office")),
                Some(&office),
                "198.51.100.1",
                100,
                Err(Denied::IpNotAllowed),
            ),
            (
                "empty filter allows nothing",
                token(None, Some("office")),
                Some(&empty),
                "192.0.2.77",
                100,
                Err(Denied::IpNotAllowed),
            ),
            (
                "unnamed filter is still applied",
                token(None, None),
                Some(&office),
                "198.51.100.1",
                100,
                Err(Denied::IpNotAllowed),
            ),
        ];
        for (name, token, filter, ip, now, want) in cases {
            let ip: IpAddr = ip.parse().expect("test address");
            assert_eq!(check(&token, filter, ip, now), want, "{name}");
        }
    }
}
