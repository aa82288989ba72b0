//! The query language a token may use, as tables: which keys each query type, each option
//! object and each sub-object takes, and what each key's value must be ([`Slot`]). One walker
//! ([`keyed`]) applies a table; whatever is not a plain key/slot list (field-keyed leaves,
//! geo queries, case-insensitive terms, the text-query guards) is code beside it.
//!
//! Also the leaves both `rewrite` (search and count bodies) and `retriever` build on: the
//! filter wrapper ([`wrap`]), the kNN filter injection ([`filter_knn_queries`],
//! [`prepend_clauses`]). Nothing here imports `rewrite` or `retriever`.
//!
//! Invariant: a query passes [`check`] only if every key on the way down is in a table
//! (or an explicit code path), nothing on the deny-list appears (scripts, joins, remote
//! fetches, `wrapper`, term-statistics expansions: see `expansion`), and field names pass
//! `fields`. Rejections name keys, never values.

use serde_json::{json, Map, Value};

use super::json::{Obj, J};
use crate::request::tree::{Item, Tokens};

use super::expansion;
use super::fields::{self, Position};
use crate::error::printable;
use crate::{FilterSet, Rejection};

// ---- tables ------------------------------------------------------------------------------------

/// What the value under one allow-listed key must be.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    /// One query.
    Query,
    /// One query or a list of queries.
    Queries,
    /// A list of queries.
    QueryList,
    /// A string, number, boolean or null.
    Scalar,
    /// Plain data (no `script`, `_index` or `_id` key anywhere).
    Inert,
    /// A non-negative integer.
    Uint,
    /// A string.
    Str,
    /// A string or a list of strings.
    Strings,
    /// `true` or `false`.
    Bool,
    /// A list of numbers.
    Numbers,
    /// `inner_hits`: one options object or a list of them.
    InnerHits,
    /// A sort (one or a list) at the given place.
    Sort(SortAt),
    /// An object whose keys are all in the list, with inert values.
    Flat(Keys),
    /// [`Slot::Flat`] without a `script` key (aggregation parameters).
    Params(Keys),
    /// An object (named in messages as the `&str`) checked against a table.
    Object(&'static str, Table),
    /// A score function (`field_value_factor`, `gauss`, ...): inert, fields checked.
    ScoreFunction,
    /// Refused: a feature this token may not use.
    Feature,
    /// Refused: a score threshold (scores carry index-wide statistics).
    ScoreThreshold,
    /// Refused: picks terms by index-wide statistics.
    Statistics,
    /// Anything else: code, given the value and its key.
    Check(fn(J<'_>, &str) -> Result<(), Rejection>),
}

/// Groups of keys and the slot their values fill; a key in no group is not allowed. Written
/// with [`table!`], which makes the lookup from the same list.
pub(crate) type Table = &'static TableDef;

/// What [`table!`] makes of a list of groups: the groups, and a lookup written from them.
pub(crate) struct TableDef {
    /// The groups, in order (a key in two would be found in the first:
    /// `tables_name_each_key_once`).
    pub(crate) groups: &'static [(&'static [&'static str], Slot)],
    /// The index in `groups` of the first group naming a key: a `match` on the key written by
    /// [`table!`] from the same list, compiled to a jump on the key's length and a few word
    /// compares (issue 10: a scan compared the key with every name in turn, with a `memcmp`
    /// call for each of the same length). Always [`Iterator::position`] over `groups`:
    /// `assert_lookups_are_the_scans` (tests).
    pub(crate) find: fn(&str) -> Option<usize>,
}

#[cfg(test)]
impl TableDef {
    /// Every key the table names, in order (the tests' probes and bodies).
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.groups
            .iter()
            .flat_map(|(k, _)| k.iter().copied())
            .collect()
    }
}

/// A list of keys (parameter names), written with [`keys!`]: the names, and a membership test
/// written from them (a `match`, as [`TableDef::find`]).
pub(crate) type Keys = &'static KeysDef;

/// See [`Keys`].
pub(crate) struct KeysDef {
    pub(crate) names: &'static [&'static str],
    /// Whether `names` holds a key: always `names.contains(&key)`
    /// (`assert_keys_lookup_is_the_scan`).
    pub(crate) has: fn(&str) -> bool,
}

/// A [`Keys`] from string literals: `keys!["field", "missing"]`.
macro_rules! keys {
    ($($key:literal),+ $(,)?) => {{
        const KEYS: $crate::dsl::query::Keys = &$crate::dsl::query::KeysDef {
            names: &[$($key),+],
            has: |key| matches!(key, $($key)|+),
        };
        KEYS
    }};
}
pub(crate) use keys;

/// A [`Table`] from its groups, each `(&["key", ...], slot)` or `(KEYS, slot)` (a [`Keys`]
/// constant shared by several tables): `table![(&["must", "should"], Slot::Queries), ...]`.
/// The lookup is a `match` with one arm per group, in order (a [`Keys`] group is an arm
/// guarded by its membership test).
macro_rules! table {
    ($($group:tt),+ $(,)?) => {{
        const TABLE: $crate::dsl::query::Table = &$crate::dsl::query::TableDef {
            groups: &[$($crate::dsl::query::table!(@group $group)),+],
            find: |key| $crate::dsl::query::table!(@find key, 0usize, [$($group)+];),
        };
        TABLE
    }};
    (@group (&[$($k:literal),+ $(,)?], $slot:expr $(,)?)) => {
        (&[$($k),+], $slot)
    };
    (@group ($list:ident, $slot:expr $(,)?)) => {
        ($list.names, $slot)
    };
    (@find $key:ident, $n:expr, []; $($arms:tt)*) => {
        match $key {
            $($arms)*
            _ => None,
        }
    };
    (@find $key:ident, $n:expr,
        [(&[$($k:literal),+ $(,)?], $slot:expr $(,)?) $($rest:tt)*]; $($arms:tt)*) => {
        $crate::dsl::query::table!(@find $key, $n + 1, [$($rest)*];
            $($arms)* $($k)|+ => Some($n),)
    };
    (@find $key:ident, $n:expr,
        [($list:ident, $slot:expr $(,)?) $($rest:tt)*]; $($arms:tt)*) => {
        $crate::dsl::query::table!(@find $key, $n + 1, [$($rest)*];
            $($arms)* _ if ($list.has)($key) => Some($n),)
    };
}
pub(crate) use table;

impl Slot {
    pub(crate) fn check(self, v: J<'_>, key: &str) -> Result<(), Rejection> {
        match self {
            Slot::Query => check(v),
            Slot::Queries => query_or_queries(v),
            Slot::QueryList => array_of(v, key, check),
            Slot::Scalar => scalar(v, key),
            Slot::Inert => inert(v),
            Slot::Uint => uint(v, key),
            Slot::Str => string(v, key),
            Slot::Strings => strings(v, key),
            Slot::Bool => boolean(v, key),
            Slot::Numbers => array_of(v, key, |x| number(x, key)),
            Slot::InnerHits => check_inner_hits(v),
            Slot::Sort(at) => check_sort(v, at),
            Slot::Flat(allowed) => flat(v, allowed),
            Slot::Params(allowed) => params(v, allowed),
            Slot::Object(what, table) => keyed(v, what, table),
            Slot::ScoreFunction => {
                inert(v)?;
                fields::check_score_function(key, v)
            }
            Slot::Feature => Err(feature(key)),
            Slot::ScoreThreshold => Err(expansion::score_threshold(key)),
            Slot::Statistics => Err(expansion::statistics(key)),
            Slot::Check(f) => f(v, key),
        }
    }
}

/// The slot of `key` in `table`, if it is allowed there.
#[inline]
pub(crate) fn slot_of(table: Table, key: &str) -> Option<Slot> {
    let i = (table.find)(key)?;
    table.groups.get(i).map(|(_, slot)| *slot)
}

/// An object (named `what` if it is not one) whose every key is in `table`, each value checked
/// by its slot.
pub(crate) fn keyed(v: J<'_>, what: &str, table: Table) -> Result<(), Rejection> {
    object(v, what)?.try_each(|k, val| check_key(table, k, val))
}

/// One key of an object against `table`: its slot's check, or refused when no group names it.
pub(crate) fn check_key(table: Table, key: &str, value: J<'_>) -> Result<(), Rejection> {
    match slot_of(table, key) {
        Some(slot) => slot.check(value, key),
        None => Err(key_not_allowed(key)),
    }
}

const BOOL: Table = table![
    (&["must", "should", "filter", "must_not"], Slot::Queries),
    (
        &[
            "minimum_should_match",
            "boost",
            "_name",
            "adjust_pure_negative",
        ],
        Slot::Scalar,
    ),
];
const BOOSTING: Table = table![
    (&["positive", "negative"], Slot::Query),
    (&["negative_boost", "boost", "_name"], Slot::Scalar),
];
const CONSTANT_SCORE: Table = table![
    (&["filter"], Slot::Query),
    (&["boost", "_name"], Slot::Scalar),
];
const DIS_MAX: Table = table![
    (&["queries"], Slot::QueryList),
    (&["tie_breaker", "boost", "_name"], Slot::Scalar),
];
const NESTED: Table = table![
    (&["query"], Slot::Query),
    (
        &["path", "score_mode", "ignore_unmapped", "boost", "_name"],
        Slot::Scalar,
    ),
    (&["inner_hits"], Slot::InnerHits),
];
const SCORE_FUNCTIONS: Keys = keys![
    "field_value_factor",
    "random_score",
    "gauss",
    "linear",
    "exp",
];
const FUNCTION_SCORE: Table = table![
    (&["query", "filter"], Slot::Query),
    (&["functions"], Slot::Check(score_functions)),
    (
        &[
            "boost",
            "boost_mode",
            "score_mode",
            "max_boost",
            "_name",
            "weight",
        ],
        Slot::Scalar,
    ),
    (&["min_score"], Slot::ScoreThreshold),
    (SCORE_FUNCTIONS, Slot::ScoreFunction),
    (&["script_score"], Slot::Feature),
];
const SCORE_FUNCTION: Table = table![
    (&["filter"], Slot::Query),
    (&["weight"], Slot::Scalar),
    (SCORE_FUNCTIONS, Slot::ScoreFunction),
    (&["script_score"], Slot::Feature),
];
const KNN: Table = table![
    (
        &[
            "field",
            "k",
            "num_candidates",
            "similarity",
            "boost",
            "_name",
        ],
        Slot::Scalar,
    ),
    (&["query_vector"], Slot::Numbers),
    (&["filter"], Slot::Queries),
    (&["inner_hits"], Slot::InnerHits),
    (&["rescore_vector"], Slot::Flat(keys!["oversample"])),
    (&["query_vector_builder"], Slot::Feature),
];
const GEO_SHAPE_FIELD: Table = table![
    (&["shape"], Slot::Inert),
    (&["relation"], Slot::Scalar),
    (&["indexed_shape"], Slot::Feature),
];

/// The per-field options of each field-keyed leaf (`{"<field>": {<options>}}`).
const RANGE_OPTIONS: Keys = keys![
    "gt",
    "gte",
    "lt",
    "lte",
    "from",
    "to",
    "include_lower",
    "include_upper",
    "format",
    "time_zone",
    "relation",
    "boost",
    "_name",
];
const TERM_OPTIONS: Keys = keys!["value", "boost", "case_insensitive", "_name"];
const PREFIX_OPTIONS: Keys = keys!["value", "boost", "rewrite", "case_insensitive", "_name"];
const WILDCARD_OPTIONS: Keys = keys![
    "value",
    "wildcard",
    "boost",
    "rewrite",
    "case_insensitive",
    "_name",
];
const REGEXP_OPTIONS: Keys = keys![
    "value",
    "flags",
    "case_insensitive",
    "rewrite",
    "boost",
    "_name",
];
const MATCH_OPTIONS: Keys = keys![
    "query",
    "operator",
    "minimum_should_match",
    "analyzer",
    "fuzziness",
    "prefix_length",
    "max_expansions",
    "fuzzy_transpositions",
    "fuzzy_rewrite",
    "lenient",
    "zero_terms_query",
    "auto_generate_synonyms_phrase_query",
    "boost",
    "_name",
];
const MATCH_PHRASE_OPTIONS: Keys = keys![
    "query",
    "analyzer",
    "slop",
    "zero_terms_query",
    "boost",
    "_name",
];
const MULTI_MATCH: Keys = keys![
    "query",
    "fields",
    "type",
    "operator",
    "minimum_should_match",
    "analyzer",
    "boost",
    "fuzziness",
    "prefix_length",
    "max_expansions",
    "lenient",
    "slop",
    "tie_breaker",
    "zero_terms_query",
    "auto_generate_synonyms_phrase_query",
    "fuzzy_transpositions",
    "fuzzy_rewrite",
    "_name",
];
const QUERY_STRING: Keys = keys![
    "query",
    "default_field",
    "fields",
    "default_operator",
    "analyzer",
    "quote_analyzer",
    "allow_leading_wildcard",
    "analyze_wildcard",
    "enable_position_increments",
    "fuzziness",
    "fuzzy_max_expansions",
    "fuzzy_prefix_length",
    "fuzzy_transpositions",
    "lenient",
    "minimum_should_match",
    "phrase_slop",
    "quote_field_suffix",
    "rewrite",
    "time_zone",
    "boost",
    "_name",
    "auto_generate_synonyms_phrase_query",
    "type",
    "tie_breaker",
    "escape",
];
const SIMPLE_QUERY_STRING: Keys = keys![
    "query",
    "fields",
    "default_operator",
    "analyzer",
    "flags",
    "fuzzy_max_expansions",
    "fuzzy_prefix_length",
    "fuzzy_transpositions",
    "lenient",
    "minimum_should_match",
    "quote_field_suffix",
    "analyze_wildcard",
    "auto_generate_synonyms_phrase_query",
    "boost",
    "_name",
];
const COMBINED_FIELDS: Keys = keys![
    "query",
    "fields",
    "operator",
    "minimum_should_match",
    "zero_terms_query",
    "auto_generate_synonyms_phrase_query",
    "boost",
    "_name",
];
const RANK_FEATURE: Keys = keys![
    "field",
    "saturation",
    "log",
    "sigmoid",
    "linear",
    "boost",
    "_name",
];

/// Every query type (each in one group only: `tables_name_each_key_once`): its slot (the value under `{"<type>": ...}`), or its refusal.
const QUERY_TYPES: Table = table![
    // The types dashboards send most come first (the lookup is a scan).
    (&["bool"], Slot::Object("bool", BOOL)),
    (&["range"], Slot::Check(range_query)),
    (&["match_phrase"], Slot::Check(match_phrase_query)),
    (&["match"], Slot::Check(match_query)),
    (&["term"], Slot::Check(term_query)),
    (&["terms"], Slot::Check(terms_query)),
    (&["exists"], Slot::Flat(keys!["field", "boost", "_name"])),
    (&["boosting"], Slot::Object("boosting", BOOSTING)),
    (
        &["constant_score"],
        Slot::Object("constant_score", CONSTANT_SCORE),
    ),
    (&["dis_max"], Slot::Object("dis_max", DIS_MAX)),
    (
        &["function_score"],
        Slot::Object("function_score", FUNCTION_SCORE),
    ),
    (&["nested"], Slot::Check(nested_clause)),
    (&["prefix"], Slot::Check(prefix_query)),
    (&["wildcard"], Slot::Check(wildcard_query)),
    (&["regexp"], Slot::Check(regexp_query)),
    // Each picks terms (or keeps or drops them) by what the whole shard holds: fuzzy
    // expansion and phrase prefixes keep `max_expansions` terms of the shard dictionary,
    // `more_like_this` keeps terms by their index-wide document frequency, `common` splits
    // terms by it, `intervals` and `span_multi` expand with a fixed limit.
    (
        &[
            "fuzzy",
            "match_phrase_prefix",
            "match_bool_prefix",
            "more_like_this",
            "common",
            "intervals",
            "span_multi",
        ],
        Slot::Statistics,
    ),
    (&["ids"], Slot::Flat(keys!["values", "boost", "_name"])),
    (
        &["match_all", "match_none"],
        Slot::Flat(keys!["boost", "_name"]),
    ),
    (&["multi_match"], Slot::Check(multi_match_query)),
    (&["query_string"], Slot::Check(query_string_query)),
    (
        &["simple_query_string"],
        Slot::Check(simple_query_string_query),
    ),
    (&["combined_fields"], Slot::Flat(COMBINED_FIELDS)),
    (
        &["distance_feature"],
        Slot::Flat(keys!["field", "origin", "pivot", "boost", "_name"]),
    ),
    (&["rank_feature"], Slot::Flat(RANK_FEATURE)),
    (
        &["geo_distance", "geo_bounding_box"],
        Slot::Check(geo_point_query),
    ),
    (&["geo_shape", "shape"], Slot::Check(geo_shape_query)),
    (&["knn"], Slot::Object("knn", KNN)),
    (
        &[
            "script",
            "script_score",
            "percolate",
            "wrapper",
            "has_child",
            "has_parent",
            "parent_id",
            "pinned",
            "rule",
            "terms_set",
            "template",
            "semantic",
            "sparse_vector",
            "text_expansion",
            "weighted_tokens",
            "hybrid",
            "neural",
        ],
        Slot::Feature,
    ),
];

/// Checks one query object (`{"<type>": {...}}`) recursively against the allow-list.
/// `check` of a serde_json value.
pub fn check_query(v: &Value) -> Result<(), Rejection> {
    check(J::from(v))
}

pub(crate) fn check(v: J<'_>) -> Result<(), Rejection> {
    if let Some(decided) = parsed_scalar_leaf(v) {
        return decided;
    }
    let (ty, body) = single_entry(v, "a query")?;
    if let Some(decided) = scalar_leaf(ty, body) {
        return decided;
    }
    if ty == "range" && range_leaf_passes(body) {
        return Ok(());
    }
    if ty == "bool" {
        if let Some(decided) = bool_query(body) {
            return decided;
        }
    }
    if text_query_passes(ty, body) {
        return Ok(());
    }
    check_type(ty, body)
}

/// [`scalar_leaf`]'s decision for a parsed query, made from its tokens in one look
/// (`Tokens::scalar_leaf`): `{"match_phrase" | "match" | "term": {"<field>": <scalar>}}` whose
/// field is not read specially is allowed exactly when its field name is. `None` for every other
/// query, left to the rest of [`check`] (which decides such a leaf alike, through
/// [`scalar_leaf`]).
/// Issue 10: the twenty leaves of a Kibana search were each read through two `J` objects and
/// their entries, about 200 instructions a leaf.
/// `parsed_scalar_leaves_decide_as_the_general_check` (tests).
#[inline]
fn parsed_scalar_leaf(v: J<'_>) -> Option<Result<(), Rejection>> {
    let J::Object(Obj::T(tokens)) = v else {
        return None;
    };
    scalar_leaf_tokens(tokens)
}

/// [`parsed_scalar_leaf`] of a parsed object's tokens (shared with [`parsed_clause`]).
#[inline(always)]
fn scalar_leaf_tokens(tokens: Tokens<'_>) -> Option<Result<(), Rejection>> {
    #[cfg(test)]
    if table_tests::PARSED_LEAVES_OFF.with(std::cell::Cell::get) {
        return None;
    }
    let (ty, field) = tokens.scalar_leaf()?;
    if !matches!(ty, "match_phrase" | "match" | "term") || read_specially(field) {
        return None;
    }
    Some(fields::check(field, Position::Data))
}

/// A `query_string` or `simple_query_string` query that [`check_type`] accepts, known in one
/// pass over its parameters: each allowed, inert, and an allowed option (`flat`,
/// `expansion::options_of`), the field names and text checked as `check_query_node` and
/// [`flat_text_query`] check them. `false` for any other query, and for any doubt (a check
/// that fails, a parameter given twice), left to [`check_type`], which refuses it with its own
/// reason; such a query has no sub-query, so a second look costs one pass, only when refused.
/// Issue 10: the general path read a Grafana `query_string` in five passes and four scans.
/// `text_queries_decide_as_the_general_check` (tests).
fn text_query_passes(ty: &str, body: J<'_>) -> bool {
    let (syntax, allowed) = match ty {
        "query_string" => (expansion::Syntax::Classic, QUERY_STRING),
        "simple_query_string" => (expansion::Syntax::Simple, SIMPLE_QUERY_STRING),
        _ => return false,
    };
    let J::Object(m) = body else { return false };
    let (mut query, mut default_field, mut fields, mut flags) = (None, None, None, false);
    for (k, v) in m {
        // No allowed parameter but `_name` (which `check_query_node` skips) starts with `_` or
        // `*`: as names they pass `check_query_node`.
        if !(allowed.has)(k) || inert(v).is_err() || expansion::option(k, v).is_err() {
            return false;
        }
        let seen = match k {
            "query" => query.replace(v),
            "default_field" => default_field.replace(v),
            "fields" => fields.replace(v),
            "flags" => {
                flags = true;
                None
            }
            _ => None,
        };
        if seen.is_some() {
            return false;
        }
    }
    let mut targets: Vec<&str> = Vec::new();
    match default_field {
        None => {}
        Some(J::String(f)) if fields::check(f, Position::Data).is_ok() => targets.push(f),
        Some(_) => return false,
    }
    match fields {
        None => {}
        Some(J::Array(items)) => {
            for f in items {
                match f {
                    J::String(f) if fields::check_boosted(f, Position::Data).is_ok() => {
                        targets.push(f)
                    }
                    _ => return false,
                }
            }
        }
        Some(_) => return false,
    }
    match query {
        Some(J::String(q)) => {
            (ty != "query_string" || fields::check_query_text(q).is_ok())
                && !crate::querylang::uri_search::too_deep(q)
                && !(flags && q.contains('~'))
                && expansion::check_text(q, syntax, &targets).is_ok()
        }
        _ => true,
    }
}

/// A `bool` query whose keys are all [`BOOL`]'s, walked with a `match` on each key: what
/// [`check_type`] decides for it, refusals included, since such keys pass `check_query_node`
/// (none starts with `_` or `*` but `_name`, which it skips) and `keyed` then checks each
/// value by its slot, in order, as here. `None` (left to `check_type`, which refuses it as
/// before) when the body is not an object or holds any other key: known before any value is
/// checked, so no query is ever walked twice (a walk per fallback would double at each level
/// of nesting). Issue 10: a Kibana search holds four `bool`s of several keys each; the general
/// path walked each twice and scanned two tables per key.
/// `bool_queries_decide_as_the_general_check` (tests).
fn bool_query(body: J<'_>) -> Option<Result<(), Rejection>> {
    let J::Object(m) = body else { return None };
    if let Obj::T(tokens) = m {
        #[cfg(test)]
        let off = table_tests::PARSED_BOOLS_OFF.with(std::cell::Cell::get);
        #[cfg(not(test))]
        let off = false;
        if !off {
            return parsed_bool(tokens);
        }
    }
    if !m.all(|k, _| bool_key(k)) {
        return None;
    }
    Some(m.try_each(|k, v| match k {
        "must" | "should" | "filter" | "must_not" => query_or_queries(v),
        _ => scalar(v, k),
    }))
}

/// A key of [`BOOL`], by name (the fast paths' test; `bool_queries_decide_as_the_general_check`
/// holds it to the table).
#[inline]
fn bool_key(k: &str) -> bool {
    matches!(
        k,
        "must"
            | "should"
            | "filter"
            | "must_not"
            | "minimum_should_match"
            | "boost"
            | "_name"
            | "adjust_pure_negative"
    )
}

/// [`bool_query`] of a parsed body, read on its tokens: the same keys known first (`None`
/// otherwise, as there), then each value decided in order, each query of a clause by
/// [`parsed_clause`] (what [`check`] decides for it) without a [`J`] made of the list or of
/// the query, and without [`check`] entered again for a scalar leaf or a `bool`: a `bool` of
/// such leaves and such `bool`s is decided in one pass over its tokens. Issue 10: the 2 KB
/// Kibana search's query (three `bool`s, 29 leaves) was 6.7k instructions, about 150 a query
/// in the walk (`query_or_queries`, `Arr::try_each`, a `J` of each item, [`check`] entered
/// again) beside the leaf's own 90 (perf21c); decided here, 3.9k (perf22a).
/// `parsed_bools_decide_as_the_general_check`,
/// `nested_bools_left_to_the_general_check_are_walked_once` (tests).
fn parsed_bool(body: Tokens<'_>) -> Option<Result<(), Rejection>> {
    #[cfg(test)]
    table_tests::PARSED_BOOL_CALLS.with(|n| n.set(n.get() + 1));
    if !body.entries().all(|(k, _)| bool_key(k)) {
        return None;
    }
    Some(parsed_bool_values(body))
}

/// The values of [`parsed_bool`]'s body, in order, the first refusal returned.
fn parsed_bool_values(body: Tokens<'_>) -> Result<(), Rejection> {
    for (k, v) in body.entries() {
        match (k, v) {
            ("must" | "should" | "filter" | "must_not", Item::Array(items)) => {
                match items.item_tokens() {
                    Some(queries) => {
                        for q in queries {
                            parsed_clause(q)?;
                        }
                    }
                    // An array of plain strings: refused by `check`, as each item is.
                    None => items.items().try_for_each(|q| check(J::from(q)))?,
                }
            }
            ("must" | "should" | "filter" | "must_not", _) => check(J::from(v))?,
            _ => scalar(J::from(v), k)?,
        }
    }
    Ok(())
}

/// [`check`] of one parsed query (its tokens) of a `bool`'s clause list: a scalar leaf decided
/// as [`parsed_scalar_leaf`] decides it, a `bool` by [`parsed_bool`] (as [`check`] reaches it:
/// neither a leaf nor a `range`), anything else, or either left undecided, by [`check`]
/// itself, which then decides it from the start (for a `bool` its keys are looked at again,
/// not its values). Inlined in [`parsed_bool_values`]'s loop: a leaf is decided without a
/// call.
#[inline(always)]
fn parsed_clause(q: Tokens<'_>) -> Result<(), Rejection> {
    if let Some(decided) = scalar_leaf_tokens(q) {
        return decided;
    }
    if let Some(("bool", Item::Object(body))) = q.only_entry() {
        if let Some(decided) = parsed_bool(body) {
            return decided;
        }
    }
    check(J::from(q.item()))
}

/// The commonest dashboard leaf, `{"match_phrase" | "match" | "term": {"<field>": <scalar>}}`
/// (Kibana's KQL and filter pills send twenty of them in a Discover search), decided in one
/// look: such a query is allowed exactly when its field name is ([`check_type`] would check the
/// name, then find one field with a single value and no options). `None` for every other
/// shape (a key that `check_query_node` or `field_leaf` reads specially, an options object,
/// several entries), left to [`check_type`]. Issue 10: the general path walked the body twice
/// and scanned the type table, about 300 instructions a leaf.
/// `scalar_leaves_decide_as_the_general_check` (tests) compares it with [`check_type`].
#[inline]
fn scalar_leaf(ty: &str, body: J<'_>) -> Option<Result<(), Rejection>> {
    if !matches!(ty, "match_phrase" | "match" | "term") {
        return None;
    }
    let J::Object(m) = body else { return None };
    let (field, value) = m.only_entry()?;
    if read_specially(field) || !value.is_scalar() {
        return None;
    }
    Some(fields::check(field, Position::Data))
}

/// A leaf's key that `check_query_node` (`_name`, `field`, `default_field`, `path`, `fields`) or
/// `field_leaf` (`boost`, `_name`) reads otherwise than as a field: the one-look paths of
/// [`scalar_leaf`] and [`range_leaf_passes`] leave such a leaf to [`check_type`].
fn read_specially(key: &str) -> bool {
    matches!(
        key,
        "boost" | "_name" | "field" | "default_field" | "path" | "fields"
    )
}

/// The body of `{"range": {"<field>": {<options>}}}` (the time filter of every dashboard
/// search) that [`check_type`] accepts, known in one look: one field, not a key `check_query_node` reads
/// specially, whose name passes, with an options object of [`RANGE_OPTIONS`] keys and inert
/// values (`field_leaf`). `false` for anything else, left to [`check_type`] (a range has no
/// sub-query: nothing is walked twice). Issue 10: the general path read the body twice and
/// scanned the type table. `range_leaves_decide_as_the_general_check` (tests).
fn range_leaf_passes(body: J<'_>) -> bool {
    let J::Object(m) = body else { return false };
    let Some((field, J::Object(options))) = m.only_entry() else {
        return false;
    };
    !read_specially(field)
        && !expansion::may_be_metadata(field)
        && fields::check(field, Position::Data).is_ok()
        && options.iter().all(|(k, v)| {
            (RANGE_OPTIONS.has)(k) && inert(v).is_ok() && (k != "relation" || relation_allowed(v))
        })
}

/// The `relation`s a `range` may name, in any ASCII case (Elasticsearch lower-cases the name,
/// `ShapeRelation.getRelationByName`): `intersects` (the default), `within` and `contains`.
/// Not `disjoint` (attack23): before a shard runs a `range` on a date field it rewrites the
/// query from the field's min and max over the shard, every tenant's documents
/// (`RangeQueryBuilder.getRelation`, `DateFieldType.isFieldWithinQuery`): a range outside them
/// becomes `match_none`, one that holds them all an `exists` query, and only a range that cuts
/// them reaches `DateFieldType.rangeQuery`, which refuses `DISJOINT` ("does not support
/// DISJOINT ranges"). The error thus told whether other tenants' dates cross the range, and
/// repeated ranges bisect their min and max. Date fields take `within` and `contains` as
/// `intersects`; only fields of a range type use a relation, and lose `disjoint`.
fn relation_allowed(v: J<'_>) -> bool {
    v.as_str().is_some_and(|r| {
        ["intersects", "within", "contains"]
            .iter()
            .any(|known| r.eq_ignore_ascii_case(known))
    })
}

/// One query's type and body (`{"<type>": <body>}` taken apart) against the allow-list: the
/// field names it holds, then its type's slot.
fn check_type(ty: &str, body: J<'_>) -> Result<(), Rejection> {
    fields::check_query_node(ty, body)?;
    match slot_of(QUERY_TYPES, ty) {
        Some(slot) => slot.check(body, ty),
        None => Err(Rejection::forbidden(format!(
            "query type [{}] is not allowed for this token",
            printable(ty)
        ))),
    }
}

// ---- query types that are more than a key list --------------------------------------------------

fn term_query(body: J<'_>, ty: &str) -> Result<(), Rejection> {
    field_leaf(body, TERM_OPTIONS, true)?;
    // Case-insensitive matching expands the term over the field's dictionary.
    let insensitive = |v: J<'_>| {
        v.get("case_insensitive")
            .is_some_and(|c| !matches!(c, J::Bool(false)))
    };
    if object(body, ty)?.iter().any(|(f, v)| {
        f != "boost" && f != "_name" && insensitive(v) && expansion::may_be_metadata(f)
    }) {
        return Err(Rejection::forbidden(
            "case-insensitive term queries on metadata fields are not allowed for this \
             token",
        ));
    }
    Ok(())
}

