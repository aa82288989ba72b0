//! Answers esgate reads whole and rebuilds: response transforms (`transform`), the
//! response-shaping parameters (`shaping`) and Elasticsearch's `filter_path` applied to an answer
//! (`filter_path`).

pub mod filter_path;
pub mod shaping;
pub mod transform;
