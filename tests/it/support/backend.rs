//! Real Elasticsearch-compatible backends for tests (shared docs backend.md): `osmem-server`
//! (OpenSearch dialect, primary) and `noida-db` (Elasticsearch 8 dialect), installed from PyPI on
//! first use and run as child processes on 127.0.0.1 with an OS-chosen or probed free port.
//!
//! Invariants: the install is pinned and hash-checked (`pip --require-hashes`), lives outside the
//! repository, and is never visible half-finished (exclusive `flock` on `<cache>/install.lock`,
//! shared with `scripts/install-test-backends.sh`, plus install-into-temp-then-rename). A
//! `Backend` owns its process: dropping it kills the child (a clone is deleted instead), and
//! osmem additionally exits when its stdin closes or the test process disappears.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::http;

/// How long a backend may take to answer after being started.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server a `Backend` runs; tests use it to skip what a backend does not model
/// (backend.md "Where they differ from Elasticsearch").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// osmem-server 0.1.6: OpenSearch 3.8 API.
    Osmem,
    /// noida-db 0.2.3: Elasticsearch 8.15.3 API.
    Noida,
}

/// Runs `"$@"` (noida) in the background, kills it when stdin reaches EOF, and exits with its
/// status when it exits by itself. Background lists get /dev/null as stdin, hence fd 3.
const NOIDA_WATCHER: &str = r#"exec 3<&0
"$@" </dev/null &
server=$!
{ read -r _ <&3; kill "$server" 2>/dev/null; } &
wait "$server"
"#;

/// How long a dropped backend may take to exit after its stdin closes before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One pinned PyPI package carrying a backend binary.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    /// sha256 of the linux x86_64 wheel.
    pub sha256: &'static str,
    /// The native binary, relative to the venv's `site-packages`.
    pub binary: &'static str,
}

pub const OSMEM: Package = Package {
    name: "osmem-server",
    version: "0.1.6",
    sha256: "24c862de01ab1c6dd1564284933fdc4f774494a41e071676914f86d82fdbef40",
    binary: "osmem_server/bin/osmem-server",
};

pub const NOIDA: Package = Package {
    name: "noida-db",
    version: "0.2.3",
    sha256: "40a2fb15567e3d344e7483df62bb439e7d64ac6fb232f4f223554aed58204f82",
    binary: "noida_db/noida-db",
};

/// A running backend (or an osmem clone of one). Dropping it stops the process or deletes the
/// clone.
pub struct Backend {
    /// The address the backend listens on.
    pub addr: SocketAddr,
    url: String,
    flavor: Flavor,
    child: Option<Child>,
    /// For a clone: the base server's URL and the clone id, for `DELETE /_osmem/clones/{id}`.
    clone_of: Option<(String, String)>,
    /// Data directory and captured output of a noida process; removed on drop.
    _scratch: Option<tempfile::TempDir>,
}

// === impl Backend ===

