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
    check_aggs_with(v, true)?;
    nested_scope(v, None)
}

/// Nested aggregations stay inside the documents they start from (aggs16, H). Elasticsearch
/// (and OpenSearch, the same code) joins nested documents by their position in the shard, never
/// by the document they belong to: `nested` collects the documents of its `path` between the
/// previous document of the enclosing scope and the current one (`NestedAggregator`:
/// `prevSetBit`), `reverse_nested` the next document of its `path` (`ReverseNestedAggregator`:
/// `nextSetBit`), and a `nested` query built inside a nested aggregation joins to the
/// enclosing scope's documents the same way (`NestedQueryBuilder` reads the nested scope).
/// Neither checks that the path is a descendant (or, for `reverse_nested`, an ancestor) of the
/// scope, so a sibling or upward path reaches the nested objects of neighbouring documents,
/// other tenants' included, which the token's filter never saw: `reverse_nested` with a sibling
/// path puts the next document's objects in its sub-aggregations. Refused: a `nested` path
/// that is not below the enclosing one (by name: `a.b` is below `a`), a `reverse_nested` path
/// that is not the enclosing one or above it (no path: the root, always), and `nested`
/// queries and nested sorts in other aggregations' parameters (`filter`, `filters`,
/// `top_hits`, `top_metrics`) likewise. Queries check their own `nested` clauses
/// (`query::nested_inside`).
fn nested_scope(aggs: J<'_>, scope: Option<&str>) -> Result<(), Rejection> {
    let Some(aggs) = aggs.as_object() else {
        return Ok(());
    };
    aggs.try_each(|_, def| {
        let Some(def) = def.as_object() else {
            return Ok(());
        };
        let mut inner = scope;
        def.try_each(|ty, body| {
            match ty {
                "aggs" | "aggregations" | "meta" => {}
                "nested" => {
                    if let Some(path) = body.get("path").and_then(J::as_str) {
                        below(path, scope, "nested aggregation")?;
                        inner = Some(path);
                    }
                }
                "reverse_nested" => match body.get("path").and_then(J::as_str) {
                    None => inner = None,
                    Some(path) => {
                        if !scope.is_some_and(|s| s == path || below_name(s, path)) {
                            return Err(outside(path, scope, "reverse_nested aggregation"));
                        }
                        inner = Some(path);
                    }
                },
                // `filter`/`filters` queries, `top_hits`/`top_metrics` nested sorts: built in
                // the scope too. At the root every path is below it, and the nested clauses
                // and sorts inside check their own (`query::nested_inside`): nothing to walk.
                _ if scope.is_some() => nested_queries(body, scope)?,
                _ => {}
            }
            Ok(())
        })?;
        def.try_each(|k, subs| match k {
            "aggs" | "aggregations" => nested_scope(subs, inner),
            _ => Ok(()),
        })
    })
}

/// Every `nested` query in `q` (an object under a `nested` key with a string `path`) is below
/// `scope`, and the `nested` queries inside it below its own path.
pub(crate) fn nested_queries(q: J<'_>, scope: Option<&str>) -> Result<(), Rejection> {
    match q {
        J::Object(m) => m.try_each(|k, v| {
            let path = (k == "nested")
                .then(|| v.get("path").and_then(J::as_str))
                .flatten();
            match path {
                Some(path) => {
                    below(path, scope, "nested query")?;
                    nested_queries(v, Some(path))
                }
                None => nested_queries(v, scope),
            }
        }),
        J::Array(items) => items.try_each(|v| nested_queries(v, scope)),
        _ => Ok(()),
    }
}

fn below(path: &str, scope: Option<&str>, what: &str) -> Result<(), Rejection> {
    match scope {
        Some(s) if !below_name(path, s) => Err(outside(path, Some(s), what)),
        _ => Ok(()),
    }
}

/// `path` names a field below `scope` (`a.b.c` below `a` and `a.b`; not `ab`, not `a`).
fn below_name(path: &str, scope: &str) -> bool {
    path.strip_prefix(scope)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| !rest.is_empty())
}

