//! Revocations that must bite at once (rel20): a token deleted, reset, narrowed (its IP
//! filter's addresses, a library filter it uses) is refused on a connection that already
//! carried its requests (HTTP/1 keep-alive, an HTTP/2 connection with a stream open), and a
//! request whose head came before the revocation but whose body came after is not forwarded
//! with the token as it was (before rel20 it was: planned under the snapshot its head was
//! authenticated with, it went out after the change with the old filters, its body trickled
//! for up to `listen.header_timeout`).

use crate::support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use support::esgate::Esgate;
use support::fixture;
use support::http::bearer;
use support::share_link;

pub(crate) type Sent = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A body whose pieces the test sends when it wants (`tx`), ended when `tx` is dropped.
pub(crate) fn trickled() -> (tokio::sync::mpsc::Sender<&'static str>, Sent) {
    let (tx, rx) = tokio::sync::mpsc::channel::<&'static str>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let piece = rx.recv().await?;
        let frame = http_body::Frame::data(Bytes::from_static(piece.as_bytes()));
        Some((Ok::<_, Infallible>(frame), rx))
    });
    (tx, http_body_util::StreamBody::new(stream).boxed())
}

fn empty() -> Sent {
    http_body_util::Empty::new().boxed()
}

/// A request in origin form with `Host` (HTTP/1.1; HTTP/2 takes its `:authority` from it).
fn request(gw: &Esgate, auth: &str, method: &str, path: &str, body: Sent) -> http::Request<Sent> {
    let _ = gw;
    origin_request(auth, method, path, body)
}

/// A request in origin form with `Host`, from `auth`.
pub(crate) fn origin_request(
    auth: &str,
    method: &str,
    path: &str,
    body: Sent,
) -> http::Request<Sent> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

