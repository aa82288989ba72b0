use serde_json::json;

use super::*;
use crate::{dsl::rewrite, FilterSet, RejectKind};

fn knn() -> Value {
    json!({"field": "v", "query_vector": [1.0, 0.0], "k": 3, "num_candidates": 10})
}

#[test]
fn becomes_a_search_with_top_level_knn_size_k_and_the_request_filter_inside_knn() {
    let got = to_search(Some(json!({
        "knn": knn(),
        "filter": {"term": {"user": "x"}},
        "_source": ["a"],
        "fields": ["b"],
        "docvalue_fields": ["c"],
        "stored_fields": ["d"]
    })))
    .unwrap();
    let mut want_knn = knn();
    want_knn["filter"] = json!({"term": {"user": "x"}});
    assert_eq!(
        got,
        json!({"knn": want_knn, "size": 3, "_source": ["a"], "fields": ["b"],
                "docvalue_fields": ["c"], "stored_fields": ["d"]})
    );
}

#[test]
fn after_rewrite_the_token_filters_lead_knn_filter_and_no_query_is_added() {
    let filters = FilterSet::new([("tenant".to_string(), "a".to_string())]);
    let body = to_search(Some(
        json!({"knn": knn(), "filter": [{"term": {"user": "x"}}]}),
    ))
    .unwrap();
    let out = rewrite::search(Some(body), &filters).unwrap();
    assert_eq!(
        out["knn"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}, {"term": {"user": "x"}}])
    );
    assert!(out.get("query").is_none(), "{out}");
    let out = rewrite::search(
        Some(to_search(Some(json!({"knn": knn()}))).unwrap()),
        &filters,
    )
    .unwrap();
    assert_eq!(
        out["knn"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}])
    );
}

#[test]
fn undocumented_keys_are_forbidden_and_malformed_bodies_are_bad_requests() {
    let forbidden = [
        json!({"knn": knn(), "query": {"match_all": {}}}),
        json!({"knn": knn(), "aggs": {}}),
        json!({"knn": knn(), "size": 100}),
        json!({"knn": {"field": "v", "query_vector": [1], "k": 1, "num_candidates": 1, "similarity": 1}}),
        json!({"knn": {"field": "v", "query_vector_builder": {}, "k": 1, "num_candidates": 1}}),
    ];
    for b in forbidden {
        assert_eq!(
            to_search(Some(b.clone())).unwrap_err().kind,
            RejectKind::Forbidden,
            "{b}"
        );
    }
    let bad = [
        None,
        Some(json!([])),
        Some(json!({})),
        Some(json!({"knn": []})),
        Some(json!({"knn": {"field": "v", "query_vector": [1], "k": 1}})),
        Some(json!({"knn": {"field": "v", "query_vector": [1], "k": 0, "num_candidates": 1}})),
        Some(json!({"knn": {"field": "v", "query_vector": [1], "k": "x", "num_candidates": 1}})),
    ];
    for b in bad {
        assert_eq!(
            to_search(b.clone()).unwrap_err().kind,
            RejectKind::BadRequest,
            "{b:?}"
        );
    }
}

#[test]
fn the_route_is_forwarded_as_a_filtered_search_on_the_checked_index() {
    use crate::routes::validate_query::tests::run;
    let body = r#"{"knn":{"field":"v","query_vector":[1,0],"k":2,"num_candidates":5}}"#;
    for method in ["GET", "POST"] {
        let p = run(method, "/logs-*/_knn_search", Some("routing=r"), Some(body)).unwrap();
        assert_eq!(p.action, "knn_search");
        assert_eq!(p.path, "/logs-a/_search");
        assert_eq!(
            p.query,
            crate::testing::pairs(&[("routing", "r"), ("pre_filter_shard_size", "2147483647")])
        );
        let b: Value = serde_json::from_slice(&p.body.unwrap().bytes).unwrap();
        assert_eq!(
            b["knn"]["filter"],
            json!([{"term": {"tenant": {"value": "a"}}}])
        );
        assert_eq!(b["size"], 2);
        assert!(b.get("query").is_none());
    }
    for (path, query) in [
        ("/_knn_search", None),
        ("/secret/_knn_search", None),
        ("/logs-a/_knn_search", Some("q=x")),
        ("/logs-a/_knn_search", Some("expand_wildcards=all")),
    ] {
        assert!(run("POST", path, query, Some(body)).is_err(), "{path}");
    }
}

#[test]
fn a_filter_that_escapes_is_refused_by_the_search_rewrite() {
    let body = to_search(Some(
        json!({"knn": knn(), "filter": {"wrapper": {"query": "e30="}}}),
    ))
    .unwrap();
    let filters = FilterSet::new([("tenant".to_string(), "a".to_string())]);
    assert_eq!(
        rewrite::search(Some(body), &filters).unwrap_err().kind,
        RejectKind::Forbidden
    );
}
