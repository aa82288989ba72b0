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

use super::error::printable;
use super::{rewrite, FilterSet, Rejection};

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
            ("timeout", Value::String(t)) if super::params::is_time_value(&t) => timeout = Some(t),
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
    super::fields::check(&field, super::fields::Position::Data)?;
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
    let inner = json!({ "bool": { "filter": clauses } });
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
    let shards = response
        .get("_shards")
        .cloned()
        .unwrap_or_else(|| json!({}));
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
mod tests {
    use super::*;

    fn tenant_a() -> FilterSet {
        FilterSet::new([("tenant".to_string(), "a".to_string())])
    }

    #[test]
    fn kibana_suggestion_request_becomes_a_filtered_terms_aggregation() {
        let body = json!({
            "field": "user", "string": "al", "size": 5,
            "index_filter": {"range": {"@timestamp": {"gte": "now-15m"}}},
        });
        let (out, spec) = search_body(Some(body), &tenant_a()).unwrap();
        assert_eq!(
            out,
            json!({
                "size": 0,
                "query": {"bool": {
                    "filter": [{"term": {"tenant": {"value": "a"}}}],
                    "must": [{"bool": {"filter": [
                        {"range": {"@timestamp": {"gte": "now-15m"}}},
                        {"prefix": {"user": {"value": "al", "case_insensitive": false}}},
                    ]}}],
                }},
                "aggs": {"terms_enum": {"terms": {
                    "field": "user", "size": 5, "order": {"_key": "asc"}, "include": "al.*",
                }}},
            })
        );
        assert_eq!(
            spec,
            Answer {
                prefix: "al".into(),
                case_insensitive: false,
                search_after: None,
                size: 5
            }
        );
    }

    #[test]
    fn kibana_value_suggestions_body_is_accepted() {
        // Kibana's unified search (autocomplete/terms_enum.ts): filters and a `_tier` terms
        // clause in `index_filter`, no size.
        let body = json!({
            "field": "user.keyword",
            "string": "al",
            "index_filter": {"bool": {"must": [
                {"range": {"@timestamp": {"gte": "2024-01-01T00:00:00.000Z", "format": "strict_date_optional_time"}}},
                {"terms": {"_tier": ["data_hot", "data_warm", "data_content", "data_cold"]}},
            ]}},
        });
        let (out, spec) = search_body(Some(body.clone()), &tenant_a()).unwrap();
        assert_eq!(spec.size, DEFAULT_SIZE);
        assert_eq!(
            out["query"]["bool"]["must"][0]["bool"]["filter"][0],
            body["index_filter"]
        );
        assert_eq!(
            out["query"]["bool"]["filter"],
            json!([{"term": {"tenant": {"value": "a"}}}])
        );
    }

