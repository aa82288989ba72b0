//! ES|QL `_query`, SQL `_sql` (with cursors) and EQL `_eql/search` through esgate, against the
//! recording fake backend (`support::recording`; neither osmem nor noida implements these
//! APIs): the forwarded query text names only the token's concrete indices, the forwarded
//! `filter` is the token's filters around the client's (for ES|QL the token's filters only,
//! the client's `filter` a `WHERE` in the text: ES|QL hands `filter` to field_caps as an
//! `index_filter`), SQL cursors are sealed for the token that ran the query, and refused
//! requests never reach the backend.

use crate::support;

use serde_json::{json, Value};

use support::corpus::token_a;
use support::esgate::Esgate;
use support::http::bearer;
use support::recording::{Answer, Recording};

async fn call(
    gw: &Esgate,
    secret: &str,
    method: &str,
    path: &str,
    body: Value,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    gw.call(secret, method, path, body, extra).await
}

async fn tenant(gw: &Esgate, name: &str) -> String {
    gw.tenant_token(name).await
}

fn token_filter(tenant: &str, inner: Value) -> Value {
    json!({"bool": {"filter": [{"term": {"tenant": {"value": tenant}}}], "must": [inner]}})
}

/// A recording backend that resolves `logs-a`, `logs-b` and `secret` and answers `POST /_sql`
/// and `POST /_query` with empty tables, an esgate before it, and the `Authorization` value of
/// the corpus's token a.
async fn query_gateway() -> (Recording, Esgate, String) {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json("POST", "/_sql", 200, json!({"columns": [], "rows": []}));
    es.script_json("POST", "/_query", 200, json!({"columns": [], "values": []}));
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    (es, gw, bearer(&secret))
}

/// Each `(path, body)` posted in turn: those not refused (403) before reaching the backend,
/// with what esgate answered.
async fn not_refused_before_the_backend(
    es: &Recording,
    gw: &Esgate,
    auth: &str,
    requests: impl IntoIterator<Item = (&str, Value)>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (path, body) in requests {
        es.clear();
        let r = gw.post_as(auth, path, &body).await;
        if r.status != 403 || !es.requests_to("POST", path).is_empty() {
            wrong.push(format!(
                "{path} {} -> {} {}",
                body["query"],
                r.status,
                r.text()
            ));
        }
    }
    wrong
}

async fn setup() -> (Recording, Esgate, String) {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    (es, gw, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esql_reaches_the_backend_with_the_narrowed_from_and_the_filter_as_a_where() {
    let (es, gw, a) = setup().await;
    let answer = json!({"columns": [{"name": "c", "type": "long"}], "values": [[2]]});
    es.script_json("POST", "/_query", 200, answer.clone());

    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_query?format=json",
        json!({
            "query": "FROM logs-* /* FROM secret */ | WHERE msg == \"| ENRICH x\" | STATS c = COUNT(*)",
            "filter": {"term": {"user": "bob"}}
        }),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, answer);
    let sent = es.requests_to("*", "/_query");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].params(), vec![("format".into(), "json".into())]);
    assert_eq!(
        sent[0].json(),
        json!({
            "query": "FROM  logs-a, logs-b  /* FROM secret */ \n| WHERE NOT NOT (`user` == \"bob\")\n| WHERE NOT NOT ( msg == \"| ENRICH x\") | STATS c = COUNT(*)",
            "filter": token_filter("a", json!({"match_all": {}}))
        })
    );
    assert!(sent[0].header("authorization").is_none());
}

