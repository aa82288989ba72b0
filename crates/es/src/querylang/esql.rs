//! ES|QL query text (`POST /_query`): a conservative lexer and a parser that finds the one
//! source the query reads and rebuilds the text with a checked index list in its place.
//!
//! Invariant: a query is accepted only when its structure is exactly
//! `FROM <names> [METADATA <fields>] (| <allowed command> ...)*`: one source command at the
//! very start, every later command (after a `|` outside brackets) on the allow-list of
//! processing commands that read nothing but the rows flowing in (no `ENRICH`, `LOOKUP JOIN`,
//! `FORK`, `TS`, `ROW`, `SHOW`, subqueries or unknown commands), and nothing the lexer cannot
//! classify the way Elasticsearch's lexer does (strings with their escapes, triple-quoted
//! strings, backquoted identifiers, `//` and `/* */` comments, case-insensitive
//! keywords). Anything ambiguous (a non-ASCII character outside a string or in a quoted
//! function name, an unterminated string or comment, a nested comment, a comment glued to a
//! name, a `|` inside brackets) is refused. The
//! forwarded text differs from the client's only in the source list, rendered by esgate, and
//! in every `WHERE` condition being wrapped as `NOT NOT (...)` (`WHERE_OPEN`: the same rows,
//! but nothing Elasticsearch lifts into field_caps' index filter).

pub(crate) mod filter;

use serde_json::{Map, Value};

use crate::dsl::expansion::{self, Syntax};
use crate::{querylang::lexing, Rejection};

/// Full-text functions whose options (a `{...}` map) and query text are checked like the
/// query DSL's (`expansion`): no fuzzy or prefix expansion, no expanding rewrite.
const FULL_TEXT_FUNCTIONS: &[&str] = &["match", "match_phrase", "multi_match", "qstr", "kql"];

/// Processing commands that only transform the rows produced by the source command.
const ALLOWED_COMMANDS: &[&str] = &[
    "where",
    "eval",
    "stats",
    "keep",
    "drop",
    "rename",
    "sort",
    "limit",
    "dissect",
    "grok",
    "mv_expand",
];

/// Commands refused by name, so the client learns why (everything not allowed is refused).
const NAMED_REFUSALS: &[&str] = &[
    "enrich",
    "lookup",
    "join",
    "fork",
    "ts",
    "row",
    "show",
    "metrics",
    "from",
    "explain",
    "completion",
    "rerank",
    "fuse",
    "insist",
    "inlinestats",
    "inline",
    "set",
];

/// Metadata fields a `FROM ... METADATA` clause may ask for (all per document).
const METADATA_FIELDS: &[&str] = &[
    "_index",
    "_id",
    "_score",
    "_version",
    "_source",
    "_ignored",
    "_index_mode",
];

/// What every `WHERE` condition is wrapped in, the client's and esgate's own: `NOT NOT (c)`,
/// the same rows as `c` (three-valued: `NOT null` is null; Elasticsearch's optimizer removes
/// the double negation, `BooleanSimplification`, before filters are pushed to Lucene). Its
/// reason: Elasticsearch (PR #154663, `session/TimestampIndexFilterExtractor.java`) lifts the
/// conjuncts of leading `WHERE`s that compare `@timestamp` with a literal, a parameter or
/// `NOW() ± interval` into field_caps' index filter, decided per shard from every tenant's
/// values (the channel `filter` had, see `filter`). It reads the parsed plan, before
/// analysis and optimisation, and only conjuncts that are comparisons (`splitAnd`, then
/// `instanceof EsqlBinaryComparison`): a `NOT` is none, so nothing is lifted, whichever field
/// or position a later version might extend it to. `NOT` is no full-text restriction
/// (`FullTextFunction.checkFullTextFunctionsParents` allows it; `OR` was one before 8.18).
const WHERE_OPEN: &str = " NOT NOT (";
const WHERE_CLOSE: &str = ")";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An unquoted run of characters (keyword, name, number, operator).
    Word,
    /// `"..."` or `"""..."""`.
    Str,
    /// `` `...` ``.
    Quoted,
    Pipe,
    Comma,
    /// `(`, `[` or `{`.
    Open,
    /// `)`, `]` or `}`.
    Close,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

/// A parsed query: the source list as written (each element unquoted) and the text around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The source elements in order, as the client wrote them (quotes removed).
    pub sources: Vec<String>,
    /// The text before the source list (`FROM` and any comments).
    before: String,
    /// The text after the source list (`METADATA ...` and the commands).
    after: String,
    /// Where in `after` the processing commands start (the first `|`, or its end): where a
    /// `WHERE` of esgate's goes, after the whole source command.
    commands_at: usize,
    /// Whether `METADATA` asks for `_score`: a relevance score, computed from the shard's term
    /// statistics, which a token with constant scores may not read (review 15).
    pub scores: bool,
    /// Whether the text calls `SCORE(...)` (ES|QL 9.3 on): the relevance score of the
    /// full-text functions inside it, as `_score` (esql16).
    pub score_calls: bool,
}

impl Query {
    /// The query text with `names` as its source list. Names are rendered bare when they
    /// consist of safe characters only, quoted otherwise; a name that cannot be rendered
    /// unambiguously is refused.
    pub fn render(&self, names: &[String]) -> Result<String, Rejection> {
        self.render_where(names, None)
    }

    /// [`Query::render`] with `| WHERE <condition>` inserted right after the source command,
    /// before the client's first processing command, on lines of its own (a `//` comment
    /// ending the source command cannot swallow it). The condition must have passed
    /// `check_condition`.
    pub fn render_where(
        &self,
        names: &[String],
        condition: Option<&str>,
    ) -> Result<String, Rejection> {
        if names.is_empty() {
            return Err(Rejection::forbidden("the ES|QL source list is empty"));
        }
        let mut rendered = Vec::with_capacity(names.len());
        for n in names {
            rendered.push(render_name(n)?);
        }
        let (source_rest, commands) = self.after.split_at(self.commands_at.min(self.after.len()));
        Ok(match condition {
            None => format!("{} {} {}", self.before, rendered.join(", "), self.after),
            Some(c) => format!(
                "{} {} {}\n| WHERE{WHERE_OPEN}{c}{WHERE_CLOSE}\n{}",
                self.before,
                rendered.join(", "),
                source_rest,
                commands
            ),
        })
    }
}

/// Checks a condition esgate wrote (`filter::condition`) the way Elasticsearch will read it:
/// it lexes completely into tokens (nothing skipped as a comment, every byte outside a token
/// whitespace), holds no `|`, and its brackets balance within the depth cap. So inserted after
/// `| WHERE`, it is one condition and nothing else.
pub(crate) fn check_condition(condition: &str) -> Result<(), Rejection> {
    let bad =
        || Rejection::bad_request("ES|QL [filter]: the condition could not be written safely");
    let toks = lex(condition).map_err(|_| bad())?;
    let mut at = 0;
    let mut depth = 0usize;
    for t in &toks {
        if !condition[at..t.start].bytes().all(|b| b == b' ') {
            return Err(bad());
        }
        at = t.end;
        match t.kind {
            Kind::Pipe => return Err(bad()),
            Kind::Open => {
                depth += 1;
                if depth > lexing::MAX_DEPTH {
                    return Err(bad());
                }
            }
            Kind::Close => depth = depth.checked_sub(1).ok_or_else(bad)?,
            _ => {}
        }
    }
    if toks.is_empty() || depth != 0 || !condition[at..].bytes().all(|b| b == b' ') {
        return Err(bad());
    }
    Ok(())
}

fn render_name(name: &str) -> Result<String, Rejection> {
    let bare = !name.is_empty()
        && !name.contains("//")
        && !name.contains("/*")
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'+' | b'*')
        });
    if bare {
        return Ok(name.to_string());
    }
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(Rejection::forbidden(
            "an index name cannot be written into the ES|QL query",
        ));
    }
    Ok(format!("\"{name}\""))
}

