//! `_terms_enum` answered by esgate as a filtered `terms` aggregation (security.md A10).
//!
//! Elasticsearch's `_terms_enum` reads the term dictionary, which holds every tenant's values,
//! so it is never forwarded. The request (`field`, `string`, `size`, `timeout`,
//! `case_insensitive`, `index_filter`, `search_after`) becomes a `_search` with `size: 0`, the
//! token's filters wrapped around `bool.filter` = [`index_filter` (checked like a query), a
//! `prefix` on `field`, a `range gt search_after`], and a `terms` aggregation on `field` ordered
//! by key ascending, restricted by an `include` pattern to the prefix (a multi-valued document
//! may carry other values). [`answer`] turns the search response into the `_terms_enum` shape
//! `{"_shards", "terms", "complete"}`, dropping any key that does not match the prefix or does
//! not sort after `search_after` (from multi-valued documents); a page can therefore hold fewer
//! than `size` terms even when more exist.
//!
//! Invariant: every term returned comes from a bucket of an aggregation whose query carries the
//! token's filters at the top level; nothing of the client's body is forwarded unchecked.

use serde_json::{json, Map, Value};

use super::{Request, Spec, Transform, Upstream};
use crate::error::printable;
use crate::request::params::ParamSet;
use crate::{
    dsl::{expansion, rewrite},
    FilterSet, Method, Rejection,
};

/// The aggregation's name in the forwarded search.
const AGG: &str = "terms_enum";
/// Elasticsearch's default `size`.
const DEFAULT_SIZE: u64 = 10;
/// The largest `size` esgate accepts (ES's `index.max_terms_count` default is 65536; the
/// terms aggregation's default bucket limit is 65536 too).
const MAX_SIZE: u64 = 10_000;
/// The longest `string` and `search_after` esgate accepts (a term is at most 32 KiB in ES,
/// but a suggestion prefix is short).
const MAX_STRING: usize = 1024;

pub(crate) const TERMS_ENUM: Spec = Spec {
    action: "terms_enum",
    params: ParamSet::NONE.indices_options().without_pre_filter(),
    index: true,
    body: true,
    dialect: None,
    prepare,
};

/// Forwarded as a `_search` on the path's expression (within the token's cost limits), its
/// answer rebuilt by [`answer`].
fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let up = Upstream::at_path(Method::Post, req.index()?, "/", "/_search");
    let (mut out, answer) = search_body(req.json_body()?, &req.scope.filters)?;
    // esgate's own `terms` aggregation: no histogram fields, passed on all the same.
    let fields = req.scope.guard.search(&mut out, &mut Vec::new())?;
    let mut up = up.typed(0, fields).json(&out)?;
    up.transform = Some(Transform::TermsEnum(answer));
    Ok(up)
}

/// What [`answer`] needs to know about the request to check and reshape the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub prefix: String,
    pub case_insensitive: bool,
    pub search_after: Option<String>,
    pub size: u64,
}

/// Checks a `_terms_enum` body and returns the `_search` body to forward and the answer spec.
pub fn search_body(body: Option<Value>, filters: &FilterSet) -> Result<(Value, Answer), Rejection> {
    let m = match body {
        Some(Value::Object(m)) => m,
        None => {
            return Err(Rejection::bad_request(
                "terms enum needs a body with [field]",
            ))
        }
        Some(_) => return Err(Rejection::bad_request("request body must be a JSON object")),
    };
    let mut field = None;
    let mut prefix = String::new();
    let mut size = DEFAULT_SIZE;
    let mut timeout = None;
    let mut case_insensitive = false;
    let mut index_filter = None;
    let mut search_after = None;
    for (k, v) in m {
        match (k.as_str(), v) {
            ("field", Value::String(f)) if valid_field(&f) => field = Some(f),
            ("string", Value::String(s)) if s.chars().count() <= MAX_STRING => prefix = s,
            ("size", Value::Number(n)) => match n.as_u64() {
                Some(n) if (1..=MAX_SIZE).contains(&n) => size = n,
                _ => {
                    return Err(Rejection::bad_request(format!(
                        "[size] must be an integer between 1 and {MAX_SIZE}"
                    )))
                }
            },
            ("timeout", Value::String(t)) if crate::request::params::is_time_value(&t) => {
                timeout = Some(t)
            }
            ("case_insensitive", Value::Bool(b)) => case_insensitive = b,
            ("index_filter", q) => {
                rewrite::check_query(&q)?;
                index_filter = Some(q);
            }
            ("search_after", Value::String(s)) if s.chars().count() <= MAX_STRING => {
                search_after = Some(s)
            }
            ("field" | "string" | "size" | "timeout" | "case_insensitive" | "search_after", _) => {
                return Err(Rejection::bad_request(format!(
                    "terms enum [{k}] has a value that is not allowed"
                )))
            }
            (key, _) => {
                return Err(Rejection::forbidden(format!(
                    "body key [{}] is not allowed for this token",
                    printable(key)
                )))
            }
        }
    }
    let Some(field) = field else {
        return Err(Rejection::bad_request("terms enum needs [field]"));
    };
    // Its terms come from a terms aggregation: the same field rule as any aggregation's.
    crate::dsl::fields::check(&field, crate::dsl::fields::Position::Data)?;
    let mut clauses: Vec<Value> = Vec::new();
    if let Some(q) = index_filter {
        clauses.push(q);
    }
    if !prefix.is_empty() {
        clauses.push(json!({ "prefix": { &field: {
            "value": prefix,
            "case_insensitive": case_insensitive,
        } } }));
    }
    if let Some(after) = &search_after {
        clauses.push(json!({ "range": { &field: { "gt": after } } }));
    }
    // The prefix and the `search_after` range are multi-term queries on `field`: on a field
    // that may be a metadata field (`_id`, `_routing`, ...) the DSL refuses them
    // (`dsl::expansion`), and so does this route, with its own words rather than the backend's
    // 400 (session 18: a `prefix` on `_id` was built and sent).
    if (!prefix.is_empty() || search_after.is_some()) && expansion::may_be_metadata(&field) {
        return Err(Rejection::forbidden(format!(
            "terms enum on [{}] with [string] or [search_after] is not allowed for this token: \
             it is a prefix or range query on a metadata field",
            printable(&field)
        )));
    }
    let inner = json!({ "bool": { "filter": clauses } });
    // What is built is held to the DSL's own rule too (no query esgate would refuse from a
    // client is sent on its behalf).
    rewrite::check_query(&inner)?;
    let mut terms = Map::new();
    terms.insert("field".into(), Value::String(field));
    terms.insert("size".into(), json!(size));
    terms.insert("order".into(), json!({ "_key": "asc" }));
    if !prefix.is_empty() {
        terms.insert(
            "include".into(),
            Value::String(include_pattern(&prefix, case_insensitive)),
        );
    }
    let mut out = Map::new();
    out.insert("size".into(), json!(0));
    if let Some(t) = timeout {
        out.insert("timeout".into(), Value::String(t));
    }
    out.insert("query".into(), rewrite::wrap(Some(inner), filters));
    out.insert(
        "aggs".into(),
        json!({ AGG: { "terms": Value::Object(terms) } }),
    );
    Ok((
        Value::Object(out),
        Answer {
            prefix,
            case_insensitive,
            search_after,
            size,
        },
    ))
}

