//! What the cluster and its indices are, never what they hold: `GET|HEAD /` (name and
//! version), `[/{index}]/_mapping` and `_resolve/index/{name}`. Each is forwarded as a
//! bodiless GET on a checked path.
//!
//! Invariant: the path's expression is narrowed to the token's indices like a search's
//! (`authorize`), so a mapping or a resolved name is only ever one of an allowed index. The
//! `_resolve/index` answer also names, for each index, every alias on it and its data stream,
//! whatever their names: esgate reads it whole and keeps only the names the token's patterns
//! allow ([`allowed_names`]; review 15: another tenant's filtered alias on a shared index was
//! named).

use std::sync::Arc;

use serde_json::Value;

use super::{Request, Spec, Transform, Upstream};
use crate::indices::index::concrete_allowed;
use crate::request::params::{Kind, ParamSet};
use crate::{Method, Rejection};

const MAPPING_PARAMS: &[(&str, Kind)] = &[("local", Kind::Bool), ("master_timeout", Kind::Time)];

pub(crate) const ROOT: Spec = Spec {
    action: "root",
    params: ParamSet::NONE,
    index: false,
    body: false,
    dialect: None,
    prepare: root,
};

pub(crate) const MAPPING: Spec = Spec {
    action: "mapping",
    params: ParamSet::own(MAPPING_PARAMS).indices_options(),
    index: true,
    body: false,
    dialect: None,
    prepare: mapping,
};

pub(crate) const RESOLVE_INDEX: Spec = Spec {
    action: "resolve_index",
    params: ParamSet::NONE.indices_options(),
    index: true,
    body: false,
    dialect: None,
    prepare: resolve_index,
};

/// `GET|HEAD /`, in the client's method.
fn root(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    Ok(Upstream::fixed(req.method, "/"))
}

fn mapping(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    Ok(Upstream::at_path(
        Method::Get,
        req.index()?,
        "/",
        "/_mapping",
    ))
}

/// elasticsearch-py 9 sends a POST; it is forwarded as a GET, its answer read by
/// [`allowed_names`].
fn resolve_index(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let mut up = Upstream::at_path(Method::Get, req.index()?, "/_resolve/index/", "");
    up.transform = Some(Transform::ResolveIndex(Arc::clone(&req.scope.indices)));
    Ok(up)
}

/// A `_resolve/index` answer with only the names `patterns` allow: each index's `aliases`
/// (the key dropped when none is left, as Elasticsearch writes an index without aliases) and
/// `data_stream`, the `aliases` and `data_streams` entries and the indices each lists. `None`
/// when the answer is not an object.
pub fn allowed_names(patterns: &[String], mut answer: Value) -> Option<Value> {
    let allowed = |v: &Value| v.as_str().is_some_and(|n| concrete_allowed(n, patterns));
    let keep_allowed = |list: &mut Value| {
        if let Some(items) = list.as_array_mut() {
            items.retain(allowed);
        }
    };
    let out = answer.as_object_mut()?;
    if let Some(Value::Array(indices)) = out.get_mut("indices") {
        indices.retain(|i| allowed(&i["name"]));
        for index in indices.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(aliases) = index.get_mut("aliases") {
                keep_allowed(aliases);
                if aliases.as_array().is_some_and(Vec::is_empty) {
                    index.remove("aliases");
                }
            }
            if index.get("data_stream").is_some_and(|d| !allowed(d)) {
                index.remove("data_stream");
            }
        }
    }
    for (key, members) in [("aliases", "indices"), ("data_streams", "backing_indices")] {
        if let Some(Value::Array(entries)) = out.get_mut(key) {
            entries.retain(|e| allowed(&e["name"]));
            for entry in entries.iter_mut() {
                if let Some(list) = entry.get_mut(members) {
                    keep_allowed(list);
                }
            }
        }
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::allowed_names;

    /// Review 15: an answer names aliases and data streams whatever their names; only the
    /// token's are kept.
    #[test]
    fn a_resolved_answer_keeps_only_the_tokens_names() {
        let patterns = vec!["logs-*".to_string()];
        let answer = json!({
            "indices": [
                {"name": "logs-a", "aliases": ["logs-a-view", "tenant-b-private"], "attributes": ["open"]},
                {"name": "logs-b", "aliases": ["tenant-b-private"], "attributes": ["open"]},
                {"name": ".ds-logs-app-2026.01.01-000001", "data_stream": "logs-app", "attributes": ["hidden"]},
                {"name": "logs-c", "data_stream": "other-stream", "attributes": ["open"]},
                {"name": "secret", "attributes": ["open"]},
            ],
            "aliases": [
                {"name": "logs-all", "indices": ["logs-a", "secret"]},
                {"name": "tenant-b-private", "indices": ["logs-a"]},
            ],
            "data_streams": [
                {"name": "logs-app", "backing_indices": [".ds-logs-app-2026.01.01-000001"], "timestamp_field": "@timestamp"},
                {"name": "other-stream", "backing_indices": [".ds-other-stream-2026.01.01-000001"], "timestamp_field": "@timestamp"},
            ],
        });
        assert_eq!(
            allowed_names(&patterns, answer),
            Some(json!({
                "indices": [
                    {"name": "logs-a", "aliases": ["logs-a-view"], "attributes": ["open"]},
                    {"name": "logs-b", "attributes": ["open"]},
                    {"name": ".ds-logs-app-2026.01.01-000001", "data_stream": "logs-app", "attributes": ["hidden"]},
                    {"name": "logs-c", "attributes": ["open"]},
                ],
                "aliases": [{"name": "logs-all", "indices": ["logs-a"]}],
                "data_streams": [
                    {"name": "logs-app", "backing_indices": [".ds-logs-app-2026.01.01-000001"], "timestamp_field": "@timestamp"},
                ],
            }))
        );
        assert_eq!(allowed_names(&patterns, json!([])), None);
        let empty = json!({"indices": [], "aliases": [], "data_streams": []});
        assert_eq!(allowed_names(&patterns, empty.clone()), Some(empty));
    }
}
