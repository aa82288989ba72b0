//! The client's ES|QL `filter` turned into a `WHERE` condition (session 15, skip14).
//!
//! Elasticsearch's ES|QL sends the request's `filter` to field_caps as its `index_filter`
//! when it resolves the query's columns (`EsqlSession` → `IndexResolver`, since 8.18/9.0):
//! every shard rewrites it in the can-match way, a `range` on a numeric or date field becoming
//! `match_none` when the shard's min/max over all its documents, every tenant's, lies outside,
//! and an index none of whose shards can match drops out of the resolution. Its columns vanish
//! or an "Unknown column" appears exactly when only other tenants' values fall in the range.
//! So the forwarded `filter` holds the token's filters only (a `term`/`terms` rewrite reads
//! the mapping, never the data) and the client's `filter` becomes an ES|QL condition that
//! esgate inserts as `| WHERE <condition>` right after the source command: it narrows the
//! rows, never the column resolution.
//!
//! Invariant: deny by default. Only what Kibana sends is translated: `bool` (`must`, `filter`,
//! `must_not`, `should` with `minimum_should_match` 1 or absent), `range` (`gt`, `gte`, `lt`,
//! `lte`; a number, a string, a date, `now` or `now±N<unit>` as `TO_DATETIME(...)`), `term`,
//! `terms` and `match_phrase` (as `==` / `IN`), `exists` (`IS NOT NULL`), `match_all`,
//! `match_none`; anything else is a 400 naming the clause. Field names are written
//! backquoted (a backquote doubled), values as ES|QL string literals with `\\ \" \n \r \t`
//! escaped (other control characters refused), numbers and booleans as literals; the result
//! is re-lexed with esgate's ES|QL lexer before use ([`super::check_condition`]): it holds no
//! `|`, no comment and no bracket deeper than the lexer's cap.
//!
//! Semantics: the condition is ES|QL's, not the query DSL's. `==` compares whole values (a
//! phrase inside a longer text does not match), a multi-valued or missing field compares as
//! null (the row is not kept), and a `must_not` keeps a row whose condition is null (as the
//! DSL keeps a document without the field; a multi-valued one the DSL would drop is kept too).
//! The condition can only narrow the rows the token's own filters (in `filter`) allow.

use serde_json::{Map, Value};

use crate::error::printable;
use crate::Rejection;

/// A translated clause: a constant or an ES|QL boolean expression that can stand as an
/// operand of `AND`/`OR`/`NOT` (a comparison, or a parenthesised combination).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cond {
    Const(bool),
    Expr(String),
}

/// Deepest `bool` nesting translated (each level adds up to three brackets, the lexer's cap
/// being `lexing::MAX_DEPTH`).
const MAX_BOOL_DEPTH: usize = 8;

/// The condition for a client's `filter`: `None` when it matches everything (no `WHERE`).
pub(crate) fn condition(filter: &Value) -> Result<Option<String>, Rejection> {
    match translate(filter, 0)? {
        Cond::Const(true) => Ok(None),
        Cond::Const(false) => Ok(Some("false".to_string())),
        Cond::Expr(e) => Ok(Some(e)),
    }
}

fn refuse(what: &str) -> Rejection {
    Rejection::bad_request(format!(
        "ES|QL [filter]: {what}; esgate turns [filter] into a WHERE condition and translates only bool, range, term, terms, match_phrase, exists, match_all and match_none"
    ))
}

fn translate(q: &Value, depth: usize) -> Result<Cond, Rejection> {
    let Some((kind, body)) = q.as_object().and_then(single_entry) else {
        return Err(refuse("a query must be an object with one key"));
    };
    match kind {
        "bool" => boolean(body, depth + 1),
        "match_all" => {
            options_only(body, "match_all")?;
            Ok(Cond::Const(true))
        }
        "match_none" => {
            options_only(body, "match_none")?;
            Ok(Cond::Const(false))
        }
        "term" => {
            let (field, v) = field_value(body, "term", "value", &["case_insensitive"])?;
            Ok(Cond::Expr(format!("{} == {}", field, literal(v)?)))
        }
        "match_phrase" => {
            let (field, v) = field_value(body, "match_phrase", "query", &[])?;
            Ok(Cond::Expr(format!("{} == {}", field, literal(v)?)))
        }
        "terms" => terms(body),
        "exists" => exists(body),
        "range" => range(body),
        other => Err(refuse(&format!(
            "[{}] cannot be translated",
            printable(other)
        ))),
    }
}

