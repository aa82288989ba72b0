//! Share links (issue #16): `POST|GET /tokens/{id}/links`, `GET|DELETE /links/{id}`.
//!
//! A link opens one Kibana path as its token through the Kibana front (`crate::kibana`). Its
//! id is the whole credential of its URL: 128 random bits. Invariants: a link belongs to a
//! live `read` token and lies in one of the token's `kibana_spaces`; its expiry is never past
//! the token's (a later one is cut to the token's); it records the token's secret generation,
//! so a reset ends it; deleting the token deletes its links (in the same durable change).

use serde_json::{json, Map, Value};

use crate::kibana::path;
use crate::store::model::{secret_generation, Link, Permission, TimeRange, Token};
use crate::store::{Change, Snapshot};

use super::api;
use super::input::{self, AdminError};
use super::resource::{self, answer, find, Resource};
use super::tokens::Tokens;
use super::{AdminContext, AdminResponse, EventBase};

/// The fields of a create body (`api::LinkRequest`).
pub(super) const CREATE_FIELDS: &[&str] = &["path", "time", "expires_in", "expires_at"];
/// Most links one token may have (each is a row in every listing and snapshot).
pub const MAX_LINKS_PER_TOKEN: usize = 1000;

/// A fresh link id: `lnk_` + 32 hex digits of 128 bits from `rand`'s thread-local CSPRNG
/// (ChaCha, seeded by the OS).
pub(crate) fn new_link_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut id = String::with_capacity(crate::kibana::LINK_ID_PREFIX.len() + 2 * bytes.len());
    id.push_str(crate::kibana::LINK_ID_PREFIX);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Share links as an admin resource.
pub(super) struct Links;

impl Resource for Links {
    type Record = Link;
    type View = api::Link;
    const NAME: &'static str = "link";
    const AUDIT: &'static str = "link";

    fn get<'s>(snap: &'s Snapshot, id: &str, _now: i64) -> Option<&'s Link> {
        snap.link(id).map(|l| &**l)
    }

    fn view(ctx: &AdminContext, snap: &Snapshot, l: &Link, now: i64) -> api::Link {
        view(ctx, snap, l, now)
    }
}

/// The link's URL on the Kibana front.
fn url(ctx: &AdminContext, id: &str) -> Option<String> {
    let base = ctx.kibana_public_url.as_deref()?;
    Some(format!("{}/s/{id}", base.trim_end_matches('/')))
}

pub(crate) fn view(ctx: &AdminContext, snap: &Snapshot, l: &Link, now: i64) -> api::Link {
    let ended = snap
        .token(&l.token_id)
        .is_none_or(|t| secret_generation(&t.secret_hash) != l.secret_generation);
    api::Link {
        id: l.id.clone(),
        token_id: l.token_id.clone(),
        url: url(ctx, &l.id),
        path: l.path.clone(),
        time: l.time.as_ref().map(|t| api::TimeRange {
            from: t.from.clone(),
            to: t.to.clone(),
        }),
        created_at: input::format_time(l.created_at),
        expires_at: l.expires_at.map(input::format_time),
        expired: l.is_expired(now),
        ended,
    }
}

pub(super) fn parse_time(map: &Map<String, Value>) -> Result<Option<TimeRange>, AdminError> {
    let obj = match map.get("time") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(AdminError::field(
                "time",
                "must be an object {\"from\",\"to\"}",
            ))
        }
    };
    if let Some(k) = obj.keys().find(|k| *k != "from" && *k != "to") {
        return Err(AdminError::field(&format!("time.{k}"), "is unknown"));
    }
    let at = |k: &str| -> Result<(String, i64), AdminError> {
        let field = format!("time.{k}");
        let s = obj
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| AdminError::field(&field, "is required (an RFC 3339 timestamp)"))?;
        let t = input::parse_rfc3339_utc(s).ok_or_else(|| {
            AdminError::field(
                &field,
                "must be an RFC 3339 timestamp in UTC, such as 2026-11-01T00:00:00Z",
            )
        })?;
        Ok((input::format_time(t), t))
    };
    let (from, f) = at("from")?;
    let (to, t) = at("to")?;
    if f >= t {
        return Err(AdminError::field("time.to", "must be after time.from"));
    }
    Ok(Some(TimeRange { from, to }))
}

