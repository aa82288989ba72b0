//! HTTP protocol corners between a client, esgate and the backend (attack18e): request
//! trailers, `Expect: 100-continue`, and credentials that change while a connection stays open.
//! The recording fake shows exactly what esgate forwards (trailers included).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::esgate::Esgate;
use crate::support::recording::Recording;

/// A recording backend that answers searches, and esgate in front of it.
async fn setup() -> (Recording, Esgate) {
    setup_with("").await
}

/// `setup` with lines for esgate's `[listen]`.
async fn setup_with(listen: &str) -> (Recording, Esgate) {
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    es.script_json(
        "*",
        "/logs-a/_search",
        200,
        json!({"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}),
    );
    let gw = Esgate::start(&[es.url()], listen).await;
    (es, gw)
}

/// Reads from `conn` until `want` bytes or more arrived, the peer closes or `limit` passes.
async fn read_some(conn: &mut TcpStream, want: usize, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        while out.len() < want {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// A chunked request's trailer fields never reach the backend, for a `read` token (whose
/// request esgate rebuilds) nor for a pass-through token (whose body esgate streams): not
/// an `Authorization` (another credential), `Content-Type`, `X-Opaque-Id` or any other.
/// `Trailer` is a hop-by-hop header, never relayed, and hyper's client writes only trailers
/// that header declares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_never_reach_the_backend() {
    let (es, gw) = setup().await;
    let read = gw.tenant_token("a").await;
    let all = gw.all_token().await;
    for secret in [&read, &all] {
        es.clear();
        let body = br#"{"size": 0}"#;
        let mut wire = format!(
            "POST /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\
             trailer: authorization, content-type, x-opaque-id, x-extra\r\n\
             connection: close\r\n\r\n{:x}\r\n",
            body.len()
        )
        .into_bytes();
        wire.extend_from_slice(body);
        wire.extend_from_slice(
            format!(
                "\r\n0\r\nauthorization: Bearer {all}\r\ncontent-type: application/yaml\r\n\
                 x-opaque-id: client-chosen\r\nx-extra: 1\r\n\r\n"
            )
            .as_bytes(),
        );
        let answer = crate::support::http::raw(gw.data_addr, &wire).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let sent = es.requests_to("POST", "/logs-a/_search");
        assert_eq!(sent.len(), 1, "{sent:?}");
        let r = &sent[0];
        assert!(
            r.trailers.as_ref().is_none_or(|t| t.is_empty()),
            "trailers reached the backend: {:?}",
            r.trailers
        );
        assert!(r.header("trailer").is_none(), "{:?}", r.headers);
        assert_ne!(
            r.header("authorization"),
            Some(format!("Bearer {all}").as_str())
        );
        assert_ne!(
            r.header("authorization"),
            Some(format!("Bearer {secret}").as_str())
        );
        assert_ne!(r.header("x-opaque-id"), Some("client-chosen"));
        assert_eq!(
            r.header("content-type").map(|c| c.contains("yaml")),
            Some(false)
        );
    }
}

/// HTTP/2 request trailers (a HEADERS frame after the body's DATA) never reach the backend
/// either, for a `read` or a pass-through token: esgate's upstream is HTTP/1.1 and it never
/// relays a `Trailer` header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_request_trailers_never_reach_the_backend() {
    let (es, gw) = setup().await;
    let read = gw.tenant_token("a").await;
    let all = gw.all_token().await;
    for secret in [&read, &all] {
        es.clear();
        let stream = TcpStream::connect(gw.data_addr).await.expect("connects");
        let (mut h2, conn) = hyper::client::conn::http2::Builder::new(
            hyper_util::rt::TokioExecutor::new(),
        )
        .handshake::<_, http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        let conn = tokio::spawn(conn);
        let mut trailers = http::HeaderMap::new();
        for (k, v) in [
            ("authorization", format!("Bearer {all}")),
            ("x-opaque-id", "client-chosen".to_string()),
            ("x-extra", "1".to_string()),
        ] {
            trailers.insert(
                http::HeaderName::from_static(k),
                http::HeaderValue::from_str(&v).expect("value"),
            );
        }
        let frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(hyper::body::Frame::data(Bytes::from_static(
                br#"{"size": 0}"#,
            ))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let req = http::Request::post(gw.url("/logs-a/_search"))
            .header("authorization", format!("Bearer {secret}"))
            .header("content-type", "application/json")
            .header("trailer", "authorization, x-opaque-id, x-extra")
            .body(body)
            .expect("request");
        let r = h2.send_request(req).await.expect("answers");
        assert_eq!(r.status(), 200);
        let _ = r.into_body().collect().await;
        let sent = es.requests_to("POST", "/logs-a/_search");
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(
            sent[0].trailers.as_ref().is_none_or(|t| t.is_empty()),
            "{:?}",
            sent[0].trailers
        );
        assert!(sent[0].header("trailer").is_none());
        assert_ne!(sent[0].header("x-opaque-id"), Some("client-chosen"));
        conn.abort();
    }
}

/// `Expect: 100-continue` is answered with `100 Continue` only once esgate reads the body,
/// which it does after the credential and the route are decided: a request with a bad
/// credential, or a refused route, gets its refusal first and never a 100 (the client never
/// sends a body that nothing reads); an allowed one gets its 100 and then its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_comes_only_after_the_decision() {
    let (es, gw) = setup().await;
    let read = gw.tenant_token("a").await;
    let body = br#"{"size": 0}"#;
    let head = |secret: &str, path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\
             expect: 100-continue\r\n\r\n",
            body.len()
        )
    };
    for (secret, path, status) in [
        ("esgt_not-a-token", "/logs-a/_search", "401"),
        (read.as_str(), "/_security/api_key", "403"),
        (read.as_str(), "/secret/_search", "403"),
    ] {
        let mut conn = TcpStream::connect(gw.data_addr).await.expect("connects");
        conn.write_all(head(secret, path).as_bytes())
            .await
            .expect("sends");
        let first = read_some(&mut conn, 12, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&first);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {text}"
        );
    }
    assert!(es.requests_to("POST", "/logs-a/_search").is_empty());
    // Allowed: the 100 first, then the answer once the body is sent.
    let mut conn = TcpStream::connect(gw.data_addr).await.expect("connects");
    conn.write_all(head(&read, "/logs-a/_search").as_bytes())
        .await
        .expect("sends");
    let first = read_some(&mut conn, 25, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{text}");
    conn.write_all(body).await.expect("sends the body");
    let rest = read_some(&mut conn, 12, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&rest);
    let answer = text.trim_start_matches("HTTP/1.1 100 Continue\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{text}");
    // Without a body (a GET search, `content-length: 0`): no 100, the answer at once.
    for framing in ["", "content-length: 0\r\n"] {
        let mut conn = TcpStream::connect(gw.data_addr).await.expect("connects");
        let head = format!(
            "GET /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {read}\r\n\
             {framing}expect: 100-continue\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.expect("sends");
        let first = read_some(&mut conn, 12, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&first);
        assert!(text.starts_with("HTTP/1.1 200"), "{framing:?}: {text}");
    }
}

/// Every request is authenticated, never a connection: a token deleted, reset or expired
/// while a keep-alive HTTP/1.1 connection idles, or while an HTTP/2 connection stays open, is
/// refused on the next request of that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_reset_or_expired_token_is_refused_on_its_open_connections() {
    let (es, gw) = setup().await;
    let token = |name: &str, expires: Option<&str>| {
        let mut t = json!({"name": name, "indices": ["logs-*"],
            "filters": [{"field": "tenant", "value": "a"}]});
        if let Some(e) = expires {
            t["expires_in"] = json!(e);
        }
        t
    };
    let mut open = Vec::new();
    let started = std::time::Instant::now();
    for (name, expires) in [("deleted", None), ("reset", None), ("expired", Some("6s"))] {
        let (id, secret) = gw.token(token(name, expires)).await;
        let request = format!(
            "GET /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n"
        );
        // HTTP/1.1: one keep-alive connection.
        let mut h1 = TcpStream::connect(gw.data_addr).await.expect("connects");
        h1.write_all(request.as_bytes()).await.expect("sends");
        let first = read_some(&mut h1, 12, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&first).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text}");
        // HTTP/2 (prior knowledge): one connection, kept open across the change.
        let stream = TcpStream::connect(gw.data_addr).await.expect("connects");
        let (mut h2, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake::<_, http_body_util::Full<Bytes>>(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        let conn = tokio::spawn(conn);
        let r = h2.send_request(get(&gw, &secret)).await.expect("answers");
        assert_eq!(r.status(), 200, "{name}");
        let _ = r.into_body().collect().await;
        open.push((name, id, secret, request, h1, h2, conn));
    }
    for (name, id, ..) in &open {
        let (status, v) = match *name {
            "deleted" => gw.admin("DELETE", &format!("/tokens/{id}"), None).await,
            "reset" => gw.admin("POST", &format!("/tokens/{id}/reset"), None).await,
            _ => (200, json!(null)),
        };
        assert!((200..300).contains(&status), "{name}: {status} {v}");
    }
    // The expired token was made after `started`: past its 6 s (the first requests of all
    // three must fit in them; a slow machine fails the 200 above, never this check).
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(started.elapsed())).await;
    es.clear();
    for (name, _, secret, request, mut h1, mut h2, conn) in open {
        h1.write_all(request.as_bytes()).await.expect("sends again");
        let again = read_some(&mut h1, 12, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&again);
        // An expired token is a 403 naming the expiry; an unknown credential a 401.
        let status = if name == "expired" { 403 } else { 401 };
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: {text}"
        );
        let r = h2.send_request(get(&gw, &secret)).await.expect("answers");
        assert_eq!(r.status(), status, "{name}");
        conn.abort();
    }
    assert!(es.requests_to("GET", "/logs-a").is_empty());
}

