//! Elasticsearch knowledge: which requests a token may make and how they are rewritten.
//!
//! Invariant: pure. Nothing in `es/` does I/O, reads the clock, or imports hyper, tokio or the
//! store. The proxy calls it in three steps:
//!
//! 1. [`plan`] classifies the request head (method, raw path, query string) for a token's
//!    [`Scope`]. Unknown routes, parameters and foreign literal index names are rejected here;
//!    [`Plan::needs_body`] says whether the proxy must read the body.
//! 2. [`prepare`] decodes the body strictly (content type, encoding, JSON dialect), validates
//!    and rewrites it with the token's filters injected, and names the index expressions the
//!    proxy must resolve ([`Prepared::to_resolve`]), and the fields whose mapped types it must
//!    look up behind them ([`Prepared::field_types_needed`]: histograms their own `hard_bounds`
//!    do not bound, `dsl::histogram_fields`).
//! 3. [`authorize`] checks every concrete index behind those expressions against the token's
//!    patterns (and those fields' types in the allowed ones) and returns a [`Permit`]: the exact
//!    request to send upstream (canonical path, allow-listed parameters, re-serialised body).
//!    Only this function creates a `Permit`.
//!
//! Everything esgate cannot prove safe is a [`Rejection`] (403 unless the input is malformed).
//!
//! Layout: the three steps (`flow`) drive one table, [`routes`]: one module per route family,
//! each declaring what its routes take (parameters, index, body, dialect), how they are
//! rewritten into the upstream request, and how their answers are handled. Below it, by
//! concern: [`request`] (what the client sent: route, parameters, body, media types),
//! [`dsl`] (the query DSL checked and wrapped in the token's filters, cost limits),
//! [`querylang`] (ES|QL, SQL, EQL, URI search), [`indices`] (expressions, resolution),
//! [`ids`] (continuation ids and doc-id sort values sealed for the token) and [`answers`]
//! (response shaping).

pub mod answers;
pub mod dsl;
pub mod error;
pub mod ids;
pub mod indices;
pub mod memory;
pub mod querylang;
pub mod request;

pub mod routes;

#[cfg(test)]
mod testing;

mod flow;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use answers::shaping;
use dsl::cost;
use ids::{continuation, ordinals};
use indices::{index, resolution};
use request::dialect;
pub use request::params::Param;
use routes::Transform;

/// A token's mandatory filters: field → accepted values. Same field = any of the values;
/// different fields = all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterSet {
    by_field: BTreeMap<String, BTreeSet<String>>,
    /// [`FilterSet::clauses`] as request-tree nodes, built once (the tree path wraps every
    /// search with them; issue 10).
    clause_nodes: request::tree::SharedArray<'static>,
    /// Whether a `knn` key is anywhere in the clauses (a field named so), built once too.
    clauses_hold_knn: bool,
    /// The clauses' length as JSON text, summed: what each search's rewrite adds to it, which
    /// an msearch claims per search from its meter ([`memory`]).
    clauses_len: usize,
    /// The rewritten search of no body (`routes::search::bodiless`), built once too.
    empty_search: Option<routes::search::bodiless::EmptySearch>,
    /// Whether every score a search of the token exposes is constant (the token's `scores`,
    /// [`FilterSet::with_constant_scores`]): the client's queries are wrapped in
    /// `constant_score`, so no score depends on the shard's term statistics, which count every
    /// tenant's documents (review 15).
    constant_scores: bool,
}

impl FilterSet {
    pub fn new<I: IntoIterator<Item = (String, String)>>(pairs: I) -> FilterSet {
        let mut by_field: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (field, value) in pairs {
            by_field.entry(field).or_default().insert(value);
        }
        let mut set = FilterSet {
            by_field,
            clause_nodes: Default::default(),
            clauses_hold_knn: false,
            clauses_len: 0,
            empty_search: None,
            constant_scores: false,
        };
        set.clauses_len = set.clauses().iter().map(|c| c.to_string().len()).sum();
        set.clause_nodes = request::tree::SharedArray::new(
            set.clauses()
                .iter()
                .map(request::tree::Node::from_value)
                .collect(),
        );
        set.clauses_hold_knn = set
            .clause_nodes
            .items()
            .iter()
            .any(|c| dsl::rewrite::has_key_anywhere(dsl::json::J::from(c), "knn"));
        // Last: it is built from the set as it is used.
        set.empty_search = routes::search::bodiless::EmptySearch::of(&set);
        set
    }

