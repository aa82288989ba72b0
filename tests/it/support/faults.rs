//! In-process fault-injection backends, each on 127.0.0.1:0: `hang` (accepts, reads, never
//! answers), `reset` (resets every connection once the request arrives), `huge` (answers every
//! request with a 200 whose body of N bytes is generated on the fly, for bounded-memory
//! streaming tests), `stall` (headers and the start of a body, then nothing), `drip` (a body
//! that never ends, one byte at a time) and `answer` (a fixed status, content type and body,
//! such as a proxy's HTML 502 page). `stall`, `drip` and `answer` answer `_resolve/index`
//! lookups properly (every name resolves to itself, an open index), so a `read` token's request
//! gets as far as its real backend request. `ConnectionProbe` is a raw HTTP/1.1 backend that
//! numbers its connections and can drop them at the byte level (the connection-pool tests,
//! issue #10). These are the only fake servers allowed besides the recording fake ES.
//!
//! Invariant: each server runs on its own thread and runtime, independent of the test's runtime
//! flavour, and stops (closing every connection) when its handle is dropped.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::local_server::{LocalServer, ServerThread};

/// Size of each generated chunk of the `huge` body.
const CHUNK: usize = 64 * 1024;

/// The beginning of the `drip` fault's answer: a search answer's head up to a hit's text.
const DRIP_HEAD: &[u8] = br#"{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"hits":[{"_source":{"pad":""#;

/// A running fault server; dropping it stops the server.
pub struct FaultServer {
    url: String,
    accepted: Arc<AtomicU64>,
    body_bytes_sent: Arc<AtomicU64>,
    _server: LocalServer,
}

#[derive(Clone)]
enum Fault {
    Hang,
    Reset,
    Huge {
        len: u64,
        chunked: bool,
    },
    Stall {
        sent: &'static [u8],
        len: u64,
        resolve_too: bool,
    },
    Drip {
        every: std::time::Duration,
    },
    Answer {
        status: u16,
        content_type: &'static str,
        body: Bytes,
    },
    HugeAnswer {
        len: u64,
    },
    Raw {
        answer: &'static [u8],
        close: bool,
    },
}

// === impl FaultServer ===

impl FaultServer {
    /// Accepts connections and reads requests but never answers.
    pub fn hang() -> FaultServer {
        start(Fault::Hang)
    }

    /// Resets each connection (TCP RST) as soon as request bytes arrive.
    pub fn reset() -> FaultServer {
        start(Fault::Reset)
    }

    /// Answers every request with `200`, `content-type: application/json` and a JSON body of
    /// exactly `len` bytes (`{"pad":"xxx…"}`, or plain `x`s below 10 bytes), produced in 64 KiB
    /// chunks as the client reads, so memory stays flat on both sides unless a reader buffers.
    pub fn huge(len: u64) -> FaultServer {
        start(Fault::Huge {
            len,
            chunked: false,
        })
    }

    /// Like `huge`, but without `content-length`: the body goes out with chunked transfer
    /// encoding, so a reader cannot size a buffer from the headers.
    pub fn huge_chunked(len: u64) -> FaultServer {
        start(Fault::Huge { len, chunked: true })
    }

    /// Answers `200` announcing `len` bytes of JSON, sends `sent`, then nothing more (the
    /// connection stays open).
    pub fn stall(sent: &'static [u8], len: u64) -> FaultServer {
        start(Fault::Stall {
            sent,
            len,
            resolve_too: false,
        })
    }

    /// Like `stall`, for `_resolve/index` lookups too (and `GET /`).
    pub fn stall_everything(sent: &'static [u8], len: u64) -> FaultServer {
        start(Fault::Stall {
            sent,
            len,
            resolve_too: true,
        })
    }

    /// Answers `200` with a chunked JSON body that sends one byte every `every` and never ends.
    pub fn drip(every: std::time::Duration) -> FaultServer {
        start(Fault::Drip { every })
    }

