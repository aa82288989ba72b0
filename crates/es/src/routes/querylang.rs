//! The query-language routes: ES|QL `POST /_query`, SQL `POST /_sql` (a query or a sealed
//! cursor) and `POST /_sql/close`, EQL `GET|POST /{index}/_eql/search`. The bodies are checked
//! and rewritten by `querylang`; this module says where they go and how their answers are
//! handled.
//!
//! Invariant: ES|QL and SQL name their indices in the query text, resolved and narrowed in
//! that text (`Shape::QueryText`); EQL names them in the path. A SQL answer's cursor is sealed
//! for the token; a query's answer esgate refuses has its cursor closed (`Seal::release`).
//!
//! A SQL cursor holds a point in time on the backend (Elasticsearch 8; a scroll on 7.x) for
//! its `page_timeout`, so every SQL request says what it does to the token's open cursors
//! (`Upstream::sql_cursor`, counted by the proxy with its points in time, sql26): a query
//! opens one when its answer carries a cursor, a next page names the cursor it continues, a
//! close ends it.

use serde_json::Value;

use super::scroll_pit::keep_alive_ms;
use super::{Request, Shape, Spec, Upstream};
use crate::ids::continuation::{Release, Seal};
use crate::querylang::{self as ql, SqlRequest, SQL_CURSOR_SEAL};
use crate::request::params::{Kind, ParamSet};
use crate::{Holding, Method, Rejection};

/// Elasticsearch SQL's `page_timeout` when a request sets none (`CoreProtocol.PAGE_TIMEOUT`):
/// how long the point in time (7.x: scroll) a query's cursor pages through is kept alive, by
/// the query and by each next page.
pub(crate) const DEFAULT_PAGE_TIMEOUT_MS: u64 = 45_000;

const ESQL_PARAMS: &[(&str, Kind)] = &[
    ("format", Kind::OneOf(&["json", "csv", "tsv", "txt"])),
    ("delimiter", Kind::Text),
    ("drop_null_columns", Kind::Bool),
    ("allow_partial_results", Kind::Bool),
];

/// `format=json` only (and forced), so a cursor always travels in the body.
const SQL_PARAMS: &[(&str, Kind)] = &[("format", Kind::OneOf(&["json"]))];

/// Synchronous EQL only.
const EQL_PARAMS: &[(&str, Kind)] = &[
    ("allow_partial_search_results", Kind::Bool),
    ("allow_partial_sequence_results", Kind::Bool),
];

pub(crate) const ESQL: Spec = Spec {
    action: "esql",
    params: ParamSet::own(ESQL_PARAMS),
    index: false,
    body: true,
    dialect: None,
    prepare: esql,
};

pub(crate) const SQL: Spec = Spec {
    action: "sql",
    params: ParamSet::own(SQL_PARAMS).default("format", "json"),
    index: false,
    body: true,
    dialect: None,
    prepare: sql,
};

pub(crate) const SQL_CLOSE: Spec = Spec {
    action: "sql_close",
    params: ParamSet::NONE,
    index: false,
    body: true,
    dialect: None,
    prepare: sql_close,
};

pub(crate) const EQL: Spec = Spec {
    action: "eql",
    params: ParamSet::own(EQL_PARAMS).indices_options(),
    index: true,
    body: true,
    dialect: None,
    prepare: eql,
};

/// An ES|QL query, its `FROM` the expression to resolve.
fn esql(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let body = req.json_body()?;
    claim_query_copies(req, body.as_ref())?;
    let checked = ql::esql(body, req.scope)?;
    let mut up = Upstream::fixed(Method::Post, "/_query").body(checked.body()?);
    up.to_resolve = vec![checked.expression.joined()];
    up.shape = Shape::QueryText(checked.text);
    Ok(up)
}

/// A SQL query (its table the expression to resolve) or the next page of a sealed cursor.
fn sql(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let body = req.json_body()?;
    claim_query_copies(req, body.as_ref())?;
    let page_timeout_ms = page_timeout_ms(body.as_ref());
    let up = match ql::sql(body, req.scope)? {
        SqlRequest::Query(checked) => {
            let mut up = Upstream::fixed(Method::Post, "/_sql").body(checked.body()?);
            up.to_resolve = vec![checked.expression.joined()];
            up.shape = Shape::QueryText(checked.text);
            // The query opens the cursor: an answer esgate refuses closes it (its client never
            // got it). A next page's answer does not: its client still holds the cursor it sent.
            up.seal = Some(Seal {
                release: Some(Release::SqlCursor),
                ..SQL_CURSOR_SEAL
            });
            // It opens a cursor for its `page_timeout` when its answer carries one.
            up.sql_cursor = Some(Holding::Open {
                keep_alive_ms: page_timeout_ms,
            });
            up
        }
        SqlRequest::Next(body, page, cursor) => {
            let mut up = Upstream::fixed(Method::Post, "/_sql").body(body);
            up.seal = Some(SQL_CURSOR_SEAL);
            // The next page is about as large as the one the cursor came with.
            up.expected = page.unwrap_or(0);
            // It keeps the cursor alive for its own `page_timeout` (the default when unset),
            // and its answer names the next cursor, or none on the last page.
            up.sql_cursor = Some(Holding::Next {
                backend_id: cursor,
                keep_alive_ms: Some(page_timeout_ms),
            });
            up
        }
    };
    Ok(up)
}

/// A SQL request's `page_timeout` in milliseconds (checked as a time value by `ql::sql`), or
/// Elasticsearch's default.
fn page_timeout_ms(body: Option<&Value>) -> u64 {
    body.and_then(|b| b.get("page_timeout"))
        .and_then(Value::as_str)
        .map_or(DEFAULT_PAGE_TIMEOUT_MS, keep_alive_ms)
}

/// Claims what checking a query's text builds beside the body's value: the checked text and
/// the forwarded body holding it (session 11 review: three times the body at the peak, the
/// body's value alone claimed).
fn claim_query_copies(req: &Request<'_>, body: Option<&Value>) -> Result<(), Rejection> {
    let len = body
        .and_then(|b| b.get("query"))
        .and_then(Value::as_str)
        .map_or(0, str::len);
    req.meter.take(len.saturating_mul(2))
}

fn sql_close(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let (body, cursor) = ql::sql_close(req.json_body()?, req.scope)?;
    let mut up = Upstream::fixed(Method::Post, "/_sql/close").body(body);
    up.sql_cursor = Some(Holding::Clear {
        backend_ids: vec![cursor],
    });
    Ok(up)
}

/// An EQL search on the path's expression, within the token's cost limits.
fn eql(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let up = Upstream::at_path(Method::Post, req.index()?, "/", "/_eql/search");
    let body = req.json_body()?;
    req.scope.guard.eql(body.as_ref())?;
    Ok(up.body(ql::eql(body, &req.scope.filters)?))
}