fn single_entry(m: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut it = m.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Some((k.as_str(), v)),
        _ => None,
    }
}

/// Keys every query takes that do not change which documents match.
fn neutral(key: &str) -> bool {
    key == "boost" || key == "_name"
}

/// `match_all`/`match_none`: an object with neutral options only.
fn options_only(body: &Value, kind: &str) -> Result<(), Rejection> {
    match body.as_object() {
        Some(m) if m.keys().all(|k| neutral(k)) => Ok(()),
        _ => Err(refuse(&format!("[{kind}] takes no options here"))),
    }
}

fn boolean(body: &Value, depth: usize) -> Result<Cond, Rejection> {
    if depth > MAX_BOOL_DEPTH {
        return Err(refuse("[bool] is nested too deeply"));
    }
    let Some(m) = body.as_object() else {
        return Err(refuse("[bool] must be an object"));
    };
    let mut required = Vec::new();
    let mut negated = Vec::new();
    let mut optional = Vec::new();
    let mut msm: Option<&Value> = None;
    for (k, v) in m {
        match k.as_str() {
            "must" | "filter" => required.extend(clauses(v, depth)?),
            "must_not" => negated.extend(clauses(v, depth)?),
            "should" => optional.extend(clauses(v, depth)?),
            "minimum_should_match" => msm = Some(v),
            "adjust_pure_negative" if v == &Value::Bool(true) => {}
            k if neutral(k) => {}
            other => {
                return Err(refuse(&format!(
                    "[bool] option [{}] cannot be translated",
                    printable(other)
                )))
            }
        }
    }
    // Elasticsearch: without `must`/`filter`, one `should` clause must match; with them, none
    // needs to (the clauses only score). Only 1 (or the default) is translated; a count with
    // no `should` clause to apply to is capped to nothing.
    let should_required = match msm {
        None => required.is_empty(),
        Some(v) if v == &Value::from(1) || v == &Value::from("1") => true,
        Some(_) => {
            return Err(refuse(
                "[bool] [minimum_should_match] other than 1 cannot be translated",
            ))
        }
    };
    let mut parts = required;
    for n in negated {
        parts.push(not(n));
    }
    if should_required && !optional.is_empty() {
        parts.push(any(optional));
    }
    Ok(all(parts))
}

fn clauses(v: &Value, depth: usize) -> Result<Vec<Cond>, Rejection> {
    match v {
        Value::Array(items) => items.iter().map(|q| translate(q, depth)).collect(),
        Value::Object(_) => Ok(vec![translate(v, depth)?]),
        _ => Err(refuse("[bool] clauses must be queries")),
    }
}

fn all(parts: Vec<Cond>) -> Cond {
    combine(parts, true)
}

fn any(parts: Vec<Cond>) -> Cond {
    combine(parts, false)
}

/// `AND` (`conj`) or `OR` of the parts, constants folded.
fn combine(parts: Vec<Cond>, conj: bool) -> Cond {
    let mut exprs = Vec::new();
    for p in parts {
        match p {
            // true AND x = x; false OR x = x.
            Cond::Const(b) if b == conj => {}
            // false AND x = false; true OR x = true.
            Cond::Const(b) => return Cond::Const(b),
            Cond::Expr(e) => exprs.push(e),
        }
    }
    match exprs.len() {
        0 => Cond::Const(conj),
        1 => Cond::Expr(exprs.pop().unwrap_or_default()),
        _ => {
            // Every expression is an operand already: a comparison, or parenthesised.
            let sep = if conj { " AND " } else { " OR " };
            Cond::Expr(format!("({})", exprs.join(sep)))
        }
    }
}

/// `must_not`: the row is dropped only where the condition is true; where it is null (a
/// missing or multi-valued field) the row stays, as a document without the field does.
fn not(c: Cond) -> Cond {
    match c {
        Cond::Const(b) => Cond::Const(!b),
        Cond::Expr(e) => Cond::Expr(format!("(NOT COALESCE({e}, false))")),
    }
}

