//! The README's first run, as a newcomer types it (issue 15): `esgate serve` with no admin key
//! generates one into `data/admin.key` (mode 0600) and says where, never the key itself; the
//! CLI, started from the same directory without `ESGATE_ADMIN_KEY`, reads that file; a restart
//! keeps the same key.

use crate::support;

use std::process::Command;

use support::binary::{self, Served};

/// `esgate serve` with its defaults (store `./data`), from `dir`, without an admin key.
fn serve(dir: &std::path::Path) -> Served {
    binary::serve(&["--backend", "http://127.0.0.1:9"], |cmd| {
        cmd.env_remove("ESGATE_ADMIN_KEY")
            .env_remove("ESGATE_ADMIN_KEY_FILE")
            .current_dir(dir);
    })
}

/// The CLI from `dir`, as the README calls it: only `ESGATE_ADMIN_URL` set.
fn cli(dir: &std::path::Path, admin: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(args)
        .env("ESGATE_ADMIN_URL", admin)
        .env_remove("ESGATE_ADMIN_KEY")
        .env_remove("ESGATE_ADMIN_KEY_FILE")
        .current_dir(dir)
        .output()
        .expect("the CLI runs")
}

#[test]
fn the_first_run_works_as_written_without_choosing_an_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let running = serve(dir.path());
    let key_file = dir.path().join("data").join("admin.key");
    let key = std::fs::read_to_string(&key_file).expect("the key file exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let created = cli(
        dir.path(),
        &running.admin,
        &[
            "token",
            "create",
            "--name",
            "first",
            "--filter",
            "tenant=acme",
        ],
    );
    let out = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(out.contains("esg_"), "the secret is shown once: {out}");

    // The cluster is not up yet (nothing listens on 127.0.0.1:9): the client gets a 502 and
    // the log says which node failed and why, so the operator knows what to fix.
    let secret = out
        .split_whitespace()
        .find(|w| w.starts_with("esg_"))
        .expect("the secret is printed");
    let search = support::http::send_blocking(
        "GET",
        &format!("{}/_search", running.data),
        &[("authorization", &support::http::bearer(secret))],
        "",
    )
    .unwrap();
    assert_eq!(search.status, 502);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let logged = loop {
        let log = running.log.lock().unwrap().clone();
        if log.contains("failed to connect") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let line = logged
        .lines()
        .find(|l| l.contains("failed to connect"))
        .unwrap_or_else(|| panic!("no connect failure logged: {logged}"));
    assert!(
        line.contains("http://127.0.0.1:9") && line.contains("refused"),
        "the node and the reason: {line}"
    );
    let log = running.log.lock().unwrap().clone();
    assert!(
        log.contains("admin.key"),
        "the log says where the key is: {log}"
    );
    assert!(!log.contains(key.trim()), "the key reached the log");
    assert!(
        log.lines().any(|l| l.contains("Configuration read")
            && l.contains("config=none")
            && l.contains("backend=http://127.0.0.1:9 ")
            && l.contains("store=./data")),
        "the log says which file, backend and store it runs with: {log}"
    );
    drop(running);

    // A restart keeps the key: the same CLI call still works.
    let running = serve(dir.path());
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    let listed = cli(dir.path(), &running.admin, &["token", "list"]);
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("first"));

    // An empty ESGATE_ADMIN_KEY (`export ESGATE_ADMIN_KEY=`, a `$(cat ...)` that printed
    // nothing) counts as unset: the generated key is still read, as the README promises.
    let empty = Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(["token", "list"])
        .env("ESGATE_ADMIN_URL", &running.admin)
        .env("ESGATE_ADMIN_KEY", "")
        .env_remove("ESGATE_ADMIN_KEY_FILE")
        .current_dir(dir.path())
        .output()
        .expect("the CLI runs");
    assert!(
        empty.status.success(),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );
    assert!(String::from_utf8_lossy(&empty.stdout).contains("first"));

    // Pointed at the data listener by mistake, the CLI says so.
    let wrong = cli(dir.path(), &running.data, &["token", "list"]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("not as esgate's admin API") && err.contains("data listener"),
        "{err}"
    );

    // Elsewhere (no data/admin.key) the CLI says what is missing.
    let other = tempfile::tempdir().unwrap();
    let refused = cli(other.path(), &running.admin, &["token", "list"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("ESGATE_ADMIN_KEY"), "{err}");
}

