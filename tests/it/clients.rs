//! The official Python clients through esgate: elasticsearch-py 8 and 9 against noida (the
//! Elasticsearch 8 dialect) and opensearch-py 3 against osmem, each with Basic and ApiKey auth
//! and `http_compress=True` (gzip request bodies), running `tests/clients/*.py` for info, count,
//! search, msearch, field_caps, the scan helper (scroll) and point in time, with a tenant-a
//! token on `logs-*` over the security fixture.
//!
//! Invariant checked: every number a client sees is exactly tenant a's (counts 10, hits a1..a10
//! from `logs-a`/`logs-b` only, no leak marker anywhere in what the client printed), and a
//! refused request reaches the user as a 403 `security_exception` with a reason they can act on.
//! The clients' venvs come from `support::python` (pinned, hash-checked, cached).

use crate::support;

use serde_json::{json, Value};

use support::backend::Backend;
use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};
use support::python::{self, ClientSet, ScriptRun};

const INDEX: &str = "logs-*";
/// The concrete indices behind `INDEX` that the token may read.
const INDEX_LIST: &str = "logs-a,logs-b";

fn token_a() -> Value {
    json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": [INDEX]})
}

/// How a script authenticates.
#[derive(Debug, Clone, Copy)]
enum Auth {
    /// `basic_auth=(secret, "token")` / `http_auth=(secret, "token")`.
    Basic,
    /// `api_key=(id, secret)` (opensearch-py: the same header set by hand).
    ApiKey,
}

/// Runs `script` of `set` against `gw` with the token (`id`, `secret`), off the async runtime.
async fn run_client(
    set: ClientSet,
    script: &'static str,
    gw: &Esgate,
    (id, secret): (&str, &str),
    (auth, compress): (Auth, bool),
    ops: &[&str],
    extra_env: &[(&str, &str)],
) -> ScriptRun {
    let url = gw.url("");
    let ops = ops.join(",");
    let (id, secret) = (id.to_owned(), secret.to_owned());
    let extra_env: Vec<(String, String)> = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut env: Vec<(&str, &str)> = extra_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend([
            ("ESGATE_URL", url.as_str()),
            ("TOKEN_ID", id.as_str()),
            ("TOKEN_SECRET", secret.as_str()),
            (
                "AUTH",
                match auth {
                    Auth::Basic => "basic",
                    Auth::ApiKey => "apikey",
                },
            ),
            ("COMPRESS", if compress { "1" } else { "0" }),
            ("INDEX", INDEX),
            ("DENIED_INDEX", fixture::INDEX_LOGS_B),
            ("DENIED_ID", "b1"),
            ("INDEX_LIST", INDEX_LIST),
            ("FOREIGN_INDEX", fixture::INDEX_SECRET),
            ("OPS", ops.as_str()),
        ]);
        python::run_script(set, script, &env)
    })
    .await
    .expect("the script runner does not panic")
}

/// Tenant a's documents in `logs-*`: everything the token may see.
fn tenant_a_docs() -> Vec<fixture::Doc> {
    fixture::docs()
        .into_iter()
        .filter(|d| d.source["tenant"] == "a" && d.index != fixture::INDEX_SECRET)
        .collect()
}

/// Tenant a's document ids, sorted as strings (the scripts sort them the same way).
fn tenant_a_ids() -> Vec<Value> {
    let mut ids: Vec<String> = tenant_a_docs().into_iter().map(|d| d.id).collect();
    ids.sort();
    ids.into_iter().map(Value::from).collect()
}

/// Checks one `hits_summary` (see common.py) against tenant a's full data set.
fn check_all_of_tenant_a(what: &str, s: &Value, with_hits: bool, failures: &mut Vec<String>) {
    if s["total"] != json!(fixture::TENANT_A_DOCS) {
        failures.push(format!(
            "{what}: total {} != {}",
            s["total"],
            fixture::TENANT_A_DOCS
        ));
    }
    if with_hits {
        if s["ids"] != Value::Array(tenant_a_ids()) {
            failures.push(format!("{what}: ids {} are not tenant a's", s["ids"]));
        }
        if s["tenants"] != json!(["a"]) {
            failures.push(format!("{what}: tenants {}", s["tenants"]));
        }
        if s["indices"] != json!([fixture::INDEX_LOGS_A, fixture::INDEX_LOGS_B]) {
            failures.push(format!("{what}: indices {}", s["indices"]));
        }
    }
}