fn terms_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    let m = object(body, "terms")?;
    let mut fields = 0;
    for (k, val) in m {
        match k {
            "boost" | "_name" => scalar(val, k)?,
            _ => {
                fields += 1;
                match val {
                    J::Array(items) if items.all_scalars() => {}
                    J::Array(items) => items.iter().try_for_each(|x| scalar(x, "terms"))?,
                    J::Object(_) => return Err(feature("terms lookup")),
                    _ => return Err(Rejection::bad_request("[terms] values must be an array")),
                }
            }
        }
    }
    exactly_one_field(fields)
}

/// A `range`: never on a field that may be a metadata field (attack18e: an expansion over
/// its terms, every document's, refused as `_id:[a TO b]` is in query text; `expansion`).
/// Its `relation` one of [`relation_allowed`]'s (attack23: `disjoint` failed the search exactly
/// when other tenants' dates cross the range).
fn range_query(body: J<'_>, ty: &str) -> Result<(), Rejection> {
    field_leaf(body, RANGE_OPTIONS, false)?;
    let m = object(body, ty)?;
    if names_metadata_field(m) {
        return Err(Rejection::forbidden(
            "range queries on metadata fields are not allowed for this token",
        ));
    }
    let refused = |options: J<'_>| {
        options
            .get("relation")
            .is_some_and(|r| !relation_allowed(r))
    };
    if m.iter().any(|(_, options)| refused(options)) {
        return Err(Rejection::forbidden(
            "a range query's [relation] may be intersects, within or contains for this token: \
             with disjoint, whether the search fails depends on other tenants' values",
        ));
    }
    Ok(())
}

