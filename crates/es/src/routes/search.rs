//! `_search` and `_count`: the body (or the URI search `?q=`, see `uri_search`) rewritten with
//! the token's filters (`rewrite`), the cost limits applied (`cost`), and doc-id sort values
//! sealed (`ordinals`). A search may scroll (its answer's `_scroll_id` is sealed) or run on a
//! point in time given in the body (`pit`, sealed; then it names no index). An async search
//! submit is rewritten by `rewrite` too, in its own `Form` (see `async_search`).
//!
//! Invariant: the forwarded body is the rewriter's output, never the client's bytes; a search
//! on a point in time reaches the backend only with a point-in-time id sealed for the token.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::scroll_pit::{self, SCROLL_OPEN_SEAL};
use super::{json_forward_sized, Request, Spec, Upstream, JSON_BODY};
use crate::dsl::histogram_fields::HistogramFields;
use crate::dsl::json::{Obj, J};
use crate::dsl::rewrite;
use crate::ids::continuation::{self, IdKind, Seal};
use crate::ids::ordinals::{self, Positions, SortSeal};
use crate::querylang::uri_search;
use crate::request::body::{self, Media};
use crate::request::params::{self, Kind, ParamSet};
use crate::request::tree::{self, Node};
use crate::{ForwardBody, Method, Rejection, SPAN_MIN};

pub(crate) mod bodiless;

/// The parameters of `_search` (and of an async search submit, see `async_search`).
pub(crate) const SEARCH_PARAMS: &[(&str, Kind)] = &[
    ("size", Kind::Uint),
    ("from", Kind::Uint),
    ("track_total_hits", Kind::Text),
    ("timeout", Kind::Time),
    ("allow_partial_search_results", Kind::Bool),
    ("pre_filter_shard_size", Kind::Uint),
    ("typed_keys", Kind::Bool),
    ("rest_total_hits_as_int", Kind::Bool),
    ("search_type", Kind::OneOf(&["query_then_fetch"])),
    ("batched_reduce_size", Kind::Uint),
    (
        "max_concurrent_shard_requests",
        Kind::UintUpTo(params::MAX_CONCURRENT_SHARD_REQUESTS),
    ),
    ("request_cache", Kind::Bool),
    ("preference", Kind::Preference),
    ("routing", Kind::Text),
    ("terminate_after", Kind::Uint),
    ("track_scores", Kind::Bool),
    ("version", Kind::Bool),
    ("seq_no_primary_term", Kind::Bool),
    ("_source", Kind::Text),
    ("_source_includes", Kind::Text),
    ("_source_excludes", Kind::Text),
    ("stored_fields", Kind::Text),
    ("docvalue_fields", Kind::Text),
    ("sort", Kind::Text),
    ("scroll", Kind::Time),
];

// No `min_score`: scores carry index-wide statistics, a threshold on them would make the count
// depend on other tenants' documents (see `expansion`).
const COUNT_PARAMS: &[(&str, Kind)] = &[
    ("preference", Kind::Preference),
    ("routing", Kind::Text),
    ("terminate_after", Kind::Uint),
];

/// Parameters of [`SEARCH_PARAMS`] a `_search` refuses (an async search submit takes them).
///
/// `batched_reduce_size` (attack22): a shard whose query its own index-wide values rewrite to
/// no match (a date range outside every document's dates, any tenant's; a field sort whose
/// every value ranks below the hits already found) answers with nothing once another shard
/// has answered (`canReturnNullResponseIfMatchNoDocs`), and such answers never enter a partial
/// reduce; with a batch smaller than the shards searched, the answer's `num_reduce_phases`
/// counts the shards other tenants' values did not cut short, as `_shards.skipped` did before
/// the pre-filter was turned off. Elasticsearch's default (512) reduces only past 512 shards.
/// Kibana sets it on async search submits only, whose answers esgate reads whole and writes
/// the count over (`async_search::hide_shard_shortcuts`).
const SEARCH_REFUSED: &[(&str, &str)] = &[(
    "batched_reduce_size",
    "the number of partial reduces it brings into the answer follows other tenants' values",
)];

