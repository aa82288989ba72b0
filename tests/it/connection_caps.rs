//! rel17: what one client can make esgate hold on the backend. An HTTP/2 connection may have
//! `listen.h2_max_concurrent_streams` streams open; past that the h2 spec's `REFUSED_STREAM`
//! (a client reading the server's SETTINGS queues them instead). A backend node never sees more
//! than `backend.max_connections_per_node` connections from esgate: a request finding them
//! all busy waits up to `backend.connect_timeout` for one, then gets a 503 (Elasticsearch's
//! error shape, `Retry-After`), counted in `esgate_rejected_total{reason="backend_connections"}`;
//! a connection comes back when its streamed answer ends or its client goes away. Against
//! `faults::ConnectionProbe` (it numbers its connections; `/late` answers after ten seconds,
//! `/slow` streams 8 MiB over about 2.6 s) and the real backend (osmem). rel20c: HTTP/2 streams
//! beyond a connection's first take `listen.max_connections` places while in flight.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::esgate::Esgate;
use support::eventually;
use support::faults::ConnectionProbe;
use support::http::send;

/// A request of `secret`'s written on a connection of its own, left waiting for its answer.
async fn hold(gw: &Esgate, secret: &str, path: &str) -> TcpStream {
    let mut client = TcpStream::connect(gw.data_addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    client
}

async fn get(gw: &Esgate, secret: &str, path: &str) -> support::http::Reply {
    let auth = format!("Bearer {secret}");
    send(
        "GET",
        &gw.url(path),
        &[("authorization", auth.as_str())],
        "",
    )
    .await
    .unwrap_or_else(|e| panic!("GET {path}: no answer: {e:?}"))
}

/// An HPACK string literal (no Huffman coding): its length as a 7-bit prefix integer.
fn hpack_string(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s.as_bytes());
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one frame: (type, flags, stream, payload).
async fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], stream, payload))
}

/// A client that ignores the server's SETTINGS and opens six streams at once (each a `/late`
/// request held by the backend) where `h2_max_concurrent_streams = 4`: the server announced
/// 4, and the fifth and sixth are reset with `REFUSED_STREAM` (0x7); the backend sees four
/// connections. Without the setting hyper allowed 200 per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_past_the_limit_are_refused() {
    let probe = ConnectionProbe::start();
    let gw = Esgate::start_full(
        &[probe.url()],
        "workers = 1\nh2_max_concurrent_streams = 4",
        "",
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&h2_frame(4, 0, 0, &[])).await.unwrap();
    // The server's SETTINGS: MAX_CONCURRENT_STREAMS (0x3) = 4.
    let (kind, flags, _, payload) = read_frame(&mut s).await.expect("server SETTINGS");
    assert_eq!(
        (kind, flags & 1),
        (4, 0),
        "the first frame is the server's SETTINGS"
    );
    let announced = payload
        .chunks(6)
        .find(|c| c.len() == 6 && u16::from_be_bytes([c[0], c[1]]) == 3)
        .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]));
    assert_eq!(announced, Some(4), "SETTINGS_MAX_CONCURRENT_STREAMS");
    s.write_all(&h2_frame(4, 1, 0, &[])).await.unwrap();
    for i in 0..6u32 {
        let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
        block.push(0x04); // :path, literal without indexing
        hpack_string(&mut block, &format!("/late-{i}"));
        block.push(0x01); // :authority
        hpack_string(&mut block, "x");
        block.push(0x00); // a new name, literal without indexing
        hpack_string(&mut block, "authorization");
        hpack_string(&mut block, &format!("Bearer {secret}"));
        // END_STREAM | END_HEADERS on streams 1, 3, ... 11.
        s.write_all(&h2_frame(1, 0x5, 2 * i + 1, &block))
            .await
            .unwrap();
    }
    let mut refused = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some((kind, _, stream, payload))) =
        tokio::time::timeout_at(until, read_frame(&mut s)).await
    {
        if kind == 3 {
            let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            refused.push((stream, code));
        }
        assert_ne!(kind, 7, "no GOAWAY: the connection stays usable");
    }
    assert_eq!(
        refused,
        vec![(9, 7), (11, 7)],
        "REFUSED_STREAM past the 4th"
    );
    assert_eq!(
        probe.accepted(),
        4,
        "one backend connection per admitted stream"
    );
}

