//! The request tree's path against the serde path (issue 10, goal 6): for the bodies of
//! `tests/data`, hand-picked ones and generated mutations, under scopes with and without
//! filters and cost limits, `_search` must make the same decision either way: the same refusal
//! (status and message), or the same forwarded request and body (compared as parsed values:
//! the tree forwards numbers as the client wrote them).

use std::cell::Cell;

use serde_json::{json, Value};

use crate as es;
use crate::dsl::cost::CostGuard;
use crate::dsl::json::Obj;
use crate::request::tree::tests::SPANS_OFF;
use crate::request::tree::Node;
use crate::testing::{head, scope};
use crate::{FilterSet, Prepared, Rejection, Scope};

thread_local! {
    /// Set: `rewrite` skips the tree path (this thread only).
    pub(crate) static SERDE_ONLY: Cell<bool> = const { Cell::new(false) };
    /// How many searches the tree path forwarded on this thread.
    pub(crate) static TREE_TAKEN: Cell<usize> = const { Cell::new(0) };
    /// Set: the least source text forwarded as a span of the client's body (this thread
    /// only; `usize::MAX`: none, the body written whole as before session 20).
    pub(crate) static SPAN_MIN_SET: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The 200 KB body of the load benchmarks (`benches/load/bodies.py`): a `terms` list of
/// 14,000 values.
fn bench_200k() -> String {
    let values: Vec<String> = (0..14000).map(|i| format!("user-{i:06}")).collect();
    serde_json::to_string(&json!({"size": 10, "query": {"bool": {"filter": [
        {"terms": {"user.id": values}},
        {"range": {"@timestamp": {"gte": "now-1d"}}}]}}}))
    .unwrap()
}

/// The 2 KB Kibana Discover search of the load benchmarks (`benches/load/bodies.py`).
fn bench_2k() -> String {
    let mut kibana = json!({
      "track_total_hits": true, "size": 500,
      "sort": [{"@timestamp": {"order": "desc", "format": "strict_date_optional_time", "unmapped_type": "boolean"}}],
      "fields": [{"field": "*", "include_unmapped": "true"}, {"field": "@timestamp", "format": "strict_date_optional_time"}],
      "version": true, "script_fields": {}, "stored_fields": ["*"], "runtime_mappings": {},
      "_source": false,
      "query": {"bool": {"must": [], "filter": [
          {"bool": {"should": [{"match_phrase": {"service.name": "checkout"}}], "minimum_should_match": 1}},
          {"bool": {"should": [{"match": {"log.level": "error"}}, {"match": {"log.level": "warn"}}], "minimum_should_match": 1}},
          {"range": {"@timestamp": {"format": "strict_date_optional_time", "gte": "2026-11-01T00:00:00.000Z", "lte": "2026-11-02T00:00:00.000Z"}}}],
        "should": [], "must_not": [{"match_phrase": {"http.request.method": "OPTIONS"}}]}},
      "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30m", "time_zone": "UTC", "min_doc_count": 1}}},
      "highlight": {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"], "fields": {"*": {}}, "fragment_size": 2147483647u64},
    });
    while kibana.to_string().len() < 2000 {
        let should = kibana["query"]["bool"]["filter"][0]["bool"]["should"]
            .as_array_mut()
            .unwrap();
        let n = should.len();
        should.push(json!({"match_phrase": {"service.name": format!("service-{n}")}}));
    }
    kibana.to_string()
}

/// Session 20: a body forwarded with spans of the client's body joins to exactly the bytes
/// written whole (`SPAN_MIN_SET` at `usize::MAX`: the writer before session 20), whatever the
/// spans' least length, for every object of the corpus, the hand-picked bodies, the 200 KB
/// benchmark body and spaced, escaped and unicode ones, under the filtered scope and the
/// unfiltered one; the same requests otherwise. The 200 KB body is sent mostly as spans (its
/// `query`), a 2 KB one whole.
#[test]
fn spans_of_the_client_body_join_to_the_written_body() {
    let big = bench_200k();
    let mut bodies: Vec<String> = corpus();
    bodies.extend(picked().iter().map(|v| v.to_string()));
    bodies.push(big.clone());
    bodies.push(bench_2k());
    bodies.push(big.replace("user-000007", r"us\u00e9r-\\7\n"));
    bodies.push(big.replace("user-000007", "usér-😀"));
    bodies.push(big.replacen(":[", ": [", 1));
    bodies.push(format!(
        r#"{{"size":5,"highlight":{{"fields":{{"m":{{}}}}}},"query":{big}}}"#
    ));
    let scopes = scopes();
    let run = |scope: &Scope, body: &[u8], min: Option<usize>| {
        SPAN_MIN_SET.with(|s| s.set(min));
        let out = prepare(scope, None, body, false);
        SPAN_MIN_SET.with(|s| s.set(None));
        out.map(|mut p| {
            let spans = p.upstream.body.as_ref().map_or(0, |b| b.spans.len());
            let body = forwarded(&mut p, body);
            (body, format!("{p:?}"), spans)
        })
    };
    let mut spanned = 0;
    for scope in &scopes {
        for body in &bodies {
            let whole = run(scope, body.as_bytes(), Some(usize::MAX));
            if let Ok((_, _, spans)) = &whole {
                assert_eq!(*spans, 0);
            }
            for min in [Some(1), Some(64), None] {
                let with = run(scope, body.as_bytes(), min);
                match (&whole, &with) {
                    (Ok(w), Ok(s)) => {
                        assert_eq!(
                            String::from_utf8_lossy(w.0.as_deref().unwrap_or_default()),
                            String::from_utf8_lossy(s.0.as_deref().unwrap_or_default()),
                            "{min:?} {body:.200}"
                        );
                        assert_eq!(w.1, s.1, "{body:.200}");
                        spanned += usize::from(s.2 > 0);
                    }
                    (Err(w), Err(s)) => assert_eq!(w, s),
                    _ => panic!("{min:?} {body:.200}: {whole:?} / {with:?}"),
                }
            }
        }
    }
    assert!(spanned > 100, "{spanned}");
    // At the default least length: the 200 KB body's `query` is one span, nearly all of it;
    // a 2 KB body is one block.
    let p = prepare(&scope(), None, big.as_bytes(), false).expect("accepted");
    let b = p.upstream.body.expect("a body");
    assert_eq!(b.spans.len(), 1, "{:?}", b.spans);
    assert!(b.spans[0].len > big.len() - 100, "{:?}", b.spans);
    assert!(b.bytes.len() < 400, "{}", String::from_utf8_lossy(&b.bytes));
    let small = bench_2k();
    assert!((2000..2200).contains(&small.len()), "{}", small.len());
    let p = prepare(&scope(), None, small.as_bytes(), false).expect("accepted");
    assert!(p.upstream.body.expect("a body").spans.is_empty());
}

fn prepare(
    scope: &Scope,
    query: Option<&str>,
    body: &[u8],
    serde_only: bool,
) -> Result<Prepared, Rejection> {
    prepare_at("/logs-a/_search", scope, query, body, serde_only)
}

fn prepare_at(
    path: &str,
    scope: &Scope,
    query: Option<&str>,
    body: &[u8],
    serde_only: bool,
) -> Result<Prepared, Rejection> {
    SERDE_ONLY.with(|s| s.set(serde_only));
    let h = head("POST", path, query);
    let out = es::plan(&h, scope).and_then(|plan| es::prepare(plan, Some(body), &h, scope));
    SERDE_ONLY.with(|s| s.set(false));
    out
}

/// The forwarded body (its spans of `client`, the body prepared, joined in) as a value, and
/// the rest of the prepared request as text.
fn parts(mut p: Prepared, client: &[u8]) -> (Option<Value>, String) {
    let body = forwarded(&mut p, client)
        .map(|b| serde_json::from_slice::<Value>(&b).expect("a forwarded body is JSON"));
    (body, format!("{p:?}"))
}

/// The body `p` forwards when nothing is narrowed: an msearch's NDJSON is written by
/// `authorize` (`msearch::forward_narrowed`), every other body by `prepare`, its spans of
/// `client` (the body prepared) joined in.
pub(crate) fn forwarded(p: &mut Prepared, client: &[u8]) -> Option<Vec<u8>> {
    match &p.upstream.shape {
        crate::routes::Shape::Msearch(items, bodies) => Some(
            crate::routes::msearch::forward_narrowed(
                items,
                bodies,
                &[],
                &crate::memory::Meter::unlimited(),
            )
            .expect("an msearch's NDJSON is written")
            .bytes,
        ),
        _ => p.upstream.body.take().map(|b| {
            b.joined(client)
                .expect("its spans are of the client's body")
        }),
    }
}

/// The prepared request (forwarded bytes, msearch bodies kept for narrowing, and the rest as
/// text) with containers written from their source text and without it
/// (`request::tree`'s `SPANS_OFF`): byte for byte the same for a compact client body (issue
/// 10, goal 6: the backend sees what the writer writes, whichever way a container is
/// written); for a spaced one, the same but for the whitespace between tokens its copied
/// texts hold (session 29: the same bytes without it, and the same values), the rest of the
/// request the same.
fn spans_agree(run: impl Fn() -> Result<Prepared, Rejection>, client: &[u8]) {
    use crate::request::tree::tests::{is_compact, writes_as};
    let shown = &String::from_utf8_lossy(client);
    let bytes = |r: Result<Prepared, Rejection>| {
        r.map(|mut p| {
            let body = forwarded(&mut p, client);
            let kept = match &mut p.upstream.shape {
                crate::routes::Shape::Msearch(_, bodies) => Some(std::mem::take(bodies)),
                _ => None,
            };
            (body, kept, format!("{p:?}"))
        })
    };
    let with = bytes(run());
    SPANS_OFF.with(|s| s.set(true));
    let without = bytes(run());
    SPANS_OFF.with(|s| s.set(false));
    if is_compact(client) {
        return assert_eq!(with, without, "{shown}");
    }
    match (with, without) {
        (Ok((body, kept, rest)), Ok((body_off, kept_off, rest_off))) => {
            assert_eq!(rest, rest_off, "{shown}");
            assert_eq!(body.is_some(), body_off.is_some(), "{shown}");
            match (&body, &body_off, &kept) {
                // An msearch's NDJSON: line by line (each line is JSON, as many lines: no
                // copied text holds a newline).
                (Some(body), Some(off), Some(_)) => {
                    let (lines, lines_off): (Vec<_>, Vec<_>) = (
                        body.split(|b| *b == b'\n').collect(),
                        off.split(|b| *b == b'\n').collect(),
                    );
                    assert_eq!(lines.len(), lines_off.len(), "{shown}");
                    for (line, off) in lines.iter().zip(&lines_off) {
                        writes_as(line, off, shown);
                    }
                }
                (Some(body), Some(off), None) => writes_as(body, off, shown),
                _ => {}
            }
            let (kept, kept_off) = (kept.unwrap_or_default(), kept_off.unwrap_or_default());
            assert_eq!(kept.len(), kept_off.len(), "{shown}");
            for (k, off) in kept.iter().zip(&kept_off) {
                writes_as(k, off, shown);
            }
        }
        (with, without) => assert_eq!(with, without, "{shown}"),
    }
}

