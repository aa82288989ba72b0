//! The route table: every route a `read` token may use, and the one module that handles it.
//!
//! A route family is one module here that owns everything esgate knows about it: its query
//! parameters, whether it takes an index expression and a body, how the body is checked and
//! rewritten into the upstream request, and how the backend's answer is handled (ids sealed,
//! doc-id sort values sealed, or the answer rebuilt by a [`Transform`]). Each family declares
//! one `Spec` per route; `spec` is the table that names the `Spec` of every [`Route`]. The
//! generic steps in `flow` (plan, prepare, authorize) drive the table and know no route by
//! name. The answers come back here too: [`seal_answer`] and [`apply`] dispatch to the route's
//! module.
//!
//! | family | routes |
//! | --- | --- |
//! | [`search`] | `_search`, `_count` (URI search, a point in time in the body) |
//! | [`async_search`] | `_async_search` submit, poll, status, delete; its answers' ids |
//! | [`msearch`] | `_msearch` |
//! | [`scroll_pit`] | `_search/scroll`, both dialects' point in time open and close |
//! | [`field_caps`] | `_field_caps` |
//! | [`terms_enum`] | `_terms_enum`, answered from a filtered aggregation |
//! | [`cat_indices`] | `_cat/indices`, rendered by esgate |
//! | [`explain`] | `_explain`, answered from a search on the one document |
//! | [`validate_query`] | `_validate/query` |
//! | [`knn_search`] | the deprecated `_knn_search`, forwarded as a search |
//! | [`querylang`] | ES\|QL `_query`, SQL `_sql` and `_sql/close`, EQL `_eql/search` |
//! | [`cluster_health`] | `_cluster/health`, the token's view |
//! | [`metadata`] | `GET /`, `_mapping`, `_resolve/index` (its answer's names narrowed by esgate) |
//! | [`identity`] | `_security/_authenticate`, `_security/user/_has_privileges`, answered by esgate without the backend (the proxy asks [`identity::route`] before the table) |
//!
//! Adding a route: its [`Route`] variant and path in `request::endpoint` (what the path says);
//! then, in its family's module, its parameter list, its `Spec` const and its `prepare`
//! function (what esgate does with it); and one row in `spec`. The compiler refuses a variant
//! without a row.
//!
//! Invariant: a `prepare` builds the forwarded path from checked values only and the
//! forwarded body itself (never the client's bytes); it names every index expression the
//! request reaches in `Upstream::to_resolve`, with its `Shape`, so that `authorize` can check
//! and narrow it.

pub mod async_search;
pub mod cat_indices;
pub mod cluster_health;
pub mod explain;
pub mod field_caps;
pub mod identity;
pub mod knn_search;
pub mod metadata;
pub mod msearch;
pub mod querylang;
pub mod scroll_pit;
pub mod search;
pub mod terms_enum;
pub mod validate_query;

use serde_json::Value;

use crate::dsl::histogram_fields::HistogramFields;
use crate::ids::continuation::{self, Binding, IdKind, Named, Release, Seal};
use crate::ids::ordinals::{self, AnswerError, SortSeal};
use crate::indices::index::Expression;
use crate::request::body;
use crate::request::dialect::DialectRoute;
use crate::request::endpoint::{AsyncOp, Route};
use crate::request::params::{Param, ParamSet};
use crate::{ForwardBody, Method, Rejection, RequestHead, Scope};

/// Longest path esgate forwards: Elasticsearch refuses request lines over 4 KiB by default.
pub(crate) const MAX_FORWARDED_PATH: usize = 3500;

/// The content type of a forwarded JSON body.
const JSON_BODY: &str = "application/json";

