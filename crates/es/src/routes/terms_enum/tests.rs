use super::*;

fn tenant_a() -> FilterSet {
    FilterSet::new([("tenant".to_string(), "a".to_string())])
}

#[test]
fn kibana_suggestion_request_becomes_a_filtered_terms_aggregation() {
    let body = json!({
        "field": "user", "string": "al", "size": 5,
        "index_filter": {"range": {"@timestamp": {"gte": "now-15m"}}},
    });
    let (out, spec) = search_body(Some(body), &tenant_a()).unwrap();
    assert_eq!(
        out,
        json!({
            "size": 0,
            "query": {"bool": {
                "filter": [{"term": {"tenant": {"value": "a"}}}],
                "must": [{"bool": {"filter": [
                    {"range": {"@timestamp": {"gte": "now-15m"}}},
                    {"prefix": {"user": {"value": "al", "case_insensitive": false}}},
                ]}}],
            }},
            "aggs": {"terms_enum": {"terms": {
                "field": "user", "size": 5, "order": {"_key": "asc"}, "include": "al.*",
            }}},
        })
    );
    assert_eq!(
        spec,
        Answer {
            prefix: "al".into(),
            case_insensitive: false,
            search_after: None,
            size: 5
        }
    );
}

#[test]
fn kibana_value_suggestions_body_is_accepted() {
    // Kibana's unified search (autocomplete/terms_enum.ts): filters and a `_tier` terms
    // clause in `index_filter`, no size.
    let body = json!({
        "field": "user.keyword",
        "string": "al",
        "index_filter": {"bool": {"must": [
            {"range": {"@timestamp": {"gte": "2024-01-01T00:00:00.000Z", "format": "strict_date_optional_time"}}},
            {"terms": {"_tier": ["data_hot", "data_warm", "data_content", "data_cold"]}},
        ]}},
    });
    let (out, spec) = search_body(Some(body.clone()), &tenant_a()).unwrap();
    assert_eq!(spec.size, DEFAULT_SIZE);
    assert_eq!(
        out["query"]["bool"]["must"][0]["bool"]["filter"][0],
        body["index_filter"]
    );
    assert_eq!(
        out["query"]["bool"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}])
    );
}

#[test]
fn defaults_and_optional_clauses() {
    let (out, spec) = search_body(Some(json!({"field": "user"})), &tenant_a()).unwrap();
    assert_eq!(out["aggs"]["terms_enum"]["terms"]["size"], json!(10));
    assert!(out["aggs"]["terms_enum"]["terms"].get("include").is_none());
    assert_eq!(
        out["query"]["bool"]["must"][0],
        json!({"bool": {"filter": []}})
    );
    assert_eq!(spec.size, 10);

    let (out, _) = search_body(
        Some(
            json!({"field": "user", "string": "B.o", "case_insensitive": true,
                        "search_after": "bob", "timeout": "2s"}),
        ),
        &tenant_a(),
    )
    .unwrap();
    assert_eq!(out["timeout"], json!("2s"));
    assert_eq!(
        out["query"]["bool"]["must"][0]["bool"]["filter"],
        json!([
            {"prefix": {"user": {"value": "B.o", "case_insensitive": true}}},
            {"range": {"user": {"gt": "bob"}}},
        ])
    );
    assert_eq!(
        out["aggs"]["terms_enum"]["terms"]["include"],
        json!("[bB]\\.[oO].*")
    );
}

