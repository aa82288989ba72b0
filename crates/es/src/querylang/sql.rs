//! Elasticsearch SQL query text (`POST /_sql`): a conservative lexer and a parser that finds
//! the one table a `SELECT` reads and rebuilds the text with a checked index list in its place.
//!
//! Invariant: a query is accepted only when it is a single `SELECT ... FROM <one table> ...`
//! with exactly one `FROM` (outside brackets), no second `SELECT` (no subquery), no join or set
//! operation, no catalog prefix, no `FROZEN`, no ODBC escapes (`{...}`), no `;`, and none of
//! the statements that list other indices (`SHOW`, `DESCRIBE`, `SYS`). The lexer follows
//! Elasticsearch SQL's rules: `'...'` strings with `''`, `"..."` and `` `...` `` identifiers
//! with doubled quotes, `--` line comments (ending at `\r` or `\n`) and `/* */` comments,
//! case-insensitive keywords; non-ASCII characters outside strings and identifiers (or in a
//! quoted function name, which Elasticsearch upper-cases in Java), unterminated
//! strings or comments and nested comments (read differently by a nesting and a flat lexer)
//! are refused. The table is always forwarded as a double-quoted identifier holding
//! the checked comma list, so Elasticsearch reads exactly the names esgate checked.

use serde_json::{Map, Value};

use crate::dsl::expansion::{self, Syntax};
use crate::dsl::values;
use crate::{querylang::lexing, Rejection};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    /// `'...'`.
    Str,
    /// `"..."` or `` `...` ``.
    Quoted,
    /// Any other single character (`(`, `)`, `,`, `;`, operators...).
    Punct(u8),
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Words that may follow the table (with or without an alias) and start the next clause.
const CLAUSES: &[&str] = &["where", "group", "having", "order", "limit", "pivot"];

/// Words never allowed outside strings and quoted identifiers.
const REFUSED_WORDS: &[&str] = &[
    "join",
    "inner",
    "outer",
    "cross",
    "natural",
    "union",
    "intersect",
    "except",
    "frozen",
    "include",
    "show",
    "describe",
    "sys",
    "with",
];

/// Functions that reveal cluster or service-account details.
const REFUSED_FUNCTIONS: &[&str] = &["user", "database", "current_user"];

/// A parsed query: the table as written (unquoted) and the text around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The table expression (a name, a pattern or a comma list), quotes removed.
    pub table: String,
    before: String,
    after: String,
    /// Whether the text calls `SCORE()`: a relevance score, computed from the shard's term
    /// statistics, which a token with constant scores may not read (review 15).
    pub scores: bool,
}

impl Query {
    /// The query text with the table replaced by `names`, as one double-quoted identifier.
    pub fn render(&self, names: &[String]) -> Result<String, Rejection> {
        if names.is_empty() {
            return Err(Rejection::forbidden("the SQL table is empty"));
        }
        if names
            .iter()
            .any(|n| n.is_empty() || n.contains(['"', ',']) || n.chars().any(char::is_control))
        {
            return Err(Rejection::forbidden(
                "an index name cannot be written into the SQL query",
            ));
        }
        Ok(format!(
            "{} \"{}\" {}",
            self.before,
            names.join(","),
            self.after
        ))
    }
}

fn refuse(reason: &str) -> Rejection {
    Rejection::forbidden(format!("SQL query refused: {reason}"))
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'*' | b'.' | b':' | b'-')
}

/// The name a word followed by `(` calls: what follows its last operator byte. A word may hold
/// `-`, `*`, `:` and `.` (index names and patterns in `FROM`), which elsewhere Elasticsearch
/// reads as operators: `-DATABASE()` and `2*USER()` call `DATABASE` and `USER` (attack26b
/// saw them forwarded; Elasticsearch refused them only for their types).
fn called(word: &str) -> &str {
    word.rsplit(['-', '*', ':', '.']).next().unwrap_or(word)
}

fn lex(text: &str) -> Result<Vec<Tok>, Rejection> {
    let b = text.as_bytes();
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let comment = (c == b'-' && b.get(i + 1) == Some(&b'-'))
            || (c == b'/' && b.get(i + 1) == Some(&b'*'));
        if comment {
            if toks
                .last()
                .is_some_and(|t| t.end == i && t.kind == Kind::Word)
            {
                return Err(refuse("a comment directly after a name is ambiguous"));
            }
            i = skip_comment(b, i)?;
            continue;
        }
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'\'' | b'"' | b'`' => {
                let end = lexing::doubled_quote_end(b, i, c).map_err(refuse)?;
                toks.push(Tok {
                    kind: if c == b'\'' { Kind::Str } else { Kind::Quoted },
                    start: i,
                    end,
                });
                i = end;
            }
            _ if !c.is_ascii() => {
                return Err(refuse(
                    "non-ASCII characters are only allowed inside strings and quoted identifiers",
                ))
            }
            _ if c.is_ascii_control() => return Err(refuse("control characters are not allowed")),
            _ if is_word_byte(c) => {
                let start = i;
                while i < b.len()
                    && is_word_byte(b[i])
                    && !(b[i] == b'-' && b.get(i + 1) == Some(&b'-'))
                {
                    i += 1;
                }
                toks.push(Tok {
                    kind: Kind::Word,
                    start,
                    end: i,
                });
            }
            _ => {
                toks.push(Tok {
                    kind: Kind::Punct(c),
                    start: i,
                    end: i + 1,
                });
                i += 1;
            }
        }
    }
    Ok(toks)
}

/// The index after a `--` or `/* */` comment starting at `i`.
fn skip_comment(b: &[u8], i: usize) -> Result<usize, Rejection> {
    if b[i] == b'-' {
        return Ok(lexing::line_comment_end(b, i));
    }
    lexing::block_comment_end(b, i).map_err(refuse)
}

fn lower(text: &str, t: &Tok) -> Option<String> {
    (t.kind == Kind::Word).then(|| text[t.start..t.end].to_ascii_lowercase())
}

/// A table alias: a plain identifier (`[A-Za-z_][A-Za-z0-9_@]*`) or a quoted one.
fn is_alias(text: &str, t: &Tok) -> bool {
    match t.kind {
        Kind::Quoted => true,
        Kind::Word => {
            let w = &text.as_bytes()[t.start..t.end];
            w.first()
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
                && w.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@'))
        }
        _ => false,
    }
}

/// The table named by one token: a bare word or a quoted identifier (doubled quotes undone).
fn table_text(text: &str, t: &Tok) -> Result<String, Rejection> {
    let raw = &text[t.start..t.end];
    let table = match t.kind {
        Kind::Word => raw.to_string(),
        Kind::Quoted => {
            let q = &raw[..1];
            let inner = &raw[1..raw.len() - 1];
            inner.replace(&format!("{q}{q}"), q)
        }
        _ => return Err(refuse("FROM must be followed by one table")),
    };
    if table.is_empty() {
        return Err(refuse("the table name is empty"));
    }
    if table.contains(':') {
        return Err(refuse("catalogs and remote clusters are not allowed"));
    }
    Ok(table)
}

