//! Internal counters and nonsense values (issues #8.2, #17.3 and #17.5), proven on both
//! backends.
//!
//! - Sequence numbers count every write to a shard, other tenants' included: a tenant-a
//!   document written after a foreign write has a `_seq_no` two above the previous tenant-a
//!   document instead of one. The tests show the channel on the backend itself (a search that
//!   carries the tenant filter), then that esgate refuses every way of reading the counter:
//!   `seq_no_primary_term`, `docvalue_fields`, `fields`, sorts, aggregations, queries, scoring
//!   functions, URI parameters, and `_doc`/`_shard_doc` outside the top-level sort.
//! - Inputs that made a backend answer 5xx (composite `size: 0`, an order by an unknown path, `slice` without scroll, a bucket explosion
//!   from `extended_bounds`, `fields: ["_source"]`) are 400s from esgate and never reach the
//!   backend (a recording backend sees no search). (A sampler without sub-aggregation, another
//!   5xx, is refused with every sampler: see `tests/it/term_statistics.rs`.)
//! - What real clients send with metadata fields keeps working: `_doc` as a top-level sort
//!   tiebreaker (Grafana), `_index`/`_id` in aggregations, docvalue fields and collapse,
//!   `stored_fields: ["*"]` and `fields: [{"field": "*"}]` (Kibana), `version: true`.
//!
//! Invariant: a `read` token for tenant `a` on `logs-*`; every assertion is about what the
//! promise requires, never about what esgate happens to answer.

use crate::support;

use serde_json::{json, Value};

use support::backend::{Backend, Flavor};
use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture;
use support::http::{send, Reply};
use support::recording::Recording;

async fn request(url: &str, method: &str, body: &Value) -> Reply {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    send(method, url, &[("content-type", "application/json")], bytes)
        .await
        .expect("answers")
}

/// Writes one document to `logs-a` directly on the backend, refreshed.
async fn write(base: &str, id: &str, tenant: &str, n: u64) {
    let r = request(
        &format!("{base}/logs-a/_doc/{id}?refresh=true"),
        "PUT",
        &json!({"tenant": tenant, "user": "w", "message": "w", "n": n,
                "@timestamp": format!("2024-02-{n:02}T00:00:00Z")}),
    )
    .await;
    assert!(r.status.is_success(), "write {id}: {}", r.text());
}

/// The `_seq_no` of tenant-a document `id`, read on the backend with the tenant filter (what
/// a token would get if esgate forwarded `seq_no_primary_term`).
async fn seq_no_seen_by_tenant_a(base: &str, id: &str) -> u64 {
    let body = json!({"seq_no_primary_term": true, "_source": false,
        "query": {"bool": {"filter": [{"term": {"tenant": "a"}}, {"ids": {"values": [id]}}]}}});
    let r = request(&format!("{base}/logs-*/_search"), "POST", &body).await;
    let v = r.json();
    v["hits"]["hits"][0]["_seq_no"]
        .as_u64()
        .unwrap_or_else(|| panic!("no _seq_no for {id}: {v}"))
}

