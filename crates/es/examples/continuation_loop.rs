//! attack27a: sealing and opening a continuation id (`ids::continuation::seal_page` and
//! `open_paged`: the MAC, the keystream and base64) for a scroll id of about Elasticsearch's
//! size over two shards, for instruction counts under callgrind.
//!
//! ```text
//! cargo build --release -p esgate-es --example continuation_loop
//! valgrind --tool=callgrind target/release/examples/continuation_loop 200
//! ```
//! Instructions per iteration: (total of N iterations - total of 0 iterations) / N.

use std::hint::black_box;
use std::sync::Arc;

use esgate_es::ids::continuation::{open_paged, seal_page, Binding, IdKey, IdKind};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let binding = Binding {
        // A scoped token id: the id, then the scope's digest.
        token_id: "tok_4f1c2a9e8b7d6c5f\u{1f}0123456789abcdef0123456789abcdef".into(),
        key: Arc::new(IdKey::new([7; 32])),
    };
    let backend = "FGluY2x1ZGVfY29udGV4dF91dWlkDnF1ZXJ5VGhlbkZldGNoAhZ0Y2RfTnJ0QlJ5cUZkRGNHOXJ4b1dBAAAAAAAAAAQWT0ZKVXFpN1ZSX3FkMkpVa0N0VG1kQRZ0Y2RfTnJ0QlJ5cUZkRGNHOXJ4b1dBAAAAAAAAAAUWT0ZKVXFpN1ZSX3FkMkpVa0N0VG1kQQ==";
    let mut total = 0usize;
    for _ in 0..n {
        let sealed = seal_page(
            black_box(&binding),
            IdKind::Scroll,
            black_box(backend),
            20_000,
        );
        let (id, page) = open_paged(black_box(&binding), IdKind::Scroll, &sealed).expect("opens");
        total += id.len() + page.unwrap_or(0);
    }
    println!("{total}");
}
