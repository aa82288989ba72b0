//! `docs/openapi.yaml` is the admin API's contract, checked against the real server (issue #15,
//! item 3): esgate runs in-process in front of a real backend, every documented operation is
//! exercised (tokens, the filter library, IP filters, the probes) through its success and its
//! error answers, and each answer's status must be documented for that operation and its JSON
//! body must match the documented schema (a small JSON-schema subset: `$ref`, `type` with
//! `null`, `enum`, `required`, `properties`, `additionalProperties: false`, `items`, `oneOf`).
//! Then the other way round: every route the admin router serves (`esgate::admin::ROUTES` plus
//! the probes) is in the document, every method a documented path does not list answers 404 or
//! 405, and routes the old shared spec mentions but esgate does not serve answer 404.

use crate::support;

use std::collections::BTreeSet;

use bytes::Bytes;
use serde_json::{json, Value};

use support::backend::Backend;
use support::esgate::{Esgate, ADMIN_KEY};
use support::http::send;

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const PROBES: [&str; 3] = ["/health", "/ready", "/metrics"];

fn document() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml"))
        .expect("docs/openapi.yaml exists");
    serde_yaml::from_str(&text).expect("docs/openapi.yaml is valid YAML")
}

/// Every (METHOD, path template) the document lists.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// Follows `{"$ref": "#/a/b"}` within the document.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let pointer = r.strip_prefix('#').expect("local $ref");
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("unresolved $ref {r}"));
    }
    v
}

