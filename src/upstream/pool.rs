//! esgate's own HTTP/1 connection pool to the backend nodes (issue 10): hyper-util's legacy
//! client cost about 11k of the 69k instructions of a relayed request (a SipHash of scheme and
//! authority per checkout, its checkout/oneshot/Arc machinery, a task spawned per answer to
//! return the connection). Here a node is an index, its idle connections a short locked stack.
//!
//! Invariants:
//! - A connection is parked only after its answer ended completely (the answer's body reached
//!   its end, or it had none: [`Conn::release`]), only if the answer did not close it
//!   (`Connection: close`, HTTP/1.0 without keep-alive) and only once hyper says it can take a
//!   request. A connection whose answer was left unfinished is dropped, never reused.
//! - A parked connection older than the idle timeout is never handed out: checkout checks its
//!   age, and a light timer (one per pool, started by the first park, ending with the pool)
//!   closes the expired ones. At most [`MAX_IDLE_PER_NODE`] are parked per node (shared by the
//!   shards).
//! - Idle connections are kept per worker thread (`crate::server::workers`): a connection is
//!   parked in and handed out from the shard of the worker that made it, whose runtime drives
//!   its socket and its hyper task, so a request never waits on another thread's runtime. The
//!   shard is only where a connection waits: a request from another thread (a caller outside
//!   the workers, a pool built for another worker count by a reload) still works, through the
//!   other runtime.
//! - HTTP/1.1 only: TLS offers `http/1.1` alone by ALPN (Elasticsearch and OpenSearch speak
//!   HTTP/1.1), so the bytes on the wire are hyper's HTTP/1 client's, with the read buffer
//!   capped at [`MAX_READ_BUFFER`](super::MAX_READ_BUFFER).
//! - Connecting (name resolution, TCP, TLS handshake) is bounded by `connect_timeout`, all
//!   together, and by the request's deadline; any failure of it, either limit reached
//!   included, is a [`ConnectError`], the only error a request may move to another node for
//!   (the request comes back with it, untouched).
//! - A request has its answer's head by the deadline [`Pool::send`] is given, connecting
//!   included, or fails with [`Failure::Timeout`] (a connect the deadline cut with a
//!   [`ConnectError`], [`ConnectError::by_deadline`]; a request whose deadline passed while it
//!   waited for a place under the cap, or that waited for one and then had its connect cut by
//!   the deadline, with `Timeout`, unsent: that connect had only what the wait left, rel24).
//!   The timer is the connection's own, kept with it while parked and moved to each request's
//!   deadline.
//! - At most `backend.max_connections_per_node` connections to a node are open at once, in use,
//!   parked or being made, over every shard (rel17: with no cap, ten HTTP/2 clients held 2,000
//!   backend sockets). Each holds a [`Lease`] from the moment its connecting starts until the
//!   connection is dropped (closed); an answer's connection is held by its body
//!   (`AnswerBody`) until the body ends or is dropped, whether or not it will be parked. A
//!   request that finds the cap reached and no idle connection in any shard waits (at most
//!   `connect_timeout`, and never past its deadline) for a connection to be parked or closed,
//!   then fails with [`Failure::Saturated`]: the queue is the waiting requests themselves,
//!   bounded by the listeners' connection and stream limits.
//! - Waiting is first come, first served (rel18): while requests wait for a node, a new one
//!   queues behind them rather than taking the connection just parked or the place just freed;
//!   each park, close or release hands what came free to the oldest waiter that may take it
//!   ([`Shared::dispatch`]). A request that finds no one waiting pays one atomic load for it.
//! - One token's requests hold at most `backend.max_connections_per_token` of a node's
//!   connections at once (rel18, attack17c: one token held all 256 and every other tenant got
//!   503s): a [`Use`] counts a connection from its checkout until its answer ends or it is
//!   dropped. A request of a token at its share waits in the same queue (passed over until
//!   one of its token's own connections comes back), then fails with [`Failure::Share`].
//!   Such a request holds back no other token's requests, nor makes the node look full
//!   ([`Pool::has_room`]), until a hand-out finds its token under its share again (rel18b).
//!   A grant that reaches a request as it goes away (its future dropped while queued) goes
//!   back to the pool. esgate's own requests belong to no token.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use bytes::{Buf, Bytes};

/// The body of a request to a backend. Bytes esgate built go as one frame, even when they are
/// several parts (esgate's text and slices of the client's body, `super::PartsBody`): hyper
/// queues a frame as one entry and flushes once its write queue holds `max_buf_size`
/// ([`MAX_READ_BUFFER`](super::MAX_READ_BUFFER), which hyper applies to both buffers), so parts
/// sent as frames of their own went out in two `writev`s when a large one filled the queue
/// before the last small one (session 20: 3.03 `writev` a 200 KB search); one frame of several
/// parts is one entry of several `iovec`s.
pub(crate) enum SendBody {
    /// Bytes esgate built: one frame, none when empty.
    Whole(Option<Chunk>),
    /// A client body relayed as it arrives (pass-through tokens), frame by frame.
    /// Boxed: rare, and the request carrying the body moves through the pool's futures.
    Stream(Box<Incoming>),
}

impl SendBody {
    pub(crate) fn empty() -> SendBody {
        SendBody::Whole(None)
    }

    pub(crate) fn bytes(bytes: Bytes) -> SendBody {
        SendBody::Whole((!bytes.is_empty()).then_some(Chunk::One(bytes)))
    }

    /// `parts` in order as one frame (the empty ones left out).
    pub(crate) fn parts<'a>(parts: impl Iterator<Item = &'a Bytes>) -> SendBody {
        let parts: VecDeque<Bytes> = parts.filter(|p| !p.is_empty()).cloned().collect();
        let len = parts.iter().map(Bytes::len).sum();
        SendBody::Whole((len > 0).then(|| Chunk::Parts(Box::new(Parts { parts, len }))))
    }
}

impl http_body::Body for SendBody {
    type Data = Chunk;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Chunk>, hyper::Error>>> {
        match self.get_mut() {
            SendBody::Whole(chunk) => {
                Poll::Ready(chunk.take().map(|c| Ok(http_body::Frame::data(c))))
            }
            SendBody::Stream(s) => Pin::new(&mut **s)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map(|f| f.map_data(Chunk::One)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SendBody::Whole(chunk) => chunk.is_none(),
            SendBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            SendBody::Whole(chunk) => {
                http_body::SizeHint::with_exact(chunk.as_ref().map_or(0, |c| c.remaining() as u64))
            }
            SendBody::Stream(s) => s.size_hint(),
        }
    }
}

/// A frame of a [`SendBody`]: one block, or several in order (none of them empty) that hyper
/// writes with one `iovec` each.
pub(crate) enum Chunk {
    One(Bytes),
    /// Boxed: a frame's size is hyper's write queue entry's.
    Parts(Box<Parts>),
}

pub(crate) struct Parts {
    parts: VecDeque<Bytes>,
    /// Their summed length.
    len: usize,
}

impl Buf for Chunk {
    fn remaining(&self) -> usize {
        match self {
            Chunk::One(b) => b.len(),
            Chunk::Parts(p) => p.len,
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Chunk::One(b) => b,
            Chunk::Parts(p) => p.parts.front().map_or(&[], |b| &b[..]),
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        match self {
            Chunk::One(b) => b.advance(cnt.min(b.len())),
            Chunk::Parts(p) => {
                p.len -= cnt.min(p.len);
                while let Some(front) = p.parts.front_mut() {
                    if cnt < front.len() {
                        front.advance(cnt);
                        return;
                    }
                    cnt -= front.len();
                    p.parts.pop_front();
                }
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        match self {
            Chunk::One(b) => b.chunks_vectored(dst),
            Chunk::Parts(p) => {
                let mut n = 0;
                for (slot, part) in dst.iter_mut().zip(&p.parts) {
                    *slot = std::io::IoSlice::new(part);
                    n += 1;
                }
                n
            }
        }
    }
}

type Body = SendBody;

/// Idle connections kept per node at most. hyper-util kept any number: a burst of 10k
/// concurrent requests (the default `listen.max_connections`) left 10k sockets open on the
/// backend until they expired. 512 requests in flight at once to one node is far beyond what
/// its search threads serve; after a larger burst, a connection whose answer ended beyond the
/// cap is closed instead of parked.
pub(crate) const MAX_IDLE_PER_NODE: usize = 512;

/// A connection could not be made: name resolution, TCP connect, TLS handshake or their time
/// limit. Nothing of the request was sent.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct ConnectError {
    reason: String,
    /// The request's deadline ended it, before `connect_timeout` (rel24): it tells something
    /// of the node only when the connect had all of the request's time.
    pub(crate) by_deadline: bool,
}

impl ConnectError {
    fn new(reason: impl Into<String>) -> ConnectError {
        ConnectError {
            reason: reason.into(),
            by_deadline: false,
        }
    }
}

/// How a request failed on its way to an answer head.
pub(crate) enum Failure {
    /// No connection: the request was not sent, and comes back untouched (a body relayed as it
    /// arrives included: none of it was read); another node may be tried.
    Connect(ConnectError, Box<Request<Body>>),
    /// The exchange failed after the request was (perhaps partly) written.
    Exchange(hyper::Error),
    /// No answer head by the request's deadline: on a connection it had, or its deadline
    /// passed before it had one (a connect the deadline cuts is a [`Failure::Connect`], but
    /// for a request that waited for its place under the cap first).
    Timeout,
    /// The node's connection cap was reached and none came free in time: the request was not
    /// sent.
    Saturated,
    /// The request's token held its share of the node's connections
    /// (`backend.max_connections_per_token`) and none of them came back in time: the request
    /// was not sent.
    Share,
    /// The request's gate ([`Gate`]), asked once a wait for a connection or a new connection's
    /// making ended, refused it: it was not sent.
    Gated,
}

/// A request's own check, asked once it has a connection after waiting for one (in the node's
/// queue, or while it was made): `false` refuses the request, unsent. A revocation made during
/// that wait (up to `backend.connect_timeout`) must bite (rel21: the proxy's recheck ran only
/// before the wait).
pub(crate) type Gate<'a> = Option<&'a (dyn Fn() -> bool + Sync)>;

/// What a request's sender asks and learns on its way out ([`Pool::send_gated`]).
#[derive(Clone, Copy, Default)]
pub(crate) struct Watch<'a> {
    /// Asked once it has a connection it waited for.
    pub(crate) gate: Gate<'a>,
    /// Set when the request is handed to a connection (its bytes may be on the wire from then
    /// on), cleared when a closed idle connection gives it back unsent: a request whose client
    /// goes away while it waits for a connection (in the node's queue, or while one is made)
    /// was not sent, and its audit record says so (attack21c: it said `allow`, forwarded).
    pub(crate) sent: Option<&'a AtomicBool>,
}

impl Watch<'_> {
    fn mark_sent(&self, sent: bool) {
        if let Some(flag) = self.sent {
            flag.store(sent, Ordering::Relaxed);
        }
    }
}

/// The open connections of one node, counted against the cap, the requests waiting for one,
/// and each token's connections in use.
struct NodeLimit {
    /// Connections open or being made (each a [`Lease`]).
    open: AtomicUsize,
    /// Requests waiting in [`Pool::wait`] (only then do parks, closes and releases hand out):
    /// in the low half those that new requests must not pass, in the high half
    /// ([`HELD_BACK`] each) those that queued only because their token held its share, which
    /// do not hold back other tokens' requests nor make the node look full (rel18b: one
    /// token at its share sent every other token's request through the queue, and
    /// [`Pool::has_room`] said no). One word, so that a wake costs one load.
    waiting: AtomicU64,
    /// The waiting requests, oldest first (some perhaps gone: their receiver closed).
    queue: Mutex<VecDeque<Waiter>>,
    /// Set by whoever has something to hand out; whoever holds `queue` goes round again.
    pending: AtomicBool,
    /// Connections in use per token (from checkout to the answer's end), entries at zero
    /// removed by the sweeper.
    users: dashmap::DashMap<Box<str>, Arc<AtomicUsize>, crate::FastHash>,
    shared: Weak<Shared>,
    node: usize,
}

impl NodeLimit {
    /// Hands what came free to the waiting requests, if any wait (the common case, none, costs
    /// one load).
    fn wake(&self) {
        if self.waiting.load(Ordering::SeqCst) != 0 {
            if let Some(shared) = self.shared.upgrade() {
                shared.dispatch(self);
            }
        }
    }
}

/// A waiting request counted as held back by its token's share, in [`NodeLimit::waiting`].
const HELD_BACK: u64 = 1 << 32;

/// Whether a waiting request is counted in [`NodeLimit::waiting`]'s low half ([`FIRST`]), its
/// high half ([`HELD_BACK`]: until a hand-out finds its token under its share, then moved to
/// the low half), or no longer ([`GONE`]).
const FIRST: u8 = 0;
const SHARE: u8 = 1;
const GONE: u8 = 2;

/// A request waiting for a connection to its node.
struct Waiter {
    tx: tokio::sync::oneshot::Sender<Grant>,
    /// Its token's count of the node's connections in use.
    user: Option<Arc<AtomicUsize>>,
    /// How it is counted in [`NodeLimit::waiting`] (shared with the request).
    class: Arc<AtomicU8>,
}

/// Why a request could not go out at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// Others wait first, or the node is full.
    Queue,
    /// Its token holds its share.
    Share,
}

