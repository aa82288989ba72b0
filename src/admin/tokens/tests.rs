use std::time::Duration;

use serde_json::json;

use super::super::testing::*;
use super::*;

async fn ip_filter(h: &Harness, name: &str) {
    h.expect(
        "POST",
        "/ip-filters",
        &json!({"name": name, "cidrs": ["10.0.0.0/8"]}).to_string(),
        201,
    )
    .await;
}

async fn library_filter(h: &Harness, field: &str, value: &str) -> String {
    let b = h
        .expect(
            "POST",
            "/filters",
            &json!({"field": field, "value": value}).to_string(),
            201,
        )
        .await;
    b["id"].as_str().unwrap_or_default().to_owned()
}

async fn token(h: &Harness, body: Value) -> Value {
    h.expect("POST", "/tokens", &body.to_string(), 201).await
}

#[tokio::test]
async fn create_applies_defaults_and_returns_the_secret_once() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "acme"})).await;
    let id = b["id"].as_str().unwrap();
    assert!(id.starts_with("tok_") && id.len() == 20);
    assert_eq!(b["name"], "acme");
    assert_eq!(b["filters"], json!([]));
    assert_eq!(b["indices"], json!(["*"]));
    assert_eq!(b["permissions"], json!(["read"]));
    assert_eq!(b["created_at"], "2026-01-01T00:00:00Z");
    assert_eq!(b["expires_at"], Value::Null);
    assert_eq!(b["expired"], false);
    assert_eq!(b["ip_filter"], Value::Null);
    assert_eq!(b["ip_cidrs"], json!([]));
    assert_eq!(b["last_used_at"], Value::Null);
    let secret = b["secret"].as_str().unwrap().to_owned();
    assert!(b.get("secret_hash").is_none());

    // The stored token carries the hash of the returned secret.
    let snap = h.ctx.store.snapshot();
    let stored = snap.token(id).unwrap();
    let parsed = Secret::parse(&secret).expect("a generated secret parses");
    assert_eq!(stored.secret_hash, parsed.hash());

    // Never again: not in show, list, or the audit event.
    let shown = h.expect("GET", &format!("/tokens/{id}"), "", 200).await;
    let listed = h.expect("GET", "/tokens", "", 200).await;
    for v in [&shown, &listed, &json!(h.events())] {
        assert!(!v.to_string().contains(&secret), "{v}");
        assert!(v.get("secret").is_none());
    }
    let mut expected = b.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(shown, expected);
    assert_eq!(listed, json!({"tokens": [expected], "total": 1}));
}

#[tokio::test]
async fn create_is_durable_and_audited() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "acme", "permissions": ["all", "read"]})).await;
    let id = b["id"].as_str().unwrap();
    assert_eq!(b["permissions"], json!(["read", "all"]));
    assert!(matches!(h.durable().as_slice(), [Change::PutToken { token }] if token.id == id));
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "admin");
    assert_eq!(events[0]["action"], "token.create");
    assert_eq!(events[0]["target"], id);
    assert_eq!(events[0]["at"], "2026-01-01T00:00:00Z");
    assert_eq!(events[0]["client"], "192.0.2.7");
    assert_eq!(events[0]["name"], "acme");
    // A reopened store sees the token.
    let reopened = Store::open(Box::new(h.persistence.clone())).unwrap();
    assert!(reopened.snapshot().token(id).is_some());
}

#[tokio::test]
async fn create_resolves_inline_and_library_filters() {
    let h = Harness::new();
    let fid = library_filter(&h, "env", "test").await;
    let b = token(
        &h,
        json!({"name": "a", "filters": [{"field": "tenant", "value": "a"}, fid]}),
    )
    .await;
    assert_eq!(
        b["filters"],
        json!([{"field": "tenant", "value": "a"}, {"id": fid, "field": "env", "value": "test"}])
    );
}

