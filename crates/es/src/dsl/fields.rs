//! Which field names a `read` token may name, and where (issues #8.2 and #17.3).
//!
//! Elasticsearch keeps per-shard counters beside every document: `_seq_no` (one more for every
//! write to the shard), `_primary_term`, and the Lucene doc id behind `_doc` and `_shard_doc`.
//! They count every document of the shard, other tenants' included, so reading them through a
//! token's own documents (a sort, a docvalue field, an aggregation, a range query, a scoring
//! function, `seq_no_primary_term`) tells how many foreign writes happened between two of its
//! documents. The rule is therefore deny by default for metadata fields, the names starting
//! with `_`, in every position that names a field (queries, aggregation `field`s, sorts
//! anywhere, `fields`, `docvalue_fields`, `stored_fields`, collapse, scoring functions, URI
//! `sort`/`docvalue_fields`/`stored_fields`):
//!
//! - allowed everywhere, because they carry only the document's own data: `_id`, `_index`,
//!   `_routing`, `_ignored` (names of the document's own ignored fields), `_tier` (the tier of
//!   an index the token may read) and `_version` (already in every hit with `version: true`,
//!   which Kibana sends; it counts writes to that one id only);
//! - `_score` in sorts only (a sort by relevance, no counter);
//! - `_doc` and `_shard_doc` only in the top-level `sort` of a search (body, msearch, async
//!   search, URI `?sort=`), where the answer's sort values are sealed before they leave esgate
//!   (the point-in-time tiebreaker handling): not in `top_hits`, `inner_hits`, aggregations or
//!   anywhere else, where no seal applies;
//! - `_none_` in `stored_fields` only (it turns stored fields off);
//! - `_count`, `_key`, `_term` only as aggregation `order` keys (checked by `values`);
//! - `_source` is not a field at all: naming it where a field goes is a 400 (Elasticsearch
//!   answers `fields: ["_source"]` with a 500);
//! - everything else starting with `_` (`_seq_no`, `_primary_term`, `_field_names`,
//!   `_doc_count`, `_nested_path`, `_tsid`, future metadata fields, and user fields whose name
//!   starts with `_`) is refused.
//!
//! Wildcard patterns (`*` is Elasticsearch's only wildcard in field names): `*` alone is
//! allowed (Kibana and Grafana send it); a pattern is allowed when it cannot match a name
//! starting with `_`: it starts with another character, or starts with `*` and contains a `.`
//! (metadata names have no dots). Anything else (`_s*`, `*no`) is refused. Why `*` reads no
//! counter: the `fields` option leaves metadata fields out of a pattern (`FieldFetcher`); in
//! Elasticsearch's code `docvalue_fields` and `stored_fields` resolve `*` over every mapped
//! field, metadata ones included (`getMatchingFieldNames`, attack24), but a `docvalue_fields`
//! `*` then fails wherever a hit is fetched, on `_source` (every index maps it, and its type
//! loads no field data), and the metadata `stored_fields` returns are the document's own
//! (`_id`, `_routing`, `_ignored`; `_seq_no` is not stored). Both test backends leave
//! metadata fields out of `*` everywhere. Since attack26 `docvalue_fields` of `*` alone (body,
//! `top_hits`, `inner_hits`, URI) is refused anyway (403): only that failure kept `_seq_no`'s
//! and `_primary_term`'s doc values out of the hits, and it fails on Elasticsearch (and on
//! OpenSearch, whose 7.10 fork resolves `*` the same way), so no request that works on a real
//! cluster is lost (the test backends answered it: they leave metadata out).
//!
//! Invariant: pure; reasons name only the fixed metadata vocabulary below, never a client value.

use super::json::J;
use super::values::Params;

use crate::error::printable;
use crate::request::params::Param;
use crate::Rejection;

/// Where a field name appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// Queries, aggregation fields, `fields`/`docvalue_fields`, collapse, scoring functions.
    Data,
    /// `stored_fields`: also `_none_`.
    StoredFields,
    /// A sort that is not the top-level one (`top_hits`, `inner_hits`, `top_metrics`,
    /// `collapse.inner_hits`): also `_score`.
    Sort,
    /// The top-level sort of a search body or the URI `sort`: also `_score`, `_doc` and
    /// `_shard_doc`, whose values are sealed in the answer.
    TopLevelSort,
}

/// Metadata fields that carry only the document's own data.
const OWN_DATA: &[&str] = &["_id", "_index", "_routing", "_ignored", "_tier", "_version"];

/// Metadata names a reason may name (a fixed vocabulary, not client data).
const KNOWN_METADATA: &[&str] = &[
    "_id",
    "_index",
    "_routing",
    "_ignored",
    "_tier",
    "_version",
    "_score",
    "_doc",
    "_shard_doc",
    "_none_",
    "_source",
    "_seq_no",
    "_primary_term",
    "_field_names",
    "_doc_count",
    "_nested_path",
    "_data_stream_timestamp",
    "_tsid",
    "_feature",
    "_size",
    "_type",
    "_uid",
    "_parent",
    "_all",
    "_count",
    "_key",
    "_term",
    "_exists_",
];

/// Checks one field name (or pattern) in `pos`.
///
/// A name that starts with neither `_` nor `*` passes in every position without a scan (issue
/// 10: the `*` search was a tenth of a 2 KB search's checks): as a plain name it is not a
/// metadata name, and as a pattern it starts with another character ([`check_pattern`]).
#[inline]
pub(crate) fn check(name: &str, pos: Position) -> Result<(), Rejection> {
    match name.as_bytes().first() {
        Some(b'_' | b'*') => check_marked(name, pos),
        _ => Ok(()),
    }
}