    /// The set with constant scores (`constant`) or relevance scores (review 15). With constant
    /// scores every client query that runs where a score reaches the client is wrapped as
    /// `{"constant_score": {"filter": <query>}}` (score 1.0, the match set unchanged;
    /// `dsl::query::wrap`, `rewrite::wrap_tree`, rescores and `nested` inner hits), and
    /// the score-exposing features no wrap covers are refused (ES|QL `METADATA _score`, SQL
    /// `SCORE()`). The search of no body is `match_all`, constant already, and unchanged.
    pub fn with_constant_scores(mut self, constant: bool) -> FilterSet {
        self.constant_scores = constant;
        if constant {
            // Each wrap adds `{"constant_score":{"filter":` and `}}` to the search's text, which
            // an msearch claims per search with the clauses (`clauses_len`).
            self.clauses_len += CONSTANT_SCORE_WRAP_LEN;
        }
        self
    }

    /// Whether the token's scores are constant ([`FilterSet::with_constant_scores`]).
    pub fn constant_scores(&self) -> bool {
        self.constant_scores
    }

    /// The rewritten search of no body, when built (see `routes::search::bodiless`).
    pub(crate) fn empty_search(&self) -> Option<&routes::search::bodiless::EmptySearch> {
        self.empty_search.as_ref()
    }

    /// Whether a `knn` key is anywhere in [`FilterSet::clauses`].
    pub(crate) fn clauses_hold_knn(&self) -> bool {
        self.clauses_hold_knn
    }

    /// [`FilterSet::clauses`]' length as JSON text, summed.
    pub(crate) fn clauses_len(&self) -> usize {
        self.clauses_len
    }

    /// [`FilterSet::clauses`] as a request-tree array, its items shared and its JSON text
    /// known (written once).
    pub(crate) fn clause_array(&self) -> request::tree::Node<'_> {
        self.clause_nodes.array()
    }

    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.by_field.keys().map(String::as_str)
    }

    /// The filter clauses, one per field: `term` for one value, `terms` for several.
    /// These go into `bool.filter` at every place a query runs.
    pub fn clauses(&self) -> Vec<Value> {
        self.by_field
            .iter()
            .map(|(field, values)| {
                let mut iter = values.iter();
                match (iter.next(), iter.next()) {
                    (Some(v), None) => json!({ "term": { field: { "value": v } } }),
                    _ => json!({ "terms": { field: values.iter().collect::<Vec<_>>() } }),
                }
            })
            .collect()
    }
}

/// The text a constant-score wrap adds: `{"constant_score":{"filter":` and `}}`.
const CONSTANT_SCORE_WRAP_LEN: usize = r#"{"constant_score":{"filter":}}"#.len();

/// What a token may reach: its filters and its allowed index patterns.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Shared: the proxy keeps one per token and store snapshot (`store::Snapshot::scope`).
    pub filters: std::sync::Arc<FilterSet>,
    /// Allowed index patterns (`*` wildcards). Never empty. Shared: the proxy keeps one per
    /// token and store snapshot, so a request does not copy them.
    pub indices: std::sync::Arc<[String]>,
    /// The token's id and the key its scroll and point-in-time ids are sealed with.
    pub ids: continuation::Binding,
    /// The token's cost limits on every search it sends (`cost`).
    pub guard: cost::CostGuard,
}

/// The parts of a request head that decisions depend on. `path` is the raw request path as
/// received (percent-encoded, without the query string).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
}

/// How a rejection is answered. The proxy's error module maps these to HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    /// 403: not allowed for this token, or not provably safe.
    Forbidden,
    /// 400: malformed input.
    BadRequest,
    /// 413: a body over the cap (also after decompression).
    TooLarge,
    /// 415: a content type or encoding esgate does not parse.
    UnsupportedMediaType,
    /// 405: a method the route does not take.
    MethodNotAllowed,
    /// 404: no index the token may read matches the expression.
    NotFound,
    /// 406: an `Accept` esgate cannot read the answer in (see `media`).
    NotAcceptable,
    /// 400: a search over one of the token's cost limits (`cost`), told apart for the audit
    /// log and metrics.
    OverLimit,
    /// 429: the memory to check the body is not free now (the proxy's shared body budget,
    /// [`memory`]); retry later.
    Busy,
}

