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

/// `r` with `ty` as the type of every field `prepared` needs typed (`histogram_fields`) in
/// every concrete index `r` resolved its expression to: what the proxy's `_field_caps` lookup
/// gives for a cluster where those fields are of that type.
pub(crate) fn with_field_types(prepared: &crate::Prepared, r: &mut crate::Resolution, ty: &str) {
    for (expr, fields) in prepared.field_types_needed() {
        let indices: Vec<String> = r
            .names
            .get(expr)
            .map(|names| {
                names
                    .iter()
                    .flat_map(|n| n.indices.iter().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let types = fields
            .names()
            .map(|f| {
                let pairs = indices
                    .iter()
                    .map(|i| (i.clone(), Some(ty.to_string())))
                    .collect();
                std::sync::Arc::new(crate::dsl::histogram_fields::FieldTypes::new(f, pairs))
            })
            .collect();
        r.field_types.insert(expr.to_string(), types);
    }
}

/// Owned `(key, value)` pairs.
pub(crate) fn pairs(v: &[(&str, &str)]) -> Vec<crate::Param> {
    v.iter()
        .map(|(a, b)| (a.to_string().into(), b.to_string().into()))
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

/// Lucene classic query texts (`query_string`) with the field names Lucene's parser reads in
/// them (`QueryParser.jj`: `Clause` is `[<TERM> <COLON>] Term`; `_exists_:x` and
/// `_exists_:"x"` name `x`, Elasticsearch's `QueryStringQueryParser.getFieldQuery`), `_exists_`
/// itself left out. The lexer's states decide where a field can stand: nothing inside a
/// phrase (`QUOTED`, `\"` escaped), a range (state `Range`: `RANGE_GOOP` is any run without a
/// space, `]` or `}`, `RANGE_QUOTED` a quoted bound; the longest wins) or a regular expression
/// (`REGEXPTERM: "/" (~["/"] | "\\/")* "/"`, the longest). Every reader of classic text
/// (`fields::check_query_text`, `expansion`'s lexer) is held to it alone. The third list: names
/// before a colon inside a range or a regular expression, which Lucene does not read as fields
/// but noida does (in a regular expression), so a reader may check them too (stricter).
pub(crate) const LUCENE_FIELDS: &[(&str, &[&str], &[&str])] = &[
    // A quote inside a range bound or a regular expression opens no phrase.
    ("[a\" TO b] _seq_no:5 \"x\"", &["_seq_no"], &[]),
    ("{a\" TO b} _seq_no:5 \"x\"", &["_seq_no"], &[]),
    ("[a TO b\"} _seq_no:5 \"x\"", &["_seq_no"], &[]),
    ("/a\"/ _seq_no:5", &["_seq_no"], &[]),
    ("/a\\/b\"/ _seq_no:5", &["_seq_no"], &[]),
    // No later slash: the regular expression is `/a\/` (the longest match).
    ("/a\\/ _seq_no:5", &["_seq_no"], &[]),
    // A goop may start with a tab and is then longer than the quoted bound from the quote.
    ("[\t\"a TO b] _seq_no:5 \"x\"", &["_seq_no"], &[]),
    // A backslash is literal in a range bound: `b\` then `]`.
    ("[a TO b\\] _seq_no:5", &["_seq_no"], &[]),
    ("_exists_:\"_seq_no\"", &["_seq_no"], &[]),
    ("_exists_ : \"\\u005fseq_no\"", &["_seq_no"], &[]),
    ("_exists_:a [_seq_no:1 TO 2]", &["a"], &["_seq_no"]),
    // Bounds and regular expressions are values: no field inside (to Lucene).
    ("[_seq_no:1 TO 5]", &[], &["_seq_no"]),
    ("{* TO _seq_no:5}", &[], &["_seq_no"]),
    ("/_seq_no:5/", &[], &["_seq_no"]),
    ("/a\\\\/ _seq_no:5 /", &[], &["_seq_no"]),
    ("a:[_seq_no:1 TO \"x]\"]", &["a"], &["_seq_no"]),
    ("a:/b:c/ AND d:e", &["a", "d"], &["b"]),
    ("\"_seq_no:5\" x:y", &["x"], &[]),
    ("x:\"a\\\" _seq_no:5\"", &["x"], &[]),
    // A boost's number ends at its digits (the `Boost` state's `NUMBER`): a name may follow.
    ("a^2_seq_no:5", &["_seq_no"], &[]),
    ("a^2.5_seq_no:5", &["_seq_no"], &[]),
    ("(a)^3_primary_term:1", &["_primary_term"], &[]),
];

/// Lucene classic query text built from the pieces its lexer states turn on (phrases, range
/// bounds, regular expressions, escapes, `_exists_`, Lucene's whitespace, boosts, fuzzy
/// marks, operators) and metadata names and patterns before colons, plain or escaped
/// (`\_`, `\u005f`): the texts where readers of field names part ways (`LUCENE_FIELDS`).
pub(crate) fn classic_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let fragment = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        "\"",
        "/",
        "\\",
        "\\/",
        "\\\"",
        " ",
        "\t",
        "\u{3000}",
        "TO",
        "*",
        "_seq_no",
        "_seq_no:5",
        ":",
        "a",
        "5",
        "_exists_:",
        "(",
        ")",
        "~",
        "^2",
        "!",
        "-",
        "^",
        "^2.5",
        "\\_",
        "\\u005f",
        "\\:",
        "\\ ",
        "?",
        "+",
        "&&",
        "||",
        " NOT ",
        "\n",
        ".",
        "_primary_term",
        "_exists_",
        "_*",
        "x*",
        "~2",
        "@",
    ]);
    prop::collection::vec(fragment, 0..16).prop_map(|v| v.concat())
}

/// Query text for the readers' property tests: fragments biased to the special characters
/// and words of the query grammars (Lucene classic and simple, KQL, SQL, ES|QL, EQL), with
/// whitespace of every kind, non-ASCII (é, U+3000, an emoji) and escapes cut short; or any
/// bytes read as UTF-8 lossily. Each reader must refuse what it cannot read, never panic,
/// and answer the same twice.
pub(crate) fn query_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let fragment = prop::sample::select(vec![
        "\\",
        "\"",
        ":",
        "!",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "/",
        "~",
        "^",
        "*",
        "?",
        "_",
        "<",
        ">",
        "=",
        ",",
        " ",
        "\t",
        "\n",
        "\r",
        "\u{3000}",
        "\u{a0}",
        "\u{e9}",
        "\u{1f600}",
        "'",
        "`",
        "|",
        "&",
        "-",
        "+",
        ".",
        "@",
        ";",
        "#",
        "%",
        "$",
        "a",
        "x1",
        "0",
        "5",
        "~2",
        "^2",
        "\\u",
        "\\u00",
        "\\u005f",
        "\\u005fid",
        "\\ud800",
        "\\uD83D",
        "\\uzzzz",
        "\\t",
        "\\n",
        "\\\"",
        "\"\"",
        "``",
        "''",
        "/*",
        "*/",
        "--",
        "//",
        "_id",
        "_seq_no",
        "_exists_",
        "_index",
        "_routing",
        "_version",
        "_tier",
        "KQL(",
        "QSTR(",
        "QUERY(",
        "MATCH(",
        "LIKE",
        "RLIKE",
        "BETWEEN",
        "STARTS_WITH(",
        "ENDS_WITH(",
        "like~",
        "regex",
        "startsWith(",
        " AND ",
        " OR ",
        " NOT ",
        " TO ",
        "SELECT ",
        " FROM ",
        " WHERE ",
        " AS ",
        "FROM logs-a ",
        "SELECT * FROM logs-a ",
        " | WHERE ",
        " METADATA _id ",
        " | EVAL ",
        "any where ",
        "sequence ",
        ",",
        "<=",
        ">=",
        "<>",
        "==",
        "!=",
    ]);
    let fragments = prop::collection::vec(fragment, 0..24).prop_map(|v| v.concat());
    let bytes = prop::collection::vec(any::<u8>(), 0..64)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    prop_oneof![4 => fragments, 1 => bytes, 1 => any::<String>()]
}