fn refuse(reason: &str) -> Rejection {
    Rejection::forbidden(format!("ES|QL query refused: {reason}"))
}

/// Splits the text into tokens, skipping whitespace and comments.
fn lex(text: &str) -> Result<Vec<Tok>, Rejection> {
    let b = text.as_bytes();
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if matches!(b.get(i + 1), Some(b'/') | Some(b'*')) => {
                if toks
                    .last()
                    .is_some_and(|t| t.end == i && t.kind == Kind::Word)
                {
                    return Err(refuse("a comment directly after a name is ambiguous"));
                }
                i = skip_comment(b, i)?;
            }
            b'"' => {
                let end = string_end(b, i)?;
                toks.push(Tok {
                    kind: Kind::Str,
                    start: i,
                    end,
                });
                i = end;
            }
            b'`' => {
                let end = lexing::doubled_quote_end(b, i, b'`').map_err(refuse)?;
                toks.push(Tok {
                    kind: Kind::Quoted,
                    start: i,
                    end,
                });
                i = end;
            }
            b'|' | b',' | b'(' | b'[' | b'{' | b')' | b']' | b'}' => {
                let kind = match c {
                    b'|' => Kind::Pipe,
                    b',' => Kind::Comma,
                    b'(' | b'[' | b'{' => Kind::Open,
                    _ => Kind::Close,
                };
                toks.push(Tok {
                    kind,
                    start: i,
                    end: i + 1,
                });
                i += 1;
            }
            _ if !c.is_ascii() => {
                return Err(refuse(
                    "non-ASCII characters are only allowed inside strings",
                ))
            }
            _ if c.is_ascii_control() => return Err(refuse("control characters are not allowed")),
            _ => {
                let start = i;
                while i < b.len() {
                    let d = b[i];
                    let ends = matches!(
                        d,
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'"'
                            | b'`'
                            | b'|'
                            | b','
                            | b'('
                            | b'['
                            | b'{'
                            | b')'
                            | b']'
                            | b'}'
                    ) || (d == b'/' && matches!(b.get(i + 1), Some(b'/') | Some(b'*')))
                        || !d.is_ascii()
                        || d.is_ascii_control();
                    if ends {
                        break;
                    }
                    i += 1;
                }
                toks.push(Tok {
                    kind: Kind::Word,
                    start,
                    end: i,
                });
            }
        }
    }
    Ok(toks)
}

/// The string literals (unescaped) and the quoted identifiers (unquoted) of a text, as the
/// lexer splits it: what the injection tests read a rendered condition back with.
#[cfg(test)]
pub(crate) fn literals(text: &str) -> (Vec<String>, Vec<String>) {
    let toks = lex(text).expect("lexes");
    let raw = |t: &Tok| &text[t.start..t.end];
    let strings = toks
        .iter()
        .filter(|t| t.kind == Kind::Str)
        .map(|t| unquote(raw(t)).expect("a lexed string"))
        .collect();
    let quoted = toks
        .iter()
        .filter(|t| t.kind == Kind::Quoted)
        .map(|t| raw(t)[1..raw(t).len() - 1].replace("``", "`"))
        .collect();
    (strings, quoted)
}

/// The index after a `//` or `/* */` comment starting at `i`.
fn skip_comment(b: &[u8], i: usize) -> Result<usize, Rejection> {
    if b.get(i + 1) == Some(&b'/') {
        return Ok(lexing::line_comment_end(b, i));
    }
    lexing::block_comment_end(b, i).map_err(refuse)
}

/// The index after the string starting at `i` (`"..."` with `\t \n \r \" \\` escapes and no
/// line breaks, or `"""..."""` on one line, optionally followed by up to two more quotes).
fn string_end(b: &[u8], i: usize) -> Result<usize, Rejection> {
    if b[i..].starts_with(b"\"\"\"") {
        let mut j = i + 3;
        while j < b.len() {
            if matches!(b[j], b'\r' | b'\n') {
                return Err(refuse("line break inside a string"));
            }
            if b[j..].starts_with(b"\"\"\"") {
                j += 3;
                let mut extra = 0;
                while extra < 2 && b.get(j) == Some(&b'"') {
                    j += 1;
                    extra += 1;
                }
                return Ok(j);
            }
            j += 1;
        }
        return Err(refuse("unterminated string"));
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'"' => return Ok(j + 1),
            b'\\' => match b.get(j + 1) {
                Some(b't' | b'n' | b'r' | b'"' | b'\\') => j += 2,
                _ => return Err(refuse("unknown escape sequence in a string")),
            },
            b'\r' | b'\n' => return Err(refuse("line break inside a string")),
            _ => j += 1,
        }
    }
    Err(refuse("unterminated string"))
}

/// The index names of one source token: a bare word or a string without escapes.
fn source_text<'a>(text: &'a str, t: &Tok) -> Result<&'a str, Rejection> {
    let raw = &text[t.start..t.end];
    if raw.contains('?') {
        return Err(refuse("parameters cannot name indices"));
    }
    match t.kind {
        Kind::Word => Ok(raw),
        Kind::Str => {
            let inner = if raw.starts_with("\"\"\"") {
                raw.strip_prefix("\"\"\"")
                    .and_then(|r| r.strip_suffix("\"\"\""))
            } else {
                raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'))
            };
            match inner {
                Some(s) if !s.contains('"') && !s.contains('\\') && !s.is_empty() => Ok(s),
                _ => Err(refuse("a quoted index name must be plain")),
            }
        }
        _ => Err(refuse("FROM must be followed by index names")),
    }
}

fn word<'a>(text: &'a str, t: Option<&Tok>) -> Option<&'a str> {
    t.filter(|t| t.kind == Kind::Word)
        .map(|t| &text[t.start..t.end])
}

