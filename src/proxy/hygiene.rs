//! HTTP hygiene: refuse what hyper lets through but a proxy must not (security.md I-9, F1–F4).

use http::{header, HeaderValue, Method, Request, Version};

use crate::error::ProxyError;

/// A constant name: a `&str` name is parsed again at every comparison.
const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");

/// What the one pass over a request's headers found that the later phases need: they look
/// these up again only when needed (issue 10: a dozen map lookups per request, each hashing
/// its name, were 2.5% of a small GET).
#[derive(Clone, Copy, Debug, Default)]
pub struct Head<'a> {
    /// The first `Authorization` value, and how many there are.
    pub authorization: Option<&'a HeaderValue>,
    pub authorizations: usize,
    /// Whether an `X-Forwarded-For` or `Forwarded` header is present.
    pub forwarded: bool,
    /// The first `Content-Length` value (hygiene refuses a second one).
    pub content_length: Option<&'a HeaderValue>,
    /// The `Content-Type` and `Content-Encoding` values (hygiene refuses a second one), and
    /// the first `Accept` value: what `proxy::decide` reads (perf21b: four map lookups a
    /// request there).
    pub content_type: Option<&'a HeaderValue>,
    pub content_encoding: Option<&'a HeaderValue>,
    pub accept: Option<&'a HeaderValue>,
    /// The first `Accept-Encoding` value, which `upstream_request::from_permit` passes on
    /// (perf29c: its map lookup, and `Content-Type`'s, about 235 instructions a request).
    pub accept_encoding: Option<&'a HeaderValue>,
}

/// Checks the request head before anything else looks at it. One pass over the headers counts
/// what the checks below need (each refusal, and its order, as when each was a lookup:
/// `tests::one_pass_refuses_what_the_lookups_refused`).
pub fn check<B>(req: &Request<B>) -> Result<Head<'_>, ProxyError> {
    check_head(req.method(), req.version(), req.uri(), req.headers())
}

/// [`check`] of a request's head taken apart (its `Head` borrows the parts, which outlive the
/// body taken from the request).
pub fn check_parts(parts: &http::request::Parts) -> Result<Head<'_>, ProxyError> {
    check_head(&parts.method, parts.version, &parts.uri, &parts.headers)
}

fn check_head<'a>(
    method: &Method,
    version: Version,
    uri: &http::Uri,
    headers: &'a http::HeaderMap,
) -> Result<Head<'a>, ProxyError> {
    if method == Method::CONNECT || method == Method::TRACE {
        return Err(ProxyError::MethodNotAllowed);
    }
    // HTTP/2 requests always carry scheme and authority; only HTTP/1 absolute-form is suspect.
    if version < Version::HTTP_2 && uri.authority().is_some() {
        return Err(ProxyError::BadRequest(
            "absolute-form request targets are not accepted".into(),
        ));
    }
    let mut head = Head::default();
    let mut upgrade = false;
    let (mut te, mut te_first) = (0usize, None::<&HeaderValue>);
    let (mut lengths, mut hosts, mut types, mut encodings) = (0usize, 0usize, 0usize, 0usize);
    for (name, value) in headers {
        if *name == header::AUTHORIZATION {
            head.authorization.get_or_insert(value);
            head.authorizations += 1;
        } else if *name == header::HOST {
            hosts += 1;
        } else if *name == header::CONTENT_LENGTH {
            head.content_length.get_or_insert(value);
            lengths += 1;
        } else if *name == header::CONTENT_TYPE {
            head.content_type.get_or_insert(value);
            types += 1;
        } else if *name == header::CONTENT_ENCODING {
            head.content_encoding.get_or_insert(value);
            encodings += 1;
        } else if *name == header::ACCEPT {
            head.accept.get_or_insert(value);
        } else if *name == header::ACCEPT_ENCODING {
            head.accept_encoding.get_or_insert(value);
        } else if *name == header::TRANSFER_ENCODING {
            te_first.get_or_insert(value);
            te += 1;
        } else if *name == header::UPGRADE {
            upgrade = true;
        } else if *name == header::FORWARDED || *name == X_FORWARDED_FOR {
            head.forwarded = true;
        }
    }
    if upgrade {
        return Err(ProxyError::BadRequest(
            "protocol upgrades are not accepted".into(),
        ));
    }
    if let Some(first) = te_first {
        if lengths > 0 {
            return Err(ProxyError::BadRequest(
                "both Content-Length and Transfer-Encoding are set".into(),
            ));
        }
        if te != 1 || !first.as_bytes().eq_ignore_ascii_case(b"chunked") {
            return Err(ProxyError::BadRequest(
                "only Transfer-Encoding: chunked is accepted".into(),
            ));
        }
    }
    if lengths > 1 {
        return Err(ProxyError::BadRequest(
            "more than one Content-Length".into(),
        ));
    }
    for (name, count) in [
        (header::HOST, hosts),
        (header::CONTENT_TYPE, types),
        (header::CONTENT_ENCODING, encodings),
    ] {
        if count > 1 {
            return Err(ProxyError::BadRequest(format!(
                "more than one {name} header"
            )));
        }
    }
    if uri.path().len() > 4096 || uri.query().is_some_and(|q| q.len() > 8192) {
        return Err(ProxyError::BadRequest("request target too long".into()));
    }
    Ok(head)
}