/// Everything esgate knows about one route, declared by its family's module.
#[derive(Debug)]
pub(crate) struct Spec {
    /// The action name in permits, audit records, metrics and errors.
    pub action: &'static str,
    /// The query parameters the route takes (`params`).
    pub params: ParamSet,
    /// Whether the route reaches indices through an expression in its path (the token's
    /// patterns when the path names none), checked in `plan` and resolved before `authorize`.
    pub index: bool,
    /// Whether the proxy must read the request body (capped) for `prepare`.
    pub body: bool,
    /// A route of one dialect only: forwarded only to a backend of that dialect.
    pub dialect: Option<DialectRoute>,
    /// Builds the upstream request and says how its answer is handled.
    pub prepare: fn(&mut Request<'_>) -> Result<Upstream, Rejection>,
}

/// The table: the [`Spec`] of every route a `read` token may use. No wildcard arm: a new
/// [`Route`] variant does not compile until it has a row here.
pub(crate) fn spec(route: &Route) -> &'static Spec {
    match route {
        Route::Root => &metadata::ROOT,
        Route::Mapping { .. } => &metadata::MAPPING,
        Route::ResolveIndex { .. } => &metadata::RESOLVE_INDEX,
        Route::Search { .. } => &search::SEARCH,
        Route::Count { .. } => &search::COUNT,
        Route::Msearch { .. } => &msearch::MSEARCH,
        Route::FieldCaps { .. } => &field_caps::FIELD_CAPS,
        Route::ClusterHealth { .. } => &cluster_health::CLUSTER_HEALTH,
        Route::ScrollNext => &scroll_pit::SCROLL,
        Route::ScrollClear => &scroll_pit::CLEAR_SCROLL,
        Route::PitOpen { .. } => &scroll_pit::OPEN_PIT,
        Route::PitClose => &scroll_pit::CLOSE_PIT,
        Route::OsPitOpen { .. } => &scroll_pit::OS_OPEN_PIT,
        Route::OsPitClose => &scroll_pit::OS_CLOSE_PIT,
        Route::AsyncSubmit { .. } => &async_search::SUBMIT,
        Route::AsyncById { op, .. } => match op {
            AsyncOp::Get => &async_search::GET,
            AsyncOp::Status => &async_search::STATUS,
            AsyncOp::Delete => &async_search::DELETE,
        },
        Route::ValidateQuery { .. } => &validate_query::VALIDATE_QUERY,
        Route::KnnSearch { .. } => &knn_search::KNN_SEARCH,
        Route::TermsEnum { .. } => &terms_enum::TERMS_ENUM,
        Route::CatIndices { .. } => &cat_indices::CAT_INDICES,
        Route::Explain { .. } => &explain::EXPLAIN,
        Route::Esql => &querylang::ESQL,
        Route::Sql => &querylang::SQL,
        Route::SqlClose => &querylang::SQL_CLOSE,
        Route::Eql { .. } => &querylang::EQL,
    }
}

/// What a route's `prepare` works from: the checked request head and parameters, the token's
/// scope, and the raw body (decoded on demand, strictly).
pub(crate) struct Request<'a> {
    pub head: RequestHead<'a>,
    /// The client's method (checked by `endpoint::classify` for the route).
    pub method: Method,
    pub scope: &'a Scope,
    /// The checked index expression (for a [`Spec::index`] route): the path's, or the token's
    /// patterns when the path names none.
    pub index: Option<Expression>,
    /// Whether the path named the index expression (rather than the token's patterns).
    pub named_index: bool,
    /// The id the path names (`_explain/{id}`, `_async_search/{id}`), percent-decoded.
    pub path_id: Option<String>,
    /// The allow-listed parameters to forward (response shaping and URI search taken out); a
    /// route may replace them.
    pub params: Vec<Param>,
    /// `?q=` and its companions as a body query (`uri_search`), for the routes that take it.
    pub uri_query: Option<Value>,
    pub raw_body: Option<&'a [u8]>,
    /// The cap on the decoded body (413 when over).
    pub max_body: usize,
    /// The most searches an `_msearch` may carry (`Plan::searches_at_most`).
    pub max_searches: Option<u32>,
    /// Where decoding and parsing the body claim their memory.
    pub meter: &'a crate::memory::Meter<'a>,
}

impl Request<'_> {
    /// The checked index expression.
    pub fn index(&self) -> Result<&Expression, Rejection> {
        self.index
            .as_ref()
            .ok_or_else(|| Rejection::forbidden("index expression is missing"))
    }

    /// [`Request::index`], taken out of the request (the route reads it no more): missing
    /// afterwards.
    pub fn take_index(&mut self) -> Result<Expression, Rejection> {
        self.index
            .take()
            .ok_or_else(|| Rejection::forbidden("index expression is missing"))
    }

    /// The id the path names.
    pub fn path_id(&self) -> Result<&str, Rejection> {
        self.path_id
            .as_deref()
            .ok_or_else(|| Rejection::forbidden("the path names no id"))
    }

    /// The body decoded strictly as one JSON value (`None`: no body), and room for the copies
    /// of the token's clauses its rewrite may make claimed ([`claim_clause_copies`]).
    pub fn json_body(&self) -> Result<Option<Value>, Rejection> {
        let body = body::decode_json(
            self.raw_body,
            self.head.content_type,
            self.head.content_encoding,
            self.max_body,
            self.meter,
        )?;
        if let Some(v) = &body {
            claim_clause_copies(self.meter, &self.scope.filters, objects(v), SERDE_COPY)?;
        }
        Ok(body)
    }

    /// Whether the client asked for a scroll.
    pub fn scrolls(&self) -> bool {
        self.params.iter().any(|(k, _)| k == "scroll")
    }
}