/// Both paths agree on `body`, and the tree path with and without containers' source text
/// (`spans_agree`); (the tree path forwarded it, the search was accepted).
fn agrees(path: &str, scope: &Scope, query: Option<&str>, body: &[u8]) -> (bool, bool) {
    spans_agree(|| prepare_at(path, scope, query, body, false), body);
    let before = TREE_TAKEN.with(Cell::get);
    let tree = prepare_at(path, scope, query, body, false);
    let taken = TREE_TAKEN.with(Cell::get) > before;
    let serde = prepare_at(path, scope, query, body, true);
    let shown = String::from_utf8_lossy(body);
    let accepted = serde.is_ok();
    match (tree, serde) {
        (Ok(t), Ok(s)) => assert_eq!(parts(t, body), parts(s, body), "{path} {query:?} {shown}"),
        (Err(t), Err(s)) => assert_eq!(t, s, "{path} {query:?} {shown}"),
        (t, s) => panic!(
            "paths disagree on {path} {query:?} {shown}: tree {:?}, serde {:?}",
            t.map(|p| parts(p, body)),
            s.map(|p| parts(p, body))
        ),
    }
    (taken, accepted)
}

/// Tenant `a` as in `testing::scope`, no filters, one with every cost limit, and tenant `a`
/// with constant scores (review 15: the default of a token with filters).
fn scopes() -> Vec<Scope> {
    let filtered = scope();
    let mut open = scope();
    open.filters = FilterSet::new([]).into();
    let mut limited = scope();
    limited.filters = FilterSet::new([
        ("tenant".to_string(), "a".to_string()),
        ("tenant".to_string(), "b".to_string()),
        ("team".to_string(), "x".to_string()),
    ])
    .into();
    limited.guard = CostGuard {
        max_size: Some(100),
        max_buckets: Some(1000),
        timeout_ms: Some(5000),
        ..Default::default()
    };
    let mut constant = scope();
    constant.filters = FilterSet::new([("tenant".to_string(), "a".to_string())])
        .with_constant_scores(true)
        .into();
    vec![filtered, open, limited, constant]
}

/// Every JSON object text of the shared corpus.
fn corpus() -> Vec<String> {
    let mut out = crate::testing::corpus_texts();
    out.retain(|t| t.trim_start().starts_with('{'));
    out
}

/// Hand-picked bodies: each top-level key, sorts, sizes, timeouts, kNN, slices, doc-id sorts.
fn picked() -> Vec<Value> {
    vec![
        json!({}),
        json!({"query": {"match_all": {}}}),
        json!({"size": 0, "aggs": {"a": {"terms": {"field": "f", "size": 5000}}}}),
        json!({"size": 0, "aggs": {"a": {"terms": {"field": "f"}}}, "aggregations": {}}),
        json!({"size": 1000, "from": 5}),
        json!({"size": 10.0}),
        json!({"size": -1}),
        json!({"size": 18446744073709551615u64}),
        json!({"size": 1e2}),
        json!({"timeout": "1m", "query": {"term": {"f": 1}}}),
        json!({"timeout": 5}),
        json!({"sort": {"@timestamp": "desc", "_doc": "asc"}}),
        json!({"sort": {"@timestamp": {"order": "desc", "unmapped_type": "boolean"}, "x": "asc"}}),
        json!({"sort": [{"_doc": "asc"}], "search_after": [1]}),
        json!({"sort": ["_shard_doc"]}),
        json!({"sort": ["a", "b"], "search_after": [1, "x"]}),
        json!({"slice": {"id": 0, "max": 2}}),
        json!({"slice": {"id": 0, "max": 2, "field": "n"}}),
        json!({"slice": {"id": 1, "max": 3, "field": "_doc_count"}}),
        json!({"slice": {"id": 1, "max": 3, "field": 5}}),
        json!({"knn": {"field": "v", "query_vector": [1, 2], "k": 5, "num_candidates": 10}}),
        json!({"query": {"knn": {"field": "v", "query_vector": [1, 2]}}}),
        json!({"post_filter": {"knn": {"field": "v", "query_vector": [1.5, 2e3]}}}),
        json!({"runtime_mappings": {}, "script_fields": {}, "size": 3}),
        json!({"runtime_mappings": {"x": {"type": "keyword"}}}),
        json!({"script_fields": {}, "query": {"match_all": {}}, "track_total_hits": true}),
        json!({"query": {"script": {"script": "1"}}}),
        json!({"pit": {"id": "x"}}),
        json!({"retriever": {"standard": {"query": {"match_all": {}}}}}),
        json!({"sub_searches": [{"query": {"match_all": {}}}]}),
        json!({"rank": {"rrf": {"rank_window_size": 500}}}),
        json!({"collapse": {"field": "f", "inner_hits": {"name": "n", "size": 500}}}),
        json!({"aggs": {"h": {"top_hits": {"size": 500}}}}),
        json!({"aggs": {"d": {"date_histogram": {"field": "t", "fixed_interval": "1ms", "extended_bounds": {"min": 0, "max": 100000000}}}}}),
        json!({"query": {"range": {"n": {"gte": 1.0000000000000002, "lt": 12345678901234567890u64}}}}),
        json!({"query": {"match": {"m": {"query": "x", "fuzziness": 0.0}}}}),
        json!({"query": {"term": {"_index": {"value": "x", "case_insensitive": true}}}}),
        json!({"highlight": {"fields": {"a": {}}}, "_source": ["a"], "fields": ["b"]}),
        json!({"stored_fields": ["_none_"], "docvalue_fields": [{"field": "t", "format": "x"}]}),
        json!({"query": "x"}),
        json!({"query": {"bool": {"filter": [{"knn": {"field": "v", "query_vector": [1]}}]}}}),
        json!({"query": {"match_all": {}}, "size": 1}),
        json!({"aggs": {"f": {"filter": {"knn": {"field": "v", "query_vector": [1]}}}}}),
        json!({"explain": false, "profile": true}),
    ]
}

/// Keys and values the mutations put anywhere in a body.
const KEYS: &[&str] = &[
    "query",
    "bool",
    "filter",
    "must",
    "term",
    "terms",
    "match_all",
    "knn",
    "field",
    "query_vector",
    "sort",
    "_doc",
    "size",
    "from",
    "timeout",
    "script",
    "_index",
    "aggs",
    "top_hits",
    "inner_hits",
    "k",
    "num_candidates",
    "slice",
    "retriever",
    "runtime_mappings",
    "track_total_hits",
    "order",
    "rank_window_size",
    "search_after",
    "fuzziness",
];

fn leaf(n: u64) -> Value {
    match n % 12 {
        0 => json!(null),
        1 => json!(true),
        2 => json!(7),
        3 => json!(-2),
        4 => json!(2.5),
        5 => json!(100000),
        6 => json!("x"),
        7 => json!("_doc"),
        8 => json!([]),
        9 => json!({}),
        10 => json!([1, "a"]),
        _ => json!({"match_all": {}}),
    }
}

/// One random edit somewhere in `v`: a value replaced, a key added or removed.
fn mutate(v: &mut Value, next: &mut impl FnMut() -> u64) {
    match v {
        Value::Object(m) if !m.is_empty() && !next().is_multiple_of(3) => {
            let i = (next() % m.len() as u64) as usize;
            let key = m.keys().nth(i).cloned().unwrap_or_default();
            match next() % 4 {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    if let Some(child) = m.get_mut(&key) {
                        *child = leaf(next());
                    }
                }
                _ => {
                    if let Some(child) = m.get_mut(&key) {
                        mutate(child, next);
                    }
                }
            }
        }
        Value::Object(m) => {
            let key = KEYS[(next() % KEYS.len() as u64) as usize];
            m.insert(key.to_string(), leaf(next()));
        }
        Value::Array(items) if !items.is_empty() && next().is_multiple_of(2) => {
            let i = (next() % items.len() as u64) as usize;
            mutate(&mut items[i], next);
        }
        other => *other = leaf(next()),
    }
}

