//! The admin API's JSON, pinned to the byte: every answer and audit event of one scripted
//! session, as the server wrote them before the views became serde types (issue #11). Random
//! ids and secrets are replaced by placeholders; everything else (keys, their order, nulls,
//! numbers) must stay as it is.

use std::collections::BTreeSet;

use serde_json::json;

use super::super::testing::*;
use super::*;

/// Runs the session; returns one line per answer, then one per audit event.
async fn transcript() -> String {
    let mut h = Harness::new();
    let mut lines: Vec<String> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();
    async fn step(
        h: &Harness,
        lines: &mut Vec<String>,
        secrets: &mut Vec<String>,
        method: &str,
        path: &str,
        body: &str,
    ) -> serde_json::Value {
        let r = h.call(method, path, body).await;
        let b = r.body.clone().unwrap_or_default();
        if let Some(s) = b["secret"].as_str() {
            secrets.push(s.to_owned());
        }
        lines.push(format!(
            "{method} {path} -> {} {}",
            r.status,
            r.body.map(|b| b.to_string()).unwrap_or_default()
        ));
        b
    }
    macro_rules! s {
        ($m:expr, $p:expr, $b:expr) => {
            step(&h, &mut lines, &mut secrets, $m, &$p, $b).await
        };
    }
    s!(
        "POST",
        "/ip-filters",
        r#"{"name":"office","cidrs":["10.0.0.0/8","::1"]}"#
    );
    let f = s!(
        "POST",
        "/filters",
        r#"{"field":"env","value":"test","description":"d"}"#
    );
    let fid = f["id"].as_str().unwrap_or_default().to_owned();
    let body = format!(
        r#"{{"name":"acme","filters":[{{"field":"tenant","value":"a"}},"{fid}"],"indices":["logs-*"],
            "expires_in":"7d","ip_filter":"office","kibana_spaces":["default","acme"],
            "limits":{{"search_timeout":"1500ms","max_size":100,"burst":5}}}}"#
    );
    let t = s!("POST", "/tokens", &body);
    let tid = t["id"].as_str().unwrap_or_default().to_owned();
    // Distinct creation times: lists are sorted by creation time, then by (random) id.
    h.now += 1;
    s!("POST", "/tokens", r#"{"name":"plain"}"#);
    h.ctx.store.touch(&tid, T0 + 5);
    h.now += 10;
    s!(
        "POST",
        format!("/tokens/{tid}/rotate"),
        r#"{"overlap":"1h"}"#
    );
    s!("GET", format!("/tokens/{tid}"), "");
    s!("GET", "/tokens?name=ac", "");
    s!("GET", "/tokens?size=1&from=1", "");
    s!(
        "PATCH",
        format!("/tokens/{tid}"),
        r#"{"name":"acme2","limits":null}"#
    );
    s!("PATCH", format!("/tokens/{tid}"), r#"{"name":"acme2"}"#);
    let l = s!(
        "POST",
        format!("/tokens/{tid}/links"),
        r#"{"path":"/app/x","time":{"from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z"}}"#
    );
    let lid = l["id"].as_str().unwrap_or_default().to_owned();
    h.now += 1;
    s!(
        "POST",
        format!("/tokens/{tid}/links"),
        r#"{"path":"/s/acme/app/y","expires_in":"1h"}"#
    );
    s!("GET", format!("/tokens/{tid}/links"), "");
    s!("GET", format!("/links/{lid}"), "");
    s!("DELETE", format!("/links/{lid}"), "");
    s!("GET", "/filters", "");
    s!("GET", format!("/filters/{fid}"), "");
    s!("PATCH", format!("/filters/{fid}"), r#"{"value":"prod"}"#);
    s!("DELETE", format!("/filters/{fid}"), "");
    s!("GET", "/ip-filters", "");
    s!("GET", "/ip-filters/office", "");
    s!("PATCH", "/ip-filters/office", r#"{"cidrs":["0.0.0.0/0"]}"#);
    s!("DELETE", "/ip-filters/office", "");
    s!("POST", format!("/tokens/{tid}/reset"), "");
    s!("DELETE", format!("/filters/{fid}?detach=true"), "");
    s!("DELETE", format!("/tokens/{tid}"), "");
    s!("GET", format!("/tokens/{tid}"), "");
    s!(
        "POST",
        "/ip-filters",
        r#"{"name":"office","cidrs":["10.0.0.0/8"]}"#
    );
    s!("DELETE", "/ip-filters/nope", "");
    for e in h.events() {
        lines.push(format!("event {e}"));
    }
    let mut text = lines.join("\n");
    // Placeholders for what is random, longest first so no id is a prefix of another's.
    let mut ids: Vec<String> = Vec::new();
    for word in text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| ["tok_", "flt_", "lnk_"].iter().any(|p| w.starts_with(p)) && w.len() > 8)
    {
        if !ids.iter().any(|i| i == word) {
            ids.push(word.to_owned());
        }
    }
    // A link's reference (the audit log's name for it: `lnk_` and 12 hex digits) is a prefix
    // of its id: `<the id's placeholder>.ref`.
    let refs: Vec<(String, String)> = ids
        .iter()
        .filter_map(|r| {
            let id = ids
                .iter()
                .find(|i| i.len() > r.len() && i.starts_with(r.as_str()))?;
            Some((r.clone(), id.clone()))
        })
        .collect();
    ids.retain(|i| !refs.iter().any(|(r, _)| r == i));
    for (n, id) in ids.iter().enumerate() {
        text = text.replace(id.as_str(), &format!("{}{n}", &id[..4]));
    }
    for (r, id) in &refs {
        let n = ids.iter().position(|i| i == id).unwrap_or(usize::MAX);
        text = text.replace(r.as_str(), &format!("{}{n}.ref", &r[..4]));
    }
    for (n, s) in secrets.iter().enumerate() {
        text = text.replace(s.as_str(), &format!("SECRET{n}"));
    }
    text
}

#[tokio::test]
async fn the_wire_json_is_unchanged() {
    let got = transcript().await;
    let want = WANT.trim();
    if got != want {
        for (g, w) in got.lines().zip(want.lines()) {
            if g != w {
                panic!("first difference:\n got: {g}\nwant: {w}\n\nwhole transcript:\n{got}");
            }
        }
        panic!("line count differs:\n{got}");
    }
}

/// The request types the CLI sends name exactly the fields the server accepts (the server
/// parses bodies field by field, so the two lists are held together here).
#[test]
fn request_types_name_exactly_the_fields_the_server_accepts() {
    fn keys<T: serde::Serialize>(v: &T) -> BTreeSet<String> {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
            .unwrap_or_default()
    }
    fn names(fields: &[&str]) -> BTreeSet<String> {
        fields.iter().map(|f| (*f).to_owned()).collect()
    }
    let s = || Some(String::new());
    let token = TokenRequest {
        name: s(),
        filters: Some(vec![]),
        indices: Some(vec![]),
        permissions: Some(vec![]),
        expires_in: s(),
        expires_at: s(),
        ip_filter: s(),
        limits: Some(json!({})),
        kibana_spaces: Some(vec![]),
        scores: s(),
    };
    assert_eq!(keys(&token), names(super::super::tokens::CREATE_FIELDS));
    let filter = FilterRequest {
        field: s(),
        value: s(),
        description: s(),
    };
    assert_eq!(keys(&filter), names(super::super::filters::FIELDS));
    let ip_filter = IpFilterRequest {
        name: s(),
        cidrs: vec![],
    };
    assert_eq!(
        keys(&ip_filter),
        names(super::super::ip_filters::CREATE_FIELDS)
    );
    let link = LinkRequest {
        path: String::new(),
        time: Some(TimeRange::default()),
        expires_in: s(),
        expires_at: s(),
    };
    assert_eq!(keys(&link), names(super::super::links::CREATE_FIELDS));
    assert_eq!(keys(&RotateRequest { overlap: s() }), names(&["overlap"]));
}

/// Requests built from the types are accepted, and the answers read back as the view types:
/// the CLI's side of the contract against the server's.
#[tokio::test]
async fn requests_built_from_the_types_are_accepted_and_answers_read_back() {
    fn body<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let h = Harness::new();
    let ipf = IpFilterRequest {
        name: Some("office".into()),
        cidrs: vec!["10.0.0.0/8".into()],
    };
    let b = h.expect("POST", "/ip-filters", &body(&ipf), 201).await;
    let ipf: IpFilter = serde_json::from_value(b).expect("an IP filter view");
    assert_eq!(ipf.cidrs, ["10.0.0.0/8"]);
    let filter = FilterRequest {
        field: Some("env".into()),
        value: Some("test".into()),
        description: Some("d".into()),
    };
    let b = h.expect("POST", "/filters", &body(&filter), 201).await;
    let filter: Filter = serde_json::from_value(b).expect("a filter view");
    let token = TokenRequest {
        name: Some("acme".into()),
        filters: Some(vec![
            FilterSpec::Inline {
                field: "tenant".into(),
                value: "a".into(),
            },
            FilterSpec::Library(filter.id.clone()),
        ]),
        indices: Some(vec!["logs-*".into()]),
        permissions: Some(vec!["read".into()]),
        expires_in: Some("1d".into()),
        expires_at: None,
        ip_filter: Some("office".into()),
        limits: Some(json!({"max_size": 10})),
        kibana_spaces: Some(vec!["default".into()]),
        scores: Some("relevance".into()),
    };
    let b = h.expect("POST", "/tokens", &body(&token), 201).await;
    let created: TokenCreated = serde_json::from_value(b).expect("a created token");
    assert!(!created.secret.is_empty());
    assert_eq!(created.token.limits.max_size, Some(10));
    assert_eq!(created.token.scores, "relevance");
    assert_eq!(
        created.token.filters[1].id.as_deref(),
        Some(filter.id.as_str())
    );
    let id = created.token.id.clone();
    let b = h.expect("GET", &format!("/tokens/{id}"), "", 200).await;
    let shown: Token = serde_json::from_value(b.clone()).expect("a token view");
    assert_eq!(shown, created.token);
    assert!(b.get("secret").is_none(), "a view never carries the secret");
    let rotate = RotateRequest {
        overlap: Some("1h".into()),
    };
    let b = h
        .expect("POST", &format!("/tokens/{id}/rotate"), &body(&rotate), 200)
        .await;
    let rotated: SecretRotated = serde_json::from_value(b).expect("a rotation");
    assert!(rotated.previous_secret_expires_at.is_some());
    let link = LinkRequest {
        path: "/app/x".into(),
        time: None,
        expires_in: None,
        expires_at: None,
    };
    let b = h
        .expect("POST", &format!("/tokens/{id}/links"), &body(&link), 201)
        .await;
    let link: Link = serde_json::from_value(b).expect("a link view");
    assert_eq!(link.token_id, id);
    let b = h.expect("GET", "/tokens", "", 200).await;
    let page: TokenPage = serde_json::from_value(b).expect("a token page");
    assert_eq!((page.total, page.tokens[0].id.as_str()), (1, id.as_str()));
}

/// A library filter the store no longer has shows as such (the API never leaves one; the view
/// type still writes the documented shape).
#[test]
fn a_missing_library_filter_is_shown_as_missing() {
    let f = TokenFilter {
        id: Some("flt_x".into()),
        field: None,
        value: None,
        missing: true,
    };
    assert_eq!(
        serde_json::to_string(&f).ok().as_deref(),
        Some(r#"{"id":"flt_x","field":null,"value":null,"missing":true}"#)
    );
    let inline = TokenFilter {
        id: None,
        field: Some("t".into()),
        value: Some("a".into()),
        missing: false,
    };
    assert_eq!(
        serde_json::to_string(&inline).ok().as_deref(),
        Some(r#"{"field":"t","value":"a"}"#)
    );
}

const WANT: &str = r#"
POST /ip-filters -> 201 {"name":"office","cidrs":["10.0.0.0/8","::1/128"],"created_at":"2026-01-01T00:00:00Z","used_by":[]}
POST /filters -> 201 {"id":"flt_0","description":"d","field":"env","value":"test","created_at":"2026-01-01T00:00:00Z","used_by":[]}
POST /tokens -> 201 {"id":"tok_1","name":"acme","filters":[{"field":"tenant","value":"a"},{"id":"flt_0","field":"env","value":"test"}],"indices":["logs-*"],"permissions":["read"],"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ip_filter":"office","ip_cidrs":["10.0.0.0/8","::1/128"],"kibana_spaces":["default","acme"],"last_used_at":null,"previous_secret_expires_at":null,"limits":{"burst":5,"max_size":100,"search_timeout":"1500ms"},"scores":"constant","secret":"SECRET0"}
POST /tokens -> 201 {"id":"tok_2","name":"plain","filters":[],"indices":["*"],"permissions":["read"],"created_at":"2026-01-01T00:00:01Z","expires_at":null,"expired":false,"ip_filter":null,"ip_cidrs":[],"kibana_spaces":["default"],"last_used_at":null,"previous_secret_expires_at":null,"limits":{},"scores":"relevance","secret":"SECRET1"}
POST /tokens/tok_1/rotate -> 200 {"id":"tok_1","secret":"SECRET2","previous_secret_expires_at":"2026-01-01T01:00:11Z"}
GET /tokens/tok_1 -> 200 {"id":"tok_1","name":"acme","filters":[{"field":"tenant","value":"a"},{"id":"flt_0","field":"env","value":"test"}],"indices":["logs-*"],"permissions":["read"],"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ip_filter":"office","ip_cidrs":["10.0.0.0/8","::1/128"],"kibana_spaces":["default","acme"],"last_used_at":"2026-01-01T00:00:05Z","previous_secret_expires_at":"2026-01-01T01:00:11Z","limits":{"burst":5,"max_size":100,"search_timeout":"1500ms"},"scores":"constant"}
GET /tokens?name=ac -> 200 {"tokens":[{"id":"tok_1","name":"acme","filters":[{"field":"tenant","value":"a"},{"id":"flt_0","field":"env","value":"test"}],"indices":["logs-*"],"permissions":["read"],"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ip_filter":"office","ip_cidrs":["10.0.0.0/8","::1/128"],"kibana_spaces":["default","acme"],"last_used_at":"2026-01-01T00:00:05Z","previous_secret_expires_at":"2026-01-01T01:00:11Z","limits":{"burst":5,"max_size":100,"search_timeout":"1500ms"},"scores":"constant"}],"total":1}
GET /tokens?size=1&from=1 -> 200 {"tokens":[{"id":"tok_2","name":"plain","filters":[],"indices":["*"],"permissions":["read"],"created_at":"2026-01-01T00:00:01Z","expires_at":null,"expired":false,"ip_filter":null,"ip_cidrs":[],"kibana_spaces":["default"],"last_used_at":null,"previous_secret_expires_at":null,"limits":{},"scores":"relevance"}],"total":2}
PATCH /tokens/tok_1 -> 200 {"id":"tok_1","name":"acme2","filters":[{"field":"tenant","value":"a"},{"id":"flt_0","field":"env","value":"test"}],"indices":["logs-*"],"permissions":["read"],"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ip_filter":"office","ip_cidrs":["10.0.0.0/8","::1/128"],"kibana_spaces":["default","acme"],"last_used_at":"2026-01-01T00:00:05Z","previous_secret_expires_at":"2026-01-01T01:00:11Z","limits":{},"scores":"constant"}
PATCH /tokens/tok_1 -> 200 {"id":"tok_1","name":"acme2","filters":[{"field":"tenant","value":"a"},{"id":"flt_0","field":"env","value":"test"}],"indices":["logs-*"],"permissions":["read"],"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ip_filter":"office","ip_cidrs":["10.0.0.0/8","::1/128"],"kibana_spaces":["default","acme"],"last_used_at":"2026-01-01T00:00:05Z","previous_secret_expires_at":"2026-01-01T01:00:11Z","limits":{},"scores":"constant"}
POST /tokens/tok_1/links -> 201 {"id":"lnk_3","token_id":"tok_1","url":"https://dash.example.com/s/lnk_3","path":"/app/x","time":{"from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z"},"created_at":"2026-01-01T00:00:11Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ended":false}
POST /tokens/tok_1/links -> 201 {"id":"lnk_4","token_id":"tok_1","url":"https://dash.example.com/s/lnk_4","path":"/s/acme/app/y","time":null,"created_at":"2026-01-01T00:00:12Z","expires_at":"2026-01-01T01:00:12Z","expired":false,"ended":false}
GET /tokens/tok_1/links -> 200 {"links":[{"id":"lnk_3","token_id":"tok_1","url":"https://dash.example.com/s/lnk_3","path":"/app/x","time":{"from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z"},"created_at":"2026-01-01T00:00:11Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ended":false},{"id":"lnk_4","token_id":"tok_1","url":"https://dash.example.com/s/lnk_4","path":"/s/acme/app/y","time":null,"created_at":"2026-01-01T00:00:12Z","expires_at":"2026-01-01T01:00:12Z","expired":false,"ended":false}]}
GET /links/lnk_3 -> 200 {"id":"lnk_3","token_id":"tok_1","url":"https://dash.example.com/s/lnk_3","path":"/app/x","time":{"from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z"},"created_at":"2026-01-01T00:00:11Z","expires_at":"2026-01-08T00:00:00Z","expired":false,"ended":false}
DELETE /links/lnk_3 -> 204 
GET /filters -> 200 {"filters":[{"id":"flt_0","description":"d","field":"env","value":"test","created_at":"2026-01-01T00:00:00Z","used_by":["tok_1"]}]}
GET /filters/flt_0 -> 200 {"id":"flt_0","description":"d","field":"env","value":"test","created_at":"2026-01-01T00:00:00Z","used_by":["tok_1"]}
PATCH /filters/flt_0 -> 200 {"id":"flt_0","description":"d","field":"env","value":"prod","created_at":"2026-01-01T00:00:00Z","used_by":["tok_1"]}
DELETE /filters/flt_0 -> 409 {"error":{"root_cause":[{"type":"illegal_state_exception","reason":"filter is used by tokens [tok_1]; detach it from them first or use ?detach=true"}],"type":"illegal_state_exception","reason":"filter is used by tokens [tok_1]; detach it from them first or use ?detach=true"},"status":409}
GET /ip-filters -> 200 {"ip_filters":[{"name":"office","cidrs":["10.0.0.0/8","::1/128"],"created_at":"2026-01-01T00:00:00Z","used_by":["tok_1"]}]}
GET /ip-filters/office -> 200 {"name":"office","cidrs":["10.0.0.0/8","::1/128"],"created_at":"2026-01-01T00:00:00Z","used_by":["tok_1"]}
PATCH /ip-filters/office -> 200 {"name":"office","cidrs":["0.0.0.0/0"],"created_at":"2026-01-01T00:00:00Z","used_by":["tok_1"]}
DELETE /ip-filters/office -> 409 {"error":{"root_cause":[{"type":"illegal_state_exception","reason":"IP filter is used by tokens [tok_1]; delete those tokens first"}],"type":"illegal_state_exception","reason":"IP filter is used by tokens [tok_1]; delete those tokens first"},"status":409}
POST /tokens/tok_1/reset -> 200 {"id":"tok_1","secret":"SECRET3"}
DELETE /filters/flt_0?detach=true -> 204 
DELETE /tokens/tok_1 -> 204 
GET /tokens/tok_1 -> 404 {"error":{"root_cause":[{"type":"resource_not_found_exception","reason":"token not found"}],"type":"resource_not_found_exception","reason":"token not found"},"status":404}
POST /ip-filters -> 409 {"error":{"root_cause":[{"type":"resource_already_exists_exception","reason":"an IP filter with this name already exists"}],"type":"resource_already_exists_exception","reason":"an IP filter with this name already exists"},"status":409}
DELETE /ip-filters/nope -> 404 {"error":{"root_cause":[{"type":"resource_not_found_exception","reason":"IP filter not found"}],"type":"resource_not_found_exception","reason":"IP filter not found"},"status":404}
event {"type":"admin","action":"ip_filter.create","target":"office","at":"2026-01-01T00:00:00Z","client":"192.0.2.7","cidrs":["10.0.0.0/8","::1/128"]}
event {"type":"admin","action":"filter.create","target":"flt_0","at":"2026-01-01T00:00:00Z","client":"192.0.2.7","field":"env"}
event {"type":"admin","action":"token.create","target":"tok_1","at":"2026-01-01T00:00:00Z","client":"192.0.2.7","name":"acme","permissions":["read"],"expires_at":"2026-01-08T00:00:00Z","ip_filter":"office","limits":{"burst":5,"max_size":100,"search_timeout":"1500ms"}}
event {"type":"admin","action":"token.create","target":"tok_2","at":"2026-01-01T00:00:01Z","client":"192.0.2.7","name":"plain","permissions":["read"],"expires_at":null,"ip_filter":null,"limits":{}}
event {"type":"admin","action":"token.rotate","target":"tok_1","at":"2026-01-01T00:00:11Z","client":"192.0.2.7","overlap_seconds":3600,"previous_secret_expires_at":"2026-01-01T01:00:11Z"}
event {"type":"admin","action":"token.update","target":"tok_1","at":"2026-01-01T00:00:11Z","client":"192.0.2.7","changed":["name","limits"]}
event {"type":"admin","action":"link.create","target":"lnk_3.ref","at":"2026-01-01T00:00:11Z","client":"192.0.2.7","token_id":"tok_1","path":"/app/x","snapshot":true,"expires_at":"2026-01-08T00:00:00Z"}
event {"type":"admin","action":"link.create","target":"lnk_4.ref","at":"2026-01-01T00:00:12Z","client":"192.0.2.7","token_id":"tok_1","path":"/s/acme/app/y","snapshot":false,"expires_at":"2026-01-01T01:00:12Z"}
event {"type":"admin","action":"link.delete","target":"lnk_3.ref","at":"2026-01-01T00:00:12Z","client":"192.0.2.7","token_id":"tok_1"}
event {"type":"admin","action":"filter.update","target":"flt_0","at":"2026-01-01T00:00:12Z","client":"192.0.2.7","changed":["value"]}
event {"type":"admin","action":"ip_filter.update","target":"office","at":"2026-01-01T00:00:12Z","client":"192.0.2.7","old_cidrs":["10.0.0.0/8","::1/128"],"cidrs":["0.0.0.0/0"],"allows_every_address":true,"tokens_unrestricted":["tok_1"]}
event {"type":"admin","action":"token.reset","target":"tok_1","at":"2026-01-01T00:00:12Z","client":"192.0.2.7"}
event {"type":"admin","action":"filter.delete","target":"flt_0","at":"2026-01-01T00:00:12Z","client":"192.0.2.7","detached_from":["tok_1"]}
event {"type":"admin","action":"token.delete","target":"tok_1","at":"2026-01-01T00:00:12Z","client":"192.0.2.7","links":["lnk_4.ref"]}
"#;
