//! `App`: everything a request needs, built once from the validated `Config` and shared.
//!
//! Built at start (with the generated admin key `<store>/admin.key` when none is configured,
//! and the id-sealing key: `ids.key_env`, `<store>/id.key`, or the cluster store's shared
//! `id_key` document); [`App::start`] opens either kind of store. [`Live`] holds the serving
//! `App` in an `ArcSwap`: each request loads it once, each connection its TLS material and
//! settings when accepted. A reload (SIGHUP, `cli::reload_on_hangup`) builds the next one
//! with [`App::reloaded`]: a new backend pool (the nodes it keeps keep their health), the
//! audit file reopened, new policies; the store, id key, limiters, metrics and body budget
//! carried over; restart-only settings named in the log.

use std::sync::Arc;

use crate::admin::AdminContext;
use crate::audit::Audit;
use crate::auth::limiter::FailureLimiter;
use crate::config::{AdminKey, Config, StoreKind};
use crate::es::ids::continuation::IdKey;
use crate::metrics::Metrics;
use crate::store::cluster::ClusterStore;
use crate::store::file::FileStore;
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub upstream: Arc<Upstream>,
    /// Authentication failures on the data listener...
    pub limiter: Arc<FailureLimiter>,
    /// ...and, counted separately, on the admin listener.
    pub admin_limiter: Arc<FailureLimiter>,
    pub audit: Arc<Audit>,
    pub metrics: Arc<Metrics>,
    pub admin: AdminContext,
    /// The key scroll and point-in-time ids are sealed with.
    pub id_key: Arc<IdKey>,
    /// The Kibana front for share links (`[kibana]`), if configured.
    pub kibana_front: Option<Arc<crate::kibana::front::Front>>,
    /// Memory shared by the request bodies being inspected.
    pub body_budget: crate::body::BodyBudget,
    /// Per-token request rate and concurrency (`limits`).
    pub throttle: Arc<crate::throttle::Throttle>,
    /// Per-token open scrolls (`max_open_scrolls`).
    pub scrolls: Arc<crate::scrolls::Scrolls>,
    /// Per-token open points in time and SQL cursors (`max_open_pits`).
    pub pits: Arc<crate::scrolls::Scrolls>,
    /// Per-token running async searches (`max_running_async_searches`).
    pub async_searches: Arc<crate::scrolls::Scrolls>,
    /// The admin API's key: the configured one, or the one esgate generated (`admin.key`).
    pub admin_key: AdminKey,
    /// Where the admin key is when none was configured and esgate generated one.
    pub admin_key_file: Option<std::path::PathBuf>,
    /// `GET /ready`'s shared backend probe (one in flight, its answer reused for a second).
    pub readiness: crate::server::admin::Readiness,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
    #[error("cannot read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a key file of the store directory, or creates it with `fresh` (mode 0600, written to
/// a temporary file of its own name, fsync'd, then linked to `name` only if no file has that
/// name yet, the directory fsync'd), so a crash never leaves half a key nor loses a key
/// already in use, and two processes starting at once on one store (the cluster store takes no
/// lock of the directory) end up with the same key: the one whose link came first, which the
/// other reads back (attack19a: both renamed their own over `name`, and one ran with a key
/// different from the file's).
fn read_or_create_key_file(
    dir: &std::path::Path,
    name: &str,
    fresh: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, StartError> {
    use std::io::Write;
    let path = dir.join(name);
    let err = |source| StartError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = fresh();
            // A name no other process (nor another start of this one) uses.
            let tmp = dir.join(format!(
                "{name}.tmp.{}.{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(err)?;
            let written = f.write_all(&key).and_then(|()| f.sync_all());
            drop(f);
            // `link(2)` never replaces: it fails when `name` exists (another process won).
            let linked = written.and_then(|()| match std::fs::hard_link(&tmp, &path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    // A file system without hard links (an SMB share): renamed unless the name
                    // exists by now, which leaves only a narrow race.
                    match std::fs::symlink_metadata(&path) {
                        Ok(_) => Ok(()),
                        Err(_) => std::fs::rename(&tmp, &path),
                    }
                }
                other => other,
            });
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err(e)),
            }
            // The new name must be durable before the key is used: lost in a power cut, a new
            // admin key (or id key) would be made at the next start, without a word.
            #[cfg(unix)]
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
            // What won: ours, or the key another process linked first (complete: it was
            // written and fsync'd before its link).
            std::fs::read(&path).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

/// The key continuation ids are sealed with, unless `ids.key_env` names one: `id.key` in the
/// store directory, created with 32 random bytes on first start. Replicas that serve the same
/// clients share this file or set the same `ids.key_env`.
fn load_id_key(dir: &std::path::Path) -> Result<IdKey, StartError> {
    let bytes = read_or_create_key_file(dir, ID_KEY_FILE, || rand::random::<[u8; 32]>().to_vec())?;
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StartError::KeyFile {
            path: dir.join(ID_KEY_FILE).display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "expected 32 bytes"),
        })?;
    Ok(IdKey::new(key))
}

