//! Third security review: each finding proven by a test that failed before its fix, kept as
//! regression tests.
//!
//! - A `knn` query inside `query` (or `_count`) gets the token's filters only as a sibling
//!   `bool.filter`, which Elasticsearch applies after the vector search (a post-filter): the
//!   answer depends on other tenants' vectors (noida behaves like Elasticsearch here).
//! - `retriever` beside `sub_searches` is forwarded with the sub-searches unwrapped.
//! - `_has_privileges` says a token may `read` an alias its patterns match but esgate refuses
//!   (the alias `logs-sa` → `secret`), and, for a `*` token, the dot-indices a `/regex/` name
//!   denotes.
//! - The shared body budget is charged a whole KiB per received frame: a 2 KB body sent in
//!   one-byte chunks takes 2 MB of it, so one small request starves every other (429).
//!
//! Invariant: each test asserts what the promise requires of a `read` token for tenant `a` on
//! `logs-*`, never what esgate happens to answer.

use crate::support;

use serde_json::{json, Value};

use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send, Reply};
use support::recording::Recording;

async fn post_json(url: &str, auth: Option<&str>, method: &str, body: &Value) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    send(method, url, &headers, body.to_string().into_bytes())
        .await
        .expect("answers")
}

fn ids(r: &Reply) -> Vec<String> {
    let v = r.json();
    let mut out: Vec<String> = v["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `logs-vec`: one tenant-a vector at the origin, one tenant-b vector far away. A tenant-a
/// kNN query aimed at the tenant-b vector must answer exactly what it answers once the
/// tenant-b document is gone: its result may not depend on other tenants' documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knn_query_answers_the_same_whatever_other_tenants_vectors_are() {
    let backend = fixture::seeded_noida();
    let base = backend.url();
    let r = post_json(
        &format!("{base}/logs-vec"),
        None,
        "PUT",
        &json!({"mappings": {"properties": {"tenant": {"type": "keyword"},
            "v": {"type": "dense_vector", "dims": 2, "index": true, "similarity": "l2_norm"}}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for (id, tenant, v) in [("va", "a", [0.0, 0.0]), ("vb", "b", [10.0, 10.0])] {
        let r = post_json(
            &format!("{base}/logs-vec/_doc/{id}?refresh=true"),
            None,
            "PUT",
            &json!({"tenant": tenant, "v": v}),
        )
        .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    let gw = Esgate::start(&[base], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let knn = json!({"knn": {"field": "v", "query_vector": [10.0, 10.0], "num_candidates": 1}});
    let asks = [
        ("/logs-vec/_search", json!({"size": 10, "query": knn})),
        (
            "/logs-vec/_search",
            json!({"size": 10, "query": {"bool": {"should": [knn]}}}),
        ),
        ("/logs-vec/_count", json!({"query": knn})),
    ];
    // What tenant a sees of each answer: the hit ids and a count.
    let seen = |r: &Reply| (ids(r), r.json()["count"].clone());
    let mut before = Vec::new();
    for (path, body) in &asks {
        let r = post_json(&gw.url(path), Some(&auth), "POST", body).await;
        assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
        before.push(seen(&r));
    }
    // The tenant-b document goes away; nothing tenant a may see changed.
    let r = send(
        "DELETE",
        &format!("{base}/logs-vec/_doc/vb?refresh=true"),
        &[],
        Vec::new(),
    )
    .await
    .expect("backend answers");
    assert!(r.status.is_success(), "{}", r.text());
    let mut changed = Vec::new();
    for ((path, body), was) in asks.iter().zip(before) {
        let r = post_json(&gw.url(path), Some(&auth), "POST", body).await;
        assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
        let now = seen(&r);
        if now != was {
            changed.push(format!("{path} {body}: {was:?} became {now:?}"));
        }
    }
    assert!(
        changed.is_empty(),
        "tenant a's answers changed when a tenant-b vector was deleted:\n{}",
        changed.join("\n")
    );
}

/// Every sub-search that reaches the backend carries the token's filters, whatever sits
/// beside it (here a `retriever`, which makes esgate skip the `sub_searches` wrapping).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_searches_beside_a_retriever_are_never_forwarded_unfiltered() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json(
        "POST",
        "/logs-a/_search",
        200,
        json!({"took": 1, "timed_out": false, "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}),
    );
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let body = json!({
        "retriever": {"standard": {"query": {"match_all": {}}}},
        "sub_searches": [{"query": {"term": {"tenant": "b"}}}],
    });
    let r = post_json(&gw.url("/logs-a/_search"), Some(&auth), "POST", &body).await;
    for sent in es.requests_to("POST", "/logs-a/_search") {
        let v = sent.json();
        for sub in v["sub_searches"].as_array().into_iter().flatten() {
            assert_eq!(
                sub["query"]["bool"]["filter"],
                json!([{"term": {"tenant": {"value": "a"}}}]),
                "a sub-search reached the backend without the token's filters: {v}"
            );
        }
    }
    assert!(
        r.status.is_client_error(),
        "expected a refusal, got {} {}",
        r.status,
        r.text()
    );
}

/// `_has_privileges` answers index privileges truthfully: `read` on a name only when the token
/// can read it through esgate. The alias `logs-sa` matches `logs-*` but points at `secret`, and
/// esgate refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn has_privileges_does_not_claim_an_alias_esgate_refuses() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let search = send(
        "GET",
        &gw.url(&format!("/{}/_search", fixture::ALIAS_SECRET)),
        &[("authorization", &auth)],
        Vec::new(),
    )
    .await
    .expect("esgate answers");
    assert_eq!(search.status, 403, "{}", search.text());
    let r = post_json(
        &gw.url("/_security/user/_has_privileges"),
        Some(&auth),
        "POST",
        &json!({"index": [{"names": [fixture::ALIAS_SECRET], "privileges": ["read"]}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["index"][fixture::ALIAS_SECRET]["read"],
        json!(false),
        "claims read on an alias esgate refuses: {v}"
    );
    assert_eq!(v["has_all_requested"], json!(false), "{v}");
}

/// Elasticsearch reads a `_has_privileges` name between slashes as a regular expression. A
/// token with the default pattern `*` never reaches dot-indices, so it must not be told it may
/// read the names such an expression denotes (`.security`, `.kibana*`...).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn has_privileges_does_not_claim_dot_indices_through_a_regex_name() {
    let es = Recording::start();
    let gw = Esgate::start(&[es.url()], "").await;
    let (_, secret) = gw
        .token(json!({"name": "everything-a", "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    let auth = bearer(&secret);
    let names = ["/\\..*/", "/\\.security.+/", "/[.]kibana.*/"];
    let r = post_json(
        &gw.url("/_security/user/_has_privileges"),
        Some(&auth),
        "POST",
        &json!({"index": [{"names": names, "privileges": ["read"]}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    for name in names {
        assert_eq!(
            v["index"][name]["read"],
            json!(false),
            "claims read on the dot-indices {name} denotes: {v}"
        );
    }
}

/// The shared body budget counts bytes: a 2 KB body fits a 64 KB budget with nothing else in
/// flight, however the client cuts it into chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_budget_counts_bytes_not_chunks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start_full(
        &[backend.url()],
        "max_body_bytes = 65536\nmax_buffered_bytes = 65536\nheader_timeout = \"5s\"",
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let mut body = b"{\"size\": 0}".to_vec();
    body.resize(2_000, b' ');
    let mut wire = format!(
        "POST /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for b in &body {
        wire.extend_from_slice(b"1\r\n");
        wire.push(*b);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let mut conn = tokio::net::TcpStream::connect(gw.data_addr)
        .await
        .expect("connects");
    conn.write_all(&wire).await.expect("sends");
    let mut status = vec![0u8; 12];
    conn.read_exact(&mut status).await.expect("answers");
    assert_eq!(
        String::from_utf8_lossy(&status),
        "HTTP/1.1 200",
        "a 2 KB chunked body was refused under a 64 KB budget"
    );
}