pub(crate) const SEARCH: Spec = Spec {
    action: "search",
    params: ParamSet::own(SEARCH_PARAMS)
        .refusing(SEARCH_REFUSED)
        .indices_options()
        .uri_search()
        .without_pre_filter(),
    index: true,
    body: true,
    dialect: None,
    prepare: search,
};

pub(crate) const COUNT: Spec = Spec {
    action: "count",
    params: ParamSet::own(COUNT_PARAMS).indices_options().uri_search(),
    index: true,
    body: true,
    dialect: None,
    prepare: count,
};

/// What differs between forms of a search that are rewritten alike.
pub(crate) struct Form {
    /// The path suffix the search is forwarded to.
    pub api: &'static str,
    /// The id every answer carries (async search), in place of a scroll or point-in-time id.
    pub id: Option<Seal>,
    /// The sort seal for the answer of a search with doc-id sort values at these positions.
    pub sort: fn(Positions) -> SortSeal,
}

/// `_search`.
const PLAIN: Form = Form {
    api: "/_search",
    id: None,
    sort: SortSeal::Search,
};

/// The point-in-time id in the answer of a search on a point in time.
const PIT_SEAL: Seal = Seal {
    field: "pit_id",
    kind: IdKind::Pit,
    required: false,
    release: None,
};

/// `_search`.
fn search(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    rewrite(req, &PLAIN)
}

/// A search in `form`: the body (or URI search) rewritten, limited and forwarded to the path's
/// expression, or to the point in time its body names.
pub(crate) fn rewrite(req: &mut Request<'_>, form: &Form) -> Result<Upstream, Rejection> {
    if let Some(empty) = bodiless::covered(req) {
        return bodiless::forward(req, form, empty);
    }
    if let Some(up) = on_tree(req, form) {
        return Ok(up);
    }
    rewrite_serde(req, form)
}

/// The serde path's work on the borrowed request tree (issue 10, goal 6), for the searches it
/// covers: a JSON body (no content encoding) that is an object, no URI search, no `sort`
/// parameter, no scroll, no point in time, and what `rewrite::search_tree` and
/// `ordinals::plain_is_noop` take. `None` for every other search and for every refusal, and then
/// `req` is as it was: [`rewrite_serde`] decides those (a refusal's message stays the serde
/// path's). The checks are the same code over [`J`]; `tree_matches_serde` (tests) holds the
/// two paths to the same decisions and forwarded bodies.
fn on_tree(req: &mut Request<'_>, form: &Form) -> Option<Upstream> {
    #[cfg(test)]
    if tests::SERDE_ONLY.with(std::cell::Cell::get) {
        return None;
    }
    let raw = tree_body(req)?;
    if req.scrolls() || req.params.iter().any(|(k, _)| k == "sort") {
        return None;
    }
    let arena = tree::Arena::metered(raw.len(), req.meter).ok()?;
    let tree = tree::parse(raw, &arena).ok()?;
    // Inner hits' names are checked on the serde path only (`rewrite::search`).
    if arena.has_inner_hits_key() {
        return None;
    }
    let objects = arena.objects();
    super::claim_clause_copies(req.meter, &req.scope.filters, objects, super::TREE_COPY).ok()?;
    // A body with `pit` is refused by `search_tree` (its `TOP_LEVEL` slot is a `Feature`), so
    // left to the serde path, which takes the point in time out first.
    let scope = req.scope;
    let highlights = arena.highlight_keys();
    let mut out = rewrite::search_tree(tree, arena.has_knn_key(), highlights, &scope.filters, None)
        .ok()??;
    if !ordinals::plain_is_noop(J::from(&out)) {
        return None;
    }
    if req.index().is_err() {
        return None;
    }
    let Node::Object(entries) = &mut out else {
        return None;
    };
    let mut fields = HistogramFields::default();
    scope.guard.fill_tree(entries, &arena, &mut fields).ok()?;
    // Last: its refusals come before it takes `timeout` out of the parameters.
    let timeout = scope
        .guard
        .search_checked(Obj::N(entries), &mut req.params)
        .ok()?;
    if let Some(timeout) = timeout {
        entries.set("timeout", Node::String(Cow::Owned(timeout)));
    }
    let mut up = Upstream::at_path(Method::Post, req.index().ok()?, "/", form.api).typed(0, fields);
    up.seal = form.id;
    // A highlight given the client's query writes that query twice.
    let written = raw.len() * if highlights > 0 { 2 } else { 1 };
    Some(tree_forward(up, &out, raw, written + 512))
}

