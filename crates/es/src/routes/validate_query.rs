//! `GET|POST [/{index}]/_validate/query`: the body (`query` only, or `?q=`) is checked like a
//! count's and wrapped in the token's filters, so an explanation describes the filtered query.
//!
//! Invariant: the answer says whether the query is valid and nothing of how the shard read it.
//! Refused by the route's parameter list, before its body is read: `rewrite=true` (multi-term
//! queries are expanded against the whole index, other tenants' terms included),
//! `all_shards=true` (one rewritten explanation per shard) and `explain=true` (review 16: the
//! explanation prints the query as the shard rewrote it, which shows the token its own filter,
//! `#tenant:a`, and the shard's index-wide values: a `range` on a date field whose bounds miss
//! every document of the shard, any tenant's, prints as `MatchNoDocsQuery`, one that holds them
//! all as an exists query, so repeated ranges bisect other tenants' min/max). Query types that
//! read other documents while being parsed (terms lookup, `more_like_this` with documents, ...)
//! are refused by `rewrite::check_query` as for a search.

use serde_json::Value;

use super::{Request, Spec, Upstream};
use crate::request::params::{Kind, ParamSet};
use crate::{dsl::rewrite, querylang::uri_search, FilterSet, Method, Rejection};

// `rewrite=true` expands multi-term queries against the whole index and `all_shards=true`
// explains each shard's rewritten query: both show other tenants' terms; `explain=true` shows
// the token's filter and the shard's rewrite of date ranges (index-wide min/max).
const PARAMS: &[(&str, Kind)] = &[
    ("explain", Kind::OneOf(&["false"])),
    ("rewrite", Kind::OneOf(&["false"])),
    ("all_shards", Kind::OneOf(&["false"])),
];

pub(crate) const VALIDATE_QUERY: Spec = Spec {
    action: "validate_query",
    params: ParamSet::own(PARAMS).indices_options().uri_search(),
    index: true,
    body: true,
    dialect: None,
    prepare,
};

fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let up = Upstream::at_path(Method::Post, req.index()?, "/", "/_validate/query");
    up.json(&body(
        req.json_body()?,
        req.uri_query.take(),
        &req.scope.filters,
    )?)
}