/// Every way of reading an internal counter that esgate must refuse, with the status.
fn counter_reads() -> Vec<(&'static str, String, Value, u16)> {
    let s = "/logs-*/_search".to_string();
    let top_hits = |opts: Value| json!({"size": 0, "aggs": {"t": {"terms": {"field": "user"}, "aggs": {"h": {"top_hits": opts}}}}});
    vec![
        ("POST", s.clone(), json!({"seq_no_primary_term": true}), 403),
        (
            "GET",
            "/logs-*/_search?seq_no_primary_term=true".into(),
            Value::Null,
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"docvalue_fields": ["_seq_no"]}),
            403,
        ),
        (
            "GET",
            "/logs-*/_search?docvalue_fields=_primary_term".into(),
            Value::Null,
            403,
        ),
        ("POST", s.clone(), json!({"fields": ["_seq_no"]}), 403),
        (
            "POST",
            s.clone(),
            json!({"stored_fields": ["_seq_no"]}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"sort": [{"_seq_no": "desc"}]}),
            403,
        ),
        (
            "GET",
            "/logs-*/_search?sort=_seq_no:desc".into(),
            Value::Null,
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"size": 0, "aggs": {"m": {"max": {"field": "_seq_no"}}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "_seq_no"}}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"size": 0, "aggs": {"h": {"histogram": {"field": "_seq_no", "interval": 1}}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"size": 0, "aggs": {"r": {"range": {"field": "_seq_no", "ranges": [{"to": 3}]}}}}),
            403,
        ),
        (
            "POST",
            "/logs-*/_count".into(),
            json!({"query": {"range": {"_seq_no": {"gte": 3}}}}),
            403,
        ),
        (
            "GET",
            "/logs-*/_count?q=_seq_no:%3E3".into(),
            Value::Null,
            403,
        ),
        // attack18a: Lucene skips whitespace between a field name and its colon, and `!` is
        // NOT inside a word too (terms: a range on `_seq_no` is refused as an expansion).
        (
            "POST",
            "/logs-*/_count".into(),
            json!({"query": {"query_string": {"query": "_seq_no :3 OR _seq_no :4"}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"query": {"query_string": {"query": "a AND (_seq_no\t:3)"}}}),
            403,
        ),
        (
            "POST",
            "/logs-*/_count".into(),
            json!({"query": {"query_string": {"query": "message!_seq_no:3"}}}),
            403,
        ),
        (
            "GET",
            "/logs-*/_count?q=_seq_no%20%20:3".into(),
            Value::Null,
            403,
        ),
        // lucene18: a range bound holding a quote is goop to Lucene's range lexer, not a
        // phrase's start: `_seq_no` after it is a field (the field reader alone read on in a
        // phrase to the end; the expansion reader, run beside it, reads ranges as Lucene).
        (
            "POST",
            "/logs-*/_count".into(),
            json!({"query": {"query_string": {"query": "message:[a\"b TO c] OR _seq_no:3"}}}),
            403,
        ),
        // hard19: the same in a regular expression (a quote in it is literal), after a boost's
        // number (`^2` ends at its digits) and as an exists query's quoted field.
        (
            "POST",
            "/logs-*/_count".into(),
            json!({"query": {"query_string": {"query": "message:/[a\"]/ OR _seq_no:3"}}}),
            403,
        ),
        (
            "POST",
            "/logs-*/_count".into(),
            json!({"query": {"query_string": {"query": "message^2_seq_no:3"}}}),
            403,
        ),
        (
            "POST",
            "/logs-*/_count".into(),
            json!({"query": {"query_string": {"query": "_exists_:\"_seq_no\""}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"query": {"function_score": {"random_score": {"seed": 1, "field": "_seq_no"}}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"query": {"function_score": {"random_score": {}}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"query": {"function_score": {"field_value_factor": {"field": "_seq_no"}}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            top_hits(json!({"size": 1, "seq_no_primary_term": true})),
            403,
        ),
        (
            "POST",
            s.clone(),
            top_hits(json!({"size": 1, "sort": ["_doc"]})),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "sort": ["_doc"]}}}),
            403,
        ),
        (
            "POST",
            s.clone(),
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "_doc"}}}}),
            403,
        ),
        ("POST", s.clone(), json!({"fields": ["_source"]}), 400),
        // attack26 (hardening): `*` resolves over the metadata fields in `docvalue_fields`
        // (Elasticsearch's fetch then failed on `_source`, the only thing keeping `_seq_no`
        // out), and highlight field names are field positions like every other.
        ("POST", s.clone(), json!({"docvalue_fields": ["*"]}), 403),
        (
            "GET",
            "/logs-*/_search?docvalue_fields=*".into(),
            Value::Null,
            403,
        ),
        (
            "POST",
            s.clone(),
            top_hits(json!({"docvalue_fields": [{"field": "*"}]})),
            403,
        ),
        (
            "POST",
            s,
            json!({"query": {"match": {"message": "x"}}, "highlight": {"fields": {"_seq_no": {}}}}),
            403,
        ),
    ]
}

