use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Value};

use super::*;
use crate as es;
use crate::ids::continuation::IdKind;
use crate::routes::msearch::MAX_EXPRESSIONS;
use crate::{Method, Permit};

use crate::testing::scope;

use crate::testing::head;

fn as_indices(concrete: Vec<String>) -> Vec<es::indices::resolution::ResolvedName> {
    concrete
        .into_iter()
        .map(|n| es::indices::resolution::ResolvedName {
            indices: vec![n.clone()],
            name: n,
            kind: es::indices::resolution::NameKind::Index,
        })
        .collect()
}

fn resolution(pairs: &[(&str, &[&str])]) -> Resolution {
    Resolution {
        names: pairs
            .iter()
            .map(|(e, c)| {
                (
                    e.to_string(),
                    as_indices(c.iter().map(|s| s.to_string()).collect()).into(),
                )
            })
            .collect::<BTreeMap<_, _>>(),
        dialect: None,
        field_types: BTreeMap::new(),
    }
}

/// Runs the three steps; `resolve` maps each expression to concrete indices.
fn run(
    h: &RequestHead<'_>,
    body: Option<&[u8]>,
    resolve: impl Fn(&str) -> Vec<String>,
) -> Result<Permit, Rejection> {
    let s = scope();
    let plan = es::plan(h, &s)?;
    let prepared = es::prepare(plan, body, h, &s)?;
    let mut r = Resolution::default();
    for e in prepared.to_resolve() {
        r.names.insert(e.clone(), as_indices(resolve(e)).into());
    }
    es::authorize(prepared, &r, &s)
}

fn logs(_: &str) -> Vec<String> {
    vec!["logs-a".to_string(), "logs-b".to_string()]
}

fn body_json(p: &Permit) -> Value {
    let b = p.body.as_ref().expect("a body");
    serde_json::from_slice(&b.bytes).expect("json")
}

fn wrapped_match_all() -> Value {
    json!({"bool":{"filter":[{"term":{"tenant":{"value":"a"}}}],"must":[{"match_all":{}}]}})
}

#[test]
fn resolved_names_are_percent_encoded_in_the_forwarded_path() {
    // Elasticsearch allows `%` in an index name and percent-decodes a path parameter before
    // it splits it at commas: `logs-x%2Csecret` sent as it is would name `logs-x` and
    // `secret` (session 6 review). Each name must decode back to itself alone.
    let odd = |_: &str| vec!["logs-x%2Csecret".to_string(), "logs-é+1".to_string()];
    let p = run(&head("GET", "/logs-*/_search", None), None, odd).unwrap();
    assert_eq!(p.path, "/logs-x%252Csecret,logs-%C3%A9%2B1/_search");
    let p = run(&head("GET", "/_count", None), None, odd).unwrap();
    assert_eq!(p.path, "/logs-x%252Csecret,logs-%C3%A9%2B1/_count");
    // Plain names and the empty-resolution pair are unchanged.
    let p = run(&head("GET", "/logs-*/_search", None), None, logs).unwrap();
    assert_eq!(p.path, "/logs-a,logs-b/_search");
    for name in ["logs-x%2Csecret", "logs-é+1", "logs-a", "*", "-*"] {
        let sent = super::names_in_path(&[name]);
        assert!(!sent.contains(','), "{sent}");
        let back = percent_encoding::percent_decode_str(&sent)
            .decode_utf8()
            .unwrap();
        assert_eq!(back, name);
    }
}

#[test]
fn bodiless_search_gets_the_token_patterns_and_the_filter() {
    // LEGIT / BODY-43 / IDX-08
    let p = run(&head("GET", "/_search", Some("size=100")), None, logs).unwrap();
    assert_eq!(p.action, "search");
    assert_eq!(p.method, Method::Post);
    assert_eq!(p.path, "/logs-a,logs-b/_search");
    assert_eq!(
        p.query,
        crate::testing::pairs(&[
            ("size", "100"),
            ("expand_wildcards", "open"),
            ("pre_filter_shard_size", "2147483647")
        ])
    );
    assert_eq!(body_json(&p), json!({ "query": wrapped_match_all() }));
    assert_eq!(
        p.body.as_ref().map(|b| b.content_type),
        Some("application/json")
    );
    assert_eq!(p.indices, vec!["logs-a".to_string(), "logs-b".to_string()]);
}

