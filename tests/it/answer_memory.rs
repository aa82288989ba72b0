//! Answers esgate reads whole to rewrite them (sealed scroll, point-in-time and async search
//! ids, ordinal sort values, transforms, response shaping) are charged to the shared body
//! budget (`listen.max_buffered_bytes`) for as long as esgate holds them: while they are
//! sealed (each copy claimed before it is made) and until the rewritten answer is written to
//! the client. Session 12: a sealed page (up to 256 MiB) was held in memory nobody counted once
//! its seal was made, for as long as the client took to read it, so clients that read slowly
//! or not at all could make esgate hold any number of them; and a client that reads nothing
//! of its answer for the idle timeout is closed (`server::connection`). Real backends (osmem,
//! noida).

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::backend::Backend;
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send};

/// Large tenant-a documents in `logs-big`: a scroll page of all of them is about
/// `BIG_DOCS` MiB, far more than loopback's socket buffers hold.
const BIG_DOCS: usize = 24;

async fn seed_big(backend: &Backend) {
    let base = backend.url();
    let index = json!({"settings": {"number_of_shards": 1}, "mappings": fixture::mappings()});
    let r = send("PUT", &format!("{base}/logs-big"), &[], index.to_string())
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.text());
    let filler = "x".repeat(1 << 20);
    let mut bulk = String::new();
    for i in 0..BIG_DOCS {
        bulk.push_str(
            &json!({"index": {"_index": "logs-big", "_id": format!("big{i}")}}).to_string(),
        );
        bulk.push('\n');
        bulk.push_str(&json!({"tenant": "a", "n": i, "message": filler}).to_string());
        bulk.push('\n');
    }
    // 24 MiB into the backend: longer than a request's usual 30 s on a loaded machine (two
    // seeds at once timed out at load 20).
    let r = support::http::send_with_timeout(
        "POST",
        &format!("{base}/_bulk?refresh=true"),
        &[("content-type", "application/x-ndjson")],
        bulk,
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(r.json()["errors"], json!(false));
}

fn tenant_a() -> Value {
    json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": ["logs-*"]})
}

const PAGE: &str = "/logs-big/_search?scroll=1m&size=100";

/// Sends the scroll search on a raw connection and reads only the answer's head; returns the
/// connection and the body's length.
async fn unread_page(gw: &Esgate, auth: &str) -> (TcpStream, usize) {
    let mut conn = TcpStream::connect(gw.data_addr).await.unwrap();
    let request = format!("GET {PAGE} HTTP/1.1\r\nhost: esgate\r\nauthorization: {auth}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            conn.read(&mut byte).await.unwrap(),
            1,
            "the head ended early"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a sealed page has its length");
    (conn, length)
}

/// The page's status and body (`Null` when it is not JSON).
async fn page_status(gw: &Esgate, auth: &str) -> (u16, Value) {
    let r = send("GET", &gw.url(PAGE), &[("authorization", auth)], Vec::new())
        .await
        .unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), v)
}

