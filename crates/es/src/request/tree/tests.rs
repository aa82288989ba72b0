//! Differential tests: [`parse`] and [`write`] against `body::parse_strict` and serde_json's
//! writer on the bodies of `tests/data`, hand-picked edge cases and random and mutated inputs
//! (issue 10: a cheaper parser must accept and refuse exactly what the old one did).

use std::cell::Cell;

use serde_json::Value;

use super::*;
use crate::request::body::parse_strict;

thread_local! {
    /// Set: [`write()`] ignores containers' source text and writes every item (this thread
    /// only): the reference the source text is held to, here and in the request-path tests.
    pub(crate) static SPANS_OFF: Cell<bool> = const { Cell::new(false) };
}

fn corpus() -> Vec<String> {
    crate::testing::corpus_texts()
}

/// A container's source text (a parsed one's, if it kept it) and its children, however it is
/// held; `None` for a scalar.
fn parts<'n>(n: &'n Node<'_>) -> Option<(Option<&'n [u8]>, Vec<Node<'n>>)> {
    match n {
        Node::Array(items) => Some((None, items.iter().map(Node::reborrow).collect())),
        Node::Object(entries) => Some((None, entries.iter().map(|(_, v)| v.reborrow()).collect())),
        Node::Parsed(p) if p.is_object() => {
            Some((p.raw(), p.entries().map(|(_, v)| v.node()).collect()))
        }
        Node::Parsed(p) => Some((p.raw(), p.items().collect())),
        _ => None,
    }
}

/// The value under `key` of a parsed object.
fn get<'a>(p: Parsed<'a>, key: &str) -> Option<Parsed<'a>> {
    p.entries().find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn only_integers(n: &Node<'_>) -> bool {
    match (n, parts(n)) {
        (Node::Number(t), _) => (t.parse::<i64>().is_ok() || t.parse::<u64>().is_ok()) && t != "-0",
        (_, Some((_, children))) => children.iter().all(only_integers),
        _ => true,
    }
}

/// `node` written item by item, every container's source text ignored.
fn written_without_spans(node: &Node<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_node::<false, _>(node, &mut out, &mut Verbatim);
    out
}

/// `json` without the JSON whitespace (space, tab, LF, CR) outside its strings: a kept source
/// text so squeezed is the writer's bytes (session 29). Strings are told by their quotes, an
/// escaped quote (after an odd run of backslashes) not ending one.
pub(crate) fn squeezed(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut inside, mut escaped) = (false, false);
    for &b in json {
        if inside {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => inside = false,
                _ => escaped = false,
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else if b == b'"' {
            inside = true;
        }
        out.push(b);
    }
    out
}

/// Whether `json` holds no JSON whitespace outside its strings (a compact text).
pub(crate) fn is_compact(json: &[u8]) -> bool {
    squeezed(json).len() == json.len()
}

/// `text` (a kept source text, or a body written from them) is what the writer writes
/// (`written`) but for JSON whitespace between tokens: the same bytes squeezed, the very same
/// bytes when it has no whitespace, and (so that no whitespace stands inside a token, `tr ue`
/// or `1 2` squeezed into one) JSON that serde_json parses to `written`'s value.
pub(crate) fn writes_as(text: &[u8], written: &[u8], shown: &str) {
    assert_eq!(
        String::from_utf8_lossy(&squeezed(text)),
        String::from_utf8_lossy(written),
        "{shown}"
    );
    if is_compact(text) {
        assert_eq!(text, written, "{shown}");
    } else {
        let a: Value = serde_json::from_slice(text).unwrap_or_else(|e| panic!("{e}: {shown}"));
        let b: Value = serde_json::from_slice(written).unwrap_or_else(|e| panic!("{e}: {shown}"));
        assert_eq!(a, b, "{shown}");
    }
}

/// Every container of `node` that kept its source text kept what the writer writes for it but
/// for whitespace between tokens ([`writes_as`]: byte for byte in a compact body), and no
/// escape; [`write()`] writes the same as the writer without source text, so compared.
fn spans_are_what_the_writer_writes(node: &Node<'_>, shown: &str) {
    fn walk(n: &Node<'_>, shown: &str) {
        let Some((raw, children)) = parts(n) else {
            return;
        };
        if let Some(raw) = raw {
            writes_as(raw, &written_without_spans(n), shown);
            assert!(!raw.contains(&b'\\'), "{shown}");
        }
        children.iter().for_each(|c| walk(c, shown));
    }
    walk(node, shown);
    let mut out = Vec::new();
    write(node, &mut out);
    writes_as(&out, &written_without_spans(node), shown);
}

/// The containers of `node` in pre-order: whether each kept its source text.
fn spans(node: &Node<'_>) -> Vec<bool> {
    fn walk(n: &Node<'_>, out: &mut Vec<bool>) {
        if let Some((raw, children)) = parts(n) {
            out.push(raw.is_some());
            children.iter().for_each(|c| walk(c, out));
        }
    }
    let mut out = Vec::new();
    walk(node, &mut out);
    out
}

/// Every container of a parsed value is read whole: its items' tokens are exactly its own
/// size, and the walk yields exactly its count of items (the checks read the tape and the writer
/// may copy the source text, so a walk that stopped early would let unchecked text through).
fn tape_is_whole(t: Tokens<'_>, shown: &str) {
    if let Some(Tok::Strings(text, len)) = t.0.first().copied() {
        return strings_are_whole(t, text, len, shown);
    }
    let Some(Tok::Array(span) | Tok::Object(span)) = t.0.first().copied() else {
        return;
    };
    assert_eq!(t.0.len(), span.size as usize, "{shown}");
    let mut seen = 0;
    if matches!(t.0[0], Tok::Array(_)) {
        // What the parser told of the items, against a walk over them.
        let walked =
            |scalar: fn(&Tok<'_>) -> bool| span.size == span.len + 1 && t.0[1..].iter().all(scalar);
        assert_eq!(
            t.items_all_scalars(),
            walked(|t| !matches!(t, Tok::Array(_) | Tok::Object(_) | Tok::Strings(..))),
            "{shown}"
        );
        assert_eq!(
            t.items_all_strings(),
            walked(|t| matches!(t, Tok::String(_))),
            "{shown}"
        );
        let mut items = t.items();
        while let Some((_, value)) = items.step() {
            tape_is_whole(Tokens(value), shown);
            seen += 1;
        }
        assert!(items.rest.is_empty(), "{shown}");
    } else {
        let mut entries = t.entries();
        while let Some((_, _, value)) = entries.step() {
            tape_is_whole(Tokens(value), shown);
            seen += 1;
        }
        assert!(entries.rest.is_empty(), "{shown}");
    }
    assert_eq!(seen, span.len as usize, "{shown}");
    assert_eq!(seen, t.len(), "{shown}");
}

/// A [`Tok::Strings`] array (`text`, `len` items) is one token, its items are `len` plain
/// strings read from its text, and they are its text again: `[`, each quoted, `,` between
/// them, `]` (an item read short or long, or one left unread, would not give it back).
fn strings_are_whole(t: Tokens<'_>, text: &str, len: u32, shown: &str) {
    assert_eq!(t.0.len(), 1, "{shown}");
    assert_eq!(t.len(), len as usize, "{shown}");
    assert!(t.items_all_scalars() && t.items_all_strings(), "{shown}");
    let mut items = Vec::new();
    for item in t.items() {
        let Item::String(s) = item else {
            panic!("not a string in {shown}");
        };
        assert!(!needs_escape(s.as_bytes()), "{shown}");
        items.push(format!("\"{s}\""));
    }
    assert_eq!(items.len(), len as usize, "{shown}");
    assert_eq!(format!("[{}]", items.join(",")), text, "{shown}");
}

/// The same decision and reason as `parse_strict`; accepted, the same value and, written, the
/// same value again (the same bytes as serde_json's writer when every number is an integer),
/// whether containers are copied from their source text or not.
fn agrees(input: &[u8]) {
    let shown = String::from_utf8_lossy(input);
    let arena = Arena::for_body(input.len());
    match (parse(input, &arena), parse_strict(input)) {
        (Ok(node), Ok(value)) => {
            if let Node::Parsed(p) = node {
                tape_is_whole(p.tokens(), &shown);
            }
            assert_eq!(node.to_value(), value, "{shown}");
            spans_are_what_the_writer_writes(&node, &shown);
            let mut out = Vec::new();
            write(&node, &mut out);
            let back: Value = serde_json::from_slice(&out).expect("written JSON parses");
            assert_eq!(back, value, "{shown}");
            if only_integers(&node) {
                // Byte for byte from a compact body; a spaced one's copied texts keep its
                // whitespace (session 29).
                writes_as(&out, &serde_json::to_vec(&value).unwrap(), &shown);
                if is_compact(input) {
                    assert_eq!(out, serde_json::to_vec(&value).unwrap(), "{shown}");
                }
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{shown}"),
        (a, b) => panic!("{shown}: tree {a:?}, parse_strict {b:?}"),
    }
}

#[test]
fn edge_cases_agree_with_parse_strict() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_obj = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let many_keys = |n: usize, dup: bool| {
        let mut keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
        if dup {
            keys.push("\"k3\":0".into());
        }
        format!("{{{}}}", keys.join(","))
    };
    let cases: Vec<String> = vec![
        "{}".into(),
        "[]".into(),
        " { \"a\" : [ 1 , 2 ] } \n".into(),
        "{\"a\":1,\"a\":2}".into(),
        "{\"a\":{\"b\":1,\"b\":2}}".into(),
        "{\"a\":1,\"a\":2,\"b\":tru}".into(),
        "{\"a\":1,\"b\":tru,\"a\":2}".into(),
        "{\"a\":1} x".into(),
        "{\"a\":1}{}".into(),
        "{\"a\":1,}".into(),
        "[1,]".into(),
        "[,1]".into(),
        "{,}".into(),
        "{\"a\" 1}".into(),
        "{'a':1}".into(),
        "{\"a\":1 // c\n}".into(),
        "/* c */ {}".into(),
        "".into(),
        "   ".into(),
        "nul".into(),
        "null".into(),
        "true".into(),
        "falsey".into(),
        "\"s\"".into(),
        "01".into(),
        "-".into(),
        "-0".into(),
        "-0.0".into(),
        "1.".into(),
        ".5".into(),
        "1e".into(),
        "1e+".into(),
        "1E5".into(),
        "1.5e-3".into(),
        "+1".into(),
        "1e309".into(),
        "-1e309".into(),
        "1e-400".into(),
        "0e999999".into(),
        "18446744073709551615".into(),
        "18446744073709551616".into(),
        "-9223372036854775808".into(),
        "-9223372036854775809".into(),
        format!("1{}", "0".repeat(400)),
        "[1.7976931348623157e308, 2.2250738585072014e-308, 5e-324, 0.1, 3.14159]".into(),
        "NaN".into(),
        "Infinity".into(),
        "\"a\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\\b\\f\\r\"".into(),
        "\"\\ud800\"".into(),
        "\"\\udc00\"".into(),
        "\"\\ud800\\u0041\"".into(),
        "\"\\ud800x\"".into(),
        "\"\\ud800\\n\"".into(),
        "\"\\u12\"".into(),
        "\"\\u12g4\"".into(),
        "\"\\x\"".into(),
        "\"a\tb\"".into(),
        "\"a\u{1f}b\"".into(),
        "\"a\u{7f}b \u{e9} \u{1F600}\"".into(),
        "\"unterminated".into(),
        "\"esc\\".into(),
        "{\"\\u0061\":1,\"a\":2}".into(),
        "{\"a\\u0000b\":\"\\u0001\\u001f\"}".into(),
        deep(64),
        deep(65),
        deep(200),
        deep_obj(64),
        deep_obj(65),
        format!("{}x", deep(65)),
        many_keys(16, false),
        many_keys(17, false),
        many_keys(100, false),
        many_keys(16, true),
        many_keys(100, true),
    ];
    for c in &cases {
        agrees(c.as_bytes());
    }
    for raw in [
        &b"\xef\xbb\xbf{}"[..],
        b"{\"a\":\"\xff\"}",
        b"{\"a\":1,\"a\":2,\"b\":\"\xff\"}",
        b"\xff",
    ] {
        agrees(raw);
    }
}

#[test]
fn the_corpus_and_its_mutations_agree_with_parse_strict() {
    let corpus = corpus();
    assert!(corpus.len() > 1000, "tests/data read: {}", corpus.len());
    for text in &corpus {
        agrees(text.as_bytes());
    }
    // Byte mutations of the corpus: deletions, insertions and replacements of the bytes that
    // matter to JSON's grammar.
    let alphabet = b"{}[]:,\"\\ 0123456789.eE+-aeflnrstu\t\n\x01\x7f\xc3\xa9\xff";
    let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1du64);
    let texts: Vec<&String> = corpus.iter().filter(|t| t.len() < 20_000).collect();
    for round in 0..60_000 {
        let mut bytes = texts[round % texts.len()].as_bytes().to_vec();
        for _ in 0..1 + next() % 2 {
            if bytes.is_empty() {
                break;
            }
            let at = (next() % bytes.len() as u64) as usize;
            let b = alphabet[(next() % alphabet.len() as u64) as usize];
            match next() % 3 {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, b),
                _ => bytes[at] = b,
            }
        }
        agrees(&bytes);
    }
}

