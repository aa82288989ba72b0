//! Query-string parameters (security.md I-3, E1–E4): split the way Elasticsearch splits them,
//! then keep only what the route allows.
//!
//! Invariant: the query string is decoded with ES semantics (`&` and `;` separate, `#` ends it,
//! `+` is a space, percent-decoding) and anything ambiguous is rejected: duplicate names, invalid
//! percent-encoding, non-UTF-8. A parameter that is not on the route's list is a 403; values
//! are checked where a value changes semantics (`search_type`, `expand_wildcards`, ...). The
//! output is the exact parameter list forwarded, in canonical order, with
//! `expand_wildcards=open` added on every route that takes it.

use crate::error::printable;
use crate::Rejection;

/// Which parameter list applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamSet {
    Root,
    Search,
    Count,
    Msearch,
    Mapping,
    FieldCaps,
    ClusterHealth,
    ResolveIndex,
    /// Scroll continuation and clearing: only `scroll` and response shaping.
    Scroll,
    /// Opening a point in time (both dialects).
    PitOpen,
    /// Closing a point in time.
    NoParams,
    /// Submitting an async search: the search list without `scroll`, plus the async options.
    AsyncSubmit,
    /// Polling an async search.
    AsyncGet,
    /// `_validate/query`.
    ValidateQuery,
    /// The deprecated `_knn_search` (forwarded as a search).
    KnnSearch,
    /// `_terms_enum`: everything is in the body.
    TermsEnum,
    /// `_cat/indices`: rendering parameters, interpreted by `cat_indices`.
    CatIndices,
    /// `_explain`: response shaping only (no `q`, `df`, `analyzer`...).
    Explain,
    /// ES|QL `_query`.
    Esql,
    /// SQL `_sql`: `format=json` is forced so a cursor always travels in the body.
    Sql,
    /// EQL `_eql/search` (synchronous only).
    Eql,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Any string value.
    Text,
    /// `true`/`false` (or empty, meaning true).
    Bool,
    /// Non-negative integer.
    Uint,
    /// A time value such as `30s`, `1m`, `-1`.
    Time,
    /// Exactly one of the listed values.
    OneOf(&'static [&'static str]),
    /// A time value of at most this many milliseconds (no `-1`).
    TimeAtMost(u64),
}

// Response shaping, taken out by `shaping` (forwarded or applied by esgate, never both).
// `error_trace=true` would add the backend's stack traces to errors: only the default is taken.
const COMMON: &[(&str, Kind)] = &[
    ("pretty", Kind::Bool),
    ("human", Kind::Bool),
    ("filter_path", Kind::Text),
    ("error_trace", Kind::OneOf(&["false"])),
];

const INDICES_OPTIONS: &[(&str, Kind)] = &[
    // Only widens to frozen indices the expression already names (Grafana sends it).
    ("ignore_throttled", Kind::Bool),
    ("expand_wildcards", Kind::OneOf(&["open"])),
    ("ignore_unavailable", Kind::Bool),
    ("allow_no_indices", Kind::Bool),
];

// URI search: translated into the body by `uri_search` and never forwarded as parameters.
const URI_SEARCH: &[(&str, Kind)] = &[
    ("q", Kind::Text),
    ("df", Kind::Text),
    ("analyzer", Kind::Text),
    ("analyze_wildcard", Kind::Text),
    ("lenient", Kind::Text),
    ("default_operator", Kind::Text),
];

// `rewrite=true` expands multi-term queries against the whole index and `all_shards=true`
// explains each shard's rewritten query: both show other tenants' terms.
const VALIDATE_QUERY: &[(&str, Kind)] = &[
    ("explain", Kind::Bool),
    ("rewrite", Kind::OneOf(&["false"])),
    ("all_shards", Kind::OneOf(&["false"])),
];

const KNN_SEARCH: &[(&str, Kind)] = &[("routing", Kind::Text)];

