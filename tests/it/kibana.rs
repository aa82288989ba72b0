//! Kibana through esgate, as request sequences: the internal user (an `all` token) starting up
//! and writing its saved objects, and an end user (a tenant-a `read` token, sent the way Kibana
//! forwards a logged-in user's credentials: `Basic user:secret`) creating a data view, asking
//! for value suggestions and opening a document; and an end user signing in through Kibana's
//! `http` provider (Bearer and ApiKey), whose `_security/_authenticate` and `_has_privileges`
//! esgate answers itself (`data/kibana/end_user_http_provider.json`). Requests carry the media
//! types and headers of Kibana's `@elastic/elasticsearch` 8 client; each test's comment (or
//! fixture step) names the Kibana source of the request shape.
//!
//! Invariant: an answer esgate makes itself passes only if it equals the fixture's expected
//! answer exactly; a data answer passes only if it equals the backend's answer to the same
//! request sent directly with the tenant filter applied by hand (the query wrapped as
//! `bool{filter:[term tenant a], must:[query]}`, the index `logs-*` replaced by the concrete
//! `logs-a,logs-b`), after removing `took`, `_shards`, scores and `_clusters`; the internal
//! user's writes must be visible on the backend itself.

use crate::support;

use serde_json::{json, Value};

use support::esgate::Esgate;
use support::fixture::{
    self, contains_leak_marker, strip_volatile, wrap_for_tenant_a, DIRECT_INDEX,
};
use support::http::{api_key, basic, bearer, send, Reply};

/// What `@elastic/elasticsearch` 8 sends as `accept` and, with a body, as `content-type`.
const ES8_MEDIA: &str = "application/vnd.elasticsearch+json; compatible-with=8";

fn tenant_a_token() -> Value {
    json!({
        "name": "kibana-user-tenant-a",
        "filters": [{"field": "tenant", "value": "a"}],
        "indices": ["logs-*"],
    })
}

fn normalised(reply: &Reply) -> Value {
    let mut v = reply.json();
    strip_volatile(&mut v);
    v
}

/// One request as Kibana's ES client sends it on behalf of a logged-in user.
async fn as_kibana_user(
    gw: &Esgate,
    secret: &str,
    method: &str,
    path_and_query: &str,
    body: Option<&Value>,
) -> Reply {
    let auth = basic("kibana-user", secret);
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("accept", ES8_MEDIA),
        ("x-elastic-product-origin", "kibana"),
        ("user-agent", "Kibana/8.15.3"),
    ];
    if body.is_some() {
        headers.push(("content-type", ES8_MEDIA));
    }
    let bytes = body.map(Value::to_string).unwrap_or_default();
    send(method, &gw.url(path_and_query), &headers, bytes)
        .await
        .unwrap_or_else(|e| panic!("{method} {path_and_query}: esgate does not answer: {e}"))
}

