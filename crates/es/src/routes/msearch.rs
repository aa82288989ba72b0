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
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Request, Shape, Spec, Upstream};
use crate::dsl::histogram_fields::HistogramFields;
use crate::dsl::json::{Obj, J};
use crate::ids::ordinals::{self, SortSeal};
use crate::indices::index::{self, Expression};
use crate::memory::Meter;
use crate::request::body::{self, Media};
use crate::request::params::{self, Kind, ParamSet};
use crate::request::tree::{self, Node};
use crate::{dsl::rewrite, error, FilterSet, ForwardBody, Method, Rejection};

const PARAMS: &[(&str, Kind)] = &[
    (
        "max_concurrent_searches",
        Kind::UintUpTo(params::MAX_CONCURRENT_SEARCHES),
    ),
    (
        "max_concurrent_shard_requests",
        Kind::UintUpTo(params::MAX_CONCURRENT_SHARD_REQUESTS),
    ),
    ("pre_filter_shard_size", Kind::Uint),
    ("rest_total_hits_as_int", Kind::Bool),
    ("typed_keys", Kind::Bool),
    ("search_type", Kind::OneOf(&["query_then_fetch"])),
];

pub(crate) const MSEARCH: Spec = Spec {
    action: "msearch",
    params: ParamSet::own(PARAMS).indices_options().without_pre_filter(),
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
/// no doc-id sort anywhere (`ordinals::plain_is_noop`), the bodies written by `tree::write_from`.
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
    let meter = req.meter;
    let arena = tree::Arena::metered(raw.len(), meter).ok()?;
    // Room for a dashboard's searches without regrowing (issue 10).
    let mut trees = Vec::with_capacity(32);
    // Each body's text: its output's source, and its length the output buffer's size (the
    // output is the body and the filter).
    let mut texts = Vec::with_capacity(32);
    // The top-level entries checked so far: a repeated one is not checked again.
    let mut accepted = rewrite::Accepted::default();
    let mut items = read_lines(
        raw,
        req.index.as_ref(),
        &scope.indices,
        Headers::Tree(&arena),
        req.max_searches,
        meter,
        |line| {
            let before = arena.objects();
            let highlights_before = arena.highlight_keys();
            let tree = tree::parse(line, &arena)?;
            // The copies of the token's clauses its rewrite may make (one per object).
            let objects = arena.objects() - before;
            super::claim_clause_copies(meter, &scope.filters, objects, super::SERDE_COPY)?;
            if tree.object_len().is_none() {
                return Err(Rejection::bad_request("msearch body must be a JSON object"));
            }
            match rewrite::search_tree(
                tree,
                arena.has_knn_key(),
                arena.highlight_keys() - highlights_before,
                &scope.filters,
                Some(&mut accepted),
            )? {
                Some(out) => {
                    trees.push(out);
                    texts.push(line);
                    Ok(Value::Null)
                }
                // Left to the serde path.
                None => Err(Rejection::bad_request("msearch body not on the tree path")),
            }
        },
    )
    .ok()?;
    // Inner hits' names are checked on the serde path only (`rewrite::search`).
    if arena.has_inner_hits_key() {
        return None;
    }
    let to_resolve = distinct_expressions(&items);
    if to_resolve.len() > MAX_EXPRESSIONS {
        return None;
    }
    let mut timeouts = Vec::with_capacity(trees.len());
    // The histogram fields of each expression's searches (`histogram_fields`).
    let mut fields = Places::new(&to_resolve);
    for (out, item) in trees.iter_mut().zip(&items) {
        if !ordinals::plain_is_noop(J::from(&*out)) {
            return None;
        }
        let Node::Object(entries) = out else {
            return None;
        };
        scope
            .guard
            .fill_tree(entries, &arena, fields.of(item))
            .ok()?;
        timeouts.push(
            scope
                .guard
                .search_checked(Obj::N(entries), &mut Vec::new())
                .ok()?,
        );
    }
    let mut bodies = Vec::with_capacity(trees.len());
    for ((mut out, timeout), line) in trees.into_iter().zip(timeouts).zip(texts) {
        if let (Node::Object(entries), Some(timeout)) = (&mut out, timeout) {
            entries.set("timeout", Node::String(Cow::Owned(timeout)));
        }
        let mut bytes = Vec::with_capacity(line.len() + 256);
        tree::write_from(&out, line, &mut bytes);
        bodies.push(bytes);
    }
    for item in &mut items {
        item.body = Value::Null;
    }
    // The NDJSON is written by `authorize` (`forward_narrowed`), once its names are known.
    let mut up = Upstream::fixed(Method::Post, "/_msearch");
    up.typed_fields = fields.typed();
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
    let bytes = body::decode_content(raw, req.head.content_encoding, req.max_body, req.meter)?;
    let mut items = rewrite_at_most(
        &bytes,
        req.index.as_ref(),
        &scope.indices,
        &scope.filters,
        req.max_searches,
        req.meter,
    )?;
    let to_resolve = distinct_expressions(&items);
    // Each distinct expression costs a resolve call before anything is forwarded.
    if to_resolve.len() > MAX_EXPRESSIONS {
        return Err(Rejection::bad_request(format!(
            "an msearch may name at most {MAX_EXPRESSIONS} distinct index expressions; split it"
        )));
    }
    // The histogram fields of each expression's searches (`histogram_fields`).
    let mut fields = Places::new(&to_resolve);
    for (i, item) in items.iter_mut().enumerate() {
        let typed = fields.of(item);
        scope
            .guard
            .search_into(&mut item.body, &mut Vec::new(), typed)
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
    let bodies = render_bodies(&items)?;
    // The trees are not needed past here: the serialised bodies are reused.
    for item in &mut items {
        item.body = Value::Null;
    }
    // As on the tree path, the NDJSON is written by `authorize`.
    let mut up = Upstream::fixed(Method::Post, "/_msearch");
    up.typed_fields = fields.typed();
    up.to_resolve = to_resolve;
    up.shape = Shape::Msearch(items, bodies);
    if positions.iter().any(Option::is_some) {
        up.sort_seal = Some(SortSeal::Msearch(positions));
    }
    Ok(up)
}

/// The histogram fields of the searches of each distinct expression (`to_resolve`'s places),
/// for `authorize` to decide on (`Upstream::typed_fields`): a search adds to its expression's.
struct Places<'e> {
    to_resolve: &'e [String],
    fields: Vec<HistogramFields>,
    /// The fields of a search whose expression is not in `to_resolve` (never: every item's
    /// is), kept at no place: `authorize` refuses them.
    unplaced: HistogramFields,
    /// The last search's expression and place: searches whose headers name the same text share
    /// their expression (a dashboard's, one index pattern), found once.
    last: Option<(Arc<Expression>, usize)>,
}