#[test]
fn random_short_inputs_agree_with_parse_strict() {
    let alphabet = b"{}[]:,\"\\ 0123456789.eE+-aflnrstu\x01\xc3\xa9";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut s = state;
        let len = (s % 14) as usize;
        let mut input = Vec::with_capacity(len);
        for _ in 0..len {
            s = s.rotate_left(5) ^ 0x5851_f42d_4c95_7f2d;
            s = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
            input.push(alphabet[(s >> 33) as usize % alphabet.len()]);
        }
        agrees(&input);
    }
}

/// Strings without escapes borrow the body; escaped ones are unescaped into the arena (and
/// borrow it: nothing in the arena owns memory).
#[test]
fn strings_without_escapes_borrow_the_body() {
    let body = br#"{"query":{"match":{"message":"caf\u00e9 ok"}},"size":10}"#;
    let arena = Arena::default();
    let node = parse(body, &arena).unwrap();
    let Node::Parsed(root) = node else {
        panic!("object")
    };
    let in_body = |s: &str| body.as_ptr_range().contains(&s.as_ptr());
    assert!(matches!(root.entries().next(), Some(("query", _))));
    assert!(matches!(root.entries().next(), Some((k, _)) if in_body(k)));
    let message = get(root, "query")
        .and_then(|q| get(q, "match"))
        .and_then(|m| get(m, "message"))
        .map(Parsed::node);
    assert!(matches!(
        message,
        Some(Node::String(Cow::Borrowed(s))) if s == "café ok" && !in_body(s)
    ));
    assert_eq!(
        get(root, "size").map(Parsed::node).and_then(|n| n.as_u64()),
        Some(10)
    );
    assert_eq!(Node::from_value(&node.to_value()), node);
}

/// `needs_escape` (the audit log's escape check) is the byte loop the audit log had, for
/// every byte at every place of a word, of a block and of their tails, and for random texts.
#[test]
fn needs_escape_is_the_byte_loop() {
    fn reference(s: &[u8]) -> bool {
        s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
    }
    for len in 0..=35 {
        for at in 0..len {
            for b in 0..=255u8 {
                for fill in [b'a', 0x7f, 0x80, 0xff, 0x20, 0x1f] {
                    let mut s = vec![fill; len];
                    s[at] = b;
                    assert_eq!(needs_escape(&s), reference(&s), "{s:?}");
                }
            }
        }
    }
    let mut rng = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let next = rng();
        let len = (next % 40) as usize;
        let s: Vec<u8> = (0..len)
            .map(|i| {
                let b = (next >> (i % 8 * 8)) as u8;
                if next >> 60 == 0 {
                    b
                } else {
                    b | 0x20
                }
            })
            .collect();
        assert_eq!(needs_escape(&s), reference(&s), "{s:?}");
    }
}

/// The word scan stops where a byte scan does, and tells a quote from the other specials
/// (several specials in one word, quotes above others and others above quotes included).
#[test]
fn the_word_scan_stops_where_a_byte_scan_does() {
    let naive = |s: &[u8], from: usize| {
        (from..s.len())
            .find(|&i| s[i] == b'"' || s[i] == b'\\' || s[i] < 0x20)
            .unwrap_or(s.len())
    };
    let alphabet = b"aZ09 \"\\\x00\x01\x1f\x20\x7f\x80\xc3\xa9\xff!#";
    let mut rng = crate::testing::xorshift(0x1234_5678_9abc_def1);
    for _ in 0..100_000 {
        let state = rng();
        let len = (state % 40) as usize;
        // Mostly plain bytes, a special one now and then, at any offset of a word.
        let bytes: Vec<u8> = (0..len)
            .map(|i| {
                let r = state.rotate_left(i as u32 * 7) ^ (i as u64 * 0x9e37_79b9);
                if r.is_multiple_of(9) {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                } else {
                    b'a' + (r % 26) as u8
                }
            })
            .collect();
        for from in 0..=len {
            let end = naive(&bytes, from);
            let expected = (end, bytes.get(end) == Some(&b'"'));
            assert_eq!(plain_run(&bytes, from), expected, "{bytes:?} {from}");
            assert_eq!(plain_run_words(&bytes, from), expected, "{bytes:?} {from}");
        }
    }
}

/// Where a byte scan from each place of `s` stops, and whether at a quote: the reference
/// of the block and word scans.
fn byte_scan_ends(s: &[u8]) -> Vec<(usize, bool)> {
    let mut ends = vec![(s.len(), false); s.len() + 1];
    for i in (0..s.len()).rev() {
        ends[i] = match s[i] {
            b'"' => (i, true),
            b'\\' | 0..=0x1f => (i, false),
            _ => ends[i + 1],
        };
    }
    ends
}

/// The block scan ([`plain_run`]: SSE2 on x86_64) and the word scan it falls back to
/// ([`plain_run_words`], the whole scan elsewhere) stop where a byte scan does: texts of 0 to
/// 64 bytes (within a block and a word of every edge, and past four blocks), each with every
/// byte value at every position, scanned from every place (the specials and their
/// neighbours) or from the start, the byte and the end (the other bytes), at every alignment in memory
/// and with specials right outside the text (a scan must never see them).
#[test]
fn the_block_scan_stops_where_a_byte_scan_does() {
    let mut buffer = [b'"'; 96];
    for b in 0..=255u8 {
        // Every place for the specials and their neighbours; for the other bytes, the start,
        // the byte, the next and the end.
        let every = b"\x00\x01\n\x1e\x1f !\"#[\\]\x7f\x80\x9f\xa2\xdc\xff".contains(&b);
        for len in 0..=64usize {
            for at in 0..len.max(1) {
                // Every alignment of the text, and of each position within it, comes round.
                let offset = (len + at + usize::from(b)) % 16;
                buffer.fill(if b % 2 == 0 { b'"' } else { b'\\' });
                let s = &mut buffer[offset..offset + len];
                s.fill(b'a' + (b % 26));
                if len > 0 {
                    s[at] = b;
                }
                let s = &buffer[offset..offset + len];
                let ends = byte_scan_ends(s);
                let check = |from: usize| {
                    assert_eq!(plain_run(s, from), ends[from], "{s:?} from {from}");
                    assert_eq!(plain_run_words(s, from), ends[from], "{s:?} from {from}");
                };
                if every {
                    (0..=len).for_each(check);
                } else {
                    [0, at, (at + 1).min(len), len].into_iter().for_each(check);
                }
            }
        }
    }
}

/// Two specials in one text, each of a quote, a backslash and control characters at the
/// bottom and top of the range, at every pair of positions of texts across the block and
/// word edges: the scans find the first and tell whether it is a quote (a quote above
/// another special, and another above a quote).
#[test]
fn the_block_scan_finds_the_first_of_two_specials() {
    let specials = [b'"', b'\\', 0x00, 0x1f];
    for len in [15usize, 16, 17, 31, 32, 33, 40] {
        for first in 0..len {
            for second in first + 1..len {
                for x in specials {
                    for y in specials {
                        let mut s = vec![b'x'; len];
                        s[first] = x;
                        s[second] = y;
                        for (from, expected) in byte_scan_ends(&s).into_iter().enumerate() {
                            assert_eq!(plain_run(&s, from), expected, "{s:?} from {from}");
                            assert_eq!(plain_run_words(&s, from), expected, "{s:?} from {from}");
                        }
                    }
                }
            }
        }
    }
}

/// `write_str` copies and checks words and a shifted last word: every length around a word,
/// every special byte at every position, against serde_json's writer.
#[test]
fn strings_are_written_as_serde_json_writes_them() {
    let specials = [
        "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}", "\u{1f}", "\u{7f}", "é", "😀", "/",
    ];
    for len in 0..40 {
        let plain: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut cases = vec![plain.clone()];
        for at in 0..=len {
            for sp in specials {
                let mut s = plain.clone();
                s.insert_str(at, sp);
                cases.push(s);
            }
        }
        for s in cases {
            let mut out = b"x".to_vec();
            write_str(&s, &mut out);
            assert_eq!(out[1..], serde_json::to_vec(&s).unwrap()[..], "{s:?}");
            let mut out = Vec::new();
            write(
                &Node::object(vec![(
                    Cow::Borrowed(s.as_str()),
                    Node::String(Cow::Borrowed(s.as_str())),
                )]),
                &mut out,
            );
            assert_eq!(
                out,
                serde_json::to_vec(&serde_json::json!({ s.clone(): s })).unwrap(),
                "{s:?}"
            );
        }
    }
}

/// Strings parsed from bodies with escapes (owned) and without (borrowed) are written back as
/// serde_json writes the value `parse_strict` reads, keys too.
#[test]
fn escaped_strings_round_trip_through_parse_and_write() {
    for body in [
        r#"{"a\"b":"c\\d","\u0001":"\u001f\u0000","tab\t":"x\ny","\u00e9\ud83d\ude00":"\/"}"#,
        r#"{"k":"0123456\"","k2":"01234567\\","k3":"012345678\n"}"#,
        r#"["\b\f\r","long string with no escape at all, forty bytes","\u0041\u007f"]"#,
    ] {
        let arena = Arena::default();
        let node = parse(body.as_bytes(), &arena).unwrap();
        let mut out = Vec::new();
        write(&node, &mut out);
        let value = parse_strict(body.as_bytes()).unwrap();
        assert_eq!(out, serde_json::to_vec(&value).unwrap(), "{body}");
    }
}

/// Numbers decided without a parse (no exponent, at most 300 integer digits) and with one, at
/// the i64/u64/f64 edges.
#[test]
fn numbers_at_the_edges_agree_with_parse_strict() {
    let mut cases: Vec<String> = vec![
        "-0".into(),
        "-0.0".into(),
        "0.000".into(),
        "1e400".into(),
        "-1e400".into(),
        "1E+308".into(),
        "1.8e308".into(),
        "1.7976931348623157e308".into(),
        "1.7976931348623159e308".into(),
        "-1.7976931348623159e308".into(),
        "1e-400".into(),
        "123456789012345678".into(),
        "1234567890123456789".into(),
        "12345678901234567890".into(),
        "-123456789012345678".into(),
        "-1234567890123456789".into(),
        "-12345678901234567890".into(),
        "9223372036854775807".into(),
        "9223372036854775808".into(),
        "-9223372036854775808".into(),
        "-9223372036854775809".into(),
        "18446744073709551615".into(),
        "18446744073709551616".into(),
        "-18446744073709551616".into(),
    ];
    for digits in [299, 300, 301, 308, 309, 310, 400] {
        let int = format!("9{}", "0".repeat(digits - 1));
        cases.push(int.clone());
        cases.push(format!("-{int}"));
        cases.push(format!("{int}.5"));
        cases.push(format!("-{int}.99999"));
        cases.push(format!("{int}e0"));
        cases.push(format!("0.{int}"));
    }
    // Just below f64::MAX's overflow threshold (f64::MAX plus half an ulp): Rust's exact
    // parse rounds them to f64::MAX, serde_json's parse (what `parse_strict` refuses by) finds
    // them out of range. Review9: the tree accepted them (its check was `str::parse::<f64>`),
    // so the tree path forwarded searches the serde path refuses, and the checks read these
    // numbers as no number at all (`Num::as_f64`: serde_json's parse).
    let max = "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368";
    for m in [
        "1797693134862315807",
        "1797693134862315808",
        "17976931348623158079",
        "1797693134862315708",
        "17976931348623157",
        "17976931348623158",
        max,
    ] {
        let e = m.len() - 1;
        cases.push(format!("{m}e{}", 308 - e as i32));
        cases.push(format!("{}.{}e308", &m[..1], &m[1..]));
        cases.push(format!("-0.{m}e309"));
        if e <= 308 {
            cases.push(format!("{m}{}", "0".repeat(308 - e)));
            cases.push(format!("-{m}{}.0", "0".repeat(308 - e)));
        }
    }
    for c in &cases {
        agrees(c.as_bytes());
        agrees(format!("{{\"n\":[{c},{c}]}}").as_bytes());
    }
}

/// Arrays around the length where they left the former parser's stack (64), nested in one
/// another and in objects, and objects with many keys: the same values, the same bytes written.
#[test]
fn long_arrays_and_objects_agree_with_parse_strict() {
    const LONG: usize = 64;
    let array = |n: usize, item: &dyn Fn(usize) -> String| {
        format!("[{}]", (0..n).map(item).collect::<Vec<_>>().join(","))
    };
    for n in [
        0,
        1,
        LONG - 1,
        LONG,
        LONG + 1,
        2 * LONG,
        5 * LONG + 3,
        14_000,
    ] {
        let strings = array(n, &|i| format!("\"user-{i:06}\""));
        let nested = array(n, &|i| array(i % (LONG + 2), &|j| j.to_string()));
        let objects = array(n, &|i| {
            format!("{{\"k{i}\":[{i},{{\"a\":[1,2]}}],\"b\":{i}}}")
        });
        let keys = format!(
            "{{{}}}",
            (0..n)
                .map(|i| format!("\"k{i}\":[{i}]"))
                .collect::<Vec<_>>()
                .join(",")
        );
        for body in [strings, nested, objects, keys] {
            agrees(body.as_bytes());
            agrees(format!("{{\"outer\":{body},\"after\":[1,2,3]}}").as_bytes());
            // A refusal deep inside (a duplicate key at the end) after a long array.
            agrees(format!("{{\"a\":{body},\"b\":{{\"x\":1,\"x\":2}}}}").as_bytes());
            agrees(format!("[{body},{body},1,]").as_bytes());
        }
    }
}