/// With the store elsewhere (`--store`), the CLI does not find the generated key by itself:
/// the start-up log says to point `ESGATE_ADMIN_KEY_FILE` at it (not that the CLI reads it),
/// and with that set the CLI works.
#[test]
fn a_key_generated_elsewhere_is_found_through_esgate_admin_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let running = binary::serve(
        &[
            "--backend",
            "http://127.0.0.1:9",
            "--store",
            store.to_str().unwrap(),
        ],
        |cmd| {
            cmd.env_remove("ESGATE_ADMIN_KEY")
                .env_remove("ESGATE_ADMIN_KEY_FILE")
                .current_dir(dir.path());
        },
    );
    let key_file = store.join("admin.key");
    // The line comes right after "esgate is serving", which `serve` waits for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = running.log.lock().unwrap().clone();
        if log.contains("No admin key configured") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let line = log
        .lines()
        .find(|l| l.contains("No admin key configured"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("ESGATE_ADMIN_KEY_FILE") && line.contains(key_file.to_str().unwrap()),
        "{line}"
    );
    let listed = Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(["token", "list"])
        .env("ESGATE_ADMIN_URL", &running.admin)
        .env_remove("ESGATE_ADMIN_KEY")
        .env("ESGATE_ADMIN_KEY_FILE", &key_file)
        .current_dir(dir.path())
        .output()
        .expect("the CLI runs");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}

/// A backend on a thread of its own that answers every request after `delay` (a request in
/// flight when esgate is told to stop).
fn slow_backend(delay: std::time::Duration) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                std::thread::sleep(delay);
                let body = b"{\"slow\":true}";
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     x-elastic-product: Elasticsearch\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(body);
            });
        }
    });
    format!("http://{addr}")
}