impl<'e> Places<'e> {
    fn new(to_resolve: &'e [String]) -> Places<'e> {
        Places {
            to_resolve,
            fields: Vec::new(),
            unplaced: HistogramFields::default(),
            last: None,
        }
    }

    /// The fields of `item`'s expression, to add to.
    fn of(&mut self, item: &Item) -> &mut HistogramFields {
        let place = match &self.last {
            Some((index, place)) if Arc::ptr_eq(index, &item.index) => *place,
            _ => match self
                .to_resolve
                .iter()
                .position(|e| is_joined(e, item.index.elements()))
            {
                Some(place) => place,
                None => return &mut self.unplaced,
            },
        };
        self.last = Some((Arc::clone(&item.index), place));
        if self.fields.len() <= place {
            self.fields.resize_with(place + 1, HistogramFields::default);
        }
        &mut self.fields[place]
    }

    /// Each place's fields, the empty left out (unplaced ones at a place past `to_resolve`).
    fn typed(self) -> Vec<(usize, HistogramFields)> {
        let unplaced = (!self.unplaced.is_empty()).then_some((usize::MAX, self.unplaced));
        self.fields
            .into_iter()
            .enumerate()
            .filter(|(_, f)| !f.is_empty())
            .chain(unplaced)
            .collect()
    }
}

/// One checked search of an `_msearch`.
#[derive(Clone, Debug)]
pub struct Item {
    /// Shared by the items whose headers name the same text (issue 10: a copy per search).
    pub index: Arc<Expression>,
    pub header: Header,
    pub body: Value,
}

/// The header keys a token may send besides `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeaderKey {
    SearchType,
    ExpandWildcards,
    Preference,
    Routing,
    RequestCache,
    AllowPartialSearchResults,
    IgnoreUnavailable,
    AllowNoIndices,
}

impl HeaderKey {
    const ALL: [HeaderKey; 8] = [
        HeaderKey::SearchType,
        HeaderKey::ExpandWildcards,
        HeaderKey::Preference,
        HeaderKey::Routing,
        HeaderKey::RequestCache,
        HeaderKey::AllowPartialSearchResults,
        HeaderKey::IgnoreUnavailable,
        HeaderKey::AllowNoIndices,
    ];

    /// The allowed key named `key` (`None`: not allowed at all): looked up by [`HeaderKey::name`]
    /// in [`HeaderKey::ALL`], as bytes (a scanned key is not checked as UTF-8).
    fn of(key: &[u8]) -> Option<HeaderKey> {
        HeaderKey::ALL
            .into_iter()
            .find(|k| k.name().as_bytes() == key)
    }

    /// The key's name.
    fn name(self) -> &'static str {
        match self {
            HeaderKey::SearchType => "search_type",
            HeaderKey::ExpandWildcards => "expand_wildcards",
            HeaderKey::Preference => "preference",
            HeaderKey::Routing => "routing",
            HeaderKey::RequestCache => "request_cache",
            HeaderKey::AllowPartialSearchResults => "allow_partial_search_results",
            HeaderKey::IgnoreUnavailable => "ignore_unavailable",
            HeaderKey::AllowNoIndices => "allow_no_indices",
        }
    }

    /// The key as written in a forwarded header: quoted, with its colon.
    fn written(self) -> &'static [u8] {
        match self {
            HeaderKey::SearchType => b"\"search_type\":",
            HeaderKey::ExpandWildcards => b"\"expand_wildcards\":",
            HeaderKey::Preference => b"\"preference\":",
            HeaderKey::Routing => b"\"routing\":",
            HeaderKey::RequestCache => b"\"request_cache\":",
            HeaderKey::AllowPartialSearchResults => b"\"allow_partial_search_results\":",
            HeaderKey::IgnoreUnavailable => b"\"ignore_unavailable\":",
            HeaderKey::AllowNoIndices => b"\"allow_no_indices\":",
        }
    }

    /// Whether `v` is an allowed value of the key.
    fn allows(self, v: J<'_>) -> bool {
        match self {
            HeaderKey::SearchType => v.as_str() == Some("query_then_fetch"),
            HeaderKey::ExpandWildcards => v.as_str() == Some("open"),
            HeaderKey::Preference => v.as_str().is_some_and(params::preference_ok),
            HeaderKey::Routing => v.is_string(),
            HeaderKey::RequestCache
            | HeaderKey::AllowPartialSearchResults
            | HeaderKey::IgnoreUnavailable
            | HeaderKey::AllowNoIndices => v.is_boolean(),
        }
    }
}

/// A checked header's entries besides `index` (the item's expression), in the order they are
/// forwarded: allowed keys, each once, each with an allowed value. Held without a map (issue
/// 10: serde_json's map, its hashing and a `String` per key and value were a tenth of a
/// 20-search msearch): the keys' order packed four bits a key, the booleans a bit a key, the
/// two free-text values in their own fields (`search_type` and `expand_wildcards` have one
/// allowed value each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Each key's place in [`HeaderKey::ALL`] plus one, the first key in the lowest bits; 0
    /// ends the list.
    order: u32,
    /// The boolean keys' values, a bit per place in [`HeaderKey::ALL`].
    flags: u8,
    preference: Option<String>,
    routing: Option<String>,
}

impl Header {
    /// `key` added after the others with `v`, which [`HeaderKey::allows`] (a key is added once).
    fn push(&mut self, key: HeaderKey, v: J<'_>) {
        let place = key as u32;
        let len = self.keys().count() as u32;
        debug_assert!(self.keys().all(|k| k != key) && len < 8);
        self.order |= (place + 1) << (4 * len);
        match (key, v) {
            (HeaderKey::Preference, J::String(s)) => self.preference = Some(s.to_string()),
            (HeaderKey::Routing, J::String(s)) => self.routing = Some(s.to_string()),
            (_, J::Bool(true)) => self.flags |= 1 << place,
            _ => {}
        }
    }

    /// The keys, in order.
    fn keys(&self) -> impl Iterator<Item = HeaderKey> {
        let mut order = self.order;
        std::iter::from_fn(move || {
            let place = (order & 0xf) as usize;
            order >>= 4;
            place.checked_sub(1).map(|p| HeaderKey::ALL[p])
        })
    }

    /// The most [`write_header`] writes for this header beside its `index` value: every key
    /// with its value (under 64 bytes each), and its strings escaped (six bytes for one at
    /// most).
    fn written_bound(&self) -> usize {
        let strings = self.preference.as_ref().map_or(0, String::len)
            + self.routing.as_ref().map_or(0, String::len);
        640usize.saturating_add(strings.saturating_mul(6))
    }

    /// `key`'s value as written in a forwarded header.
    fn write_value(&self, key: HeaderKey, out: &mut Vec<u8>) {
        match key {
            HeaderKey::SearchType => out.extend_from_slice(b"\"query_then_fetch\""),
            HeaderKey::ExpandWildcards => out.extend_from_slice(b"\"open\""),
            HeaderKey::Preference => tree::write_str(self.preference.as_deref().unwrap_or(""), out),
            HeaderKey::Routing => tree::write_str(self.routing.as_deref().unwrap_or(""), out),
            _ if self.flags & (1 << key as u32) != 0 => out.extend_from_slice(b"true"),
            _ => out.extend_from_slice(b"false"),
        }
    }
}

