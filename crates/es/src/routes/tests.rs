use super::spec;
use crate::request::endpoint::{classify, Endpoint};
use crate::Method::{self, Delete, Get, Head, Post};

/// Issue #11: the table gives every route the action, body and index handling it had when
/// they were spread over `endpoint`, `flow` and `Plan::needs_body` (one row per route).
#[test]
fn every_route_has_its_row() {
    // (method, path, action, reads the body, takes an index expression, one dialect only)
    let rows: &[(Method, &str, &str, bool, bool, bool)] = &[
        (Get, "/", "root", false, false, false),
        (Head, "/", "root", false, false, false),
        (Get, "/_search", "search", true, true, false),
        (Post, "/logs-a/_search", "search", true, true, false),
        (Get, "/logs-a/_count", "count", true, true, false),
        (Post, "/_msearch", "msearch", true, true, false),
        (Get, "/logs-a/_mapping", "mapping", false, true, false),
        (Post, "/_field_caps", "field_caps", true, true, false),
        (
            Get,
            "/_cluster/health",
            "cluster_health",
            false,
            true,
            false,
        ),
        (
            Get,
            "/_cluster/health/logs-a",
            "cluster_health",
            false,
            true,
            false,
        ),
        (
            Get,
            "/_resolve/index/logs-*",
            "resolve_index",
            false,
            true,
            false,
        ),
        (Post, "/_search/scroll", "scroll", true, false, false),
        (
            Delete,
            "/_search/scroll",
            "clear_scroll",
            true,
            false,
            false,
        ),
        (Post, "/logs-a/_pit", "open_pit", true, true, true),
        (Delete, "/_pit", "close_pit", true, false, true),
        (
            Post,
            "/logs-a/_search/point_in_time",
            "open_pit",
            true,
            true,
            true,
        ),
        (
            Delete,
            "/_search/point_in_time",
            "close_pit",
            true,
            false,
            true,
        ),
        (
            Post,
            "/logs-a/_async_search",
            "async_search_submit",
            true,
            true,
            false,
        ),
        (
            Get,
            "/_async_search/x",
            "async_search_get",
            false,
            false,
            false,
        ),
        (
            Get,
            "/_async_search/status/x",
            "async_search_status",
            false,
            false,
            false,
        ),
        (
            Delete,
            "/_async_search/x",
            "async_search_delete",
            false,
            false,
            false,
        ),
        (
            Post,
            "/_validate/query",
            "validate_query",
            true,
            true,
            false,
        ),
        (Post, "/logs-a/_knn_search", "knn_search", true, true, false),
        (Post, "/logs-a/_terms_enum", "terms_enum", true, true, false),
        (Get, "/_cat/indices", "cat_indices", false, true, false),
        (Get, "/logs-a/_explain/1", "explain", true, true, false),
        (Post, "/_query", "esql", true, false, false),
        (Post, "/_sql", "sql", true, false, false),
        (Post, "/_sql/close", "sql_close", true, false, false),
        (Post, "/logs-a/_eql/search", "eql", true, true, false),
    ];
    for &(method, path, action, body, index, dialect) in rows {
        let Ok(Endpoint::Allowed(route)) = classify(method, path) else {
            panic!("{method:?} {path} is not an allowed route");
        };
        let s = spec(&route);
        assert_eq!(s.action, action, "{method:?} {path}");
        assert_eq!(s.body, body, "{method:?} {path}: body");
        assert_eq!(s.index, index, "{method:?} {path}: index");
        assert_eq!(s.dialect.is_some(), dialect, "{method:?} {path}: dialect");
    }
}

/// `apply` and `content_type` on each transform.
mod transform {
    use serde_json::json;

    use crate::routes::*;

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

    /// `routes::apply` with all the memory it asks for.
    fn apply(t: &Transform, status: u16, body: &[u8]) -> Result<(u16, Vec<u8>), TransformError> {
        crate::routes::apply(t, status, body, &crate::memory::Meter::unlimited()).unwrap()
    }