#[test]
fn tree_matches_serde() {
    let scopes = scopes();
    let queries = [
        None,
        Some("timeout=2s&size=5"),
        Some("scroll=1m"),
        Some("q=x"),
    ];
    let mut bodies: Vec<Vec<u8>> = corpus().into_iter().map(String::into_bytes).collect();
    let corpus_len = bodies.len();
    assert!(corpus_len > 50, "tests/data read: {corpus_len}");
    bodies.extend(picked().iter().map(|v| v.to_string().into_bytes()));
    // Number spellings serde_json would rewrite, and bodies that are not objects.
    for raw in [
        r#"{"size": 1E1}"#,
        r#"{"size": 10, "from": -0}"#,
        r#"{"query": {"range": {"n": {"gte": 0.10000000000000000555}}}}"#,
        r#"{"query": {"term": {"s": "\u00e9\n\"q\""}}}"#,
        r#"[]"#,
        r#""x""#,
        r#"  "#,
        r#"{"a": 1,}"#,
        r#"{"query": {"bool": {"filter": [{"k\u006en": {"field": "v", "query_vector": [1]}}]}}}"#,
        r#"{"post_filter": {"\u006bnn": {"field": "v", "query_vector": [1]}}}"#,
        r#"{"size": 1, "size": 2}"#,
        r#"{"slice": {"id": 1, "max": 3, "field": "_d\u006fc_count"}}"#,
    ] {
        bodies.push(raw.as_bytes().to_vec());
    }
    let (mut taken, mut accepted) = (0, 0);
    for path in ["/logs-a/_search", "/logs-a/_count"] {
        for s in &scopes {
            for q in queries {
                for body in &bodies {
                    let (t, a) = agrees(path, s, q, body);
                    taken += usize::from(t);
                    accepted += usize::from(a);
                }
            }
        }
    }
    // The tree path is the common one (half the queries leave it to the serde path: scroll and
    // `q`), not a vacuous comparison.
    assert!(
        taken * 3 > accepted,
        "tree path taken {taken} times of {accepted} accepted"
    );

    // Generated mutations of every object body.
    let seeds: Vec<Value> = bodies
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .filter(Value::is_object)
        .collect();
    let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15u64);
    for round in 0..6_000 {
        let mut v = seeds[round % seeds.len()].clone();
        for _ in 0..1 + next() % 3 {
            mutate(&mut v, &mut next);
        }
        let s = &scopes[round % scopes.len()];
        let path = ["/logs-a/_search", "/logs-a/_count"][round % 2];
        agrees(path, s, queries[(round / 7) % 2], v.to_string().as_bytes());
    }
}

fn prepare_msearch(scope: &Scope, ndjson: &[u8], serde_only: bool) -> Result<Prepared, Rejection> {
    SERDE_ONLY.with(|s| s.set(serde_only));
    let h = head("POST", "/_msearch", None);
    let out = es::plan(&h, scope).and_then(|plan| es::prepare(plan, Some(ndjson), &h, scope));
    SERDE_ONLY.with(|s| s.set(false));
    out
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice::<Value>(l).expect("a forwarded line is JSON"))
        .collect()
}

/// The forwarded NDJSON and the bodies kept for narrowing as values, the rest as text.
fn msearch_parts(mut p: Prepared) -> (Option<Vec<Value>>, Vec<Value>, String) {
    // An msearch's bodies are written whole (no spans).
    let body = forwarded(&mut p, &[]).map(|b| lines(&b));
    let mut kept = Vec::new();
    if let crate::routes::Shape::Msearch(_, bodies) = &mut p.upstream.shape {
        kept = std::mem::take(bodies)
            .iter()
            .flat_map(|b| lines(b))
            .collect();
    }
    (body, kept, format!("{p:?}"))
}

/// Both paths agree on an msearch, and the tree path with and without containers' source
/// text; true when the tree path forwarded it.
fn msearch_agrees(scope: &Scope, ndjson: &[u8]) -> bool {
    spans_agree(|| prepare_msearch(scope, ndjson, false), ndjson);
    let before = TREE_TAKEN.with(Cell::get);
    let tree = prepare_msearch(scope, ndjson, false);
    let taken = TREE_TAKEN.with(Cell::get) > before;
    let serde = prepare_msearch(scope, ndjson, true);
    let shown = String::from_utf8_lossy(ndjson);
    match (tree, serde) {
        (Ok(t), Ok(s)) => assert_eq!(msearch_parts(t), msearch_parts(s), "{shown}"),
        (Err(t), Err(s)) => assert_eq!(t, s, "{shown}"),
        (t, s) => panic!(
            "paths disagree on {shown}: tree {:?}, serde {:?}",
            t.map(msearch_parts),
            s.map(msearch_parts)
        ),
    }
    taken
}

#[test]
fn msearch_tree_matches_serde() {
    let scopes = scopes();
    let headers = [
        "{}",
        r#"{"index":"logs-a"}"#,
        r#"{"index":["logs-a","logs-b"],"preference":"x","ignore_unavailable":true}"#,
        r#"{"index":"logs-*","search_type":"query_then_fetch"}"#,
        r#"{"index":"secret"}"#,
        r#"{"indices":"logs-a"}"#,
    ];
    let mut bodies: Vec<String> = corpus()
        .into_iter()
        .filter(|b| !b.contains('\n') && !b.contains('\r'))
        .collect();
    bodies.extend(picked().iter().map(Value::to_string));
    bodies.push(r#"{"size": 1E1, "timeout": "1s"}"#.to_string());
    bodies.push("[]".to_string());
    let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1du64);
    // Mostly bodies a search accepts, so that most msearches are accepted as a whole.
    let good: Vec<&String> = bodies
        .iter()
        .filter(|b| prepare(&scope(), None, b.as_bytes(), true).is_ok())
        .collect();
    assert!(good.len() > 50, "accepted bodies: {}", good.len());
    let mut taken = 0;
    for round in 0..3_000 {
        let mut ndjson = String::new();
        for _ in 0..1 + next() % 3 {
            let h = match next() % 10 {
                0 => headers[(next() % headers.len() as u64) as usize],
                _ => headers[(next() % 4) as usize],
            };
            let b = match next() % 10 {
                0 => &bodies[(next() % bodies.len() as u64) as usize],
                _ => good[(next() % good.len() as u64) as usize],
            };
            ndjson.push_str(h);
            ndjson.push('\n');
            ndjson.push_str(b);
            ndjson.push('\n');
        }
        if round % 50 == 0 {
            ndjson.pop();
        }
        taken += usize::from(msearch_agrees(
            &scopes[round % scopes.len()],
            ndjson.as_bytes(),
        ));
    }
    assert!(taken > 1_000, "tree path taken {taken} times");
}

/// The tree path reads msearch header lines without serde_json (`check_header_tree` and its
/// `scan_header`, issue 10): for header shapes at every edge (escaped and duplicate keys,
/// whitespace, unknown keys and values,
/// non-object and malformed lines, index forms, the same or another index on the next line)
/// and framing faults (empty lines, CRLF, no final newline, a lone header), alone and in pairs,
/// with and without a path index, both paths must make the same decision: the same refusal, or
/// byte for byte the same forwarded NDJSON and the same prepared request.
#[test]
fn header_shapes_match_serde() {
    let headers = [
        "{}",
        " { } ",
        r#"{"index":"logs-a"}"#,
        r#"{"index":"logs-b"}"#,
        r#"{"index":["logs-a","logs-b"]}"#,
        r#"{"index":"logs-a,logs-b"}"#,
        r#"{"index":""}"#,
        r#"{"index":[]}"#,
        r#"{"index":"_all"}"#,
        r#"{"index":"*"}"#,
        r#"{"index":"*,-logs-b"}"#,
        r#"{"index":"logs-a,-logs-b"}"#,
        r#"{"index":"logs-a,"}"#,
        r#"{"index":"logs-*:x"}"#,
        r#"{"index":"secret"}"#,
        r#"{"index":1}"#,
        r#"{"index":[1]}"#,
        r#"{"index":["logs-a",null]}"#,
        r#"{"index":{"a":1}}"#,
        r#"{"index":null}"#,
        r#"{"ind\u0065x":"logs-a"}"#,
        r#"{"\u0069ndex":"secret"}"#,
        r#"{"index":"logs-a","index":"logs-b"}"#,
        r#"{"index":"logs-a","ind\u0065x":"logs-b"}"#,
        r#"{"preference":"p","index":"logs-a","routing":"r","ignore_unavailable":true}"#,
        r#"{"preference":"p","routing":"r","index":"logs-a"}"#,
        r#"{"index":"logs-a","preference":"p","routing":"r"}"#,
        r#"{"routing":"r","index":"logs-a","expand_wildcards":"open","preference":"p"}"#,
        r#"{"preference":"a\"b\\c\u00e9\ud83d\ude00\u0000","index":"logs-a"}"#,
        r#"{"preference":"\ud800"}"#,
        r#"{"pr\u0065ference":"x"}"#,
        r#"{"search_type":"query_then_fetch","request_cache":true,"allow_partial_search_results":false,"ignore_unavailable":true,"allow_no_indices":false}"#,
        r#"{"search_type":"dfs_query_then_fetch"}"#,
        r#"{"expand_wildcards":"all"}"#,
        r#"{"expand_wildcards":"open"}"#,
        r#"{"preference":1}"#,
        r#"{"routing":null}"#,
        r#"{"ignore_unavailable":"true"}"#,
        r#"{"request_cache":1e400}"#,
        r#"{"indices":["logs-a"]}"#,
        r#"{"ignoreUnavailable":true}"#,
        r#"{"ccs_minimize_roundtrips":false}"#,
        r#"{"foo":1,"index":"logs-a"}"#,
        r#"{"index":"logs-a","foo":{"bar":[1,2]}}"#,
        r#"{"preference":[[[[[[[[[[]]]]]]]]]]}"#,
        "[]",
        "null",
        "1",
        r#""x""#,
        "{",
        "{} {}",
        r#"{"index":"logs-a"}x"#,
        "\u{feff}{}",
        r#"{"index":"logs-a",}"#,
        r#"{'index':'logs-a'}"#,
        // At the edges of `scan_header`'s compact shape (issue 10).
        r#"{"index": "logs-a"}"#,
        r#"{"index":"logs-a" }"#,
        r#"{"indices":"secret"}"#,
        r#"{"indices":"logs-a"}"#,
        r#"{"Index":"logs-a"}"#,
        r#"{"Index":"secret"}"#,
        r#"{"index ":"secret"}"#,
        r#"{"routing ":"r","index":"logs-a"}"#,
        "{\"routing\":\"a\tb\"}",
        "{\"preference\":\"\u{7f}é\u{1F600}\"}",
        r#"{"routing":"a","routing":"b"}"#,
        r#"{"ignore_unavailable":true,"ignore_unavailable":false}"#,
        r#"{"ignore_unavailable":false,"index":"logs-*"}"#,
        r#"{"ignore_unavailable":truex}"#,
        r#"{"ignore_unavailable":tru}"#,
        r#"{"ignore_unavailable":true,}"#,
        r#"{,}"#,
        r#"{"index""logs-a"}"#,
        r#"{"index":"logs-a"}}"#,
        r#"{"index":"logs-a",,"routing":"r"}"#,
        r#"{"index":"logs-a","index":["logs-b"]}"#,
        r#"{"index":["logs-a"],"index":"logs-b"}"#,
        r#"{"index":"logs-a","search_type":"query_then_fetch","expand_wildcards":"open","preference":"p","routing":"r","request_cache":true,"allow_partial_search_results":true,"ignore_unavailable":true,"allow_no_indices":true}"#,
        r#"{"index":"logs-a","search_type":"query_then_fetch","expand_wildcards":"open","preference":"p","routing":"r","request_cache":true,"allow_partial_search_results":true,"ignore_unavailable":true,"allow_no_indices":true,"foo":1}"#,
        r#"{"search_type":"query_then_fetch","expand_wildcards":"open","preference":"p","routing":"r","request_cache":true,"allow_partial_search_results":true,"ignore_unavailable":true,"allow_no_indices":true,"routing":"s","index":"logs-a"}"#,
    ];
    let body = r#"{"query":{"match_all":{}}}"#;
    let prepared = |path: &str, ndjson: &[u8], serde_only: bool| {
        SERDE_ONLY.with(|s| s.set(serde_only));
        let h = head("POST", path, None);
        let out =
            es::plan(&h, &scope()).and_then(|plan| es::prepare(plan, Some(ndjson), &h, &scope()));
        SERDE_ONLY.with(|s| s.set(false));
        out
    };
    let run = |path: &str, ndjson: &[u8], serde_only: bool| {
        prepared(path, ndjson, serde_only).map(|mut p| {
            let bytes = forwarded(&mut p, &[]);
            (bytes, format!("{p:?}"))
        })
    };
    let mut texts: Vec<String> = Vec::new();
    for a in headers {
        texts.push(format!("{a}\n{body}\n"));
        for b in headers {
            texts.push(format!("{a}\n{body}\n{b}\n{body}\n"));
        }
    }
    for framing in [
        format!("{}\n{body}", headers[2]),
        format!("{}\r\n{body}\r\n", headers[2]),
        format!("\n{}\n{body}\n", headers[2]),
        format!("{}\n\n{body}\n", headers[2]),
        format!("{}\n{body}\n{}\n", headers[2], headers[3]),
        format!("{}\n{body}\n \n{body}\n", headers[2]),
    ] {
        texts.push(framing);
    }
    let (mut accepted, mut taken) = (0, 0);
    for path in ["/_msearch", "/logs-b/_msearch"] {
        for text in &texts {
            spans_agree(|| prepared(path, text.as_bytes(), false), text.as_bytes());
            let before = TREE_TAKEN.with(Cell::get);
            let tree = run(path, text.as_bytes(), false);
            taken += usize::from(TREE_TAKEN.with(Cell::get) > before);
            let serde = run(path, text.as_bytes(), true);
            accepted += usize::from(serde.is_ok());
            assert_eq!(tree, serde, "{path} {text:?}");
        }
    }
    assert!(
        accepted > 500 && taken == accepted,
        "{accepted} accepted, {taken} on the tree"
    );
}

