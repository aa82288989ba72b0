//! The three steps behind [`crate::plan`], [`crate::prepare`] and [`crate::authorize`]:
//! classification, body rewrite, and the concrete-index check that issues the `Permit`.
//!
//! Invariant: every allowed route is handled by an explicit `match` arm (no wildcard), the
//! forwarded path is rebuilt from checked values only, the forwarded body is always built by
//! esgate (never the client's bytes), and a `Permit` is issued only when every expression in
//! `to_resolve` is present in the resolution and every concrete index behind it is allowed.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::answers::shaping::Shaping;
use crate::answers::transform::Transform;
use crate::async_search;
use crate::ids::continuation::{self, IdKind, Seal};
use crate::ids::ordinals::{self, SortSeal};
use crate::indices::index::{self, Expression};
use crate::indices::resolution::{self, Narrowed};
use crate::request::body::{self, Media};
use crate::request::dialect::{Dialect, DialectRoute};
use crate::request::endpoint::{self, Endpoint, Route};
use crate::request::params::{self, ParamSet};
use crate::{cat_indices, cluster_health, explain, terms_enum};
use crate::{
    dsl::rewrite, error, msearch, Answer, ForwardBody, Method, Permit, Plan, Prepared, RejectKind,
    Rejection, RequestHead, Resolution, Scope,
};
use crate::{knn_search, querylang::uri_search, validate_query};

/// Most distinct index expressions in one `_msearch` (Grafana dashboards use a handful).
const MAX_MSEARCH_EXPRESSIONS: usize = 64;

/// Longest path esgate forwards: Elasticsearch refuses request lines over 4 KiB by default.
const MAX_FORWARDED_PATH: usize = 3500;

