//! Continuations: the next page of a scroll (`_search/scroll`), clearing scrolls, and opening
//! and closing a point in time in both dialects (Elasticsearch `/{index}/_pit` and `DELETE
//! /_pit`, OpenSearch `/{index}/_search/point_in_time` and `DELETE /_search/point_in_time`;
//! each forwarded only to a backend of its dialect, see `dialect`).
//!
//! Invariant: a scroll or point-in-time id reaches the backend only when it was sealed for the
//! presenting token (`continuation::open`), and every id an answer carries is sealed before
//! the client sees it (the `Seal` of the route's `Upstream`). The forwarded bodies are built
//! here from the opened ids and allow-listed time values.

use serde_json::{json, Map, Value};

use super::{Request, Spec, Upstream};
use crate::ids::continuation::{self, IdKind, Release, Seal};
use crate::request::dialect::{Dialect, DialectRoute};
use crate::request::params::{self, Kind, Param, ParamSet};
use crate::{error, Holding, Method, Rejection, Scope};

const SCROLL_PARAMS: &[(&str, Kind)] = &[
    ("scroll", Kind::Time),
    ("rest_total_hits_as_int", Kind::Bool),
    ("typed_keys", Kind::Bool),
];

const OPEN_PIT_PARAMS: &[(&str, Kind)] = &[
    ("keep_alive", Kind::Time),
    ("preference", Kind::Preference),
    ("routing", Kind::Text),
    ("allow_partial_search_results", Kind::Bool),
    ("allow_partial_pit_creation", Kind::Bool),
];

pub(crate) const SCROLL: Spec = Spec {
    action: "scroll",
    params: ParamSet::own(SCROLL_PARAMS),
    index: false,
    body: true,
    dialect: None,
    prepare: scroll_next,
};

pub(crate) const CLEAR_SCROLL: Spec = Spec {
    action: "clear_scroll",
    params: ParamSet::NONE,
    index: false,
    body: true,
    dialect: None,
    prepare: clear_scroll,
};

pub(crate) const OPEN_PIT: Spec = Spec {
    action: "open_pit",
    params: ParamSet::own(OPEN_PIT_PARAMS).indices_options(),
    index: true,
    body: true,
    dialect: Some(DialectRoute {
        dialect: Dialect::Elasticsearch,
        method: "POST",
        template: "/{index}/_pit",
    }),
    prepare: |req| open_pit(req, "/_pit", "id", Release::Pit),
};

pub(crate) const CLOSE_PIT: Spec = Spec {
    action: "close_pit",
    params: ParamSet::NONE,
    index: false,
    body: true,
    dialect: Some(DialectRoute {
        dialect: Dialect::Elasticsearch,
        method: "DELETE",
        template: "/_pit",
    }),
    prepare: close_pit,
};

pub(crate) const OS_OPEN_PIT: Spec = Spec {
    action: "open_pit",
    params: ParamSet::own(OPEN_PIT_PARAMS).indices_options(),
    index: true,
    body: true,
    dialect: Some(DialectRoute {
        dialect: Dialect::OpenSearch,
        method: "POST",
        template: "/{index}/_search/point_in_time",
    }),
    prepare: |req| {
        open_pit(
            req,
            "/_search/point_in_time",
            "pit_id",
            Release::OpenSearchPit,
        )
    },
};

pub(crate) const OS_CLOSE_PIT: Spec = Spec {
    action: "close_pit",
    params: ParamSet::NONE,
    index: false,
    body: true,
    dialect: Some(DialectRoute {
        dialect: Dialect::OpenSearch,
        method: "DELETE",
        template: "/_search/point_in_time",
    }),
    prepare: os_close_pit,
};

/// The scroll id in the answer of a scroll's next page.
pub(crate) const SCROLL_SEAL: Seal = Seal {
    field: "_scroll_id",
    kind: IdKind::Scroll,
    required: false,
    release: None,
};

/// The scroll id in the answer of the search that starts the scroll: freed when the answer is
/// refused (the client never got it).
pub(crate) const SCROLL_OPEN_SEAL: Seal = Seal {
    release: Some(Release::Scroll),
    ..SCROLL_SEAL
};

/// `GET|POST /_search/scroll` with `{"scroll_id": <sealed>, "scroll": <time>}`.
fn scroll_next(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let body = req.json_body()?.unwrap_or(Value::Null);
    let c = continuation_object(&body, "body", "scroll_id", &["scroll"])?;
    let (backend_id, page) = continuation::open_paged(&req.scope.ids, IdKind::Scroll, &c.id)?;
    // Elasticsearch reads the body after the parameters: the body's `scroll` wins.
    let keep_alive_ms = c
        .rest
        .get("scroll")
        .and_then(Value::as_str)
        .or_else(|| param(&req.params, "scroll"))
        .map(keep_alive_ms);
    let scrolling = Holding::Next {
        backend_id: backend_id.clone(),
        keep_alive_ms,
    };
    let mut out = Map::new();
    out.insert("scroll_id".into(), Value::String(backend_id));
    out.extend(c.rest);
    let mut up = Upstream::fixed(Method::Post, "/_search/scroll").json(&Value::Object(out))?;
    up.seal = Some(SCROLL_SEAL);
    up.scrolling = Some(scrolling);
    // The next page is about as large as the one the id came with.
    up.expected = page.unwrap_or(0);
    Ok(up)
}