/// Shapes at the tree/serde boundary from the old-versus-new differential review of the tree
/// path (issue 10): escaped keys (also duplicates of plain ones, in objects past the scan's
/// key count where duplicates go through a hash set), number spellings serde_json refuses or
/// rewrites, escapes and surrogates in strings, nesting at the depth limit, a BOM and trailing
/// data. Both paths must decide each the same way, alone and as an msearch line.
#[test]
fn boundary_shapes_match_serde() {
    let mut bodies: Vec<String> = [
        r#"{"q\u0075ery": {"match_all": {}}}"#,
        r#"{"q\u0075ery": {"match_all": {}}, "query": {"term": {"x": 1}}}"#,
        r#"{"\u005fsource": false, "query": {"match_all": {}}}"#,
        r#"{"p\u0069t": {"id": "x"}}"#,
        r#"{"re\u0074riever": {"standard": {}}}"#,
        r#"{"k\u006en": {"field": "v", "query_vector": [1], "k": 1, "num_candidates": 1}}"#,
        r#"{"query": {"term": {"x": {"value": "a", "v\u0061lue": "b"}}}}"#,
        r#"{"si\u007ae": 5000, "query": {"match_all": {}}}"#,
        r#"{"query": {"range": {"n": {"gte": 1e400}}}}"#,
        r#"{"query": {"range": {"n": {"gte": 100000000000000000000}}}}"#,
        r#"{"query": {"range": {"n": {"gte": 18446744073709551616}}}}"#,
        r#"{"query": {"range": {"n": {"gte": 9007199254740993}}}}"#,
        r#"{"query": {"range": {"n": {"gte": -0, "lte": 1E+2}}}}"#,
        r#"{"query": {"range": {"n": {"gte": 01}}}}"#,
        r#"{"size": 1e2}"#,
        r#"{"size": 100.0}"#,
        r#"{"query": {"term": {"x": "\ud800"}}}"#,
        r#"{"query": {"term": {"x": "\udc00\ud800"}}}"#,
        r#"{"query": {"term": {"x": "\ud83d\ude00 \u0000 \u2028 \u000a {\"index\":\"secret\"}"}}}"#,
        r#"{"query": {"term": {"\u000a": "\r\n"}}}"#,
        "\u{feff}{\"query\": {\"match_all\": {}}}",
        r#"{"query": {"match_all": {}}} {}"#,
        " \r\n\t{\"query\": {\"match_all\": {}}}\n ",
        r#"{"sort": {"_\u0064oc": "asc", "a": "desc"}, "query": {"match_all": {}}}"#,
        r#"{"sort": {"a": "asc", "b": {"order": "desc"}}, "runtime_mappings": {}, "script_fields": {}}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for keys in [16, 17, 40] {
        for dup in [0, keys - 1] {
            let mut fields: Vec<String> = (0..keys).map(|i| format!("\"f{i}\": {{}}")).collect();
            let escaped: String = format!("f{dup}")
                .chars()
                .map(|c| format!("\\u{:04x}", u32::from(c)))
                .collect();
            fields.push(format!("\"{escaped}\": {{}}"));
            bodies.push(format!(
                r#"{{"query": {{"match_all": {{}}}}, "highlight": {{"fields": {{{}}}}}}}"#,
                fields.join(", ")
            ));
        }
    }
    for depth in 60..=66 {
        let (open, close) = ("[".repeat(depth), "]".repeat(depth));
        bodies.push(format!(
            r#"{{"query": {{"terms": {{"x": {open}1{close}}}}}}}"#
        ));
    }
    let scopes = scopes();
    for body in &bodies {
        for s in &scopes {
            for path in ["/logs-a/_search", "/logs-a/_count", "/logs-a/_async_search"] {
                agrees(path, s, None, body.as_bytes());
            }
            if !body.contains(['\n', '\r']) {
                msearch_agrees(s, format!("{{}}\n{body}\n").as_bytes());
            }
        }
    }
    // An escaped newline in a string stays escaped in the forwarded NDJSON: the line cannot
    // split into a second, unfiltered search.
    let line = r#"{"query": {"term": {"x": "a\nb\u000a{}\n{\"query\":{\"match_all\":{}}}"}}}"#;
    let ndjson = format!("{{}}\n{line}\n");
    assert!(
        msearch_agrees(&scope(), ndjson.as_bytes()),
        "tree path taken"
    );
    let p = prepare_msearch(&scope(), ndjson.as_bytes(), false).expect("accepted");
    let (forwarded, _, _) = msearch_parts(p);
    let forwarded = forwarded.expect("a body");
    assert_eq!(forwarded.len(), 2, "{forwarded:?}");
    assert_eq!(
        forwarded[1]["query"]["bool"]["filter"],
        json!([{"term": {"tenant": {"value": "a"}}}])
    );
}

