use serde_json::{json, Value};

use super::*;
use crate::RejectKind;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2024-01-01T00:00:00.000Z and 2024-01-10T23:59:59.999Z.
const FROM: i64 = 1_704_067_200_000;
const TO: i64 = 1_704_931_199_999;

/// [`plan`]'s edits (no `max_buckets`).
fn edits_of(body: Obj<'_>, how: EmptyBuckets) -> Result<Vec<Edit>, Rejection> {
    plan(body, how, None, &mut HistogramFields::default())
}

/// The body after the fill edits for a backend that makes empty buckets first.
fn filled(body: Value) -> Result<Value, RejectKind> {
    let mut body = body;
    let Value::Object(m) = &mut body else {
        panic!("not an object")
    };
    let edits = edits_of(Obj::V(m), EmptyBuckets::MadeFirst).map_err(|r| r.kind)?;
    apply_value(m, edits);
    Ok(body)
}

fn grafana_range() -> Value {
    json!({"range": {"@timestamp": {"format": "epoch_millis", "gte": FROM, "lte": TO}}})
}

/// One date histogram `h` under the range in `bool.filter` (Grafana's shape).
fn dated(h: Value) -> Value {
    json!({"size": 0, "query": {"bool": {"filter": grafana_range()}},
        "aggs": {"2": {"date_histogram": h}}})
}

fn hard(body: &Value) -> (i64, i64) {
    let h = &body["aggs"]["2"]["date_histogram"]["hard_bounds"];
    (h["min"].as_i64().unwrap(), h["max"].as_i64().unwrap())
}

/// Grafana's time series: hard bounds one interval around the range (which is also its
/// extended bounds); the rest of the body as it was.
#[test]
fn grafana_date_histograms_get_hard_bounds_one_interval_around_the_range() {
    let h = json!({"field": "@timestamp", "fixed_interval": "30s", "min_doc_count": 0,
        "extended_bounds": {"min": FROM, "max": TO}, "format": "epoch_millis"});
    let body = dated(h.clone());
    let out = filled(body.clone()).unwrap();
    assert_eq!(hard(&out), (FROM - 30_000, TO + 30_000));
    let mut without = out.clone();
    without["aggs"]["2"]["date_histogram"]
        .as_object_mut()
        .unwrap()
        .remove("hard_bounds");
    assert_eq!(without, body);
    // The bounds come last (both representations append them).
    let keys: Vec<&String> = out["aggs"]["2"]["date_histogram"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys.last().unwrap().as_str(), "hard_bounds");
    // Counted as the limits count: (span / 30 s) + 1.
    let params = out["aggs"]["2"]["date_histogram"].as_object().unwrap();
    let n = values::histogram_buckets("date_histogram", Obj::V(params)).unwrap();
    assert_eq!(n, ((TO - FROM + 60_000) / 30_000 + 1) as u64);
    // The extended bounds wider than the range: the hull.
    let mut wide = h.clone();
    wide["extended_bounds"] = json!({"min": FROM - DAY, "max": TO + DAY});
    assert_eq!(
        hard(&filled(dated(wide)).unwrap()),
        (FROM - DAY - 30_000, TO + DAY + 30_000)
    );
}

