//! The admin API logic: `/tokens`, `/filters` and `/ip-filters`, independent of hyper.
//!
//! The admin listener (owned by the server) checks the admin key, caps the body size and calls
//! [`handle`] once per request; `/health`, `/ready` and `/metrics` are not handled here.
//!
//! Invariants:
//! - Every check that depends on stored state (ids exist, names are free, nothing references
//!   what is deleted) runs inside one `Store::update`, so it holds when the change is written.
//! - A change is durable before the answer is 2xx; exactly one audit event per change.
//! - A token secret appears only in the create, reset and rotate answers: never in a view, an error,
//!   an audit event or a log line. Errors name fields, never echo submitted values.
//! - Anything not understood (path, method, field, query parameter) is refused, never ignored.
//!
//! The JSON shapes are the types of [`api`] (shared with the CLI and the tests); the steps every
//! resource shares (find or 404, show, PATCH, DELETE, their audit, the in-use 409) are
//! `resource.rs`.
//!
//! Endpoints (documented in `docs/admin-api.md` and `docs/openapi.yaml`; what is marked + extends
//! the original shared interface spec):
//! - `POST /tokens` → 201 view + `secret`; `GET /tokens?name=&from=&size=` → `{"tokens","total"}`
//!   (name: case-insensitive substring; sorted by `created_at`, then id); `GET|PATCH|DELETE
//!   /tokens/{id}`; `POST /tokens/{id}/reset` → `{"id","secret"}` (immediate: the previous
//!   secret too stops at once); `POST /tokens/{id}/rotate {"overlap"}` →
//!   `{"id","secret","previous_secret_expires_at"}` (the old secret works until then).
//! - Token view: `id, name, filters, indices, permissions, created_at, expires_at, ip_filter,
//!   last_used_at`, + `expired` (bool), + `ip_cidrs` (the IP filter's CIDRs, `[]` if none),
//!   `previous_secret_expires_at` and `limits` (the token's own).
//! - `POST|GET /filters`, `GET|PATCH|DELETE /filters/{id}[?detach=true]`; the view has + `used_by`
//!   (token ids) and + `created_at`. Detaching widens the affected tokens, so under
//!   `require_filters` it is refused (409) when a token would be left without a filter.
//! - `POST|GET /ip-filters`, `GET|PATCH|DELETE /ip-filters/{name}` (+ GET one and PATCH
//!   `cidrs`, tightening or widening; renaming is refused); the view has + `used_by`.
//! - + `POST|GET /tokens/{id}/links`, `GET|DELETE /links/{id}`: share links (`links`).
//! - Errors: 400 `illegal_argument_exception` / `parse_exception`, 404
//!   `resource_not_found_exception`, + 405 `method_not_allowed_exception`, 409
//!   `illegal_state_exception` (rules, in-use) / `resource_already_exists_exception`
//!   (duplicate IP filter name), 500 `store_exception` (nothing was changed).
//! - A PATCH that changes nothing answers 200 and writes and audits nothing.

pub mod api;
mod filters;
mod input;
mod ip_filters;
pub mod limits;
mod links;
pub mod records;
mod resource;
mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{Map, Value};

use crate::store::Store;

pub use input::AdminError;

/// A body for a route served outside `dispatch` (`POST /explain`, which needs the whole `App`):
/// one strict JSON object (duplicate keys refused) with only `allowed` keys.
pub fn parse_object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, AdminError> {
    let map = input::parse_object(body)?;
    input::reject_unknown(&map, allowed, &[])?;
    Ok(map)
}

/// A client-given name as an answer may show it (never something that looks like a secret).
pub fn display_name(name: &str) -> &str {
    input::display_field(name)
}
pub use tokens::sweep_expired;

/// One admin request, already authenticated by the server.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    pub method: &'a str,
    /// The path without the query string, e.g. `/tokens/tok_abc`.
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub client: IpAddr,
}

/// The answer: a status and a JSON body (`None` for 204).
#[derive(Debug, Clone, PartialEq)]
pub struct AdminResponse {
    pub status: u16,
    pub body: Option<Value>,
}

