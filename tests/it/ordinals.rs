//! Lucene doc ids never reach a `read` token (issue 8 item 2, top-level sorts; issue 17 item 4,
//! the point-in-time tiebreaker): the sort values of `_doc`, of `_shard_doc` and of the
//! tiebreaker a point in time adds count every document of the shard, other tenants' included.
//!
//! What this proves, on both backends (osmem: OpenSearch point in time, where the tiebreaker is
//! explicit; noida: Elasticsearch `_pit`, which adds `_shard_doc` to every sorted search):
//! - differential: a tenant's answers (sorts on `_doc` in the body, in `?sort=`, Grafana's
//!   `_msearch`, sorted point-in-time searches) are the same whether or not foreign documents
//!   were indexed before its own, once the sealed values are set aside; sent directly to the
//!   backend, the same searches show different raw values (so the comparison can fail);
//! - sealed values go back through `search_after`: Kibana-style paging on `@timestamp` + `_doc`,
//!   Grafana's log context, point-in-time paging, each finding every document once in order;
//! - raw numbers (and `0`) at a doc-id position are refused, Grafana's sentinel is accepted, and
//!   a sealed value tampered with, from another token or from another index is refused;
//! - scroll with the scan helpers' `_doc` sort still pages through everything, with no doc id;
//!   other doc-id sorts under scroll are refused; `slice` over a point in time needs a field and
//!   `slice` without scroll or point in time is a 400.

use crate::support;

use serde_json::{json, Value};

use support::backend::{Backend, Flavor};
use support::esgate::Esgate;
use support::http::send;

const INDEX: &str = "ord";
const OWN_DOCS: usize = 6;
const FOREIGN_DOCS: usize = 25;
const SEALED: &str = "esgo1_";

fn own_timestamp(n: usize) -> String {
    // Pairs share a timestamp, so the `_doc` tiebreaker decides their order.
    format!("2024-01-0{}T00:00:00Z", n.div_ceil(2))
}

/// A fresh backend holding `foreign` tenant-b documents indexed before six tenant-a ones.
async fn backend_with(flavor: Flavor, foreign: usize) -> Backend {
    let backend = match flavor {
        Flavor::Osmem => Backend::osmem(),
        Flavor::Noida => Backend::noida(),
    };
    let url = backend.url();
    let index = json!({"settings": {"number_of_shards": 1}, "mappings": {"properties": {
        "tenant": {"type": "keyword"}, "n": {"type": "long"}, "@timestamp": {"type": "date"},
        "message": {"type": "text"}}}});
    let r = send("PUT", &format!("{url}/{INDEX}"), &[], index.to_string())
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut bulk = String::new();
    let mut line = |id: String, doc: Value| {
        bulk.push_str(&json!({"index": {"_index": INDEX, "_id": id}}).to_string());
        bulk.push('\n');
        bulk.push_str(&doc.to_string());
        bulk.push('\n');
    };
    for n in 1..=foreign {
        line(
            format!("b{n}"),
            json!({"tenant": "b", "n": 100 + n, "@timestamp": "2024-01-02T00:00:00Z", "message": "hello"}),
        );
    }
    for n in 1..=OWN_DOCS {
        line(
            format!("a{n}"),
            json!({"tenant": "a", "n": n, "@timestamp": own_timestamp(n), "message": "hello"}),
        );
    }
    let r = send(
        "POST",
        &format!("{url}/_bulk?refresh=true"),
        &[("content-type", "application/x-ndjson")],
        bulk,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], json!(false), "{}", r.text());
    backend
}

/// esgate in front of `backend` with a tenant-a token on `ord*`; returns (esgate, secret).
async fn gateway(backend: &Backend) -> (Esgate, String) {
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw
        .token(json!({"name": "a", "indices": ["ord*"], "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    (gw, secret)
}

async fn ndjson(gw: &Esgate, secret: &str, lines: &[Value]) -> (u16, Value) {
    let mut body = String::new();
    for l in lines {
        body.push_str(&l.to_string());
        body.push('\n');
    }
    let auth = format!("Bearer {secret}");
    let r = send(
        "POST",
        &gw.url("/_msearch"),
        &[
            ("authorization", &auth),
            ("content-type", "application/x-ndjson"),
        ],
        body,
    )
    .await
    .unwrap();
    (r.status.as_u16(), r.json())
}

/// The answer without what varies between runs and backends, sealed values replaced by a mark.
fn normalised(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "took" | "_shards" | "_score" | "max_score" | "pit_id" | "_clusters"
                    )
                })
                .map(|(k, v)| (k.clone(), normalised(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalised).collect()),
        Value::String(s) if s.starts_with(SEALED) => Value::String("<sealed>".into()),
        other => other.clone(),
    }
}

