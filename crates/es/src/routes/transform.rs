//! Response transforms: routes esgate answers by rewriting the backend's response, not only
//! the request (`_terms_enum` from a filtered terms aggregation, `_cat/indices` rendered by
//! esgate, `_explain` with unmatched documents made indistinguishable from missing ones, the
//! token's view of `_cluster/health`). A route's `prepare` names its transform; the work of
//! each is in its route's module, this only dispatches.
//!
//! A [`Transform`] travels in the `Permit`; the proxy reads the upstream body whole (capped,
//! identity encoding asked for) and calls [`apply`]. Backend errors (non-2xx) pass unchanged
//! unless the route says otherwise (`_explain` turns its 404 into esgate's own body).
//!
//! Invariant: pure (no I/O). A successful backend answer that does not have the expected shape
//! is an error (the proxy answers 502), never relayed as is: relaying it could hand the client
//! what the transform exists to remove.

use serde_json::Value;

use super::{cat_indices, cluster_health, explain, terms_enum};

/// How the backend's answer is turned into the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transform {
    /// A `_search` answer becomes `{"_shards","terms","complete"}`.
    TermsEnum(terms_enum::Answer),
    /// `_cat/indices?format=json` rows are rendered with the token's columns.
    CatIndices(cat_indices::Table),
    /// `_explain`, asked as a search on the id: no hit answers like a missing document, a hit
    /// becomes the explain answer without statistics.
    Explain(explain::Lookup),
    /// `_cluster/health` on the token's indices: the view's counts only (`cluster_health`).
    ClusterHealth,
}

/// The backend answered a success that does not have the shape the route expects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the backend's answer to a transformed request does not have the expected shape")]
pub struct TransformError;

/// The content type of a transformed answer.
pub const JSON: &str = "application/json; charset=UTF-8";
pub const TEXT: &str = "text/plain; charset=UTF-8";

/// Turns the backend's `(status, body)` into the client's.
pub fn apply(t: &Transform, status: u16, body: &[u8]) -> Result<(u16, Vec<u8>), TransformError> {
    let success = (200..300).contains(&status);
    match t {
        Transform::Explain(lookup) => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return if success {
                    Err(TransformError)
                } else {
                    Ok((status, body.to_vec()))
                };
            };
            let (status, out) = explain::answer(lookup, status, &v).ok_or(TransformError)?;
            Ok((
                status,
                serde_json::to_vec(&out).map_err(|_| TransformError)?,
            ))
        }
        // 408: a `wait_for_status` that was not met (checked once, never waited for).
        Transform::ClusterHealth if success || status == 408 => {
            let v: Value = serde_json::from_slice(body).map_err(|_| TransformError)?;
            let out = cluster_health::view(&v).ok_or(TransformError)?;
            Ok((
                status,
                serde_json::to_vec(&out).map_err(|_| TransformError)?,
            ))
        }
        _ if !success => Ok((status, body.to_vec())),
        Transform::ClusterHealth => Err(TransformError),
        Transform::TermsEnum(spec) => {
            let v: Value = serde_json::from_slice(body).map_err(|_| TransformError)?;
            let out = terms_enum::answer(spec, &v).ok_or(TransformError)?;
            Ok((
                status,
                serde_json::to_vec(&out).map_err(|_| TransformError)?,
            ))
        }
        Transform::CatIndices(table) => {
            let v: Value = serde_json::from_slice(body).map_err(|_| TransformError)?;
            Ok((
                status,
                cat_indices::render(table, &v).ok_or(TransformError)?,
            ))
        }
    }
}