async fn direct(
    backend_url: &str,
    method: &str,
    path_and_query: &str,
    body: Option<&Value>,
) -> Reply {
    let bytes = body.map(Value::to_string).unwrap_or_default();
    let reply = send(
        method,
        &format!("{backend_url}{path_and_query}"),
        &[],
        bytes,
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {path_and_query}: the backend does not answer: {e}"));
    assert_eq!(
        reply.status,
        200,
        "direct {method} {path_and_query} fails, so a comparison would prove nothing: {}",
        reply.text()
    );
    reply
}

fn assert_ok_and_clean(what: &str, reply: &Reply) {
    assert_eq!(
        reply.status,
        200,
        "{what}: answered {}: {}",
        reply.status,
        reply.text()
    );
    assert!(
        !contains_leak_marker(&reply.body),
        "{what}: leak marker in {}",
        reply.text()
    );
}

/// Kibana 8's internal user at start-up: node version check, saved-objects index creation with
/// aliases, health wait, a config document written, searched and read back. An `all` token
/// relays all of it, Kibana's compatible-with=8 media types included (noida: osmem refuses them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_user_start_up_sequence_is_relayed_and_its_writes_reach_the_cluster() {
    let plan: Value =
        serde_json::from_str(include_str!("../data/kibana/internal_user_startup.json")).unwrap();
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let secret = gw.all_token().await;
    let auth = basic("kibana_system", &secret);
    let common: Vec<(String, String)> = plan["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let steps = plan["steps"].as_array().unwrap();
    assert!(steps.len() >= 5, "the start-up plan is loaded");
    let mut answers = Vec::new();
    for step in steps {
        let method = step["method"].as_str().unwrap();
        let path = step["path"].as_str().unwrap();
        let mut headers: Vec<(&str, &str)> = common
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push(("authorization", &auth));
        let body = match &step["body"] {
            Value::Null => String::new(),
            b => {
                headers.push(("content-type", ES8_MEDIA));
                b.to_string()
            }
        };
        let reply = send(method, &gw.url(path), &headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: esgate does not answer: {e}"));
        assert_eq!(
            u64::from(reply.status.as_u16()),
            step["status"].as_u64().unwrap(),
            "{method} {path}: {}",
            reply.text()
        );
        assert_eq!(
            reply.header("x-elastic-product"),
            Some("Elasticsearch"),
            "{method} {path}: the ES client's product check needs the header"
        );
        answers.push(reply.json());
    }
    let nodes = answers[0]["nodes"].as_object().expect("nodes answer");
    assert!(
        nodes.values().all(|n| n["version"].is_string()),
        "{}",
        answers[0]
    );
    assert_eq!(answers[5]["hits"]["total"]["value"], 1, "{}", answers[5]);
    assert_eq!(answers[6]["found"], true, "{}", answers[6]);
    // The write went through to the cluster, alias included.
    let r = send(
        "GET",
        &format!("{}/.kibana/_doc/config:8.15.3", backend.url()),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["_source"]["config"]["buildNum"], "79186");
}

/// Data view creation: Kibana's `/internal/index-pattern-management/resolve_index/{query}`
/// route calls `indices.resolveIndex({name, expand_wildcards: req.query.expand_wildcards ||
/// 'open'})` (data_view_management server/routes/resolve_index.ts),
/// i.e. `GET /_resolve/index/logs-*?expand_wildcards=open`. The user sees only the token's
/// indices: not `secret`, not the alias `logs-sa` that points at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_view_creation_resolves_only_the_tokens_indices() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_token()).await;
    for pattern in ["logs-*", "logs-**", "*"] {
        let path = format!("/_resolve/index/{pattern}?expand_wildcards=open");
        let reply = as_kibana_user(&gw, &secret, "GET", &path, None).await;
        assert_ok_and_clean(&path, &reply);
        let expected = direct(
            backend.url(),
            "GET",
            &format!("/_resolve/index/{DIRECT_INDEX}?expand_wildcards=open"),
            None,
        )
        .await;
        let got = normalised(&reply);
        assert_eq!(
            got,
            normalised(&expected),
            "{path}: esgate's answer differs from resolving the token's indices"
        );
        let names: Vec<&str> = got["indices"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["name"].as_str())
            .collect();
        assert_eq!(names, ["logs-a", "logs-b"], "{path}: {got}");
        assert_eq!(got["aliases"], json!([]), "{path}: {got}");
    }
}

/// Value suggestions with `autocomplete:valueSuggestionMethod = terms_agg`: Kibana's
/// termsAggSuggestions (autocomplete/terms_agg.ts of the unified_search, formerly data,
/// server plugin) runs `esClient.search({index, body})` with size 0, timeout 1000ms,
/// terminate_after 100000, the time range as `bool.filter`, and a terms aggregation named
/// `suggestions` with `include: '<escaped prefix>.*'`, execution_hint map, shard_size 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_suggestions_by_terms_aggregation_equal_the_filtered_search() {
    // osmem (noida ignores `include`), which refuses the compatible-with=8 media types esgate
    // passes through: this test sends Kibana's body as plain JSON.
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_token()).await;
    for (field, prefix, expected_keys) in [
        ("user", "", json!(["alice"])),
        ("user", "b", json!([])),
        ("tenant", "", json!(["a"])),
    ] {
        let body = json!({
            "size": 0,
            "timeout": "1000ms",
            "terminate_after": 100000,
            "query": {"bool": {"filter": [{"range": {"@timestamp": {
                "format": "strict_date_optional_time",
                "gte": "2024-01-01T00:00:00.000Z",
                "lte": "2024-01-31T00:00:00.000Z"}}}]}},
            "aggs": {"suggestions": {"terms": {
                "field": field,
                "include": format!("{prefix}.*"),
                "execution_hint": "map",
                "shard_size": 10}}}
        });
        let auth = basic("kibana-user", &secret);
        let reply = send(
            "POST",
            &gw.url("/logs-*/_search"),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
        .expect("esgate answers");
        assert_ok_and_clean("terms_agg suggestions", &reply);
        let mut direct_body = body.clone();
        direct_body["query"] = wrap_for_tenant_a(body.get("query"));
        let expected = direct(
            backend.url(),
            "POST",
            &format!("/{DIRECT_INDEX}/_search"),
            Some(&direct_body),
        )
        .await;
        let got = normalised(&reply);
        assert_eq!(got, normalised(&expected), "{field} {prefix:?}");
        let keys: Vec<Value> = got["aggregations"]["suggestions"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["key"].clone())
            .collect();
        assert_eq!(
            Value::Array(keys),
            expected_keys,
            "{field} {prefix:?}: {got}"
        );
    }
}