impl Backend {
    /// Starts `osmem-server --addr 127.0.0.1:0 --no-ja` and reads its URL from the first stdout
    /// line. Panics with the server's stderr if it does not report within `STARTUP_TIMEOUT`.
    pub fn osmem() -> Backend {
        let bin = installed_binary(&OSMEM);
        let scratch = scratch_dir("osmem");
        let stderr_path = scratch.path().join("stderr.log");
        let stderr = File::create(&stderr_path).expect("the scratch dir was just created");
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0", "--no-ja", "--parent-pid"])
            .arg(std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // The reader thread keeps draining stdout after the first line: closing the pipe would
        // make the server's next write to stdout fail (and Go exits on EPIPE on fd 1).
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "osmem-server did not report its URL ({other:?}); stderr:\n{}",
                    read_lossy(&stderr_path)
                );
            }
        };
        let url = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("url").and_then(|u| u.as_str()).map(str::to_owned))
            .unwrap_or_else(|| panic!("osmem-server's first line has no \"url\": {line}"));
        let addr = addr_of(&url);
        Backend {
            addr,
            url,
            flavor: Flavor::Osmem,
            child: Some(child),
            clone_of: None,
            _scratch: Some(scratch),
        }
    }

    /// Starts `noida-db start --only elasticsearch` on a free port with a fresh data directory
    /// and waits until `GET /` answers. Panics with the server's stderr if it never does.
    pub fn noida() -> Backend {
        let bin = installed_binary(&NOIDA);
        // The port is probed, then released and handed to noida, so another process can take it
        // in between; a start that fails that way is retried on a new port.
        let mut last_error = String::new();
        for _ in 0..3 {
            let scratch = scratch_dir("noida");
            let data = scratch.path().join("data");
            std::fs::create_dir(&data).expect("the scratch dir was just created");
            let stderr_path = scratch.path().join("stderr.log");
            let stderr = File::create(&stderr_path).expect("the scratch dir was just created");
            let stdout = File::create(scratch.path().join("stdout.log"))
                .expect("the scratch dir was just created");
            let port = free_port();
            // noida has no parent watch of its own, so a small sh wrapper gives it osmem's
            // behaviour: the server is stopped when the wrapper's stdin closes, which happens
            // when this `Backend` is dropped and also when the test process dies (even by
            // SIGKILL), so no server outlives its test run.
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(NOIDA_WATCHER)
                .arg("noida-watcher")
                .arg(&bin)
                .args(["start", "--only", "elasticsearch", "--elasticsearch-port"])
                .arg(port.to_string())
                .args(["--host", "127.0.0.1", "--data-dir"])
                .arg(&data)
                .stdin(Stdio::piped())
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "noida-db exited with {status} before answering; stderr:\n{}",
                        read_lossy(&stderr_path)
                    );
                    break;
                }
                let probe = http::send_blocking("GET", &format!("{url}/"), &[], "");
                if matches!(probe, Ok(ref r) if r.status.is_success()) {
                    return Backend {
                        addr: addr_of(&url),
                        url,
                        flavor: Flavor::Noida,
                        child: Some(child),
                        clone_of: None,
                        _scratch: Some(scratch),
                    };
                }
                if Instant::now() > deadline {
                    drop(child.stdin.take());
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "noida-db did not answer GET / on {url} within {STARTUP_TIMEOUT:?} (last: \
                         {probe:?}); stderr:\n{}",
                        read_lossy(&stderr_path)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("noida-db could not be started: {last_error}");
    }

    /// A copy-on-write clone of this osmem server on its own port (`POST /_osmem/clones`),
    /// deleted when the returned `Backend` is dropped. Creating a clone freezes this base: from
    /// then on writes must go to clones. Panics on noida, which has no clones.
    pub fn clone_of(&self) -> Backend {
        assert_eq!(
            self.flavor,
            Flavor::Osmem,
            "only osmem supports clones; start a fresh noida per test instead"
        );
        let reply = http::send_blocking("POST", &format!("{}/_osmem/clones", self.url), &[], "")
            .unwrap_or_else(|e| panic!("POST /_osmem/clones failed: {e}"));
        assert!(
            reply.status.is_success(),
            "POST /_osmem/clones answered {}: {}",
            reply.status,
            reply.text()
        );
        let v = reply.json();
        let (Some(id), Some(url)) = (v["id"].as_str(), v["url"].as_str()) else {
            panic!("unexpected POST /_osmem/clones response: {v}");
        };
        Backend {
            addr: addr_of(url),
            url: url.to_owned(),
            flavor: Flavor::Osmem,
            child: None,
            clone_of: Some((self.url.clone(), id.to_owned())),
            _scratch: None,
        }
    }

    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Whether this is an osmem clone rather than a server process of its own.
    pub fn is_clone(&self) -> bool {
        self.clone_of.is_some()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some((base, id)) = self.clone_of.take() {
            // The base may already be gone (dropped first, or the process is exiting); a failed
            // delete then has nothing left to clean up.
            let _ = http::send_blocking("DELETE", &format!("{base}/_osmem/clones/{id}"), &[], "");
        }
        if let Some(mut child) = self.child.take() {
            // Closing stdin stops osmem and makes the noida wrapper stop noida; a process that
            // is still there after the grace period is killed.
            drop(child.stdin.take());
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("flavor", &self.flavor)
            .field("url", &self.url)
            .field("clone", &self.clone_of.as_ref().map(|(_, id)| id))
            .finish()
    }
}

/// The cache directory for installed backends: `$ESGATE_TEST_CACHE`, else
/// `$HOME/.cache/esgate-tests`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ESGATE_TEST_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .expect("set ESGATE_TEST_CACHE or HOME so the test backends can be installed");
    PathBuf::from(home).join(".cache").join("esgate-tests")
}

