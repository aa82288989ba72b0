//! A cluster that misbehaves, seen from esgate's backend side (rel22), with fault-injecting
//! fakes on real sockets: connects made slow (a node whose SYNs are never answered, one that
//! takes the connection and never answers the TLS handshake, a slow TCP connect then a stalled
//! handshake), each bounded by `backend.connect_timeout` as a whole, the request then served by
//! the next node (a pass-through token's streamed body too), the node's places under its cap
//! given back, and once its cool-down ends one request at a time trying it while the others go
//! on to the healthy node; and answers that go wrong once the request was sent (a head past
//! the read buffer, a chunked body cut mid-chunk, a `Content-Length` longer than what comes,
//! a 1xx then nothing), each ending in a clear error or a cut stream within its timeout, an
//! audit record, and the connection closed, never back in the pool.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::esgate::{audit_file_section, audit_records, Esgate};
use support::faults::{FaultServer, Unanswered};
use support::http::{send_with_timeout, SendError};

/// A node that answers everything with a small JSON document.
fn healthy() -> FaultServer {
    FaultServer::answer(200, "application/json", "{\"ok\":true}")
}

/// esgate before two nodes, `stalled` (a node URL whose connects stall) first and a healthy one
/// second, with `backend` as the `[backend]` section's keys; the healthy node, which serves as
/// long as it is held.
async fn stalled_then_healthy(stalled: &str, backend: &str) -> (Esgate, FaultServer) {
    let good = healthy();
    let gw = Esgate::start_full(&[stalled, good.url()], "", backend, "").await;
    (gw, good)
}

/// A search with a body, sent by a pass-through token: its body is relayed as it arrives
/// (never buffered, so never replayable before rel22).
async fn search(gw: &Esgate, secret: &str) -> (u16, Duration, Vec<u8>) {
    let started = Instant::now();
    let auth = format!("Bearer {secret}");
    let r = send_with_timeout(
        "POST",
        &gw.url("/logs-a/_search"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        br#"{"query":{"match_all":{}}}"#.to_vec(),
        Duration::from_secs(20),
    )
    .await
    .expect("esgate answers");
    (r.status.as_u16(), started.elapsed(), r.body.to_vec())
}

/// Item 1: a node whose connects never complete (its SYNs unanswered), and one that takes the
/// connection and never answers the TLS handshake: the request gives the node up after
/// `connect_timeout` and is served by the next node, its streamed body included (before
/// rel22 a pass-through token's body request got a 502: its body could not be replayed,
/// though nothing of it had been read); the node's place under its cap is back, and the next
/// requests skip it without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_connects_stall_costs_connect_timeout_then_the_next_node_serves() {
    let unanswered = Unanswered::start(None);
    let tls_silent = FaultServer::hang();
    let stalled = [
        format!("http://{}", unanswered.addr()),
        tls_silent.url().replacen("http://", "https://", 1),
    ];
    for node in &stalled {
        let (gw, _good) = stalled_then_healthy(
            node,
            "connect_timeout = \"1s\"\nrequest_timeout = \"10s\"\nmax_connections_per_node = 2",
        )
        .await;
        first_node_given_up_after_a_second_then_skipped(&gw, node).await;
        gw.stop().await;
    }
}

/// The rotation's first request goes to `gw`'s first node, which stalls connects: served by the
/// next node after about a second (a connect cut then), the first node cooling down with its
/// place under the cap back; the next requests skip it without waiting.
async fn first_node_given_up_after_a_second_then_skipped(gw: &Esgate, node: &str) {
    let secret = gw.all_token().await;
    let (status, took, body) = search(gw, &secret).await;
    assert_eq!(status, 200, "{node}: {}", String::from_utf8_lossy(&body));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{node}: {took:?}"
    );
    let status = gw.app.upstream.node_status();
    assert!(!status[0].healthy, "{node}: cooling down");
    assert_eq!(status[0].failures, 1, "{node}");
    assert_eq!(status[0].open, 0, "{node}: its place under the cap is back");
    for _ in 0..4 {
        let (status, took, _) = search(gw, &secret).await;
        assert_eq!(status, 200, "{node}");
        assert!(took < Duration::from_millis(800), "{node}: {took:?}");
    }
}

