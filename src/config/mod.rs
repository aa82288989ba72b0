//! Configuration: the file is parsed into `RawConfig` (its exact shape), then validated once
//! into [`Config`], which holds only checked values (addresses, durations, loaded TLS material,
//! parsed CIDRs). Every problem is reported with its key path, all at once.
//!
//! Invariant: a `Config` is only built by [`validate`]; nothing after start-up re-checks it.
//! Environment variables are read through the `env` function passed in, never directly.

mod advice;
mod describe;
pub mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;

pub use crate::proxy::upstream_request::RelayHeaders;
pub use validate::validate;

/// One problem in the configuration: the key path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

/// Command-line overrides, applied on top of the file before validation.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub backends: Vec<String>,
    pub store: Option<String>,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub data_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub server_tls: Option<ServerTls>,
    pub limits: Limits,
    pub backend: Backend,
    pub store_path: PathBuf,
    /// Which token store: the file store under `store_path`, or the cluster store.
    pub store: StoreKind,
    pub admin_key: Option<AdminKey>,
    /// The id-sealing key from `ids.key_env`; `None`: the key file in the store directory.
    pub id_key: Option<IdKeyBytes>,
    pub auth: Auth,
    pub policies: Policies,
    pub audit: AuditOutput,
    /// `audit.on_failure`: what requests and admin changes do while the audit log cannot be
    /// written.
    pub audit_on_failure: AuditOnFailure,
    pub log: Log,
    pub metrics: MetricsConfig,
    /// `[kibana]`: the share-link front (`crate::kibana`).
    pub kibana: Option<KibanaFront>,
    /// Where the values that are not kept above came from (file names, secret sources), so
    /// `check-config` can print the configuration back without holding a secret.
    pub sources: Sources,
}

/// `[store] kind`: where tokens, filters and IP filters live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded file store under `store.path` (one process).
    File,
    /// Documents in a hidden index of a cluster, shared by any number of replicas.
    Elasticsearch {
        /// The index name (starts with `.`; no token may reach it).
        index: String,
        /// Nodes of another cluster; empty: the `[backend]` nodes.
        urls: Vec<Uri>,
        poll_interval: Duration,
        /// How long a deleted record's tombstone stays in the index before a replica purges
        /// it; a replica out of touch for half of it reads the whole store again.
        tombstone_retention: Duration,
        /// The store's own credential and TLS roots, where it has them.
        access: StoreAccess,
    },
}

/// How the cluster store reaches its cluster where that differs from `[backend]`: its own
/// credential (`store.username`/`password` or `store.api_key`), so the data credential that
/// every `all` token's request carries can be kept away from the store index, and its own CA
/// bundle for another cluster (`store.ca_file`). `Debug` is redacted.
#[derive(Clone, Default)]
pub struct StoreAccess {
    /// `None`: the `[backend]` credential.
    pub authorization: Option<BackendAuthorization>,
    /// `store.ca_file`'s roots, no client certificate; `None`: `[backend]`'s TLS settings.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// What `tls` was built from, when set ([`TlsDigest`]).
    pub tls_digest: TlsDigest,
    pub ca_file: Option<PathBuf>,
}

impl StoreAccess {
    /// Whether the store has a credential of its own.
    pub fn own_credential(&self) -> bool {
        self.authorization.is_some()
    }
}

/// Compared for reloads (the store is restart-only): the credential's value and the CA
/// bundle's path.
impl PartialEq for StoreAccess {
    fn eq(&self, other: &StoreAccess) -> bool {
        self.authorization.as_ref().map(|a| &a.0) == other.authorization.as_ref().map(|a| &a.0)
            && self.ca_file == other.ca_file
    }
}

impl Eq for StoreAccess {}

impl std::fmt::Debug for StoreAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAccess")
            .field("own_credential", &self.own_credential())
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl StoreKind {
    /// The cluster store's index, when that is the kind.
    pub fn index(&self) -> Option<&str> {
        match self {
            StoreKind::File => None,
            StoreKind::Elasticsearch { index, .. } => Some(index),
        }
    }

    /// The cluster store's own credential and TLS roots, when that is the kind.
    pub fn access(&self) -> Option<&StoreAccess> {
        match self {
            StoreKind::File => None,
            StoreKind::Elasticsearch { access, .. } => Some(access),
        }
    }

    /// The cluster store's index when it lives in the backend cluster that tokens read
    /// (`store.urls` unset): no `read` token's pattern may reach it, and an `all` token's
    /// requests are checked against it.
    pub fn guarded_index(&self) -> Option<&str> {
        match self {
            StoreKind::Elasticsearch { index, urls, .. } if urls.is_empty() => Some(index),
            _ => None,
        }
    }
}