/// On `backend` (writable): the counter is a real channel there, and esgate refuses every way
/// of reading it.
async fn sequence_numbers_are_a_channel_and_refused(backend: &Backend) {
    let base = backend.url();
    write(base, "w1", "a", 1).await;
    let before = seq_no_seen_by_tenant_a(base, "w1").await;
    write(base, "w2", "b", 2).await;
    write(base, "w3", "a", 3).await;
    let after = seq_no_seen_by_tenant_a(base, "w3").await;
    assert_eq!(
        after - before,
        2,
        "{:?}: one foreign write between two tenant-a writes shows in their sequence numbers",
        backend.flavor()
    );

    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    for (method, path, body, want) in counter_reads() {
        let r = gw.call_raw(&secret, method, &path, body.clone(), &[]).await;
        assert_eq!(
            r.status.as_u16(),
            want,
            "{:?} {method} {path} {body}: {}",
            backend.flavor(),
            r.text()
        );
        assert!(!r.text().contains("\"_seq_no\":"), "{}", r.text());
    }
}

/// Both backends read `query_string` text as Lucene's classic parser does: whitespace between a
/// field name and its colon is skipped, so `user :alice` is a query on `user`, not on the default
/// field (attack18a: esgate's field check read `_seq_no :5` as naming no field), and `!` is an
/// operator inside a word too (`x!user:alice`). Shown on the
/// backend with the tenant filter; the refusals are in [`counter_reads`].
async fn a_field_name_may_stand_apart_from_its_colon(backend: &Backend) {
    let count = |text: &str| {
        let body = json!({"query": {"bool": {
            "filter": [{"term": {"tenant": "a"}}],
            "must": [{"query_string": {"query": text, "default_field": "message"}}]}}});
        let url = format!("{}/logs-*/_count", backend.url());
        async move {
            let r = request(&url, "POST", &body).await;
            r.json()["count"]
                .as_u64()
                .unwrap_or_else(|| panic!("{}", r.text()))
        }
    };
    let fielded = count("user:alice").await;
    assert!(fielded > 0, "{:?}", backend.flavor());
    for text in [
        "user :alice",
        "user\t:alice",
        "user \n :alice",
        "user\u{3000}:alice",
    ] {
        assert_eq!(
            count(text).await,
            fielded,
            "{:?} {text:?}",
            backend.flavor()
        );
    }
    assert_eq!(count("alice").await, 0, "alice is in no message");
    // `!` is NOT wherever it stands: `hello!user:nobody` is `hello NOT user:nobody` (read as
    // one word, on a field `hello!user` or the default field, it would match nothing).
    let hello = count("hello").await;
    assert!(hello > 0, "{:?}", backend.flavor());
    assert_eq!(
        count("hello!user:nobody").await,
        hello,
        "{:?}",
        backend.flavor()
    );
}