fn outside(path: &str, scope: Option<&str>, what: &str) -> Rejection {
    Rejection::forbidden(format!(
        "{what} path [{}] is not allowed inside [{}] for this token: the backend would join \
         nested objects of other documents",
        printable(path),
        printable(scope.unwrap_or("the root document"))
    ))
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
            ("compression", json!(200)),
            ("compression", json!(1e8)),
            ("tdigest", json!({"compression": 100000000})),
            ("tdigest", json!({"compression": 10})),
            ("hdr", json!({"number_of_significant_value_digits": 5})),
            ("hdr", json!(2)),
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
                    let general = check_aggs_with(J::from(&aggs), false)
                        .and_then(|()| nested_scope(J::from(&aggs), None));
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

#[cfg(test)]
mod nested_scope_tests {
    use serde_json::{json, Value};

    use super::*;

    fn decide(aggs: &Value) -> Result<(), Rejection> {
        check_aggs(J::from(aggs))
    }

    /// `nested` and `reverse_nested` aggregations (and `nested` queries under them) join by
    /// document position: a path outside the enclosing scope reaches neighbouring documents'
    /// nested objects, another tenant's included (aggs16). Paths below the scope (and, for
    /// `reverse_nested`, the scope or above it, or the root) are what Kibana and clients send.
    #[test]
    fn nested_aggregations_stay_inside_their_documents() {
        let sub = |v: Value| json!({"u": {"terms": {"field": "notes.author"}}, "x": v});
        let accepted = [
            json!({"n": {"nested": {"path": "items"}}}),
            json!({"n": {"nested": {"path": "items.parts"}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"p": {"nested": {"path": "items.parts"},
                "aggs": {"b": {"reverse_nested": {"path": "items"}}, "r": {"reverse_nested": {}},
                         "s": {"reverse_nested": {"path": "items.parts"}}}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"r": {"reverse_nested": {},
                "aggs": {"o": {"nested": {"path": "notes"}}}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"f": {"filter": {"nested": {"path": "items.parts",
                "query": {"term": {"items.parts.sku": "s1"}}}}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"f": {"filters": {"filters": [
                {"term": {"items.sku": "s1"}}, {"nested": {"path": "items.parts", "query": {"match_all": {}}}}]}}}}}),
            json!({"f": {"filter": {"nested": {"path": "items", "query": {"nested": {"path": "items.parts",
                "query": {"match_all": {}}}}}}}}),
            // A field called `nested` is no nested query.
            json!({"n": {"nested": {"path": "items"}, "aggs": {"f": {"filter": {"term": {"nested": "x"}}}}}}),
        ];
        for aggs in &accepted {
            assert_eq!(decide(aggs), Ok(()), "{aggs}");
        }
        let refused = [
            // The next document's `notes`, whoever owns it.
            json!({"n": {"nested": {"path": "items"}, "aggs": {"r": {"reverse_nested": {"path": "notes"},
                "aggs": sub(json!({"max": {"field": "notes.n"}}))}}}}),
            // Below: the next `items.parts` document, after this `items` object's own.
            json!({"n": {"nested": {"path": "items"}, "aggs": {"r": {"reverse_nested": {"path": "items.parts"}}}}}),
            // Back at the root, a path: the next document's objects.
            json!({"n": {"nested": {"path": "items"}, "aggs": {"r": {"reverse_nested": {},
                "aggs": {"s": {"reverse_nested": {"path": "items"}}}}}}}),
            // A sibling, the scope itself, a parent, a name that only starts alike.
            json!({"n": {"nested": {"path": "items"}, "aggs": {"o": {"nested": {"path": "notes"}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"o": {"nested": {"path": "items"}}}}}),
            json!({"n": {"nested": {"path": "items.parts"}, "aggs": {"o": {"nested": {"path": "items"}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"o": {"nested": {"path": "itemsx.a"}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggregations": {"f": {"filter": {"terms": {"x": ["y"]}},
                "aggs": {"o": {"nested": {"path": "notes"}}}}}}}),
            // `nested` queries joined to the enclosing scope's documents.
            json!({"n": {"nested": {"path": "items"}, "aggs": {"f": {"filter": {"nested": {"path": "notes",
                "query": {"term": {"notes.author": "zed"}}}}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"f": {"filter": {"bool": {"filter": [{"nested": {"path": "notes",
                "query": {"match_all": {}}}}]}}}}}}),
            json!({"n": {"nested": {"path": "items"}, "aggs": {"f": {"filters": {"filters": {"a": {"nested": {"path": "notes",
                "query": {"match_all": {}}}}}}}}}}),
            // Nested queries in nested queries, at the root too.
            json!({"f": {"filter": {"nested": {"path": "items", "query": {"nested": {"path": "notes",
                "query": {"match_all": {}}}}}}}}),
        ];
        for aggs in &refused {
            let r = decide(aggs).expect_err(&aggs.to_string());
            assert_eq!(r.kind, crate::RejectKind::Forbidden, "{aggs}");
            assert!(r.reason.contains("path ["), "{aggs}: {}", r.reason);
        }
    }
}

#[cfg(test)]
mod nested_query_scope_tests {
    use serde_json::json;

    use crate::dsl::json::J;
    use crate::dsl::query::check_query;
    use crate::dsl::rewrite::check_aggs;

    /// The same join in queries: a `nested` clause (or nested sort) inside a `nested` clause
    /// joins to the outer path's documents by position (`NestedQueryBuilder` reads the nested
    /// scope), so a path beside or above the outer one matches the token's document on a
    /// neighbour's nested objects (aggs16).
    #[test]
    fn nested_queries_stay_inside_their_documents() {
        let nested = |path: &str, query| json!({"nested": {"path": path, "query": query}});
        let all = json!({"match_all": {}});
        for q in [
            nested("items", all.clone()),
            nested("items", nested("items.parts", all.clone())),
            nested("items.parts", all.clone()),
            nested(
                "items",
                json!({"bool": {"filter": [nested("items.parts", nested("items.parts.x", all.clone()))]}}),
            ),
            json!({"bool": {"must": [nested("items", all.clone()), nested("notes", all.clone())]}}),
        ] {
            assert_eq!(check_query(&q), Ok(()), "{q}");
        }
        for q in [
            nested(
                "items",
                nested("notes", json!({"term": {"notes.author": "zed"}})),
            ),
            nested("items", nested("items", all.clone())),
            nested("items.parts", nested("items", all.clone())),
            nested(
                "items",
                json!({"bool": {"should": [nested("notes", all.clone())]}}),
            ),
            nested(
                "items",
                json!({"bool": {"filter": [nested("items.parts", nested("notes", all.clone()))]}}),
            ),
        ] {
            let r = check_query(&q).expect_err(&q.to_string());
            assert!(r.reason.contains("path ["), "{q}: {}", r.reason);
        }
        // Nested sorts: in `top_hits` under a nested aggregation, and nested in each other.
        let sorted = |scope: &str, path: &str| {
            json!({"n": {"nested": {"path": scope}, "aggs": {"t": {"top_hits": {"sort": [
                {"x.n": {"order": "asc", "nested": {"path": path}}}]}}}}})
        };
        assert_eq!(check_aggs(J::from(&sorted("items", "items.parts"))), Ok(()));
        assert!(check_aggs(J::from(&sorted("items", "notes"))).is_err());
        let in_sort = json!({"t": {"top_hits": {"sort": [{"x.n": {"order": "asc",
            "nested": {"path": "items", "nested": {"path": "notes"}}}}]}}});
        assert!(check_aggs(J::from(&in_sort)).is_err());
        let in_filter = json!({"t": {"top_hits": {"sort": [{"x.n": {"order": "asc",
            "nested": {"path": "items", "filter": nested("notes", all.clone())}}}]}}});
        assert!(check_aggs(J::from(&in_filter)).is_err());
    }
}

#[cfg(test)]
mod index_wide_tests {
    use serde_json::json;

    use super::*;

    /// The aggregations whose answer reads index-wide structures (background sets, score
    /// samples, the whole term dictionary, scripts over any document) or escapes the query,
    /// refused in every position (aggs16 went through each type Elasticsearch and OpenSearch
    /// register). The ones allowed read the matching documents only: `terms`/`multi_terms` drop
    /// zero-count terms on the shard before `shard_size` (`min_doc_count` ≥ 1), date
    /// histograms built as ranges from the shard's min/max keep non-empty ranges only, and a
    /// `missing` value turns the rounding's bounds off (`MissingValues`).
    #[test]
    fn index_wide_aggregations_are_refused() {
        let refused = [
            json!({"global": {}}),
            json!({"significant_terms": {"field": "user"}}),
            json!({"significant_text": {"field": "message"}}),
            json!({"sampler": {"shard_size": 5}}),
            json!({"diversified_sampler": {"field": "user"}}),
            json!({"random_sampler": {"probability": 0.5, "seed": 7}}),
            json!({"categorize_text": {"field": "message"}}),
            json!({"frequent_item_sets": {"fields": [{"field": "tags"}]}}),
            json!({"matrix_stats": {"fields": ["n"]}}),
            json!({"t_test": {"a": {"field": "n"}, "b": {"field": "price"}, "type": "paired"}}),
            json!({"time_series": {}}),
            json!({"ip_prefix": {"field": "ip", "prefix_length": 8}}),
            json!({"variable_width_histogram": {"field": "n", "buckets": 3}}),
            json!({"string_stats": {"field": "user"}}),
            json!({"rate": {"field": "n", "unit": "day"}}),
            json!({"adjacency_matrix": {"filters": {"x": {"match_all": {}}}}}),
            json!({"geo_line": {"point": {"field": "loc"}, "sort": {"field": "t"}}}),
            json!({"children": {"type": "c"}}),
            json!({"parent": {"type": "c"}}),
            json!({"scripted_metric": {"map_script": "1"}}),
            json!({"bucket_script": {"buckets_path": {"x": "s"}, "script": "1"}}),
            json!({"bucket_selector": {"buckets_path": {"x": "s"}, "script": "1"}}),
            json!({"moving_fn": {"buckets_path": "s", "window": 2, "script": "1"}}),
            json!({"terms": {"field": "user", "min_doc_count": 0}}),
            json!({"terms": {"field": "user", "min_doc_count": "0"}}),
            json!({"terms": {"field": "_index", "min_doc_count": 0}}),
            json!({"multi_terms": {"terms": [{"field": "user"}, {"field": "status"}], "min_doc_count": 0}}),
            json!({"terms": {"script": {"source": "doc['user'].value"}}}),
            json!({"composite": {"sources": [{"g": {"geohash_grid": {"field": "loc"}}}]}}),
            json!({"top_hits": {"script_fields": {"x": {"script": "1"}}}}),
            json!({"top_hits": {"explain": true}}),
            json!({"top_hits": {"seq_no_primary_term": true}}),
            json!({"top_metrics": {"metrics": {"field": "n"}, "sort": {"_doc": "asc"}}}),
            json!({"percentiles": {"script": "1"}}),
        ];
        for agg in refused {
            let aggs = json!({ "a": agg });
            assert!(check_aggs(J::from(&aggs)).is_err(), "{aggs}");
        }
        // A `sampler` under an allowed bucket, and an allowed sub-aggregation of a refused one.
        for aggs in [
            json!({"t": {"terms": {"field": "user"}, "aggs": {"s": {"sampler": {}}}}}),
            json!({"g": {"global": {}, "aggs": {"c": {"value_count": {"field": "user"}}}}}),
        ] {
            assert!(check_aggs(J::from(&aggs)).is_err(), "{aggs}");
        }
    }
}
