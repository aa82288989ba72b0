//! Cost guards (issue 13): a token's `max_size`, `max_buckets` and `search_timeout` on every
//! search it sends, in one place. `flow` calls [`CostGuard::search`] on each rewritten search
//! body (a `_search` with its URI parameters, a point-in-time or scroll-opening search, an
//! async search submit, each `_msearch` line, a kNN search, a terms enum) after `rewrite` has
//! allow-listed it, so every key seen here is in a known position. A scroll's later pages keep
//! the first request's size (they take no body to change it); `_count` returns no hits and
//! takes no aggregations.
//!
//! - `max_size` caps the hits a search can ask for: `size` and `from + size` (URI parameters
//!   and body, the larger of each when both are given; `size` 10 when absent), kNN `k` and
//!   `num_candidates` (top level, in queries, in retrievers), `rank_window_size` (retrievers,
//!   `rank.rrf`, also `window_size` there) and `from + size` of every `top_hits` and
//!   `inner_hits` (`size` 3 when absent).
//! - `max_buckets` caps the buckets the aggregations can return: terms-like sizes (10 when
//!   absent), composite size (10), geo grid size (10000), auto date histogram `buckets` (10),
//!   one per range or filter (plus the other bucket), one for single-bucket aggregations, and
//!   histograms whose bounds make the count computable (`values::histogram_buckets`; a
//!   histogram without numeric bounds, and `rare_terms`, depend on the data: counted as one,
//!   the backend's own `search.max_buckets` still applies). A sub-aggregation's buckets
//!   multiply with its parent's: the total is what the whole tree can return.
//! - `search_timeout` becomes the body's `timeout`, replacing a longer (or absent) client
//!   timeout; the URI `timeout` parameter is folded into it (so the backend sees one).
//! - On a backend that makes a histogram's empty buckets before it counts them
//!   ([`EmptyBuckets::MadeFirst`], for every token, limited or not), each `histogram` and
//!   `date_histogram` with `min_doc_count: 0` gets the `hard_bounds` its query's range allows,
//!   or is refused (`fill`), before the limits above are checked (so `max_buckets` counts the
//!   bounded fill).
//! - For every token on every backend, each `histogram` and `date_histogram` not bounded by
//!   its own `hard_bounds` (within 65,535 and `max_buckets` intervals) has its `field`
//!   returned ([`HistogramFields`]): `authorize` lets it through only where the field's type
//!   never steps through a range (`histogram_fields`; range28).
//!
//! Invariant: pure; a limit's refusal is a 400 (`RejectKind::OverLimit`, audited as
//! `over_limit`) naming the limit and the number asked for; `fill`'s are its own (a 400 for a
//! malformed histogram, a 403 for one it cannot bound), never a value of the body.

use serde_json::{Map, Value};

use super::json::{Obj, J};

use crate::dsl::fill;
use crate::dsl::histogram_fields::HistogramFields;
use crate::dsl::values::{histogram_buckets, uint_of};
use crate::request::body::MAX_DEPTH;
use crate::request::dialect::EmptyBuckets;
use crate::request::params::{time_millis, Param};
use crate::request::tree::{Arena, Container};
use crate::Rejection;

/// `size` when a search gives none (Elasticsearch's default).
const DEFAULT_SIZE: u64 = 10;
/// `size` of `top_hits` and `inner_hits` when absent.
const DEFAULT_HITS_SIZE: u64 = 3;
/// Bucket counts by default: terms-like, composite, auto date histogram; geo grids.
const DEFAULT_BUCKETS: u64 = 10;
const DEFAULT_GRID_BUCKETS: u64 = 10_000;

/// The limits of one token for the searches it sends (`None`: not limited), and how the
/// backend makes empty histogram buckets (the default, [`EmptyBuckets::MadeFirst`], fails
/// closed: the proxy sets what the backend's `GET /` says).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostGuard {
    pub max_size: Option<u64>,
    pub max_buckets: Option<u64>,
    /// Milliseconds.
    pub timeout_ms: Option<u64>,
    pub empty_buckets: EmptyBuckets,
}

impl CostGuard {
    fn is_unlimited(&self) -> bool {
        self.max_size.is_none() && self.max_buckets.is_none() && self.timeout_ms.is_none()
    }

    /// Checks and rewrites one search: `body` as `rewrite::search` returned it, `params` its
    /// URI parameters (empty for an msearch line). The fields of its histograms whose types
    /// `authorize` must know (`histogram_fields`): every token's, on every backend.
    pub fn search(
        &self,
        body: &mut Value,
        params: &mut Vec<Param>,
    ) -> Result<HistogramFields, Rejection> {
        let mut fields = HistogramFields::default();
        self.search_into(body, params, &mut fields)?;
        Ok(fields)
    }

