//! The backend cluster: esgate's own pooled HTTP/1.1 client (`pool.rs`, issue 10) over several
//! nodes with round-robin, passive health and a bounded retry; index resolution for access
//! decisions (`resolve.rs`), the types of histograms' fields (`field_types.rs`) and the dialect
//! (`dialect.rs`).
//!
//! Invariants:
//! - Only an [`UpstreamRequest`] is sent; it is built in `proxy::upstream_request`. On the wire
//!   its target is origin-form (path and query) and its `Host` names the node (`host[:port]`,
//!   the port only when not the scheme's default), for http and https nodes alike.
//! - A request is retried on another node only when no byte of it was sent (connect failure),
//!   whatever its body (a client body relayed as it arrives was not read yet: it comes back
//!   with the failure). A request an idle pooled connection gave back
//!   unsent (the backend closed it at that moment) is sent once more on a new connection to the
//!   same node, whatever its body. A partly sent request is never sent again.
//! - A backend connection serves the next request only after its answer ended completely and
//!   did not close it; an answer its client left unfinished closes its connection.
//! - Idle pooled connections are never used after `pool_idle_timeout` (under 30 s: backends
//!   close theirs around then) and are closed soon after; at most
//!   `pool::MAX_IDLE_PER_NODE` (512) are kept per node.
//! - At most `backend.max_connections_per_node` connections per node are open at once (in use
//!   and idle, over every worker); a streamed answer holds its connection until its body ends
//!   or is dropped (a client that stops reading is cut off by the data listener's
//!   `idle_timeout`, a backend that stalls by `body_idle_timeout`). A request whose node has
//!   no connection free goes to the next healthy node that has one; with none, it waits up to
//!   `connect_timeout` on its own node, then fails with [`UpstreamError::Saturated`] (503),
//!   unsent. Waiting requests are served first come, first served.
//! - A token's requests hold at most `backend.max_connections_per_token` of a node's
//!   connections at once (half the node's cap by default): one more waits, like a request at the
//!   cap, for one of its token's own to come back, then fails with [`UpstreamError::Share`]
//!   (429), unsent; other tokens keep the rest.
//! - A reload's pool (`App::reloaded`) keeps the health (cool-down, failure count) of each
//!   node it keeps with the same scheme, address, TLS material and `connect_timeout`
//!   ([`Upstream::carry_health_from`], rel25); any other node starts healthy. No connection
//!   carries over.
//! - Refusals for a full node or a token's share are logged at warn once per node and
//!   [`REFUSALS_LOGGED_EVERY`], with the count since the previous line (rel18: a line per
//!   refusal flooded the log under saturation).
//! - A backend connection reads through at most 64 KiB at a time, so a streamed answer's
//!   memory stays flat however large the answer grows; an answer whose head is larger than
//!   64 KiB is refused (502, [`UpstreamError::Broken`]), its connection closed.
//! - Every answer is bounded in time (issue #9 item 6): its headers by `request_timeout` from
//!   the request's start, over every node it tries (a connect that deadline cuts ends the
//!   request, a 504, and marks its node down only when it had the request's whole time: on
//!   the first node tried, not after a wait for a free connection: rel24), its body by
//!   `body_idle_timeout` between chunks ([`AnswerBody`]); esgate's own lookups
//!   (`_resolve/index`, `/ready`) as a whole by `request_timeout`; answers esgate reads whole
//!   by `answer_timeout` (`proxy`).

pub mod dialect;
pub mod field_types;
pub(crate) mod lookup;
pub(crate) mod pool;
pub mod resolve;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::config;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no backend node answered")]
    Unavailable,
    #[error("the backend did not answer in time")]
    Timeout,
    /// Every connection esgate may open to the node (`backend.max_connections_per_node`) was
    /// busy for `backend.connect_timeout`; the request was not sent.
    #[error("esgate's connections to the backend are all busy; retry later")]
    Saturated,
    /// The token's requests held `max` connections to the node
    /// (`backend.max_connections_per_token`) for `backend.connect_timeout`; the request was not
    /// sent.
    #[error("this token's requests already hold {max} of esgate's connections to a backend node (backend.max_connections_per_token); retry later")]
    Share { max: usize },
    #[error("the backend connection failed during the request")]
    Broken,
    /// The client's own body, relayed as it arrived (a pass-through token's), failed while
    /// it was sent: malformed chunked framing, a reset HTTP/2 stream, a hang-up. The client's
    /// fault, not the node's (attack20b: it was a 502 and a backend warning).
    #[error("the request body could not be read")]
    ClientBody,
    #[error("the backend's answer is not what this request expects")]
    Unexpected,
    /// The request's gate refused it once it had a connection it had waited for
    /// (`send_as`'s gate): it was not sent. The caller says why.
    #[error("the request was refused before it was sent")]
    Gated,
    #[error("the backend answered the index resolution unexpectedly (status {0})")]
    Resolve(u16),
    /// The backend's `_field_caps` answer to a histogram's field type lookup (`field_types`)
    /// was not a description: the request fails closed, as for `Resolve`.
    #[error("the backend answered the field type lookup unexpectedly (status {0})")]
    FieldTypes(u16),
    /// The backend answered with a server error (5xx), or a `read` token's request with 429
    /// (too busy); its answer is not relayed as is (see `proxy`). The type is the backend's
    /// error type when it is a plain identifier.
    #[error("the backend could not process the request (status {status})")]
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
    /// Bytes esgate built in parts, its own text and slices of the client's body
    /// (`es::ForwardBody::spans`): can be replayed on another node too.
    Parts(PartsBody),
    /// A client body relayed as it arrives (pass-through tokens only): never replayed.
    Stream(Incoming),
}

/// A body sent as its parts in order, with their summed length as its exact size
/// (`Content-Length`): `Upstream::send_as` sends them as one frame of several blocks
/// (`pool::SendBody::parts`), which hyper's HTTP/1 connection queues behind the head and writes
/// with one `writev` (session 20: no copy of the client's text into one block). A clone copies
/// the parts' references, not their bytes (a retry on another node). As a body of its own,
/// each part is a frame.
#[derive(Clone, Debug, Default)]
pub struct PartsBody {
    parts: std::collections::VecDeque<Bytes>,
    len: u64,
}

