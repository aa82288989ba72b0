//! Empty histogram buckets made before they are counted (attack26, hist27; `es::dsl::fill`),
//! end to end against both test backends through a recording relay:
//!
//! - on osmem (the OpenSearch dialect: it makes a histogram's empty buckets first, as
//!   OpenSearch does), Grafana's `date_histogram` (its range in `bool.filter` as epoch_millis
//!   numbers, `min_doc_count: 0`, `extended_bounds` the same range), Dashboards' "show empty
//!   buckets" (the range as ISO strings) and a numeric histogram over a range reach the backend
//!   with `hard_bounds` around the range, and answer exactly what the backend answers to the
//!   same search sent straight with the tenant filter by hand, empty buckets included;
//! - on noida (Elasticsearch 8.15's API: it counts empty buckets as it makes them) the same
//!   searches are forwarded without `hard_bounds` and answer the same;
//! - a numeric histogram without bounds or range is esgate's own 403 on osmem (nothing but
//!   lookups reaches it, the reason says what to do) and is forwarded unchanged to noida.

use crate::support;

use serde_json::{json, Value};

use support::backend::Backend;
use support::esgate::Esgate;
use support::fixture::{self, strip_volatile, wrap_for_tenant_a, DIRECT_INDEX};
use support::http::send_json;
use support::relay::Relay;

/// 2023-12-30T00:00:00.000Z and 2024-01-14T23:59:59.999Z: around tenant a's documents (one a
/// day, 2024-01-01 to 2024-01-10), so both ends have empty buckets.
const FROM: i64 = 1_703_894_400_000;
const TO: i64 = 1_705_276_799_999;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn tenant_a() -> Value {
    json!({"name": "hist", "filters": [{"field": "tenant", "value": "a"}], "indices": ["logs-*"]})
}

/// Grafana's time series query (`fixed_interval` 12h: empty buckets between the days too).
fn grafana() -> Value {
    json!({"size": 0,
        "query": {"bool": {"filter": {"range": {"@timestamp": {"format": "epoch_millis", "gte": FROM, "lte": TO}}}}},
        "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "12h", "min_doc_count": 0,
            "extended_bounds": {"min": FROM, "max": TO}, "format": "epoch_millis"}}}})
}

/// OpenSearch Dashboards' histogram with "show empty buckets": the range as ISO strings, a
/// calendar interval.
fn dashboards() -> Value {
    json!({"size": 0,
        "query": {"bool": {"must": [], "filter": [{"match_all": {}}, {"range": {"@timestamp": {
            "gte": "2023-12-30T00:00:00.000Z", "lte": "2024-01-14T23:59:59.999Z",
            "format": "strict_date_optional_time"}}}], "should": [], "must_not": []}},
        "aggs": {"2": {"date_histogram": {"field": "@timestamp", "calendar_interval": "1d", "min_doc_count": 0,
            "extended_bounds": {"min": FROM, "max": TO}}}}})
}

/// A numeric histogram over a range of its field, with an offset and the range as its
/// extended bounds.
fn numeric() -> Value {
    json!({"size": 0, "query": {"range": {"n": {"gte": -4, "lte": 20}}},
        "aggs": {"2": {"histogram": {"field": "n", "interval": 3, "offset": 1,
            "extended_bounds": {"min": -4, "max": 20}}}}})
}

/// attack26's search: no bounds, no range.
fn unbounded() -> Value {
    json!({"size": 0, "aggs": {"2": {"histogram": {"field": "n", "interval": 1}}}})
}

/// The backend's answer to `body` sent straight, the tenant filter applied by hand.
async fn direct(backend: &Backend, body: &Value) -> Value {
    let mut body = body.clone();
    body["query"] = wrap_for_tenant_a(body.get("query"));
    let r = send_json(
        "POST",
        &format!("{}/{DIRECT_INDEX}/_search", backend.url()),
        None,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "direct: {}", r.text());
    let mut v = r.json();
    strip_volatile(&mut v);
    v
}

/// The one search forwarded since the relay was last read: its body.
fn forwarded_body(relay: &Relay) -> Value {
    let forwarded = relay.take_forwarded();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    serde_json::from_slice(&forwarded[0].body).expect("a JSON body")
}