#[test]
fn get_body_is_rewritten_like_post() {
    // BODY-44
    let p = run(
        &head("GET", "/logs-a/_search", None),
        Some(br#"{"query":{"term":{"user":"x"}}}"#),
        |_| vec!["logs-a".to_string()],
    )
    .unwrap();
    assert_eq!(p.path, "/logs-a/_search");
    assert_eq!(
        body_json(&p)["query"]["bool"]["must"],
        json!([{"term":{"user":"x"}}])
    );
}

#[test]
fn count_always_sends_a_wrapped_query() {
    // A20 / LEGIT-03
    let p = run(&head("GET", "/logs-*/_count", None), None, logs).unwrap();
    assert_eq!(p.path, "/logs-a,logs-b/_count");
    assert_eq!(body_json(&p), json!({ "query": wrapped_match_all() }));
}

#[test]
fn compressed_bodies_are_decoded_and_rewritten() {
    // ENC-13
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(br#"{"aggs":{"all":{"global":{}}}}"#).unwrap();
    let gz = e.finish().unwrap();
    let mut h = head("POST", "/logs-a/_search", None);
    h.content_encoding = Some("gzip");
    let err = run(&h, Some(&gz), logs).unwrap_err();
    assert_eq!(err.kind, RejectKind::Forbidden);
}

#[test]
fn deflate_bodies_are_decoded_too() {
    // ENC-14
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(br#"{"query":{"term":{"user":"x"}}}"#).unwrap();
    let z = e.finish().unwrap();
    let mut h = head("POST", "/logs-a/_search", None);
    h.content_encoding = Some("deflate");
    let p = run(&h, Some(&z), logs).unwrap();
    assert_eq!(
        body_json(&p)["query"]["bool"]["must"],
        json!([{"term":{"user":"x"}}])
    );
}

#[test]
fn response_shaping_and_field_parameters_that_stay_inside_the_filter_are_kept() {
    // ENC-08: fine once the query is wrapped.
    let q = "stored_fields=a&docvalue_fields=b&_source=c&sort=t:desc&typed_keys=true&rest_total_hits_as_int=true";
    let p = run(&head("GET", "/logs-a/_search", Some(q)), None, logs).unwrap();
    let names: Vec<&str> = p.query.iter().map(|(n, _)| &**n).collect();
    assert_eq!(
        names,
        [
            "stored_fields",
            "docvalue_fields",
            "_source",
            "typed_keys",
            "rest_total_hits_as_int",
            "expand_wildcards",
            "pre_filter_shard_size"
        ]
    );
    // `?sort=` travels in the body, where its doc-id positions are known (see `ordinals`).
    assert_eq!(body_json(&p)["sort"], json!([{"t": {"order": "desc"}}]));
    assert!(p.answer.sort_seal().is_none());
}

#[test]
fn doc_id_sorts_are_sealed_in_searches_msearches_and_async_searches() {
    let p = run(
        &head("GET", "/logs-a/_search", Some("sort=_doc:desc")),
        None,
        logs,
    )
    .unwrap();
    assert_eq!(body_json(&p)["sort"], json!([{"_doc": {"order": "desc"}}]));
    assert!(matches!(
        p.answer.sort_seal(),
        Some(es::ids::ordinals::SortSeal::Search(_))
    ));
    let mut h = head("POST", "/_msearch", None);
    h.content_type = Some("application/x-ndjson");
    let body = b"{}\n{\"sort\":[\"n\"]}\n{}\n{\"sort\":{\"t\":\"desc\",\"_doc\":\"desc\"}}\n";
    let p = run(&h, Some(body), logs).unwrap();
    match p.answer.sort_seal() {
        Some(es::ids::ordinals::SortSeal::Msearch(items)) => {
            assert_eq!(items.len(), 2);
            assert!(items[0].is_none() && items[1].is_some());
        }
        other => panic!("{other:?}"),
    }
    let mut h = head("POST", "/logs-a/_async_search", None);
    h.content_type = Some("application/json");
    let p = run(&h, Some(br#"{"sort":["_doc"]}"#), logs).unwrap();
    assert!(matches!(
        p.answer.sort_seal(),
        Some(es::ids::ordinals::SortSeal::Async(_))
    ));
    // A scan's sort is dropped; any other doc-id sort under scroll is refused.
    let p = run(
        &head("POST", "/logs-a/_search", Some("scroll=1m")),
        Some(br#"{"sort":"_doc"}"#),
        logs,
    )
    .unwrap();
    assert_eq!(body_json(&p).get("sort"), None);
    assert!(p.answer.sort_seal().is_none());
    let err = run(
        &head(
            "POST",
            "/logs-a/_search",
            Some("scroll=1m&sort=t:desc,_doc"),
        ),
        None,
        logs,
    )
    .unwrap_err();
    assert_eq!(err.kind, RejectKind::Forbidden);
    // A raw doc id in search_after is refused.
    let err = run(
        &head("POST", "/logs-a/_search", None),
        Some(br#"{"sort":["t","_doc"],"search_after":[1,5]}"#),
        logs,
    )
    .unwrap_err();
    assert_eq!(err.kind, RejectKind::Forbidden);
    // A point in time (search and async search): the tiebreaker past the sort is sealed,
    // and a raw tiebreaker in search_after is refused.
    let pit = crate::ids::continuation::seal(&scope().ids, IdKind::Pit, "backend-pit");
    for (path, async_search) in [("/_search", false), ("/_async_search", true)] {
        let body = json!({"pit": {"id": pit}, "sort": [{"t": "desc"}]}).to_string();
        let p = run(&head("POST", path, None), Some(body.as_bytes()), logs).unwrap();
        assert_eq!(body_json(&p)["pit"]["id"], json!("backend-pit"));
        match (p.answer.sort_seal(), async_search) {
            (Some(es::ids::ordinals::SortSeal::Async(_)), true)
            | (Some(es::ids::ordinals::SortSeal::Search(_)), false) => {}
            (other, _) => panic!("{path}: {other:?}"),
        }
        let body = json!({"pit": {"id": pit}, "sort": [{"t": "desc"}], "search_after": [1, 9]});
        let err = run(
            &head("POST", path, None),
            Some(body.to_string().as_bytes()),
            logs,
        )
        .unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden, "{path}");
    }
}

/// Issues #8.2/#17.3 and #17.5: URI parameters naming internal counters, and `slice`
/// without a scroll or a point in time, never reach the backend.
#[test]
fn internal_counter_parameters_and_unscrolled_slices_are_refused() {
    let cases = [
        (
            "/logs-a/_search",
            "sort=_seq_no:desc",
            RejectKind::Forbidden,
        ),
        (
            "/logs-a/_search",
            "sort=n,_primary_term",
            RejectKind::Forbidden,
        ),
        (
            "/logs-a/_search",
            "docvalue_fields=_seq_no",
            RejectKind::Forbidden,
        ),
        (
            "/logs-a/_search",
            "stored_fields=_primary_term",
            RejectKind::Forbidden,
        ),
        (
            "/logs-a/_search",
            "seq_no_primary_term=true",
            RejectKind::Forbidden,
        ),
        (
            "/logs-a/_search",
            "seq_no_primary_term",
            RejectKind::Forbidden,
        ),
        (
            "/logs-a/_search",
            "q=_seq_no:%5B0%20TO%205%5D",
            RejectKind::Forbidden,
        ),
        ("/logs-a/_search", "q=x&df=_seq_no", RejectKind::Forbidden),
        ("/logs-a/_count", "q=_primary_term:1", RejectKind::Forbidden),
        (
            "/logs-a/_search",
            "docvalue_fields=_source",
            RejectKind::BadRequest,
        ),
    ];
    for (path, q, want) in cases {
        let got = run(&head("GET", path, Some(q)), None, logs);
        assert_eq!(got.map(|_| ()).map_err(|r| r.kind), Err(want), "{path}?{q}");
    }
    for q in [
        "sort=_doc",
        "sort=@timestamp:desc,_doc:asc",
        "seq_no_primary_term=false",
    ] {
        assert!(
            run(&head("GET", "/logs-a/_search", Some(q)), None, logs).is_ok(),
            "{q}"
        );
    }
    let slice = br#"{"slice": {"id": 0, "max": 2}}"#;
    for (path, q) in [("/logs-a/_search", None), ("/logs-a/_async_search", None)] {
        let got = run(&head("POST", path, q), Some(slice), logs);
        assert_eq!(
            got.map(|_| ()).map_err(|r| r.kind),
            Err(RejectKind::BadRequest),
            "{path}"
        );
    }
    let ms = b"{}\n{\"slice\": {\"id\": 0, \"max\": 2}}\n";
    let mut h = head("POST", "/logs-a/_msearch", None);
    h.content_type = Some("application/x-ndjson");
    let got = run(&h, Some(ms), logs);
    assert_eq!(
        got.map(|_| ()).map_err(|r| r.kind),
        Err(RejectKind::BadRequest)
    );
    let scrolled = run(
        &head("POST", "/logs-a/_search", Some("scroll=1m")),
        Some(slice),
        logs,
    );
    assert!(scrolled.is_ok(), "{scrolled:?}");
}

#[test]
fn resolution_to_a_foreign_index_is_refused_without_naming_it() {
    // IDX-16: alias logs-sa -> secret.
    let s = scope();
    let h = head("GET", "/logs-sa/_search", None);
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
    let mut r = Resolution::default();
    r.names.insert(
        "logs-sa".into(),
        vec![es::indices::resolution::ResolvedName {
            name: "logs-sa".into(),
            kind: es::indices::resolution::NameKind::Alias,
            indices: vec!["secret".into()],
        }]
        .into(),
    );
    let err = es::authorize(prepared, &r, &s).unwrap_err();
    assert_eq!(err.kind, RejectKind::Forbidden);
    assert!(!err.reason.contains("secret"), "{}", err.reason);
    // IDX-17: data-stream backing indices of an allowed stream are fine.
    let ok = run(&head("GET", "/logs-app/_search", None), None, |_| {
        vec![".ds-logs-app-2026.01.01-000001".to_string()]
    });
    assert!(ok.is_ok());
}

/// A wildcard the token's patterns cannot reach resolves to foreign indices only: the
/// permit searches no index (`*,-*`), never the foreign ones.
#[test]
fn unreachable_wildcards_search_nothing() {
    let secret = |_: &str| vec!["secret".to_string(), ".security-7".to_string()];
    for path in ["/s*/_search", "/sec*,.secur*/_count"] {
        let p = run(&head("GET", path, None), None, secret).unwrap();
        assert!(p.path.starts_with("/*,-*/"), "{path}: {}", p.path);
        assert!(p.indices.is_empty(), "{path}");
    }
    // Beside an allowed index only the allowed one remains.
    let mixed = |e: &str| {
        if e.starts_with("logs") {
            vec!["logs-a".to_string()]
        } else {
            vec!["secret".to_string()]
        }
    };
    let p = run(&head("GET", "/logs-a,sec*/_search", None), None, mixed).unwrap();
    assert_eq!(p.path, "/logs-a/_search");
}

/// esql16: an ES|QL view (9.4 on) is an index abstraction `_resolve/index` never lists, and
/// Elasticsearch runs its stored query (any source, ENRICH, LOOKUP JOIN...) when `FROM` names
/// it. A name in a query text that the resolution did not list is refused (404), never
/// forwarded for the backend to resolve; a search path keeps forwarding it (views are not
/// searchable there).
#[test]
fn query_text_names_the_resolution_did_not_list_are_refused() {
    let s = scope();
    let cases: &[(&str, &str, &str)] = &[
        (
            "/_query",
            r#"{"query":"FROM logs-view | LIMIT 1"}"#,
            "logs-view",
        ),
        (
            "/_query",
            r#"{"query":"FROM logs-a, logs-view"}"#,
            "logs-a,logs-view",
        ),
        (
            "/_query",
            r#"{"query":"FROM logs-view, logs-*"}"#,
            "logs-view,logs-*",
        ),
        (
            "/_sql",
            r#"{"query":"SELECT * FROM \"logs-view\""}"#,
            "logs-view",
        ),
    ];
    for (path, body, expr) in cases {
        let h = head("POST", path, None);
        let prepared =
            es::prepare(es::plan(&h, &s).unwrap(), Some(body.as_bytes()), &h, &s).unwrap();
        assert_eq!(prepared.to_resolve(), &[expr.to_string()], "{body}");
        let listed: &[&str] = if expr.contains("logs-a") || expr.contains('*') {
            &["logs-a"]
        } else {
            &[]
        };
        let err = es::authorize(prepared, &resolution(&[(expr, listed)]), &s).unwrap_err();
        assert_eq!(err.kind, RejectKind::NotFound, "{body}: {err:?}");
        assert!(err.reason.contains("[logs-view]"), "{}", err.reason);
    }
    // What the resolution lists passes as before.
    let h = head("POST", "/_query", None);
    let body = br#"{"query":"FROM logs-a, logs-b"}"#;
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), Some(body), &h, &s).unwrap();
    let permit = es::authorize(
        prepared,
        &resolution(&[("logs-a,logs-b", &["logs-a", "logs-b"])]),
        &s,
    )
    .unwrap();
    assert_eq!(body_json(&permit)["query"], "FROM  logs-a, logs-b ");
}

#[test]
fn authorize_refuses_an_expression_missing_from_the_resolution() {
    let s = scope();
    let h = head("GET", "/_search", None);
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
    assert_eq!(prepared.to_resolve(), &["logs-*".to_string()]);
    let err = es::authorize(prepared.clone(), &resolution(&[("other", &[])]), &s).unwrap_err();
    assert_eq!(err.kind, RejectKind::Forbidden);
    // A wildcard that matches nothing searches an expression that matches no index (an
    // empty answer, as Elasticsearch gives), never an unnamed search.
    let permit = es::authorize(prepared, &resolution(&[("logs-*", &[])]), &s).unwrap();
    assert_eq!(permit.path, "/*,-*/_search");
    assert!(permit.indices.is_empty());
    // A named allowed index that does not exist is forwarded as named (the backend's 404).
    let h = head("GET", "/logs-gone/_search", None);
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
    let permit = es::authorize(prepared, &resolution(&[("logs-gone", &[])]), &s).unwrap();
    assert_eq!(permit.path, "/logs-gone/_search");
    // Mixed: the named index is kept, the empty wildcard dropped.
    let h = head("GET", "/logs-gone,logs-x*/_search", None);
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
    let permit = es::authorize(prepared, &resolution(&[("logs-gone,logs-x*", &[])]), &s).unwrap();
    assert_eq!(permit.path, "/logs-gone/_search");
}

#[test]
fn plan_rejects_head_level_attacks() {
    let cases: &[(&str, &str, Option<&str>, RejectKind)] = &[
        (
            "GET",
            "/logs-a%2Csecret/_search",
            None,
            RejectKind::Forbidden,
        ), // IDX-03
        (
            "GET",
            "/logs-%2A%2Csecret/_search",
            None,
            RejectKind::Forbidden,
        ), // IDX-05
        ("GET", "/secret/_search", None, RejectKind::Forbidden),
        (
            "POST",
            "/logs-*/_search",
            Some("q=a&q=b"),
            RejectKind::BadRequest,
        ), // ENC-05
        (
            "GET",
            "/logs-*/_search",
            Some("source=%7B%7D&source_content_type=application/json"),
            RejectKind::Forbidden,
        ), // ENC-06
        (
            "GET",
            "/logs-*/_search",
            Some("expand_wildcards=all"),
            RejectKind::Forbidden,
        ), // IDX-13
        ("GET", "/logs-a/_doc/a1", None, RejectKind::Forbidden), // EP-01
        ("POST", "/_sql/translate", None, RejectKind::Forbidden), // EP-23
        (
            "GET",
            "/_cluster/health",
            Some("level=indices"),
            RejectKind::Forbidden,
        ),
        ("GET", "/_resolve/index/secret", None, RejectKind::Forbidden),
        ("TRACE", "/", None, RejectKind::MethodNotAllowed),
        ("GET", "//secret/_search", None, RejectKind::BadRequest), // IDX-27
        ("GET", "/%c0%ae%c0%ae/_search", None, RejectKind::BadRequest), // IDX-39 overlong UTF-8
        (
            "GET",
            "/%3C%7Bnow%7B'secret'%7D%7D%3E/_search",
            None,
            RejectKind::Forbidden,
        ), // IDX-22
        (
            "GET",
            "/logs-a,.security/_search",
            None,
            RejectKind::Forbidden,
        ), // IDX-14
        (
            "GET",
            "/logs-a/_search",
            Some("format=yaml"),
            RejectKind::Forbidden,
        ), // ENC-34
        (
            "GET",
            "/logs-a/_search",
            Some("error_trace=true"),
            RejectKind::Forbidden,
        ), // ENC-36
    ];
    let s = scope();
    for (m, p, q, kind) in cases {
        let err = es::plan(&head(m, p, *q), &s).unwrap_err();
        assert_eq!(err.kind, *kind, "{m} {p} {q:?}: {}", err.reason);
    }
}

#[test]
fn wildcard_all_with_exclusions_stays_inside_the_token_patterns() {
    // IDX-10: `*` becomes the token's patterns, so the exclusion can only narrow them.
    let s = scope();
    let h = head("GET", "/*,-logs-*/_search", None);
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
    assert_eq!(prepared.to_resolve(), &["logs-*,-logs-*".to_string()]);
}

#[test]
fn prepare_rejects_bad_bodies() {
    let s = scope();
    let cases: &[(&str, Option<&str>, &[u8], RejectKind)] = &[
        (
            "/_search",
            Some("application/yaml"),
            b"query: {}",
            RejectKind::UnsupportedMediaType,
        ), // ENC-09
        ("/_search", None, b"{}", RejectKind::UnsupportedMediaType),
        (
            "/_search",
            Some("application/json"),
            b"null",
            RejectKind::BadRequest,
        ), // BODY-45
        (
            "/_search",
            Some("application/json"),
            br#"{"size":1,"size":2}"#,
            RejectKind::BadRequest,
        ), // ENC-18
        (
            "/_search",
            Some("application/json"),
            br#"{"runtime_mappings":{"tenant":{"type":"keyword"}}}"#,
            RejectKind::Forbidden,
        ), // BODY-20
        (
            "/_field_caps",
            Some("application/json"),
            br#"{"index_filter":{"wrapper":{"query":"e30="}}}"#,
            RejectKind::Forbidden,
        ),
        (
            "/_field_caps",
            Some("application/json"),
            br#"{"runtime_mappings":{"tenant":{"type":"keyword"}}}"#,
            RejectKind::Forbidden,
        ),
        (
            "/_msearch",
            Some("application/x-ndjson"),
            b"{}\n{}",
            RejectKind::BadRequest,
        ), // ENC-27
        (
            "/_msearch",
            Some("application/yaml"),
            b"{}\n{}\n",
            RejectKind::UnsupportedMediaType,
        ),
    ];
    for (path, ct, body, kind) in cases {
        let mut h = head("POST", path, None);
        h.content_type = *ct;
        let plan = es::plan(&h, &s).unwrap();
        assert!(plan.needs_body(), "{path}");
        let err = es::prepare(plan, Some(body), &h, &s).unwrap_err();
        assert_eq!(err.kind, *kind, "{path} {ct:?}: {}", err.reason);
    }
}

#[test]
fn decoded_body_cap_is_a_parameter() {
    let s = scope();
    let h = head("POST", "/_search", None);
    let plan = es::plan(&h, &s).unwrap();
    let err = es::prepare_with_limit(
        plan,
        Some(br#"{"size":1}"#),
        &h,
        &s,
        4,
        &es::memory::Meter::unlimited(),
    )
    .unwrap_err();
    assert_eq!(err.kind, RejectKind::TooLarge);
}

#[test]
fn msearch_with_too_many_distinct_expressions_is_refused_before_any_resolve() {
    let mut h = head("POST", "/_msearch", None);
    h.content_type = Some("application/x-ndjson");
    let s = scope();
    let body = |n: usize| {
        (0..n)
            .map(|i| format!("{{\"index\":\"logs-{i}\"}}\n{{}}\n"))
            .collect::<String>()
    };
    let at_cap = body(MAX_EXPRESSIONS);
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), Some(at_cap.as_bytes()), &h, &s).unwrap();
    assert_eq!(prepared.to_resolve().len(), MAX_EXPRESSIONS);
    let over = body(MAX_EXPRESSIONS + 1);
    let err = es::prepare(es::plan(&h, &s).unwrap(), Some(over.as_bytes()), &h, &s).unwrap_err();
    assert_eq!(err.kind, RejectKind::BadRequest);
    assert!(err.reason.contains("at most 64"), "{}", err.reason);
}

#[test]
fn msearch_forwards_checked_headers_and_resolves_each_expression_once() {
    let mut h = head("POST", "/logs-a/_msearch", None);
    h.content_type = Some("application/x-ndjson");
    let body = b"{}\n{}\n{\"index\":\"logs-b\"}\n{\"size\":1}\n{}\n{\"size\":2}\n";
    let s = scope();
    let prepared = es::prepare(es::plan(&h, &s).unwrap(), Some(body), &h, &s).unwrap();
    assert_eq!(
        prepared.to_resolve(),
        &["logs-a".to_string(), "logs-b".to_string()]
    );
    let permit = es::authorize(
        prepared,
        &resolution(&[("logs-a", &["logs-a"]), ("logs-b", &["logs-b"])]),
        &s,
    )
    .unwrap();
    assert_eq!(permit.action, "msearch");
    assert_eq!(permit.path, "/_msearch");
    let b = permit.body.expect("body");
    assert_eq!(b.content_type, "application/x-ndjson");
    let lines: Vec<Value> = std::str::from_utf8(&b.bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["index"], json!(["logs-a"]));
    assert_eq!(lines[2]["index"], json!(["logs-b"]));
    for body in [&lines[1], &lines[3], &lines[5]] {
        assert_eq!(body["query"], wrapped_match_all());
    }
}

#[test]
fn metadata_routes_forward_checked_expressions_without_a_body() {
    /// (method, path, query, action, forwarded path, expressions to resolve)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a [&'a str],
    );
    let cases: &[Case] = &[
        (
            "GET",
            "/_mapping",
            None,
            "mapping",
            "/logs-*/_mapping",
            &["logs-*"],
        ),
        (
            "GET",
            "/logs-a/_mapping",
            None,
            "mapping",
            "/logs-a/_mapping",
            &["logs-a"],
        ),
        (
            "GET",
            "/_field_caps",
            Some("fields=*"),
            "field_caps",
            "/logs-*/_field_caps",
            &["logs-*"],
        ),
        (
            "POST",
            "/logs-a/_field_caps",
            Some("fields=a,b"),
            "field_caps",
            "/logs-a/_field_caps",
            &["logs-a"],
        ),
        (
            "GET",
            "/_resolve/index/*",
            None,
            "resolve_index",
            "/_resolve/index/logs-*",
            &["logs-*"],
        ),
        (
            "GET",
            "/_cluster/health",
            Some("wait_for_status=yellow"),
            "cluster_health",
            "/_cluster/health/logs-*",
            &["logs-*"],
        ),
        (
            "GET",
            "/_cluster/health/logs-a",
            None,
            "cluster_health",
            "/_cluster/health/logs-a",
            &["logs-a"],
        ),
        ("HEAD", "/", None, "root", "/", &[]),
        ("GET", "/", None, "root", "/", &[]),
    ];
    let s = scope();
    for (m, p, q, action, path, resolve) in cases {
        let h = head(m, p, *q);
        let plan = es::plan(&h, &s).unwrap_or_else(|e| panic!("{m} {p}: {e}"));
        assert_eq!(plan.action, *action);
        let body: Option<&[u8]> = if plan.needs_body() { Some(b"{}") } else { None };
        let prepared = es::prepare(plan, body, &h, &s).unwrap();
        assert_eq!(prepared.to_resolve(), *resolve, "{m} {p}");
        let permit = run(&h, body, logs).unwrap();
        // Wildcards are forwarded as the concrete indices resolution found allowed.
        assert_eq!(
            permit.path,
            path.replace("logs-*", "logs-a,logs-b"),
            "{m} {p}"
        );
        assert!(permit.body.is_none(), "{m} {p}");
    }
}

#[test]
fn denied_routes_say_which_action_family() {
    let err = es::plan(&head("POST", "/logs-a/_search/template", None), &scope()).unwrap_err();
    assert_eq!(
        err.reason,
        "action [templates and scripts] is not allowed for this token"
    );
}

mod props {
    use proptest::prelude::*;

    use super::*;

    /// Every retrieval entry point of a forwarded search/count body carries the token
    /// clauses: the outer query wrapper and each top-level kNN element; and at least one
    /// entry point exists.
    fn filtered_everywhere(body: &Value, clauses: &[Value]) -> bool {
        let query_ok = match body.get("query") {
            None => true,
            Some(q) => q["bool"]["filter"]
                .as_array()
                .is_some_and(|f| f.as_slice() == clauses),
        };
        let knn_items: Vec<&Value> = match body.get("knn") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
        };
        let knn_ok = knn_items.iter().all(|k| {
            k["filter"]
                .as_array()
                .is_some_and(|f| f.len() >= clauses.len() && f[..clauses.len()] == *clauses)
        });
        let has_entry = body.get("query").is_some() || !knn_items.is_empty();
        query_ok && knn_ok && has_entry
    }

    fn path() -> impl Strategy<Value = String> {
        let seg = prop::sample::select(vec![
            "logs-a",
            "logs-*",
            "secret",
            "_all",
            "*",
            "_search",
            "_count",
            "_msearch",
            "_mapping",
            "_field_caps",
            "_cluster",
            "health",
            "_resolve",
            "index",
            "%2C",
            "logs-a%2Csecret",
            "..",
            "",
            "_doc",
            "%5Fsearch",
            "-logs-b",
        ]);
        let random = prop::collection::vec(seg, 0..4).prop_map(|v| format!("/{}", v.join("/")));
        let index =
            prop::sample::select(vec!["", "/logs-a", "/logs-*", "/_all", "/logs-*,-logs-b"]);
        let api = prop::sample::select(vec!["_search", "_count", "_msearch", "_field_caps"]);
        let structured = (index, api).prop_map(|(i, a)| format!("{i}/{a}"));
        prop_oneof![3 => structured, 1 => random]
    }

    fn query() -> impl Strategy<Value = Option<String>> {
        let p = prop::sample::select(vec![
            "size=1",
            "q=x",
            "from=2",
            ";",
            "&",
            "expand_wildcards=open",
            "pretty",
            "%zz",
            "+",
            "search_type=query_then_fetch",
            "level=cluster",
        ]);
        prop_oneof![
            2 => Just(None),
            1 => prop::collection::vec(p, 0..4).prop_map(|v| Some(v.concat())),
        ]
    }

    fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
        let whole = prop::sample::select(vec![
            "",
            "{}",
            "{\"query\":{\"term\":{\"tenant\":\"b\"}}}",
            "{\"size\":0,\"aggs\":{\"x\":{\"terms\":{\"field\":\"f\"}}}}",
            "{\"knn\":{\"field\":\"v\",\"query_vector\":[1],\"k\":1,\"num_candidates\":1}}",
            "{}\n{}\n",
            "{\"index\":\"logs-a\"}\n{\"query\":{\"match_all\":{}}}\n{}\n{\"size\":1}\n",
        ]);
        let frag = prop::sample::select(vec![
            "{}",
            "{\"query\":{\"match_all\":{}}}",
            "\n",
            "{\"index\":\"logs-a\"}",
            "{\"size\":1}",
            "[",
            "}",
        ]);
        prop_oneof![
            1 => Just(None),
            3 => whole.prop_map(|s| Some(s.as_bytes().to_vec())),
            1 => prop::collection::vec(frag, 0..5).prop_map(|v| Some(v.concat().into_bytes())),
        ]
    }

    proptest! {
        #![proptest_config(crate::testing::cases(1000))]

        /// Whatever comes in, nothing panics, and every permitted search, count or msearch
        /// body carries exactly the token clauses in its outer filter.
        #[test]
        fn permits_always_carry_the_filter(
            method in prop::sample::select(vec!["GET", "POST", "POST", "HEAD", "PUT"]),
            ct in prop::sample::select(vec!["application/json", "application/x-ndjson"]),
            p in path(),
            q in query(),
            b in body(),
        ) {
            let mut h = head(method, &p, q.as_deref());
            h.content_type = Some(ct);
            let permit = run(&h, b.as_deref(), logs);
            let Ok(permit) = permit else { return Ok(()); };
            let clauses = scope().filters.clauses();
            match permit.action {
                "search" | "count" => {
                    let v = body_json(&permit);
                    prop_assert!(filtered_everywhere(&v, &clauses), "{}", v);
                }
                "msearch" => {
                    let bytes = permit.body.as_ref().map(|b| b.bytes.clone()).unwrap_or_default();
                    let text = String::from_utf8(bytes).unwrap();
                    for (i, line) in text.lines().enumerate() {
                        let v: Value = serde_json::from_str(line).unwrap();
                        if i % 2 == 1 {
                            prop_assert!(filtered_everywhere(&v, &clauses), "{}", v);
                        } else {
                            prop_assert_eq!(&v["expand_wildcards"], &json!("open"));
                        }
                    }
                }
                _ => prop_assert!(permit.body.is_none()),
            }
        }
    }
}

