//! Term expansion and score thresholds: which multi-term, fuzzy and relevance options a `read`
//! token may use, in the query DSL (`rewrite.rs`), query text (`query_string`,
//! `simple_query_string`, ES|QL `QSTR`/`KQL`, SQL `QUERY()`) and the option lists of ES|QL and
//! SQL full-text functions (`esql.rs`, `sql.rs`).
//!
//! Why: Elasticsearch expands fuzzy terms, phrase prefixes and `top_terms_N` rewrites by picking
//! at most N terms from the whole shard dictionary *before* the token's filter applies, so other
//! tenants' terms push the token's own terms out and counts change with foreign data (an
//! existence oracle for any term, `_id` included, with a small `max_expansions`). Scores
//! (BM25) use index-wide statistics too, so a score threshold turns them into counts.
//!
//! Invariant: what passes has a match set that depends only on the token's own documents:
//! no fuzziness (absent, `0` or `"0"` only), no `max_expansions`/`fuzzy_max_expansions`, multi-term
//! rewrites only `constant_score`/`constant_score_blended` (every matching term, no clause
//! limit that could fail), no `phrase_prefix`/`bool_prefix` types, no `~` after a term in query
//! text (`"phrase"~N` proximity is fine), and no expansion at all (prefix, wildcard, regexp,
//! range, fuzzy) where a target field may be a metadata field such as `_id`. Reasons name keys,
//! never values.

use super::json::{Obj, J};

use super::fields::{self, Position};
use crate::error::printable;
use crate::Rejection;

/// The multi-term rewrite methods whose match set is every matching term, without a limit
/// (`top_terms_N` keeps N terms of the whole shard; the `*_boolean` ones fail past the clause
/// limit, which is an oracle too).
const SAFE_REWRITES: &[&str] = &["constant_score", "constant_score_blended"];

/// Multi-field query types that expand the last term as a prefix over the shard dictionary.
const EXPANDING_TYPES: &[&str] = &["phrase_prefix", "bool_prefix"];

/// Checks one option of a full-text or multi-term query (a DSL parameter, an ES|QL option map
/// entry, a SQL option). `J::Null` stands for a value that is not a literal (a parameter).
pub(crate) fn option(key: &str, value: J<'_>) -> Result<(), Rejection> {
    match key {
        "fuzziness" if !no_fuzziness(value) => Err(refused(
            key,
            "fuzzy expansion picks its terms from other tenants' documents too",
        )),
        "max_expansions" | "fuzzy_max_expansions" => Err(refused(
            key,
            "term expansion picks its terms from other tenants' documents too",
        )),
        "rewrite" | "fuzzy_rewrite"
            if !value.as_str().is_some_and(|s| SAFE_REWRITES.contains(&s)) =>
        {
            Err(refused(
                key,
                "only constant_score and constant_score_blended rewrites are allowed",
            ))
        }
        "type"
            if value.is_null()
                || value.as_str().is_some_and(|s| {
                    EXPANDING_TYPES.contains(&s.to_ascii_lowercase().as_str())
                }) =>
        {
            Err(refused(
                key,
                "prefix query types expand over other tenants' terms",
            ))
        }
        _ => Ok(()),
    }
}

/// Checks every entry of an options object (see [`option`]).
/// [`options_of`] of a serde_json object.
pub(crate) fn options(m: &serde_json::Map<String, serde_json::Value>) -> Result<(), Rejection> {
    options_of(Obj::V(m))
}

pub(crate) fn options_of(m: Obj<'_>) -> Result<(), Rejection> {
    m.iter().try_for_each(|(k, v)| option(k, v))
}

/// Whether a fuzziness value means "exact" (`0` or `"0"`).
fn no_fuzziness(v: J<'_>) -> bool {
    match v {
        J::Number(n) => n.as_f64() == Some(0.0),
        J::String(s) => s.trim() == "0",
        _ => false,
    }
}

/// Elasticsearch's metadata fields (and a few internal ones) a field pattern could reach.
const METADATA_FIELDS: &[&str] = &[
    "_id",
    "_routing",
    "_source",
    "_ignored",
    "_ignored_source",
    "_seq_no",
    "_primary_term",
    "_version",
    "_tier",
    "_field_names",
    "_nested_path",
    "_data_stream_timestamp",
    "_doc_count",
    "_feature",
    "_index_mode",
    "_tsid",
    "_ts_routing_hash",
    "_size",
    "_inference_fields",
];

/// Whether a field name or pattern (with an optional `^boost`) may reach a metadata field such
/// as `_id`, whose terms are every document's, tenant or not. Any name starting with `_` may
/// (except `_index`: its value is the index name, and the token's indices are checked anyway);
/// a `*` pattern may when it matches a metadata field's name, except `*` alone (Elasticsearch
/// leaves metadata fields out of an all-fields pattern). Patterns match like Elasticsearch's
/// `Regex.simpleMatch`, `*` only: `index::glob_match`.
///
/// A name starting with an ASCII letter, digit or `@` and holding no `*` cannot: its name part
/// (before any `^`, trimmed) starts with that character too and holds no `*`. Decided without
/// splitting or trimming (issue 10: every field named in `query_string` text comes here).
/// `may_be_metadata_fast_path_decides_as_the_full_test` (tests).
#[inline]
pub(crate) fn may_be_metadata(field: &str) -> bool {
    let bytes = field.as_bytes();
    let plain_start = bytes
        .first()
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'@');
    if plain_start && !bytes.contains(&b'*') {
        return false;
    }
    may_be_metadata_by_name(field)
}

fn may_be_metadata_by_name(field: &str) -> bool {
    let name = field.split('^').next().unwrap_or(field).trim();
    if name == "_index" || name == "*" {
        return false;
    }
    name.starts_with('_')
        || (name.contains('*')
            && METADATA_FIELDS
                .iter()
                .any(|m| crate::indices::index::glob_match(name, m)))
}

/// What the text of a query-string-like query does.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TextQuery {
    /// A `~` after a term (a fuzzy term), or one the lexer cannot place.
    pub fuzzy: bool,
    /// A multi-term construct: wildcard, prefix, regexp, range.
    pub expands: bool,
    /// Field names written in the text (`field:`), escapes removed (`read_text` only;
    /// `scan_text` hands them to its caller instead).
    pub fields: Vec<String>,
}

