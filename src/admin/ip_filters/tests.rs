use serde_json::{json, Value};

use super::super::testing::*;

/// The IP filter `office` (10.0.0.0/8) and a token `t` that uses it: the token's view.
async fn office_and_a_token_using_it(h: &Harness) -> Value {
    h.expect(
        "POST",
        "/ip-filters",
        r#"{"name":"office","cidrs":["10.0.0.0/8"]}"#,
        201,
    )
    .await;
    h.expect(
        "POST",
        "/tokens",
        r#"{"name":"t","ip_filter":"office"}"#,
        201,
    )
    .await
}

#[tokio::test]
async fn create_accepts_cidrs_and_bare_addresses() {
    let h = Harness::new();
    let b = h
            .expect(
                "POST",
                "/ip-filters",
                r#"{"name":"office","cidrs":["10.0.0.0/8","2001:db8::/32","192.0.2.1","::1","10.0.0.0/8"]}"#,
                201,
            )
            .await;
    assert_eq!(
        b,
        json!({"name": "office",
                   "cidrs": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32", "::1/128"],
                   "created_at": "2026-01-01T00:00:00Z", "used_by": []})
    );
    assert_eq!(h.expect("GET", "/ip-filters/office", "", 200).await, b);
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["action"], "ip_filter.create");
    assert_eq!(ev["target"], "office");
}

#[tokio::test]
async fn create_rejects_bad_names_and_cidrs() {
    let h = Harness::new();
    for (body, want) in [
        (json!({"cidrs": ["10.0.0.0/8"]}), "field [name] is required"),
        (
            json!({"name": "Office", "cidrs": ["10.0.0.0/8"]}),
            "field [name] must be 1 to 64 characters from a-z, 0-9, _ and -",
        ),
        (
            json!({"name": "", "cidrs": ["10.0.0.0/8"]}),
            "field [name] must be 1 to 64 characters from a-z, 0-9, _ and -",
        ),
        (
            json!({"name": "a".repeat(65), "cidrs": ["10.0.0.0/8"]}),
            "field [name] must be 1 to 64 characters from a-z, 0-9, _ and -",
        ),
        (
            json!({"name": "a b", "cidrs": ["10.0.0.0/8"]}),
            "field [name] must be 1 to 64 characters from a-z, 0-9, _ and -",
        ),
        (json!({"name": "x"}), "field [cidrs] is required"),
        (
            json!({"name": "x", "cidrs": []}),
            "field [cidrs] must not be empty",
        ),
        (
            json!({"name": "x", "cidrs": "10.0.0.0/8"}),
            "field [cidrs] must be an array",
        ),
        (
            json!({"name": "x", "cidrs": ["10.0.0.0/8", "::/0", "10.0.0.0/33"]}),
            "field [cidrs[2]] must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address",
        ),
        (
            json!({"name": "x", "cidrs": ["10.0.0.0/8", 5]}),
            "field [cidrs[1]] must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address",
        ),
        (
            json!({"name": "x", "cidrs": ["office"]}),
            "field [cidrs[0]] must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address",
        ),
        (
            json!({"name": "x", "cidrs": ["10.0.0.0/8"], "tokens": []}),
            "field [tokens] is unknown",
        ),
    ] {
        let b = h
            .expect("POST", "/ip-filters", &body.to_string(), 400)
            .await;
        assert_eq!(reason(&b), want, "{body}");
    }
    let name64 = "a".repeat(64);
    h.expect(
        "POST",
        "/ip-filters",
        &json!({"name": name64, "cidrs": ["::/0"]}).to_string(),
        201,
    )
    .await;
}

#[tokio::test]
async fn duplicate_names_conflict() {
    let h = Harness::new();
    let body = r#"{"name":"office","cidrs":["10.0.0.0/8"]}"#;
    h.expect("POST", "/ip-filters", body, 201).await;
    let b = h
        .expect(
            "POST",
            "/ip-filters",
            r#"{"name":"office","cidrs":["::1"]}"#,
            409,
        )
        .await;
    assert_eq!(reason(&b), "an IP filter with this name already exists");
    assert_eq!(
        h.expect("GET", "/ip-filters/office", "", 200).await["cidrs"],
        json!(["10.0.0.0/8"])
    );
}