/// Parses, checks and rewrites an NDJSON body. `path_index` is the already checked path
/// expression (used when a header names no index); `patterns` the token's allowed patterns;
/// the parses' memory claimed from `meter`.
pub fn rewrite(
    ndjson: &[u8],
    path_index: Option<&Expression>,
    patterns: &[String],
    filters: &FilterSet,
    meter: &Meter<'_>,
) -> Result<Vec<Item>, Rejection> {
    rewrite_at_most(ndjson, path_index, patterns, filters, None, meter)
}

/// [`rewrite`] of at most `max_searches` searches (`None`: any number), more refused before
/// any line is parsed ([`read_lines`]).
fn rewrite_at_most(
    ndjson: &[u8],
    path_index: Option<&Expression>,
    patterns: &[String],
    filters: &FilterSet,
    max_searches: Option<u32>,
    meter: &Meter<'_>,
) -> Result<Vec<Item>, Rejection> {
    read_lines(
        ndjson,
        path_index,
        patterns,
        Headers::Serde(meter),
        max_searches,
        meter,
        |line| {
            let body = body::parse_strict_within(line, meter)?;
            // The copies of the token's clauses its rewrite may make (one per object).
            super::claim_clause_copies(meter, filters, super::objects(&body), super::SERDE_COPY)?;
            if !body.is_object() {
                return Err(Rejection::bad_request("msearch body must be a JSON object"));
            }
            rewrite::search(Some(body), filters)
        },
    )
}

/// What one search of an msearch holds beyond its lines' parse and text, at most: its
/// [`Item`], its entries in `on_tree`'s vectors, the wrap of its rewritten tree and its output's
/// room (256 bytes over the line), serde's rewritten body; the copies of the token's clauses
/// are claimed beside it (`claim_clause_copies`). `tests/check_memory.rs` holds the claims to
/// the heap.
const ITEM_BYTES: usize = 1024;

/// How [`read_lines`] reads header lines.
#[derive(Clone, Copy)]
enum Headers<'t> {
    /// `parse_strict` and [`check_header`]: the reference, and every refusal's reason. The
    /// parses' memory claimed from the meter.
    Serde(&'t Meter<'t>),
    /// [`check_header_tree`] (the tree path): the same acceptance and the same header, any
    /// refusal left to the serde path for its reason. Their trees in the request's arena.
    Tree(&'t tree::Arena<'t>),
}

/// The framing and headers of an NDJSON body checked, each body line given to `body` (in
/// order, after its header is checked). More than `max_searches` searches (the token's
/// `max_msearch_searches`): refused as the lines are split, before any is parsed (msearch27:
/// the body's 100 MiB were the only bound, some 16 million searches of `{}` lines, each run by
/// the coordinating node and its answer held until the last's).
fn read_lines<'a>(
    ndjson: &'a [u8],
    path_index: Option<&Expression>,
    patterns: &[String],
    headers: Headers<'_>,
    max_searches: Option<u32>,
    meter: &Meter<'_>,
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
    // The line table and the items, claimed before they are allocated (session 11 review: a
    // body of `{}` lines is a line per three bytes, 16 bytes of table and an item of some
    // hundred bytes each, none of it in the parse's claims).
    let lines = split_lines_at_most(content, max_searches, meter)?;
    if !lines.len().is_multiple_of(2) {
        return Err(Rejection::bad_request(
            "msearch needs a body line after every header line",
        ));
    }
    meter.take((lines.len() / 2).saturating_mul(std::mem::size_of::<Item>()))?;
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
        // What the search holds beside its lines' parse (its header's strings and expression,
        // its rewritten body), claimed before it is built.
        meter.take(
            ITEM_BYTES
                .saturating_add(header_line.len())
                .saturating_add(body_line.len()),
        )?;
        let (index, header) = match headers {
            Headers::Serde(meter) => {
                let header = match body::parse_strict_within(header_line, meter)? {
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

/// [`split_lines_at_most`] with no limit (the tests' reference).
#[cfg(test)]
fn split_lines<'c>(content: &'c [u8], meter: &Meter<'_>) -> Result<Vec<&'c [u8]>, Rejection> {
    split_lines_at_most(content, None, meter)
}

/// `content` split at every `\n`, as `content.split(|b| *b == b'\n')` splits it (the empty
/// pieces included), the newlines found 64 bytes at a time ([`newline_mask`]; issue 10: the
/// byte-by-byte split was a twentieth of a 20-search msearch, `memchr_iter` still 8k
/// instructions of its 372k, a search set up for each line). The table's room is claimed from
/// `meter` as it grows. More lines than `max_searches` searches have (two each): refused (400,
/// over a limit) at the first line past them, before the rest is split.
fn split_lines_at_most<'c>(
    content: &'c [u8],
    max_searches: Option<u32>,
    meter: &Meter<'_>,
) -> Result<Vec<&'c [u8]>, Rejection> {
    let max_lines = max_searches.map_or(usize::MAX, |m| (m as usize).saturating_mul(2));
    let mut lines = Vec::new();
    let mut start = 0;
    let mut push = |end: usize, lines: &mut Vec<&'c [u8]>| {
        if lines.len() >= max_lines {
            return Err(too_many_searches(max_searches.unwrap_or(u32::MAX)));
        }
        meter.grow(lines, 64)?;
        lines.push(content.get(start..end).unwrap_or_default());
        start = end + 1;
        Ok::<(), Rejection>(())
    };
    let chunks = content.chunks_exact(64);
    let tail = chunks.remainder();
    for (n, chunk) in chunks.enumerate() {
        let mut mask = newline_mask(chunk.try_into().expect("64 bytes"));
        while mask != 0 {
            push(n * 64 + mask.trailing_zeros() as usize, &mut lines)?;
            mask &= mask - 1;
        }
    }
    let base = content.len() - tail.len();
    for (i, b) in tail.iter().enumerate() {
        if *b == b'\n' {
            push(base + i, &mut lines)?;
        }
    }
    push(content.len(), &mut lines)?;
    Ok(lines)
}

/// An `_msearch` of more than `max` searches.
fn too_many_searches(max: u32) -> Rejection {
    Rejection::over_limit(format!(
        "this msearch carries more than {max} searches, over this token's max_msearch_searches {max}; split it"
    ))
}

/// A bit per `\n` of a 64-byte chunk (bit `i` for byte `i`): SSE2 through `safe_arch` (this
/// crate has no `unsafe`), a compare a block of sixteen.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn newline_mask(chunk: &[u8; 64]) -> u64 {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let newline = set_splat_i8_m128i(b'\n' as i8);
    let mut mask = 0u64;
    for (i, block) in chunk.chunks_exact(16).enumerate() {
        let v = load_unaligned_m128i(block.try_into().expect("sixteen bytes"));
        // Sixteen bits, one a byte: the sign bits of the compare's bytes.
        let bits = move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, newline)) as u32 & 0xffff;
        mask |= u64::from(bits) << (16 * i);
    }
    mask
}

/// [`newline_mask`] where there is no SSE2.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn newline_mask(chunk: &[u8; 64]) -> u64 {
    chunk
        .iter()
        .enumerate()
        .fold(0, |mask, (i, b)| mask | u64::from(*b == b'\n') << i)
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
    ndjson(
        items,
        bodies,
        |item| item.index.elements(),
        &Meter::unlimited(),
    )
}

