//! The `esgate token|filter|ip-filter` commands: a small client of the admin API.
//!
//! Each command maps its flags to one admin API call ([`ApiCall`], pure and unit-tested; the
//! request bodies are `admin::api`'s request types), sends it to the admin API with
//! `Authorization: Bearer <admin key>` (both found as [`ClientOpts::found`] says: the
//! environment, then the server's config file, then the generated key file), and renders the
//! answer: read as its `admin::api` type (the one the server writes), then shown through its
//! [`Text`] impl as an aligned table for lists or `key: value` lines for one item; or the API's
//! JSON as it came with `--json`, one flag of each command group ([`Group`]). A non-2xx answer
//! becomes a [`CliError`] carrying the API's reason; the caller prints it to stderr and exits 1.
//!
//! Invariant: the admin key is never printed (its `Debug` is redacted, the request header is
//! marked sensitive, and error messages name only the host and port of the URL). A token secret
//! is printed only for `token create`, `token reset` and `token rotate`, whose whole purpose is to show it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::admin::api::{
    self, FilterRequest, FilterSpec, IpFilterRequest, LinkRequest, RotateRequest, TimeRange,
    TokenRequest,
};

/// Where the admin API is and how to authenticate to it.
#[derive(Clone, Debug)]
pub struct ClientOpts {
    /// Base URL, e.g. `http://127.0.0.1:9202`.
    pub url: String,
    pub admin_key: Option<AdminKey>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Where `url` came from (`ESGATE_ADMIN_URL`, a config file's `listen.admin`, the
    /// default), for error messages.
    pub url_from: String,
    /// Where `admin_key` came from, or what was looked at when there is none, for error
    /// messages: names of variables and files, never the key.
    pub key_from: String,
}

/// The admin API key. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKey(String);

impl AdminKey {
    pub fn new(key: String) -> AdminKey {
        AdminKey(key)
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9202";

/// The generated key file the client reads without a config file: `./data/admin.key`, where
/// `serve` with its defaults writes it.
pub fn default_key_file() -> PathBuf {
    Path::new(crate::config::DEFAULT_STORE_PATH).join(crate::app::ADMIN_KEY_FILE)
}

impl ClientOpts {
    /// From the values of `ESGATE_ADMIN_URL` and `ESGATE_ADMIN_KEY` (unset or empty: the
    /// default URL, no key), with a 30 s timeout. For callers that own environment access.
    pub fn new(url: Option<String>, admin_key: Option<String>) -> ClientOpts {
        ClientOpts::found(Found {
            url_env: url,
            key_env: admin_key,
            ..Found::default()
        })
    }

    /// Picks the URL and the key from what was found, most specific first:
    /// - the URL: `ESGATE_ADMIN_URL`, else the config file's `listen.admin` (`http://`, an
    ///   unspecified address as loopback), else [`DEFAULT_ADMIN_URL`];
    /// - the key: `ESGATE_ADMIN_KEY`, else the config file's (`admin.key`, `admin.key_env`),
    ///   else the file `ESGATE_ADMIN_KEY_FILE` names, else the key `serve` generated (in the
    ///   config's `store.path`, without a config `./data`).
    ///
    /// Empty values count as unset. Pure: the caller reads the environment, the config file
    /// and the key files (into `Found`).
    pub fn found(found: Found) -> ClientOpts {
        let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
        let config = found.config.as_ref();
        let (url, url_from) = match (nonempty(found.url_env), config) {
            (Some(url), _) => (url, "ESGATE_ADMIN_URL".to_owned()),
            (None, Some(c)) => (
                format!("http://{}", reachable(c.settings.admin_listen)),
                format!("listen.admin of {}", c.path.display()),
            ),
            (None, None) => (
                DEFAULT_ADMIN_URL.to_owned(),
                "the default; set ESGATE_ADMIN_URL or --config".to_owned(),
            ),
        };
        let generated = match config {
            Some(c) => c.settings.generated_key_file.clone(),
            None => Some(default_key_file()),
        };
        let (key, key_from) = if let Some(key) = nonempty(found.key_env) {
            (Some(key), "from ESGATE_ADMIN_KEY".to_owned())
        } else if let Some(c) = config.filter(|c| c.settings.admin_key.is_some()) {
            (
                c.settings.admin_key.as_ref().map(|k| k.expose().to_owned()),
                format!("from [admin] of {}", c.path.display()),
            )
        } else if let Some(file) = found.key_file_env {
            let key = found.key_file_text.and_then(key_in_file);
            let from = if key.is_some() {
                format!("from ESGATE_ADMIN_KEY_FILE ({})", file.display())
            } else {
                format!(
                    "ESGATE_ADMIN_KEY is not set and ESGATE_ADMIN_KEY_FILE names {}, which holds no key",
                    file.display()
                )
            };
            (key, from)
        } else {
            let key = found.key_file_text.and_then(key_in_file);
            let file = generated.map_or_else(String::new, |f| f.display().to_string());
            let from = match (&key, config) {
                (Some(_), _) => format!("the generated one, from {file}"),
                (None, Some(c)) if file.is_empty() => format!(
                    "ESGATE_ADMIN_KEY is not set and {} configures none",
                    c.path.display()
                ),
                (None, Some(c)) => format!(
                    "ESGATE_ADMIN_KEY is not set, {} configures none, and there is no generated key in {file} or ESGATE_ADMIN_KEY_FILE",
                    c.path.display()
                ),
                (None, None) => format!(
                    "ESGATE_ADMIN_KEY is not set, and there is no generated key in {file} or ESGATE_ADMIN_KEY_FILE"
                ),
            };
            (key, from)
        };
        ClientOpts {
            url,
            admin_key: key.map(AdminKey),
            timeout: Duration::from_secs(30),
            url_from,
            key_from,
        }
    }

    /// The key file [`ClientOpts::found`] reads when neither the environment nor the config
    /// file holds a key: `ESGATE_ADMIN_KEY_FILE`'s, else the generated one (`None`: the cluster
    /// store, which generates none). The caller reads it into [`Found::key_file_text`].
    pub fn key_file(key_file_env: Option<&Path>, config: Option<&ConfigFile>) -> Option<PathBuf> {
        match (key_file_env, config) {
            (Some(file), _) => Some(file.to_owned()),
            (None, Some(c)) => c.settings.generated_key_file.clone(),
            (None, None) => Some(default_key_file()),
        }
    }
}

/// What the client commands found to reach the admin API (see [`ClientOpts::found`]).
#[derive(Debug, Default)]
pub struct Found {
    /// `ESGATE_ADMIN_URL`.
    pub url_env: Option<String>,
    /// `ESGATE_ADMIN_KEY`.
    pub key_env: Option<String>,
    /// `ESGATE_ADMIN_KEY_FILE`.
    pub key_file_env: Option<PathBuf>,
    /// The text of the key file [`ClientOpts::key_file`] names, when it could be read.
    pub key_file_text: Option<String>,
    /// The config file read (`--config`, or `config/esgate.toml` when it exists).
    pub config: Option<ConfigFile>,
}

/// A config file and what the client takes from it.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub settings: crate::config::AdminClientSettings,
}

/// The key in a key file's text: trimmed, not empty.
fn key_in_file(text: String) -> Option<String> {
    Some(text.trim().to_owned()).filter(|k| !k.is_empty())
}

/// Where a client reaches a listener bound to `addr`: an unspecified address (`0.0.0.0`,
/// `::`) is every local one, so loopback of its family.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags (caught before any request).
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the admin API at {endpoint} (from {from}; is `esgate serve` running there?): {reason}")]
    Transport {
        endpoint: String,
        /// Where the URL came from (`ClientOpts::url_from`).
        from: String,
        reason: String,
    },
    /// A non-2xx answer, with the API's reason.
    #[error("{reason} (HTTP {status})")]
    Api { status: u16, reason: String },
    #[error("unexpected answer from the admin API: {0}")]
    BadResponse(String),
}

// === commands ===

/// The client command groups, ready to `#[command(flatten)]` into the binary's commands:
/// `esgate token ...`, `esgate filter ...`, `esgate ip-filter ...`, `esgate link ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCmd {
    /// Manage API tokens through the admin API.
    Token(Group<TokenCmd>),
    /// Manage the filter library through the admin API.
    Filter(Group<FilterCmd>),
    /// Manage named IP filters through the admin API.
    #[command(name = "ip-filter")]
    IpFilter(Group<IpFilterCmd>),
    /// Manage share links (a Kibana path opened as a token, no account needed).
    Link(Group<LinkCmd>),
}

// A command group and the output flag all of its commands share: `--json` is declared once,
// `global`, so it is accepted before or after the subcommand (`esgate token list --json`,
// `esgate token --json list`). No doc comment: clap would take it as the group's about text.
#[derive(Debug, Clone, Args)]
pub struct Group<C: Subcommand> {
    #[command(subcommand)]
    pub command: C,
    /// Print the admin API's JSON answer instead of text (for scripts).
    // Commands that get no answer body (delete) print their message either way.
    #[arg(long, global = true)]
    pub json: bool,
    /// The server's config file, for the admin API's address (listen.admin) and key (admin.key or admin.key_env);
    /// default: config/esgate.toml when it exists. ESGATE_ADMIN_URL and ESGATE_ADMIN_KEY win.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl<C: Subcommand> Group<C> {
    /// `command` with text output.
    pub fn text(command: C) -> Group<C> {
        Group {
            command,
            json: false,
            config: None,
        }
    }
}

impl ClientCmd {
    /// The `--config` given to the command's group.
    pub fn config(&self) -> Option<&Path> {
        match self {
            ClientCmd::Token(g) => g.config.as_deref(),
            ClientCmd::Filter(g) => g.config.as_deref(),
            ClientCmd::IpFilter(g) => g.config.as_deref(),
            ClientCmd::Link(g) => g.config.as_deref(),
        }
    }
}

/// Runs any client command; returns the text to print on stdout. On `Err`, print the error
/// to stderr and exit 1.
pub async fn run(cmd: ClientCmd, opts: &ClientOpts) -> Result<String, CliError> {
    execute(opts, client_call(cmd)?).await
}

/// The admin API call a command makes, with `--json` applied.
pub fn client_call(cmd: ClientCmd) -> Result<ApiCall, CliError> {
    let (call, json) = match cmd {
        ClientCmd::Token(g) => (token_call(g.command)?, g.json),
        ClientCmd::Filter(g) => (filter_call(g.command)?, g.json),
        ClientCmd::IpFilter(g) => (ip_filter_call(g.command)?, g.json),
        ClientCmd::Link(g) => (link_call(g.command)?, g.json),
    };
    Ok(if json { call.as_json() } else { call })
}

