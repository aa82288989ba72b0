//! A share link's set-up on esgate's Kibana front (issue #16), for the tests of links and of
//! what a link's credential reaches: a recording fake Kibana, the front's config sections, a
//! token, its link, the link opened on the front (the session cookie), a request on the front
//! and the link credential the front handed Kibana.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::esgate::Esgate;
use super::http::{send, Reply};
use super::recording::{Answer, Recording};

/// The path most links open: a dashboard of the default space.
pub const DASHBOARD: &str = "/app/dashboards#/view/d1";

/// The `[kibana]` section of a front listening on 127.0.0.1:0 before the Kibana at
/// `kibana_url`, its public URL `http://dash.test`.
pub fn kibana_section(kibana_url: &str) -> String {
    format!(
        "[kibana]\nurl = {kibana_url:?}\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://dash.test\"\n"
    )
}

/// A fake Kibana answering every request with a small page.
pub fn fake_kibana() -> Recording {
    let k = Recording::start();
    k.script(
        "*",
        "/",
        Answer {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/html".into()),
                ("set-cookie".into(), "sid=kibana-session; Path=/".into()),
                ("x-frame-options".into(), "ALLOWALL".into()),
                ("www-authenticate".into(), "Basic realm=\"kibana\"".into()),
            ],
            body: "<html>kibana</html>".into(),
        },
    );
    k
}

/// esgate before `backend` with a front before `kibana` (`kibana_section`), and `extra`.
pub async fn start(backend: &str, kibana: &Recording, extra: &str) -> Esgate {
    Esgate::start(
        &[backend],
        &format!("{}{extra}", kibana_section(kibana.url())),
    )
    .await
}

/// The front's URL of `path`.
pub fn front(gw: &Esgate, path: &str) -> String {
    let addr: SocketAddr = gw.front_addr.expect("the front is listening");
    format!("http://{addr}{path}")
}

/// A new token of `tenant` (its filter, `logs-*`) with `extra` fields: (id, secret).
pub async fn token(gw: &Esgate, tenant: &str, extra: Value) -> (String, String) {
    let mut body = json!({
        "name": format!("tenant-{tenant}"),
        "filters": [{"field": "tenant", "value": tenant}],
        "indices": ["logs-*"],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    gw.token(body).await
}

/// A new link of the token `token_id` (201, or the test fails): the admin API's answer.
pub async fn link(gw: &Esgate, token_id: &str, body: Value) -> Value {
    let (status, v) = gw
        .admin("POST", &format!("/tokens/{token_id}/links"), Some(body))
        .await;
    assert_eq!(status, 201, "{v}");
    v
}

/// Opens a link on the front; returns the reply and the session cookie (`name=value`).
pub async fn open(gw: &Esgate, link: &Value) -> (Reply, Option<String>) {
    let id = link["id"].as_str().expect("id");
    let r = send("GET", &front(gw, &format!("/s/{id}")), &[], Vec::new())
        .await
        .expect("the front answers");
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .filter(|c| !c.ends_with('='))
        .map(str::to_owned);
    (r, cookie)
}

/// A new link of the token `token_id` to `path`, opened on the front: the link (the admin
/// API's answer) and its session cookie (`name=value`; the test fails without one).
pub async fn opened_link_of(gw: &Esgate, token_id: &str, path: &str) -> (Value, String) {
    let l = link(gw, token_id, json!({ "path": path })).await;
    let (_, cookie) = open(gw, &l).await;
    (l, cookie.expect("a session cookie"))
}

/// A link opened on the front, with the token it was made of.
pub struct OpenedLink {
    pub token_id: String,
    pub secret: String,
    /// The admin API's answer that made the link.
    pub link: Value,
    /// The link's id (`lnk_` and 32 hex digits).
    pub link_id: String,
    /// The session cookie the front set (`name=value`).
    pub cookie: String,
}

/// A new token of `tenant` (`token` without extras), a link of it to `path`, opened on the front.
pub async fn opened_link(gw: &Esgate, tenant: &str, path: &str) -> OpenedLink {
    let (token_id, secret) = token(gw, tenant, json!({})).await;
    let (link, cookie) = opened_link_of(gw, &token_id, path).await;
    let link_id = link["id"].as_str().expect("a link id").to_owned();
    OpenedLink {
        token_id,
        secret,
        link,
        link_id,
        cookie,
    }
}

/// A request on the front, with the body Kibana's app would send for a POST.
pub async fn front_req(gw: &Esgate, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    // What Kibana's bfetch posts for a search (front22b: the front reads a batch's strategies).
    let body = match method {
        "POST" if path.ends_with("/internal/bsearch") => {
            r#"{"batch":[{"request":{"params":{}},"options":{"strategy":"ese"}}]}"#
        }
        "POST" => "{}",
        _ => "",
    };
    send(method, &front(gw, path), headers, body.as_bytes().to_vec())
        .await
        .expect("the front answers")
}

/// The link credential the fake Kibana last received.
pub fn last_credential(kibana: &Recording) -> String {
    let r = kibana.requests();
    let last = r.last().expect("Kibana received a request");
    last.header("authorization")
        .expect("an Authorization header")
        .to_owned()
}
