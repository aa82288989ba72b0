//! Listeners: accept loops for the data and admin listeners, the data connections handed to
//! the worker threads (`workers`), TLS handshakes under a timeout, a connection limit per
//! listener, HTTP/1.1 and HTTP/2 through hyper (`rewind`: which one a connection speaks),
//! graceful drain on shutdown, the descriptor limit check, and esgate's background chores.
//!
//! Every connection must make progress or be closed (issue #9 item 1), each by its own timer:
//! the TLS handshake (`listen.tls.handshake_timeout`); the first request, which must start within
//! `header_timeout` of the connection (or of its handshake), before and whatever the
//! HTTP/1-vs-HTTP/2 detection; HTTP/1 headers (`header_timeout`, hyper's own rule, on one timer
//! entry a connection: `head_timer`); HTTP/2 PINGs unanswered for `h2_keep_alive_timeout`; and a
//! connection with no request in flight and none started or done for `idle_timeout`
//! (`connection::Watchdog`).
//!
//! Invariant: no request logic here; requests go to `proxy::handle` or `server::admin` (which
//! hands `/ui/` to `server::ui`, the admin web page's embedded files).

pub mod admin;
mod connection;
pub mod descriptors;
mod head_timer;
mod per_ip;
mod rewind;
mod streams;
mod tls_io;
pub mod ui;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::app::{App, Live};
use crate::config::ServerTls;
use crate::proxy::{self, ConnInfo};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Data,
    Admin,
    /// The Kibana front for share links (`crate::kibana::front`).
    Kibana,
}

/// Serves both listeners until `shutdown` resolves, then drains in-flight requests (for at
/// most the configured drain timeout) and returns. The data listener's connections are served
/// by `listen.workers` worker threads (`workers`); the caller's runtime accepts and serves the
/// admin listener, the Kibana front and the background work.
pub async fn run(
    app: Arc<App>,
    data: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    run_live(Arc::new(Live::new(app)), data, admin, None, shutdown).await
}

/// [`run`] with the `App` behind a reload handle (each connection reads the TLS material and
/// connection settings from the `App` current when it is accepted, each request the `App`
/// current when it starts: `Live::load`), and the Kibana front's listener (`[kibana] listen`)
/// when one is configured.
pub async fn run_live(
    live: Arc<Live>,
    data: TcpListener,
    admin: TcpListener,
    front: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `open`; when all are gone, the drain is over.
    let (open, mut drained) = mpsc::channel::<()>(1);
    let chores = tokio::spawn(chores(Arc::clone(&live), stop_rx.clone()));
    let poller = tokio::spawn(poll_store(Arc::clone(&live), stop_rx.clone()));
    let limits = live.load().config.limits.clone();
    let workers = workers::Workers::start(&live, &stop_rx, &open);
    // The data listener and the Kibana front share `listen.max_connections` places: the
    // descriptor budget (`descriptors::needed`) counts them once (attack19a: the front had as
    // many of its own, uncounted, for any client to fill, link or not).
    let places = Arc::new(Semaphore::new(limits.max_connections));
    // And one table of `listen.max_connections_per_ip`: an address holds that many connections
    // on the two together, not that many on each (attack19a).
    let per_ip = per_ip::PerIp::new(limits.max_connections_per_ip);
    tokio::join!(
        accept_loop(
            &live,
            data,
            Role::Data,
            Arc::clone(&places),
            per_ip.clone(),
            stop_rx.clone(),
            open.clone(),
            &workers,
        ),
        accept_loop(
            &live,
            admin,
            Role::Admin,
            Arc::new(Semaphore::new(limits.admin_max_connections)),
            None,
            stop_rx.clone(),
            open.clone(),
            &workers,
        ),
        async {
            if let Some(front) = front {
                accept_loop(
                    &live,
                    front,
                    Role::Kibana,
                    places,
                    per_ip,
                    stop_rx,
                    open,
                    &workers,
                )
                .await
            }
        },
        async {
            shutdown.await;
            tracing::info!("Shutting down: no new connections, draining in-flight requests");
            let _ = stop_tx.send(true);
        },
    );
    let _ = chores.await;
    let _ = poller.await;
    let app = live.load();
    // The other workers serve their connections until the drain is over.
    let drain_timeout = app.config.limits.drain_timeout;
    workers
        .finish(async {
            if tokio::time::timeout(drain_timeout, drained.recv())
                .await
                .is_err()
            {
                tracing::warn!("Drain timeout reached; closing the remaining connections");
            }
        })
        .await;
    if let Err(e) = app.store.flush_last_used().await {
        tracing::error!(error = %e, "Cannot persist last-used times");
    }
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Data => "data",
            Role::Admin => "admin",
            Role::Kibana => "kibana",
        }
    }
}

