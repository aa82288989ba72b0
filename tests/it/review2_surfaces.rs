//! Second security review (the routes added on day two): properties that hold today and that
//! the corpus cannot express (a whole listing, two answers compared, what reaches the backend).
//! `_cat/indices` and `_explain` run against both real backends seeded with the security
//! fixture; ES|QL and SQL against the recording fake (neither backend has them).
//!
//! Invariant: each test asserts what the promise requires of a `read` token for tenant `a` on
//! `logs-*` (no foreign index name, no way to tell a foreign document from a missing one,
//! nothing forwarded that reads outside the checked source), never what esgate happens to do.

use crate::support;

use serde_json::{json, Value};

use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send, Reply};
use support::recording::Recording;

async fn call(gw: &Esgate, auth: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let mut headers = vec![("authorization", auth)];
    let bytes = match body {
        Some(b) => {
            headers.push(("content-type", "application/json"));
            b.to_string().into_bytes()
        }
        None => Vec::new(),
    };
    send(method, &gw.url(path), &headers, bytes)
        .await
        .expect("esgate answers")
}

/// Every `_cat/indices` listing a filtered token can ask for names only its own indices: never
/// `secret`, nor the alias `logs-sa` that matches `logs-*` but points at `secret`.
async fn cat_indices_lists_only_the_tokens_indices(backend: &str) {
    let gw = Esgate::start(&[backend], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    for path in [
        "/_cat/indices?format=json&h=index",
        "/_cat/indices/_all?format=json&h=index",
        "/_cat/indices/*?format=json&h=index&s=index:desc",
        "/_cat/indices/l*?format=json&h=index,health,status",
        "/_cat/indices/logs-*,-logs-b?format=json&h=index",
        "/_cat/indices/logs-a,logs-b?format=json&h=i",
    ] {
        let r = call(&gw, &auth, "GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let rows = r.json();
        let names: Vec<&str> = rows
            .as_array()
            .unwrap_or_else(|| panic!("{path}: not a list: {rows}"))
            .iter()
            .map(|row| row["index"].as_str().unwrap_or_default())
            .collect();
        assert!(!names.is_empty(), "{path}: {rows}");
        for name in &names {
            assert!(
                [fixture::INDEX_LOGS_A, fixture::INDEX_LOGS_B].contains(name),
                "{path} names [{name}]: {rows}"
            );
        }
    }
    // The text table too (default columns, header), and without any counting column.
    let r = call(&gw, &auth, "GET", "/_cat/indices?v", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(
        !text.contains("secret") && !text.contains("logs-sa"),
        "{text}"
    );
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(header.contains(&"index"), "{text}");
    for counting in ["docs.count", "docs.deleted", "store.size", "pri.store.size"] {
        assert!(!header.contains(&counting), "{counting} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_indices_lists_only_the_tokens_indices_osmem() {
    let backend = fixture::seeded_osmem();
    cat_indices_lists_only_the_tokens_indices(backend.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_indices_lists_only_the_tokens_indices_noida() {
    let backend = fixture::seeded_noida();
    cat_indices_lists_only_the_tokens_indices(backend.url()).await;
}

/// `b2` is a tenant-b document in `logs-a`; `zz9` does not exist. With every parameter explain
/// takes and with queries that build on any shard, both answer the same (only `_id` differs).
async fn explain_answers_a_foreign_document_like_a_missing_one(backend: &str) {
    let gw = Esgate::start(&[backend], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let strip = |r: &Reply| {
        let mut v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("_id");
        }
        // Headers too (a deprecation `Warning` or anything else the backend adds only for an
        // existing document would tell them apart); the length differs with the id.
        let mut headers: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "content-length" | "date"))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        headers.sort();
        (r.status.as_u16(), v, headers)
    };
    let queries = [
        None,
        Some(json!({"query": {"match_all": {}}})),
        Some(json!({"query": {"term": {"tenant": "b"}}})),
        Some(
            json!({"query": {"bool": {"should": [{"term": {"tenant": "b"}}, {"match_all": {}}]}}}),
        ),
        Some(json!({"query": {"match": {"message": "hello"}}})),
    ];
    for params in [
        "",
        "?_source=true",
        "?stored_fields=user,tenant",
        "?_source_includes=user&routing=b2",
        "?preference=_local",
    ] {
        for q in &queries {
            let method = if q.is_some() { "POST" } else { "GET" };
            let foreign = call(
                &gw,
                &auth,
                method,
                &format!("/logs-a/_explain/b2{params}"),
                q.as_ref(),
            )
            .await;
            let missing = call(
                &gw,
                &auth,
                method,
                &format!("/logs-a/_explain/zz9{params}"),
                q.as_ref(),
            )
            .await;
            assert_eq!(foreign.status, 404, "{params} {q:?}: {}", foreign.text());
            assert_eq!(strip(&foreign), strip(&missing), "{params} {q:?}");
            assert!(
                !fixture::contains_leak_marker(&foreign.body),
                "{}",
                foreign.text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_answers_a_foreign_document_like_a_missing_one_osmem() {
    let backend = fixture::seeded_osmem();
    explain_answers_a_foreign_document_like_a_missing_one(backend.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_answers_a_foreign_document_like_a_missing_one_noida() {
    let backend = fixture::seeded_noida();
    explain_answers_a_foreign_document_like_a_missing_one(backend.url()).await;
}

/// ES|QL and SQL texts that read (or could be read by Elasticsearch as reading) something
/// besides the checked source are refused before anything reaches the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_language_differentials_are_refused_before_the_backend() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json("POST", "/_query", 200, json!({"columns": [], "values": []}));
    es.script_json("POST", "/_sql", 200, json!({"columns": [], "rows": []}));
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
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
    ];
    for q in esql {
        es.clear();
        let r = call(&gw, &auth, "POST", "/_query", Some(&json!({ "query": q }))).await;
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
    ];
    for q in sql {
        es.clear();
        let r = call(&gw, &auth, "POST", "/_sql", Some(&json!({ "query": q }))).await;
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