/// The NDJSON body to forward for `items`, whose bodies are already serialised in `bodies`,
/// written by `authorize` once it narrowed expressions (`narrowed`: an expression as joined,
/// and the names to forward in its place): each header names the names its expression
/// narrowed to (the first entry for it), or its own. The same bytes as setting each item's
/// index to those names and calling [`to_ndjson_with`], without a copy of the names per item
/// (issue 10).
pub(crate) fn forward_narrowed(
    items: &[Item],
    bodies: &[Vec<u8>],
    narrowed: &[(String, Vec<String>)],
    meter: &Meter<'_>,
) -> Result<ForwardBody, Rejection> {
    let bytes = ndjson(
        items,
        bodies,
        |item| {
            let own = item.index.elements();
            narrowed
                .iter()
                .find(|(e, _)| is_joined(e, own))
                .map_or(own, |(_, names)| names.as_slice())
        },
        meter,
    )?;
    Ok(ForwardBody::new(bytes, NDJSON))
}

/// The items' index expressions, each once, as joined text, in the order first named: what
/// the request resolves. Compared without joining (issue 10: a `String` per search).
fn distinct_expressions(items: &[Item]) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for item in items {
        if !distinct.iter().any(|e| is_joined(e, item.index.elements())) {
            distinct.push(item.index.joined());
        }
    }
    distinct
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
/// Its room claimed from `meter` before it is allocated (session 11 review: each header names
/// all the names its wildcard narrowed to, so a body of `{"index":"logs-*"}` searches of 20
/// bytes each became hundreds of times its size, unclaimed).
fn ndjson<'a>(
    items: &'a [Item],
    bodies: &[Vec<u8>],
    names_of: impl Fn(&'a Item) -> &'a [String],
    meter: &Meter<'_>,
) -> Result<Vec<u8>, Rejection> {
    if items.len() != bodies.len() {
        return Err(Rejection::bad_request(
            "msearch body could not be serialised",
        ));
    }
    let first = bodies
        .iter()
        .fold(0usize, |n, b| n.saturating_add(b.len()).saturating_add(128));
    meter.take(first)?;
    let mut out = Vec::with_capacity(first);
    // The `index` array of the names last written, for the next item naming the very same
    // names (the same slice: a dashboard's headers share one expression or one narrowing),
    // written once (issue 10: its strings were a fifth of writing a header).
    let mut index = Vec::new();
    let mut index_of: Option<&[String]> = None;
    for (item, body) in items.iter().zip(bodies) {
        let names = names_of(item);
        if !index_of.is_some_and(|last| std::ptr::eq(last, names)) {
            index.clear();
            // Each name as a JSON string (`write_str` escapes at most six bytes for one).
            let text = names.iter().fold(2usize, |n, name| {
                n.saturating_add(name.len().saturating_mul(6))
                    .saturating_add(3)
            });
            if text > index.capacity() {
                meter.take(text)?;
                index.reserve_exact(text);
            }
            write_index(names, &mut index);
            index_of = Some(names);
        }
        let need = item
            .header
            .written_bound()
            .saturating_add(index.len())
            .saturating_add(body.len())
            .saturating_add(2);
        if out.capacity() - out.len() < need {
            // The next room (twice this one, as a vector grows), claimed first; this one was.
            let grown = out
                .capacity()
                .saturating_mul(2)
                .max(out.len().saturating_add(need));
            meter.take(grown)?;
            out.reserve_exact(grown - out.len());
        }
        write_header(&mut out, &item.header, &index);
        out.push(b'\n');
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    Ok(out)
}

/// One item's header line (without its newline): byte for byte what serde_json wrote for the
/// header's map with `index` set to the item's names and `expand_wildcards` to `open` (each
/// replaced in place when the header has it, appended in that order when not; a checked
/// header never has `index`), written straight from the entries (issue 10: the map's clone,
/// two inserts and serialisation were a tenth of a 20-search msearch, done twice), its strings
/// by the request tree's writer (serde_json's escapes). `header_lines_match_serde` (tests)
/// holds it to the map's bytes.
/// `index`: the names as [`write_index`] writes them.
fn write_header(out: &mut Vec<u8>, header: &Header, index: &[u8]) {
    let mut expand_done = false;
    out.push(b'{');
    for key in header.keys() {
        out.extend_from_slice(key.written());
        header.write_value(key, out);
        out.push(b',');
        expand_done |= key == HeaderKey::ExpandWildcards;
    }
    out.extend_from_slice(b"\"index\":");
    out.extend_from_slice(index);
    if !expand_done {
        out.extend_from_slice(b",\"expand_wildcards\":\"open\"");
    }
    out.push(b'}');
}

/// `names` as a JSON array of strings.
fn write_index(names: &[String], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        tree::write_str(name, out);
    }
    out.push(b']');
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
    last: &mut Option<(String, Arc<Expression>)>,
) -> Result<Arc<Expression>, Rejection> {
    Ok(match text {
        None => Arc::new(match path_index {
            Some(p) => p.clone(),
            None => index::default_expression(patterns)?,
        }),
        Some(text) => match last {
            Some((t, e)) if *t == *text => Arc::clone(e),
            _ => {
                let e = Arc::new(index::parse(Some(&text), patterns)?);
                *last = Some((text.into_owned(), Arc::clone(&e)));
                e
            }
        },
    })
}

fn check_header(
    mut map: Map<String, Value>,
    path_index: Option<&Expression>,
    patterns: &[String],
    last: &mut Option<(String, Arc<Expression>)>,
) -> Result<(Arc<Expression>, Header), Rejection> {
    let index_value = map.remove("index");
    let mut header = Header::default();
    for (k, v) in &map {
        let Some(key) = HeaderKey::of(k.as_bytes()) else {
            return Err(Rejection::forbidden(format!(
                "msearch header key [{}] is not allowed for this token",
                error::printable(k)
            )));
        };
        if !key.allows(J::from(v)) {
            return Err(Rejection::forbidden(format!(
                "msearch header key [{k}] has a value that is not allowed"
            )));
        }
        header.push(key, J::from(v));
    }
    let text = index_text(index_value.as_ref().map(J::from))?;
    let index = expression(text, path_index, patterns, last)?;
    Ok((index, header))
}

/// Most entries a header line can have and be accepted: each allowed key and `index`, once.
const MAX_HEADER_ENTRIES: usize = HeaderKey::ALL.len() + 1;

/// A header line's entries, in order, read without a map.
struct Entries<'a> {
    items: [(&'a str, J<'a>); MAX_HEADER_ENTRIES],
    len: usize,
}

impl<'a> Entries<'a> {
    fn new() -> Self {
        Entries {
            items: [("", J::Null); MAX_HEADER_ENTRIES],
            len: 0,
        }
    }