/// Reshapes a successful search response into `_terms_enum`'s answer. `None` when the
/// response lacks the aggregation (the backend answered something else).
pub fn answer(spec: &Answer, response: &Value) -> Option<Value> {
    // A search over no shard (a wildcard that reached no index) has no aggregations at all
    // on Elasticsearch: no terms, not a malformed answer.
    let no_shards = response.pointer("/_shards/total").and_then(Value::as_u64) == Some(0)
        && response.get("aggregations").is_none();
    let none = Vec::new();
    let buckets = if no_shards {
        &none
    } else {
        response
            .pointer(&format!("/aggregations/{AGG}/buckets"))?
            .as_array()?
    };
    let mut terms = Vec::with_capacity(buckets.len());
    for b in buckets {
        let key = match (b.get("key_as_string"), b.get("key")) {
            (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => s.clone(),
            (None, Some(Value::Number(n))) => n.to_string(),
            (None, Some(Value::Bool(x))) => x.to_string(),
            _ => return None,
        };
        let after = spec
            .search_after
            .as_deref()
            .is_none_or(|a| key.as_str() > a);
        if after && has_prefix(&key, &spec.prefix, spec.case_insensitive) {
            terms.push(Value::String(key));
        }
    }
    terms.truncate(usize::try_from(spec.size).unwrap_or(usize::MAX));
    let mut shards = response
        .get("_shards")
        .cloned()
        .unwrap_or_else(|| json!({}));
    // Shards the pre-filter skipped are decided from every tenant's values (see
    // `ParamSet::without_pre_filter`, which the forwarded search also carries).
    if let Some(skipped) = shards.get_mut("skipped") {
        *skipped = json!(0);
    }
    let failed = shards.get("failed").and_then(Value::as_u64).unwrap_or(0);
    let timed_out = response
        .get("timed_out")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(json!({
        "_shards": shards,
        "terms": terms,
        "complete": failed == 0 && !timed_out,
    }))
}

/// A field name: printable ASCII or any non-control character, not empty, no wildcard (the
/// terms aggregation takes one concrete field).
fn valid_field(f: &str) -> bool {
    !f.is_empty() && f.len() <= 512 && !f.chars().any(|c| c.is_control() || c == '*')
}

/// One character's case variants when it has exactly one lower and one upper form.
fn case_pair(c: char) -> Option<(char, char)> {
    let mut lo = c.to_lowercase();
    let mut up = c.to_uppercase();
    match (lo.next(), lo.next(), up.next(), up.next()) {
        (Some(l), None, Some(u), None) if l != u => Some((l, u)),
        _ => None,
    }
}

fn fold(c: char) -> char {
    case_pair(c).map_or(c, |(l, _)| l)
}

/// Whether `key` starts with `prefix` (character-wise case folding when `ci`).
fn has_prefix(key: &str, prefix: &str, ci: bool) -> bool {
    if !ci {
        return key.starts_with(prefix);
    }
    let mut k = key.chars();
    prefix
        .chars()
        .all(|p| k.next().is_some_and(|c| fold(c) == fold(p)))
}

/// A Lucene regular expression matching every term that starts with `prefix`: each character
/// escaped (as `\c`, which Lucene reads as the literal character) or, case-insensitively, as a
/// `[xX]` class.
fn include_pattern(prefix: &str, ci: bool) -> String {
    let mut out = String::with_capacity(prefix.len() * 2 + 2);
    for c in prefix.chars() {
        match case_pair(c) {
            Some((l, u)) if ci => {
                out.push('[');
                out.push(l);
                out.push(u);
                out.push(']');
            }
            _ if c.is_alphanumeric() => out.push(c),
            _ => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out.push_str(".*");
    out
}

#[cfg(test)]
mod tests;
