//! Per-token limits and cost guards (issue 13, "Day-2 operations"), end to end against the
//! real backends (osmem and noida), through a recording relay where what the backend receives
//! matters:
//! - a rate over `requests_per_second`/`burst` and requests over `max_concurrent` are 429 with
//!   `Retry-After` and `es_rejected_execution_exception`, and the slot of a streaming answer is
//!   held until the client stops reading;
//! - `max_size` and `max_buckets` hold in every form a search can take (URI parameters, body,
//!   scroll, msearch lines, async search, point in time, kNN, retrievers, sub-searches,
//!   `top_hits`, `inner_hits`, histograms, sub-aggregations): a 400 naming the limit, and
//!   nothing but esgate's own lookups reaches the backend; within the limits the same searches
//!   are answered, and a scroll's later pages keep the first page's size;
//! - `search_timeout` is what the backend receives as the search's `timeout`;
//! - limits are PATCHable and `[policies.limits]` gives the defaults a token's own override;
//! - `max_open_scrolls` (attack24): opens past it are 429 and never reach the backend; a next
//!   page still passes; a clear, or a next page the backend answers 404, frees a place.
//! - `max_open_pits` (pit25): the same for points in time, in each backend's dialect, counted
//!   apart from scrolls; a search on one passes; a close, or a search answered 404, frees one;
//!   a search or next page that failed still keeps its context counted for its keep-alive
//!   (attack25c, against the recording backend); an async search on one that names a new id
//!   moves the count to it (rel26, likewise).
//! - `max_running_async_searches` (async25), against the recording fake backend (neither test
//!   backend has `_async_search`): submits past it are 429 and never reach the backend; a
//!   submit whose search completed holds no place; a poll or status saying the search no
//!   longer runs (a 503 failure's body too), a delete, or a poll answered 404 frees one.
//! - SQL cursors (sql26), against the recording fake backend (neither test backend has
//!   `_sql`): counted with points in time under `max_open_pits`; a query whose answer carries
//!   a cursor takes a place, one answered in one page none; the last page, a close or a page
//!   answered 404 frees one; a `page_timeout` over a day is refused; a page on an older cursor
//!   of a query (still good on Elasticsearch 8) takes a place (attack26d).

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::backend::{Backend, Flavor};
use support::esgate::Esgate;
use support::faults::FaultServer;
use support::fixture;
use support::relay::Relay;

fn reason(v: &Value) -> String {
    v["error"]["reason"].as_str().unwrap_or_default().to_owned()
}

async fn tenant_a(gw: &Esgate, limits: Value) -> (String, String) {
    gw.token(json!({"name": "limited", "indices": ["logs-*"],
                    "filters": [{"field": "tenant", "value": "a"}], "limits": limits}))
        .await
}

/// Over the rate: 429, `Retry-After`, `es_rejected_execution_exception`; the bucket refills.
async fn rate_on(backend: &Backend) {
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = tenant_a(&gw, json!({"requests_per_second": 1, "burst": 2})).await;
    let (_, other) = tenant_a(&gw, json!({})).await;
    let search = |s: String| {
        let gw = &gw;
        async move {
            gw.call_raw(&s, "POST", "/logs-*/_search", json!({"size": 1}), &[])
                .await
        }
    };
    for i in 0..2 {
        assert_eq!(
            search(secret.clone()).await.status,
            200,
            "burst request {i}"
        );
    }
    let refused = search(secret.clone()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let body = refused.json();
    assert_eq!(
        body["error"]["type"], "es_rejected_execution_exception",
        "{body}"
    );
    assert!(reason(&body).contains("rate limit"), "{body}");
    // Another token is not affected.
    assert_eq!(search(other.clone()).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        search(secret.clone()).await.status,
        200,
        "the bucket refilled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_is_429_with_retry_after_on_osmem() {
    rate_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_is_429_with_retry_after_on_noida() {
    rate_on(&fixture::seeded_noida()).await;
}

/// Sends a search on a raw connection and returns the stream once the answer's status line
/// is in (the body keeps dripping); the status code.
async fn open_streaming_search(gw: &Esgate, secret: &str) -> (tokio::net::TcpStream, u16) {
    let mut s = tokio::net::TcpStream::connect(gw.data_addr)
        .await
        .expect("connects");
    let req = format!(
        "GET /logs-a/_search HTTP/1.1\r\nHost: esgate\r\nAuthorization: Bearer {secret}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("writes");
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.expect("reads");
            assert!(n > 0, "closed before the answer's head");
            head.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the answer's head arrives");
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (s, status)
}

/// `max_concurrent`: a request whose answer is still streaming holds its slot; another one is
/// 429 at once; when the client goes away the slot is free again. (A fault backend that drips
/// its answer forever holds the request open; no real backend answers that slowly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_answer_holds_its_concurrency_slot_until_the_client_leaves() {
    let backend = FaultServer::drip(Duration::from_millis(50));
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = tenant_a(&gw, json!({"max_concurrent": 1})).await;
    let (first, status) = open_streaming_search(&gw, &secret).await;
    assert_eq!(status, 200);
    let refused = gw
        .call_raw(&secret, "GET", "/logs-a/_search", Value::Null, &[])
        .await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    let body = refused.json();
    assert_eq!(body["error"]["type"], "es_rejected_execution_exception");
    assert!(reason(&body).contains("max_concurrent"), "{body}");
    // The client leaves: esgate notices at the next dripped byte and drops the answer.
    drop(first);
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (s, st) = open_streaming_search(&gw, &secret).await;
        drop(s);
        status = st;
        if st == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "the slot was released");
}

/// One search form: method, path with query, content type, body.
struct Form {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    ndjson: bool,
    body: Value,
    /// Text the refusal must contain.
    refused: &'static str,
    /// The backend answers it (false: a feature it lacks; only the refusal is checked).
    both: bool,
}

fn form(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Value,
    refused: &'static str,
) -> Form {
    Form {
        name,
        method,
        path,
        ndjson: false,
        body,
        refused,
        both: true,
    }
}

/// Every place a search can ask for more than `max_size` 5 hits or `max_buckets` 20 buckets.
fn over_limit_forms() -> Vec<Form> {
    let knn = json!({"field": "v", "query_vector": [1.0, 0.0], "k": 6, "num_candidates": 6});
    let mut forms = vec![
        form(
            "uri size",
            "GET",
            "/logs-*/_search?size=6",
            Value::Null,
            "size 6 exceeds this token's max_size 5",
        ),
        form(
            "uri from",
            "GET",
            "/logs-*/_search?size=5&from=1",
            Value::Null,
            "from + size 6 exceeds this token's max_size 5",
        ),
        form(
            "default size",
            "GET",
            "/logs-*/_search?from=0",
            Value::Null,
            "size 10 exceeds",
        ),
        form(
            "body size",
            "POST",
            "/logs-*/_search",
            json!({"size": 6}),
            "size 6 exceeds",
        ),
        form(
            "body from",
            "POST",
            "/logs-*/_search",
            json!({"size": 3, "from": 3}),
            "from + size 6",
        ),
        form(
            "uri beats body",
            "POST",
            "/logs-*/_search?size=6",
            json!({"size": 1}),
            "size 6 exceeds",
        ),
        form(
            "scroll",
            "POST",
            "/logs-*/_search?scroll=1m",
            json!({"size": 6}),
            "size 6 exceeds",
        ),
        form(
            "terms",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"u": {"terms": {"field": "user", "size": 21}}}}),
            "able to return 21 buckets exceed this token's max_buckets 20",
        ),
        form(
            "nested terms",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "tenant", "size": 2}, "aggs": {"u": {"terms": {"field": "user", "size": 10}}}}}}),
            "able to return 22 buckets",
        ),
        // `min_doc_count: 1`: without it osmem's would need a range to bound its empty buckets
        // (hist27, tests/it/histogram_fill.rs); counted by its extended bounds either way.
        form(
            "histogram",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"h": {"histogram": {"field": "n", "interval": 1, "min_doc_count": 1, "extended_bounds": {"min": 0, "max": 20}}}}}),
            "able to return 21 buckets",
        ),
        form(
            "date histogram",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h", "hard_bounds": {"min": 0, "max": 72_000_000}}}}}),
            "able to return 21 buckets",
        ),
        form(
            "composite",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"c": {"composite": {"size": 21, "sources": [{"u": {"terms": {"field": "user"}}}]}}}}),
            "able to return 21 buckets",
        ),
        form(
            "top_hits",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "tenant"}, "aggs": {"h": {"top_hits": {"size": 6}}}}}}),
            "top_hits size 6",
        ),
        form(
            "collapse inner_hits",
            "POST",
            "/logs-*/_search",
            json!({"size": 1, "collapse": {"field": "user", "inner_hits": {"name": "x", "size": 6}}}),
            "inner_hits size 6",
        ),
        form(
            "sub_searches",
            "POST",
            "/logs-*/_search",
            json!({"size": 6, "sub_searches": [{"query": {"match_all": {}}}], "rank": {"rrf": {}}}),
            "size 6 exceeds",
        ),
        form(
            "rank window",
            "POST",
            "/logs-*/_search",
            json!({"size": 1, "sub_searches": [{"query": {"match_all": {}}}, {"query": {"term": {"user": "x"}}}], "rank": {"rrf": {"rank_window_size": 6}}}),
            "rank_window_size 6",
        ),
        form(
            "retriever knn",
            "POST",
            "/logs-*/_search",
            json!({"size": 1, "retriever": {"knn": knn.clone()}}),
            "knn k 6",
        ),
        form(
            "retriever rrf",
            "POST",
            "/logs-*/_search",
            json!({"size": 1, "retriever": {"rrf": {"retrievers": [{"standard": {"query": {"match_all": {}}}}], "rank_window_size": 6}}}),
            "rank_window_size 6",
        ),
        form(
            "top-level knn",
            "POST",
            "/logs-*/_search",
            json!({"size": 1, "knn": knn}),
            "knn k 6",
        ),
    ];
    forms.push(Form {
        name: "msearch line",
        method: "POST",
        path: "/_msearch",
        ndjson: true,
        body: json!([{"index": "logs-*"}, {"size": 1}, {"index": "logs-*"}, {"size": 6}]),
        refused: "msearch search 2: size 6 exceeds",
        both: true,
    });
    forms.push(Form {
        name: "msearch aggs",
        method: "POST",
        path: "/logs-*/_msearch",
        ndjson: true,
        body: json!([{}, {"size": 0, "aggs": {"u": {"terms": {"field": "user", "size": 21}}}}]),
        refused: "max_buckets 20",
        both: true,
    });
    forms.push(Form {
        name: "async search",
        method: "POST",
        path: "/logs-*/_async_search?size=6",
        ndjson: false,
        body: Value::Null,
        refused: "size 6 exceeds",
        both: false,
    });
    forms
}

