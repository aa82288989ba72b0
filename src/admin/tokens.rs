//! `/tokens`: create, list, show, update, reset, delete, and the sweep of expired tokens.
//!
//! Invariants: a secret is generated here and leaves only in the create, reset and rotate
//! answers (the store keeps its hash; during a rotation's overlap also the previous one's); an update can only narrow what a token may do in time and place (an
//! expiry cannot be extended or removed, an IP filter cannot be replaced or removed); policies
//! are checked on every create and update; expired tokens are listed for `EXPIRED_GRACE`
//! seconds and then hidden and swept.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::auth::secret::Secret;
use crate::store::model::{
    FieldValue, FilterRef, Permission, PreviousSecret, Scores, Token, UnixTime,
};
use crate::store::{Change, Snapshot, Store, StoreError};

use super::api;
use super::input::{self, AdminError, MAX_TIME};
use super::limits;
use super::resource::{self, answer, find, Patched, Resource};
use super::{random_id, AdminContext, AdminResponse, EventBase, Policies};

/// How long an expired token stays listed before it is hidden and deleted.
pub const EXPIRED_GRACE: i64 = 300;

const MAX_NAME_CHARS: usize = 200;
const MAX_FIELD_CHARS: usize = 256;
const MAX_VALUE_CHARS: usize = 4096;
const MAX_FILTERS: usize = 256;
const MAX_INDICES: usize = 256;
const MAX_INDEX_BYTES: usize = 255;
const DEFAULT_SIZE: usize = 100;
const MAX_SIZE: usize = 10_000;

/// The fields of a create or PATCH body (`api::TokenRequest`).
pub(super) const CREATE_FIELDS: &[&str] = &[
    "name",
    "filters",
    "indices",
    "permissions",
    "expires_in",
    "expires_at",
    "ip_filter",
    "limits",
    "kibana_spaces",
    "scores",
];
/// Fields of the token view that a PATCH cannot set.
const READ_ONLY_FIELDS: &[&str] = &[
    "id",
    "secret",
    "created_at",
    "expired",
    "ip_cidrs",
    "last_used_at",
    "previous_secret_expires_at",
];

/// Longest overlap of a rotation: the previous secret works at most this long (seconds).
pub const MAX_OVERLAP: i64 = 7 * 86_400;
/// The overlap when a rotation names none.
const DEFAULT_OVERLAP: i64 = 3_600;

/// Deletes tokens (and share links) expired for more than `EXPIRED_GRACE` seconds, and
/// forgets previous secrets whose rotation overlap has ended (they no longer authenticate
/// anyway), in one durable change. Returns how many tokens were deleted. The server calls this
/// every few seconds.
pub async fn sweep_expired(store: &Store, now: i64) -> Result<usize, StoreError> {
    store
        .update(|snap| {
            let mut ids: Vec<String> = snap
                .tokens()
                .filter(|t| !visible(t, now))
                .map(|t| t.id.clone())
                .collect();
            ids.sort();
            let n = ids.len();
            if n > 0 {
                tracing::info!(count = n, "Sweeping tokens expired for more than 5 minutes");
            }
            let mut ended: Vec<Token> = snap
                .tokens()
                .filter(|t| visible(t, now))
                .filter(|t| t.previous_secret.is_some() && t.previous_secret_at(now).is_none())
                .map(|t| {
                    let mut t = (**t).clone();
                    t.previous_secret = None;
                    t
                })
                .collect();
            ended.sort_by(|a, b| a.id.cmp(&b.id));
            // Share links expired as long go too (a token's links go with it anyway).
            let mut links: Vec<String> = snap
                .links()
                .filter(|l| {
                    matches!(l.expires_at, Some(exp) if now.saturating_sub(exp) > EXPIRED_GRACE)
                        && !ids.contains(&l.token_id)
                })
                .map(|l| l.id.clone())
                .collect();
            links.sort();
            let mut changes: Vec<Change> = links
                .into_iter()
                .map(|id| Change::DeleteLink { id })
                .collect();
            changes.extend(ids.into_iter().map(|id| Change::DeleteToken { id }));
            changes.extend(ended.into_iter().map(|token| Change::PutToken { token }));
            Ok::<_, StoreError>((changes, n))
        })
        .await
}