mod dialect_and_shaping_tests {
    use serde_json::json;

    use crate::ids::continuation::{self, IdKind};
    use crate::request::dialect::Dialect;
    use crate::testing::{head, scope};
    use crate::{self as es, Permit, RejectKind, Rejection, Resolution};

    fn run(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&[u8]>,
        dialect: Option<Dialect>,
    ) -> Result<Permit, Rejection> {
        let s = scope();
        let h = head(method, path, query);
        let plan = es::plan(&h, &s)?;
        let prepared = es::prepare(plan, body, &h, &s)?;
        let mut r = Resolution {
            dialect: if prepared.needs_dialect() {
                dialect
            } else {
                None
            },
            ..Resolution::default()
        };
        for e in prepared.to_resolve() {
            r.names.insert(
                e.clone(),
                vec![es::indices::resolution::ResolvedName {
                    name: "logs-a".into(),
                    kind: es::indices::resolution::NameKind::Index,
                    indices: vec!["logs-a".into()],
                }]
                .into(),
            );
        }
        es::authorize(prepared, &r, &s)
    }

    /// Issue #8.6: each dialect's point-in-time form goes only to a backend of that dialect;
    /// the other form is answered like a route the backend does not have, an unknown dialect
    /// refuses both.
    #[test]
    fn point_in_time_forms_are_forwarded_only_to_their_dialect() {
        let sealed = continuation::seal(&scope().ids, IdKind::Pit, "backend-pit");
        let es_close = serde_json::to_vec(&json!({ "id": sealed })).unwrap();
        let os_close = serde_json::to_vec(&json!({ "pit_id": [sealed] })).unwrap();
        let cases: [(&str, &str, Option<&[u8]>, Dialect); 4] = [
            ("POST", "/logs-a/_pit", None, Dialect::Elasticsearch),
            ("DELETE", "/_pit", Some(&es_close), Dialect::Elasticsearch),
            (
                "POST",
                "/logs-a/_search/point_in_time",
                None,
                Dialect::OpenSearch,
            ),
            (
                "DELETE",
                "/_search/point_in_time",
                Some(&os_close),
                Dialect::OpenSearch,
            ),
        ];
        for (method, path, body, own) in cases {
            let q = (method == "POST").then_some("keep_alive=1m");
            let other = match own {
                Dialect::Elasticsearch => Dialect::OpenSearch,
                Dialect::OpenSearch => Dialect::Elasticsearch,
            };
            let permit = run(method, path, q, body, Some(own))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert!(permit.action.contains("pit"), "{method} {path}");
            let refused = run(method, path, q, body, Some(other)).unwrap_err();
            assert_eq!(refused.kind, RejectKind::BadRequest, "{method} {path}");
            assert!(
                refused.reason.starts_with("no handler found for uri"),
                "{}",
                refused.reason
            );
            let unknown = run(method, path, q, body, None).unwrap_err();
            assert_eq!(unknown.kind, RejectKind::Forbidden, "{method} {path}");
        }
        // A search with a point in time has one form in both dialects: no dialect needed.
        let search = serde_json::to_vec(&json!({"pit": {"id": sealed}})).unwrap();
        let h = head("POST", "/_search", None);
        let plan = es::plan(&h, &scope()).unwrap();
        let prepared = es::prepare(plan, Some(&search), &h, &scope()).unwrap();
        assert!(!prepared.needs_dialect());
    }

