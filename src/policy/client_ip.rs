//! The client address (security.md G5): the socket peer, or, when the peer is a trusted proxy,
//! the right-most untrusted address of X-Forwarded-For (or, without XFF, of `Forwarded: for=`).
//!
//! Invariants: forwarding headers from an untrusted peer are ignored entirely; from a trusted
//! peer they must be present and well-formed where they are read, otherwise the request fails
//! closed with [`BadForwarding`]; addresses are parsed only with `std::net` (which refuses odd
//! IPv4 spellings such as `010.0.0.1` or `0x7f.1`) and compared in canonical form (IPv4-mapped
//! IPv6 as IPv4). Pure: no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

/// `forwarded_for`: every X-Forwarded-For header value in order; `forwarded`: every Forwarded
/// header value in order. Returns the right-most address that is not a trusted proxy.
/// Malformed forwarding headers from a trusted peer are an error (fail closed).
///
/// Entries left of the returned address are not examined (they are the client's own claims), so
/// a client's garbage there cannot fail its request. A trusted peer that sends no forwarding
/// header at all is also `BadForwarding`: a proxy that is trusted to name the client must name it.
/// When every listed address is trusted, the left-most one is the client.
pub fn client_ip(
    peer: IpAddr,
    forwarded_for: &[&[u8]],
    forwarded: &[&[u8]],
    trusted: &[IpNet],
) -> Result<IpAddr, BadForwarding> {
    let peer = canonical(peer);
    if !in_cidrs(peer, trusted) {
        return Ok(peer);
    }
    // Both headers at once: one of them may come from the client, and esgate cannot tell
    // which one the trusted proxy wrote. Fail closed.
    if !forwarded_for.is_empty() && !forwarded.is_empty() {
        return Err(BadForwarding);
    }
    let entries = if !forwarded_for.is_empty() {
        xff_entries(forwarded_for)?
    } else if !forwarded.is_empty() {
        forwarded_entries(forwarded)?
    } else {
        return Err(BadForwarding);
    };
    let mut leftmost = None;
    for entry in entries.iter().rev() {
        let ip = canonical(entry.parse()?);
        if !in_cidrs(ip, trusted) {
            return Ok(ip);
        }
        leftmost = Some(ip);
    }
    leftmost.ok_or(BadForwarding)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed forwarding header from a trusted proxy")]
pub struct BadForwarding;

/// Canonical form for matching: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether `ip` falls in any of `cidrs` (after canonicalisation).
pub fn in_cidrs(ip: IpAddr, cidrs: &[IpNet]) -> bool {
    let ip = canonical(ip);
    cidrs.iter().any(|net| canonical_net(*net).contains(&ip))
}

// === internals ===

/// `::ffff:a.b.c.d/n` (n >= 96) becomes `a.b.c.d/(n-96)`, so it matches canonical addresses.
pub fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.network().to_ipv4_mapped() {
                if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

/// One address as a forwarding header spells it, not yet parsed.
enum Entry {
    /// An X-Forwarded-For element: a bare address.
    Xff(String),
    /// A `Forwarded` element's `for=` value (unquoted), or `None` if the element has no `for`.
    Forwarded(Option<String>),
}

impl Entry {
    fn parse(&self) -> Result<IpAddr, BadForwarding> {
        match self {
            Entry::Xff(text) => text.parse().map_err(|_| BadForwarding),
            Entry::Forwarded(Some(value)) => parse_forwarded_node(value),
            Entry::Forwarded(None) => Err(BadForwarding),
        }
    }
}

fn header_text(value: &[u8]) -> Result<&str, BadForwarding> {
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(BadForwarding);
    }
    std::str::from_utf8(value).map_err(|_| BadForwarding)
}

/// Every comma-separated element of every XFF value, in order, trimmed.
fn xff_entries(values: &[&[u8]]) -> Result<Vec<Entry>, BadForwarding> {
    let mut out = Vec::new();
    for value in values {
        for part in header_text(value)?.split(',') {
            out.push(Entry::Xff(part.trim_matches([' ', '\t']).to_owned()));
        }
    }
    Ok(out)
}

/// The `for=` value of every element of every `Forwarded` value (RFC 7239), in order. The
/// syntax itself (pairs, quoting) must be well-formed throughout.
fn forwarded_entries(values: &[&[u8]]) -> Result<Vec<Entry>, BadForwarding> {
    let mut out = Vec::new();
    for value in values {
        for element in split_forwarded(header_text(value)?)? {
            let mut node = None;
            for (name, val) in element {
                if name.eq_ignore_ascii_case("for") {
                    if node.is_some() {
                        return Err(BadForwarding);
                    }
                    node = Some(val);
                }
            }
            out.push(Entry::Forwarded(node));
        }
    }
    Ok(out)
}

/// Splits one `Forwarded` value into elements of `(name, unquoted value)` pairs, honouring
/// quoted strings (which may contain `,`, `;` and `\`-escapes).
fn split_forwarded(text: &str) -> Result<Vec<Vec<(String, String)>>, BadForwarding> {
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // Optional whitespace, then a name.
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| is_tchar(*c)) {
            name.push(c);
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err(BadForwarding);
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.push(chars.next().ok_or(BadForwarding)?),
                    Some(c) => value.push(c),
                    None => return Err(BadForwarding),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| is_tchar(*c)) {
                value.push(c);
            }
            if value.is_empty() {
                return Err(BadForwarding);
            }
        }
        pairs.push((name, value));
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match chars.next() {
            Some(';') => {}
            Some(',') => elements.push(std::mem::take(&mut pairs)),
            None => {
                elements.push(pairs);
                return Ok(elements);
            }
            Some(_) => return Err(BadForwarding),
        }
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A `for=` node: `v4`, `v4:port`, `[v6]`, `[v6]:port`. `unknown`, obfuscated identifiers and
/// bare IPv6 are refused.
fn parse_forwarded_node(value: &str) -> Result<IpAddr, BadForwarding> {
    if let Some(rest) = value.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or(BadForwarding)?;
        if !after.is_empty() {
            check_port(after.strip_prefix(':').ok_or(BadForwarding)?)?;
        }
        let v6: Ipv6Addr = addr.parse().map_err(|_| BadForwarding)?;
        return Ok(IpAddr::V6(v6));
    }
    let addr = match value.split_once(':') {
        Some((addr, port)) => {
            check_port(port)?;
            addr
        }
        None => value,
    };
    let v4: Ipv4Addr = addr.parse().map_err(|_| BadForwarding)?;
    Ok(IpAddr::V4(v4))
}

