//! Route classification with Elasticsearch router semantics (security.md I-1, C1, C8).
//!
//! Invariant: the raw origin-form path is split on `/` once; literal segments are compared
//! undecoded and case-sensitively (so `%5Fsearch` is not `_search`), only the value bound to
//! `{index}`/`{name}` is percent-decoded; one trailing slash is tolerated (ES drops it), empty
//! segments, `.`/`..`, control characters and non-ASCII bytes are rejected. The result is one
//! of a closed set of allowed [`Route`]s or a named [`Denied`] category; there is no
//! substring matching and no default allow. Every route of both endpoint inventories
//! (`crates/es/data/endpoints-*.tsv`) gets a decision here; the test at the bottom proves it.

use super::async_search::{self, AsyncOp};
use super::{params, Method, RejectKind, Rejection};

/// The routes a read token may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /`.
    Root,
    /// `GET|POST [/{index}]/_search`.
    Search { index: Option<String> },
    /// `GET|POST [/{index}]/_count`.
    Count { index: Option<String> },
    /// `GET|POST [/{index}]/_msearch`.
    Msearch { index: Option<String> },
    /// `GET [/{index}]/_mapping`.
    Mapping { index: Option<String> },
    /// `GET|POST [/{index}]/_field_caps`.
    FieldCaps { index: Option<String> },
    /// `GET /_cluster/health[/{index}]`: the token's indices only, answered by `cluster_health`.
    ClusterHealth { index: Option<String> },
    /// `GET /_resolve/index/{name}`.
    ResolveIndex { name: String },
    /// `GET|POST /_search/scroll` with the (sealed) scroll id in the body.
    ScrollNext,
    /// `DELETE /_search/scroll` with the (sealed) scroll ids in the body.
    ScrollClear,
    /// `POST /{index}/_pit` (Elasticsearch point in time).
    PitOpen { index: String },
    /// `DELETE /_pit` with the (sealed) id in the body.
    PitClose,
    /// `POST /{index}/_search/point_in_time` (OpenSearch point in time).
    OsPitOpen { index: String },
    /// `DELETE /_search/point_in_time` with the (sealed) ids in the body.
    OsPitClose,
    /// `POST [/{index}]/_async_search`: a search, rewritten like `Search`.
    AsyncSubmit { index: Option<String> },
    /// `GET /_async_search/{id}`, `GET /_async_search/status/{id}`,
    /// `DELETE /_async_search/{id}`: `id` is the (sealed) id as decoded from the path.
    AsyncById { op: AsyncOp, id: String },
    /// `GET|POST [/{index}]/_validate/query`.
    ValidateQuery { index: Option<String> },
    /// `GET|POST /{index}/_knn_search` (Elasticsearch 8, deprecated): forwarded as a search.
    KnnSearch { index: String },
    /// `GET|POST /{index}/_terms_enum`, answered from a filtered terms aggregation.
    TermsEnum { index: String },
    /// `GET /_cat/indices[/{index}]`, rendered by esgate with the token's indices only.
    CatIndices { index: Option<String> },
    /// `GET|POST /{index}/_explain/{id}`, with the query wrapped in the token's filters.
    Explain { index: String, id: String },
    /// `POST /_query` (ES|QL): the indices are in the query text.
    Esql,
    /// `GET|POST /_sql`: a query (the table is in its text) or a sealed cursor.
    Sql,
    /// `POST /_sql/close` with a sealed cursor.
    SqlClose,
    /// `GET|POST /{index}/_eql/search`.
    Eql { index: String },
}

impl Route {
    /// The action name used in permits, audit records and errors.
    pub fn action(&self) -> &'static str {
        match self {
            Route::Root => "root",
            Route::Search { .. } => "search",
            Route::Count { .. } => "count",
            Route::Msearch { .. } => "msearch",
            Route::Mapping { .. } => "mapping",
            Route::FieldCaps { .. } => "field_caps",
            Route::ClusterHealth { .. } => "cluster_health",
            Route::ResolveIndex { .. } => "resolve_index",
            Route::ScrollNext => "scroll",
            Route::ScrollClear => "clear_scroll",
            Route::PitOpen { .. } | Route::OsPitOpen { .. } => "open_pit",
            Route::PitClose | Route::OsPitClose => "close_pit",
            Route::AsyncSubmit { .. } => async_search::SUBMIT_ACTION,
            Route::AsyncById { op, .. } => op.action(),
            Route::ValidateQuery { .. } => "validate_query",
            Route::KnnSearch { .. } => "knn_search",
            Route::TermsEnum { .. } => "terms_enum",
            Route::CatIndices { .. } => "cat_indices",
            Route::Explain { .. } => "explain",
            Route::Esql => "esql",
            Route::Sql => "sql",
            Route::SqlClose => "sql_close",
            Route::Eql { .. } => "eql",
        }
    }
}

