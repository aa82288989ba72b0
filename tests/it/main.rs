//! esgate's integration tests, one binary organised by subject. Each module starts what it needs
//! itself: real backends (osmem, noida), the real `esgate` binary or an in-process server, real
//! clients (curl, the official Python and Node clients). `support` is the shared harness.
//!
//! Run one subject with `cargo test --test it <module>::`, e.g. `cargo test --test it ordinals::`.

mod support;

mod admin_ui;
mod answer_memory;
mod answered;
mod async_search;
mod backend_faults;
mod backend_pool;
mod backend_smoke;
mod check_config;
mod client_address;
mod clients;
mod compose;
mod connection_caps;
mod continuation;
mod corpus_judge;
mod crash;
mod docs;
mod enforcement;
mod explain;
mod fair_share;
mod first_run;
mod forwarding;
mod gateway;
mod grafana;
mod histogram_field_types;
mod histogram_fill;
mod identity;
mod indices;
mod internal_fields;
mod kibana;
mod leak_oracle;
mod limits;
mod local_faults;
mod lookup;
mod media_types;
mod metrics;
mod msearch_shortcuts;
mod nested_scope;
mod node_client;
mod opaque_id;
mod openapi;
mod ordinals;
mod pool_stress;
mod protocol_corners;
mod query_encodings;
mod query_languages;
mod readme;
mod refused_contexts;
mod reliability;
mod reload;
mod replicas;
mod request_bodies;
mod response_shaping;
mod revocation;
mod rotation;
mod route_scope;
mod shard_prefilter;
mod shard_rewrites;
mod share_links;
mod spaced_bodies;
mod term_statistics;
mod tokens;