#[tokio::test]
async fn create_rejects_bad_input_naming_the_field() {
    let h = Harness::new();
    ip_filter(&h, "office").await;
    let fid = library_filter(&h, "env", "test").await;
    let long = "n".repeat(201);
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "field [name] is required"),
        (json!({"name": ""}), "field [name] must not be empty"),
        (json!({"name": "  "}), "field [name] must not be empty"),
        (
            json!({"name": long}),
            "field [name] must be at most 200 characters",
        ),
        (
            json!({"name": "a\u{7}"}),
            "field [name] must not contain control, bidi or zero-width characters",
        ),
        (
            json!({"name": "a\u{202E}b"}),
            "field [name] must not contain control, bidi or zero-width characters",
        ),
        (
            json!({"name": "ad\u{200B}min"}),
            "field [name] must not contain control, bidi or zero-width characters",
        ),
        (
            json!({"name": "a", "filters": [{"field": "t", "value": "a\u{0}"}]}),
            "field [filters[0].value] must not contain control, bidi or zero-width characters",
        ),
        (
            json!({"name": "a", "filters": [{"field": "t", "value": "\u{1b}[2J"}]}),
            "field [filters[0].value] must not contain control, bidi or zero-width characters",
        ),
        (json!({"name": 5}), "field [name] must be a string"),
        (
            json!({"name": "a", "colour": 1}),
            "field [colour] is unknown",
        ),
        (
            json!({"name": "a", "secret": "esg_x"}),
            "field [secret] is unknown",
        ),
        (
            json!({"name": "a", "filters": [fid, "flt_nope"]}),
            "field [filters[1]] is not the id of a filter in the library",
        ),
        (
            json!({"name": "a", "filters": [{"field": "", "value": "x"}]}),
            "field [filters[0].field] must not be empty",
        ),
        (
            json!({"name": "a", "filters": [{"field": "f", "value": ""}]}),
            "field [filters[0].value] must not be empty",
        ),
        (
            json!({"name": "a", "filters": [{"field": "f", "value": 3}]}),
            "field [filters[0].value] must be a string",
        ),
        (
            json!({"name": "a", "filters": [{"field": "f"}]}),
            "field [filters[0].value] must be a string",
        ),
        (
            json!({"name": "a", "filters": [{"field": "x".repeat(257), "value": "v"}]}),
            "field [filters[0].field] must be at most 256 characters",
        ),
        (
            json!({"name": "a", "filters": [{"field": "f", "value": "v", "op": "or"}]}),
            "field [filters[0].op] is unknown",
        ),
        (
            json!({"name": "a", "filters": [7]}),
            "field [filters[0]] must be a {\"field\",\"value\"} object or a filter id",
        ),
        (
            json!({"name": "a", "filters": {"field": "f"}}),
            "field [filters] must be an array",
        ),
        (
            json!({"name": "a", "indices": []}),
            "field [indices] must not be empty (omit it for every non-hidden index)",
        ),
        (
            json!({"name": "a", "indices": ["logs", "Logs"]}),
            "field [indices[1]] must be lowercase",
        ),
        (
            json!({"name": "a", "permissions": ["read", "write"]}),
            "field [permissions[1]] must be \"read\" or \"all\"",
        ),
        (
            json!({"name": "a", "permissions": []}),
            "field [permissions] must not be empty",
        ),
        (
            json!({"name": "a", "expires_in": "1w"}),
            "field [expires_in] must be a positive duration such as 90s, 15m, 24h or 7d",
        ),
        (
            json!({"name": "a", "expires_in": "0s"}),
            "field [expires_in] must be a positive duration such as 90s, 15m, 24h or 7d",
        ),
        (
            json!({"name": "a", "expires_in": "999999999999d"}),
            "field [expires_in] is too far in the future",
        ),
        (
            json!({"name": "a", "expires_at": "2025-12-31T23:59:59Z"}),
            "field [expires_at] must be in the future",
        ),
        (
            json!({"name": "a", "expires_at": "2026-01-01T00:00:00Z"}),
            "field [expires_at] must be in the future",
        ),
        (
            json!({"name": "a", "expires_at": "2026-02-01T00:00:00+01:00"}),
            "field [expires_at] must be an RFC 3339 timestamp in UTC, such as 2026-01-31T12:00:00Z",
        ),
        (
            json!({"name": "a", "expires_in": "1h", "expires_at": "2027-01-01T00:00:00Z"}),
            "fields [expires_in] and [expires_at] cannot both be given",
        ),
        (
            json!({"name": "a", "ip_filter": "home"}),
            "field [ip_filter] is not the name of an existing IP filter",
        ),
        (
            json!({"name": "a", "ip_filter": 1}),
            "field [ip_filter] must be a string or null",
        ),
    ];
    for (body, want) in cases {
        let b = h.expect("POST", "/tokens", &body.to_string(), 400).await;
        assert_eq!(reason(&b), want, "{body}");
        assert_eq!(b["status"], 400);
    }
    let b = h.expect("GET", "/tokens", "", 200).await;
    assert_eq!(b["total"], 0);
    // Only the IP filter and the library filter were audited.
    assert_eq!(h.events().len(), 2);
}

