//! The search DSL: which search and count bodies a `read` token may send and the cost guards
//! (`cost`). Layered bottom-up: `query` (the query types and shared options as allow-list
//! tables, one walker, the filter wrapper and kNN filter injection), `aggs` (aggregation
//! types as a table) and `retriever` on top of it, `rewrite` (whole search and count bodies:
//! top-level keys, filter injection) on top of all three; `values`, `fields`, `expansion`:
//! checks by value, by field name, and on term expansion and scores, used by all of them;
//! `fill`: the hard bounds a histogram's empty buckets need on a backend that makes them
//! before it counts them, applied with the cost guards; `histogram_fields`: the histograms
//! whose field's type must be looked up (a range field's steps), and the decision from the
//! types.
//!
//! Every read-only check reads `json::J`, one view of a serde_json `Value`, a built
//! `request::tree::Node` or a parsed body's tape, so one copy of each rule decides for all
//! three. The search and msearch routes try the tree path first (`rewrite::search_tree`: the
//! same checks, the edits on the tree, `tree::write`); any body it does not cover and every
//! refusal go through the serde path, which decides the message. The allow-lists are tables
//! (`table![(&[key], Slot), ...]`, `keys![...]`) applied by one walker, the macros writing the
//! lookup from the same list. A few one-look paths cover the dashboard shapes (a scalar
//! leaf, a parsed `bool`, a one-field `range`, query text, parameter-list aggregations):
//! each decides only what the general path decides, and a differential test in its module
//! holds it there. For a token with constant scores the wrap puts the client's query under
//! `constant_score`, and `rewrite::constant_scores` does the same to rescore queries and
//! nested queries with inner hits, so no score a client reads depends on other tenants'
//! term statistics.

pub(crate) mod aggs;
pub mod cost;
pub(crate) mod expansion;
pub(crate) mod fields;
pub(crate) mod fill;
pub mod histogram_fields;
pub(crate) mod json;
pub(crate) mod query;
pub mod retriever;
pub mod rewrite;
pub(crate) mod values;