/// The admin key when none is configured: `admin.key` in the store directory, created on first
/// start (43 URL-safe base64 characters of 32 random bytes), so a first run works without
/// choosing one; the CLI reads the same file (`crate::config::DEFAULT_ADMIN_KEY_FILE`).
fn load_admin_key(dir: &std::path::Path) -> Result<AdminKey, StartError> {
    use base64::Engine;
    let bytes = read_or_create_key_file(dir, ADMIN_KEY_FILE, || {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(rand::random::<[u8; 32]>())
            .into_bytes()
    })?;
    let key = String::from_utf8(bytes)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| k.len() >= crate::config::MIN_ADMIN_KEY_LEN)
        .ok_or_else(|| StartError::KeyFile {
            path: dir.join(ADMIN_KEY_FILE).display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "expected a text key of at least {} characters",
                    crate::config::MIN_ADMIN_KEY_LEN
                ),
            ),
        })?;
    Ok(AdminKey::new(key))
}

/// The id-sealing key's file name in the store directory.
const ID_KEY_FILE: &str = "id.key";
/// The generated admin key's file name in the store directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

impl App {
    /// Builds the application with the configured store: the file store at once, the cluster
    /// store after creating or checking its index and loading every record.
    pub async fn start(config: Config) -> Result<App, StartError> {
        match &config.store {
            StoreKind::File => App::build(config),
            StoreKind::Elasticsearch {
                index,
                urls,
                tombstone_retention,
                access,
                ..
            } => {
                let cluster = Arc::new(ClusterStore::new(
                    &config.backend.for_store(urls, access),
                    index,
                    *tombstone_retention,
                ));
                let store = Store::open_cluster(Arc::clone(&cluster)).await?;
                // Shared through the store, so an id minted by one replica opens on another.
                let id_key = match &config.id_key {
                    Some(k) => IdKey::new(k.0),
                    None => IdKey::new(cluster.id_key().await?),
                };
                App::assemble(config, Arc::new(store), id_key)
            }
        }
    }

    /// Builds the application with the file store (`store.kind = "file"`); the cluster store
    /// needs [`App::start`].
    pub fn build(config: Config) -> Result<App, StartError> {
        if config.store != StoreKind::File {
            return Err(StartError::Store(StoreError::Foreign(
                "the cluster store is opened by App::start".into(),
            )));
        }
        let store = Arc::new(Store::open(Box::new(FileStore::open(&config.store_path)?))?);
        let id_key = match &config.id_key {
            Some(k) => IdKey::new(k.0),
            None => load_id_key(&config.store_path)?,
        };
        App::assemble(config, store, id_key)
    }