/// `max_connections_per_node = 2`: two held requests take both; a third waits
/// `connect_timeout` (1 s) and gets a 503 in Elasticsearch's error shape with `Retry-After`,
/// never reaching the node, and is counted; the metrics show both connections in use. Once a
/// held request's client goes away, its connection closes and the next request gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_request_waits_then_gets_a_503_and_the_node_sees_no_more() {
    let probe = ConnectionProbe::start();
    let gw = Esgate::start_full(
        &[probe.url()],
        "workers = 2",
        // One token takes the whole cap here (its share is `fair_share`'s).
        "max_connections_per_node = 2\nmax_connections_per_token = 2\nconnect_timeout = \"1s\"",
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let first = hold(&gw, &secret, "/late-1").await;
    let _second = hold(&gw, &secret, "/late-2").await;
    assert!(eventually(Duration::from_secs(3), || probe.accepted() == 2).await);

    // Another token's (the holder's own would be over its share: a 429, `fair_share`).
    let other = gw
        .token(serde_json::json!({"name": "other", "permissions": ["all"]}))
        .await
        .1;
    let started = Instant::now();
    let r = get(&gw, &other, "/third").await;
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    assert_eq!(r.headers["retry-after"], "1");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], 503);
    assert_eq!(v["error"]["type"], "esgate_backend_exception");
    assert_eq!(probe.accepted(), 2, "the node saw no third connection");

    let m = send("GET", &gw.admin_url("/metrics"), &[], "")
        .await
        .unwrap();
    assert_eq!(m.status, 200);
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains(r#"esgate_rejected_total{reason="backend_connections"} 1"#),
        "{text}"
    );
    let node = probe.url();
    assert!(
        text.contains(&format!(
            r#"esgate_backend_connections{{node="{node}",state="in_use"}} 2"#
        )),
        "{text}"
    );

    // Busy is not down: `/ready` stays 200 while every connection is held (a load balancer
    // must not pull a busy fleet).
    let ready = send("GET", &gw.admin_url("/ready"), &[], "").await.unwrap();
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(probe.accepted(), 2);

    // A held request's client leaves: esgate closes that backend connection, and its place
    // goes to the next request.
    drop(first);
    let r = get(&gw, &secret, "/fourth").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(probe.accepted(), 3);
}

/// `max_connections_per_node = 1`: a request made while a streamed answer (`/slow`, 8 MiB over
/// about 2.6 s) is under way waits for its end and goes out on the same connection; then a
/// client that leaves a streamed answer halfway gives the connection back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_holds_its_connection_until_it_ends_or_its_client_leaves() {
    let probe = ConnectionProbe::start();
    let gw = Esgate::start_full(
        &[probe.url()],
        "workers = 1",
        "max_connections_per_node = 1\nconnect_timeout = \"10s\"",
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let slow = {
        let url = gw.url("/slow");
        let auth = format!("Bearer {secret}");
        tokio::spawn(async move {
            let r = send("GET", &url, &[("authorization", auth.as_str())], "")
                .await
                .unwrap();
            (r.status, r.body.len())
        })
    };
    assert!(eventually(Duration::from_secs(3), || probe.accepted() == 1).await);
    let r = get(&gw, &secret, "/after").await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let (status, len) = slow.await.unwrap();
    assert_eq!((status.as_u16(), len), (200, support::faults::SLOW_LEN));
    // The second request went out on the stream's own connection, as its second request: an
    // HTTP/1.1 connection carries the next request only once the answer before it was read to
    // its end (when the slow client finished reading its copy is not told: esgate frees the
    // connection as the answer's last bytes pass, while the client may still be reading them).
    assert_eq!((v["conn"].as_u64(), v["n"].as_u64()), (Some(1), Some(2)));

    // A client reads the start of a streamed answer and leaves.
    let mut client = hold(&gw, &secret, "/slow-again").await;
    let mut start = [0u8; 4096];
    client.read_exact(&mut start).await.unwrap();
    let started = Instant::now();
    drop(client);
    let r = get(&gw, &secret, "/next").await;
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        probe.accepted(),
        2,
        "the abandoned answer's connection closed"
    );
}

