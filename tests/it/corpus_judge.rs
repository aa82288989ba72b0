//! The corpus judge (`support::corpus::judge`) tells esgate's own refusal from the backend's
//! (issue #15 item 10): before, any 4xx passed as `deny` (also a backend's 400 after esgate
//! forwarded the request) and `no_leak` accepted any answer below 500, so an over-refusal or a
//! pass-through looked like a correct answer. Each case here is given the WRONG verdict on
//! purpose against real osmem behind the recording relay, and the judge must reject it; the
//! right verdicts must pass.

use crate::support;

use serde_json::{json, Value};

use support::corpus::{self, token_a};
use support::esgate::Esgate;
use support::fixture;
use support::http::bearer;
use support::relay::Relay;

fn case(verdict: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut c = json!({"id": "JUDGE", "method": method, "path": path, "verdict": verdict});
    if let Some(b) = body {
        c["body"] = Value::String(b.to_string());
        c["headers"] = json!({"content-type": "application/json"});
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_tells_esgates_refusal_from_the_backends() {
    let backend = fixture::seeded_osmem();
    let relay = Relay::to(backend.url());
    let gw = Esgate::start(&[relay.url()], "").await;
    let (_, secret) = gw.token(token_a()).await;
    let auth = bearer(&secret);
    let judge = |c: Value| {
        let (gw, relay, auth) = (&gw, &relay, auth.clone());
        async move { corpus::judge(gw, relay, "osmem", &auth, &c).await }
    };
    // The backend's 400 for a query esgate wrapped and forwarded (an unknown analyzer).
    let backend_400 = json!({"query": {"match": {"message": {"query": "x", "analyzer": "nope"}}}});
    let count = |n: u64| {
        let mut c = case("ok", "GET", "/logs-*/_count", None);
        c["count_path"] = json!("count");
        c["expect_count"] = json!(n);
        c
    };

    // Right verdicts pass.
    assert_eq!(
        judge(case("deny", "GET", "/secret/_search", None)).await,
        Ok(())
    );
    assert_eq!(judge(count(fixture::TENANT_A_DOCS)).await, Ok(()));
    assert_eq!(
        judge(case("absent", "GET", "/logs-a/_explain/b2", None)).await,
        Ok(())
    );
    assert_eq!(
        judge(case("no_leak", "GET", "/logs-*/_search", None)).await,
        Ok(())
    );

    // A backend's refusal is not esgate's: for deny and for no_leak.
    let e = judge(case(
        "deny",
        "POST",
        "/logs-*/_search",
        Some(backend_400.clone()),
    ))
    .await
    .unwrap_err();
    assert!(
        e.contains("the backend refused what esgate forwarded"),
        "{e}"
    );
    let e = judge(case(
        "no_leak",
        "POST",
        "/logs-*/_search",
        Some(backend_400.clone()),
    ))
    .await
    .unwrap_err();
    assert!(
        e.contains("the backend refused what esgate forwarded"),
        "{e}"
    );
    // A forwarded request that the backend answers is not a denial (the explain translation
    // answers 404 after a filtered search: absent, not deny).
    let e = judge(case("deny", "GET", "/logs-a/_explain/b2", None))
        .await
        .unwrap_err();
    assert!(e.contains("expected esgate's own refusal"), "{e}");
    let e = judge(case("deny", "GET", "/logs-*/_count", None))
        .await
        .unwrap_err();
    assert!(e.contains("expected esgate's own refusal"), "{e}");
    // Over-refusal fails `ok`, a wrong number fails `ok`.
    let mut refused = case("ok", "GET", "/secret/_count", None);
    refused["count_path"] = json!("count");
    refused["expect_count"] = json!(0);
    assert!(judge(refused).await.unwrap_err().contains("expected 200"));
    assert!(judge(count(fixture::TENANT_A_DOCS + 1)).await.is_err());
    // A refusal is not the 404 of a missing document.
    assert!(judge(case("absent", "GET", "/secret/_explain/s1", None))
        .await
        .is_err());

    // backend_refuses: accepted only while the backend does refuse, and only with the token's
    // filter in what was forwarded.
    let mut expected = case("no_leak", "POST", "/logs-*/_search", Some(backend_400));
    expected["backend_refuses"] = json!(["osmem"]);
    assert_eq!(judge(expected).await, Ok(()));
    let mut stale = case("no_leak", "GET", "/logs-*/_search", None);
    stale["backend_refuses"] = json!(["osmem"]);
    let e = judge(stale).await.unwrap_err();
    assert!(e.contains("judge the case by its verdict"), "{e}");
    let mut other_backend = case("deny", "POST", "/logs-*/_search", Some(json!({})));
    other_backend["backend_refuses"] = json!(["noida"]);
    assert!(judge(other_backend).await.is_err());
}
