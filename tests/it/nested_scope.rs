//! Nested aggregations stay inside the documents the token's filter matched (aggs16), against
//! the real backends: osmem (OpenSearch dialect) and noida (Elasticsearch 8 dialect).
//!
//! Elasticsearch and OpenSearch join nested documents by position in the shard:
//! `reverse_nested` with a `path` takes the next document of that path after each nested one
//! (`ReverseNestedAggregator`, `nextSetBit`), `nested` the documents of its path between the
//! previous document of the enclosing scope and the current one (`prevSetBit`), and a `nested`
//! query inside a nested aggregation joins to the enclosing scope the same way. With a path
//! that is not below (for `reverse_nested`: not above) the enclosing scope, the join lands in
//! neighbouring documents, whoever owns them: tenant a's `items` object is followed in the
//! shard by tenant b's `notes` object here, so `reverse_nested: {path: notes}` under
//! `nested: {path: items}` hands tenant b's `notes.author` to tenant a's sub-aggregations.
//!
//! Neither test backend reproduces the join (both compute nested aggregations per document, and
//! noida has no `reverse_nested`): the leak is read from Elasticsearch's and OpenSearch's code,
//! and what these tests hold is esgate's side. Invariant: the refused forms never reach the
//! backend (esgate's own 403), and the forms that stay inside the scope answer with tenant a's
//! documents only (expected values from the documents this file writes).

use crate::support;

use serde_json::{json, Value};

use support::backend::Backend;
use support::corpus::token_a;
use support::esgate::Esgate;
use support::http::{bearer, send, Reply};

async fn call(url: &str, auth: Option<&str>, method: &str, body: &Value) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    send(method, url, &headers, body.to_string().into_bytes())
        .await
        .expect("answers")
}

/// `logs-n`, one shard: tenant a's document (an `items` object) written just before tenant b's
/// (a `notes` object by `zed`), so b's nested object is the next `notes` document after a's.
async fn write_index(base: &str) {
    let mappings = json!({"dynamic": "strict", "properties": {
        "tenant": {"type": "keyword"},
        "items": {"type": "nested", "properties": {"sku": {"type": "keyword"}}},
        "notes": {"type": "nested", "properties": {"author": {"type": "keyword"}}},
    }});
    let r = call(
        &format!("{base}/logs-n"),
        None,
        "PUT",
        &json!({"settings": {"number_of_shards": 1}, "mappings": mappings}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bulk = [
        json!({"index": {"_index": "logs-n", "_id": "a1"}}),
        json!({"tenant": "a", "items": [{"sku": "s1"}]}),
        json!({"index": {"_index": "logs-n", "_id": "b1"}}),
        json!({"tenant": "b", "notes": [{"author": "zed"}]}),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    let r = send(
        "POST",
        &format!("{base}/_bulk?refresh=true"),
        &[("content-type", "application/x-ndjson")],
        bulk.into_bytes(),
    )
    .await
    .expect("answers");
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(r.json()["errors"], json!(false), "{}", r.text());
}

fn search(aggs: Value) -> Value {
    json!({"size": 0, "aggs": aggs})
}

async fn nested_paths_outside_the_scope_are_refused(backend: Backend, reverse_nested: bool) {
    let base = backend.url();
    write_index(base).await;
    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let authors = json!({"a": {"terms": {"field": "notes.author"}}});
    let refused = [
        json!({"i": {"nested": {"path": "items"}, "aggs": {"r": {"reverse_nested": {"path": "notes"}, "aggs": authors}}}}),
        json!({"i": {"nested": {"path": "items"}, "aggs": {"n": {"nested": {"path": "notes"}, "aggs": authors}}}}),
        json!({"i": {"nested": {"path": "items"}, "aggs": {"f": {"filter": {"nested": {"path": "notes",
            "query": {"term": {"notes.author": "zed"}}}}}}}}),
    ];
    let in_query = json!({"query": {"nested": {"path": "items", "query": {"nested": {"path": "notes",
        "query": {"term": {"notes.author": "zed"}}}}}}});
    for body in refused.into_iter().map(search).chain([in_query.clone()]) {
        let r = call(&gw.url("/logs-*/_search"), Some(&auth), "POST", &body).await;
        assert_eq!(r.status, 403, "{body}: {}", r.text());
        assert!(!r.text().contains("zed"), "{}", r.text());
    }
    let r = call(&gw.url("/logs-*/_count"), Some(&auth), "POST", &in_query).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Inside the scope: down from the root, and (osmem: noida has no `reverse_nested`) back to
    // the root and down again from it, tenant a's own.
    let body = search(
        json!({"i": {"nested": {"path": "items"}, "aggs": {"s": {"terms": {"field": "items.sku"}}}},
        "n": {"nested": {"path": "notes"}, "aggs": authors}}),
    );
    let r = call(&gw.url("/logs-*/_search"), Some(&auth), "POST", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let aggs = &r.json()["aggregations"];
    assert_eq!(
        aggs["i"]["s"]["buckets"],
        json!([{"key": "s1", "doc_count": 1}]),
        "{}",
        r.text()
    );
    assert_eq!(aggs["n"]["doc_count"], json!(0), "{}", r.text());
    if !reverse_nested {
        return;
    }
    let body = search(
        json!({"i": {"nested": {"path": "items"}, "aggs": {"r": {"reverse_nested": {},
        "aggs": {"t": {"terms": {"field": "tenant"}}, "n": {"nested": {"path": "notes"}, "aggs": authors}}}}}}),
    );
    let r = call(&gw.url("/logs-*/_search"), Some(&auth), "POST", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let back = &r.json()["aggregations"]["i"]["r"];
    assert_eq!(back["doc_count"], json!(1), "{}", r.text());
    assert_eq!(
        back["t"]["buckets"],
        json!([{"key": "a", "doc_count": 1}]),
        "{}",
        r.text()
    );
    assert_eq!(back["n"]["doc_count"], json!(0), "{}", r.text());
    assert_eq!(back["n"]["a"]["buckets"], json!([]), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_paths_outside_the_scope_are_refused_on_osmem() {
    nested_paths_outside_the_scope_are_refused(Backend::osmem(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_paths_outside_the_scope_are_refused_on_noida() {
    nested_paths_outside_the_scope_are_refused(Backend::noida(), false).await;
}