fn get(gw: &Esgate, secret: &str) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::get(gw.url("/logs-a/_search"))
        .header("authorization", format!("Bearer {secret}"))
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request")
}

/// Request smuggling between esgate and the backend: each ambiguous framing (Content-Length
/// beside Transfer-Encoding, disguised or doubled Transfer-Encoding, a header name with a
/// space, an obs-folded line, bare `\n` line ends) carrying a second request for an index the
/// token may not read is either refused by esgate or answered as one request; the backend
/// never sees the second one, never a 5xx comes back, and a `read` token's body reaches the
/// backend only as esgate rebuilt it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_never_smuggles_a_request_to_the_backend() {
    let (es, gw) = setup().await;
    es.script_json("*", "/secret", 200, json!({"hits": {"hits": []}}));
    let read = gw.tenant_token("a").await;
    let all = gw.all_token().await;
    for secret in [&read, &all] {
        let smuggled = format!(
            "GET /secret/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n"
        );
        let start = |extra: &str| {
            format!(
                "POST /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\
                 content-type: application/json\r\n{extra}"
            )
        };
        let chunked_end = format!("2\r\n{{}}\r\n0\r\n\r\n{smuggled}");
        let cases = [
            format!(
                "{}content-length: {}\r\ntransfer-encoding: chunked\r\n\r\n{chunked_end}",
                start(""),
                chunked_end.len()
            ),
            format!(
                "{}transfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n{chunked_end}",
                start("")
            ),
            format!(
                "{}transfer-encoding: xchunked\r\n\r\n{chunked_end}",
                start("")
            ),
            format!(
                "{}transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n\r\n{chunked_end}",
                start("")
            ),
            format!(
                "{}transfer-encoding : chunked\r\ncontent-length: 2\r\n\r\n{{}}{smuggled}",
                start("")
            ),
            format!(
                "{}content-length: 2\r\nx-a: 1\r\n transfer-encoding: chunked\r\n\r\n{chunked_end}",
                start("")
            ),
            format!(
                "{}content length: 2\r\ncontent-length: 2\r\n\r\n{{}}{smuggled}",
                start("")
            ),
            start("content-length: 2\r\n\r\n{}").replace("\r\n", "\n")
                + &smuggled.replace("\r\n", "\n"),
            format!("{}content-length: 2\r\n\r\n{{}}{smuggled}", start("")),
        ];
        for case in &cases {
            es.clear();
            let answer = crate::support::http::raw_with_timeout(
                gw.data_addr,
                case.as_bytes(),
                Duration::from_secs(2),
            )
            .await;
            let text = String::from_utf8_lossy(&answer);
            assert!(!text.contains("HTTP/1.1 5"), "{case:?}: {text}");
            let reached = es.requests();
            // The last two cases are two pipelined requests as esgate reads them (hyper takes
            // a bare `\n` as a line end; esgate writes its own framing upstream): the second is
            // the client's own, authenticated on its own, refused by esgate for a read token,
            // relayed for a pass-through one.
            let honest = cases.len()
                - cases
                    .iter()
                    .position(|c| std::ptr::eq(c, case))
                    .unwrap_or(0)
                <= 2;
            let foreign = reached
                .iter()
                .filter(|r| r.path.starts_with("/secret"))
                .count();
            assert_eq!(
                foreign,
                usize::from(honest && secret == &all),
                "{case:?}: {reached:?}"
            );
            let searches = es.requests_to("POST", "/logs-a/_search");
            assert!(searches.len() <= 1, "{case:?}: {searches:?}");
            if secret == &read {
                for r in &searches {
                    let body = r.json();
                    assert!(body.to_string().contains("tenant"), "{case:?}: {body}");
                }
            }
        }
    }
}

