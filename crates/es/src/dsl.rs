//! The search DSL: which search and count bodies a `read` token may send and the cost guards
//! (`cost`). Layered bottom-up: `query` (the query types and shared options as allow-list
//! tables, one walker, the filter wrapper and kNN filter injection), `aggs` (aggregation
//! types as a table) and `retriever` on top of it, `rewrite` (whole search and count bodies:
//! top-level keys, filter injection) on top of all three; `values`, `fields`, `expansion`:
//! checks by value, by field name, and on term expansion and scores, used by all of them.

pub(crate) mod aggs;
pub mod cost;
pub(crate) mod expansion;
pub(crate) mod fields;
pub(crate) mod json;
pub(crate) mod query;
pub mod retriever;
pub mod rewrite;
pub(crate) mod values;