/// skip14: Elasticsearch's ES|QL sends the request's `filter` to field_caps as its
/// `index_filter`, where a `range` is decided from each shard's min/max over every tenant's
/// documents, so which columns resolve told whether other tenants' values fall in the range.
/// What Kibana's ES|QL sends (its time range and filter pills) reaches the backend as a
/// `WHERE` after the source command; the forwarded `filter` is the token's filters only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esql_kibana_filter_never_reaches_the_field_caps_index_filter() {
    let (es, gw, a) = setup().await;
    es.script_json("POST", "/_query", 200, json!({"columns": [], "values": []}));
    let kibana_filter = json!({"bool": {"must": [], "filter": [
        {"range": {"@timestamp": {"format": "strict_date_optional_time",
            "gte": "2025-06-16T21:37:04.079Z", "lte": "2025-06-16T21:52:04.079Z"}}},
        {"match_phrase": {"host.name": "web-1"}}
    ], "should": [], "must_not": [{"range": {"bytes": {"gte": 1000}}}]}});
    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_query",
        json!({"query": "FROM logs-* | STATS c = COUNT(*) BY host.name // per host",
               "filter": kibana_filter, "locale": "en"}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = es.requests_to("POST", "/_query");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].json(),
        json!({
            "query": "FROM  logs-a, logs-b  \n| WHERE NOT NOT (((`@timestamp` >= TO_DATETIME(\"2025-06-16T21:37:04.079Z\") AND `@timestamp` <= TO_DATETIME(\"2025-06-16T21:52:04.079Z\")) AND `host.name` == \"web-1\" AND (NOT COALESCE(`bytes` >= 1000, false))))\n| STATS c = COUNT(*) BY host.name // per host",
            "filter": token_filter("a", json!({"match_all": {}})),
            "locale": "en"
        })
    );
    // No range, term or phrase of the client's anywhere in the forwarded filter.
    let forwarded = sent[0].json()["filter"].to_string();
    for word in ["range", "match_phrase", "@timestamp", "bytes"] {
        assert!(!forwarded.contains(word), "{forwarded}");
    }
    es.clear();

    // A clause esgate cannot translate is a 400 naming it, and never reaches the backend.
    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_query",
        json!({"query": "FROM logs-a", "filter": {"bool": {"filter": [
            {"query_string": {"query": "user:bob"}}]}}}),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("[query_string]"), "{v}");
    assert!(
        es.requests_to("POST", "/_query").is_empty(),
        "{:?}",
        es.requests()
    );
}

/// esql16: Elasticsearch (PR #154663, `TimestampIndexFilterExtractor`) lifts a leading
/// `WHERE @timestamp <op> <literal | ?param | NOW() ± interval>` from the query text into
/// field_caps' index filter, decided from every tenant's values like the `filter` above.
/// Every `WHERE` condition reaches the backend as one `NOT NOT (...)` (the same rows), which
/// it does not look into: Kibana's `?_tstart`/`?_tend` queries keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esql_timestamp_wheres_reach_the_backend_as_negations() {
    let (es, gw, a) = setup().await;
    es.script_json("POST", "/_query", 200, json!({"columns": [], "values": []}));
    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_query",
        json!({
            "query": "FROM logs-* | WHERE @timestamp >= ?_tstart AND @timestamp <= ?_tend // range\n| where `@timestamp` > NOW() - 15 minutes | LIMIT 5",
            "params": [{"_tstart": "2025-06-16T21:37:04.079Z"}, {"_tend": "2025-06-16T21:52:04.079Z"}],
            "filter": {"range": {"@timestamp": {"gte": "now-15m"}}}
        }),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = es.requests_to("POST", "/_query");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].json()["query"],
        "FROM  logs-a, logs-b  \n| WHERE NOT NOT (`@timestamp` >= TO_DATETIME(NOW() - 15 minutes))\n| WHERE NOT NOT ( @timestamp >= ?_tstart AND @timestamp <= ?_tend) // range\n| where NOT NOT ( `@timestamp` > NOW() - 15 minutes) | LIMIT 5"
    );
    assert_eq!(
        sent[0].json()["filter"],
        token_filter("a", json!({"match_all": {}}))
    );
}