    /// pit25: what a permit says it does to the token's open points in time (the proxy counts
    /// them, `max_open_pits`): an open in either dialect opens one for its `keep_alive`; a
    /// search or async search on one names the backend id its sealed id opened and the
    /// `pit.keep_alive` it asks for (none: `None`, the point in time keeps its own); a close
    /// names every backend id. None of them says anything about scrolls, nor a scroll's
    /// request about points in time.
    #[test]
    fn permits_say_what_they_do_to_open_points_in_time() {
        use crate::{Context, Holding};
        let sealed = continuation::seal(&scope().ids, IdKind::Pit, "backend-pit");
        let other = continuation::seal(&scope().ids, IdKind::Pit, "other-pit");
        let opens = [
            ("/logs-a/_pit", Dialect::Elasticsearch),
            ("/logs-a/_search/point_in_time", Dialect::OpenSearch),
        ];
        for (path, dialect) in opens {
            let mut p = run("POST", path, Some("keep_alive=90s"), None, Some(dialect)).unwrap();
            assert_eq!(p.scrolling, None, "{path}");
            assert_eq!(
                p.take_holding(),
                Some((
                    Context::Pit,
                    Holding::Open {
                        keep_alive_ms: 90_000
                    }
                )),
                "{path}"
            );
        }
        let on_pit = |path: &str, pit: serde_json::Value| {
            let body = serde_json::to_vec(&json!({ "pit": pit })).unwrap();
            run("POST", path, None, Some(&body), None).unwrap().pit
        };
        let next = |keep_alive_ms| {
            Some(Holding::Next {
                backend_id: "backend-pit".into(),
                keep_alive_ms,
            })
        };
        for path in ["/_search", "/_async_search"] {
            assert_eq!(
                on_pit(path, json!({"id": sealed, "keep_alive": "2m"})),
                next(Some(120_000)),
                "{path}"
            );
            assert_eq!(on_pit(path, json!({ "id": sealed })), next(None), "{path}");
        }
        let es_close = serde_json::to_vec(&json!({ "id": sealed })).unwrap();
        let os_close = serde_json::to_vec(&json!({ "pit_id": [sealed, other] })).unwrap();
        let closed = |path: &str, body: &[u8], dialect| {
            run("DELETE", path, None, Some(body), Some(dialect))
                .unwrap()
                .pit
        };
        assert_eq!(
            closed("/_pit", &es_close, Dialect::Elasticsearch),
            Some(Holding::Clear {
                backend_ids: vec!["backend-pit".into()]
            })
        );
        assert_eq!(
            closed("/_search/point_in_time", &os_close, Dialect::OpenSearch),
            Some(Holding::Clear {
                backend_ids: vec!["backend-pit".into(), "other-pit".into()]
            })
        );
        let mut scroll = run("POST", "/logs-a/_search", Some("scroll=1m"), None, None).unwrap();
        assert_eq!(scroll.pit, None);
        assert_eq!(scroll.take_holding().map(|(c, _)| c), Some(Context::Scroll));
        let mut plain = run("POST", "/logs-a/_search", None, None, None).unwrap();
        assert_eq!(plain.take_holding(), None);
    }

    /// async25: what a permit says it does to the token's running async searches (the proxy
    /// counts them, `max_running_async_searches`): a submit opens one for its `keep_alive`
    /// (Elasticsearch's 5 days when unset), a submit on a point in time says so of both; a poll
    /// names the backend id its sealed id opened, with its `keep_alive`; a status names it
    /// without; a delete ends it. A plain search, scroll or point in time's open says nothing.
    #[test]
    fn permits_say_what_they_do_to_running_async_searches() {
        use crate::{Context, Holding};
        let submit = |path: &str, query: Option<&str>| {
            run("POST", path, query, None, None).unwrap().async_search
        };
        assert_eq!(
            submit(
                "/logs-a/_async_search",
                Some("wait_for_completion_timeout=0ms")
            ),
            Some(Holding::Open {
                keep_alive_ms: 5 * 24 * 3_600_000
            })
        );
        assert_eq!(
            submit("/logs-a/_async_search", Some("keep_alive=90s")),
            Some(Holding::Open {
                keep_alive_ms: 90_000
            })
        );
        let pit = continuation::seal(&scope().ids, IdKind::Pit, "backend-pit");
        let body = serde_json::to_vec(&json!({"pit": {"id": pit}})).unwrap();
        let mut on_pit = run(
            "POST",
            "/_async_search",
            Some("keep_alive=1m"),
            Some(&body),
            None,
        )
        .unwrap();
        assert_eq!(
            on_pit.async_search.take(),
            Some(Holding::Open {
                keep_alive_ms: 60_000
            })
        );
        assert_eq!(
            on_pit.take_holding().map(|(c, _)| c),
            Some(Context::Pit),
            "the point in time it searches is counted too"
        );
        let sealed = crate::routes::async_search::seal_id(&scope().ids, "backend-async", None);
        let path = format!("/_async_search/{sealed}");
        let status = format!("/_async_search/status/{sealed}");
        let next = |keep_alive_ms| {
            Some(Holding::Next {
                backend_id: "backend-async".into(),
                keep_alive_ms,
            })
        };
        let on = |method: &str, path: &str, query: Option<&str>| {
            run(method, path, query, None, None).unwrap().async_search
        };
        assert_eq!(on("GET", &path, Some("keep_alive=2m")), next(Some(120_000)));
        assert_eq!(on("GET", &path, None), next(None));
        assert_eq!(on("GET", &status, None), next(None));
        assert_eq!(
            on("DELETE", &path, None),
            Some(Holding::Clear {
                backend_ids: vec!["backend-async".into()]
            })
        );
        for (path, query) in [
            ("/logs-a/_search", None),
            ("/logs-a/_search", Some("scroll=1m")),
        ] {
            assert_eq!(on("POST", path, query), None, "{path}");
        }
        let open = run(
            "POST",
            "/logs-a/_pit",
            Some("keep_alive=1m"),
            None,
            Some(Dialect::Elasticsearch),
        )
        .unwrap();
        assert_eq!(open.async_search, None);
    }