/// How long an accept loop waits after a failed `accept` before it tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// How long accepting must have worked without a failure before a run of failures is over
/// (logged as such): out of descriptors, each connection that ends frees one, so an `accept`
/// now and then succeeds between failures, and that must not log every time.
const ACCEPT_CALM: Duration = Duration::from_secs(2);

/// An accept loop's run of failed `accept`s (out of file descriptors, out of memory): each is
/// counted (`esgate_accept_errors`) and followed by an `ACCEPT_RETRY` pause (no busy loop), the
/// connections waiting meanwhile in the listen queue; a run is logged once when it starts and
/// once when it ends, at an `accept` `ACCEPT_CALM` after its last failure (rel19: a warning
/// every 50 ms per listener flooded the log).
#[derive(Default)]
struct AcceptFailures {
    /// Failures in the current run, when it started and when its last failure was.
    run: Option<(u64, std::time::Instant, std::time::Instant)>,
}

impl AcceptFailures {
    fn failed(&mut self, role: Role, error: &std::io::Error, metrics: &crate::metrics::Metrics) {
        metrics.accept_error();
        let now = std::time::Instant::now();
        match &mut self.run {
            Some((n, _, last)) => {
                *n += 1;
                *last = now;
            }
            None => {
                tracing::error!(
                    listener = role.name(),
                    error = %error,
                    "Cannot accept connections (they wait in the listen queue); retrying every 50 ms, counted in esgate_accept_errors, logged again when accepting works"
                );
                self.run = Some((1, now, now));
            }
        }
    }

    fn accepted(&mut self, role: Role) {
        if let Some((n, since, last)) = self.run {
            if last.elapsed() >= ACCEPT_CALM {
                self.run = None;
                tracing::warn!(
                    listener = role.name(),
                    failures = n,
                    seconds = since.elapsed().as_secs(),
                    "Accepting connections again"
                );
            }
        }
    }
}

/// A connection's place under its listener's limit and, with `listen.max_connections_per_ip`,
/// under its client address's (`per_ip`), held until it ends.
type Place = (OwnedSemaphorePermit, Option<per_ip::Guard>);