/// False once a token has been expired for more than the grace period: from then on it is
/// treated as deleted even if the sweep has not run yet.
fn visible(t: &Token, now: i64) -> bool {
    match t.expires_at {
        Some(exp) => now.saturating_sub(exp) <= EXPIRED_GRACE,
        None => true,
    }
}

/// Tokens as an admin resource: hidden once expired for longer than the grace period.
pub(super) struct Tokens;

impl Resource for Tokens {
    type Record = Token;
    type View = api::Token;
    const NAME: &'static str = "token";
    const AUDIT: &'static str = "token";

    fn get<'s>(snap: &'s Snapshot, id: &str, now: i64) -> Option<&'s Token> {
        snap.token(id).map(|t| &**t).filter(|t| visible(t, now))
    }

    fn view(ctx: &AdminContext, snap: &Snapshot, t: &Token, now: i64) -> api::Token {
        view(&ctx.store, snap, t, now)
    }
}

// === input ===

/// What a body says about the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// Neither field given.
    Absent,
    /// `null`: no expiry (a removal on update).
    Never,
    At(UnixTime),
}

pub(super) fn parse_name(map: &Map<String, Value>) -> Result<Option<String>, AdminError> {
    let Some(name) = input::opt_str(map, "name")? else {
        return Ok(None);
    };
    if name.trim().is_empty() {
        return Err(AdminError::field("name", "must not be empty"));
    }
    input::check_text("name", name, MAX_NAME_CHARS)?;
    Ok(Some(name.to_owned()))
}

/// Checks a filter's field name and value (shared with the filter library).
/// `field_path` and `value_path` are how errors name the two.
pub(crate) fn check_field_value(
    field_path: &str,
    value_path: &str,
    field: &Value,
    value: &Value,
) -> Result<FieldValue, AdminError> {
    let Value::String(field) = field else {
        return Err(AdminError::field(field_path, "must be a string"));
    };
    let Value::String(value) = value else {
        return Err(AdminError::field(value_path, "must be a string"));
    };
    if field.is_empty() {
        return Err(AdminError::field(field_path, "must not be empty"));
    }
    input::check_text(field_path, field, MAX_FIELD_CHARS)?;
    if value.is_empty() {
        return Err(AdminError::field(value_path, "must not be empty"));
    }
    input::check_text(value_path, value, MAX_VALUE_CHARS)?;
    Ok(FieldValue {
        field: field.clone(),
        value: value.clone(),
    })
}