/// A request esgate refuses. `reason` is for the client: it never echoes request content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub kind: RejectKind,
    pub reason: String,
}

impl Rejection {
    pub fn forbidden(reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectKind::Forbidden,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectKind::BadRequest,
            reason: reason.into(),
        }
    }

    pub fn over_limit(reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectKind::OverLimit,
            reason: reason.into(),
        }
    }
}

/// The names behind each index expression, as the backend resolved them (indices, aliases
/// and data streams, each with its concrete indices). Filled by the proxy (through
/// `upstream::resolve`) for the expressions [`Prepared::to_resolve`] asks for.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    /// Expression (as in [`Prepared::to_resolve`]) → the names behind it.
    /// An expression that matches nothing maps to an empty list. Shared with the resolver's
    /// cache: a request does not copy the names (issue 10).
    pub names: BTreeMap<String, std::sync::Arc<[resolution::ResolvedName]>>,
    /// The backend's dialect, filled when [`Prepared::needs_dialect`] (`None`: unknown).
    pub dialect: Option<dialect::Dialect>,
    /// Expression (as in [`Prepared::to_resolve`]) → the types of the fields
    /// [`Prepared::field_types_needed`] names for it, in the indices behind it, as the backend's
    /// `_field_caps` described them (the proxy's `upstream::field_types`, cached; shared with
    /// its cache). A field or an index not described is unknown: its histogram is refused.
    pub field_types: BTreeMap<String, Vec<std::sync::Arc<dsl::histogram_fields::FieldTypes>>>,
}

/// The HTTP method of a permitted upstream request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// The body to send upstream, built by esgate: its own text in `bytes`, and, in a large body,
/// spans of the client's body sent verbatim where the writer would copy them (session 20).
///
/// A span is only ever a text the writer copies whole from the client's body ([`request::tree`]
/// keeps a parsed container's source text, and a run of a search's top-level entries, only when
/// it is what the writer writes item by item but for JSON whitespace between tokens: validated
/// strictly by the same parse, no string escape), and only of a body esgate read and parsed
/// whole: the bytes sent are those the writer would have written (whitespace aside, which the
/// backend skips as the parse did), and the request is as checked as one written out. What is sent is still esgate's body; the spans
/// save the copy of the client's text (the 200 KB `terms` search's `query`: 6.6% of its
/// request and a second fresh buffer as large as the body).
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardBody {
    /// esgate's own text, without the spans' bytes: the whole body when `spans` is empty.
    pub bytes: Vec<u8>,
    /// `application/json` or `application/x-ndjson`.
    pub content_type: &'static str,
    /// Texts of the client's body (the `body` given to [`prepare`]) that go between `bytes`'s
    /// bytes, in order (each `at` at or after the one before). Empty for most bodies: only a
    /// text of [`SPAN_MIN`] bytes or more is sent so, a smaller body is one block.
    pub spans: Vec<SourceSpan>,
}

/// The least text of a client's body sent as a span of it rather than copied into esgate's
/// body ([`ForwardBody::spans`]). Below it a copy costs less than a second buffer sent beside
/// the first (an iovec, a reference to the client's body): a 2 KB search stays one block.
pub const SPAN_MIN: usize = 4096;

/// `len` bytes of the client's body from `from`, sent at `at` of [`ForwardBody::bytes`] (before
/// the byte there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceSpan {
    pub at: usize,
    pub from: usize,
    pub len: usize,
}

/// A part of a [`ForwardBody`], in order: a range of its `bytes` or of the client's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyPart {
    Own(std::ops::Range<usize>),
    Client(std::ops::Range<usize>),
}

impl ForwardBody {
    /// A body of esgate's text only.
    pub fn new(bytes: Vec<u8>, content_type: &'static str) -> ForwardBody {
        ForwardBody {
            bytes,
            content_type,
            spans: Vec::new(),
        }
    }

