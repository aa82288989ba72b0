//! Static checks of the docker-compose stack (no Docker needed): `docker-compose.yml` parses,
//! every `depends_on` and every service named in a URL (environment, `deploy/esgate.toml`, the
//! Grafana data source) exists, every bind-mounted host path exists in the repository, every
//! named volume is declared, the Grafana data source points at esgate's data listener, and
//! `deploy/esgate.toml` passes `esgate check-config` without echoing its secrets.
//!
//! Invariant: the stack's files are only read; anything that must be adapted to run outside a
//! container (paths that exist only inside it) is rewritten into a temp copy.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value as Yaml;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn compose() -> Yaml {
    serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is valid YAML")
}

fn services(doc: &Yaml) -> &serde_yaml::Mapping {
    doc.get("services")
        .and_then(Yaml::as_mapping)
        .expect("docker-compose.yml has a services map")
}

fn service_names(doc: &Yaml) -> BTreeSet<String> {
    services(doc)
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

/// `depends_on` in either the list or the map form.
fn depends_on(service: &Yaml) -> Vec<String> {
    match service.get("depends_on") {
        None => Vec::new(),
        Some(Yaml::Sequence(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Yaml::Mapping(map)) => map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        Some(other) => panic!("unexpected depends_on form: {other:?}"),
    }
}

/// Environment values in either the `- K=V` list or the `K: V` map form.
fn environment(service: &Yaml) -> Vec<(String, String)> {
    match service.get("environment") {
        None => Vec::new(),
        Some(Yaml::Sequence(list)) => list
            .iter()
            .filter_map(Yaml::as_str)
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.to_owned(), String::new()),
            })
            .collect(),
        Some(Yaml::Mapping(map)) => map
            .iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    _ => String::new(),
                };
                Some((k.as_str()?.to_owned(), v))
            })
            .collect(),
        Some(other) => panic!("unexpected environment form: {other:?}"),
    }
}

