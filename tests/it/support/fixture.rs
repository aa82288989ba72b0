//! The security fixture of security.md "How to judge a leak in tests": indices `logs-a`,
//! `logs-b` and `secret` with explicit mappings, 10 tenant-a and 10 tenant-b documents spread
//! over both `logs-*` indices, 5 `secret` documents (tenant `a`, marker `LEAKMARKERS`), known ids
//! `a1`, `b1`, `s1`, and the alias `logs-sa` -> `secret`. The constants below are the expected
//! numbers; tests compare against them, never against literals.
//!
//! Invariant: the data is generated from the tables in this file only, every write uses
//! `?refresh=true` (osmem shows writes before refresh, ES does not), and seeding works the same
//! on osmem and noida.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::backend::Backend;
use super::http;

/// Documents with `tenant: a` in `logs-*` (the `secret` docs are also tenant `a`: see below).
pub const TENANT_A_DOCS: u64 = 10;
/// Documents with `tenant: b` (all in `logs-*`).
pub const TENANT_B_DOCS: u64 = 10;
/// Documents in `secret`, all with `tenant: a`.
pub const SECRET_DOCS: u64 = 5;
/// Documents in `logs-a` (5 of each tenant) and in `logs-b` (5 of each tenant).
pub const LOGS_A_DOCS: u64 = 10;
pub const LOGS_B_DOCS: u64 = 10;
/// Tenant-a documents in `logs-a` (and also in `logs-b`).
pub const TENANT_A_PER_LOGS_INDEX: u64 = 5;
/// Every `tenant: a` document in the cluster, `secret` included.
pub const TENANT_A_DOCS_ALL_INDICES: u64 = TENANT_A_DOCS + SECRET_DOCS;

/// The largest count-like number a tenant-a token may ever see (security.md verdict `no_leak`).
pub const MAX_VISIBLE_COUNT: u64 = 10;

/// Marker carried by every tenant-b document (`message` and `user`).
pub const LEAKMARKER_B: &str = "LEAKMARKERB";
/// Marker carried by every `secret` document (`message` and `user`).
pub const LEAKMARKER_S: &str = "LEAKMARKERS";

pub const INDEX_LOGS_A: &str = "logs-a";
pub const INDEX_LOGS_B: &str = "logs-b";
pub const INDEX_SECRET: &str = "secret";
/// Alias `logs-sa` -> `secret`: matches `logs-*` but reaches the secret index (IDX-16).
pub const ALIAS_SECRET: &str = "logs-sa";
/// The concrete indices a tenant-a token on `logs-*` may search (the alias `logs-sa` points
/// at `secret` and is excluded): what a client's direct request to the backend names.
pub const DIRECT_INDEX: &str = "logs-a,logs-b";

/// Tenant a's filter applied by hand around `query` (none: `match_all`), in the form the
/// issue prescribes: the direct request a test compares esgate's answer with.
pub fn wrap_for_tenant_a(query: Option<&Value>) -> Value {
    let inner = query.cloned().unwrap_or_else(|| json!({"match_all": {}}));
    json!({"bool": {"filter": [{"term": {"tenant": {"value": "a"}}}], "must": [inner]}})
}

/// Removes what backend.md says not to compare, recursively.
pub fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in ["took", "_shards", "_score", "max_score", "_clusters"] {
                map.remove(key);
            }
            map.values_mut().for_each(strip_volatile);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

/// One fixture document.
#[derive(Debug, Clone)]
pub struct Doc {
    pub index: &'static str,
    pub id: String,
    pub source: Value,
}

/// Every fixture document: `a1..a10`, `b1..b10`, `s1..s5`. Odd-numbered tenant-a and
/// even-numbered tenant-b docs go to `logs-a`, the others to `logs-b`, so `a1` is in `logs-a`
/// and `b1` in `logs-b`, and each tenant is in both indices.
pub fn docs() -> Vec<Doc> {
    let mut out = Vec::new();
    for n in 1..=TENANT_A_DOCS {
        let index = if n % 2 == 1 {
            INDEX_LOGS_A
        } else {
            INDEX_LOGS_B
        };
        out.push(Doc {
            index,
            id: format!("a{n}"),
            source: json!({
                "tenant": "a",
                "user": "alice",
                "message": format!("hello from tenant a number {n}"),
                "@timestamp": timestamp(n),
                "n": n,
            }),
        });
    }
    for n in 1..=TENANT_B_DOCS {
        let index = if n % 2 == 1 {
            INDEX_LOGS_B
        } else {
            INDEX_LOGS_A
        };
        out.push(Doc {
            index,
            id: format!("b{n}"),
            source: json!({
                "tenant": "b",
                "user": format!("bob-{LEAKMARKER_B}"),
                "message": format!("hello {LEAKMARKER_B} from tenant b number {n}"),
                "@timestamp": timestamp(n),
                "n": n,
            }),
        });
    }
    for n in 1..=SECRET_DOCS {
        out.push(Doc {
            index: INDEX_SECRET,
            id: format!("s{n}"),
            source: json!({
                "tenant": "a",
                "user": format!("sam-{LEAKMARKER_S}"),
                "message": format!("secret {LEAKMARKER_S} number {n}"),
                "@timestamp": timestamp(n),
                "n": n,
            }),
        });
    }
    out
}