    fn assemble(config: Config, store: Arc<Store>, id_key: IdKey) -> Result<App, StartError> {
        let audit = Arc::new(
            Audit::open(&config.audit, config.audit_on_failure).map_err(StartError::Audit)?,
        );
        let admin = AdminContext {
            store: Arc::clone(&store),
            policies: config.policies.clone(),
            audit: audit.clone(),
            kibana_public_url: config.kibana.as_ref().map(|k| k.public_url.clone()),
            guarded_store: config.store.guarded_index().map(str::to_owned),
        };
        let (admin_key, admin_key_file) = match &config.admin_key {
            Some(key) => (key.clone(), None),
            None => (
                load_admin_key(&config.store_path)?,
                Some(config.store_path.join(ADMIN_KEY_FILE)),
            ),
        };
        let id_key = Arc::new(id_key);
        let kibana_front = config.kibana.as_ref().map(|k| {
            Arc::new(crate::kibana::front::Front::new(
                k,
                Arc::clone(&config.backend.tls),
                &id_key,
                config.backend.max_connections_per_node,
                config.backend.max_connections_per_token,
                config.backend.connect_timeout,
            ))
        });
        Ok(App {
            kibana_front,
            admin_key,
            admin_key_file,
            readiness: Default::default(),
            // A shard per worker thread, and one for the main thread's own requests.
            upstream: Arc::new(Upstream::new(
                &config.backend,
                crate::server::workers::count(config.limits.workers) + 1,
            )),
            limiter: Arc::new(FailureLimiter::with_max_entries(
                config.auth.max_failures,
                config.auth.failure_window,
                config.auth.max_tracked_addresses,
            )),
            admin_limiter: Arc::new(FailureLimiter::with_max_entries(
                config.auth.max_failures,
                config.auth.failure_window,
                config.auth.max_tracked_addresses,
            )),
            store,
            audit,
            throttle: Arc::new(crate::throttle::Throttle::new()),
            scrolls: Arc::new(crate::scrolls::Scrolls::new()),
            pits: Arc::new(crate::scrolls::Scrolls::of(crate::es::Context::Pit)),
            async_searches: Arc::new(crate::scrolls::Scrolls::of(crate::es::Context::AsyncSearch)),
            metrics: Arc::new(Metrics::new(
                config.backend.request_timeout,
                config.metrics.max_token_series,
            )),
            admin,
            body_budget: crate::body::BodyBudget::new(config.limits.max_buffered_bytes)
                .with_read_buffer(crate::server::h1_read_buffer(
                    config.limits.max_header_bytes,
                )),
            id_key,
            config,
        })
    }
}

impl App {
    /// attack17b: with the cluster store in the backend cluster under a credential of its own,
    /// asks the cluster whether the data credential (`[backend]`'s, which every `all` token's
    /// request carries) can reach the store index, and logs the answer
    /// (`crate::store::reach`). `None` where the question does not apply: the file store, a
    /// store in another cluster, or one read with the data credential (the configuration's
    /// advice names that).
    pub async fn check_store_reach(&self) -> Option<crate::store::reach::Reach> {
        let index = self.config.store.guarded_index()?;
        if !self.config.store.access()?.own_credential() {
            return None;
        }
        let reach = crate::store::reach::check(
            &self.upstream,
            self.config.backend.authorization.as_ref().map(|a| &a.0),
            index,
        )
        .await;
        crate::store::reach::log(&reach, index);
        Some(reach)
    }