/// Why a route is denied, by security.md catalogue category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// A1–A3: `_doc`, `_source`, `_mget`, `_explain` (no filterable query).
    DocumentRead,
    /// A4: `_termvectors`, `_mtermvectors`.
    TermVectors,
    /// A5: `_validate` (rewrite/explain leak terms).
    Validate,
    /// A6: search templates, `_render`, stored scripts.
    Templates,
    /// A7: SQL.
    Sql,
    /// A8: EQL.
    Eql,
    /// A9: ES|QL.
    Esql,
    /// A10: `_terms_enum`.
    TermsEnum,
    /// A11/A23: index metadata and administration.
    Metadata,
    /// A12: `_cat`.
    Cat,
    /// A13: `_knn_search`.
    KnnSearch,
    /// A14: `_rank_eval`.
    RankEval,
    /// A15: `_graph/explore`.
    Graph,
    /// A16–A18, A21: scroll, PIT and async ids are not bound to tokens yet.
    Continuation,
    /// A19: writes.
    Write,
    /// A22: security APIs.
    Security,
    /// A24: ingest simulate and pipelines.
    Ingest,
    /// A25: ML and transform previews.
    Preview,
    /// A26: fleet search clones.
    Fleet,
    /// A27: search applications and query rules.
    SearchApplication,
    /// A28: cluster, node and task introspection.
    Cluster,
    /// A29: vector tiles and rollup search.
    VectorTiles,
    /// A30: painless execute.
    Painless,
    /// A31: OpenSearch plugin surfaces.
    Plugin,
    /// Not needed by a filtered read token; denied by default.
    Unknown,
}

impl Denied {
    /// The catalogue items this category covers.
    pub fn catalogue(self) -> &'static [&'static str] {
        match self {
            Denied::DocumentRead => &["A1", "A2", "A3"],
            Denied::TermVectors => &["A4"],
            Denied::Validate => &["A5", "A11"],
            Denied::Templates => &["A6"],
            Denied::Sql => &["A7"],
            Denied::Eql => &["A8"],
            Denied::Esql => &["A9"],
            Denied::TermsEnum => &["A10"],
            Denied::Metadata => &["A11", "A23"],
            Denied::Cat => &["A12"],
            Denied::KnnSearch => &["A13"],
            Denied::RankEval => &["A14"],
            Denied::Graph => &["A15"],
            Denied::Continuation => &["A16", "A17", "A18", "A21"],
            Denied::Write => &["A19"],
            Denied::Security => &["A22"],
            Denied::Ingest => &["A24"],
            Denied::Preview => &["A25"],
            Denied::Fleet => &["A26"],
            Denied::SearchApplication => &["A27"],
            Denied::Cluster => &["A28"],
            Denied::VectorTiles => &["A29"],
            Denied::Painless => &["A30"],
            Denied::Plugin => &["A31"],
            Denied::Unknown => &[],
        }
    }

    /// A short name of the action family for the client-facing reason.
    pub fn action(self) -> &'static str {
        match self {
            Denied::DocumentRead => "document read",
            Denied::TermVectors => "term vectors",
            Denied::Validate => "validate query",
            Denied::Templates => "templates and scripts",
            Denied::Sql => "sql",
            Denied::Eql => "eql",
            Denied::Esql => "esql",
            Denied::TermsEnum => "terms enum",
            Denied::Metadata => "index metadata and administration",
            Denied::Cat => "cat",
            Denied::KnnSearch => "knn search",
            Denied::RankEval => "rank eval",
            Denied::Graph => "graph explore",
            Denied::Continuation => "scroll, point in time and async search",
            Denied::Write => "write",
            Denied::Security => "security",
            Denied::Ingest => "ingest",
            Denied::Preview => "ml and transform",
            Denied::Fleet => "fleet",
            Denied::SearchApplication => "search application and query rules",
            Denied::Cluster => "cluster administration",
            Denied::VectorTiles => "vector tiles and rollup search",
            Denied::Painless => "painless execute",
            Denied::Plugin => "plugin",
            Denied::Unknown => "unknown",
        }
    }

    /// The rejection the client gets.
    pub fn rejection(self) -> Rejection {
        Rejection::forbidden(format!(
            "action [{}] is not allowed for this token",
            self.action()
        ))
    }
}

/// The outcome of [`classify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Allowed(Route),
    Denied(Denied),
}

/// Parses the request method; anything outside GET/HEAD/POST/PUT/DELETE is 405.
pub fn parse_method(method: &str) -> Result<Method, Rejection> {
    match method {
        "GET" => Ok(Method::Get),
        "HEAD" => Ok(Method::Head),
        "POST" => Ok(Method::Post),
        "PUT" => Ok(Method::Put),
        "DELETE" => Ok(Method::Delete),
        _ => Err(Rejection {
            kind: RejectKind::MethodNotAllowed,
            reason: "this method is not allowed".to_string(),
        }),
    }
}

