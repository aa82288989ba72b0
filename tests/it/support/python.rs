//! The official Python clients for tests (`tests/it/clients.rs`): one venv per client set
//! (elasticsearch-py 8, elasticsearch-py 9, opensearch-py 3; the Prometheus client's parser)
//! under the backends' cache dir,
//! installed on first use from `tests/clients/requirements-<set>.txt`, and a runner for the
//! scripts in `tests/clients/` that returns the JSON lines they print.
//!
//! Invariants: the install is pinned and hash-checked (`pip --require-hashes --only-binary`), is
//! named after the requirements file's sha256 (an edited list never reuses a stale venv), and is
//! never visible half-finished: the exclusive `flock` on `<cache>/install.lock` is the one
//! `backend.rs` and `scripts/install-test-clients.sh` take, and the venv is built in a temp dir
//! then renamed into place. A script run is bounded in time and killed when it overruns.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::backend::{cache_dir, run};

/// How long one client script may run before it is killed.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of a script's stderr a failure message shows.
const STDERR_TAIL: usize = 3000;
/// How much of each stdout line a failure message shows.
const LINE_CUT: usize = 400;

/// A set of Python client packages installed together in one venv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientSet {
    /// elasticsearch-py 8.19 (ES 8 dialect, `compatible-with=8`).
    Es8,
    /// elasticsearch-py 9.5 (`compatible-with=9`).
    Es9,
    /// opensearch-py 3.0.
    OpenSearch,
    /// The Prometheus Python client, for its exposition parser (`tests/it/metrics.rs`).
    Metrics,
}

// === impl ClientSet ===

impl ClientSet {
    /// The name used in `requirements-<name>.txt` and the venv directory.
    pub fn name(self) -> &'static str {
        match self {
            ClientSet::Es8 => "es8",
            ClientSet::Es9 => "es9",
            ClientSet::OpenSearch => "opensearch",
            ClientSet::Metrics => "metrics",
        }
    }

    /// The pinned requirements, embedded at compile time so the venv name and the install
    /// always agree.
    pub fn requirements(self) -> &'static str {
        match self {
            ClientSet::Es8 => include_str!("../../clients/requirements-es8.txt"),
            ClientSet::Es9 => include_str!("../../clients/requirements-es9.txt"),
            ClientSet::OpenSearch => include_str!("../../clients/requirements-opensearch.txt"),
            ClientSet::Metrics => include_str!("../../clients/requirements-metrics.txt"),
        }
    }

    /// `clients-<name>-<first 16 hex of sha256(requirements)>`, as the shell installer names it.
    pub fn venv_name(self) -> String {
        let digest = Sha256::digest(self.requirements().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("clients-{}-{}", self.name(), &hex[..16])
    }
}

/// The venv's `bin/python` for `set`, installing the venv first if needed. Memoised per process;
/// installation is serialised across processes by the lock file.
pub fn python(set: ClientSet) -> PathBuf {
    static INSTALLED: OnceLock<Mutex<BTreeMap<ClientSet, PathBuf>>> = OnceLock::new();
    let map = INSTALLED.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(p) = map.get(&set) {
        return p.clone();
    }
    let p = install(set, &cache_dir()).unwrap_or_else(|e| panic!("{e}"));
    map.insert(set, p.clone());
    p
}

/// Installs `set` into `<cache>/<venv_name>` unless it is already there; returns its python.
pub fn install(set: ClientSet, cache: &Path) -> Result<PathBuf, String> {
    let final_dir = cache.join(set.venv_name());
    let python_of = |venv: &Path| venv.join("bin").join("python");
    if python_of(&final_dir).exists() {
        return Ok(python_of(&final_dir));
    }
    let _lock = super::backend::lock_cache(cache)?;
    // Another process may have finished the install while this one waited for the lock.
    if python_of(&final_dir).exists() {
        return Ok(python_of(&final_dir));
    }
    if final_dir.exists() {
        return Err(format!(
            "{} exists but has no bin/python; remove it and retry",
            final_dir.display()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("tmp-clients-{}-", set.name()))
        .tempdir_in(cache)
        .map_err(|e| format!("cannot create a temp dir in {}: {e}", cache.display()))?;
    let venv = tmp.path().join("venv");
    let base_python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    run(Command::new(&base_python).arg("-m").arg("venv").arg(&venv))?;
    let requirements = tmp.path().join("requirements.txt");
    std::fs::write(&requirements, set.requirements())
        .map_err(|e| format!("cannot write {}: {e}", requirements.display()))?;
    run(Command::new(python_of(&venv))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--require-hashes",
            "--only-binary",
            ":all:",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::rename(&venv, &final_dir).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            venv.display(),
            final_dir.display()
        )
    })?;
    Ok(python_of(&final_dir))
}

/// What a client script printed and how it ended.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    /// Whether the script exited with status 0.
    pub success: bool,
    /// Every stdout line that parses as a JSON object, in order.
    pub lines: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

// === impl ScriptRun ===

impl ScriptRun {
    /// The first printed object whose `"op"` is `op`; panics with the whole output if none.
    pub fn op(&self, op: &str) -> &Value {
        self.lines
            .iter()
            .find(|l| l["op"] == op)
            .unwrap_or_else(|| panic!("the script printed no {op:?} line; {self}"))
    }
}

impl std::fmt::Display for ScriptRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tracebacks repeat; the end of stderr is what explains the failure.
        let cut = self.stderr.len().saturating_sub(STDERR_TAIL);
        let start = (cut..=self.stderr.len())
            .find(|&i| self.stderr.is_char_boundary(i))
            .unwrap_or(self.stderr.len());
        write!(
            f,
            "success: {}\n--- stdout (lines cut at {LINE_CUT} chars):\n{}\n--- stderr (last \
             {STDERR_TAIL} bytes):\n{}",
            self.success,
            self.stdout
                .lines()
                .map(|l| match l.char_indices().nth(LINE_CUT) {
                    Some((i, _)) => format!("{}…", &l[..i]),
                    None => l.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            &self.stderr[start..]
        )
    }
}

/// Runs `tests/clients/<script>` with the python of `set` and `env` added to the environment
/// (nothing else from the test's environment beyond `PATH`, `HOME` and the locale), killing it
/// after `SCRIPT_TIMEOUT`. Blocking: call it from `spawn_blocking` inside async tests.
pub fn run_script(set: ClientSet, script: &str, env: &[(&str, &str)]) -> ScriptRun {
    let python = python(set);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join(script);
    let mut cmd = Command::new(&python);
    cmd.arg(&path)
        .env_clear()
        .envs(
            ["PATH", "HOME", "LANG", "LC_ALL"]
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
        )
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    run_command(cmd, &format!("{} {}", python.display(), path.display()))
}

/// Runs a prepared client command (`what` names it in a panic), capturing its output and
/// killing it after `SCRIPT_TIMEOUT`; every stdout line that is a JSON object is collected.
pub fn run_command(mut cmd: Command, what: &str) -> ScriptRun {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut stderr = child.stderr.take().expect("stderr was piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out_thread.join().unwrap_or_default();
    let mut stderr = err_thread.join().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n<killed after {SCRIPT_TIMEOUT:?}>"));
    }
    let lines = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect();
    ScriptRun {
        success: status.is_some_and(|s| s.success()),
        lines,
        stdout,
        stderr,
    }
}
