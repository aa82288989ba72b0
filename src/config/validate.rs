//! RawConfig → Config. Collects every problem with its key path instead of stopping at the
//! first; loads TLS material and parses addresses, URLs, durations and CIDRs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::{HeaderValue, Uri};
use ipnet::IpNet;

use super::raw::{self, RawConfig};
use super::{
    AdminKey, AuditOnFailure, AuditOutput, Auth, Backend, BackendAuthorization, Config,
    ConfigIssue, Limits, Log, Overrides, Policies, RelayHeaders, SecretSource, ServerTls, Sources,
    StoreKind, TlsDigest, REDACTED,
};
use crate::duration;

/// Validates a raw config (with command-line overrides applied) into a [`Config`] for
/// `esgate serve` (and `check-config`).
pub fn validate(
    raw: RawConfig,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    validate_for(Purpose::Serve, raw, overrides, env)
}

/// What a config is validated for: the rules of a running server (replicas must share one
/// admin key) do not bind the store commands, which read the store directly.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Serve,
    StoreCommand,
    /// `esgate token|filter|ip-filter|link`: the admin key is found as the server finds it,
    /// so the cluster store's rule (a configured key) holds.
    AdminClient,
}

pub(super) fn validate_for(
    purpose: Purpose,
    raw: RawConfig,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    let mut v = Validator { issues: vec![] };

    let data_listen = v.addr(
        "listen.data",
        overrides
            .listen
            .as_deref()
            .or(raw.listen.data.as_deref())
            .unwrap_or(raw::DEFAULT_DATA_LISTEN),
    );
    let admin_listen = v.addr(
        "listen.admin",
        overrides
            .admin_listen
            .as_deref()
            .or(raw.listen.admin.as_deref())
            .unwrap_or(raw::DEFAULT_ADMIN_LISTEN),
    );
    if let (Some(d), Some(a)) = (data_listen, admin_listen) {
        if d == a && d.port() != 0 {
            v.issue("listen.admin", "must differ from listen.data");
        }
    }

    let limits = Limits {
        max_connections: v.positive(
            "listen.max_connections",
            raw.listen.max_connections,
            raw::DEFAULT_MAX_CONNECTIONS,
        ),
        admin_max_connections: v.positive(
            "listen.admin_max_connections",
            raw.listen.admin_max_connections,
            raw::DEFAULT_ADMIN_MAX_CONNECTIONS,
        ),
        max_connections_per_ip: usize::try_from(raw.listen.max_connections_per_ip.unwrap_or(0))
            .unwrap_or(usize::MAX),
        workers: v.workers(raw.listen.workers),
        header_timeout: v.duration(
            "listen.header_timeout",
            raw.listen.header_timeout.as_deref(),
            raw::DEFAULT_HEADER_TIMEOUT,
        ),
        idle_timeout: v.duration(
            "listen.idle_timeout",
            raw.listen.idle_timeout.as_deref(),
            raw::DEFAULT_IDLE_TIMEOUT,
        ),
        h2_keep_alive_interval: v.duration(
            "listen.h2_keep_alive_interval",
            raw.listen.h2_keep_alive_interval.as_deref(),
            raw::DEFAULT_H2_KEEP_ALIVE_INTERVAL,
        ),
        h2_keep_alive_timeout: v.duration(
            "listen.h2_keep_alive_timeout",
            raw.listen.h2_keep_alive_timeout.as_deref(),
            raw::DEFAULT_H2_KEEP_ALIVE_TIMEOUT,
        ),
        h2_max_concurrent_streams: v.h2_streams(raw.listen.h2_max_concurrent_streams),
        max_header_bytes: v.positive(
            "listen.max_header_bytes",
            raw.listen.max_header_bytes,
            raw::DEFAULT_MAX_HEADER_BYTES,
        ),
        max_body_bytes: v.positive(
            "listen.max_body_bytes",
            raw.listen.max_body_bytes,
            raw::DEFAULT_MAX_BODY_BYTES,
        ),
        max_buffered_bytes: v.positive(
            "listen.max_buffered_bytes",
            raw.listen.max_buffered_bytes,
            raw::DEFAULT_MAX_BUFFERED_BYTES,
        ),
        buffered_wait: v.duration(
            "listen.buffered_wait",
            raw.listen.buffered_wait.as_deref(),
            raw::DEFAULT_BUFFERED_WAIT,
        ),
        drain_timeout: v.duration(
            "listen.drain_timeout",
            raw.listen.drain_timeout.as_deref(),
            raw::DEFAULT_DRAIN_TIMEOUT,
        ),
    };
    if limits.max_buffered_bytes < limits.max_body_bytes {
        v.issue(
            "listen.max_buffered_bytes",
            "must be at least listen.max_body_bytes, or a body of the largest size could never be read",
        );
    }
    if limits.max_header_bytes < 8192 {
        v.issue("listen.max_header_bytes", "must be at least 8192");
    }

    let server_tls = raw.listen.tls.as_ref().and_then(|tls| v.server_tls(tls));
    let backend = v.backend(&raw.backend, overrides, env);

    let store_path = PathBuf::from(
        overrides
            .store
            .as_deref()
            .or(raw.store.path.as_deref())
            .unwrap_or(raw::DEFAULT_STORE_PATH),
    );
    if store_path.as_os_str().is_empty() {
        v.issue("store.path", "must not be empty");
    }

    let store = v.store_kind(&raw.store, env);
    // A store "in another cluster" that is a backend node is in the cluster tokens read, and
    // its index would be guarded from none of them (`StoreKind::guarded_index`). Other nodes
    // of the same cluster cannot be told from its URLs.
    if let (StoreKind::Elasticsearch { urls, .. }, Some(backend)) = (&store, &backend) {
        if let Some(u) = urls
            .iter()
            .find(|u| backend.urls.iter().any(|b| same_node(u, b)))
        {
            v.issue(
                "store.urls",
                format!(
                    "{u} is a [backend] node: leave store.urls unset to keep the store in the backend cluster (its index is then out of every token's reach), or name another cluster's nodes"
                ),
            );
        }
    }

    let admin_key = v.admin_key(&raw.admin, env);
    if purpose != Purpose::StoreCommand && store != StoreKind::File && admin_key.is_none() {
        v.issue(
            "admin.key",
            "is required with store.kind = \"elasticsearch\" (set admin.key_env or ESGATE_ADMIN_KEY): replicas must share one admin key",
        );
    }
    let id_key = raw
        .ids
        .key_env
        .as_deref()
        .and_then(|name| v.id_key(name, env));

    let trusted_proxies = raw
        .auth
        .trusted_proxies
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| v.cidr(&format!("auth.trusted_proxies[{i}]"), s))
        .collect();
    let auth = Auth {
        trusted_proxies,
        max_failures: match raw.auth.max_failures {
            Some(0) => {
                v.issue("auth.max_failures", "must be at least 1");
                1
            }
            Some(n) => n,
            None => raw::DEFAULT_MAX_FAILURES,
        },
        failure_window: v.duration(
            "auth.failure_window",
            raw.auth.failure_window.as_deref(),
            raw::DEFAULT_FAILURE_WINDOW,
        ),
        max_tracked_addresses: v.positive(
            "auth.max_tracked_addresses",
            raw.auth.max_tracked_addresses,
            raw::DEFAULT_MAX_TRACKED_ADDRESSES,
        ),
    };

    let policies = Policies {
        max_lifetime: raw
            .policies
            .max_lifetime
            .as_deref()
            .map(|s| v.duration("policies.max_lifetime", Some(s), "1d")),
        require_expiry: raw.policies.require_expiry.unwrap_or(false),
        require_ip_filter: raw.policies.require_ip_filter.unwrap_or(false),
        require_filters: raw.policies.require_filters.unwrap_or(false),
        allow_permission_updates: raw.policies.allow_permission_updates.unwrap_or(true),
        allow_open_ip_filters: raw.policies.allow_open_ip_filters.unwrap_or(true),
        limits: {
            let mut limits: crate::store::model::TokenLimits = match &raw.policies.limits {
                None => Default::default(),
                // One parser for the admin API's `limits` and these defaults.
                Some(l) => match serde_json::to_value(l)
                    .map_err(|e| e.to_string())
                    .and_then(|j| {
                        crate::admin::limits::parse(&j, "policies.limits").map_err(|e| e.reason)
                    }) {
                    Ok(l) => l,
                    Err(reason) => {
                        v.issue("policies.limits", reason);
                        Default::default()
                    }
                },
            };
            // The limits set by default: a token's open scrolls and points in time hold search
            // contexts every client of the cluster shares (docs/configuration.md).
            limits
                .max_open_scrolls
                .get_or_insert(crate::scrolls::DEFAULT_MAX_OPEN_SCROLLS);
            limits
                .max_open_pits
                .get_or_insert(crate::scrolls::DEFAULT_MAX_OPEN_PITS);
            limits
                .max_running_async_searches
                .get_or_insert(crate::scrolls::DEFAULT_MAX_RUNNING_ASYNC_SEARCHES);
            // And one `_msearch`'s searches, which its coordinating node runs and holds the
            // answers of together (msearch27).
            limits
                .max_msearch_searches
                .get_or_insert(crate::throttle::DEFAULT_MAX_MSEARCH_SEARCHES);
            limits
        },
    };

    let audit = match (
        raw.audit.output.as_deref().unwrap_or("stdout"),
        raw.audit.path.as_deref(),
    ) {
        ("off", None) => AuditOutput::Off,
        ("stdout", None) => AuditOutput::Stdout,
        ("file", Some(p)) if !p.is_empty() => AuditOutput::File(PathBuf::from(p)),
        ("file", _) => {
            v.issue("audit.path", "is required when audit.output is \"file\"");
            AuditOutput::Off
        }
        ("off" | "stdout", Some(_)) => {
            v.issue("audit.path", "is only used when audit.output is \"file\"");
            AuditOutput::Off
        }
        _ => {
            v.issue("audit.output", "must be \"stdout\", \"file\" or \"off\"");
            AuditOutput::Off
        }
    };

    let audit_on_failure = match raw.audit.on_failure.as_deref() {
        None | Some("open") => AuditOnFailure::Open,
        Some("closed") if raw.audit.output.as_deref() == Some("off") => {
            v.issue(
                "audit.on_failure",
                "\"closed\" needs an audit output (audit.output is \"off\")",
            );
            AuditOnFailure::Open
        }
        Some("closed") => AuditOnFailure::Closed,
        Some(_) => {
            v.issue("audit.on_failure", "must be \"open\" or \"closed\"");
            AuditOnFailure::Open
        }
    };

    let level = raw.log.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() || !names_levels(&level) {
        v.issue(
            "log.level",
            "must be a level (error, warn, info, debug, trace, off) or a filter directive such as \"info,esgate=debug\"",
        );
    }
    let json = match raw.log.format.as_deref().unwrap_or("text") {
        "text" => false,
        "json" => true,
        _ => {
            v.issue("log.format", "must be \"text\" or \"json\"");
            false
        }
    };

    let max_token_series = raw
        .metrics
        .max_token_series
        .unwrap_or(raw::DEFAULT_MAX_TOKEN_SERIES);
    if max_token_series > 100_000 {
        v.issue(
            "metrics.max_token_series",
            "must be at most 100000 (each token id is a series on every scrape)",
        );
    }
    let metrics = crate::config::MetricsConfig {
        max_token_series: usize::try_from(max_token_series).unwrap_or(usize::MAX),
    };
    let kibana = raw
        .kibana
        .as_ref()
        .and_then(|k| v.kibana(k, data_listen, admin_listen));

    let sources = Sources {
        backend_username: raw.backend.username.clone(),
        backend_password: secret_source(&raw.backend.password, &raw.backend.password_env),
        backend_api_key: secret_source(&raw.backend.api_key, &raw.backend.api_key_env),
        backend_ca_file: raw.backend.ca_file.as_ref().map(PathBuf::from),
        backend_client_cert_file: raw.backend.client_cert_file.as_ref().map(PathBuf::from),
        backend_client_key_file: raw.backend.client_key_file.as_ref().map(PathBuf::from),
        store_username: raw.store.username.clone(),
        store_password: secret_source(&raw.store.password, &raw.store.password_env),
        store_api_key: secret_source(&raw.store.api_key, &raw.store.api_key_env),
        admin_key: match secret_source(&raw.admin.key, &raw.admin.key_env) {
            SecretSource::Unset if admin_key.is_some() => {
                SecretSource::Env(raw::DEFAULT_ADMIN_KEY_ENV.to_owned())
            }
            source => source,
        },
        ids_key_env: raw.ids.key_env.clone(),
    };

    match (v.issues.is_empty(), data_listen, admin_listen, backend) {
        (true, Some(data_listen), Some(admin_listen), Some(backend)) => Ok(Config {
            data_listen,
            admin_listen,
            server_tls,
            limits,
            backend,
            store_path,
            store,
            admin_key,
            id_key,
            auth,
            policies,
            audit,
            audit_on_failure,
            log: Log { level, json },
            metrics,
            kibana,
            sources,
        }),
        _ => Err(v.issues),
    }
}

