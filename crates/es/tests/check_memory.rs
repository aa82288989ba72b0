//! What checking a request body holds is claimed from its meter (session 11 review of
//! `esgate_es::memory`): for crafted bodies on every route that parses one (search on the
//! tree and serde paths, count, msearch on both paths, the query languages), the heap's peak
//! while `prepare` runs stays within what the meter was granted (plus a small constant). The
//! meter's claims were checked for the request tree alone (`tree_arena.rs`); what `prepare`
//! builds from a body beside the parse (line tables, items, rewritten bodies, serde_json maps)
//! was not.
//!
//! Its own test binary: it counts the heap through its global allocator. The tests take a lock
//! so that they never run at once.

use std::alloc::System;
use std::cell::Cell;
use std::sync::Arc;

use esgate_es::ids::continuation::{Binding, IdKey};
use esgate_es::memory::{Meter, Refused};
use esgate_es::{FilterSet, RequestHead, Scope};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live(region: &Region<'_, System>) -> usize {
    let c = region.change();
    // A reallocation's growth is counted in `bytes_allocated` (its shrinking in
    // `bytes_deallocated`).
    c.bytes_allocated.saturating_sub(c.bytes_deallocated)
}

static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scope() -> Scope {
    scope_of(&["a"])
}

/// The scope of a token filtered to `tenants`.
fn scope_of(tenants: &[&str]) -> Scope {
    Scope {
        filters: FilterSet::new(
            tenants
                .iter()
                .map(|t| ("tenant".to_string(), t.to_string())),
        )
        // Constant scores: the default of a token with filters (review 15), whose wraps add
        // a `constant_score` to each query.
        .with_constant_scores(true)
        .into(),
        indices: vec!["logs-*".to_string()].into(),
        ids: Binding {
            token_id: "tok_test".into(),
            key: Arc::new(IdKey::new([1; 32])),
        },
        guard: Default::default(),
    }
}

/// What `prepare` held (at each ask and at its end, the prepared request included) beyond what was live before it, what the meter was granted
/// at most, and its answer (accepted or the refusal's kind).
fn measure(
    scope: &Scope,
    method: &str,
    path: &str,
    query: Option<&str>,
    ct: &str,
    body: &[u8],
) -> (usize, usize, String) {
    let head = RequestHead {
        method,
        path,
        query,
        content_type: Some(ct),
        content_encoding: None,
    };
    let plan = esgate_es::plan(&head, scope).expect("a planned route");
    let granted = Cell::new(0);
    let region = Region::new(GLOBAL);
    // Sampled at every ask (the parse's growth) and at the end, with the prepared request.
    let peak = Cell::new(0);
    let grant = |total: usize| {
        peak.set(peak.get().max(live(&region)));
        granted.set(granted.get().max(total));
        Ok::<(), Refused>(())
    };
    let meter = Meter::new(&grant);
    let prepared = esgate_es::prepare_with_limit(plan, Some(body), &head, scope, 1 << 30, &meter);
    let peak = peak.get().max(live(&region));
    let answer = match &prepared {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{:?}: {}", e.kind, e.reason),
    };
    drop(prepared);
    (peak, granted.get(), answer)
}

/// Room for what is not proportional to the body (fixed tables, the first rooms of vectors).
const SLACK: usize = 256 * 1024;

fn check(name: &str, method: &str, path: &str, query: Option<&str>, ct: &str, body: &[u8]) {
    check_in(&scope(), name, method, path, query, ct, body);
}

fn check_in(
    scope: &Scope,
    name: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    ct: &str,
    body: &[u8],
) {
    let (peak, granted, answer) = measure(scope, method, path, query, ct, body);
    eprintln!(
        "{name}: body {} B, peak {peak} B ({:.1}x), granted {granted} B, {answer}",
        body.len(),
        peak as f64 / body.len() as f64
    );
    if peak > granted + SLACK {
        fail(format!(
            "{name}: {} body bytes held {peak} bytes at the peak, the meter granted {granted} ({answer})",
            body.len()
        ));
    }
}

static FAILED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records a case that held more than it claimed; `verdict` fails the test with all of them.
fn fail(message: String) {
    FAILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(message);
}

fn verdict() {
    let failed = std::mem::take(&mut *FAILED.lock().unwrap_or_else(|e| e.into_inner()));
    assert!(failed.is_empty(), "{failed:#?}");
}

fn ones(n: usize) -> String {
    vec!["1"; n].join(",")
}