/// What a request goes out on, with its token's count of it.
struct Grant {
    found: Found,
    user: Option<Use>,
}

impl Grant {
    /// Back to the pool unused: an idle connection parked again (and handed out), a place
    /// given back.
    fn give_back(self) {
        let Grant { found, user } = self;
        if let Found::Idle(conn) = found {
            conn.put_back(true);
        }
        drop(user);
    }
}

/// A queued request's end of its grant's channel. A grant that came as the request went away
/// (its future dropped while queued: the client gone, an HTTP/2 stream reset) goes back to the
/// pool: dropped with the channel, its idle connection was closed (rel18b).
struct Granted(tokio::sync::oneshot::Receiver<Grant>);

impl Drop for Granted {
    fn drop(&mut self) {
        self.0.close();
        if let Ok(grant) = self.0.try_recv() {
            grant.give_back();
        }
    }
}

/// One connection's place under its node's cap, from its connecting until it is closed.
pub(crate) struct Lease {
    limit: Arc<NodeLimit>,
    /// Given back without handing it out ([`Lease::give_back_quietly`]).
    quiet: bool,
}

impl Lease {
    /// Gives the place back without waking a waiter: for what [`Shared::dispatch`] found no
    /// one to take (handing it out again would go round forever).
    fn give_back_quietly(mut self) {
        self.quiet = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.limit.open.fetch_sub(1, Ordering::SeqCst);
        if !self.quiet {
            self.limit.wake();
        }
    }
}

/// One connection in use by a token's request, counted against the token's share of its node
/// (`backend.max_connections_per_token`): from the connection's checkout until its answer ends
/// or the connection is dropped.
pub(crate) struct Use {
    count: Arc<AtomicUsize>,
    limit: Arc<NodeLimit>,
}

impl Use {
    /// A place in the token's share (`count`), if the token holds fewer than `max`.
    fn take(count: &Arc<AtomicUsize>, limit: &Arc<NodeLimit>, max: usize) -> Option<Use> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Use {
            count: Arc::clone(count),
            limit: Arc::clone(limit),
        })
    }
}

impl Drop for Use {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        // A request of this token may have waited for it.
        self.limit.wake();
    }
}

/// The timer bounding a connection's requests until their answer heads: made with the
/// connection's first request and kept with the connection (parked with it), each request
/// moving its deadline. A later deadline only updates the registered timer entry, where a
/// timer per request was an entry made in and removed from tokio's timer wheel every time
/// (issue 10: about 1.2k instructions of every request).
type Timer = Pin<Box<tokio::time::Sleep>>;

