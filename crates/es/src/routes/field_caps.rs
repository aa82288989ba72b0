//! `[/{index}]/_field_caps`: which fields the indices have, forwarded with a checked body.
//!
//! Invariant: the forwarded body holds only `fields` (a string or a list of strings);
//! `index_filter` is refused in every form (Elasticsearch decides it from index-wide values,
//! other tenants' documents included, issue #8.4) and a non-empty `runtime_mappings` could
//! shadow a filtered field. `include_empty_fields` is taken only as `true` (its default):
//! `false` drops the fields no document of an index holds a value for, every tenant's
//! documents counted, so a field listed told that other tenants' documents use it (review 15).

use serde_json::Value;

use super::{Request, Spec, Upstream};
use crate::request::params::{Kind, ParamSet};
use crate::{error, Method, Rejection};

const PARAMS: &[(&str, Kind)] = &[
    ("fields", Kind::Text),
    ("include_unmapped", Kind::Bool),
    // Elasticsearch knows these (`FieldCapabilitiesFetcher`; `-parent` in its response
    // rewriter) and refuses any other: esgate passes on only what it understands (attack18b).
    (
        "filters",
        Kind::ListOf(&[
            "+metadata",
            "-metadata",
            "-nested",
            "-multifield",
            "-parent",
        ]),
    ),
    ("types", Kind::Text),
    // `false` lists only the fields some document of the index, any tenant's, holds a value
    // for (the shard's field infos): which fields other tenants' documents use (review 15).
    // Kibana's data views send `true`.
    ("include_empty_fields", Kind::OneOf(&["true", ""])),
];

pub(crate) const FIELD_CAPS: Spec = Spec {
    action: "field_caps",
    params: ParamSet::own(PARAMS).indices_options(),
    index: true,
    body: true,
    dialect: None,
    prepare,
};

/// A GET without a body, a POST with the checked one.
fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let mut up = Upstream::at_path(Method::Get, req.index()?, "/", "/_field_caps");
    match body(req.json_body()?)? {
        Some(b) => {
            up.method = Method::Post;
            up.json(&b)
        }
        None => Ok(up),
    }
}

/// A `_field_caps` body: `fields` (a string or a list of strings) and an empty
/// `runtime_mappings`. `index_filter` and anything else is refused. `None` when there is
/// nothing to forward.
fn body(body: Option<Value>) -> Result<Option<Value>, Rejection> {
    let m = match body {
        None => return Ok(None),
        Some(Value::Object(m)) if m.is_empty() => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Rejection::bad_request("request body must be a JSON object")),
    };
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("fields", Value::String(f)) => {
                out.insert(k, Value::String(f));
            }
            ("fields", Value::Array(items)) if items.iter().all(Value::is_string) => {
                out.insert(k, Value::Array(items));
            }
            // Elasticsearch decides `index_filter` per shard from index-wide statistics (a
            // range against the min/max of a field over every document), before any term
            // clause of the token's filters is evaluated: which indices are listed would tell
            // whether other tenants' documents hold values in a range (issue #8.4).
            ("index_filter", _) => {
                return Err(Rejection::forbidden(
                    "body key [index_filter] is not allowed for this token: field_caps decides it from index-wide values, including other tenants' documents",
                ))
            }
            // Kibana sends an empty one; a non-empty one could shadow a filtered field.
            ("runtime_mappings", Value::Object(r)) if r.is_empty() => {}
            (key, _) => {
                return Err(Rejection::forbidden(format!(
                    "body key [{}] is not allowed for this token",
                    error::printable(key)
                )))
            }
        }
    }
    Ok(Some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::body as field_caps_body;
    use crate::routes::validate_query::tests::run;
    use crate::RejectKind;

    /// attack18b (L, deny by default): `filters` takes only the values Elasticsearch knows
    /// (`FieldCapabilitiesFetcher`: `+metadata`, `-metadata`, `-nested`, `-multifield`, and
    /// `-parent` in its response rewriter), as a comma list; any other value was passed through
    /// for the backend to judge, unread by esgate.
    #[test]
    fn filters_take_only_the_known_values() {
        for query in [
            "filters=-metadata",
            "filters=%2Bmetadata",
            "filters=-metadata,-nested,-multifield,-parent",
            "filters=-metadata,%20-nested",
            "filters=",
        ] {
            assert!(
                run("GET", "/logs-*/_field_caps", Some(query), None).is_ok(),
                "{query}"
            );
        }
        for query in [
            "filters=-empty",
            "filters=metadata",
            "filters=-metadata,+nested",
            "filters=-METADATA",
            "filters=-metadata;-nested",
        ] {
            let err = run("GET", "/logs-*/_field_caps", Some(query), None).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{query}");
        }
    }

    /// Review 15: `include_empty_fields=false` lists a field only when some document of the
    /// index holds a value for it, other tenants' documents included, so it is refused; the
    /// default (`true`, which Kibana's data views send explicitly) passes.
    #[test]
    fn only_the_default_include_empty_fields_passes() {
        for query in [
            "fields=*&include_empty_fields=false",
            "include_empty_fields=FALSE",
            "include_empty_fields=0",
        ] {
            let err = run("GET", "/logs-*/_field_caps", Some(query), None).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{query}");
            assert!(
                err.reason.contains("[include_empty_fields]"),
                "{query}: {}",
                err.reason
            );
        }
        for query in [
            "fields=*",
            "fields=*&include_empty_fields=true",
            "fields=*&include_empty_fields",
        ] {
            let permit = run("GET", "/logs-*/_field_caps", Some(query), None)
                .unwrap_or_else(|e| panic!("{query}: {}", e.reason));
            assert_eq!(permit.path, "/logs-a/_field_caps", "{query}");
            assert!(
                permit
                    .query
                    .iter()
                    .all(|(k, v)| k != "include_empty_fields" || v != "false"),
                "{query}: {:?}",
                permit.query
            );
        }
    }

    #[test]
    fn fields_pass_and_index_filter_is_refused_in_every_form() {
        let out = field_caps_body(Some(json!({"fields": "*", "runtime_mappings": {}})))
            .unwrap()
            .unwrap();
        assert_eq!(out, json!({"fields": "*"}));
        assert_eq!(field_caps_body(Some(json!({}))).unwrap(), None::<Value>);
        assert!(field_caps_body(Some(json!({"fields": 1}))).is_err());
        // Issue #8.4: decided from index-wide min/max values, whatever the query.
        for filter in [
            json!({"range": {"n": {"gte": 5}}}),
            json!({"match_all": {}}),
            json!({"term": {"tenant": "a"}}),
            json!(null),
        ] {
            let err =
                field_caps_body(Some(json!({"fields": "*", "index_filter": filter}))).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{filter}");
            assert!(err.reason.contains("[index_filter]"), "{}", err.reason);
        }
    }
}