/// A serde rewrite's copy of the token's clauses, per byte of their text: built as values and
/// written out (measured at under twice the text, `tests/check_memory.rs`).
pub(crate) const SERDE_COPY: usize = 4;

/// A tree rewrite's copy of the token's clauses, per byte of their text: the nodes are shared,
/// the written text is not (its buffer doubling).
pub(crate) const TREE_COPY: usize = 2;

/// Claims room for the copies of the token's clauses a rewrite of a body of `objects` objects
/// may make, `per_byte` bytes per byte of their text each (session 11 review: the clauses go
/// into every place a query runs, and each place is an object of the body (the body, a kNN
/// search, a sub-search, a retriever); with a token of 300 filter values, a body of 2000 kNN
/// searches held 64 times its size and one of 2000 retrievers 260 times, unclaimed). One more
/// for a body whose places are not all objects of its own.
pub(crate) fn claim_clause_copies(
    meter: &crate::memory::Meter<'_>,
    filters: &crate::FilterSet,
    objects: usize,
    per_byte: usize,
) -> Result<(), Rejection> {
    if filters.is_empty() {
        return Ok(());
    }
    let copies = objects.saturating_add(1);
    meter.take(copies.saturating_mul(filters.clauses_len().saturating_mul(per_byte)))
}

/// The objects in `v`, itself included.
pub(crate) fn objects(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(objects).sum::<usize>(),
        Value::Array(items) => items.iter().map(objects).sum(),
        _ => 0,
    }
}

/// The upstream request a route builds, and what esgate does with the backend's answer.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    pub method: Method,
    pub path: String,
    pub body: Option<ForwardBody>,
    /// The index expressions (comma lists exactly as forwarded, without duplicates) that
    /// `authorize` checks.
    pub to_resolve: Vec<String>,
    /// Where those expressions sit in the request, to narrow them.
    pub shape: Shape,
    /// The continuation id its answer carries, sealed for the token.
    pub seal: Option<Seal>,
    /// The doc-id sort values its answer carries, sealed for the token (`ordinals`).
    pub sort_seal: Option<SortSeal>,
    /// How esgate rebuilds its answer.
    pub transform: Option<Transform>,
    /// About how large the answer will be, when esgate knows (a scroll's next page: the last
    /// page's length); 0 when it does not. See [`crate::Answer::Seal`]'s `expected`.
    pub expected: usize,
    /// What the request does to the token's open scrolls ([`crate::Holding`]).
    pub scrolling: Option<crate::Holding>,
    /// What the request does to the token's open points in time.
    pub pit: Option<crate::Holding>,
    /// What the request does to the token's running async searches.
    pub async_search: Option<crate::Holding>,
    /// What the request does to the token's open SQL cursors.
    pub sql_cursor: Option<crate::Holding>,
    /// The histogram fields whose types `authorize` needs, by the place of their searches'
    /// expression in `to_resolve` (each place once; `histogram_fields`).
    pub typed_fields: Vec<(usize, HistogramFields)>,
}

impl Upstream {
    /// A request on a fixed path, with no index expression.
    pub fn fixed(method: Method, path: impl Into<String>) -> Upstream {
        Upstream::shaped(method, path.into(), Vec::new(), Shape::Fixed)
    }

    /// A request with nothing set but its method, path, expressions and shape: every field
    /// written once here (perf29c: a request made by `fixed` and then partly overwritten cost
    /// about 100 instructions a bodiless search).
    #[inline]
    fn shaped(method: Method, path: String, to_resolve: Vec<String>, shape: Shape) -> Upstream {
        Upstream {
            method,
            path,
            body: None,
            to_resolve,
            shape,
            seal: None,
            sort_seal: None,
            transform: None,
            expected: 0,
            scrolling: None,
            pit: None,
            async_search: None,
            sql_cursor: None,
            typed_fields: Vec::new(),
        }
    }