/// The content type of what [`apply`] returned for `status`: text only for a successful
/// `_cat` text table (errors stay the backend's JSON).
pub fn content_type(t: &Transform, status: u16) -> &'static str {
    match t {
        Transform::CatIndices(table)
            if (200..300).contains(&status) && table.format() == cat_indices::Format::Text =>
        {
            TEXT
        }
        _ => JSON,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> terms_enum::Answer {
        terms_enum::Answer {
            prefix: String::new(),
            case_insensitive: false,
            search_after: None,
            size: 10,
        }
    }

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn terms_enum_search_answer_is_reshaped() {
        let body = json!({"timed_out": false, "_shards": {"total": 1, "failed": 0},
            "aggregations": {"terms_enum": {"buckets": [{"key": "alice", "doc_count": 3}]}}});
        let (status, out) = apply(
            &Transform::TermsEnum(spec()),
            200,
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            parsed(&out),
            json!({"_shards": {"total": 1, "failed": 0}, "terms": ["alice"], "complete": true})
        );
    }

    fn lookup() -> explain::Lookup {
        explain::Lookup {
            index: "logs-a".into(),
            id: "x".into(),
            want_get: false,
        }
    }

    #[test]
    fn backend_errors_pass_unchanged_and_explain_misses_answer_like_missing() {
        let err = br#"{"error":{"type":"x"},"status":400}"#;
        for t in [
            Transform::TermsEnum(spec()),
            Transform::Explain(lookup()),
            Transform::CatIndices(cat_indices::plan(&[], true).unwrap().1),
        ] {
            assert_eq!(apply(&t, 400, err).unwrap(), (400, err.to_vec()), "{t:?}");
            assert_eq!(content_type(&t, 400), JSON);
        }
        assert_eq!(
            apply(&Transform::Explain(lookup()), 502, b"not json").unwrap(),
            (502, b"not json".to_vec())
        );
        let miss = br#"{"hits":{"hits":[]}}"#;
        let (status, out) = apply(&Transform::Explain(lookup()), 200, miss).unwrap();
        assert_eq!(status, 404);
        assert_eq!(
            parsed(&out),
            json!({"_index": "logs-a", "_id": "x", "matched": false})
        );
    }

    #[test]
    fn successes_of_the_wrong_shape_are_errors() {
        let cat = Transform::CatIndices(cat_indices::plan(&[], true).unwrap().1);
        for t in [
            Transform::TermsEnum(spec()),
            Transform::Explain(lookup()),
            cat,
        ] {
            assert_eq!(apply(&t, 200, b"<html>"), Err(TransformError), "{t:?}");
            assert_eq!(apply(&t, 200, b"{\"x\":1}"), Err(TransformError), "{t:?}");
        }
    }

    #[test]
    fn cat_text_tables_are_text() {
        let (_, text) = cat_indices::plan(&[], true).unwrap();
        let (_, json_table) =
            cat_indices::plan(&[("format".to_string(), "json".to_string())], true).unwrap();
        let rows = br#"[{"index":"logs-a","health":"green"}]"#;
        let t = Transform::CatIndices(text);
        assert_eq!(content_type(&t, 200), TEXT);
        assert_eq!(apply(&t, 200, rows).unwrap().1, b"green logs-a\n".to_vec());
        let j = Transform::CatIndices(json_table);
        assert_eq!(content_type(&j, 200), JSON);
        assert_eq!(
            parsed(&apply(&j, 200, rows).unwrap().1),
            json!([{"health": "green", "index": "logs-a"}])
        );
    }
}

/// The three routes through `plan` → `prepare` → `authorize`: what is forwarded and which
/// transform the permit carries.
#[cfg(test)]
mod route_tests {
    use serde_json::json;

    use super::*;
    use crate::indices::resolution::{NameKind, ResolvedName};
    use crate::request::endpoint::{self, Endpoint, Route};
    use crate::{self as es, FilterSet, Method, Permit, Rejection, RequestHead, Resolution, Scope};

    fn scope(filtered: bool) -> Scope {
        let filters = if filtered {
            FilterSet::new([("tenant".to_string(), "a".to_string())])
        } else {
            FilterSet::default()
        };
        Scope {
            filters,
            indices: vec!["logs-*".to_string()],
            ids: es::ids::continuation::Binding {
                token_id: "tok_test".into(),
                key: std::sync::Arc::new(es::ids::continuation::IdKey::new([1; 32])),
            },
            guard: Default::default(),
        }
    }

