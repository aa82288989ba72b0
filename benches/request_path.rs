//! The per-request work esgate adds in front of Elasticsearch, without the network: parsing
//! the credential and finding the token, then classifying, checking and rewriting a search.
//! The goal (ARCHITECTURE.md) is to stay in the range of what nginx spends on basic auth.
//!
//! Run: `cargo bench --bench request_path`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use esgate::auth::{self, credential, secret::Secret};
use esgate::es::{self, RequestHead};
use esgate::store::model::{FieldValue, FilterRef, Permission, Token};
use esgate::store::{Change, Persistence, Store, StoreError};

#[path = "support/shapes.rs"]
mod shapes;
use shapes::{kibana_2k, kibana_2k_spaced, msearch_20, resolution_for, scope, terms_200k};

/// The allocator the esgate binary runs with: allocation is a large share of the work measured.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Memory(Vec<Change>);

impl Persistence for Memory {
    fn load(&mut self) -> Result<Vec<Change>, StoreError> {
        Ok(std::mem::take(&mut self.0))
    }
    fn append(&mut self, _: &[Change]) -> Result<(), StoreError> {
        Ok(())
    }
}

fn store_with_tokens(n: usize) -> (Store, Secret) {
    let mut changes = Vec::with_capacity(n);
    let mut last = None;
    for i in 0..n {
        let secret = Secret::generate();
        changes.push(Change::PutToken {
            token: Token {
                id: format!("tok_{i:016}"),
                name: format!("t{i}"),
                secret_hash: secret.hash(),
                filters: vec![FilterRef::Inline(FieldValue {
                    field: "tenant".into(),
                    value: "a".into(),
                })],
                indices: vec!["logs-*".into()],
                permissions: [Permission::Read].into_iter().collect(),
                created_at: 0,
                expires_at: None,
                ip_filter: None,
                previous_secret: None,
                limits: Default::default(),
                kibana_spaces: vec!["default".into()],
                scores: None,
            },
        });
        last = Some(secret);
    }
    (
        Store::open(Box::new(Memory(changes))).expect("store"),
        last.expect("a token"),
    )
}

fn authenticate(c: &mut Criterion) {
    for n in [10_000, 100_000] {
        let (store, secret) = store_with_tokens(n);
        let header = format!("Bearer {}", secret.expose());
        c.bench_function(
            &format!("authenticate bearer among {}k tokens", n / 1000),
            |b| {
                b.iter(|| {
                    let snapshot = store.snapshot();
                    let cred = credential::parse(&[black_box(header.as_bytes())]).expect("parses");
                    auth::authenticate(&snapshot, &cred, 0).expect("known")
                })
            },
        );
    }
}

fn check_and_rewrite(c: &mut Criterion) {
    let scope = scope();
    let search = br#"{"size":500,"query":{"bool":{"filter":[{"range":{"@timestamp":{"gte":1700000000000,"lte":1700003600000,"format":"epoch_millis"}}},{"query_string":{"query":"level:error","analyze_wildcard":true}}]}},"sort":[{"@timestamp":{"order":"desc","unmapped_type":"boolean"}}],"aggs":{"2":{"date_histogram":{"field":"@timestamp","fixed_interval":"30s","min_doc_count":0,"extended_bounds":{"min":1700000000000,"max":1700003600000},"format":"epoch_millis"}}}}"#;
    let head = RequestHead {
        method: "POST",
        path: "/logs-*/_search",
        query: Some("typed_keys=true"),
        content_type: Some("application/json"),
        content_encoding: None,
    };
    c.bench_function("plan, prepare and authorize a Grafana-like search", |b| {
        b.iter(|| {
            let plan = es::plan(&head, &scope).expect("plan");
            let prepared =
                es::prepare(plan, Some(black_box(search)), &head, &scope).expect("prepare");
            let resolution = resolution_for(&prepared);
            es::authorize(prepared, &resolution, &scope).expect("permit")
        })
    });

    let msearch = b"{\"index\":\"logs-*\",\"ignore_unavailable\":true}\n{\"size\":0,\"query\":{\"bool\":{\"filter\":[{\"range\":{\"@timestamp\":{\"gte\":1,\"lte\":2,\"format\":\"epoch_millis\"}}}]}},\"aggs\":{\"h\":{\"date_histogram\":{\"field\":\"@timestamp\",\"fixed_interval\":\"1m\",\"min_doc_count\":0}}}}\n";
    let head = RequestHead {
        method: "POST",
        path: "/_msearch",
        query: Some("max_concurrent_shard_requests=5"),
        content_type: Some("application/x-ndjson"),
        content_encoding: None,
    };
    c.bench_function("plan, prepare and authorize a Grafana msearch", |b| {
        b.iter(|| {
            let plan = es::plan(&head, &scope).expect("plan");
            let prepared =
                es::prepare(plan, Some(black_box(&msearch[..])), &head, &scope).expect("prepare");
            let resolution = resolution_for(&prepared);
            es::authorize(prepared, &resolution, &scope).expect("permit")
        })
    });
}

/// Issue 10 goal 6: validate + inject + serialise (plan, prepare, authorize) of the bodies
/// dashboards send.
fn dashboard_bodies(c: &mut Criterion) {
    let scope = scope();
    let search = RequestHead {
        method: "POST",
        path: "/logs-a/_search",
        query: None,
        content_type: Some("application/json"),
        content_encoding: None,
    };
    let msearch = RequestHead {
        method: "POST",
        path: "/_msearch",
        query: None,
        content_type: Some("application/x-ndjson"),
        content_encoding: None,
    };
    let cases = [
        ("2 KB Kibana search", &search, kibana_2k()),
        ("2 KB Kibana search, spaced", &search, kibana_2k_spaced()),
        ("200 KB terms search", &search, terms_200k()),
        ("20-search msearch", &msearch, msearch_20()),
    ];
    for (name, head, body) in &cases {
        c.bench_function(&format!("validate, inject and serialise a {name}"), |b| {
            b.iter(|| {
                let plan = es::plan(head, &scope).expect("plan");
                let prepared =
                    es::prepare(plan, Some(black_box(&body[..])), head, &scope).expect("prepare");
                let resolution = resolution_for(&prepared);
                es::authorize(prepared, &resolution, &scope).expect("permit")
            })
        });
    }
}

/// What every finished request adds to the metrics (issue 13): the per-token counter (a known
/// token, and one past the cap), the decision counter, three histograms, two byte counters.
fn metrics_record(c: &mut Criterion) {
    use esgate::metrics::{Finished, Metrics};
    use std::time::Duration;
    let metrics = Metrics::new(Duration::from_secs(30), 1);
    let finished = |token_id| Finished {
        token_id,
        action: "search",
        allowed: true,
        outcome: "allowed",
        status: 200,
        total: Duration::from_micros(1800),
        backend: Some(Duration::from_micros(1500)),
        own: Some(Duration::from_micros(250)),
        bytes_in: 120,
        bytes_out: 4096,
    };
    metrics.record(&finished(Some("tok_first")));
    c.bench_function("metrics_record_known_token", |b| {
        b.iter(|| metrics.record(black_box(&finished(Some("tok_first")))))
    });
    c.bench_function("metrics_record_past_the_cap", |b| {
        b.iter(|| metrics.record(black_box(&finished(Some("tok_other")))))
    });
}

criterion_group!(
    benches,
    dashboard_bodies,
    check_and_rewrite,
    authenticate,
    metrics_record
);
criterion_main!(benches);