/// The query-text grammars read here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// Lucene's classic syntax: `query_string`, `?q=`, ES|QL `QSTR`, SQL `QUERY()`.
    Classic,
    /// `simple_query_string`: no fields, regexps or ranges in the text.
    Simple,
    /// Kibana's KQL (ES|QL `KQL`): fields, wildcards, no fuzzy terms or regexps.
    Kql,
}

/// Reads query text the way Lucene's query parsers split it (conservatively: anything the
/// reader cannot place counts as fuzzy or expanding, so it is refused where that matters).
/// The checks use [`scan_text`]; this collects the field names too (tests).
#[cfg(test)]
pub(crate) fn read_text(text: &str, syntax: Syntax) -> Result<TextQuery, Rejection> {
    let mut fields = Vec::new();
    let mut read = scan_text(text, syntax, |f| fields.push(f.to_string()))?;
    read.fields = fields;
    Ok(read)
}

/// `read_text` giving each field name to `on_field` (in order) instead of collecting them:
/// [`check_text`] only asks whether one may be a metadata field (issue 10: a string per field
/// and their list were a fifth of a query text's check). `fields` of the result stays empty.
fn scan_text(
    text: &str,
    syntax: Syntax,
    mut on_field: impl FnMut(&str),
) -> Result<TextQuery, Rejection> {
    // ASCII text is read from its bytes, each byte its own character (issue 10: collecting the
    // characters of every query text first was a fifth of its check).
    if text.is_ascii() {
        read_chars::<_, true>(text.as_bytes(), syntax, &mut on_field)
    } else {
        let chars: Vec<char> = text.chars().collect();
        read_chars::<_, true>(&chars, syntax, &mut on_field)
    }
}

/// A character of the text [`read_chars`] reads: a `char`, or a byte of ASCII text (or of any
/// UTF-8 text where only ASCII characters matter, as in [`range_end`] and [`regex_end`]).
pub(crate) trait Ch: Copy {
    fn ch(self) -> char;
}

impl Ch for char {
    #[inline]
    fn ch(self) -> char {
        self
    }
}

impl Ch for u8 {
    #[inline]
    fn ch(self) -> char {
        char::from(self)
    }
}

