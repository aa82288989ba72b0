//! The data listener's workers (issue 10): `listen.workers` threads, each running its own
//! current-thread tokio runtime, like nginx's worker processes. The accept loop (on the main
//! thread) hands each new connection to the worker serving the fewest; the connection then
//! stays on that thread with everything its requests spawn, and each thread keeps its own
//! backend connections (`upstream::pool` shards its idle connections by [`current`]), so a
//! request never wakes another thread.
//!
//! Why not tokio's multi-thread scheduler: in issue 10's pinned layout (one core) the same
//! code served a small GET for 18.9 us of CPU instead of 25.3 us, a 2 KB search for 26.6
//! instead of 37.7 us (BENCHMARKS.md, session 14); with two workers it also woke its idle
//! worker for about every task it scheduled (a futex call, an inter-processor interrupt in a
//! VM). The price: one connection's requests are served by one core (an HTTP/2 client's
//! streams too), as in nginx.
//!
//! The main thread (index 0) is the control plane, as nginx's master process: it accepts on
//! every listener and serves the admin listener, the Kibana front and the background work (the
//! token store's poll, purge and sweep, the chores, reloads), so none of it waits behind data
//! requests, and no data request behind it. It serves a data connection only when no worker
//! thread can. Everything the workers share (the
//! serving `App`, the store's snapshot, limiters, metrics, the audit writer, the connection
//! limit) is thread-safe; what is per worker is only an optimisation, never needed for
//! correctness.

use std::cell::Cell;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::app::Live;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The worker running the caller: 1 to `listen.workers` on the worker threads, 0 on the main
/// thread and on any thread that is not a worker.
pub fn current() -> usize {
    CURRENT.with(Cell::get)
}

/// Runs `f` as if on worker `index` (tests of what behaves differently on a worker).
#[cfg(test)]
pub(crate) fn as_worker<T>(index: usize, f: impl FnOnce() -> T) -> T {
    let before = CURRENT.with(|c| c.replace(index));
    let out = f();
    CURRENT.with(|c| c.set(before));
    out
}

/// How many workers `listen.workers` asks for: the number itself, or with 0 one per CPU the
/// process may use (its CPU affinity and cgroup quota, as `std::thread::available_parallelism`
/// reads them).
pub fn count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The load of a worker whose thread ended: higher than any real count, so the least loaded
/// is never it (its connections' loads may still end: room to count down).
const GONE: usize = usize::MAX / 2;

/// A connection accepted on the data listener, with its place under the listener's limit.
pub(super) struct Accepted {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) permit: super::Place,
}

/// The same on its way to another worker's runtime (a socket registered with none).
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: super::Place,
    load: Load,
}

