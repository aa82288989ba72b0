//! The backend's REST dialect and how it makes empty histogram buckets
//! (`es::request::dialect::Banner`), learned from its `GET /` answer the first time a request
//! needs it, and kept for the life of the process once known (every node of one cluster speaks
//! the same dialect and runs the same version).
//!
//! Invariant: only a recognised answer is cached; an unrecognised one is reported as unknown
//! (the caller fails closed) and asked again next time, a failed request is an error.

use tokio::sync::OnceCell;

use super::{Upstream, UpstreamError};
use crate::es::request::dialect::{self, Banner, Dialect, EmptyBuckets};

/// Largest `GET /` answer read (the banner is a few hundred bytes).
const MAX_ROOT_ANSWER: usize = 64 * 1024;

/// The cached banner (dialect, how empty histogram buckets are made) of one `Upstream`.
#[derive(Default)]
pub struct DialectCache(OnceCell<Banner>);

impl Upstream {
    /// The backend's dialect: `None` when its `GET /` answer does not say.
    pub(crate) async fn dialect(
        &self,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Option<Dialect>, UpstreamError> {
        Ok(self.banner(authorization).await?.map(|b| b.dialect))
    }

    /// How the backend makes empty histogram buckets, once its `GET /` was read.
    pub(crate) fn empty_buckets_known(&self) -> Option<EmptyBuckets> {
        self.dialect.0.get().map(|b| b.empty_buckets)
    }

    /// What the backend's `GET /` says of it: `None` when it does not say.
    pub(crate) async fn banner(
        &self,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Option<Banner>, UpstreamError> {
        if let Some(b) = self.dialect.0.get() {
            return Ok(Some(*b));
        }
        let (status, body) = self.get_own("/", authorization, MAX_ROOT_ANSWER).await?;
        let found = if status == 200 {
            dialect::banner(&body)
        } else {
            None
        };
        if let Some(b) = found {
            let _ = self.dialect.0.set(b);
        }
        Ok(found)
    }
}
