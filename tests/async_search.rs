//! Elasticsearch async search through esgate, against the recording fake backend
//! (`support::recording`; neither osmem nor noida implements `_async_search`): the forwarded
//! submit carries the token's filters and only its indices, ids are sealed for the token that
//! submitted, and poll, status and delete reach the backend only with an id sealed for the
//! presenting token.

mod support;

use serde_json::{json, Value};

use support::esgate::Esgate;
use support::http::{bearer, send};
use support::recording::Recording;

async fn call(gw: &Esgate, secret: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    let r = send(
        method,
        &gw.url(path),
        &[
            ("authorization", &bearer(secret)),
            ("content-type", "application/json"),
        ],
        bytes,
    )
    .await
    .expect("esgate answers");
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status.as_u16(), v)
}

async fn tenant(gw: &Esgate, name: &str) -> String {
    gw.token(json!({"name": name, "indices": ["logs-*"], "filters": [{"field": "tenant", "value": name}]}))
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_backend_sees_the_rewritten_count() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    es.script_json("POST", "/", 200, json!({"count": 3}));
    let gw = Esgate::start(&[es.url()], "").await;
    let a = tenant(&gw, "a").await;

    let (status, v) = call(&gw, &a, "POST", "/_count", json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"count": 3}));
    let sent = es.requests_to("POST", "/");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].path, "/logs-a,logs-b/_count");
    assert_eq!(
        sent[0].json()["query"]["bool"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}])
    );
    assert!(sent[0].header("authorization").is_none());
}