    /// [`CostGuard::search`], the fields added to `fields` (an `_msearch`'s searches of one
    /// index expression add to one).
    pub(crate) fn search_into(
        &self,
        body: &mut Value,
        params: &mut Vec<Param>,
        fields: &mut HistogramFields,
    ) -> Result<(), Rejection> {
        let Value::Object(m) = body else {
            if self.is_unlimited() {
                return Ok(());
            }
            return Err(Rejection::bad_request("a search body must be an object"));
        };
        let edits = fill::plan(Obj::V(m), self.empty_buckets, self.max_buckets, fields)?;
        if !edits.is_empty() {
            fill::apply_value(m, edits);
        }
        if let Some(timeout) = self.search_checked(Obj::V(m), params)? {
            m.insert("timeout".into(), Value::String(timeout));
        }
        Ok(())
    }

    /// The first half of [`CostGuard::search`] on a tree body's top-level entries: the hard
    /// bounds its histograms need added, or the refusal of one that cannot have them (`fill`),
    /// and the fields of its histograms whose types `authorize` must know added to `fields`
    /// (`histogram_fields`, from the same walk). [`CostGuard::search_checked`] reads the body
    /// after it. The new parsed values it makes are put in `arena` (the body's) and claimed
    /// from its meter (a refused claim is the error).
    pub(crate) fn fill_tree<'a>(
        &self,
        entries: &mut Container<'a, (std::borrow::Cow<'a, str>, crate::request::tree::Node<'a>)>,
        arena: &'a Arena<'_>,
        fields: &mut HistogramFields,
    ) -> Result<(), Rejection> {
        let edits = fill::plan(
            Obj::N(entries),
            self.empty_buckets,
            self.max_buckets,
            fields,
        )?;
        if !edits.is_empty() {
            fill::apply_tree(entries, edits, arena)?;
        }
        Ok(())
    }

    /// The read-only half of [`CostGuard::search`] (after [`CostGuard::fill_tree`] on a
    /// tree), for either body representation: the limits checked, the `timeout` parameter taken
    /// out of `params`, and the `timeout` the body must carry returned (when the token limits
    /// it).
    pub(crate) fn search_checked(
        &self,
        m: Obj<'_>,
        params: &mut Vec<Param>,
    ) -> Result<Option<String>, Rejection> {
        if self.is_unlimited() {
            return Ok(None);
        }
        if let Some(max) = self.max_size {
            let param = |key: &str| -> Result<Option<u64>, Rejection> {
                match params.iter().find(|(k, _)| k == key) {
                    None => Ok(None),
                    Some((_, v)) => v.parse::<u64>().map(Some).map_err(|_| {
                        Rejection::bad_request(format!("[{key}] must be a non-negative integer"))
                    }),
                }
            };
            let size = param("size")?
                .max(m.get("size").and_then(uint_of))
                .unwrap_or(DEFAULT_SIZE);
            let from = param("from")?
                .max(m.get("from").and_then(uint_of))
                .unwrap_or(0);
            hits("size", from, size, max)?;
            if let Some(J::Object(rank)) = m.get("rank") {
                for rrf in rank.values() {
                    for key in ["window_size", "rank_window_size"] {
                        size_like(rrf.get(key), key, max)?;
                    }
                }
            }
            walk_object(m, max)?;
        }
        if let Some(max) = self.max_buckets {
            let aggs = m.get("aggs").or_else(|| m.get("aggregations"));
            let n = aggs.map_or(0, |a| buckets(a, 0));
            if n > max {
                return Err(Rejection::over_limit(format!(
                    "aggregations able to return {n} buckets exceed this token's max_buckets {max}"
                )));
            }
        }
        let Some(limit) = self.timeout_ms else {
            return Ok(None);
        };
        let mut ms = u128::from(limit);
        if let Some(i) = params.iter().position(|(k, _)| k == "timeout") {
            let (_, v) = params.remove(i);
            ms = ms.min(time_millis(&v).unwrap_or(ms));
        }
        if let Some(J::String(t)) = m.get("timeout") {
            ms = ms.min(time_millis(t).unwrap_or(ms));
        }
        Ok(Some(format!("{}ms", ms.max(1))))
    }

    /// A SQL query's page, `fetch_size` (1000 when absent), against `max_size`: over it is
    /// refused; when absent the page is set to at most `max_size` rows. (ES|QL gets a `LIMIT`
    /// appended by `querylang`.)
    pub fn sql(&self, body: &mut Map<String, Value>) -> Result<(), Rejection> {
        let Some(max) = self.max_size else {
            return Ok(());
        };
        match body.get("fetch_size").map(J::from).and_then(uint_of) {
            Some(n) => hits("fetch_size", 0, n, max),
            None => {
                body.insert(
                    "fetch_size".into(),
                    Value::from(max.min(SQL_DEFAULT_FETCH_SIZE)),
                );
                Ok(())
            }
        }
    }

    /// An EQL search: its `size` (events or sequences returned, 10 when absent) against
    /// `max_size`.
    pub fn eql(&self, body: Option<&Value>) -> Result<(), Rejection> {
        match self.max_size {
            None => Ok(()),
            Some(max) => {
                let size = body
                    .and_then(|b| b.get("size"))
                    .map(J::from)
                    .and_then(uint_of)
                    .unwrap_or(DEFAULT_SIZE);
                hits("size", 0, size, max)
            }
        }
    }
}

