//! Smoke tests of the test harness itself (`tests/it/support`): both real backends start, take the
//! security fixture and answer the numbers the fixture constants promise; `_resolve/index`
//! behaves as the proxy expects on each; osmem clones isolate tests; the installer is
//! concurrency-safe; the TLS, fault-injection and raw-socket helpers do what they say.
//!
//! Invariant: every assertion here is about the backend or the harness, never about esgate, so
//! a failure here means the test infrastructure (not the proxy) is broken.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::backend::{Backend, Flavor};
use support::faults::FaultServer;
use support::fixture::{self, *};
use support::http::{self, SendError};
use support::tls::TlsFiles;

async fn count(url: &str, target: &str, query: Value) -> u64 {
    let reply = http::send(
        "POST",
        &format!("{url}/{target}/_count"),
        &[],
        json!({ "query": query }).to_string(),
    )
    .await
    .expect("the backend answers _count");
    assert_eq!(reply.status, 200, "_count on {target}: {}", reply.text());
    reply.json()["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric count in {}", reply.text()))
}

async fn get_doc_index(url: &str, index: &str, id: &str) -> Option<String> {
    let reply = http::send("GET", &format!("{url}/{index}/_doc/{id}"), &[], "")
        .await
        .expect("the backend answers GET _doc");
    (reply.status == 200).then(|| reply.json()["_index"].as_str().unwrap_or("").to_owned())
}

/// Checks every number the fixture constants promise, directly on the backend.
async fn check_fixture(backend: &Backend) {
    let url = backend.url();
    let term = |t: &str| json!({"term": {"tenant": t}});
    assert_eq!(count(url, "logs-a,logs-b", term("a")).await, TENANT_A_DOCS);
    assert_eq!(count(url, "logs-a,logs-b", term("b")).await, TENANT_B_DOCS);
    // A wildcard also matches alias names, so `logs-*` reaches `secret` through `logs-sa`
    // (security.md IDX-16): the proxy must not forward `logs-*` as it is.
    assert_eq!(
        count(url, "logs-*", term("a")).await,
        TENANT_A_DOCS_ALL_INDICES
    );
    assert_eq!(
        count(url, "logs-a", term("a")).await,
        TENANT_A_PER_LOGS_INDEX
    );
    assert_eq!(
        count(url, "logs-b", term("a")).await,
        TENANT_A_PER_LOGS_INDEX
    );
    assert_eq!(
        count(url, INDEX_LOGS_A, json!({"match_all": {}})).await,
        LOGS_A_DOCS
    );
    assert_eq!(
        count(url, INDEX_LOGS_B, json!({"match_all": {}})).await,
        LOGS_B_DOCS
    );
    assert_eq!(
        count(url, INDEX_SECRET, json!({"match_all": {}})).await,
        SECRET_DOCS
    );
    assert_eq!(count(url, INDEX_SECRET, term("a")).await, SECRET_DOCS);
    assert_eq!(
        count(url, "logs-a,logs-b,secret", term("a")).await,
        TENANT_A_DOCS_ALL_INDICES
    );
    assert_eq!(
        count(url, ALIAS_SECRET, json!({"match_all": {}})).await,
        SECRET_DOCS
    );
    let marker_b = json!({"match": {"message": LEAKMARKER_B}});
    assert_eq!(count(url, "logs-a,logs-b", marker_b).await, TENANT_B_DOCS);

    assert_eq!(
        get_doc_index(url, INDEX_LOGS_A, "a1").await.as_deref(),
        Some(INDEX_LOGS_A)
    );
    assert_eq!(
        get_doc_index(url, INDEX_LOGS_B, "b1").await.as_deref(),
        Some(INDEX_LOGS_B)
    );
    assert_eq!(
        get_doc_index(url, INDEX_SECRET, "s1").await.as_deref(),
        Some(INDEX_SECRET)
    );
    assert_eq!(get_doc_index(url, INDEX_LOGS_B, "a1").await, None);

    let alias = http::send("GET", &format!("{url}/_alias/{ALIAS_SECRET}"), &[], "")
        .await
        .expect("the backend answers GET _alias");
    assert_eq!(
        alias.json(),
        json!({"secret": {"aliases": {"logs-sa": {}}}}),
        "alias {ALIAS_SECRET} must point at {INDEX_SECRET} only"
    );

    let hit = http::send("GET", &format!("{url}/{INDEX_LOGS_B}/_doc/b1"), &[], "")
        .await
        .expect("the backend answers GET _doc");
    assert!(fixture::contains_leak_marker(&hit.body));
    let hit = http::send("GET", &format!("{url}/{INDEX_LOGS_A}/_doc/a1"), &[], "")
        .await
        .expect("the backend answers GET _doc");
    assert!(!fixture::contains_leak_marker(&hit.body));
}

#[tokio::test]
async fn osmem_fixture_matches_constants() {
    let backend = fixture::seeded_osmem();
    assert!(backend.is_clone());
    check_fixture(&backend).await;
}

