//! A server on 127.0.0.1:0 with its own thread and tokio runtime, independent of the test's
//! runtime flavour; the base of the in-process fakes (`faults`, `recording`).
//!
//! Invariant: dropping the handle stops the accept loop and drops the runtime, which cancels
//! every connection task and closes its socket, before `drop` returns.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct LocalServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
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
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread tokio runtime can always be built in tests");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener)
                    .expect("a non-blocking std listener converts to tokio");
                tokio::select! {
                    _ = rx => {}
                    _ = serve(listener) => {}
                }
            });
        });
        LocalServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
