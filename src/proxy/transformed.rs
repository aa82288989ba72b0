//! Answers built from the backend's response by an `es::routes::Transform`
//! (`_terms_enum`, `_cat/indices`, `_explain`): the upstream body is read whole (capped; esgate
//! asked for identity encoding), transformed, and sent with its own length and content type.
//!
//! Invariant: a transformed route's upstream body never reaches the client untransformed; an
//! encoded, oversized or unexpected answer is a 502.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::app::App;
use crate::body::BudgetHold;
use crate::error::ProxyError;
use crate::es::routes::{self as transform, Transform};
use crate::upstream::{AnswerBody, UpstreamError};

/// These answers are small (a page of terms, one row per index, one explanation).
const MAX_TRANSFORMED_RESPONSE: usize = 16 * 1024 * 1024;

/// The client's status, headers and body for the backend's `status`, `upstream` headers and
/// `body`; `headers` are the relayed response headers (the caller finishes the response, and
/// keeps the body's share of the body budget, the returned hold, until it is sent).
pub(super) async fn respond(
    app: &App,
    t: &Transform,
    status: StatusCode,
    upstream: &HeaderMap,
    mut headers: HeaderMap,
    mut body: AnswerBody,
) -> Result<(StatusCode, HeaderMap, Bytes, BudgetHold), ProxyError> {
    let (bytes, hold) = super::read_answer(
        app,
        upstream,
        &mut body,
        MAX_TRANSFORMED_RESPONSE,
        &mut crate::body::ReadStart::default(),
        BudgetHold::default(),
    )
    .await?;
    // The answer's tree is charged to the body budget beside its bytes while it is transformed:
    // 429 while others hold the budget, 502 (an oversized answer) when it could never fit.
    let (transformed, mut hold) = super::metered(app, bytes.len(), hold, |meter| {
        transform::apply(t, status.as_u16(), &bytes, meter)
    });
    let (out_status, out) = transformed
        .map_err(super::answer_refused)?
        .map_err(|_| ProxyError::Upstream(UpstreamError::Unexpected))?;
    let out_status = StatusCode::from_u16(out_status).map_err(|_| UpstreamError::Unexpected)?;
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    // A backend error passed unchanged keeps its own content type.
    if status.is_success() || out != bytes {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(transform::content_type(t, out_status.as_u16())),
        );
    }
    drop(bytes);
    hold.keep(out.len());
    Ok((out_status, headers, Bytes::from(out), hold))
}
