//! attack17c: the backend connection cap (`backend.max_connections_per_node`) under clients
//! that leave at every moment. A connection's place under the cap that is never given back
//! makes the cap permanent (an outage), so after a storm of requests (answers read whole, cut
//! off halfway, abandoned before their head, bodies sent partly, HTTP/2 streams reset, answers
//! that close their connection, a backend that hangs up) every connection must be idle or
//! closed, and the cap's whole count must serve requests again.

use crate::support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::esgate::Esgate;
use support::faults::ConnectionProbe;

/// A small deterministic generator (xorshift), so a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Reads from `client` until `limit` bytes came, the stream ends or `wait` passes.
async fn read_some(client: &mut TcpStream, limit: usize, wait: Duration) -> usize {
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let until = tokio::time::Instant::now() + wait;
    while got < limit {
        match tokio::time::timeout_at(until, client.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    got
}

/// One HTTP/1.1 client doing one of the ways a request can end, chosen by `kind`.
async fn one_client(addr: std::net::SocketAddr, secret: String, kind: u64, n: u64, pause: u64) {
    let Ok(mut client) = TcpStream::connect(addr).await else {
        return;
    };
    let auth = format!("authorization: Bearer {secret}\r\n");
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: x\r\n{auth}\r\n");
    // The client closes after the answer (read to the end of the stream).
    let get_once =
        |path: &str| format!("GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n");
    let pause = Duration::from_millis(pause);
    match kind {
        // A small answer read whole.
        0 => {
            let _ = client
                .write_all(get_once(&format!("/p-{n}")).as_bytes())
                .await;
            read_some(&mut client, usize::MAX, Duration::from_secs(3)).await;
        }
        // A request the backend holds, abandoned before its head.
        1 => {
            let _ = client
                .write_all(get(&format!("/late-{n}")).as_bytes())
                .await;
            tokio::time::sleep(pause).await;
        }
        // A streamed answer cut off after some of it.
        2 => {
            let _ = client
                .write_all(get(&format!("/slow-{n}")).as_bytes())
                .await;
            read_some(
                &mut client,
                pause.as_millis() as usize * 4096,
                Duration::from_secs(3),
            )
            .await;
        }
        // An answer of several buffers, read whole or left after its start.
        3 => {
            let _ = client
                .write_all(get_once(&format!("/big-{n}")).as_bytes())
                .await;
            let limit = if n.is_multiple_of(2) {
                usize::MAX
            } else {
                2000
            };
            read_some(&mut client, limit, Duration::from_millis(500)).await;
        }
        // The backend closes the connection after its answer (Connection: close, or not).
        4 => {
            let _ = client
                .write_all(get(&format!("/conn-close-{n}")).as_bytes())
                .await;
            read_some(&mut client, usize::MAX, pause).await;
        }
        5 => {
            let _ = client
                .write_all(get(&format!("/close-after-{n}")).as_bytes())
                .await;
            read_some(&mut client, usize::MAX, pause).await;
        }
        // A body sent partly, then the client leaves.
        6 => {
            let head = format!(
                "POST /p-{n}/_doc HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 100000\r\n\r\n"
            );
            let _ = client.write_all(head.as_bytes()).await;
            let _ = client.write_all(&[b' '; 3000]).await;
            tokio::time::sleep(pause).await;
        }
        // A body sent whole.
        7 => {
            let head = format!(
                "POST /p-{n}/_doc HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\nconnection: close\r\ncontent-length: 50002\r\n\r\n{{"
            );
            let _ = client.write_all(head.as_bytes()).await;
            let _ = client.write_all(&[b' '; 50000]).await;
            let _ = client.write_all(b"}").await;
            read_some(&mut client, usize::MAX, Duration::from_secs(3)).await;
        }
        // Half a head, then nothing.
        8 => {
            let _ = client.write_all(b"GET /p HTTP/1.1\r\nhost").await;
            tokio::time::sleep(pause).await;
        }
        // Two requests pipelined, the client leaving during the second.
        _ => {
            let two = format!("{}{}", get(&format!("/p-{n}")), get(&format!("/late-{n}")));
            let _ = client.write_all(two.as_bytes()).await;
            tokio::time::sleep(pause).await;
        }
    }
}

/// HTTP/2 streams on one connection, each dropped (RST_STREAM) at a random moment: before its
/// head, or while its body streams.
async fn h2_client(addr: std::net::SocketAddr, secret: String, seed: u64) {
    let mut rng = Rng(seed);
    let Ok(stream) = TcpStream::connect(addr).await else {
        return;
    };
    let Ok((sender, conn)) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    else {
        return;
    };
    let driver = tokio::spawn(conn);
    let mut streams = Vec::new();
    for i in 0..12 {
        let path = match rng.below(4) {
            0 => "/late-h2",
            1 => "/slow-h2",
            2 => "/big-h2",
            _ => "/p-h2",
        };
        let wait = Duration::from_millis(rng.below(400));
        let mut sender = sender.clone();
        let req = http::Request::get(format!("http://x{path}-{i}"))
            .header("authorization", format!("Bearer {secret}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        streams.push(tokio::spawn(async move {
            let _ = tokio::time::timeout(wait, async move {
                let Ok(res) = sender.send_request(req).await else {
                    return;
                };
                let _ = http_body_util::BodyExt::collect(res.into_body()).await;
            })
            .await;
        }));
    }
    for s in streams {
        let _ = s.await;
    }
    driver.abort();
}

/// Connections to the node in use (open, not idle), per `node_status`.
fn in_use(gw: &Esgate) -> usize {
    gw.app
        .upstream
        .node_status()
        .iter()
        .map(|n| n.open.saturating_sub(n.idle))
        .sum()
}

/// `max_connections_per_node = 3`: 240 clients (12 at a time) ending their requests in every
/// way there is, and 4 HTTP/2 connections resetting their streams. Then no connection is in
/// use, at most 3 are open, and three slow answers at once are all served (a place lost would
/// leave one of them a 503 after `connect_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_comes_back_whole_after_clients_leave_at_every_moment() {
    let probe = ConnectionProbe::start();
    let gw = Esgate::start_full(
        &[probe.url()],
        "workers = 2",
        "max_connections_per_node = 3\nmax_connections_per_token = 3\nconnect_timeout = \"1s\"\nrequest_timeout = \"3s\"",
        "",
    )
    .await;
    let secret = gw.all_token().await;
    let seed = 0x5eed_17c0_u64;
    let mut rng = Rng(seed);
    let mut n = 0;
    for round in 0..20 {
        let mut clients = Vec::new();
        for _ in 0..12 {
            n += 1;
            let kind = rng.below(10);
            let pause = rng.below(300);
            clients.push(tokio::spawn(one_client(
                gw.data_addr,
                secret.clone(),
                kind,
                n,
                pause,
            )));
        }
        if round % 5 == 0 {
            clients.push(tokio::spawn(h2_client(
                gw.data_addr,
                secret.clone(),
                seed + round,
            )));
        }
        for c in clients {
            c.await.unwrap();
        }
    }
    let started = Instant::now();
    while in_use(&gw) > 0 && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = &gw.app.upstream.node_status()[0];
    assert_eq!(
        (status.open - status.idle, status.open <= 3),
        (0, true),
        "seed {seed:#x}: open {} idle {} after the clients left",
        status.open,
        status.idle
    );
    // The whole cap serves: three slow answers at once.
    let mut slow = Vec::new();
    for i in 0..3 {
        let url = gw.url(&format!("/slow-after-{i}"));
        let auth = format!("Bearer {secret}");
        slow.push(tokio::spawn(async move {
            let r = support::http::send_with_timeout(
                "GET",
                &url,
                &[("authorization", auth.as_str())],
                "",
                Duration::from_secs(20),
            )
            .await
            .unwrap();
            (r.status.as_u16(), r.body.len())
        }));
    }
    for s in slow {
        assert_eq!(
            s.await.unwrap(),
            (200, support::faults::SLOW_LEN),
            "seed {seed:#x}"
        );
    }
}