/// esql16: an ES|QL view (Elasticsearch 9.4 on) is a name `_resolve/index` never lists, and
/// `FROM <view>` runs the view's stored query, whatever it reads. A query-language name the
/// resolution does not list is a 404 from esgate and never reaches the backend; a search path
/// still forwards a missing name for the backend's own 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_language_names_the_backend_does_not_list_are_not_found() {
    let (es, gw, a) = setup().await;
    es.script_json("*", "/_query", 200, json!({"columns": [], "values": []}));
    es.script_json("*", "/_sql", 200, json!({"columns": [], "rows": []}));
    es.script_json("*", "/logs-view/_search", 404, json!({"status": 404}));
    for (path, body) in [
        ("/_query", json!({"query": "FROM logs-view | LIMIT 1"})),
        ("/_query", json!({"query": "FROM logs-a, logs-view"})),
        ("/_sql", json!({"query": "SELECT * FROM \"logs-view\""})),
    ] {
        let (status, v) = call(&gw, &a, "POST", path, body.clone(), &[]).await;
        assert_eq!(status, 404, "{body}: {v}");
        assert!(v.to_string().contains("[logs-view]"), "{v}");
        assert!(
            es.requests_to("POST", path).is_empty(),
            "{body} was forwarded"
        );
    }
    let (status, _) = call(&gw, &a, "POST", "/logs-view/_search", json!({}), &[]).await;
    assert_eq!(status, 404);
    assert_eq!(es.requests_to("POST", "/logs-view/_search").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_queries_never_reach_the_backend() {
    let (es, gw, a) = setup().await;
    es.script_json("*", "/_query", 200, json!({"values": []}));
    es.script_json("*", "/_sql", 200, json!({"rows": []}));
    es.script_json("*", "/secret", 200, json!({"hits": {}}));
    let cases: &[(&str, &str, Value)] = &[
        ("POST", "/_query", json!({"query": "FROM secret"})),
        (
            "POST",
            "/_query",
            json!({"query": "FROM logs-a | ENRICH users ON user"}),
        ),
        (
            "POST",
            "/_query",
            json!({"query": "FROM logs-a | LOOKUP JOIN secret ON id"}),
        ),
        (
            "POST",
            "/_query",
            json!({"query": "FROM logs-a // c\n, secret"}),
        ),
        (
            "POST",
            "/_query",
            json!({"query": "FROM logs-a, remote:secret"}),
        ),
        (
            "POST",
            "/_query",
            json!({"query": "FROM logs-a", "profile": true}),
        ),
        (
            "POST",
            "/_query",
            json!({"query": "FROM logs-a", "tables": {}}),
        ),
        ("POST", "/_query/async", json!({"query": "FROM logs-a"})),
        ("POST", "/_sql", json!({"query": "SELECT * FROM secret"})),
        ("POST", "/_sql", json!({"query": "SHOW TABLES"})),
        (
            "POST",
            "/_sql",
            json!({"query": "SELECT * FROM (SELECT * FROM secret)"}),
        ),
        (
            "POST",
            "/_sql",
            json!({"query": "SELECT * FROM logs-a", "keep_on_completion": true}),
        ),
        (
            "POST",
            "/_sql",
            json!({"query": "SELECT * FROM logs-a", "runtime_mappings": {}}),
        ),
        ("POST", "/_sql", json!({"cursor": "raw-backend-cursor"})),
        (
            "POST",
            "/_sql/close",
            json!({"cursor": "raw-backend-cursor"}),
        ),
        (
            "POST",
            "/_sql/async",
            json!({"query": "SELECT * FROM logs-a"}),
        ),
        (
            "POST",
            "/_sql/translate",
            json!({"query": "SELECT * FROM logs-a"}),
        ),
        (
            "POST",
            "/secret/_eql/search",
            json!({"query": "any where true"}),
        ),
        (
            "POST",
            "/logs-a/_eql/search?wait_for_completion_timeout=1s",
            json!({"query": "any where true"}),
        ),
        (
            "POST",
            "/logs-a/_eql/search",
            json!({"query": "any where true", "keep_on_completion": true}),
        ),
    ];
    for (method, path, body) in cases {
        let (status, v) = call(&gw, &a, method, path, body.clone(), &[]).await;
        assert_eq!(status, 403, "{method} {path} {body}: {v}");
        assert_eq!(v["status"], 403, "{v}");
        assert!(v["error"]["reason"].is_string(), "{v}");
    }
    assert!(
        es.requests().is_empty(),
        "refused requests reached the backend: {:?}",
        es.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_cursor_is_sealed_for_the_token_that_ran_the_query() {
    let (es, gw, a) = setup().await;
    let b = tenant(&gw, "b").await;
    es.script_fn("POST", "/_sql", |r| {
        let body = r.json();
        if body.get("cursor").is_some() {
            Answer::json(200, json!({"rows": [[2]]}))
        } else {
            Answer::json(200, json!({"columns": [{"name": "n"}], "rows": [[1]], "cursor": "YmFja2VuZC1jdXJzb3I="}))
        }
    });
    es.script_json("POST", "/_sql/close", 200, json!({"succeeded": true}));

    // The client asks for text; esgate forwards JSON so the cursor stays in the body.
    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_sql",
        json!({"query": "SELECT n FROM \"logs-*\" WHERE n > 0", "fetch_size": 1}),
        &[("accept", "text/plain")],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let cursor = v["cursor"].as_str().expect("a cursor").to_string();
    assert!(cursor.starts_with("esgc1_"), "{cursor}");
    assert_eq!(v["rows"], json!([[1]]));
    let sent = es.requests_to("POST", "/_sql");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/_sql");
    assert_eq!(sent[0].params(), vec![("format".into(), "json".into())]);
    assert_eq!(
        sent[0].json(),
        json!({
            "query": "SELECT n FROM  \"logs-a,logs-b\"  WHERE n > 0",
            "fetch_size": 1,
            "filter": token_filter("a", json!({"match_all": {}}))
        })
    );
    es.clear();

    // Another token cannot continue or close it.
    for path in ["/_sql", "/_sql/close"] {
        let (status, v) = call(&gw, &b, "POST", path, json!({ "cursor": cursor }), &[]).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    assert!(es.requests().is_empty(), "{:?}", es.requests());

    // Its own token can: the backend sees its own cursor.
    let (status, v) = call(&gw, &a, "POST", "/_sql", json!({ "cursor": cursor }), &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"rows": [[2]]}));
    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_sql/close",
        json!({ "cursor": cursor }),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = es.requests();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].path, "/_sql");
    assert_eq!(sent[0].json(), json!({"cursor": "YmFja2VuZC1jdXJzb3I="}));
    assert_eq!(sent[1].path, "/_sql/close");
    assert_eq!(sent[1].json(), json!({"cursor": "YmFja2VuZC1jdXJzb3I="}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eql_searches_only_the_token_indices_with_the_wrapped_filter() {
    let (es, gw, a) = setup().await;
    let answer = json!({"is_partial": false, "hits": {"total": {"value": 1, "relation": "eq"}, "events": []}});
    es.script_json("POST", "/", 200, answer.clone());

    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/logs-*/_eql/search",
        json!({"query": "process where true", "size": 2, "filter": {"range": {"n": {"gte": 1}}}}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, answer);
    let sent: Vec<_> = es
        .requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/_resolve"))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].path, "/logs-a,logs-b/_eql/search");
    assert_eq!(
        sent[0].params(),
        vec![("expand_wildcards".into(), "open".into())]
    );
    assert_eq!(
        sent[0].json(),
        json!({
            "query": "process where true",
            "size": 2,
            // Under `constant_score`: the token's scores are constant (review 15).
            "filter": token_filter("a", json!({"constant_score": {"filter": {"range": {"n": {"gte": 1}}}}}))
        })
    );
}

/// The corpus's query-language cases are refused by esgate itself (the real backends would
/// refuse them anyway, having no such APIs): here the backend answers everything with 200,
/// and none of them may reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_query_language_cases_are_refused_before_the_backend() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json("*", "/", 200, json!({"rows": [], "values": [], "hits": {}}));
    // As in the real fixture, logs-sa is an alias named like the token's pattern that points
    // at the foreign index.
    es.script_json(
        "GET",
        "/_resolve/index/logs-sa",
        200,
        json!({"indices": [], "aliases": [{"name": "logs-sa", "indices": ["secret"]}], "data_streams": []}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    let cases: Vec<Value> = support::corpus::cases()
        .into_iter()
        .filter(|c| c["id"].as_str().is_some_and(|id| id.starts_with("QL-")))
        .collect();
    assert_eq!(cases.len(), 20);
    for case in &cases {
        assert_eq!(case["verdict"], "deny", "{case}");
        let body: Value = serde_json::from_str(case["body"].as_str().expect("body")).expect("json");
        let method = case["method"].as_str().expect("method");
        let path = case["path"].as_str().expect("path");
        let (status, v) = call(&gw, &a, method, path, body, &[]).await;
        assert_eq!(status, 403, "{}: {v}", case["id"]);
    }
    let reached: Vec<_> = es
        .requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/_resolve/index/"))
        .collect();
    assert!(reached.is_empty(), "{reached:?}");
}

/// Elasticsearch SQL's grammar takes any identifier as a function name, quoted ones included
/// (`functionName: LEFT | RIGHT | identifier`), so `"USER"()` calls `USER()` (the backend
/// principal esgate runs as) and `` `DATABASE`() `` the cluster name: the refusal of these
/// functions only looks at bare words.
/// (found by the second security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_functions_refused_by_name_are_refused_when_quoted_too() {
    let (es, gw, auth) = query_gateway().await;
    let sql = |q: &str| ("/_sql", json!({ "query": q }));
    let forwarded = not_refused_before_the_backend(
        &es,
        &gw,
        &auth,
        [
            sql("SELECT USER() AS u FROM logs-a"),
            sql("SELECT \"USER\"() AS u FROM logs-a"),
            sql("SELECT `user`() AS u FROM logs-a"),
            sql("SELECT \"DATABASE\"() AS d FROM logs-a"),
        ],
    )
    .await;
    assert!(
        forwarded.is_empty(),
        "service-account and cluster functions reached the backend:\n{}",
        forwarded.join("\n")
    );
}

/// Elasticsearch SQL's `tableIdentifier` is `(catalog=identifier ':')? name`: in
/// `FROM "logs-a":secret` the checked name `logs-a` is the *catalog* (a cluster) and `secret`
/// the table. esgate checks `logs-a` and takes `:secret` for an alias, so the text it forwards
/// names a table it never checked (with a remote cluster alias, or the local cluster's name as
/// catalog, that table is read).
/// (found by the second security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_catalog_separator_after_the_table_is_refused() {
    let (es, gw, auth) = query_gateway().await;
    let mut forwarded = Vec::new();
    for q in [
        "SELECT * FROM \"logs-a\":secret",
        "SELECT * FROM logs-a :secret",
        "SELECT * FROM `logs-a`:secret WHERE tenant = 'b'",
    ] {
        es.clear();
        let r = gw.post_as(&auth, "/_sql", &json!({ "query": q })).await;
        for sent in es.requests_to("POST", "/_sql") {
            forwarded.push(format!(
                "{q} -> {} forwarded as {}",
                r.status,
                sent.json()["query"]
            ));
        }
    }
    assert!(
        forwarded.is_empty(),
        "SQL texts whose table is not the checked name reached the backend:\n{}",
        forwarded.join("\n")
    );
}

/// attack26e: Elasticsearch finds a function by its name case-mapped in Java (SQL upper-cases:
/// `ı` -> `I`, `ſ` -> `S`, `ﬆ` -> `ST`; ES|QL lower-cases: the Kelvin sign -> `k`), so a quoted
/// name holding one of them called a function every ASCII comparison in esgate missed:
/// `USER()` (the backend principal), `SCORE()` for a token with constant scores, a
/// `STARTS_WITH` on `_id`, ES|QL `KQL` text past the expansion checks, `KNN`. Refused before
/// the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_function_names_case_mapped_to_ascii_are_refused_before_the_backend() {
    let (es, gw, auth) = query_gateway().await;
    let forwarded = not_refused_before_the_backend(
        &es,
        &gw,
        &auth,
        [
            ("/_sql", "SELECT \"uſer\"() AS u FROM logs-a"),
            ("/_sql", "SELECT \"databaſe\"() AS d FROM logs-a"),
            ("/_sql", "SELECT \"ſcore\"() AS s FROM logs-a"),
            (
                "/_sql",
                "SELECT * FROM logs-a WHERE \"ſtarts_with\"(_id, 'b')",
            ),
            ("/_query", "FROM logs-a | WHERE `\u{212A}QL`(\"_id: b*\")"),
            ("/_query", "FROM logs-a | WHERE `\u{212A}NN`(v, [1, 2])"),
        ]
        .map(|(path, q)| (path, json!({ "query": q }))),
    )
    .await;
    assert!(
        forwarded.is_empty(),
        "case-mapped function names reached the backend:\n{}",
        forwarded.join("\n")
    );
}

/// attack26e (M, availability): Elasticsearch SQL's `PERCENTILE(field, p, method, parameter)`
/// (and `PERCENTILE_RANK`) becomes a percentiles aggregation with that t-digest compression or
/// HDR digit count, which sizes each bucket's sketch outside the backend's circuit breakers:
/// `'tdigest', 1e8` is the DSL's `compression: 100000000` (about 23 GB per digest on
/// OpenSearch 3.4+). Above the DSL's bounds, or not a literal, it never reaches the backend;
/// within them it is forwarded as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_percentile_methods_reach_the_backend_bounded() {
    let (es, gw, auth) = query_gateway().await;
    let wrong = not_refused_before_the_backend(
        &es,
        &gw,
        &auth,
        [
            json!({"query": "SELECT PERCENTILE(n, 50, 'tdigest', 1e8) FROM logs-a"}),
            json!({"query": "SELECT PERCENTILE_RANK(n, 7, 'tdigest', 100000) FROM logs-a"}),
            json!({"query": "SELECT k FROM logs-a GROUP BY k HAVING PERCENTILE(n, 9, 'hdr', 5) > 1"}),
            json!({"query": "SELECT \"PERCENTILE\"(n, 50, 'tdigest', 1e4 * 1e4) FROM logs-a"}),
            json!({"query": "SELECT PERCENTILE(n, 50, 'tdigest', ?) FROM logs-a", "params": [1e8]}),
            json!({"query": "SELECT PERCENTILE(n, 50, ?, 5) FROM logs-a", "params": ["hdr"]}),
            // attack27a: glued to a minus, the words `-PERCENTILE` and `1-PERCENTILE_RANK`
            // went unread.
            json!({"query": "SELECT k, -PERCENTILE(n, 50, 'hdr', 5) FROM logs-a GROUP BY k"}),
            json!({"query": "SELECT 1-PERCENTILE_RANK(n, 7, 'tdigest', 1e8) FROM logs-a"}),
        ]
        .map(|body| ("/_sql", body)),
    )
    .await;
    assert!(
        wrong.is_empty(),
        "unbounded percentile sketches reached the backend:\n{}",
        wrong.join("\n")
    );
    es.clear();
    let q =
        "SELECT PERCENTILE(n, 50, 'tdigest', 1000), PERCENTILE_RANK(n, 7, 'hdr', 3) FROM logs-a";
    let r = gw.post_as(&auth, "/_sql", &json!({ "query": q })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = es.requests_to("POST", "/_sql");
    assert_eq!(sent.len(), 1);
    let forwarded = sent[0].json()["query"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        forwarded.contains("PERCENTILE(n, 50, 'tdigest', 1000)")
            && forwarded.contains("PERCENTILE_RANK(n, 7, 'hdr', 3)"),
        "{forwarded}"
    );
}

/// ES|QL and SQL texts that read (or could be read by Elasticsearch as reading) something
/// besides the checked source are refused before anything reaches the backend.
/// (a property checked by the second security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_language_differentials_are_refused_before_the_backend() {
    let (es, gw, auth) = query_gateway().await;
    let esql = [
        // A source glued to what Elasticsearch's FROM lexer splits on (`:` `=` `[` `]`).
        "FROM logs-a:secret",
        "FROM logs-a=secret",
        "FROM logs-a[secret]",
        "FROM logs-a::failures",
        // Subqueries, the deprecated bracket METADATA, a second source command.
        "FROM logs-a, (FROM secret | LIMIT 1)",
        "FROM logs-a [METADATA _index]",
        "FROM logs-a | LIMIT 1 | FROM secret",
        "FROM logs-a | WHERE true | from secret",
        // Comments and strings: nested, unterminated, glued to a name, a newline in a string.
        "FROM logs-a /* /* */ FROM secret */",
        "FROM logs-a /* unterminated",
        "FROM logs-a// c\n, secret",
        "FROM logs-a | WHERE x == \"a\nb\" | ENRICH p",
        "FROM logs-a | WHERE x == \"\\q\"",
        // Unicode outside strings, a | inside brackets, commands off the allow-list.
        "FROM logs-a | WHERE x\u{2028}== 1",
        "FROM logs-a | EVAL x = (1 | LOOKUP JOIN secret ON tenant)",
        "FROM logs-a | LOOKUP JOIN secret ON tenant",
        "FROM logs-a | ENRICH secret-policy ON user",
        "FROM logs-a | INLINESTATS c = COUNT(*)",
        "FROM logs-a | CHANGE_POINT n",
        "FROM logs-a | SAMPLE 0.5",
        "FROM logs-a | RERANK \"x\" ON message",
        "ROW x = 1",
        "SHOW INFO",
        "FROM ?idx",
        "FROM `secret`",
        "FROM \"logs-a\\\",secret\"",
        "FROM \"logs-a,secret\"",
        "FROM logs-a METADATA _index, secret",
        // esql16: an operator glued to a function or field name hid it from the checks.
        "FROM logs-a | WHERE true==QSTR(\"tenant:b~\")",
        "FROM logs-a | WHERE true==KNN(v, [1, 2])",
        "FROM logs-a METADATA _id | WHERE true==STARTS_WITH(_id, \"b\")",
        "FROM logs-a METADATA _id | WHERE `_id`::keyword LIKE \"b*\"",
        // Review 16d: a metadata field under another name (Elasticsearch pushes the pattern
        // down on the field).
        "FROM logs-a METADATA _id | EVAL x = _id | WHERE x LIKE \"b*\"",
        "FROM logs-a METADATA _id | RENAME _id AS x | WHERE STARTS_WITH(x, \"b\")",
        // attack18a: query text reaches Lucene as a `query_string`, which reads any field:
        // a term on an internal counter, named in the text or as a target.
        "FROM logs-a | WHERE QSTR(\"_seq_no:5 OR _seq_no:6\") | STATS c = COUNT(*)",
        "FROM logs-a | WHERE QSTR(\"_seq_no :5\")",
        "FROM logs-a | WHERE KQL(\"_primary_term: 1\")",
        "FROM logs-a | WHERE QSTR(\"5\", {\"default_field\": \"_seq_no\"})",
        // lucene18: Elasticsearch's KQL takes a quoted string as a field name and decodes
        // `\uXXXX` in names; `_exists_:name` in query_string text is an exists query on name.
        "FROM logs-a | WHERE KQL(\"\\\"_seq_no\\\":5\")",
        "FROM logs-a | WHERE KQL(\"\\\"_seq_no\\\" >= 3\") | STATS c = COUNT(*)",
        "FROM logs-a | WHERE KQL(\"\"\"\\u005fseq_no:5\"\"\")",
        "FROM logs-a | WHERE QSTR(\"_exists_:_seq_no\")",
    ];
    for q in esql {
        es.clear();
        let r = gw
            .json_as(&auth, "POST", "/_query", Some(&json!({ "query": q })))
            .await;
        assert!(
            (400..500).contains(&r.status.as_u16()),
            "{q:?}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            es.requests_to("POST", "/_query").is_empty(),
            "{q:?} was forwarded"
        );
    }
    let sql = [
        "SELECT * FROM logs-a, secret",
        "SELECT * FROM logs-a JOIN secret ON a = b",
        "SELECT * FROM logs-a UNION SELECT * FROM secret",
        "SELECT * FROM (SELECT * FROM secret) s",
        "SELECT * FROM logs-a WHERE x IN (SELECT y FROM secret)",
        "SELECT * FROM logs-a WHERE x = 1; SELECT * FROM secret",
        "SELECT * FROM \"logs-a\"\",\"\"secret\"",
        "SELECT * FROM `secret`",
        "SELECT * FROM remote:logs-a",
        "SELECT * FROM \"remote:logs-a\"",
        "SELECT * FROM logs-a -- \r FROM secret",
        "SELECT * FROM logs-a /* /* */ FROM secret */",
        "SELECT *FROM secret",
        "SELECT * FROM FROZEN logs-a",
        "SELECT * FROM logs-a s1 secret",
        "SELECT {fn USER()} FROM logs-a",
        "SELECT DATABASE() FROM logs-a",
        "SELECT user () FROM logs-a",
        "SELECT * FROM logs-a WHERE x = '\u{2028}' OR y\u{00a0}= 1",
        "SHOW TABLES",
        "DESCRIBE logs-a",
        "SYS COLUMNS TABLE LIKE 'secret'",
        "EXPLAIN SELECT * FROM secret",
        "WITH s AS (SELECT * FROM secret) SELECT * FROM s",
        // attack18a: `QUERY()` text names an internal counter.
        "SELECT COUNT(*) FROM logs-a WHERE QUERY('_seq_no:5')",
        "SELECT COUNT(*) FROM logs-a WHERE QUERY('5', 'default_field=_seq_no')",
        // lucene18: `_exists_:name` names its field.
        "SELECT COUNT(*) FROM logs-a WHERE QUERY('_exists_:_seq_no')",
        // attack26b: Elasticsearch joins every option string after the query text, and
        // MATCH's field list string reaches a multi_match as written.
        "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'lenient=true', 'fuzziness=2')",
        "SELECT COUNT(*) FROM logs-a WHERE QUERY('[0 TO 9]', 'lenient=true', 'default_field=_seq_no')",
        "SELECT _id FROM logs-a WHERE MATCH('_seq_no', '5') OR MATCH('_seq_no', '6')",
    ];
    for q in sql {
        es.clear();
        let r = gw
            .json_as(&auth, "POST", "/_sql", Some(&json!({ "query": q })))
            .await;
        assert!(
            (400..500).contains(&r.status.as_u16()),
            "{q:?}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            es.requests_to("POST", "/_sql").is_empty(),
            "{q:?} was forwarded"
        );
    }
}