    use crate::testing::head;

    /// A wildcard resolves to `logs-a`, `logs-b` and the foreign alias `logs-sa` (-> `secret`);
    /// a name to itself, `logs-sa` to that alias.
    fn run(h: &RequestHead<'_>, body: Option<&[u8]>, filtered: bool) -> Result<Permit, Rejection> {
        let s = scope(filtered);
        let plan = es::plan(h, &s)?;
        let prepared = es::prepare(plan, body, h, &s)?;
        let mut r = Resolution::default();
        for e in prepared.to_resolve() {
            let names = e
                .split(',')
                .flat_map(|el| {
                    if el.contains('*') {
                        vec![
                            ResolvedName {
                                name: "logs-a".into(),
                                kind: NameKind::Index,
                                indices: vec!["logs-a".into()],
                            },
                            ResolvedName {
                                name: "logs-b".into(),
                                kind: NameKind::Index,
                                indices: vec!["logs-b".into()],
                            },
                            ResolvedName {
                                name: "logs-sa".into(),
                                kind: NameKind::Alias,
                                indices: vec!["secret".into()],
                            },
                        ]
                    } else if el == "logs-sa" {
                        vec![ResolvedName {
                            name: el.into(),
                            kind: NameKind::Alias,
                            indices: vec!["secret".into()],
                        }]
                    } else {
                        vec![ResolvedName {
                            name: el.into(),
                            kind: NameKind::Index,
                            indices: vec![el.into()],
                        }]
                    }
                })
                .collect();
            r.names.insert(e.clone(), names);
        }
        es::authorize(prepared, &r, &s)
    }

    fn body_of(p: &Permit) -> serde_json::Value {
        serde_json::from_slice(&p.body.as_ref().expect("a body").bytes).expect("JSON")
    }

    #[test]
    fn the_routes_are_classified_with_their_methods() {
        use Method::*;
        let allowed = [
            (Post, "/logs-a/_terms_enum", "terms_enum"),
            (Get, "/logs-%2A/_terms_enum", "terms_enum"),
            (Get, "/_cat/indices", "cat_indices"),
            (Get, "/_cat/indices/logs-a", "cat_indices"),
            (Get, "/logs-a/_explain/a1", "explain"),
            (Post, "/logs-a/_explain/a%2F1", "explain"),
        ];
        for (m, p, action) in allowed {
            match endpoint::classify(m, p) {
                Ok(Endpoint::Allowed(r)) => {
                    assert_eq!(super::super::spec(&r).action, action, "{p}")
                }
                other => panic!("{m:?} {p}: {other:?}"),
            }
        }
        assert_eq!(
            endpoint::classify(Post, "/logs-a/_explain/a%2F1"),
            Ok(Endpoint::Allowed(Route::Explain {
                index: "logs-a".into(),
                id: "a/1".into()
            }))
        );
        for (m, p) in [
            (Post, "/_cat/indices"),
            (Get, "/_terms_enum"),
            (Delete, "/logs-a/_terms_enum"),
            (Get, "/_explain/a1"),
            (Get, "/logs-a/_explain"),
            (Put, "/logs-a/_explain/a1"),
            (Get, "/_cat/indices/logs-a/x"),
            (Get, "/_cat/count"),
        ] {
            assert!(
                !matches!(endpoint::classify(m, p), Ok(Endpoint::Allowed(_))),
                "{m:?} {p}"
            );
        }
    }

