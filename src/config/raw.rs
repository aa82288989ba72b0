//! The configuration file's shape, 1:1, as serde structs. No logic: defaults are named
//! constants here, checks live in `validate.rs`. Unknown keys are errors.

use serde::Deserialize;

pub const DEFAULT_DATA_LISTEN: &str = "127.0.0.1:9201";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9202";
pub const DEFAULT_BACKEND: &str = "http://127.0.0.1:9200";
pub const DEFAULT_STORE_PATH: &str = "./data";
/// The cluster store's index (`store.kind = "elasticsearch"`).
pub const DEFAULT_STORE_INDEX: &str = ".esgate";
/// How often a replica picks up other replicas' changes.
pub const DEFAULT_STORE_POLL_INTERVAL: &str = "500ms";
pub const DEFAULT_STORE_TOMBSTONE_RETENTION: &str = "7d";
pub const DEFAULT_ADMIN_KEY_ENV: &str = "ESGATE_ADMIN_KEY";
/// All request bodies being inspected at once: 1 GiB.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 1024 * 1024 * 1024;
/// How long an answer esgate reads whole waits for room in the body budget.
pub const DEFAULT_BUFFERED_WAIT: &str = "30s";
/// Elasticsearch's own `http.max_content_length` default.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
/// `listen.workers`: 0 is one worker per CPU the process may use.
pub const DEFAULT_WORKERS: u64 = 0;
/// The most worker threads `listen.workers` may ask for.
pub const MAX_WORKERS: u64 = 1024;
/// The admin listener serves operators and probes: a few connections.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: u64 = 256;
pub const DEFAULT_HEADER_TIMEOUT: &str = "30s";
/// A connection with no request in flight and nothing received for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
/// HTTP/2: a PING after this long without a frame from the client...
pub const DEFAULT_H2_KEEP_ALIVE_INTERVAL: &str = "30s";
/// ...which must be answered within this long.
pub const DEFAULT_H2_KEEP_ALIVE_TIMEOUT: &str = "20s";
/// HTTP/2: streams (requests) a client may have open at once on one connection. Each can hold
/// a backend connection: hyper's own default (200) let one client connection hold 200 of them
/// (rel16). nginx allows 128, Go's net/http 250.
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u64 = 100;
/// A streamed backend answer that sends nothing for this long is cut off.
pub const DEFAULT_BODY_IDLE_TIMEOUT: &str = "60s";
/// Answers esgate reads whole (scroll, `_terms_enum`, ...) must arrive within this long.
pub const DEFAULT_ANSWER_TIMEOUT: &str = "120s";
/// Addresses the authentication failure limiter tracks per listener.
pub const DEFAULT_MAX_TRACKED_ADDRESSES: u64 = 100_000;
/// Failed authentications an address may make within the failure window.
pub const DEFAULT_MAX_FAILURES: u32 = 20;
pub const DEFAULT_DRAIN_TIMEOUT: &str = "30s";
pub const DEFAULT_FAILURE_WINDOW: &str = "60s";
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: &str = "10s";
pub const DEFAULT_CONNECT_TIMEOUT: &str = "5s";
pub const DEFAULT_REQUEST_TIMEOUT: &str = "60s";
pub const DEFAULT_POOL_IDLE_TIMEOUT: &str = "20s";
/// Connections to one backend node open at once (in use and idle), over every worker: a
/// request finding them all busy waits up to `connect_timeout` for one, then gets a 503.
pub const DEFAULT_MAX_CONNECTIONS_PER_NODE: u64 = 256;
pub const DEFAULT_UNHEALTHY_COOLDOWN: &str = "10s";
pub const DEFAULT_RESOLVE_CACHE_TTL: &str = "5s";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub backend: RawBackend,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub ids: RawIds,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub policies: RawPolicies,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub metrics: RawMetrics,
    /// The Kibana front for share links; absent: no front, no links.
    pub kibana: Option<RawKibana>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKibana {
    pub url: Option<String>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub data: Option<String>,
    pub admin: Option<String>,
    pub max_connections: Option<u64>,
    pub admin_max_connections: Option<u64>,
    pub max_connections_per_ip: Option<u64>,
    pub workers: Option<u64>,
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub h2_keep_alive_interval: Option<String>,
    pub h2_keep_alive_timeout: Option<String>,
    pub h2_max_concurrent_streams: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub max_buffered_bytes: Option<u64>,
    pub buffered_wait: Option<String>,
    pub drain_timeout: Option<String>,
    pub tls: Option<RawServerTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub handshake_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub urls: Option<Vec<String>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    pub connect_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub body_idle_timeout: Option<String>,
    pub answer_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub max_connections_per_node: Option<u64>,
    /// Unset: half of `max_connections_per_node` (rounded up).
    pub max_connections_per_token: Option<u64>,
    pub unhealthy_cooldown: Option<String>,
    pub resolve_cache_ttl: Option<String>,
    /// Client header names relayed for `all` tokens besides esgate's own allow-list.
    pub relay_headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<String>,
    /// `file` (default) or `elasticsearch`.
    pub kind: Option<String>,
    pub index: Option<String>,
    pub urls: Option<Vec<String>>,
    pub poll_interval: Option<String>,
    pub tombstone_retention: Option<String>,
    /// The cluster store's own credential (the shapes of `[backend]`'s); unset: `[backend]`'s.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    /// CA bundle for `store.urls` (another cluster); unset: `[backend]`'s TLS settings.
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub key: Option<String>,
    pub key_env: Option<String>,
}

/// The key scroll, point-in-time and async ids are sealed with.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIds {
    /// Environment variable holding the key (base64 of 32 bytes); default: `<store>/id.key`.
    pub key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub trusted_proxies: Option<Vec<String>>,
    pub max_failures: Option<u32>,
    pub failure_window: Option<String>,
    pub max_tracked_addresses: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    pub max_lifetime: Option<String>,
    pub require_expiry: Option<bool>,
    pub require_ip_filter: Option<bool>,
    pub require_filters: Option<bool>,
    pub allow_permission_updates: Option<bool>,
    pub allow_open_ip_filters: Option<bool>,
    /// `[policies.limits]`: the per-token limits of every token that does not set its own.
    pub limits: Option<RawLimits>,
}

/// The keys of a token's `limits` (see `admin::limits`), checked by the same parser.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub requests_per_second: Option<u64>,
    pub burst: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub max_open_scrolls: Option<u64>,
    pub max_open_pits: Option<u64>,
    pub max_running_async_searches: Option<u64>,
    pub max_msearch_searches: Option<u64>,
    pub max_size: Option<u64>,
    pub max_buckets: Option<u64>,
    pub search_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// `stdout`, `file` or `off`.
    pub output: Option<String>,
    pub path: Option<String>,
    /// `open` (default) or `closed`.
    pub on_failure: Option<String>,
}

/// Token ids `esgate_requests_total` labels before the rest count under `token_id="other"`.
pub const DEFAULT_MAX_TOKEN_SERIES: u64 = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub max_token_series: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    /// `text` or `json`.
    pub format: Option<String>,
}
