//! `POST /explain` (issue #13, "Explain"): for a token and a request, the decision and exactly
//! what the backend would receive. Proved against what a recording relay in front of the real
//! backend receives when the same request is sent for real, on both backends, across request
//! kinds (search with a body, `GET` with `q=`, msearch, count, a pass-through token) and a
//! refusal (same status, nothing forwarded). Also: explain itself forwards nothing but lookups,
//! the IP filter is checked only when `client_ip` is given, and malformed explain requests are
//! 400s.

use crate::support;

use bytes::Bytes;
use serde_json::{json, Value};
use support::backend::Backend;
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send};
use support::relay::Relay;

/// One request: method, path, content type, body (JSON value or text).
struct Case {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Value,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            method: "POST",
            path: "/logs-*/_search?size=5",
            content_type: Some("application/json"),
            body: json!({"query": {"match": {"message": "error"}}, "sort": [{"@timestamp": "desc"}]}),
        },
        Case {
            method: "GET",
            path: "/logs-*/_search?q=message:error&size=3",
            content_type: None,
            body: Value::Null,
        },
        Case {
            method: "POST",
            path: "/_msearch",
            content_type: Some("application/x-ndjson"),
            body: json!("{\"index\":\"logs-*\"}\n{\"query\":{\"match_all\":{}},\"size\":1}\n{\"index\":\"logs-a\"}\n{\"size\":0}\n"),
        },
        Case {
            method: "GET",
            path: "/logs-*/_count",
            content_type: None,
            body: Value::Null,
        },
        Case {
            method: "GET",
            path: "/secret/_search",
            content_type: None,
            body: Value::Null,
        },
        Case {
            method: "DELETE",
            path: "/logs-a",
            content_type: None,
            body: Value::Null,
        },
        // attack20c: bodies of 4 KiB or more send the client's query as a span of its body
        // (session 20): explain shows the parts joined, as the backend receives them.
        Case {
            method: "POST",
            path: "/logs-*/_search",
            content_type: Some("application/json"),
            body: json!({"size": 5, "query": {"terms": {"user": large_user_list()}}}),
        },
        Case {
            method: "POST",
            path: "/logs-*/_count",
            content_type: Some("application/json"),
            body: json!({"query": {"terms": {"user": large_user_list()}}}),
        },
    ]
}

/// A `terms` list of about 12 KB naming tenant a's user among others.
fn large_user_list() -> Vec<String> {
    let mut users: Vec<String> = (0..1_000).map(|i| format!("user-{i:05}")).collect();
    users.push("alice".into());
    users
}

fn body_bytes(body: &Value) -> Vec<u8> {
    match body {
        Value::Null => Vec::new(),
        Value::String(s) => s.clone().into_bytes(),
        v => serde_json::to_vec(v).unwrap(),
    }
}