/// `f`'s output, or `None` when `timer` fires first (polled after `f`, as `tokio::time::timeout`
/// polls its delay).
async fn within<F: Future>(timer: &mut Timer, f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Where and how to connect to one node.
struct Target {
    /// The host to resolve or the IP address (no brackets) and the port; the host name's
    /// lookups, one at a time (`super::lookup`).
    lookup: super::lookup::Lookup,
    tls: Security,
}

enum Security {
    Plain,
    Tls(ServerName<'static>),
    /// An https node whose host rustls does not accept as a server name: every connect fails.
    BadName(String),
}

/// The idle connections of every node, shared with the answers that will return theirs.
struct Shared {
    /// One stack per worker and node: `shard * nodes + node`.
    idle: Vec<Mutex<Vec<Parked>>>,
    nodes: usize,
    /// Connections parked per stack at most: [`MAX_IDLE_PER_NODE`] shared by the shards.
    max_idle: usize,
    idle_timeout: Duration,
    /// Whether the sweeper was started (by the first park).
    sweeping: AtomicBool,
    /// One per node.
    limits: Vec<Arc<NodeLimit>>,
    /// `backend.max_connections_per_node`.
    max_open: usize,
    /// `backend.max_connections_per_token`.
    max_per_token: usize,
}

struct Parked {
    tx: http1::SendRequest<Body>,
    since: Instant,
    timer: Timer,
    lease: Lease,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    targets: Vec<Target>,
    /// The system resolver (a stalling one in tests).
    pub(super) resolve: super::lookup::Resolve,
    connect_timeout: Duration,
    /// How long a request waits for a connection when its node's cap is reached.
    wait: Duration,
    tls: tokio_rustls::TlsConnector,
    builder: http1::Builder,
}

/// A connection checked out for one request; it goes back through [`Conn::release`].
pub(crate) struct Conn {
    tx: http1::SendRequest<Body>,
    shared: Arc<Shared>,
    /// Its stack in `Shared::idle`: the node's, in the shard of the worker that made it.
    slot: usize,
    timer: Timer,
    lease: Lease,
    /// Its token's count of it, while a token's request uses it.
    user: Option<Use>,
}

/// What a request found to go out on.
enum Found {
    Idle(Conn),
    /// A place under the cap: connect.
    Lease(Lease),
}

impl Pool {
    /// A pool for `config`'s nodes, its idle connections kept in `shards` shards (one per
    /// worker thread: `crate::server::workers::current` picks one).
    pub(crate) fn new(
        config: &crate::config::Backend,
        max_read_buffer: usize,
        shards: usize,
    ) -> Pool {
        let targets = config.urls.iter().map(target).collect();
        let mut tls = (*config.tls).clone();
        // HTTP/1.1 only: the backends speak nothing else, and a server choosing h2 would get
        // HTTP/1 bytes.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut builder = http1::Builder::new();
        // hyper-util's legacy client used `http1::Builder::new()` with only this changed: the
        // request bytes are the same.
        builder.max_buf_size(max_read_buffer);
        let shards = shards.max(1);
        let nodes = config.urls.len();
        let max_open = config.max_connections_per_node.max(1);
        Pool {
            shared: Arc::new_cyclic(|weak| Shared {
                idle: (0..shards * nodes).map(|_| Mutex::default()).collect(),
                nodes,
                max_idle: MAX_IDLE_PER_NODE.min(max_open).div_ceil(shards),
                idle_timeout: config.pool_idle_timeout,
                sweeping: AtomicBool::new(false),
                limits: (0..nodes)
                    .map(|node| {
                        Arc::new(NodeLimit {
                            open: AtomicUsize::new(0),
                            waiting: AtomicU64::new(0),
                            queue: Mutex::default(),
                            pending: AtomicBool::new(false),
                            users: dashmap::DashMap::default(),
                            shared: Weak::clone(weak),
                            node,
                        })
                    })
                    .collect(),
                max_open,
                max_per_token: config.max_connections_per_token.max(1),
            }),
            targets,
            resolve: super::lookup::system,
            connect_timeout: config.connect_timeout,
            wait: config.connect_timeout,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            builder,
        }
    }

    /// Sends `req` to `node`: on an idle connection if one is ready, else on a new one (under
    /// the node's cap, waited for when reached, or when others wait first, or when `user`'s
    /// token holds its share of the node's connections). A request that an idle connection gave
    /// back unsent (the backend closed it as the request went out) is sent once more on a new
    /// connection, whatever its body: none of it was written. `req`'s URI must be origin-form
    /// and it must carry `Host`. `user` is the token whose request it is (none for esgate's own).
    #[cfg(test)]
    pub(crate) async fn send(
        &self,
        node: usize,
        user: Option<&str>,
        req: Request<Body>,
        deadline: tokio::time::Instant,
    ) -> Result<(Response<Incoming>, Conn), Failure> {
        self.send_gated(node, user, req, deadline, Watch::default())
            .await
    }

    /// [`Pool::send`], with `watch`'s gate asked before the request goes out on a connection it
    /// waited for or that was made for it (never when an idle one or a place was free at once:
    /// the caller has just checked), and its flag set once the request is handed to one.
    pub(crate) async fn send_gated(
        &self,
        node: usize,
        user: Option<&str>,
        mut req: Request<Body>,
        deadline: tokio::time::Instant,
        watch: Watch<'_>,
    ) -> Result<(Response<Incoming>, Conn), Failure> {
        let slot = self.shared.slot(node);
        let Some(limit) = self.shared.limits.get(node) else {
            let e = ConnectError::new("no such node");
            return Err(Failure::Connect(e, Box::new(req)));
        };
        let count = user.map(|id| self.shared.user(limit, id));
        let (grant, waited) = match self.take(limit, slot, count.as_ref()) {
            Ok(grant) => (grant, false),
            // Boxed: rare, and its state would otherwise weigh on every request.
            Err(blocked) => {
                let grant = Box::pin(self.wait(limit, count, blocked, deadline)).await?;
                if watch.gate.is_some_and(|gate| !gate()) {
                    grant.give_back();
                    return Err(Failure::Gated);
                }
                (grant, true)
            }
        };
        let Grant { found, user } = grant;
        let lease = match found {
            Found::Lease(lease) => lease,
            Found::Idle(mut conn) => {
                conn.user = user;
                conn.timer.as_mut().reset(deadline);
                watch.mark_sent(true);
                match within(&mut conn.timer, conn.tx.try_send_request(req)).await {
                    None => return Err(Failure::Timeout),
                    Some(Ok(response)) => return Ok((response, conn)),
                    Some(Err(mut e)) => match e.take_message() {
                        Some(unsent) => {
                            tracing::debug!(error = %e.error(), "An idle backend connection closed; sending on a new one");
                            watch.mark_sent(false);
                            req = unsent;
                            // The closed connection's place (and its token's) goes to its
                            // replacement.
                            let Conn { lease, user, .. } = conn;
                            return Box::pin(self.connect_and_send(
                                node,
                                slot,
                                (lease, user),
                                req,
                                (deadline, waited),
                                watch,
                            ))
                            .await;
                        }
                        None => return Err(Failure::Exchange(e.into_error())),
                    },
                }
            }
        };
        self.connect_and_send(node, slot, (lease, user), req, (deadline, waited), watch)
            .await
    }

    /// A new connection to `node` in its place (its lease, and its token's place), and `req`
    /// sent on it once `watch`'s gate lets it; `waited`: the request waited for that place.
    async fn connect_and_send(
        &self,
        node: usize,
        slot: usize,
        (lease, user): (Lease, Option<Use>),
        req: Request<Body>,
        (deadline, waited): (tokio::time::Instant, bool),
        watch: Watch<'_>,
    ) -> Result<(Response<Incoming>, Conn), Failure> {
        // Boxed: connecting (TCP, TLS, hyper's handshake) is most of this future's size and
        // rare with a warm pool; unboxed, every request would copy that state (issue 10).
        // Bounded by the request's deadline too, and a failure however it ends (rel23: with
        // `request_timeout` under `connect_timeout` the deadline cut a stalled connect as a
        // timeout, a 504 with no retry, and the node was never marked down).
        if deadline <= tokio::time::Instant::now() {
            // Its time went waiting for a place under the cap: not the node's failure.
            return Err(Failure::Timeout);
        }
        let tx = match Box::pin(self.connect(node, deadline)).await {
            Ok(tx) => tx,
            // Part of its time went waiting for a place under the cap, and what was left cut
            // the connect: it says nothing of the node (rel24: a node merely busy, its
            // connections all in use, was marked down by the requests queued for them).
            Err(e) if e.by_deadline && waited => return Err(Failure::Timeout),
            Err(e) => return Err(Failure::Connect(e, Box::new(req))),
        };
        let timer = Box::pin(tokio::time::sleep_until(deadline));
        let mut conn = Conn {
            tx,
            shared: Arc::clone(&self.shared),
            slot,
            timer,
            lease,
            user,
        };
        if watch.gate.is_some_and(|gate| !gate()) {
            // The new connection is parked for the next request.
            conn.release();
            return Err(Failure::Gated);
        }
        watch.mark_sent(true);
        match within(&mut conn.timer, conn.tx.try_send_request(req)).await {
            None => Err(Failure::Timeout),
            Some(Ok(response)) => Ok((response, conn)),
            Some(Err(e)) => Err(Failure::Exchange(e.into_error())),
        }
    }

    /// What a request may go out on at once: nobody waits for the node, its token is under
    /// its share, and an idle connection (the caller's shard) or a place under the cap is
    /// free. Otherwise it waits.
    fn take(
        &self,
        limit: &Arc<NodeLimit>,
        slot: usize,
        count: Option<&Arc<AtomicUsize>>,
    ) -> Result<Grant, Blocked> {
        // First come, first served: a request never passes one that waits (but for those
        // waiting for their own token's connections).
        if limit.waiting.load(Ordering::SeqCst) as u32 != 0 {
            return Err(Blocked::Queue);
        }
        let user = match count {
            None => None,
            Some(count) => {
                Some(Use::take(count, limit, self.shared.max_per_token).ok_or(Blocked::Share)?)
            }
        };
        let found = match self.shared.idle(slot) {
            Some(conn) => Found::Idle(conn),
            None => Found::Lease(self.shared.lease(limit.node).ok_or(Blocked::Queue)?),
        };
        Ok(Grant { found, user })
    }

    /// Waits, in the node's queue, until [`Shared::dispatch`] hands this request an idle
    /// connection (of any shard) or a place under the cap, its token under its share: until
    /// `connect_timeout` has passed or the request's `deadline`, whichever comes first, then
    /// [`Failure::Share`] if its token holds its share, else [`Failure::Saturated`].
    async fn wait(
        &self,
        limit: &Arc<NodeLimit>,
        count: Option<Arc<AtomicUsize>>,
        blocked: Blocked,
        deadline: tokio::time::Instant,
    ) -> Result<Grant, Failure> {
        let now = tokio::time::Instant::now();
        let until = now.checked_add(self.wait).unwrap_or(deadline).min(deadline);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut rx = Granted(rx);
        let (class, one) = match blocked {
            Blocked::Queue => (FIRST, 1),
            Blocked::Share => (SHARE, HELD_BACK),
        };
        let class = Arc::new(AtomicU8::new(class));
        // Counted before queueing, so that a park, close or release after the count hands out
        // (both sides' steps are sequentially consistent); uncounted however the wait ends, as
        // it is counted then (a hand-out may have moved it to the low half).
        let before = limit.waiting.fetch_add(one, Ordering::SeqCst);
        let waiting = (before as u32 as usize) + (before >> 32) as usize + 1;
        struct Waiting<'a>(&'a NodeLimit, &'a AtomicU8);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let one = match self.1.swap(GONE, Ordering::SeqCst) {
                    SHARE => HELD_BACK,
                    _ => 1,
                };
                self.0.waiting.fetch_sub(one, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(limit, &class);
        {
            let mut queue = limit.queue.lock().unwrap_or_else(|p| p.into_inner());
            // Requests that gave up stay queued until a hand-out passes them: forget them
            // when they outnumber the waiting ones.
            if queue.len() > 2 * waiting + 16 {
                queue.retain(|w| !w.tx.is_closed());
            }
            queue.push_back(Waiter {
                tx,
                user: count.clone(),
                class: Arc::clone(&class),
            });
        }
        // Whatever came free before this request was queued.
        self.shared.dispatch(limit);
        tokio::select! {
            granted = &mut rx.0 => granted.map_err(|_| Failure::Saturated),
            () = tokio::time::sleep_until(until) => {
                rx.0.close();
                // Handed out as the time ran out: taken after all.
                if let Ok(grant) = rx.0.try_recv() {
                    return Ok(grant);
                }
                let over = count
                    .as_ref()
                    .is_some_and(|c| c.load(Ordering::SeqCst) >= self.shared.max_per_token);
                tracing::debug!(node = limit.node, open = self.shared.max_open, over, "No backend connection came free in time");
                Err(if over { Failure::Share } else { Failure::Saturated })
            }
        }
    }

    /// `backend.max_connections_per_token`: how many of a node's connections one token's
    /// requests may hold.
    pub(crate) fn max_per_token(&self) -> usize {
        self.shared.max_per_token
    }

    /// How many shards the idle connections are kept in.
    pub(crate) fn shards(&self) -> usize {
        (self.shared.idle.len() / self.shared.nodes.max(1)).max(1)
    }

    /// Whether a request to `node` would go out without waiting: a place under its cap, or an
    /// idle connection in some shard (perhaps one the backend closed meanwhile). Costs one
    /// atomic load unless the cap is reached.
    pub(crate) fn has_room(&self, node: usize) -> bool {
        let Some(limit) = self.shared.limits.get(node) else {
            return false;
        };
        // Requests waiting come first (but for those waiting for their own token's).
        if limit.waiting.load(Ordering::SeqCst) as u32 != 0 {
            return false;
        }
        if limit.open.load(Ordering::Relaxed) < self.shared.max_open {
            return true;
        }
        self.shared
            .stacks(node)
            .filter_map(|stack| self.shared.idle.get(stack))
            .any(|list| !list.lock().unwrap_or_else(|p| p.into_inner()).is_empty())
    }

    /// `node`'s connections: open (in use, idle or being made) and idle.
    pub(crate) fn connections(&self, node: usize) -> (usize, usize) {
        let Some(limit) = self.shared.limits.get(node) else {
            return (0, 0);
        };
        let idle = self
            .shared
            .stacks(node)
            .filter_map(|stack| self.shared.idle.get(stack))
            .map(|list| list.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum();
        (limit.open.load(Ordering::Relaxed), idle)
    }

    /// A new connection to `node`, its hyper task spawned, by `deadline` (the request's) and
    /// within `connect_timeout`, whichever comes first. A failure at `deadline`, when that
    /// came first, is [`ConnectError::by_deadline`].
    async fn connect(
        &self,
        node: usize,
        deadline: tokio::time::Instant,
    ) -> Result<http1::SendRequest<Body>, ConnectError> {
        let target = self
            .targets
            .get(node)
            .ok_or_else(|| ConnectError::new("no such node"))?;
        // Name resolution, TCP and the TLS handshake together within `connect_timeout` (rel22:
        // each had it whole, so a slow TCP connect then a stalled handshake took twice as long),
        // and by the request's deadline.
        let now = tokio::time::Instant::now();
        let (until, by_deadline) = match now.checked_add(self.connect_timeout) {
            Some(u) if u <= deadline => (u, false),
            _ => (deadline, true),
        };
        let limit = until.saturating_duration_since(now);
        let made = async {
            let tcp = tokio::time::timeout_at(until, async {
                let addrs = target.lookup.addresses(self.resolve).await;
                tcp(
                    target.lookup.host(),
                    addrs.map_err(ConnectError::new)?,
                    limit,
                )
                .await
            })
            .await
            .map_err(|_| ConnectError::new("connect timed out"))??;
            match &target.tls {
                Security::Plain => self.handshake(tcp).await,
                Security::Tls(name) => {
                    let tls = tokio::time::timeout_at(until, self.tls.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| ConnectError::new("TLS handshake timed out"))?
                        .map_err(|e| ConnectError::new(format!("TLS handshake: {e}")))?;
                    self.handshake(tls).await
                }
                Security::BadName(host) => Err(ConnectError::new(format!(
                    "{host:?} is not a valid TLS server name"
                ))),
            }
        };
        made.await.map_err(|mut e| {
            // Ended by its time (a lookup or TCP connect given up, its share of the time for
            // each address included), not by a failure of its own before it.
            e.by_deadline = by_deadline && tokio::time::Instant::now() >= until;
            e
        })
    }

    async fn handshake<T>(&self, io: T) -> Result<http1::SendRequest<Body>, ConnectError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, connection) = self
            .builder
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| ConnectError::new(format!("HTTP/1 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "Backend connection ended with an error");
            }
        });
        Ok(tx)
    }
}

