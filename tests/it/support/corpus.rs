//! The attack corpus (`tests/data/attacks.jsonl`) and how a case is judged. esgate runs in
//! front of a recording relay (`support::relay`) so that the judge sees what reached the backend:
//!
//! - `deny`: esgate's own refusal: a 4xx (HEAD included) and nothing but esgate's
//!   own lookups (`GET /`, `GET /_resolve/index/...`) reached the backend. A backend's 400/404
//!   after esgate forwarded the request is not a denial: it proves only that the backend did not
//!   understand what esgate let through (issue #15 item 10).
//! - `ok`: 200, the value at `count_path` equals `expect_count` and every `expect` entry (dot
//!   path -> JSON value, `null` for "absent") holds, no leak marker.
//! - `absent`: a document outside the token's filters answers exactly like a missing one: 404
//!   with nothing but `_index`, `_id` and `found`/`matched: false` (esgate's filtered lookup
//!   reaches the backend; that is the translation, not a pass-through).
//! - `no_leak` (only where the legitimate answer varies, e.g. by backend or an opaque id): a 2xx
//!   or esgate's own refusal (as for `deny`), no leak marker, no count above what tenant a may
//!   see.
//!
//! `verdict_on: {"osmem"|"noida": verdict}` judges the case by another verdict on that backend
//! (hist27: a histogram whose empty buckets esgate must bound on a backend that makes them
//! before it counts them is refused on osmem, answered on noida).
//!
//! Every verdict fails on a 5xx and on any forwarded request the backend answered with an error
//! (>= 400): the backend's refusal never counts as esgate's. The one exception is explicit:
//! `backend_refuses: ["osmem"|"noida"]` names test backends that cannot run what esgate
//! correctly forwards (a feature they lack); on those the judge checks what was forwarded
//! (every forwarded body carries the token's filter) and that the 4xx is passed on without a
//! leak marker, and fails once the backend stops refusing.
//!
//! Shared by the replays against each backend (`tests/it/enforcement.rs` on osmem,
//! `enforcement::attack_corpus_holds_on_the_elasticsearch_dialect_backend` on noida).

use std::io::Write;

use serde_json::{json, Value};

use super::esgate::Esgate;
use super::fixture::{contains_leak_marker, MAX_VISIBLE_COUNT};
use super::http::send;
use super::relay::{Passed, Relay};

pub const CORPUS: &str = include_str!("../../data/attacks.jsonl");

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

/// `{"error":{"type":..,"reason":..},"status":status}`: the shape of esgate's refusals.
fn is_error_body(body: &[u8], status: u16) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v["status"] == status && v["error"]["type"].is_string() && v["error"]["reason"].is_string()
    })
}

/// A case's body: none, the string as is, `{"$gzip": body}` compressed, or
/// `{"$padded": text, "n": n}`: `text` with `$PAD` replaced by `n` strings (`"pad-00000",...`),
/// a body of 4 KiB or more kept short in the corpus (session 20: such a body's long texts are
/// sent as spans of the client's).
fn body_bytes(id: &str, body: &Value) -> Result<Vec<u8>, String> {
    match body {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(s.clone().into_bytes()),
        Value::Object(o) if o.contains_key("$gzip") => {
            let text = body_bytes(id, &o["$gzip"])?;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&text).map_err(|e| e.to_string())?;
            enc.finish().map_err(|e| e.to_string())
        }
        Value::Object(o) if o.contains_key("$padded") => {
            let text = o["$padded"]
                .as_str()
                .ok_or(format!("{id}: $padded is not text"))?;
            let n = o["n"].as_u64().ok_or(format!("{id}: $padded without n"))?;
            let pad: Vec<String> = (0..n).map(|i| format!("\"pad-{i:05}\"")).collect();
            Ok(text.replace("$PAD", &pad.join(",")).into_bytes())
        }
        other => Err(format!("{id}: bad body {other}")),
    }
}

/// The token's filter as esgate writes it into every forwarded search body.
const TENANT_A_FILTER: &str = r#"{"term":{"tenant":{"value":"a"}}}"#;