/// Calendar units widen by their longest length and a daylight-saving hour; a fixed interval
/// by itself, and by an hour more in a time zone; the offset changes nothing (a key is never
/// more than one interval below its value, whatever the offset).
#[test]
fn the_widening_is_the_longest_interval() {
    let cases: &[(Value, i64)] = &[
        (json!({"calendar_interval": "month"}), 31 * DAY + HOUR),
        (json!({"calendar_interval": "1y"}), 366 * DAY + HOUR),
        (json!({"calendar_interval": "quarter"}), 92 * DAY + HOUR),
        (json!({"calendar_interval": "week"}), 7 * DAY + HOUR),
        (
            json!({"calendar_interval": "day", "time_zone": "Europe/Paris"}),
            DAY + HOUR,
        ),
        (
            json!({"calendar_interval": "hour", "offset": "+30m"}),
            2 * HOUR,
        ),
        (json!({"fixed_interval": "90d"}), 90 * DAY),
        (json!({"fixed_interval": "12h", "offset": "-5h"}), 12 * HOUR),
        (
            json!({"fixed_interval": "12h", "time_zone": "America/New_York"}),
            13 * HOUR,
        ),
        (
            json!({"fixed_interval": "12h", "time_zone": "UTC"}),
            12 * HOUR,
        ),
        (json!({"interval": "1d"}), DAY + HOUR),
        (json!({"interval": 3_600_000}), HOUR),
    ];
    for (interval, width) in cases {
        let mut h = json!({"field": "@timestamp"});
        for (k, v) in interval.as_object().unwrap() {
            h[k] = v.clone();
        }
        let out = filled(dated(h)).unwrap();
        assert_eq!(hard(&out), (FROM - width, TO + width), "{interval}");
    }
}

/// The range is read where every matching document satisfies it: the query itself,
/// `bool.filter` and `bool.must` (arrays or objects, nested), `constant_score.filter`, and the
/// tightest of several; never `should`, `must_not` or `post_filter`.
#[test]
fn only_conjunctive_ranges_bound_the_fill() {
    let h = json!({"field": "@timestamp", "fixed_interval": "1h"});
    let r = grafana_range();
    let inner = json!({"range": {"@timestamp": {"format": "epoch_millis", "gte": FROM + DAY, "lt": TO - DAY}}});
    let read: &[(Value, (i64, i64))] = &[
        (r.clone(), (FROM, TO)),
        (json!({"bool": {"filter": [r.clone()]}}), (FROM, TO)),
        (json!({"bool": {"must": r.clone()}}), (FROM, TO)),
        (
            json!({"bool": {"must": [{"bool": {"filter": [{"match": {"m": "x"}}, r.clone()]}}]}}),
            (FROM, TO),
        ),
        (json!({"constant_score": {"filter": r.clone()}}), (FROM, TO)),
        (
            json!({"bool": {"filter": [r.clone(), inner.clone()], "should": [{"match_all": {}}]}}),
            (FROM + DAY, TO - DAY),
        ),
        // esgate's own wrap: the token's clauses in `filter`, the client's query in `must`.
        (
            json!({"bool": {"filter": [{"term": {"tenant": "a"}}], "must": [{"bool": {"filter": r.clone()}}]}}),
            (FROM, TO),
        ),
    ];
    for (query, (lo, hi)) in read {
        let body = json!({"query": query, "aggs": {"2": {"date_histogram": h.clone()}}});
        let out = filled(body).unwrap();
        assert_eq!(hard(&out), (lo - HOUR, hi + HOUR), "{query}");
    }
    let not_read = [
        json!({"bool": {"should": [r.clone()]}}),
        json!({"bool": {"must_not": [r.clone()]}}),
        json!({"bool": {"filter": {"bool": {"should": r.clone()}}}}),
        json!({"dis_max": {"queries": [r.clone()]}}),
        json!({"match_all": {}}),
    ];
    for query in not_read {
        let body = json!({"query": query, "aggs": {"2": {"date_histogram": h.clone()}}});
        assert_eq!(filled(body), Err(RejectKind::Forbidden), "{query}");
    }
    let post = json!({"post_filter": r.clone(), "aggs": {"2": {"date_histogram": h.clone()}}});
    assert_eq!(filled(post), Err(RejectKind::Forbidden));
    // Beside a kNN search, sub-searches or a retriever the query does not select every
    // document the aggregations see.
    let knn = json!({"query": r, "knn": {"field": "v", "query_vector": [1.0], "k": 1, "num_candidates": 1},
        "aggs": {"2": {"date_histogram": h}}});
    assert_eq!(filled(knn), Err(RejectKind::Forbidden));
}