/// Parses a query and checks its structure (see the module invariant).
pub fn parse(text: &str) -> Result<Query, Rejection> {
    let toks = lex(text)?;
    let Some(first) = word(text, toks.first()) else {
        return Err(refuse("the query must start with FROM"));
    };
    if !first.eq_ignore_ascii_case("from") {
        let lower = first.to_ascii_lowercase();
        return Err(match NAMED_REFUSALS.iter().find(|n| **n == lower) {
            Some(n) => refuse(&format!(
                "only FROM can start a query, not [{}]",
                n.to_uppercase()
            )),
            None => refuse("the query must start with FROM"),
        });
    }
    // The source list: name (, name)*.
    let mut i = 1;
    let mut sources = Vec::new();
    loop {
        let Some(t) = toks.get(i) else {
            return Err(refuse("FROM must be followed by index names"));
        };
        sources.push(source_text(text, t)?.to_string());
        i += 1;
        if toks.get(i).map(|t| t.kind) == Some(Kind::Comma) {
            i += 1;
            continue;
        }
        break;
    }
    let src_start = toks[1].start;
    let src_end = toks[i - 1].end;
    // Optional METADATA field (, field)*.
    let mut scores = false;
    if word(text, toks.get(i)).is_some_and(|w| w.eq_ignore_ascii_case("metadata")) {
        i += 1;
        loop {
            match word(text, toks.get(i)) {
                Some(f) if METADATA_FIELDS.contains(&f) => {
                    scores |= f == "_score";
                    i += 1;
                }
                _ => return Err(refuse("METADATA takes only known metadata fields")),
            }
            if toks.get(i).map(|t| t.kind) == Some(Kind::Comma) {
                i += 1;
                continue;
            }
            break;
        }
    }
    match toks.get(i).map(|t| t.kind) {
        None | Some(Kind::Pipe) => {}
        Some(_) => {
            return Err(refuse(
                "the source command takes only index names and METADATA",
            ))
        }
    }
    // The processing commands.
    let mut depth = 0usize;
    let mut expect_command = false;
    // The `WHERE` commands: (end of the keyword, end of the condition's last token).
    let mut wheres: Vec<(usize, usize)> = Vec::new();
    let mut open_where: Option<usize> = None;
    let mut last_end = 0;
    for t in &toks[i..] {
        if t.kind == Kind::Pipe && depth == 0 {
            close_where(&mut open_where, last_end, &mut wheres)?;
        }
        last_end = t.end;
        if expect_command {
            let Some(cmd) = word(text, Some(t)) else {
                return Err(refuse("a command must follow |"));
            };
            let lower = cmd.to_ascii_lowercase();
            if lower == "where" {
                open_where = Some(t.end);
            }
            if !ALLOWED_COMMANDS.contains(&lower.as_str()) {
                return Err(match NAMED_REFUSALS.iter().find(|n| **n == lower) {
                    Some(n) => refuse(&format!(
                        "command [{}] reads data outside the query's indices or is not allowed",
                        n.to_uppercase()
                    )),
                    None => refuse("a command is not on the allow-list"),
                });
            }
            expect_command = false;
            continue;
        }
        match t.kind {
            Kind::Pipe if depth > 0 => return Err(refuse("| inside brackets")),
            Kind::Pipe => expect_command = true,
            Kind::Open => {
                depth += 1;
                if depth > lexing::MAX_DEPTH {
                    return Err(refuse("brackets are nested too deeply"));
                }
            }
            Kind::Close => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| refuse("unbalanced brackets"))?;
            }
            Kind::Word if text[t.start..t.end].eq_ignore_ascii_case("from") => {
                return Err(refuse("only one FROM is allowed"))
            }
            _ => {}
        }
    }
    if expect_command {
        return Err(refuse("a command must follow |"));
    }
    if depth != 0 {
        return Err(refuse("unbalanced brackets"));
    }
    close_where(&mut open_where, last_end, &mut wheres)?;
    let score_calls = check_expansions(text, &toks[i..])?;
    let commands_start = toks.get(i).map_or(text.len(), |t| t.start);
    // Every condition wrapped (see `WHERE_OPEN`); all insertions lie after `commands_at`.
    let mut after = String::with_capacity(text.len() - src_end + wheres.len() * 16);
    let mut at = src_end;
    for (keyword_end, condition_end) in wheres {
        after.push_str(&text[at..keyword_end]);
        after.push_str(WHERE_OPEN);
        after.push_str(&text[keyword_end..condition_end]);
        after.push_str(WHERE_CLOSE);
        at = condition_end;
    }
    after.push_str(&text[at..]);
    Ok(Query {
        sources,
        before: text[..src_start].to_string(),
        after,
        commands_at: commands_start - src_end,
        scores,
        score_calls,
    })
}

/// Ends the `WHERE` command being read (if any) at `end`, the end of its last token.
fn close_where(
    open: &mut Option<usize>,
    end: usize,
    wheres: &mut Vec<(usize, usize)>,
) -> Result<(), Rejection> {
    if let Some(keyword_end) = open.take() {
        if end <= keyword_end {
            return Err(refuse("WHERE needs a condition"));
        }
        wheres.push((keyword_end, end));
    }
    Ok(())
}

/// Full-text functions, `KNN` and pattern matches on metadata fields (see `expansion`): their
/// match set must not depend on what other tenants' documents hold.
///
/// esgate's lexer keeps operators inside words (`true==QSTR` is one word; Elasticsearch reads
/// `true`, `==`, `QSTR`), so names are read from a word's segments (`segments`): the called
/// name is the segment that ends the word, and every segment counts as a name anywhere.
/// Pattern matches on metadata fields are refused per clause (a run of tokens between `|`, and
/// `,`, `AND` and `OR` outside brackets, so that a function around the name keeps it in the
/// clause): one that holds both a pattern (`LIKE`, `RLIKE`, `STARTS_WITH(`,
/// `ENDS_WITH(`), a range (a comparison by `<` or `>`, attack18e) or a case-insensitive
/// equality (`=~`, `TO_LOWER(`, `TO_UPPER(`: attack18f) and a name that may be a
/// metadata field, whatever stands between them (casts, brackets).
///
/// Returns whether the text calls `SCORE(`: a relevance score, like `METADATA _score`.
fn check_expansions(text: &str, toks: &[Tok]) -> Result<bool, Rejection> {
    let mut scores = false;
    let mut clause_pattern = false;
    let mut clause_metadata = false;
    let mut aliases = Aliases::default();
    // Brackets open around a clause's operands: inside them no `,`, `AND` or `OR` ends the
    // clause (attack18f: `CASE(true, _id, "x") LIKE "b*"` folds to a pattern on `_id`).
    let mut brackets = 0usize;
    // Whether the command is WHERE, whose condition holds no top-level `,` (a syntax error):
    // one ends no clause there, as inside the brackets the rendering puts around it (a
    // property test found `WHERE @timestamp > 1,_id` accepted and its rendering refused).
    let (mut command_next, mut in_where) = (true, false);
    for (n, t) in toks.iter().enumerate() {
        let next = toks.get(n + 1);
        let call = next.is_some_and(|x| x.kind == Kind::Open && &text[x.start..x.end] == "(");
        let raw = &text[t.start..t.end];
        aliases.token(t.kind, raw);
        if t.kind == Kind::Pipe {
            command_next = true;
        } else if std::mem::take(&mut command_next) {
            in_where = t.kind == Kind::Word && raw.eq_ignore_ascii_case("where");
        }
        // The name a `(` right after this token calls, if any.
        let mut callee: Option<&str> = None;
        match t.kind {
            Kind::Word => {
                for seg in segments(raw) {
                    // An identifier parameter (`??name`) could name a function or a metadata
                    // field that the checks below never see.
                    if seg.contains("??") {
                        return Err(refuse("identifier parameters are not allowed"));
                    }
                    if brackets == 0
                        && (seg.eq_ignore_ascii_case("and") || seg.eq_ignore_ascii_case("or"))
                    {
                        end_clause(&mut clause_pattern, &mut clause_metadata)?;
                    }
                    if seg.eq_ignore_ascii_case("like") || seg.eq_ignore_ascii_case("rlike") {
                        clause_pattern = true;
                    }
                    clause_metadata |= aliases.may_be_metadata(seg);
                }
                // A comparison `<`, `>`, `<=`, `>=` is a range (attack18e); `=~` a
                // case-insensitive `term`, an expansion over the field's terms (attack18f).
                clause_pattern |= raw.contains(['<', '>']) || raw.contains("=~");
                if call && raw.ends_with(|c: char| is_name_char(c)) {
                    // After a `.` too: Elasticsearch's function names hold none, so whatever
                    // it would call is the last part (over-reading refuses more, never less).
                    callee = segments(raw)
                        .last()
                        .and_then(|s| s.rsplit('.').next())
                        .filter(|s| !s.is_empty());
                }
            }
            Kind::Quoted => {
                let name = raw.trim_matches('`');
                // Its parts too: an EVAL or STATS ... BY without a name names its column by the
                // expression's text (`` `CASE(true, _id, "x")` ``, attack19c).
                clause_metadata |= aliases.may_be_metadata(name)
                    || segments(name).any(|s| aliases.may_be_metadata(s));
                if call {
                    // Elasticsearch finds a function by its name lower-cased in Java
                    // (`toLowerCase(Locale.ROOT)`), which maps the Kelvin sign `K` (U+212A)
                    // to `k`: `` `\u{212A}QL`(...) `` is `KQL(...)`, `` `\u{212A}NN`(...) ``
                    // `KNN(...)` (attack26e). No function's name holds anything but ASCII.
                    if !name.is_ascii() {
                        return Err(refuse(
                            "a quoted function name must be ASCII: Elasticsearch lower-cases it",
                        ));
                    }
                    callee = Some(name);
                }
            }
            Kind::Comma if brackets == 0 && !in_where => {
                end_clause(&mut clause_pattern, &mut clause_metadata)?
            }
            Kind::Pipe => {
                brackets = 0;
                end_clause(&mut clause_pattern, &mut clause_metadata)?
            }
            Kind::Open => brackets += 1,
            Kind::Close => brackets = brackets.saturating_sub(1),
            _ => {}
        }
        let Some(callee) = callee else { continue };
        if callee.starts_with('?') {
            return Err(refuse("a function name cannot be a parameter"));
        }
        let name = callee.to_ascii_lowercase();
        if name == "knn" {
            return Err(refuse(
                "KNN picks its candidates before the token's filters apply",
            ));
        }
        if FULL_TEXT_FUNCTIONS.contains(&name.as_str()) {
            check_full_text_call(text, &name, &toks[n + 2..])?;
        }
        // `TO_LOWER(f) == "x"` and `TO_UPPER` are rewritten to `f =~ "x"` (attack18f).
        if matches!(
            name.as_str(),
            "starts_with" | "ends_with" | "to_lower" | "to_upper"
        ) {
            clause_pattern = true;
        }
        scores |= name == "score";
    }
    end_clause(&mut clause_pattern, &mut clause_metadata)?;
    Ok(scores)
}

