//! The three steps behind [`super::plan`], [`super::prepare`] and [`super::authorize`],
//! driving the route table (`routes`): classification, body rewrite, and the concrete-index
//! check that issues the `Permit`. No route is named here: what a route takes and how it is
//! rewritten is its `routes::Spec`.
//!
//! Invariant: every allowed route has a row in `routes::spec` (no wildcard), the forwarded path
//! is rebuilt from checked values only, the forwarded body is always built by esgate (the
//! client's bytes only as spans of texts the writer would copy whole, validated by the same
//! strict parse: `ForwardBody::spans`), and a `Permit` is issued only when every expression in
//! `to_resolve` is present in the resolution, every concrete index behind it is allowed, and
//! every histogram field its searches need typed has, in each allowed one, a type that never
//! steps through a range (`dsl::histogram_fields`).

use crate::answers::shaping::Shaping;
use crate::dsl::fields;
use crate::dsl::histogram_fields::{self, HistogramFields};
use crate::indices::index;
use crate::indices::resolution::{self, Narrowed, ResolvedName};
use crate::querylang::uri_search;
use crate::request::endpoint::{self, Endpoint};
use crate::request::params;
use crate::routes::{self, msearch, Request, Shape, MAX_FORWARDED_PATH};
use crate::{
    error, Answer, ForwardBody, Permit, Plan, Prepared, RejectKind, Rejection, RequestHead,
    Resolution, Scope,
};

/// An expression that matches no index on any cluster (`*` minus `*`), forwarded where a
/// wildcard reaches nothing the token may read.
const NO_INDEX: [&str; 2] = ["*", "-*"];

/// Step 1: the route and its row in the table, its parameters checked against the route's
/// list, its index expression (the path's, or the token's patterns) checked.
pub(crate) fn plan(head: &RequestHead<'_>, scope: &Scope) -> Result<Plan, Rejection> {
    let method = endpoint::parse_method(head.method)?;
    let route = match endpoint::classify(method, head.path)? {
        Endpoint::Allowed(route) => route,
        Endpoint::Denied(denied) => return Err(denied.rejection()),
    };
    let spec = routes::spec(&route);
    let params = params::check(head.query, spec.params)?;
    // The path's decoded values are kept, not copied (issue 10).
    let (path_index, path_id) = route.into_values();
    let named_index = path_index.is_some();
    let index = if spec.index {
        Some(index::parse_owned(path_index, &scope.indices)?)
    } else {
        None
    };
    Ok(Plan {
        action: spec.action,
        spec,
        method,
        params,
        index,
        named_index,
        path_id,
        max_searches: None,
    })
}

/// Step 2: the parameters every route shares taken out (response shaping, URI search) and
/// checked (field parameters), then the route's own `prepare`.
pub(crate) fn prepare(
    plan: Plan,
    raw_body: Option<&[u8]>,
    head: &RequestHead<'_>,
    scope: &Scope,
    max: usize,
    meter: &crate::memory::Meter<'_>,
) -> Result<Prepared, Rejection> {
    let Plan {
        action,
        spec,
        method,
        mut params,
        index,
        named_index,
        path_id,
        max_searches,
    } = plan;
    // `q` and its companions leave the parameters and become the body query; the response
    // shaping ones are placed by `authorize` (forwarded or applied by esgate).
    let shaping = Shaping::take(&mut params)?;
    let uri_query = uri_search::take(&mut params)?;
    fields::check_params(&params)?;
    let mut request = Request {
        head: *head,
        method,
        scope,
        index,
        named_index,
        path_id,
        params,
        uri_query,
        raw_body,
        max_body: max,
        max_searches,
        meter,
    };
    let upstream = (spec.prepare)(&mut request)?;
    Ok(Prepared {
        action,
        upstream,
        query: request.params,
        shaping,
        dialect_route: spec.dialect,
    })
}