/// Both backends end a range bound and a boost where Lucene's lexer does
/// (`testing::LUCENE_FIELDS` in the crate): a quote inside a bound opens no phrase, a boost's
/// number ends at its digits, so the field query after them is one (`user:alice` counts as
/// alone); esgate's field reader reads them alike (hard19). Regular expressions part the
/// backends: osmem reads one whole as Lucene does (a quote inside is literal, a `name:`
/// inside no field), noida reads a `name:` inside as a field query and a `[` inside as a
/// range: why esgate's readers check the names inside one too.
async fn a_field_name_after_a_range_a_regexp_or_a_boost_is_read(backend: &Backend) {
    let count = |text: &str| {
        let body = json!({"query": {"bool": {
            "filter": [{"term": {"tenant": "a"}}],
            "must": [{"query_string": {"query": text, "default_field": "message"}}]}}});
        let url = format!("{}/logs-*/_count", backend.url());
        async move {
            let r = request(&url, "POST", &body).await;
            r.json()["count"]
                .as_u64()
                .unwrap_or_else(|| panic!("{}", r.text()))
        }
    };
    let fielded = count("user:alice").await;
    assert!(fielded > 0, "{:?}", backend.flavor());
    assert_eq!(count("zzzz").await, 0);
    for text in [
        "message:[zzz0\" TO zzz1] OR user:alice OR \"zzzz\"",
        "zzzz^2user:alice",
        "zzzz^2.5user:alice",
    ] {
        assert_eq!(
            count(text).await,
            fielded,
            "{:?} {text:?}",
            backend.flavor()
        );
    }
    let inside = count("/zz user:alice zz/").await;
    match backend.flavor() {
        Flavor::Osmem => {
            assert_eq!(inside, 0);
            assert_eq!(count("message:/[z\"]zz/ OR user:alice").await, fielded);
        }
        Flavor::Noida => assert_eq!(inside, fielded),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_name_after_a_range_a_regexp_or_a_boost_is_read_on_both_backends() {
    a_field_name_after_a_range_a_regexp_or_a_boost_is_read(&fixture::seeded_osmem()).await;
    a_field_name_after_a_range_a_regexp_or_a_boost_is_read(&fixture::seeded_noida()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_name_may_stand_apart_from_its_colon_on_both_backends() {
    a_field_name_may_stand_apart_from_its_colon(&fixture::seeded_osmem()).await;
    a_field_name_may_stand_apart_from_its_colon(&fixture::seeded_noida()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_count_foreign_writes_and_are_refused_on_osmem() {
    let backend = fixture::seeded_osmem();
    sequence_numbers_are_a_channel_and_refused(&backend).await;
}

/// The aggregation form (osmem aggregates `_seq_no`; noida answers null): a `max` over the
/// tenant's own documents moves by two when one foreign write sits between its two writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_no_aggregation_over_own_documents_moves_with_foreign_writes() {
    let backend = fixture::seeded_osmem();
    let base = backend.url();
    let body = json!({"size": 0, "query": {"term": {"tenant": "a"}},
        "aggs": {"m": {"max": {"field": "_seq_no"}}}});
    let max = || async {
        let r = request(&format!("{base}/logs-a/_search"), "POST", &body).await;
        let v = r.json();
        v["aggregations"]["m"]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("no max: {v}"))
    };
    write(base, "x1", "a", 1).await;
    let before = max().await;
    write(base, "x2", "b", 2).await;
    write(base, "x3", "a", 3).await;
    assert_eq!(max().await - before, 2.0, "the foreign write is counted");
    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let r = gw
        .call_raw(&secret, "POST", "/logs-a/_search", body.clone(), &[])
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_count_foreign_writes_and_are_refused_on_noida() {
    let backend = fixture::seeded_noida();
    sequence_numbers_are_a_channel_and_refused(&backend).await;
    // What Kibana and Grafana send with metadata fields still works, and answers only
    // tenant a's documents.
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    for body in clients_metadata_bodies() {
        let r = gw
            .call_raw(&secret, "POST", "/logs-*/_search", body.clone(), &[])
            .await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert!(!fixture::contains_leak_marker(&r.body), "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_bodies_with_own_metadata_fields_keep_working_on_osmem() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    for body in clients_metadata_bodies() {
        let r = gw
            .call_raw(&secret, "POST", "/logs-*/_search", body.clone(), &[])
            .await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert!(!fixture::contains_leak_marker(&r.body), "{}", r.text());
        let want = if body["query"].is_null() {
            fixture::TENANT_A_DOCS
        } else {
            fixture::TENANT_A_PER_LOGS_INDEX
        };
        assert_eq!(r.json()["hits"]["total"]["value"], want, "{body}");
    }
}

fn clients_metadata_bodies() -> Vec<Value> {
    vec![
        // Grafana's logs query: `_doc` as the tiebreaker of the top-level sort.
        json!({"size": 5, "track_total_hits": true, "docvalue_fields": ["@timestamp"],
            "sort": {"@timestamp": {"order": "desc", "unmapped_type": "boolean"}, "_doc": {"order": "desc"}}}),
        // Kibana's Discover.
        json!({"size": 5, "track_total_hits": true, "version": true, "stored_fields": ["*"],
            "fields": [{"field": "*"}], "_source": false}),
        json!({"size": 0, "track_total_hits": true,
            "aggs": {"i": {"terms": {"field": "_index", "order": {"_key": "asc"}}}}}),
        json!({"size": 3, "track_total_hits": true, "docvalue_fields": ["_id"], "stored_fields": "_none_",
            "query": {"term": {"_index": "logs-a"}}}),
        json!({"size": 0, "track_total_hits": true, "aggs": {"t": {"terms": {"field": "user",
            "order": [{"m": "desc"}, {"_count": "desc"}]}, "aggs": {"m": {"max": {"field": "n"}},
            "h": {"top_hits": {"size": 1, "sort": [{"n": "desc"}, "_score"], "version": true}}}}}}),
    ]
}

/// Inputs the backends answered with a 5xx (observed on osmem and noida 0.x, pinned in
/// tests/it/support/backend.rs), or that took a backend down (a zero date-histogram interval).
fn nonsense() -> Vec<(&'static str, Value)> {
    let s = "/logs-*/_search";
    vec![
        (
            s,
            json!({"size": 0, "aggs": {"c": {"composite": {"size": 0, "sources": [{"u": {"terms": {"field": "user"}}}]}}}}),
        ),
        (
            s,
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "user", "order": {"nope": "asc"}}}}}),
        ),
        (s, json!({"slice": {"id": 0, "max": 2}})),
        (
            s,
            json!({"size": 0, "aggs": {"h": {"histogram": {"field": "n", "interval": 1,
                "extended_bounds": {"min": 0, "max": 100000000}}}}}),
        ),
        (s, json!({"size": 1, "fields": ["_source"]})),
        (
            s,
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "user", "order": {"m": "asc"}},
                "aggs": {"m": {"stats": {"field": "n"}}}}}}),
        ),
        (
            s,
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "user", "order": {"m.nope": "asc"}},
                "aggs": {"m": {"max": {"field": "n"}}}}}}),
        ),
        (
            s,
            json!({"size": 0, "aggs": {"d": {"date_histogram": {"field": "@timestamp", "fixed_interval": "0ms"}}}}),
        ),
        (
            s,
            json!({"size": 0, "aggs": {"d": {"date_histogram": {"field": "@timestamp", "interval": 0}}}}),
        ),
        (
            s,
            json!({"size": 0, "aggs": {"h": {"histogram": {"field": "n", "interval": 0}}}}),
        ),
    ]
}