/// An HTTP/1 request head of exactly `len` bytes (its last header padded), `extra` after it.
fn head_of(len: usize, method: &str, extra_headers: &str) -> Vec<u8> {
    let start = format!(
        "{method} /logs-a/_search HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra_headers}x-pad: "
    );
    let end = "\r\n\r\n";
    let pad = len - start.len() - end.len();
    format!("{start}{}{end}", "p".repeat(pad)).into_bytes()
}

/// The head cap (`listen.max_header_bytes`, 16 KiB by default) is hyper's `max_header_size`,
/// apart from its read buffer (perf19b: the buffer was the cap, so bodies were read 16 KiB at
/// a time; now reads are bigger, 64 KiB, and a head past the cap that arrives whole in one of
/// them must still be refused). A head of the cap is read (401: no credentials); one byte more
/// is a 431, whether it arrives in one write, with a body behind it, or a piece at a time; a
/// head under the cap with a large body behind it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_past_max_header_bytes_is_refused_431_however_it_arrives() {
    let (_es, gw) = setup().await;
    let cap = 16 * 1024;
    let status =
        |answer: &[u8]| String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    for (len, want) in [
        (cap, "HTTP/1.1 401"),
        (cap + 1, "HTTP/1.1 431"),
        (40_000, "HTTP/1.1 431"),
        (60_000, "HTTP/1.1 431"),
    ] {
        let answer = crate::support::http::raw(gw.data_addr, &head_of(len, "GET", "")).await;
        assert_eq!(status(&answer), want, "head of {len} bytes in one write");
    }
    // With a body behind it in the same write: the read holds more than the head.
    let body = vec![b' '; 100_000];
    for (len, want) in [
        (cap, "HTTP/1.1 401"),
        (cap + 1, "HTTP/1.1 431"),
        (30_000, "HTTP/1.1 431"),
    ] {
        let mut request = head_of(
            len,
            "POST",
            "content-type: application/json\r\ncontent-length: 100000\r\n",
        );
        request.extend_from_slice(&body);
        let answer = crate::support::http::raw(gw.data_addr, &request).await;
        assert_eq!(status(&answer), want, "head of {len} bytes and a body");
    }
    // A piece at a time.
    let head = head_of(cap + 1, "GET", "");
    let mut conn = TcpStream::connect(gw.data_addr).await.unwrap();
    for piece in head.chunks(1000) {
        if conn.write_all(piece).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = read_some(&mut conn, 12, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), "HTTP/1.1 431", "head sent in pieces");
}

