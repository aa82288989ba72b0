//! Histograms that could step through a range field (range28; `es::dsl::histogram_fields`,
//! `upstream::field_types`), end to end on both test backends through a recording relay.
//!
//! Neither test backend models the loop (both answer a range histogram with no buckets): what
//! is shown is esgate's decision. A `histogram` on an `integer_range`, `long_range` or
//! `double_range` field, and a `date_histogram` on a `date_range` one, without `hard_bounds`
//! are esgate's own 403 (nothing but esgate's lookups reaches the backend; the reason names
//! `hard_bounds`), with both bounds they are forwarded and answered as the backend answers the
//! same search sent straight; on a numeric or date field they are answered as the backend
//! answers. A pattern over an index where the field is `long` and one where it is `long_range`
//! is refused, and so is an `_msearch` with one such search. A `_field_caps` lookup that fails
//! fails closed (502, nothing forwarded). The lookup is cached for the resolver's TTL: asked
//! once within it, and a mapping changed to a range type is seen after it.

use crate::support;

use serde_json::{json, Value};

use support::backend::Backend;
use support::esgate::Esgate;
use support::http::{self, send_json};
use support::recording::{Answer, Recording};
use support::relay::{pass_on, Relay};

/// `rng-a`: every range type and a numeric and date field; `rng-b`: `x` as a `long_range`
/// where `rng-a` has it `long`; `rng-foreign` (not the token's): `n` as a `long_range`.
fn indices() -> Vec<(&'static str, Value)> {
    let a = json!({"properties": {
        "tenant": {"type": "keyword"},
        "ir": {"type": "integer_range"}, "lr": {"type": "long_range"},
        "dr": {"type": "double_range"}, "dtr": {"type": "date_range"},
        "n": {"type": "long"}, "t": {"type": "date"}, "x": {"type": "long"}}});
    let b = json!({"properties": {
        "tenant": {"type": "keyword"}, "n": {"type": "long"}, "t": {"type": "date"},
        "x": {"type": "long_range"}}});
    let foreign =
        json!({"properties": {"tenant": {"type": "keyword"}, "n": {"type": "long_range"}}});
    vec![("rng-a", a), ("rng-b", b), ("rng-foreign", foreign)]
}

async fn seed(url: &str) {
    for (index, mappings) in indices() {
        create(url, index, &mappings).await;
    }
    let docs = [
        (
            "rng-a",
            json!({"tenant": "a", "ir": {"gte": 1, "lte": 5}, "lr": {"gte": 1, "lte": 5},
            "dr": {"gte": 1.5, "lte": 5.0}, "dtr": {"gte": "2024-01-01", "lte": "2024-01-03"},
            "n": 3, "t": "2024-01-02T00:00:00Z", "x": 4}),
        ),
        (
            "rng-a",
            json!({"tenant": "a", "n": 7, "t": "2024-01-05T00:00:00Z", "x": 9}),
        ),
        (
            "rng-a",
            json!({"tenant": "b", "n": 100, "t": "2024-02-01T00:00:00Z", "x": 1}),
        ),
        (
            "rng-b",
            json!({"tenant": "a", "n": 4, "t": "2024-01-03T00:00:00Z", "x": {"gte": 1, "lte": 3}}),
        ),
        (
            "rng-foreign",
            json!({"tenant": "a", "n": {"gte": 0, "lte": 9}}),
        ),
    ];
    let mut bulk = String::new();
    for (index, doc) in docs {
        bulk.push_str(&json!({"index": {"_index": index}}).to_string());
        bulk.push('\n');
        bulk.push_str(&doc.to_string());
        bulk.push('\n');
    }
    http::bulk(url, bulk).await;
}

async fn create(url: &str, index: &str, mappings: &Value) {
    let body = json!({"settings": {"number_of_shards": 1}, "mappings": mappings});
    let r = send_json("PUT", &format!("{url}/{index}"), None, &body).await;
    assert!(r.status.is_success(), "create {index}: {}", r.text());
}