impl Conn {
    /// Back on its stack, taken but never sent on; handed out to a waiting request when
    /// `hand_out` (not when the hand-out itself found no one to take it).
    fn put_back(self, hand_out: bool) {
        let Conn {
            tx,
            shared,
            slot,
            timer,
            lease,
            ..
        } = self;
        park(&shared, slot, tx, timer, lease, hand_out);
    }

    /// The answer on this connection ended completely, and its head kept the connection alive
    /// ([`keeps_alive`]): the connection is parked for the next request if it is still usable,
    /// closed otherwise.
    pub(crate) fn release(self) {
        let Conn {
            tx,
            shared,
            slot,
            timer,
            lease,
            user,
        } = self;
        // The token's place is free once the connection is parked (or closed), at the end.
        let _user = user;
        if tx.is_closed() || shared.idle_timeout.is_zero() {
            return;
        }
        if tx.is_ready() {
            park(&shared, slot, tx, timer, lease, true);
            return;
        }
        // hyper's connection task has not yet taken up the end of the answer (it runs apart
        // from the reader that saw it): park once it asks for the next request.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut tx = tx;
            runtime.spawn(async move {
                if std::future::poll_fn(|cx| tx.poll_ready(cx)).await.is_ok() {
                    park(&shared, slot, tx, timer, lease, true);
                }
            });
        }
    }
}

/// Whether the answer's head lets its connection serve another request.
pub(crate) fn keeps_alive<B>(response: &Response<B>) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in response.headers().get_all(http::header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    match response.version() {
        http::Version::HTTP_11 => !close,
        http::Version::HTTP_10 => keep_alive && !close,
        _ => false,
    }
}

impl Shared {
    /// A place under `node`'s cap, if one is free.
    fn lease(&self, node: usize) -> Option<Lease> {
        let limit = self.limits.get(node)?;
        limit
            .open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_open).then_some(n + 1)
            })
            .ok()?;
        Some(Lease {
            limit: Arc::clone(limit),
            quiet: false,
        })
    }

    /// The most recently parked connection of stack `slot` that is ready for a request; closed
    /// ones are dropped, and expired ones (with every older one) closed, after the stack's
    /// lock is let go (a closed connection's lease hands out, which may look at the stacks).
    fn idle(self: &Arc<Shared>, slot: usize) -> Option<Conn> {
        let list = self.idle.get(slot)?;
        let now = Instant::now();
        let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = Vec::new();
        let mut found = None;
        while let Some(parked) = list.pop() {
            if now.saturating_duration_since(parked.since) >= self.idle_timeout {
                // The stack is ordered by park time: everything below is older still.
                closed.push(parked);
                closed.append(&mut list);
                break;
            }
            if parked.tx.is_ready() {
                found = Some(Conn {
                    tx: parked.tx,
                    shared: Arc::clone(self),
                    slot,
                    timer: parked.timer,
                    lease: parked.lease,
                    user: None,
                });
                break;
            }
            closed.push(parked);
        }
        drop(list);
        drop(closed);
        found
    }

    /// An idle connection to `node`: in stack `slot` (the caller's shard) first, then in the
    /// other shards' (served through their runtimes).
    fn idle_anywhere(self: &Arc<Shared>, node: usize, slot: usize) -> Option<Conn> {
        if let Some(conn) = self.idle(slot) {
            return Some(conn);
        }
        self.stacks(node)
            .filter(|&other| other != slot)
            .find_map(|other| self.idle(other))
    }

    /// `id`'s count of `limit`'s node's connections in use (made the first time).
    fn user(self: &Arc<Shared>, limit: &NodeLimit, id: &str) -> Arc<AtomicUsize> {
        if let Some(count) = limit.users.get(id) {
            return Arc::clone(&count);
        }
        let count = Arc::clone(&limit.users.entry(id.into()).or_default());
        // The sweeper forgets the tokens at rest.
        if !self.sweeping.load(Ordering::Relaxed) && !self.sweeping.swap(true, Ordering::Relaxed) {
            start_sweeper(self);
        }
        count
    }

    /// Hands what is free of `limit`'s node (idle connections, places under the cap) to the
    /// waiting requests, oldest first, each whose token is under its share. Called by a
    /// request as it queues and by every park, close and release while requests wait. Never
    /// blocks: whoever holds the queue goes round again for the others (a connection closed
    /// during a hand-out calls this again on the same thread).
    fn dispatch(self: &Arc<Shared>, limit: &NodeLimit) {
        limit.pending.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        loop {
            let mut queue = match limit.queue.try_lock() {
                Ok(queue) => queue,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            if !limit.pending.swap(false, Ordering::SeqCst) {
                return;
            }
            self.hand_out(limit, &mut queue);
            drop(queue);
            std::sync::atomic::fence(Ordering::SeqCst);
            if !limit.pending.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// [`Shared::dispatch`]'s round, `queue` held.
    fn hand_out(self: &Arc<Shared>, limit: &NodeLimit, queue: &mut VecDeque<Waiter>) {
        let Some(arc) = self.limits.get(limit.node) else {
            return;
        };
        let home = self.slot(limit.node);
        let mut held: Option<Found> = None;
        let mut i = 0;
        while let Some(waiter) = queue.get(i) {
            if waiter.tx.is_closed() {
                queue.remove(i);
                continue;
            }
            if waiter
                .user
                .as_ref()
                .is_some_and(|c| c.load(Ordering::SeqCst) >= self.max_per_token)
            {
                // Its token's own connections must come back first.
                i += 1;
                continue;
            }
            // Under its share now: it comes before any request arriving from now on.
            if waiter
                .class
                .compare_exchange(SHARE, FIRST, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                limit.waiting.fetch_sub(HELD_BACK - 1, Ordering::SeqCst);
            }
            let found = match held.take() {
                Some(found) => found,
                None => match self.idle_anywhere(limit.node, home) {
                    Some(conn) => Found::Idle(conn),
                    None => match self.lease(limit.node) {
                        Some(lease) => Found::Lease(lease),
                        None => break,
                    },
                },
            };
            let user = match &waiter.user {
                None => None,
                Some(count) => match Use::take(count, arc, self.max_per_token) {
                    Some(user) => Some(user),
                    None => {
                        held = Some(found);
                        i += 1;
                        continue;
                    }
                },
            };
            let Some(waiter) = queue.remove(i) else {
                break;
            };
            if let Err(grant) = waiter.tx.send(Grant { found, user }) {
                // It gave up meanwhile: the next one's.
                held = Some(grant.found);
            }
        }
        // Nobody could take it: back without handing it out again.
        match held {
            Some(Found::Idle(conn)) => conn.put_back(false),
            Some(Found::Lease(lease)) => lease.give_back_quietly(),
            None => {}
        }
    }

    /// `node`'s stacks in `idle`, one in each shard (every worker's).
    fn stacks(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        let shards = self.idle.len() / self.nodes.max(1);
        (0..shards).map(move |shard| shard * self.nodes + node)
    }

    /// `node`'s stack in the calling worker's shard.
    fn slot(&self, node: usize) -> usize {
        if node >= self.nodes {
            return usize::MAX; // no stack: `idle` and `park` find none
        }
        let shards = self.idle.len() / self.nodes.max(1);
        (crate::server::workers::current() % shards.max(1)) * self.nodes + node
    }
}

fn park(
    shared: &Arc<Shared>,
    slot: usize,
    tx: http1::SendRequest<Body>,
    timer: Timer,
    lease: Lease,
    hand_out: bool,
) {
    let Some(list) = shared.idle.get(slot) else {
        return;
    };
    let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
    if list.len() >= shared.max_idle {
        drop(list);
        drop(tx);
        return;
    }
    list.push(Parked {
        tx,
        since: Instant::now(),
        timer,
        lease,
    });
    drop(list);
    // A request waiting for a connection to this node may take this one.
    if hand_out {
        if let Some(limit) = shared.limits.get(slot % shared.nodes.max(1)) {
            limit.wake();
        }
    }
    if !shared.sweeping.load(Ordering::Relaxed) && !shared.sweeping.swap(true, Ordering::Relaxed) {
        start_sweeper(shared);
    }
}

/// Closes parked connections once they expire (or their backend closed them), so an idle
/// socket does not outlive the idle timeout by more than a quarter of it (at most a second).
/// Holds the pool weakly: it ends when the pool is dropped (a reload builds a new one).
fn start_sweeper(shared: &Arc<Shared>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        shared.sweeping.store(false, Ordering::Relaxed);
        return;
    };
    let every = (shared.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let weak: Weak<Shared> = Arc::downgrade(shared);
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let now = Instant::now();
            for list in &shared.idle {
                let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
                let (keep, closed): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut *list).into_iter().partition(|p| {
                        now.saturating_duration_since(p.since) < shared.idle_timeout
                            && !p.tx.is_closed()
                    });
                *list = keep;
                drop(list);
                // Closed after the lock is let go: their leases hand out, which looks at the
                // stacks.
                drop(closed);
            }
            for limit in &shared.limits {
                // A token's count is only kept while one of its requests holds or waits.
                limit
                    .users
                    .retain(|_, c| Arc::strong_count(c) > 1 || c.load(Ordering::SeqCst) > 0);
            }
        }
    });
}