/// perf19b: the TLS handshake's ALPN picks HTTP/1.1 or HTTP/2; a client that offers none
/// (Python's `http.client`, `openssl s_client`) is served by what its first bytes are, as on
/// plaintext: an HTTP/1.1 request, and HTTP/2 with prior knowledge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_alpn_serves_http1_and_http2_by_the_first_bytes() {
    let tls = crate::support::tls::TlsFiles::generate();
    let listen = tls.listen_section();
    let (_es, gw) = setup_with(&listen).await;
    let secret = gw.tenant_token("a").await;
    let connector = crate::support::tls::client_connector(&tls.ca_cert, b"");
    let open = || async {
        let tcp = TcpStream::connect(gw.data_addr).await.expect("connects");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let s = connector.connect(name, tcp).await.expect("TLS handshake");
        assert_eq!(s.get_ref().1.alpn_protocol(), None);
        s
    };
    let mut h1 = open().await;
    let request = format!(
        "GET /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\nconnection: close\r\n\r\n"
    );
    h1.write_all(request.as_bytes()).await.expect("sends");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), h1.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:.200}");
    let (mut h2, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Full<Bytes>>(hyper_util::rt::TokioIo::new(open().await))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let r = h2.send_request(get(&gw, &secret)).await.expect("answers");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2);
    conn.abort();
}

