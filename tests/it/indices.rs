//! Index expressions a `read` token may send, resolved by esgate before anything reaches the
//! backend, on both real backends seeded with the security fixture (`logs-a`, `logs-b`, the
//! foreign index `secret` and the alias `logs-sa` → `secret`): exclusions, missing names with
//! `ignore_unavailable`, long index lists, aliases created after a resolution was cached, and
//! wildcards that reach none of the token's indices (forwarded as `*,-*`, answered empty).
//!
//! Invariant: each test asserts what the promise requires (a `read` token for tenant `a` on
//! `logs-*` never sees `secret`, nor its name or mapping, and is not refused what it may read),
//! never what esgate happens to do. Where a test comes from a security review, its doc says so.

use crate::support;

use serde_json::{json, Value};

use support::corpus::max_count;
use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture::{self, leaks};
use support::fixture::{assert_no_foreign_data, assert_tenant_a_count};
use support::http::{bearer, json_body, send, Case};

/// Finding 1 (osmem, the primary backend): an exclusion of the foreign alias makes
/// `_resolve/index` drop it, so esgate forwards the wildcard unchanged; the backend's search
/// still expands `logs-*` through the alias to `secret`.
/// (found by the first security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluding_the_foreign_alias_does_not_open_the_foreign_index_osmem() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    for path in ["/logs-*,-logs-sa/_count", "/l*,-logs-sa/_count"] {
        assert_tenant_a_count(path, &gw.get_as(&auth, path).await, fixture::TENANT_A_DOCS);
    }
    let path = "/logs-*,-logs-sa/_search?size=50";
    assert_no_foreign_data(path, &gw.get_as(&auth, path).await);
    let ndjson = "{\"index\":\"logs-*,-logs-sa\"}\n{\"size\":50}\n";
    let r = send(
        "POST",
        &gw.url("/_msearch"),
        &[
            ("authorization", &auth),
            ("content-type", "application/x-ndjson"),
        ],
        ndjson,
    )
    .await
    .unwrap();
    assert_no_foreign_data("_msearch logs-*,-logs-sa", &r);
}

/// Finding 2 (noida, Elasticsearch dialect): `_resolve/index` answers 404 when a list names a
/// missing index, esgate takes that as "nothing behind it" and forwards the expression as it is;
/// with `ignore_unavailable=true` the backend skips the missing name and expands `logs-*`
/// through the alias `logs-sa` to `secret`.
/// (found by the first security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_name_with_ignore_unavailable_does_not_skip_narrowing_noida() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    let path = "/logs-*,logs-nope/_count?ignore_unavailable=true";
    assert_tenant_a_count(path, &gw.get_as(&auth, path).await, fixture::TENANT_A_DOCS);
    for path in [
        "/logs-*,logs-nope/_search?ignore_unavailable=true&size=50",
        "/_resolve/index/logs-*,logs-nope?ignore_unavailable=true",
        "/logs-*,logs-nope/_mapping?ignore_unavailable=true",
    ] {
        assert_no_foreign_data(path, &gw.get_as(&auth, path).await);
    }
    let ndjson = "{\"index\":\"logs-*,logs-nope\",\"ignore_unavailable\":true}\n{\"size\":50}\n";
    let r = send(
        "POST",
        &gw.url("/_msearch"),
        &[
            ("authorization", &auth),
            ("content-type", "application/x-ndjson"),
        ],
        ndjson,
    )
    .await
    .unwrap();
    assert_no_foreign_data("_msearch ignore_unavailable", &r);
}

/// Finding 1 again on noida: exclusions are applied differently by `_resolve/index` and by
/// `_search`, so a resolution that says "nothing foreign" does not hold for the search.
/// (found by the first security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusions_do_not_open_the_foreign_index_noida() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    for (path, expected) in [
        ("/logs-*,-logs-sa/_count", fixture::TENANT_A_DOCS),
        // Everything excluded: the empty answer Elasticsearch gives.
        ("/logs-*,-logs-*/_count", 0),
    ] {
        assert_tenant_a_count(path, &gw.get_as(&auth, path).await, expected);
    }
    let path = "/logs-*,-logs-*/_search?size=50";
    assert_no_foreign_data(path, &gw.get_as(&auth, path).await);
}