const SEARCH: &[(&str, Kind)] = &[
    ("size", Kind::Uint),
    ("from", Kind::Uint),
    ("track_total_hits", Kind::Text),
    ("timeout", Kind::Time),
    ("allow_partial_search_results", Kind::Bool),
    ("pre_filter_shard_size", Kind::Uint),
    ("typed_keys", Kind::Bool),
    ("rest_total_hits_as_int", Kind::Bool),
    ("search_type", Kind::OneOf(&["query_then_fetch"])),
    ("batched_reduce_size", Kind::Uint),
    ("max_concurrent_shard_requests", Kind::Uint),
    ("request_cache", Kind::Bool),
    ("preference", Kind::Text),
    ("routing", Kind::Text),
    ("terminate_after", Kind::Uint),
    ("track_scores", Kind::Bool),
    ("version", Kind::Bool),
    ("seq_no_primary_term", Kind::Bool),
    ("_source", Kind::Text),
    ("_source_includes", Kind::Text),
    ("_source_excludes", Kind::Text),
    ("stored_fields", Kind::Text),
    ("docvalue_fields", Kind::Text),
    ("sort", Kind::Text),
    ("scroll", Kind::Time),
];

const SCROLL: &[(&str, Kind)] = &[
    ("scroll", Kind::Time),
    ("rest_total_hits_as_int", Kind::Bool),
    ("typed_keys", Kind::Bool),
];

const PIT_OPEN: &[(&str, Kind)] = &[
    ("keep_alive", Kind::Time),
    ("preference", Kind::Text),
    ("routing", Kind::Text),
    ("allow_partial_search_results", Kind::Bool),
    ("allow_partial_pit_creation", Kind::Bool),
];

// No `min_score`: scores carry index-wide statistics, a threshold on them would make the count
// depend on other tenants' documents (see `expansion`).
const COUNT: &[(&str, Kind)] = &[
    ("preference", Kind::Text),
    ("routing", Kind::Text),
    ("terminate_after", Kind::Uint),
];

const MSEARCH: &[(&str, Kind)] = &[
    ("max_concurrent_searches", Kind::Uint),
    ("max_concurrent_shard_requests", Kind::Uint),
    ("pre_filter_shard_size", Kind::Uint),
    ("rest_total_hits_as_int", Kind::Bool),
    ("typed_keys", Kind::Bool),
    ("search_type", Kind::OneOf(&["query_then_fetch"])),
];

const MAPPING: &[(&str, Kind)] = &[("local", Kind::Bool), ("master_timeout", Kind::Time)];

const FIELD_CAPS: &[(&str, Kind)] = &[
    ("fields", Kind::Text),
    ("include_unmapped", Kind::Bool),
    ("filters", Kind::Text),
    ("types", Kind::Text),
    ("include_empty_fields", Kind::Bool),
];

const CAT_INDICES: &[(&str, Kind)] = &[
    ("format", Kind::Text),
    ("h", Kind::Text),
    ("s", Kind::Text),
    ("v", Kind::Bool),
    ("bytes", Kind::Text),
    ("local", Kind::Bool),
    ("master_timeout", Kind::Time),
];

const EXPLAIN: &[(&str, Kind)] = &[
    ("_source", Kind::Text),
    ("_source_includes", Kind::Text),
    ("_source_excludes", Kind::Text),
    ("stored_fields", Kind::Text),
    ("routing", Kind::Text),
    ("preference", Kind::Text),
];

const ESQL: &[(&str, Kind)] = &[
    ("format", Kind::OneOf(&["json", "csv", "tsv", "txt"])),
    ("delimiter", Kind::Text),
    ("drop_null_columns", Kind::Bool),
    ("allow_partial_results", Kind::Bool),
];

const SQL: &[(&str, Kind)] = &[("format", Kind::OneOf(&["json"]))];

const EQL: &[(&str, Kind)] = &[
    ("allow_partial_search_results", Kind::Bool),
    ("allow_partial_sequence_results", Kind::Bool),
];

// Never a wait: `cluster_health` forwards `timeout=0s` in place of `timeout`, so a
// `wait_for_status` is checked once; the other `wait_for_*` are refused.
const CLUSTER_HEALTH: &[(&str, Kind)] = &[
    ("wait_for_status", Kind::OneOf(&["green", "yellow", "red"])),
    ("level", Kind::OneOf(&["cluster"])),
    ("timeout", Kind::Time),
];

