use std::sync::Arc;

use serde_json::{json, Value};

use super::*;

/// The fields `needing_types` names for `body` (no `max_buckets`), or the refusal's reason.
fn needed(body: Value) -> Result<Vec<(String, &'static str)>, String> {
    needed_within(body, None)
}

fn needed_within(
    body: Value,
    max_buckets: Option<u64>,
) -> Result<Vec<(String, &'static str)>, String> {
    let Value::Object(m) = &body else {
        panic!("an object")
    };
    needing_types(Obj::V(m), max_buckets)
        .map(|f| {
            f.fields
                .into_iter()
                .map(|f| (f.field, f.aggregation))
                .collect()
        })
        .map_err(|r| {
            assert_eq!(r.kind, crate::RejectKind::Forbidden, "{}", r.reason);
            r.reason
        })
}

fn hist(params: Value) -> Value {
    json!({"size": 0, "aggs": {"h": {"histogram": params}}})
}

fn date_hist(params: Value) -> Value {
    json!({"size": 0, "aggs": {"h": {"date_histogram": params}}})
}

fn one(field: &str, ty: &'static str) -> Result<Vec<(String, &'static str)>, String> {
    Ok(vec![(field.to_string(), ty)])
}

/// range28: a histogram anywhere in the tree that its own hard bounds do not bound names its
/// field; a search without histograms names nothing.
#[test]
fn unbounded_histograms_anywhere_name_their_field() {
    assert_eq!(needed(json!({"query": {"match_all": {}}})), Ok(vec![]));
    assert_eq!(
        needed(json!({"aggs": {"t": {"terms": {"field": "user"}}}})),
        Ok(vec![])
    );
    assert_eq!(
        needed(hist(json!({"field": "n", "interval": 1}))),
        one("n", "histogram")
    );
    assert_eq!(
        needed(date_hist(
            json!({"field": "@timestamp", "fixed_interval": "1ms"})
        )),
        one("@timestamp", "date_histogram")
    );
    // Under a bucketing parent, under `aggregations`, two levels down; each field once.
    let nested = json!({"aggregations": {
        "by_host": {"terms": {"field": "host"}, "aggs": {
            "over_time": {"date_histogram": {"field": "t", "calendar_interval": "1d"}, "aggregations": {
                "deep": {"histogram": {"field": "r", "interval": 0.5}},
                "again": {"histogram": {"field": "t", "interval": 2}}}}}},
        "flat": {"histogram": {"field": "r", "interval": 1}}}});
    assert_eq!(
        needed(nested),
        Ok(vec![
            ("t".to_string(), "date_histogram"),
            ("r".to_string(), "histogram"),
        ])
    );
    // `min_doc_count` changes nothing: the steps are taken while collecting.
    assert_eq!(
        needed(hist(
            json!({"field": "n", "interval": 1, "min_doc_count": 5})
        )),
        one("n", "histogram")
    );
    // Extended bounds bound the fill, not the steps.
    assert_eq!(
        needed(hist(
            json!({"field": "n", "interval": 1, "extended_bounds": {"min": 0, "max": 9}})
        )),
        one("n", "histogram")
    );
    // No field: nothing to step through (the backend refuses it).
    assert_eq!(needed(hist(json!({"interval": 1}))), Ok(vec![]));
}

/// Both bounds read, within the bucket limits and (numeric) 2^40 intervals of 0: bounded.
#[test]
fn hard_bounds_within_the_limits_bound_the_histogram() {
    for params in [
        json!({"field": "n", "interval": 1, "hard_bounds": {"min": 0, "max": 65_534}}),
        json!({"field": "n", "interval": 0.5, "offset": 0.25, "hard_bounds": {"min": -10, "max": 10}}),
        json!({"field": "n", "interval": "2", "hard_bounds": {"min": "0", "max": "100"}}),
    ] {
        assert_eq!(needed(hist(params.clone())), Ok(vec![]), "{params}");
    }
    for params in [
        json!({"field": "t", "fixed_interval": "1h", "hard_bounds": {"min": 1_700_000_000_000u64, "max": 1_700_086_400_000u64}}),
        json!({"field": "t", "calendar_interval": "1d", "hard_bounds": {"min": 0, "max": 86_400_000}}),
        json!({"field": "t", "fixed_interval": "1d", "format": "epoch_millis",
            "hard_bounds": {"min": "1700000000000", "max": "1700086400000"}}),
        json!({"field": "t", "fixed_interval": "1d", "format": "strict_date_optional_time",
            "hard_bounds": {"min": "2024-01-01T00:00:00.000Z", "max": "2024-12-31T00:00:00.000Z"}}),
    ] {
        assert_eq!(needed(date_hist(params.clone())), Ok(vec![]), "{params}");
    }
}

