//! A tiny HTTP client for tests, built on hyper-util's legacy client (no reqwest): `send` for
//! plain HTTP, `send_https` for HTTPS trusting one CA PEM, `raw` for byte-exact malformed-HTTP
//! tests, header helpers for the credential formats esgate accepts, and `blocking` to run any of
//! them from synchronous code (drops, shared fixtures).
//!
//! Invariant: every call is bounded in time (a hang is reported as `SendError::Timeout`, never a
//! stuck test) and uses a fresh connection, so one test's keep-alive state never leaks into the
//! next request (noida closes idle connections after ~30 s, which a pool would trip over).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long `send` waits for a complete response (headers and body) by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request produced no response.
#[derive(Debug)]
pub enum SendError {
    /// No complete response within the time limit.
    Timeout,
    /// The request could not be built (bad URL, header or method).
    Request(String),
    /// Connect failure, reset, or a malformed response.
    Transport(String),
}

// === impl Reply ===

impl Reply {
    /// The body parsed as JSON; panics with the status and body text when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            ),
        }
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of a header as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

// === impl SendError ===

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Timeout => write!(f, "no response within the time limit"),
            SendError::Request(e) => write!(f, "bad request: {e}"),
            SendError::Transport(e) => write!(f, "transport error: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// `Authorization` value `Basic base64(user:pass)`.
pub fn basic(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// `Authorization` value `Bearer token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Authorization` value `ApiKey base64(id:secret)`, as the official ES clients send it.
pub fn api_key(id: &str, secret: &str) -> String {
    let raw = format!("{id}:{secret}");
    format!(
        "ApiKey {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Sends one request over plain HTTP and collects the whole response.
///
/// `headers` may repeat a name (each pair becomes one header line). A non-empty body without a
/// `content-type` in `headers` is sent as `application/json`; pass an explicit one to test other
/// types. Waits at most `DEFAULT_TIMEOUT`.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, SendError> {
    send_with_timeout(method, url, headers, body, DEFAULT_TIMEOUT).await
}

/// Sends `ndjson` to the backend at `url` as a `_bulk?refresh=true`; panics unless every item
/// was written.
pub async fn bulk(url: &str, ndjson: String) {
    let r = send(
        "POST",
        &format!("{url}/_bulk?refresh=true"),
        &[("content-type", "application/x-ndjson")],
        ndjson,
    )
    .await
    .expect("backend answers");
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(r.json()["errors"], serde_json::json!(false), "{}", r.text());
}

/// A JSON request to any URL (esgate or a backend directly), with an optional whole
/// `Authorization` value; panics when nothing answers.
pub async fn send_json(
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: &serde_json::Value,
) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    send(method, url, &headers, body.to_string().into_bytes())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: no answer: {e:?}"))
}

/// The `_id`s of a search answer's hits, sorted.
pub fn hit_ids(r: &Reply) -> Vec<String> {
    let v = r.json();
    let mut out: Vec<String> = v["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A request body: its content type and text.
pub type Body = Option<(&'static str, String)>;

/// One request of a sweep: which token (`a` or `none`), method, path, body.
pub type Case = (&'static str, &'static str, &'static str, Body);

pub fn json_body(v: serde_json::Value) -> Body {
    Some(("application/json", v.to_string()))
}

/// `send` with an explicit time limit for the whole exchange.
pub async fn send_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    timeout: Duration,
) -> Result<Reply, SendError> {
    let req = build_request(method, url, headers, body.into())?;
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(HttpConnector::new());
    exchange(client.request(req), timeout).await
}

/// Sends one request over HTTPS, trusting only the CA certificate(s) in the PEM file `ca_pem`.
pub async fn send_https(
    ca_pem: &Path,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, SendError> {
    let tls = client_tls_config(ca_pem)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    let req = build_request(method, url, headers, body.into())?;
    exchange(client.request(req), DEFAULT_TIMEOUT).await
}

/// Writes `bytes` verbatim to a new TCP connection and returns everything read back until the
/// peer closes or 5 s pass without the connection closing. The write side stays open, so the
/// server sees exactly these bytes and no end-of-stream.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    raw_with_timeout(addr, bytes, Duration::from_secs(5)).await
}

/// `raw` with an explicit overall time limit; returns what was read when the limit passes.
pub async fn raw_with_timeout(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => panic!("raw: cannot connect to {addr}: {e}"),
    };
    // A peer that closes early may reset the write; what it answered is still worth reading.
    let _ = stream.write_all(bytes).await;
    let _ = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// Runs an async block to completion on a fresh single-threaded runtime in its own thread, so
/// synchronous code (including code already running inside a tokio runtime, and `Drop`) can use
/// the async client.
pub fn blocking<F, Fut, T>(make: F) -> T
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
    T: Send,
{
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread tokio runtime can always be built in tests");
            rt.block_on(make())
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// `send` from synchronous code.
pub fn send_blocking(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, SendError> {
    let body = body.into();
    blocking(|| send(method, url, headers, body))
}

fn build_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, SendError> {
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|e| SendError::Request(e.to_string()))?;
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body.clone()))
        .map_err(|e| SendError::Request(e.to_string()))?;
    let map = req.headers_mut();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| SendError::Request(e.to_string()))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|e| SendError::Request(e.to_string()))?;
        map.append(name, value);
    }
    if !body.is_empty() && !map.contains_key(http::header::CONTENT_TYPE) {
        map.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(req)
}

async fn exchange<F>(response: F, timeout: Duration) -> Result<Reply, SendError>
where
    F: Future<
        Output = Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
    >,
{
    let whole = async {
        let resp = response
            .await
            .map_err(|e| SendError::Transport(format!("{e:?}")))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| SendError::Transport(format!("{e:?}")))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, whole)
        .await
        .map_err(|_| SendError::Timeout)?
}

fn client_tls_config(ca_pem: &Path) -> Result<rustls::ClientConfig, SendError> {
    let pem = std::fs::read(ca_pem)
        .map_err(|e| SendError::Request(format!("cannot read {}: {e}", ca_pem.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| SendError::Request(format!("bad CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| SendError::Request(format!("bad CA certificate: {e}")))?;
    }
    let provider = esgate::config::tls_crypto();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::Request(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