    #[test]
    fn terms_enum_is_forwarded_as_a_filtered_search_on_the_narrowed_indices() {
        let p = run(
            &head("POST", "/logs-*/_terms_enum", None),
            Some(br#"{"field":"user","string":"al"}"#),
            true,
        )
        .unwrap();
        assert_eq!(p.action, "terms_enum");
        assert_eq!(p.method, Method::Post);
        assert_eq!(p.path, "/logs-a,logs-b/_search");
        let body = body_of(&p);
        assert_eq!(body["size"], json!(0));
        assert_eq!(
            body["query"]["bool"]["filter"],
            json!([{"term": {"tenant": {"value": "a"}}}])
        );
        assert!(matches!(
            p.answer.transform(),
            Some(Transform::TermsEnum(_))
        ));
        assert!(p.answer.seal().is_none());
    }

    #[test]
    fn terms_enum_refuses_query_parameters_and_foreign_indices() {
        let err = run(
            &head("POST", "/logs-a/_terms_enum", Some("q=x")),
            Some(br#"{"field":"user"}"#),
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind, es::RejectKind::Forbidden);
        let err = run(
            &head("POST", "/secret/_terms_enum", None),
            Some(br#"{"field":"user"}"#),
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind, es::RejectKind::Forbidden);
    }

    #[test]
    fn cat_indices_asks_for_json_rows_of_the_tokens_indices_only() {
        let p = run(
            &head("GET", "/_cat/indices", Some("format=json")),
            None,
            true,
        )
        .unwrap();
        assert_eq!(p.action, "cat_indices");
        assert_eq!(p.method, Method::Get);
        assert_eq!(p.path, "/_cat/indices/logs-a,logs-b");
        assert_eq!(
            p.query,
            vec![
                ("format".to_string(), "json".to_string()),
                (
                    "h".to_string(),
                    "health,status,index,uuid,pri,rep".to_string()
                )
            ]
        );
        assert!(p.body.is_none());
        assert!(matches!(
            p.answer.transform(),
            Some(Transform::CatIndices(_))
        ));
        let p = run(
            &head("GET", "/_cat/indices/logs-a", Some("h=index,dc")),
            None,
            false,
        )
        .unwrap();
        assert_eq!(p.path, "/_cat/indices/logs-a");
        assert_eq!(p.query[1].1, "index,docs.count");
    }

    #[test]
    fn cat_indices_refuses_counts_for_filtered_tokens_and_foreign_indices() {
        for (path, query) in [
            ("/_cat/indices", Some("h=index,docs.count")),
            ("/_cat/indices", Some("expand_wildcards=all")),
            ("/_cat/indices/secret", None),
            ("/_cat/indices/logs-sa", None),
        ] {
            assert!(
                run(&head("GET", path, query), None, true).is_err(),
                "{path} {query:?}"
            );
        }
    }

    #[test]
    fn explain_wraps_the_query_and_takes_one_index() {
        let p = run(
            &head("GET", "/logs-a/_explain/a%2F1", Some("_source=true")),
            Some(br#"{"query":{"match":{"message":"hello"}}}"#),
            true,
        )
        .unwrap();
        assert_eq!(p.action, "explain");
        assert_eq!(p.method, Method::Post);
        assert_eq!(p.path, "/logs-a/_search");
        assert_eq!(p.query, vec![("_source".to_string(), "true".to_string())]);
        assert_eq!(
            body_of(&p),
            json!({"size": 1, "explain": true, "track_total_hits": false,
            "query": {"bool": {"filter": [{"ids": {"values": ["a/1"]}}],
                "must": [{"bool": {
                    "filter": [{"term": {"tenant": {"value": "a"}}}],
                    "must": [{"match": {"message": "hello"}}],
                }}]}}})
        );
        assert_eq!(
            p.answer.transform(),
            Some(&Transform::Explain(explain::Lookup {
                index: "logs-a".into(),
                id: "a/1".into(),
                want_get: true,
            }))
        );
        for (path, query) in [
            ("/logs-*/_explain/a1", None),
            ("/logs-a,logs-b/_explain/a1", None),
            ("/_all/_explain/a1", None),
            ("/secret/_explain/s1", None),
            ("/logs-a/_explain/a1", Some("q=tenant:b")),
            ("/logs-a/_explain/a1", Some("df=user")),
        ] {
            assert!(
                run(&head("GET", path, query), None, true).is_err(),
                "{path} {query:?}"
            );
        }
    }
}