/// Bodies that outgrow the parser's first room: more tokens than the tape's first room (a
/// token per [`BYTES_PER_TOKEN`] bytes: arrays of one-digit numbers have one per two), with
/// escaped strings put in the arena between the tape's growths, and more keys open at once than
/// the key stack's first size ([`KEYS`]): the same values, the same bytes written, the same
/// refusals.
#[test]
fn bodies_that_outgrow_the_first_room_agree_with_parse_strict() {
    let join =
        |n: usize, item: &dyn Fn(usize) -> String| (0..n).map(item).collect::<Vec<_>>().join(",");
    for n in [1, 7, 8, 9, 100, 5000] {
        let digits = format!("[{}]", join(n, &|i| (i % 10).to_string()));
        let escaped = format!("[{}]", join(n, &|i| format!("[{},\"e\\n{i}\"]", i % 10)));
        let mut objects = String::from("1");
        for depth in 0..3 {
            objects = format!(
                "{{{},\"z\":{objects}}}",
                join(n.min(KEYS + 5), &|i| format!("\"k{depth}_{i}\":{i}"))
            );
        }
        let mixed = format!("{{\"a\":{digits},\"b\":{objects},\"c\":{escaped}}}");
        let refused = format!("{{\"a\":{digits},\"b\":{{\"x\":1,\"x\":2}}}}");
        for body in [digits, escaped, objects, mixed, refused] {
            agrees(body.as_bytes());
        }
    }
}

/// `reborrow` (the token's clauses in every rewritten body): the same tree, the same bytes
/// written, and every string and number borrowed from the original.
#[test]
fn reborrow_is_the_same_tree_with_borrowed_strings() {
    fn all_borrowed(n: &Node<'_>) -> bool {
        match n {
            Node::Number(t) | Node::String(t) => matches!(t, Cow::Borrowed(_)),
            Node::Array(items) => items.iter().all(all_borrowed),
            Node::Object(entries) => entries
                .iter()
                .all(|(k, v)| matches!(k, Cow::Borrowed(_)) && all_borrowed(v)),
            Node::Null | Node::Bool(_) => true,
            // A parsed value's strings borrow the body or the arena.
            Node::Parsed(_) => true,
        }
    }
    for text in corpus().iter().map(String::as_str).chain([
        r#"{"term":{"tenant":{"value":"a\"b"}}}"#,
        r#"{"terms":{"f":["x","y\n",1.5e3,null,true,{}]}}"#,
    ]) {
        let arena = Arena::default();
        let Ok(parsed) = parse(text.as_bytes(), &arena) else {
            continue;
        };
        let owned = Node::from_value(&parsed.to_value());
        let borrowed = owned.reborrow();
        assert_eq!(borrowed, owned, "{text}");
        assert!(all_borrowed(&borrowed), "{text}");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write(&owned, &mut a);
        write(&borrowed, &mut b);
        assert_eq!(a, b, "{text}");
    }
}

