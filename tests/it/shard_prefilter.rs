//! The shard pre-filter's `_shards.skipped` (review 14): Elasticsearch's can-match phase skips
//! a shard when the query cannot match any document of it, any tenant's (its index-wide
//! min/max values), so the count told a token whether other tenants' values fall in a range.
//! Neither test backend skips shards: the recording fake plays an Elasticsearch that does, the
//! way `TransportSearchAction.shouldPreFilterSearchShards` decides (a `pre_filter_shard_size`
//! below the shard count, 1 when unset here as for a primary field sort; an async search
//! always). esgate turns the phase off on `_search` and `_msearch` whatever the client asks,
//! and reports 0 in async search answers, where Elasticsearch cannot turn it off.

use crate::support;

use serde_json::{json, Value};

use support::esgate::Esgate;
use support::recording::{Answer, Recorded, Recording};

/// Shards of the fake's indices; the range the tests ask for misses all but one.
const SHARDS: u64 = 4;
const SKIPPED: u64 = 3;

/// What the fake skips for a search sent with `r`'s parameters.
fn skipped_for(r: &Recorded) -> u64 {
    let size = r
        .params()
        .into_iter()
        .find(|(k, _)| k == "pre_filter_shard_size")
        .map_or(1, |(_, v)| v.parse::<u64>().expect("an int"));
    if size < SHARDS {
        SKIPPED
    } else {
        0
    }
}

fn search_response(skipped: u64) -> Value {
    json!({
        "took": 1, "timed_out": false,
        "_shards": {"total": SHARDS, "successful": SHARDS, "skipped": skipped, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}
    })
}

/// A fake that skips shards like Elasticsearch, and esgate in front of it; tenant a's secret.
async fn setup() -> (Recording, Esgate, String) {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b"]);
    es.script_fn("POST", "/", |r| {
        if r.path.ends_with("/_msearch") {
            let n = r.body.iter().filter(|b| **b == b'\n').count() / 2;
            let one = search_response(skipped_for(r));
            Answer::json(200, json!({"took": 1, "responses": vec![one; n]}))
        } else if r.path.ends_with("/_async_search") {
            // Elasticsearch fixes an async search's pre_filter_shard_size at 1.
            let mut response = search_response(SKIPPED);
            response["_clusters"] = json!({"total": 1, "successful": 1, "skipped": 0,
                "details": {"(local)": {"status": "successful",
                    "_shards": {"total": SHARDS, "successful": SHARDS, "skipped": SKIPPED, "failed": 0}}}});
            Answer::json(
                200,
                json!({"id": "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=",
                       "is_partial": false, "is_running": false,
                       "start_time_in_millis": 1, "expiration_time_in_millis": 2,
                       "response": response}),
            )
        } else {
            Answer::json(200, search_response(skipped_for(r)))
        }
    });
    let gw = Esgate::start(&[es.url()], "").await;
    let a = gw.tenant_token("a").await;
    (es, gw, a)
}

fn range_query() -> Value {
    json!({"size": 0, "query": {"range": {"n": {"gte": 1_000_000}}}, "sort": [{"n": "asc"}]})
}