/// Parses a query and checks its structure (see the module invariant).
pub fn parse(text: &str) -> Result<Query, Rejection> {
    let toks = lex(text)?;
    match toks.first().and_then(|t| lower(text, t)) {
        Some(w) if w == "select" => {}
        Some(w) if matches!(w.as_str(), "show" | "describe" | "desc" | "sys") => {
            return Err(refuse(&format!(
                "[{}] lists other indices",
                w.to_uppercase()
            )))
        }
        _ => return Err(refuse("only a SELECT statement is allowed")),
    }
    let mut depth = 0usize;
    let mut from_at: Option<usize> = None;
    let mut scores = false;
    for (n, t) in toks.iter().enumerate() {
        // `SCORE(`, bare or quoted (`"SCORE"(`), as the function checks below read names.
        if toks.get(n + 1).map(|t| t.kind) == Some(Kind::Punct(b'(')) {
            let name = match t.kind {
                Kind::Word => Some(called(&text[t.start..t.end])),
                Kind::Quoted => text.get(t.start + 1..t.end - 1),
                _ => None,
            };
            scores |= name.is_some_and(|n| n.eq_ignore_ascii_case("score"));
        }
        match t.kind {
            Kind::Punct(b'(') => {
                depth += 1;
                if depth > lexing::MAX_DEPTH {
                    return Err(refuse("brackets are nested too deeply"));
                }
            }
            Kind::Punct(b')') => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| refuse("unbalanced brackets"))?;
            }
            Kind::Punct(b'{' | b'}') => return Err(refuse("escape sequences are not allowed")),
            Kind::Punct(b';') => return Err(refuse("only one statement is allowed")),
            // A quoted name is still a function name when a bracket follows: `"USER"()`.
            Kind::Quoted if toks.get(n + 1).map(|t| t.kind) == Some(Kind::Punct(b'(')) => {
                let raw = &text[t.start..t.end];
                // Elasticsearch SQL finds a function by its name upper-cased in Java
                // (`FunctionRegistry.normalize`: `toUpperCase(Locale.ROOT)`), which maps `ı`
                // to `I`, `ſ` to `S` and `ﬆ` to `ST`: `"uſer"()` is `USER()`, `"ſcore"()`
                // `SCORE()` (attack26e). No function's name holds anything but ASCII.
                if !raw.is_ascii() {
                    return Err(refuse(
                        "a quoted function name must be ASCII: Elasticsearch upper-cases it",
                    ));
                }
                let name = raw[1..raw.len() - 1].to_ascii_lowercase();
                if REFUSED_FUNCTIONS.contains(&name.as_str()) {
                    return Err(refuse(&format!(
                        "function [{}] is not allowed",
                        name.to_uppercase()
                    )));
                }
            }
            Kind::Word => {
                let w = text[t.start..t.end].to_ascii_lowercase();
                if w == "select" && n > 0 {
                    return Err(refuse("subqueries are not allowed"));
                }
                if w == "from" {
                    if depth != 0 || from_at.is_some() {
                        return Err(refuse("only one FROM, outside brackets, is allowed"));
                    }
                    from_at = Some(n);
                }
                if REFUSED_WORDS.contains(&w.as_str()) {
                    return Err(refuse(&format!("[{}] is not allowed", w.to_uppercase())));
                }
                if REFUSED_FUNCTIONS.contains(&called(&w))
                    && toks.get(n + 1).map(|t| t.kind) == Some(Kind::Punct(b'('))
                {
                    return Err(refuse(&format!(
                        "function [{}] is not allowed",
                        w.to_uppercase()
                    )));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(refuse("unbalanced brackets"));
    }
    check_full_text(text, &toks)?;
    check_percentile_methods(text, &toks)?;
    check_metadata_patterns(text, &toks, from_at)?;
    let Some(from_at) = from_at else {
        return Err(refuse("the query must read one table with FROM"));
    };
    let Some(table_tok) = toks.get(from_at + 1) else {
        return Err(refuse("FROM must be followed by one table"));
    };
    let table = table_text(text, table_tok)?;
    // What may follow the table: an optional alias, then the end or a clause.
    // The table token must stand alone: `"logs-a":secret` reads as catalog `logs-a`, table
    // `secret` in Elasticsearch SQL.
    if toks
        .get(from_at + 2)
        .is_some_and(|t| t.start == table_tok.end)
    {
        return Err(refuse("the table must be followed by a space or a clause"));
    }
    let mut i = from_at + 2;
    if toks.get(i).and_then(|t| lower(text, t)).as_deref() == Some("as") {
        i += 1;
        match toks.get(i) {
            Some(t) if is_alias(text, t) => i += 1,
            _ => return Err(refuse("AS must be followed by an alias")),
        }
    } else if let Some(t) = toks.get(i) {
        let is_clause = lower(text, t).is_some_and(|w| CLAUSES.contains(&w.as_str()));
        if !is_clause && is_alias(text, t) {
            i += 1; // an alias without AS
        }
    }
    if let Some(t) = toks.get(i) {
        if !lower(text, t).is_some_and(|w| CLAUSES.contains(&w.as_str())) {
            return Err(refuse(
                "the table must be followed by a clause, not another source",
            ));
        }
    }
    Ok(Query {
        table,
        before: text[..table_tok.start].to_string(),
        after: text[table_tok.end..].to_string(),
        scores,
    })
}

/// `MATCH(field, text[, options]...)`, `MATCH('fields', text[, options]...)` and
/// `QUERY(text[, options]...)`: their options (string literals `"key=value;..."`, never a
/// parameter; every one of them, as Elasticsearch joins them all with `;`,
/// `ExpressionBuilder.getQueryOptions`), the query text of `QUERY` (Lucene syntax, a string
/// literal) and the fields they name (`MATCH`'s field list string, `QUERY`'s `default_field`
/// and `fields` options) are checked like the query DSL's (`expansion`, `fields`): no fuzzy or
/// prefix expansion, no expanding rewrite, no expansion on metadata fields, no internal
/// counter (attack26b: the options after the first and `MATCH`'s field list went unread).
fn check_full_text(text: &str, toks: &[Tok]) -> Result<(), Rejection> {
    for (n, t) in toks.iter().enumerate() {
        // A quoted name is still a function name when a bracket follows: `"QUERY"(...)`.
        let name = match t.kind {
            Kind::Word => text[t.start..t.end].to_ascii_lowercase(),
            Kind::Quoted => text[t.start + 1..t.end - 1].to_ascii_lowercase(),
            _ => continue,
        };
        let is_query = name == "query";
        if !(is_query || name == "match")
            || toks.get(n + 1).map(|t| t.kind) != Some(Kind::Punct(b'('))
        {
            continue;
        }
        let args = call_args(toks, n);
        let literal = |arg: Option<&Vec<Tok>>| match arg.map(Vec::as_slice) {
            Some([t]) if t.kind == Kind::Str => Ok(string_value(&text[t.start..t.end])),
            _ => Err(refuse(
                "the query text and options of MATCH and QUERY must be string literals",
            )),
        };
        // Every argument after the query text is an option string (`(',' options=string)*`).
        let options_at = if is_query { 1 } else { 2 };
        let mut joined = Vec::new();
        for arg in args.iter().skip(options_at) {
            joined.push(literal(Some(arg))?);
        }
        let options = parse_options(&joined.join(";"))?;
        expansion::options(&options)?;
        if is_query {
            let query = literal(args.first())?;
            let mut targets: Vec<&str> = Vec::new();
            if let Some(f) = options.get("default_field").and_then(Value::as_str) {
                targets.push(f);
            }
            // `StringQueryPredicate` reads a `fields` option as a field list too.
            if let Some(f) = options.get("fields").and_then(Value::as_str) {
                targets.extend(f.split(','));
            }
            expansion::check_text(&query, Syntax::Classic, &targets)?;
        } else {
            match_fields(text, args.first().map(Vec::as_slice).unwrap_or_default())?;
            // Elasticsearch refuses a `fields` option of MATCH (no applier takes it); were one
            // to take it, it would name fields (attack26d, hardening).
            if let Some(f) = options.get("fields").and_then(Value::as_str) {
                for field in f.split(',') {
                    let name = field.split('^').next().unwrap_or(field);
                    crate::dsl::fields::check(name.trim(), crate::dsl::fields::Position::Data)?;
                }
            }
        }
    }
    Ok(())
}

/// The first argument of `MATCH`: a column name (resolved against the mapping, where
/// Elasticsearch SQL leaves metadata fields out: `IndexResolver`), or a string literal holding
/// a comma list of `field^boost` that reaches a `multi_match` as written
/// (`FullTextUtils.parseFields`: split at `,`, a name ending at its first `^`), so each name is
/// checked like a query's field (`_id` passes, `_seq_no` or `_s*` do not); trimmed, which can
/// only refuse more. A parameter there (`string: PARAM`) could be any list: refused.
fn match_fields(text: &str, arg: &[Tok]) -> Result<(), Rejection> {
    match arg {
        [t] if t.kind == Kind::Str => {
            for field in string_value(&text[t.start..t.end]).split(',') {
                let name = field.split('^').next().unwrap_or(field);
                crate::dsl::fields::check(name.trim(), crate::dsl::fields::Position::Data)?;
            }
            Ok(())
        }
        _ if arg
            .iter()
            .any(|t| matches!(t.kind, Kind::Str | Kind::Punct(b'?'))) =>
        {
            Err(refuse(
                "the fields of MATCH must be a column name or one string literal",
            ))
        }
        _ => Ok(()),
    }
}

/// The argument tokens of the call named at `toks[n]` (its `(` at `n + 1`), up to the matching
/// `)`, split at top-level commas.
fn call_args(toks: &[Tok], n: usize) -> Vec<Vec<Tok>> {
    let mut args: Vec<Vec<Tok>> = vec![Vec::new()];
    let mut depth = 0usize;
    for a in toks.get(n + 2..).unwrap_or_default() {
        match a.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') if depth == 0 => break,
            Kind::Punct(b')') => depth -= 1,
            Kind::Punct(b',') if depth == 0 => {
                args.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(*a);
        }
    }
    args
}

/// `PERCENTILE(field, p[, method[, parameter]])` and `PERCENTILE_RANK(field, v[, method[,
/// parameter]])`: Elasticsearch SQL builds the percentiles aggregation's method from them
/// (`PercentileAggregate.percentilesConfig`: `'tdigest'` with a compression, `'hdr'` with its
/// significant digits), and the backend sizes each bucket's sketch by them outside its circuit
/// breakers (attack26e, M availability: `PERCENTILE(n, 50, 'tdigest', 1e8)` is the query DSL's
/// `compression: 100000000`). Bounded as the DSL's ([`values::MAX_COMPRESSION`],
/// [`values::MAX_HDR_DIGITS`]): a given method is the string literal `'tdigest'` or `'hdr'`
/// (Elasticsearch reads no other, case included), its parameter a number literal within the
/// bound or `NULL` (the default); a parameter (`?`), an expression Elasticsearch would fold
/// (`1e4 * 1e4`, a cast, adjacent strings) or a number out of bounds is refused (403).
fn check_percentile_methods(text: &str, toks: &[Tok]) -> Result<(), Rejection> {
    for (n, t) in toks.iter().enumerate() {
        if toks.get(n + 1).map(|t| t.kind) != Some(Kind::Punct(b'(')) {
            continue;
        }
        // A quoted name is still a function name when a bracket follows; a word calls what
        // follows its last operator byte (attack27a: `-PERCENTILE(` and `1-PERCENTILE(` were
        // the words `-percentile` and `1-percentile`, their methods unchecked).
        let name = match t.kind {
            Kind::Word => called(&text[t.start..t.end]),
            Kind::Quoted => &text[t.start + 1..t.end - 1],
            _ => continue,
        };
        if !(name.eq_ignore_ascii_case("percentile")
            || name.eq_ignore_ascii_case("percentile_rank"))
        {
            continue;
        }
        let args = call_args(toks, n);
        let Some(method) = args.get(2) else {
            continue;
        };
        // Nothing Elasticsearch would read after the parameter (it refuses a fifth argument
        // itself; attack26d refused it here too).
        if args.len() > 4 {
            return Err(refuse(
                "PERCENTILE and PERCENTILE_RANK take at most a method and its parameter",
            ));
        }
        let method = match method.as_slice() {
            [m] if m.kind == Kind::Str => string_value(&text[m.start..m.end]),
            _ => {
                return Err(refuse(
                    "the method of PERCENTILE and PERCENTILE_RANK must be a string literal",
                ))
            }
        };
        let parameter = match args.get(3).map(Vec::as_slice) {
            None => None,
            Some([p]) if lower(text, p).as_deref() == Some("null") => None,
            // A number literal: digits, a point, an exponent (esgate's word holds its sign).
            Some([p])
                if p.kind == Kind::Word
                    && text.as_bytes()[p.start..p.end]
                        .first()
                        .is_some_and(|b| b.is_ascii_digit() || *b == b'.') =>
            {
                Some(&text[p.start..p.end])
            }
            Some(_) => {
                return Err(refuse(
                    "the method parameter of PERCENTILE and PERCENTILE_RANK must be a number \
                     literal",
                ))
            }
        };
        match method.as_str() {
            "tdigest" => {
                let within = parameter.is_none_or(|p| {
                    p.parse::<f64>()
                        .is_ok_and(|c| (0.0..=values::MAX_COMPRESSION).contains(&c))
                });
                if !within {
                    return Err(refuse(&format!(
                        "a t-digest compression must be a number between 0 and {}: the backend \
                         allocates memory for each bucket in proportion to it",
                        values::MAX_COMPRESSION
                    )));
                }
            }
            "hdr" => {
                let within = parameter.is_none_or(|p| {
                    p.bytes().all(|b| b.is_ascii_digit())
                        && p.parse::<u64>().is_ok_and(|d| d <= values::MAX_HDR_DIGITS)
                });
                if !within {
                    return Err(refuse(&format!(
                        "HDR significant digits must be an integer between 0 and {}: the \
                         backend allocates memory for each bucket in proportion to 10 to their \
                         power",
                        values::MAX_HDR_DIGITS
                    )));
                }
            }
            _ => {
                return Err(refuse(
                    "the method of PERCENTILE and PERCENTILE_RANK must be 'tdigest' or 'hdr'",
                ))
            }
        }
    }
    Ok(())
}

/// The words after which a bracket groups conditions rather than calls a function or opens a
/// list (reserved in `SqlBase.g4`, never a function's name): [`check_metadata_patterns`] ends
/// clauses inside such a group. Any other word before a bracket (a function, `IN`, `EXISTS`,
/// a non-reserved word) makes it a call, inside which nothing ends a clause (stricter).
const GROUP_OPENERS: &[&str] = &[
    "and", "or", "not", "where", "having", "when", "then", "else", "select", "on",
];

/// Words that end a clause for [`check_metadata_patterns`] (a condition's parts and the
/// statement's clauses).
/// Not `LIMIT`: it is no reserved word (`nonReserved` in `SqlBase.g4`), so it may name a
/// column or an alias (`SELECT _id AS limit ... WHERE limit LIKE 'b%'`), and a LIMIT clause
/// holds only a number.
const CLAUSE_BREAKS: &[&str] = &[
    "and", "or", "select", "from", "where", "having", "order", "group", "by",
];

/// Whether Elasticsearch SQL's lexer reads `keyword` in the word `raw`: `-`, `.`, `:` and `*`
/// are bytes of esgate's words (index names) but end a keyword there (a minus, a decimal
/// point, a cast, a product), so `CASE-1=-1 WHEN ...` opens a CASE and `x BETWEEN-1 AND 5` is
/// a range (attack19c). Reads every part, so over-reads (`x.case`, which it refuses).
fn reads_keyword(raw: &str, keyword: &str) -> bool {
    raw.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
        .any(|part| part.eq_ignore_ascii_case(keyword))
}

/// Pattern matches and ranges on metadata fields (attack18e), refused as the query DSL and
/// query text refuse them (`expansion`: `_id`'s terms are every document's): per clause (a
/// run of tokens between `,` and the [`CLAUSE_BREAKS`] outside brackets and `CASE ... END`,
/// so that a function or conditional around the name keeps it in the clause), one that holds
/// both a pattern or a
/// range (`LIKE`, `RLIKE`, `BETWEEN`, `STARTS_WITH(`, `<`, `>`, `<=`, `>=`; `<>` is no range)
/// and a name that may be a metadata field, whatever stands between them (brackets, casts,
/// `NOT`), is refused. A name is a word's part between operators and dots (`t._id` reads
/// `_id` of table `t`) or a quoted identifier; a select item that mentions a metadata field
/// gives its alias (the item's last name) the same standing (`SELECT _id AS x ... WHERE x LIKE
/// ...`: Elasticsearch SQL resolves the alias to the field), and so does one that mentions
/// such an alias of an earlier item. Over-reading refuses more, never
/// less.
fn check_metadata_patterns(
    text: &str,
    toks: &[Tok],
    from_at: Option<usize>,
) -> Result<(), Rejection> {
    let names = |t: &Tok| -> Vec<String> {
        let raw = &text[t.start..t.end];
        match t.kind {
            Kind::Word => raw
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
            Kind::Quoted => {
                let q = &raw[..1];
                let inner = raw[1..raw.len() - 1].replace(&format!("{q}{q}"), q);
                let mut out: Vec<String> = inner.split('.').map(str::to_ascii_lowercase).collect();
                out.push(inner.to_ascii_lowercase());
                // Its words too: a select item without an alias is named by its text
                // (`ResolveAliases`: `"IIF(true, _id, 'x')"` in WHERE reads that item).
                out.extend(
                    inner
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
                        .filter(|s| !s.is_empty())
                        .map(str::to_ascii_lowercase),
                );
                out
            }
            _ => Vec::new(),
        }
    };
    let metadata = |n: &str| n.starts_with('_') && expansion::may_be_metadata(n);
    let aliases = metadata_aliases(toks, from_at, &names, &metadata);
    // One level per open bracket (the statement is the first). Inside a call's brackets
    // (`IIF(`, `COALESCE(`, `IN (`) and inside CASE ... END nothing ends the clause: the
    // operands stay in it (attack18f: `IIF(true, _id, 'x') LIKE 'b%'` and `CASE WHEN true THEN
    // _id END LIKE 'b%'` fold to a pattern on `_id` in Elasticsearch SQL's optimizer, and the
    // `,` or `END` between the name and the pattern had ended the clause). A grouping bracket
    // (after an operator, a bracket, a comma or a condition's keyword: `WHERE (`, `AND (`,
    // `NOT (`) holds conditions, whose `,`, AND and OR end its clauses as at the statement's
    // level (session 18 refused `WHERE (a LIKE 'x%' OR _id = 'y')`); its last clause, what a
    // `)` leaves as the group's value, joins the clause around it (`NOT (_id) LIKE 'b%'`). The
    // AND of a BETWEEN ends nothing (`x BETWEEN 'a' AND _id` is one range).
    struct Level {
        pattern: bool,
        named: bool,
        group: bool,
        between: bool,
    }
    let level = |group| Level {
        pattern: false,
        named: false,
        group,
        between: false,
    };
    let refusal = || refuse("pattern matches and ranges on metadata fields are not allowed");
    let table_at = from_at.map(|f| f + 1);
    let mut levels = vec![level(true)];
    // Open CASEs, counted across brackets as before (an unclosed one inside a call keeps
    // every clause after it open; a group inside a CASE ends no clause: stricter).
    let mut cases = 0usize;
    for (n, t) in toks.iter().enumerate() {
        let next = toks.get(n + 1);
        let word = lower(text, t);
        match (t.kind, word.as_deref()) {
            (Kind::Punct(b'('), _) => {
                let group = n
                    .checked_sub(1)
                    .map(|p| &toks[p])
                    .is_none_or(|p| match p.kind {
                        Kind::Punct(c) => c != b')',
                        Kind::Word => {
                            lower(text, p).is_some_and(|w| GROUP_OPENERS.contains(&w.as_str()))
                        }
                        _ => false,
                    });
                levels.push(level(group));
                continue;
            }
            (Kind::Punct(b')'), _) => {
                if levels.len() > 1 {
                    let inner = levels.pop().expect("an inner level");
                    let top = levels.last_mut().expect("the statement's level");
                    top.pattern |= inner.pattern;
                    top.named |= inner.named;
                }
                continue;
            }
            _ => {}
        }
        let top = levels.last_mut().expect("the statement's level");
        // The keywords inside a word (the table's, replaced when rendered, is never read).
        let raw = (t.kind == Kind::Word && Some(n) != table_at).then(|| &text[t.start..t.end]);
        let keyword = |k: &str| raw.is_some_and(|raw| reads_keyword(raw, k));
        if keyword("case") {
            cases += 1;
        } else if word.as_deref() == Some("end") {
            // Only a word of its own (`END-1` keeps the CASE open: stricter).
            cases = cases.saturating_sub(1);
        }
        let breaks = top.group
            && cases == 0
            && (t.kind == Kind::Punct(b',')
                || word.as_deref().is_some_and(|w| CLAUSE_BREAKS.contains(&w)));
        if breaks && top.between && word.as_deref() == Some("and") {
            top.between = false;
        } else if breaks {
            if top.pattern && top.named {
                return Err(refusal());
            }
            top.pattern = false;
            top.named = false;
            top.between = false;
            continue;
        }
        match t.kind {
            Kind::Punct(b'<') => {
                top.pattern |= next.map(|x| (x.kind, x.start)) != Some((Kind::Punct(b'>'), t.end))
            }
            Kind::Punct(b'>') => {
                top.pattern |=
                    !(n > 0 && toks[n - 1].kind == Kind::Punct(b'<') && toks[n - 1].end == t.start)
            }
            _ => {}
        }
        top.pattern |= ["like", "rlike", "between"].into_iter().any(keyword);
        top.between |= keyword("between");
        let called = next.is_some_and(|x| x.kind == Kind::Punct(b'('));
        for name in names(t) {
            top.pattern |= called && name == "starts_with";
            top.named |= metadata(&name) || aliases.contains(&name);
        }
    }
    // Unclosed brackets (the backend refuses them): every level's clause joins the statement's.
    let (pattern, named) = levels
        .iter()
        .fold((false, false), |(p, m), l| (p || l.pattern, m || l.named));
    if pattern && named {
        return Err(refusal());
    }
    Ok(())
}

/// The aliases of select items (between the statement's first word and `from_at`) that mention
/// a metadata field, by `names` (a token's names) and `metadata`: a set, as every name of the
/// statement is looked up in it (robust18: a list made a statement of n aliases and n names n²
/// comparisons, 0.6 s for 100 KB and 9 s for 400 KB in a debug build).
fn metadata_aliases(
    toks: &[Tok],
    from_at: Option<usize>,
    names: &dyn Fn(&Tok) -> Vec<String>,
    metadata: &dyn Fn(&str) -> bool,
) -> std::collections::HashSet<String> {
    let mut aliases = std::collections::HashSet::new();
    let select = &toks[1.min(toks.len())..from_at.unwrap_or(toks.len())];
    let mut depth = 0usize;
    let mut item: Vec<&Tok> = Vec::new();
    for t in select.iter().chain(std::iter::once(&Tok {
        kind: Kind::Punct(b','),
        start: 0,
        end: 0,
    })) {
        match t.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => depth = depth.saturating_sub(1),
            Kind::Punct(b',') if depth == 0 => {
                // An item naming an earlier item's alias gives its own alias that standing
                // too (`SELECT _id AS x, x AS y`).
                let mentions = item
                    .iter()
                    .any(|t| names(t).iter().any(|n| metadata(n) || aliases.contains(n)));
                if let (true, [_, .., last]) = (mentions, item.as_slice()) {
                    aliases.extend(names(last));
                }
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(t);
    }
    aliases
}

/// The content of a `'...'` string literal (doubled quotes undone).
fn string_value(raw: &str) -> String {
    raw.get(1..raw.len().saturating_sub(1))
        .unwrap_or_default()
        .replace("''", "'")
}

/// `key=value;key=value` as Elasticsearch SQL reads full-text options (keys lower-cased and
/// trimmed, values trimmed). A key given twice is a 400, as Elasticsearch refuses an exact
/// duplicate ("Duplicate option"): which value counts is then never esgate's guess (attack26b;
/// `fuzziness=2;FUZZINESS=0` is one key here, two to Elasticsearch, refused all the same).
fn parse_options(s: &str) -> Result<Map<String, Value>, Rejection> {
    let mut out = Map::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(Rejection::bad_request(
                "full-text options must be key=value pairs",
            ));
        };
        let previous = out.insert(
            k.trim().to_ascii_lowercase(),
            Value::String(v.trim().to_string()),
        );
        if previous.is_some() {
            return Err(Rejection::bad_request("a full-text option is given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_queries_expose_their_table() {
        let cases: &[(&str, &str)] = &[
            ("SELECT * FROM logs-a", "logs-a"),
            (
                "select a, b from logs-a where a = 1 order by b limit 5",
                "logs-a",
            ),
            ("SELECT * FROM \"logs-*\"", "logs-*"),
            ("SELECT * FROM `logs-*` AS l WHERE l.a > 2", "logs-*"),
            ("SELECT * FROM \"logs-a,logs-b\" x", "logs-a,logs-b"),
            ("SELECT * FROM \"we\"\"ird\"", "we\"ird"),
            ("SELECT 'FROM secret' AS s, \"from\" FROM logs-a", "logs-a"),
            ("SELECT a -- FROM secret\nFROM logs-a", "logs-a"),
            ("SELECT a /* FROM secret */ FROM logs-a", "logs-a"),
            ("SELECT a /*/ FROM secret */ FROM logs-a", "logs-a"),
            (
                "SELECT COUNT(*) FROM logs-a GROUP BY user HAVING COUNT(*) > 1",
                "logs-a",
            ),
            ("SELECT user FROM logs-a WHERE user = 'it''s'", "logs-a"),
            (
                "SELECT * FROM logs-a PIVOT (COUNT(x) FOR y IN ('a', 'b'))",
                "logs-a",
            ),
            ("SeLeCt * FrOm logs-a", "logs-a"),
            ("SELECT 'caf\u{e9}' FROM logs-a", "logs-a"),
            ("SELECT a FROM logs-a ORDER BY a DESC, b ASC", "logs-a"),
        ];
        for (q, want) in cases {
            let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(parsed.table, *want, "{q}");
        }
    }

    /// attack26c: a word may hold `-`, `*`, `:` and `.` (for `FROM logs-a`), which Elasticsearch
    /// reads as operators elsewhere, so `-DATABASE()` was the word `-database`, not the
    /// function: forwarded (Elasticsearch refused it for its type). The name a word calls is
    /// what follows its last such byte; `SCORE()` so glued is found too.
    #[test]
    fn refused_functions_glued_to_an_operator_are_refused() {
        for q in [
            "SELECT -DATABASE() FROM logs-a",
            "SELECT -USER() FROM logs-a",
            "SELECT 1-CURRENT_USER() FROM logs-a",
            "SELECT 2*database () FROM logs-a",
            "SELECT a FROM logs-a WHERE n-User() > 0",
            "SELECT a FROM logs-a ORDER BY 1::user()",
        ] {
            let r = parse(q);
            assert!(r.is_err(), "{q:?} was accepted as {r:?}");
            assert_eq!(r.unwrap_err().kind, crate::RejectKind::Forbidden, "{q:?}");
        }
        for q in [
            "SELECT -SCORE() FROM logs-a",
            "SELECT a FROM logs-a ORDER BY 1-score() DESC",
            "SELECT 2*Score () AS s FROM logs-a",
        ] {
            assert!(parse(q).unwrap().scores, "{q:?}");
        }
        // Names that merely end like one are not calls.
        let q = parse("SELECT user, \"database\", n-score FROM logs-a").unwrap();
        assert!(!q.scores);
    }

    #[test]
    fn statements_that_could_read_another_index_are_refused() {
        let cases = [
            "",
            "SHOW TABLES",
            "show tables \"*\"",
            "DESCRIBE logs-a",
            "DESC logs-a",
            "SYS COLUMNS",
            "SELECT 1",
            "SELECT DATABASE() FROM logs-a",
            "SELECT \"USER\"() AS u FROM logs-a",
            "SELECT `user`() FROM logs-a",
            "SELECT \"DATABASE\" () FROM logs-a",
            "SELECT * FROM \"logs-a\":secret",
            "SELECT * FROM \"logs-a\" :secret",
            "SELECT * FROM logs-a:secret",
            "SELECT * FROM \"cluster:logs-a\"",
            "SELECT * FROM logs-a AS -x",
            "SELECT ((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))) FROM logs-a",
            "SELECT USER () FROM logs-a",
            "EXPLAIN SELECT * FROM logs-a",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT * FROM logs-a, secret",
            "SELECT * FROM logs-a JOIN secret ON a = b",
            "SELECT * FROM (SELECT * FROM secret)",
            "SELECT * FROM logs-a WHERE a IN (SELECT a FROM secret)",
            "SELECT * FROM logs-a UNION SELECT * FROM secret",
            "SELECT * FROM logs-a FROM secret",
            "SELECT EXTRACT(YEAR FROM d) FROM logs-a",
            "SELECT * FROM FROZEN secret",
            "SELECT * FROM logs-a INCLUDE FROZEN",
            "SELECT * FROM logs-a; SELECT * FROM secret",
            "SELECT {fn USER()} FROM logs-a",
            "SELECT * FROM 'logs-a'",
            "SELECT * FROM",
            "SELECT * FROM logs-a x y",
            "SELECT * FROM logs-a AS",
            "SELECT * FROM logs-a WHERE (a = 1",
            "SELECT * FROM logs-a WHERE a = 1)",
            "SELECT * FROM logs-a WHERE a = 'unterminated",
            "SELECT * FROM \"logs-a",
            "SELECT * FROM logs-a /* unterminated",
            "SELECT * FROM logs-a /* a /* b */ FROM secret",
            "SELECT * FROM logs-a-- glued\n, secret",
            "SELECT a /* FROM /* nested */ secret */ FROM logs-a",
            "SELECT * FROM logs-a -- c\r, secret",
            "SELECT * FROM logs-a -- c\rUNION SELECT * FROM secret",
            "SELECT * FR\u{d6}M logs-a",
            "SELECT * \u{FF26}ROM secret",
            "SELECT *\u{00A0}FROM logs-a",
            "SELECT * FROM logs-a\u{0}",
            "SELECT * FROM \"\"",
        ];
        for q in cases {
            let r = parse(q);
            assert!(r.is_err(), "{q:?} was accepted as {r:?}");
            assert_eq!(r.unwrap_err().kind, crate::RejectKind::Forbidden, "{q:?}");
        }
    }

    #[test]
    fn full_text_functions_take_no_expanding_options_or_fuzzy_text() {
        // Issue 17.1: MATCH()/QUERY() options and QUERY() text like the query DSL's.
        for q in [
            "SELECT * FROM logs-a WHERE MATCH(message, 'hello')",
            "SELECT * FROM logs-a WHERE MATCH(message, 'hello', 'operator=and;fuzziness=0')",
            "SELECT * FROM logs-a WHERE QUERY('user:bo* AND \"a b\"~2')",
            "SELECT * FROM logs-a WHERE QUERY('b*', 'default_field=user;rewrite=constant_score')",
            "SELECT query FROM logs-a",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
        for q in [
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'fuzziness=AUTO')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'operator=or; Fuzziness = 2')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'max_expansions=1')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'fuzzy_rewrite=top_terms_1')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', ?)",
            "SELECT * FROM logs-a WHERE match('user^2,m', 'he', 'type=phrase_prefix')",
            "SELECT * FROM logs-a WHERE QUERY('user:bob~')",
            "SELECT * FROM logs-a WHERE QUERY('user:bob~1 OR x')",
            "SELECT * FROM logs-a WHERE QUERY(?)",
            "SELECT * FROM logs-a WHERE QUERY('bob', 'fuzzy_max_expansions=1')",
            "SELECT * FROM logs-a WHERE QUERY('b*', 'rewrite=top_terms_1')",
            "SELECT * FROM logs-a WHERE QUERY('_id:b*')",
            "SELECT * FROM logs-a WHERE QUERY('b*', 'default_field=_id')",
            "SELECT * FROM logs-a WHERE QUERY('it''s~')",
            "SELECT * FROM logs-a WHERE \"QUERY\"('user:bob~')",
            "SELECT * FROM logs-a WHERE `match`(user, 'bob', 'fuzziness=1')",
        ] {
            assert!(parse(q).is_err(), "{q} was accepted");
        }
    }

    /// Attack26b: Elasticsearch SQL takes any number of option strings after the query text
    /// (`(',' options=string)*` in `SqlBase.g4`) and joins them with `;` (`ExpressionBuilder.
    /// getQueryOptions`), so every one is checked, not the first alone; and `MATCH` with a
    /// string first (`multiFields=string`) puts that comma list of fields into a `multi_match`
    /// as written (`FullTextUtils.parseFields`, no mapping between, where a name is resolved
    /// and metadata fields are left out): each field is checked like a query's.
    #[test]
    fn every_option_string_and_match_field_list_is_checked() {
        for q in [
            "SELECT * FROM logs-a WHERE MATCH('user^2,message', 'bob')",
            "SELECT * FROM logs-a WHERE MATCH('_id', 'b1')",
            "SELECT * FROM logs-a WHERE MATCH(' user , message ^ 3', 'bob', 'operator=and')",
            "SELECT * FROM logs-a WHERE MATCH('*', 'bob')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'operator=and', 'lenient=true')",
            "SELECT * FROM logs-a WHERE MATCH(user, ?)",
            "SELECT * FROM logs-a WHERE QUERY('bob', 'lenient=true', 'default_field=user')",
            "SELECT * FROM logs-a WHERE QUERY('bob', 'fields=user^2,message')",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
        for q in [
            // A later option string: fuzzy expansion over every tenant's terms, a target on
            // an internal counter (a range bisects it), a prefix over `_id`'s terms.
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'lenient=true', 'fuzziness=2')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'operator=or', 'max_expansions=1')",
            "SELECT * FROM logs-a WHERE MATCH('user', 'he', 'lenient=true', 'type=phrase_prefix')",
            "SELECT * FROM logs-a WHERE QUERY('5', 'lenient=true', 'default_field=_seq_no')",
            "SELECT * FROM logs-a WHERE QUERY('[0 TO 9]', 'lenient=true', 'default_field=_seq_no')",
            "SELECT * FROM logs-a WHERE QUERY('b*', 'lenient=true', 'default_field=_id')",
            "SELECT * FROM logs-a WHERE QUERY('bob~', 'x=y', 'fuzzy_max_expansions=1')",
            // A later option string as a parameter (its value is joined in too).
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'lenient=true', ?)",
            "SELECT * FROM logs-a WHERE QUERY('5', 'lenient=true', ?)",
            // A key given twice: which one counts is the backend's choice, not esgate's.
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'fuzziness=2;fuzziness=0')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'bob', 'fuzziness=2', 'FUZZINESS = 0')",
            // The field list of MATCH names an internal counter, or is a parameter.
            "SELECT * FROM logs-a WHERE MATCH('_seq_no', '5')",
            "SELECT _id FROM logs-a WHERE MATCH('_seq_no', '5') OR MATCH('_seq_no', '6')",
            "SELECT * FROM logs-a WHERE MATCH('message,_primary_term^2', '1')",
            "SELECT * FROM logs-a WHERE MATCH(' _seq_no ', '5')",
            "SELECT * FROM logs-a WHERE MATCH('_s*', '5')",
            "SELECT * FROM logs-a WHERE \"MATCH\"('_seq_no', '5')",
            "SELECT * FROM logs-a WHERE MATCH(?, '5')",
            // `fields` among QUERY's options names fields too.
            "SELECT * FROM logs-a WHERE QUERY('5', 'fields=message,_seq_no')",
        ] {
            let e = parse(q).expect_err(q);
            assert!(
                matches!(
                    e.kind,
                    crate::RejectKind::Forbidden | crate::RejectKind::BadRequest
                ),
                "{q}: {e:?}"
            );
        }
    }

    /// attack26e: Elasticsearch SQL upper-cases a function's name in Java, where `ı`, `ſ`
    /// and ligatures like `ﬆ` become ASCII: a quoted name holding them calls the function
    /// every check compared with ASCII names missed.
    #[test]
    fn quoted_function_names_that_java_upper_cases_to_ascii_are_refused() {
        for q in [
            "SELECT \"uſer\"() AS u FROM logs-a",
            "SELECT \"databaſe\"() AS d FROM logs-a",
            "SELECT \"current_uſer\"() AS u FROM logs-a",
            "SELECT \"ſcore\"() AS s FROM logs-a",
            "SELECT \"percentıle\"(n, 50, 'tdigest', 1e8) FROM logs-a",
            "SELECT * FROM logs-a WHERE \"ſtarts_with\"(_id, 'b')",
            "SELECT * FROM logs-a WHERE `ﬆarts_with`(_id, 'b')",
        ] {
            let r = parse(q);
            assert!(r.is_err(), "{q} was accepted");
            assert_eq!(r.unwrap_err().kind, crate::RejectKind::Forbidden, "{q}");
        }
        // Non-ASCII stays allowed in strings and quoted names that call nothing.
        for q in [
            "SELECT \"naïve\" FROM logs-a WHERE city = 'Zürich'",
            "SELECT UCASE(\"ſ\") FROM logs-a",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
        assert!(parse("SELECT \"ſcore\" FROM logs-a").is_ok_and(|p| !p.scores));
    }

    /// attack26e (M, availability): PERCENTILE's and PERCENTILE_RANK's method parameter (a
    /// t-digest's compression, an HDR histogram's digits) sizes every bucket's sketch outside
    /// the backend's circuit breakers: bounded as the query DSL's, literals only.
    #[test]
    fn percentile_methods_are_bounded_like_the_dsls() {
        for q in [
            "SELECT PERCENTILE(n, 50) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest') FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 200) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1000) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1000.0) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1E3) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', .5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 0) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', NULL) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr') FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 2) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 3) FROM logs-a",
            "SELECT percentile_rank(n, 7, 'hdr', /* c */ 1) FROM logs-a",
            "SELECT PERCENTILE(ABS(n), 50, 'tdigest', 100) FROM logs-a GROUP BY k",
            "SELECT k FROM logs-a GROUP BY k HAVING PERCENTILE(n, 90, 'hdr', 3) > 5",
            "SELECT percentile FROM logs-a",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
        for q in [
            "SELECT PERCENTILE(n, 50, 'tdigest', 100000000) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1e8) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1000.5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1001) FROM logs-a",
            "SELECT PERCENTILE_RANK(n, 7, 'tdigest', 100000) FROM logs-a",
            "SELECT percentile(n, 50, 'tdigest', 1E+8) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1e4 * 1e4) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1e8::double) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', CAST('1e8' AS DOUBLE)) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', (1e8)) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', -1) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', ?) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', '1e8') FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', nan) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', inf) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', m) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', ) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 4) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 2.5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 3e0) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', ?) FROM logs-a",
            "SELECT PERCENTILE_RANK(n, 7, 'hdr', 5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, ?, 1e8) FROM logs-a",
            "SELECT PERCENTILE(n, 50, ?) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'td' 'igest', 1e8) FROM logs-a",
            "SELECT PERCENTILE(n, 50, CONCAT('td', 'igest'), 1e8) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'TDIGEST', 100) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'other') FROM logs-a",
            "SELECT \"PERCENTILE\"(n, 50, 'tdigest', 1e8) FROM logs-a",
            "SELECT `percentile_rank`(n, 7, 'hdr', 5) FROM logs-a",
            "SELECT k FROM logs-a GROUP BY k HAVING PERCENTILE(n, 90, 'tdigest', 1e8) > 5",
            "SELECT k FROM logs-a GROUP BY k ORDER BY PERCENTILE(n, 90, 'hdr', 5)",
        ] {
            let r = parse(q);
            assert!(r.is_err(), "{q} was accepted");
            assert_eq!(r.unwrap_err().kind, crate::RejectKind::Forbidden, "{q}");
        }
    }

    /// attack27a (M, availability): a word may hold `-` (for `FROM logs-a`), which
    /// Elasticsearch reads as a minus around an aggregate (`arithmeticUnary`,
    /// `arithmeticBinary`), so `-PERCENTILE(n, 50, 'hdr', 5)` was the word `-percentile`, not
    /// the function, and its method went unchecked: the 4 MiB sketch a group that attack26e
    /// bounded. The function a word calls is what follows its last operator byte, as for
    /// `SCORE()` and `USER()` (attack26c). (`2*PERCENTILE(` is one table identifier to
    /// Elasticsearch's lexer, a parse error there: refused here all the same.)
    #[test]
    fn percentile_methods_glued_to_an_operator_are_bounded() {
        for q in [
            "SELECT k, -PERCENTILE(n, 50, 'hdr', 5) FROM logs-a GROUP BY k",
            "SELECT 2*PERCENTILE(n, 50, 'tdigest', 1e8) FROM logs-a",
            "SELECT 1-percentile_rank(n, 7, 'tdigest', 100000) FROM logs-a",
            "SELECT k FROM logs-a GROUP BY k HAVING 0-Percentile_Rank(n, 7, 'hdr', 5) < 0",
            "SELECT k FROM logs-a GROUP BY k ORDER BY -PERCENTILE(n, 90, 'hdr', 4)",
            "SELECT 1*PERCENTILE(n, 50, 'tdigest', ?) FROM logs-a",
            "SELECT -PERCENTILE(n, 50, ?, 5) FROM logs-a",
        ] {
            let r = parse(q);
            assert!(r.is_err(), "{q} was accepted");
            assert_eq!(r.unwrap_err().kind, crate::RejectKind::Forbidden, "{q}");
        }
        for q in [
            "SELECT k, -PERCENTILE(n, 50, 'hdr', 3) FROM logs-a GROUP BY k",
            "SELECT 2*PERCENTILE(n, 50, 'tdigest', 1000) FROM logs-a",
            "SELECT n-percentile, m*percentile_rank FROM logs-a",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
    }

    /// Attack26d (pinned, no finding): spellings of `MATCH`'s field list and of the option
    /// strings that split differently here and in Elasticsearch (`FullTextUtils`: fields split
    /// at every `,`, a name ending at its first `^`, nothing trimmed; options split at every
    /// `;`, a key ending at its first `=`, nothing trimmed or lower-cased). Where they differ
    /// esgate trims and lower-cases, which can only refuse more: a name or key that reaches
    /// Elasticsearch with spaces or in upper case is an unknown field or option there. What
    /// passes here names no metadata field in Elasticsearch either: `*` (its field resolution
    /// leaves metadata fields out of `*` alone), a boost that is not a number (refused there),
    /// a column name (resolved against the mapping, without metadata fields), a look-alike
    /// character (another name). A `fields` option of MATCH (refused there: no applier takes
    /// it) is checked like its field list all the same (hardening).
    #[test]
    fn match_field_lists_and_options_split_no_wider_than_in_elasticsearch() {
        for q in [
            "SELECT * FROM logs-a WHERE MATCH('*_no', '5')",
            "SELECT * FROM logs-a WHERE MATCH('*no', '5')",
            "SELECT * FROM logs-a WHERE MATCH('\u{a0}_seq_no', '5')",
            "SELECT * FROM logs-a WHERE MATCH('\t_seq_no\t^2', '5')",
            "SELECT * FROM logs-a WHERE MATCH('user\\,_seq_no', '5')",
            "SELECT * FROM logs-a WHERE MATCH('\"user,_seq_no\"', '5')",
            "SELECT * FROM logs-a WHERE MATCH('_seq_no^^2', '5')",
            "SELECT * FROM logs-a WHERE MATCH('user'',_seq_no', '5')",
            "SELECT * FROM logs-a WHERE MATCH('user' || ',_seq_no', '5')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'x', 'fuzziness\u{a0}=2')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'x', 'FUZZINESS=2')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'x', 'operator=and;;fuzziness=2')",
            "SELECT * FROM logs-a WHERE QUERY('5', 'fields=user;fields=_seq_no')",
            "SELECT * FROM logs-a WHERE QUERY('5', 'fields=user', 'fields=_seq_no')",
            "SELECT * FROM logs-a WHERE QUERY('5', 'default_field=*_no')",
            "SELECT * FROM logs-a WHERE QUERY('5', 'fields= _seq_no ^2')",
            "SELECT * FROM logs-a WHERE QUERY('5', 'Default_Field=_seq_no')",
            "SELECT * FROM logs-a WHERE MATCH('user', 'x', 'fields=_seq_no')",
            "SELECT * FROM logs-a WHERE MATCH(user, 'x', 'fields=user,_seq_no^2')",
        ] {
            assert!(parse(q).is_err(), "{q}");
        }
        for q in [
            "SELECT * FROM logs-a WHERE MATCH('user,*', '5')",
            "SELECT * FROM logs-a WHERE MATCH('user^_seq_no', '5')",
            "SELECT * FROM logs-a WHERE MATCH(\"_seq_no\", '5')",
            "SELECT * FROM logs-a WHERE MATCH('\u{FF3F}seq_no', '5')",
        ] {
            assert!(parse(q).is_ok(), "{q}");
        }
    }

    /// Attack26d (M: availability): a SQL `PERCENTILE`'s or `PERCENTILE_RANK`'s method
    /// parameter is the t-digest `compression` or the HDR digits of the aggregation it makes,
    /// bounded in the query DSL by attack26 and unread here: `PERCENTILE(n, 50, 'hdr', 5)`
    /// under a `GROUP BY` allocated 4 MiB a group outside the circuit breakers. (Checked by
    /// attack26e's `check_percentile_methods`, which also refuses a method given as a
    /// parameter or in another case.)
    #[test]
    fn percentile_sketches_are_bounded_in_sql_too() {
        for q in [
            "SELECT PERCENTILE(n, 50) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest') FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1000) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 250.5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 3) FROM logs-a",
            "SELECT PERCENTILE_RANK(n, 5, 'hdr', 2) FROM logs-a GROUP BY user",
            "SELECT user FROM logs-a WHERE user = 'PERCENTILE(n, 5, ''hdr'', 5)'",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
        for q in [
            "SELECT PERCENTILE(n, 50, 'hdr', 5) FROM logs-a GROUP BY user",
            "SELECT PERCENTILE(n, 50, 'hdr', 4) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 3.9) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 1 + 3) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', ?) FROM logs-a",
            "SELECT percentile(n, 50, 'HDR', 5) FROM logs-a",
            "SELECT \"PERCENTILE\"(n, 50, 'hdr', 5) FROM logs-a",
            "SELECT PERCENTILE_RANK(n, 5, 'hdr', 5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 100000000) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1e8) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', 1000.5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', -1) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'tdigest', '100000000') FROM logs-a",
            "SELECT PERCENTILE(n, 50, ?, 5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'other', 5) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', 3, 4) FROM logs-a",
            "SELECT PERCENTILE(n, 50, 'hdr', (5)) FROM logs-a",
        ] {
            assert!(parse(q).is_err(), "{q}");
        }
    }

    /// Attack18e: pattern matches and ranges on metadata fields are refused as in the query
    /// DSL and query text (`expansion`): `_id`'s terms are every document's.
    #[test]
    fn pattern_matches_and_ranges_on_metadata_fields_are_refused() {
        for q in [
            "SELECT * FROM logs-a WHERE _id LIKE 'b%'",
            "SELECT * FROM logs-a WHERE _id like 'b_'",
            "SELECT * FROM logs-a WHERE \"_id\" RLIKE 'b.*'",
            "SELECT * FROM logs-a WHERE `_routing` LIKE 'b%'",
            "SELECT * FROM logs-a WHERE STARTS_WITH(_id, 'b')",
            "SELECT * FROM logs-a WHERE starts_with(\"_id\", 'b')",
            "SELECT * FROM logs-a WHERE NOT (_id) LIKE 'b%'",
            "SELECT * FROM logs-a t WHERE t._id LIKE 'b%'",
            "SELECT * FROM logs-a WHERE _id > 'b'",
            "SELECT * FROM logs-a WHERE 'b' <= _id",
            "SELECT * FROM logs-a WHERE _id BETWEEN 'a' AND 'c'",
            "SELECT * FROM logs-a WHERE _version >= 2",
            "SELECT * FROM logs-a WHERE _tier < 'data_warm'",
            "SELECT * FROM logs-a WHERE user = 'a' AND _id LIKE 'b%'",
            "SELECT _id AS x FROM logs-a WHERE x LIKE 'b%'",
            "SELECT _id x, user FROM logs-a WHERE X > 'b'",
            "SELECT LCASE(_id) AS \"k\" FROM logs-a WHERE k LIKE 'b%'",
            "SELECT * FROM logs-a WHERE CASE WHEN _id LIKE 'b%' THEN 1 ELSE 0 END = 1",
            // attack18f: the field as an operand of a conditional Elasticsearch SQL's
            // optimizer folds to the field itself (`SimplifyCase`, `SimplifyConditional`),
            // its name apart from the pattern by a `,` or a CASE word inside the brackets.
            "SELECT * FROM logs-a WHERE CASE WHEN true THEN _id END LIKE 'b%'",
            "SELECT * FROM logs-a WHERE CASE WHEN true THEN _id ELSE 'x' END > 'b'",
            "SELECT * FROM logs-a WHERE IIF(true, _id, 'x') LIKE 'b%'",
            "SELECT * FROM logs-a WHERE IIF(true, _id, a OR b) LIKE 'b%'",
            "SELECT * FROM logs-a WHERE COALESCE(_id, NULL) LIKE 'b%'",
            "SELECT * FROM logs-a WHERE IFNULL(_id, 'x') RLIKE 'b.*'",
            "SELECT * FROM logs-a WHERE 'b' < COALESCE(NULL, _version)",
            "SELECT * FROM logs-a WHERE CASE WHEN true THEN _id WHEN a OR b THEN 'x' END LIKE 'b%'",
            // An alias of an alias of a metadata field.
            "SELECT _id AS x, x AS y FROM logs-a WHERE y LIKE 'b%'",
            // hard19: a grouping bracket ends its clauses at AND and OR, and what it leaves
            // as its value joins the clause around it; a call's brackets end nothing.
            "SELECT * FROM logs-a WHERE (_id LIKE 'b%' OR a = 1)",
            "SELECT * FROM logs-a WHERE (a = 1 OR _id LIKE 'b%')",
            "SELECT * FROM logs-a WHERE NOT (a = 1 AND (_id > 'b'))",
            "SELECT * FROM logs-a WHERE ((_id)) LIKE 'b%'",
            "SELECT * FROM logs-a WHERE (a = 1 OR (_id)) LIKE 'b%'",
            "SELECT * FROM logs-a WHERE (_id)::keyword LIKE 'b%'",
            "SELECT * FROM logs-a WHERE IIF((a OR b), _id, 'x') LIKE 'b%'",
            "SELECT * FROM logs-a WHERE (IIF(true, _id, 'x') LIKE 'b%' OR a)",
            "SELECT * FROM logs-a WHERE _id IN ('a', 'b') AND (x OR _id LIKE 'b%')",
            // The AND of a BETWEEN is the range's, not a condition's.
            "SELECT * FROM logs-a WHERE user BETWEEN 'a' AND _id",
            "SELECT * FROM logs-a WHERE (user BETWEEN 'a' AND _id)",
            // attack19c: LIMIT is no reserved word (`nonReserved`): an alias, not a clause.
            "SELECT _id AS limit FROM logs-a WHERE limit LIKE 'b%'",
            "SELECT _id limit FROM logs-a WHERE (a = 1 OR limit > 'b')",
            // attack19c: `-`, `.`, `:` and `*` are bytes of esgate's words but end a keyword
            // in Elasticsearch SQL's lexer: a CASE (whose OR had ended the clause) and a
            // BETWEEN glued to what follows them.
            "SELECT * FROM logs-a WHERE CASE-1=-1 WHEN true THEN _id WHEN true OR false THEN 'x' END LIKE 'b%'",
            "SELECT * FROM logs-a WHERE (a OR CASE.5=.5 WHEN true THEN _id WHEN a OR b THEN 'x' END > 'b')",
            "SELECT * FROM logs-a WHERE _version BETWEEN-1 AND 5",
            "SELECT * FROM logs-a WHERE (_version BETWEEN.5 AND 5 OR a = 1)",
            "SELECT * FROM logs-a WHERE _version NOT BETWEEN-1 AND 5",
            // attack19c: a select item without an alias is named by its text (Elasticsearch
            // SQL's `ResolveAliases`: `sourceText()`), which a quoted name in WHERE reads
            // (`ResolveFilterRefs`), and the optimizer folds the IIF to `_id`.
            "SELECT IIF(true, _id, 'x') FROM logs-a WHERE \"IIF(true, _id, 'x')\" LIKE 'b%'",
            "SELECT _id AS k, COALESCE(k, NULL) FROM logs-a WHERE `COALESCE(k, NULL)` > 'b'",
        ] {
            let r = parse(q);
            assert!(r.is_err(), "{q} was accepted");
            assert_eq!(r.unwrap_err().kind, crate::RejectKind::Forbidden, "{q}");
        }
        for q in [
            "SELECT _id, user FROM logs-a WHERE user LIKE 'b%'",
            "SELECT * FROM logs-a WHERE _id = 'b1' AND user LIKE 'b%'",
            "SELECT * FROM logs-a WHERE _id <> 'b1' OR n > 2",
            "SELECT * FROM logs-a WHERE _id IN ('b1', 'b2')",
            "SELECT * FROM logs-a WHERE _index LIKE 'logs%'",
            "SELECT * FROM logs-a WHERE user BETWEEN 'a' AND 'c' AND _id = 'x'",
            "SELECT * FROM logs-a WHERE user LIKE '_id%'",
            "SELECT * FROM logs-a l WHERE l.a > 2 ORDER BY _id",
            // hard19: session 18 refused these (nothing ended a clause inside any bracket).
            "SELECT * FROM logs-a WHERE (a LIKE 'x%' OR _id = 'y')",
            "SELECT * FROM logs-a WHERE (_id = 'y' AND user LIKE 'b%') OR n > 2",
            "SELECT * FROM logs-a WHERE NOT (user LIKE 'x%' OR _id = 'y')",
            "SELECT * FROM logs-a WHERE a = 1 AND (_id = 'y' OR (b > 2 AND c LIKE 'z%'))",
            "SELECT * FROM logs-a WHERE user BETWEEN 'a' AND 'c' AND (_id = 'x' OR n < 3)",
            // attack19c: a LIMIT clause holds a number; the table is replaced, never read.
            "SELECT * FROM logs-a WHERE a LIKE 'x%' AND _id = 'y' LIMIT 5",
            "SELECT * FROM logs-case WHERE _id = 'x' AND a LIKE 'b%'",
            "SELECT * FROM logs-a WHERE n BETWEEN-1 AND 5 AND _id = 'x'",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
    }

    #[test]
    fn rendering_quotes_the_checked_names_in_place_of_the_table() {
        let q = parse("SELECT a FROM logs-* AS l WHERE b = 'x' LIMIT 3").unwrap();
        let out = q
            .render(&["logs-a".to_string(), "logs-b".to_string()])
            .unwrap();
        assert_eq!(
            out,
            "SELECT a FROM  \"logs-a,logs-b\"  AS l WHERE b = 'x' LIMIT 3"
        );
        // The rendered text parses back to exactly the rendered list.
        assert_eq!(parse(&out).unwrap().table, "logs-a,logs-b");
        assert!(q.render(&["a\"b".to_string()]).is_err());
        assert!(q.render(&["a,b".to_string()]).is_err());
        assert!(q.render(&[]).is_err());
    }

    /// `check_metadata_patterns` as session 18 left it (no clause ended inside any bracket):
    /// the reference of `calls_and_cases_decide_as_before`.
    fn check_metadata_patterns_before(
        text: &str,
        toks: &[Tok],
        from_at: Option<usize>,
    ) -> Result<(), Rejection> {
        let names = |t: &Tok| -> Vec<String> {
            let raw = &text[t.start..t.end];
            match t.kind {
                Kind::Word => raw
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
                    .filter(|s| !s.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect(),
                Kind::Quoted => {
                    let q = &raw[..1];
                    let inner = raw[1..raw.len() - 1].replace(&format!("{q}{q}"), q);
                    let mut out: Vec<String> =
                        inner.split('.').map(str::to_ascii_lowercase).collect();
                    out.push(inner.to_ascii_lowercase());
                    out
                }
                _ => Vec::new(),
            }
        };
        let metadata = |n: &str| n.starts_with('_') && expansion::may_be_metadata(n);
        let aliases = metadata_aliases(toks, from_at, &names, &metadata);
        let mut pattern = false;
        let mut named = false;
        // Brackets and CASE ... END open around the clause's operands: inside them nothing ends
        // the clause (attack18f: `IIF(true, _id, 'x') LIKE 'b%'` and `CASE WHEN true THEN _id END
        // LIKE 'b%'` fold to a pattern on `_id` in Elasticsearch SQL's optimizer, and the `,`
        // or `END` between the name and the pattern had ended the clause).
        let (mut brackets, mut cases) = (0usize, 0usize);
        for (n, t) in toks.iter().enumerate() {
            let next = toks.get(n + 1);
            let word = lower(text, t);
            match (t.kind, word.as_deref()) {
                (Kind::Punct(b'('), _) => brackets += 1,
                (Kind::Punct(b')'), _) => brackets = brackets.saturating_sub(1),
                (_, Some("case")) => cases += 1,
                (_, Some("end")) => cases = cases.saturating_sub(1),
                _ => {}
            }
            let breaks = brackets == 0
                && cases == 0
                && (t.kind == Kind::Punct(b',')
                    || word.as_deref().is_some_and(|w| CLAUSE_BREAKS.contains(&w)));
            if breaks {
                if pattern && named {
                    return Err(refuse(
                        "pattern matches and ranges on metadata fields are not allowed",
                    ));
                }
                pattern = false;
                named = false;
                continue;
            }
            match t.kind {
                Kind::Punct(b'<') => {
                    pattern |= next.map(|x| (x.kind, x.start)) != Some((Kind::Punct(b'>'), t.end))
                }
                Kind::Punct(b'>') => {
                    pattern |= !(n > 0
                        && toks[n - 1].kind == Kind::Punct(b'<')
                        && toks[n - 1].end == t.start)
                }
                _ => {}
            }
            if let Some(w) = &word {
                pattern |= matches!(w.as_str(), "like" | "rlike" | "between");
            }
            let called = next.is_some_and(|x| x.kind == Kind::Punct(b'('));
            for name in names(t) {
                pattern |= called && name == "starts_with";
                named |= metadata(&name) || aliases.contains(&name);
            }
        }
        if pattern && named {
            return Err(refuse(
                "pattern matches and ranges on metadata fields are not allowed",
            ));
        }
        Ok(())
    }

    mod props {
        use proptest::prelude::*;

        use super::super::{lex, parse};
        use super::check_metadata_patterns_before;

        fn fragments() -> impl Strategy<Value = String> {
            let f = prop::sample::select(vec![
                "SELECT",
                "select",
                " ",
                "*",
                "FROM",
                "from",
                "logs-a",
                "secret",
                ",",
                "'",
                "\"",
                "`",
                "--",
                "/*",
                "*/",
                "\n",
                "\r",
                "(",
                ")",
                "WHERE a = 1",
                "x",
                "AS",
                "UNION",
                "\u{e9}",
                ";",
                "{",
                "LIMIT 1",
                "''",
                "\"\"",
            ]);
            let tail = prop::collection::vec(f, 0..14).prop_map(|v| v.concat());
            // Half start like an accepted query, so the round trip is exercised often.
            (any::<bool>(), tail).prop_map(|(valid_start, t)| {
                if valid_start {
                    format!("SELECT * FROM logs-a {t}")
                } else {
                    t
                }
            })
        }

        /// A condition built of names (metadata ones and aliases), patterns and ranges, calls'
        /// brackets (never a grouping one), commas, CASE words, AND and OR.
        fn call_conditions() -> impl Strategy<Value = String> {
            let f = prop::sample::select(vec![
                "_id",
                "x",
                "a",
                "_version",
                " LIKE 'b%' ",
                " > 'b' ",
                " <= ",
                " <> ",
                " = 'y' ",
                "IIF(",
                "COALESCE(",
                " IN (",
                "CAST(",
                ")",
                ", ",
                " AND ",
                " OR ",
                " NOT ",
                " CASE ",
                " WHEN ",
                " THEN ",
                " ELSE ",
                " END ",
                "true",
                "'q'",
            ]);
            prop::collection::vec(f, 0..16).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(crate::testing::cases(2000))]

            /// Without a grouping bracket or a BETWEEN, clauses end where they ended before
            /// (hard19 changed only groups and BETWEEN's AND): the same refusals.
            #[test]
            fn calls_and_cases_decide_as_before(w in call_conditions()) {
                let text = format!("SELECT _id AS k, a FROM logs-a WHERE {w}");
                if let Ok(toks) = lex(&text) {
                    let from_at = toks.iter().position(|t| &text[t.start..t.end] == "FROM");
                    prop_assert_eq!(
                        super::super::check_metadata_patterns(&text, &toks, from_at).is_ok(),
                        check_metadata_patterns_before(&text, &toks, from_at).is_ok(),
                        "{:?}", text
                    );
                }
            }

            /// Any text, alone and after a valid start: no panic, the same answer twice.
            #[test]
            fn any_text_is_read_without_panic_and_alike(t in crate::testing::query_text()) {
                for q in [t.clone(), format!("SELECT * FROM logs-a WHERE {t}")] {
                    let first = parse(&q).map(|p| format!("{p:?}"));
                    prop_assert_eq!(&first, &parse(&q).map(|p| format!("{p:?}")), "{:?}", q);
                }
            }

            /// Nothing panics; an accepted query rendered with its own table (split on commas)
            /// parses back to exactly that table.
            #[test]
            fn accepted_queries_round_trip(q in fragments()) {
                if let Ok(parsed) = parse(&q) {
                    let names: Vec<String> = parsed.table.split(',').map(str::to_string).collect();
                    if let Ok(text) = parsed.render(&names) {
                        let again = parse(&text);
                        prop_assert!(again.is_ok(), "{q:?} -> {text:?}: {again:?}");
                        prop_assert_eq!(&again.unwrap().table, &parsed.table);
                    }
                }
            }
        }
    }
}