/// Where a secret came from. The value itself is never kept here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SecretSource {
    #[default]
    Unset,
    /// Written in the config file (printed back as [`REDACTED`]).
    Inline,
    /// Read from the named environment variable (the name is printed back).
    Env(String),
}

/// The placeholder `check-config` prints for a secret written in the file. It is refused as a
/// secret value, so a printed configuration never runs with a well-known key.
pub const REDACTED: &str = "<redacted>";

/// The configuration's inputs that the checked values above do not keep.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub backend_username: Option<String>,
    pub backend_password: SecretSource,
    pub backend_api_key: SecretSource,
    pub backend_ca_file: Option<PathBuf>,
    pub backend_client_cert_file: Option<PathBuf>,
    pub backend_client_key_file: Option<PathBuf>,
    pub store_username: Option<String>,
    pub store_password: SecretSource,
    pub store_api_key: SecretSource,
    /// `admin.key` / `admin.key_env`, or the default `ESGATE_ADMIN_KEY` when it was set.
    pub admin_key: SecretSource,
    pub ids_key_env: Option<String>,
}

/// 32 key bytes shared by replicas; never printed.
#[derive(Clone)]
pub struct IdKeyBytes(pub [u8; 32]);

impl std::fmt::Debug for IdKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdKeyBytes(<redacted>)")
    }
}

/// The TLS cryptography every listener and backend client uses: rustls's aws-lc-rs provider,
/// whose key exchange offers the post-quantum hybrid X25519MLKEM768 first (as current browsers
/// do; a peer without it agrees on X25519 or a NIST curve). One place, so
/// the data and admin listeners, the backend and store clients and the admin CLI agree.
pub fn tls_crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What a cluster's TLS client settings were built from, digested (SHA-256 over the trusted
/// roots, the client certificate chain and its key, each as DER, in order): equal digests,
/// the same settings, whatever files or system store they came from. A reload compares them
/// to tell whether an https node's health carries over (`upstream::Upstream::carry_health_from`,
/// rel25); a `rustls::ClientConfig` has no equality of its own. Never shown (`Debug` is
/// redacted: it digests a private key).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsDigest(pub(crate) [u8; 32]);

impl std::fmt::Debug for TlsDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsDigest(<redacted>)")
    }
}

#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub handshake_timeout: Duration,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections the data listener serves at once.
    pub max_connections: usize,
    /// Connections the admin listener serves at once.
    pub admin_max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold on the data listener and the
    /// Kibana front; 0: no limit (`server::per_ip`).
    pub max_connections_per_ip: usize,
    /// Threads serving the data listener, each with its own runtime (`crate::server::workers`); 0 is
    /// one per CPU the process may use (`crate::server::workers::count`).
    pub workers: usize,
    /// A request's headers must arrive within this long; a new connection must start its first
    /// request within it (a client that sends nothing, or only an HTTP/2 preface, is closed).
    pub header_timeout: Duration,
    /// A connection with no request in flight that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    pub h2_keep_alive_interval: Duration,
    pub h2_keep_alive_timeout: Duration,
    /// HTTP/2 streams a client may have open at once on one connection (more are refused with
    /// `REFUSED_STREAM`, as the h2 spec says; clients that read the SETTINGS queue them).
    pub h2_max_concurrent_streams: u32,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    /// The bytes all request bodies being inspected may hold at once.
    pub max_buffered_bytes: usize,
    /// How long an answer esgate reads whole (to seal ids or transform it), and the room made
    /// for a scroll's next page before it is asked for, wait for room in the body budget
    /// before the request is refused (429).
    pub buffered_wait: Duration,
    pub drain_timeout: Duration,
}

