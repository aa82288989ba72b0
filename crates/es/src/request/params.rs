//! Query-string parameters (security.md I-3, E1–E4): split the way Elasticsearch splits them,
//! then keep only what the route allows. Each route's list is declared by its module in
//! `routes` (a [`ParamSet`] in its `Spec`); the groups every route shares (response shaping,
//! index options, URI search) and the value rules ([`Kind`]) are here.
//!
//! Invariant: the query string is decoded with ES semantics (`&` and `;` separate, `#` ends it,
//! `+` is a space, percent-decoding) and anything ambiguous is rejected: duplicate names, invalid
//! percent-encoding, non-UTF-8. A parameter that is not on the route's list is a 403; values
//! are checked where a value changes semantics (`search_type`, `expand_wildcards`, ...). The
//! output is the exact parameter list forwarded, in canonical order, with
//! `expand_wildcards=open` added on every route that takes it.

use std::borrow::Cow;

use crate::error::printable;
use crate::Rejection;

/// A query parameter, decoded: its name and value. The ones esgate adds (the index options, a
/// route's default or forced one) borrow esgate's own text, a client's are owned (issue 10,
/// goal 6: the two a search adds were four allocations a request).
pub type Param = (Cow<'static, str>, Cow<'static, str>);

/// The query parameters a route takes, declared by its module in `routes` (its `Spec`): its
/// own list, and which of the shared groups below it takes. Every route takes the
/// response-shaping parameters (taken out by `shaping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSet {
    /// The route's own parameters, with the values each takes.
    own: &'static [(&'static str, Kind)],
    /// More of its own, looked up after `own` (an async search submit: the search list, then
    /// the async options).
    extra: &'static [(&'static str, Kind)],
    /// Parameters of `own` the route refuses, with the reason.
    refused: &'static [(&'static str, &'static str)],
    /// Whether it takes the index options (`expand_wildcards=open` is then always forwarded).
    indices_options: bool,
    /// Whether it takes URI search (`q` and its companions, see `uri_search`).
    uri_search: bool,
    /// A parameter forwarded when the client did not send it.
    default: Option<(&'static str, &'static str)>,
    /// A parameter always forwarded with this value, in place of the client's (which is still
    /// checked against the route's list).
    forced: Option<(&'static str, &'static str)>,
}

impl ParamSet {
    /// No parameters but response shaping.
    pub const NONE: ParamSet = ParamSet::own(&[]);

    /// `own` (and response shaping).
    pub const fn own(own: &'static [(&'static str, Kind)]) -> ParamSet {
        ParamSet {
            own,
            extra: &[],
            refused: &[],
            indices_options: false,
            uri_search: false,
            default: None,
            forced: None,
        }
    }

    /// With the index options.
    pub const fn indices_options(self) -> ParamSet {
        ParamSet {
            indices_options: true,
            ..self
        }
    }

    /// With URI search.
    pub const fn uri_search(self) -> ParamSet {
        ParamSet {
            uri_search: true,
            ..self
        }
    }

    /// With `extra`, looked up after the own list.
    pub const fn extra(self, extra: &'static [(&'static str, Kind)]) -> ParamSet {
        ParamSet { extra, ..self }
    }

    /// Refusing these parameters of the own list, with the reason.
    pub const fn refusing(self, refused: &'static [(&'static str, &'static str)]) -> ParamSet {
        ParamSet { refused, ..self }
    }

    /// Forwarding `name=value` when the client did not send `name`.
    pub const fn default(self, name: &'static str, value: &'static str) -> ParamSet {
        ParamSet {
            default: Some((name, value)),
            ..self
        }
    }

    /// Always forwarding `name=value`, whatever the client sent for `name` (a value the
    /// route's list refuses is still refused).
    pub const fn forcing(self, name: &'static str, value: &'static str) -> ParamSet {
        ParamSet {
            forced: Some((name, value)),
            ..self
        }
    }

    /// With the shard pre-filter off (docs/bypass-classes.md, "Shards skipped by the
    /// pre-filter"): Elasticsearch's and OpenSearch's can-match phase skips a shard when the
    /// query cannot match any document of it, any tenant's, decided from the shard's
    /// index-wide min/max values, and reports the count as `_shards.skipped`: a range query and
    /// that count tell whether other tenants' values fall in the range. The phase runs only
    /// when the request's `pre_filter_shard_size` is below the number of shards it targets
    /// (unset, it is 1 for a primary field sort or read-only indices, else 128), so the largest
    /// value turns it off for `_search`, `_msearch` (every search of it) and the routes esgate
    /// forwards as a `_search`. The client's own value is checked, then replaced.
    pub const fn without_pre_filter(self) -> ParamSet {
        self.forcing(PRE_FILTER_SHARD_SIZE, NO_PRE_FILTER)
    }
}

