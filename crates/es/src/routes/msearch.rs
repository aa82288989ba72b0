//! `_msearch` NDJSON (security.md E8, C7): strict line framing, header allow-list, per-header
//! index checks and a rewrite of every body like `_search`, each within the token's cost
//! limits, its doc-id sort values sealed per search; at most 64 distinct index expressions
//! (each is one resolve call), narrowed in their headers by `authorize`.
//!
//! Invariant: the forwarded NDJSON is built here from parsed values: one header and one body per
//! search, every header carrying an explicit, checked `index` array and `expand_wildcards:
//! open`, every body wrapped by [`rewrite::search`]. Framing that ES could read differently
//! (empty lines, CR, a missing final newline, a lone header) is rejected, as are header keys not
//! on the list (`indices`, camelCase aliases, `ccs_minimize_roundtrips`, ...).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{Request, Shape, Spec, Upstream};
use crate::dsl::json::{Obj, J};
use crate::ids::ordinals::{self, SortSeal};
use crate::indices::index::{self, Expression};
use crate::request::body::{self, Media};
use crate::request::params::{Kind, ParamSet};
use crate::request::tree::{self, Node, Parsed};
use crate::{dsl::rewrite, error, FilterSet, ForwardBody, Method, Rejection};

const PARAMS: &[(&str, Kind)] = &[
    ("max_concurrent_searches", Kind::Uint),
    ("max_concurrent_shard_requests", Kind::Uint),
    ("pre_filter_shard_size", Kind::Uint),
    ("rest_total_hits_as_int", Kind::Bool),
    ("typed_keys", Kind::Bool),
    ("search_type", Kind::OneOf(&["query_then_fetch"])),
];

pub(crate) const MSEARCH: Spec = Spec {
    action: "msearch",
    params: ParamSet::own(PARAMS).indices_options(),
    index: true,
    body: true,
    dialect: None,
    prepare,
};

/// Most distinct index expressions in one `_msearch` (Grafana dashboards use a handful).
pub(crate) const MAX_EXPRESSIONS: usize = 64;

const NDJSON: &str = "application/x-ndjson";

/// Every search rewritten ([`rewrite`]) and limited, doc-id sort values sealed per search, the
/// distinct header expressions to resolve, the NDJSON forwarded.
fn prepare(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    if let Some(up) = on_tree(req) {
        return Ok(up);
    }
    prepare_serde(req)
}

/// [`prepare`] on the borrowed request tree (issue 10, goal 6), as `search::on_tree` does for
/// one search: every body through `rewrite::search_tree`, the cost guard's checks over [`J`],
/// no doc-id sort anywhere (`ordinals::plain_is_noop`), the bodies written by `tree::write`.
/// `None` (and `req` as it was) for every other msearch and every refusal: [`prepare_serde`]
/// decides those. `tree_matches_serde` (tests) holds the two paths to the same answers.
fn on_tree(req: &mut Request<'_>) -> Option<Upstream> {
    #[cfg(test)]
    if super::search::tests::SERDE_ONLY.with(std::cell::Cell::get) {
        return None;
    }
    let scope = req.scope;
    let raw = req.raw_body.filter(|b| !b.is_empty())?;
    if req.head.content_encoding.is_some() || raw.len() > req.max_body {
        return None;
    }
    if body::check_content_type(req.head.content_type, Media::Ndjson).is_err()
        && body::check_content_type(req.head.content_type, Media::Json).is_err()
    {
        return None;
    }
    // Every line's tree, headers' too: one arena for the request.
    let arena = tree::Arena::for_body(raw.len());
    let mut trees = Vec::new();
    // Each body's length: its output buffer's size (the output is the body and the filter).
    let mut lengths = Vec::new();
    let mut items = read_lines(
        raw,
        req.index.as_ref(),
        &scope.indices,
        Headers::Tree(&arena),
        |line| {
            let tree = tree::parse(line, &arena)?;
            if tree.object_len().is_none() {
                return Err(Rejection::bad_request("msearch body must be a JSON object"));
            }
            match rewrite::search_tree(tree, line, &scope.filters)? {
                Some(out) => {
                    trees.push(out);
                    lengths.push(line.len());
                    Ok(Value::Null)
                }
                // Left to the serde path.
                None => Err(Rejection::bad_request("msearch body not on the tree path")),
            }
        },
    )
    .ok()?;
    let mut timeouts = Vec::with_capacity(trees.len());
    for out in &trees {
        if !ordinals::plain_is_noop(J::from(out)) {
            return None;
        }
        let Node::Object(entries) = out else {
            return None;
        };
        timeouts.push(
            scope
                .guard
                .search_checked(Obj::N(entries), &mut Vec::new())
                .ok()?,
        );
    }
    let mut to_resolve: Vec<String> = Vec::new();
    for item in &items {
        let joined = item.index.joined();
        if !to_resolve.contains(&joined) {
            to_resolve.push(joined);
        }
    }
    if to_resolve.len() > MAX_EXPRESSIONS {
        return None;
    }
    let mut bodies = Vec::with_capacity(trees.len());
    for ((mut out, timeout), length) in trees.into_iter().zip(timeouts).zip(lengths) {
        if let (Node::Object(entries), Some(timeout)) = (&mut out, timeout) {
            entries.set("timeout", Node::String(Cow::Owned(timeout)));
        }
        let mut bytes = Vec::with_capacity(length + 256);
        tree::write(&out, &mut bytes);
        bodies.push(bytes);
    }
    let forward = forward_body(&items, &bodies).ok()?;
    for item in &mut items {
        item.body = Value::Null;
    }
    let mut up = Upstream::fixed(Method::Post, "/_msearch").body(forward);
    up.to_resolve = to_resolve;
    up.shape = Shape::Msearch(items, bodies);
    #[cfg(test)]
    super::search::tests::TREE_TAKEN.with(|n| n.set(n.get() + 1));
    Some(up)
}