    #[test]
    fn defaults_and_optional_clauses() {
        let (out, spec) = search_body(Some(json!({"field": "user"})), &tenant_a()).unwrap();
        assert_eq!(out["aggs"]["terms_enum"]["terms"]["size"], json!(10));
        assert!(out["aggs"]["terms_enum"]["terms"].get("include").is_none());
        assert_eq!(
            out["query"]["bool"]["must"][0],
            json!({"bool": {"filter": []}})
        );
        assert_eq!(spec.size, 10);

        let (out, _) = search_body(
            Some(
                json!({"field": "user", "string": "B.o", "case_insensitive": true,
                        "search_after": "bob", "timeout": "2s"}),
            ),
            &tenant_a(),
        )
        .unwrap();
        assert_eq!(out["timeout"], json!("2s"));
        assert_eq!(
            out["query"]["bool"]["must"][0]["bool"]["filter"],
            json!([
                {"prefix": {"user": {"value": "B.o", "case_insensitive": true}}},
                {"range": {"user": {"gt": "bob"}}},
            ])
        );
        assert_eq!(
            out["aggs"]["terms_enum"]["terms"]["include"],
            json!("[bB]\\.[oO].*")
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        let cases = [
            (None, "needs a body"),
            (Some(json!([])), "JSON object"),
            (Some(json!({"string": "a"})), "needs [field]"),
            (Some(json!({"field": "*"})), "[field]"),
            (Some(json!({"field": 3})), "[field]"),
            (Some(json!({"field": "_seq_no"})), "[_seq_no]"),
            (Some(json!({"field": "u", "size": -1})), "[size]"),
            (Some(json!({"field": "u", "size": 10001})), "[size]"),
            (Some(json!({"field": "u", "size": 0})), "[size]"),
            (Some(json!({"field": "u", "size": 1.5})), "[size]"),
            (Some(json!({"field": "u", "timeout": "soon"})), "[timeout]"),
            (
                Some(json!({"field": "u", "case_insensitive": "yes"})),
                "[case_insensitive]",
            ),
            (Some(json!({"field": "u", "foo": 1})), "[foo]"),
            (
                Some(json!({"field": "u", "index_filter": {"wrapper": {"query": "e30="}}})),
                "",
            ),
        ];
        for (body, needle) in cases {
            let err = search_body(body.clone(), &tenant_a()).unwrap_err();
            assert!(err.reason.contains(needle), "{body:?}: {}", err.reason);
        }
    }

    #[test]
    fn answer_has_the_terms_enum_shape_and_drops_keys_outside_the_request() {
        let spec = Answer {
            prefix: "b".into(),
            case_insensitive: true,
            search_after: Some("bb".into()),
            size: 2,
        };
        let response = json!({
            "took": 1, "timed_out": false,
            "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": 7, "relation": "eq"}, "hits": []},
            "aggregations": {"terms_enum": {"buckets": [
                {"key": "alpha", "doc_count": 1},
                {"key": "bb", "doc_count": 1},
                {"key": "Bc", "doc_count": 1},
                {"key": "bd", "doc_count": 3},
                {"key": "be", "doc_count": 3},
            ]}},
        });
        assert_eq!(
            answer(&spec, &response),
            Some(json!({
                "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0},
                "terms": ["bd", "be"],
                "complete": true,
            }))
        );
    }

    #[test]
    fn answer_is_incomplete_on_timeout_or_shard_failure_and_none_without_the_aggregation() {
        let spec = Answer {
            prefix: String::new(),
            case_insensitive: false,
            search_after: None,
            size: 10,
        };
        let timed_out = json!({"timed_out": true, "_shards": {"failed": 0},
            "aggregations": {"terms_enum": {"buckets": [{"key": 5, "doc_count": 1}]}}});
        assert_eq!(
            answer(&spec, &timed_out),
            Some(json!({"_shards": {"failed": 0}, "terms": ["5"], "complete": false}))
        );
        let failed = json!({"timed_out": false, "_shards": {"failed": 1},
            "aggregations": {"terms_enum": {"buckets": []}}});
        assert_eq!(answer(&spec, &failed).unwrap()["complete"], json!(false));
        assert_eq!(answer(&spec, &json!({"hits": {}})), None);
        // No shard searched (a wildcard that reached no index): no terms, complete.
        let nothing = json!({"_shards": {"total": 0, "failed": 0}, "hits": {"hits": []}});
        assert_eq!(
            answer(&spec, &nothing),
            Some(json!({"_shards": {"total": 0, "failed": 0}, "terms": [], "complete": true}))
        );
        let shards_but_no_aggs = json!({"_shards": {"total": 2, "failed": 0}});
        assert_eq!(answer(&spec, &shards_but_no_aggs), None);
    }

    #[test]
    fn prefix_matching_folds_case_only_when_asked() {
        assert!(has_prefix("Bob", "bo", true));
        assert!(!has_prefix("Bob", "bo", false));
        assert!(has_prefix("bob", "bo", false));
        assert!(!has_prefix("b", "bo", true));
        assert!(has_prefix("anything", "", false));
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Whatever the backend's buckets, the answer holds only keys that start with the
            /// prefix and sort after `search_after`, at most `size` of them, in bucket order.
            #[test]
            fn answers_never_hold_keys_outside_the_request(
                keys in prop::collection::vec("[a-cA-C.]{0,4}", 0..20),
                prefix in "[a-cA-C.]{0,2}",
                case_insensitive in any::<bool>(),
                search_after in prop::option::of("[a-c]{0,3}"),
                size in 1u64..8,
            ) {
                let spec = Answer { prefix: prefix.clone(), case_insensitive, search_after: search_after.clone(), size };
                let buckets: Vec<Value> = keys.iter().map(|k| json!({"key": k, "doc_count": 1})).collect();
                let response = json!({"_shards": {"failed": 0}, "timed_out": false,
                    "aggregations": {"terms_enum": {"buckets": buckets}}});
                let out = answer(&spec, &response).expect("an answer");
                let terms = out["terms"].as_array().expect("terms");
                prop_assert!(terms.len() as u64 <= size);
                let mut last = 0;
                for t in terms {
                    let t = t.as_str().expect("a string");
                    prop_assert!(has_prefix(t, &prefix, case_insensitive));
                    if let Some(a) = &search_after {
                        prop_assert!(t > a.as_str());
                    }
                    let pos = keys[last..].iter().position(|k| k == t).expect("from a bucket");
                    last += pos + 1;
                }
            }

            /// Whatever the accepted body, the forwarded query is the token's filters around
            /// the request's clauses, and the aggregation reads only the requested field.
            #[test]
            fn forwarded_search_always_carries_the_token_filters(
                field in "[a-z][a-z_.]{0,11}",
                string in ".{0,8}",
                case_insensitive in any::<bool>(),
                search_after in prop::option::of(".{0,8}"),
            ) {
                let mut body = json!({"field": field, "string": string, "case_insensitive": case_insensitive});
                if let Some(a) = &search_after {
                    body["search_after"] = json!(a);
                }
                let (out, _) = search_body(Some(body), &tenant_a()).expect("accepted");
                prop_assert_eq!(
                    &out["query"]["bool"]["filter"],
                    &json!([{"term": {"tenant": {"value": "a"}}}])
                );
                prop_assert_eq!(&out["size"], &json!(0));
                prop_assert_eq!(&out["aggs"]["terms_enum"]["terms"]["field"], &json!(field));
                let keys: Vec<&String> = out.as_object().expect("object").keys().collect();
                prop_assert!(keys.iter().all(|k| ["size", "timeout", "query", "aggs"].contains(&k.as_str())));
            }
        }
    }
}
