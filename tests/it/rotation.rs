//! Secret rotation with overlap (issue 13, "Day-2 operations"), end to end against the real
//! backends: after `POST /tokens/{id}/rotate` both the new and the previous secret open the
//! token until the overlap ends, then only the new one; rotating again ends the older overlap at
//! once (at most two secrets); reset and delete end an overlap at once; `0s` is a reset; an
//! overlap over 7 days is a 400; a restart keeps an overlap; the CLI rotates too. Every check
//! is a real search through esgate (a count of the token's documents), not an admin view.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};

use support::backend::Backend;
use support::esgate::{audit_file_section, Esgate, ADMIN_KEY};
use support::fixture;

/// A count of the token's own documents: 200 with the tenant-a count, or the refusal status.
async fn count(gw: &Esgate, secret: &str) -> u16 {
    let (status, body) = gw
        .call(secret, "POST", "/logs-*/_count", json!({}), &[])
        .await;
    if status == 200 {
        assert_eq!(body["count"], json!(fixture::TENANT_A_DOCS), "{body}");
    }
    status
}

async fn rotate(gw: &Esgate, id: &str, body: Option<Value>) -> (u16, Value) {
    gw.admin("POST", &format!("/tokens/{id}/rotate"), body)
        .await
}

fn secret_of(v: &Value) -> String {
    v["secret"].as_str().expect("a secret").to_owned()
}

async fn tenant_a(gw: &Esgate) -> (String, String) {
    gw.token(json!({"name": "dash", "indices": ["logs-*"],
                    "filters": [{"field": "tenant", "value": "a"}]}))
        .await
}