/// The whole check of any name. [`check`] calls it only for a name starting with `_` or `*`:
/// every other name passes here too (`check_skips_only_names_every_position_allows`).
fn check_marked(name: &str, pos: Position) -> Result<(), Rejection> {
    if name.contains('*') {
        return check_pattern(name);
    }
    if !name.starts_with('_') {
        return Ok(());
    }
    let allowed = OWN_DATA.contains(&name)
        || match pos {
            Position::Data => false,
            Position::StoredFields => name == "_none_",
            Position::Sort => name == "_score",
            Position::TopLevelSort => matches!(name, "_score" | "_doc" | "_shard_doc"),
        };
    if allowed {
        return Ok(());
    }
    if name == "_source" {
        return Err(Rejection::bad_request(
            "[_source] is not a field: use the [_source] option to fetch it",
        ));
    }
    Err(Rejection::forbidden(format!(
        "{} may not be read by this token here (internal and metadata fields other than \
         _id, _index, _routing, _ignored, _tier and _version are refused)",
        describe(name)
    )))
}

/// `name^boost` as in `multi_match`/`query_string` field lists: the name is checked.
pub(crate) fn check_boosted(name: &str, pos: Position) -> Result<(), Rejection> {
    let bare = name.rsplit_once('^').map_or(name, |(n, _)| n);
    check(bare, pos)
}

fn check_pattern(pattern: &str) -> Result<(), Rejection> {
    let could_match_metadata = pattern != "*"
        && (pattern.starts_with('_') || (pattern.starts_with('*') && !pattern.contains('.')));
    if could_match_metadata {
        return Err(Rejection::forbidden(
            "a field pattern that can match metadata fields (names starting with _) is not \
             allowed for this token",
        ));
    }
    Ok(())
}

/// How a refused name is shown: the metadata vocabulary by name, anything else generically.
fn describe(name: &str) -> String {
    if KNOWN_METADATA.contains(&name) {
        format!("[{}]", printable(name))
    } else {
        "a field whose name starts with [_]".to_string()
    }
}

/// A string or a list of strings naming fields (`docvalue_fields`, `stored_fields`, `fields`
/// given as names); objects in a list are read for their `field`.
/// [`check_list_of`] of a serde_json value.
pub(crate) fn check_list(v: &serde_json::Value, pos: Position) -> Result<(), Rejection> {
    check_list_of(J::from(v), pos)
}

pub(crate) fn check_list_of(v: J<'_>, pos: Position) -> Result<(), Rejection> {
    match v {
        J::String(s) => check(s, pos),
        J::Array(items) => items.iter().try_for_each(|i| match i {
            J::String(s) => check(s, pos),
            J::Object(m) => match m.get("field") {
                Some(J::String(s)) => check(s, pos),
                _ => Ok(()),
            },
            _ => Ok(()),
        }),
        _ => Ok(()),
    }
}

/// The field names one query object names directly (not its sub-queries, which
/// `rewrite::check_query` visits on its own): keys of field-keyed queries (`term`, `range`,
/// `match`, `geo_distance`, ...), the values of `field`, `default_field`, `path` and `fields`,
/// and the field references inside `query_string` text.
pub(crate) fn check_query_node(ty: &str, body: J<'_>) -> Result<(), Rejection> {
    let J::Object(m) = body else {
        return Ok(());
    };
    for (k, v) in m {
        match k {
            "_name" => {}
            "field" | "default_field" | "path" => {
                if let J::String(s) = v {
                    check(s, Position::Data)?;
                }
            }
            "fields" => match v {
                J::String(s) => check_boosted(s, Position::Data)?,
                J::Array(items) => {
                    for s in items.iter().filter_map(J::as_str) {
                        check_boosted(s, Position::Data)?;
                    }
                }
                _ => {}
            },
            // Any other key: a parameter (never starting with `_`, never with `*`) or the
            // field of a field-keyed query.
            other => check(other, Position::Data)?,
        }
    }
    if ty == "query_string" {
        if let Some(J::String(text)) = m.get("query") {
            check_query_text(text)?;
        }
    }
    Ok(())
}