/// Checks `value` against `schema`; appends what does not match to `errors`.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = alternatives
            .iter()
            .filter(|alt| {
                let mut e = vec![];
                validate(doc, alt, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: matches {matching} of the oneOf schemas"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => panic!("{at}: bad type in the schema"),
        };
        let ok = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("{at}: unknown type {other}"),
        });
        if !ok {
            errors.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(key) {
                errors.push(format!("{at}: required field {key} is missing"));
            }
        }
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => validate(doc, s, v, &format!("{at}.{key}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: field {key} is not documented"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Sends requests to the admin listener and checks each answer against the document.
struct Checker {
    doc: Value,
    exercised: BTreeSet<(String, String)>,
    statuses: BTreeSet<(String, String, u16)>,
}

impl Checker {
    /// Sends `method path` (the concrete path; `template` names its document entry) with the
    /// given `authorization` and body, checks the answer and returns its status and JSON.
    async fn call_as(
        &mut self,
        gw: &Esgate,
        authorization: Option<&str>,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let sent: Option<Value> = body.as_deref().and_then(|b| serde_json::from_slice(b).ok());
        let mut headers = vec![];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        let reply = send(
            method,
            &gw.admin_url(path),
            &headers,
            Bytes::from(body.unwrap_or_default()),
        )
        .await
        .expect("the admin listener answers");
        let status = reply.status.as_u16();
        let what = format!("{method} {path} → {status}");
        let operation = self.doc["paths"][template][method.to_lowercase()].clone();
        assert!(
            operation.is_object(),
            "{what}: {method} {template} is not documented"
        );
        let Some(response) = operation["responses"].get(status.to_string()) else {
            panic!(
                "{what}: status {status} is not documented for {method} {template}: {}",
                reply.text()
            );
        };
        let response = resolve(&self.doc, response).clone();
        let json_schema = response["content"]["application/json"]["schema"].clone();
        let text_schema = response["content"]["text/plain"]["schema"].clone();
        let content_type = reply.header("content-type").unwrap_or("").to_owned();
        let mut value = Value::Null;
        if method == "HEAD" {
            assert!(reply.body.is_empty(), "{what}: a HEAD answer with a body");
        } else if !json_schema.is_null() {
            assert!(
                content_type.starts_with("application/json"),
                "{what}: content-type {content_type:?}, documented application/json"
            );
            value = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", reply.text()));
            let mut errors = vec![];
            validate(&self.doc, &json_schema, &value, "$", &mut errors);
            assert!(
                errors.is_empty(),
                "{what}: the answer does not match the documented schema:\n  {}\n{value:#}",
                errors.join("\n  ")
            );
            if status >= 400 {
                assert_eq!(value["status"], json!(status), "{what}: {value}");
            }
        } else if !text_schema.is_null() {
            assert!(
                content_type.starts_with("text/plain"),
                "{what}: content-type {content_type:?}, documented text/plain"
            );
            assert!(!reply.body.is_empty(), "{what}: empty");
        } else {
            assert!(
                reply.body.is_empty(),
                "{what}: undocumented body {}",
                reply.text()
            );
        }
        // A request the server accepted matches the documented request body.
        if let (true, Some(sent)) = ((200..300).contains(&status), &sent) {
            let schema = operation["requestBody"]["content"]["application/json"]["schema"].clone();
            assert!(
                !schema.is_null(),
                "{what}: a body was accepted but none is documented"
            );
            let mut errors = vec![];
            validate(&self.doc, &schema, sent, "request", &mut errors);
            assert!(
                errors.is_empty(),
                "{what}: an accepted request does not match the documented request body:\n  {}",
                errors.join("\n  ")
            );
        }
        self.exercised
            .insert((method.to_owned(), template.to_owned()));
        self.statuses
            .insert((method.to_owned(), template.to_owned(), status));
        (status, value)
    }

    /// `call_as` with the admin key and a JSON body.
    async fn call(
        &mut self,
        gw: &Esgate,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let key = format!("Bearer {ADMIN_KEY}");
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.call_as(gw, Some(&key), method, template, path, body)
            .await
    }

    /// `call`, asserting the status.
    async fn expect(
        &mut self,
        gw: &Esgate,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (got, value) = self.call(gw, method, template, path, body).await;
        assert_eq!(got, status, "{method} {path}: {value}");
        value
    }

    /// `expect` for each step in turn: (method, template, path, body, status).
    async fn expect_each<const N: usize>(
        &mut self,
        gw: &Esgate,
        steps: [(&str, &str, &str, Option<Value>, u16); N],
    ) {
        for (method, template, path, body, status) in steps {
            self.expect(gw, method, template, path, body, status).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented() {
    let backend = Backend::osmem();
    // With a Kibana front, so share links can be made (issue #16).
    let gw = Esgate::start(
        &[backend.url()],
        "[kibana]\nurl = \"http://127.0.0.1:9\"\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://dash.example.com\"\n",
    )
    .await;
    let mut c = Checker {
        doc: document(),
        exercised: BTreeSet::new(),
        statuses: BTreeSet::new(),
    };

    // IP filters.
    let office = json!({"name": "office", "cidrs": ["127.0.0.0/8", "::1", "10.0.0.0/8"]});
    c.expect_each(
        &gw,
        [
            (
                "POST",
                "/ip-filters",
                "/ip-filters",
                Some(office.clone()),
                201,
            ),
            ("POST", "/ip-filters", "/ip-filters", Some(office), 409),
            (
                "POST",
                "/ip-filters",
                "/ip-filters",
                Some(json!({"name": "Bad Name", "cidrs": ["x"]})),
                400,
            ),
            ("GET", "/ip-filters", "/ip-filters", None, 200),
            ("GET", "/ip-filters", "/ip-filters?x=1", None, 400),
            ("GET", "/ip-filters/{name}", "/ip-filters/office", None, 200),
            ("GET", "/ip-filters/{name}", "/ip-filters/nope", None, 404),
            (
                "GET",
                "/ip-filters/{name}",
                "/ip-filters/office?x=1",
                None,
                400,
            ),
        ],
    )
    .await;
    let patch = json!({"cidrs": ["127.0.0.1", "::1"]});
    c.expect_each(
        &gw,
        [
            (
                "PATCH",
                "/ip-filters/{name}",
                "/ip-filters/office",
                Some(patch.clone()),
                200,
            ),
            (
                "PATCH",
                "/ip-filters/{name}",
                "/ip-filters/nope",
                Some(patch),
                404,
            ),
            (
                "PATCH",
                "/ip-filters/{name}",
                "/ip-filters/office",
                Some(json!({"cidrs": []})),
                400,
            ),
        ],
    )
    .await;

    // The filter library.
    let library = json!({"description": "tenant acme", "field": "tenant", "value": "acme"});
    let filter = c
        .expect(&gw, "POST", "/filters", "/filters", Some(library), 201)
        .await;
    let fid = filter["id"].as_str().expect("filter id").to_owned();
    let fpath = format!("/filters/{fid}");
    c.expect_each(
        &gw,
        [
            (
                "POST",
                "/filters",
                "/filters",
                Some(json!({"field": "tenant"})),
                400,
            ),
            ("GET", "/filters", "/filters", None, 200),
            ("GET", "/filters", "/filters?x=1", None, 400),
            ("GET", "/filters/{id}", &fpath, None, 200),
            ("GET", "/filters/{id}", "/filters/flt_nope", None, 404),
            ("GET", "/filters/{id}", &format!("{fpath}?x=1"), None, 400),
            (
                "PATCH",
                "/filters/{id}",
                &fpath,
                Some(json!({"description": "acme only"})),
                200,
            ),
            (
                "PATCH",
                "/filters/{id}",
                &fpath,
                Some(json!({"value": ""})),
                400,
            ),
            (
                "PATCH",
                "/filters/{id}",
                "/filters/flt_nope",
                Some(json!({"value": "x"})),
                404,
            ),
        ],
    )
    .await;

    // Tokens.
    let create = json!({
        "name": "acme-dashboards",
        "filters": [{"field": "env", "value": "prod"}, fid],
        "indices": ["logs-*"],
        "permissions": ["read"],
        "expires_in": "30d",
        "ip_filter": "office",
    });
    let token = c
        .expect(&gw, "POST", "/tokens", "/tokens", Some(create), 201)
        .await;
    let id = token["id"].as_str().expect("token id").to_owned();
    let secret = token["secret"].as_str().expect("secret").to_owned();
    let tpath = format!("/tokens/{id}");
    // A second, plain token: the defaults (no expiry, no IP filter) are nulls.
    c.expect_each(
        &gw,
        [
            (
                "POST",
                "/tokens",
                "/tokens",
                Some(json!({"name": "plain"})),
                201,
            ),
            (
                "POST",
                "/tokens",
                "/tokens",
                Some(json!({"name": "x", "colour": 1})),
                400,
            ),
            (
                "POST",
                "/tokens",
                "/tokens",
                Some(json!({"name": "x", "ip_filter": "nope"})),
                400,
            ),
        ],
    )
    .await;
    let (status, _) = c
        .call_as(
            &gw,
            Some(&format!("Bearer {ADMIN_KEY}")),
            "POST",
            "/tokens",
            "/tokens",
            Some(b"not json".to_vec()),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = c
        .call_as(
            &gw,
            Some(&format!("Bearer {ADMIN_KEY}")),
            "POST",
            "/tokens",
            "/tokens",
            Some(vec![b' '; 2 * 1024 * 1024]),
        )
        .await;
    assert_eq!(status, 413);
    // Used once, so `last_used_at` is a timestamp.
    assert_eq!(gw.get("/logs-*/_count", &secret).await.status, 200);
    let list = c
        .expect(
            &gw,
            "GET",
            "/tokens",
            "/tokens?name=ACME&from=0&size=10",
            None,
            200,
        )
        .await;
    assert_eq!(list["total"], 1, "{list}");
    assert!(list["tokens"][0]["last_used_at"].is_string(), "{list}");
    c.expect_each(
        &gw,
        [
            ("GET", "/tokens", "/tokens", None, 200),
            ("GET", "/tokens", "/tokens?size=10001", None, 400),
            ("GET", "/tokens/{id}", &tpath, None, 200),
            ("GET", "/tokens/{id}", "/tokens/tok_nope", None, 404),
            ("GET", "/tokens/{id}", &format!("{tpath}?x=1"), None, 400),
            (
                "PATCH",
                "/tokens/{id}",
                &tpath,
                Some(json!({"name": "acme-renamed", "expires_in": "1d"})),
                200,
            ),
            (
                "PATCH",
                "/tokens/{id}",
                &tpath,
                Some(json!({"ip_filter": null})),
                409,
            ),
            (
                "PATCH",
                "/tokens/{id}",
                &tpath,
                Some(json!({"expires_in": "60d"})),
                409,
            ),
            (
                "PATCH",
                "/tokens/{id}",
                &tpath,
                Some(json!({"id": "tok_x"})),
                400,
            ),
            (
                "PATCH",
                "/tokens/{id}",
                "/tokens/tok_nope",
                Some(json!({"name": "x"})),
                404,
            ),
        ],
    )
    .await;
    let reset_path = format!("{tpath}/reset");
    let reset = c
        .expect(&gw, "POST", "/tokens/{id}/reset", &reset_path, None, 200)
        .await;
    assert_ne!(reset["secret"], json!(secret));
    c.expect_each(
        &gw,
        [
            (
                "POST",
                "/tokens/{id}/reset",
                "/tokens/tok_nope/reset",
                None,
                404,
            ),
            (
                "POST",
                "/tokens/{id}/reset",
                &reset_path,
                Some(json!({"a": 1})),
                400,
            ),
        ],
    )
    .await;

    let rotate_path = format!("{tpath}/rotate");
    let rotated = c
        .expect(
            &gw,
            "POST",
            "/tokens/{id}/rotate",
            &rotate_path,
            Some(json!({"overlap": "1h"})),
            200,
        )
        .await;
    assert!(rotated["previous_secret_expires_at"].is_string());
    let shown = c
        .expect(&gw, "GET", "/tokens/{id}", &tpath, None, 200)
        .await;
    assert_eq!(
        shown["previous_secret_expires_at"],
        rotated["previous_secret_expires_at"]
    );
    c.expect(&gw, "POST", "/tokens/{id}/rotate", &rotate_path, None, 200)
        .await;
    for bad in [json!({"overlap": "8d"}), json!({"a": 1})] {
        c.expect(
            &gw,
            "POST",
            "/tokens/{id}/rotate",
            &rotate_path,
            Some(bad),
            400,
        )
        .await;
    }
    c.expect_each(
        &gw,
        [
            (
                "POST",
                "/tokens/{id}/rotate",
                "/tokens/tok_nope/rotate",
                None,
                404,
            ),
            (
                "PATCH",
                "/tokens/{id}",
                &tpath,
                Some(json!({"limits": {"max_size": 100, "search_timeout": "5s"}})),
                200,
            ),
        ],
    )
    .await;

    // Share links (issue #16).
    let links_path = format!("{tpath}/links");
    let created = c
        .expect(
            &gw,
            "POST",
            "/tokens/{id}/links",
            &links_path,
            Some(json!({"path": "/app/dashboards#/view/d1",
                        "time": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
                        "expires_in": "7d"})),
            201,
        )
        .await;
    let lpath = format!("/links/{}", created["id"].as_str().expect("link id"));
    for (body, status) in [
        (json!({"path": "https://evil.example/"}), 400),
        (json!({"path": "/app/x", "x": 1}), 400),
    ] {
        c.expect(
            &gw,
            "POST",
            "/tokens/{id}/links",
            &links_path,
            Some(body),
            status,
        )
        .await;
    }
    c.expect_each(
        &gw,
        [
            (
                "POST",
                "/tokens/{id}/links",
                "/tokens/tok_nope/links",
                Some(json!({"path": "/app/x"})),
                404,
            ),
            ("GET", "/tokens/{id}/links", &links_path, None, 200),
            (
                "GET",
                "/tokens/{id}/links",
                "/tokens/tok_nope/links",
                None,
                404,
            ),
            (
                "GET",
                "/tokens/{id}/links",
                &format!("{links_path}?x=1"),
                None,
                400,
            ),
            ("GET", "/links/{id}", &lpath, None, 200),
            ("GET", "/links/{id}", "/links/lnk_nope", None, 404),
            ("GET", "/links/{id}", &format!("{lpath}?x=1"), None, 400),
            ("DELETE", "/links/{id}", &format!("{lpath}?x=1"), None, 400),
            ("DELETE", "/links/{id}", &lpath, None, 204),
            ("DELETE", "/links/{id}", &lpath, None, 404),
        ],
    )
    .await;

    // Deleting what is in use is refused; then everything is deleted.
    c.expect_each(
        &gw,
        [
            ("DELETE", "/filters/{id}", &fpath, None, 409),
            (
                "DELETE",
                "/filters/{id}",
                &format!("{fpath}?detach=maybe"),
                None,
                400,
            ),
            (
                "DELETE",
                "/ip-filters/{name}",
                "/ip-filters/office",
                None,
                409,
            ),
            ("DELETE", "/tokens/{id}", &format!("{tpath}?x=1"), None, 400),
            ("DELETE", "/tokens/{id}", &tpath, None, 204),
            ("DELETE", "/tokens/{id}", &tpath, None, 404),
            (
                "DELETE",
                "/filters/{id}",
                &format!("{fpath}?detach=true"),
                None,
                204,
            ),
            ("DELETE", "/filters/{id}", &fpath, None, 404),
            (
                "DELETE",
                "/ip-filters/{name}",
                "/ip-filters/office",
                None,
                204,
            ),
            (
                "DELETE",
                "/ip-filters/{name}",
                "/ip-filters/office",
                None,
                404,
            ),
            (
                "DELETE",
                "/ip-filters/{name}",
                "/ip-filters/nope?x=1",
                None,
                400,
            ),
        ],
    )
    .await;

    // Explain: allowed, denied, malformed, unknown token, too large.
    let (status, created) = c
        .call(
            &gw,
            "POST",
            "/tokens",
            "/tokens",
            Some(json!({"name": "explained", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let explained = created["id"].as_str().unwrap().to_owned();
    let allowed = c
        .expect(
            &gw,
            "POST",
            "/explain",
            "/explain",
            Some(
                json!({"token": explained, "method": "POST", "path": "/logs-*/_search?size=5",
                        "body": {"query": {"match_all": {}}}}),
            ),
            200,
        )
        .await;
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    let denied = c
        .expect(
            &gw,
            "POST",
            "/explain",
            "/explain",
            Some(json!({"token": explained, "method": "GET", "path": "/secret/_search"})),
            200,
        )
        .await;
    assert_eq!(denied["decision"], "deny", "{denied}");
    c.expect_each(
        &gw,
        [
            (
                "POST",
                "/explain",
                "/explain",
                Some(json!({"token": explained, "method": "GET"})),
                400,
            ),
            (
                "POST",
                "/explain",
                "/explain",
                Some(json!({"token": "tok_none", "method": "GET", "path": "/"})),
                404,
            ),
        ],
    )
    .await;
    let key = format!("Bearer {ADMIN_KEY}");
    let (status, _) = c
        .call_as(
            &gw,
            Some(&key),
            "POST",
            "/explain",
            "/explain",
            Some(vec![b' '; 2 * 1024 * 1024]),
        )
        .await;
    assert_eq!(status, 413);

    // The probes, without the admin key.
    for probe in PROBES {
        for method in ["GET", "HEAD"] {
            let (status, _) = c.call_as(&gw, None, method, probe, probe, None).await;
            assert_eq!(status, 200, "{method} {probe}");
        }
    }
    // /ready when no backend node answers.
    let dead = Esgate::start(&["http://127.0.0.1:9"], "").await;
    for method in ["GET", "HEAD"] {
        let (status, _) = c
            .call_as(&dead, None, method, "/ready", "/ready", None)
            .await;
        assert_eq!(status, 503, "{method} /ready with a dead backend");
    }
    dead.stop().await;

    // Without the key, with a wrong key, and after too many wrong keys: every operation that
    // needs the key documents 401 and 429.
    let needs_key: Vec<(String, String)> = operations(&c.doc)
        .into_iter()
        .filter(|(_, p)| !PROBES.contains(&p.as_str()))
        .collect();
    for (method, template) in &needs_key {
        let path = template.replace("{id}", "x_1").replace("{name}", "x-1");
        let (status, _) = c.call_as(&gw, None, method, template, &path, None).await;
        assert_eq!(status, 401, "{method} {path} without a key");
    }
    let wrong = "Bearer wrong-admin-key-0123456789";
    for _ in 0..20 {
        let (status, _) = c
            .call_as(&gw, Some(wrong), "GET", "/tokens", "/tokens", None)
            .await;
        assert_eq!(status, 401);
    }
    for (method, template) in &needs_key {
        let path = template.replace("{id}", "x_1").replace("{name}", "x-1");
        let (status, _) = c
            .call_as(&gw, Some(wrong), method, template, &path, None)
            .await;
        assert_eq!(status, 429, "{method} {path} after 20 failures");
    }

    // Every documented operation was exercised.
    let documented = operations(&c.doc);
    let missed: Vec<_> = documented.difference(&c.exercised).collect();
    assert!(
        missed.is_empty(),
        "documented but never exercised: {missed:?}"
    );
    gw.stop().await;
}

/// The document lists exactly the routes the server serves: the admin router's
/// (`esgate::admin::ROUTES`, which a unit test holds `dispatch` to) and the probes (GET and
/// HEAD). Against the real server: a method a documented path does not list answers 404 or 405,
/// never 2xx, and paths the document does not list answer 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_the_server_answers_is_documented() {
    let doc = document();
    let documented = operations(&doc);
    let mut served: BTreeSet<(String, String)> = esgate::admin::ROUTES
        .iter()
        .chain(esgate::admin::APP_ROUTES)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    for probe in PROBES {
        for method in ["GET", "HEAD"] {
            served.insert((method.to_owned(), probe.to_owned()));
        }
    }
    assert_eq!(
        documented, served,
        "docs/openapi.yaml and the router disagree"
    );

    let backend = Backend::osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let key = format!("Bearer {ADMIN_KEY}");
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for template in paths {
        let path = template.replace("{id}", "x_1").replace("{name}", "x-1");
        for method in METHODS {
            if documented.contains(&(method.to_owned(), template.clone())) {
                continue;
            }
            let reply = send(
                method,
                &gw.admin_url(&path),
                &[("authorization", &key)],
                Bytes::new(),
            )
            .await
            .unwrap();
            let status = reply.status.as_u16();
            assert!(
                status == 404 || status == 405,
                "{method} {path} is not documented but answers {status}: {}",
                reply.text()
            );
        }
    }
    // What the shared spec describes beyond this server, and near misses. (`/ui/`, the admin web
    // page, is static files outside the API: tests/it/admin_ui.rs and `server::ui`.)
    for path in [
        "/",
        "/tokens/",
        "/tokens/x_1/reset/x",
        "/tokens/x_1/links/x",
        "/links",
        "/store",
        "/filters/x_1/tokens",
        "/ip-filters/x-1/cidrs",
        "/healthz",
    ] {
        for method in ["GET", "POST"] {
            let reply = send(
                method,
                &gw.admin_url(path),
                &[("authorization", &key)],
                Bytes::new(),
            )
            .await
            .unwrap();
            assert_eq!(
                reply.status.as_u16(),
                404,
                "{method} {path}: {}",
                reply.text()
            );
        }
    }
    gw.stop().await;
}

#[test]
fn the_validator_refuses_what_does_not_match() {
    let doc = document();
    let token = json!({"$ref": "#/components/schemas/Token"});
    let mut errors = vec![];
    validate(
        &doc,
        &token,
        &json!({"id": "tok_x", "extra": 1, "expired": "no"}),
        "$",
        &mut errors,
    );
    let text = errors.join("\n");
    for expected in [
        "required field name",
        "field extra is not documented",
        "$.expired",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let mut errors = vec![];
    let filters = json!({"$ref": "#/components/schemas/TokenCreate"});
    validate(
        &doc,
        &filters,
        &json!({"name": "a", "filters": [3]}),
        "$",
        &mut errors,
    );
    assert!(errors.join("\n").contains("oneOf"), "{errors:?}");
    let mut errors = vec![];
    validate(
        &doc,
        &json!({"$ref": "#/components/schemas/Health"}),
        &json!({"status": "bad"}),
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}
