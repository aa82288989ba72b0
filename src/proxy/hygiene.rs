//! HTTP hygiene: refuse what hyper lets through but a proxy must not (security.md I-9, F1–F4).

use http::{header, Method, Request, Version};

use crate::error::ProxyError;

/// Checks the request head before anything else looks at it.
pub fn check<B>(req: &Request<B>) -> Result<(), ProxyError> {
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return Err(ProxyError::MethodNotAllowed);
    }
    // HTTP/2 requests always carry scheme and authority; only HTTP/1 absolute-form is suspect.
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

/// Headers that describe one connection, never the message: not copied in either direction.
pub fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

#[cfg(test)]
mod tests {
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
}