/// Where the index expression sits in the forwarded request, so that `authorize` can put a
/// narrowed list of names in its place.
#[derive(Clone, Debug)]
pub(crate) enum Shape {
    /// No index expression (root).
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

const JSON: &str = "application/json";
const HEALTH: &str = "/_cluster/health/";
const NDJSON: &str = "application/x-ndjson";

pub(crate) fn plan(head: &RequestHead<'_>, scope: &Scope) -> Result<Plan, Rejection> {
    let method = endpoint::parse_method(head.method)?;
    let route = match endpoint::classify(method, head.path)? {
        Endpoint::Allowed(route) => route,
        Endpoint::Denied(denied) => return Err(denied.rejection()),
    };
    let set = match &route {
        Route::Root => ParamSet::Root,
        Route::Search { .. } => ParamSet::Search,
        Route::Count { .. } => ParamSet::Count,
        Route::Msearch { .. } => ParamSet::Msearch,
        Route::Mapping { .. } => ParamSet::Mapping,
        Route::FieldCaps { .. } => ParamSet::FieldCaps,
        Route::ClusterHealth { .. } => ParamSet::ClusterHealth,
        Route::ResolveIndex { .. } => ParamSet::ResolveIndex,
        Route::ScrollNext => ParamSet::Scroll,
        Route::PitOpen { .. } | Route::OsPitOpen { .. } => ParamSet::PitOpen,
        Route::ScrollClear | Route::PitClose | Route::OsPitClose => ParamSet::NoParams,
        Route::AsyncSubmit { .. } => ParamSet::AsyncSubmit,
        Route::AsyncById { op, .. } => match op {
            async_search::AsyncOp::Get => ParamSet::AsyncGet,
            async_search::AsyncOp::Status | async_search::AsyncOp::Delete => ParamSet::NoParams,
        },
        Route::ValidateQuery { .. } => ParamSet::ValidateQuery,
        Route::KnnSearch { .. } => ParamSet::KnnSearch,
        Route::TermsEnum { .. } => ParamSet::TermsEnum,
        Route::CatIndices { .. } => ParamSet::CatIndices,
        Route::Explain { .. } => ParamSet::Explain,
        Route::Esql => ParamSet::Esql,
        Route::Sql => ParamSet::Sql,
        Route::SqlClose => ParamSet::NoParams,
        Route::Eql { .. } => ParamSet::Eql,
    };
    let params = params::check(head.query, set)?;
    let index = match &route {
        Route::Root
        | Route::ScrollNext
        | Route::ScrollClear
        | Route::PitClose
        | Route::OsPitClose
        | Route::AsyncById { .. } => None,
        Route::Esql | Route::Sql | Route::SqlClose => None,
        Route::Eql { index } => Some(index::parse(Some(index), &scope.indices)?),
        Route::PitOpen { index } | Route::OsPitOpen { index } => {
            Some(index::parse(Some(index), &scope.indices)?)
        }
        Route::Search { index }
        | Route::Count { index }
        | Route::Msearch { index }
        | Route::Mapping { index }
        | Route::FieldCaps { index }
        | Route::ClusterHealth { index }
        | Route::AsyncSubmit { index } => Some(index::parse(index.as_deref(), &scope.indices)?),
        Route::ResolveIndex { name } => Some(index::parse(Some(name), &scope.indices)?),
        Route::ValidateQuery { index } => Some(index::parse(index.as_deref(), &scope.indices)?),
        Route::KnnSearch { index } => Some(index::parse(Some(index), &scope.indices)?),
        Route::TermsEnum { index } | Route::Explain { index, .. } => {
            Some(index::parse(Some(index), &scope.indices)?)
        }
        Route::CatIndices { index } => Some(index::parse(index.as_deref(), &scope.indices)?),
    };
    Ok(Plan {
        action: route.action(),
        route,
        method,
        params,
        index,
    })
}

pub(crate) fn prepare(
    plan: Plan,
    raw_body: Option<&[u8]>,
    head: &RequestHead<'_>,
    scope: &Scope,
    max: usize,
) -> Result<Prepared, Rejection> {
    let Plan {
        action,
        route,
        method,
        params,
        index,
    } = plan;
    let expr = || {
        index
            .clone()
            .ok_or_else(|| Rejection::forbidden("index expression is missing"))
    };
    let json_body = || body::decode_json(raw_body, head.content_type, head.content_encoding, max);
    // `q` and its companions leave the parameters and become the body query; the response
    // shaping ones are placed by `authorize` (forwarded or applied by esgate).
    let mut params = params;
    let shaping = Shaping::take(&mut params)?;
    let uri_query = uri_search::take(&mut params)?;
    crate::dsl::fields::check_params(&params)?;
    let mut shape = Shape::Fixed;
    let mut seal = None;
    let mut transform = None;
    let dialect_route = dialect_route(&route);
    let mut sort_seal = None;
    let scroll_requested = params.iter().any(|(k, _)| k == "scroll");
    // An async search submit is rewritten like a search; only its path and seal differ.
    let async_submit = matches!(route, Route::AsyncSubmit { .. });
    let api = async_search::search_api(async_submit);
    let (method, path, body, to_resolve) = match route {
        Route::Root => (method, "/".to_string(), None, Vec::new()),
        Route::ClusterHealth { index: named } => {
            let (sh, path, resolve) = at_path(&expr()?, HEALTH, "");
            // Without a path index, the token's concrete indices: never a literal pattern that
            // names no index (health would be red for it).
            shape = match named {
                Some(_) => sh,
                None => Shape::ConcreteIndices { before: HEALTH },
            };
            params = cluster_health::forwarded_params(&params);
            transform = Some(Transform::ClusterHealth);
            (Method::Get, path, None, resolve)
        }
        Route::Mapping { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/", "/_mapping");
            shape = sh;
            (Method::Get, path, None, resolve)
        }
        Route::ResolveIndex { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/_resolve/index/", "");
            shape = sh;
            (Method::Get, path, None, resolve)
        }
        Route::FieldCaps { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/", "/_field_caps");
            shape = sh;
            let body = field_caps_body(json_body()?)?;
            match body {
                Some(b) => (Method::Post, path, Some(json_forward(&b)?), resolve),
                None => (Method::Get, path, None, resolve),
            }
        }
        Route::Search { index: named } | Route::AsyncSubmit { index: named } => {
            let body = uri_search::merge(json_body()?, uri_query)?;
            let mut body = ordinals::take_uri_sort(&mut params, body)?;
            let pit = match body.as_mut() {
                Some(Value::Object(m)) => m.remove("pit"),
                _ => None,
            };
            if let Some(pit) = pit {
                // A point in time carries its indices; Elasticsearch refuses an index beside it.
                if named.is_some() {
                    return Err(Rejection::bad_request(
                        "a search with a point in time must not name an index",
                    ));
                }
                if scroll_requested {
                    return Err(Rejection::bad_request(
                        "a search with a point in time cannot scroll",
                    ));
                }
                let pit = continuation_object(&pit, "pit", "id", &["keep_alive"])?;
                let backend_id = continuation::open(&scope.ids, IdKind::Pit, &pit.id)?;
                let mut out = rewrite::search(body, &scope.filters)?;
                scope.guard.search(&mut out, &mut params)?;
                let positions = ordinals::prepare(
                    &mut out,
                    ordinals::Mode::Pit {
                        backend_id: &backend_id,
                    },
                    &scope.ids,
                )?;
                let mut pit_out = serde_json::Map::new();
                pit_out.insert("id".into(), Value::String(backend_id));
                pit_out.extend(pit.rest);
                if let Value::Object(m) = &mut out {
                    m.insert("pit".into(), Value::Object(pit_out));
                }
                seal = Some(Seal {
                    field: "pit_id",
                    kind: IdKind::Pit,
                    required: false,
                });
                if async_submit {
                    seal = Some(async_search::SEAL);
                }
                let sort_seal = positions.map(|p| {
                    if async_submit {
                        SortSeal::Async(p)
                    } else {
                        SortSeal::Search(p)
                    }
                });
                // The point in time fixes the indices; index options are refused beside it.
                let mut params = params;
                params.retain(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "expand_wildcards" | "ignore_unavailable" | "allow_no_indices"
                    )
                });
                return Ok(Prepared {
                    action,
                    to_resolve: Vec::new(),
                    method: Method::Post,
                    path: api.to_string(),
                    shape,
                    query: params,
                    body: Some(json_forward(&out)?),
                    seal,
                    transform: None,
                    shaping,
                    dialect_route: None,
                    ordinals: sort_seal,
                });
            }
            let e = expr()?;
            let (sh, path, resolve) = at_path(&e, "/", api);
            shape = sh;
            if async_submit {
                seal = Some(async_search::SEAL);
            } else if scroll_requested {
                seal = Some(Seal {
                    field: "_scroll_id",
                    kind: IdKind::Scroll,
                    required: false,
                });
            }
            let mut out = rewrite::search(body, &scope.filters)?;
            scope.guard.search(&mut out, &mut params)?;
            let joined = e.joined();
            let mode = if scroll_requested {
                ordinals::Mode::Scroll
            } else {
                ordinals::Mode::Plain {
                    expression: &joined,
                }
            };
            sort_seal = ordinals::prepare(&mut out, mode, &scope.ids)?.map(|p| {
                if async_submit {
                    SortSeal::Async(p)
                } else {
                    SortSeal::Search(p)
                }
            });
            let capacity = raw_body.map_or(0, <[u8]>::len) + 512;
            (
                Method::Post,
                path,
                Some(json_forward_sized(&out, capacity)?),
                resolve,
            )
        }
        Route::AsyncById { op, id } => {
            let (method, path, by_id_seal, positions) = async_search::by_id(op, &id, scope)?;
            seal = by_id_seal;
            sort_seal = positions.map(SortSeal::Async);
            (method, path, None, Vec::new())
        }
        Route::Count { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/", "/_count");
            shape = sh;
            let out = rewrite::count(uri_search::merge(json_body()?, uri_query)?, &scope.filters)?;
            (Method::Post, path, Some(json_forward(&out)?), resolve)
        }
        Route::ValidateQuery { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/", "/_validate/query");
            shape = sh;
            let out = validate_query::body(json_body()?, uri_query, &scope.filters)?;
            (Method::Post, path, Some(json_forward(&out)?), resolve)
        }
        Route::KnnSearch { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/", "/_search");
            shape = sh;
            let search = knn_search::to_search(json_body()?)?;
            let mut out = rewrite::search(Some(search), &scope.filters)?;
            scope.guard.search(&mut out, &mut Vec::new())?;
            (Method::Post, path, Some(json_forward(&out)?), resolve)
        }
        Route::ScrollNext => {
            let body = json_body()?.unwrap_or(Value::Null);
            let c = continuation_object(&body, "body", "scroll_id", &["scroll"])?;
            let backend_id = continuation::open(&scope.ids, IdKind::Scroll, &c.id)?;
            let mut out = serde_json::Map::new();
            out.insert("scroll_id".into(), Value::String(backend_id));
            out.extend(c.rest);
            seal = Some(Seal {
                field: "_scroll_id",
                kind: IdKind::Scroll,
                required: false,
            });
            (
                Method::Post,
                "/_search/scroll".to_string(),
                Some(json_forward(&Value::Object(out))?),
                Vec::new(),
            )
        }
        Route::ScrollClear => {
            let body = json_body()?.unwrap_or(Value::Null);
            let ids = continuation_ids(&body, "scroll_id", IdKind::Scroll, scope)?;
            let out = serde_json::json!({ "scroll_id": ids });
            (
                Method::Delete,
                "/_search/scroll".to_string(),
                Some(json_forward(&out)?),
                Vec::new(),
            )
        }
        Route::PitOpen { .. } | Route::OsPitOpen { .. } => {
            let e = expr()?;
            match json_body()? {
                None => {}
                Some(Value::Object(m)) if m.is_empty() => {}
                Some(_) => {
                    return Err(Rejection::forbidden(
                        "a body is not allowed when opening a point in time",
                    ))
                }
            }
            if !params.iter().any(|(k, _)| k == "keep_alive") {
                return Err(Rejection::bad_request(
                    "opening a point in time needs a keep_alive parameter",
                ));
            }
            let (after, field) = match route {
                Route::PitOpen { .. } => ("/_pit", "id"),
                _ => ("/_search/point_in_time", "pit_id"),
            };
            let (sh, path, resolve) = at_path(&e, "/", after);
            shape = sh;
            seal = Some(Seal {
                field,
                kind: IdKind::Pit,
                required: true,
            });
            (Method::Post, path, None, resolve)
        }
        Route::PitClose => {
            let body = json_body()?.unwrap_or(Value::Null);
            let c = continuation_object(&body, "body", "id", &[])?;
            let backend_id = continuation::open(&scope.ids, IdKind::Pit, &c.id)?;
            (
                Method::Delete,
                "/_pit".to_string(),
                Some(json_forward(&serde_json::json!({ "id": backend_id }))?),
                Vec::new(),
            )
        }
        Route::OsPitClose => {
            let body = json_body()?.unwrap_or(Value::Null);
            let ids = continuation_ids(&body, "pit_id", IdKind::Pit, scope)?;
            (
                Method::Delete,
                "/_search/point_in_time".to_string(),
                Some(json_forward(&serde_json::json!({ "pit_id": ids }))?),
                Vec::new(),
            )
        }
        Route::TermsEnum { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/", "/_search");
            shape = sh;
            let (mut out, answer) = terms_enum::search_body(json_body()?, &scope.filters)?;
            scope.guard.search(&mut out, &mut Vec::new())?;
            transform = Some(Transform::TermsEnum(answer));
            (Method::Post, path, Some(json_forward(&out)?), resolve)
        }
        Route::CatIndices { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/_cat/indices/", "");
            shape = sh;
            let (forward, table) = cat_indices::plan(&params, !scope.filters.is_empty())?;
            params = forward;
            transform = Some(Transform::CatIndices(table));
            (Method::Get, path, None, resolve)
        }
        Route::Explain { id, .. } => {
            // One concrete index (or an alias of one): a wildcard would be narrowed to a list.
            let e = expr()?;
            let [name] = e.elements() else {
                return Err(Rejection::bad_request("explain takes exactly one index"));
            };
            if name.contains('*') {
                return Err(Rejection::bad_request("explain takes exactly one index"));
            }
            let lookup = explain::Lookup::new(name, &id, &params)?;
            let out = explain::search_body(json_body()?, &scope.filters, &lookup)?;
            transform = Some(Transform::Explain(lookup));
            (
                Method::Post,
                format!("/{name}/_search"),
                Some(json_forward(&out)?),
                vec![name.clone()],
            )
        }
        Route::Esql => {
            let checked = crate::querylang::esql(json_body()?, scope)?;
            let body = checked.body()?;
            let resolve = vec![checked.expression.joined()];
            shape = Shape::QueryText(checked.text);
            (Method::Post, "/_query".to_string(), Some(body), resolve)
        }
        Route::Sql => {
            seal = Some(crate::querylang::SQL_CURSOR_SEAL);
            match crate::querylang::sql(json_body()?, scope)? {
                crate::querylang::SqlRequest::Query(checked) => {
                    let body = checked.body()?;
                    let resolve = vec![checked.expression.joined()];
                    shape = Shape::QueryText(checked.text);
                    (Method::Post, "/_sql".to_string(), Some(body), resolve)
                }
                crate::querylang::SqlRequest::Next(body) => {
                    (Method::Post, "/_sql".to_string(), Some(body), Vec::new())
                }
            }
        }
        Route::SqlClose => (
            Method::Post,
            "/_sql/close".to_string(),
            Some(crate::querylang::sql_close(json_body()?, scope)?),
            Vec::new(),
        ),
        Route::Eql { .. } => {
            let (sh, path, resolve) = at_path(&expr()?, "/", "/_eql/search");
            shape = sh;
            let body = json_body()?;
            scope.guard.eql(body.as_ref())?;
            let body = crate::querylang::eql(body, &scope.filters)?;
            (Method::Post, path, Some(body), resolve)
        }
        Route::Msearch { .. } => {
            let path_index: Option<Expression> = index.clone();
            let Some(raw) = raw_body.filter(|b| !b.is_empty()) else {
                return Err(Rejection::bad_request("msearch needs a request body"));
            };
            if body::check_content_type(head.content_type, Media::Ndjson).is_err() {
                body::check_content_type(head.content_type, Media::Json)?;
            }
            let bytes = body::decode_content(raw, head.content_encoding, max)?;
            let mut items =
                msearch::rewrite(&bytes, path_index.as_ref(), &scope.indices, &scope.filters)?;
            for (i, item) in items.iter_mut().enumerate() {
                scope
                    .guard
                    .search(&mut item.body, &mut Vec::new())
                    .map_err(|mut r| {
                        r.reason = format!("msearch search {}: {}", i + 1, r.reason);
                        r
                    })?;
            }
            let mut positions = Vec::with_capacity(items.len());
            for item in &mut items {
                let joined = item.index.joined();
                let mode = ordinals::Mode::Plain {
                    expression: &joined,
                };
                positions.push(ordinals::prepare(&mut item.body, mode, &scope.ids)?);
            }
            if positions.iter().any(Option::is_some) {
                sort_seal = Some(SortSeal::Msearch(positions));
            }
            let mut to_resolve: Vec<String> = Vec::new();
            for item in &items {
                let joined = item.index.joined();
                if !to_resolve.contains(&joined) {
                    to_resolve.push(joined);
                }
            }
            // Each distinct expression costs a resolve call before anything is forwarded.
            if to_resolve.len() > MAX_MSEARCH_EXPRESSIONS {
                return Err(Rejection::bad_request(format!(
                    "an msearch may name at most {MAX_MSEARCH_EXPRESSIONS} distinct index expressions; split it"
                )));
            }
            let bodies = msearch::render_bodies(&items)?;
            let ndjson = msearch::to_ndjson_with(&items, &bodies)?;
            // The trees are not needed past here: the serialised bodies are reused.
            for item in &mut items {
                item.body = Value::Null;
            }
            shape = Shape::Msearch(items, bodies);
            (
                Method::Post,
                "/_msearch".to_string(),
                Some(ForwardBody {
                    bytes: ndjson,
                    content_type: NDJSON,
                }),
                to_resolve,
            )
        }
    };
    Ok(Prepared {
        action,
        to_resolve,
        method,
        path,
        shape,
        query: params,
        body,
        seal,
        transform,
        shaping,
        dialect_route,
        ordinals: sort_seal,
    })
}

