//! `_explain` answered from a search on the one document, with the token's filters (security.md
//! A3), so that a document outside the filters cannot be told from a missing one.
//!
//! Elasticsearch's own `_explain` looks the document up before it builds the query: a query
//! that fails to build (a prefix on a number, a bad date) fails only when the document exists,
//! an existence oracle for any id (found in review). So esgate never forwards `_explain`: it
//! sends `POST /{index}/_search` with `size: 1`, `explain: true` and the query
//! `bool{filter: [ids: [id]], must: [<the client's query wrapped in the token's filters>]}`,
//! which builds the query on every shard whatever the id. [`answer`] turns a hit into the
//! explain answer (`matched: true`) and no hit into exactly what Elasticsearch answers for a
//! missing document, `404 {"_index","_id","matched":false}`. A matched answer keeps the score
//! and, when asked for with `_source*`/`stored_fields`, the document as `get`; its explanation
//! is cut to the top level (the details hold index-wide term statistics over every tenant,
//! security.md B15/H1). The query parameters `q`, `df`, `analyzer`... are refused.
//!
//! Invariant: an answer with `matched: false` carries nothing but the requested index and id,
//! and neither its status nor its shape depends on whether the document exists.

use serde_json::{json, Map, Value};

use super::{Request, Spec, Transform, Upstream};
use crate::request::params::{Kind, Param, ParamSet};
use crate::{dsl::rewrite, FilterSet, Method, Rejection};

/// Response shaping only (no `q`, `df`, `analyzer`...).
const PARAMS: &[(&str, Kind)] = &[
    ("_source", Kind::Text),
    ("_source_includes", Kind::Text),
    ("_source_excludes", Kind::Text),
    ("stored_fields", Kind::Text),
    ("routing", Kind::Text),
    ("preference", Kind::Preference),
];

pub(crate) const EXPLAIN: Spec = Spec {
    action: "explain",
    params: ParamSet::own(PARAMS),
    index: true,
    body: true,
    dialect: None,
    prepare,
};

/// Forwarded as a `_search` on the one index the path names, its answer rebuilt by [`answer`].
fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    // One concrete index (or an alias of one): a wildcard would be narrowed to a list.
    let [name] = req.index()?.elements() else {
        return Err(Rejection::bad_request("explain takes exactly one index"));
    };
    if name.contains('*') {
        return Err(Rejection::bad_request("explain takes exactly one index"));
    }
    let name = name.clone();
    let lookup = Lookup::new(&name, req.path_id()?, &req.params)?;
    without_none_stored_fields(&mut req.params);
    let out = search_body(req.json_body()?, &req.scope.filters, &lookup)?;
    let mut up = Upstream::fixed(Method::Post, format!("/{name}/_search")).json(&out)?;
    up.to_resolve = vec![name];
    up.transform = Some(Transform::Explain(lookup));
    Ok(up)
}

/// The longest document id Elasticsearch accepts, in bytes.
const MAX_ID: usize = 512;

/// What the answer needs to know about the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The index as the client named it (a missing document is reported under it).
    pub index: String,
    pub id: String,
    /// `_source*` or `stored_fields` was asked for: a matched answer carries `get`.
    pub want_get: bool,
}

impl Lookup {
    pub fn new(index: &str, id: &str, params: &[Param]) -> Result<Lookup, Rejection> {
        if id.is_empty() || id.len() > MAX_ID {
            return Err(Rejection::bad_request(
                "a document id must be 1 to 512 bytes long",
            ));
        }
        // As Elasticsearch's explain API (`FetchSourceContext.parseFromRestRequest`):
        // `_source=false` turns the source off whatever `_source_includes`/`_excludes` say, and
        // the answer carries `get` only for stored fields or a source that is on (attack21a:
        // noida's search kept the included source where its explain API gave none).
        let source_off = params.iter().any(|(k, v)| k == "_source" && v == "false");
        let want_get = params.iter().any(|(k, v)| match &**k {
            "_source" => v != "false",
            "_source_includes" | "_source_excludes" => !source_off,
            "stored_fields" => true,
            _ => false,
        });
        Ok(Lookup {
            index: index.to_string(),
            id: id.to_string(),
            want_get,
        })
    }
}

