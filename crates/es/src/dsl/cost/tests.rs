use serde_json::json;

use super::*;

/// The limits on a backend that counts empty histogram buckets as it makes them (the bounds
/// `fill` adds elsewhere have tests of their own, `dsl::fill`).
fn guard(max_size: Option<u64>, max_buckets: Option<u64>, timeout_ms: Option<u64>) -> CostGuard {
    CostGuard {
        max_size,
        max_buckets,
        timeout_ms,
        empty_buckets: EmptyBuckets::Counted,
    }
}

fn run(g: &CostGuard, body: Value, params: &[(&str, &str)]) -> Result<(Value, Vec<Param>), String> {
    let mut body = body;
    let mut params = crate::testing::pairs(params);
    g.search(&mut body, &mut params)
        .map(|_| (body, params))
        .map_err(|r| r.reason)
}

#[test]
fn no_limits_change_nothing() {
    let body = json!({"size": 1_000_000, "aggs": {"t": {"terms": {"field": "x", "size": 65535}}}});
    let (out, params) = run(&CostGuard::default(), body.clone(), &[("timeout", "1h")]).unwrap();
    assert_eq!(out, body);
    assert_eq!(params.len(), 1);
}

/// Every size-like place, each just at and just over `max_size` 100 (the reason names
/// the limit).
#[test]
fn max_size_holds_in_every_place_a_search_asks_for_hits() {
    let g = guard(Some(100), None, None);
    type Case<'a> = (Value, Vec<(&'a str, &'a str)>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (json!({}), vec![], None),
        (json!({"size": 100}), vec![], None),
        (
            json!({"size": 101}),
            vec![],
            Some("size 101 exceeds this token's max_size 100"),
        ),
        (json!({"size": 60, "from": 40}), vec![], None),
        (
            json!({"size": 60, "from": 41}),
            vec![],
            Some("from + size 101"),
        ),
        (json!({"from": 91}), vec![], Some("from + size 101")),
        (json!({}), vec![("size", "101")], Some("size 101")),
        (json!({"size": 5}), vec![("size", "101")], Some("size 101")),
        (json!({"size": 101}), vec![("size", "5")], Some("size 101")),
        (json!({}), vec![("from", "95")], Some("from + size 105")),
        (json!({"size": "101"}), vec![], Some("size 101")),
        (
            json!({"knn": {"field": "v", "query_vector": [1], "k": 101, "num_candidates": 101}}),
            vec![],
            Some("knn k 101"),
        ),
        (
            json!({"knn": [{"field": "v", "query_vector": [1], "k": 10, "num_candidates": 200}]}),
            vec![],
            Some("knn num_candidates 200"),
        ),
        (
            json!({"query": {"bool": {"must": [{"knn": {"field": "v", "query_vector": [1], "k": 500}}]}}}),
            vec![],
            Some("knn k 500"),
        ),
        (
            json!({"retriever": {"rrf": {"retrievers": [{"knn": {"field": "v", "query_vector": [1], "k": 5, "num_candidates": 101}}], "rank_window_size": 10}}}),
            vec![],
            Some("knn num_candidates 101"),
        ),
        (
            json!({"retriever": {"rrf": {"retrievers": [{"standard": {"query": {"match_all": {}}}}], "rank_window_size": 1000}}}),
            vec![],
            Some("rank_window_size 1000"),
        ),
        (
            json!({"retriever": {"linear": {"retrievers": [], "rank_window_size": 100}}}),
            vec![],
            None,
        ),
        (
            json!({"sub_searches": [{"query": {"match_all": {}}}], "rank": {"rrf": {"window_size": 300}}}),
            vec![],
            Some("window_size 300"),
        ),
        (
            json!({"sub_searches": [{"query": {"match_all": {}}}], "rank": {"rrf": {"rank_window_size": 300}}}),
            vec![],
            Some("rank_window_size 300"),
        ),
        (
            json!({"query": {"nested": {"path": "p", "query": {"match_all": {}}, "inner_hits": {"size": 101}}}}),
            vec![],
            Some("inner_hits size 101"),
        ),
        (
            json!({"query": {"nested": {"path": "p", "query": {"match_all": {}}, "inner_hits": {"from": 99}}}}),
            vec![],
            Some("from + inner_hits size 102"),
        ),
        (
            json!({"collapse": {"field": "u", "inner_hits": [{"name": "a", "size": 5}, {"name": "b", "size": 200}]}}),
            vec![],
            Some("inner_hits size 200"),
        ),
        (
            json!({"aggs": {"t": {"terms": {"field": "x"}, "aggs": {"h": {"top_hits": {"size": 101}}}}}}),
            vec![],
            Some("top_hits size 101"),
        ),
        (
            json!({"aggs": {"h": {"top_hits": {"from": 98}}}}),
            vec![],
            Some("from + top_hits size 101"),
        ),
        (
            json!({"aggs": {"h": {"top_hits": {"size": 100}}}}),
            vec![],
            None,
        ),
    ];
    for (body, params, expected) in cases {
        let got = run(&g, body.clone(), &params);
        match expected {
            None => assert!(got.is_ok(), "{body} {params:?}: {got:?}"),
            Some(text) => {
                let e = got.expect_err(&format!("{body} {params:?} passed"));
                assert!(e.contains(text), "{body}: {e}");
                assert!(e.contains("max_size 100"), "{e}");
            }
        }
    }
    // The default size (10) counts when nothing is given.
    let tiny = guard(Some(5), None, None);
    assert!(run(&tiny, json!({}), &[])
        .unwrap_err()
        .contains("size 10 exceeds"));
    assert!(run(&tiny, json!({"size": 0}), &[]).is_ok());
}

