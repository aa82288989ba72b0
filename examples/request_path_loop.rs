//! Issue 10 goal 6 as a plain loop, for instruction counts (repeatable on a busy machine, where
//! criterion's wall-clock times are not): plan, prepare and authorize one of the dashboard
//! bodies of `benches/request_path.rs` a fixed number of times.
//!
//! ```text
//! cargo build --release --example request_path_loop
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/request_path_loop kibana 1000
//! ```
//! Instructions per iteration: (total of N iterations - total of 0 iterations) / N.
//! Cases: `kibana` (2 KB search), `kibana-spaced` (the same spaced as Python's `json.dumps`
//! writes it), `terms` (200 KB search), `msearch` (20 searches); further
//! arguments: `constant` gives the token constant scores, `counted` a backend that counts empty
//! histogram buckets as it makes them (Elasticsearch 7.13+: no `hard_bounds` added; the
//! default is OpenSearch's, `es::dsl::fill`). Planned as the proxy plans: with the default
//! `max_msearch_searches` (msearch27), unless an argument says `uncapped`.

use std::hint::black_box;

use esgate::es::{self, RequestHead};

#[path = "../benches/support/shapes.rs"]
mod shapes;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "kibana".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let (body, path, content_type) = match case.as_str() {
        "kibana" => (shapes::kibana_2k(), "/logs-a/_search", "application/json"),
        "kibana-spaced" => (
            shapes::kibana_2k_spaced(),
            "/logs-a/_search",
            "application/json",
        ),
        "terms" => (shapes::terms_200k(), "/logs-a/_search", "application/json"),
        "msearch" => (shapes::msearch_20(), "/_msearch", "application/x-ndjson"),
        other => panic!("unknown case {other}: kibana, kibana-spaced, terms or msearch"),
    };
    // `constant`: the token's scores are constant (review 15, the default of a token with
    // filters); `counted`: the backend counts empty histogram buckets as it makes them;
    // `uncapped`: no `max_msearch_searches`.
    let mut scope = shapes::scope();
    let mut uncapped = false;
    for arg in args {
        match arg.as_str() {
            "constant" => {
                scope.filters =
                    std::sync::Arc::new((*scope.filters).clone().with_constant_scores(true));
            }
            "counted" => {
                scope.guard.empty_buckets = es::request::dialect::EmptyBuckets::Counted;
            }
            "uncapped" => uncapped = true,
            other => panic!("unknown option {other}: constant, counted or uncapped"),
        }
    }
    let max_searches = (!uncapped).then_some(esgate::throttle::DEFAULT_MAX_MSEARCH_SEARCHES);
    let head = RequestHead {
        method: "POST",
        path,
        query: None,
        content_type: Some(content_type),
        content_encoding: None,
    };
    let mut forwarded = 0usize;
    for _ in 0..n {
        let plan = es::plan(&head, &scope)
            .expect("plan")
            .searches_at_most(max_searches);
        let prepared =
            es::prepare(plan, Some(black_box(&body[..])), &head, &scope).expect("prepare");
        let resolution = shapes::resolution_for(&prepared);
        let permit = es::authorize(prepared, &resolution, &scope).expect("permit");
        black_box(permit);
        forwarded += 1;
    }
    println!("{case}: {n} iterations, {forwarded} permits");
}
