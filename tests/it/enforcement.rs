//! Enforcement against a real backend seeded with the security fixture (two tenants with leak
//! markers, a foreign index `secret`, an alias `logs-sa` → `secret`).
//!
//! `attack_corpus_is_denied_or_leak_free` replays `tests/data/attacks.jsonl` with a token for
//! tenant `a` on `logs-*`, esgate in front of a recording relay, and judges each case as
//! `support::corpus` says: `deny` = esgate's own 4xx with nothing forwarded to the backend;
//! `no_leak` = a 2xx or esgate's own refusal, no marker, no count above what tenant a may see;
//! `ok` = 200 and the value at `count_path` equals `expect_count`; a backend error fails any case.

use crate::support;

use bytes::Bytes;
use serde_json::json;

use support::corpus::{self, token_a};
use support::esgate::Esgate;
use support::fixture::{self, contains_leak_marker};
use support::http::{bearer, send};
use support::relay::Relay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_corpus_is_denied_or_leak_free() {
    let backend = fixture::seeded_osmem();
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let cases = corpus::cases();
    let mut failures = vec![];
    for case in &cases {
        if let Err(e) = corpus::judge(&gw, &relay, "osmem", &auth, case).await {
            failures.push(e);
        }
    }
    assert!(cases.len() > 100, "the corpus is loaded");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

async fn count(gw: &Esgate, secret: &str, path: &str) -> u64 {
    let r = send(
        "GET",
        &gw.url(path),
        &[("authorization", &bearer(secret))],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["count"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_any_of_per_field_and_all_of_across_fields() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, both) = gw
        .token(json!({"name": "ab", "indices": ["logs-*"], "filters": [
            {"field": "tenant", "value": "a"}, {"field": "tenant", "value": "b"}]}))
        .await;
    assert_eq!(
        count(&gw, &both, "/logs-*/_count").await,
        fixture::TENANT_A_DOCS + fixture::TENANT_B_DOCS
    );
    let (_, a_in_logs_a) = gw
        .token(
            json!({"name": "a-logs-a", "indices": ["logs-*"], "filters": [
            {"field": "tenant", "value": "a"}, {"field": "_index", "value": "logs-a"}]}),
        )
        .await;
    assert_eq!(
        count(&gw, &a_in_logs_a, "/logs-*/_count").await,
        fixture::TENANT_A_PER_LOGS_INDEX
    );
    let (_, none) = gw
        .token(json!({"name": "none", "indices": ["logs-*"], "filters": [
            {"field": "tenant", "value": "a"}, {"field": "tenant", "value": "zzz"}, {"field": "user", "value": "nobody"}]}))
        .await;
    assert_eq!(count(&gw, &none, "/logs-*/_count").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_filter_change_applies_to_the_next_request() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, f) = gw
        .admin(
            "POST",
            "/filters",
            Some(json!({"field": "tenant", "value": "a"})),
        )
        .await;
    let fid = f["id"].as_str().unwrap().to_owned();
    let (_, secret) = gw
        .token(json!({"name": "lib", "indices": ["logs-*"], "filters": [fid]}))
        .await;
    let search = |secret: String| {
        let url = gw.url("/logs-*/_search?size=50");
        async move {
            let r = send(
                "GET",
                &url,
                &[("authorization", &bearer(&secret))],
                Bytes::new(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 200);
            r
        }
    };
    let r = search(secret.clone()).await;
    assert!(!contains_leak_marker(&r.body));
    assert_eq!(r.json()["hits"]["total"]["value"], fixture::TENANT_A_DOCS);
    let (s, _) = gw
        .admin(
            "PATCH",
            &format!("/filters/{fid}"),
            Some(json!({"value": "b"})),
        )
        .await;
    assert_eq!(s, 200);
    let r = search(secret.clone()).await;
    assert_eq!(r.json()["hits"]["total"]["value"], fixture::TENANT_B_DOCS);
    assert!(
        r.text().contains("LEAKMARKERB"),
        "now the token sees tenant b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tokens_may_not_write_or_administer() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    for (m, p, b) in [
        ("PUT", "/logs-a/_doc/new?refresh=true", r#"{"tenant":"a"}"#),
        (
            "POST",
            "/logs-a/_bulk",
            "{\"index\":{}}\n{\"tenant\":\"a\"}\n",
        ),
        ("DELETE", "/logs-a/_doc/a1", ""),
        ("PUT", "/new-index", ""),
        (
            "POST",
            "/logs-a/_delete_by_query",
            r#"{"query":{"match_all":{}}}"#,
        ),
        ("PUT", "/_cluster/settings", r#"{"persistent":{}}"#),
    ] {
        let r = send(m, &gw.url(p), &[("authorization", &auth)], b.to_owned())
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "security_exception");
    }
    // Nothing changed on the backend.
    let r = send(
        "GET",
        &format!("{}/logs-a/_count", backend.url()),
        &[],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.json()["count"], fixture::LOGS_A_DOCS);
}