/// `scan_text` over the text's characters. `PLAIN`: an ASCII letter, digit, `.`, `_` or `@`
/// (`fields::plain`, most of any text) taken in one step, as the general steps below take it (not whitespace,
/// a term character, pushed onto the term); issue 10: each went through every test of the
/// loop. `PLAIN` off is what it is compared with (`ascii_text_reads_as_its_characters`).
fn read_chars<C: Ch, const PLAIN: bool>(
    chars: &[C],
    syntax: Syntax,
    on_field: &mut impl FnMut(&str),
) -> Result<TextQuery, Rejection> {
    let at = |j: usize| chars.get(j).map(|c| c.ch());
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Prev {
        Nothing,
        Term,
        Phrase,
    }
    let classic = syntax == Syntax::Classic;
    let kql = syntax == Syntax::Kql;
    let mut out = TextQuery::default();
    let mut prev = Prev::Nothing;
    // The index just after the last phrase's closing quote: `simple_query_string` reads a `~`
    // there as the phrase's slop, and anywhere else after a token character as a fuzzy term
    // (`SimpleQueryParser.consumePhrase`, `consumeToken`: `"a"^~2` is the fuzzy term `^`~2).
    let mut phrase_end = usize::MAX;
    // The current term, or the last one when only whitespace followed it (`user :x` names a
    // field too: the parsers skip whitespace between tokens).
    let mut term = String::new();
    let mut in_term = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].ch();
        if PLAIN && crate::dsl::fields::plain(c) {
            if !in_term {
                term.clear();
                in_term = true;
            }
            term.push(c);
            prev = Prev::Term;
            i += 1;
            continue;
        }
        // Lucene's whitespace only: any other space is a term character to its parser (so a
        // `~` after it is a fuzzy term, not a phrase's slop).
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{3000}') {
            in_term = false;
            i += 1;
            continue;
        }
        let term_char = match c {
            '\\' | '*' | '?' => true,
            '"' | '~' | '^' | '(' | ')' => false,
            ':' => syntax == Syntax::Simple,
            '<' | '>' => syntax == Syntax::Simple,
            // KQL's nested query brackets (`nested:{ name: x }`), not literal characters.
            '{' | '}' => syntax == Syntax::Simple,
            '/' | '[' | ']' | '!' => !classic,
            // Operators at the start of a term, term characters inside one (`a-b`).
            '+' | '-' | '|' | '&' => in_term,
            _ => true,
        };
        if term_char {
            if !in_term {
                term.clear();
                in_term = true;
            }
            match c {
                // The classic parser decodes `\uXXXX` (so `\u005fid:` names `_id`), the same
                // way `fields::check_query_text` reads field names; the others take the next
                // character as it is.
                // KQL decodes `\uXXXX` too, and `\t`, `\n`, `\r` (`ParserUtils.extractText`:
                // `\u005fseq_no:5` names `_seq_no`).
                '\\' if classic || kql => {
                    let rest: String = chars[i + 1..].iter().take(5).map(|c| c.ch()).collect();
                    let mut after = rest.chars();
                    if let Some(escaped) = crate::dsl::fields::unescape(&mut after)? {
                        term.push(if kql { kql_escape(escaped) } else { escaped });
                    }
                    i += 1 + rest.chars().count() - after.count();
                }
                '\\' => {
                    if let Some(next) = at(i + 1) {
                        term.push(next);
                    }
                    i += 2;
                }
                _ => {
                    if c == '*' || (c == '?' && syntax != Syntax::Simple) {
                        out.expands = true;
                    }
                    term.push(c);
                    i += 1;
                }
            }
            prev = Prev::Term;
            continue;
        }
        in_term = false;
        match c {
            ':' | '<' | '>' => {
                // `field:`, and the ranges `field:>x` and (KQL) `field > x`.
                if !term.is_empty() {
                    on_field(&term);
                    // `_exists_:name` is an exists query on `name` (Elasticsearch's
                    // `QueryStringQueryParser.getFieldQuery`).
                    if classic && c == ':' && term == "_exists_" {
                        exists_target(chars, i + 1, on_field)?;
                    }
                    term.clear();
                }
                if c != ':' {
                    out.expands = true;
                }
                prev = Prev::Nothing;
                i += 1;
            }
            // A KQL quoted string is a field name before `:` or a range operator
            // (`fieldName: QUOTED_STRING`): kept as the term, decoded.
            '"' if kql => {
                let end = kql_quoted_end(chars, i)?;
                term = kql_unquote(&chars[i + 1..end])?;
                prev = Prev::Phrase;
                i = end + 1;
            }
            '"' => {
                let mut j = i + 1;
                loop {
                    match at(j) {
                        None => return Err(unterminated("phrase")),
                        Some('\\') => j += 2,
                        Some('"') => break,
                        Some(_) => j += 1,
                    }
                }
                term.clear();
                prev = Prev::Phrase;
                i = j + 1;
                phrase_end = i;
            }
            '~' => {
                // Only a phrase's slop is exact; KQL has no slop, so any `~` there is refused.
                let slop = match syntax {
                    Syntax::Classic => prev == Prev::Phrase,
                    Syntax::Simple => i == phrase_end,
                    Syntax::Kql => false,
                };
                if !slop {
                    out.fuzzy = true;
                }
                prev = Prev::Nothing;
                i += 1;
                while at(i).is_some_and(|d| d.is_ascii_digit() || d == '.') {
                    i += 1;
                }
            }
            '^' => {
                // A boost keeps what came before it (`"a b"^2~3` is still a phrase's slop).
                i += 1;
                while at(i).is_some_and(|d| d.is_ascii_digit() || d == '.') {
                    i += 1;
                }
            }
            '/' => {
                let end = regex_end(chars, i)?;
                // A name before a colon inside is no field to Lucene, but noida reads one
                // there (`/zz user:alice zz/` counts `user:alice`): given too, stricter.
                names_before_colons(&chars[i + 1..end - 1], |n| {
                    on_field(n);
                    Ok(())
                })?;
                i = end;
                out.expands = true;
                term.clear();
                prev = Prev::Term;
            }
            '[' | '{' if classic => {
                i = range_end(chars, i + 1)?;
                out.expands = true;
                term.clear();
                prev = Prev::Nothing;
            }
            _ => {
                term.clear();
                prev = Prev::Nothing;
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index after the range whose body starts at `j` (just after `[` or `{`), read like
/// Lucene's range lexer (`QueryParser.jj`, state `Range`): the longest match wins, so each
/// token is the longer of a "goop" (`RANGE_GOOP`: up to a space, `]` or `}`; backslashes,
/// quotes, slashes and colons literal) and, from a `"`, a quoted bound (`RANGE_QUOTED`, `\"`
/// escaped); a space between tokens is skipped; the first `]` or `}` between tokens ends it.
/// Lucene's other whitespace (tab, line ends, U+3000) is skipped too, but a goop may start with
/// it and is longer, so it starts one here (`[\t"a TO b] _seq_no:5 "x"`: the goop `\t"a`,
/// not a quoted bound up to the last quote).
pub(crate) fn range_end<C: Ch>(chars: &[C], mut j: usize) -> Result<usize, Rejection> {
    let at = |j: usize| chars.get(j).map(|c| c.ch());
    loop {
        match at(j) {
            None => return Err(unterminated("range")),
            Some(']' | '}') => return Ok(j + 1),
            Some(' ') => j += 1,
            Some(first) => {
                let mut goop = j;
                while at(goop).is_some_and(|d| !matches!(d, ' ' | ']' | '}')) {
                    goop += 1;
                }
                let mut quoted = j;
                if first == '"' {
                    let mut k = j + 1;
                    while let Some(d) = at(k) {
                        if d == '"' {
                            // Content must not be empty; an unescaped quote must end it, an
                            // escaped one may (the longest reading wins).
                            if k > j + 1 {
                                quoted = k + 1;
                            }
                            if k == j + 1 || chars[k - 1].ch() != '\\' {
                                break;
                            }
                        }
                        k += 1;
                    }
                }
                j = goop.max(quoted);
            }
        }
    }
}

/// The index after the regular expression opened by the `/` at `open`, read like Lucene's
/// lexer (`REGEXPTERM: "/" (~["/"] | "\\/")* "/"`, the longest match): a `/` no backslash
/// precedes ends it (quotes, colons and brackets inside are literal: `/a"/ _seq_no:5` names
/// `_seq_no`); one a backslash precedes may stand for itself (`\/`) or end it, so without a
/// later one the last of those ends it (`/a\/ _seq_no:5`). None at all: a 400.
pub(crate) fn regex_end<C: Ch>(chars: &[C], open: usize) -> Result<usize, Rejection> {
    let mut last = None;
    for k in open + 1..chars.len() {
        if chars[k].ch() == '/' {
            if chars[k - 1].ch() != '\\' {
                return Ok(k + 1);
            }
            last = Some(k + 1);
        }
    }
    last.ok_or_else(|| unterminated("regular expression"))
}

/// Every name written before a colon in `chars`, the inside of a range or a regular expression
/// (whitespace allowed between them, escapes decoded): no field to Lucene's lexer, which reads
/// a bound or a regular expression whole, but a backend that reads query text otherwise may
/// see one there (noida reads `/zz user:alice zz/` as holding the field query `user:alice`),
/// so the readers of field names check them too: stricter, never looser, than either reading.
/// Names end at whitespace and at the grammars' special characters, as in the text around.
pub(crate) fn names_before_colons<C: Ch>(
    chars: &[C],
    mut on_name: impl FnMut(&str) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    let mut name = String::new();
    // The name is followed by whitespace only so far: a colon next still names it.
    let mut spaced = false;
    let mut j = 0;
    while let Some(c) = chars.get(j).map(|c| c.ch()) {
        if spaced && !c.is_whitespace() && c != ':' {
            name.clear();
            spaced = false;
        }
        match c {
            ':' => {
                if !name.is_empty() {
                    on_name(&name)?;
                }
                name.clear();
                spaced = false;
                j += 1;
            }
            c if c.is_whitespace() => {
                spaced = !name.is_empty();
                j += 1;
            }
            '\\' => j = escape_at(chars, j, &mut name)?,
            '"' | '(' | ')' | '[' | ']' | '{' | '}' | '/' | '^' | '~' | '!' => {
                name.clear();
                j += 1;
            }
            '+' | '-' | '&' | '|' if name.is_empty() => j += 1,
            c => {
                name.push(c);
                j += 1;
            }
        }
    }
    Ok(())
}

/// The character a KQL escape `\c` stands for, `\u` decoded before: `\t`, `\n`, `\r` are
/// whitespace, anything else itself (`ParserUtils.unescapeUnquotedLiteral`).
fn kql_escape(c: char) -> char {
    match c {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        c => c,
    }
}

/// The index of the quote that ends the KQL quoted string opened at `open`: the lexer takes
/// the longest `'"' QUOTED_CHAR* '"'`, where a backslash may stand alone (`~["]`) or escape a
/// quote, so the string ends at the first quote no backslash precedes, else at the last one
/// a backslash precedes.
fn kql_quoted_end<C: Ch>(chars: &[C], open: usize) -> Result<usize, Rejection> {
    let mut last = None;
    for k in open + 1..chars.len() {
        if chars[k].ch() == '"' {
            if chars[k - 1].ch() != '\\' || k == open + 1 {
                return Ok(k);
            }
            last = Some(k);
        }
    }
    last.ok_or_else(|| unterminated("phrase"))
}

/// A KQL quoted string's content decoded as `ParserUtils.unescapeQuotedString` does: `\t`,
/// `\n`, `\r`, `\"`, `\\` and `\uXXXX` (a malformed one is a 400), any other escape kept
/// with its backslash.
fn kql_unquote<C: Ch>(content: &[C]) -> Result<String, Rejection> {
    let text: String = content.iter().map(|c| c.ch()).collect();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' || chars.as_str().is_empty() {
            out.push(c);
            continue;
        }
        let rest = chars.as_str();
        match rest.chars().next() {
            Some('u') => {
                if let Some(d) = crate::dsl::fields::unescape(&mut chars)? {
                    out.push(d);
                }
            }
            Some(e @ ('t' | 'n' | 'r' | '"' | '\\')) => {
                chars.next();
                out.push(kql_escape(e));
            }
            _ => out.push('\\'),
        }
    }
    Ok(out)
}

