//! A server on 127.0.0.1:0 with its own thread and tokio runtime, independent of the test's
//! runtime flavour; the base of the in-process fakes (`faults`, `recording`). Its thread is a
//! `ServerThread`, which a fake binding its own socket (`faults::Unanswered`) runs on directly.
//!
//! Invariant: dropping the handle stops the accept loop and drops the runtime, which cancels
//! every connection task and closes its socket, before `drop` returns.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct LocalServer {
    pub addr: SocketAddr,
    _thread: ServerThread,
}

impl LocalServer {
    /// Binds 127.0.0.1:0 and runs `serve(listener)` on a thread of its own until dropped.
    pub fn start<F, Fut>(serve: F) -> LocalServer
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 works in tests");
        std_listener
            .set_nonblocking(true)
            .expect("a listener can be made non-blocking");
        let addr = std_listener
            .local_addr()
            .expect("a bound listener has an address");
        let thread = ServerThread::spawn(move |stop| async move {
            let listener = TcpListener::from_std(std_listener)
                .expect("a non-blocking std listener converts to tokio");
            tokio::select! {
                _ = stop => {}
                _ = serve(listener) => {}
            }
        });
        LocalServer {
            addr,
            _thread: thread,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A thread running a future on a current-thread tokio runtime of its own. Dropping the handle
/// sends the future its stop signal and joins the thread, which drops the runtime (cancelling
/// every task it spawned and closing their sockets) before `drop` returns.
pub struct ServerThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `run(stop)` on a new thread until it returns; `stop` resolves once the handle is
    /// dropped, and `run` is to return then.
    pub fn spawn<F, Fut>(run: F) -> ServerThread
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread tokio runtime can always be built in tests");
            rt.block_on(run(rx));
        });
        ServerThread {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
