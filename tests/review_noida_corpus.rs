//! Security review: the attack corpus (`tests/data/attacks.jsonl`) replayed against the second
//! backend, noida-db, which speaks the Elasticsearch 8 dialect (top-level kNN, `_pit`, Painless,
//! 404 from `_resolve/index` for missing names), so that a case proven harmless on osmem is not
//! an osmem artefact. Verdicts as in security.md's last section, judged like
//! `tests/enforcement.rs`.
//!
//! Invariant: the corpus file is shared with `enforcement.rs`; nothing here changes it.

mod support;

use std::io::Write;

use serde_json::{json, Value};

use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker, MAX_VISIBLE_COUNT};
use support::http::{bearer, send};

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

fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, part| match part.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(part),
        })
}

fn body_bytes(id: &str, body: &Value) -> Result<Vec<u8>, String> {
    match body {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(s.clone().into_bytes()),
        Value::Object(o) if o.contains_key("$gzip") => {
            let text = o["$gzip"]
                .as_str()
                .ok_or(format!("{id}: $gzip is not text"))?;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            enc.finish().map_err(|e| e.to_string())
        }
        other => Err(format!("{id}: bad body {other}")),
    }
}

async fn judge(gw: &Esgate, auth: &str, case: &Value) -> Result<(), String> {
    let id = case["id"].as_str().ok_or("case without id")?;
    let method = case["method"].as_str().ok_or(format!("{id}: no method"))?;
    let path = case["path"].as_str().ok_or(format!("{id}: no path"))?;
    let mut headers: Vec<(String, String)> = vec![("authorization".into(), auth.into())];
    if let Some(h) = case["headers"].as_object() {
        for (k, v) in h {
            headers.push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
        }
    }
    let body = body_bytes(id, &case["body"])?;
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = send(method, &gw.url(path), &refs, body)
        .await
        .map_err(|e| format!("{id}: no answer: {e:?}"))?;
    let status = r.status.as_u16();
    if status >= 500 {
        return Err(format!("{id}: {status} {}", r.text()));
    }
    match case["verdict"].as_str() {
        Some("deny") => {
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
        Some("no_leak") => {
            if contains_leak_marker(&r.body) {
                return Err(format!("{id}: leak marker in {}", r.text()));
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                let n = max_count(&v);
                if n > MAX_VISIBLE_COUNT {
                    return Err(format!(
                        "{id}: count {n} exceeds tenant a's {MAX_VISIBLE_COUNT}"
                    ));
                }
            }
        }
        Some("ok") => {
            if status != 200 {
                return Err(format!("{id}: expected 200, got {status} {}", r.text()));
            }
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{id}: {e}"))?;
            let cp = case["count_path"].as_str().unwrap_or_default();
            let got = at_path(&v, cp).cloned().unwrap_or(Value::Null);
            if got != case["expect_count"] {
                return Err(format!(
                    "{id}: {cp} = {got}, expected {}",
                    case["expect_count"]
                ));
            }
            if contains_leak_marker(&r.body) {
                return Err(format!("{id}: leak marker in a legitimate answer"));
            }
        }
        other => return Err(format!("{id}: unknown verdict {other:?}")),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_corpus_holds_on_the_elasticsearch_dialect_backend() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw
        .token(json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": ["logs-*"]}))
        .await;
    let auth = bearer(&secret);
    let corpus = include_str!("data/attacks.jsonl");
    let mut failures = vec![];
    let mut n = 0;
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("corpus line is JSON");
        n += 1;
        // OpenSearch's point-in-time route does not exist on an Elasticsearch-dialect backend;
        // noida answers it as a plain search, which esgate refuses to relay (502, checked
        // below) instead of handing out an unfiltered answer.
        if case["id"] == "REV-PATH-19" {
            let r = send(
                "POST",
                &gw.url("/logs-*/_search/point_in_time?keep_alive=1m"),
                &[("authorization", &auth)],
                Vec::new(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 502, "{}", r.text());
            assert!(!fixture::contains_leak_marker(&r.body));
            continue;
        }
        if let Err(e) = judge(&gw, &auth, &case).await {
            failures.push(e);
        }
    }
    assert!(n > 300, "the corpus is loaded ({n} cases)");
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed on noida:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
