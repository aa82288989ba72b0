//! esgate's own backend connection pool (issue #10: hyper-util's legacy client was replaced by
//! `upstream::pool`) keeps the relay's guarantees, proven against `faults::ConnectionProbe`, a
//! raw TCP backend that numbers its connections: sequential requests share one connection; a
//! backend that drops keep-alive connections right after answering (without saying so) costs
//! no request, GET or POST with a body; a client leaving mid-answer closes that backend
//! connection, and the next request gets its own answer, not the rest of the last one; an idle
//! connection is not used after `pool_idle_timeout` and esgate closes it; an answer with
//! `Connection: close` ends its connection; a TLS node named by its IP address is reused too.
//! Every request line is origin-form and names the node in `Host`. Stalls, resets and the other
//! TLS cases are covered by `reliability`, `gateway` and the subjects against real backends.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::esgate::Esgate;
use support::eventually;
use support::faults::ConnectionProbe;
use support::http::send;

/// One worker: each request below comes on a new client connection, and with several workers
/// each keeps backend connections of its own (`each_worker_keeps_its_own_backend_connections`).
const ONE_WORKER: &str = "workers = 1";

/// esgate in front of `probe` with extra `[backend]` keys, and an `all` token's secret.
async fn gateway(probe: &ConnectionProbe, backend: &str) -> (Esgate, String) {
    gateway_with(probe, ONE_WORKER, backend).await
}

/// The same with extra `[listen]` keys.
async fn gateway_with(probe: &ConnectionProbe, listen: &str, backend: &str) -> (Esgate, String) {
    let gw = Esgate::start_full(&[probe.url()], listen, backend, "").await;
    let secret = gw.all_token().await;
    (gw, secret)
}