    /// The body's length as sent.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.spans.iter().map(|s| s.len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body's parts in order, empty ones left out; `None` when a span is not within a
    /// client's body of `client_len` bytes or the spans are out of order (never, for a body
    /// [`prepare`] built from that body).
    pub fn parts(&self, client_len: usize) -> Option<Vec<BodyPart>> {
        let mut parts = Vec::with_capacity(2 * self.spans.len() + 1);
        let mut own = 0;
        for s in &self.spans {
            if s.at < own || s.at > self.bytes.len() || s.from.checked_add(s.len)? > client_len {
                return None;
            }
            if s.at > own {
                parts.push(BodyPart::Own(own..s.at));
            }
            if s.len > 0 {
                parts.push(BodyPart::Client(s.from..s.from + s.len));
            }
            own = s.at;
        }
        if own < self.bytes.len() {
            parts.push(BodyPart::Own(own..self.bytes.len()));
        }
        Some(parts)
    }

    /// The body as one block, its spans taken from `client` (the body given to [`prepare`]);
    /// `None` as [`ForwardBody::parts`].
    pub fn joined(&self, client: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len());
        for part in self.parts(client.len())? {
            match part {
                BodyPart::Own(r) => out.extend_from_slice(&self.bytes[r]),
                BodyPart::Client(r) => out.extend_from_slice(&client[r]),
            }
        }
        Some(out)
    }
}

/// Proof that a request was checked: the exact request to send upstream.
/// Only [`authorize`] creates one.
// `_sealed` (not `#[non_exhaustive]`) so that even the rest of this crate cannot build one.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Clone, Debug)]
pub struct Permit {
    pub action: &'static str,
    pub method: Method,
    /// Canonical, percent-encoded path.
    pub path: String,
    /// Allow-listed query parameters, decoded (the proxy re-encodes them).
    pub query: Vec<Param>,
    pub body: Option<ForwardBody>,
    /// Indices the request reaches (for the audit log).
    pub indices: Vec<String>,
    /// What esgate does with the backend's answer.
    pub answer: Answer,
    /// What the request does to the token's open scrolls, for the proxy's count of them
    /// (`max_open_scrolls`); `None` for every request that is not a scroll's.
    pub scrolling: Option<Holding>,
    /// What the request does to the token's open points in time (`max_open_pits`): an open, a
    /// search naming one (`Next`), a close; `None` for every other request.
    pub pit: Option<Holding>,
    /// What the request does to the token's running async searches
    /// (`max_running_async_searches`): a submit opens one, a poll or status names one
    /// (`Next`), a delete ends it; `None` for every other request. A submit on a point in time
    /// has both this and `pit`.
    pub async_search: Option<Holding>,
    /// What the request does to the token's open SQL cursors (counted with its points in
    /// time, `max_open_pits`): a query whose answer carries a cursor opens one, a next page
    /// names it (`Next`), a close ends it; `None` for every other request.
    pub sql_cursor: Option<Holding>,
    _sealed: (),
}

/// A kind of search context a token holds open on the backend, each counted on its own: a
/// node keeps at most `search.max_open_scroll_context` (500) scroll contexts, and OpenSearch
/// at most `search.max_open_pit_context` (300) point-in-time ones (Elasticsearch caps none:
/// each pins its shard's segments and heap until it is closed or its keep-alive ends). An
/// async search running in the background holds the search thread pools every client shares
/// until it completes, is deleted or its keep-alive ends. A SQL cursor holds a point in time
/// on every shard its query searched (Elasticsearch 8's SQL pages search hits through one,
/// kept alive for the query's `page_timeout`; 7.x a scroll) until its last page, its close or
/// its `page_timeout` ends: the proxy counts them with points in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Scroll,
    Pit,
    AsyncSearch,
    SqlCursor,
}

