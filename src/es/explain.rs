//! `_explain` with the token's filters wrapped around the query (security.md A3), and an
//! answer that cannot tell a document outside the filters from a missing one.
//!
//! The request takes one explicit index (or an alias of one index) and a document id; the body
//! may hold only `query` (checked like `_count`'s), which is wrapped in the token's filters, so
//! a document outside them never matches. Elasticsearch answers a missing document with
//! `404 {"_index","_id","matched":false}` and a present, unmatched one with `200` plus an
//! explanation of why it did not match (which names the failing filter clause). [`answer`]
//! turns both into the same `404 {"_index","_id","matched":false}`, built by esgate so the key
//! order is the same too. A matched document keeps `get` (it is inside the filters) and its
//! score, but the explanation tree is cut to its top level: the details hold index-wide term
//! statistics (`n`, `N`: documents containing a term, over every tenant; security.md B15/H1).
//! The query parameters `q`, `df`, `analyzer`... (a query built from the URL) are refused.
//!
//! Invariant: an answer with `matched: false` never carries `explanation` or `get`, and its
//! status and shape do not depend on whether the document exists.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use super::{rewrite, FilterSet, Rejection};

/// Path components: everything but unreserved characters is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The longest document id Elasticsearch accepts, in bytes.
const MAX_ID: usize = 512;

/// The forwarded path for one checked index name and a (decoded) document id.
pub fn path(index: &str, id: &str) -> Result<String, Rejection> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(Rejection::bad_request(
            "a document id must be 1 to 512 bytes long",
        ));
    }
    Ok(format!(
        "/{index}/_explain/{}",
        utf8_percent_encode(id, SEGMENT)
    ))
}

/// The body to forward: `{"query": wrap(query or match_all)}`.
pub fn body(body: Option<Value>, filters: &FilterSet) -> Result<Value, Rejection> {
    rewrite::count(body, filters)
}

/// The client's answer for the backend's `(status, body)`: `None` when a success does not
/// have the shape of an explain answer. Errors other than a missing document pass unchanged.
pub fn answer(status: u16, response: &Value) -> Option<(u16, Value)> {
    let matched = response.get("matched").and_then(Value::as_bool);
    let is_answer = response.get("_id").is_some_and(Value::is_string)
        && response.get("_index").is_some_and(Value::is_string);
    match (status, matched) {
        (200, Some(true)) if is_answer => Some((200, matched_answer(response))),
        (200 | 404, Some(false)) if is_answer => Some((
            404,
            json!({
                "_index": response["_index"],
                "_id": response["_id"],
                "matched": false,
            }),
        )),
        (200..=299, _) => None,
        _ => Some((status, response.clone())),
    }
}

fn matched_answer(response: &Value) -> Value {
    let mut out = Map::new();
    out.insert("_index".into(), response["_index"].clone());
    out.insert("_id".into(), response["_id"].clone());
    out.insert("matched".into(), Value::Bool(true));
    if let Some(e) = response.get("explanation") {
        out.insert(
            "explanation".into(),
            json!({
                "value": e.get("value").cloned().unwrap_or(Value::Null),
                "description": e.get("description").cloned().unwrap_or(Value::Null),
                "details": [],
            }),
        );
    }
    if let Some(g) = response.get("get") {
        out.insert("get".into(), g.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_a() -> FilterSet {
        FilterSet::new([("tenant".to_string(), "a".to_string())])
    }

    #[test]
    fn query_is_wrapped_and_other_keys_refused() {
        assert_eq!(
            body(None, &tenant_a()).unwrap(),
            json!({"query": {"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}],
                                      "must": [{"match_all": {}}]}}})
        );
        assert_eq!(
            body(Some(json!({"query": {"term": {"user": "x"}}})), &tenant_a()).unwrap()["query"]
                ["bool"]["must"],
            json!([{"term": {"user": "x"}}])
        );
        assert!(body(
            Some(json!({"query": {"match_all": {}}, "_source": true})),
            &tenant_a()
        )
        .is_err());
        assert!(body(
            Some(json!({"query": {"wrapper": {"query": "e30="}}})),
            &tenant_a()
        )
        .is_err());
    }

    #[test]
    fn ids_are_encoded_into_one_path_segment() {
        assert_eq!(path("logs-a", "a1").unwrap(), "/logs-a/_explain/a1");
        assert_eq!(
            path("logs-a", "../x/_search?y#").unwrap(),
            "/logs-a/_explain/..%2Fx%2F_search%3Fy%23"
        );
        assert!(path("logs-a", "").is_err());
        assert!(path("logs-a", &"x".repeat(513)).is_err());
    }

    #[test]
    fn unmatched_and_missing_documents_get_the_same_answer() {
        let unmatched = json!({"_id": "b2", "_index": "logs-a", "matched": false,
            "explanation": {"description": "ConstantScore(tenant:a) doesn't match id 1",
                            "details": [], "value": 0.0}});
        let missing = json!({"_index": "logs-a", "_id": "b2", "matched": false});
        let a = answer(200, &unmatched).unwrap();
        let b = answer(404, &missing).unwrap();
        assert_eq!(
            a,
            (
                404,
                json!({"_index": "logs-a", "_id": "b2", "matched": false})
            )
        );
        assert_eq!(
            serde_json::to_vec(&a.1).unwrap(),
            serde_json::to_vec(&b.1).unwrap()
        );
        assert_eq!(a.0, b.0);
    }

    #[test]
    fn matched_documents_keep_get_and_lose_the_statistics() {
        let r = json!({"_index": "logs-a", "_id": "a1", "matched": true,
            "explanation": {"value": 0.18, "description": "weight(message:hello in 0)",
                "details": [{"description": "n, number of documents containing term",
                             "value": 2, "details": []}]},
            "get": {"found": true, "_source": {"tenant": "a"}}});
        assert_eq!(
            answer(200, &r).unwrap(),
            (
                200,
                json!({"_index": "logs-a", "_id": "a1", "matched": true,
                    "explanation": {"value": 0.18, "description": "weight(message:hello in 0)",
                                    "details": []},
                    "get": {"found": true, "_source": {"tenant": "a"}}})
            )
        );
    }

    #[test]
    fn other_errors_pass_and_odd_successes_are_refused() {
        let err = json!({"error": {"type": "index_not_found_exception"}, "status": 404});
        assert_eq!(answer(404, &err), Some((404, err.clone())));
        assert_eq!(answer(400, &err), Some((400, err)));
        assert_eq!(answer(200, &json!({"matched": true})), None);
        assert_eq!(answer(200, &json!({"hits": {}})), None);
    }
}