/// The same forms within the limits (the backend answers them, where it has the feature).
fn within_limit_forms() -> Vec<Form> {
    vec![
        form("uri size", "GET", "/logs-*/_search?size=5", Value::Null, ""),
        form(
            "uri from",
            "GET",
            "/logs-*/_search?size=4&from=1",
            Value::Null,
            "",
        ),
        form(
            "body size",
            "POST",
            "/logs-*/_search",
            json!({"size": 2, "from": 3}),
            "",
        ),
        form(
            "scroll",
            "POST",
            "/logs-*/_search?scroll=1m",
            json!({"size": 5}),
            "",
        ),
        form(
            "terms",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"u": {"terms": {"field": "user", "size": 20}}}}),
            "",
        ),
        form(
            "nested terms",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "tenant", "size": 2}, "aggs": {"u": {"terms": {"field": "user", "size": 9}}}}}}),
            "",
        ),
        form(
            "histogram",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"h": {"histogram": {"field": "n", "interval": 1, "min_doc_count": 1, "extended_bounds": {"min": 1, "max": 20}}}}}),
            "",
        ),
        form(
            "top_hits",
            "POST",
            "/logs-*/_search",
            json!({"size": 0, "aggs": {"t": {"terms": {"field": "tenant", "size": 2}, "aggs": {"h": {"top_hits": {"size": 5}}}}}}),
            "",
        ),
        form(
            "count",
            "POST",
            "/logs-*/_count",
            json!({"query": {"match_all": {}}}),
            "",
        ),
    ]
}

async fn send_form(gw: &Esgate, secret: &str, f: &Form) -> (u16, Value) {
    if f.ndjson {
        let mut text = String::new();
        for line in f.body.as_array().expect("msearch lines") {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let auth = format!("Bearer {secret}");
        let r = support::http::send(
            f.method,
            &gw.url(f.path),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/x-ndjson"),
            ],
            text.into_bytes(),
        )
        .await
        .expect("esgate answers");
        (r.status.as_u16(), r.json())
    } else {
        gw.call(secret, f.method, f.path, f.body.clone(), &[]).await
    }
}

/// Every guard in every form: a 400 naming the limit, nothing but lookups reaching the
/// backend; within the limits, answers. Then `search_timeout` as the backend receives it.
async fn guards_on(backend: &Backend) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = tenant_a(
        &gw,
        json!({"max_size": 5, "max_buckets": 20, "search_timeout": "1500ms"}),
    )
    .await;
    for f in over_limit_forms() {
        relay.take();
        let (status, body) = send_form(&gw, &secret, &f).await;
        assert_eq!(status, 400, "{}: {body}", f.name);
        assert!(reason(&body).contains(f.refused), "{}: {body}", f.name);
        assert_eq!(
            body["error"]["type"], "illegal_argument_exception",
            "{}",
            f.name
        );
        let forwarded: Vec<_> = relay.take_forwarded();
        assert!(
            forwarded.is_empty(),
            "{}: reached the backend: {forwarded:?}",
            f.name
        );
    }
    for f in within_limit_forms().into_iter().filter(|f| f.both) {
        let (status, body) = send_form(&gw, &secret, &f).await;
        assert_eq!(status, 200, "{}: {body}", f.name);
        if let Some(hits) = body["hits"]["hits"].as_array() {
            assert!(hits.len() <= 5, "{}", f.name);
        }
    }

    // A point in time (each backend's own form) and a scroll: the search that opens or uses
    // them is guarded; scroll pages keep the first page's size.
    let mut pit_id = None;
    for (path, field) in [
        ("/logs-*/_pit?keep_alive=1m", "id"),
        ("/logs-*/_search/point_in_time?keep_alive=1m", "pit_id"),
    ] {
        let (status, body) = gw.call(&secret, "POST", path, Value::Null, &[]).await;
        if status == 200 {
            pit_id = body[field].as_str().map(str::to_owned);
        }
    }
    let pit_id = pit_id.expect("one point-in-time form works");
    let (status, body) = gw
        .call(
            &secret,
            "POST",
            "/_search",
            json!({"size": 6, "pit": {"id": pit_id}}),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(reason(&body).contains("size 6 exceeds"), "{body}");
    let (status, body) = gw
        .call(
            &secret,
            "POST",
            "/_search",
            json!({"size": 5, "pit": {"id": pit_id}}),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, first) = gw
        .call(
            &secret,
            "POST",
            "/logs-*/_search?scroll=1m",
            json!({"size": 4}),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, page) = gw
        .call(
            &secret,
            "POST",
            "/_search/scroll",
            json!({"scroll": "1m", "scroll_id": first["_scroll_id"]}),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let n = page["hits"]["hits"].as_array().map_or(0, Vec::len);
    assert!(
        (1..=4).contains(&n),
        "a scroll page keeps the first size: {n}"
    );

    // search_timeout: what the backend receives, for a search with a longer URI timeout, a
    // search with a shorter body timeout, and each msearch line.
    relay.take();
    let (status, _) = gw
        .call(
            &secret,
            "POST",
            "/logs-*/_search?timeout=1h",
            json!({"size": 1}),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = gw
        .call(
            &secret,
            "POST",
            "/logs-*/_search",
            json!({"size": 1, "timeout": "200ms"}),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let msearch = Form {
        name: "msearch timeout",
        method: "POST",
        path: "/_msearch",
        ndjson: true,
        body: json!([{"index": "logs-*"}, {"size": 1, "timeout": "1m"}, {"index": "logs-a"}, {"size": 1}]),
        refused: "",
        both: true,
    };
    assert_eq!(send_form(&gw, &secret, &msearch).await.0, 200);
    let sent: Vec<_> = relay.take_forwarded();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(!sent[0].target.contains("timeout"), "{}", sent[0].target);
    let first: Value = serde_json::from_slice(&sent[0].body).expect("json");
    assert_eq!(first["timeout"], "1500ms");
    let second: Value = serde_json::from_slice(&sent[1].body).expect("json");
    assert_eq!(second["timeout"], "200ms");
    let lines: Vec<Value> = sent[2]
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect();
    assert_eq!(lines[1]["timeout"], "1500ms");
    assert_eq!(lines[3]["timeout"], "1500ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guard_holds_in_every_search_form_on_osmem() {
    guards_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guard_holds_in_every_search_form_on_noida() {
    guards_on(&fixture::seeded_noida()).await;
}

/// `[policies.limits]` gives every token its defaults; a token's own limit overrides one;
/// a PATCH changes them at once, and clearing them falls back to the defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_defaults_apply_and_limits_are_patchable() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "[policies.limits]\nmax_size = 3\n").await;
    let (id, secret) = tenant_a(&gw, json!({})).await;
    let search = |size: u64| {
        let (gw, secret) = (&gw, secret.clone());
        async move {
            gw.call(
                &secret,
                "POST",
                "/logs-*/_search",
                json!({ "size": size }),
                &[],
            )
            .await
        }
    };
    assert_eq!(search(3).await.0, 200);
    let (status, body) = search(4).await;
    assert_eq!(status, 400);
    assert!(reason(&body).contains("max_size 3"), "{body}");
    // The token's own limit overrides the default.
    let (status, view) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"limits": {"max_size": 8}})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["limits"], json!({"max_size": 8}));
    assert_eq!(search(8).await.0, 200);
    assert!(reason(&search(9).await.1).contains("max_size 8"));
    // Cleared: the default again.
    let (status, _) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"limits": null})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(reason(&search(4).await.1).contains("max_size 3"));
    // A bad limit is refused, naming the field.
    let (status, body) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"limits": {"burst": 0}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(reason(&body).contains("limits.burst"), "{body}");
    // A rate limit set by PATCH applies to the next request.
    gw.admin(
        "PATCH",
        &format!("/tokens/{id}"),
        Some(json!({"limits": {"requests_per_second": 1, "burst": 1}})),
    )
    .await;
    assert_eq!(search(1).await.0, 200);
    assert_eq!(search(1).await.0, 429);
}

