//! Grafana's Elasticsearch data source through esgate: every fixture in `tests/data/grafana/`
//! is a request exactly as Grafana sends it (method, path, query string, headers, body; the
//! `source` note says where in Grafana's code the shape comes from). Each is replayed through
//! esgate with a tenant-a token in the three forms a Grafana data source can carry it (basic
//! auth `secret:token`, the ApiKey header, a custom `Authorization: Bearer` header), and the
//! answer must equal the backend's answer to the same request sent directly with the tenant
//! filter applied by hand: every `_msearch` body's query wrapped as
//! `bool{filter:[term tenant a], must:[query]}` and every header's index replaced by the
//! concrete `logs-a,logs-b` (never the `logs-sa` alias), or the fixture's `direct` request.
//!
//! Invariant: a test passes only if esgate answers 200, the answer carries no leak marker,
//! every `expect` pointer holds, and the normalised answers are equal (`took`, `_shards`,
//! scores and `_clusters` removed; hits compared as a set when the search has no `sort`).

use crate::support;

use std::io::Read;

use serde_json::{json, Value};

use support::esgate::Esgate;
use support::fixture::{
    self, contains_leak_marker, strip_volatile, wrap_for_tenant_a, DIRECT_INDEX,
};
use support::http::{api_key, basic, bearer, send, Reply};

fn tenant_a_token() -> Value {
    json!({
        "name": "grafana-tenant-a",
        "filters": [{"field": "tenant", "value": "a"}],
        "indices": ["logs-*"],
    })
}

