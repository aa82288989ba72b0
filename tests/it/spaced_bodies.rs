//! attack29 (session 29, perf29a): a body's JSON whitespace is forwarded as the client spaced
//! it. These tests put whitespace at every place between the tokens of a search, a count and
//! an `_msearch` line and hold what reaches the backend to what the compact body sends: the
//! same bytes once the whitespace is taken out (the same value, the token's filter in it), and
//! only JSON's four whitespace bytes outside its strings. Every other byte a parser might skip
//! (the other control characters, DEL, U+00A0, U+FEFF, U+2028, ...) is refused with nothing
//! forwarded, and whitespace inside a token (`tr ue`, `1 0`) too. The real backends answer a
//! body spaced every way as they answer the compact one, tenant a's documents only.
//!
//! Invariant: each test sends real bytes over a real socket to esgate and asserts what the
//! client sees and what reached the backend (a recording fake, or the real backends).

use crate::support;

use serde_json::{json, Value};
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send};
use support::recording::Recording;

/// A search that takes the tree path and is changed there: a query the token's filter wraps
/// (taken out, its place given to the last entry: a run of entries copied across the gap would
/// send the client's query unfiltered),
/// a numeric histogram `fill` splices `hard_bounds` into (a range on its field), empty objects
/// and arrays, a sort list, `_source` filtering, numbers of several forms.
const SEARCH: &str = concat!(
    r#"{"size":3,"from":0,"query":{"bool":{"filter":[{"range":{"n":{"gte":-1.5e1,"lte":10}}}],"#,
    r#""must":[{"match_all":{}}],"should":[],"must_not":[{"term":{"user":"zé"}}]}},"#,
    r#""highlight":{"fields":{}},"aggs":{"h":{"histogram":{"field":"n","interval":1,"#,
    r#""min_doc_count":0}},"t":{"terms":{"field":"user","size":5,"order":{"_count":"desc"}}}},"#,
    r#""sort":[{"n":{"order":"desc"}},"user"],"_source":{"includes":["a","b"],"excludes":[]},"#,
    r#""explain":false,"stored_fields":["*"],"track_total_hits":true}"#
);

/// A count's body (only `query`).
const COUNT: &str =
    r#"{"query":{"bool":{"must":[{"match":{"message":"a b"}}],"filter":[],"must_not":[]}}}"#;

/// The places in compact `json` where a parser skips whitespace (between two tokens), and
/// the places inside a number or a literal (where whitespace splits a token).
fn places(json: &str) -> (Vec<usize>, Vec<usize>) {
    let b = json.as_bytes();
    let (mut between, mut inside) = (Vec::new(), Vec::new());
    let mut in_string = false;
    let mut escaped = false;
    // Whether the place before byte `i` is inside a string (the string's bytes and its
    // closing quote) is known from the scan up to `i`.
    for i in 0..=b.len() {
        if !in_string {
            let word = |c: Option<&u8>| {
                c.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
            };
            let (before, after) = (i.checked_sub(1).and_then(|j| b.get(j)), b.get(i));
            if word(before) && word(after) {
                inside.push(i);
            } else {
                between.push(i);
            }
        }
        let Some(&c) = b.get(i) else { break };
        if in_string {
            match (escaped, c) {
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => escaped = false,
            }
        } else if c == b'"' {
            in_string = true;
        }
    }
    (between, inside)
}

/// `json` with `ws` put at `at` (a byte place).
fn put(json: &str, at: usize, ws: &str) -> String {
    format!("{}{ws}{}", &json[..at], &json[at..])
}

/// `json` with `ws` put at every one of `places`.
fn spaced_everywhere(json: &str, places: &[usize], ws: &str) -> String {
    let mut out = String::new();
    let mut from = 0;
    for &at in places {
        out.push_str(&json[from..at]);
        out.push_str(ws);
        from = at;
    }
    out.push_str(&json[from..]);
    out
}