/// [`prepare`] through serde_json's trees: every msearch the tree path leaves to it.
fn prepare_serde(req: &mut Request<'_>) -> Result<Upstream, Rejection> {
    let scope = req.scope;
    let Some(raw) = req.raw_body.filter(|b| !b.is_empty()) else {
        return Err(Rejection::bad_request("msearch needs a request body"));
    };
    if body::check_content_type(req.head.content_type, Media::Ndjson).is_err() {
        body::check_content_type(req.head.content_type, Media::Json)?;
    }
    let bytes = body::decode_content(raw, req.head.content_encoding, req.max_body)?;
    let mut items = rewrite(&bytes, req.index.as_ref(), &scope.indices, &scope.filters)?;
    for (i, item) in items.iter_mut().enumerate() {
        scope
            .guard
            .search(&mut item.body, &mut Vec::new())
            .map_err(|mut r| {
                r.reason = format!("msearch search {}: {}", i + 1, r.reason);
                r
            })?;
    }
    let mut positions = Vec::with_capacity(items.len());
    for item in &mut items {
        let joined = item.index.joined();
        let mode = ordinals::Mode::Plain {
            expression: &joined,
        };
        positions.push(ordinals::prepare(&mut item.body, mode, &scope.ids)?);
    }
    let mut to_resolve: Vec<String> = Vec::new();
    for item in &items {
        let joined = item.index.joined();
        if !to_resolve.contains(&joined) {
            to_resolve.push(joined);
        }
    }
    // Each distinct expression costs a resolve call before anything is forwarded.
    if to_resolve.len() > MAX_EXPRESSIONS {
        return Err(Rejection::bad_request(format!(
            "an msearch may name at most {MAX_EXPRESSIONS} distinct index expressions; split it"
        )));
    }
    let bodies = render_bodies(&items)?;
    let forward = forward_body(&items, &bodies)?;
    // The trees are not needed past here: the serialised bodies are reused.
    for item in &mut items {
        item.body = Value::Null;
    }
    let mut up = Upstream::fixed(Method::Post, "/_msearch").body(forward);
    up.to_resolve = to_resolve;
    up.shape = Shape::Msearch(items, bodies);
    if positions.iter().any(Option::is_some) {
        up.sort_seal = Some(SortSeal::Msearch(positions));
    }
    Ok(up)
}

/// The NDJSON body to forward for `items`, whose bodies are already serialised in `bodies`
/// (also after `authorize` narrowed their headers' indices).
pub(crate) fn forward_body(items: &[Item], bodies: &[Vec<u8>]) -> Result<ForwardBody, Rejection> {
    Ok(ForwardBody {
        bytes: to_ndjson_with(items, bodies)?,
        content_type: NDJSON,
    })
}

