//! Listeners: accept loops for the data and admin listeners, TLS handshakes under a timeout,
//! a connection limit, HTTP/1.1 and HTTP/2 through hyper-util, graceful drain on shutdown,
//! and esgate's background chores.
//!
//! Invariant: no request logic here; requests go to `proxy::handle` or `server::admin`.

pub mod admin;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::config::ServerTls;
use crate::proxy::{self, ConnInfo};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Data,
    Admin,
}

/// Serves both listeners until `shutdown` resolves, then drains in-flight requests (for at
/// most the configured drain timeout) and returns.
pub async fn run(
    app: Arc<App>,
    data: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let graceful = GracefulShutdown::new();
    let chores = tokio::spawn(chores(Arc::clone(&app), stop_rx.clone()));
    tokio::join!(
        accept_loop(
            &app,
            data,
            app.config.server_tls.clone(),
            Role::Data,
            stop_rx.clone(),
            &graceful
        ),
        accept_loop(&app, admin, None, Role::Admin, stop_rx, &graceful),
        async {
            shutdown.await;
            tracing::info!("Shutting down: no new connections, draining in-flight requests");
            let _ = stop_tx.send(true);
        },
    );
    let _ = chores.await;
    if tokio::time::timeout(app.config.limits.drain_timeout, graceful.shutdown())
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
    graceful: &GracefulShutdown,
) {
    let slots = Arc::new(Semaphore::new(app.config.limits.max_connections));
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
        let graceful = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let info = ConnInfo {
                peer,
                tls: acceptor.is_some(),
            };
            match (acceptor, handshake_timeout) {
                (Some(acceptor), Some(limit)) => {
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve(app, TokioIo::new(tls_stream), info, role, graceful).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                }
                _ => serve(app, TokioIo::new(stream), info, role, graceful).await,
            }
        });
    }
}

async fn serve<I>(app: Arc<App>, io: TokioIo<I>, info: ConnInfo, role: Role, graceful: Watcher)
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
        .max_header_list_size(limits.max_header_bytes as u32);
    let service_app = Arc::clone(&app);
    let service = service_fn(move |req| {
        let app = Arc::clone(&service_app);
        async move {
            Ok::<_, std::convert::Infallible>(match role {
                Role::Data => proxy::handle(app, info, req).await,
                Role::Admin => admin::handle(app, info, req).await,
            })
        }
    });
    let conn = builder.serve_connection(io, service);
    if let Err(e) = graceful.watch(conn).await {
        tracing::debug!(peer = %info.peer, error = %e, "Connection ended with an error");
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
        }
    }
}
