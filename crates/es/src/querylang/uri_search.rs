//! URI search (`?q=` and its companions `df`, `default_operator`, `analyzer`,
//! `analyze_wildcard`, `lenient`) on `_search`, `_count` and `_validate/query`: translated into
//! a `query_string` query in the body, the way Elasticsearch's `RestActions.urlParamsToQueryBuilder`
//! builds it, so that the query is then checked and wrapped in the token's filters like any
//! other body query.
//!
//! Invariant: a URI-search parameter never reaches the backend as a parameter. `q` becomes the
//! body `query` (never beside one: `q` with a body `query` is a 400, where Elasticsearch would
//! silently let `q` win); a companion without `q` is a 400 (Elasticsearch refuses it too);
//! values are checked (booleans, `AND`/`OR`, bracket nesting of `q`) and never echoed in a reason.

use serde_json::{Map, Value};

use crate::request::params::Param;
use crate::Rejection;

/// The URI-search parameters, in the order Elasticsearch reads them.
pub const PARAMS: &[&str] = &[
    "q",
    "df",
    "analyzer",
    "analyze_wildcard",
    "lenient",
    "default_operator",
];

/// Deepest `(`/`[`/`{` nesting accepted in `q` (CVE-2023-31419: a deeply nested query string
/// overflowed the stack of Elasticsearch's query parser).
const MAX_NESTING: usize = 32;

/// Removes the URI-search parameters from `params` (the checked, decoded query-string pairs)
/// and returns the `query_string` query they describe, or `None` when there is no `q`.
pub fn take(params: &mut Vec<Param>) -> Result<Option<Value>, Rejection> {
    // None of them (nearly every request): the list left as it is, without `retain`'s pass
    // (perf29c).
    if !params.iter().any(|(k, _)| PARAMS.contains(&&**k)) {
        return Ok(None);
    }
    let mut found: Vec<Param> = Vec::new();
    params.retain(|(k, v)| {
        if PARAMS.contains(&&**k) {
            found.push((k.clone(), v.clone()));
            false
        } else {
            true
        }
    });
    let get = |name: &str| found.iter().find(|(k, _)| k == name).map(|(_, v)| &**v);
    let Some(q) = get("q") else {
        if let Some((name, _)) = found.first() {
            return Err(Rejection::bad_request(format!(
                "query parameter [{name}] is only allowed together with [q]"
            )));
        }
        return Ok(None);
    };
    if too_deep(q) {
        return Err(Rejection::bad_request(
            "query parameter [q] is nested too deeply",
        ));
    }
    let mut qs = Map::new();
    qs.insert("query".into(), Value::String(q.to_string()));
    if let Some(df) = get("df") {
        qs.insert("default_field".into(), Value::String(df.to_string()));
    }
    if let Some(analyzer) = get("analyzer") {
        qs.insert("analyzer".into(), Value::String(analyzer.to_string()));
    }
    if let Some(v) = get("analyze_wildcard") {
        qs.insert(
            "analyze_wildcard".into(),
            Value::Bool(boolean(v, "analyze_wildcard")?),
        );
    }
    if let Some(v) = get("lenient") {
        qs.insert("lenient".into(), Value::Bool(boolean(v, "lenient")?));
    }
    if let Some(op) = get("default_operator") {
        let op = match op.to_ascii_uppercase().as_str() {
            "AND" => "AND",
            "OR" => "OR",
            _ => {
                return Err(Rejection::bad_request(
                    "query parameter [default_operator] must be [AND] or [OR]",
                ))
            }
        };
        qs.insert("default_operator".into(), Value::String(op.into()));
    }
    let mut query = Map::new();
    query.insert("query_string".into(), Value::Object(qs));
    Ok(Some(Value::Object(query)))
}

/// Puts the URI query (from [`take`]) into the request body as its `query`. A body that
/// already has a `query` is refused: the two would silently override one another.
pub fn merge(body: Option<Value>, uri_query: Option<Value>) -> Result<Option<Value>, Rejection> {
    let Some(query) = uri_query else {
        return Ok(body);
    };
    let mut obj = match body {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Rejection::bad_request("request body must be a JSON object")),
    };
    if obj.contains_key("query") {
        return Err(Rejection::bad_request(
            "query parameter [q] cannot be used together with a body [query]",
        ));
    }
    obj.insert("query".into(), query);
    Ok(Some(Value::Object(obj)))
}

/// Whether a query string (from `?q=` or a body `query_string`) nests brackets deeper than
/// Elasticsearch's parser can be trusted with.
///
/// The nesting is at most the count of opening brackets, which is at most the length: a text
/// of either at most [`MAX_NESTING`] is not read bracket by bracket (issue 10: most query texts
/// are shorter than that, and the count is one vectorised pass).
/// `too_deep_is_nesting_beyond_the_limit` (tests).
pub(crate) fn too_deep(q: &str) -> bool {
    q.len() > MAX_NESTING && opening_brackets(q) > MAX_NESTING && nesting(q) > MAX_NESTING
}

fn opening_brackets(q: &str) -> usize {
    q.bytes()
        .filter(|b| matches!(b, b'(' | b'[' | b'{'))
        .count()
}