/// The field references in `query_string` text (Lucene classic syntax): every `name:` before
/// an unescaped colon, with escapes resolved as Lucene resolves them in field names
/// (`\_seq\_no:1` and `\u005fseq_no:1` both name `_seq_no`), and the field after
/// `_exists_:` (a term or a phrase's content; a group is refused). Quoted phrases, ranges and
/// regular expressions end where Lucene's lexer ends them (`QueryParser.jj`: `QUOTED`, the
/// `Range` state, `REGEXPTERM`): a quote inside a range bound or a regular expression opens no
/// phrase. Names before colons inside ranges and regular expressions are checked too (Lucene
/// reads none there, noida does: stricter), inside phrases not. A malformed `\u` escape, an
/// unterminated range or regular expression is a 400.
///
/// Lucene's lexer skips whitespace between tokens, so `_seq_no :5` (a space, tab, line end or
/// ideographic space before the colon) names `_seq_no` as `_seq_no:5` does (attack18a: the
/// token was ended at the space and the colon read as naming nothing): a token followed by
/// whitespace stays open until the next other character, ended then unless it is a colon.
/// `!` ends a token wherever it stands, as Lucene's NOT (`x!_seq_no:5` names `_seq_no`).
pub(crate) fn check_query_text(text: &str) -> Result<(), Rejection> {
    // No allocation unless a token holds an escape (issue 10: a `String` per query text).
    let mut token = Token::new(text);
    let mut exists_next = false;
    // The token is followed by whitespace only so far (a colon next would still name it).
    let mut spaced = false;
    let mut chars = text.chars();
    loop {
        let at = text.len() - chars.as_str().len();
        let Some(c) = chars.next() else { break };
        if spaced {
            if c.is_whitespace() {
                continue;
            }
            spaced = false;
            if c != ':' {
                end_token(&mut token, &mut exists_next)?;
            }
        }
        // An ASCII letter, digit, `.`, `_` or `@` (most of any text) is no case below but the
        // last: taken first, with the run of such characters after it, as one span (issue 10:
        // each went through every test). `query_text_reads_field_names_as_before` (tests).
        if plain(c) {
            let rest = chars.as_str();
            let run = rest.bytes().take_while(|b| plain_byte(*b)).count();
            // The run is ASCII: `run` is a character boundary.
            chars = rest[run..].chars();
            token.push_span(at, at + 1 + run);
            continue;
        }
        match c {
            '\\' => {
                if let Some(escaped) = unescape(&mut chars)? {
                    token.push_decoded(escaped);
                }
            }
            '"' => {
                end_token(&mut token, &mut exists_next)?;
                // `_exists_:"name"` is an exists query on `name`, escapes decoded.
                let mut target = exists_next.then(String::new);
                exists_next = false;
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => match &mut target {
                            Some(name) => {
                                if let Some(d) = unescape(&mut chars)? {
                                    name.push(d);
                                }
                            }
                            None => {
                                chars.next();
                            }
                        },
                        '"' => break,
                        q => {
                            if let Some(name) = &mut target {
                                name.push(q);
                            }
                        }
                    }
                }
                if let Some(name) = target.filter(|n| !n.is_empty()) {
                    check(&name, Position::Data)?;
                }
            }
            // A range's bounds and a regular expression end where Lucene's lexer ends them
            // (quotes and backslashes inside are literal), and the text after them is read
            // again (`[a" TO b] _seq_no:5 "x"`, `/a"/ _seq_no:5` name `_seq_no`: the quote did
            // not open a phrase); names before colons inside are checked too (`inside_end`).
            '[' | '{' | '/' => {
                if exists_next && token.is_empty() {
                    return Err(crate::dsl::expansion::exists_group());
                }
                end_token(&mut token, &mut exists_next)?;
                let end = inside_end(text, at, c)?;
                chars = text[end..].chars();
            }
            ':' => {
                if token.as_str() == "_exists_" {
                    exists_next = true;
                } else if !token.is_empty() {
                    check(token.as_str(), Position::Data)?;
                }
                token.clear();
            }
            // `_exists_:(a b)` names a field with each term of the group (and a range or a
            // regular expression there is refused alike, above).
            '(' if exists_next && token.is_empty() => {
                return Err(crate::dsl::expansion::exists_group())
            }
            c if c.is_whitespace() && !token.is_empty() => spaced = true,
            // `!` is never part of a term to Lucene (`a!_seq_no:5` is `a NOT _seq_no:5`).
            // A boost's number (the lexer's `Boost` state: digits, a `.` and digits) is no part
            // of the next name: `a^2_seq_no:5` is `a` boosted and the field `_seq_no`. The
            // boosted token is kept as before whitespace (`a^2:b` is a parse error to Lucene;
            // read as naming `a`, as `expansion`'s lexer reads it).
            '^' => {
                let rest = chars.as_str();
                chars = rest[boost_len(rest)..].chars();
                spaced = !token.is_empty();
            }
            c if c.is_whitespace() || matches!(c, '(' | ')' | ']' | '}' | '~' | '!') => {
                end_token(&mut token, &mut exists_next)?;
            }
            // Operators in front of a term are not part of it.
            c if matches!(c, '+' | '-' | '&' | '|') && token.is_empty() => {}
            c => token.push_at(at, c),
        }
    }
    end_token(&mut token, &mut exists_next)
}

/// The index after the range (`open` is `[` or `{`) or regular expression (`/`) starting at
/// byte `at`, as Lucene's lexer ends it (`expansion::range_end`, `expansion::regex_end`), its
/// inside's names before colons checked like any: Lucene reads none there, but a backend may
/// (noida reads `/zz user:alice zz/` as holding `user:alice`; `expansion::names_before_colons`).
fn inside_end(text: &str, at: usize, open: char) -> Result<usize, Rejection> {
    let end = if open == '/' {
        crate::dsl::expansion::regex_end(text.as_bytes(), at)?
    } else {
        crate::dsl::expansion::range_end(text.as_bytes(), at + 1)?
    };
    let inside: Vec<char> = text[at + 1..end - 1].chars().collect();
    crate::dsl::expansion::names_before_colons(&inside, |n| check(n, Position::Data))?;
    Ok(end)
}

/// The length of the boost at the start of `rest` (after a `^`), as Lucene's lexer reads it
/// there (`NUMBER: (["0"-"9"])+ ("." (["0"-"9"])+)?`, the only token of its `Boost` state).
fn boost_len(rest: &str) -> usize {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let b = rest.as_bytes();
    let int = digits(b);
    match b.get(int) {
        Some(b'.') if int > 0 => match digits(&b[int + 1..]) {
            0 => int,
            frac => int + 1 + frac,
        },
        _ => int,
    }
}

/// An ASCII letter, digit, `.`, `_` or `@`: a character of a name, and nothing else to
/// [`check_query_text`] (nor to `expansion`'s lexer), read from a table (issue 10: the tests
/// one by one were a fifth of a query text's check).
#[inline]
pub(crate) fn plain(c: char) -> bool {
    c.is_ascii() && plain_byte(c as u8)
}

#[inline]
pub(crate) fn plain_byte(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// [`plain`] of each byte, from the test itself ([`is_plain`]).
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_plain(b as u8);
        b += 1;
    }
    table
};

const fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@')
}