impl AdminResponse {
    pub fn no_content() -> AdminResponse {
        AdminResponse {
            status: 204,
            body: None,
        }
    }
}

/// What the admin handlers need.
pub struct AdminContext {
    pub store: Arc<Store>,
    pub policies: Policies,
    pub audit: Arc<dyn AuditSink>,
    /// `[kibana] public_url`: where share links point. `None`: no Kibana front, no links.
    pub kibana_public_url: Option<String>,
    /// esgate's token store index when tokens could read it (`StoreKind::guarded_index`): a
    /// `read` token whose pattern reaches it is refused here, not on every request after.
    pub guarded_store: Option<String>,
}

/// Token policies, checked on create and update. A refusal names the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// Tokens must expire at most this long after they are created (or updated).
    pub max_lifetime: Option<Duration>,
    pub require_expiry: bool,
    pub require_ip_filter: bool,
    pub require_filters: bool,
    /// When false, `permissions` cannot be changed after creation (409).
    pub allow_permission_updates: bool,
    /// When false, an IP filter cannot hold a CIDR that allows every address (`0.0.0.0/0`,
    /// `::/0`): 409. Either way, such a filter is audited loudly.
    pub allow_open_ip_filters: bool,
    /// `[policies.limits]`: the limits of every token that does not set its own.
    pub limits: crate::store::model::TokenLimits,
}

impl Default for Policies {
    /// Everything permissive.
    fn default() -> Policies {
        Policies {
            max_lifetime: None,
            require_expiry: false,
            require_ip_filter: false,
            require_filters: false,
            allow_permission_updates: true,
            allow_open_ip_filters: true,
            limits: Default::default(),
        }
    }
}

/// Receives one JSON object per successful admin change. Never given a secret.
pub trait AuditSink: Send + Sync {
    fn admin_event(&self, event: Value);

    /// Whether a change may be made now: `false` while its record could not be written and
    /// `audit.on_failure = "closed"` (then the change is refused, 503, before anything is
    /// changed).
    fn accepts_changes(&self) -> bool {
        true
    }
}

/// Every route [`handle`] serves, as (method, path template), in the order of `dispatch`.
/// `docs/openapi.yaml` documents exactly these plus the server's probes (`tests/it/openapi.rs`);
/// `every_listed_route_is_served_and_no_other` holds `dispatch` to this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/tokens"),
    ("GET", "/tokens"),
    ("GET", "/tokens/{id}"),
    ("PATCH", "/tokens/{id}"),
    ("DELETE", "/tokens/{id}"),
    ("POST", "/tokens/{id}/reset"),
    ("POST", "/tokens/{id}/rotate"),
    ("POST", "/tokens/{id}/links"),
    ("GET", "/tokens/{id}/links"),
    ("GET", "/links/{id}"),
    ("DELETE", "/links/{id}"),
    ("POST", "/filters"),
    ("GET", "/filters"),
    ("GET", "/filters/{id}"),
    ("PATCH", "/filters/{id}"),
    ("DELETE", "/filters/{id}"),
    ("POST", "/ip-filters"),
    ("GET", "/ip-filters"),
    ("GET", "/ip-filters/{name}"),
    ("PATCH", "/ip-filters/{name}"),
    ("DELETE", "/ip-filters/{name}"),
];

/// Admin routes served by `server::admin` itself rather than `dispatch`, because they need the
/// whole `App` (the data path and the upstream): `POST /explain`.
pub const APP_ROUTES: &[(&str, &str)] = &[("POST", "/explain")];