/// Where a secret set either inline or through an environment variable came from.
fn secret_source(inline: &Option<String>, env_name: &Option<String>) -> SecretSource {
    match (inline, env_name) {
        (_, Some(name)) => SecretSource::Env(name.clone()),
        (Some(_), None) => SecretSource::Inline,
        (None, None) => SecretSource::Unset,
    }
}

/// The message for a secret that is `check-config`'s placeholder instead of a real value.
fn redacted_message(path: &str) -> String {
    format!(
        "is {REDACTED:?}, the placeholder check-config prints for a secret: put the real value here or name an environment variable with {path}_env"
    )
}

struct Validator {
    issues: Vec<ConfigIssue>,
}

/// A credential's keys as a section spells them (`[backend]` and `[store]` share the shape).
struct CredentialKeys<'a> {
    section: &'static str,
    username: Option<&'a str>,
    password: Option<&'a str>,
    password_env: Option<&'a str>,
    api_key: Option<&'a str>,
    api_key_env: Option<&'a str>,
}

impl Validator {
    fn issue(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.issue(
                    path,
                    "must be an address with a port, such as 127.0.0.1:9201 or [::1]:9201",
                );
                None
            }
        }
    }

    fn duration(&mut self, path: &str, text: Option<&str>, default: &str) -> Duration {
        let text = text.unwrap_or(default);
        match duration::parse(text) {
            Ok(d) if d.is_zero() => {
                self.issue(path, "must be greater than zero");
                Duration::from_secs(1)
            }
            Ok(d) => d,
            Err(e) => {
                self.issue(path, e.to_string());
                Duration::from_secs(1)
            }
        }
    }

    fn positive(&mut self, path: &str, value: Option<u64>, default: u64) -> usize {
        match value {
            Some(0) => {
                self.issue(path, "must be greater than zero");
                1
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => default as usize,
        }
    }

    /// `backend.max_connections_per_token`: at least one and at most the node's cap; unset,
    /// half of it (rounded up: a cap of 1 leaves its one connection to any token).
    fn per_token(&mut self, value: Option<u64>, per_node: usize) -> usize {
        let path = "backend.max_connections_per_token";
        match value {
            None => per_node.div_ceil(2),
            Some(0) => {
                self.issue(path, "must be greater than zero");
                1
            }
            Some(n) if n > per_node as u64 => {
                self.issue(
                    path,
                    format!(
                        "must be at most backend.max_connections_per_node ({per_node}); equal to it, one token may hold every connection"
                    ),
                );
                per_node
            }
            Some(n) => n as usize,
        }
    }

    /// `listen.h2_max_concurrent_streams`: at least one, and what an HTTP/2 SETTINGS frame
    /// can say (31 bits).
    fn h2_streams(&mut self, value: Option<u64>) -> u32 {
        let path = "listen.h2_max_concurrent_streams";
        match value {
            None => raw::DEFAULT_H2_MAX_CONCURRENT_STREAMS as u32,
            Some(0) => {
                self.issue(
                    path,
                    "must be greater than zero (HTTP/2 clients could send nothing)",
                );
                1
            }
            Some(n) if n > i32::MAX as u64 => {
                self.issue(path, format!("must be at most {}", i32::MAX));
                1
            }
            Some(n) => n as u32,
        }
    }

    fn workers(&mut self, value: Option<u64>) -> usize {
        let n = value.unwrap_or(raw::DEFAULT_WORKERS);
        if n > raw::MAX_WORKERS {
            self.issue(
                "listen.workers",
                format!("must be at most {} (0: one per CPU)", raw::MAX_WORKERS),
            );
            return 0;
        }
        n as usize
    }

    fn cidr(&mut self, path: &str, text: &str) -> Option<IpNet> {
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(n) => Some(n.trunc()),
            Err(_) => {
                self.issue(
                    path,
                    "must be a CIDR (10.0.0.0/8, 2001:db8::/32) or an address",
                );
                None
            }
        }
    }

    fn secret_value(
        &mut self,
        path: &str,
        direct: Option<&str>,
        env_path: &str,
        env_name: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        match (direct, env_name) {
            (Some(_), Some(_)) => {
                self.issue(path, format!("set either {path} or {env_path}, not both"));
                None
            }
            (Some(v), None) if v == REDACTED => {
                self.issue(path, redacted_message(path));
                None
            }
            (Some(v), None) => Some(v.to_owned()),
            (None, Some(name)) => match env(name) {
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    self.issue(env_path, format!("environment variable {name} is not set"));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn server_tls(&mut self, raw: &raw::RawServerTls) -> Option<ServerTls> {
        let handshake_timeout = self.duration(
            "listen.tls.handshake_timeout",
            raw.handshake_timeout.as_deref(),
            raw::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        );
        let (Some(cert_file), Some(key_file)) = (&raw.cert_file, &raw.key_file) else {
            self.issue("listen.tls", "needs both cert_file and key_file");
            return None;
        };
        let certs = self.load_certs("listen.tls.cert_file", cert_file)?;
        let key = self.load_key("listen.tls.key_file", key_file)?;
        let provider = crate::config::tls_crypto();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.issue("listen.tls", e.to_string()))
            .ok()?
            .with_no_client_auth()
            .with_single_cert(certs, key);
        match config {
            Ok(mut config) => {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                Some(ServerTls {
                    config: Arc::new(config),
                    handshake_timeout,
                    cert_file: cert_file.into(),
                    key_file: key_file.into(),
                })
            }
            Err(e) => {
                self.issue(
                    "listen.tls",
                    format!("certificate and key do not fit together: {e}"),
                );
                None
            }
        }
    }

    fn load_certs(
        &mut self,
        path: &str,
        file: &str,
    ) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                self.issue(path, format!("cannot read {file}: {e}"));
                return None;
            }
        };
        let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut bytes.as_slice()).collect();
        match certs {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                self.issue(path, format!("{file} holds no PEM certificate"));
                None
            }
            Err(e) => {
                self.issue(path, format!("{file} is not valid PEM: {e}"));
                None
            }
        }
    }

    fn load_key(
        &mut self,
        path: &str,
        file: &str,
    ) -> Option<rustls::pki_types::PrivateKeyDer<'static>> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                self.issue(path, format!("cannot read {file}: {e}"));
                return None;
            }
        };
        match rustls_pemfile::private_key(&mut bytes.as_slice()) {
            Ok(Some(k)) => Some(k),
            Ok(None) => {
                self.issue(path, format!("{file} holds no PEM private key"));
                None
            }
            Err(e) => {
                self.issue(path, format!("{file} is not valid PEM: {e}"));
                None
            }
        }
    }

    /// `[store]`: the kind, and for the cluster store its index, nodes and poll interval.
    fn store_kind(
        &mut self,
        raw: &raw::RawStore,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> StoreKind {
        let cluster_only = [
            ("store.index", raw.index.is_some()),
            ("store.urls", raw.urls.is_some()),
            ("store.poll_interval", raw.poll_interval.is_some()),
            (
                "store.tombstone_retention",
                raw.tombstone_retention.is_some(),
            ),
            ("store.username", raw.username.is_some()),
            ("store.password", raw.password.is_some()),
            ("store.password_env", raw.password_env.is_some()),
            ("store.api_key", raw.api_key.is_some()),
            ("store.api_key_env", raw.api_key_env.is_some()),
            ("store.ca_file", raw.ca_file.is_some()),
        ];
        match raw.kind.as_deref().unwrap_or("file") {
            "file" => {
                for (key, set) in cluster_only {
                    if set {
                        self.issue(key, "is only used when store.kind is \"elasticsearch\"");
                    }
                }
                StoreKind::File
            }
            "elasticsearch" => {
                let index = raw
                    .index
                    .clone()
                    .unwrap_or_else(|| raw::DEFAULT_STORE_INDEX.to_owned());
                // A dot name: no `*` pattern reaches it; lowercase and plain: a valid index name
                // that no expression can read as a pattern, date math or list.
                let plain = index.len() >= 2
                    && index.len() <= 200
                    && index.starts_with('.')
                    && index != ".."
                    && index.bytes().skip(1).all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'-' | b'_' | b'.')
                    });
                if !plain {
                    self.issue(
                        "store.index",
                        "must start with '.' and hold only lowercase letters, digits, '-', '_' and '.' (at most 200 characters)",
                    );
                }
                let urls: Vec<Uri> = raw
                    .urls
                    .iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(i, text)| self.node_url(&format!("store.urls[{i}]"), text))
                    .collect();
                if raw.urls.as_ref().is_some_and(|u| u.is_empty()) {
                    self.issue("store.urls", "needs at least one URL when set");
                }
                let poll_interval = self.duration(
                    "store.poll_interval",
                    raw.poll_interval.as_deref(),
                    raw::DEFAULT_STORE_POLL_INTERVAL,
                );
                if poll_interval > Duration::from_secs(1)
                    || poll_interval < Duration::from_millis(50)
                {
                    self.issue(
                        "store.poll_interval",
                        "must be between 50ms and 1s (changes must reach every replica within a second)",
                    );
                }
                let tombstone_retention = self.duration(
                    "store.tombstone_retention",
                    raw.tombstone_retention.as_deref(),
                    raw::DEFAULT_STORE_TOMBSTONE_RETENTION,
                );
                // A replica reads the whole store again after half the retention without a
                // successful poll: that half must leave room for several polls.
                if tombstone_retention < Duration::from_secs(4) {
                    self.issue(
                        "store.tombstone_retention",
                        "must be at least 4s (a replica out of touch for half of it reloads the whole store)",
                    );
                }
                let authorization = self.credential(
                    CredentialKeys {
                        section: "store",
                        username: raw.username.as_deref(),
                        password: raw.password.as_deref(),
                        password_env: raw.password_env.as_deref(),
                        api_key: raw.api_key.as_deref(),
                        api_key_env: raw.api_key_env.as_deref(),
                    },
                    env,
                );
                // The backend cluster is reached as `[backend]` says; another cluster may need
                // roots of its own. No client certificate: that is the backend's identity.
                let tls = match (&raw.ca_file, raw.urls.is_some()) {
                    (Some(ca), true) => self.client_tls("store", Some(ca), None, None),
                    (Some(_), false) => {
                        self.issue(
                            "store.ca_file",
                            "is only used with store.urls (the backend cluster is reached with [backend]'s TLS settings)",
                        );
                        None
                    }
                    (None, _) => None,
                };
                StoreKind::Elasticsearch {
                    index,
                    urls,
                    poll_interval,
                    tombstone_retention,
                    access: crate::config::StoreAccess {
                        authorization,
                        tls_digest: tls.as_ref().map(|t| t.1).unwrap_or_default(),
                        tls: tls.map(|t| t.0),
                        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
                    },
                }
            }
            _ => {
                self.issue("store.kind", "must be \"file\" or \"elasticsearch\"");
                StoreKind::File
            }
        }
    }

    fn backend(
        &mut self,
        raw: &raw::RawBackend,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Backend> {
        let texts: Vec<String> = if !overrides.backends.is_empty() {
            overrides.backends.clone()
        } else {
            raw.urls
                .clone()
                .unwrap_or_else(|| vec![raw::DEFAULT_BACKEND.to_owned()])
        };
        if texts.is_empty() {
            self.issue("backend.urls", "needs at least one URL");
        }
        let urls: Vec<Uri> = texts
            .iter()
            .enumerate()
            .filter_map(|(i, text)| self.node_url(&format!("backend.urls[{i}]"), text))
            .collect();

        let authorization = self.credential(
            CredentialKeys {
                section: "backend",
                username: raw.username.as_deref(),
                password: raw.password.as_deref(),
                password_env: raw.password_env.as_deref(),
                api_key: raw.api_key.as_deref(),
                api_key_env: raw.api_key_env.as_deref(),
            },
            env,
        );

        let (tls, tls_digest) = self.client_tls(
            "backend",
            raw.ca_file.as_deref(),
            raw.client_cert_file.as_deref(),
            raw.client_key_file.as_deref(),
        )?;
        let max_connections_per_node = self.positive(
            "backend.max_connections_per_node",
            raw.max_connections_per_node,
            raw::DEFAULT_MAX_CONNECTIONS_PER_NODE,
        );
        let max_connections_per_token =
            self.per_token(raw.max_connections_per_token, max_connections_per_node);
        let relay_headers = self.relay_headers(raw.relay_headers.as_deref().unwrap_or_default());
        Some(Backend {
            urls,
            authorization,
            tls,
            tls_digest,
            connect_timeout: self.connect_timeout(raw.connect_timeout.as_deref()),
            request_timeout: self.duration(
                "backend.request_timeout",
                raw.request_timeout.as_deref(),
                raw::DEFAULT_REQUEST_TIMEOUT,
            ),
            body_idle_timeout: self.duration(
                "backend.body_idle_timeout",
                raw.body_idle_timeout.as_deref(),
                raw::DEFAULT_BODY_IDLE_TIMEOUT,
            ),
            answer_timeout: self.duration(
                "backend.answer_timeout",
                raw.answer_timeout.as_deref(),
                raw::DEFAULT_ANSWER_TIMEOUT,
            ),
            pool_idle_timeout: self.pool_idle(raw.pool_idle_timeout.as_deref()),
            max_connections_per_node,
            max_connections_per_token,
            unhealthy_cooldown: self.duration(
                "backend.unhealthy_cooldown",
                raw.unhealthy_cooldown.as_deref(),
                raw::DEFAULT_UNHEALTHY_COOLDOWN,
            ),
            resolve_cache_ttl: self.duration(
                "backend.resolve_cache_ttl",
                raw.resolve_cache_ttl.as_deref(),
                raw::DEFAULT_RESOLVE_CACHE_TTL,
            ),
            relay_headers,
        })
    }

    /// `backend.relay_headers`: header names, each exact, none that esgate never relays (a
    /// credential, run-as, an authenticating proxy's, routing, framing or esgate's own).
    fn relay_headers(&mut self, names: &[String]) -> RelayHeaders {
        match RelayHeaders::new(names.iter().map(String::as_str)) {
            Ok(r) => r,
            Err(refused) => {
                for (i, why) in refused {
                    self.issue(&format!("backend.relay_headers[{i}]"), why);
                }
                RelayHeaders::default()
            }
        }
    }

    /// `[kibana]`: every key required; URLs absolute http(s) without credentials, query or
    /// fragment; the listener apart from the other two.
    fn kibana(
        &mut self,
        raw: &raw::RawKibana,
        data: Option<SocketAddr>,
        admin: Option<SocketAddr>,
    ) -> Option<crate::config::KibanaFront> {
        let before = self.issues.len();
        let mut base_url = |path: &str, text: Option<&str>| -> Option<(Uri, bool)> {
            let Some(text) = text else {
                self.issue(path, "is required in [kibana]");
                return None;
            };
            let uri: Option<Uri> = text.parse().ok();
            let ok = uri.as_ref().filter(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.authority().is_some_and(|a| !a.as_str().contains('@'))
                    && u.query().is_none()
                    && matches!(u.path(), "" | "/")
                    && !text.contains('#')
            });
            match ok {
                Some(u) => Some((u.clone(), u.scheme_str() == Some("https"))),
                None => {
                    self.issue(
                        path,
                        "must be an http:// or https:// URL with a host and no path, query or credentials",
                    );
                    None
                }
            }
        };
        let url = base_url("kibana.url", raw.url.as_deref());
        let public = base_url("kibana.public_url", raw.public_url.as_deref());
        let listen = match raw.listen.as_deref() {
            Some(l) => self.addr("kibana.listen", l),
            None => {
                self.issue("kibana.listen", "is required in [kibana]");
                None
            }
        };
        if let Some(l) = listen {
            if l.port() != 0 && (Some(l) == data || Some(l) == admin) {
                self.issue(
                    "kibana.listen",
                    "must differ from listen.data and listen.admin",
                );
            }
        }
        if self.issues.len() != before {
            return None;
        }
        let ((url, _), (public, secure), listen) = (url?, public?, listen?);
        Some(crate::config::KibanaFront {
            url,
            listen,
            public_url: public.to_string().trim_end_matches('/').to_owned(),
            secure,
        })
    }

    /// A cluster node's base URL: http or https, a host, no path, query or credentials.
    fn node_url(&mut self, path: &str, text: &str) -> Option<Uri> {
        match text.parse::<Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some()
                    && matches!(u.path(), "" | "/")
                    && u.query().is_none()
                    && !u.authority().is_some_and(|a| a.as_str().contains('@')) =>
            {
                Some(u)
            }
            _ => {
                self.issue(
                    path,
                    "must be an http:// or https:// URL with a host and no path, query or credentials",
                );
                None
            }
        }
    }

    /// `backend.connect_timeout`: at most five minutes (Linux gives up a TCP connect whose
    /// SYNs go unanswered after about two). A node whose cool-down ended is probed by one
    /// request for up to twice this (attack22b: an absurd value kept such a node out for good).
    fn connect_timeout(&mut self, text: Option<&str>) -> Duration {
        let path = "backend.connect_timeout";
        let d = self.duration(path, text, raw::DEFAULT_CONNECT_TIMEOUT);
        if d > Duration::from_secs(300) {
            self.issue(path, "must be at most 5m");
        }
        d
    }

    fn pool_idle(&mut self, text: Option<&str>) -> Duration {
        let d = self.duration(
            "backend.pool_idle_timeout",
            text,
            raw::DEFAULT_POOL_IDLE_TIMEOUT,
        );
        // Some backends close idle keep-alive connections after ~30 s; a pooled connection must
        // be dropped before that or the next request races the close.
        if d >= Duration::from_secs(30) {
            self.issue("backend.pool_idle_timeout", "must be shorter than 30s");
        }
        d
    }

    fn header(&mut self, path: &str, value: String) -> Option<BackendAuthorization> {
        match HeaderValue::from_str(&value) {
            Ok(mut h) => {
                h.set_sensitive(true);
                Some(BackendAuthorization(h))
            }
            Err(_) => {
                self.issue(path, "contains characters not allowed in an HTTP header");
                None
            }
        }
    }

    /// The credential a section's keys name (`[backend]`, `[store]`: one parser for both):
    /// username + password (or `password_env`), or `api_key` (or `api_key_env`), or none.
    fn credential(
        &mut self,
        keys: CredentialKeys<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<BackendAuthorization> {
        let section = keys.section;
        let key = |name: &str| format!("{section}.{name}");
        let password = self.secret_value(
            &key("password"),
            keys.password,
            &key("password_env"),
            keys.password_env,
            env,
        );
        let api_key = self.secret_value(
            &key("api_key"),
            keys.api_key,
            &key("api_key_env"),
            keys.api_key_env,
            env,
        );
        match (keys.username, password, api_key) {
            (Some(_), _, Some(_)) => {
                self.issue(section, "use either username/password or api_key, not both");
                None
            }
            (Some(user), Some(pass), None) => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                self.header(&key("password"), format!("Basic {encoded}"))
            }
            (Some(_), None, None) if keys.password.is_none() && keys.password_env.is_none() => {
                self.issue(
                    &key("password"),
                    format!("is required with {section}.username (or set {section}.password_env)"),
                );
                None
            }
            (None, Some(_), None) => {
                self.issue(
                    &key("username"),
                    format!("is required with a {section} password"),
                );
                None
            }
            (None, _, Some(k)) => self.header(&key("api_key"), format!("ApiKey {k}")),
            (_, None, None) => None,
        }
    }

    /// TLS settings for a cluster's nodes: `ca_file`'s roots (default: the system's) and an
    /// optional client certificate, with the digest of what they were built from
    /// ([`TlsDigest`]); problems are reported under `section`.
    fn client_tls(
        &mut self,
        section: &str,
        ca_file: Option<&str>,
        client_cert_file: Option<&str>,
        client_key_file: Option<&str>,
    ) -> Option<(Arc<rustls::ClientConfig>, TlsDigest)> {
        use sha2::Digest;
        // Each part as its kind, its length and its bytes: no two sequences digest alike.
        let mut digest = sha2::Sha256::new();
        let mut feed = |kind: u8, der: &[u8]| {
            digest.update([kind]);
            digest.update((der.len() as u64).to_be_bytes());
            digest.update(der);
        };
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = ca_file {
            let path = format!("{section}.ca_file");
            for cert in self.load_certs(&path, ca)? {
                feed(b'r', &cert);
                if let Err(e) = roots.add(cert) {
                    self.issue(&path, format!("unusable CA certificate: {e}"));
                }
            }
        } else {
            // System roots; an empty or unreadable system store only matters for https backends.
            let loaded = rustls_native_certs::load_native_certs();
            for cert in loaded.certs {
                feed(b'r', &cert);
                let _ = roots.add(cert);
            }
        }
        let provider = crate::config::tls_crypto();
        let builder = match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b.with_root_certificates(roots),
            Err(e) => {
                self.issue(section, e.to_string());
                return None;
            }
        };
        let config = match (client_cert_file, client_key_file) {
            (Some(cert), Some(key)) => {
                let cert_path = format!("{section}.client_cert_file");
                let certs = self.load_certs(&cert_path, cert)?;
                let key = self.load_key(&format!("{section}.client_key_file"), key)?;
                for cert in &certs {
                    feed(b'c', cert);
                }
                feed(b'k', key.secret_der());
                match builder.with_client_auth_cert(certs, key) {
                    Ok(c) => c,
                    Err(e) => {
                        self.issue(
                            &cert_path,
                            format!("certificate and key do not fit together: {e}"),
                        );
                        return None;
                    }
                }
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                self.issue(section, "client_cert_file and client_key_file go together");
                return None;
            }
        };
        Some((Arc::new(config), TlsDigest(digest.finalize().into())))
    }

    fn admin_key(
        &mut self,
        raw: &raw::RawAdmin,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<AdminKey> {
        // The variable the key was read from, so a short one is reported where it was set.
        let mut from_env = None;
        let key = match (&raw.key, &raw.key_env) {
            (Some(_), Some(_)) => {
                self.issue(
                    "admin.key",
                    "set either admin.key or admin.key_env, not both",
                );
                None
            }
            (Some(k), None) if k == REDACTED => {
                self.issue("admin.key", redacted_message("admin.key"));
                None
            }
            (Some(k), None) => Some(k.clone()),
            (None, Some(name)) => match env(name) {
                Some(k) if !k.is_empty() => {
                    from_env = Some(name.as_str());
                    Some(k)
                }
                _ => {
                    self.issue(
                        "admin.key_env",
                        format!("environment variable {name} is not set"),
                    );
                    None
                }
            },
            // Default: the environment variable of the spec, optional.
            (None, None) => {
                from_env = Some(raw::DEFAULT_ADMIN_KEY_ENV);
                env(raw::DEFAULT_ADMIN_KEY_ENV).filter(|k| !k.is_empty())
            }
        }?;
        if key.len() < super::MIN_ADMIN_KEY_LEN {
            match from_env {
                Some(name) => self.issue(
                    "admin.key_env",
                    format!("environment variable {name} must hold at least 16 characters"),
                ),
                None => self.issue("admin.key", "must be at least 16 characters"),
            }
            return None;
        }
        Some(AdminKey::new(key))
    }

    /// `ids.key_env`: the variable must hold base64 (standard or URL-safe) of exactly 32 bytes.
    fn id_key(
        &mut self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<super::IdKeyBytes> {
        use base64::Engine;
        let Some(text) = env(name).filter(|t| !t.trim().is_empty()) else {
            self.issue(
                "ids.key_env",
                format!("environment variable {name} is not set"),
            );
            return None;
        };
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text));
        match decoded
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        {
            Some(key) => Some(super::IdKeyBytes(key)),
            None => {
                // Never echo the value: it is a secret.
                self.issue(
                    "ids.key_env",
                    format!("environment variable {name} must hold base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)"),
                );
                None
            }
        }
    }
}