impl ParamSet {
    fn lists(self) -> (&'static [(&'static str, Kind)], bool) {
        match self {
            ParamSet::Root => (&[], false),
            ParamSet::Search => (SEARCH, true),
            ParamSet::Count => (COUNT, true),
            ParamSet::Msearch => (MSEARCH, true),
            ParamSet::Mapping => (MAPPING, true),
            ParamSet::FieldCaps => (FIELD_CAPS, true),
            ParamSet::ClusterHealth => (CLUSTER_HEALTH, false),
            ParamSet::ResolveIndex => (&[], true),
            ParamSet::Scroll => (SCROLL, false),
            ParamSet::PitOpen => (PIT_OPEN, true),
            ParamSet::NoParams => (&[], false),
            ParamSet::AsyncSubmit => (SEARCH, true),
            ParamSet::AsyncGet => (ASYNC_GET, false),
            ParamSet::ValidateQuery => (VALIDATE_QUERY, true),
            ParamSet::KnnSearch => (KNN_SEARCH, false),
            ParamSet::TermsEnum => (&[], true),
            ParamSet::CatIndices => (CAT_INDICES, false),
            ParamSet::Explain => (EXPLAIN, false),
            ParamSet::Esql => (ESQL, false),
            ParamSet::Sql => (SQL, false),
            ParamSet::Eql => (EQL, true),
        }
    }

    /// Parameters a set takes besides its main list (looked up after it).
    fn extra(self) -> &'static [(&'static str, Kind)] {
        match self {
            ParamSet::AsyncSubmit => ASYNC_SUBMIT_EXTRA,
            _ => &[],
        }
    }

    /// Parameters of the main list a set refuses, with the reason.
    fn refused(self, name: &str) -> Option<&'static str> {
        match (self, name) {
            (ParamSet::AsyncSubmit, "scroll") => Some("async search cannot scroll"),
            (ParamSet::AsyncSubmit, "pre_filter_shard_size") => {
                Some("async search fixes pre_filter_shard_size")
            }
            _ => None,
        }
    }

    /// Whether the route takes URI search (`q` and its companions, see `uri_search`).
    fn takes_uri_search(self) -> bool {
        matches!(
            self,
            ParamSet::Search | ParamSet::Count | ParamSet::ValidateQuery
        )
    }
}

/// A wait longer than this could outlast esgate's backend timeout (a 504 from client input).
const MAX_ASYNC_WAIT_MS: u64 = 30_000;

/// Kibana's default search session expiration (`data.search.sessions.defaultExpiration`); a
/// longer life would let a token keep results (and cluster storage) around indefinitely
/// (security.md A16).
const MAX_ASYNC_KEEP_ALIVE_MS: u64 = 7 * 24 * 3_600_000;

const ASYNC_SUBMIT_EXTRA: &[(&str, Kind)] = &[
    (
        "wait_for_completion_timeout",
        Kind::TimeAtMost(MAX_ASYNC_WAIT_MS),
    ),
    ("keep_on_completion", Kind::Bool),
    ("keep_alive", Kind::TimeAtMost(MAX_ASYNC_KEEP_ALIVE_MS)),
    ("ccs_minimize_roundtrips", Kind::Bool),
];

const ASYNC_GET: &[(&str, Kind)] = &[
    (
        "wait_for_completion_timeout",
        Kind::TimeAtMost(MAX_ASYNC_WAIT_MS),
    ),
    ("keep_alive", Kind::TimeAtMost(MAX_ASYNC_KEEP_ALIVE_MS)),
    ("typed_keys", Kind::Bool),
    ("rest_total_hits_as_int", Kind::Bool),
];

