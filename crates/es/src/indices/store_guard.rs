//! esgate's own token store index (`[store] kind = "elasticsearch"`, issue #12) is out of reach
//! of every token, `all` included. Pure.
//!
//! - A `read` token reaches an index only through its own patterns (every concrete index and
//!   alias target is checked against them, `resolution.rs`), so a token with a pattern that
//!   allows the store index (its name, `.*`, `.e*`...) is refused outright: [`token_reaches`].
//!   The store index starts with `.` (config validation), so `*` never allows it (dot rule).
//! - An `all` token is passed through, so its request itself is read: [`request_reaches`]
//!   refuses any name or dot wildcard in the path, query or body (JSON strings and keys,
//!   decoded, split at anything that cannot be part of an index expression; a `source`
//!   parameter read like the body, parameters split at `&` and `;`) that the store
//!   index matches, any `expand_wildcards` that opens hidden indices to `*`/`_all`, date math
//!   whose format could spell a dot name, and alias changes over wildcards. A body that is not
//!   JSON or NDJSON (or is compressed) cannot be read and is refused. An `all` token is as
//!   strong as esgate's backend credential: cluster administration (security, snapshot APIs)
//!   has ways around any proxy check; keep the store in another cluster (`store.urls`) when
//!   `all` tokens go to parties that must not reach it.

use serde_json::Value;

use crate::indices::index::{glob_match, pattern_allows};
use crate::memory::Meter;
use crate::request::body::parse_value_within;
use crate::Rejection;

/// The token pattern that allows the store index, if any.
pub fn token_reaches<'a>(patterns: &'a [String], store: &str) -> Option<&'a str> {
    patterns
        .iter()
        .find(|p| pattern_allows(p, store))
        .map(String::as_str)
}

/// Why an `all` token's request may reach the store index, if it may. The body's trees are
/// claimed from `meter` as they are built (`Err`: its refusal).
pub fn request_reaches(
    store: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    meter: &Meter<'_>,
) -> Result<Option<&'static str>, Rejection> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let path = decode(path);
    if text_reaches(store, &path) {
        return Ok(Some("the path names esgate's token store index"));
    }
    // Alias actions may expand `*`/`_all` to hidden indices: an alias over the store index
    // would then open it to plain searches.
    let aliases = path.contains("/_alias");
    if aliases
        && path
            .split(['/', ','])
            .any(|seg| seg.contains('*') || seg == "_all")
    {
        return Ok(Some("alias changes over wildcards are refused while esgate's token store is in this cluster"));
    }
    if let Some(q) = query {
        // Split as Elasticsearch splits it, at `&` and at `;` (attack17b:
        // `?x=1;expand_wildcards=all` was one parameter `x` here, two there).
        for (k, v) in crate::request::params::raw_pairs(q) {
            let (k, v) = (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")));
            if text_reaches(store, &k) || text_reaches(store, &v) {
                return Ok(Some("the query names esgate's token store index"));
            }
            if names_expand_wildcards(&k) && opens_hidden(&v) {
                return Ok(Some(
                    "expand_wildcards may not open hidden indices (esgate's token store is one)",
                ));
            }
            // Elasticsearch reads a bodiless request's `source` parameter as its body
            // (`RestRequest.contentOrSourceParam`): read it as the body is read, JSON escapes
            // decoded (attack17b: `"\u002eesgate"` in it was not a name here, `.esgate` there).
            if k == "source" {
                if let Some(why) =
                    body_reaches(store, v.as_bytes(), aliases, "source parameter", meter)?
                {
                    return Ok(Some(why));
                }
            }
        }
    }
    if body.is_empty() {
        return Ok(None);
    }
    body_reaches(store, body, aliases, "body", meter)
}