    /// Session 11 review: a transformed answer's tree is claimed from the meter as it is built
    /// (an `_explain` with `_source` answers with the whole document: a 16 MiB document of
    /// small numbers parsed into gigabytes, unclaimed). Refused busy or too large by the meter,
    /// the answer is that refusal, not a transform of part of it nor "not JSON".
    #[test]
    fn transformed_answers_trees_are_claimed_from_the_meter() {
        use crate::memory::{budget, Meter, Refused};
        use crate::RejectKind;
        let numbers = vec!["1"; 50_000].join(",");
        let hit = format!(
            r#"{{"hits":{{"hits":[{{"_index":"logs-a","_id":"x","_explanation":{{"value":1.0,"description":"d"}},"_source":{{"n":[{numbers}]}}}}]}}}}"#
        );
        let terms = format!(
            r#"{{"aggregations":{{"terms_enum":{{"buckets":[{}]}}}}}}"#,
            vec![r#"{"key":"a","doc_count":1}"#; 20_000].join(",")
        );
        let rows = format!("[{}]", vec![r#"{"index":"a"}"#; 20_000].join(","));
        let cat = Transform::CatIndices(cat_indices::plan(&[], true).unwrap().1);
        let cases = [
            (Transform::Explain(lookup()), hit),
            (Transform::TermsEnum(spec()), terms),
            (cat, rows),
        ];
        for (t, body) in &cases {
            for (why, kind) in [
                (Refused::Busy, RejectKind::Busy),
                (Refused::TooLarge, RejectKind::TooLarge),
            ] {
                let small = budget(1 << 20, why);
                let refused = crate::routes::apply(t, 200, body.as_bytes(), &Meter::new(&small));
                assert_eq!(refused.unwrap_err().kind, kind, "{t:?}");
            }
            let all = Meter::new(&|_| Ok(()));
            let done = crate::routes::apply(t, 200, body.as_bytes(), &all).unwrap();
            assert!(done.is_ok(), "{t:?}");
            assert!(all.used() > 1 << 20, "{t:?}: {}", all.used());
        }
    }

    /// Session 12 review: what a transform writes (its answer's text, or the copy of an
    /// error answer it passes on) is claimed before it is written; before, only the tree was.
    #[test]
    fn transformed_answers_text_is_claimed_before_it_is_written() {
        use crate::memory::{budget, Meter, Refused};
        use crate::RejectKind;
        let error = format!(
            r#"{{"error":{{"type":"x","reason":"{}"}},"status":404}}"#,
            "r".repeat(100_000)
        );
        let short = budget(error.len() / 2, Refused::Busy);
        let t = Transform::TermsEnum(spec());
        let refused = crate::routes::apply(&t, 404, error.as_bytes(), &Meter::new(&short));
        assert_eq!(refused.unwrap_err().kind, RejectKind::Busy);
        let terms = format!(
            r#"{{"aggregations":{{"terms_enum":{{"buckets":[{}]}}}}}}"#,
            vec![r#"{"key":"a","doc_count":1}"#; 2_000].join(",")
        );
        let parsed = Meter::unlimited();
        crate::request::body::parse_value_within(terms.as_bytes(), &parsed).unwrap();
        let all = Meter::unlimited();
        let (_, out) = crate::routes::apply(&t, 200, terms.as_bytes(), &all)
            .unwrap()
            .unwrap();
        assert!(
            all.used() >= parsed.used() + out.len(),
            "{} claimed, {} for the tree and {} written",
            all.used(),
            parsed.used(),
            out.len()
        );
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
            cat_indices::plan(&crate::testing::pairs(&[("format", "json")]), true).unwrap();
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
mod transform_routes {
    use serde_json::json;

    use crate::indices::resolution::{NameKind, ResolvedName};
    use crate::request::endpoint::{self, Endpoint, Route};
    use crate::routes::*;
    use crate::{self as es, FilterSet, Method, Permit, Rejection, RequestHead, Resolution, Scope};

    fn scope(filtered: bool) -> Scope {
        let filters = if filtered {
            FilterSet::new([("tenant".to_string(), "a".to_string())])
        } else {
            FilterSet::default()
        };
        Scope {
            filters: filters.into(),
            indices: vec!["logs-*".to_string()].into(),
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
            let names: Vec<_> = e
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
            r.names.insert(e.clone(), names.into());
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
            crate::testing::pairs(&[
                ("format", "json"),
                ("h", "health,status,index,uuid,pri,rep")
            ])
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
        assert_eq!(p.query, crate::testing::pairs(&[("_source", "true")]));
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