#[derive(Clone)]
pub struct Backend {
    pub urls: Vec<Uri>,
    /// The value of the `Authorization` header esgate sends upstream, if any.
    pub authorization: Option<BackendAuthorization>,
    pub tls: Arc<rustls::ClientConfig>,
    /// What `tls` was built from ([`TlsDigest`]).
    pub tls_digest: TlsDigest,
    pub connect_timeout: Duration,
    /// The backend's response headers must arrive within this long.
    pub request_timeout: Duration,
    /// A streamed answer's body may pause at most this long between chunks.
    pub body_idle_timeout: Duration,
    /// An answer esgate reads whole (to seal ids or transform it) must arrive within this long.
    pub answer_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// Connections open to one node at once, in use and idle, over every worker
    /// (`upstream::pool`).
    pub max_connections_per_node: usize,
    /// Connections to one node one token's requests may hold at once (at most
    /// `max_connections_per_node`; by default half of it, so other tokens keep room).
    pub max_connections_per_token: usize,
    pub unhealthy_cooldown: Duration,
    pub resolve_cache_ttl: Duration,
    /// Client headers relayed for `all` tokens besides
    /// `proxy::upstream_request::RELAYED_FOR_ALL` (`backend.relay_headers`, checked).
    pub relay_headers: RelayHeaders,
}

impl Config {
    /// The settings the cluster store reaches its cluster with ([`Backend::for_store`]); `None`
    /// for the file store.
    pub fn store_backend(&self) -> Option<Backend> {
        let StoreKind::Elasticsearch { urls, access, .. } = &self.store else {
            return None;
        };
        Some(self.backend.for_store(urls, access))
    }
}

impl Backend {
    /// The settings the cluster store reaches its cluster with: these, with the nodes of
    /// `store.urls` and the store's own credential and CA bundle where set.
    pub fn for_store(&self, urls: &[Uri], access: &StoreAccess) -> Backend {
        let mut b = self.clone();
        if !urls.is_empty() {
            b.urls = urls.to_vec();
        }
        if let Some(a) = &access.authorization {
            b.authorization = Some(a.clone());
        }
        if let Some(tls) = &access.tls {
            b.tls = Arc::clone(tls);
            b.tls_digest = access.tls_digest;
        }
        b
    }
}

/// esgate's own backend credential. `Debug` is redacted.
#[derive(Clone)]
pub struct BackendAuthorization(pub http::HeaderValue);

impl std::fmt::Debug for BackendAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendAuthorization(<redacted>)")
    }
}

/// The admin API key. `Debug` is redacted; compare with [`AdminKey::matches`].
#[derive(Clone)]
pub struct AdminKey(String);

impl AdminKey {
    pub(crate) fn new(key: String) -> AdminKey {
        AdminKey(key)
    }

    /// The key itself, for the admin client commands to send (never to print).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented key.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        // Hashing both sides first makes the comparison independent of the lengths.
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented);
        a.ct_eq(&b).into()
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

#[derive(Clone, Debug)]
pub struct Auth {
    pub trusted_proxies: Vec<IpNet>,
    pub max_failures: u32,
    pub failure_window: Duration,
    /// Addresses each listener's failure limiter tracks.
    pub max_tracked_addresses: usize,
}

/// The token policies are the admin API's own type: config only fills them in.
pub use crate::admin::Policies;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditOutput {
    Off,
    Stdout,
    File(PathBuf),
}

/// `audit.on_failure`: while the audit log cannot be written (its last write failed and no
/// later one succeeded), `Open` serves on and loses the records (counted); `Closed` refuses data
/// requests (503) and admin changes until a write succeeds again (`audit::Audit::refusing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditOnFailure {
    #[default]
    Open,
    Closed,
}

impl AuditOnFailure {
    /// The setting's value as the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOnFailure::Open => "open",
            AuditOnFailure::Closed => "closed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Token ids `esgate_requests_total` labels; the rest count under `token_id="other"`.
    pub max_token_series: usize,
}

/// `[kibana]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct KibanaFront {
    /// Kibana's base URL (`http://` or `https://`, no path beyond `/`).
    pub url: Uri,
    pub listen: SocketAddr,
    /// What recipients open, without a trailing slash (`https://dash.example.com`).
    pub public_url: String,
    /// `public_url` is https: the session cookie is `Secure`.
    pub secure: bool,
}

#[derive(Clone, Debug)]
pub struct Log {
    pub level: String,
    pub json: bool,
}

/// The default config file, used when it exists and no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/esgate.toml";
pub use raw::DEFAULT_STORE_PATH;
/// The shortest admin key accepted (configured or read from the generated key file).
pub const MIN_ADMIN_KEY_LEN: usize = 16;

/// Reads (if a path is given) and validates the configuration.
pub fn load(
    path: Option<&Path>,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    validate(read(path)?, overrides, env).map_err(ConfigError::Invalid)
}