/// The start of a body for a failed assertion (a page is megabytes).
fn start(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

async fn a_sealed_page_is_charged_until_it_is_sent(backend: &Backend) {
    seed_big(backend).await;
    // Room for one page and its sealing copy, not for two pages.
    let gw = Esgate::start_full(
        &[backend.url()],
        &format!(
            "max_body_bytes = 65536\nmax_buffered_bytes = {}\nbuffered_wait = \"2s\"",
            (BIG_DOCS * 5 / 2) << 20
        ),
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(tenant_a()).await;
    let auth = bearer(&secret);
    // A page alone is served (the control).
    let (status, page) = page_status(&gw, &auth).await;
    assert_eq!(status, 200, "{}", start(&page));
    assert_eq!(page["hits"]["hits"].as_array().unwrap().len(), BIG_DOCS);
    // A client that does not read its page holds its share: a second page is refused while
    // the first is unread.
    let (mut slow, length) = unread_page(&gw, &auth).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (The second page waits for room for its sealing copy for `listen.buffered_wait`, 2 s
    // here, before it is refused: well within 20 s, esgate's default 30 s would not be.)
    let r = support::http::send_with_timeout(
        "GET",
        &gw.url(PAGE),
        &[("authorization", &auth)],
        Vec::new(),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let refused = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert_eq!(r.status.as_u16(), 429, "{}", start(&refused));
    // Read to its end, the first page is whole and sealed; its share is back.
    let mut body = vec![0u8; length];
    slow.read_exact(&mut body).await.unwrap();
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert!(page["_scroll_id"].as_str().unwrap().starts_with("esgc1_"));
    assert_eq!(page["hits"]["hits"].as_array().unwrap().len(), BIG_DOCS);
    drop(slow);
    let mut served = false;
    for _ in 0..50 {
        let (status, page) = page_status(&gw, &auth).await;
        if status == 200 {
            assert!(page["_scroll_id"].as_str().unwrap().starts_with("esgc1_"));
            served = true;
            break;
        }
        assert_eq!(status, 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the read page's share was not returned");
    // A client that goes away unread returns its share too.
    let (slow, _) = unread_page(&gw, &auth).await;
    drop(slow);
    let mut served = false;
    for _ in 0..50 {
        if page_status(&gw, &auth).await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "an abandoned page's share was not returned");
    // A client that keeps its connection open and reads nothing is closed after the idle
    // timeout (its share is returned), while one that waits on the backend is not cut.
    let quick = Esgate::start_full(
        &[backend.url()],
        &format!(
            "max_body_bytes = 65536\nmax_buffered_bytes = {}\n\
             idle_timeout = \"1s\"\nheader_timeout = \"1s\"",
            (BIG_DOCS * 5 / 2) << 20
        ),
        "",
        "",
    )
    .await;
    let (_, secret) = quick.token(tenant_a()).await;
    let auth = bearer(&secret);
    let (mut slow, length) = unread_page(&quick, &auth).await;
    let started = std::time::Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(10) {
        if page_status(&quick, &auth).await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "an unread page's connection was not closed");
    // The connection was closed before the page was sent whole.
    let mut body = Vec::new();
    let _ = slow.read_to_end(&mut body).await;
    assert!(body.len() < length, "{} of {length}", body.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_page_is_charged_until_it_is_sent_on_opensearch() {
    a_sealed_page_is_charged_until_it_is_sent(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_page_is_charged_until_it_is_sent_on_elasticsearch_8() {
    a_sealed_page_is_charged_until_it_is_sent(&fixture::seeded_noida()).await;
}

/// Session 12 review: esgate's own `_has_privileges` answer (an entry per name and privilege,
/// megabytes for some hundred of each) keeps its share of the body budget until it is written.
/// Before, the share was returned once the answer's text was made, and the text was held for
/// as long as its client took to read it, counted by nobody.
async fn a_privileges_answer_is_charged_until_it_is_sent(backend: &Backend) {
    const PATH: &str = "/_security/user/_has_privileges";
    // 170 names by 100 privileges of a kilobyte: an answer of about 17 MiB whose building
    // claims about 60 MiB of the 64 MiB budget (an entry's claim is its text three times and
    // half a kilobyte), so one fits, and not beside the text of another.
    let gw = Esgate::start_full(
        &[backend.url()],
        &format!(
            "max_body_bytes = 1048576\nmax_buffered_bytes = {}",
            64 << 20
        ),
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(tenant_a()).await;
    let auth = bearer(&secret);
    let names: Vec<String> = (0..170).map(|i| format!("other-{i}")).collect();
    let privileges: Vec<String> = (0..100)
        .map(|i| format!("p{i:03}{}", "x".repeat(1000)))
        .collect();
    let body = json!({"index": [{"names": names, "privileges": privileges}]}).to_string();
    let ask = || async {
        let r = send(
            "POST",
            &gw.url(PATH),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.clone(),
        )
        .await
        .unwrap();
        (
            r.status.as_u16(),
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    };
    // Alone, it is served (the control).
    let (status, answer) = ask().await;
    assert_eq!(status, 200, "{}", start(&answer));
    assert_eq!(answer["index"].as_object().unwrap().len(), names.len());
    // A client that reads nothing of it holds its share: another is refused meanwhile.
    let mut slow = TcpStream::connect(gw.data_addr).await.unwrap();
    let request = format!(
        "POST {PATH} HTTP/1.1\r\nhost: esgate\r\nauthorization: {auth}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            slow.read(&mut byte).await.unwrap(),
            1,
            "the head ended early"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the answer has its length");
    assert!(length > 16 << 20, "{length}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, refused) = ask().await;
    assert_eq!(status, 429, "{}", start(&refused));
    // Read to its end, it is whole; its share is back.
    let mut text = vec![0u8; length];
    slow.read_exact(&mut text).await.unwrap();
    let answer: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(answer["index"].as_object().unwrap().len(), names.len());
    drop(slow);
    let mut served = false;
    for _ in 0..50 {
        if ask().await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the read answer's share was not returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileges_answer_is_charged_until_it_is_sent_on_opensearch() {
    a_privileges_answer_is_charged_until_it_is_sent(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileges_answer_is_charged_until_it_is_sent_on_elasticsearch_8() {
    a_privileges_answer_is_charged_until_it_is_sent(&fixture::seeded_noida()).await;
}

/// Session 12 review: the unread rule is kept per answer (per HTTP/2 stream). A client that
/// resets a stream whose answer waited to be read (a browser or Grafana cancelling a query)
/// while another request of the connection is in flight (here a search whose body is still
/// being sent) keeps its connection: before, the reset stream's mark stayed behind and the
/// connection was closed after the idle timeout, with the other request on it.
async fn a_reset_stream_does_not_cut_its_neighbours(backend: &Backend) {
    use http_body_util::BodyExt;
    type Sent = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;
    seed_big(backend).await;
    let gw = Esgate::start_full(
        &[backend.url()],
        // A request body may take the header timeout to arrive; the watchdog first looks at
        // the connection then, and every idle timeout after.
        "idle_timeout = \"1s\"\nheader_timeout = \"3s\"",
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(tenant_a()).await;
    let auth = bearer(&secret);
    let stream = TcpStream::connect(gw.data_addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(16 * 1024)
            .handshake::<_, Sent>(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    // A page is asked for, its first frame read, and the stream reset.
    let page = http::Request::get(gw.url(PAGE))
        .header("authorization", &auth)
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let mut page = sender
        .send_request(page)
        .await
        .expect("the page")
        .into_body();
    assert!(page.frame().await.unwrap().unwrap().is_data());
    drop(page);
    // A search whose body takes more than two idle timeouts to arrive (and is in flight when
    // the watchdog looks) is answered.
    let pieces = [
        "{\"query\":",
        "{\"match\":",
        "{\"n\":",
        "3}}",
        ",\"size\":0}",
    ];
    let slowly = futures_util::stream::unfold(0, move |i| async move {
        let piece = pieces.get(i)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let frame = http_body::Frame::data(bytes::Bytes::from_static(piece.as_bytes()));
        Some((Ok(frame), i + 1))
    });
    let search = http::Request::post(gw.url("/logs-big/_search"))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(http_body_util::StreamBody::new(slowly).boxed())
        .unwrap();
    let answer = sender.send_request(search).await.expect("the search");
    assert_eq!(answer.status(), 200);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["hits"]["total"]["value"], json!(1), "{v}");
    assert!(!conn.is_finished(), "the connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_stream_does_not_cut_its_neighbours_on_opensearch() {
    a_reset_stream_does_not_cut_its_neighbours(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_stream_does_not_cut_its_neighbours_on_elasticsearch_8() {
    a_reset_stream_does_not_cut_its_neighbours(&fixture::seeded_noida()).await;
}

/// Session 12 review: an HTTP/2 stream whose client grants it no window (its answer unread)
/// is cut after the idle timeout although another stream of the connection is read: before,
/// every other stream's answer cleared the connection's one mark, so a client asking for
/// small answers now and then kept a page (and its share of the budget) held forever.
async fn a_stalled_stream_is_cut_beside_busy_ones(backend: &Backend) {
    use http_body_util::BodyExt;
    seed_big(backend).await;
    let gw = Esgate::start_full(
        &[backend.url()],
        "idle_timeout = \"1s\"\nheader_timeout = \"1s\"",
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(tenant_a()).await;
    let auth = bearer(&secret);
    let stream = TcpStream::connect(gw.data_addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(16 * 1024)
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(
                stream,
            ))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    // A page is asked for and never read (its stream keeps its 16 KiB window).
    let page = http::Request::get(gw.url(PAGE))
        .header("authorization", &auth)
        .body(http_body_util::Empty::new())
        .unwrap();
    let _page = sender.send_request(page).await.expect("the page");
    // Small searches are asked and read every 200 ms for up to 8 s.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(8) && !conn.is_finished() {
        let search = http::Request::get(gw.url("/logs-big/_search?size=0"))
            .header("authorization", &auth)
            .body(http_body_util::Empty::new())
            .unwrap();
        match sender.send_request(search).await {
            Ok(answer) => {
                let _ = answer.into_body().collect().await;
            }
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(2), conn).await;
    assert!(
        ended.is_ok(),
        "the stalled stream's connection was not closed"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_cut_beside_busy_ones_on_opensearch() {
    a_stalled_stream_is_cut_beside_busy_ones(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_cut_beside_busy_ones_on_elasticsearch_8() {
    a_stalled_stream_is_cut_beside_busy_ones(&fixture::seeded_noida()).await;
}

/// The `n` of each hit of a page.
fn numbers(page: &Value) -> Vec<u64> {
    page["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_source"]["n"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// Opens a scroll of `logs-big` in pages of 12 sorted on `n`; its first page, checked.
async fn first_of_two_pages(gw: &Esgate, auth: &str) -> Value {
    let open = send(
        "GET",
        &gw.url("/logs-big/_search?scroll=1m&size=12&sort=n"),
        &[("authorization", auth)],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(open.status.as_u16(), 200);
    let first = open.json();
    assert_eq!(numbers(&first), (0..12).collect::<Vec<_>>());
    first
}

/// The scroll's second page through `path` (`next` its body): served, sealed, the next
/// twelve documents.
async fn next_page(gw: &Esgate, auth: &str, path: &str, next: String) {
    let second = send(
        "POST",
        &gw.url(path),
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        next,
    )
    .await
    .unwrap();
    assert_eq!(second.status.as_u16(), 200, "{}", second.text());
    let page = second.json();
    assert!(page["_scroll_id"].as_str().unwrap().starts_with("esgc1_"));
    assert_eq!(numbers(&page), (12..24).collect::<Vec<_>>());
}

/// A scroll of `logs-big` opened (its first page read) through an esgate with room for one
/// 12 MiB page and its sealing copy, not for two pages and a copy, whose answers wait `wait`
/// for room (`listen.buffered_wait`); another client's 12 MiB page sealed and held unread (its
/// connection, past the head). Returns esgate, the token's `Authorization`, the body asking
/// for the scroll's second page, and that connection.
async fn second_page_beside_a_held_one(
    backend: &Backend,
    wait: &str,
) -> (Esgate, String, String, TcpStream) {
    seed_big(backend).await;
    let gw = Esgate::start_full(
        &[backend.url()],
        &format!(
            "max_body_bytes = 65536\nmax_buffered_bytes = {}\nbuffered_wait = {wait:?}",
            30 << 20
        ),
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(tenant_a()).await;
    let auth = bearer(&secret);
    let first = first_of_two_pages(&gw, &auth).await;
    let next = json!({"scroll": "1m", "scroll_id": first["_scroll_id"]}).to_string();
    let mut held = TcpStream::connect(gw.data_addr).await.unwrap();
    let request = format!(
        "GET /logs-big/_search?scroll=1m&size=12 HTTP/1.1\r\nhost: esgate\r\n\
         authorization: {auth}\r\nconnection: close\r\n\r\n"
    );
    held.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    held.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    (gw, auth, next, held)
}

/// Session 12 review: room for the copies sealing makes is waited for as the answer's was.
/// Refused at once, a scroll page was lost: the backend had already moved the scroll past it,
/// and the client's retry (a 429 says "retry later") got the next page, here an empty one, so
/// an export ended with half its documents. Here another client reads its page a second late.
async fn a_scroll_page_waits_for_room_to_be_sealed(backend: &Backend) {
    let (gw, auth, next, mut late) = second_page_beside_a_held_one(backend, "30s").await;
    // The other client's page, read a second late.
    let reader = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut rest = Vec::new();
        late.read_to_end(&mut rest).await.unwrap();
        rest.len()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    next_page(&gw, &auth, "/_search/scroll", next).await;
    assert!(reader.await.unwrap() > 12 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scroll_page_waits_for_room_to_be_sealed_on_opensearch() {
    a_scroll_page_waits_for_room_to_be_sealed(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scroll_page_waits_for_room_to_be_sealed_on_elasticsearch_8() {
    a_scroll_page_waits_for_room_to_be_sealed(&fixture::seeded_noida()).await;
}

/// Session 13's design, built in session 16: a scroll's next page the body budget had no room
/// for was refused only once the backend had answered it, so the backend had moved the scroll
/// past it and the client's retry got the page after (here an empty one: an export ended with
/// half its documents). The sealed scroll id now carries its page's length, and esgate makes
/// room for about that much before it asks for the next page: refused (429) before the scroll
/// moves, the retry gets the same page. Another client holds a 12 MiB page unread meanwhile.
async fn a_scroll_page_without_room_is_refused_before_the_scroll_moves(backend: &Backend) {
    let (gw, auth, next, mut held) = second_page_beside_a_held_one(backend, "10s").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Refused after `listen.buffered_wait` (10 s here), before the backend was asked.
    let waiting = {
        let (url, auth, next) = (gw.url("/_search/scroll"), auth.clone(), next.clone());
        tokio::spawn(async move {
            support::http::send_with_timeout(
                "POST",
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                next,
                Duration::from_secs(60),
            )
            .await
            .unwrap()
        })
    };
    // Review 16d: while the page's room is waited for, a search body still gets the room
    // that is free (the room was queued for: it took what was free and every release, and
    // every request with a body was a 429 for 30 s).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let search = send(
        "POST",
        &gw.url("/logs-big/_search"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({"size": 0, "query": {"match_all": {}}}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(search.status.as_u16(), 200, "{}", search.text());
    assert!(!waiting.is_finished());
    let r = waiting.await.unwrap();
    assert_eq!(
        r.status.as_u16(),
        429,
        "{}",
        r.text().chars().take(300).collect::<String>()
    );
    // The other page read, the retry gets the second page, not the third.
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).await.unwrap();
    assert!(rest.len() > 12 << 20);
    next_page(&gw, &auth, "/_search/scroll", next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scroll_page_without_room_is_refused_before_the_scroll_moves_on_opensearch() {
    a_scroll_page_without_room_is_refused_before_the_scroll_moves(&fixture::seeded_osmem()).await;
}

/// Session 12 review: a sealed answer esgate has no room to reshape now (`filter_path`,
/// `pretty`) is sent as it is, not refused: refused, a scroll page was lost (the backend had
/// moved the scroll past it). Here a pretty-printed page of 12 MiB needs its tree and its
/// text beside it while another client holds an unread 24 MiB page.
async fn a_scroll_page_without_room_to_reshape_is_sent_as_it_is(backend: &Backend) {
    seed_big(backend).await;
    // Room for the unread page and the next one with its sealing copy, not with its tree and
    // pretty text too.
    let gw = Esgate::start_full(
        &[backend.url()],
        &format!("max_body_bytes = 65536\nmax_buffered_bytes = {}", 50 << 20),
        "",
        "",
    )
    .await;
    let (_, secret) = gw.token(tenant_a()).await;
    let auth = bearer(&secret);
    let first = first_of_two_pages(&gw, &auth).await;
    let (_unread, _) = unread_page(&gw, &auth).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let next = json!({"scroll": "1m", "scroll_id": first["_scroll_id"]}).to_string();
    next_page(&gw, &auth, "/_search/scroll?pretty", next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scroll_page_without_room_to_reshape_is_sent_as_it_is_on_opensearch() {
    a_scroll_page_without_room_to_reshape_is_sent_as_it_is(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scroll_page_without_room_to_reshape_is_sent_as_it_is_on_elasticsearch_8() {
    a_scroll_page_without_room_to_reshape_is_sent_as_it_is(&fixture::seeded_noida()).await;
}