/// Accepts connections on `listener` under its connection limit (`slots`) until `stop`; a data
/// connection goes to the least loaded of the `workers`, the others are served here. With a
/// `per_ip` table (the data listener and the Kibana front share one), an address past
/// `listen.max_connections_per_ip` has its connection closed at once.
#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    live: &Arc<Live>,
    listener: TcpListener,
    role: Role,
    slots: Arc<Semaphore>,
    per_ip: Option<Arc<per_ip::PerIp>>,
    mut stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
    workers: &workers::Workers,
) {
    let over = workers.over();
    let mut failures = AcceptFailures::default();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    failures.accepted(role);
                    a
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    failures.failed(role, &e, &live.load().metrics);
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let address = match &per_ip {
            None => None,
            Some(table) => {
                let app = live.load();
                if crate::policy::client_ip::in_cidrs(peer.ip(), &app.config.auth.trusted_proxies) {
                    None
                } else if let Some(place) = table.enter(peer.ip()) {
                    Some(place)
                } else {
                    tracing::debug!(peer = %peer, "Connection closed: listen.max_connections_per_ip reached for its address");
                    app.metrics
                        .rejected(crate::metrics::Rejected::ConnectionsPerIp);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = workers::Accepted {
            stream,
            peer,
            permit: (permit, address),
        };
        let (conn, load) = match role {
            Role::Admin | Role::Kibana => (conn, None),
            Role::Data => match workers.dispatch(conn) {
                Some((conn, load)) => (conn, Some(load)),
                None => continue,
            },
        };
        spawn_connection(
            Arc::clone(live),
            conn,
            role,
            stop.clone(),
            open.clone(),
            load,
            Some(over.clone()),
        );
    }
}

/// Serves an accepted connection in a task of the caller's runtime (TLS handshake first on the
/// data listener when it has TLS), holding its place under the listener's limit, its hold on
/// the drain (`open`) and its worker's `load` until it ends, or until `over`
/// (`Workers::over`: the drain timed out) on the main thread, whose runtime outlives the drain.
fn spawn_connection(
    live: Arc<Live>,
    conn: workers::Accepted,
    role: Role,
    stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
    load: Option<workers::Load>,
    over: Option<watch::Receiver<bool>>,
) {
    let workers::Accepted {
        stream,
        peer,
        permit,
    } = conn;
    // The TLS material is the current App's (a reload may have replaced the certificate).
    let tls: Option<ServerTls> = match role {
        Role::Data => live.load().config.server_tls.clone(),
        Role::Admin | Role::Kibana => None,
    };
    let acceptor = tls
        .as_ref()
        .map(|t| TlsAcceptor::from(Arc::clone(&t.config)));
    let handshake_timeout = tls.as_ref().map(|t| t.handshake_timeout);
    // The places an HTTP/2 connection's streams beyond its first take (`streams`): those of
    // `listen.max_connections`, the data listener's and the Kibana front's.
    let places = match role {
        Role::Data | Role::Kibana => Some(streams::Limits {
            places: Arc::clone(permit.0.semaphore()),
            address: permit.1.as_ref().map(per_ip::Guard::address),
        }),
        Role::Admin => None,
    };
    let served = async move {
        let info = ConnInfo {
            peer,
            tls: acceptor.is_some(),
        };
        match (acceptor, handshake_timeout) {
            (Some(acceptor), Some(limit)) => {
                match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let known = Http::from_alpn(tls_stream.get_ref().1.alpn_protocol());
                        serve(
                            live,
                            tls_io::TlsIo::new(tls_stream),
                            known,
                            info,
                            role,
                            places,
                            stop,
                        )
                        .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                }
            }
            _ => serve(live, stream, None, info, role, places, stop).await,
        }
    };
    match over {
        // Another worker's: its runtime ends with the drain.
        None => {
            tokio::spawn(async move {
                let _held = (permit, open, load);
                served.await
            });
        }
        Some(mut over) => {
            tokio::spawn(async move {
                let _held = (permit, open, load);
                tokio::select! {
                    () = served => {}
                    _ = over.wait_for(|over| *over) => {
                        tracing::debug!(peer = %peer, "Connection closed: the drain is over");
                    }
                }
            });
        }
    }
}

/// How many bytes hyper reads from an HTTP/1 connection at most at once, into a buffer it keeps
/// for the connection (request heads are capped apart, at `listen.max_header_bytes`, by hyper's
/// `max_header_size`); hyper also queues up to this much of an answer for a client that reads
/// slowly. perf19: reads of 16 KiB (the head cap, which hyper-util's `auto::Builder` made the
/// buffer's size) took 14 `recvfrom` calls for a 200 KB body. What a flood of connections can
/// make it hold: docs/configuration.md, `listen.max_header_bytes`.
pub(crate) const H1_READ_BUF: usize = 64 * 1024;

/// The most hyper reads from an HTTP/1 connection at once with a head cap of
/// `max_header_bytes` (its `max_buf_size`: `H1_READ_BUF`, or the head cap if larger).
pub(crate) fn h1_read_buffer(max_header_bytes: usize) -> usize {
    H1_READ_BUF.max(max_header_bytes)
}

/// HTTP/2's flow-control windows, announced to the client: the bytes of request bodies it may
/// send on one stream, and on the whole connection, before esgate has read them. hyper keeps
/// what arrived unread outside `listen.max_buffered_bytes`, so the connection window bounds
/// what a connection holds beyond the budget when esgate is not reading (the budget full, a
/// relayed body waiting for the backend): hyper's default is 1 MiB, against HTTP/1's 64 KiB
/// read buffer (rel20b: 2,000 connections, each with one upload sent as far as the windows
/// let it and stalled, 2.20 GiB resident with 1 MiB, 1.11 GiB with 256 KiB; BENCHMARKS.md,
/// "Session 20: HTTP/2 memory (rel20b)"). 256 KiB for both: one stream may
/// use the whole connection's window (an upload of one request is as fast as the connection
/// allows), at 256 KiB a round trip (25 MB/s at 10 ms; docs/configuration.md,
/// `listen.h2_max_concurrent_streams`). Fixed: hyper's adaptive window (off) grows up to 16 MiB
/// for a client that sends fast.
const H2_WINDOW: u32 = 256 * 1024;

/// HTTP/2: the bytes of one stream's answer hyper queues beyond what the client's window lets
/// it send (hyper's default 400 KiB, per stream: up to 100 of them on a connection that reads
/// nothing; rel20b: 2,000 unread 4 MB answers, 128 of them under way, 116 MiB resident with
/// 400 KiB, 66 MiB with 64 KiB); HTTP/1 queues up to `H1_READ_BUF`.
const H2_SEND_BUF: usize = 64 * 1024;

/// Which HTTP a connection speaks, when its TLS handshake said (ALPN).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Http {
    One,
    Two,
}