impl PartsBody {
    pub fn new(parts: Vec<Bytes>) -> PartsBody {
        let len = parts.iter().map(|p| p.len() as u64).sum();
        PartsBody {
            parts: parts.into_iter().filter(|p| !p.is_empty()).collect(),
            len,
        }
    }

    /// The parts in order (`POST /explain` shows them joined).
    pub fn parts(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter()
    }
}

impl http_body::Body for PartsBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let part = self.parts.pop_front();
        if let Some(p) = &part {
            self.len -= p.len() as u64;
        }
        std::task::Poll::Ready(part.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
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
/// the client's request forever). It holds the answer's connection and returns it to the pool
/// when the body ends; dropped before its end, it closes the connection.
pub struct AnswerBody {
    inner: Incoming,
    /// The connection the answer arrives on, until the body ends (`None` once returned): it
    /// holds the connection's place under the node's cap.
    conn: Option<pool::Conn>,
    /// Whether the connection may serve another request once the answer ended (the answer did
    /// not close it).
    reuse: bool,
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
    fn new(inner: Incoming, conn: Option<pool::Conn>, reuse: bool, idle: Duration) -> AnswerBody {
        AnswerBody {
            inner,
            conn,
            reuse,
            idle,
            deadline: tokio::time::Instant::now() + idle,
            timer: None,
        }
    }

    /// An answer from another HTTP service (Kibana, behind `kibana::front`), relayed under the
    /// same rule: at most `idle` between its chunks.
    pub fn idle_bounded(inner: Incoming, idle: Duration) -> AnswerBody {
        AnswerBody::new(inner, None, false, idle)
    }

    /// The body ended: its connection may serve the next request, or closes.
    fn ended(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reuse {
                conn.release();
            }
        }
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        // A reader may stop once the body says it has ended, without asking for the end.
        // Otherwise the connection is dropped here with the body, and hyper closes it.
        if self.inner.is_end_stream() {
            self.ended();
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
                match &frame {
                    None => this.ended(),
                    Some(Ok(_)) if this.inner.is_end_stream() => this.ended(),
                    Some(Ok(_)) => this.deadline = tokio::time::Instant::now() + this.idle,
                    // A broken answer: its connection goes with it.
                    Some(Err(_)) => this.conn = None,
                }
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
    /// The node's `Host` header, built once: `host`, or `host:port` for a port other than the
    /// scheme's default (what hyper-util's client formatted for every HTTP/1 request).
    host: Option<http::HeaderValue>,
    label: String,
    /// Its TLS settings' digest, for an https node: with `label`, what a reload compares to
    /// carry its health over ([`Upstream::carry_health_from`]).
    tls: Option<config::TlsDigest>,
    /// Milliseconds since `Upstream::epoch` until which the node is skipped; 0 = healthy.
    down_until_ms: AtomicU64,
    failures: AtomicU64,
    /// Requests refused because every connection was busy, and because their token held its
    /// share: logged once per [`REFUSALS_LOGGED_EVERY`].
    saturated: Refusals,
    share: Refusals,
}

/// How often a node's refusals are logged at most (each line counts those since the previous).
pub const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

/// Refusals of one kind at one node, for the log: the first is logged at once, the next ones
/// counted until [`REFUSALS_LOGGED_EVERY`] has passed since the last line.
#[derive(Default)]
struct Refusals {
    /// Milliseconds since `Upstream::epoch` of the last line (0: none yet).
    logged_ms: AtomicU64,
    /// Refusals since the last line.
    unlogged: AtomicU64,
}

impl Refusals {
    /// Whether to log a refusal at `now_ms`: `Some(n)` with the refusals not logged since the
    /// last line (this one included), `None` to count it quietly.
    fn note(&self, now_ms: u64) -> Option<u64> {
        let last = self.logged_ms.load(Ordering::Relaxed);
        let every = REFUSALS_LOGGED_EVERY.as_millis() as u64;
        if last != 0 && now_ms < last.saturating_add(every) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .logged_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.unlogged.swap(0, Ordering::Relaxed) + 1)
    }
}

impl Node {
    /// Whether the node is not cooling down at `now` (milliseconds since `Upstream::epoch`).
    fn healthy_at(&self, now: u64) -> bool {
        self.down_until_ms.load(Ordering::Relaxed) <= now
    }
}

/// A deadline too far to matter (`request_timeout` beyond what an `Instant` can add), as
/// `tokio::time::timeout` takes it.
const FAR_FUTURE: Duration = Duration::from_secs(86400 * 365 * 30);

/// The backend connections' read buffer and answer-head limit (see `Upstream::new`); the
/// Kibana front's connections to Kibana have the same (`kibana::front`).
pub(crate) const MAX_READ_BUFFER: usize = 64 * 1024;

pub struct Upstream {
    nodes: Vec<Node>,
    next: AtomicUsize,
    pool: pool::Pool,
    request_timeout: Duration,
    body_idle_timeout: Duration,
    cooldown: Duration,
    connect_timeout: Duration,
    /// How long the request probing a node whose cool-down ended has it alone, in
    /// milliseconds: twice `connect_timeout`, so that the probe's own end (the node marked up or
    /// down) comes first even when its connect's timer fires late (at exactly
    /// `connect_timeout`, a second request probed as the first one's timeout was reported).
    probe_ms: u64,
    epoch: Instant,
    pub(crate) resolver: resolve::Resolver,
    /// The types of histograms' fields (`field_types.rs`), cached like the resolver's names.
    pub(crate) field_types: field_types::FieldTypesCache,
    /// The backend's REST dialect, once known (`dialect.rs`).
    dialect: dialect::DialectCache,
}

/// Per-node health, for `/ready` and metrics.
pub struct NodeStatus {
    pub label: String,
    pub healthy: bool,
    pub failures: u64,
    /// Connections open to the node (in use, idle or being made).
    pub open: usize,
    /// Of which idle.
    pub idle: usize,
}

impl Upstream {
    /// How many shards its idle connections are kept in (see [`Upstream::new`]).
    pub fn shards(&self) -> usize {
        self.pool.shards()
    }

    /// The backend `config` names, its idle connections kept in `shards` shards (one per
    /// worker thread serving requests: `crate::server::workers`).
    pub fn new(config: &config::Backend, shards: usize) -> Upstream {
        // A streamed answer's chunks are cut from the read buffer; while the client is slower
        // than the backend, each chunk still queued keeps a whole buffer alive. hyper's default
        // (about 400 KB) made a 10 MB answer at 4 connections hold 15-20 MiB; 64 KiB holds
        // about 3 (issue 10, goal 5: `benches/load/pinned.sh`). It also caps a backend
        // answer's head (nginx caps it at 4-8 KB by default): hyper refuses a head still
        // unfinished once this much is buffered, and one read may bring more than it (its
        // buffer's spare room), so `send_by` refuses a parsed head larger than it ([`head_len`];
        // rel23: an 80 KiB head arriving at once passed). Either way a 502.
        let pool = pool::Pool::new(config, MAX_READ_BUFFER, shards);
        let nodes = config
            .urls
            .iter()
            .map(|u| Node {
                host: host_header(u),
                label: format!(
                    "{}://{}",
                    u.scheme_str().unwrap_or("http"),
                    u.authority().map(|a| a.as_str()).unwrap_or("")
                ),
                tls: (u.scheme_str() == Some("https")).then_some(config.tls_digest),
                down_until_ms: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                saturated: Refusals::default(),
                share: Refusals::default(),
            })
            .collect();
        Upstream {
            nodes,
            next: AtomicUsize::new(0),
            pool,
            request_timeout: config.request_timeout,
            body_idle_timeout: config.body_idle_timeout,
            cooldown: config.unhealthy_cooldown,
            connect_timeout: config.connect_timeout,
            probe_ms: config
                .connect_timeout
                .as_millis()
                .saturating_mul(2)
                .try_into()
                .unwrap_or(u64::MAX),
            epoch: Instant::now(),
            resolver: resolve::Resolver::new(config.resolve_cache_ttl),
            field_types: field_types::FieldTypesCache::new(config.resolve_cache_ttl),
            dialect: dialect::DialectCache::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Takes over `old`'s knowledge of the nodes it keeps, for a reload (`App::reloaded`;
    /// rel25: a reload forgot which nodes were down, so right after it requests went to a dead
    /// node again, each waiting up to `connect_timeout`, until one marked it down again). A
    /// node kept is one `old` had with the same scheme and address (its label) and, for https,
    /// the same TLS settings ([`config::TlsDigest`]), with `connect_timeout` unchanged (a node
    /// given up under a shorter one may connect under the new one): it keeps its cool-down,
    /// what is left of it, at most this pool's `unhealthy_cooldown` (one ended is ended here:
    /// the next request probes the node; a probe under way in `old` keeps it skipped here
    /// until that probe's time is up), and its failure count. Any other node starts healthy.
    /// Nothing of `old`'s connection pool carries over: idle connections stay in `old`'s
    /// (closed when it goes, with the last request of the old configuration), and connections
    /// under way count under its cap until they end (docs/configuration.md,
    /// `backend.max_connections_per_node`).
    pub fn carry_health_from(&self, old: &Upstream) {
        if old.connect_timeout != self.connect_timeout {
            return;
        }
        let (old_now, now) = (old.now_ms(), self.now_ms());
        let cooldown = self.cooldown.as_millis() as u64;
        for node in &self.nodes {
            let Some(was) = old
                .nodes
                .iter()
                .find(|o| o.label == node.label && o.tls == node.tls)
            else {
                continue;
            };
            node.failures
                .store(was.failures.load(Ordering::Relaxed), Ordering::Relaxed);
            let until = match was.down_until_ms.load(Ordering::Relaxed) {
                0 => 0,
                until if until <= old_now => 1,
                until => now.saturating_add((until - old_now).min(cooldown)).max(1),
            };
            node.down_until_ms.store(until, Ordering::Relaxed);
        }
    }

    /// Nodes in the order to try: round-robin over healthy nodes first, then those cooling
    /// down (soonest first), so a request is never refused only because every node failed once.
    /// A node whose cool-down ended counts as healthy for one request at a time (its probe).
    /// When no node was ever marked down (or all came back), the order is the rotation itself:
    /// no list is made and the clock is not read (issue 10).
    fn order(&self) -> Order {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        if self
            .nodes
            .iter()
            .all(|node| node.down_until_ms.load(Ordering::Relaxed) == 0)
        {
            return Order::Rotation { start, n };
        }
        let now = self.now_ms();
        let mut healthy = vec![];
        let mut cooling = vec![];
        for i in 0..n {
            let idx = (start + i) % n;
            let down = &self.nodes[idx].down_until_ms;
            let until = down.load(Ordering::Relaxed);
            if until == 0 {
                healthy.push(idx);
                continue;
            }
            // The node's cool-down ended: one request tries it (when it comes first in its
            // order), the others skip it until that connect ends, a success marking the node
            // up, a failure down (rel22: every request that came to it tried, so a node that
            // never answers connects held a share of all requests for `connect_timeout`
            // after each cool-down).
            if until <= now && healthy.is_empty() && self.claim_probe(idx, until, now) {
                healthy.push(idx);
            } else {
                cooling.push((until.max(now + 1), idx));
            }
        }
        cooling.sort();
        healthy.extend(cooling.into_iter().map(|(_, i)| i));
        Order::Listed(healthy)
    }

    /// Claims the probe of node `idx`, whose cool-down ended (`down_until_ms` read as `until`,
    /// at most `now`): `true` for the one request that moves it to the probe's end, `false` for
    /// the others (another request took it first).
    fn claim_probe(&self, idx: usize, until: u64, now: u64) -> bool {
        let probe = now.saturating_add(self.probe_ms).max(1);
        self.nodes[idx]
            .down_until_ms
            .compare_exchange(until, probe, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether node `idx` may take the place of an attempt whose node has no room: a node with
    /// room that is healthy, or whose cool-down ended and whose probe this request claims, as
    /// [`Upstream::order`] claims it (attack22b, L: a node whose cool-down ended was brought
    /// forward unclaimed, so while a node was saturated every request tried the one that never
    /// answers connects, each waiting `connect_timeout`, as before rel22's probe).
    fn may_bring_forward(&self, idx: usize, now: u64) -> bool {
        if !self.pool.has_room(idx) {
            return false;
        }
        match self.nodes[idx].down_until_ms.load(Ordering::Relaxed) {
            0 => true,
            until => until <= now && self.claim_probe(idx, until, now),
        }
    }

    /// `error` says why (refused, resolution, TLS, timeout) so the log shows what to fix; it
    /// names the node's address, never a credential.
    fn mark_down(&self, idx: usize, error: &pool::ConnectError) {
        let node = &self.nodes[idx];
        node.failures.fetch_add(1, Ordering::Relaxed);
        let until = self.now_ms() + self.cooldown.as_millis() as u64;
        node.down_until_ms.store(until.max(1), Ordering::Relaxed);
        tracing::warn!(
            node = %node.label,
            %error,
            cooldown = ?self.cooldown,
            "Backend node failed to connect; skipping it for backend.unhealthy_cooldown"
        );
    }

    fn mark_up(&self, idx: usize) {
        self.nodes[idx].down_until_ms.store(0, Ordering::Relaxed);
    }

    pub fn node_status(&self) -> Vec<NodeStatus> {
        let now = self.now_ms();
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (open, idle) = self.pool.connections(i);
                NodeStatus {
                    label: n.label.clone(),
                    healthy: n.healthy_at(now),
                    failures: n.failures.load(Ordering::Relaxed),
                    open,
                    idle,
                }
            })
            .collect()
    }

    /// Logs a refusal at `idx` (once per [`REFUSALS_LOGGED_EVERY`], with the count).
    fn refused(&self, idx: usize, share: bool) {
        let node = &self.nodes[idx];
        let now = self.now_ms();
        if share {
            if let Some(refused) = node.share.note(now) {
                tracing::warn!(
                    node = %node.label,
                    refused,
                    max = self.pool.max_per_token(),
                    "Requests refused (429): their token held its share of the node's connections (backend.max_connections_per_token); the count is since the previous line, at most one every 10s"
                );
            }
        } else if let Some(refused) = node.saturated.note(now) {
            tracing::warn!(
                node = %node.label,
                refused,
                "Requests refused (503): every connection to the node was busy (backend.max_connections_per_node); the count is since the previous line, at most one every 10s"
            );
        }
    }

    /// Sends a request of esgate's own, streaming the response back: see `Upstream::send_as`.
    pub async fn send(
        &self,
        request: UpstreamRequest,
    ) -> Result<Response<AnswerBody>, UpstreamError> {
        self.send_as(None, request, pool::Watch::default()).await
    }

    /// Sends a request of `token`'s (its id; `None`: esgate's own), streaming the response
    /// back; the token's requests hold at most `backend.max_connections_per_token` of a node's
    /// connections. Retries on the next node only when the connection could not be made; the
    /// answer's head due within `request_timeout` of the start, whatever nodes it tries.
    ///
    /// `watch`'s gate is asked once a connection the request waited for (or that was made for
    /// it) is its, and before it moves to the next node after a failed connect: `false` ends it
    /// unsent, [`UpstreamError::Gated`]. Its flag says whether the request was handed to a
    /// connection (see [`pool::Watch`]).
    pub(crate) async fn send_as(
        &self,
        token: Option<&str>,
        request: UpstreamRequest,
        watch: pool::Watch<'_>,
    ) -> Result<Response<AnswerBody>, UpstreamError> {
        // The answer's head within `request_timeout` of now, whatever nodes the request tries
        // (rel24: each had it anew, so with `request_timeout` under `connect_timeout` a
        // request took up to as many times it as there are nodes).
        let now = tokio::time::Instant::now();
        let end = now
            .checked_add(self.request_timeout)
            .unwrap_or_else(|| now + FAR_FUTURE);
        self.send_by(token, request, watch, end).await
    }

    /// [`Upstream::send_as`], the answer's head due at `end` on whatever node the request goes
    /// to, connecting included; none is tried after `end` ([`UpstreamError::Timeout`]).
    async fn send_by(
        &self,
        token: Option<&str>,
        request: UpstreamRequest,
        watch: pool::Watch<'_>,
        end: tokio::time::Instant,
    ) -> Result<Response<AnswerBody>, UpstreamError> {
        let UpstreamRequest {
            method,
            path_and_query,
            headers,
            body,
        } = request;
        let (replayable, mut stream) = match body {
            UpstreamBody::Empty => (Some(Replay::Empty), None),
            UpstreamBody::Full(b) => (Some(Replay::Full(b)), None),
            UpstreamBody::Parts(p) => (Some(Replay::Parts(p)), None),
            UpstreamBody::Stream(s) => (None, Some(s)),
        };
        let mut last = UpstreamError::Unavailable;
        let mut order = self.order();
        // The last attempt takes the head; earlier ones (a retry may follow) copy it.
        let mut head = Some((headers, path_and_query));
        for attempt in 0..order.len() {
            // A node whose connections are all busy would make the request wait, then refuse
            // it, while another healthy node may have room: any node serves any request
            // (attack17c).
            if !self.pool.has_room(order.node(attempt)) {
                let now = self.now_ms();
                order.bring_forward(attempt, |idx| self.may_bring_forward(idx, now));
            }
            let idx = order.node(attempt);
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
                (Some(Replay::Full(b)), _) => pool::SendBody::bytes(b.clone()),
                (Some(Replay::Parts(p)), _) => pool::SendBody::parts(p.parts()),
                (Some(Replay::Empty), _) => pool::SendBody::empty(),
                (None, Some(s)) => pool::SendBody::Stream(Box::new(s)),
                // A streamed body was already handed to a failed attempt.
                (None, None) => return Err(last),
            };
            let (Some(uri), Some(host)) = (origin_form(path_and_query), &self.nodes[idx].host)
            else {
                return Err(UpstreamError::Unavailable);
            };
            let mut req = Request::new(body);
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = headers;
            req.headers_mut().insert(http::header::HOST, host.clone());
            // The first attempt starts with the deadline just set (the clock read once a
            // request); a later one after a failed connect, perhaps with no time left.
            if attempt > 0 && end <= tokio::time::Instant::now() {
                return Err(UpstreamError::Timeout);
            }
            match self.pool.send_gated(idx, token, req, end, watch).await {
                Err(pool::Failure::Timeout) => return Err(UpstreamError::Timeout),
                Err(pool::Failure::Gated) => return Err(UpstreamError::Gated),
                Err(pool::Failure::Saturated) => {
                    self.refused(idx, false);
                    return Err(UpstreamError::Saturated);
                }
                Err(pool::Failure::Share) => {
                    self.refused(idx, true);
                    return Err(UpstreamError::Share {
                        max: self.pool.max_per_token(),
                    });
                }
                Ok((response, conn)) => {
                    self.mark_up(idx);
                    if head_len(&response) > MAX_READ_BUFFER {
                        // Dropped unfinished, its connection closed.
                        tracing::warn!(node = %self.nodes[idx].label, "Backend answer refused: its head is larger than 64 KiB");
                        return Err(UpstreamError::Broken);
                    }
                    // When not, the backend closes this connection after the answer; until
                    // then it counts under the cap.
                    let keep_alive = pool::keeps_alive(&response);
                    let conn = if response.body().is_end_stream() {
                        // No body to wait for.
                        if keep_alive {
                            conn.release();
                        }
                        None
                    } else {
                        Some(conn)
                    };
                    let idle = self.body_idle_timeout;
                    return Ok(response.map(|b| AnswerBody::new(b, conn, keep_alive, idle)));
                }
                // The request's deadline cut the connect: no time is left for another node.
                // The node failed it only if the connect had the request's time from its
                // start: on a later node it had what the failed ones left (rel24), and it says
                // nothing of the node then.
                Err(pool::Failure::Connect(e, _)) if e.by_deadline => {
                    if attempt == 0 {
                        self.mark_down(idx, &e);
                    }
                    return Err(UpstreamError::Timeout);
                }
                Err(pool::Failure::Connect(e, unsent)) => {
                    self.mark_down(idx, &e);
                    last = UpstreamError::Unavailable;
                    // A body relayed as it arrives comes back unread: the next node gets it
                    // (rel22: a pass-through token's request with a body failed with the node).
                    if let pool::SendBody::Stream(s) = unsent.into_body() {
                        stream = Some(*s);
                    }
                    // Connecting took up to `connect_timeout`: the next node's idle
                    // connection, found at once, would not ask the gate (attack21c: a token
                    // deleted meanwhile was forwarded there).
                    if watch.gate.is_some_and(|gate| !gate()) {
                        return Err(UpstreamError::Gated);
                    }
                }
                // The request's stream ended in an error of its own: hyper's client says
                // the body failed (a user error) and names the client connection's error.
                Err(pool::Failure::Exchange(e)) if client_body_failed(&e) => {
                    tracing::debug!(node = %self.nodes[idx].label, error = %e, "The client's body failed while relayed");
                    return Err(UpstreamError::ClientBody);
                }
                Err(pool::Failure::Exchange(e)) => {
                    tracing::warn!(node = %self.nodes[idx].label, error = %e, "Backend request failed");
                    return Err(UpstreamError::Broken);
                }
            }
        }
        Err(last)
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
        // The whole exchange by `end`; a connect it cuts still marks its node down (rel23: the
        // store's client connects and answers within 3 s each, and a node that never answered
        // connects was never marked down, so every other store request went to it).
        let now = tokio::time::Instant::now();
        let end = now
            .checked_add(self.request_timeout)
            .unwrap_or_else(|| now + FAR_FUTURE);
        let exchange = async {
            let request = UpstreamRequest {
                method,
                path_and_query: path_and_query.to_owned(),
                headers,
                body,
            };
            let response = self
                .send_by(None, request, pool::Watch::default(), end)
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
        tokio::time::timeout_at(end, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }
}

/// A body [`Upstream::send_as`] can send again on another node.
enum Replay {
    Empty,
    Full(Bytes),
    Parts(PartsBody),
}

/// The nodes a request tries, in order ([`Upstream::order`]).
enum Order {
    /// Every node is healthy: `n` nodes from `start` on, round the list.
    Rotation {
        start: usize,
        n: usize,
    },
    Listed(Vec<usize>),
}

impl Order {
    fn len(&self) -> usize {
        match self {
            Order::Rotation { n, .. } => *n,
            Order::Listed(list) => list.len(),
        }
    }

    /// Moves the first node after `attempt` that `fits` to `attempt`, the others keeping
    /// their order (a rotation becomes a list: rare, only when a node is saturated).
    fn bring_forward(&mut self, attempt: usize, fits: impl Fn(usize) -> bool) {
        let Some(later) = (attempt + 1..self.len()).find(|&a| fits(self.node(a))) else {
            return;
        };
        if let Order::Rotation { .. } = self {
            *self = Order::Listed((0..self.len()).map(|a| self.node(a)).collect());
        }
        if let Order::Listed(list) = self {
            let node = list.remove(later);
            list.insert(attempt, node);
        }
    }

    /// The node of the attempt (`attempt < len()`).
    fn node(&self, attempt: usize) -> usize {
        match self {
            Order::Rotation { start, n } => (start + attempt) % n,
            Order::Listed(list) => list[attempt],
        }
    }
}

/// Whether an exchange failed because the answer's head outgrew the connection's read buffer
/// ([`MAX_READ_BUFFER`]: hyper's "message head is too large"): `e` or any error in its chain
/// (hyper-util's client wraps hyper's).
pub(crate) fn head_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut link = Some(e);
    while let Some(e) = link {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large)
        {
            return true;
        }
        link = e.source();
    }
    false
}

/// The size of an answer's head as the node wrote it: its status line, each header as
/// `name: value` and a line end, and the blank line. Whitespace around a value (which hyper
/// trims) is not counted: a head so padded is bounded by hyper's read buffer alone.
pub(crate) fn head_len<B>(response: &Response<B>) -> usize {
    let reason = match response.extensions().get::<hyper::ext::ReasonPhrase>() {
        Some(r) => r.as_bytes().len(),
        None => response.status().canonical_reason().map_or(0, str::len),
    };
    // `HTTP/1.1 200 ` and the line end; the blank line.
    let line = 13 + reason + 2 + 2;
    response
        .headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// The `Host` header of every request to the node at `uri`: the URI's host, with its port
/// unless it is the scheme's default (80 for http, 443 for https), as hyper-util's client set it.
fn host_header(uri: &Uri) -> Option<http::HeaderValue> {
    let host = uri.host()?;
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let text = match uri.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    http::HeaderValue::from_str(&text).ok()
}

/// Whether an exchange failed because the relayed client body did (a pass-through token's
/// stream, a share-link recipient's on the Kibana front): hyper's client reports its body's
/// error as a user error whose cause is that body's own error, here the client connection's
/// (`hyper::Error`). A failure of the backend connection is never a user error with such a
/// cause. `e` or any error in its chain (hyper-util's client wraps hyper's).
pub(crate) fn client_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut link = Some(e);
    while let Some(e) = link {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_user()
                && std::error::Error::source(h).is_some_and(|cause| cause.is::<hyper::Error>())
            {
                return true;
            }
        }
        link = e.source();
    }
    false
}

/// The origin-form target (path and query only) of a request line; the text becomes the URI's
/// without a copy. An empty path is `/`.
fn origin_form(path_and_query: String) -> Option<Uri> {
    if path_and_query.is_empty() {
        return Some(Uri::from_static("/"));
    }
    let path = http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path_and_query)).ok()?;
    Some(Uri::from(path))
}