/// A backend that refuses request lines longer than Elasticsearch's default
/// `http.max_initial_line_length` (4 KiB) with 400, like Elasticsearch, and otherwise answers
/// `_resolve/index` with no names and everything else with `{}`.
async fn backend_with_es_line_limit() -> String {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let line = req.method().as_str().len()
                        + req.uri().to_string().len()
                        + " HTTP/1.1".len()
                        + 1;
                    let (status, body): (u16, &'static [u8]) = if line > 4096 {
                        (
                            400,
                            br#"{"error":"too_long_http_line_exception","status":400}"#,
                        )
                    } else if req.uri().path().starts_with("/_resolve/index/") {
                        (200, br#"{"indices":[],"aliases":[],"data_streams":[]}"#)
                    } else {
                        (200, b"{}")
                    };
                    let mut r = http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(body),
                    ));
                    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Finding 6: a long but valid index list passes esgate's own path limit (4096 bytes), but the
/// `_resolve/index/...?expand_wildcards=open` request built from it exceeds Elasticsearch's
/// request-line limit; the backend's 400 becomes esgate's 502, a 5xx caused by client input.
/// (found by the first security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_index_list_is_not_a_backend_failure() {
    let url = backend_with_es_line_limit().await;
    let gw = Esgate::start(&[&url], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    let names: Vec<String> = (0..16)
        .map(|i| format!("logs-{}{i:02}", "x".repeat(247)))
        .collect();
    let path = format!("/{}/_count", names.join(","));
    assert!(path.len() <= 4096, "within esgate's own path limit");
    let r = gw.get_as(&auth, &path).await;
    assert!(
        r.status.as_u16() < 500,
        "a valid index list of {} bytes got {} {}",
        path.len(),
        r.status,
        r.text()
    );
}

/// Applies `_aliases` actions on the backend at `url`.
async fn aliases(url: &str, actions: &Value) {
    let added = send("POST", &format!("{url}/_aliases"), &[], actions.to_string())
        .await
        .unwrap();
    assert_eq!(added.status, 200, "{}", added.text());
}

