//! The gateway foundation against a real backend (osmem) and fault-injecting fakes:
//! pass-through, streaming, failover, timeouts, TLS in and out, graceful shutdown, malformed
//! HTTP, and the admin listener's probes.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;

use support::backend::Backend;
use support::esgate::{audit_file_section, audit_records, Esgate};
use support::faults::FaultServer;
use support::http::{basic, bearer, send, Reply, SendError};

const PASS: &str = "esgate-test";

async fn esgate_with_all_token(backends: &[&str], extra: &str) -> (Esgate, String) {
    let gw = Esgate::start(backends, extra).await;
    let secret = gw.all_token().await;
    (gw, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_every_request_without_credentials() {
    let backend = Backend::osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    for (method, path) in [
        ("GET", "/"),
        ("POST", "/_search"),
        ("HEAD", "/logs-a"),
        ("DELETE", "/logs-a"),
    ] {
        let r = send(method, &gw.url(path), &[], Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{method} {path}");
        assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
        let challenges: Vec<_> = r.headers.get_all("www-authenticate").iter().collect();
        assert_eq!(challenges.len(), 3);
        if method != "HEAD" {
            assert_eq!(r.json()["error"]["type"], "security_exception");
        }
    }
    let r = send(
        "GET",
        &gw.url("/"),
        &[("authorization", &bearer("esg_nonsense"))],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_through_get_post_head_with_and_without_bodies() {
    let backend = Backend::osmem();
    let (gw, secret) = esgate_with_all_token(&[backend.url()], "").await;
    let auth = bearer(&secret);
    let h = [("authorization", auth.as_str())];

    let r = send("GET", &gw.url("/"), &h, Bytes::new()).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.json()["version"]["number"].is_string());

    let r = send(
        "PUT",
        &gw.url("/pt-index/_doc/1?refresh=true"),
        &h,
        r#"{"msg":"hello"}"#,
    )
    .await
    .unwrap();
    assert!(r.status.is_success(), "{}", r.text());

    let r = send(
        "POST",
        &gw.url("/pt-index/_search"),
        &h,
        r#"{"query":{"match":{"msg":"hello"}}}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["hits"]["hits"][0]["_id"], "1");

    let r = send("GET", &gw.url("/pt-index/_count"), &h, Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.json()["count"], 1);

    let r = send("HEAD", &gw.url("/pt-index"), &h, Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = send("HEAD", &gw.url("/no-such-index"), &h, Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // The basic-auth forms authenticate the same token.
    for value in [basic(&secret, "token"), basic("anyone", &secret)] {
        let r = send(
            "GET",
            &gw.url("/pt-index/_count"),
            &[("authorization", &value)],
            Bytes::new(),
        )
        .await
        .unwrap();
        assert_eq!(r.json()["count"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_chunked_and_gzip_request_bodies() {
    use std::io::Write;
    let backend = Backend::osmem();
    let (gw, secret) = esgate_with_all_token(&[backend.url()], "").await;
    let auth = bearer(&secret);
    let r = send(
        "PUT",
        &gw.url("/gz/_doc/1?refresh=true"),
        &[("authorization", &auth)],
        r#"{"k":"v"}"#,
    )
    .await
    .unwrap();
    assert!(r.status.is_success());

    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(br#"{"query":{"term":{"k":"v"}}}"#).unwrap();
    let gz = enc.finish().unwrap();
    let r = send(
        "POST",
        &gw.url("/gz/_search"),
        &[
            ("authorization", &auth),
            ("content-encoding", "gzip"),
            ("content-type", "application/json"),
        ],
        gz,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["hits"]["hits"][0]["_id"], "1");

    // A chunked body, written by hand on a raw connection.
    let body = br#"{"query":{"term":{"k":"v"}}}"#;
    let (a, b) = body.split_at(10);
    let req = format!(
        "POST /gz/_count HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        a.len(),
        std::str::from_utf8(a).unwrap(),
        b.len(),
        std::str::from_utf8(b).unwrap()
    );
    let out = support::http::raw(gw.data_addr, req.as_bytes()).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"count\":1"), "{text}");
}

/// A kB value (`VmRSS:`, `VmHWM:`) from `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the key is there")
}

/// The real binary, so that what is measured is esgate's memory alone: measured in this
/// process (esgate in-process, with the fake and the client), it counted whatever the tests
/// running beside it held (137 MiB once, with four at once).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_one_gigabyte_response_with_flat_memory() {
    const LEN: u64 = 1 << 30;
    let huge = FaultServer::huge(LEN);
    let dir = tempfile::tempdir().expect("temp dir");
    let served = support::binary::serve(&["--backend", huge.url(), "--store"], |cmd| {
        cmd.arg(dir.path().join("store"))
            .env("ESGATE_ADMIN_KEY", support::esgate::ADMIN_KEY);
    });
    let created = send(
        "POST",
        &format!("{}/tokens", served.admin),
        &[("authorization", &bearer(support::esgate::ADMIN_KEY))],
        json!({"name": "all", "permissions": ["all"]}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let secret = created.json()["secret"].as_str().unwrap().to_owned();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let req = http::Request::get(format!("{}/big/_search", served.data))
        .header("authorization", bearer(&secret))
        .body(http_body_util::Empty::new())
        .unwrap();
    let pid = served.child.id();
    let before = proc_status_kib(pid, "VmRSS:");
    let response = client.request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len() as u64;
        }
    }
    assert_eq!(total, LEN);
    // esgate's peak resident memory (since it started) grows by far less than the body.
    let peak = proc_status_kib(pid, "VmHWM:");
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 128,
        "esgate's memory grew by {grown_mib} MiB while streaming 1 GiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_502_when_no_backend_answers() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (gw, secret) = esgate_with_all_token(&[&url], "").await;
    let r = gw.get("/", &secret).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
    assert!(r.json()["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("no backend node"));

    let reset = FaultServer::reset();
    let (gw, secret) = esgate_with_all_token(&[reset.url()], "").await;
    let r = gw.get("/", &secret).await;
    assert_eq!(r.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_504_when_the_backend_hangs() {
    let hang = FaultServer::hang();
    let gw = Esgate::start_full(&[hang.url()], "", "request_timeout = \"1s\"", "").await;
    let secret = gw.all_token().await;
    let started = Instant::now();
    let r = gw.get("/", &secret).await;
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_a_second_node_and_skips_the_dead_one() {
    let backend = Backend::osmem();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (gw, secret) = esgate_with_all_token(&[&dead, backend.url()], "").await;
    for _ in 0..6 {
        let r = gw.get("/", &secret).await;
        assert_eq!(r.status, 200);
    }
    let status = gw.app.upstream.node_status();
    assert!(!status[0].healthy, "the dead node is cooling down");
    // Round-robin would have picked the dead node three times; the cool-down skips it.
    assert_eq!(status[0].failures, 1);
    assert!(status[1].healthy);

    let m = send("GET", &gw.admin_url("/metrics"), &[], Bytes::new())
        .await
        .unwrap();
    assert!(
        m.text()
            .contains(&format!("esgate_backend_up{{node=\"{dead}\"}} 0")),
        "{}",
        m.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_to_clients() {
    let backend = Backend::osmem();
    let tls = support::tls::TlsFiles::generate();
    let listen = format!("{}handshake_timeout = \"2s\"", tls.listen_section());
    // The [listen.tls] table must come after the [listen] keys, so it goes in `extra`.
    let gw = Esgate::start(&[backend.url()], &listen).await;
    let secret = gw.all_token().await;
    let url = format!("https://localhost:{}/", gw.data_addr.port());
    let r = support::http::send_https(
        &tls.ca_cert,
        "GET",
        &url,
        &[("authorization", &bearer(&secret))],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.json()["version"].is_object());

    // Plain HTTP on the TLS port gets no answer that looks like success.
    let out = support::http::raw_with_timeout(
        gw.data_addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
}

/// The TLS listener's read path (issue 10, goal 7: esgate reads its TLS stream through its own
/// adapter, `server::tls_io`, which returns the plaintext rustls holds without reading the
/// socket on and answers an idle read from the socket's readiness): a 300 KB body written as
/// 1 KB TLS records, two requests pipelined in one record, a request split mid-header across
/// records with a pause, all on one HTTP/1.1 connection; a client's `close_notify` ends its
/// connection once answered; and the same body over HTTP/2 (ALPN h2). Real backend (osmem).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_read_split_pipelined_and_large_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Backend::osmem();
    let tls = support::tls::TlsFiles::generate();
    let listen = tls.listen_section();
    let gw = Esgate::start(&[backend.url()], &listen).await;
    let secret = gw.all_token().await;
    let name = || rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let open = |alpn: &'static [u8]| {
        let connector = support::tls::client_connector(&tls.ca_cert, alpn);
        let addr = gw.data_addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            connector.connect(name(), tcp).await.expect("TLS handshake")
        }
    };
    // Read until the server closes (or 10 s pass: then the test fails below).
    async fn until_closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (String, bool) {
        let mut out = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 8192];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .is_ok();
        (String::from_utf8_lossy(&out).into_owned(), closed)
    }

    let text = "tls ".repeat(75_000);
    let doc = format!(r#"{{"msg":"{text}"}}"#);
    let mut s = open(b"http/1.1").await;
    // The key exchange is the post-quantum hybrid (`config::tls_crypto`) when both sides offer it.
    let group = s
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .expect("a group");
    assert_eq!(group.name(), rustls::NamedGroup::X25519MLKEM768);
    let head = format!(
        "PUT /tls-io/_doc/1?refresh=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        doc.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    for piece in doc.as_bytes().chunks(1024) {
        // One TLS record each.
        s.write_all(piece).await.expect("write");
        s.flush().await.expect("flush");
    }
    let count =
        format!("GET /tls-io/_count HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\r\n");
    s.write_all(format!("{count}{count}").as_bytes())
        .await
        .expect("write");
    s.flush().await.expect("flush");
    let last = format!(
        "GET /tls-io/_doc/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\
         Connection: close\r\n\r\n"
    );
    let (a, b) = last.split_at(30);
    s.write_all(a.as_bytes()).await.expect("write");
    s.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b.as_bytes()).await.expect("write");
    s.flush().await.expect("flush");
    let (answers, closed) = until_closed(&mut s).await;
    assert!(closed, "connection still open: {answers:.300}");
    assert_eq!(answers.matches("HTTP/1.1 20").count(), 4, "{answers:.600}");
    assert_eq!(answers.matches(r#""count":1"#).count(), 2, "{answers:.600}");
    // (The document's text is checked below, over HTTP/2, where the framing is decoded.)

    // close_notify after an answer: the connection ends. (hyper does not answer a request
    // whose client has already shut its side: no half-close.)
    let mut s = open(b"http/1.1").await;
    s.write_all(count.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&answer).contains(r#""count":1"#) {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    s.shutdown().await.expect("close_notify");
    let (rest, closed) = until_closed(&mut s).await;
    assert!(
        closed,
        "connection still open after close_notify: {rest:.300}"
    );

    // HTTP/2 over TLS: the same body; both documents read back whole.
    let s = open(b"h2").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let auth = bearer(&secret);
    for (method, path, body) in [
        ("PUT", "/tls-io/_doc/2?refresh=true", doc.clone()),
        ("GET", "/tls-io/_doc/2", String::new()),
        ("GET", "/tls-io/_doc/1", String::new()),
    ] {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .expect("request");
        let res = sender.send_request(req).await.expect("h2 answer");
        assert!(
            res.status().is_success(),
            "{method} {path}: {}",
            res.status()
        );
        let got = res.into_body().collect().await.expect("body").to_bytes();
        if method == "GET" {
            assert!(
                String::from_utf8_lossy(&got).contains(&text),
                "{path}: the document did not come back whole"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talks_tls_to_an_https_backend_with_a_configured_ca() {
    let backend = Backend::osmem();
    let tls = support::tls::TlsFiles::generate();
    let relay = support::tls::relay(&tls, backend.addr).await;
    let https = format!("https://localhost:{}", relay.port());
    let gw = Esgate::start_full(
        &[&https],
        "",
        &format!("ca_file = {:?}", tls.ca_cert.display().to_string()),
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let r = gw.get("/", &secret).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Without the CA, the backend's certificate is not trusted: no answer from it.
    let gw = Esgate::start(&[&https], "").await;
    let secret = gw.all_token().await;
    let r = gw.get("/", &secret).await;
    assert_eq!(r.status, 502);
}

/// A small in-process backend for fault injection: every request gets `answer`'s response
/// (after it has seen the request head).
async fn fake_backend<F>(answer: F) -> String
where
    F: Fn(
            http::HeaderMap,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = &'static [u8]> + Send>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let body = answer(req.headers().clone());
                    async move {
                        let mut r = http::Response::new(http_body_util::Full::new(
                            Bytes::from_static(body.await),
                        ));
                        r.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// attack21c (L): a request whose client went away while it waited for a backend connection
/// (here at `backend.max_connections_per_node`) was recorded `allow` 499, "before its answer",
/// as if forwarded: the flag was set before the pool's wait. Now the pool says when the request
/// is handed to a connection: the waiting one is `deny`, "before it was forwarded" (the backend
/// never had it), the forwarded one `allow`. And a 499 counted in no metric: both count now
/// (`esgate_requests_total` by decision, `esgate_decisions_total{outcome="client_closed"}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_leaves_while_it_waits_for_a_connection_is_recorded_unsent() {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen, counted) = (Arc::clone(&arrived), Arc::clone(&count));
    let url = fake_backend(move |_| {
        let (seen, counted) = (Arc::clone(&seen), Arc::clone(&counted));
        Box::pin(async move {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            seen.notify_one();
            tokio::time::sleep(Duration::from_secs(3)).await;
            &b"{\"acknowledged\":true}"[..]
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let gw = Esgate::start_full(
        &[&url],
        "",
        "max_connections_per_node = 1\nconnect_timeout = \"10s\"",
        &audit_file_section(&audit),
    )
    .await;
    let secret = gw.all_token().await;
    let stream = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = |path: &str| {
        let mut sender = sender.clone();
        let req = http::Request::delete(gw.url(path))
            .header("authorization", bearer(&secret))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        tokio::spawn(async move { sender.send_request(req).await.map(|r| r.status()) })
    };
    // The first holds the node's only connection; the second waits for it.
    let first = request("/holding");
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .expect("the backend had the first request");
    let second = request("/waiting");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "the second did not wait");
    // Both clients go away (their streams reset): the waiting one first.
    second.abort();
    let waiting = audit_records_of(&audit, "/waiting", Duration::from_secs(10)).await;
    first.abort();
    let holding = audit_records_of(&audit, "/holding", Duration::from_secs(10)).await;
    // The backend never had the second (the first's connection closed with its client).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);

    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let r = &waiting[0];
    assert_eq!(r["status"], 499, "{r}");
    assert_eq!(r["decision"], "deny", "{r}");
    assert_eq!(
        r["reason"], "the client closed the request before it was forwarded",
        "{r}"
    );
    assert!(r["token_id"].is_string(), "{r}");
    assert_eq!(holding.len(), 1, "{holding:?}");
    let r = &holding[0];
    assert_eq!(
        (&r["status"], &r["decision"]),
        (&json!(499), &json!("allow")),
        "{r}"
    );
    assert_eq!(
        r["reason"], "the client closed the request before its answer",
        "{r}"
    );

    let m = send("GET", &gw.admin_url("/metrics"), &[], Bytes::new())
        .await
        .unwrap()
        .text();
    let value = |prefix: &str, labels: &[&str]| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(
        value("esgate_decisions_total{", &["outcome=\"client_closed\""]),
        2.0,
        "{m}"
    );
    for decision in ["allow", "deny"] {
        assert_eq!(
            value(
                "esgate_requests_total{",
                &[&format!("decision=\"{decision}\""), "status=\"4xx\""]
            ),
            1.0,
            "{decision}: {m}"
        );
    }
    gw.stop().await;
}

/// A backend that answers after a delay: for requests that are in flight at shutdown.
async fn slow_backend(delay: Duration) -> String {
    fake_backend(move |_| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            &b"{\"slow\":true}"[..]
        })
    })
    .await
}

/// esgate with two workers in front of a backend answering after `delay`, and two requests
/// in flight on two client connections, one on each worker (connections go to the least loaded
/// worker; the first is accepted before the second).
async fn two_in_flight(
    delay: Duration,
    listen: &str,
) -> (
    Esgate,
    Vec<tokio::task::JoinHandle<Result<Reply, SendError>>>,
) {
    let url = slow_backend(delay).await;
    let gw = Esgate::start_full(&[&url], &format!("workers = 2\n{listen}"), "", "").await;
    let secret = gw.all_token().await;
    let mut in_flight = Vec::new();
    for _ in 0..2 {
        let target = gw.url("/slow");
        let auth = bearer(&secret);
        in_flight.push(tokio::spawn(async move {
            send("GET", &target, &[("authorization", &auth)], Bytes::new()).await
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    (gw, in_flight)
}

/// Two requests in flight at shutdown, one on each worker thread: both are answered before
/// esgate stops; no new connection is taken meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_requests_in_flight_on_every_worker_on_shutdown() {
    let (mut gw, in_flight) = two_in_flight(Duration::from_millis(1500), "").await;
    let addr = gw.data_addr;
    let server = gw.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No new connections once shutdown has begun.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    for request in in_flight {
        let r = request.await.unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["slow"], true);
    }
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}

/// Review of session 14: requests still in flight on the workers when `listen.drain_timeout`
/// ends do not hold the shutdown: it ends about the drain timeout after it began (each
/// worker's runtime ends with its connections, its thread is joined), and their clients see
/// their connections closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_timeout_ends_requests_in_flight_on_every_worker() {
    let (mut gw, in_flight) =
        two_in_flight(Duration::from_secs(30), "drain_timeout = \"1s\"").await;
    let began = std::time::Instant::now();
    let server = gw.begin_stop();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the shutdown ends")
        .unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "the shutdown took {took:?} with a 1 s drain timeout"
    );
    // One on each worker: their runtimes end with the drain.
    for request in in_flight {
        let done = tokio::time::timeout(Duration::from_secs(5), request).await;
        let answer = done.expect("the client is not left waiting").unwrap();
        assert!(
            answer.is_err(),
            "a request cut by the drain timeout got an answer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_never_gets_a_5xx() {
    let backend = Backend::osmem();
    let (gw, secret) = esgate_with_all_token(&[backend.url()], "").await;
    let auth = format!("Authorization: Bearer {secret}\r\n");
    let cases: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
        format!("POST /x/_search HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
        format!("POST /x/_search HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 4\r\nContent-Length: 5\r\n\r\n{{}}  ").into_bytes(),
        format!("GET http://169.254.169.254/ HTTP/1.1\r\nHost: x\r\n{auth}\r\n").into_bytes(),
        format!("GET / HTTP/1.1\r\nHost: x\r\n{auth}Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n").into_bytes(),
        format!("CONNECT 127.0.0.1:9200 HTTP/1.1\r\nHost: x\r\n{auth}\r\n").into_bytes(),
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024)).into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
    ];
    for case in cases {
        let out =
            support::http::raw_with_timeout(gw.data_addr, &case, Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&out);
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(
            status < 500,
            "{} → {}",
            String::from_utf8_lossy(&case[..case.len().min(60)]),
            text
        );
        assert!(
            status != 200,
            "{} was accepted",
            String::from_utf8_lossy(&case[..case.len().min(60)])
        );
    }
    // esgate still serves after all that.
    let r = gw.get("/", &secret).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_answers_probes_and_metrics() {
    let backend = Backend::osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let r = send("GET", &gw.admin_url("/health"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = send("GET", &gw.admin_url("/ready"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let _ = send("GET", &gw.url("/"), &[], Bytes::new()).await.unwrap();
    let r = send("GET", &gw.admin_url("/metrics"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    for line in [
        "esgate_requests_total{token_id=\"none\",decision=\"deny\",status=\"4xx\"} 1",
        "esgate_decisions_total{action=\"none\",outcome=\"auth_missing\"} 1",
    ] {
        assert!(r.text().contains(line), "{line}: {}", r.text());
    }
    // Everything else needs the admin key.
    let r = send("GET", &gw.admin_url("/tokens"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = send(
        "GET",
        &gw.admin_url("/tokens"),
        &[("authorization", "Bearer wrong-key-wrong-key")],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gw = Esgate::start(&[&dead], "").await;
    let r = send("GET", &gw.admin_url("/ready"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    let r = send("GET", &gw.admin_url("/health"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

/// attack19a (L): the unauthenticated `/ready` made a backend `GET /` per call, so a flood of
/// probes was a flood on the cluster. Probes at once share one backend request, and its answer
/// serves for a second; a backend gone down is reported once that second is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_probes_share_one_backend_request_a_second() {
    let backend = Backend::osmem();
    let relay = support::relay::Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    relay.take();
    let started = Instant::now();
    let probes: Vec<_> = (0..30)
        .map(|_| {
            let url = gw.admin_url("/ready");
            tokio::spawn(async move { send("GET", &url, &[], Bytes::new()).await })
        })
        .collect();
    for p in probes {
        assert_eq!(p.await.unwrap().unwrap().status, 200);
    }
    for _ in 0..5 {
        let r = send("GET", &gw.admin_url("/ready"), &[], Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let asked = relay.take().iter().filter(|p| p.target == "/").count();
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(
            asked, 1,
            "35 probes within a second asked the backend {asked} times"
        );
    } else {
        assert!(asked <= 3, "35 probes asked the backend {asked} times");
    }
    // The backend goes away: seen once the answer esgate holds is a second old.
    drop(relay);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = send("GET", &gw.admin_url("/ready"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{r:?}");
}

/// `/ready` says why it is not: a node that refuses esgate's own credential (here: 403 on
/// `GET /`, as Elasticsearch answers a user without the `monitor` privilege) is named as that,
/// not as "no backend node answers", so the operator fixes the role, not the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_names_a_backend_that_refuses_esgates_credential() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = r#"{"error":{"type":"security_exception","reason":"action [cluster:monitor/main] is unauthorized"},"status":403}"#;
                let answer = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    let gw = Esgate::start(&[&url], "").await;
    let r = send("GET", &gw.admin_url("/ready"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    let reason = r.json()["error"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("403") && reason.contains("monitor"),
        "{reason}"
    );
    gw.stop().await;
}

/// A backend that records the headers it receives: shows what esgate sends upstream.
async fn header_capture() -> (String, Arc<std::sync::Mutex<Vec<http::HeaderMap>>>) {
    let seen = Arc::new(std::sync::Mutex::new(vec![]));
    let record = Arc::clone(&seen);
    let url = fake_backend(move |headers| {
        record.lock().unwrap().push(headers);
        Box::pin(async { &b"{}"[..] })
    })
    .await;
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_sees_esgates_credentials_never_the_clients() {
    let (url, seen) = header_capture().await;
    let gw = Esgate::start_full(
        &[&url],
        "",
        &format!("username = \"esgate\"\npassword = {PASS:?}"),
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let r = send(
        "GET",
        &gw.url("/"),
        &[
            ("authorization", &bearer(&secret)),
            ("es-security-runas-user", "elastic"),
            ("es-secondary-authorization", "Basic eDp5"),
            ("opendistro_security_impersonate_as", "admin"),
            ("x-proxy-user", "admin"),
            ("x-proxy-roles", "all_access"),
            ("x-proxy-ext-department", "all"),
            ("x-forwarded-for", "1.2.3.4"),
            ("connection", "x-drop-me"),
            ("x-drop-me", "1"),
            // attack21b: other plugins' run-as, authenticating proxies' headers, a client's
            // credential for Elasticsearch's JWT realm, Elastic Cloud's cluster routing.
            ("sg_impersonate_as", "admin"),
            ("x-ror-impersonating", "admin"),
            ("es-client-authentication", "SharedSecret s3cret"),
            ("x-forwarded-user", "admin"),
            ("x-forwarded-groups", "admins"),
            ("x-forwarded-client-cert", "Subject=\"CN=admin\""),
            ("x-auth-request-user", "admin"),
            ("remote-user", "admin"),
            ("x-remote-user", "admin"),
            ("x-found-cluster", "another-deployment"),
            ("_opendistro_security_user", "admin"),
            // What clients send that changes no one's identity is relayed.
            ("user-agent", "elasticsearch-py/8.15.1"),
            ("x-elastic-client-meta", "es=8.15.1,py=3.12.3"),
            ("x-elastic-product-origin", "kibana"),
            ("securitytenant", "global_tenant"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
    let seen = seen.lock().unwrap();
    let h = &seen[0];
    assert_eq!(h["authorization"], basic("esgate", PASS));
    assert!(h.get("es-security-runas-user").is_none());
    assert!(h.get("es-secondary-authorization").is_none());
    // OpenSearch's run-as (attack20b, R20-FD-01: it was relayed).
    assert!(h.get("opendistro_security_impersonate_as").is_none());
    // OpenSearch's proxy authentication headers (attack20c, R20-AT-11: they were relayed).
    for name in ["x-proxy-user", "x-proxy-roles", "x-proxy-ext-department"] {
        assert!(h.get(name).is_none(), "{name}");
    }
    assert!(h.get("x-drop-me").is_none());
    for name in [
        "sg_impersonate_as",
        "x-ror-impersonating",
        "es-client-authentication",
        "x-forwarded-user",
        "x-forwarded-groups",
        "x-forwarded-client-cert",
        "x-auth-request-user",
        "remote-user",
        "x-remote-user",
        "x-found-cluster",
        "_opendistro_security_user",
    ] {
        assert!(h.get(name).is_none(), "{name} relayed");
    }
    for name in [
        "user-agent",
        "x-elastic-client-meta",
        "x-elastic-product-origin",
        "securitytenant",
        "traceparent",
    ] {
        assert!(h.get(name).is_some(), "{name} not relayed");
    }
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    let _ = json!({});
}

/// hdr21: an `all` token's request reaches the backend with the client headers of esgate's
/// allow-list and `backend.relay_headers` only, whatever else the client sends: a header a
/// backend might read as an authenticating proxy's under a name of its own settings
/// (`x-webauth-user`), what no one reads (`x-custom`, Grafana's `x-grafana-org-id`), CORS and
/// conditional headers. Before, every header but a deny-list was relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_tokens_request_reaches_the_backend_with_only_the_listed_headers() {
    let (url, seen) = header_capture().await;
    let gw = Esgate::start_full(
        &[&url],
        "",
        &format!("username = \"esgate\"\npassword = {PASS:?}\nrelay_headers = [\"X-My-Header\"]"),
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let body = r#"{"query":{"match_all":{}}}"#;
    let r = send(
        "POST",
        &gw.url("/logs/_search"),
        &[
            ("authorization", &bearer(&secret)),
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("user-agent", "elasticsearch-py/8.15.1"),
            ("x-elastic-client-meta", "es=8.15.1,py=3.12.3"),
            ("elastic-api-version", "2023-10-31"),
            ("tracestate", "es=s:1"),
            ("x-my-header", "mine"),
            ("x-custom", "1"),
            ("x-webauth-user", "admin"),
            ("x-grafana-org-id", "1"),
            ("x-dashboard-uid", "abc"),
            ("kbn-xsrf", "true"),
            ("origin", "https://evil.example"),
            ("if-none-match", "\"1\""),
            ("cache-control", "no-cache"),
            ("x-request-id", "r-1"),
            ("expect", "100-continue"),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = seen.lock().unwrap();
    let h = &seen[0];
    // The client's allow-listed headers, the configured one, and esgate's and hyper's own.
    let listed = [
        "content-type",
        "accept",
        "user-agent",
        "x-elastic-client-meta",
        "elastic-api-version",
        "tracestate",
        "x-my-header",
        "authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-opaque-id",
        "host",
        "content-length",
    ];
    let names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
    for name in &names {
        assert!(
            listed.contains(name),
            "[{name}] reached the backend: {names:?}"
        );
    }
    assert_eq!(h.len(), listed.len(), "{names:?}");
    assert_eq!(h["x-my-header"], "mine");
    assert_eq!(h["user-agent"], "elasticsearch-py/8.15.1");
    assert_eq!(h["authorization"], basic("esgate", PASS));
    assert_eq!(h["content-length"], body.len().to_string().as_str());
}

/// rel16: a body's announced length was charged to the budget before any of it arrived, so
/// clients holding a valid token and sending headers only (`Content-Length` at the cap, one byte
/// of body) pinned the whole budget for `header_timeout`, and every other body was refused with
/// a 429 (with the defaults, about 1,000 such connections held 1.1 GB resident). They now hold
/// what they sent: the others are served beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_bodies_that_never_arrive_do_not_hold_the_budget() {
    use tokio::io::AsyncWriteExt;
    let backend = Backend::osmem();
    let gw = Esgate::start_full(
        &[backend.url()],
        "max_body_bytes = 65536\nmax_buffered_bytes = 131072\nheader_timeout = \"5s\"",
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(json!({"name": "budget", "indices": ["*"]})).await;
    let auth = bearer(&secret);
    let mut silent = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
        let head = format!(
            "POST /_search HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
             content-type: application/json\r\ncontent-length: 65536\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        silent.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut body = b"{\"size\":0}".to_vec();
    body.resize(20_000, b' ');
    let served = send(
        "POST",
        &gw.url("/_search"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Bytes::from(body),
    )
    .await
    .unwrap();
    assert_eq!(served.status, 200, "{}", served.text());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_share_one_memory_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Backend::osmem();
    // The budget holds a 64 KB body's raw bytes and its checks (session 11: what the parse
    // holds is charged too; this body is mostly spaces), not another body beside it.
    let gw = Esgate::start_full(
        &[backend.url()],
        "max_body_bytes = 65536\nmax_buffered_bytes = 81920\nheader_timeout = \"5s\"",
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(json!({"name": "budget", "indices": ["*"]})).await;
    let auth = bearer(&secret);
    // A slow client holds 63 KB of the budget: what it sent of its body (rel16: what arrived,
    // not the 65 KB it announced).
    let mut slow = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    let head = format!(
        "POST /_search HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-type: application/json\r\ncontent-length: 65000\r\n\r\n"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut half = b"{\"query\":{\"match_all\":{}},\"size\":0,\"aggs\":{}".to_vec();
    half.resize(63_000, b' ');
    slow.write_all(&half).await.unwrap();
    slow.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Another body of 20 KB does not fit beside it: 429 with Retry-After, at once.
    let mut body = b"{\"size\":0}".to_vec();
    body.resize(20_000, b' ');
    let busy = send(
        "POST",
        &gw.url("/_search"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Bytes::from(body.clone()),
    )
    .await
    .unwrap();
    assert_eq!(busy.status, 429, "{}", busy.text());
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(busy.header("x-elastic-product"), Some("Elasticsearch"));

    // Once the slow request ends, its share is returned.
    let mut rest = vec![b' '; 2_000];
    rest[1_999] = b'}';
    slow.write_all(&rest).await.unwrap();
    let mut answer = vec![0u8; 12];
    slow.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    drop(slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = send(
        "POST",
        &gw.url("/_search"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Bytes::from(body),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
}

/// The request records of `path` in the audit file at `audit`, waited for up to `patience`.
async fn audit_records_of(
    audit: &std::path::Path,
    path: &str,
    patience: Duration,
) -> Vec<serde_json::Value> {
    let to_path = |r: &serde_json::Value| r["type"] == "request" && r["path"] == path;
    audit_records(audit, to_path, 1, patience).await
}

/// attack21b (M): a request whose client goes away before its answer (an HTTP/2 stream reset,
/// or the connection closed) after esgate forwarded it left no audit record at all: the
/// request's handling was dropped while it waited for the backend, and the record was only
/// written with an answer. The backend had the request and acted on it (here an `all` token's
/// `DELETE`), so any client could keep what it did out of the audit log (with
/// `audit.on_failure = "closed"` too). Now it is recorded as it stands: status 499, `allow`
/// (it was forwarded), the reason saying the client went away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_whose_client_goes_away_is_still_audited() {
    use tokio::io::AsyncWriteExt;
    let arrived = Arc::new(tokio::sync::Notify::new());
    let seen = Arc::clone(&arrived);
    let url = fake_backend(move |_| {
        let seen = Arc::clone(&seen);
        Box::pin(async move {
            seen.notify_one();
            tokio::time::sleep(Duration::from_secs(2)).await;
            &b"{\"acknowledged\":true}"[..]
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let gw = Esgate::start(&[&url], &audit_file_section(&audit)).await;
    let secret = gw.all_token().await;

    // HTTP/2: the stream is reset (its answer's future dropped) once the backend has it.
    let stream = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::delete(gw.url("/victim-h2"))
        .header("authorization", bearer(&secret))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let answer = sender.send_request(req);
    tokio::select! {
        _ = answer => panic!("answered before the backend had it"),
        _ = tokio::time::timeout(Duration::from_secs(10), arrived.notified()) => {}
    }
    // The answer's future is dropped here: hyper resets the stream.

    // HTTP/1: the connection is closed once the backend has it.
    let mut raw = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    raw.write_all(
        format!(
            "DELETE /victim-h1 HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n\r\n",
            bearer(&secret)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .expect("the backend had the HTTP/1 request");
    drop(raw);

    for path in ["/victim-h2", "/victim-h1"] {
        let records = audit_records_of(&audit, path, Duration::from_secs(10)).await;
        assert_eq!(records.len(), 1, "{path}: {records:?}");
        let r = &records[0];
        assert_eq!(r["decision"], "allow", "{r}");
        assert!(r["token_id"].is_string(), "{r}");
        assert_eq!(r["client"], "127.0.0.1", "{r}");
        // Gone before its answer (499), or, where the server noticed only when it wrote the
        // answer, answered.
        assert!(r["status"] == 499 || r["status"] == 200, "{r}");
        if path == "/victim-h2" {
            assert_eq!(r["status"], 499, "{r}");
            assert_eq!(
                r["reason"], "the client closed the request before its answer",
                "{r}"
            );
        }
    }
    gw.stop().await;
}
