//! URI search, `_validate/query`, kNN (`_knn_search`, top-level `knn`) and hidden indices,
//! against the real backends: osmem (OpenSearch dialect) and noida (Elasticsearch 8 dialect,
//! the only one with top-level kNN).
//!
//! Invariant: every test judges what the promise requires (tenant `a` on its patterns never sees
//! a tenant-b, `secret` or hidden document, term or count), with expected numbers from the
//! fixture's constants or from the documents this file writes, never from esgate's output.

use crate::support;

use serde_json::{json, Value};

use support::backend::Backend;
use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};
use support::http::{bearer, send, Reply};
use support::http::{hit_ids, send_json};
use support::recording::Recording;

async fn call(gw: &Esgate, secret: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    send(
        method,
        &gw.url(path),
        &[("authorization", &bearer(secret))],
        bytes,
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e:?}"))
}

/// Writes to the backend directly (not through esgate); panics unless 2xx.
async fn backend(b: &Backend, method: &str, path: &str, body: Value) {
    let ct = if path.contains("_bulk") {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let text = match body {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let r = send(
        method,
        &format!("{}{path}", b.url()),
        &[("content-type", ct)],
        text,
    )
    .await
    .unwrap();
    assert!(r.status.is_success(), "{method} {path}: {}", r.text());
}

fn total(r: &Reply) -> u64 {
    r.json()["hits"]["total"]["value"]
        .as_u64()
        .unwrap_or_else(|| panic!("no hits.total: {}", r.text()))
}

/// The URI-search and validate checks, on either backend.
async fn uri_search_and_validate(b: &Backend) {
    let gw = Esgate::start(&[b.url()], "").await;
    let (_, a) = gw.token(token_a()).await;
    // `q` matches tenant b's documents only: none of them come back.
    for path in [
        "/logs-*/_search?q=tenant:b&size=50",
        "/_search?q=user:bob*&size=50",
        "/logs-a,logs-b/_search?q=leakmarkerb&df=message&size=50",
        "/logs-*/_search?q=_index:secret%20OR%20tenant:b&default_operator=or&size=50",
    ] {
        let r = call(&gw, &a, "GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(total(&r), 0, "{path}: {}", r.text());
        assert!(!contains_leak_marker(&r.body), "{path}");
    }
    // `q` matching everything counts exactly tenant a's documents, on every route form.
    for (method, path, at) in [
        ("GET", "/logs-*/_search?q=*&size=50", "hits.total.value"),
        (
            "POST",
            "/_search?q=*:*&analyze_wildcard=true&lenient=true",
            "hits.total.value",
        ),
        ("GET", "/logs-*/_count?q=*", "count"),
        ("POST", "/_count?q=user:alice&default_operator=AND", "count"),
    ] {
        let r = call(&gw, &a, method, path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(
            support::corpus::at_path(&r.json(), at),
            Some(&json!(fixture::TENANT_A_DOCS)),
            "{path}: {}",
            r.text()
        );
    }
    // A second query, or a companion alone, is a 400; never forwarded.
    let r = call(
        &gw,
        &a,
        "POST",
        "/logs-*/_search?q=*",
        Some(json!({"query": {"match_all": {}}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = call(&gw, &a, "GET", "/logs-*/_count?df=user", None).await;
    assert_eq!(r.status, 400, "{}", r.text());

    // `_validate/query`: valid, never a foreign term; no explanation (review 16: it showed the
    // token's filter, `tenant:a`, and prints a shard's rewrite of date ranges).
    for (path, body) in [
        ("/logs-*/_validate/query", None),
        (
            "/logs-a/_validate/query?explain=false",
            Some(json!({"query": {"prefix": {"user": "b"}}})),
        ),
        ("/_validate/query?q=user:b*", None::<Value>),
    ] {
        let r = call(&gw, &a, "POST", path, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["valid"], json!(true), "{path}: {v}");
        assert!(!r.text().contains("tenant"), "{path}: {v}");
        assert!(!contains_leak_marker(&r.body), "{path}: {v}");
        assert!(!r.text().contains("secret"), "{path}: {v}");
    }
    for path in [
        "/logs-*/_validate/query?explain=true",
        "/logs-a/_validate/query?explain",
        "/_validate/query?explain=true&q=user:b*",
    ] {
        let r = call(&gw, &a, "POST", path, None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(!r.text().contains("tenant"), "{path}: {}", r.text());
    }
    for path in [
        "/logs-*/_validate/query?rewrite=true",
        "/logs-*/_validate/query?explain=true&all_shards=true",
        "/secret/_validate/query",
        "/logs-sa/_validate/query?explain=true",
    ] {
        let r = call(
            &gw,
            &a,
            "POST",
            path,
            Some(json!({"query": {"match_all": {}}})),
        )
        .await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uri_search_and_validate_query_stay_inside_the_filters_osmem() {
    uri_search_and_validate(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uri_search_and_validate_query_stay_inside_the_filters_noida() {
    uri_search_and_validate(&fixture::seeded_noida()).await;
}

/// `vec-a`: tenant b's documents sit right on the query vector, tenant a's further away.
const TENANT_A_VECTORS: &[(&str, [f64; 2])] = &[("va1", [0.0, 1.0]), ("va2", [0.2, 1.0])];
const TENANT_B_VECTORS: &[(&str, [f64; 2])] = &[
    ("vb1", [1.0, 0.0]),
    ("vb2", [1.0, 0.01]),
    ("vb3", [0.99, 0.0]),
];

async fn seed_vectors(b: &Backend) {
    backend(
        b,
        "PUT",
        "/vec-a",
        json!({"mappings": {"properties": {
            "tenant": {"type": "keyword"},
            "message": {"type": "text"},
            "v": {"type": "dense_vector", "dims": 2, "index": true, "similarity": "l2_norm"}
        }}}),
    )
    .await;
    let mut bulk = String::new();
    for (tenant, docs) in [("a", TENANT_A_VECTORS), ("b", TENANT_B_VECTORS)] {
        for (id, v) in docs {
            let message = if tenant == "b" {
                format!("near {}", fixture::LEAKMARKER_B)
            } else {
                "far".to_string()
            };
            bulk.push_str(&json!({"index": {"_index": "vec-a", "_id": id}}).to_string());
            bulk.push('\n');
            bulk.push_str(&json!({"tenant": tenant, "message": message, "v": v}).to_string());
            bulk.push('\n');
        }
    }
    backend(b, "POST", "/_bulk?refresh=true", Value::String(bulk)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knn_never_returns_a_foreign_nearest_neighbour_noida() {
    let b = Backend::noida();
    seed_vectors(&b).await;
    let gw = Esgate::start(&[b.url()], "").await;
    let (_, a) = gw
        .token(json!({"name": "vec-a", "indices": ["vec-*"],
            "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    let all: Vec<String> = TENANT_A_VECTORS
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    let knn = json!({"field": "v", "query_vector": [1.0, 0.0], "k": 2, "num_candidates": 10});

    // Without esgate, the nearest neighbours are tenant b's (the test is meaningful).
    let direct = send(
        "POST",
        &format!("{}/vec-a/_search", b.url()),
        &[],
        json!({"knn": knn}).to_string(),
    )
    .await
    .unwrap();
    assert!(contains_leak_marker(&direct.body), "{}", direct.text());

    // `_knn_search`, translated to a search with the token's filters inside `knn.filter`.
    let r = call(
        &gw,
        &a,
        "POST",
        "/vec-*/_knn_search",
        Some(json!({"knn": knn})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hit_ids(&r), all, "{}", r.text());
    assert!(!contains_leak_marker(&r.body));
    // With the request's own filter too (kept beside the token's).
    let r = call(
        &gw,
        &a,
        "GET",
        "/vec-a/_knn_search",
        Some(json!({"knn": knn, "filter": {"term": {"message": "far"}}, "_source": ["tenant"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hit_ids(&r), all, "{}", r.text());
    // A request filter that would select tenant b selects nothing.
    let r = call(
        &gw,
        &a,
        "POST",
        "/vec-a/_knn_search",
        Some(json!({"knn": knn, "filter": {"term": {"tenant": "b"}}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(hit_ids(&r).is_empty(), "{}", r.text());

    // Top-level `knn` in `_search`: an object and a list.
    for body in [
        json!({"knn": knn}),
        json!({"knn": [knn, {"field": "v", "query_vector": [0.9, 0.1], "k": 3, "num_candidates": 10}]}),
        json!({"knn": knn, "query": {"match": {"message": "near"}}}),
    ] {
        let r = call(&gw, &a, "POST", "/vec-a/_search", Some(body.clone())).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert!(!contains_leak_marker(&r.body), "{body}: {}", r.text());
        let got = hit_ids(&r);
        assert!(got.iter().all(|id| all.contains(id)), "{body}: {got:?}");
    }
    // Retrievers: every kNN and standard leaf is filtered (nested `rrf` is refused by this
    // backend; the unit tests of `es::dsl::retriever` cover nesting).
    for body in [
        json!({"retriever": {"knn": knn}}),
        json!({"retriever": {"rrf": {"retrievers": [
            {"standard": {"query": {"match": {"message": "near"}}}},
            {"knn": knn},
            {"standard": {}}
        ]}}, "size": 10}),
    ] {
        let r = call(&gw, &a, "POST", "/vec-a/_search", Some(body.clone())).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert!(!contains_leak_marker(&r.body), "{body}: {}", r.text());
        assert_eq!(hit_ids(&r), all, "{body}: {}", r.text());
    }
    // A retriever type that cannot be filtered, or a query beside a retriever, is refused.
    for (body, status) in [
        (
            json!({"retriever": {"pinned": {"ids": ["vb1"], "retriever": {"knn": knn}}}}),
            403,
        ),
        (
            json!({"retriever": {"knn": knn}, "query": {"match_all": {}}}),
            400,
        ),
    ] {
        let r = call(&gw, &a, "POST", "/vec-a/_search", Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    // Undocumented `_knn_search` keys are refused.
    let r = call(
        &gw,
        &a,
        "POST",
        "/vec-a/_knn_search",
        Some(json!({"knn": knn, "aggs": {"t": {"terms": {"field": "tenant"}}}})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
}

/// Adds hidden indices beside the fixture: `logs-h` (`index.hidden`, matches `logs-*`, with an
/// alias `logs-ha`) and `.alerts-x` (hidden dot-index), each holding tenant-a documents whose
/// message carries [`HIDDEN_MARKER`].
const HIDDEN_MARKER: &str = "hiddenmarker";
const HIDDEN_DOCS: u64 = 2;

async fn seed_hidden(b: &Backend) {
    for index in ["logs-h", ".alerts-x"] {
        backend(
            b,
            "PUT",
            &format!("/{index}"),
            json!({"settings": {"index": {"hidden": true}}, "mappings": fixture::mappings()}),
        )
        .await;
        for n in 1..=HIDDEN_DOCS {
            backend(
                b,
                "PUT",
                &format!("/{index}/_doc/h{n}?refresh=true"),
                json!({"tenant": "a", "user": "alice", "message": format!("{HIDDEN_MARKER} {n}")}),
            )
            .await;
        }
    }
    backend(
        b,
        "POST",
        "/_aliases",
        json!({"actions": [{"add": {"index": "logs-h", "alias": "logs-ha"}}]}),
    )
    .await;
}

fn has_hidden(r: &Reply) -> bool {
    r.text().to_lowercase().contains(HIDDEN_MARKER)
}

async fn hidden_indices(b: &Backend) {
    seed_hidden(b).await;
    let gw = Esgate::start(&[b.url()], "").await;
    let (_, a) = gw.token(token_a()).await;
    let (_, star) = gw
        .token(json!({"name": "star", "indices": ["*"],
            "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    // Wildcards, `_all` and no index: the hidden documents are never reached. `*` reaches
    // `secret` (tenant a's documents there count), `logs-*` does not.
    for (secret, visible) in [
        (&a, fixture::TENANT_A_DOCS),
        (&star, fixture::TENANT_A_DOCS_ALL_INDICES),
    ] {
        for (method, path) in [
            ("GET", "/_search?size=50"),
            ("GET", "/_all/_search?size=50&expand_wildcards=open"),
            ("GET", "/*/_search?size=50"),
            ("GET", "/logs-*/_search?size=50&q=message:hiddenmarker"),
            ("GET", "/l*,-logs-a/_search?size=50"),
            ("GET", "/_count"),
        ] {
            let r = call(&gw, secret, method, path, None).await;
            assert!(r.status.as_u16() < 500, "{path}: {}", r.text());
            assert!(!has_hidden(&r), "{path}: {}", r.text());
            let v = r.json();
            let n = v["count"]
                .as_u64()
                .or_else(|| v["hits"]["total"]["value"].as_u64());
            if !path.contains("q=") && !path.contains("-logs-a") {
                assert_eq!(n, Some(visible), "{path}: {v}");
            }
        }
        let r = call(&gw, secret, "GET", "/_resolve/index/*", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        for name in ["logs-h", "logs-ha", ".alerts-x"] {
            assert!(!r.text().contains(name), "{name} in {}", r.text());
        }
        // msearch headers, wildcard or named.
        let ndjson = "{\"index\":\"*\"}\n{\"size\":50}\n{}\n{\"size\":50}\n";
        let r = send(
            "POST",
            &gw.url("/_msearch"),
            &[
                ("authorization", &bearer(secret)),
                ("content-type", "application/x-ndjson"),
            ],
            ndjson,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!has_hidden(&r), "{}", r.text());
        // Named explicitly, through its alias or with a client `expand_wildcards`: refused.
        for path in [
            "/logs-h/_search",
            "/logs-ha/_search",
            "/logs-a,logs-h/_count",
            "/.alerts-x/_search",
            "/logs-*/_search?expand_wildcards=all",
            "/logs-*/_search?expand_wildcards=open,hidden",
            "/logs-h/_validate/query",
            "/logs-h/_mapping",
            "/logs-ha/_field_caps?fields=*",
            "/_resolve/index/logs-h",
            "/_resolve/index/logs-ha",
        ] {
            let r = call(&gw, secret, "GET", path, None).await;
            assert!(
                (400..500).contains(&r.status.as_u16()),
                "{path}: {} {}",
                r.status,
                r.text()
            );
            assert!(!has_hidden(&r), "{path}");
        }
        // A wildcard over hidden names the token's patterns cannot reach searches nothing.
        let r = call(&gw, secret, "GET", "/.alerts-*/_search", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["hits"]["total"]["value"], 0, "{}", r.text());
        assert!(!has_hidden(&r));
        let body = "{\"index\":\"logs-h\"}\n{}\n";
        let r = send(
            "POST",
            &gw.url("/_msearch"),
            &[
                ("authorization", &bearer(secret)),
                ("content-type", "application/x-ndjson"),
            ],
            body,
        )
        .await
        .unwrap();
        assert!(!has_hidden(&r), "{}", r.text());
    }
    // A token whose pattern names hidden indices reaches them, wildcards included.
    let (_, alerts) = gw
        .token(json!({"name": "alerts", "indices": [".alerts-*"],
            "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    for path in [
        "/_search?size=50",
        "/.alerts-*/_search?size=50",
        "/.alerts-x/_search",
    ] {
        let r = call(&gw, &alerts, "GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(total(&r), HIDDEN_DOCS, "{path}: {}", r.text());
    }
    let (_, named) = gw
        .token(json!({"name": "named", "indices": ["logs-*", "logs-h"],
            "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    let r = call(&gw, &named, "GET", "/logs-h/_count", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["count"], json!(HIDDEN_DOCS), "{}", r.text());
    let r = call(&gw, &named, "GET", "/_count", None).await;
    assert_eq!(
        r.json()["count"],
        json!(fixture::TENANT_A_DOCS + HIDDEN_DOCS),
        "{}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_indices_are_reached_only_by_tokens_that_name_them_osmem() {
    hidden_indices(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_indices_are_reached_only_by_tokens_that_name_them_noida() {
    hidden_indices(&fixture::seeded_noida()).await;
}

/// `logs-vec`: one tenant-a vector at the origin, one tenant-b vector far away. A tenant-a
/// kNN query aimed at the tenant-b vector must answer exactly what it answers once the
/// tenant-b document is gone: its result may not depend on other tenants' documents.
/// (found by the third security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knn_query_answers_the_same_whatever_other_tenants_vectors_are() {
    let backend = fixture::seeded_noida();
    let base = backend.url();
    let r = send_json(
        "PUT",
        &format!("{base}/logs-vec"),
        None,
        &json!({"mappings": {"properties": {"tenant": {"type": "keyword"},
            "v": {"type": "dense_vector", "dims": 2, "index": true, "similarity": "l2_norm"}}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for (id, tenant, v) in [("va", "a", [0.0, 0.0]), ("vb", "b", [10.0, 10.0])] {
        let r = send_json(
            "PUT",
            &format!("{base}/logs-vec/_doc/{id}?refresh=true"),
            None,
            &json!({"tenant": tenant, "v": v}),
        )
        .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let knn = json!({"knn": {"field": "v", "query_vector": [10.0, 10.0], "num_candidates": 1}});
    let asks = [
        ("/logs-vec/_search", json!({"size": 10, "query": knn})),
        (
            "/logs-vec/_search",
            json!({"size": 10, "query": {"bool": {"should": [knn]}}}),
        ),
        ("/logs-vec/_count", json!({"query": knn})),
    ];
    // What tenant a sees of each answer: the hit ids and a count.
    let seen = |r: &Reply| (hit_ids(r), r.json()["count"].clone());
    let mut before = Vec::new();
    for (path, body) in &asks {
        let r = send_json("POST", &gw.url(path), Some(&auth), body).await;
        assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
        before.push(seen(&r));
    }
    // The tenant-b document goes away; nothing tenant a may see changed.
    let r = send(
        "DELETE",
        &format!("{base}/logs-vec/_doc/vb?refresh=true"),
        &[],
        Vec::new(),
    )
    .await
    .expect("backend answers");
    assert!(r.status.is_success(), "{}", r.text());
    let mut changed = Vec::new();
    for ((path, body), was) in asks.iter().zip(before) {
        let r = send_json("POST", &gw.url(path), Some(&auth), body).await;
        assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
        let now = seen(&r);
        if now != was {
            changed.push(format!("{path} {body}: {was:?} became {now:?}"));
        }
    }
    assert!(
        changed.is_empty(),
        "tenant a's answers changed when a tenant-b vector was deleted:\n{}",
        changed.join("\n")
    );
}

/// Every sub-search that reaches the backend carries the token's filters, whatever sits
/// beside it (here a `retriever`, which makes esgate skip the `sub_searches` wrapping).
/// (found by the third security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_searches_beside_a_retriever_are_never_forwarded_unfiltered() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json(
        "POST",
        "/logs-a/_search",
        200,
        json!({"took": 1, "timed_out": false, "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let body = json!({
        "retriever": {"standard": {"query": {"match_all": {}}}},
        "sub_searches": [{"query": {"term": {"tenant": "b"}}}],
    });
    let r = send_json("POST", &gw.url("/logs-a/_search"), Some(&auth), &body).await;
    for sent in es.requests_to("POST", "/logs-a/_search") {
        let v = sent.json();
        for sub in v["sub_searches"].as_array().into_iter().flatten() {
            assert_eq!(
                sub["query"]["bool"]["filter"],
                json!([{"term": {"tenant": {"value": "a"}}}]),
                "a sub-search reached the backend without the token's filters: {v}"
            );
        }
    }
    assert!(
        r.status.is_client_error(),
        "expected a refusal, got {} {}",
        r.status,
        r.text()
    );
}