    /// The `App` for a reloaded `config` (SIGHUP): the backend pool (new URLs, timeouts, TLS
    /// material; the nodes it keeps with their settings keep their health,
    /// `Upstream::carry_health_from`), the audit output (reopened: log rotation), policies,
    /// limits read per request, trusted proxies and the admin key come from `config`; the store, the id-sealing key,
    /// the failure limiters, the metrics and the body budget carry over, with their state. The
    /// second value names each setting that changed but only takes effect after a restart.
    pub fn reloaded(&self, config: Config) -> Result<(App, Vec<String>), StartError> {
        let old = &self.config;
        let mut restart = Vec::new();
        let mut needs = |changed: bool, key: &str| {
            if changed {
                restart.push(key.to_owned());
            }
        };
        needs(config.data_listen != old.data_listen, "listen.data");
        needs(config.admin_listen != old.admin_listen, "listen.admin");
        needs(config.store_path != old.store_path, "store.path");
        needs(config.store != old.store, "store");
        needs(config.kibana != old.kibana, "kibana");
        needs(
            config.sources.ids_key_env != old.sources.ids_key_env
                || config.id_key.as_ref().map(|k| k.0) != old.id_key.as_ref().map(|k| k.0),
            "ids.key_env",
        );
        needs(
            config.limits.max_connections != old.limits.max_connections,
            "listen.max_connections",
        );
        needs(
            config.limits.admin_max_connections != old.limits.admin_max_connections,
            "listen.admin_max_connections",
        );
        needs(
            config.limits.workers != old.limits.workers,
            "listen.workers",
        );
        needs(
            config.limits.max_connections_per_ip != old.limits.max_connections_per_ip,
            "listen.max_connections_per_ip",
        );
        needs(
            config.limits.max_buffered_bytes != old.limits.max_buffered_bytes,
            "listen.max_buffered_bytes",
        );
        needs(
            config.auth.max_failures != old.auth.max_failures
                || config.auth.failure_window != old.auth.failure_window
                || config.auth.max_tracked_addresses != old.auth.max_tracked_addresses,
            "auth.max_failures, auth.failure_window, auth.max_tracked_addresses",
        );
        needs(config.metrics != old.metrics, "metrics.max_token_series");
        needs(config.log.json != old.log.json, "log.format");
        // Reopen the audit output first: when it cannot be opened, nothing changes.
        let audit = Arc::new(
            Audit::open(&config.audit, config.audit_on_failure).map_err(StartError::Audit)?,
        );
        // The same output, failing: a closed gateway stays closed until a write succeeds.
        if config.audit == old.audit {
            audit.carry_failure_from(&self.audit);
        }
        let (admin_key, admin_key_file) = match &config.admin_key {
            Some(key) => (key.clone(), None),
            None if self.admin_key_file.is_some() => {
                (self.admin_key.clone(), self.admin_key_file.clone())
            }
            None => (
                load_admin_key(&self.config.store_path)?,
                Some(self.config.store_path.join(ADMIN_KEY_FILE)),
            ),
        };
        let mut config = config;
        // What cannot change keeps its running value, so the App says what it serves.
        config.data_listen = old.data_listen;
        config.admin_listen = old.admin_listen;
        config.store_path = old.store_path.clone();
        config.store = old.store.clone();
        config.kibana = old.kibana.clone();
        config.id_key = old.id_key.clone();
        config.metrics = old.metrics.clone();
        // `log.level` applies at once (`cli::apply_log_level`); `log.format` needs a restart.
        config.log.json = old.log.json;
        // The running workers stay (restart-only), and so does the pool's shard per worker:
        // a pool sharded for another count (or for the CPUs `listen.workers = 0` finds now)
        // would hand one worker's idle connections, driven by its runtime, to another.
        config.limits.workers = old.limits.workers;
        let shards = self.upstream.shards();
        // The nodes kept, with their settings, stay down when they were (rel25).
        let upstream = Upstream::new(&config.backend, shards);
        upstream.carry_health_from(&self.upstream);
        Ok((
            App {
                admin: AdminContext {
                    store: Arc::clone(&self.store),
                    policies: config.policies.clone(),
                    audit: audit.clone(),
                    kibana_public_url: self.admin.kibana_public_url.clone(),
                    guarded_store: self.admin.guarded_store.clone(),
                },
                kibana_front: self.kibana_front.clone(),
                upstream: Arc::new(upstream),
                store: Arc::clone(&self.store),
                limiter: Arc::clone(&self.limiter),
                admin_limiter: Arc::clone(&self.admin_limiter),
                audit,
                metrics: Arc::clone(&self.metrics),
                id_key: Arc::clone(&self.id_key),
                body_budget: self.body_budget.clone().with_read_buffer(
                    crate::server::h1_read_buffer(config.limits.max_header_bytes),
                ),
                throttle: Arc::clone(&self.throttle),
                scrolls: Arc::clone(&self.scrolls),
                pits: Arc::clone(&self.pits),
                async_searches: Arc::clone(&self.async_searches),
                admin_key,
                admin_key_file,
                readiness: Default::default(),
                config,
            },
            restart,
        ))
    }
}

/// The serving `App` behind a handle that a reload swaps. Each request loads it once and keeps
/// that `App` to its end, so requests in flight finish with the configuration they started
/// with, and the next request on a kept-alive connection gets the new one.
pub struct Live {
    current: arc_swap::ArcSwap<App>,
}

impl Live {
    pub fn new(app: Arc<App>) -> Live {
        Live {
            current: arc_swap::ArcSwap::new(app),
        }
    }

    /// The `App` serving now.
    pub fn load(&self) -> Arc<App> {
        self.current.load_full()
    }