impl Http {
    /// The protocol the TLS handshake agreed on; `None` when it agreed on none (the client
    /// offered no ALPN), where the client's first bytes decide, as on plaintext.
    fn from_alpn(alpn: Option<&[u8]>) -> Option<Http> {
        match alpn {
            Some(b"h2") => Some(Http::Two),
            Some(_) => Some(Http::One),
            None => None,
        }
    }
}

/// Serves a connection, HTTP/1 or HTTP/2; with `places` (the data listener's and the Kibana
/// front's), an HTTP/2 connection's streams beyond its first take places of them (`streams`).
async fn serve<I>(
    live: Arc<Live>,
    io: I,
    known: Option<Http>,
    info: ConnInfo,
    role: Role,
    places: Option<streams::Limits>,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Connection settings are those current when the connection is accepted (not the App
    // itself: a long kept-alive connection must not hold a replaced App).
    let limits = live.load().config.limits.clone();
    let limits = &limits;
    let watchdog = connection::Watchdog::new(limits.header_timeout, limits.idle_timeout);
    let mut io = rewind::Rewind::new(io);
    // HTTP/1 or HTTP/2: the TLS handshake's word, else the client's first bytes, which must
    // come within the first request's time like the rest of it (the watchdog).
    let http = match known {
        Some(http) => http,
        None => {
            let sniffed = tokio::select! {
                sniffed = io.sniff() => sniffed,
                _ = stop.changed() => return,
                _ = watchdog.expired() => {
                    tracing::debug!(peer = %info.peer, "Connection closed: no request in time");
                    return;
                }
            };
            match sniffed {
                Ok(true) => Http::Two,
                Ok(false) => Http::One,
                Err(e) => {
                    tracing::debug!(peer = %info.peer, error = %e, "Connection ended with an error");
                    return;
                }
            }
        }
    };
    let io = TokioIo::new(io);
    let activity = watchdog.activity();
    // HTTP/1 requests never touch the places: one at a time, on the connection's own.
    let streams = match http {
        Http::Two => places.map(streams::Streams::new),
        Http::One => None,
    };
    let service = service_fn(move |req| {
        // Once per request: the whole request runs on the App current when it started.
        let app = live.load();
        let in_flight = activity.request_started();
        let place = streams.as_ref().map(streams::Streams::enter);
        async move {
            let place = match place {
                None => None,
                Some(Ok(place)) => Some(place),
                // Answered at once, nothing of it processed (its body unread).
                Some(Err(full)) => {
                    drop(req);
                    let (limit, rejected) = match full {
                        streams::Full::Places => (
                            "listen.max_connections",
                            crate::metrics::Rejected::Connections,
                        ),
                        streams::Full::Address => (
                            "listen.max_connections_per_ip",
                            crate::metrics::Rejected::ConnectionsPerIp,
                        ),
                    };
                    tracing::debug!(peer = %info.peer, limit, "HTTP/2 stream refused: no place free");
                    app.metrics.rejected(rejected);
                    let response = crate::error::ProxyError::Connections.into_response();
                    return Ok(in_flight.hold_until_sent(response, None));
                }
            };
            let response = match role {
                Role::Data => proxy::handle(app, info, req).await,
                // Boxed: their state is larger than the data path's, and this future is
                // moved as a whole on every data request (issue 10).
                Role::Admin => Box::pin(admin::handle(app, info, req)).await,
                Role::Kibana => Box::pin(crate::kibana::front::handle(app, info, req)).await,
            };
            // The request counts as in flight until its answer's body is done.
            Ok::<_, std::convert::Infallible>(in_flight.hold_until_sent(response, place))
        }
    });
    // No `with_upgrades`: upgrades are refused (HTTP/2's extended CONNECT is off by default).
    match http {
        Http::One => {
            let conn = http1::Builder::new()
                // One timer entry for the connection's head reads, not one a request.
                .timer(head_timer::HeadTimer::default())
                .header_read_timeout(limits.header_timeout)
                // The head's cap, checked as it is read (431) ...
                .max_header_size(limits.max_header_bytes)
                // ... and the reads, bodies' included, bigger.
                .max_buf_size(h1_read_buffer(limits.max_header_bytes))
                .serve_connection(io, service);
            drive(conn, |c| c.graceful_shutdown(), &watchdog, info, stop).await
        }
        Http::Two => {
            let conn = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(limits.h2_keep_alive_interval)
                .keep_alive_timeout(limits.h2_keep_alive_timeout)
                // Each stream is a request that may hold a backend connection (rel16: hyper's
                // default of 200 let one client connection hold 200).
                .max_concurrent_streams(limits.h2_max_concurrent_streams)
                .max_header_list_size(limits.max_header_bytes as u32)
                .initial_stream_window_size(H2_WINDOW)
                .initial_connection_window_size(H2_WINDOW)
                .max_send_buf_size(H2_SEND_BUF)
                .serve_connection(io, service);
            drive(conn, |c| c.graceful_shutdown(), &watchdog, info, stop).await
        }
    }
}

/// Runs a connection to its end, closing it gracefully on shutdown and when the watchdog
/// finds it idle, at once when it started no request in time or its answer goes unread.
///
/// The shutdown signal, the watchdog and the hard deadline are polled only when one of them
/// woke the connection's task ([`WokenOnly`]), not on every wake-up hyper's I/O makes (session
/// 23: polling the three on each of a request's wake-ups was about 900 instructions a request,
/// 1.4% of a relayed one). Each of them is parked on its waker until it can be ready (the
/// watchdog reads the connection's activity only once its timer fired), so skipping a poll
/// they did not ask for changes nothing they decide.
async fn drive<C>(
    conn: C,
    graceful_shutdown: impl Fn(std::pin::Pin<&mut C>),
    watchdog: &connection::Watchdog,
    info: ConnInfo,
    mut stop: watch::Receiver<bool>,
) where
    C: Future<Output = hyper::Result<()>>,
{
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    let mut hard_deadline: Option<tokio::time::Instant> = None;
    let gate = Gate::new();
    loop {
        let (closing_now, deadline) = (closing, hard_deadline);
        let stop = &mut stop;
        let others = std::pin::pin!(async move {
            tokio::select! {
                _ = stop.changed(), if !closing_now => Event::Stop,
                verdict = watchdog.expired(), if deadline.is_none() => Event::Verdict(verdict),
                _ = sleep_until_opt(deadline) => Event::HardDeadline,
            }
        });
        let event = tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(peer = %info.peer, error = %e, "Connection ended with an error");
                }
                return;
            }
            event = gate.poll_when_woken(others) => event,
        };
        match event {
            Event::Stop => {
                closing = true;
                graceful_shutdown(conn.as_mut());
                // The drain timeout of `run` bounds what follows.
            }
            Event::Verdict(connection::Expired::NoRequest) => {
                tracing::debug!(peer = %info.peer, "Connection closed: no request in time");
                return;
            }
            Event::Verdict(connection::Expired::Unread) => {
                tracing::debug!(peer = %info.peer, "Connection closed: its answer was not read");
                return;
            }
            Event::Verdict(connection::Expired::Idle) => {
                tracing::debug!(peer = %info.peer, "Connection closed: idle");
                closing = true;
                graceful_shutdown(conn.as_mut());
                hard_deadline = Some(tokio::time::Instant::now() + IDLE_CLOSE_GRACE);
            }
            Event::HardDeadline => return,
        }
    }
}