/// `up` with the tree, parsed from `source` (the client's body), written as its JSON body: a
/// body of [`SPAN_MIN`] bytes or more with its long source texts as spans of it (session 20),
/// `capacity` counting them.
fn tree_forward(up: Upstream, out: &Node<'_>, source: &[u8], capacity: usize) -> Upstream {
    #[cfg(test)]
    tests::TREE_TAKEN.with(|n| n.set(n.get() + 1));
    #[cfg(test)]
    let span_min = tests::SPAN_MIN_SET
        .with(std::cell::Cell::get)
        .unwrap_or(SPAN_MIN);
    #[cfg(not(test))]
    let span_min = SPAN_MIN;
    if source.len() < span_min {
        let mut bytes = Vec::with_capacity(capacity);
        tree::write_from(out, source, &mut bytes);
        return up.body(ForwardBody::new(bytes, JSON_BODY));
    }
    // esgate's text is the rewrite's: the token's clauses, keys, what the spans leave.
    let mut bytes = Vec::with_capacity(capacity.saturating_sub(source.len()).max(512));
    let spans = tree::write_from_spans(out, source, span_min, &mut bytes);
    let mut body = ForwardBody::new(bytes, JSON_BODY);
    body.spans = spans;
    up.body(body)
}

/// [`rewrite`] through serde_json's tree: every search the tree path leaves to it.
fn rewrite_serde(req: &mut Request<'_>, form: &Form) -> Result<Upstream, Rejection> {
    let scope = req.scope;
    let scrolls = req.scrolls();
    let body = uri_search::merge(req.json_body()?, req.uri_query.take())?;
    let mut body = ordinals::take_uri_sort(&mut req.params, body)?;
    let pit = match body.as_mut() {
        Some(Value::Object(m)) => m.remove("pit"),
        _ => None,
    };
    if let Some(pit) = pit {
        return on_pit(req, form, body, &pit, scrolls);
    }
    let e = req.index()?;
    let joined = e.joined();
    let up = Upstream::at_path(Method::Post, e, "/", form.api);
    let mut out = rewrite::search(body, &scope.filters)?;
    let fields = scope.guard.search(&mut out, &mut req.params)?;
    let mut up = up.typed(0, fields);
    up.seal = form.id.or(scrolls.then_some(SCROLL_OPEN_SEAL));
    if up.seal == Some(SCROLL_OPEN_SEAL) {
        up.scrolling = Some(scroll_pit::opening(&req.params));
    }
    let mode = if scrolls {
        ordinals::Mode::Scroll
    } else {
        ordinals::Mode::Plain {
            expression: &joined,
        }
    };
    up.sort_seal = ordinals::prepare(&mut out, mode, &scope.ids)?.map(form.sort);
    let capacity = req.raw_body.map_or(0, <[u8]>::len) + 512;
    Ok(up.body(json_forward_sized(&out, capacity)?))
}