/// `esgate token ...`
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print its secret (shown only this once).
    Create(TokenCreateArgs),
    /// List tokens (expired ones stay listed for 5 minutes).
    List {
        /// Only tokens whose name contains this (case-insensitive).
        #[arg(long)]
        name: Option<String>,
        /// Skip this many tokens (paging; with --size).
        #[arg(long)]
        from: Option<usize>,
        /// Page size (default 100, at most 10000).
        #[arg(long)]
        size: Option<usize>,
    },
    /// Show one token.
    Show {
        /// The token id (`tok_…`), as `token list` shows it.
        id: String,
    },
    /// Change a token. Expiry can only be shortened; an IP filter can only be set where none is.
    Update(TokenUpdateArgs),
    /// Replace a token's secret; the old one stops working at once.
    Reset {
        /// The token id (`tok_…`), as `token list` shows it.
        id: String,
    },
    /// Replace a token's secret, keeping the old one working for an overlap (re-key clients
    /// without downtime). Rotating again ends an earlier overlap at once; `0s` is a reset.
    Rotate {
        /// The token id (`tok_…`), as `token list` shows it.
        id: String,
        /// How long the old secret keeps working: 0s to 7d (default 1h).
        #[arg(long, value_name = "DURATION")]
        overlap: Option<String>,
    },
    /// Delete a token; its secret stops working at once.
    Delete {
        /// The token id (`tok_…`), as `token list` shows it.
        id: String,
    },
    /// Show what esgate would do with a request for this token (allow or deny, and exactly what
    /// the backend would receive), without sending it: only index resolution reaches the
    /// cluster. Prints the admin API's JSON answer.
    Explain {
        /// The token id (`tok_…`), as `token list` shows it.
        id: String,
        /// The request's method (GET, POST...).
        method: String,
        /// The request's path and query, as a client sends it (`/logs-*/_search?size=5`).
        path: String,
        /// The request body: JSON (sent as `application/json` unless --content-type says
        /// otherwise) or any other text (NDJSON for `_msearch`, with --content-type).
        body: Option<String>,
        /// The request's Content-Type.
        #[arg(long = "content-type", value_name = "TYPE")]
        content_type: Option<String>,
        /// The client address to check the token's IP filter with (without it the IP filter
        /// is not checked, and the answer says so).
        #[arg(long = "client-ip", value_name = "IP")]
        client_ip: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TokenCreateArgs {
    /// A name for people (unique is wise; shown in lists and the audit log).
    #[arg(long)]
    pub name: String,
    /// An inline filter `field=value` (repeatable; same field = any of, different fields = all of).
    #[arg(long = "filter", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
    /// A filter from the library, by id (repeatable).
    #[arg(long = "filter-id", value_name = "ID")]
    pub filter_ids: Vec<String>,
    /// An index name or pattern (repeatable; default every non-hidden index).
    #[arg(long = "index", value_name = "PATTERN")]
    pub indices: Vec<String>,
    /// `read` (default) or `all` (repeatable).
    #[arg(long = "permission", value_name = "PERMISSION")]
    pub permissions: Vec<String>,
    /// Lifetime: 90s, 15m, 24h, 7d.
    #[arg(long, conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// Expiry as RFC 3339 UTC, e.g. 2026-01-31T12:00:00Z.
    #[arg(long)]
    pub expires_at: Option<String>,
    /// Name of an IP filter.
    #[arg(long)]
    pub ip_filter: Option<String>,
    /// A limit `key=value` (repeatable): requests_per_second, burst, max_concurrent,
    /// max_open_scrolls, max_open_pits, max_running_async_searches, max_msearch_searches,
    /// max_size, max_buckets (integers), search_timeout (e.g. 30s). Unset ones use the `[policies.limits]` defaults.
    #[arg(long = "limit", value_name = "KEY=VALUE")]
    pub limits: Vec<String>,
    /// A Kibana space whose saved objects the token may read (repeatable; default `default`).
    #[arg(long = "kibana-space", value_name = "SPACE")]
    pub kibana_spaces: Vec<String>,
    /// The scores its searches expose: `constant` (default with filters: no score counts other
    /// tenants' documents) or `relevance` (the documented residual).
    #[arg(long, value_name = "SCORES", value_parser = ["constant", "relevance"])]
    pub scores: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct TokenUpdateArgs {
    /// The token id (`tok_…`), as `token list` shows it.
    pub id: String,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    /// Replaces all filters (with any --filter-id given too).
    #[arg(long = "filter", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
    /// A filter from the library, by id (repeatable; replaces all filters, with any --filter given too).
    #[arg(long = "filter-id", value_name = "ID")]
    pub filter_ids: Vec<String>,
    /// Remove every filter.
    #[arg(long, conflicts_with_all = ["filters", "filter_ids"])]
    pub clear_filters: bool,
    /// Replaces all index patterns.
    #[arg(long = "index", value_name = "PATTERN")]
    pub indices: Vec<String>,
    /// Replaces the permissions.
    #[arg(long = "permission", value_name = "PERMISSION")]
    pub permissions: Vec<String>,
    /// A new lifetime from now (90s, 15m, 24h, 7d); it may only shorten the expiry.
    #[arg(long, conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// A new expiry as RFC 3339 UTC; it may only shorten the expiry.
    #[arg(long)]
    pub expires_at: Option<String>,
    /// Name of an IP filter to set (only where the token has none; it cannot be removed).
    #[arg(long)]
    pub ip_filter: Option<String>,
    /// Replaces all the token's limits with these `key=value` ones (repeatable; see
    /// `token create --limit`).
    #[arg(long = "limit", value_name = "KEY=VALUE")]
    pub limits: Vec<String>,
    /// Remove the token's own limits (the `[policies.limits]` defaults apply).
    #[arg(long, conflicts_with = "limits")]
    pub clear_limits: bool,
    /// Replaces the Kibana spaces (repeatable).
    #[arg(long = "kibana-space", value_name = "SPACE")]
    pub kibana_spaces: Vec<String>,
    /// The scores its searches expose: `constant` or `relevance`.
    #[arg(long, value_name = "SCORES", value_parser = ["constant", "relevance"])]
    pub scores: Option<String>,
}

/// `esgate filter ...` (the filter library).
#[derive(Debug, Clone, Subcommand)]
pub enum FilterCmd {
    /// Add a filter to the library.
    Create {
        /// The document field the filter matches exactly (e.g. `tenant`).
        #[arg(long)]
        field: String,
        /// The value the field must have (e.g. `acme`).
        #[arg(long)]
        value: String,
        /// What the filter is for, shown in lists.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the library's filters and how many tokens use each.
    List,
    /// Show one filter.
    Show {
        /// The filter id (`flt_…`), as `filter list` shows it.
        id: String,
    },
    /// Change a filter; every token using it is affected at once.
    Update {
        /// The filter id (`flt_…`), as `filter list` shows it.
        id: String,
        /// A new field (every token using the filter changes at once).
        #[arg(long)]
        field: Option<String>,
        /// A new value (every token using the filter changes at once).
        #[arg(long)]
        value: Option<String>,
        /// What the filter is for, shown in lists.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a filter (refused while tokens use it, unless --detach).
    Delete {
        /// The filter id (`flt_…`), as `filter list` shows it.
        id: String,
        /// Also remove it from the tokens that use it (they then see more).
        #[arg(long)]
        detach: bool,
    },
}

/// `esgate ip-filter ...`
#[derive(Debug, Clone, Subcommand)]
pub enum IpFilterCmd {
    /// Create a named IP filter.
    Create {
        /// The IP filter's name.
        #[arg(long)]
        name: String,
        /// A CIDR or address (repeatable, at least one).
        #[arg(long = "cidr", value_name = "CIDR", required = true)]
        cidrs: Vec<String>,
    },
    /// List the named IP filters.
    List,
    /// Show one IP filter.
    Show {
        /// The IP filter's name.
        name: String,
    },
    /// Replace the CIDRs (every token using the filter is affected at once).
    Update {
        /// The IP filter's name.
        name: String,
        /// A CIDR or address (repeatable, at least one).
        #[arg(long = "cidr", value_name = "CIDR", required = true)]
        cidrs: Vec<String>,
    },
    /// Delete an IP filter (refused while tokens use it).
    Delete {
        /// The IP filter's name.
        name: String,
    },
}

/// `esgate link ...` (share links: see docs/admin-api.md, "Share links").
#[derive(Debug, Clone, Subcommand)]
pub enum LinkCmd {
    /// Create a share link for a token and print its URL.
    Create {
        /// The token id (`tok_…`); a read token.
        #[arg(long)]
        token: String,
        /// The Kibana path, e.g. `/app/dashboards#/view/<dashboard id>` (or `/s/<space>/app/...`).
        #[arg(long)]
        path: String,
        /// Snapshot start (RFC 3339 UTC); with --to. Without both the link is live.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Snapshot end (RFC 3339 UTC); with --from.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Lifetime: 90s, 15m, 24h, 7d (never past the token's expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List a token's share links.
    List {
        /// The token id (`tok_…`).
        #[arg(long)]
        token: String,
    },
    /// Delete a share link; it stops working at once.
    Delete {
        /// The link id (`lnk_…`).
        id: String,
    },
}

// === argument → request mapping ===

/// One admin API call and how to show its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: &'static str,
    /// Path and query, percent-encoded.
    pub path: String,
    pub body: Option<Value>,
    pub render: Render,
}

impl ApiCall {
    /// The same call, showing the API's JSON (`--json`); a call whose answer has no body keeps
    /// its message.
    pub fn as_json(self) -> ApiCall {
        match self.render {
            Render::Message(_) => self,
            _ => ApiCall {
                render: Render::Json,
                ..self
            },
        }
    }
}

/// How an answer is shown; each shape's text is its [`Text`] impl.
#[derive(Debug, Clone, PartialEq)]
pub enum Render {
    /// The API's JSON, pretty-printed.
    Json,
    TokenList,
    Token,
    TokenCreated,
    TokenReset,
    TokenRotated,
    FilterList,
    Filter,
    IpFilterList,
    IpFilter,
    LinkList,
    Link,
    /// A fixed message (204 answers).
    Message(String),
}

/// Where one resource lives in the admin API and how its answers are shown: the create, list,
/// show, update and delete calls of tokens, filters, IP filters and links are built here once.
struct Resource {
    /// The collection, e.g. `/tokens`.
    path: &'static str,
    /// How a deletion's message names it.
    noun: &'static str,
    one: Render,
    many: Render,
}

const TOKENS: Resource = Resource {
    path: "/tokens",
    noun: "token",
    one: Render::Token,
    many: Render::TokenList,
};
const FILTERS: Resource = Resource {
    path: "/filters",
    noun: "filter",
    one: Render::Filter,
    many: Render::FilterList,
};
const IP_FILTERS: Resource = Resource {
    path: "/ip-filters",
    noun: "IP filter",
    one: Render::IpFilter,
    many: Render::IpFilterList,
};
const LINKS: Resource = Resource {
    path: "/links",
    noun: "link",
    one: Render::Link,
    many: Render::LinkList,
};

impl Resource {
    fn item(&self, key: &str) -> String {
        format!("{}/{}", self.path, seg(key))
    }

    fn create(&self, body: &impl Serialize) -> Result<ApiCall, CliError> {
        Ok(ApiCall {
            method: "POST",
            path: self.path.to_owned(),
            body: Some(to_body(body)?),
            render: self.one.clone(),
        })
    }

    /// `query`: already encoded `key=value` pairs.
    fn list(&self, query: &[String]) -> ApiCall {
        let path = if query.is_empty() {
            self.path.to_owned()
        } else {
            format!("{}?{}", self.path, query.join("&"))
        };
        ApiCall {
            method: "GET",
            path,
            body: None,
            render: self.many.clone(),
        }
    }

    fn show(&self, key: &str) -> ApiCall {
        ApiCall {
            method: "GET",
            path: self.item(key),
            body: None,
            render: self.one.clone(),
        }
    }

    fn update(&self, key: &str, body: &impl Serialize) -> Result<ApiCall, CliError> {
        Ok(ApiCall {
            method: "PATCH",
            path: self.item(key),
            body: Some(to_body(body)?),
            render: self.one.clone(),
        })
    }

    /// `query`: an already encoded query string, or empty.
    fn delete(&self, key: &str, query: &str) -> ApiCall {
        let path = self.item(key);
        ApiCall {
            method: "DELETE",
            path: if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            },
            body: None,
            render: Render::Message(format!("deleted {} {key}", self.noun)),
        }
    }
}

fn to_body(body: &impl Serialize) -> Result<Value, CliError> {
    serde_json::to_value(body).map_err(|e| CliError::Usage(e.to_string()))
}

/// Path segments: everything but `[A-Za-z0-9_-]` is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `field=value` → an inline filter (split at the first `=`).
fn parse_filter_arg(arg: &str) -> Result<FilterSpec, CliError> {
    match arg.split_once('=') {
        Some((f, v)) if !f.is_empty() && !v.is_empty() => Ok(FilterSpec::Inline {
            field: f.to_owned(),
            value: v.to_owned(),
        }),
        _ => Err(CliError::Usage(
            "--filter takes FIELD=VALUE (both non-empty)".to_owned(),
        )),
    }
}

/// `--filter` and `--filter-id` flags as the request's `filters` (`None` when neither is given).
fn filter_specs(inline: &[String], ids: &[String]) -> Result<Option<Vec<FilterSpec>>, CliError> {
    let mut out = inline
        .iter()
        .map(|f| parse_filter_arg(f))
        .collect::<Result<Vec<_>, _>>()?;
    out.extend(ids.iter().cloned().map(FilterSpec::Library));
    Ok(non_empty(out))
}

/// A repeatable flag's values, `None` when it was not given.
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The create body for `token create`.
pub fn token_create_body(a: &TokenCreateArgs) -> Result<TokenRequest, CliError> {
    Ok(TokenRequest {
        name: Some(a.name.clone()),
        filters: filter_specs(&a.filters, &a.filter_ids)?,
        indices: non_empty(a.indices.clone()),
        permissions: non_empty(a.permissions.clone()),
        expires_in: a.expires_in.clone(),
        expires_at: a.expires_at.clone(),
        ip_filter: a.ip_filter.clone(),
        limits: non_empty(a.limits.clone())
            .map(|l| limits_json(&l))
            .transpose()?,
        kibana_spaces: non_empty(a.kibana_spaces.clone()),
        scores: a.scores.clone(),
    })
}

/// `--limit key=value` flags as the API's `limits` object: numbers for the counts, the
/// duration text for `search_timeout` (the API checks keys and ranges).
fn limits_json(pairs: &[String]) -> Result<Value, CliError> {
    let mut out = Map::new();
    for pair in pairs {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "--limit {pair}: expected KEY=VALUE, e.g. max_size=1000"
            ))
        })?;
        let value = if k == "search_timeout" {
            Value::String(v.to_owned())
        } else {
            let n: u64 = v.parse().map_err(|_| {
                CliError::Usage(format!("--limit {k}: the value must be a whole number"))
            })?;
            Value::from(n)
        };
        if out.insert(k.to_owned(), value).is_some() {
            return Err(CliError::Usage(format!("--limit {k} is given twice")));
        }
    }
    Ok(Value::Object(out))
}

