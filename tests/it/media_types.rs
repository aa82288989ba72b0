//! Media types through esgate end to end (`es::request::media`): Elasticsearch's REST-compatibility
//! types (`application/vnd.elasticsearch+json; compatible-with=N`, `+x-ndjson`) are understood
//! and passed through to the backend; an `Accept` esgate could not read (YAML, CBOR, Smile) is
//! refused with 406; esgate's own answers stay plain JSON that compat clients can read.
//!
//! Invariant checked: whatever the media type, a `read` token's answer holds exactly tenant a's
//! data. Pass-through is proven with the two backends' known difference (backend.md): noida
//! accepts the compat types, osmem answers them 406, so osmem's 406 shows esgate forwarded them;
//! a recording backend shows the exact upstream `Accept`/`Content-Type` pairs (both versioned
//! or neither, as Elasticsearch requires).

use crate::support;

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use serde_json::{json, Value};

use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};
use support::http::{bearer, send, Reply};

const COMPAT8_JSON: &str = "application/vnd.elasticsearch+json; compatible-with=8";
const COMPAT8_NDJSON: &str = "application/vnd.elasticsearch+x-ndjson; compatible-with=8";

async fn post(gw: &Esgate, secret: &str, path: &str, media: (&str, &str), body: &str) -> Reply {
    let auth = bearer(secret);
    send(
        "POST",
        &gw.url(path),
        &[
            ("authorization", auth.as_str()),
            ("accept", media.0),
            ("content-type", media.1),
        ],
        body.to_owned(),
    )
    .await
    .expect("esgate answers")
}