/// The contract's "SIGTERM and SIGINT drain in-flight requests and exit 0", on the real binary:
/// a request in flight when the signal comes is answered in full, then the process exits 0.
#[test]
fn sigterm_and_sigint_drain_requests_in_flight_and_exit_0() {
    for signal in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let backend = slow_backend(std::time::Duration::from_millis(1500));
        let mut running = binary::serve(&["--backend", &backend], |cmd| {
            cmd.env("ESGATE_ADMIN_KEY", "signal-test-admin-key-5d1e07")
                .env_remove("ESGATE_ADMIN_KEY_FILE")
                .current_dir(dir.path());
        });
        let created = support::http::send_blocking(
            "POST",
            &format!("{}/tokens", running.admin),
            &[("authorization", "Bearer signal-test-admin-key-5d1e07")],
            r#"{"name":"pass","permissions":["all"]}"#,
        )
        .unwrap();
        assert_eq!(created.status, 201, "{}", created.text());
        let secret = created.json()["secret"].as_str().unwrap().to_owned();
        let url = format!("{}/slow/_search", running.data);
        let in_flight = std::thread::spawn(move || {
            support::http::send_blocking(
                "GET",
                &url,
                &[("authorization", &support::http::bearer(&secret))],
                "",
            )
        });
        // The request reaches the backend (which holds it 1.5 s), then the signal.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let sent = Command::new("kill")
            .args([signal, &running.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let answered = in_flight
            .join()
            .unwrap()
            .expect("the request in flight is answered");
        assert_eq!(answered.status, 200, "{signal}: {}", answered.text());
        assert_eq!(answered.text(), r#"{"slow":true}"#, "{signal}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(status) = running.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{signal}: still running"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "{signal}");
    }
}

/// The CLI with no admin variables at all (`ESGATE_ADMIN_URL`, `ESGATE_ADMIN_KEY`,
/// `ESGATE_ADMIN_KEY_FILE` removed), from `dir`, with `args`.
fn cli_without_env(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(args)
        .env_remove("ESGATE_ADMIN_URL")
        .env_remove("ESGATE_ADMIN_KEY")
        .env_remove("ESGATE_ADMIN_KEY_FILE")
        .current_dir(dir)
        .output()
        .expect("the CLI runs")
}

/// A port nothing listens on now, for a config file that names its admin listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Contract (interface.md): the admin key comes from the environment or the config file, and
/// `--config` defaults to `config/esgate.toml`. An operator whose config holds `[admin] key` and
/// `listen.admin` on another port runs `esgate token create|list` with only `--config`, or from
/// the directory holding `config/esgate.toml`, and no variable set; the key is never printed.
#[test]
fn the_cli_finds_the_admin_api_and_its_key_in_the_config_file() {
    const KEY: &str = "config-file-admin-key-5f2a9c";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let config = dir.path().join("config").join("esgate.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\ndata = \"127.0.0.1:0\"\nadmin = \"0.0.0.0:{port}\"\n\
             [backend]\nurls = [\"http://127.0.0.1:9\"]\n\
             [store]\npath = {:?}\n[admin]\nkey = \"{KEY}\"\n",
            dir.path().join("store")
        ),
    )
    .unwrap();
    let running = binary::serve_as_configured(&["--config", config.to_str().unwrap()], |cmd| {
        cmd.env_remove("ESGATE_ADMIN_KEY")
            .env_remove("ESGATE_ADMIN_KEY_FILE");
    });
    assert!(
        running.admin.ends_with(&format!(":{port}")),
        "{}",
        running.admin
    );

    // From elsewhere, with only --config (before or after the subcommand).
    let elsewhere = tempfile::tempdir().unwrap();
    let config_arg = config.to_str().unwrap();
    let created = cli_without_env(
        elsewhere.path(),
        &[
            "token",
            "create",
            "--config",
            config_arg,
            "--name",
            "by-config",
            "--filter",
            "tenant=acme",
        ],
    );
    let out = String::from_utf8_lossy(&created.stdout).into_owned();
    let err = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(created.status.success(), "{out} {err}");
    assert!(out.contains("esg_"), "the secret is shown once: {out}");
    // From the directory holding config/esgate.toml: the default file, no flag.
    let listed = cli_without_env(dir.path(), &["token", "list"]);
    let out = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.status.success() && out.contains("by-config"),
        "{out} {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed = cli_without_env(
        elsewhere.path(),
        &["token", "--config", config_arg, "--json", "list"],
    );
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"by-config\""));

    // The environment wins over the file: a wrong ESGATE_ADMIN_KEY is sent (and refused, the
    // message says where it came from), never the file's key printed.
    let wrong = Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(["token", "list", "--config", config_arg])
        .env("ESGATE_ADMIN_KEY", "not-the-admin-key-0123456789")
        .env_remove("ESGATE_ADMIN_URL")
        .env_remove("ESGATE_ADMIN_KEY_FILE")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&wrong.stderr).into_owned();
    assert_eq!(wrong.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("from ESGATE_ADMIN_KEY"),
        "{err}"
    );
    assert!(!err.contains(KEY), "the key was printed: {err}");

    // Both from the environment and no --config: the default file is not read, so a script
    // that sets them works beside a config/esgate.toml that would be refused.
    let broken = tempfile::tempdir().unwrap();
    std::fs::create_dir(broken.path().join("config")).unwrap();
    std::fs::write(broken.path().join("config/esgate.toml"), "not = [toml").unwrap();
    let by_env = Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(["token", "list"])
        .env("ESGATE_ADMIN_KEY", KEY)
        .env("ESGATE_ADMIN_URL", &running.admin)
        .env_remove("ESGATE_ADMIN_KEY_FILE")
        .current_dir(broken.path())
        .output()
        .unwrap();
    assert!(
        by_env.status.success() && String::from_utf8_lossy(&by_env.stdout).contains("by-config"),
        "{}",
        String::from_utf8_lossy(&by_env.stderr)
    );

    // A file that is missing, or that the server would refuse: exit 1, the problem named.
    let missing = cli_without_env(
        elsewhere.path(),
        &["token", "list", "--config", "nope.toml"],
    );
    let err = String::from_utf8_lossy(&missing.stderr).into_owned();
    assert_eq!(missing.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read config file nope.toml"), "{err}");
    let bad = elsewhere.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!("[listen]\nadmin = \"127.0.0.1:{port}\"\n[admin]\nkey = \"short\"\n"),
    )
    .unwrap();
    let refused = cli_without_env(
        elsewhere.path(),
        &["token", "list", "--config", bad.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("admin.key: must be at least 16 characters"),
        "{err}"
    );
    assert!(refused.stdout.is_empty());
    let typo = elsewhere.path().join("typo.toml");
    std::fs::write(&typo, format!("[admin]\nkye = \"{KEY}\"\n")).unwrap();
    let refused = cli_without_env(
        elsewhere.path(),
        &["token", "list", "--config", typo.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown field `kye`"), "{err}");
    assert!(!err.contains(KEY), "the key was printed: {err}");

    // No key configured: the key the server generated in the config's store.path is found.
    let port = free_port();
    let generated = dir.path().join("generated.toml");
    std::fs::write(
        &generated,
        format!(
            "[listen]\ndata = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:{port}\"\n\
             [backend]\nurls = [\"http://127.0.0.1:9\"]\n[store]\npath = {:?}\n",
            dir.path().join("store2")
        ),
    )
    .unwrap();
    drop(running);
    let _running = binary::serve_as_configured(&["--config", generated.to_str().unwrap()], |cmd| {
        cmd.env_remove("ESGATE_ADMIN_KEY")
            .env_remove("ESGATE_ADMIN_KEY_FILE");
    });
    let listed = cli_without_env(
        elsewhere.path(),
        &["token", "list", "--config", generated.to_str().unwrap()],
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("no tokens"));
}
