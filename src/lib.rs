//! esgate: an authenticating, filter-injecting reverse proxy for Elasticsearch.
//!
//! See ARCHITECTURE.md for the map of the code. The life of a data request is in
//! `proxy::handle`; the admin API is in `admin` (logic) and `server::admin` (HTTP).
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_client;
pub mod app;
pub mod audit;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod duration;
pub mod error;
/// The Elasticsearch knowledge, a crate of its own (`crates/es`) so that the compiler keeps its
/// promise: pure, no I/O, no clock, nothing of the rest of esgate.
pub use esgate_es as es;
pub mod kibana;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod scrolls;
pub mod server;
pub mod store;
pub mod throttle;
pub mod time;
pub mod upstream;

/// The hasher of the request path's maps keyed by esgate's own identifiers (token ids, secret
/// digests, metric labels): foldhash, seeded per process. These keys are never chosen by an
/// unauthenticated client (a secret's digest is SHA-256 output; ids are the store's), so
/// SipHash's flooding resistance buys nothing there, and it was several percent of a relayed
/// request (issue 10).
pub(crate) type FastHash = foldhash::fast::RandomState;

/// A property's configuration with `n` cases, or with `PROPTEST_CASES` cases when that is set
/// (as the es crate's `testing::cases`): `ProptestConfig::with_cases` alone ignores the
/// variable, so a deeper run would skip the properties that pin their count.
#[cfg(test)]
pub(crate) fn proptest_cases(n: u32) -> proptest::test_runner::Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    proptest::test_runner::Config::with_cases(n)
}
