//! Third security review: properties that hold today and that the corpus cannot express
//! (every route where a wildcard reaching nothing is forwarded as `*,-*`, on both backends;
//! what `_has_privileges` claims; `_explain` answers compared across ids and paths).
//!
//! Invariant: each test asserts what the promise requires of a `read` token for tenant `a` on
//! `logs-*` (no 5xx, no foreign document, count, index name or field; a foreign document
//! answered like a missing one), never what esgate happens to answer.

mod support;

use serde_json::{json, Value};

use support::corpus::{max_count, token_a};
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send, Reply};

async fn call(
    gw: &Esgate,
    auth: &str,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> Reply {
    let mut headers = vec![("authorization", auth)];
    let bytes = match &body {
        Some((ct, b)) => {
            headers.push(("content-type", ct));
            b.clone().into_bytes()
        }
        None => Vec::new(),
    };
    send(method, &gw.url(path), &headers, bytes)
        .await
        .expect("esgate answers")
}

fn json_body(v: Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

/// Names only tenant a's token may never see in an answer: the foreign index, the alias that
/// points at it, and the foreign documents' markers.
fn leaks(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    if fixture::contains_leak_marker(body) {
        return Some("a leak marker".into());
    }
    for name in [fixture::INDEX_SECRET, fixture::ALIAS_SECRET] {
        if text.contains(&format!("\"{name}\"")) || text.contains(&format!(" {name} ")) {
            return Some(format!("the index name {name}"));
        }
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
        // How many shards answered is not a count of documents.
        if let Some(m) = v.as_object_mut() {
            m.remove("_shards");
        }
        let n = max_count(&v);
        if n > 0 {
            return Some(format!("a count of {n} where nothing may be reached"));
        }
    }
    None
}

/// Every route that takes an index expression, asked with a wildcard that reaches none of the
/// token's indices (esgate forwards `*,-*`): no 5xx, no foreign name, document or count.
/// The second token's pattern reaches nothing at all, so even the index-less forms narrow to
/// `*,-*`.
/// `opensearch`: the backend speaks OpenSearch (its point in time is
/// `_search/point_in_time`; Elasticsearch's is `_pit`, and noida answers the OpenSearch path as
/// a plain search, which esgate rightly reports as a backend failure).
async fn wildcards_reaching_nothing_answer_nothing(backend: &str, opensearch: bool) {
    let gw = Esgate::start(&[backend], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let (_, none_secret) = gw
        .token(json!({"name": "nothing", "filters": [{"field": "tenant", "value": "a"}],
            "indices": ["nomatch-*"]}))
        .await;
    let ndjson = |h: &str| Some(("application/x-ndjson", format!("{h}\n{{}}\n")));
    let cases: Vec<(&str, &str, &str, Option<(&str, String)>)> = vec![
        ("a", "GET", "/logs-zz*/_search", None),
        ("a", "GET", "/logs-zz*/_search?allow_no_indices=false", None),
        ("a", "GET", "/logs-zz*/_search?ignore_unavailable=true", None),
        (
            "a",
            "POST",
            "/logs-zz*/_search",
            json_body(json!({"size": 0, "aggs": {"t": {"terms": {"field": "tenant"}}}})),
        ),
        ("a", "GET", "/logs-zz*,sec*/_search", None),
        ("a", "GET", "/logs-zz*/_count", None),
        ("a", "POST", "/_msearch", ndjson(r#"{"index": "logs-zz*"}"#)),
        ("a", "POST", "/logs-zz*/_msearch", ndjson("{}")),
        (
            "a",
            "POST",
            "/_msearch",
            ndjson(r#"{"index": ["logs-zz*", "sec*"]}"#),
        ),
        ("a", "GET", "/logs-zz*/_field_caps?fields=*", None),
        ("a", "GET", "/logs-zz*/_mapping", None),
        ("a", "GET", "/logs-zz*/_mapping/field/user", None),
        ("a", "GET", "/_resolve/index/logs-zz*", None),
        ("a", "GET", "/_resolve/index/logs-zz*,sec*", None),
        (
            "a",
            "POST",
            "/logs-zz*/_terms_enum",
            json_body(json!({"field": "user"})),
        ),
        ("a", "GET", "/_cat/indices/logs-zz*?format=json", None),
        ("a", "GET", "/_cat/indices/logs-zz*", None),
        ("a", "POST", "/logs-zz*/_async_search?size=0", None),
        ("a", "POST", "/logs-zz*/_pit?keep_alive=1m", None),
        (
            "a",
            "POST",
            "/logs-zz*/_search/point_in_time?keep_alive=1m",
            None,
        ),
        (
            "a",
            "POST",
            "/logs-zz*/_eql/search",
            json_body(json!({"query": "any where true"})),
        ),
        ("a", "GET", "/logs-zz*/_validate/query", None),
        ("none", "GET", "/_search", None),
        ("none", "GET", "/_count", None),
        ("none", "GET", "/_field_caps?fields=*", None),
        ("none", "GET", "/_mapping", None),
        ("none", "GET", "/_cat/indices?format=json", None),
        ("none", "POST", "/_msearch", ndjson("{}")),
        ("none", "GET", "/_resolve/index/*", None),
        ("none", "POST", "/_terms_enum", json_body(json!({"field": "user"}))),
        ("none", "POST", "/_pit?keep_alive=1m", None),
        ("none", "POST", "/_search/point_in_time?keep_alive=1m", None),
        ("none", "POST", "/_async_search?size=0", None),
    ];
    let mut failures = Vec::new();
    for (who, method, path, body) in cases {
        let pit = if opensearch { "_pit" } else { "point_in_time" };
        if path.contains(pit) {
            continue;
        }
        let auth = bearer(if who == "a" { &secret } else { &none_secret });
        let r = call(&gw, &auth, method, path, body).await;
        if r.status.as_u16() >= 500 {
            failures.push(format!("{who} {method} {path}: {} {}", r.status, r.text()));
        } else if let Some(what) = leaks(&r.body) {
            failures.push(format!("{who} {method} {path}: {what} in {}", r.text()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_reaching_nothing_answer_nothing_osmem() {
    let backend = fixture::seeded_osmem();
    wildcards_reaching_nothing_answer_nothing(backend.url(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_reaching_nothing_answer_nothing_noida() {
    let backend = fixture::seeded_noida();
    wildcards_reaching_nothing_answer_nothing(backend.url(), false).await;
}