/// The PATCH body for `token update`; at least one change is required.
pub fn token_update_body(a: &TokenUpdateArgs) -> Result<TokenRequest, CliError> {
    let body = TokenRequest {
        name: a.name.clone(),
        filters: if a.clear_filters {
            Some(vec![])
        } else {
            filter_specs(&a.filters, &a.filter_ids)?
        },
        indices: non_empty(a.indices.clone()),
        permissions: non_empty(a.permissions.clone()),
        expires_in: a.expires_in.clone(),
        expires_at: a.expires_at.clone(),
        ip_filter: a.ip_filter.clone(),
        limits: if a.clear_limits {
            Some(Value::Null)
        } else {
            non_empty(a.limits.clone())
                .map(|l| limits_json(&l))
                .transpose()?
        },
        kibana_spaces: non_empty(a.kibana_spaces.clone()),
        scores: a.scores.clone(),
    };
    if body == TokenRequest::default() {
        return Err(CliError::Usage(
            "nothing to change: give at least one of --name, --filter, --filter-id, \
             --clear-filters, --index, --permission, --expires-in, --expires-at, --ip-filter, \
             --limit, --clear-limits, --kibana-space, --scores"
                .to_owned(),
        ));
    }
    Ok(body)
}

pub fn token_call(cmd: TokenCmd) -> Result<ApiCall, CliError> {
    Ok(match cmd {
        TokenCmd::Create(a) => ApiCall {
            render: Render::TokenCreated,
            ..TOKENS.create(&token_create_body(&a)?)?
        },
        TokenCmd::List { name, from, size } => {
            let mut q = Vec::new();
            if let Some(n) = name {
                q.push(format!("name={}", seg(&n)));
            }
            if let Some(f) = from {
                q.push(format!("from={f}"));
            }
            if let Some(s) = size {
                q.push(format!("size={s}"));
            }
            TOKENS.list(&q)
        }
        TokenCmd::Show { id } => TOKENS.show(&id),
        TokenCmd::Update(a) => TOKENS.update(&a.id, &token_update_body(&a)?)?,
        TokenCmd::Reset { id } => ApiCall {
            method: "POST",
            path: format!("{}/reset", TOKENS.item(&id)),
            body: None,
            render: Render::TokenReset,
        },
        TokenCmd::Rotate { id, overlap } => ApiCall {
            method: "POST",
            path: format!("{}/rotate", TOKENS.item(&id)),
            body: overlap
                .map(|o| to_body(&RotateRequest { overlap: Some(o) }))
                .transpose()?,
            render: Render::TokenRotated,
        },
        TokenCmd::Delete { id } => TOKENS.delete(&id, ""),
        TokenCmd::Explain {
            id,
            method,
            path,
            body,
            content_type,
            client_ip,
        } => {
            let mut request =
                json!({"token": id, "method": method.to_ascii_uppercase(), "path": path});
            if let Some(b) = body {
                // JSON is sent as JSON; anything else (NDJSON, query text) as text, which
                // needs its --content-type: without one, the explained request would only be
                // refused for lacking a Content-Type, which hides the typo in the JSON.
                request["body"] = match (serde_json::from_str::<Value>(&b), &content_type) {
                    (Ok(json), _) => json,
                    (Err(_), Some(_)) => Value::String(b),
                    (Err(e), None) => {
                        return Err(CliError::Usage(format!(
                            "the body is not valid JSON ({e}); for NDJSON or other text give --content-type (e.g. application/x-ndjson)"
                        )))
                    }
                };
            }
            if let Some(ct) = content_type {
                request["headers"] = json!({"content-type": ct});
            }
            if let Some(ip) = client_ip {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(CliError::Usage(
                        "--client-ip must be an IP address, e.g. 10.0.0.7 or 2001:db8::7".into(),
                    ));
                }
                request["client_ip"] = Value::String(ip);
            }
            ApiCall {
                method: "POST",
                path: "/explain".into(),
                body: Some(request),
                render: Render::Json,
            }
        }
    })
}

pub fn filter_call(cmd: FilterCmd) -> Result<ApiCall, CliError> {
    Ok(match cmd {
        FilterCmd::Create {
            field,
            value,
            description,
        } => FILTERS.create(&FilterRequest {
            field: Some(field),
            value: Some(value),
            description,
        })?,
        FilterCmd::List => FILTERS.list(&[]),
        FilterCmd::Show { id } => FILTERS.show(&id),
        FilterCmd::Update {
            id,
            field,
            value,
            description,
        } => {
            let body = FilterRequest {
                field,
                value,
                description,
            };
            if body == FilterRequest::default() {
                return Err(CliError::Usage(
                    "nothing to change: give at least one of --field, --value, --description"
                        .to_owned(),
                ));
            }
            FILTERS.update(&id, &body)?
        }
        FilterCmd::Delete { id, detach } => {
            FILTERS.delete(&id, if detach { "detach=true" } else { "" })
        }
    })
}

pub fn ip_filter_call(cmd: IpFilterCmd) -> Result<ApiCall, CliError> {
    Ok(match cmd {
        IpFilterCmd::Create { name, cidrs } => IP_FILTERS.create(&IpFilterRequest {
            name: Some(name),
            cidrs,
        })?,
        IpFilterCmd::List => IP_FILTERS.list(&[]),
        IpFilterCmd::Show { name } => IP_FILTERS.show(&name),
        IpFilterCmd::Update { name, cidrs } => {
            IP_FILTERS.update(&name, &IpFilterRequest { name: None, cidrs })?
        }
        IpFilterCmd::Delete { name } => IP_FILTERS.delete(&name, ""),
    })
}

pub fn link_call(cmd: LinkCmd) -> Result<ApiCall, CliError> {
    Ok(match cmd {
        LinkCmd::Create {
            token,
            path,
            from,
            to,
            expires_in,
        } => {
            let body = LinkRequest {
                path,
                time: from.zip(to).map(|(from, to)| TimeRange { from, to }),
                expires_in,
                expires_at: None,
            };
            ApiCall {
                path: format!("{}/links", TOKENS.item(&token)),
                ..LINKS.create(&body)?
            }
        }
        LinkCmd::List { token } => ApiCall {
            path: format!("{}/links", TOKENS.item(&token)),
            ..LINKS.list(&[])
        },
        LinkCmd::Delete { id } => LINKS.delete(&id, ""),
    })
}