/// What ends or closes a connection besides its own end (`drive`).
enum Event {
    /// The server shuts down (or its signal's sender is gone).
    Stop,
    Verdict(connection::Expired),
    /// An idle connection told to close did not within `IDLE_CLOSE_GRACE`.
    HardDeadline,
}

/// Whether a future a task waits on woke it: a waker of its own, which notes the wake-up and
/// passes it on to the task's.
struct Woken {
    woke: std::sync::atomic::AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl std::task::Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woke.store(true, std::sync::atomic::Ordering::Release);
        self.task.wake();
    }
}

/// Polls a future only when it woke the task (or has never been polled), however often the
/// task is woken by the other futures it waits on: a future that returned `Pending` has
/// arranged to wake its task when it can make progress, so a poll it did not ask for finds it
/// where it was. Made once per connection.
struct Gate {
    woken: Arc<Woken>,
    waker: std::task::Waker,
}

impl Gate {
    fn new() -> Gate {
        let woken = Arc::new(Woken {
            woke: std::sync::atomic::AtomicBool::new(false),
            task: futures_util::task::AtomicWaker::new(),
        });
        let waker = std::task::Waker::from(Arc::clone(&woken));
        Gate { woken, waker }
    }

    /// `future`, polled through this gate; the first poll always reaches it.
    fn poll_when_woken<F: Future + Unpin>(&self, future: F) -> WokenOnly<'_, F> {
        WokenOnly {
            future,
            gate: self,
            first: true,
        }
    }
}