/// Item 1 (rel22, L): name resolution and TCP had `connect_timeout`, then the TLS handshake
/// had it again: a TCP connect that took a while (its first SYN dropped, answered at the next
/// one, 1 s later) followed by a handshake that never ends cost 1 s + `connect_timeout`.
/// Connecting is now bounded by `connect_timeout` as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tcp_connect_and_a_stalled_handshake_share_one_connect_timeout() {
    let slow = Unanswered::start(Some(Duration::from_millis(300)));
    let node = format!("https://{}", slow.addr());
    let (gw, _good) =
        stalled_then_healthy(&node, "connect_timeout = \"2s\"\nrequest_timeout = \"10s\"").await;
    let secret = gw.all_token().await;
    let (status, took, _) = search(&gw, &secret).await;
    assert_eq!(status, 200);
    // Before: about 1 s of TCP, then 2 s of TLS.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(2700),
        "{took:?}"
    );
    assert_eq!(gw.app.upstream.node_status()[0].failures, 1);
    gw.stop().await;
}

/// rel23 item 1: with `request_timeout` shorter than `connect_timeout`, the request's deadline
/// cut a stalled connect as a timeout: a 504, no other node tried, the node never marked down
/// (so every request the rotation brought to it got a 504 for as long as it stalled). A connect
/// the deadline cuts is now a failed connect: the node is marked down, and the next requests
/// skip it. rel24 item 3: the request itself had `request_timeout` anew on the next node (it was
/// served after twice its `request_timeout`); its time spent, it is a 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_cut_by_a_shorter_request_timeout_marks_the_node_down() {
    let unanswered = Unanswered::start(None);
    let node = format!("http://{}", unanswered.addr());
    let (gw, _good) =
        stalled_then_healthy(&node, "connect_timeout = \"5s\"\nrequest_timeout = \"1s\"").await;
    let secret = gw.all_token().await;
    let (status, took, body) = search(&gw, &secret).await;
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let status = gw.app.upstream.node_status();
    assert!(!status[0].healthy, "cooling down");
    assert_eq!(status[0].failures, 1);
    assert_eq!(status[0].open, 0, "its place under the cap is back");
    for _ in 0..4 {
        let (status, took, _) = search(&gw, &secret).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(800), "{took:?}");
    }
    gw.stop().await;
}

/// rel24 item 3: each node a request tried had `request_timeout` anew, so a request could wait
/// as many times it as there are nodes (with `request_timeout` under `connect_timeout`, each
/// stalled node's connect cut by a fresh deadline; otherwise each took `connect_timeout`, then
/// the next node had the whole `request_timeout` again). The request's `request_timeout` now
/// bounds it over every node: the first stalled node takes its `connect_timeout` (marked down),
/// the second only what is left, and the request is a 504 at `request_timeout`; that second
/// connect, cut short by the first node's, is not held against its node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_timeout_bounds_it_over_every_node_it_tries() {
    let stalled = [Unanswered::start(None), Unanswered::start(None)];
    let good = healthy();
    let nodes: Vec<String> = stalled
        .iter()
        .map(|s| format!("http://{}", s.addr()))
        .collect();
    let gw = Esgate::start_full(
        &[&nodes[0], &nodes[1], good.url()],
        "",
        "connect_timeout = \"1s\"\nrequest_timeout = \"1500ms\"",
        "",
    )
    .await;
    let secret = gw.all_token().await;
    // The rotation's first request: the two stalled nodes, then the healthy one.
    let (status, took, body) = search(&gw, &secret).await;
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let status = gw.app.upstream.node_status();
    assert_eq!(
        status[0].failures, 1,
        "the first node had its connect_timeout"
    );
    assert_eq!(status[1].failures, 0, "the second had what the first left");
    assert!(status[1].healthy);
    assert_eq!((status[0].open, status[1].open), (0, 0));
    gw.stop().await;
}

