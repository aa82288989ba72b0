//! The query-language endpoints: ES|QL `POST /_query`, SQL `POST /_sql` (with its cursor
//! follow-ups and `POST /_sql/close`) and EQL `POST /{index}/_eql/search`.
//!
//! Invariant: every forwarded body is built here from allow-listed keys only; its `filter`
//! is always present and is `bool{filter: [token filters], must: [client filter or
//! match_all]}` for SQL and EQL, and for ES|QL `bool{filter: [token filters], must:
//! [match_all]}`: ES|QL also hands its `filter` to field_caps as an `index_filter`, decided
//! from every tenant's values, so the client's ES|QL `filter` never goes there but becomes a
//! `| WHERE` right after the source command (`esql::filter`, re-lexed before use; SQL and EQL
//! stopped passing `filter` to field_caps in Elasticsearch 7.10), and every ES|QL `WHERE`
//! condition is forwarded as `NOT NOT (...)` (`esql::WHERE_OPEN`: Elasticsearch may lift
//! `@timestamp` comparisons from the text into field_caps too); the query text's source
//! (ES|QL `FROM`, SQL table) is replaced by the checked
//! index expression (later by the allowed concrete names, see `QueryText::forward`); nothing
//! that creates server-side state esgate cannot bind (async variants, `keep_on_completion`,
//! `wait_for_completion_timeout`) nor `runtime_mappings`, `profile` or `tables` passes; SQL
//! cursors reach the backend only when sealed for the presenting token.

pub mod esql;
mod lexing;
pub mod sql;
pub mod uri_search;

use serde_json::{Map, Value};

use crate::error::printable;
use crate::ids::continuation::{self, IdKind, Seal};
use crate::indices::index::{self, Expression};
use crate::{dsl::rewrite, FilterSet, ForwardBody, Rejection, Scope};

/// Where a SQL response carries its next-page cursor, sealed before the client sees it.
pub(crate) const SQL_CURSOR_SEAL: Seal = Seal {
    field: "cursor",
    kind: IdKind::SqlCursor,
    required: false,
    release: None,
};

/// A query-language body waiting for its source list: the checked body and the query text.
#[derive(Clone, Debug)]
pub(crate) struct QueryText {
    body: Map<String, Value>,
    text: Text,
    /// ES|QL: a `LIMIT` appended last (the token's `max_size`), so the answer never holds more
    /// rows whatever the query's own limits.
    limit: Option<u64>,
    /// ES|QL: the client's `filter` as a condition (`esql::filter`), inserted as a `WHERE`
    /// right after the source command.
    condition: Option<String>,
}

#[derive(Clone, Debug)]
enum Text {
    Esql(esql::Query),
    Sql(sql::Query),
}

impl QueryText {
    /// The body to forward with `names` as the query's source list.
    pub(crate) fn forward(&self, names: &[String]) -> Result<ForwardBody, Rejection> {
        let mut query = match &self.text {
            Text::Esql(q) => q.render_where(names, self.condition.as_deref())?,
            Text::Sql(q) => q.render(names)?,
        };
        if let Some(n) = self.limit {
            // On a line of its own: a trailing `//` comment cannot swallow it.
            query.push_str(&format!("\n| LIMIT {n}"));
        }
        let mut body = self.body.clone();
        body.insert("query".into(), Value::String(query));
        let bytes = serde_json::to_vec(&Value::Object(body))
            .map_err(|_| Rejection::bad_request("body could not be serialised"))?;
        Ok(ForwardBody::new(bytes, "application/json"))
    }
}

/// A checked query-language request: the index expression it reads and its text.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub expression: Expression,
    pub text: QueryText,
}

impl Checked {
    /// The body for the expression as checked (before resolution narrows it).
    pub(crate) fn body(&self) -> Result<ForwardBody, Rejection> {
        self.text.forward(self.expression.elements())
    }
}

/// What a `POST /_sql` asks for.
#[derive(Clone, Debug)]
pub(crate) enum SqlRequest {
    /// A new query.
    Query(Checked),
    /// The next page of an earlier query: the body with the backend's cursor, the length of
    /// the page the cursor came with (when its sealed form carries it), and the cursor.
    Next(ForwardBody, Option<usize>, String),
}

/// The longest `page_timeout` a SQL request may ask for: Elasticsearch's default
/// `search.max_keep_alive` (24 hours), past which it refuses to open the point in time (a 7.x
/// scroll) a query pages through. esgate counts a token's cursors for it (`max_open_pits`): a
/// cursor that holds no context on the backend (an aggregation's) would otherwise be counted
/// as long as the client asked.
pub(crate) const MAX_PAGE_TIMEOUT_MS: u64 = 24 * 3_600_000;

/// How a body value is checked.
#[derive(Clone, Copy)]
enum Expect {
    Bool,
    Uint,
    Text,
    Time,
    /// A time value of at most this many milliseconds.
    TimeAtMost(u64),
    Params,
}

const ESQL_KEYS: &[(&str, Expect)] = &[
    ("columnar", Expect::Bool),
    ("locale", Expect::Text),
    ("params", Expect::Params),
    ("include_ccs_metadata", Expect::Bool),
];

const SQL_KEYS: &[(&str, Expect)] = &[
    ("fetch_size", Expect::Uint),
    ("columnar", Expect::Bool),
    ("time_zone", Expect::Text),
    ("field_multi_value_leniency", Expect::Bool),
    ("allow_partial_search_results", Expect::Bool),
    ("page_timeout", Expect::TimeAtMost(MAX_PAGE_TIMEOUT_MS)),
    ("request_timeout", Expect::Time),
    ("params", Expect::Params),
];

const SQL_CURSOR_KEYS: &[(&str, Expect)] = &[
    ("columnar", Expect::Bool),
    ("page_timeout", Expect::TimeAtMost(MAX_PAGE_TIMEOUT_MS)),
    ("request_timeout", Expect::Time),
];

const EQL_KEYS: &[(&str, Expect)] = &[
    ("query", Expect::Text),
    ("size", Expect::Uint),
    ("fetch_size", Expect::Uint),
    ("event_category_field", Expect::Text),
    ("timestamp_field", Expect::Text),
    ("tiebreaker_field", Expect::Text),
    ("result_position", Expect::Text),
    ("allow_partial_search_results", Expect::Bool),
    ("allow_partial_sequence_results", Expect::Bool),
    ("max_samples_per_key", Expect::Uint),
];