/// Discover's single-document view: its buildSearchBody (use_es_doc_search.ts) asks for one
/// id in one index with stored_fields ['*'], script_fields {}, version, _source, runtime_mappings {} and
/// fields [{field: '*', include_unmapped: true}]. Kibana 8 submits it through the data
/// plugin (an `_async_search`: neither backend implements it, see tests/it/async_search.rs); the
/// same body through `_search`
/// must find the user's own document and not another tenant's (noida: osmem has no
/// runtime_mappings for the direct comparison).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_view_body_finds_own_documents_only() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_token()).await;
    for (id, index, expected_total) in [("a1", "logs-a", 1), ("b2", "logs-a", 0)] {
        let body = json!({
            "query": {"bool": {"filter": [{"ids": {"values": [id]}}, {"term": {"_index": index}}]}},
            "stored_fields": ["*"],
            "script_fields": {},
            "version": true,
            "_source": true,
            "runtime_mappings": {},
            "fields": [{"field": "*", "include_unmapped": true}]
        });
        let path = format!("/{index}/_search");
        let reply = as_kibana_user(&gw, &secret, "POST", &path, Some(&body)).await;
        assert_ok_and_clean(&format!("document view {id}"), &reply);
        let mut direct_body = body.clone();
        direct_body["query"] = wrap_for_tenant_a(body.get("query"));
        let expected = direct(backend.url(), "POST", &path, Some(&direct_body)).await;
        let got = normalised(&reply);
        assert_eq!(got, normalised(&expected), "document view {id}");
        assert_eq!(got["hits"]["total"]["value"], expected_total, "{id}: {got}");
    }
}

