//! README.md's examples are executed: every ```sh block after a `<!-- tested -->` comment is run
//! command by command with the real `curl` (through `bash`, with `ESGATE`, `ESGATE_ADMIN_URL`,
//! `ESGATE_ADMIN_KEY`, and after the token is created `TOKEN_ID` and `SECRET` in the
//! environment) against esgate in front of osmem seeded with the security fixture plus tenant
//! `acme`'s documents in `logs-web`. The Kibana and Grafana snippets (blocks after
//! `<!-- tested: kibana.yml -->` / `<!-- tested: grafana-datasource.yml -->`) must parse as YAML,
//! name the keys Kibana and Grafana read, and agree with docker-compose.yml and deploy/.
//!
//! Invariant checked: each command answers the status its `# → NNN` comment names, and every
//! data answer holds only tenant acme's documents (no leak marker, every `tenant` is acme, every
//! count and total exactly acme's); every `curl` line in README.md is in a tested block.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

use support::esgate::{Esgate, ADMIN_KEY};
use support::fixture::{self, contains_leak_marker, LEAKMARKER_B};
use support::http::send;

/// Tenant acme's documents, all in `logs-web` (the README's token: tenant acme on `logs-*`).
const ACME_DOCS: u64 = 3;
const TESTED: &str = "<!-- tested -->";

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The fenced blocks that follow the comment line `marker` (blank lines in between allowed):
/// (language, text) each.
fn blocks_after(text: &str, marker: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != marker {
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() && lines[j].trim().is_empty() {
            j += 1;
        }
        let fence = lines.get(j).copied().unwrap_or_default();
        let lang = fence
            .strip_prefix("```")
            .unwrap_or_else(|| panic!("{marker} on line {} is not followed by a fence", i + 1));
        let body: Vec<&str> = lines[j + 1..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .copied()
            .collect();
        out.push((lang.trim().to_owned(), body.join("\n")));
    }
    out
}

/// One command of a tested block and the status its `# → NNN` comment promises.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    command: String,
    status: u16,
}

/// Splits a tested sh block into commands (`\`-continued lines joined); every command must be
/// a `curl` with its expected status.
fn examples(block: &str) -> Vec<Example> {
    let mut joined: Vec<String> = vec![];
    let mut pending = String::new();
    for line in block.lines() {
        let line = line.trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        joined.push(std::mem::take(&mut pending));
    }
    joined
        .into_iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (command, status) = l
                .rsplit_once("# → ")
                .unwrap_or_else(|| panic!("a tested command has no `# → NNN`: {l}"));
            let status = status
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no status after `# → ` in {l}"));
            assert!(
                command.trim_start().starts_with("curl "),
                "a tested command is not a curl: {l}"
            );
            Example {
                command: command.trim().to_owned(),
                status,
            }
        })
        .collect()
}

#[test]
fn examples_split_commands_and_read_their_status() {
    let block = "# a comment\ncurl -s \"$ESGATE/\"   # → 200\n\ncurl -X DELETE \\\n  \"$ESGATE/x\"   # → 403 refused\n";
    assert_eq!(
        examples(block),
        vec![
            Example {
                command: "curl -s \"$ESGATE/\"".into(),
                status: 200
            },
            Example {
                command: "curl -X DELETE   \"$ESGATE/x\"".into(),
                status: 403
            },
        ]
    );
}

#[test]
fn every_curl_line_in_the_readme_is_in_a_tested_block() {
    let text = readme();
    let tested: Vec<String> = blocks_after(&text, TESTED)
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    let mut in_fence = false;
    let mut untested = vec![];
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence
            && line.trim_start().starts_with("curl ")
            && !tested.iter().any(|b| b.lines().any(|l| l == line))
        {
            untested.push(line.to_owned());
        }
    }
    assert!(
        untested.is_empty(),
        "curl examples not run by this test: {untested:#?}"
    );
}

/// Adds tenant acme (3 documents) and another tenant with the leak marker to `logs-web`.
async fn seed_acme(base: &str) {
    let (s, r) = put(base, "/logs-web", json!({"mappings": fixture::mappings()})).await;
    assert!(s < 300, "create logs-web: {s} {r}");
    for n in 1..=ACME_DOCS {
        let acme = json!({"tenant": "acme", "user": "ann", "message": format!("acme {n}"), "n": n,
                          "@timestamp": "2024-01-01T00:00:00Z"});
        let globex = json!({"tenant": "globex", "user": format!("gus-{LEAKMARKER_B}"),
                            "message": format!("{LEAKMARKER_B} {n}"), "n": n,
                            "@timestamp": "2024-01-01T00:00:00Z"});
        for (id, doc) in [(format!("{n}"), acme), (format!("g{n}"), globex)] {
            let (s, r) = put(base, &format!("/logs-web/_doc/{id}?refresh=true"), doc).await;
            assert!(s < 300, "index {id}: {s} {r}");
        }
    }
}