/// What a permitted request does to the scrolls, points in time or async searches its token
/// holds open on the backend: the proxy counts them (a context per shard lives on the backend
/// until it is cleared or closed or its keep-alive ends, and every client shares a node's; an
/// async search runs on the search thread pools every client shares). Backend ids are those
/// the token's sealed ids opened, never a client's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// A request that opens one, kept alive for `keep_alive_ms` (a search's `scroll`, a point
    /// in time's `keep_alive`, an async search submit's `keep_alive`: 5 days when unset; a SQL
    /// query's `page_timeout`: 45 seconds when unset).
    Open { keep_alive_ms: u64 },
    /// A request that uses one: a scroll's next page, a search (or async search) on a point
    /// in time, an async search's poll or status, a SQL cursor's next page. The backend id it
    /// names, and the keep-alive it asks for (a page's body `scroll`, else the parameter's; a
    /// search's `pit.keep_alive`; a poll's `keep_alive`; a SQL page's `page_timeout`, its
    /// 45-second default when unset); `None`: none given, and then Elasticsearch sets its
    /// default for a scroll and leaves a point in time's (an async search's) as it was.
    /// Elasticsearch keeps the longer of it and the context's keep-alive so far.
    Next {
        backend_id: String,
        keep_alive_ms: Option<u64>,
    },
    /// Clearing scrolls (`DELETE /_search/scroll`), closing points in time (`DELETE /_pit`,
    /// OpenSearch `DELETE /_search/point_in_time`), deleting an async search (`DELETE
    /// /_async_search/{id}`), closing a SQL cursor (`POST /_sql/close`): their backend ids.
    Clear { backend_ids: Vec<String> },
}

/// What esgate does with the backend's answer to a permitted request. One decision, made by
/// [`authorize`], which also says where response shaping (`filter_path`, `pretty`) happens: an
/// answer esgate reads whole must reach it unshaped (a `filter_path` could strip what esgate
/// seals or checks), so esgate shapes its own final answer, last. Any new step that reads
/// answers whole is a new variant here.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Streamed to the client untouched; the client's shaping is forwarded in the query.
    Stream,
    /// Read whole to seal what it carries before the client sees it: a continuation id (in a
    /// successful answer, or any async search answer) and doc-id sort values. At least one.
    Seal {
        id: Option<continuation::Seal>,
        sort: Option<ordinals::SortSeal>,
        shaping: Option<shaping::Shaping>,
        /// About how large the answer will be (a scroll's next page: the length of the page
        /// its id came with), 0 when unknown: the proxy makes room for it before it sends the
        /// request, so that a page it could not take is refused before the backend moves the
        /// scroll past it (the client's retry gets the same page), not after.
        expected: usize,
    },
    /// Read whole and rebuilt by esgate (`_terms_enum`, `_cat/indices`, `_explain`, cluster
    /// health).
    Transform {
        transform: Transform,
        shaping: Option<shaping::Shaping>,
    },
}

impl Answer {
    /// The answer for what `prepare` found, with the response shaping placed: pushed into the
    /// forwarded `query` for a streamed answer, kept for esgate's final answer otherwise.
    fn decide(
        id: Option<continuation::Seal>,
        sort: Option<ordinals::SortSeal>,
        transform: Option<Transform>,
        shaping: shaping::Shaping,
        expected: usize,
        query: &mut Vec<Param>,
    ) -> Result<Answer, Rejection> {
        // Kept when esgate shapes its final answer: moved there, not cloned (`then_some`'s
        // clone ran for every request, a streamed one too: issue 10).
        let kept = |shaping: shaping::Shaping| (!shaping.is_identity()).then_some(shaping);
        Ok(match (transform, id, sort) {
            (None, None, None) => {
                query.extend(shaping.forwarded().iter().cloned());
                Answer::Stream
            }
            (Some(transform), None, None) => Answer::Transform {
                transform,
                shaping: kept(shaping),
            },
            (None, id, sort) => Answer::Seal {
                id,
                sort,
                shaping: kept(shaping),
                expected,
            },
            // No route both rebuilds and seals its answer: refuse rather than drop a seal.
            (Some(_), _, _) => {
                return Err(Rejection::forbidden(
                    "esgate cannot both rebuild and seal this answer",
                ))
            }
        })
    }

    /// Whether esgate reads the backend's answer whole instead of streaming it untouched.
    pub fn reads_whole(&self) -> bool {
        !matches!(self, Answer::Stream)
    }

    /// The response shaping esgate applies to its final answer (only when it reads it whole).
    pub fn shaping(&self) -> Option<&shaping::Shaping> {
        match self {
            Answer::Stream => None,
            Answer::Seal { shaping, .. } | Answer::Transform { shaping, .. } => shaping.as_ref(),
        }
    }