/// A field name as a quoted identifier: `` `name` ``, a backquote doubled. Metadata fields
/// (they need `METADATA`), patterns and control characters are refused.
fn field(name: &str) -> Result<String, Rejection> {
    if name.is_empty() || name.starts_with('_') || name.contains('*') {
        return Err(refuse(&format!(
            "field [{}] cannot be translated (no metadata fields or patterns)",
            printable(name)
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(refuse("a field name holds a control character"));
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// A JSON scalar as an ES|QL literal.
fn literal(v: &Value) -> Result<String, Rejection> {
    match v {
        Value::String(s) => string(s),
        Value::Number(n) => Ok(number(n)),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(refuse("a value must be a string, a number or a boolean")),
    }
}

fn number(n: &serde_json::Number) -> String {
    // serde_json writes integers as digits and floats with a `.` or an exponent (`1e300`),
    // all of which ES|QL reads as numeric literals.
    n.to_string()
}

/// An ES|QL string literal: `"..."` with `\` `"` and line breaks escaped.
fn string(s: &str) -> Result<String, Rejection> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                return Err(refuse("a value holds a control character"));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// `{"f": v}` or `{"f": {"<value_key>": v, ...}}`: the quoted field and the value. `extra`
/// options are allowed when `false` (e.g. `case_insensitive`).
fn field_value<'a>(
    body: &'a Value,
    kind: &str,
    value_key: &str,
    extra: &[&str],
) -> Result<(String, &'a Value), Rejection> {
    let Some((name, v)) = body.as_object().and_then(single_entry) else {
        return Err(refuse(&format!("[{kind}] must name one field")));
    };
    let f = field(name)?;
    let value = match v {
        Value::Object(o) => {
            for (k, x) in o {
                let ok = k == value_key
                    || neutral(k)
                    || (extra.contains(&k.as_str()) && x == &Value::Bool(false));
                if !ok {
                    return Err(refuse(&format!(
                        "[{kind}] option [{}] cannot be translated",
                        printable(k)
                    )));
                }
            }
            o.get(value_key)
                .ok_or_else(|| refuse(&format!("[{kind}] needs [{value_key}]")))?
        }
        other => other,
    };
    Ok((f, value))
}

fn terms(body: &Value) -> Result<Cond, Rejection> {
    let Some(m) = body.as_object() else {
        return Err(refuse("[terms] must be an object"));
    };
    let mut target = None;
    for (k, v) in m {
        if neutral(k) {
            continue;
        }
        if target.is_some() {
            return Err(refuse("[terms] must name one field"));
        }
        target = Some((k, v));
    }
    let Some((name, v)) = target else {
        return Err(refuse("[terms] must name one field"));
    };
    let f = field(name)?;
    let Value::Array(values) = v else {
        return Err(refuse("[terms] takes a list of values (no lookup)"));
    };
    let lits = values.iter().map(literal).collect::<Result<Vec<_>, _>>()?;
    Ok(match lits.len() {
        0 => Cond::Const(false),
        1 => Cond::Expr(format!("{f} == {}", lits[0])),
        _ => Cond::Expr(format!("{f} IN ({})", lits.join(", "))),
    })
}

fn exists(body: &Value) -> Result<Cond, Rejection> {
    let Some(m) = body.as_object() else {
        return Err(refuse("[exists] must be an object"));
    };
    let mut name = None;
    for (k, v) in m {
        match (k.as_str(), v) {
            ("field", Value::String(s)) => name = Some(s),
            (k, _) if neutral(k) => {}
            _ => return Err(refuse("[exists] takes a [field] name")),
        }
    }
    let name = name.ok_or_else(|| refuse("[exists] takes a [field] name"))?;
    Ok(Cond::Expr(format!("{} IS NOT NULL", field(name)?)))
}

/// Date formats whose string values `TO_DATETIME` reads the same way (ISO 8601), and
/// `epoch_millis` (a number of milliseconds).
const DATE_FORMATS: &[&str] = &[
    "strict_date_optional_time",
    "date_optional_time",
    "strict_date_optional_time_nanos",
    "strict_date_time",
    "date_time",
    "epoch_millis",
];

fn range(body: &Value) -> Result<Cond, Rejection> {
    let Some((name, spec)) = body.as_object().and_then(single_entry) else {
        return Err(refuse("[range] must name one field"));
    };
    let f = field(name)?;
    let Some(spec) = spec.as_object() else {
        return Err(refuse("[range] takes an object of bounds"));
    };
    let mut format: Option<Vec<&str>> = None;
    if let Some(v) = spec.get("format") {
        let Some(s) = v.as_str() else {
            return Err(refuse("[range] [format] must be a string"));
        };
        let parts: Vec<&str> = s.split("||").collect();
        if !parts.iter().all(|p| DATE_FORMATS.contains(p)) {
            return Err(refuse(&format!(
                "[range] [format] [{}] cannot be translated (ISO dates and epoch_millis only)",
                printable(s)
            )));
        }
        format = Some(parts);
    }
    let mut bounds = Vec::new();
    for (k, v) in spec {
        let op = match k.as_str() {
            "gt" => ">",
            "gte" => ">=",
            "lt" => "<",
            "lte" => "<=",
            "format" => continue,
            k if neutral(k) => continue,
            other => {
                return Err(refuse(&format!(
                    "[range] option [{}] cannot be translated",
                    printable(other)
                )))
            }
        };
        if v.is_null() {
            // An open bound, as in the query DSL.
            continue;
        }
        bounds.push(format!("{f} {op} {}", bound(v, format.as_deref())?));
    }
    if bounds.is_empty() {
        // A range without bounds matches the documents that have the field.
        return Ok(Cond::Expr(format!("{f} IS NOT NULL")));
    }
    Ok(all(bounds.into_iter().map(Cond::Expr).collect()))
}

/// One bound of a range: a date (`TO_DATETIME(...)`), a number or a string.
fn bound(v: &Value, format: Option<&[&str]>) -> Result<String, Rejection> {
    let epoch = format.is_some_and(|f| f.contains(&"epoch_millis"));
    match v {
        Value::Number(n) if format.is_none() => Ok(number(n)),
        Value::Number(n) if epoch && n.is_i64() => Ok(format!("TO_DATETIME({})", number(n))),
        Value::Number(_) => Err(refuse(
            "a [range] number with a date [format] must be epoch_millis",
        )),
        Value::String(s) => {
            if let Some(e) = now_relative(s)? {
                return Ok(e);
            }
            if is_iso_date(s) {
                return Ok(format!("TO_DATETIME({})", string(s)?));
            }
            if epoch && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 18 {
                return Ok(format!("TO_DATETIME({s})"));
            }
            if format.is_some() {
                return Err(refuse(&format!(
                    "[range] bound [{}] is not an ISO date",
                    printable(s)
                )));
            }
            string(s)
        }
        _ => Err(refuse("a [range] bound must be a string or a number")),
    }
}

/// `YYYY-MM-DD` at the start (what `TO_DATETIME` reads as a date).
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// `now` and `now±N<unit>` as `NOW()` arithmetic; other date math (rounding, anchors,
/// several steps) is refused; a string that is not date math is `None`. A date bound is a
/// `TO_DATETIME(...)` call, never a bare `NOW()` expression: an Elasticsearch change of 2026
/// (elastic/elasticsearch#154663, `TimestampIndexFilterExtractor`; in which release, if any,
/// unconfirmed) lifts `WHERE @timestamp` comparisons with a literal or `NOW() ± N` bound into
/// field_caps' `index_filter`, the channel this module closes. Numbers and other strings stay
/// bare literals: what keeps every comparison from being lifted is the `NOT NOT (...)` around
/// each `WHERE` condition (`super::WHERE_OPEN`, esql16).
fn now_relative(s: &str) -> Result<Option<String>, Rejection> {
    if !s.starts_with("now") && !s.contains("||") {
        return Ok(None);
    }
    let bad = || {
        refuse(&format!(
            "date math [{}] cannot be translated (only now and now±N with one unit)",
            printable(s)
        ))
    };
    let Some(rest) = s.strip_prefix("now") else {
        return Err(bad());
    };
    if rest.is_empty() {
        return Ok(Some("TO_DATETIME(NOW())".to_string()));
    }
    let (sign, rest) = match rest.as_bytes()[0] {
        b'+' => ("+", &rest[1..]),
        b'-' => ("-", &rest[1..]),
        _ => return Err(bad()),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = rest.split_at(digits);
    if n.is_empty() || n.len() > 9 {
        return Err(bad());
    }
    let unit = match unit {
        "y" => "years",
        "M" => "months",
        "w" => "weeks",
        "d" => "days",
        "h" | "H" => "hours",
        "m" => "minutes",
        "s" => "seconds",
        _ => return Err(bad()),
    };
    Ok(Some(format!("TO_DATETIME(NOW() {sign} {n} {unit})")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cond(v: Value) -> Option<String> {
        condition(&v).unwrap_or_else(|e| panic!("{v}: {e:?}"))
    }

    #[test]
    fn kibana_time_range_and_pills_translate() {
        // What Kibana's ES|QL sends: the time picker and filter pills, empty lists included.
        let kibana = json!({"bool": {"must": [], "filter": [
            {"range": {"@timestamp": {"format": "strict_date_optional_time",
                "gte": "2025-06-16T21:37:04.079Z", "lte": "2025-06-16T21:52:04.079Z"}}},
            {"match_phrase": {"host.name": "web-1"}},
            {"bool": {"should": [{"match_phrase": {"status": 404}}, {"match_phrase": {"status": 500}}],
                      "minimum_should_match": 1}},
            {"exists": {"field": "user"}}
        ], "should": [], "must_not": [{"match_phrase": {"level": "debug"}}]}});
        assert_eq!(
            cond(kibana).unwrap(),
            "((`@timestamp` >= TO_DATETIME(\"2025-06-16T21:37:04.079Z\") AND `@timestamp` <= TO_DATETIME(\"2025-06-16T21:52:04.079Z\")) AND `host.name` == \"web-1\" AND (`status` == 404 OR `status` == 500) AND `user` IS NOT NULL AND (NOT COALESCE(`level` == \"debug\", false)))"
        );
    }

    #[test]
    fn the_translation_table() {
        let cases: Vec<(Value, Option<&str>)> = vec![
            (json!({"match_all": {}}), None),
            (json!({"match_all": {"boost": 2}}), None),
            (json!({"bool": {}}), None),
            (
                json!({"bool": {"must": [], "filter": [], "should": [], "must_not": []}}),
                None,
            ),
            (json!({"match_none": {}}), Some("false")),
            (json!({"term": {"user": "bob"}}), Some("`user` == \"bob\"")),
            (
                json!({"term": {"user": {"value": "bob", "boost": 1.0, "case_insensitive": false}}}),
                Some("`user` == \"bob\""),
            ),
            (json!({"term": {"n": 5}}), Some("`n` == 5")),
            (json!({"term": {"ok": true}}), Some("`ok` == true")),
            (
                json!({"match_phrase": {"msg": {"query": "a b"}}}),
                Some("`msg` == \"a b\""),
            ),
            (
                json!({"terms": {"user": ["a", "b"], "boost": 1}}),
                Some("`user` IN (\"a\", \"b\")"),
            ),
            (json!({"terms": {"user": ["a"]}}), Some("`user` == \"a\"")),
            (json!({"terms": {"user": []}}), Some("false")),
            (
                json!({"exists": {"field": "a.b"}}),
                Some("`a.b` IS NOT NULL"),
            ),
            (
                json!({"range": {"n": {"gte": 1, "lt": 2.5}}}),
                Some("(`n` >= 1 AND `n` < 2.5)"),
            ),
            (json!({"range": {"n": {"gt": -3}}}), Some("`n` > -3")),
            (
                json!({"range": {"n": {"gte": null, "lte": 4}}}),
                Some("`n` <= 4"),
            ),
            (json!({"range": {"n": {}}}), Some("`n` IS NOT NULL")),
            (
                json!({"range": {"k": {"gte": "abc"}}}),
                Some("`k` >= \"abc\""),
            ),
            (
                json!({"range": {"t": {"gte": "2024-01-01"}}}),
                Some("`t` >= TO_DATETIME(\"2024-01-01\")"),
            ),
            (
                json!({"range": {"t": {"lt": 1718575024079_i64, "format": "epoch_millis"}}}),
                Some("`t` < TO_DATETIME(1718575024079)"),
            ),
            (
                json!({"range": {"t": {"lt": "1718575024079", "format": "strict_date_optional_time||epoch_millis"}}}),
                Some("`t` < TO_DATETIME(1718575024079)"),
            ),
            (
                json!({"range": {"t": {"gte": "now-15m", "lte": "now"}}}),
                Some("(`t` >= TO_DATETIME(NOW() - 15 minutes) AND `t` <= TO_DATETIME(NOW()))"),
            ),
            (
                json!({"range": {"t": {"gte": "now+1M"}}}),
                Some("`t` >= TO_DATETIME(NOW() + 1 months)"),
            ),
            (
                json!({"bool": {"must_not": {"term": {"a": 1}}}}),
                Some("(NOT COALESCE(`a` == 1, false))"),
            ),
            (
                json!({"bool": {"should": [{"term": {"a": 1}}, {"term": {"b": 2}}]}}),
                Some("(`a` == 1 OR `b` == 2)"),
            ),
            // With a required clause, `should` only scores: dropped.
            (
                json!({"bool": {"filter": {"term": {"a": 1}}, "should": [{"term": {"b": 2}}]}}),
                Some("`a` == 1"),
            ),
            (
                json!({"bool": {"filter": {"term": {"a": 1}}, "should": [{"term": {"b": 2}}], "minimum_should_match": "1"}}),
                Some("(`a` == 1 AND `b` == 2)"),
            ),
            (
                json!({"bool": {"should": [], "minimum_should_match": 1}}),
                None,
            ),
            (
                json!({"bool": {"must": [{"match_none": {}}, {"term": {"a": 1}}]}}),
                Some("false"),
            ),
            (
                json!({"bool": {"should": [{"match_all": {}}, {"term": {"a": 1}}]}}),
                None,
            ),
            (
                json!({"bool": {"must_not": [{"match_all": {}}]}}),
                Some("false"),
            ),
            (
                json!({"bool": {"must": [{"bool": {"should": [{"term": {"a": 1}}, {"bool": {"must": [{"term": {"b": 1}}, {"term": {"c": 1}}]}}]}}]}}),
                Some("(`a` == 1 OR (`b` == 1 AND `c` == 1))"),
            ),
        ];
        for (q, want) in cases {
            assert_eq!(cond(q.clone()).as_deref(), want, "{q}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_400_naming_the_clause() {
        let cases = [
            (json!({"match": {"msg": "x"}}), "[match]"),
            (json!({"query_string": {"query": "x"}}), "[query_string]"),
            (json!({"multi_match": {"query": "x"}}), "[multi_match]"),
            (json!({"prefix": {"user": "b"}}), "[prefix]"),
            (json!({"wildcard": {"user": "b*"}}), "[wildcard]"),
            (
                json!({"nested": {"path": "p", "query": {"match_all": {}}}}),
                "[nested]",
            ),
            (
                json!({"bool": {"filter": [{"regexp": {"u": "b.*"}}]}}),
                "[regexp]",
            ),
            (
                json!({"term": {"user": {"value": "b", "case_insensitive": true}}}),
                "[case_insensitive]",
            ),
            (
                json!({"match_phrase": {"msg": {"query": "a b", "slop": 2}}}),
                "[slop]",
            ),
            (
                json!({"terms": {"user": {"index": "secret", "id": "1", "path": "u"}}}),
                "lookup",
            ),
            (json!({"terms": {"a": [1], "b": [2]}}), "one field"),
            (json!({"term": {"a": 1, "b": 2}}), "one field"),
            (json!({"term": {"a": null}}), "a value"),
            (json!({"term": {"a": [1]}}), "a value"),
            (json!({"range": {"t": {"gte": "now/d"}}}), "date math"),
            (json!({"range": {"t": {"gte": "now-1d/d"}}}), "date math"),
            (
                json!({"range": {"t": {"gte": "2024-01-01||+1d"}}}),
                "date math",
            ),
            (json!({"range": {"t": {"gte": "now-1d-1h"}}}), "date math"),
            (
                json!({"range": {"t": {"gte": "x", "time_zone": "+01:00"}}}),
                "[time_zone]",
            ),
            (
                json!({"range": {"t": {"gte": "01/02/2024", "format": "dd/MM/yyyy"}}}),
                "[format]",
            ),
            (
                json!({"range": {"t": {"gte": "yesterday", "format": "strict_date_optional_time"}}}),
                "ISO",
            ),
            (
                json!({"range": {"t": {"gte": 5, "format": "strict_date_optional_time"}}}),
                "epoch_millis",
            ),
            (
                json!({"range": {"t": {"relation": "within", "gte": 1}}}),
                "[relation]",
            ),
            (json!({"range": {"t": {"from": 1}}}), "[from]"),
            (
                json!({"bool": {"should": [{"term": {"a": 1}}], "minimum_should_match": 2}}),
                "minimum_should_match",
            ),
            (
                json!({"bool": {"should": [{"term": {"a": 1}}], "minimum_should_match": "50%"}}),
                "minimum_should_match",
            ),
            (
                json!({"bool": {"adjust_pure_negative": false}}),
                "adjust_pure_negative",
            ),
            (json!({"term": {"_id": "x"}}), "metadata"),
            (json!({"exists": {"field": "_index"}}), "metadata"),
            (json!({"exists": {"field": "user*"}}), "patterns"),
            (json!({"term": {"us\ner": "x"}}), "control"),
            (json!({"term": {"user": "a\u{1}b"}}), "control"),
            (json!({"match_all": {"x": 1}}), "[match_all]"),
            (json!({}), "one key"),
            (json!({"term": {"a": 1}, "range": {"b": {}}}), "one key"),
            (json!("match_all"), "one key"),
        ];
        for (q, says) in cases {
            let err = condition(&q).unwrap_err();
            assert_eq!(err.kind, crate::RejectKind::BadRequest, "{q}");
            assert!(err.reason.contains(says), "{q}: {}", err.reason);
        }
        // Nesting is capped before the lexer's bracket limit.
        let mut deep = json!({"term": {"a": 1}});
        for _ in 0..MAX_BOOL_DEPTH {
            deep = json!({"bool": {"must_not": deep}});
        }
        assert!(condition(&deep).is_ok());
        let deeper = json!({"bool": {"must_not": deep}});
        assert!(condition(&deeper).is_err());
    }

    mod props {
        use proptest::prelude::*;
        use serde_json::{json, Value};

        use super::super::condition;
        use crate::querylang::esql::{check_condition, literals, parse};

        fn text() -> impl Strategy<Value = String> {
            let f = prop::sample::select(vec![
                "a",
                "\"",
                "\\",
                "`",
                "``",
                "|",
                "//",
                "/*",
                "*/",
                "\n",
                "\r",
                "\t",
                " ",
                "(",
                ")",
                "FROM secret",
                "now",
                "-",
                "2024-01-01",
                "\u{e9}",
                "\u{1F642}",
                "'",
                "\"\"\"",
                ",",
                "?",
                "??x",
                "{",
                "}",
            ]);
            prop::collection::vec(f, 1..6).prop_map(|v| v.concat())
        }

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                text().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                (-1e6f64..1e6).prop_map(Value::from),
            ]
        }

        fn leaf() -> impl Strategy<Value = Value> {
            (0..7u8, text(), scalar(), scalar()).prop_map(|(k, f, v, w)| match k {
                0 => json!({"term": {f: v}}),
                1 => json!({"terms": {f: [v, w]}}),
                2 => json!({"match_phrase": {f: {"query": v}}}),
                3 => json!({"exists": {"field": f}}),
                4 => json!({"range": {f: {"gte": v, "lt": w}}}),
                5 => json!({"match_all": {}}),
                _ => json!({"match_none": {}}),
            })
        }

        fn query() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(4, 24, 4, |inner| {
                (
                    prop::collection::vec(inner.clone(), 0..3),
                    prop::collection::vec(inner.clone(), 0..3),
                    prop::collection::vec(inner, 0..3),
                    any::<bool>(),
                )
                    .prop_map(|(must, not, should, msm)| {
                        let mut b = json!({"filter": must, "must_not": not, "should": should});
                        if msm {
                            b["minimum_should_match"] = json!(1);
                        }
                        json!({ "bool": b })
                    })
            })
        }

        proptest! {
            #![proptest_config(crate::testing::cases(1500))]

            /// Whatever the filter, the translation never panics; an accepted condition passes
            /// the guard, and inserted into a query it leaves that query's source and commands
            /// as they were: the text parses to the same source, and every string literal of
            /// the condition is one of the filter's values.
            #[test]
            fn accepted_conditions_stay_one_condition(q in query()) {
                if let Ok(Some(c)) = condition(&q) {
                    prop_assert!(check_condition(&c).is_ok(), "{c}");
                    let parsed = parse("FROM logs-a METADATA _id // x").unwrap();
                    let text = parsed.render_where(&["logs-a".to_string()], Some(&c)).unwrap();
                    let again = parse(&text);
                    prop_assert!(again.is_ok(), "{text:?}: {again:?}");
                    prop_assert_eq!(again.unwrap().sources, vec!["logs-a".to_string()]);
                    let (strings, _) = literals(&c);
                    let all = q.to_string();
                    for s in strings {
                        let as_json = serde_json::to_string(&s).unwrap();
                        prop_assert!(all.contains(&as_json), "{s:?} not in {all}");
                    }
                }
            }
        }
    }
}
