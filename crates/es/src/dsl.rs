//! The search DSL: which search and count bodies a `read` token may send (`rewrite`: the
//! allow-lists and the filter injection; `retriever`; `values`, `fields`, `expansion`: checks by
//! value, by field name, and on term expansion and scores) and the cost guards (`cost`).

pub mod cost;
pub(crate) mod expansion;
pub(crate) mod fields;
pub mod retriever;
pub mod rewrite;
pub(crate) mod values;
