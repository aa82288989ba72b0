//! Elasticsearch async search through esgate, against the recording fake backend
//! (`support::recording`; neither osmem nor noida implements `_async_search`): the forwarded
//! submit carries the token's filters and only its indices, ids are sealed for the token that
//! submitted, and poll, status and delete reach the backend only with an id sealed for the
//! presenting token.

use crate::support;

use serde_json::{json, Value};

use support::esgate::Esgate;
use support::http::Reply;
use support::recording::{Answer, Recorded, Recording};

/// An async search id as Elasticsearch mints it (URL-safe base64 with padding).
const BACKEND_ID: &str = "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=";
/// `BACKEND_ID` as esgate forwards it in a path.
const BACKEND_ID_IN_PATH: &str =
    "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc%3D";

/// Kibana's submit query string (data plugin defaults).
const KIBANA_SUBMIT: &str = "batched_reduce_size=64&ccs_minimize_roundtrips=true&wait_for_completion_timeout=200ms&keep_on_completion=false&keep_alive=60000ms&ignore_unavailable=true";

async fn raw_call(gw: &Esgate, secret: &str, method: &str, path: &str, body: Value) -> Reply {
    gw.call_raw(secret, method, path, body, &[]).await
}

async fn call(gw: &Esgate, secret: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    gw.call(secret, method, path, body, &[]).await
}

async fn tenant(gw: &Esgate, name: &str) -> String {
    gw.tenant_token(name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_backend_sees_the_rewritten_count() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.field_types(&["logs-a", "logs-b", "secret"], &[("@timestamp", "date")]);
    es.script_json("POST", "/", 200, json!({"count": 3}));
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;

    let (status, v) = call(&gw, &a, "POST", "/_count", json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"count": 3}));
    let sent = es.requests_to("POST", "/");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].path, "/logs-a,logs-b/_count");
    assert_eq!(
        sent[0].json()["query"]["bool"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}])
    );
    assert!(sent[0].header("authorization").is_none());
}

/// An async search answer: running (or stored) with the backend id, or final without one.
fn answer(id: Option<&str>, running: bool, status: u16) -> Answer {
    let mut body = json!({
        "is_partial": running,
        "is_running": running,
        "start_time_in_millis": 1_583_945_890_986_u64,
        "expiration_time_in_millis": 1_584_377_890_986_u64,
        "response": {
            "took": 12,
            "timed_out": false,
            "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": 5, "relation": "eq"}, "max_score": null, "hits": []}
        }
    });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    let mut a = Answer::json(status, body).with_header(
        "x-elasticsearch-async-is-running",
        if running { "?1" } else { "?0" },
    );
    if let Some(id) = id {
        a = a.with_header("x-elasticsearch-async-id", id);
    }
    a
}