pub(crate) fn authorize(
    prepared: Prepared,
    resolution: &Resolution,
    scope: &Scope,
) -> Result<Permit, Rejection> {
    let Prepared {
        action,
        to_resolve,
        method,
        mut path,
        shape,
        query,
        mut body,
        seal,
        transform,
        shaping,
        dialect_route,
        ordinals: sort_seal,
    } = prepared;
    // Before anything else: the other dialect's form must never reach the backend.
    if let Some(route) = dialect_route {
        route.check(resolution.dialect)?;
    }
    let mut indices: BTreeSet<String> = BTreeSet::new();
    // Expression → the allowed names to forward instead, where a wildcard was narrowed.
    let mut narrowed: Vec<(String, Vec<String>)> = Vec::new();
    for expr in &to_resolve {
        let Some(names) = resolution.names.get(expr) else {
            return Err(Rejection::forbidden("index expression was not resolved"));
        };
        match resolution::narrow(expr, names, &scope.indices).map_err(|_| Rejection {
            kind: RejectKind::Forbidden,
            reason: format!(
                "index expression [{}] reaches an index that is not allowed for this token",
                error::printable(expr)
            ),
        })? {
            Narrowed::AsIs { indices: found } => indices.extend(found),
            Narrowed::Only {
                names,
                indices: found,
            } => {
                indices.extend(found);
                narrowed.push((expr.clone(), names));
            }
            // Like Elasticsearch security: wildcards that match nothing the token may read
            // search nothing (an empty answer); a named index is never dropped by `narrow`, so
            // the backend still answers 404 for a missing one.
            // A query language's FROM has its own pattern grammar: never rely on `-*` there.
            Narrowed::Nothing if matches!(shape, Shape::QueryText(_)) => {
                return Err(Rejection {
                    kind: RejectKind::NotFound,
                    reason: format!(
                        "no index the token may read matches [{}]",
                        error::printable(expr)
                    ),
                });
            }
            Narrowed::Nothing => {
                narrowed.push((
                    expr.clone(),
                    NO_INDEX.iter().map(|s| s.to_string()).collect(),
                ));
            }
        }
    }
    if let Shape::ConcreteIndices { before } = &shape {
        let names: Vec<&str> = if indices.is_empty() {
            NO_INDEX.to_vec()
        } else {
            indices.iter().map(String::as_str).collect()
        };
        path = format!("{before}{}", names.join(","));
        if path.len() > MAX_FORWARDED_PATH {
            return Err(Rejection::forbidden(
                "the token's indices are too many to forward; name fewer indices",
            ));
        }
    }
    if !narrowed.is_empty() {
        match shape {
            Shape::Fixed | Shape::ConcreteIndices { .. } => {}
            Shape::Path { before, after } => {
                let names = &narrowed[0].1;
                path = format!("{before}{}{after}", names.join(","));
                if path.len() > MAX_FORWARDED_PATH {
                    return Err(Rejection::forbidden(
                        "the index expression matches too many indices to forward; name fewer indices or a narrower pattern",
                    ));
                }
            }
            Shape::Msearch(mut items, bodies) => {
                for item in &mut items {
                    let joined = item.index.joined();
                    if let Some((_, names)) = narrowed.iter().find(|(e, _)| *e == joined) {
                        item.index = index::Expression::from_names(names.clone());
                    }
                }
                body = Some(ForwardBody {
                    bytes: msearch::to_ndjson_with(&items, &bodies)?,
                    content_type: NDJSON,
                });
            }
            Shape::QueryText(text) => body = Some(text.forward(&narrowed[0].1)?),
        }
    }
    let mut query = query;
    let answer = Answer::decide(seal, sort_seal, transform, shaping, &mut query)?;
    Ok(Permit::new(
        action,
        method,
        path,
        query,
        body,
        indices.into_iter().collect(),
        answer,
    ))
}

/// The point-in-time routes exist in one dialect each (see `dialect`).
fn dialect_route(route: &Route) -> Option<DialectRoute> {
    let (dialect, method, template) = match route {
        Route::PitOpen { .. } => (Dialect::Elasticsearch, "POST", "/{index}/_pit"),
        Route::PitClose => (Dialect::Elasticsearch, "DELETE", "/_pit"),
        Route::OsPitOpen { .. } => (
            Dialect::OpenSearch,
            "POST",
            "/{index}/_search/point_in_time",
        ),
        Route::OsPitClose => (Dialect::OpenSearch, "DELETE", "/_search/point_in_time"),
        _ => return None,
    };
    Some(DialectRoute {
        dialect,
        method,
        template,
    })
}

/// An expression that matches no index on any cluster (`*` minus `*`), forwarded where a
/// wildcard reaches nothing the token may read.
const NO_INDEX: [&str; 2] = ["*", "-*"];

/// A `_field_caps` body: `fields` (a string or a list of strings) and an empty
/// `runtime_mappings`. `index_filter` and anything else is refused. `None` when there is
/// nothing to forward.
fn field_caps_body(body: Option<Value>) -> Result<Option<Value>, Rejection> {
    let m = match body {
        None => return Ok(None),
        Some(Value::Object(m)) if m.is_empty() => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Rejection::bad_request("request body must be a JSON object")),
    };
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("fields", Value::String(f)) => {
                out.insert(k, Value::String(f));
            }
            ("fields", Value::Array(items)) if items.iter().all(Value::is_string) => {
                out.insert(k, Value::Array(items));
            }
            // Elasticsearch decides `index_filter` per shard from index-wide statistics (a
            // range against the min/max of a field over every document), before any term
            // clause of the token's filters is evaluated: which indices are listed would tell
            // whether other tenants' documents hold values in a range (issue #8.4).
            ("index_filter", _) => {
                return Err(Rejection::forbidden(
                    "body key [index_filter] is not allowed for this token: field_caps decides it from index-wide values, including other tenants' documents",
                ))
            }
            // Kibana sends an empty one; a non-empty one could shadow a filtered field.
            ("runtime_mappings", Value::Object(r)) if r.is_empty() => {}
            (key, _) => {
                return Err(Rejection::forbidden(format!(
                    "body key [{}] is not allowed for this token",
                    error::printable(key)
                )))
            }
        }
    }
    Ok(Some(Value::Object(out)))
}

/// The forwarded path `before` + expression + `after`, its shape for narrowing, and the
/// expression to resolve.
fn at_path(
    e: &Expression,
    before: &'static str,
    after: &'static str,
) -> (Shape, String, Vec<String>) {
    let joined = e.joined();
    (
        Shape::Path { before, after },
        format!("{before}{joined}{after}"),
        vec![joined],
    )
}

/// A continuation object such as `{"scroll_id": "...", "scroll": "1m"}` or a search's
/// `pit: {"id": "...", "keep_alive": "1m"}`: the id, and the other allowed keys (time values).
struct ContinuationObject {
    id: String,
    rest: serde_json::Map<String, Value>,
}

fn continuation_object(
    v: &Value,
    what: &str,
    id_key: &str,
    time_keys: &[&str],
) -> Result<ContinuationObject, Rejection> {
    let Value::Object(m) = v else {
        return Err(Rejection::bad_request(format!(
            "{what} must be a JSON object"
        )));
    };
    let mut id = None;
    let mut rest = serde_json::Map::new();
    for (k, val) in m {
        match val {
            Value::String(s) if k == id_key => id = Some(s.clone()),
            Value::String(s) if time_keys.contains(&k.as_str()) && params::is_time_value(s) => {
                rest.insert(k.clone(), val.clone());
            }
            _ => {
                return Err(Rejection::forbidden(format!(
                    "key [{}] is not allowed in {what}",
                    error::printable(k)
                )))
            }
        }
    }
    let id = id.ok_or_else(|| Rejection::bad_request(format!("{what} needs [{id_key}]")))?;
    Ok(ContinuationObject { id, rest })
}

