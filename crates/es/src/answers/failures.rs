//! Failures reported inside answers a `read` token gets (review 16): the shard failures of a
//! search that partly failed (`_shards.failures[].reason`, in a 200 answer), the items of an
//! `_msearch` that failed (`responses[].error`), an async search's `response`, and the error
//! body of a 4xx answer (`error`, its `root_cause`, `caused_by` and `failed_shards`).
//!
//! The rule is the one for backend error bodies (`proxy::backend_failure`): what describes the
//! node rather than the request never reaches a `read` token. A circuit breaker's reason gives
//! the memory each breaker of the node holds, a rejected execution's a thread pool's queue and
//! completed tasks, a transport error the node's name and address: every tenant's work,
//! statistics a `read` token may not ask for. An error object keeps its details only when its
//! type is one of the request's own errors (`KEPT`, reasons about what the client sent);
//! any other keeps its `type` (a plain identifier) and gets a fixed reason, its `caused_by`
//! judged the same way. Deny by default: a type esgate does not know is reduced.
//!
//! Cost: [`peek`] reads only the beginning of a search answer (its `_shards` header comes before
//! the hits), so an answer without failures streams as before; [`withhold`] rewrites in place
//! (every byte but the failures' values kept as the backend wrote them) and is run only on
//! answers that report one.

use std::ops::Range;

use serde_json::Value;

use super::scan::{Cursor, Fault, Walk};

/// The reason a withheld failure gets.
pub const WITHHELD: &str = "the backend's failure details are withheld by esgate";

/// Error types whose reasons are about the request itself (a query that does not parse or fit
/// the mapping), kept with their details.
/// (SQL, EQL and ES|QL name what they cannot plan with `verification_exception`,
/// `planning_exception` and `sql_illegal_argument_exception`.) Not kept, among others:
/// `search_context_missing_exception` and `resource_not_found_exception` (their reasons quote
/// context and task ids, counters over every tenant's searches), `illegal_state_exception`.
const KEPT: &[&str] = &[
    "action_request_validation_exception",
    "arithmetic_exception",
    "date_time_parse_exception",
    "illegal_argument_exception",
    "index_not_found_exception",
    "json_parse_exception",
    "mapper_parsing_exception",
    "number_format_exception",
    "opensearch_parse_exception",
    "parse_exception",
    "parsing_exception",
    "planning_exception",
    "query_parsing_exception",
    "query_shard_exception",
    "search_parse_exception",
    "search_phase_execution_exception",
    "sql_illegal_argument_exception",
    "too_many_buckets_exception",
    "validation_exception",
    "verification_exception",
    "x_content_parse_exception",
];

/// What the beginning of an answer says about failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peek {
    /// No failure can follow: stream the answer.
    Clean,
    /// It reports one (or could anywhere, as an `_msearch` answer): read it whole.
    Reports,
    /// Not known yet: read more.
    Undecided,
}

/// Judges the beginning of an answer (or the whole of it). A search answer writes its `_shards`
/// header (and the failures in it) before its hits, aggregations, suggestions and profile, so
/// once the header is read whole, or one of the keys that follow it (`hits`, `aggregations`,
/// ...) begins, the rest cannot report a failure: [`Peek::Clean`] without reading further;
/// any other key is read past. An answer with items (`responses`, `response`) may
/// report a failure in any of them: [`Peek::Reports`] once that is seen, so the caller reads it
/// whole. With `header_first` false (a route that writes its failures last: `_field_caps`,
/// EQL) only the whole answer decides. Not JSON (or not an object): [`Peek::Clean`].
pub fn peek(prefix: &[u8], header_first: bool) -> Peek {
    judge_beginning(prefix, header_first, false)
}

/// [`peek`] on a beginning that may go on past `prefix` (what a decompression gave so far,
/// perf23c): an object closed exactly at its end is [`Peek::Undecided`], where [`peek`] calls
/// it clean (whole, it is; any byte but whitespace after it makes it [`Peek::Reports`]). Any
/// other verdict is the one [`peek`] gives on every longer beginning of the same answer (the
/// scan reads left to right and decides on what it has read), so a caller may stop at the
/// first one and judge as [`peek`] would on all it holds.
pub fn peek_beginning(prefix: &[u8], header_first: bool) -> Peek {
    judge_beginning(prefix, header_first, true)
}

fn judge_beginning(prefix: &[u8], header_first: bool, goes_on: bool) -> Peek {
    if header_first && flat_header(prefix) {
        return Peek::Clean;
    }
    let mut scan = Scan::new(prefix);
    scan.header_first = header_first;
    let done = scan.top(0);
    if !scan.spans.is_empty() || scan.items {
        return Peek::Reports;
    }
    let object = prefix.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match done {
        // An object the scan closed before the bytes end, or one that stops being JSON: where
        // the scan and Elasticsearch read its brackets differently (a `_source` ending in a
        // `//` comment, which Elasticsearch ends with the document), what the scan did not
        // read may report a failure. Read whole, where [`withhold_whole`] refuses it
        // (attack17d, found: streamed as clean).
        Ok(()) if !scan.c.at_end() => Peek::Reports,
        Ok(()) if goes_on => Peek::Undecided,
        Err(Stop::Fault(Fault::Malformed)) if object => Peek::Reports,
        Ok(()) | Err(Stop::Fault(Fault::Malformed)) | Err(Stop::Decided) => Peek::Clean,
        Err(Stop::Fault(Fault::CutShort)) => Peek::Undecided,
    }
}

/// What esgate does with the answers of the route `action` (a permit's): `None` for routes
/// whose answers report no failures; `Some(header_first)` for the search family (see [`peek`]).
pub fn watched(action: &str) -> Option<bool> {
    match action {
        "search" | "msearch" | "count" | "knn_search" | "validate_query" => Some(true),
        // ES|QL writes its clusters' failures after its values.
        "field_caps" | "eql" | "esql" => Some(false),
        _ => None,
    }
}

/// Whether esgate reads every answer of the route `action` whole to judge it, whatever its
/// beginning: an `_msearch` answer's items may each report a failure ([`peek`] calls every
/// one [`Peek::Reports`]). Such an answer is asked for uncompressed (perf23c): it reaches the
/// client uncompressed either way, and a compressed one was decoded whole first.
pub fn judged_whole(action: &str) -> bool {
    action == "msearch"
}

/// The common answer's fast path (review 16: the scan cost a small search about 1.8k
/// instructions): the first `"_shards":{` lies at the top level (nothing before it opens an
/// object or array: only scalars such as `took` and `timed_out`, whose strings cannot hold an
/// unescaped quote, so the bytes are a key) and its object holds no array or object, so no
/// `failures`. Anything else is left to the scan.
fn flat_header(prefix: &[u8]) -> bool {
    const KEY: &[u8] = b"\"_shards\":{";
    let Some(open) = prefix.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    if prefix[open] != b'{' {
        return false;
    }
    // The first bracket after the answer's own opens the header, or the fast path does not
    // apply.
    let rest = &prefix[open + 1..];
    let Some(at) = memchr::memchr2(b'{', b'[', rest) else {
        return false;
    };
    if !rest[..=at].ends_with(KEY) {
        return false;
    }
    let header = &rest[at + 1..];
    match memchr::memchr3(b'}', b'{', b'[', header) {
        // Its quotes paired: the `}` is not inside a string.
        Some(end) => {
            header[end] == b'}'
                && header[..end]
                    .iter()
                    .filter(|&&b| b == b'"')
                    .count()
                    .is_multiple_of(2)
        }
        None => false,
    }
}

/// The answer with every failure it reports reduced (see the module), the rest byte for byte
/// as it was; `None` when it reports none (or is not JSON).
pub fn withhold(answer: &[u8]) -> Option<Vec<u8>> {
    withhold_whole(answer).ok().flatten()
}

/// Why what a whole answer reports cannot be judged.
#[derive(Debug, PartialEq, Eq)]
pub enum Unjudged {
    /// It ends inside its JSON.
    CutShort,
    /// It starts as a JSON object and stops being JSON (or a failure it reports is not JSON).
    Malformed,
}