/// `DELETE /_search/scroll` with `{"scroll_id": <sealed> | [<sealed>, ...]}`.
fn clear_scroll(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let body = req.json_body()?.unwrap_or(Value::Null);
    let ids = continuation_ids(&body, "scroll_id", IdKind::Scroll, req.scope)?;
    let mut up =
        Upstream::fixed(Method::Delete, "/_search/scroll").json(&json!({ "scroll_id": ids }))?;
    up.scrolling = Some(Holding::Clear { backend_ids: ids });
    Ok(up)
}

/// The longest keep-alive counted for a time value that does not read as one (never: the
/// parameters and body values are checked as time values first): Elasticsearch's default
/// `search.max_keep_alive`.
const UNREAD_KEEP_ALIVE_MS: u64 = 24 * 60 * 60 * 1000;

/// A checked time value in milliseconds (rounded up), for the proxy's count of open scrolls
/// and points in time.
pub(crate) fn keep_alive_ms(value: &str) -> u64 {
    params::time_millis(value)
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or(UNREAD_KEEP_ALIVE_MS)
}

/// The value of the query parameter `key`, if given.
fn param<'p>(params: &'p [Param], key: &str) -> Option<&'p str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
}

/// What a search that scrolls does to the token's open scrolls: opens one for its `scroll`.
pub(crate) fn opening(params: &[Param]) -> Holding {
    opening_for(params, "scroll")
}

/// A request opening a context kept alive for the time value of its parameter `key`.
fn opening_for(params: &[Param], key: &str) -> Holding {
    Holding::Open {
        keep_alive_ms: param(params, key).map_or(UNREAD_KEEP_ALIVE_MS, keep_alive_ms),
    }
}

/// Opening a point in time on the path's expression (at `after`, in the dialect's form): no
/// body, a `keep_alive`, and an answer that must carry its id in `field` (sealed).
fn open_pit(
    req: &mut Request<'_>,
    after: &'static str,
    field: &'static str,
    release: Release,
) -> Result<Upstream, Rejection> {
    let e = req.index()?;
    match req.json_body()? {
        None => {}
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(_) => {
            return Err(Rejection::forbidden(
                "a body is not allowed when opening a point in time",
            ))
        }
    }
    if !req.params.iter().any(|(k, _)| k == "keep_alive") {
        return Err(Rejection::bad_request(
            "opening a point in time needs a keep_alive parameter",
        ));
    }
    let mut up = Upstream::at_path(Method::Post, e, "/", after);
    up.seal = Some(Seal {
        field,
        kind: IdKind::Pit,
        required: true,
        release: Some(release),
    });
    up.pit = Some(opening_for(&req.params, "keep_alive"));
    Ok(up)
}

/// `DELETE /_pit` with `{"id": <sealed>}`.
fn close_pit(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let body = req.json_body()?.unwrap_or(Value::Null);
    let c = continuation_object(&body, "body", "id", &[])?;
    let backend_id = continuation::open(&req.scope.ids, IdKind::Pit, &c.id)?;
    let mut up = Upstream::fixed(Method::Delete, "/_pit").json(&json!({ "id": backend_id }))?;
    up.pit = Some(Holding::Clear {
        backend_ids: vec![backend_id],
    });
    Ok(up)
}

/// `DELETE /_search/point_in_time` with `{"pit_id": <sealed> | [<sealed>, ...]}`.
fn os_close_pit(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let body = req.json_body()?.unwrap_or(Value::Null);
    let ids = continuation_ids(&body, "pit_id", IdKind::Pit, req.scope)?;
    let mut up = Upstream::fixed(Method::Delete, "/_search/point_in_time")
        .json(&json!({ "pit_id": ids }))?;
    up.pit = Some(Holding::Clear { backend_ids: ids });
    Ok(up)
}

/// A continuation object such as `{"scroll_id": "...", "scroll": "1m"}` or a search's
/// `pit: {"id": "...", "keep_alive": "1m"}`: the id, and the other allowed keys (time values).
pub(crate) struct ContinuationObject {
    pub id: String,
    pub rest: Map<String, Value>,
}

pub(crate) fn continuation_object(
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
    let mut rest = Map::new();
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