/// A future [`Gate::poll_when_woken`] polls only when it woke its task.
struct WokenOnly<'a, F> {
    future: F,
    gate: &'a Gate,
    first: bool,
}

impl<F: Future + Unpin> Future for WokenOnly<'_, F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = &mut *self;
        // The task's waker first: a wake-up after the look below reaches the task.
        this.gate.woken.task.register(cx.waker());
        let woke = this
            .gate
            .woken
            .woke
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        if !std::mem::take(&mut this.first) && !woke {
            return std::task::Poll::Pending;
        }
        let mut own = std::task::Context::from_waker(&this.gate.waker);
        std::pin::Pin::new(&mut this.future).poll(&mut own)
    }
}

/// An idle connection told to close (HTTP/2 GOAWAY) is dropped after this long at the latest.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The cluster store's change poll (`store.poll_interval`): other replicas' changes become
/// visible here within one interval. While the cluster is away, the last good copy keeps
/// serving and the poll keeps trying; it catches up when the cluster answers again.
async fn poll_store(live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    // The store is restart-only: a reload keeps its kind and interval.
    let crate::config::StoreKind::Elasticsearch {
        poll_interval,
        tombstone_retention,
        ..
    } = live.load().config.store
    else {
        return;
    };
    let mut tick = tokio::time::interval(poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Tombstones are purged a few times per retention (each replica on its own: a purge
    // deletes only the versions it read, so replicas racing on one do no harm). A round pages
    // through every tombstone: it runs beside the poll (one at a time), so changes, a
    // revocation included, keep arriving every interval while it does.
    let purge_every = crate::store::cluster::purge_every(tombstone_retention);
    let mut purged_at = std::time::Instant::now();
    let mut purge: Option<tokio::task::JoinHandle<()>> = None;
    // The sweep reads every record again (those that landed behind the poll's floor); it pages
    // through the store, so it too runs beside the poll. One also comes soon after each load
    // (`Store::sweep_due`).
    let sweep_every = poll_interval * crate::store::cluster::SWEEP_EVERY;
    let mut swept_at = std::time::Instant::now();
    let mut sweep: Option<tokio::task::JoinHandle<()>> = None;
    // The settle window's re-read (every few polls) pages through the recent `seq`s' records:
    // seconds for a bulk of many records under one `seq`. It too runs beside the poll, so
    // changes keep arriving every interval and admin writes do not wait for it.
    let mut window: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {
                for round in [purge, sweep, window].into_iter().flatten() {
                    round.abort();
                }
                return;
            }
        }
        let app = live.load();
        match app.store.poll().await {
            Ok(n) if n > 0 => tracing::debug!(changes = n, "Picked up token store changes"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "Token store poll failed"),
        }
        let idle = window.as_ref().is_none_or(|round| round.is_finished());
        if idle && app.store.window_due() {
            let app = Arc::clone(&app);
            window = Some(tokio::spawn(async move {
                match app.store.settle_window().await {
                    Ok(n) if n > 0 => tracing::debug!(
                        changes = n,
                        "Token store settle window re-read picked up changes"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "Token store settle window re-read failed")
                    }
                }
            }));
        }
        let idle = sweep.as_ref().is_none_or(|round| round.is_finished());
        if idle && (swept_at.elapsed() >= sweep_every || app.store.sweep_due()) {
            swept_at = std::time::Instant::now();
            let app = Arc::clone(&app);
            sweep = Some(tokio::spawn(async move {
                match app.store.sweep().await {
                    Ok(n) if n > 0 => tracing::info!(
                        changes = n,
                        "Token store sweep picked up changes the poll had missed"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "Token store sweep failed"),
                }
            }));
        }
        let idle = purge.as_ref().is_none_or(|round| round.is_finished());
        if idle && purged_at.elapsed() >= purge_every {
            purged_at = std::time::Instant::now();
            purge = Some(tokio::spawn(async move {
                match app.store.purge_tombstones().await {
                    Ok(n) if n > 0 => tracing::info!(
                        purged = n,
                        "Purged token store tombstones older than store.tombstone_retention"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "Token store tombstone purge failed"),
                }
            }));
        }
    }
}