async fn explain(gw: &Esgate, token_id: &str, c: &Case, client_ip: Option<&str>) -> Value {
    let mut req = json!({"token": token_id, "method": c.method, "path": c.path});
    if let Some(ct) = c.content_type {
        req["headers"] = json!({"content-type": ct});
    }
    if !c.body.is_null() {
        req["body"] = c.body.clone();
    }
    if let Some(ip) = client_ip {
        req["client_ip"] = json!(ip);
    }
    let (status, v) = gw.admin("POST", "/explain", Some(req)).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Explains each case, then sends it for real, and compares explain's `upstream` with what the
/// relay received.
async fn explain_matches_the_forwarded_request(name: &str, backend: &Backend) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (read_id, read_secret) = gw
        .token(json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": ["logs-*"]}))
        .await;
    let (all_id, all_secret) = gw
        .token(json!({"name": "ops", "permissions": ["all"]}))
        .await;
    let mut compared = 0;
    for (token_id, secret) in [(&read_id, &read_secret), (&all_id, &all_secret)] {
        for c in cases() {
            // The pass-through token is checked on searches only (it could delete).
            if token_id == &all_id && c.method == "DELETE" {
                continue;
            }
            let what = format!("{name}: {} {} as {token_id}", c.method, c.path);
            relay.take();
            let answer = explain(&gw, token_id, &c, None).await;
            let during_explain = relay.take();
            assert!(
                during_explain.iter().all(|p| p.is_lookup()),
                "{what}: explain forwarded {during_explain:?}"
            );
            let auth = bearer(secret);
            let mut headers = vec![("authorization", auth.as_str())];
            if let Some(ct) = c.content_type {
                headers.push(("content-type", ct));
            }
            let reply = send(c.method, &gw.url(c.path), &headers, body_bytes(&c.body))
                .await
                .unwrap();
            let forwarded: Vec<_> = relay.take_forwarded();
            match answer["decision"].as_str() {
                Some("allow") => {
                    assert_eq!(forwarded.len(), 1, "{what}: {answer} / {forwarded:?}");
                    let got = &forwarded[0];
                    let up = &answer["upstream"];
                    assert_eq!(up["method"], got.method.as_str(), "{what}");
                    assert_eq!(up["path"], got.target.as_str(), "{what}");
                    match &up["body"] {
                        Value::Null => assert!(got.body.is_empty(), "{what}: {got:?}"),
                        Value::String(text) => {
                            assert_eq!(text.as_bytes(), &got.body[..], "{what}")
                        }
                        json => assert_eq!(
                            json,
                            &serde_json::from_slice::<Value>(&got.body).unwrap(),
                            "{what}"
                        ),
                    }
                    assert!(
                        reply.status.is_success(),
                        "{what}: {} {}",
                        reply.status,
                        reply.text()
                    );
                    compared += 1;
                }
                Some("deny") => {
                    assert_eq!(answer["status"], reply.status.as_u16(), "{what}: {answer}");
                    assert!(forwarded.is_empty(), "{what}: {forwarded:?}");
                    assert!(
                        answer["reason"].as_str().is_some_and(|r| !r.is_empty()),
                        "{answer}"
                    );
                }
                _ => panic!("{what}: {answer}"),
            }
        }
    }
    // Six allowed kinds for the read token, seven for the pass-through token.
    assert_eq!(compared, 13, "every allowed case was compared");
    // What a read token's upstream carries: its filter.
    let c = &cases()[0];
    let answer = explain(&gw, &read_id, c, None).await;
    assert!(
        answer["upstream"]["body"]
            .to_string()
            .contains("\"tenant\""),
        "{answer}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_equals_what_osmem_receives() {
    explain_matches_the_forwarded_request("osmem", &fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_equals_what_noida_receives() {
    explain_matches_the_forwarded_request("noida", &fixture::seeded_noida()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ip_filter_is_checked_only_with_a_client_ip() {
    let backend = Backend::osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (status, v) = gw
        .admin(
            "POST",
            "/ip-filters",
            Some(json!({"name": "office", "cidrs": ["10.1.0.0/16"]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (id, _) = gw
        .token(json!({"name": "t", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}], "ip_filter": "office"}))
        .await;
    let c = Case {
        method: "GET",
        path: "/logs-*/_count",
        content_type: None,
        body: Value::Null,
    };
    let unchecked = explain(&gw, &id, &c, None).await;
    assert_eq!(unchecked["decision"], "allow", "{unchecked}");
    assert_eq!(unchecked["client_ip_checked"], false, "{unchecked}");
    let inside = explain(&gw, &id, &c, Some("10.1.2.3")).await;
    assert_eq!(inside["decision"], "allow", "{inside}");
    assert_eq!(inside["client_ip_checked"], true, "{inside}");
    let outside = explain(&gw, &id, &c, Some("192.0.2.1")).await;
    assert_eq!(outside["decision"], "deny", "{outside}");
    assert_eq!(outside["status"], 403, "{outside}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_explain_requests_are_refused() {
    let backend = Backend::osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, secret) = gw.token(json!({"name": "t", "indices": ["logs-*"]})).await;
    for (body, status, needle) in [
        (json!({"token": id, "method": "GET"}), 400, "path"),
        (
            json!({"token": id, "method": "GET", "path": "/", "extra": 1}),
            400,
            "extra",
        ),
        (
            json!({"token": id, "method": "GET", "path": "/", "headers": {"authorization": "Bearer x"}}),
            400,
            "authorization",
        ),
        (
            json!({"token": "tok_nope", "method": "GET", "path": "/"}),
            404,
            "tok_nope",
        ),
        // A secret given as the token id is never echoed.
        (
            json!({"token": secret, "method": "GET", "path": "/"}),
            404,
            "not found",
        ),
    ] {
        let (got, v) = gw.admin("POST", "/explain", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {v}");
        let reason = v["error"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "{body}: {v}");
        assert!(!v.to_string().contains(&secret), "{v}");
    }
    // Without the admin key: 401; with another method: 405.
    let r = send("POST", &gw.admin_url("/explain"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 401);
    let (got, _) = gw.admin("GET", "/explain", None).await;
    assert_eq!(got, 405);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_esgate_answers_itself_forward_nothing() {
    let backend = Backend::osmem();
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (id, _) = gw.token(json!({"name": "t", "indices": ["logs-*"]})).await;
    let c = Case {
        method: "GET",
        path: "/_security/_authenticate",
        content_type: None,
        body: Value::Null,
    };
    relay.take();
    let answer = explain(&gw, &id, &c, None).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["answered_by"], "esgate", "{answer}");
    assert!(answer["upstream"].is_null(), "{answer}");
    assert!(relay.take().iter().all(|p| p.is_lookup()));
    gw.stop().await;
}
