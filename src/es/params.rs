//! Query-string parameters (security.md I-3, E1–E4): split the way Elasticsearch splits them,
//! then keep only what the route allows.
//!
//! Invariant: the query string is decoded with ES semantics (`&` and `;` separate, `#` ends it,
//! `+` is a space, percent-decoding) and anything ambiguous is rejected: duplicate names, invalid
//! percent-encoding, non-UTF-8. A parameter that is not on the route's list is a 403; values
//! are checked where a value changes semantics (`search_type`, `expand_wildcards`, ...). The
//! output is the exact parameter list forwarded, in canonical order, with
//! `expand_wildcards=open` added on every route that takes it.

use super::error::printable;
use super::Rejection;

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
}

const COMMON: &[(&str, Kind)] = &[("pretty", Kind::Bool), ("human", Kind::Bool)];

const INDICES_OPTIONS: &[(&str, Kind)] = &[
    // Only widens to frozen indices the expression already names (Grafana sends it).
    ("ignore_throttled", Kind::Bool),
    ("expand_wildcards", Kind::OneOf(&["open"])),
    ("ignore_unavailable", Kind::Bool),
    ("allow_no_indices", Kind::Bool),
];

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

const COUNT: &[(&str, Kind)] = &[
    ("min_score", Kind::Text),
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

// No `timeout`: a wait longer than esgate's backend timeout would turn into a 504.
const CLUSTER_HEALTH: &[(&str, Kind)] = &[
    ("wait_for_status", Kind::OneOf(&["green", "yellow", "red"])),
    ("level", Kind::OneOf(&["cluster"])),
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
            ParamSet::Esql => (ESQL, false),
            ParamSet::Sql => (SQL, false),
            ParamSet::Eql => (EQL, true),
        }
    }
}

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
        let kind = specific
            .iter()
            .chain(COMMON.iter())
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
        Kind::Time => {
            value == "-1"
                || (!value.is_empty()
                    && value.len() <= 16
                    && value.bytes().all(|b| b.is_ascii_alphanumeric())
                    && value.bytes().next().is_some_and(|b| b.is_ascii_digit()))
        }
        Kind::OneOf(allowed) => allowed.contains(&value),
    }
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
    use crate::es::RejectKind;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

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
        let denied = [
            "q=user:bob*",        // ENC-01
            "size=1;q=user:bob*", // ENC-04
            "df=user",
            "analyzer=x",
            "default_operator=AND",
            "lenient=true",
            "analyze_wildcard=true",
            "source=%7B%7D&source_content_type=application/json", // ENC-06
            "suggest_field=message&suggest_text=x",               // ENC-07
            "explain=true",
            "search_type=dfs_query_then_fetch",
            "scroll_id=abc",
            "expand_wildcards=all",
            "expand_wildcards=open,hidden", // IDX-13
            "error_trace=true",
            "filter_path=hits",
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
    fn cluster_health_takes_only_its_two_parameters() {
        assert_eq!(
            check(
                Some("wait_for_status=yellow&level=cluster"),
                ParamSet::ClusterHealth
            )
            .unwrap(),
            pairs(&[("wait_for_status", "yellow"), ("level", "cluster")])
        );
        // A wait could outlast esgate's backend timeout (a 504 from client input).
        assert!(check(Some("timeout=30s"), ParamSet::ClusterHealth).is_err());
        for q in [
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
    fn count_denies_uri_query_parameters() {
        for q in [
            "q=*:*",
            "df=x",
            "analyzer=x",
            "lenient=true",
            "default_operator=or",
        ] {
            assert_eq!(
                check(Some(q), ParamSet::Count).unwrap_err().kind,
                RejectKind::Forbidden,
                "{q}"
            );
        }
    }

    #[test]
    fn error_does_not_echo_the_value() {
        let err = check(Some("q=LEAKMARKER"), ParamSet::Search).unwrap_err();
        assert!(!err.reason.contains("LEAKMARKER"));
        assert!(err.reason.contains("[q]"));
    }
}
