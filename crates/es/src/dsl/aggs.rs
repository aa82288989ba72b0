//! The aggregations a token may run, as a table: each type's parameters and what their values
//! must be (see `query` for [`Slot`] and the walker). Refused anywhere: `global` (escapes the
//! query), `significant_*` (index-wide background statistics), samplers, scripts, joins,
//! `min_doc_count` below 1 on terms-like aggregations (a bucket per term of the whole index).
//! Field names and values are checked by `fields` and `values` beside the key check.

use super::json::{Obj, J};

use super::query::{
    array_of, check as check_query, flat, inert, keyed, keys, object, params, slot_of, table, Keys,
    Slot, SortAt, Table, TOP_HITS,
};
use super::values::Params;
use super::{expansion, fields, values};
use crate::error::printable;
use crate::Rejection;

/// Checks an aggregations object (`{"<name>": {"<type>": {...}, "aggs": {...}}}`).
pub fn check_aggs(v: J<'_>) -> Result<(), Rejection> {
    check_aggs_with(v, true)
}

/// [`check_aggs`]; `gather` off: every aggregation through the general path (what the one-pass
/// path is compared with: `aggregations_decide_as_the_general_check`, tests).
fn check_aggs_with(v: J<'_>, gather: bool) -> Result<(), Rejection> {
    // Entries walked with `try_each`: no dispatch on the representation per entry (issue 10).
    super::query::object(v, "aggs")?.try_each(|_, agg| {
        let def = super::query::object(agg, "aggs")?;
        // The sub-aggregations in one pass (issue 10: a scan for each key, then one for the
        // value): the first `aggs`, else the first `aggregations` (`values::sub_aggs`).
        let (mut aggs, mut aggregations) = (None, None);
        def.try_each(|k, v| {
            match k {
                "aggs" => _ = aggs.get_or_insert(v),
                "aggregations" => _ = aggregations.get_or_insert(v),
                _ => {}
            }
            Ok::<(), ()>(())
        })
        .ok();
        if aggs.is_some() && aggregations.is_some() {
            return Err(Rejection::bad_request(
                "aggregation has both [aggs] and [aggregations]",
            ));
        }
        let subs = aggs.or(aggregations).and_then(J::as_object);
        let mut types = 0;
        def.try_each(|k, val| {
            match k {
                "aggs" | "aggregations" => check_aggs_with(val, gather)?,
                "meta" => inert(val)?,
                // The top documents by score per shard: which are sampled, and so every
                // count below, depends on index-wide term statistics.
                "sampler" | "diversified_sampler" => return Err(expansion::statistics(k)),
                _ => {
                    types += 1;
                    if !(gather && checked_in_one_pass(k, val, subs)?) {
                        check_agg_type(k, val)?;
                        fields::check_agg(k, val)?;
                        values::check_agg(k, val, def)?;
                    }
                }
            }
            Ok(())
        })?;
        if types != 1 {
            return Err(Rejection::bad_request(
                "an aggregation needs exactly one type",
            ));
        }
        Ok(())
    })
}

/// An aggregation of a type whose slot is a parameter list (`Slot::Params`, and `terms`: its
/// list, then `min_doc_count`) checked as the general path checks it, its parameters read in
/// one pass ([`values::Gathered`]) instead of a scan per parameter the checks read (issue 10:
/// a date histogram's parameters were scanned eight times). `Ok(false)`: not decided here (another
/// slot, or parameters `params` refuses: a `script`, a key not in the list, a value that is not
/// inert), left to the general path for its refusal; known before any other check, so none
/// runs twice. Once the list accepts them, the checks are the general path's own code
/// (`fields::check_agg_in`, `values::check_agg_in`, [`min_doc_count_positive`]) reading the
/// gathered values, which read as the object does (`values::Params`).
fn checked_in_one_pass(ty: &str, body: J<'_>, subs: Option<Obj<'_>>) -> Result<bool, Rejection> {
    let (allowed, terms) = match ty {
        // `terms_agg`, the slot of `terms`.
        "terms" => (TERMS_PARAMS, true),
        _ => match slot_of(AGG_TYPES, ty) {
            Some(Slot::Params(allowed)) => (allowed, false),
            _ => return Ok(false),
        },
    };
    let J::Object(m) = body else {
        return Ok(false);
    };
    let mut gathered = values::Gathered::default();
    let listed = m.try_each(|k, v| {
        if k == "script" || !(allowed.has)(k) || inert(v).is_err() {
            return Err(());
        }
        gathered.put(k, v);
        Ok(())
    });
    if listed.is_err() {
        return Ok(false);
    }
    if terms {
        min_doc_count_positive(&gathered)?;
    }
    fields::check_agg_in(ty, &gathered)?;
    values::check_agg_in(ty, &gathered, subs)?;
    Ok(true)
}

