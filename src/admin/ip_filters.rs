//! `/ip-filters`: named CIDR lists that tokens reference by name.
//!
//! Invariants: names are `[a-z0-9_-]{1,64}` and unique; an IP filter is never deleted while a
//! token references it (a token's IP filter cannot be removed, so deleting it would be a
//! removal by the back door). `cidrs` may be changed with PATCH, tightening or widening: the
//! rule "an IP filter once set cannot be removed or replaced" is about a token's reference,
//! and an operator who owns the named list may edit it; the change is audited.

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use crate::store::model::IpFilter;
use crate::store::{Change, Snapshot};

use super::api;
use super::input::{self, AdminError};
use super::resource::{self, answer, find, Resource};
use super::{AdminContext, AdminResponse, EventBase};

const MAX_CIDRS: usize = 1024;
/// The fields of a create body (`api::IpFilterRequest`; a PATCH takes only `cidrs`).
pub(super) const CREATE_FIELDS: &[&str] = &["name", "cidrs"];

/// Named IP filters as an admin resource.
pub(super) struct IpFilters;

impl Resource for IpFilters {
    type Record = IpFilter;
    type View = api::IpFilter;
    const NAME: &'static str = "IP filter";
    const AUDIT: &'static str = "ip_filter";

    fn get<'s>(snap: &'s Snapshot, name: &str, _now: i64) -> Option<&'s IpFilter> {
        snap.ip_filter(name)
    }

    fn view(_ctx: &AdminContext, snap: &Snapshot, f: &IpFilter, _now: i64) -> api::IpFilter {
        view(snap, f)
    }
}

fn view(snap: &Snapshot, f: &IpFilter) -> api::IpFilter {
    api::IpFilter {
        name: f.name.clone(),
        cidrs: cidr_texts(&f.cidrs),
        created_at: input::format_time(f.created_at),
        used_by: snap.tokens_using_ip_filter(&f.name),
    }
}

fn cidr_texts(cidrs: &[IpNet]) -> Vec<String> {
    cidrs.iter().map(ToString::to_string).collect()
}

pub(super) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parses `cidrs`: each a CIDR or a bare address (taken as /32 or /128). Duplicates dropped.
pub(super) fn parse_cidrs(map: &Map<String, Value>) -> Result<Option<Vec<IpNet>>, AdminError> {
    let Some(items) = input::opt_array(map, "cidrs")? else {
        return Ok(None);
    };
    if items.is_empty() {
        return Err(AdminError::field("cidrs", "must not be empty"));
    }
    if items.len() > MAX_CIDRS {
        return Err(AdminError::field(
            "cidrs",
            &format!("must have at most {MAX_CIDRS} entries"),
        ));
    }
    let mut out: Vec<IpNet> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let net = item.as_str().and_then(parse_cidr).ok_or_else(|| {
            AdminError::field(
                &format!("cidrs[{i}]"),
                "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address",
            )
        })?;
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(Some(out))
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Whether a list allows every address of a family (`0.0.0.0/0`, `::/0`): attached to a token,
/// such a filter lifts its restriction entirely. Judged as the request path matches (v4-mapped
/// networks as IPv4: `::ffff:0.0.0.0/96` is `0.0.0.0/0`) and on the list as a whole (CIDRs that
/// together cover a family, such as `0.0.0.0/1` and `128.0.0.0/1`, are as open as `0.0.0.0/0`).
fn allows_everything(cidrs: &[IpNet]) -> bool {
    let nets: Vec<IpNet> = cidrs
        .iter()
        .map(|n| crate::policy::client_ip::canonical_net(*n))
        .collect();
    IpNet::aggregate(&nets).iter().any(|n| n.prefix_len() == 0)
}

/// `policies.allow_open_ip_filters = false` refuses such lists (409, naming the policy).
fn check_open(ctx: &AdminContext, cidrs: Option<&[IpNet]>) -> Result<bool, AdminError> {
    let open = cidrs.is_some_and(allows_everything);
    if open && !ctx.policies.allow_open_ip_filters {
        return Err(AdminError::policy(
            "allow_open_ip_filters",
            "an IP filter must not allow every address (0.0.0.0/0, ::/0)",
        ));
    }
    Ok(open)
}

/// An IP filter that now allows every address is announced loudly: a warning in the log, and
/// `allows_every_address` with the tokens it lifts in the audit event.
fn warn_open(action: &str, name: &str, used_by: &[String]) {
    tracing::warn!(
        action,
        ip_filter = name,
        tokens = %json!(used_by),
        "IP filter now allows every address: the tokens using it have no address restriction"
    );
}

pub(super) async fn create(
    ctx: &AdminContext,
    ev: &EventBase,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, CREATE_FIELDS, &[])?;
    let name =
        input::opt_str(&map, "name")?.ok_or_else(|| AdminError::field("name", "is required"))?;
    if !valid_name(name) {
        return Err(AdminError::field(
            "name",
            "must be 1 to 64 characters from a-z, 0-9, _ and -",
        ));
    }
    let cidrs = parse_cidrs(&map)?.ok_or_else(|| AdminError::field("cidrs", "is required"))?;
    let open = check_open(ctx, Some(&cidrs))?;
    let now = ev.now;
    let out = ctx
        .store
        .update(|snap| {
            if snap.ip_filter(name).is_some() {
                return Err(AdminError::already_exists(
                    "an IP filter with this name already exists",
                ));
            }
            let ip_filter = IpFilter {
                name: name.to_owned(),
                cidrs,
                created_at: now,
            };
            let out = view(snap, &ip_filter);
            Ok((vec![Change::PutIpFilter { ip_filter }], out))
        })
        .await?;
    let mut extra = json!({"cidrs": out.cidrs});
    if open {
        warn_open("ip_filter.create", name, &out.used_by);
        extra["allows_every_address"] = Value::Bool(true);
    }
    ev.emit(ctx, "ip_filter.create", name, extra);
    answer(201, &out)
}