/// Whether two node URLs reach the same host and port (the scheme's port when none is given).
fn same_node(a: &Uri, b: &Uri) -> bool {
    let port = |u: &Uri| {
        u.port_u16().unwrap_or(if u.scheme_str() == Some("https") {
            443
        } else {
            80
        })
    };
    a.host()
        .zip(b.host())
        .is_some_and(|(x, y)| x.eq_ignore_ascii_case(y))
        && port(a) == port(b)
}

/// Whether every part of a `log.level` filter without a `=` is a level. A bare word is a valid
/// directive naming a target, so a misspelt level (`warning`, `verbose`) would pass parsing and
/// silence every log line, errors included. Parts naming a module path (`esgate::proxy`) or a
/// span (`[request]`) stay directives.
fn names_levels(filter: &str) -> bool {
    filter.split(',').map(str::trim).all(|part| {
        part.is_empty()
            || part.contains('=')
            || part.contains("::")
            || part.contains('[')
            || part
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn check(toml: &str) -> Result<Config, Vec<ConfigIssue>> {
        validate(parse(toml).expect("parses"), &Overrides::default(), &no_env)
    }

    fn paths(issues: Vec<ConfigIssue>) -> Vec<String> {
        issues.into_iter().map(|i| i.path).collect()
    }

    /// `audit.on_failure`: "open" by default, "closed" only with an output that can fail;
    /// anything else refused, naming the key.
    #[test]
    fn audit_on_failure_is_open_or_closed() {
        let with = |audit: &str| check(&format!("[audit]\n{audit}\n"));
        assert_eq!(with("").unwrap().audit_on_failure, AuditOnFailure::Open);
        assert_eq!(
            with("on_failure = \"open\"").unwrap().audit_on_failure,
            AuditOnFailure::Open
        );
        assert_eq!(
            with("on_failure = \"closed\"").unwrap().audit_on_failure,
            AuditOnFailure::Closed
        );
        for bad in [
            "on_failure = \"Closed\"",
            "on_failure = \"fail\"",
            "on_failure = \"\"",
            "output = \"off\"\non_failure = \"closed\"",
        ] {
            let issues = with(bad).map(|_| ()).unwrap_err();
            assert_eq!(paths(issues), vec!["audit.on_failure"], "{bad}");
        }
    }

    /// A misspelt level (`warning`, `verbose`) parses as a filter directive naming a target of
    /// that name, which silences every log line, errors included: refused, naming the levels.
    #[test]
    fn log_level_is_a_level_or_a_directive_with_targets() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,esgate=debug",
            "esgate::proxy=trace",
            "3",
        ] {
            assert!(
                check(&format!("[log]\nlevel = {good:?}\n")).is_ok(),
                "{good}"
            );
        }
        for bad in ["warning", "verbose", "info,verbose", "info,esgate=loud"] {
            let issues = check(&format!("[log]\nlevel = {bad:?}\n")).unwrap_err();
            assert_eq!(paths(issues.clone()), vec!["log.level"], "{bad}");
            assert!(issues[0].message.contains("warn"), "{issues:?}");
        }
    }

    /// `[kibana]` (issue #16): every key required, URLs plain http(s) bases, the listener apart.
    #[test]
    fn kibana_front_settings_are_checked() {
        let ok = check(
            "[kibana]\nurl = \"http://kibana:5601\"\nlisten = \"0.0.0.0:5602\"\n\
             public_url = \"https://dash.example.com/\"\n",
        )
        .expect("valid");
        let k = ok.kibana.expect("front");
        assert_eq!(k.public_url, "https://dash.example.com");
        assert!(k.secure);
        assert_eq!(k.listen.port(), 5602);
        let cases: &[(&str, &str)] = &[
            (
                "url = \"http://k:5601\"\nlisten = \"0.0.0.0:5602\"",
                "kibana.public_url",
            ),
            (
                "public_url = \"https://d\"\nlisten = \"0.0.0.0:5602\"",
                "kibana.url",
            ),
            (
                "url = \"http://k\"\npublic_url = \"https://d\"",
                "kibana.listen",
            ),
            (
                "url = \"ftp://k\"\npublic_url = \"https://d\"\nlisten = \"0.0.0.0:1\"",
                "kibana.url",
            ),
            (
                "url = \"http://k/base\"\npublic_url = \"https://d\"\nlisten = \"0.0.0.0:1\"",
                "kibana.url",
            ),
            (
                "url = \"http://k\"\npublic_url = \"https://u:p@d\"\nlisten = \"0.0.0.0:1\"",
                "kibana.public_url",
            ),
            (
                "url = \"http://k\"\npublic_url = \"https://d?x=1\"\nlisten = \"0.0.0.0:1\"",
                "kibana.public_url",
            ),
            (
                "url = \"http://k\"\npublic_url = \"https://d\"\nlisten = \"127.0.0.1:9201\"",
                "kibana.listen",
            ),
        ];
        for (body, path) in cases {
            let issues = check(&format!("[kibana]\n{body}\n")).map(|_| ()).err();
            let found = issues.map(paths).unwrap_or_default();
            assert!(found.iter().any(|p| p.contains(path)), "{body}: {found:?}");
        }
        // Unknown keys are refused when the file is read.
        assert!(parse("[kibana]\nx = 1\n").is_err());
    }

    #[test]
    fn empty_config_gives_the_documented_defaults() {
        let c = check("").unwrap();
        assert_eq!(c.data_listen.to_string(), "127.0.0.1:9201");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9202");
        assert_eq!(c.backend.urls[0].to_string(), "http://127.0.0.1:9200/");
        assert_eq!(c.store_path, PathBuf::from("./data"));
        assert_eq!(c.limits.max_body_bytes, 100 * 1024 * 1024);
        assert_eq!(c.limits.max_buffered_bytes, 1024 * 1024 * 1024);
        assert_eq!(c.limits.buffered_wait, Duration::from_secs(30));
        assert!(c.admin_key.is_none());
    }

    /// Review 16d: `store.urls` naming a `[backend]` node keeps the store in the cluster tokens
    /// read while esgate believes it elsewhere: its index was then guarded from no token (a
    /// `read` token's `.*` accepted and served, an `all` token's requests unchecked). Refused;
    /// unset, or another cluster's nodes, are accepted.
    #[test]
    fn store_urls_naming_a_backend_node_are_refused() {
        let key = "[admin]\nkey = \"0123456789abcdef0\"\n";
        let backend =
            "[backend]\nurls = [\"https://es1.example:9200\", \"http://10.0.0.2:9200\"]\n";
        for urls in [
            "[\"https://es1.example:9200\"]",
            "[\"https://ES1.example:9200/\"]",
            "[\"http://es1.example:9200\"]",
            "[\"https://other.example:9200\", \"http://10.0.0.2:9200\"]",
            "[\"http://10.0.0.2:9200\"]",
        ] {
            let toml = format!("{backend}[store]\nkind = \"elasticsearch\"\nurls = {urls}\n{key}");
            assert_eq!(
                paths(check(&toml).unwrap_err()),
                vec!["store.urls"],
                "{urls}"
            );
        }
        for urls in [
            "[\"https://store.example:9200\"]",
            "[\"https://es1.example:9201\"]",
            "[\"http://10.0.0.3:9200\"]",
        ] {
            let toml = format!("{backend}[store]\nkind = \"elasticsearch\"\nurls = {urls}\n{key}");
            assert!(check(&toml).is_ok(), "{urls}");
        }
        // Default ports: `http://h` is `http://h:80`.
        let toml = format!(
            "[backend]\nurls = [\"http://es\"]\n[store]\nkind = \"elasticsearch\"\nurls = [\"http://es:80\"]\n{key}"
        );
        assert_eq!(paths(check(&toml).unwrap_err()), vec!["store.urls"]);
    }

    #[test]
    fn the_cluster_store_settings_are_checked() {
        let key = "[admin]\nkey = \"0123456789abcdef0\"\n";
        let c = check(&format!("[store]\nkind = \"elasticsearch\"\n{key}")).unwrap();
        assert_eq!(
            c.store,
            StoreKind::Elasticsearch {
                index: ".esgate".into(),
                urls: vec![],
                poll_interval: Duration::from_millis(500),
                tombstone_retention: Duration::from_secs(7 * 86_400),
                access: Default::default(),
            }
        );
        assert_eq!(check("").unwrap().store, StoreKind::File);
        let cases: &[(&str, &[&str])] = &[
            ("[store]\nkind = \"elasticsearch\"\n", &["admin.key"]),
            ("[store]\nkind = \"cassandra\"\n", &["store.kind"]),
            ("[store]\nindex = \".x\"\n", &["store.index"]),
            (
                "[store]\npoll_interval = \"1s\"\nurls = []\ntombstone_retention = \"1d\"\n",
                &[
                    "store.urls",
                    "store.poll_interval",
                    "store.tombstone_retention",
                ],
            ),
        ];
        for (toml, want) in cases {
            let mut got = paths(check(toml).unwrap_err());
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{toml}");
        }
        for (setting, path) in [
            ("index = \"esgate\"", "store.index"),
            ("index = \".ESGATE\"", "store.index"),
            ("index = \".a*\"", "store.index"),
            ("index = \".a,b\"", "store.index"),
            ("urls = [\"ftp://x\"]", "store.urls[0]"),
            ("urls = []", "store.urls"),
            ("poll_interval = \"2s\"", "store.poll_interval"),
            ("poll_interval = \"10ms\"", "store.poll_interval"),
            ("tombstone_retention = \"3s\"", "store.tombstone_retention"),
        ] {
            let toml = format!("[store]\nkind = \"elasticsearch\"\n{setting}\n{key}");
            assert_eq!(paths(check(&toml).unwrap_err()), vec![path], "{setting}");
        }
    }

    #[test]
    fn the_example_config_is_valid_and_states_the_defaults() {
        let example = check(include_str!("../../config/esgate.toml")).expect("valid");
        assert_eq!(example.describe(), check("").unwrap().describe());
        let c = check("").unwrap();
        assert_eq!(c.limits.admin_max_connections, 256);
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.backend.body_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.backend.answer_timeout, Duration::from_secs(120));
        assert_eq!(c.auth.max_tracked_addresses, 100_000);
        assert!(c.policies.allow_open_ip_filters);
        assert_eq!(c.limits.h2_max_concurrent_streams, 100);
        assert_eq!(c.backend.max_connections_per_node, 256);
        assert_eq!(c.backend.max_connections_per_token, 128);
        assert_eq!(c.backend.relay_headers, RelayHeaders::default());
    }

    /// hdr21: `backend.relay_headers` adds exact header names to what `all` tokens relay; a
    /// name esgate never relays (a credential, run-as, an authenticating proxy's, framing or
    /// esgate's own), a pattern or no header name refuses the configuration, each named.
    #[test]
    fn relay_headers_are_header_names_esgate_may_relay() {
        let with = |list: &str| check(&format!("[backend]\nrelay_headers = {list}\n"));
        let c = with(r#"["X-My-Header", "x-grafana-org-id"]"#).unwrap();
        assert_eq!(
            c.backend.relay_headers.names().collect::<Vec<_>>(),
            ["x-my-header", "x-grafana-org-id"]
        );
        assert_eq!(
            with("[]").unwrap().backend.relay_headers,
            RelayHeaders::default()
        );
        let issues = with(
            r#"["x-ok", "x-proxy-user", "es-security-runas-user", "x-grafana-*", "connection", "x-opaque-id", "no name"]"#,
        )
        .unwrap_err();
        assert_eq!(
            paths(issues.clone()),
            (1..=6)
                .map(|i| format!("backend.relay_headers[{i}]"))
                .collect::<Vec<_>>()
        );
        assert!(issues[0].message.contains("[x-proxy-user]"), "{issues:?}");
        assert!(issues[0].message.contains("never relays"), "{issues:?}");
        assert!(issues[2].message.contains("pattern"), "{issues:?}");
    }

    /// rel18: a token's share of a node's connections is half the node's cap unless set, and
    /// set, between one and that cap.
    #[test]
    fn a_tokens_share_is_half_the_node_cap_and_at_most_all_of_it() {
        for (toml, per_node, per_token) in [
            ("", 256, 128),
            ("max_connections_per_node = 5", 5, 3),
            ("max_connections_per_node = 1", 1, 1),
            ("max_connections_per_token = 256", 256, 256),
            (
                "max_connections_per_node = 10\nmax_connections_per_token = 1",
                10,
                1,
            ),
        ] {
            let c = check(&format!("[backend]\n{toml}\n")).unwrap();
            assert_eq!(
                (
                    c.backend.max_connections_per_node,
                    c.backend.max_connections_per_token
                ),
                (per_node, per_token),
                "{toml}"
            );
        }
        for (toml, says) in [
            ("max_connections_per_token = 0", "greater than zero"),
            (
                "max_connections_per_token = 257",
                "at most backend.max_connections_per_node (256)",
            ),
            (
                "max_connections_per_node = 4\nmax_connections_per_token = 5",
                "at most backend.max_connections_per_node (4)",
            ),
        ] {
            let issues = check(&format!("[backend]\n{toml}\n")).unwrap_err();
            assert_eq!(
                paths(issues.clone()),
                vec!["backend.max_connections_per_token"],
                "{toml}"
            );
            assert!(
                issues[0].to_string().contains(says),
                "{toml}: {}",
                issues[0]
            );
        }
    }

    /// rel17: both connection caps take any positive count; 0 (nothing could be served) and
    /// an h2 value past what SETTINGS can carry are refused with their key.
    #[test]
    fn connection_caps_are_positive() {
        let c = check(
            "[listen]\nh2_max_concurrent_streams = 1\n[backend]\nmax_connections_per_node = 1\n",
        )
        .unwrap();
        assert_eq!(c.limits.h2_max_concurrent_streams, 1);
        assert_eq!(c.backend.max_connections_per_node, 1);
        for (toml, path, says) in [
            (
                "[listen]\nh2_max_concurrent_streams = 0",
                "listen.h2_max_concurrent_streams",
                "greater than zero",
            ),
            (
                "[listen]\nh2_max_concurrent_streams = 2147483648",
                "listen.h2_max_concurrent_streams",
                "at most 2147483647",
            ),
            (
                "[backend]\nmax_connections_per_node = 0",
                "backend.max_connections_per_node",
                "greater than zero",
            ),
        ] {
            let issues = check(toml).unwrap_err();
            assert_eq!(paths(issues.clone()), vec![path], "{toml}");
            assert!(
                issues[0].to_string().contains(says),
                "{toml}: {}",
                issues[0]
            );
        }
    }

    #[test]
    fn policy_limits_are_the_token_limits_with_the_same_checks() {
        let c = check(
            "[policies.limits]\nrequests_per_second = 50\nburst = 100\nmax_concurrent = 10\n\
             max_size = 1000\nmax_buckets = 10000\nsearch_timeout = \"30s\"\n",
        )
        .unwrap();
        let l = c.policies.limits;
        assert_eq!(
            (l.requests_per_second, l.burst, l.max_concurrent),
            (Some(50), Some(100), Some(10))
        );
        assert_eq!(
            (l.max_size, l.max_buckets, l.search_timeout_ms),
            (Some(1000), Some(10_000), Some(30_000))
        );
        // Only `max_open_scrolls`, `max_open_pits`, `max_running_async_searches` and
        // `max_msearch_searches` are set by default; a token's own or the section's wins.
        assert_eq!(
            check("").unwrap().policies.limits,
            crate::store::model::TokenLimits {
                max_open_scrolls: Some(100),
                max_open_pits: Some(50),
                max_running_async_searches: Some(100),
                max_msearch_searches: Some(1000),
                ..Default::default()
            }
        );
        let set = check("[policies.limits]\nmax_running_async_searches = 9\n").unwrap();
        assert_eq!(
            (
                set.policies.limits.max_running_async_searches,
                set.policies.limits.max_open_pits
            ),
            (Some(9), Some(50))
        );
        let set = check("[policies.limits]\nmax_msearch_searches = 20\n").unwrap();
        assert_eq!(
            (
                set.policies.limits.max_msearch_searches,
                set.policies.limits.max_open_scrolls
            ),
            (Some(20), Some(100))
        );
        let set = check("[policies.limits]\nmax_open_scrolls = 5\n").unwrap();
        assert_eq!(set.policies.limits.max_open_scrolls, Some(5));
        let set = check("[policies.limits]\nmax_open_pits = 7\n").unwrap();
        assert_eq!(
            (
                set.policies.limits.max_open_pits,
                set.policies.limits.max_open_scrolls
            ),
            (Some(7), Some(100))
        );
        for bad in [
            "max_size = 0",
            "search_timeout = \"0s\"",
            "search_timeout = \"2d\"",
            "requests_per_second = 5000000",
            "max_open_scrolls = 0",
            "max_open_scrolls = 1000001",
            "max_open_pits = 0",
            "max_open_pits = 1000001",
            "max_running_async_searches = 0",
            "max_running_async_searches = 1000001",
            "max_msearch_searches = 0",
            "max_msearch_searches = 1000001",
        ] {
            let issues = check(&format!("[policies.limits]\n{bad}\n")).unwrap_err();
            assert_eq!(paths(issues), vec!["policies.limits"], "{bad}");
        }
        assert!(parse("[policies.limits]\nrate = 1\n").is_err());
    }

    #[test]
    fn workers_default_to_one_per_cpu_and_are_bounded() {
        assert_eq!(check("").unwrap().limits.workers, 0, "0: one per CPU");
        let c = check("[listen]\nworkers = 3\n").unwrap();
        assert_eq!(c.limits.workers, 3);
        assert!(check("[listen]\nworkers = 1024\n").is_ok());
        let issues = check("[listen]\nworkers = 1025\n").unwrap_err();
        assert_eq!(paths(issues), vec!["listen.workers"]);
        assert!(parse("[listen]\nworkers = -1\n").is_err());
    }

    #[test]
    fn reliability_settings_are_checked() {
        let issues = check(
            "[listen]\nadmin_max_connections = 0\nidle_timeout = \"0s\"\n\
             h2_keep_alive_interval = \"x\"\nbuffered_wait = \"0s\"\n\
             [backend]\nanswer_timeout = \"0s\"\n[auth]\nmax_tracked_addresses = 0\n",
        )
        .unwrap_err();
        assert_eq!(
            paths(issues),
            vec![
                "listen.admin_max_connections",
                "listen.idle_timeout",
                "listen.h2_keep_alive_interval",
                "listen.buffered_wait",
                "backend.answer_timeout",
                "auth.max_tracked_addresses",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_path() {
        let err = parse("[listen]\ndata = \"127.0.0.1:1\"\nbogus = 1\n").unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn reports_every_problem_at_once_with_key_paths() {
        let issues = check(
            r#"
            [listen]
            data = "nope"
            header_timeout = "5x"
            [backend]
            urls = ["ftp://x", "http://ok:9200", "http://u:p@h:1"]
            pool_idle_timeout = "45s"
            connect_timeout = "301s"
            [auth]
            trusted_proxies = ["10.0.0.0/8", "banana"]
            [audit]
            output = "file"
            "#,
        )
        .unwrap_err();
        assert_eq!(
            paths(issues),
            vec![
                "listen.data",
                "listen.header_timeout",
                "backend.urls[0]",
                "backend.urls[2]",
                "backend.connect_timeout",
                "backend.pool_idle_timeout",
                "auth.trusted_proxies[1]",
                "audit.path",
            ]
        );
    }

    #[test]
    fn backend_credentials_come_from_the_environment() {
        let raw = parse("[backend]\nusername = \"elastic\"\npassword_env = \"ES_PW\"\n").unwrap();
        let env = |k: &str| (k == "ES_PW").then(|| "changeme".to_owned());
        let c = validate(raw, &Overrides::default(), &env).unwrap();
        let h = c.backend.authorization.unwrap().0;
        assert_eq!(h.to_str().unwrap(), "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==");
        assert!(h.is_sensitive());

        let raw = parse("[backend]\nusername = \"elastic\"\npassword_env = \"MISSING\"\n").unwrap();
        let issues = validate(raw, &Overrides::default(), &no_env).unwrap_err();
        assert_eq!(paths(issues), vec!["backend.password_env"]);
    }

    #[test]
    fn admin_key_defaults_to_the_environment_and_must_be_long() {
        let env = |k: &str| (k == "ESGATE_ADMIN_KEY").then(|| "0123456789abcdef".to_owned());
        let c = validate(RawConfig::default(), &Overrides::default(), &env).unwrap();
        assert!(c.admin_key.unwrap().matches(b"0123456789abcdef"));
        let issues = check("[admin]\nkey = \"short\"\n").unwrap_err();
        assert_eq!(paths(issues), vec!["admin.key"]);
        // A short key from a variable is reported with the variable's name (never its value).
        let short = |k: &str| (k == "ESGATE_ADMIN_KEY").then(|| "short".to_owned());
        let issues = validate(RawConfig::default(), &Overrides::default(), &short).unwrap_err();
        assert_eq!(paths(issues.clone()), vec!["admin.key_env"]);
        assert!(issues[0].message.contains("ESGATE_ADMIN_KEY"), "{issues:?}");
        assert!(!issues[0].message.contains("short"), "the key is echoed");
    }

    #[test]
    fn id_key_comes_from_the_named_variable_as_32_base64_bytes() {
        let raw = || parse("[ids]\nkey_env = \"ID_KEY\"\n").unwrap();
        let good = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let env = |k: &str| (k == "ID_KEY").then(|| good.to_owned());
        let c = validate(raw(), &Overrides::default(), &env).unwrap();
        assert_eq!(c.id_key.map(|k| k.0), Some([1u8; 32]));
        assert!(check("").unwrap().id_key.is_none());
        for bad in [
            None,
            Some("short"),
            Some("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"),
        ] {
            let env = |k: &str| (k == "ID_KEY").then(|| bad.map(str::to_owned)).flatten();
            let issues = validate(raw(), &Overrides::default(), &env).unwrap_err();
            assert_eq!(paths(issues.clone()), vec!["ids.key_env"], "{bad:?}");
            if let Some(value) = bad {
                assert!(!issues[0].message.contains(value), "the key is echoed");
            }
        }
    }

    #[test]
    fn flags_override_the_file() {
        let raw =
            parse("[listen]\ndata = \"127.0.0.1:1000\"\n[backend]\nurls = [\"http://a:1\"]\n")
                .unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2000".into()),
            backends: vec!["http://b:1".into(), "https://c:2".into()],
            ..Overrides::default()
        };
        let c = validate(raw, &o, &no_env).unwrap();
        assert_eq!(c.data_listen.port(), 2000);
        assert_eq!(c.backend.urls.len(), 2);
    }

    /// store17 (attack17b): the cluster store's own credential, so that the data credential
    /// (every `all` token's requests) can be kept away from the store index. The shapes and
    /// checks are `[backend]`'s (one parser); unset, the store uses the backend's.
    #[test]
    fn the_store_has_a_credential_of_its_own_with_the_backends_shapes() {
        let env = |name: &str| match name {
            "STORE_PW" => Some("store-pw".to_owned()),
            "STORE_KEY" => Some("c3RvcmU6a2V5".to_owned()),
            _ => None,
        };
        let head = "[backend]\napi_key = \"data-key\"\n[admin]\nkey = \"0123456789abcdef0\"\n[store]\nkind = \"elasticsearch\"\n";
        let auth = |store: &str| -> Option<String> {
            let raw = parse(&format!("{head}{store}")).unwrap();
            let c = validate(raw, &Overrides::default(), &env).expect("valid");
            assert_eq!(
                c.backend
                    .authorization
                    .as_ref()
                    .map(|a| a.0.to_str().unwrap()),
                Some("ApiKey data-key"),
                "the data credential stays the backend's"
            );
            c.store_backend()
                .and_then(|b| b.authorization)
                .map(|a| a.0.to_str().unwrap().to_owned())
        };
        let basic = base64::engine::general_purpose::STANDARD.encode("esgate_store:store-pw");
        assert_eq!(
            auth("username = \"esgate_store\"\npassword_env = \"STORE_PW\"\n"),
            Some(format!("Basic {basic}"))
        );
        assert_eq!(
            auth("api_key_env = \"STORE_KEY\"\n"),
            Some("ApiKey c3RvcmU6a2V5".to_owned())
        );
        assert_eq!(
            auth("api_key = \"inline\"\n"),
            Some("ApiKey inline".to_owned())
        );
        // Unset: the backend's, as before.
        assert_eq!(auth(""), Some("ApiKey data-key".to_owned()));
        // The store is restart-only: a reload compares it, its credential included.
        let store = |s: &str| {
            let raw = parse(&format!("{head}{s}")).unwrap();
            validate(raw, &Overrides::default(), &env).unwrap().store
        };
        assert_eq!(store("api_key = \"a\"\n"), store("api_key = \"a\"\n"));
        assert_ne!(store("api_key = \"a\"\n"), store("api_key = \"b\"\n"));
        assert_ne!(store("api_key = \"a\"\n"), store(""));
        assert!(!format!("{:?}", store("api_key = \"a-secret\"\n")).contains("a-secret"));

        let issues = |store: &str| {
            let raw = parse(&format!("{head}{store}")).unwrap();
            paths(validate(raw, &Overrides::default(), &env).unwrap_err())
        };
        for (store, want) in [
            ("username = \"u\"\napi_key = \"k\"\n", "store"),
            ("username = \"u\"\n", "store.password"),
            ("password = \"p\"\n", "store.username"),
            (
                "username = \"u\"\npassword_env = \"UNSET\"\n",
                "store.password_env",
            ),
            ("api_key_env = \"UNSET\"\n", "store.api_key_env"),
            (
                "username = \"u\"\npassword = \"<redacted>\"\n",
                "store.password",
            ),
            (
                "username = \"u\"\npassword = \"p\"\npassword_env = \"STORE_PW\"\n",
                "store.password",
            ),
            ("api_key = \"bad\\u0001key\"\n", "store.api_key"),
            // The backend cluster is reached with the backend's TLS settings.
            ("ca_file = \"/etc/ca.pem\"\n", "store.ca_file"),
            (
                "urls = [\"https://s:9200\"]\nca_file = \"/nonexistent/ca.pem\"\n",
                "store.ca_file",
            ),
        ] {
            assert_eq!(issues(store), vec![want], "{store}");
        }
        // A secret's value is never quoted in an issue.
        let raw = parse(&format!(
            "{head}username = \"u\"\npassword = \"p-secret\"\napi_key = \"k-secret\"\n"
        ))
        .unwrap();
        let text = format!(
            "{:?}",
            validate(raw, &Overrides::default(), &env).unwrap_err()
        );
        assert!(!text.contains("secret"), "{text}");

        // Refused with the file store, like every cluster store key.
        for key in [
            "username = \"u\"",
            "password = \"p\"",
            "password_env = \"STORE_PW\"",
            "api_key = \"k\"",
            "api_key_env = \"STORE_KEY\"",
            "ca_file = \"/etc/ca.pem\"",
        ] {
            let raw = parse(&format!("[store]\nkind = \"file\"\n{key}\n")).unwrap();
            let want = format!("store.{}", key.split(' ').next().unwrap());
            assert_eq!(
                paths(validate(raw, &Overrides::default(), &env).unwrap_err()),
                vec![want]
            );
        }
    }

    /// store17: another cluster's CA bundle (`store.ca_file`, with `store.urls`) is the
    /// store's; the backend keeps its own TLS settings.
    #[test]
    fn the_store_cluster_may_have_a_ca_bundle_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["store.example".to_owned()]).unwrap();
        let ca_path = dir.path().join("store-ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let text = format!(
            "[admin]\nkey = \"0123456789abcdef0\"\n[store]\nkind = \"elasticsearch\"\nurls = [\"https://store.example:9200\"]\nca_file = {:?}\napi_key = \"k\"\n",
            ca_path.display().to_string()
        );
        let c = check(&text).expect("valid");
        let store = c.store_backend().unwrap();
        assert!(!Arc::ptr_eq(&store.tls, &c.backend.tls));
        assert_eq!(store.urls[0].host(), Some("store.example"));
        let access = c.store.access().unwrap();
        assert_eq!(access.ca_file.as_deref(), Some(ca_path.as_path()));
        // Without it, the backend's settings.
        let c = check(&text.replace("ca_file", "# ca_file")).unwrap();
        assert!(Arc::ptr_eq(&c.store_backend().unwrap().tls, &c.backend.tls));
    }

    /// rel25: the digest of the backend's TLS settings, which a reload compares to carry an
    /// https node's health over, is the same for the same material read again and differs
    /// for other roots or another client certificate.
    #[test]
    fn the_tls_digest_follows_what_the_settings_were_built_from() {
        let dir = tempfile::tempdir().unwrap();
        let pem = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let one = rcgen::generate_simple_self_signed(vec!["one.example".to_owned()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["two.example".to_owned()]).unwrap();
        let (ca_one, ca_two) = (
            pem("one.pem", one.cert.pem()),
            pem("two.pem", two.cert.pem()),
        );
        let key_one = pem("one.key", one.key_pair.serialize_pem());
        let digest = |backend: &str| {
            let text = format!("[admin]\nkey = \"0123456789abcdef0\"\n[backend]\n{backend}\n");
            check(&text).expect("valid").backend.tls_digest
        };
        let system = digest("");
        assert_eq!(system, digest(""), "the system roots, read again");
        let with_one = digest(&format!("ca_file = {ca_one:?}"));
        assert_eq!(with_one, digest(&format!("ca_file = {ca_one:?}")));
        assert_ne!(with_one, system);
        assert_ne!(with_one, digest(&format!("ca_file = {ca_two:?}")));
        let client = format!(
            "ca_file = {ca_one:?}\nclient_cert_file = {ca_one:?}\nclient_key_file = {key_one:?}"
        );
        assert_eq!(digest(&client), digest(&client));
        assert_ne!(digest(&client), with_one);
        // The store's own roots go with it to the store's client.
        let text = format!(
            "[admin]\nkey = \"0123456789abcdef0\"\n[backend]\nca_file = {ca_one:?}\n[store]\nkind = \"elasticsearch\"\nurls = [\"https://store.example:9200\"]\nca_file = {ca_two:?}\napi_key = \"k\"\n"
        );
        let c = check(&text).expect("valid");
        assert_eq!(c.backend.tls_digest, with_one);
        assert_eq!(
            c.store_backend().unwrap().tls_digest,
            digest(&format!("ca_file = {ca_two:?}"))
        );
    }

    #[test]
    fn missing_tls_files_are_reported() {
        let issues = check(
            "[listen.tls]\ncert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent.key\"\n",
        )
        .unwrap_err();
        assert_eq!(paths(issues), vec!["listen.tls.cert_file"]);
    }
}

#[cfg(test)]
mod store_settings_tests {
    use crate::config::{load_store_settings, ConfigError, StoreKind};

    fn load(toml: &str) -> Result<crate::config::Config, Vec<String>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("esgate.toml");
        std::fs::write(&path, toml).expect("write");
        load_store_settings(Some(&path), &|_| None).map_err(|e| match e {
            ConfigError::Invalid(issues) => issues.into_iter().map(|i| i.path).collect(),
            other => panic!("{other}"),
        })
    }

    /// ux16: `esgate store export` refused a server's config for what only the server uses (a
    /// listener certificate, the backend's password variable, the audit file's directory).
    #[test]
    fn the_store_commands_validate_only_the_store_and_its_cluster() {
        let server_parts = r#"
[listen]
tls = { cert_file = "/nonexistent/cert.pem", key_file = "/nonexistent/key.pem" }
[backend]
urls = ["http://127.0.0.1:9200"]
username = "esgate"
password_env = "ESGATE_TEST_UNSET_PASSWORD"
[admin]
key_env = "ESGATE_TEST_UNSET_ADMIN_KEY"
[audit]
output = "file"
path = "/nonexistent/audit.jsonl"
"#;
        let file = load(&format!("{server_parts}[store]\npath = \"/s\"\n")).expect("file store");
        assert_eq!(file.store, StoreKind::File);
        assert_eq!(file.store_path, std::path::PathBuf::from("/s"));
        // In the cluster the backend's credentials are the store's: still checked. The admin
        // key replicas must share is not the store commands' business.
        let cluster = format!("{server_parts}[store]\nkind = \"elasticsearch\"\n");
        assert_eq!(
            load(&cluster).map(|_| ()),
            Err(vec!["backend.password_env".to_owned()])
        );
        let without_password = cluster.replace("password_env", "password = \"p\"\n# ");
        assert!(matches!(
            load(&without_password).map(|c| c.store),
            Ok(StoreKind::Elasticsearch { .. })
        ));
        // With a credential of its own, the store is not read with the backend's: an unset
        // backend password variable does not matter, an unset store one does.
        let own = format!("{cluster}username = \"esgate_store\"\npassword = \"s\"\n");
        let c = load(&own).expect("the store's own credential");
        assert!(c.store_backend().unwrap().authorization.is_some());
        assert!(c.backend.authorization.is_none());
        let own_unset = own.replace(
            "password = \"s\"",
            "password_env = \"ESGATE_TEST_UNSET_STORE\"",
        );
        assert_eq!(
            load(&own_unset).map(|_| ()),
            Err(vec!["store.password_env".to_owned()])
        );
        // The server's own validation still holds every rule.
        assert!(super::validate(
            crate::config::parse(&cluster.replace("password_env", "password = \"p\"\n# "))
                .expect("parses"),
            &crate::config::Overrides::default(),
            &|_| None,
        )
        .is_err());
    }
}