/// The admin resources, by path shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Tokens,
    Token(&'a str),
    TokenReset(&'a str),
    TokenRotate(&'a str),
    TokenLinks(&'a str),
    Link(&'a str),
    Filters,
    Filter(&'a str),
    IpFilters,
    IpFilter(&'a str),
}

/// Handles one admin request. `now` is the current Unix time in seconds.
pub async fn handle(ctx: &AdminContext, req: AdminRequest<'_>, now: i64) -> AdminResponse {
    match dispatch(ctx, req, now).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(
    ctx: &AdminContext,
    req: AdminRequest<'_>,
    now: i64,
) -> Result<AdminResponse, AdminError> {
    let route = route(req.path).ok_or_else(|| {
        AdminError::not_found("admin endpoint (see /tokens, /links, /filters, /ip-filters)")
    })?;
    // A change is made before its record is written: with `audit.on_failure = "closed"` none
    // is made while the audit log cannot be written (a read changes nothing and is not audited).
    if !matches!(req.method, "GET" | "HEAD") && !ctx.audit.accepts_changes() {
        return Err(AdminError::audit_unavailable());
    }
    let ev = EventBase {
        client: req.client,
        now,
    };
    // Only the list and delete-with-detach endpoints take query parameters.
    let no_query = || input::parse_query(req.query, &[]).map(|_| ());
    match (route, req.method) {
        (Route::Tokens, "POST") => {
            no_query()?;
            tokens::create(ctx, &ev, req.body).await
        }
        (Route::Tokens, "GET") => {
            input::expect_no_body(req.body)?;
            tokens::list(ctx, req.query, now)
        }
        (Route::Token(id), "GET") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            resource::show::<tokens::Tokens>(ctx, id, now)
        }
        (Route::Token(id), "PATCH") => {
            no_query()?;
            tokens::update(ctx, &ev, id, req.body).await
        }
        (Route::Token(id), "DELETE") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            tokens::delete(ctx, &ev, id).await
        }
        (Route::TokenReset(id), "POST") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            tokens::reset(ctx, &ev, id).await
        }
        (Route::TokenRotate(id), "POST") => {
            no_query()?;
            tokens::rotate(ctx, &ev, id, req.body).await
        }
        (Route::TokenLinks(id), "POST") => {
            no_query()?;
            links::create(ctx, &ev, id, req.body).await
        }
        (Route::TokenLinks(id), "GET") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            links::list(ctx, id, now)
        }
        (Route::Link(id), "GET") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            resource::show::<links::Links>(ctx, id, now)
        }
        (Route::Link(id), "DELETE") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            links::delete(ctx, &ev, id).await
        }
        (Route::Filters, "POST") => {
            no_query()?;
            filters::create(ctx, &ev, req.body).await
        }
        (Route::Filters, "GET") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            filters::list(ctx)
        }
        (Route::Filter(id), "GET") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            resource::show::<filters::Filters>(ctx, id, now)
        }
        (Route::Filter(id), "PATCH") => {
            no_query()?;
            filters::update(ctx, &ev, id, req.body).await
        }
        (Route::Filter(id), "DELETE") => {
            input::expect_no_body(req.body)?;
            filters::delete(ctx, &ev, id, req.query).await
        }
        (Route::IpFilters, "POST") => {
            no_query()?;
            ip_filters::create(ctx, &ev, req.body).await
        }
        (Route::IpFilters, "GET") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            ip_filters::list(ctx)
        }
        (Route::IpFilter(name), "GET") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            resource::show::<ip_filters::IpFilters>(ctx, name, now)
        }
        (Route::IpFilter(name), "PATCH") => {
            no_query()?;
            ip_filters::update(ctx, &ev, name, req.body).await
        }
        (Route::IpFilter(name), "DELETE") => {
            no_query()?;
            input::expect_no_body(req.body)?;
            ip_filters::delete(ctx, &ev, name).await
        }
        _ => Err(AdminError::method_not_allowed()),
    }
}