/// Each bounded search answers as the backend does straight (same buckets, empty ones
/// included); what reached the backend has the hard bounds `expected` gives (`None` on a
/// backend that counts as it makes them).
async fn bounded_searches_answer_as_the_backend(
    backend: &Backend,
    expected: impl Fn(&str) -> Option<Value>,
) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(tenant_a()).await;
    for (what, body) in [
        ("grafana", grafana()),
        ("dashboards", dashboards()),
        ("numeric", numeric()),
    ] {
        relay.take();
        let (status, mut answer) = gw
            .call(&secret, "POST", "/logs-*/_search", body.clone(), &[])
            .await;
        assert_eq!(status, 200, "{what}: {answer}");
        let sent = forwarded_body(&relay);
        let ty = if what == "numeric" {
            "histogram"
        } else {
            "date_histogram"
        };
        let params = &sent["aggs"]["2"][ty];
        assert_eq!(
            params.get("hard_bounds").cloned(),
            expected(what),
            "{what}: {sent}"
        );
        // Everything else as the client sent it.
        let mut without = params.clone();
        if let Some(m) = without.as_object_mut() {
            m.remove("hard_bounds");
        }
        assert_eq!(without, body["aggs"]["2"][ty], "{what}");
        strip_volatile(&mut answer);
        let want = direct(backend, &body).await;
        assert_eq!(answer["aggregations"], want["aggregations"], "{what}");
        let buckets = answer["aggregations"]["2"]["buckets"]
            .as_array()
            .expect("buckets");
        let empty = buckets.iter().filter(|b| b["doc_count"] == 0).count();
        assert!(buckets.len() > empty, "{what}: {buckets:?}");
        // The date ones have empty buckets at both ends (noida's numeric histogram leaves out
        // the offset and the extended bounds, straight too).
        if ty == "date_histogram" {
            let ends = [&buckets[0], &buckets[buckets.len() - 1]];
            assert!(
                ends.iter().all(|b| b["doc_count"] == 0),
                "{what}: {buckets:?}"
            );
        }
    }
    // Grafana sends it in an msearch: bounded alike.
    relay.take();
    let ndjson = format!("{}\n{}\n", json!({"index": "logs-*"}), grafana());
    let r = gw
        .send_as(
            &format!("Bearer {secret}"),
            "POST",
            "/_msearch",
            Some(("application/x-ndjson", ndjson)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut answer = r.json();
    strip_volatile(&mut answer);
    let want = direct(backend, &grafana()).await;
    assert_eq!(answer["responses"][0]["aggregations"], want["aggregations"]);
    let forwarded = relay.take_forwarded();
    let body_line = forwarded[0]
        .body
        .split(|b| *b == b'\n')
        .nth(1)
        .expect("a body line");
    let sent: Value = serde_json::from_slice(body_line).expect("JSON");
    assert_eq!(
        sent["aggs"]["2"]["date_histogram"]
            .get("hard_bounds")
            .cloned(),
        expected("grafana")
    );
}

/// What osmem receives: one interval (12 hours; a day and its daylight-saving hour for the
/// calendar day; 3 and the offset for the numeric one) around the range.
fn osmem_bounds(what: &str) -> Option<Value> {
    Some(match what {
        "grafana" => json!({"min": FROM - 12 * HOUR, "max": TO + 12 * HOUR}),
        "dashboards" => json!({"min": FROM - DAY - HOUR, "max": TO + DAY + HOUR}),
        _ => json!({"min": -11.0, "max": 23.0}),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_histograms_get_hard_bounds_on_osmem_and_answer_the_same() {
    let backend = fixture::seeded_osmem();
    bounded_searches_answer_as_the_backend(&backend, osmem_bounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_histograms_are_forwarded_unchanged_to_noida() {
    let backend = fixture::seeded_noida();
    bounded_searches_answer_as_the_backend(&backend, |_| None).await;
}

/// attack26's search: esgate's own 403 on osmem, nothing forwarded, the reason naming the
/// three ways out; on noida forwarded as it is and answered as the backend answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_histogram_is_refused_on_osmem_and_forwarded_to_noida() {
    let osmem = fixture::seeded_osmem();
    let relay = Relay::to(osmem.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(tenant_a()).await;
    relay.take();
    let (status, body) = gw
        .call(&secret, "POST", "/logs-*/_search", unbounded(), &[])
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "security_exception", "{body}");
    let reason = body["error"]["reason"].as_str().unwrap_or_default();
    for hint in [
        "[min_doc_count] to 1",
        "[hard_bounds]",
        "[range] on its [field]",
    ] {
        assert!(reason.contains(hint), "{reason}");
    }
    assert!(relay.take_forwarded().is_empty());
    // With `min_doc_count: 1` it fills nothing: forwarded as it is.
    let mut one = unbounded();
    one["aggs"]["2"]["histogram"]["min_doc_count"] = json!(1);
    let (status, _) = gw
        .call(&secret, "POST", "/logs-*/_search", one.clone(), &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(forwarded_body(&relay)["aggs"], one["aggs"]);
    gw.stop().await;

    let noida = fixture::seeded_noida();
    let relay = Relay::to(noida.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(tenant_a()).await;
    relay.take();
    let (status, mut answer) = gw
        .call(&secret, "POST", "/logs-*/_search", unbounded(), &[])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(forwarded_body(&relay)["aggs"], unbounded()["aggs"]);
    strip_volatile(&mut answer);
    assert_eq!(
        answer["aggregations"],
        direct(&noida, &unbounded()).await["aggregations"]
    );
}

/// attack27d: an interval in a fraction of a millisecond is a whole one to OpenSearch
/// (`TimeValue.millis()` truncates): `1999999nanos` over 100 seconds makes 100,001 buckets
/// there, and esgate counted about 50,000. Counted as the backend reads it: esgate's own 400
/// on osmem, nothing forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fraction_of_a_millisecond_is_counted_as_the_whole_one_the_backend_uses() {
    let osmem = fixture::seeded_osmem();
    let relay = Relay::to(osmem.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(tenant_a()).await;
    relay.take();
    for interval in [
        json!({"fixed_interval": "1999999nanos"}),
        json!({"interval": 1.9}),
    ] {
        let mut h = json!({"field": "@timestamp", "min_doc_count": 0, "format": "epoch_millis"});
        for (k, v) in interval.as_object().unwrap() {
            h[k] = v.clone();
        }
        let body = json!({"size": 0,
            "query": {"bool": {"filter": {"range": {"@timestamp": {
                "format": "epoch_millis", "gte": FROM, "lte": FROM + 100_000}}}}},
            "aggs": {"2": {"date_histogram": h}}});
        let (status, answer) = gw.call(&secret, "POST", "/logs-*/_search", body, &[]).await;
        assert_eq!(status, 400, "{interval}: {answer}");
        let reason = answer["error"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("more than 65535 buckets"), "{reason}");
        assert!(relay.take_forwarded().is_empty(), "{interval}");
    }
    gw.stop().await;
}

/// hist27b: a backend whose `GET /` does not say what it is (benches/load's canned nginx
/// answers it with a search answer; so may a credential without `monitor`) is asked once a
/// window (`upstream::dialect::UNKNOWN_FOR`), not once per request naming a histogram: eight
/// concurrent requests share the one lookup in flight, eight more after it ask nothing.
/// Meanwhile the backend counts as making empty buckets first (fail closed): a histogram that
/// would need bounds is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecognised_banner_is_asked_once_a_window_and_histograms_fail_closed() {
    use support::recording::{Answer, Recording};
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    let search = json!({"took": 1, "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}});
    let canned = search.clone();
    es.script_fn("GET", "/", move |r| {
        if r.path == "/" {
            Answer::json(200, canned.clone())
        } else {
            Answer::json(404, json!({"error": "nothing scripted", "status": 404}))
        }
    });
    es.script_json("POST", "/logs-a/_search", 200, search);
    // The histogram's field, looked up (range28): a number.
    es.field_types(&["logs-a"], &[("n", "integer")]);
    let gw = Esgate::start(&[es.url()], "").await;
    let a = gw.tenant_token("a").await;
    let mut bounded = unbounded();
    bounded["aggs"]["2"]["histogram"]["min_doc_count"] = json!(1);

    let calls = (0..8).map(|_| gw.call(&a, "POST", "/logs-a/_search", bounded.clone(), &[]));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..8 {
        let (status, body) = gw
            .call(&a, "POST", "/logs-a/_search", bounded.clone(), &[])
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = gw
        .call(&a, "POST", "/logs-a/_search", unbounded(), &[])
        .await;
    assert_eq!(status, 403, "{body}");

    let lookups: Vec<_> = es
        .requests_to("GET", "/")
        .into_iter()
        .filter(|r| r.path == "/")
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(es.requests_to("POST", "/logs-a/_search").len(), 16);
    gw.stop().await;
}