#[tokio::test]
async fn submitted_secret_like_values_are_never_echoed() {
    let h = Harness::new();
    let s = "esg_4fJ9kQ2mZ7xP1aB8cD3eF6gH0iJ5kL2mN9oP4qR7sT1uV3wX8";
    let b = token(&h, json!({"name": "a"})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    let cases: Vec<(&str, String, String)> = vec![
        (
            "POST",
            "/tokens".into(),
            json!({"name": "a", s: 1}).to_string(),
        ),
        (
            "POST",
            "/tokens".into(),
            json!({"name": "a", "filters": [s]}).to_string(),
        ),
        (
            "POST",
            "/tokens".into(),
            json!({"name": "a", "ip_filter": s}).to_string(),
        ),
        (
            "POST",
            "/tokens".into(),
            json!({"name": "a", "expires_in": s}).to_string(),
        ),
        (
            "POST",
            "/tokens".into(),
            json!({"name": "a", "expires_at": s}).to_string(),
        ),
        (
            "POST",
            "/tokens".into(),
            json!({"name": "a", "indices": [s.to_uppercase()]}).to_string(),
        ),
        (
            "POST",
            "/tokens".into(),
            json!({"name": "a", "permissions": [s]}).to_string(),
        ),
        (
            "POST",
            "/tokens".into(),
            format!(r#"{{"name":"{s}","name":"{s}"}}"#),
        ),
        ("PATCH", path.clone(), json!({ s: s }).to_string()),
        ("GET", format!("/tokens?{s}=1"), String::new()),
        ("GET", format!("/tokens?size={s}"), String::new()),
        ("GET", format!("/tokens/{s}"), String::new()),
        (
            "POST",
            "/ip-filters".into(),
            json!({"name": s, "cidrs": [s]}).to_string(),
        ),
        (
            "POST",
            "/filters".into(),
            json!({"field": "f", "value": "v", s: s}).to_string(),
        ),
    ];
    for (m, p, body) in cases {
        let r = h.call(m, &p, &body).await;
        assert!(r.status >= 400, "{m} {p} {body}");
        let text = r.body.map(|b| b.to_string()).unwrap_or_default();
        assert!(!text.contains(&s[4..20]), "{m} {p} {body} -> {text}");
    }
}

#[test]
fn index_patterns_follow_elasticsearch_naming_rules() {
    for ok in [
        "*",
        "logs-*",
        "logs-2024.01.*",
        ".kibana",
        "a_b",
        "métriques",
        "x+y",
    ] {
        assert!(check_index_pattern(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Logs",
        "a,b",
        "a b",
        "a\"b",
        "a/b",
        "a\\b",
        "a|b",
        "a?b",
        "a<b",
        "a>b",
        "a#b",
        "remote:logs",
        "-logs",
        "_all",
        "+logs",
        ".",
        "..",
        "a\nb",
    ] {
        assert!(check_index_pattern(bad).is_err(), "{bad:?}");
    }
    assert!(check_index_pattern(&"a".repeat(255)).is_ok());
    assert!(check_index_pattern(&"a".repeat(256)).is_err());
}

#[tokio::test]
async fn non_object_or_duplicate_key_bodies_are_refused() {
    let h = Harness::new();
    for body in [
        "",
        "[]",
        "\"x\"",
        "{\"name\":\"a\",\"name\":\"b\"}",
        "{nope}",
    ] {
        let b = h.expect("POST", "/tokens", body, 400).await;
        assert_eq!(b["error"]["type"], "parsing_exception", "{body}");
    }
}

#[tokio::test]
async fn expiry_is_computed_from_now_and_reported() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a", "expires_in": "24h"})).await;
    assert_eq!(b["expires_at"], "2026-01-02T00:00:00Z");
    let b = token(
        &h,
        json!({"name": "b", "expires_at": "2026-03-01T10:00:00Z"}),
    )
    .await;
    assert_eq!(b["expires_at"], "2026-03-01T10:00:00Z");
    let b = token(&h, json!({"name": "c", "expires_at": null})).await;
    assert_eq!(b["expires_at"], Value::Null);
}

#[tokio::test]
async fn ip_filter_is_shown_with_its_cidrs() {
    let h = Harness::new();
    ip_filter(&h, "office").await;
    let b = token(&h, json!({"name": "a", "ip_filter": "office"})).await;
    assert_eq!(b["ip_filter"], "office");
    assert_eq!(b["ip_cidrs"], json!(["10.0.0.0/8"]));
}

#[tokio::test]
async fn policies_refuse_creation_and_name_the_policy() {
    let strict = Policies {
        max_lifetime: Some(Duration::from_secs(7 * 86_400)),
        require_expiry: true,
        require_ip_filter: true,
        require_filters: true,
        allow_permission_updates: false,
        allow_open_ip_filters: false,
        limits: Default::default(),
    };
    let h = Harness::with_policies(strict);
    ip_filter(&h, "office").await;
    let good = json!({"name": "a", "filters": [{"field": "t", "value": "a"}],
                          "expires_in": "7d", "ip_filter": "office"});
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let mut too_long = good.clone();
    too_long["expires_in"] = json!("8d");
    let mut at_too_long = without("expires_in");
    at_too_long["expires_at"] = json!("2026-01-08T00:00:01Z");
    let cases = [
        (
            without("filters"),
            "policy require_filters: a token must have at least one filter",
        ),
        (
            without("expires_in"),
            "policy require_expiry: a token must have an expiry (expires_in or expires_at)",
        ),
        (
            without("ip_filter"),
            "policy require_ip_filter: a token must have an ip_filter",
        ),
        (
            too_long,
            "policy max_lifetime: a token must expire within 7d",
        ),
        (
            at_too_long,
            "policy max_lifetime: a token must expire within 7d",
        ),
    ];
    for (body, want) in cases {
        let b = h.expect("POST", "/tokens", &body.to_string(), 400).await;
        assert_eq!(reason(&b), want, "{body}");
    }
    token(&h, good).await;
}

#[tokio::test]
async fn max_lifetime_alone_requires_an_expiry() {
    let h = Harness::with_policies(Policies {
        max_lifetime: Some(Duration::from_secs(3600)),
        ..Policies::default()
    });
    let b = h.expect("POST", "/tokens", r#"{"name":"a"}"#, 400).await;
    assert_eq!(
        reason(&b),
        "policy max_lifetime: a token must expire within 1h"
    );
    token(&h, json!({"name": "a", "expires_in": "60m"})).await;
}

#[tokio::test]
async fn list_filters_by_name_pages_and_sorts_by_creation() {
    let mut h = Harness::new();
    let mut ids = Vec::new();
    for (i, name) in ["Acme-dash", "beta", "acme-api", "gamma"]
        .iter()
        .enumerate()
    {
        h.now = T0 + 10 - i as i64; // later tokens are created earlier
        let b = token(&h, json!({"name": name})).await;
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let names = |b: &Value| -> Vec<String> {
        b["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let b = h.expect("GET", "/tokens", "", 200).await;
    assert_eq!(names(&b), ["gamma", "acme-api", "beta", "Acme-dash"]);
    assert_eq!(b["total"], 4);
    let b = h.expect("GET", "/tokens?name=ACME", "", 200).await;
    assert_eq!(names(&b), ["acme-api", "Acme-dash"]);
    assert_eq!(b["total"], 2);
    let b = h.expect("GET", "/tokens?from=1&size=2", "", 200).await;
    assert_eq!(names(&b), ["acme-api", "beta"]);
    assert_eq!(b["total"], 4);
    let b = h.expect("GET", "/tokens?from=10", "", 200).await;
    assert_eq!(b, json!({"tokens": [], "total": 4}));
    let b = h.expect("GET", "/tokens?size=0", "", 200).await;
    assert_eq!(b, json!({"tokens": [], "total": 4}));
    for bad in [
        "size=10001",
        "size=-1",
        "from=x",
        "sort=name",
        "name=a&name=b",
    ] {
        h.expect("GET", &format!("/tokens?{bad}"), "", 400).await;
    }
}

#[tokio::test]
async fn equal_creation_times_sort_by_id() {
    let h = Harness::new();
    for name in ["a", "b", "c"] {
        token(&h, json!({"name": name})).await;
    }
    let b = h.expect("GET", "/tokens", "", 200).await;
    let ids: Vec<&str> = b["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

#[tokio::test]
async fn expired_tokens_stay_listed_for_five_minutes_then_vanish() {
    let mut h = Harness::new();
    let b = token(&h, json!({"name": "a", "expires_in": "60s"})).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let path = format!("/tokens/{id}");

    h.now = T0 + 59;
    assert_eq!(h.expect("GET", &path, "", 200).await["expired"], false);
    h.now = T0 + 60;
    assert_eq!(h.expect("GET", &path, "", 200).await["expired"], true);
    h.now = T0 + 60 + 300;
    let l = h.expect("GET", "/tokens", "", 200).await;
    assert_eq!(l["total"], 1);
    assert_eq!(l["tokens"][0]["expired"], true);
    assert_eq!(sweep_expired(&h.ctx.store, h.now).await.unwrap(), 0);

    // Past the grace period: hidden before the sweep runs, then deleted by it.
    h.now = T0 + 60 + 301;
    h.expect("GET", &path, "", 404).await;
    h.expect("PATCH", &path, r#"{"name":"x"}"#, 404).await;
    h.expect("POST", &format!("{path}/reset"), "", 404).await;
    assert_eq!(h.expect("GET", "/tokens", "", 200).await["total"], 0);
    assert!(h.ctx.store.snapshot().token(&id).is_some());
    assert_eq!(sweep_expired(&h.ctx.store, h.now).await.unwrap(), 1);
    assert!(h.ctx.store.snapshot().token(&id).is_none());
    assert!(matches!(h.durable().last(), Some(Change::DeleteToken { id: d }) if *d == id));
    assert_eq!(sweep_expired(&h.ctx.store, h.now).await.unwrap(), 0);
}

#[tokio::test]
async fn last_used_at_comes_from_the_store() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let id = b["id"].as_str().unwrap();
    h.ctx.store.touch(id, T0 + 3600);
    let b = h.expect("GET", &format!("/tokens/{id}"), "", 200).await;
    assert_eq!(b["last_used_at"], "2026-01-01T01:00:00Z");
}

#[tokio::test]
async fn unknown_ids_are_404_everywhere() {
    let h = Harness::new();
    for (m, p) in [
        ("GET", "/tokens/tok_nope"),
        ("PATCH", "/tokens/tok_nope"),
        ("DELETE", "/tokens/tok_nope"),
        ("POST", "/tokens/tok_nope/reset"),
    ] {
        let body = if m == "PATCH" { "{}" } else { "" };
        let b = h.expect(m, p, body, 404).await;
        assert_eq!(reason(&b), "token not found");
    }
}

#[tokio::test]
async fn patch_changes_name_filters_indices_and_permissions() {
    let h = Harness::new();
    let fid = library_filter(&h, "env", "prod").await;
    let b = token(&h, json!({"name": "a", "permissions": ["all"]})).await;
    let id = b["id"].as_str().unwrap();
    let path = format!("/tokens/{id}");
    let b = h
        .expect(
            "PATCH",
            &path,
            &json!({"name": "b", "filters": [fid], "indices": ["logs-*"], "permissions": ["read"]})
                .to_string(),
            200,
        )
        .await;
    assert_eq!(b["name"], "b");
    assert_eq!(
        b["filters"],
        json!([{"id": fid, "field": "env", "value": "prod"}])
    );
    assert_eq!(b["indices"], json!(["logs-*"]));
    assert_eq!(b["permissions"], json!(["read"]));
    assert!(b.get("secret").is_none());
    assert_eq!(h.expect("GET", &path, "", 200).await, b);
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["action"], "token.update");
    assert_eq!(
        ev["changed"],
        json!(["name", "filters", "indices", "permissions"])
    );
}

/// A pattern that reaches esgate's token store index (when it lives in the cluster tokens
/// read) is refused at create and update, naming the pattern, and the token is not changed;
/// `*` never reaches a dot-named index, and without a guarded store nothing is refused.
#[tokio::test]
async fn patterns_that_reach_the_token_store_index_are_refused() {
    let h = Harness::new();
    let store = h
        .ctx
        .guarded_store
        .clone()
        .expect("the harness guards a store index");
    let reason_for = |p: &str| {
        format!(
            "field [indices] the pattern [{p}] reaches esgate's token store index, which no token may read; narrow the pattern"
        )
    };
    for p in [store.as_str(), ".*", ".esg*"] {
        let b = h
            .expect(
                "POST",
                "/tokens",
                &json!({"name": "a", "indices": ["logs-*", p]}).to_string(),
                400,
            )
            .await;
        assert_eq!(reason(&b), reason_for(p));
    }
    let b = token(&h, json!({"name": "a", "indices": ["*", ".kibana*"]})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    let refused = h.expect("PATCH", &path, r#"{"indices":[".*"]}"#, 400).await;
    assert_eq!(reason(&refused), reason_for(".*"));
    assert_eq!(
        h.expect("GET", &path, "", 200).await["indices"],
        json!(["*", ".kibana*"])
    );

    let mut unguarded = Harness::new();
    unguarded.ctx.guarded_store = None;
    let b = token(&unguarded, json!({"name": "a", "indices": [".*"]})).await;
    assert_eq!(b["indices"], json!([".*"]));

    // review16d: a token stored before the check (imported) can still be changed where its
    // patterns are not: renamed, its expiry shortened; its patterns only narrowed.
    let imported = b["id"].as_str().unwrap().to_owned();
    let stored = unguarded
        .ctx
        .store
        .snapshot()
        .token(&imported)
        .map(|t| Token::clone(t))
        .unwrap();
    h.ctx
        .store
        .update(|_| Ok::<_, AdminError>((vec![Change::PutToken { token: stored }], ())))
        .await
        .unwrap();
    let path = format!("/tokens/{imported}");
    let renamed = h
        .expect("PATCH", &path, r#"{"name":"b","expires_in":"1h"}"#, 200)
        .await;
    assert_eq!(
        (renamed["name"].clone(), renamed["indices"].clone()),
        (json!("b"), json!([".*"]))
    );
    let refused = h
        .expect("PATCH", &path, r#"{"indices":[".e*"]}"#, 400)
        .await;
    assert_eq!(reason(&refused), reason_for(".e*"));
    let narrowed = h
        .expect("PATCH", &path, r#"{"indices":["logs-*"]}"#, 200)
        .await;
    assert_eq!(narrowed["indices"], json!(["logs-*"]));
}

#[tokio::test]
async fn patch_without_changes_writes_and_audits_nothing() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    let before = (h.durable().len(), h.events().len());
    h.expect("PATCH", &path, "{}", 200).await;
    h.expect(
        "PATCH",
        &path,
        r#"{"name":"a","expires_at":null,"ip_filter":null}"#,
        200,
    )
    .await;
    assert_eq!((h.durable().len(), h.events().len()), before);
}

#[tokio::test]
async fn patch_rejects_unknown_and_read_only_fields() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    for (body, want) in [
        (r#"{"colour":"red"}"#, "field [colour] is unknown"),
        (r#"{"id":"tok_x"}"#, "field [id] cannot be changed"),
        (r#"{"secret":"esg_x"}"#, "field [secret] cannot be changed"),
        (
            r#"{"created_at":"2020-01-01T00:00:00Z"}"#,
            "field [created_at] cannot be changed",
        ),
        (r#"{"name":""}"#, "field [name] must not be empty"),
        (
            r#"{"filters":["flt_nope"]}"#,
            "field [filters[0]] is not the id of a filter in the library",
        ),
    ] {
        let b = h.expect("PATCH", &path, body, 400).await;
        assert_eq!(reason(&b), want, "{body}");
    }
    assert_eq!(h.expect("GET", &path, "", 200).await["name"], "a");
}

#[tokio::test]
async fn patch_may_only_shorten_or_set_an_expiry() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    let b = h
        .expect("PATCH", &path, r#"{"expires_in":"7d"}"#, 200)
        .await;
    assert_eq!(b["expires_at"], "2026-01-08T00:00:00Z");
    let b = h
        .expect(
            "PATCH",
            &path,
            r#"{"expires_at":"2026-01-05T00:00:00Z"}"#,
            200,
        )
        .await;
    assert_eq!(b["expires_at"], "2026-01-05T00:00:00Z");
    let b = h
        .expect(
            "PATCH",
            &path,
            r#"{"expires_at":"2026-01-05T00:00:00Z"}"#,
            200,
        )
        .await;
    assert_eq!(b["expires_at"], "2026-01-05T00:00:00Z");
    for (body, want) in [
        (
            r#"{"expires_in":"5d"}"#,
            "an expiry cannot be extended (it may only be shortened)",
        ),
        (
            r#"{"expires_at":"2026-01-05T00:00:01Z"}"#,
            "an expiry cannot be extended (it may only be shortened)",
        ),
        (
            r#"{"expires_at":null}"#,
            "an expiry cannot be removed (it may only be shortened)",
        ),
        (
            r#"{"expires_in":null}"#,
            "an expiry cannot be removed (it may only be shortened)",
        ),
    ] {
        let b = h.expect("PATCH", &path, body, 409).await;
        assert_eq!(reason(&b), want, "{body}");
        assert_eq!(b["status"], 409);
    }
    assert_eq!(
        h.expect("GET", &path, "", 200).await["expires_at"],
        "2026-01-05T00:00:00Z"
    );
}

#[tokio::test]
async fn patch_may_set_an_ip_filter_but_never_replace_or_remove_it() {
    let h = Harness::new();
    ip_filter(&h, "office").await;
    ip_filter(&h, "home").await;
    let b = token(&h, json!({"name": "a"})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    let b = h
        .expect("PATCH", &path, r#"{"ip_filter":"nope"}"#, 400)
        .await;
    assert_eq!(
        reason(&b),
        "field [ip_filter] is not the name of an existing IP filter"
    );
    let b = h
        .expect("PATCH", &path, r#"{"ip_filter":"office"}"#, 200)
        .await;
    assert_eq!(b["ip_filter"], "office");
    h.expect("PATCH", &path, r#"{"ip_filter":"office"}"#, 200)
        .await;
    let b = h
        .expect("PATCH", &path, r#"{"ip_filter":"home"}"#, 409)
        .await;
    assert_eq!(
        reason(&b),
        "an IP filter cannot be replaced once set (change its CIDRs instead)"
    );
    let b = h.expect("PATCH", &path, r#"{"ip_filter":null}"#, 409).await;
    assert_eq!(reason(&b), "an IP filter cannot be removed once set");
    assert_eq!(h.expect("GET", &path, "", 200).await["ip_filter"], "office");
}

#[tokio::test]
async fn patch_refusal_leaves_the_whole_token_unchanged() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a", "expires_in": "1h"})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    h.expect("PATCH", &path, r#"{"name":"b","expires_in":"2h"}"#, 409)
        .await;
    assert_eq!(h.expect("GET", &path, "", 200).await["name"], "a");
}

#[tokio::test]
async fn permission_updates_are_refused_when_the_policy_forbids_them() {
    let h = Harness::with_policies(Policies {
        allow_permission_updates: false,
        ..Policies::default()
    });
    let b = token(&h, json!({"name": "a"})).await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    let b = h
        .expect("PATCH", &path, r#"{"permissions":["all"]}"#, 409)
        .await;
    assert_eq!(
        reason(&b),
        "policy allow_permission_updates: permissions cannot be changed after creation"
    );
    // Restating the same permissions is not a change.
    h.expect("PATCH", &path, r#"{"permissions":["read"]}"#, 200)
        .await;
    assert_eq!(
        h.expect("GET", &path, "", 200).await["permissions"],
        json!(["read"])
    );
}

#[tokio::test]
async fn patch_checks_policies_on_the_fields_it_touches() {
    let h = Harness::new();
    let b = token(
        &h,
        json!({"name": "a", "filters": [{"field": "t", "value": "1"}]}),
    )
    .await;
    let path = format!("/tokens/{}", b["id"].as_str().unwrap());
    let mut h = h;
    h.ctx.policies = Policies {
        require_filters: true,
        max_lifetime: Some(Duration::from_secs(86_400)),
        require_ip_filter: true,
        ..Policies::default()
    };
    // Renaming a token created under laxer policies still works.
    h.expect("PATCH", &path, r#"{"name":"b"}"#, 200).await;
    let b = h.expect("PATCH", &path, r#"{"filters":[]}"#, 400).await;
    assert_eq!(
        reason(&b),
        "policy require_filters: a token must have at least one filter"
    );
    let b = h
        .expect("PATCH", &path, r#"{"expires_in":"2d"}"#, 400)
        .await;
    assert_eq!(
        reason(&b),
        "policy max_lifetime: a token must expire within 1d"
    );
    h.expect("PATCH", &path, r#"{"expires_in":"1d"}"#, 200)
        .await;
}

#[tokio::test]
async fn reset_replaces_the_hash_and_returns_a_new_secret() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let old_secret = b["secret"].as_str().unwrap().to_owned();
    let old_hash = h.ctx.store.snapshot().token(&id).unwrap().secret_hash;
    let r = h
        .expect("POST", &format!("/tokens/{id}/reset"), "", 200)
        .await;
    assert_eq!(r["id"], id.as_str());
    let new_secret = r["secret"].as_str().unwrap();
    assert_ne!(new_secret, old_secret);
    let snap = h.ctx.store.snapshot();
    let new_hash = snap.token(&id).unwrap().secret_hash;
    assert_ne!(new_hash, old_hash);
    assert!(snap.token_by_hash(&old_hash).is_none());
    assert_eq!(snap.token_by_hash(&new_hash).unwrap().id, id);
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["action"], "token.reset");
    assert!(!ev.to_string().contains(new_secret));
    h.expect("POST", &format!("/tokens/{id}/reset"), r#"{"x":1}"#, 400)
        .await;
}

#[tokio::test]
async fn delete_removes_the_token_and_its_hash() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let hash = h.ctx.store.snapshot().token(&id).unwrap().secret_hash;
    let r = h.call("DELETE", &format!("/tokens/{id}"), "").await;
    assert_eq!(
        r,
        AdminResponse {
            status: 204,
            body: None
        }
    );
    assert!(h.ctx.store.snapshot().token_by_hash(&hash).is_none());
    h.expect("GET", &format!("/tokens/{id}"), "", 404).await;
    h.expect("DELETE", &format!("/tokens/{id}"), "", 404).await;
    assert_eq!(h.events().pop().unwrap()["action"], "token.delete");
}

#[tokio::test]
async fn no_response_or_event_contains_a_hash() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let id = b["id"].as_str().unwrap();
    let hash = h.ctx.store.snapshot().token(id).unwrap().secret_hash;
    let hex: String = hash.0.iter().map(|b| format!("{b:02x}")).collect();
    let all = json!([b, h.expect("GET", "/tokens", "", 200).await, h.events()]);
    assert!(!all.to_string().contains(&hex));
}

/// Who a secret opens at the harness's `now`, through the request path's lookup.
fn opens(h: &Harness, secret: &str) -> Option<String> {
    let parsed = Secret::parse(secret).expect("a generated secret parses");
    h.ctx
        .store
        .snapshot()
        .token_by_secret(&parsed.hash(), h.now)
        .map(|t| t.id.clone())
}

#[tokio::test]
async fn rotate_keeps_the_previous_secret_for_the_overlap_only() {
    let mut h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let first = b["secret"].as_str().unwrap().to_owned();
    let r = h
        .expect(
            "POST",
            &format!("/tokens/{id}/rotate"),
            r#"{"overlap":"1h"}"#,
            200,
        )
        .await;
    let second = r["secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["previous_secret_expires_at"], "2026-01-01T01:00:00Z");
    let shown = h.expect("GET", &format!("/tokens/{id}"), "", 200).await;
    assert_eq!(shown["previous_secret_expires_at"], "2026-01-01T01:00:00Z");
    assert_eq!(opens(&h, &first), Some(id.clone()));
    assert_eq!(opens(&h, &second), Some(id.clone()));
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["action"], "token.rotate");
    assert_eq!(ev["overlap_seconds"], 3600);
    assert!(!ev.to_string().contains(&second) && !ev.to_string().contains(&first));

    // At the end of the overlap the first secret stops; the view says nothing more.
    h.now += 3600;
    assert_eq!(opens(&h, &first), None);
    assert_eq!(opens(&h, &second), Some(id.clone()));
    let shown = h.expect("GET", &format!("/tokens/{id}"), "", 200).await;
    assert_eq!(shown["previous_secret_expires_at"], Value::Null);
    // The sweep forgets it durably.
    sweep_expired(&h.ctx.store, h.now).await.unwrap();
    let snap = h.ctx.store.snapshot();
    assert_eq!(snap.token(&id).unwrap().previous_secret, None);
    assert!(snap
        .token_by_hash(&Secret::parse(&first).unwrap().hash())
        .is_none());
}

#[tokio::test]
async fn rotating_again_ends_the_older_overlap_and_reset_or_delete_end_it_too() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a"})).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let rotate = |body: &'static str| {
        let path = format!("/tokens/{id}/rotate");
        let h = &h;
        async move { h.expect("POST", &path, body, 200).await }
    };
    let s1 = b["secret"].as_str().unwrap().to_owned();
    let s2 = rotate(r#"{"overlap":"1h"}"#).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let s3 = rotate(r#"{"overlap":"2h"}"#).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // At most two secrets: the first stopped at the second rotation.
    assert_eq!(opens(&h, &s1), None);
    assert_eq!(opens(&h, &s2), Some(id.clone()));
    assert_eq!(opens(&h, &s3), Some(id.clone()));
    // Reset is immediate for both.
    let s4 = h
        .expect("POST", &format!("/tokens/{id}/reset"), "", 200)
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(opens(&h, &s2), None);
    assert_eq!(opens(&h, &s3), None);
    assert_eq!(opens(&h, &s4), Some(id.clone()));
    // `0s` behaves like reset.
    let r = rotate(r#"{"overlap":"0s"}"#).await;
    assert_eq!(r["previous_secret_expires_at"], Value::Null);
    let s5 = r["secret"].as_str().unwrap().to_owned();
    assert_eq!(opens(&h, &s4), None);
    assert_eq!(opens(&h, &s5), Some(id.clone()));
    // Delete kills both.
    let s6 = rotate(r#"{"overlap":"1h"}"#).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(opens(&h, &s5), Some(id.clone()));
    h.expect("DELETE", &format!("/tokens/{id}"), "", 204).await;
    assert_eq!(opens(&h, &s5), None);
    assert_eq!(opens(&h, &s6), None);
}

#[tokio::test]
async fn rotate_overlaps_are_checked_and_capped_by_the_token_expiry() {
    let h = Harness::new();
    let b = token(&h, json!({"name": "a", "expires_in": "30m"})).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let path = format!("/tokens/{id}/rotate");
    for bad in [
        r#"{"overlap":"8d"}"#,
        r#"{"overlap":"7d1s"}"#,
        r#"{"overlap":"604801s"}"#,
        r#"{"overlap":"1500ms"}"#,
        r#"{"overlap":"-1h"}"#,
        r#"{"overlap":1}"#,
        r#"{"overlap":"1h","x":1}"#,
        r#"[]"#,
    ] {
        let r = h.call("POST", &path, bad).await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
    }
    // No change was made by the refusals.
    assert_eq!(h.events().len(), 1);
    // The default overlap is one hour, but never past the token's own expiry.
    let r = h.expect("POST", &path, "", 200).await;
    assert_eq!(r["previous_secret_expires_at"], "2026-01-01T00:30:00Z");
    let r = h.expect("POST", &path, r#"{"overlap":"7d"}"#, 200).await;
    assert_eq!(r["previous_secret_expires_at"], "2026-01-01T00:30:00Z");
    h.expect("POST", "/tokens/tok_missing/rotate", "", 404)
        .await;
    h.expect("GET", &path, "", 405).await;
}

#[tokio::test]
async fn limits_are_created_shown_patched_and_cleared() {
    let h = Harness::new();
    let b = token(
        &h,
        json!({"name": "a", "limits": {"max_size": 100, "search_timeout": "5s"}}),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(
        b["limits"],
        json!({"max_size": 100, "search_timeout": "5s"})
    );
    let path = format!("/tokens/{id}");
    let r = h
        .expect(
            "PATCH",
            &path,
            r#"{"limits":{"requests_per_second":5,"burst":10}}"#,
            200,
        )
        .await;
    assert_eq!(r["limits"], json!({"requests_per_second": 5, "burst": 10}));
    assert_eq!(h.events().pop().unwrap()["changed"], json!(["limits"]));
    let stored = h.ctx.store.snapshot().token(&id).unwrap().limits;
    assert_eq!(stored.requests_per_second, Some(5));
    assert_eq!(stored.max_size, None);
    let r = h.expect("PATCH", &path, r#"{"limits":null}"#, 200).await;
    assert_eq!(r["limits"], json!({}));
    h.expect("PATCH", &path, r#"{"limits":{"max_size":0}}"#, 400)
        .await;
    h.expect("POST", "/tokens", r#"{"name":"b","limits":{"x":1}}"#, 400)
        .await;
}

/// Review 15: `scores` defaults to `constant` for a token with filters (a relevance score
/// counts other tenants' documents) and `relevance` for one without; an admin may choose
/// either on create and PATCH (`null`: back to the default), and the token's scope follows.
#[tokio::test]
async fn scores_default_by_filters_and_may_be_chosen() {
    let h = Harness::new();
    let constant = |h: &Harness, id: &str| {
        let snap = h.ctx.store.snapshot();
        let t = snap.token(id).expect("stored");
        snap.scope(t).expect("scope").filters.constant_scores()
    };
    let tenant = json!([{"field": "tenant", "value": "a"}]);
    let plain = token(&h, json!({"name": "plain"})).await;
    let filtered = token(&h, json!({"name": "f", "filters": tenant})).await;
    let chosen = token(
        &h,
        json!({"name": "r", "filters": tenant, "scores": "relevance"}),
    )
    .await;
    let unfiltered_constant = token(&h, json!({"name": "c", "scores": "constant"})).await;
    for (b, want) in [
        (&plain, "relevance"),
        (&filtered, "constant"),
        (&chosen, "relevance"),
        (&unfiltered_constant, "constant"),
    ] {
        let id = b["id"].as_str().unwrap();
        assert_eq!(b["scores"], want, "{b}");
        assert_eq!(
            h.expect("GET", &format!("/tokens/{id}"), "", 200).await["scores"],
            want
        );
        assert_eq!(constant(&h, id), want == "constant", "{b}");
    }
    // Listed (by creation time, then the random id: compared by id).
    let listed = h.expect("GET", "/tokens", "", 200).await;
    for b in [&plain, &filtered, &chosen, &unfiltered_constant] {
        let shown = listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == b["id"])
            .expect("listed");
        assert_eq!(shown["scores"], b["scores"], "{shown}");
    }

    // PATCH: chosen, audited, then back to the default; filters decide the default.
    let id = filtered["id"].as_str().unwrap();
    let path = format!("/tokens/{id}");
    let b = h
        .expect("PATCH", &path, r#"{"scores":"relevance"}"#, 200)
        .await;
    assert_eq!(b["scores"], "relevance");
    assert!(!constant(&h, id));
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["changed"], json!(["scores"]));
    let b = h.expect("PATCH", &path, r#"{"scores":null}"#, 200).await;
    assert_eq!(b["scores"], "constant");
    assert!(constant(&h, id));
    let plain_path = format!("/tokens/{}", plain["id"].as_str().unwrap());
    let b = h
        .expect(
            "PATCH",
            &plain_path,
            &json!({"filters": tenant}).to_string(),
            200,
        )
        .await;
    assert_eq!(
        b["scores"], "constant",
        "filters added: the default follows"
    );

    for body in [
        json!({"name": "x", "scores": "bm25"}),
        json!({"name": "x", "scores": 1}),
    ] {
        let b = h.expect("POST", "/tokens", &body.to_string(), 400).await;
        assert!(reason(&b).starts_with("field [scores] must be"), "{b}");
    }
    let b = h.expect("PATCH", &path, r#"{"scores":"none"}"#, 400).await;
    assert_eq!(
        reason(&b),
        r#"field [scores] must be "constant" or "relevance""#
    );
}

/// Records written before `scores` existed load without it and take the default.
#[test]
fn records_without_scores_take_the_default() {
    let mut record = serde_json::to_value(Token::sample("t1", 1)).unwrap();
    assert!(record.get("scores").is_none(), "the default is not written");
    let old: Token = serde_json::from_value(record.clone()).unwrap();
    assert_eq!((old.scores, old.constant_scores()), (None, false));
    record["filters"] = json!([{"inline": {"field": "tenant", "value": "a"}}]);
    let old: Token = serde_json::from_value(record).unwrap();
    assert_eq!((old.scores, old.constant_scores()), (None, true));
    let mut chosen = old.clone();
    chosen.scores = Some(crate::store::model::Scores::Relevance);
    let text = serde_json::to_string(&chosen).unwrap();
    assert!(text.contains(r#""scores":"relevance""#), "{text}");
    assert!(!serde_json::from_str::<Token>(&text)
        .unwrap()
        .constant_scores());
}