    /// Answers every request (but `_resolve/index` lookups) with `status`, `content_type` and
    /// `body`.
    pub fn answer(status: u16, content_type: &'static str, body: &'static str) -> FaultServer {
        start(Fault::Answer {
            status,
            content_type,
            body: Bytes::from_static(body.as_bytes()),
        })
    }

    /// Like `huge_chunked` (no `content-length`), but answering `_resolve/index` lookups
    /// properly, so a `read` token's scroll gets its huge answer.
    pub fn huge_answer(len: u64) -> FaultServer {
        start(Fault::HugeAnswer { len })
    }

    /// Answers every request (but `_resolve/index` lookups, answered properly) with `answer`,
    /// raw bytes written as they are (a malformed or unfinished answer), then closes the
    /// connection when `close`, else keeps it open, reading and discarding, until the client
    /// closes it.
    pub fn raw(answer: &'static [u8], close: bool) -> FaultServer {
        start(Fault::Raw { answer, close })
    }

    /// Base URL without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Body bytes the `huge` server has handed to the connection so far (all responses). A
    /// client that stops reading makes this stall well below the body length.
    pub fn body_bytes_sent(&self) -> u64 {
        self.body_bytes_sent.load(Ordering::SeqCst)
    }
}

fn start(fault: Fault) -> FaultServer {
    let accepted = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let server = {
        let (accepted, sent) = (accepted.clone(), sent.clone());
        LocalServer::start(move |listener| accept_loop(listener, fault, accepted, sent))
    };
    FaultServer {
        url: server.url(),
        accepted,
        body_bytes_sent: sent,
        _server: server,
    }
}

async fn accept_loop(
    listener: TcpListener,
    fault: Fault,
    accepted: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let sent = sent.clone();
        let fault = fault.clone();
        tokio::spawn(async move {
            match fault {
                Fault::Hang => hang(stream).await,
                Fault::Reset => reset(stream).await,
                Fault::Huge { len, chunked } => huge(stream, len, chunked, sent).await,
                Fault::Raw { answer, close } => raw(stream, answer, close).await,
                other => scripted(stream, other).await,
            }
        });
    }
}

async fn hang(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    // Keep reading so the client never blocks on a full send buffer; never write anything.
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            // The client half-closed; hold the socket open anyway until shutdown.
            std::future::pending::<()>().await;
        }
    }
}

async fn reset(stream: TcpStream) {
    // Closing a socket whose receive buffer still holds unread data makes Linux send RST instead
    // of FIN, so waiting until the request bytes arrive and then dropping the socket unread
    // resets the connection.
    let mut probe = [0u8; 1];
    let _ = stream.peek(&mut probe).await;
    drop(stream);
}

