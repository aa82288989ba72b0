//! Response-shaping parameters (`filter_path`, `pretty`, `human`) on every route (issue #8,
//! item 8: the official Node client's helpers send `filter_path` and used to get 403), on both
//! backends. On answers esgate reads whole (scroll and point-in-time ids it seals, `_terms_enum`,
//! `_cat/indices`, `_cluster/health` it rebuilds), `filter_path` is applied by esgate to its own
//! final answer, so it can neither strip an id before esgate seals it (a 502 from client input
//! before) nor let a raw backend id through: every id the client sees is sealed, and every page
//! holds only the token's documents. On answers streamed untouched the backend applies it.

use crate::support;

use serde_json::{json, Value};

use support::backend::Backend;
use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};

fn tenant_a() -> Value {
    json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": ["logs-*"]})
}

/// Calls esgate and checks what every answer here must hold: no 5xx, no leak marker.
async fn call(gw: &Esgate, secret: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = gw.call_raw(secret, method, path, body, &[]).await;
    let status = r.status.as_u16();
    assert!(status < 500, "{method} {path}: {status} {}", r.text());
    assert!(
        !contains_leak_marker(&r.body),
        "{method} {path}: {}",
        r.text()
    );
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (status, v)
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn ns(page: &Value) -> Vec<u64> {
    page["hits"]["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|d| d["_source"]["n"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

async fn shaping_holds(backend: &Backend) {
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, secret) = gw.token(tenant_a()).await;

    // esgate's own answers (Kibana's `_authenticate`): esgate applies it.
    let (s, v) = call(
        &gw,
        &secret,
        "GET",
        "/_security/_authenticate?filter_path=username,authentication_realm.name",
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"username": id, "authentication_realm": {"name": "esgate"}})
        )
    );

    // Streamed: the backend filters.
    let (s, v) = call(
        &gw,
        &secret,
        "GET",
        "/logs-*/_search?size=0&filter_path=hits.total.value",
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"hits": {"total": {"value": fixture::TENANT_A_DOCS}}})
        )
    );

    // Scroll: the first page keeps only what was asked, with the id sealed by esgate.
    let (s, first) = call(
        &gw,
        &secret,
        "POST",
        "/logs-*/_search?scroll=1m&size=3&filter_path=_scroll_id,hits.hits._source.n",
        json!({"sort": ["n"]}),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(keys(&first), ["_scroll_id", "hits"], "{first}");
    let mut id = first["_scroll_id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("esgc1_"), "{first}");
    let mut seen = ns(&first);
    loop {
        let (s, page) = call(
            &gw,
            &secret,
            "POST",
            "/_search/scroll?filter_path=_scroll_id,hits.hits._source.n",
            json!({"scroll": "1m", "scroll_id": id}),
        )
        .await;
        assert_eq!(s, 200, "{page}");
        if ns(&page).is_empty() {
            break;
        }
        seen.extend(ns(&page));
        id = page["_scroll_id"].as_str().expect("an id").to_owned();
        assert!(id.starts_with("esgc1_"), "{page}");
    }
    assert_eq!(seen, (1..=fixture::TENANT_A_DOCS).collect::<Vec<_>>());

    // Excluding the id or keeping only it: never a 5xx, never a raw id.
    let (s, v) = call(
        &gw,
        &secret,
        "GET",
        "/logs-*/_search?scroll=1m&size=1&filter_path=-_scroll_id,-hits.hits._source",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("_scroll_id").is_none(), "{v}");
    assert!(v["hits"]["hits"][0].get("_source").is_none(), "{v}");
    let (s, v) = call(
        &gw,
        &secret,
        "GET",
        "/logs-*/_search?scroll=1m&size=1&filter_path=_scroll_id",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(keys(&v), ["_scroll_id"]);
    assert!(
        v["_scroll_id"].as_str().unwrap().starts_with("esgc1_"),
        "{v}"
    );

    // Point in time, in the backend's dialect: the id is sealed whatever filter_path says.
    let (open, field) = match backend.flavor() {
        support::backend::Flavor::Osmem => ("/logs-*/_search/point_in_time", "pit_id"),
        _ => ("/logs-*/_pit", "id"),
    };
    let (s, v) = call(
        &gw,
        &secret,
        "POST",
        &format!("{open}?keep_alive=1m&filter_path={field}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(keys(&v), [field], "{v}");
    let pit = v[field].as_str().unwrap().to_owned();
    assert!(pit.starts_with("esgc1_"), "{v}");
    let (s, v) = call(
        &gw,
        &secret,
        "POST",
        &format!("{open}?keep_alive=1m&filter_path=-{field}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get(field).is_none(), "{v}");
    let (s, page) = call(
        &gw,
        &secret,
        "POST",
        "/_search?filter_path=hits.total.value,hits.hits._source.tenant",
        json!({"size": 100, "pit": {"id": pit, "keep_alive": "1m"}}),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        page["hits"]["total"]["value"],
        json!(fixture::TENANT_A_DOCS)
    );
    let tenants: Vec<&Value> = page["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["_source"]["tenant"])
        .collect();
    assert!(tenants.iter().all(|t| *t == "a"), "{page}");
    assert_eq!(keys(&page), ["hits"], "{page}");

    // Transformed answers: esgate filters its own answer.
    let (s, v) = call(
        &gw,
        &secret,
        "POST",
        "/logs-*/_terms_enum?filter_path=terms",
        json!({"field": "user"}),
    )
    .await;
    assert_eq!((s, v), (200, json!({"terms": ["alice"]})));
    let (s, v) = call(
        &gw,
        &secret,
        "GET",
        "/_cat/indices?format=json&filter_path=index",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut listed: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(keys(r), ["index"], "{v}");
            r["index"].as_str().unwrap()
        })
        .collect();
    listed.sort();
    assert_eq!(listed, ["logs-a", "logs-b"]);
    let (s, v) = call(
        &gw,
        &secret,
        "GET",
        "/_cluster/health?filter_path=status,active_primary_shards",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(keys(&v), ["status", "active_primary_shards"], "{v}");

    // `pretty` on an answer esgate rebuilt, `human` accepted everywhere.
    let r = gw
        .call_raw(
            &secret,
            "GET",
            "/_cluster/health?pretty&human",
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\n  \"status\""), "{}", r.text());
    let (s, _) = call(
        &gw,
        &secret,
        "GET",
        "/logs-*/_count?human=true&pretty=true&error_trace=false",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200);
    // `error_trace=true` would add the backend's stack traces: still refused.
    let (s, _) = call(
        &gw,
        &secret,
        "GET",
        "/logs-*/_count?error_trace=true",
        Value::Null,
    )
    .await;
    assert_eq!(s, 403);
    // A malformed filter is the client's error.
    let (s, _) = call(
        &gw,
        &secret,
        "GET",
        "/logs-*/_search?scroll=1m&filter_path=hits..hits",
        Value::Null,
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_shaping_holds_on_opensearch() {
    shaping_holds(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_shaping_holds_on_elasticsearch_8() {
    shaping_holds(&fixture::seeded_noida()).await;
}

/// Session 11: esgate reshapes an answer it read whole by parsing it into a tree, which can be
/// many times the answer's size; the tree is now charged to the shared body budget as it is
/// built. Under a budget the tree cannot fit in, the page is sent as the backend wrote it
/// (shaping only removes parts: the client gets more than it asked, never less), still with its
/// id sealed and only the token's documents; with room, the same request is shaped.
async fn a_reshaped_answers_tree_is_charged_to_the_budget(backend: &Backend) {
    let path = "/logs-*/_search?scroll=1m&size=10&filter_path=_scroll_id,hits.hits._source.n";
    let body = json!({"sort": ["n"]});
    // A budget that holds the page (a few KB) but not its tree.
    let small = Esgate::start_full(
        &[backend.url()],
        "max_body_bytes = 8192\nmax_buffered_bytes = 8192",
        "",
        "",
    )
    .await;
    let (_, secret) = small.token(tenant_a()).await;
    let (s, page) = call(&small, &secret, "POST", path, body.clone()).await;
    assert_eq!(s, 200, "{page}");
    assert!(keys(&page).contains(&"took"), "sent unshaped: {page}");
    assert!(page["_scroll_id"].as_str().unwrap().starts_with("esgc1_"));
    assert_eq!(ns(&page), (1..=fixture::TENANT_A_DOCS).collect::<Vec<_>>());
    // The control: the default budget shapes it.
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a()).await;
    let (s, page) = call(&gw, &secret, "POST", path, body).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(keys(&page), ["_scroll_id", "hits"], "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshaped_answers_tree_is_charged_to_the_budget_on_opensearch() {
    a_reshaped_answers_tree_is_charged_to_the_budget(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshaped_answers_tree_is_charged_to_the_budget_on_elasticsearch_8() {
    a_reshaped_answers_tree_is_charged_to_the_budget(&fixture::seeded_noida()).await;
}