    /// sql26: what a permit says it does to the token's open SQL cursors (the proxy counts
    /// them with its points in time, `max_open_pits`): a query opens one for its
    /// `page_timeout` (Elasticsearch's 45 s when unset: the point in time its cursor pages
    /// through is opened for it); a next page names the backend cursor its sealed cursor
    /// opened, with its own `page_timeout` (45 s unset); a close ends it. A `page_timeout` over
    /// a day (Elasticsearch's default `search.max_keep_alive`) is refused. Nothing else says
    /// anything about SQL cursors.
    #[test]
    fn permits_say_what_they_do_to_open_sql_cursors() {
        use crate::{Context, Holding};
        let sql = |path: &str, body: serde_json::Value| {
            let body = serde_json::to_vec(&body).unwrap();
            run("POST", path, None, Some(&body), None)
        };
        let query = |extra: serde_json::Value| {
            let mut body = json!({"query": "SELECT * FROM logs-a", "fetch_size": 1});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            sql("/_sql", body)
        };
        let mut q = query(json!({})).unwrap();
        assert_eq!(
            q.take_holding(),
            Some((
                Context::SqlCursor,
                Holding::Open {
                    keep_alive_ms: 45_000
                }
            ))
        );
        assert_eq!(
            query(json!({"page_timeout": "24h"})).unwrap().sql_cursor,
            Some(Holding::Open {
                keep_alive_ms: 86_400_000
            })
        );
        let sealed = continuation::seal(&scope().ids, IdKind::SqlCursor, "backend-cursor");
        let next = |ms| {
            Some(Holding::Next {
                backend_id: "backend-cursor".into(),
                keep_alive_ms: Some(ms),
            })
        };
        let page = |body| sql("/_sql", body).unwrap().sql_cursor;
        assert_eq!(page(json!({ "cursor": sealed })), next(45_000));
        assert_eq!(
            page(json!({"cursor": sealed, "page_timeout": "2m"})),
            next(120_000)
        );
        assert_eq!(
            sql("/_sql/close", json!({ "cursor": sealed }))
                .unwrap()
                .sql_cursor,
            Some(Holding::Clear {
                backend_ids: vec!["backend-cursor".into()]
            })
        );
        for refused in [
            query(json!({"page_timeout": "25h"})),
            sql(
                "/_sql",
                json!({"cursor": sealed, "page_timeout": "86400001ms"}),
            ),
        ] {
            let e = refused.unwrap_err();
            assert_eq!(e.kind, RejectKind::BadRequest, "{e:?}");
            assert!(e.reason.contains("page_timeout"), "{}", e.reason);
        }
        for (path, body) in [
            ("/_query", json!({"query": "FROM logs-a"})),
            ("/logs-a/_eql/search", json!({"query": "any where true"})),
            ("/logs-a/_search", json!({})),
        ] {
            let mut p = sql(path, body).unwrap();
            assert_eq!(p.sql_cursor, None, "{path}");
            assert_eq!(p.take_holding(), None, "{path}");
        }
    }

    /// Attack26d (pinned, no finding): the `page_timeout` spellings a SQL query or page may
    /// use. What esgate takes is a subset of what Elasticsearch's `TimeValue` parses (digits
    /// and a lower-case unit; Elasticsearch also trims, lower-cases and parses `-1` and `0`),
    /// counted for at least what Elasticsearch keeps (nanos and micros rounded up) and at most
    /// a day, reached in any unit; a number, `-1`, `0`, a fraction, a sign, upper case,
    /// spaces, an exponent or other digits than ASCII are refused before the backend (as is
    /// `wait_for_completion_timeout`, `keep_alive` and `keep_on_completion`: SQL is never
    /// async here), so no spelling is read shorter here than there.
    #[test]
    fn sql_page_timeout_spellings_are_read_as_elasticsearch_reads_them_or_refused() {
        use crate::Holding;
        let sql = |extra: serde_json::Value| {
            let mut body = json!({"query": "SELECT * FROM logs-a", "fetch_size": 1});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let body = serde_json::to_vec(&body).unwrap();
            run("POST", "/_sql", None, Some(&body), None)
        };
        for (spelling, ms) in [
            ("1d", 86_400_000),
            ("24h", 86_400_000),
            ("1440m", 86_400_000),
            ("86400s", 86_400_000),
            ("86400000ms", 86_400_000),
            ("86400000000micros", 86_400_000),
            ("999999999999nanos", 1_000_000),
            ("0ms", 0),
            ("0d", 0),
            ("1nanos", 1),
            ("1500micros", 2),
            ("000045s", 45_000),
        ] {
            assert_eq!(
                sql(json!({ "page_timeout": spelling })).unwrap().sql_cursor,
                Some(Holding::Open { keep_alive_ms: ms }),
                "{spelling}"
            );
        }
        for refused in [
            json!({"page_timeout": 86_400_000}),
            json!({"page_timeout": 1}),
            json!({"page_timeout": "-1"}),
            json!({"page_timeout": "0"}),
            json!({"page_timeout": "86400000"}),
            json!({"page_timeout": "1D"}),
            json!({"page_timeout": " 1d"}),
            json!({"page_timeout": "1d "}),
            json!({"page_timeout": "1.5h"}),
            json!({"page_timeout": "+1h"}),
            json!({"page_timeout": "-1h"}),
            json!({"page_timeout": "1e3ms"}),
            json!({"page_timeout": "\u{661}h"}),
            json!({"page_timeout": "86400000001micros"}),
            // More than 12 digits: refused, though Elasticsearch reads a day.
            json!({"page_timeout": "86400000000000nanos"}),
            json!({"page_timeout": "1441m"}),
            json!({"page_timeout": "2d"}),
            json!({"page_timeout": null}),
            json!({"page_timeout": ["1m"]}),
            json!({"wait_for_completion_timeout": "1s"}),
            json!({"keep_alive": "5d"}),
            json!({"keep_on_completion": true}),
        ] {
            assert!(sql(refused.clone()).is_err(), "{refused}");
        }
    }

    /// Issue #8.8: shaping is forwarded on answers streamed untouched, and kept for esgate's
    /// final answer (never forwarded) on answers esgate reads whole.
    #[test]
    fn response_shaping_is_forwarded_or_applied_by_esgate_never_both() {
        let shaping = "filter_path=hits.hits._source&pretty=true&human=true&error_trace=false";
        let streamed = run("GET", "/logs-a/_search", Some(shaping), None, None).unwrap();
        assert!(!streamed.answer.reads_whole());
        assert!(streamed.answer.shaping().is_none());
        let names: Vec<&str> = streamed.query.iter().map(|(k, _)| &**k).collect();
        for k in ["filter_path", "pretty", "human"] {
            assert!(names.contains(&k), "{k} forwarded: {names:?}");
        }
        assert!(!names.contains(&"error_trace"), "{names:?}");

        let read_whole = [
            ("GET", "/logs-a/_search", "scroll=1m&"),
            ("POST", "/logs-a/_pit", "keep_alive=1m&"),
            ("GET", "/_cluster/health", ""),
            ("POST", "/logs-a/_terms_enum", ""),
            ("GET", "/_cat/indices", "format=json&"),
        ];
        for (method, path, extra) in read_whole {
            let q = format!("{extra}{shaping}");
            let body: Option<&[u8]> = (method == "POST" && path.ends_with("_terms_enum"))
                .then_some(br#"{"field":"user"}"#.as_slice());
            let permit = run(method, path, Some(&q), body, Some(Dialect::Elasticsearch))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert!(permit.answer.reads_whole(), "{method} {path}");
            assert!(permit.answer.shaping().is_some(), "{method} {path}");
            for (k, _) in &permit.query {
                assert!(
                    !["filter_path", "pretty", "human", "error_trace"].contains(&&**k),
                    "{method} {path}: {k} forwarded on an answer esgate reads whole"
                );
            }
        }
    }
}

mod narrowing_tests {
    use serde_json::Value;

    use crate::{self as es, RejectKind, RequestHead, Resolution};

    use crate::testing::scope;

    use crate::testing::cluster as fixture;

    fn run(
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&[u8]>,
    ) -> Result<es::Permit, es::Rejection> {
        let s = scope();
        let h = RequestHead {
            method,
            path,
            query: None,
            content_type: Some(content_type),
            content_encoding: None,
        };
        let prepared = es::prepare(es::plan(&h, &s)?, body, &h, &s)?;
        let mut r = Resolution::default();
        for e in prepared.to_resolve() {
            r.names.insert(e.clone(), fixture(e).into());
        }
        es::authorize(prepared, &r, &s)
    }

    #[test]
    fn a_wildcard_that_matches_a_foreign_alias_is_narrowed_to_the_allowed_indices() {
        let p = run("GET", "/logs-*/_search", "application/json", None).unwrap();
        assert_eq!(p.path, "/logs-a,logs-b/_search");
        assert_eq!(p.indices, vec!["logs-a", "logs-b"]);
        let p = run("GET", "/_count", "application/json", None).unwrap();
        assert_eq!(p.path, "/logs-a,logs-b/_count");
    }

