//! The admin API's JSON, as types: one shape per resource, written by the server
//! (`admin::tokens`, `filters`, `ip_filters`, `links`), read by the CLI (`admin_client`) and by
//! the integration tests. `docs/admin-api.md` and `docs/openapi.yaml` document the same shapes.
//!
//! Invariants:
//! - Field order here is the order on the wire (serde_json keeps it); `tests.rs` pins every
//!   answer of a scripted session to the byte.
//! - A secret is a field only of [`TokenCreated`], [`SecretReset`] and [`SecretRotated`], the
//!   answers of the three calls whose purpose is to hand one out; never of a view.
//! - Readers are lenient (unknown fields are ignored, absent ones take their default), so the
//!   CLI keeps working against a server that shows more.
//! - Request bodies ([`TokenRequest`], ...) are what the CLI sends; the server parses bodies
//!   itself, field by field (`admin::input`), so that a refusal names the field and duplicate
//!   keys are refused. `tests.rs` holds the two to the same field names.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// === tokens ===

/// A token as the API shows it: `GET /tokens/{id}`, each item of `GET /tokens`, the PATCH
/// answer. Never the secret or its hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub filters: Vec<TokenFilter>,
    pub indices: Vec<String>,
    pub permissions: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub ip_filter: Option<String>,
    /// The IP filter's CIDRs (`[]` without one).
    pub ip_cidrs: Vec<String>,
    pub kibana_spaces: Vec<String>,
    pub last_used_at: Option<String>,
    /// Until when the secret before the last rotation still works (`null`: it does not).
    pub previous_secret_expires_at: Option<String>,
    /// The token's own limits (the `[policies.limits]` defaults are not repeated here).
    pub limits: Limits,
    /// The scores its searches expose: `"constant"` or `"relevance"` (as chosen, else the
    /// default: constant with filters, relevance without).
    pub scores: String,
}

/// One of a token's filters, resolved: inline `{"field","value"}`, or a library filter with its
/// `id`. A library id the store no longer has (the API never leaves one) shows as
/// `{"id", "field": null, "value": null, "missing": true}`; the request path denies such a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub missing: bool,
}

/// `POST /tokens` (201): the view and, this once, the secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub token: Token,
    pub secret: String,
}

/// `POST /tokens/{id}/reset`: the new secret (the old one has stopped working).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretReset {
    pub id: String,
    pub secret: String,
}

/// `POST /tokens/{id}/rotate`: the new secret, and until when the previous one still works
/// (`null`: an overlap of `0s`, a reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRotated {
    pub id: String,
    pub secret: String,
    pub previous_secret_expires_at: Option<String>,
}

/// `GET /tokens`: one page, and how many tokens match in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenPage {
    pub tokens: Vec<Token>,
    pub total: usize,
}

/// A token's own limits; only the ones set are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_scrolls: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_pits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_running_async_searches: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_msearch_searches: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_buckets: Option<u64>,
    /// A duration such as `30s` or `1500ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_timeout: Option<String>,
}

impl Limits {
    /// The limits that are set, as `(key, value)` in the wire order.
    pub fn set(&self) -> Vec<(&'static str, String)> {
        let n = |v: Option<u64>| v.map(|n| n.to_string());
        [
            (
                "requests_per_second",
                n(self.requests_per_second.map(u64::from)),
            ),
            ("burst", n(self.burst.map(u64::from))),
            ("max_concurrent", n(self.max_concurrent.map(u64::from))),
            ("max_open_scrolls", n(self.max_open_scrolls.map(u64::from))),
            ("max_open_pits", n(self.max_open_pits.map(u64::from))),
            (
                "max_running_async_searches",
                n(self.max_running_async_searches.map(u64::from)),
            ),
            (
                "max_msearch_searches",
                n(self.max_msearch_searches.map(u64::from)),
            ),
            ("max_size", n(self.max_size)),
            ("max_buckets", n(self.max_buckets)),
            ("search_timeout", self.search_timeout.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// `POST /tokens` and `PATCH /tokens/{id}` bodies: what is `None` is left out (on PATCH:
/// unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<FilterSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_filter: Option<String>,
    /// `Some(Value::Null)` removes the token's own limits (PATCH). Kept as JSON: the server
    /// checks the keys and ranges and names the one it refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kibana_spaces: Option<Vec<String>>,
    /// `"constant"` or `"relevance"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<String>,
}

/// A filter in a token request: inline, or a library filter's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterSpec {
    Inline { field: String, value: String },
    Library(String),
}

/// `POST /tokens/{id}/rotate` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    /// `0s` to `7d` (default `1h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
}

// === the filter library ===

/// A library filter: `GET /filters/{id}`, each item of `GET /filters`, the POST and PATCH
/// answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub id: String,
    pub description: String,
    pub field: String,
    pub value: String,
    pub created_at: String,
    /// The ids of the tokens that reference it.
    pub used_by: Vec<String>,
}

/// `GET /filters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterList {
    pub filters: Vec<Filter>,
}

/// `POST /filters` and `PATCH /filters/{id}` bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

// === IP filters ===

/// A named IP filter: `GET /ip-filters/{name}`, each item of `GET /ip-filters`, the POST and
/// PATCH answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpFilter {
    pub name: String,
    pub cidrs: Vec<String>,
    pub created_at: String,
    /// The ids of the tokens that reference it.
    pub used_by: Vec<String>,
}

/// `GET /ip-filters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpFilterList {
    pub ip_filters: Vec<IpFilter>,
}

/// `POST /ip-filters` (both fields) and `PATCH /ip-filters/{name}` (`cidrs` only) bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpFilterRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub cidrs: Vec<String>,
}

// === share links ===

/// A share link: `GET /links/{id}`, each item of `GET /tokens/{id}/links`, the POST answer.
/// Its id is the whole credential of its URL (the API is behind the admin key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Link {
    pub id: String,
    pub token_id: String,
    /// `null` when no Kibana front is configured.
    pub url: Option<String>,
    pub path: String,
    /// A snapshot's fixed range; `null` for a live link.
    pub time: Option<TimeRange>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub expired: bool,
    /// The token was reset after the link was made (or deleted): the link no longer opens.
    /// It stays listed (and counts toward the token's links) until it is deleted.
    pub ended: bool,
}

/// A snapshot's time range (RFC 3339 UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub from: String,
    pub to: String,
}

/// `GET /tokens/{id}/links`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkList {
    pub links: Vec<Link>,
}

/// `POST /tokens/{id}/links` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequest {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `value` as JSON. Infallible for the types of this module (string keys, no maps with other
/// keys); `null` rather than a panic should that ever change.
pub fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