#[test]
fn search_bodies_hold_what_they_claim() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let n = 400_000;
    let dense = format!(r#"{{"size":0,"query":{{"terms":{{"n":[{}]}}}}}}"#, ones(n));
    let json = "application/json";
    check(
        "search tree dense",
        "POST",
        "/logs-a/_search",
        None,
        json,
        dense.as_bytes(),
    );
    // `sort` as a parameter leaves the body to the serde path.
    check(
        "search serde dense",
        "POST",
        "/logs-a/_search",
        Some("sort=n"),
        json,
        dense.as_bytes(),
    );
    // Review 14: a highlight without its own query gets a copy of the client's query.
    let highlighted = format!(
        r#"{{"size":0,"highlight":{{"fields":{{"*":{{}}}}}},"query":{{"terms":{{"n":[{}]}}}}}}"#,
        ones(n)
    );
    for (name, query) in [
        ("search tree highlighted", None),
        ("search serde highlighted", Some("sort=n")),
    ] {
        check(
            name,
            "POST",
            "/logs-a/_search",
            query,
            json,
            highlighted.as_bytes(),
        );
    }
    let strings = format!(
        r#"{{"size":0,"query":{{"terms":{{"n":[{}]}}}}}}"#,
        vec![r#""a""#; n / 2].join(",")
    );
    check(
        "search serde short strings",
        "POST",
        "/logs-a/_search",
        Some("sort=n"),
        json,
        strings.as_bytes(),
    );
    let keys = (0..n / 4)
        .map(|i| format!(r#""{i}":0"#))
        .collect::<Vec<_>>()
        .join(",");
    let wide = format!(r#"{{"size":0,"query":{{"terms":{{"n":[{{{keys}}}]}}}}}}"#);
    check(
        "search serde wide object",
        "POST",
        "/logs-a/_search",
        Some("sort=n"),
        json,
        wide.as_bytes(),
    );
    check(
        "search tree wide object",
        "POST",
        "/logs-a/_search",
        None,
        json,
        wide.as_bytes(),
    );
    let nested = format!(
        r#"{{"size":0,"query":{{"terms":{{"n":[{}]}}}}}}"#,
        vec!["[[[]]]"; n / 4].join(",")
    );
    check(
        "search serde nested",
        "POST",
        "/logs-a/_search",
        Some("sort=n"),
        json,
        nested.as_bytes(),
    );
    check(
        "count tree dense",
        "POST",
        "/logs-a/_count",
        None,
        json,
        dense.as_bytes(),
    );
    // The query languages: a query's text lexed and parsed into tokens and trees.
    let list = ones(n);
    let sql = format!(r#"{{"query":"SELECT a FROM \"logs-a\" WHERE n IN ({list})"}}"#);
    check("sql in list", "POST", "/_sql", None, json, sql.as_bytes());
    let sql = format!(
        r#"{{"query":"SELECT {} FROM \"logs-a\""}}"#,
        vec!["a"; n / 4].join(",")
    );
    check("sql columns", "POST", "/_sql", None, json, sql.as_bytes());
    let esql = format!(r#"{{"query":"FROM logs-a | WHERE n IN ({list})"}}"#);
    check(
        "esql in list",
        "POST",
        "/_query",
        None,
        json,
        esql.as_bytes(),
    );
    let esql = format!(
        r#"{{"query":"FROM logs-a | KEEP {}"}}"#,
        vec!["a"; n / 4].join(",")
    );
    check("esql keep", "POST", "/_query", None, json, esql.as_bytes());
    let parens = format!(
        r#"{{"query":"FROM logs-a | WHERE {}n{}"}}"#,
        "(".repeat(n / 8),
        ")".repeat(n / 8)
    );
    check(
        "esql parens",
        "POST",
        "/_query",
        None,
        json,
        parens.as_bytes(),
    );
    let eql = format!(r#"{{"query":"any where n in ({list})"}}"#);
    check(
        "eql in list",
        "POST",
        "/logs-a/_eql/search",
        None,
        json,
        eql.as_bytes(),
    );
    verdict();
}

#[test]
fn msearch_bodies_hold_what_they_claim() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let nd = "application/x-ndjson";
    let tiny = "{}\n{}\n".repeat(100_000);
    check(
        "msearch tree tiny items",
        "POST",
        "/logs-a/_msearch",
        None,
        nd,
        tiny.as_bytes(),
    );
    // A header key the tree path leaves to serde.
    let serde = "{\"preference\":\"x\"}\n{}\n".repeat(50_000);
    check(
        "msearch serde tiny items",
        "POST",
        "/logs-a/_msearch",
        None,
        nd,
        serde.as_bytes(),
    );
    let dense = format!(
        "{{}}\n{{\"query\":{{\"terms\":{{\"n\":[{}]}}}}}}\n",
        ones(200_000)
    );
    check(
        "msearch tree one dense body",
        "POST",
        "/logs-a/_msearch",
        None,
        nd,
        dense.as_bytes(),
    );
    // A token of many tenants: each search's rewrite holds its clauses (serde builds them for
    // each search).
    let names: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
    let many = scope_of(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let tiny = "{}\n{}\n".repeat(5_000);
    check_in(
        &many,
        "msearch tree tiny items, many tenants",
        "POST",
        "/logs-a/_msearch",
        None,
        nd,
        tiny.as_bytes(),
    );
    let serde = "{\"preference\":\"x\"}\n{}\n".repeat(5_000);
    check_in(
        &many,
        "msearch serde tiny items, many tenants",
        "POST",
        "/logs-a/_msearch",
        None,
        nd,
        serde.as_bytes(),
    );
    verdict();
}

/// An msearch's NDJSON is written by `authorize`, each header naming the names its wildcard
/// narrowed to: a header of a few bytes becomes the whole list, per search.
#[test]
fn msearch_forwarded_bodies_hold_what_they_claim() {
    use esgate_es::indices::resolution::{NameKind, ResolvedName};
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let scope = scope();
    let body = "{\"index\":\"logs-*\"}\n{}\n".repeat(2_000);
    let head = RequestHead {
        method: "POST",
        path: "/_msearch",
        query: None,
        content_type: Some("application/x-ndjson"),
        content_encoding: None,
    };
    let names: Vec<ResolvedName> = (0..500)
        .map(|i| ResolvedName {
            name: format!("logs-2026.01.{i:04}"),
            kind: NameKind::Index,
            indices: vec![format!("logs-2026.01.{i:04}")],
        })
        .collect();
    let mut resolution = esgate_es::Resolution::default();
    resolution.names.insert("logs-*".to_string(), names.into());
    let granted = Cell::new(0);
    let grant = |total: usize| {
        granted.set(granted.get().max(total));
        Ok::<(), Refused>(())
    };
    let meter = Meter::new(&grant);
    let plan = esgate_es::plan(&head, &scope).expect("planned");
    let prepared =
        esgate_es::prepare_with_limit(plan, Some(body.as_bytes()), &head, &scope, 1 << 30, &meter)
            .expect("prepared");
    let region = Region::new(GLOBAL);
    // Claimed by a meter of its own, on top of what the prepared request holds.
    let claimed = Cell::new(0);
    let grant = |total: usize| {
        claimed.set(claimed.get().max(total));
        Ok::<(), Refused>(())
    };
    let meter = Meter::new(&grant);
    let permit =
        esgate_es::authorize_within(prepared, &resolution, &scope, &meter).expect("permitted");
    let held = live(&region);
    let forwarded = permit.body.as_ref().map_or(0, |b| b.bytes.len());
    eprintln!(
        "body {} B, forwarded {forwarded} B, authorize holds {held} B, prepare granted {}, authorize {}",
        body.len(),
        granted.get(),
        claimed.get()
    );
    let claimed = claimed.get();
    assert!(
        held <= claimed + SLACK,
        "authorize holds {held} B, claimed {claimed} B"
    );
}

/// Shapes the tree's and serde's claims were not tried on: deep nesting, many tiny objects,
/// one-letter keys and strings, long escaped strings, long numbers, whitespace.
fn odd_bodies() -> Vec<(&'static str, String)> {
    let n = 100_000;
    let deep = |k: usize| format!("{}{}", "[".repeat(k), "]".repeat(k));
    let keys = (0..n)
        .map(|i| format!("\"{}\":0", i))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        (
            "deep arrays",
            format!("[{}]", vec![deep(60); n / 100].join(",")),
        ),
        (
            "deep objects",
            format!(
                "[{}]",
                vec![format!("{}1{}", "{\"a\":".repeat(60), "}".repeat(60)); n / 200].join(",")
            ),
        ),
        ("tiny objects", format!("[{}]", vec!["{}"; n].join(","))),
        (
            "one-key objects",
            format!("[{}]", vec![r#"{"a":1}"#; n].join(",")),
        ),
        (
            "one-letter strings",
            format!("[{}]", vec![r#""a""#; n].join(",")),
        ),
        ("empty strings", format!("[{}]", vec![r#""""#; n].join(","))),
        ("wide object", format!("{{{keys}}}")),
        (
            "long escaped strings",
            format!(
                "[{}]",
                vec![format!("\"{}\"", "\\n".repeat(5_000)); 40].join(",")
            ),
        ),
        (
            "escaped keys",
            format!(
                "{{{}}}",
                (0..n / 10)
                    .map(|i| format!("\"\\u0041{i}\":0"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            "long numbers",
            format!("[{}]", vec!["1".repeat(300); 2_000].join(",")),
        ),
        ("whitespace", format!("[{}1]", " ".repeat(1 << 20))),
    ]
}

#[test]
fn the_tree_and_serde_claim_at_least_what_they_hold_for_odd_shapes() {
    use esgate_es::request::body::parse_strict_within;
    use esgate_es::request::tree::{self, Arena};
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let grant_all = |_: usize| Ok::<(), Refused>(());
    for (name, body) in odd_bodies() {
        let meter = Meter::new(&grant_all);
        let region = Region::new(GLOBAL);
        let (claimed, held) = {
            let arena = Arena::metered(body.len(), &meter).expect("granted");
            let node = tree::parse(body.as_bytes(), &arena);
            assert!(node.is_ok(), "{name}: {:?}", node.err());
            (meter.used(), live(&region))
        };
        eprintln!(
            "tree {name}: body {} B, holds {held}, claimed {claimed}",
            body.len()
        );
        if held > claimed + 4096 {
            fail(format!("tree {name}: holds {held}, claimed {claimed}"));
        }
        let meter = Meter::new(&grant_all);
        let region = Region::new(GLOBAL);
        let value = parse_strict_within(body.as_bytes(), &meter);
        assert!(value.is_ok(), "{name}: {:?}", value.err());
        let (claimed, held) = (meter.used(), live(&region));
        drop(value);
        eprintln!(
            "serde {name}: body {} B, holds {held}, claimed {claimed}",
            body.len()
        );
        if held > claimed + 4096 {
            fail(format!("serde {name}: holds {held}, claimed {claimed}"));
        }
    }
    verdict();
}

/// The token's clauses go into every place a query runs: a body of many such places (kNN
/// searches, sub-searches, retrievers) is rewritten with a copy of the clauses in each.
fn filter_places(scope: &Scope) {
    let json = "application/json";
    let knn = format!(
        r#"{{"knn":[{}]}}"#,
        vec![r#"{"field":"v","query_vector":[1],"k":1,"num_candidates":1}"#; 2_000].join(",")
    );
    check_in(
        scope,
        "knn list",
        "POST",
        "/logs-a/_search",
        None,
        json,
        knn.as_bytes(),
    );
    check_in(
        scope,
        "knn list serde",
        "POST",
        "/logs-a/_search",
        Some("sort=n"),
        json,
        knn.as_bytes(),
    );
    let subs = format!(
        r#"{{"sub_searches":[{}],"rank":{{"rrf":{{}}}}}}"#,
        vec![r#"{"query":{"match_all":{}}}"#; 2_000].join(",")
    );
    check_in(
        scope,
        "sub searches",
        "POST",
        "/logs-a/_search",
        None,
        json,
        subs.as_bytes(),
    );
    let rrf = format!(
        r#"{{"retriever":{{"rrf":{{"retrievers":[{}]}}}}}}"#,
        vec![r#"{"standard":{}}"#; 2_000].join(",")
    );
    check_in(
        scope,
        "retrievers",
        "POST",
        "/logs-a/_search",
        None,
        json,
        rrf.as_bytes(),
    );
    let nested_knn = format!(
        r#"{{"query":{{"bool":{{"should":[{}]}}}}}}"#,
        vec![r#"{"knn":{"field":"v","query_vector":[1],"k":1}}"#; 2_000].join(",")
    );
    check_in(
        scope,
        "knn queries",
        "POST",
        "/logs-a/_search",
        None,
        json,
        nested_knn.as_bytes(),
    );
}

#[test]
fn filter_places_hold_what_they_claim() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    filter_places(&scope());
    verdict();
}

/// With a token of many filter values (300 here, 2 KB of clauses), each place's copy of the
/// clauses (serde: built as values; tree: written out) was not claimed: 64 to 260 times the
/// body. Each body now claims a copy per object it holds (`routes::claim_clause_copies`).
#[test]
fn filter_places_of_a_large_filter_set_hold_what_they_claim() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let names: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
    filter_places(&scope_of(
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    verdict();
}

/// The other routes that read a query from the body: their dense bodies hold what they claim.
#[test]
fn other_query_routes_hold_what_they_claim() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let json = "application/json";
    let terms = format!(r#"{{"terms":{{"n":[{}]}}}}"#, ones(200_000));
    let query = format!(r#"{{"query":{terms}}}"#);
    let cases = [
        ("async search", "/logs-a/_async_search", query.clone()),
        ("validate query", "/logs-a/_validate/query", query.clone()),
        ("explain", "/logs-a/_explain/1", query.clone()),
        (
            "field caps",
            "/logs-a/_field_caps",
            format!(r#"{{"index_filter":{terms}}}"#),
        ),
        (
            "terms enum",
            "/logs-a/_terms_enum",
            format!(r#"{{"field":"user","index_filter":{terms}}}"#),
        ),
        (
            "knn search",
            "/logs-a/_knn_search",
            format!(
                r#"{{"knn":{{"field":"v","query_vector":[{}],"k":1,"num_candidates":1}}}}"#,
                ones(200_000)
            ),
        ),
    ];
    for (name, path, body) in cases {
        let query = (name == "field caps").then_some("fields=*");
        check(name, "POST", path, query, json, body.as_bytes());
    }
    verdict();
}