/// The tenants of the hits and the total of one search response.
fn tenants_and_total(v: &Value) -> (Vec<Value>, Value) {
    let mut tenants: Vec<Value> = v["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| h["_source"]["tenant"].clone())
                .collect()
        })
        .unwrap_or_default();
    tenants.dedup();
    (tenants, v["hits"]["total"]["value"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_media_types_reach_the_elasticsearch_dialect_backend_with_the_filter_applied() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;

    let r = post(
        &gw,
        &secret,
        "/logs-*/_search",
        (COMPAT8_JSON, COMPAT8_JSON),
        r#"{"size":50,"query":{"match_all":{}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        tenants_and_total(&r.json()),
        (vec![json!("a")], json!(fixture::TENANT_A_DOCS)),
        "{}",
        r.text()
    );
    assert!(!contains_leak_marker(&r.body));

    let r = post(
        &gw,
        &secret,
        "/_msearch",
        (COMPAT8_JSON, COMPAT8_NDJSON),
        "{\"index\":\"logs-*\"}\n{\"size\":50}\n{\"index\":\"secret\"}\n{\"size\":50}\n",
    )
    .await;
    assert!(!contains_leak_marker(&r.body), "{}", r.text());
    // The foreign index is refused as a whole or per item; never answered with its documents.
    if r.status == 200 {
        let v = r.json();
        assert_eq!(
            tenants_and_total(&v["responses"][0]),
            (vec![json!("a")], json!(fixture::TENANT_A_DOCS)),
            "{v}"
        );
        assert_eq!(v["responses"][1]["hits"]["hits"], Value::Null, "{v}");
    } else {
        assert_eq!(r.status, 403, "{}", r.text());
    }

    // A compatible request without an Accept gets the same version asked for on both headers
    // (Elasticsearch refuses a compatible Content-Type with a plain Accept).
    let auth = bearer(&secret);
    let r = send(
        "POST",
        &gw.url("/logs-*/_count"),
        &[
            ("authorization", auth.as_str()),
            ("content-type", COMPAT8_JSON),
        ],
        r#"{"query":{"match_all":{}}}"#,
    )
    .await
    .expect("esgate answers");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["count"], json!(fixture::TENANT_A_DOCS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_media_types_are_forwarded_not_replaced() {
    // osmem answers 406 to the compat types (backend.md): its 406 is the proof that esgate
    // forwarded the client's version instead of substituting plain JSON.
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let body = r#"{"size":50}"#;
    let plain = post(
        &gw,
        &secret,
        "/logs-*/_search",
        ("application/json", "application/json"),
        body,
    )
    .await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(
        tenants_and_total(&plain.json()),
        (vec![json!("a")], json!(fixture::TENANT_A_DOCS))
    );
    let compat = post(
        &gw,
        &secret,
        "/logs-*/_search",
        (COMPAT8_JSON, COMPAT8_JSON),
        body,
    )
    .await;
    assert_eq!(compat.status, 406, "{}", compat.text());
    assert!(!contains_leak_marker(&compat.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_esgate_cannot_read_is_refused_with_406_in_elasticsearch_json() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    for accept in [
        "application/yaml",
        "application/cbor",
        "application/smile",
        "application/vnd.elasticsearch+yaml; compatible-with=8",
        "application/json, application/cbor;q=0.1",
        "application/vnd.elasticsearch+json; compatible-with=6",
    ] {
        let r = send(
            "GET",
            &gw.url("/logs-*/_search?size=50"),
            &[("authorization", auth.as_str()), ("accept", accept)],
            "",
        )
        .await
        .expect("esgate answers");
        assert_eq!(r.status, 406, "{accept}: {}", r.text());
        assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
        let v = r.json();
        assert_eq!(v["status"], json!(406), "{accept}: {v}");
        assert_eq!(
            v["error"]["type"],
            json!("media_type_header_exception"),
            "{v}"
        );
        assert!(
            v["error"]["reason"]
                .as_str()
                .is_some_and(|s| s.contains("application/json")),
            "{accept}: the reason does not say what to ask for: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esgates_own_errors_are_json_a_compatible_client_can_read() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let good = bearer(&secret);
    let bad = bearer("esg_not_a_real_token");
    // (method, path, authorization, expected status)
    let cases = [
        ("DELETE", "/logs-a/_doc/a1", good.as_str(), 403),
        ("GET", "/logs-b/_doc/b1", good.as_str(), 403),
        ("POST", "/_sql/translate", good.as_str(), 403),
        ("POST", "/_sql", good.as_str(), 400),
        ("GET", "/logs-*/_count", bad.as_str(), 401),
    ];
    for (method, path, auth, status) in cases {
        let r = send(
            method,
            &gw.url(path),
            &[("authorization", auth), ("accept", COMPAT8_JSON)],
            "",
        )
        .await
        .expect("esgate answers");
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.text());
        assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.contains("json"), "{method} {path}: content-type {ct}");
        let v = r.json();
        assert_eq!(v["status"], json!(status), "{v}");
        assert!(v["error"]["reason"].is_string(), "{v}");
    }
    // The root, answered by the backend, works for a compatible client too.
    let r = send(
        "GET",
        &gw.url("/"),
        &[("authorization", good.as_str()), ("accept", COMPAT8_JSON)],
        "",
    )
    .await
    .expect("esgate answers");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["version"]["number"].is_string(), "{}", r.text());
}

/// The media headers of every data request a backend received: (path, accept, content-type).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A backend that records the media headers of each request and answers `_resolve/index` with
/// `logs-a` and `logs-b`, everything else `{}`.
async fn recording_backend() -> (String, Seen) {
    use hyper::service::service_fn;
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let log = Arc::clone(&log);
                async move {
                    let (parts, body) = req.into_parts();
                    let _ = body.collect().await;
                    let header = |name| {
                        parts
                            .headers
                            .get(name)
                            .and_then(|v: &http::HeaderValue| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let path = parts.uri.path().to_owned();
                    let answer = if path.starts_with("/_resolve/index/") {
                        r#"{"indices":[{"name":"logs-a"},{"name":"logs-b"}],"aliases":[],"data_streams":[]}"#
                    } else {
                        log.lock().unwrap().push((
                            path,
                            header(http::header::ACCEPT),
                            header(http::header::CONTENT_TYPE),
                        ));
                        "{}"
                    };
                    let mut r = http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(answer.as_bytes()),
                    ));
                    r.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_media_headers_carry_the_clients_compatible_version_on_both_sides() {
    const COMPAT9_JSON: &str = "application/vnd.elasticsearch+json; compatible-with=9";
    let (url, seen) = recording_backend().await;
    let gw = Esgate::start(&[&url], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    // (method, path, accept, content-type, body) → (upstream accept, upstream content-type)
    let cases: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
        (
            "POST",
            "/logs-*/_search",
            "",
            "",
            r#"{"size":1}"#,
            "application/json",
            "application/json",
        ),
        (
            "POST",
            "/logs-*/_search",
            COMPAT8_JSON,
            COMPAT8_JSON,
            r#"{"size":1}"#,
            COMPAT8_JSON,
            COMPAT8_JSON,
        ),
        // A compatible Accept alone: the body esgate builds is versioned the same way.
        (
            "GET",
            "/logs-*/_search",
            COMPAT9_JSON,
            "",
            "",
            COMPAT9_JSON,
            COMPAT9_JSON,
        ),
        // A compatible Content-Type alone: Accept follows it.
        (
            "POST",
            "/logs-*/_count",
            "*/*",
            COMPAT8_JSON,
            r#"{"query":{"match_all":{}}}"#,
            COMPAT8_JSON,
            COMPAT8_JSON,
        ),
        // msearch as compatible JSON goes up as compatible NDJSON.
        (
            "POST",
            "/_msearch",
            COMPAT8_JSON,
            COMPAT8_JSON,
            "{\"index\":\"logs-*\"}\n{}\n",
            COMPAT8_JSON,
            COMPAT8_NDJSON,
        ),
    ];
    for (method, path, accept, ct, body, up_accept, up_ct) in cases {
        seen.lock().unwrap().clear();
        let mut headers = vec![("authorization", auth.as_str())];
        if !accept.is_empty() {
            headers.push(("accept", accept));
        }
        if !ct.is_empty() {
            headers.push(("content-type", ct));
        }
        let r = send(method, &gw.url(path), &headers, body.to_string())
            .await
            .expect("esgate answers");
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "{method} {path}: {got:?}");
        assert_eq!(
            (got[0].1.as_str(), got[0].2.as_str()),
            (*up_accept, *up_ct),
            "{method} {path} accept={accept:?} content-type={ct:?}"
        );
    }
}