/// Reads the configuration and validates only what `esgate store export|import` use:
/// `[store]`, and `[backend]` when the store lives in a cluster (its nodes and TLS settings are
/// the store's unless `store.urls` and `store.ca_file` name others, its credential unless the
/// store has its own). The rest of a server's config (listener
/// certificates, the admin key, the audit file, Kibana) may name files and environment
/// variables only the server's host has; the rest of the returned config is the defaults.
pub fn load_store_settings(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw = read(path)?;
    let in_cluster = raw.store.kind.as_deref() == Some("elasticsearch");
    // With a credential of its own the store is not read with the backend's, whose variables
    // the operator's host may not hold.
    let own_credential = raw.store.username.is_some()
        || raw.store.password.is_some()
        || raw.store.password_env.is_some()
        || raw.store.api_key.is_some()
        || raw.store.api_key_env.is_some();
    let backend = match (in_cluster, own_credential) {
        (false, _) => Default::default(),
        (true, false) => raw.backend,
        (true, true) => raw::RawBackend {
            username: None,
            password: None,
            password_env: None,
            api_key: None,
            api_key_env: None,
            ..raw.backend
        },
    };
    let raw = raw::RawConfig {
        store: raw.store,
        backend,
        ..Default::default()
    };
    validate::validate_for(
        validate::Purpose::StoreCommand,
        raw,
        &Overrides::default(),
        env,
    )
    .map_err(ConfigError::Invalid)
}

/// What the admin client commands (`esgate token|filter|ip-filter|link`) take from a config
/// file: where the admin listener is and the admin key the server checks. `Debug` is redacted
/// (the key's own).
#[derive(Clone, Debug)]
pub struct AdminClientSettings {
    /// `listen.admin`, as the server binds it.
    pub admin_listen: SocketAddr,
    /// `admin.key`, `admin.key_env` or `ESGATE_ADMIN_KEY` (the server's rules); `None`: none
    /// configured (or not asked for), so the server uses its generated key file.
    pub admin_key: Option<AdminKey>,
    /// Where the server generates its key when none is configured: `<store.path>/admin.key`
    /// (the file store; the cluster store requires a configured key).
    pub generated_key_file: Option<PathBuf>,
}

/// Reads the config file at `path` for the admin client commands. The whole file is parsed as
/// `serve` parses it (a syntax error, an unknown key: an error); validated by the server's rules
/// are only the parts the client uses: `[listen]`'s `data` and `admin` addresses, `[admin]`
/// and `[store]`'s `kind` and `path` (when `with_key`; the caller has the key otherwise, and
/// `admin.key_env` may name a variable only the server's environment holds). The rest (TLS files,
/// backend credentials' variables, the audit file) may be readable by the server's user only.
pub fn load_admin_client_settings(
    path: &Path,
    with_key: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AdminClientSettings, ConfigError> {
    let raw = read(Some(path))?;
    let raw = raw::RawConfig {
        listen: raw::RawListen {
            data: raw.listen.data,
            admin: raw.listen.admin,
            ..Default::default()
        },
        admin: if with_key {
            raw.admin
        } else {
            Default::default()
        },
        // The store says where the generated key is, or (the cluster store) that there is none.
        store: if with_key {
            raw::RawStore {
                kind: raw.store.kind,
                path: raw.store.path,
                index: raw.store.index,
                ..Default::default()
            }
        } else {
            Default::default()
        },
        ..Default::default()
    };
    // Without `with_key` the default variable is not read either (its value is the caller's).
    let env = |name: &str| {
        if !with_key && name == raw::DEFAULT_ADMIN_KEY_ENV {
            None
        } else {
            env(name)
        }
    };
    let config = validate::validate_for(
        validate::Purpose::AdminClient,
        raw,
        &Overrides::default(),
        &env,
    )
    .map_err(ConfigError::Invalid)?;
    Ok(AdminClientSettings {
        admin_listen: config.admin_listen,
        generated_key_file: (config.store == StoreKind::File && config.admin_key.is_none())
            .then(|| config.store_path.join(crate::app::ADMIN_KEY_FILE)),
        admin_key: config.admin_key,
    })
}

/// The raw configuration in `path` (the defaults without one).
fn read(path: Option<&Path>) -> Result<raw::RawConfig, ConfigError> {
    Ok(match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            parse(&text).map_err(|message| ConfigError::Parse {
                path: path.display().to_string(),
                message,
            })?
        }
        None => raw::RawConfig::default(),
    })
}