/// A chore's run of failures (a full or read-only store disk fails every round, every 5 or
/// 30 s): logged once when it starts and once when the chore works again, not every round.
#[derive(Default)]
struct Streak {
    failures: u64,
}

impl Streak {
    /// Accounts for a round's outcome; whether it was logged.
    fn outcome<E: std::fmt::Display>(
        &mut self,
        result: Result<(), E>,
        failed: &str,
        again: &str,
    ) -> bool {
        match result {
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 {
                    tracing::error!(error = %e, "{failed}; logged again when it works");
                }
                self.failures == 1
            }
            Ok(()) if self.failures > 0 => {
                tracing::warn!(rounds_failed = self.failures, "{again}");
                self.failures = 0;
                true
            }
            Ok(()) => false,
        }
    }
}

/// Periodic work: persisting last-used times, deleting tokens expired for more than five
/// minutes, forgetting old authentication failures and the limiter state of resting tokens.
async fn chores(live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut n: u64 = 0;
    let (mut sweeping, mut flushing) = (Streak::default(), Streak::default());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        n += 1;
        let app = live.load();
        let swept = crate::admin::sweep_expired(&app.store, crate::time::now())
            .await
            .map(drop);
        sweeping.outcome(
            swept,
            "Cannot delete expired tokens",
            "Deleting expired tokens works again",
        );
        if n.is_multiple_of(6) {
            flushing.outcome(
                app.store.flush_last_used().await,
                "Cannot persist last-used times",
                "Persisting last-used times works again",
            );
            app.limiter.sweep(std::time::Instant::now());
            app.admin_limiter.sweep(std::time::Instant::now());
        }
        // Rate and concurrency state of deleted or resting tokens, and their open scrolls, points
        // in time and running async searches.
        let snapshot = app.store.snapshot();
        app.throttle
            .sweep(std::time::Instant::now(), |id| snapshot.token(id).is_some());
        for held in [&app.scrolls, &app.pits, &app.async_searches] {
            held.sweep(std::time::Instant::now(), |id| snapshot.token(id).is_some());
        }
    }
}