/// The recording backend with `logs-a`, `logs-b` and `secret`, a running submit and poll,
/// a status and a delete for `BACKEND_ID`; and esgate in front of it with tenants a and b.
async fn setup() -> (Recording, Esgate, String, String) {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.field_types(&["logs-a", "logs-b", "secret"], &[("@timestamp", "date")]);
    // The banner esgate reads the dialect from before it forwards a point-in-time route.
    es.script_fn("GET", "/", |r| {
        let (status, body) = if r.path == "/" {
            (
                200,
                json!({"version": {"number": "8.15.3"}, "tagline": "You Know, for Search"}),
            )
        } else {
            (404, json!({"error": "nothing scripted", "status": 404}))
        };
        support::recording::Answer::json(status, body)
    });
    es.script("POST", "/", answer(Some(BACKEND_ID), true, 200));
    es.script(
        "GET",
        "/_async_search/",
        answer(Some(BACKEND_ID), true, 200),
    );
    es.script_json(
        "GET",
        "/_async_search/status/",
        200,
        json!({"id": BACKEND_ID, "is_running": true, "is_partial": true,
               "start_time_in_millis": 1, "expiration_time_in_millis": 2,
               "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 0}}),
    );
    es.script_json(
        "DELETE",
        "/_async_search/",
        200,
        json!({"acknowledged": true}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    let b = tenant(&gw, "b").await;
    (es, gw, a, b)
}

/// The raw backend id is nowhere in what the client got (body or headers).
fn assert_no_backend_id(r: &Reply) {
    assert!(
        !r.text().contains(BACKEND_ID),
        "backend id in body: {}",
        r.text()
    );
    assert!(
        !r.text().contains("FmRldE8z"),
        "backend id in body: {}",
        r.text()
    );
    for (name, value) in &r.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(!v.contains("FmRldE8z"), "backend id in header {name}: {v}");
    }
}

/// Submits Kibana's request as `secret`; returns the answer.
async fn submit(gw: &Esgate, secret: &str) -> Reply {
    raw_call(
        gw,
        secret,
        "POST",
        &format!("/logs-*/_async_search?{KIBANA_SUBMIT}"),
        kibana_body(),
    )
    .await
}

/// What Kibana's Discover sends (8.x): a range on the time field, a histogram, fields,
/// highlighting, an empty `runtime_mappings`.
fn kibana_body() -> Value {
    json!({
        "size": 500,
        "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}],
        "fields": [{"field": "*", "include_unmapped": "true"}, {"field": "@timestamp", "format": "strict_date_optional_time"}],
        "track_total_hits": true,
        "version": true,
        "stored_fields": ["*"],
        "script_fields": {},
        "runtime_mappings": {},
        "_source": false,
        "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30s", "time_zone": "UTC", "min_doc_count": 1}}},
        "query": {"bool": {"must": [], "filter": [{"range": {"@timestamp": {"format": "strict_date_optional_time", "gte": "2026-11-24T09:00:00.000Z", "lte": "2026-11-24T09:15:00.000Z"}}}], "should": [], "must_not": []}},
        "highlight": {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"], "fields": {"*": {}}, "fragment_size": 2147483647}
    })
}

fn only(rs: Vec<Recorded>) -> Recorded {
    assert_eq!(rs.len(), 1, "{rs:?}");
    rs.into_iter().next().expect("one request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_carries_the_filters_and_narrowed_indices_and_answers_a_sealed_id() {
    let (es, gw, a, _) = setup().await;
    let r = submit(&gw, &a).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_no_backend_id(&r);
    let v = r.json();
    let sealed = v["id"].as_str().expect("an id");
    assert!(sealed.starts_with("esgc1_"), "{sealed}");
    assert_eq!(r.header("x-elasticsearch-async-id"), Some(sealed));
    assert_eq!(r.header("x-elasticsearch-async-is-running"), Some("?1"));
    assert_eq!(v["is_running"], json!(true));
    assert_eq!(v["response"]["hits"]["total"]["value"], json!(5));

    let sent = only(es.requests_to("POST", "/"));
    assert_eq!(sent.path, "/logs-a,logs-b/_async_search");
    for (k, want) in [
        ("batched_reduce_size", "64"),
        ("ccs_minimize_roundtrips", "true"),
        ("wait_for_completion_timeout", "200ms"),
        ("keep_on_completion", "false"),
        ("keep_alive", "60000ms"),
        ("ignore_unavailable", "true"),
        ("expand_wildcards", "open"),
    ] {
        assert_eq!(sent.param(k).as_deref(), Some(want), "{k}");
    }
    let body = sent.json();
    assert_eq!(
        body["query"]["bool"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}])
    );
    // Under `constant_score`: the token's scores are constant (review 15).
    assert_eq!(
        body["query"]["bool"]["must"],
        json!([{"constant_score": {"filter": kibana_body()["query"]}}])
    );
    assert_eq!(body["aggs"], kibana_body()["aggs"]);
    assert!(sent.header("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_status_and_delete_with_the_sealed_id_reach_the_backend_with_its_id() {
    let (es, gw, a, _) = setup().await;
    let sealed = submit(&gw, &a).await.json()["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let r = raw_call(
        &gw,
        &a,
        "GET",
        &format!("/_async_search/{sealed}?wait_for_completion_timeout=100ms&keep_alive=60000ms"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_no_backend_id(&r);
    assert_eq!(r.json()["id"].as_str(), Some(sealed.as_str()));
    let poll = only(es.requests_to("GET", "/_async_search/F"));
    assert_eq!(poll.path, format!("/_async_search/{BACKEND_ID_IN_PATH}"));
    assert_eq!(
        poll.param("wait_for_completion_timeout").as_deref(),
        Some("100ms")
    );
    assert_eq!(poll.param("keep_alive").as_deref(), Some("60000ms"));

    let r = raw_call(
        &gw,
        &a,
        "GET",
        &format!("/_async_search/status/{sealed}"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_no_backend_id(&r);
    assert_eq!(r.json()["id"].as_str(), Some(sealed.as_str()));
    let status = only(es.requests_to("GET", "/_async_search/status/"));
    assert_eq!(
        status.path,
        format!("/_async_search/status/{BACKEND_ID_IN_PATH}")
    );

    let (s, v) = call(
        &gw,
        &a,
        "DELETE",
        &format!("/_async_search/{sealed}"),
        Value::Null,
    )
    .await;
    assert_eq!((s, v), (200, json!({"acknowledged": true})));
    let delete = only(es.requests_to("DELETE", "/_async_search/"));
    assert_eq!(delete.path, format!("/_async_search/{BACKEND_ID_IN_PATH}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_forged_raw_and_other_kind_ids_never_reach_the_backend() {
    let (es, gw, a, b) = setup().await;
    let sealed = submit(&gw, &a).await.json()["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    // A scroll id and a point-in-time id sealed for the same token.
    es.script_json(
        "POST",
        "/logs-a/_search",
        200,
        json!({"_scroll_id": BACKEND_ID, "hits": {"hits": []}}),
    );
    es.script_json("POST", "/logs-a/_pit", 200, json!({"id": BACKEND_ID}));
    let (s, v) = call(&gw, &a, "POST", "/logs-a/_search?scroll=1m", json!({})).await;
    assert_eq!(s, 200, "{v}");
    let scroll = v["_scroll_id"].as_str().expect("a scroll id").to_owned();
    let (s, v) = call(&gw, &a, "POST", "/logs-a/_pit?keep_alive=1m", Value::Null).await;
    assert_eq!(s, 200, "{v}");
    let pit = v["id"].as_str().expect("a pit id").to_owned();
    let mut forged = sealed.clone();
    forged.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
    es.clear();

    let cases: Vec<(&str, &str, String)> = vec![
        ("another token's id", b.as_str(), sealed.clone()),
        ("a forged id", a.as_str(), forged),
        (
            "the raw backend id",
            a.as_str(),
            BACKEND_ID_IN_PATH.to_owned(),
        ),
        ("a scroll id", a.as_str(), scroll),
        ("a point-in-time id", a.as_str(), pit),
    ];
    for (what, secret, id) in &cases {
        for (method, path) in [
            ("GET", format!("/_async_search/{id}")),
            ("GET", format!("/_async_search/status/{id}")),
            ("DELETE", format!("/_async_search/{id}")),
        ] {
            let r = raw_call(&gw, secret, method, &path, Value::Null).await;
            assert_eq!(
                r.status.as_u16(),
                403,
                "{what}: {method} {path}: {}",
                r.text()
            );
            let v = r.json();
            assert_eq!(v["status"], json!(403));
            assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
        }
    }
    assert!(es.requests().is_empty(), "{:?}", es.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kibana_sequence_submit_poll_poll_delete() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.field_types(&["logs-a", "logs-b", "secret"], &[("@timestamp", "date")]);
    // The banner esgate reads the dialect from before it forwards a point-in-time route.
    es.script_fn("GET", "/", |r| {
        let (status, body) = if r.path == "/" {
            (
                200,
                json!({"version": {"number": "8.15.3"}, "tagline": "You Know, for Search"}),
            )
        } else {
            (404, json!({"error": "nothing scripted", "status": 404}))
        };
        support::recording::Answer::json(status, body)
    });
    es.script("POST", "/", answer(Some(BACKEND_ID), true, 200));
    // The first poll finds it still running, the second finished (the stored result keeps
    // its id).
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let polls = std::sync::Arc::clone(&polls);
        es.script_fn("GET", "/_async_search/", move |_| {
            let n = polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            answer(Some(BACKEND_ID), n == 0, 200)
        });
    }
    es.script_json(
        "DELETE",
        "/_async_search/",
        200,
        json!({"acknowledged": true}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;

    let r = submit(&gw, &a).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_no_backend_id(&r);
    let id = r.json()["id"].as_str().expect("an id").to_owned();
    let poll = format!("/_async_search/{id}?wait_for_completion_timeout=200ms&keep_alive=60000ms");
    for running in [true, false] {
        let r = raw_call(&gw, &a, "GET", &poll, Value::Null).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        assert_no_backend_id(&r);
        let v = r.json();
        assert_eq!(v["is_running"], json!(running));
        assert_eq!(v["id"].as_str(), Some(id.as_str()), "the same sealed id");
    }
    let (s, _) = call(
        &gw,
        &a,
        "DELETE",
        &format!("/_async_search/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200);

    // esgate's own lookups aside: index resolution, `GET /` (the backend's banner, asked
    // before a body naming a histogram while it is not known: this fake's is not one) and the
    // histogram's field types (`_field_caps`).
    let seen: Vec<(String, String)> = es
        .requests()
        .into_iter()
        .filter(|r| {
            !(r.path.starts_with("/_resolve/")
                || (r.method == "GET" && (r.path == "/" || r.path.ends_with("/_field_caps"))))
        })
        .map(|r| (r.method, r.path))
        .collect();
    let at = format!("/_async_search/{BACKEND_ID_IN_PATH}");
    assert_eq!(
        seen,
        vec![
            (
                "POST".to_string(),
                "/logs-a,logs-b/_async_search".to_string()
            ),
            ("GET".to_string(), at.clone()),
            ("GET".to_string(), at.clone()),
            ("DELETE".to_string(), at),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_finished_within_the_wait_answers_without_an_id() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    es.field_types(&["logs-a"], &[("@timestamp", "date")]);
    es.script("POST", "/", answer(None, false, 200));
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    let (s, v) = call(
        &gw,
        &a,
        "POST",
        "/logs-a/_async_search?wait_for_completion_timeout=1s",
        json!({"size": 0}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("id").is_none(), "{v}");
    assert_eq!(v["response"]["hits"]["total"]["value"], json!(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_search_answers_its_error_status_with_the_id_sealed() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    es.field_types(&["logs-a"], &[("@timestamp", "date")]);
    es.script_json(
        "POST",
        "/",
        400,
        json!({"id": BACKEND_ID, "is_running": false, "is_partial": true,
               "error": {"type": "search_phase_execution_exception", "reason": "all shards failed"}}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    let r = raw_call(
        &gw,
        &a,
        "POST",
        "/logs-a/_async_search?keep_on_completion=true",
        json!({}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text());
    assert_no_backend_id(&r);
    let v = r.json();
    assert!(
        v["id"].as_str().is_some_and(|i| i.starts_with("esgc1_")),
        "{v}"
    );
    assert_eq!(v["error"]["reason"], json!("all shards failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_on_a_point_in_time_sends_the_backend_pit_and_seals_both_ids() {
    let (es, gw, a, b) = setup().await;
    es.script_json(
        "POST",
        "/logs-a/_pit",
        200,
        json!({"id": "cGl0LWJhY2tlbmQ="}),
    );
    let (s, v) = call(&gw, &a, "POST", "/logs-a/_pit?keep_alive=1m", Value::Null).await;
    assert_eq!(s, 200, "{v}");
    let pit = v["id"].as_str().expect("a pit id").to_owned();
    es.script_fn("POST", "/_async_search", |_| {
        Answer::json(
            200,
            json!({"id": BACKEND_ID, "is_running": true,
            "response": {"pit_id": "cGl0LWJhY2tlbmQ=", "hits": {"hits": []}}}),
        )
    });
    es.clear();

    let body = json!({"pit": {"id": pit, "keep_alive": "1m"}, "size": 10, "sort": [{"@timestamp": "asc"}]});
    let r = raw_call(
        &gw,
        &a,
        "POST",
        "/_async_search?keep_alive=60000ms",
        body.clone(),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_no_backend_id(&r);
    assert!(!r.text().contains("cGl0LWJhY2tlbmQ="), "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["response"]["pit_id"].as_str(),
        Some(pit.as_str()),
        "same pit, same seal"
    );
    let sent = only(es.requests_to("POST", "/_async_search"));
    assert_eq!(sent.path, "/_async_search");
    let sent = sent.json();
    assert_eq!(
        sent["pit"],
        json!({"id": "cGl0LWJhY2tlbmQ=", "keep_alive": "1m"})
    );
    assert_eq!(
        sent["query"]["bool"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}])
    );

    // Tenant b cannot search on tenant a's point in time.
    es.clear();
    let (s, v) = call(&gw, &b, "POST", "/_async_search", body).await;
    assert_eq!(s, 403, "{v}");
    assert!(es.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_submits_are_refused_before_the_backend() {
    let (es, gw, a, _) = setup().await;
    es.clear();
    let cases: [(&str, Value); 7] = [
        ("/logs-*/_async_search?scroll=1m", json!({})),
        ("/logs-*/_async_search?q=tenant:b", json!({})),
        ("/logs-*/_async_search?keep_alive=3650d", json!({})),
        (
            "/logs-*/_async_search?wait_for_completion_timeout=10m",
            json!({}),
        ),
        ("/secret/_async_search", json!({})),
        ("/_async_search", json!({"aggs": {"all": {"global": {}}}})),
        ("/_async_search", json!({"pit": {"id": BACKEND_ID}})),
    ];
    for (path, body) in cases {
        let (s, v) = call(&gw, &a, "POST", path, body).await;
        assert!(s == 403 || s == 400, "{path}: {s} {v}");
    }
    assert!(es.requests().is_empty(), "{:?}", es.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_minted_before_the_tokens_filters_changed_no_longer_opens() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b"]);
    es.field_types(&["logs-a", "logs-b"], &[("@timestamp", "date")]);
    es.script("POST", "/", answer(Some(BACKEND_ID), true, 200));
    es.script(
        "GET",
        "/_async_search/",
        answer(Some(BACKEND_ID), true, 200),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let (s, f) = gw
        .admin(
            "POST",
            "/filters",
            Some(json!({"field": "tenant", "value": "a"})),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let fid = f["id"].as_str().expect("filter id").to_owned();
    let (token_id, a) = gw
        .token(json!({"name": "lib", "indices": ["logs-*"], "filters": [fid]}))
        .await;
    let id = submit(&gw, &a).await.json()["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let poll = format!("/_async_search/{id}");
    assert_eq!(
        raw_call(&gw, &a, "GET", &poll, Value::Null).await.status,
        200
    );

    // A library filter the token uses changes: results computed under the old filter stay
    // out of reach.
    let (s, v) = gw
        .admin(
            "PATCH",
            &format!("/filters/{fid}"),
            Some(json!({"value": "b"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    es.clear();
    let r = raw_call(&gw, &a, "GET", &poll, Value::Null).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());

    // So does a change of the token's own filters.
    let id = submit(&gw, &a).await.json()["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let (s, v) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{token_id}"),
            Some(json!({"filters": [{"field": "tenant", "value": "c"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    es.clear();
    let r = raw_call(&gw, &a, "GET", &format!("/_async_search/{id}"), Value::Null).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    assert!(es.requests_to("GET", "/_async_search/").is_empty());
}

/// Session 11 review (review11b): a page of hits can hold a document serde_json's tree refuses
/// (its `_source` comes back as it was indexed; here a lone surrogate escape). The answer's
/// ids are read without that tree, so they are still sealed; the former tree reading failed on
/// such a page and sent the answer unchanged, backend id and all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_beside_a_document_the_tree_refuses_are_sealed() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.field_types(&["logs-a", "logs-b", "secret"], &[("@timestamp", "date")]);
    let body = format!(
        r#"{{"id":"{BACKEND_ID}","is_partial":true,"is_running":true,"start_time_in_millis":1,"expiration_time_in_millis":2,"response":{{"took":1,"timed_out":false,"_shards":{{"total":1,"successful":1,"skipped":0,"failed":0}},"hits":{{"total":{{"value":1,"relation":"eq"}},"max_score":1.0,"hits":[{{"_index":"logs-a","_id":"1","_score":1.0,"_source":{{"tenant":"a","s":"\ud800"}}}}]}}}}}}"#
    );
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "the tree refuses it"
    );
    es.script(
        "POST",
        "/",
        Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        },
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    let r = submit(&gw, &a).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_no_backend_id(&r);
    assert!(r.text().contains(r#""id":"esgc1_"#), "{}", r.text());
    assert!(
        r.text().contains(r#""s":"\ud800""#),
        "the document keeps its bytes"
    );
}

/// Review 12: an answer that repeats its id keys (`id` twice, `pit_id` twice in `response`)
/// reaches the client with every value sealed; the earlier values stayed in the text raw (a
/// reader keeping a repeated key's first value, or a look at the text, saw the backend id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_id_keys_are_all_sealed() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.field_types(&["logs-a", "logs-b", "secret"], &[("@timestamp", "date")]);
    let second = "FmRldE8zSecondIdOfTheSameAnswer=";
    let body = format!(
        r#"{{"id":"{BACKEND_ID}","id":"{second}","is_partial":true,"is_running":true,"start_time_in_millis":1,"expiration_time_in_millis":2,"response":{{"pit_id":"FmRldE8zPit1","pit_id":"FmRldE8zPit2","took":1,"timed_out":false,"_shards":{{"total":1,"successful":1,"skipped":0,"failed":0}},"hits":{{"total":{{"value":0,"relation":"eq"}},"max_score":null,"hits":[]}}}}}}"#
    );
    es.script(
        "POST",
        "/",
        Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        },
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    let r = submit(&gw, &a).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_no_backend_id(&r);
    assert!(r.text().contains(r#""id":"esgc1_"#), "{}", r.text());
}

/// Review 16e: an async search's answer is read whole (its id is sealed), and its failures were
/// judged from its beginning as a search answer's are: its first key (`id`) is not one a search
/// answer writes before its `_shards` header, so the answer was decided clean, and the shard
/// failures in its `response` (a circuit breaker's reason: the node's memory, every tenant's
/// work) reached a `read` token whole, on submit and on every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_failures_in_an_async_answer_keep_only_their_type_for_a_read_token() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.field_types(&["logs-a", "logs-b", "secret"], &[("@timestamp", "date")]);
    let breaker = json!({"type": "circuit_breaking_exception",
        "reason": "[parent] Data too large, real usage: [987654321/941mb]",
        "bytes_wanted": 987_654_321_u64, "durability": "TRANSIENT"});
    let failed = || {
        let body = json!({
            "is_partial": true, "is_running": false,
            "start_time_in_millis": 1, "expiration_time_in_millis": 2,
            "response": {
                "took": 12, "timed_out": false,
                "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1,
                    "failures": [{"shard": 0, "index": "logs-a", "node": "n1",
                                  "reason": breaker.clone()}]},
                "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}
            }
        });
        // The id first, as Elasticsearch writes it.
        let mut m = serde_json::Map::new();
        m.insert("id".into(), json!(BACKEND_ID));
        m.extend(body.as_object().unwrap().clone());
        Answer::json(200, Value::Object(m))
    };
    es.script("POST", "/", failed());
    es.script("GET", "/_async_search/", failed());
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    let r = raw_call(
        &gw,
        &a,
        "POST",
        "/logs-a/_async_search?keep_on_completion=true",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("real usage"), "{}", r.text());
    assert!(!r.text().contains("987654321"), "{}", r.text());
    let v: Value = serde_json::from_str(&r.text()).expect("JSON");
    assert_eq!(
        v["response"]["_shards"]["failures"][0]["reason"]["type"],
        "circuit_breaking_exception"
    );
    let id = v["id"].as_str().expect("a sealed id").to_owned();
    let r = raw_call(&gw, &a, "GET", &format!("/_async_search/{id}"), json!(null)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("real usage"), "{}", r.text());
    gw.stop().await;
}

/// attack18b (L): `X-Elasticsearch-Async-Id` reaches a `read` token only as esgate sealed it,
/// on the async search routes. Every other answer relayed the backend's header as it came (the
/// allow-list named it for every route, and the seal replaced it on async search answers only):
/// an ES|QL, SQL or EQL answer of a backend that runs the query asynchronously (its id names a
/// stored result of esgate's credentials), or any answer of a proxy in front of the cluster
/// carrying one, handed the raw id to the token; a scroll page's seal left it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_relays_a_raw_async_id_header() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.field_types(&["logs-a", "logs-b", "secret"], &[("@timestamp", "date")]);
    let with_id = |body: Value| {
        Answer::json(200, body)
            .with_header("x-elasticsearch-async-id", BACKEND_ID)
            .with_header("x-elasticsearch-async-is-running", "?0")
    };
    let hits = json!({"took": 1, "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}});
    es.script(
        "POST",
        "/_query",
        with_id(json!({"columns": [], "values": []})),
    );
    es.script("POST", "/_sql", with_id(json!({"columns": [], "rows": []})));
    es.script(
        "POST",
        "/logs-a/_eql/search",
        with_id(json!({"is_partial": false, "is_running": false, "took": 1,
            "timed_out": false, "hits": {"total": {"value": 0, "relation": "eq"}, "events": []}})),
    );
    es.script("POST", "/logs-a/_count", with_id(json!({"count": 0})));
    es.script_fn("POST", "/logs-a/_search", move |r| {
        let mut body = hits.clone();
        if r.param("scroll").is_some() {
            body["_scroll_id"] = json!("c2Nyb2xsLWlk");
        }
        with_id(body)
    });
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;
    for (path, body) in [
        ("/_query", json!({"query": "FROM logs-a"})),
        ("/_sql", json!({"query": "SELECT n FROM \"logs-a\""})),
        ("/logs-a/_eql/search", json!({"query": "any where true"})),
        ("/logs-a/_count", json!({})),
        ("/logs-a/_search", json!({})),
        ("/logs-a/_search?scroll=1m", json!({})),
    ] {
        let r = raw_call(&gw, &a, "POST", path, body).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text());
        assert_no_backend_id(&r);
        assert!(
            r.header("x-elasticsearch-async-id").is_none(),
            "{path}: {:?}",
            r.headers
        );
    }
}