    /// A request on the path `before` + expression + `after`, narrowed by `authorize`.
    pub fn at_path(
        method: Method,
        e: &Expression,
        before: &'static str,
        after: &'static str,
    ) -> Upstream {
        Upstream::at_joined_path(method, e.joined(), before, after)
    }

    /// [`Upstream::at_path`] of an expression the route gives up (`Request::take_index`): its
    /// one element is moved into the request, not copied.
    pub fn at_path_of(
        method: Method,
        e: Expression,
        before: &'static str,
        after: &'static str,
    ) -> Upstream {
        Upstream::at_joined_path(method, e.into_joined(), before, after)
    }

    /// [`Upstream::at_path`] of the expression's comma-joined form.
    fn at_joined_path(
        method: Method,
        joined: String,
        before: &'static str,
        after: &'static str,
    ) -> Upstream {
        // Pushed, not `format!`ted: one exact allocation, no formatting machinery (issue 10).
        let mut path = String::with_capacity(before.len() + joined.len() + after.len());
        path.push_str(before);
        path.push_str(&joined);
        path.push_str(after);
        Upstream::shaped(method, path, vec![joined], Shape::Path { before, after })
    }

    /// With `body` forwarded.
    pub fn body(mut self, body: ForwardBody) -> Upstream {
        self.body = Some(body);
        self
    }

    /// With `v` forwarded as a JSON body.
    pub fn json(self, v: &Value) -> Result<Upstream, Rejection> {
        Ok(self.body(json_forward(v)?))
    }

    /// With `fields` (of the searches on the expression at `place` in `to_resolve`, each place
    /// given once) for `authorize` to decide on.
    pub fn typed(mut self, place: usize, fields: HistogramFields) -> Upstream {
        if !fields.is_empty() {
            self.typed_fields.push((place, fields));
        }
        self
    }
}

/// Where the index expression sits in the forwarded request, so that `authorize` can put a
/// narrowed list of names in its place.
#[derive(Clone, Debug)]
pub(crate) enum Shape {
    /// No index expression in the path or body (root, continuations, `_explain`).
    Fixed,
    /// The path is `before` + the concrete indices allowed behind the expression (`*,-*` when
    /// none), even when the expression needs no narrowing.
    ConcreteIndices { before: &'static str },
    /// The path is `before` + expression + `after`.
    Path {
        before: &'static str,
        after: &'static str,
    },
    /// An msearch body: the items (their bodies already serialised, in the same order),
    /// re-rendered with narrowed header indices.
    Msearch(Vec<msearch::Item>, Vec<Vec<u8>>),
    /// A query-language body whose query text names the indices (ES|QL, SQL).
    QueryText(crate::querylang::QueryText),
}

/// `v` as a JSON body to forward.
pub(crate) fn json_forward(v: &Value) -> Result<ForwardBody, Rejection> {
    json_forward_sized(v, 128)
}

/// [`json_forward`] into a buffer of `capacity` bytes to start with: a rewritten search is
/// about as long as the client's body plus the token's clauses, so sizing the buffer from it
/// saves the copies of growing it by doubling (issue 10).
pub(crate) fn json_forward_sized(v: &Value, capacity: usize) -> Result<ForwardBody, Rejection> {
    let mut bytes = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut bytes, v)
        .map_err(|_| Rejection::bad_request("body could not be serialised"))?;
    Ok(ForwardBody::new(bytes, JSON_BODY))
}

// === Answers esgate reads whole ===
//
// A route's `prepare` says how its answer is handled (`Upstream::seal`, `sort_seal`,
// `transform`; `Answer::decide` makes it one `es::Answer`), and the proxy calls back here:
// `seal_answer` for what must be sealed, `apply` for what esgate rebuilds. Both only dispatch to
// the route's module.
//
// Response transforms: routes esgate answers by rewriting the backend's response, not only the
// request (`_terms_enum` from a filtered terms aggregation, `_cat/indices` rendered by esgate,
// `_explain` with unmatched documents made indistinguishable from missing ones, the token's
// view of `_cluster/health`). The proxy reads the upstream body whole (capped, identity
// encoding asked for) and calls `apply`. Backend errors (non-2xx) pass unchanged unless the
// route says otherwise (`_explain` turns its 404 into esgate's own body).
//
// Invariant: a successful backend answer that does not have the expected shape is an error
// (the proxy answers 502), never relayed as is: relaying it could hand the client what the
// transform or the seal exists to remove.