/// `POST /_query`: the ES|QL text must read only a checked source. The forwarded `filter`
/// holds the token's filters only: Elasticsearch also sends it to field_caps as its
/// `index_filter`, decided from index-wide values (`esql::filter`); the client's `filter`
/// becomes a `WHERE` after the source command.
pub(crate) fn esql(body: Option<Value>, scope: &Scope) -> Result<Checked, Rejection> {
    let mut m = object(body)?;
    let text = take_query(&mut m)?;
    let parsed = esql::parse(&text)?;
    if scope.filters.constant_scores() {
        if parsed.scores {
            return Err(constant_scores_refusal("[METADATA _score]"));
        }
        if parsed.score_calls {
            return Err(constant_scores_refusal("[SCORE()]"));
        }
    }
    let expression = index::parse(Some(&parsed.sources.join(",")), &scope.indices)?;
    let condition = match m.remove("filter") {
        Some(f) => {
            // The query DSL's own rules first (expansions, internal fields), as before.
            rewrite::check_query(&f)?;
            let c = esql::filter::condition(&f)?;
            if let Some(c) = &c {
                esql::check_condition(c)?;
            }
            c
        }
        None => None,
    };
    let mut out = checked_values(m, ESQL_KEYS)?;
    out.insert("filter".into(), rewrite::wrap(None, &scope.filters));
    Ok(Checked {
        expression,
        text: QueryText {
            body: out,
            text: Text::Esql(parsed),
            limit: scope.guard.max_size,
            condition,
        },
    })
}

/// `POST /_sql`: a new query (one checked table, `filter` wrapped) or a sealed cursor.
pub(crate) fn sql(body: Option<Value>, scope: &Scope) -> Result<SqlRequest, Rejection> {
    let mut m = object(body)?;
    if let Some(cursor) = m.remove("cursor") {
        if m.contains_key("query") {
            return Err(Rejection::bad_request(
                "a SQL request takes either [query] or [cursor]",
            ));
        }
        let mut out = checked_values(m, SQL_CURSOR_KEYS)?;
        let (cursor, page) = open_cursor(&cursor, scope)?;
        out.insert("cursor".into(), Value::String(cursor.clone()));
        return Ok(SqlRequest::Next(json(out)?, page, cursor));
    }
    let text = take_query(&mut m)?;
    let parsed = sql::parse(&text)?;
    if parsed.scores && scope.filters.constant_scores() {
        return Err(constant_scores_refusal("[SCORE()]"));
    }
    let expression = index::parse(Some(&parsed.table), &scope.indices)?;
    let mut out = checked_keys(m, SQL_KEYS, &scope.filters)?;
    scope.guard.sql(&mut out)?;
    Ok(SqlRequest::Query(Checked {
        expression,
        text: QueryText {
            body: out,
            text: Text::Sql(parsed),
            limit: None,
            condition: None,
        },
    }))
}

/// `POST /_sql/close`: only a cursor sealed for this token. The body, and the backend's
/// cursor it closes.
pub(crate) fn sql_close(
    body: Option<Value>,
    scope: &Scope,
) -> Result<(ForwardBody, String), Rejection> {
    let mut m = object(body)?;
    let Some(cursor) = m.remove("cursor") else {
        return Err(Rejection::bad_request(
            "closing a SQL cursor needs [cursor]",
        ));
    };
    if let Some(k) = m.keys().next() {
        return Err(key_not_allowed(k));
    }
    let cursor = open_cursor(&cursor, scope)?.0;
    let mut out = Map::new();
    out.insert("cursor".into(), Value::String(cursor.clone()));
    Ok((json(out)?, cursor))
}

/// `POST /{index}/_eql/search`: the index comes from the path; `filter` is wrapped.
pub(crate) fn eql(body: Option<Value>, filters: &FilterSet) -> Result<ForwardBody, Rejection> {
    let m = object(body)?;
    if !m.get("query").is_some_and(Value::is_string) {
        return Err(Rejection::bad_request(
            "an EQL search needs a [query] string",
        ));
    }
    if let Some(Value::Array(fields)) = m.get("fields") {
        // `fields` entries are names or {field, format} objects: checked, then kept.
        for f in fields {
            let ok = match f {
                Value::String(_) => true,
                Value::Object(o) => o.iter().all(|(k, v)| {
                    (k == "field" || k == "format" || k == "include_unmapped")
                        && (v.is_string() || v.is_boolean())
                }),
                _ => false,
            };
            if !ok {
                return Err(Rejection::bad_request(
                    "[fields] entries must be field names",
                ));
            }
        }
    }
    // The fields it names follow the rule of every field position (no internal counters).
    if let Some(f) = m.get("fields") {
        crate::dsl::fields::check_list(f, crate::dsl::fields::Position::Data)?;
    }
    // The query text is not parsed: every identifier-like run in it that starts with `_`
    // (bare, backtick-quoted or even inside a string) is checked as a field name, so that no
    // condition reads an internal counter such as `_seq_no` (a string value starting with an
    // unknown `_` name is refused too: over-refusal, never a leak).
    if let Some(Value::String(text)) = m.get("query") {
        let identifier = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@');
        let mut metadata = false;
        for run in text.split(|c: char| !identifier(c)) {
            if run.starts_with('_') {
                crate::dsl::fields::check(run, crate::dsl::fields::Position::Data)?;
                metadata |= crate::dsl::expansion::may_be_metadata(run);
            }
        }
        // Attack18e: a text that names a metadata field (`_index` aside) may hold no pattern
        // match, case-insensitive comparison or range anywhere, as the query DSL refuses them
        // on such a field (`expansion`: `_id`'s terms are every document's). The text is not
        // parsed, so any such construct anywhere counts, strings and comments included
        // (over-refusal, never a leak): `:` (case-insensitive equality, wildcards), `~`
        // (`like~`, `regex~`, `in~`), `<`, `>` and the pattern words and functions.
        if metadata {
            let pattern_word = |w: &str| {
                [
                    "like",
                    "regex",
                    "startswith",
                    "endswith",
                    "stringcontains",
                    "wildcard",
                    "match",
                ]
                .iter()
                .any(|p| w.eq_ignore_ascii_case(p))
            };
            if text.contains([':', '~', '<', '>'])
                || text.split(|c: char| !identifier(c)).any(pattern_word)
            {
                return Err(Rejection::forbidden(
                    "EQL pattern matches, case-insensitive comparisons and ranges are not \
                     allowed in a query that names a metadata field",
                ));
            }
        }
    }
    for key in [
        "event_category_field",
        "timestamp_field",
        "tiebreaker_field",
    ] {
        if let Some(Value::String(f)) = m.get(key) {
            crate::dsl::fields::check(f, crate::dsl::fields::Position::Data)?;
        }
    }
    let mut m = m;
    let fields = m.remove("fields");
    let mut out = checked_keys(m, EQL_KEYS, filters)?;
    if let Some(f) = fields {
        if !f.is_array() {
            return Err(Rejection::bad_request("[fields] must be a list"));
        }
        out.insert("fields".into(), f);
    }
    json(out)
}