/// A scroll's open through esgate: the status and the answer.
async fn open_scroll(gw: &Esgate, secret: &str) -> (u16, Value) {
    gw.call(
        secret,
        "POST",
        "/logs-*/_search?scroll=1m",
        json!({"size": 1}),
        &[],
    )
    .await
}

/// A scroll's next page through esgate, kept alive a minute: the status and the answer.
async fn next_page(gw: &Esgate, secret: &str, id: &str) -> (u16, Value) {
    gw.call(
        secret,
        "POST",
        "/_search/scroll",
        json!({"scroll": "1m", "scroll_id": id}),
        &[],
    )
    .await
}

/// The admin API on a token's `limits.<key>`: values out of range refused (400) naming the
/// key, then the token limited to 4.
async fn limited_to_four(gw: &Esgate, id: &str, key: &str) {
    for bad in [json!(0), json!(1_000_001), json!("3"), json!(-1)] {
        let (status, body) = gw
            .admin(
                "PATCH",
                &format!("/tokens/{id}"),
                Some(json!({"limits": {key: bad}})),
            )
            .await;
        assert_eq!(status, 400, "{key} {bad}: {body}");
        assert!(
            reason(&body).contains(&format!("limits.{key}")),
            "{key} {bad}: {body}"
        );
    }
    let (status, view) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"limits": {key: 4}})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["limits"], json!({key: 4}));
}

/// Opens scrolls until esgate refuses one: the ids of those opened (`opens_until_refused`).
async fn open_until_refused(gw: &Esgate, relay: &Relay, secret: &str) -> Vec<String> {
    let open = (
        "/logs-*/_search?scroll=1m",
        json!({"size": 1}),
        "_scroll_id",
    );
    opens_until_refused(gw, relay, secret, open, "max_open_scrolls").await
}

/// Sends `open` (path, body and the answer's id field) as `secret` until esgate refuses it:
/// the ids of those opened. The refusal is esgate's (429 `es_rejected_execution_exception`
/// naming `limit`, with `Retry-After`: the first of the token's contexts is counted for its
/// keep-alive, a minute here at most, and the reaper's minute) and nothing of it reached the
/// backend.
async fn opens_until_refused(
    gw: &Esgate,
    relay: &Relay,
    secret: &str,
    (path, body, field): (&str, Value, &str),
    limit: &str,
) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        relay.take();
        let r = gw.call_raw(secret, "POST", path, body.clone(), &[]).await;
        if r.status == 429 {
            let after = retry_after(&r, limit);
            assert!((1..=120).contains(&after), "{after}");
            let forwarded = relay.take_forwarded();
            assert!(forwarded.is_empty(), "reached the backend: {forwarded:?}");
            return ids;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()[field].as_str().expect("an id").to_owned());
        assert!(ids.len() <= 10, "no limit: every open reached the backend");
    }
}