    /// `false` when full (the line has more entries than an accepted header can have).
    fn push(&mut self, key: &'a str, value: J<'a>) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = (key, value);
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

/// [`check_header`] of a header line read without serde_json (issue 10: serde_json's map and
/// its hashing were a tenth of a 20-search msearch), for the tree path: it accepts exactly the
/// lines `parse_strict` and `check_header` accept and gives the same expression and header
/// (the same entries in the same order); what it refuses, the serde path refuses too and
/// words. A compact line of strings and booleans (what dashboards send) is read by
/// [`scan_header`], any other by the request tree. `header_shapes_match_serde` and
/// `scanned_headers_are_what_serde_reads` (tests) hold it to that. `last`: as in `expression`.
fn check_header_tree(
    line: &[u8],
    arena: &tree::Arena,
    path_index: Option<&Expression>,
    patterns: &[String],
    last: &mut Option<(String, Arc<Expression>)>,
) -> Result<(Arc<Expression>, Header), Rejection> {
    let refused = || Rejection::bad_request("msearch header left to the serde path");
    let mut entries = Entries::new();
    if !scan_header(line, &mut entries) {
        entries = Entries::new();
        let Node::Parsed(parsed) = tree::parse(line, arena)? else {
            return Err(refused());
        };
        if !parsed.is_object() {
            return Err(refused());
        }
        for (k, v) in parsed.entries() {
            if !entries.push(k, J::from(v)) {
                return Err(refused());
            }
        }
    }
    // The `index` entry removed as serde_json's `remove` does (a swap-remove: the last entry
    // takes its place), so the others are checked and kept in the same order.
    let items = &mut entries.items[..entries.len];
    let mut rest = items.len();
    let mut index_value = None;
    if let Some(i) = items.iter().position(|(k, _)| *k == "index") {
        index_value = Some(items[i].1);
        items.swap(i, rest - 1);
        rest -= 1;
    }
    let mut header = Header::default();
    for &(k, v) in &items[..rest] {
        match HeaderKey::of(k.as_bytes()) {
            Some(key) if key.allows(v) => header.push(key, v),
            _ => return Err(refused()),
        }
    }
    let text = index_text(index_value)?;
    let index = expression(text, path_index, patterns, last)?;
    Ok((index, header))
}

/// A header line read into `entries` when it is compact JSON of the shape dashboards send:
/// `{}` or `{"key":value,...}` without whitespace, each key plain (no escape) and either an
/// allowed key or `index` (each once), each value `true`, `false` or a plain string (no escape,
/// no control character, UTF-8), `index`'s only a string. `false` for every other line (left
/// to the request tree: `entries` then holds whatever was read). Every line read here is one
/// `parse_strict` accepts, read into the same keys and values in the same order.
fn scan_header<'a>(line: &'a [u8], entries: &mut Entries<'a>) -> bool {
    let Some(inner) = line.strip_prefix(b"{").and_then(|l| l.strip_suffix(b"}")) else {
        return false;
    };
    if inner.is_empty() {
        return true;
    }
    // Keys seen, a bit per allowed key's place and one for `index`.
    let mut seen = 0u16;
    let mut rest = inner;
    loop {
        let Some((key, after)) = plain_bytes(rest) else {
            return false;
        };
        // The key's bytes are its text (no escape): compared as bytes, and named by the
        // list's own string (no UTF-8 check: issue 10, a tenth of reading a header).
        let (key, bit) = match HeaderKey::of(key) {
            Some(k) => (k.name(), 1u16 << (k as u32)),
            None if key == b"index" => ("index", 1 << HeaderKey::ALL.len()),
            None => return false,
        };
        if seen & bit != 0 {
            return false;
        }
        seen |= bit;
        let Some(after) = after.strip_prefix(b":") else {
            return false;
        };
        let (value, after) = if let Some(a) = after.strip_prefix(b"true") {
            (J::Bool(true), a)
        } else if let Some(a) = after.strip_prefix(b"false") {
            (J::Bool(false), a)
        } else {
            match plain_string(after) {
                Some((s, a)) => (J::String(s), a),
                None => return false,
            }
        };
        if key == "index" && !matches!(value, J::String(_)) {
            return false;
        }
        if !entries.push(key, value) {
            return false;
        }
        match after.split_first() {
            None => return true,
            Some((b',', next)) => rest = next,
            Some(_) => return false,
        }
    }
}

/// A string at the start of `text` with no escape and no control character, and the text
/// after it; `None` for anything else (no string there, an escape, a control character, bytes
/// that are not UTF-8, no closing quote).
fn plain_string(text: &[u8]) -> Option<(&str, &[u8])> {
    let (s, after) = plain_bytes(text)?;
    Some((std::str::from_utf8(s).ok()?, after))
}

