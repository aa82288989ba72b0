//! The steps the admin resources (tokens, library filters, IP filters, share links) share,
//! written once: find a record or answer 404, show it, write a PATCH and audit what it
//! changed, delete inside one store write and audit it, and refuse (409) a delete while tokens
//! use what it names. What differs per resource (parsing, rules, listing order) stays in its
//! module.

use serde::Serialize;
use serde_json::{json, Value};

use crate::store::{Change, Snapshot};

use super::input::AdminError;
use super::{AdminContext, AdminResponse, EventBase};

/// One kind of admin record and its view.
pub(super) trait Resource {
    /// The stored record.
    type Record;
    /// Its shape on the wire (`admin::api`).
    type View: Serialize;
    /// How an answer names it: `not found` errors (`token not found`).
    const NAME: &'static str;
    /// How an audit action names it (`token.update`).
    const AUDIT: &'static str;

    /// The record `key` names, if there is one the API shows at `now`.
    fn get<'s>(snap: &'s Snapshot, key: &str, now: i64) -> Option<&'s Self::Record>;

    fn view(ctx: &AdminContext, snap: &Snapshot, record: &Self::Record, now: i64) -> Self::View;
}

/// The record `key` names, or 404 naming the kind (never the key).
pub(super) fn find<'s, R: Resource>(
    snap: &'s Snapshot,
    key: &str,
    now: i64,
) -> Result<&'s R::Record, AdminError> {
    R::get(snap, key, now).ok_or_else(|| AdminError::not_found(R::NAME))
}

/// `GET /<resource>/{key}`.
pub(super) fn show<R: Resource>(
    ctx: &AdminContext,
    key: &str,
    now: i64,
) -> Result<AdminResponse, AdminError> {
    let snap = ctx.store.snapshot();
    let record = find::<R>(&snap, key, now)?;
    answer(200, &R::view(ctx, &snap, record, now))
}

/// A view as the answer's JSON body.
pub(super) fn answer<T: Serialize>(status: u16, view: &T) -> Result<AdminResponse, AdminError> {
    let body = serde_json::to_value(view)
        .map_err(|_| AdminError::internal("could not write the answer"))?;
    Ok(AdminResponse {
        status,
        body: Some(body),
    })
}

/// What a PATCH plan computed: the record's view after the patch, the change that writes it,
/// and the names of the fields that differ (none: nothing is written or audited).
pub(super) struct Patched<V> {
    pub view: V,
    pub change: Change,
    pub changed: Vec<&'static str>,
}

/// `PATCH /<resource>/{key}`: `plan` runs inside the store write, on the latest state; the
/// answer is the view, and `<kind>.update` is audited with the changed field names.
pub(super) async fn patch<R, F>(
    ctx: &AdminContext,
    ev: &EventBase,
    key: &str,
    plan: F,
) -> Result<AdminResponse, AdminError>
where
    R: Resource,
    F: FnOnce(&Snapshot, &R::Record) -> Result<Patched<R::View>, AdminError> + Clone,
{
    let now = ev.now;
    let (view, changed) = ctx
        .store
        .update(|snap| {
            let p = plan(snap, find::<R>(snap, key, now)?)?;
            let changes = if p.changed.is_empty() {
                vec![]
            } else {
                vec![p.change]
            };
            Ok::<_, AdminError>((changes, (p.view, p.changed)))
        })
        .await?;
    if !changed.is_empty() {
        ev.emit(
            ctx,
            &format!("{}.update", R::AUDIT),
            key,
            json!({ "changed": changed }),
        );
    }
    answer(200, &view)
}

/// `DELETE /<resource>/{key}`: `plan` runs inside the store write and returns the changes
/// (the deletion and what goes with it) and the audit event's extra fields (`null`: none);
/// `<kind>.delete` is audited; the answer is 204.
pub(super) async fn delete<R, F>(
    ctx: &AdminContext,
    ev: &EventBase,
    key: &str,
    plan: F,
) -> Result<AdminResponse, AdminError>
where
    R: Resource,
    F: FnOnce(&Snapshot, &R::Record) -> Result<(Vec<Change>, Value), AdminError> + Clone,
{
    let now = ev.now;
    let extra = ctx
        .store
        .update(|snap| plan(snap, find::<R>(snap, key, now)?))
        .await?;
    ev.emit(ctx, &format!("{}.delete", R::AUDIT), key, extra);
    Ok(AdminResponse::no_content())
}

/// 409 while tokens use what a DELETE names: `<what> is used by tokens [ids]; <remedy>`.
pub(super) fn refuse_in_use(what: &str, users: &[String], remedy: &str) -> Result<(), AdminError> {
    if users.is_empty() {
        return Ok(());
    }
    Err(AdminError::conflict(format!(
        "{what} is used by tokens [{}]; {remedy}",
        users.join(", ")
    )))
}
