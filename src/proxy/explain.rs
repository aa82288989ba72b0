//! `POST /explain` (admin API): what esgate would do with one request for one token, without
//! sending it. The request goes through the data path's own functions (hygiene, policy, then
//! `proxy::decide`, which runs plan → prepare → resolve → authorize and builds the upstream
//! request), so `upstream` is exactly what the backend would receive; only index resolutions
//! (and, for point-in-time routes and a body naming a histogram, the dialect lookup) reach the
//! backend.
//!
//! Differences from a real request, on purpose: the token is named by id (no secret); the IP
//! filter is evaluated only when `client_ip` is given (otherwise the answer says
//! `"client_ip_checked": false`); the token's last-used time, the audit log and the metrics are
//! not touched.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request};
use serde::Deserialize;
use serde_json::{json, Value};

use super::upstream_request::Forwarding;
use super::{decide, hygiene, ClientBody, Decided, RequestCtx};
use crate::app::App;
use crate::audit::DataEvent;
use crate::error::ProxyError;
use crate::upstream::UpstreamBody;

/// The admin API's request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The token id.
    pub token: String,
    pub method: String,
    /// Path and query, as a client would send them.
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON value (sent as JSON; `Content-Type: application/json` unless `headers` names
    /// one) or a string (sent as it is: NDJSON, query text).
    #[serde(default)]
    pub body: Option<Value>,
    /// The client address the IP filter is checked against; without it the filter is not.
    #[serde(default)]
    pub client_ip: Option<IpAddr>,
}

impl ExplainRequest {
    /// The body's keys.
    pub const FIELDS: &'static [&'static str] =
        &["token", "method", "path", "headers", "body", "client_ip"];
}

/// Why an explain request itself is refused (not the explained request's decision).
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    BadInput(String),
    #[error("token '{0}' not found")]
    UnknownToken(String),
}

/// The decision for `req`: `{"decision": "allow", "upstream": {...}}` or
/// `{"decision": "deny", "status": ..., "reason": ...}`.
pub async fn explain(app: &Arc<App>, req: ExplainRequest) -> Result<Value, ExplainError> {
    let snapshot = app.store.snapshot();
    let token = snapshot.token(&req.token).cloned().ok_or_else(|| {
        ExplainError::UnknownToken(crate::admin::display_name(&req.token).to_owned())
    })?;
    let (client_request, body) = build_request(&req)?;
    let mut ctx = RequestCtx::new(DataEvent {
        request_id: super::request_id(),
        ..DataEvent::default()
    });
    let client_ip = req.client_ip.map(crate::policy::client_ip::canonical);
    let opaque_id = super::opaque_id(&token.id, &ctx.event.request_id);
    let client_text = client_ip
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
        .to_string();
    let forwarding = Forwarding {
        authorization: app.config.backend.authorization.as_ref().map(|a| &a.0),
        client_ip: &client_text,
        tls: false,
        opaque_id: &opaque_id,
    };
    let decided = async {
        let (parts, ()) = client_request.into_parts();
        let head = hygiene::check_parts(&parts)?;
        let ip_filter = token
            .ip_filter
            .as_deref()
            .and_then(|name| snapshot.ip_filter(name));
        crate::policy::check_address(&token, ip_filter, client_ip, crate::time::now())?;
        decide(
            app,
            &snapshot,
            &token,
            &parts,
            &head,
            body,
            &forwarding,
            &mut ctx,
        )
        .await
    }
    .await;
    let client_ip_checked = client_ip.is_some() || token.ip_filter.is_none();
    Ok(match decided {
        Err(e) => deny(&e),
        Ok(Decided::Local(..)) => json!({
            "decision": "allow",
            "action": ctx.event.action,
            "answered_by": "esgate",
            "upstream": null,
            "client_ip_checked": client_ip_checked,
        }),
        Ok(Decided::Forward(forward)) => {
            let up = forward.request;
            json!({
                "decision": "allow",
                "action": ctx.event.action,
                "indices": ctx.event.indices,
                "upstream": {
                    "method": up.method.as_str(),
                    "path": up.path_and_query,
                    "body": body_view(up.headers.get(header::CONTENT_TYPE), &up.body),
                },
                "client_ip_checked": client_ip_checked,
            })
        }
    })
}

fn deny(e: &ProxyError) -> Value {
    json!({
        "decision": "deny",
        "status": e.status().as_u16(),
        "code": e.code(),
        "reason": e.to_string(),
    })
}