/// Headers that describe one connection, never the message: not copied in either direction.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const KEEP_ALIVE: header::HeaderName = header::HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: header::HeaderName = header::HeaderName::from_static("proxy-connection");

/// Whether `name` is one of [`HOP_BY_HOP`], compared as names rather than as text (issue 10: a
/// known name's text is looked up in a table first; every relayed header asks this).
/// `Trailer` among them also keeps a pass-through body's trailer fields from the backend:
/// hyper's client writes only the trailers that header declares (attack18e,
/// `protocol_corners::request_trailers_never_reach_the_backend`).
pub fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    #[test]
    fn refuses_smuggling_shapes() {
        let cases: &[Case] = &[
            ("CONNECT", "127.0.0.1:9200", &[]),
            ("TRACE", "/", &[]),
            ("GET", "http://169.254.169.254/latest", &[]),
            ("GET", "/", &[("upgrade", "h2c")]),
            (
                "POST",
                "/_search",
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
            ),
            (
                "POST",
                "/_search",
                &[("transfer-encoding", "gzip, chunked")],
            ),
            (
                "POST",
                "/_search",
                &[("content-length", "5"), ("content-length", "6")],
            ),
            (
                "POST",
                "/_search",
                &[
                    ("content-type", "application/json"),
                    ("content-type", "text/plain"),
                ],
            ),
        ];
        for (m, u, h) in cases {
            assert!(
                check(&req(m, u, h)).is_err(),
                "{m} {u} {h:?} should be refused"
            );
        }
    }

    /// The checks as they were, one map lookup each (before issue 10): the reference the one
    /// pass is compared with.
    fn reference<B>(req: &Request<B>) -> Result<(), ProxyError> {
        if req.method() == Method::CONNECT || req.method() == Method::TRACE {
            return Err(ProxyError::MethodNotAllowed);
        }
        if req.version() < Version::HTTP_2 && req.uri().authority().is_some() {
            return Err(ProxyError::BadRequest(
                "absolute-form request targets are not accepted".into(),
            ));
        }
        let headers = req.headers();
        if headers.contains_key(header::UPGRADE) {
            return Err(ProxyError::BadRequest(
                "protocol upgrades are not accepted".into(),
            ));
        }
        let te: Vec<_> = headers.get_all(header::TRANSFER_ENCODING).iter().collect();
        if !te.is_empty() {
            if headers.contains_key(header::CONTENT_LENGTH) {
                return Err(ProxyError::BadRequest(
                    "both Content-Length and Transfer-Encoding are set".into(),
                ));
            }
            if te.len() != 1 || !te[0].as_bytes().eq_ignore_ascii_case(b"chunked") {
                return Err(ProxyError::BadRequest(
                    "only Transfer-Encoding: chunked is accepted".into(),
                ));
            }
        }
        if headers.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
            return Err(ProxyError::BadRequest(
                "more than one Content-Length".into(),
            ));
        }
        for name in [header::HOST, header::CONTENT_TYPE, header::CONTENT_ENCODING] {
            if headers.get_all(&name).iter().count() > 1 {
                return Err(ProxyError::BadRequest(format!(
                    "more than one {name} header"
                )));
            }
        }
        if req.uri().path().len() > 4096 || req.uri().query().is_some_and(|q| q.len() > 8192) {
            return Err(ProxyError::BadRequest("request target too long".into()));
        }
        Ok(())
    }

    /// Every combination of up to three headers from a list of the checked ones (each once,
    /// twice, with a good and a bad value, in either order), under every method, target and
    /// version shape: the one pass refuses exactly what the lookups refused, with the same
    /// reason, and what it reports of the headers is what a lookup gives.
    #[test]
    fn one_pass_refuses_what_the_lookups_refused() {
        let headers: &[(&str, &str)] = &[
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "CHUNKED"),
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "gzip, chunked"),
            ("content-length", "5"),
            ("content-length", "6"),
            ("host", "a"),
            ("host", "b"),
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
            ("content-encoding", "gzip"),
            ("content-encoding", "identity"),
            ("authorization", "Bearer a"),
            ("authorization", "Basic b"),
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=10.0.0.2"),
            ("accept", "application/json"),
            (
                "accept",
                "application/vnd.elasticsearch+json; compatible-with=8",
            ),
            ("x-upgrade", "no"),
            ("connection", "upgrade"),
        ];
        let targets: &[(&str, &str)] = &[
            ("GET", "/"),
            ("POST", "/_search"),
            ("CONNECT", "127.0.0.1:9200"),
            ("TRACE", "/"),
            ("GET", "http://169.254.169.254/latest"),
        ];
        let long_path = format!("/{}", "a".repeat(4096));
        let long_query = format!("/?q={}", "a".repeat(8190));
        let mut compared = 0;
        let n = headers.len();
        for a in 0..=n {
            for b in a..=n {
                for c in b..=n {
                    let picked: Vec<(&str, &str)> = [a, b, c]
                        .into_iter()
                        .filter(|&i| i < n)
                        .map(|i| headers[i])
                        .collect();
                    for reversed in [false, true] {
                        let mut picked = picked.clone();
                        if reversed {
                            picked.reverse();
                        }
                        let mut uris: Vec<(&str, &str)> = targets.to_vec();
                        if a == b && b == c {
                            uris.push(("GET", &long_path));
                            uris.push(("GET", &long_query));
                        }
                        for (method, uri) in uris {
                            for version in [Version::HTTP_11, Version::HTTP_2] {
                                let mut r = req(method, uri, &picked);
                                *r.version_mut() = version;
                                compare(&r);
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 10_000, "{compared}");
    }

    fn compare(r: &Request<()>) {
        let (got, want) = (check(r), reference(r));
        // The parts' check is the request's.
        let (parts, ()) = r.clone().into_parts();
        let of_parts = check_parts(&parts);
        assert_eq!(
            of_parts
                .as_ref()
                .map(|h| (h.content_type, h.accept))
                .map_err(|e| e.to_string()),
            got.as_ref()
                .map(|h| (h.content_type, h.accept))
                .map_err(|e| e.to_string())
        );
        match (&got, &want) {
            (Ok(head), Ok(())) => {
                let h = r.headers();
                assert_eq!(head.authorization, h.get(header::AUTHORIZATION));
                assert_eq!(
                    head.authorizations,
                    h.get_all(header::AUTHORIZATION).iter().count()
                );
                assert_eq!(head.content_length, h.get(header::CONTENT_LENGTH));
                assert_eq!(
                    head.forwarded,
                    h.contains_key(header::FORWARDED) || h.contains_key("x-forwarded-for")
                );
                assert_eq!(head.content_type, h.get(header::CONTENT_TYPE));
                assert_eq!(head.content_encoding, h.get(header::CONTENT_ENCODING));
                assert_eq!(head.accept, h.get(header::ACCEPT));
            }
            (Err(g), Err(w)) => {
                assert_eq!(g.to_string(), w.to_string(), "{r:?}");
                assert_eq!(g.code(), w.code(), "{r:?}");
            }
            _ => panic!(
                "{r:?}: {:?} but the lookups gave {:?}",
                got.as_ref().map(|_| ()),
                want
            ),
        }
    }

    /// Names to compare by: every hop-by-hop one, known and unknown names near them.
    pub(crate) fn some_names() -> Vec<&'static str> {
        HOP_BY_HOP
            .iter()
            .copied()
            .chain([
                "upgrade-insecure-requests",
                "keep-alive2",
                "proxy-connectio",
                "x-proxy-connection",
                "t",
                "tee",
                "trailers",
                "host",
                "authorization",
                "content-length",
                "content-type",
                "content-encoding",
                "x-opaque-id",
                "x-opaque-i",
                "x-elasticsearch-async-id",
                "x-elasticsearch-async-is-running",
                "x-elasticsearch-async-is-runnin",
                "x-elastic-product",
                "warning",
                "set-cookie",
                "www-authenticate",
                "server",
                "date",
                "accept",
                "accept-encoding",
                "forwarded",
                "x-forwarded-for",
                "cookie",
                "es-security-runas-user",
                "x-custom",
            ])
            .collect()
    }

    #[test]
    fn hop_by_hop_names_are_the_list() {
        for name in some_names() {
            let parsed = header::HeaderName::from_static(name);
            assert_eq!(is_hop_by_hop(&parsed), HOP_BY_HOP.contains(&name), "{name}");
        }
    }

    #[test]
    fn accepts_ordinary_requests() {
        assert!(check(&req("GET", "/", &[])).is_ok());
        assert!(check(&req(
            "POST",
            "/_search",
            &[("transfer-encoding", "chunked")]
        ))
        .is_ok());
        assert!(check(&req("POST", "/_search", &[("content-length", "2")])).is_ok());
    }

    /// perf29c: the `Accept-Encoding` and `Content-Type` hygiene's pass keeps are the values
    /// `HeaderMap::get` finds (the first of each), which `upstream_request::from_permit` read
    /// by lookups before; none when the header is absent.
    #[test]
    fn the_head_keeps_the_values_a_lookup_finds() {
        for headers in [
            &[][..],
            &[("accept-encoding", "gzip")][..],
            &[("accept-encoding", "br"), ("accept-encoding", "gzip")][..],
            &[
                ("content-type", "application/json"),
                ("accept-encoding", "identity"),
                ("accept", "text/plain"),
                ("accept-encoding", "gzip, deflate"),
            ][..],
        ] {
            let r = req("GET", "/_search", headers);
            let head = check(&r).unwrap();
            assert_eq!(
                head.accept_encoding,
                r.headers().get(header::ACCEPT_ENCODING),
                "{headers:?}"
            );
            assert_eq!(
                head.content_type,
                r.headers().get(header::CONTENT_TYPE),
                "{headers:?}"
            );
        }
    }
}