/// The explicit mapping shared by all three indices.
pub fn mappings() -> Value {
    json!({
        "properties": {
            "tenant": {"type": "keyword"},
            "user": {"type": "keyword"},
            "message": {"type": "text"},
            "@timestamp": {"type": "date"},
            "n": {"type": "integer"},
        }
    })
}

/// Creates the indices, the documents and the alias on the backend at `base_url`. Panics with
/// the backend's answer if any step fails.
pub async fn seed(base_url: &str) {
    for index in [INDEX_LOGS_A, INDEX_LOGS_B, INDEX_SECRET] {
        let body = json!({"settings": {"number_of_shards": 1}, "mappings": mappings()});
        expect_ok(
            "create index",
            http::send("PUT", &format!("{base_url}/{index}"), &[], body.to_string()).await,
        );
    }
    let mut bulk = String::new();
    for doc in docs() {
        bulk.push_str(&json!({"index": {"_index": doc.index, "_id": doc.id}}).to_string());
        bulk.push('\n');
        bulk.push_str(&doc.source.to_string());
        bulk.push('\n');
    }
    let reply = expect_ok(
        "bulk",
        http::send(
            "POST",
            &format!("{base_url}/_bulk?refresh=true"),
            &[("content-type", "application/x-ndjson")],
            bulk,
        )
        .await,
    );
    let v = reply.json();
    assert_eq!(v["errors"], json!(false), "bulk reported errors: {v}");
    let actions = json!({"actions": [{"add": {"index": INDEX_SECRET, "alias": ALIAS_SECRET}}]});
    expect_ok(
        "add alias",
        http::send(
            "POST",
            &format!("{base_url}/_aliases"),
            &[],
            actions.to_string(),
        )
        .await,
    );
    // Bulk's refresh covers the documents; refresh once more so the alias and every index are
    // searchable on backends that treat refresh per request.
    expect_ok(
        "refresh",
        http::send("POST", &format!("{base_url}/_refresh"), &[], "").await,
    );
}

/// `seed` from synchronous code.
pub fn seed_blocking(base_url: &str) {
    http::blocking(|| seed(base_url));
}

/// A fresh osmem clone of a process-wide osmem server that was seeded once with the fixture.
/// Each test can write to its clone without affecting other tests. The base server lives until
/// the test process exits (osmem watches its parent pid and stdin).
pub fn seeded_osmem() -> Backend {
    static BASE: OnceLock<Backend> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = Backend::osmem();
        seed_blocking(base.url());
        base
    })
    .clone_of()
}

/// A new noida server seeded with the fixture (noida has no clones, so one server per call).
pub fn seeded_noida() -> Backend {
    let backend = Backend::noida();
    seed_blocking(backend.url());
    backend
}

/// Whether `body` contains either leak marker, case-insensitively (term-level outputs are
/// lower-cased, e.g. `leakmarkerb`).
pub fn contains_leak_marker(body: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(body).to_lowercase();
    [LEAKMARKER_B, LEAKMARKER_S]
        .iter()
        .any(|m| lower.contains(&m.to_lowercase()))
}

fn timestamp(n: u64) -> String {
    format!("2024-01-{:02}T00:00:00Z", n)
}

fn expect_ok(step: &str, result: Result<http::Reply, http::SendError>) -> http::Reply {
    match result {
        Ok(reply) if reply.status.is_success() => reply,
        Ok(reply) => panic!(
            "fixture {step} failed with {}: {}",
            reply.status,
            reply.text()
        ),
        Err(e) => panic!("fixture {step} failed: {e}"),
    }
}

/// Names only tenant a's token may never see in an answer: the foreign index, the alias that
/// points at it, and the foreign documents' markers.
pub fn leaks(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    if contains_leak_marker(body) {
        return Some("a leak marker".into());
    }
    for name in [INDEX_SECRET, ALIAS_SECRET] {
        if text.contains(&format!("\"{name}\"")) || text.contains(&format!(" {name} ")) {
            return Some(format!("the index name {name}"));
        }
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
        // How many shards answered is not a count of documents.
        if let Some(m) = v.as_object_mut() {
            m.remove("_shards");
        }
        let n = super::corpus::max_count(&v);
        if n > 0 {
            return Some(format!("a count of {n} where nothing may be reached"));
        }
    }
    None
}

/// A legitimate request answered (200: a refusal is over-refusal, issue #15 item 10), with no
/// marker of `secret` or tenant b and nothing naming `secret`.
pub fn assert_no_foreign_data(path: &str, r: &http::Reply) {
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert!(
        !contains_leak_marker(&r.body),
        "{path}: leak marker in {}",
        r.text()
    );
    assert!(
        !r.text().contains(INDEX_SECRET),
        "{path}: the foreign index name appears in {}",
        r.text()
    );
}

/// A legitimate count answered with exactly what tenant a sees (`expected`): not a refusal
/// (over-refusal, issue #15 item 10), not more (a leak), not less (a wrong narrowing).
pub fn assert_tenant_a_count(path: &str, r: &http::Reply, expected: u64) {
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(
        r.json()["count"].as_u64(),
        Some(expected),
        "{path}: tenant a sees {expected} here: {}",
        r.text()
    );
}