fn object(body: Option<Value>) -> Result<Map<String, Value>, Rejection> {
    match body {
        Some(Value::Object(m)) => Ok(m),
        None => Err(Rejection::bad_request("this request needs a JSON body")),
        Some(_) => Err(Rejection::bad_request("request body must be a JSON object")),
    }
}

/// The refusal of a relevance score to a token with constant scores (review 15): no wrap of
/// esgate's makes a query language's score constant.
fn constant_scores_refusal(what: &str) -> Rejection {
    Rejection::forbidden(format!(
        "{what} is refused for this token: its scores are constant (a relevance score counts other tenants' documents)"
    ))
}

fn take_query(m: &mut Map<String, Value>) -> Result<String, Rejection> {
    match m.remove("query") {
        Some(Value::String(s)) => Ok(s),
        _ => Err(Rejection::bad_request("the request needs a [query] string")),
    }
}

/// The allowed keys with checked values, and the token's filters wrapped around `filter`.
fn checked_keys(
    mut m: Map<String, Value>,
    allowed: &[(&str, Expect)],
    filters: &FilterSet,
) -> Result<Map<String, Value>, Rejection> {
    let filter = m.remove("filter");
    if let Some(f) = &filter {
        rewrite::check_query(f)?;
    }
    let mut out = checked_values(m, allowed)?;
    out.insert("filter".into(), rewrite::wrap(filter, filters));
    Ok(out)
}