/// A search on the point in time `pit` (the body's `pit` object): no index in the path, the
/// sealed id opened for the token.
fn on_pit(
    req: &mut Request<'_>,
    form: &Form,
    body: Option<Value>,
    pit: &Value,
    scrolls: bool,
) -> Result<Upstream, Rejection> {
    let scope = req.scope;
    // A point in time carries its indices; Elasticsearch refuses an index beside it.
    if req.named_index {
        return Err(Rejection::bad_request(
            "a search with a point in time must not name an index",
        ));
    }
    if scrolls {
        return Err(Rejection::bad_request(
            "a search with a point in time cannot scroll",
        ));
    }
    let pit = scroll_pit::continuation_object(pit, "pit", "id", &["keep_alive"])?;
    let backend_id = continuation::open(&scope.ids, IdKind::Pit, &pit.id)?;
    // The search keeps the point in time alive for its `keep_alive` (the longer of it and the
    // one it had, in Elasticsearch), or for the one it had when it gives none.
    let holding = crate::Holding::Next {
        backend_id: backend_id.clone(),
        keep_alive_ms: pit
            .rest
            .get("keep_alive")
            .and_then(Value::as_str)
            .map(scroll_pit::keep_alive_ms),
    };
    let mut out = rewrite::search(body, &scope.filters)?;
    // A point in time names no expression to look the fields' types up on (`histogram_fields`).
    scope
        .guard
        .search(&mut out, &mut req.params)?
        .refuse_unless_empty("on a point in time")?;
    let positions = ordinals::prepare(
        &mut out,
        ordinals::Mode::Pit {
            backend_id: &backend_id,
        },
        &scope.ids,
    )?;
    let mut pit_out = Map::new();
    pit_out.insert("id".into(), Value::String(backend_id));
    pit_out.extend(pit.rest);
    if let Value::Object(m) = &mut out {
        m.insert("pit".into(), Value::Object(pit_out));
    }
    // The point in time fixes the indices; index options are refused beside it.
    req.params.retain(|(k, _)| {
        !matches!(
            &**k,
            "expand_wildcards" | "ignore_unavailable" | "allow_no_indices"
        )
    });
    let mut up = Upstream::fixed(Method::Post, form.api).json(&out)?;
    up.seal = Some(form.id.unwrap_or(PIT_SEAL));
    up.sort_seal = positions.map(form.sort);
    up.pit = Some(holding);
    Ok(up)
}

/// `_count`: always a body with the token's filters (`rewrite::count`; on the request tree
/// when `count_on_tree` covers the request).
fn count(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    if let Some(up) = count_on_tree(req) {
        return Ok(up);
    }
    let up = Upstream::at_path(Method::Post, req.index()?, "/", "/_count");
    let body = uri_search::merge(req.json_body()?, req.uri_query.take())?;
    up.json(&rewrite::count(body, &req.scope.filters)?)
}

/// [`count`] on the request tree (as [`on_tree`] for a search): a JSON body without content
/// encoding or URI search, accepted by `rewrite::count_tree`; `None` for every other count and
/// every refusal, which [`count`]'s serde path decides.
fn count_on_tree(req: &mut Request<'_>) -> Option<Upstream> {
    #[cfg(test)]
    if tests::SERDE_ONLY.with(std::cell::Cell::get) {
        return None;
    }
    let raw = tree_body(req)?;
    let arena = tree::Arena::metered(raw.len(), req.meter).ok()?;
    let tree = tree::parse(raw, &arena).ok()?;
    if arena.has_inner_hits_key() {
        return None;
    }
    let objects = arena.objects();
    super::claim_clause_copies(req.meter, &req.scope.filters, objects, super::TREE_COPY).ok()?;
    let scope = req.scope;
    let out = rewrite::count_tree(tree, arena.has_knn_key(), &scope.filters).ok()??;
    let up = Upstream::at_path(Method::Post, req.index().ok()?, "/", "/_count");
    Some(tree_forward(up, &out, raw, raw.len() + 256))
}

/// The raw body when the tree path may read it: present, not encoded, JSON, within the cap,
/// and no URI search to merge (the serde path decides everything else).
fn tree_body<'r>(req: &Request<'r>) -> Option<&'r [u8]> {
    let raw = req.raw_body.filter(|b| !b.is_empty())?;
    if req.head.content_encoding.is_some()
        || req.uri_query.is_some()
        || body::check_content_type(req.head.content_type, Media::Json).is_err()
        || raw.len() > req.max_body
    {
        return None;
    }
    Some(raw)
}

#[cfg(test)]
pub(super) mod tests;
