//! Term statistics, term expansion and scores may not decide what a `read` token counts
//! (issues #8 items 1, 3 and 7, and #17 items 1 and 2), proven on both backends.
//!
//! - Differentials: each request a tenant-a token may send (fuzzy terms, phrase prefixes,
//!   `more_like_this`, expanding rewrites, `min_score` in the body, in `function_score` and in
//!   `_count?min_score=`, `?q=` fuzzy terms with the default 50 expansions, a `sampler` of the
//!   best-scoring documents) must answer exactly the same before and after other tenants'
//!   documents are written. Before the fix every one of them but the `top_terms_1` rewrites
//!   changed on at least one backend (tenant a's count fell from 10 to 5 or 0, the sampled
//!   document changed); those two are refused by the same rule (both backends happen to keep
//!   tenant a's term on that tie).
//! - Safe forms keep working with the token's own counts (constant-score prefixes and
//!   wildcards, exact `match`, phrase slop in query strings).
//! - Highlights (review 15, osmem): the fast vector highlighter expands multi-term queries over
//!   the shard's terms and keeps 1024, so it is refused; the default and `plain` highlights of
//!   tenant a's hits do not move when other tenants' terms are written.
//! - kNN beside a retriever (noida, the ES-8 dialect with kNN and retrievers): a kNN search in
//!   a retriever's `filter` or in `post_filter` beside a retriever answers the same whatever
//!   other tenants' vectors are.
//! - The same options in the APIs neither backend implements (ES|QL `MATCH`/`QSTR`/`KQL`, SQL
//!   `MATCH()`/`QUERY()`, EQL and async search bodies), against the recording fake: refused
//!   before the backend, while their exact forms are forwarded.
//!
//! Invariant: each test asserts what the promise requires of a `read` token for tenant `a` on
//! `logs-*`, never what esgate happens to answer.

use crate::support;

use serde_json::{json, Value};

use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send, Reply};
use support::recording::Recording;

async fn call(url: &str, auth: Option<&str>, method: &str, body: Option<&Value>) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    send(method, url, &headers, bytes).await.expect("answers")
}

/// What tenant a sees of an answer: the status, a count, the total hits, the hit ids and the
/// aggregations.
fn seen(r: &Reply) -> (u16, Value, Value, Vec<String>, Value) {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let mut ids: Vec<String> = v["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    (
        r.status.as_u16(),
        v["count"].clone(),
        v["hits"]["total"]["value"].clone(),
        ids,
        v["aggregations"].clone(),
    )
}

/// Other tenants' documents chosen to move each expansion: 52 user names one edit away from
/// `alicex` and closer to it than tenant a's `alice` (so they fill the default 50 fuzzy
/// expansions), `alib` (sorts before `alice` for a one-term prefix rewrite), `frobnicate`
/// (sorts before `from` for a one-term phrase prefix) and the word `a` in every message (its
/// document frequency rises, so `more_like_this` drops it and BM25 scores fall); in `logs-s`,
/// three documents with `xylo` (its scores fall below `zither`'s, so a sampler of the best
/// document picks the other tenant-a document).
fn foreign_bulk() -> String {
    let mut users: Vec<String> = ('a'..='z').map(|c| format!("alice{c}")).collect();
    users.extend(('a'..='z').map(|c| format!("alicex{c}")));
    users.retain(|u| u != "alicex");
    users.push("alib".to_string());
    let mut bulk = String::new();
    for (n, user) in users.iter().enumerate() {
        bulk.push_str(&json!({"index": {"_index": "logs-a", "_id": format!("f{n}")}}).to_string());
        bulk.push('\n');
        bulk.push_str(
            &json!({"tenant": "b", "user": user, "n": 100 + n,
                "message": "hello frobnicate a aardvark", "@timestamp": "2024-01-01T00:00:00Z"})
            .to_string(),
        );
        bulk.push('\n');
    }
    for n in 0..3 {
        bulk.push_str(&json!({"index": {"_index": "logs-s", "_id": format!("fs{n}")}}).to_string());
        bulk.push('\n');
        bulk.push_str(&json!({"tenant": "b", "message": "xylo", "n": 9}).to_string());
        bulk.push('\n');
    }
    bulk
}