fn prefix_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    field_leaf(body, PREFIX_OPTIONS, true)?;
    multi_term_leaf(body)
}

fn wildcard_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    field_leaf(body, WILDCARD_OPTIONS, true)?;
    multi_term_leaf(body)
}

fn regexp_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    field_leaf(body, REGEXP_OPTIONS, true)?;
    multi_term_leaf(body)
}

fn match_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    field_leaf(body, MATCH_OPTIONS, true)?;
    field_options(body)
}

fn match_phrase_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    field_leaf(body, MATCH_PHRASE_OPTIONS, true)
}

fn multi_match_query(body: J<'_>, ty: &str) -> Result<(), Rejection> {
    flat(body, MULTI_MATCH)?;
    expansion::options_of(object(body, ty)?)
}

fn query_string_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    flat_text_query(body, expansion::Syntax::Classic, QUERY_STRING)
}

fn simple_query_string_query(body: J<'_>, _ty: &str) -> Result<(), Rejection> {
    flat_text_query(body, expansion::Syntax::Simple, SIMPLE_QUERY_STRING)
}

/// `geo_distance`, `geo_bounding_box`: options beside exactly one field (inert point data).
fn geo_point_query(body: J<'_>, ty: &str) -> Result<(), Rejection> {
    let m = object(body, ty)?;
    let mut fields = 0;
    for (k, val) in m {
        match k {
            "distance" | "distance_type" | "validation_method" | "ignore_unmapped" | "boost"
            | "_name" | "type" => scalar(val, k)?,
            _ => {
                fields += 1;
                inert(val)?;
            }
        }
    }
    exactly_one_field(fields)
}

/// `geo_shape`, `shape`: options beside exactly one field, whose object is a [`GEO_SHAPE_FIELD`].
fn geo_shape_query(body: J<'_>, ty: &str) -> Result<(), Rejection> {
    let m = object(body, ty)?;
    let mut fields = 0;
    for (k, val) in m {
        match k {
            "ignore_unmapped" | "boost" | "_name" => scalar(val, k)?,
            _ => {
                fields += 1;
                keyed(val, ty, GEO_SHAPE_FIELD)?;
            }
        }
    }
    exactly_one_field(fields)
}

fn score_functions(v: J<'_>, key: &str) -> Result<(), Rejection> {
    array_of(v, key, |f| keyed(f, "functions", SCORE_FUNCTION))
}

// ---- options shared by queries, aggregations and search bodies ---------------------------------

/// `top_hits` options: the per-hit retrieval keys plus `from` and `size`.
pub(crate) const TOP_HITS: Table = table![
    (&["sort"], Slot::Sort(SortAt::Hits)),
    (&["_source"], Slot::Check(check_source)),
    (&["fields", "docvalue_fields"], Slot::Check(check_fields)),
    (&["stored_fields"], Slot::Check(check_stored_fields)),
    (&["highlight"], Slot::Check(check_highlight)),
    (&["version", "track_scores"], Slot::Bool),
    (
        &["seq_no_primary_term"],
        Slot::Check(no_seq_no_primary_term),
    ),
    (&["explain"], Slot::Check(only_false)),
    (&["from", "size"], Slot::Uint),
    (&["script_fields"], Slot::Feature),
];
/// `inner_hits` options: the per-hit retrieval keys plus `name`, `from`, `size`, `collapse`.
const INNER_HITS: Table = table![
    (&["sort"], Slot::Sort(SortAt::Hits)),
    (&["_source"], Slot::Check(check_source)),
    (&["fields", "docvalue_fields"], Slot::Check(check_fields)),
    (&["stored_fields"], Slot::Check(check_stored_fields)),
    (&["highlight"], Slot::Check(check_highlight)),
    (&["version", "track_scores"], Slot::Bool),
    (
        &["seq_no_primary_term"],
        Slot::Check(no_seq_no_primary_term),
    ),
    (&["explain"], Slot::Check(only_false)),
    (&["collapse"], Slot::Check(inner_collapse)),
    (&["name"], Slot::Str),
    (&["from", "size"], Slot::Uint),
    (&["script_fields"], Slot::Feature),
];

/// A kNN search object (top-level `knn` or a `knn` query).
pub(crate) fn check_knn(v: J<'_>) -> Result<(), Rejection> {
    keyed(v, "knn", KNN)
}

fn check_inner_hits(v: J<'_>) -> Result<(), Rejection> {
    match v {
        J::Array(items) => items
            .iter()
            .try_for_each(|i| keyed(i, "hits options", INNER_HITS)),
        _ => keyed(v, "hits options", INNER_HITS),
    }
}