/// Keywords of the commands [`Aliases`] reads, which name no column (a backquoted one is a
/// name: `` `as` ``).
const ALIAS_KEYWORDS: &[&str] = &[
    "as", "by", "where", "and", "or", "not", "is", "null", "in", "like", "rlike", "true", "false",
];

/// The names a query gives metadata fields (review 16d): in `EVAL`, `RENAME` and `STATS`, every
/// name of an assignment (a part between top-level commas) that mentions a metadata field or
/// such a name may be one after it (`EVAL x = _id`, `RENAME _id AS x`, `STATS ... BY x =
/// _id`), and after a `DISSECT` or `GROK` of one, whose new names sit inside its pattern
/// string, every name may be. Elasticsearch puts the field back in place of the name when it
/// pushes a `WHERE` down to Lucene. Over-reading (a function name, `AS`, the other operand of a
/// `CONCAT`) refuses more, never less; the other commands name no new column.
#[derive(Default)]
struct Aliases {
    /// The keyword (lowercase) of the command being read.
    command: Option<String>,
    /// Whether the part being read mentions a metadata field or an alias of one, and its names.
    mentions: bool,
    names: Vec<String>,
    /// Brackets open in the command.
    depth: usize,
    /// A pipe was just read: the next word is a command's keyword.
    at_keyword: bool,
    /// Names of metadata fields.
    known: std::collections::HashSet<String>,
    /// Every name may be one.
    every: bool,
}

impl Aliases {
    /// Reads the next token of the processing commands.
    fn token(&mut self, kind: Kind, raw: &str) {
        match kind {
            Kind::Pipe => {
                self.end_part();
                self.command = None;
                self.depth = 0;
                self.at_keyword = true;
            }
            Kind::Word if self.at_keyword => {
                self.at_keyword = false;
                self.command = Some(raw.to_ascii_lowercase());
            }
            Kind::Word => {
                for seg in segments(raw) {
                    if !ALIAS_KEYWORDS.iter().any(|k| seg.eq_ignore_ascii_case(k)) {
                        self.name(seg.to_owned());
                    }
                }
            }
            Kind::Quoted => self.name(raw[1..raw.len() - 1].replace("``", "`")),
            Kind::Open => self.depth += 1,
            Kind::Close => self.depth = self.depth.saturating_sub(1),
            Kind::Comma if self.depth == 0 => self.end_part(),
            _ => {}
        }
    }

    fn name(&mut self, name: String) {
        self.mentions |= self.may_be_metadata(&name);
        self.names.push(name);
    }

    fn end_part(&mut self) {
        let names = std::mem::take(&mut self.names);
        if !std::mem::take(&mut self.mentions) {
            return;
        }
        match self.command.as_deref() {
            Some("eval" | "rename" | "stats") => self.known.extend(names),
            Some("dissect" | "grok") => self.every = true,
            _ => {}
        }
    }

    /// Whether `name` may be a metadata field, under its own name or another.
    fn may_be_metadata(&self, name: &str) -> bool {
        self.every || is_metadata_name(name) || self.known.contains(name)
    }
}

/// Whether a character can be part of a name or parameter in a word (`a.b`, `@timestamp`,
/// `?p`, `_id`); everything else in a word is an operator.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '.' | '?')
}

/// The names and parameters in a word, between its operators (`true==QSTR` -> `true`, `QSTR`).
fn segments(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(|c: char| !is_name_char(c))
        .filter(|s| !s.is_empty())
}

/// Whether a name may be a metadata field (`_id`, `_ignored`; not `_index`).
fn is_metadata_name(name: &str) -> bool {
    name.starts_with('_') && expansion::may_be_metadata(name)
}

/// Ends a clause: a pattern match and a metadata name in one clause are refused.
fn end_clause(pattern: &mut bool, metadata: &mut bool) -> Result<(), Rejection> {
    let both = *pattern && *metadata;
    *pattern = false;
    *metadata = false;
    if both {
        return Err(metadata_pattern());
    }
    Ok(())
}

fn metadata_pattern() -> Rejection {
    refuse("pattern matches on metadata fields are not allowed")
}

/// The arguments of a full-text call starting just after its `(`: every option map checked,
/// and the query text of `QSTR`/`KQL` (which must be a string literal, not a parameter) read
/// for fuzzy terms and metadata expansions.
fn check_full_text_call(text: &str, name: &str, rest: &[Tok]) -> Result<(), Rejection> {
    // The argument tokens up to the matching `)`, split at top-level commas.
    let mut args: Vec<Vec<Tok>> = vec![Vec::new()];
    let mut depth = 0usize;
    for t in rest {
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close if depth == 0 => break,
            Kind::Close => depth -= 1,
            Kind::Comma if depth == 0 => {
                args.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(*t);
        }
    }
    let mut options = Map::new();
    for arg in &args {
        if arg.first().is_some_and(|t| &text[t.start..t.end] == "{") {
            options.extend(option_map(text, arg)?);
        }
    }
    expansion::options(&options)?;
    if name == "qstr" || name == "kql" {
        let query = match args.first().map(Vec::as_slice) {
            Some([t]) if t.kind == Kind::Str => unquote(&text[t.start..t.end])?,
            _ => {
                return Err(refuse(
                    "QSTR and KQL take their query as one string literal",
                ))
            }
        };
        let syntax = if name == "qstr" {
            Syntax::Classic
        } else {
            Syntax::Kql
        };
        // The fields the text searches; one that cannot be read counts as a metadata field.
        let mut targets: Vec<&str> = Vec::new();
        for key in ["default_field", "fields"] {
            match options.get(key) {
                None => {}
                Some(Value::String(f)) => targets.push(f),
                Some(Value::Array(items)) => {
                    targets.extend(items.iter().map(|f| f.as_str().unwrap_or("_")));
                }
                Some(_) => targets.push("_"),
            }
        }
        expansion::check_text(&query, syntax, &targets)?;
    }
    Ok(())
}