/// `{"<key>": "id"}` or `{"<key>": ["id", ...]}`: every id opened for this token.
fn continuation_ids(
    v: &Value,
    key: &str,
    kind: IdKind,
    scope: &Scope,
) -> Result<Vec<String>, Rejection> {
    let Value::Object(m) = v else {
        return Err(Rejection::bad_request("the body must be a JSON object"));
    };
    if m.len() != 1 {
        return Err(Rejection::bad_request(format!(
            "the body takes only [{key}]"
        )));
    }
    let sealed: Vec<&str> = match m.get(key) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 1000 => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| Rejection::bad_request("ids must be strings"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(Rejection::bad_request(format!("the body needs [{key}]"))),
    };
    sealed
        .into_iter()
        .map(|s| continuation::open(&scope.ids, kind, s))
        .collect()
}

fn json_forward(v: &Value) -> Result<ForwardBody, Rejection> {
    json_forward_sized(v, 128)
}

/// [`json_forward`] into a buffer of `capacity` bytes to start with: a rewritten search is
/// about as long as the client's body plus the token's clauses, so sizing the buffer from it
/// saves the copies of growing it by doubling (issue 10).
fn json_forward_sized(v: &Value, capacity: usize) -> Result<ForwardBody, Rejection> {
    let mut bytes = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut bytes, v)
        .map_err(|_| Rejection::bad_request("body could not be serialised"))?;
    Ok(ForwardBody {
        bytes,
        content_type: JSON,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use serde_json::json;

    use super::*;
    use crate as es;

    use crate::testing::scope;

    use crate::testing::head;

    fn as_indices(concrete: Vec<String>) -> Vec<es::indices::resolution::ResolvedName> {
        concrete
            .into_iter()
            .map(|n| es::indices::resolution::ResolvedName {
                indices: vec![n.clone()],
                name: n,
                kind: es::indices::resolution::NameKind::Index,
            })
            .collect()
    }

    fn resolution(pairs: &[(&str, &[&str])]) -> Resolution {
        Resolution {
            names: pairs
                .iter()
                .map(|(e, c)| {
                    (
                        e.to_string(),
                        as_indices(c.iter().map(|s| s.to_string()).collect()),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            dialect: None,
        }
    }

    /// Runs the three steps; `resolve` maps each expression to concrete indices.
    fn run(
        h: &RequestHead<'_>,
        body: Option<&[u8]>,
        resolve: impl Fn(&str) -> Vec<String>,
    ) -> Result<Permit, Rejection> {
        let s = scope();
        let plan = es::plan(h, &s)?;
        let prepared = es::prepare(plan, body, h, &s)?;
        let mut r = Resolution::default();
        for e in prepared.to_resolve() {
            r.names.insert(e.clone(), as_indices(resolve(e)));
        }
        es::authorize(prepared, &r, &s)
    }

    fn logs(_: &str) -> Vec<String> {
        vec!["logs-a".to_string(), "logs-b".to_string()]
    }

    fn body_json(p: &Permit) -> Value {
        let b = p.body.as_ref().expect("a body");
        serde_json::from_slice(&b.bytes).expect("json")
    }

    fn wrapped_match_all() -> Value {
        json!({"bool":{"filter":[{"term":{"tenant":{"value":"a"}}}],"must":[{"match_all":{}}]}})
    }

    #[test]
    fn bodiless_search_gets_the_token_patterns_and_the_filter() {
        // LEGIT / BODY-43 / IDX-08
        let p = run(&head("GET", "/_search", Some("size=100")), None, logs).unwrap();
        assert_eq!(p.action, "search");
        assert_eq!(p.method, Method::Post);
        assert_eq!(p.path, "/logs-a,logs-b/_search");
        assert_eq!(
            p.query,
            vec![
                ("size".to_string(), "100".to_string()),
                ("expand_wildcards".to_string(), "open".to_string())
            ]
        );
        assert_eq!(body_json(&p), json!({ "query": wrapped_match_all() }));
        assert_eq!(
            p.body.as_ref().map(|b| b.content_type),
            Some("application/json")
        );
        assert_eq!(p.indices, vec!["logs-a".to_string(), "logs-b".to_string()]);
    }

    #[test]
    fn get_body_is_rewritten_like_post() {
        // BODY-44
        let p = run(
            &head("GET", "/logs-a/_search", None),
            Some(br#"{"query":{"term":{"user":"x"}}}"#),
            |_| vec!["logs-a".to_string()],
        )
        .unwrap();
        assert_eq!(p.path, "/logs-a/_search");
        assert_eq!(
            body_json(&p)["query"]["bool"]["must"],
            json!([{"term":{"user":"x"}}])
        );
    }

    #[test]
    fn count_always_sends_a_wrapped_query() {
        // A20 / LEGIT-03
        let p = run(&head("GET", "/logs-*/_count", None), None, logs).unwrap();
        assert_eq!(p.path, "/logs-a,logs-b/_count");
        assert_eq!(body_json(&p), json!({ "query": wrapped_match_all() }));
    }

    #[test]
    fn compressed_bodies_are_decoded_and_rewritten() {
        // ENC-13
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(br#"{"aggs":{"all":{"global":{}}}}"#).unwrap();
        let gz = e.finish().unwrap();
        let mut h = head("POST", "/logs-a/_search", None);
        h.content_encoding = Some("gzip");
        let err = run(&h, Some(&gz), logs).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
    }

    #[test]
    fn deflate_bodies_are_decoded_too() {
        // ENC-14
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(br#"{"query":{"term":{"user":"x"}}}"#).unwrap();
        let z = e.finish().unwrap();
        let mut h = head("POST", "/logs-a/_search", None);
        h.content_encoding = Some("deflate");
        let p = run(&h, Some(&z), logs).unwrap();
        assert_eq!(
            body_json(&p)["query"]["bool"]["must"],
            json!([{"term":{"user":"x"}}])
        );
    }

    #[test]
    fn response_shaping_and_field_parameters_that_stay_inside_the_filter_are_kept() {
        // ENC-08: fine once the query is wrapped.
        let q = "stored_fields=a&docvalue_fields=b&_source=c&sort=t:desc&typed_keys=true&rest_total_hits_as_int=true";
        let p = run(&head("GET", "/logs-a/_search", Some(q)), None, logs).unwrap();
        let names: Vec<&str> = p.query.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "stored_fields",
                "docvalue_fields",
                "_source",
                "typed_keys",
                "rest_total_hits_as_int",
                "expand_wildcards"
            ]
        );
        // `?sort=` travels in the body, where its doc-id positions are known (see `ordinals`).
        assert_eq!(body_json(&p)["sort"], json!([{"t": {"order": "desc"}}]));
        assert!(p.answer.sort_seal().is_none());
    }

    #[test]
    fn doc_id_sorts_are_sealed_in_searches_msearches_and_async_searches() {
        let p = run(
            &head("GET", "/logs-a/_search", Some("sort=_doc:desc")),
            None,
            logs,
        )
        .unwrap();
        assert_eq!(body_json(&p)["sort"], json!([{"_doc": {"order": "desc"}}]));
        assert!(matches!(
            p.answer.sort_seal(),
            Some(es::ids::ordinals::SortSeal::Search(_))
        ));
        let mut h = head("POST", "/_msearch", None);
        h.content_type = Some("application/x-ndjson");
        let body = b"{}\n{\"sort\":[\"n\"]}\n{}\n{\"sort\":{\"t\":\"desc\",\"_doc\":\"desc\"}}\n";
        let p = run(&h, Some(body), logs).unwrap();
        match p.answer.sort_seal() {
            Some(es::ids::ordinals::SortSeal::Msearch(items)) => {
                assert_eq!(items.len(), 2);
                assert!(items[0].is_none() && items[1].is_some());
            }
            other => panic!("{other:?}"),
        }
        let mut h = head("POST", "/logs-a/_async_search", None);
        h.content_type = Some("application/json");
        let p = run(&h, Some(br#"{"sort":["_doc"]}"#), logs).unwrap();
        assert!(matches!(
            p.answer.sort_seal(),
            Some(es::ids::ordinals::SortSeal::Async(_))
        ));
        // A scan's sort is dropped; any other doc-id sort under scroll is refused.
        let p = run(
            &head("POST", "/logs-a/_search", Some("scroll=1m")),
            Some(br#"{"sort":"_doc"}"#),
            logs,
        )
        .unwrap();
        assert_eq!(body_json(&p).get("sort"), None);
        assert!(p.answer.sort_seal().is_none());
        let err = run(
            &head(
                "POST",
                "/logs-a/_search",
                Some("scroll=1m&sort=t:desc,_doc"),
            ),
            None,
            logs,
        )
        .unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        // A raw doc id in search_after is refused.
        let err = run(
            &head("POST", "/logs-a/_search", None),
            Some(br#"{"sort":["t","_doc"],"search_after":[1,5]}"#),
            logs,
        )
        .unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        // A point in time (search and async search): the tiebreaker past the sort is sealed,
        // and a raw tiebreaker in search_after is refused.
        let pit = crate::ids::continuation::seal(&scope().ids, IdKind::Pit, "backend-pit");
        for (path, async_search) in [("/_search", false), ("/_async_search", true)] {
            let body = json!({"pit": {"id": pit}, "sort": [{"t": "desc"}]}).to_string();
            let p = run(&head("POST", path, None), Some(body.as_bytes()), logs).unwrap();
            assert_eq!(body_json(&p)["pit"]["id"], json!("backend-pit"));
            match (p.answer.sort_seal(), async_search) {
                (Some(es::ids::ordinals::SortSeal::Async(_)), true)
                | (Some(es::ids::ordinals::SortSeal::Search(_)), false) => {}
                (other, _) => panic!("{path}: {other:?}"),
            }
            let body = json!({"pit": {"id": pit}, "sort": [{"t": "desc"}], "search_after": [1, 9]});
            let err = run(
                &head("POST", path, None),
                Some(body.to_string().as_bytes()),
                logs,
            )
            .unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{path}");
        }
    }

    /// Issues #8.2/#17.3 and #17.5: URI parameters naming internal counters, and `slice`
    /// without a scroll or a point in time, never reach the backend.
    #[test]
    fn internal_counter_parameters_and_unscrolled_slices_are_refused() {
        let cases = [
            (
                "/logs-a/_search",
                "sort=_seq_no:desc",
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_search",
                "sort=n,_primary_term",
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_search",
                "docvalue_fields=_seq_no",
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_search",
                "stored_fields=_primary_term",
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_search",
                "seq_no_primary_term=true",
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_search",
                "seq_no_primary_term",
                RejectKind::Forbidden,
            ),
            (
                "/logs-a/_search",
                "q=_seq_no:%5B0%20TO%205%5D",
                RejectKind::Forbidden,
            ),
            ("/logs-a/_search", "q=x&df=_seq_no", RejectKind::Forbidden),
            ("/logs-a/_count", "q=_primary_term:1", RejectKind::Forbidden),
            (
                "/logs-a/_search",
                "docvalue_fields=_source",
                RejectKind::BadRequest,
            ),
        ];
        for (path, q, want) in cases {
            let got = run(&head("GET", path, Some(q)), None, logs);
            assert_eq!(got.map(|_| ()).map_err(|r| r.kind), Err(want), "{path}?{q}");
        }
        for q in [
            "sort=_doc",
            "sort=@timestamp:desc,_doc:asc",
            "seq_no_primary_term=false",
        ] {
            assert!(
                run(&head("GET", "/logs-a/_search", Some(q)), None, logs).is_ok(),
                "{q}"
            );
        }
        let slice = br#"{"slice": {"id": 0, "max": 2}}"#;
        for (path, q) in [("/logs-a/_search", None), ("/logs-a/_async_search", None)] {
            let got = run(&head("POST", path, q), Some(slice), logs);
            assert_eq!(
                got.map(|_| ()).map_err(|r| r.kind),
                Err(RejectKind::BadRequest),
                "{path}"
            );
        }
        let ms = b"{}\n{\"slice\": {\"id\": 0, \"max\": 2}}\n";
        let mut h = head("POST", "/logs-a/_msearch", None);
        h.content_type = Some("application/x-ndjson");
        let got = run(&h, Some(ms), logs);
        assert_eq!(
            got.map(|_| ()).map_err(|r| r.kind),
            Err(RejectKind::BadRequest)
        );
        let scrolled = run(
            &head("POST", "/logs-a/_search", Some("scroll=1m")),
            Some(slice),
            logs,
        );
        assert!(scrolled.is_ok(), "{scrolled:?}");
    }

    #[test]
    fn resolution_to_a_foreign_index_is_refused_without_naming_it() {
        // IDX-16: alias logs-sa -> secret.
        let s = scope();
        let h = head("GET", "/logs-sa/_search", None);
        let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
        let mut r = Resolution::default();
        r.names.insert(
            "logs-sa".into(),
            vec![es::indices::resolution::ResolvedName {
                name: "logs-sa".into(),
                kind: es::indices::resolution::NameKind::Alias,
                indices: vec!["secret".into()],
            }],
        );
        let err = es::authorize(prepared, &r, &s).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        assert!(!err.reason.contains("secret"), "{}", err.reason);
        // IDX-17: data-stream backing indices of an allowed stream are fine.
        let ok = run(&head("GET", "/logs-app/_search", None), None, |_| {
            vec![".ds-logs-app-2026.01.01-000001".to_string()]
        });
        assert!(ok.is_ok());
    }

    /// A wildcard the token's patterns cannot reach resolves to foreign indices only: the
    /// permit searches no index (`*,-*`), never the foreign ones.
    #[test]
    fn unreachable_wildcards_search_nothing() {
        let secret = |_: &str| vec!["secret".to_string(), ".security-7".to_string()];
        for path in ["/s*/_search", "/sec*,.secur*/_count"] {
            let p = run(&head("GET", path, None), None, secret).unwrap();
            assert!(p.path.starts_with("/*,-*/"), "{path}: {}", p.path);
            assert!(p.indices.is_empty(), "{path}");
        }
        // Beside an allowed index only the allowed one remains.
        let mixed = |e: &str| {
            if e.starts_with("logs") {
                vec!["logs-a".to_string()]
            } else {
                vec!["secret".to_string()]
            }
        };
        let p = run(&head("GET", "/logs-a,sec*/_search", None), None, mixed).unwrap();
        assert_eq!(p.path, "/logs-a/_search");
    }

    #[test]
    fn authorize_refuses_an_expression_missing_from_the_resolution() {
        let s = scope();
        let h = head("GET", "/_search", None);
        let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
        assert_eq!(prepared.to_resolve(), &["logs-*".to_string()]);
        let err = es::authorize(prepared.clone(), &resolution(&[("other", &[])]), &s).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        // A wildcard that matches nothing searches an expression that matches no index (an
        // empty answer, as Elasticsearch gives), never an unnamed search.
        let permit = es::authorize(prepared, &resolution(&[("logs-*", &[])]), &s).unwrap();
        assert_eq!(permit.path, "/*,-*/_search");
        assert!(permit.indices.is_empty());
        // A named allowed index that does not exist is forwarded as named (the backend's 404).
        let h = head("GET", "/logs-gone/_search", None);
        let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
        let permit = es::authorize(prepared, &resolution(&[("logs-gone", &[])]), &s).unwrap();
        assert_eq!(permit.path, "/logs-gone/_search");
        // Mixed: the named index is kept, the empty wildcard dropped.
        let h = head("GET", "/logs-gone,logs-x*/_search", None);
        let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
        let permit =
            es::authorize(prepared, &resolution(&[("logs-gone,logs-x*", &[])]), &s).unwrap();
        assert_eq!(permit.path, "/logs-gone/_search");
    }

    #[test]
    fn plan_rejects_head_level_attacks() {
        let cases: &[(&str, &str, Option<&str>, RejectKind)] = &[
            (
                "GET",
                "/logs-a%2Csecret/_search",
                None,
                RejectKind::Forbidden,
            ), // IDX-03
            (
                "GET",
                "/logs-%2A%2Csecret/_search",
                None,
                RejectKind::Forbidden,
            ), // IDX-05
            ("GET", "/secret/_search", None, RejectKind::Forbidden),
            (
                "POST",
                "/logs-*/_search",
                Some("q=a&q=b"),
                RejectKind::BadRequest,
            ), // ENC-05
            (
                "GET",
                "/logs-*/_search",
                Some("source=%7B%7D&source_content_type=application/json"),
                RejectKind::Forbidden,
            ), // ENC-06
            (
                "GET",
                "/logs-*/_search",
                Some("expand_wildcards=all"),
                RejectKind::Forbidden,
            ), // IDX-13
            ("GET", "/logs-a/_doc/a1", None, RejectKind::Forbidden), // EP-01
            ("POST", "/_sql/translate", None, RejectKind::Forbidden), // EP-23
            (
                "GET",
                "/_cluster/health",
                Some("level=indices"),
                RejectKind::Forbidden,
            ),
            ("GET", "/_resolve/index/secret", None, RejectKind::Forbidden),
            ("TRACE", "/", None, RejectKind::MethodNotAllowed),
            ("GET", "//secret/_search", None, RejectKind::BadRequest), // IDX-27
            ("GET", "/%c0%ae%c0%ae/_search", None, RejectKind::BadRequest), // IDX-39 overlong UTF-8
            (
                "GET",
                "/%3C%7Bnow%7B'secret'%7D%7D%3E/_search",
                None,
                RejectKind::Forbidden,
            ), // IDX-22
            (
                "GET",
                "/logs-a,.security/_search",
                None,
                RejectKind::Forbidden,
            ), // IDX-14
            (
                "GET",
                "/logs-a/_search",
                Some("format=yaml"),
                RejectKind::Forbidden,
            ), // ENC-34
            (
                "GET",
                "/logs-a/_search",
                Some("error_trace=true"),
                RejectKind::Forbidden,
            ), // ENC-36
        ];
        let s = scope();
        for (m, p, q, kind) in cases {
            let err = es::plan(&head(m, p, *q), &s).unwrap_err();
            assert_eq!(err.kind, *kind, "{m} {p} {q:?}: {}", err.reason);
        }
    }

    #[test]
    fn wildcard_all_with_exclusions_stays_inside_the_token_patterns() {
        // IDX-10: `*` becomes the token's patterns, so the exclusion can only narrow them.
        let s = scope();
        let h = head("GET", "/*,-logs-*/_search", None);
        let prepared = es::prepare(es::plan(&h, &s).unwrap(), None, &h, &s).unwrap();
        assert_eq!(prepared.to_resolve(), &["logs-*,-logs-*".to_string()]);
    }

    #[test]
    fn prepare_rejects_bad_bodies() {
        let s = scope();
        let cases: &[(&str, Option<&str>, &[u8], RejectKind)] = &[
            (
                "/_search",
                Some("application/yaml"),
                b"query: {}",
                RejectKind::UnsupportedMediaType,
            ), // ENC-09
            ("/_search", None, b"{}", RejectKind::UnsupportedMediaType),
            (
                "/_search",
                Some("application/json"),
                b"null",
                RejectKind::BadRequest,
            ), // BODY-45
            (
                "/_search",
                Some("application/json"),
                br#"{"size":1,"size":2}"#,
                RejectKind::BadRequest,
            ), // ENC-18
            (
                "/_search",
                Some("application/json"),
                br#"{"runtime_mappings":{"tenant":{"type":"keyword"}}}"#,
                RejectKind::Forbidden,
            ), // BODY-20
            (
                "/_field_caps",
                Some("application/json"),
                br#"{"index_filter":{"wrapper":{"query":"e30="}}}"#,
                RejectKind::Forbidden,
            ),
            (
                "/_field_caps",
                Some("application/json"),
                br#"{"runtime_mappings":{"tenant":{"type":"keyword"}}}"#,
                RejectKind::Forbidden,
            ),
            (
                "/_msearch",
                Some("application/x-ndjson"),
                b"{}\n{}",
                RejectKind::BadRequest,
            ), // ENC-27
            (
                "/_msearch",
                Some("application/yaml"),
                b"{}\n{}\n",
                RejectKind::UnsupportedMediaType,
            ),
        ];
        for (path, ct, body, kind) in cases {
            let mut h = head("POST", path, None);
            h.content_type = *ct;
            let plan = es::plan(&h, &s).unwrap();
            assert!(plan.needs_body(), "{path}");
            let err = es::prepare(plan, Some(body), &h, &s).unwrap_err();
            assert_eq!(err.kind, *kind, "{path} {ct:?}: {}", err.reason);
        }
    }

    #[test]
    fn decoded_body_cap_is_a_parameter() {
        let s = scope();
        let h = head("POST", "/_search", None);
        let plan = es::plan(&h, &s).unwrap();
        let err = es::prepare_with_limit(plan, Some(br#"{"size":1}"#), &h, &s, 4).unwrap_err();
        assert_eq!(err.kind, RejectKind::TooLarge);
    }

    #[test]
    fn msearch_with_too_many_distinct_expressions_is_refused_before_any_resolve() {
        let mut h = head("POST", "/_msearch", None);
        h.content_type = Some("application/x-ndjson");
        let s = scope();
        let body = |n: usize| {
            (0..n)
                .map(|i| format!("{{\"index\":\"logs-{i}\"}}\n{{}}\n"))
                .collect::<String>()
        };
        let at_cap = body(MAX_MSEARCH_EXPRESSIONS);
        let prepared =
            es::prepare(es::plan(&h, &s).unwrap(), Some(at_cap.as_bytes()), &h, &s).unwrap();
        assert_eq!(prepared.to_resolve().len(), MAX_MSEARCH_EXPRESSIONS);
        let over = body(MAX_MSEARCH_EXPRESSIONS + 1);
        let err =
            es::prepare(es::plan(&h, &s).unwrap(), Some(over.as_bytes()), &h, &s).unwrap_err();
        assert_eq!(err.kind, RejectKind::BadRequest);
        assert!(err.reason.contains("at most 64"), "{}", err.reason);
    }

    #[test]
    fn msearch_forwards_checked_headers_and_resolves_each_expression_once() {
        let mut h = head("POST", "/logs-a/_msearch", None);
        h.content_type = Some("application/x-ndjson");
        let body = b"{}\n{}\n{\"index\":\"logs-b\"}\n{\"size\":1}\n{}\n{\"size\":2}\n";
        let s = scope();
        let prepared = es::prepare(es::plan(&h, &s).unwrap(), Some(body), &h, &s).unwrap();
        assert_eq!(
            prepared.to_resolve(),
            &["logs-a".to_string(), "logs-b".to_string()]
        );
        let permit = es::authorize(
            prepared,
            &resolution(&[("logs-a", &["logs-a"]), ("logs-b", &["logs-b"])]),
            &s,
        )
        .unwrap();
        assert_eq!(permit.action, "msearch");
        assert_eq!(permit.path, "/_msearch");
        let b = permit.body.expect("body");
        assert_eq!(b.content_type, "application/x-ndjson");
        let lines: Vec<Value> = std::str::from_utf8(&b.bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0]["index"], json!(["logs-a"]));
        assert_eq!(lines[2]["index"], json!(["logs-b"]));
        for body in [&lines[1], &lines[3], &lines[5]] {
            assert_eq!(body["query"], wrapped_match_all());
        }
    }

    #[test]
    fn metadata_routes_forward_checked_expressions_without_a_body() {
        /// (method, path, query, action, forwarded path, expressions to resolve)
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a str,
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (
                "GET",
                "/_mapping",
                None,
                "mapping",
                "/logs-*/_mapping",
                &["logs-*"],
            ),
            (
                "GET",
                "/logs-a/_mapping",
                None,
                "mapping",
                "/logs-a/_mapping",
                &["logs-a"],
            ),
            (
                "GET",
                "/_field_caps",
                Some("fields=*"),
                "field_caps",
                "/logs-*/_field_caps",
                &["logs-*"],
            ),
            (
                "POST",
                "/logs-a/_field_caps",
                Some("fields=a,b"),
                "field_caps",
                "/logs-a/_field_caps",
                &["logs-a"],
            ),
            (
                "GET",
                "/_resolve/index/*",
                None,
                "resolve_index",
                "/_resolve/index/logs-*",
                &["logs-*"],
            ),
            (
                "GET",
                "/_cluster/health",
                Some("wait_for_status=yellow"),
                "cluster_health",
                "/_cluster/health/logs-*",
                &["logs-*"],
            ),
            (
                "GET",
                "/_cluster/health/logs-a",
                None,
                "cluster_health",
                "/_cluster/health/logs-a",
                &["logs-a"],
            ),
            ("HEAD", "/", None, "root", "/", &[]),
            ("GET", "/", None, "root", "/", &[]),
        ];
        let s = scope();
        for (m, p, q, action, path, resolve) in cases {
            let h = head(m, p, *q);
            let plan = es::plan(&h, &s).unwrap_or_else(|e| panic!("{m} {p}: {e}"));
            assert_eq!(plan.action, *action);
            let body: Option<&[u8]> = if plan.needs_body() { Some(b"{}") } else { None };
            let prepared = es::prepare(plan, body, &h, &s).unwrap();
            assert_eq!(prepared.to_resolve(), *resolve, "{m} {p}");
            let permit = run(&h, body, logs).unwrap();
            // Wildcards are forwarded as the concrete indices resolution found allowed.
            assert_eq!(
                permit.path,
                path.replace("logs-*", "logs-a,logs-b"),
                "{m} {p}"
            );
            assert!(permit.body.is_none(), "{m} {p}");
        }
    }

    #[test]
    fn denied_routes_say_which_action_family() {
        let err = es::plan(&head("POST", "/logs-a/_search/template", None), &scope()).unwrap_err();
        assert_eq!(
            err.reason,
            "action [templates and scripts] is not allowed for this token"
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// Every retrieval entry point of a forwarded search/count body carries the token
        /// clauses: the outer query wrapper and each top-level kNN element; and at least one
        /// entry point exists.
        fn filtered_everywhere(body: &Value, clauses: &[Value]) -> bool {
            let query_ok = match body.get("query") {
                None => true,
                Some(q) => q["bool"]["filter"]
                    .as_array()
                    .is_some_and(|f| f.as_slice() == clauses),
            };
            let knn_items: Vec<&Value> = match body.get("knn") {
                None => Vec::new(),
                Some(Value::Array(items)) => items.iter().collect(),
                Some(one) => vec![one],
            };
            let knn_ok = knn_items.iter().all(|k| {
                k["filter"]
                    .as_array()
                    .is_some_and(|f| f.len() >= clauses.len() && f[..clauses.len()] == *clauses)
            });
            let has_entry = body.get("query").is_some() || !knn_items.is_empty();
            query_ok && knn_ok && has_entry
        }

        fn path() -> impl Strategy<Value = String> {
            let seg = prop::sample::select(vec![
                "logs-a",
                "logs-*",
                "secret",
                "_all",
                "*",
                "_search",
                "_count",
                "_msearch",
                "_mapping",
                "_field_caps",
                "_cluster",
                "health",
                "_resolve",
                "index",
                "%2C",
                "logs-a%2Csecret",
                "..",
                "",
                "_doc",
                "%5Fsearch",
                "-logs-b",
            ]);
            let random = prop::collection::vec(seg, 0..4).prop_map(|v| format!("/{}", v.join("/")));
            let index =
                prop::sample::select(vec!["", "/logs-a", "/logs-*", "/_all", "/logs-*,-logs-b"]);
            let api = prop::sample::select(vec!["_search", "_count", "_msearch", "_field_caps"]);
            let structured = (index, api).prop_map(|(i, a)| format!("{i}/{a}"));
            prop_oneof![3 => structured, 1 => random]
        }

        fn query() -> impl Strategy<Value = Option<String>> {
            let p = prop::sample::select(vec![
                "size=1",
                "q=x",
                "from=2",
                ";",
                "&",
                "expand_wildcards=open",
                "pretty",
                "%zz",
                "+",
                "search_type=query_then_fetch",
                "level=cluster",
            ]);
            prop_oneof![
                2 => Just(None),
                1 => prop::collection::vec(p, 0..4).prop_map(|v| Some(v.concat())),
            ]
        }

        fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
            let whole = prop::sample::select(vec![
                "",
                "{}",
                "{\"query\":{\"term\":{\"tenant\":\"b\"}}}",
                "{\"size\":0,\"aggs\":{\"x\":{\"terms\":{\"field\":\"f\"}}}}",
                "{\"knn\":{\"field\":\"v\",\"query_vector\":[1],\"k\":1,\"num_candidates\":1}}",
                "{}\n{}\n",
                "{\"index\":\"logs-a\"}\n{\"query\":{\"match_all\":{}}}\n{}\n{\"size\":1}\n",
            ]);
            let frag = prop::sample::select(vec![
                "{}",
                "{\"query\":{\"match_all\":{}}}",
                "\n",
                "{\"index\":\"logs-a\"}",
                "{\"size\":1}",
                "[",
                "}",
            ]);
            prop_oneof![
                1 => Just(None),
                3 => whole.prop_map(|s| Some(s.as_bytes().to_vec())),
                1 => prop::collection::vec(frag, 0..5).prop_map(|v| Some(v.concat().into_bytes())),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Whatever comes in, nothing panics, and every permitted search, count or msearch
            /// body carries exactly the token clauses in its outer filter.
            #[test]
            fn permits_always_carry_the_filter(
                method in prop::sample::select(vec!["GET", "POST", "POST", "HEAD", "PUT"]),
                ct in prop::sample::select(vec!["application/json", "application/x-ndjson"]),
                p in path(),
                q in query(),
                b in body(),
            ) {
                let mut h = head(method, &p, q.as_deref());
                h.content_type = Some(ct);
                let permit = run(&h, b.as_deref(), logs);
                let Ok(permit) = permit else { return Ok(()); };
                let clauses = scope().filters.clauses();
                match permit.action {
                    "search" | "count" => {
                        let v = body_json(&permit);
                        prop_assert!(filtered_everywhere(&v, &clauses), "{}", v);
                    }
                    "msearch" => {
                        let bytes = permit.body.as_ref().map(|b| b.bytes.clone()).unwrap_or_default();
                        let text = String::from_utf8(bytes).unwrap();
                        for (i, line) in text.lines().enumerate() {
                            let v: Value = serde_json::from_str(line).unwrap();
                            if i % 2 == 1 {
                                prop_assert!(filtered_everywhere(&v, &clauses), "{}", v);
                            } else {
                                prop_assert_eq!(&v["expand_wildcards"], &json!("open"));
                            }
                        }
                    }
                    _ => prop_assert!(permit.body.is_none()),
                }
            }
        }
    }
}

#[cfg(test)]
mod dialect_and_shaping_tests {
    use serde_json::json;

    use crate::ids::continuation::{self, IdKind};
    use crate::request::dialect::Dialect;
    use crate::testing::{head, scope};
    use crate::{self as es, Permit, RejectKind, Rejection, Resolution};

    fn run(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&[u8]>,
        dialect: Option<Dialect>,
    ) -> Result<Permit, Rejection> {
        let s = scope();
        let h = head(method, path, query);
        let plan = es::plan(&h, &s)?;
        let prepared = es::prepare(plan, body, &h, &s)?;
        let mut r = Resolution {
            dialect: if prepared.needs_dialect() {
                dialect
            } else {
                None
            },
            ..Resolution::default()
        };
        for e in prepared.to_resolve() {
            r.names.insert(
                e.clone(),
                vec![es::indices::resolution::ResolvedName {
                    name: "logs-a".into(),
                    kind: es::indices::resolution::NameKind::Index,
                    indices: vec!["logs-a".into()],
                }],
            );
        }
        es::authorize(prepared, &r, &s)
    }

    /// Issue #8.6: each dialect's point-in-time form goes only to a backend of that dialect;
    /// the other form is answered like a route the backend does not have, an unknown dialect
    /// refuses both.
    #[test]
    fn point_in_time_forms_are_forwarded_only_to_their_dialect() {
        let sealed = continuation::seal(&scope().ids, IdKind::Pit, "backend-pit");
        let es_close = serde_json::to_vec(&json!({ "id": sealed })).unwrap();
        let os_close = serde_json::to_vec(&json!({ "pit_id": [sealed] })).unwrap();
        let cases: [(&str, &str, Option<&[u8]>, Dialect); 4] = [
            ("POST", "/logs-a/_pit", None, Dialect::Elasticsearch),
            ("DELETE", "/_pit", Some(&es_close), Dialect::Elasticsearch),
            (
                "POST",
                "/logs-a/_search/point_in_time",
                None,
                Dialect::OpenSearch,
            ),
            (
                "DELETE",
                "/_search/point_in_time",
                Some(&os_close),
                Dialect::OpenSearch,
            ),
        ];
        for (method, path, body, own) in cases {
            let q = (method == "POST").then_some("keep_alive=1m");
            let other = match own {
                Dialect::Elasticsearch => Dialect::OpenSearch,
                Dialect::OpenSearch => Dialect::Elasticsearch,
            };
            let permit = run(method, path, q, body, Some(own))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert!(permit.action.contains("pit"), "{method} {path}");
            let refused = run(method, path, q, body, Some(other)).unwrap_err();
            assert_eq!(refused.kind, RejectKind::BadRequest, "{method} {path}");
            assert!(
                refused.reason.starts_with("no handler found for uri"),
                "{}",
                refused.reason
            );
            let unknown = run(method, path, q, body, None).unwrap_err();
            assert_eq!(unknown.kind, RejectKind::Forbidden, "{method} {path}");
        }
        // A search with a point in time has one form in both dialects: no dialect needed.
        let search = serde_json::to_vec(&json!({"pit": {"id": sealed}})).unwrap();
        let h = head("POST", "/_search", None);
        let plan = es::plan(&h, &scope()).unwrap();
        let prepared = es::prepare(plan, Some(&search), &h, &scope()).unwrap();
        assert!(!prepared.needs_dialect());
    }

    /// Issue #8.8: shaping is forwarded on answers streamed untouched, and kept for esgate's
    /// final answer (never forwarded) on answers esgate reads whole.
    #[test]
    fn response_shaping_is_forwarded_or_applied_by_esgate_never_both() {
        let shaping = "filter_path=hits.hits._source&pretty=true&human=true&error_trace=false";
        let streamed = run("GET", "/logs-a/_search", Some(shaping), None, None).unwrap();
        assert!(!streamed.answer.reads_whole());
        assert!(streamed.answer.shaping().is_none());
        let names: Vec<&str> = streamed.query.iter().map(|(k, _)| k.as_str()).collect();
        for k in ["filter_path", "pretty", "human"] {
            assert!(names.contains(&k), "{k} forwarded: {names:?}");
        }
        assert!(!names.contains(&"error_trace"), "{names:?}");

        let read_whole = [
            ("GET", "/logs-a/_search", "scroll=1m&"),
            ("POST", "/logs-a/_pit", "keep_alive=1m&"),
            ("GET", "/_cluster/health", ""),
            ("POST", "/logs-a/_terms_enum", ""),
            ("GET", "/_cat/indices", "format=json&"),
        ];
        for (method, path, extra) in read_whole {
            let q = format!("{extra}{shaping}");
            let body: Option<&[u8]> = (method == "POST" && path.ends_with("_terms_enum"))
                .then_some(br#"{"field":"user"}"#.as_slice());
            let permit = run(method, path, Some(&q), body, Some(Dialect::Elasticsearch))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert!(permit.answer.reads_whole(), "{method} {path}");
            assert!(permit.answer.shaping().is_some(), "{method} {path}");
            for (k, _) in &permit.query {
                assert!(
                    !["filter_path", "pretty", "human", "error_trace"].contains(&k.as_str()),
                    "{method} {path}: {k} forwarded on an answer esgate reads whole"
                );
            }
        }
    }
}

#[cfg(test)]
mod field_caps_tests {
    use serde_json::{json, Value};

    use super::field_caps_body;
    use crate::RejectKind;

    #[test]
    fn fields_pass_and_index_filter_is_refused_in_every_form() {
        let out = field_caps_body(Some(json!({"fields": "*", "runtime_mappings": {}})))
            .unwrap()
            .unwrap();
        assert_eq!(out, json!({"fields": "*"}));
        assert_eq!(field_caps_body(Some(json!({}))).unwrap(), None::<Value>);
        assert!(field_caps_body(Some(json!({"fields": 1}))).is_err());
        // Issue #8.4: decided from index-wide min/max values, whatever the query.
        for filter in [
            json!({"range": {"n": {"gte": 5}}}),
            json!({"match_all": {}}),
            json!({"term": {"tenant": "a"}}),
            json!(null),
        ] {
            let err =
                field_caps_body(Some(json!({"fields": "*", "index_filter": filter}))).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{filter}");
            assert!(err.reason.contains("[index_filter]"), "{}", err.reason);
        }
    }
}

#[cfg(test)]
mod narrowing_tests {
    use serde_json::Value;

    use crate::{self as es, RejectKind, RequestHead, Resolution};

    use crate::testing::scope;

    use crate::testing::cluster as fixture;

    fn run(
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&[u8]>,
    ) -> Result<es::Permit, es::Rejection> {
        let s = scope();
        let h = RequestHead {
            method,
            path,
            query: None,
            content_type: Some(content_type),
            content_encoding: None,
        };
        let prepared = es::prepare(es::plan(&h, &s)?, body, &h, &s)?;
        let mut r = Resolution::default();
        for e in prepared.to_resolve() {
            r.names.insert(e.clone(), fixture(e));
        }
        es::authorize(prepared, &r, &s)
    }

    #[test]
    fn a_wildcard_that_matches_a_foreign_alias_is_narrowed_to_the_allowed_indices() {
        let p = run("GET", "/logs-*/_search", "application/json", None).unwrap();
        assert_eq!(p.path, "/logs-a,logs-b/_search");
        assert_eq!(p.indices, vec!["logs-a", "logs-b"]);
        let p = run("GET", "/_count", "application/json", None).unwrap();
        assert_eq!(p.path, "/logs-a,logs-b/_count");
    }

    #[test]
    fn msearch_headers_are_narrowed_too() {
        let body = b"{\"index\":\"logs-*\"}\n{}\n{\"index\":\"logs-a\"}\n{}\n";
        let p = run("POST", "/_msearch", "application/x-ndjson", Some(body)).unwrap();
        let text = String::from_utf8(p.body.unwrap().bytes).unwrap();
        let headers: Vec<Value> = text
            .lines()
            .step_by(2)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(headers[0]["index"], serde_json::json!(["logs-a", "logs-b"]));
        assert_eq!(headers[1]["index"], serde_json::json!(["logs-a"]));
    }

    #[test]
    fn naming_the_foreign_alias_is_refused() {
        let err = run("GET", "/logs-sa/_search", "application/json", None).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        assert!(!err.reason.contains("secret"));
    }
}

/// The cost guards (`cost`) in every form a search can take through `plan` → `prepare` →
/// `authorize` (issue 13).
#[cfg(test)]
mod cost_guards {
    use serde_json::{json, Value};

    use super::*;
    use crate as es;
    use crate::dsl::cost::CostGuard;
    use crate::testing::{head, scope};

    fn run(
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Result<Permit, Rejection> {
        let mut s = scope();
        s.guard = CostGuard {
            max_size: Some(100),
            max_buckets: Some(50),
            timeout_ms: Some(2_000),
        };
        let mut h = head(method, path, query);
        h.content_type = Some(content_type);
        let plan = es::plan(&h, &s)?;
        let body = (!body.is_empty()).then_some(body.as_bytes());
        let prepared = es::prepare(plan, body, &h, &s)?;
        let mut r = Resolution::default();
        for e in prepared.to_resolve() {
            r.names.insert(
                e.clone(),
                vec![es::indices::resolution::ResolvedName {
                    name: "logs-a".into(),
                    indices: vec!["logs-a".into()],
                    kind: es::indices::resolution::NameKind::Index,
                }],
            );
        }
        es::authorize(prepared, &r, &s)
    }

    const JSON: &str = "application/json";
    const ND: &str = "application/x-ndjson";

    #[test]
    fn every_search_form_is_guarded() {
        let over_size = r#"{"size": 101}"#;
        let over_buckets =
            r#"{"size": 0, "aggs": {"t": {"terms": {"field": "user", "size": 51}}}}"#;
        let msearch = |body: &str| format!("{{\"index\":\"logs-*\"}}\n{body}\n");
        let knn = |k: u32| {
            format!(
                r#"{{"knn": {{"field": "v", "query_vector": [1.0], "k": {k}, "num_candidates": {k}}}}}"#
            )
        };
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, String, &'a str);
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/logs-*/_search",
                Some("size=101"),
                JSON,
                String::new(),
                "size 101",
            ),
            (
                "GET",
                "/logs-*/_search",
                Some("from=95"),
                JSON,
                String::new(),
                "from + size 105",
            ),
            (
                "POST",
                "/logs-*/_search",
                None,
                JSON,
                over_size.into(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_search",
                Some("scroll=1m"),
                JSON,
                over_size.into(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_search",
                None,
                JSON,
                over_buckets.into(),
                "max_buckets 50",
            ),
            (
                "POST",
                "/logs-*/_async_search",
                None,
                JSON,
                over_size.into(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_async_search",
                Some("size=101"),
                JSON,
                String::new(),
                "size 101",
            ),
            (
                "POST",
                "/logs-*/_async_search",
                None,
                JSON,
                over_buckets.into(),
                "max_buckets 50",
            ),
            (
                "POST",
                "/_msearch",
                None,
                ND,
                msearch(over_size),
                "size 101",
            ),
            (
                "POST",
                "/_msearch",
                None,
                ND,
                msearch(over_buckets),
                "max_buckets 50",
            ),
            (
                "POST",
                "/logs-*/_knn_search",
                None,
                JSON,
                knn(101),
                "101 exceeds this token's max_size 100",
            ),
            (
                "POST",
                "/logs-a/_terms_enum",
                None,
                JSON,
                r#"{"field": "user", "size": 51}"#.into(),
                "max_buckets 50",
            ),
            (
                "POST",
                "/logs-*/_eql/search",
                None,
                JSON,
                r#"{"query": "any where true", "size": 101}"#.into(),
                "size 101",
            ),
        ];
        for (method, path, query, ct, body, reason) in cases {
            let e = run(method, path, query, ct, &body)
                .expect_err(&format!("{method} {path} {query:?} {body} passed"));
            assert_eq!(e.kind, RejectKind::OverLimit, "{path}: {e:?}");
            assert!(e.reason.contains(reason), "{path} {body}: {}", e.reason);
        }
        // Within the limits every form passes.
        for (method, path, query, ct, body) in [
            (
                "GET",
                "/logs-*/_search",
                Some("size=100"),
                JSON,
                String::new(),
            ),
            (
                "POST",
                "/logs-*/_search",
                Some("scroll=1m"),
                JSON,
                r#"{"size": 100}"#.to_owned(),
            ),
            (
                "POST",
                "/logs-*/_async_search",
                None,
                JSON,
                r#"{"size": 100}"#.to_owned(),
            ),
            ("POST", "/_msearch", None, ND, msearch(r#"{"size": 100}"#)),
            ("POST", "/logs-*/_knn_search", None, JSON, knn(100)),
            (
                "POST",
                "/logs-a/_terms_enum",
                None,
                JSON,
                r#"{"field": "user", "size": 50}"#.to_owned(),
            ),
            (
                "POST",
                "/logs-*/_eql/search",
                None,
                JSON,
                r#"{"query": "any where true"}"#.to_owned(),
            ),
        ] {
            let p = run(method, path, query, ct, &body);
            assert!(p.is_ok(), "{method} {path} {body}: {p:?}");
        }
    }

    fn body_of(p: &Permit) -> Vec<Value> {
        let b = p.body.as_ref().expect("a body");
        b.bytes
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect()
    }

    #[test]
    fn search_timeout_reaches_every_search_form_once() {
        let p = run("GET", "/logs-*/_search", Some("timeout=1h"), JSON, "").unwrap();
        assert!(p.query.iter().all(|(k, _)| k != "timeout"), "{:?}", p.query);
        assert_eq!(body_of(&p)[0]["timeout"], json!("2000ms"));
        let p = run(
            "POST",
            "/logs-*/_search",
            None,
            JSON,
            r#"{"timeout": "500ms"}"#,
        )
        .unwrap();
        assert_eq!(body_of(&p)[0]["timeout"], json!("500ms"));
        let p = run("POST", "/logs-*/_async_search", None, JSON, "{}").unwrap();
        assert_eq!(body_of(&p)[0]["timeout"], json!("2000ms"));
        let nd = "{\"index\":\"logs-*\"}\n{\"timeout\":\"1m\"}\n{}\n{}\n";
        let p = run("POST", "/_msearch", None, ND, nd).unwrap();
        let lines = body_of(&p);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1]["timeout"], json!("2000ms"));
        assert_eq!(lines[3]["timeout"], json!("2000ms"));
        let p = run(
            "POST",
            "/logs-a/_terms_enum",
            None,
            JSON,
            r#"{"field": "user", "timeout": "10s"}"#,
        )
        .unwrap();
        assert_eq!(body_of(&p)[0]["timeout"], json!("2000ms"));
    }
}