/// rel24 item 1: a node merely busy was marked down. A request waiting for a free connection
/// (the node at `max_connections_per_node`) spent most of its `request_timeout` in the queue,
/// then had its connect cut by what was left: a failed connect, the node marked down (and
/// skipped by every request for `unhealthy_cooldown`). Such a connect had only the wait's
/// remainder, not `connect_timeout`: the request is now a 504 and the node stays up. A connect
/// that has its time still marks the node down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_cut_after_a_wait_for_a_free_connection_does_not_mark_the_node_down() {
    let busy = Unanswered::after_one(Duration::from_millis(1000));
    let node = format!("http://{}", busy.addr());
    let gw = std::sync::Arc::new(
        Esgate::start_full(
            &[&node],
            "",
            "connect_timeout = \"2s\"\nrequest_timeout = \"2500ms\"\nmax_connections_per_node = 1",
            "",
        )
        .await,
    );
    let secret = gw.all_token().await;
    // The first request holds the node's one connection for a second.
    let first = {
        let (gw, secret) = (std::sync::Arc::clone(&gw), secret.clone());
        tokio::spawn(async move { search(&gw, &secret).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The second waits for it (about 0.8 s), then connects with 1.5 s left of its 2.5 s: the
    // node, too busy to accept, does not answer the connect in that time.
    let (status, took, body) = search(&gw, &secret).await;
    let (first_status, _, _) = first.await.unwrap();
    assert_eq!(first_status, 200);
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    let status = gw.app.upstream.node_status();
    assert!(status[0].healthy, "marked down");
    assert_eq!(status[0].failures, 0);
    assert_eq!(status[0].open, 0, "its place under the cap is back");
    // A connect that has its `connect_timeout` marks it down.
    let (status, took, _) = search(&gw, &secret).await;
    assert_eq!(status, 502);
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert_eq!(gw.app.upstream.node_status()[0].failures, 1);
}

/// Item 1 (rel22, M): once a failed node's cool-down ended, every request the rotation brought
/// to it tried to connect, each for up to `connect_timeout`, until one failed and marked it
/// down again: a node whose SYNs go unanswered (a host powered off) held about half of all
/// requests for `connect_timeout` after each cool-down, every tenant's. Now one request at a
/// time tries it; the others go to the healthy node. Slow requests never overlap, every
/// request is served, and no place under the node's cap stays taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_cool_down_one_request_at_a_time_tries_the_node() {
    let unanswered = Unanswered::start(None);
    let node = format!("http://{}", unanswered.addr());
    let (gw, _good) = stalled_then_healthy(
        &node,
        "connect_timeout = \"1s\"\nrequest_timeout = \"10s\"\nunhealthy_cooldown = \"500ms\"",
    )
    .await;
    let tenants = [
        gw.all_token().await,
        gw.token(json!({"name": "other", "permissions": ["all"]}))
            .await
            .1,
    ];
    // The first failure marks the node down.
    let (status, _, _) = search(&gw, &tenants[0]).await;
    assert_eq!(status, 200);
    // Four clients of two tenants, one request after another, for 3.5 s.
    let until = Instant::now() + Duration::from_millis(3500);
    let gw = std::sync::Arc::new(gw);
    let mut clients = Vec::new();
    for i in 0..4 {
        let (gw, secret) = (std::sync::Arc::clone(&gw), tenants[i % 2].clone());
        clients.push(tokio::spawn(async move {
            let mut slow = Vec::new();
            let mut served = 0;
            while Instant::now() < until {
                let started = Instant::now();
                let (status, took, _) = search(&gw, &secret).await;
                assert_eq!(status, 200);
                served += 1;
                if took > Duration::from_millis(600) {
                    slow.push((started, started + took));
                }
            }
            (slow, served)
        }));
    }
    let mut slow = Vec::new();
    let mut served = 0;
    for c in clients {
        let (s, n) = c.await.unwrap();
        slow.extend(s);
        served += n;
    }
    slow.sort();
    assert!(!slow.is_empty(), "the node was tried again");
    for pair in slow.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1 - Duration::from_millis(50),
            "two requests tried the node at once ({} slow of {served}): {slow:?}",
            slow.len()
        );
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(gw.app.upstream.node_status()[0].open, 0);
}