/// Step 3: every expression resolved, every concrete index behind it allowed (a wildcard
/// narrowed to the allowed names), the answer's handling decided, the `Permit` issued.
pub(crate) fn authorize(
    prepared: Prepared,
    resolution: &Resolution,
    scope: &Scope,
    meter: &crate::memory::Meter<'_>,
) -> Result<Permit, Rejection> {
    let Prepared {
        action,
        upstream,
        mut query,
        shaping,
        dialect_route,
    } = prepared;
    let routes::Upstream {
        method,
        mut path,
        mut body,
        to_resolve,
        shape,
        seal,
        sort_seal,
        transform,
        expected,
        scrolling,
        pit,
        async_search,
        sql_cursor,
        typed_fields,
    } = upstream;
    // Before anything else: the other dialect's form must never reach the backend.
    if let Some(route) = dialect_route {
        route.check(resolution.dialect)?;
    }
    let (indices, narrowed) = reach(&to_resolve, &typed_fields, &shape, resolution, scope)?;
    place(shape, &indices, &narrowed, &mut path, &mut body, meter)?;
    let answer = Answer::decide(seal, sort_seal, transform, shaping, expected, &mut query)?;
    let mut permit = Permit::new(action, method, path, query, body, indices, answer);
    permit.scrolling = scrolling;
    permit.pit = pit;
    permit.async_search = async_search;
    permit.sql_cursor = sql_cursor;
    Ok(permit)
}

/// Expression → the allowed names to forward in its place.
type Narrowings = Vec<(String, Vec<String>)>;

