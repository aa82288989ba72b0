use serde_json::json;

use super::super::testing::*;
use super::*;

async fn token(h: &Harness, body: &str) -> String {
    let b = h.expect("POST", "/tokens", body, 201).await;
    b["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn links_are_created_listed_shown_and_deleted_with_audit() {
    let h = Harness::new();
    let t = token(&h, r#"{"name":"a","expires_in":"7d"}"#).await;
    let body = json!({"path": "/app/dashboards#/view/d1",
                          "time": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
                          "expires_in": "30d"});
    let l = h
        .expect(
            "POST",
            &format!("/tokens/{t}/links"),
            &body.to_string(),
            201,
        )
        .await;
    let id = l["id"].as_str().expect("id");
    assert!(id.starts_with("lnk_") && id.len() == 36);
    assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(l["url"], format!("https://dash.example.com/s/{id}"));
    // Never past the token's expiry: 30d asked, the token ends in 7d.
    assert_eq!(l["expires_at"], input::format_time(T0 + 7 * 86400));
    assert_eq!(l["time"]["from"], "2026-11-01T00:00:00Z");
    let listed = h
        .expect("GET", &format!("/tokens/{t}/links"), "", 200)
        .await;
    assert_eq!(listed["links"].as_array().map(Vec::len), Some(1));
    h.expect("GET", &format!("/links/{id}"), "", 200).await;
    h.expect("DELETE", &format!("/links/{id}"), "", 204).await;
    h.expect("GET", &format!("/links/{id}"), "", 404).await;
    h.expect("DELETE", &format!("/links/{id}"), "", 404).await;
    let actions: Vec<Value> = h.events().iter().map(|e| e["action"].clone()).collect();
    assert!(actions.contains(&json!("link.create")) && actions.contains(&json!("link.delete")));
    // Attack 19a: a link's id is the whole credential of its URL, so the audit log names it by
    // its reference (`lnk_` and its first 12 hex digits), never whole.
    let reference = &id[..16];
    for action in ["link.create", "link.delete"] {
        let event = h.events().into_iter().find(|e| e["action"] == action);
        assert_eq!(event.expect("event")["target"], reference, "{action}");
    }
    assert!(!format!("{:?}", h.events()).contains(id));
}

/// A rotation keeps the token's links working (re-keying without downtime); a reset ends
/// them.
#[tokio::test]
async fn links_survive_a_rotation_but_not_a_reset() {
    let h = Harness::new();
    let t = token(&h, r#"{"name":"a"}"#).await;
    let l = h
        .expect(
            "POST",
            &format!("/tokens/{t}/links"),
            r#"{"path":"/app/dashboards#/view/d1"}"#,
            201,
        )
        .await;
    let id = l["id"].as_str().expect("id").to_owned();
    let recipient = std::net::IpAddr::from([10, 0, 0, 1]);
    let check = || {
        crate::kibana::session::check_link(&h.ctx.store.snapshot(), &id, None, recipient, T0)
            .is_ok()
    };
    assert!(check());
    h.expect(
        "POST",
        &format!("/tokens/{t}/rotate"),
        r#"{"overlap":"1h"}"#,
        200,
    )
    .await;
    assert!(check(), "a rotation ended the link");
    h.expect("POST", &format!("/tokens/{t}/reset"), "", 200)
        .await;
    assert!(!check(), "a reset left the link working");
}

/// A link a reset ended stays ended: a later rotation re-keys only the links that still work
/// (review 16c: it re-stamped every link of the token, so a routine rotation after a reset
/// revived the links the reset had revoked).
#[tokio::test]
async fn a_rotation_after_a_reset_does_not_revive_the_links_it_ended() {
    let h = Harness::new();
    let t = token(&h, r#"{"name":"a"}"#).await;
    async fn link(h: &Harness, t: &str) -> String {
        let path = format!("/tokens/{t}/links");
        let l = h
            .expect("POST", &path, r#"{"path":"/app/dashboards#/view/d1"}"#, 201)
            .await;
        l["id"].as_str().expect("id").to_owned()
    }
    let old = link(&h, &t).await;
    let recipient = std::net::IpAddr::from([10, 0, 0, 1]);
    let works = |id: &str| {
        crate::kibana::session::check_link(&h.ctx.store.snapshot(), id, None, recipient, T0).is_ok()
    };
    // The view says whether a link still opens as far as the token goes (`ended`).
    let ended = |id: String| {
        let h = &h;
        async move {
            h.expect("GET", &format!("/links/{id}"), "", 200).await["ended"]
                .as_bool()
                .expect("ended is a boolean")
        }
    };
    assert!(!ended(old.clone()).await);
    h.expect("POST", &format!("/tokens/{t}/reset"), "", 200)
        .await;
    assert!(!works(&old));
    assert!(
        ended(old.clone()).await,
        "a link a reset ended shows as ended"
    );
    let new = link(&h, &t).await;
    assert!(!ended(new.clone()).await);
    for overlap in ["1h", "0s"] {
        h.expect(
            "POST",
            &format!("/tokens/{t}/rotate"),
            &json!({ "overlap": overlap }).to_string(),
            200,
        )
        .await;
        assert!(
            !works(&old),
            "a rotation ({overlap}) revived a link a reset ended"
        );
        assert!(works(&new), "a rotation ({overlap}) ended a working link");
        assert!(ended(old.clone()).await && !ended(new.clone()).await);
    }
}

#[tokio::test]
async fn deleting_the_token_deletes_its_links_durably() {
    let h = Harness::new();
    let t = token(&h, r#"{"name":"a"}"#).await;
    let l = h
        .expect(
            "POST",
            &format!("/tokens/{t}/links"),
            r#"{"path":"/app/dashboards#/view/d1"}"#,
            201,
        )
        .await;
    let id = l["id"].as_str().expect("id").to_owned();
    assert_eq!(l["expires_at"], Value::Null);
    h.expect("DELETE", &format!("/tokens/{t}"), "", 204).await;
    h.expect("GET", &format!("/links/{id}"), "", 404).await;
    assert!(h
        .durable()
        .iter()
        .any(|c| matches!(c, Change::DeleteLink { id: d } if *d == id)));
    let del = h
        .events()
        .into_iter()
        .find(|e| e["action"] == "token.delete");
    assert_eq!(del.expect("event")["links"], json!([&id[..16]]));
}

#[tokio::test]
async fn bad_link_requests_are_refused_naming_the_field() {
    let h = Harness::new();
    let t = token(&h, r#"{"name":"a","kibana_spaces":["default","acme"]}"#).await;
    let all = token(&h, r#"{"name":"b","permissions":["all"]}"#).await;
    let path = format!("/tokens/{t}/links");
    let cases: &[(&str, u16, &str)] = &[
        (r#"{}"#, 400, "path"),
        (r#"{"path":"https://evil.example/app/x"}"#, 400, "path"),
        (r#"{"path":"//evil.example"}"#, 400, "path"),
        (r#"{"path":"/app/x","x":1}"#, 400, "x"),
        (
            r#"{"path":"/app/x","time":{"from":"2026-11-02T00:00:00Z","to":"2026-11-01T00:00:00Z"}}"#,
            400,
            "time.to",
        ),
        (
            r#"{"path":"/app/x","time":{"from":"yesterday","to":"2026-11-01T00:00:00Z"}}"#,
            400,
            "time.from",
        ),
        (
            r#"{"path":"/app/x","time":{"from":"2026-11-01T00:00:00Z"}}"#,
            400,
            "time.to",
        ),
        (
            r#"{"path":"/app/x","expires_in":"soon"}"#,
            400,
            "expires_in",
        ),
        (
            r#"{"path":"/s/other/app/dashboards"}"#,
            400,
            "kibana_spaces",
        ),
    ];
    for (body, status, names) in cases {
        let b = h.expect("POST", &path, body, *status).await;
        assert!(reason(&b).contains(names), "{body}: {b}");
    }
    h.expect(
        "POST",
        &path,
        r#"{"path":"/s/acme/app/dashboards#/view/x"}"#,
        201,
    )
    .await;
    h.expect(
        "POST",
        &format!("/tokens/{all}/links"),
        r#"{"path":"/app/x"}"#,
        409,
    )
    .await;
    h.expect(
        "POST",
        "/tokens/tok_nope/links",
        r#"{"path":"/app/x"}"#,
        404,
    )
    .await;
    h.expect("GET", "/tokens/tok_nope/links", "", 404).await;
}

#[tokio::test]
async fn kibana_spaces_default_patch_and_view() {
    let h = Harness::new();
    let b = h.expect("POST", "/tokens", r#"{"name":"a"}"#, 201).await;
    assert_eq!(b["kibana_spaces"], json!(["default"]));
    let id = b["id"].as_str().expect("id");
    let p = h
        .expect(
            "PATCH",
            &format!("/tokens/{id}"),
            r#"{"kibana_spaces":["acme"]}"#,
            200,
        )
        .await;
    assert_eq!(p["kibana_spaces"], json!(["acme"]));
    for bad in [
        r#"{"kibana_spaces":["Acme"]}"#,
        r#"{"kibana_spaces":"acme"}"#,
        r#"{"kibana_spaces":[""]}"#,
    ] {
        h.expect("PATCH", &format!("/tokens/{id}"), bad, 400).await;
    }
}

#[tokio::test]
async fn expired_links_are_listed_for_the_grace_period_then_swept() {
    let mut h = Harness::new();
    let t = token(&h, r#"{"name":"a"}"#).await;
    let l = h
        .expect(
            "POST",
            &format!("/tokens/{t}/links"),
            r#"{"path":"/app/x","expires_in":"60s"}"#,
            201,
        )
        .await;
    let id = l["id"].as_str().expect("id").to_owned();
    h.now += 61;
    let b = h.expect("GET", &format!("/links/{id}"), "", 200).await;
    assert_eq!(b["expired"], true);
    let swept = super::super::sweep_expired(&h.ctx.store, h.now).await;
    assert_eq!(swept.ok(), Some(0));
    h.expect("GET", &format!("/links/{id}"), "", 200).await;
    h.now += super::super::tokens::EXPIRED_GRACE;
    super::super::sweep_expired(&h.ctx.store, h.now)
        .await
        .expect("sweep");
    h.expect("GET", &format!("/links/{id}"), "", 404).await;
    h.expect("GET", &format!("/tokens/{t}"), "", 200).await;
}

#[tokio::test]
async fn without_a_kibana_front_links_cannot_be_made() {
    let mut h = Harness::new();
    h.ctx.kibana_public_url = None;
    let t = token(&h, r#"{"name":"a"}"#).await;
    let b = h
        .expect(
            "POST",
            &format!("/tokens/{t}/links"),
            r#"{"path":"/app/x"}"#,
            409,
        )
        .await;
    assert!(reason(&b).contains("[kibana]"));
}