/// A prefix (`string`) or `search_after` on a field that may be a metadata field builds a
/// multi-term query the DSL refuses (`prefix` on `_id`): refused here alike, with a reason
/// naming the route; the same field without them, and `_index` (a prefix on it is the
/// token's own index names), pass.
#[test]
fn prefixes_and_ranges_on_metadata_fields_are_refused_as_in_the_dsl() {
    for body in [
        json!({"field": "_id", "string": "a"}),
        json!({"field": "_id", "search_after": "a"}),
        json!({"field": "_routing", "string": "a"}),
        json!({"field": "_version", "string": "1"}),
        json!({"field": "_tier", "string": "data_", "case_insensitive": true}),
    ] {
        let err = search_body(Some(body.clone()), &tenant_a()).unwrap_err();
        assert_eq!(err.kind, crate::RejectKind::Forbidden, "{body}");
        assert!(
            err.reason.contains("terms enum on ["),
            "{body}: {}",
            err.reason
        );
        // The DSL refuses the same multi-term query from a client.
        let field = body["field"].as_str().unwrap();
        let q = json!({"prefix": {field: {"value": "a"}}});
        assert!(crate::dsl::rewrite::check_query(&q).is_err(), "{q}");
    }
    for body in [
        json!({"field": "_id"}),
        json!({"field": "_index", "string": "logs-"}),
        json!({"field": "user", "string": "a", "search_after": "ab"}),
    ] {
        assert!(
            search_body(Some(body.clone()), &tenant_a()).is_ok(),
            "{body}"
        );
    }
}

#[test]
fn bad_bodies_are_refused() {
    let cases = [
        (None, "needs a body"),
        (Some(json!([])), "JSON object"),
        (Some(json!({"string": "a"})), "needs [field]"),
        (Some(json!({"field": "*"})), "[field]"),
        (Some(json!({"field": 3})), "[field]"),
        (Some(json!({"field": "_seq_no"})), "[_seq_no]"),
        (Some(json!({"field": "u", "size": -1})), "[size]"),
        (Some(json!({"field": "u", "size": 10001})), "[size]"),
        (Some(json!({"field": "u", "size": 0})), "[size]"),
        (Some(json!({"field": "u", "size": 1.5})), "[size]"),
        (Some(json!({"field": "u", "timeout": "soon"})), "[timeout]"),
        (
            Some(json!({"field": "u", "case_insensitive": "yes"})),
            "[case_insensitive]",
        ),
        (Some(json!({"field": "u", "foo": 1})), "[foo]"),
        (
            Some(json!({"field": "u", "index_filter": {"wrapper": {"query": "e30="}}})),
            "",
        ),
    ];
    for (body, needle) in cases {
        let err = search_body(body.clone(), &tenant_a()).unwrap_err();
        assert!(err.reason.contains(needle), "{body:?}: {}", err.reason);
    }
}

#[test]
fn answer_has_the_terms_enum_shape_and_drops_keys_outside_the_request() {
    let spec = Answer {
        prefix: "b".into(),
        case_insensitive: true,
        search_after: Some("bb".into()),
        size: 2,
    };
    let response = json!({
        "took": 1, "timed_out": false,
        // A skipped shard is decided from every tenant's values: reported as 0.
        "_shards": {"total": 2, "successful": 2, "skipped": 1, "failed": 0},
        "hits": {"total": {"value": 7, "relation": "eq"}, "hits": []},
        "aggregations": {"terms_enum": {"buckets": [
            {"key": "alpha", "doc_count": 1},
            {"key": "bb", "doc_count": 1},
            {"key": "Bc", "doc_count": 1},
            {"key": "bd", "doc_count": 3},
            {"key": "be", "doc_count": 3},
        ]}},
    });
    assert_eq!(
        answer(&spec, &response),
        Some(json!({
            "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0},
            "terms": ["bd", "be"],
            "complete": true,
        }))
    );
}