/// `filters`: inline `{"field","value"}` objects or library ids. Ids are checked against the
/// store later, inside the write.
pub(super) fn parse_filters(
    map: &Map<String, Value>,
) -> Result<Option<Vec<FilterRef>>, AdminError> {
    let Some(items) = input::opt_array(map, "filters")? else {
        return Ok(None);
    };
    if items.len() > MAX_FILTERS {
        return Err(AdminError::field(
            "filters",
            &format!("must have at most {MAX_FILTERS} entries"),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("filters[{i}]");
        let f = match item {
            Value::String(id) => FilterRef::Library(id.clone()),
            Value::Object(obj) => {
                if let Some(k) = obj.keys().find(|k| *k != "field" && *k != "value") {
                    return Err(AdminError::field(&format!("{path}.{k}"), "is unknown"));
                }
                let field = obj.get("field").unwrap_or(&Value::Null);
                let value = obj.get("value").unwrap_or(&Value::Null);
                FilterRef::Inline(check_field_value(
                    &format!("{path}.field"),
                    &format!("{path}.value"),
                    field,
                    value,
                )?)
            }
            _ => {
                return Err(AdminError::field(
                    &path,
                    "must be a {\"field\",\"value\"} object or a filter id",
                ))
            }
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(Some(out))
}

/// `indices`: index names or patterns as Elasticsearch accepts them.
pub(super) fn parse_indices(map: &Map<String, Value>) -> Result<Option<Vec<String>>, AdminError> {
    let Some(items) = input::opt_array(map, "indices")? else {
        return Ok(None);
    };
    if items.is_empty() {
        return Err(AdminError::field(
            "indices",
            "must not be empty (omit it for every non-hidden index)",
        ));
    }
    if items.len() > MAX_INDICES {
        return Err(AdminError::field(
            "indices",
            &format!("must have at most {MAX_INDICES} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("indices[{i}]");
        let Value::String(p) = item else {
            return Err(AdminError::field(&path, "must be a string"));
        };
        check_index_pattern(p).map_err(|why| AdminError::field(&path, why))?;
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    Ok(Some(out))
}

/// Elasticsearch's index name rules, with `*` allowed as a wildcard.
fn check_index_pattern(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("must not be empty");
    }
    if p.len() > MAX_INDEX_BYTES {
        return Err("must be at most 255 bytes");
    }
    if p.chars().any(|c| c.is_uppercase()) {
        return Err("must be lowercase");
    }
    if p.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                ',' | ' ' | '"' | '/' | '\\' | '|' | '?' | '<' | '>' | '#' | ':'
            )
    }) {
        return Err("must not contain any of , space \" / \\ | ? < > # :");
    }
    if p.starts_with(['-', '_', '+']) {
        return Err("must not start with -, _ or +");
    }
    if p == "." || p == ".." {
        return Err("must not be . or ..");
    }
    Ok(())
}

/// An `all` token is relayed unchecked: filters or index patterns on it would be listed but
/// never enforced, so they are refused rather than silently ignored.
pub(super) fn check_all_is_unrestricted(
    permissions: &BTreeSet<Permission>,
    has_filters: bool,
    indices: &[String],
) -> Result<(), AdminError> {
    if permissions.contains(&Permission::All) && (has_filters || indices != ["*"]) {
        return Err(AdminError::field(
            "permissions",
            "\"all\" passes requests through unchecked; it cannot be combined with filters or index patterns",
        ));
    }
    Ok(())
}

/// No token may read esgate's token store index when it lives in the cluster tokens read:
/// a pattern that reaches it is refused here, rather than the token being refused on every
/// request afterwards (the request path keeps that check for tokens stored before).
fn check_store_unreachable(ctx: &AdminContext, indices: &[String]) -> Result<(), AdminError> {
    let Some(store) = ctx.guarded_store.as_deref() else {
        return Ok(());
    };
    match crate::es::indices::store_guard::token_reaches(indices, store) {
        Some(p) => Err(AdminError::field(
            "indices",
            &format!(
                "the pattern [{p}] reaches esgate's token store index, which no token may read; narrow the pattern"
            ),
        )),
        None => Ok(()),
    }
}

/// `scores`: `"constant"` or `"relevance"`; `null` (PATCH) returns the token to the default
/// (`Token::scores`). `None`: absent.
fn parse_scores(map: &Map<String, Value>) -> Result<Option<Option<Scores>>, AdminError> {
    match input::nullable_str(map, "scores")? {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(text)) => match Scores::parse(text) {
            Some(s) => Ok(Some(Some(s))),
            None => Err(AdminError::field(
                "scores",
                "must be \"constant\" or \"relevance\"",
            )),
        },
    }
}

/// `kibana_spaces`: Kibana space ids (`[a-z0-9_-]`), at most 100.
pub(super) fn parse_kibana_spaces(
    map: &Map<String, Value>,
) -> Result<Option<Vec<String>>, AdminError> {
    let Some(items) = input::opt_array(map, "kibana_spaces")? else {
        return Ok(None);
    };
    if items.len() > 100 {
        return Err(AdminError::field(
            "kibana_spaces",
            "must have at most 100 entries",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) if crate::kibana::path::valid_space(s) => {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            _ => {
                return Err(AdminError::field(
                    &format!("kibana_spaces[{i}]"),
                    "must be a Kibana space id (lowercase letters, digits, _ and -)",
                ))
            }
        }
    }
    Ok(Some(out))
}

pub(super) fn parse_permissions(
    map: &Map<String, Value>,
) -> Result<Option<BTreeSet<Permission>>, AdminError> {
    let Some(items) = input::opt_array(map, "permissions")? else {
        return Ok(None);
    };
    if items.is_empty() {
        return Err(AdminError::field("permissions", "must not be empty"));
    }
    let mut out = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let p = item.as_str().and_then(Permission::parse).ok_or_else(|| {
            AdminError::field(&format!("permissions[{i}]"), "must be \"read\" or \"all\"")
        })?;
        out.insert(p);
    }
    Ok(Some(out))
}

/// `expires_in` / `expires_at` (at most one). `null` in either means "no expiry".
pub(super) fn parse_expiry(map: &Map<String, Value>, now: i64) -> Result<Expiry, AdminError> {
    let rel = input::nullable_str(map, "expires_in")?;
    let abs = input::nullable_str(map, "expires_at")?;
    let at = match (rel, abs) {
        (Some(_), Some(_)) => {
            return Err(AdminError::bad_request(
                "fields [expires_in] and [expires_at] cannot both be given",
            ))
        }
        (None, None) => return Ok(Expiry::Absent),
        (Some(None), None) | (None, Some(None)) => return Ok(Expiry::Never),
        (Some(Some(d)), None) => {
            let secs = input::parse_duration(d).map_err(|e| match e {
                input::BadDuration::TooLarge => {
                    AdminError::field("expires_in", "is too far in the future")
                }
                input::BadDuration::Malformed => AdminError::field(
                    "expires_in",
                    "must be a positive duration such as 90s, 15m, 24h or 7d",
                ),
            })?;
            now.checked_add(secs)
                .filter(|t| *t <= MAX_TIME)
                .ok_or_else(|| AdminError::field("expires_in", "is too far in the future"))?
        }
        (None, Some(Some(ts))) => {
            let t = input::parse_rfc3339_utc(ts).ok_or_else(|| {
                AdminError::field(
                    "expires_at",
                    "must be an RFC 3339 timestamp in UTC, such as 2026-01-31T12:00:00Z",
                )
            })?;
            if t <= now {
                return Err(AdminError::field("expires_at", "must be in the future"));
            }
            if t > MAX_TIME {
                return Err(AdminError::field("expires_at", "is too far in the future"));
            }
            t
        }
    };
    Ok(Expiry::At(at))
}

fn check_library_refs(snap: &Snapshot, filters: &[FilterRef]) -> Result<(), AdminError> {
    for (i, f) in filters.iter().enumerate() {
        if let FilterRef::Library(id) = f {
            if snap.filter(id).is_none() {
                return Err(AdminError::field(
                    &format!("filters[{i}]"),
                    "is not the id of a filter in the library",
                ));
            }
        }
    }
    Ok(())
}

fn check_ip_filter_ref(snap: &Snapshot, name: Option<&str>) -> Result<(), AdminError> {
    match name {
        Some(n) if snap.ip_filter(n).is_none() => Err(AdminError::field(
            "ip_filter",
            "is not the name of an existing IP filter",
        )),
        _ => Ok(()),
    }
}

// === policies ===

fn check_filters_policy(p: &Policies, t: &Token) -> Result<(), AdminError> {
    if p.require_filters && t.filters.is_empty() {
        return Err(AdminError::policy(
            "require_filters",
            "a token must have at least one filter",
        ));
    }
    Ok(())
}

/// Expiry policies: `since` is when the lifetime starts (creation, or the update that sets it).
fn check_expiry_policy(p: &Policies, t: &Token, since: i64) -> Result<(), AdminError> {
    if p.require_expiry && t.expires_at.is_none() {
        return Err(AdminError::policy(
            "require_expiry",
            "a token must have an expiry (expires_in or expires_at)",
        ));
    }
    if let Some(max) = p.max_lifetime {
        let max_secs = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
        let within = matches!(t.expires_at, Some(exp) if exp.saturating_sub(since) <= max_secs);
        if !within {
            return Err(AdminError::policy(
                "max_lifetime",
                &format!(
                    "a token must expire within {}",
                    input::format_duration(max.as_secs())
                ),
            ));
        }
    }
    Ok(())
}

fn check_ip_policy(p: &Policies, t: &Token) -> Result<(), AdminError> {
    if p.require_ip_filter && t.ip_filter.is_none() {
        return Err(AdminError::policy(
            "require_ip_filter",
            "a token must have an ip_filter",
        ));
    }
    Ok(())
}

// === view ===

/// The token as the API shows it. Never the hash.
fn view(store: &Store, snap: &Snapshot, t: &Token, now: i64) -> api::Token {
    let filters = t
        .filters
        .iter()
        .map(|f| match f {
            FilterRef::Inline(fv) => api::TokenFilter {
                id: None,
                field: Some(fv.field.clone()),
                value: Some(fv.value.clone()),
                missing: false,
            },
            FilterRef::Library(id) => match snap.filter(id) {
                Some(lf) => api::TokenFilter {
                    id: Some(id.clone()),
                    field: Some(lf.field.clone()),
                    value: Some(lf.value.clone()),
                    missing: false,
                },
                // Cannot happen through this API (deletes check references); the request path
                // denies such a token, and the view says so.
                None => api::TokenFilter {
                    id: Some(id.clone()),
                    field: None,
                    value: None,
                    missing: true,
                },
            },
        })
        .collect();
    let ip_cidrs = t
        .ip_filter
        .as_deref()
        .and_then(|n| snap.ip_filter(n))
        .map(|f| f.cidrs.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    api::Token {
        id: t.id.clone(),
        name: t.name.clone(),
        filters,
        indices: t.indices.clone(),
        permissions: t
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        created_at: input::format_time(t.created_at),
        expires_at: t.expires_at.map(input::format_time),
        expired: t.is_expired(now),
        ip_filter: t.ip_filter.clone(),
        ip_cidrs,
        kibana_spaces: t.kibana_spaces.clone(),
        last_used_at: store.last_used(snap, &t.id).map(input::format_time),
        previous_secret_expires_at: t
            .previous_secret_at(now)
            .map(|p| input::format_time(p.expires_at)),
        limits: limits::view(&t.limits),
        scores: t.scores().as_str().to_owned(),
    }
}

// === handlers ===

pub(super) async fn create(
    ctx: &AdminContext,
    ev: &EventBase,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let now = ev.now;
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, CREATE_FIELDS, &[])?;
    let name = parse_name(&map)?.ok_or_else(|| AdminError::field("name", "is required"))?;
    let filters = parse_filters(&map)?.unwrap_or_default();
    let indices = parse_indices(&map)?.unwrap_or_else(|| vec!["*".to_owned()]);
    let permissions = parse_permissions(&map)?.unwrap_or_else(|| [Permission::Read].into());
    check_all_is_unrestricted(&permissions, !filters.is_empty(), &indices)?;
    check_store_unreachable(ctx, &indices)?;
    let expires_at = match parse_expiry(&map, now)? {
        Expiry::At(t) => Some(t),
        Expiry::Absent | Expiry::Never => None,
    };
    let ip_filter = input::nullable_str(&map, "ip_filter")?
        .flatten()
        .map(str::to_owned);
    let limits = match map.get("limits") {
        Some(v) => limits::parse(v, "limits")?,
        None => Default::default(),
    };
    let kibana_spaces =
        parse_kibana_spaces(&map)?.unwrap_or_else(crate::store::model::default_kibana_spaces);
    let scores = parse_scores(&map)?.flatten();

    let (out, token) = ctx
        .store
        .update(|snap| {
            check_library_refs(snap, &filters)?;
            check_ip_filter_ref(snap, ip_filter.as_deref())?;
            let (secret, secret_hash) = fresh_secret(snap)?;
            let mut id = random_id("tok_");
            while snap.token(&id).is_some() {
                id = random_id("tok_");
            }
            let token = Token {
                id,
                name,
                secret_hash,
                filters,
                indices,
                permissions,
                created_at: now,
                expires_at,
                ip_filter,
                previous_secret: None,
                limits,
                kibana_spaces,
                scores,
            };
            check_filters_policy(&ctx.policies, &token)?;
            check_expiry_policy(&ctx.policies, &token, now)?;
            check_ip_policy(&ctx.policies, &token)?;
            let out = api::TokenCreated {
                token: view(&ctx.store, snap, &token, now),
                secret: secret.expose().to_owned(),
            };
            Ok::<_, AdminError>((
                vec![Change::PutToken {
                    token: token.clone(),
                }],
                (out, token),
            ))
        })
        .await?;
    let shown = &out.token;
    ev.emit(
        ctx,
        "token.create",
        &token.id,
        json!({"name": token.name, "permissions": shown.permissions,
               "expires_at": shown.expires_at, "ip_filter": token.ip_filter,
               "limits": shown.limits}),
    );
    answer(201, &out)
}

/// A new secret whose hash no stored token has (a collision would let one secret open two
/// tokens; with a sound generator this never loops).
fn fresh_secret(snap: &Snapshot) -> Result<(Secret, crate::store::model::SecretHash), AdminError> {
    for _ in 0..4 {
        let secret = Secret::generate();
        let hash = secret.hash();
        if snap.token_by_hash(&hash).is_none() {
            return Ok((secret, hash));
        }
    }
    tracing::error!("Secret generator produced colliding hashes");
    Err(AdminError::internal("could not generate a unique secret"))
}

pub(super) fn list(
    ctx: &AdminContext,
    query: Option<&str>,
    now: i64,
) -> Result<AdminResponse, AdminError> {
    let q = input::parse_query(query, &["name", "from", "size"])?;
    let needle = q.get("name").map(|n| n.to_lowercase());
    let from = input::query_usize(&q, "from", 0, usize::MAX / 2)?;
    let size = input::query_usize(&q, "size", DEFAULT_SIZE, MAX_SIZE)?;
    let snap = ctx.store.snapshot();
    let mut matches: Vec<&Token> = snap
        .tokens()
        .map(|t| &**t)
        .filter(|t| visible(t, now))
        .filter(|t| match &needle {
            Some(n) => t.name.to_lowercase().contains(n.as_str()),
            None => true,
        })
        .collect();
    matches.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let total = matches.len();
    let tokens = matches
        .into_iter()
        .skip(from)
        .take(size)
        .map(|t| view(&ctx.store, &snap, t, now))
        .collect();
    answer(200, &api::TokenPage { tokens, total })
}

/// PATCH. Every field is optional; what is given replaces the current value, subject to the
/// narrowing rules (expiry, IP filter) and the policies. Policies are checked for the fields
/// the patch touches, so renaming a token created under older, laxer policies still works.
pub(super) async fn update(
    ctx: &AdminContext,
    ev: &EventBase,
    id: &str,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let now = ev.now;
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, CREATE_FIELDS, READ_ONLY_FIELDS)?;
    let name = parse_name(&map)?;
    let filters = parse_filters(&map)?;
    let indices = parse_indices(&map)?;
    let permissions = parse_permissions(&map)?;
    let expiry = parse_expiry(&map, now)?;
    let ip_filter = input::nullable_str(&map, "ip_filter")?;
    let new_limits = map
        .get("limits")
        .map(|v| limits::parse(v, "limits"))
        .transpose()?;
    let kibana_spaces = parse_kibana_spaces(&map)?;
    let scores = parse_scores(&map)?;

    resource::patch::<Tokens, _>(ctx, ev, id, |snap, old| {
        let mut t = old.clone();
        if let Some(name) = name {
            t.name = name;
        }
        if let Some(filters) = filters {
            check_library_refs(snap, &filters)?;
            t.filters = filters;
            check_filters_policy(&ctx.policies, &t)?;
        }
        if let Some(indices) = indices {
            // Checked where the patterns change: a token stored before the check (a store
            // import) can still be renamed, shortened or given an IP filter; the request path
            // refuses it until its patterns are narrowed.
            check_store_unreachable(ctx, &indices)?;
            t.indices = indices;
        }
        if let Some(spaces) = kibana_spaces {
            t.kibana_spaces = spaces;
        }
        if let Some(scores) = scores {
            t.scores = scores;
        }
        if let Some(perms) = permissions {
            if perms != old.permissions && !ctx.policies.allow_permission_updates {
                return Err(AdminError::conflict(
                    "policy allow_permission_updates: permissions cannot be changed after creation",
                ));
            }
            t.permissions = perms;
        }
        check_all_is_unrestricted(&t.permissions, !t.filters.is_empty(), &t.indices)?;
        match (expiry, old.expires_at) {
            (Expiry::Absent, _) | (Expiry::Never, None) => {}
            (Expiry::Never, Some(_)) => {
                return Err(AdminError::conflict(
                    "an expiry cannot be removed (it may only be shortened)",
                ))
            }
            (Expiry::At(new), Some(cur)) if new > cur => {
                return Err(AdminError::conflict(
                    "an expiry cannot be extended (it may only be shortened)",
                ))
            }
            (Expiry::At(new), _) => {
                t.expires_at = Some(new);
                check_expiry_policy(&ctx.policies, &t, now)?;
            }
        }
        match (ip_filter, old.ip_filter.as_deref()) {
            (None, _) | (Some(None), None) => {}
            (Some(None), Some(_)) => {
                return Err(AdminError::conflict(
                    "an IP filter cannot be removed once set",
                ))
            }
            (Some(Some(new)), Some(cur)) if new != cur => {
                return Err(AdminError::conflict(
                    "an IP filter cannot be replaced once set (change its CIDRs instead)",
                ))
            }
            (Some(Some(new)), _) => {
                check_ip_filter_ref(snap, Some(new))?;
                t.ip_filter = Some(new.to_owned());
            }
        }
        if let Some(l) = new_limits {
            t.limits = l;
        }
        let changed = input::changed_fields(&[
            ("name", t.name != old.name),
            ("filters", t.filters != old.filters),
            ("indices", t.indices != old.indices),
            ("permissions", t.permissions != old.permissions),
            ("expires_at", t.expires_at != old.expires_at),
            ("ip_filter", t.ip_filter != old.ip_filter),
            ("limits", t.limits != old.limits),
            ("kibana_spaces", t.kibana_spaces != old.kibana_spaces),
            ("scores", t.scores != old.scores),
        ]);
        Ok(Patched {
            view: view(&ctx.store, snap, &t, now),
            change: Change::PutToken { token: t },
            changed,
        })
    })
    .await
}

pub(super) async fn reset(
    ctx: &AdminContext,
    ev: &EventBase,
    id: &str,
) -> Result<AdminResponse, AdminError> {
    let now = ev.now;
    let secret = ctx
        .store
        .update(|snap| {
            let mut t = find::<Tokens>(snap, id, now)?.clone();
            let (secret, hash) = fresh_secret(snap)?;
            t.secret_hash = hash;
            // Immediate: a previous secret still in its rotation overlap stops too.
            t.previous_secret = None;
            Ok::<_, AdminError>((vec![Change::PutToken { token: t }], secret))
        })
        .await?;
    ev.emit(ctx, "token.reset", id, Value::Null);
    answer(
        200,
        &api::SecretReset {
            id: id.to_owned(),
            secret: secret.expose().to_owned(),
        },
    )
}

/// `overlap`: a duration in whole seconds from `0s` (a reset) to 7 days.
fn parse_overlap(body: &[u8]) -> Result<i64, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DEFAULT_OVERLAP);
    }
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, &["overlap"], &[])?;
    let Some(text) = input::opt_str(&map, "overlap")? else {
        return Ok(DEFAULT_OVERLAP);
    };
    let malformed = || {
        AdminError::field(
            "overlap",
            "must be a duration in whole seconds such as 0s, 90s, 15m, 1h or 7d",
        )
    };
    if text.trim() != text {
        return Err(malformed());
    }
    let d = crate::duration::parse(text).map_err(|e| match e {
        crate::duration::DurationError::TooLarge => {
            AdminError::field("overlap", "must be at most 7d")
        }
        crate::duration::DurationError::Malformed(_) => malformed(),
    })?;
    if d.subsec_nanos() != 0 {
        return Err(malformed());
    }
    match i64::try_from(d.as_secs()) {
        Ok(secs) if secs <= MAX_OVERLAP => Ok(secs),
        _ => Err(AdminError::field("overlap", "must be at most 7d")),
    }
}