/// Whether an id or a name can be named in an admin path: `[A-Za-z0-9_-]{1,128}`.
pub(crate) fn valid_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Maps a path to a route. Ids and names are restricted to `[A-Za-z0-9_-]{1,128}`, so a path
/// with anything else (encoded characters, empty segments, a trailing slash) is not found.
fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    let key = |s: &&str| valid_key(s);
    match segments.as_slice() {
        ["tokens"] => Some(Route::Tokens),
        ["tokens", id] if key(id) => Some(Route::Token(id)),
        ["tokens", id, "reset"] if key(id) => Some(Route::TokenReset(id)),
        ["tokens", id, "rotate"] if key(id) => Some(Route::TokenRotate(id)),
        ["tokens", id, "links"] if key(id) => Some(Route::TokenLinks(id)),
        ["links", id] if key(id) => Some(Route::Link(id)),
        ["filters"] => Some(Route::Filters),
        ["filters", id] if key(id) => Some(Route::Filter(id)),
        ["ip-filters"] => Some(Route::IpFilters),
        ["ip-filters", name] if key(name) => Some(Route::IpFilter(name)),
        _ => None,
    }
}

// === audit ===

/// What every audit event of one request shares.
pub(crate) struct EventBase {
    client: IpAddr,
    now: i64,
}

impl EventBase {
    /// Sends `{"type":"admin","action":..,"target":..,"at":..,"client":..}` plus `extra`.
    pub(crate) fn emit(&self, ctx: &AdminContext, action: &str, target: &str, extra: Value) {
        let mut event = Map::new();
        event.insert("type".into(), "admin".into());
        event.insert("action".into(), action.into());
        // A link's id is the whole credential of its URL: named by its reference.
        let target = if action.starts_with("link.") {
            crate::kibana::link_ref(target)
        } else {
            target
        };
        event.insert("target".into(), target.into());
        event.insert("at".into(), input::format_time(self.now).into());
        event.insert("client".into(), self.client.to_string().into());
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                event.entry(k).or_insert(v);
            }
        }
        ctx.audit.admin_event(Value::Object(event));
    }
}