// === rendering ===

/// Renders a successful answer: the API's JSON as it came, or its shape's [`Text`].
pub fn render(how: &Render, body: Option<&Value>) -> Result<String, CliError> {
    match how {
        Render::Message(m) => Ok(m.clone()),
        Render::Json => match body {
            Some(v) => {
                serde_json::to_string_pretty(v).map_err(|e| CliError::BadResponse(e.to_string()))
            }
            None => Ok(String::new()),
        },
        Render::TokenList => shown::<api::TokenPage>(body),
        Render::Token => shown::<api::Token>(body),
        Render::TokenCreated => shown::<api::TokenCreated>(body),
        Render::TokenReset => shown::<api::SecretReset>(body),
        Render::TokenRotated => shown::<api::SecretRotated>(body),
        Render::FilterList => shown::<api::FilterList>(body),
        Render::Filter => shown::<api::Filter>(body),
        Render::IpFilterList => shown::<api::IpFilterList>(body),
        Render::IpFilter => shown::<api::IpFilter>(body),
        Render::LinkList => shown::<api::LinkList>(body),
        Render::Link => shown::<api::Link>(body),
    }
}

/// How one answer shape is shown to people.
pub trait Text: DeserializeOwned {
    fn text(&self) -> String;
}

/// One item of a list, as a table row.
trait Row {
    const HEADERS: &'static [&'static str];
    fn row(&self) -> Vec<String>;
}

/// Reads an answer as `T` (a shape that does not fit is a [`CliError::BadResponse`]) and
/// shows it.
fn shown<T: Text>(body: Option<&Value>) -> Result<String, CliError> {
    let v = body.ok_or_else(|| CliError::BadResponse("empty body".into()))?;
    let answer = T::deserialize(v).map_err(|e| CliError::BadResponse(e.to_string()))?;
    Ok(answer.text())
}

/// A list as an aligned table, or `none` when empty.
fn rows<T: Row>(items: &[T], none: &str) -> String {
    if items.is_empty() {
        return none.into();
    }
    let rows: Vec<Vec<String>> = items.iter().map(Row::row).collect();
    table(T::HEADERS, &rows)
}

impl Text for api::TokenPage {
    /// The token table, with a paging note when the page is partial.
    fn text(&self) -> String {
        let total = self.total;
        if self.tokens.is_empty() {
            return if total == 0 {
                "no tokens".into()
            } else {
                format!("no tokens on this page ({total} in all)")
            };
        }
        let mut out = rows(&self.tokens, "no tokens");
        if self.tokens.len() < total {
            out.push_str(&format!(
                "\n({} of {total} tokens shown; use --from and --size for more)",
                self.tokens.len()
            ));
        }
        out
    }
}

impl Row for api::Token {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "FILTERS",
        "INDICES",
        "PERMISSIONS",
        "EXPIRES",
        "LAST USED",
    ];

    fn row(&self) -> Vec<String> {
        vec![
            clean(&self.id),
            clean(&self.name),
            filters_text(&self.filters),
            list_or(&self.indices, "-"),
            list_or(&self.permissions, "-"),
            expires_text(self),
            or_never(&self.last_used_at),
        ]
    }
}

impl Text for api::Token {
    fn text(&self) -> String {
        key_values(&token_lines(self))
    }
}

impl Text for api::TokenCreated {
    fn text(&self) -> String {
        let mut lines = token_lines(&self.token);
        lines.push(("secret", clean(&self.secret)));
        let mut out = key_values(&lines);
        out.push_str("\n(the secret is shown only this once: store it now)");
        out
    }
}

impl Text for api::SecretReset {
    fn text(&self) -> String {
        let mut out = key_values(&[("id", clean(&self.id)), ("secret", clean(&self.secret))]);
        out.push_str("\n(the old secret no longer works; the new one is shown only this once)");
        out
    }
}

impl Text for api::SecretRotated {
    fn text(&self) -> String {
        let until = match &self.previous_secret_expires_at {
            None => "no longer works".to_owned(),
            Some(t) => format!("works until {}", clean(t)),
        };
        let mut out = key_values(&[
            ("id", clean(&self.id)),
            ("secret", clean(&self.secret)),
            ("old secret", until),
        ]);
        out.push_str("\n(the new secret is shown only this once)");
        out
    }
}

impl Text for api::FilterList {
    fn text(&self) -> String {
        rows(&self.filters, "no filters")
    }
}

impl Row for api::Filter {
    const HEADERS: &'static [&'static str] = &["ID", "FIELD", "VALUE", "TOKENS", "DESCRIPTION"];

    fn row(&self) -> Vec<String> {
        vec![
            clean(&self.id),
            clean(&self.field),
            clean(&self.value),
            self.used_by.len().to_string(),
            clean(&self.description),
        ]
    }
}

impl Text for api::Filter {
    fn text(&self) -> String {
        key_values(&[
            ("id", clean(&self.id)),
            ("field", clean(&self.field)),
            ("value", clean(&self.value)),
            ("description", clean(&self.description)),
            ("created", clean(&self.created_at)),
            ("used by", list_or(&self.used_by, "no tokens")),
        ])
    }
}

impl Text for api::IpFilterList {
    fn text(&self) -> String {
        rows(&self.ip_filters, "no IP filters")
    }
}

impl Row for api::IpFilter {
    const HEADERS: &'static [&'static str] = &["NAME", "CIDRS", "TOKENS"];

    fn row(&self) -> Vec<String> {
        vec![
            clean(&self.name),
            list_or(&self.cidrs, "-"),
            self.used_by.len().to_string(),
        ]
    }
}

impl Text for api::IpFilter {
    fn text(&self) -> String {
        key_values(&[
            ("name", clean(&self.name)),
            ("cidrs", list_or(&self.cidrs, "-")),
            ("created", clean(&self.created_at)),
            ("used by", list_or(&self.used_by, "no tokens")),
        ])
    }
}

impl Text for api::LinkList {
    fn text(&self) -> String {
        rows(&self.links, "no links")
    }
}

impl Row for api::Link {
    const HEADERS: &'static [&'static str] = &["ID", "TIME", "EXPIRES", "URL"];

    fn row(&self) -> Vec<String> {
        vec![
            clean(&self.id),
            link_time(&self.time),
            or_dash(&self.expires_at),
            or_dash(&self.url),
        ]
    }
}

impl Text for api::Link {
    fn text(&self) -> String {
        key_values(&[
            ("id", clean(&self.id)),
            ("url", or_dash(&self.url)),
            ("token", clean(&self.token_id)),
            ("path", clean(&self.path)),
            ("time", link_time(&self.time)),
            ("expires", or_dash(&self.expires_at)),
        ])
    }
}

/// A link's time: `live` or `FROM..TO`.
fn link_time(t: &Option<TimeRange>) -> String {
    match t {
        Some(t) => format!("{}..{}", clean(&t.from), clean(&t.to)),
        None => "live".into(),
    }
}

/// Display text with control characters replaced, so a stored name cannot drive the terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn or_dash(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".into(), clean)
}

fn or_never(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "never".into(), clean)
}

fn list_or(v: &[String], empty: &str) -> String {
    if v.is_empty() {
        return empty.into();
    }
    v.iter().map(|s| clean(s)).collect::<Vec<_>>().join(", ")
}