/// The "before": the first seven nonsense inputs, sent to the backends directly, fail with a
/// 5xx on at least one of them (the zero intervals are not sent: one took a backend down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_values_made_a_backend_fail_and_are_400s_from_esgate() {
    let osmem = fixture::seeded_osmem();
    let noida = fixture::seeded_noida();
    for (path, body) in nonsense().into_iter().take(7) {
        let mut statuses = vec![];
        for b in [&osmem, &noida] {
            let r = request(&format!("{}{path}", b.url()), "POST", &body).await;
            statuses.push(r.status.as_u16());
        }
        assert!(
            statuses.iter().any(|s| *s >= 500),
            "{body}: a backend answered it with a 5xx before the fix ({statuses:?})"
        );
    }
    for b in [&osmem, &noida] {
        let gw = Esgate::start(&[b.url()], "").await;
        let (_, secret) = gw.token(token_a()).await;
        for (path, body) in nonsense() {
            let r = gw.call_raw(&secret, "POST", path, body.clone(), &[]).await;
            assert_eq!(r.status, 400, "{:?} {body}: {}", b.flavor(), r.text());
            // esgate's own error, not a relayed backend failure.
            assert_eq!(
                r.json()["error"]["type"],
                "parsing_exception",
                "{}",
                r.text()
            );
        }
    }
}

/// The nonsense never reaches the cluster: a recording backend sees no search at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_values_never_reach_the_backend() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b"]);
    es.script_json(
        "POST",
        "/",
        200,
        json!({"hits": {"total": {"value": 0}, "hits": []}}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let mut cases = nonsense();
    for (_, path, body, _) in counter_reads() {
        if body.is_object() {
            cases.push((
                if path.contains("_count") {
                    "/logs-*/_count"
                } else {
                    "/logs-*/_search"
                },
                body,
            ));
        }
    }
    for (path, body) in cases {
        let r = gw.call_raw(&secret, "POST", path, body.clone(), &[]).await;
        assert!(
            (400..500).contains(&r.status.as_u16()),
            "{body}: {}",
            r.text()
        );
    }
    // esgate's own lookups aside: index resolution, and `GET /` (the backend's banner, asked
    // before a body naming a histogram while it is not known: this fake's is not one).
    let searches: Vec<String> = es
        .requests()
        .iter()
        .filter(|r| !(r.path.starts_with("/_resolve") || (r.method == "GET" && r.path == "/")))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(searches.is_empty(), "reached the backend: {searches:?}");
}
