//! attack29 (session 29): the request tree's parser ([`tree::parse`]) against `parse_strict`
//! on inputs built to reach the corners of its hot paths (perf29b: keys, strings after a
//! colon and numbers read a word at a time, an object's first entry read before the key
//! stack's set-up, `str::get` slicing; perf29a: whitespace kept in a container's text).
//!
//! Invariant: for every input, both accept (the same value; written, and written from the
//! source, JSON that reads back as that value, with only JSON's four whitespace bytes outside
//! its strings) or both refuse with the same reason; never a panic. Systematic, not random:
//! every length, every offset, every truncation, in every place the parser reads the token.

use esgate_es::request::body::parse_strict;
use esgate_es::request::tree::{self, Arena, Node};
use serde_json::Value;

/// `json`'s bytes outside its strings are JSON (no byte but the four whitespace ones a
/// lenient parser might skip), and `json` reads back as `value`.
fn reads_as(json: &[u8], value: &Value, shown: &str) {
    let (mut inside, mut escaped) = (false, false);
    for &c in json {
        if inside {
            match (escaped, c) {
                (false, b'\\') => escaped = true,
                (false, b'"') => inside = false,
                _ => escaped = false,
            }
        } else {
            assert!(
                c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\n' | b'\r'),
                "byte {c:#x} outside a string: {shown}"
            );
            inside = c == b'"';
        }
    }
    let back: Value = serde_json::from_slice(json)
        .unwrap_or_else(|e| panic!("{e}: {} from {shown}", String::from_utf8_lossy(json)));
    assert_eq!(&back, value, "{shown}");
}

