//! The backend cluster: a pooled HTTP(S) client over several nodes with round-robin, passive
//! health and a bounded retry; index resolution for access decisions.
//!
//! Invariants:
//! - Only an [`UpstreamRequest`] is sent; it is built in `proxy::upstream_request`.
//! - A request is retried on another node only when no byte of it was sent (connect failure)
//!   and its body is esgate's own buffered bytes.
//! - Idle pooled connections are dropped before 30 s (backends close theirs around then).
//! - A backend connection reads through at most 64 KiB at a time (an answer's head included),
//!   so a streamed answer's memory stays flat however large the answer grows.
//! - Every answer is bounded in time (issue #9 item 6): its headers by `request_timeout`, its
//!   body by `body_idle_timeout` between chunks ([`AnswerBody`]); esgate's own lookups
//!   (`_resolve/index`, `/ready`) as a whole by `request_timeout`; answers esgate reads whole
//!   by `answer_timeout` (`proxy`).

pub mod dialect;
pub mod resolve;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{empty, full, Body};
use crate::config;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no backend node answered")]
    Unavailable,
    #[error("the backend did not answer in time")]
    Timeout,
    #[error("the backend connection failed during the request")]
    Broken,
    #[error("the backend's answer is not what this request expects")]
    Unexpected,
    #[error("the backend answered the index resolution unexpectedly (status {0})")]
    Resolve(u16),
    /// The backend answered with a server error (5xx); its answer is not relayed as is (see
    /// `proxy`). The type is the backend's error type when it is a plain identifier.
    #[error("the backend failed to process the request (status {status})")]
    Failed {
        status: u16,
        es_type: Option<String>,
    },
}

/// The body of an upstream request.
pub enum UpstreamBody {
    Empty,
    /// Bytes esgate built (or buffered): can be replayed on another node.
    Full(Bytes),
    /// A client body relayed as it arrives (pass-through tokens only): never replayed.
    Stream(Incoming),
}

/// A request ready to send: method, path and query, allow-listed headers, body.
/// Built only by `proxy::upstream_request`.
pub struct UpstreamRequest {
    pub(crate) method: Method,
    pub(crate) path_and_query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: UpstreamBody,
}