/// Why a body (or a `source` parameter, `what`) may reach the store index, if it may: read as
/// JSON, else as NDJSON; anything else cannot be checked and is refused.
fn body_reaches(
    store: &str,
    body: &[u8],
    aliases: bool,
    what: &'static str,
    meter: &Meter<'_>,
) -> Result<Option<&'static str>, Rejection> {
    // Each value is read as serde_json reads it, its tree claimed from the meter (a refusal is
    // the answer), checked, then dropped and its claim returned (session 11 review: an `all`
    // token's `_bulk` body held every line's tree at once, tens of times its size). `None`: the
    // text is not JSON.
    let check = |bytes: &[u8]| -> Result<Option<Option<&'static str>>, Rejection> {
        let before = meter.used();
        let why = match parse_value_within(bytes, meter)? {
            Some(v) if aliases && wildcard_index(&v) => Some(Some("alias changes over wildcards are refused while esgate's token store is in this cluster")),
            Some(v) => Some(value_reaches(store, &v)),
            None => None,
        };
        meter.give(meter.used() - before);
        Ok(why)
    };
    let unreadable = || {
        Some(match what {
            "body" => "the body is not JSON or NDJSON, so it cannot be checked for esgate's token store index",
            _ => "the source parameter is not JSON or NDJSON, so it cannot be checked for esgate's token store index",
        })
    };
    if let Some(why) = check(body)? {
        return Ok(why);
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(unreadable());
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match check(line.as_bytes())? {
            Some(None) => {}
            Some(why) => return Ok(why),
            None => return Ok(unreadable()),
        }
    }
    Ok(None)
}

/// Whether an `index`/`indices` value anywhere in `v` holds a wildcard or `_all`.
fn wildcard_index(v: &Value) -> bool {
    fn wild(v: &Value) -> bool {
        match v {
            Value::String(s) => s.split(',').any(|p| p.contains('*') || p.trim() == "_all"),
            Value::Array(items) => items.iter().any(wild),
            _ => false,
        }
    }
    match v {
        Value::Array(items) => items.iter().any(wildcard_index),
        Value::Object(map) => map.iter().any(|(k, v)| {
            (matches!(k.as_str(), "index" | "indices") && wild(v)) || wildcard_index(v)
        }),
        _ => false,
    }
}

fn value_reaches(store: &str, v: &Value) -> Option<&'static str> {
    match v {
        Value::String(s) => {
            text_reaches(store, s).then_some("the body names esgate's token store index")
        }
        Value::Array(items) => items.iter().find_map(|i| value_reaches(store, i)),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if text_reaches(store, k) {
                return Some("the body names esgate's token store index");
            }
            if names_expand_wildcards(k) {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if opens_hidden(&text) {
                    return Some(
                        "expand_wildcards may not open hidden indices (esgate's token store is one)",
                    );
                }
            }
            value_reaches(store, v)
        }),
        _ => None,
    }
}

/// Whether a parameter or key names the index option that opens hidden indices to wildcards:
/// `expand_wildcards`, or `expandWildcards`, which Elasticsearch's `IndicesOptions.fromMap`
/// takes as well (an `_msearch` or `_msearch/template` header, a datafeed's
/// `indices_options`): attack22, `{"index":"*","expandWildcards":"all"}` in an `_msearch`
/// header passed the check that reads `expand_wildcards` only, and searched the store index.
/// Read without `_` and case, so every spelling of the two is caught (over-refusing odd ones).
fn names_expand_wildcards(key: &str) -> bool {
    key.bytes()
        .filter(|b| *b != b'_')
        .map(|b| b.to_ascii_lowercase())
        .eq(b"expandwildcards".iter().copied())
}

fn opens_hidden(v: &str) -> bool {
    let v = v.to_ascii_lowercase();
    v.contains("all") || v.contains("hidden")
}

/// Whether a text holds a word that names the store index or is a dot wildcard matching it.
/// Words are split at anything an index expression cannot contain, after lowercasing (index
/// names are lowercase; a cluster refuses others, so nothing is lost by folding).
/// A text percent-decoded is read too: a body's string can be a URL a cluster feature
/// requests with the backend's credentials (a watch's `http` input `path`,
/// `/%2Eesgate/_search`: attack17b).
fn text_reaches(store: &str, text: &str) -> bool {
    text_reaches_as_is(store, text)
        || (text.contains('%')
            && text_reaches_as_is(
                store,
                &percent_encoding::percent_decode_str(text).decode_utf8_lossy(),
            ))
}

