//! Routes that answered more than the token's scope, from the fourth enforcement review
//! (issue #8, items 4, 5 and 6), on both backends (osmem: OpenSearch dialect; noida:
//! Elasticsearch 8 dialect):
//!
//! - `_cluster/health` answers the token's view only: its status and shard counts equal the
//!   backend's health of exactly the token's concrete indices (never the cluster's, which
//!   counts `secret`), a token reaching no index sees an empty green view, and client-chosen
//!   waits never hold a request (`wait_for_status` is checked once: 408 when unmet, at once;
//!   other `wait_for_*` and `level=indices` are refused).
//! - `_field_caps` refuses `index_filter`: the backend decides it per shard from index-wide
//!   values, other tenants' documents included; and `include_empty_fields=false` (review 15),
//!   which lists only the fields some document of the index, any tenant's, holds a value for.
//! - Each dialect's point-in-time form reaches only a backend of that dialect. A relay in front
//!   of the real backend records every request esgate sends: the other dialect's form is
//!   answered 400 (like a route the backend does not have, never a 5xx) and never reaches the
//!   backend (before, noida ran `POST /{index}/_search/point_in_time` as an unfiltered search).

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::backend::Backend;
use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};
use support::http::{bearer, send};
use support::recording::Recording;

fn tenant_a_on(indices: &[&str]) -> Value {
    json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": indices})
}

async fn get(url: &str, auth: Option<&str>) -> (u16, Value, Duration) {
    let started = Instant::now();
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let r = send("GET", url, &headers, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let elapsed = started.elapsed();
    assert!(!contains_leak_marker(&r.body), "GET {url}: {}", r.text());
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), v, elapsed)
}

/// The shard counts and status of a health answer (what tells indices apart).
fn counts(v: &Value) -> Value {
    json!({
        "status": v["status"],
        "active_primary_shards": v["active_primary_shards"],
        "active_shards": v["active_shards"],
        "unassigned_shards": v["unassigned_shards"],
        "initializing_shards": v["initializing_shards"],
        "relocating_shards": v["relocating_shards"],
    })
}