async fn put(base: &str, path: &str, body: Value) -> (u16, String) {
    let r = send(
        "PUT",
        &format!("{base}{path}"),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
    .expect("the backend answers");
    (r.status.as_u16(), r.text())
}

/// What one command printed: the status `curl -w` wrote and the body it saved.
struct Ran {
    status: u16,
    body: Vec<u8>,
    stderr: String,
}

/// Runs `command` with bash; `curl` is the real binary with `-o FILE -w '%{http_code}'` added.
fn run(command: &str, env: &[(&str, String)], dir: &Path) -> Ran {
    let body_file = dir.join("body");
    let _ = std::fs::remove_file(&body_file);
    let script = format!(
        "curl() {{ command curl -o \"$README_BODY\" -w '%{{http_code}}' \"$@\"; }}\n{command}\n"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("README_BODY", &body_file)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    Ran {
        status: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        body: std::fs::read(&body_file).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Everything wrong with a data answer from the point of view of tenant acme's token.
fn acme_only(v: &Value, status: u16, out: &mut Vec<String>) {
    fn walk(v: &Value, key: Option<&str>, status: u16, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if k == "_shards" {
                        continue;
                    }
                    walk(child, Some(k), status, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, key, status, out)),
            _ => match key {
                Some("tenant") if *v != "acme" => out.push(format!("tenant {v}")),
                // Counts and hit totals of a successful answer are exactly acme's.
                Some("count") | Some("total") if status == 200 && *v != json!(ACME_DOCS) => {
                    out.push(format!("{} = {v}", key.unwrap_or_default()))
                }
                Some("doc_count") if v.as_u64().is_none_or(|n| n > ACME_DOCS) => {
                    out.push(format!("doc_count {v}"))
                }
                _ => {}
            },
        }
    }
    // `hits.total` is an object {value, relation}: its value is what counts.
    let mut v = v.clone();
    normalise_totals(&mut v);
    walk(&v, None, status, out);
}

fn normalise_totals(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(t) = map.get_mut("total") {
                if let Some(value) = t.get("value").cloned() {
                    *t = value;
                }
            }
            map.values_mut().for_each(normalise_totals);
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_totals),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_curl_examples_answer_as_documented_with_only_the_tenants_data() {
    let backend = fixture::seeded_osmem();
    seed_acme(backend.url()).await;
    let gw = Esgate::start(&[backend.url()], "").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env: Vec<(&str, String)> = vec![
        ("ESGATE", gw.url("")),
        ("ESGATE_ADMIN_URL", gw.admin_url("")),
        ("ESGATE_ADMIN_KEY", ADMIN_KEY.to_owned()),
    ];
    let mut failures = vec![];
    let mut ran = 0;
    for (lang, block) in blocks_after(&readme(), TESTED) {
        assert_eq!(lang, "sh", "a tested block is not sh: {block}");
        for ex in examples(&block) {
            let (command, env_now, path) = (ex.command.clone(), env.clone(), dir.path().to_owned());
            let r = tokio::task::spawn_blocking(move || run(&command, &env_now, &path))
                .await
                .expect("the runner does not panic");
            ran += 1;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let mut wrong = vec![];
            if r.status != ex.status {
                wrong.push(format!("status {} instead of {}", r.status, ex.status));
            }
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if ex.command.contains("$ESGATE_ADMIN_URL") {
                // The admin answer to token creation: remember the token for what follows.
                match (v["id"].as_str(), v["secret"].as_str()) {
                    (Some(id), Some(secret)) => {
                        env.retain(|(k, _)| *k != "TOKEN_ID" && *k != "SECRET");
                        env.push(("TOKEN_ID", id.to_owned()));
                        env.push(("SECRET", secret.to_owned()));
                    }
                    _ => wrong.push("no id and secret in the answer".into()),
                }
            } else {
                if v.is_null() {
                    wrong.push("the answer is not JSON".into());
                }
                if contains_leak_marker(&r.body) {
                    wrong.push("a leak marker in the answer".into());
                }
                acme_only(&v, r.status, &mut wrong);
                if r.status >= 400 && !v["error"]["reason"].is_string() {
                    wrong.push("a refusal without a reason".into());
                }
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{}\n  {}\n  answer: {}\n  stderr: {}",
                    ex.command,
                    wrong.join("; "),
                    text.chars().take(600).collect::<String>(),
                    r.stderr
                ));
            }
        }
    }
    assert!(ran >= 10, "only {ran} README commands ran");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// === the Kibana and Grafana snippets ===

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The one YAML block after `<!-- tested: NAME -->`, parsed.
fn snippet(name: &str) -> Yaml {
    let blocks = blocks_after(&readme(), &format!("<!-- tested: {name} -->"));
    assert_eq!(blocks.len(), 1, "README.md needs one block marked {name}");
    let (lang, body) = &blocks[0];
    assert_eq!(lang, "yaml", "{name} is not a yaml block");
    serde_yaml::from_str(body).unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{body}"))
}

fn compose_service(name: &str) -> Yaml {
    let doc: Yaml = serde_yaml::from_str(&repo_file("docker-compose.yml")).expect("compose parses");
    doc["services"][name].clone()
}

/// `KEY=value` entries of a compose service's environment list.
fn compose_env(service: &Yaml) -> Vec<(String, String)> {
    service["environment"]
        .as_sequence()
        .map(|list| {
            list.iter()
                .filter_map(Yaml::as_str)
                .filter_map(|e| e.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kibana_snippet_names_the_keys_kibana_reads_and_agrees_with_the_compose_stack() {
    let k = snippet("kibana.yml");
    let str_at = |key: &str| k[key].as_str().map(str::to_owned);
    let hosts: Vec<&str> = k["elasticsearch.hosts"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default();
    assert_eq!(hosts, ["http://esgate:9201"], "{k:?}");
    // The internal user: an `all` token as Kibana's service account token (Bearer).
    assert_eq!(
        str_at("elasticsearch.serviceAccountToken").as_deref(),
        Some("${ESGATE_KIBANA_TOKEN}")
    );
    // End users: the `http` provider with the schemes esgate reads (Bearer, ApiKey).
    assert_eq!(k["xpack.security.authc.http.enabled"].as_bool(), Some(true));
    let schemes: Vec<&str> = k["xpack.security.authc.http.schemes"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default();
    assert_eq!(schemes, ["apikey", "bearer"], "{k:?}");
    // CSV export for users without roles: Kibana 8's reporting by feature privileges.
    assert_eq!(k["xpack.reporting.roles.enabled"].as_bool(), Some(false));
    // Kibana refuses both a username/password and a service account token.
    assert!(k["elasticsearch.username"].is_null() && k["elasticsearch.password"].is_null());
    // docker-compose.yml sets the same through Kibana's environment-variable form.
    let env = compose_env(&compose_service("kibana"));
    assert!(env.contains(&(
        "ELASTICSEARCH_HOSTS".into(),
        r#"["http://esgate:9201"]"#.into()
    )));
    assert!(env.iter().any(
        |(k, v)| k == "ELASTICSEARCH_SERVICEACCOUNTTOKEN" && v.contains("ESGATE_KIBANA_TOKEN")
    ));
}

#[test]
fn grafana_snippet_provisions_the_three_ways_to_send_a_token() {
    let g = snippet("grafana-datasource.yml");
    assert_eq!(g["apiVersion"].as_u64(), Some(1));
    let sources = g["datasources"].as_sequence().expect("a datasources list");
    assert_eq!(sources.len(), 3, "basic, API key and custom header");
    let deployed: Yaml = serde_yaml::from_str(&repo_file(
        "deploy/grafana/provisioning/datasources/esgate.yml",
    ))
    .expect("deploy's data source parses");
    let deployed = &deployed["datasources"][0];
    for ds in sources {
        for key in ["name", "uid", "type", "access", "url"] {
            assert!(ds[key].is_string(), "{key} missing in {ds:?}");
        }
        assert_eq!(ds["type"].as_str(), Some("elasticsearch"));
        assert_eq!(ds["access"].as_str(), Some("proxy"));
        // The same service URL and index settings as the provisioned file in deploy/.
        assert_eq!(ds["url"], deployed["url"], "{ds:?}");
        assert_eq!(ds["jsonData"]["index"], deployed["jsonData"]["index"]);
        assert_eq!(
            ds["jsonData"]["timeField"],
            deployed["jsonData"]["timeField"]
        );
    }
    // 1. Basic auth: the secret as user name, the word `token` as password (as deploy/ does).
    let basic = &sources[0];
    assert_eq!(basic["basicAuth"].as_bool(), Some(true));
    assert_eq!(basic["basicAuthUser"], deployed["basicAuthUser"]);
    assert_eq!(
        basic["secureJsonData"]["basicAuthPassword"].as_str(),
        Some("token")
    );
    // 2. and 3. A header Grafana adds to every request: `ApiKey base64(id:secret)`, or Bearer.
    for (ds, scheme) in [(&sources[1], "ApiKey "), (&sources[2], "Bearer ")] {
        assert_ne!(ds["basicAuth"].as_bool(), Some(true), "{ds:?}");
        assert_eq!(
            ds["jsonData"]["httpHeaderName1"].as_str(),
            Some("Authorization")
        );
        let value = ds["secureJsonData"]["httpHeaderValue1"]
            .as_str()
            .unwrap_or_default();
        assert!(value.starts_with(scheme), "{value:?} is not {scheme}…");
        assert!(
            value.contains("${"),
            "{value:?} should come from the environment"
        );
    }
    let names: Vec<&str> = sources.iter().filter_map(|d| d["uid"].as_str()).collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique, "uids must differ");
}