/// Seals everything a search-like answer carries for `binding` (an `Answer::Seal`): the
/// continuation id `id_seal` (a scroll, point-in-time, SQL cursor or async search id; an async
/// search id also carries the ordinal positions to its polls, see [`async_search`]) and the
/// ordinal sort values of `sort`. Every copy of the answer (it can be 256 MiB) is claimed from
/// `meter` before it is made, and returned once the next one replaces it: the outer `Err` is
/// the meter's refusal.
///
/// An async search answer's skipped-shard counts are then reported as 0
/// (`async_search::hide_shard_shortcuts`, one scan): Elasticsearch always pre-filters an async search's shards
/// on every tenant's values; and so are its successful-shard counts while it is not final, and
/// its partial reduces as 1 (the same scan), which count those shards
/// too.
pub fn seal_answer(
    binding: &Binding,
    id_seal: Option<Seal>,
    sort: Option<&SortSeal>,
    success: bool,
    body: &[u8],
    meter: &crate::memory::Meter<'_>,
) -> Result<Result<Vec<u8>, AnswerError>, Rejection> {
    seal_answer_named(binding, id_seal, sort, success, body, meter).map(|(out, _)| out)
}

/// [`seal_answer`], and what the sealed key names in the answer as
/// [`continuation::named_id`] reads it, from the seal's own pass over the answer (the proxy's
/// count of open SQL cursors reads a SQL answer's `cursor` so). [`Named::Unknown`] when no
/// id was sealed by [`continuation::seal_response`] (no `id_seal`, a failed answer, an async
/// search's).
pub fn seal_answer_named(
    binding: &Binding,
    id_seal: Option<Seal>,
    sort: Option<&SortSeal>,
    success: bool,
    body: &[u8],
    meter: &crate::memory::Meter<'_>,
) -> Result<(Result<Vec<u8>, AnswerError>, Named), Rejection> {
    let (mut out, named) = seal_ids_and_sorts(binding, id_seal, sort, success, body, meter)?;
    if let (Some(s), Ok(text)) = (id_seal, out.as_mut()) {
        if s.kind == IdKind::AsyncSearch {
            // A body the scan cannot read is not JSON: it carries no count a client reads.
            // Both rewrites in one scan (`async_search::hide_shard_shortcuts`).
            let _ = async_search::hide_shard_shortcuts(text);
        }
    }
    Ok((out, named))
}

/// [`seal_answer_named`] but the skipped-shard counts.
fn seal_ids_and_sorts(
    binding: &Binding,
    id_seal: Option<Seal>,
    sort: Option<&SortSeal>,
    success: bool,
    body: &[u8],
    meter: &crate::memory::Meter<'_>,
) -> Result<(Result<Vec<u8>, AnswerError>, Named), Rejection> {
    // The answer with its id sealed; `None` when it has none to seal (a failed search's
    // answer carries none, but a failed async search still carries its id).
    let (with_id, named) = match id_seal {
        Some(s) if s.kind == IdKind::AsyncSearch => (
            async_search::seal_response_with(
                binding,
                body,
                sort.and_then(SortSeal::async_positions),
                meter,
            )?
            .map(Some),
            Named::Unknown,
        ),
        Some(s) if success => {
            let (sealed, named) = continuation::seal_response_named(binding, s, body, meter)?;
            (sealed.map(Some), named)
        }
        _ => (Some(None), Named::Unknown),
    };
    let Some(with_id) = with_id else {
        return Ok((Err(AnswerError), named));
    };
    let out = match (sort, with_id) {
        (Some(spec), Some(with_id)) => {
            let out = ordinals::seal_answer(binding, spec, success, &with_id, meter)?;
            meter.give(with_id.len());
            out
        }
        (Some(spec), None) => ordinals::seal_answer(binding, spec, success, body, meter)?,
        (None, Some(with_id)) => Ok(with_id),
        (None, None) => {
            meter.take(body.len())?;
            Ok(body.to_vec())
        }
    };
    Ok((out, named))
}