/// attack20b (R20-FD-02): a pass-through token's body is relayed as it arrives, so a chunked
/// framing hyper refuses mid-body (a bare `\n` line end, a quoted chunk extension holding a
/// line end, a size that is no hex number), or a client that hangs up mid-body, fails the
/// exchange with the backend after it began. That is the client's fault: a 400, never a 502
/// (it was a 502 with two warnings blaming the backend, at the client's will), and no
/// request the client smuggled in the body reaches the backend. A `read` token's body is
/// read before anything is sent: its 400 was already the client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_body_with_broken_framing_is_the_clients_400_not_a_backend_502() {
    let (es, gw) = setup().await;
    es.script_json("*", "/secret", 200, json!({"hits": {"hits": []}}));
    let read = gw.tenant_token("a").await;
    let all = gw.all_token().await;
    for secret in [&all, &read] {
        let smuggled = format!(
            "GET /secret/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n"
        );
        let head = format!(
            "POST /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let bodies = [
            format!("2\n{{}}\n0\n\n{smuggled}"),
            format!("2;a=\"b\r\n\"\r\n{{}}\r\n0\r\n\r\n{smuggled}"),
            format!("2\r\n{{}}\r\nzz\r\n{smuggled}"),
        ];
        for body in &bodies {
            es.clear();
            let answer = crate::support::http::raw_with_timeout(
                gw.data_addr,
                format!("{head}{body}").as_bytes(),
                Duration::from_secs(3),
            )
            .await;
            let text = String::from_utf8_lossy(&answer);
            assert!(text.starts_with("HTTP/1.1 400"), "{body:?}: {text}");
            assert!(!text.contains("HTTP/1.1 5"), "{body:?}: {text}");
            let reached = es.requests();
            assert!(
                !reached.iter().any(|r| r.path.starts_with("/secret")),
                "{body:?}: {reached:?}"
            );
        }
        // The client hangs up mid-body (its write side closed): the answer still reaches it.
        es.clear();
        let mut conn = TcpStream::connect(gw.data_addr).await.unwrap();
        conn.write_all(format!("{head}10\r\n{{\"query\":").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.shutdown().await.unwrap();
        let answer = read_some(&mut conn, 12, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "a hang-up mid-body: {text}"
        );
    }
}