async fn huge(stream: TcpStream, len: u64, chunked: bool, sent: Arc<AtomicU64>) {
    let service = service_fn(move |_req| {
        let sent = sent.clone();
        async move {
            let body = StreamBody::new(futures_util::stream::unfold(0u64, move |offset| {
                let sent = sent.clone();
                async move {
                    if offset >= len {
                        return None;
                    }
                    let n = (len - offset).min(CHUNK as u64);
                    let chunk = huge_chunk(len, offset, n);
                    sent.fetch_add(n, Ordering::SeqCst);
                    Some((Ok::<_, Infallible>(Frame::data(chunk)), offset + n))
                }
            }));
            let mut resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("x-elastic-product", "Elasticsearch");
            if !chunked {
                resp = resp.header("content-length", len.to_string());
            }
            let resp = resp.body(body).expect("a static response is always valid");
            Ok::<_, Infallible>(resp)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

type Boxed = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// `stall`, `drip` and `answer`: `_resolve/index/<names>` answered properly, the rest faulty.
async fn scripted(stream: TcpStream, fault: Fault) {
    use http_body_util::BodyExt;
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let fault = fault.clone();
        async move {
            let path = req.uri().path().to_owned();
            let json = |status: u16, body: Boxed, len: Option<u64>| {
                let mut r = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("x-elastic-product", "Elasticsearch");
                if let Some(len) = len {
                    r = r.header("content-length", len.to_string());
                }
                r.body(body).expect("a static response is always valid")
            };
            let stall_resolve = matches!(
                fault,
                Fault::Stall {
                    resolve_too: true,
                    ..
                }
            );
            if let Some(names) = path
                .strip_prefix("/_resolve/index/")
                .filter(|_| !stall_resolve)
            {
                let indices: Vec<serde_json::Value> = names
                    .split(',')
                    .filter(|n| !n.contains('*'))
                    .map(|n| serde_json::json!({"name": n, "attributes": ["open"]}))
                    .collect();
                let body =
                    serde_json::json!({"indices": indices, "aliases": [], "data_streams": []});
                let bytes = Bytes::from(body.to_string());
                let len = bytes.len() as u64;
                return Ok::<_, Infallible>(json(
                    200,
                    http_body_util::Full::new(bytes).boxed(),
                    Some(len),
                ));
            }
            let response = match fault {
                Fault::Stall { sent, len, .. } => {
                    let body = StreamBody::new(futures_util::stream::unfold(
                        true,
                        move |first| async move {
                            if first {
                                Some((Ok(Frame::data(Bytes::from_static(sent))), false))
                            } else {
                                std::future::pending::<()>().await;
                                None
                            }
                        },
                    ));
                    json(200, body.boxed(), Some(len))
                }
                Fault::Drip { every } => {
                    let body =
                        StreamBody::new(futures_util::stream::unfold(0u64, move |n| async move {
                            if n > 0 {
                                tokio::time::sleep(every).await;
                            }
                            // A search answer's head (its `_shards` header reports no
                            // failure, so esgate may stream it), then one hit's text forever.
                            let byte: &'static [u8] = if n == 0 { DRIP_HEAD } else { b"x" };
                            Some((Ok(Frame::data(Bytes::from_static(byte))), n + 1))
                        }));
                    json(200, body.boxed(), None)
                }
                Fault::HugeAnswer { len } => {
                    let body = StreamBody::new(futures_util::stream::unfold(
                        0u64,
                        move |offset| async move {
                            if offset >= len {
                                return None;
                            }
                            let n = (len - offset).min(CHUNK as u64);
                            let chunk = huge_chunk(len, offset, n);
                            Some((Ok(Frame::data(chunk)), offset + n))
                        },
                    ));
                    json(200, body.boxed(), None)
                }
                Fault::Answer {
                    status,
                    content_type,
                    body,
                } => http::Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(http_body_util::Full::new(body).boxed())
                    .expect("a static response is always valid"),
                _ => unreachable!("scripted faults only"),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// `raw`: each request's head and body read, then `answer` (a `_resolve/index/<names>` lookup
/// its proper answer, each name an open index, on a connection that stays usable).
async fn raw(mut stream: TcpStream, answer: &'static [u8], close: bool) {
    use tokio::io::AsyncWriteExt;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        buf.drain(..end + len);
        let path = head.split_whitespace().nth(1).unwrap_or_default();
        if let Some(names) = path.strip_prefix("/_resolve/index/") {
            let names = names.split('?').next().unwrap_or_default();
            let indices: Vec<serde_json::Value> = names
                .split(',')
                .filter(|n| !n.contains('*'))
                .map(|n| serde_json::json!({"name": n, "attributes": ["open"]}))
                .collect();
            let body = serde_json::json!({"indices": indices, "aliases": [], "data_streams": []})
                .to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 x-elastic-product: Elasticsearch\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        if stream.write_all(answer).await.is_err() || close {
            return;
        }
        // Held open: whatever else comes is read and dropped, never answered.
        let mut chunk = [0u8; 4096];
        while let Ok(k) = stream.read(&mut chunk).await {
            if k == 0 {
                std::future::pending::<()>().await;
            }
        }
        return;
    }
}

/// A node whose connects are never answered: a listener with a listen queue of one that a
/// connection of its own fills, and that never accepts, so the kernel drops every further SYN
/// (Linux drops a SYN to a full accept queue; the client sends it again after 1 s, 3 s, ...)
/// and a connect hangs until its client gives up. With `opens`, it accepts once that has
/// passed (a connect then completes at the client's next SYN) and never writes a byte to the
/// connections it accepts (a TLS handshake stalls). Runs on a thread and runtime of its own;
/// stops when dropped.
pub struct Unanswered {
    addr: std::net::SocketAddr,
    _thread: ServerThread,
}

impl Unanswered {
    pub fn start(opens: Option<std::time::Duration>) -> Unanswered {
        Unanswered::run(None, opens)
    }

    /// A node that serves one connection, then becomes too busy to accept: its first
    /// connection is accepted and its first request answered `200 {}` after `hold`, with
    /// `Connection: close`, then closed; from that accept on, its listen queue is full (a
    /// connection of its own) and every later connect hangs as `start(None)`'s.
    pub fn after_one(hold: std::time::Duration) -> Unanswered {
        Unanswered::run(Some(hold), None)
    }

    fn run(first: Option<std::time::Duration>, opens: Option<std::time::Duration>) -> Unanswered {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = ServerThread::spawn(move |stop| async move {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket
                .bind("127.0.0.1:0".parse().expect("an address"))
                .expect("binding 127.0.0.1:0 works in tests");
            let listener = socket.listen(0).expect("listen");
            let addr = listener.local_addr().expect("an address");
            // Stops at the shutdown, wherever it is (the filler closed with it).
            let node = async {
                if let Some(hold) = first {
                    let _ = addr_tx.send(addr);
                    if let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(answer_once(stream, hold));
                    }
                }
                // The queue's one place, taken.
                let _filler = TcpStream::connect(addr).await.expect("the first connect");
                if first.is_none() {
                    let _ = addr_tx.send(addr);
                }
                if let Some(opens) = opens {
                    tokio::time::sleep(opens).await;
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(hang(stream));
                    }
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = stop => {}
                () = node => {}
            }
        });
        let addr = addr_rx.recv().expect("the listener started");
        Unanswered {
            addr,
            _thread: thread,
        }
    }

    /// Its address, `127.0.0.1:PORT` (`http://` or `https://` before it: a node URL).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

/// `Unanswered::after_one`'s first connection: its first request's head read, then after
/// `hold` a `200 {}` that closes it (the client closes; whatever it sends meanwhile is read, so
/// the close is never a reset).
async fn answer_once(mut stream: TcpStream, hold: std::time::Duration) {
    use tokio::io::AsyncWriteExt;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&chunk[..k]),
        }
    }
    tokio::time::sleep(hold).await;
    let _ = stream
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
              x-elastic-product: Elasticsearch\r\nconnection: close\r\n\
              content-length: 2\r\n\r\n{}",
        )
        .await;
    while let Ok(1..) = stream.read(&mut chunk).await {}
}

/// Bytes `offset..offset + n` of the `huge` body of total length `len`.
fn huge_chunk(len: u64, offset: u64, n: u64) -> Bytes {
    const HEAD: &[u8] = b"{\"pad\":\"";
    const TAIL: &[u8] = b"\"}";
    let frame = (HEAD.len() + TAIL.len()) as u64;
    let mut out = Vec::with_capacity(n as usize);
    for pos in offset..offset + n {
        let byte = if len < frame + 1 {
            b'x'
        } else if pos < HEAD.len() as u64 {
            HEAD[pos as usize]
        } else if pos >= len - TAIL.len() as u64 {
            TAIL[(pos - (len - TAIL.len() as u64)) as usize]
        } else {
            b'x'
        };
        out.push(byte);
    }
    Bytes::from(out)
}

/// A raw HTTP/1.1 backend on TCP (no HTTP library: it can misbehave at the byte level) that
/// numbers its connections and the requests on each, for the connection-pool tests (issue
/// #10). Every answer is `200` JSON naming its connection, the request's number on it, its
/// target, its body length and its `Host`:
/// `{"conn":1,"n":2,"path":"/a?q","body":0,"host":"127.0.0.1:9"}`. The path chooses the
/// behaviour:
/// - `/close-after…`: the socket is closed right after the answer, with no `Connection: close`
///   (a backend dropping a keep-alive connection as the next request may come);
/// - `/conn-close…`: the answer says `Connection: close`, but the socket stays open until the
///   client closes it;
/// - `/slow…`: an answer announcing `SLOW_LEN` bytes, sent 16 KiB every 5 ms;
/// - anything else: a keep-alive answer.
///
/// A path containing `big` adds `"pad"`, a string of `BIG_PAD` bytes, to the answer. A
/// `/late` request is answered after ten seconds, unless the client closes first.
///
/// Invariant: [`ConnectionProbe::closed_by_client`] counts only connections the client closed
/// (end of stream or reset while the probe waited for a request or wrote the slow answer),
/// never ones the probe closed itself.
pub struct ConnectionProbe {
    url: String,
    state: Arc<ProbeState>,
    _server: LocalServer,
}

/// Length of the `/slow` answer.
pub const SLOW_LEN: usize = 8 * 1024 * 1024;

/// Length of the `pad` string in the answer to a path containing `big` (several reads of the
/// backend connection's 64 KiB buffer).
pub const BIG_PAD: usize = 300 * 1024;

#[derive(Default)]
struct ProbeState {
    accepted: AtomicU64,
    /// Connection numbers the client closed.
    closed: std::sync::Mutex<Vec<u64>>,
    /// Connection numbers the probe closed (`/close-after`).
    hung_up: std::sync::Mutex<Vec<u64>>,
}

impl ConnectionProbe {
    pub fn start() -> ConnectionProbe {
        let state = Arc::new(ProbeState::default());
        let server = {
            let state = Arc::clone(&state);
            LocalServer::start(move |listener| async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let conn = state.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        let list = match probe_connection(stream, conn).await {
                            true => &state.closed,
                            false => &state.hung_up,
                        };
                        list.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
                    });
                }
            })
        };
        ConnectionProbe {
            url: server.url(),
            state,
            _server: server,
        }
    }

    /// Base URL without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far (numbered from 1).
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Whether the client closed connection `conn`.
    pub fn closed_by_client(&self, conn: u64) -> bool {
        self.state
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&conn)
    }

    /// Whether the probe closed connection `conn` itself (its socket is closed once this holds).
    pub fn hung_up(&self, conn: u64) -> bool {
        self.state
            .hung_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&conn)
    }
}

