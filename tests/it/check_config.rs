//! `esgate check-config` prints the effective configuration as TOML that `serve` accepts
//! (issue #15, item 6): for the built-in defaults, `config/esgate.toml` and
//! `deploy/esgate.toml`, the printed text parses as TOML, feeding it back to `check-config`
//! succeeds and prints the same text (a fixed point), every setting is there and no secret is.
//! The path is accepted as a positional argument as well as `--config`, and a bad
//! configuration exits 2 from `check-config` and `serve` alike.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ES_PASSWORD: &str = "check-config-test-es-password-5d1e";
const ADMIN_KEY: &str = "check-config-test-admin-key-8c2a";

/// Runs `esgate <args>` in `cwd` with the secrets of the deploy config in its environment.
fn esgate(cwd: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(args)
        .current_dir(cwd)
        .env_remove("ESGATE_ADMIN_KEY_FILE")
        .env("ES_PASSWORD", ES_PASSWORD)
        .env("ESGATE_ADMIN_KEY", ADMIN_KEY)
        .output()
        .expect("the esgate binary runs")
}

fn check(cwd: &Path, config: Option<&Path>) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec!["check-config".as_ref()];
    if let Some(config) = config {
        args.push(config.as_os_str());
    }
    let out = esgate(cwd, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check-config {config:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for secret in [ES_PASSWORD, ADMIN_KEY] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "check-config printed a secret"
        );
    }
    stdout
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `deploy/esgate.toml` with its in-container paths (the CA file, the store) pointing at real
/// files, as tests/it/compose.rs does.
fn runnable_deploy_config(dir: &Path, tls: &support::tls::TlsFiles) -> PathBuf {
    let text = std::fs::read_to_string(repo("deploy/esgate.toml")).unwrap();
    let mut config: toml::Table = toml::from_str(&text).unwrap();
    config["backend"].as_table_mut().unwrap().insert(
        "ca_file".into(),
        tls.ca_cert.to_string_lossy().into_owned().into(),
    );
    config["store"].as_table_mut().unwrap().insert(
        "path".into(),
        dir.join("store").to_string_lossy().into_owned().into(),
    );
    let path = dir.join("deploy.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// The printed text is TOML with every section, and checking it again prints the same text.
fn assert_fixed_point(dir: &Path, name: &str, printed: &str) {
    let table: toml::Table = toml::from_str(printed)
        .unwrap_or_else(|e| panic!("{name}: the printed config is not TOML: {e}\n{printed}"));
    for section in [
        "listen", "backend", "store", "admin", "ids", "auth", "policies", "audit", "log",
    ] {
        assert!(table.contains_key(section), "{name}: no [{section}]");
    }
    assert!(
        !printed.contains("Some(") && !printed.contains("None") && !printed.contains(" { "),
        "{name}: Rust debug output:\n{printed}"
    );
    let again = dir.join(format!("{name}.printed.toml"));
    std::fs::write(&again, printed).unwrap();
    let reprinted = check(dir, Some(&again));
    assert_eq!(printed, reprinted, "{name}: not a fixed point");
}

#[test]
fn printed_configuration_is_toml_that_check_config_prints_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let tls = support::tls::TlsFiles::generate();

    // Built-in defaults: no config/esgate.toml in the working directory.
    let defaults = check(dir.path(), None);
    assert_fixed_point(dir.path(), "defaults", &defaults);
    for setting in [
        "idle_timeout = ",
        "admin_max_connections = 256",
        "body_idle_timeout = ",
        "answer_timeout = ",
        "unhealthy_cooldown = ",
        "resolve_cache_ttl = ",
        "max_tracked_addresses = 100000",
        "allow_open_ip_filters = true",
        "[policies.limits]\nmax_open_scrolls = 100",
        "max_open_pits = 50",
        "max_running_async_searches = 100",
        "[admin]\nkey_env = \"ESGATE_ADMIN_KEY\"",
    ] {
        assert!(defaults.contains(setting), "{setting} missing:\n{defaults}");
    }

    let example = check(dir.path(), Some(&repo("config/esgate.toml")));
    assert_fixed_point(dir.path(), "example", &example);
    // The example states the defaults: the same effective configuration.
    assert_eq!(example, defaults);

    let deploy = check(dir.path(), Some(&runnable_deploy_config(dir.path(), &tls)));
    assert_fixed_point(dir.path(), "deploy", &deploy);
    assert!(
        deploy.contains("password_env = \"ES_PASSWORD\""),
        "{deploy}"
    );
    assert!(deploy.contains("username = \"elastic\""), "{deploy}");
}

/// Every kind of setting that is not a plain value prints back too: TLS files, a client
/// certificate, secrets from the environment, the id key variable, an audit file, policies.
#[test]
fn files_and_secret_sources_print_back_as_a_fixed_point() {
    let dir = tempfile::tempdir().unwrap();
    let tls = support::tls::TlsFiles::generate();
    let (cert, key, ca) = (
        tls.cert.display().to_string(),
        tls.key.display().to_string(),
        tls.ca_cert.display().to_string(),
    );
    let config = format!(
        "[listen]\ndata = \"127.0.0.1:19201\"\n[listen.tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n\
         handshake_timeout = \"1500ms\"\n\
         [backend]\nurls = [\"https://a:9200/\", \"https://b:9243\"]\napi_key_env = \"ES_PASSWORD\"\n\
         ca_file = {ca:?}\nclient_cert_file = {cert:?}\nclient_key_file = {key:?}\n\
         relay_headers = [\"X-My-Header\"]\n\
         [ids]\nkey_env = \"CHECK_CONFIG_ID_KEY\"\n\
         [auth]\ntrusted_proxies = [\"10.1.2.3\", \"fd00::/8\"]\n\
         [policies]\nmax_lifetime = \"90d\"\nrequire_expiry = true\nallow_open_ip_filters = false\n\
         [audit]\noutput = \"file\"\npath = {:?}\n[log]\nformat = \"json\"\n",
        dir.path().join("audit.jsonl").display().to_string()
    );
    let path = dir.path().join("full.toml");
    std::fs::write(&path, config).unwrap();
    // ids.key_env must name a variable holding base64 of 32 bytes.
    let id_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let run = |config: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_esgate"))
            .arg("check-config")
            .arg(config)
            .current_dir(dir.path())
            .env("ES_PASSWORD", ES_PASSWORD)
            .env("ESGATE_ADMIN_KEY", ADMIN_KEY)
            .env("CHECK_CONFIG_ID_KEY", id_key)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in [ES_PASSWORD, ADMIN_KEY, id_key] {
            assert!(!stdout.contains(secret), "a secret is printed");
        }
        stdout
    };
    let printed = run(&path);
    for expected in [
        "[listen.tls]",
        &format!("key_file = {key:?}"),
        "handshake_timeout = \"1500ms\"",
        "urls = [\"https://a:9200\", \"https://b:9243\"]",
        "api_key_env = \"ES_PASSWORD\"",
        &format!("client_key_file = {key:?}"),
        "relay_headers = [\"x-my-header\"]",
        "[ids]\nkey_env = \"CHECK_CONFIG_ID_KEY\"",
        "trusted_proxies = [\"10.1.2.3/32\", \"fd00::/8\"]",
        "max_lifetime = \"90d\"",
        "output = \"file\"",
        "format = \"json\"",
    ] {
        assert!(printed.contains(expected), "{expected} missing:\n{printed}");
    }
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &printed).unwrap();
    assert_eq!(run(&again), printed, "not a fixed point");
}

