//! The deprecated Elasticsearch 8 `_knn_search` endpoint, translated into the `_search` body
//! Elasticsearch itself recommends in its place: a top-level `knn` whose `filter` holds the
//! request's own `filter`, `size` set to `k` (the endpoint answers `k` hits), and the documented
//! response-shaping keys. The result then goes through `rewrite::search`, which checks every key
//! and puts the token's filters first in `knn.filter`.
//!
//! Invariant: only the documented keys of the endpoint are accepted (`knn` with `field`,
//! `query_vector`, `k`, `num_candidates`; `filter`, `_source`, `fields`, `docvalue_fields`,
//! `stored_fields`); anything else is refused, and no `query` is ever added (a query beside
//! `knn` is OR-ed with it and would bring in documents that are not nearest neighbours).

use serde_json::{Map, Value};

use super::{Request, Spec, Upstream};
use crate::dsl::rewrite;
use crate::error::printable;
use crate::request::params::{Kind, ParamSet};
use crate::{Method, Rejection};

const KNN_KEYS: &[&str] = &["field", "query_vector", "k", "num_candidates"];
const SHAPING_KEYS: &[&str] = &["_source", "fields", "docvalue_fields", "stored_fields"];

const PARAMS: &[(&str, Kind)] = &[("routing", Kind::Text)];

pub(crate) const KNN_SEARCH: Spec = Spec {
    action: "knn_search",
    params: ParamSet::own(PARAMS).without_pre_filter(),
    index: true,
    body: true,
    dialect: None,
    prepare,
};

/// Forwarded as a `_search` on the path's expression, within the token's cost limits.
fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let up = Upstream::at_path(Method::Post, req.index()?, "/", "/_search");
    let search = to_search(req.json_body()?)?;
    let mut out = rewrite::search(Some(search), &req.scope.filters)?;
    // No aggregations in a knn search's keys: no fields, passed on all the same.
    let fields = req.scope.guard.search(&mut out, &mut Vec::new())?;
    up.typed(0, fields).json(&out)
}

/// Turns a `_knn_search` body into the equivalent `_search` body (not yet checked or filtered:
/// pass it to `rewrite::search`).
pub fn to_search(body: Option<Value>) -> Result<Value, Rejection> {
    let obj = match body {
        Some(Value::Object(m)) => m,
        None => return Err(Rejection::bad_request("knn search needs a request body")),
        Some(_) => return Err(Rejection::bad_request("request body must be a JSON object")),
    };
    let mut knn: Option<Map<String, Value>> = None;
    let mut filter: Option<Value> = None;
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "knn" => match value {
                Value::Object(m) => knn = Some(m),
                _ => return Err(Rejection::bad_request("[knn] must be an object")),
            },
            "filter" => filter = Some(value),
            k if SHAPING_KEYS.contains(&k) => {
                out.insert(key, value);
            }
            other => {
                return Err(Rejection::forbidden(format!(
                    "body key [{}] is not allowed for knn search",
                    printable(other)
                )))
            }
        }
    }
    let Some(mut knn) = knn else {
        return Err(Rejection::bad_request("knn search needs [knn]"));
    };
    if let Some(k) = knn.keys().find(|k| !KNN_KEYS.contains(&k.as_str())) {
        return Err(Rejection::forbidden(format!(
            "key [{}] is not allowed in [knn] for knn search",
            printable(k)
        )));
    }
    for required in KNN_KEYS {
        if !knn.contains_key(*required) {
            return Err(Rejection::bad_request(format!("[knn] needs [{required}]")));
        }
    }
    let k = match knn.get("k").and_then(Value::as_u64) {
        Some(k) if k > 0 => k,
        _ => return Err(Rejection::bad_request("[k] must be a positive integer")),
    };
    if let Some(f) = filter {
        knn.insert("filter".into(), f);
    }
    out.insert("knn".into(), Value::Object(knn));
    out.insert("size".into(), Value::from(k));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests;