/// `json` without the JSON whitespace outside its strings, checking that nothing else stands
/// there that a parser might skip: only space, tab, LF and CR are whitespace between tokens.
fn squeezed(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut inside, mut escaped) = (false, false);
    for &c in json {
        if inside {
            match (escaped, c) {
                (false, b'\\') => escaped = true,
                (false, b'"') => inside = false,
                _ => escaped = false,
            }
        } else if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else {
            assert!(
                c.is_ascii_graphic(),
                "byte {c:#x} outside a string: {}",
                String::from_utf8_lossy(json)
            );
            if c == b'"' {
                inside = true;
            }
        }
        out.push(c);
    }
    out
}

/// The whitespace sequences put between tokens (the four bytes alone and mixed).
const WHITESPACE: [&str; 6] = [" ", "\t", "\n", "\r", "\r\n\t  ", "\n\n"];

/// Bytes and characters that are not JSON whitespace but that a lax parser might skip: every
/// other control character, DEL, and Unicode spaces (NBSP, BOM, line and paragraph separators,
/// NEL, the ideographic space, the Mongolian vowel separator).
fn not_whitespace() -> Vec<String> {
    let mut out: Vec<String> = (0u8..0x20)
        .filter(|b| !matches!(b, b'\t' | b'\n' | b'\r'))
        .chain([0x7f])
        .map(|b| char::from(b).to_string())
        .collect();
    for c in [
        '\u{85}', '\u{a0}', '\u{feff}', '\u{2028}', '\u{2029}', '\u{3000}', '\u{180e}', '\u{200b}',
    ] {
        out.push(c.to_string());
    }
    out
}