#[test]
fn answer_is_incomplete_on_timeout_or_shard_failure_and_none_without_the_aggregation() {
    let spec = Answer {
        prefix: String::new(),
        case_insensitive: false,
        search_after: None,
        size: 10,
    };
    let timed_out = json!({"timed_out": true, "_shards": {"failed": 0},
            "aggregations": {"terms_enum": {"buckets": [{"key": 5, "doc_count": 1}]}}});
    assert_eq!(
        answer(&spec, &timed_out),
        Some(json!({"_shards": {"failed": 0}, "terms": ["5"], "complete": false}))
    );
    let failed = json!({"timed_out": false, "_shards": {"failed": 1},
            "aggregations": {"terms_enum": {"buckets": []}}});
    assert_eq!(answer(&spec, &failed).unwrap()["complete"], json!(false));
    assert_eq!(answer(&spec, &json!({"hits": {}})), None);
    // No shard searched (a wildcard that reached no index): no terms, complete.
    let nothing = json!({"_shards": {"total": 0, "failed": 0}, "hits": {"hits": []}});
    assert_eq!(
        answer(&spec, &nothing),
        Some(json!({"_shards": {"total": 0, "failed": 0}, "terms": [], "complete": true}))
    );
    let shards_but_no_aggs = json!({"_shards": {"total": 2, "failed": 0}});
    assert_eq!(answer(&spec, &shards_but_no_aggs), None);
}

#[test]
fn prefix_matching_folds_case_only_when_asked() {
    assert!(has_prefix("Bob", "bo", true));
    assert!(!has_prefix("Bob", "bo", false));
    assert!(has_prefix("bob", "bo", false));
    assert!(!has_prefix("b", "bo", true));
    assert!(has_prefix("anything", "", false));
}

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the backend's buckets, the answer holds only keys that start with the
        /// prefix and sort after `search_after`, at most `size` of them, in bucket order.
        #[test]
        fn answers_never_hold_keys_outside_the_request(
            keys in prop::collection::vec("[a-cA-C.]{0,4}", 0..20),
            prefix in "[a-cA-C.]{0,2}",
            case_insensitive in any::<bool>(),
            search_after in prop::option::of("[a-c]{0,3}"),
            size in 1u64..8,
        ) {
            let spec = Answer { prefix: prefix.clone(), case_insensitive, search_after: search_after.clone(), size };
            let buckets: Vec<Value> = keys.iter().map(|k| json!({"key": k, "doc_count": 1})).collect();
            let response = json!({"_shards": {"failed": 0}, "timed_out": false,
                "aggregations": {"terms_enum": {"buckets": buckets}}});
            let out = answer(&spec, &response).expect("an answer");
            let terms = out["terms"].as_array().expect("terms");
            prop_assert!(terms.len() as u64 <= size);
            let mut last = 0;
            for t in terms {
                let t = t.as_str().expect("a string");
                prop_assert!(has_prefix(t, &prefix, case_insensitive));
                if let Some(a) = &search_after {
                    prop_assert!(t > a.as_str());
                }
                let pos = keys[last..].iter().position(|k| k == t).expect("from a bucket");
                last += pos + 1;
            }
        }

        /// Whatever the accepted body, the forwarded query is the token's filters around
        /// the request's clauses, and the aggregation reads only the requested field.
        #[test]
        fn forwarded_search_always_carries_the_token_filters(
            field in "[a-z][a-z_.]{0,11}",
            string in ".{0,8}",
            case_insensitive in any::<bool>(),
            search_after in prop::option::of(".{0,8}"),
        ) {
            let mut body = json!({"field": field, "string": string, "case_insensitive": case_insensitive});
            if let Some(a) = &search_after {
                body["search_after"] = json!(a);
            }
            let (out, _) = search_body(Some(body), &tenant_a()).expect("accepted");
            prop_assert_eq!(
                &out["query"]["bool"]["filter"],
                &json!([{"term": {"tenant": {"value": "a"}}}])
            );
            prop_assert_eq!(&out["size"], &json!(0));
            prop_assert_eq!(&out["aggs"]["terms_enum"]["terms"]["field"], &json!(field));
            let keys: Vec<&String> = out.as_object().expect("object").keys().collect();
            prop_assert!(keys.iter().all(|k| ["size", "timeout", "query", "aggs"].contains(&k.as_str())));
        }
    }
}