/// Only what is read exactly: numbers or `epoch_millis`, Dashboards' ISO strings with their
/// format, both bounds, UTC; date math, other formats and time zones are not.
#[test]
fn range_bounds_are_read_exactly_or_not_at_all() {
    let h = json!({"field": "t", "fixed_interval": "1d", "min_doc_count": 0});
    let run = |range: Value| {
        filled(
            json!({"query": {"range": {"t": range}}, "aggs": {"2": {"date_histogram": h.clone()}}}),
        )
    };
    let read: &[(Value, (i64, i64))] = &[
        (
            json!({"gte": FROM, "lte": TO, "format": "epoch_millis"}),
            (FROM, TO),
        ),
        (
            json!({"gt": FROM.to_string(), "lt": TO.to_string(), "format": "epoch_millis"}),
            (FROM, TO),
        ),
        (
            json!({"from": FROM, "to": TO, "format": "epoch_millis", "time_zone": "UTC"}),
            (FROM, TO),
        ),
        (
            json!({"gte": "2024-01-01T00:00:00.000Z", "lte": "2024-01-10T23:59:59.999Z",
                "format": "strict_date_optional_time"}),
            (FROM, TO),
        ),
        (
            json!({"gte": "2000-02-29T12:34:56.789Z", "lte": "2000-03-01T00:00:00.000Z",
                "format": "strict_date_optional_time"}),
            (951_827_696_789, 951_868_800_000),
        ),
    ];
    for (range, (lo, hi)) in read {
        let out = run(range.clone()).unwrap();
        assert_eq!(hard(&out), (lo - DAY, hi + DAY), "{range}");
    }
    let not_read = [
        json!({"gte": FROM, "lte": TO}),
        json!({"gte": FROM, "format": "epoch_millis"}),
        json!({"gte": "now-1h", "lte": "now", "format": "epoch_millis"}),
        json!({"gte": FROM, "lte": TO, "format": "epoch_second"}),
        json!({"gte": FROM, "lte": TO, "format": "epoch_millis", "time_zone": "+01:00"}),
        json!({"gte": "2024-01-01", "lte": "2024-01-10", "format": "strict_date_optional_time"}),
        json!({"gte": "2024-01-01T00:00:00Z", "lte": "2024-01-10T00:00:00Z",
            "format": "strict_date_optional_time"}),
        json!({"gte": "2024-02-30T00:00:00.000Z", "lte": "2024-03-10T00:00:00.000Z",
            "format": "strict_date_optional_time"}),
        json!({"gte": "2024-01-01T00:00:00.000+01:00", "lte": "2024-01-10T00:00:00.000Z",
            "format": "strict_date_optional_time"}),
        json!({"gte": 1.5, "lte": TO, "format": "epoch_millis"}),
    ];
    for range in not_read {
        assert_eq!(run(range.clone()), Err(RejectKind::Forbidden), "{range}");
    }
    // Another field's range says nothing of this one.
    let other = json!({"query": {"range": {"u": {"gte": FROM, "lte": TO, "format": "epoch_millis"}}},
        "aggs": {"2": {"date_histogram": h}}});
    assert_eq!(filled(other), Err(RejectKind::Forbidden));
}

