//! The HTTP side of the security APIs esgate answers itself for `read` tokens
//! (`es::identity`: `_security/_authenticate` and `_security/user/_has_privileges`): checks the
//! query string, reads and decodes the body (capped, strict JSON) when the route takes one, and
//! writes the JSON answer with `X-Elastic-Product: Elasticsearch`.
//!
//! Invariant: no backend request is made; the answer is built from the presenting token only.

use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::body::Body;
use crate::error::ProxyError;
use crate::es::{self, identity::SelfRoute};
use crate::store::model::Token;

use super::{header_str, read_body};

/// Answers `route` for `token`.
pub(super) async fn respond(
    app: &App,
    token: &Token,
    route: SelfRoute,
    parts: &Parts,
    body: Incoming,
) -> Result<Response<Body>, ProxyError> {
    es::identity::check_query(parts.uri.query())?;
    let who = es::identity::Identity {
        id: &token.id,
        name: &token.name,
        indices: &token.indices,
    };
    let answer = match route {
        SelfRoute::Authenticate => es::identity::authenticate(who),
        SelfRoute::HasPrivileges => {
            let (bytes, _hold) = read_body(app, &parts.headers, body).await?;
            let decoded = es::body::decode_json(
                Some(&bytes),
                header_str(&parts.headers, header::CONTENT_TYPE)?,
                header_str(&parts.headers, header::CONTENT_ENCODING)?,
                app.config.limits.max_body_bytes,
            )?;
            es::identity::has_privileges(who, decoded.as_ref())?
        }
    };
    let mut response = Response::new(crate::body::full(answer.to_string()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    headers.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    Ok(response)
}