#[test]
fn the_path_is_accepted_positionally_and_as_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[listen]\ndata = \"127.0.0.1:19201\"\n").unwrap();
    let positional = check(dir.path(), Some(&config));
    let out = esgate(
        dir.path(),
        &[
            "check-config".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), positional);
    assert!(
        positional.contains("data = \"127.0.0.1:19201\""),
        "{positional}"
    );
    // Both at once is a usage error, not a silent choice.
    let out = esgate(
        dir.path(),
        &[
            "check-config".as_ref(),
            config.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    assert!(!out.status.success());
}

/// Session 12: a configuration that validates but deserves a second look (a body budget too
/// small to check a body near the cap) is printed with its advice, and still accepted; the
/// defaults have none.
#[test]
fn check_config_prints_advice_and_accepts_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[listen]\nmax_body_bytes = 1048576\nmax_buffered_bytes = 2097152\n",
    )
    .unwrap();
    let printed = check(dir.path(), Some(&config));
    assert!(
        printed.contains("# advice: listen.max_buffered_bytes: is less than 4 times"),
        "{printed}"
    );
    assert!(printed.ends_with("# configuration is valid\n"), "{printed}");
    std::fs::write(&config, "[listen]\ndata = \"127.0.0.1:19201\"\n").unwrap();
    let printed = check(dir.path(), Some(&config));
    assert!(!printed.contains("# advice"), "{printed}");
}

