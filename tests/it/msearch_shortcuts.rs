//! The `_msearch` request-path shortcuts of issue 10 (review10), on both real backends seeded
//! with the security fixture: compact header lines read without the request tree
//! (`scan_header`), a header's expression shared by the lines naming the same text, and
//! top-level entries an earlier search of the request accepted not checked again
//! (`rewrite::Accepted`).
//!
//! What it proves: a compact dashboard-shaped `_msearch` whose searches repeat one query and
//! one aggregation (the memo's case) under headers naming `logs-*`, `logs-a`, `l*` (through
//! the foreign alias `logs-sa`) or nothing answers each search on its own header's indices
//! and the token's filter: the hit count and the aggregated sum of `n` are those of tenant a
//! in that search's indices, whatever the lines around it name; and a header that names the
//! foreign index through an escaped key, or an entry refused after the same key was accepted
//! with another value or the same value was accepted under another key, is refused, with
//! nothing of the foreign index in the answer.

use crate::support;

use serde_json::Value;

use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture::{self, assert_no_foreign_data, leaks};
use support::http::{bearer, send, Reply};

/// A query and an aggregation long enough for `Accepted` to hold them (48 bytes and more),
/// compact as dashboards send them.
const QUERY: &str = r#"{"bool":{"filter":[{"range":{"n":{"gte":0,"lte":1000}}}]}}"#;
const AGGS: &str =
    r#"{"users":{"terms":{"field":"user","size":10}},"total":{"sum":{"field":"n"}}}"#;

/// The sum of `n` over tenant a's documents: `a1..a10` in `logs-*`, the odd ones in `logs-a`.
const SUM_LOGS: f64 = 55.0;
const SUM_LOGS_A: f64 = 25.0;

fn body() -> String {
    format!(r#"{{"size":0,"track_total_hits":true,"query":{QUERY},"aggs":{AGGS}}}"#)
}

async fn msearch(gw: &Esgate, auth: &str, ndjson: &str) -> Reply {
    send(
        "POST",
        &gw.url("/_msearch"),
        &[
            ("authorization", auth),
            ("content-type", "application/x-ndjson"),
        ],
        ndjson.to_string(),
    )
    .await
    .unwrap()
}

fn total(v: &Value) -> u64 {
    let t = &v["hits"]["total"];
    t["value"].as_u64().or_else(|| t.as_u64()).unwrap()
}

async fn shortcuts_answer_each_search_on_its_own_header(backend: &support::backend::Backend) {
    let gw = Esgate::start(&[backend.url()], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    let body = body();
    // Each header and the tenant-a hits and sum its search must answer.
    let headers: [(&str, u64, f64); 7] = [
        (r#"{"index":"logs-*"}"#, fixture::TENANT_A_DOCS, SUM_LOGS),
        (
            r#"{"index":"logs-a"}"#,
            fixture::TENANT_A_PER_LOGS_INDEX,
            SUM_LOGS_A,
        ),
        (
            r#"{"index":"logs-*","ignore_unavailable":true}"#,
            fixture::TENANT_A_DOCS,
            SUM_LOGS,
        ),
        ("{}", fixture::TENANT_A_DOCS, SUM_LOGS),
        (r#"{"index":"l*"}"#, fixture::TENANT_A_DOCS, SUM_LOGS),
        (
            r#"{"index":"logs-a","preference":"p"}"#,
            fixture::TENANT_A_PER_LOGS_INDEX,
            SUM_LOGS_A,
        ),
        (r#"{"index":"logs-*"}"#, fixture::TENANT_A_DOCS, SUM_LOGS),
    ];
    let mut ndjson = String::new();
    for (h, _, _) in headers {
        ndjson.push_str(&format!("{h}\n{body}\n"));
    }
    let r = msearch(&gw, &auth, &ndjson).await;
    // No leak marker nor the foreign index's name (`leaks` would take the sums for counts).
    assert_no_foreign_data("compact _msearch", &r);
    let v = r.json();
    let responses = v["responses"].as_array().unwrap();
    assert_eq!(responses.len(), headers.len(), "{v}");
    for ((h, hits, sum), answer) in headers.iter().zip(responses) {
        assert_eq!(total(answer), *hits, "{h}: {answer}");
        assert_eq!(
            answer["aggregations"]["total"]["value"].as_f64(),
            Some(*sum),
            "{h}: {answer}"
        );
        let users = answer["aggregations"]["users"]["buckets"]
            .as_array()
            .unwrap();
        assert!(users.iter().all(|b| b["key"] == "alice"), "{h}: {answer}");
    }

    // Refused: the foreign index through an escaped header key (alone, after a compact line
    // naming an allowed index, as a duplicate of `index`), and entries refused after an
    // accepted one with the same key or the same text.
    let global = r#"{"users":{"global":{},"aggs":{"total":{"sum":{"field":"n"}}}}}"#;
    let refused = [
        format!("{{\"ind\\u0065x\":\"secret\"}}\n{body}\n"),
        format!("{{\"index\":\"logs-a\"}}\n{body}\n{{\"\\u0069ndex\":\"secret\"}}\n{body}\n"),
        format!("{{\"index\":\"logs-a\",\"ind\\u0065x\":\"secret\"}}\n{body}\n"),
        format!("{{\"index\":\"logs-a\"}}\n{body}\n{{\"index\":\"secret\"}}\n{body}\n"),
        format!("{{}}\n{body}\n{{}}\n{{\"size\":0,\"query\":{QUERY},\"aggs\":{global}}}\n"),
        format!("{{}}\n{body}\n{{}}\n{{\"size\":0,\"aggs\":{QUERY}}}\n"),
        format!("{{}}\n{body}\n{{}}\n{{\"size\":0,\"post_filter\":{AGGS}}}\n"),
    ];
    for ndjson in refused {
        let r = msearch(&gw, &auth, &ndjson).await;
        assert!(
            r.status == 400 || r.status == 403,
            "{ndjson}: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(leaks(&r.body), None, "{ndjson}: {}", r.text());
        assert!(!r.text().contains(fixture::LEAKMARKER_S), "{ndjson}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msearch_shortcuts_answer_each_search_on_its_own_header_osmem() {
    shortcuts_answer_each_search_on_its_own_header(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msearch_shortcuts_answer_each_search_on_its_own_header_noida() {
    shortcuts_answer_each_search_on_its_own_header(&fixture::seeded_noida()).await;
}
