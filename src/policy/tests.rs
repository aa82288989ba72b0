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
        scores: None,
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