/// A fake backend answering searches, counts, msearches and async searches of `logs-a`, its
/// `n` an integer.
fn recording() -> Recording {
    let es = Recording::start();
    es.resolve_indices(&["logs-a"]);
    let search = json!({"took": 1, "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}});
    es.script_json("POST", "/logs-a/_search", 200, search.clone());
    es.script_json(
        "POST",
        "/logs-a/_count",
        200,
        json!({"count": 0, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}),
    );
    es.script_json(
        "POST",
        "/_msearch",
        200,
        json!({"took": 1, "responses": [search]}),
    );
    es.script_json(
        "POST",
        "/logs-a/_async_search",
        200,
        json!({"is_partial": false, "is_running": false,
            "start_time_in_millis": 1_583_945_890_986_u64,
            "expiration_time_in_millis": 1_584_377_890_986_u64, "response": search}),
    );
    es.field_types(&["logs-a"], &[("n", "integer")]);
    es
}

/// The body of the one request to `path` since the fake was last cleared.
fn sent_to(es: &Recording, path: &str) -> Vec<u8> {
    let sent = es.requests_to("POST", path);
    assert_eq!(sent.len(), 1, "{path}: {sent:?}");
    es.clear();
    sent[0].body.to_vec()
}

/// attack29: whitespace between any two tokens of a search, a count, an async search or an
/// `_msearch` body line (each of JSON's four bytes, and runs of them; at each place alone, and
/// at every place at once) sends the backend what the compact body sends but for whitespace,
/// which is only those four bytes: the token's filter, the histogram's spliced `hard_bounds`,
/// every entry as checked. Would fail if a spaced text were copied where it is not the checked value (a
/// rewrite's container still sent as its old text, a splice into the wrong place, a run of
/// entries across a gap that is not a comma) or a whitespace byte outside the four were kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitespace_between_any_tokens_forwards_the_compact_bodys_bytes() {
    let es = recording();
    let gw = Esgate::start(&[es.url()], "").await;
    let auth = bearer(&gw.tenant_token("a").await);
    let json_headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let ndjson_headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
    ];
    // (esgate's path, the backend's path, the body, whether it is an msearch body line)
    let routes = [
        ("/logs-a/_search", "/logs-a/_search", SEARCH, false),
        ("/logs-a/_count", "/logs-a/_count", COUNT, false),
        ("/_msearch", "/_msearch", SEARCH, true),
        (
            "/logs-a/_async_search",
            "/logs-a/_async_search",
            SEARCH,
            false,
        ),
    ];
    for (path, upstream, compact, msearch) in routes {
        // An msearch's header line spaced too when its body is (esgate writes the header it
        // forwards: the same either way).
        let wrap = |body: &str| {
            if msearch && body == compact {
                format!("{{\"index\":\"logs-a\"}}\n{body}\n")
            } else if msearch {
                format!("{{ \"index\" :\t[ \"logs-a\" ] }}\n{body}\n")
            } else {
                body.to_string()
            }
        };
        let headers: &[(&str, &str)] = if msearch {
            &ndjson_headers
        } else {
            &json_headers
        };
        let r = send("POST", &gw.url(path), headers, wrap(compact))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{path} compact: {}", r.text());
        let reference = sent_to(&es, upstream);
        let reference_text = String::from_utf8_lossy(&reference).into_owned();
        // The token's filter, and for a search the spliced bounds, are in what the compact
        // body sends (so in every spaced one's, equal to it).
        assert!(
            reference_text.contains(r#"{"term":{"tenant":{"value":"a"}}}"#),
            "{reference_text}"
        );
        if compact == SEARCH {
            assert!(reference_text.contains("hard_bounds"), "{reference_text}");
            // The tree path's (a number sent as its text): the path whose copies are tested.
            assert!(reference_text.contains("-1.5e1"), "{reference_text}");
        }
        let (between, _) = places(compact);
        // An msearch line cannot hold LF or CR (its framing): only space and tab there.
        let kinds: Vec<&str> = WHITESPACE
            .iter()
            .copied()
            .filter(|ws| !msearch || !ws.contains(['\n', '\r']))
            .collect();
        // (the body, whether it is spaced inside a container the backend gets as its text)
        let mut bodies: Vec<(String, bool)> = between
            .iter()
            .enumerate()
            .map(|(i, &at)| (put(compact, at, kinds[i % kinds.len()]), false))
            .collect();
        for ws in &kinds {
            bodies.push((spaced_everywhere(compact, &between, ws), true));
        }
        // Python's `json.dumps` spelling (`": "`, `", "`; no key or string here holds either).
        bodies.push((compact.replace("\":", "\": ").replace(",\"", ", \""), true));
        for (body, kept) in bodies {
            let r = send("POST", &gw.url(path), headers, wrap(&body))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{path} {body:?}: {}", r.text());
            let sent = sent_to(&es, upstream);
            assert_eq!(
                String::from_utf8_lossy(&squeezed(&sent)),
                String::from_utf8_lossy(&squeezed(&reference)),
                "{path} {body:?}"
            );
            // Copied as the client spaced it (a container's kept text), not respelled.
            assert!(
                !kept || squeezed(&sent) != sent,
                "{path} {body:?}: {}",
                String::from_utf8_lossy(&sent)
            );
            if msearch {
                // Two lines, each JSON: whitespace inside a line never split it.
                assert_eq!(sent.iter().filter(|&&b| b == b'\n').count(), 2, "{body:?}");
            } else {
                let (a, b): (Value, Value) = (
                    serde_json::from_slice(&sent).unwrap(),
                    serde_json::from_slice(&reference).unwrap(),
                );
                assert_eq!(a, b, "{path} {body:?}");
            }
        }
    }
}

/// attack29: anything but JSON's four whitespace bytes between tokens (another control
/// character, DEL, a Unicode space or BOM), or whitespace inside a number or literal, is
/// refused (400) and nothing reaches the backend: a parser that skipped it (Jackson skips no
/// such byte, but a lenient one might) never sees a text esgate did not check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_else_between_tokens_is_refused_and_nothing_is_forwarded() {
    let es = recording();
    let gw = Esgate::start(&[es.url()], "").await;
    let auth = bearer(&gw.tenant_token("a").await);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let ndjson_headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
    ];
    let (between, inside) = places(SEARCH);
    // A few places of each kind: the body's ends, after a brace, before and after a colon,
    // after a comma, inside an empty object and array, before the last brace.
    let picked: Vec<usize> = [
        0,
        1,
        SEARCH.find(':').unwrap(),
        SEARCH.find(':').unwrap() + 1,
        SEARCH.find(',').unwrap() + 1,
        SEARCH.find("{}").unwrap() + 1,
        SEARCH.find("[]").unwrap() + 1,
        SEARCH.len() - 1,
        SEARCH.len(),
    ]
    .into_iter()
    .filter(|at| between.contains(at))
    .collect();
    assert_eq!(picked.len(), 9);
    let mut cases: Vec<String> = Vec::new();
    for odd in not_whitespace() {
        for &at in &picked {
            cases.push(put(SEARCH, at, &odd));
        }
    }
    for &at in &inside {
        for ws in [" ", "\t"] {
            cases.push(put(SEARCH, at, ws));
        }
    }
    // Only whitespace, and nothing but whitespace around nothing.
    cases.extend([
        " ".into(),
        " \t\r\n".into(),
        "{".into(),
        "{ ".into(),
        "{\"size\": ".into(),
    ]);
    for body in &cases {
        let r = send(
            "POST",
            &gw.url("/logs-a/_search"),
            &headers,
            body.clone().into_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400, "{body:?}: {}", r.text());
        let line = format!("{{\"index\":\"logs-a\"}}\n{body}\n");
        if !body.contains(['\n', '\r']) {
            let r = send(
                "POST",
                &gw.url("/_msearch"),
                &ndjson_headers,
                line.into_bytes(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 400, "msearch {body:?}: {}", r.text());
        }
    }
    let forwarded: Vec<_> = es
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("_search") || r.path.ends_with("_msearch"))
        .collect();
    assert!(forwarded.is_empty(), "{forwarded:?}");
}

