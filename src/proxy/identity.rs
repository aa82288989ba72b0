//! The HTTP side of the security APIs esgate answers itself for `read` tokens
//! (`es::routes::identity`: `_security/_authenticate` and `_security/user/_has_privileges`): checks the
//! query string, reads and decodes the body (capped, strict JSON) when the route takes one, and
//! writes the JSON answer with `X-Elastic-Product: Elasticsearch`.
//!
//! Invariant: the only backend requests are index resolutions (cached, as for searches) of the
//! names a `_has_privileges` body asks about, so that "read" is answered as esgate would
//! decide a search; when the backend cannot answer, those names are answered `false`.

use std::collections::BTreeSet;

use bytes::Bytes;
use http::request::Parts;
use http::{header, Response, StatusCode};

use crate::app::App;
use crate::body::{Body, BudgetHold};
use crate::error::ProxyError;
use crate::es::{self, routes::identity::SelfRoute};
use crate::store::model::Token;

use super::{header_str, read_body, resolve_one, RESOLVE_CONCURRENCY};

/// Index names checked through the backend per `_has_privileges` request; the rest are `false`.
const MAX_CHECKED_NAMES: usize = 32;

/// The names a `_has_privileges` body asks about that match the token's patterns by name but
/// reach something esgate would refuse or drop (an alias to a foreign index, a hidden index),
/// or that cannot be checked now.
async fn refused_names(
    app: &App,
    who: es::routes::identity::Identity<'_>,
    body: Option<&serde_json::Value>,
) -> BTreeSet<String> {
    let authorization = app.config.backend.authorization.as_ref().map(|a| &a.0);
    let mut refused = BTreeSet::new();
    let mut names = es::routes::identity::names_to_check(who, body, 10_000);
    if names.len() > MAX_CHECKED_NAMES {
        refused.extend(names.split_off(MAX_CHECKED_NAMES));
    }
    // A few at a time, as a search's expressions (attack17c: all 32 at once took 32 backend
    // connections, so eight such requests could hold a node's whole cap).
    for chunk in names.chunks(RESOLVE_CONCURRENCY) {
        let lookups = chunk.iter().map(|n| resolve_one(app, authorization, n));
        for (name, found) in chunk
            .iter()
            .zip(futures_util::future::join_all(lookups).await)
        {
            let allowed = found.is_ok_and(|(_, resolved)| {
                es::indices::resolution::every_name_allowed(&resolved, who.indices)
            });
            if !allowed {
                refused.insert(name.clone());
            }
        }
    }
    refused
}

/// Answers `route` for `token`, checked `again` (`super::recheck`) once its body is in, just
/// before anything is answered or asked of the backend (attack20d: the check came before the
/// body was read, so a token deleted while a `_has_privileges` body trickled was answered).
pub(super) async fn respond(
    app: &App,
    token: &Token,
    route: SelfRoute,
    parts: &Parts,
    body: super::ClientBody,
    again: super::Recheck<'_>,
) -> Result<Response<Body>, ProxyError> {
    let shaping = es::routes::identity::check_query(parts.uri.query())?;
    let who = es::routes::identity::Identity {
        id: &token.id,
        name: &token.name,
        indices: &token.indices,
        kibana_spaces: &token.kibana_spaces,
    };
    // The body budget held for `_has_privileges`: it covers the answer's tree, then its text
    // until it is written (session 12 review: it was returned once the text was made, and the
    // text, megabytes for a body of some hundred names and privileges, was held for as long
    // as its client took to read it, counted by nobody).
    let mut hold = BudgetHold::default();
    let answer = match route {
        SelfRoute::Authenticate => {
            super::recheck(app, &again)?;
            es::routes::identity::authenticate(who)
        }
        SelfRoute::HasPrivileges => {
            let (bytes, read) = read_body(app, &parts.headers, body).await?;
            super::recheck(app, &again)?;
            let content_type = header_str(&parts.headers, header::CONTENT_TYPE)?;
            let content_encoding = header_str(&parts.headers, header::CONTENT_ENCODING)?;
            let (decoded, read) = super::metered(app, bytes.len(), read, |meter| {
                es::request::body::decode_json(
                    Some(&bytes),
                    content_type,
                    content_encoding,
                    app.config.limits.max_body_bytes,
                    meter,
                )
            });
            let decoded = decoded?;
            let refused = refused_names(app, who, decoded.as_ref()).await;
            // The answer (an entry per name and privilege, its text included) is claimed on
            // top of the hold.
            let base = read.bytes();
            let (answer, built) = super::metered(app, base, read, |meter| {
                es::routes::identity::has_privileges_within(who, decoded.as_ref(), &refused, meter)
            });
            hold = built;
            answer?
        }
    };
    // esgate's own answer: the client's response shaping applies to it directly.
    let text = Bytes::from(answer.to_string());
    drop(answer);
    hold.keep(text.len());
    if shaping.is_identity() {
        return Ok(held_json(text, hold));
    }
    let (bytes, hold) = super::reshape(app, &shaping, text, hold).map_err(|_| ProxyError::Busy)?;
    Ok(held_json(bytes, hold))
}

/// esgate's JSON answer, whose share of the body budget `hold` keeps until it is written.
fn held_json(bytes: Bytes, hold: BudgetHold) -> Response<Body> {
    let mut response = crate::error::json_response(StatusCode::OK, Vec::new());
    *response.body_mut() = crate::body::held(bytes, hold);
    response
}
