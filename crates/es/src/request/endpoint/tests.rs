use std::collections::BTreeMap;

use super::*;

/// The action name of a route: its row in the route table.
fn action(route: &Route) -> &'static str {
    crate::routes::spec(route).action
}

fn check(method: Method, path: &str) -> Result<Endpoint, Rejection> {
    classify(method, path)
}

fn allowed_route(method: Method, path: &str) -> Option<Route> {
    match check(method, path) {
        Ok(Endpoint::Allowed(r)) => Some(r),
        _ => None,
    }
}

fn idx(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn classifies_the_allowed_routes() {
    use Method::*;
    let cases = [
        (Get, "/", Route::Root),
        (Head, "/", Route::Root),
        (Get, "/_search", Route::Search { index: None }),
        (Post, "/_search/", Route::Search { index: None }), // IDX-31 trailing slash
        (
            Post,
            "/logs-a/_search",
            Route::Search {
                index: idx("logs-a"),
            },
        ),
        (
            Get,
            "/logs-a%2Csecret/_search",
            Route::Search {
                index: idx("logs-a,secret"),
            },
        ), // IDX-03: decoded, checked later
        (Get, "/_all/_search", Route::Search { index: idx("_all") }),
        (Post, "/_count", Route::Count { index: None }),
        (
            Get,
            "/logs-*/_count",
            Route::Count {
                index: idx("logs-*"),
            },
        ),
        (Post, "/_msearch", Route::Msearch { index: None }),
        (
            Get,
            "/logs-a/_msearch",
            Route::Msearch {
                index: idx("logs-a"),
            },
        ),
        (Get, "/_mapping", Route::Mapping { index: None }),
        (
            Get,
            "/logs-a/_mapping",
            Route::Mapping {
                index: idx("logs-a"),
            },
        ),
        (Get, "/_field_caps", Route::FieldCaps { index: None }),
        (
            Post,
            "/logs-a/_field_caps",
            Route::FieldCaps {
                index: idx("logs-a"),
            },
        ),
        (
            Get,
            "/_cluster/health",
            Route::ClusterHealth { index: None },
        ),
        (
            Get,
            "/_cluster/health/logs-*",
            Route::ClusterHealth {
                index: idx("logs-*"),
            },
        ),
        (
            Get,
            "/_resolve/index/logs-%2A",
            Route::ResolveIndex {
                name: "logs-*".to_string(),
            },
        ),
    ];
    for (m, p, want) in cases {
        assert_eq!(allowed_route(m, p), Some(want), "{m:?} {p}");
    }
}

#[test]
fn classifies_the_async_search_routes() {
    use Method::*;
    let by_id = |op, id: &str| Route::AsyncById {
        op,
        id: id.to_string(),
    };
    let cases = [
        (Post, "/_async_search", Route::AsyncSubmit { index: None }),
        (
            Post,
            "/logs-%2A/_async_search/",
            Route::AsyncSubmit {
                index: idx("logs-*"),
            },
        ),
        (
            Get,
            "/_async_search/esgc1_abc",
            by_id(AsyncOp::Get, "esgc1_abc"),
        ),
        (
            Get,
            "/_async_search/status/esgc1_abc",
            by_id(AsyncOp::Status, "esgc1_abc"),
        ),
        (
            Delete,
            "/_async_search/esgc1_abc",
            by_id(AsyncOp::Delete, "esgc1_abc"),
        ),
        // The id is decoded like any path value; opening it decides.
        (Get, "/_async_search/a%3D", by_id(AsyncOp::Get, "a=")),
    ];
    for (m, p, want) in cases {
        assert_eq!(allowed_route(m, p), Some(want), "{m:?} {p}");
    }
    assert_eq!(
        allowed_route(Post, "/_async_search").map(|r| action(&r)),
        Some("async_search_submit")
    );
}

#[test]
fn denies_lookalike_and_normalisation_tricks() {
    use Method::*;
    let cases = [
        (Get, "/%5Fsearch"), // IDX-30: literal segments are not decoded
        (Get, "/logs-a/%5Fsearch"),
        (Get, "/logs-a/_SEARCH"),    // case-sensitive
        (Post, "/_search/template"), // A6
        (Post, "/logs-a/_search/template"),
        (Get, "/_search/scroll/abc"), // STATE-05: ids only in the body
        (Delete, "/_search/scroll/_all"),
        (Get, "/_search/point_in_time/_all"),
        (Post, "/logs-a/_fleet/_fleet_search"), // A26
        (Post, "/_fleet/_fleet_msearch"),
        (Get, "/_searchable_snapshots/stats"),
        (Get, "/logs-a/_search_shards"),
        (Post, "/_application/search_application/x/_search"),
        (Get, "/logs-a/doc/_search"), // ENC-30 typed route
        (Get, "/logs-b/doc/b1"),      // ENC-29
        (Get, "/logs-a/_doc/a1"),     // EP-01
        (Head, "/logs-a/_doc/a1"),
        (Post, "/_mget"),
        (Delete, "/logs-a/_search"),
        (Put, "/logs-a/_mapping"),
        (Get, "/_mapping/field/x"),
        (Get, "/_cluster/state"),
        (Get, "/_resolve/cluster/logs-a"),
        (Head, "/_search"),
        (Delete, "/"),
        (Get, "/_async_search"),
        (Put, "/logs-a/_async_search"),
        (Post, "/_async_search/x"),
        (Get, "/_async_search/x/y"),
        (Delete, "/_async_search/status/x"),
        (Get, "/logs-a/_async_search/x"),
        (Post, "/_sql/translate"),
        (Post, "/_query/async"),
        (Get, "/logs-a/_pit"),
        (Get, "/_plugins/_sql"),
    ];
    for (m, p) in cases {
        match check(m, p) {
            Ok(Endpoint::Denied(_)) | Err(_) => {}
            Ok(Endpoint::Allowed(r)) => panic!("{m:?} {p} allowed as {r:?}"),
        }
    }
}

#[test]
fn rejects_malformed_paths() {
    use Method::*;
    let cases = [
        "logs-a/_search", // not origin-form
        "http://es/_search",
        "//secret/_search",                     // IDX-27
        "/logs-a/../secret/_search",            // IDX-26
        "/logs-a/_search/../../secret/_search", // IDX-28
        "/./_search",
        "/_search//",
        "/logs-a/_search\u{0}", // IDX-33
        "/logs a/_search",
        "/logs-a%zz/_search",
        "/logs-a%ff/_search",
        "/lo\u{e9}gs/_search",
        "/logs-a\\_search",
    ];
    for p in cases {
        let err = check(Get, p).unwrap_err();
        assert_eq!(err.kind, RejectKind::BadRequest, "{p}");
    }
}

/// The split as it was (every segment collected into a `Vec`, then checked in order): the
/// in-place segments must give the same list, or the same refusal, at every length.
fn split_as_collected(raw: &str) -> Result<Vec<&str>, Rejection> {
    let rest = raw.strip_prefix('/').expect("origin-form");
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segs: Vec<&str> = rest.split('/').collect();
    for s in &segs {
        if s.is_empty() {
            return Err(Rejection::bad_request("request path has an empty segment"));
        }
        if *s == "." || *s == ".." {
            return Err(Rejection::bad_request("request path has a dot segment"));
        }
    }
    Ok(segs)
}

#[test]
fn segments_in_place_and_spilled_split_as_collected() {
    let names = [
        "logs-a", "_search", "x", "_doc", "1", "b", "c", "d", "e", "f", "g", "h",
    ];
    for n in 0..=names.len() {
        for tail in ["", "/", "//", "/.", "/..", "/./z", "//z"] {
            // The odd segment at every place, the last one past the in-place room included.
            let path = format!("/{}{tail}", names[..n].join("/"));
            let got = split_path(&path).map(|s| s.as_slice().to_vec());
            assert_eq!(got, split_as_collected(&path), "{path}");
            let dotted = format!("/{}/../{}", names[..n].join("/"), names[..n].join("/"));
            let got = split_path(&dotted).map(|s| s.as_slice().to_vec());
            assert_eq!(got, split_as_collected(&dotted), "{dotted}");
        }
    }
}

#[test]
fn long_paths_are_denied_or_refused_whatever_their_length() {
    use Method::*;
    // Past the segments kept in place: refused for an empty or a dot segment anywhere, and
    // never allowed; denied by what their first segments say.
    let long = |first: &str, n: usize| {
        let mut p = String::from(first);
        for i in 0..n {
            p.push_str(&format!("/s{i}"));
        }
        p
    };
    for n in 0..20 {
        let search = long("/logs-a/_search", n);
        let got = check(Get, &search).unwrap();
        if n == 0 {
            assert!(matches!(got, Endpoint::Allowed(_)), "{search}");
        } else {
            assert_eq!(got, Endpoint::Denied(Denied::Continuation), "{search}");
        }
        assert_eq!(
            check(Get, &long("/logs-a/_doc", n)).unwrap(),
            Endpoint::Denied(Denied::DocumentRead)
        );
        assert_eq!(
            check(Post, &long("/_bulk", n)).unwrap(),
            Endpoint::Denied(Denied::Write)
        );
        for odd in ["//x", "/./x", "/../x"] {
            let p = format!("{}{odd}", long("/logs-a/_search", n));
            assert_eq!(
                check(Get, &p).unwrap_err().kind,
                RejectKind::BadRequest,
                "{p}"
            );
        }
    }
}

#[test]
fn encoded_slash_and_dots_in_index_stay_inside_the_value() {
    // IDX-29: `%2F` is decoded into the index value, which index checks then reject.
    assert_eq!(
        allowed_route(Method::Get, "/logs-a%2F..%2Fsecret/_search"),
        Some(Route::Search {
            index: idx("logs-a/../secret")
        })
    );
}

#[test]
fn unsupported_methods_are_405() {
    for m in ["TRACE", "CONNECT", "OPTIONS", "PATCH", "get", "FOO"] {
        assert_eq!(
            parse_method(m).unwrap_err().kind,
            RejectKind::MethodNotAllowed,
            "{m}"
        );
    }
    assert_eq!(parse_method("GET"), Ok(Method::Get));
}

#[test]
fn wrong_method_on_an_allowed_path_is_denied_without_a_misleading_family() {
    for (m, p) in [
        (Method::Delete, "/logs-a/_search"),
        (Method::Put, "/logs-a/_count"),
    ] {
        assert_eq!(
            check(m, p),
            Ok(Endpoint::Denied(Denied::Unknown)),
            "{m:?} {p}"
        );
    }
    assert_eq!(
        check(Method::Put, "/logs-a/_field_caps"),
        Ok(Endpoint::Denied(Denied::Unknown))
    );
    assert_eq!(
        check(Method::Get, "/logs-a/_async_search"),
        Ok(Endpoint::Denied(Denied::Continuation))
    );
}

#[test]
fn denied_reason_names_the_action_family() {
    let Ok(Endpoint::Denied(d)) = check(Method::Post, "/_sql/translate") else {
        panic!("_sql not denied");
    };
    assert_eq!(d, Denied::Sql);
    assert_eq!(
        d.rejection().reason,
        "action [sql] is not allowed for this token"
    );
}

fn read_tsv(name: &str) -> Vec<Vec<String>> {
    let path = format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// "POST/PUT" rows: take the first. `None` for methods esgate answers with 405.
fn method_of(s: &str) -> Option<Method> {
    let first = s.split('/').next().unwrap_or(s);
    parse_method(first).ok()
}

fn decision(m: Option<Method>, path: &str) -> String {
    let Some(m) = m else {
        return "reject:MethodNotAllowed".to_string();
    };
    match classify(m, path) {
        Ok(Endpoint::Allowed(r)) => format!("allow:{}", action(&r)),
        Ok(Endpoint::Denied(d)) => format!("deny:{d:?}"),
        Err(e) => format!("reject:{:?}", e.kind),
    }
}

/// Routes where esgate decides differently from the TSV's proposal, with the reason.
const ES_OVERRIDES: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/_async_search",
        "async search submit, rewritten like _search; the id is sealed for this token",
    ),
    (
        "POST",
        "/{index}/_async_search",
        "async search submit on checked indices; the id is sealed for this token",
    ),
    (
        "GET",
        "/_async_search/{id}",
        "bound: only async search ids sealed for this token",
    ),
    (
        "GET",
        "/_async_search/status/{id}",
        "bound: only async search ids sealed for this token",
    ),
    (
        "DELETE",
        "/_async_search/{id}",
        "bound: only async search ids sealed for this token",
    ),
    (
        "POST",
        "/_resolve/index/{name}",
        "the client's default method for resolve_index; forwarded as a checked GET",
    ),
    (
        "POST",
        "/_search/scroll",
        "bound: only scroll ids sealed for this token",
    ),
    (
        "DELETE",
        "/_search/scroll",
        "bound: only own sealed ids, never _all",
    ),
    (
        "POST",
        "/{index}/_pit",
        "index-checked; the id is sealed for this token",
    ),
    ("DELETE", "/_pit", "bound: only own sealed ids"),
    (
        "GET",
        "/",
        "root is forwarded (assignment: action root; version banner accepted)",
    ),
    ("HEAD", "/", "root ping is forwarded (clients probe it)"),
    (
        "POST",
        "/{index}/_field_caps",
        "field_caps on checked indices; field-name residual (A11) accepted",
    ),
    (
        "POST",
        "/_field_caps",
        "field_caps defaults to the token's patterns",
    ),
    (
        "GET",
        "/_cluster/health",
        "the token's indices only (level=cluster, never a wait), clients probe it",
    ),
    (
        "GET",
        "/_cluster/health/{index}",
        "health of the checked, narrowed indices (level=cluster, never a wait)",
    ),
    (
        "GET",
        "/{index}/_mapping",
        "mapping on checked indices; field-name residual (A11) accepted",
    ),
    (
        "GET",
        "/_mapping",
        "mapping defaults to the token's patterns",
    ),
    (
        "POST",
        "/{index}/_validate/query",
        "query wrapped in the token's filters; rewrite and all_shards refused",
    ),
    (
        "POST",
        "/_validate/query",
        "validate_query defaults to the token's patterns",
    ),
    (
        "POST",
        "/{index}/_terms_enum",
        "answered from a terms aggregation with the token's filters (transform)",
    ),
    (
        "GET",
        "/_cat/indices",
        "the token's indices only; counting columns removed for filtered tokens",
    ),
    (
        "GET",
        "/_cat/indices/{index}",
        "the narrowed expression only; counting columns removed for filtered tokens",
    ),
    (
        "POST",
        "/{index}/_explain/{id}",
        "query wrapped in the token's filters; unmatched answers like missing",
    ),
    (
        "POST",
        "/_query",
        "ES|QL: one checked FROM, allow-listed commands, filter wrapped (es::querylang::esql)",
    ),
    (
        "POST",
        "/_sql",
        "SQL: one checked table, filter wrapped, cursors sealed (es::querylang::sql)",
    ),
    ("POST", "/_sql/close", "bound: only own sealed SQL cursors"),
    (
        "POST",
        "/{index}/_eql/search",
        "EQL on checked path indices, filter wrapped, synchronous only",
    ),
];