/// A decimal port, or an obfuscated one (`_` + [A-Za-z0-9._-]), as RFC 7239 allows.
fn check_port(port: &str) -> Result<(), BadForwarding> {
    let decimal = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = match port.strip_prefix('_') {
        Some(id) => {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        }
        None => false,
    };
    if decimal || obfuscated {
        Ok(())
    } else {
        Err(BadForwarding)
    }
}

#[cfg(test)]
mod both_headers_tests {
    use super::*;

    #[test]
    fn both_forwarding_headers_from_a_trusted_peer_are_refused() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &[b"203.0.113.7"], &[b"for=198.51.100.9"], &trusted),
            Err(BadForwarding)
        );
        // From an untrusted peer both are ignored.
        let outsider: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(
                outsider,
                &[b"203.0.113.7"],
                &[b"for=198.51.100.9"],
                &trusted
            ),
            Ok(outsider)
        );
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("test cidr")).collect()
    }

    fn check(
        peer: &str,
        xff: &[&str],
        fwd: &[&str],
        trusted: &[&str],
    ) -> Result<IpAddr, BadForwarding> {
        let xff: Vec<&[u8]> = xff.iter().map(|s| s.as_bytes()).collect();
        let fwd: Vec<&[u8]> = fwd.iter().map(|s| s.as_bytes()).collect();
        client_ip(ip(peer), &xff, &fwd, &nets(trusted))
    }

    const LB: &[&str] = &["10.0.0.0/8", "fd00::/8"];

    #[test]
    fn untrusted_peer_is_the_client_and_spoofed_headers_are_ignored() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("203.0.113.9", &[], &[]),
            ("203.0.113.9", &["10.1.1.1"], &[]),
            (
                "203.0.113.9",
                &["198.51.100.1, 10.0.0.1"],
                &["for=10.0.0.2"],
            ),
            ("203.0.113.9", &["garbage"], &["nonsense"]),
        ];
        for (peer, xff, fwd) in cases {
            assert_eq!(check(peer, xff, fwd, LB), Ok(ip(peer)), "{xff:?} {fwd:?}");
        }
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_xff_address() {
        let cases: &[(&[&str], &str)] = &[
            (&["198.51.100.1"], "198.51.100.1"),
            (&["198.51.100.1, 10.0.0.5"], "198.51.100.1"),
            (&["1.1.1.1, 198.51.100.1, 10.0.0.5"], "198.51.100.1"),
            (&["1.1.1.1,198.51.100.1 ,\t10.0.0.5"], "198.51.100.1"),
            // Several header lines are one list, in order.
            (&["1.1.1.1", "198.51.100.1", "10.0.0.5"], "198.51.100.1"),
            (&["198.51.100.1", "10.0.0.5, 10.0.0.6"], "198.51.100.1"),
            // Garbage left of the client's address is the client's own claim: not examined.
            (&["not-an-ip, 198.51.100.1, 10.0.0.5"], "198.51.100.1"),
            // All trusted: the left-most.
            (&["10.0.0.7, 10.0.0.5"], "10.0.0.7"),
            // IPv6 and IPv4-mapped IPv6.
            (&["2001:db8::1, fd00::2"], "2001:db8::1"),
            (&["::ffff:198.51.100.1"], "198.51.100.1"),
            (&["198.51.100.1, ::ffff:10.0.0.5"], "198.51.100.1"),
        ];
        for (xff, want) in cases {
            assert_eq!(check("10.0.0.1", xff, &[], LB), Ok(ip(want)), "{xff:?}");
        }
    }

    #[test]
    fn mapped_ipv6_peer_is_trusted_by_its_ipv4_cidr() {
        assert_eq!(
            check("::ffff:10.0.0.1", &["198.51.100.1"], &[], LB),
            Ok(ip("198.51.100.1"))
        );
        // And the untrusted mapped peer is reported as IPv4.
        assert_eq!(
            check("::ffff:203.0.113.9", &["1.2.3.4"], &[], LB),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn malformed_xff_from_trusted_peer_fails_closed() {
        let cases: &[&[&str]] = &[
            &[""],
            &["198.51.100.1, "],
            &["198.51.100.1,,10.0.0.5"],
            &["unknown"],
            &["198.51.100.1:8080"],
            &["[2001:db8::1]"],
            &["010.0.0.1"],
            &["0x7f.0.0.1"],
            &["127.1"],
            &["1.2.3.4.5"],
            &["198.51.100.1\0"],
            &["198.51.100.1, 10.0.0.5, bogus"],
            // attack20b: zone ids, short, hex and bracketed forms, a port on IPv6.
            &["fe80::1%eth0"],
            &["fe80::1%25eth0"],
            &["10.1"],
            &["0x0a.0.0.1"],
            &["[::1]:80"],
            &["::ffff:10.0.0.1:80"],
        ];
        for xff in cases {
            assert_eq!(
                check("10.0.0.1", xff, &[], LB),
                Err(BadForwarding),
                "{xff:?}"
            );
        }
        assert_eq!(
            client_ip(ip("10.0.0.1"), &[b"198.51.100.1\xff"], &[], &nets(LB)),
            Err(BadForwarding)
        );
    }

    #[test]
    fn trusted_peer_without_forwarding_headers_fails_closed() {
        assert_eq!(check("10.0.0.1", &[], &[], LB), Err(BadForwarding));
    }

    #[test]
    fn forwarded_is_used_only_without_xff() {
        // Both at once is ambiguous: refused (see both_headers_tests).
        assert_eq!(
            check("10.0.0.1", &["198.51.100.1"], &["for=203.0.113.1"], LB),
            Err(BadForwarding)
        );
        assert_eq!(
            check("10.0.0.1", &[], &["for=203.0.113.1"], LB),
            Ok(ip("203.0.113.1"))
        );
    }

    #[test]
    fn forwarded_for_values_in_every_form() {
        let cases: &[(&[&str], &str)] = &[
            (&["for=198.51.100.1"], "198.51.100.1"),
            (&["For=198.51.100.1"], "198.51.100.1"),
            (&["for=\"198.51.100.1:4711\""], "198.51.100.1"),
            (&["for=\"[2001:db8:cafe::17]\""], "2001:db8:cafe::17"),
            (&["for=\"[2001:db8:cafe::17]:4711\""], "2001:db8:cafe::17"),
            (&["for=\"[::ffff:198.51.100.1]:80\""], "198.51.100.1"),
            (
                &["for=198.51.100.1;proto=https;by=10.0.0.1"],
                "198.51.100.1",
            ),
            (&["proto=https;for=198.51.100.1"], "198.51.100.1"),
            (&["for=198.51.100.1, for=10.0.0.5"], "198.51.100.1"),
            (
                &["for=1.1.1.1, for=198.51.100.1;by=\"x,y\", for=10.0.0.5"],
                "198.51.100.1",
            ),
            (
                &["for=1.1.1.1", "for=198.51.100.1", "for=10.0.0.5"],
                "198.51.100.1",
            ),
            (&["for=\"198.51.100.1:_hidden\""], "198.51.100.1"),
            // Left of the client: not examined.
            (&["for=unknown, for=198.51.100.1"], "198.51.100.1"),
            (&["for=10.0.0.9, for=10.0.0.5"], "10.0.0.9"),
        ];
        for (fwd, want) in cases {
            assert_eq!(check("10.0.0.1", &[], fwd, LB), Ok(ip(want)), "{fwd:?}");
        }
    }

    #[test]
    fn malformed_forwarded_from_trusted_peer_fails_closed() {
        let cases: &[&[&str]] = &[
            &[""],
            &["for="],
            &["for"],
            &["198.51.100.1"],
            &["for=unknown"],
            &["for=_hidden"],
            &["for=\"2001:db8::1\""],
            &["for=\"[2001:db8::1\""],
            &["for=\"[2001:db8::1]x\""],
            &["for=\"198.51.100.1:\""],
            // A port needs quoting (`:` is not a token character).
            &["for=198.51.100.1:4711"],
            &["for=\"198.51.100.1:123456\""],
            &["for=\"198.51.100.1"],
            &["for=198.51.100.1;for=1.2.3.4"],
            &["proto=https"],
            &["for=198.51.100.1,"],
            &["for=198.51.100.1 junk"],
            &["for=010.0.0.1"],
            // attack20b: a zone id, a short IPv4.
            &["for=\"[fe80::1%eth0]\""],
            &["for=\"[fe80::1%25eth0]:80\""],
            &["for=10.1"],
            // Syntax errors anywhere in the header are refused, even left of the client.
            &["for=\"unterminated, for=198.51.100.1"],
        ];
        for fwd in cases {
            assert_eq!(
                check("10.0.0.1", &[], fwd, LB),
                Err(BadForwarding),
                "{fwd:?}"
            );
        }
    }

    #[test]
    fn std_refuses_odd_ipv4_spellings() {
        for odd in [
            "010.0.0.1",
            "0x7f.0.0.1",
            "0x7f.1",
            "127.1",
            "2130706433",
            "1.2.3.04",
            " 1.2.3.4",
        ] {
            assert!(IpAddr::from_str(odd).is_err(), "{odd}");
        }
        assert!(IpAddr::from_str("10.0.0.1").is_ok());
    }

    #[test]
    fn canonical_maps_only_ipv4_mapped_ipv6() {
        let cases = [
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("192.0.2.1", "192.0.2.1"),
            ("::192.0.2.1", "::192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::1", "::1"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(ip(input)), ip(want), "{input}");
        }
    }

    #[test]
    fn in_cidrs_canonicalises_both_sides() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("192.0.2.1", &["192.0.2.0/24"], true),
            ("::ffff:192.0.2.1", &["192.0.2.0/24"], true),
            ("192.0.2.1", &["::ffff:192.0.2.0/120"], true),
            ("::ffff:192.0.2.1", &["::ffff:192.0.2.0/120"], true),
            ("192.0.3.1", &["::ffff:192.0.2.0/120"], false),
            ("192.0.2.1", &["::ffff:0:0/96"], true),
            ("192.0.2.1", &["2001:db8::/32", "192.0.2.128/25"], false),
            ("2001:db8::5", &["2001:db8::/32"], true),
            ("2001:db8::5", &[], false),
            ("192.0.2.1", &["0.0.0.0/0"], true),
            ("2001:db8::5", &["0.0.0.0/0"], false),
        ];
        for (addr, list, want) in cases {
            assert_eq!(in_cidrs(ip(addr), &nets(list)), *want, "{addr} in {list:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_forwarding_headers_never_panic_and_are_ignored_from_untrusted_peers(
            xff in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..3),
            fwd in proptest::collection::vec("[ -~]{0,40}", 0..3),
        ) {
            let xff: Vec<&[u8]> = xff.iter().map(|v| v.as_slice()).collect();
            let fwd: Vec<&[u8]> = fwd.iter().map(|v| v.as_bytes()).collect();
            let _ = client_ip(ip("10.0.0.1"), &xff, &fwd, &nets(LB));
            // From an untrusted peer the headers never matter.
            proptest::prop_assert_eq!(
                client_ip(ip("203.0.113.9"), &xff, &fwd, &nets(LB)),
                Ok(ip("203.0.113.9"))
            );
        }
    }
}