async fn cluster_health_is_the_tokens_view(backend: &Backend) {
    let gw = Esgate::start_full(&[backend.url()], "", "request_timeout = \"5s\"", "").await;
    let auth = bearer(&gw.token(tenant_a_on(&["logs-*"])).await.1);
    let direct = |path: &str| format!("{}{path}", backend.url());

    let (s, view, _) = get(&gw.url("/_cluster/health"), Some(&auth)).await;
    assert_eq!(s, 200, "{view}");
    let (s, own, _) = get(
        &direct("/_cluster/health/logs-a,logs-b?level=cluster"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{own}");
    let (_, whole, _) = get(&direct("/_cluster/health"), None).await;
    assert_eq!(counts(&view), counts(&own), "the token's indices only");
    assert_ne!(
        counts(&view),
        counts(&whole),
        "the cluster-wide counts include `secret`, so they must differ from the view"
    );
    // Cluster-wide counters are not the token's; the percentage is the view's own.
    for k in [
        "delayed_unassigned_shards",
        "number_of_pending_tasks",
        "number_of_in_flight_fetch",
        "task_max_waiting_in_queue_millis",
    ] {
        assert_eq!(view[k], json!(0), "{k}: {view}");
    }
    let active = view["active_shards"].as_f64().unwrap();
    let total = active
        + view["unassigned_shards"].as_f64().unwrap()
        + view["initializing_shards"].as_f64().unwrap();
    assert_eq!(
        view["active_shards_percent_as_number"].as_f64(),
        Some(active * 100.0 / total),
        "{view}"
    );
    assert!(view.get("indices").is_none(), "{view}");

    // The path form is narrowed like a search; a foreign name is refused.
    let (s, narrowed, _) = get(&gw.url("/_cluster/health/logs-*"), Some(&auth)).await;
    assert_eq!((s, counts(&narrowed)), (200, counts(&own)));
    let (s, v, _) = get(&gw.url("/_cluster/health/secret"), Some(&auth)).await;
    assert_eq!(s, 403, "{v}");
    let (s, v, _) = get(&gw.url("/_cluster/health/logs-sa"), Some(&auth)).await;
    assert_eq!(s, 403, "an alias to a foreign index: {v}");

    // Waits are checked once, never held (the view is yellow: replicas are unassigned).
    let (s, v, took) = get(
        &gw.url("/_cluster/health?wait_for_status=green&timeout=60s"),
        Some(&auth),
    )
    .await;
    assert_eq!((s, &v["timed_out"]), (408, &json!(true)), "{v}");
    assert!(took < Duration::from_secs(3), "the wait was held: {took:?}");
    let (s, v, _) = get(
        &gw.url("/_cluster/health?wait_for_status=yellow"),
        Some(&auth),
    )
    .await;
    assert_eq!((s, &v["timed_out"]), (200, &json!(false)), "{v}");
    for refused in [
        "wait_for_nodes=2",
        "wait_for_active_shards=all",
        "wait_for_events=languid",
        "wait_for_no_relocating_shards=true",
        "level=indices",
        "level=shards",
    ] {
        let (s, v, _) = get(&gw.url(&format!("/_cluster/health?{refused}")), Some(&auth)).await;
        assert_eq!(s, 403, "{refused}: {v}");
    }

    // A token that reaches no index sees an empty green view, never the cluster; a literal
    // pattern naming no index does not make its view red.
    for indices in [&["nothing-*"][..], &["missing-index"][..]] {
        let other = bearer(&gw.token(tenant_a_on(indices)).await.1);
        let (s, v, took) = get(&gw.url("/_cluster/health"), Some(&other)).await;
        assert_eq!(s, 200, "{indices:?}: {v}");
        assert_eq!(v["status"], "green", "{indices:?}: {v}");
        assert_eq!(v["active_shards"], json!(0), "{indices:?}: {v}");
        assert_eq!(v["unassigned_shards"], json!(0), "{indices:?}: {v}");
        assert!(took < Duration::from_secs(3), "{indices:?}: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_is_the_tokens_view_on_opensearch() {
    cluster_health_is_the_tokens_view(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_is_the_tokens_view_on_elasticsearch_8() {
    cluster_health_is_the_tokens_view(&fixture::seeded_noida()).await;
}

async fn field_caps_index_filter_is_refused(backend: &Backend) {
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_on(&["logs-*"])).await;
    // A range on `n` above tenant a's values: only other tenants' documents could match it.
    for filter in [
        json!({"range": {"n": {"gte": 1000}}}),
        json!({"match_all": {}}),
        json!({"bool": {"filter": [{"term": {"tenant": "a"}}]}}),
    ] {
        for path in ["/logs-*/_field_caps?fields=*", "/_field_caps?fields=*"] {
            let (s, v) = gw
                .call(
                    &secret,
                    "POST",
                    path,
                    json!({"fields": ["*"], "index_filter": filter}),
                    &[],
                )
                .await;
            assert_eq!(s, 403, "{path} {filter}: {v}");
            assert!(
                v["error"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("[index_filter]")),
                "{v}"
            );
        }
    }
    // Field caps without it keep working.
    let (s, v) = gw
        .call(
            &secret,
            "GET",
            "/logs-*/_field_caps?fields=*",
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["indices"], json!(["logs-a", "logs-b"]), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_caps_index_filter_is_refused_on_opensearch() {
    field_caps_index_filter_is_refused(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_caps_index_filter_is_refused_on_elasticsearch_8() {
    field_caps_index_filter_is_refused(&fixture::seeded_noida()).await;
}

/// Review 15: `_field_caps?include_empty_fields=false` (Elasticsearch 8.13+) lists only the
/// fields some document of the index holds a value for, every tenant's documents counted (the
/// shard's field infos): a field that only other tenants' documents use was listed, one that
/// nobody uses was not. esgate takes the parameter only as `true`, its default and what
/// Kibana's data views send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_caps_lists_empty_fields_on_elasticsearch_8() {
    let backend = fixture::seeded_noida();
    let base = backend.url();
    let index = "fieldcaps-r15";
    let mapping = json!({"mappings": {"properties": {
        "tenant": {"type": "keyword"}, "user": {"type": "keyword"}, "salary": {"type": "long"}}}});
    let put = send("PUT", &format!("{base}/{index}"), &[], mapping.to_string())
        .await
        .expect("create index");
    assert!(put.status.is_success(), "{}", put.text());
    // Tenant a's document holds no `salary`; only tenant b's does.
    for (id, doc) in [
        ("a1", json!({"tenant": "a", "user": "alice"})),
        ("b1", json!({"tenant": "b", "user": "bob", "salary": 90000})),
    ] {
        let r = send(
            "PUT",
            &format!("{base}/{index}/_doc/{id}?refresh=true"),
            &[],
            doc.to_string(),
        )
        .await
        .expect("index a document");
        assert!(r.status.is_success(), "{}", r.text());
    }
    // The backend answers the question: `salary` is listed because of tenant b's document.
    let (s, direct, _) = get(
        &format!("{base}/{index}/_field_caps?fields=*&include_empty_fields=false"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{direct}");
    assert!(direct["fields"].get("salary").is_some(), "{direct}");

    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(tenant_a_on(&["fieldcaps-r15*"])).await;
    for query in ["include_empty_fields=false", "include_empty_fields=0"] {
        let path = format!("/{index}/_field_caps?fields=*&{query}");
        let (s, v) = gw.call(&secret, "GET", &path, Value::Null, &[]).await;
        assert_eq!(s, 403, "{path}: {v}");
        assert!(
            v["error"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("[include_empty_fields]")),
            "{v}"
        );
    }
    // The default, which Kibana sends explicitly, lists every mapped field.
    for path in [
        format!("/{index}/_field_caps?fields=*&include_empty_fields=true"),
        format!("/{index}/_field_caps?fields=*"),
    ] {
        let (s, v) = gw.call(&secret, "GET", &path, Value::Null, &[]).await;
        assert_eq!(s, 200, "{path}: {v}");
        assert!(v["fields"].get("salary").is_some(), "{path}: {v}");
    }
}

/// A relay in front of a real backend that records every request esgate sends to it.
fn relay_to(backend_url: &str) -> Recording {
    let relay = Recording::start();
    let base = backend_url.to_owned();
    relay.script_fn("*", "/", move |r| support::relay::pass_on(&base, r));
    relay
}

/// The point-in-time requests the relay passed on (either dialect's form).
fn pit_requests(relay: &Recording) -> Vec<String> {
    relay
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("_pit") || r.path.contains("point_in_time"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Each dialect's forms: (open path, close path, close body key, id field in the answer).
struct PitForm {
    open: &'static str,
    close: &'static str,
    close_body: fn(&str) -> Value,
    id_field: &'static str,
}

const ES_PIT: PitForm = PitForm {
    open: "/logs-*/_pit?keep_alive=1m",
    close: "/_pit",
    close_body: |id| json!({ "id": id }),
    id_field: "id",
};

const OS_PIT: PitForm = PitForm {
    open: "/logs-*/_search/point_in_time?keep_alive=1m",
    close: "/_search/point_in_time",
    close_body: |id| json!({ "pit_id": [id] }),
    id_field: "pit_id",
};

async fn only_the_backends_pit_form_is_forwarded(
    backend: &Backend,
    own: &PitForm,
    other: &PitForm,
) {
    let relay = relay_to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(tenant_a_on(&["logs-*"])).await;

    // The backend's own form opens, searches and closes.
    let (s, opened) = gw.call(&secret, "POST", own.open, Value::Null, &[]).await;
    assert_eq!(s, 200, "{opened}");
    let sealed = opened[own.id_field].as_str().expect("an id").to_owned();
    assert!(sealed.starts_with("esgc1_"), "{opened}");
    let (s, page) = gw
        .call(
            &secret,
            "POST",
            "/_search",
            json!({"size": 100, "pit": {"id": sealed, "keep_alive": "1m"}}),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        page["hits"]["total"]["value"],
        json!(fixture::TENANT_A_DOCS),
        "{page}"
    );
    let forwarded_before = pit_requests(&relay);
    assert!(
        !forwarded_before.is_empty(),
        "the own form reached the backend"
    );

    // The other dialect's forms are answered like routes the backend does not have.
    let (s, v) = gw.call(&secret, "POST", other.open, Value::Null, &[]).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("no handler found for uri")),
        "{v}"
    );
    let (s, v) = gw
        .call(
            &secret,
            "DELETE",
            other.close,
            (other.close_body)(&sealed),
            &[],
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        pit_requests(&relay),
        forwarded_before,
        "the other dialect's form must never reach the backend"
    );

    let (s, v) = gw
        .call(&secret, "DELETE", own.close, (own.close_body)(&sealed), &[])
        .await;
    assert_eq!(s, 200, "{v}");
    // The dialect was asked once (`GET /`) and cached.
    let probes = relay
        .requests_to("GET", "/")
        .into_iter()
        .filter(|r| r.path == "/")
        .count();
    assert_eq!(
        probes,
        1,
        "{:?}",
        relay.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_opensearch_point_in_time_reaches_opensearch() {
    only_the_backends_pit_form_is_forwarded(&fixture::seeded_osmem(), &OS_PIT, &ES_PIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_elasticsearch_point_in_time_reaches_elasticsearch_8() {
    only_the_backends_pit_form_is_forwarded(&fixture::seeded_noida(), &ES_PIT, &OS_PIT).await;
}

/// Without the relay: on noida the OpenSearch form used to run as an unfiltered search and
/// end as a 502; it is a 400 now, and the answer carries nothing of the backend's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_dialects_point_in_time_is_a_client_error_not_a_5xx() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_on(&["logs-*"])).await;
    let r = gw
        .call_raw(&secret, "POST", OS_PIT.open, Value::Null, &[])
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json().get("hits").is_none(), "{}", r.text());
}

/// Finding 8 (low): `_cluster/health` takes any `wait_for_status` and `timeout`, so a client
/// can make the backend hold the request past esgate's `backend.request_timeout` and get a 504
/// (a 5xx from client input, and a connection held on both sides).
/// (found by the first security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_waits_cannot_outlast_the_backend_timeout() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start_full(&[backend.url()], "", "request_timeout = \"2s\"", "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    // The fixture cluster is yellow (replicas unassigned), so a wait for green times out.
    let path = "/_cluster/health?wait_for_status=green&timeout=6s";
    let r = gw.get_as(&auth, path).await;
    // Answered (not refused, issue #15 item 10): the health API's own answer for an unmet
    // wait, 408 with `timed_out: true`, instead of holding the request.
    assert_eq!(r.status, 408, "{path}: {}", r.text());
    assert_eq!(r.json()["timed_out"], true, "{path}: {}", r.text());
}
