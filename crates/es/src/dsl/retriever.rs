//! Search retrievers (`retriever` in a `_search` body): each leaf that selects documents gets
//! the token's filters, at any nesting depth.
//!
//! Invariant: only the retriever types whose every document source can be filtered are
//! accepted, recursively: `standard` (its `query` is wrapped like a search query: a missing
//! query becomes the wrapped `match_all`), `knn` (the token's clauses lead its `filter`, as for a
//! top-level `knn`), `rrf` and `linear` (fusions of child retrievers, each rewritten). Every
//! key is on an allow-list and every query is checked by `query::check_query`; every kNN
//! search inside a retriever's `filter` gets the token's clauses in its own filter, and
//! `min_score` is refused (scores carry index-wide statistics). Other types
//! (`rule`, `pinned`, `text_similarity_reranker`, `rescorer`, ...) are refused, as is a `query` or `knn`
//! beside a `retriever` (Elasticsearch refuses the combination; esgate never has to guess which
//! one runs).

use serde_json::{Map, Value};

use crate::dsl::query;
use crate::error::printable;
use crate::{FilterSet, Rejection};

/// Keys of a search body that cannot stand beside a `retriever`.
const NOT_BESIDE: &[&str] = &["query", "knn", "sub_searches", "rank"];

/// Checks and rewrites the body's `retriever` (if any) in place.
pub fn rewrite_in_body(
    body: &mut Map<String, Value>,
    filters: &FilterSet,
) -> Result<bool, Rejection> {
    let Some(r) = body.get("retriever") else {
        return Ok(false);
    };
    if let Some(k) = NOT_BESIDE.iter().find(|k| body.contains_key(**k)) {
        return Err(Rejection::bad_request(format!(
            "[{k}] cannot be used together with [retriever]"
        )));
    }
    let out = rewrite(r, filters)?;
    body.insert("retriever".into(), out);
    Ok(true)
}

/// One retriever object (`{"<type>": {...}}`), checked and filtered.
pub fn rewrite(v: &Value, filters: &FilterSet) -> Result<Value, Rejection> {
    let Value::Object(m) = v else {
        return Err(Rejection::bad_request("[retriever] must be an object"));
    };
    let mut entries = m.iter();
    let (ty, body) = match (entries.next(), entries.next()) {
        (Some(one), None) => one,
        _ => {
            return Err(Rejection::bad_request(
                "[retriever] must have exactly one type",
            ))
        }
    };
    let Value::Object(body) = body else {
        return Err(Rejection::bad_request(format!(
            "[{}] must be an object",
            printable(ty)
        )));
    };
    let out = match ty.as_str() {
        "standard" => standard(body, filters)?,
        "knn" => knn(body, filters)?,
        "rrf" => rrf(body, filters)?,
        "linear" => linear(body, filters)?,
        other => {
            return Err(Rejection::forbidden(format!(
                "retriever type [{}] is not allowed for this token",
                printable(other)
            )))
        }
    };
    let mut wrapped = Map::new();
    wrapped.insert(ty.clone(), Value::Object(out));
    Ok(Value::Object(wrapped))
}

fn standard(
    body: &Map<String, Value>,
    filters: &FilterSet,
) -> Result<Map<String, Value>, Rejection> {
    let mut out = Map::new();
    let mut query = None;
    for (k, v) in body {
        match k.as_str() {
            "query" => {
                query::check_query(v)?;
                query = Some(v.clone());
            }
            "filter" => {
                out.insert(k.clone(), filter(v, filters)?);
            }
            // Scores carry index-wide statistics: a threshold would make counts depend on
            // other tenants' documents.
            "min_score" => return Err(crate::dsl::expansion::score_threshold(k)),
            "_name" if v.is_string() => {
                out.insert(k.clone(), v.clone());
            }
            _ => return Err(key_not_allowed(k, "standard")),
        }
    }
    out.insert("query".into(), query::wrap(query, filters));
    Ok(out)
}