/// The parameter that sets the shard pre-filter's threshold.
pub const PRE_FILTER_SHARD_SIZE: &str = "pre_filter_shard_size";

/// The threshold that turns the pre-filter off: no request targets more shards (Java's
/// `Integer.MAX_VALUE`, the largest value both dialects parse).
pub const NO_PRE_FILTER: &str = "2147483647";

/// The values a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
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
    /// A comma list of the listed values, as Elasticsearch's `paramAsStringArray` reads it
    /// (each element trimmed, empty ones skipped).
    ListOf(&'static [&'static str]),
    /// A time value of at most this many milliseconds (no `-1`).
    TimeAtMost(u64),
    /// A search's `preference` ([`preference_ok`]).
    Preference,
    /// A non-negative integer ([`Kind::Uint`]), forwarded as at most this value.
    UintUpTo(u64),
}

/// The most shard requests per node one search runs at once, as forwarded: Elasticsearch's
/// default for `max_concurrent_shard_requests` (and Grafana's). attack25 (M, availability):
/// Elasticsearch honours any value the client sends, and a search over many shards of a node
/// with `max_concurrent_shard_requests=1000` queues them all at once in the node's search
/// thread pool (a queue of 1000 shared by every client): other clients' searches are rejected
/// (`es_rejected_execution_exception`) while a token's `max_concurrent` counts one request.
/// A larger value is forwarded as this one: the same answer, only slower to come.
pub const MAX_CONCURRENT_SHARD_REQUESTS: u64 = 5;

/// The most searches of one request run at once, as forwarded: `max_concurrent_searches` of
/// an `_msearch` and `max_concurrent_group_searches` of a `collapse` (its inner hits' one
/// search per hit). Elasticsearch's default is 10 per data node at most
/// (`TransportMultiSearchAction.defaultMaxConcurrentSearches`, "to preserve some search thread
/// pool capacity for other searches"), but a client's value is honoured whatever it is: an
/// `_msearch` of 2,000 lines with `max_concurrent_searches=2000` (or a collapse of 10,000 hits
/// with inner hits) sent them all at once, each to its shards (attack25, as above).
pub const MAX_CONCURRENT_SEARCHES: u64 = 10;

/// A search's `preference` (the parameter and an `_msearch` header's key): a session string,
/// `_local`, `_only_local` or `_shards:`, not one that names nodes. `_only_nodes:` and
/// `_prefer_nodes:` take node ids, names and attributes (`zone:eu-1`), and a search whose
/// spec matches no node fails, so they would let a `read` token probe the cluster's topology
/// (attack17b, L). Elasticsearch compares the types as written; a custom string holding them
/// is refused too (harmless: any other string does the same).
pub fn preference_ok(value: &str) -> bool {
    !value.contains("_only_nodes") && !value.contains("_prefer_nodes")
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

/// Splits a raw query string the way Elasticsearch's `RestUtils.decodeQueryString` does and
/// rejects duplicates and invalid encodings.
pub fn split(query: Option<&str>) -> Result<Vec<Param>, Rejection> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    let q = match q.find('#') {
        Some(i) => &q[..i],
        None => q,
    };
    let mut out: Vec<Param> = Vec::new();
    for (name, value) in raw_pairs(q) {
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
        out.push((Cow::Owned(name), Cow::Owned(value)));
    }
    Ok(out)
}