    /// The continuation id to seal, if any.
    pub fn seal(&self) -> Option<continuation::Seal> {
        match self {
            Answer::Seal { id, .. } => *id,
            _ => None,
        }
    }

    /// The doc-id sort values to seal, if any.
    pub fn sort_seal(&self) -> Option<&ordinals::SortSeal> {
        match self {
            Answer::Seal { sort, .. } => sort.as_ref(),
            _ => None,
        }
    }

    /// The transform that rebuilds the answer, if any.
    pub fn transform(&self) -> Option<&Transform> {
        match self {
            Answer::Transform { transform, .. } => Some(transform),
            _ => None,
        }
    }
}

/// The outcome of [`plan`]: what the request is and whether [`prepare`] needs its body.
#[derive(Clone, Debug)]
pub struct Plan {
    pub action: &'static str,
    /// The route's row in the table (`routes::spec`).
    spec: &'static routes::Spec,
    method: Method,
    params: Vec<Param>,
    /// The checked path expression (or the token's patterns) for routes that take indices.
    index: Option<index::Expression>,
    /// Whether the path named the index expression.
    named_index: bool,
    /// The id the path names (`_explain/{id}`, `_async_search/{id}`).
    path_id: Option<String>,
    /// The most searches an `_msearch` may carry ([`Plan::searches_at_most`]).
    max_searches: Option<u32>,
}

impl Plan {
    /// Whether the proxy must read the request body (capped) and pass it to [`prepare`].
    pub fn needs_body(&self) -> bool {
        self.spec.body
    }

    /// With at most `max` searches in an `_msearch` (the token's `max_msearch_searches`,
    /// msearch27): one with more is refused as its lines are split, before any is parsed
    /// (400, [`RejectKind::OverLimit`]). `None`: not limited. Other routes ignore it.
    pub fn searches_at_most(mut self, max: Option<u32>) -> Plan {
        self.max_searches = max;
        self
    }
}

/// The outcome of [`prepare`]: the rewritten request, waiting for index resolution.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub action: &'static str,
    /// The request the route built, with the index expressions to resolve and how its answer
    /// is handled.
    upstream: routes::Upstream,
    /// The parameters to forward.
    query: Vec<Param>,
    /// The response-shaping parameters, taken out of `query` (see `shaping`).
    shaping: shaping::Shaping,
    /// A route of one dialect only: forwarded only to a backend of that dialect.
    dialect_route: Option<dialect::DialectRoute>,
}

impl Prepared {
    /// The index expressions (comma lists exactly as forwarded, one per path or `_msearch`
    /// header, without duplicates) the proxy must resolve before [`authorize`].
    pub fn to_resolve(&self) -> &[String] {
        &self.upstream.to_resolve
    }

    /// Whether [`authorize`] needs the backend's dialect in [`Resolution::dialect`].
    pub fn needs_dialect(&self) -> bool {
        self.dialect_route.is_some()
    }

    /// The fields whose mapped types [`authorize`] needs in [`Resolution::field_types`], by index
    /// expression (one of [`Prepared::to_resolve`]): those of the searches' histograms that their
    /// own `hard_bounds` do not bound (`dsl::histogram_fields`). Empty for most requests; the
    /// proxy asks the backend only about these.
    pub fn field_types_needed(
        &self,
    ) -> impl Iterator<Item = (&str, &dsl::histogram_fields::HistogramFields)> {
        let to_resolve = &self.upstream.to_resolve;
        self.upstream
            .typed_fields
            .iter()
            .filter_map(|(place, fields)| Some((to_resolve.get(*place)?.as_str(), fields)))
    }

    /// The searches of an `_msearch` (`None` for every other request): what the proxy
    /// charges its token's rate (msearch27).
    pub fn msearch_searches(&self) -> Option<usize> {
        match &self.upstream.shape {
            routes::Shape::Msearch(items, _) => Some(items.len()),
            _ => None,
        }
    }
}

/// Step 1: classify the request head (method, path, query string). Unknown routes and
/// parameters and foreign literal index names are rejected here.
pub fn plan(head: &RequestHead<'_>, scope: &Scope) -> Result<Plan, Rejection> {
    flow::plan(head, scope)
}