/// Sends one case through esgate (whose backend is `relay` in front of the backend called
/// `backend`, "osmem" or "noida") with `auth` and judges the answer.
pub async fn judge(
    gw: &Esgate,
    relay: &Relay,
    backend: &str,
    auth: &str,
    case: &Value,
) -> Result<(), String> {
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
    relay.take();
    let r = send(method, &gw.url(path), &refs, body)
        .await
        .map_err(|e| format!("{id}: no answer: {e:?}"))?;
    let forwarded: Vec<Passed> = relay.take_forwarded();
    let shown = || {
        forwarded
            .iter()
            .map(|p| format!("{} {} -> {}", p.method, p.target, p.status))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let status = r.status.as_u16();
    if status >= 500 {
        return Err(format!("{id}: {status} {}", r.text()));
    }
    let backend_refused = forwarded.iter().any(|p| p.status >= 400);
    let expected_refusal = case["backend_refuses"]
        .as_array()
        .is_some_and(|names| names.iter().any(|n| n == backend));
    if expected_refusal {
        return judge_backend_refusal(id, &r.body, status, &forwarded, backend_refused, shown());
    }
    if backend_refused {
        return Err(format!(
            "{id}: the backend refused what esgate forwarded [{}]; client got {status} {}",
            shown(),
            r.text()
        ));
    }
    let own_refusal = (400..500).contains(&status) && forwarded.is_empty();
    // A verdict for one backend only (`verdict_on`), else the case's.
    let verdict = case["verdict_on"][backend]
        .as_str()
        .or_else(|| case["verdict"].as_str());
    match verdict {
        Some("deny") => {
            if !own_refusal {
                return Err(format!(
                    "{id}: expected esgate's own refusal, got {status} {} (forwarded: [{}])",
                    r.text(),
                    shown()
                ));
            }
            if !r.body.is_empty() && !is_error_body(&r.body, status) {
                return Err(format!(
                    "{id}: a refusal in Elasticsearch's error shape expected: {}",
                    r.text()
                ));
            }
            if contains_leak_marker(&r.body) {
                return Err(format!("{id}: leak marker in the refusal {}", r.text()));
            }
        }
        Some("no_leak") => {
            if !((200..300).contains(&status) || own_refusal) {
                return Err(format!(
                    "{id}: expected a 2xx or esgate's own refusal, got {status} {} \
                     (forwarded: [{}])",
                    r.text(),
                    shown()
                ));
            }
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
            let mut expected: Vec<(&str, &Value)> = vec![];
            if let Some(cp) = case["count_path"].as_str() {
                expected.push((cp, &case["expect_count"]));
            }
            if let Some(more) = case["expect"].as_object() {
                expected.extend(more.iter().map(|(k, v)| (k.as_str(), v)));
            }
            if expected.is_empty() {
                return Err(format!("{id}: an ok case needs count_path or expect"));
            }
            for (path, want) in expected {
                let got = at_path(&v, path).cloned().unwrap_or(Value::Null);
                if &got != want {
                    return Err(format!("{id}: {path} = {got}, expected {want}: {v}"));
                }
            }
            if contains_leak_marker(&r.body) {
                return Err(format!("{id}: leak marker in a legitimate answer"));
            }
        }
        Some("absent") => {
            // A document outside the token's filters: the same 404 a missing id gets, from the
            // filtered lookup esgate runs (nothing but `_index`, `_id` and `found`/`matched`).
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let shape_ok = v.as_object().is_some_and(|o| {
                o.keys()
                    .all(|k| matches!(k.as_str(), "_index" | "_id" | "found" | "matched"))
                    && (o.get("found") == Some(&Value::Bool(false))
                        || o.get("matched") == Some(&Value::Bool(false)))
            });
            if status != 404 || !shape_ok {
                return Err(format!(
                    "{id}: expected the 404 of a missing document, got {status} {}",
                    r.text()
                ));
            }
        }
        other => return Err(format!("{id}: unknown verdict {other:?}")),
    }
    Ok(())
}

/// A case the named backend cannot run (`backend_refuses`: a feature the test backend lacks,
/// such as retrievers on OpenSearch or a kNN search without a vector field): esgate forwarded
/// it, so what is proven is what esgate forwarded, not the backend's answer. Every forwarded
/// body carries the token's filter, the backend's 4xx is passed on (never a 5xx) without a leak
/// marker. If the backend stops refusing, the case must be judged by its verdict again.
fn judge_backend_refusal(
    id: &str,
    body: &[u8],
    status: u16,
    forwarded: &[Passed],
    backend_refused: bool,
    shown: String,
) -> Result<(), String> {
    if !backend_refused || !(400..500).contains(&status) {
        return Err(format!(
            "{id}: backend_refuses names this backend, but it answered {status} \
             (forwarded: [{shown}]); judge the case by its verdict"
        ));
    }
    for p in forwarded.iter().filter(|p| !p.body.is_empty()) {
        if !String::from_utf8_lossy(&p.body).contains(TENANT_A_FILTER) {
            return Err(format!(
                "{id}: forwarded without the token's filter: {} {} {}",
                p.method,
                p.target,
                String::from_utf8_lossy(&p.body)
            ));
        }
    }
    if contains_leak_marker(body) {
        return Err(format!("{id}: leak marker in the backend's refusal"));
    }
    Ok(())
}