/// attack29: the real backends (Jackson, as OpenSearch 3 and Elasticsearch 8 configure it)
/// read a search spaced every way (each of the four whitespace bytes at every place between
/// tokens, empty `{ }` and `[ ]`, whitespace before colons and commas, after the last item,
/// CRLF line ends) as the compact one: tenant a's documents only, the same hits and
/// aggregations; an `_msearch` whose body line is tab- and space-spaced likewise; a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_backends_read_every_spacing_as_the_compact_body() {
    let v = json!({
        "size": 100,
        "query": {"bool": {"should": [
            {"terms": {"user": ["alice", format!("bob-{}", fixture::LEAKMARKER_B), "sam"]}},
            {"match_all": {}}
        ], "must_not": [], "filter": [{"range": {"@timestamp": {"gte": "2024-01-01T00:00:00.000Z",
            "lte": "2024-01-31T00:00:00.000Z", "format": "strict_date_optional_time"}}}]}},
        "sort": [{"@timestamp": {"order": "desc"}}, "_doc"],
        "_source": {"excludes": []},
        "aggs": {
            "tenants": {"terms": {"field": "tenant", "size": 10}},
            "days": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1d",
                "min_doc_count": 0}}
        }
    });
    let compact = v.to_string();
    let (between, _) = places(&compact);
    let spellings: Vec<String> = [" ", "\t", "\r\n", "\n\t \r"]
        .iter()
        .map(|ws| spaced_everywhere(&compact, &between, ws))
        .collect();
    for backend in [fixture::seeded_osmem(), fixture::seeded_noida()] {
        let gw = Esgate::start(&[backend.url()], "").await;
        let auth = bearer(&gw.tenant_token("a").await);
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        let ndjson = [
            ("authorization", auth.as_str()),
            ("content-type", "application/x-ndjson"),
        ];
        let mut seen = Vec::new();
        for body in std::iter::once(&compact).chain(&spellings) {
            let r = send("POST", &gw.url("/logs-*/_search"), &headers, body.clone())
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{body:?}: {}", r.text());
            fixture::assert_no_foreign_data("/logs-*/_search", &r);
            let ids = support::http::hit_ids(&r);
            assert_eq!(ids.len() as u64, fixture::TENANT_A_DOCS, "{ids:?}");
            assert!(ids.iter().all(|id| id.starts_with('a')), "{ids:?}");
            seen.push((ids, r.json()["aggregations"].clone()));
        }
        for ws in [" ", "\t", " \t "] {
            let line = spaced_everywhere(&compact, &between, ws);
            let body = format!("{{\"index\":\"logs-*\"}}\n{line}\n");
            let r = send("POST", &gw.url("/_msearch"), &ndjson, body)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{ws:?}: {}", r.text());
            fixture::assert_no_foreign_data("/_msearch", &r);
            let a = r.json();
            let one = &a["responses"][0];
            let ids: Vec<String> = one["hits"]["hits"]
                .as_array()
                .unwrap_or_else(|| panic!("{a}"))
                .iter()
                .map(|h| h["_id"].as_str().unwrap().to_string())
                .collect();
            let mut ids = ids;
            ids.sort();
            seen.push((ids, one["aggregations"].clone()));
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
        // A count, spaced every way: tenant a's documents, as the compact count.
        let count = json!({"query": v["query"].clone()}).to_string();
        let (between, _) = places(&count);
        for ws in ["", " ", "\t", "\r\n"] {
            let body = spaced_everywhere(&count, &between, ws);
            let r = send("POST", &gw.url("/logs-*/_count"), &headers, body.clone())
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{body:?}: {}", r.text());
            assert_eq!(r.json()["count"], fixture::TENANT_A_DOCS, "{body:?}");
        }
    }
}