/// Classifies `(method, raw path)`. Malformed paths are rejected; well-formed paths that are
/// not on the allow-list come back as [`Endpoint::Denied`].
pub fn classify(method: Method, raw_path: &str) -> Result<Endpoint, Rejection> {
    let segs = split_path(raw_path)?;
    if let Some(route) = allowed(method, &segs)? {
        return Ok(Endpoint::Allowed(route));
    }
    Ok(Endpoint::Denied(deny_category(method, &segs)))
}

/// Splits an origin-form path into raw segments (see the module invariant).
fn split_path(raw: &str) -> Result<Vec<&str>, Rejection> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(Rejection::bad_request(
            "only origin-form request paths are accepted",
        ));
    };
    if raw
        .bytes()
        .any(|b| !(0x21..=0x7e).contains(&b) || matches!(b, b'\\' | b'?' | b'#'))
    {
        return Err(Rejection::bad_request(
            "request path contains characters that are not allowed",
        ));
    }
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segs: Vec<&str> = rest.split('/').collect();
    for s in &segs {
        if s.is_empty() {
            return Err(Rejection::bad_request("request path has an empty segment"));
        }
        if *s == "." || *s == ".." {
            return Err(Rejection::bad_request("request path has a dot segment"));
        }
    }
    Ok(segs)
}

/// Percent-decodes a path value (`{index}`, `{name}`): strict escapes, no `+` translation.
fn decode_value(raw: &str) -> Result<String, Rejection> {
    params::percent_decode(raw, false, "request path")
}

