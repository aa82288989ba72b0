//! The official Elasticsearch Node client for tests (`tests/it/node_client.rs`): the pinned
//! `@elastic/elasticsearch` of `tests/clients/node/package-lock.json`, installed with `npm ci`
//! (integrity-checked, no install scripts) into `<cache>/clients-node-<first 16 hex of the lock's
//! sha256>/node_modules`, exactly as `scripts/install-test-clients.sh` does, and a runner for
//! the scripts in `tests/clients/node/`.
//!
//! Invariants: as `python.rs`: the install takes the shared `install.lock`, is built in a temp
//! dir and renamed into place (never visible half-finished), and a script run is bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

use super::backend::cache_dir;
use super::python::{run_command, ScriptRun};

const PACKAGE: &str = include_str!("../../clients/node/package.json");
const LOCK: &str = include_str!("../../clients/node/package-lock.json");

/// `clients-node-<first 16 hex of sha256(package-lock.json)>`, as the shell installer names it.
pub fn install_name() -> String {
    let digest = Sha256::digest(LOCK.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("clients-node-{}", &hex[..16])
}

/// The installed `node_modules`, installing it first if needed (memoised per process).
pub fn node_modules() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| install(&cache_dir()).unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

fn install(cache: &Path) -> Result<PathBuf, String> {
    let final_dir = cache.join(install_name());
    let modules = final_dir.join("node_modules");
    let installed = |m: &Path| m.join("@elastic").join("elasticsearch").is_dir();
    if installed(&modules) {
        return Ok(modules);
    }
    let _lock = super::backend::lock_cache(cache)?;
    if installed(&modules) {
        return Ok(modules);
    }
    if final_dir.exists() {
        return Err(format!(
            "{} exists but has no @elastic/elasticsearch; remove it and retry",
            final_dir.display()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("tmp-clients-node-")
        .tempdir_in(cache)
        .map_err(|e| format!("cannot create a temp dir in {}: {e}", cache.display()))?;
    let dir = tmp.path().join("node");
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, text) in [("package.json", PACKAGE), ("package-lock.json", LOCK)] {
        std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run npm (node 18+ and npm are needed): {e}"))?;
    if !status.success() {
        return Err(format!("npm ci failed: {status}"));
    }
    std::fs::rename(&dir, &final_dir).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            dir.display(),
            final_dir.display()
        )
    })?;
    Ok(modules)
}

/// Runs `tests/clients/node/<script>` with `node`, the pinned client on `NODE_PATH` and `env`
/// added (nothing else from the test's environment beyond `PATH` and `HOME`). Blocking.
pub fn run_script(script: &str, env: &[(&str, &str)]) -> ScriptRun {
    let modules = node_modules();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join("node")
        .join(script);
    let mut cmd = Command::new("node");
    cmd.arg(&path)
        .env_clear()
        .envs(
            ["PATH", "HOME"]
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
        )
        .env("NODE_PATH", &modules)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    run_command(cmd, &format!("node {}", path.display()))
}