/// A query string's parameters as Elasticsearch splits them (`RestUtils.decodeQueryString`):
/// at `&` and at `;`, each at its first `=` (none: an empty value); empty pieces are skipped.
/// Not decoded: the strict parameter check and the store guard's lenient reading decode
/// them each their own way, but split them alike (attack17b: the guard split at `&` alone).
pub(crate) fn raw_pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split(['&', ';'])
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// Splits the query string and keeps only the parameters `set` allows; returns the list to
/// forward (`expand_wildcards=open` forced where the route takes indices options).
pub fn check(query: Option<&str>, set: ParamSet) -> Result<Vec<Param>, Rejection> {
    let pairs = split(query)?;
    // Room for the three added below (`expand_wildcards`, a default, a forced one): no
    // regrowth for a request without parameters (issue 10, goal 6).
    let mut out = Vec::with_capacity(pairs.len() + 3);
    for (name, value) in pairs {
        if let Some((_, why)) = set.refused.iter().find(|(n, _)| *n == name) {
            return Err(Rejection::forbidden(format!(
                "query parameter [{name}] is not allowed for this request: {why}"
            )));
        }
        let kind = set
            .own
            .iter()
            .chain(set.extra.iter())
            .chain(COMMON.iter())
            .chain(if set.uri_search { URI_SEARCH } else { &[] }.iter())
            .chain(
                if set.indices_options {
                    INDICES_OPTIONS
                } else {
                    &[]
                }
                .iter(),
            )
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
        if let Kind::UintUpTo(max) = kind {
            // `value_ok`: at most 10 digits, so it parses.
            if value.parse::<u64>().map_or(true, |n| n > max) {
                out.push((name, Cow::Owned(max.to_string())));
                continue;
            }
        }
        if set.forced.is_some_and(|(forced, _)| forced == name) {
            continue; // replaced below
        }
        out.push((name, value));
    }
    if set.indices_options {
        out.push((Cow::Borrowed("expand_wildcards"), Cow::Borrowed("open")));
    }
    if let Some((name, value)) = set.default {
        if !out.iter().any(|(k, _)| k == name) {
            out.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
    }
    if let Some((name, value)) = set.forced {
        out.push((Cow::Borrowed(name), Cow::Borrowed(value)));
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
        Kind::ListOf(allowed) => value
            .split(',')
            .map(str::trim)
            .all(|v| v.is_empty() || allowed.contains(&v)),
        Kind::TimeAtMost(max_ms) => time_millis(value).is_some_and(|ms| ms <= u128::from(max_ms)),
        Kind::Preference => value_ok(Kind::Text, value) && preference_ok(value),
        Kind::UintUpTo(_) => value_ok(Kind::Uint, value),
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
    // Nothing to decode (an index name, nearly every parameter): the text as it is, copied
    // whole, not byte by byte (perf29c). Such a text is already UTF-8 and has no escape to
    // refuse, so the answer is the loop's.
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_as_space && b == b'+'))
    {
        return Ok(s.to_owned());
    }
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
    use crate::{routes, RejectKind};

    use crate::testing::pairs;

    /// attack17b (L): a preference naming nodes is refused, every other one kept.
    #[test]
    fn a_preference_may_not_name_nodes() {
        for ok in [
            "_local",
            "_only_local",
            "_shards:0,1",
            "_shards:2|_local",
            "sess-42",
            "",
        ] {
            assert!(preference_ok(ok), "{ok}");
        }
        for bad in [
            "_only_nodes:node-1",
            "_prefer_nodes:zone:eu-1",
            "_shards:0|_only_nodes:*",
        ] {
            assert!(!preference_ok(bad), "{bad:?}");
            assert!(!value_ok(Kind::Preference, bad), "{bad:?}");
        }
        // A parameter's control characters are refused as any text's.
        assert!(!value_ok(Kind::Preference, "_local\u{1}"));
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
            let err = check(Some(q), routes::search::SEARCH.params).unwrap_err();
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
            routes::search::SEARCH.params,
        )
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("size", "10"),
                ("from", "5"),
                ("track_total_hits", "true"),
                ("search_type", "query_then_fetch"),
                ("expand_wildcards", "open"),
                ("pre_filter_shard_size", "2147483647"),
            ])
        );
        assert_eq!(
            check(None, routes::search::COUNT.params).unwrap(),
            pairs(&[("expand_wildcards", "open")])
        );
    }

    /// The shard pre-filter's skipped count is an oracle on other tenants' min/max values
    /// (review 14): every route forwarded as a `_search` or `_msearch` turns it off, whatever
    /// the client asked, and still refuses a value the list refuses.
    #[test]
    fn searches_turn_the_shard_pre_filter_off() {
        let off: Param = (
            "pre_filter_shard_size".to_string().into(),
            NO_PRE_FILTER.to_string().into(),
        );
        for (name, set) in [
            ("search", routes::search::SEARCH.params),
            ("msearch", routes::msearch::MSEARCH.params),
            ("knn_search", routes::knn_search::KNN_SEARCH.params),
            ("terms_enum", routes::terms_enum::TERMS_ENUM.params),
        ] {
            let got = check(None, set).unwrap();
            assert_eq!(
                got.iter().filter(|p| **p == off).count(),
                1,
                "{name}: {got:?}"
            );
            if name == "search" || name == "msearch" {
                for q in [
                    "pre_filter_shard_size=1",
                    "pre_filter_shard_size=2147483648",
                ] {
                    let got = check(Some(q), set).unwrap();
                    let sent: Vec<_> = got
                        .iter()
                        .filter(|(k, _)| k == PRE_FILTER_SHARD_SIZE)
                        .collect();
                    assert_eq!(sent, [&off], "{name} {q}");
                }
                for q in ["pre_filter_shard_size=-1", "pre_filter_shard_size=x"] {
                    assert_eq!(check(Some(q), set).unwrap_err().kind, RejectKind::Forbidden);
                }
            }
        }
        // `_count` takes no such parameter (and its answer always says `skipped: 0`); an async
        // search fixes it at 1 (its answers' skipped counts are zeroed instead).
        assert!(!check(None, routes::search::COUNT.params)
            .unwrap()
            .iter()
            .any(|(k, _)| k == PRE_FILTER_SHARD_SIZE));
        assert!(!check(None, routes::async_search::SUBMIT.params)
            .unwrap()
            .iter()
            .any(|(k, _)| k == PRE_FILTER_SHARD_SIZE));
    }

    /// attack25 (M, availability): how many searches and shard requests one request runs at
    /// once is forwarded as at most Elasticsearch's own defaults, whatever the client asks; a
    /// smaller value is kept, anything not a number refused as before.
    #[test]
    fn concurrency_parameters_are_forwarded_as_at_most_the_backends_defaults() {
        for (route, set, name, max) in [
            (
                "search",
                routes::search::SEARCH.params,
                "max_concurrent_shard_requests",
                "5",
            ),
            (
                "async submit",
                routes::async_search::SUBMIT.params,
                "max_concurrent_shard_requests",
                "5",
            ),
            (
                "msearch",
                routes::msearch::MSEARCH.params,
                "max_concurrent_shard_requests",
                "5",
            ),
            (
                "msearch",
                routes::msearch::MSEARCH.params,
                "max_concurrent_searches",
                "10",
            ),
        ] {
            for (asked, sent) in [
                ("1", "1"),
                ("3", "3"),
                (max, max),
                ("11", max),
                ("256", max),
                ("2147483647", max),
                ("9999999999", max),
            ] {
                let got = check(Some(&format!("{name}={asked}")), set).unwrap();
                let forwarded: Vec<_> = got
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| &**v)
                    .collect();
                assert_eq!(forwarded, [sent], "{route} {name}={asked}");
            }
            for bad in ["-1", "x", "", "1.5", "99999999999"] {
                let err = check(Some(&format!("{name}={bad}")), set).unwrap_err();
                assert_eq!(err.kind, RejectKind::Forbidden, "{route} {name}={bad}");
            }
            // Elasticsearch's other spellings of the query string: a `;` separator, an
            // encoded name or value, the name twice.
            let encoded = name.replace('_', "%5F");
            for q in [
                format!("size=1;{name}=1000"),
                format!("{encoded}=1000"),
                format!("{name}=%31000"),
            ] {
                match check(Some(&q), set) {
                    Ok(got) => assert!(
                        got.iter()
                            .filter(|(k, _)| k == name)
                            .all(|(_, v)| v.parse::<u64>().unwrap() <= max.parse().unwrap()),
                        "{route} {q}: {got:?}"
                    ),
                    Err(e) => assert_eq!(e.kind, RejectKind::Forbidden, "{route} {q}"),
                }
            }
            let twice = format!("{name}=1&{name}=1000");
            assert!(check(Some(&twice), set).is_err(), "{route} {twice}");
        }
    }

    #[test]
    fn cluster_health_takes_only_its_three_parameters() {
        assert_eq!(
            check(
                Some("wait_for_status=yellow&level=cluster"),
                routes::cluster_health::CLUSTER_HEALTH.params
            )
            .unwrap(),
            pairs(&[("wait_for_status", "yellow"), ("level", "cluster")])
        );
        // Accepted but never forwarded: `cluster_health` forwards `timeout=0s` (never a wait).
        assert!(check(
            Some("timeout=30s"),
            routes::cluster_health::CLUSTER_HEALTH.params
        )
        .is_ok());
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
            assert!(
                check(Some(q), routes::cluster_health::CLUSTER_HEALTH.params).is_err(),
                "{q}"
            );
        }
    }

    #[test]
    fn uri_search_parameters_pass_only_where_they_are_translated() {
        let q = "q=*:*&df=x&analyzer=x&lenient=true&default_operator=or&analyze_wildcard=true";
        for spec in [
            &routes::search::SEARCH,
            &routes::search::COUNT,
            &routes::validate_query::VALIDATE_QUERY,
        ] {
            let set = spec.params;
            let mut got = check(Some(q), set).unwrap();
            // `_search` also turns the shard pre-filter off.
            got.retain(|(k, _)| k != PRE_FILTER_SHARD_SIZE);
            assert_eq!(got.len(), 7, "{}: {got:?}", spec.action);
        }
        for spec in [
            &routes::metadata::MAPPING,
            &routes::field_caps::FIELD_CAPS,
            &routes::msearch::MSEARCH,
            &routes::knn_search::KNN_SEARCH,
            &routes::scroll_pit::OPEN_PIT,
        ] {
            let set = spec.params;
            assert_eq!(
                check(Some("q=x"), set).unwrap_err().kind,
                RejectKind::Forbidden,
                "{}",
                spec.action
            );
        }
    }

    #[test]
    fn score_thresholds_and_expansion_options_are_never_parameters() {
        // Issue 17: `min_score` turns index-wide scores into counts; the URI search companions
        // that would configure fuzzy or multi-term expansion are not accepted either.
        for spec in [
            &routes::search::SEARCH,
            &routes::search::COUNT,
            &routes::validate_query::VALIDATE_QUERY,
            &routes::async_search::SUBMIT,
            &routes::msearch::MSEARCH,
        ] {
            let set = spec.params;
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
                    "{} {q}",
                    spec.action
                );
            }
        }
    }

    #[test]
    fn validate_query_refuses_rewrite_and_all_shards() {
        assert_eq!(
            check(
                Some("explain=false&rewrite=false&all_shards=false"),
                routes::validate_query::VALIDATE_QUERY.params
            )
            .unwrap(),
            pairs(&[
                ("explain", "false"),
                ("rewrite", "false"),
                ("all_shards", "false"),
                ("expand_wildcards", "open")
            ])
        );
        for q in [
            "rewrite=true",
            "rewrite",
            "all_shards=true",
            "all_shards",
            "explain=true",
            "explain",
        ] {
            let err = check(Some(q), routes::validate_query::VALIDATE_QUERY.params).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{q}");
        }
    }

    #[test]
    fn error_does_not_echo_the_value() {
        let err = check(Some("q=LEAKMARKER"), routes::metadata::MAPPING.params).unwrap_err();
        assert!(!err.reason.contains("LEAKMARKER"));
        assert!(err.reason.contains("[q]"));
    }

    /// attack22: `_search` refuses `batched_reduce_size` (its partial reduces count the shards
    /// other tenants' values did not cut short); an async search submit still takes it.
    #[test]
    fn search_refuses_batched_reduce_size() {
        for q in ["batched_reduce_size=2", "size=1&batched_reduce_size=512"] {
            let err = check(Some(q), routes::search::SEARCH.params).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{q}");
            assert!(err.reason.contains("[batched_reduce_size]"), "{q}");
        }
        assert!(check(
            Some("batched_reduce_size=2"),
            routes::async_search::SUBMIT.params
        )
        .is_ok());
    }

    #[test]
    fn async_submit_takes_kibanas_parameters_and_refuses_scroll() {
        let kibana = "batched_reduce_size=64&ccs_minimize_roundtrips=true&wait_for_completion_timeout=200ms&keep_on_completion=false&keep_alive=60000ms&ignore_unavailable=true";
        assert_eq!(
            check(Some(kibana), routes::async_search::SUBMIT.params).unwrap(),
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
                check(Some(q), routes::async_search::SUBMIT.params)
                    .unwrap_err()
                    .kind,
                RejectKind::Forbidden,
                "{q}"
            );
        }
        // Kibana's search sessions keep results for 7 days.
        assert!(check(
            Some("keep_alive=604800000ms"),
            routes::async_search::SUBMIT.params
        )
        .is_ok());
        // The async options do not leak into plain search.
        assert!(check(
            Some("keep_on_completion=true"),
            routes::search::SEARCH.params
        )
        .is_err());
        assert!(check(Some("scroll=1m"), routes::search::SEARCH.params).is_ok());
    }

    #[test]
    fn async_poll_takes_only_wait_keep_alive_and_response_shaping() {
        assert_eq!(
            check(
                Some("wait_for_completion_timeout=100ms&keep_alive=60000ms&typed_keys=true"),
                routes::async_search::GET.params
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
            assert!(
                check(Some(q), routes::async_search::GET.params).is_err(),
                "{q}"
            );
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

    /// perf29c: a text with nothing to decode (no `%`, and no `+` where `+` is a space) comes
    /// back whole from the fast path, as the byte loop copied it; one with something to decode
    /// is decoded, or refused, as before.
    #[test]
    fn texts_with_nothing_to_decode_come_back_as_the_loop_made_them() {
        /// The byte loop alone, as `percent_decode` was before its fast path.
        fn looped(s: &str, plus_as_space: bool) -> Option<String> {
            let bytes = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'+' if plus_as_space => {
                        out.push(b' ');
                        i += 1;
                    }
                    b'%' => {
                        let hi = bytes.get(i + 1).and_then(|b| hex(*b))?;
                        let lo = bytes.get(i + 2).and_then(|b| hex(*b))?;
                        out.push(hi * 16 + lo);
                        i += 3;
                    }
                    b => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8(out).ok()
        }
        for text in [
            "",
            "logs-a",
            "a+b",
            "+",
            "é+ü",
            "a b",
            "%41",
            "a%2Cb+c",
            "%",
            "%4",
            "%zz",
            "%C3%A9",
            "%C3",
            "expand_wildcards",
        ] {
            for plus_as_space in [false, true] {
                assert_eq!(
                    percent_decode(text, plus_as_space, "t").ok(),
                    looped(text, plus_as_space),
                    "{text:?} {plus_as_space}"
                );
            }
        }
    }
}
