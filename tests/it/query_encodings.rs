//! attack29 (session 29, perf29c): the small request's own path (a text with nothing to
//! percent-decode copied whole, no URI search pass when no URI search parameter is there, the
//! bodiless search's upstream request returned as made) under path and query encodings: every
//! search esgate forwards carries the token's filter in its body and none of the parameters
//! it must take out (`q`, `df`, `source`, ... however spelled), and what it cannot read
//! exactly is refused.
//!
//! Invariant: each case sends real bytes over a real socket to esgate in front of a recording
//! fake and asserts the status and, when forwarded, exactly what the fake received.

use crate::support;

use serde_json::json;
use support::esgate::Esgate;
use support::http::{bearer, send};
use support::recording::Recording;

/// The parameters a forwarded search must never carry (esgate takes them into the body or
/// refuses them).
const TAKEN: &[&str] = &[
    "q",
    "df",
    "analyzer",
    "analyze_wildcard",
    "default_operator",
    "lenient",
    "source",
    "source_content_type",
];

/// attack29: search requests (GET, POST, HEAD) with and without a body, with the URI-search
/// parameters and the `source` parameter spelled every way (encoded keys, repeated, doubled
/// `%25`, `+` and NUL around the name, invalid escapes and UTF-8), on index paths spelled every
/// way (encoded
/// letters, `%2A`, `%2F..`, `%00`, an encoded `?`): a refusal is a 4xx with nothing forwarded
/// for it; a forwarded search goes to `logs-a` only, its body holds the token's filter, its
/// query holds no taken parameter and no NUL. Would fail if a fast path (the copy of a text
/// with no `%`, the skipped URI search pass, the bodiless search returned as made) forwarded
/// a parameter it should have taken out or a body without the filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_search_is_filtered_or_refused() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    let search = json!({"took": 1, "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}});
    es.script_json("POST", "/", 200, search);
    let gw = Esgate::start(&[es.url()], "").await;
    let auth = bearer(&gw.tenant_token("a").await);
    let source = "%7B%22query%22%3A%7B%22match_all%22%3A%7B%7D%7D%7D";
    let queries: Vec<String> = [
        "",
        "?",
        "?&&",
        "?size=1",
        "?size=1&size=2",
        "?q=user:bob",
        "?%71=user:bob",
        "?%51=user:bob",
        "?Q=user:bob",
        "?q=user:bob&q=user:alice",
        "?q=%2541",
        "?q",
        "?q=",
        "?=x",
        "?+q=x",
        "?q+=x",
        "?q%00=x",
        "?%00=x",
        "?q=a%00b",
        "?q=a%",
        "?q=%zz",
        "?q=%C3",
        "?df=user",
        "?%64f=user",
        "?df=user&q=bob",
        "?analyze_wildcard=true",
        "?source_content_type=application/json",
        "?typed_keys&rest_total_hits_as_int=true",
        "?size=1;q=user:bob",
        "?size=1%3Bq=user:bob",
        "?pretty&q=bob&pretty",
    ]
    .iter()
    .map(|q| q.to_string())
    .chain([
        format!("?source={source}&source_content_type=application/json"),
        format!("?%73ource={source}&source_content_type=application/json"),
        format!("?source={source}"),
        format!("?q=bob&source={source}&source_content_type=application/json"),
    ])
    .collect();
    let paths = [
        "/logs-a/_search",
        "/logs-%61/_search",
        "/%6Cogs-a/_search",
        "/logs-a/%5Fsearch",
        "/logs-a/_search/",
        "/logs-%2A/_search",
        "/logs-*/_search",
        "/_search",
        "/logs-a%00/_search",
        "/logs-a/_search%3Fq=x",
        "/logs-a%2F..%2Flogs-b/_search",
        "/%2e%2e/_search",
        "/logs-a/_count",
    ];
    let bodies: [(&str, &str, &str); 6] = [
        ("GET", "", ""),
        ("HEAD", "", ""),
        ("HEAD", "application/json", "{\"query\":{\"match_all\":{}}}"),
        ("POST", "", ""),
        ("GET", "application/json", "{}"),
        ("POST", "application/json", "{\"size\": 0}"),
    ];
    let mut forwarded = 0;
    for path in paths {
        for query in &queries {
            for (method, ct, body) in bodies {
                es.clear();
                let mut headers = vec![("authorization", auth.as_str())];
                if !ct.is_empty() {
                    headers.push(("content-type", ct));
                }
                let url = gw.url(&format!("{path}{query}"));
                let r = send(method, &url, &headers, body.to_string())
                    .await
                    .unwrap();
                let shown = format!("{method} {path}{query} {body:?}: {}", r.status);
                // The searches forwarded (not the index lookups).
                let sent: Vec<_> = es
                    .requests()
                    .into_iter()
                    .filter(|r| !r.path.starts_with("/_resolve") && !r.path.contains("_field_caps"))
                    .collect();
                if !r.status.is_success() {
                    assert!(r.status.is_client_error(), "{shown} {}", r.text());
                    assert!(sent.is_empty(), "{shown}: {sent:?}");
                    continue;
                }
                assert_eq!(sent.len(), 1, "{shown}: {sent:?}");
                let s = &sent[0];
                forwarded += 1;
                assert!(s.path.starts_with("/logs-a/"), "{shown}: {}", s.path);
                let text = String::from_utf8_lossy(&s.body);
                assert!(
                    text.contains(r#"{"term":{"tenant":{"value":"a"}}}"#),
                    "{shown}: the filter: {text}"
                );
                for (k, v) in s.params() {
                    assert!(!TAKEN.contains(&k.as_str()), "{shown}: {k}={v}");
                    assert!(!k.contains('\0') && !v.contains('\0'), "{shown}");
                }
                assert!(!s.path.contains('\0') && !s.path.contains("%00"), "{shown}");
                // A URI search forwarded holds the client's query, wrapped under the filter.
                // (decoded once: `%2541` is the text `%41`, `%71` the name `q`).
                if query.contains("user:bob") || query.contains("q=bob") {
                    assert!(text.contains("query_string"), "{shown}: {text}");
                    let q = if query.contains("bob") && !query.contains("user:bob") {
                        "bob"
                    } else {
                        "user:bob"
                    };
                    assert!(text.contains(&format!("\"{q}\"")), "{shown}: {text}");
                }
                if query.contains("%2541") {
                    assert!(text.contains("\"%41\""), "{shown}: {text}");
                }
            }
        }
    }
    assert!(forwarded > 100, "{forwarded}");
}
