//! The backend's REST dialect (`es::request::dialect`), learned from its `GET /` answer the first time a
//! request needs it, and kept for the life of the process once known (every node of one
//! cluster speaks the same dialect).
//!
//! Invariant: only a recognised answer is cached; an unrecognised one is reported as unknown
//! (the caller fails closed) and asked again next time, a failed request is an error.

use tokio::sync::OnceCell;

use super::{Upstream, UpstreamError};
use crate::es::request::dialect::{self, Dialect};

/// Largest `GET /` answer read (the banner is a few hundred bytes).
const MAX_ROOT_ANSWER: usize = 64 * 1024;

/// The cached dialect of one `Upstream`.
#[derive(Default)]
pub struct DialectCache(OnceCell<Dialect>);

impl Upstream {
    /// The backend's dialect: `None` when its `GET /` answer does not say.
    pub(crate) async fn dialect(
        &self,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Option<Dialect>, UpstreamError> {
        if let Some(d) = self.dialect.0.get() {
            return Ok(Some(*d));
        }
        let (status, body) = self.get_own("/", authorization, MAX_ROOT_ANSWER).await?;
        let found = if status == 200 {
            dialect::from_root(&body)
        } else {
            None
        };
        if let Some(d) = found {
            let _ = self.dialect.0.set(d);
        }
        Ok(found)
    }
}
