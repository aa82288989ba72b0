//! Route classification with Elasticsearch router semantics (security.md I-1, C1, C8).
//!
//! Invariant: the raw origin-form path is split on `/` once; literal segments are compared
//! undecoded and case-sensitively (so `%5Fsearch` is not `_search`), only the value bound to
//! `{index}`/`{name}` is percent-decoded; one trailing slash is tolerated (ES drops it), empty
//! segments, `.`/`..`, control characters and non-ASCII bytes are rejected. The result is one
//! of a closed set of allowed [`Route`]s or a named [`Denied`] category; there is no
//! substring matching and no default allow. Every route of both endpoint inventories
//! (`crates/es/data/endpoints-*.tsv`) gets a decision here; the test at the bottom proves it.

use smallvec::SmallVec;

use crate::{request::params, Method, RejectKind, Rejection};

/// The routes a read token may use: what the path says. What esgate does with each (its
/// parameters, body, rewrite and answer) is its row in the route table, `routes::spec`.
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
    /// The route's decoded values taken, as the strings decoded from the path (issue 10: a plan
    /// keeps them without a copy): the value the path binds to `{index}` (or `{name}`), `None`
    /// when the route takes no index or the path names none (the token's patterns stand in);
    /// the id it names (`_explain/{id}`, `_async_search/{id}`).
    pub fn into_values(self) -> (Option<String>, Option<String>) {
        match self {
            Route::Search { index }
            | Route::Count { index }
            | Route::Msearch { index }
            | Route::Mapping { index }
            | Route::FieldCaps { index }
            | Route::ClusterHealth { index }
            | Route::AsyncSubmit { index }
            | Route::ValidateQuery { index }
            | Route::CatIndices { index } => (index, None),
            Route::PitOpen { index }
            | Route::OsPitOpen { index }
            | Route::KnnSearch { index }
            | Route::TermsEnum { index }
            | Route::Eql { index } => (Some(index), None),
            Route::Explain { index, id } => (Some(index), Some(id)),
            Route::ResolveIndex { name } => (Some(name), None),
            Route::AsyncById { id, .. } => (None, Some(id)),
            Route::Root
            | Route::ScrollNext
            | Route::ScrollClear
            | Route::PitClose
            | Route::OsPitClose
            | Route::Esql
            | Route::Sql
            | Route::SqlClose => (None, None),
        }
    }
}

/// The three operations on an existing async search (`routes::async_search`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsyncOp {
    /// `GET /_async_search/{id}`: the (partial or final) results.
    Get,
    /// `GET /_async_search/status/{id}`: progress without results.
    Status,
    /// `DELETE /_async_search/{id}`.
    Delete,
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
    let segs = segs.as_slice();
    if let Some(route) = allowed(method, segs)? {
        return Ok(Endpoint::Allowed(route));
    }
    Ok(Endpoint::Denied(deny_category(method, segs)))
}

/// A path's raw segments, in order: eight kept in place, a longer path's spilled to the heap.
/// No route has more than three, so a request's path fits (issue 10: a `Vec` was an allocation
/// and its free on every request).
type Segments<'a> = SmallVec<[&'a str; 8]>;

/// Splits an origin-form path into raw segments (see the module invariant).
fn split_path(raw: &str) -> Result<Segments<'_>, Rejection> {
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
    let mut segs = Segments::new();
    if rest.is_empty() {
        return Ok(segs);
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    for s in rest.split('/') {
        if s.is_empty() {
            return Err(Rejection::bad_request("request path has an empty segment"));
        }
        if s == "." || s == ".." {
            return Err(Rejection::bad_request("request path has a dot segment"));
        }
        segs.push(s);
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
mod tests;