/// One checked search of an `_msearch`.
#[derive(Clone, Debug)]
pub struct Item {
    pub index: Expression,
    pub header: Map<String, Value>,
    pub body: Value,
}

/// Parses, checks and rewrites an NDJSON body. `path_index` is the already checked path
/// expression (used when a header names no index); `patterns` the token's allowed patterns.
pub fn rewrite(
    ndjson: &[u8],
    path_index: Option<&Expression>,
    patterns: &[String],
    filters: &FilterSet,
) -> Result<Vec<Item>, Rejection> {
    read_lines(ndjson, path_index, patterns, Headers::Serde, |line| {
        let body = body::parse_strict(line)?;
        if !body.is_object() {
            return Err(Rejection::bad_request("msearch body must be a JSON object"));
        }
        rewrite::search(Some(body), filters)
    })
}

/// How [`read_lines`] reads header lines.
#[derive(Clone, Copy)]
enum Headers<'t> {
    /// `parse_strict` and [`check_header`]: the reference, and every refusal's reason.
    Serde,
    /// [`check_header_tree`] (the tree path): the same acceptance and the same header, any
    /// refusal left to the serde path for its reason. Their trees in the request's arena.
    Tree(&'t tree::Arena),
}

/// The framing and headers of an NDJSON body checked, each body line given to `body` (in
/// order, after its header is checked).
fn read_lines<'a>(
    ndjson: &'a [u8],
    path_index: Option<&Expression>,
    patterns: &[String],
    headers: Headers<'_>,
    mut body: impl FnMut(&'a [u8]) -> Result<Value, Rejection>,
) -> Result<Vec<Item>, Rejection> {
    if ndjson.is_empty() {
        return Err(Rejection::bad_request("msearch needs a request body"));
    }
    if !ndjson.ends_with(b"\n") {
        return Err(Rejection::bad_request(
            "the msearch request must be terminated by a newline [\\n]",
        ));
    }
    if memchr::memchr(b'\r', ndjson).is_some() {
        return Err(Rejection::bad_request(
            "msearch lines must end with \\n only",
        ));
    }
    let content = &ndjson[..ndjson.len() - 1];
    let lines = split_lines(content);
    if !lines.len().is_multiple_of(2) {
        return Err(Rejection::bad_request(
            "msearch needs a body line after every header line",
        ));
    }
    let mut items = Vec::with_capacity(lines.len() / 2);
    let mut last_index = None;
    for pair in lines.chunks(2) {
        let (header_line, body_line) = match pair {
            [h, b] => (*h, *b),
            _ => {
                return Err(Rejection::bad_request(
                    "msearch needs a body line after every header line",
                ))
            }
        };
        if header_line.iter().all(u8::is_ascii_whitespace)
            || body_line.iter().all(u8::is_ascii_whitespace)
        {
            return Err(Rejection::bad_request("msearch lines must not be empty"));
        }
        let (index, header) = match headers {
            Headers::Serde => {
                let header = match body::parse_strict(header_line)? {
                    Value::Object(m) => m,
                    _ => {
                        return Err(Rejection::bad_request(
                            "msearch header must be a JSON object",
                        ))
                    }
                };
                check_header(header, path_index, patterns, &mut last_index)?
            }
            Headers::Tree(arena) => {
                check_header_tree(header_line, arena, path_index, patterns, &mut last_index)?
            }
        };
        let body = body(body_line)?;
        items.push(Item {
            index,
            header,
            body,
        });
    }
    Ok(items)
}

/// `content` split at every `\n`, as `content.split(|b| *b == b'\n')` splits it (the empty
/// pieces included), the newlines found by a vectorised search (issue 10: the byte-by-byte
/// split was a twentieth of a 20-search msearch).
fn split_lines(content: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::with_capacity(64);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', content) {
        lines.push(&content[start..end]);
        start = end + 1;
    }
    lines.push(&content[start..]);
    lines
}

/// Serialises the items as NDJSON (final newline included).
pub fn to_ndjson(items: &[Item]) -> Result<Vec<u8>, Rejection> {
    to_ndjson_with(items, &render_bodies(items)?)
}