/// Step 2: decode and rewrite the body (if the plan needs one) and build the upstream request.
/// `body` is the raw, possibly compressed body; `None` or empty means no body.
pub fn prepare(
    plan: Plan,
    body: Option<&[u8]>,
    head: &RequestHead<'_>,
    scope: &Scope,
) -> Result<Prepared, Rejection> {
    let meter = memory::Meter::unlimited();
    flow::prepare(
        plan,
        body,
        head,
        scope,
        request::body::MAX_DECODED_BODY,
        &meter,
    )
}

/// [`prepare`] with an explicit cap on the decoded body size (413 when over) and the memory
/// its decompression and parse may hold claimed from `meter` ([`memory`]).
pub fn prepare_with_limit(
    plan: Plan,
    body: Option<&[u8]>,
    head: &RequestHead<'_>,
    scope: &Scope,
    max_decoded_body: usize,
    meter: &memory::Meter<'_>,
) -> Result<Prepared, Rejection> {
    flow::prepare(plan, body, head, scope, max_decoded_body, meter)
}

/// Step 3: check every concrete index behind every expression and issue the [`Permit`].
pub fn authorize(
    prepared: Prepared,
    resolution: &Resolution,
    scope: &Scope,
) -> Result<Permit, Rejection> {
    flow::authorize(prepared, resolution, scope, &memory::Meter::unlimited())
}

/// [`authorize`] with the memory of the body it writes (an msearch's NDJSON, each header
/// naming its narrowed names) claimed from `meter` before it is allocated ([`memory`]).
pub fn authorize_within(
    prepared: Prepared,
    resolution: &Resolution,
    scope: &Scope,
    meter: &memory::Meter<'_>,
) -> Result<Permit, Rejection> {
    flow::authorize(prepared, resolution, scope, meter)
}

impl Permit {
    /// Private to `es` (and its submodules): the rest of the crate cannot mint a permit.
    fn new(
        action: &'static str,
        method: Method,
        path: String,
        query: Vec<Param>,
        body: Option<ForwardBody>,
        indices: Vec<String>,
        answer: Answer,
    ) -> Permit {
        Permit {
            action,
            method,
            path,
            query,
            body,
            indices,
            answer,
            scrolling: None,
            pit: None,
            async_search: None,
            sql_cursor: None,
            _sealed: (),
        }
    }

    /// What the request does to its token's open contexts, and their kind (taken out).
    pub fn take_holding(&mut self) -> Option<(Context, Holding)> {
        let scrolling = self.scrolling.take().map(|h| (Context::Scroll, h));
        scrolling
            .or_else(|| self.pit.take().map(|h| (Context::Pit, h)))
            .or_else(|| self.sql_cursor.take().map(|h| (Context::SqlCursor, h)))
    }
}

#[cfg(test)]
mod forward_body_tests {
    use super::*;

    /// Session 20: a body's parts are its text and spans in order, empty ones left out; spans
    /// out of order, past the text or past the client's body give `None` (no panic, no part).
    #[test]
    fn parts_put_the_spans_between_the_text_or_refuse() {
        let span = |at, from, len| SourceSpan { at, from, len };
        let mut b = ForwardBody::new(b"[,]".to_vec(), "application/json");
        b.spans = vec![span(1, 0, 2), span(2, 4, 3), span(3, 0, 0)];
        assert_eq!(b.len(), 8);
        assert_eq!(
            b.parts(7),
            Some(vec![
                BodyPart::Own(0..1),
                BodyPart::Client(0..2),
                BodyPart::Own(1..2),
                BodyPart::Client(4..7),
                BodyPart::Own(2..3),
            ])
        );
        assert_eq!(b.joined(b"12xx345").as_deref(), Some(&b"[12,345]"[..]));
        assert_eq!(b.parts(6), None, "past the client's body");
        for spans in [
            vec![span(2, 0, 1), span(1, 0, 1)],
            vec![span(4, 0, 1)],
            vec![span(0, usize::MAX, 2)],
        ] {
            b.spans = spans;
            assert_eq!(b.parts(7), None, "{:?}", b.spans);
            assert_eq!(b.joined(b"1234567"), None);
        }
        b.spans.clear();
        assert_eq!(b.joined(b""), Some(b"[,]".to_vec()));
    }
}