/// Which containers keep their source text (issue 10, goal 6; session 29): exactly those with
/// no escape in any string or key, compact or spaced (whitespace between any tokens: space,
/// tab, LF, CR), whatever their numbers, characters or nesting; written, what the writer
/// writes without source text but for that whitespace (the same bytes for a compact one).
#[test]
fn containers_without_escapes_keep_their_source_text() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_obj = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let cases: Vec<(String, Vec<bool>)> = vec![
        (r#"{"a":[1,{}],"b":"x"}"#.into(), vec![true, true, true]),
        (r#"{"a":[1, {}],"b":"x"}"#.into(), vec![true, true, true]),
        (r#"{"a":[1,{ }],"b":"x"}"#.into(), vec![true, true, true]),
        ("{\"a\":[1,{}]\n}".into(), vec![true, true, true]),
        ("{\"a\":[1,{}],\t\"b\":[]}".into(), vec![true, true, true, true]),
        (" \r\n{\"a\":[1,{}]}\n ".into(), vec![true, true, true]),
        (
            "{ \"a\" : [ 1 , { } ] ,\r\n\t\"b\" :\n\"x\" , \"c\":[ \"d\" , \"e\" ] }".into(),
            vec![true, true, true, true],
        ),
        (r#"{"a\n":[1,{}]}"#.into(), vec![false, true, true]),
        (r#"{"a":["\u00e9"],"b":{}}"#.into(), vec![false, false, true]),
        (r#"{"a":{"b":"\/"},"c":{"d":"x/y"}}"#.into(), vec![false, false, true]),
        (r#"{"a":{"b":"\\"},"c":["\""]}"#.into(), vec![false, false, false]),
        // Escapes in a spaced body: the containers around them keep no text, the others do.
        (
            "{\n  \"a\": [1, \"\\u00e9\"],\n  \"b\": {\"c\": [2, 3]}\n}".into(),
            vec![false, false, true, true],
        ),
        ("{\"a\":[\"é😀\",\"a\u{7f}b\"],\"b\":{\"ü\":\"日本\"}}".into(), vec![true, true, true]),
        ("{\"a\": [\"é😀\", \"a\u{7f}b\"], \"b\": {\"ü\": \"日 本\"}}".into(), vec![true, true, true]),
        (
            r#"[1.5e3,-0,1E+2,0.000,-1.7976931348623157e308,5e-324,18446744073709551616,-9223372036854775809,1e-400]"#.into(),
            vec![true],
        ),
        (r#"[1.5e3 , -0,	1E+2 ,0.000]"#.into(), vec![true]),
        (format!("[{},0.{}]", "9".repeat(300), "9".repeat(400)), vec![true]),
        ("[true,false,null,\"\",[],{}]".into(), vec![true, true, true]),
        ("[ true , false , null , \"\" , [ ] , { } ]".into(), vec![true, true, true]),
        ("[[[[]]],{\"a\":{\"b\":{}}}]".into(), vec![true; 7]),
        ("[[[[ ]]],{\"a\":{\"b\":{}}}]".into(), vec![true; 7]),
        (deep(64), vec![true; 64]),
        (deep_obj(64), vec![true; 64]),
        (format!("{}[ ]{}", "[".repeat(63), "]".repeat(63)), vec![true; 64]),
        (format!("{}[\"\\t\"]{}", "[ ".repeat(63), " ]".repeat(63)), vec![false; 64]),
        ("{}".into(), vec![true]),
        ("[]".into(), vec![true]),
        ("{ }".into(), vec![true]),
        ("[\n]".into(), vec![true]),
        ("\"s\"".into(), vec![]),
    ];
    for (body, expected) in &cases {
        let arena = Arena::default();
        let node = parse(body.as_bytes(), &arena).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(&spans(&node), expected, "{body}");
        spans_are_what_the_writer_writes(&node, body);
        agrees(body.as_bytes());
        let mut out = Vec::new();
        write(&node, &mut out);
        // A body whose top container keeps its text is written back as the client sent it
        // (without the whitespace around it): a compact one is its own canonical form, a
        // spaced one is sent spaced.
        if expected.first() == Some(&true) {
            assert_eq!(String::from_utf8_lossy(&out), body.trim(), "{body}");
        }
    }
}

/// Session 29: a spaced (pretty-printed) body keeps its containers' text until a rewrite opens
/// one: the opened containers are written by the writer (compact, the change in), never as
/// their old text, and the untouched ones inside them as the client spaced them.
#[test]
fn a_spaced_container_opened_by_a_rewrite_loses_its_text() {
    let body = "{\n  \"query\": {\n    \"match\": {\"m\": \"x\"}\n  },\n  \"aggs\": {\"a\": {\"terms\": {\"field\": \"f\", \"size\": 5}}}\n}";
    let arena = Arena::default();
    let mut node = parse(body.as_bytes(), &arena).unwrap();
    assert_eq!(spans(&node), vec![true; 6]);
    let mut out = Vec::new();
    write(&node, &mut out);
    assert_eq!(String::from_utf8_lossy(&out), body);
    node.open();
    let Node::Object(top) = &mut node else {
        panic!("object")
    };
    let query = &mut top.make_mut()[0].1;
    query.open();
    let Node::Object(q) = query else {
        panic!("query")
    };
    q.make_mut()[0].1 = Node::object(vec![(Cow::Borrowed("term"), Node::Null)]);
    let mut out = Vec::new();
    write(&node, &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "{\"query\":{\"match\":{\"term\":null}},\"aggs\":{\"a\": {\"terms\": {\"field\": \"f\", \"size\": 5}}}}"
    );
    assert_eq!(spans(&node), vec![false, false, false, true, true, true]);
    spans_are_what_the_writer_writes(&node, body);
    // Opened and left as it was: still written by the writer, compact.
    let arena = Arena::default();
    let mut node = parse(body.as_bytes(), &arena).unwrap();
    node.open();
    let mut out = Vec::new();
    write(&node, &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "{\"query\":{\n    \"match\": {\"m\": \"x\"}\n  },\"aggs\":{\"a\": {\"terms\": {\"field\": \"f\", \"size\": 5}}}}"
    );
}

/// A change deep inside a compact body, made through `open` at every level: every container
/// above it becomes a built one without source text and the edit is written (with a leak, the
/// root's text would be written and the edit lost); untouched siblings keep theirs, also when
/// moved.
#[test]
fn a_deep_change_is_written_and_untouched_siblings_keep_their_text() {
    fn opened<'n, 'a>(n: &'n mut Node<'a>) -> &'n mut Node<'a> {
        n.open();
        n
    }
    let body = r#"{"a":{"b":[1,{"c":"x","k":[2]}],"d":[2]},"e":{"f":{}}}"#;
    let arena = Arena::default();
    let mut node = parse(body.as_bytes(), &arena).unwrap();
    assert_eq!(spans(&node), vec![true; 8]);
    let Node::Object(root) = opened(&mut node) else {
        panic!("object")
    };
    let Node::Object(a) = opened(&mut root.make_mut()[0].1) else {
        panic!("a")
    };
    let Node::Array(b) = opened(&mut a.make_mut()[0].1) else {
        panic!("b")
    };
    let Node::Object(c) = opened(&mut b.make_mut()[1]) else {
        panic!("c")
    };
    c.make_mut()[0].1 = Node::String(Cow::Borrowed("y"));
    let mut out = Vec::new();
    write(&node, &mut out);
    let edited = r#"{"a":{"b":[1,{"c":"y","k":[2]}],"d":[2]},"e":{"f":{}}}"#;
    assert_eq!(String::from_utf8_lossy(&out), edited);
    // root, a, b, c lost their text; k, d, e and f kept it.
    assert_eq!(
        spans(&node),
        vec![false, false, false, false, true, true, true, true]
    );
    spans_are_what_the_writer_writes(&node, edited);

    // `open` drops the text even when nothing is changed after all.
    let arena = Arena::default();
    let mut node = parse(body.as_bytes(), &arena).unwrap();
    node.open();
    assert!(!spans(&node)[0]);

    // Untouched subtrees moved into a built container keep their text; the built one has none.
    let arena = Arena::default();
    let mut entries = parse(body.as_bytes(), &arena)
        .unwrap()
        .into_entries()
        .expect("object");
    entries.reverse();
    let moved = Node::object(vec![(
        Cow::Borrowed("wrapped"),
        Node::array(vec![Node::object(entries)]),
    )]);
    assert_eq!(spans(&moved), [vec![false; 3], vec![true; 7]].concat());
    let mut out = Vec::new();
    write(&moved, &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        r#"{"wrapped":[{"e":{"f":{}},"a":{"b":[1,{"c":"x","k":[2]}],"d":[2]}}]}"#
    );
    spans_are_what_the_writer_writes(&moved, body);

    // `reborrow` keeps the text (the same items); `from_value` has none.
    let arena = Arena::default();
    let node = parse(body.as_bytes(), &arena).unwrap();
    assert_eq!(spans(&node.reborrow()), vec![true; 8]);
    assert_eq!(spans(&Node::from_value(&node.to_value())), vec![false; 8]);
}

/// [`write_from`] against the writer without source text: the top level of every object of the
/// corpus (and of hand-picked ones: spaced, escaped, every kind of scalar) opened and written
/// as it is, its entries reversed, rotated, one removed the serde way, a built one added, its
/// values moved under other keys, some replaced by owned copies, and entries of another body
/// of the same buffer (an `_msearch` line's neighbour) put among them: byte for byte the same,
/// whatever of it stands in the source, when both bodies are compact; else the same but for
/// the whitespace of the spaced texts copied ([`writes_as`]).
#[test]
fn source_text_writes_as_the_writer() {
    let picked = [
        r#"{"a":1,"b":"x","c":true,"d":null,"e":[1],"f":{"g":false},"h":false,"i":-0.5e+3}"#,
        r#"{"a": 1,"b" :"x", "c":true ,"d":[1, 2],"e":{"f" : 1},"g":"y"}"#,
        r#"{"":"","a\"b":"c\\d","\u0041":"\u0042","e":"\n","k":"é","l":[""],"m":{}}"#,
        r#"{"query":{"match_all":{}},"size":0,"sort":["a"],"track_total_hits":true}"#,
        r#"{"a":{"b":1}}"#,
        r#"{}"#,
    ];
    let mut texts: Vec<String> = picked.iter().map(|t| t.to_string()).collect();
    texts.extend(corpus().into_iter().filter(|t| t.starts_with('{')));
    let mut checked = 0;
    for (n, text) in texts.iter().enumerate() {
        // The body beside another one in one buffer, as an `_msearch` body line is.
        let other = &texts[(n + 1) % texts.len()];
        let buffer = format!("{text}\n{other}\n");
        let (source, neighbour) = buffer.as_bytes().split_at(text.len());
        let neighbour = &neighbour[1..neighbour.len() - 1];
        let arena = Arena::default();
        let Ok(tree) = parse(source, &arena) else {
            continue;
        };
        let Some(entries) = tree.into_entries() else {
            continue;
        };
        let theirs = parse(neighbour, &arena)
            .ok()
            .and_then(Node::into_entries)
            .unwrap_or_default();
        let mut edits: Vec<Vec<(Cow<'_, str>, Node<'_>)>> = vec![entries.clone()];
        let mut reversed = entries.clone();
        reversed.reverse();
        edits.push(reversed);
        for by in 1..entries.len().min(4) {
            let mut rotated = entries.clone();
            rotated.rotate_left(by);
            edits.push(rotated);
        }
        for i in 0..entries.len().min(3) {
            let mut removed = entries.clone();
            removed.swap_remove(i);
            removed.push((Cow::Borrowed("query"), Node::object(Vec::new())));
            edits.push(removed);
        }
        let owned = entries
            .iter()
            .enumerate()
            .map(|(i, (k, v))| match i % 3 {
                0 => (Cow::Owned(k.to_string()), v.clone()),
                1 => (k.clone(), Node::from_value(&v.to_value())),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        edits.push(owned);
        // Each key with the next entry's value (a value moved under another key).
        let values: Vec<Node<'_>> = entries.iter().map(|(_, v)| v.clone()).collect();
        let moved = entries
            .iter()
            .zip(values.iter().cycle().skip(1))
            .map(|((k, _), v)| (k.clone(), v.clone()))
            .collect();
        edits.push(moved);
        let mut mixed = entries.clone();
        for (i, entry) in theirs.into_iter().enumerate().take(4) {
            mixed.insert((2 * i).min(mixed.len()), entry);
        }
        edits.push(mixed);
        // Both bodies compact: byte for byte the writer's (session 29: else the same but for
        // the whitespace the spaced texts copied hold).
        let compact = is_compact(source) && is_compact(neighbour);
        for edit in edits {
            let node = Node::object(edit);
            let mut out = Vec::new();
            write_from(&node, source, &mut out);
            writes_as(&out, &written_without_spans(&node), text);
            if compact {
                assert_eq!(out, written_without_spans(&node), "{text}");
            }
            // Session 20: with its source texts as spans, whatever their least length, the
            // same bytes joined.
            for min in [1, 9, 64, crate::SPAN_MIN] {
                assert_eq!(
                    String::from_utf8_lossy(&joined_spans(&node, source, min)),
                    String::from_utf8_lossy(&out),
                    "{min} {text}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 5000, "{checked}");
    // Not an object: as `write`.
    let arena = Arena::default();
    let array = parse(b"[1,{\"a\":2}]", &arena).unwrap();
    let mut out = Vec::new();
    write_from(&array, b"[1,{\"a\":2}]", &mut out);
    assert_eq!(out, b"[1,{\"a\":2}]");
}

/// [`write_from_spans`]'s text with its spans of `source` joined in ([`ForwardBody::joined`]).
///
/// [`ForwardBody::joined`]: crate::ForwardBody::joined
fn joined_spans(node: &Node<'_>, source: &[u8], min: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let spans = write_from_spans(node, source, min, &mut out);
    assert!(spans.iter().all(|s| s.len >= min), "{spans:?}");
    let mut body = crate::ForwardBody::new(out, "application/json");
    body.spans = spans;
    body.joined(source)
        .expect("spans within the source, in order")
}

/// [`write_from_spans`] takes as spans exactly the source texts the writer copies (a parsed
/// container's kept text, a run of top-level entries) of the least length or more, nothing of
/// esgate's own (the token's shared clauses), and joins back to [`write_from`]'s bytes: a
/// compact body, a spaced one (its containers' spaced texts are spans too, session 29), one of
/// escapes and unicode, and a container beside a built one.
#[test]
fn spans_are_the_source_texts_the_writer_copies() {
    let compact = r#"{"query":{"terms":{"user.id":["a","b","c"]}},"size":10,"sort":["x"]}"#;
    let arena = Arena::default();
    let tree = parse(compact.as_bytes(), &arena).unwrap();
    let mut entries = tree.into_entries().unwrap();
    let clauses = SharedArray::new(vec![Node::from_value(
        &serde_json::json!({"term": {"t": "a"}}),
    )]);
    entries.insert(1, (Cow::Borrowed("filter"), clauses.array()));
    let node = Node::object(entries);
    let mut own = Vec::new();
    let spans = write_from_spans(&node, compact.as_bytes(), 8, &mut own);
    let texts: Vec<&str> = spans
        .iter()
        .map(|s| &compact[s.from..s.from + s.len])
        .collect();
    // The query entry alone (the built clause after it breaks the run), then the run of the
    // two entries that stand side by side.
    assert_eq!(
        texts,
        [
            r#""query":{"terms":{"user.id":["a","b","c"]}}"#,
            r#""size":10,"sort":["x"]"#
        ]
    );
    assert_eq!(
        String::from_utf8_lossy(&own),
        r#"{,"filter":[{"term":{"t":"a"}}],}"#
    );
    assert_eq!(
        joined_spans(&node, compact.as_bytes(), 8),
        written_without_spans(&node)
    );
    // Above the least length: copied, as before.
    let mut whole = Vec::new();
    assert!(write_from_spans(&node, compact.as_bytes(), compact.len(), &mut whole).is_empty());
    assert_eq!(whole, written_without_spans(&node));
    for text in [
        r#"{"query": {"terms": {"user.id": ["a", "b"]}}, "size": 10}"#,
        r#"{"query":{"match":{"m\u00e9ssage":"caf\u00e9 \"x\"\n"}},"size":1}"#,
        r#"{"query":{"match":{"message":"café ünïcödé 😀 \u2028"}},"aggs":{"a":{"terms":{"field":"é"}}}}"#,
    ] {
        let arena = Arena::default();
        let tree = parse(text.as_bytes(), &arena).unwrap();
        let opened = Node::object(tree.clone().into_entries().unwrap());
        for node in [&tree, &opened] {
            let mut whole = Vec::new();
            write_from(node, text.as_bytes(), &mut whole);
            writes_as(&whole, &written_without_spans(node), text);
            for min in [1, 2, 16] {
                assert_eq!(
                    String::from_utf8_lossy(&joined_spans(node, text.as_bytes(), min)),
                    String::from_utf8_lossy(&whole),
                    "{text}"
                );
            }
        }
    }
    // A spaced body's containers keep their text (session 29): the whole body is one span,
    // and opened, its entries' values are, as the client spaced them.
    let spaced = r#"{"query": {"terms": {"user.id": ["a", "b"]}}, "size": 10}"#;
    let arena = Arena::default();
    let tree = parse(spaced.as_bytes(), &arena).unwrap();
    let mut out = Vec::new();
    let spans = write_from_spans(&tree, spaced.as_bytes(), 1, &mut out);
    assert_eq!(out, b"");
    assert_eq!(
        spans,
        [crate::SourceSpan {
            at: 0,
            from: 0,
            len: spaced.len()
        }]
    );
    let opened = Node::object(tree.into_entries().unwrap());
    let mut out = Vec::new();
    let spans = write_from_spans(&opened, spaced.as_bytes(), 8, &mut out);
    let texts: Vec<&str> = spans
        .iter()
        .map(|s| &spaced[s.from..s.from + s.len])
        .collect();
    assert_eq!(
        texts,
        [r#""query": {"terms": {"user.id": ["a", "b"]}}, "size": 10"#]
    );
    assert_eq!(
        String::from_utf8_lossy(&joined_spans(&opened, spaced.as_bytes(), 8)),
        r#"{"query": {"terms": {"user.id": ["a", "b"]}}, "size": 10}"#
    );
}

/// [`entry_source`] finds every entry of a compact object in its source and none of a spaced
/// one's but an entry spelled compactly around a value's kept text (the runs `write_from`
/// copies are taken, not only allowed).
#[test]
fn compact_entries_stand_in_their_source() {
    let arena = Arena::default();
    // Each entry of `text`'s top level: its text in `text` as `entry_source` finds it.
    let sources = |text: &'static str| -> Vec<Option<&'static str>> {
        let entries = parse(text.as_bytes(), &arena)
            .unwrap()
            .into_entries()
            .unwrap();
        entries
            .iter()
            .map(|(k, v)| entry_source(text.as_bytes(), k, v).map(|(s, e)| &text[s..e]))
            .collect()
    };
    let compact = r#"{"a":1,"b":"x","c":true,"d":null,"e":[1],"f":{"g":false},"h":false}"#;
    let expected = [
        r#""a":1"#,
        r#""b":"x""#,
        r#""c":true"#,
        r#""d":null"#,
        r#""e":[1]"#,
        r#""f":{"g":false}"#,
        r#""h":false"#,
    ];
    assert_eq!(sources(compact), expected.map(Some));
    let spaced = r#"{"a": 1,"b" :"x","c": true,"d":[1, 2],"e\n":2,"f":"\t"}"#;
    // Session 29: whitespace after the colon, and a value's kept (spaced) text, are taken;
    // whitespace before the colon, an escaped key or value are not.
    assert_eq!(
        sources(spaced),
        [
            Some(r#""a": 1"#),
            None,
            Some(r#""c": true"#),
            Some(r#""d":[1, 2]"#),
            None,
            None
        ]
    );
    let pretty = "{\n  \"a\":\n\t\"x\",\n  \"b\": {\"c\": null},\r\n  \"d\": \t-1.5e3 }";
    assert_eq!(
        sources(pretty),
        ["\"a\":\n\t\"x\"", r#""b": {"c": null}"#, "\"d\": \t-1.5e3"].map(Some)
    );
    // Side by side with a comma and whitespace between: one run.
    let entries = parse(pretty.as_bytes(), &arena)
        .unwrap()
        .into_entries()
        .unwrap();
    let mut out = Vec::new();
    write_from(&Node::object(entries), pretty.as_bytes(), &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "{\"a\":\n\t\"x\",\n  \"b\": {\"c\": null},\r\n  \"d\": \t-1.5e3}"
    );
}

/// [`spaced_comma`] takes a comma with any JSON whitespace around it, and nothing else: no
/// other byte, not two commas, not none.
#[test]
fn spaced_commas_are_one_comma_and_whitespace() {
    for (between, joins) in [
        (",", true),
        (", ", true),
        (" ,", true),
        ("\r\n\t ,\n  ", true),
        ("", false),
        (" ", false),
        (",,", false),
        (", ,", false),
        (",}", false),
        ("},", false),
        (", x", false),
        ("\u{b},", false),
        ("\u{c},", false),
    ] {
        let source = format!("1{between}2");
        let end = source.len() - 1;
        assert_eq!(
            spaced_comma(source.as_bytes(), 1, end),
            joins,
            "{between:?}"
        );
    }
    assert!(!spaced_comma(b"1,2", 2, 1));
    assert!(!spaced_comma(b"1,2", 1, 9));
}

/// A shared container (the token's clauses in every search, issue 10) reads and writes as the
/// same items built, has no source text, and a change copies the items out: the slice it
/// borrows is left as it was.
#[test]
fn shared_items_write_as_built_ones_and_a_change_copies_them_out() {
    let owned: Vec<Node<'static>> = vec![
        Node::object(vec![(
            Cow::Owned("term".to_string()),
            Node::object(vec![(
                Cow::Owned("tenant".to_string()),
                Node::String(Cow::Owned("a\"b".to_string())),
            )]),
        )]),
        Node::Number(Cow::Owned("12".to_string())),
    ];
    let shared = Node::Array(Container::shared(&owned));
    let built = Node::array(owned.clone());
    assert_eq!(shared, built);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    write(&shared, &mut a);
    write(&built, &mut b);
    assert_eq!(a, b);
    assert_eq!(a, br#"[{"term":{"tenant":"a\"b"}},12]"#);
    let Node::Array(mut items) = shared.reborrow() else {
        unreachable!()
    };
    items.make_mut().push(Node::Null);
    assert_eq!(items.len(), 3);
    assert_eq!(owned.len(), 2);
    let mut changed = Vec::new();
    write(&Node::Array(items), &mut changed);
    assert_eq!(changed, br#"[{"term":{"tenant":"a\"b"}},12,null]"#);

    // With its text written once (`SharedArray`): copied by the writer, the same bytes, kept
    // by `reborrow`, gone once the items are copied out and changed.
    let array = SharedArray::new(owned.clone());
    assert_eq!(array.items(), &owned[..]);
    let node = array.array();
    assert_eq!(node, built);
    let Node::Array(c) = &node else {
        unreachable!()
    };
    assert!(matches!(c.items, Items::Shared(_, text) if text == &a[..]));
    let mut copied = Vec::new();
    write(&node, &mut copied);
    assert_eq!(copied, a);
    assert_eq!(written_without_spans(&node), a);
    let Node::Array(mut items) = node.reborrow() else {
        unreachable!()
    };
    assert!(matches!(items.items, Items::Shared(_, text) if text == &a[..]));
    items.make_mut()[1] = Node::Bool(true);
    let mut changed = Vec::new();
    write(&Node::Array(items), &mut changed);
    assert_eq!(changed, br#"[{"term":{"tenant":"a\"b"}},true]"#);
    assert_eq!(array.items(), &owned[..]);
    // An empty one's text is the writer's too.
    assert_eq!(
        SharedArray::new(Vec::new()).array(),
        Node::array(Vec::new())
    );
}

/// Duplicate keys are refused wherever they are: keys of one length and the same end bytes, a
/// duplicate after containers (whose keys are not the object's), the same keys in nested
/// objects (each object its own), and objects around the number of keys past which a set takes
/// over.
#[test]
fn duplicate_keys_are_found_wherever_they_are() {
    let collide = |i: usize| format!("\"a{i:02}b\"");
    for n in [1, 2, SCAN_KEYS - 1, SCAN_KEYS, SCAN_KEYS + 1, 40] {
        let entries: Vec<String> = (0..n)
            .map(|i| format!("{}:{{\"x\":[{i},{{\"y\":[]}}],\"a00b\":1}}", collide(i)))
            .collect();
        let plain = format!("{{{}}}", entries.join(","));
        agrees(plain.as_bytes());
        // The repeated key at every place around where the comparison as keys come stops
        // (`SCAN_KEYS`), and at the end, with the first one before it or not yet scanned past.
        for dup in [0, n / 2, n - 1, SCAN_KEYS - 1, SCAN_KEYS, SCAN_KEYS + 1] {
            for at in [SCAN_KEYS - 1, SCAN_KEYS, SCAN_KEYS + 1, SCAN_KEYS + 5, n] {
                if dup >= n || at > n || at <= dup {
                    continue;
                }
                let mut with = entries.clone();
                with.insert(at, format!("{}:2", collide(dup)));
                let twice = format!("{{{}}}", with.join(","));
                agrees(twice.as_bytes());
                let arena = Arena::default();
                assert!(parse(twice.as_bytes(), &arena).is_err(), "{twice}");
            }
        }
    }
}

/// Session 29: the flag keys (`knn`, `highlight`, `inner_hits`) are told first by a bit of
/// their length modulo 64 ([`FLAG_KEY_LENGTHS`]), then compared. The flags and the highlight
/// count are what a walk of `parse_strict`'s value finds, for the flag keys, near misses of
/// their lengths and of those lengths plus 64 (which share their bit), and keys of other
/// lengths, as the first key of an object (read before the key stack is set up), the second,
/// one past [`SCAN_KEYS`], nested, in arrays, escaped and spaced.
#[test]
fn flag_keys_are_noted_wherever_they_are() {
    fn walk(v: &Value, keys: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, c)| {
                keys.push(k.clone());
                walk(c, keys);
            }),
            Value::Array(items) => items.iter().for_each(|c| walk(c, keys)),
            _ => {}
        }
    }
    let long = |base: &str| format!("{base}{}", "x".repeat(64));
    let mut names: Vec<String> = [
        "knn",
        "kNn",
        "abc",
        "highlight",
        "highlighT",
        "post_tags",
        "inner_hits",
        "inner_hitS",
        "fixed_time",
        "k\\u006en",
        "highligh\\u0074",
        "inner_hit\\u0073",
        "",
        "a",
        "kn",
        "knnn",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    names.extend(["knn", "abc", "highlight", "inner_hits"].map(long));
    let filler: Vec<String> = (0..SCAN_KEYS + 1)
        .map(|i| format!("\"f{i}\":{i}"))
        .collect();
    let mut bodies = Vec::new();
    for k in &names {
        for other in ["knn", "x", "inner_hits"] {
            bodies.push(format!(r#"{{"{k}":1}}"#));
            bodies.push(format!(
                r#"{{"{other}":{{"{k}":"v"}},"{k}":[{{"{k}":{{}}}}]}}"#
            ));
            bodies.push(format!(
                r#"{{ "{other}" : 1 , "{k}" : {{ "{k}" : null }} }}"#
            ));
            bodies.push(format!(r#"[{{"{k}":true}},{{"{other}":2,"{k}":"{k}"}}]"#));
            bodies.push(format!(r#"{{{},"{k}":3}}"#, filler.join(",")));
        }
    }
    let mut noted = [0usize; 3];
    for body in &bodies {
        let value = parse_strict(body.as_bytes());
        let arena = Arena::default();
        let parsed = parse(body.as_bytes(), &arena);
        let Ok(value) = value else {
            assert!(parsed.is_err(), "{body}");
            continue;
        };
        parsed.expect(body);
        let mut keys = Vec::new();
        walk(&value, &mut keys);
        let has = |name: &str| keys.iter().any(|k| k == name);
        let highlights = keys.iter().filter(|k| *k == "highlight").count();
        assert_eq!(arena.has_knn_key(), has("knn"), "{body}");
        assert_eq!(arena.has_inner_hits_key(), has("inner_hits"), "{body}");
        assert_eq!(arena.highlight_keys(), highlights, "{body}");
        noted[0] += usize::from(has("knn"));
        noted[1] += usize::from(has("inner_hits"));
        noted[2] += highlights;
    }
    // Each flag seen set and unset many times.
    assert!(
        noted.iter().all(|&n| n > 20 && n < bodies.len() - 20),
        "{noted:?}"
    );
}

/// Session 29: numbers of every length and form read where the parser reads values (an
/// object's first entry, a later one, an array's items, the top level), each followed by every
/// byte that may or may not end one and at the body's end: the same decision and value as
/// `parse_strict`.
#[test]
fn numbers_of_every_length_and_form_agree_with_parse_strict() {
    let mut numbers = Vec::new();
    for len in 1..=20 {
        let digits: String = (0..len).map(|i| char::from(b'1' + (i % 9) as u8)).collect();
        for int in [digits.clone(), format!("0{digits}"), "0".into()] {
            for frac in ["", ".", ".0", ".5", &format!(".{digits}")] {
                for exp in [
                    "",
                    "e",
                    "E",
                    "e5",
                    "E+7",
                    "e-3",
                    "e+",
                    "e-",
                    &format!("e{len}"),
                ] {
                    numbers.push(format!("{int}{frac}{exp}"));
                    numbers.push(format!("-{int}{frac}{exp}"));
                }
            }
        }
    }
    numbers.extend(
        [
            "-", "--1", "+1", "1-", ".5", "-.5", "1..2", "1e1e1", "0x1", "1_0",
        ]
        .map(String::from),
    );
    for n in &numbers {
        agrees(n.as_bytes());
        for after in ["", " ", ",", "]", "}", "x", "0", "\"", "\n"] {
            agrees(format!("{{\"n\":{n}{after}}}").as_bytes());
            agrees(format!("{{\"a\":1,\"n\":{n}{after}}}").as_bytes());
            agrees(format!("[{n}{after},{n}]").as_bytes());
            agrees(format!("{n}{after}").as_bytes());
        }
    }
}

/// Session 24: an object's keys are compared only when a key's bit ([`key_bit`]) is among the
/// earlier keys' bits. Keys of eighteen lengths from 0 to 22 and varied ends (so, many different
/// bits, and some keys sharing one with others they are not equal to), each key of an object
/// of up to [`SCAN_KEYS`] + 2 keys repeated at every later place: every repeat refused, the
/// objects without one accepted, as `parse_strict` decides.
#[test]
fn keys_are_compared_when_their_bits_meet() {
    let keys: Vec<String> = (0..SCAN_KEYS + 2)
        .map(|i| {
            let len = (i * 7) % 23;
            (0..len)
                .map(|j| char::from(b'a' + ((i * 5 + j * 3) % 26) as u8))
                .collect()
        })
        .collect();
    let distinct: HashSet<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), keys.len(), "{keys:?}");
    let bits: HashSet<u64> = keys.iter().map(|k| key_bit(k)).collect();
    assert!(bits.len() > keys.len() / 2, "{bits:?}");
    // Keys sharing a bit without being equal: both of these are read together below.
    assert_eq!(key_bit("script_fields"), key_bit("stored_fields"));
    for n in 1..=keys.len() {
        let entries: Vec<String> = keys[..n].iter().map(|k| format!("\"{k}\":1")).collect();
        let plain = format!(
            "{{\"script_fields\":0,{},\"stored_fields\":2}}",
            entries.join(",")
        );
        agrees(plain.as_bytes());
        assert!(
            parse(plain.as_bytes(), &Arena::default()).is_ok(),
            "{plain}"
        );
        for (dup, key) in keys[..n].iter().enumerate() {
            for at in dup + 1..=n {
                let mut with = entries.clone();
                with.insert(at, format!("\"{key}\":[]"));
                let twice = format!("{{{}}}", with.join(","));
                agrees(twice.as_bytes());
                assert!(
                    parse(twice.as_bytes(), &Arena::default()).is_err(),
                    "{twice}"
                );
            }
        }
    }
}

/// The digit scan stops where a byte-by-byte scan does: runs of every length up to past two
/// words, ended by every byte (the neighbours of the digits, `/` and `:`, high bytes, the end),
/// from every start.
#[test]
fn the_digit_scan_stops_where_a_byte_scan_does() {
    let naive = |s: &[u8], from: usize| {
        (from..s.len())
            .find(|&i| !s[i].is_ascii_digit())
            .unwrap_or(s.len())
    };
    for len in 0..20 {
        for end in (0..=255u8)
            .filter(|b| !b.is_ascii_digit())
            .map(Some)
            .chain([None])
        {
            let mut s: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
            s.extend(end);
            s.extend_from_slice(b"12345678");
            for from in 0..s.len() {
                assert_eq!(skip_digits(&s, from), naive(&s, from), "{s:?} from {from}");
            }
        }
    }
}

/// Random numbers around f64's overflow and underflow edges (review9): mantissas of 1 to 330
/// digits, led by the digits of f64::MAX or not, with fractions and exponents that put them
/// near 1e308 and 1e-324, written several ways. The tree accepts exactly those `parse_strict`
/// accepts (it once accepted some just below the overflow threshold that serde_json refuses).
#[test]
fn random_numbers_near_the_edges_agree_with_parse_strict() {
    const MAX_DIGITS: &str = "17976931348623157081452742373170435679807056752584499659891747680315726078002853876058955863276687817154045895351438246423432132688946418276846754670353751698604991057655128207624549009038932894407586850845513394230458323690322294816580855933212334827479782620414472316873817718091929988125040402618412485836";
    let mut next = crate::testing::xorshift(0x0005_eed0_fa11_5eed_u64);
    for _ in 0..20_000 {
        let len = 1 + (next() % 330) as usize;
        let mut m: String = if next().is_multiple_of(2) {
            MAX_DIGITS[..len.min(MAX_DIGITS.len())].to_string()
        } else {
            (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect()
        };
        if m.starts_with('0') {
            m.replace_range(..1, "1");
        }
        // A digit changed near the end: just above or below the edge.
        if next().is_multiple_of(2) && m.len() > 1 {
            let at = m.len() - 1 - (next() % m.len().min(4) as u64) as usize;
            let d = char::from(b'0' + (next() % 10) as u8);
            m.replace_range(at..at + 1, &d.to_string());
        }
        let int = 1 + (next() % m.len() as u64) as usize;
        let (i, f) = m.split_at(int);
        let target: i64 = if next().is_multiple_of(4) { -324 } else { 308 };
        let e = target - (int as i64 - 1) + (next() % 3) as i64 - 1;
        let sign = if next().is_multiple_of(2) { "-" } else { "" };
        let frac = if f.is_empty() {
            String::new()
        } else {
            format!(".{f}")
        };
        let text = match next() % 3 {
            0 => format!("{sign}{i}{frac}e{e}"),
            1 => format!("{sign}{i}{frac}E+{e}").replace("+-", "-"),
            _ if e >= 0 => format!("{sign}{i}{}{frac}", "0".repeat(e as usize)),
            _ => format!("{sign}{i}{frac}e{e}"),
        };
        agrees(text.as_bytes());
    }
}

/// A run of string items (`Parser::strings`) ends where the grammar says, whatever follows a
/// string: every sequence of up to four items drawn from plain, escaped, control-character and
/// unterminated strings, other values, and every separator (compact, spaced, missing, doubled,
/// adjacent quotes), in arrays and at the end of the body, decided and read as `parse_strict`
/// decides and reads it.
#[test]
fn string_runs_in_arrays_agree_with_parse_strict() {
    let items = [
        r#""a""#,
        r#""user-000123""#,
        r#""""#,
        r#""long plain string of more than eight bytes""#,
        r#""a\"b""#,
        r#""tab\tand \u00e9""#,
        "\"raw\ttab\"",
        r#""é😀""#,
        "1",
        "null",
        r#"{"k":"v"}"#,
        r#"["x","y"]"#,
        r#""unterminated"#,
        // Invalid escapes before what ends a compact run's item (`,"` and `]`).
        r#""x\,""#,
        r#""\]""#,
        r#""x\,"y""#,
    ];
    let separators = [",", ", ", " ,", "", ",,", "\n,\n"];
    let mut rng = crate::testing::xorshift(0x5eed_5713);
    for _ in 0..20_000 {
        let n = 1 + (rng() % 4) as usize;
        let mut body = String::from("[");
        for k in 0..n {
            if k > 0 {
                body.push_str(separators[(rng() % separators.len() as u64) as usize]);
            }
            body.push_str(items[(rng() % items.len() as u64) as usize]);
        }
        match rng() % 4 {
            0 => {}
            1 => body.push_str(",]"),
            _ => body.push(']'),
        }
        agrees(body.as_bytes());
        agrees(format!("{{\"terms\":{{\"f\":{body}}},\"size\":1}}").as_bytes());
    }
}

/// Random objects built from the pieces the session-10 shortcuts read (review10): keys plain,
/// escaped (`\u0061` for `a`, `\/`, a control escape) or spelled at the word scan's edges
/// (seven, eight and nine bytes), from a small pool so that duplicates, plain and escaped
/// spellings of one key, come up in objects below, at and past [`SCAN_KEYS`] keys and in
/// nested ones; whitespace or none around every colon and comma; values right after the colon
/// (strings at word edges, objects, arrays of string runs, numbers, literals) and malformed
/// pieces (a missing colon, a doubled comma, a trailing comma, adjacent strings, a raw control
/// character, an unterminated string at the very end). Each is decided and read as
/// `parse_strict` decides and reads it. Faults planted by hand fail it: the comparison as keys
/// come or the check at close stopping a key early, the fast key read not looking for its
/// colon, a string run not looking for the next quote, the scan's quote flag set wrongly.
#[test]
fn random_objects_around_the_key_shortcuts_agree_with_parse_strict() {
    const KEYS: [&str; 12] = [
        "\"a\"",
        "\"\\u0061\"",
        "\"b\"",
        "\"\\u0062\"",
        "\"abcdefg\"",
        "\"abcdefgh\"",
        "\"abcdefghi\"",
        "\"abcdefg\\u0068\"",
        "\"a/b\"",
        "\"a\\/b\"",
        "\"\"",
        "\"\u{e9}\"",
    ];
    const STRINGS: [&str; 7] = [
        "\"\"",
        "\"x\"",
        "\"1234567\"",
        "\"12345678\"",
        "\"123456789\"",
        "\"a\\\"b\"",
        "\"\\u00e9😀\"",
    ];
    /// Each a refusal.
    const BAD: [&str; 8] = [
        "\"tab\ttab\"",
        "\"\\ud800\"",
        "01",
        "1e400",
        "nul",
        "[\"a\",,\"b\"]",
        "[\"a\",]",
        "\"a\"\"b\"",
    ];
    const SPACES: [&str; 4] = ["", "", " ", "\n\t"];
    fn pick<'s>(next: &mut impl FnMut() -> u64, from: &[&'s str]) -> &'s str {
        from[(next() % from.len() as u64) as usize]
    }
    fn value(next: &mut impl FnMut() -> u64, depth: u32, out: &mut String) {
        if next().is_multiple_of(100) {
            out.push_str(pick(next, &BAD));
            return;
        }
        match next() % if depth > 2 { 6 } else { 8 } {
            0..=2 => out.push_str(pick(next, &STRINGS)),
            3 => out.push_str(pick(next, &["1", "-0", "1.5e3", "true", "false"])),
            4 => out.push_str("null"),
            5 => {
                out.push('[');
                for k in 0..next() % 4 {
                    if k > 0 {
                        out.push_str(pick(next, &[",", ",", ", ", " ,"]));
                    }
                    out.push_str(pick(next, &STRINGS));
                }
                out.push(']');
            }
            _ => object(next, depth + 1, out),
        }
    }
    fn object(next: &mut impl FnMut() -> u64, depth: u32, out: &mut String) {
        // Nested objects mostly small: a large object is accepted only when all its values are.
        let n = match next() % if depth > 0 { 8 } else { 4 } {
            0 => 14 + next() % 6,
            1 => next() % 20,
            _ => next() % 4,
        };
        out.push('{');
        out.push_str(pick(next, &SPACES));
        for k in 0..n {
            if k > 0 {
                out.push_str(pick(next, &SPACES));
                out.push_str(if next().is_multiple_of(200) {
                    ",,"
                } else {
                    ","
                });
                out.push_str(pick(next, &SPACES));
            }
            // Past the first keys, mostly distinct ones, so that objects larger than
            // `SCAN_KEYS` are often accepted and a late duplicate is the one fault.
            if k < 2 || next().is_multiple_of(32) {
                out.push_str(pick(next, &KEYS));
            } else if k >= 15 && next().is_multiple_of(6) {
                // An earlier key again, around where the comparison as keys come stops.
                let j = next() % k;
                out.push_str(&format!("\"k{j}\""));
            } else {
                out.push_str(&format!("\"k{k}\""));
            }
            out.push_str(pick(next, &SPACES));
            if !next().is_multiple_of(200) {
                out.push(':');
            }
            out.push_str(pick(next, &SPACES));
            value(next, depth, out);
            if next().is_multiple_of(200) {
                out.push_str(pick(next, &STRINGS));
            }
        }
        out.push_str(pick(next, &SPACES));
        out.push_str(if next().is_multiple_of(100) {
            ",}"
        } else {
            "}"
        });
    }
    let mut next = crate::testing::xorshift(0xc0ff_ee12_3456_789b);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut body = String::new();
        object(&mut next, 0, &mut body);
        match next() % 8 {
            0 => {
                body.pop();
            }
            1 => body.push_str("\"ab"),
            _ => {}
        }
        agrees(body.as_bytes());
        let arena = Arena::for_body(body.len());
        match parse(body.as_bytes(), &arena) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        accepted > 1_000 && refused > 1_000,
        "{accepted} accepted, {refused} refused"
    );
}

/// Session 11: a request's parse claims its tape from the request's meter, so a body whose
/// parsed form is many times its size (a token per two bytes) is refused with the meter's
/// reason once it passes the budget, where a body of the same length parsing into little
/// (one long string) fits; the arena returns its claims when it drops.
#[test]
fn a_metered_parse_stops_at_the_budget_with_the_meters_reason() {
    use crate::memory::Refused;
    use crate::RejectKind;
    let dense = format!("[{}]", vec!["1"; 50_000].join(","));
    let sparse = format!("[\"{}\"]", "x".repeat(dense.len() - 4));
    assert_eq!(dense.len(), sparse.len());
    let budget = 1 << 20;
    let grant = crate::memory::budget(budget, Refused::TooLarge);
    let meter = Meter::new(&grant);
    {
        let arena = Arena::metered(sparse.len(), &meter).unwrap();
        assert!(parse(sparse.as_bytes(), &arena).is_ok());
        assert!(meter.used() >= sparse.len() / BYTES_PER_TOKEN * std::mem::size_of::<Tok>());
    }
    assert_eq!(meter.used(), 0);
    {
        let arena = Arena::metered(dense.len(), &meter).unwrap();
        let err = parse(dense.as_bytes(), &arena).unwrap_err();
        assert_eq!(err.kind, RejectKind::TooLarge, "{err:?}");
        assert!(err.reason.contains("memory"), "{err:?}");
        assert!(meter.used() <= budget);
    }
    assert_eq!(meter.used(), 0);
    // Granting everything, the dense body parses, its whole tape claimed.
    let meter = Meter::new(&|_| Ok(()));
    let arena = Arena::metered(dense.len(), &meter).unwrap();
    assert!(parse(dense.as_bytes(), &arena).is_ok());
    assert!(meter.used() >= 50_001 * std::mem::size_of::<Tok>());
}

/// The key stack and a wide object's duplicate check are claimed beside the arena; the hash
/// set's claim is returned when the object closes. A busy refusal stays busy.
#[test]
fn wide_objects_claim_their_keys_and_a_busy_meter_stays_busy() {
    use crate::memory::Refused;
    use crate::RejectKind;
    let wide = format!(
        "{{{}}}",
        (0..5_000)
            .map(|i| format!("\"k{i}\":1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let meter = Meter::new(&|_| Ok(()));
    let claimed = {
        let arena = Arena::metered(wide.len(), &meter).unwrap();
        parse(wide.as_bytes(), &arena).unwrap();
        meter.used()
    };
    let tape = 10_001 * std::mem::size_of::<Tok>();
    let keys = 5_000 * std::mem::size_of::<&str>();
    assert!(claimed >= tape + keys, "claimed {claimed}");
    // The first chunk (the tape's first room is in it) and no more.
    let busy = crate::memory::budget(wide.len() * 4 + 1024, Refused::Busy);
    let meter = Meter::new(&busy);
    let arena = Arena::metered(wide.len(), &meter).unwrap();
    assert_eq!(
        parse(wide.as_bytes(), &arena).unwrap_err().kind,
        RejectKind::Busy
    );
}

/// Review 12: whole bodies whose strings straddle the scan's block edges, as keys (the plain
/// key and its colon in one look), values after a colon and runs of array strings: each
/// string of 0 to 40 bytes with one piece (a quote, a backslash escape, a raw control byte,
/// a multi-byte character, DEL) at a random place, the body shifted by 0 to 31 bytes of
/// leading whitespace or a padding key so that every piece meets every block offset, and cut
/// at random places so that it ends at and around block edges (an unterminated string or
/// escape at the very end). A key spelled with an escape (`\u0061` for `a`) repeats a plain
/// one in objects below and past [`SCAN_KEYS`] keys. Decided and read as `parse_strict`
/// decides and reads them.
#[test]
fn strings_across_block_edges_agree_with_parse_strict() {
    const PIECES: [&str; 12] = [
        "\"",
        "\\\"",
        "\\\\",
        "\\u0041",
        "\\ud83d\\ude00",
        "\\",
        "\u{1}",
        "\u{1f}",
        "é",
        "😀",
        "\u{7f}",
        "\\u00",
    ];
    let mut next = crate::testing::xorshift(0x12_b10c_ed6e_5eed_u64);
    let text = |next: &mut dyn FnMut() -> u64| {
        let len = (next() % 41) as usize;
        let mut s: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        // A piece in one string of four: a wide object is then often accepted, so that a
        // late repeated key is its one fault.
        if next().is_multiple_of(4) && len > 0 {
            let at = (next() % len as u64) as usize;
            let piece = PIECES[(next() % PIECES.len() as u64) as usize];
            s.replace_range(at..at + 1, piece);
        }
        s
    };
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..40_000 {
        let shift = (next() % 32) as usize;
        let mut body = if next().is_multiple_of(2) {
            format!("{}{{", " ".repeat(shift))
        } else {
            format!("{{\"{}\":0,", "p".repeat(shift))
        };
        let keys = match next() % 4 {
            0 => 14 + next() % 8,
            _ => 1 + next() % 4,
        };
        for k in 0..keys {
            if k > 0 {
                body.push(',');
            }
            // The repeated key rare enough that an object's one repetition is often late.
            match next() % 32 {
                0 => body.push_str("\"\\u0061\""),
                1 => body.push_str("\"a\""),
                2..=9 => body.push_str(&format!("\"{}\"", text(&mut next))),
                _ => body.push_str(&format!("\"k{k}\"")),
            }
            body.push(':');
            match next() % 3 {
                0 => body.push_str(&format!("\"{}\"", text(&mut next))),
                1 => {
                    let items: Vec<String> = (0..next() % 5)
                        .map(|_| format!("\"{}\"", text(&mut next)))
                        .collect();
                    body.push_str(&format!("[{}]", items.join(",")));
                }
                _ => body.push('1'),
            }
        }
        body.push('}');
        if next().is_multiple_of(4) {
            let mut cut = (next() % body.len() as u64) as usize;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        agrees(body.as_bytes());
        let arena = Arena::for_body(body.len());
        match parse(body.as_bytes(), &arena) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        accepted > 5_000 && refused > 5_000,
        "{accepted} accepted, {refused} refused"
    );
}

/// Review 12: a parse under every budget from below its first claim to past its whole need
/// either reads the whole tree (the same tree as unmetered) or is refused with the meter's
/// reason: never a partial tree, never another refusal. Bodies that reach every claim: the
/// tape's doublings (a dense list), the escaped strings' room (an escape late in the body),
/// the key stack's growth and a wide object's duplicate set, nested containers, a run of
/// array strings; the budget refuses at each claim in turn.
#[test]
fn every_budget_reads_the_whole_tree_or_refuses_with_the_meters_reason() {
    use crate::memory::Refused;
    use crate::RejectKind;
    let wide = format!(
        "{{{}}}",
        (0..300)
            .map(|i| format!("\"k{i}\":{{\"a\":[{i},\"v\\n{i}\"]}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let dense = format!("[{}]", vec!["1"; 3000].join(","));
    let late_escape = format!("{{\"a\":\"{}\",\"b\":\"x\\u0041\\\"y\"}}", "z".repeat(4000));
    let deep_keys = format!(
        "{}1{}",
        (0..60).map(|i| format!("{{\"d{i}\":")).collect::<String>(),
        "}".repeat(60)
    );
    // A run of array strings grows the tape from inside its own loop.
    let strings = format!(
        "{{\"terms\":{{\"f\":[{}]}}}}",
        (0..3000)
            .map(|i| format!("\"{}\"", i % 7))
            .collect::<Vec<_>>()
            .join(",")
    );
    let bodies = [wide, dense, late_escape, deep_keys, strings];
    for body in &bodies {
        let unmetered = Arena::default();
        let want = parse(body.as_bytes(), &unmetered)
            .expect("accepted")
            .to_value();
        // The arena's first chunk sized for the body (as a request's is), or empty, so that
        // every allocation of the parse is a claim of its own.
        for sized_for in [body.len(), 0] {
            // The most the parse holds claimed at once.
            let full = {
                let peak = Cell::new(0);
                let grant = |total: usize| {
                    peak.set(peak.get().max(total));
                    Ok(())
                };
                let meter = Meter::new(&grant);
                let arena = Arena::metered(sized_for, &meter).unwrap();
                parse(body.as_bytes(), &arena).unwrap();
                peak.get()
            };
            let (mut read, mut refused) = (0, 0);
            let step = (full / 400).max(1);
            for budget in (0..full + step).step_by(step) {
                for why in [Refused::Busy, Refused::TooLarge] {
                    let grant = crate::memory::budget(budget, why);
                    let meter = Meter::new(&grant);
                    let Ok(arena) = Arena::metered(sized_for, &meter) else {
                        continue;
                    };
                    match parse(body.as_bytes(), &arena) {
                        Ok(node) => {
                            assert_eq!(node.to_value(), want, "budget {budget}");
                            // Read only when no claim was refused on the way.
                            assert!(meter.refusal().is_none(), "budget {budget}");
                            read += 1;
                        }
                        Err(e) => {
                            let kind = match why {
                                Refused::Busy => RejectKind::Busy,
                                Refused::TooLarge => RejectKind::TooLarge,
                            };
                            assert_eq!(e.kind, kind, "budget {budget}: {e:?}");
                            refused += 1;
                        }
                    }
                    drop(arena);
                    assert_eq!(meter.used(), 0, "budget {budget}: claims returned");
                }
            }
            assert!(read > 0, "{body:.40}: none read");
            if sized_for == 0 {
                assert!(refused > 100, "{body:.40}: {refused} refused");
            }
        }
    }
}

/// attack17d: arrays built to make the session-17 string run and the items' flags lie: string
/// items full of what the run looks at (`,"` and `\"`, `\u0022`, `\\` before a quote, unicode
/// at block edges, raw control characters), runs broken by a number, a literal, an empty
/// container or a nested run, whitespace, comments and doubled or trailing commas between
/// items, arrays nested and at the very end of the body; each body also cut at every byte and
/// with a byte made invalid UTF-8. Decided and read as `parse_strict` decides and reads it,
/// the items' flags as a walk over the tape tells them (`tape_is_whole`). Compact arrays of
/// plain strings among them are packed (`Tok::Strings`, perf17b): a packed array that took a
/// trailing comma (`["",]`) fails it.
#[test]
fn attack17d_string_runs_and_item_flags_agree_with_parse_strict() {
    const STRINGS: [&str; 18] = [
        r#""""#,
        r#""a""#,
        r#"",\"""#,
        r#""x\",\"y""#,
        r#""\\""#,
        r#""\\\\",""#,
        r#""\u0022,\u0022""#,
        r#""\u002c\u0022""#,
        r#""é😀,""#,
        r#""abcdefghijklmno,\"p""#,
        r#""abcdefghijklmnop""#,
        "\"tab\there\"",
        "\"nl\u{1f}\"",
        r#""\ud83d\ude00""#,
        r#""\ud83d""#,
        r#""\x""#,
        r#""trailing\""#,
        r#""a"b""#,
    ];
    const OTHERS: [&str; 12] = [
        "1",
        "-0",
        "1e999",
        "true",
        "null",
        "[]",
        "{}",
        r#"["a","b"]"#,
        r#"[1,"a"]"#,
        r#"{"k":"v"}"#,
        "nul",
        "[[]]",
    ];
    const SEPARATORS: [&str; 10] = [
        ",", ",", ",", ", ", " ,", "\n,\t", ",,", "", "/**/,", ",//\n",
    ];
    fn array(next: &mut dyn FnMut() -> u64, depth: u32, out: &mut String) {
        out.push('[');
        if next().is_multiple_of(3) {
            out.push(' ');
        }
        let n = match next() % 8 {
            0 => 0,
            1 => 40 + next() % 100,
            _ => 1 + next() % 6,
        };
        for k in 0..n {
            if k > 0 {
                out.push_str(SEPARATORS[(next() % SEPARATORS.len() as u64) as usize]);
            }
            match next() % 16 {
                0..=10 => out.push_str(STRINGS[(next() % STRINGS.len() as u64) as usize]),
                11 if depth < 3 => array(next, depth + 1, out),
                _ => out.push_str(OTHERS[(next() % OTHERS.len() as u64) as usize]),
            }
        }
        match next() % 8 {
            0 => out.push_str(",]"),
            1 => out.push_str(" ]"),
            2 => out.push_str("\n]"),
            _ => out.push(']'),
        }
    }
    let mut next = crate::testing::xorshift(0xa77a_c417_d5ee_d001);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..10_000 {
        let mut a = String::new();
        array(&mut next, 0, &mut a);
        let body = match next() % 3 {
            0 => a,
            1 => format!("{{\"query\":{{\"terms\":{{\"f\":{a}}}}}}}"),
            _ => format!("{{\"terms\":{{\"f\":{a}}},\"x\":{a}}}"),
        };
        let arena = Arena::for_body(body.len());
        match parse(body.as_bytes(), &arena) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        agrees(body.as_bytes());
        let bytes = body.as_bytes();
        if round % 50 == 0 {
            for cut in 0..bytes.len() {
                agrees(&bytes[..cut]);
            }
        }
        if round % 5 == 0 && !bytes.is_empty() {
            let mut bad = bytes.to_vec();
            let at = (next() % bad.len() as u64) as usize;
            bad[at] = [0xff, 0xc3, 0x80, 0xe9][(next() % 4) as usize];
            agrees(&bad);
        }
    }
    assert!(
        accepted > 1_000 && refused > 1_000,
        "{accepted} accepted, {refused} refused"
    );
}

/// perf18: `packed` reads 64 bytes at a time (masks, a prefix XOR of the quotes); it decides
/// every array as `packed_items` (perf17b's item-by-item reading) decides it: the same end and
/// count, or `None` alike. Over generated arrays of items made of the bytes the masks look at
/// (quotes, commas, backslashes, control characters, `]`, `[`, spaces, unicode), cut and
/// placed at every offset of a chunk, and every byte of each changed to each of those.
#[test]
fn packed_chunks_decide_as_items_do() {
    use rand::{Rng, SeedableRng};
    const PIECES: [&[u8]; 16] = [
        b"a",
        b"user-0001",
        b"\"",
        b",",
        b"\\",
        b"\\\"",
        b"\x1f",
        b"\n",
        b"]",
        b"[",
        b" ",
        "é😀".as_bytes(),
        b",\"",
        b"\"]",
        b"\x7f",
        b"abcdefghijklmnopqrstuvwxyz0123456789",
    ];
    const BYTES: [u8; 12] = [
        b'"', b',', b'\\', b']', b'[', 0, 0x1f, b'\n', b' ', b'a', 0x7f, 0xc3,
    ];
    let check = |s: &[u8], start: usize| {
        assert_eq!(
            packed(s, start),
            packed_items(s, start),
            "{:?} from {start}",
            String::from_utf8_lossy(s)
        );
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let mut n = 0;
    for round in 0..3000 {
        // A packed array most of the time, then broken by a piece somewhere.
        let mut body = b"[\"".to_vec();
        let items = rng.gen_range(0..if round % 3 == 0 { 40 } else { 6 });
        for i in 0..items {
            if i > 0 {
                body.extend_from_slice(b"\",\"");
            }
            for _ in 0..rng.gen_range(0..4) {
                let piece = if rng.gen_bool(0.9) {
                    PIECES[rng.gen_range(0..2)]
                } else {
                    PIECES[rng.gen_range(0..PIECES.len())]
                };
                body.extend_from_slice(piece);
            }
        }
        body.extend_from_slice(b"\"]");
        for _ in 0..rng.gen_range(0..3) {
            body.extend_from_slice(PIECES[rng.gen_range(0..PIECES.len())]);
        }
        // At every offset of a chunk, and cut short.
        let pad = rng.gen_range(0..64);
        let mut s = vec![b' '; pad];
        s.extend_from_slice(&body);
        for cut in [
            s.len(),
            s.len() - 1,
            pad + 2 + rng.gen_range(0..body.len() - 1),
        ] {
            check(&s[..cut], pad);
            n += 1;
        }
        // Each byte changed to each byte the masks look at (the first two stay `["`).
        if round % 20 == 0 {
            for i in pad + 2..s.len() {
                for b in BYTES {
                    let mut t = s.clone();
                    t[i] = b;
                    check(&t, pad);
                    n += 1;
                }
            }
        }
    }
    // Long arrays that end at every place of a chunk, and just past the body's end.
    for items in 1..80 {
        let list: Vec<String> = (0..items).map(|i| format!("\"u-{i}\"")).collect();
        let body = format!("[{}]", list.join(","));
        for pad in 0..64 {
            let mut s = vec![b' '; pad];
            s.extend_from_slice(body.as_bytes());
            check(&s, pad);
            let end = s.len();
            assert_eq!(packed(&s, pad), Some((end, items)));
            check(&s[..end - 1], pad);
            s.extend_from_slice(b"}\x00\"");
            check(&s, pad);
        }
    }
    assert!(n > 10_000);
}

/// robust18: arrays of 0, 1, 2 and 3 plain strings, ASCII or not (`é`, an emoji: bytes above
/// 0x7f are no special bytes), whose `]` falls at every place of the first two chunks, the
/// body ending right there (the last chunk full, none after it), cut just before the `]` (the
/// body ends at a chunk's end inside no string, or inside one), or followed by more bytes:
/// [`packed`] decides them as `packed_items`, and the parser reads them (and `[]`, which
/// `packed` never sees) as serde_json does.
#[test]
fn packed_arrays_end_at_every_place_of_a_chunk() {
    let mut at_chunk_end = 0;
    for items in 0..=3usize {
        for filler in 0..132 {
            for tail in ["", "é", "😀", "é😀", "\\u00e9", "\\"] {
                let first = format!("{}{tail}", "a".repeat(filler));
                let list: Vec<String> = (0..items)
                    .map(|i| {
                        if i == 0 {
                            format!("\"{first}\"")
                        } else {
                            format!("\"é{i}\"")
                        }
                    })
                    .collect();
                let body = format!("[{}]", list.join(","));
                let b = body.as_bytes();
                // Chunks start at the first item's quote (`b[1]`): a `]` at 64 or 128 ends one.
                if items > 0 && (b.len() - 1) % 64 == 0 {
                    at_chunk_end += 1;
                }
                if items > 0 {
                    let plain = !tail.contains('\\');
                    assert_eq!(
                        packed(b, 0),
                        plain.then_some((b.len(), items as u32)),
                        "{body}"
                    );
                    for s in [
                        b.to_vec(),
                        b[..b.len() - 1].to_vec(),
                        [b, b"]"].concat(),
                        [b, b",\""].concat(),
                        [b, "é".as_bytes()].concat(),
                    ] {
                        assert_eq!(
                            packed(&s, 0),
                            packed_items(&s, 0),
                            "{:?}",
                            String::from_utf8_lossy(&s)
                        );
                    }
                }
                agrees(b);
                agrees(format!("{{\"f\":{body}}}").as_bytes());
            }
            if items == 0 {
                break;
            }
        }
    }
    assert!(at_chunk_end >= 3 * 2 * 4, "{at_chunk_end}");
}

/// [`block::scan64`] tells what [`bytes::scan64`] (the byte-at-a-time masks other CPUs use)
/// tells, for every byte value at every position of a chunk over a background of each class of
/// byte, and with several specials; [`block::Quotes`] counts the quotes of many chunks (past
/// the 63 its lanes hold) as the bytes' count does.
#[test]
#[cfg(target_arch = "x86_64")]
fn scan64_matches_the_bytes() {
    let same = |chunk: &[u8; 64]| {
        let (fast, slow) = (block::scan64(chunk), bytes::scan64(chunk));
        assert_eq!(
            (fast.quotes, fast.commas, fast.special),
            (slow.quotes, slow.commas, slow.special),
            "{chunk:?}"
        );
        fast
    };
    for background in [b'a', b'"', b'\\', b',', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x00] {
        for at in 0..64 {
            for byte in 0..=255u8 {
                let mut chunk = [background; 64];
                chunk[at] = byte;
                same(&chunk);
                chunk[(at * 7 + 13) % 64] = b'\\';
                same(&chunk);
            }
        }
    }
    let (mut fast, mut slow) = (block::Quotes::new(), bytes::Quotes::new());
    let mut expected = 0u64;
    for n in 0..300u64 {
        let mut chunk = [b'a'; 64];
        for (i, b) in chunk.iter_mut().enumerate() {
            if (i as u64 * 31 + n * 17) % 5 < 2 || n % 50 == 7 {
                *b = b'"';
            }
        }
        let scanned = same(&chunk);
        expected += chunk.iter().filter(|&&b| b == b'"').count() as u64;
        fast.add(&scanned);
        slow.add(&bytes::scan64(&chunk));
        if n % 97 == 0 {
            assert_eq!(fast.total(), expected);
        }
    }
    assert_eq!((fast.total(), slow.total()), (expected, expected));
    // Chunks all of quotes, four a lane each, many more than a lane holds between folds.
    let mut quotes = block::Quotes::new();
    for _ in 0..200 {
        quotes.add(&same(&[b'"'; 64]));
    }
    assert_eq!(quotes.total(), 200 * 64);
}

/// The SSE2 masks of [`packed`] equal the byte-at-a-time ones other CPUs use, for every byte
/// value at every position of a chunk (over a background of each class of byte).
#[test]
#[cfg(target_arch = "x86_64")]
fn masks64_match_the_bytes() {
    for background in [b'a', b'"', b'\\', b',', 0x1f, 0x20, 0x7f, 0x80, 0xff] {
        for at in 0..64 {
            for byte in 0..=255u8 {
                let mut chunk = [background; 64];
                chunk[at] = byte;
                assert_eq!(
                    block::masks64(&chunk),
                    bytes::masks64(&chunk),
                    "byte {byte:#04x} at {at} over {background:#04x}"
                );
            }
        }
    }
}

/// `node` with `key: value` set (in place, else last) in the object at `path` (positions of
/// object entries), each container on the way opened: how an entry was put into a parsed
/// tree before [`Parsed::with_added`], the reference it is held to.
fn opened_and_set<'a>(node: &mut Node<'a>, path: &[usize], key: &'a str, value: Node<'a>) {
    node.open();
    let Node::Object(entries) = node else {
        panic!("not an object")
    };
    match path.split_first() {
        None => entries.set(key, value),
        Some((&i, rest)) => opened_and_set(&mut entries.make_mut()[i].1, rest, key, value),
    }
}

/// The paths of every object of `v` (through objects only), in body order.
fn object_paths(v: &Value, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    if let Value::Object(m) = v {
        out.push(path.clone());
        for (i, (_, c)) in m.iter().enumerate() {
            path.push(i);
            object_paths(c, path, out);
            path.pop();
        }
    }
}

/// Session 28 (perf28a): [`Parsed::with_added`] on random objects, compact or pretty-printed
/// (their source text kept: the entries' text is put in it, session 29 for the pretty ones)
/// and with escaped keys (no text kept where an entry goes: written item by item), the
/// entries put in random objects of each (the top
/// one, empty ones, nested ones, several side by side): the new value reads as serde_json's
/// value with the entries inserted, in every representation `J` reads; its tape is whole;
/// every text it kept is what the writer writes for it; and it writes the bytes of the
/// containers opened and set, the way before. A compact body's new value keeps a source text.
#[test]
fn added_entries_read_and_write_as_set_ones() {
    fn random(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
        let n = next();
        match if depth > 3 { n % 5 } else { n % 10 } {
            0 => Value::Null,
            1 => serde_json::json!((n % 2001) as i64 - 1000),
            2 => serde_json::json!(0.5),
            3 => Value::String(["", "a", "é\n\"/", "k1"][(n >> 8) as usize % 4].into()),
            4 => Value::Bool(n.is_multiple_of(3)),
            5 => Value::Array((0..next() % 3).map(|_| random(next, depth + 1)).collect()),
            _ => Value::Object(
                (0..next() % 6)
                    .map(|i| (format!("k{}", (i + next()) % 6), random(next, depth + 1)))
                    .collect(),
            ),
        }
    }
    const NUMBERS: [&str; 6] = [
        "0",
        "-1",
        "1700000000000",
        "1.5",
        "-2.5e-7",
        "9007199254740993",
    ];
    let mut next = crate::testing::xorshift(0x2828_a11d_e47f_0001);
    let (mut checked, mut kept, mut several) = (0, 0, 0);
    for round in 0..4_000 {
        let value = loop {
            if let object @ Value::Object(_) = random(&mut next, 0) {
                break object;
            }
        };
        let mut paths = Vec::new();
        object_paths(&value, &mut Vec::new(), &mut paths);
        // Some of them, none inside another picked.
        let mut picked: Vec<Vec<usize>> = Vec::new();
        for p in paths {
            let inside = picked.last().is_some_and(|last| p.starts_with(last));
            if !inside && next().is_multiple_of(2) {
                picked.push(p);
            }
        }
        if picked.is_empty() {
            continue;
        }
        let numbers: Vec<[(&'static str, Number); 2]> = picked
            .iter()
            .map(|_| {
                let mut n = || NUMBERS[(next() % 6) as usize].parse::<Number>().unwrap();
                [("min", n()), ("max", n())]
            })
            .collect();
        // The expected value: serde_json's insert (last) in each.
        let mut expected = value.clone();
        for (path, nums) in picked.iter().zip(&numbers) {
            let mut at = &mut expected;
            for &i in path {
                at = at.as_object_mut().unwrap().iter_mut().nth(i).unwrap().1;
            }
            let bounds: serde_json::Map<String, Value> = nums
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Number(v.clone())))
                .collect();
            at.as_object_mut()
                .unwrap()
                .insert("added".into(), Value::Object(bounds));
        }
        let text = match round % 3 {
            0 | 1 => value.to_string(),
            _ if round % 2 == 0 => serde_json::to_string_pretty(&value).unwrap(),
            _ => value.to_string().replace("\"k", "\"\\u006b"),
        };
        let arena = Arena::default();
        let Node::Parsed(p) = parse(text.as_bytes(), &arena).unwrap() else {
            panic!("{text}")
        };
        let added: Vec<Added<'_>> = picked
            .iter()
            .zip(&numbers)
            .map(|(path, numbers)| Added {
                path,
                key: "added",
                numbers,
            })
            .collect();
        let new = p.with_added(&arena, &added).unwrap().expect("in order");
        let shown = format!("{text} {picked:?}");
        assert_eq!(new.to_value(), expected, "{shown}");
        assert_eq!(
            crate::dsl::json::J::from(new).to_value(),
            expected,
            "{shown}"
        );
        tape_is_whole(new.tokens(), &shown);
        let node = Node::Parsed(new);
        spans_are_what_the_writer_writes(&node, &shown);
        let mut reference = Node::Parsed(p);
        for (path, nums) in picked.iter().zip(&numbers) {
            let bounds = nums
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), Node::Number(Cow::Owned(v.to_string()))))
                .collect();
            opened_and_set(&mut reference, path, "added", Node::object(bounds));
        }
        let (mut written, mut before) = (Vec::new(), Vec::new());
        write(&node, &mut written);
        write(&reference, &mut before);
        // The same bytes but for the whitespace of a pretty-printed text (session 29: it keeps
        // its text, and the entries are spliced into it; the containers opened are written
        // compact).
        assert_eq!(
            String::from_utf8_lossy(&squeezed(&written)),
            String::from_utf8_lossy(&squeezed(&before)),
            "{shown}"
        );
        if is_compact(text.as_bytes()) {
            assert_eq!(written, before, "{shown}");
        }
        if p.raw().is_some() {
            assert_eq!(new.raw(), Some(&written[..]), "{shown}");
            kept += 1;
        }
        several += usize::from(picked.len() > 1);
        checked += 1;
    }
    assert!(
        checked > 2_000 && kept > 1_000 && several > 200,
        "{checked} {kept} {several}"
    );
}

/// [`Parsed::with_added`] takes entries in body order only, none in the same object as another
/// or inside another's (`None`, nothing claimed); an empty object gains its first entry
/// without a comma; the new value's memory is claimed from the arena's meter, a refusal its
/// error.
#[test]
fn added_entries_in_order_only_and_claimed() {
    use crate::memory::Refused;
    let text = r#"{"a":{"b":{}},"c":{"d":1},"e":[{"f":{}}]}"#;
    let arena = Arena::default();
    let Node::Parsed(p) = parse(text.as_bytes(), &arena).unwrap() else {
        unreachable!()
    };
    let numbers = [("min", Number::from(1)), ("max", Number::from(2))];
    let at = |path: &'static [usize]| Added {
        path,
        key: "x",
        numbers: &numbers,
    };
    for refused in [
        vec![at(&[1]), at(&[0])],
        vec![at(&[0]), at(&[0])],
        vec![at(&[0]), at(&[0, 0])],
        vec![at(&[0, 0]), at(&[0])],
        vec![at(&[]), at(&[1])],
        // Not an object, or no such entry.
        vec![at(&[2])],
        vec![at(&[1, 0])],
        vec![at(&[3])],
    ] {
        assert!(p.with_added(&arena, &refused).unwrap().is_none());
    }
    let new = p
        .with_added(&arena, &[at(&[0, 0]), at(&[1])])
        .unwrap()
        .unwrap();
    assert_eq!(
        std::str::from_utf8(new.raw().unwrap()).unwrap(),
        r#"{"a":{"b":{"x":{"min":1,"max":2}}},"c":{"d":1,"x":{"min":1,"max":2}},"e":[{"f":{}}]}"#
    );
    let top = p.with_added(&arena, &[at(&[])]).unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(top.raw().unwrap()).unwrap(),
        r#"{"a":{"b":{}},"c":{"d":1},"e":[{"f":{}}],"x":{"min":1,"max":2}}"#
    );
    // Claimed: what the arena holds after it is claimed, and a meter that grants less refuses
    // it with its reason.
    let wide = format!("{{\"h\":{{}},\"rest\":[{}]}}", vec!["{}"; 20_000].join(","));
    let run = |meter: &Meter<'_>| -> (usize, Result<usize, Rejection>) {
        let arena = Arena::metered(wide.len(), meter).unwrap();
        let Node::Parsed(p) = parse(wide.as_bytes(), &arena).unwrap() else {
            unreachable!()
        };
        let parsed = meter.used();
        let added = p.with_added(&arena, &[at(&[0])]).map(|new| {
            assert!(new.is_some());
            assert!(meter.used() >= arena.bump.allocated_bytes());
            meter.used()
        });
        (parsed, added)
    };
    let grant_all = |_| Ok(());
    let (parsed, added) = run(&Meter::new(&grant_all));
    let added = added.unwrap();
    assert!(added >= parsed + 20_008 * std::mem::size_of::<Tok>() + wide.len());
    let grant = crate::memory::budget(added - 1, Refused::TooLarge);
    let (again, refused) = run(&Meter::new(&grant));
    assert_eq!(again, parsed);
    assert_eq!(refused.unwrap_err().kind, crate::RejectKind::TooLarge);
}

/// An added number's text is serde_json's (`Display`, what the serde path writes): integers of
/// every length and sign at the edges of the digit steps, floats, integers past `i64`.
#[test]
fn added_numbers_are_written_as_serde_json_writes_them() {
    let bump = Bump::new();
    let mut numbers: Vec<Number> = vec![
        Number::from(i64::MIN),
        Number::from(i64::MAX),
        Number::from(u64::MAX),
        Number::from_f64(-2.5e-7).unwrap(),
        Number::from_f64(1e300).unwrap(),
        Number::from_f64(0.1).unwrap(),
        Number::from_f64(-0.0).unwrap(),
        Number::from_f64(1_704_067_200_000.0).unwrap(),
    ];
    let mut p: i64 = 1;
    for _ in 0..19 {
        for n in [p - 1, p, p + 1, 2 * p, 5 * p - 1] {
            numbers.push(Number::from(n));
            numbers.push(Number::from(-n));
        }
        p = p.saturating_mul(10);
    }
    let mut next = crate::testing::xorshift(0x5eed_0028);
    numbers.extend((0..10_000).map(|_| Number::from(next() as i64 >> (next() % 64))));
    for n in numbers {
        assert_eq!(number_text(&n, &bump), n.to_string());
    }
}