/// Each item's body serialised, once: the forwarded NDJSON is built twice when the header
/// indices are narrowed (`prepare`, then `authorize`), the bodies are the same both times
/// (issue 10: serialising them again was a fifth of an msearch's cost).
pub fn render_bodies(items: &[Item]) -> Result<Vec<Vec<u8>>, Rejection> {
    items
        .iter()
        .map(|item| {
            serde_json::to_vec(&item.body)
                .map_err(|_| Rejection::bad_request("msearch body could not be serialised"))
        })
        .collect()
}

/// [`to_ndjson`] with the bodies already serialised by [`render_bodies`] (one per item).
pub fn to_ndjson_with(items: &[Item], bodies: &[Vec<u8>]) -> Result<Vec<u8>, Rejection> {
    ndjson(items, bodies, |item| item.index.elements())
}

/// [`forward_body`] once `authorize` narrowed expressions (`narrowed`: an expression as
/// joined, and the names to forward in its place): each header names the names its
/// expression narrowed to (the first entry for it), or its own. The same bytes as setting
/// each item's index to those names and calling [`forward_body`], without a copy of the names
/// per item (issue 10).
pub(crate) fn forward_narrowed(
    items: &[Item],
    bodies: &[Vec<u8>],
    narrowed: &[(String, Vec<String>)],
) -> Result<ForwardBody, Rejection> {
    let bytes = ndjson(items, bodies, |item| {
        let own = item.index.elements();
        narrowed
            .iter()
            .find(|(e, _)| is_joined(e, own))
            .map_or(own, |(_, names)| names.as_slice())
    })?;
    Ok(ForwardBody {
        bytes,
        content_type: NDJSON,
    })
}

/// Whether `text == elements.join(",")`, without building the joined string.
fn is_joined(text: &str, elements: &[String]) -> bool {
    let mut rest = text;
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(e.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// The NDJSON of `items` and their serialised `bodies`, each header naming `names_of` its item.
fn ndjson<'a>(
    items: &'a [Item],
    bodies: &[Vec<u8>],
    names_of: impl Fn(&'a Item) -> &'a [String],
) -> Result<Vec<u8>, Rejection> {
    if items.len() != bodies.len() {
        return Err(Rejection::bad_request(
            "msearch body could not be serialised",
        ));
    }
    let mut out = Vec::with_capacity(bodies.iter().map(|b| b.len() + 128).sum());
    for (item, body) in items.iter().zip(bodies) {
        write_header(&mut out, &item.header, names_of(item))
            .map_err(|_| Rejection::bad_request("msearch header could not be serialised"))?;
        out.push(b'\n');
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    Ok(out)
}

/// One item's header line (without its newline): byte for byte what serde_json writes for
/// the header with `index` set to the item's names and `expand_wildcards` to `open` (each
/// replaced in place when the header has it, appended in that order when not), written
/// straight from the entries instead of through a cloned map (issue 10: the clone, the two
/// inserts and the map serialisation were a tenth of a 20-search msearch, done twice), its
/// strings by the request tree's writer (serde_json's escapes, without its serialiser).
/// `header_lines_match_serde` (tests) holds it to the map's bytes.
fn write_header(
    out: &mut Vec<u8>,
    header: &Map<String, Value>,
    names: &[String],
) -> serde_json::Result<()> {
    let write_index = |out: &mut Vec<u8>| {
        out.push(b'[');
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            tree::write_str(name, out);
        }
        out.push(b']');
    };
    let (mut index_done, mut expand_done) = (false, false);
    out.push(b'{');
    for (i, (k, v)) in header.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        tree::write_str(k, out);
        out.push(b':');
        match k.as_str() {
            "index" => {
                index_done = true;
                write_index(out);
            }
            "expand_wildcards" => {
                expand_done = true;
                out.extend_from_slice(b"\"open\"");
            }
            _ => match v {
                Value::String(s) => tree::write_str(s, out),
                other => serde_json::to_writer(&mut *out, other)?,
            },
        }
    }
    let mut first = header.is_empty();
    if !index_done {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"\"index\":");
        write_index(out);
    }
    if !expand_done {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"\"expand_wildcards\":\"open\"");
    }
    out.push(b'}');
    Ok(())
}

