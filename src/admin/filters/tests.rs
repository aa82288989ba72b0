use serde_json::json;

use super::super::testing::*;
use super::super::Policies;
use super::*;

async fn create_filter(h: &Harness, body: Value) -> Value {
    h.expect("POST", "/filters", &body.to_string(), 201).await
}

async fn token_with(h: &Harness, filters: Value) -> String {
    let b = h
        .expect(
            "POST",
            "/tokens",
            &json!({"name": "t", "filters": filters}).to_string(),
            201,
        )
        .await;
    b["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn create_returns_the_filter_with_an_id() {
    let h = Harness::new();
    let b = create_filter(
        &h,
        json!({"description": "test env", "field": "env", "value": "test"}),
    )
    .await;
    let id = b["id"].as_str().unwrap();
    assert!(id.starts_with("flt_") && id.len() == 20);
    assert_eq!(
        b,
        json!({"id": id, "description": "test env", "field": "env", "value": "test",
                   "created_at": "2026-01-01T00:00:00Z", "used_by": []})
    );
    assert_eq!(h.expect("GET", &format!("/filters/{id}"), "", 200).await, b);
    let ev = h.events().pop().unwrap();
    assert_eq!(
        (ev["action"].as_str(), ev["target"].as_str()),
        (Some("filter.create"), Some(id))
    );
    let b = create_filter(&h, json!({"field": "env", "value": "prod"})).await;
    assert_eq!(b["description"], "");
}

#[tokio::test]
async fn create_rejects_bad_input_naming_the_field() {
    let h = Harness::new();
    for (body, want) in [
        (json!({"value": "x"}), "field [field] is required"),
        (json!({"field": "x"}), "field [value] is required"),
        (
            json!({"field": "", "value": "x"}),
            "field [field] must not be empty",
        ),
        (
            json!({"field": "f", "value": ""}),
            "field [value] must not be empty",
        ),
        (
            json!({"field": "f", "value": 1}),
            "field [value] must be a string",
        ),
        (
            json!({"field": "f", "value": "v", "description": 2}),
            "field [description] must be a string",
        ),
        (
            json!({"field": "f", "value": "v", "id": "flt_x"}),
            "field [id] is unknown",
        ),
    ] {
        let b = h.expect("POST", "/filters", &body.to_string(), 400).await;
        assert_eq!(reason(&b), want, "{body}");
    }
    assert_eq!(
        h.expect("GET", "/filters", "", 200).await,
        json!({"filters": []})
    );
}

#[tokio::test]
async fn list_is_sorted_by_creation_and_shows_users() {
    let mut h = Harness::new();
    h.now = T0 + 5;
    let a = create_filter(&h, json!({"field": "a", "value": "1"})).await;
    h.now = T0;
    let b = create_filter(&h, json!({"field": "b", "value": "2"})).await;
    let tid = token_with(&h, json!([a["id"]])).await;
    let l = h.expect("GET", "/filters", "", 200).await;
    let fields: Vec<&str> = l["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["b", "a"]);
    assert_eq!(l["filters"][1]["used_by"], json!([tid]));
    assert_eq!(l["filters"][0]["used_by"], json!([]));
    assert_eq!(b["used_by"], json!([]));
}

#[tokio::test]
async fn patch_takes_effect_on_every_token_at_once() {
    let h = Harness::new();
    let f = create_filter(&h, json!({"field": "env", "value": "test"})).await;
    let fid = f["id"].as_str().unwrap();
    let t1 = token_with(&h, json!([fid])).await;
    let t2 = token_with(&h, json!([{"field": "x", "value": "y"}, fid])).await;
    let b = h
        .expect(
            "PATCH",
            &format!("/filters/{fid}"),
            r#"{"value":"prod","description":"d"}"#,
            200,
        )
        .await;
    assert_eq!(
        (b["field"].as_str(), b["value"].as_str()),
        (Some("env"), Some("prod"))
    );
    assert_eq!(b["description"], "d");
    let t1 = h.expect("GET", &format!("/tokens/{t1}"), "", 200).await;
    assert_eq!(
        t1["filters"],
        json!([{"id": fid, "field": "env", "value": "prod"}])
    );
    let t2 = h.expect("GET", &format!("/tokens/{t2}"), "", 200).await;
    assert_eq!(
        t2["filters"][1],
        json!({"id": fid, "field": "env", "value": "prod"})
    );
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["action"], "filter.update");
    assert_eq!(ev["changed"], json!(["description", "value"]));
}

#[tokio::test]
async fn patch_validates_and_rejects_unknown_fields() {
    let h = Harness::new();
    let f = create_filter(&h, json!({"field": "env", "value": "test"})).await;
    let path = format!("/filters/{}", f["id"].as_str().unwrap());
    for (body, want) in [
        (r#"{"field":""}"#, "field [field] must not be empty"),
        (r#"{"value":null}"#, "field [value] must be a string"),
        (r#"{"colour":"red"}"#, "field [colour] is unknown"),
        (r#"{"id":"flt_x"}"#, "field [id] cannot be changed"),
    ] {
        let b = h.expect("PATCH", &path, body, 400).await;
        assert_eq!(reason(&b), want, "{body}");
    }
    h.expect("PATCH", "/filters/flt_nope", r#"{"value":"x"}"#, 404)
        .await;
    assert_eq!(h.expect("GET", &path, "", 200).await["value"], "test");
}

#[tokio::test]
async fn delete_is_refused_while_tokens_use_the_filter() {
    let h = Harness::new();
    let f = create_filter(&h, json!({"field": "env", "value": "test"})).await;
    let fid = f["id"].as_str().unwrap();
    let tid = token_with(&h, json!([fid])).await;
    let b = h
        .expect("DELETE", &format!("/filters/{fid}"), "", 409)
        .await;
    assert!(reason(&b).contains(&tid), "{b}");
    let b = h
        .expect("DELETE", &format!("/filters/{fid}?detach=false"), "", 409)
        .await;
    assert!(reason(&b).contains(&tid));
    h.expect("GET", &format!("/filters/{fid}"), "", 200).await;
    h.expect("DELETE", &format!("/filters/{fid}?detach=maybe"), "", 400)
        .await;
    h.expect("DELETE", &format!("/filters/{fid}?force=true"), "", 400)
        .await;
}

#[tokio::test]
async fn delete_with_detach_removes_references_in_the_same_write() {
    let h = Harness::new();
    let f = create_filter(&h, json!({"field": "env", "value": "test"})).await;
    let fid = f["id"].as_str().unwrap().to_owned();
    let tid = token_with(&h, json!([{"field": "t", "value": "a"}, fid])).await;
    let before = h.durable().len();
    let r = h
        .call("DELETE", &format!("/filters/{fid}?detach=true"), "")
        .await;
    assert_eq!(
        r,
        AdminResponse {
            status: 204,
            body: None
        }
    );
    let t = h.expect("GET", &format!("/tokens/{tid}"), "", 200).await;
    assert_eq!(t["filters"], json!([{"field": "t", "value": "a"}]));
    h.expect("GET", &format!("/filters/{fid}"), "", 404).await;
    let written = &h.durable()[before..];
    assert_eq!(
        written.len(),
        2,
        "one append with both changes: {written:?}"
    );
    assert!(matches!(&written[0], Change::PutToken { token } if token.id == tid));
    assert!(matches!(&written[1], Change::DeleteFilter { id } if *id == fid));
    let ev = h.events().pop().unwrap();
    assert_eq!(ev["action"], "filter.delete");
    assert_eq!(ev["detached_from"], json!([tid]));
}

#[tokio::test]
async fn detach_is_refused_when_it_would_leave_a_token_unfiltered_under_require_filters() {
    let h = Harness::with_policies(Policies {
        require_filters: true,
        ..Policies::default()
    });
    let f = create_filter(&h, json!({"field": "env", "value": "test"})).await;
    let fid = f["id"].as_str().unwrap();
    let tid = token_with(&h, json!([fid])).await;
    let b = h
        .expect("DELETE", &format!("/filters/{fid}?detach=true"), "", 409)
        .await;
    assert_eq!(
        reason(&b),
        format!("policy require_filters: detaching would leave token [{tid}] without any filter")
    );
    let t = h.expect("GET", &format!("/tokens/{tid}"), "", 200).await;
    assert_eq!(t["filters"][0]["id"], fid);
}

#[tokio::test]
async fn unused_filters_delete_and_unknown_ones_are_404() {
    let h = Harness::new();
    let f = create_filter(&h, json!({"field": "env", "value": "test"})).await;
    let path = format!("/filters/{}", f["id"].as_str().unwrap());
    h.expect("DELETE", &path, "", 204).await;
    h.expect("DELETE", &path, "", 404).await;
    h.expect("GET", &path, "", 404).await;
    assert_eq!(
        h.expect("GET", "/filters", "", 200).await,
        json!({"filters": []})
    );
}