/// The deepest bracket nesting in a query string (escaped brackets count too: an upper bound).
/// Read from the bytes: the brackets are ASCII, and no byte of a multi-byte character is
/// (issue 10: decoding each character cost more than the count).
fn nesting(q: &str) -> usize {
    let mut depth: usize = 0;
    let mut max = 0;
    for c in q.bytes() {
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Elasticsearch's `paramAsBoolean`: empty means true.
fn boolean(v: &str, name: &str) -> Result<bool, Rejection> {
    match v {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Rejection::bad_request(format!(
            "query parameter [{name}] must be [true] or [false]"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RejectKind;

    use crate::testing::pairs;

    #[test]
    fn q_and_companions_become_a_query_string_query_and_leave_the_parameters() {
        let cases: &[(&[(&str, &str)], Value)] = &[
            (
                &[("q", "user:bob*")],
                json!({"query_string": {"query": "user:bob*"}}),
            ),
            (
                &[
                    ("q", "hello"),
                    ("df", "message"),
                    ("analyzer", "standard"),
                    ("analyze_wildcard", ""),
                    ("lenient", "false"),
                    ("default_operator", "and"),
                ],
                json!({"query_string": {"query": "hello", "default_field": "message",
                    "analyzer": "standard", "analyze_wildcard": true, "lenient": false,
                    "default_operator": "AND"}}),
            ),
            (
                &[("q", ""), ("default_operator", "Or")],
                json!({"query_string": {"query": "", "default_operator": "OR"}}),
            ),
        ];
        for (input, want) in cases {
            let mut params = pairs(input);
            params.push(("size".into(), "3".into()));
            let got = take(&mut params).unwrap().unwrap();
            assert_eq!(&got, want, "{input:?}");
            assert_eq!(params, pairs(&[("size", "3")]), "{input:?}");
        }
    }

    #[test]
    fn without_q_nothing_changes() {
        let mut params = pairs(&[("size", "1"), ("expand_wildcards", "open")]);
        assert_eq!(take(&mut params).unwrap(), None);
        assert_eq!(
            params,
            pairs(&[("size", "1"), ("expand_wildcards", "open")])
        );
    }

    #[test]
    fn a_companion_without_q_or_a_bad_value_is_a_bad_request() {
        let cases: &[&[(&str, &str)]] = &[
            &[("df", "user")],
            &[("default_operator", "AND")],
            &[("lenient", "true")],
            &[("analyze_wildcard", "true")],
            &[("analyzer", "x")],
            &[("q", "x"), ("default_operator", "XOR")],
            &[("q", "x"), ("lenient", "yes")],
            &[("q", "x"), ("analyze_wildcard", "1")],
            &[("q", &"(".repeat(MAX_NESTING + 1))],
        ];
        for input in cases {
            let err = take(&mut pairs(input)).unwrap_err();
            assert_eq!(err.kind, RejectKind::BadRequest, "{input:?}");
        }
    }

    /// The byte count is the character count it replaced (issue 10), next to multi-byte
    /// characters and escapes.
    #[test]
    fn nesting_of_bytes_is_nesting_of_characters() {
        let by_chars = |q: &str| {
            let (mut depth, mut max) = (0usize, 0);
            for c in q.chars() {
                match c {
                    '(' | '[' | '{' => {
                        depth += 1;
                        max = max.max(depth);
                    }
                    ')' | ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            max
        };
        let pieces = [
            "(", ")", "[", "]", "{", "}", "a", "é", "\\(", "\u{ff08}", "\u{3000}", "😀", "",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let q = format!("{a}{b}{c}{d}");
                        assert_eq!(nesting(&q), by_chars(&q), "{q:?}");
                    }
                }
            }
        }
    }

    /// The shortcuts of `too_deep` (length, count of opening brackets) decide as the nesting
    /// does, around the limit.
    #[test]
    fn too_deep_is_nesting_beyond_the_limit() {
        for opening in MAX_NESTING - 2..MAX_NESTING + 3 {
            for closing_between in [0, 1, 2, opening] {
                for pad in ["", "a", "é", "xxxxxxxx"] {
                    let between = ")(".repeat(closing_between);
                    for q in [
                        format!("{}{between}{pad}", "(".repeat(opening)),
                        format!("{pad}{}{between}", "[{".repeat(opening / 2)),
                        format!("{}{pad}", "(a)".repeat(opening)),
                    ] {
                        assert_eq!(too_deep(&q), nesting(&q) > MAX_NESTING, "{q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn nesting_counts_the_deepest_bracket_level() {
        for (q, want) in [
            ("a", 0),
            ("(a OR b) AND (c)", 1),
            ("((a)) [1 TO 2]", 2),
            (")))(((", 3),
        ] {
            assert_eq!(nesting(q), want, "{q}");
        }
        let deep = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(take(&mut pairs(&[("q", &deep)])).unwrap().is_some());
    }

    #[test]
    fn reasons_never_echo_values() {
        let err = take(&mut pairs(&[
            ("q", "x"),
            ("default_operator", "LEAKMARKER"),
        ]))
        .unwrap_err();
        assert!(!err.reason.contains("LEAKMARKER"));
    }

    #[test]
    fn merge_puts_the_query_in_the_body_and_refuses_two_queries() {
        let q = json!({"query_string": {"query": "a"}});
        assert_eq!(
            merge(None, Some(q.clone())).unwrap(),
            Some(json!({"query": q}))
        );
        assert_eq!(
            merge(Some(json!({"size": 1})), Some(q.clone())).unwrap(),
            Some(json!({"size": 1, "query": q}))
        );
        assert_eq!(
            merge(Some(json!({"size": 1})), None).unwrap(),
            Some(json!({"size": 1}))
        );
        let err = merge(Some(json!({"query": {"match_all": {}}})), Some(q.clone())).unwrap_err();
        assert_eq!(err.kind, RejectKind::BadRequest);
        assert_eq!(
            merge(Some(json!([1])), Some(q)).unwrap_err().kind,
            RejectKind::BadRequest
        );
    }
}