/// One bound, unread bounds, bounds too wide for the limits, or a numeric histogram's keys
/// past 2^40 intervals: not bounded, the field is named.
#[test]
fn partial_unread_or_too_wide_bounds_leave_the_field_to_look_up() {
    for params in [
        json!({"field": "n", "interval": 1, "hard_bounds": {"min": 0}}),
        json!({"field": "n", "interval": 1, "hard_bounds": {"max": 10}}),
        json!({"field": "n", "interval": 1, "hard_bounds": {"min": 0, "max": null}}),
        json!({"field": "n", "interval": 1, "hard_bounds": {"min": 0, "max": 65_535}}),
        json!({"field": "n", "interval": 1e-9, "hard_bounds": {"min": 0, "max": 1e-3}}),
        // 2^53 from 0 at interval 1: a key past 2^40 intervals.
        json!({"field": "n", "interval": 1, "hard_bounds": {"min": 9_007_199_254_740_000u64, "max": 9_007_199_254_740_100u64}}),
        json!({"field": "n", "interval": 1, "offset": 1e15, "hard_bounds": {"min": 0, "max": 10}}),
        json!({"field": "n", "interval": 1, "hard_bounds": {"min": 10, "max": 0}}),
        json!({"field": "n", "interval": 1, "hard_bounds": "0..10"}),
    ] {
        assert_eq!(
            needed(hist(params.clone())),
            one("n", "histogram"),
            "{params}"
        );
    }
    for params in [
        // 1 ms over two days: 172,800,001 buckets.
        json!({"field": "t", "fixed_interval": "1ms", "hard_bounds": {"min": 0, "max": 172_800_000}}),
        // Strings without a format esgate reads exactly (the field's own format, date math).
        json!({"field": "t", "fixed_interval": "1d", "hard_bounds": {"min": "2024-01-01", "max": "2024-02-01"}}),
        json!({"field": "t", "fixed_interval": "1d", "hard_bounds": {"min": "now-7d", "max": "now"}}),
        json!({"field": "t", "fixed_interval": "1d", "format": "yyyy-MM-dd",
            "hard_bounds": {"min": "2024-01-01", "max": "2024-02-01"}}),
        json!({"field": "t", "fixed_interval": "1d", "format": "strict_date_optional_time",
            "hard_bounds": {"min": "2024-01-01", "max": "2024-02-01"}}),
        json!({"field": "t", "fixed_interval": "1d", "hard_bounds": {"min": 0}}),
    ] {
        assert_eq!(
            needed(date_hist(params.clone())),
            one("t", "date_histogram"),
            "{params}"
        );
    }
    // The token's `max_buckets` is a limit too.
    let params = json!({"field": "n", "interval": 1, "hard_bounds": {"min": 0, "max": 99}});
    assert_eq!(needed_within(hist(params.clone()), Some(100)), Ok(vec![]));
    assert_eq!(needed_within(hist(params), Some(99)), one("n", "histogram"));
}

/// A field `_field_caps` would expand or split, or too long for the lookup's line, cannot be
/// looked up: refused, naming keys only.
#[test]
fn a_field_with_a_wildcard_or_a_comma_is_refused() {
    let long = "f".repeat(MAX_FIELD_LEN + 1);
    for field in ["n*", "a,b", long.as_str()] {
        let reason = needed(hist(json!({"field": field, "interval": 1}))).unwrap_err();
        assert!(reason.contains("[histogram] [field]"), "{reason}");
        assert!(reason.contains("[hard_bounds]"), "{reason}");
        assert!(!reason.contains(field), "{reason}");
        // Bounded, it needs no lookup.
        assert_eq!(
            needed(hist(
                json!({"field": field, "interval": 1, "hard_bounds": {"min": 0, "max": 9}})
            )),
            Ok(vec![])
        );
    }
}

