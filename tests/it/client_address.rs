//! The client address esgate decides IP filters on: `X-Forwarded-For` counts only when it comes
//! from a trusted proxy, and then only the address that proxy appended.
//!
//! Invariant: a client can never choose the address its token's IP filter is checked against.

use crate::support;

use serde_json::json;

use support::corpus::token_a;
use support::esgate::Esgate;
use support::fixture::{self};
use support::http::{bearer, send};

/// Finding 4: behind a trusted proxy that names the client with `Forwarded` (RFC 7239), a
/// client-supplied `X-Forwarded-For` passes through the proxy untouched and esgate prefers it,
/// so the client chooses the address its IP filter sees.
/// (found by the first security review)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_supplied_xff_does_not_override_the_trusted_proxys_forwarded() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(
        &[backend.url()],
        "[auth]\ntrusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    let (s, v) = gw
        .admin(
            "POST",
            "/ip-filters",
            Some(json!({"name": "office", "cidrs": ["203.0.113.0/24"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let mut body = token_a();
    body["ip_filter"] = json!("office");
    let auth = bearer(&gw.token(body).await.1);
    let status = |headers: Vec<(&'static str, &'static str)>| {
        let auth = auth.clone();
        let url = gw.url("/logs-*/_count");
        async move {
            let mut h: Vec<(&str, &str)> = vec![("authorization", &auth)];
            h.extend(headers);
            send("GET", &url, &h, Vec::new()).await.unwrap().status
        }
    };
    // Control: the proxy's own Forwarded header decides.
    assert_eq!(status(vec![("forwarded", "for=203.0.113.7")]).await, 200);
    assert_eq!(status(vec![("forwarded", "for=198.51.100.9")]).await, 403);
    // The real client (198.51.100.9, per the trusted proxy) adds its own X-Forwarded-For.
    assert_eq!(
        status(vec![
            ("forwarded", "for=198.51.100.9"),
            ("x-forwarded-for", "203.0.113.7"),
        ])
        .await,
        400,
        "a client-chosen X-Forwarded-For beside the trusted proxy's Forwarded header is refused"
    );
}