fn knn(body: &Map<String, Value>, filters: &FilterSet) -> Result<Map<String, Value>, Rejection> {
    // The same keys as a top-level kNN search, checked by the query checker's `knn` arm.
    let mut as_query = Map::new();
    as_query.insert("knn".into(), Value::Object(body.clone()));
    query::check_query(&Value::Object(as_query))?;
    let mut out = body.clone();
    query::prepend_clauses(&mut out, filters.clauses());
    // A kNN query inside the filter picks its own candidates: it gets the clauses too.
    if let Some(f) = out.get_mut("filter") {
        query::filter_knn_queries(f, filters);
    }
    Ok(out)
}

/// A compound retriever (`rrf`, `linear`): its children rewritten by `child`, its own
/// `filter` checked (kNN searches inside it filtered), the numeric options in `numbers` and
/// `_name` kept; nothing else.
fn compound(
    ty: &str,
    body: &Map<String, Value>,
    filters: &FilterSet,
    numbers: &[&str],
    child: fn(&Value, &FilterSet) -> Result<Value, Rejection>,
) -> Result<Map<String, Value>, Rejection> {
    let mut out = Map::new();
    let mut children = None;
    for (k, v) in body {
        match k.as_str() {
            "retrievers" => match v {
                Value::Array(items) if !items.is_empty() => {
                    let rewritten = items
                        .iter()
                        .map(|i| child(i, filters))
                        .collect::<Result<Vec<_>, _>>()?;
                    children = Some(Value::Array(rewritten));
                }
                _ => {
                    return Err(Rejection::bad_request(
                        "[retrievers] must be a non-empty list",
                    ))
                }
            },
            key if numbers.contains(&key) && v.is_u64() => {
                out.insert(k.clone(), v.clone());
            }
            "filter" => {
                out.insert(k.clone(), filter(v, filters)?);
            }
            "_name" if v.is_string() => {
                out.insert(k.clone(), v.clone());
            }
            _ => return Err(key_not_allowed(k, ty)),
        }
    }
    let children =
        children.ok_or_else(|| Rejection::bad_request(format!("[{ty}] needs [retrievers]")))?;
    out.insert("retrievers".into(), children);
    Ok(out)
}

fn rrf(body: &Map<String, Value>, filters: &FilterSet) -> Result<Map<String, Value>, Rejection> {
    compound(
        "rrf",
        body,
        filters,
        &["rank_constant", "rank_window_size"],
        rewrite,
    )
}

/// `linear`: `retrievers` is a list of `{"retriever": ..., "weight": n, "normalizer": "..."}`.
fn linear(body: &Map<String, Value>, filters: &FilterSet) -> Result<Map<String, Value>, Rejection> {
    compound("linear", body, filters, &["rank_window_size"], linear_child)
}

fn linear_child(v: &Value, filters: &FilterSet) -> Result<Value, Rejection> {
    let Value::Object(m) = v else {
        return Err(Rejection::bad_request(
            "[linear] retrievers must be objects",
        ));
    };
    let mut out = Map::new();
    let mut child = None;
    for (k, v) in m {
        match k.as_str() {
            "retriever" => child = Some(rewrite(v, filters)?),
            "weight" if v.is_number() => {
                out.insert(k.clone(), v.clone());
            }
            "normalizer" if v.is_string() => {
                out.insert(k.clone(), v.clone());
            }
            _ => return Err(key_not_allowed(k, "linear")),
        }
    }
    let child = child.ok_or_else(|| Rejection::bad_request("[linear] needs [retriever]"))?;
    out.insert("retriever".into(), child);
    Ok(Value::Object(out))
}

/// A retriever's `filter` (a query or a list of queries), checked, with the token's clauses
/// in every kNN search inside it: a kNN query picks its nearest candidates before any sibling
/// filter applies, so other tenants' vectors would otherwise take its slots.
fn filter(v: &Value, filters: &FilterSet) -> Result<Value, Rejection> {
    match v {
        Value::Array(items) => items.iter().try_for_each(query::check_query)?,
        one => query::check_query(one)?,
    }
    let mut out = v.clone();
    query::filter_knn_queries(&mut out, filters);
    Ok(out)
}