/// Data view field list as Kibana 7.x sent it with the legacy client (`callFieldCapsApi`:
/// `fieldCaps({index, fields: '*', ignoreUnavailable: true, allowNoIndices: false})`, observed as
/// `GET /<pattern>/_field_caps` in tigera/calico's Kibana 7.17 allow-list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_view_fields_in_the_query_string_form_list_only_the_tokens_indices() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_token()).await;
    let query = "fields=*&ignore_unavailable=true&allow_no_indices=false";
    let reply = as_kibana_user(
        &gw,
        &secret,
        "GET",
        &format!("/logs-*/_field_caps?{query}"),
        None,
    )
    .await;
    assert_ok_and_clean("field_caps", &reply);
    let expected = direct(
        backend.url(),
        "GET",
        &format!("/{DIRECT_INDEX}/_field_caps?{query}"),
        None,
    )
    .await;
    let got = normalised(&reply);
    assert_eq!(got, normalised(&expected));
    assert_eq!(got["indices"], json!(["logs-a", "logs-b"]), "{got}");
    assert_eq!(
        got["fields"]["tenant"]["keyword"]["searchable"], true,
        "{got}"
    );
}

/// Discover's document table and histogram bodies as Kibana 8's SearchSource builds them
/// (search_source.ts flatten: track_total_hits, sort with format and unmapped_type, fields
/// `*` with include_unmapped, script_fields {}, stored_fields ['*'], runtime_mappings {},
/// _source false, the time range in bool.filter, highlight with Kibana's tags and
/// fragment_size 2147483647; es_search_strategy.ts adds ignore_unavailable=true and the shard
/// timeout). Kibana 8 submits these through `_async_search` (no backend here implements it;
/// tests/it/async_search.rs covers esgate's side);
/// the `es` strategy sends the same body to `_search`, as here (noida: osmem has no
/// runtime_mappings for the direct comparison).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_search_source_bodies_equal_the_filtered_search() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_token()).await;
    let time_range = json!({"bool": {"must": [], "filter": [{"range": {"@timestamp": {
        "format": "strict_date_optional_time",
        "gte": "2024-01-03T00:00:00.000Z",
        "lte": "2024-01-08T23:59:59.999Z"}}}], "should": [], "must_not": []}});
    let table = json!({
        "track_total_hits": true,
        "sort": [{"@timestamp": {"order": "desc", "format": "strict_date_optional_time",
                                 "unmapped_type": "boolean"}}],
        "fields": [{"field": "*", "include_unmapped": true},
                   {"field": "@timestamp", "format": "strict_date_optional_time"}],
        "size": 500,
        "version": true,
        "script_fields": {},
        "stored_fields": ["*"],
        "runtime_mappings": {},
        "_source": false,
        "query": time_range,
        "highlight": {"pre_tags": ["@kibana-highlighted-field@"],
                      "post_tags": ["@/kibana-highlighted-field@"],
                      "fields": {"*": {}}, "fragment_size": 2147483647},
        "timeout": "30000ms"
    });
    let histogram = json!({
        "aggs": {"0": {"date_histogram": {"field": "@timestamp", "fixed_interval": "12h",
                                          "time_zone": "UTC",
                                          "extended_bounds": {"min": 1704240000000_u64,
                                                              "max": 1704758399999_u64}}}},
        "size": 0,
        "fields": [{"field": "@timestamp", "format": "date_time"}],
        "script_fields": {},
        "stored_fields": ["*"],
        "runtime_mappings": {},
        "_source": {"excludes": []},
        "query": time_range,
        "track_total_hits": true,
        "timeout": "30000ms"
    });
    for (what, body) in [("document table", &table), ("histogram", &histogram)] {
        let reply = as_kibana_user(
            &gw,
            &secret,
            "POST",
            "/logs-*/_search?ignore_unavailable=true",
            Some(body),
        )
        .await;
        assert_ok_and_clean(what, &reply);
        let mut direct_body = body.clone();
        direct_body["query"] = wrap_for_tenant_a(body.get("query"));
        // esgate highlights with the client's query, not the token's filters (review 14).
        if body.get("highlight").is_some() {
            direct_body["highlight"]["highlight_query"] = body["query"].clone();
        }
        let expected = direct(
            backend.url(),
            "POST",
            &format!("/{DIRECT_INDEX}/_search?ignore_unavailable=true"),
            Some(&direct_body),
        )
        .await;
        let got = normalised(&reply);
        assert_eq!(got, normalised(&expected), "{what}");
        assert_eq!(got["hits"]["total"]["value"], 6, "{what}: {got}");
    }
}