/// attack29: a large search (past `SPAN_MIN`: its long texts sent as spans of the client's
/// body, not copied) spaced every way sends the backend what its compact spelling sends but for
/// whitespace: a `terms` list of a thousand ids spaced `", "` (no longer one packed token), the
/// histogram's bounds spliced into a pretty-printed `aggs`, the query under the token's filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_spaced_search_sent_as_spans_is_the_compact_ones_bytes() {
    let es = recording();
    let gw = Esgate::start(&[es.url()], "").await;
    let auth = bearer(&gw.tenant_token("a").await);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let ids: Vec<String> = (0..1000).map(|i| format!("\"user-{i:05}\"")).collect();
    let compact = format!(
        r#"{{"size":5,"query":{{"bool":{{"filter":[{{"terms":{{"user":[{}]}}}},{{"range":{{"n":{{"gte":0,"lte":100}}}}}}]}}}},"aggs":{{"h":{{"histogram":{{"field":"n","interval":10}}}}}},"sort":["n"]}}"#,
        ids.join(",")
    );
    assert!(compact.len() > 2 * 4096);
    let r = send(
        "POST",
        &gw.url("/logs-a/_search"),
        &headers,
        compact.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let reference = sent_to(&es, "/logs-a/_search");
    assert!(
        String::from_utf8_lossy(&reference).contains("hard_bounds"),
        "the bounds spliced"
    );
    let (between, _) = places(&compact);
    let mut spellings: Vec<String> = [" ", "\t", "\r\n", "\n  "]
        .iter()
        .map(|ws| spaced_everywhere(&compact, &between, ws))
        .collect();
    spellings.push(compact.replace("\",\"", "\", \"").replace("\":", "\": "));
    for body in spellings {
        let r = send("POST", &gw.url("/logs-a/_search"), &headers, body.clone())
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let sent = sent_to(&es, "/logs-a/_search");
        assert_ne!(squeezed(&sent), sent, "sent as spaced");
        assert_eq!(
            String::from_utf8_lossy(&squeezed(&sent)),
            String::from_utf8_lossy(&squeezed(&reference)),
            "{}",
            &body[..200]
        );
        let (a, b): (Value, Value) = (
            serde_json::from_slice(&sent).unwrap(),
            serde_json::from_slice(&reference).unwrap(),
        );
        assert_eq!(a, b);
    }
}