fn tenant_a() -> Value {
    json!({"name": "ranges", "filters": [{"field": "tenant", "value": "a"}],
        "indices": ["rng-a", "rng-b"]})
}

fn hist(ty: &str, params: Value) -> Value {
    json!({"size": 0, "aggs": {"h": {ty: params}}})
}

/// The backend's answer to `body` on `indices` sent straight, tenant a's filter by hand.
async fn direct(backend: &Backend, indices: &str, body: &Value) -> Value {
    let mut body = body.clone();
    body["query"] = json!({"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}]}});
    let r = send_json(
        "POST",
        &format!("{}/{indices}/_search", backend.url()),
        None,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "direct: {}", r.text());
    r.json()
}

/// A refusal of esgate's own: 403, the reason naming the way out, nothing forwarded.
fn refused_here(what: &str, status: u16, answer: &Value, relay: &Relay) {
    assert_eq!(status, 403, "{what}: {answer}");
    let reason = answer["error"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("[hard_bounds] with [min] and [max]"),
        "{what}: {reason}"
    );
    let forwarded = relay.take_forwarded();
    assert!(forwarded.is_empty(), "{what}: {forwarded:?}");
}

async fn decisions_on(backend: Backend) {
    seed(backend.url()).await;
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(tenant_a()).await;
    let search = |path: &'static str, body: Value| {
        let (gw, secret) = (&gw, &secret);
        async move { gw.call(secret, "POST", path, body, &[]).await }
    };

    // A range field without hard bounds: esgate's own 403, whatever the interval and
    // `min_doc_count` (on osmem `min_doc_count` 0 would be `fill`'s to refuse first).
    for (ty, field, params) in [
        ("histogram", "ir", json!({"interval": 1})),
        ("histogram", "lr", json!({"interval": 1e-9})),
        (
            "histogram",
            "dr",
            json!({"interval": 0.5, "hard_bounds": {"min": 0}}),
        ),
        ("histogram", "dtr", json!({"interval": 1})),
        ("date_histogram", "dtr", json!({"fixed_interval": "1ms"})),
        ("date_histogram", "dtr", json!({"calendar_interval": "1d"})),
    ] {
        let mut p = params.clone();
        p["field"] = json!(field);
        p["min_doc_count"] = json!(1);
        relay.take();
        let (status, answer) = search("/rng-*/_search", hist(ty, p)).await;
        refused_here(
            &format!("{ty} on {field} {params}"),
            status,
            &answer,
            &relay,
        );
    }

    // With both hard bounds: forwarded, answered as the backend answers.
    for (ty, field, params) in [
        (
            "histogram",
            "ir",
            json!({"interval": 1, "hard_bounds": {"min": 0, "max": 10}}),
        ),
        (
            "histogram",
            "lr",
            json!({"interval": 1, "hard_bounds": {"min": 0, "max": 10}}),
        ),
        (
            "histogram",
            "dr",
            json!({"interval": 0.5, "hard_bounds": {"min": 0, "max": 10}}),
        ),
        (
            "date_histogram",
            "dtr",
            json!({"fixed_interval": "1d",
            "hard_bounds": {"min": 1_704_067_200_000u64, "max": 1_704_326_400_000u64}}),
        ),
    ] {
        let mut p = params.clone();
        p["field"] = json!(field);
        p["min_doc_count"] = json!(1);
        let body = hist(ty, p);
        relay.take();
        let (status, answer) = search("/rng-a/_search", body.clone()).await;
        assert_eq!(status, 200, "{ty} on {field}: {answer}");
        assert_eq!(relay.take_forwarded().len(), 1, "{ty} on {field}");
        let want = direct(&backend, "rng-a", &body).await;
        assert_eq!(
            answer["aggregations"], want["aggregations"],
            "{ty} on {field}"
        );
    }

    // A numeric and a date field, looked up and answered as the backend answers; the foreign
    // index where `n` is a range is not the token's (the pattern reaches it, narrowed away).
    for (ty, field, params) in [
        ("histogram", "n", json!({"interval": 2})),
        ("date_histogram", "t", json!({"calendar_interval": "1d"})),
    ] {
        let mut p = params.clone();
        p["field"] = json!(field);
        p["min_doc_count"] = json!(1);
        let body = hist(ty, p);
        relay.take();
        let (status, answer) = search("/rng-*/_search", body.clone()).await;
        assert_eq!(status, 200, "{ty} on {field}: {answer}");
        let passed = relay.take();
        assert!(
            passed.iter().any(|p| p.is_field_types_lookup()),
            "{ty} on {field}: {passed:?}"
        );
        let want = direct(&backend, "rng-a,rng-b", &body).await;
        assert_eq!(
            answer["aggregations"], want["aggregations"],
            "{ty} on {field}"
        );
        let buckets = answer["aggregations"]["h"]["buckets"]
            .as_array()
            .expect("buckets");
        assert!(!buckets.is_empty(), "{ty} on {field}: {answer}");
    }

    // `x`: `long` in rng-a, `long_range` in rng-b. Both reached: refused; rng-a alone: answered.
    let x = hist(
        "histogram",
        json!({"field": "x", "interval": 1, "min_doc_count": 1}),
    );
    relay.take();
    let (status, answer) = search("/rng-*/_search", x.clone()).await;
    refused_here("x over both", status, &answer, &relay);
    let reason = answer["error"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("[long_range]"), "{reason}");
    let (status, answer) = search("/rng-a/_search", x.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let want = direct(&backend, "rng-a", &x).await;
    assert_eq!(answer["aggregations"], want["aggregations"]);

    // An `_msearch` with one such search among others: refused whole, nothing forwarded.
    let ok = hist(
        "histogram",
        json!({"field": "n", "interval": 1, "min_doc_count": 1}),
    );
    let ndjson = format!(
        "{}\n{ok}\n{}\n{x}\n",
        json!({"index": "rng-a"}),
        json!({"index": "rng-*"})
    );
    relay.take();
    let r = gw
        .send_as(
            &format!("Bearer {secret}"),
            "POST",
            "/_msearch",
            Some(("application/x-ndjson", ndjson)),
        )
        .await;
    refused_here("msearch", r.status.as_u16(), &r.json(), &relay);
    // Without it, answered.
    let ndjson = format!("{}\n{ok}\n", json!({"index": "rng-*"}));
    let r = gw
        .send_as(
            &format!("Bearer {secret}"),
            "POST",
            "/_msearch",
            Some(("application/x-ndjson", ndjson)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let want = direct(&backend, "rng-a,rng-b", &ok).await;
    assert_eq!(
        r.json()["responses"][0]["aggregations"],
        want["aggregations"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_histograms_are_refused_unless_bounded_on_osmem() {
    decisions_on(Backend::osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_histograms_are_refused_unless_bounded_on_noida() {
    decisions_on(Backend::noida()).await;
}

/// A relay to `backend` that answers esgate's `_field_caps` lookups with `answer` instead.
fn failing_field_caps(backend: &str, answer: Answer) -> Recording {
    let recording = Recording::start();
    let base = backend.to_owned();
    recording.script_fn("*", "/", move |r| {
        if r.path.ends_with("/_field_caps") {
            answer.clone()
        } else {
            pass_on(&base, r)
        }
    });
    recording
}

async fn failures_fail_closed_on(backend: Backend) {
    seed(backend.url()).await;
    let body = hist(
        "date_histogram",
        json!({"field": "t", "calendar_interval": "1d", "min_doc_count": 1}),
    );
    for (what, answer, status) in [
        (
            "a 500",
            Answer::json(500, json!({"error": "boom", "status": 500})),
            502,
        ),
        ("not a description", Answer::json(200, json!(["no"])), 502),
        (
            "a 400",
            Answer::json(
                400,
                json!({"error": {"type": "x", "reason": "y"}, "status": 400}),
            ),
            400,
        ),
    ] {
        let fake = failing_field_caps(backend.url(), answer);
        let gw = Esgate::start(&[fake.url()], "").await;
        let (_, secret) = gw.token(tenant_a()).await;
        let (got, answer) = gw
            .call(&secret, "POST", "/rng-*/_search", body.clone(), &[])
            .await;
        assert_eq!(got, status, "{what}: {answer}");
        let searches = fake.requests_to("POST", "/");
        assert!(searches.is_empty(), "{what}: {searches:?}");
        assert_eq!(
            fake.requests_to("GET", "/rng-").len(),
            1,
            "{what}: one lookup"
        );
        // A bounded histogram needs no lookup: answered.
        let bounded = hist(
            "date_histogram",
            json!({"field": "t", "calendar_interval": "1d",
            "min_doc_count": 1, "hard_bounds": {"min": 1_704_067_200_000u64, "max": 1_706_745_600_000u64}}),
        );
        let (got, answer) = gw
            .call(&secret, "POST", "/rng-*/_search", bounded, &[])
            .await;
        assert_eq!(got, 200, "{what}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lookup_fails_closed_on_osmem() {
    failures_fail_closed_on(Backend::osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lookup_fails_closed_on_noida() {
    failures_fail_closed_on(Backend::noida()).await;
}

async fn cache_on(backend: Backend) {
    seed(backend.url()).await;
    // `rng-c`: `x` a `long` until the test makes it a `long_range`.
    create(
        backend.url(),
        "rng-c",
        &json!({"properties": {"tenant": {"type": "keyword"}, "x": {"type": "long"}}}),
    )
    .await;
    let relay = Relay::to(backend.url());
    let gw = Esgate::start_full(&[relay.url()], "", "resolve_cache_ttl = \"1s\"", "").await;
    let (_, secret) = gw
        .token(json!({"name": "c", "filters": [{"field": "tenant", "value": "a"}], "indices": ["rng-c"]}))
        .await;
    let x = hist(
        "histogram",
        json!({"field": "x", "interval": 1, "min_doc_count": 1}),
    );
    let lookups = |relay: &Relay| {
        relay
            .take()
            .iter()
            .filter(|p| p.is_field_types_lookup())
            .count()
    };
    relay.take();
    let (status, answer) = gw
        .call(&secret, "POST", "/rng-c/_search", x.clone(), &[])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(lookups(&relay), 1);
    let (status, answer) = gw
        .call(&secret, "POST", "/rng-c/_search", x.clone(), &[])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(lookups(&relay), 0, "within the TTL the answer is reused");
    // The index made again with `x` a `long_range`: seen once the TTL has passed.
    let r = http::send("DELETE", &format!("{}/rng-c", backend.url()), &[], "")
        .await
        .expect("delete");
    assert!(r.status.is_success(), "{}", r.text());
    create(
        backend.url(),
        "rng-c",
        &json!({"properties": {"tenant": {"type": "keyword"}, "x": {"type": "long_range"}}}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    relay.take();
    let (status, answer) = gw.call(&secret, "POST", "/rng-c/_search", x, &[]).await;
    refused_here("after the TTL", status, &answer, &relay);

    // A pattern that also reaches a foreign index through an alias (`rng-alias` -> `other`,
    // dropped by the narrowing): the lookup describes the alias's index too, so its answer is
    // reused within the TTL like any other.
    create(
        backend.url(),
        "other",
        &json!({"properties": {"n": {"type": "long_range"}}}),
    )
    .await;
    let actions = json!({"actions": [{"add": {"index": "other", "alias": "rng-alias"}}]});
    let r = send_json(
        "POST",
        &format!("{}/_aliases", backend.url()),
        None,
        &actions,
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text());
    let (_, secret) = gw.token(tenant_a()).await;
    let n = hist(
        "histogram",
        json!({"field": "n", "interval": 1, "min_doc_count": 1}),
    );
    relay.take();
    for round in 0..2 {
        let (status, answer) = gw
            .call(&secret, "POST", "/rng-*/_search", n.clone(), &[])
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(lookups(&relay), 1 - round, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_cached_for_the_ttl_on_osmem() {
    cache_on(Backend::osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_cached_for_the_ttl_on_noida() {
    cache_on(Backend::noida()).await;
}