/// The token [`check_query_text`] is reading: a span of the text while it holds no escape
/// (its characters are then consecutive in the text: whatever is not pushed ends the token,
/// or is an operator skipped before its first character), else its decoded copy.
struct Token<'t> {
    text: &'t str,
    /// The span (`start..end`, empty when `start == end`) while not `escaped`.
    start: usize,
    end: usize,
    escaped: bool,
    decoded: String,
}

impl<'t> Token<'t> {
    fn new(text: &'t str) -> Token<'t> {
        Token {
            text,
            start: 0,
            end: 0,
            escaped: false,
            decoded: String::new(),
        }
    }

    fn as_str(&self) -> &str {
        if self.escaped {
            &self.decoded
        } else {
            &self.text[self.start..self.end]
        }
    }

    fn is_empty(&self) -> bool {
        if self.escaped {
            self.decoded.is_empty()
        } else {
            self.start == self.end
        }
    }

    /// `c`, the text's character at byte `at`, appended.
    fn push_at(&mut self, at: usize, c: char) {
        if self.escaped {
            self.decoded.push(c);
        } else {
            if self.start == self.end {
                self.start = at;
            }
            self.end = at + c.len_utf8();
        }
    }

    /// The text's characters at bytes `start..end` appended (each as [`Token::push_at`]).
    fn push_span(&mut self, start: usize, end: usize) {
        if self.escaped {
            self.decoded.push_str(&self.text[start..end]);
        } else {
            if self.start == self.end {
                self.start = start;
            }
            self.end = end;
        }
    }

    /// A decoded escape appended: from here on the token is a copy.
    fn push_decoded(&mut self, c: char) {
        if !self.escaped {
            self.decoded.clear();
            self.decoded.push_str(&self.text[self.start..self.end]);
            self.escaped = true;
        }
        self.decoded.push(c);
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.escaped = false;
        self.decoded.clear();
    }
}

/// The character a backslash escape in Lucene query text stands for, `chars` just after the
/// backslash: `\uXXXX` is decoded (Lucene resolves it in terms and field names, so
/// `\u005fid` is `_id`), any other character stands for itself; `None` at the end of the text.
/// A malformed `\u` escape is a 400.
pub(crate) fn unescape(chars: &mut std::str::Chars<'_>) -> Result<Option<char>, Rejection> {
    match chars.next() {
        Some('u') => {
            let hex: String = chars.by_ref().take(4).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                // Four hex digits, as Lucene's lexer takes them (`from_str_radix` also takes a
                // sign: `\u+05f`).
                .filter(|_| hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(char::from_u32)
                .map(Some)
                .ok_or_else(|| {
                    Rejection::bad_request("the query string has a malformed \\u escape")
                })
        }
        other => Ok(other),
    }
}

/// Ends the current token of [`check_query_text`]: the field named after `_exists_:` is
/// checked like any other.
fn end_token(token: &mut Token<'_>, exists_next: &mut bool) -> Result<(), Rejection> {
    if *exists_next && !token.is_empty() {
        *exists_next = false;
        check(token.as_str(), Position::Data)?;
    }
    token.clear();
    Ok(())
}

/// One sort clause's field (`"f"`, `{"f": ...}`); `nested.path` is checked by the caller.
pub(crate) fn check_sort_field(field: &str, top_level: bool) -> Result<(), Rejection> {
    let pos = if top_level {
        Position::TopLevelSort
    } else {
        Position::Sort
    };
    check(field, pos)
}

/// The fields an aggregation reads: `field` (every value-source aggregation), the `field`s of
/// `multi_terms` terms, `weighted_avg` value and weight, `top_metrics` metrics, composite
/// sources, and the `path` of `nested`/`reverse_nested`.
pub(crate) fn check_agg(ty: &str, body: J<'_>) -> Result<(), Rejection> {
    let J::Object(m) = body else {
        return Ok(());
    };
    check_agg_in(ty, m)
}

/// [`check_agg`] of an object's parameters `m` read through [`Params`].
pub(crate) fn check_agg_in<'a>(ty: &str, m: impl Params<'a>) -> Result<(), Rejection> {
    let field_of = |v: J<'_>| -> Result<(), Rejection> {
        match v.get("field") {
            Some(J::String(s)) => check(s, Position::Data),
            _ => Ok(()),
        }
    };
    if let Some(J::String(s)) = m.get("field") {
        check(s, Position::Data)?;
    }
    if let Some(J::String(p)) = m.get("path") {
        check(p, Position::Data)?;
    }
    match ty {
        "multi_terms" => {
            if let Some(J::Array(terms)) = m.get("terms") {
                terms.iter().try_for_each(field_of)?;
            }
        }
        "weighted_avg" => {
            for k in ["value", "weight"] {
                if let Some(v) = m.get(k) {
                    field_of(v)?;
                }
            }
        }
        "top_metrics" => match m.get("metrics") {
            Some(J::Array(items)) => items.iter().try_for_each(field_of)?,
            Some(one) => field_of(one)?,
            None => {}
        },
        "composite" => {
            if let Some(J::Array(sources)) = m.get("sources") {
                for source in sources {
                    for def in source.as_object().into_iter().flat_map(|s| s.values()) {
                        for body in def.as_object().into_iter().flat_map(|d| d.values()) {
                            field_of(body)?;
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A script-free scoring function of `function_score` (`random_score`, decay functions): the
/// fields it reads; `field_value_factor` is refused. `random_score` must name its `field`: without one,
/// Elasticsearch hashes Lucene doc ids (which count other tenants' documents) into the score.
pub(crate) fn check_score_function(ty: &str, body: J<'_>) -> Result<(), Rejection> {
    let J::Object(m) = body else {
        return Ok(());
    };
    match ty {
        // A backend may compute it for every document the function's own query matches,
        // before the token's filters (osmem does), and fails the search when one value makes
        // a negative score, naming the value: other tenants' values and an existence oracle
        // for any predicate on their documents (the leak oracle, session 13). `modifier` and
        // `factor` reach any value's sign, so no form is safe without knowing the values.
        "field_value_factor" => {
            return Err(Rejection::forbidden(
                "[field_value_factor] is not allowed for this token: the cluster may compute it \
                 over documents outside the token's filters and fail with their values",
            ))
        }
        "random_score" => match m.get("field") {
            Some(J::String(f)) => check(f, Position::Data)?,
            _ => {
                return Err(Rejection::forbidden(
                    "[random_score] needs a [field] for this token (without one it scores by \
                     internal document ids)",
                ))
            }
        },
        "gauss" | "linear" | "exp" => {
            for k in m.keys().filter(|k| *k != "multi_value_mode") {
                check(k, Position::Data)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `docvalue_fields` naming `*` alone (a name, an object's `field`): refused, as it resolves
/// over every mapped field, the metadata counters included (see the module doc; attack26).
pub(crate) fn no_docvalues_of_every_field(v: J<'_>) -> Result<(), Rejection> {
    let every = |i: J<'_>| match i {
        J::String(s) => s == "*",
        J::Object(m) => matches!(m.get("field"), Some(J::String("*"))),
        _ => false,
    };
    let found = match v {
        J::Array(items) => items.iter().any(every),
        one => every(one),
    };
    if found {
        return Err(every_docvalue());
    }
    Ok(())
}

fn every_docvalue() -> Rejection {
    Rejection::forbidden(
        "[docvalue_fields] of [*] is not allowed for this token (it reads the doc values of \
         metadata fields too, sequence numbers among them); name the fields or patterns",
    )
}

/// The query-string parameters that name fields or ask for internal counters (`sort`,
/// `docvalue_fields`, `stored_fields`, `seq_no_primary_term`), on any route that takes them.
pub(crate) fn check_params(params: &[Param]) -> Result<(), Rejection> {
    for (k, v) in params {
        match &**k {
            "sort" => {
                for item in v.split(',').filter(|s| !s.is_empty()) {
                    let field = item.rsplit_once(':').map_or(item, |(f, _)| f);
                    check(field, Position::TopLevelSort)?;
                }
            }
            "docvalue_fields" => {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .try_for_each(|f| match f {
                        "*" => Err(every_docvalue()),
                        _ => check(f, Position::Data),
                    })?
            }
            "stored_fields" => v
                .split(',')
                .filter(|s| !s.is_empty())
                .try_for_each(|f| check(f, Position::StoredFields))?,
            "seq_no_primary_term" if v != "false" => return Err(seq_no_primary_term()),
            _ => {}
        }
    }
    Ok(())
}

/// `seq_no_primary_term: true` (body, `top_hits`, `inner_hits`, URI) is refused.
pub(crate) fn seq_no_primary_term() -> Rejection {
    Rejection::forbidden(
        "[seq_no_primary_term] is not allowed for this token (sequence numbers count other \
         tenants' writes)",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RejectKind;

    fn kind(r: Result<(), Rejection>) -> Option<RejectKind> {
        r.err().map(|e| e.kind)
    }

    /// The fast path of `check` decides every name, in every position, as the whole check does:
    /// names built from three pieces each (metadata names, wildcards, dots, plain text, empty).
    /// `\uXXXX` takes exactly four hex digits, as Lucene's lexer: no sign, no short forms
    /// (robust18: `from_str_radix` read `\u+05f` as `_`).
    #[test]
    fn unicode_escapes_take_four_hex_digits() {
        let read = |t: &str| unescape(&mut t.chars()).map_err(|e| e.kind);
        assert_eq!(read("u005f"), Ok(Some('_')));
        assert_eq!(read("u005Fx"), Ok(Some('_')));
        for bad in ["u+05f", "u-05f", "u05f", "u 05f", "u00g0", "ud83d"] {
            assert_eq!(read(bad), Err(crate::RejectKind::BadRequest), "{bad}");
        }
    }

    #[test]
    fn check_skips_only_names_every_position_allows() {
        let pieces = [
            "",
            "_",
            "*",
            ".",
            "a",
            "_id",
            "_seq_no",
            "_source",
            "_doc",
            "_score",
            "_none_",
            "user",
            "@timestamp",
            "é",
            " ",
            "^2",
            "_shard_doc",
            "no",
        ];
        let mut n = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let name = format!("{a}{b}{c}");
                    for pos in [
                        Position::Data,
                        Position::StoredFields,
                        Position::Sort,
                        Position::TopLevelSort,
                    ] {
                        assert_eq!(
                            check(&name, pos),
                            check_marked(&name, pos),
                            "{name:?} {pos:?}"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 20_000);
    }

    /// The table of [`plain`] is its test, for every byte and characters beyond ASCII.
    #[test]
    fn plain_characters_are_the_test() {
        for c in (0..=0x2FFFu32).filter_map(char::from_u32) {
            let test = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@');
            assert_eq!(plain(c), test, "{c:?}");
        }
        for b in 0..=255u8 {
            assert_eq!(plain_byte(b), is_plain(b), "{b}");
        }
    }

    /// `check_query_text` as it was with a `String` per text (issue 10): the reference of
    /// `query_text_reads_field_names_as_before`.
    fn check_query_text_before(text: &str) -> Result<(), Rejection> {
        // One allocation: a token is never longer than the text (escapes only shorten).
        let mut token = String::with_capacity(text.len());
        let mut exists_next = false;
        let mut spaced = false;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if spaced {
                if c.is_whitespace() {
                    continue;
                }
                spaced = false;
                if c != ':' {
                    end_token_before(&mut token, &mut exists_next)?;
                }
            }
            match c {
                '\\' => {
                    if let Some(escaped) = unescape(&mut chars)? {
                        token.push(escaped);
                    }
                }
                '"' => {
                    end_token_before(&mut token, &mut exists_next)?;
                    let mut target = exists_next.then(String::new);
                    exists_next = false;
                    while let Some(q) = chars.next() {
                        match (q, &mut target) {
                            ('\\', Some(name)) => name.extend(unescape(&mut chars)?),
                            ('\\', None) => {
                                chars.next();
                            }
                            ('"', _) => break,
                            (q, Some(name)) => name.push(q),
                            _ => {}
                        }
                    }
                    if let Some(name) = target.filter(|n| !n.is_empty()) {
                        check(&name, Position::Data)?;
                    }
                }
                '[' | '{' | '/' => {
                    if exists_next && token.is_empty() {
                        return Err(crate::dsl::expansion::exists_group());
                    }
                    end_token_before(&mut token, &mut exists_next)?;
                    let at = text.len() - chars.as_str().len() - 1;
                    chars = text[inside_end(text, at, c)?..].chars();
                }
                ':' => {
                    if token == "_exists_" {
                        exists_next = true;
                    } else if !token.is_empty() {
                        check(&token, Position::Data)?;
                    }
                    token.clear();
                }
                '(' if exists_next && token.is_empty() => {
                    return Err(crate::dsl::expansion::exists_group())
                }
                c if c.is_whitespace() && !token.is_empty() => spaced = true,
                '^' => {
                    let rest = chars.as_str();
                    chars = rest[boost_len(rest)..].chars();
                    spaced = !token.is_empty();
                }
                c if c.is_whitespace() || matches!(c, '(' | ')' | ']' | '}' | '~' | '!') => {
                    end_token_before(&mut token, &mut exists_next)?;
                }
                // Operators in front of a term are not part of it.
                c if token.is_empty() && matches!(c, '+' | '-' | '&' | '|') => {}
                c => token.push(c),
            }
        }
        end_token_before(&mut token, &mut exists_next)
    }

    fn end_token_before(token: &mut String, exists_next: &mut bool) -> Result<(), Rejection> {
        if *exists_next && !token.is_empty() {
            *exists_next = false;
            check(token, Position::Data)?;
        }
        token.clear();
        Ok(())
    }

    /// The span-based token of `check_query_text` reads every text as the copying one did:
    /// texts of three pieces each (field references, escapes, `_exists_`, quotes, operators,
    /// separators, Unicode), refusals compared whole.
    #[test]
    fn query_text_reads_field_names_as_before() {
        let pieces = [
            "a", "_id", "_seq_no", "_exists_", ":", "\\", "\\_", "\\u005f", "\\u00", "\\:", "\"",
            " ", "\u{3000}", "+", "-", "!", "&", "|", "(", ")", "*", "_s*", "^2", "~", "/", "é",
            "x.y", "_source", "", "@t", "9", "ab.c_d@9",
        ];
        let mut n = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let text = format!("{a}{b}{c}");
                    assert_eq!(
                        check_query_text(&text),
                        check_query_text_before(&text),
                        "{text:?}"
                    );
                    n += 1;
                }
            }
        }
        assert!(n > 20_000);
    }

    /// Lucene's classic parser skips whitespace between tokens, so `_seq_no :5` (and a tab, a
    /// line end or an ideographic space before the colon) names the field `_seq_no` as
    /// `_seq_no:5` does: both test backends read `n :y` as a query on `n` (attack18a); and `!`
    /// is an operator wherever it stands, never a term character.
    #[test]
    fn a_field_name_before_whitespace_and_a_colon_is_a_field_reference() {
        for text in [
            "_seq_no :5",
            "_seq_no  :>=0",
            "_seq_no\t:[0 TO 9]",
            "_seq_no\n:5",
            "_seq_no\r\n:5",
            "_seq_no\u{3000}:5",
            "a:1 AND (_primary_term :1)",
            "\\_seq_no :5",
            "_exists_ :_seq_no",
            "_exists_ : _seq_no",
            // `!` ends a term (NOT): `x!_seq_no:5` is `x NOT _seq_no:5` on both backends.
            "x!_seq_no:[0 TO 9]",
            "x!!_seq_no:5",
        ] {
            assert!(check_query_text(text).is_err(), "{text:?}");
            assert!(check_query_text_before(text).is_err(), "{text:?}");
        }
        for text in [
            "a :5",
            "_seq_no 5",
            "x _seq_no \"a\":1",
            "_seq_no (a:1)",
            "_id :x",
            "_exists_ :a",
        ] {
            assert!(check_query_text(text).is_ok(), "{text:?}");
            assert!(check_query_text_before(text).is_ok(), "{text:?}");
        }
    }

    /// `check_query_text` alone (no `expansion` lexer beside it) reads field names where
    /// Lucene's parser does (`testing::LUCENE_FIELDS`), and names before colons inside ranges
    /// and regular expressions too (noida reads them): it refuses a text exactly when one of
    /// them is refused (session 18: a quote in a range bound or a regular expression opened a
    /// phrase that hid `_seq_no`), and a group after `_exists_:` is refused.
    #[test]
    fn query_text_names_the_fields_lucene_reads() {
        for (text, fields, inside) in crate::testing::LUCENE_FIELDS {
            let refused = fields
                .iter()
                .chain(inside.iter())
                .any(|f| check(f, Position::Data).is_err());
            let got = kind(check_query_text(text));
            assert_eq!(got, refused.then_some(RejectKind::Forbidden), "{text:?}");
            assert_eq!(
                kind(check_query_text_before(text)),
                got,
                "{text:?} (reference)"
            );
        }
        for text in [
            "_exists_:(a _seq_no)",
            "_exists_ : (\"_seq_no\")",
            "a OR _exists_:(b)",
            "_exists_:/_seq_no/",
            "_exists_:[_seq_no TO x]",
            "_exists_: {a TO b}",
        ] {
            assert_eq!(
                kind(check_query_text(text)),
                Some(RejectKind::Forbidden),
                "{text:?}"
            );
        }
        // What Lucene's lexer cannot end is a 400.
        for text in ["[a TO b", "/a", "{a TO \"b}\""] {
            assert_eq!(
                kind(check_query_text(text)),
                Some(RejectKind::BadRequest),
                "{text:?}"
            );
        }
    }

    #[test]
    fn metadata_fields_by_position() {
        use Position::*;
        let f = Some(RejectKind::Forbidden);
        let b = Some(RejectKind::BadRequest);
        let cases: &[(&str, Position, Option<RejectKind>)] = &[
            ("user", Data, None),
            ("@timestamp", Data, None),
            ("user.keyword", Sort, None),
            ("_id", Data, None),
            ("_index", Data, None),
            ("_routing", Sort, None),
            ("_ignored", Data, None),
            ("_tier", Data, None),
            ("_version", Sort, None),
            ("_seq_no", Data, f),
            ("_seq_no", Sort, f),
            ("_seq_no", TopLevelSort, f),
            ("_seq_no", StoredFields, f),
            ("_primary_term", Data, f),
            ("_primary_term", TopLevelSort, f),
            ("_doc", TopLevelSort, None),
            ("_shard_doc", TopLevelSort, None),
            ("_doc", Sort, f),
            ("_shard_doc", Sort, f),
            ("_doc", Data, f),
            ("_score", Sort, None),
            ("_score", TopLevelSort, None),
            ("_score", Data, f),
            ("_none_", StoredFields, None),
            ("_none_", Data, f),
            ("_source", Data, b),
            ("_source", StoredFields, b),
            ("_source", TopLevelSort, b),
            ("_field_names", Data, f),
            ("_doc_count", Data, f),
            ("_count", Data, f),
            ("_key", Sort, f),
            ("_mine", Data, f),
            ("_", Data, f),
            ("*", Data, None),
            ("*", StoredFields, None),
            ("user*", Data, None),
            ("*.keyword", Data, None),
            ("_s*", Data, f),
            ("_*", StoredFields, f),
            ("*no", Data, f),
            ("**", Data, f),
        ];
        for (name, pos, want) in cases {
            assert_eq!(kind(check(name, *pos)), *want, "{name} {pos:?}");
        }
    }

    #[test]
    fn reasons_name_only_the_metadata_vocabulary() {
        let e = check("_seq_no", Position::Data).unwrap_err();
        assert!(e.reason.contains("[_seq_no]"), "{}", e.reason);
        let e = check("_LEAKVALUE", Position::Data).unwrap_err();
        assert!(!e.reason.contains("LEAKVALUE"), "{}", e.reason);
    }

    #[test]
    fn query_nodes_check_keys_field_values_and_text() {
        let bad = [
            ("range", json!({"_seq_no": {"gte": 1}})),
            ("term", json!({"_primary_term": 1})),
            ("exists", json!({"field": "_seq_no"})),
            ("exists", json!({"field": "_s*"})),
            (
                "multi_match",
                json!({"query": "1", "fields": ["m", "_seq_no^2"]}),
            ),
            (
                "query_string",
                json!({"query": "1", "default_field": "_seq_no"}),
            ),
            ("query_string", json!({"query": "_seq_no:[0 TO 5]"})),
            ("query_string", json!({"query": "a AND \\_seq\\_no:1"})),
            ("query_string", json!({"query": "(_primary_term:1)"})),
            ("query_string", json!({"query": "_exists_:_seq_no"})),
            ("query_string", json!({"query": "_s*:1"})),
            ("query_string", json!({"query": "\\u005fseq_no:1"})),
            (
                "query_string",
                json!({"query": "x:1 OR +\\u005Fprimary\\u005fterm:1"}),
            ),
            ("query_string", json!({"query": "\\u00zz:1"})),
            ("query_string", json!({"query": "_exists_: _seq_no"})),
            (
                "nested",
                json!({"path": "_seq_no", "query": {"match_all": {}}}),
            ),
            (
                "geo_distance",
                json!({"_seq_no": [0, 0], "distance": "1km"}),
            ),
        ];
        for (ty, body) in bad {
            assert!(check_query_node(ty, J::from(&body)).is_err(), "{ty} {body}");
        }
        let good = [
            ("term", json!({"_index": "logs-a", "_name": "x"})),
            ("ids", json!({"values": ["a1"]})),
            ("match", json!({"message": {"query": "_seq_no"}})),
            (
                "query_string",
                json!({"query": "message:\"_seq_no: 1\" AND user:alice"}),
            ),
            (
                "query_string",
                json!({"query": "_exists_:user AND _index:logs-a"}),
            ),
            (
                "query_string",
                json!({"query": "a-b:c OR x:(y z)", "fields": ["*"]}),
            ),
            (
                "multi_match",
                json!({"query": "x", "fields": ["message^3", "user"]}),
            ),
            ("simple_query_string", json!({"query": "_seq_no:1"})),
        ];
        for (ty, body) in good {
            assert!(check_query_node(ty, J::from(&body)).is_ok(), "{ty} {body}");
        }
    }

    #[test]
    fn aggregation_fields_and_score_functions() {
        let bad = [
            ("terms", json!({"field": "_seq_no"})),
            ("max", json!({"field": "_primary_term"})),
            ("histogram", json!({"field": "_seq_no", "interval": 1})),
            (
                "multi_terms",
                json!({"terms": [{"field": "u"}, {"field": "_seq_no"}]}),
            ),
            (
                "weighted_avg",
                json!({"value": {"field": "_seq_no"}, "weight": {"field": "n"}}),
            ),
            ("top_metrics", json!({"metrics": {"field": "_seq_no"}})),
            (
                "composite",
                json!({"sources": [{"s": {"terms": {"field": "_seq_no"}}}]}),
            ),
            ("terms", json!({"field": "_doc"})),
            ("terms", json!({"field": "_shard_doc"})),
        ];
        for (ty, body) in bad {
            assert!(check_agg(ty, J::from(&body)).is_err(), "{ty} {body}");
        }
        assert!(check_agg("terms", J::from(&json!({"field": "_index"}))).is_ok());
        for (ty, body, ok) in [
            (
                "random_score",
                json!({"seed": 1, "field": "_seq_no"}),
                false,
            ),
            ("random_score", json!({"seed": 1}), false),
            ("random_score", json!({}), false),
            ("random_score", json!({"seed": 1, "field": "_id"}), true),
            ("field_value_factor", json!({"field": "_seq_no"}), false),
            // Refused in every form (see check_score_function).
            ("field_value_factor", json!({"field": "n"}), false),
            (
                "field_value_factor",
                json!({"field": "n", "modifier": "square", "factor": 2}),
                false,
            ),
            (
                "gauss",
                json!({"_seq_no": {"origin": 0, "scale": 1}}),
                false,
            ),
            (
                "exp",
                json!({"n": {"origin": 0, "scale": 1}, "multi_value_mode": "min"}),
                true,
            ),
        ] {
            assert_eq!(
                check_score_function(ty, J::from(&body)).is_ok(),
                ok,
                "{ty} {body}"
            );
        }
    }

    #[test]
    fn uri_parameters() {
        let p = |k: &str, v: &str| crate::testing::pairs(&[(k, v)]);
        for (k, v, ok) in [
            ("sort", "@timestamp:desc,_doc", true),
            ("sort", "_seq_no:asc", false),
            ("sort", "n,_primary_term", false),
            ("docvalue_fields", "@timestamp,_seq_no", false),
            ("docvalue_fields", "@timestamp", true),
            ("docvalue_fields", "*", false),
            ("docvalue_fields", "@timestamp,*", false),
            ("docvalue_fields", "*.keyword,@t*", true),
            ("stored_fields", "_none_", true),
            ("stored_fields", "*", true),
            ("stored_fields", "_seq_no", false),
            ("seq_no_primary_term", "true", false),
            ("seq_no_primary_term", "", false),
            ("seq_no_primary_term", "false", true),
            ("q", "_seq_no:1", true), // the query is checked once it is a body query
        ] {
            assert_eq!(check_params(&p(k, v)).is_ok(), ok, "{k}={v}");
        }
    }

    mod props {
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(crate::testing::cases(2000))]

            /// Any text: read without a panic, the same way twice, and as the reading before
            /// the spans (`check_query_text_before`).
            #[test]
            fn any_query_text_is_checked_without_panic_and_alike(q in crate::testing::query_text()) {
                let checked = super::check_query_text(&q);
                prop_assert_eq!(&checked, &super::check_query_text(&q), "{:?}", q);
                prop_assert_eq!(&checked, &super::check_query_text_before(&q), "{:?}", q);
            }

            /// Any text the classic lexer of `expansion` reads (held to Lucene's grammar by
            /// `classic_text_names_the_fields_lucene_reads`) naming a field that may not be
            /// named: `check_query_text` refuses it too, on its own (session 18: each reader
            /// was right only where the other refused). `<` and `>` are read as spaces: the
            /// lexer reads them as KQL's range operators after a field in classic text too
            /// (`a<b` is one term to Lucene), stricter than Lucene; and a text it reads a fuzzy
            /// term in is refused whatever it names (its field after a `~`, `a~:`, is a parse
            /// error to Lucene). Other Unicode whitespace (U+00A0, U+2000, ...) is read as a
            /// space too: `check_query_text` ends a name there (a backend splitting on Unicode
            /// whitespace would), Lucene reads it as a term character (`_\u{a0}x:` is one name),
            /// so this reader is the stricter one.
            #[test]
            fn query_text_refuses_every_field_the_lexer_names(
                q in prop_oneof![crate::testing::query_text(), crate::testing::classic_text()]
            ) {
                let q: String = q
                    .chars()
                    .map(|c| match c {
                        '<' | '>' => ' ',
                        ' ' | '\t' | '\n' | '\r' | '\u{3000}' => c,
                        c if c.is_whitespace() => ' ',
                        c => c,
                    })
                    .collect();
                if let Ok(read) = crate::dsl::expansion::read_text(&q, crate::dsl::expansion::Syntax::Classic) {
                    let refused = !read.fuzzy && read
                        .fields
                        .iter()
                        .filter(|f| *f != "_exists_")
                        .any(|f| super::check(f, super::Position::Data).is_err());
                    // Both checks a `query_string`'s text goes through (`query::flat_text_query`):
                    // the lexer may read a name this one does not, e.g. before a boost
                    // (`*TO ^2:`, attack23's proptest find), which the expansion check refuses.
                    if refused {
                        prop_assert!(
                            super::check_query_text(&q).is_err()
                                || crate::dsl::expansion::check_text(
                                    &q,
                                    crate::dsl::expansion::Syntax::Classic,
                                    &[]
                                )
                                .is_err(),
                            "{:?} {:?}",
                            q,
                            read.fields
                        );
                    }
                }
            }
        }
    }
}