#[test]
fn wrap_for_tenant_a_keeps_the_query_under_must() {
    assert_eq!(
        wrap_for_tenant_a(Some(&json!({"ids": {"values": ["a1"]}}))),
        json!({"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}],
                        "must": [{"ids": {"values": ["a1"]}}]}})
    );
    assert_eq!(
        wrap_for_tenant_a(None)["bool"]["must"],
        json!([{"match_all": {}}])
    );
}

/// Data view field list as Kibana 8 sends it: `callFieldCapsApi` (data_views server
/// fetcher/lib/es_api.ts) calls `fieldCaps({index, fields: ['*'], ignore_unavailable: true,
/// index_filter, expand_wildcards, types, include_empty_fields: true, allow_no_indices: false,
/// include_unmapped: false})`, and `@elastic/elasticsearch` 8 (src/api/api/field_caps.ts,
/// acceptedBody = fields, index_filter, runtime_mappings) puts `fields` in a JSON body, so the
/// request is a POST with `{"fields":["*"]}` (noida: osmem ignores `fields` in the body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_view_fields_in_the_kibana_8_body_form_list_only_the_tokens_indices() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(tenant_a_token()).await;
    let query = "ignore_unavailable=true&expand_wildcards=open&include_empty_fields=true\
                 &allow_no_indices=false&include_unmapped=false";
    let body = json!({"fields": ["*"]});
    let reply = as_kibana_user(
        &gw,
        &secret,
        "POST",
        &format!("/logs-*/_field_caps?{query}"),
        Some(&body),
    )
    .await;
    assert_ok_and_clean("field_caps with fields in the body", &reply);
    let expected = direct(
        backend.url(),
        "POST",
        &format!("/{DIRECT_INDEX}/_field_caps?{query}"),
        Some(&body),
    )
    .await;
    let got = normalised(&reply);
    assert_eq!(got, normalised(&expected));
    assert_eq!(got["indices"], json!(["logs-a", "logs-b"]), "{got}");
}