fn fields(names: &[(&str, &'static str)]) -> HistogramFields {
    HistogramFields {
        fields: names
            .iter()
            .map(|(f, a)| HistogramField {
                field: f.to_string(),
                aggregation: a,
            })
            .collect(),
    }
}

fn types(field: &str, pairs: &[(&str, Option<&str>)]) -> Arc<FieldTypes> {
    Arc::new(FieldTypes::new(
        field,
        pairs
            .iter()
            .map(|(i, t)| (i.to_string(), t.map(str::to_string)))
            .collect(),
    ))
}

fn indices(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// range28: the decision from the types, index by index.
#[test]
fn only_types_that_never_step_pass_in_every_index() {
    let h = fields(&[("x", "histogram")]);
    let both = indices(&["logs-a", "logs-b"]);
    for ty in NEVER_STEPS {
        let t = [types(
            "x",
            &[("logs-a", Some(ty)), ("logs-b", Some("long"))],
        )];
        assert_eq!(decide(&h, &both, Some(&t)), Ok(()), "{ty}");
    }
    for ty in [
        "integer_range",
        "long_range",
        "float_range",
        "double_range",
        "date_range",
        "ip_range",
        "alias",
        "keyword",
        "object",
        "histogram",
        "something_new",
    ] {
        let t = [types(
            "x",
            &[("logs-a", Some("long")), ("logs-b", Some(ty))],
        )];
        let r = decide(&h, &both, Some(&t)).unwrap_err();
        assert_eq!(r.kind, crate::RejectKind::Forbidden);
        assert!(r.reason.contains(&format!("type [{ty}]")), "{}", r.reason);
        assert!(
            r.reason.contains("[hard_bounds] with [min] and [max]"),
            "{}",
            r.reason
        );
        // Only the allowed indices the search reaches count.
        assert_eq!(decide(&h, &indices(&["logs-a"]), Some(&t)), Ok(()), "{ty}");
    }
    let unknown = |t: &[Arc<FieldTypes>], at: &[String]| {
        let r = decide(&h, at, Some(t)).unwrap_err();
        assert_eq!(r.kind, crate::RejectKind::Forbidden);
        assert!(r.reason.contains("could not learn"), "{}", r.reason);
    };
    // An index the answer does not describe, or reports a failure for.
    unknown(&[types("x", &[("logs-a", Some("long"))])], &both);
    unknown(
        &[types("x", &[("logs-a", Some("long")), ("logs-b", None)])],
        &both,
    );
    // Another field's types are not this one's.
    unknown(
        &[types(
            "y",
            &[("logs-a", Some("long")), ("logs-b", Some("long"))],
        )],
        &both,
    );
    unknown(&[], &both);
    let r = decide(&h, &both, None).unwrap_err();
    assert!(r.reason.contains("could not learn"), "{}", r.reason);
    // Reaching no index, nothing steps.
    assert_eq!(decide(&h, &[], None), Ok(()));
    // Every field decides.
    let two = fields(&[("x", "histogram"), ("t", "date_histogram")]);
    let t = [
        types("x", &[("logs-a", Some("long"))]),
        types("t", &[("logs-a", Some("date_range"))]),
    ];
    let r = decide(&two, &indices(&["logs-a"]), Some(&t)).unwrap_err();
    assert!(r.reason.starts_with("[date_histogram]"), "{}", r.reason);
}

/// An index given twice with two types is unknown; lookups by index.
#[test]
fn field_types_read_by_index() {
    let t = FieldTypes::new(
        "x",
        vec![
            ("b".into(), Some("long".into())),
            ("a".into(), Some("date".into())),
            ("c".into(), Some("long".into())),
            ("c".into(), Some("long_range".into())),
            ("d".into(), None),
            ("b".into(), Some("long".into())),
        ],
    );
    assert_eq!(t.field(), "x");
    assert_eq!(t.type_in("a"), Some("date"));
    assert_eq!(t.type_in("b"), Some("long"));
    assert_eq!(t.type_in("c"), None);
    assert!(t.covers("c") && t.covers("d"));
    assert_eq!(t.type_in("d"), None);
    assert!(!t.covers("e"));
    assert_eq!(t.type_in("e"), None);
}

/// At most `MAX_FIELDS` distinct fields per expression (each a lookup): the searches of one
/// expression add to one set, refused past it.
#[test]
fn distinct_fields_are_bounded() {
    let aggs = |from: usize, n: usize| {
        let mut aggs = serde_json::Map::new();
        for i in from..from + n {
            // Each field twice: counted once.
            for dup in ["a", "b"] {
                aggs.insert(
                    format!("h{i}{dup}"),
                    json!({"histogram": {"field": format!("f{i}"), "interval": 1}}),
                );
            }
        }
        json!({ "aggs": aggs })
    };
    assert_eq!(needed(aggs(0, MAX_FIELDS)).map(|f| f.len()), Ok(MAX_FIELDS));
    let reason = needed(aggs(0, MAX_FIELDS + 1)).unwrap_err();
    assert!(
        reason.contains(&format!("more than {MAX_FIELDS} fields")),
        "{reason}"
    );
    // Two searches adding to one set.
    let plan = |body: Value, into: &mut HistogramFields| {
        let Value::Object(m) = &body else { panic!() };
        let how = crate::request::dialect::EmptyBuckets::Counted;
        super::super::fill::plan(Obj::V(m), how, None, into).map(|_| ())
    };
    let mut one = HistogramFields::default();
    plan(aggs(0, MAX_FIELDS / 2 + 1), &mut one).unwrap();
    plan(aggs(0, MAX_FIELDS / 2 + 1), &mut one).unwrap();
    assert_eq!(one.names().count(), MAX_FIELDS / 2 + 1);
    let r = plan(aggs(1_000, MAX_FIELDS / 2 + 1), &mut one).unwrap_err();
    assert!(r.reason.contains("more than"), "{}", r.reason);
}