/// A numeric histogram: the key without its offset is what the backend compares with the
/// bounds, so they take in the offset too, and one interval more each side for the doubles.
#[test]
fn numeric_histograms_are_bounded_with_their_offset() {
    let run = |h: Value, range: Value| {
        let body = json!({"query": {"bool": {"filter": [{"range": {"n": range}}]}},
            "aggs": {"h": {"histogram": h}}});
        filled(body).map(|out| {
            let b = &out["aggs"]["h"]["histogram"]["hard_bounds"];
            (b["min"].as_f64().unwrap(), b["max"].as_f64().unwrap())
        })
    };
    assert_eq!(
        run(
            json!({"field": "n", "interval": 10}),
            json!({"gte": 0, "lte": 1000})
        ),
        Ok((-20.0, 1010.0))
    );
    assert_eq!(
        run(
            json!({"field": "n", "interval": 10, "offset": 3}),
            json!({"gt": "0", "lt": 1000})
        ),
        Ok((-23.0, 1010.0))
    );
    assert_eq!(
        run(
            json!({"field": "n", "interval": 10, "offset": -4, "extended_bounds": {"min": -50, "max": 5}}),
            json!({"gte": 0, "lte": 100})
        ),
        Ok((-70.0, 114.0))
    );
    // attack26's search: values 0 and 1e6 at 1e-9 is 10^15 buckets.
    assert_eq!(
        run(
            json!({"field": "n", "interval": 1e-9}),
            json!({"gte": 0, "lte": 1_000_000})
        ),
        Err(RejectKind::BadRequest)
    );
    // Keys that doubles cannot step through (1e20 + 150 is 1e20).
    assert_eq!(
        run(
            json!({"field": "n", "interval": 100}),
            json!({"gte": 1e20, "lte": 1.000001e20})
        ),
        Err(RejectKind::BadRequest)
    );
    let own = json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 100,
        "hard_bounds": {"min": 1e20, "max": 1.000001e20}}}}});
    assert_eq!(filled(own), Err(RejectKind::BadRequest));
    // Unbounded: refused, however the interval.
    let bare = json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1e-9}}}});
    assert_eq!(filled(bare), Err(RejectKind::Forbidden));
}

/// What is left as it was: `min_doc_count` of 1 or more, numeric hard bounds of its own, and
/// every histogram on a backend that counts as it makes them; what is refused says how to fix
/// it.
#[test]
fn bounded_histograms_pass_and_the_rest_is_refused() {
    let as_is = [
        json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1, "min_doc_count": 1}}}}),
        json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1ms", "min_doc_count": "2"}}}}),
        json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1,
            "hard_bounds": {"min": 0, "max": 100}, "extended_bounds": {"min": 10, "max": 20}}}}}),
        json!({"aggs": {"h": {"date_histogram": {"field": "t", "calendar_interval": "day",
            "hard_bounds": {"min": FROM, "max": TO}}}}}),
        json!({"aggs": {"h": {"auto_date_histogram": {"field": "t", "buckets": 10}}}}),
        json!({"aggs": {"h": {"composite": {"sources": [{"d": {"date_histogram": {"field": "t", "fixed_interval": "1ms"}}}]}}}}),
        json!({"query": {"range": {"n": {"gte": 0, "lte": 10}}}}),
    ];
    for body in as_is {
        assert_eq!(filled(body.clone()), Ok(body.clone()), "{body}");
    }
    let refused = [
        json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1}}}}),
        json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1, "min_doc_count": 0,
            "extended_bounds": {"min": 0, "max": 10}}}}}),
        json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1ms",
            "hard_bounds": {"min": "now-1y", "max": "now"}}}}}),
        json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1ms",
            "hard_bounds": {"min": FROM}}}}}),
        json!({"query": grafana_range(), "aggs": {"h": {"date_histogram": {"field": "@timestamp",
            "fixed_interval": "1m", "extended_bounds": {"min": "now-1d", "max": "now"}}}}}),
        json!({"aggregations": {"t": {"terms": {"field": "u"}, "aggs": {"h": {"date_histogram": {"field": "t", "calendar_interval": "year"}}}}}}),
    ];
    for body in refused {
        assert_eq!(filled(body.clone()), Err(RejectKind::Forbidden), "{body}");
        let Value::Object(m) = &body else {
            unreachable!()
        };
        assert_eq!(edits_of(Obj::V(m), EmptyBuckets::Counted), Ok(Vec::new()));
    }
    let m = json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1}}}});
    let reason = edits_of(Obj::V(m.as_object().unwrap()), EmptyBuckets::MadeFirst)
        .unwrap_err()
        .reason;
    for hint in [
        "[min_doc_count] to 1",
        "[hard_bounds]",
        "[range] on its [field]",
    ] {
        assert!(reason.contains(hint), "{reason}");
    }
    // Past the most buckets with this interval: refused, also where the range is read.
    let long = dated(json!({"field": "@timestamp", "fixed_interval": "1ms"}));
    assert_eq!(filled(long), Err(RejectKind::BadRequest));
}