fn check_agg_type(ty: &str, body: J<'_>) -> Result<(), Rejection> {
    match slot_of(AGG_TYPES, ty) {
        Some(slot) => slot.check(body, ty),
        None => Err(not_allowed(ty)),
    }
}

fn not_allowed(ty: &str) -> Rejection {
    Rejection::forbidden(format!(
        "aggregation type [{}] is not allowed for this token",
        printable(ty)
    ))
}

const TERMS_PARAMS: Keys = keys![
    "field",
    "size",
    "shard_size",
    "min_doc_count",
    "shard_min_doc_count",
    "order",
    "include",
    "exclude",
    "missing",
    "execution_hint",
    "collect_mode",
    "show_term_doc_count_error",
    "value_type",
    "format",
];
const HISTOGRAM_PARAMS: Keys = keys![
    "field",
    "interval",
    "min_doc_count",
    "extended_bounds",
    "hard_bounds",
    "offset",
    "order",
    "keyed",
    "missing",
    "format",
];
const DATE_HISTOGRAM_PARAMS: Keys = keys![
    "field",
    "calendar_interval",
    "fixed_interval",
    "interval",
    "min_doc_count",
    "extended_bounds",
    "hard_bounds",
    "offset",
    "order",
    "keyed",
    "missing",
    "format",
    "time_zone",
];
const METRIC_PARAMS: Keys = keys!["field", "missing", "format"];
const BUCKET_PIPELINE_PARAMS: Keys = keys![
    "buckets_path",
    "gap_policy",
    "format",
    "percents",
    "sigma",
    "keyed",
];

const MULTI_TERMS: Table = table![
    (&["terms"], Slot::Check(multi_terms_sources)),
    (
        &[
            "size",
            "shard_size",
            "min_doc_count",
            "shard_min_doc_count",
            "order",
            "show_term_doc_count_error",
            "collect_mode",
        ],
        Slot::Inert,
    ),
];
const FILTERS: Table = table![
    (&["filters"], Slot::Check(named_filters)),
    (&["other_bucket", "other_bucket_key", "keyed"], Slot::Scalar),
];
const COMPOSITE: Table = table![
    (&["sources"], Slot::Check(composite_sources)),
    (&["size"], Slot::Scalar),
    (&["after"], Slot::Inert),
];
const TOP_METRICS: Table = table![
    (&["metrics"], Slot::Inert),
    (&["size"], Slot::Scalar),
    (&["sort"], Slot::Sort(SortAt::Hits)),
];
const BUCKET_SORT: Table = table![
    (&["sort"], Slot::Sort(SortAt::Buckets)),
    (&["from", "size", "gap_policy"], Slot::Scalar),
];