/// `stored_fields=_none_` asks for the explained document without stored fields and, unless a
/// `_source*` parameter asks for it, without its source (Elasticsearch's explain API reads it
/// as a get). A search refuses it beside a source ("[stored_fields] cannot be disabled if
/// [_source] is requested", osmem a 500) and leaves `_id` out of its hits, so it is forwarded
/// as no `stored_fields` and, without a `_source*` parameter, `_source=false` (attack20a: every
/// explain with `stored_fields=_none_&_source_includes=...` failed, whatever the id).
fn without_none_stored_fields(params: &mut Vec<Param>) {
    let Some(i) = params
        .iter()
        .position(|(k, v)| k == "stored_fields" && v == "_none_")
    else {
        return;
    };
    params.remove(i);
    if !params.iter().any(|(k, _)| k.starts_with("_source")) {
        params.push(("_source".into(), "false".into()));
    }
}

/// The search to forward: the document by id, under the wrapped query, explained.
pub fn search_body(
    body: Option<Value>,
    filters: &FilterSet,
    lookup: &Lookup,
) -> Result<Value, Rejection> {
    let wrapped = rewrite::count(body, filters)?;
    Ok(json!({
        "size": 1,
        "explain": true,
        "track_total_hits": false,
        "query": {"bool": {
            "filter": [{"ids": {"values": [lookup.id]}}],
            "must": [wrapped["query"]],
        }},
    }))
}

