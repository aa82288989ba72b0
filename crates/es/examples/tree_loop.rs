//! Issue 10: the body parse and serialisation alone, for instruction counts under callgrind:
//! `tree` (the borrowed strict tree, `request::tree`) against `serde` (`body::parse_strict`
//! into serde_json's tree and `serde_json::to_vec`), each parsing, writing and dropping one
//! body N times.
//!
//! ```text
//! python3 benches/load/bodies.py /tmp
//! cargo build --release -p esgate-es --example tree_loop
//! valgrind --tool=callgrind target/release/examples/tree_loop tree /tmp/post2k.json 1000
//! ```
//! Instructions per iteration: (total of N iterations - total of 0 iterations) / N.

use std::hint::black_box;

use esgate_es::request::{body, tree};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let how = args.next().unwrap_or_else(|| "tree".into());
    let path = args.next().expect("a body file");
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let bytes = std::fs::read(path).expect("readable body file");
    let mut written = 0usize;
    for _ in 0..n {
        let input = black_box(&bytes[..]);
        let out = match how.as_str() {
            "tree" => {
                let arena = tree::Arena::for_body(input.len());
                let node = tree::parse(input, &arena).expect("valid body");
                let mut out = Vec::with_capacity(input.len() + 64);
                tree::write(&node, &mut out);
                out
            }
            "serde" => {
                let value = body::parse_strict(input).expect("valid body");
                serde_json::to_vec(&value).expect("serialisable")
            }
            other => panic!("unknown {other}: tree or serde"),
        };
        written += black_box(out).len();
    }
    println!("{how}: {n} iterations, {written} bytes written");
}