/// A random id: `prefix` + 16 base62 characters (about 95 bits).
pub(crate) fn random_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    id.extend(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(16)
            .map(char::from),
    );
    id
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test helpers: an in-memory persistence, a recording audit sink and a request driver.

    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;
    use crate::store::{Change, Persistence, StoreError};

    /// Keeps appended changes in memory; can be told to fail.
    #[derive(Clone, Default)]
    pub struct MemPersistence {
        pub log: Arc<Mutex<Vec<Change>>>,
        pub fail: Arc<Mutex<bool>>,
    }

    impl Persistence for MemPersistence {
        fn load(&mut self) -> Result<Vec<Change>, StoreError> {
            Ok(self.log.lock().map(|l| l.clone()).unwrap_or_default())
        }

        fn append(&mut self, changes: &[Change]) -> Result<(), StoreError> {
            if self.fail.lock().map(|f| *f).unwrap_or(true) {
                return Err(StoreError::Io {
                    path: "/secret/path/store.log".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            if let Ok(mut log) = self.log.lock() {
                log.extend_from_slice(changes);
            }
            Ok(())
        }
    }

    #[derive(Default)]
    pub struct RecordingAudit {
        pub events: Mutex<Vec<Value>>,
        /// Refuse changes, as a closed audit log that cannot be written does.
        pub unwritable: std::sync::atomic::AtomicBool,
    }

    impl AuditSink for RecordingAudit {
        fn admin_event(&self, event: Value) {
            if let Ok(mut e) = self.events.lock() {
                e.push(event);
            }
        }

        fn accepts_changes(&self) -> bool {
            !self.unwritable.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    pub struct Harness {
        pub ctx: AdminContext,
        pub persistence: MemPersistence,
        pub audit: Arc<RecordingAudit>,
        pub now: i64,
    }

    /// 2026-01-01T00:00:00Z
    pub const T0: i64 = 1_767_225_600;

    impl Harness {
        pub fn new() -> Harness {
            Harness::with_policies(Policies::default())
        }

        pub fn with_policies(policies: Policies) -> Harness {
            let persistence = MemPersistence::default();
            let store = Store::open(Box::new(persistence.clone())).expect("empty store opens");
            let audit = Arc::new(RecordingAudit::default());
            Harness {
                ctx: AdminContext {
                    store: Arc::new(store),
                    policies,
                    audit: audit.clone(),
                    kibana_public_url: Some("https://dash.example.com".into()),
                    guarded_store: Some(".esgate".into()),
                },
                persistence,
                audit,
                now: T0,
            }
        }

        /// Sends a request; `path` may carry `?query`.
        pub async fn call(&self, method: &str, path: &str, body: &str) -> AdminResponse {
            let (path, query) = match path.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (path, None),
            };
            handle(
                &self.ctx,
                AdminRequest {
                    method,
                    path,
                    query,
                    body: body.as_bytes(),
                    client: "192.0.2.7".parse().expect("literal address"),
                },
                self.now,
            )
            .await
        }

        /// Sends a request that must answer `status`; returns the body (Null for none).
        pub async fn expect(&self, method: &str, path: &str, body: &str, status: u16) -> Value {
            let r = self.call(method, path, body).await;
            assert_eq!(
                r.status, status,
                "{method} {path} {body} answered {:?}",
                r.body
            );
            r.body.unwrap_or(Value::Null)
        }

        pub fn events(&self) -> Vec<Value> {
            self.audit
                .events
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default()
        }

        pub fn durable(&self) -> Vec<Change> {
            self.persistence
                .log
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default()
        }

        pub fn set_failing(&self, fail: bool) {
            if let Ok(mut f) = self.persistence.fail.lock() {
                *f = fail;
            }
        }
    }

    /// The error reason of an error body.
    pub fn reason(body: &Value) -> &str {
        body["error"]["reason"].as_str().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// `ROUTES` is what `dispatch` serves: a listed method and path is routed (any answer but
    /// 405 or the unknown-endpoint 404), every other method on those paths is 405.
    #[tokio::test]
    async fn every_listed_route_is_served_and_no_other() {
        let h = Harness::new();
        let templates: std::collections::BTreeSet<&str> = ROUTES.iter().map(|r| r.1).collect();
        for template in templates {
            let path = template.replace("{id}", "x_1").replace("{name}", "x-1");
            for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
                let r = h.call(method, &path, "").await;
                let body = r.body.clone().unwrap_or_default();
                if ROUTES.contains(&(method, template)) {
                    assert_ne!(r.status, 405, "{method} {path}: {body}");
                    assert!(
                        !reason(&body).contains("admin endpoint"),
                        "{method} {path}: {body}"
                    );
                } else {
                    assert_eq!(r.status, 405, "{method} {path}: {body}");
                }
            }
        }
    }

    use super::testing::*;
    use super::*;

    #[test]
    fn routes_match_exact_paths_only() {
        let cases: &[(&str, Option<Route>)] = &[
            ("/tokens", Some(Route::Tokens)),
            ("/tokens/tok_a1", Some(Route::Token("tok_a1"))),
            ("/tokens/tok_a1/reset", Some(Route::TokenReset("tok_a1"))),
            ("/filters", Some(Route::Filters)),
            ("/filters/flt_x", Some(Route::Filter("flt_x"))),
            ("/ip-filters", Some(Route::IpFilters)),
            ("/ip-filters/office-1", Some(Route::IpFilter("office-1"))),
            ("/tokens/", None),
            ("tokens", None),
            ("//tokens", None),
            ("/tokens/a/b", None),
            ("/tokens/%74ok", None),
            ("/tokens/..", None),
            ("/Tokens", None),
            ("/ip_filters", None),
            ("/health", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), *want, "{path}");
        }
    }

    #[test]
    fn random_ids_are_prefixed_base62_and_distinct() {
        let a = random_id("tok_");
        let b = random_id("tok_");
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("tok_"));
        assert!(a[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn default_policies_are_permissive() {
        let p = Policies::default();
        assert_eq!(p.max_lifetime, None);
        assert!(!p.require_expiry && !p.require_filters && !p.require_ip_filter);
        assert!(p.allow_permission_updates);
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_wrong_methods_405() {
        let h = Harness::new();
        let b = h.expect("GET", "/nope", "", 404).await;
        assert_eq!(b["status"], 404);
        assert_eq!(b["error"]["type"], "resource_not_found_exception");
        h.expect("PUT", "/tokens", "{}", 405).await;
        h.expect("DELETE", "/tokens", "", 405).await;
        h.expect("get", "/tokens", "", 405).await;
        h.expect("POST", "/filters/flt_x", "{}", 405).await;
        h.expect("HEAD", "/ip-filters", "", 405).await;
    }

    #[tokio::test]
    async fn unexpected_query_parameters_and_bodies_are_refused() {
        let h = Harness::new();
        h.expect("GET", "/filters?pretty", "", 400).await;
        h.expect("GET", "/tokens/tok_x?x=1", "", 400).await;
        h.expect("GET", "/filters", r#"{"q":1}"#, 400).await;
        h.expect("GET", "/filters", "{}", 200).await;
    }

    #[tokio::test]
    async fn handle_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let h = Harness::new();
        let req = AdminRequest {
            method: "GET",
            path: "/tokens",
            query: None,
            body: b"",
            client: "127.0.0.1".parse().expect("literal"),
        };
        let fut = handle(&h.ctx, req, T0);
        assert_send(&fut);
        assert_eq!(fut.await.body, Some(json!({"tokens": [], "total": 0})));
    }

    /// `audit.on_failure = "closed"` with an audit log that cannot be written: every change is
    /// refused (503) before anything is changed, reads are served; once it can be written
    /// again, changes are made.
    #[tokio::test]
    async fn no_change_is_made_while_its_record_cannot_be_written() {
        use std::sync::atomic::Ordering;
        let h = Harness::new();
        let created = h
            .expect(
                "POST",
                "/tokens",
                r#"{"name":"a","permissions":["all"]}"#,
                201,
            )
            .await;
        let id = created["id"].as_str().expect("id").to_owned();
        let durable = h.durable().len();
        h.audit.unwritable.store(true, Ordering::Relaxed);
        for (method, path, body) in [
            (
                "POST",
                "/tokens".to_owned(),
                r#"{"name":"b","permissions":["all"]}"#,
            ),
            ("DELETE", format!("/tokens/{id}"), ""),
            ("PATCH", format!("/tokens/{id}"), r#"{"name":"c"}"#),
            ("POST", format!("/tokens/{id}/reset"), ""),
            (
                "POST",
                "/ip-filters".to_owned(),
                r#"{"name":"o","cidrs":["::1"]}"#,
            ),
        ] {
            let r = h.call(method, &path, body).await;
            assert_eq!(r.status, 503, "{method} {path}: {:?}", r.body);
            let reason = r.body.as_ref().and_then(|b| b["error"]["reason"].as_str());
            assert_eq!(reason, Some(crate::audit::UNWRITABLE), "{method} {path}");
        }
        assert_eq!(h.durable().len(), durable, "nothing changed");
        assert_eq!(h.events().len(), 1, "only the first create was audited");
        h.expect("GET", &format!("/tokens/{id}"), "", 200).await;
        h.audit.unwritable.store(false, Ordering::Relaxed);
        h.expect("DELETE", &format!("/tokens/{id}"), "", 204).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_duplicate_creates_yield_one_success_and_one_conflict() {
        let h = Harness::new();
        let body = r#"{"name":"office","cidrs":["10.0.0.0/8"]}"#;
        let (a, b) = tokio::join!(
            h.call("POST", "/ip-filters", body),
            h.call("POST", "/ip-filters", body)
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [201, 409]);
        assert_eq!(h.events().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_never_ends_up_referencing_a_deleted_ip_filter() {
        for _ in 0..20 {
            let h = Harness::new();
            h.expect(
                "POST",
                "/ip-filters",
                r#"{"name":"office","cidrs":["::1"]}"#,
                201,
            )
            .await;
            let (create, delete) = tokio::join!(
                h.call("POST", "/tokens", r#"{"name":"t","ip_filter":"office"}"#),
                h.call("DELETE", "/ip-filters/office", "")
            );
            match (create.status, delete.status) {
                (201, 409) | (400, 204) => {}
                other => panic!("inconsistent outcome {other:?}"),
            }
            let snap = h.ctx.store.snapshot();
            for t in snap.tokens() {
                if let Some(name) = &t.ip_filter {
                    assert!(snap.ip_filter(name).is_some());
                }
            }
        }
    }

    #[tokio::test]
    async fn store_failures_answer_500_without_details_and_change_nothing() {
        let h = Harness::new();
        h.set_failing(true);
        let b = h
            .expect(
                "POST",
                "/ip-filters",
                r#"{"name":"office","cidrs":["10.0.0.0/8"]}"#,
                500,
            )
            .await;
        assert!(!b.to_string().contains("/secret/path"));
        assert!(!b.to_string().contains("disk full"));
        assert!(h.events().is_empty());
        h.set_failing(false);
        h.expect("GET", "/ip-filters/office", "", 404).await;
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{json, Map, Value};

        use super::*;

        fn field_names() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "name",
                "filters",
                "indices",
                "permissions",
                "expires_in",
                "expires_at",
                "ip_filter",
                "cidrs",
                "field",
                "value",
                "description",
                "id",
                "secret",
                "x",
            ])
            .prop_map(str::to_owned)
        }

        fn values() -> impl Strategy<Value = Value> {
            prop::sample::select(vec![
                json!(null),
                json!(true),
                json!(0),
                json!(-1),
                json!(1.5),
                json!(""),
                json!("a"),
                json!("office"),
                json!("read"),
                json!("all"),
                json!("24h"),
                json!("0s"),
                json!("2030-01-01T00:00:00Z"),
                json!("10.0.0.0/8"),
                json!("logs-*"),
                json!("UPPER"),
                json!([]),
                json!(["read"]),
                json!(["logs-*", "-x"]),
                json!(["10.0.0.1", "nope"]),
                json!([{"field": "t", "value": "a"}]),
                json!([{"field": "", "value": 1}]),
                json!(["flt_nope", 3]),
                json!({"field": "t"}),
            ])
        }

        fn bodies() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..48),
                prop::collection::btree_map(field_names(), values(), 0..5).prop_map(|m| {
                    Value::Object(m.into_iter().collect::<Map<String, Value>>())
                        .to_string()
                        .into_bytes()
                }),
            ]
        }

        proptest! {
            // 300 cases (a runtime and a store each), or `PROPTEST_CASES` for a deeper run.
            #![proptest_config(crate::proptest_cases(300))]

            /// No input panics or produces a 5xx, and every error has the admin shape.
            #[test]
            fn arbitrary_requests_get_a_well_formed_non_5xx_answer(
                method in prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT"]),
                path in prop::sample::select(vec![
                    "/tokens", "/tokens/tok_x", "/tokens/tok_x/reset", "/filters",
                    "/filters/flt_x", "/ip-filters", "/ip-filters/office", "/x", "/tokens/",
                ]),
                query in proptest::option::of("[a-z=&%0-9+]{0,12}"),
                body in bodies(),
            ) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let h = Harness::new();
                let r = rt.block_on(async {
                    h.expect("POST", "/ip-filters", r#"{"name":"office","cidrs":["::1"]}"#, 201).await;
                    handle(
                        &h.ctx,
                        AdminRequest {
                            method,
                            path,
                            query: query.as_deref(),
                            body: &body,
                            client: "::1".parse().expect("literal"),
                        },
                        T0,
                    )
                    .await
                });
                prop_assert!(r.status < 500, "{} {:?}", r.status, r.body);
                if r.status >= 400 {
                    let b = r.body.expect("errors have a body");
                    prop_assert_eq!(&b["status"], &json!(r.status));
                    prop_assert!(b["error"]["type"].is_string());
                    prop_assert!(b["error"]["reason"].is_string());
                } else if r.status == 204 {
                    prop_assert!(r.body.is_none());
                }
            }
        }
    }
}