/// The body to forward: `{"query": wrap(query or match_all)}`.
pub fn body(
    body: Option<Value>,
    uri_query: Option<Value>,
    filters: &FilterSet,
) -> Result<Value, Rejection> {
    rewrite::count(uri_search::merge(body, uri_query)?, filters)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use crate::indices::resolution::{NameKind, ResolvedName};
    use crate::{self as es, Method, RejectKind, Resolution};

    use crate::testing::scope;

    /// Plan, prepare and authorize with every expression resolving to `logs-a`.
    pub(crate) fn run(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&str>,
    ) -> Result<es::Permit, es::Rejection> {
        let s = scope();
        let h = crate::testing::head(method, path, query);
        let prepared = es::prepare(es::plan(&h, &s)?, body.map(str::as_bytes), &h, &s)?;
        let names: BTreeMap<String, std::sync::Arc<[ResolvedName]>> = prepared
            .to_resolve()
            .iter()
            .map(|e| {
                (
                    e.clone(),
                    vec![ResolvedName {
                        name: "logs-a".into(),
                        kind: NameKind::Index,
                        indices: vec!["logs-a".into()],
                    }]
                    .into(),
                )
            })
            .collect();
        es::authorize(
            prepared,
            &Resolution {
                names,
                ..Default::default()
            },
            &s,
        )
    }

    fn json_body(p: &es::Permit) -> serde_json::Value {
        serde_json::from_slice(&p.body.as_ref().expect("body").bytes).expect("json")
    }

    fn tenant() -> serde_json::Value {
        json!([{"term": {"tenant": {"value": "a"}}}])
    }

    #[test]
    fn validate_query_forwards_the_wrapped_query() {
        for (method, path, query, body, inner) in [
            (
                "GET",
                "/_validate/query",
                Some("explain=false"),
                None,
                json!({"match_all": {}}),
            ),
            (
                "POST",
                "/logs-a/_validate/query",
                None,
                Some(r#"{"query":{"term":{"user":"x"}}}"#),
                json!({"term": {"user": "x"}}),
            ),
            (
                "GET",
                "/logs-*/_validate/query",
                Some("q=user:x&df=user"),
                None,
                json!({"query_string": {"query": "user:x", "default_field": "user"}}),
            ),
        ] {
            let p = run(method, path, query, body).unwrap();
            assert_eq!(p.action, "validate_query");
            assert_eq!(p.method, Method::Post);
            assert_eq!(p.path, "/logs-a/_validate/query", "{path}");
            let b = json_body(&p);
            assert_eq!(b["query"]["bool"]["filter"], tenant(), "{path}");
            assert_eq!(b["query"]["bool"]["must"], json!([inner]), "{path}");
            assert!(
                !p.query.iter().any(|(k, _)| k == "q" || k == "df"),
                "{:?}",
                p.query
            );
        }
    }

    #[test]
    fn validate_query_refuses_what_shows_foreign_terms_and_other_body_keys() {
        let cases: &[(&str, Option<&str>, Option<&str>, RejectKind)] = &[
            (
                "/logs-a/_validate/query",
                Some("rewrite=true"),
                None,
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_validate/query",
                Some("all_shards=true"),
                None,
                RejectKind::Forbidden,
            ),
            // Review 16: the explanation shows the token's filter and the shard's rewrite.
            (
                "/logs-a/_validate/query",
                Some("explain=true"),
                None,
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_validate/query",
                Some("explain"),
                Some(r#"{"query":{"range":{"ts":{"gte":"2030-01-01"}}}}"#),
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_validate/query",
                None,
                Some(r#"{"query":{"terms":{"user":{"index":"secret","id":"s1","path":"user"}}}}"#),
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_validate/query",
                None,
                Some(r#"{"query":{"match_all":{}},"aggs":{}}"#),
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_validate/query",
                Some("q=x"),
                Some(r#"{"query":{"match_all":{}}}"#),
                RejectKind::BadRequest,
            ),
            (
                "/logs-a/_validate/query",
                Some("df=x"),
                None,
                RejectKind::BadRequest,
            ),
            ("/secret/_validate/query", None, None, RejectKind::Forbidden),
            (
                "/logs-a/_validate/schema",
                None,
                None,
                RejectKind::Forbidden,
            ),
        ];
        for (path, query, body, kind) in cases {
            let err = run("POST", path, *query, *body).unwrap_err();
            assert_eq!(err.kind, *kind, "{path} {query:?}: {}", err.reason);
        }
    }

    #[test]
    fn uri_search_becomes_the_wrapped_body_query_on_search_and_count() {
        let want = json!([{"query_string": {"query": "user:bob*", "default_field": "user",
            "default_operator": "AND", "lenient": true}}]);
        for path in [
            "/_search",
            "/logs-a/_search",
            "/logs-*/_count",
            "/_all/_count",
        ] {
            for method in ["GET", "POST"] {
                let p = run(
                    method,
                    path,
                    Some("q=user:bob*;df=user&default_operator=AND&lenient=true"),
                    None,
                )
                .unwrap();
                let b = json_body(&p);
                assert_eq!(b["query"]["bool"]["filter"], tenant(), "{method} {path}");
                assert_eq!(b["query"]["bool"]["must"], want, "{method} {path}");
                let names: Vec<&str> = p.query.iter().map(|(k, _)| &**k).collect();
                assert!(
                    names.iter().all(|k| !super::uri_search::PARAMS.contains(k)),
                    "{names:?}"
                );
            }
        }
        // Other body keys stay beside the translated query.
        let p = run(
            "POST",
            "/logs-a/_search",
            Some("q=x"),
            Some(r#"{"size":0}"#),
        )
        .unwrap();
        assert_eq!(json_body(&p)["size"], 0);
    }

    #[test]
    fn uri_search_refuses_a_second_query_and_lone_companions() {
        for (path, q, body) in [
            (
                "/logs-a/_search",
                "q=x",
                Some(r#"{"query":{"match_all":{}}}"#),
            ),
            (
                "/logs-a/_count",
                "q=x",
                Some(r#"{"query":{"match_all":{}}}"#),
            ),
            ("/logs-a/_search", "df=user", None),
            ("/logs-a/_count", "analyzer=standard", None),
            ("/logs-a/_search", "q=x&default_operator=NOT", None),
        ] {
            let err = run("POST", path, Some(q), body).unwrap_err();
            assert_eq!(err.kind, RejectKind::BadRequest, "{path} {q}");
        }
        // Routes without URI search still refuse `q`.
        for path in ["/logs-a/_mapping", "/logs-a/_field_caps"] {
            let err = run("GET", path, Some("q=x"), None).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{path}");
        }
    }
}