/// Both secrets work during a short overlap, the old one stops after it; a second rotation
/// ends the older overlap at once; a reset ends the overlap; `0s` is a reset.
async fn overlap_on(backend: &Backend) {
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, s1) = tenant_a(&gw).await;
    assert_eq!(count(&gw, &s1).await, 200);

    let (status, r) = rotate(&gw, &id, Some(json!({"overlap": "2s"}))).await;
    assert_eq!(status, 200, "{r}");
    let s2 = secret_of(&r);
    assert!(r["previous_secret_expires_at"].is_string(), "{r}");
    let (_, shown) = gw.admin("GET", &format!("/tokens/{id}"), None).await;
    assert_eq!(
        shown["previous_secret_expires_at"],
        r["previous_secret_expires_at"]
    );
    assert_eq!(count(&gw, &s1).await, 200, "the previous secret works");
    assert_eq!(count(&gw, &s2).await, 200, "the new secret works");
    // In the API key form too (the token id with the previous secret).
    let r = support::http::send(
        "POST",
        &gw.url("/logs-*/_count"),
        &[("authorization", &support::http::api_key(&id, &s1))],
        Vec::new(),
    )
    .await
    .expect("esgate answers");
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(count(&gw, &s1).await, 401, "the overlap is over");
    assert_eq!(count(&gw, &s2).await, 200);
    let (_, shown) = gw.admin("GET", &format!("/tokens/{id}"), None).await;
    assert_eq!(shown["previous_secret_expires_at"], Value::Null);

    // Rotating twice: the first secret stops at the second rotation.
    let s3 = secret_of(&rotate(&gw, &id, Some(json!({"overlap": "1h"}))).await.1);
    let s4 = secret_of(&rotate(&gw, &id, Some(json!({"overlap": "1h"}))).await.1);
    assert_eq!(count(&gw, &s2).await, 401, "at most two secrets");
    assert_eq!(count(&gw, &s3).await, 200);
    assert_eq!(count(&gw, &s4).await, 200);

    // Reset during an overlap stops both old secrets.
    let (status, r) = gw.admin("POST", &format!("/tokens/{id}/reset"), None).await;
    assert_eq!(status, 200);
    let s5 = secret_of(&r);
    assert_eq!(count(&gw, &s3).await, 401);
    assert_eq!(count(&gw, &s4).await, 401);
    assert_eq!(count(&gw, &s5).await, 200);

    // `0s` behaves like reset.
    let (status, r) = rotate(&gw, &id, Some(json!({"overlap": "0s"}))).await;
    assert_eq!(status, 200);
    assert_eq!(r["previous_secret_expires_at"], Value::Null);
    let s6 = secret_of(&r);
    assert_eq!(count(&gw, &s5).await, 401);
    assert_eq!(count(&gw, &s6).await, 200);

    // More than 7 days is refused and changes nothing.
    for bad in ["8d", "169h", "1h30"] {
        let (status, r) = rotate(&gw, &id, Some(json!({ "overlap": bad }))).await;
        assert_eq!(status, 400, "{bad}: {r}");
        assert!(r["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("overlap"));
    }
    assert_eq!(count(&gw, &s6).await, 200);

    // Delete kills both secrets of an overlap.
    let s7 = secret_of(&rotate(&gw, &id, Some(json!({"overlap": "1h"}))).await.1);
    assert_eq!(
        gw.admin("DELETE", &format!("/tokens/{id}"), None).await.0,
        204
    );
    assert_eq!(count(&gw, &s6).await, 401);
    assert_eq!(count(&gw, &s7).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_secrets_work_during_the_overlap_on_osmem() {
    overlap_on(&fixture::seeded_osmem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_secrets_work_during_the_overlap_on_noida() {
    overlap_on(&fixture::seeded_noida()).await;
}

/// The previous secret and its expiry are durable: after a restart on the same store both
/// secrets still work, and the old one still stops when the overlap ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_overlap() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, s1) = tenant_a(&gw).await;
    let (status, r) = rotate(&gw, &id, Some(json!({"overlap": "4s"}))).await;
    assert_eq!(status, 200);
    let s2 = secret_of(&r);
    let gw = gw.restart(&[backend.url()], "").await;
    assert_eq!(
        count(&gw, &s1).await,
        200,
        "the previous secret survives a restart"
    );
    assert_eq!(count(&gw, &s2).await, 200);
    let (_, shown) = gw.admin("GET", &format!("/tokens/{id}"), None).await;
    assert_eq!(
        shown["previous_secret_expires_at"],
        r["previous_secret_expires_at"]
    );
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    assert_eq!(count(&gw, &s1).await, 401);
    assert_eq!(count(&gw, &s2).await, 200);
    // And after another restart, the expired previous secret stays dead.
    let gw = gw.restart(&[backend.url()], "").await;
    assert_eq!(count(&gw, &s1).await, 401);
    assert_eq!(count(&gw, &s2).await, 200);
}

/// The rotation is audited without either secret; the CLI rotates with `--overlap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_audited_without_secrets_and_the_cli_rotates() {
    let backend = fixture::seeded_osmem();
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.log");
    let extra = audit_file_section(&audit);
    let gw = Esgate::start(&[backend.url()], &extra).await;
    let (id, s1) = tenant_a(&gw).await;
    let admin = format!("http://{}", gw.admin_addr);
    let id2 = id.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_esgate"))
            .args(["token", "rotate", &id2, "--overlap", "10m", "--json"])
            .env("ESGATE_ADMIN_URL", admin)
            .env("ESGATE_ADMIN_KEY", ADMIN_KEY)
            .output()
            .expect("the esgate binary runs")
    })
    .await
    .expect("joins");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let s2 = secret_of(&r);
    assert!(r["previous_secret_expires_at"].is_string());
    assert_eq!(count(&gw, &s1).await, 200);
    assert_eq!(count(&gw, &s2).await, 200);
    // The audit line is written by its own thread: wait for it.
    let mut line = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("token.rotate")) {
            assert!(
                !text.contains(&s1) && !text.contains(&s2),
                "no secret in the audit log"
            );
            line = Some(l.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line: Value = serde_json::from_str(&line.expect("a token.rotate audit line")).unwrap();
    assert_eq!(line["target"], json!(id));
    assert_eq!(line["overlap_seconds"], json!(600));
}