/// The client's answer for the backend's `(status, body)` to that search: `None` when a
/// success does not have the shape of a search answer. Errors pass unchanged (they come from
/// building the query, the same for every id). The document is moved out of `response`, not
/// copied (it can be most of a 16 MiB answer).
pub fn answer(lookup: &Lookup, status: u16, mut response: Value) -> Option<(u16, Value)> {
    if !(200..300).contains(&status) {
        return Some((status, response));
    }
    let hits = response.pointer_mut("/hits/hits")?.as_array_mut()?;
    let Some(hit) = hits.first_mut() else {
        return Some((
            404,
            json!({"_index": lookup.index, "_id": lookup.id, "matched": false}),
        ));
    };
    let mut out = Map::new();
    out.insert("_index".into(), hit.get("_index")?.clone());
    out.insert("_id".into(), hit.get("_id")?.clone());
    out.insert("matched".into(), Value::Bool(true));
    let e = hit.get("_explanation")?;
    out.insert(
        "explanation".into(),
        json!({
            "value": e.get("value").cloned().unwrap_or(Value::Null),
            "description": e.get("description").cloned().unwrap_or(Value::Null),
            "details": [],
        }),
    );
    if lookup.want_get {
        let mut get = Map::new();
        get.insert("found".into(), Value::Bool(true));
        for key in ["_source", "fields"] {
            if let Some(v) = hit.get_mut(key) {
                get.insert(key.into(), v.take());
            }
        }
        out.insert("get".into(), Value::Object(get));
    }
    Some((200, Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_a() -> FilterSet {
        FilterSet::new([("tenant".to_string(), "a".to_string())])
    }

    fn lookup(want_get: bool) -> Lookup {
        Lookup {
            index: "logs-a".into(),
            id: "b2".into(),
            want_get,
        }
    }

    #[test]
    fn the_search_finds_the_id_under_the_wrapped_query_and_other_keys_are_refused() {
        let l = lookup(false);
        assert_eq!(
            search_body(
                Some(json!({"query": {"term": {"user": "x"}}})),
                &tenant_a(),
                &l
            )
            .unwrap(),
            json!({"size": 1, "explain": true, "track_total_hits": false,
                "query": {"bool": {"filter": [{"ids": {"values": ["b2"]}}],
                    "must": [{"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}],
                                       "must": [{"term": {"user": "x"}}]}}]}}})
        );
        for bad in [
            json!({"query": {"match_all": {}}, "_source": true}),
            json!({"query": {"wrapper": {"query": "e30="}}}),
        ] {
            assert!(search_body(Some(bad), &tenant_a(), &l).is_err());
        }
    }

    #[test]
    fn ids_are_checked_and_get_is_wanted_only_when_asked() {
        let p = |k: &str, v: &str| crate::testing::pairs(&[(k, v)]);
        assert!(Lookup::new("logs-a", "", &[]).is_err());
        assert!(Lookup::new("logs-a", &"x".repeat(513), &[]).is_err());
        assert!(!Lookup::new("logs-a", "a1", &[]).unwrap().want_get);
        assert!(
            !Lookup::new("logs-a", "a1", &p("_source", "false"))
                .unwrap()
                .want_get
        );
        assert!(
            Lookup::new("logs-a", "a1", &p("_source", "true"))
                .unwrap()
                .want_get
        );
        assert!(
            Lookup::new("logs-a", "a1", &p("stored_fields", "n"))
                .unwrap()
                .want_get
        );
        // `_source=false` wins over includes and excludes (in either order), not over stored
        // fields.
        let pp = |kv: &[(&str, &str)]| -> Vec<Param> {
            kv.iter()
                .map(|(k, v)| (k.to_string().into(), v.to_string().into()))
                .collect()
        };
        for (params, want) in [
            (
                pp(&[("_source", "false"), ("_source_includes", "user")]),
                false,
            ),
            (
                pp(&[("_source_excludes", "n"), ("_source", "false")]),
                false,
            ),
            (pp(&[("_source", "false"), ("stored_fields", "n")]), true),
            (pp(&[("_source_includes", "user")]), true),
            (pp(&[("_source", "true"), ("_source_excludes", "n")]), true),
        ] {
            let l = Lookup::new("logs-a", "a1", &params).unwrap();
            assert_eq!(l.want_get, want, "{params:?}");
        }
    }

    #[test]
    fn stored_fields_none_is_forwarded_as_no_stored_fields() {
        let p = |kv: &[(&str, &str)]| -> Vec<Param> {
            kv.iter()
                .map(|(k, v)| (k.to_string().into(), v.to_string().into()))
                .collect()
        };
        for (given, forwarded) in [
            (
                p(&[("stored_fields", "_none_")]),
                p(&[("_source", "false")]),
            ),
            (
                p(&[("stored_fields", "_none_"), ("_source_includes", "user")]),
                p(&[("_source_includes", "user")]),
            ),
            (
                p(&[
                    ("routing", "a"),
                    ("stored_fields", "_none_"),
                    ("_source", "n"),
                ]),
                p(&[("routing", "a"), ("_source", "n")]),
            ),
            (
                p(&[("stored_fields", "user")]),
                p(&[("stored_fields", "user")]),
            ),
            (p(&[("routing", "a")]), p(&[("routing", "a")])),
        ] {
            let mut params = given.clone();
            assert!(Lookup::new("logs-a", "a1", &params).is_ok());
            without_none_stored_fields(&mut params);
            assert_eq!(params, forwarded, "{given:?}");
        }
    }

    #[test]
    fn no_hit_is_exactly_the_missing_document_answer() {
        let empty = json!({"took": 1, "hits": {"hits": []}});
        assert_eq!(
            answer(&lookup(true), 200, empty).unwrap(),
            (
                404,
                json!({"_index": "logs-a", "_id": "b2", "matched": false})
            )
        );
    }

    #[test]
    fn a_hit_keeps_score_and_asked_get_and_loses_the_statistics() {
        let r = json!({"hits": {"hits": [{"_index": "logs-a", "_id": "a1", "_score": 0.18,
            "_source": {"tenant": "a"},
            "_explanation": {"value": 0.18, "description": "sum of:",
                "details": [{"description": "n, number of documents containing term",
                             "value": 2, "details": []}]}}]}});
        let mut l = lookup(true);
        l.id = "a1".into();
        assert_eq!(
            answer(&l, 200, r.clone()).unwrap(),
            (
                200,
                json!({"_index": "logs-a", "_id": "a1", "matched": true,
                    "explanation": {"value": 0.18, "description": "sum of:", "details": []},
                    "get": {"found": true, "_source": {"tenant": "a"}}})
            )
        );
        l.want_get = false;
        assert!(answer(&l, 200, r).unwrap().1.get("get").is_none());
    }

    #[test]
    fn errors_pass_and_odd_successes_are_refused() {
        let err = json!({"error": {"type": "query_shard_exception"}, "status": 400});
        assert_eq!(answer(&lookup(false), 400, err.clone()), Some((400, err)));
        assert_eq!(answer(&lookup(false), 200, json!({"matched": true})), None);
        assert_eq!(
            answer(
                &lookup(false),
                200,
                json!({"hits": {"hits": [{"_id": "x"}]}})
            ),
            None
        );
    }
}
