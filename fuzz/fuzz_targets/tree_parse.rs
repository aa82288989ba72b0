//! Fuzz target: the request tree's parser (`tree::parse`) against `parse_strict` on arbitrary
//! bytes (attack29, session 29: the parser's hot paths rewritten, perf29b; spaced containers
//! keep their text, perf29a).
//!
//! Invariant checked: no input panics; both accept (the same value; written, and written from
//! the source with the top object opened as a rewrite opens it, JSON that reads back as that
//! value with nothing but JSON's four whitespace bytes outside its strings) or both refuse with
//! the same reason; the routing flags (`knn`, `inner_hits`, `highlight` keys, objects) are the
//! value's.
#![no_main]

use esgate::es::request::body::parse_strict;
use esgate::es::request::tree::{self, Arena, Node};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn reads_as(json: &[u8], value: &Value) {
    let (mut inside, mut escaped) = (false, false);
    for &c in json {
        if inside {
            match (escaped, c) {
                (false, b'\\') => escaped = true,
                (false, b'"') => inside = false,
                _ => escaped = false,
            }
        } else {
            assert!(c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
            inside = c == b'"';
        }
    }
    let back: Value = serde_json::from_slice(json).expect("written JSON parses");
    assert_eq!(&back, value);
}

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

fuzz_target!(|data: &[u8]| {
    let arena = Arena::for_body(data.len());
    match (tree::parse(data, &arena), parse_strict(data)) {
        (Ok(node), Ok(value)) => {
            assert_eq!(node.to_value(), value);
            let mut out = Vec::new();
            tree::write(&node, &mut out);
            reads_as(&out, &value);
            if let Node::Parsed(p) = &node {
                if p.is_object() {
                    let mut opened = node.clone();
                    opened.open();
                    let mut out = Vec::new();
                    tree::write_from(&opened, data, &mut out);
                    reads_as(&out, &value);
                }
            }
            let mut want = (false, false, 0, 0);
            flags_of(&value, &mut want);
            let got = (
                arena.has_knn_key(),
                arena.has_inner_hits_key(),
                arena.highlight_keys(),
                arena.objects(),
            );
            assert_eq!(got, want);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("tree {a:?}, parse_strict {b:?}"),
    }
});
