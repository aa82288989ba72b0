//! Enforcement against a real backend seeded with the security fixture (two tenants with leak
//! markers, a foreign index `secret`, an alias `logs-sa` → `secret`).
//!
//! `attack_corpus_is_denied_or_leak_free` replays `tests/data/attacks.jsonl` with a token for
//! tenant `a` on `logs-*` and judges each case as security.md's last section says:
//! `deny` = 4xx; `no_leak` = not 5xx, no marker, no count above what tenant a may see;
//! `ok` = 200 and the value at `count_path` equals `expect_count`.

mod support;

use std::io::Write;

use bytes::Bytes;
use serde_json::{json, Value};

use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker, MAX_VISIBLE_COUNT};
use support::http::{bearer, send};

fn token_a() -> Value {
    json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": ["logs-*"]})
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, part| match part.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(part),
        })
}

/// The largest count-like number anywhere in a response (security.md's list of keys).
fn max_count(v: &Value) -> u64 {
    const KEYS: [&str; 9] = [
        "count",
        "doc_count",
        "bg_count",
        "value",
        "doc_freq",
        "ttf",
        "sum_doc_freq",
        "n",
        "N",
    ];
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let own = if KEYS.contains(&k.as_str()) {
                    v.as_f64().map(|f| f as u64).unwrap_or(0)
                } else {
                    0
                };
                let total = if k == "total" {
                    v.as_u64()
                        .or_else(|| v.get("value").and_then(Value::as_u64))
                        .unwrap_or(0)
                } else {
                    0
                };
                own.max(total).max(max_count(v))
            })
            .max()
            .unwrap_or(0),
        Value::Array(items) => items.iter().map(max_count).max().unwrap_or(0),
        _ => 0,
    }
}

