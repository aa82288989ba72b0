//! Route classification. Placeholder: denies every route until the classifier lands.

use super::{Plan, Rejection, RequestHead, Scope};

#[derive(Clone, Debug)]
pub(crate) enum Route {}

pub(crate) fn plan(_head: &RequestHead<'_>, _scope: &Scope) -> Result<Plan, Rejection> {
    Err(Rejection::forbidden(
        "this request is not allowed for this token",
    ))
}