/// `max_open_scrolls` end to end: a token's own limit over the `[policies.limits]` default;
/// opens up to it pass, the next is 429 and never reaches the backend, while searches that do
/// not scroll and next pages still pass; a clear frees a place, and so does a next page the
/// backend answers 404 (its scroll gone); the admin API accepts and refuses the key.
async fn open_scrolls_on(backend: &Backend) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "[policies.limits]\nmax_open_scrolls = 2\n").await;
    let (id, secret) = tenant_a(&gw, json!({"max_open_scrolls": 3})).await;
    let (_, by_default) = tenant_a(&gw, json!({})).await;

    let mut ids = open_until_refused(&gw, &relay, &secret).await;
    assert_eq!(ids.len(), 3, "the token's own limit");
    // Searches that do not scroll, and the token's scrolls' next pages, pass.
    let (status, body) = gw
        .call(&secret, "POST", "/logs-*/_search", json!({"size": 1}), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, page) = next_page(&gw, &secret, &ids[0]).await;
    assert_eq!(status, 200, "{page}");
    ids[0] = page["_scroll_id"].as_str().expect("an id").to_owned();
    // Another token holds its own count, under the default.
    assert_eq!(open_until_refused(&gw, &relay, &by_default).await.len(), 2);

    // A clear frees one place.
    let (status, body) = gw
        .call(
            &secret,
            "DELETE",
            "/_search/scroll",
            json!({"scroll_id": [ids[0]]}),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(open_until_refused(&gw, &relay, &secret).await.len(), 1);

    // The backend loses every scroll (cleared behind esgate's back): a next page answered
    // 404 frees that scroll's place.
    let direct = support::http::send(
        "DELETE",
        &format!("{}/_search/scroll", backend.url()),
        &[("content-type", "application/json")],
        serde_json::to_vec(&json!({"scroll_id": "_all"})).unwrap(),
    )
    .await
    .expect("the backend answers");
    assert!(direct.status.is_success(), "{}", direct.text());
    let (status, body) = next_page(&gw, &secret, &ids[1]).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(open_until_refused(&gw, &relay, &secret).await.len(), 1);

    // The admin API: refused out of range, naming the key; a new limit applies at once.
    limited_to_four(&gw, &id, "max_open_scrolls").await;
    assert_eq!(open_until_refused(&gw, &relay, &secret).await.len(), 1);
    // Its own limit cleared, the token is under the default again (it holds four).
    let (status, _) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"limits": null})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(open_scroll(&gw, &secret).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_scrolls_are_limited_per_token_on_osmem() {
    open_scrolls_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_scrolls_are_limited_per_token_on_noida() {
    open_scrolls_on(&fixture::seeded_noida()).await;
}

/// The value of `name` in a forwarded request's query string, as esgate sent it.
fn forwarded_param(target: &str, name: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// attack25 (M, availability): how many searches and shard requests one request runs at once
/// reaches the backend as at most Elasticsearch's own defaults (5 shard requests per node, 10
/// searches), whatever the client asks, so one request of a token limited to `max_concurrent`
/// requests cannot fill the nodes' search thread pools; a smaller value passes as it is, the
/// answers are the same. A collapse asking more than 10 group searches at once is refused and
/// never reaches the backend.
async fn concurrency_on(backend: &Backend) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = tenant_a(&gw, json!({"max_concurrent": 2})).await;
    for (asked, sent) in [("1000", "5"), ("2147483647", "5"), ("3", "3")] {
        relay.take();
        let path = format!("/logs-*/_search?max_concurrent_shard_requests={asked}");
        let (status, body) = gw
            .call(&secret, "POST", &path, json!({"size": 1}), &[])
            .await;
        assert_eq!(status, 200, "{path}: {body}");
        let forwarded = relay.take_forwarded();
        assert_eq!(forwarded.len(), 1, "{forwarded:?}");
        assert_eq!(
            forwarded_param(&forwarded[0].target, "max_concurrent_shard_requests").as_deref(),
            Some(sent),
            "{path}: {}",
            forwarded[0].target
        );
    }

    let lines = "{\"index\":\"logs-*\"}\n{\"size\":1}\n".repeat(3);
    for (query, searches, shards) in [
        (
            "max_concurrent_searches=2000&max_concurrent_shard_requests=256",
            "10",
            "5",
        ),
        (
            "max_concurrent_searches=2&max_concurrent_shard_requests=1",
            "2",
            "1",
        ),
    ] {
        relay.take();
        let auth = format!("Bearer {secret}");
        let r = support::http::send(
            "POST",
            &gw.url(&format!("/_msearch?{query}")),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/x-ndjson"),
            ],
            lines.clone().into_bytes(),
        )
        .await
        .expect("esgate answers");
        assert_eq!(r.status.as_u16(), 200, "{query}: {}", r.text());
        let answer = r.json();
        let items = answer["responses"].as_array().expect("responses");
        assert_eq!(items.len(), 3, "{answer}");
        for item in items {
            assert!(item.get("error").is_none(), "{query}: {item}");
        }
        let forwarded = relay.take_forwarded();
        assert_eq!(forwarded.len(), 1, "{forwarded:?}");
        let target = &forwarded[0].target;
        assert_eq!(
            forwarded_param(target, "max_concurrent_searches").as_deref(),
            Some(searches),
            "{target}"
        );
        assert_eq!(
            forwarded_param(target, "max_concurrent_shard_requests").as_deref(),
            Some(shards),
            "{target}"
        );
    }

    let collapse = |n: u64| {
        json!({"size": 2, "query": {"match_all": {}}, "collapse": {"field": "user",
            "inner_hits": {"name": "same_user", "size": 1},
            "max_concurrent_group_searches": n}})
    };
    relay.take();
    let (status, body) = gw
        .call(&secret, "POST", "/logs-*/_search", collapse(1000), &[])
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        reason(&body).contains("max_concurrent_group_searches"),
        "{body}"
    );
    let forwarded = relay.take_forwarded();
    assert!(forwarded.is_empty(), "reached the backend: {forwarded:?}");
    let (status, body) = gw
        .call(&secret, "POST", "/logs-*/_search", collapse(10), &[])
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_parameters_reach_the_backend_bounded_on_osmem() {
    concurrency_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_parameters_reach_the_backend_bounded_on_noida() {
    concurrency_on(&fixture::seeded_noida()).await;
}

/// attack26 (M, availability): a percentile sketch's size reaches the backend bounded. Each
/// bucket's t-digest or HDR histogram is allocated outside the backends' circuit breakers
/// (OpenSearch 3.4+ allocates about 232 bytes times `compression` when a digest is made, an
/// empty result's too), so one search with `compression: 100000000` took a node's heap. Above
/// the bound (compression 1000, HDR digits 3) it is refused (403) and never forwarded, in a
/// search body and in an msearch line alike; within it, forwarded as it is (noida has no
/// `percentiles`: what it answers is not asserted).
async fn percentile_sketches_on(backend: &Backend) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = tenant_a(&gw, json!({})).await;
    let aggs = |agg: Value| json!({"size": 0, "aggs": {"p": agg}});
    let over = [
        json!({"percentiles": {"field": "n", "tdigest": {"compression": 100000000}}}),
        json!({"percentile_ranks": {"field": "n", "values": [3], "tdigest": {"compression": 1e6}}}),
        json!({"percentiles": {"field": "n", "hdr": {"number_of_significant_value_digits": 5}}}),
        json!({"boxplot": {"field": "n", "compression": 1e9}}),
        json!({"median_absolute_deviation": {"field": "n", "compression": "10000000"}}),
    ];
    for agg in &over {
        relay.take();
        let (status, body) = gw
            .call(&secret, "POST", "/logs-*/_search", aggs(agg.clone()), &[])
            .await;
        assert_eq!(status, 403, "{agg}: {body}");
        let why = reason(&body);
        assert!(
            why.contains("compression") || why.contains("number_of_significant_value_digits"),
            "{body}"
        );
        let line = format!("{{\"index\":\"logs-*\"}}\n{}\n", aggs(agg.clone()));
        let auth = format!("Bearer {secret}");
        let r = support::http::send(
            "POST",
            &gw.url("/_msearch"),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/x-ndjson"),
            ],
            line.into_bytes(),
        )
        .await
        .expect("esgate answers");
        let refused =
            r.status.as_u16() == 403 || r.json()["responses"][0]["status"].as_u64() == Some(403);
        assert!(refused, "{agg}: {} {}", r.status, r.text());
        let forwarded = relay.take_forwarded();
        assert!(
            forwarded.is_empty(),
            "{agg} reached the backend: {forwarded:?}"
        );
    }
    let within = json!({"percentiles": {"field": "n", "percents": [50],
        "tdigest": {"compression": 200}}});
    relay.take();
    let (status, body) = gw
        .call(&secret, "POST", "/logs-*/_search", aggs(within), &[])
        .await;
    assert_eq!(relay.take_forwarded().len(), 1, "{status} {body}");
    if backend.flavor() == Flavor::Osmem {
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentile_sketches_reach_the_backend_bounded_on_osmem() {
    percentile_sketches_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentile_sketches_reach_the_backend_bounded_on_noida() {
    percentile_sketches_on(&fixture::seeded_noida()).await;
}

/// The point-in-time forms of `backend`'s dialect: the open's path on `logs-*` (without its
/// `keep_alive`), the answer's id field, and a close of `id` (path and body).
struct PitForms {
    open: &'static str,
    field: &'static str,
    close: fn(&str) -> (&'static str, Value),
}

fn pit_forms(backend: &Backend) -> PitForms {
    match backend.flavor() {
        Flavor::Osmem => PitForms {
            open: "/logs-*/_search/point_in_time",
            field: "pit_id",
            close: |id| ("/_search/point_in_time", json!({ "pit_id": [id] })),
        },
        Flavor::Noida => PitForms {
            open: "/logs-*/_pit",
            field: "id",
            close: |id| ("/_pit", json!({ "id": id })),
        },
    }
}

/// Opens points in time kept alive for `keep_alive` until esgate refuses one: the ids of
/// those opened (`opens_until_refused`).
async fn open_pits_until_refused(
    gw: &Esgate,
    relay: &Relay,
    forms: &PitForms,
    secret: &str,
    keep_alive: &str,
) -> Vec<String> {
    let path = format!("{}?keep_alive={keep_alive}", forms.open);
    let open = (path.as_str(), Value::Null, forms.field);
    opens_until_refused(gw, relay, secret, open, "max_open_pits").await
}

/// The points in time the backend holds open, when it says (osmem lists them; noida does not).
async fn backend_pits(backend: &Backend) -> Option<usize> {
    if backend.flavor() != Flavor::Osmem {
        return None;
    }
    let r = support::http::send(
        "GET",
        &format!("{}/_search/point_in_time/_all", backend.url()),
        &[],
        Vec::new(),
    )
    .await
    .expect("the backend answers");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["pits"].as_array().map(Vec::len)
}

/// `max_open_pits` end to end (pit25): neither backend enforces a limit of its own (osmem
/// reports `search.max_open_pit_context` 300 and opens past it; noida has none), so without
/// esgate's a `read` token opens points in time without end. A token's own limit over the
/// `[policies.limits]` default; opens up to it pass and reach the backend, the next is 429 and
/// never does; searches on them pass, and scrolls are counted apart; a close frees a place, and
/// so does a search the backend answers 404 (its point in time expired); the admin API accepts
/// and refuses the key.
async fn open_pits_on(backend: &Backend) {
    let forms = pit_forms(backend);
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(
        &[relay.url()],
        "[policies.limits]\nmax_open_pits = 2\nmax_open_scrolls = 1\n",
    )
    .await;
    let (id, secret) = tenant_a(&gw, json!({"max_open_pits": 3})).await;
    let (_, by_default) = tenant_a(&gw, json!({})).await;

    let before = backend_pits(backend).await;
    let mut ids = open_pits_until_refused(&gw, &relay, &forms, &secret, "1m").await;
    assert_eq!(ids.len(), 3, "the token's own limit");
    if let Some(before) = before {
        assert_eq!(
            backend_pits(backend).await,
            Some(before + 3),
            "the backend holds what the token opened, and no more"
        );
    }
    // Searches on them pass (with a keep-alive and without), and the backend may name a new
    // id; the token's scrolls have a count of their own.
    for keep_alive in [Some("1m"), None] {
        let mut pit = json!({ "id": ids[0] });
        if let Some(k) = keep_alive {
            pit["keep_alive"] = json!(k);
        }
        let (status, page) = gw
            .call(
                &secret,
                "POST",
                "/_search",
                json!({"size": 1, "pit": pit}),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{page}");
        if let Some(next) = page["pit_id"].as_str() {
            ids[0] = next.to_owned();
        }
    }
    assert_eq!(open_scroll(&gw, &secret).await.0, 200);
    assert_eq!(open_scroll(&gw, &secret).await.0, 429);
    // Another token holds its own count, under the default.
    assert_eq!(
        open_pits_until_refused(&gw, &relay, &forms, &by_default, "1m")
            .await
            .len(),
        2
    );

    // A close frees one place.
    let (path, body) = (forms.close)(&ids[0]);
    let (status, closed) = gw.call(&secret, "DELETE", path, body, &[]).await;
    assert_eq!(status, 200, "{closed}");
    let short = open_pits_until_refused(&gw, &relay, &forms, &secret, "1s").await;
    assert_eq!(short.len(), 1);
    // That one expires on the backend (esgate still counts it for the reaper's minute): a
    // search on it answered 404 frees its place.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, body) = gw
        .call(
            &secret,
            "POST",
            "/_search",
            json!({"size": 1, "pit": {"id": short[0]}}),
            &[],
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        open_pits_until_refused(&gw, &relay, &forms, &secret, "1m")
            .await
            .len(),
        1
    );

    // The admin API: refused out of range, naming the key; a new limit applies at once.
    limited_to_four(&gw, &id, "max_open_pits").await;
    assert_eq!(
        open_pits_until_refused(&gw, &relay, &forms, &secret, "1m")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_pits_are_limited_per_token_on_osmem() {
    open_pits_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_pits_are_limited_per_token_on_noida() {
    open_pits_on(&fixture::seeded_noida()).await;
}

/// The seconds a refused open says to wait (`Retry-After`), asserting the refusal is esgate's
/// limit.
fn retry_after(r: &support::http::Reply, limit: &str) -> u64 {
    assert_eq!(r.status, 429, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["error"]["type"], "es_rejected_execution_exception",
        "{body}"
    );
    assert!(reason(&body).contains(limit), "{body}");
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After")
}

/// A search on a point in time (a scroll's next page) keeps it alive on the backend for its
/// keep-alive once it reaches a shard, whatever its answer: Elasticsearch and OpenSearch take
/// the longer keep-alive as each shard takes the context (`ReaderContext::markAsUsed`), before
/// the query is parsed and run, so a query that fails on the shards (a sort on a text field:
/// fielddata is disabled, 400), a circuit breaker (429), a node's error (5xx) or an answer that
/// never comes back still kept the context alive. esgate kept it alive in the count only on a
/// 2xx (attack25c, M: availability): a point in time opened for `1s` and searched with
/// `pit.keep_alive: 24h` and a failing query was held a day by the backend and counted for a
/// minute, so a `read` token held `max_open_pits` more every minute. Shown against the
/// recording backend by the refusal's `Retry-After` (when the token's point in time stops
/// counting): the backend answers each search with the status given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_search_on_a_context_still_keeps_it_counted_for_its_keep_alive() {
    use support::recording::Answer;
    let es = elasticsearch_8_with_a_pit();
    es.script_json(
        "POST",
        "/logs-a/_search",
        200,
        json!({"_scroll_id": "c2Nyb2xsLWlk", "hits": {"hits": [{"_id": "1"}]}}),
    );
    let failed = |status: u16, kind: &str| {
        Answer::json(
            status,
            json!({"error": {"type": kind, "reason": "all shards failed", "phase": "query",
                             "root_cause": [{"type": kind, "reason": "failed"}]},
                   "status": status}),
        )
    };
    let gw = Esgate::start(
        &[es.url()],
        "[policies.limits]\nmax_open_pits = 1\nmax_open_scrolls = 1\n",
    )
    .await;
    let (_, secret) = tenant_a(&gw, json!({})).await;

    // A point in time opened for a second counts for it and the reaper's minute.
    let open_pit = || {
        gw.call_raw(
            &secret,
            "POST",
            "/logs-a/_pit?keep_alive=1s",
            Value::Null,
            &[],
        )
    };
    let opened = open_pit().await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let pit = opened.json()["id"].as_str().expect("an id").to_owned();
    assert!(retry_after(&open_pit().await, "max_open_pits") <= 61);
    let searches = [
        (400, "search_phase_execution_exception", 10),
        (429, "circuit_breaking_exception", 20),
        (500, "search_phase_execution_exception", 30),
        (503, "search_phase_execution_exception", 40),
    ];
    for (status, kind, minutes) in searches {
        es.script("POST", "/_search", failed(status, kind));
        let (got, body) = gw
            .call(
                &secret,
                "POST",
                "/_search",
                json!({"pit": {"id": pit, "keep_alive": format!("{minutes}m")},
                       "sort": [{"message": "asc"}]}),
                &[],
            )
            .await;
        assert_ne!(got, 200, "{body}");
        let sent = es.requests_to("POST", "/_search");
        assert_eq!(sent.last().map(|r| r.path.as_str()), Some("/_search"));
        assert_eq!(
            sent.last().unwrap().json()["pit"]["keep_alive"],
            json!(format!("{minutes}m")),
            "the search reached the backend"
        );
        es.clear();
        let after = retry_after(&open_pit().await, "max_open_pits");
        assert!(
            after >= minutes * 60,
            "a {status} search kept the point in time {minutes} minutes on the backend; \
             counted {after} s"
        );
    }

    // A scroll's next page alike.
    let (status, opened) = open_scroll(&gw, &secret).await;
    assert_eq!(status, 200, "{opened}");
    let scroll = opened["_scroll_id"].as_str().expect("an id").to_owned();
    es.script(
        "POST",
        "/_search/scroll",
        failed(500, "search_phase_execution_exception"),
    );
    let (got, body) = gw
        .call(
            &secret,
            "POST",
            "/_search/scroll",
            json!({"scroll_id": scroll, "scroll": "50m"}),
            &[],
        )
        .await;
    assert_ne!(got, 200, "{body}");
    let refused = gw
        .call_raw(
            &secret,
            "POST",
            "/logs-*/_search?scroll=1m",
            json!({"size": 1}),
            &[],
        )
        .await;
    assert!(retry_after(&refused, "max_open_scrolls") >= 50 * 60);
}

/// A recording fake Elasticsearch 8 (its banner, which esgate reads the dialect from before
/// it forwards a point-in-time route) with `logs-a`, whose `POST /logs-a/_pit` opens the
/// point in time `cGl0LWlk`.
fn elasticsearch_8_with_a_pit() -> support::recording::Recording {
    use support::recording::Recording;
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    es.banner("8.15.3");
    es.script_json("POST", "/logs-a/_pit", 200, json!({"id": "cGl0LWlk"}));
    es
}

/// rel26: an async search on a point in time names it in its `response.pit_id`, which
/// Elasticsearch may change, as a search's `pit_id` (clients go on with the newest). The count
/// followed a search's new id (pit25) but not an async search's: it kept the old one, so a
/// close with the new id freed no place (the token refused new points in time until the old
/// id's keep-alive ran out) and searches with the new id did not keep it counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_search_on_a_point_in_time_moves_its_count_to_a_new_pit_id() {
    let es = elasticsearch_8_with_a_pit();
    es.script_json(
        "POST",
        "/_async_search",
        200,
        json!({"id": "YXN5bmMtaWQ=", "is_partial": false, "is_running": false,
               "response": {"pit_id": "cGl0LW5ldw==", "hits": {"hits": []}}}),
    );
    es.script_json(
        "DELETE",
        "/_pit",
        200,
        json!({"succeeded": true, "num_freed": 1}),
    );
    let gw = Esgate::start(&[es.url()], "[policies.limits]\nmax_open_pits = 1\n").await;
    let (_, secret) = tenant_a(&gw, json!({})).await;
    let open_pit = || {
        gw.call_raw(
            &secret,
            "POST",
            "/logs-a/_pit?keep_alive=10m",
            Value::Null,
            &[],
        )
    };
    let opened = open_pit().await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let pit = opened.json()["id"].as_str().expect("an id").to_owned();
    retry_after(&open_pit().await, "max_open_pits");

    let (status, answer) = gw
        .call(
            &secret,
            "POST",
            "/_async_search",
            json!({"pit": {"id": pit, "keep_alive": "10m"}, "size": 1}),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let new = answer["response"]["pit_id"].as_str().expect("the new id");
    assert_ne!(new, pit);
    es.clear();
    let (status, closed) = gw
        .call(&secret, "DELETE", "/_pit", json!({"id": new}), &[])
        .await;
    assert_eq!(status, 200, "{closed}");
    let sent = es.requests_to("DELETE", "/_pit");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json(), json!({"id": "cGl0LW5ldw=="}));
    let again = open_pit().await;
    assert_eq!(
        again.status,
        200,
        "the close freed the place: {}",
        again.text()
    );
}

/// rel26: Elasticsearch 8.16+ says whether an async search runs in its answer's
/// `X-Elasticsearch-Async-Is-Running` (`?1`, `?0`); esgate read only the body's `is_running`,
/// and a failed search's 5xx poll whose body is over the 64 KiB esgate reads of an error (the
/// partial hits it carries) said nothing: the search stayed counted as running for its
/// keep-alive (5 days by default). The header is read first now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_search_whose_poll_is_too_long_to_read_is_freed_by_its_header() {
    use support::recording::{Answer, Recording};
    const IS_RUNNING: &str = "x-elasticsearch-async-is-running";
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    let running = json!({"id": "RmFpbGluZ1NlYXJjaA==", "is_partial": true, "is_running": true,
                         "response": {"hits": {"hits": []}}});
    es.script(
        "POST",
        "/",
        Answer::json(200, running).with_header(IS_RUNNING, "?1"),
    );
    let hits: Vec<Value> = (0..400)
        .map(|i| {
            json!({"_index": "logs-a", "_id": i.to_string(),
                        "_source": {"tenant": "a", "message": "x".repeat(200)}})
        })
        .collect();
    let failed = json!({"id": "RmFpbGluZ1NlYXJjaA==", "is_partial": true, "is_running": false,
                        "error": {"type": "search_phase_execution_exception",
                                  "reason": "all shards failed"},
                        "response": {"hits": {"hits": hits}}});
    assert!(failed.to_string().len() > 64 * 1024);
    es.script(
        "GET",
        "/_async_search/",
        Answer::json(503, failed).with_header(IS_RUNNING, "?0"),
    );
    let gw = Esgate::start(
        &[es.url()],
        "[policies.limits]\nmax_running_async_searches = 1\n",
    )
    .await;
    let (_, secret) = tenant_a(&gw, json!({})).await;
    let submit = || {
        gw.call_raw(
            &secret,
            "POST",
            "/logs-*/_async_search?wait_for_completion_timeout=0s",
            json!({"query": {"match_all": {}}}),
            &[],
        )
    };
    let submitted = submit().await;
    assert_eq!(submitted.status, 200, "{}", submitted.text());
    let id = submitted.json()["id"].as_str().expect("an id").to_owned();
    retry_after(&submit().await, "max_running_async_searches");
    let (status, body) = gw
        .call(
            &secret,
            "GET",
            &format!("/_async_search/{id}"),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(status, 503, "{body}");
    let again = submit().await;
    assert_eq!(
        again.status,
        200,
        "the failed search's place is free: {}",
        again.text()
    );
}

/// The async searches of a fake Elasticsearch (`support::recording`: neither test backend has
/// `_async_search`), by backend id; an id it forgot answers 404.
type AsyncSearches = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Search>>>;

/// What the fake's polls say of a search.
#[derive(Clone, Copy, PartialEq)]
enum Search {
    Running,
    Done,
    /// Failed: its poll answers the failure's status (503) with `is_running: false`.
    Failed,
}

/// The backend id of the fake's `n`th running search.
fn running_search_id(n: usize) -> String {
    format!("FmRunningSearch{n:04}QUJDREVGR0gx")
}

/// A recording backend whose submits with `wait_for_completion_timeout=0s` start a search
/// that runs until the test says it is done (`searches`), and whose other submits complete
/// within their wait (no id: nothing stored); polls and status answers say whether it runs, a
/// delete forgets it.
fn async_backend() -> (support::recording::Recording, AsyncSearches) {
    use support::recording::{Answer, Recording};
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    let searches = AsyncSearches::default();
    let answer = |id: Option<&str>, running: bool| {
        let mut body = json!({"is_partial": running, "is_running": running,
            "start_time_in_millis": 1, "expiration_time_in_millis": 2,
            "response": {"took": 1, "timed_out": false,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}});
        if let Some(id) = id {
            body["id"] = json!(id);
        }
        Answer::json(200, body)
    };
    let gone = || {
        Answer::json(
            404,
            json!({"error": {"type": "resource_not_found_exception",
        "reason": "not found"}, "status": 404}),
        )
    };
    {
        let searches = std::sync::Arc::clone(&searches);
        let started = std::sync::atomic::AtomicUsize::new(0);
        es.script_fn("POST", "/", move |r| {
            if r.param("wait_for_completion_timeout").as_deref() != Some("0s") {
                return answer(None, false);
            }
            let n = started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let id = running_search_id(n);
            searches.lock().unwrap().insert(id.clone(), Search::Running);
            answer(Some(&id), true)
        });
    }
    let id_of = |path: &str| path.rsplit('/').next().unwrap_or_default().to_owned();
    for prefix in ["/_async_search/", "/_async_search/status/"] {
        let searches = std::sync::Arc::clone(&searches);
        es.script_fn("GET", prefix, move |r| {
            let id = id_of(&r.path);
            match searches.lock().unwrap().get(&id).copied() {
                Some(Search::Failed) => Answer::json(
                    503,
                    json!({"id": id, "is_partial": true, "is_running": false,
                           "start_time_in_millis": 1, "expiration_time_in_millis": 2,
                           "error": {"type": "search_phase_execution_exception",
                                     "reason": "all shards failed"}}),
                ),
                Some(search) => answer(Some(&id), search == Search::Running),
                None => gone(),
            }
        });
    }
    {
        let searches = std::sync::Arc::clone(&searches);
        es.script_fn("DELETE", "/_async_search/", move |r| {
            match searches.lock().unwrap().remove(&id_of(&r.path)) {
                Some(_) => Answer::json(200, json!({"acknowledged": true})),
                None => gone(),
            }
        });
    }
    (es, searches)
}

/// Posts `body` to `path` until esgate refuses it: the answers of those that passed (200). The
/// refusal is esgate's (429 `es_rejected_execution_exception` naming `limit`, a `Retry-After`
/// in `retry`) and never reached the backend (`reached`, the requests the fake received, does
/// not move).
async fn posts_until_refused(
    gw: &Esgate,
    secret: &str,
    (path, body): (&str, Value),
    (limit, retry): (&str, std::ops::RangeInclusive<u64>),
    reached: impl Fn() -> usize,
) -> Vec<Value> {
    let mut answers = Vec::new();
    loop {
        let before = reached();
        let r = gw.call_raw(secret, "POST", path, body.clone(), &[]).await;
        if r.status == 429 {
            let after = retry_after(&r, limit);
            assert!(retry.contains(&after), "{after}");
            assert_eq!(reached(), before, "the refused request reached the backend");
            return answers;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        answers.push(r.json());
        assert!(
            answers.len() <= 10,
            "no limit: every request reached the backend"
        );
    }
}

/// Submits searches that run on in the background until esgate refuses one: the sealed ids of
/// those submitted. The refusal is esgate's (429 `es_rejected_execution_exception` naming
/// `max_running_async_searches`, a short `Retry-After`) and never reached the backend.
async fn submit_until_refused(
    gw: &Esgate,
    es: &support::recording::Recording,
    secret: &str,
) -> Vec<String> {
    let submit = (
        "/logs-*/_async_search?wait_for_completion_timeout=0s",
        json!({"query": {"match_all": {}}}),
    );
    let reached = || es.requests_to("POST", "/logs-a/_async_search").len();
    posts_until_refused(
        gw,
        secret,
        submit,
        ("max_running_async_searches", 1..=5),
        reached,
    )
    .await
    .into_iter()
    .map(|answer| {
        assert_eq!(answer["is_running"], json!(true), "{answer}");
        answer["id"].as_str().expect("an id").to_owned()
    })
    .collect()
}

/// `max_running_async_searches` end to end (async25): a submit with
/// `wait_for_completion_timeout=0s` answers at once and its search runs on in the background,
/// so a token held to one request at a time (`max_concurrent: 1`) started searches without
/// end. A token's own limit over the `[policies.limits]` default: submits up to it pass, the
/// next is 429 and never reaches the backend; submits whose search completed within the wait
/// hold no place; a poll that finds a search still running keeps its place, one that finds it
/// done frees it, as do a status saying so, a delete and a poll answered 404 (the backend
/// forgot it); another token has its own count; the admin API accepts and refuses the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_async_searches_are_limited_per_token() {
    let (es, searches) = async_backend();
    let gw = Esgate::start(
        &[es.url()],
        "[policies.limits]\nmax_running_async_searches = 2\n",
    )
    .await;
    let (id, secret) = tenant_a(
        &gw,
        json!({"max_running_async_searches": 3, "max_concurrent": 1}),
    )
    .await;
    let (_, by_default) = tenant_a(&gw, json!({})).await;

    // Searches that complete within their wait hold no place.
    for _ in 0..5 {
        let (status, v) = gw
            .call(&by_default, "POST", "/logs-*/_async_search", json!({}), &[])
            .await;
        assert_eq!((status, &v["is_running"]), (200, &json!(false)), "{v}");
    }
    assert_eq!(submit_until_refused(&gw, &es, &by_default).await.len(), 2);
    let ids = submit_until_refused(&gw, &es, &secret).await;
    assert_eq!(ids.len(), 3, "the token's own limit");
    assert_eq!(
        searches.lock().unwrap().len(),
        5,
        "the backend runs exactly those"
    );

    let backend_id = running_search_id;
    let poll = |sealed: &str| format!("/_async_search/{sealed}?keep_alive=1m");
    // A poll that finds it running keeps its place; one that finds it done frees it.
    let (status, v) = gw
        .call(&secret, "GET", &poll(&ids[0]), Value::Null, &[])
        .await;
    assert_eq!((status, &v["is_running"]), (200, &json!(true)), "{v}");
    assert!(submit_until_refused(&gw, &es, &secret).await.is_empty());
    searches.lock().unwrap().insert(backend_id(2), Search::Done);
    let (status, v) = gw
        .call(&secret, "GET", &poll(&ids[0]), Value::Null, &[])
        .await;
    assert_eq!((status, &v["is_running"]), (200, &json!(false)), "{v}");
    let again = submit_until_refused(&gw, &es, &secret).await;
    assert_eq!(again.len(), 1, "a poll that found it done freed its place");
    // So does a status answer saying so.
    searches.lock().unwrap().insert(backend_id(3), Search::Done);
    let status_path = format!("/_async_search/status/{}", ids[1]);
    let (status, v) = gw
        .call(&secret, "GET", &status_path, Value::Null, &[])
        .await;
    assert_eq!((status, &v["is_running"]), (200, &json!(false)), "{v}");
    assert_eq!(submit_until_refused(&gw, &es, &secret).await.len(), 1);
    // A delete frees its place.
    let (status, v) = gw
        .call(
            &secret,
            "DELETE",
            &format!("/_async_search/{}", ids[2]),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(submit_until_refused(&gw, &es, &secret).await.len(), 1);
    // A poll the backend answers 404 (it forgot the search) frees it.
    searches.lock().unwrap().remove(&backend_id(5));
    let (status, v) = gw
        .call(&secret, "GET", &poll(&again[0]), Value::Null, &[])
        .await;
    assert_eq!(status, 404, "{v}");
    let last = submit_until_refused(&gw, &es, &secret).await;
    assert_eq!(last.len(), 1);
    // A poll answered with the search's failure (a 5xx, whose body says it no longer runs)
    // frees it too.
    // (The fake's ninth search: two of the default token's, three, then one after each place
    // freed.)
    searches
        .lock()
        .unwrap()
        .insert(backend_id(8), Search::Failed);
    let (status, v) = gw
        .call(&secret, "GET", &poll(&last[0]), Value::Null, &[])
        .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(submit_until_refused(&gw, &es, &secret).await.len(), 1);

    // The admin API: refused out of range, naming the key whole; a new limit applies at once.
    for bad in [json!(0), json!(1_000_001), json!("3"), json!(-1)] {
        let (status, body) = gw
            .admin(
                "PATCH",
                &format!("/tokens/{id}"),
                Some(json!({"limits": {"max_running_async_searches": bad}})),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            reason(&body).contains("limits.max_running_async_searches"),
            "{bad}: {body}"
        );
    }
    let (status, view) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"limits": {"max_running_async_searches": 4, "max_concurrent": 1}})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["limits"],
        json!({"max_running_async_searches": 4, "max_concurrent": 1})
    );
    assert_eq!(submit_until_refused(&gw, &es, &secret).await.len(), 1);
}

/// The SQL cursors of a fake Elasticsearch (`support::recording`: neither test backend has
/// `_sql`), by backend cursor: the pages still to come, that cursor's included. A cursor it
/// forgot answers 404, as Elasticsearch does once the point in time behind it is gone.
type SqlCursors = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// The backend cursor of the fake's `n`th query that opened one.
fn sql_cursor_id(n: usize) -> String {
    format!("Y3Vyc29y{n:04}")
}

/// A recording backend whose SQL queries with `fetch_size: 1` answer a first page with a
/// cursor good for two more pages (each page names the next cursor; the last names none:
/// Elasticsearch closes the point in time then), whose other queries answer their one page
/// without a cursor, and whose close forgets a cursor. It also opens points in time on
/// `logs-a` (with the banner esgate reads the dialect from).
fn sql_backend() -> (support::recording::Recording, SqlCursors) {
    use support::recording::{Answer, Recording};
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    es.script_fn("GET", "/", |r| {
        let (status, body) = if r.path == "/" {
            (200, json!({"version": {"number": "8.15.3"}}))
        } else {
            (404, json!({"error": "nothing scripted", "status": 404}))
        };
        Answer::json(status, body)
    });
    es.script_json("POST", "/logs-a/_pit", 200, json!({"id": "cGl0LWlk"}));
    let cursors = SqlCursors::default();
    let gone = || {
        Answer::json(
            404,
            json!({"error": {"type": "search_context_missing_exception",
                             "reason": "No search context found"}, "status": 404}),
        )
    };
    let page = |cursor: Option<&str>| {
        let mut body = json!({"columns": [{"name": "n", "type": "long"}], "rows": [[1]]});
        if let Some(cursor) = cursor {
            body["cursor"] = json!(cursor);
        }
        Answer::json(200, body)
    };
    {
        let cursors = std::sync::Arc::clone(&cursors);
        let opened = std::sync::atomic::AtomicUsize::new(0);
        es.script_fn("POST", "/_sql", move |r| {
            let body = r.json();
            let mut held = cursors.lock().unwrap();
            if let Some(cursor) = body["cursor"].as_str() {
                let Some(left) = held.remove(cursor) else {
                    return gone();
                };
                if left == 1 {
                    return page(None);
                }
                let next = format!("{cursor}x");
                held.insert(next.clone(), left - 1);
                return page(Some(&next));
            }
            if body["fetch_size"] != json!(1) {
                return page(None);
            }
            let n = opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.insert(sql_cursor_id(n), 2);
            page(Some(&sql_cursor_id(n)))
        });
    }
    {
        let cursors = std::sync::Arc::clone(&cursors);
        es.script_fn("POST", "/_sql/close", move |r| {
            let cursor = r.json()["cursor"].as_str().unwrap_or_default().to_owned();
            match cursors.lock().unwrap().remove(&cursor) {
                Some(_) => Answer::json(200, json!({"succeeded": true})),
                None => gone(),
            }
        });
    }
    (es, cursors)
}

/// The SQL queries (not closes) the fake received.
fn sql_queries(es: &support::recording::Recording) -> usize {
    es.requests_to("POST", "/_sql")
        .iter()
        .filter(|r| r.path == "/_sql")
        .count()
}

/// Opens SQL cursors (`fetch_size: 1`, `page_timeout: 20m`) until esgate refuses one: the
/// sealed cursors of those opened. The refusal is esgate's (429 `es_rejected_execution_exception`
/// naming `max_open_pits`, `Retry-After` when the first of the token's cursors stops counting:
/// its 20 minutes and the reaper's minute) and never reached the backend.
async fn sql_cursors_until_refused(
    gw: &Esgate,
    es: &support::recording::Recording,
    secret: &str,
) -> Vec<String> {
    let query = (
        "/_sql",
        json!({"query": "SELECT n FROM \"logs-a\"", "fetch_size": 1, "page_timeout": "20m"}),
    );
    let limit = ("max_open_pits", 20 * 60..=21 * 60 + 1);
    posts_until_refused(gw, secret, query, limit, || sql_queries(es))
        .await
        .into_iter()
        .map(|answer| {
            let cursor = answer["cursor"].as_str().expect("a cursor").to_owned();
            assert!(cursor.starts_with("esgc1_"), "{cursor}");
            cursor
        })
        .collect()
}

/// SQL cursors counted with points in time (sql26, M: availability). Elasticsearch 8 pages a
/// SQL query's hits through a point in time on every shard, kept alive for the query's
/// `page_timeout` (a client may ask for a day), so a token held to one request at a time
/// (`max_concurrent: 1`) opened cursors with `fetch_size: 1` without end while scrolls, points
/// in time and async searches were counted. Against the recording fake: queries answered in
/// one page hold no place; queries whose answer carries a cursor take the token's
/// `max_open_pits` places, and the next is 429 and never reaches the backend, as is a point in
/// time's open; a next page passes at the limit and keeps its place; the last page (an answer
/// without a cursor), a close and a page answered 404 each free one; another token has its own
/// count; a `page_timeout` over a day is refused before the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sql_cursors_are_counted_with_points_in_time() {
    let (es, cursors) = sql_backend();
    let gw = Esgate::start(&[es.url()], "[policies.limits]\nmax_open_pits = 3\n").await;
    let (_, secret) = tenant_a(&gw, json!({"max_concurrent": 1})).await;
    let (_, other) = tenant_a(&gw, json!({})).await;
    let sql = |path: &'static str, body: Value| {
        let (gw, secret) = (&gw, secret.clone());
        async move { gw.call(&secret, "POST", path, body, &[]).await }
    };

    // Queries answered in one page hold no place.
    for _ in 0..5 {
        let (status, v) = sql("/_sql", json!({"query": "SELECT n FROM \"logs-a\""})).await;
        assert_eq!(status, 200, "{v}");
        assert!(v.get("cursor").is_none(), "{v}");
    }
    let ids = sql_cursors_until_refused(&gw, &es, &secret).await;
    assert_eq!(ids.len(), 3, "max_open_pits");
    assert_eq!(
        cursors.lock().unwrap().len(),
        3,
        "the backend holds exactly them"
    );
    // They are the token's points in time: an open is refused too, and never forwarded.
    let pit = gw
        .call_raw(
            &secret,
            "POST",
            "/logs-a/_pit?keep_alive=1m",
            Value::Null,
            &[],
        )
        .await;
    retry_after(&pit, "max_open_pits");
    assert!(es.requests_to("POST", "/logs-a/_pit").is_empty());
    // Another token has its own count.
    assert_eq!(sql_cursors_until_refused(&gw, &es, &other).await.len(), 3);

    // A next page passes at the limit and keeps its place, under the cursor its answer names.
    let (status, v) = sql("/_sql", json!({ "cursor": ids[0] })).await;
    assert_eq!(status, 200, "{v}");
    let next = v["cursor"].as_str().expect("a next cursor").to_owned();
    assert!(sql_cursors_until_refused(&gw, &es, &secret)
        .await
        .is_empty());
    // Its last page (no cursor: the backend closed it) frees its place.
    let (status, v) = sql("/_sql", json!({ "cursor": next })).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("cursor").is_none(), "{v}");
    assert_eq!(sql_cursors_until_refused(&gw, &es, &secret).await.len(), 1);
    // A close frees one.
    let (status, v) = sql("/_sql/close", json!({ "cursor": ids[1] })).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(sql_cursors_until_refused(&gw, &es, &secret).await.len(), 1);
    // A page the backend answers 404 (its point in time expired) frees one.
    cursors.lock().unwrap().remove(&sql_cursor_id(2));
    let (status, v) = sql("/_sql", json!({ "cursor": ids[2] })).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(sql_cursors_until_refused(&gw, &es, &secret).await.len(), 1);

    // A `page_timeout` over a day (Elasticsearch's `search.max_keep_alive`) is refused before
    // the backend, for a query and a next page.
    es.clear();
    for body in [
        json!({"query": "SELECT n FROM \"logs-a\"", "fetch_size": 1, "page_timeout": "25h"}),
        json!({"cursor": ids[0], "page_timeout": "86400001ms"}),
    ] {
        let (status, v) = sql("/_sql", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(reason(&v).contains("page_timeout"), "{v}");
    }
    assert_eq!(sql_queries(&es), 0);
}

/// A recording backend whose SQL cursors behave as Elasticsearch 8's: a cursor is the query
/// and the point in time it pages through, so every page names a new cursor and an older
/// cursor of the same query still pages while its point in time lives (a page on it answers
/// the cursor after it again, the same string); a close of any of them closes the point in
/// time. Queries with `fetch_size: 1` open one (three pages in all), other queries answer one
/// page. The set holds the points in time open.
fn sql_pit_backend() -> (
    support::recording::Recording,
    std::sync::Arc<std::sync::Mutex<std::collections::HashSet<usize>>>,
) {
    use support::recording::{Answer, Recording};
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    es.script_fn("GET", "/", |r| {
        let (status, body) = if r.path == "/" {
            (200, json!({"version": {"number": "8.15.3"}}))
        } else {
            (404, json!({"error": "nothing scripted", "status": 404}))
        };
        Answer::json(status, body)
    });
    let pits = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let gone = || {
        Answer::json(
            404,
            json!({"error": {"type": "search_context_missing_exception",
                             "reason": "No search context found"}, "status": 404}),
        )
    };
    let cursor = |pit: usize, page: usize| format!("Y3Vy{pit:04}p{page}");
    let read = |c: &str| -> Option<(usize, usize)> {
        let (pit, page) = c.strip_prefix("Y3Vy")?.split_once('p')?;
        Some((pit.parse().ok()?, page.parse().ok()?))
    };
    let rows = |next: Option<String>| {
        let mut body = json!({"columns": [{"name": "n", "type": "long"}], "rows": [[1]]});
        if let Some(next) = next {
            body["cursor"] = json!(next);
        }
        Answer::json(200, body)
    };
    {
        let pits = std::sync::Arc::clone(&pits);
        let opened = std::sync::atomic::AtomicUsize::new(0);
        es.script_fn("POST", "/_sql", move |r| {
            let body = r.json();
            let mut open = pits.lock().unwrap();
            if let Some(c) = body["cursor"].as_str() {
                let Some((pit, page)) = read(c).filter(|(pit, _)| open.contains(pit)) else {
                    return gone();
                };
                if page == 2 {
                    open.remove(&pit);
                    return rows(None);
                }
                return rows(Some(cursor(pit, page + 1)));
            }
            if body["fetch_size"] != json!(1) {
                return rows(None);
            }
            let pit = opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            open.insert(pit);
            rows(Some(cursor(pit, 0)))
        });
    }
    {
        let pits = std::sync::Arc::clone(&pits);
        es.script_fn("POST", "/_sql/close", move |r| {
            let c = r.json()["cursor"].as_str().unwrap_or_default().to_owned();
            match read(&c).filter(|(pit, _)| pits.lock().unwrap().remove(pit)) {
                Some(_) => Answer::json(200, json!({"succeeded": true})),
                None => gone(),
            }
        });
    }
    (es, pits)
}

/// Attack26d (M: availability): a page on an older cursor of a SQL query. Elasticsearch 8's
/// cursors name the query's point in time and where the page starts, so every page names a
/// new cursor and the older ones stay good while the point in time lives; the count followed
/// the newest only, and a page on an older one (not counted: left alone) kept the point in
/// time alive for its own `page_timeout`, up to a day, while its count ended with the newest
/// cursor's (`1ms` and the reaper's minute): one place opened points in time without end. Now
/// such a page takes a place as a query does (429 at the limit, never forwarded), and a place
/// that comes to name a cursor already counted keeps the longer keep-alive of the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_an_older_sql_cursor_is_counted() {
    let (es, pits) = sql_pit_backend();
    let gw = Esgate::start(&[es.url()], "[policies.limits]\nmax_open_pits = 1\n").await;
    let (_, one) = tenant_a(&gw, json!({})).await;
    let (_, two) = tenant_a(&gw, json!({"max_open_pits": 2})).await;
    let sql = |secret: &str, body: Value| {
        let (gw, secret) = (&gw, secret.to_owned());
        async move { gw.call_raw(&secret, "POST", "/_sql", body, &[]).await }
    };
    let query = |timeout: &str| json!({"query": "SELECT n FROM \"logs-a\"", "fetch_size": 1, "page_timeout": timeout});
    let cursor = |r: &support::http::Reply| {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["cursor"].as_str().expect("a cursor").to_owned()
    };

    // One place: a query and its next page, each kept alive for a millisecond.
    let first = cursor(&sql(&one, query("1ms")).await);
    let second = cursor(&sql(&one, json!({"cursor": first, "page_timeout": "1ms"})).await);
    assert_ne!(first, second);
    // The first cursor, asked to keep the point in time for a day: a second place, refused
    // and never forwarded (it was answered, and counted for the minute `second` had).
    let before = sql_queries(&es);
    let replay = sql(&one, json!({"cursor": first, "page_timeout": "24h"})).await;
    retry_after(&replay, "max_open_pits");
    assert_eq!(sql_queries(&es), before, "the page reached the backend");
    assert_eq!(pits.lock().unwrap().len(), 1);

    // Two places: a page on the older cursor passes under the limit and names the cursor
    // already counted (kept for a day): its shorter keep-alive does not shorten the count's.
    let first = cursor(&sql(&two, query("24h")).await);
    cursor(&sql(&two, json!({"cursor": first})).await);
    cursor(&sql(&two, json!({"cursor": first, "page_timeout": "1ms"})).await);
    // One point in time, one place: a query takes the other, and the next is refused until
    // the first of them ends, a day away.
    cursor(&sql(&two, query("24h")).await);
    let after = retry_after(&sql(&two, query("24h")).await, "max_open_pits");
    assert!(after >= 24 * 3600, "{after}");
}

/// An `_msearch` of `n` searches as Grafana sends one (`createMultiSearchRequests`: header
/// `search_type`, `ignore_unavailable`, `index`; a date histogram of no hits), as `secret`.
async fn grafana_msearch(gw: &Esgate, secret: &str, n: usize) -> support::http::Reply {
    let header = json!({"ignore_unavailable": true, "index": "logs-*",
                        "search_type": "query_then_fetch"});
    let body = json!({"size": 0, "query": {"bool": {"filter": {"range": {"@timestamp":
                        {"format": "epoch_millis", "gte": 1704067200000u64, "lte": 1704931199999u64}}}}},
                      "aggs": {"2": {"date_histogram": {"field": "@timestamp",
                        "fixed_interval": "86400000ms", "format": "epoch_millis", "min_doc_count": 0}}}});
    let text = format!("{header}\n{body}\n").repeat(n);
    let auth = format!("Bearer {secret}");
    support::http::send(
        "POST",
        &gw.url("/_msearch?max_concurrent_shard_requests=5"),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        text.into_bytes(),
    )
    .await
    .expect("esgate answers")
}

/// Every search of an `_msearch` answered: 200, `n` responses, each 200.
fn answered_whole(r: &support::http::Reply, n: usize) {
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let responses = body["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), n, "{body}");
    for item in responses {
        assert_eq!(item["status"], 200, "{item}");
    }
}

/// msearch27 (M, availability; attack26's note): an `_msearch`'s searches were bounded only by
/// the 100 MiB body (some 16 million `{}` lines), run by the coordinating node and their
/// answers held until the last, and the rate counted the one HTTP request: a token held to one
/// request a second sent one `_msearch` of 100,000 searches a second. Now one with more than
/// the token's `max_msearch_searches` (default 1000; `[policies.limits]`, the token's own over
/// it) is refused, 400 `illegal_argument_exception` naming the limit, with nothing sent to the
/// backend (not even a resolve); and a rate-limited token's `_msearch` of N is charged N - 1
/// more requests once counted, never refused for being larger than the burst (Grafana's
/// dashboard of 20 queries under `burst: 10` passes), its next requests refused until that
/// debt is paid.
async fn msearch_searches_on(backend: &Backend) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(
        &[relay.url()],
        "[policies.limits]\nmax_msearch_searches = 5\n",
    )
    .await;
    let (id, secret) = tenant_a(&gw, json!({})).await;

    // The cap, from `[policies.limits]`: 5 pass, 6 are refused before anything is sent.
    answered_whole(&grafana_msearch(&gw, &secret, 5).await, 5);
    let forwarded = relay.take_forwarded();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    let over = grafana_msearch(&gw, &secret, 6).await;
    assert_eq!(over.status, 400, "{}", over.text());
    let body = over.json();
    assert_eq!(
        body["error"]["type"], "illegal_argument_exception",
        "{body}"
    );
    assert!(reason(&body).contains("max_msearch_searches 5"), "{body}");
    let passed = relay.take();
    assert!(passed.is_empty(), "reached the backend: {passed:?}");

    // The token's own limit, set and shown by the admin API, over the default.
    limited_to_four(&gw, &id, "max_msearch_searches").await;
    answered_whole(&grafana_msearch(&gw, &secret, 4).await, 4);
    assert_eq!(grafana_msearch(&gw, &secret, 5).await.status, 400);
    relay.take();

    // A rate: one request every 500 ms, a burst of 1. An `_msearch` of 10 larger than the
    // burst passes; its 9 other searches are debt (4.5 s), so a search a second later, when
    // the bucket would have refilled after one request, is refused and never forwarded.
    let (_, rated) = tenant_a(
        &gw,
        json!({"requests_per_second": 2, "burst": 1, "max_msearch_searches": 10}),
    )
    .await;
    answered_whole(&grafana_msearch(&gw, &rated, 10).await, 10);
    relay.take();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let search = || gw.call_raw(&rated, "POST", "/logs-*/_search", json!({"size": 0}), &[]);
    let refused = search().await;
    let wait = retry_after(&refused, "rate limit");
    assert!((2..=5).contains(&wait), "the debt's rest: {wait}");
    let passed = relay.take();
    assert!(passed.is_empty(), "reached the backend: {passed:?}");
    // Paid, the token's searches pass again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(search().await.status, 200);

    // Grafana's shape: a dashboard of 20 queries under `burst: 10` runs whole; the token's next
    // request waits the debt out.
    let (_, dashboard) = tenant_a(
        &gw,
        json!({"requests_per_second": 1, "burst": 10, "max_msearch_searches": 1000}),
    )
    .await;
    answered_whole(&grafana_msearch(&gw, &dashboard, 20).await, 20);
    let refused = gw
        .call_raw(
            &dashboard,
            "POST",
            "/logs-*/_search",
            json!({"size": 0}),
            &[],
        )
        .await;
    assert!(retry_after(&refused, "rate limit") >= 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msearch_searches_are_capped_and_charged_to_the_rate_on_osmem() {
    msearch_searches_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msearch_searches_are_capped_and_charged_to_the_rate_on_noida() {
    msearch_searches_on(&fixture::seeded_noida()).await;
}
