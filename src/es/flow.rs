//! The three steps behind [`super::plan`], [`super::prepare`] and [`super::authorize`]:
//! classification, body rewrite, and the concrete-index check that issues the `Permit`.
//!
//! Invariant: every allowed route is handled by an explicit `match` arm (no wildcard), the
//! forwarded path is rebuilt from checked values only, the forwarded body is always built by
//! esgate (never the client's bytes), and a `Permit` is issued only when every expression in
//! `to_resolve` is present in the resolution and every concrete index behind it is allowed.

use std::collections::BTreeSet;

use serde_json::Value;

use super::body::{self, Media};
use super::endpoint::{self, Endpoint, Route};
use super::index::{self, Expression};
use super::params::{self, ParamSet};
use super::{
    msearch, rewrite, ForwardBody, Method, Permit, Plan, Prepared, RejectKind, Rejection,
    RequestHead, Resolution, Scope,
};

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

pub(super) fn plan(head: &RequestHead<'_>, scope: &Scope) -> Result<Plan, Rejection> {
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
        Route::ClusterHealth => ParamSet::ClusterHealth,
        Route::ResolveIndex { .. } => ParamSet::ResolveIndex,
    };
    let params = params::check(head.query, set)?;
    let index = match &route {
        Route::Root | Route::ClusterHealth => None,
        Route::Search { index }
        | Route::Count { index }
        | Route::Msearch { index }
        | Route::Mapping { index }
        | Route::FieldCaps { index } => Some(index::parse(index.as_deref(), &scope.indices)?),
        Route::ResolveIndex { name } => Some(index::parse(Some(name), &scope.indices)?),
    };
    Ok(Plan {
        action: route.action(),
        route,
        method,
        params,
        index,
    })
}

pub(super) fn prepare(
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
    let (method, path, body, to_resolve) = match route {
        Route::Root => (method, "/".to_string(), None, Vec::new()),
        Route::ClusterHealth => (
            Method::Get,
            "/_cluster/health".to_string(),
            None,
            Vec::new(),
        ),
        Route::Mapping { .. } => {
            let e = expr()?;
            (
                Method::Get,
                format!("/{}/_mapping", e.joined()),
                None,
                vec![e.joined()],
            )
        }
        Route::ResolveIndex { .. } => {
            let e = expr()?;
            (
                Method::Get,
                format!("/_resolve/index/{}", e.joined()),
                None,
                vec![e.joined()],
            )
        }
        Route::FieldCaps { .. } => {
            let e = expr()?;
            match json_body()? {
                None => {}
                Some(Value::Object(m)) if m.is_empty() => {}
                Some(Value::Object(m)) => {
                    let key = m.keys().next().map(String::as_str).unwrap_or("");
                    return Err(Rejection::forbidden(format!(
                        "body key [{}] is not allowed for this token",
                        rewrite::printable(key)
                    )));
                }
                Some(_) => {
                    return Err(Rejection::bad_request("request body must be a JSON object"))
                }
            }
            (
                Method::Get,
                format!("/{}/_field_caps", e.joined()),
                None,
                vec![e.joined()],
            )
        }
        Route::Search { .. } => {
            let e = expr()?;
            let out = rewrite::search(json_body()?, &scope.filters)?;
            (
                Method::Post,
                format!("/{}/_search", e.joined()),
                Some(json_forward(&out)?),
                vec![e.joined()],
            )
        }
        Route::Count { .. } => {
            let e = expr()?;
            let out = rewrite::count(json_body()?, &scope.filters)?;
            (
                Method::Post,
                format!("/{}/_count", e.joined()),
                Some(json_forward(&out)?),
                vec![e.joined()],
            )
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
            let items =
                msearch::rewrite(&bytes, path_index.as_ref(), &scope.indices, &scope.filters)?;
            let mut to_resolve: Vec<String> = Vec::new();
            for item in &items {
                let joined = item.index.joined();
                if !to_resolve.contains(&joined) {
                    to_resolve.push(joined);
                }
            }
            let ndjson = msearch::to_ndjson(&items)?;
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
        query: params,
        body,
    })
}

pub(super) fn authorize(
    prepared: Prepared,
    resolution: &Resolution,
    scope: &Scope,
) -> Result<Permit, Rejection> {
    let mut indices: BTreeSet<String> = BTreeSet::new();
    for expr in &prepared.to_resolve {
        let Some(concrete) = resolution.concrete.get(expr) else {
            return Err(Rejection::forbidden("index expression was not resolved"));
        };
        for name in concrete {
            if !index::concrete_allowed(name, &scope.indices) {
                return Err(Rejection {
                    kind: RejectKind::Forbidden,
                    reason: format!(
                        "index expression [{expr}] reaches an index that is not allowed for this token"
                    ),
                });
            }
            indices.insert(name.clone());
        }
    }
    Ok(Permit::new(
        prepared.action,
        prepared.method,
        prepared.path,
        prepared.query,
        prepared.body,
        indices.into_iter().collect(),
    ))
}

fn json_forward(v: &Value) -> Result<ForwardBody, Rejection> {
    let bytes = serde_json::to_vec(v)
        .map_err(|_| Rejection::bad_request("body could not be serialised"))?;
    Ok(ForwardBody {
        bytes,
        content_type: JSON,
    })
}