/// Gives `on_field` the field an exists query `_exists_:` names, the text at `j` just after
/// its colon: after Lucene's whitespace, a term (escapes decoded, `*`/`?` kept) or a phrase's
/// content. A group (`_exists_:(a b)` names a field with each term) is refused.
fn exists_target<C: Ch>(
    chars: &[C],
    mut j: usize,
    on_field: &mut impl FnMut(&str),
) -> Result<(), Rejection> {
    let at = |j: usize| chars.get(j).map(|c| c.ch());
    while at(j).is_some_and(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{3000}')) {
        j += 1;
    }
    let mut name = String::new();
    match at(j) {
        Some('(' | '[' | '{' | '/') => return Err(exists_group()),
        Some('"') => {
            j += 1;
            loop {
                match at(j) {
                    // Unterminated: the caller refuses the text.
                    None => return Ok(()),
                    Some('"') => break,
                    Some('\\') => j = escape_at(chars, j, &mut name)?,
                    Some(c) => {
                        name.push(c);
                        j += 1;
                    }
                }
            }
        }
        _ => {
            while let Some(c) = at(j) {
                match c {
                    ' ' | '\t' | '\n' | '\r' | '\u{3000}' | '"' | '~' | '^' | '(' | ')' | '['
                    | ']' | '{' | '}' | '/' | '!' | ':' => break,
                    '\\' => j = escape_at(chars, j, &mut name)?,
                    c => {
                        name.push(c);
                        j += 1;
                    }
                }
            }
        }
    }
    if !name.is_empty() {
        on_field(&name);
    }
    Ok(())
}

/// The escape at `chars[j]` (a backslash) decoded onto `name`, as a field name's escapes are
/// (`fields::unescape`); where the text goes on after it.
fn escape_at<C: Ch>(chars: &[C], j: usize, name: &mut String) -> Result<usize, Rejection> {
    let rest: String = chars.iter().skip(j + 1).take(5).map(|c| c.ch()).collect();
    let mut after = rest.chars();
    if let Some(c) = crate::dsl::fields::unescape(&mut after)? {
        name.push(c);
    }
    Ok(j + 1 + rest.chars().count() - after.count())
}

/// The refusal of a group, range or regular expression after `_exists_:` (`_exists_:(a b)` is
/// an exists query on each of its terms: field names this reader does not follow; a range or
/// a regular expression there means nothing to Elasticsearch, but a backend may read an exists
/// query's field in it).
pub(crate) fn exists_group() -> Rejection {
    Rejection::forbidden(
        "a group, range or regular expression after [_exists_] is not allowed for this token: \
         name one field",
    )
}

pub(crate) fn unterminated(what: &str) -> Rejection {
    Rejection::bad_request(format!("the query text has an unterminated {what}"))
}

/// Checks query text and the fields it targets: no fuzzy terms, and no expansion where a field
/// (written in the text, or among `targets`: `default_field`, `fields`) may be a metadata field.
pub(crate) fn check_text(text: &str, syntax: Syntax, targets: &[&str]) -> Result<(), Rejection> {
    named_fields(targets)?;
    if names_and_colons(text) {
        return Ok(());
    }
    let mut metadata = targets.iter().any(|f| may_be_metadata(f));
    let mut named = Ok(());
    let read = scan_text(text, syntax, |f| {
        if f == "_exists_" {
            return;
        }
        metadata = metadata || may_be_metadata(f);
        if named.is_ok() {
            named = fields::check(f, Position::Data);
        }
    })?;
    named?;
    if read.fuzzy {
        return Err(Rejection::forbidden(
            "fuzzy terms (`~` after a term) are not allowed for this token: fuzzy expansion \
             picks its terms from other tenants' documents too",
        ));
    }
    if read.expands && metadata {
        return Err(Rejection::forbidden(
            "wildcard, prefix, regexp and range terms on metadata fields are not allowed for \
             this token",
        ));
    }
    Ok(())
}