/// No two inner hits of a body's query clauses (`nested`, `has_child`, `has_parent`) share a
/// name (`name`, else the clause's `path`, `type` or `parent_type`). The backend refuses such
/// a body only when it registers both, and osmem registers a clause's inner hits only when
/// its query can match: the refusal then told a token whether any document, other tenants'
/// included, holds a term (review 13, the leak oracle). Refused whatever the data.
pub(crate) fn unique_inner_hits<'v>(v: J<'v>, seen: &mut Vec<&'v str>) -> Result<(), Rejection> {
    match v {
        J::Object(m) => {
            if let Some(options) = m.get("inner_hits") {
                let default = ["path", "type", "parent_type"]
                    .iter()
                    .find_map(|k| m.get(k).and_then(J::as_str));
                if let Some(default) = default {
                    let mut one = |o: J<'v>| {
                        let name = o.get("name").and_then(J::as_str).unwrap_or(default);
                        if seen.contains(&name) {
                            return Err(Rejection::forbidden(format!(
                                "two [inner_hits] named [{name}] in one body are refused (whether the backend accepts them can depend on other tenants' documents)"
                            )));
                        }
                        seen.push(name);
                        Ok(())
                    };
                    match options {
                        J::Array(items) => items.try_each(&mut one)?,
                        o => one(o)?,
                    }
                }
            }
            m.try_each(|key, child| {
                if key == "knn" {
                    knn_inner_hits(child, seen)?;
                }
                unique_inner_hits(child, seen)
            })
        }
        J::Array(items) => items.try_each(|i| unique_inner_hits(i, seen)),
        _ => Ok(()),
    }
}

/// [`unique_inner_hits`] for the inner hits of kNN searches (`knn`'s value: one search or a
/// list): a kNN search's inner hits are named, unless named explicitly, after the nested path of
/// its field, which only the mapping knows, so every path the field may lie under (each dotted
/// prefix: `a` and `a.b` for `a.b.vector`) counts as its name (review 14). A field without a
/// dot has no nested path (the backend refuses its inner hits).
pub(crate) fn knn_inner_hits<'v>(v: J<'v>, seen: &mut Vec<&'v str>) -> Result<(), Rejection> {
    let one = |o: J<'v>, seen: &mut Vec<&'v str>| -> Result<(), Rejection> {
        let Some(options) = o.get("inner_hits") else {
            return Ok(());
        };
        let field = o.get("field").and_then(J::as_str).unwrap_or("");
        let mut names: Vec<&'v str> = Vec::new();
        let mut each = |h: J<'v>| {
            match h.get("name").and_then(J::as_str) {
                Some(name) => names.push(name),
                None => names.extend(
                    field
                        .char_indices()
                        .filter(|&(_, c)| c == '.')
                        .map(|(i, _)| &field[..i]),
                ),
            }
            Ok::<(), Rejection>(())
        };
        match options {
            J::Array(items) => items.try_each(&mut each)?,
            h => each(h)?,
        }
        for name in names {
            if seen.contains(&name) {
                return Err(Rejection::forbidden(format!(
                    "two [inner_hits] named [{name}] in one body are refused (whether the backend accepts them can depend on other tenants' documents)"
                )));
            }
            seen.push(name);
        }
        Ok(())
    };
    match v {
        J::Array(items) => items.try_each(|i| one(i, seen)),
        o => one(o, seen),
    }
}

/// `collapse` inside `inner_hits`: a data field only.
fn inner_collapse(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    flat(v, keys!["field"])?;
    if let Some(J::String(f)) = v.get("field") {
        fields::check(f, Position::Data)?;
    }
    Ok(())
}

/// `explain`: only `false` (an explanation shows index-wide term statistics).
pub(crate) fn only_false(v: J<'_>, key: &str) -> Result<(), Rejection> {
    match v {
        J::Bool(false) => Ok(()),
        _ => Err(feature(key)),
    }
}

const HIGHLIGHT_OPTIONS: Keys = keys![
    "pre_tags",
    "post_tags",
    "fragment_size",
    "number_of_fragments",
    "order",
    "require_field_match",
    "boundary_chars",
    "boundary_max_scan",
    "boundary_scanner",
    "boundary_scanner_locale",
    "encoder",
    "no_match_size",
    "tags_schema",
    "max_analyzed_offset",
    "fragmenter",
    "phrase_limit",
    "matched_fields",
    "force_source",
    "fragment_offset",
];
const HIGHLIGHT: Table = table![
    (&["fields"], Slot::Check(highlight_fields)),
    (&["highlight_query"], Slot::Query),
    (&["type"], Slot::Check(highlighter_type)),
    (HIGHLIGHT_OPTIONS, Slot::Inert),
];
const HIGHLIGHT_FIELD: Table = table![
    (&["highlight_query"], Slot::Query),
    (&["type"], Slot::Check(highlighter_type)),
    (HIGHLIGHT_OPTIONS, Slot::Inert),
];

/// A highlight's `type`: `unified` (the default) or `plain`, which find what to highlight in
/// the hit's own text. The fast vector highlighter (`fvh`) rewrites a multi-term query
/// (prefix, wildcard, regexp, a range on a string field) against the whole shard's terms and
/// keeps only the first 1024 (Lucene's `FieldQuery.flatten`), other tenants' terms included,
/// so whether a hit's own term was highlighted told how many terms they hold (review 15).
fn highlighter_type(v: J<'_>, key: &str) -> Result<(), Rejection> {
    match v {
        J::String("unified" | "plain") => Ok(()),
        J::String(other) => Err(Rejection::forbidden(format!(
            "highlighter type [{}] is not allowed for this token: only [unified] and [plain] \
             (the fast vector highlighter expands terms over every document of the index)",
            printable(other)
        ))),
        _ => Err(Rejection::forbidden(format!(
            "[{key}] of a highlight must be a highlighter name"
        ))),
    }
}

pub(crate) fn check_highlight(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    keyed(v, "highlight", HIGHLIGHT)
}

/// `highlight.fields`: each name (a field or a pattern, Kibana's `*`) checked as every field
/// position is (`fields::check`), each field's options by [`HIGHLIGHT_FIELD`]. attack26: a
/// highlighter reads only the hit's own text, so no metadata name read a counter here (the
/// counters are not in `_source` and not stored); checked anyway, deny by default, as the
/// `fields` list beside it.
fn highlight_fields(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    let field = |name: &str, opts: J<'_>| {
        fields::check(name, Position::Data)?;
        keyed(opts, "highlight field", HIGHLIGHT_FIELD)
    };
    match v {
        J::Object(fields) => fields.try_each(field),
        J::Array(items) => items.try_each(|item| {
            let (name, opts) = single_entry(item, "a highlight field")?;
            field(name, opts)
        }),
        _ => Err(Rejection::bad_request(
            "[highlight.fields] must be an object or array",
        )),
    }
}

const COLLAPSE: Table = table![
    (&["field"], Slot::Check(collapse_field)),
    (
        &["max_concurrent_group_searches"],
        Slot::Check(group_searches)
    ),
    (&["inner_hits"], Slot::InnerHits),
];

/// A collapse's `max_concurrent_group_searches`: at most
/// `request::params::MAX_CONCURRENT_SEARCHES` (attack25, M: the inner hits' one search per
/// hit all at once would fill the nodes' search thread pools, every client's).
fn group_searches(v: J<'_>, key: &str) -> Result<(), Rejection> {
    uint(v, key)?;
    let max = crate::request::params::MAX_CONCURRENT_SEARCHES;
    match v.as_u64() {
        Some(n) if n <= max => Ok(()),
        _ => Err(Rejection::forbidden(format!(
            "[{key}] above {max} is not allowed for this token: the backend would run that \
             many searches at once"
        ))),
    }
}

pub(crate) fn check_collapse(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    keyed(v, "collapse", COLLAPSE)
}

fn collapse_field(v: J<'_>, key: &str) -> Result<(), Rejection> {
    string(v, key)?;
    if let J::String(f) = v {
        fields::check(f, Position::Data)?;
    }
    Ok(())
}

/// Which sort a `sort` list is: it decides which metadata fields it may name (see `fields`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortAt {
    /// The top-level sort of a search body: its `_doc`/`_shard_doc` values are sealed.
    TopLevel,
    /// `top_hits`, `inner_hits`, `top_metrics`: documents, no seal.
    Hits,
    /// `bucket_sort`: bucket paths (`_key`, `_count` or a sub-aggregation), not fields.
    Buckets,
}

const SORT_OPTIONS: Table = table![
    (
        &[
            "order",
            "mode",
            "missing",
            "unmapped_type",
            "numeric_type",
            "format",
        ],
        Slot::Scalar,
    ),
    (&["nested"], Slot::Check(sort_nested)),
];
const SORT_NESTED: Table = table![
    (&["path"], Slot::Check(nested_path)),
    (&["max_children"], Slot::Scalar),
    (&["filter"], Slot::Query),
    (&["nested"], Slot::Check(sort_nested)),
];

pub(crate) fn check_sort(v: J<'_>, at: SortAt) -> Result<(), Rejection> {
    match v {
        J::Array(items) => items.iter().try_for_each(|i| check_sort_item(i, at)),
        _ => check_sort_item(v, at),
    }
}

fn check_sort_field(field: &str, at: SortAt) -> Result<(), Rejection> {
    match at {
        SortAt::TopLevel => fields::check_sort_field(field, true),
        SortAt::Hits => fields::check_sort_field(field, false),
        SortAt::Buckets if field.starts_with('_') && !matches!(field, "_key" | "_count") => Err(
            Rejection::bad_request("[bucket_sort] sorts by [_key], [_count] or a sub-aggregation"),
        ),
        SortAt::Buckets => Ok(()),
    }
}

fn check_sort_item(v: J<'_>, at: SortAt) -> Result<(), Rejection> {
    match v {
        J::String(field) => check_sort_field(field, at),
        // Elasticsearch takes several fields in one sort object (Grafana sends
        // `{"@timestamp": {...}, "_doc": {...}}`); their order is the sort priority, which the
        // order-preserving JSON map keeps when the body is re-serialised.
        J::Object(m) if m.len() > 1 => m
            .iter()
            .try_for_each(|(k, spec)| check_sort_entry(k, spec, at)),
        J::Object(_) => {
            let (field, spec) = single_entry(v, "a sort")?;
            check_sort_entry(field, spec, at)
        }
        _ => Err(Rejection::bad_request(
            "a sort must be a string or an object",
        )),
    }
}

/// One `field: spec` of a sort object.
fn check_sort_entry(field: &str, spec: J<'_>, at: SortAt) -> Result<(), Rejection> {
    if field == "_script" || field == "_geo_distance" {
        return Err(feature(field));
    }
    check_sort_field(field, at)?;
    match spec {
        J::String(_) => Ok(()),
        J::Object(_) => keyed(spec, "a sort", SORT_OPTIONS),
        _ => Err(Rejection::bad_request(
            "a sort must be a string or an object",
        )),
    }
}

fn sort_nested(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    keyed(v, "nested", SORT_NESTED)?;
    nested_inside(v)
}

/// A `nested` query: its parameters, then the nested scope (`nested_inside`).
fn nested_clause(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    keyed(v, "nested", NESTED)?;
    nested_inside(v)
}

/// Every `nested` query or nested sort inside a `nested` object (a query's, with its inner
/// hits; a sort's, with its `filter` and `nested`) has a path below the object's own: the
/// backend joins the inner one to the documents of the outer path by position, and a path
/// beside or above it lands in neighbouring documents, other tenants' included (aggs16; see
/// `aggs::nested_scope`).
fn nested_inside(v: J<'_>) -> Result<(), Rejection> {
    match v.get("path").and_then(J::as_str) {
        Some(path) => super::aggs::nested_queries(v, Some(path)),
        None => Ok(()),
    }
}

fn nested_path(v: J<'_>, key: &str) -> Result<(), Rejection> {
    scalar(v, key)?;
    if let J::String(p) = v {
        fields::check(p, Position::Data)?;
    }
    Ok(())
}

const SOURCE: Table = table![(
    &["includes", "include", "excludes", "exclude"],
    Slot::Strings,
)];

pub(crate) fn check_source(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    match v {
        J::Bool(_) | J::String(_) => Ok(()),
        J::Array(_) => strings(v, "_source"),
        J::Object(_) => keyed(v, "_source", SOURCE),
        _ => Err(Rejection::bad_request("[_source] has an invalid value")),
    }
}

/// `fields`, `docvalue_fields`: a list of names or `{"field", "format", "include_unmapped"}`
/// objects (every item's shape checked first, then the names).
///
/// An accepted list is known in one pass over its items ([`field_item_allowed`]); only a
/// refused one goes through the two passes, for their refusal (issue 10).
pub(crate) fn check_fields(v: J<'_>, key: &str) -> Result<(), Rejection> {
    if key == "docvalue_fields" {
        fields::no_docvalues_of_every_field(v)?;
    }
    if let J::Array(items) = v {
        if items.iter().all(field_item_allowed) {
            return Ok(());
        }
    }
    check_fields_in_two_passes(v, key)
}