/// `tenant=a, env=test [flt_x]`, or `none`.
fn filters_text(filters: &[api::TokenFilter]) -> String {
    if filters.is_empty() {
        return "none".into();
    }
    filters
        .iter()
        .map(|f| {
            let fv = format!("{}={}", or_dash(&f.field), or_dash(&f.value));
            match &f.id {
                Some(id) => format!("{fv} [{}]", clean(id)),
                None => fv,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn expires_text(t: &api::Token) -> String {
    match &t.expires_at {
        None => "never".into(),
        Some(v) if t.expired => format!("{} (expired)", clean(v)),
        Some(v) => clean(v),
    }
}

fn token_lines(t: &api::Token) -> Vec<(&'static str, String)> {
    let ip = match &t.ip_filter {
        None => "none".to_owned(),
        Some(n) => format!("{} ({})", clean(n), list_or(&t.ip_cidrs, "-")),
    };
    let mut lines = vec![
        ("id", clean(&t.id)),
        ("name", clean(&t.name)),
        ("filters", filters_text(&t.filters)),
        ("indices", list_or(&t.indices, "-")),
        ("permissions", list_or(&t.permissions, "-")),
        ("created", clean(&t.created_at)),
        ("expires", expires_text(t)),
        ("ip filter", ip),
        ("last used", or_never(&t.last_used_at)),
    ];
    if let Some(until) = &t.previous_secret_expires_at {
        lines.push(("old secret until", clean(until)));
    }
    let limits = t.limits.set();
    if !limits.is_empty() {
        let text = limits
            .iter()
            .map(|(k, v)| format!("{k}={}", clean(v)))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(("limits", text));
    }
    lines.push(("spaces", list_or(&t.kibana_spaces, "none")));
    if !t.scores.is_empty() {
        lines.push(("scores", clean(&t.scores)));
    }
    lines
}

/// Columns padded to the widest cell (in characters), two spaces apart, no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            s.push_str(&" ".repeat(pad));
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// `key: value` lines with the values aligned.
pub fn key_values(lines: &[(&str, String)]) -> String {
    let w = lines
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    lines
        .iter()
        .map(|(k, v)| format!("{:<w$} {v}", format!("{k}:")).trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

// === HTTP ===

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Sends the call and renders the answer.
pub async fn execute(opts: &ClientOpts, call: ApiCall) -> Result<String, CliError> {
    let (status, body, admin_challenge) =
        send(opts, call.method, &call.path, call.body.as_ref()).await?;
    if status == 401 && !admin_challenge {
        // Only the admin listener challenges with its own realm; a 401 without it comes from
        // esgate's data listener (or Elasticsearch itself), which knows no admin key.
        return Err(CliError::Api {
            status,
            reason: format!(
                "{} answered, but not as esgate's admin API: the admin URL (from {}) must name the admin listener (default http://127.0.0.1:9202), not the data listener (default 9201) or the cluster",
                opts.url.trim_end_matches('/'),
                opts.url_from
            ),
        });
    }
    if !(200..300).contains(&status) {
        let reason = body
            .as_ref()
            .and_then(|b| b["error"]["reason"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("request failed with HTTP {status}"));
        let reason = if status == 401 && opts.admin_key.is_none() {
            format!("{reason} (no admin key: {})", opts.key_from)
        } else if status == 401 {
            format!(
                "{reason} (the key sent, {}, is not the admin key of the esgate at {})",
                opts.key_from,
                opts.url.trim_end_matches('/')
            )
        } else if status == 400 && call.body.is_some() {
            with_flags(&reason, &call.path)
        } else {
            reason
        };
        return Err(CliError::Api { status, reason });
    }
    render(&call.render, body.as_ref())
}

/// The admin API's body fields and the flags that set them (`token create|update`, `filter
/// create|update`, `ip-filter create|update`, `token rotate`).
const FIELD_FLAGS: &[(&str, &str)] = &[
    ("name", "--name"),
    ("filters", "--filter, --filter-id"),
    ("indices", "--index"),
    ("permissions", "--permission"),
    ("expires_in", "--expires-in"),
    ("expires_at", "--expires-at"),
    ("ip_filter", "--ip-filter"),
    ("limits", "--limit"),
    ("kibana_spaces", "--kibana-space"),
    ("scores", "--scores"),
    ("cidrs", "--cidr"),
    ("field", "--field"),
    ("value", "--value"),
    ("description", "--description"),
    ("overlap", "--overlap"),
];

/// A 400's reason from a command built from flags, followed by the flags of the API fields it
/// names (ux16: `policy require_expiry: ... (expires_in or expires_at)` left a CLI user to
/// guess `--expires-in`). Fields are named in `field [x]` brackets, and fields spelt with an
/// underscore anywhere; an IP filter's name is no flag.
fn with_flags(reason: &str, path: &str) -> String {
    let mut named: Vec<&str> = Vec::new();
    let mut rest = reason;
    while let Some(at) = rest.find("field [") {
        rest = &rest[at + "field [".len()..];
        let end = rest.find(['[', '.', ']']).unwrap_or(rest.len());
        named.push(&rest[..end]);
    }
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for (field, _) in FIELD_FLAGS.iter().filter(|(f, _)| f.contains('_')) {
        let bytes = reason.as_bytes();
        let whole = reason.match_indices(field).any(|(i, _)| {
            let after = i + field.len();
            (i == 0 || !is_word(bytes[i - 1])) && (after == bytes.len() || !is_word(bytes[after]))
        });
        if whole {
            named.push(field);
        }
    }
    let mut flags: Vec<&str> = Vec::new();
    for (field, flag) in FIELD_FLAGS {
        let ip_filter_name = *field == "name" && path.starts_with("/ip-filters");
        if named.contains(field) && !ip_filter_name && !flags.contains(flag) {
            flags.push(flag);
        }
    }
    match flags.is_empty() {
        true => reason.to_owned(),
        false => format!("{reason} (on the command line: {})", flags.join(", ")),
    }
}

/// Host and port of the base URL, for error messages (never user info or the key).
fn endpoint(uri: &http::Uri) -> String {
    match (uri.host(), uri.port_u16()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => "<invalid URL>".to_owned(),
    }
}

fn connector(https: bool) -> Result<Connector, String> {
    let provider = crate::config::tls_crypto();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if https {
        builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no usable TLS root certificates: {e}"))?
    } else {
        // Plain http: TLS is never used, so an empty root store is enough.
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder.with_tls_config(config)
    };
    Ok(builder.https_or_http().enable_http1().build())
}

const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

async fn send(
    opts: &ClientOpts,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Option<Value>, bool), CliError> {
    let base = opts.url.trim_end_matches('/');
    let uri: http::Uri = format!("{base}{path}")
        .parse()
        .map_err(|_| CliError::Usage("ESGATE_ADMIN_URL is not a valid http(s) URL".into()))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(CliError::Usage(
                "ESGATE_ADMIN_URL must start with http:// or https://".into(),
            ))
        }
    };
    let ep = endpoint(&uri);
    let transport = |reason: String| CliError::Transport {
        endpoint: ep.clone(),
        from: opts.url_from.clone(),
        reason,
    };
    let client: Client<Connector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector(https).map_err(transport)?);
    let bytes = match body {
        Some(v) => serde_json::to_vec(v).map_err(|e| CliError::Usage(e.to_string()))?,
        None => Vec::new(),
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri.clone())
        .header(http::header::ACCEPT, "application/json");
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    if let Some(key) = &opts.admin_key {
        let mut value =
            http::HeaderValue::from_str(&format!("Bearer {}", key.0)).map_err(|_| {
                CliError::Usage(format!(
                    "the admin key ({}) contains characters not allowed in a header",
                    opts.key_from
                ))
            })?;
        value.set_sensitive(true);
        req = req.header(http::header::AUTHORIZATION, value);
    }
    let req = req
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|_| CliError::Usage("could not build the request".into()))?;

    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| transport(chain(&e)))?;
        let status = resp.status().as_u16();
        let admin_challenge = resp
            .headers()
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .any(|v| v == crate::server::admin::ADMIN_CHALLENGE);
        let collected = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok::<_, CliError>((status, collected, admin_challenge))
    };
    let (status, bytes, admin_challenge) = tokio::time::timeout(opts.timeout, exchange)
        .await
        .map_err(|_| transport(format!("no answer within {}s", opts.timeout.as_secs())))??;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((status, None, admin_challenge));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => Ok((status, Some(v), admin_challenge)),
        // A non-JSON error page still yields a useful status-based message.
        Err(_) if !(200..300).contains(&status) => Ok((status, None, admin_challenge)),
        Err(e) => Err(CliError::BadResponse(format!("not JSON: {e}"))),
    }
}

