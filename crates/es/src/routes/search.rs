//! `_search` and `_count`: the body (or the URI search `?q=`, see `uri_search`) rewritten with
//! the token's filters (`rewrite`), the cost limits applied (`cost`), and doc-id sort values
//! sealed (`ordinals`). A search may scroll (its answer's `_scroll_id` is sealed) or run on a
//! point in time given in the body (`pit`, sealed; then it names no index). An async search
//! submit is rewritten by `rewrite` too, in its own `Form` (see `async_search`).
//!
//! Invariant: the forwarded body is the rewriter's output, never the client's bytes; a search
//! on a point in time reaches the backend only with a point-in-time id sealed for the token.

use serde_json::{Map, Value};

use super::scroll_pit::{self, SCROLL_SEAL};
use super::{json_forward_sized, Request, Spec, Upstream};
use crate::dsl::rewrite;
use crate::ids::continuation::{self, IdKind, Seal};
use crate::ids::ordinals::{self, Positions, SortSeal};
use crate::querylang::uri_search;
use crate::request::params::{Kind, ParamSet};
use crate::{Method, Rejection};

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
    ("max_concurrent_shard_requests", Kind::Uint),
    ("request_cache", Kind::Bool),
    ("preference", Kind::Text),
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
    ("preference", Kind::Text),
    ("routing", Kind::Text),
    ("terminate_after", Kind::Uint),
];

pub(crate) const SEARCH: Spec = Spec {
    action: "search",
    params: ParamSet::own(SEARCH_PARAMS).indices_options().uri_search(),
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
};

/// `_search`.
fn search(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    rewrite(req, &PLAIN)
}

/// A search in `form`: the body (or URI search) rewritten, limited and forwarded to the path's
/// expression, or to the point in time its body names.
pub(crate) fn rewrite(req: &mut Request<'_>, form: &Form) -> Result<Upstream, Rejection> {
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
    let mut up = Upstream::at_path(Method::Post, e, "/", form.api);
    up.seal = form.id.or(scrolls.then_some(SCROLL_SEAL));
    let mut out = rewrite::search(body, &scope.filters)?;
    scope.guard.search(&mut out, &mut req.params)?;
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
    let mut out = rewrite::search(body, &scope.filters)?;
    scope.guard.search(&mut out, &mut req.params)?;
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
            k.as_str(),
            "expand_wildcards" | "ignore_unavailable" | "allow_no_indices"
        )
    });
    let mut up = Upstream::fixed(Method::Post, form.api).json(&out)?;
    up.seal = Some(form.id.unwrap_or(PIT_SEAL));
    up.sort_seal = positions.map(form.sort);
    Ok(up)
}

/// `_count`: always a body with the token's filters (`rewrite::count`).
fn count(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let up = Upstream::at_path(Method::Post, req.index()?, "/", "/_count");
    let body = uri_search::merge(req.json_body()?, req.uri_query.take())?;
    up.json(&rewrite::count(body, &req.scope.filters)?)
}