fn key_not_allowed(key: &str, ty: &str) -> Rejection {
    Rejection::forbidden(format!(
        "key [{}] is not allowed in retriever [{ty}] for this token",
        printable(key)
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RejectKind;

    fn tenant() -> FilterSet {
        FilterSet::new([("tenant".to_string(), "a".to_string())])
    }

    fn clause() -> Value {
        json!({"term": {"tenant": {"value": "a"}}})
    }

    fn knn_leaf() -> Value {
        json!({"field": "v", "query_vector": [1.0, 0.0], "k": 2, "num_candidates": 5})
    }

    #[test]
    fn every_leaf_gets_the_token_filters_at_any_depth() {
        let r = json!({"rrf": {"rank_window_size": 10, "retrievers": [
            {"standard": {"query": {"match": {"message": "x"}}, "_name": "s"}},
            {"knn": knn_leaf()},
            {"rrf": {"retrievers": [
                {"standard": {}},
                {"knn": {"field": "v", "query_vector": [0.0, 1.0], "k": 1, "num_candidates": 2,
                    "filter": {"term": {"user": "x"}}}}
            ]}}
        ]}});
        let out = rewrite(&r, &tenant()).unwrap();
        let kids = &out["rrf"]["retrievers"];
        assert_eq!(out["rrf"]["rank_window_size"], 10);
        assert_eq!(
            kids[0]["standard"]["query"],
            json!({"bool": {"filter": [clause()], "must": [{"match": {"message": "x"}}]}})
        );
        assert_eq!(kids[0]["standard"]["_name"], "s");
        assert_eq!(kids[1]["knn"]["filter"], json!([clause()]));
        let inner = &kids[2]["rrf"]["retrievers"];
        assert_eq!(
            inner[0]["standard"]["query"],
            json!({"bool": {"filter": [clause()], "must": [{"match_all": {}}]}})
        );
        assert_eq!(
            inner[1]["knn"]["filter"],
            json!([clause(), {"term": {"user": "x"}}])
        );
    }

    #[test]
    fn linear_children_are_rewritten_with_their_weights() {
        let r = json!({"linear": {"rank_window_size": 5, "retrievers": [
            {"retriever": {"standard": {"query": {"term": {"user": "x"}}}}, "weight": 2, "normalizer": "minmax"},
            {"retriever": {"knn": knn_leaf()}, "weight": 0.5}
        ]}});
        let out = rewrite(&r, &tenant()).unwrap();
        let kids = &out["linear"]["retrievers"];
        assert_eq!(
            kids[0],
            json!({"retriever": {"standard": {"query": {"bool": {"filter": [clause()],
                "must": [{"term": {"user": "x"}}]}}}}, "weight": 2, "normalizer": "minmax"})
        );
        assert_eq!(kids[1]["retriever"]["knn"]["filter"], json!([clause()]));
        assert_eq!(kids[1]["weight"], 0.5);
        for bad in [
            json!({"linear": {"retrievers": [{"retriever": {"pinned": {}}}]}}),
            json!({"linear": {"retrievers": [{"retriever": {"standard": {}}, "query": {}}]}}),
        ] {
            assert_eq!(
                rewrite(&bad, &tenant()).unwrap_err().kind,
                RejectKind::Forbidden,
                "{bad}"
            );
        }
        for bad in [
            json!({"linear": {"retrievers": [{"weight": 1}]}}),
            json!({"linear": {"retrievers": [1]}}),
            json!({"linear": {}}),
        ] {
            assert_eq!(
                rewrite(&bad, &tenant()).unwrap_err().kind,
                RejectKind::BadRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn knn_searches_in_retriever_filters_get_the_token_clauses_and_min_score_is_refused() {
        // Issue 8.3 and 17.2.
        let knn = json!({"knn": knn_leaf()});
        let mut filtered = knn_leaf();
        filtered["filter"] = json!([clause()]);
        let filtered = json!({ "knn": filtered });
        let r = json!({"linear": {"retrievers": [
            {"retriever": {"standard": {"filter": [knn.clone()]}}, "weight": 1},
            {"retriever": {"knn": {"field": "v", "query_vector": [1.0], "k": 1,
                "num_candidates": 1, "filter": knn.clone()}}},
        ], "filter": knn.clone()}});
        let out = rewrite(&r, &tenant()).unwrap();
        let kids = &out["linear"]["retrievers"];
        assert_eq!(
            kids[0]["retriever"]["standard"]["filter"],
            json!([filtered.clone()])
        );
        assert_eq!(
            kids[1]["retriever"]["knn"]["filter"],
            json!([clause(), filtered.clone()])
        );
        assert_eq!(out["linear"]["filter"], filtered);
        for bad in [
            json!({"standard": {"min_score": 0.5}}),
            json!({"rrf": {"retrievers": [{"standard": {"min_score": 1}}]}}),
            json!({"rrf": {"retrievers": [{"standard": {}}], "min_score": 1}}),
        ] {
            assert_eq!(
                rewrite(&bad, &tenant()).unwrap_err().kind,
                RejectKind::Forbidden,
                "{bad}"
            );
        }
    }

    #[test]
    fn in_a_body_the_retriever_is_rewritten_and_cannot_sit_beside_a_query() {
        let mut body = json!({"retriever": {"knn": knn_leaf()}, "size": 3});
        let m = body.as_object_mut().unwrap();
        assert!(rewrite_in_body(m, &tenant()).unwrap());
        assert_eq!(m["retriever"]["knn"]["filter"], json!([clause()]));
        assert_eq!(m["size"], 3);
        let mut none = Map::new();
        assert!(!rewrite_in_body(&mut none, &tenant()).unwrap());
        for beside in [json!({"match_all": {}}), knn_leaf()] {
            let key = if beside.get("field").is_some() {
                "knn"
            } else {
                "query"
            };
            let mut m = Map::new();
            m.insert("retriever".into(), json!({"standard": {}}));
            m.insert(key.into(), beside);
            assert_eq!(
                rewrite_in_body(&mut m, &tenant()).unwrap_err().kind,
                RejectKind::BadRequest,
                "{key}"
            );
        }
    }

    #[test]
    fn unknown_types_keys_and_escaping_queries_are_refused() {
        let forbidden = [
            json!({"rule": {"retriever": {"standard": {}}, "ruleset_ids": ["x"], "match_criteria": {}}}),
            json!({"pinned": {"ids": ["b1"], "retriever": {"standard": {}}}}),
            json!({"text_similarity_reranker": {"retriever": {"standard": {}}, "field": "m", "inference_text": "x"}}),
            json!({"rescorer": {"retriever": {"standard": {}}, "rescore": {}}}),
            json!({"standard": {"sort": ["n"]}}),
            json!({"standard": {"query": {"wrapper": {"query": "e30="}}}}),
            json!({"standard": {"filter": {"terms": {"user": {"index": "logs-b", "id": "b1", "path": "user"}}}}}),
            json!({"knn": {"field": "v", "query_vector_builder": {}, "k": 1, "num_candidates": 1}}),
            json!({"knn": {"field": "v", "query_vector": [1], "k": 1, "num_candidates": 1, "filter": {"script": {}}}}),
            json!({"rrf": {"retrievers": [{"standard": {}}, {"pinned": {}}]}}),
            json!({"rrf": {"retrievers": [{"standard": {}}], "rank_constant": 1, "other": 1}}),
        ];
        for r in forbidden {
            assert_eq!(
                rewrite(&r, &tenant()).unwrap_err().kind,
                RejectKind::Forbidden,
                "{r}"
            );
        }
        let bad = [
            json!([]),
            json!({}),
            json!({"standard": {}, "knn": {}}),
            json!({"standard": 1}),
            json!({"rrf": {"retrievers": []}}),
            json!({"rrf": {}}),
        ];
        for r in bad {
            assert_eq!(
                rewrite(&r, &tenant()).unwrap_err().kind,
                RejectKind::BadRequest,
                "{r}"
            );
        }
    }
}