/// The operations every client performs successfully through esgate today. Not here: `q=` URI
/// search and `error_trace=true` (esgate refuses them by design, security.md I-3; `filter_path`
/// is taken since issue #8.8, see tests/it/node_client.rs and tests/it/response_shaping.rs),
/// `_resolve/index` (see `with_resolve_index`).
/// `scan` is the client's scroll helper (3 hits a page, then clear scroll), `pit` opens a point
/// in time, pages it with `search_after` and closes it.
const READ_OPS: &[&str] = &[
    "info",
    "count",
    "count_query",
    "search",
    "search_other_tenant",
    "msearch",
    "aggs",
    "search_params",
    "ping",
    "count_no_index",
    "search_no_index",
    "search_index_list",
    "search_lenient",
    "search_common_params",
    "opaque_id",
    "get_mapping",
    "cluster_health",
    "field_caps",
    "scan",
    "pit",
    "refused_get",
    "refused_write",
    "refused_delete",
    "refused_sql",
    "refused_auth",
];

/// `READ_OPS` plus `GET _resolve/index/logs-*`. Not for elasticsearch-py 9.5, which sends
/// `POST /_resolve/index/{name}` (Elasticsearch 9.2+): esgate refuses that method and noida
/// (ES 8.15) has no POST handler for it either.
fn with_resolve_index() -> Vec<&'static str> {
    [READ_OPS, &["resolve_index"]].concat()
}

/// Every assertion about one script run of `ops`; returns what was wrong (empty = pass).
fn judge(run: &ScriptRun, ops: &[&str]) -> Vec<String> {
    let mut failures = vec![];
    if !run.success {
        failures.push("the script reported an unexpected exception (exit status non-zero)".into());
    }
    for line in run.lines.iter().filter(|l| l.get("unexpected").is_some()) {
        failures.push(format!("unexpected outcome: {line}"));
    }
    if contains_leak_marker(run.stdout.as_bytes()) {
        failures.push("a leak marker appears in what the client received".into());
    }
    for op in ops {
        let line = run
            .lines
            .iter()
            .find(|l| l["op"] == *op && l.get("unexpected").is_none());
        match line {
            Some(l) => check_op(op, &without_raw(l), &mut failures),
            None => failures.push(format!("{op}: no result")),
        }
    }
    failures
}

/// What a user sees when esgate refuses: the status, the client's exception class, an
/// Elasticsearch `security_exception` (for 401/403) and a reason that says what was refused.
fn check_refusal(op: &str, l: &Value, status: u16, exception: &str, failures: &mut Vec<String>) {
    if l["status"] != json!(status) {
        failures.push(format!("{op}: status {} != {status}: {l}", l["status"]));
    }
    if status != 404 && l["error_type"] != json!("security_exception") {
        failures.push(format!("{op}: error type {}: {l}", l["error_type"]));
    }
    // Actionable: words saying what was refused, not an empty or one-word reason.
    let words = l["reason"]
        .as_str()
        .map_or(0, |r| r.split_whitespace().count());
    if words < 2 {
        failures.push(format!("{op}: no actionable reason: {l}"));
    }
    // The exception's own message (what a traceback shows) names the reason too.
    let names_reason = l["reason"]
        .as_str()
        .zip(l["message"].as_str())
        .is_some_and(|(reason, message)| message.contains(reason));
    if !names_reason {
        failures.push(format!("{op}: the exception message hides the reason: {l}"));
    }
    if l["exception"] != json!(exception) {
        failures.push(format!(
            "{op}: the client raised {} instead of {exception}",
            l["exception"]
        ));
    }
}

/// `v` without the scripts' `"raw"` response copies (kept in stdout for the leak check, too long
/// for a failure message).
fn without_raw(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "raw")
                .map(|(k, v)| (k.clone(), without_raw(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_raw).collect()),
        other => other.clone(),
    }
}