/// One request written raw: its answer read whole (`read: None`), or the client leaves after
/// `pause` milliseconds having read at most `read` bytes. The status when an answer head came.
async fn raw_request(
    addr: std::net::SocketAddr,
    secret: &str,
    method: &str,
    path: &str,
    body: &str,
    read: Option<usize>,
    pause: u64,
) -> Option<u16> {
    let mut client = TcpStream::connect(addr).await.ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\nconnection: close\r\n"
    );
    if !body.is_empty() {
        let content_type = if path.contains("_msearch") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        request.push_str(&format!(
            "content-type: {content_type}\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    client.write_all(request.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let limit = read.unwrap_or(usize::MAX);
    let wait = match read {
        None => Duration::from_secs(10),
        Some(_) => Duration::from_millis(pause),
    };
    let until = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 16 * 1024];
    while got.len() < limit {
        match tokio::time::timeout_at(until, client.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&got[..got.len().min(32)]).into_owned();
    head.split_whitespace().nth(1)?.parse().ok()
}

/// The real backend (osmem) behind `max_connections_per_node = 2`, a `read` token's requests
/// of every handling (streamed and judged searches, scrolls esgate seals, `_cat` answers it
/// rewrites, index resolution for wildcards, HEAD, `_msearch`, `_field_caps`), each read whole
/// or abandoned at a random moment, with `/ready` probed meanwhile. Every answer read whole
/// was served (none refused for want of a connection); afterwards no connection is in use and
/// requests still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_comes_back_whole_after_a_read_tokens_requests_are_abandoned() {
    let backend = support::fixture::seeded_osmem();
    let gw = Esgate::start_full(
        &[backend.url()],
        "workers = 2",
        "max_connections_per_node = 2\nconnect_timeout = \"5s\"",
        "",
    )
    .await;
    let secret = gw.tenant_token("a").await;
    // An all token's HEAD answers have no body: their connection goes back with the head.
    let all = gw.all_token().await;
    let seed = 0x17c0_0a11_u64;
    let mut rng = Rng(seed);
    let searches: [(&str, &str, &str); 10] = [
        ("GET", "/logs-a/_search?size=100", ""),
        ("POST", "/logs-*/_search?scroll=1m&size=2", r#"{"query":{"match_all":{}}}"#),
        ("HEAD", "/logs-a", ""),
        ("GET", "/logs-a/_count", ""),
        ("GET", "/_cat/indices?format=json", ""),
        (
            "POST",
            "/_msearch",
            "{\"index\":\"logs-a\"}\n{\"query\":{\"match_all\":{}}}\n{\"index\":\"logs-*\"}\n{\"size\":3}\n",
        ),
        ("GET", "/logs-*/_field_caps?fields=*", ""),
        ("GET", "/logs-*/_search?size=5&sort=@timestamp", ""),
        ("POST", "/logs-a/_search", r#"{"aggs":{"t":{"terms":{"field":"tenant"}}}}"#),
        ("GET", "/tenant-*/_search", ""),
    ];
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..40 {
        let mut clients = Vec::new();
        for _ in 0..8 {
            let pick = rng.below(12) as usize;
            let (method, path, body) = match pick {
                10 => ("HEAD", "/logs-a", ""),
                11 => ("HEAD", "/logs-a/_doc/none", ""),
                _ => searches[pick],
            };
            let read = match rng.below(3) {
                0 => None,
                1 => Some(0),
                _ => Some(rng.below(3000) as usize),
            };
            let pause = rng.below(150);
            let secret = if pick >= 10 { &all } else { &secret };
            let (addr, secret) = (gw.data_addr, secret.clone());
            clients.push(tokio::spawn(async move {
                let status = raw_request(addr, &secret, method, path, body, read, pause).await;
                (read.is_none(), format!("{method} {path} {status:?}"))
            }));
        }
        let ready = send_ready(&gw);
        for c in clients {
            let (whole, status) = c.await.unwrap();
            if whole {
                *statuses.entry(status).or_default() += 1;
            }
        }
        ready.await.unwrap();
    }
    let started = Instant::now();
    while in_use(&gw) > 0 && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = &gw.app.upstream.node_status()[0];
    assert_eq!(
        (status.open - status.idle, status.open <= 2),
        (0, true),
        "seed {seed:#x}: open {} idle {} after the clients left ({statuses:?})",
        status.open,
        status.idle
    );
    // Every answer read whole was answered (and none refused for want of a connection; a
    // read token's HEAD of an index is refused by policy).
    assert!(
        statuses.keys().all(|s| s.ends_with("Some(200)")
            || s.starts_with("HEAD /logs-a/_doc") && s.ends_with("Some(404)")
            || s.starts_with("HEAD /logs-a ") && s.ends_with("Some(403)")),
        "seed {seed:#x}: {statuses:?}"
    );
    for i in 0..4 {
        let r = gw.get(&format!("/logs-a/_search?q=n:{i}"), &secret).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
}

/// `GET /ready` on the admin listener (esgate's own probe of the backend), not waited for here.
fn send_ready(gw: &Esgate) -> tokio::task::JoinHandle<()> {
    let url = gw.admin_url("/ready");
    tokio::spawn(async move {
        let _ = support::http::send("GET", &url, &[], "").await;
    })
}

/// Two nodes, `max_connections_per_node = 1`: while a request the backend holds takes the
/// first node's only connection, requests the rotation sends to that node go to the other,
/// which has room, rather than waiting `connect_timeout` for a 503 (any node of a cluster
/// serves any request). The held node never sees a second connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_goes_to_a_node_with_room_when_its_own_is_saturated() {
    let busy = ConnectionProbe::start();
    let free = ConnectionProbe::start();
    let gw = Esgate::start_full(
        &[busy.url(), free.url()],
        "workers = 1",
        "max_connections_per_node = 1\nconnect_timeout = \"1s\"",
        "",
    )
    .await;
    let secret = gw.all_token().await;
    // Hold requests until one lands on `busy` (the rotation's start is not known).
    let mut held = Vec::new();
    while busy.accepted() == 0 {
        let mut client = TcpStream::connect(gw.data_addr).await.unwrap();
        let request =
            format!("GET /late HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        held.push(client);
        let started = Instant::now();
        while busy.accepted() + free.accepted() < held.len() as u64
            && started.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(held.len() < 3, "no request reached the first node");
    }
    // The last one is on `busy`; one held on `free` before it would leave that no room.
    let _held = held.pop();
    if !held.is_empty() {
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..4 {
        let started = Instant::now();
        let r = gw.get(&format!("/quick-{i}"), &secret).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "request {i} waited {:?}",
            started.elapsed()
        );
    }
    assert_eq!(busy.accepted(), 1);
}

/// `max_connections_per_node = 1` and a body budget no scroll page fits: every scrolling
/// search is refused once its answer is in, and esgate frees its scroll itself (a request of
/// its own, under the same cap as the clients'). Twelve at once, some clients leaving early:
/// every search the backend answered has its scroll freed, and the cap comes back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esgates_own_releases_share_the_cap_and_give_it_back() {
    let backend = support::fixture::seeded_osmem();
    let relay = support::relay::Relay::to(backend.url());
    let gw = Esgate::start_full(
        &[relay.url()],
        "max_body_bytes = 1024\nmax_buffered_bytes = 1024",
        "max_connections_per_node = 1\nconnect_timeout = \"5s\"",
        "",
    )
    .await;
    let secret = gw.tenant_token("a").await;
    let mut clients = Vec::new();
    for i in 0..12u64 {
        let (addr, secret) = (gw.data_addr, secret.clone());
        clients.push(tokio::spawn(async move {
            let read = if i % 3 == 0 { Some(0) } else { None };
            raw_request(
                addr,
                &secret,
                "GET",
                "/logs-*/_search?scroll=5m&size=100",
                "",
                read,
                i * 20,
            )
            .await
        }));
    }
    let mut refused = 0;
    for c in clients {
        if c.await.unwrap() == Some(502) {
            refused += 1;
        }
    }
    assert!(refused >= 6, "{refused} refused");
    let mut seen = Vec::new();
    let started = Instant::now();
    loop {
        seen.extend(relay.take());
        let answered = seen
            .iter()
            .filter(|p| p.target.contains("_search?scroll=") && p.status == 200)
            .count();
        let freed = seen
            .iter()
            .filter(|p| p.method == "DELETE" && p.target == "/_search/scroll")
            .count();
        if (answered == freed && in_use(&gw) == 0) || started.elapsed() > Duration::from_secs(20) {
            assert_eq!(
                (answered, freed, in_use(&gw)),
                (answered, answered, 0),
                "{:?}",
                seen.iter()
                    .map(|p| format!("{} {} {}", p.method, p.target, p.status))
                    .collect::<Vec<_>>()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = gw.get("/logs-a/_count", &secret).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// A `_has_privileges` body naming 32 indices of the token's patterns checks each through a
/// lookup of its own: a few at a time, as a search's expressions are resolved
/// (`RESOLVE_CONCURRENCY`, 8), not all 32 at once (each a backend connection: eight such
/// requests held all 256 of a node). Against `ConnectionProbe` (each answer read as an empty
/// resolution): it sees at most 8 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn has_privileges_lookups_go_a_few_at_a_time() {
    let probe = ConnectionProbe::start();
    let gw = Esgate::start_full(&[probe.url()], "workers = 1", "", "").await;
    let secret = gw.tenant_token("a").await;
    let names: Vec<String> = (0..32).map(|i| format!("logs-{i}")).collect();
    let body = serde_json::json!({"index": [{"names": names, "privileges": ["read"]}]});
    let r = support::http::send(
        "POST",
        &gw.url("/_security/user/_has_privileges"),
        &[
            ("authorization", format!("Bearer {secret}").as_str()),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["index"].as_object().map(|o| o.len()), Some(32), "{v}");
    assert!(
        probe.accepted() <= 8,
        "{} backend connections for one request",
        probe.accepted()
    );
}