fn hits(v: &Value) -> Vec<Value> {
    v["hits"]["hits"].as_array().cloned().unwrap_or_default()
}

fn ids(v: &Value) -> Vec<String> {
    hits(v)
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts the value at `position` of every hit's sort is sealed; returns the hits' sorts.
fn assert_sealed_at(what: &str, v: &Value, position: usize) -> Vec<Value> {
    let sorts: Vec<Value> = hits(v).iter().map(|h| h["sort"].clone()).collect();
    assert!(!sorts.is_empty(), "{what}: no hits: {v}");
    for s in &sorts {
        let at = s[position].as_str().unwrap_or("");
        assert!(at.starts_with(SEALED), "{what}: unsealed doc id in {s}");
    }
    sorts
}

async fn open_pit(gw: &Esgate, secret: &str, flavor: Flavor) -> String {
    let (path, field) = match flavor {
        Flavor::Noida => (format!("/{INDEX}/_pit?keep_alive=1m"), "id"),
        Flavor::Osmem => (
            format!("/{INDEX}/_search/point_in_time?keep_alive=1m"),
            "pit_id",
        ),
    };
    let (s, v) = gw.call(secret, "POST", &path, Value::Null, &[]).await;
    assert_eq!(s, 200, "{v}");
    v[field].as_str().unwrap().to_owned()
}

/// A sorted point-in-time search: noida adds the tiebreaker itself, osmem is given it.
fn pit_search(flavor: Flavor, pit: &str, size: usize, after: Option<&Value>) -> Value {
    let sort = match flavor {
        Flavor::Noida => json!([{"n": "asc"}]),
        Flavor::Osmem => json!([{"n": "asc"}, "_shard_doc"]),
    };
    let mut body = json!({"pit": {"id": pit, "keep_alive": "1m"}, "size": size, "sort": sort});
    if let Some(a) = after {
        body["search_after"] = a.clone();
    }
    body
}

/// The searches a client makes, each as (what, method, path, body).
fn kibana_sort() -> Value {
    json!([{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}},
           {"_doc": {"order": "desc", "unmapped_type": "boolean"}}])
}

fn grafana_body(order: &str, size: usize) -> Value {
    json!({"size": size, "query": {"match_all": {}},
           "sort": {"@timestamp": {"order": order, "unmapped_type": "boolean"}, "_doc": {"order": order}}})
}

