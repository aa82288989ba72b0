//! attack26e: the SQL query check alone (`querylang::sql::parse`: lexing, the structure, the
//! full-text, percentile-method and metadata-pattern checks) on one typical `_sql` query, for
//! instruction counts under callgrind.
//!
//! ```text
//! cargo build --release -p esgate-es --example sql_parse_loop
//! valgrind --tool=callgrind target/release/examples/sql_parse_loop 200
//! ```
//! Instructions per iteration: (total of N iterations - total of 0 iterations) / N.

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    // A Kibana-like aggregation: a percentile without a method, a full-text condition.
    let q = "SELECT host, COUNT(*) AS c, AVG(bytes), PERCENTILE(bytes, 95) AS p95 FROM logs-a WHERE status >= 500 AND MATCH(message, 'timeout') GROUP BY host ORDER BY c DESC LIMIT 20";
    let mut total = 0usize;
    for _ in 0..n {
        let p = esgate_es::querylang::sql::parse(black_box(q)).expect("accepted");
        total += p.table.len();
    }
    println!("{total}");
}