/// Whether one item of `fields` passes both passes of [`check_fields_in_two_passes`]: a
/// string naming an allowed field, or an object of the three keys with inert values whose
/// `field` (when a string) names one. `fields_lists_decide_as_the_two_passes` (tests).
fn field_item_allowed(item: J<'_>) -> bool {
    match item {
        J::String(name) => fields::check(name, Position::Data).is_ok(),
        J::Object(m) => m.all(|k, v| match k {
            "field" => {
                inert(v).is_ok()
                    && match v {
                        J::String(name) => fields::check(name, Position::Data).is_ok(),
                        _ => true,
                    }
            }
            "format" | "include_unmapped" => inert(v).is_ok(),
            _ => false,
        }),
        _ => false,
    }
}

fn check_fields_in_two_passes(v: J<'_>, key: &str) -> Result<(), Rejection> {
    if key == "docvalue_fields" {
        fields::no_docvalues_of_every_field(v)?;
    }
    array_of(v, key, |item| match item {
        J::String(_) => Ok(()),
        J::Object(_) => flat(item, keys!["field", "format", "include_unmapped"]),
        _ => Err(Rejection::bad_request(format!(
            "[{key}] has an invalid value"
        ))),
    })?;
    fields::check_list_of(v, Position::Data)
}

pub(crate) fn check_stored_fields(v: J<'_>, key: &str) -> Result<(), Rejection> {
    strings(v, key)?;
    fields::check_list_of(v, Position::StoredFields)
}

/// `seq_no_primary_term`: only `false` (sequence numbers count every write to the shard).
pub(crate) fn no_seq_no_primary_term(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    boolean(v, "seq_no_primary_term")?;
    match v {
        J::Bool(true) => Err(fields::seq_no_primary_term()),
        _ => Ok(()),
    }
}

// ---- filter injection -----------------------------------------------------------------------------

/// The outer wrapper: `{"bool":{"filter":[<token clauses>],"must":[<query or match_all>]}}`;
/// without token filters `{"bool":{"must":[...]}}`.
pub fn wrap(query: Option<Value>, filters: &FilterSet) -> Value {
    let mut inner = scored(query, filters);
    filter_knn_queries(&mut inner, filters);
    wrap_walked(inner, filters)
}

/// [`wrap`] without walking the query for kNN searches: only for `rewrite::search`, which
/// walks the whole body (the wrapped queries included) right after.
pub(crate) fn wrap_unwalked(query: Option<Value>, filters: &FilterSet) -> Value {
    wrap_walked(scored(query, filters), filters)
}

/// The client's query as it runs under the token's clauses: as it is for relevance scores;
/// under `constant_score` for a token with constant scores
/// ([`FilterSet::with_constant_scores`], review 15), so its score (1.0) does not depend on
/// the shard's term statistics; `match_all` without one (1.0 already, left as it is).
fn scored(query: Option<Value>, filters: &FilterSet) -> Value {
    match query {
        Some(q) if filters.constant_scores() => constant_score(q),
        Some(q) => q,
        None => json!({ "match_all": {} }),
    }
}

/// `{"constant_score": {"filter": <query>}}`, moving `query` in.
pub(crate) fn constant_score(query: Value) -> Value {
    single("constant_score", single("filter", query))
}

/// For a token with constant scores: the `query` of every `nested` clause with `inner_hits`
/// anywhere under `v` goes under `constant_score`. The backend scores a clause's inner hits
/// with the clause's own query, on its own (not under the search's query, which the wrap made
/// constant), so their `_score` would count other tenants' documents (review 15). `has_child`
/// and `has_parent`, the other clauses with inner hits, are refused for every token.
pub(crate) fn constant_inner_hits(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "nested" {
                    if let Value::Object(clause) = child {
                        if clause.contains_key("inner_hits") {
                            if let Some(q) = clause.get_mut("query") {
                                let inner = std::mem::take(q);
                                *q = constant_score(inner);
                            }
                        }
                    }
                }
                constant_inner_hits(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(constant_inner_hits),
        _ => {}
    }
}

/// [`wrap`] of a query whose kNN searches are (or, in `rewrite::search`, will be) filtered
/// already: `search` walks the whole body once afterwards, so walking each query first too
/// doubled the work on large bodies (issue 10).
///
/// Built by moving `inner` into place: `json!` would copy an interpolated value through
/// `serde_json::to_value` (the whole query serialised into a new tree and the old one dropped:
/// a quarter of a 2 KB search's cost, issue 10).
fn wrap_walked(inner: Value, filters: &FilterSet) -> Value {
    let mut bool_query = Map::with_capacity(2);
    if !filters.is_empty() {
        bool_query.insert("filter".to_string(), Value::Array(filters.clauses()));
    }
    bool_query.insert("must".to_string(), Value::Array(vec![inner]));
    single("bool", Value::Object(bool_query))
}

/// `{"<key>": <value>}`, moving `value` in (`json!` would copy it, see [`wrap_walked`]).
pub(crate) fn single(key: &str, value: Value) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(key.to_string(), value);
    Value::Object(m)
}

/// Puts the token's clauses into the `filter` of every kNN search anywhere under `v` (a `knn`
/// query inside `bool`, `post_filter`, a `filter` aggregation, `rescore`, a retriever...).
/// A kNN search picks its nearest candidates *before* any sibling filter applies, so a filter
/// beside it would still let other tenants' vectors decide what is found (and counted). A kNN
/// object whose `filter` list already holds every token clause is left as it is.
pub fn filter_knn_queries(v: &mut Value, filters: &FilterSet) {
    if filters.is_empty() {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "knn" {
                    if let Value::Array(items) = &mut *child {
                        for i in items.iter_mut().filter(|i| is_knn_search(i)) {
                            add_token_clauses(i, filters);
                        }
                    } else if is_knn_search(child) {
                        add_token_clauses(child, filters);
                    }
                }
                filter_knn_queries(child, filters);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| filter_knn_queries(i, filters)),
        _ => {}
    }
}

/// A kNN search object: a vector field and a query vector (or a builder of one).
fn is_knn_search(v: &Value) -> bool {
    v.get("field").is_some_and(Value::is_string)
        && (v.get("query_vector").is_some() || v.get("query_vector_builder").is_some())
}

fn add_token_clauses(knn: &mut Value, filters: &FilterSet) {
    let Value::Object(m) = knn else { return };
    let clauses = filters.clauses();
    if let Some(Value::Array(existing)) = m.get("filter") {
        if clauses.iter().all(|c| existing.contains(c)) {
            return;
        }
    }
    prepend_clauses(m, clauses);
}

/// A kNN search's `filter` becomes `[<clauses>, <the existing filter(s)>]` (nothing when
/// both are empty).
pub(crate) fn prepend_clauses(m: &mut Map<String, Value>, mut clauses: Vec<Value>) {
    match m.remove("filter") {
        None => {}
        Some(Value::Array(existing)) => clauses.extend(existing),
        Some(other) => clauses.push(other),
    }
    if !clauses.is_empty() {
        m.insert("filter".to_string(), Value::Array(clauses));
    }
}

// ---- small shape helpers --------------------------------------------------------------------------

/// `{"<key>": <value>}` with exactly one entry.
///
/// Inlined, with the refusals built out of line: it runs once per query (issue 10).
#[inline]
pub(crate) fn single_entry<'a>(v: J<'a>, what: &str) -> Result<(&'a str, J<'a>), Rejection> {
    match v {
        J::Object(m) => m.only_entry().ok_or_else(|| match m.len() {
            1 => not_one_key(what),
            _ => not_single_entry(what),
        }),
        _ => Err(not_single_entry(what)),
    }
}

#[cold]
#[inline(never)]
fn not_one_key(what: &str) -> Rejection {
    Rejection::bad_request(format!("{what} must have exactly one key"))
}

#[cold]
#[inline(never)]
fn not_single_entry(what: &str) -> Rejection {
    Rejection::bad_request(format!("{what} must be an object with exactly one key"))
}

/// `v` as an object, or the refusal naming `what`. Inlined, the refusal out of line.
#[inline]
pub(crate) fn object<'a>(v: J<'a>, what: &str) -> Result<Obj<'a>, Rejection> {
    match v.as_object() {
        Some(m) => Ok(m),
        None => Err(not_an_object(what)),
    }
}

#[cold]
#[inline(never)]
fn not_an_object(what: &str) -> Rejection {
    Rejection::bad_request(format!("[{}] must be an object", printable(what)))
}

fn query_or_queries(v: J<'_>) -> Result<(), Rejection> {
    match v {
        // Walked without `ArrIter`'s dispatch per item (issue 10).
        J::Array(items) => items.try_each(check),
        _ => check(v),
    }
}

pub(crate) fn array_of(
    v: J<'_>,
    key: &str,
    each: impl Fn(J<'_>) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    match v {
        J::Array(items) => items.try_each(each),
        _ => Err(Rejection::bad_request(format!(
            "[{}] must be an array",
            printable(key)
        ))),
    }
}

/// An object whose keys are all in `allowed` and whose values are inert.
pub(crate) fn flat(v: J<'_>, allowed: Keys) -> Result<(), Rejection> {
    object(v, "parameters")?.try_each(|k, val| {
        if !(allowed.has)(k) {
            return Err(key_not_allowed(k));
        }
        inert(val)
    })
}

/// `query_string`/`simple_query_string`: flat parameters, and query text nested no deeper than
/// `?q=` may be (CVE-2023-31419: deep nesting overflowed the backend's parser stack).
///
/// Their options and text must not expand terms over the shard (`expansion`): no fuzzy terms,
/// no expanding rewrites or types, no wildcard, regexp or range on a metadata field (named in
/// `default_field`, `fields` or the text).
fn flat_text_query(v: J<'_>, syntax: expansion::Syntax, allowed: Keys) -> Result<(), Rejection> {
    flat(v, allowed)?;
    let m = object(v, "query")?;
    expansion::options_of(m)?;
    let mut targets: Vec<&str> = Vec::new();
    if let Some(f) = m.get("default_field") {
        targets.push(
            f.as_str()
                .ok_or_else(|| Rejection::bad_request("[default_field] must be a string"))?,
        );
    }
    match m.get("fields") {
        None => {}
        Some(J::Array(items)) => {
            for f in items {
                targets.push(
                    f.as_str()
                        .ok_or_else(|| Rejection::bad_request("[fields] must be strings"))?,
                );
            }
        }
        Some(_) => return Err(Rejection::bad_request("[fields] must be a list")),
    }
    match m.get("query") {
        Some(J::String(q)) if crate::querylang::uri_search::too_deep(q) => Err(
            Rejection::bad_request("the query string is nested too deeply"),
        ),
        // `flags` can turn phrases or escapes off, and then `"a b"~2` or `\"` read
        // differently: with flags, any `~` counts as a fuzzy term.
        Some(J::String(q)) if m.contains_key("flags") && q.contains('~') => {
            Err(Rejection::forbidden(
                "fuzzy terms (`~` after a term) are not allowed for this token, and with \
                 [flags] every `~` counts as one",
            ))
        }
        Some(J::String(q)) => expansion::check_text(q, syntax, &targets),
        _ => Ok(()),
    }
}

/// Aggregation parameters: [`flat`], and never a `script`.
pub(crate) fn params(body: J<'_>, allowed: Keys) -> Result<(), Rejection> {
    if let Some(m) = body.as_object() {
        if m.contains_key("script") {
            return Err(feature("script"));
        }
    }
    flat(body, allowed)
}

/// `{"<field>": scalar | {<inner params>}}` plus optional `boost`/`_name` beside the field.
fn field_leaf(body: J<'_>, inner: Keys, scalar_ok: bool) -> Result<(), Rejection> {
    let m = object(body, "query")?;
    let mut fields = 0;
    for (k, val) in m {
        match k {
            "boost" | "_name" => scalar(val, k)?,
            _ => {
                fields += 1;
                match val {
                    J::Object(_) => flat(val, inner)?,
                    _ if scalar_ok => scalar(val, k)?,
                    _ => {
                        return Err(Rejection::bad_request(
                            "query field parameters must be an object",
                        ))
                    }
                }
            }
        }
    }
    exactly_one_field(fields)
}

/// A multi-term leaf (`prefix`, `wildcard`, `regexp`): never on a field that may be a metadata
/// field (`_id`'s terms are every document's), and only a rewrite that keeps every matching
/// term (`expansion`).
fn multi_term_leaf(body: J<'_>) -> Result<(), Rejection> {
    if names_metadata_field(object(body, "query")?) {
        return Err(Rejection::forbidden(
            "wildcard, prefix and regexp queries on metadata fields are not allowed for this \
             token",
        ));
    }
    field_options(body)
}

/// Whether a field-keyed leaf's fields (its keys but `boost` and `_name`) hold one that may be
/// a metadata field: the one test of [`range_query`] and [`multi_term_leaf`] (attack18e had
/// written it twice).
fn names_metadata_field(m: Obj<'_>) -> bool {
    m.iter()
        .any(|(f, _)| f != "boost" && f != "_name" && expansion::may_be_metadata(f))
}

