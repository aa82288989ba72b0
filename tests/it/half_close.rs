//! HTTP/1 half-close (session 13): a client that sends its whole request and then shuts down
//! its write side (TCP `shutdown(SHUT_WR)`, or TLS `close_notify`) is still answered, and the
//! connection is then closed; one that shuts its side before a whole request is closed at
//! once, never left open to the header timeout. Data and admin listeners, plain and TLS (the
//! in-process recording backend: what matters is esgate's side of the connection).

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use support::esgate::Esgate;
use support::recording::Recording;

/// Everything until the server closes the connection, and how long that took; panics after
/// 10 s (the header timeout below is 20 s: a connection left open fails the test).
async fn until_closed<S: AsyncRead + Unpin>(s: &mut S) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(read.is_ok(), "the connection is still open: {text:.300}");
    (text, started.elapsed())
}

/// Sends `request`, shuts the write side, and returns what came back before the close.
async fn half_closed<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    s.shutdown().await.unwrap();
    until_closed(&mut s).await.0
}

async fn start(tls: &str) -> (Recording, Esgate, String) {
    let es = Recording::start();
    es.script_json("GET", "/", 200, json!({"version": {"number": "8.15.3"}}));
    let gw = Esgate::start_full(
        &[es.url()],
        "header_timeout = \"20s\"\nidle_timeout = \"20s\"",
        "",
        tls,
    )
    .await;
    let secret = gw.all_token().await;
    (es, gw, secret)
}

/// What each listener is asked, and the answer's first line.
fn requests(secret: &str) -> [(&'static str, String, &'static str); 3] {
    [
        // Forwarded: the answer comes after the backend's, well after the shutdown.
        (
            "data",
            format!("GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n"),
            "HTTP/1.1 200",
        ),
        // esgate's own refusal.
        (
            "data",
            "GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            "HTTP/1.1 401",
        ),
        (
            "admin",
            "GET /health HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            "HTTP/1.1 200",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_connection_is_answered_then_closed() {
    let (_es, gw, secret) = start("").await;
    for (listener, request, status) in requests(&secret) {
        let addr = if listener == "data" {
            gw.data_addr
        } else {
            gw.admin_addr
        };
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let answer = half_closed(s, &request).await;
        assert!(answer.starts_with(status), "{listener}: {answer:.300}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer:.300}");
    }
    // Shut before a whole request (nothing, or half a head): closed at once, not at the
    // header timeout.
    for addr in [gw.data_addr, gw.admin_addr] {
        for partial in ["", "GET / HTTP/1.1\r\nhost:"] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(partial.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let (answer, took) = until_closed(&mut s).await;
            assert!(took < Duration::from_secs(5), "{partial:?}: {took:?}");
            assert!(!answer.contains(" 200 "), "{partial:?}: {answer:.300}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_sends_close_notify_is_answered_then_closed() {
    let tls = support::tls::TlsFiles::generate();
    let listen = format!(
        "[listen.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        tls.cert.display().to_string(),
        tls.key.display().to_string()
    );
    let (_es, gw, secret) = start(&listen).await;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&tls.ca_cert).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    for (listener, request, status) in requests(&secret) {
        if listener != "data" {
            continue; // The admin listener has no TLS.
        }
        let tcp = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
        let s = connector.connect(name.clone(), tcp).await.unwrap();
        let answer = half_closed(s, &request).await;
        assert!(answer.starts_with(status), "{answer:.300}");
    }
}

/// The price of half-close: a client that goes away while its request waits on the backend is
/// noticed when its answer is written, not when its side closes. The backend's own timeout
/// (`request_timeout`) still bounds the wait: the request's `max_concurrent` slot is free
/// again once it has passed, and the connection does not linger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_while_its_request_waits_is_let_go_at_the_backends_timeout() {
    let hang = support::faults::FaultServer::hang();
    let gw = Esgate::start_full(
        &[hang.url()],
        "header_timeout = \"20s\"\nidle_timeout = \"20s\"",
        "request_timeout = \"2s\"",
        "",
    )
    .await;
    let (_, secret) = gw
        .token(json!({"name": "one", "permissions": ["all"], "limits": {"max_concurrent": 1}}))
        .await;
    let request = format!("GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n");
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    // Its slot is held until the backend's timeout, then free (the next request waits on the
    // backend in its turn: 504, not 429).
    let mut status = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let r = gw
            .call_raw(&secret, "GET", "/", serde_json::Value::Null, &[])
            .await;
        status = r.status.as_u16();
        if status != 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 504, "after {:?}", started.elapsed());
}