pub(crate) async fn answer(res: http::Response<hyper::body::Incoming>) -> (u16, Value) {
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// One HTTP/1.1 connection, kept alive for every request sent on it.
async fn http1(gw: &Esgate) -> hyper::client::conn::http1::SendRequest<Sent> {
    http1_to(gw.data_addr).await
}

/// One HTTP/1.1 connection to `addr`.
pub(crate) async fn http1_to(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Sent> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// One HTTP/2 connection (prior knowledge, no TLS).
async fn http2(gw: &Esgate) -> hyper::client::conn::http2::SendRequest<Sent> {
    let stream = TcpStream::connect(gw.data_addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

/// A library filter `tenant: a`, an IP filter `local` (127.0.0.1) and a `read` token on
/// `logs-*` using both; returns (filter id, token id, `Authorization` value).
async fn narrowable(gw: &Esgate) -> (String, String, String) {
    let (s, f) = gw
        .admin(
            "POST",
            "/filters",
            Some(json!({"description": "tenant a", "field": "tenant", "value": "a"})),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let fid = f["id"].as_str().unwrap().to_owned();
    let (s, v) = gw
        .admin(
            "POST",
            "/ip-filters",
            Some(json!({"name": "local", "cidrs": ["127.0.0.1"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (id, secret) = gw
        .token(json!({"name": "narrowable", "indices": ["logs-*"], "filters": [fid], "ip_filter": "local"}))
        .await;
    (fid, id, bearer(&secret))
}

/// HTTP/1 keep-alive: each change applies to the very next request on the connection that
/// carried the token's earlier ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_bites_on_a_kept_alive_http1_connection() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (fid, id, auth) = narrowable(&gw).await;
    let mut conn = http1(&gw).await;
    let count = |conn: &mut hyper::client::conn::http1::SendRequest<Sent>| {
        let req = request(&gw, &auth, "GET", "/logs-*/_count", empty());
        let sent = conn.send_request(req);
        async move { answer(sent.await.unwrap()).await }
    };
    let (s, v) = count(&mut conn).await;
    assert_eq!(
        (s, &v["count"]),
        (200, &json!(fixture::TENANT_A_DOCS)),
        "{v}"
    );
    // A library filter the token uses, changed: the next request counts under the new one.
    let (s, _) = gw
        .admin(
            "PATCH",
            &format!("/filters/{fid}"),
            Some(json!({"value": "nobody"})),
        )
        .await;
    assert_eq!(s, 200);
    conn.ready().await.unwrap();
    let (s, v) = count(&mut conn).await;
    assert_eq!((s, &v["count"]), (200, &json!(0)), "{v}");
    // The IP filter's addresses narrowed: refused.
    let (s, _) = gw
        .admin(
            "PATCH",
            "/ip-filters/local",
            Some(json!({"cidrs": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(s, 200);
    conn.ready().await.unwrap();
    assert_eq!(count(&mut conn).await.0, 403);
    let (s, _) = gw
        .admin(
            "PATCH",
            "/ip-filters/local",
            Some(json!({"cidrs": ["127.0.0.1"]})),
        )
        .await;
    assert_eq!(s, 200);
    conn.ready().await.unwrap();
    assert_eq!(count(&mut conn).await.0, 200);
    // Reset: the secret this connection used is refused.
    let (s, _) = gw.admin("POST", &format!("/tokens/{id}/reset"), None).await;
    assert_eq!(s, 200);
    conn.ready().await.unwrap();
    assert_eq!(count(&mut conn).await.0, 401);
}

/// HTTP/2: with a stream of the token open (its body still arriving), the token is deleted;
/// a new stream is refused, and so is the open one once its body is in: it is not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_token_is_refused_on_open_and_new_http2_streams() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, id, auth) = narrowable(&gw).await;
    let mut conn = http2(&gw).await;
    let (s, v) = answer(
        conn.send_request(request(&gw, &auth, "GET", "/logs-*/_count", empty()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (tx, body) = trickled();
    let open =
        tokio::spawn(conn.send_request(request(&gw, &auth, "POST", "/logs-*/_search", body)));
    tx.send("{\"query\":").await.unwrap();
    // The open stream's head is in (and authenticated) before the delete.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = gw.admin("DELETE", &format!("/tokens/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = answer(
        conn.send_request(request(&gw, &auth, "GET", "/logs-*/_count", empty()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401, "a new stream");
    tx.send("{\"match_all\":{}}}").await.unwrap();
    drop(tx);
    let (s, v) = answer(open.await.unwrap().unwrap()).await;
    assert_eq!(
        s, 401,
        "the open stream, whose body came after the delete: {v}"
    );
    assert!(v.get("hits").is_none(), "{v}");
}

/// HTTP/1: a search's head comes before a change of the library filter its token uses, its
/// body after: it must not go out under the filter the token no longer has (before rel20 it
/// answered tenant a's documents after the filter said `nobody`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_came_after_a_narrowing_is_not_forwarded_as_before() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (fid, _, auth) = narrowable(&gw).await;
    let mut conn = http1(&gw).await;
    let (tx, body) = trickled();
    let sent = conn.send_request(request(&gw, &auth, "POST", "/logs-*/_search", body));
    let open = tokio::spawn(sent);
    tx.send("{\"query\":").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = gw
        .admin(
            "PATCH",
            &format!("/filters/{fid}"),
            Some(json!({"value": "nobody"})),
        )
        .await;
    assert_eq!(s, 200);
    tx.send("{\"match_all\":{}}}").await.unwrap();
    drop(tx);
    let (s, v) = answer(open.await.unwrap().unwrap()).await;
    let hits = v["hits"]["hits"].as_array().map_or(0, Vec::len);
    assert_eq!(hits, 0, "answered under the filter as it was: {s} {v}");
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["type"], "unavailable_exception", "{v}");
}

/// `POST`s `body` on a new connection; (status, JSON).
async fn post(gw: &Esgate, auth: &str, path: &str, body: Value) -> (u16, Value) {
    let r = support::http::send(
        "POST",
        &gw.url(path),
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&body).unwrap(),
    )
    .await
    .unwrap();
    (r.status.as_u16(), r.json())
}

/// Continuations made before a narrowing stop opening (their backend contexts were made under
/// the filters as they were): a scroll and an OpenSearch point in time after a library filter
/// the token uses changed, a scroll after the token's indices narrowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuations_made_before_a_narrowing_stop_opening() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (fid, id, auth) = narrowable(&gw).await;
    let scroll = |gw: &Esgate| {
        let auth = auth.clone();
        let url = gw.url("/logs-*/_search?scroll=1m&size=3");
        async move {
            let r = support::http::send(
                "POST",
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                b"{\"sort\":[\"n\"]}".to_vec(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["_scroll_id"].as_str().unwrap().to_owned()
        }
    };
    let next = |id: &str| json!({"scroll": "1m", "scroll_id": id});
    let before = scroll(&gw).await;
    let (s, opened) = post(
        &gw,
        &auth,
        "/logs-*/_search/point_in_time?keep_alive=1m",
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{opened}");
    let pit = json!({"size": 50, "pit": {"id": opened["pit_id"], "keep_alive": "1m"}});
    let (s, v) = post(&gw, &auth, "/_search/scroll", next(&before)).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&gw, &auth, "/_search", pit.clone()).await;
    assert_eq!(s, 200, "{v}");

    let (s, _) = gw
        .admin(
            "PATCH",
            &format!("/filters/{fid}"),
            Some(json!({"value": "nobody"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = post(&gw, &auth, "/_search/scroll", next(&before)).await;
    assert_eq!(s, 403, "a scroll made under the old filter: {v}");
    let (s, v) = post(&gw, &auth, "/_search", pit).await;
    assert_eq!(s, 403, "a point in time made under the old filter: {v}");

    // The token's indices narrowed: a scroll made before stops too.
    let before = scroll(&gw).await;
    let (s, v) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"indices": ["logs-a"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&gw, &auth, "/_search/scroll", next(&before)).await;
    assert_eq!(s, 403, "a scroll made under the old indices: {v}");
}

/// attack20d: a rotation's overlap ends by the clock, which makes no new snapshot. A search
/// whose head came with the previous secret during the overlap and whose body came after its
/// end is refused (before, the recheck's fast path asked only the token's expiry, and it went
/// out: up to the next expired-overlap sweep, every 5 s, made a snapshot the full check ran on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_secret_whose_overlap_ended_during_the_body_is_refused() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, secret) = gw
        .token(json!({"name": "rotated", "indices": ["logs-*"],
                      "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    let (s, r) = gw
        .admin(
            "POST",
            &format!("/tokens/{id}/rotate"),
            Some(json!({"overlap": "2s"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let old = bearer(&secret);
    let mut conn = http1(&gw).await;
    let (tx, body) = trickled();
    let open = tokio::spawn(conn.send_request(request(&gw, &old, "POST", "/logs-*/_search", body)));
    tx.send("{\"query\":").await.unwrap();
    // The overlap ends 1 to 2 s after the rotation (whole seconds).
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    tx.send("{\"match_all\":{}}}").await.unwrap();
    drop(tx);
    let (s, v) = answer(open.await.unwrap().unwrap()).await;
    assert!(v.get("hits").is_none(), "forwarded after the overlap: {v}");
    assert_eq!(s, 401, "{v}");
}

/// attack20d: `_has_privileges`, which esgate answers itself, was checked again before its
/// body was read: a token deleted while the body trickled was still answered (its indices and
/// privileges, names resolved on the backend). Now the check follows the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_has_privileges_whose_body_came_after_a_delete_is_refused() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, id, auth) = narrowable(&gw).await;
    let mut conn = http1(&gw).await;
    let (tx, body) = trickled();
    let sent = conn.send_request(request(
        &gw,
        &auth,
        "POST",
        "/_security/user/_has_privileges",
        body,
    ));
    let open = tokio::spawn(sent);
    tx.send("{\"index\":").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = gw.admin("DELETE", &format!("/tokens/{id}"), None).await;
    assert_eq!(s, 204);
    tx.send("[{\"names\":[\"logs-a\"],\"privileges\":[\"read\"]}]}")
        .await
        .unwrap();
    drop(tx);
    let (s, v) = answer(open.await.unwrap().unwrap()).await;
    assert!(v.get("has_all_requested").is_none(), "answered: {v}");
    assert_eq!(s, 401, "{v}");
}

/// attack20d: `_has_privileges` states the token's Kibana spaces, which its bound scope (filters,
/// indices) does not hold: a space taken from the token while the body trickled was still
/// granted in the answer. Now a change of spaces is a change of scope for it (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_has_privileges_whose_spaces_narrowed_during_the_body_is_not_answered_as_before() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, secret) = gw
        .token(json!({"name": "spaces", "indices": ["logs-*"],
                      "filters": [{"field": "tenant", "value": "a"}],
                      "kibana_spaces": ["default", "s2"]}))
        .await;
    let auth = bearer(&secret);
    let mut conn = http1(&gw).await;
    let (tx, body) = trickled();
    let sent = conn.send_request(request(
        &gw,
        &auth,
        "POST",
        "/_security/user/_has_privileges",
        body,
    ));
    let open = tokio::spawn(sent);
    tx.send("{\"application\":").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, v) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"kibana_spaces": ["default"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    tx.send(
        "[{\"application\":\"kibana-.kibana\",\"resources\":[\"space:s2\"],\"privileges\":[\"login:\"]}]}",
    )
    .await
    .unwrap();
    drop(tx);
    let (s, v) = answer(open.await.unwrap().unwrap()).await;
    assert_ne!(
        v["application"]["kibana-.kibana"]["space:s2"]["login:"],
        json!(true),
        "a space taken away still granted: {v}"
    );
    assert_eq!(s, 503, "{v}");
}

/// How a request reaches the data listener: on an HTTP/1.1 connection kept alive (it carried
/// the credential's earlier request), or as a stream of an HTTP/2 connection that did.
#[derive(Clone, Copy, Debug)]
enum Wire {
    Http1,
    Http2,
}

enum Conn {
    Http1(hyper::client::conn::http1::SendRequest<Sent>),
    Http2(hyper::client::conn::http2::SendRequest<Sent>),
}

impl Conn {
    async fn open(gw: &Esgate, wire: Wire) -> Conn {
        match wire {
            Wire::Http1 => Conn::Http1(http1(gw).await),
            Wire::Http2 => Conn::Http2(http2(gw).await),
        }
    }

    /// Sends `req` once the connection can take it; its answer comes through the handle.
    async fn send(
        &mut self,
        req: http::Request<Sent>,
    ) -> tokio::task::JoinHandle<hyper::Result<http::Response<hyper::body::Incoming>>> {
        match self {
            Conn::Http1(c) => {
                c.ready().await.unwrap();
                tokio::spawn(c.send_request(req))
            }
            Conn::Http2(c) => {
                c.ready().await.unwrap();
                tokio::spawn(c.send_request(req))
            }
        }
    }
}

/// A search by `auth` on a connection of `wire` whose earlier request by `auth` was answered
/// (200): its head is sent (and authenticated) before `change` runs, the rest of its body after.
/// Returns its answer.
async fn searched_across(
    gw: &Esgate,
    wire: Wire,
    auth: &str,
    change: impl std::future::Future<Output = ()>,
) -> (u16, Value) {
    let mut conn = Conn::open(gw, wire).await;
    let first = conn
        .send(request(gw, auth, "GET", "/logs-*/_count", empty()))
        .await;
    let (s, v) = answer(first.await.unwrap().unwrap()).await;
    assert_eq!(s, 200, "{wire:?}, before the change: {v}");
    let (tx, body) = trickled();
    let open = conn
        .send(request(gw, auth, "POST", "/logs-*/_search", body))
        .await;
    tx.send("{\"query\":").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    change.await;
    tx.send("{\"match_all\":{}}}").await.unwrap();
    drop(tx);
    answer(open.await.unwrap().unwrap()).await
}

/// The search was refused with `status`, nothing of the index in its answer.
fn refused_with(status: u16, wire: Wire, what: &str, (s, v): (u16, Value)) {
    assert!(v.get("hits").is_none(), "{wire:?}, {what}: forwarded: {v}");
    assert_eq!(s, status, "{wire:?}, {what}: {v}");
}

async fn ip_filter(gw: &Esgate, name: &str, cidr: &str) {
    let (s, v) = gw
        .admin(
            "POST",
            "/ip-filters",
            Some(json!({"name": name, "cidrs": [cidr]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn patched(gw: &Esgate, path: String, body: Value) {
    let (s, v) = gw.admin("PATCH", &path, Some(body)).await;
    assert_eq!(s, 200, "PATCH {path}: {v}");
}

fn tenant_a(name: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "indices": ["logs-*"],
                          "filters": [{"field": "tenant", "value": "a"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// rel21: the recheck re-admits the client's address (the token's IP filter on the current
/// snapshot), not only its credential and scope, which an IP filter is no part of. A search
/// whose head was admitted from 127.0.0.1 and whose body came after the token's IP filter
/// stopped admitting it is refused 403: the filter it uses narrowed, or a filter given to a
/// token that had none (one set cannot be replaced). Without the admission in the recheck both
/// went out with the tenant's documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_filter_narrowed_during_the_body_refuses_the_request() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    ip_filter(&gw, "office", "10.0.0.0/8").await;
    for (n, wire) in [Wire::Http1, Wire::Http2].into_iter().enumerate() {
        let local = format!("local-{n}");
        ip_filter(&gw, &local, "127.0.0.1").await;
        let (_, secret) = gw
            .token(tenant_a(&format!("named-{n}"), json!({"ip_filter": local})))
            .await;
        let narrowed = patched(
            &gw,
            format!("/ip-filters/{local}"),
            json!({"cidrs": ["10.0.0.0/8"]}),
        );
        let answer = searched_across(&gw, wire, &bearer(&secret), narrowed).await;
        refused_with(403, wire, "its IP filter narrowed", answer);

        let (id, secret) = gw.token(tenant_a(&format!("open-{n}"), json!({}))).await;
        let given = patched(&gw, format!("/tokens/{id}"), json!({"ip_filter": "office"}));
        let answer = searched_across(&gw, wire, &bearer(&secret), given).await;
        refused_with(403, wire, "given an IP filter", answer);
    }
}

/// A link of a new `tenant a` token named `name` (with `extra`), opened on the front, and the
/// link credential the front handed Kibana for the session's first request: (token id, link
/// id, `Authorization` value).
async fn link_credential(
    gw: &Esgate,
    kibana: &support::recording::Recording,
    name: &str,
    extra: Value,
) -> (String, String, String) {
    let (id, _) = gw.token(tenant_a(name, extra)).await;
    let (l, cookie) = share_link::opened_link_of(gw, &id, share_link::DASHBOARD).await;
    let r = share_link::front_req(gw, "GET", "/app/dashboards", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let auth = share_link::last_credential(kibana);
    (id, l["id"].as_str().unwrap().to_owned(), auth)
}

/// rel21: a link credential's request is re-admitted by its link (the link, its token's secret
/// generation, spaces and IP filter for the recipient's address), not only by the credential's
/// seal and the token's scope, which hold none of these. A search by a link credential whose
/// head came before the link was deleted, its token reset, the link's space taken from the
/// token or the token given an IP filter the recipient is outside of, and whose body came
/// after, is refused 403. Without the admission in the recheck each went out with the
/// tenant's documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_revoked_during_its_credentials_body_refuses_the_request() {
    let backend = fixture::seeded_osmem();
    let kibana = share_link::fake_kibana();
    let gw = share_link::start(backend.url(), &kibana, "").await;
    ip_filter(&gw, "office", "10.0.0.0/8").await;
    for (n, wire) in [Wire::Http1, Wire::Http2].into_iter().enumerate() {
        for how in [
            "link deleted",
            "token reset",
            "space taken",
            "ip filter given",
        ] {
            let name = format!("{}-{n}", how.replace(' ', "-"));
            let (id, lid, auth) = link_credential(&gw, &kibana, &name, json!({})).await;
            let change = async {
                let (s, v) = match how {
                    "link deleted" => gw.admin("DELETE", &format!("/links/{lid}"), None).await,
                    "token reset" => gw.admin("POST", &format!("/tokens/{id}/reset"), None).await,
                    "space taken" => {
                        let spaces = json!({"kibana_spaces": ["acme"]});
                        gw.admin("PATCH", &format!("/tokens/{id}"), Some(spaces))
                            .await
                    }
                    _ => {
                        let filter = json!({"ip_filter": "office"});
                        gw.admin("PATCH", &format!("/tokens/{id}"), Some(filter))
                            .await
                    }
                };
                assert!(s == 200 || s == 204, "{how}: {s} {v}");
            };
            let answer = searched_across(&gw, wire, &auth, change).await;
            refused_with(403, wire, how, answer);
        }
    }
}

/// rel21: a token's expiry reached while a request's body is read: by the clock alone (no new
/// snapshot: the recheck's fast path ends at the token's expiry), or an expiry brought forward
/// meanwhile, for a link credential of the token. The secret (or the link credential's seal)
/// still names the token, whose scope is unchanged: only the admission refuses it (403).
///
/// A link's own expiry reached mid-body needs no test of the admission: the front caps a
/// session's (and so each credential's) expiry at the link's, so the credential stops itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_during_the_body_is_refused() {
    let backend = fixture::seeded_osmem();
    let kibana = share_link::fake_kibana();
    let gw = share_link::start(backend.url(), &kibana, "").await;
    // Expiries are whole seconds: this one ends 1 to 2 s from now.
    let (_, secret) = gw
        .token(tenant_a("short", json!({"expires_in": "2s"})))
        .await;
    let wait = tokio::time::sleep(Duration::from_millis(2_100));
    let answer = searched_across(&gw, Wire::Http1, &bearer(&secret), wait).await;
    refused_with(403, Wire::Http1, "the token expired", answer);

    let (id, _, auth) = link_credential(&gw, &kibana, "linked", json!({})).await;
    let shortened = async {
        patched(&gw, format!("/tokens/{id}"), json!({"expires_in": "1s"})).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    };
    let answer = searched_across(&gw, Wire::Http2, &auth, shortened).await;
    refused_with(403, Wire::Http2, "the link's token expired", answer);
}

/// rel21: the recheck ran before the request waited for a backend connection (up to
/// `backend.connect_timeout` at `max_connections_per_node`), so a token deleted during that
/// wait was forwarded once a connection came free. Now the request is checked again once it
/// has the connection it waited for. One connection to the node, held by another token's
/// search whose body trickles (a pass-through token's body is relayed as it comes); the
/// victim's request waits for it, is revoked, then gets it: refused, not forwarded. The victim
/// is a pass-through token (no index lookup of its own), then a `read` token whose lookup is
/// cached (`backend.resolve_cache_ttl`), so each waits only for its own request's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_deleted_while_its_request_waits_for_a_backend_connection_is_refused() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start_full(
        &[backend.url()],
        "",
        "max_connections_per_node = 1\nconnect_timeout = \"10s\"\nresolve_cache_ttl = \"1m\"",
        "",
    )
    .await;
    let (_, holder) = gw
        .token(json!({"name": "holder", "permissions": ["all"]}))
        .await;
    let holder = bearer(&holder);
    for victim in [
        json!({"name": "all", "permissions": ["all"]}),
        tenant_a("read", json!({})),
    ] {
        let (id, secret) = gw.token(victim.clone()).await;
        let auth = bearer(&secret);
        let count = || request(&gw, &auth, "GET", "/logs-*/_count", empty());
        let mut conn = http1(&gw).await;
        let (s, v) = answer(conn.send_request(count()).await.unwrap()).await;
        assert_eq!(s, 200, "{victim}: {v}");
        // The node's one connection, held while the holder's body trickles.
        let mut held = http1(&gw).await;
        let (tx, body) = trickled();
        let holding =
            tokio::spawn(held.send_request(request(&gw, &holder, "POST", "/logs-a/_search", body)));
        tx.send("{\"query\":").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        conn.ready().await.unwrap();
        let waiting = tokio::spawn(conn.send_request(count()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "{victim}: went out beyond the cap");
        let (s, _) = gw.admin("DELETE", &format!("/tokens/{id}"), None).await;
        assert_eq!(s, 204);
        tx.send("{\"match_all\":{}}}").await.unwrap();
        drop(tx);
        let (s, v) = answer(holding.await.unwrap().unwrap()).await;
        assert_eq!(s, 200, "the holder: {v}");
        let (s, v) = answer(waiting.await.unwrap().unwrap()).await;
        assert!(v.get("count").is_none(), "{victim}: forwarded: {v}");
        assert_eq!(s, 401, "{victim}: {v}");
    }
}
