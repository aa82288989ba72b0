//! Route classification. Placeholder: denies every route until the classifier lands.

use super::{Plan, RequestHead, Resolution, Rejection, Scope, Permit};

#[derive(Clone, Debug)]
pub(crate) enum Route {}

pub(crate) fn plan(_head: &RequestHead<'_>, _scope: &Scope) -> Result<Plan, Rejection> {
    Err(Rejection::forbidden("this request is not allowed for this token"))
}

pub(crate) fn authorize(
    plan: Plan,
    _resolution: &Resolution,
    _body: Option<&[u8]>,
    _head: &RequestHead<'_>,
    _scope: &Scope,
) -> Result<Permit, Rejection> {
    match plan.route {}
}