/// Every aggregation type: its slot (the value under `{"<type>": ...}`), or its refusal.
const AGG_TYPES: Table = table![
    (&["terms"], Slot::Check(terms_agg)),
    (&["multi_terms"], Slot::Check(multi_terms_agg)),
    (
        &["rare_terms"],
        Slot::Params(keys![
            "field",
            "max_doc_count",
            "precision",
            "include",
            "exclude",
            "missing",
        ]),
    ),
    (&["histogram"], Slot::Params(HISTOGRAM_PARAMS)),
    (&["date_histogram"], Slot::Params(DATE_HISTOGRAM_PARAMS)),
    (
        &["auto_date_histogram"],
        Slot::Params(keys![
            "field",
            "buckets",
            "format",
            "time_zone",
            "minimum_interval",
            "missing",
        ]),
    ),
    (
        &["range", "ip_range"],
        Slot::Params(keys!["field", "ranges", "keyed", "format", "missing"]),
    ),
    (
        &["date_range"],
        Slot::Params(keys![
            "field",
            "ranges",
            "keyed",
            "format",
            "missing",
            "time_zone"
        ]),
    ),
    (&["missing"], Slot::Params(keys!["field"])),
    (&["nested", "reverse_nested"], Slot::Params(keys!["path"])),
    (&["filter"], Slot::Query),
    (&["filters"], Slot::Object("filters", FILTERS)),
    (&["composite"], Slot::Object("composite", COMPOSITE)),
    (
        &["geohash_grid", "geotile_grid"],
        Slot::Params(keys!["field", "precision", "bounds", "size", "shard_size"]),
    ),
    (
        &["avg", "sum", "min", "max", "value_count", "stats"],
        Slot::Params(METRIC_PARAMS),
    ),
    (
        &["extended_stats"],
        Slot::Params(keys!["field", "missing", "format", "sigma"]),
    ),
    (
        &["median_absolute_deviation", "boxplot"],
        Slot::Params(keys!["field", "missing", "format", "compression"]),
    ),
    (
        &["cardinality"],
        Slot::Params(keys![
            "field",
            "precision_threshold",
            "missing",
            "execution_hint"
        ]),
    ),
    (
        &["percentiles"],
        Slot::Params(keys![
            "field", "percents", "keyed", "tdigest", "hdr", "missing", "format",
        ]),
    ),
    (
        &["percentile_ranks"],
        Slot::Params(keys![
            "field", "values", "keyed", "tdigest", "hdr", "missing", "format",
        ]),
    ),
    (
        &["weighted_avg"],
        Slot::Params(keys!["value", "weight", "format", "value_type"]),
    ),
    (
        &["geo_bounds"],
        Slot::Params(keys!["field", "wrap_longitude"])
    ),
    (&["geo_centroid"], Slot::Params(keys!["field"])),
    (&["top_metrics"], Slot::Object("top_metrics", TOP_METRICS)),
    (&["top_hits"], Slot::Object("hits options", TOP_HITS)),
    (
        &[
            "avg_bucket",
            "sum_bucket",
            "min_bucket",
            "max_bucket",
            "stats_bucket",
            "extended_stats_bucket",
            "percentiles_bucket",
        ],
        Slot::Params(BUCKET_PIPELINE_PARAMS),
    ),
    (
        &["derivative"],
        Slot::Params(keys!["buckets_path", "gap_policy", "format", "unit"]),
    ),
    (
        &["cumulative_sum", "cumulative_cardinality"],
        Slot::Params(keys!["buckets_path", "format"]),
    ),
    (
        &["serial_diff"],
        Slot::Params(keys!["buckets_path", "lag", "gap_policy", "format"]),
    ),
    (&["bucket_sort"], Slot::Object("bucket_sort", BUCKET_SORT)),
    (
        &[
            "global",
            "significant_terms",
            "significant_text",
            "children",
            "parent",
            "scripted_metric",
            "bucket_script",
            "bucket_selector",
            "moving_fn",
            "sampler_random",
            "random_sampler",
            "categorize_text",
            "frequent_item_sets",
        ],
        Slot::Feature,
    ),
];

fn terms_agg(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    params(body, TERMS_PARAMS)?;
    min_doc_count_positive(object(body, "parameters")?)
}

fn multi_terms_agg(body: J<'_>, ty: &str) -> Result<(), Rejection> {
    keyed(body, ty, MULTI_TERMS)?;
    min_doc_count_positive(object(body, ty)?)
}

fn multi_terms_sources(v: J<'_>, key: &str) -> Result<(), Rejection> {
    array_of(v, key, |t| flat(t, keys!["field", "missing"]))
}

/// `filters` of a `filters` aggregation: a list or an object of named queries.
fn named_filters(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    match v {
        J::Array(items) => items.iter().try_for_each(check_query),
        J::Object(named) => named.values().try_for_each(check_query),
        _ => Err(Rejection::bad_request(
            "[filters] must be an object or array",
        )),
    }
}