const OS_OVERRIDES: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/_search/scroll",
        "bound: only scroll ids sealed for this token",
    ),
    (
        "DELETE",
        "/_search/scroll",
        "bound: only own sealed ids, never _all",
    ),
    (
        "POST",
        "/index/_search/point_in_time",
        "index-checked; the id is sealed for this token",
    ),
    (
        "DELETE",
        "/_search/point_in_time",
        "bound: only own sealed ids",
    ),
    ("GET", "/", "root is forwarded"),
    ("HEAD", "/", "root ping is forwarded"),
    (
        "GET",
        "/_resolve/index/name",
        "resolve_index with a checked expression",
    ),
    (
        "POST",
        "/index/_field_caps",
        "field_caps on checked indices",
    ),
    ("GET", "/index/_mapping", "mapping on checked indices"),
    ("GET", "/_cluster/health", "the token's indices only"),
    (
        "GET",
        "/_cluster/health/index",
        "health of the checked, narrowed indices",
    ),
    (
        "POST",
        "/index/_validate/query",
        "query wrapped in the token's filters; rewrite and all_shards refused",
    ),
    (
        "GET",
        "/_cat/indices/index",
        "the narrowed expression only; counting columns removed for filtered tokens",
    ),
];

fn instantiate_es(template: &str) -> String {
    let mut out = String::new();
    for seg in template.split('/').skip(1) {
        out.push('/');
        let value = match seg {
            "{index}" => "logs-a",
            "{id}" => "a1",
            s if s.starts_with('{') => "x",
            s => s,
        };
        out.push_str(value);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn instantiate_os(template: &str) -> String {
    let mut out = String::new();
    let mut previous = "";
    for seg in template.split('/').skip(1) {
        out.push('/');
        let value = match seg {
            // `/_resolve/index/name`: here `index` is the literal API segment.
            "index" if previous == "_resolve" => "index",
            "index" => "logs-a",
            "id" => "a1",
            "name" => "logs-a",
            s => s,
        };
        out.push_str(value);
        previous = seg;
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[test]
fn every_elasticsearch_route_gets_the_tsv_decision_or_a_listed_override() {
    let rows = read_tsv("endpoints-es.tsv");
    assert!(rows.len() > 700, "inventory too small: {}", rows.len());
    let mut problems = Vec::new();
    let mut categories: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        let [_, _, method, template, tsv, reason] = row.as_slice() else {
            panic!("bad row {row:?}");
        };
        let m = method_of(method);
        let path = instantiate_es(template);
        let got = decision(m, &path);
        *categories.entry(got.clone()).or_default() += 1;
        let first_method = method.split('/').next().unwrap_or("");
        let overridden = ES_OVERRIDES
            .iter()
            .any(|(om, ot, _)| *om == first_method && *ot == template);
        let allowed = got.starts_with("allow:");
        let tsv_allows = tsv.starts_with("ALLOW-REWRITE") && !tsv.contains("optional");
        if overridden {
            if !allowed {
                problems.push(format!(
                    "override not allowed: {method} {template} -> {got}"
                ));
            }
            continue;
        }
        if allowed != tsv_allows {
            problems.push(format!("{method} {template} [{tsv}] -> {got}"));
        }
        // Rows the TSV ties to a catalogue item must land in a category covering it.
        if let Some(Ok(Endpoint::Denied(d))) = m.map(|m| classify(m, &path)) {
            let ids: Vec<&str> = reason
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| {
                    w.len() >= 2 && w.starts_with('A') && w[1..].bytes().all(|b| b.is_ascii_digit())
                })
                .collect();
            if !ids.is_empty() && !ids.iter().any(|id| d.catalogue().contains(id)) {
                problems.push(format!("{method} {template} [{reason}] -> {d:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(categories.len() > 10, "{categories:?}");
}

#[test]
fn every_opensearch_route_gets_the_tsv_decision_or_a_listed_override() {
    let rows = read_tsv("endpoints-opensearch.tsv");
    assert!(rows.len() > 400, "inventory too small: {}", rows.len());
    let mut problems = Vec::new();
    for row in &rows {
        let [method, template, tsv] = row.as_slice() else {
            panic!("bad row {row:?}");
        };
        let m = method_of(method);
        let got = decision(m, &instantiate_os(template));
        let overridden = OS_OVERRIDES
            .iter()
            .any(|(om, ot, _)| om == method && ot == template);
        let allowed = got.starts_with("allow:");
        let tsv_allows = tsv.starts_with("ALLOW-REWRITE") && !tsv.contains("optional");
        if overridden {
            if !allowed {
                problems.push(format!(
                    "override not allowed: {method} {template} -> {got}"
                ));
            }
            continue;
        }
        if allowed != tsv_allows {
            problems.push(format!("{method} {template} [{tsv}] -> {got}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Mutated paths are never classified as a different allowed route than ES would use.
        #[test]
        fn mutated_paths_never_reach_another_allowed_route(
            prefix in prop::sample::select(vec!["", "/logs-a", "/_all", "/%5Fall", "/logs-%2A"]),
            api in prop::sample::select(vec!["_search", "_count", "_msearch", "_mapping", "_field_caps"]),
            mutation in 0usize..7,
        ) {
            let api_m = match mutation {
                0 => api.to_string(),
                1 => api.replacen('_', "%5F", 1),
                2 => api.to_uppercase(),
                3 => format!("{api}/."),
                4 => format!("./{api}"),
                5 => format!("/{api}"),
                _ => format!("{api}/x"),
            };
            let path = format!("{prefix}/{api_m}");
            let got = classify(Method::Post, &path);
            if let Ok(Endpoint::Allowed(route)) = got {
                prop_assert_eq!(mutation, 0, "mutated path {} allowed", path);
                let action = action(&route);
                prop_assert_eq!(action, api.trim_start_matches('_'));
            }
        }

        #[test]
        fn arbitrary_paths_never_panic(path in "[/a-z_%0-9.*,:-]{0,30}") {
            let _ = classify(Method::Get, &path);
        }
    }
}