/// Parses TOML text into the raw shape; unknown keys and wrong types are errors with their path.
/// The error names the line and column but does not quote the line (the toml crate's `Display`
/// does): a misspelled `passwrd = "..."` would print its secret to the log.
pub fn parse(text: &str) -> Result<raw::RawConfig, String> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let message = e.message().trim_end();
        match e.span() {
            Some(span) => {
                let mut start = span.start.min(text.len());
                while !text.is_char_boundary(start) {
                    start -= 1;
                }
                let before = &text[..start];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: {message}")
            }
            None => message.to_owned(),
        }
    })
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        text: &str,
        with_key: bool,
        env: &[(&str, &str)],
    ) -> Result<AdminClientSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("esgate.toml");
        std::fs::write(&path, text).unwrap();
        let env = |name: &str| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        load_admin_client_settings(&path, with_key, &env).map_err(|e| e.to_string())
    }

    /// A parse error names the line and column, not the line's text: a misspelled key's value
    /// (a secret, often) is not printed back.
    #[test]
    fn parse_errors_name_the_place_not_the_line() {
        let err = parse("[admin]\nkye = \"0123456789abcdef0\"\n").unwrap_err();
        assert_eq!(
            err,
            "line 2, column 1: unknown field `kye`, expected `key` or `key_env`"
        );
        let err = parse("[backend]\npassword = \"s3cret-pa\u{e9}\"x\n").unwrap_err();
        assert!(err.starts_with("line 2, column "), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    /// The admin client reads the listener and the key as `serve` does, and checks only them
    /// (with the file's syntax): what else the server's host holds need not be here.
    #[test]
    fn the_admin_client_reads_the_listener_and_the_key_as_serve_does() {
        let s = settings(
            "[listen]\nadmin = \"0.0.0.0:9302\"\n[admin]\nkey_env = \"MY_ADMIN\"\n[store]\npath = \"/srv/esgate\"\n",
            true,
            &[("MY_ADMIN", "from-the-env-0123456")],
        )
        .unwrap();
        assert_eq!(s.admin_listen.to_string(), "0.0.0.0:9302");
        assert!(s.admin_key.unwrap().matches(b"from-the-env-0123456"));
        assert_eq!(s.generated_key_file, None);
        // No key configured: the generated key file in the store directory.
        let s = settings("[store]\npath = \"/srv/esgate\"\n", true, &[]).unwrap();
        assert!(s.admin_key.is_none());
        assert_eq!(
            s.generated_key_file,
            Some(PathBuf::from("/srv/esgate/admin.key"))
        );
        // The server's other files and variables are not read: a TLS key only its user can
        // read, a backend password variable only its environment holds.
        let elsewhere = "[listen.tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n[backend]\nusername = \"esgate\"\npassword_env = \"UNSET_PASSWORD\"\n[admin]\nkey = \"0123456789abcdef0\"\n";
        assert!(settings(elsewhere, true, &[]).is_ok());
        // What the client uses is held to the server's rules, and the syntax to the parser's.
        let err = settings("[admin]\nkey = \"short\"\n", true, &[]).unwrap_err();
        assert!(
            err.contains("admin.key: must be at least 16 characters"),
            "{err}"
        );
        let err = settings("[admin]\nkey_env = \"UNSET\"\n", true, &[]).unwrap_err();
        assert!(
            err.contains("admin.key_env: environment variable UNSET is not set"),
            "{err}"
        );
        let err = settings("[listen]\nadmin = \"nowhere\"\n", true, &[]).unwrap_err();
        assert!(err.contains("listen.admin"), "{err}");
        let err = settings("[admn]\nkey = \"0123456789abcdef0\"\n", true, &[]).unwrap_err();
        assert!(err.contains("unknown field `admn`"), "{err}");
        // A misspelled key's value (a secret, often) is not quoted back.
        let err = settings("[admin]\nkye = \"0123456789abcdef0\"\n", true, &[]).unwrap_err();
        assert!(
            err.ends_with("line 2, column 1: unknown field `kye`, expected `key` or `key_env`"),
            "{err}"
        );
        assert!(!err.contains("0123456789abcdef0"), "{err}");
        let err = settings("[store]\nkind = \"elasticsearch\"\n", true, &[]).unwrap_err();
        assert!(err.contains("admin.key: is required"), "{err}");
        // The caller holding the key (ESGATE_ADMIN_KEY): [admin] and [store] are not read,
        // nor the default variable.
        let s = settings(
            "[admin]\nkey_env = \"UNSET\"\n[store]\nkind = \"elasticsearch\"\n",
            false,
            &[(raw::DEFAULT_ADMIN_KEY_ENV, "short")],
        )
        .unwrap();
        assert!(s.admin_key.is_none());
    }
}