/// [`plain_string`] without the UTF-8 check: the string's bytes.
fn plain_bytes(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = text.strip_prefix(b"\"")?;
    // One look a byte (issue 10: `memchr2` and a second pass for control characters cost
    // twice this on the short strings of a header).
    let end = body
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if body[end] != b'"' {
        return None;
    }
    Some((&body[..end], &body[end + 1..]))
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
        rewrite(
            s.as_bytes(),
            None,
            &pats(),
            &tenant_a(),
            &Meter::unlimited(),
        )
    }

    /// msearch27: an `_msearch` of more searches than `max_msearch_searches` is refused (400,
    /// over a limit) on both paths, as its lines are split: a line past the cap is never parsed.
    /// At the cap it passes, and the prepared request counts its searches.
    #[test]
    fn searches_over_the_cap_are_refused_before_any_is_parsed() {
        let scope = crate::testing::scope();
        let mut h = crate::testing::head("POST", "/_msearch", None);
        h.content_type = Some(NDJSON);
        let prepare = |body: &str, max: Option<u32>, serde_only: bool| {
            super::super::search::tests::SERDE_ONLY.with(|s| s.set(serde_only));
            let out = crate::plan(&h, &scope).and_then(|p| {
                crate::prepare(p.searches_at_most(max), Some(body.as_bytes()), &h, &scope)
            });
            super::super::search::tests::SERDE_ONLY.with(|s| s.set(false));
            out
        };
        let five = "{\"index\":\"logs-a\"}\n{\"size\":1}\n{}\n{}\n".repeat(2) + "{}\n{}\n";
        let bad_sixth = format!("{five}{{not json\n{{}}\n");
        for serde_only in [false, true] {
            for max in [Some(5), Some(6), Some(1_000_000), None] {
                let ok = prepare(&five, max, serde_only).unwrap();
                assert_eq!(ok.msearch_searches(), Some(5), "{max:?} {serde_only}");
            }
            for (body, max) in [(&five, 4), (&five, 1), (&bad_sixth, 5)] {
                let e = prepare(body, Some(max), serde_only).unwrap_err();
                assert_eq!(e.kind, RejectKind::OverLimit, "{max} {serde_only}: {e:?}");
                assert!(
                    e.reason.contains(&format!("max_msearch_searches {max}")),
                    "{}",
                    e.reason
                );
            }
            // Under the cap, the bad line is parsed and refused for what it is.
            let e = prepare(&bad_sixth, Some(6), serde_only).unwrap_err();
            assert_eq!(e.kind, RejectKind::BadRequest, "{e:?}");
        }
        // Other routes ignore the cap and count no searches.
        let h = crate::testing::head("POST", "/logs-a/_search", None);
        let one = crate::plan(&h, &scope)
            .and_then(|p| crate::prepare(p.searches_at_most(Some(1)), Some(b"{}"), &h, &scope))
            .unwrap();
        assert_eq!(one.msearch_searches(), None);
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
        let items = rewrite(body, Some(&path), &pats(), &tenant_a(), &Meter::unlimited()).unwrap();
        assert_eq!(*items[0].index, path);
        assert_eq!(*items[1].index, path);
        assert_eq!(*items[2].index, path);
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

    /// The header line as serde_json wrote it before `write_header` (issue 10): the line's
    /// map as `parse_strict` reads it, `index` removed (a swap-remove), then `index` set to
    /// `names` and `expand_wildcards` to `open`, the map serialised.
    fn header_by_serde(line: &str, names: &[String]) -> Vec<u8> {
        let Value::Object(mut header) = body::parse_strict(line.as_bytes()).unwrap() else {
            panic!("{line} is an object");
        };
        header.remove("index");
        header.insert(
            "index".to_string(),
            Value::Array(names.iter().cloned().map(Value::String).collect()),
        );
        header.insert(
            "expand_wildcards".to_string(),
            Value::String("open".to_string()),
        );
        serde_json::to_vec(&Value::Object(header)).unwrap()
    }

    /// `write_header` writes the bytes serde_json wrote, for every accepted key and value,
    /// escapes, unicode, keys in any order, and any names (escaped ones, none).
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
            "{\"allow_no_indices\":true,\"allow_partial_search_results\":true,\"request_cache\":false,\"ignore_unavailable\":false}",
            "{\"ignore_unavailable\":true,\"index\":\"logs-*\"}",
            "{\"index\":\"logs-a,logs-b\",\"ignore_unavailable\":true}",
            "{\"\\u0070reference\":\"p\",\"index\":[]}",
            "{\"routing\":\"\",\"preference\":\"\u{7f}\\n\",\"search_type\":\"query_then_fetch\"}",
            "{\"index\":\"\"}",
            "{\"index\":\"_all\"}",
            " { \"routing\" : \"r\" , \"index\" : \"logs-a\" } ",
        ];
        let mut ndjson = String::new();
        for l in lines {
            ndjson.push_str(l);
            ndjson.push_str("\n{}\n");
        }
        let items = run(&ndjson).unwrap();
        assert_eq!(items.len(), lines.len());
        let names: Vec<Vec<String>> = vec![
            vec!["a\"b".into(), "é\\".into()],
            vec![],
            vec!["*".into(), "-*".into()],
            vec!["\u{1}\n".into()],
        ];
        let mut want = Vec::new();
        for (line, item) in lines.iter().zip(&items) {
            let own = item.index.elements();
            for names in std::iter::once(own).chain(names.iter().map(Vec::as_slice)) {
                let (mut out, mut index) = (Vec::new(), Vec::new());
                write_index(names, &mut index);
                write_header(&mut out, &item.header, &index);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(header_by_serde(line, names)).unwrap(),
                    "{line}"
                );
            }
            want.extend(header_by_serde(line, own));
            want.extend(b"\n{}\n");
        }
        let bodies: Vec<Vec<u8>> = items.iter().map(|_| b"{}".to_vec()).collect();
        assert_eq!(to_ndjson_with(&items, &bodies).unwrap(), want);
    }

    /// Each allowed header key's name, lookup and written form are one list.
    #[test]
    fn header_keys_name_look_up_and_write_alike() {
        for (place, key) in HeaderKey::ALL.iter().enumerate() {
            assert_eq!(*key as usize, place);
            assert_eq!(HeaderKey::of(key.name().as_bytes()), Some(*key));
            assert_eq!(key.written(), format!("\"{}\":", key.name()).as_bytes());
        }
        assert_eq!(HeaderKey::of(b"index"), None);
    }

    /// What `scan_header` read, as serde_json values.
    fn scanned(line: &[u8]) -> Option<Vec<(String, Value)>> {
        let mut entries = Entries::new();
        if !scan_header(line, &mut entries) {
            return None;
        }
        let read = entries.items[..entries.len].iter().map(|(k, v)| {
            let v = match v {
                J::String(s) => Value::String(s.to_string()),
                J::Bool(b) => Value::Bool(*b),
                other => panic!("scan_header read {other:?}"),
            };
            (k.to_string(), v)
        });
        Some(read.collect())
    }

    /// `scan_header` reads only lines `parse_strict` accepts, into the entries serde_json
    /// reads from them (the same keys and values in the same order): seed lines at every edge
    /// and random byte edits of them (structural bytes, escapes, control, non-ASCII and
    /// non-UTF-8 bytes, whitespace).
    #[test]
    fn scanned_headers_are_what_serde_reads() {
        let seeds: [&[u8]; 18] = [
            b"{}",
            b"{\"index\":\"logs-*\",\"ignore_unavailable\":true}",
            b"{\"search_type\":\"query_then_fetch\",\"ignore_unavailable\":false,\"index\":\"a\"}",
            b"{\"preference\":\"p\",\"routing\":\"r\",\"expand_wildcards\":\"open\",\"request_cache\":true,\"allow_partial_search_results\":false,\"allow_no_indices\":true}",
            b"{\"routing\":\"\xc3\xa9\xf0\x9f\x98\x80\x7f\"}",
            b"{\"index\":\"a\",\"index\":\"b\"}",
            b"{\"routing\":\"a\",\"routing\":\"b\"}",
            b"{\"preference\":\"a\\\"b\"}",
            b"{\"index\":[\"a\"]}",
            b"{\"foo\":true}",
            b"{\"index\":\"\",\"preference\":\"\"}",
            b"{\"ignore_unavailable\":null}",
            b"{\"request_cache\":1}",
            b"{ \"index\":\"a\"}",
            b"{\"ind\\u0065x\":\"a\"}",
            b"{\"indices\":\"a\"}",
            b"{\"routing \":\"r\",\"index\":\"a\"}",
            b"{\"index\":\"a\",\"search_type\":\"query_then_fetch\",\"expand_wildcards\":\"open\",\"preference\":\"p\",\"routing\":\"r\",\"request_cache\":true,\"allow_partial_search_results\":true,\"ignore_unavailable\":true,\"allow_no_indices\":true}",
        ];
        let alphabet: &[u8] = b"{}[]\":,\\ \ttfrueals0nx\x00\x1f\x7f\xc3\xa9\xff\x80";
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut read, mut tried) = (0, 0);
        let mut check = |line: &[u8]| {
            tried += 1;
            let Some(got) = scanned(line) else {
                return;
            };
            read += 1;
            let shown = String::from_utf8_lossy(line);
            let Ok(Value::Object(map)) = body::parse_strict(line) else {
                panic!("scan_header read {shown}, parse_strict refuses it");
            };
            let want: Vec<(String, Value)> = map.into_iter().collect();
            assert_eq!(got, want, "{shown}");
        };
        for seed in seeds {
            check(seed);
            for _ in 0..3_000 {
                let mut line = seed.to_vec();
                for _ in 0..1 + next() % 3 {
                    let at = (next() % (line.len() as u64 + 1)) as usize;
                    let b = alphabet[(next() % alphabet.len() as u64) as usize];
                    match next() % 3 {
                        0 if at < line.len() => {
                            line.remove(at);
                        }
                        1 if at < line.len() => line[at] = b,
                        _ => line.insert(at, b),
                    }
                }
                check(&line);
            }
        }
        assert!(read > 500, "{read} of {tried} lines read");
        // The shapes dashboards send are read here, not by the tree.
        for line in [&seeds[..5], &seeds[10..11], &seeds[17..]].concat() {
            assert!(scanned(line).is_some(), "{}", String::from_utf8_lossy(line));
        }
    }

    /// `check_header_tree` (the tree path's header read, `scan_header` first) decides as
    /// `parse_strict` and `check_header` do (review10): random header lines of allowed,
    /// near-miss and escaped keys (`ind\u0065x`, `Index`, `indices`, `index `), string values
    /// with and without escapes, booleans, numbers, nulls, arrays and objects, with whitespace
    /// or none, in sequences sharing the previous header's expression (`last`), with and
    /// without a path index. A line the tree path accepts is one the serde path accepts, with
    /// the same expression and the same header; a line it refuses, the serde path refuses too.
    #[test]
    fn random_header_lines_decide_as_serde() {
        let keys = [
            "\"index\"",
            "\"index\"",
            "\"ind\\u0065x\"",
            "\"\\u0069ndex\"",
            "\"Index\"",
            "\"indices\"",
            "\"index \"",
            "\"inde\"",
            "\"\"",
            "\"search_type\"",
            "\"search\\u005ftype\"",
            "\"expand_wildcards\"",
            "\"preference\"",
            "\"routing\"",
            "\"request_cache\"",
            "\"allow_partial_search_results\"",
            "\"ignore_unavailable\"",
            "\"allow_no_indices\"",
            "\"ccs_minimize_roundtrips\"",
        ];
        let values = [
            "\"logs-a\"",
            "\"logs-b\"",
            "\"logs-*\"",
            "\"secret\"",
            "\"\"",
            "\"logs-\\u0061\"",
            "\"logs-a,logs-b\"",
            "\"a\\\"b\"",
            "\"\u{e9}\u{1F600}\"",
            "\"query_then_fetch\"",
            "\"dfs_query_then_fetch\"",
            "\"open\"",
            "\"all\"",
            "\"\\u006fpen\"",
            "true",
            "false",
            "null",
            "1",
            "[]",
            "[\"logs-a\"]",
            "[\"logs-a\",\"logs-b\"]",
            "[\"secret\"]",
            "[1]",
            "{}",
            "{\"index\":\"secret\"}",
        ];
        let spaces = ["", "", "", " "];
        let pats = pats();
        let path = index::parse(Some("logs-b"), &pats).unwrap();
        let mut next = crate::testing::xorshift(0x7e57_0f4e_ade1_2500);
        let pick = |from: &[&'static str], next: &mut dyn FnMut() -> u64| {
            from[(next() % from.len() as u64) as usize]
        };
        let (mut accepted, mut scanned_n) = (0, 0);
        for _ in 0..20_000 {
            let path_index = (next().is_multiple_of(2)).then_some(&path);
            let (mut last_serde, mut last_tree) = (None, None);
            for _ in 0..1 + next() % 3 {
                let mut line = String::from("{");
                line.push_str(pick(&spaces, &mut next));
                for k in 0..next() % 5 {
                    if k > 0 {
                        line.push(',');
                    }
                    line.push_str(pick(&keys, &mut next));
                    line.push_str(pick(&spaces, &mut next));
                    line.push(':');
                    line.push_str(pick(&spaces, &mut next));
                    line.push_str(pick(&values, &mut next));
                }
                line.push('}');
                let bytes = line.as_bytes();
                let serde = match body::parse_strict(bytes) {
                    Ok(Value::Object(map)) => check_header(map, path_index, &pats, &mut last_serde),
                    Ok(_) => Err(Rejection::bad_request("not an object")),
                    Err(e) => Err(e),
                };
                let arena = tree::Arena::for_body(bytes.len());
                let tree = check_header_tree(bytes, &arena, path_index, &pats, &mut last_tree);
                scanned_n += usize::from(scan_header(bytes, &mut Entries::new()));
                match (tree, serde) {
                    (Ok((ti, th)), Ok((si, sh))) => {
                        accepted += 1;
                        assert_eq!((ti.elements(), &th), (si.elements(), &sh), "{line}");
                    }
                    (Err(_), Err(_)) => {}
                    (t, s) => panic!("{line}: tree {t:?}, serde {s:?}"),
                }
            }
        }
        assert!(
            accepted > 2_000 && scanned_n > 2_000,
            "{accepted} accepted, {scanned_n} scanned"
        );
    }

    /// `rewrite::Accepted` (issue 10): searches that repeat top-level entries are decided as
    /// when every entry is checked. For sequences of bodies sharing aggregations, queries and
    /// sorts (accepted and refused ones, the same text under another key, escaped and
    /// spaced forms), `search_tree` with one `Accepted` over the sequence answers each body
    /// as with a fresh one: the same refusal, or the same forwarded bytes.
    #[test]
    fn repeated_entries_decide_as_when_checked() {
        let aggs = r#"{"2":{"date_histogram":{"field":"@timestamp","fixed_interval":"30s","min_doc_count":0}}}"#;
        let refused_aggs = r#"{"2":{"terms":{"field":"host.name","size":10,"min_doc_count":0}}}"#;
        let global = r#"{"2":{"global":{},"aggs":{"3":{"terms":{"field":"host.name"}}}}}"#;
        let query = r#"{"bool":{"filter":[{"range":{"@timestamp":{"gte":1700000000000,"lte":1700003600000}}}]}}"#;
        let refused_query =
            r#"{"bool":{"filter":[{"wildcard":{"_id":{"value":"a*"}}},{"term":{"x":"y"}}]}}"#;
        let sort = r#"[{"@timestamp":{"order":"desc","unmapped_type":"boolean"}},"_score"]"#;
        let bodies: Vec<String> = vec![
            format!(r#"{{"size":0,"query":{query},"aggs":{aggs}}}"#),
            format!(r#"{{"aggs":{aggs},"query":{query}}}"#),
            format!(r#"{{"size":0,"query":{query},"aggs":{refused_aggs}}}"#),
            format!(r#"{{"size":0,"query":{refused_query},"aggs":{aggs}}}"#),
            format!(r#"{{"query":{query},"aggs":{global}}}"#),
            format!(r#"{{"query":{aggs}}}"#),
            format!(r#"{{"aggs":{query}}}"#),
            format!(r#"{{"post_filter":{query},"sort":{sort}}}"#),
            format!(r#"{{"post_filter":{refused_query}}}"#),
            format!(r#"{{"sort":{sort},"aggregations":{aggs}}}"#),
            format!(r#"{{"sort":{query}}}"#),
            format!(r#"{{"aggs" : {aggs} , "size":1}}"#),
            format!(r#"{{"\u0061ggs":{aggs}}}"#),
            format!(r#"{{"aggs":{}}}"#, aggs.replace("30s", "\\u0033\\u00300s")),
            format!(r#"{{"query":{query},"aggs":{aggs},"aggregations":{aggs}}}"#),
        ];
        let filters = tenant_a();
        let mut next = crate::testing::xorshift(0x5851_f42d_4c95_7f2d);
        let (mut refused, mut accepted_n) = (0, 0);
        for _ in 0..400 {
            let sequence: Vec<&str> = (0..1 + next() % 6)
                .map(|_| bodies[(next() % bodies.len() as u64) as usize].as_str())
                .collect();
            let (a, r) = sequence_decides_as_each_alone(&sequence, &filters);
            (accepted_n, refused) = (accepted_n + a, refused + r);
        }
        assert!(
            refused > 100 && accepted_n > 100,
            "{refused} refused, {accepted_n} accepted"
        );
    }

    /// Each body of `bodies` decided with one `rewrite::Accepted` for the whole sequence (in
    /// one arena, as an msearch's lines) as with a fresh one: the same refusal, or the same
    /// forwarded bytes. How many were accepted and refused.
    fn sequence_decides_as_each_alone(bodies: &[&str], filters: &FilterSet) -> (usize, usize) {
        fn decide<'a>(
            body: &'a str,
            arena: &'a tree::Arena,
            filters: &'a FilterSet,
            accepted: &mut rewrite::Accepted<'a>,
        ) -> Result<Option<Vec<u8>>, Rejection> {
            let before = arena.highlight_keys();
            let tree = tree::parse(body.as_bytes(), arena)?;
            let out = rewrite::search_tree(
                tree,
                arena.has_knn_key(),
                arena.highlight_keys() - before,
                filters,
                Some(accepted),
            )?;
            Ok(out.map(|n| {
                let mut bytes = Vec::new();
                tree::write(&n, &mut bytes);
                bytes
            }))
        }
        let arena = tree::Arena::for_body(bodies.iter().map(|b| b.len()).sum());
        let mut shared = rewrite::Accepted::default();
        let (mut accepted, mut refused) = (0, 0);
        for body in bodies {
            let want = decide(body, &arena, filters, &mut rewrite::Accepted::default());
            let got = decide(body, &arena, filters, &mut shared);
            assert_eq!(got, want, "{body}");
            match want {
                Ok(_) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
        (accepted, refused)
    }

    /// `rewrite::Accepted` over the corpus (review10): every top-level container of the
    /// bodies in `tests/data` (compact, as a dashboard sends it), under its own key and under
    /// the other top-level keys it could be sent as, in random bodies of one to three entries,
    /// in sequences sharing one `Accepted`: each body is decided as with a fresh one (the same
    /// refusal, or the same forwarded bytes). What `check_key` of the top level decides must
    /// depend on the key and the value only for the memo to hold.
    #[test]
    fn corpus_entries_repeated_decide_as_when_checked() {
        let keys = [
            "query",
            "aggs",
            "aggregations",
            "post_filter",
            "sort",
            "_source",
            "fields",
            "docvalue_fields",
            "stored_fields",
            "highlight",
            "suggest",
            "collapse",
            "rescore",
            "runtime_mappings",
            "script_fields",
            "search_after",
            "indices_boost",
            "stats",
            "ext",
            "pit",
            "slice",
        ];
        let mut pool: Vec<(String, String)> = Vec::new();
        for text in crate::testing::corpus_texts() {
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            for (k, v) in map {
                if matches!(v, Value::Object(_) | Value::Array(_)) {
                    let raw = v.to_string();
                    if raw.len() >= 48 && raw.len() < 4_000 {
                        pool.push((k, raw));
                    }
                }
            }
        }
        pool.sort();
        pool.dedup();
        assert!(pool.len() > 50, "{} entries", pool.len());
        let filters = tenant_a();
        let mut next = crate::testing::xorshift(0x0dd_ba11_cafe_f00d);
        let (mut refused, mut accepted_n) = (0, 0);
        for _ in 0..1_500 {
            let mut bodies: Vec<String> = Vec::new();
            for _ in 0..2 + next() % 5 {
                let mut body = String::from("{");
                let mut used: Vec<&str> = Vec::new();
                for _ in 0..1 + next() % 3 {
                    // Mostly an entry already in the sequence, to be looked up.
                    let (own, raw) = &pool[(next() % pool.len() as u64) as usize];
                    let key = match next() % 3 {
                        0 => keys[(next() % keys.len() as u64) as usize],
                        _ => own.as_str(),
                    };
                    if used.contains(&key) {
                        continue;
                    }
                    used.push(key);
                    if body.len() > 1 {
                        body.push(',');
                    }
                    body.push_str(&format!("{}:{raw}", Value::String(key.to_string())));
                }
                body.push('}');
                bodies.push(body);
                // The same entries again, in another body of the sequence.
                if next().is_multiple_of(2) {
                    let again = bodies[(next() % bodies.len() as u64) as usize].clone();
                    bodies.push(again);
                }
            }
            let sequence: Vec<&str> = bodies.iter().map(String::as_str).collect();
            let (a, r) = sequence_decides_as_each_alone(&sequence, &filters);
            (accepted_n, refused) = (accepted_n + a, refused + r);
        }
        assert!(
            refused > 500 && accepted_n > 500,
            "{refused} refused, {accepted_n} accepted"
        );
    }

    /// `forward_narrowed` forwards the bytes the old narrowing did: each item's index set to
    /// the names of the first entry for its joined expression, then `to_ndjson_with`.
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
                    item.index = Arc::new(Expression::from_names(names.clone()));
                }
            }
            let want = to_ndjson_with(&old, &bodies).unwrap();
            let got = forward_narrowed(&items, &bodies, &narrowed, &Meter::unlimited())
                .unwrap()
                .bytes;
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
            let got = split_lines(text.as_bytes(), &Meter::unlimited()).unwrap();
            assert_eq!(got, want, "{text:?}");
        }
    }

    /// `split_lines` over texts of every length to 200 bytes (a newline at every place of a
    /// 64-byte chunk and of the short rest, runs of them, bytes above 0x7f whose compare is
    /// signed): the pieces of `split(|b| *b == b'\n')`.
    #[test]
    fn lines_split_as_before_across_blocks() {
        let mut next = crate::testing::xorshift(0x5eed_25b0_0000_0001);
        for len in 0..200usize {
            for round in 0..40 {
                let text: Vec<u8> = (0..len)
                    .map(|_| match next() % if round < 20 { 8 } else { 3 } {
                        0 => b'\n',
                        1 => 0x8a,
                        2 => b'\r',
                        3 => 0xff,
                        _ => b'a',
                    })
                    .collect();
                let want: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
                let got = split_lines(&text, &Meter::unlimited()).unwrap();
                assert_eq!(got, want, "{text:?}");
            }
        }
        // Every place of one newline, and all newlines.
        for len in 1..140usize {
            for at in 0..len {
                let mut text = vec![b'x'; len];
                text[at] = b'\n';
                let want: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
                assert_eq!(split_lines(&text, &Meter::unlimited()).unwrap(), want);
            }
            let text = vec![b'\n'; len];
            let want: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            assert_eq!(split_lines(&text, &Meter::unlimited()).unwrap(), want);
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