/// Each query-text reader timed on adversarial texts of 100 and 400 KB (a linear reader takes
/// four times as long on the second, a quadratic one sixteen times): `cargo test -p esgate-es --release --lib
/// adversarial_query_text_sizes -- --ignored --nocapture`. Prints, asserts nothing: not a
/// speed test (the machine is shared), a measurement for the report.
#[test]
#[ignore]
fn adversarial_query_text_sizes() {
    use crate::dsl::expansion::{check_text, Syntax};
    use std::time::Instant;
    /// A text's name and its maker (the text of about `n` bytes).
    type Maker = (&'static str, fn(usize) -> String);
    let texts: Vec<Maker> = vec![
        ("\\u", |n| "\\u".repeat(n / 2)),
        ("\\u005f", |n| "\\u005f".repeat(n / 6)),
        ("\"", |n| "\"".repeat(n)),
        ("\\\"", |n| "\\\"".repeat(n / 2)),
        ("a\"", |n| "a\"".repeat(n / 2)),
        ("{", |n| "{".repeat(n)),
        ("[", |n| "[".repeat(n)),
        ("[\"\\\"", |n| format!("[{}", "\"\\\"".repeat(n / 3))),
        ("[\"x ", |n| format!("[{}", "\"x ".repeat(n / 3))),
        ("[ \"\\\" \\\"", |n| {
            format!("[ \"{}", "\\\" ".repeat(n / 3))
        }),
        ("/", |n| "/".repeat(n)),
        ("a~", |n| "a~".repeat(n / 2)),
        ("_exists_:", |n| "_exists_:".repeat(n / 9)),
        ("_exists_:\"", |n| "_exists_:\"".repeat(n / 10)),
        ("_exists_: \\u005f", |n| "_exists_: \\u005f".repeat(n / 16)),
        ("a ", |n| "a ".repeat(n / 2)),
        ("é\u{3000}", |n| "é\u{3000}".repeat(n / 5)),
        ("x:", |n| "x:".repeat(n / 2)),
        ("\\", |n| "\\".repeat(n)),
    ];
    // The fastest of five runs (the machine is shared).
    let time = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    for (name, make) in &texts {
        for syntax in [Syntax::Classic, Syntax::Simple, Syntax::Kql] {
            let (half, full) = (make(100_000), make(400_000));
            let a = time(&|| drop(check_text(&half, syntax, &[])));
            let b = time(&|| drop(check_text(&full, syntax, &[])));
            println!("check_text {syntax:?} {name:?}: 100 KB {a:.2} ms, 400 KB {b:.2} ms");
        }
        let (half, full) = (make(100_000), make(400_000));
        let a = time(&|| drop(crate::dsl::fields::check_query_text(&half)));
        let b = time(&|| drop(crate::dsl::fields::check_query_text(&full)));
        println!("check_query_text {name:?}: 100 KB {a:.2} ms, 400 KB {b:.2} ms");
    }
    let langs: Vec<Maker> = vec![
        ("sql aliases", |n| {
            let items: Vec<String> = (0..n / 24).map(|i| format!("_id a{i}")).collect();
            let conds: Vec<String> = (0..n / 24).map(|i| format!("b{i} = 1")).collect();
            format!(
                "SELECT {} FROM logs-a WHERE {}",
                items.join(", "),
                conds.join(" AND ")
            )
        }),
        ("sql words", |n| {
            format!("SELECT * FROM logs-a WHERE {}", "_id x ".repeat(n / 6))
        }),
        ("sql quoted", |n| {
            format!("SELECT * FROM logs-a WHERE {}", "\"_id\" ".repeat(n / 6))
        }),
        ("sql <", |n| {
            format!("SELECT * FROM logs-a WHERE {}", "< ".repeat(n / 2))
        }),
        ("esql aliases", |n| {
            let evals: Vec<String> = (0..n / 30).map(|i| format!("| EVAL a{i} = _id ")).collect();
            format!(
                "FROM logs-a METADATA _id {}| WHERE a1 == \"b\"",
                evals.concat()
            )
        }),
        ("esql words", |n| {
            format!(
                "FROM logs-a METADATA _id | WHERE {}",
                "_id == \"b\" AND ".repeat(n / 16)
            )
        }),
        ("esql KQL(", |n| {
            format!("FROM logs-a | WHERE KQL(\"{}\")", "\\\\u".repeat(n / 3))
        }),
        ("esql QSTR(", |n| {
            format!("FROM logs-a | WHERE QSTR(\"{}\")", "{".repeat(n))
        }),
        ("eql", |n| {
            format!("any where {}", "_id == \"b\" and ".repeat(n / 16))
        }),
        ("eql :", |n| format!("any where {}", "_id : ".repeat(n / 6))),
    ];
    let filters = crate::testing::scope().filters;
    for (name, make) in &langs {
        let (half, full) = (make(100_000), make(400_000));
        let run = |q: &str| {
            if name.starts_with("sql") {
                drop(crate::querylang::sql::parse(q));
            } else if name.starts_with("esql") {
                drop(crate::querylang::esql::parse(q));
            } else {
                drop(crate::querylang::eql(
                    Some(serde_json::json!({ "query": q })),
                    &filters,
                ));
            }
        };
        let a = time(&|| run(&half));
        let b = time(&|| run(&full));
        println!("{name}: 100 KB {a:.2} ms, 400 KB {b:.2} ms");
    }
}

/// A property's configuration with `n` cases, or with `PROPTEST_CASES` cases when that is set:
/// `ProptestConfig::with_cases` alone ignores the variable, so a deeper run
/// (`PROPTEST_CASES=20000 cargo test -p esgate-es --lib`) would skip the properties that pin
/// their count.
pub(crate) fn cases(n: u32) -> proptest::test_runner::Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    proptest::test_runner::Config::with_cases(n)
}