/// A new secret; the current one becomes the previous secret and keeps working for `overlap`
/// (so a client can be re-keyed without downtime). A previous secret still in its overlap is
/// dropped at once: at most two secrets open a token. `0s` is a reset.
pub(super) async fn rotate(
    ctx: &AdminContext,
    ev: &EventBase,
    id: &str,
    body: &[u8],
) -> Result<AdminResponse, AdminError> {
    let now = ev.now;
    let overlap = parse_overlap(body)?;
    let (secret, previous) = ctx
        .store
        .update(|snap| {
            let mut t = find::<Tokens>(snap, id, now)?.clone();
            let (secret, hash) = fresh_secret(snap)?;
            let current = crate::store::model::secret_generation(&t.secret_hash);
            // Never beyond the token's own expiry (it stops working then anyway).
            let until = now
                .saturating_add(overlap)
                .min(t.expires_at.unwrap_or(i64::MAX));
            t.previous_secret = (overlap > 0 && until > now).then(|| {
                Box::new(PreviousSecret {
                    hash: t.secret_hash,
                    expires_at: until,
                })
            });
            t.secret_hash = hash;
            let previous = t.previous_secret.as_ref().map(|p| p.expires_at);
            // A rotation re-keys clients without downtime: the token's share links that work
            // (made under the secret being rotated out) are re-stamped with the new secret's
            // generation and keep working. A link an earlier reset ended stays ended: re-stamping
            // it too would revive a link the reset revoked.
            let generation = crate::store::model::secret_generation(&hash);
            let mut changes: Vec<Change> = snap
                .links_of(id)
                .into_iter()
                .filter(|l| l.secret_generation == current)
                .map(|l| {
                    let mut link = (**l).clone();
                    link.secret_generation = generation.clone();
                    Change::PutLink { link }
                })
                .collect();
            changes.insert(0, Change::PutToken { token: t });
            Ok::<_, AdminError>((changes, (secret, previous)))
        })
        .await?;
    let out = api::SecretRotated {
        id: id.to_owned(),
        secret: secret.expose().to_owned(),
        previous_secret_expires_at: previous.map(input::format_time),
    };
    ev.emit(
        ctx,
        "token.rotate",
        id,
        json!({"overlap_seconds": overlap,
               "previous_secret_expires_at": out.previous_secret_expires_at}),
    );
    answer(200, &out)
}

pub(super) async fn delete(
    ctx: &AdminContext,
    ev: &EventBase,
    id: &str,
) -> Result<AdminResponse, AdminError> {
    resource::delete::<Tokens, _>(ctx, ev, id, |snap, _| {
        // Its links go in the same durable change (a store that keeps links apart from
        // tokens sees them deleted too).
        let links: Vec<String> = snap.links_of(id).iter().map(|l| l.id.clone()).collect();
        let mut changes: Vec<Change> = links
            .iter()
            .map(|l| Change::DeleteLink { id: l.clone() })
            .collect();
        changes.push(Change::DeleteToken { id: id.to_owned() });
        let extra = if links.is_empty() {
            Value::Null
        } else {
            let refs: Vec<&str> = links.iter().map(|l| crate::kibana::link_ref(l)).collect();
            json!({ "links": refs })
        };
        Ok((changes, extra))
    })
    .await
}

#[cfg(test)]
mod tests;