#[tokio::test]
async fn noida_fixture_matches_constants() {
    let backend = fixture::seeded_noida();
    assert_eq!(backend.flavor(), Flavor::Noida);
    check_fixture(&backend).await;
}

#[tokio::test]
async fn backends_identify_their_dialect() {
    let osmem = Backend::osmem();
    let noida = Backend::noida();
    for (backend, distribution, major) in [(&osmem, Some("opensearch"), "3."), (&noida, None, "8.")]
    {
        let reply = http::send("GET", &format!("{}/", backend.url()), &[], "")
            .await
            .expect("GET / answers");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-elastic-product"), Some("Elasticsearch"));
        let v = reply.json();
        assert_eq!(v["version"]["distribution"].as_str(), distribution);
        let number = v["version"]["number"].as_str().unwrap_or("");
        assert!(number.starts_with(major), "{backend:?}: version {number}");
    }
}

/// What `_resolve/index` answers on each backend. The proxy expands wildcards and aliases with
/// it, so these shapes are part of what esgate relies on; they are asserted exactly so a
/// backend upgrade that changes them fails here first.
#[tokio::test]
async fn resolve_index_answers_on_both_backends() {
    let osmem = fixture::seeded_osmem();
    let noida = fixture::seeded_noida();
    let logs_wildcard = json!({
        "aliases": [{"name": "logs-sa", "indices": ["secret"]}],
        "data_streams": [],
        "indices": [
            {"name": "logs-a", "attributes": ["open"]},
            {"name": "logs-b", "attributes": ["open"]},
        ],
    });
    let alias_only = json!({
        "aliases": [{"name": "logs-sa", "indices": ["secret"]}],
        "data_streams": [],
        "indices": [],
    });
    let empty = json!({"aliases": [], "data_streams": [], "indices": []});
    for backend in [&osmem, &noida] {
        let url = backend.url();
        let get = |path: &'static str| {
            let url = url.to_owned();
            async move {
                let reply = http::send("GET", &format!("{url}/{path}"), &[], "")
                    .await
                    .expect("the backend answers _resolve/index");
                println!(
                    "{:?} GET /{path} -> {} {}",
                    backend.flavor(),
                    reply.status,
                    reply.text()
                );
                reply
            }
        };
        // A wildcard matches alias names too: `logs-*` reaches `secret` through `logs-sa`.
        let r = get("_resolve/index/logs-*").await;
        assert_eq!((r.status.as_u16(), r.json()), (200, logs_wildcard.clone()));
        let r = get("_resolve/index/logs-*?expand_wildcards=open").await;
        assert_eq!((r.status.as_u16(), r.json()), (200, logs_wildcard.clone()));
        let r = get("_resolve/index/logs-sa").await;
        assert_eq!((r.status.as_u16(), r.json()), (200, alias_only.clone()));
        let r = get("_resolve/index/nonexistent?ignore_unavailable=true").await;
        assert_eq!((r.status.as_u16(), r.json()), (200, empty.clone()));
        let r = get("_resolve/index/nonexistent").await;
        match backend.flavor() {
            // osmem: a missing concrete name is silently empty.
            Flavor::Osmem => assert_eq!((r.status.as_u16(), r.json()), (200, empty.clone())),
            // noida, like Elasticsearch: 404 index_not_found_exception.
            Flavor::Noida => {
                assert_eq!(r.status, 404);
                assert_eq!(
                    r.json()["error"]["type"].as_str(),
                    Some("index_not_found_exception")
                );
            }
        }
    }
}

#[test]
fn osmem_clones_are_isolated_from_each_other() {
    let started = Instant::now();
    let one = fixture::seeded_osmem();
    let first_clone = started.elapsed();
    let started = Instant::now();
    let two = fixture::seeded_osmem();
    let second_clone = started.elapsed();
    let started = Instant::now();
    let fresh = Backend::osmem();
    fixture::seed_blocking(fresh.url());
    let fresh_seeded = started.elapsed();
    println!(
        "first seeded clone (includes base start + seed) {first_clone:?}, later clone \
         {second_clone:?}, fresh server + seed {fresh_seeded:?}"
    );
    assert_ne!(one.url(), two.url());
    let reply = http::send_blocking(
        "PUT",
        &format!("{}/logs-a/_doc/extra?refresh=true", one.url()),
        &[],
        json!({"tenant": "a"}).to_string(),
    )
    .expect("the clone answers");
    assert_eq!(reply.status, 201, "{}", reply.text());
    let count_in = |b: &Backend| {
        let url = format!("{}/logs-a/_count", b.url());
        http::send_blocking("GET", &url, &[], "")
            .expect("the clone answers")
            .json()["count"]
            .as_u64()
    };
    assert_eq!(count_in(&one), Some(LOGS_A_DOCS + 1));
    assert_eq!(count_in(&two), Some(LOGS_A_DOCS));
    let gone = one.url().to_owned();
    drop(one);
    assert!(
        http::send_blocking("GET", &format!("{gone}/"), &[], "").is_err(),
        "a dropped clone stops serving"
    );
}

