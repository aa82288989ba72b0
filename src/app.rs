//! `App`: everything a request needs, built once from the validated `Config` and shared.

use std::sync::Arc;

use crate::admin::{AdminContext, Policies};
use crate::audit::Audit;
use crate::auth::limiter::FailureLimiter;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::file::FileStore;
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub upstream: Arc<Upstream>,
    pub limiter: FailureLimiter,
    pub audit: Arc<Audit>,
    pub metrics: Metrics,
    pub admin: AdminContext,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
}

impl App {
    pub fn build(config: Config) -> Result<App, StartError> {
        let store = Arc::new(Store::open(Box::new(FileStore::open(&config.store_path)?))?);
        let audit = Arc::new(Audit::open(&config.audit).map_err(StartError::Audit)?);
        let p = &config.policies;
        let admin = AdminContext {
            store: Arc::clone(&store),
            policies: Policies {
                max_lifetime: p.max_lifetime,
                require_expiry: p.require_expiry,
                require_ip_filter: p.require_ip_filter,
                require_filters: p.require_filters,
                allow_permission_updates: p.allow_permission_updates,
            },
            audit: audit.clone(),
        };
        Ok(App {
            upstream: Arc::new(Upstream::new(&config.backend)),
            limiter: FailureLimiter::new(config.auth.max_failures, config.auth.failure_window),
            store,
            audit,
            metrics: Metrics::default(),
            admin,
            config,
        })
    }
}