#[test]
fn max_buckets_multiplies_through_sub_aggregations() {
    let g = guard(None, Some(1000), None);
    let cases: Vec<(Value, Option<u64>)> = vec![
        (
            json!({"aggs": {"t": {"terms": {"field": "x", "size": 1000}}}}),
            None,
        ),
        (
            json!({"aggs": {"t": {"terms": {"field": "x", "size": 1001}}}}),
            Some(1001),
        ),
        (
            json!({"aggregations": {"t": {"multi_terms": {"terms": [], "size": 2000}}}}),
            Some(2000),
        ),
        // 100 + 100 × 10 (the default terms size) = 1100.
        (
            json!({"aggs": {"t": {"terms": {"field": "x", "size": 100}, "aggs": {"u": {"terms": {"field": "y"}}}}}}),
            Some(1100),
        ),
        // Metrics under buckets add nothing.
        (
            json!({"aggs": {"t": {"terms": {"field": "x", "size": 1000}, "aggs": {"a": {"avg": {"field": "y"}}}}}}),
            None,
        ),
        // Siblings add up.
        (
            json!({"aggs": {"a": {"terms": {"field": "x", "size": 600}}, "b": {"composite": {"size": 600, "sources": []}}}}),
            Some(1200),
        ),
        (json!({"aggs": {"c": {"composite": {"sources": []}}}}), None),
        (
            json!({"aggs": {"g": {"geotile_grid": {"field": "p"}}}}),
            Some(10_000),
        ),
        (
            json!({"aggs": {"d": {"auto_date_histogram": {"field": "t", "buckets": 5000}}}}),
            Some(5000),
        ),
        (
            json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1, "hard_bounds": {"min": 0, "max": 5000}}}}}),
            Some(5001),
        ),
        (
            json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 10, "extended_bounds": {"min": 0, "max": 5000}}}}}),
            None,
        ),
        (
            json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1m", "extended_bounds": {"min": 0, "max": 86_400_000}}}}}),
            Some(1441),
        ),
        // A histogram without numeric bounds depends on the data: one bucket here.
        (
            json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1s"}, "aggs": {"t": {"terms": {"field": "x", "size": 999}}}}}}),
            None,
        ),
        (
            json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1s"}, "aggs": {"t": {"terms": {"field": "x", "size": 1000}}}}}}),
            Some(1001),
        ),
        (
            json!({"aggs": {"f": {"filter": {"match_all": {}}, "aggs": {"t": {"terms": {"field": "x", "size": 1000}}}}}}),
            Some(1001),
        ),
        (
            json!({"aggs": {"r": {"range": {"field": "n", "ranges": [{}, {}, {}]}, "aggs": {"t": {"terms": {"field": "x", "size": 400}}}}}}),
            Some(1203),
        ),
        (
            json!({"aggs": {"f": {"filters": {"filters": {"a": {}, "b": {}}, "other_bucket": true}, "aggs": {"t": {"terms": {"field": "x", "size": 400}}}}}}),
            Some(1203),
        ),
        (
            json!({"aggs": {"n": {"nested": {"path": "p"}, "aggs": {"r": {"reverse_nested": {}, "aggs": {"t": {"terms": {"field": "x", "size": 998}}}}}}}}),
            None,
        ),
        (
            json!({"aggs": {"n": {"nested": {"path": "p"}, "aggs": {"r": {"reverse_nested": {}, "aggs": {"t": {"terms": {"field": "x", "size": 999}}}}}}}}),
            Some(1001),
        ),
    ];
    for (body, over) in cases {
        let got = run(&g, body.clone(), &[]);
        match over {
            None => assert!(got.is_ok(), "{body}: {got:?}"),
            Some(n) => assert_eq!(
                got.unwrap_err(),
                format!(
                    "aggregations able to return {n} buckets exceed this token's max_buckets 1000"
                ),
                "{body}"
            ),
        }
    }
    // Deep trees saturate instead of overflowing.
    let mut aggs = json!({"t": {"terms": {"field": "x", "size": 65535}}});
    for _ in 0..10 {
        aggs = json!({"t": {"terms": {"field": "x", "size": 65535}, "aggs": aggs}});
    }
    assert!(run(&g, json!({ "aggs": aggs }), &[])
        .unwrap_err()
        .contains(&u64::MAX.to_string()));
}

#[test]
fn search_timeout_replaces_longer_or_missing_timeouts() {
    let g = guard(None, None, Some(30_000));
    for (body, params, expected) in [
        (json!({}), vec![], "30000ms"),
        (json!({"timeout": "1m"}), vec![], "30000ms"),
        (json!({"timeout": "5s"}), vec![], "5000ms"),
        (json!({"timeout": "-1"}), vec![], "30000ms"),
        (json!({}), vec![("timeout", "10s")], "10000ms"),
        (
            json!({"timeout": "20s"}),
            vec![("timeout", "1h")],
            "20000ms",
        ),
        (
            json!({"timeout": "1h"}),
            vec![("timeout", "250ms")],
            "250ms",
        ),
        (json!({"timeout": "0ms"}), vec![], "1ms"),
    ] {
        let (out, params) = run(&g, body.clone(), &params).unwrap();
        assert_eq!(out["timeout"], json!(expected), "{body}");
        assert!(
            params.iter().all(|(k, _)| k != "timeout"),
            "one timeout reaches the backend"
        );
    }
}

#[test]
fn bad_uri_sizes_are_400s() {
    let g = guard(Some(10), None, None);
    let e = run(&g, json!({}), &[("size", "x")]).unwrap_err();
    assert!(e.contains("[size]"), "{e}");
}