/// The header keys a token may send besides `index`, and whether `v` is an allowed value of
/// `key` (`None`: the key is not allowed at all). Both header readers use it.
fn header_value_ok(key: &str, v: J<'_>) -> Option<bool> {
    Some(match key {
        "search_type" => v.as_str() == Some("query_then_fetch"),
        "expand_wildcards" => v.as_str() == Some("open"),
        "preference" | "routing" => v.is_string(),
        "request_cache"
        | "allow_partial_search_results"
        | "ignore_unavailable"
        | "allow_no_indices" => v.is_boolean(),
        _ => return None,
    })
}

/// The index text a header's `index` value names: `None` for a missing key, an empty string
/// or an empty array (like no key); an array's strings joined with commas.
fn index_text(value: Option<J<'_>>) -> Result<Option<Cow<'_, str>>, Rejection> {
    Ok(match value {
        None => None,
        Some(J::String("")) => None,
        Some(J::Array(a)) if a.is_empty() => None,
        Some(J::String(s)) => Some(Cow::Borrowed(s)),
        Some(J::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for item in items.iter() {
                match item {
                    J::String(s) => names.push(s),
                    _ => {
                        return Err(Rejection::bad_request(
                            "msearch header index must be strings",
                        ))
                    }
                }
            }
            Some(Cow::Owned(names.join(",")))
        }
        Some(_) => {
            return Err(Rejection::bad_request(
                "msearch header index must be a string or an array",
            ))
        }
    })
}

/// The expression a header names (`text`), else the path's, else the token's patterns.
/// `last` keeps the previous header's text and expression: dashboards name the same index in
/// every header, and `index::parse` depends only on the text and the patterns.
fn expression(
    text: Option<Cow<'_, str>>,
    path_index: Option<&Expression>,
    patterns: &[String],
    last: &mut Option<(String, Expression)>,
) -> Result<Expression, Rejection> {
    Ok(match text {
        None => match path_index {
            Some(p) => p.clone(),
            None => index::default_expression(patterns)?,
        },
        Some(text) => match last {
            Some((t, e)) if *t == *text => e.clone(),
            _ => {
                let e = index::parse(Some(&text), patterns)?;
                *last = Some((text.into_owned(), e.clone()));
                e
            }
        },
    })
}

fn check_header(
    mut header: Map<String, Value>,
    path_index: Option<&Expression>,
    patterns: &[String],
    last: &mut Option<(String, Expression)>,
) -> Result<(Expression, Map<String, Value>), Rejection> {
    let index_value = header.remove("index");
    for (k, v) in &header {
        let Some(ok) = header_value_ok(k, J::from(v)) else {
            return Err(Rejection::forbidden(format!(
                "msearch header key [{}] is not allowed for this token",
                error::printable(k)
            )));
        };
        if !ok {
            return Err(Rejection::forbidden(format!(
                "msearch header key [{k}] has a value that is not allowed"
            )));
        }
    }
    let text = index_text(index_value.as_ref().map(J::from))?;
    let index = expression(text, path_index, patterns, last)?;
    Ok((index, header))
}

/// [`check_header`] of a header line read by the request tree (issue 10: serde_json's map and
/// its hashing were a tenth of a 20-search msearch), for the tree path: it accepts exactly the
/// lines `parse_strict` and `check_header` accept and gives the same expression and header map
/// (the same entries in the same order); what it refuses, the serde path refuses too and
/// words. `header_shapes_match_serde` (tests) holds the two to it. `last`: as in `expression`.
fn check_header_tree(
    line: &[u8],
    arena: &tree::Arena,
    path_index: Option<&Expression>,
    patterns: &[String],
    last: &mut Option<(String, Expression)>,
) -> Result<(Expression, Map<String, Value>), Rejection> {
    let refused = || Rejection::bad_request("msearch header left to the serde path");
    let Node::Parsed(header) = tree::parse(line, arena)? else {
        return Err(refused());
    };
    if !header.is_object() {
        return Err(refused());
    }
    // A header has a few entries, each `Copy`: read out of the tape into a `Vec`, the
    // `index` one removed as serde_json's `remove` does (a swap-remove: the last entry takes
    // its place), so the others are checked and kept in the same order.
    let mut entries: Vec<(&str, Parsed<'_>)> = header.entries().collect();
    let index_value = entries
        .iter()
        .position(|(k, _)| *k == "index")
        .map(|i| entries.swap_remove(i).1);
    for (k, v) in &entries {
        if header_value_ok(k, J::from(*v)) != Some(true) {
            return Err(refused());
        }
    }
    // Every value left is a string or a boolean: the same `Value` serde_json reads.
    let mut header = Map::with_capacity(entries.len());
    for (k, v) in entries {
        let value = match v.tokens().item() {
            tree::Item::String(s) => Value::String(s.to_string()),
            tree::Item::Bool(b) => Value::Bool(b),
            _ => return Err(refused()),
        };
        header.insert(k.to_string(), value);
    }
    let text = index_text(index_value.map(J::from))?;
    let index = expression(text, path_index, patterns, last)?;
    Ok((index, header))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RejectKind;

    fn pats() -> Vec<String> {
        vec!["logs-*".to_string()]
    }

    fn tenant_a() -> FilterSet {
        FilterSet::new([("tenant".to_string(), "a".to_string())])
    }

    fn wrapped(q: Value) -> Value {
        json!({"bool":{"filter":[{"term":{"tenant":{"value":"a"}}}],"must":[q]}})
    }

    fn run(s: &str) -> Result<Vec<Item>, Rejection> {
        rewrite(s.as_bytes(), None, &pats(), &tenant_a())
    }

    #[test]
    fn rewrites_every_body_and_fixes_every_header_index() {
        let items = run("{\"index\":\"logs-a\"}\n{\"query\":{\"match_all\":{}}}\n{}\n{}\n{\"index\":[\"logs-a\",\"logs-b\"],\"preference\":\"x\"}\n{\"size\":1}\n").unwrap();
        assert_eq!(items.len(), 3); // BODY-46: all bodies, not only the first
        for item in &items {
            assert_eq!(
                item.body["query"]["bool"]["filter"],
                json!([{"term":{"tenant":{"value":"a"}}}])
            );
        }
        assert_eq!(items[0].body["query"], wrapped(json!({"match_all":{}})));
        assert_eq!(items[1].index.elements(), &["logs-*".to_string()]);
        assert_eq!(
            items[2].index.elements(),
            &["logs-a".to_string(), "logs-b".to_string()]
        );

        let out = to_ndjson(&items).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[0],
            json!({"index":["logs-a"],"expand_wildcards":"open"})
        );
        assert_eq!(
            lines[4],
            json!({"index":["logs-a","logs-b"],"preference":"x","expand_wildcards":"open"})
        );
        assert_eq!(lines[5]["size"], json!(1));
    }

    #[test]
    fn header_without_index_falls_back_to_the_path_index() {
        let path = index::parse(Some("logs-b"), &pats()).unwrap();
        let body = b"{}\n{}\n{\"index\":\"\"}\n{}\n{\"index\":[]}\n{}\n{\"index\":\"_all\"}\n{}\n";
        let items = rewrite(body, Some(&path), &pats(), &tenant_a()).unwrap();
        assert_eq!(items[0].index, path);
        assert_eq!(items[1].index, path);
        assert_eq!(items[2].index, path);
        assert_eq!(items[3].index.elements(), &["logs-*".to_string()]);
    }

    #[test]
    fn rejects_framing_ambiguities() {
        let cases = [
            "{}\n{}",                         // ENC-27 missing final newline
            "\n{\"index\":\"secret\"}\n{}\n", // ENC-24/25 empty header line
            "{}\n\n{}\n{}\n",                 // empty body line
            "{}\r\n{}\r\n",                   // ENC-26 CRLF
            "{}\n",                           // header without body
            "",
            "{}\n{} {}\n", // trailing tokens
            "[]\n{}\n",
            "{}\nnull\n",
            "{\"a\":1,\"a\":2}\n{}\n",
        ];
        for c in cases {
            let err = run(c).unwrap_err();
            assert_eq!(err.kind, RejectKind::BadRequest, "{c:?}");
        }
    }

    #[test]
    fn rejects_header_overrides_and_foreign_indices() {
        let cases = [
            "{\"index\":\"secret\"}\n{}\n",
            "{\"indices\":[\"secret\"]}\n{}\n",    // IDX-35
            "{\"ignoreUnavailable\":true}\n{}\n",  // IDX-36
            "{\"expandWildcards\":\"all\"}\n{}\n", // IDX-37
            "{\"expand_wildcards\":\"all\"}\n{}\n",
            "{\"search_type\":\"dfs_query_then_fetch\"}\n{}\n", // ENC-28
            "{\"ccs_minimize_roundtrips\":false}\n{}\n",
            "{\"index\":\"logs-*:secret\"}\n{}\n",
            "{}\n{\"aggs\":{\"g\":{\"global\":{}}}}\n", // BODY-47
            "{}\n{}\n{}\n{\"runtime_mappings\":{\"t\":{}}}\n",
        ];
        for c in cases {
            let err = run(c).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{c:?}");
        }
    }

    /// The header line as serde_json wrote it before `write_header` (issue 10): the map
    /// cloned, `index` and `expand_wildcards` inserted, the map serialised.
    fn header_by_serde(item: &Item) -> Vec<u8> {
        let mut header = item.header.clone();
        header.insert(
            "index".to_string(),
            Value::Array(
                item.index
                    .elements()
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
        );
        header.insert(
            "expand_wildcards".to_string(),
            Value::String("open".to_string()),
        );
        serde_json::to_vec(&Value::Object(header)).unwrap()
    }

    /// `write_header` writes the bytes serde_json wrote, for headers as `rewrite` leaves them
    /// (every accepted key, escapes, unicode, keys in any order) and for any map an `Item` may
    /// hold (`index` or `expand_wildcards` already present, other values, escaped keys).
    #[test]
    fn header_lines_match_serde() {
        let lines = [
            "{}",
            "{\"index\":\"logs-a\"}",
            "{\"index\":[\"logs-a\",\"logs-b\"],\"preference\":\"x\"}",
            "{\"preference\":\"a\\\"b\\\\c\\u0001\\u00e9\u{1F600}\",\"index\":\"logs-a\"}",
            "{\"expand_wildcards\":\"open\",\"index\":\"logs-a\",\"routing\":\"r\"}",
            "{\"routing\":\"r\",\"index\":\"logs-a\",\"expand_wildcards\":\"open\"}",
            "{\"search_type\":\"query_then_fetch\",\"request_cache\":true,\"allow_partial_search_results\":false,\"ignore_unavailable\":true,\"allow_no_indices\":false}",
            "{\"ignore_unavailable\":true,\"index\":\"logs-*\"}",
            "{\"index\":\"logs-a,logs-b\",\"ignore_unavailable\":true}",
            "{\"\\u0070reference\":\"p\",\"index\":[]}",
            "{\"index\":\"\"}",
            "{\"index\":\"_all\"}",
        ];
        let mut ndjson = String::new();
        for l in lines {
            ndjson.push_str(l);
            ndjson.push_str("\n{}\n");
        }
        let mut items = run(&ndjson).unwrap();
        assert_eq!(items.len(), lines.len());
        let mut extra = Map::new();
        extra.insert("a\"\n\u{7f}é".to_string(), json!({"x": [1, 2.5, null]}));
        extra.insert("index".to_string(), json!("ignored"));
        extra.insert("n".to_string(), json!(-3));
        items.push(Item {
            index: Expression::from_names(vec!["a\"b".into(), "é\\".into()]),
            header: extra.clone(),
            body: Value::Null,
        });
        extra.shift_remove("index");
        extra.insert("expand_wildcards".to_string(), json!("all"));
        items.push(Item {
            index: Expression::from_names(vec![]),
            header: extra,
            body: Value::Null,
        });
        items.push(Item {
            index: Expression::from_names(vec!["*".into(), "-*".into()]),
            header: Map::new(),
            body: Value::Null,
        });
        for item in &items {
            let mut out = Vec::new();
            write_header(&mut out, &item.header, item.index.elements()).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(header_by_serde(item)).unwrap()
            );
        }
        let bodies: Vec<Vec<u8>> = items.iter().map(|_| b"{}".to_vec()).collect();
        let mut want = Vec::new();
        for item in &items {
            want.extend(header_by_serde(item));
            want.extend(b"\n{}\n");
        }
        assert_eq!(to_ndjson_with(&items, &bodies).unwrap(), want);
    }

    /// `forward_narrowed` forwards the bytes the old narrowing did: each item's index set to
    /// the names of the first entry for its joined expression, then `forward_body`.
    #[test]
    fn narrowed_headers_match_setting_each_index() {
        let items = run("{\"index\":\"logs-a\"}\n{}\n{}\n{}\n{\"index\":[\"logs-a\",\"logs-b\"],\"preference\":\"x\"}\n{}\n{\"index\":\"logs-b\",\"routing\":\"r\"}\n{}\n{\"index\":\"logs-a\"}\n{}\n").unwrap();
        let bodies: Vec<Vec<u8>> = items.iter().map(|_| b"{}".to_vec()).collect();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<Vec<(String, Vec<String>)>> = vec![
            vec![],
            vec![("logs-a".into(), names(&["logs-a"]))],
            vec![("logs-*".into(), names(&["logs-a", "logs-b"]))],
            vec![
                ("logs-a,logs-b".into(), names(&["*", "-*"])),
                ("logs-a".into(), names(&["x"])),
                ("logs-a".into(), names(&["y"])),
                ("logs-b".into(), names(&[])),
            ],
        ];
        for narrowed in cases {
            let mut old = items.clone();
            for item in &mut old {
                let joined = item.index.joined();
                if let Some((_, names)) = narrowed.iter().find(|(e, _)| *e == joined) {
                    item.index = Expression::from_names(names.clone());
                }
            }
            let want = forward_body(&old, &bodies).unwrap().bytes;
            let got = forward_narrowed(&items, &bodies, &narrowed).unwrap().bytes;
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }

    /// `is_joined` is the comparison with the joined string it replaces.
    #[test]
    fn is_joined_is_join_equality() {
        let lists: Vec<Vec<String>> = [
            vec![],
            vec![""],
            vec!["a"],
            vec!["a", "b"],
            vec!["a,b"],
            vec!["a", ""],
            vec!["", "a"],
            vec!["logs-*", "-logs-b"],
        ]
        .iter()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .collect();
        for l in &lists {
            for t in [
                "",
                ",",
                "a",
                "a,",
                ",a",
                "a,b",
                "a,b,",
                "ab",
                "logs-*,-logs-b",
                "logs-*",
            ] {
                assert_eq!(is_joined(t, l), t == l.join(","), "{t:?} {l:?}");
            }
        }
    }

    /// `split_lines` splits as `split(|b| *b == b'\n')` did, empty pieces included.
    #[test]
    fn lines_split_as_before() {
        for text in [
            "",
            "\n",
            "\n\n",
            "a",
            "a\n",
            "\na",
            "a\nb",
            "a\n\nb\n",
            "{}\n{}\n{}",
        ] {
            let want: Vec<&[u8]> = text.as_bytes().split(|b| *b == b'\n').collect();
            assert_eq!(split_lines(text.as_bytes()), want, "{text:?}");
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn pair_count_is_preserved_and_every_body_is_wrapped(
                pairs in prop::collection::vec((prop::option::of("logs-[a-c]"), prop::option::of(0u64..50)), 1..8)
            ) {
                let mut ndjson = String::new();
                for (idx, size) in &pairs {
                    let header = match idx { Some(i) => json!({"index": i}), None => json!({}) };
                    let body = match size { Some(s) => json!({"size": s}), None => json!({}) };
                    ndjson.push_str(&format!("{header}\n{body}\n"));
                }
                let items = run(&ndjson).unwrap();
                prop_assert_eq!(items.len(), pairs.len());
                let out = String::from_utf8(to_ndjson(&items).unwrap()).unwrap();
                let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
                prop_assert_eq!(lines.len(), pairs.len() * 2);
                for (i, (idx, _)) in pairs.iter().enumerate() {
                    let header = &lines[2 * i];
                    let want = idx.clone().unwrap_or_else(|| "logs-*".to_string());
                    prop_assert_eq!(&header["index"], &json!([want]));
                    prop_assert_eq!(&lines[2 * i + 1]["query"], &wrapped(json!({"match_all":{}})));
                }
            }
        }
    }
}