async fn run_case(gw: &Esgate, auth: &str, case: &Value) -> Result<(), String> {
    let id = case["id"].as_str().unwrap();
    let method = case["method"].as_str().unwrap();
    let path = case["path"].as_str().unwrap();
    let mut headers: Vec<(String, String)> = vec![("authorization".into(), auth.into())];
    if let Some(h) = case["headers"].as_object() {
        headers.extend(
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
        );
    }
    let body: Vec<u8> = match &case["body"] {
        Value::Null => vec![],
        Value::String(s) => s.clone().into_bytes(),
        Value::Object(o) if o.contains_key("$gzip") => gzip(o["$gzip"].as_str().unwrap()),
        other => return Err(format!("{id}: bad body {other}")),
    };
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = send(method, &gw.url(path), &header_refs, body)
        .await
        .map_err(|e| format!("{id}: no answer: {e:?}"))?;
    let status = r.status.as_u16();
    if status >= 500 {
        return Err(format!("{id}: {status} {}", r.text()));
    }
    match case["verdict"].as_str().unwrap() {
        "deny" => {
            let denied = if method == "HEAD" {
                status != 200
            } else {
                (400..500).contains(&status)
            };
            if !denied {
                return Err(format!(
                    "{id}: expected a denial, got {status} {}",
                    r.text()
                ));
            }
        }
        "no_leak" => {
            if contains_leak_marker(&r.body) {
                return Err(format!("{id}: leak marker in {}", r.text()));
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                let n = max_count(&v);
                if n > MAX_VISIBLE_COUNT {
                    return Err(format!(
                        "{id}: count {n} exceeds tenant a's {MAX_VISIBLE_COUNT}: {v}"
                    ));
                }
            }
        }
        "ok" => {
            if status != 200 {
                return Err(format!("{id}: expected 200, got {status} {}", r.text()));
            }
            let v = r.json();
            let got = at_path(&v, case["count_path"].as_str().unwrap())
                .cloned()
                .unwrap_or(Value::Null);
            if got != case["expect_count"] {
                return Err(format!(
                    "{id}: {} = {got}, expected {}: {v}",
                    case["count_path"], case["expect_count"]
                ));
            }
            if contains_leak_marker(&r.body) {
                return Err(format!("{id}: leak marker in a legitimate answer"));
            }
        }
        other => return Err(format!("{id}: unknown verdict {other}")),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_corpus_is_denied_or_leak_free() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let corpus = include_str!("data/attacks.jsonl");
    let mut failures = vec![];
    let mut n = 0;
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("corpus line is JSON");
        n += 1;
        if let Err(e) = run_case(&gw, &auth, &case).await {
            failures.push(e);
        }
    }
    assert!(n > 100, "the corpus is loaded");
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn count(gw: &Esgate, secret: &str, path: &str) -> u64 {
    let r = send(
        "GET",
        &gw.url(path),
        &[("authorization", &bearer(secret))],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["count"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_any_of_per_field_and_all_of_across_fields() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, both) = gw
        .token(json!({"name": "ab", "indices": ["logs-*"], "filters": [
            {"field": "tenant", "value": "a"}, {"field": "tenant", "value": "b"}]}))
        .await;
    assert_eq!(
        count(&gw, &both, "/logs-*/_count").await,
        fixture::TENANT_A_DOCS + fixture::TENANT_B_DOCS
    );
    let (_, a_in_logs_a) = gw
        .token(
            json!({"name": "a-logs-a", "indices": ["logs-*"], "filters": [
            {"field": "tenant", "value": "a"}, {"field": "_index", "value": "logs-a"}]}),
        )
        .await;
    assert_eq!(
        count(&gw, &a_in_logs_a, "/logs-*/_count").await,
        fixture::TENANT_A_PER_LOGS_INDEX
    );
    let (_, none) = gw
        .token(json!({"name": "none", "indices": ["logs-*"], "filters": [
            {"field": "tenant", "value": "a"}, {"field": "tenant", "value": "zzz"}, {"field": "user", "value": "nobody"}]}))
        .await;
    assert_eq!(count(&gw, &none, "/logs-*/_count").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_filter_change_applies_to_the_next_request() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, f) = gw
        .admin(
            "POST",
            "/filters",
            Some(json!({"field": "tenant", "value": "a"})),
        )
        .await;
    let fid = f["id"].as_str().unwrap().to_owned();
    let (_, secret) = gw
        .token(json!({"name": "lib", "indices": ["logs-*"], "filters": [fid]}))
        .await;
    let search = |secret: String| {
        let url = gw.url("/logs-*/_search?size=50");
        async move {
            let r = send(
                "GET",
                &url,
                &[("authorization", &bearer(&secret))],
                Bytes::new(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 200);
            r
        }
    };
    let r = search(secret.clone()).await;
    assert!(!contains_leak_marker(&r.body));
    assert_eq!(r.json()["hits"]["total"]["value"], fixture::TENANT_A_DOCS);
    let (s, _) = gw
        .admin(
            "PATCH",
            &format!("/filters/{fid}"),
            Some(json!({"value": "b"})),
        )
        .await;
    assert_eq!(s, 200);
    let r = search(secret.clone()).await;
    assert_eq!(r.json()["hits"]["total"]["value"], fixture::TENANT_B_DOCS);
    assert!(
        r.text().contains("LEAKMARKERB"),
        "now the token sees tenant b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tokens_may_not_write_or_administer() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    for (m, p, b) in [
        ("PUT", "/logs-a/_doc/new?refresh=true", r#"{"tenant":"a"}"#),
        (
            "POST",
            "/logs-a/_bulk",
            "{\"index\":{}}\n{\"tenant\":\"a\"}\n",
        ),
        ("DELETE", "/logs-a/_doc/a1", ""),
        ("PUT", "/new-index", ""),
        (
            "POST",
            "/logs-a/_delete_by_query",
            r#"{"query":{"match_all":{}}}"#,
        ),
        ("PUT", "/_cluster/settings", r#"{"persistent":{}}"#),
    ] {
        let r = send(m, &gw.url(p), &[("authorization", &auth)], b.to_owned())
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "security_exception");
    }
    // Nothing changed on the backend.
    let r = send(
        "GET",
        &format!("{}/logs-a/_count", backend.url()),
        &[],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.json()["count"], fixture::LOGS_A_DOCS);
}