/// Whether `text` holds only name characters (`fields::plain`), spaces and colons, like
/// `service:checkout AND level:error`: every syntax reads such a text as terms and fields,
/// none fuzzy (no `~`) and none expanding (no `*`, `?`, `/`, bracket, `<` or `>`), and reads
/// it without a refusal (no quote, escape or bracket to leave unterminated), so [`check_text`]
/// accepts it whatever its targets, without reading it term by term (issue 10: that read was
/// a fifth of a dashboard search's query check). `plain_texts_are_accepted_as_when_read`
/// (tests) holds it to the full read.
/// A name starting with `_` may be a metadata field's (`_seq_no:5`): such a text is read whole,
/// for [`fields::check`] of the names it holds.
fn names_and_colons(text: &str) -> bool {
    let mut word_start = true;
    text.bytes().all(|b| {
        let plain = b == b' ' || b == b':' || fields::plain_byte(b);
        let metadata_like = word_start && b == b'_';
        word_start = b == b' ' || b == b':';
        plain && !metadata_like
    })
}

/// The fields a query text searches by default (`default_field`, `fields`: a boost allowed)
/// and those it names (`name:`) are the fields a query may name (`fields::check`): ES|QL
/// `QSTR`/`KQL` and SQL `QUERY()` push their text down to Lucene as a `query_string`, which
/// reads any field of the mapping, `_seq_no` included (attack18a: `QSTR("_seq_no:5")`, a
/// term on an internal counter, passed as it does not expand). A target that is not a
/// literal is given as `_` and refused.
fn named_fields(targets: &[&str]) -> Result<(), Rejection> {
    targets
        .iter()
        .try_for_each(|f| fields::check_boosted(f.trim(), Position::Data))
}

/// The refusal of a score threshold (`min_score` anywhere).
pub(crate) fn score_threshold(key: &str) -> Rejection {
    Rejection::forbidden(format!(
        "[{}] is not allowed for this token: scores depend on other tenants' documents, so a \
         threshold on them would make counts depend on them too",
        printable(key)
    ))
}

/// The refusal of a query or aggregation whose match set depends on index-wide statistics.
pub(crate) fn statistics(name: &str) -> Rejection {
    Rejection::forbidden(format!(
        "[{}] is not allowed for this token: what it matches depends on terms or statistics of \
         documents outside the token's filters",
        printable(name)
    ))
}