/// [`withhold`] for an answer that must be whole: one that ends inside its JSON (a failure
/// among its last bytes, cut where the scan cannot see it) is refused (review 16e: a backend
/// answer ended early by its connection was sent as it came), and so is one that starts as a
/// JSON object and stops being JSON (lead, session 17: a failure after that point would go out
/// unreduced; Elasticsearch's own answers are JSON, comments in a `_source` included). A blank
/// answer, or one that is not JSON from its first byte (a proxy's page), reports nothing.
pub fn withhold_whole(answer: &[u8]) -> Result<Option<Vec<u8>>, Unjudged> {
    let mut scan = Scan::new(answer);
    let object = answer.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match scan.top(0) {
        // Bytes after the answer's own object are not JSON: where the scan and Elasticsearch
        // read the answer's brackets differently, what follows the place the scan took for
        // its end is unjudged (attack17d).
        Ok(()) if !scan.c.at_end() => return Err(Unjudged::Malformed),
        Ok(()) => {}
        Err(Stop::Fault(Fault::CutShort)) if answer.iter().any(|b| !b.is_ascii_whitespace()) => {
            return Err(Unjudged::CutShort)
        }
        Err(Stop::Fault(Fault::Malformed)) if object => return Err(Unjudged::Malformed),
        Err(_) => return Ok(None),
    }
    if scan.spans.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(answer.len());
    let mut at = 0;
    for span in &scan.spans {
        // The scan found the span's brackets paired; not JSON inside: not judged.
        let Ok(mut v) = serde_json::from_slice::<Value>(&answer[span.clone()]) else {
            return Err(Unjudged::Malformed);
        };
        reduce(&mut v);
        out.extend_from_slice(&answer[at..span.start]);
        let Ok(text) = serde_json::to_vec(&v) else {
            return Ok(None);
        };
        out.extend_from_slice(&text);
        at = span.end;
    }
    out.extend_from_slice(&answer[at..]);
    Ok(Some(out))
}

/// An error object reduced per the rule (see the module); anything else is left as it is.
fn reduce(v: &mut Value) {
    let Value::Object(m) = v else { return };
    let kind = m
        .get("type")
        .and_then(Value::as_str)
        .filter(|k| crate::error::is_plain_identifier(k))
        .map(str::to_owned);
    if kind.as_deref().is_some_and(|k| KEPT.contains(&k)) {
        m.remove("stack_trace");
        without_positions(m);
        if let Some(c) = m.get_mut("caused_by") {
            reduce(c);
        }
        for key in ["root_cause", "suppressed"] {
            if let Some(Value::Array(a)) = m.get_mut(key) {
                a.iter_mut().for_each(reduce);
            }
        }
        if let Some(Value::Array(a)) = m.get_mut("failed_shards") {
            for f in a {
                if let Some(r) = f.get_mut("reason") {
                    reduce(r);
                }
            }
        }
        return;
    }
    let cause = m.remove("caused_by").map(|mut c| {
        reduce(&mut c);
        c
    });
    m.clear();
    m.insert(
        "type".to_owned(),
        Value::String(kind.unwrap_or_else(|| "exception".to_owned())),
    );
    m.insert("reason".to_owned(), Value::String(WITHHELD.to_owned()));
    if let Some(c) = cause {
        m.insert("caused_by".to_owned(), c);
    }
}

/// A kept error without the places it names in the forwarded body (attack27b, L): a parse
/// error's reason starts with `[line:column]` (`XContentParseException`), a `parsing_exception`
/// has `line` and `col`, Jackson's own errors end with `line: N, column: M`, each counted in the
/// body esgate forwarded, where the token's filter clauses come before the client's query (and
/// the wrapped query before the keys after it): the column told a token the length of its own
/// filters' JSON, which it may not read. The client's SQL, EQL and ES|QL texts are its own
/// (`line 1:8: ...`, no brackets) and keep their places.
fn without_positions(m: &mut serde_json::Map<String, Value>) {
    for key in ["line", "col"] {
        if m.get(key).is_some_and(Value::is_number) {
            m.remove(key);
        }
    }
    if let Some(Value::String(reason)) = m.get_mut("reason") {
        if let Some(len) = forwarded_query_at(reason) {
            reason.truncate(len);
        }
        if let Some(cut) = cut_positions(reason) {
            *reason = cut;
        }
    }
}

/// What a kept reason says before the query it quotes, `failed to create query` (attack27c,
/// L): Elasticsearch 5 and 6 (`QueryShardContext::toQuery`) wrap a query that fails to build
/// on a shard as `query_shard_exception` "failed to create query: {}", the `{}` being the whole
/// query builder printed as JSON (`AbstractQueryBuilder::toString`, pretty printed: the
/// forwarded query, the token's filter clauses in it); from 7 on it is the cause's message,
/// the client's own, kept. `None` when the reason quotes no query (nothing after the words
/// that opens an object).
fn forwarded_query_at(reason: &str) -> Option<usize> {
    const WORDS: &str = "failed to create query";
    reason
        .match_indices(WORDS)
        .map(|(i, _)| i + WORDS.len())
        .find(|&at| {
            reason[at..]
                .strip_prefix(':')
                .is_some_and(|rest| rest.trim_start().starts_with('{'))
        })
}

/// `reason` without its `[N:M]` places (and the space after one), Jackson's location (its
/// messages end with `\n at [Source: <what it read>; line: N, column: M]`, cut from `[Source: `
/// on: before Jackson 2.16 what it read is the beginning of the body itself, the token's filter
/// clauses first) and any other `line: N, column: M` (with the `; ` before it); `None` when it
/// names none.
fn cut_positions(reason: &str) -> Option<String> {
    let (reason, located) = match reason.find("[Source: ") {
        Some(i) => {
            let before = reason[..i].trim_end();
            (
                before.strip_suffix(" at").unwrap_or(before).trim_end(),
                true,
            )
        }
        None => (reason, false),
    };
    let b = reason.as_bytes();
    let digits = |at: usize| {
        b[at.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut out = String::new();
    let (mut at, mut kept) = (0, 0);
    while at < b.len() {
        // `[N:M]`
        if b[at] == b'[' {
            let n = digits(at + 1);
            if n > 0 && b.get(at + 1 + n) == Some(&b':') {
                let m = digits(at + 2 + n);
                let close = at + 2 + n + m;
                if m > 0 && b.get(close) == Some(&b']') {
                    let end = close + 1 + usize::from(b.get(close + 1) == Some(&b' '));
                    out.push_str(&reason[kept..at]);
                    (at, kept) = (end, end);
                    continue;
                }
            }
        }
        // `line: N, column: M`
        if b[at..].starts_with(b"line: ") {
            let n = digits(at + 6);
            let col = at + 6 + n;
            if n > 0 && b[col..].starts_with(b", column: ") {
                let m = digits(col + 10);
                if m > 0 {
                    let start = if reason[..at].ends_with("; ") {
                        at - 2
                    } else {
                        at
                    };
                    out.push_str(&reason[kept..start]);
                    at = col + 10 + m;
                    kept = at;
                    continue;
                }
            }
        }
        at += 1;
    }
    if kept == 0 && !located {
        return None;
    }
    out.push_str(&reason[kept..]);
    Some(out)
}

/// Why a scan stopped early.
#[derive(Debug)]
enum Stop {
    /// The cursor's: the input ended inside a value, or is not JSON.
    Fault(Fault),
    /// [`peek`] knows enough.
    Decided,
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        Stop::Fault(f)
    }
}

type Step = Result<(), Stop>;

/// Most nested answers (`responses`, `response`) one scan follows.
const MAX_ITEM_DEPTH: usize = 4;

/// A scan of an answer for the values holding failures: it follows only the keys that can
/// lead to one and skips every other value by its brackets.
struct Scan<'a> {
    c: Cursor<'a>,
    /// The failure values found, in order.
    spans: Vec<Range<usize>>,
    /// The answer has items (`responses` or `response`).
    items: bool,
    /// Stop once the top level's `_shards` header, or what follows it, is reached ([`peek`]).
    header_first: bool,
}

