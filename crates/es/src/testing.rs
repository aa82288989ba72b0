//! Test fixtures shared by the unit tests of `es/`: the scope of tenant `a` on `logs-*`, a
//! JSON request head, the fixture cluster's resolution and parameter pairs.

use crate::ids::continuation::{Binding, IdKey};
use crate::indices::resolution::{NameKind, ResolvedName};
use crate::{FilterSet, RequestHead, Scope};
use serde_json::Value;

/// Tenant `a` (`tenant: a`) on `logs-*`, token `tok_test`, a fixed sealing key.
pub(crate) fn scope() -> Scope {
    Scope {
        filters: FilterSet::new([("tenant".to_string(), "a".to_string())]).into(),
        indices: vec!["logs-*".to_string()].into(),
        ids: Binding {
            token_id: "tok_test".into(),
            key: std::sync::Arc::new(IdKey::new([1; 32])),
        },
        guard: Default::default(),
    }
}

/// A request head with a JSON content type.
pub(crate) fn head<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> RequestHead<'a> {
    RequestHead {
        method,
        path,
        query,
        content_type: Some("application/json"),
        content_encoding: None,
    }
}

/// What the fixture cluster resolves `expr` to: `logs-a`, `logs-b` and the alias `logs-sa`
/// (pointing at the foreign `secret`) for any wildcard, the names listed otherwise.
pub(crate) fn cluster(expr: &str) -> Vec<ResolvedName> {
    let name = |n: &str, kind, idx: &[&str]| ResolvedName {
        name: n.into(),
        kind,
        indices: idx.iter().map(|s| s.to_string()).collect(),
    };
    let all = vec![
        name("logs-a", NameKind::Index, &["logs-a"]),
        name("logs-b", NameKind::Index, &["logs-b"]),
        name("logs-sa", NameKind::Alias, &["secret"]),
    ];
    if expr.contains('*') {
        all
    } else {
        all.into_iter()
            .filter(|n| expr.split(',').any(|e| e == n.name))
            .collect()
    }
}

/// Owned `(key, value)` pairs.
pub(crate) fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Every JSON text in `tests/data` (whole files, lines, string values that are JSON, and each
/// object value written back), sorted and without repeats: the corpus of the differential tests
/// (`request::tree`, `routes::search`).
pub(crate) fn corpus_texts() -> Vec<String> {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                out.push(s.clone());
                out.extend(s.lines().map(str::to_string));
            }
            Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            Value::Object(m) => {
                out.push(v.to_string());
                m.values().for_each(|i| strings(i, out));
            }
            _ => {}
        }
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");
    let mut out = Vec::new();
    for dir in ["", "/grafana", "/kibana"] {
        let Ok(entries) = std::fs::read_dir(format!("{root}{dir}")) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            out.extend(text.lines().map(str::to_string));
            for doc in std::iter::once(text.as_str()).chain(text.lines()) {
                if let Ok(v) = serde_json::from_str::<Value>(doc) {
                    strings(&v, &mut out);
                }
            }
            out.push(text);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A xorshift64 generator from `seed` (not zero): the tests' reproducible random inputs.
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