/// The concrete indices every expression reaches, all allowed for the token (sorted, each
/// once: a list, not a tree set, issue 10), and the expressions that must be narrowed to the
/// allowed names (a wildcard that also matches others, or nothing the token may read). The
/// histogram fields of an expression's searches (`typed`, by place in `to_resolve`) are decided
/// on the allowed concrete indices it reaches (`histogram_fields::decide`).
fn reach(
    to_resolve: &[String],
    typed: &[(usize, HistogramFields)],
    shape: &Shape,
    resolution: &Resolution,
    scope: &Scope,
) -> Result<(Vec<String>, Narrowings), Rejection> {
    if typed.iter().any(|(place, _)| *place >= to_resolve.len()) {
        return Err(Rejection::forbidden(
            "a histogram's field types cannot be looked up without an index expression",
        ));
    }
    let mut indices: Vec<String> = Vec::new();
    let mut narrowed: Narrowings = Vec::new();
    for (place, expr) in to_resolve.iter().enumerate() {
        let Some(names) = resolution.names.get(expr) else {
            return Err(Rejection::forbidden("index expression was not resolved"));
        };
        let decide = |found: &[String]| match typed.iter().find(|(p, _)| *p == place) {
            Some((_, fields)) => histogram_fields::decide(
                fields,
                found,
                resolution.field_types.get(expr).map(Vec::as_slice),
            ),
            None => Ok(()),
        };
        if matches!(shape, Shape::QueryText(_)) {
            unlisted_names_refused(expr, names)?;
        }
        match resolution::narrow(expr, names, &scope.indices).map_err(|_| Rejection {
            kind: RejectKind::Forbidden,
            reason: format!(
                "index expression [{}] reaches an index that is not allowed for this token",
                error::printable(expr)
            ),
        })? {
            Narrowed::AsIs { indices: found } => {
                decide(&found)?;
                take_or_extend(&mut indices, found)
            }
            Narrowed::Only {
                names,
                indices: found,
            } => {
                decide(&found)?;
                take_or_extend(&mut indices, found);
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
    indices.sort_unstable();
    indices.dedup();
    Ok((indices, narrowed))
}

/// A query text's explicit name that `_resolve/index` did not list: refused (404) rather than
/// forwarded for the backend to answer. An ES|QL view (Elasticsearch 9.4 on) is such a name:
/// an index abstraction `_resolve/index` never lists (`ResolveIndexAction` asserts
/// `resolveViews() == false`), which ES|QL's `FROM` expands into its stored query, whatever
/// that reads (other indices, `ENRICH`, `LOOKUP JOIN`: esql16). Wildcards never reach views
/// unless `wildcards_match_views` is set, and are always narrowed to listed names anyway.
fn unlisted_names_refused(expr: &str, names: &[ResolvedName]) -> Result<(), Rejection> {
    let unlisted = expr
        .split(',')
        .filter(|e| !e.contains('*') && !e.starts_with('-'))
        .find(|e| !names.iter().any(|n| n.name == *e));
    match unlisted {
        Some(e) => Err(Rejection {
            kind: RejectKind::NotFound,
            reason: format!(
                "no index, alias or data stream named [{}] (a query language reads only those; ES|QL views are not allowed)",
                error::printable(e)
            ),
        }),
        None => Ok(()),
    }
}

/// `found` added to `indices`: taken as it is when `indices` is empty (a request of one
/// expression: no second list and copy, issue 10).
fn take_or_extend(indices: &mut Vec<String>, found: Vec<String>) {
    if indices.is_empty() {
        *indices = found;
    } else {
        indices.extend(found);
    }
}

/// Bytes of an index name sent percent-encoded in a path: all but letters, digits, `-`, `_`,
/// `.` and `*` (the last two for `NO_INDEX`).
const NAME_IN_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*');

/// Names as one comma list for a path. Elasticsearch percent-decodes a path parameter before
/// it splits it at commas, and allows `%` in an index name: a resolved name such as
/// `logs-x%2Csecret` sent as it is would name `logs-x` and `secret`. Encoded, every name
/// decodes back to itself and nothing else.
fn names_in_path<S: AsRef<str>>(names: &[S]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.extend(percent_encoding::utf8_percent_encode(
            name.as_ref(),
            NAME_IN_PATH,
        ));
    }
    out
}

/// Puts the allowed names where the request's `shape` says its expressions are: the concrete
/// `indices` for a `ConcreteIndices` path, the `narrowed` names in a path, in msearch headers
/// or in a query text.
fn place(
    shape: Shape,
    indices: &[String],
    narrowed: &Narrowings,
    path: &mut String,
    body: &mut Option<ForwardBody>,
    meter: &crate::memory::Meter<'_>,
) -> Result<(), Rejection> {
    if let Shape::ConcreteIndices { before } = &shape {
        let names: Vec<&str> = if indices.is_empty() {
            NO_INDEX.to_vec()
        } else {
            indices.iter().map(String::as_str).collect()
        };
        *path = format!("{before}{}", names_in_path(&names));
        if path.len() > MAX_FORWARDED_PATH {
            return Err(Rejection::forbidden(
                "the token's indices are too many to forward; name fewer indices",
            ));
        }
    }
    // An msearch's NDJSON is written here, once, with each header's names (narrowed or its
    // own): `prepare` leaves it unwritten (issue 10: dashboards' wildcard headers are always
    // narrowed, so a body written there was always written again).
    if let Shape::Msearch(items, bodies) = &shape {
        *body = Some(msearch::forward_narrowed(items, bodies, narrowed, meter)?);
        return Ok(());
    }
    if narrowed.is_empty() {
        return Ok(());
    }
    match shape {
        Shape::Fixed | Shape::ConcreteIndices { .. } => {}
        Shape::Path { before, after } => {
            let names = &narrowed[0].1;
            *path = format!("{before}{}{after}", names_in_path(names));
            if path.len() > MAX_FORWARDED_PATH {
                return Err(Rejection::forbidden(
                    "the index expression matches too many indices to forward; name fewer indices or a narrower pattern",
                ));
            }
        }
        Shape::Msearch(..) => {}
        Shape::QueryText(text) => *body = Some(text.forward(&narrowed[0].1)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