#[cfg(test)]
mod streak_tests {
    use super::Streak;

    /// rel19: a chore failing every round (a full store disk) logged every round.
    #[test]
    fn a_run_of_failures_is_logged_at_its_start_and_end_only() {
        let mut s = Streak::default();
        let logged: Vec<bool> = [
            Err("full"),
            Err("full"),
            Err("full"),
            Ok(()),
            Ok(()),
            Err("full"),
        ]
        .into_iter()
        .map(|r| s.outcome(r, "failed", "again"))
        .collect();
        assert_eq!(logged, [true, false, false, true, false, true]);
    }
}

#[cfg(test)]
mod gate_tests {
    use super::Gate;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};

    /// A future that counts its polls, keeps the last waker it was given and is ready once
    /// `ready` is set.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        ready: std::sync::atomic::AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    struct Polled<'a>(&'a Probe);

    impl Future for Polled<'_> {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.fetch_add(1, Ordering::SeqCst);
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.0.ready.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[derive(Default)]
    struct TaskWakes(AtomicUsize);

    impl Wake for TaskWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Session 23 (`drive`): the gated future is polled on its first poll and after it woke the
    /// task, never for another's wake-up; its wake-ups reach the task; it is not ready before
    /// it says so, nor missed once it is.
    #[test]
    fn a_gated_future_is_polled_only_when_it_woke_the_task() {
        let probe = Probe::default();
        let task = Arc::new(TaskWakes::default());
        let task_waker = Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&task_waker);
        let gate = Gate::new();
        let mut gated = std::pin::pin!(gate.poll_when_woken(Polled(&probe)));

        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            probe.polls.load(Ordering::SeqCst),
            1,
            "the first poll reaches it"
        );
        // The task woken by others (hyper's I/O): the future is not polled again.
        for _ in 0..5 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);

        // It wakes (not ready yet: a spurious or budget wake-up): the task hears of it, and the
        // next poll reaches it, once.
        probe.waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "its wake-up reaches the task"
        );
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);

        // Ready, and it wakes: the next poll finds it ready.
        probe.ready.store(true, Ordering::SeqCst);
        assert!(
            gated.as_mut().poll(&mut cx).is_pending(),
            "not polled unwoken"
        );
        probe.waker.lock().unwrap().take().unwrap().wake_by_ref();
        assert_eq!(task.0.load(Ordering::SeqCst), 2);
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 3);

        // A second future through the same gate is polled at once, whatever the first left.
        let other = Probe::default();
        let mut second = std::pin::pin!(gate.poll_when_woken(Polled(&other)));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(other.polls.load(Ordering::SeqCst), 1);
    }
}
