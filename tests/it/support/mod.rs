//! Shared harness for the integration tests: real backends (`backend`), the real binary as a
//! child process (`binary`), the security fixture
//! (`fixture`), a small HTTP client (`http`), fault-injecting fake backends (`faults`), a
//! recording fake Elasticsearch for APIs no real backend implements (`recording`), the official
//! clients (`python`, `node`), the thread
//! server both fakes run on (`local_server`) and TLS material (`tls`). A recording relay in front of a real backend (`relay`). A share link's set-up on the Kibana front (`share_link`). Declared once in `tests/it/main.rs`; each subject module says `use crate::support;`.
//!
//! Invariant: nothing here listens on anything but 127.0.0.1 with port 0, nothing writes inside
//! the repository (caches live in `$ESGATE_TEST_CACHE` or `$HOME/.cache/esgate-tests`, scratch
//! files in temporary directories), and every process or task started here stops when its handle
//! is dropped or when the test process exits.

pub mod backend;
pub mod binary;
pub mod corpus;
pub mod esgate;
pub mod faults;
pub mod fixture;
pub mod http;
pub mod local_server;
pub mod node;
pub mod python;
pub mod recording;
pub mod relay;
pub mod share_link;
pub mod splitmix;
pub mod tls;

/// Waits up to `limit` for `cond`, looking every 20 ms; whether it held.
pub async fn eventually(limit: std::time::Duration, cond: impl Fn() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}