/// Review 15: `_resolve/index` lists, for each of the token's indices, the names of every alias
/// on it, and for a backing index its data stream: names outside the token's patterns (another
/// tenant's view `tenant-b-private` on a shared index) reached a token that may not name them.
/// esgate keeps only the names its patterns allow; an alias the token may name stays.
async fn resolve_index_names_only_the_tokens_aliases(backend: &support::backend::Backend) {
    let actions = json!({"actions": [
        {"add": {"index": "logs-a", "alias": "tenant-b-private", "filter": {"term": {"tenant": "b"}}}},
        {"add": {"index": "logs-a", "alias": "logs-a-view"}},
    ]});
    aliases(backend.url(), &actions).await;
    let gw = Esgate::start(&[backend.url()], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    for path in [
        "/_resolve/index/logs-*",
        "/_resolve/index/logs-a",
        "/_resolve/index/*",
        "/_resolve/index/logs-a-view",
    ] {
        let r = gw.get_as(&auth, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            !r.text().contains("tenant-b-private"),
            "{path}: {}",
            r.text()
        );
        assert!(r.text().contains("logs-a-view"), "{path}: {}", r.text());
    }
    // With `filter_path` too (applied by esgate to its own answer).
    let path = "/_resolve/index/logs-a?filter_path=indices.aliases";
    let r = gw.get_as(&auth, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(
        r.json(),
        json!({"indices": [{"aliases": ["logs-a-view"]}]}),
        "{path}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_index_names_only_the_tokens_aliases_osmem() {
    resolve_index_names_only_the_tokens_aliases(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_index_names_only_the_tokens_aliases_noida() {
    resolve_index_names_only_the_tokens_aliases(&fixture::seeded_noida()).await;
}

/// Finding 1, third face: the resolution is cached for `backend.resolve_cache_ttl` (5 s) and the
/// wildcard is forwarded as it is, so an alias matching `logs-*` that an operator adds to a
/// foreign index is reachable by every token until the cached resolution expires (and, without
/// the cache, in the race between resolution and search).
/// (found by the first security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_foreign_alias_is_not_reachable_through_a_cached_resolution() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    // Resolve `logs-a*` once (only logs-a behind it), then an alias logs-a2 -> secret appears.
    let path = "/logs-a*/_count";
    let r = gw.get_as(&auth, path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let before = r.json()["count"].as_u64().unwrap();
    let actions = json!({"actions": [{"add": {"index": "secret", "alias": "logs-a2"}}]});
    aliases(backend.url(), &actions).await;
    let r = gw.get_as(&auth, path).await;
    assert_eq!(
        r.json()["count"].as_u64(),
        Some(before),
        "{path} now reaches the foreign index behind the new alias: {}",
        r.text()
    );
}

/// Every route that takes an index expression, asked with a wildcard that reaches none of the
/// token's indices (esgate forwards `*,-*`): no 5xx, no foreign name, document or count.
/// The second token's pattern reaches nothing at all, so even the index-less forms narrow to
/// `*,-*`.
/// `opensearch`: the backend speaks OpenSearch (its point in time is
/// `_search/point_in_time`; Elasticsearch's is `_pit`, and noida answers the OpenSearch path as
/// a plain search, which esgate rightly reports as a backend failure).
/// (a property checked by the third security review)
async fn wildcards_reaching_nothing_answer_nothing(backend: &str, opensearch: bool) {
    let gw = Esgate::start(&[backend], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let (_, none_secret) = gw
        .token(
            json!({"name": "nothing", "filters": [{"field": "tenant", "value": "a"}],
            "indices": ["nomatch-*"]}),
        )
        .await;
    let ndjson = |h: &str| Some(("application/x-ndjson", format!("{h}\n{{}}\n")));
    let cases: Vec<Case> = vec![
        ("a", "GET", "/logs-zz*/_search", None),
        ("a", "GET", "/logs-zz*/_search?allow_no_indices=false", None),
        (
            "a",
            "GET",
            "/logs-zz*/_search?ignore_unavailable=true",
            None,
        ),
        (
            "a",
            "POST",
            "/logs-zz*/_search",
            json_body(json!({"size": 0, "aggs": {"t": {"terms": {"field": "tenant"}}}})),
        ),
        ("a", "GET", "/logs-zz*,sec*/_search", None),
        ("a", "GET", "/logs-zz*/_search?scroll=1m&size=2", None),
        ("a", "GET", "/logs-zz*/_count", None),
        ("a", "POST", "/_msearch", ndjson(r#"{"index": "logs-zz*"}"#)),
        ("a", "POST", "/logs-zz*/_msearch", ndjson("{}")),
        (
            "a",
            "POST",
            "/_msearch",
            ndjson(r#"{"index": ["logs-zz*", "sec*"]}"#),
        ),
        ("a", "GET", "/logs-zz*/_field_caps?fields=*", None),
        ("a", "GET", "/logs-zz*/_mapping", None),
        ("a", "GET", "/logs-zz*/_mapping/field/user", None),
        ("a", "GET", "/_resolve/index/logs-zz*", None),
        ("a", "GET", "/_resolve/index/logs-zz*,sec*", None),
        (
            "a",
            "POST",
            "/logs-zz*/_terms_enum",
            json_body(json!({"field": "user"})),
        ),
        ("a", "GET", "/_cat/indices/logs-zz*?format=json", None),
        ("a", "GET", "/_cat/indices/logs-zz*", None),
        ("a", "POST", "/logs-zz*/_async_search?size=0", None),
        ("a", "POST", "/logs-zz*/_pit?keep_alive=1m", None),
        (
            "a",
            "POST",
            "/logs-zz*/_search/point_in_time?keep_alive=1m",
            None,
        ),
        (
            "a",
            "POST",
            "/logs-zz*/_eql/search",
            json_body(json!({"query": "any where true"})),
        ),
        ("a", "GET", "/logs-zz*/_validate/query", None),
        ("none", "GET", "/_search", None),
        ("none", "GET", "/_count", None),
        ("none", "GET", "/_search?scroll=1m", None),
        ("none", "GET", "/_field_caps?fields=*", None),
        ("none", "GET", "/_mapping", None),
        ("none", "GET", "/_cat/indices?format=json", None),
        ("none", "POST", "/_msearch", ndjson("{}")),
        ("none", "GET", "/_resolve/index/*", None),
        (
            "none",
            "POST",
            "/_terms_enum",
            json_body(json!({"field": "user"})),
        ),
        ("none", "POST", "/_pit?keep_alive=1m", None),
        ("none", "POST", "/_search/point_in_time?keep_alive=1m", None),
        ("none", "POST", "/_async_search?size=0", None),
    ];
    let mut failures = Vec::new();
    for (who, method, path, body) in cases {
        let pit = if opensearch { "_pit" } else { "point_in_time" };
        if path.contains(pit) {
            continue;
        }
        let auth = bearer(if who == "a" { &secret } else { &none_secret });
        let r = gw.send_as(&auth, method, path, body).await;
        // The promise itself for searches and counts: an empty answer, not a refusal.
        let route = path.split('?').next().unwrap_or(path);
        let searches = ["/_search", "/_count", "/_msearch"]
            .iter()
            .any(|end| route.ends_with(end));
        if r.status.as_u16() >= 500 {
            failures.push(format!("{who} {method} {path}: {} {}", r.status, r.text()));
        } else if let Some(what) = leaks(&r.body) {
            failures.push(format!("{who} {method} {path}: {what} in {}", r.text()));
        } else if searches && path.contains("allow_no_indices=false") {
            // Asked to fail when nothing matches: any client error, never documents.
        } else if searches
            && (r.status != 200
                || serde_json::from_slice::<Value>(&r.body).map_or(true, |v| max_count(&v) != 0))
        {
            failures.push(format!(
                "{who} {method} {path}: not an empty answer: {} {}",
                r.status,
                r.text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_reaching_nothing_answer_nothing_osmem() {
    let backend = fixture::seeded_osmem();
    wildcards_reaching_nothing_answer_nothing(backend.url(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_reaching_nothing_answer_nothing_noida() {
    let backend = fixture::seeded_noida();
    wildcards_reaching_nothing_answer_nothing(backend.url(), false).await;
}

/// Resolved names are percent-encoded in the forwarded path, so that a name holding `%2C`
/// cannot decode into two names (Elasticsearch decodes a path parameter before it splits it at
/// commas). Both test backends refuse such a name at creation, so that case is the unit test
/// `flow::tests::resolved_names_are_percent_encoded_in_the_forwarded_path`. This test proves
/// the encoding against the real backends: an index with a non-ASCII name behind `logs-*`
/// (sent as `logs-%C3%A9t%C3%A9`) is still counted, with the tenant's filter.
/// (session 6: names were joined into the path unencoded)
async fn a_resolved_non_ascii_name_is_forwarded_encoded(backend: &str) {
    let made = send("PUT", &format!("{backend}/logs-%C3%A9t%C3%A9"), &[], "")
        .await
        .unwrap();
    assert_eq!(made.status, 200, "{}", made.text());
    for (id, tenant) in [("e1", "a"), ("e2", "b")] {
        let doc = json!({"tenant": tenant, "message": "summer"});
        let r = send(
            "PUT",
            &format!("{backend}/logs-%C3%A9t%C3%A9/_doc/{id}?refresh=true"),
            &[("content-type", "application/json")],
            doc.to_string(),
        )
        .await
        .unwrap();
        assert!(r.status == 200 || r.status == 201, "{}", r.text());
    }
    let gw = Esgate::start(&[backend], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    for path in ["/logs-*/_count", "/_count"] {
        let r = gw.get_as(&auth, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(
            r.json()["count"].as_u64(),
            Some(fixture::TENANT_A_DOCS + 1),
            "{path}: {}",
            r.text()
        );
    }
    let path = "/logs-*/_search?size=50";
    assert_no_foreign_data(path, &gw.get_as(&auth, path).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_non_ascii_name_is_forwarded_encoded_osmem() {
    let backend = fixture::seeded_osmem();
    a_resolved_non_ascii_name_is_forwarded_encoded(backend.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_non_ascii_name_is_forwarded_encoded_noida() {
    let backend = fixture::seeded_noida();
    a_resolved_non_ascii_name_is_forwarded_encoded(backend.url()).await;
}

/// R19-IX-01 (attack19b): an expression of explicit names is forwarded as it is, so the
/// backend resolves it again at search time, while esgate checked the names from its cached
/// resolution (`backend.resolve_cache_ttl`, 5 s). An alias the token may name (`logs-view` →
/// `logs-a`), repointed at a foreign index after a request cached it, or a missing name
/// (`logs-new`, 404) that becomes an alias of a foreign index, reached `secret` until the
/// entry expired. The alias alone, in an `_msearch` header (forwarded as it is too), and a
/// missing name beside a wildcard (`logs-*,logs-new`, forwarded among the narrowed names).
async fn a_changed_alias_is_not_reachable_through_a_cached_resolution(url: &str) {
    async fn msearch_view2(gw: &Esgate, auth: &str) -> support::http::Reply {
        let ndjson = "{\"index\":\"logs-view2\"}\n{\"size\":50}\n";
        let headers = [
            ("authorization", auth),
            ("content-type", "application/x-ndjson"),
        ];
        send("POST", &gw.url("/_msearch"), &headers, ndjson)
            .await
            .unwrap()
    }
    aliases(
        url,
        &json!({"actions": [
            {"add": {"index": "logs-a", "alias": "logs-view"}},
            {"add": {"index": "logs-a", "alias": "logs-view2"}},
        ]}),
    )
    .await;
    let gw = Esgate::start(&[url], "").await;
    let auth = bearer(&gw.token(token_a()).await.1);
    let view = "/logs-view/_count";
    let r = gw.get_as(&auth, view).await;
    assert_eq!(r.status, 200, "{view}: {}", r.text());
    let before = r.json()["count"].as_u64().unwrap();
    let listed = "/logs-*,logs-new/_count?ignore_unavailable=true";
    assert_tenant_a_count(
        listed,
        &gw.get_as(&auth, listed).await,
        fixture::TENANT_A_DOCS,
    );
    let missing = "/logs-new/_count";
    let r = gw.get_as(&auth, missing).await;
    assert_eq!(r.status, 404, "{missing}: {}", r.text());
    // The same name in an `_msearch` header (forwarded as it is too).
    assert_no_foreign_data("_msearch logs-view2", &msearch_view2(&gw, &auth).await);
    aliases(
        url,
        &json!({"actions": [
            {"add": {"index": "secret", "alias": "logs-view"}},
            {"add": {"index": "secret", "alias": "logs-new"}},
            {"add": {"index": "secret", "alias": "logs-view2"}},
        ]}),
    )
    .await;
    let r = msearch_view2(&gw, &auth).await;
    assert!(
        r.status == 403 || (r.status == 200 && !fixture::contains_leak_marker(&r.body)),
        "_msearch logs-view2 reaches the foreign index the alias now points at: {} {}",
        r.status,
        r.text()
    );
    // Refused (the names now reach `secret`), or answered without it: never more than before.
    let r = gw.get_as(&auth, view).await;
    assert!(
        r.status == 403 || r.json()["count"].as_u64() == Some(before),
        "{view} reaches the foreign index the alias now points at: {} {}",
        r.status,
        r.text()
    );
    let r = gw.get_as(&auth, listed).await;
    assert!(
        r.status == 403 || r.json()["count"].as_u64() == Some(fixture::TENANT_A_DOCS),
        "{listed} reaches the foreign index behind the new alias: {} {}",
        r.status,
        r.text()
    );
    let r = gw.get_as(&auth, missing).await;
    assert_eq!(
        r.status,
        403,
        "{missing} reaches the foreign index behind the new alias: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_alias_is_not_reachable_through_a_cached_resolution_osmem() {
    let backend = fixture::seeded_osmem();
    a_changed_alias_is_not_reachable_through_a_cached_resolution(backend.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_alias_is_not_reachable_through_a_cached_resolution_noida() {
    let backend = fixture::seeded_noida();
    a_changed_alias_is_not_reachable_through_a_cached_resolution(backend.url()).await;
}