/// Splits a raw query string the way Elasticsearch's `RestUtils.decodeQueryString` does and
/// rejects duplicates and invalid encodings.
pub fn split(query: Option<&str>) -> Result<Vec<(String, String)>, Rejection> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    let q = match q.find('#') {
        Some(i) => &q[..i],
        None => q,
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for piece in q.split(['&', ';']) {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.find('=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, ""),
        };
        let name = decode_component(name)?;
        let value = decode_component(value)?;
        if name.is_empty() {
            return Err(Rejection::bad_request(
                "query string has an empty parameter name",
            ));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(Rejection::bad_request("query string repeats a parameter"));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Splits the query string and keeps only the parameters `set` allows; returns the list to
/// forward (`expand_wildcards=open` forced where the route takes indices options).
pub fn check(query: Option<&str>, set: ParamSet) -> Result<Vec<(String, String)>, Rejection> {
    let pairs = split(query)?;
    let (specific, takes_indices) = set.lists();
    let mut out = Vec::with_capacity(pairs.len() + 1);
    for (name, value) in pairs {
        if let Some(why) = set.refused(&name) {
            return Err(Rejection::forbidden(format!(
                "query parameter [{name}] is not allowed for this request: {why}"
            )));
        }
        let kind = specific
            .iter()
            .chain(set.extra().iter())
            .chain(COMMON.iter())
            .chain(
                if set.takes_uri_search() {
                    URI_SEARCH
                } else {
                    &[]
                }
                .iter(),
            )
            .chain(if takes_indices { INDICES_OPTIONS } else { &[] }.iter())
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k);
        let Some(kind) = kind else {
            return Err(Rejection::forbidden(format!(
                "query parameter [{}] is not allowed for this request",
                printable(&name)
            )));
        };
        if !value_ok(kind, &value) {
            return Err(Rejection::forbidden(format!(
                "query parameter [{name}] has a value that is not allowed"
            )));
        }
        if name == "expand_wildcards" {
            continue; // re-added below in canonical form
        }
        out.push((name, value));
    }
    if takes_indices {
        out.push(("expand_wildcards".to_string(), "open".to_string()));
    }
    if set == ParamSet::Sql && !out.iter().any(|(k, _)| k == "format") {
        out.push(("format".to_string(), "json".to_string()));
    }
    Ok(out)
}

fn value_ok(kind: Kind, value: &str) -> bool {
    match kind {
        Kind::Text => !value.chars().any(char::is_control),
        Kind::Bool => matches!(value, "" | "true" | "false"),
        Kind::Uint => {
            !value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit())
        }
        Kind::Time => value == "-1" || is_time_value(value),
        Kind::OneOf(allowed) => allowed.contains(&value),
        Kind::TimeAtMost(max_ms) => time_millis(value).is_some_and(|ms| ms <= u128::from(max_ms)),
    }
}

/// An Elasticsearch time value: digits then a unit (`30s`, `1m`, `500ms`); the one rule for
/// parameters and for time values in bodies.
pub(crate) fn is_time_value(value: &str) -> bool {
    time_millis(value).is_some()
}

/// An Elasticsearch time value (`200ms`, `1s`, `60000ms`, `1m`) in milliseconds, rounded up;
/// `None` for anything else (including `-1`).
pub(crate) fn time_millis(value: &str) -> Option<u128> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return None;
    }
    let n: u128 = value[..digits].parse().ok()?;
    let (num, den): (u128, u128) = match &value[digits..] {
        "nanos" => (1, 1_000_000),
        "micros" => (1, 1_000),
        "ms" => (1, 1),
        "s" => (1_000, 1),
        "m" => (60_000, 1),
        "h" => (3_600_000, 1),
        "d" => (86_400_000, 1),
        _ => return None,
    };
    Some((n * num).div_ceil(den))
}

/// Strict percent-decoding shared by the query string (`plus_as_space`) and path values (no
/// `+` translation): an invalid escape or a non-UTF-8 result is a 400 naming `what`.
pub(crate) fn percent_decode(
    s: &str,
    plus_as_space: bool,
    what: &str,
) -> Result<String, Rejection> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex(*b));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h * 16 + l),
                    _ => {
                        return Err(Rejection::bad_request(format!(
                            "{what} has an invalid percent-encoding"
                        )))
                    }
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Rejection::bad_request(format!("{what} is not valid UTF-8")))
}