/// The client request described by `req`, as the data listener would have parsed it.
fn build_request(req: &ExplainRequest) -> Result<(Request<()>, ClientBody), ExplainError> {
    let bad = |m: String| ExplainError::BadInput(m);
    if !req.path.starts_with('/') {
        return Err(bad("path must start with '/'".into()));
    }
    let mut builder = Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str());
    let mut has_content_type = false;
    for (name, value) in &req.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("headers: '{name}' is not a header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            bad(format!(
                "headers: the value of '{name}' is not a header value"
            ))
        })?;
        if name == header::AUTHORIZATION {
            return Err(bad(
                "headers: the token is named by 'token'; do not send 'authorization'".into(),
            ));
        }
        has_content_type |= name == header::CONTENT_TYPE;
        builder = builder.header(name, value);
    }
    let bytes = match &req.body {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) => Bytes::from(text.clone().into_bytes()),
        Some(value) => {
            if !has_content_type {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            Bytes::from(serde_json::to_vec(value).unwrap_or_default())
        }
    };
    if !bytes.is_empty() {
        builder = builder.header(header::CONTENT_LENGTH, bytes.len());
    }
    let request = builder
        .body(())
        .map_err(|e| bad(format!("method or path: {e}")))?;
    Ok((request, ClientBody::Whole(bytes)))
}

/// The upstream body as the answer shows it: JSON as JSON, anything else (NDJSON) as text,
/// none as `null`.
fn body_view(content_type: Option<&HeaderValue>, body: &UpstreamBody) -> Value {
    let joined: Vec<u8>;
    let bytes = match body {
        UpstreamBody::Empty => return Value::Null,
        UpstreamBody::Full(bytes) => &bytes[..],
        UpstreamBody::Parts(parts) => {
            joined = parts.parts().flat_map(|p| p.iter().copied()).collect();
            &joined[..]
        }
        // Explain builds every body whole; a stream cannot occur.
        UpstreamBody::Stream(_) => return Value::Null,
    };
    let json = content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") && !ct.contains("ndjson"));
    match json.then(|| serde_json::from_slice::<Value>(bytes)) {
        Some(Ok(v)) => v,
        _ => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: Option<Value>, headers: &[(&str, &str)]) -> ExplainRequest {
        ExplainRequest {
            token: "t".into(),
            method: "POST".into(),
            path: "/logs-*/_search?size=5".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
            client_ip: None,
        }
    }

    #[test]
    fn a_json_body_gets_a_json_content_type_unless_one_is_given() {
        let (r, body) = build_request(&req(Some(json!({"size": 1})), &[])).unwrap();
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert!(matches!(body, ClientBody::Whole(b) if &b[..] == br#"{"size":1}"#));
        let (r, _) = build_request(&req(
            Some(json!({})),
            &[(
                "content-type",
                "application/vnd.elasticsearch+json; compatible-with=8",
            )],
        ))
        .unwrap();
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/vnd.elasticsearch+json; compatible-with=8"
        );
        let (r, body) = build_request(&req(Some(json!("{}\n{}\n")), &[])).unwrap();
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
        assert!(matches!(body, ClientBody::Whole(b) if &b[..] == b"{}\n{}\n"));
    }

    #[test]
    fn malformed_input_is_refused_by_name() {
        for (r, needle) in [
            (req(None, &[("bad name", "x")]), "header name"),
            (req(None, &[("authorization", "Bearer x")]), "authorization"),
            (
                ExplainRequest {
                    path: "logs/_search".into(),
                    ..req(None, &[])
                },
                "path",
            ),
            (
                ExplainRequest {
                    method: "GE T".into(),
                    ..req(None, &[])
                },
                "method",
            ),
        ] {
            let e = build_request(&r).err().unwrap().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn bodies_are_shown_as_json_or_text() {
        let json_ct = HeaderValue::from_static("application/json");
        let nd = HeaderValue::from_static("application/x-ndjson");
        assert_eq!(
            body_view(
                Some(&json_ct),
                &UpstreamBody::Full(Bytes::from("{\"a\":1}"))
            ),
            json!({"a": 1})
        );
        assert_eq!(
            body_view(Some(&nd), &UpstreamBody::Full(Bytes::from("{}\n{}\n"))),
            json!("{}\n{}\n")
        );
        assert_eq!(body_view(None, &UpstreamBody::Empty), Value::Null);
    }
}