/// A link's own expiry, in the token's grammar (`expires_in` or `expires_at`; null or absent:
/// none, so the link ends with its token).
fn parse_expiry(map: &Map<String, Value>, now: i64) -> Result<Option<i64>, AdminError> {
    Ok(match super::tokens::parse_expiry(map, now)? {
        super::tokens::Expiry::At(t) => Some(t),
        super::tokens::Expiry::Absent | super::tokens::Expiry::Never => None,
    })
}

/// The token a link may be made for: visible, unexpired, `read`.
fn linkable<'a>(snap: &'a Snapshot, id: &str, now: i64) -> Result<&'a Token, AdminError> {
    let t = find::<Tokens>(snap, id, now)?;
    if t.is_expired(now) {
        return Err(AdminError::conflict("the token has expired"));
    }
    if t.permission() != Permission::Read {
        return Err(AdminError::conflict(
            "share links are for read tokens (an \"all\" token is passed through unchecked)",
        ));
    }
    Ok(t)
}

pub(super) async fn create(
    ctx: &AdminContext,
    ev: &EventBase,
    token_id: &str,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let now = ev.now;
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, CREATE_FIELDS, &[])?;
    let link_path = input::opt_str(&map, "path")?
        .ok_or_else(|| AdminError::field("path", "is required"))?
        .to_owned();
    path::check(&link_path).map_err(|why| AdminError::field("path", why))?;
    let time = parse_time(&map)?;
    let asked = parse_expiry(&map, now)?;
    if ctx.kibana_public_url.is_none() {
        return Err(AdminError::conflict(
            "share links need the Kibana front: set [kibana] url, listen and public_url",
        ));
    }
    let link = ctx
        .store
        .update(|snap| {
            let token = linkable(snap, token_id, now)?;
            let space = path::space_of(&link_path).unwrap_or("default");
            if !token.kibana_spaces.iter().any(|s| s == space) {
                return Err(AdminError::field(
                    "path",
                    "lies in a Kibana space that is not in the token's kibana_spaces",
                ));
            }
            if snap.links_of(token_id).len() >= MAX_LINKS_PER_TOKEN {
                return Err(AdminError::conflict(format!(
                    "a token has at most {MAX_LINKS_PER_TOKEN} links"
                )));
            }
            let expires_at = match (asked, token.expires_at) {
                (Some(a), Some(t)) => Some(a.min(t)),
                (a, t) => a.or(t),
            };
            let mut id = new_link_id();
            while snap.link(&id).is_some() {
                id = new_link_id();
            }
            let link = Link {
                id,
                token_id: token.id.clone(),
                path: link_path,
                time,
                created_at: now,
                expires_at,
                secret_generation: secret_generation(&token.secret_hash),
            };
            Ok::<_, AdminError>((vec![Change::PutLink { link: link.clone() }], link))
        })
        .await?;
    ev.emit(
        ctx,
        "link.create",
        &link.id,
        json!({"token_id": link.token_id, "path": link.path,
               "snapshot": link.time.is_some(),
               "expires_at": input::time_value(link.expires_at)}),
    );
    answer(201, &view(ctx, &ctx.store.snapshot(), &link, now))
}

pub(super) fn list(
    ctx: &AdminContext,
    token_id: &str,
    now: i64,
) -> Result<AdminResponse, AdminError> {
    let snap = ctx.store.snapshot();
    find::<Tokens>(&snap, token_id, now)?;
    let links = snap
        .links_of(token_id)
        .into_iter()
        .map(|l| view(ctx, &snap, l, now))
        .collect();
    answer(200, &api::LinkList { links })
}

pub(super) async fn delete(
    ctx: &AdminContext,
    ev: &EventBase,
    id: &str,
) -> Result<AdminResponse, AdminError> {
    resource::delete::<Links, _>(ctx, ev, id, |_, l| {
        let changes = vec![Change::DeleteLink { id: id.to_owned() }];
        Ok((changes, json!({ "token_id": l.token_id })))
    })
    .await
}

#[cfg(test)]
mod tests;
