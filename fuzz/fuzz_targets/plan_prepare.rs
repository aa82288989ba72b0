//! Fuzz target: drives `es::plan` + `es::prepare` + `es::authorize` on arbitrary input.
//!
//! Invariant checked: no input panics, and every permitted search, count or msearch body
//! carries exactly the token's filter clauses in the outer `bool.filter`.
//!
//! Input layout: byte 0 picks the method, byte 1 the content type, byte 2 the content
//! encoding; the rest is `path 0xFF query 0xFF body` (missing parts are empty).
#![no_main]

use esgate::es::{self, FilterSet, RequestHead, Resolution, Scope};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const METHODS: &[&str] = &["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH"];
const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/x-ndjson"),
    None,
    Some("application/vnd.elasticsearch+json; compatible-with=8"),
    Some("application/yaml"),
];
const ENCODINGS: &[Option<&str>] = &[None, Some("gzip"), Some("deflate"), Some("br")];

fn pick<T: Copy>(list: &[T], b: Option<&u8>) -> T {
    list[usize::from(b.copied().unwrap_or(0)) % list.len()]
}

/// The outer query wrapper and every top-level kNN element carry the token clauses, and at
/// least one of them exists.
fn filter_ok(body: &Value, clauses: &[Value]) -> bool {
    let query_ok = match body.get("query") {
        None => true,
        Some(q) => q
            .get("bool")
            .and_then(|b| b.get("filter"))
            .and_then(Value::as_array)
            .is_some_and(|f| f.as_slice() == clauses),
    };
    let knn: Vec<&Value> = match body.get("knn") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    let knn_ok = knn.iter().all(|k| {
        k.get("filter")
            .and_then(Value::as_array)
            .is_some_and(|f| f.len() >= clauses.len() && f[..clauses.len()] == *clauses)
    });
    query_ok && knn_ok && (body.get("query").is_some() || !knn.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let method = pick(METHODS, data.first());
    let content_type = pick(CONTENT_TYPES, data.get(1));
    let content_encoding = pick(ENCODINGS, data.get(2));
    let rest = data.get(3..).unwrap_or(&[]);
    let mut parts = rest.splitn(3, |b| *b == 0xFF);
    let path = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let body = parts.next();

    let scope = Scope {
        filters: FilterSet::new([
            ("tenant".to_string(), "a".to_string()),
            ("env".to_string(), "prod".to_string()),
            ("env".to_string(), "test".to_string()),
        ]).into(),
        indices: vec!["logs-*".to_string(), "metrics-a".to_string()].into(),
        ids: esgate::es::ids::continuation::Binding {
            token_id: "tok_fuzz".into(),
            key: std::sync::Arc::new(esgate::es::ids::continuation::IdKey::new([1; 32])),
        },
        guard: Default::default(),
    };
    let head = RequestHead {
        method,
        path: &path,
        query: if query.is_empty() { None } else { Some(&query) },
        content_type,
        content_encoding,
    };
    let Ok(plan) = es::plan(&head, &scope) else {
        return;
    };
    let Ok(prepared) = es::prepare(plan, body, &head, &scope) else {
        return;
    };
    let mut resolution = Resolution::default();
    for expr in prepared.to_resolve() {
        resolution.names.insert(
            expr.clone(),
            vec![es::indices::resolution::ResolvedName {
                name: "logs-a".to_string(),
                kind: es::indices::resolution::NameKind::Index,
                indices: vec!["logs-a".to_string()],
            }]
            .into(),
        );
    }
    let Ok(permit) = es::authorize(prepared, &resolution, &scope) else {
        return;
    };
    let clauses = scope.filters.clauses();
    match permit.action {
        "search" | "count" => {
            let forwarded = permit.body.expect("search and count always forward a body");
            // A large body's spans are of the client's body (session 20).
            let bytes = forwarded
                .joined(body.unwrap_or_default())
                .expect("its spans are of the client's body");
            let v: Value = serde_json::from_slice(&bytes).expect("forwarded body is JSON");
            assert!(filter_ok(&v, &clauses), "filter missing: {v}");
        }
        "msearch" => {
            let body = permit.body.expect("msearch always forwards a body");
            assert!(body.spans.is_empty(), "an msearch's NDJSON is written whole");
            let text = std::str::from_utf8(&body.bytes).expect("forwarded NDJSON is UTF-8");
            for (i, line) in text.lines().enumerate() {
                let v: Value = serde_json::from_str(line).expect("forwarded line is JSON");
                if i % 2 == 1 {
                    assert!(filter_ok(&v, &clauses), "filter missing: {v}");
                }
            }
        }
        _ => assert!(
            permit.body.is_none(),
            "unexpected body for {}",
            permit.action
        ),
    }
});
