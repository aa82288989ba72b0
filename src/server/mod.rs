//! Listeners: accept loops for the data and admin listeners, TLS handshakes under a timeout,
//! a connection limit per listener, HTTP/1.1 and HTTP/2 through hyper-util, graceful drain on
//! shutdown, the descriptor limit check, and esgate's background chores.
//!
//! Every connection must make progress or be closed (issue #9 item 1), each by its own timer:
//! the TLS handshake (`listen.tls.handshake_timeout`); the first request, which must start within
//! `header_timeout` of the connection (or of its handshake), before and whatever the
//! HTTP/1-vs-HTTP/2 detection; HTTP/1 headers (`header_timeout`, hyper's own timer); HTTP/2
//! PINGs unanswered for `h2_keep_alive_timeout`; and a connection with no request in flight
//! and none started or done for `idle_timeout` (`connection::Watchdog`).
//!
//! Invariant: no request logic here; requests go to `proxy::handle` or `server::admin`.

pub mod admin;
mod connection;
pub mod descriptors;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::app::App;
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
/// most the configured drain timeout) and returns.
pub async fn run(
    app: Arc<App>,
    data: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    run_with_front(app, data, admin, None, shutdown).await
}

/// [`run`], with the Kibana front's listener (`[kibana] listen`) when one is configured.
pub async fn run_with_front(
    app: Arc<App>,
    data: TcpListener,
    admin: TcpListener,
    front: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `open`; when all are gone, the drain is over.
    let (open, mut drained) = mpsc::channel::<()>(1);
    let chores = tokio::spawn(chores(Arc::clone(&app), stop_rx.clone()));
    tokio::join!(
        accept_loop(
            &app,
            data,
            app.config.server_tls.clone(),
            Role::Data,
            stop_rx.clone(),
            open.clone(),
        ),
        accept_loop(
            &app,
            admin,
            None,
            Role::Admin,
            stop_rx.clone(),
            open.clone()
        ),
        async {
            if let Some(front) = front {
                accept_loop(&app, front, None, Role::Kibana, stop_rx, open).await
            }
        },
        async {
            shutdown.await;
            tracing::info!("Shutting down: no new connections, draining in-flight requests");
            let _ = stop_tx.send(true);
        },
    );
    let _ = chores.await;
    if tokio::time::timeout(app.config.limits.drain_timeout, drained.recv())
        .await
        .is_err()
    {
        tracing::warn!("Drain timeout reached; closing the remaining connections");
    }
    if let Err(e) = app.store.flush_last_used().await {
        tracing::error!(error = %e, "Cannot persist last-used times");
    }
}

async fn accept_loop(
    app: &Arc<App>,
    listener: TcpListener,
    tls: Option<ServerTls>,
    role: Role,
    mut stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) {
    let max = match role {
        Role::Data | Role::Kibana => app.config.limits.max_connections,
        Role::Admin => app.config.limits.admin_max_connections,
    };
    let slots = Arc::new(Semaphore::new(max));
    let acceptor = tls
        .as_ref()
        .map(|t| TlsAcceptor::from(Arc::clone(&t.config)));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(app);
        let acceptor = acceptor.clone();
        let handshake_timeout = tls.as_ref().map(|t| t.handshake_timeout);
        let open = open.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = open;
            let info = ConnInfo {
                peer,
                tls: acceptor.is_some(),
            };
            match (acceptor, handshake_timeout) {
                (Some(acceptor), Some(limit)) => {
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => serve(app, tls_stream, info, role, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                }
                _ => serve(app, stream, info, role, stop).await,
            }
        });
    }
}

async fn serve<I>(app: Arc<App>, io: I, info: ConnInfo, role: Role, mut stop: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = &app.config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout)
        .max_header_list_size(limits.max_header_bytes as u32);
    let watchdog = connection::Watchdog::new(limits.header_timeout, limits.idle_timeout);
    let io = TokioIo::new(io);
    let service_app = Arc::clone(&app);
    let activity = watchdog.activity();
    let service = service_fn(move |req| {
        let app = Arc::clone(&service_app);
        let in_flight = activity.request_started();
        async move {
            let response = match role {
                Role::Data => proxy::handle(app, info, req).await,
                Role::Admin => admin::handle(app, info, req).await,
                Role::Kibana => crate::kibana::front::handle(app, info, req).await,
            };
            // The request counts as in flight until its answer's body is done.
            Ok::<_, std::convert::Infallible>(in_flight.hold_until_sent(response))
        }
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    let mut hard_deadline: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(peer = %info.peer, error = %e, "Connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
                // The drain timeout of `run` bounds what follows.
            }
            verdict = watchdog.expired(), if hard_deadline.is_none() => {
                match verdict {
                    connection::Expired::NoRequest => {
                        tracing::debug!(peer = %info.peer, "Connection closed: no request in time");
                        return;
                    }
                    connection::Expired::Idle => {
                        tracing::debug!(peer = %info.peer, "Connection closed: idle");
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                        hard_deadline = Some(tokio::time::Instant::now() + IDLE_CLOSE_GRACE);
                    }
                }
            }
            _ = sleep_until_opt(hard_deadline) => return,
        }
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

/// Periodic work: persisting last-used times, deleting tokens expired for more than five
/// minutes, forgetting old authentication failures.
async fn chores(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        n += 1;
        if let Err(e) = crate::admin::sweep_expired(&app.store, crate::time::now()).await {
            tracing::error!(error = %e, "Cannot delete expired tokens");
        }
        if n.is_multiple_of(6) {
            if let Err(e) = app.store.flush_last_used().await {
                tracing::error!(error = %e, "Cannot persist last-used times");
            }
            app.limiter.sweep(std::time::Instant::now());
            app.admin_limiter.sweep(std::time::Instant::now());
        }
    }
}