fn with_query(path: &str, query: &Value) -> String {
    match query.as_str() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

fn ndjson(lines: &[Value]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn headers_of(fixture: &Value) -> Vec<(String, String)> {
    fixture["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The body Grafana sends: NDJSON built from `ndjson` lines, or nothing.
fn body_of(fixture: &Value) -> String {
    match fixture["ndjson"].as_array() {
        Some(lines) => ndjson(lines),
        None => String::new(),
    }
}

/// The `_msearch` pairs with the tenant filter applied by hand and the concrete indices.
fn direct_msearch(lines: &[Value]) -> String {
    let mut out = Vec::with_capacity(lines.len());
    for pair in lines.chunks(2) {
        let mut header = pair[0].clone();
        header["index"] = json!(DIRECT_INDEX);
        let mut body = pair[1].clone();
        // esgate highlights with the client's query, not the filters (review 14).
        if body
            .get("highlight")
            .is_some_and(|h| h.get("highlight_query").is_none())
        {
            body["highlight"]["highlight_query"] = body
                .get("query")
                .cloned()
                .unwrap_or_else(|| json!({"match_all": {}}));
        }
        let wrapped = wrap_for_tenant_a(body.get("query"));
        body["query"] = wrapped;
        if let Some(sort) = body.get("sort").and_then(Value::as_object) {
            // Elasticsearch reads a sort object's keys in order; osmem does not promise any
            // order for an object with several keys, so the direct request spells it as the
            // list Elasticsearch would build (and esgate forwards).
            let list: Vec<Value> = sort.iter().map(|(k, v)| json!({ k.clone(): v })).collect();
            body["sort"] = Value::Array(list);
        }
        out.push(header);
        out.push(body);
    }
    ndjson(&out)
}

/// The response body with a `Content-Encoding: gzip` undone, as Go's HTTP client (which asked
/// for gzip) would hand it to Grafana.
fn decoded_body(reply: &Reply) -> Vec<u8> {
    match reply.header("content-encoding") {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&reply.body[..])
                .read_to_end(&mut out)
                .expect("a gzip body that decodes");
            out
        }
        Some(other) => panic!("unexpected content-encoding {other}"),
        None => reply.body.to_vec(),
    }
}

/// Orders `hits.hits` by index and id, for searches whose hit order is not defined.
fn sort_hits(response: &mut Value) {
    if let Some(hits) = response
        .pointer_mut("/hits/hits")
        .and_then(Value::as_array_mut)
    {
        hits.sort_by_key(|h| {
            (
                h["_index"].as_str().unwrap_or_default().to_owned(),
                h["_id"].as_str().unwrap_or_default().to_owned(),
            )
        });
    }
}

/// The places of `_doc` in a search body's sort (an object's keys in their order).
fn doc_sort_positions(body: &Value) -> Vec<usize> {
    let keys: Vec<&str> = match body.get("sort") {
        Some(Value::Object(m)) => m.keys().map(String::as_str).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .flat_map(|i| match i {
                Value::String(s) => vec![s.as_str()],
                Value::Object(m) => m.keys().map(String::as_str).collect(),
                _ => vec![],
            })
            .collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => vec![],
    };
    keys.iter()
        .enumerate()
        .filter(|(_, k)| **k == "_doc")
        .map(|(i, _)| i)
        .collect()
}

/// Replaces each hit's `_doc` sort value (a Lucene doc id, which counts other tenants'
/// documents) with a mark, after checking that esgate's answer (`sealed`) carries it sealed
/// (issue 8) and the backend's carries a number.
fn mask_doc_ids(response: &mut Value, positions: &[usize], sealed: bool) {
    let Some(hits) = response
        .pointer_mut("/hits/hits")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for hit in hits {
        for &p in positions {
            let Some(v) = hit.get_mut("sort").and_then(|s| s.get_mut(p)) else {
                panic!("a hit without its _doc sort value: {hit}");
            };
            if sealed {
                assert!(
                    v.as_str().is_some_and(|s| s.starts_with("esgo1_")),
                    "esgate answered a raw doc id: {v}"
                );
            } else {
                assert!(v.is_number(), "the backend's doc id is a number: {v}");
            }
            *v = json!("<doc id>");
        }
    }
}

/// The answer in comparable form: volatile fields removed, `_doc` sort values masked (checked
/// sealed in esgate's answer, `sealed`) and, for `_msearch`, the hits of every unsorted search
/// put in a fixed order.
fn normalise(fixture: &Value, mut answer: Value, sealed: bool) -> Value {
    strip_volatile(&mut answer);
    if let Some(lines) = fixture["ndjson"].as_array() {
        let bodies: Vec<&Value> = lines.iter().skip(1).step_by(2).collect();
        if let Some(responses) = answer.get_mut("responses").and_then(Value::as_array_mut) {
            for (response, body) in responses.iter_mut().zip(bodies) {
                if body.get("sort").is_none() {
                    sort_hits(response);
                }
                mask_doc_ids(response, &doc_sort_positions(body), sealed);
            }
        }
    } else {
        sort_hits(&mut answer);
    }
    answer
}

/// The sorted `index` column of a `_cat/indices?format=json` answer.
fn index_names(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["index"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Sends the fixture's request directly to the backend with the tenant filter applied by hand.
async fn direct_answer(backend_url: &str, fixture: &Value) -> Reply {
    let (method, url, headers, body) = match fixture["ndjson"].as_array() {
        Some(lines) => (
            fixture["method"].as_str().unwrap_or("POST").to_owned(),
            format!(
                "{backend_url}{}",
                with_query(
                    fixture["path"].as_str().unwrap_or("/_msearch"),
                    &fixture["query"]
                )
            ),
            vec![("content-type", "application/x-ndjson")],
            direct_msearch(lines),
        ),
        None => {
            let direct = &fixture["direct"];
            (
                fixture["method"].as_str().unwrap_or("GET").to_owned(),
                format!(
                    "{backend_url}{}",
                    with_query(direct["path"].as_str().unwrap_or("/"), &direct["query"])
                ),
                vec![],
                String::new(),
            )
        }
    };
    let reply = send(&method, &url, &headers, body)
        .await
        .unwrap_or_else(|e| panic!("{}: the backend does not answer: {e}", fixture["name"]));
    assert_eq!(
        reply.status,
        200,
        "{}: the direct request fails, so the comparison would prove nothing: {}",
        fixture["name"],
        reply.text()
    );
    reply
}

/// Every `expect` entry: the value at `pointer` equals `value` (`null` = absent), or exists
/// when `present` is true.
fn check_expectations(name: &str, auth: &str, fixture: &Value, answer: &Value) {
    for e in fixture["expect"].as_array().into_iter().flatten() {
        let pointer = e["pointer"].as_str().unwrap_or_default();
        let got = answer.pointer(pointer);
        if e["present"] == json!(true) {
            assert!(
                got.is_some(),
                "{name} ({auth}): nothing at {pointer}: {answer}"
            );
        } else {
            assert_eq!(
                got.cloned().unwrap_or(Value::Null),
                e["value"],
                "{name} ({auth}): value at {pointer}: {answer}"
            );
        }
    }
}

fn check_msearch_items(name: &str, auth: &str, fixture: &Value, answer: &Value) {
    let Some(lines) = fixture["ndjson"].as_array() else {
        return;
    };
    let responses = answer["responses"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} ({auth}): no responses array: {answer}"));
    assert_eq!(
        responses.len(),
        lines.len() / 2,
        "{name} ({auth}): one response per search: {answer}"
    );
    for (i, r) in responses.iter().enumerate() {
        assert!(
            r.get("error").is_none(),
            "{name} ({auth}): search {i} failed: {r}"
        );
    }
}

/// Replays one fixture through esgate with every credential form Grafana can use and compares
/// each answer with the direct one.
async fn replay_fixture(text: &str) {
    let backend = fixture::seeded_osmem();
    replay_fixture_on(text, backend.url(), true).await;
}

/// `replay_fixture` against the backend at `backend_url` (seeded with the security fixture);
/// the `expect` values are osmem's and are checked only when `check_expect` is set.
async fn replay_fixture_on(text: &str, backend_url: &str, check_expect: bool) {
    let fixture: Value = serde_json::from_str(text).expect("fixture is JSON");
    let name = fixture["name"]
        .as_str()
        .expect("fixture has a name")
        .to_owned();
    let gw = Esgate::start(&[backend_url], "").await;
    let (id, secret) = gw.token(tenant_a_token()).await;

    let direct = direct_answer(backend_url, &fixture).await;
    let expected = normalise(&fixture, direct.json(), false);

    let method = fixture["method"].as_str().expect("fixture has a method");
    let url = gw.url(&with_query(
        fixture["path"].as_str().expect("fixture has a path"),
        &fixture["query"],
    ));
    let body = body_of(&fixture);
    let credentials = [
        ("basic auth secret:token", basic(&secret, "token")),
        ("ApiKey header", api_key(&id, &secret)),
        ("custom Bearer header", bearer(&secret)),
    ];
    for (auth_name, authorization) in credentials {
        let mut headers = headers_of(&fixture);
        headers.push(("authorization".to_owned(), authorization));
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let reply = send(method, &url, &refs, body.clone())
            .await
            .unwrap_or_else(|e| panic!("{name} ({auth_name}): esgate does not answer: {e}"));
        let bytes = decoded_body(&reply);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert_eq!(
            reply.status, 200,
            "{name} ({auth_name}): {method} {url} was answered {}: {text}",
            reply.status,
        );
        assert!(
            !contains_leak_marker(&bytes),
            "{name} ({auth_name}): leak marker in {text}"
        );
        for (header, value) in fixture["expect_headers"].as_object().into_iter().flatten() {
            assert_eq!(
                reply.header(header),
                value.as_str(),
                "{name} ({auth_name}): response header {header}"
            );
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{name} ({auth_name}): not JSON ({e}): {text}"));
        check_msearch_items(&name, auth_name, &fixture, &answer);
        if check_expect {
            check_expectations(&name, auth_name, &fixture, &answer);
        }
        if fixture["compare"] == json!("index_names") {
            assert!(
                !index_names(&expected).is_empty(),
                "{name}: the direct listing is empty"
            );
            assert_eq!(
                index_names(&answer),
                index_names(&expected),
                "{name} ({auth_name}): esgate lists other indices than the token's: {answer}"
            );
        } else {
            assert_eq!(
                normalise(&fixture, answer, true),
                expected,
                "{name} ({auth_name}): esgate's answer differs from the backend's with the tenant filter applied directly"
            );
        }
    }
}

macro_rules! grafana_fixture {
    ($test:ident, $file:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            replay_fixture(include_str!(concat!("../data/grafana/", $file))).await;
        }
    };
}

grafana_fixture!(health_check_answers_like_the_cluster, "health_check.json");
grafana_fixture!(cluster_info_answers_like_the_cluster, "cluster_info.json");
grafana_fixture!(mapping_lists_only_the_tokens_indices, "mapping.json");
grafana_fixture!(field_caps_lists_only_the_tokens_indices, "field_caps.json");
grafana_fixture!(
    metric_count_by_date_histogram_equals_the_filtered_search,
    "metric_count_date_histogram.json"
);
grafana_fixture!(
    metric_terms_with_avg_percentiles_max_equals_the_filtered_search,
    "metric_terms_avg_percentiles.json"
);

/// Grafana's multi-query panel as it sends it: its Histogram query (`min_doc_count: 0`, no
/// range on its field `n`) would count empty buckets OpenSearch makes first (attack26), so on
/// osmem the panel's `_msearch` is esgate's own 403, nothing forwarded, the reason naming the
/// ways out (README, Wiring Grafana: Min Doc Count 1); on noida it is forwarded and answers as
/// the filtered searches (`fixtures_hold_on_the_elasticsearch_8_backend_too`). With the panel's
/// Min Doc Count set to 1 (the one field changed here, the fixture left as captured), osmem
/// answers it as the filtered searches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_query_panel_is_refused_on_opensearch_and_answers_with_min_doc_count_1() {
    let text = include_str!("../data/grafana/metric_multi_queries.json");
    let mut fixture: Value = serde_json::from_str(text).expect("fixture is JSON");
    let histogram = "/ndjson/3/aggs/3/histogram/min_doc_count";
    assert_eq!(
        fixture.pointer(histogram),
        Some(&json!(0)),
        "as Grafana sends it"
    );
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_token()).await;
    let url = gw.url(&with_query("/_msearch", &fixture["query"]));
    let mut headers = headers_of(&fixture);
    headers.push(("authorization".to_owned(), bearer(&secret)));
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = send("POST", &url, &refs, body_of(&fixture))
        .await
        .expect("esgate answers");
    let text = String::from_utf8_lossy(&decoded_body(&reply)).into_owned();
    assert_eq!(reply.status, 403, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("a JSON refusal");
    assert_eq!(answer["error"]["type"], "security_exception", "{text}");
    let reason = answer["error"]["reason"].as_str().unwrap_or_default();
    for hint in [
        "[min_doc_count] to 1",
        "[hard_bounds]",
        "[range] on its [field]",
    ] {
        assert!(reason.contains(hint), "{reason}");
    }
    gw.stop().await;

    *fixture.pointer_mut(histogram).expect("the histogram") = json!(1);
    replay_fixture_on(&fixture.to_string(), backend.url(), true).await;
}
// Issue 10: the searches of one `_msearch` repeat an aggregation (checked once by esgate:
// `rewrite::Accepted`); each must still answer as its own filtered search.
grafana_fixture!(
    repeated_panel_searches_equal_the_filtered_searches,
    "metric_repeated_panel.json"
);
grafana_fixture!(
    annotation_query_with_index_array_equals_the_filtered_search,
    "annotations.json"
);
grafana_fixture!(
    terms_variable_values_equal_the_filtered_search,
    "terms_variable.json"
);
grafana_fixture!(logs_volume_equals_the_filtered_search, "logs_volume.json");

grafana_fixture!(
    resolve_index_lists_only_the_tokens_indices,
    "resolve_index.json"
);

grafana_fixture!(
    metric_pipelines_and_stats_equal_the_filtered_search,
    "metric_pipelines_stats.json"
);

/// The same requests against the Elasticsearch 8 dialect (noida), which is what Grafana's
/// Elasticsearch data source targets; one backend for all of them (noida has no clones and
/// none of these requests writes). Equality with the directly filtered answer is checked; the
/// fixtures' `expect` values are osmem's (noida's query_string differs, e.g. `AND NOT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_hold_on_the_elasticsearch_8_backend_too() {
    let backend = fixture::seeded_noida();
    for text in [
        include_str!("../data/grafana/health_check.json"),
        include_str!("../data/grafana/mapping.json"),
        include_str!("../data/grafana/field_caps.json"),
        include_str!("../data/grafana/metric_count_date_histogram.json"),
        // Left out: metric_terms_avg_percentiles.json and metric_pipelines_stats.json (noida
        // has no `percentiles` and no pipeline aggregations).
        include_str!("../data/grafana/metric_multi_queries.json"),
        include_str!("../data/grafana/metric_repeated_panel.json"),
        include_str!("../data/grafana/annotations.json"),
        include_str!("../data/grafana/terms_variable.json"),
        include_str!("../data/grafana/logs_volume.json"),
        include_str!("../data/grafana/resolve_index.json"),
        include_str!("../data/grafana/cat_indices.json"),
    ] {
        replay_fixture_on(text, backend.url(), false).await;
    }
}

// Grafana's logs and raw data queries send a `sort` object with two fields; "Include frozen
// indices" adds `ignore_throttled=false` to `_msearch`.
grafana_fixture!(logs_query_equals_the_filtered_search, "logs.json");
grafana_fixture!(raw_data_query_equals_the_filtered_search, "raw_data.json");
grafana_fixture!(
    log_context_query_equals_the_filtered_search,
    "logs_context.json"
);
grafana_fixture!(
    cat_indices_lists_only_the_tokens_indices,
    "cat_indices.json"
);
grafana_fixture!(
    include_frozen_metric_query_equals_the_filtered_search,
    "metric_include_frozen.json"
);

#[test]
fn every_fixture_names_its_source_and_a_complete_request() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/grafana");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let file = path.display();
        assert!(
            v["source"].as_str().is_some_and(|s| s.contains("grafana")),
            "{file}: source note"
        );
        assert!(
            matches!(v["method"].as_str(), Some("GET" | "POST")),
            "{file}: method"
        );
        assert!(
            v["path"].as_str().is_some_and(|p| p.starts_with('/')),
            "{file}: path"
        );
        match v["ndjson"].as_array() {
            Some(lines) => {
                assert!(
                    !lines.is_empty() && lines.len() % 2 == 0,
                    "{file}: header/body pairs"
                );
                assert!(
                    lines.iter().all(Value::is_object),
                    "{file}: every NDJSON line is an object"
                );
            }
            None => assert!(v["direct"]["path"].is_string(), "{file}: direct request"),
        }
        assert!(
            v["expect"].as_array().is_some_and(|e| !e.is_empty()),
            "{file}: at least one expectation"
        );
    }
    assert!(seen >= 10, "the fixtures are found ({seen})");
}