/// Each histogram of the tree is bounded where it is, under any parent and any depth; the
/// limits' count (`cost`) multiplies a parent's buckets by each one's fill.
#[test]
fn nested_histograms_are_each_bounded() {
    let h = json!({"field": "@timestamp", "fixed_interval": "1h"});
    let body = json!({"query": grafana_range(), "aggs": {
        "t": {"terms": {"field": "u", "size": 5}, "aggs": {
            "d": {"date_histogram": h.clone(), "aggs": {
                "n": {"histogram": {"field": "@timestamp", "interval": 3_600_000, "min_doc_count": 1}},
                "e": {"date_histogram": h.clone()}}}}},
        "f": {"filter": {"match_all": {}}, "aggregations": {"d": {"date_histogram": h.clone()}}}}});
    let out = filled(body).unwrap();
    let bounds = json!({"min": FROM - HOUR, "max": TO + HOUR});
    assert_eq!(
        out["aggs"]["t"]["aggs"]["d"]["date_histogram"]["hard_bounds"],
        bounds
    );
    assert_eq!(
        out["aggs"]["t"]["aggs"]["d"]["aggs"]["e"]["date_histogram"]["hard_bounds"],
        bounds
    );
    assert!(out["aggs"]["t"]["aggs"]["d"]["aggs"]["n"]["histogram"]
        .get("hard_bounds")
        .is_none());
    assert_eq!(
        out["aggs"]["f"]["aggregations"]["d"]["date_histogram"]["hard_bounds"],
        bounds
    );
    // terms (5) x (the fill x (the unbounded `n`, counted 1, and `e`'s fill, plus one), plus
    // one), and the filter's fill plus one.
    let fill = ((TO - FROM + 2 * HOUR) / HOUR + 1) as u64;
    let total = 5 * (fill + 1) * (fill + 1) + fill + 1;
    let mut limited = crate::dsl::cost::CostGuard {
        max_buckets: Some(total - 1),
        ..Default::default()
    };
    let mut params = Vec::new();
    let err = limited.search(&mut out.clone(), &mut params).unwrap_err();
    assert_eq!(err.kind, RejectKind::OverLimit);
    assert!(err.reason.contains(&total.to_string()), "{}", err.reason);
    limited.max_buckets = Some(total);
    assert!(limited.search(&mut out.clone(), &mut params).is_ok());
}

/// The tree path writes the same bounds, in the same place, as the serde path.
#[test]
fn the_tree_is_edited_as_serde_json_is() {
    use crate::request::tree;
    let bodies = [
        dated(
            json!({"field": "@timestamp", "fixed_interval": "30s", "min_doc_count": 0,
            "extended_bounds": {"min": FROM, "max": TO}, "format": "epoch_millis"}),
        ),
        json!({"query": {"range": {"n": {"gte": -5.5, "lte": 1e3}}}, "size": 0,
            "aggs": {"a": {"avg": {"field": "n"}}, "t": {"terms": {"field": "u"},
            "aggs": {"h": {"histogram": {"field": "n", "interval": 0.25, "offset": 0.1}}}}}}),
    ];
    for body in bodies {
        let text = serde_json::to_vec(&body).unwrap();
        let arena = tree::Arena::for_body(text.len());
        let mut node = tree::parse(&text, &arena).unwrap();
        node.open();
        let Node::Object(entries) = &mut node else {
            unreachable!()
        };
        let edits = edits_of(Obj::N(entries), EmptyBuckets::MadeFirst).unwrap();
        assert_eq!(edits.len(), 1);
        apply_tree(entries, edits, &arena).unwrap();
        let mut written = Vec::new();
        tree::write(&node, &mut written);
        let serde = filled(body.clone()).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&serde).unwrap()
        );
    }
}