/// The per-field options of a full-text leaf (`match`): no fuzzy expansion (`expansion`).
fn field_options(body: J<'_>) -> Result<(), Rejection> {
    let m = object(body, "query")?;
    for val in m.values() {
        if let J::Object(inner) = val {
            expansion::options_of(inner)?;
        }
    }
    Ok(())
}

fn exactly_one_field(n: usize) -> Result<(), Rejection> {
    if n == 1 {
        Ok(())
    } else {
        Err(Rejection::bad_request("query must name exactly one field"))
    }
}

/// Plain data: scalars, arrays and objects without a `script` key anywhere.
///
/// Inlined for a scalar (most values it sees), containers walked out of line (issue 10).
#[inline]
pub(crate) fn inert(v: J<'_>) -> Result<(), Rejection> {
    match v {
        J::Array(_) | J::Object(_) => inert_container(v),
        _ => Ok(()),
    }
}

fn inert_container(v: J<'_>) -> Result<(), Rejection> {
    match v {
        // Every scalar is inert: a parsed array says so without a walk (a packed list of
        // strings, `request::tree`'s `Tok::Strings`, would be read item by item).
        J::Array(items) if items.all_scalars() => Ok(()),
        J::Array(items) => items.try_each(inert),
        J::Object(m) => m.try_each(|k, val| {
            if k == "script" || k == "_index" || k == "_id" {
                return Err(feature(k));
            }
            inert(val)
        }),
        _ => Ok(()),
    }
}

#[inline]
pub(crate) fn scalar(v: J<'_>, key: &str) -> Result<(), Rejection> {
    of_kind(v.is_scalar(), key, "a single value")
}

#[inline]
pub(crate) fn strings(v: J<'_>, key: &str) -> Result<(), Rejection> {
    let strings = match v {
        J::Array(items) => items.all_strings(),
        other => other.is_string(),
    };
    of_kind(strings, key, "strings")
}

#[inline]
pub(crate) fn string(v: J<'_>, key: &str) -> Result<(), Rejection> {
    of_kind(v.is_string(), key, "a string")
}

#[inline]
pub(crate) fn uint(v: J<'_>, key: &str) -> Result<(), Rejection> {
    of_kind(v.is_u64(), key, "a non-negative integer")
}

#[inline]
fn number(v: J<'_>, key: &str) -> Result<(), Rejection> {
    of_kind(v.is_number(), key, "a number")
}

#[inline]
pub(crate) fn boolean(v: J<'_>, key: &str) -> Result<(), Rejection> {
    of_kind(v.is_boolean(), key, "true or false")
}

/// The one refusal of a value of the wrong kind: `[key] must be <what>` (400).
///
/// Inlined, with the refusal built out of line ([`wrong_kind`]): it runs once per item of a
/// `terms` list (issue 10: a call per item was a third of a 200 KB body's checks).
#[inline]
fn of_kind(ok: bool, key: &str, what: &str) -> Result<(), Rejection> {
    if ok {
        Ok(())
    } else {
        Err(wrong_kind(key, what))
    }
}

#[cold]
#[inline(never)]
fn wrong_kind(key: &str, what: &str) -> Rejection {
    Rejection::bad_request(format!("[{}] must be {what}", printable(key)))
}

pub(crate) fn key_not_allowed(key: &str) -> Rejection {
    Rejection::forbidden(format!(
        "body key [{}] is not allowed for this token",
        printable(key)
    ))
}

pub(crate) fn feature(name: &str) -> Rejection {
    Rejection::forbidden(format!(
        "[{}] is not allowed for this token",
        printable(name)
    ))
}

/// Each key in at most one group of a table (the first group would win silently).
#[cfg(test)]
pub(crate) fn assert_each_key_once(name: &str, table: Table) {
    let mut seen = std::collections::BTreeSet::new();
    for (keys, _) in table.groups {
        for k in *keys {
            assert!(seen.insert(*k), "{name}: [{k}] in two groups");
        }
    }
}