thread_local! {
    /// How many inputs this thread's test saw accepted (so a test can tell it reached both).
    static ACCEPTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The same decision and reason as `parse_strict`; accepted, the same value, written as it.
fn agrees(input: &[u8]) {
    let shown = format!("{:?}", String::from_utf8_lossy(input));
    let arena = Arena::for_body(input.len());
    match (tree::parse(input, &arena), parse_strict(input)) {
        (Ok(node), Ok(value)) => {
            ACCEPTED.with(|n| n.set(n.get() + 1));
            assert_eq!(node.to_value(), value, "{shown}");
            let mut out = Vec::new();
            tree::write(&node, &mut out);
            reads_as(&out, &value, &shown);
            // As a rewrite writes it: the top object opened, its entries copied from the
            // source where they stand in it.
            if let Node::Parsed(p) = &node {
                if p.is_object() {
                    let mut opened = node.clone();
                    opened.open();
                    let mut out = Vec::new();
                    tree::write_from(&opened, input, &mut out);
                    reads_as(&out, &value, &shown);
                }
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{shown}"),
        (a, b) => panic!("{shown}: tree {a:?}, parse_strict {b:?}"),
    }
}

/// Every prefix of `body` (a body truncated at every byte), and the body itself.
fn every_prefix(body: &[u8]) {
    for end in 0..=body.len() {
        agrees(&body[..end]);
    }
}

/// The places a token is read by the parser, `T` standing for it: alone, as an array's first,
/// middle and last item, as an object's first (one-key), first of two, and second value, in
/// nested objects, after whitespace, before the body's end.
const PLACES: &[&str] = &[
    "T",
    " T ",
    "[T]",
    "[T,1]",
    "[1,T]",
    "[1,T,2]",
    "[ T ]",
    "{\"a\":T}",
    "{\"a\":T,\"b\":1}",
    "{\"b\":1,\"a\":T}",
    "{\"a\": T }",
    "{\"a\":{\"b\":T}}",
    "{\"a\":[T],\"b\":{\"c\":T}}",
    "[T",
    "{\"a\":T",
    "{\"a\":T,",
];

/// Numbers of every length from 1 to 40, with signs, fractions, exponents (of every sign and
/// of 1 to 5 digits, up to overflow and underflow), leading zeros, and the malformed ones
/// next to them (`+1`, `01`, `1.`, `.5`, `1e`, `1e+`, `-`, `--1`, `0x1`, `1_0`, `NaN`).
fn numbers() -> Vec<String> {
    let digits =
        |n: usize| -> String { (0..n).map(|i| char::from(b"1234567890"[i % 10])).collect() };
    let mut out = Vec::new();
    for n in 1..=40 {
        let d = digits(n);
        out.push(d.clone());
        out.push(format!("-{d}"));
        out.push(format!("+{d}"));
        out.push(format!("0{d}"));
        out.push(format!("-0{d}"));
        out.push(format!("9{}", "9".repeat(n - 1)));
        out.push(format!("-9{}", "9".repeat(n - 1)));
        out.push(format!("0.{d}"));
        out.push(format!("-0.{d}"));
        out.push(format!("{d}."));
        out.push(format!(".{d}"));
        let (a, b) = d.split_at(n / 2);
        if !a.is_empty() {
            out.push(format!("{a}.{b}"));
            out.push(format!("-{a}.{b}e{}", n % 7));
        }
        for e in ["e", "E", "e+", "e-", "E+", "E-"] {
            out.push(format!("{d}{e}"));
            for exp in ["0", "1", "01", "308", "309", "324", "400", "99999"] {
                out.push(format!("{d}{e}{exp}"));
                out.push(format!("-{d}.5{e}{exp}"));
            }
        }
    }
    for odd in [
        "0",
        "-0",
        "-0.0",
        "0.0",
        "-",
        "--1",
        "-+1",
        "0x1",
        "1_0",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e",
        "1.e1",
        "1.0e",
        "1e1.5",
        "1ee1",
        "00",
        "-00",
        "0e0",
        "0E-0",
        "1.0.0",
        "1-1",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "5e-324",
        "2e-324",
        "4.9e-324",
        "1e-400",
    ] {
        out.push(odd.to_string());
    }
    out
}

#[test]
fn numbers_of_every_length_and_form_in_every_place() {
    for n in numbers() {
        for place in PLACES {
            agrees(place.replace('T', &n).as_bytes());
        }
        // Glued to what may follow it: a letter, a second number, a quote, whitespace.
        for after in ["a", "1", "\"", " 1", ".", "e", "-", "\u{7f}", "\u{0}"] {
            agrees(format!("[{n}{after}]").as_bytes());
            agrees(format!("{{\"a\":{n}{after}}}").as_bytes());
        }
    }
}

/// What a key or string is made of: plain ASCII and multi-byte UTF-8, DEL, the escapes, and
/// what is refused (raw control characters, a raw quote, invalid UTF-8: a lone continuation
/// byte, a truncated sequence, an overlong form, a surrogate, a byte past U+10FFFF, 0xFF).
const PIECES: &[&[u8]] = &[
    b"k",
    "\u{e9}".as_bytes(),
    "\u{65e5}".as_bytes(),
    "\u{1f600}".as_bytes(),
    b"\x7f",
    b"\\\"",
    b"\\\\",
    b"\\n",
    b"\\/",
    b"\\u0041",
    b"\\u00e9",
    b"\\ud83d\\ude00",
    b"\\ud83d",
    b"\\u12",
    b"\\x",
    b"\\",
    b"\x00",
    b"\x1f",
    b"\t",
    b"\n",
    b"\"",
    b"\x80",
    b"\xc3",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xff",
];

/// A text of `len` plain bytes with `piece` put at `at` (`at <= len`).
fn text_with(len: usize, piece: &[u8], at: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + piece.len());
    out.extend(std::iter::repeat_n(b'k', at));
    out.extend_from_slice(piece);
    out.extend(std::iter::repeat_n(b'k', len - at));
    out
}

/// `before`, `text` between quotes, then `after`.
fn quoted(before: &[u8], text: &[u8], after: &[u8]) -> Vec<u8> {
    let mut b = before.to_vec();
    b.push(b'"');
    b.extend_from_slice(text);
    b.push(b'"');
    b.extend_from_slice(after);
    b
}

/// Keys of every length from 0 to 40 (around the 8- and 16-byte words), each piece at every
/// offset, in an object's first (one-key) and later entries, beside a duplicate of itself, at
/// depth, and at the body's end (cut inside the key, after it, after its colon).
#[test]
fn keys_of_every_length_with_every_piece_at_every_offset() {
    for len in 0..=40 {
        let plain = text_with(len, b"", 0);
        let mut keys = vec![plain];
        for piece in PIECES {
            for at in 0..=len {
                keys.push(text_with(len, piece, at));
            }
        }
        for key in keys {
            let k = |before: &[u8], after: &[u8]| quoted(before, &key, after);
            for body in [
                k(b"{", b":1}"),
                k(b"{", b":1,\"z\":2}"),
                k(b"{\"z\":2,", b":1}"),
                k(b"{\"a\":{", b":[]}}"),
                k(b"{", b" : 1 }"),
                k(b"{", b""),
                k(b"{", b":"),
                k(b"{", b":1"),
                k(b"{\"z\":2,", b""),
            ] {
                agrees(&body);
            }
            // Duplicates: as the first and second entries, apart, in a one-key object, deep.
            let mut dup = b"{".to_vec();
            dup.extend(k(b"", b":1,"));
            dup.extend(k(b"", b":2}"));
            agrees(&dup);
            let mut dup = b"{".to_vec();
            dup.extend(k(b"", b":{},\"x\":1,"));
            dup.extend(k(b"", b":[]}"));
            agrees(&dup);
            let mut deep = b"{\"a\":{\"b\":{".to_vec();
            deep.extend(k(b"", b":1,"));
            deep.extend(k(b"", b":2}}}"));
            agrees(&deep);
        }
    }
}

/// Strings after a colon and as items, of every length from 0 to 40, each piece at every
/// offset, cut at the body's end inside and after them.
#[test]
fn strings_of_every_length_with_every_piece_at_every_offset() {
    for len in 0..=40 {
        for piece in PIECES.iter().copied().chain([&b""[..]]) {
            for at in 0..=len {
                let s = text_with(len, piece, at);
                let with = |before: &[u8], after: &[u8]| quoted(before, &s, after);
                for body in [
                    with(b"{\"a\":", b"}"),
                    with(b"{\"a\":", b",\"b\":1}"),
                    with(b"{\"a\": ", b" }"),
                    with(b"[", b"]"),
                    with(b"[", b",\"x\"]"),
                    with(b"[\"x\",", b"]"),
                    with(b"", b""),
                    with(b"{\"a\":", b""),
                    with(b"[", b""),
                ] {
                    agrees(&body);
                }
                // Cut inside the string.
                let mut open = b"{\"a\":\"".to_vec();
                open.extend_from_slice(&s);
                agrees(&open);
            }
        }
    }
}

/// Bodies of every shape the parser has a path for, truncated at every byte and with every
/// byte in turn replaced by each of a few that change its meaning.
#[test]
fn every_truncation_and_byte_change_of_request_shaped_bodies() {
    let bodies: Vec<String> = vec![
        r#"{"size":0,"query":{"bool":{"filter":[{"range":{"@timestamp":{"gte":1700000000000,"lte":1700003600000,"format":"epoch_millis"}}}]}},"aggs":{"2":{"date_histogram":{"field":"@timestamp","fixed_interval":"30s","min_doc_count":0}}}}"#.into(),
        r#"{"query":{"terms":{"user.id":["a","bb","ccc","dddd","eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"]}},"_source":["*"],"sort":[{"@timestamp":{"order":"desc","unmapped_type":"boolean"}}],"size":500}"#.into(),
        "{\n  \"a\": [1, -2.5e-3, 0, \"\u{e9}\\u00e9\"],\n  \"bb\" : { \"c\" : null , \"d\":true,\"e\":false },\n  \"x\":{}, \"y\":[ ], \"z\":[{}]\n}".into(),
        r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17}"#.into(),
        r#"[["a","b"],["c"],[],[""],["\"","x"],{"a":{"a":{"a":{}}}}]"#.into(),
    ];
    for body in &bodies {
        every_prefix(body.as_bytes());
        for i in 0..body.len() {
            for b in [
                b'"', b'\\', b',', b':', b'}', b']', b' ', 0, 0x80, b'0', b'e', b'-',
            ] {
                let mut changed = body.as_bytes().to_vec();
                changed[i] = b;
                agrees(&changed);
            }
            let mut cut = body.as_bytes().to_vec();
            cut.remove(i);
            agrees(&cut);
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Whitespace between tokens: mostly none or JSON's, now and then a byte that is not.
fn gap(r: &mut Rng, out: &mut Vec<u8>) {
    match r.below(40) {
        0..=24 => {}
        25..=36 => {
            for _ in 0..=r.below(3) {
                out.push([b' ', b'\t', b'\n', b'\r'][r.below(4)]);
            }
        }
        37 => out.push([0x0b, 0x0c, 0x00, 0x7f, 0x1f][r.below(5)]),
        38 => out.extend_from_slice(["\u{a0}", "\u{feff}", "\u{2028}"][r.below(3)].as_bytes()),
        _ => out.extend_from_slice(b"/**/"),
    }
}

/// A key or string: plain letters of a length around the word sizes, pieces now and then.
fn text(r: &mut Rng, keys: &[&[u8]], out: &mut Vec<u8>) {
    out.push(b'"');
    if !keys.is_empty() && r.below(6) == 0 {
        // A key of this object again (a duplicate) or a prefix-sharing one.
        out.extend_from_slice(keys[r.below(keys.len())]);
        if r.below(2) == 0 {
            out.push(b'x');
        }
    } else {
        let len = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40][r.below(14)];
        for i in 0..len {
            if r.below(12) == 0 {
                out.extend_from_slice(PIECES[r.below(PIECES.len())]);
            } else {
                out.push(b"abcdefghij"[i % 10]);
            }
        }
    }
    out.push(b'"');
}

fn value(r: &mut Rng, depth: usize, numbers: &[String], out: &mut Vec<u8>) {
    match r.below(if depth > 6 { 5 } else { 8 }) {
        0 => out.extend_from_slice(numbers[r.below(numbers.len())].as_bytes()),
        1 => text(r, &[], out),
        2 => out.extend_from_slice([&b"true"[..], b"false", b"null", b"tru", b"nul"][r.below(5)]),
        3 | 4 => out.extend_from_slice(numbers[r.below(64)].as_bytes()),
        5 => {
            out.push(b'[');
            let n = r.below(5);
            for i in 0..n {
                gap(r, out);
                if i > 0 {
                    out.push(b',');
                    gap(r, out);
                }
                value(r, depth + 1, numbers, out);
            }
            gap(r, out);
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            let n = r.below(6);
            let mut starts = Vec::new();
            for i in 0..n {
                gap(r, out);
                if i > 0 {
                    out.push(b',');
                    gap(r, out);
                }
                let at = out.len() + 1;
                let before: Vec<Vec<u8>> = starts.clone();
                let keys: Vec<&[u8]> = before.iter().map(Vec::as_slice).collect();
                text(r, &keys, out);
                starts.push(out[at..out.len() - 1].to_vec());
                gap(r, out);
                out.push(b':');
                gap(r, out);
                value(r, depth + 1, numbers, out);
            }
            gap(r, out);
            out.push(b'}');
        }
    }
}

/// Random bodies of that grammar (spacing, duplicate keys, pieces, numbers of every form),
/// and each cut at a random place or with a random byte changed.
#[test]
fn random_bodies_and_their_mutations_agree() {
    let numbers = numbers();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let runs = 60_000;
    for _ in 0..runs {
        let mut body = Vec::new();
        gap(&mut r, &mut body);
        value(&mut r, 0, &numbers, &mut body);
        gap(&mut r, &mut body);
        agrees(&body);
        if !body.is_empty() {
            let at = r.below(body.len());
            agrees(&body[..at]);
            let mut changed = body.clone();
            changed[at] =
                [b'"', b'\\', b',', b':', b'}', b']', b'{', b'[', b' ', 0x80][r.below(10)];
            agrees(&changed);
        }
    }
    // Both sides reached: a good share of the unchanged bodies is accepted.
    let accepted = ACCEPTED.with(std::cell::Cell::get);
    assert!(
        accepted > runs / 4 && accepted < 2 * runs,
        "{accepted} of {runs}"
    );
}

/// What the arena's flags should say of `v`: whether a key is `knn`, whether one is
/// `inner_hits`, how many are `highlight`, how many objects it holds.
fn flags_of(v: &Value, out: &mut (bool, bool, usize, usize)) {
    match v {
        Value::Object(m) => {
            out.3 += 1;
            for (k, v) in m {
                out.0 |= k == "knn";
                out.1 |= k == "inner_hits";
                out.2 += usize::from(k == "highlight");
                flags_of(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| flags_of(i, out)),
        _ => {}
    }
}

/// The routing flags the parse keeps (a `knn` or `inner_hits` key sends a search to the serde
/// path, which alone checks inner hits' names; `highlight` keys are counted; objects are
/// counted for the clause copies' claim) are what the value holds, for the flag keys and their
/// near misses, plain or escaped, as an object's first (one-key) entry or a later one, deep,
/// in arrays, and beside duplicates' refusals: a missed `inner_hits` would take a search the
/// serde path must check onto the tree path.
#[test]
fn the_flag_keys_are_found_wherever_and_however_spelled() {
    let keys = [
        "knn",
        "\\u006bnn",
        "kn\\u006e",
        "inner_hits",
        "inner\\u005fhits",
        "\\u0069nner_hits",
        "inner_hit\\u0073",
        "highlight",
        "highligh\\u0074",
        "\\u0068ighlight",
        "kn",
        "knnn",
        "Knn",
        "inner_hit",
        "inner_hitss",
        "inner-hits",
        "highlights",
        "highlighT",
        "highlight ",
        "x",
        "",
    ];
    let shapes = [
        "{K:1}",
        "{K:{}}",
        "{\"a\":1,K:2}",
        "{K:1,\"a\":2}",
        "{\"a\":{K:{}}}",
        "{\"a\":[{K:1},{\"b\":{K:2}}]}",
        "[{K:null}]",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17,K:18}",
        "{ K : 1 }",
        "{\"query\":{\"nested\":{\"path\":\"p\",\"query\":{},K:{}}},K:{\"fields\":{}}}",
    ];
    for k in keys {
        for k2 in ["highlight", "inner_hits", "knn", "z"] {
            for shape in shapes {
                let body = shape
                    .replacen('K', &format!("\"{k}\""), 1)
                    .replace('K', &format!("\"{k2}\""));
                let arena = Arena::for_body(body.len());
                match (
                    tree::parse(body.as_bytes(), &arena),
                    parse_strict(body.as_bytes()),
                ) {
                    (Ok(_), Ok(v)) => {
                        let mut want = (false, false, 0, 0);
                        flags_of(&v, &mut want);
                        let got = (
                            arena.has_knn_key(),
                            arena.has_inner_hits_key(),
                            arena.highlight_keys(),
                            arena.objects(),
                        );
                        assert_eq!(got, want, "{body}");
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "{body}"),
                    (a, b) => panic!("{body}: tree {a:?}, parse_strict {b:?}"),
                }
            }
        }
    }
}

/// Objects of 1 to 40 keys with one key repeated, for every pair of places (around the first
/// sixteen keys compared as they come and the larger objects' check when they close), the
/// repeat spelled plainly or escaped, and the same objects with no repeat: refused exactly
/// when one key is there twice.
#[test]
fn a_repeated_key_is_refused_at_every_pair_of_places() {
    for n in 1..=40 {
        let keys: Vec<String> = (0..n).map(|i| format!("k{i:02}")).collect();
        let body = |keys: &[String]| {
            let entries: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
            format!("{{{}}}", entries.join(","))
        };
        agrees(body(&keys).as_bytes());
        for i in 0..n {
            for j in i + 1..n {
                let mut dup = keys.clone();
                dup[j] = keys[i].clone();
                agrees(body(&dup).as_bytes());
                // The repeat escaped (`\u006b` is `k`): the same key once read.
                dup[j] = format!("\\u006b{}", &keys[i][1..]);
                agrees(body(&dup).as_bytes());
            }
        }
    }
}

/// Nesting at and around the depth limit, each level an object's first (one-key) entry, its
/// second entry, an array's first or later item, or a packed string list, in every mix, and
/// spaced: refused past the limit exactly as `parse_strict` refuses, whichever path read the
/// level (perf29b: an object's first entry is read apart from the others).
#[test]
fn nesting_around_the_depth_limit_in_every_kind_of_level() {
    use esgate_es::request::body::MAX_DEPTH;
    let levels: [(&str, &str); 6] = [
        ("{\"a\":", "}"),
        ("{\"z\":0,\"a\":", "}"),
        ("[", "]"),
        ("[0,", "]"),
        ("{ \"a\" : ", " }"),
        ("[ 1 , ", " ]"),
    ];
    let inner = ["0", "{}", "[]", "[\"x\",\"y\"]", "{\"b\":1}", "[[]]"];
    for depth in MAX_DEPTH - 2..=MAX_DEPTH + 2 {
        for (mix, (open, close)) in levels.iter().enumerate() {
            for core in inner {
                // One kind of level throughout, and the kinds in turn from `mix`.
                for turn in [false, true] {
                    let mut body = String::new();
                    let mut closes = Vec::new();
                    for level in 0..depth {
                        let (o, c) = if turn {
                            levels[(mix + level) % levels.len()]
                        } else {
                            (*open, *close)
                        };
                        body.push_str(o);
                        closes.push(c);
                    }
                    body.push_str(core);
                    for c in closes.iter().rev() {
                        body.push_str(c);
                    }
                    agrees(body.as_bytes());
                }
            }
        }
    }
}