/// Session 28 (perf28a): on the tree path a parsed `aggs` stays one parsed value, each
/// histogram's `hard_bounds` put in its tape and its source text (`Parsed::with_added`), not
/// three containers opened: the bytes written are those of the containers opened and set (the
/// way before) and of the serde path, written whole or item by item, on Grafana's and
/// Dashboards' shapes, a numeric histogram with fractional and negative bounds, bounds before
/// 1970, nested histograms, several in one body (beside ones that fill nothing), under
/// `aggregations`; spelled compactly or with whitespace (the text kept, the bounds spliced in,
/// written whole: the same bytes but for the client's whitespace, session 29) or with an
/// escaped key (no text kept: written item by item, the same bytes). The checks after the
/// fill read the bounds: a second plan finds every histogram bounded, and `max_buckets` counts
/// them as on the serde path.
#[test]
fn hard_bounds_are_spliced_into_the_source_text() {
    use crate::dsl::cost::CostGuard;
    use crate::request::tree;
    let h = json!({"field": "@timestamp", "fixed_interval": "1h"});
    let grafana = json!({"size": 0, "query": {"bool": {"filter": [grafana_range(),
            {"query_string": {"query": "service:s1 AND level:error", "analyze_wildcard": true}}]}},
        "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30s",
            "min_doc_count": 0, "extended_bounds": {"min": FROM, "max": TO}, "format": "epoch_millis"},
            "aggs": {"3": {"terms": {"field": "host.name", "size": 10, "order": {"_count": "desc"}}}}}}});
    let dashboards = json!({"size": 0,
        "query": {"bool": {"must": [], "filter": [{"match_all": {}}, {"range": {"@timestamp": {
            "gte": "2024-01-01T00:00:00.000Z", "lte": "2024-01-10T23:59:59.999Z",
            "format": "strict_date_optional_time"}}}], "should": [], "must_not": []}},
        "aggs": {"2": {"date_histogram": {"field": "@timestamp", "calendar_interval": "1d",
            "min_doc_count": 0, "extended_bounds": {"min": FROM, "max": TO}}}}});
    let numeric = json!({"query": {"range": {"n": {"gte": -5.5, "lte": 1e3}}}, "size": 0,
        "aggs": {"a": {"avg": {"field": "n"}}, "t": {"terms": {"field": "u"},
        "aggs": {"h": {"histogram": {"field": "n", "interval": 0.25, "offset": 0.1}}}}}});
    let before_1970 = json!({"query": {"range": {"@timestamp": {"format": "epoch_millis",
            "gte": -7 * DAY, "lte": 0}}},
        "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}}}});
    let nested = json!({"query": grafana_range(), "aggs": {
        "t": {"terms": {"field": "u", "size": 5}, "aggs": {
            "d": {"date_histogram": h.clone(), "aggs": {
                "n": {"histogram": {"field": "@timestamp", "interval": 3_600_000, "min_doc_count": 1}},
                "e": {"date_histogram": h.clone()}}}}},
        "f": {"filter": {"match_all": {}}, "aggregations": {"d": {"date_histogram": h.clone()}}}}});
    let several = json!({"query": grafana_range(), "size": 0, "aggs": {
        "a": {"date_histogram": h.clone()},
        "m": {"max": {"field": "n"}},
        "b": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1d",
            "extended_bounds": {"min": FROM, "max": TO}}},
        "c": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30m", "min_doc_count": 1}},
        "own": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1d",
            "hard_bounds": {"min": FROM, "max": TO}}},
        "z": {"date_histogram": {"format": "epoch_millis", "field": "@timestamp",
            "fixed_interval": "12h"}}}});
    let aggregations = json!({"query": grafana_range(),
        "aggregations": {"d": {"date_histogram": h.clone()}}, "size": 0});
    let mut kept = 0;
    for body in [
        grafana,
        dashboards,
        numeric,
        before_1970,
        nested,
        several,
        aggregations,
    ] {
        let compact = serde_json::to_string(&body).unwrap();
        let texts = [
            compact.clone(),
            serde_json::to_string_pretty(&body).unwrap(),
            compact.replacen("\"field\"", "\"fi\\u0065ld\"", 1),
            compact.replace("{\"", "{ \"").replace(",\"", ",\n\t\""),
        ];
        let serde = filled(body.clone()).unwrap();
        let serde_text = serde_json::to_string(&serde).unwrap();
        let limited = |max: u64| CostGuard {
            max_buckets: Some(max),
            ..Default::default()
        };
        let count = |reason: String| reason.split(' ').nth(4).unwrap().to_string();
        let serde_count = count(
            limited(1)
                .search(&mut serde.clone(), &mut Vec::new())
                .unwrap_err()
                .reason,
        );
        for text in texts {
            let arena = tree::Arena::for_body(text.len());
            let parse = || {
                let mut node = tree::parse(text.as_bytes(), &arena).unwrap();
                node.open();
                node
            };
            let (mut node, mut opened) = (parse(), parse());
            let (Node::Object(entries), Node::Object(reference)) = (&mut node, &mut opened) else {
                unreachable!()
            };
            let edits = edits_of(Obj::N(entries), EmptyBuckets::MadeFirst).unwrap();
            assert!(!edits.is_empty(), "{text}");
            for edit in &edits {
                apply_opened(reference, edit);
            }
            apply_tree(entries, edits, &arena).unwrap();
            // Still one parsed value, its text kept when the body's was.
            let aggs = entries
                .iter()
                .find(|(k, _)| k.starts_with("agg"))
                .map(|(_, v)| v)
                .unwrap();
            let Node::Parsed(aggs) = aggs else {
                panic!("opened: {text}")
            };
            // Without an escape (compact, pretty or spaced: session 29), the text is kept and
            // the bounds spliced in: the serde path's bytes, but for the client's whitespace.
            if !text.contains('\\') {
                let written = serde_json::to_string(&serde["aggs"].as_object().map_or_else(
                    || serde["aggregations"].clone(),
                    |a| Value::Object(a.clone()),
                ))
                .unwrap();
                let raw = aggs.raw().expect("its text kept");
                tree::tests::writes_as(raw, written.as_bytes(), &text);
                kept += 1;
            }
            // Written whole (from the source), item by item, and the way before: the serde
            // path's bytes (a spaced text's copies but for their whitespace; the same bytes
            // from a compact one).
            let mut from = Vec::new();
            tree::write_from(&node, text.as_bytes(), &mut from);
            let mut before = Vec::new();
            tree::write_from(&opened, text.as_bytes(), &mut before);
            tree::tests::SPANS_OFF.with(|s| s.set(true));
            let mut items = Vec::new();
            tree::write(&node, &mut items);
            tree::tests::SPANS_OFF.with(|s| s.set(false));
            for written in [&from, &before] {
                tree::tests::writes_as(written, serde_text.as_bytes(), &text);
            }
            if text == compact {
                assert_eq!(String::from_utf8_lossy(&from), serde_text, "{text}");
                assert_eq!(String::from_utf8_lossy(&before), serde_text, "{text}");
            }
            assert_eq!(String::from_utf8_lossy(&items), serde_text, "{text}");
            let Node::Object(entries) = &node else {
                unreachable!()
            };
            assert_eq!(
                edits_of(Obj::N(entries), EmptyBuckets::MadeFirst),
                Ok(Vec::new())
            );
            let tree_count = count(
                limited(1)
                    .search_checked(Obj::N(entries), &mut Vec::new())
                    .unwrap_err()
                    .reason,
            );
            assert_eq!(tree_count, serde_count, "{text}");
        }
    }
    assert_eq!(kept, 21);
}

