//! The aggregations a token may run, as a table: each type's parameters and what their values
//! must be (see `query` for [`Slot`] and the walker). Refused anywhere: `global` (escapes the
//! query), `significant_*` (index-wide background statistics), samplers, scripts, joins,
//! `min_doc_count` below 1 on terms-like aggregations (a bucket per term of the whole index).
//! Field names and values are checked by `fields` and `values` beside the key check.

use super::json::J;

use super::query::{
    array_of, check as check_query, flat, inert, keyed, keys, params, slot_of, table, Keys, Slot,
    SortAt, Table, TOP_HITS,
};
use super::{expansion, fields, values};
use crate::error::printable;
use crate::Rejection;

/// Checks an aggregations object (`{"<name>": {"<type>": {...}, "aggs": {...}}}`).
pub fn check_aggs(v: J<'_>) -> Result<(), Rejection> {
    let m = super::query::object(v, "aggs")?;
    for agg in m.values() {
        let def = super::query::object(agg, "aggs")?;
        if def.contains_key("aggs") && def.contains_key("aggregations") {
            return Err(Rejection::bad_request(
                "aggregation has both [aggs] and [aggregations]",
            ));
        }
        let mut types = 0;
        for (k, val) in def {
            match k {
                "aggs" | "aggregations" => check_aggs(val)?,
                "meta" => inert(val)?,
                // The top documents by score per shard: which are sampled, and so every
                // count below, depends on index-wide term statistics.
                "sampler" | "diversified_sampler" => return Err(expansion::statistics(k)),
                _ => {
                    types += 1;
                    check_agg_type(k, val)?;
                    fields::check_agg(k, val)?;
                    values::check_agg(k, val, def)?;
                }
            }
        }
        if types != 1 {
            return Err(Rejection::bad_request(
                "an aggregation needs exactly one type",
            ));
        }
    }
    Ok(())
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
    min_doc_count_positive(body)
}

fn multi_terms_agg(body: J<'_>, ty: &str) -> Result<(), Rejection> {
    keyed(body, ty, MULTI_TERMS)?;
    min_doc_count_positive(body)
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

fn min_doc_count_positive(body: J<'_>) -> Result<(), Rejection> {
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
    use super::*;
    use crate::dsl::query::assert_each_key_once;

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
