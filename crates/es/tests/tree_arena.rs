//! The request tree's arena leaks nothing (issue 10, goal 6): the arena never runs
//! destructors, so anything put in it that owned memory would leak. Parsing, changing and
//! dropping many bodies (escaped strings and keys, long arrays, tapes that outgrow their first
//! room, containers opened and changed through `open`, `make_mut` and `set`, built subtrees put
//! into parsed ones, trees of several bodies sharing one arena) leaves the heap's live bytes
//! where they were.
//!
//! And a metered parse claims at least what it allocates (session 11: a body's parsed form is
//! charged to the body budget, `esgate_es::memory`).
//!
//! Its own test binary: it counts the heap through its global allocator, which a test running
//! in parallel would disturb. The tests take a lock so that they never run at once.

use std::alloc::System;
use std::borrow::Cow;

use esgate_es::memory::Meter;
use esgate_es::request::tree::{self, Arena, Node};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bodies with everything the parser may put in the arena: escaped strings and keys (built in
/// the arena), long arrays and arrays of one-digit numbers (tapes that grow), nesting.
fn bodies() -> Vec<String> {
    let long = |n: usize| {
        (0..n)
            .map(|i| format!("\"user-{i}\\n\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        r#"{"query":{"bool":{"filter":[{"term":{"a\"b":"c\\d"}},{"match":{"msg":"caf\u00e9"}}]}},"size":10}"#.into(),
        format!(r#"{{"query":{{"terms":{{"user":[{}]}}}},"aggs":{{"x":{{"terms":{{"field":"f\/g"}}}}}}}}"#, long(5000)),
        format!(r#"[[{}],{{"k\t":[1,2,{{"\u0041":[]}}]}},"\ud83d\ude00"]"#, long(70)),
        r#"{"a":{"b":[1,{"c":"x","k":[2]}],"d":[2]},"e":{"f":{}}}"#.into(),
        r#"{ "spaced" : [ 1 , "two\u0000" , { "three" : null } ] }"#.into(),
        format!("[{}]", vec!["1"; 3000].join(",")),
    ]
}

/// Changes through the public API: parsed containers opened into built ones (`open`), changed
/// (`make_mut`, `set`), owned strings and built containers put into them.
fn edit(node: &mut Node<'_>) {
    node.open();
    if let Node::Object(entries) = node {
        entries.set("timeout", Node::String(Cow::Owned("10s".to_string())));
        for (_, v) in entries.make_mut().iter_mut() {
            edit(v);
        }
        entries.make_mut().push((
            Cow::Owned("built".to_string()),
            Node::array(vec![Node::Number(Cow::Owned("1".into()))]),
        ));
    } else if let Node::Array(items) = node {
        if let Some(first) = items.make_mut().first_mut() {
            edit(first);
        }
        items.make_mut().push(Node::String(Cow::Owned("x".into())));
    }
}

fn round(bodies: &[String]) -> usize {
    let mut written = 0;
    for body in bodies {
        let arena = Arena::for_body(body.len());
        let node = tree::parse(body.as_bytes(), &arena).expect("valid body");
        let mut edited = node.clone();
        edit(&mut edited);
        let moved = match node.clone().into_entries() {
            Some(entries) => Node::object(entries),
            None => Node::array(vec![node.clone()]),
        };
        for n in [&node, &edited, &moved, &edited.reborrow()] {
            let mut out = Vec::new();
            tree::write(n, &mut out);
            written += out.len();
        }
    }
    // Several bodies in one arena (as `_msearch` does), in a small arena that must grow.
    let arena = Arena::default();
    let mut trees = Vec::new();
    for body in bodies {
        trees.push(tree::parse(body.as_bytes(), &arena).expect("valid body"));
    }
    for t in &mut trees {
        edit(t);
    }
    written + trees.len()
}

/// One test at a time: each counts the whole process's heap.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn parsing_changing_and_dropping_trees_leaks_nothing() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let bodies = bodies();
    // A first round: whatever is allocated once (thread-locals, lazy statics) is allocated.
    let mut written = round(&bodies);
    let region = Region::new(GLOBAL);
    for _ in 0..50 {
        written += round(&bodies);
    }
    let change = region.change();
    assert!(written > 0);
    assert!(change.allocations > 1000, "{change:?}");
    assert_eq!(
        change.bytes_allocated, change.bytes_deallocated,
        "{change:?}"
    );
    assert_eq!(change.allocations, change.deallocations, "{change:?}");

    // The control: an owned string put in a bump arena (what `Arena` keeps the parser from
    // doing) is never freed, and the count sees it.
    let region = Region::new(GLOBAL);
    {
        let bump = bumpalo::Bump::with_capacity(256);
        bump.alloc(String::from("leaked"));
    }
    let change = region.change();
    assert_eq!(
        change.bytes_allocated - change.bytes_deallocated,
        "leaked".len(),
        "{change:?}"
    );
}

/// Bodies whose parsed form is many times their size: one-digit numbers (a token per two
/// bytes), empty containers, short keys in wide objects (the key stack and the duplicate check's
/// hash set), escaped strings.
fn dense_bodies() -> Vec<String> {
    let keys = (0..20_000)
        .map(|i| format!("\"{i}\":0"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        format!("[{}]", vec!["1"; 200_000].join(",")),
        format!("[{}]", vec!["[]"; 100_000].join(",")),
        format!("{{{keys}}}"),
        format!("[{}]", vec![r#""\n\t""#; 50_000].join(",")),
        format!("[{}]", vec![r#"{"a":{},"b":[1,2]}"#; 20_000].join(",")),
    ]
}

#[test]
fn a_metered_parse_claims_at_least_what_it_allocates() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let grant_all = |_: usize| Ok(());
    for body in dense_bodies() {
        let meter = Meter::new(&grant_all);
        let region = Region::new(GLOBAL);
        let (claimed, live) = {
            let arena = Arena::metered(body.len(), &meter).expect("granted");
            let node = tree::parse(body.as_bytes(), &arena).expect("valid body");
            std::hint::black_box(&node);
            let change = region.change();
            (
                meter.used(),
                change.bytes_allocated - change.bytes_deallocated,
            )
        };
        // What the parse holds (its tape's old rooms included) is claimed, within bumpalo's
        // bookkeeping per chunk and the key stack's first room. An unclaimed tape (12 bytes a
        // body byte for the first body) is far outside it.
        assert!(
            live <= claimed + 4096,
            "{} bytes: claimed {claimed}, holds {live}",
            body.len()
        );
        assert!(
            claimed >= 2 * body.len(),
            "{} bytes: claimed {claimed}",
            body.len()
        );
        assert_eq!(
            meter.used(),
            0,
            "the arena returns its claims when it drops"
        );
    }
}
