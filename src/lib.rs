//! esgate: an authenticating, filter-injecting reverse proxy for Elasticsearch.
//!
//! See ARCHITECTURE.md for the map of the code.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_client;
pub mod auth;
pub mod es;
pub mod policy;
pub mod store;