/// An interval in a fraction of a millisecond (`1999999nanos`, `1999micros`, the deprecated
/// numeric `interval: 1.9`) is a whole millisecond to the backend (`TimeValue.millis()` and
/// `longValue()` truncate; `Rounding` takes the millis): the fill is counted with that, not
/// with the fraction, which let one through at twice the most buckets (attack27d).
#[test]
fn fractions_of_a_millisecond_are_counted_as_the_backend_truncates_them() {
    // 100 s: 100,001 one-millisecond buckets, about 50,000 at 1.999999 ms.
    let short = json!({"range": {"@timestamp": {"format": "epoch_millis", "gte": FROM, "lte": FROM + 100_000}}});
    let cases = [
        json!({"fixed_interval": "1999999nanos"}),
        json!({"fixed_interval": "1999micros"}),
        json!({"interval": "1999micros"}),
        json!({"interval": 1.9}),
    ];
    for interval in cases {
        let mut h = json!({"field": "@timestamp"});
        for (k, v) in interval.as_object().unwrap() {
            h[k] = v.clone();
        }
        let body = json!({"query": short.clone(), "aggs": {"2": {"date_histogram": h}}});
        assert_eq!(filled(body), Err(RejectKind::BadRequest), "{interval}");
        // A whole millisecond's worth over a tenth of the span passes, bounded as 1 ms.
        let tenth = json!({"range": {"@timestamp": {"format": "epoch_millis", "gte": FROM, "lte": FROM + 10_000}}});
        let mut h = json!({"field": "@timestamp"});
        for (k, v) in interval.as_object().unwrap() {
            h[k] = v.clone();
        }
        let body = json!({"query": tenth, "aggs": {"2": {"date_histogram": h}}});
        let out = filled(body).unwrap();
        assert_eq!(hard(&out), (FROM - 1, FROM + 10_000 + 1), "{interval}");
    }
    // Elsewhere the interval stays what it was.
    assert_eq!(
        values::date_interval_of("fixed_interval", J::from(&json!("3000000nanos"))).ok(),
        Some(3.0)
    );
    assert!(values::date_interval_of("fixed_interval", J::from(&json!("999999nanos"))).is_err());
    assert_eq!(
        values::date_interval_of("interval", J::from(&json!(2.5))).ok(),
        Some(2.0)
    );
}