#[tokio::test]
async fn list_is_sorted_by_name() {
    let h = Harness::new();
    for name in ["zeta", "alpha", "mid"] {
        h.expect(
            "POST",
            "/ip-filters",
            &json!({"name": name, "cidrs": ["::1"]}).to_string(),
            201,
        )
        .await;
    }
    let l = h.expect("GET", "/ip-filters", "", 200).await;
    let names: Vec<&str> = l["ip_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
}

#[tokio::test]
async fn patch_replaces_cidrs_and_shows_on_tokens() {
    let h = Harness::new();
    let t = office_and_a_token_using_it(&h).await;
    let b = h
        .expect(
            "PATCH",
            "/ip-filters/office",
            r#"{"cidrs":["10.1.0.0/16"]}"#,
            200,
        )
        .await;
    assert_eq!(b["cidrs"], json!(["10.1.0.0/16"]));
    assert_eq!(b["used_by"], json!([t["id"]]));
    let t = h
        .expect(
            "GET",
            &format!("/tokens/{}", t["id"].as_str().unwrap()),
            "",
            200,
        )
        .await;
    assert_eq!(t["ip_cidrs"], json!(["10.1.0.0/16"]));
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["action"], "ip_filter.update");
    assert_eq!(ev["old_cidrs"], json!(["10.0.0.0/8"]));
    assert_eq!(ev["cidrs"], json!(["10.1.0.0/16"]));
    for (body, want) in [
        (r#"{"name":"other"}"#, "field [name] cannot be changed"),
        (r#"{"cidrs":[]}"#, "field [cidrs] must not be empty"),
        (
            r#"{"cidrs":["x"]}"#,
            "field [cidrs[0]] must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address",
        ),
    ] {
        let b = h.expect("PATCH", "/ip-filters/office", body, 400).await;
        assert_eq!(reason(&b), want, "{body}");
    }
    h.expect("PATCH", "/ip-filters/nope", r#"{"cidrs":["::1"]}"#, 404)
        .await;
}

#[tokio::test]
async fn delete_is_refused_while_tokens_use_it() {
    let h = Harness::new();
    let t = office_and_a_token_using_it(&h).await;
    let tid = t["id"].as_str().unwrap();
    let b = h.expect("DELETE", "/ip-filters/office", "", 409).await;
    assert!(reason(&b).contains(tid), "{b}");
    h.expect("DELETE", &format!("/tokens/{tid}"), "", 204).await;
    h.expect("DELETE", "/ip-filters/office", "", 204).await;
    h.expect("GET", "/ip-filters/office", "", 404).await;
    h.expect("DELETE", "/ip-filters/office", "", 404).await;
    assert_eq!(h.events().pop().unwrap()["action"], "ip_filter.delete");
}

/// Issue #9 item 7: PATCHing an IP filter to `0.0.0.0/0` silently lifted every token's
/// address restriction. It is audited loudly, and a policy can forbid it.
#[tokio::test]
async fn opening_an_ip_filter_to_every_address_is_audited_and_can_be_forbidden() {
    let h = Harness::new();
    let t = office_and_a_token_using_it(&h).await;
    for open in ["0.0.0.0/0", "::/0"] {
        h.expect(
            "PATCH",
            "/ip-filters/office",
            &json!({"cidrs": ["10.0.0.0/8", open]}).to_string(),
            200,
        )
        .await;
        let ev = h.events().pop().unwrap();
        assert_eq!(ev["action"], "ip_filter.update");
        assert_eq!(ev["allows_every_address"], true, "{open}");
        assert_eq!(ev["tokens_unrestricted"], json!([t["id"]]));
        h.expect(
            "PATCH",
            "/ip-filters/office",
            r#"{"cidrs":["10.0.0.0/8"]}"#,
            200,
        )
        .await;
        assert!(h
            .events()
            .pop()
            .unwrap()
            .get("allows_every_address")
            .is_none());
    }

    let strict = Harness::with_policies(crate::admin::Policies {
        allow_open_ip_filters: false,
        ..crate::admin::Policies::default()
    });
    strict
        .expect(
            "POST",
            "/ip-filters",
            r#"{"name":"office","cidrs":["10.0.0.0/8"]}"#,
            201,
        )
        .await;
    for body in [r#"{"cidrs":["0.0.0.0/0"]}"#, r#"{"cidrs":["::1","::/0"]}"#] {
        let b = strict
            .expect("PATCH", "/ip-filters/office", body, 400)
            .await;
        assert!(reason(&b).contains("allow_open_ip_filters"), "{b}");
    }
    let b = strict
        .expect(
            "POST",
            "/ip-filters",
            r#"{"name":"any","cidrs":["0.0.0.0/0"]}"#,
            400,
        )
        .await;
    assert!(reason(&b).contains("allow_open_ip_filters"), "{b}");
    assert_eq!(
        strict.expect("GET", "/ip-filters/office", "", 200).await["cidrs"],
        json!(["10.0.0.0/8"])
    );
}

/// Every address is every address however it is spelt (review 16c): `::ffff:0.0.0.0/96` lets
/// every IPv4 client through (v4-mapped networks match as IPv4), and CIDRs that together cover
/// a family lift the restriction as `0.0.0.0/0` does. They were neither refused by
/// `allow_open_ip_filters = false` nor audited as opening the filter.
#[tokio::test]
async fn open_ip_filters_are_recognised_in_every_spelling() {
    let open: &[&[&str]] = &[
        &["::ffff:0.0.0.0/96"],
        &["::ffff:0:0/97", "::ffff:128.0.0.0/97"],
        &["0.0.0.0/1", "128.0.0.0/1"],
        &["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/1", "10.0.0.0/8"],
        &["::/1", "8000::/1"],
    ];
    for cidrs in open {
        let nets: Vec<ipnet::IpNet> = cidrs.iter().map(|c| c.parse().unwrap()).collect();
        let v4_open = ["192.0.2.1", "10.1.2.3", "255.255.255.255"]
            .iter()
            .all(|a| crate::policy::client_ip::in_cidrs(a.parse().unwrap(), &nets));
        let v6_open = ["2001:db8::1", "ffff::1", "::2"]
            .iter()
            .all(|a| crate::policy::client_ip::in_cidrs(a.parse().unwrap(), &nets));
        assert!(
            v4_open || v6_open,
            "{cidrs:?} is not open: the case is wrong"
        );

        let strict = Harness::with_policies(crate::admin::Policies {
            allow_open_ip_filters: false,
            ..crate::admin::Policies::default()
        });
        let b = strict
            .expect(
                "POST",
                "/ip-filters",
                &json!({"name": "any", "cidrs": cidrs}).to_string(),
                400,
            )
            .await;
        assert!(
            reason(&b).contains("allow_open_ip_filters"),
            "{cidrs:?}: {b}"
        );

        let h = Harness::new();
        h.expect(
            "POST",
            "/ip-filters",
            &json!({"name": "any", "cidrs": cidrs}).to_string(),
            201,
        )
        .await;
        let ev = h.events().pop().unwrap();
        assert_eq!(ev["allows_every_address"], true, "{cidrs:?}");
    }
    // Nearly every address is not every address.
    let strict = Harness::with_policies(crate::admin::Policies {
        allow_open_ip_filters: false,
        ..crate::admin::Policies::default()
    });
    for (i, cidrs) in [
        &["0.0.0.0/1", "128.0.0.0/2"][..],
        &["::ffff:0:0/97"],
        &["::/1", "8000::/2"],
        &["0.0.0.0/1", "8000::/1"],
        &["::/96", "::ffff:0:0/97"],
    ]
    .iter()
    .enumerate()
    {
        strict
            .expect(
                "POST",
                "/ip-filters",
                &json!({"name": format!("f{i}"), "cidrs": cidrs}).to_string(),
                201,
            )
            .await;
    }
}