impl<'a> Walk<'a> for Scan<'a> {
    fn cursor(&mut self) -> &mut Cursor<'a> {
        &mut self.c
    }
}

impl<'a> Scan<'a> {
    fn new(b: &'a [u8]) -> Scan<'a> {
        Scan {
            c: Cursor::new(b),
            spans: Vec::new(),
            items: false,
            header_first: false,
        }
    }

    fn next_byte(&mut self) -> Result<u8, Stop> {
        Ok(self.c.next_byte()?)
    }

    fn skip(&mut self) -> Step {
        Ok(self.c.skip()?)
    }

    /// The value at the cursor recorded as a failure when it is an object, skipped otherwise.
    fn failure(&mut self) -> Step {
        let object = self.next_byte()? == b'{';
        let at = self.c.at();
        self.skip()?;
        if object {
            self.spans.push(at..self.c.at());
        }
        Ok(())
    }

    /// An object at the cursor whose keys are skipped but for `reason` (and `failure`), the
    /// failure's error: an entry of `failures`.
    fn failure_entry(&mut self) -> Step {
        if self.next_byte()? != b'{' {
            return self.skip();
        }
        self.object(|s, key| match key {
            b"reason" | b"failure" => s.failure(),
            _ => s.skip(),
        })
    }

    /// A `_clusters` section at the cursor: the `failures` of each cluster in its `details`.
    fn clusters(&mut self) -> Step {
        if self.next_byte()? != b'{' {
            return self.skip();
        }
        self.object(|s, key| match key {
            b"details" => {
                if s.next_byte()? != b'{' {
                    return s.skip();
                }
                s.object(|s, _cluster| {
                    if s.next_byte()? != b'{' {
                        return s.skip();
                    }
                    s.object(|s, key| match key {
                        b"failures" => s.array(Scan::failure_entry),
                        _ => s.skip(),
                    })
                })
            }
            _ => s.skip(),
        })
    }

    /// An answer (or an item of one) at the cursor.
    fn top(&mut self, depth: usize) -> Step {
        if self.next_byte()? != b'{' {
            return if depth == 0 {
                Err(Fault::Malformed.into())
            } else {
                self.skip()
            };
        }
        self.object(|s, key| match key {
            b"error" => s.failure(),
            b"failures" | b"shard_failures" => s.array(Scan::failure_entry),
            b"_shards" => {
                if s.next_byte()? != b'{' {
                    return s.skip();
                }
                s.object(|s, key| match key {
                    b"failures" => s.array(Scan::failure_entry),
                    _ => s.skip(),
                })?;
                if depth == 0 && s.header_first {
                    return Err(Stop::Decided);
                }
                Ok(())
            }
            // ES|QL's partial results (Elasticsearch 8.19+, on by default) and a cross-cluster
            // search report their shards' failures per cluster.
            b"_clusters" => s.clusters(),
            b"responses" | b"response" if depth < MAX_ITEM_DEPTH => {
                s.items = true;
                if s.header_first {
                    return Err(Stop::Decided);
                }
                if s.next_byte()? == b'[' {
                    s.array(|s| s.top(depth + 1))
                } else {
                    s.top(depth + 1)
                }
            }
            // What the search family writes after its `_shards` header (what a `filter_path`
            // kept of it too): no failure can follow.
            b"hits" | b"aggregations" | b"suggest" | b"profile" | b"valid" | b"explanations"
            | b"terms" | b"complete"
                if depth == 0 && s.header_first =>
            {
                Err(Stop::Decided)
            }
            // Anything else (`took`, `_scroll_id`, an async search's `id`, a key esgate does
            // not know such as OpenSearch's `phase_took`) is read past: deny by default, a
            // header or a `response` may still follow (review 16e: an async search's `id`
            // decided its answer clean, and its `response`'s failures went out whole).
            _ => s.skip(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BREAKER: &str = r#"{"type":"circuit_breaking_exception","reason":"[parent] Data too large, data for [<reused_arrays>] would be [1023/1kb], real usage: [987654321/941mb], usages [request=0/0b, fielddata=123/123b]","bytes_wanted":987654321,"bytes_limit":1020054732,"durability":"TRANSIENT"}"#;

    fn search_with(failure: &str) -> String {
        format!(
            r#"{{"took":3,"timed_out":false,"_shards":{{"total":2,"successful":1,"skipped":0,"failed":1,"failures":[{{"shard":0,"index":"logs-a","node":"n1","reason":{failure}}}]}},"hits":{{"total":{{"value":1,"relation":"eq"}},"max_score":null,"hits":[{{"_index":"logs-a","_id":"1","_source":{{"error":{{"type":"circuit_breaking_exception","reason":"mine"}},"failures":[{{"reason":{{"type":"x"}}}}]}}}}]}}}}"#
        )
    }

    #[test]
    fn node_state_failures_are_reduced_and_the_rest_kept_byte_for_byte() {
        let answer = search_with(BREAKER);
        let out = withhold(answer.as_bytes()).expect("reports a failure");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("real usage"), "{text}");
        assert!(!text.contains("987654321"), "{text}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["_shards"]["failures"][0]["reason"],
            json!({"type": "circuit_breaking_exception", "reason": WITHHELD})
        );
        assert_eq!(v["_shards"]["failures"][0]["index"], "logs-a");
        // The token's own document, whatever it holds, is untouched.
        let tail = &answer[answer.find(r#","hits":"#).unwrap()..];
        assert!(text.ends_with(tail), "{text}");
        assert_eq!(peek(answer.as_bytes(), true), Peek::Reports);
    }

    /// `answer` judged whole: its breaker failure reduced, `kept` (a document) left as it was.
    fn breaker_reduced_keeping(answer: &str, kept: &str) {
        let out = withhold_whole(answer.as_bytes())
            .expect("whole")
            .expect("reports a failure");
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("real usage"), "{text}");
        assert!(
            text.contains(kept),
            "the document is left as it was: {text}"
        );
    }

    /// dup17 (found): Elasticsearch sends a `_source` back as it was indexed, and its parser
    /// takes comments; the scan stopped at one and let every failure after it out unreduced
    /// (EQL's and ES|QL's answers report theirs last; a search's `_shards` may follow its hits).
    #[test]
    fn comments_in_a_source_do_not_hide_the_failures_after_it() {
        let hits = "\"hits\":{\"hits\":[{\"_id\":\"1\",\"_source\":/* a \"quote\" and ]} */{\"a\":1, // a note: 1, 2\n\"b\":[2 /**/,3]}}]}";
        let answer = format!(
            r#"{{"took":3,{hits},"_shards":{{"total":2,"successful":1,"skipped":0,"failed":1,"failures":[{{"shard":0,"index":"logs-a","reason":{BREAKER}}}]}}}}"#
        );
        breaker_reduced_keeping(&answer, hits);
        // Cut inside a comment: cut short, not judged clean.
        let inside = answer.find("a \"quote").unwrap();
        assert_eq!(
            withhold_whole(&answer.as_bytes()[..inside]),
            Err(Unjudged::CutShort)
        );
        // A line comment holding a quote or a bracket: its end may not be Elasticsearch's
        // (attack17d), not judged, not let out.
        let bracket = answer.replace("a note: 1, 2", "\"] }");
        assert_eq!(withhold_whole(bracket.as_bytes()), Err(Unjudged::Malformed));
        // A slash that starts no comment is not JSON: not judged, not let out.
        let bad = answer.replace("/**/", "/x");
        assert_eq!(withhold_whole(bad.as_bytes()), Err(Unjudged::Malformed));
        // Not JSON from its first byte (a proxy's page): nothing to judge.
        assert_eq!(withhold_whole(b"<html>502</html>"), Ok(None));
    }

    /// attack17d (found, M): Elasticsearch's parser ends a `//` comment at a carriage return
    /// as at a line feed (Jackson's `_skipLine`), the scan only at a line feed: a `_source`
    /// indexed as `{"a":1//\r/*\n]]]]}*/}` (a comment, then a block comment Elasticsearch
    /// skips) had the scan read `]]]]}` as brackets, close the answer there and judge nothing
    /// after it: an EQL answer's `shard_failures` (written after its events) went out whole.
    /// A document whose comments end at a carriage return alone is judged as Elasticsearch
    /// reads it, and bytes after the answer's own object are not JSON.
    #[test]
    fn a_line_comment_ends_at_a_carriage_return_as_elasticsearch_ends_it() {
        let source = "{\"a\":1//\r/*\n]]]]}*/}";
        let answer = format!(
            r#"{{"is_partial":true,"is_running":false,"took":1,"timed_out":false,"hits":{{"total":{{"value":1,"relation":"eq"}},"events":[{{"_index":"logs-a","_id":"1","_source":{source}}}]}},"shard_failures":[{{"shard":0,"index":"logs-a","reason":{BREAKER}}}]}}"#
        );
        breaker_reduced_keeping(&answer, source);
        // A comment ended by a carriage return and nothing after it: judged, not cut short.
        let plain = format!(
            r#"{{"took":1,"hits":{{"events":[{{"_source":{{"a":1 // note{}}}}}]}},"shard_failures":[{{"reason":{BREAKER}}}]}}"#,
            '\r'
        );
        let text = String::from_utf8(withhold_whole(plain.as_bytes()).unwrap().unwrap()).unwrap();
        assert!(!text.contains("real usage"), "{text}");
        // Bytes after the answer's object: not JSON, not judged clean.
        let trailing = format!(r#"{{"took":1}}]}},"shard_failures":[{{"reason":{BREAKER}}}]}}"#);
        assert_eq!(
            withhold_whole(trailing.as_bytes()),
            Err(Unjudged::Malformed)
        );
        assert_eq!(withhold_whole(b"{\"took\":1} \n"), Ok(None));
    }

    /// attack17d (found, M): a `_source` indexed as `{"a":1}//c` (a comment Elasticsearch
    /// ends with the document; it keeps the bytes as sent and copies them into its answers)
    /// has the scan's comment run on into the next document, to its first line end: there
    /// `]]}}` closed the answer for the scan, and [`peek`] judged an EQL answer clean and let it
    /// stream with the failures the scan never read. Read whole instead, and refused there.
    #[test]
    fn a_comment_that_ends_with_its_document_does_not_judge_the_answer_clean() {
        let answer = format!(
            r#"{{"took":1,"hits":{{"events":[{{"_index":"a","_source":{{"a":1}}//c}},{{"_index":"a","_source":{{"b":1/*{}]]}}}}*/}}}}]}},"shard_failures":[{{"shard":0,"reason":{BREAKER}}}]}}"#,
            '\n'
        );
        // EQL's and ES|QL's routes judge without a header first (a search's `_shards`
        // precedes its hits).
        assert_eq!(peek(answer.as_bytes(), false), Peek::Reports);
        assert_eq!(withhold_whole(answer.as_bytes()), Err(Unjudged::Malformed));
        // An object that stops being JSON is read whole too (and refused there); other
        // bytes are no answer to judge.
        assert_eq!(peek(b"{\"took\":1,\"x\":*", false), Peek::Reports);
        assert_eq!(peek(b"{\"took\":1} x", false), Peek::Reports);
        assert_eq!(peek(b"{\"took\":1} \n", false), Peek::Clean);
        assert_eq!(peek(b"<html>", false), Peek::Clean);
    }

    /// attack17d (found, M): two documents of the token's own, `{"a":1}//c` (a comment
    /// Elasticsearch ends with the document) and `{"b":1/*\n[/**/}` (a block comment holding a
    /// line end and a bracket), in the first and the last search of an `_msearch`: the scan's
    /// comment ran from the first to the line end in the second, over the middle search's
    /// failures, and `[` there set its brackets right again, so the answer read whole and
    /// clean and the breaker's reason went out. A line comment that holds a quote, a
    /// bracket or a slash is not read as one: its end may not be Elasticsearch's.
    #[test]
    fn a_comment_that_ends_with_its_document_does_not_hide_the_next_items_failures() {
        let shards = r#""_shards":{"total":1,"successful":1,"skipped":0,"failed":0}"#;
        let answer = format!(
            r#"{{"took":1,"responses":[{{"took":1,"timed_out":false,{shards},"hits":{{"hits":[{{"_index":"a","_source":{{"a":1}}//c}}]}},"status":200}},{{"took":1,"timed_out":false,"_shards":{{"total":2,"successful":1,"skipped":0,"failed":1,"failures":[{{"shard":0,"index":"a","reason":{BREAKER}}}]}},"hits":{{"hits":[]}},"status":200}},{{"took":1,"timed_out":false,{shards},"hits":{{"hits":[{{"_index":"a","_source":{{"b":1/*{}[/**/}}}}]}},"status":200}}]}}"#,
            '\n'
        );
        assert_ne!(peek(answer.as_bytes(), true), Peek::Clean);
        assert_eq!(withhold_whole(answer.as_bytes()), Err(Unjudged::Malformed));
        // A plain line comment is still whitespace.
        let plain = format!(
            r#"{{"took":1,"hits":{{"events":[{{"_source":{{"a":1 // a note: 1, 2 and 3{}}}}}]}},"shard_failures":[{{"reason":{BREAKER}}}]}}"#,
            '\n'
        );
        let text = String::from_utf8(withhold_whole(plain.as_bytes()).unwrap().unwrap()).unwrap();
        assert!(!text.contains("real usage"), "{text}");
    }

    /// attack17d: random `_source` documents as Elasticsearch's parser takes them, comments
    /// (`//` ended by `\n`, `\r` or `\r\n`; `/* */` holding brackets, quotes, slashes, stars and
    /// line ends) wherever whitespace may stand, their text full of what the scan counts; in an
    /// EQL answer whose `shard_failures` follow the events, and in an ES|QL one whose
    /// `_clusters` failures follow the values. The failure after them is always reduced, and
    /// the answer cut anywhere is never judged clean.
    #[test]
    fn comments_anywhere_in_sources_never_hide_a_later_failure() {
        const PIECES: [&str; 14] = [
            "]", "}", "[", "{", "\"", "'", "*", "/", ",", ":", "x", "\\", "é", "\t",
        ];
        thread_local! {
            static UNJUDGED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        fn comment(next: &mut dyn FnMut() -> u64, out: &mut String) {
            let mut text = String::new();
            for _ in 0..next() % 8 {
                text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if next().is_multiple_of(2) {
                // A line comment holding a quote, a bracket or a slash makes the answer
                // unjudged (its end may not be Elasticsearch's): one in four such comments.
                let plain: String = text
                    .chars()
                    .filter(|c| !matches!(c, '"' | '[' | ']' | '{' | '}' | '/'))
                    .collect();
                let text = if plain != text && next().is_multiple_of(4) {
                    UNJUDGED.with(|u| u.set(true));
                    text
                } else {
                    plain
                };
                out.push_str("//");
                out.push_str(&text);
                out.push_str(["\n", "\r", "\r\n"][(next() % 3) as usize]);
            } else {
                // Line ends inside too; no `*/` before its end (the `*` of `/*` opens it only).
                for _ in 0..next() % 3 {
                    text.push_str(["\n", "\r", "**", "/"][(next() % 4) as usize]);
                }
                let text = text.replace("*/", "* /");
                let text = if text.ends_with('*') {
                    format!("{text} ")
                } else {
                    text
                };
                out.push_str("/*");
                out.push_str(&text);
                out.push_str("*/");
            }
        }
        fn gap(next: &mut dyn FnMut() -> u64, out: &mut String) {
            match next() % 4 {
                0 => comment(next, out),
                1 => out.push(' '),
                _ => {}
            }
        }
        fn value(next: &mut dyn FnMut() -> u64, depth: u32, out: &mut String) {
            gap(next, out);
            match next() % 6 {
                0 if depth < 4 => {
                    out.push('[');
                    for k in 0..next() % 4 {
                        if k > 0 {
                            out.push(',');
                        }
                        value(next, depth + 1, out);
                    }
                    gap(next, out);
                    out.push(']');
                }
                1 | 2 if depth < 4 => object(next, depth + 1, out),
                3 => out.push_str(r#""a]}\"/*//[{""#),
                4 => out.push_str("-1.5e3"),
                _ => out.push_str("true"),
            }
            gap(next, out);
        }
        fn object(next: &mut dyn FnMut() -> u64, depth: u32, out: &mut String) {
            out.push('{');
            for k in 0..next() % 4 {
                if k > 0 {
                    out.push(',');
                }
                gap(next, out);
                out.push_str(&format!("\"k{k}\""));
                gap(next, out);
                out.push(':');
                value(next, depth, out);
            }
            gap(next, out);
            out.push('}');
        }
        let mut next = crate::testing::xorshift(0xa77a_c417_dc0e_u64);
        let mut unjudged = 0;
        for round in 0..20_000 {
            let mut source = String::new();
            UNJUDGED.with(|u| u.set(false));
            object(&mut next, 0, &mut source);
            // A comment that ends with the document (Elasticsearch takes it): the scan cannot
            // tell where, and never judges the answer.
            if next().is_multiple_of(16) {
                source.push_str("//");
                for _ in 0..next() % 4 {
                    source.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
                }
                UNJUDGED.with(|u| u.set(true));
            }
            let answer = if round % 2 == 0 {
                format!(
                    r#"{{"took":1,"hits":{{"events":[{{"_index":"logs-a","_source":{source}}}]}},"shard_failures":[{{"shard":0,"reason":{BREAKER}}}]}}"#
                )
            } else {
                format!(
                    r#"{{"took":1,"columns":[{{"name":"_source","type":"_source"}}],"values":[[{source}]],"_clusters":{{"details":{{"(local)":{{"failures":[{{"reason":{BREAKER}}}]}}}}}}}}"#
                )
            };
            if UNJUDGED.with(|u| u.get()) {
                unjudged += 1;
                assert!(withhold_whole(answer.as_bytes()).is_err(), "{answer:?}");
                assert_ne!(peek(answer.as_bytes(), false), Peek::Clean, "{answer:?}");
                continue;
            }
            let out = withhold_whole(answer.as_bytes())
                .unwrap_or_else(|e| panic!("{e:?}: {answer:?}"))
                .unwrap_or_else(|| panic!("judged clean: {answer:?}"));
            let text = String::from_utf8(out).unwrap();
            assert!(!text.contains("real usage"), "{answer:?}");
            assert!(text.contains(&source), "{answer:?}");
            if round % 100 == 0 {
                let reason = answer.find("real usage").unwrap();
                for cut in 1..reason {
                    let judged = withhold_whole(&answer.as_bytes()[..cut]);
                    assert!(judged.is_err(), "{cut}: {judged:?} {answer:?}");
                }
            }
        }
        assert!(unjudged > 500 && unjudged < 10_000, "{unjudged}");
    }

    #[test]
    fn request_errors_keep_their_details_and_their_causes_are_judged() {
        let failure = r#"{"type":"query_shard_exception","reason":"failed to create query: For input string: \"abc\"","index":"logs-a","caused_by":{"type":"number_format_exception","reason":"For input string: \"abc\""}}"#;
        let answer = search_with(failure);
        let out = withhold(answer.as_bytes()).expect("reports a failure");
        let parsed = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
        assert_eq!(parsed(&out), parsed(answer.as_bytes()));
        let remote = r#"{"type":"remote_transport_exception","reason":"[node-7][10.0.0.7:9300][indices:data/read/search[phase/query]]","caused_by":{"type":"query_shard_exception","reason":"failed to create query: x","caused_by":{"type":"es_rejected_execution_exception","reason":"rejected execution of on EsThreadPoolExecutor[completed tasks = 4489275]"}}}"#;
        let out = withhold(search_with(remote).as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let reason = &v["_shards"]["failures"][0]["reason"];
        assert_eq!(reason["type"], "remote_transport_exception");
        assert_eq!(reason["reason"], WITHHELD);
        assert_eq!(reason["caused_by"]["reason"], "failed to create query: x");
        assert_eq!(
            reason["caused_by"]["caused_by"],
            json!({"type": "es_rejected_execution_exception", "reason": WITHHELD})
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("10.0.0.7") && !text.contains("4489275"),
            "{text}"
        );
    }

    #[test]
    fn error_bodies_msearch_items_and_async_responses_are_covered() {
        let body = format!(
            r#"{{"error":{{"root_cause":[{BREAKER}],"type":"search_phase_execution_exception","reason":"all shards failed","phase":"query","grouped":true,"failed_shards":[{{"shard":0,"index":"logs-a","node":"n","reason":{BREAKER}}}],"caused_by":{BREAKER}}},"status":400}}"#
        );
        let out = String::from_utf8(withhold(body.as_bytes()).unwrap()).unwrap();
        assert!(
            !out.contains("real usage") && !out.contains("bytes_wanted"),
            "{out}"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["error"]["reason"], "all shards failed");
        assert_eq!(v["status"], 400);
        assert_eq!(
            v["error"]["root_cause"][0]["type"],
            "circuit_breaking_exception"
        );

        let msearch = format!(
            r#"{{"took":1,"responses":[{},{{"error":{BREAKER},"status":429}}]}}"#,
            search_with(r#"{"type":"query_shard_exception","reason":"ok"}"#)
        );
        assert_eq!(peek(&msearch.as_bytes()[..40], true), Peek::Reports);
        let out = String::from_utf8(withhold(msearch.as_bytes()).unwrap()).unwrap();
        assert!(!out.contains("real usage"), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["responses"][1]["status"], 429);
        assert_eq!(
            v["responses"][0]["_shards"]["failures"][0]["reason"]["reason"],
            "ok"
        );

        let pretty = serde_json::to_string_pretty(&json!({
            "id": "x", "is_running": false,
            "response": serde_json::from_str::<Value>(&search_with(BREAKER)).unwrap(),
        }))
        .unwrap();
        let out = String::from_utf8(withhold(pretty.as_bytes()).unwrap()).unwrap();
        assert!(!out.contains("real usage"), "{out}");
        serde_json::from_str::<Value>(&out).unwrap();
    }

    /// Review 16e: an async search's answer (read whole, `without_failure_details`) begins with
    /// `id`, a key a search answer does not write before its header: it was decided clean
    /// there, and the failures in its `response` reached a `read` token whole.
    #[test]
    fn an_unknown_key_before_the_header_is_read_past_not_decided_clean() {
        let answer = format!(
            r#"{{"id":"FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=","is_partial":true,"is_running":false,"start_time_in_millis":1,"expiration_time_in_millis":2,"response":{}}}"#,
            search_with(BREAKER)
        );
        assert_eq!(peek(answer.as_bytes(), true), Peek::Reports);
        let failed =
            format!(r#"{{"id":"x","is_partial":true,"is_running":false,"error":{BREAKER}}}"#);
        assert_eq!(peek(failed.as_bytes(), true), Peek::Reports);
        // A key esgate does not know, before the header (OpenSearch's `phase_took`): the
        // header after it is still judged.
        let phase = search_with(BREAKER).replacen(
            r#""took":3,"#,
            r#""took":3,"phase_took":{"query":1,"fetch":0},"#,
            1,
        );
        assert_eq!(peek(phase.as_bytes(), true), Peek::Reports);
        for n in 0..phase.len() {
            assert_ne!(peek(&phase.as_bytes()[..n], true), Peek::Clean, "{n}");
        }
        // What follows the header still decides without the header (a `filter_path`).
        assert_eq!(
            peek(br#"{"aggregations":{"a":{"buckets":[{"#, true),
            Peek::Clean
        );
    }

    /// Review 16e: ES|QL returns partial results by default (Elasticsearch 8.19+), its shards'
    /// failures under `_clusters.details`, after its values; its answers streamed unread.
    #[test]
    fn esql_partial_results_report_their_failures_per_cluster() {
        assert_eq!(watched("esql"), Some(false));
        let answer = format!(
            r#"{{"took":5,"is_partial":true,"documents_found":1,"values_loaded":1,"columns":[{{"name":"a","type":"keyword"}}],"values":[["_clusters"]],"_clusters":{{"total":1,"successful":0,"running":0,"skipped":0,"partial":1,"failed":0,"details":{{"(local)":{{"status":"partial","indices":"logs-a","took":5,"_shards":{{"total":2,"successful":1,"skipped":0,"failed":1}},"failures":[{{"shard":0,"index":"logs-a","node":"n1","reason":{BREAKER}}}]}}}}}}}}"#
        );
        assert_eq!(peek(&answer.as_bytes()[..60], false), Peek::Undecided);
        assert_eq!(peek(answer.as_bytes(), false), Peek::Reports);
        let out = String::from_utf8(withhold(answer.as_bytes()).unwrap()).unwrap();
        assert!(!out.contains("real usage"), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["_clusters"]["details"]["(local)"]["failures"][0]["reason"],
            json!({"type": "circuit_breaking_exception", "reason": WITHHELD})
        );
        assert_eq!(v["values"], json!([["_clusters"]]));
        // Without failures: nothing to rewrite.
        let clean = r#"{"took":5,"is_partial":false,"columns":[],"values":[],"_clusters":{"total":1,"details":{"(local)":{"status":"successful","_shards":{"total":1}}}}}"#;
        assert_eq!(peek(clean.as_bytes(), false), Peek::Clean);
        assert_eq!(withhold(clean.as_bytes()), None);
    }

    /// A small generator of answers for the differential below (xorshift: repeatable per seed).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn chance(&mut self, in_n: u64) -> bool {
            self.next().is_multiple_of(in_n)
        }
        fn pick<'x>(&mut self, of: &[&'x str]) -> &'x str {
            of[(self.next() % of.len() as u64) as usize]
        }

        fn error(&mut self, depth: usize) -> Value {
            let kind = self.pick(&[
                "circuit_breaking_exception",
                "es_rejected_execution_exception",
                "query_shard_exception",
                "illegal_argument_exception",
                "remote_transport_exception",
                "no such\"type",
            ]);
            let mut e = serde_json::Map::new();
            e.insert("type".into(), json!(kind));
            e.insert(
                "reason".into(),
                json!("node n1 [10.0.0.7:9300] real usage: [987654321/941mb] \"_shards\":{\"failures\":[]} }]"),
            );
            if self.chance(2) {
                e.insert("bytes_wanted".into(), json!(987_654_321_u64));
            }
            if depth < 3 && self.chance(2) {
                e.insert("caused_by".into(), self.error(depth + 1));
            }
            if depth < 2 && self.chance(3) {
                e.insert("root_cause".into(), json!([self.error(depth + 1)]));
            }
            Value::Object(e)
        }

        fn entries(&mut self) -> Value {
            let n = 1 + self.next() % 3;
            let entries: Vec<Value> = (0..n)
                .map(|i| json!({"shard": i, "index": "logs-a", "node": "n1", "reason": self.error(0)}))
                .collect();
            Value::Array(entries)
        }

        /// A document whose source looks like failures and headers.
        fn doc(&mut self) -> Value {
            json!({"_index": "logs-a", "_id": "1", "_source": {
                "_shards": {"failures": [{"reason": {"type": "circuit_breaking_exception", "reason": "mine"}}]},
                "error": {"type": "x", "reason": "mine"},
                "took": "\"_shards\":{",
                "responses": [{"error": {"type": "y"}}],
            }})
        }

        /// A search answer in Elasticsearch's order; `failing`: its header reports failures.
        fn search(&mut self, failing: bool) -> Value {
            let mut m = serde_json::Map::new();
            if self.chance(3) {
                m.insert("_scroll_id".into(), json!("c2Nhbg==\"_shards\":{"));
            }
            m.insert("took".into(), json!(self.next() % 1000));
            if self.chance(3) {
                m.insert("phase_took".into(), json!({"query": 1, "fetch": 0}));
            }
            m.insert("timed_out".into(), json!(self.chance(4)));
            if self.chance(4) {
                m.insert("terminated_early".into(), json!(true));
            }
            let mut shards = json!({"total": 2, "successful": 2, "skipped": 0, "failed": 0});
            if failing {
                shards["failures"] = self.entries();
            }
            // A `filter_path` may leave the header out.
            if failing || !self.chance(6) {
                m.insert("_shards".into(), shards);
            }
            let docs: Vec<Value> = (0..self.next() % 3).map(|_| self.doc()).collect();
            m.insert(
                "hits".into(),
                json!({"total": {"value": docs.len(), "relation": "eq"}, "hits": docs}),
            );
            if self.chance(3) {
                m.insert(
                    "aggregations".into(),
                    json!({"a": {"buckets": [{"key": "error", "doc_count": 1}]}}),
                );
            }
            Value::Object(m)
        }

        /// An answer of a route judged from its header (`true`) or whole (`false`), and
        /// whether it reports a failure.
        fn answer(&mut self) -> (Value, bool, bool) {
            let failing = self.chance(2);
            match self.next() % 5 {
                0 | 1 => (self.search(failing), true, failing),
                2 => {
                    let n = 1 + self.next() % 3;
                    let mut any = false;
                    let items: Vec<Value> = (0..n)
                        .map(|_| {
                            let f = failing && self.chance(2);
                            any |= f;
                            if f && self.chance(2) {
                                json!({"error": self.error(0), "status": 429})
                            } else {
                                self.search(f)
                            }
                        })
                        .collect();
                    (json!({"took": 1, "responses": items}), true, any)
                }
                3 => {
                    let mut a = json!({"id": "RmlkPQ==", "is_partial": failing, "is_running": false,
                        "start_time_in_millis": 1, "expiration_time_in_millis": 2});
                    a["response"] = self.search(failing);
                    (a, true, failing)
                }
                _ => {
                    let mut details = json!({"status": "partial", "indices": "logs-a",
                        "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1}});
                    if failing {
                        details["failures"] = self.entries();
                    }
                    let a = json!({"took": 5, "is_partial": failing,
                        "columns": [{"name": "_shards", "type": "keyword"}],
                        "values": [["{\"failures\":["]],
                        "_clusters": {"total": 1, "details": {"(local)": details}}});
                    (a, false, failing)
                }
            }
        }
    }

    /// The rule applied on the parsed tree: where failures lie, by the serde tree.
    fn reference(v: &mut Value, depth: usize) {
        let Value::Object(m) = v else { return };
        let entries = |a: &mut Value| {
            if let Value::Array(a) = a {
                for e in a {
                    if let Value::Object(e) = e {
                        for key in ["reason", "failure"] {
                            if let Some(r @ Value::Object(_)) = e.get_mut(key) {
                                reduce(r);
                            }
                        }
                    }
                }
            }
        };
        for (key, val) in m.iter_mut() {
            match key.as_str() {
                "error" if val.is_object() => reduce(val),
                "failures" | "shard_failures" => entries(val),
                "_shards" => {
                    if let Some(f) = val.get_mut("failures") {
                        entries(f);
                    }
                }
                "_clusters" => {
                    if let Some(Value::Object(d)) = val.get_mut("details") {
                        for c in d.values_mut() {
                            if let Some(f) = c.get_mut("failures") {
                                entries(f);
                            }
                        }
                    }
                }
                "responses" | "response" if depth < MAX_ITEM_DEPTH => match val {
                    Value::Array(a) => a.iter_mut().for_each(|i| reference(i, depth + 1)),
                    other => reference(other, depth + 1),
                },
                _ => {}
            }
        }
    }

    /// Review 16e: the byte scan and the serde tree agree on random answers, with and without
    /// failures, compact and pretty: the rewrite equals the tree's, an answer without failures
    /// is left byte for byte, and no beginning of an answer that reports one is judged clean.
    #[test]
    fn the_scan_agrees_with_the_parsed_tree_on_random_answers() {
        for seed in 1..=150u64 {
            let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let (v, header_first, failing) = g.answer();
            let mut expected = v.clone();
            reference(&mut expected, 0);
            // A failure of a kept type is rewritten to itself: `failing` says one is reported.
            assert!(failing || expected == v, "{seed}: {v}");
            let text = if g.chance(2) {
                serde_json::to_vec(&v).unwrap()
            } else {
                serde_json::to_vec_pretty(&v).unwrap()
            };
            match withhold(&text) {
                None => assert!(!failing, "{seed}: {v}"),
                Some(out) => {
                    assert!(failing, "{seed}");
                    let got: Value = serde_json::from_slice(&out).unwrap();
                    assert_eq!(got, expected, "{seed}");
                }
            }
            for n in 0..=text.len() {
                let verdict = peek(&text[..n], header_first);
                assert!(
                    !(failing && verdict == Peek::Clean),
                    "{seed}: {} judged clean",
                    String::from_utf8_lossy(&text[..n])
                );
            }
            let items = v.get("responses").is_some() || v.get("response").is_some();
            if !failing && !items {
                assert_eq!(peek(&text, header_first), Peek::Clean, "{seed}");
            }
        }
    }

    /// perf23c: a verdict [`peek_beginning`] gives on a beginning is [`peek`]'s on that
    /// beginning and on every longer one, the whole answer too (a compressed answer is judged
    /// from steps of its decoding and stops at the first verdict); only an object closed at
    /// the end of what was read is left undecided.
    #[test]
    fn a_beginning_is_judged_as_every_longer_one() {
        for seed in 1..=150u64 {
            let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let (v, header_first, _) = g.answer();
            let mut text = if g.chance(2) {
                serde_json::to_vec(&v).unwrap()
            } else {
                serde_json::to_vec_pretty(&v).unwrap()
            };
            if g.chance(3) {
                // Bytes after the answer's object (attack17d: where the scan closed it early).
                text.extend_from_slice(br#" ,"shard_failures":[{"reason":{"type":"x"}}]}"#);
            }
            let whole = peek(&text, header_first);
            for n in 0..=text.len() {
                let verdict = peek_beginning(&text[..n], header_first);
                if verdict == Peek::Undecided {
                    continue;
                }
                let longer = n + (g.next() as usize) % (text.len() - n + 1);
                assert_eq!(verdict, peek(&text[..n], header_first), "{seed}: {n}");
                assert_eq!(verdict, peek(&text[..longer], header_first), "{seed}: {n}");
                assert_eq!(verdict, whole, "{seed}: {n}");
            }
        }
        for header_first in [true, false] {
            assert_eq!(peek(b"{\"took\":1}", header_first), Peek::Clean);
            assert_eq!(peek(b"{\"took\":1} x", header_first), Peek::Reports);
            assert_eq!(
                peek_beginning(b"{\"took\":1}", header_first),
                Peek::Undecided
            );
            assert_eq!(
                peek_beginning(b"{\"took\":1} x", header_first),
                Peek::Reports
            );
        }
    }

    /// An answer esgate always reads whole is one whose route is judged at all.
    #[test]
    fn routes_judged_whole_are_watched() {
        assert!(judged_whole("msearch"));
        for action in [
            "msearch",
            "search",
            "count",
            "field_caps",
            "eql",
            "bulk",
            "get",
        ] {
            assert!(
                !judged_whole(action) || watched(action).is_some(),
                "{action}"
            );
        }
        assert_eq!(peek(br#"{"took":1,"responses":[{"#, true), Peek::Reports);
    }

    /// Review 16e: an answer cut short (a connection that ended it early, no length to check
    /// it by) is refused whole, not sent as it came with the failure it was cut inside.
    #[test]
    fn an_answer_cut_short_is_refused_not_sent_as_it_came() {
        let failing = search_with(BREAKER);
        let b = failing.as_bytes();
        let inside = failing.find("real usage").unwrap();
        assert_eq!(withhold_whole(&b[..inside]), Err(Unjudged::CutShort));
        assert_eq!(withhold(&b[..inside]), None);
        for n in 1..b.len() {
            assert_eq!(withhold_whole(&b[..n]), Err(Unjudged::CutShort), "{n}");
        }
        assert!(withhold_whole(b).unwrap().is_some());
        assert_eq!(withhold_whole(b""), Ok(None));
        assert_eq!(withhold_whole(b" \n"), Ok(None));
        assert_eq!(withhold_whole(b"<html>"), Ok(None));
    }

    /// attack27b (L): Elasticsearch counts a parse error's place in the body esgate forwarded,
    /// where the token's filter clauses come first, so the column of the same mistake moved
    /// with the length of the token's filters. Two such answers, as Elasticsearch writes them
    /// for tokens whose filters differ in length, reach the client as the same bytes; the
    /// reasons keep their words.
    #[test]
    fn parse_errors_do_not_tell_where_in_the_forwarded_body() {
        let answer = |col: u32| {
            format!(
                r#"{{"error":{{"root_cause":[{{"type":"x_content_parse_exception","reason":"[1:{col}] [match] failed to parse field [boost]"}}],"type":"x_content_parse_exception","reason":"[1:{col}] [bool] failed to parse field [must]","caused_by":{{"type":"x_content_parse_exception","reason":"[1:{col}] [match] failed to parse field [boost]","caused_by":{{"type":"json_parse_exception","reason":"Numeric value (99999999999) out of range of int (-2147483648 - 2147483647)\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 1, column: {col}]"}}}}}},"status":400}}"#
            )
        };
        let unknown = |col: u32| {
            format!(
                r#"{{"error":{{"root_cause":[{{"type":"parsing_exception","reason":"unknown query [nope]","line":1,"col":{col}}}],"type":"parsing_exception","reason":"unknown query [nope]","line":1,"col":{col},"caused_by":{{"type":"parsing_exception","reason":"[2:{col}] unknown field [nope]"}}}},"status":400}}"#
            )
        };
        for shape in [answer, unknown] {
            let (short, long) = (shape(98), shape(1321));
            assert_eq!(peek(short.as_bytes(), true), Peek::Reports);
            let (a, b) = (
                withhold(short.as_bytes()).expect("a kept error is rewritten"),
                withhold(long.as_bytes()).expect("a kept error is rewritten"),
            );
            assert_eq!(a, b, "{}", String::from_utf8_lossy(&a));
            let v: Value = serde_json::from_slice(&a).unwrap();
            let text = v.to_string();
            assert!(!text.contains("98") && !text.contains("col"), "{text}");
            assert!(
                v["error"]["reason"]
                    .as_str()
                    .is_some_and(|r| !r.starts_with('[') || r.starts_with("[bool]")),
                "{text}"
            );
        }
        let out: Value = serde_json::from_slice(&withhold(answer(98).as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out["error"]["reason"],
            "[bool] failed to parse field [must]"
        );
        assert_eq!(
            out["error"]["caused_by"]["caused_by"]["reason"],
            "Numeric value (99999999999) out of range of int (-2147483648 - 2147483647)"
        );
        // Before Jackson 2.16 the location quotes the body's beginning: the token's filters.
        let quoted = r#"Numeric value (99999999999) out of range of int (-2147483648 - 2147483647)
 at [Source: (byte[])"{"query":{"bool":{"filter":[{"term":{"tenant":{"value":"a"}}}],"must":[{"match":{"m":{"query":"x","boost":99999999999}}}]}}}"; line: 1, column: 98]"#;
        assert_eq!(
            cut_positions(quoted).as_deref(),
            Some("Numeric value (99999999999) out of range of int (-2147483648 - 2147483647)")
        );
        // What is not a place stays: a value in brackets, a client's own SQL position.
        assert_eq!(cut_positions("failed to parse [12:30pm] [1:x]"), None);
        assert_eq!(cut_positions("[3:7] x [1:2]").as_deref(), Some("x "));
    }

    /// attack27c (L): Elasticsearch 5 and 6 name a query that fails to build on a shard as
    /// `query_shard_exception` "failed to create query: {}" with the whole query printed in it
    /// (`QueryShardContext::toQuery`, the builder's pretty JSON), the token's filter clauses
    /// first. Answers for tokens whose filters differ reach the client as the same bytes, in a
    /// 400's `root_cause` and `failed_shards`, a 200's shard failures and a withheld error's
    /// `caused_by`; the type, the words and the cause stay. From 7 on the cause's message
    /// follows the words, the client's own, kept.
    #[test]
    fn a_shard_query_failure_does_not_quote_the_forwarded_query() {
        let qse = |tenant: &str| {
            let query = format!(
                "{{\n  \"bool\" : {{\n    \"filter\" : [\n      {{\n        \"term\" : {{\n          \"tenant\" : {{\n            \"value\" : \"{tenant}\",\n            \"boost\" : 1.0\n          }}\n        }}\n      }}\n    ],\n    \"must\" : [\n      {{\n        \"term\" : {{\n          \"n\" : {{\n            \"value\" : \"abc\",\n            \"boost\" : 1.0\n          }}\n        }}\n      }}\n    ],\n    \"adjust_pure_negative\" : true,\n    \"boost\" : 1.0\n  }}\n}}"
            );
            json!({
                "type": "query_shard_exception",
                "reason": format!("failed to create query: {query}"),
                "index_uuid": "kTGf1pAyS2qW7XlHd3bMxA",
                "index": "logs-a",
                "caused_by": {"type": "number_format_exception", "reason": "For input string: \"abc\""}
            })
        };
        let answers = |tenant: &str| {
            let e = qse(tenant);
            [
                json!({"error": {"root_cause": [e.clone()], "type": "search_phase_execution_exception",
                    "reason": "all shards failed", "phase": "query", "grouped": true,
                    "failed_shards": [{"shard": 0, "index": "logs-a", "node": "n1", "reason": e.clone()}]},
                    "status": 400}),
                serde_json::from_str(&search_with(&e.to_string())).unwrap(),
                json!({"error": {"type": "remote_transport_exception", "reason": "[n1][10.0.0.7:9300]",
                    "caused_by": e}, "status": 400}),
            ]
        };
        for (short, long) in answers("a")
            .iter()
            .zip(answers("tenant-with-a-longer-name"))
        {
            let (short, long) = (short.to_string(), long.to_string());
            let text = |a: &str| String::from_utf8(withhold(a.as_bytes()).unwrap()).unwrap();
            let text_of_long = text(&long);
            let text = text(&short);
            assert_eq!(text, text_of_long);
            assert!(!text.contains("tenant") && !text.contains("bool"), "{text}");
            assert_eq!(
                text.matches(r#""reason":"failed to create query""#).count(),
                { short.matches("failed to create query").count() }
            );
            assert!(text.contains(r#""type":"query_shard_exception""#), "{text}");
            assert!(text.contains(r#"For input string: \"abc\""#), "{text}");
        }
        // The words alone, another cause's message or an object not after them: kept.
        for kept in [
            "failed to create query",
            "failed to create query: For input string: \"{abc\"",
            "[bool] failed to parse field [must] {",
        ] {
            assert_eq!(forwarded_query_at(kept), None, "{kept}");
        }
        assert_eq!(
            forwarded_query_at("x failed to create query: y; failed to create query:{\"bool\""),
            Some(51)
        );
    }

    #[test]
    fn the_kept_list_is_sorted_and_context_ids_are_withheld() {
        assert!(KEPT.windows(2).all(|w| w[0] < w[1]));
        let body = br#"{"error":{"root_cause":[{"type":"search_context_missing_exception","reason":"No search context found for id [4711]"}],"type":"search_phase_execution_exception","reason":"all shards failed","phase":"query","grouped":true,"failed_shards":[{"shard":-1,"index":null,"reason":{"type":"search_context_missing_exception","reason":"No search context found for id [4711]"}}],"caused_by":{"type":"search_context_missing_exception","reason":"No search context found for id [4711]"}},"status":404}"#;
        let out = String::from_utf8(withhold(body).unwrap()).unwrap();
        assert!(!out.contains("4711"), "{out}");
        let sql = br#"{"error":{"root_cause":[{"type":"verification_exception","reason":"Found 1 problem\nline 1:8: Unknown column [x]"}],"type":"verification_exception","reason":"Found 1 problem\nline 1:8: Unknown column [x]"},"status":400}"#;
        let out = withhold(sql).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            serde_json::from_slice::<Value>(sql).unwrap()
        );
    }

    #[test]
    fn answers_without_failures_are_decided_from_their_header() {
        let clean = r#"{"took":3,"timed_out":false,"_shards":{"total":2,"successful":2,"skipped":0,"failed":0},"hits":{"hits":[{"_source":{"error":{"reason":"#;
        assert_eq!(peek(clean.as_bytes(), true), Peek::Clean);
        assert_eq!(peek(&clean.as_bytes()[..30], true), Peek::Undecided);
        assert_eq!(
            peek(
                b"{\"count\":3,\"_shards\":{\"total\":1,\"successful\":1,\"skipped\":0,\"failed\":0}}",
                true
            ),
            Peek::Clean
        );
        assert_eq!(peek(b"not json", true), Peek::Clean);
        assert_eq!(peek(b"", true), Peek::Undecided);
        assert_eq!(withhold(clean.as_bytes()), None);
        let failing = search_with(BREAKER);
        // Every prefix is undecided or reports: none is judged clean.
        for n in 0..failing.len() {
            assert_ne!(peek(&failing.as_bytes()[..n], true), Peek::Clean, "{n}");
        }
        // The fast path agrees with the scan on every prefix of both answers, and on forms it
        // leaves to the scan.
        for answer in [clean.to_owned(), failing.clone()] {
            for n in 0..answer.len() {
                let prefix = &answer.as_bytes()[..n];
                if flat_header(prefix) {
                    let mut scan = Scan::new(prefix);
                    scan.header_first = true;
                    let done = scan.top(0);
                    assert!(scan.spans.is_empty() && !scan.items, "{n}");
                    assert!(matches!(done, Err(Stop::Decided)), "{n}");
                }
            }
        }
        for text in [
            r#"{"responses":[{"_shards":{"failed":0}}]}"#,
            r#"{"took":1,"x":{"_shards":{"failed":0}}}"#,
            r#"{"_shards":{"failures":[{"reason":{}}]}}"#,
            r#"{"_shards":{"failed":0"#,
            r#"{"_shards":{"x":"}","failures":[{"reason":{}}]}}"#,
        ] {
            assert!(!flat_header(text.as_bytes()), "{text}");
        }
        assert!(flat_header(br#" {"took":1,"_shards":{"failed":0},"hits""#));
        // Split anywhere inside a number or literal, a prefix is not mistaken for a whole.
        assert_eq!(peek(b"{\"took\":12", true), Peek::Undecided);
        // A `filter_path` without `_shards`: the hits begin, no failure can follow.
        assert_eq!(
            peek(br#"{"hits":{"hits":[{"_source":{"a""#, true),
            Peek::Clean
        );
        // EQL writes its shard failures after its hits: only the whole answer decides.
        let eql = format!(
            r#"{{"is_partial":true,"hits":{{"events":[]}},"shard_failures":[{{"shard":0,"reason":{BREAKER}}}]}}"#
        );
        assert_eq!(peek(&eql.as_bytes()[..30], false), Peek::Undecided);
        assert_eq!(peek(eql.as_bytes(), false), Peek::Reports);
        assert!(!String::from_utf8(withhold(eql.as_bytes()).unwrap())
            .unwrap()
            .contains("real usage"));
        assert_eq!(peek(b"{\"timed_out\":fals", true), Peek::Undecided);
    }
}
