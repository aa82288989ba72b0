//! A backend context (scroll, point in time, async search) that an answer esgate refused was
//! the only one to name is freed by esgate (session 13): the client never got its id, so nobody
//! else could free it, and the cluster kept it until its `keep_alive` (days for an async
//! search). Real backends behind a recording relay (osmem: scroll and OpenSearch point in time;
//! noida: scroll and `_pit`): the relay shows esgate's own release with the backend's id, and
//! the backend, asked with that id directly, has nothing left to free. Async search on the
//! recording backend (neither real backend has it).

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};

use support::backend::{Backend, Flavor};
use support::esgate::Esgate;
use support::fixture;
use support::http::send;
use support::recording::{Answer, Recording};
use support::relay::{Passed, Relay};

/// A body budget of 1 KiB: a scroll page of the fixture is larger than the whole budget
/// (refused before a byte is read, 502); a point-in-time answer fits, and waits for room while
/// a request body that trickles in holds the budget (refused after `listen.buffered_wait`,
/// 2 s here, 429).
const TINY_BUDGET: &str =
    "max_body_bytes = 1024\nmax_buffered_bytes = 1024\nbuffered_wait = \"2s\"\n\
     header_timeout = \"90s\"\nidle_timeout = \"90s\"";

/// Holds the whole body budget: a search whose body has arrived but for its last bytes.
async fn hold_the_budget(gw: &Esgate, secret: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut conn = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    let head = format!(
        "POST /logs-*/_search HTTP/1.1\r\nhost: esgate\r\nauthorization: Bearer {secret}\r\n\
         content-type: application/json\r\ncontent-length: 1024\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&[b' '; 1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn
}

/// Waits (up to 10 s) for esgate's release: the relayed `method` on `path`.
async fn released(relay: &Relay, seen: &mut Vec<Passed>, method: &str, path: &str) -> Passed {
    for _ in 0..100 {
        seen.extend(relay.take());
        if let Some(p) = seen.iter().find(|p| p.method == method && p.target == path) {
            return p.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("esgate did not send {method} {path}: {seen:?}");
}

async fn backend_json(backend: &Backend, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = send(
        method,
        &format!("{}{path}", backend.url()),
        &[("content-type", "application/json")],
        if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
    )
    .await
    .unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), v)
}

async fn a_refused_answer_frees_its_context(backend: &Backend) {
    let relay = Relay::to(backend.url());
    let gw = Esgate::start_full(&[relay.url()], TINY_BUDGET, "", "").await;
    let a = gw.tenant_token("a").await;
    let mut seen = Vec::new();

    // A scrolling search whose page is refused (larger than the whole budget).
    let r = gw
        .call_raw(
            &a,
            "GET",
            "/logs-*/_search?scroll=5m&size=100",
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 502, "{}", r.text());
    let release = released(&relay, &mut seen, "DELETE", "/_search/scroll").await;
    assert_eq!(release.status, 200);
    let sent: Value = serde_json::from_slice(&release.body).unwrap();
    let id = sent["scroll_id"][0].as_str().unwrap().to_owned();
    // The id is the one the backend gave the refused search, and the backend has freed it.
    let search = seen
        .iter()
        .find(|p| p.method == "POST" && p.target.contains("_search?"))
        .expect("the search was forwarded");
    assert_eq!(search.status, 200);
    let (status, freed) = backend_json(
        backend,
        "DELETE",
        "/_search/scroll",
        json!({"scroll_id": [id]}),
    )
    .await;
    assert!(
        freed["num_freed"] == json!(0) || status == 404,
        "{status} {freed}"
    );

    // A point in time whose answer finds no room in the budget (esgate waits 2 s for it: the
    // answer comes well within 20 s, esgate's default 30 s would not).
    let staller = hold_the_budget(&gw, &a).await;
    let (path, close) = match backend.flavor() {
        Flavor::Osmem => (
            "/logs-*/_search/point_in_time?keep_alive=5m",
            "/_search/point_in_time",
        ),
        Flavor::Noida => ("/logs-*/_pit?keep_alive=5m", "/_pit"),
    };
    let auth = format!("Bearer {a}");
    let r = support::http::send_with_timeout(
        "POST",
        &gw.url(path),
        &[("authorization", &auth)],
        Vec::new(),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(r.status.as_u16(), 429, "{}", r.text());
    let release = released(&relay, &mut seen, "DELETE", close).await;
    assert_eq!(release.status, 200);
    drop(staller);
    let sent: Value = serde_json::from_slice(&release.body).unwrap();
    match backend.flavor() {
        Flavor::Osmem => {
            assert!(sent["pit_id"][0].is_string(), "{sent}");
            let (_, pits) =
                backend_json(backend, "GET", "/_search/point_in_time/_all", Value::Null).await;
            assert_eq!(pits["pits"], json!([]), "{pits}");
        }
        Flavor::Noida => {
            let id = sent["id"].as_str().unwrap().to_owned();
            let (status, freed) = backend_json(backend, "DELETE", "/_pit", json!({"id": id})).await;
            assert!(
                freed["num_freed"] == json!(0) || status == 404,
                "{status} {freed}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_frees_its_context_on_opensearch() {
    a_refused_answer_frees_its_context(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_frees_its_context_on_elasticsearch_8() {
    a_refused_answer_frees_its_context(&fixture::seeded_noida()).await;
}

/// An async search whose submit answer is refused (too large for the budget, or a stored
/// search that failed with a server error) is deleted by its backend id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_async_search_is_deleted() {
    const ID: &str = "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=";
    const ID_IN_PATH: &str =
        "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc%3D";
    for status in [200, 503] {
        let es = Recording::start();
        es.resolve_indices(&["logs-a", "logs-b", "secret"]);
        let body = json!({
            "id": ID,
            "is_partial": true,
            "is_running": true,
            "response": {"hits": {"hits": [], "padding": "x".repeat(4096)}}
        });
        es.script(
            "POST",
            "/logs-a,logs-b/_async_search",
            Answer::json(status, body),
        );
        es.script_json(
            "DELETE",
            "/_async_search/",
            200,
            json!({"acknowledged": true}),
        );
        let gw = Esgate::start_full(&[es.url()], TINY_BUDGET, "", "").await;
        let a = gw.tenant_token("a").await;
        let r = gw
            .call_raw(
                &a,
                "POST",
                "/logs-*/_async_search?keep_on_completion=true",
                Value::Null,
                &[],
            )
            .await;
        assert!(
            r.status.as_u16() >= 500,
            "{status}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains(ID), "{}", r.text());
        let mut deleted = Vec::new();
        for _ in 0..100 {
            deleted = es.requests_to("DELETE", "/_async_search/");
            if !deleted.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(deleted.len(), 1, "{status}: {deleted:?}");
        assert_eq!(deleted[0].path, format!("/_async_search/{ID_IN_PATH}"));
        assert!(deleted[0].header("authorization").is_none());
    }
}

/// Session 14: a SQL query's answer esgate refuses (here larger than the whole body budget)
/// never gives its client the cursor, so esgate closes it (`POST /_sql/close`) with the
/// backend's cursor, read after the page's rows; the backend kept it for `page_timeout`
/// otherwise. The recording backend answers (neither real backend has `_sql`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sql_page_closes_its_cursor() {
    const CURSOR: &str = "c3FsLWN1cnNvcg==";
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    let rows: Vec<Value> = (0..128)
        .map(|i| json!([i, format!("{{\"cursor\":\"row-{i}\"}}")]))
        .collect();
    let body = json!({
        "columns": [{"name": "n", "type": "long"}, {"name": "cursor", "type": "text"}],
        "rows": rows,
        "cursor": CURSOR
    });
    es.script("POST", "/_sql", Answer::json(200, body));
    es.script_json("POST", "/_sql/close", 200, json!({"succeeded": true}));
    // 2 KiB: the request fits (its token's constant scores make its rewrite claim room for a
    // `constant_score` per object, review 15: over 1 KiB), its 3.6 KB answer does not.
    const SMALL_BUDGET: &str = "max_body_bytes = 2048\nmax_buffered_bytes = 2048\nheader_timeout = \"90s\"\nidle_timeout = \"90s\"";
    let gw = Esgate::start_full(&[es.url()], SMALL_BUDGET, "", "").await;
    let a = gw.tenant_token("a").await;
    let r = gw
        .call_raw(
            &a,
            "POST",
            "/_sql",
            json!({"query": "SELECT * FROM \"logs-*\""}),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 502, "{}", r.text());
    assert!(!r.text().contains(CURSOR), "{}", r.text());
    let mut closed = Vec::new();
    for _ in 0..100 {
        closed = es.requests_to("POST", "/_sql/close");
        if !closed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].json(), json!({ "cursor": CURSOR }));
    assert!(closed[0].header("authorization").is_none());
}