/// The assertions for one operation's printed line (see tests/clients/*.py).
fn check_op(op: &str, l: &Value, failures: &mut Vec<String>) {
    match op {
        "info" => {
            if !l["number"].is_string() {
                failures.push(format!("info: no version number: {l}"));
            }
        }
        "ping" => {
            if l["ping"] != json!(true) {
                failures.push(format!("ping: {l}"));
            }
        }
        "get_mapping" => {
            if l["indices"] != json!([fixture::INDEX_LOGS_A, fixture::INDEX_LOGS_B]) {
                failures.push(format!("get_mapping: indices {}", l["indices"]));
            }
        }
        "resolve_index" => {
            if l["indices"] != json!([fixture::INDEX_LOGS_A, fixture::INDEX_LOGS_B])
                || l["aliases"] != json!([])
                || l["data_streams"] != json!([])
            {
                failures.push(format!(
                    "resolve_index: expected logs-a and logs-b only (the alias {} reaches {}): {l}",
                    fixture::ALIAS_SECRET,
                    fixture::INDEX_SECRET
                ));
            }
        }
        "cluster_health" => {
            if !l["status"].is_string() {
                failures.push(format!("cluster_health: no status: {l}"));
            }
        }
        "count" | "count_query" | "count_no_index" | "opaque_id" => {
            if l["count"] != json!(fixture::TENANT_A_DOCS) {
                failures.push(format!(
                    "{op}: expected {}, got {l}",
                    fixture::TENANT_A_DOCS
                ));
            }
        }
        "search"
        | "search_no_index"
        | "search_index_list"
        | "search_lenient"
        | "search_q"
        | "search_common_params" => check_all_of_tenant_a(op, l, true, failures),
        "search_other_tenant" => {
            if l["total"] != json!(0) || l["ids"] != json!([]) {
                failures.push(format!("search_other_tenant: expected 0 hits, got {l}"));
            }
        }
        "msearch" => match l["items"].as_array() {
            Some(items) if items.len() == 2 => {
                for (i, item) in items.iter().enumerate() {
                    if item["status"] != json!(200) && !item["status"].is_null() {
                        failures.push(format!("msearch item {i}: status {}", item["status"]));
                    }
                    if !item["error"].is_null() {
                        failures.push(format!("msearch item {i}: error {}", item["error"]));
                    }
                    check_all_of_tenant_a(&format!("msearch item {i}"), item, i == 0, failures);
                }
            }
            _ => failures.push(format!("msearch: expected 2 items, got {l}")),
        },
        "field_caps" => {
            if l["indices"] != json!([fixture::INDEX_LOGS_A, fixture::INDEX_LOGS_B]) {
                failures.push(format!(
                    "field_caps: indices {} (only logs-a and logs-b are the token's)",
                    l["indices"]
                ));
            }
            for field in ["tenant", "user", "message", "n", "@timestamp"] {
                if !l["fields"]
                    .as_array()
                    .is_some_and(|f| f.contains(&json!(field)))
                {
                    failures.push(format!("field_caps: no {field} in {}", l["fields"]));
                }
            }
            if l["tenant_types"] != json!(["keyword"]) {
                failures.push(format!("field_caps: tenant types {}", l["tenant_types"]));
            }
        }
        "aggs" => {
            let a = tenant_a_docs();
            let sum: u64 = a.iter().filter_map(|d| d.source["n"].as_u64()).sum();
            if l["total"] != json!(fixture::TENANT_A_DOCS) || l["hit_count"] != json!(0) {
                failures.push(format!("aggs: expected 10 total and no hits, got {l}"));
            }
            if l["users"] != json!([["alice", fixture::TENANT_A_DOCS]]) {
                failures.push(format!(
                    "aggs: user buckets {} are not tenant a's",
                    l["users"]
                ));
            }
            if l["sum_n"].as_f64() != Some(sum as f64) {
                failures.push(format!("aggs: sum of n {} != tenant a's {sum}", l["sum_n"]));
            }
        }
        "search_params" => {
            let mut a = tenant_a_docs();
            a.sort_by_key(|d| d.source["n"].as_u64());
            let expected: Vec<Value> = a.iter().skip(2).take(3).map(|d| json!(d.id)).collect();
            if l["total"] != json!(fixture::TENANT_A_DOCS) || l["ids"] != Value::Array(expected) {
                failures.push(format!("search_params: from 2, size 3, by n: got {l}"));
            }
            if l["source_keys"] != json!(["n", "tenant"]) {
                failures.push(format!("search_params: _source_includes ignored: {l}"));
            }
        }
        "scan" => check_all_of_tenant_a(op, l, true, failures),
        "pit" => {
            check_all_of_tenant_a(op, l, true, failures);
            let mut a = tenant_a_docs();
            a.sort_by_key(|d| d.source["n"].as_u64());
            let by_n: Vec<Value> = a.iter().map(|d| json!(d.id)).collect();
            if l["ordered_ids"] != Value::Array(by_n) {
                failures.push(format!("pit: pages out of order or incomplete: {l}"));
            }
            // 10 documents, 3 a page: search_after really paged.
            if l["pages"] != json!(4) {
                failures.push(format!("pit: {} pages instead of 4: {l}", l["pages"]));
            }
            if l["closed"] != json!(true) {
                failures.push(format!("pit: not closed: {l}"));
            }
        }
        // SQL over an index outside the token's patterns: refused whether esgate knows SQL
        // (the index is not the token's: 403, or 404 like a search on it) or not (403).
        "refused_sql" if l["status"] == json!(404) => {
            check_refusal(op, l, 404, "NotFoundError", failures)
        }
        "refused_get" | "refused_write" | "refused_delete" | "refused_sql" => {
            check_refusal(op, l, 403, "AuthorizationException", failures)
        }
        "refused_auth" => check_refusal(op, l, 401, "AuthenticationException", failures),
        other => failures.push(format!("no assertions for operation {other:?}")),
    }
}