/// Kibana's `http` authentication provider (`xpack.security.authc.http`, schemes `apikey` and
/// `bearer`): every Kibana request carries the end user's `read` token as `Authorization:
/// Bearer <secret>` or `ApiKey base64(<id>:<secret>)`, and Kibana sends Elasticsearch
/// `_security/_authenticate` and `_security/user/_has_privileges` with it
/// (`data/kibana/end_user_http_provider.json` names the Kibana source of each request). esgate
/// answers both itself: the token's name, read-only Kibana actions, truthful index privileges.
/// Then the same header searches and sees only the tenant's documents.
async fn http_provider_sequence(backend_url: &str) {
    let plan: Value =
        serde_json::from_str(include_str!("../data/kibana/end_user_http_provider.json")).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    assert!(steps.len() >= 5, "the sign-in plan is loaded");
    let gw = Esgate::start(&[backend_url], "").await;
    let name = tenant_a_token()["name"].as_str().unwrap().to_owned();
    let (id, secret) = gw.token(tenant_a_token()).await;
    for auth in [bearer(&secret), api_key(&id, &secret)] {
        let scheme = auth.split(' ').next().unwrap().to_owned();
        for step in steps {
            let method = step["method"].as_str().unwrap();
            let path = step["path"].as_str().unwrap();
            let what = format!("{scheme} {method} {path} ({})", step["source"]);
            let mut headers = vec![
                ("authorization", auth.as_str()),
                ("accept", ES8_MEDIA),
                ("x-elastic-product-origin", "kibana"),
                ("user-agent", "Kibana/8.15.3"),
            ];
            let body = match &step["body"] {
                Value::Null => String::new(),
                b => {
                    headers.push(("content-type", ES8_MEDIA));
                    b.to_string()
                }
            };
            let reply = send(method, &gw.url(path), &headers, body)
                .await
                .unwrap_or_else(|e| panic!("{what}: esgate does not answer: {e}"));
            assert_ok_and_clean(&what, &reply);
            assert_eq!(
                reply.header("x-elastic-product"),
                Some("Elasticsearch"),
                "{what}: Kibana's client needs the product header"
            );
            let expected: Value = serde_json::from_str(
                &step["expect"]
                    .to_string()
                    .replace("{user}", &id)
                    .replace("{name}", &name),
            )
            .unwrap();
            assert_eq!(reply.json(), expected, "{what}");
            assert!(
                !reply.text().contains(&secret),
                "{what}: the secret is echoed"
            );
        }
        // Discover's searches go out with the same header: only tenant a's documents.
        let query = json!({"query": {"match_all": {}}});
        let reply = send(
            "POST",
            &gw.url("/logs-*/_count"),
            &[("authorization", auth.as_str())],
            query.to_string(),
        )
        .await
        .unwrap();
        assert_ok_and_clean(&format!("{scheme} count"), &reply);
        let expected = direct(
            backend_url,
            "POST",
            &format!("/{DIRECT_INDEX}/_count"),
            Some(&json!({"query": wrap_for_tenant_a(query.get("query"))})),
        )
        .await;
        assert_eq!(
            reply.json()["count"],
            expected.json()["count"],
            "{scheme} count"
        );
        assert!(
            reply.json()["count"].as_u64().unwrap() > 0,
            "the tenant has documents"
        );
    }
    // A wrong secret fails Kibana's authentication (401), never esgate's answer.
    let reply = send(
        "GET",
        &gw.url("/_security/_authenticate"),
        &[("authorization", &bearer("not-a-token"))],
        "",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text());
    // Kibana's internal user (`all`) is relayed to the cluster, not answered by esgate.
    let all = gw.all_token().await;
    let reply = send(
        "GET",
        &gw.url("/_security/_authenticate"),
        &[("authorization", &bearer(&all))],
        "",
    )
    .await
    .unwrap();
    assert!(
        !reply.text().contains("\"esgate\""),
        "an all token's _authenticate must be the cluster's: {}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_provider_sign_in_and_search_on_osmem() {
    let backend = fixture::seeded_osmem();
    http_provider_sequence(backend.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_provider_sign_in_and_search_on_noida() {
    let backend = fixture::seeded_noida();
    http_provider_sequence(backend.url()).await;
}

/// esgate answers the two security APIs itself: with a dead backend they still answer (a
/// literal index name, which needs a resolution to be answered truthfully, is then `false`),
/// while a search (which needs the cluster) fails with 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_answers_need_no_cluster() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("http://127.0.0.1:{port}");
    let gw = Esgate::start(&[dead.as_str()], "").await;
    let (id, secret) = gw.token(tenant_a_token()).await;
    let auth = bearer(&secret);
    let headers = [("authorization", auth.as_str())];
    let reply = send("GET", &gw.url("/_security/_authenticate"), &headers, "")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["username"], json!(id));
    for (name, granted) in [
        // A literal name needs a resolution to be answered truthfully: `false` without one.
        ("logs-a", false),
        // A pattern is answered by name (a search on it is narrowed, never refused).
        ("logs-*", true),
    ] {
        let (status, v) = gw
            .call(
                &secret,
                "POST",
                "/_security/user/_has_privileges",
                json!({"index": [{"names": [name], "privileges": ["read"]}]}),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["index"][name]["read"], json!(granted), "{name}: {v}");
        assert_eq!(v["has_all_requested"], json!(granted), "{name}: {v}");
    }
    let reply = send("GET", &gw.url("/_search"), &headers, "")
        .await
        .unwrap();
    assert_eq!(reply.status, 502, "{}", reply.text());
}