    /// Replaces the serving `App` with one built from `config` (see [`App::reloaded`]); returns
    /// the settings that need a restart. On error the running `App` stays.
    pub fn reload(&self, config: Config) -> Result<Vec<String>, StartError> {
        let (app, restart) = self.load().reloaded(config)?;
        self.current.store(Arc::new(app));
        Ok(restart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_key_is_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_admin_key(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(ADMIN_KEY_FILE)).unwrap();
        assert_eq!(text.len(), 43, "32 random bytes, URL-safe base64");
        assert!(first.matches(text.as_bytes()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load_admin_key(dir.path()).unwrap();
        assert!(again.matches(text.as_bytes()));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    /// attack19a (L): two processes starting at once on one store directory (the cluster
    /// store takes no lock of it) each wrote `admin.key.tmp` and renamed it over `admin.key`:
    /// one then ran with a key different from the file's (the CLI's), or with half of each.
    /// Every starter now gets the key the file holds.
    #[test]
    fn starts_racing_for_a_key_file_all_get_the_one_the_file_holds() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let starters = 8;
            let barrier = std::sync::Barrier::new(starters);
            let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..starters)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            read_or_create_key_file(dir.path(), ID_KEY_FILE, || {
                                rand::random::<[u8; 32]>().to_vec()
                            })
                            .unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let file = std::fs::read(dir.path().join(ID_KEY_FILE)).unwrap();
            assert_eq!(file.len(), 32);
            for key in &keys {
                assert_eq!(key, &file, "a starter holds a key the file does not");
            }
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                1,
                "no temporary file left"
            );
        }
    }

    #[test]
    fn a_short_or_binary_admin_key_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [&b"short\n"[..], &[0xff, 0xfe, 0x00][..]] {
            std::fs::write(dir.path().join(ADMIN_KEY_FILE), bad).unwrap();
            let err = load_admin_key(dir.path()).unwrap_err().to_string();
            assert!(err.contains("admin.key"), "{err}");
        }
    }

    fn config(dir: &std::path::Path, workers: usize) -> Config {
        config_with(dir, workers, "")
    }

    fn config_with(dir: &std::path::Path, workers: usize, extra: &str) -> Config {
        let text = format!(
            "[listen]\nworkers = {workers}\n[backend]\nurls = [\"http://127.0.0.1:9\"]\n\
             [store]\npath = {:?}\n[admin]\nkey = \"test-admin-key-0123456789\"\n\
             [audit]\noutput = \"off\"\n{extra}",
            dir.join("store").display().to_string()
        );
        let raw = crate::config::parse(&text).unwrap();
        crate::config::validate(raw, &crate::config::Overrides::default(), &|_| None).unwrap()
    }

    /// Review of session 14: `listen.workers` is restart-only, but a reload built the new
    /// backend pool with the reloaded count (or the CPUs `0` finds then), so the running
    /// workers shared shards (one worker handed idle connections another's runtime drives),
    /// and the App named a worker count it did not run.
    #[test]
    fn a_reload_keeps_the_running_workers_and_the_pools_shards() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::build(config(dir.path(), 4)).unwrap();
        assert_eq!(app.upstream.shards(), 5, "four workers and the main thread");
        for reloaded_count in [1, 2, 0] {
            let (next, restart) = app.reloaded(config(dir.path(), reloaded_count)).unwrap();
            assert_eq!(restart, vec!["listen.workers".to_owned()]);
            assert_eq!(next.config.limits.workers, 4, "the running value stays");
            assert_eq!(next.upstream.shards(), 5, "one shard per running thread");
        }
    }

    /// The reload warning names the key an operator writes (`log.format`), not a field of
    /// the parsed config.
    #[test]
    fn a_reload_names_a_changed_log_format_by_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::build(config(dir.path(), 1)).unwrap();
        let json = config_with(dir.path(), 1, "[log]\nformat = \"json\"\n");
        let (next, restart) = app.reloaded(json).unwrap();
        assert_eq!(restart, vec!["log.format".to_owned()]);
        assert!(!next.config.log.json, "the running value stays");
    }

    #[test]
    fn the_id_key_must_be_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        load_id_key(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(ID_KEY_FILE)).unwrap().len(),
            32
        );
        std::fs::write(dir.path().join(ID_KEY_FILE), b"x").unwrap();
        assert!(load_id_key(dir.path()).is_err());
    }
}