/// A connection counted in its worker's load while it lives.
pub(super) struct Load {
    counts: Arc<[AtomicUsize]>,
    worker: usize,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.counts[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The data listener's worker threads.
pub(super) struct Workers {
    /// Worker `i`'s intake at `i - 1`.
    intakes: Vec<mpsc::UnboundedSender<Handoff>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Connections open per worker (index 0: the main thread, when no worker can take one).
    counts: Arc<[AtomicUsize]>,
    /// Where the search for the least loaded worker starts: ties go round.
    next: AtomicUsize,
    /// Set once the drain is over: the workers' runtimes end, with what is left.
    over: watch::Sender<bool>,
}

impl Workers {
    /// Starts `listen.workers` threads. Each serves the connections it is handed,
    /// until its intake closes ([`Workers::finish`]) and then until the drain is over. A
    /// worker that cannot start is logged and the others serve.
    pub(super) fn start(
        live: &Arc<Live>,
        stop: &watch::Receiver<bool>,
        open: &mpsc::Sender<()>,
    ) -> Workers {
        let wanted = count(live.load().config.limits.workers);
        let (over, _) = watch::channel(false);
        let mut intakes = Vec::new();
        let mut threads = Vec::new();
        for index in 1..=wanted {
            let (intake, arrivals) = mpsc::unbounded_channel();
            let (live, stop, open, over) = (
                Arc::clone(live),
                stop.clone(),
                open.clone(),
                over.subscribe(),
            );
            let started = std::thread::Builder::new()
                .name(format!("esgate-worker-{index}"))
                .spawn(move || run(index, live, arrivals, stop, open, over));
            match started {
                Ok(thread) => {
                    intakes.push(intake);
                    threads.push(thread);
                }
                Err(e) => {
                    tracing::error!(error = %e, worker = index, "Cannot start a worker thread");
                    break;
                }
            }
        }
        let counts: Arc<[AtomicUsize]> = (0..=intakes.len()).map(|_| AtomicUsize::new(0)).collect();
        live.load()
            .metrics
            .count_worker_connections(Arc::clone(&counts));
        Workers {
            intakes,
            threads,
            counts,
            next: AtomicUsize::new(0),
            over,
        }
    }

    /// Hands `conn` to the worker serving the fewest connections. Returns it (counted in
    /// the main thread's load) when no worker can take it (their threads ended).
    pub(super) fn dispatch(&self, conn: Accepted) -> Option<(Accepted, Load)> {
        let worker = self.least_loaded();
        let load = self.load(worker);
        if worker == 0 {
            return Some((conn, load));
        }
        let Accepted {
            stream,
            peer,
            permit,
        } = conn;
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "Cannot hand a connection to a worker");
                return None;
            }
        };
        let handoff = Handoff {
            stream,
            peer,
            permit,
            load,
        };
        let back = match self.intakes[worker - 1].send(handoff) {
            Ok(()) => return None,
            Err(mpsc::error::SendError(back)) => back,
        };
        // The worker's thread is gone: serve it here, and never choose that worker again (its
        // count would stay the lowest, and every connection would come this way).
        drop(back.load);
        self.counts[worker].store(GONE, Ordering::Relaxed);
        let stream = TcpStream::from_std(back.stream).ok()?;
        let conn = Accepted {
            stream,
            peer: back.peer,
            permit: back.permit,
        };
        Some((conn, self.load(0)))
    }

    /// Resolves (`true`) once the drain is over or timed out, or errs once the workers are
    /// gone: the main thread's connections end then, as the other workers' do with their
    /// runtimes.
    pub(super) fn over(&self) -> watch::Receiver<bool> {
        self.over.subscribe()
    }

    /// A new connection counted in `worker`'s load.
    fn load(&self, worker: usize) -> Load {
        self.counts[worker].fetch_add(1, Ordering::Relaxed);
        Load {
            counts: Arc::clone(&self.counts),
            worker,
        }
    }

    /// The worker with the fewest open connections, ties taken in turn; 0 (the main thread)
    /// when no worker thread is left.
    fn least_loaded(&self) -> usize {
        let n = self.counts.len() - 1;
        if n == 0 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let worker = (0..n)
            .map(|i| 1 + (start + i) % n)
            .min_by_key(|&w| self.counts[w].load(Ordering::Relaxed))
            .unwrap_or(0);
        if self.counts[worker].load(Ordering::Relaxed) >= GONE {
            return 0;
        }
        worker
    }

    /// After the accept loop ended: the intakes close (each worker drops its hold on the
    /// drain), then once the drain is over or timed out (`drained`), the workers' runtimes end
    /// with whatever connections remain, and their threads are joined.
    pub(super) async fn finish(self, drained: impl std::future::Future<Output = ()>) {
        let Workers {
            intakes,
            threads,
            over,
            ..
        } = self;
        drop(intakes);
        drained.await;
        let _ = over.send(true);
        for thread in threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Worker `index`'s thread: a current-thread runtime serving the connections that arrive.
fn run(
    index: usize,
    live: Arc<Live>,
    mut arrivals: mpsc::UnboundedReceiver<Handoff>,
    stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
    mut over: watch::Receiver<bool>,
) {
    CURRENT.with(|c| c.set(index));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            // Its intake closes with this thread: the accept loop serves its share itself.
            tracing::error!(error = %e, worker = index, "Cannot start a worker's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        while let Some(h) = arrivals.recv().await {
            match TcpStream::from_std(h.stream) {
                Ok(stream) => super::spawn_connection(
                    Arc::clone(&live),
                    Accepted {
                        stream,
                        peer: h.peer,
                        permit: h.permit,
                    },
                    super::Role::Data,
                    stop.clone(),
                    open.clone(),
                    Some(h.load),
                    // This runtime ends when the drain is over, and its connections with it.
                    None,
                ),
                Err(e) => {
                    tracing::debug!(peer = %h.peer, error = %e, "A worker cannot take a connection")
                }
            }
        }
        // No more connections: what this worker serves drains; the drain's end is `run_live`'s.
        drop(open);
        let _ = over.wait_for(|over| *over).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_count_is_kept_and_zero_is_one_per_cpu() {
        assert_eq!(count(3), 3);
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(count(0), cpus);
    }

    #[test]
    fn each_thread_has_its_own_index() {
        assert_eq!(current(), 0);
        let other = std::thread::spawn(|| {
            CURRENT.with(|c| c.set(5));
            current()
        })
        .join()
        .unwrap();
        assert_eq!(other, 5);
        assert_eq!(current(), 0, "another thread's index does not leak here");
    }

    fn workers(n: usize) -> Workers {
        Workers {
            intakes: Vec::new(),
            threads: Vec::new(),
            counts: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            next: AtomicUsize::new(0),
            over: watch::channel(false).0,
        }
    }

    /// Review of session 14: a worker whose thread ended (its runtime failed to build, or it
    /// panicked) kept the lowest count, so it was chosen for every connection after: each was
    /// taken off the main thread's runtime, refused by the closed intake and registered again,
    /// and the live workers got none.
    #[tokio::test(flavor = "current_thread")]
    async fn a_worker_whose_thread_ended_is_not_chosen_again() {
        let mut w = workers(3);
        let (gone, arrivals) = mpsc::unbounded_channel();
        drop(arrivals);
        let (live, mut alive) = mpsc::unbounded_channel();
        w.intakes = vec![gone, live];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Arc::new(tokio::sync::Semaphore::new(16));
        let (mut held, mut clients) = (vec![], vec![]);
        let mut here = 0;
        for _ in 0..9 {
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            let permit = (Arc::clone(&slots).try_acquire_owned().unwrap(), None);
            if let Some((conn, load)) = w.dispatch(Accepted {
                stream,
                peer,
                permit,
            }) {
                assert_eq!(load.worker, 0);
                here += 1;
                held.push((conn, load));
            }
            clients.push(client);
        }
        let mut handed = vec![];
        while let Ok(h) = alive.try_recv() {
            handed.push(h);
        }
        // Worker 1 refused one connection at most (served here); the others go to worker 2.
        assert_eq!(here + handed.len(), 9);
        assert!(handed.len() >= 4, "worker 2 got {} of 9", handed.len());
        assert!(here <= 5, "the main thread served {here} of 9");
        assert_ne!(w.least_loaded(), 1);
        // Every connection holds its place under the limit until it ends, wherever it went.
        assert_eq!(slots.available_permits(), 16 - 9);
        drop((held, handed, clients));
        assert_eq!(slots.available_permits(), 16);
    }

    #[test]
    fn connections_go_to_the_least_loaded_worker_and_ties_go_round() {
        // The main thread and three workers.
        let w = workers(4);
        let mut held = Vec::new();
        // Even: each worker in turn, none on the main thread.
        for _ in 0..6 {
            let worker = w.least_loaded();
            held.push(w.load(worker));
        }
        let counts: Vec<usize> = w.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, [0, 2, 2, 2]);
        // Worker 1's connections end: it takes the next two.
        held.retain(|l| l.worker != 1);
        assert_eq!(w.least_loaded(), 1);
        held.push(w.load(1));
        assert_eq!(w.least_loaded(), 1);
        held.push(w.load(1));
        let counts: Vec<usize> = w.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, [0, 2, 2, 2]);
        drop(held);
        assert!(w.counts.iter().all(|c| c.load(Ordering::Relaxed) == 0));
        // No worker thread at all: the main thread.
        assert_eq!(workers(1).least_loaded(), 0);
    }
}