/// An error with its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// A stand-in for the real binary's top-level parser.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClientCmd,
    }

    type Top = ClientCmd;

    fn parse(args: &[&str]) -> Result<Top, clap::Error> {
        Cli::try_parse_from(std::iter::once("esgate").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn call(args: &[&str]) -> ApiCall {
        client_call(parse(args).expect("arguments parse")).expect("valid command")
    }

    #[test]
    fn token_create_flags_map_to_the_create_body() {
        let c = call(&[
            "token",
            "create",
            "--name",
            "acme",
            "--filter",
            "tenant=a",
            "--filter",
            "q=x=y",
            "--filter-id",
            "flt_1",
            "--index",
            "logs-*",
            "--index",
            "metrics",
            "--permission",
            "read",
            "--expires-in",
            "24h",
            "--ip-filter",
            "office",
        ]);
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/tokens");
        assert_eq!(c.render, Render::TokenCreated);
        assert_eq!(
            c.body,
            Some(json!({"name": "acme",
                        "filters": [{"field": "tenant", "value": "a"}, {"field": "q", "value": "x=y"}, "flt_1"],
                        "indices": ["logs-*", "metrics"], "permissions": ["read"],
                        "expires_in": "24h", "ip_filter": "office"}))
        );
        let c = call(&[
            "token",
            "create",
            "--name",
            "b",
            "--expires-at",
            "2026-01-31T12:00:00Z",
            "--json",
        ]);
        assert_eq!(
            c.body,
            Some(json!({"name": "b", "expires_at": "2026-01-31T12:00:00Z"}))
        );
        assert_eq!(c.render, Render::Json);
    }

    #[test]
    fn token_explain_maps_to_the_explain_body() {
        let c = call(&[
            "token",
            "explain",
            "tok_1",
            "post",
            "/logs-*/_search?size=5",
            r#"{"query":{"match_all":{}}}"#,
        ]);
        assert_eq!((c.method, c.path.as_str()), ("POST", "/explain"));
        assert_eq!(c.render, Render::Json);
        assert_eq!(
            c.body,
            Some(
                json!({"token": "tok_1", "method": "POST", "path": "/logs-*/_search?size=5",
                        "body": {"query": {"match_all": {}}}})
            )
        );
        let c = call(&[
            "token",
            "explain",
            "tok_1",
            "POST",
            "/_msearch",
            "{}\n{}\n",
            "--content-type",
            "application/x-ndjson",
            "--client-ip",
            "10.0.0.1",
        ]);
        assert_eq!(
            c.body,
            Some(
                json!({"token": "tok_1", "method": "POST", "path": "/_msearch",
                        "body": "{}\n{}\n", "headers": {"content-type": "application/x-ndjson"},
                        "client_ip": "10.0.0.1"})
            )
        );
        let c = call(&["token", "explain", "tok_1", "GET", "/logs-*/_count"]);
        assert_eq!(
            c.body,
            Some(json!({"token": "tok_1", "method": "GET", "path": "/logs-*/_count"}))
        );
        // A body that is not JSON, without --content-type, and an address that is not one:
        // said before anything is sent.
        for (args, says) in [
            (
                &["token", "explain", "tok_1", "POST", "/_search", "{bad"][..],
                "not valid JSON",
            ),
            (
                &[
                    "token",
                    "explain",
                    "tok_1",
                    "GET",
                    "/_search",
                    "--client-ip",
                    "1.2.3",
                ][..],
                "--client-ip",
            ),
        ] {
            let err = client_call(parse(args).expect("arguments parse")).expect_err("refused");
            assert!(
                matches!(&err, CliError::Usage(m) if m.contains(says)),
                "{err:?}"
            );
        }
    }

    #[test]
    fn token_create_rejects_bad_flags() {
        assert!(parse(&["token", "create"]).is_err(), "--name is required");
        assert!(parse(&[
            "token",
            "create",
            "--name",
            "a",
            "--expires-in",
            "1h",
            "--expires-at",
            "x"
        ])
        .is_err());
        for bad in ["tenant", "=a", "tenant="] {
            let cmd = parse(&["token", "create", "--name", "a", "--filter", bad])
                .expect("clap accepts the raw string");
            assert!(matches!(client_call(cmd), Err(CliError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn token_update_maps_only_given_flags_and_needs_one() {
        let c = call(&[
            "token",
            "update",
            "tok_1",
            "--name",
            "n",
            "--expires-in",
            "1h",
        ]);
        assert_eq!((c.method, c.path.as_str()), ("PATCH", "/tokens/tok_1"));
        assert_eq!(c.body, Some(json!({"name": "n", "expires_in": "1h"})));
        let c = call(&["token", "update", "tok_1", "--clear-filters"]);
        assert_eq!(c.body, Some(json!({"filters": []})));
        let c = call(&[
            "token",
            "update",
            "tok_1",
            "--filter-id",
            "flt_2",
            "--permission",
            "all",
            "--index",
            "x",
        ]);
        assert_eq!(
            c.body,
            Some(json!({"filters": ["flt_2"], "permissions": ["all"], "indices": ["x"]}))
        );
        let c = call(&["token", "update", "tok_1", "--ip-filter", "office"]);
        assert_eq!(c.body, Some(json!({"ip_filter": "office"})));
        let cmd = parse(&["token", "update", "tok_1"]).expect("parses");
        assert!(matches!(client_call(cmd), Err(CliError::Usage(_))));
        assert!(parse(&["token", "update", "t", "--clear-filters", "--filter", "a=b"]).is_err());
    }

    #[test]
    fn token_rotate_and_limit_flags_map_to_their_bodies() {
        let c = call(&["token", "rotate", "tok_1", "--overlap", "2h"]);
        assert_eq!(
            (c.method, c.path.as_str()),
            ("POST", "/tokens/tok_1/rotate")
        );
        assert_eq!(c.body, Some(json!({"overlap": "2h"})));
        assert_eq!(c.render, Render::TokenRotated);
        let c = call(&["token", "rotate", "tok_1", "--json"]);
        assert_eq!((c.body, c.render), (None, Render::Json));
        let c = call(&[
            "token",
            "create",
            "--name",
            "a",
            "--limit",
            "max_size=100",
            "--limit",
            "search_timeout=5s",
        ]);
        assert_eq!(
            c.body,
            Some(json!({"name": "a", "limits": {"max_size": 100, "search_timeout": "5s"}}))
        );
        let c = call(&["token", "update", "tok_1", "--limit", "burst=3"]);
        assert_eq!(c.body, Some(json!({"limits": {"burst": 3}})));
        let c = call(&["token", "update", "tok_1", "--clear-limits"]);
        assert_eq!(c.body, Some(json!({"limits": null})));
        for bad in ["max_size", "max_size=x", "max_size=-1"] {
            let cmd = parse(&["token", "update", "t", "--limit", bad])
                .expect("clap accepts the raw string");
            assert!(matches!(client_call(cmd), Err(CliError::Usage(_))), "{bad}");
        }
        let rotated = render(
            &Render::TokenRotated,
            Some(&json!({"id": "tok_1", "secret": "s3cr3t",
                         "previous_secret_expires_at": "2026-01-01T01:00:00Z"})),
        )
        .unwrap();
        assert!(rotated.contains("s3cr3t") && rotated.contains("works until 2026-01-01T01:00:00Z"));
        let shown = render(
            &Render::Token,
            Some(&json!({"id": "tok_1",
                "previous_secret_expires_at": "2026-01-01T01:00:00Z",
                "limits": {"max_size": 10, "search_timeout": "5s"}})),
        )
        .unwrap();
        assert!(
            shown.contains("old secret until") && shown.contains("max_size=10, search_timeout=5s")
        );
    }

    #[test]
    fn other_token_commands_map_to_paths_with_encoded_ids() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["token", "list"], "GET", "/tokens"),
            (
                &[
                    "token",
                    "list",
                    "--name",
                    "acme dash/x",
                    "--from",
                    "5",
                    "--size",
                    "10",
                ],
                "GET",
                "/tokens?name=acme%20dash%2Fx&from=5&size=10",
            ),
            (&["token", "show", "tok_1"], "GET", "/tokens/tok_1"),
            (&["token", "show", "../x"], "GET", "/tokens/%2E%2E%2Fx"),
            (&["token", "reset", "tok_1"], "POST", "/tokens/tok_1/reset"),
            (
                &["token", "rotate", "tok_1"],
                "POST",
                "/tokens/tok_1/rotate",
            ),
            (&["token", "delete", "tok_1"], "DELETE", "/tokens/tok_1"),
            (&["filter", "list"], "GET", "/filters"),
            (&["filter", "show", "flt_1"], "GET", "/filters/flt_1"),
            (&["filter", "delete", "flt_1"], "DELETE", "/filters/flt_1"),
            (
                &["filter", "delete", "flt_1", "--detach"],
                "DELETE",
                "/filters/flt_1?detach=true",
            ),
            (&["ip-filter", "list"], "GET", "/ip-filters"),
            (
                &["ip-filter", "show", "office"],
                "GET",
                "/ip-filters/office",
            ),
            (
                &["ip-filter", "delete", "office"],
                "DELETE",
                "/ip-filters/office",
            ),
        ];
        for (args, method, path) in cases {
            let c = call(args);
            assert_eq!((c.method, c.path.as_str()), (*method, *path), "{args:?}");
            assert_eq!(c.body, None, "{args:?}");
        }
    }

    #[test]
    fn filter_and_ip_filter_bodies() {
        let c = call(&[
            "filter",
            "create",
            "--field",
            "env",
            "--value",
            "test",
            "--description",
            "d",
        ]);
        assert_eq!(
            c.body,
            Some(json!({"field": "env", "value": "test", "description": "d"}))
        );
        let c = call(&["filter", "update", "flt_1", "--value", "prod"]);
        assert_eq!(
            (c.method, c.body),
            ("PATCH", Some(json!({"value": "prod"})))
        );
        let c = call(&[
            "ip-filter",
            "create",
            "--name",
            "office",
            "--cidr",
            "10.0.0.0/8",
            "--cidr",
            "::1",
        ]);
        assert_eq!(
            c.body,
            Some(json!({"name": "office", "cidrs": ["10.0.0.0/8", "::1"]}))
        );
        let c = call(&[
            "ip-filter",
            "update",
            "office",
            "--cidr",
            "10.1.0.0/16",
            "--json",
        ]);
        assert_eq!(c.body, Some(json!({"cidrs": ["10.1.0.0/16"]})));
        assert_eq!(c.render, Render::Json);
        let cmd = parse(&["filter", "update", "flt_1"]).expect("parses");
        assert!(matches!(client_call(cmd), Err(CliError::Usage(_))));
        assert!(
            parse(&["ip-filter", "create", "--name", "x"]).is_err(),
            "--cidr is required"
        );
    }

    #[test]
    fn table_aligns_columns_by_characters_without_trailing_spaces() {
        let t = table(
            &["ID", "NAME", "X"],
            &[
                vec!["tok_1".into(), "été".into(), "".into()],
                vec!["t".into(), "a-long-name".into(), "z".into()],
            ],
        );
        assert_eq!(
            t,
            "ID     NAME         X\n\
             tok_1  été\n\
             t      a-long-name  z"
        );
    }

    #[test]
    fn key_values_align_values() {
        assert_eq!(
            key_values(&[
                ("id", "tok_1".into()),
                ("last used", "never".into()),
                ("x", "".into())
            ]),
            "id:        tok_1\nlast used: never\nx:"
        );
    }

    fn sample_token(id: &str, name: &str) -> Value {
        json!({"id": id, "name": name,
               "filters": [{"field": "tenant", "value": "a"}, {"id": "flt_1", "field": "env", "value": "test"}],
               "indices": ["logs-*", "metrics"], "permissions": ["read"],
               "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z",
               "expired": false, "ip_filter": null, "ip_cidrs": [], "kibana_spaces": ["default"],
               "last_used_at": null})
    }

    #[test]
    fn token_list_renders_as_a_table_with_a_paging_note() {
        let mut second = sample_token("tok_2", "b");
        second["filters"] = json!([]);
        second["expired"] = json!(true);
        second["last_used_at"] = json!("2026-01-01T10:00:00Z");
        second["permissions"] = json!(["read", "all"]);
        let v = json!({"tokens": [sample_token("tok_1", "acme\u{1b}[31m"), second], "total": 3});
        let out = render(&Render::TokenList, Some(&v)).unwrap();
        let expected = [
            "ID     NAME         FILTERS                            INDICES        PERMISSIONS  EXPIRES                         LAST USED",
            "tok_1  acme?[31m    tenant=a, env=test [flt_1]         logs-*, metrics  read       2026-01-02T00:00:00Z            never",
        ];
        // Compare structurally: split on runs of 2+ spaces.
        let cells = |l: &str| -> Vec<String> {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(cells(lines[0]), cells(expected[0]));
        assert_eq!(cells(lines[1]), cells(expected[1]));
        assert_eq!(
            cells(lines[2]),
            [
                "tok_2",
                "b",
                "none",
                "logs-*, metrics",
                "read, all",
                "2026-01-02T00:00:00Z (expired)",
                "2026-01-01T10:00:00Z"
            ]
        );
        assert_eq!(
            lines[3],
            "(2 of 3 tokens shown; use --from and --size for more)"
        );
        // Columns line up: every column starts at the same offset on each line.
        let col = |l: &str, h: &str| lines[0].find(h).map(|i| l.chars().nth(i));
        assert_eq!(col(lines[1], "FILTERS"), Some(Some('t')));
        assert_eq!(col(lines[2], "FILTERS"), Some(Some('n')));
        assert_eq!(col(lines[2], "LAST USED"), Some(Some('2')));
        assert!(out.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(
            render(&Render::TokenList, Some(&json!({"tokens": [], "total": 0}))).unwrap(),
            "no tokens"
        );
        assert_eq!(
            render(&Render::TokenList, Some(&json!({"tokens": [], "total": 5}))).unwrap(),
            "no tokens on this page (5 in all)"
        );
        assert_eq!(
            render(&Render::FilterList, Some(&json!({"filters": []}))).unwrap(),
            "no filters"
        );
        assert_eq!(
            render(&Render::IpFilterList, Some(&json!({"ip_filters": []}))).unwrap(),
            "no IP filters"
        );
        assert!(matches!(
            render(&Render::TokenList, Some(&json!({}))),
            Err(CliError::BadResponse(_))
        ));
    }

    #[test]
    fn one_token_renders_as_key_value_lines_and_created_adds_the_secret() {
        let mut t = sample_token("tok_1", "acme");
        t["ip_filter"] = json!("office");
        t["ip_cidrs"] = json!(["10.0.0.0/8"]);
        let out = render(&Render::Token, Some(&t)).unwrap();
        assert_eq!(
            out,
            "id:          tok_1\n\
             name:        acme\n\
             filters:     tenant=a, env=test [flt_1]\n\
             indices:     logs-*, metrics\n\
             permissions: read\n\
             created:     2026-01-01T00:00:00Z\n\
             expires:     2026-01-02T00:00:00Z\n\
             ip filter:   office (10.0.0.0/8)\n\
             last used:   never\n\
             spaces:      default"
        );
        // A server that shows `scores` (review 15): one more line.
        let mut scored = t.clone();
        scored["scores"] = json!("constant");
        let out = render(&Render::Token, Some(&scored)).unwrap();
        assert!(
            out.ends_with("\nspaces:      default\nscores:      constant"),
            "{out}"
        );
        t["secret"] = json!("esg_s3cr3t");
        let out = render(&Render::TokenCreated, Some(&t)).unwrap();
        assert!(out.contains("\nsecret:      esg_s3cr3t\n"), "{out}");
        let out = render(
            &Render::TokenReset,
            Some(&json!({"id": "tok_1", "secret": "esg_n3w"})),
        )
        .unwrap();
        assert!(out.starts_with("id:     tok_1\nsecret: esg_n3w\n"), "{out}");
    }

    #[test]
    fn json_output_is_the_apis_json() {
        let v = json!({"tokens": [], "total": 0});
        let out = render(&Render::Json, Some(&v)).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), v);
        assert_eq!(
            render(&Render::Message("deleted token t".into()), None).unwrap(),
            "deleted token t"
        );
    }

    #[test]
    fn filter_and_ip_filter_rendering() {
        let f = json!({"id": "flt_1", "description": "test env", "field": "env", "value": "test",
                       "created_at": "2026-01-01T00:00:00Z", "used_by": ["tok_1", "tok_2"]});
        let out = render(&Render::FilterList, Some(&json!({"filters": [f.clone()]}))).unwrap();
        assert_eq!(
            out,
            "ID     FIELD  VALUE  TOKENS  DESCRIPTION\nflt_1  env    test   2       test env"
        );
        let out = render(&Render::Filter, Some(&f)).unwrap();
        assert!(out.ends_with("used by:     tok_1, tok_2"), "{out}");
        let ipf = json!({"name": "office", "cidrs": ["10.0.0.0/8", "::1/128"], "created_at": "x", "used_by": []});
        let out = render(
            &Render::IpFilterList,
            Some(&json!({"ip_filters": [ipf.clone()]})),
        )
        .unwrap();
        assert_eq!(
            out,
            "NAME    CIDRS                TOKENS\noffice  10.0.0.0/8, ::1/128  0"
        );
        let out = render(&Render::IpFilter, Some(&ipf)).unwrap();
        assert!(out.contains("cidrs:   10.0.0.0/8, ::1/128"), "{out}");
        assert!(out.ends_with("used by: no tokens"), "{out}");
    }

    /// `esgate link create|list|delete` (issue #16) map to the links endpoints.
    #[test]
    fn link_commands_map_to_the_links_endpoints() {
        let c = call(&[
            "link",
            "create",
            "--token",
            "tok_1",
            "--path",
            "/app/dashboards#/view/d",
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-02T00:00:00Z",
            "--expires-in",
            "7d",
        ]);
        assert_eq!((c.method, c.path.as_str()), ("POST", "/tokens/tok_1/links"));
        assert_eq!(
            c.body,
            Some(json!({"path": "/app/dashboards#/view/d",
                        "time": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
                        "expires_in": "7d"}))
        );
        let c = call(&["link", "create", "--token", "tok_1", "--path", "/app/x"]);
        assert_eq!(c.body, Some(json!({"path": "/app/x"})));
        assert!(
            parse(&["link", "create", "--token", "t", "--path", "/app/x", "--from", "x"]).is_err()
        );
        let c = call(&["link", "list", "--token", "tok_1"]);
        assert_eq!((c.method, c.path.as_str()), ("GET", "/tokens/tok_1/links"));
        let c = call(&["link", "delete", "lnk_ab"]);
        assert_eq!((c.method, c.path.as_str()), ("DELETE", "/links/lnk_ab"));
        let c = call(&["token", "update", "tok_1", "--kibana-space", "acme"]);
        assert_eq!(c.body, Some(json!({"kibana_spaces": ["acme"]})));
        let c = call(&["token", "update", "tok_1", "--scores", "relevance"]);
        assert_eq!(c.body, Some(json!({"scores": "relevance"})));
        let c = call(&["token", "create", "--name", "acme", "--scores", "constant"]);
        assert_eq!(c.body, Some(json!({"name": "acme", "scores": "constant"})));
        let out = render(
            &Render::LinkList,
            Some(
                &json!({"links": [{"id": "lnk_1", "time": null, "expires_at": null,
                                    "url": "https://d/s/lnk_1"}]}),
            ),
        )
        .expect("renders");
        assert!(
            out.contains("lnk_1  live  -        https://d/s/lnk_1"),
            "{out}"
        );
    }

    /// `--json` is one flag of each command group (issue #11), `global`: every invocation that
    /// had a `--json` of its own still parses and shows the API's JSON, the flag may also come
    /// before the subcommand, and a delete (no answer body) keeps its message.
    #[test]
    fn json_is_one_global_flag_of_each_group() {
        let shown_as_json: &[&[&str]] = &[
            &["token", "create", "--name", "a", "--json"],
            &["token", "list", "--json"],
            &["token", "show", "tok_1", "--json"],
            &["token", "update", "tok_1", "--name", "b", "--json"],
            &["token", "reset", "tok_1", "--json"],
            &["token", "rotate", "tok_1", "--json"],
            &["filter", "create", "--field", "f", "--value", "v", "--json"],
            &["filter", "list", "--json"],
            &["filter", "show", "flt_1", "--json"],
            &["filter", "update", "flt_1", "--value", "w", "--json"],
            &[
                "ip-filter",
                "create",
                "--name",
                "o",
                "--cidr",
                "::1",
                "--json",
            ],
            &["ip-filter", "list", "--json"],
            &["ip-filter", "show", "o", "--json"],
            &["ip-filter", "update", "o", "--cidr", "::1", "--json"],
            &[
                "link", "create", "--token", "t", "--path", "/app/x", "--json",
            ],
            &["link", "list", "--token", "t", "--json"],
            &["token", "--json", "list"],
            &["filter", "--json", "show", "flt_1"],
        ];
        for args in shown_as_json {
            assert_eq!(call(args).render, Render::Json, "{args:?}");
        }
        assert_eq!(call(&["token", "list"]).render, Render::TokenList);
        assert_eq!(
            call(&["token", "explain", "t", "GET", "/x"]).render,
            Render::Json
        );
        assert_eq!(
            call(&["token", "delete", "tok_1", "--json"]).render,
            Render::Message("deleted token tok_1".into())
        );
        assert!(parse(&["token", "list", "--json", "--json"]).is_err());
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("ip-filter"), "{help}");
    }

    /// A config file's settings as `config::load_admin_client_settings` returns them.
    fn config_file(admin: &str, key: Option<&str>, generated: Option<&str>) -> ConfigFile {
        ConfigFile {
            path: PathBuf::from("conf/esgate.toml"),
            settings: crate::config::AdminClientSettings {
                admin_listen: admin.parse().unwrap(),
                admin_key: key.map(|k| crate::config::AdminKey::new(k.to_owned())),
                generated_key_file: generated.map(PathBuf::from),
            },
        }
    }

    /// The URL and the key, most specific first: the environment, the config file, the key
    /// files (ESGATE_ADMIN_KEY_FILE, then the generated one).
    #[test]
    fn the_environment_wins_over_the_config_file_which_wins_over_key_files() {
        let key = |o: &ClientOpts| o.admin_key.as_ref().map(|k| k.0.clone());
        // Everything set: the environment's.
        let o = ClientOpts::found(Found {
            url_env: Some("http://env:1".into()),
            key_env: Some("env-key-0123456789".into()),
            key_file_env: Some("/k".into()),
            key_file_text: Some("file-key-0123456789".into()),
            config: Some(config_file(
                "10.0.0.1:9302",
                Some("config-key-0123456"),
                None,
            )),
        });
        assert_eq!(o.url, "http://env:1");
        assert_eq!(key(&o).as_deref(), Some("env-key-0123456789"));
        assert_eq!(
            (o.url_from.as_str(), o.key_from.as_str()),
            ("ESGATE_ADMIN_URL", "from ESGATE_ADMIN_KEY")
        );
        // No environment: the config file's listen.admin and [admin] key, before key files.
        let o = ClientOpts::found(Found {
            key_file_env: Some("/k".into()),
            key_file_text: Some("file-key-0123456789".into()),
            config: Some(config_file(
                "10.0.0.1:9302",
                Some("config-key-0123456"),
                None,
            )),
            ..Found::default()
        });
        assert_eq!(o.url, "http://10.0.0.1:9302");
        assert_eq!(key(&o).as_deref(), Some("config-key-0123456"));
        assert_eq!(o.url_from, "listen.admin of conf/esgate.toml");
        assert_eq!(o.key_from, "from [admin] of conf/esgate.toml");
        // Empty values count as unset.
        let o = ClientOpts::found(Found {
            url_env: Some(String::new()),
            key_env: Some(String::new()),
            config: Some(config_file("[::1]:9302", Some("config-key-0123456"), None)),
            ..Found::default()
        });
        assert_eq!(o.url, "http://[::1]:9302");
        assert_eq!(key(&o).as_deref(), Some("config-key-0123456"));
        // A config without a key: ESGATE_ADMIN_KEY_FILE's file, else the generated one in its
        // store directory (which `key_file` names for the caller to read).
        let c = config_file("127.0.0.1:9302", None, Some("/srv/esgate/admin.key"));
        assert_eq!(
            ClientOpts::key_file(Some(Path::new("/k")), Some(&c)),
            Some(PathBuf::from("/k"))
        );
        assert_eq!(
            ClientOpts::key_file(None, Some(&c)),
            Some(PathBuf::from("/srv/esgate/admin.key"))
        );
        assert_eq!(ClientOpts::key_file(None, None), Some(default_key_file()));
        let o = ClientOpts::found(Found {
            key_file_text: Some(" generated-key-0123456\n".into()),
            config: Some(c),
            ..Found::default()
        });
        assert_eq!(key(&o).as_deref(), Some("generated-key-0123456"));
        assert_eq!(o.key_from, "the generated one, from /srv/esgate/admin.key");
        // Nothing at all: the defaults, and the message says what was looked at.
        let o = ClientOpts::found(Found::default());
        assert_eq!(o.url, DEFAULT_ADMIN_URL);
        assert_eq!(o.admin_key, None);
        assert!(
            o.key_from.contains("ESGATE_ADMIN_KEY is not set")
                && o.key_from.contains("data/admin.key"),
            "{}",
            o.key_from
        );
    }

    /// A listener on every address is reached on loopback; others as they are.
    #[test]
    fn an_unspecified_admin_address_is_reached_on_loopback() {
        for (listen, url) in [
            ("0.0.0.0:9302", "http://127.0.0.1:9302"),
            ("[::]:9302", "http://[::1]:9302"),
            ("192.0.2.7:9302", "http://192.0.2.7:9302"),
            ("[2001:db8::1]:9302", "http://[2001:db8::1]:9302"),
        ] {
            let o = ClientOpts::found(Found {
                config: Some(config_file(listen, None, None)),
                ..Found::default()
            });
            assert_eq!(o.url, url, "{listen}");
        }
    }

    /// The config's key is sent but never shown: not in `Debug`, not in an error message.
    #[test]
    fn a_key_from_the_config_file_is_never_printed() {
        let o = ClientOpts::found(Found {
            config: Some(config_file(
                "127.0.0.1:9302",
                Some("config-secret-0123456"),
                None,
            )),
            ..Found::default()
        });
        assert!(!format!("{o:?}").contains("config-secret"));
        assert!(!o.key_from.contains("config-secret"));
    }

    #[test]
    fn opts_default_the_url_and_ignore_empty_values() {
        let o = ClientOpts::new(None, Some(String::new()));
        assert_eq!(o.url, DEFAULT_ADMIN_URL);
        assert_eq!(o.admin_key, None);
        let o = ClientOpts::new(Some("https://esgate:9202".into()), Some("k".into()));
        assert_eq!(o.url, "https://esgate:9202");
        assert_eq!(o.admin_key, Some(AdminKey::new("k".into())));
    }

    #[test]
    fn admin_key_debug_is_redacted() {
        let opts = ClientOpts {
            url: DEFAULT_ADMIN_URL.into(),
            admin_key: Some(AdminKey::new("hunter2-admin".into())),
            timeout: Duration::from_secs(1),
            url_from: "ESGATE_ADMIN_URL".into(),
            key_from: "from ESGATE_ADMIN_KEY".into(),
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }

    #[test]
    fn refusals_name_the_flags_of_the_fields_they_name() {
        let cases = [
            (
                "policy require_expiry: a token must have an expiry (expires_in or expires_at)",
                "/tokens",
                " (on the command line: --expires-in, --expires-at)",
            ),
            (
                "field [filters[1]] is unknown",
                "/tokens",
                " (on the command line: --filter, --filter-id)",
            ),
            (
                "field [limits.rate] is unknown",
                "/tokens/tok_1",
                " (on the command line: --limit)",
            ),
            (
                "field [name] must be at most 200 characters",
                "/tokens",
                " (on the command line: --name)",
            ),
            // An IP filter's name is an argument, not a flag.
            (
                "field [name] must be at most 200 characters",
                "/ip-filters",
                "",
            ),
            // Words of the prose are no fields; a field inside a longer word is none.
            ("the value of the field is wrong", "/filters", ""),
            ("my_ip_filters are none", "/tokens", ""),
        ];
        for (reason, path, suffix) in cases {
            assert_eq!(
                with_flags(reason, path),
                format!("{reason}{suffix}"),
                "{reason}"
            );
        }
    }

    #[test]
    fn endpoint_hides_user_info() {
        let uri: http::Uri = "http://user:pw@example.org:9202/tokens".parse().unwrap();
        assert_eq!(endpoint(&uri), "example.org:9202");
    }

    // === live round trip against admin::handle ===

    mod live {
        use std::net::SocketAddr;
        use std::sync::Arc;

        use hyper::body::Incoming;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        use super::*;
        use crate::admin::testing::Harness;
        use crate::admin::{handle, AdminRequest};

        const KEY: &str = "test-admin-key";

        /// Serves `admin::handle` on 127.0.0.1:0, requiring the admin key.
        async fn serve(h: Arc<Harness>) -> SocketAddr {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    let h = h.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: http::Request<Incoming>| {
                            let h = h.clone();
                            async move {
                                let authorized =
                                    req.headers().get(http::header::AUTHORIZATION).is_some_and(
                                        |v| v.as_bytes() == format!("Bearer {KEY}").as_bytes(),
                                    );
                                let method = req.method().as_str().to_owned();
                                let path = req.uri().path().to_owned();
                                let query = req.uri().query().map(str::to_owned);
                                let Ok(body) = req.into_body().collect().await else {
                                    return Ok::<_, std::convert::Infallible>(http::Response::new(
                                        Full::new(Bytes::new()),
                                    ));
                                };
                                let body = body.to_bytes();
                                let resp = if authorized {
                                    handle(
                                        &h.ctx,
                                        AdminRequest {
                                            method: &method,
                                            path: &path,
                                            query: query.as_deref(),
                                            body: &body,
                                            client: peer.ip(),
                                        },
                                        h.now,
                                    )
                                    .await
                                } else {
                                    crate::admin::AdminResponse {
                                        status: 401,
                                        body: Some(
                                            json!({"error": {"type": "security_exception", "reason": "missing or wrong admin key"}, "status": 401}),
                                        ),
                                    }
                                };
                                let bytes = resp.body.map(|b| b.to_string()).unwrap_or_default();
                                let mut out = http::Response::new(Full::new(Bytes::from(bytes)));
                                *out.status_mut() = http::StatusCode::from_u16(resp.status)
                                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                                if resp.status == 401 {
                                    // As the admin listener challenges (server::admin).
                                    out.headers_mut().insert(
                                        http::header::WWW_AUTHENTICATE,
                                        http::HeaderValue::from_static(
                                            crate::server::admin::ADMIN_CHALLENGE,
                                        ),
                                    );
                                }
                                Ok(out)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
            addr
        }

        fn opts(addr: SocketAddr, key: Option<&str>) -> ClientOpts {
            ClientOpts {
                timeout: Duration::from_secs(10),
                ..ClientOpts::found(Found {
                    url_env: Some(format!("http://{addr}/")),
                    key_env: key.map(str::to_owned),
                    ..Found::default()
                })
            }
        }

        #[tokio::test]
        async fn cli_commands_round_trip_through_the_admin_api() {
            let h = Arc::new(Harness::new());
            let addr = serve(h.clone()).await;
            let o = opts(addr, Some(KEY));

            let out = run(
                ClientCmd::IpFilter(Group::text(IpFilterCmd::Create {
                    name: "office".into(),
                    cidrs: vec!["10.0.0.0/8".into()],
                })),
                &o,
            )
            .await
            .expect("ip filter created");
            assert!(
                out.starts_with("name:    office\ncidrs:   10.0.0.0/8\n"),
                "{out}"
            );

            let out = run(
                ClientCmd::Token(Group {
                    config: None,
                    json: true,
                    command: TokenCmd::Create(TokenCreateArgs {
                        name: "acme".into(),
                        filters: vec!["tenant=a".into()],
                        filter_ids: vec![],
                        indices: vec![],
                        permissions: vec![],
                        expires_in: Some("1h".into()),
                        expires_at: None,
                        ip_filter: Some("office".into()),
                        limits: vec![],
                        kibana_spaces: vec![],
                        scores: None,
                    }),
                }),
                &o,
            )
            .await
            .expect("token created");
            let created: Value = serde_json::from_str(&out).expect("--json prints JSON");
            let id = created["id"].as_str().expect("id").to_owned();
            assert!(created["secret"].is_string());
            assert_eq!(created["ip_cidrs"], json!(["10.0.0.0/8"]));

            let out = run(
                ClientCmd::Token(Group::text(TokenCmd::List {
                    name: Some("ac".into()),
                    from: None,
                    size: None,
                })),
                &o,
            )
            .await
            .expect("listed");
            assert!(
                out.lines().nth(1).is_some_and(|l| l.starts_with(&id)),
                "{out}"
            );
            assert!(!out.contains(created["secret"].as_str().unwrap_or("?")));

            // API refusals become errors carrying the API's reason.
            let err = run(
                ClientCmd::IpFilter(Group::text(IpFilterCmd::Delete {
                    name: "office".into(),
                })),
                &o,
            )
            .await
            .expect_err("in use");
            match err {
                CliError::Api {
                    status: 409,
                    reason,
                } => assert!(reason.contains(&id), "{reason}"),
                other => panic!("unexpected {other:?}"),
            }
            let err = run(
                ClientCmd::Token(Group::text(TokenCmd::Show {
                    id: "tok_nope".into(),
                })),
                &o,
            )
            .await
            .expect_err("unknown");
            assert_eq!(err.to_string(), "token not found (HTTP 404)");
            // A 400 names the flag of the field it refuses.
            let err = run(
                ClientCmd::Token(Group::text(TokenCmd::Update(TokenUpdateArgs {
                    id: id.clone(),
                    expires_in: Some("soon".into()),
                    ..Default::default()
                }))),
                &o,
            )
            .await
            .expect_err("bad duration");
            match err {
                CliError::Api {
                    status: 400,
                    reason,
                } => assert!(
                    reason.contains("field [expires_in]")
                        && reason.ends_with("(on the command line: --expires-in)"),
                    "{reason}"
                ),
                other => panic!("unexpected {other:?}"),
            }

            let out = run(
                ClientCmd::Token(Group::text(TokenCmd::Delete { id: id.clone() })),
                &o,
            )
            .await
            .expect("deleted");
            assert_eq!(out, format!("deleted token {id}"));
            assert!(h.ctx.store.snapshot().token(&id).is_none());
        }

        #[tokio::test]
        async fn missing_admin_key_is_explained() {
            let h = Arc::new(Harness::new());
            let addr = serve(h).await;
            let err = run(
                ClientCmd::Filter(Group::text(FilterCmd::List)),
                &opts(addr, None),
            )
            .await
            .expect_err("401");
            assert_eq!(
                err.to_string(),
                "missing or wrong admin key (no admin key: ESGATE_ADMIN_KEY is not set, and there is no generated key in ./data/admin.key or ESGATE_ADMIN_KEY_FILE) (HTTP 401)"
            );
        }

        #[tokio::test]
        async fn wrong_admin_key_is_explained() {
            let h = Arc::new(Harness::new());
            let addr = serve(h).await;
            let wrong = "not-the-admin-key-0123456789";
            let err = run(
                ClientCmd::Filter(Group::text(FilterCmd::List)),
                &opts(addr, Some(wrong)),
            )
            .await
            .expect_err("401");
            let text = err.to_string();
            assert!(
                text.contains("ESGATE_ADMIN_KEY") && text.contains(&addr.to_string()),
                "{text}"
            );
            assert!(!text.contains(wrong), "the key is echoed: {text}");
        }

        #[tokio::test]
        async fn unreachable_api_and_bad_urls_are_errors() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            drop(listener);
            let err = run(
                ClientCmd::Filter(Group::text(FilterCmd::List)),
                &opts(addr, Some(KEY)),
            )
            .await
            .expect_err("nothing listens");
            assert!(matches!(err, CliError::Transport { .. }), "{err:?}");
            // It says which setting to check, and what to start.
            let text = err.to_string();
            assert!(
                text.contains("ESGATE_ADMIN_URL") && text.contains("esgate serve"),
                "{text}"
            );
            let mut o = opts(addr, Some(KEY));
            o.url = "ftp://example.org".into();
            let err = run(ClientCmd::Filter(Group::text(FilterCmd::List)), &o)
                .await
                .expect_err("bad scheme");
            assert!(matches!(err, CliError::Usage(_)));
        }
    }
}
