//! `/filters`: the filter library (shared `field: value` filters that tokens reference by id).
//!
//! Invariants: tokens store references, so a PATCH here takes effect on every token at once;
//! a filter is never deleted while a token references it, except with `?detach=true`, which
//! removes the references in the same durable write. Detaching *widens* what those tokens see
//! (one filter fewer), so it is refused when it would leave a token with no filter at all under
//! the `require_filters` policy.

use serde_json::{json, Map, Value};

use crate::store::model::{FilterRef, LibraryFilter, Token};
use crate::store::{Change, Snapshot};

use super::api;
use super::input::{self, AdminError};
use super::resource::{self, answer, Patched, Resource};
use super::tokens::check_field_value;
use super::{random_id, AdminContext, AdminResponse, EventBase};

const MAX_DESCRIPTION_CHARS: usize = 1000;
/// The fields of a create or PATCH body (`api::FilterRequest`).
pub(super) const FIELDS: &[&str] = &["description", "field", "value"];

/// The filter library as an admin resource.
pub(super) struct Filters;

impl Resource for Filters {
    type Record = LibraryFilter;
    type View = api::Filter;
    const NAME: &'static str = "filter";
    const AUDIT: &'static str = "filter";

    fn get<'s>(snap: &'s Snapshot, id: &str, _now: i64) -> Option<&'s LibraryFilter> {
        snap.filter(id)
    }

    fn view(_ctx: &AdminContext, snap: &Snapshot, f: &LibraryFilter, _now: i64) -> api::Filter {
        view(snap, f)
    }
}

fn view(snap: &Snapshot, f: &LibraryFilter) -> api::Filter {
    api::Filter {
        id: f.id.clone(),
        description: f.description.clone(),
        field: f.field.clone(),
        value: f.value.clone(),
        created_at: input::format_time(f.created_at),
        used_by: snap.tokens_using_filter(&f.id),
    }
}

pub(super) fn parse_description(map: &Map<String, Value>) -> Result<Option<String>, AdminError> {
    let Some(d) = input::opt_str(map, "description")? else {
        return Ok(None);
    };
    input::check_text("description", d, MAX_DESCRIPTION_CHARS)?;
    Ok(Some(d.to_owned()))
}

pub(super) async fn create(
    ctx: &AdminContext,
    ev: &EventBase,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, FIELDS, &[])?;
    let description = parse_description(&map)?.unwrap_or_default();
    if !map.contains_key("field") {
        return Err(AdminError::field("field", "is required"));
    }
    if !map.contains_key("value") {
        return Err(AdminError::field("value", "is required"));
    }
    let fv = check_field_value("field", "value", &map["field"], &map["value"])?;
    let now = ev.now;
    let out = ctx
        .store
        .update(|snap| {
            let mut id = random_id("flt_");
            while snap.filter(&id).is_some() {
                id = random_id("flt_");
            }
            let filter = LibraryFilter {
                id,
                description,
                field: fv.field,
                value: fv.value,
                created_at: now,
            };
            let out = view(snap, &filter);
            Ok::<_, AdminError>((vec![Change::PutFilter { filter }], out))
        })
        .await?;
    ev.emit(ctx, "filter.create", &out.id, json!({"field": out.field}));
    answer(201, &out)
}

pub(super) fn list(ctx: &AdminContext) -> Result<AdminResponse, AdminError> {
    let snap = ctx.store.snapshot();
    let mut all: Vec<&LibraryFilter> = snap.filters().collect();
    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let filters = all.into_iter().map(|f| view(&snap, f)).collect();
    answer(200, &api::FilterList { filters })
}

pub(super) async fn update(
    ctx: &AdminContext,
    ev: &EventBase,
    id: &str,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, FIELDS, &["id", "created_at", "used_by"])?;
    let description = parse_description(&map)?;
    // Check field and value through the same rules as on create, substituting what is absent.
    let field = map.get("field").cloned();
    let value = map.get("value").cloned();
    resource::patch::<Filters, _>(ctx, ev, id, |snap, old| {
        let field = field.unwrap_or_else(|| Value::String(old.field.clone()));
        let value = value.unwrap_or_else(|| Value::String(old.value.clone()));
        let fv = check_field_value("field", "value", &field, &value)?;
        let mut f = old.clone();
        if let Some(d) = description {
            f.description = d;
        }
        f.field = fv.field;
        f.value = fv.value;
        let changed = input::changed_fields(&[
            ("description", f.description != old.description),
            ("field", f.field != old.field),
            ("value", f.value != old.value),
        ]);
        Ok(Patched {
            view: view(snap, &f),
            change: Change::PutFilter { filter: f },
            changed,
        })
    })
    .await
}

pub(super) async fn delete(
    ctx: &AdminContext,
    ev: &EventBase,
    id: &str,
    query: Option<&str>,
) -> Result<AdminResponse, AdminError> {
    let q = input::parse_query(query, &["detach"])?;
    let detach = input::query_bool(&q, "detach")?;
    resource::delete::<Filters, _>(ctx, ev, id, |snap, _| {
        let users = snap.tokens_using_filter(id);
        if !detach {
            resource::refuse_in_use(
                "filter",
                &users,
                "detach it from them first or use ?detach=true",
            )?;
        }
        let mut changes = Vec::with_capacity(users.len() + 1);
        for tid in &users {
            let Some(t) = snap.token(tid) else { continue };
            let mut t: Token = (**t).clone();
            t.filters
                .retain(|f| !matches!(f, FilterRef::Library(fid) if fid == id));
            if ctx.policies.require_filters && t.filters.is_empty() {
                return Err(AdminError::conflict(format!(
                    "policy require_filters: detaching would leave token [{tid}] without any filter"
                )));
            }
            changes.push(Change::PutToken { token: t });
        }
        changes.push(Change::DeleteFilter { id: id.to_owned() });
        Ok((changes, json!({ "detached_from": users })))
    })
    .await
}

#[cfg(test)]
mod tests;
