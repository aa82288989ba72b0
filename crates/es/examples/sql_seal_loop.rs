//! perf27b: a SQL answer's seal and the read of its cursor for the count of open cursors, for
//! instruction counts under callgrind: `before` seals (`routes::seal_answer`) and then reads
//! the cursor (`continuation::named_id`, a second pass over the answer), as the proxy did until
//! perf27b; `after` takes both from the seal's one pass (`routes::seal_answer_named`). A 2 KB
//! answer of 20 rows and a 360-byte cursor.
//!
//! ```text
//! cargo build --release -p esgate-es --example sql_seal_loop
//! valgrind --tool=callgrind target/release/examples/sql_seal_loop after 200
//! ```
//! Instructions per iteration: (total of N iterations - total of 0 iterations) / N.

use std::hint::black_box;
use std::sync::Arc;

use esgate_es::ids::continuation::{self, Binding, IdKey, IdKind, Seal};
use esgate_es::memory::Meter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let rows: Vec<String> = (0..20)
        .map(|i| format!(r#"["host-{i:02}.example.org","GET /api/v1/items/{i} HTTP/1.1 200 timeout retry",{i}]"#))
        .collect();
    let cursor = "Z0FBQUFBQUFBQUJCQkJCQkJD".repeat(15);
    let answer = format!(
        r#"{{"columns":[{{"name":"host","type":"keyword"}},{{"name":"message","type":"text"}},{{"name":"n","type":"long"}}],"rows":[{}],"cursor":"{}"}}"#,
        rows.join(","),
        cursor
    );
    eprintln!("answer {} bytes, cursor {}", answer.len(), cursor.len());
    let b = Binding {
        token_id: Arc::from("tok_a"),
        key: Arc::new(IdKey::new([7; 32])),
    };
    let seal = Seal {
        field: "cursor",
        kind: IdKind::SqlCursor,
        required: false,
        release: None,
    };
    let mut total = 0usize;
    for _ in 0..n {
        let body = black_box(answer.as_bytes());
        match mode.as_str() {
            "before" => {
                let out = esgate_es::routes::seal_answer(
                    &b,
                    Some(seal),
                    None,
                    true,
                    body,
                    &Meter::unlimited(),
                )
                .unwrap()
                .unwrap();
                let named = continuation::named_id(seal.field, body);
                total += out.len() + usize::from(matches!(named, continuation::Named::Id(_)));
            }
            "after" => {
                let (out, named) = esgate_es::routes::seal_answer_named(
                    &b,
                    Some(seal),
                    None,
                    true,
                    body,
                    &Meter::unlimited(),
                )
                .unwrap();
                total +=
                    out.unwrap().len() + usize::from(matches!(named, continuation::Named::Id(_)));
            }
            _ => panic!("before or after"),
        }
    }
    println!("{total}");
}