/// An option map `{"key": value, ...}` (its tokens, braces included). A value that is not a
/// literal (a parameter, a list) becomes `null`, which the checks treat as not allowed.
fn option_map(text: &str, toks: &[Tok]) -> Result<Map<String, Value>, Rejection> {
    let bad = || refuse("an option map must list \"key\": value pairs");
    let inner = match toks {
        [_, inner @ .., last] if &text[last.start..last.end] == "}" => inner,
        _ => return Err(bad()),
    };
    let mut out = Map::new();
    let mut i = 0;
    while i < inner.len() {
        let key = match inner[i] {
            t if t.kind == Kind::Str => unquote(&text[t.start..t.end])?,
            _ => return Err(bad()),
        };
        i += 1;
        let colon = word(text, inner.get(i)).ok_or_else(bad)?;
        let rest = colon.strip_prefix(':').ok_or_else(bad)?;
        i += 1;
        let value = if !rest.is_empty() {
            literal(rest)
        } else {
            let t = inner.get(i).ok_or_else(bad)?;
            i += 1;
            match t.kind {
                Kind::Str => Value::String(unquote(&text[t.start..t.end])?),
                Kind::Word => literal(&text[t.start..t.end]),
                Kind::Open => {
                    // A list of strings is kept (field lists); anything else nested is skipped
                    // to its end and is not a checkable literal.
                    let start = i;
                    let mut depth = 1usize;
                    while depth > 0 {
                        match inner.get(i).map(|t| t.kind) {
                            Some(Kind::Open) => depth += 1,
                            Some(Kind::Close) => depth -= 1,
                            Some(_) => {}
                            None => return Err(bad()),
                        }
                        i += 1;
                    }
                    let items = &inner[start..i - 1];
                    let strings = items
                        .iter()
                        .enumerate()
                        .all(|(n, x)| x.kind == if n % 2 == 0 { Kind::Str } else { Kind::Comma });
                    if &text[t.start..t.end] == "[" && strings {
                        Value::Array(
                            items
                                .iter()
                                .filter(|x| x.kind == Kind::Str)
                                .map(|x| unquote(&text[x.start..x.end]).map(Value::String))
                                .collect::<Result<_, _>>()?,
                        )
                    } else {
                        Value::Null
                    }
                }
                _ => return Err(bad()),
            }
        };
        out.insert(key, value);
        match inner.get(i).map(|t| t.kind) {
            None => {}
            Some(Kind::Comma) => i += 1,
            Some(_) => return Err(bad()),
        }
    }
    Ok(out)
}

/// An unquoted literal: a number or a boolean; anything else (a parameter) is `null`.
fn literal(raw: &str) -> Value {
    if let Ok(n) = raw.parse::<i64>() {
        return Value::from(n);
    }
    if let Ok(f) = raw.parse::<f64>() {
        return Value::from(f);
    }
    match raw.to_ascii_lowercase().as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::Null,
    }
}