/// attack26b: SQL full-text calls whose every option string and field are allowed reach the
/// backend as written (the table aside), the token's filters around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_full_text_options_and_field_lists_pass_when_every_part_is_allowed() {
    let (es, gw, a) = setup().await;
    es.script_json("POST", "/_sql", 200, json!({"columns": [], "rows": []}));
    let q = "SELECT _id FROM logs-a WHERE MATCH('user^2,_id', 'bob', 'operator=or', \
             'lenient=true') AND QUERY('bob', 'lenient=true', 'default_field=user')";
    let (status, v) = call(&gw, &a, "POST", "/_sql", json!({ "query": q }), &[]).await;
    assert_eq!(status, 200, "{v}");
    let sent = es.requests_to("POST", "/_sql");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].json()["query"],
        q.replace("FROM logs-a WHERE", "FROM  \"logs-a\"  WHERE")
    );
    assert_eq!(
        sent[0].json()["filter"],
        token_filter("a", json!({"match_all": {}}))
    );
}

/// A token's `max_size` (issue 13) holds in the query languages too: ES|QL answers get a
/// `LIMIT` of the token's own, last and on its own line; a SQL page over it is refused before
/// the backend, and a page left unsaid is set to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_caps_esql_rows_and_sql_pages() {
    let (es, gw, _) = setup().await;
    es.script_json("POST", "/_query", 200, json!({"columns": [], "values": []}));
    es.script_json("POST", "/_sql", 200, json!({"columns": [], "rows": []}));
    let (_, small) = gw
        .token(json!({"name": "small", "indices": ["logs-*"],
            "filters": [{"field": "tenant", "value": "a"}], "limits": {"max_size": 5}}))
        .await;
    let (status, v) = call(
        &gw,
        &small,
        "POST",
        "/_query",
        json!({"query": "FROM logs-* | LIMIT 10000 // every row"}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = es.requests_to("POST", "/_query");
    let query = sent[0].json()["query"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(query.ends_with("\n| LIMIT 5"), "{query}");

    let (status, v) = call(
        &gw,
        &small,
        "POST",
        "/_sql",
        json!({"query": "SELECT tenant FROM \"logs-*\"", "fetch_size": 50}),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("max_size 5")));
    assert!(es.requests_to("POST", "/_sql").is_empty());
    let (status, v) = call(
        &gw,
        &small,
        "POST",
        "/_sql",
        json!({"query": "SELECT tenant FROM \"logs-*\""}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(es.requests_to("POST", "/_sql")[0].json()["fetch_size"], 5);
}

/// Review 16e: ES|QL returns partial results by default (Elasticsearch 8.19+): a query some
/// shards failed answers 200 with the failures under `_clusters.details`, after the values.
/// Its answers streamed unread, so a circuit breaker's reason (the node's memory: every
/// tenant's work) reached a `read` token whole; now its type only, the values untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esql_partial_results_keep_their_failures_type_only_for_a_read_token() {
    let (es, gw, a) = setup().await;
    let answer = json!({
        "took": 5, "is_partial": true, "documents_found": 1, "values_loaded": 1,
        "columns": [{"name": "c", "type": "long"}], "values": [[2]],
        "_clusters": {"total": 1, "successful": 0, "running": 0, "skipped": 0, "partial": 1,
            "failed": 0, "details": {"(local)": {"status": "partial", "indices": "logs-a",
            "took": 5, "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1},
            "failures": [{"shard": 0, "index": "logs-a", "node": "n1",
                "reason": {"type": "circuit_breaking_exception",
                    "reason": "[parent] Data too large, real usage: [987654321/941mb]",
                    "bytes_wanted": 987_654_321_u64}}]}}}
    });
    es.script_json("POST", "/_query", 200, answer.clone());
    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_query?format=json",
        json!({"query": "FROM logs-a | STATS c = COUNT(*)"}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(!v.to_string().contains("real usage"), "{v}");
    assert_eq!(v["values"], answer["values"]);
    assert_eq!(
        v["_clusters"]["details"]["(local)"]["failures"][0]["reason"]["type"],
        "circuit_breaking_exception"
    );
    gw.stop().await;
}

/// attack17d (found, M): a `_source` ending in a `//` comment (Elasticsearch ends it with the
/// document and sends the document back as it was indexed) ran the failure judge's comment
/// on into the next row, to a line end in a later document whose `]]}` closed the answer for
/// the judge: its first frame judged clean, the answer streamed with the breaker's reason
/// under `_clusters`. Refused now (502), never sent unjudged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esql_documents_ending_in_a_line_comment_do_not_let_failures_out() {
    let (es, gw, a) = setup().await;
    let answer = concat!(
        r#"{"took":5,"is_partial":true,"columns":[{"name":"_source","type":"_source"}],"#,
        r#""values":[[{"a":1}//c],[{"b":1/*"#,
        "\n",
        r#"]]}/**/}]],"_clusters":{"total":1,"details":{"(local)":{"status":"partial","#,
        r#""failures":[{"shard":0,"index":"logs-a","node":"n1","reason":{"type":"circuit_breaking_exception","#,
        r#""reason":"[parent] Data too large, real usage: [987654321/941mb]"}}]}}}}"#
    );
    es.script(
        "POST",
        "/_query",
        Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: answer.as_bytes().to_vec().into(),
        },
    );
    let r = gw
        .call_raw(
            &a,
            "POST",
            "/_query?format=json",
            json!({"query": "FROM logs-a METADATA _source | KEEP _source"}),
            &[],
        )
        .await;
    let body = String::from_utf8_lossy(&r.body);
    assert!(!body.contains("real usage"), "{body}");
    assert_eq!(r.status.as_u16(), 502, "{body}");
    gw.stop().await;
}