fn checked_values(
    m: Map<String, Value>,
    allowed: &[(&str, Expect)],
) -> Result<Map<String, Value>, Rejection> {
    let mut out = Map::new();
    for (k, v) in m {
        let Some((_, expect)) = allowed.iter().find(|(name, _)| *name == k) else {
            return Err(key_not_allowed(&k));
        };
        if !value_ok(*expect, &v) {
            return Err(Rejection::bad_request(format!(
                "body key [{}] has a value that is not allowed",
                printable(&k)
            )));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn value_ok(expect: Expect, v: &Value) -> bool {
    match expect {
        Expect::Bool => v.is_boolean(),
        Expect::Uint => v.as_u64().is_some(),
        Expect::Text => v.as_str().is_some_and(|s| !s.chars().any(char::is_control)),
        Expect::Time => v
            .as_str()
            .is_some_and(crate::request::params::is_time_value),
        Expect::TimeAtMost(max_ms) => v
            .as_str()
            .and_then(crate::request::params::time_millis)
            .is_some_and(|ms| ms <= u128::from(max_ms)),
        Expect::Params => params_ok(v),
    }
}

/// Query parameters are values only: a list of scalars, of single-entry `{name: scalar}`
/// objects (ES|QL named parameters) or of `{type, value}` objects (SQL typed parameters).
/// Identifier and pattern parameters are refused.
fn params_ok(v: &Value) -> bool {
    let scalar = |v: &Value| !(v.is_array() || v.is_object());
    let Value::Array(items) = v else {
        return false;
    };
    items.iter().all(|item| match item {
        Value::Object(o) if o.len() == 1 => o.values().all(scalar),
        Value::Object(o) => {
            o.len() == 2
                && o.get("type").is_some_and(Value::is_string)
                && o.get("value").is_some_and(scalar)
        }
        other => scalar(other),
    })
}

fn open_cursor(v: &Value, scope: &Scope) -> Result<(String, Option<usize>), Rejection> {
    match v {
        Value::String(s) => continuation::open_paged(&scope.ids, IdKind::SqlCursor, s),
        _ => Err(Rejection::bad_request("[cursor] must be a string")),
    }
}

fn json(m: Map<String, Value>) -> Result<ForwardBody, Rejection> {
    let bytes = serde_json::to_vec(&Value::Object(m))
        .map_err(|_| Rejection::bad_request("body could not be serialised"))?;
    Ok(ForwardBody::new(bytes, "application/json"))
}

fn key_not_allowed(key: &str) -> Rejection {
    Rejection::forbidden(format!(
        "body key [{}] is not allowed for this token",
        printable(key)
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::ids::continuation::{Binding, IdKey};
    use crate::RejectKind;

    fn scope(token: &str) -> Scope {
        Scope {
            filters: FilterSet::new([("tenant".to_string(), "a".to_string())]).into(),
            indices: vec!["logs-*".to_string()].into(),
            ids: Binding {
                token_id: token.into(),
                key: Arc::new(IdKey::new([3; 32])),
            },
            guard: Default::default(),
        }
    }

    fn wrapped(inner: Value) -> Value {
        json!({"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}], "must": [inner]}})
    }

    fn parsed(b: &ForwardBody) -> Value {
        serde_json::from_slice(&b.bytes).unwrap()
    }

    /// Review 15: a token with constant scores may not read a relevance score in a query
    /// language (ES|QL `METADATA _score`, SQL `SCORE()`, bare or quoted, any case); with
    /// relevance scores both pass as before. Its SQL `filter` runs under `constant_score`.
    #[test]
    fn constant_scores_refuse_query_language_scores() {
        let mut constant = scope("t");
        constant.filters = Arc::new(
            FilterSet::new([("tenant".to_string(), "a".to_string())]).with_constant_scores(true),
        );
        for text in [
            "FROM logs-a METADATA _score | SORT _score DESC",
            "FROM logs-a METADATA _id, _score",
        ] {
            let e = esql(Some(json!({ "query": text })), &constant).unwrap_err();
            assert_eq!(e.kind, RejectKind::Forbidden, "{text}");
            assert!(e.reason.contains("[METADATA _score]"), "{}", e.reason);
            assert!(
                esql(Some(json!({ "query": text })), &scope("t")).is_ok(),
                "{text}"
            );
        }
        assert!(esql(
            Some(json!({"query": "FROM logs-a METADATA _id"})),
            &constant
        )
        .is_ok());
        // esql16: ES|QL's SCORE() (9.3 on) hands back the relevance score of the full-text
        // functions inside it, whatever METADATA says.
        for text in [
            "FROM logs-a | EVAL s = SCORE(MATCH(m, \"x\")) | SORT s DESC",
            "FROM logs-a | EVAL s = score (m:\"x\")",
            "FROM logs-a | EVAL s = `SCORE`(QSTR(\"m:x\"))",
        ] {
            let e = esql(Some(json!({ "query": text })), &constant).unwrap_err();
            assert_eq!(e.kind, RejectKind::Forbidden, "{text}");
            assert!(e.reason.contains("[SCORE()]"), "{}", e.reason);
            assert!(
                esql(Some(json!({ "query": text })), &scope("t")).is_ok(),
                "{text}"
            );
        }
        for text in [
            "FROM logs-a | KEEP score | SORT score",
            "FROM logs-a | EVAL x = \"score(\"",
        ] {
            assert!(
                esql(Some(json!({ "query": text })), &constant).is_ok(),
                "{text}"
            );
        }
        for text in [
            "SELECT SCORE(), m FROM logs-a WHERE MATCH(m, 'x')",
            "SELECT m FROM logs-a WHERE MATCH(m, 'x') ORDER BY score ( ) DESC",
            "SELECT \"SCORE\"() AS s FROM logs-a",
        ] {
            let e = sql(Some(json!({ "query": text })), &constant).unwrap_err();
            assert_eq!(e.kind, RejectKind::Forbidden, "{text}");
            assert!(e.reason.contains("[SCORE()]"), "{}", e.reason);
            assert!(
                sql(Some(json!({ "query": text })), &scope("t")).is_ok(),
                "{text}"
            );
        }
        let q = json!({"match": {"m": "x"}});
        let body = json!({"query": "SELECT score FROM logs-a", "filter": q});
        let Ok(SqlRequest::Query(c)) = sql(Some(body), &constant) else {
            panic!("a column named score is no function");
        };
        assert_eq!(
            parsed(&c.body().unwrap())["filter"],
            json!({"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}],
                            "must": [{"constant_score": {"filter": q}}]}})
        );
    }

    /// esql16: a deeply nested client ES|QL `filter` is a 400 naming the nesting (the body
    /// parser stops at 64 JSON levels, about 21 `bool`s; SQL and EQL pass such filters on,
    /// wrapped), and a deeply bracketed query text is refused, never a stack overflow.
    #[test]
    fn deep_filters_and_texts_are_refused_plainly() {
        for levels in [9usize, 21] {
            let mut f = json!({"term": {"user": "bob"}});
            for _ in 0..levels {
                f = json!({"bool": {"must": [f]}});
            }
            let e = esql(
                Some(json!({"query": "FROM logs-a", "filter": f.clone()})),
                &scope("t"),
            )
            .unwrap_err();
            assert_eq!(e.kind, RejectKind::BadRequest, "{levels}: {}", e.reason);
            assert!(e.reason.contains("nested too deeply"), "{}", e.reason);
            let body = json!({"query": "SELECT a FROM \"logs-a\"", "filter": f.clone()});
            assert!(sql(Some(body), &scope("t")).is_ok());
            let body = json!({"query": "any where true", "filter": f});
            assert!(eql(Some(body), &scope("t").filters).is_ok());
        }
        let deep = format!(
            "FROM logs-a | WHERE {}a{}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let e = esql(Some(json!({ "query": deep })), &scope("t")).unwrap_err();
        assert!(e.reason.contains("nested too deeply"), "{}", e.reason);
    }

    /// The token's `max_size` (issue 13): ES|QL gets a `LIMIT` of its own, last, on its own
    /// line (a trailing `//` comment cannot hide it); SQL's page is capped or refused.
    #[test]
    fn max_size_limits_esql_rows_and_sql_pages() {
        let mut limited = scope("t");
        limited.guard.max_size = Some(5);
        let c = esql(
            Some(json!({"query": "FROM logs-* | LIMIT 10000 // all of it"})),
            &limited,
        )
        .unwrap();
        let q = parsed(&c.body().unwrap())["query"].clone();
        assert!(q.as_str().unwrap().ends_with("\n| LIMIT 5"), "{q}");
        let q = parsed(&c.text.forward(&["logs-a".into()]).unwrap())["query"].clone();
        assert!(q.as_str().unwrap().ends_with("\n| LIMIT 5"), "{q}");
        let unlimited = esql(Some(json!({"query": "FROM logs-*"})), &scope("t")).unwrap();
        assert!(!parsed(&unlimited.body().unwrap())["query"]
            .as_str()
            .unwrap()
            .contains("LIMIT"));

        let page = |body: Value| match sql(Some(body), &limited) {
            Ok(SqlRequest::Query(c)) => Ok(parsed(&c.body().unwrap())["fetch_size"].clone()),
            Ok(SqlRequest::Next(..)) => panic!("not a cursor"),
            Err(e) => Err(e),
        };
        assert_eq!(page(json!({"query": "SELECT a FROM logs-a"})).unwrap(), 5);
        assert_eq!(
            page(json!({"query": "SELECT a FROM logs-a", "fetch_size": 3})).unwrap(),
            3
        );
        let e = page(json!({"query": "SELECT a FROM logs-a", "fetch_size": 50})).unwrap_err();
        assert_eq!(e.kind, RejectKind::OverLimit);
        assert!(e.reason.contains("max_size 5"), "{}", e.reason);
    }

    /// skip14: the client's `filter` never reaches Elasticsearch's `filter` (which ES|QL also
    /// hands to field_caps as an `index_filter`): it is a `WHERE` after the source command,
    /// before the client's first command, and `filter` holds the token's filters only.
    #[test]
    fn esql_filter_becomes_a_where_and_the_forwarded_filter_is_the_tokens_only() {
        let c = esql(
            Some(json!({
                "query": "FROM logs-* | LIMIT 1",
                "filter": {"term": {"user": "bob"}},
                "columnar": true,
                "params": [1, "x", {"n": 2}]
            })),
            &scope("t"),
        )
        .unwrap();
        assert_eq!(c.expression.joined(), "logs-*");
        let out = parsed(&c.body().unwrap());
        assert_eq!(
            out,
            json!({
                "query": "FROM  logs-*  \n| WHERE NOT NOT (`user` == \"bob\")\n| LIMIT 1",
                "filter": wrapped(json!({"match_all": {}})),
                "columnar": true,
                "params": [1, "x", {"n": 2}]
            })
        );
        let narrowed = parsed(&c.text.forward(&["logs-a".into(), "logs-b".into()]).unwrap());
        assert_eq!(
            narrowed["query"],
            "FROM  logs-a, logs-b  \n| WHERE NOT NOT (`user` == \"bob\")\n| LIMIT 1"
        );
        assert_eq!(narrowed["filter"], wrapped(json!({"match_all": {}})));
        // After METADATA, before the first command, and ahead of a trailing line comment's
        // reach; the token's LIMIT still last.
        let mut limited = scope("t");
        limited.guard.max_size = Some(7);
        let c = esql(
            Some(json!({
                "query": "FROM logs-a METADATA _id // note",
                "filter": {"range": {"n": {"gte": 1}}}
            })),
            &limited,
        )
        .unwrap();
        let q = parsed(&c.body().unwrap())["query"].clone();
        assert_eq!(
            q,
            "FROM  logs-a  METADATA _id // note\n| WHERE NOT NOT (`n` >= 1)\n\n| LIMIT 7"
        );
        assert_eq!(
            esql::parse(q.as_str().unwrap()).unwrap().sources,
            vec!["logs-a"]
        );
        // A filter that matches everything adds nothing.
        for f in [
            json!({"match_all": {}}),
            json!({"bool": {"must": [], "filter": [], "should": [], "must_not": []}}),
        ] {
            let c = esql(
                Some(json!({"query": "FROM logs-a | LIMIT 1", "filter": f})),
                &scope("t"),
            )
            .unwrap();
            assert_eq!(
                parsed(&c.body().unwrap())["query"],
                "FROM  logs-a  | LIMIT 1"
            );
        }
        // Untranslatable: a 400 naming the clause; the query DSL's own refusals stay 403.
        let e = esql(
            Some(json!({"query": "FROM logs-a", "filter": {"query_string": {"query": "x"}}})),
            &scope("t"),
        )
        .unwrap_err();
        assert_eq!(e.kind, RejectKind::BadRequest);
        assert!(e.reason.contains("[query_string]"), "{}", e.reason);
        let e = esql(
            Some(json!({"query": "FROM logs-a", "filter": {"fuzzy": {"user": "bob"}}})),
            &scope("t"),
        )
        .unwrap_err();
        assert_eq!(e.kind, RejectKind::Forbidden);
        let e = esql(
            Some(json!({"query": "FROM logs-a", "filter": {"term": {"_seq_no": 1}}})),
            &scope("t"),
        )
        .unwrap_err();
        assert_eq!(e.kind, RejectKind::Forbidden);
    }

    /// The condition cannot break out of its `WHERE`: hostile field names and values, rendered
    /// into the full query, lex back into exactly one quoted identifier per name and one string
    /// per value (read back unchanged), the query parses to the same source, and no token of
    /// the condition is a `|` or a comment.
    #[test]
    fn hostile_filter_names_and_values_stay_inside_their_literals() {
        let hostile = [
            "plain",
            "a\"b",
            "a\\",
            "\\\"",
            "x\" | ENRICH p | WHERE \"",
            "line\nbreak | FROM secret",
            "cr\rlf",
            "tab\there",
            "// comment",
            "/* open",
            "*/ close",
            "back`tick``s`",
            "`",
            "\"\"\"triple\"\"\"",
            "é ü 漢字 🙂",
            "| LIMIT 0",
            "), secret, (",
            "FROM secret",
        ];
        for value in hostile {
            for name in hostile {
                if name.contains(['\n', '\r', '\t', '*']) {
                    continue; // refused: control characters (below), patterns
                }
                let filter = json!({"bool": {
                    "filter": [{"term": {name: value}}, {"terms": {name: [value, "z"]}}],
                    "must_not": [{"match_phrase": {name: value}}],
                    "should": [{"range": {name: {"gte": value}}}, {"exists": {"field": name}}],
                    "minimum_should_match": 1
                }});
                let c = esql(
                    Some(json!({"query": "FROM logs-a | LIMIT 1 // end", "filter": filter})),
                    &scope("t"),
                )
                .unwrap_or_else(|e| panic!("{name:?} {value:?}: {e:?}"));
                let q = parsed(&c.body().unwrap())["query"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert_eq!(esql::parse(&q).unwrap().sources, vec!["logs-a"], "{q}");
                let condition = c.text.condition.as_deref().unwrap();
                assert!(q.contains(&format!(
                    "\n| WHERE NOT NOT ({condition})\n| LIMIT 1 // end"
                )));
                let (strings, quoted) = esql::literals(condition);
                assert!(
                    strings.iter().filter(|s| *s == value).count() >= 4,
                    "{condition}"
                );
                assert!(
                    strings.iter().all(|s| s == value || s == "z"),
                    "{condition}"
                );
                assert!(
                    quoted.len() == 5 && quoted.iter().all(|q| q == name),
                    "{condition}"
                );
                esql::check_condition(condition).unwrap();
            }
        }
        for bad in ["a\nb", "a\u{0}b", "a\u{1b}b", "a\u{85}b"] {
            let as_name = json!({"term": {bad: "x"}});
            let as_value = json!({"term": {"user": bad}});
            for f in [as_name, as_value] {
                if bad == "a\nb" && f["term"]["user"].is_string() {
                    continue; // a line break in a value is escaped, not refused
                }
                let e = esql(
                    Some(json!({"query": "FROM logs-a", "filter": f})),
                    &scope("t"),
                );
                assert!(e.is_err(), "{f}");
            }
        }
    }

    #[test]
    fn a_missing_filter_becomes_the_token_filter() {
        let c = esql(Some(json!({"query": "FROM logs-a"})), &scope("t")).unwrap();
        assert_eq!(
            parsed(&c.body().unwrap())["filter"],
            wrapped(json!({"match_all": {}}))
        );
        let s = match sql(Some(json!({"query": "SELECT * FROM logs-a"})), &scope("t")).unwrap() {
            SqlRequest::Query(c) => c,
            SqlRequest::Next(..) => panic!("not a cursor"),
        };
        let out = parsed(&s.body().unwrap());
        assert_eq!(out["filter"], wrapped(json!({"match_all": {}})));
        assert_eq!(out["query"], "SELECT * FROM  \"logs-a\" ");
        let e = parsed(
            &eql(
                Some(json!({"query": "any where true"})),
                &scope("t").filters,
            )
            .unwrap(),
        );
        assert_eq!(
            e,
            json!({"query": "any where true", "filter": wrapped(json!({"match_all": {}}))})
        );
    }

    #[test]
    fn state_profiles_tables_and_runtime_mappings_are_refused() {
        let s = scope("t");
        let esql_cases = [
            json!({"query": "FROM logs-a", "profile": true}),
            json!({"query": "FROM logs-a", "tables": {"t": {}}}),
            json!({"query": "FROM logs-a", "runtime_mappings": {}}),
            json!({"query": "FROM logs-a", "keep_on_completion": true}),
            json!({"query": "FROM logs-a", "wait_for_completion_timeout": "1s"}),
            json!({"query": "FROM logs-a", "filter": {"script": {"script": "1"}}}),
            json!({"query": "FROM logs-a", "params": [{"x": {"identifier": "f"}}]}),
            json!({"query": "FROM secret"}),
            json!({"query": "FROM logs-a:x"}),
            json!({"query": "FROM logs-a::failures"}),
            json!({"query": "FROM remote:logs-a"}),
            json!({"query": "FROM <logs-{now/d}>"}),
            json!({"query": "FROM .security"}),
            json!({"query": "FROM logs-a | ENRICH p"}),
            json!({"query": 1}),
            json!({}),
        ];
        for b in esql_cases {
            assert!(esql(Some(b.clone()), &s).is_err(), "{b}");
        }
        let sql_cases = [
            json!({"query": "SELECT * FROM logs-a", "runtime_mappings": {}}),
            json!({"query": "SELECT * FROM logs-a", "keep_on_completion": true}),
            json!({"query": "SELECT * FROM logs-a", "wait_for_completion_timeout": "1s"}),
            json!({"query": "SELECT * FROM logs-a", "keep_alive": "1m"}),
            json!({"query": "SELECT * FROM logs-a", "catalog": "remote"}),
            json!({"query": "SELECT * FROM logs-a", "mode": "jdbc"}),
            json!({"query": "SELECT * FROM logs-a", "binary_format": true}),
            json!({"query": "SELECT * FROM logs-a", "index_using_frozen": true}),
            json!({"query": "SELECT * FROM logs-a", "page_timeout": "forever"}),
            json!({"query": "SELECT * FROM secret"}),
            json!({"query": "SELECT * FROM \"logs-a,secret\""}),
            json!({"query": "SELECT * FROM \"remote:logs-a\""}),
            json!({"query": "SHOW TABLES"}),
            json!({"query": "SELECT * FROM logs-a", "cursor": "x"}),
            json!({"cursor": "raw-backend-cursor"}),
        ];
        for b in sql_cases {
            assert!(sql(Some(b.clone()), &s).is_err(), "{b}");
        }
        let eql_cases = [
            json!({"query": "any where true", "runtime_mappings": {}}),
            json!({"query": "any where true", "keep_on_completion": true}),
            json!({"query": "any where true", "wait_for_completion_timeout": "1s"}),
            json!({"query": "any where true", "keep_alive": "1m"}),
            json!({"query": "any where true", "filter": {"global": {}}}),
            json!({"query": "any where true", "fields": [{"field": {"x": 1}}]}),
            json!({"query": "any where true", "fields": ["_seq_no"]}),
            json!({"query": "any where true", "fields": [{"field": "_primary_term"}]}),
            json!({"query": "any where true", "tiebreaker_field": "_seq_no"}),
            json!({"query": "any where true", "timestamp_field": "_doc"}),
            json!({"size": 1}),
        ];
        for b in eql_cases {
            assert!(eql(Some(b.clone()), &s.filters).is_err(), "{b}");
        }
    }

    #[test]
    fn sql_cursors_open_only_for_the_token_they_were_sealed_for() {
        let a = scope("tok_a");
        let sealed = continuation::seal(&a.ids, IdKind::SqlCursor, "c2VydmVyLWN1cnNvcg==");
        let next = match sql(Some(json!({"cursor": sealed, "columnar": false})), &a).unwrap() {
            SqlRequest::Next(b, _, _) => parsed(&b),
            SqlRequest::Query(_) => panic!("a cursor is not a query"),
        };
        assert_eq!(
            next,
            json!({"cursor": "c2VydmVyLWN1cnNvcg==", "columnar": false})
        );
        assert_eq!(
            parsed(&sql_close(Some(json!({"cursor": sealed})), &a).unwrap().0),
            json!({"cursor": "c2VydmVyLWN1cnNvcg=="})
        );
        // A cursor sealed with its page's length hands it on, for the proxy to make room for
        // the next page before the backend moves the cursor.
        let paged =
            continuation::seal_page(&a.ids, IdKind::SqlCursor, "c2VydmVyLWN1cnNvcg==", 3000);
        match sql(Some(json!({"cursor": paged})), &a).unwrap() {
            SqlRequest::Next(b, page, cursor) => {
                assert_eq!(parsed(&b), json!({"cursor": "c2VydmVyLWN1cnNvcg=="}));
                assert_eq!(page, Some(3 * 1024));
                assert_eq!(cursor, "c2VydmVyLWN1cnNvcg==");
            }
            SqlRequest::Query(_) => panic!("a cursor is not a query"),
        }
        let b = scope("tok_b");
        let err = sql(Some(json!({"cursor": sealed})), &b).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        assert!(sql_close(Some(json!({"cursor": sealed})), &b).is_err());
        // A scroll id sealed for the same token is not a cursor.
        let scroll = continuation::seal(&a.ids, IdKind::Scroll, "c2VydmVyLWN1cnNvcg==");
        assert!(sql(Some(json!({"cursor": scroll})), &a).is_err());
        assert!(sql_close(Some(json!({"cursor": sealed, "x": 1})), &a).is_err());
    }
}

/// The three steps end to end for the query-language routes (plan → prepare → authorize).
#[cfg(test)]
mod route_tests {
    use serde_json::{json, Value};

    use crate::ids::continuation::{self, IdKind};
    use crate::indices::resolution::{NameKind, ResolvedName};
    use crate::{self as es, RejectKind, RequestHead, Resolution};

    use crate::testing::scope;

    use crate::testing::cluster as fixture;

    fn run(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Value,
    ) -> Result<es::Permit, es::Rejection> {
        let s = scope();
        let h = crate::testing::head(method, path, query);
        let bytes = serde_json::to_vec(&body).unwrap();
        let plan = es::plan(&h, &s)?;
        assert!(plan.needs_body(), "{path}");
        let prepared = es::prepare(plan, Some(&bytes), &h, &s)?;
        let mut r = Resolution::default();
        for e in prepared.to_resolve() {
            r.names.insert(e.clone(), fixture(e).into());
        }
        es::authorize(prepared, &r, &s)
    }

    fn body(p: &es::Permit) -> Value {
        serde_json::from_slice(&p.body.as_ref().expect("a body").bytes).unwrap()
    }

    fn token_filter(inner: Value) -> Value {
        json!({"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}], "must": [inner]}})
    }

    #[test]
    fn esql_wildcards_are_narrowed_in_the_query_text() {
        let p = run(
            "POST",
            "/_query",
            Some("format=csv"),
            json!({"query": "FROM logs-* METADATA _index | STATS c = COUNT(*) BY _index"}),
        )
        .unwrap();
        assert_eq!(p.action, "esql");
        assert_eq!(p.path, "/_query");
        assert_eq!(p.query, crate::testing::pairs(&[("format", "csv")]));
        assert_eq!(p.indices, vec!["logs-a", "logs-b"]);
        assert_eq!(
            body(&p),
            json!({
                "query": "FROM  logs-a, logs-b  METADATA _index | STATS c = COUNT(*) BY _index",
                "filter": token_filter(json!({"match_all": {}}))
            })
        );
        assert!(p.answer.seal().is_none());
    }

    #[test]
    fn a_source_wildcard_reaching_nothing_allowed_is_refused_never_rewritten_to_an_exclusion() {
        // Search paths get `*,-*` (an empty answer) in this case; a query language's FROM
        // grammar is not relied on for exclusions, so the request is refused instead.
        let s = scope();
        for (path, query) in [
            ("/_query", "FROM logs-s* | LIMIT 1"),
            ("/_sql", "SELECT * FROM \"logs-s*\""),
        ] {
            let h = RequestHead {
                method: "POST",
                path,
                query: None,
                content_type: Some("application/json"),
                content_encoding: None,
            };
            let bytes = serde_json::to_vec(&json!({ "query": query })).unwrap();
            let prepared = es::prepare(es::plan(&h, &s).unwrap(), Some(&bytes), &h, &s).unwrap();
            let mut r = Resolution::default();
            for e in prepared.to_resolve() {
                r.names.insert(
                    e.clone(),
                    vec![ResolvedName {
                        name: "logs-sa".into(),
                        kind: NameKind::Alias,
                        indices: vec!["secret".into()],
                    }]
                    .into(),
                );
            }
            let err = es::authorize(prepared, &r, &s).unwrap_err();
            assert_eq!(err.kind, RejectKind::NotFound, "{query}");
        }
    }

    #[test]
    fn explicit_names_pass_as_checked_and_foreign_ones_are_refused() {
        let p = run("POST", "/_query", None, json!({"query": "from logs-a"})).unwrap();
        assert_eq!(body(&p)["query"], "from  logs-a ");
        for q in ["FROM logs-sa", "FROM logs-a, logs-sa", "FROM secret"] {
            let err = run("POST", "/_query", None, json!({ "query": q })).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{q}");
            // The alias's foreign target is never named.
            if q.contains("logs-sa") {
                assert!(!err.reason.contains("secret"), "{q}: {}", err.reason);
            }
        }
        let err = run(
            "POST",
            "/_sql",
            None,
            json!({"query": "SELECT * FROM logs-sa"}),
        )
        .unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
    }

    /// Attack26b (pinned, no finding): the source forms of ES|QL's `FROM` grammar and of a SQL
    /// table (exclusions, date math, remote clusters, `::` selectors, quoted and triple-quoted
    /// names, `_all`) follow the index rules of a path, and what reaches the backend names only
    /// what the resolution listed, never the client's expression (an exclusion is the
    /// resolution's to apply); a query string naming `_index` reads the checked sources only.
    #[test]
    fn query_language_source_forms_follow_the_index_rules() {
        for (path, q, want) in [
            (
                "/_query",
                "FROM logs-*,-logs-b | LIMIT 1",
                "FROM  logs-a, logs-b  | LIMIT 1",
            ),
            (
                "/_query",
                "FROM \"\"\"logs-a\"\"\" | LIMIT 1",
                "FROM  logs-a  | LIMIT 1",
            ),
            ("/_query", "FROM _all", "FROM  logs-a, logs-b "),
            (
                "/_query",
                "FROM logs-a | WHERE QSTR(\"_index:secret\") | STATS c = COUNT(*)",
                "FROM  logs-a  | WHERE NOT NOT ( QSTR(\"_index:secret\")) | STATS c = COUNT(*)",
            ),
            (
                "/_sql",
                "SELECT * FROM \"logs-*,-logs-b\"",
                "SELECT * FROM  \"logs-a,logs-b\" ",
            ),
        ] {
            let p = run("POST", path, None, json!({ "query": q })).unwrap();
            assert_eq!(body(&p)["query"], want, "{q}");
            assert_eq!(body(&p)["filter"], token_filter(json!({"match_all": {}})));
        }
        for (path, q) in [
            ("/_query", "FROM -logs-b"),
            ("/_query", "FROM logs-a,-logs-b"),
            ("/_query", "FROM <logs-{now/d}>"),
            ("/_query", "FROM \"<logs-{now/d}>\""),
            ("/_query", "FROM remote:logs-a"),
            ("/_query", "FROM \"remote:logs-a\""),
            ("/_query", "FROM logs-a::failures"),
            ("/_query", "FROM \"logs-a::data\""),
            ("/_query", "FROM \"\"\"secret\"\"\""),
            ("/_query", "FROM logs-a, \"secret\""),
            ("/_query", "FROM *,secret"),
            ("/_sql", "SELECT * FROM \"-logs-b\""),
            ("/_sql", "SELECT * FROM \"logs-a,-logs-b\""),
            ("/_sql", "SELECT * FROM \"<logs-{now/d}>\""),
            ("/_sql", "SELECT * FROM \"logs-a::failures\""),
            ("/_sql", "SELECT * FROM \"logs-a,secret\""),
            ("/_sql", "SELECT * FROM \"\"\"secret\"\"\""),
        ] {
            let err = run("POST", path, None, json!({ "query": q })).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{q}: {}", err.reason);
        }
    }

    #[test]
    fn sql_forwards_json_format_a_quoted_table_and_seals_the_cursor() {
        let p = run(
            "GET",
            "/_sql",
            None,
            json!({"query": "SELECT user FROM \"logs-*\" WHERE a = 'x'", "fetch_size": 5,
                   "filter": {"range": {"n": {"gte": 1}}}}),
        )
        .unwrap();
        assert_eq!(p.action, "sql");
        assert_eq!(p.method, es::Method::Post);
        assert_eq!(p.path, "/_sql");
        assert_eq!(p.query, crate::testing::pairs(&[("format", "json")]));
        assert_eq!(
            body(&p),
            json!({
                "query": "SELECT user FROM  \"logs-a,logs-b\"  WHERE a = 'x'",
                "fetch_size": 5,
                "filter": token_filter(json!({"range": {"n": {"gte": 1}}}))
            })
        );
        let seal = p.answer.seal().expect("the cursor is sealed");
        assert_eq!((seal.field, seal.kind), ("cursor", IdKind::SqlCursor));
        // The answer's cursor comes back sealed, and the next page opens it.
        let s = scope();
        let answer = br#"{"columns":[],"rows":[],"cursor":"c2Vydg=="}"#;
        let sealed_answer =
            continuation::seal_response(&s.ids, seal, answer, &crate::memory::Meter::unlimited())
                .unwrap()
                .unwrap();
        let v: Value = serde_json::from_slice(&sealed_answer).unwrap();
        let cursor = v["cursor"].as_str().unwrap().to_string();
        assert_ne!(cursor, "c2Vydg==");
        let next = run("POST", "/_sql", None, json!({ "cursor": cursor })).unwrap();
        assert_eq!(body(&next), json!({"cursor": "c2Vydg=="}));
        assert_eq!(next.query, crate::testing::pairs(&[("format", "json")]));
        assert!(next.indices.is_empty());
        let close = run("POST", "/_sql/close", None, json!({ "cursor": cursor })).unwrap();
        assert_eq!(close.path, "/_sql/close");
        assert_eq!(body(&close), json!({"cursor": "c2Vydg=="}));
        assert!(close.answer.seal().is_none());
    }

    #[test]
    fn eql_query_text_never_names_an_internal_counter() {
        use crate::querylang::eql;
        let f = scope().filters;
        for bad in [
            "any where _seq_no > 5",
            "any where `_seq_no` > 5",
            "process where _primary_term == 1",
            "any where _doc < 10",
            "sequence [any where _seq_no > 1] [any where true]",
        ] {
            assert!(eql(Some(json!({"query": bad})), &f).is_err(), "{bad}");
        }
        for ok in [
            "any where true",
            "process where _id == \"x\"",
            "any where _index == \"logs-a\"",
        ] {
            assert!(eql(Some(json!({"query": ok})), &f).is_ok(), "{ok}");
        }
    }

    /// Attack18e: EQL's pattern matches, case-insensitive equality and ranges on a metadata
    /// field are refused as in the query DSL (`expansion`), wherever the text names one.
    #[test]
    fn eql_pattern_matches_on_metadata_fields_are_refused() {
        use crate::querylang::eql;
        let f = scope().filters;
        for bad in [
            "any where _id : \"b*\"",
            "any where _id:\"B1\"",
            "any where _id like \"b*\"",
            "any where _id LIKE~ \"b*\"",
            "any where _id regex \"b.*\"",
            "any where _routing regex~ \"b.*\"",
            "any where startsWith(_id, \"b\")",
            "any where endsWith(`_id`, \"1\")",
            "any where stringContains(_id, \"b\")",
            "any where _id > \"b\"",
            "any where _version >= 2",
            "any where _id in~ (\"b1\")",
            "sequence [any where _id : \"b*\"] [any where true]",
        ] {
            let r = eql(Some(json!({"query": bad})), &f);
            assert_eq!(
                r.map(|_| ()).map_err(|e| e.kind),
                Err(crate::RejectKind::Forbidden),
                "{bad}"
            );
        }
        for ok in [
            "any where _id == \"b1\"",
            "any where _id != \"b1\" and user == \"b\"",
            "any where _id in (\"b1\", \"b2\")",
            "any where _index : \"logs*\"",
            "any where user like \"b*\" and n > 2",
        ] {
            assert!(eql(Some(json!({"query": ok})), &f).is_ok(), "{ok}");
        }
    }

    #[test]
    fn eql_uses_the_path_index_and_the_wrapped_filter() {
        let p = run(
            "POST",
            "/logs-*/_eql/search",
            None,
            json!({"query": "process where true", "size": 3}),
        )
        .unwrap();
        assert_eq!(p.action, "eql");
        assert_eq!(p.path, "/logs-a,logs-b/_eql/search");
        assert_eq!(
            p.query,
            crate::testing::pairs(&[("expand_wildcards", "open")])
        );
        assert_eq!(
            body(&p),
            json!({"query": "process where true", "size": 3,
                   "filter": token_filter(json!({"match_all": {}}))})
        );
        let err = run(
            "POST",
            "/secret/_eql/search",
            None,
            json!({"query": "any where true"}),
        )
        .unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
    }

    #[test]
    fn async_variants_and_state_parameters_are_refused() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("POST", "/_query/async", None),
            ("GET", "/_query/async/abc", None),
            ("GET", "/_query/queries", None),
            ("POST", "/_sql/async", None),
            ("GET", "/_sql/async/abc", None),
            ("POST", "/_sql/translate", None),
            ("GET", "/_eql/search/abc", None),
            ("GET", "/_eql/search/status/abc", None),
            ("DELETE", "/_eql/search/abc", None),
            (
                "POST",
                "/logs-a/_eql/search",
                Some("wait_for_completion_timeout=1s"),
            ),
            (
                "POST",
                "/logs-a/_eql/search",
                Some("keep_on_completion=true"),
            ),
            ("POST", "/logs-a/_eql/search", Some("keep_alive=1m")),
            ("POST", "/logs-a/_eql/search", Some("expand_wildcards=all")),
            ("POST", "/_sql", Some("format=txt")),
            ("POST", "/_sql", Some("format=csv")),
            ("POST", "/_query", Some("format=cbor")),
            ("GET", "/_query", None),
            ("POST", "/_sql", Some("delimiter=%3B")),
        ];
        for (m, p, q) in cases {
            let h = RequestHead {
                method: m,
                path: p,
                query: *q,
                content_type: Some("application/json"),
                content_encoding: None,
            };
            let err = es::plan(&h, &scope()).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{m} {p} {q:?}");
        }
    }

    mod props {
        use proptest::prelude::*;
        use serde_json::json;

        proptest! {
            #![proptest_config(crate::testing::cases(2000))]

            /// Any EQL text, alone and after a valid start: no panic, the same answer twice.
            #[test]
            fn any_eql_text_is_read_without_panic_and_alike(t in crate::testing::query_text()) {
                let f = crate::testing::scope().filters;
                for q in [t.clone(), format!("any where _id == \"b\" and {t}")] {
                    let first = crate::querylang::eql(Some(json!({"query": q})), &f);
                    let again = crate::querylang::eql(Some(json!({"query": q})), &f);
                    prop_assert_eq!(first, again, "{:?}", q);
                }
            }
        }
    }
}