/// A backend answer that goes wrong after the request was sent, and how each ends for a
/// pass-through token's streamed answer and for a `read` token's scroll, whose answer esgate
/// reads whole.
struct Bad {
    name: &'static str,
    answer: &'static [u8],
    /// The connection closed after the answer (else held open).
    close: bool,
    /// The status a `read` token's scroll gets, and a streamed answer whose head did not
    /// come.
    whole: u16,
    /// Whether the streamed answer's head (200) reaches the client before the cut.
    streamed_head: bool,
}

/// An answer head far past the backend connection's read buffer (64 KiB).
fn huge_head() -> &'static [u8] {
    let pad = "x".repeat(1024 * 1024);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-pad: {pad}\r\n\
         content-length: 2\r\n\r\n{{}}"
    );
    Box::leak(head.into_bytes().into_boxed_slice())
}

/// An answer whose head (status line, headers, blank line) is `size` bytes, padded by one
/// header, its body `{}`: written at once, so that it may arrive in one read.
pub(crate) fn head_of(size: usize) -> &'static [u8] {
    let start = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 x-elastic-product: Elasticsearch\r\ncontent-length: 2\r\nx-pad: ";
    let end = "\r\n\r\n";
    let pad = "x".repeat(size - start.len() - end.len());
    let answer = format!("{start}{pad}{end}{{}}");
    assert_eq!(answer.len(), size + 2);
    Box::leak(answer.into_bytes().into_boxed_slice())
}

/// rel23 item 2: the cap on a backend answer's head is 64 KiB (the read buffer), however the
/// head arrives. hyper refuses a head still unfinished once its buffer holds 64 KiB, but a
/// read may fill the buffer's spare room past it: an 80 KiB head written at once passed. The
/// side that passes: a head of exactly 64 KiB (the side refused: `backend_answers_that_go_wrong_
/// after_the_request_end_cleanly`, 64 KiB and a byte, 80 KiB, 1 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answer_head_of_64_kib_passes() {
    let node = FaultServer::raw(head_of(64 * 1024), false);
    let gw = Esgate::start_full(&[node.url()], "", "request_timeout = \"5s\"", "").await;
    let secret = gw.all_token().await;
    // One request: the fake answers the first request of a connection only.
    let (status, _, body) = search(&gw, &secret).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"{}");
    gw.stop().await;
}