/// The HTTP/2 preface that is not one (attack20b, session 19's serve path): the sniff
/// (`server::rewind`) decides at the first byte that differs, and hands every byte to the
/// HTTP it chose, so no part of a preface ever becomes part of a request. A preface cut short
/// and followed by an HTTP/1 request is an HTTP/1 request line `PRI * HTTP/2.0`: a 400, the
/// request behind it never read; the whole preface and an HTTP/1 request behind it is an HTTP/2
/// connection error, no answer; `PRI * HTTP/1.1` is an HTTP/1 request of method `PRI`, whose
/// credential is checked like any other (none: 401); TLS with ALPN `http/1.1` and the preface
/// is HTTP/1, where hyper closes at a whole preface, unanswered; a preface that stops short of its last byte is closed at
/// `header_timeout`. The backend sees none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preface_cut_short_or_followed_by_http1_is_never_a_request() {
    let tls = crate::support::tls::TlsFiles::generate();
    let listen = format!("header_timeout = \"1s\"\n{}", tls.listen_section());
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    let gw = Esgate::start_full(&[es.url()], &listen, "", "").await;
    let all = gw.all_token().await;
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let request =
        format!("GET /logs-a/_search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {all}\r\n\r\n");
    let connector = crate::support::tls::client_connector(&tls.ca_cert, b"");
    let exchange = |bytes: Vec<u8>, alpn: &'static [u8]| {
        let connector = if alpn.is_empty() {
            connector.clone()
        } else {
            crate::support::tls::client_connector(&tls.ca_cert, alpn)
        };
        let addr = gw.data_addr;
        async move {
            let tcp = TcpStream::connect(addr).await.expect("connects");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let mut s = connector.connect(name, tcp).await.expect("TLS handshake");
            let _ = s.write_all(&bytes).await;
            let _ = s.flush().await;
            let mut answer = Vec::new();
            let started = std::time::Instant::now();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
            (
                String::from_utf8_lossy(&answer).into_owned(),
                started.elapsed(),
            )
        }
    };
    let cases: Vec<(&str, Vec<u8>, &'static [u8], &str)> = vec![
        (
            "a preface cut short, then HTTP/1",
            [&preface[..18], request.as_bytes()].concat(),
            b"",
            "HTTP/1.1 400",
        ),
        (
            "the preface, then HTTP/1",
            [preface, request.as_bytes()].concat(),
            b"",
            "",
        ),
        (
            "PRI * HTTP/1.1",
            b"PRI * HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            b"",
            "HTTP/1.1 401",
        ),
        (
            "ALPN http/1.1, then the preface and HTTP/1",
            [preface, request.as_bytes()].concat(),
            b"http/1.1",
            "",
        ),
    ];
    for (what, bytes, alpn, want) in cases {
        es.clear();
        let (answer, _) = exchange(bytes, alpn).await;
        if want.is_empty() {
            assert!(!answer.contains("HTTP/1"), "{what}: {answer:.200}");
        } else {
            assert!(answer.starts_with(want), "{what}: {answer:.200}");
        }
        let reached: Vec<String> = es
            .requests()
            .iter()
            .filter(|r| !r.path.starts_with("/_resolve"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(reached.is_empty(), "{what}: {reached:?}");
    }
    // All of the preface but its last byte: closed at header_timeout (1 s), unanswered.
    let (answer, took) = exchange(preface[..23].to_vec(), b"").await;
    assert!(answer.is_empty(), "{answer:.200}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

/// An HTTP/2 header block longer than a frame (16 KiB) comes as HEADERS and CONTINUATION
/// frames, and a header field may straddle them (attack20b): the credential is read from the
/// whole block, so an `Authorization` split across the frames authenticates as it would whole,
/// a second one in the CONTINUATION frame makes the request's two (malformed: 401, the first
/// one alone never counts), and a `read` token's request reaches the backend rebuilt, without
/// the padding or a second credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_credential_split_across_continuation_frames_is_read_whole() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    es.script_json(
        "*",
        "/logs-a/_search",
        200,
        json!({"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}),
    );
    let gw = Esgate::start_full(&[es.url()], "max_header_bytes = 65536", "", "").await;
    let read = gw.tenant_token("a").await;
    let (relay, frames) = frame_counting_relay(gw.data_addr).await;
    let stream = TcpStream::connect(relay).await.expect("connects");
    let (mut h2, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Full<Bytes>>(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    // A padding field that ends near the first frame's end (16,384 bytes), so that the next
    // field, the credential, crosses into the CONTINUATION frame: `|` has an 11-bit Huffman
    // code, so the padding goes as it is, a byte a character; the sizes around the boundary
    // cover the other fields' encodings (and the connection's HPACK table after a request).
    let build = |pad: usize, credentials: &[&str]| {
        let mut b = http::Request::get(gw.url("/logs-a/_search")).header("x-pad", "|".repeat(pad));
        for c in credentials {
            b = b.header("authorization", *c);
        }
        b.body(http_body_util::Full::new(Bytes::new()))
            .expect("request")
    };
    let bearer = format!("Bearer {read}");
    for pad in (16_250..16_384).step_by(8) {
        es.clear();
        let r = h2
            .send_request(build(pad, &[&bearer]))
            .await
            .expect("answers");
        assert_eq!(r.status(), 200, "padding {pad}");
        let sent = es.requests_to("POST", "/logs-a/_search");
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].header("x-pad").is_none());
        assert_ne!(sent[0].header("authorization"), Some(bearer.as_str()));
    }
    // The blocks did come in two frames (CONTINUATION is frame type 9).
    assert!(
        frames.lock().unwrap().contains(&9),
        "no CONTINUATION frame was sent"
    );
    // Two credentials, the second after the frame boundary: malformed, whichever is valid.
    for pair in [
        [bearer.as_str(), "Bearer esg_not-a-secret"],
        ["Bearer esg_not-a-secret", bearer.as_str()],
        [bearer.as_str(), bearer.as_str()],
    ] {
        es.clear();
        let r = h2
            .send_request(build(16_340, &pair))
            .await
            .expect("answers");
        assert_eq!(r.status(), 401, "{pair:?}");
        assert!(es.requests_to("POST", "/logs-a/_search").is_empty());
    }
    conn.abort();
}

/// A TCP relay to `to` for one HTTP/2 connection that notes the type of every frame the client
/// sends (after its preface).
async fn frame_counting_relay(
    to: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let types = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = std::sync::Arc::clone(&types);
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(to).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let mut preface = [0u8; 24];
        if client_read.read_exact(&mut preface).await.is_err() {
            return;
        }
        let _ = server_write.write_all(&preface).await;
        loop {
            let mut head = [0u8; 9];
            if client_read.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            if client_read.read_exact(&mut payload).await.is_err() {
                return;
            }
            noted.lock().unwrap().push(head[3]);
            if server_write.write_all(&head).await.is_err()
                || server_write.write_all(&payload).await.is_err()
            {
                return;
            }
        }
    });
    (addr, types)
}