/// Elasticsearch SQL's page size when a query names none.
const SQL_DEFAULT_FETCH_SIZE: u64 = 1000;

/// `from + size` (and `size` alone) against `max_size`; `what` names the size's place.
fn hits(what: &str, from: u64, size: u64, max: u64) -> Result<(), Rejection> {
    if size > max {
        return Err(Rejection::over_limit(format!(
            "{what} {size} exceeds this token's max_size {max}"
        )));
    }
    let total = from.saturating_add(size);
    if total > max {
        return Err(Rejection::over_limit(format!(
            "from + {what} {total} exceeds this token's max_size {max}"
        )));
    }
    Ok(())
}

/// A size-like number (kNN `k`, `rank_window_size`) against `max_size`, when present.
fn size_like(v: Option<J<'_>>, key: &str, max: u64) -> Result<(), Rejection> {
    match v.and_then(uint_of) {
        Some(n) if n > max => Err(Rejection::over_limit(format!(
            "{key} {n} exceeds this token's max_size {max}"
        ))),
        _ => Ok(()),
    }
}

/// Hit-returning options anywhere in the body: `inner_hits` and `top_hits` (`from + size`),
/// kNN searches (`k`, `num_candidates`), retrievers' `rank_window_size`.
fn walk_hits(v: J<'_>, max: u64) -> Result<(), Rejection> {
    match v {
        J::Object(m) => walk_object(m, max),
        J::Array(items) => items.iter().try_for_each(|i| walk_hits(i, max)),
        _ => Ok(()),
    }
}

fn walk_object(m: Obj<'_>, max: u64) -> Result<(), Rejection> {
    for (k, child) in m {
        match k {
            "inner_hits" | "top_hits" => {
                let what = format!("{k} size");
                each_object(child, |o| {
                    let size = o.get("size").and_then(uint_of);
                    let from = o.get("from").and_then(uint_of).unwrap_or(0);
                    hits(&what, from, size.unwrap_or(DEFAULT_HITS_SIZE), max)
                })?;
            }
            "knn" => each_object(child, |o| {
                if o.get("field").is_some_and(J::is_string) {
                    size_like(o.get("k"), "knn k", max)?;
                    size_like(o.get("num_candidates"), "knn num_candidates", max)?;
                }
                Ok(())
            })?,
            "rank_window_size" => size_like(Some(child), k, max)?,
            _ => {}
        }
        walk_hits(child, max)?;
    }
    Ok(())
}

fn each_object(
    v: J<'_>,
    mut f: impl FnMut(Obj<'_>) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    match v {
        J::Object(o) => f(o),
        J::Array(items) => items.iter().filter_map(J::as_object).try_for_each(f),
        _ => Ok(()),
    }
}

/// The buckets an `aggs` object can return: each aggregation's own buckets, times one plus
/// what its sub-aggregations return per bucket. Saturating.
fn buckets(aggs: J<'_>, depth: usize) -> u64 {
    let J::Object(aggs) = aggs else { return 0 };
    if depth > MAX_DEPTH {
        return u64::MAX;
    }
    aggs.values()
        .filter_map(J::as_object)
        .map(|def| {
            let own = def
                .iter()
                .find(|(k, _)| !matches!(*k, "aggs" | "aggregations" | "meta"))
                .map_or(0, |(ty, body)| own_buckets(ty, body));
            let subs = def
                .get("aggs")
                .or_else(|| def.get("aggregations"))
                .map_or(0, |s| buckets(s, depth + 1));
            own.saturating_mul(subs.saturating_add(1))
        })
        .fold(0u64, u64::saturating_add)
}

/// The buckets one aggregation returns per bucket of its parent (0 for metrics and pipelines).
fn own_buckets(ty: &str, body: J<'_>) -> u64 {
    let J::Object(m) = body else { return 0 };
    let size = |key: &str, default: u64| m.get(key).and_then(uint_of).unwrap_or(default);
    match ty {
        "terms" | "multi_terms" | "significant_terms" | "significant_text" => {
            size("size", DEFAULT_BUCKETS)
        }
        "composite" => size("size", DEFAULT_BUCKETS),
        "geohash_grid" | "geotile_grid" | "geohex_grid" => size("size", DEFAULT_GRID_BUCKETS),
        "auto_date_histogram" => size("buckets", DEFAULT_BUCKETS),
        "histogram" | "date_histogram" => histogram_buckets(ty, m).unwrap_or(1),
        "range" | "ip_range" | "date_range" => m
            .get("ranges")
            .and_then(J::as_array)
            .map_or(1, |r| r.len() as u64),
        "filters" => {
            let n = match m.get("filters") {
                Some(J::Array(items)) => items.len() as u64,
                Some(J::Object(named)) => named.len() as u64,
                _ => 1,
            };
            let other = matches!(m.get("other_bucket"), Some(J::Bool(true)))
                || m.contains_key("other_bucket_key");
            n + u64::from(other)
        }
        "rare_terms"
        | "filter"
        | "missing"
        | "nested"
        | "reverse_nested"
        | "global"
        | "sampler"
        | "diversified_sampler" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