/// The backend request that frees the context `backend_id` names (an id read from an answer
/// esgate refused, `continuation::leading_id`), in the form `release` says: method, path and
/// JSON body. The id is only ever written as a JSON string or a percent-encoded path segment.
pub fn release_request(release: Release, backend_id: &str) -> (Method, String, Option<Vec<u8>>) {
    let json = |v: serde_json::Value| Some(v.to_string().into_bytes());
    match release {
        Release::Scroll => (
            Method::Delete,
            "/_search/scroll".to_owned(),
            json(serde_json::json!({ "scroll_id": [backend_id] })),
        ),
        Release::Pit => (
            Method::Delete,
            "/_pit".to_owned(),
            json(serde_json::json!({ "id": backend_id })),
        ),
        Release::OpenSearchPit => (
            Method::Delete,
            "/_search/point_in_time".to_owned(),
            json(serde_json::json!({ "pit_id": [backend_id] })),
        ),
        Release::AsyncSearch => (Method::Delete, async_search::delete_path(backend_id), None),
        Release::SqlCursor => (
            Method::Post,
            "/_sql/close".to_owned(),
            json(serde_json::json!({ "cursor": backend_id })),
        ),
    }
}

/// How the backend's answer is turned into the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transform {
    /// A `_search` answer becomes `{"_shards","terms","complete"}`.
    TermsEnum(terms_enum::Answer),
    /// `_cat/indices?format=json` rows are rendered with the token's columns.
    CatIndices(cat_indices::Table),
    /// `_explain`, asked as a search on the id: no hit answers like a missing document, a hit
    /// becomes the explain answer without statistics.
    Explain(explain::Lookup),
    /// `_cluster/health` on the token's indices: the view's counts only (`cluster_health`).
    ClusterHealth,
    /// `_resolve/index`: only the names the token's patterns allow (`metadata::allowed_names`).
    ResolveIndex(std::sync::Arc<[String]>),
}

/// The backend answered a success that does not have the shape the route expects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the backend's answer to a transformed request does not have the expected shape")]
pub struct TransformError;

/// The content types of a transformed answer.
pub const JSON: &str = "application/json; charset=UTF-8";
pub const TEXT: &str = "text/plain; charset=UTF-8";

/// Turns the backend's `(status, body)` into the client's. The answer's tree is claimed from
/// `meter` as it is built (session 11 review: an `_explain` asked with `_source` answers with
/// the whole document, and a 16 MiB document of small numbers parsed into gigabytes,
/// unclaimed), and what is written (the answer's text, or the copy of an error answer passed
/// on) before it is written (session 12 review): the outer `Err` is the meter's refusal.
pub fn apply(
    t: &Transform,
    status: u16,
    body: &[u8],
    meter: &crate::memory::Meter<'_>,
) -> Result<Result<(u16, Vec<u8>), TransformError>, Rejection> {
    let success = (200..300).contains(&status);
    // The answer's tree, or `None` when it is not JSON.
    let tree = || body::parse_value_within(body, meter);
    let copy = || -> Result<Vec<u8>, Rejection> {
        meter.take(body.len())?;
        Ok(body.to_vec())
    };
    let text = |status: u16, out: Option<Value>| -> Result<Option<(u16, Vec<u8>)>, Rejection> {
        let Some(out) = out else {
            return Ok(None);
        };
        Ok(meter
            .write(|w| serde_json::to_writer(w, &out))?
            .map(|text| (status, text)))
    };
    let out = match t {
        Transform::Explain(lookup) => {
            let Some(v) = tree()? else {
                return Ok(if success {
                    Err(TransformError)
                } else {
                    Ok((status, copy()?))
                });
            };
            match explain::answer(lookup, status, v) {
                Some((status, out)) => text(status, Some(out))?,
                None => None,
            }
        }
        // 408: a `wait_for_status` that was not met (checked once, never waited for).
        Transform::ClusterHealth if success || status == 408 => {
            text(status, tree()?.and_then(|v| cluster_health::view(&v)))?
        }
        _ if !success => Some((status, copy()?)),
        Transform::ClusterHealth => None,
        Transform::ResolveIndex(patterns) => text(
            status,
            tree()?.and_then(|v| metadata::allowed_names(patterns, v)),
        )?,
        Transform::TermsEnum(spec) => {
            text(status, tree()?.and_then(|v| terms_enum::answer(spec, &v)))?
        }
        Transform::CatIndices(table) => tree()?
            .and_then(|v| cat_indices::render(table, &v))
            .map(|out| (status, out)),
    };
    Ok(out.ok_or(TransformError))
}

/// The content type of what [`apply`] returned for `status`: text only for a successful
/// `_cat` text table (errors stay the backend's JSON).
pub fn content_type(t: &Transform, status: u16) -> &'static str {
    match t {
        Transform::CatIndices(table)
            if (200..300).contains(&status) && table.format() == cat_indices::Format::Text =>
        {
            TEXT
        }
        _ => JSON,
    }
}

#[cfg(test)]
mod tests;
