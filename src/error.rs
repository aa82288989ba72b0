//! `ProxyError`: every way a data request can fail, and the one place that turns a failure
//! into an HTTP status and an Elasticsearch-style error response.
//!
//! Invariant: no other module chooses a status code for a failure. Reasons never contain a
//! secret or echo request content.

use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};

use crate::auth::AuthError;
use crate::body::{full, Body};
use crate::es::{RejectKind, Rejection};
use crate::policy::Denied;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("too many failed authentication attempts from this address; retry later")]
    RateLimited(Duration),
    #[error("{0}")]
    Policy(#[from] Denied),
    #[error("{0}")]
    Rejected(#[from] Rejection),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body exceeds the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("esgate holds too many request bodies and answers in memory at once; retry later")]
    Busy,
    /// Over the token's `requests_per_second`/`burst` or `max_concurrent`.
    #[error("{0}")]
    TokenLimited(#[from] crate::throttle::Limited),
    #[error("{0}")]
    Upstream(#[from] crate::upstream::UpstreamError),
    /// The token changed (narrowed, its library filters changed) between the request's
    /// authentication and its forwarding (its body read meanwhile): nothing was forwarded, and
    /// a retry is planned under the token as it is now.
    #[error("the token changed while the request was read; nothing was forwarded, retry")]
    TokenChanged,
    /// `audit.on_failure = "closed"` and the audit log cannot be written (`Audit::refusing`).
    #[error("{}", crate::audit::UNWRITABLE)]
    AuditUnwritable,
    /// An HTTP/2 stream found no place free under `listen.max_connections`, which counts the
    /// streams beyond a connection's first as nginx counts them under `worker_connections`
    /// (`server::streams`): answered at once, nothing of it processed.
    #[error("esgate serves as many connections and HTTP/2 streams as listen.max_connections allows; nothing was processed, retry")]
    Connections,
}

/// Which side a failure is on, for log levels and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        use crate::upstream::UpstreamError as U;
        match self {
            ProxyError::Auth(_) => StatusCode::UNAUTHORIZED,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Policy(_) => StatusCode::FORBIDDEN,
            ProxyError::Rejected(r) => match r.kind {
                RejectKind::Forbidden => StatusCode::FORBIDDEN,
                RejectKind::BadRequest => StatusCode::BAD_REQUEST,
                RejectKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                RejectKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RejectKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                RejectKind::NotFound => StatusCode::NOT_FOUND,
                RejectKind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
                RejectKind::OverLimit => StatusCode::BAD_REQUEST,
                RejectKind::Busy => StatusCode::TOO_MANY_REQUESTS,
            },
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Busy | ProxyError::TokenLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Upstream(U::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(U::Saturated) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream(U::Share { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Upstream(U::Failed { status, .. }) => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            // The backend refused to resolve the client's index expression (too long, ...).
            ProxyError::Upstream(U::Resolve(s) | U::FieldTypes(s)) if (400..500).contains(s) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::Upstream(U::ClientBody) => StatusCode::BAD_REQUEST,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::AuditUnwritable | ProxyError::TokenChanged | ProxyError::Connections => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn es_type(&self) -> &str {
        match self {
            ProxyError::Upstream(crate::upstream::UpstreamError::Failed {
                es_type: Some(t),
                ..
            }) => t,
            ProxyError::Auth(_) | ProxyError::Policy(_) => "security_exception",
            ProxyError::RateLimited(_) => "security_exception",
            ProxyError::Rejected(r) => match r.kind {
                RejectKind::Forbidden => "security_exception",
                RejectKind::BadRequest => "parsing_exception",
                RejectKind::TooLarge => "content_too_long_exception",
                RejectKind::UnsupportedMediaType => "media_type_header_exception",
                RejectKind::MethodNotAllowed => "method_not_allowed_exception",
                RejectKind::NotFound => "index_not_found_exception",
                RejectKind::NotAcceptable => "media_type_header_exception",
                RejectKind::OverLimit => "illegal_argument_exception",
                RejectKind::Busy => "es_rejected_execution_exception",
            },
            ProxyError::BadRequest(_)
            | ProxyError::Upstream(crate::upstream::UpstreamError::ClientBody) => {
                "parsing_exception"
            }
            ProxyError::BodyTooLarge(_) => "content_too_long_exception",
            ProxyError::MethodNotAllowed => "method_not_allowed_exception",
            ProxyError::BodyTimeout => "request_timeout_exception",
            ProxyError::Busy | ProxyError::TokenLimited(_) => "es_rejected_execution_exception",
            ProxyError::Upstream(_) => "esgate_backend_exception",
            ProxyError::AuditUnwritable | ProxyError::TokenChanged | ProxyError::Connections => {
                "unavailable_exception"
            }
        }
    }

    pub fn side(&self) -> Side {
        match self {
            ProxyError::Upstream(
                crate::upstream::UpstreamError::Resolve(s)
                | crate::upstream::UpstreamError::FieldTypes(s),
            ) if (400..500).contains(s) => Side::Client,
            // The token's own load (logged by `upstream`, once per interval).
            ProxyError::Upstream(crate::upstream::UpstreamError::Share { .. }) => Side::Client,
            // The client's relayed body failed (its framing, or it hung up).
            ProxyError::Upstream(crate::upstream::UpstreamError::ClientBody) => Side::Client,
            ProxyError::Upstream(_) => Side::Upstream,
            _ => Side::Client,
        }
    }

    /// A short, stable code for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        use crate::upstream::UpstreamError as U;
        match self {
            ProxyError::Auth(AuthError::Missing) => "auth_missing",
            ProxyError::Auth(AuthError::Malformed) => "auth_malformed",
            ProxyError::Auth(AuthError::Unknown) => "auth_unknown",
            ProxyError::RateLimited(_) => "rate_limited",
            ProxyError::Policy(Denied::Expired) => "expired",
            ProxyError::Policy(Denied::IpNotAllowed) => "ip_not_allowed",
            ProxyError::Policy(Denied::Dangling(_)) => "token_incomplete",
            ProxyError::Policy(Denied::Link(_)) => "link_invalid",
            ProxyError::Rejected(r) => match r.kind {
                RejectKind::Forbidden => "forbidden",
                RejectKind::BadRequest => "bad_request",
                RejectKind::TooLarge => "too_large",
                RejectKind::UnsupportedMediaType => "unsupported_media_type",
                RejectKind::MethodNotAllowed => "method_not_allowed",
                RejectKind::NotFound => "no_index",
                RejectKind::NotAcceptable => "not_acceptable",
                RejectKind::OverLimit => "over_limit",
                RejectKind::Busy => "busy",
            },
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::BodyTooLarge(_) => "too_large",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::BodyTimeout => "body_timeout",
            ProxyError::Busy => "busy",
            ProxyError::TokenLimited(crate::throttle::Limited::Rate { .. }) => "token_rate_limited",
            ProxyError::TokenLimited(crate::throttle::Limited::Concurrency { .. }) => {
                "token_concurrency_limited"
            }
            ProxyError::TokenLimited(crate::throttle::Limited::OpenScrolls { .. }) => {
                "token_open_scrolls_limited"
            }
            ProxyError::TokenLimited(crate::throttle::Limited::OpenPits { .. }) => {
                "token_open_pits_limited"
            }
            ProxyError::TokenLimited(crate::throttle::Limited::RunningAsyncSearches { .. }) => {
                "token_running_async_searches_limited"
            }
            ProxyError::Upstream(U::Timeout) => "backend_timeout",
            ProxyError::Upstream(U::Saturated) => "backend_connections",
            ProxyError::Upstream(U::Share { .. }) => "backend_share",
            ProxyError::Upstream(U::Failed { .. }) => "backend_error",
            ProxyError::Upstream(U::ClientBody) => "bad_request",
            ProxyError::Upstream(_) => "backend_unavailable",
            ProxyError::AuditUnwritable => "audit_unwritable",
            ProxyError::TokenChanged => "token_changed",
            ProxyError::Connections => "connections",
        }
    }

    /// The response the client sees.
    pub fn into_response(&self) -> Response<Body> {
        let status = self.status();
        let reason = self.to_string();
        error_response(status, self.es_type(), &reason, |headers| match self {
            ProxyError::Auth(_) => {
                for challenge in [
                    "Basic realm=\"esgate\", charset=\"UTF-8\"",
                    "Bearer realm=\"esgate\"",
                    "ApiKey",
                ] {
                    headers.append(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(challenge),
                    );
                }
            }
            ProxyError::Busy
            | ProxyError::AuditUnwritable
            | ProxyError::TokenChanged
            | ProxyError::Connections
            | ProxyError::Upstream(crate::upstream::UpstreamError::Saturated)
            | ProxyError::Upstream(crate::upstream::UpstreamError::Share { .. })
            | ProxyError::Rejected(Rejection {
                kind: RejectKind::Busy,
                ..
            }) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ProxyError::TokenLimited(limited) => {
                if let Ok(v) = HeaderValue::from_str(&limited.retry_after_secs().to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ProxyError::RateLimited(after) => {
                let secs = after.as_secs().max(1);
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        })
    }
}

/// Builds an Elasticsearch-style error response (used for data and admin errors alike).
pub fn error_response(
    status: StatusCode,
    es_type: &str,
    reason: &str,
    extra: impl FnOnce(&mut http::HeaderMap),
) -> Response<Body> {
    let mut response = json_response(
        status,
        crate::es::error::body(status.as_u16(), es_type, reason),
    );
    extra(response.headers_mut());
    response
}

/// A JSON answer esgate writes itself, with the headers every Elasticsearch answer carries
/// (`Content-Type` JSON, `X-Elastic-Product: Elasticsearch`).
pub fn json_response(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    headers.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(r: Response<Body>) -> serde_json::Value {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn unauthenticated_gets_401_with_three_challenges() {
        let r = ProxyError::Auth(AuthError::Missing).into_response();
        assert_eq!(r.status(), 401);
        let challenges: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
        assert_eq!(challenges.len(), 3);
        assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
        let v = body_json(r).await;
        assert_eq!(v["error"]["type"], "security_exception");
        assert_eq!(v["status"], 401);
    }

    #[tokio::test]
    async fn token_limits_answer_429_with_retry_after_and_cost_guards_400() {
        use crate::throttle::Limited;
        let rate = ProxyError::TokenLimited(Limited::Rate {
            rate: 5,
            burst: 10,
            retry_after: Duration::from_millis(2_500),
        });
        assert_eq!(rate.code(), "token_rate_limited");
        let r = rate.into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");
        let v = body_json(r).await;
        assert_eq!(v["error"]["type"], "es_rejected_execution_exception");
        let busy = ProxyError::TokenLimited(Limited::Concurrency { max: 2 });
        assert_eq!(busy.code(), "token_concurrency_limited");
        assert_eq!(busy.into_response().headers()["retry-after"], "1");
        // The limits on what a token holds open on the backend: one answer each, naming it.
        for (limited, code, retry_after, reason) in [
            (
                Limited::OpenScrolls {
                    max: 100,
                    retry_after: Duration::from_millis(90_500),
                },
                "token_open_scrolls_limited",
                "91",
                "100 open scrolls (its max_open_scrolls)",
            ),
            (
                Limited::OpenPits {
                    max: 50,
                    retry_after: Duration::from_millis(1_200),
                },
                "token_open_pits_limited",
                "2",
                "50 open points in time (its max_open_pits)",
            ),
            (
                Limited::RunningAsyncSearches {
                    max: 100,
                    retry_after: Duration::from_secs(5),
                },
                "token_running_async_searches_limited",
                "5",
                "100 async searches running (its max_running_async_searches)",
            ),
        ] {
            let limited = ProxyError::TokenLimited(limited);
            assert_eq!(limited.code(), code);
            let r = limited.into_response();
            assert_eq!(r.status(), 429, "{code}");
            assert_eq!(r.headers()["retry-after"], retry_after, "{code}");
            let v = body_json(r).await;
            assert_eq!(v["error"]["type"], "es_rejected_execution_exception");
            assert!(
                v["error"]["reason"].as_str().unwrap().contains(reason),
                "{v}"
            );
        }
        let over = ProxyError::Rejected(Rejection::over_limit("size 11 exceeds"));
        assert_eq!((over.status().as_u16(), over.code()), (400, "over_limit"));
        let v = body_json(over.into_response()).await;
        assert_eq!(v["error"]["type"], "illegal_argument_exception");
    }

    #[tokio::test]
    async fn statuses_follow_the_table() {
        use crate::upstream::UpstreamError;
        assert_eq!(ProxyError::Policy(Denied::Expired).status(), 403);
        assert_eq!(
            ProxyError::Rejected(Rejection::forbidden("x")).status(),
            403
        );
        assert_eq!(
            ProxyError::Rejected(Rejection::bad_request("x")).status(),
            400
        );
        assert_eq!(ProxyError::BodyTooLarge(1).status(), 413);
        assert_eq!(ProxyError::Upstream(UpstreamError::Timeout).status(), 504);
        assert_eq!(
            ProxyError::Upstream(UpstreamError::Unavailable).status(),
            502
        );
        // attack20b: a relayed client body that failed is the client's 400, not a 502.
        let client_body = ProxyError::Upstream(UpstreamError::ClientBody);
        assert_eq!(
            (client_body.status().as_u16(), client_body.code()),
            (400, "bad_request")
        );
        assert_eq!(client_body.side(), crate::error::Side::Client);
        // rel17: the node's connections all busy past the wait: 503, retry in a second.
        let saturated = ProxyError::Upstream(UpstreamError::Saturated);
        assert_eq!(saturated.code(), "backend_connections");
        let r = saturated.into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let v = body_json(r).await;
        assert_eq!(v["error"]["type"], "esgate_backend_exception");
        assert_eq!(v["status"], 503);
        let r = ProxyError::RateLimited(Duration::from_secs(7)).into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
    }

    /// Session 11: the body's checks refused for memory others hold (`es::memory`) answer as a
    /// spent body budget does: 429 with `Retry-After`.
    #[test]
    fn a_busy_rejection_answers_as_the_spent_budget_does() {
        let busy = ProxyError::Rejected(Rejection {
            kind: RejectKind::Busy,
            reason: "busy".into(),
        });
        for e in [&busy, &ProxyError::Busy] {
            let r = e.into_response();
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(r.headers()[header::RETRY_AFTER], "1");
            assert_eq!(e.es_type(), "es_rejected_execution_exception");
            assert_eq!(e.code(), "busy");
        }
    }

    /// `audit.on_failure = "closed"` and the audit log cannot be written: 503 with
    /// `Retry-After`, an Elasticsearch error a client retries.
    #[tokio::test]
    async fn an_unwritable_audit_answers_503_with_retry_after() {
        let r = ProxyError::AuditUnwritable.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(ProxyError::AuditUnwritable.code(), "audit_unwritable");
        let v = body_json(r).await;
        assert_eq!(v["status"], 503);
        assert_eq!(v["error"]["type"], "unavailable_exception");
        assert_eq!(v["error"]["reason"], crate::audit::UNWRITABLE);
    }

    /// A token changed between a request's authentication and its forwarding: 503, retryable.
    #[test]
    fn a_token_changed_meanwhile_answers_503_with_retry_after() {
        let r = ProxyError::TokenChanged.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(ProxyError::TokenChanged.code(), "token_changed");
    }

    /// rel20c: an HTTP/2 stream past `listen.max_connections`' places: 503 with `Retry-After`,
    /// an Elasticsearch error a client retries.
    #[tokio::test]
    async fn a_stream_without_a_place_answers_503_with_retry_after() {
        let e = ProxyError::Connections;
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(e.code(), "connections");
        let v = body_json(r).await;
        assert_eq!(v["status"], 503);
        assert_eq!(v["error"]["type"], "unavailable_exception");
    }
}
