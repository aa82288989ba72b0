//! Security review: the attack corpus (`tests/data/attacks.jsonl`) replayed against the second
//! backend, noida-db, which speaks the Elasticsearch 8 dialect (top-level kNN, `_pit`, Painless,
//! 404 from `_resolve/index` for missing names), so that a case proven harmless on osmem is not
//! an osmem artefact. Verdicts judged by `support::corpus` as in `tests/it/enforcement.rs`, esgate
//! behind a recording relay so that a `deny` is proven to be esgate's own refusal.
//!
//! Invariant: the corpus file is shared with `enforcement.rs`; nothing here changes it.

use crate::support;

use support::corpus;
use support::esgate::Esgate;
use support::fixture;
use support::http::{bearer, send};
use support::relay::Relay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_corpus_holds_on_the_elasticsearch_dialect_backend() {
    let backend = fixture::seeded_noida();
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(corpus::token_a()).await;
    let auth = bearer(&secret);
    let cases = corpus::cases();
    let n = cases.len();
    let mut failures = vec![];
    for case in &cases {
        // OpenSearch's point-in-time route does not exist on an Elasticsearch-dialect backend
        // (noida would run it as an unfiltered search): esgate answers it like Elasticsearch
        // answers a route it does not have, without forwarding it (issue #8.6,
        // tests/it/route_scope.rs proves nothing reaches the backend).
        if case["id"] == "REV-PATH-19" {
            relay.take();
            let r = send(
                "POST",
                &gw.url("/logs-*/_search/point_in_time?keep_alive=1m"),
                &[("authorization", &auth)],
                Vec::new(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 400, "{}", r.text());
            assert!(!fixture::contains_leak_marker(&r.body));
            let forwarded: Vec<_> = relay
                .take()
                .into_iter()
                .filter(|p| !p.is_lookup())
                .collect();
            assert!(
                forwarded.is_empty(),
                "REV-PATH-19 reached noida: {forwarded:?}"
            );
            continue;
        }
        if let Err(e) = corpus::judge(&gw, &relay, "noida", &auth, case).await {
            failures.push(e);
        }
    }
    assert!(n > 300, "the corpus is loaded ({n} cases)");
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed on noida:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