fn composite_sources(v: J<'_>, key: &str) -> Result<(), Rejection> {
    array_of(v, key, check_composite_source)
}

const COMPOSITE_SOURCE_PARAMS: Keys = keys![
    "field",
    "missing_bucket",
    "missing_order",
    "order",
    "value_type",
    "interval",
    "calendar_interval",
    "fixed_interval",
    "time_zone",
    "format",
    "offset",
    "precision",
    "bounds",
];

fn check_composite_source(v: J<'_>) -> Result<(), Rejection> {
    let (_name, def) = super::query::single_entry(v, "a composite source")?;
    let (ty, body) = super::query::single_entry(def, "a composite source")?;
    match ty {
        "terms" | "histogram" | "date_histogram" | "geotile_grid" => {
            params(body, COMPOSITE_SOURCE_PARAMS)
        }
        _ => Err(not_allowed(ty)),
    }
}

fn min_doc_count_positive<'a>(body: impl Params<'a>) -> Result<(), Rejection> {
    match body.get("min_doc_count") {
        None => Ok(()),
        Some(J::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => Ok(()),
        // Some clients (Grafana) send numbers as strings.
        Some(J::String(s)) if s.parse::<u64>().is_ok_and(|n| n >= 1) => Ok(()),
        Some(_) => Err(Rejection::forbidden(
            "[min_doc_count] below 1 is not allowed on terms aggregations for this token",
        )),
    }
}

#[cfg(test)]
mod table_tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::dsl::query::assert_each_key_once;

    /// Parameter entries of every kind the checks read: each [`values::READ`] key with
    /// accepted and refused values, keys no list allows, `script`, values that are not inert.
    fn entries() -> Vec<(&'static str, Value)> {
        vec![
            ("field", json!("a")),
            ("field", json!("_seq_no")),
            ("field", json!("*no")),
            ("field", json!(1)),
            ("field", json!({"script": "x"})),
            ("path", json!("p")),
            ("path", json!("_seq_no")),
            ("size", json!(10)),
            ("size", json!(0)),
            ("size", json!("5")),
            ("shard_size", json!(70000)),
            ("shard_min_doc_count", json!(-1)),
            ("shard_min_doc_count", json!("2")),
            ("min_doc_count", json!(0)),
            ("min_doc_count", json!(1)),
            ("min_doc_count", json!("2")),
            ("min_doc_count", json!("0")),
            ("order", json!({"_count": "desc"})),
            ("order", json!({"m": "asc"})),
            ("order", json!([{"_key": "asc"}, {"s>m.value": "desc"}])),
            ("order", json!({"_x": "asc"})),
            ("order", json!({"_count": "up"})),
            ("order", json!({"nope": "asc"})),
            ("interval", json!(10)),
            ("interval", json!("1d")),
            ("interval", json!(0)),
            ("calendar_interval", json!("1M")),
            ("calendar_interval", json!("2d")),
            ("fixed_interval", json!("30s")),
            ("fixed_interval", json!("0s")),
            ("extended_bounds", json!({"min": 0, "max": 100})),
            ("extended_bounds", json!({"min": 0, "max": 1e12})),
            ("hard_bounds", json!({"min": 5, "max": 1})),
            ("hard_bounds", json!(1)),
            ("buckets", json!(10)),
            ("buckets", json!(0)),
            ("minimum_interval", json!("hour")),
            ("minimum_interval", json!("x")),
            ("max_doc_count", json!(0)),
            ("max_doc_count", json!(5)),
            ("precision", json!(5)),
            ("precision", json!(40)),
            ("terms", json!([{"field": "a"}, {"field": "_seq_no"}])),
            ("value", json!({"field": "_seq_no"})),
            ("weight", json!({"field": "w"})),
            ("metrics", json!({"field": "_seq_no"})),
            ("sources", json!([{"s": {"terms": {"field": "_seq_no"}}}])),
            ("sources", json!([])),
            ("script", json!({"source": "1"})),
            ("unknown", json!(1)),
            ("format", json!("x")),
            ("missing", json!({"script": 1})),
            ("keyed", json!(true)),
            ("ranges", json!([{"to": 1}])),
            ("buckets_path", json!("a>b")),
            ("percents", json!([1])),
        ]
    }

    /// [`check_aggs`] (aggregations of a parameter-list type checked in one pass) decides as
    /// the general path, refusals included, for every aggregation type and more, with
    /// parameter objects of none, one and two of the entries above, with and without
    /// sub-aggregations (which `order` paths name), and parameters that are not objects.
    #[test]
    fn aggregations_decide_as_the_general_check() {
        let mut types: Vec<&str> = AGG_TYPES.names();
        types.extend(["unknown", "Terms", ""]);
        let entries = entries();
        let mut bodies: Vec<Value> = vec![json!({}), json!(1), json!([]), json!("x")];
        for (i, (k, v)) in entries.iter().enumerate() {
            bodies.push(json!({ *k: v }));
            for (k2, v2) in &entries[i + 1..] {
                if k2 != k {
                    bodies.push(json!({ *k: v, *k2: v2 }));
                }
            }
        }
        let subs = json!({
            "m": {"avg": {"field": "x"}},
            "s": {"filter": {"match_all": {}}, "aggs": {"m": {"max": {"field": "y"}}}},
        });
        let (mut n, mut accepted) = (0, 0);
        for ty in &types {
            // And bodies of one to three entries that the type's parameter list allows.
            let allowed = match (*ty, slot_of(AGG_TYPES, ty)) {
                ("terms", _) => Some(TERMS_PARAMS),
                (_, Some(Slot::Params(keys))) => Some(keys),
                _ => None,
            };
            let own: Vec<&(&str, Value)> = entries
                .iter()
                .filter(|(k, _)| allowed.is_some_and(|a| a.names.contains(k)))
                .collect();
            let mut typed = Vec::new();
            for (i, (k, v)) in own.iter().enumerate() {
                for (j, (k2, v2)) in own.iter().enumerate().skip(i) {
                    for (k3, v3) in own.iter().skip(j) {
                        typed.push(json!({ *k3: v3, *k2: v2, *k: v }));
                    }
                }
            }
            for body in bodies.iter().chain(&typed) {
                for sub in [None, Some("aggs"), Some("aggregations")] {
                    let mut def = Map::new();
                    def.insert(ty.to_string(), body.clone());
                    if let Some(key) = sub {
                        def.insert(key.into(), subs.clone());
                    }
                    let aggs = json!({ "a": def });
                    let general = check_aggs_with(J::from(&aggs), false);
                    accepted += usize::from(general.is_ok());
                    assert_eq!(check_aggs(J::from(&aggs)), general, "{aggs}");
                    n += 1;
                }
            }
        }
        assert!(n > 100_000 && accepted > 4_000, "{n} {accepted}");
    }

    #[test]
    fn tables_name_each_key_once() {
        for (name, table) in [
            ("MULTI_TERMS", MULTI_TERMS),
            ("FILTERS", FILTERS),
            ("COMPOSITE", COMPOSITE),
            ("TOP_METRICS", TOP_METRICS),
            ("BUCKET_SORT", BUCKET_SORT),
            ("AGG_TYPES", AGG_TYPES),
        ] {
            assert_each_key_once(name, table);
            crate::dsl::query::assert_lookups_are_the_scans(name, table);
        }
        for (name, keys) in [
            ("TERMS_PARAMS", TERMS_PARAMS),
            ("HISTOGRAM_PARAMS", HISTOGRAM_PARAMS),
            ("DATE_HISTOGRAM_PARAMS", DATE_HISTOGRAM_PARAMS),
            ("METRIC_PARAMS", METRIC_PARAMS),
            ("BUCKET_PIPELINE_PARAMS", BUCKET_PIPELINE_PARAMS),
            ("COMPOSITE_SOURCE_PARAMS", COMPOSITE_SOURCE_PARAMS),
        ] {
            crate::dsl::query::assert_keys_lookup_is_the_scan(name, keys);
        }
    }
}
