//! The attack corpus (`tests/data/attacks.jsonl`) and how a case is judged, as security.md's
//! last section says: `deny` = 4xx (for HEAD: not 200); `no_leak` = not 5xx, no leak marker,
//! no count above what tenant a may see; `ok` = 200 and the value at `count_path` equals
//! `expect_count`. 5xx fails every case.
//!
//! Shared by the replays against each backend (`tests/enforcement.rs` on osmem,
//! `tests/review_noida_corpus.rs` on noida).

use std::io::Write;

use serde_json::{json, Value};

use super::esgate::Esgate;
use super::fixture::{contains_leak_marker, MAX_VISIBLE_COUNT};
use super::http::send;

pub const CORPUS: &str = include_str!("../data/attacks.jsonl");

/// The corpus's token: tenant `a` on `logs-*`.
pub fn token_a() -> Value {
    json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}], "indices": ["logs-*"]})
}

/// Every case of the corpus, in order.
pub fn cases() -> Vec<Value> {
    CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("corpus line is JSON"))
        .collect()
}

/// The value at a dot path; numeric components index arrays.
pub fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, part| match part.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(part),
        })
}

/// The largest count-like number anywhere in a response (security.md's list of keys).
pub fn max_count(v: &Value) -> u64 {
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

/// A case's body: none, the string as is, or `{"$gzip": text}` compressed.
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

/// Sends one case through esgate with `auth` and judges the answer.
pub async fn judge(gw: &Esgate, auth: &str, case: &Value) -> Result<(), String> {
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
                        "{id}: count {n} exceeds tenant a's {MAX_VISIBLE_COUNT}: {v}"
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
                    "{id}: {cp} = {got}, expected {}: {v}",
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