/// Everything a tenant-a client sees for the differential, normalised.
async fn client_view(flavor: Flavor, foreign: usize) -> (Vec<Value>, Vec<Value>) {
    let backend = backend_with(flavor, foreign).await;
    let (gw, a) = gateway(&backend).await;
    let mut seen = Vec::new();
    let mut direct = Vec::new();
    let search = json!({"size": 10, "sort": kibana_sort()});
    let (s, v) = gw
        .call(
            &a,
            "POST",
            &format!("/{INDEX}/_search"),
            search.clone(),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_sealed_at("body _doc sort", &v, 1);
    seen.push(normalised(&v));
    let mut direct_body = search.clone();
    direct_body["query"] = json!({"term": {"tenant": "a"}});
    let d = send(
        "POST",
        &format!("{}/{INDEX}/_search", backend.url()),
        &[],
        direct_body.to_string(),
    )
    .await
    .unwrap()
    .json();
    direct.push(
        hits(&d)
            .iter()
            .map(|h| h["sort"].clone())
            .collect::<Vec<_>>()
            .into(),
    );

    let (s, v) = gw
        .call(
            &a,
            "GET",
            &format!("/{INDEX}/_search?sort=_doc:asc&size=10"),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_sealed_at("?sort=_doc", &v, 0);
    seen.push(normalised(&v));

    let (s, v) = ndjson(
        &gw,
        &a,
        &[
            json!({"index": INDEX, "ignore_unavailable": true}),
            grafana_body("desc", 500),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_sealed_at("msearch", &v["responses"][0], 1);
    seen.push(normalised(&v));

    let pit = open_pit(&gw, &a, flavor).await;
    let (s, v) = gw
        .call(
            &a,
            "POST",
            "/_search",
            pit_search(flavor, &pit, 10, None),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let sorts = assert_sealed_at("point in time", &v, 1);
    assert!(sorts.iter().all(|s| s[0].is_number()), "{v}");
    seen.push(normalised(&v));
    (seen, direct)
}

async fn differential(flavor: Flavor) {
    let (clean, clean_direct) = client_view(flavor, 0).await;
    let (mixed, mixed_direct) = client_view(flavor, FOREIGN_DOCS).await;
    assert_ne!(
        clean_direct, mixed_direct,
        "the backend's own doc ids must differ, or this comparison proves nothing"
    );
    for (i, (c, m)) in clean.iter().zip(&mixed).enumerate() {
        assert_eq!(
            c, m,
            "search {i}: foreign documents change what the client sees"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_documents_do_not_change_sort_values_on_osmem() {
    differential(Flavor::Osmem).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_documents_do_not_change_sort_values_on_noida() {
    differential(Flavor::Noida).await;
}

/// Kibana-style paging (`@timestamp` desc, `_doc` desc, `search_after` the last hit's values),
/// Grafana's log context, and point-in-time paging, all through sealed values.
async fn paging(flavor: Flavor) {
    let backend = backend_with(flavor, FOREIGN_DOCS).await;
    let (gw, a) = gateway(&backend).await;
    let path = format!("/{INDEX}/_search");
    let (s, all) = gw
        .call(
            &a,
            "POST",
            &path,
            json!({"size": 10, "sort": kibana_sort()}),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{all}");
    let expected = ids(&all);
    assert_eq!(expected, ["a6", "a5", "a4", "a3", "a2", "a1"]);

    let mut paged = Vec::new();
    let mut after: Option<Value> = None;
    for _ in 0..10 {
        let mut body = json!({"size": 2, "sort": kibana_sort()});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let (s, page) = gw.call(&a, "POST", &path, body, &[]).await;
        assert_eq!(s, 200, "{page}");
        if hits(&page).is_empty() {
            break;
        }
        paged.extend(ids(&page));
        after = hits(&page).last().map(|h| h["sort"].clone());
    }
    assert_eq!(paged, expected, "Kibana-style paging");

    // Grafana: a logs query, then the context after one of its rows (ascending, search_after =
    // the row's sort values), and the same with Grafana's sentinel.
    let header =
        json!({"index": INDEX, "ignore_unavailable": true, "search_type": "query_then_fetch"});
    let (s, logs) = ndjson(&gw, &a, &[header.clone(), grafana_body("desc", 500)]).await;
    assert_eq!(s, 200, "{logs}");
    let rows = hits(&logs["responses"][0]);
    let a3 = rows.iter().find(|h| h["_id"] == "a3").expect("a3").clone();
    let mut context = grafana_body("asc", 10);
    context["search_after"] = a3["sort"].clone();
    let (s, v) = ndjson(&gw, &a, &[header.clone(), context]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v["responses"][0]), ["a4", "a5", "a6"], "log context");
    let mut sentinel = grafana_body("asc", 10);
    sentinel["search_after"] = json!([a3["sort"][0], 2147483647]);
    let (s, v) = ndjson(&gw, &a, &[header, sentinel]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v["responses"][0]), ["a5", "a6"], "sentinel context");

    // Point in time, two hits a page.
    let pit = open_pit(&gw, &a, flavor).await;
    let mut paged = Vec::new();
    let mut after: Option<Value> = None;
    for _ in 0..10 {
        let (s, page) = gw
            .call(
                &a,
                "POST",
                "/_search",
                pit_search(flavor, &pit, 2, after.as_ref()),
                &[],
            )
            .await;
        assert_eq!(s, 200, "{page}");
        if hits(&page).is_empty() {
            break;
        }
        assert_sealed_at("point-in-time page", &page, 1);
        paged.extend(ids(&page));
        after = hits(&page).last().map(|h| h["sort"].clone());
    }
    assert_eq!(paged, ["a1", "a2", "a3", "a4", "a5", "a6"], "point in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_values_page_through_search_after_on_osmem() {
    paging(Flavor::Osmem).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_values_page_through_search_after_on_noida() {
    paging(Flavor::Noida).await;
}

/// Raw and foreign values at doc-id positions are refused; the refusal names no value.
async fn refusals(flavor: Flavor) {
    let backend = backend_with(flavor, FOREIGN_DOCS).await;
    let (gw, a) = gateway(&backend).await;
    let (_, other) = gw
        .token(json!({"name": "a2", "indices": ["ord*"], "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    let path = format!("/{INDEX}/_search");
    let (s, v) = gw
        .call(
            &a,
            "POST",
            &path,
            json!({"size": 1, "sort": kibana_sort()}),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let sort = hits(&v)[0]["sort"].clone();
    let sealed = sort[1].as_str().unwrap().to_owned();
    let ts = sort[0].clone();
    let mut tampered = sealed.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused = |after: Value| json!({"size": 5, "sort": kibana_sort(), "search_after": after});
    for (what, secret, p, after) in [
        ("a raw doc id", &a, path.clone(), json!([ts, 30])),
        ("doc id 0", &a, path.clone(), json!([ts, 0])),
        ("a tampered value", &a, path.clone(), json!([ts, tampered])),
        ("another token", &other, path.clone(), json!([ts, sealed])),
        (
            "another index expression",
            &a,
            "/ord*/_search".to_string(),
            json!([ts, sealed]),
        ),
    ] {
        let (s, v) = gw.call(secret, "POST", &p, refused(after), &[]).await;
        assert_eq!(s, 403, "{what}: {v}");
        assert!(!v.to_string().contains(&sealed), "{what}: {v}");
    }
    // A doc id first in the sort would bound every shard: refused even sealed.
    let (s, v) = gw
        .call(&a, "POST", &path, json!({"sort": ["_doc"], "size": 1}), &[])
        .await;
    assert_eq!(s, 200, "{v}");
    let first = hits(&v)[0]["sort"].clone();
    let (s, v) = gw
        .call(
            &a,
            "POST",
            &path,
            json!({"sort": ["_doc"], "search_after": first}),
            &[],
        )
        .await;
    assert_eq!(s, 403, "{v}");
    // The same value, by its own token on the same indices, is accepted.
    let (s, v) = gw
        .call(&a, "POST", &path, refused(json!([ts, sealed])), &[])
        .await;
    assert_eq!(s, 200, "{v}");

    // Under a point in time: a raw tiebreaker is refused.
    let pit = open_pit(&gw, &a, flavor).await;
    let (s, v) = gw
        .call(
            &a,
            "POST",
            "/_search",
            pit_search(flavor, &pit, 2, Some(&json!([1, 27]))),
            &[],
        )
        .await;
    assert_eq!(s, 403, "{v}");

    // Slices: a point in time needs a document field; no slice outside scroll or PIT.
    let (s, v) = gw
        .call(
            &a,
            "POST",
            "/_search",
            json!({"pit": {"id": pit}, "slice": {"id": 0, "max": 2}}),
            &[],
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = gw
        .call(
            &a,
            "POST",
            &path,
            json!({"slice": {"id": 0, "max": 2, "field": "n"}}),
            &[],
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = gw
        .call(
            &a,
            "POST",
            "/_search",
            json!({"pit": {"id": pit}, "slice": {"id": 0, "max": 2, "field": "n"}}),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Scroll: a doc-id sort other than the scan helpers' is refused.
    let (s, v) = gw
        .call(
            &a,
            "POST",
            &format!("{path}?scroll=1m"),
            json!({"sort": kibana_sort()}),
            &[],
        )
        .await;
    assert_eq!(s, 403, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_foreign_values_are_refused_on_osmem() {
    refusals(Flavor::Osmem).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_foreign_values_are_refused_on_noida() {
    refusals(Flavor::Noida).await;
}

/// The scan helpers' scroll (`sort: "_doc"`) finds every document once, with no doc id.
async fn scan(flavor: Flavor) {
    let backend = backend_with(flavor, FOREIGN_DOCS).await;
    let (gw, a) = gateway(&backend).await;
    let (s, first) = gw
        .call(
            &a,
            "POST",
            &format!("/{INDEX}/_search?scroll=1m&size=4"),
            json!({"sort": "_doc", "query": {"match_all": {}}}),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{first}");
    let mut seen = ids(&first);
    let mut page = first;
    for _ in 0..10 {
        assert!(
            hits(&page).iter().all(|h| h.get("sort").is_none()),
            "{page}"
        );
        let id = page["_scroll_id"].as_str().unwrap().to_owned();
        let (s, next) = gw
            .call(
                &a,
                "POST",
                "/_search/scroll",
                json!({"scroll": "1m", "scroll_id": id}),
                &[],
            )
            .await;
        assert_eq!(s, 200, "{next}");
        if hits(&next).is_empty() {
            break;
        }
        seen.extend(ids(&next));
        page = next;
    }
    seen.sort();
    assert_eq!(seen, ["a1", "a2", "a3", "a4", "a5", "a6"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_still_works_without_doc_ids_on_osmem() {
    scan(Flavor::Osmem).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_still_works_without_doc_ids_on_noida() {
    scan(Flavor::Noida).await;
}

/// An async search answer (running, with an id) whose hits carry `[timestamp, doc id]` sorts.
fn async_answer(doc_ids: &[u64]) -> support::recording::Answer {
    let hits: Vec<Value> = doc_ids
        .iter()
        .map(|d| {
            json!({"_index": "logs-a", "_id": format!("a{d}"), "_score": null,
                        "sort": [1704412800000_u64, d]})
        })
        .collect();
    support::recording::Answer::json(
        200,
        json!({"id": "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFE=", "is_partial": true, "is_running": true,
               "response": {"took": 1, "timed_out": false,
                            "hits": {"total": {"value": 2, "relation": "eq"}, "hits": hits}}}),
    )
    .with_header(
        "x-elasticsearch-async-id",
        "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFE=",
    )
}

/// Kibana's Discover submits through `_async_search` with a `_doc` tiebreaker (no test backend
/// implements async search: the recording fake answers): the submit's and every poll's hits
/// carry sealed doc ids, because the sealed async id carries the positions to its polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_search_submit_and_polls_seal_doc_ids() {
    use support::recording::Recording;
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b"]);
    es.script("POST", "/", async_answer(&[17, 4]));
    es.script("GET", "/_async_search/", async_answer(&[29]));
    let gw = Esgate::start(&[es.url()], "").await;
    let a = gw.tenant_token("a").await;
    let body = json!({"size": 500, "sort": kibana_sort(), "query": {"match_all": {}}});
    let r = gw
        .call_raw(
            &a,
            "POST",
            "/logs-*/_async_search?wait_for_completion_timeout=200ms",
            body,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let sorts: Vec<Value> = v["response"]["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["sort"].clone())
        .collect();
    assert_eq!(sorts.len(), 2);
    for s in &sorts {
        assert_eq!(s[0], json!(1704412800000_u64));
        assert!(s[1].as_str().unwrap().starts_with(SEALED), "{s}");
    }
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("x-elasticsearch-async-id"), Some(id.as_str()));
    for poll_id in [
        id.clone(),
        r.header("x-elasticsearch-async-id").unwrap().to_owned(),
    ] {
        let p = gw
            .call_raw(
                &a,
                "GET",
                &format!("/_async_search/{poll_id}"),
                Value::Null,
                &[],
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.text());
        let pv = p.json();
        let s = &pv["response"]["hits"]["hits"][0]["sort"];
        assert!(s[1].as_str().unwrap().starts_with(SEALED), "{pv}");
        assert!(!p.text().contains(",29]"), "{}", p.text());
    }
    // The poll reached the backend with the backend id.
    let polls = es.requests_to("GET", "/_async_search/");
    assert!(polls
        .iter()
        .all(|p| p.path == "/_async_search/FmRldE8zREVEUzA2ZVpUeGs2ejJFUFE%3D"));
}