fn forwarded_size(r: &Recorded) -> Vec<String> {
    r.params()
        .into_iter()
        .filter(|(k, _)| k == "pre_filter_shard_size")
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_msearch_turn_the_pre_filter_off_whatever_the_client_asks() {
    let (es, gw, a) = setup().await;
    for query in [
        "",
        "?pre_filter_shard_size=1",
        "?pre_filter_shard_size=2147483647",
    ] {
        let path = format!("/logs-*/_search{query}");
        let (status, v) = gw.call(&a, "POST", &path, range_query(), &[]).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(v["_shards"]["skipped"], 0, "{path}: {v}");
    }
    let sent = es.requests_to("POST", "/logs-a,logs-b/_search");
    assert_eq!(sent.len(), 3, "{sent:?}");
    for r in &sent {
        assert_eq!(forwarded_size(r), ["2147483647"], "{:?}", r.query);
    }

    let ndjson = "{\"index\":\"logs-*\"}\n{\"size\":0,\"query\":{\"range\":{\"n\":{\"gte\":1000000}}}}\n{}\n{\"sort\":[{\"n\":\"asc\"}]}\n";
    for query in ["", "?pre_filter_shard_size=1"] {
        let auth = format!("Bearer {a}");
        let r = support::http::send(
            "POST",
            &gw.url(&format!("/_msearch{query}")),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/x-ndjson"),
            ],
            ndjson.as_bytes().to_vec(),
        )
        .await
        .expect("esgate answers");
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        let v = r.json();
        let responses = v["responses"].as_array().expect("responses");
        assert_eq!(responses.len(), 2, "{v}");
        for one in responses {
            assert_eq!(one["_shards"]["skipped"], 0, "{query}: {v}");
        }
    }
    for r in es.requests_to("POST", "/_msearch") {
        assert_eq!(forwarded_size(&r), ["2147483647"], "{:?}", r.query);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_search_answers_report_no_skipped_shard() {
    let (es, gw, a) = setup().await;
    let (status, v) = gw
        .call(&a, "POST", "/logs-*/_async_search", range_query(), &[])
        .await;
    assert_eq!(status, 200, "{v}");
    let response = &v["response"];
    assert_eq!(
        response["_shards"],
        json!({"total": SHARDS, "successful": SHARDS, "skipped": 0, "failed": 0}),
        "{v}"
    );
    assert_eq!(
        response["_clusters"]["details"]["(local)"]["_shards"]["skipped"], 0,
        "{v}"
    );
    // The submit still cannot set the threshold: Elasticsearch refuses any value but 1.
    let sent = es.requests_to("POST", "/logs-a,logs-b/_async_search");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(forwarded_size(&sent[0]).is_empty(), "{:?}", sent[0].query);
}

/// attack22: a shard whose query its own index-wide values rewrite to no match (a date range
/// outside every document's dates, any tenant's; a field sort whose every value ranks below
/// the hits found so far) answers with nothing once another shard has answered, and such
/// answers never enter a partial reduce: with a batch smaller than the shards searched,
/// `num_reduce_phases` counts the shards other tenants' values did not cut short. And an
/// async search counts the shards its pre-filter skipped as successful from its start, so a
/// running one's `successful` told what `skipped` no longer does. `_search` refuses a batch
/// size (nothing forwarded); async search answers (Kibana submits with a batch of 64) carry
/// `num_reduce_phases: 1` and, until final, `successful: 0`: submit, poll and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_phases_and_running_progress_do_not_count_shards() {
    const ID: &str = "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=";
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b"]);
    let shards = json!({"total": SHARDS, "successful": SKIPPED, "skipped": SKIPPED, "failed": 0});
    let running = json!({"id": ID, "is_partial": true, "is_running": true,
        "start_time_in_millis": 1, "expiration_time_in_millis": 2,
        "response": {"took": 1, "timed_out": false, "num_reduce_phases": 3, "_shards": shards,
            "hits": {"total": {"value": 0, "relation": "gte"}, "max_score": null, "hits": []}}});
    es.script_json("POST", "/", 200, running.clone());
    es.script_json("GET", "/_async_search/", 200, running);
    es.script_json(
        "GET",
        "/_async_search/status/",
        200,
        json!({"id": ID, "is_running": true, "is_partial": true,
            "start_time_in_millis": 1, "expiration_time_in_millis": 2, "_shards": shards}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let a = gw.tenant_token("a").await;

    for path in [
        "/logs-*/_search?batched_reduce_size=2",
        "/logs-*/_search?max_concurrent_shard_requests=1&batched_reduce_size=512",
    ] {
        let (status, v) = gw.call(&a, "POST", path, range_query(), &[]).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    assert!(es.requests_to("POST", "/logs-a,logs-b/_search").is_empty());

    let unseen = json!({"total": SHARDS, "successful": 0, "skipped": 0, "failed": 0});
    let (status, v) = gw
        .call(
            &a,
            "POST",
            "/logs-*/_async_search?batched_reduce_size=2&wait_for_completion_timeout=0s",
            range_query(),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["response"]["num_reduce_phases"], 1, "{v}");
    assert_eq!(v["response"]["_shards"], unseen, "{v}");
    let sealed = v["id"].as_str().expect("an id").to_owned();
    let poll = gw.get(&format!("/_async_search/{sealed}"), &a).await;
    assert_eq!(poll.status.as_u16(), 200, "{}", poll.text());
    let v = poll.json();
    assert_eq!(v["response"]["num_reduce_phases"], 1, "{v}");
    assert_eq!(v["response"]["_shards"], unseen, "{v}");
    let status = gw.get(&format!("/_async_search/status/{sealed}"), &a).await;
    assert_eq!(status.status.as_u16(), 200, "{}", status.text());
    assert_eq!(status.json()["_shards"], unseen, "{}", status.text());
}

/// attack26c (M): esgate wrote the hidden counts over in place and kept the answer's length,
/// the digits after the first turned into spaces: `"skipped":1234` became `"skipped":0   `, so
/// the spaces still told how many digits the count had (10 or more skipped shards, 100 or
/// more...). With nine shards known to be skipped (a range no date of theirs reaches), the
/// tenth shard's skip, decided by other tenants' dates, showed as a space. Two answers that
/// differ only in hidden counts (skipped, a running answer's successful, reduce phases) must
/// reach the client as the same bytes, the sealed id aside: submit, poll and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_counts_leave_no_trace_of_their_digits() {
    const FEW: &str = "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=";
    const MANY: &str = "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDg=";
    fn shards(n: u64) -> Value {
        json!({"total": 2000, "successful": n, "skipped": n, "failed": 0})
    }
    fn answer(id: &str, n: u64) -> Value {
        json!({"id": id, "is_partial": true, "is_running": true,
            "start_time_in_millis": 1, "expiration_time_in_millis": 2,
            "response": {"took": 1, "timed_out": false, "num_reduce_phases": n,
                "_shards": shards(n),
                "hits": {"total": {"value": 0, "relation": "gte"}, "max_score": null, "hits": []}}})
    }
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b"]);
    // The submit's count follows its range; a poll's and a status's follow the id.
    es.script_fn("POST", "/", move |r| {
        let many = String::from_utf8_lossy(&r.body).contains("2000000");
        Answer::json(
            200,
            answer(if many { MANY } else { FEW }, if many { 1234 } else { 3 }),
        )
    });
    es.script_fn("GET", "/_async_search/status/", move |r| {
        let (id, n) = if r.path.contains(MANY.trim_end_matches('=')) {
            (MANY, 1234)
        } else {
            (FEW, 3)
        };
        Answer::json(
            200,
            json!({"id": id, "is_running": true, "is_partial": true,
            "start_time_in_millis": 1, "expiration_time_in_millis": 2, "_shards": shards(n)}),
        )
    });
    es.script_fn("GET", "/_async_search/", move |r| {
        let many = r.path.contains(MANY.trim_end_matches('='));
        Answer::json(
            200,
            answer(if many { MANY } else { FEW }, if many { 1234 } else { 3 }),
        )
    });
    let gw = Esgate::start(&[es.url()], "").await;
    let a = gw.tenant_token("a").await;

    // The answer's text with its sealed id (if any) written as `ID`.
    let text = |r: &support::http::Reply| {
        let t = r.text();
        match r.json()["id"].as_str() {
            Some(id) => t.replace(id, "ID"),
            None => t,
        }
    };
    let mut seen = Vec::new();
    for gte in [1_000_000, 2_000_000] {
        let path = "/logs-*/_async_search?wait_for_completion_timeout=0s";
        let body = json!({"size": 0, "query": {"range": {"n": {"gte": gte}}}});
        let submit = gw.call_raw(&a, "POST", path, body, &[]).await;
        assert_eq!(submit.status, 200, "{}", submit.text());
        let sealed = submit.json()["id"].as_str().expect("an id").to_owned();
        let poll = gw.get(&format!("/_async_search/{sealed}"), &a).await;
        assert_eq!(poll.status, 200, "{}", poll.text());
        let status = gw.get(&format!("/_async_search/status/{sealed}"), &a).await;
        assert_eq!(status.status, 200, "{}", status.text());
        seen.push([text(&submit), text(&poll), text(&status)]);
    }
    assert_eq!(
        es.requests_to("GET", "/_async_search/status/").len(),
        2,
        "both statuses asked"
    );
    for (few, many) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(few, many, "the hidden counts show in the answer's bytes");
    }
}
