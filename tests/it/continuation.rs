//! Scroll and point-in-time ids are bound to the token that created them: a continuation,
//! clear or close with another token's id, a raw backend id or a forged one is refused, and
//! every page carries only the token's documents. OpenSearch point in time runs on osmem,
//! Elasticsearch `_pit` on noida.

use crate::support;

use bytes::Bytes;
use serde_json::{json, Value};

use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};
use support::http::{bearer, send};

async fn call(gw: &Esgate, secret: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let r = send(
        method,
        &gw.url(path),
        &[("authorization", &bearer(secret))],
        bytes,
    )
    .await
    .unwrap();
    assert!(
        !contains_leak_marker(&r.body),
        "{method} {path}: {}",
        r.text()
    );
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    };
    (r.status.as_u16(), v)
}

async fn two_tenants(gw: &Esgate) -> (String, String) {
    let a = gw
        .token(json!({"name": "a", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}]}))
        .await
        .1;
    let b = gw
        .token(json!({"name": "b", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "b"}]}))
        .await
        .1;
    (a, b)
}

fn tenants_of(hits: &Value) -> Vec<String> {
    hits["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"]["tenant"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scroll_ids_are_sealed_bound_and_pages_hold_only_the_tenant() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (a, b) = two_tenants(&gw).await;

    let (s, first) = call(
        &gw,
        &a,
        "POST",
        "/logs-*/_search?scroll=1m&size=3",
        json!({"sort": ["n"]}),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    let mut id = first["_scroll_id"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("esgc1_"),
        "the backend's id is never handed out: {id}"
    );
    let mut seen = tenants_of(&first);

    // Tenant b cannot continue, clear or even probe tenant a's scroll.
    let (s, _) = call(
        &gw,
        &b,
        "POST",
        "/_search/scroll",
        json!({"scroll": "1m", "scroll_id": id}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &gw,
        &b,
        "DELETE",
        "/_search/scroll",
        json!({"scroll_id": [id]}),
    )
    .await;
    assert_eq!(s, 403);

    loop {
        let (s, page) = call(
            &gw,
            &a,
            "POST",
            "/_search/scroll",
            json!({"scroll": "1m", "scroll_id": id}),
        )
        .await;
        assert_eq!(s, 200, "{page}");
        let tenants = tenants_of(&page);
        if tenants.is_empty() {
            break;
        }
        seen.extend(tenants);
        id = page["_scroll_id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("esgc1_"));
        assert!(seen.len() <= 20, "runaway scroll");
    }
    assert_eq!(seen.len() as u64, fixture::TENANT_A_DOCS);
    assert!(seen.iter().all(|t| t == "a"));

    let (s, v) = call(
        &gw,
        &a,
        "DELETE",
        "/_search/scroll",
        json!({"scroll_id": [id]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // A raw backend scroll id, taken straight from the backend, is refused.
    let direct = send(
        "POST",
        &format!("{}/logs-b/_search?scroll=1m&size=1", backend.url()),
        &[],
        "{}".to_owned(),
    )
    .await
    .unwrap()
    .json();
    let raw = direct["_scroll_id"].as_str().unwrap();
    let (s, _) = call(
        &gw,
        &a,
        "POST",
        "/_search/scroll",
        json!({"scroll": "1m", "scroll_id": raw}),
    )
    .await;
    assert_eq!(s, 403);
}

/// Review 16: continuing a scroll that was cleared (or expired) answers 404
/// `search_context_missing_exception`, whose reason names the backend's context id ("No search
/// context found for id [N]"): a counter of every search context the node opened, any
/// tenant's, which the sealed scroll id exists to hide. A `read` token gets the error's type
/// only; another tenant's scrolls opened in between are not countable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scroll_context_does_not_name_its_id() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (a, b) = two_tenants(&gw).await;
    let open = |secret: String| {
        let url = gw.url("/logs-*/_search?scroll=1m&size=1");
        async move {
            let r = send(
                "POST",
                &url,
                &[
                    ("authorization", &bearer(&secret)),
                    ("content-type", "application/json"),
                ],
                b"{}".to_vec(),
            )
            .await
            .unwrap();
            assert_eq!(r.status.as_u16(), 200, "{}", r.text());
            r.json()["_scroll_id"].as_str().unwrap().to_owned()
        }
    };
    let id = open(a.clone()).await;
    // Tenant b's work moves the node's context counter.
    for _ in 0..3 {
        open(b.clone()).await;
    }
    let cleared = call(
        &gw,
        &a,
        "DELETE",
        "/_search/scroll",
        json!({"scroll_id": [id]}),
    )
    .await;
    assert_eq!(cleared.0, 200, "{}", cleared.1);
    let r = send(
        "POST",
        &gw.url("/_search/scroll"),
        &[
            ("authorization", &bearer(&a)),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&json!({"scroll": "1m", "scroll_id": id})).unwrap(),
    )
    .await
    .unwrap();
    let text = r.text();
    assert_eq!(r.status.as_u16(), 404, "{text}");
    assert!(text.contains("search_context_missing_exception"), "{text}");
    assert!(!text.contains("context found for id"), "{text}");
}

/// attack26c: the sealed id carried the backend's id in the clear after its MAC, so a token
/// read every shard's search-context number out of its own scroll id (base64url-decode it,
/// then the backend id): a node-wide counter that tenant b's searches move, the number
/// `a_missing_scroll_context_does_not_name_its_id` keeps out of the error. The backend's scroll
/// id (osmem, like Elasticsearch, starts it with `include_context_uuid`, base64) must not be
/// found in the sealed one, and the sealed id still pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_scroll_id_does_not_carry_the_backend_id() {
    use base64::Engine;
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (a, b) = two_tenants(&gw).await;
    let mut ids = Vec::new();
    for secret in [&a, &b, &b, &a] {
        let (status, v) = gw
            .call(
                secret,
                "POST",
                "/logs-*/_search?scroll=1m&size=1",
                json!({}),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{v}");
        ids.push(v["_scroll_id"].as_str().expect("a scroll id").to_owned());
    }
    // What Elasticsearch and osmem begin a scroll id with: `include_context_uuid`, base64.
    let backend_marker = b"FGluY2x1ZGVfY29udGV4dF91dWlk";
    for id in &ids {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id.strip_prefix("esgc1_").expect("a sealed id"))
            .expect("base64url");
        assert!(
            !raw.windows(backend_marker.len())
                .any(|w| w == backend_marker),
            "the backend's scroll id reads in the clear in {id}"
        );
    }
    let (status, v) = call(
        &gw,
        &a,
        "POST",
        "/_search/scroll",
        json!({"scroll": "1m", "scroll_id": ids[3]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_point_in_time_is_bound_and_filtered() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (a, b) = two_tenants(&gw).await;
    let (s, opened) = call(
        &gw,
        &a,
        "POST",
        "/logs-*/_search/point_in_time?keep_alive=1m",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{opened}");
    let pit = opened["pit_id"].as_str().unwrap().to_owned();
    assert!(pit.starts_with("esgc1_"));

    let body = json!({"size": 50, "pit": {"id": pit, "keep_alive": "1m"}});
    let (s, page) = call(&gw, &a, "POST", "/_search", body.clone()).await;
    assert_eq!(s, 200, "{page}");
    let tenants = tenants_of(&page);
    assert_eq!(tenants.len() as u64, fixture::TENANT_A_DOCS);
    assert!(tenants.iter().all(|t| t == "a"));
    if let Some(next) = page["pit_id"].as_str() {
        assert!(
            next.starts_with("esgc1_"),
            "a returned pit id is sealed too"
        );
    }

    let (s, _) = call(&gw, &b, "POST", "/_search", body.clone()).await;
    assert_eq!(s, 403, "tenant b cannot use tenant a's point in time");
    let (s, _) = call(&gw, &a, "POST", "/logs-a/_search", body).await;
    assert_eq!(s, 400, "a point in time search names no index");
    let (s, _) = call(
        &gw,
        &b,
        "DELETE",
        "/_search/point_in_time",
        json!({"pit_id": [pit]}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, v) = call(
        &gw,
        &a,
        "DELETE",
        "/_search/point_in_time",
        json!({"pit_id": [pit]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_point_in_time_is_bound_and_filtered() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (a, b) = two_tenants(&gw).await;
    let (s, opened) = call(&gw, &a, "POST", "/logs-*/_pit?keep_alive=1m", Value::Null).await;
    assert_eq!(s, 200, "{opened}");
    let pit = opened["id"].as_str().unwrap().to_owned();
    assert!(pit.starts_with("esgc1_"));
    let body = json!({"size": 50, "pit": {"id": pit, "keep_alive": "1m"}, "sort": [{"n": "asc"}]});
    let (s, page) = call(&gw, &a, "POST", "/_search", body.clone()).await;
    assert_eq!(s, 200, "{page}");
    let tenants = tenants_of(&page);
    assert_eq!(tenants.len() as u64, fixture::TENANT_A_DOCS);
    assert!(tenants.iter().all(|t| t == "a"));
    assert!(page["pit_id"]
        .as_str()
        .is_none_or(|p| p.starts_with("esgc1_")));
    let (s, _) = call(&gw, &b, "POST", "/_search", body).await;
    assert_eq!(s, 403);
    let (s, _) = call(&gw, &b, "DELETE", "/_pit", json!({"id": pit})).await;
    assert_eq!(s, 403);
    let (s, v) = call(&gw, &a, "DELETE", "/_pit", json!({"id": pit})).await;
    assert_eq!(s, 200, "{v}");
    let _ = Bytes::new();
}