/// [`text_reaches`] for the text as it is.
fn text_reaches_as_is(store: &str, text: &str) -> bool {
    let lower = text.to_lowercase();
    if lower.contains(store) {
        return true;
    }
    // Date math (`<static{date_math{format}}>`) can spell a dot name through its format (a
    // quoted literal): refuse any whose static part does not fix a first character other
    // than a dot.
    let mut rest = lower.as_str();
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if let Some(j) = rest.find('{') {
            let prefix = &rest[..j];
            if !prefix.contains('>') && (prefix.is_empty() || prefix.starts_with('.')) {
                return true;
            }
        }
    }
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '-' | '_' | '?')))
        .filter(|w| w.starts_with('.') || w.starts_with('*') || w.contains(":."))
        .any(|w| {
            // `cluster:.esg*` (cross-cluster) names the same shape; `?` is not a wildcard in
            // index expressions but may be in query languages: read it as `*`.
            let w = w.rsplit(':').next().unwrap_or(w).replace('?', "*");
            w.starts_with('.') && w.contains('*') && glob_match(&w, store)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = ".esgate";

    /// Session 11: an `all` token's body is read into trees to look for the store index; they
    /// are claimed from the meter, so a body of small numbers (and its NDJSON reading) stops
    /// at the budget with the meter's refusal instead of holding 36 times its size; a value's
    /// claim is returned once it is checked.
    #[test]
    fn the_bodys_trees_are_claimed_from_the_meter() {
        use crate::memory::{budget, Refused};
        use crate::RejectKind;
        let dense = format!(
            r#"{{"index":"logs","n":[{}]}}"#,
            vec!["1"; 50_000].join(",")
        );
        let ndjson = format!("{{\"index\":{{}}}}\n{dense}\n");
        for body in [&dense, &ndjson] {
            let small = budget(1 << 20, Refused::Busy);
            let err = request_reaches(STORE, "/_bulk", None, body.as_bytes(), &Meter::new(&small))
                .unwrap_err();
            assert_eq!(err.kind, RejectKind::Busy);
            let most = std::cell::Cell::new(0);
            let record = |total: usize| {
                most.set(most.get().max(total));
                Ok(())
            };
            let all = Meter::new(&record);
            assert_eq!(
                request_reaches(STORE, "/_bulk", None, body.as_bytes(), &all),
                Ok(None)
            );
            assert!(most.get() >= 50_000 * std::mem::size_of::<Value>());
            assert_eq!(
                all.used(),
                0,
                "each value's claim is returned once it is checked"
            );
        }
    }

    #[test]
    fn read_token_patterns_that_allow_the_store_are_found() {
        let cases: &[(&[&str], bool)] = &[
            (&["*"], false),
            (&["logs-*"], false),
            (&[".*"], true),
            (&[".e*"], true),
            (&[".esgate"], true),
            (&[".esgate*"], true),
            (&[".kibana*"], false),
            (&["logs-*", ".es*"], true),
        ];
        for (p, want) in cases {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            assert_eq!(token_reaches(&p, STORE).is_some(), *want, "{p:?}");
        }
    }

    #[test]
    fn all_token_requests_naming_the_store_are_found() {
        let reach: &[(&str, Option<&str>, &str)] = &[
            ("/.esgate/_search", None, ""),
            ("/%2Eesgate/_search", None, ""),
            ("/.ESGATE/_doc/x", None, ""),
            ("/.*/_search", None, ""),
            ("/.e*,logs/_search", None, ""),
            ("/logs,.es*/_search", None, ""),
            ("/_search", Some("expand_wildcards=all"), ""),
            ("/*/_search", Some("expand_wildcards=open,hidden"), ""),
            // Elasticsearch separates parameters at `;` too.
            ("/_all/_search", Some("size=1;expand_wildcards=all"), ""),
            ("/*/_count", Some("x=1;expand_wildcards=hidden&y=2"), ""),
            ("/_cat/indices", Some("v;index=.esgate"), ""),
            // A URL in a body (a watch's http input) is decoded by the server it reaches.
            (
                "/_watcher/watch/w",
                None,
                r#"{"input":{"http":{"request":{"host":"localhost","port":9200,"path":"/%2Eesgate/_search"}}}}"#,
            ),
            // A `source` parameter is the body of a bodiless request, JSON escapes and all.
            (
                "/_mget",
                Some(r#"source={"docs":[{"_index":"\u002eesgate","_id":"a"}]}&source_content_type=application/json"#),
                "",
            ),
            (
                "/_mget",
                Some("source=%7B%22docs%22%3A%5B%7B%22_index%22%3A%22%5Cu002eesgate%22%2C%22_id%22%3A%22a%22%7D%5D%7D&source_content_type=application/json"),
                "",
            ),
            (
                "/_msearch",
                Some(r#"source_content_type=application/x-ndjson&source={"index":"\u002ees*"}%0A{}%0A"#),
                "",
            ),
            ("/_search", Some("source=query:%20x&source_content_type=application/yaml"), ""),
            ("/_cat/indices", Some("index=.esgate"), ""),
            (
                "/_mget",
                None,
                r#"{"docs":[{"_index":".esgate","_id":"token:a"}]}"#,
            ),
            (
                "/_mget",
                None,
                r#"{"docs":[{"_index":"\u002eesgate","_id":"a"}]}"#,
            ),
            (
                "/_bulk",
                None,
                "{\"index\":{\"_index\":\".esgate\"}}\n{\"a\":1}\n",
            ),
            ("/_msearch", None, "{\"index\":\".e*\"}\n{}\n"),
            // attack22: Elasticsearch reads an `_msearch` header's (and a datafeed's
            // `indices_options`) `expandWildcards` as `expand_wildcards`.
            (
                "/_msearch",
                None,
                "{\"index\":\"*\",\"expandWildcards\":\"all\"}\n{}\n",
            ),
            (
                "/_msearch/template",
                None,
                "{\"index\":\"*\",\"expandWildcards\":[\"open\",\"hidden\"]}\n{\"id\":\"t\"}\n",
            ),
            (
                "/_ml/datafeeds/d",
                None,
                r#"{"indices":["*"],"indices_options":{"expandWildcards":"all"},"job_id":"j"}"#,
            ),
            (
                "/_aliases",
                None,
                r#"{"actions":[{"add":{"index":".es*","alias":"x"}}]}"#,
            ),
            (
                "/_reindex",
                None,
                r#"{"source":{"index":".esgate"},"dest":{"index":"copy"}}"#,
            ),
            ("/_sql", None, r#"{"query":"SELECT * FROM \".esgate\""}"#),
            ("/_query", None, r#"{"query":"FROM .es* | LIMIT 10"}"#),
            (
                "/_search",
                None,
                r#"{"query":{"match_all":{}},"expand_wildcards":"all"}"#,
            ),
            ("/x/_doc", None, "\x00\x01binary"),
            ("/_search", None, "not json at all"),
            ("/_search", Some("index=remote:.esg*"), ""),
            ("/%3C.esg%7Bnow%7B'ate'%7D%7D%3E/_search", None, ""),
            ("/%3C%7Bnow%7B'.esgate'%7D%7D%3E/_search", None, ""),
            (
                "/_msearch",
                None,
                "{\"index\":\"<.esg{now{'ate'}}>\"}\n{}\n",
            ),
            ("/*/_alias/peek", None, ""),
            ("/_all/_aliases/peek", None, ""),
            (
                "/_aliases",
                None,
                r#"{"actions":[{"add":{"index":"*","alias":"peek"}}]}"#,
            ),
            (
                "/_aliases",
                None,
                r#"{"actions":[{"add":{"indices":["logs","_all"],"alias":"p"}}]}"#,
            ),
        ];
        for (path, query, body) in reach {
            assert!(
                request_reaches(STORE, path, *query, body.as_bytes(), &Meter::unlimited())
                    .unwrap()
                    .is_some(),
                "{path} {query:?} {body}"
            );
        }
        let fine: &[(&str, Option<&str>, &str)] = &[
            (
                "/logs-*/_search",
                None,
                r#"{"query":{"match":{"msg":"esgate is great"}}}"#,
            ),
            ("/_search", Some("expand_wildcards=open"), ""),
            (
                "/_msearch",
                None,
                "{\"index\":\"*\",\"expandWildcards\":\"open\"}\n{}\n",
            ),
            (
                "/_search",
                Some(r#"source={"query":{"match_all":{}}}&source_content_type=application/json"#),
                "",
            ),
            ("/.kibana/_search", None, ""),
            ("/.kibana*/_search", None, ""),
            (
                "/_bulk",
                None,
                "{\"index\":{\"_index\":\"logs\"}}\n{\"a\":1}\n",
            ),
            ("/", None, ""),
            ("/%3Clogs-%7Bnow%2Fd%7D%3E/_search", None, ""),
            (
                "/_aliases",
                None,
                r#"{"actions":[{"add":{"index":"logs-1","alias":"logs"}}]}"#,
            ),
            (
                "/_search",
                None,
                r#"{"query":{"query_string":{"query":"a < b"}}}"#,
            ),
        ];
        for (path, query, body) in fine {
            assert!(
                request_reaches(STORE, path, *query, body.as_bytes(), &Meter::unlimited())
                    .unwrap()
                    .is_none(),
                "{path} {query:?} {body}"
            );
        }
    }
}