    #[test]
    fn msearch_headers_are_narrowed_too() {
        let body = b"{\"index\":\"logs-*\"}\n{}\n{\"index\":\"logs-a\"}\n{}\n";
        let p = run("POST", "/_msearch", "application/x-ndjson", Some(body)).unwrap();
        let text = String::from_utf8(p.body.unwrap().bytes).unwrap();
        let headers: Vec<Value> = text
            .lines()
            .step_by(2)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(headers[0]["index"], serde_json::json!(["logs-a", "logs-b"]));
        assert_eq!(headers[1]["index"], serde_json::json!(["logs-a"]));
    }

    #[test]
    fn naming_the_foreign_alias_is_refused() {
        let err = run("GET", "/logs-sa/_search", "application/json", None).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        assert!(!err.reason.contains("secret"));
    }
}

/// The cost guards (`cost`) in every form a search can take through `plan` → `prepare` →
/// `authorize` (issue 13).
mod cost_guards {
    use serde_json::{json, Value};

    use super::*;
    use crate as es;
    use crate::dsl::cost::CostGuard;
    use crate::testing::{head, scope};

    fn run(
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Result<Permit, Rejection> {
        let mut s = scope();
        s.guard = CostGuard {
            max_size: Some(100),
            max_buckets: Some(50),
            timeout_ms: Some(2_000),
            ..Default::default()
        };
        let mut h = head(method, path, query);
        h.content_type = Some(content_type);
        let plan = es::plan(&h, &s)?;
        let body = (!body.is_empty()).then_some(body.as_bytes());
        let prepared = es::prepare(plan, body, &h, &s)?;
        let mut r = Resolution::default();
        for e in prepared.to_resolve() {
            r.names.insert(
                e.clone(),
                vec![es::indices::resolution::ResolvedName {
                    name: "logs-a".into(),
                    indices: vec!["logs-a".into()],
                    kind: es::indices::resolution::NameKind::Index,
                }]
                .into(),
            );
        }
        es::authorize(prepared, &r, &s)
    }

    const JSON: &str = "application/json";
    const ND: &str = "application/x-ndjson";

    #[test]
    fn every_search_form_is_guarded() {
        let over_size = r#"{"size": 101}"#;
        let over_buckets =
            r#"{"size": 0, "aggs": {"t": {"terms": {"field": "user", "size": 51}}}}"#;
        let msearch = |body: &str| format!("{{\"index\":\"logs-*\"}}\n{body}\n");
        let knn = |k: u32| {
            format!(
                r#"{{"knn": {{"field": "v", "query_vector": [1.0], "k": {k}, "num_candidates": {k}}}}}"#
            )
        };
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, String, &'a str);
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/logs-*/_search",
                Some("size=101"),
                JSON,
                String::new(),
                "size 101",
            ),
            (
                "GET",
                "/logs-*/_search",
                Some("from=95"),
                JSON,
                String::new(),
                "from + size 105",
            ),
            (
                "POST",
                "/logs-*/_search",
                None,
                JSON,
                over_size.into(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_search",
                Some("scroll=1m"),
                JSON,
                over_size.into(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_search",
                None,
                JSON,
                over_buckets.into(),
                "max_buckets 50",
            ),
            (
                "POST",
                "/logs-*/_async_search",
                None,
                JSON,
                over_size.into(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_async_search",
                Some("size=101"),
                JSON,
                String::new(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_async_search",
                None,
                JSON,
                over_buckets.into(),
                "max_buckets 50",
            ),
            (
                "POST",
                "/_msearch",
                None,
                ND,
                msearch(over_size),
                "size 101",
            ),
            (
                "POST",
                "/_msearch",
                None,
                ND,
                msearch(over_buckets),
                "max_buckets 50",
            ),
            (
                "POST",
                "/logs-*/_knn_search",
                None,
                JSON,
                knn(101),
                "101 exceeds this token's max_size 100",
            ),
            (
                "POST",
                "/logs-a/_terms_enum",
                None,
                JSON,
                r#"{"field": "user", "size": 51}"#.into(),
                "max_buckets 50",
            ),
            (
                "POST",
                "/logs-*/_eql/search",
                None,
                JSON,
                r#"{"query": "any where true", "size": 101}"#.into(),
                "size 101",
            ),
        ];
        for (method, path, query, ct, body, reason) in cases {
            let e = run(method, path, query, ct, &body)
                .expect_err(&format!("{method} {path} {query:?} {body} passed"));
            assert_eq!(e.kind, RejectKind::OverLimit, "{path}: {e:?}");
            assert!(e.reason.contains(reason), "{path} {body}: {}", e.reason);
        }
        // Within the limits every form passes.
        for (method, path, query, ct, body) in [
            (
                "GET",
                "/logs-*/_search",
                Some("size=100"),
                JSON,
                String::new(),
            ),
            (
                "POST",
                "/logs-*/_search",
                Some("scroll=1m"),
                JSON,
                r#"{"size": 100}"#.to_owned(),
            ),
            (
                "POST",
                "/logs-*/_async_search",
                None,
                JSON,
                r#"{"size": 100}"#.to_owned(),
            ),
            ("POST", "/_msearch", None, ND, msearch(r#"{"size": 100}"#)),
            ("POST", "/logs-*/_knn_search", None, JSON, knn(100)),
            (
                "POST",
                "/logs-a/_terms_enum",
                None,
                JSON,
                r#"{"field": "user", "size": 50}"#.to_owned(),
            ),
            (
                "POST",
                "/logs-*/_eql/search",
                None,
                JSON,
                r#"{"query": "any where true"}"#.to_owned(),
            ),
        ] {
            let p = run(method, path, query, ct, &body);
            assert!(p.is_ok(), "{method} {path} {body}: {p:?}");
        }
    }

    fn body_of(p: &Permit) -> Vec<Value> {
        let b = p.body.as_ref().expect("a body");
        b.bytes
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect()
    }

    #[test]
    fn search_timeout_reaches_every_search_form_once() {
        let p = run("GET", "/logs-*/_search", Some("timeout=1h"), JSON, "").unwrap();
        assert!(p.query.iter().all(|(k, _)| k != "timeout"), "{:?}", p.query);
        assert_eq!(body_of(&p)[0]["timeout"], json!("2000ms"));
        let p = run(
            "POST",
            "/logs-*/_search",
            None,
            JSON,
            r#"{"timeout": "500ms"}"#,
        )
        .unwrap();
        assert_eq!(body_of(&p)[0]["timeout"], json!("500ms"));
        let p = run("POST", "/logs-*/_async_search", None, JSON, "{}").unwrap();
        assert_eq!(body_of(&p)[0]["timeout"], json!("2000ms"));
        let nd = "{\"index\":\"logs-*\"}\n{\"timeout\":\"1m\"}\n{}\n{}\n";
        let p = run("POST", "/_msearch", None, ND, nd).unwrap();
        let lines = body_of(&p);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1]["timeout"], json!("2000ms"));
        assert_eq!(lines[3]["timeout"], json!("2000ms"));
        let p = run(
            "POST",
            "/logs-a/_terms_enum",
            None,
            JSON,
            r#"{"field": "user", "timeout": "10s"}"#,
        )
        .unwrap();
        assert_eq!(body_of(&p)[0]["timeout"], json!("2000ms"));
    }
}

/// Attack23b: a `range` with `relation: disjoint` (whose failure told whether other tenants'
/// dates cross the range, attack23) is refused in every place a query stands on every route
/// that takes one, and the same request with `intersects` passes: the refusal is the
/// relation's, not the place's. The places: the search body's query, aggregations' `filter`
/// and `filters`, `post_filter`, kNN's `filter` (in the body and in `_knn_search`), retrievers,
/// rescore, highlight and inner hits' highlight queries, nested sort filters (in the body and
/// in `top_hits`), scoring functions' filters, `_msearch`, `_count`, `_validate/query`,
/// `_explain`, async search, `_terms_enum`'s `index_filter`, and SQL's, EQL's and ES|QL's
/// `filter`.
#[test]
fn disjoint_ranges_are_refused_on_every_route_and_in_every_place() {
    // (method, path, content type, body with `@R@` for the range)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("POST", "/logs-a/_search", "json", r#"{"query":@R@}"#),
        (
            "GET",
            "/logs-a/_search",
            "json",
            r#"{"query":{"bool":{"filter":[{"match":{"m":"x"}},@R@]}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"bool":{"must_not":@R@}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"constant_score":{"filter":@R@}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"dis_max":{"queries":[@R@]}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"nested":{"path":"n","query":@R@}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"function_score":{"query":{"match_all":{}},"functions":[{"filter":@R@,"weight":2}]}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"size":0,"aggs":{"f":{"filter":@R@}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"size":0,"aggs":{"f":{"filters":{"filters":{"a":@R@}}}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"size":0,"aggs":{"f":{"filters":{"filters":[@R@]}}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"size":0,"aggs":{"h":{"date_histogram":{"field":"t","calendar_interval":"1d"},"aggs":{"f":{"filter":@R@}}}}}"#,
        ),
        ("POST", "/logs-a/_search", "json", r#"{"post_filter":@R@}"#),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"knn":{"field":"v","query_vector":[1],"k":1,"num_candidates":1,"filter":@R@}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"retriever":{"standard":{"query":@R@}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"retriever":{"standard":{"filter":@R@}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"match":{"m":"x"}},"rescore":{"window_size":10,"query":{"rescore_query":@R@}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"match":{"m":"x"}},"highlight":{"fields":{"m":{}},"highlight_query":@R@}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"query":{"match":{"m":"x"}},"highlight":{"fields":{"m":{"highlight_query":@R@}}}}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"sort":[{"n.v":{"order":"asc","nested":{"path":"n","filter":@R@}}}]}"#,
        ),
        (
            "POST",
            "/logs-a/_search",
            "json",
            r#"{"size":0,"aggs":{"t":{"top_hits":{"sort":[{"n.v":{"order":"asc","nested":{"path":"n","filter":@R@}}}]}}}}"#,
        ),
        (
            "POST",
            "/logs-a/_msearch",
            "ndjson",
            "{}\n{\"query\":@R@}\n",
        ),
        ("POST", "/logs-a/_count", "json", r#"{"query":@R@}"#),
        (
            "POST",
            "/logs-a/_validate/query",
            "json",
            r#"{"query":@R@}"#,
        ),
        ("POST", "/logs-a/_explain/1", "json", r#"{"query":@R@}"#),
        ("POST", "/logs-a/_async_search", "json", r#"{"query":@R@}"#),
        (
            "POST",
            "/logs-a/_terms_enum",
            "json",
            r#"{"field":"u","index_filter":@R@}"#,
        ),
        (
            "POST",
            "/logs-a/_knn_search",
            "json",
            r#"{"knn":{"field":"v","query_vector":[1],"k":1,"num_candidates":1},"filter":@R@}"#,
        ),
        (
            "POST",
            "/_sql",
            "json",
            r#"{"query":"SELECT u FROM \"logs-a\"","filter":@R@}"#,
        ),
        (
            "POST",
            "/logs-a/_eql/search",
            "json",
            r#"{"query":"any where true","filter":@R@}"#,
        ),
    ];
    // The key and the value as written, escapes included (the parsed and the general path
    // both read them decoded).
    let range = |key: &str, relation: &str| {
        format!(
            r#"{{"range":{{"t":{{"gte":"2021-01-01","lt":"2022-01-01","{key}":"{relation}"}}}}}}"#
        )
    };
    // A backend that counts empty histogram buckets as it makes them: the date histogram
    // here has no range to be bounded by (`dsl::fill`), and the ranges are what is tested.
    let mut s = scope();
    s.guard.empty_buckets = crate::request::dialect::EmptyBuckets::Counted;
    for (method, path, kind, template) in cases {
        let mut h = head(method, path, None);
        if *kind == "ndjson" {
            h.content_type = Some("application/x-ndjson");
        }
        let run_with = |key: &str, relation: &str| {
            let body = template.replace("@R@", &range(key, relation));
            let plan = es::plan(&h, &s)?;
            let prepared = es::prepare(plan, Some(body.as_bytes()), &h, &s)?;
            let mut r = Resolution::default();
            for e in prepared.to_resolve() {
                r.names.insert(e.clone(), as_indices(logs(e)).into());
            }
            crate::testing::with_field_types(&prepared, &mut r, "date");
            es::authorize(prepared, &r, &s).map(|_| ())
        };
        if let Err(e) = run_with("relation", "intersects") {
            panic!(
                "{method} {path} {template}: intersects refused: {}",
                e.reason
            );
        }
        for (key, relation) in [
            ("relation", "disjoint"),
            ("relation", "DisJoint"),
            ("relation", "dis\\u006aoint"),
            ("rel\\u0061tion", "disjoint"),
        ] {
            let err = run_with(key, relation)
                .expect_err(&format!("{method} {path} {template} {key} {relation}"));
            assert_eq!(
                err.kind,
                RejectKind::Forbidden,
                "{path} {template}: {}",
                err.reason
            );
            assert!(
                err.reason.contains("[relation]"),
                "{path} {template}: {}",
                err.reason
            );
        }
    }
}

/// Attack23b: ES|QL's `filter` becomes a `WHERE` condition, which has no relation: any
/// `relation` is refused there (400), `disjoint` included.
#[test]
fn esql_filters_refuse_disjoint_ranges() {
    let s = scope();
    let h = head("POST", "/_query", None);
    let body = br#"{"query":"FROM logs-a","filter":{"range":{"t":{"gte":"2021-01-01","relation":"disjoint"}}}}"#;
    let err = es::plan(&h, &s)
        .and_then(|plan| es::prepare(plan, Some(body), &h, &s))
        .map(|_| ())
        .expect_err("disjoint passed");
    assert!(err.reason.contains("[relation]"), "{}", err.reason);
}

/// What a permit says it does to the token's open scrolls (the proxy counts them): a search
/// that scrolls opens one for its `scroll`; a next page names the backend id its sealed id
/// opened and the keep-alive it sets (the body's over the parameter's, none when neither);
/// a clear names every backend id; any other request, a scroll's or not, says nothing.
#[test]
fn permits_say_what_they_do_to_open_scrolls() {
    use crate::Holding as Scrolling;
    let ids = &scope().ids;
    let opened = run(
        &head("POST", "/logs-a/_search", Some("scroll=2m&size=1")),
        None,
        logs,
    )
    .unwrap();
    assert_eq!(
        opened.scrolling,
        Some(Scrolling::Open {
            keep_alive_ms: 120_000
        })
    );
    let sealed = crate::ids::continuation::seal(ids, IdKind::Scroll, "backend-scroll");
    let next = |query: Option<&str>, body: Value| {
        run(
            &head("POST", "/_search/scroll", query),
            Some(&serde_json::to_vec(&body).unwrap()),
            logs,
        )
        .unwrap()
        .scrolling
    };
    let continued = |keep_alive_ms| {
        Some(Scrolling::Next {
            backend_id: "backend-scroll".into(),
            keep_alive_ms,
        })
    };
    assert_eq!(
        next(None, json!({"scroll_id": sealed, "scroll": "1500ms"})),
        continued(Some(1_500))
    );
    assert_eq!(
        next(
            Some("scroll=1h"),
            json!({"scroll_id": sealed, "scroll": "30s"})
        ),
        continued(Some(30_000)),
        "the body's scroll wins, as in Elasticsearch"
    );
    assert_eq!(
        next(Some("scroll=1h"), json!({"scroll_id": sealed})),
        continued(Some(3_600_000))
    );
    assert_eq!(next(None, json!({"scroll_id": sealed})), continued(None));
    let other = crate::ids::continuation::seal(ids, IdKind::Scroll, "other-scroll");
    let cleared = run(
        &head("DELETE", "/_search/scroll", None),
        Some(&serde_json::to_vec(&json!({"scroll_id": [sealed, other]})).unwrap()),
        logs,
    )
    .unwrap();
    assert_eq!(
        cleared.scrolling,
        Some(Scrolling::Clear {
            backend_ids: vec!["backend-scroll".into(), "other-scroll".into()]
        })
    );
    for plain in [
        run(&head("POST", "/logs-a/_search", None), None, logs).unwrap(),
        run(&head("GET", "/logs-a/_count", None), None, logs).unwrap(),
    ] {
        assert_eq!(plain.scrolling, None, "{}", plain.action);
    }
}

/// Every kNN search (`{"knn": {"field": ..., ...}}`) in `v` whose `filter` does not lead with
/// the token's clause: the paths of those found.
fn unfiltered_knn(v: &Value, path: &str, out: &mut Vec<String>) {
    let tenant = json!({"term": {"tenant": {"value": "a"}}});
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{path}.{k}");
                if k == "knn" {
                    let searches = match child {
                        Value::Array(items) => items.iter().collect(),
                        one => vec![one],
                    };
                    for s in searches {
                        if s.get("field").is_some()
                            && s.get("filter").and_then(|f| f.get(0)) != Some(&tenant)
                        {
                            out.push(here.clone());
                        }
                    }
                }
                unfiltered_knn(child, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unfiltered_knn(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// attack25 (pins safe behaviour): a kNN query picks its nearest candidates from the whole
/// index before any sibling filter applies, so wherever one can stand (every query position
/// of a search body, every route that takes a query) it gets the token's clauses in its own
/// `filter`, first: otherwise other tenants' vectors would take its places and a count of
/// what is left would tell how many of theirs lie near a vector.
#[test]
fn a_knn_query_gets_the_token_clauses_in_every_place_and_route() {
    let k = r#"{"knn":{"field":"vec","query_vector":[1,0],"k":5,"num_candidates":10}}"#;
    let bodies = [
        format!(r#"{{"aggs":{{"t":{{"filter":{k}}}}}}}"#),
        format!(r#"{{"aggs":{{"t":{{"filters":{{"filters":{{"a":{k}}}}}}}}}}}"#),
        format!(r#"{{"aggs":{{"t":{{"filters":{{"filters":[{k}]}}}}}}}}"#),
        format!(
            r#"{{"aggs":{{"t":{{"terms":{{"field":"user"}},"aggs":{{"f":{{"filter":{k}}}}}}}}}}}"#
        ),
        format!(r#"{{"post_filter":{k}}}"#),
        format!(
            r#"{{"query":{{"match_all":{{}}}},"rescore":{{"query":{{"rescore_query":{k}}}}}}}"#
        ),
        format!(
            r#"{{"query":{{"function_score":{{"functions":[{{"filter":{k},"weight":2}}]}}}}}}"#
        ),
        format!(r#"{{"query":{{"constant_score":{{"filter":{k}}}}}}}"#),
        format!(
            r#"{{"query":{{"boosting":{{"positive":{{"match_all":{{}}}},"negative":{k},"negative_boost":0.1}}}}}}"#
        ),
        format!(r#"{{"query":{{"bool":{{"must_not":{k}}}}}}}"#),
        format!(r#"{{"query":{{"dis_max":{{"queries":[{k}]}}}}}}"#),
        format!(
            r#"{{"query":{{"match_all":{{}}}},"highlight":{{"highlight_query":{k},"fields":{{"*":{{}}}}}}}}"#
        ),
        format!(
            r#"{{"query":{{"match_all":{{}}}},"highlight":{{"fields":{{"m":{{"highlight_query":{k}}}}}}}}}"#
        ),
        format!(r#"{{"sort":[{{"items.n":{{"nested":{{"path":"items","filter":{k}}}}}}}]}}"#),
        format!(
            r#"{{"aggs":{{"t":{{"top_hits":{{"highlight":{{"highlight_query":{k},"fields":{{"*":{{}}}}}}}}}}}}}}"#
        ),
        format!(
            r#"{{"query":{{"match_all":{{}}}},"collapse":{{"field":"user","inner_hits":{{"name":"x","highlight":{{"highlight_query":{k},"fields":{{"*":{{}}}}}}}}}}}}"#
        ),
        format!(
            r#"{{"knn":{{"field":"vec","query_vector":[1,0],"k":5,"num_candidates":10,"filter":{k}}}}}"#
        ),
        format!(r#"{{"sub_searches":[{{"query":{k}}}],"rank":{{"rrf":{{}}}}}}"#),
        format!(r#"{{"retriever":{{"standard":{{"query":{{"match_all":{{}}}},"filter":{k}}}}}}}"#),
        format!(
            r#"{{"query":{{"knn":{{"field":"vec","query_vector":[1,0],"k":5,"num_candidates":10,"filter":{k}}}}}}}"#
        ),
    ];
    let mut requests: Vec<(&str, &str, String)> = Vec::new();
    for b in &bodies {
        requests.push(("POST", "/logs-*/_search", b.clone()));
        requests.push(("POST", "/logs-*/_async_search", b.clone()));
        requests.push(("POST", "/logs-*/_msearch", format!("{{}}\n{b}\n")));
    }
    for (path, b) in [
        ("/logs-*/_count", format!(r#"{{"query":{k}}}"#)),
        ("/logs-*/_validate/query", format!(r#"{{"query":{k}}}"#)),
        ("/logs-a/_explain/a1", format!(r#"{{"query":{k}}}"#)),
        (
            "/logs-*/_terms_enum",
            format!(r#"{{"field":"user","index_filter":{k}}}"#),
        ),
        (
            "/logs-*/_eql/search",
            format!(r#"{{"query":"any where true","filter":{k}}}"#),
        ),
        (
            "/_sql",
            format!(r#"{{"query":"SELECT 1 FROM \"logs-*\"","filter":{k}}}"#),
        ),
        (
            "/logs-*/_knn_search",
            format!(
                r#"{{"knn":{{"field":"vec","query_vector":[1,0],"k":1,"num_candidates":1}},"filter":{k}}}"#
            ),
        ),
    ] {
        requests.push(("POST", path, b));
    }
    for (method, path, body) in &requests {
        let mut h = head(method, path, None);
        if path.ends_with("_msearch") {
            h.content_type = Some("application/x-ndjson");
        }
        let permit = run(&h, Some(body.as_bytes()), logs)
            .unwrap_or_else(|e| panic!("{path} {body}: refused: {}", e.reason));
        let sent = &permit.body.as_ref().expect("a body").bytes;
        let mut found = Vec::new();
        for line in sent.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line).expect("json");
            unfiltered_knn(&v, "", &mut found);
        }
        assert!(
            found.is_empty(),
            "{path} {body}: unfiltered kNN at {found:?}"
        );
    }
}

/// range28: a histogram that can step through a range field reaches the backend only when its
/// own `hard_bounds` bound it or its field's type, in every allowed index each search reaches,
/// never steps (`dsl::histogram_fields`), on every route that takes aggregations, for every
/// token and backend.
mod histogram_field_types {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::dsl::cost::CostGuard;
    use crate::dsl::histogram_fields::FieldTypes;
    use crate::request::dialect::EmptyBuckets;

    const UNBOUNDED: &str =
        r#"{"size":0,"aggs":{"h":{"histogram":{"field":"r","interval":1e-9,"min_doc_count":1}}}}"#;
    const BOUNDED: &str = r#"{"size":0,"aggs":{"h":{"histogram":{"field":"r","interval":1,"min_doc_count":1,"hard_bounds":{"min":0,"max":100}}}}}"#;

    fn guards() -> Vec<CostGuard> {
        let limited = CostGuard {
            max_size: Some(100),
            max_buckets: Some(1_000),
            timeout_ms: Some(1_000),
            ..Default::default()
        };
        let mut out = Vec::new();
        for empty_buckets in [EmptyBuckets::Counted, EmptyBuckets::MadeFirst] {
            out.push(CostGuard {
                empty_buckets,
                ..Default::default()
            });
            out.push(CostGuard {
                empty_buckets,
                ..limited
            });
        }
        out
    }

    /// The field types needed, by expression, as the proxy reads them.
    fn needed(p: &Prepared) -> Vec<(String, Vec<String>)> {
        p.field_types_needed()
            .map(|(e, f)| (e.to_string(), f.names().map(str::to_string).collect()))
            .collect()
    }

    fn prepared(
        s: &Scope,
        method: &str,
        path: &str,
        ct: &str,
        body: &str,
    ) -> Result<Prepared, Rejection> {
        let mut h = head(method, path, None);
        h.content_type = Some(ct);
        let plan = es::plan(&h, s)?;
        es::prepare(plan, Some(body.as_bytes()), &h, s)
    }

    /// Every expression resolved to `logs-a`, `logs-b` and the foreign `secret`; the field
    /// `r` of the type `types` gives for each index (`None`: not described).
    fn authorize_with(
        s: &Scope,
        p: Prepared,
        types: impl Fn(&str) -> Option<&'static str>,
    ) -> Result<Permit, Rejection> {
        let mut r = Resolution::default();
        let all = ["logs-a", "logs-b", "secret"];
        for e in p.to_resolve() {
            r.names.insert(
                e.clone(),
                as_indices(all.iter().map(|s| s.to_string()).collect()).into(),
            );
        }
        for (e, fields) in p.field_types_needed() {
            let described: Vec<_> = fields
                .names()
                .map(|f| {
                    let pairs = all
                        .iter()
                        .filter_map(|i| Some((i.to_string(), Some(types(i)?.to_string()))))
                        .collect();
                    Arc::new(FieldTypes::new(f, pairs))
                })
                .collect();
            r.field_types.insert(e.to_string(), described);
        }
        es::authorize(p, &r, s)
    }

    fn refused(r: Result<Permit, Rejection>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(e.kind, RejectKind::Forbidden, "{}", e.reason);
        assert!(
            e.reason.contains("[hard_bounds] with [min] and [max]"),
            "{}",
            e.reason
        );
        e.reason
    }

    #[test]
    fn a_search_histogram_is_decided_by_its_fields_type_for_every_token_and_backend() {
        for guard in guards() {
            let mut s = scope();
            s.guard = guard;
            let search = |body: &str| {
                prepared(&s, "POST", "/logs-*/_search", "application/json", body).unwrap()
            };
            // Unbounded: its field named on the search's expression.
            let p = search(UNBOUNDED);
            assert_eq!(
                needed(&p),
                vec![("logs-*".to_string(), vec!["r".to_string()])],
                "{guard:?}"
            );
            // Numeric, date and unmapped in the allowed indices: forwarded; the foreign index's
            // type is not the search's.
            let ok = authorize_with(&s, p, |i| match i {
                "logs-a" => Some("long"),
                "logs-b" => Some("unmapped"),
                _ => Some("long_range"),
            });
            assert!(ok.is_ok(), "{guard:?}: {ok:?}");
            for range in [
                "integer_range",
                "long_range",
                "double_range",
                "date_range",
                "alias",
            ] {
                let reason = refused(authorize_with(&s, search(UNBOUNDED), |i| match i {
                    "logs-a" => Some("long"),
                    _ => Some(range),
                }));
                assert!(reason.contains(&format!("[{range}]")), "{reason}");
            }
            // An allowed index the lookup did not describe.
            refused(authorize_with(&s, search(UNBOUNDED), |i| {
                (i == "logs-a").then_some("long")
            }));
            // No lookup at all.
            let p = search(UNBOUNDED);
            let mut r = Resolution::default();
            r.names.insert("logs-*".into(), as_indices(logs("")).into());
            refused(es::authorize(p, &r, &s));
            // Bounded by its own hard bounds: nothing to look up, forwarded whatever the type.
            let p = search(BOUNDED);
            assert!(needed(&p).is_empty(), "{guard:?}");
            assert!(
                authorize_with(&s, p, |_| Some("long_range")).is_ok(),
                "{guard:?}"
            );
        }
    }

    /// On a backend that makes empty buckets first, `fill`'s bounds (from the query's range)
    /// bound the histogram: nothing to look up.
    #[test]
    fn fills_bounds_need_no_lookup() {
        let mut s = scope();
        s.guard.empty_buckets = EmptyBuckets::MadeFirst;
        let body = r#"{"size":0,"query":{"range":{"r":{"gte":0,"lte":100}}},"aggs":{"h":{"histogram":{"field":"r","interval":1}}}}"#;
        let p = prepared(&s, "POST", "/logs-*/_search", "application/json", body).unwrap();
        assert!(needed(&p).is_empty());
        // The same on a backend that counts them: no bounds added, the field looked up.
        s.guard.empty_buckets = EmptyBuckets::Counted;
        let p = prepared(&s, "POST", "/logs-*/_search", "application/json", body).unwrap();
        assert_eq!(
            needed(&p),
            vec![("logs-*".to_string(), vec!["r".to_string()])]
        );
    }

    #[test]
    fn msearch_searches_are_decided_on_their_own_expression() {
        for guard in guards() {
            let mut s = scope();
            s.guard = guard;
            let ndjson = format!(
                "{{\"index\":\"logs-a\"}}\n{BOUNDED}\n{{\"index\":\"logs-*\"}}\n{UNBOUNDED}\n{{\"index\":\"logs-b\"}}\n{{\"size\":0}}\n{{\"index\":\"logs-*\"}}\n{}\n",
                r#"{"size":0,"aggs":{"d":{"date_histogram":{"field":"t","fixed_interval":"1ms","min_doc_count":1}}}}"#
            );
            let p = || prepared(&s, "POST", "/_msearch", "application/x-ndjson", &ndjson).unwrap();
            assert_eq!(
                needed(&p()),
                vec![("logs-*".to_string(), vec!["r".to_string(), "t".to_string()])],
                "{guard:?}"
            );
            assert!(
                authorize_with(&s, p(), |_| Some("date")).is_ok(),
                "{guard:?}"
            );
            let reason = refused(authorize_with(&s, p(), |i| {
                Some(if i == "logs-b" { "date_range" } else { "date" })
            }));
            assert!(
                reason.starts_with("[histogram]") || reason.starts_with("[date_histogram]"),
                "{reason}"
            );
        }
    }

    /// The async search submit is a search: its histograms alike. A search on a point in time
    /// names no expression to look up on: such a histogram is refused there, a bounded one
    /// passes.
    #[test]
    fn async_submits_are_decided_and_point_in_time_searches_need_bounds() {
        let s = scope();
        let p = prepared(
            &s,
            "POST",
            "/logs-*/_async_search",
            "application/json",
            UNBOUNDED,
        )
        .unwrap();
        assert_eq!(
            needed(&p),
            vec![("logs-*".to_string(), vec!["r".to_string()])]
        );
        refused(authorize_with(&s, p, |_| Some("long_range")));
        let pit = crate::ids::continuation::seal(&s.ids, IdKind::Pit, "backend-pit");
        for path in ["/_search", "/_async_search"] {
            let with_pit = |body: &str| {
                let mut v: Value = serde_json::from_str(body).unwrap();
                v["pit"] = json!({"id": pit});
                v.to_string()
            };
            let e =
                prepared(&s, "POST", path, "application/json", &with_pit(UNBOUNDED)).unwrap_err();
            assert_eq!(e.kind, RejectKind::Forbidden, "{path}: {}", e.reason);
            assert!(
                e.reason.contains("on a point in time needs [hard_bounds]"),
                "{}",
                e.reason
            );
            let p = prepared(&s, "POST", path, "application/json", &with_pit(BOUNDED)).unwrap();
            assert!(needed(&p).is_empty());
            assert!(authorize_with(&s, p, |_| None).is_ok(), "{path}");
        }
    }
}