pub(super) fn list(ctx: &AdminContext) -> Result<AdminResponse, AdminError> {
    let snap = ctx.store.snapshot();
    let mut all: Vec<&IpFilter> = snap.ip_filters().collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let ip_filters = all.into_iter().map(|f| view(&snap, f)).collect();
    answer(200, &api::IpFilterList { ip_filters })
}

/// PATCH: only `cidrs` (tightening or widening). Renaming is refused: tokens hold the name.
pub(super) async fn update(
    ctx: &AdminContext,
    ev: &EventBase,
    name: &str,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, &["cidrs"], &["name", "created_at", "used_by"])?;
    let cidrs = parse_cidrs(&map)?;
    let open = check_open(ctx, cidrs.as_deref())?;
    let (out, old_cidrs) = ctx
        .store
        .update(|snap| {
            let old = find::<IpFilters>(snap, name, ev.now)?;
            let mut f = old.clone();
            if let Some(cidrs) = cidrs {
                f.cidrs = cidrs;
            }
            let out = view(snap, &f);
            let old_cidrs = cidr_texts(&old.cidrs);
            let changes = if f == *old {
                vec![]
            } else {
                vec![Change::PutIpFilter { ip_filter: f }]
            };
            let changed = (!changes.is_empty()).then_some(old_cidrs);
            Ok::<_, AdminError>((changes, (out, changed)))
        })
        .await?;
    if let Some(old) = old_cidrs {
        let mut extra = json!({"old_cidrs": old, "cidrs": out.cidrs});
        if open {
            warn_open("ip_filter.update", name, &out.used_by);
            extra["allows_every_address"] = Value::Bool(true);
            extra["tokens_unrestricted"] = json!(out.used_by);
        }
        ev.emit(ctx, "ip_filter.update", name, extra);
    }
    answer(200, &out)
}

pub(super) async fn delete(
    ctx: &AdminContext,
    ev: &EventBase,
    name: &str,
) -> Result<AdminResponse, AdminError> {
    resource::delete::<IpFilters, _>(ctx, ev, name, |snap, _| {
        let users = snap.tokens_using_ip_filter(name);
        resource::refuse_in_use("IP filter", &users, "delete those tokens first")?;
        let changes = vec![Change::DeleteIpFilter {
            name: name.to_owned(),
        }];
        Ok((changes, Value::Null))
    })
    .await
}

#[cfg(test)]
mod tests;