/// Shapes from the old-versus-new differential review of issue 10's cheaper checks (review3:
/// the tree of b1f0ac7 against the one that skips number parses, builds containers on its
/// stacks and writes strings by words): whole searches, not only their trees, with numbers of
/// every length around the parse-free bound where the cost guard and the size, interval and
/// kNN checks read them; escapes at every offset around a word in the strings the checks
/// read (field names, values, query text); arrays around the length that leaves the parser's
/// stack where the checks walk them; plain duplicate keys around the scan's key count; `knn`
/// spelled with escapes where the kNN walk must still find it; msearch headers repeated and
/// then changed. Both paths must decide each the same way.
#[test]
fn review_shapes_match_serde() {
    let mut bodies: Vec<String> = Vec::new();
    let mut numbers: Vec<String> = vec![
        "0".into(),
        "-0".into(),
        "-0.0".into(),
        "1e2".into(),
        "1E+2".into(),
        "100.0".into(),
        "1e-400".into(),
        "99999999999999999999".into(),
        "18446744073709551616".into(),
        "-9223372036854775809".into(),
    ];
    for digits in [18, 19, 20, 21, 299, 300, 301, 308, 309, 310] {
        let int = format!("1{}", "0".repeat(digits - 1));
        let nines = "9".repeat(digits);
        numbers.extend([
            int.clone(),
            format!("-{int}"),
            format!("{nines}.5"),
            format!("-{nines}.000"),
            format!("0.{nines}"),
            format!("{int}e-1"),
        ]);
    }
    for n in &numbers {
        for template in [
            r#"{"size": N}"#,
            r#"{"from": N, "size": 1}"#,
            r#"{"track_total_hits": N}"#,
            r#"{"query": {"range": {"n": {"gte": N, "lt": N}}}}"#,
            r#"{"query": {"terms": {"n": [N, 1, N]}}}"#,
            r#"{"search_after": [N], "sort": ["n"]}"#,
            r#"{"aggs": {"a": {"terms": {"field": "f", "size": N}}}}"#,
            r#"{"aggs": {"h": {"histogram": {"field": "n", "interval": N}}}}"#,
            r#"{"knn": {"field": "v", "query_vector": [N, 1], "k": N, "num_candidates": N}}"#,
        ] {
            bodies.push(template.replace('N', n));
        }
    }
    let escapes = [
        "\\n",
        "\\\"",
        "\\\\",
        "\\/",
        "\\u0041",
        "\\u00e9",
        "\\ud83d\\ude00",
    ];
    for len in [0, 7, 8, 9, 15, 16, 17] {
        let plain: String = (0..len).map(|i| char::from(b'a' + i as u8)).collect();
        for at in 0..=len {
            for e in escapes {
                let s = format!("{}{e}{}", &plain[..at], &plain[at..]);
                bodies.push(format!(r#"{{"query": {{"term": {{"{s}": "{s}"}}}}}}"#));
                bodies.push(format!(
                    r#"{{"query": {{"query_string": {{"query": "{s}:x AND te{s}*"}}}}}}"#
                ));
                bodies.push(format!(r#"{{"_source": ["{s}"], "sort": ["{s}"]}}"#));
            }
        }
    }
    for n in [63, 64, 65, 66, 1000] {
        let list = |item: &dyn Fn(usize) -> String| (0..n).map(item).collect::<Vec<_>>().join(", ");
        let values = list(&|i| format!("\"v{i}\""));
        let numbers = list(&|i| i.to_string());
        let filters = list(&|i| format!(r#"{{"term": {{"f{}": "x"}}}}"#, i % 7));
        let nested = list(&|i| format!("[{i}, [{i}]]"));
        bodies.extend([
            format!(r#"{{"query": {{"terms": {{"f": [{values}]}}}}}}"#),
            format!(r#"{{"query": {{"terms": {{"f": [{numbers}]}}}}}}"#),
            format!(r#"{{"query": {{"bool": {{"filter": [{filters}]}}}}}}"#),
            format!(r#"{{"query": {{"bool": {{"should": [{filters}, {{"term": {{"_index": "x"}}}}]}}}}}}"#),
            format!(r#"{{"_source": [{values}], "docvalue_fields": [{values}]}}"#),
            format!(r#"{{"search_after": [{numbers}], "sort": ["n"]}}"#),
            format!(r#"{{"query": {{"terms": {{"f": [{nested}]}}}}}}"#),
            format!(r#"{{"knn": {{"field": "v", "query_vector": [{numbers}], "k": 1, "num_candidates": 2}}}}"#),
        ]);
    }
    let keys = [
        "size",
        "from",
        "query",
        "timeout",
        "track_total_hits",
        "_source",
        "sort",
        "fields",
        "version",
        "explain",
        "stored_fields",
        "docvalue_fields",
        "highlight",
        "post_filter",
        "min_score",
        "seq_no_primary_term",
        "terminate_after",
        "stats",
    ];
    let value = |k: &str| match k {
        "size" | "from" => "1",
        "query" | "post_filter" => r#"{"match_all": {}}"#,
        "timeout" => r#""1s""#,
        "_source" | "sort" | "fields" | "stored_fields" | "docvalue_fields" | "stats" => "[]",
        "highlight" => r#"{"fields": {}}"#,
        "min_score" | "terminate_after" => "1",
        _ => "true",
    };
    for count in [15, 16, 17, 18] {
        for dup in [0, count - 2, count - 1] {
            let mut entries: Vec<String> = keys[..count]
                .iter()
                .map(|k| format!("\"{k}\": {}", value(k)))
                .collect();
            entries.push(format!("\"{}\": {}", keys[dup], value(keys[dup])));
            bodies.push(format!("{{{}}}", entries.join(", ")));
        }
    }
    let knn = r#"{"field": "v", "query_vector": [1, 2], "k": 1, "num_candidates": 2, "filter": {"term": {"tenant": "b"}}}"#;
    for spelled in [
        "k\\u006en",
        "\\u006bnn",
        "kn\\u006e",
        "\\u006B\\u006E\\u006E",
        "KNN",
    ] {
        for place in [
            r#"{"K": V}"#,
            r#"{"query": {"K": V}}"#,
            r#"{"query": {"bool": {"filter": [{"match_all": {}}, {"K": V}]}}}"#,
            r#"{"query": {"function_score": {"query": {"K": V}}}}"#,
            r#"{"query": {"nested": {"path": "p", "query": {"K": V}}}}"#,
            r#"{"query": {"match": {"f": "k€nn"}}, "K": V}"#,
            r#"{"aggs": {"K": {"filter": {"K": V}}}}"#,
        ] {
            bodies.push(place.replace('K', spelled).replace('V', knn));
        }
    }
    let scopes = scopes();
    for body in &bodies {
        for s in &scopes {
            agrees("/logs-a/_search", s, None, body.as_bytes());
        }
        msearch_agrees(&scopes[2], format!("{{}}\n{body}\n").as_bytes());
    }
    // Repeated headers (the previous line's index expression reused) and then another one,
    // also one the token may not read, or the same text after a key that refuses the line.
    let body = r#"{"query":{"match_all":{}}}"#;
    let headers = [
        r#"{"index":"logs-a"}"#,
        r#"{"index":["logs-a"]}"#,
        r#"{"ind\u0065x":"logs-a"}"#,
        r#"{"index":"logs-a","preference":"p"}"#,
        r#"{"index":"secret"}"#,
        r#"{"index":"logs-a","expand_wildcards":"all"}"#,
        r#"{"index":"logs-a","index":"logs-a"}"#,
        r#"{"index":"logs-*"}"#,
        "{}",
    ];
    for a in headers {
        for b in headers {
            let text = format!("{a}\n{body}\n{a}\n{body}\n{a}\n{body}\n{b}\n{body}\n{a}\n{body}\n");
            for s in &scopes {
                msearch_agrees(s, text.as_bytes());
            }
        }
    }
}

/// Dashboard-shaped compact bodies (Kibana's Discover search, Grafana's msearch refresh, a
/// pasted `terms` list, a count) and the edits the tree path makes to them (the token's filter
/// wrapped around the query, empty `runtime_mappings` dropped, a sort object turned into a
/// list, the cost guard's timeout replaced or added): the forwarded bytes are the same with
/// containers copied from their source text and without (issue 10, goal 6), the tree path
/// takes them, and their unchanged subtrees reach the backend as the client wrote them.
#[test]
fn dashboard_bodies_forward_the_same_bytes_with_source_text() {
    let aggs = r#"{"2":{"date_histogram":{"field":"@timestamp","fixed_interval":"30s","min_doc_count":0,"extended_bounds":{"min":1700000000000,"max":1700003600000},"format":"epoch_millis"},"aggs":{"3":{"terms":{"field":"host.name","size":10,"order":{"_count":"desc"}}}}}}"#;
    let query = r#"{"bool":{"filter":[{"range":{"@timestamp":{"gte":1700000000000,"lte":1700003600000,"format":"epoch_millis"}}},{"query_string":{"query":"service:s1 AND level:error","analyze_wildcard":true}}]}}"#;
    let highlight = r#"{"pre_tags":["@kibana-highlighted-field@"],"post_tags":["@/kibana-highlighted-field@"],"fields":{"*":{}},"fragment_size":2147483647}"#;
    let highlight_query = format!(r#","highlight_query":{query}}}"#);
    let terms: Vec<String> = (0..2000).map(|i| format!("\"user-{i:06}\"")).collect();
    let terms = format!(r#"{{"terms":{{"user.id":[{}]}}}}"#, terms.join(","));
    let bodies: Vec<(String, Vec<&str>)> = vec![
        (
            format!(r#"{{"size":0,"query":{query},"aggs":{aggs}}}"#),
            vec![query, aggs],
        ),
        (
            format!(
                r#"{{"track_total_hits":true,"size":500,"sort":[{{"@timestamp":{{"order":"desc","unmapped_type":"boolean"}}}}],"fields":[{{"field":"*","include_unmapped":"true"}}],"version":true,"script_fields":{{}},"stored_fields":["*"],"runtime_mappings":{{}},"_source":false,"query":{query},"highlight":{highlight},"aggs":{aggs}}}"#
            ),
            // The highlight is opened to add its `highlight_query` (the client's query, review
            // 14): its entries keep their text, the query is written a second time.
            vec![
                query,
                aggs,
                &highlight[..highlight.len() - 1],
                &highlight_query,
            ],
        ),
        (
            format!(r#"{{"size":10,"query":{{"bool":{{"filter":[{terms}]}}}}}}"#),
            vec![&terms],
        ),
        (
            format!(
                r#"{{"sort":{{"a":"asc","b":{{"order":"desc"}}}},"query":{query},"aggs":{aggs}}}"#
            ),
            vec![query, aggs, r#"{"order":"desc"}"#],
        ),
        (
            format!(r#"{{"timeout":"1s","size":10,"query":{query}}}"#),
            vec![query],
        ),
        (format!(r#"{{"aggs":{aggs}}}"#), vec![aggs]),
        ("{}".to_string(), vec![]),
    ];
    // One stray byte or escape at a container's edge is the only difference from the
    // writer's form: the container and every one around it are written item by item.
    let mut bodies = bodies;
    for stray in [
        r#"{"size":0,"aggs":{ "a":{"terms":{"field":"f"}}}}"#,
        r#"{"size":0,"aggs":{"a":{"terms":{"field":"f"} }}}"#,
        "{\"size\":0,\"aggs\":{\"a\":{\"terms\":{\"field\":\"f\"}}\n}}",
        r#"{"size":0,"aggs":{"a":{"terms":{"field":"\u0066"}}}}"#,
        r#"{"size":0,"aggs":{"\u0061":{"terms":{"field":"f"}}}}"#,
        r#"{"size":0,"aggs":{"a":{"terms":{"field":"f\/"}}}}"#,
        r#"{"size":0,"query":{"terms":{"f":[ "x","y"]}}}"#,
        r#"{"size":0,"query":{"terms":{"f":["x","y" ]}}}"#,
        r#"{"size":0,"query":{"terms":{"f":["x","y\""]}}}"#,
    ] {
        bodies.push((stray.to_string(), vec![]));
    }
    let scopes = scopes();
    let mut taken = 0;
    for (body, kept) in &bodies {
        for s in &scopes {
            for path in ["/logs-a/_search", "/logs-a/_async_search"] {
                let (t, accepted) = agrees(path, s, None, body.as_bytes());
                // The limited scope refuses the larger aggregations (its bucket limit).
                assert_eq!(t, accepted, "{path} {body}");
                if !accepted {
                    continue;
                }
                taken += 1;
                // What a backend that counts its empty histogram buckets is sent: on one that
                // makes them first, a date histogram's object gains its hard bounds
                // (`dsl::fill`), so its text is not the client's.
                let mut s = s.clone();
                s.guard.empty_buckets = crate::request::dialect::EmptyBuckets::Counted;
                let s = &s;
                let p = prepare_at(path, s, None, body.as_bytes(), false).expect("accepted");
                let sent = p.upstream.body.expect("a body").joined(body.as_bytes());
                let sent = String::from_utf8(sent.expect("spans of the body")).unwrap();
                for k in kept {
                    assert!(sent.contains(k), "{k} in {sent}");
                }
            }
            let ndjson: String = (0..20)
                .map(|i| {
                    format!(
                        "{{\"index\":\"logs-*\",\"ignore_unavailable\":true}}\n{}\n",
                        body.replace("s1", &format!("s{i}"))
                    )
                })
                .collect();
            // A raw newline would split the line (the stray-newline body stays a search).
            let accepted = !body.contains('\n') && prepare(s, None, body.as_bytes(), true).is_ok();
            assert_eq!(msearch_agrees(s, ndjson.as_bytes()), accepted, "{ndjson}");
        }
        let count = format!(r#"{{"query":{query}}}"#);
        for s in &scopes {
            assert_eq!(
                agrees("/logs-a/_count", s, None, count.as_bytes()),
                (true, true)
            );
        }
    }
    assert!(taken >= bodies.len() * 4, "{taken} taken");
}

/// `v` as JSON text spelled another way, as a client may: insignificant whitespace (from `ws`)
/// between any two tokens, and characters of keys and strings escaped at random (`\uXXXX` in
/// either case, surrogate pairs beyond the BMP, the short escapes), those that must be escaped
/// always. Numbers as serde_json writes them.
fn respell(v: &Value, ws: &[&str], next: &mut impl FnMut() -> u64, out: &mut String) {
    fn pad(ws: &[&str], next: &mut impl FnMut() -> u64, out: &mut String) {
        if next().is_multiple_of(3) {
            out.push_str(ws[(next() % ws.len() as u64) as usize]);
        }
    }
    fn string(s: &str, next: &mut impl FnMut() -> u64, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            let must = matches!(c, '"' | '\\') || u32::from(c) < 0x20;
            if !must && !next().is_multiple_of(4) {
                out.push(c);
                continue;
            }
            match (c, next() % 3) {
                ('"', 0) => out.push_str("\\\""),
                ('\\', 0) => out.push_str("\\\\"),
                ('/', 0) => out.push_str("\\/"),
                ('\n', 0) => out.push_str("\\n"),
                ('\t', 0) => out.push_str("\\t"),
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        if next().is_multiple_of(2) {
                            out.push_str(&format!("\\u{u:04x}"));
                        } else {
                            out.push_str(&format!("\\u{u:04X}"));
                        }
                    }
                }
            }
        }
        out.push('"');
    }
    pad(ws, next, out);
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                respell(item, ws, next, out);
            }
            pad(ws, next, out);
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(ws, next, out);
                string(k, next, out);
                pad(ws, next, out);
                out.push(':');
                respell(item, ws, next, out);
            }
            pad(ws, next, out);
            out.push('}');
        }
        Value::String(s) => string(s, next, out),
        other => out.push_str(&other.to_string()),
    }
    pad(ws, next, out);
}

/// Review of the tape (issue 10, session 9: the parser's tape, containers written from their
/// source text, the checks reading the tape): a body's spelling never changes what esgate
/// decides or forwards. The other differential tests generate compact, escape-free bodies
/// (`Value::to_string`); here every body of `tree_matches_serde`'s seeds and mutations is
/// respelled with whitespace and escapes at random places, in keys the checks read (`script`,
/// `knn`, `_index`, `query`...) and in values, so containers lose their source text at every
/// depth, and some keep it beside ones that lost it. For each: the tree path and the serde path
/// decide alike on the respelled text, containers copied or not (`agrees`); and the tree path
/// decides the respelled text exactly as the compact text (the same refusal, or the same
/// forwarded value and request). Also as an msearch line (no newline in the whitespace).
#[test]
fn respelled_bodies_decide_as_compact_ones() {
    let scopes = scopes();
    let mut seeds: Vec<Value> = corpus()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(Value::is_object)
        .collect();
    seeds.extend(picked());
    seeds.extend([
        json!({"query": {"script": {"script": {"source": "true"}}}}),
        json!({"query": {"bool": {"must": [{"term": {"_index": "secret"}}]}}}),
        json!({"query": {"bool": {"filter": [{"knn": {"field": "v", "query_vector": [1], "k": 1, "num_candidates": 1}}]}}}),
        json!({"post_filter": {"knn": {"field": "v", "query_vector": [1], "k": 1, "num_candidates": 1}}}),
        json!({"aggs": {"a": {"terms": {"field": "tenant", "size": 10}}}, "aggregations": {}}),
        json!({"runtime_mappings": {}, "script_fields": {}, "sort": {"a": "asc", "b": "desc"}}),
        json!({"runtime_mappings": {"x": {"type": "keyword", "script": "emit('a')"}}}),
        json!({"pit": {"id": "x"}, "size": 1}),
        json!({"query": {"terms": {"f": ["a/b", "é", "😀", "a\"b\\c\n"]}}, "_source": ["a/b"]}),
        json!({"query": {"match_all": {}}, "suggest": {"s": {"text": "x", "term": {"field": "f"}}}}),
    ]);
    let mut next = crate::testing::xorshift(0x0bad_5eed_dead_beefu64);
    let headers = [
        json!({}),
        json!({"index": "logs-a"}),
        json!({"index": ["logs-a", "logs-b"], "preference": "p/q", "ignore_unavailable": true}),
        json!({"index": "secret"}),
        json!({"index": "logs-a,secret"}),
        json!({"index": ["logs-*", "-logs-b"], "expand_wildcards": "open"}),
        json!({"index": "logs-a", "search_type": "dfs_query_then_fetch"}),
        json!({"routing": "r", "index": "logs-a", "request_cache": false}),
    ];
    let result = |path: &str, s: &Scope, body: &[u8]| {
        prepare_at(path, s, None, body, false).map(|p| parts(p, body))
    };
    let (mut respelled, mut taken, mut accepted, mut msearch_taken) = (0, 0, 0, 0);
    // Mostly bodies a search accepts (refusals are compared too, but an accepted body is
    // where a spelling could smuggle something through).
    let good: Vec<&Value> = seeds
        .iter()
        .filter(|v| prepare(&scope(), None, v.to_string().as_bytes(), true).is_ok())
        .collect();
    assert!(good.len() > 50, "accepted seeds: {}", good.len());
    // Rounds until enough of each kind were compared (the seeds' mix moves with the corpus),
    // within a bound so that a generator gone wrong fails rather than loops.
    for round in 0.. {
        if respelled > 3_500 && accepted > 1_000 && msearch_taken > 250 {
            break;
        }
        assert!(
            round < 20_000,
            "respelled {respelled}, accepted {accepted}, msearch taken {msearch_taken}"
        );
        let mut v = match round % 4 {
            0 => seeds[(next() % seeds.len() as u64) as usize].clone(),
            _ => good[(next() % good.len() as u64) as usize].clone(),
        };
        if round % 3 == 0 {
            for _ in 0..1 + next() % 2 {
                mutate(&mut v, &mut next);
            }
        }
        let compact = v.to_string();
        let mut text = String::new();
        respell(&v, &[" ", "\t", "\n", "\r\n", "  \t"], &mut next, &mut text);
        respelled += usize::from(text != compact);
        let s = &scopes[round % scopes.len()];
        let path = ["/logs-a/_search", "/logs-a/_count"][round % 2];
        let (t, a) = agrees(path, s, None, text.as_bytes());
        taken += usize::from(t);
        accepted += usize::from(a);
        assert_eq!(
            result(path, s, text.as_bytes()),
            result(path, s, compact.as_bytes()),
            "{path} {text}"
        );
        if round % 4 == 1 {
            // The header respelled too: its keys and index names are what the tree path reads
            // from the tape (`check_header_tree`).
            let header = &headers[(next() % headers.len() as u64) as usize];
            let (mut h, mut line) = (String::new(), String::new());
            respell(header, &[" ", "\t"], &mut next, &mut h);
            respell(&v, &[" ", "\t"], &mut next, &mut line);
            msearch_taken += usize::from(msearch_agrees(s, format!("{h}\n{line}\n").as_bytes()));
        }
    }
    // Not a vacuous comparison: most accepted bodies go the tree path.
    assert!(
        taken * 2 > accepted,
        "tree path taken {taken} times of {accepted} accepted"
    );
}

/// Review9 finding: numbers just below f64::MAX's overflow threshold, which serde_json's parse
/// finds out of range (the serde path refuses the body, 400) and Rust's exact `f64` parse rounds
/// to f64::MAX. The tree's parser checked them with the latter, so the tree path forwarded
/// these searches (the number's text as the client wrote it) where the serde path refuses
/// them, and its checks read them through serde_json's parse as no number. Both paths must
/// refuse them, as a search, a count and an msearch line.
#[test]
fn numbers_serde_json_finds_out_of_range_are_refused_on_both_paths() {
    let scopes = scopes();
    for n in [
        "1797693134862315807e290",
        "1.7976931348623158079e308",
        "-0.1797693134862315708e309",
        &format!("17976931348623158{}", "0".repeat(292)),
    ] {
        for template in [
            r#"{"query": {"range": {"n": {"gte": N}}}}"#,
            r#"{"query": {"bool": {"filter": [{"term": {"n": N}}]}}}"#,
            r#"{"search_after": [N], "sort": ["n"]}"#,
            r#"{"min_score": N}"#,
        ] {
            let body = template.replace('N', n);
            for s in &scopes {
                for path in ["/logs-a/_search", "/logs-a/_count"] {
                    let (taken, accepted) = agrees(path, s, None, body.as_bytes());
                    assert!(!taken && !accepted, "{path} {body}");
                }
                let ndjson = format!("{{}}\n{body}\n");
                assert!(!msearch_agrees(s, ndjson.as_bytes()), "{body}");
                let refused = prepare_msearch(s, ndjson.as_bytes(), false).map(|_| ());
                assert_eq!(
                    refused.map_err(|r| r.kind),
                    Err(crate::RejectKind::BadRequest),
                    "{body}"
                );
            }
        }
    }
}

/// Review 14: a top-level `highlight` without its own query gets the client's (the tree path
/// adds it as `rewrite::search` does, and takes such bodies); a `highlight` elsewhere (here in
/// `top_hits`) leaves the body to the serde path, which refuses it without a query.
#[test]
fn highlights_get_the_clients_query_on_both_paths() {
    let scopes = scopes();
    let taken = [
        r#"{"query":{"match":{"message":"fox"}},"highlight":{"fields":{"*":{}}}}"#,
        r#"{"highlight":{"fields":{"*":{}},"require_field_match":false},"size":3}"#,
        r#"{"query":{"term":{"user":"x"}},"highlight":{"fields":{"*":{}},"highlight_query":{"match_all":{}}}}"#,
    ];
    for body in taken {
        for s in &scopes {
            assert_eq!(
                agrees("/logs-a/_search", s, None, body.as_bytes()),
                (true, true),
                "{body}"
            );
            let p = prepare_at("/logs-a/_search", s, None, body.as_bytes(), false).unwrap();
            let sent: Value = serde_json::from_slice(&p.upstream.body.unwrap().bytes).unwrap();
            let hq = &sent["highlight"]["highlight_query"];
            assert!(hq.is_object(), "{sent}");
            assert!(!hq.to_string().contains("tenant"), "{sent}");
        }
    }
    let body = r#"{"aggs":{"t":{"top_hits":{"highlight":{"fields":{"*":{}}}}}},"highlight":{"fields":{"*":{}}}}"#;
    for s in &scopes {
        assert_eq!(
            agrees("/logs-a/_search", s, None, body.as_bytes()),
            (false, false),
            "{body}"
        );
    }
    let ndjson = format!("{{}}\n{}\n{{}}\n{}\n", taken[0], taken[1]);
    for s in &scopes {
        assert!(msearch_agrees(s, ndjson.as_bytes()), "{ndjson}");
    }
    let ndjson = format!("{{}}\n{}\n{{}}\n{}\n", taken[0], body);
    for s in &scopes {
        assert!(!msearch_agrees(s, ndjson.as_bytes()), "{ndjson}");
    }
}

/// Arrays of strings in every place a check reads their items one by one (`terms` values,
/// `_source` includes and excludes, `fields`, `stored_fields`, `sort`, `search_after`,
/// `indices_boost`, `knn.query_vector`, an msearch header's `index`), spelled compact (one
/// token of the tape, `request::tree`'s `Tok::Strings`) and not (escapes, a control character,
/// unicode, empty strings, whitespace between items, nested arrays, mixed items, a malformed
/// list): the tree path decides and forwards each as the serde path does, in `_search` and in
/// `_msearch` bodies.
#[test]
fn string_arrays_match_serde() {
    let items = [
        r#""a""#,
        r#""logs-a""#,
        r#""""#,
        r#""*""#,
        r#""_doc""#,
        r#""user.name""#,
        r#""a longer plain value of more than sixteen bytes""#,
        r#""a\"b""#,
        r#""\u0061""#,
        r#""x\,"y""#,
        "\"raw\ttab\"",
        r#""é😀""#,
        "1",
        "-2.5",
        "null",
        r#"["x","y"]"#,
        r#"{"k":"v"}"#,
    ];
    let separators = [",", ",", ",", ", ", " ,", "\n,"];
    let places = [
        r#"{"query":{"terms":{"f":@}}}"#,
        r#"{"query":{"bool":{"filter":[{"terms":{"f":@}}]}},"size":1}"#,
        r#"{"_source":@}"#,
        r#"{"_source":{"includes":@,"excludes":@}}"#,
        r#"{"fields":@,"stored_fields":@}"#,
        r#"{"sort":@,"search_after":@}"#,
        r#"{"indices_boost":@}"#,
        r#"{"knn":{"field":"v","query_vector":@,"k":1,"num_candidates":2}}"#,
        r#"{"query":{"ids":{"values":@}}}"#,
        r#"{"aggs":{"a":{"terms":{"field":"f","include":@}}}}"#,
    ];
    let scopes = scopes();
    let mut next = crate::testing::xorshift(0x57a1_17b0);
    let list = |next: &mut dyn FnMut() -> u64| {
        // Mostly compact lists of plain strings, the packed form.
        let plain = next().is_multiple_of(2);
        let n = (next() % 5) as usize;
        let mut body = String::from("[");
        for k in 0..n {
            if k > 0 {
                body.push_str(if plain {
                    ","
                } else {
                    separators[(next() % 6) as usize]
                });
            }
            let pick = (next() % if plain { 7 } else { items.len() as u64 }) as usize;
            body.push_str(items[pick]);
        }
        body.push(']');
        body
    };
    for round in 0..4_000 {
        let place = places[round % places.len()];
        let mut body = String::new();
        for (k, part) in place.split('@').enumerate() {
            if k > 0 {
                body.push_str(&list(&mut next));
            }
            body.push_str(part);
        }
        let scope = &scopes[round % scopes.len()];
        agrees("/logs-a/_search", scope, None, body.as_bytes());
        if round % 4 == 0 {
            let header = format!("{{\"index\":{}}}", list(&mut next));
            let ndjson = format!("{header}\n{body}\n{{}}\n{body}\n");
            msearch_agrees(scope, ndjson.as_bytes());
        }
    }
}

/// attack20c: bodies of 4 KiB or more (their long texts forwarded as spans of the client's
/// body) whose source text differs from what the checks read or what the writer writes:
/// escaped keys and values (`\u005f`, `\/`, surrogate pairs, a lone surrogate), duplicate keys
/// at depth, a BOM, every whitespace kind, exponents and long digits, deep nesting, the token's
/// filter shape already in the query, scripts and runtime mappings, `highlight_query`, a key
/// spelled with an escape at the top level. For `_search`, `_count` and an async search, under
/// every scope: the tree path decides and forwards each as the serde path does, the spans join
/// to the bytes written whole, and the forwarded body carries the token's filter.
#[test]
fn spanned_bodies_forward_what_was_checked() {
    let terms = |n: usize| -> String {
        let v: Vec<String> = (0..n).map(|i| format!("\"v-{i:05}\"")).collect();
        format!(r#"{{"terms":{{"user.id":[{}]}}}}"#, v.join(","))
    };
    let big = terms(1000);
    assert!(big.len() > 2 * es::SPAN_MIN);
    let script = format!(
        r#"{{"source":"{}","lang":"painless"}}"#,
        "emit(doc['a'].value);".repeat(300)
    );
    let deep = {
        let mut q = big.clone();
        for _ in 0..60 {
            q = format!(r#"{{"bool":{{"must":[{q}]}}}}"#);
        }
        q
    };
    let bodies: Vec<String> = vec![
        format!(r#"{{"query":{big}}}"#),
        format!("\u{feff}{{\"query\":{big}}}"),
        format!("{{ \"query\" :\t{big}\r\n}}"),
        format!(r#"{{"\u0071uery":{big}}}"#),
        format!(r#"{{"query":{big},"\u0071uery":{{"match_all":{{}}}}}}"#),
        format!(r#"{{"query":{big},"query":{{"match_all":{{}}}}}}"#),
        format!(r#"{{"query":{{"bool":{{"filter":[{big},{big}],"filter":[]}}}}}}"#),
        format!(
            r#"{{"query":{{"bool":{{"must":[{big}],"filter":[{{"term":{{"tenant":"b"}}}}]}}}},"size":10}}"#
        ),
        format!(r#"{{"query":{big},"size":1e1}}"#),
        format!(
            r#"{{"query":{{"bool":{{"must":[{big}],"filter":[{{"term":{{"tenant":"a"}}}}]}}}}}}"#
        ),
        format!(
            r#"{{"query":{{"bool":{{"must":[{big}],"filter":{{"term":{{"\u0074enant":"b"}}}}}}}}}}"#
        ),
        format!(
            r#"{{"query":{{"bool":{{"must":[{big},{{"term":{{"user":"a\/b\ud83d\ude00"}}}}]}}}}}}"#
        ),
        format!(r#"{{"query":{{"bool":{{"must":[{big},{{"term":{{"user":"\ud800"}}}}]}}}}}}"#),
        format!(
            r#"{{"query":{{"bool":{{"must":[{big},{{"range":{{"n":{{"gte":1E+2,"lte":-0.0e-0,"boost":123456789012345678901234567890}}}}}}]}}}}}}"#
        ),
        format!(r#"{{"query":{{"bool":{{"must":[{big},{{"range":{{"n":{{"gte":1e400}}}}}}]}}}}}}"#),
        format!(r#"{{"query":{deep}}}"#),
        format!(
            r#"{{"runtime_mappings":{{"r":{{"type":"keyword","script":{script}}}}},"query":{big}}}"#
        ),
        format!(r#"{{"script_fields":{{"s":{{"script":{script}}}}},"query":{big}}}"#),
        format!(r#"{{"query":{{"script_score":{{"query":{big},"script":{script}}}}}}}"#),
        format!(
            r#"{{"query":{big},"highlight":{{"fields":{{"*":{{}}}},"highlight_query":{big}}}}}"#
        ),
        format!(r#"{{"query":{big},"highlight":{{"fields":{{"*":{{}}}}}}}}"#),
        format!(
            r#"{{"aggs":{{"f":{{"filter":{big}}}}},"size":0,"post_filter":{big},"timeout":"1s"}}"#
        ),
        format!(
            r#"{{"size":5,"aggs":{{"f":{{"filter":{big}}}}},"query":{{"match_all":{{}}}},"track_total_hits":true}}"#
        ),
        format!(
            r#"{{"size":5,"aggs":{{"f":{{"filter":{big}}}}},"query":{{"match_all":{{}}}},"track_total_hits":true,"size":6}}"#
        ),
        format!(
            r#"{{"knn":{{"field":"v","query_vector":[1,2],"k":1,"num_candidates":2,"filter":{big}}}}}"#
        ),
        format!(
            r#"{{"query":{{"terms":{{"user.id":{{"index":"secret","id":"1","path":"p"}}}}}},"aggs":{{"f":{{"filter":{big}}}}}}}"#
        ),
    ];
    let scopes = scopes();
    let (mut spanned, mut taken) = (0, 0);
    for path in ["/logs-a/_search", "/logs-a/_count", "/logs-a/_async_search"] {
        for body in &bodies {
            let body = body.as_bytes();
            for s in &scopes {
                taken += usize::from(agrees(path, s, None, body).0);
                let run = |min: Option<usize>| {
                    SPAN_MIN_SET.with(|m| m.set(min));
                    let out = prepare_at(path, s, None, body, false);
                    SPAN_MIN_SET.with(|m| m.set(None));
                    out.map(|mut p| {
                        let spans = p.upstream.body.as_ref().map_or(0, |b| b.spans.len());
                        (forwarded(&mut p, body), spans)
                    })
                };
                match (run(None), run(Some(usize::MAX))) {
                    (Ok((a, spans)), Ok((b, _))) => {
                        assert_eq!(a, b, "{path} {:.300}", String::from_utf8_lossy(body));
                        spanned += usize::from(spans > 0);
                        let sent = a.expect("a body");
                        let v: Value = serde_json::from_slice(&sent).expect("JSON");
                        if !s.filters.is_empty() {
                            assert!(v.to_string().contains("tenant"), "{path} {v:.300}");
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b),
                    (a, b) => panic!("{path}: {a:?} / {b:?}"),
                }
            }
        }
    }
    assert!(spanned > 30 && taken > 30, "{spanned} {taken}");
}

/// attack28 (perf28a): random searches whose aggregations hold histograms that fill (on a
/// backend that makes empty buckets first, the default), at random depths and places, beside
/// ones that fill nothing or bring their own (partial, string, null) `hard_bounds`, under
/// `aggs` or `aggregations`, spelled compactly, spaced, or with escaped keys: the tree path
/// (`Parsed::with_added`) decides and forwards each as the serde path does (`_search`,
/// `_async_search`, an `_msearch` line), under every scope (one counts `max_buckets` from the
/// bounds), and what it forwards is strict JSON (no duplicate key: a second `hard_bounds`
/// would be read by the backend, not by a comparison of parsed values) in which every
/// histogram that fills is bounded.
#[test]
fn spliced_hard_bounds_agree_with_the_serde_path() {
    const FROM: i64 = 1_700_000_000_000;
    fn hist(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
        let mut params = serde_json::Map::new();
        let date = next().is_multiple_of(2);
        let mut order: Vec<(String, Value)> = Vec::new();
        order.push(("field".into(), json!(if date { "t" } else { "n" })));
        if date {
            let iv = ["1h", "30s", "1d"][(next() % 3) as usize];
            let key = ["fixed_interval", "calendar_interval"][(next() % 2) as usize];
            let iv = if key == "calendar_interval" { "1d" } else { iv };
            order.push((key.into(), json!(iv)));
        } else {
            order.push((
                "interval".into(),
                [json!(1000), json!(0.5), json!(3_600_000)][(next() % 3) as usize].clone(),
            ));
        }
        match next() % 4 {
            0 => order.push(("min_doc_count".into(), json!(0))),
            1 => order.push(("min_doc_count".into(), json!(1))),
            _ => {}
        }
        match next() % 6 {
            0 => order.push((
                "extended_bounds".into(),
                json!({"min": FROM, "max": FROM + 3_600_000}),
            )),
            1 => order.push((
                "hard_bounds".into(),
                json!({"min": FROM, "max": FROM + 7_200_000}),
            )),
            2 => order.push(("hard_bounds".into(), json!({"min": FROM}))),
            3 => order.push(("hard_bounds".into(), json!({"min": "a", "max": null}))),
            _ => {}
        }
        if next().is_multiple_of(4) {
            order.push(("format".into(), json!("epoch_millis")));
        }
        // Random order of the parameters.
        while !order.is_empty() {
            let i = (next() % order.len() as u64) as usize;
            let (k, v) = order.remove(i);
            params.insert(k, v);
        }
        let mut def = serde_json::Map::new();
        let sub = depth < 3 && next().is_multiple_of(3);
        let sub_first = next().is_multiple_of(2);
        let sub_aggs = sub.then(|| aggs(next, depth + 1));
        let sub_key = ["aggs", "aggregations"][(next() % 2) as usize];
        if let (true, Some(s)) = (sub_first, &sub_aggs) {
            def.insert(sub_key.into(), s.clone());
        }
        def.insert(
            (if date { "date_histogram" } else { "histogram" }).into(),
            Value::Object(params),
        );
        if let (false, Some(s)) = (sub_first, sub_aggs) {
            def.insert(sub_key.into(), s);
        }
        Value::Object(def)
    }
    fn aggs(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
        let mut m = serde_json::Map::new();
        for i in 0..1 + next() % 4 {
            let name = format!("{}{i}", ["a", "h", "x"][(next() % 3) as usize]);
            let def = match next() % 5 {
                0 | 1 => hist(next, depth),
                2 => json!({"max": {"field": "n"}}),
                3 if depth < 3 => {
                    json!({"terms": {"field": "u", "size": 3}, "aggs": aggs(next, depth + 1)})
                }
                _ if depth < 3 => {
                    json!({"filter": {"match_all": {}}, "aggregations": aggs(next, depth + 1)})
                }
                _ => json!({"min": {"field": "n"}}),
            };
            m.insert(name, def);
        }
        Value::Object(m)
    }
    let scopes = scopes();
    let mut next = crate::testing::xorshift(0xa77a_c828_0000_0001);
    let (mut taken, mut accepted, mut filled) = (0, 0, 0);
    for round in 0..1_500 {
        let mut body = serde_json::Map::new();
        if !next().is_multiple_of(5) {
            body.insert(
                "query".into(),
                json!({"bool": {"filter": [{"range": {"t": {"gte": FROM,
                    "lte": FROM + 86_400_000, "format": "epoch_millis"}}},
                    {"range": {"n": {"gte": 0, "lte": 100_000}}}]}}),
            );
        }
        body.insert("size".into(), json!(0));
        let top = ["aggs", "aggregations"][(next() % 2) as usize];
        body.insert(top.into(), aggs(&mut next, 0));
        if next().is_multiple_of(2) {
            // Aggregations first.
            let q = body.remove("query");
            if let Some(q) = q {
                body.insert("query".into(), q);
            }
        }
        let value = Value::Object(body);
        let compact = value.to_string();
        let text = match round % 5 {
            0 | 1 => compact,
            2 => serde_json::to_string_pretty(&value).unwrap(),
            3 => compact.replacen("\"field\"", "\"fi\\u0065ld\"", 1),
            _ => compact
                .replace(":{\"", ": {\"")
                .replacen(",\"", " ,\t\"", 2),
        };
        let s = &scopes[round % scopes.len()];
        for path in ["/logs-a/_search", "/logs-a/_async_search"] {
            let (t, a) = agrees(path, s, None, text.as_bytes());
            taken += usize::from(t);
            accepted += usize::from(a);
            if let Ok(mut p) = prepare_at(path, s, None, text.as_bytes(), false) {
                let sent = forwarded(&mut p, text.as_bytes()).expect("a body");
                let arena = crate::request::tree::Arena::default();
                let mut node = crate::request::tree::parse(&sent, &arena)
                    .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(&sent)));
                node.open();
                let Node::Object(entries) = &node else {
                    panic!("not an object")
                };
                assert_eq!(
                    crate::dsl::fill::plan(
                        Obj::N(entries),
                        crate::request::dialect::EmptyBuckets::MadeFirst,
                        None,
                        &mut Default::default()
                    ),
                    Ok(Vec::new()),
                    "{}",
                    String::from_utf8_lossy(&sent)
                );
                filled += usize::from(
                    String::from_utf8_lossy(&sent)
                        .matches("hard_bounds")
                        .count()
                        > text.matches("hard_bounds").count(),
                );
            }
        }
        if !text.contains('\n') {
            let ndjson = format!("{{\"index\":\"logs-*\"}}\n{text}\n{{}}\n{text}\n");
            msearch_agrees(s, ndjson.as_bytes());
        }
    }
    assert!(
        taken > 500 && accepted > 500 && filled > 150,
        "{taken} {accepted} {filled}"
    );
}