#[test]
fn direct_msearch_wraps_every_query_and_names_the_concrete_indices() {
    let lines = vec![
        json!({"index": "logs-*", "ignore_unavailable": true}),
        json!({"size": 0, "query": {"range": {"n": {"gte": 3}}}}),
        json!({"index": ["logs-a"]}),
        json!({"size": 0}),
    ];
    let text = direct_msearch(&lines);
    let parsed: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("line is JSON"))
        .collect();
    assert_eq!(
        parsed,
        vec![
            json!({"index": DIRECT_INDEX, "ignore_unavailable": true}),
            json!({"size": 0, "query": {"bool": {
                "filter": [{"term": {"tenant": {"value": "a"}}}],
                "must": [{"range": {"n": {"gte": 3}}}]}}}),
            json!({"index": DIRECT_INDEX}),
            json!({"size": 0, "query": {"bool": {
                "filter": [{"term": {"tenant": {"value": "a"}}}],
                "must": [{"match_all": {}}]}}}),
        ]
    );
    assert!(text.ends_with('\n'));
}

#[test]
fn normalise_drops_volatile_fields_and_orders_unsorted_hits_only() {
    let fixture = json!({"ndjson": [{}, {"size": 5}, {}, {"sort": {"n": "asc"}}]});
    let hits = |ids: [&str; 2]| {
        json!({"took": 3, "_shards": {"total": 2}, "hits": {"max_score": 1.0, "hits": [
            {"_index": "logs-b", "_id": ids[0], "_score": 1.0},
            {"_index": "logs-a", "_id": ids[1], "_score": 0.5}]}})
    };
    let answer = json!({"took": 9, "responses": [hits(["x", "y"]), hits(["x", "y"])]});
    let out = normalise(&fixture, answer, false);
    assert_eq!(
        out,
        json!({"responses": [
            {"hits": {"hits": [{"_index": "logs-a", "_id": "y"}, {"_index": "logs-b", "_id": "x"}]}},
            {"hits": {"hits": [{"_index": "logs-b", "_id": "x"}, {"_index": "logs-a", "_id": "y"}]}},
        ]})
    );
}