/// One request on `client`, a kept-alive connection: its status, or `None` when esgate closed
/// the connection without an answer.
async fn request_on(client: &mut TcpStream, secret: &str) -> Option<u16> {
    get_on(client, secret, "/ping").await
}

/// A GET of `path` on `client`, a kept-alive connection: its status, or `None` when esgate
/// closed the connection without an answer (or gave none within 5 s).
async fn get_on(client: &mut TcpStream, secret: &str, path: &str) -> Option<u16> {
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n");
    client.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let len: usize = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    client.read_exact(&mut body).await.ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// `listen.max_connections_per_ip = 2`: a third connection from the same address is closed
/// unanswered (and counted) while two are open, and accepted once one of them ends; a peer in
/// `auth.trusted_proxies` (it carries many clients) is not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_its_connection_limit_is_closed_unless_a_trusted_proxy() {
    let probe = ConnectionProbe::start();
    let gw = Esgate::start_full(&[probe.url()], "max_connections_per_ip = 2", "", "").await;
    let secret = gw.all_token().await;
    let mut first = TcpStream::connect(gw.data_addr).await.unwrap();
    let mut second = TcpStream::connect(gw.data_addr).await.unwrap();
    assert_eq!(request_on(&mut first, &secret).await, Some(200));
    assert_eq!(request_on(&mut second, &secret).await, Some(200));
    let mut third = TcpStream::connect(gw.data_addr).await.unwrap();
    assert_eq!(
        request_on(&mut third, &secret).await,
        None,
        "a third connection"
    );
    drop(first);
    let mut served = false;
    for _ in 0..50 {
        let mut next = TcpStream::connect(gw.data_addr).await.unwrap();
        if request_on(&mut next, &secret).await == Some(200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served,
        "the address got its place back when a connection ended"
    );
    let m = send("GET", &gw.admin_url("/metrics"), &[], "")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains(r#"esgate_rejected_total{reason="connections_per_ip"} "#)
            && !text.contains(r#"esgate_rejected_total{reason="connections_per_ip"} 0"#),
        "{text}"
    );
    drop(gw);

    let gw = Esgate::start_full(
        &[probe.url()],
        "max_connections_per_ip = 2",
        "",
        "[auth]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    )
    .await;
    let secret = gw.all_token().await;
    let mut open = Vec::new();
    for i in 0..4 {
        let mut c = TcpStream::connect(gw.data_addr).await.unwrap();
        // Answered (a 400: a trusted proxy's request must name its client), not closed.
        assert!(
            request_on(&mut c, &secret).await.is_some(),
            "connection {i}"
        );
        open.push(c);
    }
}

/// Against the real backend (osmem): an HTTP/2 client (hyper's, which once it has the server's
/// SETTINGS queues its streams past `h2_max_concurrent_streams = 8`) sends 40 filtered
/// searches at once through `max_connections_per_node = 2`: every one is answered with the
/// tenant's documents only (the requests past the cap wait their turn), and esgate never holds
/// more than two connections to the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_h2_streams_through_a_small_cap_are_all_answered_by_the_real_backend() {
    let backend = support::fixture::seeded_osmem();
    let gw = Esgate::start_full(
        &[backend.url()],
        "h2_max_concurrent_streams = 8",
        "max_connections_per_node = 2",
        "",
    )
    .await;
    let secret = gw.tenant_token("a").await;
    let stream = TcpStream::connect(gw.data_addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    // One request first: a client may open streams before the server's SETTINGS arrive
    // (unlimited until then, by the spec), and those past the limit are refused; hyper's
    // client does not wait for them, nor retry a refused stream.
    let mut warm = sender.clone();
    let req = http::Request::get(gw.url("/logs-a/_count"))
        .header("authorization", format!("Bearer {secret}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(warm.send_request(req).await.unwrap().status(), 200);
    let mut searches = Vec::new();
    for _ in 0..40 {
        let mut sender = sender.clone();
        let req = http::Request::get(gw.url("/logs-a/_search?size=100"))
            .header("authorization", format!("Bearer {secret}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        searches.push(tokio::spawn(async move {
            let res = sender.send_request(req).await.expect("h2 answer");
            let status = res.status().as_u16();
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, body)
        }));
    }
    let mut most = 0;
    while searches.iter().any(|s| !s.is_finished()) {
        let m = send("GET", &gw.admin_url("/metrics"), &[], "")
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&m.body).into_owned();
        let open: u64 = text
            .lines()
            .filter(|l| l.starts_with("esgate_backend_connections{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        most = most.max(open);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for s in searches {
        let (status, body) = s.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let hits = v["hits"]["hits"].as_array().unwrap();
        assert_eq!(hits.len() as u64, support::fixture::TENANT_A_PER_LOGS_INDEX);
        assert!(hits.iter().all(|h| h["_source"]["tenant"] == "a"));
    }
    assert!(most <= 2, "esgate held {most} connections to the node");
}

/// rel20b: HTTP/2's flow-control windows are esgate's (`server::H2_WINDOW`, 256 KiB), not
/// hyper's 1 MiB: what a client may send before esgate reads it is held outside the body budget.
/// The server's SETTINGS announce the stream window (INITIAL_WINDOW_SIZE, 0x4) and its first
/// WINDOW_UPDATE raises the connection's from the spec's 65,535 to the same; and a search body
/// of 1 MB, four windows, still goes through whole on one stream (the window is given back as
/// esgate reads), answered by the real backend with the tenant's documents only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_windows_are_announced_and_an_upload_past_them_completes() {
    let backend = support::fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let secret = gw.tenant_token("a").await;

    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&h2_frame(4, 0, 0, &[])).await.unwrap();
    let (mut stream_window, mut connection_update) = (None, None);
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while stream_window.is_none() || connection_update.is_none() {
        let Ok(Some((kind, flags, stream, payload))) =
            tokio::time::timeout_at(until, read_frame(&mut s)).await
        else {
            break;
        };
        if kind == 4 && flags & 1 == 0 {
            stream_window = Some(
                payload
                    .chunks(6)
                    .find(|c| c.len() == 6 && u16::from_be_bytes([c[0], c[1]]) == 4)
                    .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]])),
            );
        }
        if kind == 8 && stream == 0 {
            connection_update = Some(
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
            );
        }
    }
    assert_eq!(
        stream_window,
        Some(Some(256 * 1024)),
        "SETTINGS_INITIAL_WINDOW_SIZE"
    );
    assert_eq!(
        connection_update,
        Some(256 * 1024 - 65_535),
        "the connection window raised to 256 KiB"
    );
    drop(s);

    let stream = TcpStream::connect(gw.data_addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let mut body = br#"{"query":{"match_all":{}},"size":100"#.to_vec();
    body.resize(body.len() + 1_000_000, b' ');
    body.push(b'}');
    let req = http::Request::post(gw.url("/logs-a/_search"))
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .expect("answered in time")
        .expect("h2 answer");
    let status = res.status().as_u16();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let hits = v["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len() as u64, support::fixture::TENANT_A_PER_LOGS_INDEX);
    assert!(hits.iter().all(|h| h["_source"]["tenant"] == "a"));
}

type H2Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

/// A request body that sends `start` and then waits: it ends when the returned sender is dropped.
fn held_body(start: &'static [u8]) -> (tokio::sync::mpsc::UnboundedSender<bytes::Bytes>, H2Body) {
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
    tx.send(bytes::Bytes::from_static(start)).unwrap();
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk)),
            rx,
        ))
    });
    (tx, http_body_util::StreamBody::new(chunks).boxed())
}