/// review27: a bound that is not a finite number (`"NaN"`, `"Infinity"`: the backends parse
/// such strings as doubles) bounds nothing. Every comparison with NaN is false, so NaN hard
/// bounds of the client's own would pass the key steps and `values`' count, yet the backend's
/// `DoubleBounds.contain` keeps every key between them: the whole fill. `number_of` reads only
/// finite numbers; this holds the fill to that (it fails with the filter taken out).
#[test]
fn bounds_that_are_not_finite_bound_nothing() {
    let h = |extra: Value| {
        let mut h = json!({"field": "n", "interval": 1e-6});
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        h
    };
    let own = |min: &str, max: &str| json!({"aggs": {"h": {"histogram": h(json!({"hard_bounds": {"min": min, "max": max}}))}}});
    for (min, max) in [
        ("NaN", "NaN"),
        ("0", "NaN"),
        ("NaN", "1"),
        ("-Infinity", "1"),
    ] {
        assert_eq!(
            filled(own(min, max)),
            Err(RejectKind::Forbidden),
            "{min} {max}"
        );
    }
    let ranged = |range: Value, extra: Value| {
        json!({"query": {"bool": {"filter": [{"range": {"n": range}}]}},
            "aggs": {"h": {"histogram": h(extra)}}})
    };
    for range in [
        json!({"gte": "NaN", "lte": 1000}),
        json!({"gte": 0, "lte": "NaN"}),
        json!({"gte": "-Infinity", "lte": 1}),
    ] {
        assert_eq!(
            filled(ranged(range.clone(), json!({}))),
            Err(RejectKind::Forbidden),
            "{range}"
        );
    }
    let ext = json!({"extended_bounds": {"min": "NaN", "max": 1}});
    assert_eq!(
        filled(ranged(json!({"gte": 0, "lte": 1}), ext)),
        Err(RejectKind::Forbidden)
    );
    // Finite string bounds are still read.
    assert!(filled(ranged(json!({"gte": "0", "lte": "0.01"}), json!({}))).is_ok());
}