/// Item 3: answers that go wrong once the request was sent. Before rel22 no test sent any of
/// them; each already ended right (no finding), and now stays so: a 502 or 504 as
/// Elasticsearch error JSON (or, for a streamed answer whose head was relayed, a cut stream)
/// within the backend timeouts, an audit record, the gateway still serving, and the broken
/// connection closed, never parked for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_answers_that_go_wrong_after_the_request_end_cleanly() {
    let cases = [
        Bad {
            name: "a head far past the read buffer",
            answer: huge_head(),
            close: false,
            whole: 502,
            streamed_head: false,
        },
        Bad {
            name: "an 80 KiB head written at once (rel23: passed)",
            answer: head_of(80 * 1024),
            close: false,
            whole: 502,
            streamed_head: false,
        },
        Bad {
            name: "a head of 64 KiB and a byte",
            answer: head_of(64 * 1024 + 1),
            close: false,
            whole: 502,
            streamed_head: false,
        },
        Bad {
            name: "a chunked body cut mid-chunk",
            answer: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                x-elastic-product: Elasticsearch\r\ntransfer-encoding: chunked\r\n\r\n\
                40\r\n{\"took\":1,\"hits\":{\"hits\":[",
            close: true,
            whole: 502,
            streamed_head: true,
        },
        Bad {
            name: "a Content-Length longer than what comes",
            answer: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                x-elastic-product: Elasticsearch\r\ncontent-length: 1000\r\n\r\n\
                {\"took\":1,\"hits\":{\"hits\":[",
            close: true,
            whole: 502,
            streamed_head: true,
        },
        Bad {
            name: "a 100 Continue then nothing",
            answer: b"HTTP/1.1 100 Continue\r\n\r\n",
            close: false,
            whole: 504,
            streamed_head: false,
        },
        Bad {
            name: "a 103 Early Hints then nothing",
            answer: b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n",
            close: false,
            whole: 504,
            streamed_head: false,
        },
        Bad {
            name: "a 100 Continue then a close",
            answer: b"HTTP/1.1 100 Continue\r\n\r\n",
            close: true,
            whole: 502,
            streamed_head: false,
        },
    ];
    let limit = Duration::from_secs(10);
    for case in cases {
        let name = case.name;
        let bad = FaultServer::raw(case.answer, case.close);
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.jsonl");
        let gw = Esgate::start_full(
            &[bad.url()],
            "",
            "request_timeout = \"1s\"\nbody_idle_timeout = \"1s\"\nanswer_timeout = \"2s\"",
            &audit_file_section(&audit),
        )
        .await;
        let all = gw.all_token().await;
        let read = gw.tenant_token("a").await;

        // A pass-through token's answer, streamed.
        let started = Instant::now();
        let auth = format!("Bearer {all}");
        let r = send_with_timeout(
            "POST",
            &gw.url("/logs-a/_search"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            b"{}".to_vec(),
            limit,
        )
        .await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(4), "{name}: {took:?}");
        match r {
            Err(SendError::Transport(_)) if case.streamed_head => {}
            Ok(r) if !case.streamed_head => {
                assert_eq!(r.status, case.whole, "{name}: {}", r.text());
                let v: Value = serde_json::from_slice(&r.body).expect("JSON");
                assert_eq!(v["status"], case.whole, "{name}: {v}");
            }
            other => panic!("{name}: {other:?}"),
        }

        // A `read` token's scroll, read whole: an error, never a partial page.
        let started = Instant::now();
        let r = gw
            .call_raw(&read, "POST", "/logs-a/_search?scroll=1m", json!({}), &[])
            .await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(4), "{name}: {took:?}");
        assert_eq!(r.status, case.whole, "{name}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(v["status"], case.whole, "{name}: {v}");

        // Each has its record; the broken connections are closed, not parked.
        let to_search = |r: &Value| r["type"] == "request" && r["path"] == "/logs-a/_search";
        let records = audit_records(&audit, to_search, 2, limit).await;
        assert_eq!(records.len(), 2, "{name}: {records:?}");
        for r in &records {
            let streamed = r["token_name"] == "all";
            if streamed && case.streamed_head {
                // The client had the head: its status, and why its stream was cut.
                assert_eq!(r["status"], 200, "{name}: {r}");
                assert_eq!(r["decision"], "allow", "{name}: {r}");
                assert_eq!(
                    r["reason"], "the answer was cut short: the backend's answer broke off",
                    "{name}: {r}"
                );
            } else {
                assert_eq!(r["status"], case.whole, "{name}: {r}");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let node = &gw.app.upstream.node_status()[0];
            // The resolution lookups' connection, answered properly, may stay parked.
            if node.open <= 1 && node.open == node.idle {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {} open, {} idle",
                node.open,
                node.idle
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Still serving.
        let ready = send_with_timeout("GET", &gw.admin_url("/health"), &[], Vec::new(), limit)
            .await
            .expect("the admin listener answers");
        assert_eq!(ready.status, 200, "{name}");
        gw.stop().await;
    }
}