fn decode_component(s: &str) -> Result<String, Rejection> {
    percent_decode(s, true, "query string")
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectKind;

    use crate::testing::pairs;

    #[test]
    fn splits_like_elasticsearch() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("size=1&from=2", &[("size", "1"), ("from", "2")]),
            ("size=1;q=x", &[("size", "1"), ("q", "x")]), // ENC-04
            ("a=b+c", &[("a", "b c")]),
            ("a=%2B", &[("a", "+")]),
            ("pretty", &[("pretty", "")]),
            ("a=1&&b=2", &[("a", "1"), ("b", "2")]),
            ("a=1#q=x", &[("a", "1")]),
            ("q%3D=1", &[("q=", "1")]),
        ];
        for (q, want) in cases {
            assert_eq!(split(Some(q)).unwrap(), pairs(want), "{q}");
        }
    }

    #[test]
    fn split_rejects_duplicates_and_bad_encodings() {
        for q in [
            "q=a&q=b",
            "size=1;size=2",
            "a=%",
            "a=%zz",
            "a=%%",
            "a=%ff",
            "=x",
        ] {
            let err = split(Some(q)).unwrap_err();
            assert_eq!(err.kind, RejectKind::BadRequest, "{q}");
        }
    }

    #[test]
    fn search_denies_query_overriding_and_leaking_parameters() {
        // `q` and its companions are taken (and translated) by `uri_search`.
        let denied = [
            "source=%7B%7D&source_content_type=application/json", // ENC-06
            "suggest_field=message&suggest_text=x",               // ENC-07
            "explain=true",
            "search_type=dfs_query_then_fetch",
            "scroll_id=abc",
            "expand_wildcards=all",
            "expand_wildcards=open,hidden", // IDX-13
            "error_trace=true",
            "format=yaml",
            "search_pipeline=p",
            "ccs_minimize_roundtrips=false",
            "size=-1",
            "size=abc",
        ];
        for q in denied {
            let err = check(Some(q), ParamSet::Search).unwrap_err();
            assert!(
                err.kind == RejectKind::Forbidden || err.kind == RejectKind::BadRequest,
                "{q}"
            );
        }
    }

    #[test]
    fn search_keeps_harmless_parameters_and_forces_open_wildcards() {
        let got = check(
            Some("size=10&from=5&track_total_hits=true&pre_filter_shard_size=1&search_type=query_then_fetch&expand_wildcards=open"),
            ParamSet::Search,
        )
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("size", "10"),
                ("from", "5"),
                ("track_total_hits", "true"),
                ("pre_filter_shard_size", "1"),
                ("search_type", "query_then_fetch"),
                ("expand_wildcards", "open"),
            ])
        );
        assert_eq!(
            check(None, ParamSet::Count).unwrap(),
            pairs(&[("expand_wildcards", "open")])
        );
    }

    #[test]
    fn cluster_health_takes_only_its_three_parameters() {
        assert_eq!(
            check(
                Some("wait_for_status=yellow&level=cluster"),
                ParamSet::ClusterHealth
            )
            .unwrap(),
            pairs(&[("wait_for_status", "yellow"), ("level", "cluster")])
        );
        // Accepted but never forwarded: `cluster_health` forwards `timeout=0s` (never a wait).
        assert!(check(Some("timeout=30s"), ParamSet::ClusterHealth).is_ok());
        for q in [
            "wait_for_nodes=1",
            "wait_for_active_shards=all",
            "wait_for_events=languid",
            "wait_for_no_relocating_shards=true",
            "wait_for_no_initializing_shards=true",
            "level=indices",
            "level=shards",
            "wait_for_status=blue",
            "expand_wildcards=open",
            "local=true",
        ] {
            assert!(check(Some(q), ParamSet::ClusterHealth).is_err(), "{q}");
        }
    }

    #[test]
    fn uri_search_parameters_pass_only_where_they_are_translated() {
        let q = "q=*:*&df=x&analyzer=x&lenient=true&default_operator=or&analyze_wildcard=true";
        for set in [ParamSet::Search, ParamSet::Count, ParamSet::ValidateQuery] {
            let got = check(Some(q), set).unwrap();
            assert_eq!(got.len(), 7, "{set:?}: {got:?}");
        }
        for set in [
            ParamSet::Mapping,
            ParamSet::FieldCaps,
            ParamSet::Msearch,
            ParamSet::KnnSearch,
            ParamSet::PitOpen,
        ] {
            assert_eq!(
                check(Some("q=x"), set).unwrap_err().kind,
                RejectKind::Forbidden,
                "{set:?}"
            );
        }
    }

    #[test]
    fn score_thresholds_and_expansion_options_are_never_parameters() {
        // Issue 17: `min_score` turns index-wide scores into counts; the URI search companions
        // that would configure fuzzy or multi-term expansion are not accepted either.
        for set in [
            ParamSet::Search,
            ParamSet::Count,
            ParamSet::ValidateQuery,
            ParamSet::AsyncSubmit,
            ParamSet::Msearch,
        ] {
            for q in [
                "min_score=1",
                "q=x&fuzzy_max_expansions=1",
                "q=x&fuzzy_rewrite=top_terms_1",
                "q=x&fuzziness=2",
                "q=x&rewrite=top_terms_1",
                "q=x&fuzzy_prefix_length=0",
            ] {
                assert_eq!(
                    check(Some(q), set).unwrap_err().kind,
                    RejectKind::Forbidden,
                    "{set:?} {q}"
                );
            }
        }
    }

    #[test]
    fn validate_query_refuses_rewrite_and_all_shards() {
        assert_eq!(
            check(
                Some("explain=true&rewrite=false&all_shards=false"),
                ParamSet::ValidateQuery
            )
            .unwrap(),
            pairs(&[
                ("explain", "true"),
                ("rewrite", "false"),
                ("all_shards", "false"),
                ("expand_wildcards", "open")
            ])
        );
        for q in ["rewrite=true", "rewrite", "all_shards=true", "all_shards"] {
            let err = check(Some(q), ParamSet::ValidateQuery).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{q}");
        }
    }

    #[test]
    fn error_does_not_echo_the_value() {
        let err = check(Some("q=LEAKMARKER"), ParamSet::Mapping).unwrap_err();
        assert!(!err.reason.contains("LEAKMARKER"));
        assert!(err.reason.contains("[q]"));
    }

    #[test]
    fn async_submit_takes_kibanas_parameters_and_refuses_scroll() {
        let kibana = "batched_reduce_size=64&ccs_minimize_roundtrips=true&wait_for_completion_timeout=200ms&keep_on_completion=false&keep_alive=60000ms&ignore_unavailable=true";
        assert_eq!(
            check(Some(kibana), ParamSet::AsyncSubmit).unwrap(),
            pairs(&[
                ("batched_reduce_size", "64"),
                ("ccs_minimize_roundtrips", "true"),
                ("wait_for_completion_timeout", "200ms"),
                ("keep_on_completion", "false"),
                ("keep_alive", "60000ms"),
                ("ignore_unavailable", "true"),
                ("expand_wildcards", "open"),
            ])
        );
        for q in [
            "scroll=1m",
            "pre_filter_shard_size=1",
            "q=user:bob",
            "wait_for_completion_timeout=31s",
            "wait_for_completion_timeout=1h",
            "wait_for_completion_timeout=-1",
            "keep_alive=8d",
            "keep_alive=604800001ms",
            "keep_alive=-1",
            "keep_on_completion=yes",
            "expand_wildcards=all",
            "search_type=dfs_query_then_fetch",
        ] {
            assert_eq!(
                check(Some(q), ParamSet::AsyncSubmit).unwrap_err().kind,
                RejectKind::Forbidden,
                "{q}"
            );
        }
        // Kibana's search sessions keep results for 7 days.
        assert!(check(Some("keep_alive=604800000ms"), ParamSet::AsyncSubmit).is_ok());
        // The async options do not leak into plain search.
        assert!(check(Some("keep_on_completion=true"), ParamSet::Search).is_err());
        assert!(check(Some("scroll=1m"), ParamSet::Search).is_ok());
    }

    #[test]
    fn async_poll_takes_only_wait_keep_alive_and_response_shaping() {
        assert_eq!(
            check(
                Some("wait_for_completion_timeout=100ms&keep_alive=60000ms&typed_keys=true"),
                ParamSet::AsyncGet
            )
            .unwrap(),
            pairs(&[
                ("wait_for_completion_timeout", "100ms"),
                ("keep_alive", "60000ms"),
                ("typed_keys", "true"),
            ])
        );
        for q in [
            "size=10",
            "keep_on_completion=true",
            "expand_wildcards=open",
            "q=x",
            "keep_alive=3650d",
            "wait_for_completion_timeout=5m",
        ] {
            assert!(check(Some(q), ParamSet::AsyncGet).is_err(), "{q}");
        }
    }

    #[test]
    fn time_values_convert_to_milliseconds() {
        let cases = [
            ("200ms", Some(200)),
            ("30s", Some(30_000)),
            ("1m", Some(60_000)),
            ("1500000nanos", Some(2)),
            ("1d", Some(86_400_000)),
            ("-1", None),
            ("1", None),
            ("ms", None),
            ("1y", None),
            ("9999999999999s", None),
        ];
        for (v, want) in cases {
            assert_eq!(time_millis(v), want, "{v}");
        }
    }
}