fn allowed(method: Method, segs: &[&str]) -> Result<Option<Route>, Rejection> {
    use Method::{Get, Head, Post};
    let get_or_post = matches!(method, Get | Post);
    let route = match segs {
        [] if matches!(method, Get | Head) => Route::Root,
        ["_search"] if get_or_post => Route::Search { index: None },
        ["_count"] if get_or_post => Route::Count { index: None },
        ["_msearch"] if get_or_post => Route::Msearch { index: None },
        ["_mapping"] if method == Get => Route::Mapping { index: None },
        ["_field_caps"] if get_or_post => Route::FieldCaps { index: None },
        ["_cluster", "health"] if method == Get => Route::ClusterHealth { index: None },
        ["_cluster", "health", index] if method == Get => Route::ClusterHealth {
            index: Some(decode_value(index)?),
        },
        // elasticsearch-py 9 sends POST; it is forwarded as a GET.
        ["_resolve", "index", name] if get_or_post => Route::ResolveIndex {
            name: decode_value(name)?,
        },
        ["_search", "scroll"] if get_or_post => Route::ScrollNext,
        ["_search", "scroll"] if method == Method::Delete => Route::ScrollClear,
        ["_pit"] if method == Method::Delete => Route::PitClose,
        ["_search", "point_in_time"] if method == Method::Delete => Route::OsPitClose,
        [index, "_pit"] if method == Post && !is_api_root(index) => Route::PitOpen {
            index: decode_value(index)?,
        },
        ["_async_search"] if method == Post => Route::AsyncSubmit { index: None },
        [index, "_async_search"] if method == Post && !is_api_root(index) => Route::AsyncSubmit {
            index: Some(decode_value(index)?),
        },
        ["_async_search", "status", id] if method == Get => Route::AsyncById {
            op: AsyncOp::Status,
            id: decode_value(id)?,
        },
        ["_async_search", id] if matches!(method, Get | Method::Delete) => Route::AsyncById {
            op: if method == Get {
                AsyncOp::Get
            } else {
                AsyncOp::Delete
            },
            id: decode_value(id)?,
        },
        [index, "_search", "point_in_time"] if method == Post && !is_api_root(index) => {
            Route::OsPitOpen {
                index: decode_value(index)?,
            }
        }
        ["_validate", "query"] if get_or_post => Route::ValidateQuery { index: None },
        [index, "_validate", "query"] if get_or_post && !is_api_root(index) => {
            Route::ValidateQuery {
                index: Some(decode_value(index)?),
            }
        }
        [index, "_knn_search"] if get_or_post && !is_api_root(index) => Route::KnnSearch {
            index: decode_value(index)?,
        },
        ["_cat", "indices"] if method == Get => Route::CatIndices { index: None },
        ["_cat", "indices", index] if method == Get => Route::CatIndices {
            index: Some(decode_value(index)?),
        },
        [index, "_terms_enum"] if get_or_post && !is_api_root(index) => Route::TermsEnum {
            index: decode_value(index)?,
        },
        [index, "_explain", id] if get_or_post && !is_api_root(index) => Route::Explain {
            index: decode_value(index)?,
            id: decode_value(id)?,
        },
        ["_query"] if method == Post => Route::Esql,
        ["_sql"] if get_or_post => Route::Sql,
        ["_sql", "close"] if method == Post => Route::SqlClose,
        [index, "_eql", "search"] if get_or_post && !is_api_root(index) => Route::Eql {
            index: decode_value(index)?,
        },
        [index, api] if !is_api_root(index) => {
            let index = Some(decode_value(index)?);
            match *api {
                "_search" if get_or_post => Route::Search { index },
                "_count" if get_or_post => Route::Count { index },
                "_msearch" if get_or_post => Route::Msearch { index },
                "_mapping" if method == Get => Route::Mapping { index },
                "_field_caps" if get_or_post => Route::FieldCaps { index },
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(route))
}

/// First segments that are literal API roots in ES/OpenSearch (never an `{index}` value).
fn is_api_root(seg: &str) -> bool {
    seg.starts_with('_') && seg != "_all"
}

fn deny_category(method: Method, segs: &[&str]) -> Denied {
    let Some(first) = segs.first() else {
        return Denied::Unknown;
    };
    if is_api_root(first) {
        return api_category(method, segs);
    }
    // `/{index}[/...]`.
    match segs.get(1) {
        // Create, delete, get or check an index: A11/A23.
        None => Denied::Metadata,
        Some(api) => index_api_category(method, api, &segs[2..]),
    }
}

fn index_api_category(method: Method, api: &str, rest: &[&str]) -> Denied {
    match api {
        "_doc" | "_source" => match method {
            Method::Get | Method::Head => Denied::DocumentRead,
            _ => Denied::Write,
        },
        "_mget" | "_explain" => Denied::DocumentRead,
        "_create" | "_update" | "_bulk" | "_update_by_query" | "_delete_by_query" => Denied::Write,
        "_termvectors" | "_mtermvectors" => Denied::TermVectors,
        "_validate" => Denied::Validate,
        "_search" | "_msearch" if rest.first() == Some(&"template") => Denied::Templates,
        "_search" if rest.first() == Some(&"point_in_time") => Denied::Continuation,
        "_search" | "_count" | "_msearch" | "_field_caps" if rest.is_empty() => Denied::Unknown,
        "_async_search" | "_pit" | "_search" => Denied::Continuation,
        "_eql" => Denied::Eql,
        "_terms_enum" => Denied::TermsEnum,
        "_knn_search" => Denied::KnnSearch,
        "_rank_eval" => Denied::RankEval,
        "_graph" => Denied::Graph,
        "_fleet" => Denied::Fleet,
        "_mvt" | "_rollup_search" => Denied::VectorTiles,
        "_alias"
        | "_aliases"
        | "_analyze"
        | "_cache"
        | "_mapping"
        | "_mappings"
        | "_settings"
        | "_stats"
        | "_segments"
        | "_recovery"
        | "_shard_stores"
        | "_field_caps"
        | "_search_shards"
        | "_flush"
        | "_forcemerge"
        | "_refresh"
        | "_open"
        | "_close"
        | "_clone"
        | "_shrink"
        | "_split"
        | "_rollover"
        | "_block"
        | "_disk_usage"
        | "_downsample"
        | "_field_usage_stats"
        | "_lifecycle"
        | "_reload_search_analyzers"
        | "_upgrade"
        | "_freeze"
        | "_unfreeze"
        | "_data_stream" => Denied::Metadata,
        "_plugins" | "_opendistro" => Denied::Plugin,
        _ => Denied::Unknown,
    }
}

fn api_category(method: Method, segs: &[&str]) -> Denied {
    let first = segs.first().copied().unwrap_or("");
    let second = segs.get(1).copied();
    match first {
        "_bulk" | "_update_by_query" | "_delete_by_query" | "_reindex" => Denied::Write,
        "_mget" | "_explain" => Denied::DocumentRead,
        "_mtermvectors" | "_termvectors" => Denied::TermVectors,
        "_validate" => Denied::Validate,
        "_search" | "_msearch" if second == Some("template") => Denied::Templates,
        "_search" if second == Some("scroll") || second == Some("point_in_time") => {
            Denied::Continuation
        }
        "_render" => Denied::Templates,
        "_scripts" if second == Some("painless") => Denied::Painless,
        "_scripts" | "_script_context" | "_script_language" => Denied::Templates,
        "_sql" => Denied::Sql,
        "_eql" => Denied::Eql,
        "_query" | "_esql" => Denied::Esql,
        "_terms_enum" => Denied::TermsEnum,
        "_cat" => Denied::Cat,
        "_knn_search" => Denied::KnnSearch,
        "_rank_eval" => Denied::RankEval,
        "_graph" => Denied::Graph,
        "_async_search" | "_pit" => Denied::Continuation,
        "_security" => Denied::Security,
        "_ingest" => Denied::Ingest,
        "_ml" | "_transform" | "_data_frame" => Denied::Preview,
        "_fleet" => Denied::Fleet,
        "_application" | "_query_rules" => Denied::SearchApplication,
        "_cluster"
        | "_nodes"
        | "_tasks"
        | "_info"
        | "_health_report"
        | "_remote"
        | "_component_template" => Denied::Cluster,
        "_mvt" | "_rollup_search" => Denied::VectorTiles,
        "_plugins" | "_opendistro" | "_insights" => Denied::Plugin,
        "_alias" | "_aliases" | "_analyze" | "_cache" | "_mapping" | "_settings" | "_stats"
        | "_segments" | "_recovery" | "_shard_stores" | "_field_caps" | "_resolve"
        | "_search_shards" | "_data_stream" | "_index_template" | "_template" | "_flush"
        | "_forcemerge" | "_refresh" | "_lifecycle" | "_create_from" | "_snapshot"
        | "_migration" | "_open" | "_close" => Denied::Metadata,
        _ => {
            let _ = method;
            Denied::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn check(method: Method, path: &str) -> Result<Endpoint, Rejection> {
        classify(method, path)
    }

    fn allowed_route(method: Method, path: &str) -> Option<Route> {
        match check(method, path) {
            Ok(Endpoint::Allowed(r)) => Some(r),
            _ => None,
        }
    }

    fn idx(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn classifies_the_allowed_routes() {
        use Method::*;
        let cases = [
            (Get, "/", Route::Root),
            (Head, "/", Route::Root),
            (Get, "/_search", Route::Search { index: None }),
            (Post, "/_search/", Route::Search { index: None }), // IDX-31 trailing slash
            (
                Post,
                "/logs-a/_search",
                Route::Search {
                    index: idx("logs-a"),
                },
            ),
            (
                Get,
                "/logs-a%2Csecret/_search",
                Route::Search {
                    index: idx("logs-a,secret"),
                },
            ), // IDX-03: decoded, checked later
            (Get, "/_all/_search", Route::Search { index: idx("_all") }),
            (Post, "/_count", Route::Count { index: None }),
            (
                Get,
                "/logs-*/_count",
                Route::Count {
                    index: idx("logs-*"),
                },
            ),
            (Post, "/_msearch", Route::Msearch { index: None }),
            (
                Get,
                "/logs-a/_msearch",
                Route::Msearch {
                    index: idx("logs-a"),
                },
            ),
            (Get, "/_mapping", Route::Mapping { index: None }),
            (
                Get,
                "/logs-a/_mapping",
                Route::Mapping {
                    index: idx("logs-a"),
                },
            ),
            (Get, "/_field_caps", Route::FieldCaps { index: None }),
            (
                Post,
                "/logs-a/_field_caps",
                Route::FieldCaps {
                    index: idx("logs-a"),
                },
            ),
            (
                Get,
                "/_cluster/health",
                Route::ClusterHealth { index: None },
            ),
            (
                Get,
                "/_cluster/health/logs-*",
                Route::ClusterHealth {
                    index: idx("logs-*"),
                },
            ),
            (
                Get,
                "/_resolve/index/logs-%2A",
                Route::ResolveIndex {
                    name: "logs-*".to_string(),
                },
            ),
        ];
        for (m, p, want) in cases {
            assert_eq!(allowed_route(m, p), Some(want), "{m:?} {p}");
        }
    }

    #[test]
    fn classifies_the_async_search_routes() {
        use Method::*;
        let by_id = |op, id: &str| Route::AsyncById {
            op,
            id: id.to_string(),
        };
        let cases = [
            (Post, "/_async_search", Route::AsyncSubmit { index: None }),
            (
                Post,
                "/logs-%2A/_async_search/",
                Route::AsyncSubmit {
                    index: idx("logs-*"),
                },
            ),
            (
                Get,
                "/_async_search/esgc1_abc",
                by_id(AsyncOp::Get, "esgc1_abc"),
            ),
            (
                Get,
                "/_async_search/status/esgc1_abc",
                by_id(AsyncOp::Status, "esgc1_abc"),
            ),
            (
                Delete,
                "/_async_search/esgc1_abc",
                by_id(AsyncOp::Delete, "esgc1_abc"),
            ),
            // The id is decoded like any path value; opening it decides.
            (Get, "/_async_search/a%3D", by_id(AsyncOp::Get, "a=")),
        ];
        for (m, p, want) in cases {
            assert_eq!(allowed_route(m, p), Some(want), "{m:?} {p}");
        }
        assert_eq!(
            allowed_route(Post, "/_async_search").map(|r| r.action()),
            Some("async_search_submit")
        );
    }

    #[test]
    fn denies_lookalike_and_normalisation_tricks() {
        use Method::*;
        let cases = [
            (Get, "/%5Fsearch"), // IDX-30: literal segments are not decoded
            (Get, "/logs-a/%5Fsearch"),
            (Get, "/logs-a/_SEARCH"),    // case-sensitive
            (Post, "/_search/template"), // A6
            (Post, "/logs-a/_search/template"),
            (Get, "/_search/scroll/abc"), // STATE-05: ids only in the body
            (Delete, "/_search/scroll/_all"),
            (Get, "/_search/point_in_time/_all"),
            (Post, "/logs-a/_fleet/_fleet_search"), // A26
            (Post, "/_fleet/_fleet_msearch"),
            (Get, "/_searchable_snapshots/stats"),
            (Get, "/logs-a/_search_shards"),
            (Post, "/_application/search_application/x/_search"),
            (Get, "/logs-a/doc/_search"), // ENC-30 typed route
            (Get, "/logs-b/doc/b1"),      // ENC-29
            (Get, "/logs-a/_doc/a1"),     // EP-01
            (Head, "/logs-a/_doc/a1"),
            (Post, "/_mget"),
            (Delete, "/logs-a/_search"),
            (Put, "/logs-a/_mapping"),
            (Get, "/_mapping/field/x"),
            (Get, "/_cluster/state"),
            (Get, "/_resolve/cluster/logs-a"),
            (Head, "/_search"),
            (Delete, "/"),
            (Get, "/_async_search"),
            (Put, "/logs-a/_async_search"),
            (Post, "/_async_search/x"),
            (Get, "/_async_search/x/y"),
            (Delete, "/_async_search/status/x"),
            (Get, "/logs-a/_async_search/x"),
            (Post, "/_sql/translate"),
            (Post, "/_query/async"),
            (Get, "/logs-a/_pit"),
            (Get, "/_plugins/_sql"),
        ];
        for (m, p) in cases {
            match check(m, p) {
                Ok(Endpoint::Denied(_)) | Err(_) => {}
                Ok(Endpoint::Allowed(r)) => panic!("{m:?} {p} allowed as {r:?}"),
            }
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        use Method::*;
        let cases = [
            "logs-a/_search", // not origin-form
            "http://es/_search",
            "//secret/_search",                     // IDX-27
            "/logs-a/../secret/_search",            // IDX-26
            "/logs-a/_search/../../secret/_search", // IDX-28
            "/./_search",
            "/_search//",
            "/logs-a/_search\u{0}", // IDX-33
            "/logs a/_search",
            "/logs-a%zz/_search",
            "/logs-a%ff/_search",
            "/lo\u{e9}gs/_search",
            "/logs-a\\_search",
        ];
        for p in cases {
            let err = check(Get, p).unwrap_err();
            assert_eq!(err.kind, RejectKind::BadRequest, "{p}");
        }
    }

    #[test]
    fn encoded_slash_and_dots_in_index_stay_inside_the_value() {
        // IDX-29: `%2F` is decoded into the index value, which index checks then reject.
        assert_eq!(
            allowed_route(Method::Get, "/logs-a%2F..%2Fsecret/_search"),
            Some(Route::Search {
                index: idx("logs-a/../secret")
            })
        );
    }

    #[test]
    fn unsupported_methods_are_405() {
        for m in ["TRACE", "CONNECT", "OPTIONS", "PATCH", "get", "FOO"] {
            assert_eq!(
                parse_method(m).unwrap_err().kind,
                RejectKind::MethodNotAllowed,
                "{m}"
            );
        }
        assert_eq!(parse_method("GET"), Ok(Method::Get));
    }

    #[test]
    fn wrong_method_on_an_allowed_path_is_denied_without_a_misleading_family() {
        for (m, p) in [
            (Method::Delete, "/logs-a/_search"),
            (Method::Put, "/logs-a/_count"),
        ] {
            assert_eq!(
                check(m, p),
                Ok(Endpoint::Denied(Denied::Unknown)),
                "{m:?} {p}"
            );
        }
        assert_eq!(
            check(Method::Put, "/logs-a/_field_caps"),
            Ok(Endpoint::Denied(Denied::Unknown))
        );
        assert_eq!(
            check(Method::Get, "/logs-a/_async_search"),
            Ok(Endpoint::Denied(Denied::Continuation))
        );
    }

    #[test]
    fn denied_reason_names_the_action_family() {
        let Ok(Endpoint::Denied(d)) = check(Method::Post, "/_sql/translate") else {
            panic!("_sql not denied");
        };
        assert_eq!(d, Denied::Sql);
        assert_eq!(
            d.rejection().reason,
            "action [sql] is not allowed for this token"
        );
    }

    fn read_tsv(name: &str) -> Vec<Vec<String>> {
        let path = format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// "POST/PUT" rows: take the first. `None` for methods esgate answers with 405.
    fn method_of(s: &str) -> Option<Method> {
        let first = s.split('/').next().unwrap_or(s);
        parse_method(first).ok()
    }

    fn decision(m: Option<Method>, path: &str) -> String {
        let Some(m) = m else {
            return "reject:MethodNotAllowed".to_string();
        };
        match classify(m, path) {
            Ok(Endpoint::Allowed(r)) => format!("allow:{}", r.action()),
            Ok(Endpoint::Denied(d)) => format!("deny:{d:?}"),
            Err(e) => format!("reject:{:?}", e.kind),
        }
    }

    /// Routes where esgate decides differently from the TSV's proposal, with the reason.
    const ES_OVERRIDES: &[(&str, &str, &str)] = &[
        (
            "POST",
            "/_async_search",
            "async search submit, rewritten like _search; the id is sealed for this token",
        ),
        (
            "POST",
            "/{index}/_async_search",
            "async search submit on checked indices; the id is sealed for this token",
        ),
        (
            "GET",
            "/_async_search/{id}",
            "bound: only async search ids sealed for this token",
        ),
        (
            "GET",
            "/_async_search/status/{id}",
            "bound: only async search ids sealed for this token",
        ),
        (
            "DELETE",
            "/_async_search/{id}",
            "bound: only async search ids sealed for this token",
        ),
        (
            "POST",
            "/_resolve/index/{name}",
            "the client's default method for resolve_index; forwarded as a checked GET",
        ),
        (
            "POST",
            "/_search/scroll",
            "bound: only scroll ids sealed for this token",
        ),
        (
            "DELETE",
            "/_search/scroll",
            "bound: only own sealed ids, never _all",
        ),
        (
            "POST",
            "/{index}/_pit",
            "index-checked; the id is sealed for this token",
        ),
        ("DELETE", "/_pit", "bound: only own sealed ids"),
        (
            "GET",
            "/",
            "root is forwarded (assignment: action root; version banner accepted)",
        ),
        ("HEAD", "/", "root ping is forwarded (clients probe it)"),
        (
            "POST",
            "/{index}/_field_caps",
            "field_caps on checked indices; field-name residual (A11) accepted",
        ),
        (
            "POST",
            "/_field_caps",
            "field_caps defaults to the token's patterns",
        ),
        (
            "GET",
            "/_cluster/health",
            "the token's indices only (level=cluster, never a wait), clients probe it",
        ),
        (
            "GET",
            "/_cluster/health/{index}",
            "health of the checked, narrowed indices (level=cluster, never a wait)",
        ),
        (
            "GET",
            "/{index}/_mapping",
            "mapping on checked indices; field-name residual (A11) accepted",
        ),
        (
            "GET",
            "/_mapping",
            "mapping defaults to the token's patterns",
        ),
        (
            "POST",
            "/{index}/_validate/query",
            "query wrapped in the token's filters; rewrite and all_shards refused",
        ),
        (
            "POST",
            "/_validate/query",
            "validate_query defaults to the token's patterns",
        ),
        (
            "POST",
            "/{index}/_terms_enum",
            "answered from a terms aggregation with the token's filters (transform)",
        ),
        (
            "GET",
            "/_cat/indices",
            "the token's indices only; counting columns removed for filtered tokens",
        ),
        (
            "GET",
            "/_cat/indices/{index}",
            "the narrowed expression only; counting columns removed for filtered tokens",
        ),
        (
            "POST",
            "/{index}/_explain/{id}",
            "query wrapped in the token's filters; unmatched answers like missing",
        ),
        (
            "POST",
            "/_query",
            "ES|QL: one checked FROM, allow-listed commands, filter wrapped (es::esql)",
        ),
        (
            "POST",
            "/_sql",
            "SQL: one checked table, filter wrapped, cursors sealed (es::sql)",
        ),
        ("POST", "/_sql/close", "bound: only own sealed SQL cursors"),
        (
            "POST",
            "/{index}/_eql/search",
            "EQL on checked path indices, filter wrapped, synchronous only",
        ),
    ];

    const OS_OVERRIDES: &[(&str, &str, &str)] = &[
        (
            "POST",
            "/_search/scroll",
            "bound: only scroll ids sealed for this token",
        ),
        (
            "DELETE",
            "/_search/scroll",
            "bound: only own sealed ids, never _all",
        ),
        (
            "POST",
            "/index/_search/point_in_time",
            "index-checked; the id is sealed for this token",
        ),
        (
            "DELETE",
            "/_search/point_in_time",
            "bound: only own sealed ids",
        ),
        ("GET", "/", "root is forwarded"),
        ("HEAD", "/", "root ping is forwarded"),
        (
            "GET",
            "/_resolve/index/name",
            "resolve_index with a checked expression",
        ),
        (
            "POST",
            "/index/_field_caps",
            "field_caps on checked indices",
        ),
        ("GET", "/index/_mapping", "mapping on checked indices"),
        ("GET", "/_cluster/health", "the token's indices only"),
        (
            "GET",
            "/_cluster/health/index",
            "health of the checked, narrowed indices",
        ),
        (
            "POST",
            "/index/_validate/query",
            "query wrapped in the token's filters; rewrite and all_shards refused",
        ),
        (
            "GET",
            "/_cat/indices/index",
            "the narrowed expression only; counting columns removed for filtered tokens",
        ),
    ];

    fn instantiate_es(template: &str) -> String {
        let mut out = String::new();
        for seg in template.split('/').skip(1) {
            out.push('/');
            let value = match seg {
                "{index}" => "logs-a",
                "{id}" => "a1",
                s if s.starts_with('{') => "x",
                s => s,
            };
            out.push_str(value);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    fn instantiate_os(template: &str) -> String {
        let mut out = String::new();
        let mut previous = "";
        for seg in template.split('/').skip(1) {
            out.push('/');
            let value = match seg {
                // `/_resolve/index/name`: here `index` is the literal API segment.
                "index" if previous == "_resolve" => "index",
                "index" => "logs-a",
                "id" => "a1",
                "name" => "logs-a",
                s => s,
            };
            out.push_str(value);
            previous = seg;
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    #[test]
    fn every_elasticsearch_route_gets_the_tsv_decision_or_a_listed_override() {
        let rows = read_tsv("endpoints-es.tsv");
        assert!(rows.len() > 700, "inventory too small: {}", rows.len());
        let mut problems = Vec::new();
        let mut categories: BTreeMap<String, usize> = BTreeMap::new();
        for row in &rows {
            let [_, _, method, template, tsv, reason] = row.as_slice() else {
                panic!("bad row {row:?}");
            };
            let m = method_of(method);
            let path = instantiate_es(template);
            let got = decision(m, &path);
            *categories.entry(got.clone()).or_default() += 1;
            let first_method = method.split('/').next().unwrap_or("");
            let overridden = ES_OVERRIDES
                .iter()
                .any(|(om, ot, _)| *om == first_method && *ot == template);
            let allowed = got.starts_with("allow:");
            let tsv_allows = tsv.starts_with("ALLOW-REWRITE") && !tsv.contains("optional");
            if overridden {
                if !allowed {
                    problems.push(format!(
                        "override not allowed: {method} {template} -> {got}"
                    ));
                }
                continue;
            }
            if allowed != tsv_allows {
                problems.push(format!("{method} {template} [{tsv}] -> {got}"));
            }
            // Rows the TSV ties to a catalogue item must land in a category covering it.
            if let Some(Ok(Endpoint::Denied(d))) = m.map(|m| classify(m, &path)) {
                let ids: Vec<&str> = reason
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| {
                        w.len() >= 2
                            && w.starts_with('A')
                            && w[1..].bytes().all(|b| b.is_ascii_digit())
                    })
                    .collect();
                if !ids.is_empty() && !ids.iter().any(|id| d.catalogue().contains(id)) {
                    problems.push(format!("{method} {template} [{reason}] -> {d:?}"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
        assert!(categories.len() > 10, "{categories:?}");
    }

    #[test]
    fn every_opensearch_route_gets_the_tsv_decision_or_a_listed_override() {
        let rows = read_tsv("endpoints-opensearch.tsv");
        assert!(rows.len() > 400, "inventory too small: {}", rows.len());
        let mut problems = Vec::new();
        for row in &rows {
            let [method, template, tsv] = row.as_slice() else {
                panic!("bad row {row:?}");
            };
            let m = method_of(method);
            let got = decision(m, &instantiate_os(template));
            let overridden = OS_OVERRIDES
                .iter()
                .any(|(om, ot, _)| om == method && ot == template);
            let allowed = got.starts_with("allow:");
            let tsv_allows = tsv.starts_with("ALLOW-REWRITE") && !tsv.contains("optional");
            if overridden {
                if !allowed {
                    problems.push(format!(
                        "override not allowed: {method} {template} -> {got}"
                    ));
                }
                continue;
            }
            if allowed != tsv_allows {
                problems.push(format!("{method} {template} [{tsv}] -> {got}"));
            }
        }
        assert!(
            problems.is_empty(),
            "{} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Mutated paths are never classified as a different allowed route than ES would use.
            #[test]
            fn mutated_paths_never_reach_another_allowed_route(
                prefix in prop::sample::select(vec!["", "/logs-a", "/_all", "/%5Fall", "/logs-%2A"]),
                api in prop::sample::select(vec!["_search", "_count", "_msearch", "_mapping", "_field_caps"]),
                mutation in 0usize..7,
            ) {
                let api_m = match mutation {
                    0 => api.to_string(),
                    1 => api.replacen('_', "%5F", 1),
                    2 => api.to_uppercase(),
                    3 => format!("{api}/."),
                    4 => format!("./{api}"),
                    5 => format!("/{api}"),
                    _ => format!("{api}/x"),
                };
                let path = format!("{prefix}/{api_m}");
                let got = classify(Method::Post, &path);
                if let Ok(Endpoint::Allowed(route)) = got {
                    prop_assert_eq!(mutation, 0, "mutated path {} allowed", path);
                    let action = route.action();
                    prop_assert_eq!(action, api.trim_start_matches('_'));
                }
            }

            #[test]
            fn arbitrary_paths_never_panic(path in "[/a-z_%0-9.*,:-]{0,30}") {
                let _ = classify(Method::Get, &path);
            }
        }
    }
}
