//! The official Elasticsearch Node client (`@elastic/elasticsearch` 8.15.3, pinned in
//! `tests/clients/node/package-lock.json`) through esgate against noida (the Elasticsearch 8.15
//! dialect), with a tenant-a token on `logs-*` over the security fixture: `helpers.search`,
//! `helpers.scrollDocuments` and `helpers.scrollSearch` send `filter_path` (issue #8, item 8:
//! they used to fail with 403), and a plain search with include and exclude filters.
//!
//! Invariant checked: every helper returns exactly tenant a's documents (n = 1..10, tenant `a`,
//! no leak marker in anything the client printed), the scroll ids the client saw are esgate's
//! sealed ids, and `filter_path` removed what it names.

use crate::support;

use serde_json::{json, Value};

use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};
use support::node;

/// Tenant a's documents as the script summarises them: n = 1..10.
fn tenant_a_docs(with_user: bool) -> Value {
    let docs: Vec<Value> = (1..=fixture::TENANT_A_DOCS)
        .map(|n| {
            json!({"tenant": "a", "n": n, "user": if with_user { json!("alice") } else { Value::Null }})
        })
        .collect();
    Value::Array(docs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_helpers_return_exactly_the_tokens_documents() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw
        .token(
            json!({"name": "tenant-a", "filters": [{"field": "tenant", "value": "a"}],
                      "indices": ["logs-*"]}),
        )
        .await;
    let url = gw.url("");
    let run = tokio::task::spawn_blocking(move || {
        node::run_script(
            "helpers.js",
            &[
                ("ESGATE_URL", url.as_str()),
                ("TOKEN_SECRET", secret.as_str()),
                ("INDEX", "logs-*"),
            ],
        )
    })
    .await
    .expect("the script runner does not panic");
    assert!(run.success, "{run}");
    assert!(!contains_leak_marker(run.stdout.as_bytes()), "{run}");
    for op in [
        "helpers_search",
        "helpers_scroll_documents",
        "helpers_scroll_search",
    ] {
        assert_eq!(run.op(op)["docs"], tenant_a_docs(true), "{op}: {run}");
    }
    assert_eq!(
        run.op("helpers_scroll_search")["scroll_ids_sealed"],
        json!(true),
        "{run}"
    );
    let plain = run.op("search_filter_path");
    assert_eq!(plain["docs"], tenant_a_docs(false), "{run}");
    assert_eq!(
        plain["total"]["value"],
        json!(fixture::TENANT_A_DOCS),
        "{run}"
    );
    assert_eq!(plain["keys"], json!(["hits"]), "{run}");
}