/// `(source, target)` of every volume entry, short (`src:dst[:mode]`) or long form.
fn volumes(service: &Yaml) -> Vec<(String, String)> {
    let Some(list) = service.get("volumes").and_then(Yaml::as_sequence) else {
        return Vec::new();
    };
    list.iter()
        .map(|v| match v {
            Yaml::String(s) => {
                let mut parts = s.splitn(3, ':');
                let src = parts.next().unwrap_or_default().to_owned();
                let dst = parts.next().unwrap_or_default().to_owned();
                (src, dst)
            }
            Yaml::Mapping(_) => (
                v.get("source")
                    .and_then(Yaml::as_str)
                    .unwrap_or("")
                    .to_owned(),
                v.get("target")
                    .and_then(Yaml::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
            other => panic!("unexpected volume form: {other:?}"),
        })
        .collect()
}

/// Host names of every `scheme://host[:port]` URL inside `text`.
fn url_hosts(text: &str) -> Vec<(String, Option<u16>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let after = &rest[pos + 3..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
            .unwrap_or(after.len());
        let authority = &after[..end];
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, p.parse().ok()),
            None => (authority, None),
        };
        if !host.is_empty() {
            out.push((host.to_owned(), port));
        }
        rest = &after[end..];
    }
    out
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

fn esgate_toml() -> toml::Value {
    toml::from_str(&read("deploy/esgate.toml")).expect("deploy/esgate.toml is valid TOML")
}

fn grafana_datasources() -> Yaml {
    serde_yaml::from_str(&read("deploy/grafana/provisioning/datasources/esgate.yml"))
        .expect("the Grafana data source file is valid YAML")
}

#[test]
fn depends_on_names_existing_services() {
    let doc = compose();
    let names = service_names(&doc);
    assert!(
        ["elasticsearch", "esgate", "kibana", "grafana"]
            .iter()
            .all(|s| names.contains(*s)),
        "services: {names:?}"
    );
    for (name, service) in services(&doc) {
        for dep in depends_on(service) {
            assert!(names.contains(&dep), "{name:?} depends on unknown {dep:?}");
        }
    }
}

#[test]
fn urls_in_environment_and_config_name_existing_services() {
    let doc = compose();
    let names = service_names(&doc);
    let mut seen = Vec::new();
    for (name, service) in services(&doc) {
        for (key, value) in environment(service) {
            for (host, _) in url_hosts(&value) {
                seen.push(host.clone());
                assert!(
                    names.contains(&host) || is_loopback(&host),
                    "{name:?} env {key} points at unknown host {host:?}"
                );
            }
        }
    }
    let config = read("deploy/esgate.toml");
    let grafana = read("deploy/grafana/provisioning/datasources/esgate.yml");
    for (file, text) in [
        ("deploy/esgate.toml", config),
        ("grafana datasource", grafana),
    ] {
        let hosts = url_hosts(&text);
        assert!(!hosts.is_empty(), "{file} names no URL");
        for (host, _) in hosts {
            seen.push(host.clone());
            assert!(
                names.contains(&host) || is_loopback(&host),
                "{file} points at unknown host {host:?}"
            );
        }
    }
    // Kibana and Grafana reach esgate, esgate reaches Elasticsearch.
    assert!(seen.iter().any(|h| h == "esgate"), "{seen:?}");
    assert!(seen.iter().any(|h| h == "elasticsearch"), "{seen:?}");
}

#[test]
fn kibana_talks_only_to_esgate() {
    let doc = compose();
    let kibana = &services(&doc)["kibana"];
    let env = environment(kibana);
    let hosts = env
        .iter()
        .find(|(k, _)| k == "ELASTICSEARCH_HOSTS")
        .map(|(_, v)| v.clone())
        .expect("kibana sets ELASTICSEARCH_HOSTS");
    let hosts: Vec<String> =
        serde_json::from_str(&hosts).expect("ELASTICSEARCH_HOSTS is a JSON array");
    assert_eq!(hosts, vec!["http://esgate:9201".to_owned()]);
}

#[test]
fn bind_mounts_exist_and_named_volumes_are_declared() {
    let doc = compose();
    let declared: BTreeSet<String> = doc
        .get("volumes")
        .and_then(Yaml::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut binds = 0;
    for (name, service) in services(&doc) {
        for (src, dst) in volumes(service) {
            assert!(dst.starts_with('/'), "{name:?}: volume target {dst:?}");
            if src.starts_with('.') || src.starts_with('/') {
                let path = repo().join(&src);
                assert!(
                    src.starts_with("./") && !src.contains(".."),
                    "{name:?}: bind mount {src:?} must be a path inside the repo"
                );
                assert!(path.exists(), "{name:?}: bind mount {src:?} does not exist");
                binds += 1;
            } else {
                assert!(
                    declared.contains(&src),
                    "{name:?}: named volume {src:?} is not declared"
                );
            }
        }
    }
    assert!(
        binds >= 2,
        "esgate config and Grafana provisioning are bind-mounted"
    );
}

#[test]
fn esgate_service_mounts_the_deploy_config_it_is_started_with() {
    let doc = compose();
    let esgate = &services(&doc)["esgate"];
    let command: Vec<&str> = esgate["command"]
        .as_sequence()
        .expect("esgate command is a list")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(command, ["serve", "--config", "/etc/esgate/esgate.toml"]);
    assert!(volumes(esgate).contains(&(
        "./deploy/esgate.toml".to_owned(),
        "/etc/esgate/esgate.toml".to_owned()
    )));
    let dockerfile = esgate["build"]["dockerfile"]
        .as_str()
        .unwrap_or("Dockerfile");
    let dockerfile = read(dockerfile);
    assert!(dockerfile.contains("FROM rust:1-bookworm AS build"));
    assert!(dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(dockerfile.contains(r#"CMD ["serve", "--config", "/etc/esgate/esgate.toml"]"#));
    // Every variable the config reads from the environment is set for the container.
    let config = esgate_toml();
    let env: BTreeSet<String> = environment(esgate).into_iter().map(|(k, _)| k).collect();
    for var in env_vars_named_in(&config) {
        assert!(
            env.contains(&var),
            "esgate config reads {var} but compose does not set it"
        );
    }
}

#[test]
fn grafana_datasource_points_at_esgate_data_listener() {
    let doc = grafana_datasources();
    let sources = doc["datasources"]
        .as_sequence()
        .expect("datasources is a list");
    let es = sources
        .iter()
        .find(|d| d["type"].as_str() == Some("elasticsearch"))
        .expect("an elasticsearch data source");
    let url = es["url"].as_str().expect("the data source has a url");
    let data_listen = esgate_toml()["listen"]["data"]
        .as_str()
        .expect("listen.data is a string")
        .to_owned();
    let data_port: u16 = data_listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("listen.data has a port");
    assert_eq!(url_hosts(url), vec![("esgate".to_owned(), Some(data_port))]);
    assert_eq!(es["basicAuth"].as_bool(), Some(true));
    assert_eq!(
        es["basicAuthUser"].as_str(),
        Some("${ESGATE_GRAFANA_TOKEN}")
    );
    assert_eq!(
        es["secureJsonData"]["basicAuthPassword"].as_str(),
        Some("token")
    );
    // The Grafana container gets the variable the file expands, and mounts the directory.
    let compose = compose();
    let grafana = &services(&compose)["grafana"];
    assert!(environment(grafana)
        .iter()
        .any(|(k, _)| k == "ESGATE_GRAFANA_TOKEN"));
    assert!(volumes(grafana).contains(&(
        "./deploy/grafana/provisioning".to_owned(),
        "/etc/grafana/provisioning".to_owned()
    )));
}

/// Every `*_env` value in the config: the environment variables it reads.
fn env_vars_named_in(config: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    if k.ends_with("_env") {
                        if let Some(s) = v.as_str() {
                            out.push(s.to_owned());
                        }
                    }
                    walk(v, out);
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(config, &mut out);
    out
}

const TEST_ES_PASSWORD: &str = "compose-test-es-password-7f3a";
const TEST_ADMIN_KEY: &str = "compose-test-admin-key-91bc";

/// A copy of `deploy/esgate.toml` runnable outside the container: the CA file and the store
/// path, which exist only inside it, point at a generated CA and a temp dir. `mutate` may change
/// the table further.
fn runnable_copy(
    dir: &Path,
    tls: &support::tls::TlsFiles,
    mutate: impl FnOnce(&mut toml::Table),
) -> PathBuf {
    let mut config = esgate_toml();
    let table = config.as_table_mut().expect("the config is a table");
    if let Some(backend) = table.get_mut("backend").and_then(toml::Value::as_table_mut) {
        if backend.contains_key("ca_file") {
            backend.insert(
                "ca_file".into(),
                tls.ca_cert.to_string_lossy().into_owned().into(),
            );
        }
    }
    if let Some(store) = table.get_mut("store").and_then(toml::Value::as_table_mut) {
        if store.contains_key("path") {
            let path = dir.join("store");
            std::fs::create_dir_all(&path).expect("temp dir is writable");
            store.insert("path".into(), path.to_string_lossy().into_owned().into());
        }
    }
    mutate(table);
    let path = dir.join("esgate.toml");
    std::fs::write(
        &path,
        toml::to_string(&config).expect("a toml Value serialises"),
    )
    .expect("temp dir is writable");
    path
}

fn check_config(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_esgate"))
        .args(["check-config", "--config"])
        .arg(config)
        .env("ES_PASSWORD", TEST_ES_PASSWORD)
        .env("ESGATE_ADMIN_KEY", TEST_ADMIN_KEY)
        .output()
        .expect("the esgate binary runs")
}

#[test]
fn deploy_config_passes_check_config_without_printing_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = support::tls::TlsFiles::generate();
    let config = runnable_copy(dir.path(), &tls, |_| {});
    let out = check_config(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "esgate check-config rejected deploy/esgate.toml ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for secret in [TEST_ES_PASSWORD, TEST_ADMIN_KEY] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "check-config printed a secret"
        );
    }
}

/// The control for the test above: check-config must be able to fail, so a typo in the deploy
/// config is caught.
#[test]
fn check_config_rejects_deploy_config_with_unknown_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = support::tls::TlsFiles::generate();
    let config = runnable_copy(dir.path(), &tls, |t| {
        if let Some(listen) = t.get_mut("listen").and_then(toml::Value::as_table_mut) {
            listen.insert("dat".into(), "0.0.0.0:9201".into());
        }
    });
    let out = check_config(&config);
    assert!(
        !out.status.success(),
        "check-config accepted an unknown key: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn url_hosts_finds_every_url() {
    assert_eq!(
        url_hosts(r#"["http://esgate:9201", "https://elasticsearch:9200/x"] ftp://a"#),
        vec![
            ("esgate".to_owned(), Some(9201)),
            ("elasticsearch".to_owned(), Some(9200)),
            ("a".to_owned(), None),
        ]
    );
    assert!(url_hosts("no url here").is_empty());
}

/// The `setup` service's permission lines, run on a copy of the certificate layout it makes:
/// esgate's user (uid 10001, not in group 0, as in the Dockerfile) must read the CA
/// certificate and no private key. Needs root (chown, setpriv), as in CI.
#[test]
fn setup_leaves_the_ca_readable_by_esgates_user_and_no_private_key() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        eprintln!("skipped: needs root to chown and to switch users");
        return;
    }
    let doc = compose();
    let script = services(&doc)["setup"]["command"]
        .as_sequence()
        .and_then(|c| c.last())
        .and_then(Yaml::as_str)
        .expect("setup has a bash -c script")
        .to_owned();
    let from = script.find("chown -R").expect("the script sets owners");
    let to = script
        .find("echo certificates ready")
        .expect("the script ends");
    let permissions = &script[from..to];

    let root = tempfile::tempdir().expect("temp dir");
    let certs = root.path().join("certs");
    for file in [
        "ca/ca.crt",
        "ca/ca.key",
        "elasticsearch/elasticsearch.crt",
        "elasticsearch/elasticsearch.key",
    ] {
        let path = certs.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file).unwrap();
    }
    // Only the volume's own modes matter: the temp dir above it is opened to everyone.
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ran = Command::new("bash")
        .args(["-ec", permissions])
        .current_dir(&certs)
        .status()
        .expect("bash runs");
    assert!(ran.success());
    let readable = |file: &str| {
        Command::new("setpriv")
            .args(["--reuid=10001", "--regid=10001", "--clear-groups", "cat"])
            .arg(certs.join(file))
            .output()
            .expect("setpriv runs")
            .status
            .success()
    };
    assert!(readable("ca/ca.crt"), "esgate cannot read the CA");
    for key in ["ca/ca.key", "elasticsearch/elasticsearch.key"] {
        assert!(!readable(key), "esgate's user can read {key}");
    }
}

/// `deploy/kubernetes/grafana-sidecar.yaml`: esgate next to Grafana, probed on its admin
/// listener, the admin key from a Secret, its config valid, Grafana pointed at esgate.
#[test]
fn kubernetes_sidecar_example_is_wired_and_its_config_is_valid() {
    let text = read("deploy/kubernetes/grafana-sidecar.yaml");
    let docs: Vec<Yaml> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Yaml::deserialize(d).expect("each document is YAML"))
        .collect();
    let of_kind = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} is in the manifest"))
    };
    let pod = &of_kind("Deployment", "grafana")["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().expect("containers");
    let esgate = containers
        .iter()
        .find(|c| c["name"] == "esgate")
        .expect("an esgate container");
    let config_text = of_kind("ConfigMap", "esgate-config")["data"]["esgate.toml"]
        .as_str()
        .expect("the config is text")
        .to_owned();
    let config: toml::Table = config_text.parse().expect("the config is TOML");
    let admin_port = config["listen"]["admin"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u64>().ok())
        .expect("an admin port");
    let port_named = |name: &str| {
        esgate["ports"]
            .as_sequence()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .and_then(|p| p["containerPort"].as_u64())
    };
    assert_eq!(port_named("admin"), Some(admin_port));
    for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
        assert_eq!(esgate[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(esgate[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    let env = esgate["env"].as_sequence().expect("env");
    let admin_key = env
        .iter()
        .find(|e| e["name"] == config["admin"]["key_env"].as_str().unwrap())
        .expect("the admin key variable is set");
    assert!(
        admin_key["valueFrom"]["secretKeyRef"]["name"].is_string()
            && admin_key.get("value").is_none(),
        "the admin key comes from a Secret"
    );
    assert_eq!(esgate["securityContext"]["runAsUser"], 10001);
    // Every mount path the config names is mounted.
    let mounts: Vec<&str> = esgate["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for path in [
        config["store"]["path"].as_str().unwrap(),
        "/etc/esgate/esgate.toml",
    ] {
        assert!(mounts.contains(&path), "{path} is not mounted: {mounts:?}");
    }
    let ca = config["backend"]["ca_file"].as_str().unwrap();
    assert!(
        mounts.iter().any(|m| ca.starts_with(m)),
        "{ca} is not mounted"
    );
    // Grafana's data source goes to esgate's data listener over the pod's loopback.
    let datasources = of_kind("ConfigMap", "grafana-datasources")["data"]["esgate.yml"]
        .as_str()
        .unwrap()
        .to_owned();
    let ds: Yaml = serde_yaml::from_str(&datasources).unwrap();
    let data = config["listen"]["data"].as_str().unwrap();
    assert_eq!(ds["datasources"][0]["url"], format!("http://{data}"));

    // The config passes check-config once its in-pod paths point at real files.
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = support::tls::TlsFiles::generate();
    let mut runnable = config.clone();
    runnable["backend"]["ca_file"] = tls.ca_cert.to_string_lossy().into_owned().into();
    runnable["store"]["path"] = dir
        .path()
        .join("store")
        .to_string_lossy()
        .into_owned()
        .into();
    let path = dir.path().join("esgate.toml");
    std::fs::write(&path, toml::to_string(&runnable).unwrap()).unwrap();
    let out = check_config(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