/// One request through esgate; the probe's answer (its connection, number, path, body length).
async fn through(gw: &Esgate, secret: &str, method: &str, path: &str, body: &str) -> Value {
    let auth = format!("Bearer {secret}");
    let r = send(
        method,
        &gw.url(path),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.to_owned(),
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e:?}"));
    assert_eq!(
        r.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v: Value = serde_json::from_slice(&r.body).expect("the probe answers JSON");
    // Origin-form: the target as the client sent it, no scheme or authority.
    assert_eq!(v["path"], path, "{method} {path}: another request's answer");
    assert_eq!(v["body"], body.len(), "{method} {path}: body length");
    v
}

/// Waits until the probe has closed the connection that answered `v`, and a little more: the
/// next request then leaves once the backend's close is on its way. A request esgate had
/// already written when such a close arrives is lost (it is never sent twice), in esgate as in
/// any HTTP/1.1 client; the exact moment (hyper gives the request back unwritten) is
/// `upstream::pool`'s unit test `a_request_an_idle_connection_gave_back_unsent_goes_out_on_a_new_one`.
async fn hung_up(probe: &ConnectionProbe, v: &Value) {
    let conn = v["conn"].as_u64().unwrap();
    assert!(eventually(Duration::from_secs(5), || probe.hung_up(conn)).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Two workers: client connections are spread over both (sequential ones in turn), and each
/// worker reuses the backend connection it made: two in all, whatever the number of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_keeps_its_own_backend_connections() {
    let probe = ConnectionProbe::start();
    let (gw, secret) = gateway_with(&probe, "workers = 2", "").await;
    let mut conns = std::collections::BTreeMap::<u64, u64>::new();
    for i in 0..12 {
        let v = through(&gw, &secret, "GET", &format!("/w{i}/_search"), "").await;
        *conns.entry(v["conn"].as_u64().unwrap()).or_default() += 1;
    }
    assert_eq!(
        probe.accepted(),
        2,
        "one backend connection per worker: {conns:?}"
    );
    assert_eq!(conns.len(), 2, "both workers served requests: {conns:?}");
    assert!(
        conns.values().all(|&n| n >= 3),
        "the client connections were spread over the workers: {conns:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_share_one_backend_connection() {
    let probe = ConnectionProbe::start();
    let (gw, secret) = gateway(&probe, "").await;
    let first = through(&gw, &secret, "GET", "/a/_search?size=1", "").await;
    assert_eq!(first["host"], probe.url().trim_start_matches("http://"));
    let conn = first["conn"].clone();
    let before = probe.accepted();
    for i in 0..10 {
        let (method, body) = if i % 2 == 0 {
            ("GET", "")
        } else {
            ("POST", r#"{"query":{"match_all":{}}}"#)
        };
        let v = through(&gw, &secret, method, &format!("/a{i}/_search"), body).await;
        assert_eq!(v["conn"], conn, "request {i} on another connection");
        assert_eq!(v["n"], i + 2, "request {i}'s number on the connection");
    }
    assert_eq!(probe.accepted(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_dropping_each_keep_alive_connection_costs_no_request() {
    let probe = ConnectionProbe::start();
    let (gw, secret) = gateway(&probe, "").await;
    let mut conns = std::collections::HashSet::new();
    for i in 0..10 {
        let get = through(&gw, &secret, "GET", &format!("/close-after-get-{i}"), "").await;
        hung_up(&probe, &get).await;
        let body = format!(r#"{{"query":{{"term":{{"n":{i}}}}}}}"#);
        let post = through(
            &gw,
            &secret,
            "POST",
            &format!("/close-after-post-{i}"),
            &body,
        )
        .await;
        hung_up(&probe, &post).await;
        // Each connection served exactly one request: none was sent on a closed one.
        assert_eq!((get["n"].as_u64(), post["n"].as_u64()), (Some(1), Some(1)));
        assert!(conns.insert(get["conn"].clone()) && conns.insert(post["conn"].clone()));
    }
}

/// Session 13: a client that hangs up while its request waits on the backend aborts it: esgate
/// closes that backend connection at once (ES cancels a search whose HTTP channel closes), as
/// nginx does by default; so does a client that only shuts its write side (a half-close is an
/// abort too, as for nginx: keeping such requests would keep every abandoned search running
/// until the backend's timeouts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_while_its_request_waits_aborts_it_on_the_backend() {
    let probe = ConnectionProbe::start();
    let (gw, secret) = gateway(&probe, "").await;
    for half in [false, true] {
        let before = probe.accepted();
        let mut client = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
        let request =
            format!("GET /late HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        assert!(
            eventually(Duration::from_secs(3), || probe.accepted() > before).await,
            "the request reached the backend"
        );
        let conn = probe.accepted();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if half {
            client.shutdown().await.unwrap();
        } else {
            drop(client);
        }
        assert!(
            eventually(Duration::from_secs(3), || probe.closed_by_client(conn)).await,
            "half-close {half}: the backend connection of the abandoned request stayed open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_answer_closes_that_backend_connection() {
    let probe = ConnectionProbe::start();
    let (gw, secret) = gateway(&probe, "").await;
    let warm = through(&gw, &secret, "GET", "/warm", "").await;

    // A client reads the start of a large, slow answer and hangs up.
    let mut client = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    let request =
        format!("GET /slow HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let mut got = vec![0u8; 64 * 1024];
    let mut read = 0;
    while read < 32 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut got[read..]))
            .await
            .expect("the slow answer starts")
            .unwrap();
        assert!(n > 0, "esgate ended the slow answer early");
        read += n;
    }
    assert!(String::from_utf8_lossy(&got[..read]).starts_with("HTTP/1.1 200"));
    drop(client);

    // The slow answer went out on the pooled connection, which esgate now closes...
    let slow_conn = warm["conn"].as_u64().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || probe.closed_by_client(slow_conn)).await,
        "the backend connection of the abandoned answer stayed open"
    );
    // ...so the next request gets its own answer on a new connection, not the slow body's rest.
    let next = through(&gw, &secret, "GET", "/next", "").await;
    assert_ne!(next["conn"].as_u64(), Some(slow_conn));
    assert_eq!(next["n"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_expires_and_esgate_closes_it() {
    let probe = ConnectionProbe::start();
    let (gw, secret) = gateway(&probe, "pool_idle_timeout = \"400ms\"").await;
    let first = through(&gw, &secret, "GET", "/one", "").await;
    let conn = first["conn"].as_u64().unwrap();
    // Still fresh: reused.
    let again = through(&gw, &secret, "GET", "/two", "").await;
    assert_eq!(again["conn"].as_u64(), Some(conn));
    // Expired: esgate closes it without another request...
    assert!(
        eventually(Duration::from_secs(3), || probe.closed_by_client(conn)).await,
        "the expired idle connection stayed open"
    );
    let started = Instant::now();
    // ...and the next request opens a new one.
    let later = through(&gw, &secret, "GET", "/three", "").await;
    assert_ne!(later["conn"].as_u64(), Some(conn));
    assert_eq!(later["n"], 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_saying_connection_close_ends_its_connection() {
    let probe = ConnectionProbe::start();
    let (gw, secret) = gateway(&probe, "").await;
    let closing = through(&gw, &secret, "GET", "/conn-close", "").await;
    let conn = closing["conn"].as_u64().unwrap();
    let next = through(&gw, &secret, "GET", "/after", "").await;
    assert_ne!(next["conn"].as_u64(), Some(conn));
    assert_eq!(next["n"], 1);
    // esgate closed it (the probe keeps its end open).
    assert!(eventually(Duration::from_secs(3), || probe.closed_by_client(conn)).await);
    // A keep-alive answer keeps its connection.
    let kept = through(&gw, &secret, "GET", "/kept", "").await;
    assert_eq!(kept["conn"], next["conn"]);
    // A large answer saying `Connection: close` arrives whole (esgate lets its connection go
    // as soon as the head says so, not before the body is read).
    let big = through(&gw, &secret, "GET", "/conn-close-big", "").await;
    assert_eq!(
        big["pad"].as_str().map(str::len),
        Some(support::faults::BIG_PAD)
    );
    assert_eq!(big["conn"], kept["conn"]);
    assert!(
        eventually(Duration::from_secs(3), || probe
            .closed_by_client(big["conn"].as_u64().unwrap()))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_node_named_by_its_ip_address_is_pooled_too() {
    let probe = ConnectionProbe::start();
    let tls = support::tls::TlsFiles::generate();
    let relay = support::tls::relay(
        &tls,
        probe.url().trim_start_matches("http://").parse().unwrap(),
    )
    .await;
    let node = format!("https://{relay}");
    let gw = Esgate::start_full(
        &[&node],
        ONE_WORKER,
        &format!("ca_file = {:?}", tls.ca_cert.display().to_string()),
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let first = through(&gw, &secret, "GET", "/t/_search", "").await;
    assert_eq!(first["host"], relay.to_string());
    for i in 0..5 {
        let v = through(
            &gw,
            &secret,
            "POST",
            &format!("/t{i}/_search"),
            r#"{"size":0}"#,
        )
        .await;
        assert_eq!(
            v["conn"], first["conn"],
            "request {i} on another connection"
        );
    }
    // A TLS connection the backend drops after answering costs no request either (the first
    // goes out on the pooled connection, each later one on a new connection).
    for i in 0..3 {
        let v = through(&gw, &secret, "GET", &format!("/close-after-{i}"), "").await;
        hung_up(&probe, &v).await;
        if i > 0 {
            assert_eq!(v["n"], 1);
        }
    }
}