/// The content of a string token, read as Elasticsearch's lexer reads it (`EsqlBaseLexer.g4`:
/// `QUOTED_STRING: '"' (ESCAPE_SEQUENCE | UNESCAPED_CHARS)* '"' | '"""' (~[\r\n])*? '"""'
/// '"'? '"'?`, `ESCAPE_SEQUENCE: '\\' [tnr"\\]`): a double-quoted string with its escapes
/// undone, where any other escape (`\u0041`, `\x`), a lone backslash or a line break is a 400
/// (Elasticsearch refuses them; session 18: `\u` was read as `u`, masked by `string_end`);
/// a triple-quoted one as it is (no escapes).
fn unquote(raw: &str) -> Result<String, Rejection> {
    // Triple-quoted: everything between the first and the last three quotes (up to two more
    // quotes before the end belong to the content).
    if raw.len() >= 6 && raw.starts_with("\"\"\"") && raw.ends_with("\"\"\"") {
        let inner = &raw[3..raw.len() - 3];
        if inner.contains(['\r', '\n']) {
            return Err(refuse("line break inside a string"));
        }
        return Ok(inner.to_string());
    }
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| refuse("unterminated string"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(e @ ('"' | '\\')) => out.push(e),
                _ => return Err(refuse("unknown escape sequence in a string")),
            },
            '\r' | '\n' => return Err(refuse("line break inside a string")),
            // An unescaped quote inside: not one string token.
            '"' => return Err(refuse("unterminated string")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// `unquote` alone (no `string_end` before it) reads a string token as Elasticsearch's
    /// lexer does (`EsqlBaseLexer.g4` `QUOTED_STRING`, `ESCAPE_SEQUENCE: '\\' [tnr"\\]`): the
    /// five escapes in double quotes, none in triple quotes, anything else refused (session
    /// 18: `"\u0041"` was read as `u0041`).
    #[test]
    fn string_tokens_read_as_the_lexer_reads_them() {
        for (raw, want) in [
            (r#""a""#, "a"),
            (r#""""#, ""),
            (r#""\t\n\r\"\\""#, "\t\n\r\"\\"),
            (r#""_seq\\no""#, "_seq\\no"),
            (r#""""\u005f""""#, "\\u005f"),
            (r#""""a\x"b""""#, "a\\x\"b"),
            (r#""""a""""""#, "a\"\""),
        ] {
            assert_eq!(
                unquote(raw).map_err(|e| e.kind),
                Ok(want.to_string()),
                "{raw}"
            );
        }
        for raw in [
            r#""\u0041""#,
            r#""\u005fseq_no""#,
            r#""\x""#,
            r#""\'""#,
            r#""a\""#,
            "\"a\nb\"",
            "\"\"\"a\nb\"\"\"",
            r#""a"b""#,
            r#"""#,
            "",
        ] {
            assert!(unquote(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn accepted_queries_expose_their_sources() {
        let cases: &[(&str, &[&str])] = &[
            ("FROM logs-a", &["logs-a"]),
            ("from logs-a | limit 10", &["logs-a"]),
            (
                "FROM logs-*, logs-b | STATS c = COUNT(*)",
                &["logs-*", "logs-b"],
            ),
            ("FROM \"logs-*\" | LIMIT 1", &["logs-*"]),
            ("FROM \"\"\"logs-a\"\"\" | LIMIT 1", &["logs-a"]),
            ("FROM logs-a METADATA _index, _id | KEEP _id", &["logs-a"]),
            (
                "/* hi */ FROM // c\n logs-a | WHERE a == \"| ENRICH x\"",
                &["logs-a"],
            ),
            ("/*/ FROM secret */ FROM logs-a", &["logs-a"]),
            (
                "FROM logs-a | WHERE msg == \"from secret\" | EVAL x = `from`",
                &["logs-a"],
            ),
            (
                "FROM logs-a | EVAL x = a / b // FROM secret\n| SORT x DESC",
                &["logs-a"],
            ),
            (
                "FROM logs-a | WHERE x IN (1, 2) AND y == \"a\\\"|b\"",
                &["logs-a"],
            ),
            ("FrOm logs-a | LiMiT 5", &["logs-a"]),
            (
                "FROM logs-a | WHERE MATCH(msg, \"x\", {\"fuzziness\": 0, \"operator\": \"AND\"})",
                &["logs-a"],
            ),
            (
                "FROM logs-a | WHERE QSTR(\"user:bo* AND \\\"a b\\\"~2\") AND KQL(\"user: x\")",
                &["logs-a"],
            ),
            (
                "FROM logs-a METADATA _id | WHERE _id == \"a1\" AND user LIKE \"b*\"",
                &["logs-a"],
            ),
            (
                "FROM logs-a | WHERE QSTR(\"b*\", {\"fields\": [\"user\", \"m\"]})",
                &["logs-a"],
            ),
            (
                "FROM logs-a METADATA _id | WHERE true==MATCH(user, \"bob\") AND _id==\"a\" OR m LIKE \"b*\"",
                &["logs-a"],
            ),
            (
                "FROM logs-a METADATA _id | WHERE STARTS_WITH(user, \"b\") | KEEP _id",
                &["logs-a"],
            ),
        ];
        for (q, want) in cases {
            let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(parsed.sources, names(want), "{q}");
        }
    }

    #[test]
    fn structures_that_could_read_another_source_are_refused() {
        let cases = [
            "",
            "   // only a comment",
            "ROW a = 1",
            "SHOW INFO",
            "TS metrics-* | LIMIT 1",
            "EXPLAIN (FROM logs-a)",
            "SET x = 1; FROM logs-a",
            "FROM logs-a | ENRICH policy ON user",
            "FROM logs-a | enrich policy",
            "FROM logs-a | LOOKUP JOIN secret ON id",
            "FROM logs-a | FORK (WHERE a > 1) (WHERE b > 1)",
            "FROM logs-a | INLINESTATS c = COUNT(*)",
            "FROM logs-a | COMPLETION x",
            // Attack26b (pinned): the commands of later versions are off the allow-list too.
            "FROM logs-a | INLINE STATS c = COUNT(*)",
            "FROM logs-a | FUSE",
            "FROM logs-a | RRF",
            "FROM logs-a | SAMPLE 0.5",
            "FROM logs-a | CHANGE_POINT v ON t",
            "FROM logs-a | RERANK \"q\" ON message",
            "FROM logs-a | LOOKUP secret ON id",
            "FROM logs-a | EVAL x = 1 | lookup join secret ON id",
            "META FUNCTIONS",
            "EQL \"any where true\"",
            "FROM logs-a | FROM secret",
            "FROM logs-a, (FROM secret | LIMIT 1)",
            "FROM logs-a | WHERE x IN (FROM secret)",
            "FROM logs-a | EVAL from = 1",
            "FROM logs-a OPTIONS \"allow_no_indices\"=\"true\"",
            "FROM logs-a secret",
            "FROM logs-a METADATA _index secret",
            "FROM logs-a METADATA _foo",
            "FROM logs-a |",
            "FROM logs-a | | LIMIT 1",
            "FROM logs-a | WHERE (a | ENRICH p)",
            "FROM logs-a | WHERE (a",
            "FROM logs-a | WHERE a)",
            "FROM logs-a | WHERE a == \"unterminated",
            "FROM logs-a | WHERE a == \"bad \\x escape\"",
            "FROM logs-a | WHERE a == \"line\nbreak\"",
            "FROM logs-a /* unterminated",
            "FROM logs-a /* /* nested */ | ENRICH p",
            "FROM logs-a | EVAL `unterminated",
            "FROM logs-a// glued\n, secret",
            "FROM logs-a | LIMIT 1 | \u{FF25}NRICH p",
            "FROM logs-a |\u{00A0}ENRICH p",
            "FROM \u{0}logs-a",
            "FROM",
            "FROM , logs-a",
            "FROM \"a\\\"b\"",
            "FROM `logs-a`",
            "FROM ?idx",
        ];
        for q in cases {
            let r = parse(q);
            assert!(r.is_err(), "{q:?} was accepted as {r:?}");
            assert_eq!(r.unwrap_err().kind, crate::RejectKind::Forbidden, "{q:?}");
        }
    }

    #[test]
    fn full_text_expansions_knn_and_metadata_patterns_are_refused() {
        // Issue 17.1: the same options and syntax as in the query DSL.
        let cases = [
            "FROM logs-a | WHERE MATCH(user, \"bob\", {\"fuzziness\": 1})",
            "FROM logs-a | WHERE MATCH(user, \"bob\", {\"fuzziness\":\"AUTO\"})",
            "FROM logs-a | WHERE MATCH(user, \"bob\", {\"fuzziness\": ?f})",
            "FROM logs-a | WHERE MATCH(user, \"bob\", {\"max_expansions\": 1})",
            "FROM logs-a | WHERE match(user, \"bob\", {\"fuzzy_rewrite\": \"top_terms_1\"})",
            "FROM logs-a | WHERE MULTI_MATCH(\"he\", m, {\"type\": \"phrase_prefix\"})",
            "FROM logs-a | WHERE QSTR(\"user:bob~\")",
            "FROM logs-a | WHERE QSTR(\"\"\"user:bob~1\"\"\")",
            "FROM logs-a | WHERE QSTR(\"bob\", {\"fuzzy_max_expansions\": 1})",
            "FROM logs-a | WHERE QSTR(\"b*\", {\"rewrite\": \"top_terms_1\"})",
            "FROM logs-a | WHERE QSTR(\"_id:b*\")",
            "FROM logs-a | WHERE QSTR(\"b*\", {\"default_field\": \"_id\"})",
            "FROM logs-a | WHERE QSTR(\"b*\", {\"fields\": [\"user\", \"_id\"]})",
            "FROM logs-a | WHERE QSTR(\"b*\", {\"default_field\": ?f})",
            "FROM logs-a | WHERE QSTR(?q)",
            "FROM logs-a | WHERE KQL(\"_id: b*\")",
            "FROM logs-a | WHERE KNN(v, [1, 2])",
            "FROM logs-a METADATA _id | WHERE _id LIKE \"b*\"",
            "FROM logs-a METADATA _id | WHERE `_id` NOT RLIKE \"b.*\"",
            "FROM logs-a METADATA _id | WHERE STARTS_WITH(_id, \"b\")",
            "FROM logs-a | WHERE MATCH(user, \"bob\", {\"fuzziness\" 1})",
            "FROM logs-a | WHERE `qstr`(\"user:bob~\")",
            "FROM logs-a | WHERE ?f(\"user:bob~\")",
            "FROM logs-a METADATA _id | WHERE ??f LIKE \"b*\"",
            "FROM logs-a | KEEP ??f",
            // esgate16: an operator glued to a name (one word for esgate's lexer, several
            // tokens for Elasticsearch's) hid the name from the checks.
            "FROM logs-a | WHERE true==QSTR(\"user:bob~\")",
            "FROM logs-a | WHERE false!=KQL(\"_id: b*\") AND _id:\"x\"",
            "FROM logs-a | WHERE true==KNN(v, [1, 2])",
            "FROM logs-a | WHERE false!=MATCH(user, \"bob\", {\"fuzziness\": 1})",
            "FROM logs-a | WHERE true==?f(\"user:bob~\")",
            "FROM logs-a | WHERE x==??f",
            "FROM logs-a METADATA _id | WHERE true==STARTS_WITH(_id, \"b\")",
            "FROM logs-a METADATA _id | WHERE true==ENDS_WITH(`_id`, \"b\")",
            "FROM logs-a METADATA _id | WHERE `_id`::keyword LIKE \"b*\"",
            "FROM logs-a METADATA _id | WHERE (_id) LIKE \"b*\"",
            "FROM logs-a METADATA _id | WHERE _id LIKE (\"a*\", \"b*\")",
            "FROM logs-a METADATA _id | WHERE NOT(_id RLIKE \"b.*\")",
            "FROM logs-a METADATA _id | WHERE x==1 AND TO_STRING(_id)LIKE\"b*\"",
            "FROM logs-a | WHERE true==a.QSTR(\"user:bob~\")",
            // attack26e: the Kelvin sign lower-cases to `k` in Java.
            "FROM logs-a | WHERE `\u{212A}QL`(\"_id: b*\")",
            "FROM logs-a | WHERE `\u{212A}NN`(v, [1, 2])",
            "FROM logs-a | WHERE `q\u{212A}l`(\"user:bob~\")",
        ];
        for q in cases {
            let r = parse(q);
            assert!(r.is_err(), "{q:?} was accepted as {r:?}");
        }
    }

    /// Attack18e: a comparison `<`, `>`, `<=`, `>=` on a metadata field is a range over its
    /// terms, refused as the query DSL's `range` and query text's `_id:[a TO b]` are.
    #[test]
    fn ranges_on_metadata_fields_are_refused() {
        for q in [
            "FROM logs-a METADATA _id | WHERE _id > \"b\"",
            "FROM logs-a METADATA _id | WHERE _id>=\"b\" AND _id<\"c\"",
            "FROM logs-a METADATA _id | WHERE \"b\" <= `_id`",
            "FROM logs-a METADATA _version | WHERE _version > 1",
            "FROM logs-a METADATA _id | EVAL x = _id | WHERE x < \"c\"",
            // attack18f: a conditional Elasticsearch's optimizer folds to the field itself
            // (`CASE(true, v, ...)` is `v`), the name apart from the pattern by a `,`, `AND`
            // or `OR` inside its brackets.
            "FROM logs-a METADATA _id | WHERE CASE(true, _id, \"x\") LIKE \"b*\"",
            "FROM logs-a METADATA _id | WHERE CASE(true, _id, \"x\") > \"b\"",
            "FROM logs-a METADATA _id | WHERE CASE(true, _id, a OR b) RLIKE \"b.*\"",
            "FROM logs-a METADATA _id | WHERE STARTS_WITH(CASE(true AND true, _id, \"x\"), \"b\")",
            // attack19c: an EVAL without a name names its column by the expression's text,
            // which a backquoted name then reads.
            "FROM logs-a METADATA _id | EVAL CASE(true, _id, \"x\") | WHERE `CASE(true, _id, \"x\")` LIKE \"b*\"",
            "FROM logs-a METADATA _id | EVAL x = _id | EVAL CASE(true, x, \"y\") | WHERE `CASE(true, x, \"y\")` > \"b\"",
            // A top-level `,` ends no clause in WHERE (a syntax error there; its rendering in
            // brackets was refused, the text accepted).
            "FROM logs-a METADATA _id | WHERE @timestamp > 1,_id",
        ] {
            let r = parse(q);
            assert_eq!(
                r.map(|_| ()).map_err(|e| e.kind),
                Err(crate::RejectKind::Forbidden),
                "{q}"
            );
        }
        for q in [
            "FROM logs-a METADATA _id | WHERE n > 1 AND _id == \"b\"",
            "FROM logs-a METADATA _index | WHERE _index > \"logs\"",
            "FROM logs-a METADATA _id | WHERE _id != \"b\"",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
    }

    /// attack18f: ES|QL's case-insensitive equality (`=~`, and `TO_LOWER(f) == "x"`, which
    /// Elasticsearch rewrites to it) reaches Lucene as a case-insensitive `term` query, an
    /// expansion over the field's terms that the query DSL refuses on a metadata field
    /// (`case_insensitive`): refused beside a metadata name like a pattern.
    #[test]
    fn case_insensitive_equality_on_metadata_fields_is_refused() {
        for q in [
            "FROM logs-a METADATA _id | WHERE _id =~ \"b1\"",
            "FROM logs-a METADATA _id | WHERE _id=~\"b1\"",
            "FROM logs-a METADATA _id | WHERE `_id` =~ \"B1\" OR n > 1",
            "FROM logs-a METADATA _id | EVAL x = _id | WHERE x =~ \"b1\"",
            "FROM logs-a METADATA _id | WHERE TO_LOWER(_id) == \"b1\"",
            "FROM logs-a METADATA _id | WHERE to_upper(_id) == \"B1\"",
        ] {
            assert_eq!(
                parse(q).map(|_| ()).map_err(|e| e.kind),
                Err(crate::RejectKind::Forbidden),
                "{q}"
            );
        }
        for q in [
            "FROM logs-a METADATA _id | WHERE user =~ \"Bob\" AND _id == \"b1\"",
            "FROM logs-a METADATA _id | WHERE TO_LOWER(user) == \"bob\" AND _id == \"b1\"",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q));
        }
    }

    /// Review 16d: a metadata field under another name (`EVAL x = _id`, `RENAME _id AS x`,
    /// a `DISSECT`/`GROK` of it) is still a metadata field to a later pattern match:
    /// Elasticsearch substitutes the alias when it pushes the `WHERE` down to Lucene
    /// (`PushDownAndCombineFilters`), and the clause check saw only `x`. A pattern match on
    /// other names, or before the alias, is still accepted.
    #[test]
    fn pattern_matches_on_renamed_metadata_fields_are_refused() {
        for q in [
            "FROM logs-a METADATA _id | EVAL x = _id | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | EVAL x=_id | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | EVAL x = TO_STRING(`_id`) | WHERE `x` RLIKE \"b.*\"",
            "FROM logs-a METADATA _id | RENAME _id AS x | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | RENAME x = _id | WHERE STARTS_WITH(x, \"b\")",
            "FROM logs-a METADATA _id | EVAL x = _id | EVAL y = x | WHERE ENDS_WITH(y, \"b\")",
            "FROM logs-a METADATA _id | EVAL x = _id | SORT x | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | STATS c = COUNT(*) BY x = _id | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | DISSECT _id \"%{x}\" | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | GROK _id \"%{WORD:x}\" | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _ignored | MV_EXPAND _ignored | EVAL x = _ignored | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | EVAL y = user, x = CONCAT(\"a\", _id) | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | STATS c = COUNT(*) BY user, x = _id | WHERE x LIKE \"b*\"",
        ] {
            let r = parse(q);
            assert!(r.is_err(), "{q:?} was accepted as {r:?}");
        }
        for q in [
            "FROM logs-a METADATA _id | EVAL x = _id | WHERE user LIKE \"b*\"",
            "FROM logs-a METADATA _id | WHERE x LIKE \"b*\" | EVAL x = _id",
            "FROM logs-a METADATA _id | EVAL x = user | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | DISSECT m \"%{x}\" | WHERE x LIKE \"b*\"",
            "FROM logs-a METADATA _id | KEEP _id, user | SORT _id | WHERE user LIKE \"b*\"",
            "FROM logs-a METADATA _id | EVAL x = _id, y = CONCAT(user, \"-\") | WHERE y LIKE \"b*\"",
            "FROM logs-a METADATA _id | RENAME _id AS x, user AS u | WHERE u LIKE \"b*\"",
        ] {
            assert!(parse(q).is_ok(), "{q:?}");
        }
    }

    /// esql16: whatever operator glues a name to what precedes it, the checks see the name.
    #[test]
    fn names_glued_to_any_operator_are_checked() {
        // `.` glues a qualified name (`x._id` is a field of `x`, no metadata field), which no
        // function name is.
        let ops = [
            "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "::", ":", "=", "=~", "!",
            ".",
        ];
        let refused = [
            "QSTR(\"user:bob~\")",
            "kql(\"_id: b*\")",
            "KNN(v, [1, 2])",
            "?f(\"x\")",
            "MATCH(user, \"b\", {\"fuzziness\": 1})",
        ];
        for op in ops {
            for call in refused {
                let q = format!("FROM logs-a | WHERE true{op}{call}");
                assert!(parse(&q).is_err(), "{q}");
            }
            if op != "." {
                let q = format!("FROM logs-a METADATA _id | WHERE x{op}_id LIKE \"b*\"");
                assert!(parse(&q).is_err(), "{q}");
            }
            let q = format!("FROM logs-a | WHERE x{op}??f");
            assert!(parse(&q).is_err(), "{q}");
        }
    }

    #[test]
    fn comments_that_two_readings_could_end_differently_are_refused() {
        // Nested or flat, `/* a /* b */ c */` ends in different places: refused either way,
        // including the shape where the flat reading would expose an ENRICH.
        for q in [
            "FROM logs-a /* a /* b */ c */ | LIMIT 1",
            "FROM logs-a | EVAL x = 1 /* /* */ | ENRICH p | EVAL s = \"*/ \"",
        ] {
            assert!(parse(q).is_err(), "{q}");
        }
        // A line comment ends at a lone `\r` too: what follows it is code.
        assert!(parse("FROM logs-a // c\r| ENRICH p").is_err());
        assert_eq!(
            parse("FROM logs-a // c\r| LIMIT 1").unwrap().sources,
            names(&["logs-a"])
        );
        assert_eq!(
            parse("FROM logs-a /* | ENRICH p // */ | LIMIT 1")
                .unwrap()
                .sources,
            names(&["logs-a"])
        );
    }

    #[test]
    fn rendering_replaces_only_the_source_list() {
        let q = parse("from \"logs-*\"/*x*/METADATA _id | where a == \"FROM b\"").unwrap();
        assert_eq!(
            q.render(&names(&["logs-a", "logs-b"])).unwrap(),
            "from  logs-a, logs-b /*x*/METADATA _id | where NOT NOT ( a == \"FROM b\")"
        );
        let q = parse("FROM\"logs-a\"|LIMIT 1").unwrap();
        let out = q.render(&names(&["logs-a"])).unwrap();
        assert_eq!(out, "FROM logs-a |LIMIT 1");
        // The rendered text parses back to exactly the rendered names.
        assert_eq!(parse(&out).unwrap().sources, names(&["logs-a"]));
    }

    /// The guard on esgate's own `WHERE` conditions: one condition, nothing skipped as a
    /// comment, no `|`, brackets balanced within the cap.
    #[test]
    fn conditions_are_checked_before_insertion() {
        for ok in [
            "`a` == \"| // /*\"",
            "(`a|b` == 1 OR (NOT COALESCE(`c` IN (1, 2), false)))",
            "`t` >= NOW() - 15 minutes",
        ] {
            assert!(check_condition(ok).is_ok(), "{ok}");
        }
        let deep = format!("{}1{}", "(".repeat(33), ")".repeat(33));
        for bad in [
            "",
            "  ",
            "a | ENRICH p",
            "a // rest",
            "a /* c */ == 1",
            "(a",
            "a)",
            "a\n== 1",
            "\"open",
            deep.as_str(),
        ] {
            assert!(check_condition(bad).is_err(), "{bad:?}");
        }
    }

    /// Each `WHERE` command of a rendered text, as Elasticsearch's parser reads it: whether
    /// its condition is one `NOT` (`NOT NOT (` ... the matching `)` as the command's last
    /// token). Elasticsearch's `TimestampIndexFilterExtractor` lifts only top-level conjuncts
    /// that are comparisons, so a condition of this shape lifts nothing.
    pub(crate) fn wheres_are_negations(text: &str) -> Vec<bool> {
        let toks = lex(text).unwrap();
        let raw = |t: &Tok| text[t.start..t.end].to_ascii_lowercase();
        let mut out = Vec::new();
        for command in toks.split(|t| t.kind == Kind::Pipe) {
            if command.first().is_none_or(|t| raw(t) != "where") {
                continue;
            }
            let wrapped = command.len() >= 5
                && raw(&command[1]) == "not"
                && raw(&command[2]) == "not"
                && raw(&command[3]) == "("
                && {
                    // The `(` closes exactly at the last token.
                    let mut depth = 0usize;
                    let mut closes_at = None;
                    for (n, t) in command[3..].iter().enumerate() {
                        match t.kind {
                            Kind::Open => depth += 1,
                            Kind::Close => {
                                depth -= 1;
                                if depth == 0 {
                                    closes_at = Some(n + 3);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    closes_at == Some(command.len() - 1)
                };
            out.push(wrapped);
        }
        out
    }

    /// esql16: a client's `WHERE @timestamp >= NOW() - 15 minutes` (any comparison of
    /// `@timestamp` with a literal, a parameter or `NOW() ± interval`, in the leading
    /// `WHERE`s) would be lifted into field_caps' index filter and decided from every
    /// tenant's values. Every `WHERE` condition, the client's and esgate's own, reaches
    /// Elasticsearch as one `NOT NOT (...)`, which the extractor does not look into.
    #[test]
    fn every_where_condition_is_one_negation() {
        let cases = [
            (
                "FROM logs-a | WHERE @timestamp >= NOW() - 15 minutes AND @timestamp <= NOW()",
                1,
            ),
            (
                "FROM logs-a | where `@timestamp` >= \"2024-01-01\" | LIMIT 1",
                1,
            ),
            (
                "FROM logs-a | WHERE @timestamp>=?_tstart AND @timestamp<=?_tend|LIMIT 1",
                1,
            ),
            (
                "FROM logs-a | DROP x | WHERE (@timestamp > 1) // c\n| WHERE a == 1 /* c */ | SORT a",
                2,
            ),
            (
                "FROM logs-a | WHERE a == \"| WHERE @timestamp > 1\" AND (b IN (1, 2))",
                1,
            ),
            (
                "FROM logs-a | EVAL x = 1 | WhErE NOW() - 1 hour < @timestamp | STATS c = COUNT(*)",
                1,
            ),
            (
                "FROM logs-a METADATA _id | WHERE KQL(\"a: b\") AND @timestamp > \"2024\"",
                1,
            ),
            (
                "FROM logs-a | WHERE @timestamp > \"\"\"2024\"\"\" // trailing",
                1,
            ),
            ("FROM logs-a | KEEP @timestamp | SORT @timestamp", 0),
        ];
        for (q, count) in cases {
            let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            for condition in [None, Some("`@timestamp` >= NOW() - 15 minutes")] {
                let out = parsed.render_where(&names(&["logs-a"]), condition).unwrap();
                let wheres = wheres_are_negations(&out);
                let want = count + usize::from(condition.is_some());
                assert_eq!(wheres.len(), want, "{out}");
                assert!(wheres.iter().all(|w| *w), "{out}");
                assert_eq!(parse(&out).unwrap().sources, names(&["logs-a"]), "{out}");
            }
        }
        // A WHERE without a condition cannot be wrapped: refused.
        for q in ["FROM logs-a | WHERE", "FROM logs-a | WHERE | LIMIT 1"] {
            assert!(parse(q).is_err(), "{q}");
        }
    }

    #[test]
    fn unusual_names_are_quoted_and_unrenderable_names_refused() {
        let q = parse("FROM logs-a").unwrap();
        assert_eq!(
            q.render(&names(&["logs(a)"])).unwrap(),
            "FROM  \"logs(a)\" "
        );
        assert_eq!(
            parse(&q.render(&names(&["logs(a)"])).unwrap())
                .unwrap()
                .sources,
            names(&["logs(a)"])
        );
        assert!(q.render(&names(&["a\"b"])).is_err());
        assert!(q
            .render(&names(&["a//b"]))
            .is_ok_and(|s| s.contains("\"a//b\"")));
        assert!(q.render(&[]).is_err());
    }

    mod props {
        use proptest::prelude::*;

        use super::super::parse;

        fn fragments() -> impl Strategy<Value = String> {
            let f = prop::sample::select(vec![
                "FROM",
                "from",
                " ",
                "logs-a",
                "secret",
                ",",
                "|",
                "ENRICH p",
                "LIMIT 1",
                "WHERE",
                "| WHERE @timestamp > 1",
                "\"",
                "\"\"\"",
                "`",
                "/*",
                "*/",
                "//",
                "\n",
                "\r",
                "(",
                ")",
                "[",
                "METADATA",
                "_id",
                "\\",
                "\u{e9}",
                "x:y",
                "*",
                "=",
                "from secret",
            ]);
            let tail = prop::collection::vec(f, 0..14).prop_map(|v| v.concat());
            // Half start like an accepted query, so the round trip is exercised often.
            (any::<bool>(), tail).prop_map(|(valid_start, t)| {
                if valid_start {
                    format!("FROM logs-a {t}")
                } else {
                    t
                }
            })
        }

        proptest! {
            #![proptest_config(crate::testing::cases(2000))]

            /// Any text, alone and after a valid start: no panic, the same answer twice.
            #[test]
            fn any_text_is_read_without_panic_and_alike(t in crate::testing::query_text()) {
                for q in [t.clone(), format!("FROM logs-a METADATA _id | WHERE {t}")] {
                    let first = parse(&q).map(|p| format!("{p:?}"));
                    prop_assert_eq!(&first, &parse(&q).map(|p| format!("{p:?}")), "{:?}", q);
                }
            }

            /// Nothing panics; an accepted query rendered with its own sources parses back to
            /// exactly those sources (rendering never adds or hides a source).
            #[test]
            fn accepted_queries_round_trip(q in fragments()) {
                if let Ok(parsed) = parse(&q) {
                    if let Ok(text) = parsed.render(&parsed.sources) {
                        prop_assert!(
                            super::wheres_are_negations(&text).iter().all(|w| *w),
                            "{q:?} -> {text:?}"
                        );
                        let again = parse(&text);
                        prop_assert!(again.is_ok(), "{q:?} -> {text:?}: {again:?}");
                        prop_assert_eq!(&again.unwrap().sources, &parsed.sources);
                    }
                }
            }
        }
    }
}
