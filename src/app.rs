//! `App`: everything a request needs, built once from the validated `Config` and shared.

use std::sync::Arc;

use crate::admin::AdminContext;
use crate::audit::Audit;
use crate::auth::limiter::FailureLimiter;
use crate::config::Config;
use crate::es::continuation::IdKey;
use crate::metrics::Metrics;
use crate::store::file::FileStore;
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub upstream: Arc<Upstream>,
    /// Authentication failures on the data listener...
    pub limiter: FailureLimiter,
    /// ...and, counted separately, on the admin listener.
    pub admin_limiter: FailureLimiter,
    pub audit: Arc<Audit>,
    pub metrics: Metrics,
    pub admin: AdminContext,
    /// The key scroll and point-in-time ids are sealed with.
    pub id_key: Arc<IdKey>,
    /// Memory shared by the request bodies being inspected.
    pub body_budget: crate::body::BodyBudget,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
    #[error("cannot read or create the id key {path}: {source}")]
    IdKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The key continuation ids are sealed with, unless `ids.key_env` names one: `id.key` in the
/// store directory, created with 32 random bytes on first start. Replicas that serve the same
/// clients share this file or set the same `ids.key_env`.
fn load_id_key(dir: &std::path::Path) -> Result<IdKey, StartError> {
    use std::io::Write;
    let path = dir.join("id.key");
    let err = |source| StartError::IdKey {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "expected 32 bytes",
                ))
            })?;
            Ok(IdKey::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            let tmp = dir.join("id.key.tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(err)?;
            f.write_all(&key).and_then(|()| f.sync_all()).map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
            Ok(IdKey::new(key))
        }
        Err(e) => Err(err(e)),
    }
}

impl App {
    pub fn build(config: Config) -> Result<App, StartError> {
        let store = Arc::new(Store::open(Box::new(FileStore::open(&config.store_path)?))?);
        let audit = Arc::new(Audit::open(&config.audit).map_err(StartError::Audit)?);
        let admin = AdminContext {
            store: Arc::clone(&store),
            policies: config.policies.clone(),
            audit: audit.clone(),
        };
        Ok(App {
            upstream: Arc::new(Upstream::new(&config.backend)),
            limiter: FailureLimiter::with_max_entries(
                config.auth.max_failures,
                config.auth.failure_window,
                config.auth.max_tracked_addresses,
            ),
            admin_limiter: FailureLimiter::with_max_entries(
                config.auth.max_failures,
                config.auth.failure_window,
                config.auth.max_tracked_addresses,
            ),
            store,
            audit,
            metrics: Metrics::default(),
            admin,
            body_budget: crate::body::BodyBudget::new(config.limits.max_buffered_bytes),
            id_key: Arc::new(match &config.id_key {
                Some(k) => IdKey::new(k.0),
                None => load_id_key(&config.store_path)?,
            }),
            config,
        })
    }
}