/// `logs-s`: two tenant-a documents whose scores for `xylo zither` tie until other tenants'
/// documents change the terms' document frequencies.
async fn write_sampled_index(base: &str) {
    let r = call(
        &format!("{base}/logs-s"),
        None,
        "PUT",
        Some(&json!({"settings": {"number_of_shards": 1}, "mappings": fixture::mappings()})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for (id, message, n) in [("sa1", "xylo", 1), ("sa2", "zither", 2)] {
        let r = call(
            &format!("{base}/logs-s/_doc/{id}?refresh=true"),
            None,
            "PUT",
            Some(&json!({"tenant": "a", "message": message, "n": n})),
        )
        .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
}

async fn write_foreign_documents(base: &str) {
    let r = send(
        "POST",
        &format!("{base}/_bulk?refresh=true"),
        &[("content-type", "application/x-ndjson")],
        foreign_bulk(),
    )
    .await
    .expect("backend answers");
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(r.json()["errors"], json!(false), "{}", r.text());
}

/// Requests whose answer moved with other tenants' terms before the fix. `threshold` is a
/// score between tenant a's best `message: a` score and the score it falls to once foreign
/// documents hold `a` too.
fn statistics_requests(threshold: f64) -> Vec<(&'static str, String, Option<Value>)> {
    let count = "/logs-*/_count";
    let search = "/logs-*/_search";
    let q = |query: Value| Some(json!({ "query": query }));
    vec![
        (
            "POST",
            count.into(),
            q(json!({"fuzzy": {"user": {"value": "alicex", "max_expansions": 1}}})),
        ),
        (
            "POST",
            count.into(),
            q(json!({"match": {"user": {"query": "alicex", "fuzziness": 1, "max_expansions": 1}}})),
        ),
        (
            "POST",
            count.into(),
            q(json!({"query_string": {"query": "user:alicex~1", "fuzzy_max_expansions": 1}})),
        ),
        ("GET", format!("{count}?q=user:alicex~1"), None),
        (
            "GET",
            format!("{search}?q=user:alicex~1&track_total_hits=true&size=20"),
            None,
        ),
        (
            "POST",
            count.into(),
            q(
                json!({"match_phrase_prefix": {"message": {"query": "hello fro", "max_expansions": 1}}}),
            ),
        ),
        (
            "POST",
            count.into(),
            q(
                json!({"multi_match": {"query": "hello fro", "fields": ["message"], "type": "phrase_prefix", "max_expansions": 1}}),
            ),
        ),
        (
            "POST",
            count.into(),
            q(
                json!({"more_like_this": {"fields": ["message"], "like": "a", "min_term_freq": 1,
                "min_doc_freq": 1, "max_doc_freq": 5, "min_word_length": 1}}),
            ),
        ),
        (
            "POST",
            count.into(),
            q(json!({"prefix": {"user": {"value": "ali", "rewrite": "top_terms_1"}}})),
        ),
        (
            "POST",
            count.into(),
            q(json!({"query_string": {"query": "user:ali*", "rewrite": "top_terms_1"}})),
        ),
        (
            "POST",
            count.into(),
            q(
                json!({"function_score": {"query": {"match": {"message": "a"}}, "min_score": threshold}}),
            ),
        ),
        (
            "POST",
            search.into(),
            Some(
                json!({"size": 20, "track_total_hits": true, "min_score": threshold, "query": {"match": {"message": "a"}}}),
            ),
        ),
        (
            "GET",
            format!("{count}?q=message:a&min_score={threshold}"),
            None,
        ),
        (
            "POST",
            "/logs-s/_search".into(),
            Some(
                json!({"size": 0, "query": {"match": {"message": "xylo zither"}},
                "aggs": {"s": {"sampler": {"shard_size": 1}, "aggs": {"t": {"terms": {"field": "n"}}}}}}),
            ),
        ),
    ]
}

/// Runs the differential on one backend: every request answers the same before and after the
/// foreign documents are written, and the safe forms keep answering tenant a's own counts.
async fn answers_do_not_move_with_foreign_terms(base: &str) {
    write_sampled_index(base).await;
    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    // Tenant a's best score for `message: a` (an allowed search) and a threshold just below it.
    let r = call(
        &gw.url("/logs-*/_search"),
        Some(&auth),
        "POST",
        Some(&json!({"size": 1, "query": {"match": {"message": "a"}}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let best = r.json()["hits"]["max_score"]
        .as_f64()
        .expect("a score for tenant a's documents");
    let asks = statistics_requests(best * 0.98);
    let mut before = Vec::new();
    for (method, path, body) in &asks {
        let r = call(&gw.url(path), Some(&auth), method, body.as_ref()).await;
        assert!(r.status.as_u16() < 500, "{path} {body:?}: {}", r.text());
        before.push(seen(&r));
    }
    write_foreign_documents(base).await;
    let mut changed = Vec::new();
    for ((method, path, body), was) in asks.iter().zip(before) {
        let r = call(&gw.url(path), Some(&auth), method, body.as_ref()).await;
        let now = seen(&r);
        if now != was {
            changed.push(format!("{method} {path} {body:?}: {was:?} became {now:?}"));
        }
    }
    assert!(
        changed.is_empty(),
        "tenant a's answers changed when other tenants' documents were written:\n{}",
        changed.join("\n")
    );
    // The safe forms: constant-score expansions, exact matches and phrase slop count tenant a's
    // documents only, foreign look-alikes or not.
    let safe = [
        json!({"prefix": {"user": "ali"}}),
        json!({"prefix": {"user": {"value": "ali", "rewrite": "constant_score"}}}),
        json!({"wildcard": {"user": {"value": "ali*e"}}}),
        json!({"match": {"user": {"query": "alice", "fuzziness": 0}}}),
        json!({"query_string": {"query": "user:ali* AND message:\"hello from\"~1"}}),
        json!({"simple_query_string": {"query": "ali*", "fields": ["user"]}}),
    ];
    for query in safe {
        let r = call(
            &gw.url("/logs-*/_count"),
            Some(&auth),
            "POST",
            Some(&json!({ "query": query })),
        )
        .await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(
            r.json()["count"],
            json!(fixture::TENANT_A_DOCS),
            "{query}: {}",
            r.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_do_not_move_with_other_tenants_terms_on_osmem() {
    let backend = fixture::seeded_osmem();
    answers_do_not_move_with_foreign_terms(backend.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_do_not_move_with_other_tenants_terms_on_noida() {
    let backend = fixture::seeded_noida();
    answers_do_not_move_with_foreign_terms(backend.url()).await;
}

/// Review 15: the fast vector highlighter (`"type": "fvh"`, on a field indexed with term vectors
/// and offsets) rewrites a multi-term query against the whole shard's terms and keeps the first
/// 1024 (Lucene's `FieldQuery.flatten`): once other tenants held 1024 terms sorting before
/// tenant a's `zzzz` under `z*`, tenant a's own hit lost its highlight (osmem). Every highlight
/// request must answer the same before and after other tenants' terms are written: the `fvh`
/// ones because they are refused, the default (`unified`) and `plain` ones because they find
/// what to highlight in the hit's own text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlights_do_not_move_with_other_tenants_terms() {
    let backend = fixture::seeded_osmem();
    let base = backend.url();
    let index = "highlight-r15";
    let mapping = json!({"mappings": {"properties": {"tenant": {"type": "keyword"},
        "message": {"type": "text", "term_vector": "with_positions_offsets"}}}});
    let r = call(&format!("{base}/{index}"), None, "PUT", Some(&mapping)).await;
    assert!(r.status.is_success(), "{}", r.text());
    let doc = json!({"tenant": "a", "message": "hello zzzz"});
    let url = format!("{base}/{index}/_doc/a1?refresh=true");
    assert!(call(&url, None, "PUT", Some(&doc))
        .await
        .status
        .is_success());

    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw
        .token(json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": [index]}))
        .await;
    let auth = bearer(&secret);
    let query = json!({"prefix": {"message": "z"}});
    let asks = [
        json!({"query": query, "highlight": {"type": "fvh", "fields": {"message": {}}}}),
        json!({"query": query, "highlight": {"fields": {"message": {"type": "fvh"}}}}),
        json!({"query": query, "highlight": {"fields": {"message": {}}}}),
        json!({"query": query, "highlight": {"fields": {"message": {"type": "plain"}}}}),
        json!({"query": {"range": {"message": {"gte": "z", "lte": "zzzz"}}},
            "highlight": {"fields": {"message": {"type": "fvh"}}}}),
    ];
    let path = gw.url(&format!("/{index}/_search"));
    let ask = |body: Value| {
        let (path, auth) = (path.clone(), auth.clone());
        async move {
            let r = call(&path, Some(&auth), "POST", Some(&body)).await;
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (r.status.as_u16(), v["hits"]["hits"][0]["highlight"].clone())
        }
    };
    let mut before = Vec::new();
    for body in &asks {
        before.push(ask(body.clone()).await);
    }
    // Another tenant's document with 1030 terms sorting before `zzzz` under `z*`.
    let words: Vec<String> = (0..1030).map(|i| format!("z{i:04}")).collect();
    let doc = json!({"tenant": "b", "message": words.join(" ")});
    let url = format!("{base}/{index}/_doc/b1?refresh=true");
    assert!(call(&url, None, "PUT", Some(&doc))
        .await
        .status
        .is_success());
    let mut changed = Vec::new();
    for (body, was) in asks.iter().zip(&before) {
        let now = ask(body.clone()).await;
        if now != *was {
            changed.push(format!("{body}: {was:?} became {now:?}"));
        }
    }
    assert!(
        changed.is_empty(),
        "tenant a's highlights changed when another tenant's terms were written:\n{}",
        changed.join("\n")
    );
    for (body, (status, highlight)) in asks.iter().zip(&before) {
        if body.to_string().contains("fvh") {
            assert_eq!(*status, 403, "{body}");
        } else {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(
                highlight,
                &json!({"message": ["hello <em>zzzz</em>"]}),
                "{body}"
            );
        }
    }
}

/// `logs-vec` on `base`: one tenant-a vector at the origin (`va`), one tenant-b vector far
/// away (`vb`), both of user `shared`.
async fn seed_vectors(base: &str) {
    let r = call(
        &format!("{base}/logs-vec"),
        None,
        "PUT",
        Some(
            &json!({"mappings": {"properties": {"tenant": {"type": "keyword"},
            "user": {"type": "keyword"},
            "v": {"type": "dense_vector", "dims": 2, "index": true, "similarity": "l2_norm"}}}}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for (id, tenant, v) in [("va", "a", [0.0, 0.0]), ("vb", "b", [10.0, 10.0])] {
        let r = call(
            &format!("{base}/logs-vec/_doc/{id}?refresh=true"),
            None,
            "PUT",
            Some(&json!({"tenant": tenant, "user": "shared", "v": v})),
        )
        .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
}

/// `logs-vec` (`seed_vectors`). kNN searches a tenant-a token places beside or inside a
/// retriever, aimed at the tenant-b vector with one candidate, must answer exactly what they
/// answer once the tenant-b document is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knn_beside_or_inside_a_retriever_answers_the_same_whatever_other_tenants_vectors_are() {
    let backend = fixture::seeded_noida();
    let base = backend.url();
    seed_vectors(base).await;
    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let knn = json!({"knn": {"field": "v", "query_vector": [10.0, 10.0], "num_candidates": 1}});
    let standard = json!({"standard": {"query": {"match_all": {}}}});
    let asks = [
        json!({"size": 10, "track_total_hits": true,
            "retriever": {"standard": {"query": {"match_all": {}}, "filter": knn}}}),
        json!({"size": 10, "track_total_hits": true,
            "retriever": {"standard": {"filter": [knn]}}}),
        json!({"size": 10, "track_total_hits": true, "retriever": standard, "post_filter": knn}),
        json!({"size": 10, "track_total_hits": true,
            "retriever": {"rrf": {"retrievers": [standard, standard], "filter": knn}}}),
    ];
    let path = "/logs-vec/_search";
    let mut before = Vec::new();
    for body in &asks {
        let r = call(&gw.url(path), Some(&auth), "POST", Some(body)).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        before.push(seen(&r));
    }
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
    for (body, was) in asks.iter().zip(before) {
        let r = call(&gw.url(path), Some(&auth), "POST", Some(body)).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let now = seen(&r);
        if now != was {
            changed.push(format!("{body}: {was:?} became {now:?}"));
        }
    }
    assert!(
        changed.is_empty(),
        "tenant a's answers changed when a tenant-b vector was deleted:\n{}",
        changed.join("\n")
    );
}

/// ES|QL, SQL, EQL and async search (no test backend implements them): a request with an
/// expanding option, fuzzy query text or a score threshold is refused before the backend;
/// its exact form is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_languages_and_async_search_refuse_expansions_before_the_backend() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json("*", "/_query", 200, json!({"columns": [], "values": []}));
    es.script_json("*", "/_sql", 200, json!({"columns": [], "rows": []}));
    es.script_json("*", "/logs-a/_eql", 200, json!({"hits": {}}));
    es.script_json(
        "*",
        "/logs-a/_async_search",
        200,
        json!({"id": "x", "is_running": false}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = gw.tenant_token("a").await;
    let refused = [
        (
            "/_query",
            json!({"query": "FROM logs-a | WHERE MATCH(user, \"bob\", {\"fuzziness\": 2})"}),
        ),
        (
            "/_query",
            json!({"query": "FROM logs-a | WHERE MATCH(user, \"bob\", {\"max_expansions\": 1})"}),
        ),
        (
            "/_query",
            json!({"query": "FROM logs-a | WHERE QSTR(\"user:bob~1\")"}),
        ),
        (
            "/_query",
            json!({"query": "FROM logs-a | WHERE QSTR(?q)", "params": [{"q": "user:bob~1"}]}),
        ),
        (
            "/_query",
            json!({"query": "FROM logs-a | WHERE KQL(\"_id: b*\")"}),
        ),
        (
            "/_query",
            json!({"query": "FROM logs-a METADATA _id | WHERE _id LIKE \"b*\""}),
        ),
        (
            "/_query",
            json!({"query": "FROM logs-a", "filter": {"fuzzy": {"user": "bob"}}}),
        ),
        (
            "/_sql",
            json!({"query": "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'fuzziness=2')"}),
        ),
        (
            "/_sql",
            json!({"query": "SELECT * FROM logs-a WHERE QUERY('user:bob~')"}),
        ),
        (
            "/_sql",
            json!({"query": "SELECT * FROM logs-a WHERE QUERY(?)", "params": ["user:bob~"]}),
        ),
        (
            "/_sql",
            json!({"query": "SELECT * FROM logs-a", "filter": {"match_phrase_prefix": {"m": "he"}}}),
        ),
        (
            "/logs-a/_eql/search",
            json!({"query": "any where true", "filter": {"more_like_this": {"like": "x"}}}),
        ),
        ("/logs-a/_async_search", json!({"min_score": 1})),
        // lucene18: SimpleQueryParser takes a `~` as a phrase's slop only right after its
        // closing quote (it has no boost): `"x"^4111~2` is the phrase and the fuzzy term
        // `^4111`~2, which reaches `4111`, `41112`, `4011` ...
        (
            "/logs-a/_async_search",
            json!({"query": {"simple_query_string": {"query": "\"x\"^4111~2", "fields": ["user"]}}}),
        ),
        (
            "/logs-a/_async_search",
            json!({"query": {"fuzzy": {"user": "bob"}}}),
        ),
    ];
    for (path, body) in &refused {
        let (status, v) = gw.call(&a, "POST", path, body.clone(), &[]).await;
        assert_eq!(status, 403, "{path} {body}: {v}");
    }
    assert!(
        es.requests()
            .iter()
            .all(|r| r.path.starts_with("/_resolve")),
        "a refused request reached the backend: {:?}",
        es.requests()
    );
    let allowed = [
        (
            "/_query",
            json!({"query": "FROM logs-a | WHERE MATCH(user, \"bob\", {\"fuzziness\": 0}) AND QSTR(\"user:bo* AND \\\"a b\\\"~2\")"}),
        ),
        (
            "/_sql",
            json!({"query": "SELECT * FROM logs-a WHERE QUERY('user:bo*', 'rewrite=constant_score')"}),
        ),
        (
            "/logs-a/_async_search",
            json!({"query": {"prefix": {"user": "bo"}}}),
        ),
    ];
    for (path, body) in &allowed {
        let (status, v) = gw.call(&a, "POST", path, body.clone(), &[]).await;
        assert_eq!(status, 200, "{path} {body}: {v}");
        assert_eq!(es.requests_to("POST", path).len(), 1, "{path}");
    }
}

/// `_score`s a tenant-a token reads of its own documents in `scores-r15`: a search, an msearch
/// (the request-tree path), a search with a rescore, and `_explain` of one hit. In order, as
/// numbers (`null` where none), with the status of each answer.
async fn scores_seen(gw: &Esgate, auth: &str) -> Vec<(u16, Vec<Value>)> {
    let query = json!({"match": {"message": "merger"}});
    let search = json!({"query": query});
    let rescored = json!({"query": query,
        "rescore": {"window_size": 5, "query": {"rescore_query": {"match": {"message": "acme"}}}}});
    let msearch = format!("{{}}\n{search}\n");
    let mut out = Vec::new();
    let scores = |r: &Reply, pointer: &str| -> (u16, Vec<Value>) {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let v = v.pointer(pointer).cloned().unwrap_or(Value::Null);
        let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
        let mut s = vec![v["hits"]["max_score"].clone()];
        s.extend(hits.iter().map(|h| h["_score"].clone()));
        (r.status.as_u16(), s)
    };
    for body in [&search, &rescored] {
        let r = call(
            &gw.url("/scores-r15/_search"),
            Some(auth),
            "POST",
            Some(body),
        )
        .await;
        out.push(scores(&r, ""));
    }
    let r = send(
        "POST",
        &gw.url("/scores-r15/_msearch"),
        &[
            ("content-type", "application/x-ndjson"),
            ("authorization", auth),
        ],
        msearch,
    )
    .await
    .expect("answers");
    assert_eq!(r.status, 200, "msearch: {}", r.text());
    out.push(scores(&r, "/responses/0"));
    let r = call(
        &gw.url("/scores-r15/_explain/m1"),
        Some(auth),
        "POST",
        Some(&json!({ "query": query })),
    )
    .await;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert_eq!(r.status, 200, "_explain: {}", r.text());
    out.push((r.status.as_u16(), vec![v["explanation"]["value"].clone()]));
    out
}

/// Review 15 (M): BM25 scores count every document of the shard, so from a few `_score`s of
/// its own hits a filtered token could solve how many documents of other tenants hold a term
/// ("how many documents mention merger"). A token with filters now gets constant scores by
/// default: its `_score`s (search, msearch, rescore, `_explain`) must not move when another
/// tenant writes documents holding the term. A token an admin set to `"scores": "relevance"`
/// keeps Elasticsearch's scores, which do move (the documented residual, and the proof that the
/// write would have moved the default token's scores before the fix).
async fn scores_do_not_count_other_tenants_documents(base: &str) {
    let r = call(
        &format!("{base}/scores-r15"),
        None,
        "PUT",
        Some(&json!({"settings": {"number_of_shards": 1}, "mappings": fixture::mappings()})),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text());
    let mut bulk = String::new();
    for (id, tenant, message, n) in [
        ("m1", "a", "acme merger talks", 1),
        ("m2", "a", "merger merger news from acme", 2),
        ("m3", "a", "weekly report", 3),
        ("o1", "b", "lunch menu", 4),
    ] {
        bulk.push_str(&json!({"index": {"_index": "scores-r15", "_id": id}}).to_string());
        bulk.push('\n');
        bulk.push_str(&json!({"tenant": tenant, "message": message, "n": n}).to_string());
        bulk.push('\n');
    }
    support::http::bulk(base, bulk).await;

    let gw = Esgate::start(&[base], "").await;
    let tenant = json!([{"field": "tenant", "value": "a"}]);
    let (_, constant) = gw
        .token(json!({"name": "a", "filters": tenant, "indices": ["scores-r15"]}))
        .await;
    let (_, relevance) = gw
        .token(
            json!({"name": "a-relevance", "filters": tenant, "indices": ["scores-r15"],
                      "scores": "relevance"}),
        )
        .await;
    let (constant, relevance) = (bearer(&constant), bearer(&relevance));
    let constant_before = scores_seen(&gw, &constant).await;
    let relevance_before = scores_seen(&gw, &relevance).await;

    // Another tenant's documents holding the term.
    let mut bulk = String::new();
    for i in 0..20 {
        bulk.push_str(
            &json!({"index": {"_index": "scores-r15", "_id": format!("b{i}")}}).to_string(),
        );
        bulk.push('\n');
        bulk.push_str(
            &json!({"tenant": "b", "message": "merger rumours", "n": 10 + i}).to_string(),
        );
        bulk.push('\n');
    }
    support::http::bulk(base, bulk).await;
    let constant_after = scores_seen(&gw, &constant).await;
    let relevance_after = scores_seen(&gw, &relevance).await;

    for (status, scores) in constant_before.iter().chain(&relevance_before) {
        assert_eq!(*status, 200, "{scores:?}");
        assert!(scores.iter().all(Value::is_number), "{scores:?}");
    }
    assert_eq!(
        constant_before, constant_after,
        "a filtered token's scores moved with another tenant's documents"
    );
    // Its scores are the constant ones: 1.0 a hit (a rescore adds its weighted constant).
    assert_eq!(constant_before[0].1, vec![json!(1.0); 3]);
    assert_eq!(constant_before[2].1, constant_before[0].1);
    assert_eq!(constant_before[3].1, vec![json!(1.0)]);
    for (i, (was, now)) in relevance_before.iter().zip(&relevance_after).enumerate() {
        assert_ne!(
            was, now,
            "relevance scores did not move ({i}): the write proves nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_do_not_count_other_tenants_documents_on_osmem() {
    let backend = fixture::seeded_osmem();
    scores_do_not_count_other_tenants_documents(backend.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_do_not_count_other_tenants_documents_on_noida() {
    let backend = fixture::seeded_noida();
    scores_do_not_count_other_tenants_documents(backend.url()).await;
}

/// Session 17 (attack17a, H): `collapse` with `inner_hits` where no top-level query selects
/// the documents. Elasticsearch expands each collapsed hit on the coordinating node
/// (`ExpandSearchPhase`): one search per hit, `bool{filter: match(<field>, <value>), must: <the
/// body's query>}`. A kNN-only body (or a `knn` retriever) has no query (esgate adds none: it
/// would OR every tenant document into the kNN hits), so each group search matched every
/// document of the index with the hit's collapse value: tenant b's `vb`, source and all, came
/// back in tenant a's inner hits (noida). Those forms are refused (403) before the backend,
/// also through `_msearch`; with a query (wrapped) or a standard retriever the inner hits are
/// tenant a's only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapse_inner_hits_without_a_query_are_refused() {
    let backend = fixture::seeded_noida();
    let base = backend.url();
    seed_vectors(base).await;
    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let knn = json!({"field": "v", "query_vector": [0.0, 0.0], "k": 1, "num_candidates": 10});
    let collapse = json!({"field": "user", "inner_hits": {"name": "group", "size": 10}});
    // (body, whether it is answered)
    let asks = [
        (json!({"knn": knn, "collapse": collapse}), false),
        (
            json!({"knn": [knn], "collapse": collapse, "post_filter": {"match_all": {}}}),
            false,
        ),
        (
            json!({"retriever": {"knn": knn}, "collapse": collapse}),
            false,
        ),
        (
            json!({"sub_searches": [{"query": {"match_all": {}}}], "collapse": collapse}),
            false,
        ),
        (
            json!({"knn": knn, "query": {"match_all": {}}, "collapse": collapse}),
            true,
        ),
        (
            json!({"retriever": {"standard": {"query": {"match_all": {}}}}, "collapse": collapse}),
            true,
        ),
        (json!({"collapse": collapse}), true),
    ];
    let inner_ids = |v: &Value| -> Vec<String> {
        let mut ids = Vec::new();
        for hit in v["hits"]["hits"].as_array().into_iter().flatten() {
            for ih in hit["inner_hits"]["group"]["hits"]["hits"]
                .as_array()
                .into_iter()
                .flatten()
            {
                ids.push(ih["_id"].as_str().unwrap_or("?").to_string());
            }
        }
        ids
    };
    for (body, answered) in &asks {
        let r = call(
            &gw.url("/logs-vec/_search"),
            Some(&auth),
            "POST",
            Some(body),
        )
        .await;
        assert!(
            !fixture::contains_leak_marker(&r.body) && !r.text().contains("\"vb\""),
            "{body}: tenant b's document reached tenant a: {}",
            r.text()
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if *answered {
            assert_eq!(r.status, 200, "{body}: {}", r.text());
            assert_eq!(inner_ids(&v), ["va"], "{body}: {}", r.text());
        } else {
            assert_eq!(r.status, 403, "{body}: {}", r.text());
        }
        // The same search as an `_msearch` item.
        let ndjson = format!("{{}}\n{body}\n");
        let r = send(
            "POST",
            &gw.url("/logs-vec/_msearch"),
            &[
                ("content-type", "application/x-ndjson"),
                ("authorization", auth.as_str()),
            ],
            ndjson.into_bytes(),
        )
        .await
        .expect("answers");
        assert!(
            !r.text().contains("\"vb\""),
            "msearch {body}: tenant b's document reached tenant a: {}",
            r.text()
        );
        if !*answered {
            assert_eq!(r.status, 403, "msearch {body}: {}", r.text());
        }
    }
}