/// Whether a shared `Upstream` is ready: some node answers `GET /` with 200. Otherwise why
/// not, for `/ready`'s answer: a node that answers with another status is up, and its status
/// (401/403: esgate's own credential) is what the operator has to fix.
pub async fn ready(
    upstream: &Arc<Upstream>,
    authorization: Option<&http::HeaderValue>,
) -> Result<(), String> {
    match upstream.get_own("/", authorization, 64 * 1024).await {
        Ok((200, _)) => Ok(()),
        Ok((status @ (401 | 403), _)) => Err(format!(
            "the backend answers GET / with HTTP {status}: esgate's backend credential ([backend]) is refused or lacks the monitor cluster privilege"
        )),
        Ok((status, _)) => Err(format!("the backend answers GET / with HTTP {status}")),
        // Every connection busy is load, not a fault: a load balancer told "not ready" would
        // pull every replica of a busy fleet at once (attack17c, L). The requests are 503s
        // with Retry-After, and the metrics say so.
        Err(UpstreamError::Saturated) => Ok(()),
        Err(e) => Err(format!("no backend node answers ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Session 20: a body of parts is sent as its parts in order (empty ones left out), its
    /// exact size their sum (hyper's `Content-Length`), and a clone sends them all again (a
    /// retry on another node) with no byte copied: each part is the same allocation.
    #[tokio::test]
    async fn a_body_of_parts_sends_them_in_order_with_their_length_and_again_when_cloned() {
        use http_body_util::BodyExt;
        let client = Bytes::from(b"{\"query\":{\"match_all\":{}},\"size\":1}".to_vec());
        let own = Bytes::from_static(b"{\"bool\":");
        let parts = vec![
            own.clone(),
            client.slice(9..25),
            Bytes::new(),
            Bytes::from_static(b"}"),
        ];
        let body = PartsBody::new(parts);
        assert_eq!(body.size_hint().exact(), Some(8 + 16 + 1));
        let replay = body.clone();
        for body in [body, replay] {
            let mut body = std::pin::pin!(body);
            let mut frames = Vec::new();
            while let Some(frame) = body.frame().await {
                frames.push(frame.unwrap().into_data().unwrap());
                assert_eq!(
                    body.size_hint().exact(),
                    Some(25 - frames.iter().map(Bytes::len).sum::<usize>() as u64)
                );
            }
            assert!(body.is_end_stream());
            assert_eq!(frames.len(), 3);
            assert_eq!(frames.concat(), b"{\"bool\":{\"match_all\":{}}}");
            assert_eq!(frames[1].as_ptr(), client[9..].as_ptr(), "not copied");
        }
    }

    #[test]
    fn the_host_header_is_what_hyper_util_set_for_every_node() {
        let cases = [
            ("http://127.0.0.1:9200", "127.0.0.1:9200"),
            ("http://es.local", "es.local"),
            ("http://es.local:80", "es.local"),
            ("http://es.local:443", "es.local:443"),
            ("http://[::1]:9200", "[::1]:9200"),
            ("http://[::1]", "[::1]"),
            ("https://es.local:9200", "es.local:9200"),
            ("https://es.local", "es.local"),
            ("https://es.local:443", "es.local"),
            ("https://es.local:80", "es.local:80"),
            ("https://[::1]:9243", "[::1]:9243"),
        ];
        for (uri, host) in cases {
            let uri: Uri = uri.parse().unwrap();
            let got = host_header(&uri);
            assert_eq!(
                got.as_ref().map(|h| h.to_str().unwrap()),
                Some(host),
                "{uri}"
            );
        }
    }

    /// attack17c: a saturated node's request goes to the first later node with room, the
    /// rest keeping their order; nothing moves when none has room.
    #[test]
    fn a_node_with_room_is_brought_forward() {
        let nodes = |o: &Order| (0..o.len()).map(|a| o.node(a)).collect::<Vec<_>>();
        let mut order = Order::Rotation { start: 1, n: 4 };
        order.bring_forward(0, |i| i == 3 || i == 0);
        assert_eq!(nodes(&order), [3, 1, 2, 0]);
        order.bring_forward(1, |i| i == 0);
        assert_eq!(nodes(&order), [3, 0, 1, 2]);
        order.bring_forward(3, |_| true);
        assert_eq!(nodes(&order), [3, 0, 1, 2]);
        let mut order = Order::Rotation { start: 2, n: 3 };
        order.bring_forward(0, |_| false);
        assert!(matches!(order, Order::Rotation { start: 2, n: 3 }));
    }

    /// rel23 item 1: esgate's own requests run whole within `request_timeout`, and the
    /// cluster store's client has 3 s for that and for connecting: a connect that time cut
    /// was a timeout and the node never marked down, so every other store request (round
    /// robin) went to a node that never answered connects. It is now a failed connect.
    #[tokio::test(flavor = "current_thread")]
    async fn an_own_request_whose_time_cut_its_connect_marks_the_node_down() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let mut config = pool::tests::backend("http://stalls.test:9200");
        config.urls = vec![
            "http://stalls.test:9200".parse().unwrap(),
            "http://127.0.0.1:1".parse().unwrap(),
        ];
        config.connect_timeout = Duration::from_millis(300);
        config.request_timeout = Duration::from_millis(300);
        let mut upstream = Upstream::new(&config, 1);
        upstream.pool.resolve = |_, _| pool::tests::stalled(&CALLS);
        let started = Instant::now();
        let got = upstream.get_own("/", None, 1024).await;
        assert!(matches!(got, Err(UpstreamError::Timeout)), "{got:?}");
        assert!(started.elapsed() < pool::tests::STALL);
        let status = upstream.node_status();
        assert!(!status[0].healthy, "marked down");
        assert_eq!(status[0].failures, 1);
        assert_eq!(
            status[1].failures, 0,
            "no time was left to try the next node"
        );
    }

    /// Two nodes nothing listens on, a connect given a minute (the probe outlasts the test).
    fn two_silent_nodes() -> Upstream {
        let mut config = pool::tests::backend("http://127.0.0.1:1");
        config.urls = vec![
            "http://127.0.0.1:1".parse().unwrap(),
            "http://127.0.0.1:2".parse().unwrap(),
        ];
        config.connect_timeout = Duration::from_secs(60);
        Upstream::new(&config, 1)
    }

    /// rel25: a reload's pool kept no health, so right after it every request the rotation
    /// brought to a dead node waited on it again. A node kept with its settings (scheme,
    /// address, for https the TLS settings; `connect_timeout` unchanged) keeps its cool-down,
    /// at most the new `unhealthy_cooldown`, and its failure count; any other starts healthy.
    #[test]
    fn a_reload_carries_the_health_of_the_nodes_it_keeps() {
        let mut config = pool::tests::backend("http://127.0.0.1:1");
        config.urls = [
            "http://127.0.0.1:1",
            "https://127.0.0.1:2",
            "http://127.0.0.1:3",
        ]
        .iter()
        .map(|u| u.parse().unwrap())
        .collect();
        config.unhealthy_cooldown = Duration::from_secs(600);
        config.tls_digest = config::TlsDigest([1; 32]);
        let old = Upstream::new(&config, 1);
        let until = old.now_ms() + 600_000;
        for (i, node) in old.nodes.iter().enumerate() {
            node.down_until_ms.store(until, Ordering::Relaxed);
            node.failures.store(i as u64 + 1, Ordering::Relaxed);
        }
        let reloaded = |config: &config::Backend| {
            let new = Upstream::new(config, 1);
            new.carry_health_from(&old);
            new
        };
        let down = |u: &Upstream| -> Vec<(String, bool, u64)> {
            u.node_status()
                .into_iter()
                .map(|n| (n.label, !n.healthy, n.failures))
                .collect()
        };
        let label = |port: u16, down: bool, failures: u64| {
            let scheme = if port == 2 { "https" } else { "http" };
            (format!("{scheme}://127.0.0.1:{port}"), down, failures)
        };
        // The same settings: every node stays down, for what was left of its cool-down.
        let same = reloaded(&config);
        assert_eq!(
            down(&same),
            vec![label(1, true, 1), label(2, true, 2), label(3, true, 3)]
        );
        let left = same.nodes[0].down_until_ms.load(Ordering::Relaxed) - same.now_ms();
        assert!((599_000..=600_000).contains(&left), "{left}");
        // Other TLS settings: the https node starts fresh, the http ones keep theirs.
        let mut tls = config.clone();
        tls.tls_digest = config::TlsDigest([2; 32]);
        assert_eq!(
            down(&reloaded(&tls)),
            vec![label(1, true, 1), label(2, false, 0), label(3, true, 3)]
        );
        // A node replaced, the others moved: each kept node keeps its own health.
        let mut moved = config.clone();
        moved.urls = [
            "http://127.0.0.1:4",
            "http://127.0.0.1:3",
            "http://127.0.0.1:1",
        ]
        .iter()
        .map(|u| u.parse().unwrap())
        .collect();
        assert_eq!(
            down(&reloaded(&moved)),
            vec![label(4, false, 0), label(3, true, 3), label(1, true, 1)]
        );
        // Another connect_timeout: a node given up under the old one may connect now.
        let mut connect = config.clone();
        connect.connect_timeout += Duration::from_secs(1);
        assert_eq!(
            down(&reloaded(&connect)),
            vec![label(1, false, 0), label(2, false, 0), label(3, false, 0)]
        );
        // A shorter unhealthy_cooldown bounds what is left.
        let mut short = config.clone();
        short.unhealthy_cooldown = Duration::from_secs(1);
        let short = reloaded(&short);
        let left = short.nodes[0].down_until_ms.load(Ordering::Relaxed) - short.now_ms();
        assert!(left <= 1_000, "{left}");
        // A cool-down that ended is ended in the new pool: its next request probes the node.
        old.nodes[0].down_until_ms.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        let ended = reloaded(&config);
        assert_eq!(ended.nodes[0].down_until_ms.load(Ordering::Relaxed), 1);
        assert_eq!(ended.order().node(0), 0, "probed by the next request");
        assert!(!ended.node_status()[0].healthy, "being probed");
    }

    /// rel22 (M): once a node's cool-down ended, every request whose order began with it
    /// tried it (up to `connect_timeout` each against a node that never answers connects):
    /// now one request probes it, the others skip it until that connect ends, and a node
    /// marked up is back in the rotation.
    #[test]
    fn a_node_whose_cool_down_ended_is_tried_by_one_request_at_a_time() {
        let upstream = two_silent_nodes();
        let firsts = |n: usize| -> Vec<usize> {
            (0..n)
                .map(|_| {
                    let order = upstream.order();
                    assert_eq!(order.len(), 2, "every node stays in the order");
                    order.node(0)
                })
                .collect()
        };
        // Down until a moment ago.
        upstream.nodes[0].down_until_ms.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        let seen = firsts(8);
        assert_eq!(seen.iter().filter(|&&n| n == 0).count(), 1, "{seen:?}");
        assert!(!upstream.node_status()[0].healthy, "being probed");
        // The probe served: back in the rotation.
        upstream.mark_up(0);
        let seen = firsts(8);
        assert_eq!(seen.iter().filter(|&&n| n == 0).count(), 4, "{seen:?}");
    }

    /// attack22b (L): a node whose cool-down ended, brought forward for an attempt whose node
    /// has no room, is probed by one request at a time, as in [`Upstream::order`]: brought
    /// forward unclaimed, every request that found its node saturated tried it.
    #[test]
    fn a_node_whose_cool_down_ended_is_brought_forward_for_one_request_at_a_time() {
        let upstream = two_silent_nodes();
        // Down until a moment ago.
        upstream.nodes[1].down_until_ms.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        let now = upstream.now_ms();
        assert!(upstream.may_bring_forward(0, now), "healthy, with room");
        assert!(
            upstream.may_bring_forward(1, now),
            "the first request probes it"
        );
        for _ in 0..8 {
            assert!(!upstream.may_bring_forward(1, now), "being probed");
            assert_eq!(upstream.order().node(0), 0, "being probed: last");
        }
        // The probe served: back among the nodes.
        upstream.mark_up(1);
        assert!(upstream.may_bring_forward(1, upstream.now_ms()));
    }

    /// rel18: the first refusal is logged, the next ones within the interval counted, and the
    /// next line carries them.
    #[test]
    fn refusals_are_logged_once_per_interval_with_their_count() {
        let r = Refusals::default();
        let every = REFUSALS_LOGGED_EVERY.as_millis() as u64;
        assert_eq!(r.note(0), Some(1), "the first, at once (even at the epoch)");
        for t in 1..100 {
            assert_eq!(r.note(t), None);
        }
        assert_eq!(r.note(every), None);
        assert_eq!(
            r.note(every + 1),
            Some(101),
            "the 100 quiet ones and this one"
        );
        assert_eq!(r.note(every + 2), None);
        assert_eq!(r.note(5 * every), Some(2));
    }

    /// attack21c: a request moved to the next node after its node's connecting failed (up to
    /// `backend.connect_timeout`, a node that takes connections and never answers the TLS
    /// handshake) asks its gate before it goes out on that node's idle connection: it was
    /// sent unchecked (rel21's gate is asked after a wait in the node's queue or a connecting
    /// that succeeded), so a token deleted while the first node timed out was forwarded.
    #[tokio::test(flavor = "current_thread")]
    async fn the_next_node_after_a_failed_connect_asks_the_gate() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The live node: answers every request, counted.
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_url = format!("http://{}", live.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = live.accept().await {
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while s.read(&mut byte).await.is_ok_and(|n| n == 1) {
                        head.push(byte[0]);
                        if head.ends_with(b"\r\n\r\n") {
                            head.clear();
                            counted.fetch_add(1, Ordering::SeqCst);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if s.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        // The silent node: takes the connection, never says a word of TLS.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = format!("https://{}", silent.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let mut config = pool::tests::backend(&live_url);
        config.urls = vec![live_url.parse().unwrap(), silent_url.parse().unwrap()];
        config.connect_timeout = Duration::from_millis(300);
        let upstream = Upstream::new(&config, 1);
        let get = || UpstreamRequest {
            method: Method::GET,
            path_and_query: "/".to_owned(),
            headers: HeaderMap::new(),
            body: UpstreamBody::Empty,
        };
        // The rotation's first request goes to the live node, whose connection is parked.
        let answer = upstream
            .send_as(Some("t"), get(), pool::Watch::default())
            .await
            .unwrap();
        http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        // The second starts at the silent node; the token is deleted while it connects.
        let started = std::time::Instant::now();
        let gate = || started.elapsed() < Duration::from_millis(100);
        let watch = pool::Watch {
            gate: Some(&gate),
            sent: None,
        };
        let sent = upstream.send_as(Some("t"), get(), watch).await;
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "tried the silent node"
        );
        assert!(
            matches!(sent, Err(UpstreamError::Gated)),
            "{:?}",
            sent.err()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(requests.load(Ordering::SeqCst), 1, "sent unchecked");
    }

    #[test]
    fn request_targets_are_origin_form() {
        let cases = [
            ("/", "/"),
            ("", "/"),
            ("/logs/_search?size=1", "/logs/_search?size=1"),
            ("/_cat/indices", "/_cat/indices"),
        ];
        for (given, wire) in cases {
            let uri = origin_form(given.to_owned()).unwrap();
            assert_eq!(uri.to_string(), wire, "{given:?}");
            assert!(
                uri.scheme().is_none() && uri.authority().is_none(),
                "{given:?}"
            );
        }
    }
}
