//! Shaping the answers esgate reads whole: the response-shaping parameters (`shaping`) and
//! Elasticsearch's `filter_path` applied to an answer (`filter_path`). The failures an answer
//! reports (`failures`) are judged with `scan`, the cursor `routes::async_search` reads its
//! answers' skipped-shard counts with too. What a route does with its answer (seal ids, rebuild
//! it) is the route's own, in `routes` (`routes::seal_answer`, `routes::apply`).

pub mod failures;
pub mod filter_path;
pub(crate) mod scan;
pub mod shaping;