/// An HTTP/2 connection to the data listener (prior knowledge), driven by its own task.
async fn h2_connect(gw: &Esgate) -> hyper::client::conn::http2::SendRequest<H2Body> {
    let stream = TcpStream::connect(gw.data_addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake::<_, _, H2Body>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// A JSON request of the token `secret` for an HTTP/2 stream.
fn h2_request(
    gw: &Esgate,
    secret: &str,
    method: &str,
    path: &str,
    body: H2Body,
) -> http::Request<H2Body> {
    http::Request::builder()
        .method(method)
        .uri(gw.url(path))
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

fn no_body() -> H2Body {
    use http_body_util::BodyExt;
    http_body_util::Empty::new().boxed()
}

/// rel20c: HTTP/2 streams take places under `listen.max_connections`, as nginx counts each stream
/// as a connection under `worker_connections` (each open stream is a request in flight, about
/// 12 KiB before any body: 100 streams a connection would make 10,000 connections a million
/// requests). Against the real backend (osmem) behind the recording relay, `max_connections = 4`:
/// the h2 connection holds one place, the accept loop one (taken before it accepts the next
/// connection), so the connection's own place and the two free ones carry three streams at once
/// (searches whose bodies are not finished); a fourth is answered at once, 503
/// `unavailable_exception` with `Retry-After`, nothing of it forwarded, counted. An HTTP/1
/// connection takes the accept loop's place and is served; the next one waits in the backlog
/// while the streams hold the places, and is served once they end; and streams are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_take_places_under_max_connections() {
    let backend = support::fixture::seeded_osmem();
    let relay = support::relay::Relay::to(backend.url());
    let gw = Esgate::start_full(&[relay.url()], "max_connections = 4", "", "").await;
    let secret = gw.tenant_token("a").await;
    let sender = h2_connect(&gw).await;
    let request =
        |method: &str, path: &str, body: H2Body| h2_request(&gw, &secret, method, path, body);
    let answer = |res: http::Response<hyper::body::Incoming>| async move {
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").cloned();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, retry_after, body)
    };
    // The server's SETTINGS first (a search of the tenant's: its documents only).
    let res = sender
        .clone()
        .send_request(request("GET", "/logs-a/_count", no_body()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    relay.take();

    // Three streams in flight, each a search whose body has not ended (sent in this order: one
    // connection's streams reach the server in order).
    let mut held = Vec::new();
    for _ in 0..3 {
        let (tx, body) = held_body(br#"{"query":{"match_all":{}},"size":100}"#);
        let sent = sender
            .clone()
            .send_request(request("POST", "/logs-a/_search", body));
        held.push((
            tx,
            tokio::spawn(async move { answer(sent.await.unwrap()).await }),
        ));
    }
    let sent = sender
        .clone()
        .send_request(request("GET", "/logs-a/_search", no_body()));
    let (status, retry_after, body) = tokio::time::timeout(Duration::from_secs(5), async {
        answer(sent.await.unwrap()).await
    })
    .await
    .expect("the fourth stream is answered at once");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(retry_after.unwrap(), "1");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], 503);
    assert_eq!(v["error"]["type"], "unavailable_exception");
    assert!(
        relay.take_forwarded().is_empty(),
        "nothing forwarded: the held searches wait for their bodies, the fourth was refused"
    );
    assert!(held.iter().all(|(_, h)| !h.is_finished()));
    let m = send("GET", &gw.admin_url("/metrics"), &[], "")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains(r#"esgate_rejected_total{reason="connections"} 1"#),
        "{text}"
    );

    // HTTP/1 at the cap as before: a connection takes the place the accept loop holds, and the
    // next one waits for a place, here held by the streams.
    let mut first = TcpStream::connect(gw.data_addr).await.unwrap();
    assert_eq!(
        get_on(&mut first, &secret, "/logs-a/_count").await,
        Some(200)
    );
    let waiting = {
        let secret = secret.clone();
        let addr = gw.data_addr;
        tokio::spawn(async move {
            let mut second = TcpStream::connect(addr).await.unwrap();
            let mut request = format!(
                "GET /logs-a/_count HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n"
            );
            second.write_all(request.as_bytes()).await.unwrap();
            request.clear();
            let mut head = [0u8; 12];
            second.read_exact(&mut head).await.unwrap();
            String::from_utf8_lossy(&head).into_owned()
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "a connection got a place the streams hold"
    );

    // The streams' bodies end: each is answered by the backend with the tenant's documents,
    // and their places come back (the waiting connection is served).
    for (tx, handle) in held {
        drop(tx);
        let (status, _, body) = handle.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let hits = v["hits"]["hits"].as_array().unwrap();
        assert_eq!(hits.len() as u64, support::fixture::TENANT_A_PER_LOGS_INDEX);
        assert!(hits.iter().all(|h| h["_source"]["tenant"] == "a"));
    }
    let head = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting connection is served once the streams end")
        .unwrap();
    assert_eq!(head, "HTTP/1.1 200");
    relay.take();
    let res = sender
        .clone()
        .send_request(request("GET", "/logs-a/_search", no_body()));
    let (status, _, body) = answer(res.await.unwrap()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(relay.take_forwarded().len(), 1, "a new stream is forwarded");
}

/// HTTP/2 streams count under `listen.max_connections_per_ip` too, as nginx's `limit_conn`
/// counts each HTTP/2 request: with a limit of 2, an h2 connection (one of its address's places)
/// carries one stream on its own place and one more on the address's second place; a third
/// stream is answered at once, 503 with `Retry-After`, nothing forwarded, counted as
/// `connections_per_ip`, however many of `listen.max_connections`' places are free. Without it
/// one address held its limit times `h2_max_concurrent_streams` of the listener's places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_count_under_max_connections_per_ip() {
    let backend = support::fixture::seeded_osmem();
    let relay = support::relay::Relay::to(backend.url());
    let gw = Esgate::start_full(&[relay.url()], "max_connections_per_ip = 2", "", "").await;
    let secret = gw.tenant_token("a").await;
    let sender = h2_connect(&gw).await;
    let request =
        |method: &str, path: &str, body: H2Body| h2_request(&gw, &secret, method, path, body);
    let res = sender
        .clone()
        .send_request(request("GET", "/logs-a/_count", no_body()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    relay.take();

    let mut held = Vec::new();
    for _ in 0..2 {
        let (tx, body) = held_body(br#"{"query":{"match_all":{}}}"#);
        let sent = sender
            .clone()
            .send_request(request("POST", "/logs-a/_search", body));
        held.push((tx, tokio::spawn(sent)));
    }
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        sender
            .clone()
            .send_request(request("GET", "/logs-a/_search", no_body())),
    )
    .await
    .expect("the third stream is answered at once")
    .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(relay.take_forwarded().is_empty(), "nothing forwarded");
    assert!(held.iter().all(|(_, h)| !h.is_finished()));
    let m = send("GET", &gw.admin_url("/metrics"), &[], "")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains(r#"esgate_rejected_total{reason="connections_per_ip"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"esgate_rejected_total{reason="connections"} 0"#),
        "{text}"
    );

    // The held streams end and are answered; their places come back: a new stream is served.
    for (tx, handle) in held {
        drop(tx);
        assert_eq!(handle.await.unwrap().unwrap().status(), 200);
    }
    relay.take();
    let res = sender
        .clone()
        .send_request(request("GET", "/logs-a/_search", no_body()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(relay.take_forwarded().len(), 1, "a new stream is forwarded");
}