/// Runs `script` once per (auth, compress) case and fails with everything that went wrong.
async fn check_client(backend: &Backend, set: ClientSet, script: &'static str, ops: &[&str]) {
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, secret) = gw.token(token_a()).await;
    let mut report = vec![];
    for (auth, compress) in [
        (Auth::Basic, true),
        (Auth::ApiKey, true),
        (Auth::ApiKey, false),
    ] {
        let run = run_client(set, script, &gw, (&id, &secret), (auth, compress), ops, &[]).await;
        let client = run
            .lines
            .iter()
            .find(|l| l["op"] == "client")
            .map(|l| l["version"].to_string())
            .unwrap_or_else(|| "?".into());
        // What users see when refused, for whoever reads the test log (`--nocapture`).
        for l in run.lines.iter().filter(|l| l.get("exception").is_some()) {
            eprintln!("{set:?} {auth:?}: {}", without_raw(l));
        }
        let failures = judge(&run, ops);
        if !failures.is_empty() {
            report.push(format!(
                "== {set:?} {client} auth={auth:?} compress={compress}:\n  {}\n{run}",
                failures.join("\n  ")
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_py_8_reads_exactly_tenant_a_through_esgate() {
    let backend = fixture::seeded_noida();
    check_client(
        &backend,
        ClientSet::Es8,
        "es_client.py",
        &with_resolve_index(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_py_9_reads_exactly_tenant_a_through_esgate() {
    let backend = fixture::seeded_noida();
    check_client(&backend, ClientSet::Es9, "es_client.py", READ_OPS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_py_reads_exactly_tenant_a_through_esgate() {
    let backend = fixture::seeded_osmem();
    check_client(
        &backend,
        ClientSet::OpenSearch,
        "opensearch_client.py",
        READ_OPS,
    )
    .await;
}

/// A revoked token answers 401 (the client's AuthenticationException) and an expired one 403
/// saying it expired, through each client family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_reach_the_user_as_clear_errors() {
    let noida = fixture::seeded_noida();
    let osmem = fixture::seeded_osmem();
    let mut report = vec![];
    for (set, script, backend) in [
        (ClientSet::Es8, "es_client.py", &noida),
        (ClientSet::OpenSearch, "opensearch_client.py", &osmem),
    ] {
        let gw = Esgate::start(&[backend.url()], "").await;
        let (id, secret) = gw.token(token_a()).await;
        let (revoked_id, revoked_secret) = gw.token(token_a()).await;
        let (status, body) = gw
            .admin("DELETE", &format!("/tokens/{revoked_id}"), None)
            .await;
        assert_eq!(status, 204, "revoking failed: {body}");
        let mut expiring = token_a();
        expiring["expires_in"] = json!("1s");
        let (expired_id, expired_secret) = gw.token(expiring).await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let cases = [
            (
                "revoked",
                &revoked_id,
                &revoked_secret,
                401,
                "AuthenticationException",
                "",
            ),
            (
                "expired",
                &expired_id,
                &expired_secret,
                403,
                "AuthorizationException",
                "expired",
            ),
        ];
        for (what, refused_id, refused_secret, status, exception, keyword) in cases {
            let run = run_client(
                set,
                script,
                &gw,
                (&id, &secret),
                (Auth::ApiKey, true),
                &["refused_token"],
                &[
                    ("REFUSED_ID", refused_id),
                    ("REFUSED_SECRET", refused_secret),
                ],
            )
            .await;
            let mut failures = vec![];
            match run.lines.iter().find(|l| l["op"] == "refused_token") {
                Some(l) => {
                    eprintln!("{set:?} {what}: {l}");
                    check_refusal(what, l, status, exception, &mut failures);
                    if !l["reason"].as_str().is_some_and(|r| r.contains(keyword)) {
                        failures.push(format!("{what}: the reason does not say {keyword:?}: {l}"));
                    }
                }
                None => failures.push(format!("{what}: no result")),
            }
            if !run.success {
                failures.push(format!("{what}: the script failed"));
            }
            if !failures.is_empty() {
                report.push(format!(
                    "== {set:?} {what}:\n  {}\n{run}",
                    failures.join("\n  ")
                ));
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n\n"));
}

/// A refusal that leaves the request body unread tells an HTTP/1.1 client to close the
/// connection, so a pooling client (urllib3, elasticsearch-py with `http_compress=False`) never
/// reuses a connection the server is about to drop and sees the refusal instead of a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_with_an_unread_body_closes_the_connection() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = support::http::bearer(&secret);
    let refused = support::http::send(
        "PUT",
        &gw.url("/logs-b/_doc/new"),
        &[("authorization", auth.as_str())],
        r#"{"tenant":"a"}"#,
    )
    .await
    .expect("esgate answers");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.header("connection"), Some("close"));
    // Without a body the connection stays reusable.
    let refused = support::http::send(
        "DELETE",
        &gw.url("/logs-b/_doc/b1"),
        &[("authorization", auth.as_str())],
        "",
    )
    .await
    .expect("esgate answers");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.header("connection"), None);
}

const ALL_SETS: [ClientSet; 4] = [
    ClientSet::Es8,
    ClientSet::Es9,
    ClientSet::OpenSearch,
    ClientSet::Metrics,
];

#[test]
fn every_client_requirement_is_pinned_to_one_version_and_hash() {
    for set in ALL_SETS {
        let reqs: Vec<&str> = set
            .requirements()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        // A client with its dependencies; the metrics parser has none.
        let least = if set == ClientSet::Metrics { 1 } else { 3 };
        assert!(reqs.len() >= least, "{set:?}: {reqs:?}");
        for line in reqs {
            let mut parts = line.split_whitespace();
            let pin = parts.next().unwrap_or_default();
            let hashes: Vec<&str> = parts.collect();
            let version = pin.split_once("==").map(|(_, v)| v).unwrap_or_default();
            assert!(
                !version.is_empty()
                    && version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.'),
                "{set:?}: {line:?} is not pinned with =="
            );
            assert!(
                !hashes.is_empty()
                    && hashes
                        .iter()
                        .all(
                            |h| h
                                .strip_prefix("--hash=sha256:")
                                .is_some_and(|hex| hex.len() == 64
                                    && hex.chars().all(|c| c.is_ascii_hexdigit()))
                        ),
                "{set:?}: {line:?} has no sha256 hash"
            );
        }
    }
}

#[test]
fn the_shell_installer_and_the_harness_share_the_client_venvs() {
    for set in ALL_SETS {
        python::python(set);
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("install-test-clients.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("ESGATE_TEST_CACHE", support::backend::cache_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for set in ALL_SETS {
        let dir = support::backend::cache_dir().join(set.venv_name());
        assert!(
            stdout.contains(&format!("{} already in {}", set.name(), dir.display())),
            "the script did not reuse {}: {stdout}",
            dir.display()
        );
    }
}