/// A node URL's connect target.
fn target(uri: &Uri) -> Target {
    let https = uri.scheme_str() == Some("https");
    let raw = uri.host().unwrap_or_default();
    // An IPv6 address is bracketed in a URI, not in a socket address or a server name.
    let host = raw
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(raw)
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tls = if https {
        match ServerName::try_from(host.clone()) {
            Ok(name) => Security::Tls(name),
            Err(_) => Security::BadName(host.clone()),
        }
    } else {
        Security::Plain
    };
    Target {
        lookup: super::lookup::Lookup::new(&host, port),
        tls,
    }
}

/// A TCP connection to `host`'s `addrs` with `TCP_NODELAY`: each in turn, each given an equal
/// share of `limit` (as hyper-util's connector did).
async fn tcp(
    host: &str,
    addrs: Vec<SocketAddr>,
    limit: Duration,
) -> Result<TcpStream, ConnectError> {
    let share = limit / (addrs.len().max(1) as u32);
    let mut last = ConnectError::new(format!("{host} resolved to no address"));
    for addr in addrs {
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream
                    .set_nodelay(true)
                    .map_err(|e| ConnectError::new(format!("TCP_NODELAY: {e}")))?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = ConnectError::new(format!("connecting to {addr}: {e}")),
            Err(_) => last = ConnectError::new(format!("connecting to {addr} timed out")),
        }
    }
    Err(last)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend configuration for `url` (no TLS roots, 5 s timeouts); the cluster store's unit
    /// tests build their never-connected client with it too.
    pub(crate) fn backend(url: &str) -> crate::config::Backend {
        let provider = crate::config::tls_crypto();
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let s = Duration::from_secs(5);
        crate::config::Backend {
            urls: vec![url.parse().unwrap()],
            authorization: None,
            tls: Arc::new(tls),
            tls_digest: Default::default(),
            connect_timeout: s,
            request_timeout: s,
            body_idle_timeout: s,
            answer_timeout: s,
            pool_idle_timeout: s,
            max_connections_per_node: 256,
            max_connections_per_token: 256,
            unhealthy_cooldown: s,
            resolve_cache_ttl: s,
            relay_headers: Default::default(),
        }
    }

    /// A deadline no test reaches.
    /// A few turns of the scheduler: enough for a connection's task to see its answer's end.
    async fn settle() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    /// Reads `answer` to its end and gives its connection back (parked when still usable).
    async fn finish(answer: Response<Incoming>, conn: Conn) {
        answer.into_body().collect().await.unwrap();
        settle().await;
        conn.release();
    }

    fn far() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(60)
    }

    fn soon(millis: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(millis)
    }

    /// A watch with `gate` only.
    fn gated(gate: &(dyn Fn() -> bool + Sync)) -> Watch<'_> {
        Watch {
            gate: Some(gate),
            sent: None,
        }
    }

    fn get(path: &'static str) -> Request<Body> {
        let mut req = Request::new(SendBody::empty());
        *req.uri_mut() = Uri::from_static(path);
        req.headers_mut()
            .insert(http::header::HOST, http::HeaderValue::from_static("node"));
        req
    }

    /// Reads one request head from `io`.
    async fn read_head(io: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if io.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// A TCP node answering each request with `fresh` on connections it counts.
    async fn tcp_node() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        tcp_node_serving(|mut s| {
            Box::pin(async move {
                while !read_head(&mut s).await.is_empty() {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh";
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            })
        })
        .await
    }

    /// A TCP node whose connections, counted, are each served by `serve`.
    async fn tcp_node_serving(
        serve: fn(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s));
            }
        });
        (url, count)
    }

    /// A pool on a TCP node with one parked connection over an in-memory pipe whose server
    /// end the test holds, after one complete exchange on it.
    async fn pool_with_parked_pipe() -> (
        Pool,
        tokio::io::DuplexStream,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let (url, count) = tcp_node().await;
        let pool = Pool::new(&backend(&url), 64 * 1024, 1);
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let tx = pool.handshake(client).await.unwrap();
        let mut conn = Conn {
            tx,
            shared: Arc::clone(&pool.shared),
            slot: 0,
            timer: Box::pin(tokio::time::sleep_until(far())),
            lease: pool.shared.lease(0).unwrap(),
            user: None,
        };
        let answer = conn.tx.try_send_request(get("/first"));
        assert!(read_head(&mut server)
            .await
            .starts_with("GET /first HTTP/1.1"));
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        let answer = answer.await.ok().unwrap();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        settle().await;
        conn.release();
        assert_eq!(pool.shared.idle[0].lock().unwrap().len(), 1);
        (pool, server, count)
    }

    /// The backend closed the idle connection (its end of stream is there) but hyper's task
    /// has not run since: the checkout hands it out, hyper gives the request back unwritten,
    /// and it goes out on a new connection (a single-threaded runtime holds the order).
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_an_idle_connection_gave_back_unsent_goes_out_on_a_new_one() {
        let (pool, server, count) = pool_with_parked_pipe().await;
        drop(server);
        let (answer, _conn) = pool
            .send(0, None, get("/second"), far())
            .await
            .ok()
            .unwrap();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"fresh");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    /// A request written (even partly) before the connection failed is not sent again.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_written_before_the_connection_failed_is_not_sent_again() {
        let (pool, mut server, count) = pool_with_parked_pipe().await;
        let sending =
            tokio::spawn(async move { pool.send(0, None, get("/second"), far()).await.err() });
        assert!(read_head(&mut server)
            .await
            .starts_with("GET /second HTTP/1.1"));
        drop(server);
        match sending.await.unwrap() {
            Some(Failure::Exchange(_)) => {}
            _ => panic!("a written request failed as an exchange, not retried"),
        }
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    /// A system resolver whose name server does not answer: each lookup holds its thread for
    /// `STALL`, then fails. Each test counts its own lookups.
    pub(crate) const STALL: Duration = Duration::from_millis(1500);

    pub(crate) fn stalled(calls: &AtomicUsize) -> std::io::Result<Vec<SocketAddr>> {
        calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(STALL);
        Err(std::io::Error::other("no answer from the name server"))
    }

    /// rel23 item 4: name resolution counts against `connect_timeout` (a lookup that stalls
    /// is given up with the connect, a failed connect), and rel23 item 1: against the request's
    /// deadline when that comes first, still a failed connect (it was a `Timeout`: no other
    /// node tried, the node never marked down).
    #[tokio::test(flavor = "current_thread")]
    async fn a_stalled_lookup_fails_the_connect_by_its_timeout_or_the_requests_deadline() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let mut config = backend("http://stalls.test:9200");
        config.connect_timeout = Duration::from_millis(300);
        let mut pool = Pool::new(&config, 64 * 1024, 1);
        pool.resolve = |_, _| stalled(&CALLS);
        let started = Instant::now();
        match pool.send(0, None, get("/x"), far()).await {
            Err(Failure::Connect(e, _)) => {
                assert!(e.reason.contains("timed out"), "{e}");
                assert!(!e.by_deadline, "connect_timeout ended it");
            }
            _ => panic!("a failed connect"),
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < STALL,
            "{took:?}"
        );

        // A deadline before `connect_timeout`.
        let mut config = backend("http://stalls.test:9200");
        config.connect_timeout = Duration::from_secs(60);
        let mut pool = Pool::new(&config, 64 * 1024, 1);
        pool.resolve = |_, _| stalled(&CALLS);
        let started = Instant::now();
        match pool.send(0, None, get("/x"), soon(300)).await {
            Err(Failure::Connect(e, _)) => assert!(e.by_deadline, "the deadline ended it"),
            Err(Failure::Timeout) => panic!("a connect the deadline cut is a failed connect"),
            _ => panic!("a failed connect"),
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < STALL,
            "{took:?}"
        );
        assert_eq!(pool.connections(0), (0, 0), "its place is back");
    }

    /// rel23 item 4: a lookup given up by its connect still holds a blocking thread until the
    /// resolver answers; every connect started one, so while the name server stalled each
    /// request that tried the node left a thread behind (tokio keeps up to 512 a runtime, then
    /// queues the lookups). Connects to a node now wait for the lookup under way: one thread.
    #[tokio::test(flavor = "current_thread")]
    async fn connects_to_a_node_share_the_lookup_under_way() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let mut config = backend("http://stalls.test:9200");
        config.connect_timeout = Duration::from_millis(200);
        let mut pool = Pool::new(&config, 64 * 1024, 1);
        pool.resolve = |_, _| stalled(&CALLS);
        let pool = Arc::new(pool);
        // Three rounds of 16 connects at once, each given up after 200 ms.
        for _ in 0..3 {
            let rounds: Vec<_> = (0..16)
                .map(|_| {
                    let pool = Arc::clone(&pool);
                    tokio::spawn(async move {
                        matches!(
                            pool.send(0, None, get("/x"), far()).await,
                            Err(Failure::Connect(..))
                        )
                    })
                })
                .collect();
            for r in rounds {
                assert!(r.await.unwrap(), "a failed connect");
            }
        }
        assert_eq!(CALLS.load(Ordering::SeqCst), 1, "one lookup under way");
        // Once it answered, the next connect asks again (answers are not kept).
        tokio::time::sleep(STALL).await;
        assert!(matches!(
            pool.send(0, None, get("/x"), far()).await,
            Err(Failure::Connect(..))
        ));
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }

    /// An answer's connection is parked only once its answer ended, and handed out again.
    #[tokio::test(flavor = "current_thread")]
    async fn a_parked_connection_is_reused_and_an_expired_one_is_not() {
        let (url, count) = tcp_node().await;
        let mut config = backend(&url);
        config.pool_idle_timeout = Duration::from_millis(100);
        let pool = Pool::new(&config, 64 * 1024, 1);
        for _ in 0..3 {
            let (answer, conn) = pool.send(0, None, get("/x"), far()).await.ok().unwrap();
            finish(answer, conn).await;
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (answer, _conn) = pool.send(0, None, get("/x"), far()).await.ok().unwrap();
        answer.into_body().collect().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    /// The deadline bounds a request on a parked connection (whose timer was made for an
    /// earlier request) and on a new one, connecting included.
    #[tokio::test(flavor = "current_thread")]
    async fn no_answer_head_by_the_deadline_is_a_timeout_on_parked_and_new_connections() {
        let (pool, mut server, _count) = pool_with_parked_pipe().await;
        let started = std::time::Instant::now();
        let sending =
            tokio::spawn(async move { pool.send(0, None, get("/second"), soon(100)).await.err() });
        assert!(read_head(&mut server)
            .await
            .starts_with("GET /second HTTP/1.1"));
        assert!(matches!(sending.await.unwrap(), Some(Failure::Timeout)));
        assert!(started.elapsed() >= Duration::from_millis(100));

        // A node that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        let pool = Pool::new(&backend(&url), 64 * 1024, 1);
        let started = std::time::Instant::now();
        assert!(matches!(
            pool.send(0, None, get("/x"), soon(100)).await.err(),
            Some(Failure::Timeout)
        ));
        assert!(started.elapsed() >= Duration::from_millis(100));
        held.abort();
    }

    /// A connection's timer that fired while the connection was parked (its request long
    /// answered) does not cut the next request: the next deadline is the request's own.
    #[tokio::test(flavor = "current_thread")]
    async fn a_timer_that_fired_while_parked_does_not_cut_the_next_request() {
        let (url, count) = tcp_node().await;
        let pool = Pool::new(&backend(&url), 64 * 1024, 1);
        for millis in [30, 30, 60_000, 2000] {
            let (answer, conn) = pool
                .send(0, None, get("/x"), soon(millis))
                .await
                .ok()
                .unwrap();
            finish(answer, conn).await;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    /// Issue 10 review: the connection's timer bounds only the answer's head. An answer whose
    /// body streams well past the deadline, on a parked connection whose timer an earlier
    /// request armed (and on a new one), is read to its end, and the connection is reused.
    #[tokio::test(flavor = "current_thread")]
    async fn a_body_streaming_past_the_deadline_is_not_cut() {
        let (url, count) = tcp_node_serving(|mut s| {
            Box::pin(async move {
                loop {
                    let head = read_head(&mut s).await;
                    if head.is_empty() {
                        return;
                    }
                    if head.starts_with("GET /quick") {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nquick";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    // The head at once, then ten bytes over 300 ms.
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    for _ in 0..10 {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        if s.write_all(b"x").await.is_err() {
                            return;
                        }
                    }
                }
            })
        })
        .await;
        let pool = Pool::new(&backend(&url), 64 * 1024, 1);
        for path in ["/slow", "/quick", "/slow", "/slow"] {
            let (answer, conn) = pool.send(0, None, get(path), soon(50)).await.ok().unwrap();
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            let want: &[u8] = if path == "/quick" {
                b"quick"
            } else {
                b"xxxxxxxxxx"
            };
            assert_eq!(&body[..], want, "{path}");
            settle().await;
            conn.release();
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    /// rel21: a request's gate is asked once it has a connection it waited for (at the cap)
    /// or one made for it; refused, it is not sent and the connection is kept for the next
    /// request (parked), its place given back.
    #[tokio::test(flavor = "current_thread")]
    async fn a_gate_that_refuses_after_the_wait_sends_nothing_and_keeps_the_connection() {
        let (url, count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 1;
        let pool = Arc::new(Pool::new(&config, 64 * 1024, 1));
        let refuse = || false;

        // Made for it: connected, then refused; the next request goes out on it.
        assert!(matches!(
            pool.send_gated(0, Some("t"), get("/a"), far(), gated(&refuse))
                .await
                .err(),
            Some(Failure::Gated)
        ));
        settle().await;
        assert_eq!(pool.connections(0), (1, 1), "parked");
        let (a, a_conn) = pool.send(0, None, get("/a"), far()).await.ok().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);

        // Waited for at the cap, A's connection comes back: refused, kept, then reused.
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let waiter = Arc::clone(&pool);
        let flag = Arc::clone(&open);
        let b = tokio::spawn(async move {
            let gate = move || flag.load(Ordering::SeqCst);
            waiter
                .send_gated(0, Some("t"), get("/b"), far(), gated(&gate))
                .await
                .err()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!b.is_finished(), "B went out beyond the cap");
        open.store(false, Ordering::SeqCst);
        finish(a, a_conn).await;
        assert!(matches!(b.await.unwrap(), Some(Failure::Gated)));
        settle().await;
        let (c, c_conn) = pool
            .send(0, Some("t"), get("/c"), far())
            .await
            .ok()
            .unwrap();
        finish(c, c_conn).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "one connection throughout");
    }

    /// attack21c (L): a request's flag says it was sent only once it is handed to a
    /// connection: not while it waits at the cap (a client gone then was recorded as
    /// forwarded), set when it goes out.
    #[tokio::test(flavor = "current_thread")]
    async fn the_sent_flag_is_set_when_the_request_goes_out_not_while_it_waits() {
        let (url, _count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 1;
        let pool = Arc::new(Pool::new(&config, 64 * 1024, 1));
        let first = AtomicBool::new(false);
        let watch = Watch {
            gate: None,
            sent: Some(&first),
        };
        let (a, a_conn) = pool
            .send_gated(0, None, get("/a"), far(), watch)
            .await
            .ok()
            .unwrap();
        assert!(first.load(Ordering::Relaxed), "sent on a new connection");
        let flag = Arc::new(AtomicBool::new(false));
        let (waiter, seen) = (Arc::clone(&pool), Arc::clone(&flag));
        let b = tokio::spawn(async move {
            let watch = Watch {
                gate: None,
                sent: Some(&seen),
            };
            let (b, b_conn) = waiter
                .send_gated(0, None, get("/b"), far(), watch)
                .await
                .ok()
                .unwrap();
            finish(b, b_conn).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!b.is_finished(), "B waits at the cap");
        assert!(!flag.load(Ordering::Relaxed), "not sent while it waits");
        finish(a, a_conn).await;
        b.await.unwrap();
        assert!(flag.load(Ordering::Relaxed), "sent on the idle connection");
    }

    /// rel17: at the node's cap, a request waits for a connection to come back (an answer's
    /// end parks it) and goes out on it; past `connect_timeout` it fails unsent
    /// (`Saturated`); a connection dropped mid-answer (closed) gives its place back. The node
    /// never sees more connections than the cap.
    #[tokio::test(flavor = "current_thread")]
    async fn at_the_cap_a_request_waits_for_a_connection_then_is_refused() {
        let (url, count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 1;
        config.connect_timeout = Duration::from_millis(200);
        let pool = Arc::new(Pool::new(&config, 64 * 1024, 1));

        // A holds the only connection until its answer is read; B waits and then gets it.
        let (a, a_conn) = pool.send(0, None, get("/a"), far()).await.ok().unwrap();
        assert_eq!(pool.connections(0), (1, 0));
        let waiter = Arc::clone(&pool);
        let b = tokio::spawn(async move {
            let (answer, conn) = waiter.send(0, None, get("/b"), far()).await.ok().unwrap();
            answer.into_body().collect().await.unwrap();
            conn
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!b.is_finished(), "B went out beyond the cap");
        finish(a, a_conn).await;
        let b_conn = b.await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1, "B reused A's connection");

        // C finds B's connection busy past the wait: refused, nothing sent.
        let started = std::time::Instant::now();
        assert!(matches!(
            pool.send(0, None, get("/c"), far()).await.err(),
            Some(Failure::Saturated)
        ));
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Nor past the request's own deadline.
        let started = std::time::Instant::now();
        assert!(matches!(
            pool.send(0, None, get("/c"), soon(50)).await.err(),
            Some(Failure::Saturated)
        ));
        assert!(started.elapsed() < Duration::from_millis(190));
        assert_eq!(count.load(Ordering::SeqCst), 1);

        // B's connection dropped (an answer left unfinished closes it): its place is free.
        drop(b_conn);
        assert_eq!(pool.connections(0), (0, 0));
        let (d, _d_conn) = pool.send(0, None, get("/d"), far()).await.ok().unwrap();
        d.into_body().collect().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    /// At the cap, a waiting request takes an idle connection parked in another worker's
    /// shard rather than waiting for it to expire.
    #[tokio::test(flavor = "current_thread")]
    async fn at_the_cap_an_idle_connection_of_another_shard_is_taken() {
        let (url, count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 1;
        let pool = Pool::new(&config, 64 * 1024, 2);
        let (answer, conn) = pool.send(0, None, get("/a"), far()).await.ok().unwrap();
        answer.into_body().collect().await.unwrap();
        settle().await;
        // Parked in the other shard (as another worker's would be).
        let Conn {
            tx,
            shared,
            timer,
            lease,
            ..
        } = conn;
        park(&shared, 1, tx, timer, lease, true);
        assert_eq!(pool.connections(0), (1, 1));
        let (answer, _conn) = pool
            .send(0, None, get("/b"), soon(1000))
            .await
            .ok()
            .unwrap();
        answer.into_body().collect().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    /// Polls `f` once (spawned afterwards to go on): what it took at its first step.
    async fn poll_once<F: Future + Unpin>(f: &mut F) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx).is_ready())).await
    }

    /// rel18 (rel17 L): at the cap, requests are served in the order they came. A connection
    /// parked while requests wait goes to the oldest, never to a request arriving that moment
    /// (before, it found the connection in its stack and took it, and a waiter could wait
    /// again); the newcomer queues behind them.
    #[tokio::test(flavor = "current_thread")]
    async fn waiting_requests_are_served_first_come_first_served() {
        let (url, count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 1;
        let pool = Arc::new(Pool::new(&config, 64 * 1024, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let serve = |name: &'static str| {
            let (pool, order) = (Arc::clone(&pool), Arc::clone(&order));
            Box::pin(async move {
                let (answer, conn) = pool.send(0, None, get("/x"), far()).await.ok().unwrap();
                order.lock().unwrap().push(name);
                finish(answer, conn).await;
            })
        };
        let (a, a_conn) = pool.send(0, None, get("/a"), far()).await.ok().unwrap();
        let mut waiters = Vec::new();
        for name in ["w0", "w1", "w2", "w3"] {
            waiters.push(tokio::spawn(serve(name)));
            // Queued in this order.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        finish(a, a_conn).await;
        // A request arriving as the connection is parked, before any waiter runs.
        let mut newcomer = serve("new");
        assert!(!poll_once(&mut newcomer).await);
        waiters.push(tokio::spawn(newcomer));
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("every request served")
                .unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["w0", "w1", "w2", "w3", "new"]);
        assert_eq!(count.load(Ordering::SeqCst), 1, "one connection throughout");
    }

    /// rel18 (attack17c M): one token's requests hold at most `max_connections_per_token` of
    /// a node's connections. Its next request waits, passed over by other tokens' requests
    /// (which get the room left), and goes out when one of its token's own comes back, or is
    /// refused with `Share` after `connect_timeout`. esgate's own requests count for no token.
    #[tokio::test(flavor = "current_thread")]
    async fn a_token_holds_at_most_its_share_and_others_get_the_rest() {
        let (url, count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 4;
        config.max_connections_per_token = 2;
        config.connect_timeout = Duration::from_millis(300);
        let pool = Arc::new(Pool::new(&config, 64 * 1024, 1));
        let (a1, a1_conn) = pool
            .send(0, Some("a"), get("/a1"), far())
            .await
            .ok()
            .unwrap();
        let (_a2, _a2_conn) = pool
            .send(0, Some("a"), get("/a2"), far())
            .await
            .ok()
            .unwrap();
        // A third of a's is refused after the wait, though the node has room.
        let started = std::time::Instant::now();
        assert!(matches!(
            pool.send(0, Some("a"), get("/a3"), far()).await.err(),
            Some(Failure::Share)
        ));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(pool.connections(0), (2, 0));

        // One more of a's waits; b's, arriving after it, is not held behind it.
        let waiter = Arc::clone(&pool);
        let a3 = tokio::spawn(async move {
            let (answer, conn) = waiter
                .send(0, Some("a"), get("/a3"), far())
                .await
                .ok()
                .unwrap();
            answer.into_body().collect().await.unwrap();
            conn
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!a3.is_finished(), "a went past its share");
        let started = std::time::Instant::now();
        let (b1, _b1_conn) = pool
            .send(0, Some("b"), get("/b1"), far())
            .await
            .ok()
            .unwrap();
        let (_own, _own_conn) = pool.send(0, None, get("/own"), far()).await.ok().unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "b and esgate's own waited"
        );
        b1.into_body().collect().await.unwrap();
        assert_eq!(pool.connections(0), (4, 0));

        // One of a's comes back (parked): the waiting one of a's takes it.
        finish(a1, a1_conn).await;
        let _a3_conn = tokio::time::timeout(Duration::from_millis(200), a3)
            .await
            .expect("a's waiting request went out on a's returned connection")
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }

    /// rel18b: a request waiting only because its token holds its share does not make the
    /// node look full (`has_room`: other tokens' requests were sent to other nodes) nor hold
    /// back other tokens' requests (each went through the queue); once its token's
    /// connection comes back, it is served before a request arriving later.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_held_back_by_its_share_holds_back_no_one_else() {
        let (url, _count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 4;
        config.max_connections_per_token = 1;
        let pool = Arc::new(Pool::new(&config, 64 * 1024, 1));
        let (a1, a1_conn) = pool
            .send(0, Some("a"), get("/a1"), far())
            .await
            .ok()
            .unwrap();
        let mut a2 = Box::pin(pool.send(0, Some("a"), get("/a2"), far()));
        assert!(!poll_once(&mut a2).await, "a went past its share");
        assert!(
            pool.has_room(0),
            "3 of 4 connections free, yet the node looks full"
        );
        let limit = &pool.shared.limits[0];
        let (b, b_conn) = pool
            .send(0, Some("b"), get("/b"), far())
            .await
            .ok()
            .unwrap();
        b.into_body().collect().await.unwrap();
        assert_eq!(
            limit.queue.lock().unwrap().len(),
            1,
            "b went through the queue"
        );
        // a's connection comes back: a2 takes it, and is now first in line.
        finish(a1, a1_conn).await;
        let (a2, _a2_conn) = a2.await.ok().unwrap();
        a2.into_body().collect().await.unwrap();
        assert_eq!(limit.waiting.load(Ordering::SeqCst), 0);
        drop(b_conn);
        assert!(pool.has_room(0));
    }

    /// rel18b: a request given a connection as its client went away (its future dropped while
    /// queued, the grant not yet taken: a client gone, an HTTP/2 stream reset) hands the
    /// connection back to the pool. Before, the grant was dropped with the request's channel:
    /// the warm connection was closed (its place and its token's came back, but a connection
    /// was lost at the moment the node was busiest).
    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_handed_to_a_request_that_went_away_is_kept() {
        let (url, count) = tcp_node().await;
        let mut config = backend(&url);
        config.max_connections_per_node = 1;
        let pool = Arc::new(Pool::new(&config, 64 * 1024, 1));
        let (a, a_conn) = pool
            .send(0, Some("t"), get("/a"), far())
            .await
            .ok()
            .unwrap();
        // B queues behind A's connection.
        let mut b = Box::pin(pool.send(0, Some("t"), get("/b"), far()));
        assert!(!poll_once(&mut b).await);
        a.into_body().collect().await.unwrap();
        settle().await;
        // Parked and handed to B at once; B's client leaves before B runs again.
        a_conn.release();
        drop(b);
        assert_eq!(
            pool.connections(0),
            (1, 1),
            "the connection is parked again"
        );
        assert_eq!(pool.shared.limits[0].waiting.load(Ordering::SeqCst), 0);
        let (c, _c_conn) = pool
            .send(0, Some("t"), get("/c"), soon(1000))
            .await
            .ok()
            .unwrap();
        c.into_body().collect().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1, "C reused the connection");
    }

    /// A node answering after a short pause, its body in two parts (`/N`: N milliseconds
    /// before the head and between the parts).
    async fn slow_node() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        tcp_node_serving(|mut s| {
            Box::pin(async move {
                loop {
                    let head = read_head(&mut s).await;
                    if head.is_empty() {
                        return;
                    }
                    let millis: u64 = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.trim_start_matches('/').parse().ok())
                        .unwrap_or(0);
                    let pause = Duration::from_millis(millis);
                    tokio::time::sleep(pause).await;
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    if s.write_all(b"-half").await.is_err() {
                        return;
                    }
                }
            })
        })
        .await
    }

    /// rel18b: the share and the cap under a storm of requests of several tokens (and
    /// esgate's own) that end every way a request can: read whole, dropped mid-body, abandoned
    /// while queued or connecting (their futures dropped), cut by their deadline, refused
    /// after the wait. No token ever holds more than its share nor the node more than its cap,
    /// and afterwards nothing is left counted: no waiter, every token's count at zero, every
    /// open connection idle, and the whole cap serves again. Seeded: a failure names its seed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_share_and_the_cap_hold_and_come_back_after_a_storm() {
        const CAP: usize = 4;
        const SHARE: usize = 2;
        const TOKENS: [Option<&str>; 5] = [Some("t0"), Some("t1"), Some("t2"), Some("t3"), None];
        for seed in [0x9e37_79b9_7f4a_7c15_u64, 0x2545_f491_4f6c_dd1d, 7] {
            let (url, _count) = slow_node().await;
            let mut config = backend(&url);
            config.max_connections_per_node = CAP;
            config.max_connections_per_token = SHARE;
            config.connect_timeout = Duration::from_millis(40);
            let pool = Arc::new(Pool::new(&config, 64 * 1024, 2));
            let held: Arc<[AtomicUsize; 5]> = Arc::new(Default::default());
            let mut rng = seed;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut tasks = Vec::new();
            for _ in 0..400 {
                let (pool, held) = (Arc::clone(&pool), Arc::clone(&held));
                let who = (next() % 5) as usize;
                let kind = next() % 5;
                let pause = next() % 4;
                let cut = Duration::from_micros(next() % 3000);
                tasks.push(tokio::spawn(async move {
                    let mut req = Request::new(SendBody::empty());
                    *req.uri_mut() = format!("/{pause}").parse().unwrap();
                    req.headers_mut()
                        .insert(http::header::HOST, http::HeaderValue::from_static("node"));
                    let deadline = if kind == 3 { soon(2) } else { far() };
                    let sent = pool.send(0, TOKENS[who], req, deadline);
                    let got = if kind == 2 {
                        match tokio::time::timeout(cut, sent).await {
                            Ok(got) => got,
                            Err(_) => return,
                        }
                    } else {
                        sent.await
                    };
                    let Ok((answer, conn)) = got else {
                        return;
                    };
                    let now = held[who].fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(
                        who == 4 || now <= SHARE,
                        "seed {seed:#x}: a token held {now}"
                    );
                    assert!(pool.connections(0).0 <= CAP, "seed {seed:#x}: over the cap");
                    let mut body = answer.into_body();
                    if kind == 1 {
                        let _ = body.frame().await;
                        held[who].fetch_sub(1, Ordering::SeqCst);
                        drop(body);
                        drop(conn);
                        return;
                    }
                    let _ = body.collect().await;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    held[who].fetch_sub(1, Ordering::SeqCst);
                    conn.release();
                }));
                if next() % 4 == 0 {
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
            for t in tasks {
                t.await.unwrap();
            }
            // hyper's tasks take up the answers' ends; parks finish.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let limit = &pool.shared.limits[0];
            assert_eq!(limit.waiting.load(Ordering::SeqCst), 0, "seed {seed:#x}");
            for entry in limit.users.iter() {
                assert_eq!(
                    entry.value().load(Ordering::SeqCst),
                    0,
                    "seed {seed:#x}: {} still counted",
                    entry.key()
                );
            }
            let (open, idle) = pool.connections(0);
            assert_eq!(open, idle, "seed {seed:#x}: a connection's place leaked");
            // The whole cap serves at once: each of two tokens its share.
            let mut conns = Vec::new();
            for who in ["t0", "t0", "t1", "t1"] {
                let mut req = get("/0");
                *req.uri_mut() = Uri::from_static("/0");
                let (answer, conn) = pool
                    .send(0, Some(who), req, soon(1000))
                    .await
                    .ok()
                    .unwrap_or_else(|| panic!("seed {seed:#x}: the cap is not whole"));
                answer.into_body().collect().await.unwrap();
                conns.push(conn);
            }
            assert_eq!(pool.connections(0).0, CAP);
        }
    }

    #[test]
    fn targets_come_from_the_node_url() {
        let cases = [
            ("http://127.0.0.1:9200", "127.0.0.1", 9200, "plain"),
            ("http://es.local", "es.local", 80, "plain"),
            ("https://es.local", "es.local", 443, "tls"),
            ("https://es.local:9243", "es.local", 9243, "tls"),
            ("https://[::1]:9200", "::1", 9200, "tls"),
            ("https://10.0.0.1", "10.0.0.1", 443, "tls"),
            ("http://[::1]", "::1", 80, "plain"),
        ];
        for (url, host, port, security) in cases {
            let t = target(&url.parse().unwrap());
            assert_eq!((t.lookup.host(), t.lookup.port()), (host, port), "{url}");
            let got = match t.tls {
                Security::Plain => "plain",
                Security::Tls(_) => "tls",
                Security::BadName(_) => "bad",
            };
            assert_eq!(got, security, "{url}");
        }
        // An IP address is a server name of its own kind (certificates name it as such).
        match target(&"https://[::1]:9200".parse().unwrap()).tls {
            Security::Tls(ServerName::IpAddress(_)) => {}
            _ => panic!("an IPv6 node is an IP server name"),
        }
    }

    #[test]
    fn keep_alive_follows_the_answer_head() {
        let cases = [
            (http::Version::HTTP_11, None, true),
            (http::Version::HTTP_11, Some("keep-alive"), true),
            (http::Version::HTTP_11, Some("close"), false),
            (http::Version::HTTP_11, Some("Upgrade, Close"), false),
            (http::Version::HTTP_10, None, false),
            (http::Version::HTTP_10, Some("Keep-Alive"), true),
            (http::Version::HTTP_10, Some("keep-alive, close"), false),
        ];
        for (version, connection, expected) in cases {
            let mut r = Response::new(());
            *r.version_mut() = version;
            if let Some(c) = connection {
                r.headers_mut()
                    .insert(http::header::CONNECTION, c.parse().unwrap());
            }
            assert_eq!(keeps_alive(&r), expected, "{version:?} {connection:?}");
        }
    }

    #[test]
    fn a_chunk_of_parts_reads_as_their_bytes_in_order() {
        let parts = [
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
            Bytes::from_static(b"f"),
        ];
        let SendBody::Whole(Some(mut chunk)) = SendBody::parts(parts.iter()) else {
            panic!("one frame");
        };
        assert_eq!(chunk.remaining(), 6);
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        let n = chunk.chunks_vectored(&mut slices);
        let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!((n, &joined[..]), (3, &b"abcdef"[..]));
        // Fewer slots than parts: the first ones.
        let mut two = [std::io::IoSlice::new(&[]); 2];
        assert_eq!(chunk.chunks_vectored(&mut two), 2);
        // Every cut, one byte at a time and across parts.
        let mut seen = Vec::new();
        while chunk.has_remaining() {
            seen.push(chunk.chunk()[0]);
            chunk.advance(1);
            assert_eq!(chunk.remaining(), 6 - seen.len());
        }
        assert_eq!(seen, b"abcdef");
        let SendBody::Whole(Some(mut chunk)) = SendBody::parts(parts.iter()) else {
            panic!("one frame");
        };
        chunk.advance(4);
        assert_eq!((chunk.chunk(), chunk.remaining()), (&b"e"[..], 2));
        assert!(matches!(
            SendBody::parts([Bytes::new()].iter()),
            SendBody::Whole(None)
        ));
        assert!(matches!(
            SendBody::bytes(Bytes::new()),
            SendBody::Whole(None)
        ));
    }

    /// A connection's socket for hyper: keeps what is written and counts the writes, all taken
    /// whole; once a head and `expect` bytes after it are written it gives `answer` to read.
    struct Recorder {
        state: Arc<Mutex<Recorded>>,
        expect: usize,
        answer: &'static [u8],
    }

    #[derive(Default)]
    struct Recorded {
        written: Vec<u8>,
        writes: usize,
        read: bool,
        waker: Option<std::task::Waker>,
    }

    impl tokio::io::AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let mut state = self.state.lock().unwrap();
            let end = memchr::memmem::find(&state.written, b"\r\n\r\n").map(|at| at + 4);
            if end.is_none_or(|end| state.written.len() < end + self.expect) {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if !state.read {
                state.read = true;
                buf.put_slice(self.answer);
            }
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut state = self.state.lock().unwrap();
            state.writes += 1;
            let mut n = 0;
            for b in bufs {
                state.written.extend_from_slice(b);
                n += b.len();
            }
            if let Some(w) = state.waker.take() {
                w.wake();
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Writes `body` on a fresh hyper connection built as the pool builds its own; the writes
    /// it took and the bytes written.
    async fn writes_of<B>(body: B) -> (usize, Vec<u8>)
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let expect = body.size_hint().exact().unwrap() as usize;
        let state = Arc::new(Mutex::new(Recorded::default()));
        let io = Recorder {
            state: Arc::clone(&state),
            expect,
            answer: b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        };
        let mut builder = http1::Builder::new();
        builder.max_buf_size(super::super::MAX_READ_BUFFER);
        let (mut tx, connection) = builder.handshake(TokioIo::new(io)).await.unwrap();
        tokio::spawn(connection);
        let mut req = Request::new(body);
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = Uri::from_static("/logs/_search");
        req.headers_mut()
            .insert(http::header::HOST, http::HeaderValue::from_static("node"));
        let answer = tx.send_request(req).await.unwrap();
        assert_eq!(answer.status(), 200);
        let state = state.lock().unwrap();
        assert!(state
            .written
            .starts_with(b"POST /logs/_search HTTP/1.1\r\n"));
        (state.writes, state.written.clone())
    }

    /// perf20a's large forward body, esgate's text around a slice of the client's body larger
    /// than hyper's write queue: one write (it was two, the last part after a flush).
    #[tokio::test]
    async fn a_large_body_in_parts_goes_out_in_one_write() {
        let big = Bytes::from(vec![b'x'; 200 * 1024]);
        let parts = vec![
            Bytes::from_static(b"{\"query\":"),
            big,
            Bytes::from_static(b",\"size\":10}"),
        ];
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.to_vec()).collect();
        let (writes, written) = writes_of(SendBody::parts(parts.iter())).await;
        assert_eq!(writes, 1);
        assert!(written.ends_with(&joined));
        // As frames of their own (`PartsBody`), the last part waits for a second write.
        let (writes, written) = writes_of(super::super::PartsBody::new(parts)).await;
        assert_eq!(writes, 2);
        assert!(written.ends_with(&joined));
        // One block, and none: the bytes `crate::body`'s bodies gave.
        let one = writes_of(SendBody::bytes(Bytes::from(joined.clone()))).await;
        assert_eq!(one, writes_of(crate::body::full(joined.clone())).await);
        assert!(one.1.ends_with(&joined));
        let none = writes_of(SendBody::empty()).await;
        assert_eq!(none, writes_of(crate::body::empty()).await);
        assert!(none.1.ends_with(b"\r\n\r\n"));
    }
}