/// A backend answer's body that fails with [`crate::body::Stalled`] when the backend sends
/// nothing for the idle timeout (a backend that stalls after its headers would otherwise hold
/// the client's request forever).
pub struct AnswerBody {
    inner: Incoming,
    idle: Duration,
    /// When the backend must have sent its next frame: the answer's head, or its last frame,
    /// plus `idle`.
    deadline: tokio::time::Instant,
    /// The timer for `deadline`, made the first time the backend keeps the body waiting (an
    /// answer that arrives with its head never needs one: issue 10, a timer per answer was an
    /// allocation and a timer-wheel entry per relayed request).
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl AnswerBody {
    fn new(inner: Incoming, idle: Duration) -> AnswerBody {
        AnswerBody {
            inner,
            idle,
            deadline: tokio::time::Instant::now() + idle,
            timer: None,
        }
    }
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = tokio::time::Instant::now() + this.idle;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = match &mut this.timer {
                    Some(timer) => {
                        if timer.deadline() != deadline {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                match std::future::Future::poll(timer.as_mut(), cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(crate::body::Stalled)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

struct Node {
    /// The node's scheme and authority, parsed once (a request's URI is built from them).
    scheme: Option<http::uri::Scheme>,
    authority: Option<http::uri::Authority>,
    /// The `Host` header of a plain-HTTP node (always HTTP/1), built once: what hyper-util's
    /// client would format for every request (`host`, `host:port` for a non-default port).
    /// A TLS node may negotiate HTTP/2, where the client adds none: left to the client.
    host: Option<http::HeaderValue>,
    label: String,
    /// Milliseconds since `Upstream::epoch` until which the node is skipped; 0 = healthy.
    down_until_ms: AtomicU64,
    failures: AtomicU64,
}

/// The backend connections' read buffer and answer-head limit (see `Upstream::new`).
const MAX_READ_BUFFER: usize = 64 * 1024;

pub struct Upstream {
    nodes: Vec<Node>,
    next: AtomicUsize,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    request_timeout: Duration,
    body_idle_timeout: Duration,
    cooldown: Duration,
    epoch: Instant,
    pub(crate) resolver: resolve::Resolver,
    /// The backend's REST dialect, once known (`dialect.rs`).
    dialect: dialect::DialectCache,
}

/// Per-node health, for `/ready` and metrics.
pub struct NodeStatus {
    pub label: String,
    pub healthy: bool,
    pub failures: u64,
}

impl Upstream {
    pub fn new(config: &config::Backend) -> Upstream {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*config.tls).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            // A streamed answer's chunks are cut from this read buffer; while the client is
            // slower than the backend, each chunk still queued keeps a whole buffer alive.
            // hyper's default (about 400 KB) made a 10 MB answer at 4 connections hold 15-20
            // MiB; 64 KiB holds about 3 (issue 10, goal 5: `benches/load/pinned.sh`). It also
            // bounds a backend answer's head, which nginx caps at 4-8 KB by default.
            .http1_max_buf_size(MAX_READ_BUFFER)
            .build(https);
        let nodes = config
            .urls
            .iter()
            .map(|u| Node {
                scheme: u.scheme().cloned(),
                authority: u.authority().cloned(),
                host: plain_http_host(u),
                label: format!(
                    "{}://{}",
                    u.scheme_str().unwrap_or("http"),
                    u.authority().map(|a| a.as_str()).unwrap_or("")
                ),
                down_until_ms: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            })
            .collect();
        Upstream {
            nodes,
            next: AtomicUsize::new(0),
            client,
            request_timeout: config.request_timeout,
            body_idle_timeout: config.body_idle_timeout,
            cooldown: config.unhealthy_cooldown,
            epoch: Instant::now(),
            resolver: resolve::Resolver::new(config.resolve_cache_ttl),
            dialect: dialect::DialectCache::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Nodes in the order to try: round-robin over healthy nodes first, then those cooling
    /// down (soonest first), so a request is never refused only because every node failed once.
    fn order(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.now_ms();
        let mut healthy = vec![];
        let mut cooling = vec![];
        for i in 0..n {
            let idx = (start + i) % n;
            let until = self.nodes[idx].down_until_ms.load(Ordering::Relaxed);
            if until <= now {
                healthy.push(idx);
            } else {
                cooling.push((until, idx));
            }
        }
        cooling.sort();
        healthy.extend(cooling.into_iter().map(|(_, i)| i));
        healthy
    }

    fn mark_down(&self, idx: usize) {
        let node = &self.nodes[idx];
        node.failures.fetch_add(1, Ordering::Relaxed);
        let until = self.now_ms() + self.cooldown.as_millis() as u64;
        node.down_until_ms.store(until.max(1), Ordering::Relaxed);
        tracing::warn!(node = %node.label, "Backend node failed to connect; skipping it for a while");
    }

    fn mark_up(&self, idx: usize) {
        self.nodes[idx].down_until_ms.store(0, Ordering::Relaxed);
    }

    pub fn node_status(&self) -> Vec<NodeStatus> {
        let now = self.now_ms();
        self.nodes
            .iter()
            .map(|n| NodeStatus {
                label: n.label.clone(),
                healthy: n.down_until_ms.load(Ordering::Relaxed) <= now,
                failures: n.failures.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Sends a request, streaming the response back. Retries on the next node only when the
    /// connection could not be made and the body can be replayed.
    pub async fn send(
        &self,
        request: UpstreamRequest,
    ) -> Result<Response<AnswerBody>, UpstreamError> {
        let UpstreamRequest {
            method,
            path_and_query,
            headers,
            body,
        } = request;
        let (replayable, mut stream) = match body {
            UpstreamBody::Empty => (Some(None), None),
            UpstreamBody::Full(b) => (Some(Some(b)), None),
            UpstreamBody::Stream(s) => (None, Some(s)),
        };
        let mut last = UpstreamError::Unavailable;
        let order = self.order();
        // The last attempt takes the head; earlier ones (a retry may follow) copy it.
        let mut head = Some((headers, path_and_query));
        for (attempt, &idx) in order.iter().enumerate() {
            let (headers, path_and_query) = match head.take() {
                Some(h) if attempt + 1 == order.len() => h,
                Some(h) => {
                    let copy = (h.0.clone(), h.1.clone());
                    head = Some(h);
                    copy
                }
                None => return Err(last),
            };
            let body = match (&replayable, stream.take()) {
                (Some(Some(b)), _) => full(b.clone()),
                (Some(None), _) => empty(),
                (None, Some(s)) => {
                    http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(s, Into::into))
                }
                // A streamed body was already handed to a failed attempt.
                (None, None) => return Err(last),
            };
            let uri = match self.uri_for(idx, path_and_query) {
                Some(u) => u,
                None => return Err(UpstreamError::Unavailable),
            };
            let mut req = Request::new(body);
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = headers;
            if let Some(host) = &self.nodes[idx].host {
                req.headers_mut().insert(http::header::HOST, host.clone());
            }
            match tokio::time::timeout(self.request_timeout, self.client.request(req)).await {
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(Ok(response)) => {
                    self.mark_up(idx);
                    let idle = self.body_idle_timeout;
                    return Ok(response.map(|b| AnswerBody::new(b, idle)));
                }
                Ok(Err(e)) if e.is_connect() => {
                    self.mark_down(idx);
                    last = UpstreamError::Unavailable;
                    if replayable.is_none() {
                        return Err(last);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(node = %self.nodes[idx].label, error = %e, "Backend request failed");
                    return Err(UpstreamError::Broken);
                }
            }
        }
        Err(last)
    }

    /// The node's URI for a path and query: its scheme and authority are shared, not parsed
    /// again; the path and query text becomes the URI's without a copy.
    fn uri_for(&self, idx: usize, path_and_query: String) -> Option<Uri> {
        let node = &self.nodes[idx];
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(node.scheme.clone()?);
        parts.authority = Some(node.authority.clone()?);
        parts.path_and_query =
            Some(http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path_and_query)).ok()?);
        Uri::from_parts(parts).ok()
    }

    /// A GET of esgate's own (resolution, readiness) with the backend credential; the whole
    /// exchange, body included, within `request_timeout`.
    pub(crate) async fn get_own(
        &self,
        path_and_query: &str,
        authorization: Option<&http::HeaderValue>,
        cap: usize,
    ) -> Result<(u16, Bytes), UpstreamError> {
        self.own_request(Method::GET, path_and_query, authorization, None, cap)
            .await
    }

    /// A request of esgate's own (the cluster token store, `store::cluster`) with a JSON or
    /// NDJSON body; the whole exchange, body included, within `request_timeout`. Never goes
    /// through the data listener.
    pub(crate) async fn own_request(
        &self,
        method: Method,
        path_and_query: &str,
        authorization: Option<&http::HeaderValue>,
        body: Option<(&'static str, Bytes)>,
        cap: usize,
    ) -> Result<(u16, Bytes), UpstreamError> {
        let mut headers = HeaderMap::new();
        let body = match body {
            Some((content_type, bytes)) => {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(content_type),
                );
                UpstreamBody::Full(bytes)
            }
            None => UpstreamBody::Empty,
        };
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(a) = authorization {
            headers.insert(http::header::AUTHORIZATION, a.clone());
        }
        let exchange = async {
            let response = self
                .send(UpstreamRequest {
                    method,
                    path_and_query: path_and_query.to_owned(),
                    headers,
                    body,
                })
                .await?;
            let status = response.status().as_u16();
            let body = crate::body::read_capped(response.into_body(), cap)
                .await
                .map_err(|e| match e {
                    crate::body::ReadError::Stalled => UpstreamError::Timeout,
                    _ => UpstreamError::Broken,
                })?;
            Ok((status, body))
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }
}

/// The `Host` header hyper-util's client sets on an HTTP/1 request to `uri` (the URI's host,
/// with its port unless it is the scheme's default), for a plain `http` URI only.
fn plain_http_host(uri: &Uri) -> Option<http::HeaderValue> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?;
    let text = match uri.port() {
        Some(port) if port.as_u16() != 80 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    http::HeaderValue::from_str(&text).ok()
}

/// Whether a shared `Upstream` is ready: some node answers `GET /`.
pub async fn ready(upstream: &Arc<Upstream>, authorization: Option<&http::HeaderValue>) -> bool {
    matches!(
        upstream.get_own("/", authorization, 64 * 1024).await,
        Ok((200, _))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_is_what_the_client_would_set_for_plain_http_nodes() {
        let cases = [
            ("http://127.0.0.1:9200", Some("127.0.0.1:9200")),
            ("http://es.local", Some("es.local")),
            ("http://es.local:80", Some("es.local")),
            ("http://es.local:443", Some("es.local:443")),
            ("http://[::1]:9200", Some("[::1]:9200")),
            ("http://[::1]", Some("[::1]")),
            // TLS nodes may speak HTTP/2 (no Host header): the client decides.
            ("https://es.local:9200", None),
            ("https://es.local", None),
        ];
        for (uri, host) in cases {
            let uri: Uri = uri.parse().unwrap();
            let got = plain_http_host(&uri);
            assert_eq!(got.as_ref().map(|h| h.to_str().unwrap()), host, "{uri}");
        }
    }
}