/// Takes the exclusive install lock of `cache` (creating the directory), the same `flock` the
/// shell installers take with flock(1); held until the returned file is dropped. Every install
/// into the cache (backends, Python and Node clients) happens under it.
pub fn lock_cache(cache: &Path) -> Result<File, String> {
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create the cache dir {}: {e}", cache.display()))?;
    let lock_path = cache.join("install.lock");
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    // File::lock is flock(2) on Linux.
    #[allow(clippy::incompatible_msrv)]
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    Ok(lock)
}

/// Path of the package's native binary, installing the package first if needed. The result is
/// memoised per process; installation is serialised across processes by the lock file.
pub fn installed_binary(pkg: &'static Package) -> PathBuf {
    static OSMEM_BIN: OnceLock<PathBuf> = OnceLock::new();
    static NOIDA_BIN: OnceLock<PathBuf> = OnceLock::new();
    let cell = if pkg.name == OSMEM.name {
        &OSMEM_BIN
    } else {
        &NOIDA_BIN
    };
    cell.get_or_init(|| install(pkg, &cache_dir()).unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

/// Installs `pkg` into `<cache>/<name>-<version>` unless it is already there; returns the binary.
pub fn install(pkg: &Package, cache: &Path) -> Result<PathBuf, String> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(format!(
            "the pinned {} hash is for the linux x86_64 wheel; this platform needs its own",
            pkg.name
        ));
    }
    let final_dir = cache.join(format!("{}-{}", pkg.name, pkg.version));
    if let Some(bin) = find_binary(&final_dir, pkg) {
        return Ok(bin);
    }
    let _lock = lock_cache(cache)?;
    // Another process may have finished the install while this one waited for the lock.
    if let Some(bin) = find_binary(&final_dir, pkg) {
        return Ok(bin);
    }
    if final_dir.exists() {
        return Err(format!(
            "{} exists but has no {}; remove it and retry",
            final_dir.display(),
            pkg.binary
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("tmp-{}-", pkg.name))
        .tempdir_in(cache)
        .map_err(|e| format!("cannot create a temp dir in {}: {e}", cache.display()))?;
    let venv = tmp.path().join("venv");
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    run(Command::new(&python).arg("-m").arg("venv").arg(&venv))?;
    let requirements = tmp.path().join("requirements.txt");
    std::fs::write(
        &requirements,
        format!(
            "{}=={} --hash=sha256:{}\n",
            pkg.name, pkg.version, pkg.sha256
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", requirements.display()))?;
    run(Command::new(venv.join("bin").join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--require-hashes",
            "--only-binary",
            ":all:",
            "--no-deps",
            "-r",
        ])
        .arg(&requirements))?;
    if find_binary(&venv, pkg).is_none() {
        return Err(format!(
            "{} {} installed but {} is missing or not executable",
            pkg.name, pkg.version, pkg.binary
        ));
    }
    std::fs::rename(&venv, &final_dir).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            venv.display(),
            final_dir.display()
        )
    })?;
    find_binary(&final_dir, pkg).ok_or_else(|| format!("{} vanished after the rename", pkg.binary))
}

/// `<venv>/lib/python*/site-packages/<binary>` if it exists and is executable.
fn find_binary(venv: &Path, pkg: &Package) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
        .map(|e| e.path().join("site-packages").join(pkg.binary))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Runs `cmd` with no input to its end; its output in the error when it fails (the venv and
/// pip steps of an install, here and in `python`).
pub(super) fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A scratch directory named for this process (`esgate-test-<what>-<pid>-…`). Backends kept in
/// statics are never dropped, so their directories outlive the test binary: each new one first
/// removes those whose process has gone.
fn scratch_dir(what: &str) -> tempfile::TempDir {
    remove_stale_scratch_dirs();
    tempfile::Builder::new()
        .prefix(&format!("esgate-test-{what}-{}-", std::process::id()))
        .tempdir()
        .expect("the system temp dir is writable in tests")
}

fn remove_stale_scratch_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("esgate-test-") else {
            continue;
        };
        // `<what>-<pid>-<random>`; directories of the older naming have no pid: left alone.
        let pid = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 works in tests")
}

fn addr_of(url: &str) -> SocketAddr {
    url.strip_prefix("http://")
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("expected http://IP:PORT, got {url}"))
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}
