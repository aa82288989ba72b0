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
//!
//! Invariant: pure; a refusal is a 400 (`RejectKind::OverLimit`, audited as `over_limit`)
//! naming the limit and the number asked for.

use serde_json::{Map, Value};

use super::params::time_millis;
use super::values::{histogram_buckets, uint_of};
use super::Rejection;

/// `size` when a search gives none (Elasticsearch's default).
const DEFAULT_SIZE: u64 = 10;
/// `size` of `top_hits` and `inner_hits` when absent.
const DEFAULT_HITS_SIZE: u64 = 3;
/// Bucket counts by default: terms-like, composite, auto date histogram; geo grids.
const DEFAULT_BUCKETS: u64 = 10;
const DEFAULT_GRID_BUCKETS: u64 = 10_000;

/// The limits of one token for the searches it sends. `None`: not limited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostGuard {
    pub max_size: Option<u64>,
    pub max_buckets: Option<u64>,
    /// Milliseconds.
    pub timeout_ms: Option<u64>,
}

impl CostGuard {
    fn is_unlimited(&self) -> bool {
        *self == CostGuard::default()
    }

    /// Checks and rewrites one search: `body` as `rewrite::search` returned it, `params` its
    /// URI parameters (empty for an msearch line).
    pub fn search(
        &self,
        body: &mut Value,
        params: &mut Vec<(String, String)>,
    ) -> Result<(), Rejection> {
        if self.is_unlimited() {
            return Ok(());
        }
        let Value::Object(m) = body else {
            return Err(Rejection::bad_request("a search body must be an object"));
        };
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
            if let Some(Value::Object(rank)) = m.get("rank") {
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
        if let Some(limit) = self.timeout_ms {
            let mut ms = u128::from(limit);
            if let Some(i) = params.iter().position(|(k, _)| k == "timeout") {
                let (_, v) = params.remove(i);
                ms = ms.min(time_millis(&v).unwrap_or(ms));
            }
            if let Some(Value::String(t)) = m.get("timeout") {
                ms = ms.min(time_millis(t).unwrap_or(ms));
            }
            m.insert("timeout".into(), Value::String(format!("{}ms", ms.max(1))));
        }
        Ok(())
    }

    /// A SQL query's page, `fetch_size` (1000 when absent), against `max_size`: over it is
    /// refused; when absent the page is set to at most `max_size` rows. (ES|QL gets a `LIMIT`
    /// appended by `querylang`.)
    pub fn sql(&self, body: &mut Map<String, Value>) -> Result<(), Rejection> {
        let Some(max) = self.max_size else {
            return Ok(());
        };
        match body.get("fetch_size").and_then(uint_of) {
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
fn size_like(v: Option<&Value>, key: &str, max: u64) -> Result<(), Rejection> {
    match v.and_then(uint_of) {
        Some(n) if n > max => Err(Rejection::over_limit(format!(
            "{key} {n} exceeds this token's max_size {max}"
        ))),
        _ => Ok(()),
    }
}

/// Hit-returning options anywhere in the body: `inner_hits` and `top_hits` (`from + size`),
/// kNN searches (`k`, `num_candidates`), retrievers' `rank_window_size`.
fn walk_hits(v: &Value, max: u64) -> Result<(), Rejection> {
    match v {
        Value::Object(m) => walk_object(m, max),
        Value::Array(items) => items.iter().try_for_each(|i| walk_hits(i, max)),
        _ => Ok(()),
    }
}

fn walk_object(m: &Map<String, Value>, max: u64) -> Result<(), Rejection> {
    for (k, child) in m {
        match k.as_str() {
            "inner_hits" | "top_hits" => {
                let what = format!("{k} size");
                each_object(child, |o| {
                    let size = o.get("size").and_then(uint_of);
                    let from = o.get("from").and_then(uint_of).unwrap_or(0);
                    hits(&what, from, size.unwrap_or(DEFAULT_HITS_SIZE), max)
                })?;
            }
            "knn" => each_object(child, |o| {
                if o.get("field").is_some_and(Value::is_string) {
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
    v: &Value,
    mut f: impl FnMut(&Map<String, Value>) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    match v {
        Value::Object(o) => f(o),
        Value::Array(items) => items.iter().filter_map(Value::as_object).try_for_each(f),
        _ => Ok(()),
    }
}

/// Most nesting followed (`rewrite` caps the body depth well below this anyway).
const MAX_DEPTH: usize = 64;

/// The buckets an `aggs` object can return: each aggregation's own buckets, times one plus
/// what its sub-aggregations return per bucket. Saturating.
fn buckets(aggs: &Value, depth: usize) -> u64 {
    let Value::Object(aggs) = aggs else { return 0 };
    if depth > MAX_DEPTH {
        return u64::MAX;
    }
    aggs.values()
        .filter_map(Value::as_object)
        .map(|def| {
            let own = def
                .iter()
                .find(|(k, _)| !matches!(k.as_str(), "aggs" | "aggregations" | "meta"))
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
fn own_buckets(ty: &str, body: &Value) -> u64 {
    let Value::Object(m) = body else { return 0 };
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
            .and_then(Value::as_array)
            .map_or(1, |r| r.len() as u64),
        "filters" => {
            let n = match m.get("filters") {
                Some(Value::Array(items)) => items.len() as u64,
                Some(Value::Object(named)) => named.len() as u64,
                _ => 1,
            };
            let other = m.get("other_bucket") == Some(&Value::Bool(true))
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
mod tests {
    use serde_json::json;

    use super::*;

    fn guard(
        max_size: Option<u64>,
        max_buckets: Option<u64>,
        timeout_ms: Option<u64>,
    ) -> CostGuard {
        CostGuard {
            max_size,
            max_buckets,
            timeout_ms,
        }
    }

    fn run(
        g: &CostGuard,
        body: Value,
        params: &[(&str, &str)],
    ) -> Result<(Value, Vec<(String, String)>), String> {
        let mut body = body;
        let mut params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        g.search(&mut body, &mut params)
            .map(|()| (body, params))
            .map_err(|r| r.reason)
    }

    #[test]
    fn no_limits_change_nothing() {
        let body =
            json!({"size": 1_000_000, "aggs": {"t": {"terms": {"field": "x", "size": 65535}}}});
        let (out, params) = run(&CostGuard::default(), body.clone(), &[("timeout", "1h")]).unwrap();
        assert_eq!(out, body);
        assert_eq!(params.len(), 1);
    }

    /// Every size-like place, each just at and just over `max_size` 100 (the reason names
    /// the limit).
    #[test]
    fn max_size_holds_in_every_place_a_search_asks_for_hits() {
        let g = guard(Some(100), None, None);
        type Case<'a> = (Value, Vec<(&'a str, &'a str)>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (json!({}), vec![], None),
            (json!({"size": 100}), vec![], None),
            (
                json!({"size": 101}),
                vec![],
                Some("size 101 exceeds this token's max_size 100"),
            ),
            (json!({"size": 60, "from": 40}), vec![], None),
            (
                json!({"size": 60, "from": 41}),
                vec![],
                Some("from + size 101"),
            ),
            (json!({"from": 91}), vec![], Some("from + size 101")),
            (json!({}), vec![("size", "101")], Some("size 101")),
            (json!({"size": 5}), vec![("size", "101")], Some("size 101")),
            (json!({"size": 101}), vec![("size", "5")], Some("size 101")),
            (json!({}), vec![("from", "95")], Some("from + size 105")),
            (json!({"size": "101"}), vec![], Some("size 101")),
            (
                json!({"knn": {"field": "v", "query_vector": [1], "k": 101, "num_candidates": 101}}),
                vec![],
                Some("knn k 101"),
            ),
            (
                json!({"knn": [{"field": "v", "query_vector": [1], "k": 10, "num_candidates": 200}]}),
                vec![],
                Some("knn num_candidates 200"),
            ),
            (
                json!({"query": {"bool": {"must": [{"knn": {"field": "v", "query_vector": [1], "k": 500}}]}}}),
                vec![],
                Some("knn k 500"),
            ),
            (
                json!({"retriever": {"rrf": {"retrievers": [{"knn": {"field": "v", "query_vector": [1], "k": 5, "num_candidates": 101}}], "rank_window_size": 10}}}),
                vec![],
                Some("knn num_candidates 101"),
            ),
            (
                json!({"retriever": {"rrf": {"retrievers": [{"standard": {"query": {"match_all": {}}}}], "rank_window_size": 1000}}}),
                vec![],
                Some("rank_window_size 1000"),
            ),
            (
                json!({"retriever": {"linear": {"retrievers": [], "rank_window_size": 100}}}),
                vec![],
                None,
            ),
            (
                json!({"sub_searches": [{"query": {"match_all": {}}}], "rank": {"rrf": {"window_size": 300}}}),
                vec![],
                Some("window_size 300"),
            ),
            (
                json!({"sub_searches": [{"query": {"match_all": {}}}], "rank": {"rrf": {"rank_window_size": 300}}}),
                vec![],
                Some("rank_window_size 300"),
            ),
            (
                json!({"query": {"nested": {"path": "p", "query": {"match_all": {}}, "inner_hits": {"size": 101}}}}),
                vec![],
                Some("inner_hits size 101"),
            ),
            (
                json!({"query": {"nested": {"path": "p", "query": {"match_all": {}}, "inner_hits": {"from": 99}}}}),
                vec![],
                Some("from + inner_hits size 102"),
            ),
            (
                json!({"collapse": {"field": "u", "inner_hits": [{"name": "a", "size": 5}, {"name": "b", "size": 200}]}}),
                vec![],
                Some("inner_hits size 200"),
            ),
            (
                json!({"aggs": {"t": {"terms": {"field": "x"}, "aggs": {"h": {"top_hits": {"size": 101}}}}}}),
                vec![],
                Some("top_hits size 101"),
            ),
            (
                json!({"aggs": {"h": {"top_hits": {"from": 98}}}}),
                vec![],
                Some("from + top_hits size 101"),
            ),
            (
                json!({"aggs": {"h": {"top_hits": {"size": 100}}}}),
                vec![],
                None,
            ),
        ];
        for (body, params, expected) in cases {
            let got = run(&g, body.clone(), &params);
            match expected {
                None => assert!(got.is_ok(), "{body} {params:?}: {got:?}"),
                Some(text) => {
                    let e = got.expect_err(&format!("{body} {params:?} passed"));
                    assert!(e.contains(text), "{body}: {e}");
                    assert!(e.contains("max_size 100"), "{e}");
                }
            }
        }
        // The default size (10) counts when nothing is given.
        let tiny = guard(Some(5), None, None);
        assert!(run(&tiny, json!({}), &[])
            .unwrap_err()
            .contains("size 10 exceeds"));
        assert!(run(&tiny, json!({"size": 0}), &[]).is_ok());
    }

    #[test]
    fn max_buckets_multiplies_through_sub_aggregations() {
        let g = guard(None, Some(1000), None);
        let cases: Vec<(Value, Option<u64>)> = vec![
            (
                json!({"aggs": {"t": {"terms": {"field": "x", "size": 1000}}}}),
                None,
            ),
            (
                json!({"aggs": {"t": {"terms": {"field": "x", "size": 1001}}}}),
                Some(1001),
            ),
            (
                json!({"aggregations": {"t": {"multi_terms": {"terms": [], "size": 2000}}}}),
                Some(2000),
            ),
            // 100 + 100 × 10 (the default terms size) = 1100.
            (
                json!({"aggs": {"t": {"terms": {"field": "x", "size": 100}, "aggs": {"u": {"terms": {"field": "y"}}}}}}),
                Some(1100),
            ),
            // Metrics under buckets add nothing.
            (
                json!({"aggs": {"t": {"terms": {"field": "x", "size": 1000}, "aggs": {"a": {"avg": {"field": "y"}}}}}}),
                None,
            ),
            // Siblings add up.
            (
                json!({"aggs": {"a": {"terms": {"field": "x", "size": 600}}, "b": {"composite": {"size": 600, "sources": []}}}}),
                Some(1200),
            ),
            (json!({"aggs": {"c": {"composite": {"sources": []}}}}), None),
            (
                json!({"aggs": {"g": {"geotile_grid": {"field": "p"}}}}),
                Some(10_000),
            ),
            (
                json!({"aggs": {"d": {"auto_date_histogram": {"field": "t", "buckets": 5000}}}}),
                Some(5000),
            ),
            (
                json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 1, "hard_bounds": {"min": 0, "max": 5000}}}}}),
                Some(5001),
            ),
            (
                json!({"aggs": {"h": {"histogram": {"field": "n", "interval": 10, "extended_bounds": {"min": 0, "max": 5000}}}}}),
                None,
            ),
            (
                json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1m", "extended_bounds": {"min": 0, "max": 86_400_000}}}}}),
                Some(1441),
            ),
            // A histogram without numeric bounds depends on the data: one bucket here.
            (
                json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1s"}, "aggs": {"t": {"terms": {"field": "x", "size": 999}}}}}}),
                None,
            ),
            (
                json!({"aggs": {"h": {"date_histogram": {"field": "t", "fixed_interval": "1s"}, "aggs": {"t": {"terms": {"field": "x", "size": 1000}}}}}}),
                Some(1001),
            ),
            (
                json!({"aggs": {"f": {"filter": {"match_all": {}}, "aggs": {"t": {"terms": {"field": "x", "size": 1000}}}}}}),
                Some(1001),
            ),
            (
                json!({"aggs": {"r": {"range": {"field": "n", "ranges": [{}, {}, {}]}, "aggs": {"t": {"terms": {"field": "x", "size": 400}}}}}}),
                Some(1203),
            ),
            (
                json!({"aggs": {"f": {"filters": {"filters": {"a": {}, "b": {}}, "other_bucket": true}, "aggs": {"t": {"terms": {"field": "x", "size": 400}}}}}}),
                Some(1203),
            ),
            (
                json!({"aggs": {"n": {"nested": {"path": "p"}, "aggs": {"r": {"reverse_nested": {}, "aggs": {"t": {"terms": {"field": "x", "size": 998}}}}}}}}),
                None,
            ),
            (
                json!({"aggs": {"n": {"nested": {"path": "p"}, "aggs": {"r": {"reverse_nested": {}, "aggs": {"t": {"terms": {"field": "x", "size": 999}}}}}}}}),
                Some(1001),
            ),
        ];
        for (body, over) in cases {
            let got = run(&g, body.clone(), &[]);
            match over {
                None => assert!(got.is_ok(), "{body}: {got:?}"),
                Some(n) => assert_eq!(
                    got.unwrap_err(),
                    format!("aggregations able to return {n} buckets exceed this token's max_buckets 1000"),
                    "{body}"
                ),
            }
        }
        // Deep trees saturate instead of overflowing.
        let mut aggs = json!({"t": {"terms": {"field": "x", "size": 65535}}});
        for _ in 0..10 {
            aggs = json!({"t": {"terms": {"field": "x", "size": 65535}, "aggs": aggs}});
        }
        assert!(run(&g, json!({ "aggs": aggs }), &[])
            .unwrap_err()
            .contains(&u64::MAX.to_string()));
    }

    #[test]
    fn search_timeout_replaces_longer_or_missing_timeouts() {
        let g = guard(None, None, Some(30_000));
        for (body, params, expected) in [
            (json!({}), vec![], "30000ms"),
            (json!({"timeout": "1m"}), vec![], "30000ms"),
            (json!({"timeout": "5s"}), vec![], "5000ms"),
            (json!({"timeout": "-1"}), vec![], "30000ms"),
            (json!({}), vec![("timeout", "10s")], "10000ms"),
            (
                json!({"timeout": "20s"}),
                vec![("timeout", "1h")],
                "20000ms",
            ),
            (
                json!({"timeout": "1h"}),
                vec![("timeout", "250ms")],
                "250ms",
            ),
            (json!({"timeout": "0ms"}), vec![], "1ms"),
        ] {
            let (out, params) = run(&g, body.clone(), &params).unwrap();
            assert_eq!(out["timeout"], json!(expected), "{body}");
            assert!(
                params.iter().all(|(k, _)| k != "timeout"),
                "one timeout reaches the backend"
            );
        }
    }

    #[test]
    fn bad_uri_sizes_are_400s() {
        let g = guard(Some(10), None, None);
        let e = run(&g, json!({}), &[("size", "x")]).unwrap_err();
        assert!(e.contains("[size]"), "{e}");
    }
}