/// Keys to look up in a table or key list naming `names`: each name, names near it (a
/// character more, less or changed, case changed, spaced) and a few others.
#[cfg(test)]
fn probes(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = [
        "", "_", "*", "x", "query", "field", "script", "_name", "boost",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in names {
        out.extend([
            n.to_string(),
            n.to_uppercase(),
            format!("{n}x"),
            format!("x{n}"),
            format!("{n} "),
        ]);
        if let Some((last, _)) = n.char_indices().last() {
            out.push(n[..last].to_string());
            out.push(format!("{}X", &n[..last]));
        }
    }
    out
}

/// [`Keys::has`] is `names.contains`, for every probe near the names.
#[cfg(test)]
pub(crate) fn assert_keys_lookup_is_the_scan(name: &str, keys: Keys) {
    for key in probes(keys.names) {
        assert_eq!(
            (keys.has)(&key),
            keys.names.contains(&key.as_str()),
            "{name}: [{key}]"
        );
    }
}

/// [`TableDef::find`] finds what a scan of the groups finds (the first group naming the key),
/// for every probe near the table's names; and so for the tables and key lists in its slots.
#[cfg(test)]
pub(crate) fn assert_lookups_are_the_scans(name: &str, table: Table) {
    let names: Vec<&str> = table.names();
    for key in probes(&names) {
        let scan = table
            .groups
            .iter()
            .position(|(keys, _)| keys.contains(&key.as_str()));
        assert_eq!((table.find)(&key), scan, "{name}: [{key}]");
    }
    for (keys, slot) in table.groups {
        match slot {
            Slot::Object(_, inner) => assert_lookups_are_the_scans(name, inner),
            Slot::Flat(list) | Slot::Params(list) => {
                assert_keys_lookup_is_the_scan(&format!("{name}.{}", keys[0]), list)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    thread_local! {
        /// Turns [`parsed_scalar_leaf`] off: the tests' reference path.
        pub(super) static PARSED_LEAVES_OFF: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
        /// Turns [`parsed_bool`] off: the tests' reference path.
        pub(super) static PARSED_BOOLS_OFF: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
        /// How many times [`parsed_bool`] was entered.
        pub(super) static PARSED_BOOL_CALLS: std::cell::Cell<usize> =
            const { std::cell::Cell::new(0) };
    }

    /// JSON values of every kind and the shapes the fast paths look at: scalars, empty and
    /// non-empty containers, options objects (allowed, unknown, scripted, expanding), lists.
    fn values() -> Vec<Value> {
        vec![
            json!("x"),
            json!(""),
            // Values read as field names under `field`, `default_field`, `path`, `fields`.
            json!("_seq_no"),
            json!("_s*"),
            json!(["_seq_no"]),
            json!(1),
            json!(-1.5),
            json!(true),
            json!(null),
            json!([]),
            json!(["a", "b"]),
            json!([{"a": 1}]),
            json!({}),
            json!({"query": "x"}),
            json!({"query": "x", "boost": 2}),
            json!({"value": "x"}),
            json!({"value": "x", "case_insensitive": true}),
            json!({"value": "x", "case_insensitive": false}),
            json!({"query": "x", "fuzziness": "AUTO"}),
            json!({"query": "x", "fuzziness": 0}),
            json!({"query": "x", "slop": 2}),
            json!({"query": "x", "operator": "and"}),
            json!({"gte": 1, "lte": 2, "format": "epoch_millis"}),
            json!({"script": {"source": "1"}}),
            json!({"unknown": 1}),
            json!({"index": "other", "id": "1", "path": "p"}),
            json!({"query": {"nested": 1}}),
        ]
    }

    /// Field (or parameter) names: plain, metadata, wildcard, the keys the checks read
    /// specially, empty.
    const KEYS: &[&str] = &[
        "service.name",
        "@timestamp",
        "",
        "_id",
        "_seq_no",
        "_source",
        "_index",
        "*",
        "*no",
        "user*",
        "_s*",
        "boost",
        "_name",
        "field",
        "default_field",
        "path",
        "fields",
        "query",
        "value",
        "script",
        "case_insensitive",
    ];

    /// [`bool_query`] decides only what [`check_type`] decides for `bool`, and alike:
    /// bodies of one to three entries of every `bool` key and more (unknown, metadata-like,
    /// field-like), with queries, lists of queries, refused queries, scalars and objects.
    #[test]
    fn bool_queries_decide_as_the_general_check() {
        let mut keys: Vec<&str> = BOOL.names();
        // The keys `bool_query` knows by name too, should the table lose one.
        keys.extend([
            "must",
            "should",
            "filter",
            "must_not",
            "minimum_should_match",
            "boost",
            "_name",
            "adjust_pure_negative",
        ]);
        keys.extend([
            "", "_foo", "_seq_no", "*", "query", "must ", "Must", "unknown",
        ]);
        let values = vec![
            json!({"match": {"a": "x"}}),
            json!({"match_phrase": {"_seq_no": "x"}}),
            json!({"script": {"script": "1"}}),
            json!({"unknown": {}}),
            json!({"match_all": {}}),
            json!({"range": {"a": {"gte": 1}}}),
            json!({"bool": {"filter": [{"term": {"a": 1}}], "_seq_no": 1}}),
            json!({"a": 1, "b": 2}),
            json!([]),
            json!([{"match": {"a": "x"}}, {"term": {"b": 1}}]),
            json!([{"match": {"a": "x"}}, {"wrapper": {"query": "e30="}}]),
            json!([{"match": {"a": "x"}}, 1]),
            json!("x"),
            json!(1),
            json!(true),
            json!(null),
            json!({}),
        ];
        let mut bodies: Vec<Value> = values.clone();
        for k in &keys {
            for v in &values {
                bodies.push(json!({ *k: v }));
                for (k2, v2) in [
                    ("minimum_should_match", json!(1)),
                    ("filter", json!({"match_all": {}})),
                    ("_name", json!({})),
                    ("boost", json!([1])),
                    ("unknown", json!(1)),
                    ("_seq_no", json!(1)),
                ] {
                    if k2 != *k {
                        bodies.push(json!({ *k: v, k2: v2.clone() }));
                        bodies.push(json!({ k2: v2, *k: v, "should": [] }));
                    }
                }
            }
        }
        let mut decided = 0;
        for body in &bodies {
            let general = check_type("bool", J::from(body));
            if let Some(fast) = bool_query(J::from(body)) {
                decided += 1;
                assert_eq!(fast, general, "{body}");
            }
            let q = json!({ "bool": body });
            assert_eq!(check(J::from(&q)), general, "{q}");
        }
        assert!(decided > 1000, "{decided}");
    }

    /// [`parsed_bool`] (and the leaves it decides by [`parsed_clause`]) decides as the general
    /// check, refusals compared whole, and the search rewrite writes the same body: random
    /// `bool`s nested up to three deep, written as text (compact or spaced, keys sometimes
    /// escaped, keys sometimes given twice), of every clause key holding one query, a list
    /// (empty, of queries, of strings, of other values) or another value; options of every kind
    /// of value; leaves of every scalar kind on plain, read-specially, metadata and pattern
    /// fields, with options objects or two fields; and refused shapes among them: unknown and
    /// metadata keys, scripts, `wrapper`, `terms` lookups, joins, statistics, not an object.
    /// Each is checked parsed (fast path on, and off: the reference) and as serde_json's tree.
    #[test]
    fn parsed_bools_decide_as_the_general_check() {
        use crate::request::tree;
        let mut next = crate::testing::xorshift(0x5eed_b001_2222_0022u64);
        let mut pick = |n: usize| (next() % n as u64) as usize;
        /// A query as JSON text: a leaf, a refused shape, or a `bool` of random entries.
        fn query(pick: &mut impl FnMut(usize) -> usize, depth: u32) -> String {
            const FIELDS: &[&str] = &[
                "service.name",
                "log.level",
                "",
                "_id",
                "_index",
                "_seq_no",
                "_source",
                "*",
                "_s*",
                "user*",
                "boost",
                "_name",
                "field",
                "path",
                "fields",
                "default_field",
                "qu\\u00e9ry",
                // Metadata and internal fields (attack22b), one of them escaped.
                "_tier",
                "_routing",
                "_ignored",
                "_\\u0069d",
                "_s\\u0065q_no",
                "a.*.b",
            ];
            const SCALARS: &[&str] = &[
                r#""checkout""#,
                r#""""#,
                r#""a\"b""#,
                "1",
                "-2.5e3",
                "true",
                "false",
                "null",
            ];
            const OTHERS: &[&str] = &[
                r#"{"match_all":{}}"#,
                r#"{"range":{"@timestamp":{"gte":"now-1d","lte":"now"}}}"#,
                r#"{"range":{"_id":{"gte":"a"}}}"#,
                r#"{"range":{"t":{"gte":"2021","relation":"disjoint"}}}"#,
                r#"{"range":{"t":{"gte":"2021","relation":"disj\u006fint"}}}"#,
                r#"{"range":{"t":{"gte":"2021","relation":"WITHIN"}}}"#,
                r#"{"match":{"a":{"query":"x","fuzziness":"AUTO"}}}"#,
                r#"{"match":{"a":{"query":"x","operator":"and"}}}"#,
                r#"{"match_phrase":{"a":{"query":"x","slop":1}}}"#,
                r#"{"term":{"_id":{"value":"x","case_insensitive":true}}}"#,
                r#"{"terms":{"a":["x","y"]}}"#,
                r#"{"terms":{"a":{"index":"other","id":"1","path":"p"}}}"#,
                r#"{"script":{"script":{"source":"1"}}}"#,
                r#"{"wrapper":{"query":"e30="}}"#,
                r#"{"has_child":{"type":"c","query":{"match_all":{}}}}"#,
                r#"{"more_like_this":{"like":"x"}}"#,
                r#"{"exists":{"field":"_seq_no"}}"#,
                r#"{"query_string":{"query":"_seq_no:1"}}"#,
                r#"{"match":{"a":"x","b":"y"}}"#,
                r#"{"match":{"a":"x"},"term":{"b":1}}"#,
                r#"{"match":{}}"#,
                r#"{"match":["a"]}"#,
                r#"{"match":{"a":["x"]}}"#,
                r#"{"match":{"a":{}}}"#,
                r#"{"bool":[]}"#,
                r#"{"bool":"x"}"#,
                r#"{"bool":{}}"#,
                r#"{"unknown":{}}"#,
                r#"{}"#,
                "[]",
                r#""x""#,
                "1",
                "null",
            ];
            match pick(if depth >= 3 { 3 } else { 5 }) {
                0 | 1 => {
                    let ty = [
                        "match_phrase",
                        "match",
                        "term",
                        "terms",
                        "m\\u0061tch",
                        "Match",
                    ][pick(6)];
                    format!(
                        r#"{{"{ty}":{{"{}":{}}}}}"#,
                        FIELDS[pick(FIELDS.len())],
                        SCALARS[pick(SCALARS.len())]
                    )
                }
                2 => OTHERS[pick(OTHERS.len())].to_string(),
                _ => {
                    const KEYS: &[&str] = &[
                        "must",
                        "should",
                        "filter",
                        "must_not",
                        "minimum_should_match",
                        "boost",
                        "_name",
                        "adjust_pure_negative",
                        "unknown",
                        "_seq_no",
                        "*",
                        "Must",
                        "query",
                        "f\\u0069lter",
                    ];
                    let mut entries = Vec::new();
                    for _ in 0..pick(5) {
                        // Mostly the clause and option keys.
                        let key = KEYS[if pick(8) == 0 {
                            pick(KEYS.len())
                        } else {
                            pick(8)
                        }];
                        let value = match pick(8) {
                            0 => query(pick, depth + 1),
                            1 => SCALARS[pick(SCALARS.len())].to_string(),
                            2 => [
                                "[]",
                                r#"["a","b"]"#,
                                "[1,[]]",
                                r#"{"a":1}"#,
                                "{}",
                                // Lists in a list, nulls, and `minimum_should_match`'s forms
                                // (attack22b).
                                r#"[[{"match":{"a":"x"}}]]"#,
                                r#"[["a"]]"#,
                                "[null]",
                                r#"[{"match":{"a":"x"}},null]"#,
                                r#""50%""#,
                                r#""3<90%""#,
                                r#""-1""#,
                            ][pick(12)]
                            .to_string(),
                            _ => {
                                let items: Vec<String> =
                                    (0..pick(4)).map(|_| query(pick, depth + 1)).collect();
                                format!("[{}]", items.join(","))
                            }
                        };
                        entries.push(format!(r#""{key}":{value}"#));
                    }
                    format!(r#"{{"bool":{{{}}}}}"#, entries.join(","))
                }
            }
        }
        let filters = FilterSet::new([("tenant".to_string(), "a".to_string())]);
        let value_of = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        let (mut bools, mut accepted, mut refused, mut duplicates) = (0, 0, 0, 0);
        while bools < 4000 {
            let mut text = query(&mut pick, 0);
            if !text.starts_with(r#"{"bool":{"#) {
                continue;
            }
            bools += 1;
            if pick(4) == 0 {
                text = text.replace(',', ", ").replace(':', ": ");
            }
            let arena = tree::Arena::default();
            let Ok(parsed) = tree::parse(text.as_bytes(), &arena) else {
                // A key given twice: refused by the parse, as by serde_json's strict parse.
                assert!(
                    crate::request::body::parse_strict(text.as_bytes()).is_err(),
                    "{text}"
                );
                duplicates += 1;
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap();
            let fast = check(J::from(&parsed));
            PARSED_BOOLS_OFF.with(|off| off.set(true));
            let general = check(J::from(&parsed));
            PARSED_BOOLS_OFF.with(|off| off.set(false));
            assert_eq!(fast, general, "{text}");
            assert_eq!(check(J::from(&value)), general, "{text}");
            if general.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
            // The search rewrite of a body holding the query: the same body, or the same refusal.
            let body = format!(r#"{{"size":3,"query":{text}}}"#);
            let rewritten = |off: bool| {
                PARSED_BOOLS_OFF.with(|o| o.set(off));
                let arena = tree::Arena::default();
                let parsed = tree::parse(body.as_bytes(), &arena).unwrap();
                let out = super::super::rewrite::search_tree(parsed, false, 0, &filters, None).map(
                    |out| {
                        let mut bytes = Vec::new();
                        tree::write(&out.expect("a body the tree path takes"), &mut bytes);
                        bytes
                    },
                );
                PARSED_BOOLS_OFF.with(|o| o.set(false));
                out
            };
            let on = rewritten(false);
            assert_eq!(on, rewritten(true), "{body}");
            // serde_json writes numbers its own way (`-2.5e3` as `-2500.0`): its verdict only.
            let serde = super::super::rewrite::search(Some(value_of(&body)), &filters);
            assert_eq!(on.err(), serde.err(), "{body}");
        }
        assert!(
            accepted > 500 && refused > 500 && duplicates > 20,
            "{accepted} {refused} {duplicates}"
        );
    }

    /// [`check_fields`] decides as its two passes over lists of one to three items of every
    /// shape: names (plain, metadata, patterns), objects (allowed, unknown and scripted keys,
    /// `field` of every kind), other values; and values that are not lists.
    #[test]
    fn fields_lists_decide_as_the_two_passes() {
        let items = vec![
            json!("a"),
            json!("*"),
            json!("_seq_no"),
            json!("_s*"),
            json!("_id"),
            json!(1),
            json!(null),
            json!([]),
            json!({}),
            json!({"field": "a"}),
            json!({"field": "_seq_no"}),
            json!({"field": "*no"}),
            json!({"field": 1}),
            json!({"field": ["_seq_no"]}),
            json!({"field": {"script": 1}}),
            json!({"field": "a", "format": "x", "include_unmapped": true}),
            json!({"field": "a", "format": {"script": "x"}}),
            json!({"format": "x"}),
            json!({"field": "a", "other": 1}),
            json!({"script": "x"}),
        ];
        let mut lists: Vec<Value> = vec![json!("a"), json!(1), json!({"field": "a"}), json!([])];
        for a in &items {
            lists.push(json!([a]));
            for b in &items {
                lists.push(json!([a, b]));
                lists.push(json!([a, "b", b]));
            }
        }
        for list in &lists {
            for key in ["fields", "docvalue_fields"] {
                assert_eq!(
                    check_fields(J::from(list), key),
                    check_fields_in_two_passes(J::from(list), key),
                    "{list}"
                );
            }
        }
    }

    /// Deeply nested `bool`s with a key the fast path leaves to the general one, at every
    /// level, before or after the nested query, are each walked once: a fallback that re-walked
    /// would double the work per level (2^200 here). The refusal is the general path's.
    #[test]
    fn nested_bools_left_to_the_general_check_are_walked_once() {
        for unknown_first in [false, true] {
            let mut q = json!({"match_phrase": {"_seq_no": "x"}});
            for _ in 0..200 {
                q = if unknown_first {
                    json!({"bool": {"zzz": 1, "must": q}})
                } else {
                    json!({"bool": {"must": q, "zzz": 1}})
                };
            }
            // On a thread of its own, so that a walk that never ends fails the test.
            let (done, result) = std::sync::mpsc::channel();
            std::thread::spawn(move || done.send(check(J::from(&q))));
            let refused = result
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("a nested query is walked once")
                .unwrap_err();
            assert_eq!(
                refused.kind,
                crate::RejectKind::Forbidden,
                "{}",
                refused.reason
            );
        }
        // Parsed, as deep as a body may nest (64), with the key the token path leaves to the
        // general one at every level or only at the deepest, each clause a query or a list:
        // [`parsed_bool`] falls back to [`check`] for the one `bool` it leaves, never for a
        // whole subtree again.
        for (unknown_first, every_level, list) in [
            (false, true, false),
            (true, true, true),
            (false, false, true),
            (true, false, false),
        ] {
            let mut q = r#"{"match_phrase":{"_seq_no":"x"}}"#.to_string();
            for level in 0..20 {
                let unknown = if every_level || level == 0 {
                    r#""zzz":1"#
                } else {
                    r#""boost":1"#
                };
                let clause = if list {
                    format!(r#""must":[{q},{{"match":{{"a":"b"}}}}]"#)
                } else {
                    format!(r#""must":{q}"#)
                };
                q = if unknown_first {
                    format!(r#"{{"bool":{{{unknown},{clause}}}}}"#)
                } else {
                    format!(r#"{{"bool":{{{clause},{unknown}}}}}"#)
                };
            }
            let arena = crate::request::tree::Arena::default();
            let parsed = crate::request::tree::parse(q.as_bytes(), &arena).unwrap();
            PARSED_BOOL_CALLS.with(|n| n.set(0));
            let refused = check(J::from(&parsed)).unwrap_err();
            assert_eq!(
                refused.kind,
                crate::RejectKind::Forbidden,
                "{}",
                refused.reason
            );
            // Each level's `bool` looked at twice at most: once on the token path and once
            // more when left to the general one.
            let calls = PARSED_BOOL_CALLS.with(std::cell::Cell::get);
            assert!(calls <= 40, "{calls}: {q}");
        }
    }

    /// [`text_query_passes`] accepts only what [`check_type`] accepts, and [`check`] decides
    /// as [`check_type`] (refusals compared whole), for both text query types and others, with
    /// bodies of one to three parameters: query texts (plain, field references, metadata
    /// fields, fuzzy terms, wildcards, deep nesting, escapes, not a string), target fields,
    /// `flags`, options (allowed, expanding), unknown and scripted keys.
    #[test]
    fn text_queries_decide_as_the_general_check() {
        let entries = vec![
            ("query", json!("service:s1 AND level:error")),
            ("query", json!("a*")),
            ("query", json!("_seq_no:1")),
            ("query", json!("\\_id:a*")),
            ("query", json!("bob~2")),
            ("query", json!("\"a b\"~2")),
            ("query", json!("x:[1 TO 2]")),
            ("query", json!("(".repeat(40))),
            ("query", json!("\"open")),
            ("query", json!("\\u00")),
            ("query", json!(1)),
            ("query", json!({"script": "x"})),
            ("default_field", json!("message")),
            ("default_field", json!("_id")),
            ("default_field", json!("_seq_no")),
            ("default_field", json!(1)),
            ("fields", json!(["a", "b^2"])),
            ("fields", json!(["_id^2"])),
            ("fields", json!(["*no"])),
            ("fields", json!(["a", 1])),
            ("fields", json!("a")),
            ("fields", json!([])),
            ("flags", json!("ALL")),
            ("analyze_wildcard", json!(true)),
            ("fuzziness", json!(0)),
            ("fuzziness", json!("AUTO")),
            ("rewrite", json!("constant_score")),
            ("rewrite", json!("top_terms_1")),
            ("type", json!("phrase_prefix")),
            ("type", json!("best_fields")),
            ("fuzzy_max_expansions", json!(1)),
            ("_name", json!("n")),
            ("_name", json!({"script": 1})),
            ("boost", json!(2)),
            ("_foo", json!(1)),
            ("unknown", json!(1)),
            ("default_operator", json!({"script": "x"})),
        ];
        let mut bodies: Vec<Value> = vec![json!({}), json!(1), json!("x"), json!([])];
        for (i, (k, v)) in entries.iter().enumerate() {
            bodies.push(json!({ *k: v }));
            for (j, (k2, v2)) in entries.iter().enumerate().skip(i + 1) {
                bodies.push(json!({ *k: v, *k2: v2 }));
                for (k3, v3) in entries.iter().skip(j + 1).step_by(3) {
                    bodies.push(json!({ *k3: v3, *k: v, *k2: v2 }));
                }
            }
        }
        let mut accepted = 0;
        for ty in [
            "query_string",
            "simple_query_string",
            "match",
            "multi_match",
        ] {
            for body in &bodies {
                let general = check_type(ty, J::from(body));
                let text_type = matches!(ty, "query_string" | "simple_query_string");
                // Without a parameter given twice (a serde_json object has none), it takes
                // every text query the general path accepts.
                assert_eq!(
                    text_query_passes(ty, J::from(body)),
                    text_type && general.is_ok(),
                    "{ty} {body}"
                );
                accepted += usize::from(text_type && general.is_ok());
                let q = json!({ ty: body });
                assert_eq!(check(J::from(&q)), general, "{q}");
            }
        }
        assert!(accepted > 500, "{accepted}");
    }

    /// [`range_leaf_passes`] accepts only what [`check_type`] accepts, and every range body of
    /// one field with options [`check_type`] accepts: bodies of one and two entries of every key
    /// above with every value above, and options objects of every range option, unknown and
    /// scripted keys.
    #[test]
    fn range_leaves_decide_as_the_general_check() {
        let mut values = values();
        for (k, v) in [
            ("gte", json!("now-1d")),
            ("lte", json!(1700000000000u64)),
            ("format", json!("epoch_millis")),
            ("time_zone", json!("UTC")),
            ("relation", json!({"script": 1})),
            ("relation", json!("disjoint")),
            ("relation", json!("Contains")),
            ("relation", json!(1)),
            ("_name", json!("n")),
            ("unknown", json!(1)),
            ("script", json!("x")),
        ] {
            values.push(json!({ k: v }));
            values.push(json!({"gte": 1, k: v, "lt": 2}));
        }
        let mut bodies: Vec<Value> = values.clone();
        for k in KEYS {
            for v in &values {
                bodies.push(json!({ *k: v }));
                for k2 in ["boost", "_name", "service.name", "_seq_no"] {
                    bodies.push(json!({ *k: v, k2: "x" }));
                }
            }
        }
        let mut decided = 0;
        for ty in ["range", "term", "Range", "range "] {
            for body in &bodies {
                let general = check_type(ty, J::from(body));
                let one_field = body.as_object().is_some_and(|m| {
                    m.len() == 1
                        && m.iter().all(|(k, v)| {
                            v.is_object()
                                && !matches!(
                                    k.as_str(),
                                    "boost"
                                        | "_name"
                                        | "field"
                                        | "default_field"
                                        | "path"
                                        | "fields"
                                )
                        })
                });
                let fast = ty == "range" && range_leaf_passes(J::from(body));
                if fast {
                    decided += 1;
                    assert_eq!(general, Ok(()), "{ty} {body}");
                }
                if ty == "range" && one_field {
                    assert_eq!(fast, general.is_ok(), "{body}");
                }
                let q = json!({ ty: body });
                assert_eq!(check(J::from(&q)), general, "{q}");
            }
        }
        assert!(decided > 100, "{decided}");
    }

    /// Attack23: a `range` whose `relation` is not `intersects`, `within` or `contains` (any
    /// case; `disjoint` failed the search exactly when other tenants' dates crossed the range)
    /// is refused wherever it stands, on the general path and on the parsed one.
    #[test]
    fn disjoint_ranges_are_refused() {
        use crate::request::tree;
        for relation in [
            "disjoint",
            "DISJOINT",
            "dis\\u006aoint",
            "overlaps",
            "",
            "1",
            "null",
        ] {
            let value = if relation == "1" || relation == "null" {
                relation.to_string()
            } else {
                format!("\"{relation}\"")
            };
            let range = format!(r#"{{"range":{{"t":{{"gte":"2021-01-01","relation":{value}}}}}}}"#);
            for q in [
                range.clone(),
                format!(
                    r#"{{"range":{{"t":{{"gte":"2021-01-01","relation":{value}}},"boost":2}}}}"#
                ),
                format!(r#"{{"bool":{{"filter":[{range}]}}}}"#),
                format!(r#"{{"bool":{{"must":[{{"match":{{"a":"x"}}}},{range}]}}}}"#),
                format!(r#"{{"constant_score":{{"filter":{range}}}}}"#),
                format!(r#"{{"nested":{{"path":"n","query":{range}}}}}"#),
            ] {
                let v: Value = serde_json::from_str(&q).expect("JSON");
                let general = check_query(&v);
                assert_eq!(
                    general.as_ref().map_err(|e| e.kind),
                    Err(crate::RejectKind::Forbidden),
                    "{q}"
                );
                let arena = tree::Arena::default();
                let parsed = tree::parse(q.as_bytes(), &arena).expect("parses");
                assert_eq!(check(J::from(&parsed)), general, "{q}");
            }
        }
        for relation in ["intersects", "INTERSECTS", "within", "Contains"] {
            let q = json!({"bool": {"filter": [{"range": {"t": {"gte": "2021", "relation": relation}}}]}});
            assert_eq!(check_query(&q), Ok(()), "{q}");
        }
    }

    /// Attack18e: a `range` on a field that may be a metadata field is an expansion over its
    /// terms, refused like `_id:[a TO b]` in query text (`expansion`); `_index` and plain
    /// fields keep their ranges.
    #[test]
    fn ranges_on_metadata_fields_are_refused_like_in_query_text() {
        for q in [
            json!({"range": {"_id": {"gte": "b", "lt": "c"}}}),
            json!({"range": {"_routing": {"gt": "a"}}}),
            json!({"range": {"_version": {"gte": 2}}}),
            json!({"range": {"_tier": {"lte": "data_warm"}}}),
            json!({"range": {"_ignored": {"gte": "a"}}}),
            json!({"range": {"_i*": {"gte": "a"}}}),
            json!({"bool": {"filter": [{"range": {"_id": {"gte": "b"}}}]}}),
            json!({"query_string": {"query": "_id:[b TO c]"}}),
        ] {
            let r = check_query(&q);
            assert_eq!(
                r.map_err(|e| e.kind),
                Err(crate::RejectKind::Forbidden),
                "{q}"
            );
        }
        for q in [
            json!({"range": {"@timestamp": {"gte": "now-1d"}}}),
            json!({"range": {"_index": {"gte": "logs-a"}}}),
            json!({"range": {"n": {"gte": 1}}}),
        ] {
            assert_eq!(check_query(&q), Ok(()), "{q}");
        }
    }

    /// [`scalar_leaf`] decides only what [`check_type`] decides, and alike (refusals
    /// included, reason and status), over every query type of the table and more, with bodies
    /// of one and two entries of every key and value above, and bodies that are not objects.
    #[test]
    fn scalar_leaves_decide_as_the_general_check() {
        let mut types: Vec<&str> = QUERY_TYPES.names();
        types.extend(["unknown", "", "Match", "match_phrase ", "_name"]);
        let values = values();
        let mut bodies: Vec<Value> = values.clone();
        for k in KEYS {
            for v in &values {
                bodies.push(json!({ *k: v }));
                for k2 in ["boost", "_name", "service.name", "_seq_no", "field"] {
                    bodies.push(json!({ *k: v, k2: "x" }));
                }
            }
        }
        let mut decided = 0;
        for ty in &types {
            for body in &bodies {
                let general = check_type(ty, J::from(body));
                if let Some(fast) = scalar_leaf(ty, J::from(body)) {
                    decided += 1;
                    assert_eq!(fast, general, "{ty} {body}");
                }
                let q = json!({ *ty: body });
                assert_eq!(check(J::from(&q)), general, "{q}");
            }
        }
        // The fast path took each scalar value of each key it does not leave alone, for each
        // of its three types.
        assert!(decided >= 3 * 6 * 15, "{decided}");
    }

    /// [`parsed_scalar_leaf`] decides only what [`check`] without it decides, and alike (refusals
    /// included), on parsed queries of every query type and more over bodies of one and two
    /// entries of every key and value (scalars, containers, empty ones), nested one level
    /// further, and queries of two types; and [`check`] of the parsed query decides as
    /// [`check`] of serde_json's tree, alone and in lists of queries.
    #[test]
    fn parsed_scalar_leaves_decide_as_the_general_check() {
        use crate::request::tree;
        let mut types: Vec<&str> = QUERY_TYPES.names();
        types.extend(["unknown", "", "Match", "match_phrase ", "_name", "terms"]);
        let values = values();
        let mut bodies: Vec<Value> = values.clone();
        for k in KEYS {
            for v in &values {
                bodies.push(json!({ *k: v }));
                bodies.push(json!({ *k: { *k: v } }));
                for k2 in ["boost", "_name", "service.name", "_seq_no", "field"] {
                    bodies.push(json!({ *k: v, k2: "x" }));
                }
            }
        }
        let mut queries = Vec::new();
        for ty in &types {
            for body in &bodies {
                queries.push(json!({ *ty: body }));
            }
            queries.push(json!({ *ty: {"a": 1}, "match": {"a": 1} }));
        }
        let arena = tree::Arena::default();
        let mut decided = 0;
        for q in &queries {
            let text = serde_json::to_vec(q).unwrap();
            let parsed = tree::parse(&text, &arena).unwrap();
            PARSED_LEAVES_OFF.with(|off| off.set(true));
            let general = check(J::from(&parsed));
            PARSED_LEAVES_OFF.with(|off| off.set(false));
            if let Some(fast) = parsed_scalar_leaf(J::from(&parsed)) {
                decided += 1;
                assert_eq!(fast, general, "{q}");
            }
            assert_eq!(check(J::from(&parsed)), general, "{q}");
            assert_eq!(check(J::from(q)), general, "{q}");
            // In a list of queries (walked on its tokens), first and last.
            for list in [
                json!({"bool": {"filter": [q, {"match": {"a": 1}}]}}),
                json!({"bool": {"should": [{"term": {"b": "c"}}, q], "must": q}}),
            ] {
                let text = serde_json::to_vec(&list).unwrap();
                let parsed = tree::parse(&text, &arena).unwrap();
                assert_eq!(check(J::from(&parsed)), check(J::from(&list)), "{list}");
            }
        }
        // Each scalar value of each key not read specially, for each of the three types.
        assert!(decided >= 3 * 6 * 15, "{decided}");
    }

    #[test]
    fn tables_name_each_key_once() {
        for (name, table) in [
            ("BOOL", BOOL),
            ("BOOSTING", BOOSTING),
            ("CONSTANT_SCORE", CONSTANT_SCORE),
            ("DIS_MAX", DIS_MAX),
            ("NESTED", NESTED),
            ("FUNCTION_SCORE", FUNCTION_SCORE),
            ("SCORE_FUNCTION", SCORE_FUNCTION),
            ("KNN", KNN),
            ("GEO_SHAPE_FIELD", GEO_SHAPE_FIELD),
            ("QUERY_TYPES", QUERY_TYPES),
            ("TOP_HITS", TOP_HITS),
            ("INNER_HITS", INNER_HITS),
            ("HIGHLIGHT", HIGHLIGHT),
            ("HIGHLIGHT_FIELD", HIGHLIGHT_FIELD),
            ("COLLAPSE", COLLAPSE),
            ("SORT_OPTIONS", SORT_OPTIONS),
            ("SORT_NESTED", SORT_NESTED),
            ("SOURCE", SOURCE),
        ] {
            assert_each_key_once(name, table);
            assert_lookups_are_the_scans(name, table);
        }
        for (name, keys) in [
            ("SCORE_FUNCTIONS", SCORE_FUNCTIONS),
            ("RANGE_OPTIONS", RANGE_OPTIONS),
            ("TERM_OPTIONS", TERM_OPTIONS),
            ("PREFIX_OPTIONS", PREFIX_OPTIONS),
            ("WILDCARD_OPTIONS", WILDCARD_OPTIONS),
            ("REGEXP_OPTIONS", REGEXP_OPTIONS),
            ("MATCH_OPTIONS", MATCH_OPTIONS),
            ("MATCH_PHRASE_OPTIONS", MATCH_PHRASE_OPTIONS),
            ("MULTI_MATCH", MULTI_MATCH),
            ("QUERY_STRING", QUERY_STRING),
            ("SIMPLE_QUERY_STRING", SIMPLE_QUERY_STRING),
            ("COMBINED_FIELDS", COMBINED_FIELDS),
            ("RANK_FEATURE", RANK_FEATURE),
            ("HIGHLIGHT_OPTIONS", HIGHLIGHT_OPTIONS),
        ] {
            assert_keys_lookup_is_the_scan(name, keys);
        }
    }
}