#[test]
fn dropping_a_backend_stops_its_server() {
    for backend in [Backend::osmem(), Backend::noida()] {
        let url = format!("{}/", backend.url());
        assert!(http::send_blocking("GET", &url, &[], "").is_ok());
        drop(backend);
        assert!(http::send_blocking("GET", &url, &[], "").is_err());
    }
}

#[test]
fn concurrent_installs_into_an_empty_cache_produce_one_venv() {
    let cache = tempfile::tempdir().expect("temp dir");
    let paths: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| support::backend::install(&support::backend::OSMEM, cache.path())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no installer thread panics"))
            .collect()
    });
    let first = paths[0].clone().expect("the install succeeds");
    for p in &paths {
        assert_eq!(p.as_ref().ok(), Some(&first));
    }
    let mut entries: Vec<String> = std::fs::read_dir(cache.path())
        .expect("cache dir exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    // No temp dir is left behind and no second venv exists.
    assert_eq!(entries, vec!["install.lock", "osmem-server-0.1.6"]);
    let out = std::process::Command::new(&first)
        .arg("--version")
        .output()
        .expect("the installed binary runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("osmem-server 0.1.6"));
}

#[test]
fn install_refuses_a_wheel_with_the_wrong_hash() {
    let cache = tempfile::tempdir().expect("temp dir");
    let tampered = support::backend::Package {
        sha256: "0000000000000000000000000000000000000000000000000000000000000000",
        ..support::backend::OSMEM
    };
    let err = support::backend::install(&tampered, cache.path())
        .expect_err("a hash mismatch must fail the install");
    assert!(err.to_uppercase().contains("HASH"), "{err}");
    assert!(!cache.path().join("osmem-server-0.1.6").exists());
}

#[tokio::test]
async fn https_client_trusts_generated_ca() {
    use hyper_util::rt::TokioIo;
    let files = TlsFiles::generate();
    let acceptor = tokio_rustls::TlsAcceptor::from(files.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(::http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"{\"tls\":true}")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{}/", addr.port());
        let reply = http::send_https(&files.ca_cert, "GET", &url, &[], "")
            .await
            .unwrap_or_else(|e| panic!("https to {host} failed: {e}"));
        assert_eq!(reply.json(), json!({"tls": true}));
    }
    // A client trusting another CA must refuse the same server.
    let other = TlsFiles::generate();
    let url = format!("https://localhost:{}/", addr.port());
    let err = http::send_https(&other.ca_cert, "GET", &url, &[], "").await;
    assert!(matches!(err, Err(SendError::Transport(_))), "{err:?}");
    server.abort();
}

#[tokio::test]
async fn hang_fault_times_out() {
    let hang = FaultServer::hang();
    let started = Instant::now();
    let result =
        http::send_with_timeout("GET", hang.url(), &[], "", Duration::from_millis(300)).await;
    assert!(matches!(result, Err(SendError::Timeout)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(hang.accepted(), 1);
}

#[tokio::test]
async fn reset_fault_fails_the_request() {
    let reset = FaultServer::reset();
    let result = http::send("POST", reset.url(), &[], "{\"query\":{}}").await;
    assert!(matches!(result, Err(SendError::Transport(_))), "{result:?}");
    assert_eq!(reset.accepted(), 1);
}

#[tokio::test]
async fn huge_fault_streams_exactly_the_requested_bytes() {
    const LEN: u64 = 3 * 1024 * 1024 + 17;
    let huge = FaultServer::huge(LEN);
    let reply = http::send("GET", huge.url(), &[], "")
        .await
        .expect("huge answers");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len() as u64, LEN);
    assert_eq!(
        reply.json()["pad"].as_str().map(str::len),
        Some(LEN as usize - 10)
    );
    assert_eq!(huge.body_bytes_sent(), LEN);
    assert_eq!(
        reply.header("content-length"),
        Some(LEN.to_string().as_str())
    );
    let chunked = FaultServer::huge_chunked(LEN);
    let reply = http::send("GET", chunked.url(), &[], "")
        .await
        .expect("huge_chunked answers");
    assert_eq!(reply.header("content-length"), None);
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    assert_eq!(reply.body.len() as u64, LEN);
    let tiny = FaultServer::huge(4);
    let reply = http::send("GET", tiny.url(), &[], "")
        .await
        .expect("answers");
    assert_eq!(&reply.body[..], b"xxxx");
}

#[tokio::test]
async fn raw_helper_returns_the_servers_bytes() {
    let osmem = Backend::osmem();
    let out = http::raw(
        osmem.addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\r\n\r\n{"), "{text}");
}

#[test]
fn auth_header_helpers_encode_credentials() {
    assert_eq!(http::basic("tok", "token"), "Basic dG9rOnRva2Vu");
    assert_eq!(http::bearer("abc"), "Bearer abc");
    assert_eq!(http::api_key("id", "sec"), "ApiKey aWQ6c2Vj");
}