/// Serves one connection; true when the client closed it, false when the probe did (the socket
/// is dropped before this returns).
async fn probe_connection(mut stream: TcpStream, conn: u64) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut buf: Vec<u8> = Vec::new();
    let mut n = 0u64;
    loop {
        // The head.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let host = header("host");
        // The body.
        while buf.len() < end + len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        buf.drain(..end + len);
        n += 1;
        if path.starts_with("/late") {
            // No answer for ten seconds, unless the client closes first (a search that takes
            // long; ES cancels it when its HTTP channel closes).
            let mut chunk = [0u8; 64];
            let waited =
                tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
                    .await;
            if matches!(waited, Ok(Ok(0) | Err(_))) {
                return true;
            }
        }
        if path.starts_with("/slow") {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 x-elastic-product: Elasticsearch\r\ncontent-length: {SLOW_LEN}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return true;
            }
            let chunk = vec![b' '; 16 * 1024];
            for _ in 0..SLOW_LEN / chunk.len() {
                if stream.write_all(&chunk).await.is_err() {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            continue;
        }
        let mut body =
            serde_json::json!({"conn": conn, "n": n, "path": path, "body": len, "host": host});
        if path.contains("big") {
            body["pad"] = "x".repeat(BIG_PAD).into();
        }
        let body = body.to_string();
        let close_header = if path.starts_with("/conn-close") {
            "connection: close\r\n"
        } else {
            ""
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             x-elastic-product: Elasticsearch\r\n{close_header}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return true;
        }
        if path.starts_with("/close-after") {
            return false;
        }
    }
}
