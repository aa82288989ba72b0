//! Elasticsearch knowledge: which requests a token may make and how they are rewritten.
//!
//! Invariant: pure. Nothing in `es/` does I/O, reads the clock, or imports hyper, tokio or the
//! store. The proxy calls it in two steps:
//!
//! 1. [`plan`] classifies the request head (method, raw path, query string, content headers)
//!    for a token's [`Scope`]. Unknown routes, parameters and encodings are rejected here. The
//!    plan names the index expressions that must be resolved to concrete indices.
//! 2. [`authorize`] takes the plan, the resolution the proxy fetched from the backend and the
//!    request body, and returns a [`Permit`]: the exact request to send upstream (canonical
//!    path, allow-listed parameters, re-serialised body with the token's filters injected).
//!    Only this function creates a `Permit`.
//!
//! Everything esgate cannot prove safe is a [`Rejection`] (403 unless the input is malformed).

pub mod body;
pub mod endpoint;
pub mod error;
pub mod index;
pub mod msearch;
pub mod params;
pub mod rewrite;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// A token's mandatory filters: field → accepted values. Same field = any of the values;
/// different fields = all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterSet {
    by_field: BTreeMap<String, BTreeSet<String>>,
}

impl FilterSet {
    pub fn new<I: IntoIterator<Item = (String, String)>>(pairs: I) -> FilterSet {
        let mut by_field: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (field, value) in pairs {
            by_field.entry(field).or_default().insert(value);
        }
        FilterSet { by_field }
    }

    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.by_field.keys().map(String::as_str)
    }

    /// The filter clauses, one per field: `term` for one value, `terms` for several.
    /// These go into `bool.filter` at every place a query runs.
    pub fn clauses(&self) -> Vec<Value> {
        self.by_field
            .iter()
            .map(|(field, values)| {
                if values.len() == 1 {
                    let v = values.iter().next().expect("one value");
                    json!({ "term": { field: { "value": v } } })
                } else {
                    json!({ "terms": { field: values.iter().collect::<Vec<_>>() } })
                }
            })
            .collect()
    }
}

/// What a token may reach: its filters and its allowed index patterns.
#[derive(Clone, Debug)]
pub struct Scope {
    pub filters: FilterSet,
    /// Allowed index patterns (`*` wildcards). Never empty.
    pub indices: Vec<String>,
}

/// The parts of a request head that decisions depend on. `path` is the raw request path as
/// received (percent-encoded, without the query string).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
}

/// How a rejection is answered. The proxy's error module maps these to HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    /// 403: not allowed for this token, or not provably safe.
    Forbidden,
    /// 400: malformed input.
    BadRequest,
    /// 413: a body over the cap (also after decompression).
    TooLarge,
    /// 415: a content type or encoding esgate does not parse.
    UnsupportedMediaType,
    /// 405: a method the route does not take.
    MethodNotAllowed,
}

/// A request esgate refuses. `reason` is for the client: it never echoes request content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub kind: RejectKind,
    pub reason: String,
}

impl Rejection {
    pub fn forbidden(reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectKind::Forbidden,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectKind::BadRequest,
            reason: reason.into(),
        }
    }
}

/// Concrete indices behind each index expression element, as the backend resolved them.
/// Filled by the proxy (through `upstream::resolve`) for the names a [`Plan`] asks for.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    /// Expression element (as in [`Plan::to_resolve`]) → concrete index names.
    /// An element the backend does not know maps to an empty list.
    pub concrete: BTreeMap<String, Vec<String>>,
}

/// The HTTP method of a permitted upstream request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// The body to send upstream, built by esgate (never the client's bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardBody {
    pub bytes: Vec<u8>,
    /// `application/json` or `application/x-ndjson`.
    pub content_type: &'static str,
}

/// Proof that a request was checked: the exact request to send upstream.
/// Only [`authorize`] creates one.
#[derive(Clone, Debug)]
pub struct Permit {
    pub action: &'static str,
    pub method: Method,
    /// Canonical, percent-encoded path.
    pub path: String,
    /// Allow-listed query parameters, decoded (the proxy re-encodes them).
    pub query: Vec<(String, String)>,
    pub body: Option<ForwardBody>,
    /// Indices the request reaches (for the audit log).
    pub indices: Vec<String>,
    _sealed: (),
}

/// The outcome of [`plan`]: what the request is and what the proxy must fetch before
/// [`authorize`] can decide.
#[derive(Clone, Debug)]
pub struct Plan {
    pub action: &'static str,
    /// Index expression elements to resolve to concrete indices (empty when none).
    pub to_resolve: Vec<String>,
    pub(crate) route: endpoint::Route,
}

impl Plan {
    /// Whether the proxy must read the request body (capped) and pass it to `prepare`.
    pub fn needs_body(&self) -> bool {
        match self.route {}
    }
}

/// A plan with its body parsed and checked: what remains is index resolution.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub action: &'static str,
    pub(crate) route: endpoint::Route,
}

impl Prepared {
    /// Index expressions to resolve through the backend before [`authorize`].
    pub fn to_resolve(&self) -> &[String] {
        match self.route {}
    }
}

/// Step 2: parse and check the body. See the module docs.
pub fn prepare(
    plan: Plan,
    _body: Option<&[u8]>,
    _head: &RequestHead<'_>,
    _scope: &Scope,
) -> Result<Prepared, Rejection> {
    match plan.route {}
}

/// Step 1: classify the request head. See the module docs.
pub fn plan(head: &RequestHead<'_>, scope: &Scope) -> Result<Plan, Rejection> {
    endpoint::plan(head, scope)
}

/// Step 3: decide and rewrite. See the module docs.
pub fn authorize(
    prepared: Prepared,
    _resolution: &Resolution,
    _scope: &Scope,
) -> Result<Permit, Rejection> {
    match prepared.route {}
}

impl Permit {
    pub(crate) fn new(
        action: &'static str,
        method: Method,
        path: String,
        query: Vec<(String, String)>,
        body: Option<ForwardBody>,
        indices: Vec<String>,
    ) -> Permit {
        Permit {
            action,
            method,
            path,
            query,
            body,
            indices,
            _sealed: (),
        }
    }
}