/// The interface contract's exit codes: an unreadable, malformed or invalid configuration exits
/// 1 from `check-config` ("validate and print the effective config, exit 0/1") and 2 from
/// `serve` (which exits 1 when it cannot start otherwise, so a script tells the two apart).
#[test]
fn a_bad_configuration_exits_1_from_check_config_and_2_from_serve() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("invalid.toml");
    std::fs::write(&invalid, "[listen]\ndata = \"nope\"\n").unwrap();
    let malformed = dir.path().join("malformed.toml");
    std::fs::write(&malformed, "[listen]\nbogus = 1\n").unwrap();
    let missing = dir.path().join("missing.toml");
    for config in [&invalid, &malformed, &missing] {
        for (command, code) in [("check-config", 1), ("serve", 2)] {
            let out = esgate(
                dir.path(),
                &[command.as_ref(), "--config".as_ref(), config.as_os_str()],
            );
            assert_eq!(
                out.status.code(),
                Some(code),
                "{command} {config:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Nothing but the problems, on stderr: a script's stdout stays empty.
            assert!(
                out.stdout.is_empty(),
                "{command} {config:?} printed to stdout"
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).starts_with("esgate: "),
                "{command} {config:?}"
            );
        }
    }
    // A valid one: 0, the effective configuration on stdout.
    let valid = dir.path().join("valid.toml");
    std::fs::write(&valid, "[listen]\ndata = \"127.0.0.1:19201\"\n").unwrap();
    let out = esgate(dir.path(), &["check-config".as_ref(), valid.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("# configuration is valid\n"));
}

/// hdr21: a `backend.relay_headers` name esgate never relays (here an authenticating proxy's
/// user header) stops `serve` at start-up, the entry and the reason on stderr.
#[test]
fn a_relay_header_that_changes_identity_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        "[listen]\ndata = \"127.0.0.1:0\"\n[backend]\nrelay_headers = [\"x-ok\", \"X-Proxy-User\"]\n",
    )
    .unwrap();
    let out = esgate(
        dir.path(),
        &["serve".as_ref(), "--config".as_ref(), config.as_os_str()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("backend.relay_headers[1]") && stderr.contains("never relays"),
        "{stderr}"
    );
}

/// `--config` defaults to `config/esgate.toml` in the working directory when that file exists
/// (contract: "Command line"), for `check-config` and `serve` alike; `serve`'s flags override
/// the file, and `--backend` repeats.
#[test]
fn the_default_config_file_is_read_and_serve_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/esgate.toml"),
        "[listen]\ndata = \"127.0.0.1:19291\"\n[backend]\nurls = [\"http://127.0.0.1:19299\"]\n",
    )
    .unwrap();
    let printed = check(dir.path(), None);
    assert!(printed.contains("data = \"127.0.0.1:19291\""), "{printed}");
    assert!(printed.contains("http://127.0.0.1:19299"), "{printed}");

    // serve: the file is read (its backend), the flags win over it.
    let served = support::binary::serve(
        &[
            "--backend",
            "http://127.0.0.1:9",
            "--backend",
            "http://127.0.0.2:9",
            "--store",
            "data",
        ],
        |cmd| {
            cmd.current_dir(dir.path())
                .env("ESGATE_ADMIN_KEY", ADMIN_KEY)
                .env_remove("ESGATE_ADMIN_KEY_FILE");
        },
    );
    let log = served.log.lock().unwrap().clone();
    assert!(log.contains("config=config/esgate.toml"), "{log}");
    assert!(
        log.contains("backend=http://127.0.0.1:9,http://127.0.0.2:9"),
        "{log}"
    );
    // --listen 127.0.0.1:0 (the harness) over the file's 127.0.0.1:19291.
    assert!(!served.data.ends_with(":19291"), "{}", served.data);
    assert!(dir.path().join("data").is_dir());
}
