//! Second security review (the routes added on day two): the findings, each proven against a
//! real backend or, for SQL, against the recording fake (neither backend has `_sql`), kept as
//! regression tests now that they are fixed.
//!
//! Invariant: each test asserts what the promise requires (a `read` token for tenant `a` on
//! `logs-*` learns nothing about documents outside its filters, and client input never causes
//! a 5xx), never what esgate happens to do.

use crate::support;

use serde_json::{json, Value};

use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send, Reply};
use support::recording::Recording;

async fn post(gw: &Esgate, auth: &str, path: &str, body: &Value) -> Reply {
    send(
        "POST",
        &gw.url(path),
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
    .expect("esgate answers")
}

/// The answer with the document id taken out, so that answers about two ids compare.
fn without_id(r: &Reply) -> (u16, Value) {
    let mut v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("_id");
    }
    (r.status.as_u16(), v)
}

/// `b2` is a tenant-b document in `logs-a` (an index the token may read); `zz9` does not exist.
/// Elasticsearch's (and OpenSearch's) explain looks the document up *before* it builds the
/// query: a query that fails to build on the shard fails only when the document exists, so the
/// answer tells a foreign document from a missing one however esgate wraps the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_cannot_tell_a_foreign_document_from_a_missing_one_with_a_failing_query_osmem() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let queries = [
        json!({"prefix": {"n": "1"}}),
        json!({"term": {"n": "abc"}}),
        json!({"range": {"@timestamp": {"gte": "notadate"}}}),
        json!({"match": {"message": {"query": "x", "analyzer": "nope"}}}),
    ];
    let mut oracles = Vec::new();
    for q in queries {
        let body = json!({ "query": q });
        let foreign = post(&gw, &auth, "/logs-a/_explain/b2", &body).await;
        let missing = post(&gw, &auth, "/logs-a/_explain/zz9", &body).await;
        // Answered, not refused (issue #15 item 10): the failing query's 400 for both, or the
        // 404 of a missing document for both; never esgate's 403 for a readable index.
        assert!(
            matches!(foreign.status.as_u16(), 400 | 404),
            "{body}: {} {}",
            foreign.status,
            foreign.text()
        );
        if without_id(&foreign) != without_id(&missing) {
            oracles.push(format!(
                "{body}: foreign b2 -> {} {}; missing zz9 -> {} {}",
                foreign.status,
                foreign.text(),
                missing.status,
                missing.text()
            ));
        }
    }
    assert!(
        oracles.is_empty(),
        "explain answers differ for a foreign and a missing document:\n{}",
        oracles.join("\n")
    );
}

/// A wildcard that reaches none of the token's indices is forwarded as `*,-*`; an
/// Elasticsearch-dialect backend answers a search over no shard without `aggregations`, which
/// the `_terms_enum` transform takes for a malformed answer: 502 from client input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_enum_on_a_wildcard_that_reaches_nothing_is_an_empty_answer_noida() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let r = post(
        &gw,
        &auth,
        "/logs-nothing-*/_terms_enum",
        &json!({"field": "user", "string": "a"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["terms"], json!([]), "{}", r.text());
}

/// Elasticsearch SQL's grammar takes any identifier as a function name, quoted ones included
/// (`functionName: LEFT | RIGHT | identifier`), so `"USER"()` calls `USER()` (the backend
/// principal esgate runs as) and `` `DATABASE`() `` the cluster name: the refusal of these
/// functions only looks at bare words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_functions_refused_by_name_are_refused_when_quoted_too() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json("POST", "/_sql", 200, json!({"columns": [], "rows": []}));
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let mut forwarded = Vec::new();
    for q in [
        "SELECT USER() AS u FROM logs-a",
        "SELECT \"USER\"() AS u FROM logs-a",
        "SELECT `user`() AS u FROM logs-a",
        "SELECT \"DATABASE\"() AS d FROM logs-a",
    ] {
        es.clear();
        let r = post(&gw, &auth, "/_sql", &json!({ "query": q })).await;
        if r.status != 403 || !es.requests_to("POST", "/_sql").is_empty() {
            forwarded.push(format!("{q} -> {} {}", r.status, r.text()));
        }
    }
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_catalog_separator_after_the_table_is_refused() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json("POST", "/_sql", 200, json!({"columns": [], "rows": []}));
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let mut forwarded = Vec::new();
    for q in [
        "SELECT * FROM \"logs-a\":secret",
        "SELECT * FROM logs-a :secret",
        "SELECT * FROM `logs-a`:secret WHERE tenant = 'b'",
    ] {
        es.clear();
        let r = post(&gw, &auth, "/_sql", &json!({ "query": q })).await;
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

/// `uri_search` refuses a `q` nested deeper than 32 brackets (CVE-2023-31419: a deeply nested
/// query string overflowed the stack of Elasticsearch's query parser), but the very same text
/// in a body `query_string` (search, count, explain, validate, async submit) is forwarded: the
/// cap protects nothing while the body form is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_string_nesting_cap_holds_for_the_body_form_too() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json(
        "*",
        "/logs-a/",
        200,
        json!({"hits": {"hits": []}, "count": 0}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let deep = format!("{}x{}", "(".repeat(200), ")".repeat(200));
    let q: String = deep
        .chars()
        .map(|c| match c {
            '(' => "%28".to_string(),
            ')' => "%29".to_string(),
            c => c.to_string(),
        })
        .collect();
    let r = send(
        "GET",
        &gw.url(&format!("/logs-a/_search?q={q}")),
        &[("authorization", &auth)],
        Vec::new(),
    )
    .await
    .expect("esgate answers");
    assert_eq!(r.status, 400, "the URI form is refused: {}", r.text());
    assert!(es.requests_to("*", "/logs-a/").is_empty());
    let mut forwarded = Vec::new();
    for path in [
        "/logs-a/_search",
        "/logs-a/_count",
        "/logs-a/_validate/query",
    ] {
        es.clear();
        let body = json!({"query": {"query_string": {"query": deep}}});
        let r = post(&gw, &auth, path, &body).await;
        if !es.requests_to("*", "/logs-a/").is_empty() {
            forwarded.push(format!("{path} -> {}", r.status));
        }
    }
    assert!(
        forwarded.is_empty(),
        "a query_string nested 200 deep reached the backend through the body:\n{}",
        forwarded.join("\n")
    );
}
