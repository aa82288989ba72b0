//! `App`: everything a request needs, built once from the validated `Config` and shared.

use std::sync::Arc;

use crate::admin::AdminContext;
use crate::audit::Audit;
use crate::auth::limiter::FailureLimiter;
use crate::config::{AdminKey, Config};
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
    /// The Kibana front for share links (`[kibana]`), if configured.
    pub kibana_front: Option<Arc<crate::kibana::front::Front>>,
    /// Memory shared by the request bodies being inspected.
    pub body_budget: crate::body::BodyBudget,
    /// The admin API's key: the configured one, or the one esgate generated (`admin.key`).
    pub admin_key: AdminKey,
    /// Where the admin key is when none was configured and esgate generated one.
    pub admin_key_file: Option<std::path::PathBuf>,
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
/// a temporary name, fsync'd and renamed, so a crash never leaves half a key).
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
            let tmp = dir.join(format!("{name}.tmp"));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(err)?;
            f.write_all(&key).and_then(|()| f.sync_all()).map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
            Ok(key)
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
    pub fn build(config: Config) -> Result<App, StartError> {
        let store = Arc::new(Store::open(Box::new(FileStore::open(&config.store_path)?))?);
        let audit = Arc::new(Audit::open(&config.audit).map_err(StartError::Audit)?);
        let admin = AdminContext {
            store: Arc::clone(&store),
            policies: config.policies.clone(),
            audit: audit.clone(),
            kibana_public_url: config.kibana.as_ref().map(|k| k.public_url.clone()),
        };
        let (admin_key, admin_key_file) = match &config.admin_key {
            Some(key) => (key.clone(), None),
            None => (
                load_admin_key(&config.store_path)?,
                Some(config.store_path.join(ADMIN_KEY_FILE)),
            ),
        };
        let id_key = Arc::new(match &config.id_key {
            Some(k) => IdKey::new(k.0),
            None => load_id_key(&config.store_path)?,
        });
        let kibana_front = config.kibana.as_ref().map(|k| {
            Arc::new(crate::kibana::front::Front::new(
                k,
                Arc::clone(&config.backend.tls),
                &id_key,
            ))
        });
        Ok(App {
            kibana_front,
            admin_key,
            admin_key_file,
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
            id_key,
            config,
        })
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
        assert!(!dir.path().join("admin.key.tmp").exists());
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