fn refused(key: &str, why: &str) -> Rejection {
    Rejection::forbidden(format!(
        "[{}] is not allowed for this token: {why}",
        printable(key)
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::RejectKind;

    /// The fast path of `may_be_metadata` answers as the full test, over names built from
    /// three pieces each (metadata names, stars, boosts, spaces, Unicode, empty).
    #[test]
    fn may_be_metadata_fast_path_decides_as_the_full_test() {
        let pieces = [
            "", "_", "*", "^", "^2", " ", "\u{3000}", "\t", "a", "Z", "9", "@", ".", "-", "_id",
            "_index", "_seq_no", "id", "seq_no", "no", "é", "?",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let f = format!("{a}{b}{c}");
                    assert_eq!(may_be_metadata(&f), may_be_metadata_by_name(&f), "{f:?}");
                }
            }
        }
    }

    /// `read_chars` and the field names it gives.
    fn read_with<C: Ch, const PLAIN: bool>(
        chars: &[C],
        syntax: Syntax,
    ) -> (Result<TextQuery, Rejection>, Vec<String>) {
        let mut fields = Vec::new();
        let read = read_chars::<C, PLAIN>(chars, syntax, &mut |f: &str| fields.push(f.to_string()));
        (read, fields)
    }

    /// ASCII text read from its bytes reads as from its characters (issue 10), and plain
    /// characters taken in one step read as through the general steps, for every syntax and
    /// every arrangement of the lexer's special characters and plain ones.
    #[test]
    fn ascii_text_reads_as_its_characters() {
        let pieces = [
            "a", "_id", "\\", "\\u005f", "\\u00", "\\u", "\"", "~", "~2", "^2", "/", "\\/", "[",
            "]", "{", "}", " ", "\t", "*", "?", ":", "<", ">", "-", "+", "&", "|", "!", "(", ")",
            "TO", ".5", "@t", "a_b.c", "9", "é", "\\u00e9", "\\a", "a:", "\\u0061",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let text = format!("{a}{b}{c}");
                    let chars: Vec<char> = text.chars().collect();
                    for syntax in [Syntax::Classic, Syntax::Simple, Syntax::Kql] {
                        let general = read_with::<_, false>(&chars, syntax);
                        // Bytes are read only of ASCII text.
                        if text.is_ascii() {
                            assert_eq!(
                                read_with::<_, true>(text.as_bytes(), syntax),
                                general,
                                "{text:?} {syntax:?}"
                            );
                            assert_eq!(
                                read_with::<_, false>(text.as_bytes(), syntax),
                                general,
                                "{text:?} {syntax:?}"
                            );
                        }
                        assert_eq!(
                            read_with::<_, true>(&chars, syntax),
                            general,
                            "{text:?} {syntax:?}"
                        );
                    }
                }
            }
        }
    }

    /// `check_text` without its shortcut for texts of names, spaces and colons.
    fn check_text_read(text: &str, syntax: Syntax, targets: &[&str]) -> Result<(), Rejection> {
        named_fields(targets)?;
        let mut metadata = targets.iter().any(|f| may_be_metadata(f));
        let mut names = Vec::new();
        let read = scan_text(text, syntax, |f| {
            metadata = metadata || (f != "_exists_" && may_be_metadata(f));
            names.push(f.to_string());
        })?;
        for f in names.iter().filter(|f| *f != "_exists_") {
            fields::check(f, Position::Data)?;
        }
        if read.fuzzy {
            return Err(Rejection::forbidden("fuzzy"));
        }
        if read.expands && metadata {
            return Err(Rejection::forbidden("expands"));
        }
        Ok(())
    }

    /// `names_and_colons` texts (issue 10) are exactly texts the full read accepts, for every
    /// syntax and targets (metadata ones, patterns) a query may name: every arrangement of
    /// three pieces, plain or not, and the shortcut taken where it should be.
    #[test]
    fn plain_texts_are_accepted_as_when_read() {
        let pieces = [
            "a", "_id", "_exists_", ":", " ", "AND", "s1", "a.b@c", "_index", "\\", "*", "?", "~",
            "~2", "\"", "/", "[", "]", "{", "}", "<", ">", "(", ")", "\t", "-", "+", "!", "é",
            "\u{3000}", "^2", "TO",
        ];
        let targets: [&[&str]; 4] = [&[], &["_id"], &["*"], &["user", "_seq_no^2"]];
        let mut plain = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let text = format!("{a}{b}{c}");
                    let shortcut = names_and_colons(&text);
                    plain += usize::from(shortcut);
                    for syntax in [Syntax::Classic, Syntax::Simple, Syntax::Kql] {
                        for t in targets {
                            let read = check_text_read(&text, syntax, t);
                            if shortcut && named_fields(t).is_ok() {
                                assert!(read.is_ok(), "{text:?} {syntax:?} {t:?}");
                            }
                            assert_eq!(
                                check_text(&text, syntax, t).is_ok(),
                                read.is_ok(),
                                "{text:?} {syntax:?} {t:?}"
                            );
                        }
                    }
                }
            }
        }
        // Names starting with `_` are read whole (`names_and_colons`).
        assert!(plain >= 500, "{plain} plain texts");
        assert!(names_and_colons("service:s1 AND level:error"));
    }

    #[test]
    fn options_allow_only_exact_matching_and_constant_score_rewrites() {
        let ok = [
            ("fuzziness", json!(0)),
            ("fuzziness", json!("0")),
            ("fuzziness", json!(0.0)),
            ("rewrite", json!("constant_score")),
            ("fuzzy_rewrite", json!("constant_score_blended")),
            ("type", json!("best_fields")),
            ("type", json!("phrase")),
            ("operator", json!("and")),
            ("prefix_length", json!(2)),
        ];
        for (k, v) in ok {
            assert!(option(k, J::from(&v)).is_ok(), "{k} {v}");
        }
        let refused = [
            ("fuzziness", json!(1)),
            ("fuzziness", json!("AUTO")),
            ("fuzziness", json!("1")),
            ("fuzziness", Value::Null),
            ("max_expansions", json!(50)),
            ("fuzzy_max_expansions", json!(1)),
            ("rewrite", json!("top_terms_1")),
            ("rewrite", json!("top_terms_boost_3")),
            ("rewrite", json!("top_terms_blended_freqs_2")),
            ("rewrite", json!("scoring_boolean")),
            ("rewrite", json!("constant_score_boolean")),
            ("rewrite", Value::Null),
            ("fuzzy_rewrite", json!("top_terms_2")),
            ("type", json!("phrase_prefix")),
            ("type", json!("BOOL_PREFIX")),
            ("type", Value::Null),
        ];
        for (k, v) in refused {
            let err = option(k, J::from(&v)).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{k} {v}");
            assert!(!err.reason.contains("top_terms"), "{}", err.reason);
        }
    }

    #[test]
    fn metadata_fields_and_patterns_that_could_reach_them() {
        for f in [
            "_id", "_id^2", "_routing", "_*", "*id", "*d^3", "*_*", "_foo", "*eq*",
        ] {
            assert!(may_be_metadata(f), "{f}");
        }
        for f in [
            "user",
            "*",
            "_index",
            "message^3",
            "user.*",
            "a*",
            "*.keyword",
            "?id",
        ] {
            assert!(!may_be_metadata(f), "{f}");
        }
    }

    #[test]
    fn classic_text_fuzzy_terms_are_found_and_phrase_slop_is_not() {
        let fuzzy = [
            "bob~",
            "bob~1",
            "user:bob~0.5",
            "a AND b~2",
            "bob ~2",
            "bob^2~1",
            "(x OR y~)",
            "x-y~",
            "~1",
            "/ab/~1",
            "[a TO b]~",
            // Backslashes are literal in a range: the range ends at the first `]`.
            "[a TO b\\] user:bob~1 [c TO d]",
            // A quoted bound is shorter than the goop around it: the goop wins.
            "[x TO \"ab\"c\"d] user:bob~1 [p TO \"q\"]",
            "\"a b\"~2 ~3",
            "\"a b\"\u{a0}~1",
            "\"a b\"\u{2003}~1",
        ];
        for q in fuzzy {
            assert!(read_text(q, Syntax::Classic).unwrap().fuzzy, "{q}");
        }
        let exact = [
            "\"hello world\"~2",
            "\"a b\" ~3",
            "\"a b\"^2~3",
            "bob\\~1",
            "user:\"x~1\"",
            "hello world",
            "a* OR b?c",
            "/a~b/",
            "[a TO b~]",
            "[\"a ] b\" TO c~]",
            "[\"a\\\" ]~\" TO c]",
            "\"quote \\\" inside\"~2",
        ];
        for q in exact {
            assert!(!read_text(q, Syntax::Classic).unwrap().fuzzy, "{q}");
        }
    }

    #[test]
    fn classic_text_expansions_and_fields() {
        // A `\u` escape names the field it spells, as Lucene decodes it.
        let r = read_text("\\u005fid:a*", Syntax::Classic).unwrap();
        assert_eq!(r.fields, ["_id"]);
        assert!(r.expands);
        assert!(check_text("\\u005fid:a*", Syntax::Classic, &[]).is_err());
        assert!(read_text("a\\u00", Syntax::Classic).is_err());
        let r = read_text("user:bo* AND _id:a1 AND \\_routing:x", Syntax::Classic).unwrap();
        assert!(r.expands);
        assert_eq!(r.fields, vec!["user", "_id", "_routing"]);
        for q in [
            "a*",
            "a?c",
            "/re/",
            "n:[1 TO 5]",
            "n:{1 TO 5}",
            "x:(a OR b*)",
        ] {
            assert!(read_text(q, Syntax::Classic).unwrap().expands, "{q}");
        }
        for q in ["hello", "\"a*b\"", "a\\*", "_exists_:user"] {
            assert!(!read_text(q, Syntax::Classic).unwrap().expands, "{q}");
        }
        for q in ["\"open", "/open", "[1 TO 2"] {
            assert_eq!(
                read_text(q, Syntax::Classic).unwrap_err().kind,
                RejectKind::BadRequest,
                "{q}"
            );
        }
    }

    #[test]
    fn simple_and_kql_text() {
        assert!(read_text("bob~2", Syntax::Simple).unwrap().fuzzy);
        assert!(!read_text("\"a b\"~2", Syntax::Simple).unwrap().fuzzy);
        assert!(read_text("\"a b\"~2", Syntax::Kql).unwrap().fuzzy);
        assert!(read_text("bo*", Syntax::Simple).unwrap().expands);
        // `?`, `/` and `[` are plain characters in simple_query_string.
        let r = read_text("a?b /x [y", Syntax::Simple).unwrap();
        assert!(!r.expands && !r.fuzzy && r.fields.is_empty(), "{r:?}");
        let r = read_text("_id: a* and user: x", Syntax::Kql).unwrap();
        assert!(r.expands);
        assert_eq!(r.fields, vec!["_id", "user"]);
    }

    #[test]
    fn check_text_refuses_fuzzy_terms_and_metadata_expansions() {
        assert!(check_text("user:bo* AND \"a b\"~2", Syntax::Classic, &[]).is_ok());
        assert!(check_text("_id:a1 OR _exists_:user", Syntax::Classic, &[]).is_ok());
        assert!(check_text("_exists_:user AND bo*", Syntax::Classic, &[]).is_ok());
        assert!(check_text("_index:logs-* AND bo*", Syntax::Classic, &[]).is_ok());
        for (q, targets) in [
            ("user:bob~", &[][..]),
            ("_id:a*", &[][..]),
            ("_id:/a.*/", &[][..]),
            ("\\_id:a*", &[][..]),
            ("a*", &["_id"][..]),
            ("a*", &["user", "*id"][..]),
            ("a*", &["*_*"][..]),
            ("_seq_no:[0 TO 5]", &[][..]),
        ] {
            assert_eq!(
                check_text(q, Syntax::Classic, targets).unwrap_err().kind,
                RejectKind::Forbidden,
                "{q} {targets:?}"
            );
        }
        assert!(check_text("a*", Syntax::Simple, &["_id"]).is_err());
        assert!(check_text("a*", Syntax::Simple, &["user"]).is_ok());
    }

    /// ES|QL `QSTR`/`KQL` and SQL `QUERY()` text goes to Lucene as a `query_string`, which
    /// reads any field: a term on `_seq_no` (or a target naming it) reads the internal
    /// counter whether or not it expands (attack18a). Own-data metadata fields stay allowed.
    #[test]
    fn check_text_refuses_internal_fields_named_or_targeted() {
        for syntax in [Syntax::Classic, Syntax::Kql] {
            for q in [
                "_seq_no:5",
                "_seq_no : 5",
                "a AND _primary_term:1",
                "x:1 OR _seq_no:2",
                "_field_names:user",
            ] {
                let r = check_text(q, syntax, &[]);
                assert_eq!(
                    r.map_err(|e| e.kind),
                    Err(RejectKind::Forbidden),
                    "{q} {syntax:?}"
                );
            }
        }
        assert!(check_text("\\_seq_no:5", Syntax::Classic, &[]).is_err());
        assert!(check_text("_seq_no\u{3000}:5", Syntax::Classic, &[]).is_err());
        for targets in [&["_seq_no"][..], &["user", "_seq_no^2"], &["_"], &["_s*"]] {
            assert!(
                check_text("5", Syntax::Classic, targets).is_err(),
                "{targets:?}"
            );
        }
        for (q, targets) in [
            ("_id:a1 AND _index:logs-a", &[][..]),
            ("_exists_:user", &[]),
            ("user:_x", &[]),
            ("5", &["user", "_id^2", "*"]),
        ] {
            assert!(
                check_text(q, Syntax::Classic, targets).is_ok(),
                "{q} {targets:?}"
            );
        }
    }

    /// The classic lexer alone names every field Lucene's parser reads
    /// (`testing::LUCENE_FIELDS`; `_exists_` itself aside), and besides them only names before
    /// colons inside a regular expression (noida reads those).
    #[test]
    fn classic_text_names_the_fields_lucene_reads() {
        for (text, want, inside) in crate::testing::LUCENE_FIELDS {
            let read = read_text(text, Syntax::Classic).unwrap();
            let got: Vec<&str> = read
                .fields
                .iter()
                .map(String::as_str)
                .filter(|f| *f != "_exists_")
                .collect();
            for f in *want {
                assert!(got.contains(f), "{text:?}: {got:?}");
            }
            for f in &got {
                assert!(want.contains(f) || inside.contains(f), "{text:?}: {got:?}");
            }
        }
        // A metadata name inside a regular expression, read as noida reads it, is refused
        // where it would expand: noida counts `user:alice` in `/zz user:alice zz/`.
        assert!(check_text("/zz _id:a* zz/", Syntax::Classic, &[]).is_err());
        assert!(check_text("/zz user:a* zz/", Syntax::Classic, &[]).is_ok());
    }

    /// Texts read as the real grammars read them (lucene18): for each, what the parser that
    /// Elasticsearch runs reads, and the rule that says so.
    ///
    /// - ES|QL `KQL` is Elasticsearch's KQL plugin (`x-pack/plugin/kql`, `KqlBase.g4`):
    ///   `fieldName : UNQUOTED_LITERAL | QUOTED_STRING | WILDCARD`, so a quoted string before
    ///   `:`, `<`, `<=`, `>`, `>=` is a field name (`"_seq_no":5`); `ParserUtils.extractText`
    ///   decodes `\uXXXX`, `\t`, `\n`, `\r` in both literal kinds (`\u005fseq_no:5`); a
    ///   `QUOTED_STRING` is the longest match of `'"' (ESCAPED_QUOTE | ~["] ...)* '"'`, where a
    ///   backslash may stand alone, so it ends at the first quote no backslash precedes;
    ///   `{`/`}` are the nested query's brackets, not literal characters.
    /// - `simple_query_string` is Lucene's `SimpleQueryParser`: a phrase's slop is a `~` right
    ///   after its closing quote (`consumePhrase`); any other `~` after a character of a token
    ///   is a fuzzy term (`consumeToken`), and `^` and U+3000 are token characters there (no
    ///   boost operator; whitespace is space, tab, CR, LF only), so `"a"^~2` is `"a"` and the
    ///   fuzzy term `^`~2.
    /// - `query_string` (Lucene's classic `QueryParser.jj` and Elasticsearch's
    ///   `QueryStringQueryParser`): `_exists_:name` is an exists query on `name`
    ///   (`getFieldQuery`), a quoted `name` too.
    #[test]
    fn texts_read_as_the_real_grammars() {
        // (text, syntax, the field names it must give, at least)
        let named: &[(&str, Syntax, &[&str])] = &[
            ("\"_seq_no\":5", Syntax::Kql, &["_seq_no"]),
            ("\"_seq_no\" : 5", Syntax::Kql, &["_seq_no"]),
            ("\"_seq_no\">=0", Syntax::Kql, &["_seq_no"]),
            (
                "x:1 or \"_primary_term\" < 2",
                Syntax::Kql,
                &["x", "_primary_term"],
            ),
            ("\"\\u005fseq_no\":5", Syntax::Kql, &["_seq_no"]),
            ("\\u005fseq_no:5", Syntax::Kql, &["_seq_no"]),
            ("\\u005Fseq_no <= 5", Syntax::Kql, &["_seq_no"]),
            ("a:{_seq_no:1}", Syntax::Kql, &["a", "_seq_no"]),
            ("a:{b:1}or(_seq_no:1)", Syntax::Kql, &["a", "b", "_seq_no"]),
            // The quoted string ends at its first quote no backslash precedes: `"a\\" or "`
            // (a `\` then `\"`), then `or`, `b\"` and the field `_seq_no`.
            (
                "\"a\\\\\" or \"or b\\\" or _seq_no:5",
                Syntax::Kql,
                &["_seq_no"],
            ),
            (
                "_exists_:_seq_no",
                Syntax::Classic,
                &["_exists_", "_seq_no"],
            ),
            (
                "_exists_ : _seq_no",
                Syntax::Classic,
                &["_exists_", "_seq_no"],
            ),
            (
                "_exists_:\\_seq_no",
                Syntax::Classic,
                &["_exists_", "_seq_no"],
            ),
            (
                "_exists_:\"_seq_no\"",
                Syntax::Classic,
                &["_exists_", "_seq_no"],
            ),
            ("a OR _exists_:_s*", Syntax::Classic, &["_exists_", "_s*"]),
        ];
        for (q, syntax, want) in named {
            let r = read_text(q, *syntax);
            let got = r.as_ref().map(|r| r.fields.clone()).unwrap_or_default();
            for f in *want {
                assert!(
                    got.iter().any(|g| g == f),
                    "{q:?} {syntax:?}: {got:?} {r:?}"
                );
            }
            assert_eq!(
                check_text(q, *syntax, &[]).map_err(|e| e.kind),
                Err(RejectKind::Forbidden),
                "{q:?} {syntax:?}"
            );
        }
        // A group after `_exists_:` names a field with each of its terms.
        assert!(check_text("_exists_:(user _seq_no)", Syntax::Classic, &[]).is_err());
        // A range or a regular expression there too (hard19: ES reads none as an exists query,
        // a backend may).
        for q in [
            "_exists_:/_seq_no/",
            "_exists_ : [_seq_no TO x]",
            "_exists_:{a TO b}",
        ] {
            assert!(check_text(q, Syntax::Classic, &[]).is_err(), "{q}");
        }
        // simple_query_string: fuzzy terms where SimpleQueryParser reads one.
        for q in [
            "\"a\"^~2",
            "\"a\"^2~2",
            "\"a b\"^x~1",
            "\"a\"\u{3000}~2",
            "\"a\" ~1 b~2",
        ] {
            assert!(read_text(q, Syntax::Simple).unwrap().fuzzy, "{q:?}");
            assert!(check_text(q, Syntax::Simple, &[]).is_err(), "{q:?}");
        }
        // What the grammars read as no field name, or as a phrase's slop, still passes.
        for (q, syntax) in [
            ("\"a b\"~2", Syntax::Simple),
            ("\"a b\"~2 c", Syntax::Simple),
            ("user:\"_seq_no\"", Syntax::Kql),
            ("\"_seq_no\"", Syntax::Kql),
            ("\"a \\\" _seq_no:5\"", Syntax::Kql),
            ("a:{b:1}", Syntax::Kql),
            ("_exists_:user", Syntax::Classic),
            ("_exists_:\"user\" AND x:y", Syntax::Classic),
            ("\"_seq_no\":5", Syntax::Simple),
        ] {
            assert!(check_text(q, syntax, &[]).is_ok(), "{q:?} {syntax:?}");
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::super::{check_text, read_text, Syntax};

        fn fragments() -> impl Strategy<Value = String> {
            let f = prop::sample::select(vec![
                "a", "_id", ":", "~", "~2", "\"", "\\", " ", "\u{a0}", "*", "?", "/", "[", "]",
                "{", "}", "^2", "(", ")", "-", "+", "&&", "TO", "\u{e9}", ">", "<",
            ]);
            prop::collection::vec(f, 0..16).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(crate::testing::cases(3000))]

            /// Nothing panics, and a `~` right after a term character (outside quotes and
            /// regexps, which these fragments never open before it) is always fuzzy.
            #[test]
            fn reading_never_panics_and_finds_glued_tildes(q in fragments()) {
                for syntax in [Syntax::Classic, Syntax::Simple, Syntax::Kql] {
                    let _ = read_text(&q, syntax);
                    let glued = format!("x~ {q}");
                    if let Ok(r) = read_text(&glued, syntax) {
                        prop_assert!(r.fuzzy, "{glued:?}");
                    }
                }
            }

            /// Any text (the grammars' special characters, cut escapes, non-ASCII, arbitrary
            /// bytes): every syntax reads and checks it without a panic, the same way twice,
            /// as it reads its characters one by one (`PLAIN` off).
            #[test]
            fn any_text_is_read_without_panic_and_alike(q in crate::testing::query_text()) {
                for syntax in [Syntax::Classic, Syntax::Simple, Syntax::Kql] {
                    let read = read_text(&q, syntax);
                    prop_assert_eq!(&read, &read_text(&q, syntax), "{:?}", q);
                    let chars: Vec<char> = q.chars().collect();
                    let fast = super::read_with::<_, true>(&chars, syntax);
                    let slow = super::read_with::<_, false>(&chars, syntax);
                    prop_assert_eq!(&fast, &slow, "{:?} {:?}", q, syntax);
                    let checked = check_text(&q, syntax, &[]);
                    prop_assert_eq!(&checked, &check_text(&q, syntax, &[]), "{:?}", q);
                    let _ = check_text(&q, syntax, &["_id", "a*"]);
                }
            }
        }
    }
}
