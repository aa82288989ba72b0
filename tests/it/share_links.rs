//! Share links (issue #16): a link opens a Kibana path as its token, through esgate's Kibana
//! front, for a recipient with no account. No Kibana can run here, so Kibana is a recording
//! fake (it records what the front passes: paths, headers, cookies) and Kibana's half of the
//! data path is played by hand: Kibana's `http` provider forwards the `Authorization` header
//! the front gave it to Elasticsearch (esgate's data listener, in front of a real, seeded
//! backend), so the tests send exactly that header with Kibana's own request shapes
//! (`tests/data/kibana/end_user_http_provider.json`, Kibana 8.15).
//!
//! What is proved: the session cookie is sealed, HttpOnly, SameSite and carries no secret;
//! the redirect is the link's path with `embed=true` and the snapshot's `_g` time; a link's
//! credential searches with its token's filters (a link of token A never yields token B's
//! data); revocation (link deleted, token deleted or reset) stops the front and the credential
//! at the next request; tampered, foreign and expired cookies and credentials are refused;
//! ids are 128-bit; no open redirect; viewers cannot write (CSRF included); anti-framing
//! headers; audit records name the link; `_has_privileges` answers per the token's spaces.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use support::esgate::{audit_file_section, audit_records, Esgate};
use support::fixture::{self, contains_leak_marker};
use support::http::{send, Reply};
use support::recording::{Answer, Recording};
use support::share_link::{
    fake_kibana, front, front_req, kibana_section, last_credential, link, open, opened_link,
    opened_link_of, start, token, OpenedLink, DASHBOARD,
};

async fn search_as(gw: &Esgate, auth: &str) -> Reply {
    gw.send_as(
        auth,
        "POST",
        "/logs-*/_search?size=100",
        Some((
            "application/json",
            json!({"query": {"match_all": {}}}).to_string(),
        )),
    )
    .await
}

fn tenants(r: &Reply) -> Vec<String> {
    let v = r.json();
    v["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| h["_source"]["tenant"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// esgate before a seeded backend, its front before a Kibana whose answers stop after `<html>`
/// (their bodies never end), with `backend_keys` in `[backend]` and the sections `extra`.
struct StallingKibana {
    gw: Esgate,
    kibana: support::faults::FaultServer,
    _backend: support::backend::Backend,
}

impl StallingKibana {
    async fn start(backend_keys: &str, extra: &str) -> StallingKibana {
        let backend = fixture::seeded_osmem();
        let kibana = support::faults::FaultServer::stall(b"<html>", 1000);
        let gw = Esgate::start_full(
            &[backend.url()],
            "",
            backend_keys,
            &format!("{}{extra}", kibana_section(kibana.url())),
        )
        .await;
        StallingKibana {
            gw,
            kibana,
            _backend: backend,
        }
    }
}

/// A raw HTTP/1.1 connection to the front that has sent `GET page` with the session `cookie`.
async fn raw_get(gw: &Esgate, page: &str, cookie: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let request = format!("GET {page} HTTP/1.1\r\nhost: dash.test\r\ncookie: {cookie}\r\n\r\n");
    let mut s = tokio::net::TcpStream::connect(gw.front_addr.expect("the front is listening"))
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    s
}

/// The first 12 bytes of the answer on `s` (`HTTP/1.1 200`), read within `limit`, and the
/// stream, the rest of the answer unread.
async fn status_of(
    mut s: tokio::net::TcpStream,
    limit: Duration,
) -> (tokio::net::TcpStream, String) {
    use tokio::io::AsyncReadExt;
    let mut head = vec![0u8; 12];
    tokio::time::timeout(limit, s.read_exact(&mut head))
        .await
        .expect("an answer's head")
        .expect("read");
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_link_sets_a_sealed_session_and_redirects_to_the_embed_path() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let (id, secret) = token(&gw, "a", json!({"expires_in": "7d"})).await;
    let l = link(
        &gw,
        &id,
        json!({"path": "/app/dashboards#/view/d1",
               "time": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
               "expires_in": "30d"}),
    )
    .await;
    let lid = l["id"].as_str().unwrap();
    assert_eq!(l["url"], format!("http://dash.test/s/{lid}"));
    let (r, cookie) = open(&gw, &l).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/app/dashboards#/view/d1?embed=true&_g=(time:(from:'2026-11-01T00:00:00Z',to:'2026-11-02T00:00:00Z'))")
    );
    let set = r.header("set-cookie").expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain-http public URL: {set}");
    assert!(
        !set.contains(&secret) && !set.contains(&secret[4..]),
        "{set}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(cookie.is_some());
    // A live link: no `_g`.
    let live = link(&gw, &id, json!({"path": "/app/dashboards#/view/d1"})).await;
    let (r, _) = open(&gw, &live).await;
    assert_eq!(
        r.header("location"),
        Some("/app/dashboards#/view/d1?embed=true")
    );
    // Nothing reached Kibana yet.
    assert!(kibana.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_and_host_bound_behind_https() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = Esgate::start(
        &[backend.url()],
        &format!(
            "[kibana]\nurl = {:?}\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://dash.test\"\n",
            kibana.url()
        ),
    )
    .await;
    let (id, _) = token(&gw, "a", json!({})).await;
    let l = link(&gw, &id, json!({"path": "/app/dashboards#/view/d1"})).await;
    let (r, _) = open(&gw, &l).await;
    let set = r.header("set-cookie").expect("cookie");
    assert!(
        set.starts_with("__Host-esgate_link=") && set.contains("; Secure"),
        "{set}"
    );
}

/// The data half, on both dialects: the credential the front hands Kibana searches as the
/// link's token only; token B's link never yields token A's documents (nor the reverse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_links_credential_searches_with_its_tokens_filters_only() {
    for backend in [fixture::seeded_osmem(), fixture::seeded_noida()] {
        let kibana = fake_kibana();
        let gw = start(backend.url(), &kibana, "").await;
        for tenant in ["a", "b"] {
            let OpenedLink {
                token_id: id,
                secret,
                cookie,
                ..
            } = opened_link(&gw, tenant, DASHBOARD).await;
            kibana.clear();
            // Headers that would make Kibana, or a proxy it trusts, take the recipient for
            // someone else (attack21b: they were passed on).
            let claimed = [
                ("x-proxy-user", "admin"),
                ("x-forwarded-user", "admin"),
                ("x-auth-request-user", "admin"),
                ("remote-user", "admin"),
                ("sg_impersonate_as", "admin"),
                ("opendistro_security_impersonate_as", "admin"),
                ("es-security-runas-user", "elastic"),
            ];
            let mut headers = vec![("cookie", cookie.as_str())];
            headers.extend(claimed);
            let r = front_req(&gw, "GET", "/app/dashboards", &headers).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let got = kibana.requests();
            let seen = &got[0];
            for (name, _) in claimed {
                assert!(seen.header(name).is_none(), "{name} passed to Kibana");
            }
            // No cookie, no recipient credential, the recipient's address as X-Forwarded-For.
            assert!(seen.header("cookie").is_none(), "{:?}", seen.headers);
            assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
            let auth = last_credential(&kibana);
            assert!(auth.starts_with("Bearer esgl1_"), "{auth}");
            assert!(!auth.contains(&secret));
            // Kibana's Set-Cookie and challenges do not reach the recipient; its framing rule
            // is replaced.
            assert!(r.header("set-cookie").is_none());
            assert!(r.header("www-authenticate").is_none());
            assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));

            let s = search_as(&gw, &auth).await;
            assert_eq!(s.status, 200, "{}", s.text());
            let t = tenants(&s);
            assert_eq!(t.len() as u64, fixture::TENANT_A_DOCS, "{}", s.text());
            assert!(t.iter().all(|x| x == tenant), "{tenant}: {t:?}");
            if tenant == "a" {
                assert!(!contains_leak_marker(&s.body));
            }
            // Kibana's own first call with the credential (security/authentication).
            let who = gw
                .send_as(&auth, "GET", "/_security/_authenticate", None)
                .await;
            assert_eq!(who.status, 200, "{}", who.text());
            assert_eq!(who.json()["username"], id.as_str());
            // A changed credential is not one.
            let mut forged = auth.clone().into_bytes();
            let n = forged.len() - 3;
            forged[n] = if forged[n] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).unwrap();
            assert_eq!(search_as(&gw, &forged).await.status, 401);
            // Two Authorization headers, the link's among them, are refused whatever the other
            // (issue 10 review: the one pass over the headers counts them, and only a lone
            // header is read as a link's credential).
            for other in [auth.clone(), format!("Bearer {secret}"), forged.clone()] {
                for pair in [[&auth, &other], [&other, &auth]] {
                    let r = send(
                        "POST",
                        &gw.url("/logs-*/_search?size=100"),
                        &[
                            ("authorization", pair[0].as_str()),
                            ("authorization", pair[1].as_str()),
                            ("content-type", "application/json"),
                        ],
                        b"{}".to_vec(),
                    )
                    .await
                    .unwrap();
                    assert_eq!(r.status, 401, "{}", r.text());
                    assert!(!contains_leak_marker(&r.body));
                }
            }
        }
    }
}

/// Revocation: deleting the link, deleting the token or resetting its secret stops the
/// session at the front and the credential Kibana holds, at the next request (well within 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_stops_sessions_and_credentials_at_once() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    for how in ["delete link", "delete token", "reset token"] {
        let OpenedLink {
            token_id: id,
            link: l,
            link_id: lid,
            cookie,
            ..
        } = opened_link(&gw, "a", DASHBOARD).await;
        let ok = front_req(&gw, "GET", "/app/dashboards", &[("cookie", &cookie)]).await;
        assert_eq!(ok.status, 200);
        let auth = last_credential(&kibana);
        assert_eq!(search_as(&gw, &auth).await.status, 200);
        let (status, _) = match how {
            "delete link" => gw.admin("DELETE", &format!("/links/{lid}"), None).await,
            "delete token" => gw.admin("DELETE", &format!("/tokens/{id}"), None).await,
            _ => gw.admin("POST", &format!("/tokens/{id}/reset"), None).await,
        };
        assert!(status == 200 || status == 204, "{how}: {status}");
        let started = std::time::Instant::now();
        let r = front_req(&gw, "GET", "/app/dashboards", &[("cookie", &cookie)]).await;
        assert!(
            r.status == 403 || r.status == 404,
            "{how}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.header("set-cookie")
                .is_some_and(|c| c.contains("Max-Age=0")),
            "{how}: the refused session's cookie is cleared"
        );
        let s = search_as(&gw, &auth).await;
        assert!(s.status == 403 || s.status == 401, "{how}: {}", s.text());
        let (again, _) = open(&gw, &l).await;
        assert!(
            again.status == 403 || again.status == 404,
            "{how}: {}",
            again.status
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_missing_and_expired_sessions_are_refused() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let other = start(backend.url(), &kibana, "").await;
    let OpenedLink {
        token_id: id,
        cookie,
        ..
    } = opened_link(&gw, "a", DASHBOARD).await;
    // Tampered: every position of the value changed once (a sample).
    let (name, value) = cookie.split_once('=').unwrap();
    for i in (0..value.len()).step_by(7) {
        let mut b = value.as_bytes().to_vec();
        b[i] = if b[i] == b'x' { b'y' } else { b'x' };
        let t = format!("{name}={}", String::from_utf8(b).unwrap());
        let r = front_req(&gw, "GET", "/app/dashboards", &[("cookie", &t)]).await;
        assert_eq!(r.status, 401, "{t}");
    }
    // Another esgate (another key) does not accept it.
    let (oid, _) = token(&other, "a", json!({})).await;
    let _ = link(&other, &oid, json!({"path": "/app/dashboards#/view/d1"})).await;
    let r = send(
        "GET",
        &front(&other, "/app/dashboards"),
        &[("cookie", &cookie)],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    // No cookie.
    assert_eq!(
        front_req(&gw, "GET", "/app/dashboards", &[]).await.status,
        401
    );
    // Two session cookies.
    let two = format!("{cookie}; {cookie}");
    assert_eq!(
        front_req(&gw, "GET", "/app/dashboards", &[("cookie", &two)])
            .await
            .status,
        401
    );
    // An expired link ends its session.
    let short = link(
        &gw,
        &id,
        json!({"path": "/app/dashboards#/view/d1", "expires_in": "1s"}),
    )
    .await;
    let (_, c) = open(&gw, &short).await;
    let c = c.expect("cookie");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = front_req(&gw, "GET", "/app/dashboards", &[("cookie", &c)]).await;
    assert!(r.status == 401 || r.status == 403, "{}", r.status);
    let (r, _) = open(&gw, &short).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Unknown and malformed link ids: no redirect, no cookie.
    for path in [
        "/s/lnk_00000000000000000000000000000000",
        "/s/lnk_xyz",
        "/s/https:%2F%2Fevil.example",
    ] {
        let r = front_req(&gw, "GET", path, &[]).await;
        assert!(r.header("location").is_none(), "{path}");
        assert!(r.status == 404 || r.status == 401, "{path}: {}", r.status);
    }
    assert!(kibana.requests().is_empty(), "nothing reached Kibana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_ids_are_128_bit_random_and_paths_are_never_urls() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let (id, _) = token(&gw, "a", json!({})).await;
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let l = link(&gw, &id, json!({"path": "/app/dashboards#/view/d1"})).await;
        let lid = l["id"].as_str().unwrap().to_owned();
        let hex = lid.strip_prefix("lnk_").expect("prefix");
        assert!(
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{lid}"
        );
        ids.insert(lid);
    }
    assert_eq!(ids.len(), 50);
    let (status, listed) = gw.admin("GET", &format!("/tokens/{id}/links"), None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["links"].as_array().map(Vec::len), Some(50));
    for bad in [
        "https://evil.example/app/dashboards",
        "//evil.example/app/dashboards",
        "/\\evil.example/app",
        "/app//evil.example",
        "javascript:alert(1)",
        "/app/../api/saved_objects/_find",
        "/app/%2e%2e/api",
        "/api/status",
        "/app/x\r\nLocation: https://evil.example",
        "app/dashboards",
        "",
    ] {
        let (status, v) = gw
            .admin(
                "POST",
                &format!("/tokens/{id}/links"),
                Some(json!({"path": bad})),
            )
            .await;
        assert_eq!(status, 400, "{bad:?}: {v}");
        assert!(
            v["error"]["reason"].as_str().unwrap_or("").contains("path"),
            "{v}"
        );
    }
}

/// Viewers: reads pass; writes, management routes, other apps and cross-site POSTs do not,
/// and none of them reaches Kibana.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_sessions_cannot_write_or_manage() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let xsrf = [("cookie", cookie.as_str()), ("kbn-xsrf", "true")];
    for (method, path) in [
        ("GET", "/app/dashboards"),
        ("GET", "/internal/security/me"),
        ("GET", "/api/status"),
        ("POST", "/internal/bsearch"),
        ("POST", "/api/core/capabilities"),
        ("POST", "/api/saved_objects/_bulk_get"),
        ("POST", "/api/content_management/rpc/get"),
    ] {
        let r = front_req(&gw, method, path, &xsrf).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
    }
    kibana.clear();
    for (method, path) in [
        ("POST", "/api/saved_objects/dashboard/d2"),
        ("PUT", "/api/saved_objects/dashboard/d1"),
        ("DELETE", "/api/saved_objects/dashboard/d1"),
        ("POST", "/api/saved_objects/_import"),
        ("POST", "/api/content_management/rpc/create"),
        ("POST", "/api/content_management/rpc/update"),
        ("POST", "/api/content_management/rpc/delete"),
        ("POST", "/api/console/proxy?path=_search&method=POST"),
        ("POST", "/internal/kibana/settings"),
        ("POST", "/api/spaces/space"),
        ("PUT", "/api/security/role/r"),
        ("GET", "/app/management"),
        ("GET", "/app/dev_tools"),
        ("GET", "/"),
        ("GET", "/api/security/role"),
    ] {
        let r = front_req(&gw, method, path, &xsrf).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    // CSRF: a read-only POST without Kibana's header, from another origin or site.
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![
            ("cookie", cookie.as_str()),
            ("kbn-xsrf", "1"),
            ("origin", "https://evil.example"),
        ],
        vec![
            ("cookie", cookie.as_str()),
            ("kbn-xsrf", "1"),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        let r = front_req(&gw, "POST", "/internal/bsearch", &headers).await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
    }
    assert!(kibana.requests().is_empty(), "{:?}", kibana.requests());
    // The front's own origin and Kibana's internal-origin header are accepted.
    let r = front_req(
        &gw,
        "POST",
        "/internal/bsearch",
        &[
            ("cookie", &cookie),
            ("x-elastic-internal-origin", "Kibana"),
            ("origin", "http://dash.test"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_answer_carries_anti_framing_headers() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let ancestors = |r: &Reply| -> Vec<String> {
        r.headers
            .get_all("content-security-policy")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .collect()
    };
    for (path, headers, xfo, fa) in [
        (
            "/api/status",
            vec![("cookie", cookie.as_str())],
            "DENY",
            "frame-ancestors 'none'",
        ),
        (
            "/bundles/x.js",
            vec![("cookie", cookie.as_str())],
            "DENY",
            "frame-ancestors 'none'",
        ),
        (
            "/app/management",
            vec![("cookie", cookie.as_str())],
            "DENY",
            "frame-ancestors 'none'",
        ),
        ("/app/dashboards", vec![], "DENY", "frame-ancestors 'none'"),
        (
            "/app/dashboards",
            vec![("cookie", cookie.as_str())],
            "SAMEORIGIN",
            "frame-ancestors 'self'",
        ),
    ] {
        let r = front_req(&gw, "GET", path, &headers).await;
        assert_eq!(r.header("x-frame-options"), Some(xfo), "{path}");
        assert!(
            ancestors(&r).iter().any(|c| c == fa),
            "{path}: {:?}",
            ancestors(&r)
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_name_the_link_and_admin_changes_are_audited() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let gw = start(backend.url(), &kibana, &audit_file_section(&path)).await;
    let OpenedLink {
        token_id: id,
        secret,
        link_id: lid,
        cookie,
        ..
    } = opened_link(&gw, "a", DASHBOARD).await;
    front_req(&gw, "GET", "/app/dashboards", &[("cookie", &cookie)]).await;
    front_req(&gw, "GET", "/app/management", &[("cookie", &cookie)]).await;
    // A link URL mangled on its way (a trailing dot or slash, pasted into a space's path) is no
    // link path: refused, and its id is not written whole either.
    for mangled in [
        format!("/s/{lid}."),
        format!("/s/{lid}/"),
        format!("/s/acme/app/{lid}"),
    ] {
        front_req(&gw, "GET", &mangled, &[]).await;
    }
    let auth = last_credential(&kibana);
    search_as(&gw, &auth).await;
    gw.admin("DELETE", &format!("/links/{lid}"), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.app.audit.sync();
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(!log.contains(&secret));
    // Attack 19a: the link's id opens it (the whole credential of its URL): the audit log names
    // it by its reference (`lnk_` and 12 hex digits), the front's `/s/<id>` path included.
    assert!(!log.contains(&lid), "a live link id in the audit log");
    let lref = &lid[..16];
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_link: Vec<&Value> = events.iter().filter(|e| e["link_id"] == lref).collect();
    assert!(with_link
        .iter()
        .any(|e| e["path"] == format!("/s/{lref}") && e["status"] == 303));
    // The open, the page, the refused management page, the search on the data listener.
    assert!(with_link.len() >= 4, "{with_link:?}");
    assert!(with_link
        .iter()
        .any(|e| e["status"] == 303 && e["token_id"] == id.as_str()));
    assert!(with_link
        .iter()
        .any(|e| e["status"] == 403 && e["decision"] == "deny"));
    assert!(with_link
        .iter()
        .any(|e| e["path"] == "/logs-*/_search" && e["status"] == 200));
    for action in ["link.create", "link.delete"] {
        assert!(
            events
                .iter()
                .any(|e| e["action"] == action && e["target"] == lref),
            "{action}"
        );
    }
}

/// Spaces: a token's links lie in its spaces, its sessions stay there, and Kibana's own
/// `_has_privileges` calls with the link credential are answered per space (the request of
/// `x-pack/plugins/spaces/server/spaces_client/secure_spaces_client_wrapper.ts`, 8.15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_links_token_reads_only_its_kibana_spaces() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let (id, _) = token(&gw, "a", json!({"kibana_spaces": ["acme"]})).await;
    let (status, v) = gw
        .admin(
            "POST",
            &format!("/tokens/{id}/links"),
            Some(json!({"path": "/app/dashboards#/view/d1"})),
        )
        .await;
    assert_eq!(status, 400, "the default space is not the token's: {v}");
    let l = link(&gw, &id, json!({"path": "/s/acme/app/dashboards#/view/d1"})).await;
    let (r, cookie) = open(&gw, &l).await;
    assert_eq!(
        r.header("location"),
        Some("/s/acme/app/dashboards#/view/d1?embed=true")
    );
    let cookie = cookie.expect("cookie");
    let c = [("cookie", cookie.as_str()), ("kbn-xsrf", "true")];
    assert_eq!(
        front_req(&gw, "GET", "/s/acme/app/dashboards", &c)
            .await
            .status,
        200
    );
    assert_eq!(
        front_req(&gw, "POST", "/s/acme/internal/bsearch", &c)
            .await
            .status,
        200
    );
    for (m, p) in [
        ("GET", "/app/dashboards"),
        ("POST", "/internal/bsearch"),
        ("GET", "/s/other/app/dashboards"),
        ("POST", "/s/other/api/saved_objects/_bulk_get"),
    ] {
        assert_eq!(front_req(&gw, m, p, &c).await.status, 403, "{m} {p}");
    }
    let auth = last_credential(&kibana);
    let body = json!({"index": [], "applications": [{"application": "kibana-.kibana",
        "resources": ["space:acme", "space:default"],
        "privileges": ["version:8.15.3", "login:", "saved_object:dashboard/get"]}]});
    let r = gw
        .send_as(
            &auth,
            "POST",
            "/_security/user/_has_privileges",
            Some(("application/json", body.to_string())),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let app = &r.json()["application"]["kibana-.kibana"];
    assert_eq!(app["space:acme"]["saved_object:dashboard/get"], true);
    assert_eq!(app["space:default"]["saved_object:dashboard/get"], false);
    assert_eq!(app["space:default"]["login:"], false);
    // Taking the space away from the token stops the link.
    let (status, _) = gw
        .admin(
            "PATCH",
            &format!("/tokens/{id}"),
            Some(json!({"kibana_spaces": ["default"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        front_req(&gw, "GET", "/s/acme/app/dashboards", &c)
            .await
            .status,
        403
    );
}

/// The token's IP filter applies to the recipient (at the front, and to the credential).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_ip_filter_applies_to_recipients() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let (s, _) = gw
        .admin(
            "POST",
            "/ip-filters",
            Some(json!({"name": "office", "cidrs": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(s, 201);
    let (id, _) = token(&gw, "a", json!({"ip_filter": "office"})).await;
    let l = link(&gw, &id, json!({"path": "/app/dashboards#/view/d1"})).await;
    let (r, cookie) = open(&gw, &l).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(cookie.is_none());
    assert!(r.text().contains("IP filter"), "{}", r.text());
}

/// Kibana's `http`-provider sign-in sequence (`tests/data/kibana/end_user_http_provider.json`:
/// `_authenticate` and the `_has_privileges` calls of Kibana 8.15, each naming its source) sent
/// with the link credential the front handed Kibana: esgate answers exactly as for the token
/// itself (the user is the link's token; other spaces closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kibanas_sign_in_sequence_with_a_link_credential_is_answered_as_the_token() {
    let plan: Value =
        serde_json::from_str(include_str!("../data/kibana/end_user_http_provider.json")).unwrap();
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let (id, secret) = token(&gw, "a", json!({"name": "kibana-user-tenant-a"})).await;
    let (_, cookie) = opened_link_of(&gw, &id, DASHBOARD).await;
    front_req(&gw, "GET", "/app/dashboards", &[("cookie", &cookie)]).await;
    let auth = last_credential(&kibana);
    const ES8_MEDIA: &str = "application/vnd.elasticsearch+json; compatible-with=8";
    for step in plan["steps"].as_array().unwrap() {
        let method = step["method"].as_str().unwrap();
        let path = step["path"].as_str().unwrap();
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("accept", ES8_MEDIA),
            ("x-elastic-product-origin", "kibana"),
        ];
        let body = match &step["body"] {
            Value::Null => String::new(),
            b => {
                headers.push(("content-type", ES8_MEDIA));
                b.to_string()
            }
        };
        let r = send(method, &gw.url(path), &headers, body).await.unwrap();
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        let expected: Value = serde_json::from_str(
            &step["expect"]
                .to_string()
                .replace("{user}", &id)
                .replace("{name}", "kibana-user-tenant-a"),
        )
        .unwrap();
        assert_eq!(r.json(), expected, "{method} {path} ({})", step["source"]);
        assert!(!r.text().contains(&secret));
    }
}

/// The front applies the data listener's HTTP hygiene.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_refuses_what_the_data_listener_refuses_on_the_wire() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let r = front_req(&gw, "TRACE", "/app/dashboards", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 405);
    let r = front_req(
        &gw,
        "GET",
        "/app/dashboards",
        &[("cookie", &cookie), ("upgrade", "websocket")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(kibana.requests().is_empty());
}

/// What a browser sends besides Kibana's own headers, in a request from the front's page
/// (Chrome 131; no `Referer`: the front's answers say `Referrer-Policy: no-referrer`).
const BROWSER: &[(&str, &str)] = &[
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    ),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9"),
    (
        "sec-ch-ua",
        "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
    ),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("sec-fetch-site", "same-origin"),
    ("dnt", "1"),
];

/// Headers a proxy in front of Kibana may read as the client's address or as proven identity,
/// or as another route or method than the one the front checked, and any other name: none
/// reaches Kibana (attack21c: the front's deny-list passed all of these).
const CLAIMED: &[(&str, &str)] = &[
    ("x-client-ip", "10.9.9.9"),
    ("true-client-ip", "10.9.9.9"),
    ("cf-connecting-ip", "10.9.9.9"),
    ("x-amzn-oidc-identity", "admin"),
    ("x-amzn-oidc-data", "e30.e30.e30"),
    (
        "x-goog-authenticated-user-email",
        "accounts.google.com:admin@example.com",
    ),
    ("x-goog-authenticated-user-id", "accounts.google.com:1"),
    ("x-ms-client-principal", "e30="),
    ("x-ms-client-principal-name", "admin"),
    ("x-webauth-user", "admin"),
    ("x-envoy-internal", "true"),
    ("x-envoy-original-path", "/app/management"),
    ("x-original-url", "/api/security/role"),
    ("x-http-method-override", "DELETE"),
    ("x-opaque-id", "someone-else"),
    ("x-proxy-user", "admin"),
    ("x-forwarded-user", "admin"),
    (
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ),
    ("x-custom", "1"),
];

/// front22 (attack21c, L): Kibana receives, of a recipient's request, only the headers on the
/// front's list (with the front's own `Authorization` and `X-Forwarded-For`, and the `Host` and
/// `Content-Length` of the request to it), never an identity, address or override header; the
/// requests are what Kibana 8.15's app sends: its embed page, a bundle revalidated, core's http
/// service's `fetch` (a search, a background poll) and a client's `kbn-xsrf` POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kibana_receives_only_the_listed_headers_of_a_browsers_requests() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    // Kibana's app, core's http service (`fetch.ts`): on every request.
    let kbn: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("kbn-version", "8.15.3"),
        ("kbn-build-number", "76360"),
        ("x-elastic-internal-origin", "Kibana"),
        (
            "x-kbn-context",
            "%7B%22type%22%3A%22application%22%2C%22name%22%3A%22dashboards%22%7D",
        ),
    ];
    let search = r#"{"batch":[{"request":{"params":{"index":"logs-*","body":{"query":{"match_all":{}}}}},"options":{"strategy":"ese"}}]}"#;
    let navigation: Vec<(&str, &str)> = vec![
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("sec-fetch-dest", "iframe"),
        ("sec-fetch-mode", "navigate"),
        ("upgrade-insecure-requests", "1"),
        ("cache-control", "max-age=0"),
        ("priority", "u=0, i"),
    ];
    let bundle: Vec<(&str, &str)> = vec![
        ("accept", "*/*"),
        ("sec-fetch-dest", "script"),
        ("sec-fetch-mode", "no-cors"),
        ("if-none-match", "\"7d1-18c3a\""),
        ("if-modified-since", "Mon, 30 Nov 2026 10:00:00 GMT"),
    ];
    let mut fetch: Vec<(&str, &str)> = vec![
        ("accept", "*/*"),
        ("elastic-api-version", "1"),
        ("origin", "http://dash.test"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("priority", "u=1, i"),
    ];
    fetch.extend(kbn);
    let mut poll: Vec<(&str, &str)> = vec![("accept", "*/*"), ("kbn-system-request", "true")];
    poll.extend(kbn);
    let client = vec![
        ("kbn-xsrf", "true"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
    ];
    for (method, path, own, body) in [
        ("GET", "/app/dashboards?embed=true", navigation, ""),
        ("GET", "/84785/bundles/core/core.entry.js", bundle, ""),
        ("POST", "/internal/bsearch?compress=true", fetch, search),
        ("GET", "/api/licensing/info", poll, ""),
        (
            "POST",
            "/api/saved_objects/_bulk_get",
            client,
            r#"[{"type":"dashboard","id":"d1"}]"#,
        ),
    ] {
        kibana.clear();
        let mut headers: Vec<(&str, &str)> = vec![("cookie", cookie.as_str())];
        if !own.iter().any(|(n, _)| *n == "kbn-xsrf") {
            headers.extend(BROWSER);
        }
        headers.extend(&own);
        headers.extend(CLAIMED);
        let r = send(
            method,
            &front(&gw, path),
            &headers,
            body.as_bytes().to_vec(),
        )
        .await
        .expect("the front answers");
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        let got = kibana.requests();
        assert_eq!(got.len(), 1, "{method} {path}");
        let seen = &got[0];
        // What Kibana reads of each: the list, by name (the test's own copy of it).
        let listed = [
            "accept",
            "accept-encoding",
            "accept-language",
            "content-type",
            "user-agent",
            "if-none-match",
            "if-modified-since",
            "kbn-version",
            "kbn-build-number",
            "kbn-xsrf",
            "kbn-system-request",
            "x-elastic-internal-origin",
            "elastic-api-version",
            "x-kbn-context",
        ];
        let mut want: std::collections::BTreeSet<&str> = headers
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| listed.contains(n))
            .collect();
        want.extend(["authorization", "x-forwarded-for", "host"]);
        if !body.is_empty() {
            want.insert("content-length");
        }
        let names: std::collections::BTreeSet<&str> =
            seen.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, want, "{method} {path}");
        for (name, value) in &headers {
            if listed.contains(name) {
                let values: Vec<&str> = seen
                    .headers
                    .get_all(*name)
                    .iter()
                    .map(|v| v.to_str().unwrap_or("?"))
                    .collect();
                assert_eq!(values, [*value], "{method} {path}: {name}");
            }
        }
        assert!(last_credential(&kibana).starts_with("Bearer esgl1_"));
        assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(seen.method, method);
        assert_eq!(seen.body, body.as_bytes(), "{method} {path}");
        if !body.is_empty() {
            assert_eq!(
                seen.header("content-length"),
                Some(body.len().to_string().as_str())
            );
        }
    }
}

/// front22b (attack22's open part, H): `/internal/bsearch` passed with its body unread, so a
/// batch item naming a plugin's strategy (`options.strategy`: Kibana 8.x's osquery strategy
/// searched `.fleet*` as Kibana's own user, an `all` token) ran what the URL form refuses. The
/// front reads the batch: Kibana's data searches pass, byte for byte; one plugin strategy, a
/// body Kibana would read otherwise (compressed, a form, a key given twice) or no batch at all
/// is refused, audited, and Kibana sees nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_search_passes_only_with_kibanas_data_strategies() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let gw = Esgate::start_full(
        &[backend.url()],
        "max_body_bytes = 65536\n",
        "",
        &format!(
            "{}{}",
            kibana_section(kibana.url()),
            audit_file_section(&audit)
        ),
    )
    .await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let json_headers = [
        ("cookie", cookie.as_str()),
        ("kbn-xsrf", "true"),
        ("content-type", "application/json"),
    ];
    // Kibana's dashboards: several panels' searches, the default strategy named or not.
    let passed = [
        r#"{"batch":[{"request":{"params":{"index":"logs-*","body":{"size":0}}},"options":{"strategy":"ese","sessionId":"9b6c","isRestore":false,"executionContext":{"type":"application","name":"dashboards"}}},{"request":{"params":{"query":"FROM logs-* | LIMIT 1"}},"options":{"strategy":"esql_async"}},{"request":{"params":{}}}]}"#,
        "{ \"batch\" : [ {\"options\":{\"str\\u0061tegy\":\"es\"},\"request\":{\"params\":{}}} ] }\n",
    ];
    for body in passed {
        kibana.clear();
        let r = send(
            "POST",
            &front(&gw, "/internal/bsearch?compress=true"),
            &json_headers,
            body.as_bytes().to_vec(),
        )
        .await
        .expect("the front answers");
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let got = kibana.requests();
        assert_eq!(got.len(), 1, "{body}");
        assert_eq!(got[0].body, body.as_bytes(), "not passed byte for byte");
        assert_eq!(got[0].path, "/internal/bsearch");
        assert_eq!(got[0].query.as_deref(), Some("compress=true"));
    }
    kibana.clear();
    let osquery = r#"{"batch":[{"request":{"params":{}},"options":{"strategy":"ese"}},{"request":{"factoryQueryType":"results","agentId":"x","sort":[]},"options":{"strategy":"osquerySearchStrategy"}}]}"#;
    // The refused bodies, with the one header each sends beside the JSON ones.
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, u16);
    let refused: &[Case] = &[
        (osquery, None, 403),
        (
            r#"{"batch":[{"options":{"strategy":"privateRuleRegistryAlertsSearchStrategy"}}]}"#,
            None,
            403,
        ),
        (
            r#"{"batch":[{"options":{"strategy":"ese","strategy":"osquerySearchStrategy"}}]}"#,
            None,
            403,
        ),
        (
            r#"{"batch":[],"batch":[{"options":{"strategy":"osquerySearchStrategy"}}]}"#,
            None,
            403,
        ),
        (r#"{"batch":[{"options":{"strategy":null}}]}"#, None, 403),
        (r#"{"batch":[{"options":null}]}"#, None, 403),
        (r#"{"batch":["ese"]}"#, None, 403),
        (r#"{}"#, None, 403),
        (r#"[{"payload":{}}]"#, None, 403),
        ("not json", None, 403),
        ("", None, 403),
        (r#"{"batch":[]}"#, Some(("content-encoding", "gzip")), 415),
        (
            "batch[0][options][strategy]=osquerySearchStrategy",
            Some(("content-type", "application/x-www-form-urlencoded")),
            415,
        ),
        (r#"{"batch":[]}"#, Some(("content-type", "text/plain")), 415),
    ];
    for (body, extra, status) in refused {
        let mut headers = vec![("cookie", cookie.as_str()), ("kbn-xsrf", "true")];
        if !extra.is_some_and(|(n, _)| n == "content-type") {
            headers.push(("content-type", "application/json"));
        }
        headers.extend(*extra);
        let r = send(
            "POST",
            &front(&gw, "/s/default/internal/bsearch"),
            &headers,
            body.as_bytes().to_vec(),
        )
        .await
        .expect("the front answers");
        assert_eq!(r.status, *status, "{body} {extra:?}: {}", r.text());
    }
    // Past `listen.max_body_bytes`: 413, never read whole.
    let large = format!(
        r#"{{"batch":[{{"request":{{"pad":"{}"}}}}]}}"#,
        "x".repeat(70_000)
    );
    let r = send(
        "POST",
        &front(&gw, "/internal/bsearch"),
        &json_headers,
        large.into_bytes(),
    )
    .await
    .expect("the front answers");
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(kibana.requests().is_empty(), "{:?}", kibana.requests());
    // Each refusal is audited as the front's others: denied, its reason, the link named.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.app.audit.sync();
    let log = std::fs::read_to_string(&audit).unwrap();
    let denied: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/internal/bsearch"))
                && e["decision"] == "deny"
        })
        .collect();
    assert_eq!(denied.len(), refused.len() + 1, "{denied:?}");
    assert!(denied.iter().all(|e| e["link_id"].is_string()));
    assert!(denied.iter().any(|e| e["status"] == 403
        && e["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("only Kibana's data searches"))));
}

/// front22 (L): Kibana's answer (or a proxy's before it) cannot set state in the recipient's
/// browser beyond the answer: HSTS (for every subdomain of the front's host), `Alt-Svc`,
/// `Clear-Site-Data`, reporting endpoints, CORS grants to another origin; what Kibana's app
/// reads of an answer (its license signature, validators, the content's headers) still comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kibanas_answer_cannot_set_browser_state_beyond_itself() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let dropped = [
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ),
        ("alt-svc", "h3=\"elsewhere.example:443\"; ma=86400"),
        ("clear-site-data", "\"cookies\", \"storage\""),
        (
            "nel",
            "{\"report_to\":\"default\",\"max_age\":31536000,\"include_subdomains\":true}",
        ),
        (
            "report-to",
            "{\"group\":\"default\",\"max_age\":31536000,\"endpoints\":[{\"url\":\"https://collect.example/r\"}]}",
        ),
        ("reporting-endpoints", "default=\"https://collect.example/r\""),
        ("access-control-allow-origin", "https://other.dash.test"),
        ("access-control-allow-credentials", "true"),
        ("access-control-expose-headers", "kbn-name"),
        ("set-cookie", "sid=kibana; Path=/"),
    ];
    let kept = [
        ("content-type", "application/json; charset=utf-8"),
        (
            "cache-control",
            "private, no-cache, no-store, must-revalidate",
        ),
        ("etag", "\"5f-1\""),
        ("kbn-name", "kibana"),
        ("kbn-license-sig", "da420c53321c02c93e0b"),
    ];
    kibana.script(
        "GET",
        "/api/status",
        Answer {
            status: 200,
            headers: dropped
                .iter()
                .chain(&kept)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: "{}".into(),
        },
    );
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let r = front_req(
        &gw,
        "GET",
        "/api/status",
        &[("cookie", &cookie), ("origin", "https://other.dash.test")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(kibana.requests().len(), 1);
    for (name, _) in dropped {
        assert!(r.header(name).is_none(), "{name} reached the recipient");
    }
    for (name, value) in kept {
        assert_eq!(r.header(name), Some(value), "{name}");
    }
}

/// Kibana redirecting to its own address (its `server.publicBaseUrl`, or the URL the front
/// uses) does not take the recipient past the front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kibanas_redirects_to_itself_stay_on_the_front() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let own = format!("{}/app/dashboards#/list", kibana.url());
    kibana.script(
        "GET",
        "/app/dashboards/redirect",
        Answer {
            status: 302,
            headers: vec![("location".into(), own)],
            body: "".into(),
        },
    );
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let r = front_req(
        &gw,
        "GET",
        "/app/dashboards/redirect",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/app/dashboards#/list"));
}

/// rel16: Kibana's answer was relayed without the backend's body idle timeout, so a Kibana
/// that stopped sending in the middle of an answer held the recipient's connection, and the
/// connection to Kibana, forever (the watchdog leaves a request in flight alone). It is now cut
/// after `backend.body_idle_timeout`, as an Elasticsearch answer is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kibana_answer_that_stalls_is_cut_after_the_body_idle_timeout() {
    use tokio::io::AsyncReadExt;
    let stalling = StallingKibana::start("body_idle_timeout = \"1s\"\n", "").await;
    let gw = &stalling.gw;
    let cookie = opened_link(gw, "a", DASHBOARD).await.cookie;
    let mut s = raw_get(gw, "/app/dashboards", &cookie).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut got)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(read.is_ok(), "still open after 6 s: {got}");
    assert!(got.ends_with("<html>"), "{got}");
}

/// Attack 19a: the front had `listen.max_connections` places of its own, which the descriptor
/// budget (`max_connections + admin_max_connections + 1024`) never counted: any client, link or
/// not, could hold them all and leave the store, the audit log and the backend connections
/// without descriptors. The front and the data listener now share the places (each accept
/// loop takes a place before it accepts, so with two places each listener holds one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_and_the_data_listener_share_their_connection_places() {
    use tokio::io::AsyncWriteExt;
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = Esgate::start_full(
        &[backend.url()],
        "max_connections = 2\n",
        "",
        &kibana_section(kibana.url()),
    )
    .await;
    let addr = gw.front_addr.expect("the front is listening");
    // One silent connection on the front, one on the data listener (each held until
    // header_timeout, 30 s by default): both places taken.
    let mut held = Vec::new();
    for to in [addr, gw.data_addr] {
        let mut s = tokio::net::TcpStream::connect(to).await.expect("connect");
        s.write_all(b"GET /").await.expect("write");
        held.push(s);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unknown = front(&gw, &format!("/s/lnk_{}", "0a".repeat(16)));
    let waited = support::http::send_with_timeout(
        "GET",
        &unknown,
        &[],
        Vec::new(),
        Duration::from_millis(1500),
    )
    .await;
    assert!(
        waited.is_err(),
        "the front served past listen.max_connections: {waited:?}"
    );
    drop(held);
    let served =
        support::http::send_with_timeout("GET", &unknown, &[], Vec::new(), Duration::from_secs(10))
            .await
            .expect("served once a place is free");
    assert_eq!(served.status, 404);
}

/// Attack 19a (L): the data listener and the front kept a `listen.max_connections_per_ip` table
/// each, so one address held twice its limit. They share one: two connections held on the data
/// listener leave the address none on the front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_and_the_data_listener_share_one_per_address_limit() {
    use tokio::io::AsyncWriteExt;
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = Esgate::start_full(
        &[backend.url()],
        "max_connections_per_ip = 2
",
        "",
        &kibana_section(kibana.url()),
    )
    .await;
    // Two silent connections on the data listener (held until header_timeout, 30 s).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(gw.data_addr)
            .await
            .expect("connect");
        s.write_all(b"GET /").await.expect("write");
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let unknown = front(&gw, &format!("/s/lnk_{}", "0a".repeat(16)));
    let refused = support::http::send_with_timeout(
        "GET",
        &unknown,
        &[],
        Vec::new(),
        Duration::from_millis(1500),
    )
    .await;
    assert!(
        refused.is_err(),
        "the front served an address holding listen.max_connections_per_ip on the data listener: {refused:?}"
    );
    drop(held);
    let mut served = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(r) = support::http::send_with_timeout(
            "GET",
            &unknown,
            &[],
            Vec::new(),
            Duration::from_secs(5),
        )
        .await
        {
            served = Some(r.status.as_u16());
            break;
        }
    }
    assert_eq!(
        served,
        Some(404),
        "served once the address's connections ended"
    );
}

/// Attack 19a: every request through the front to Kibana held a connection to it, without a
/// bound: one link holder's HTTP/2 streams (100 per connection, each connection a place) or
/// pipelined connections opened as many Kibana connections as it liked. Kibana is one more node:
/// at most `backend.max_connections_per_node` requests at once, each holding its slot until its
/// answer's body ends; past it a 503 after `backend.connect_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_kibana_are_bounded_like_a_nodes_connections() {
    let stalling = StallingKibana::start(
        "max_connections_per_node = 2\nmax_connections_per_token = 2\n\
         connect_timeout = \"500ms\"\n",
        "",
    )
    .await;
    let gw = &stalling.gw;
    let cookie = opened_link(gw, "a", DASHBOARD).await.cookie;
    let stalled = || async {
        status_of(
            raw_get(gw, "/app/dashboards", &cookie).await,
            Duration::from_secs(5),
        )
        .await
    };
    // Two answers whose bodies Kibana never finishes: both slots held.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (s, head) = stalled().await;
        assert_eq!(head, "HTTP/1.1 200", "{head}");
        held.push(s);
    }
    // Another token's request (this one's is past its share too, a 429): the slots are full.
    let other = opened_link(gw, "b", DASHBOARD).await;
    let r = support::http::send_with_timeout(
        "GET",
        &front(gw, "/app/dashboards"),
        &[("cookie", &other.cookie)],
        Vec::new(),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer, not a third Kibana connection stalling");
    assert_eq!(r.status, 503, "{r:?}");
    // A slot is free again once an answer's client leaves.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_s, head) = stalled().await;
    assert_eq!(head, "HTTP/1.1 200", "{head}");
}

/// Attack 19a (L): one link holder could take every Kibana slot of the front and leave other
/// links' recipients the 503. As on a node, one token's requests hold at most
/// `backend.max_connections_per_token` of them (past it a 429 after `connect_timeout`), so
/// another token's recipient is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tokens_requests_hold_at_most_its_share_of_the_kibana_slots() {
    let stalling = StallingKibana::start(
        "max_connections_per_node = 2\nmax_connections_per_token = 1\n\
         connect_timeout = \"500ms\"\n",
        "",
    )
    .await;
    let gw = &stalling.gw;
    let mut cookies = Vec::new();
    for tenant in ["a", "b"] {
        cookies.push(opened_link(gw, tenant, DASHBOARD).await.cookie);
    }
    let stalled = |cookie: String| async move {
        status_of(
            raw_get(gw, "/app/dashboards", &cookie).await,
            Duration::from_secs(5),
        )
        .await
    };
    // Token a's answer, whose body Kibana never finishes, holds a's one place.
    let (_held, head) = stalled(cookies[0].clone()).await;
    assert_eq!(head, "HTTP/1.1 200", "{head}");
    let (_second, head) = stalled(cookies[0].clone()).await;
    assert_eq!(head, "HTTP/1.1 429", "token a past its share: {head}");
    // The second slot is still there for token b.
    let (_other, head) = stalled(cookies[1].clone()).await;
    assert_eq!(head, "HTTP/1.1 200", "token b is served: {head}");
}

/// attack21c (L): the front checked the link before its request waited for a place among the
/// Kibana slots (its token's share, up to `backend.connect_timeout`), so a link deleted
/// meanwhile still had its request passed to Kibana once a place came free. Now the link is
/// checked again once the request has its place: refused (404), Kibana never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_deleted_while_its_request_waits_for_a_kibana_slot_is_refused() {
    let stalling = StallingKibana::start(
        "max_connections_per_node = 2\nmax_connections_per_token = 1\n\
         connect_timeout = \"10s\"\n",
        "",
    )
    .await;
    let gw = &stalling.gw;
    let kibana = &stalling.kibana;
    let OpenedLink {
        link: l, cookie, ..
    } = opened_link(gw, "a", DASHBOARD).await;
    let limit = Duration::from_secs(15);
    // The token's one place, held by an answer whose body Kibana never finishes.
    let held = raw_get(gw, "/app/dashboards", &cookie).await;
    let (held, head) = status_of(held, limit).await;
    assert_eq!(head, "HTTP/1.1 200", "{head}");
    assert_eq!(kibana.accepted(), 1);
    // The second request waits for that place; its link is deleted meanwhile.
    let waiting = raw_get(gw, "/app/dashboards", &cookie).await;
    let waiting = tokio::spawn(status_of(waiting, limit));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "went to Kibana beyond the share");
    let lid = l["id"].as_str().unwrap();
    let (s, _) = gw.admin("DELETE", &format!("/links/{lid}"), None).await;
    assert_eq!(s, 204);
    drop(held);
    let (_s, head) = waiting.await.unwrap();
    assert_eq!(
        head, "HTTP/1.1 404",
        "passed to Kibana after its link was deleted: {head}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(kibana.accepted(), 1, "Kibana was asked");
}

/// Attack 19a: a refusal on the front left an HTTP/1 request's body unread without saying the
/// connection ends (the data listener says so): a pooling client saw a reset, not the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_leaves_a_body_unread_closes_the_connection() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let r = send(
        "POST",
        &front(&gw, "/internal/bsearch"),
        &[("kbn-xsrf", "x")],
        vec![b'x'; 256 * 1024],
    )
    .await
    .expect("the refusal arrives");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), Some("close"));
    // Without a body, the connection stays usable.
    let r = front_req(&gw, "GET", "/app/dashboards", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), None);
}

/// attack20b: a recipient's body is relayed to Kibana as it arrives, so a chunked framing
/// hyper refuses mid-body (a bare `\n` line end, a size that is no hex number) failed the
/// exchange with Kibana after it began: a 502 and a warning that Kibana is unreachable, at the
/// recipient's will. It is the recipient's 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipients_body_with_broken_framing_is_its_400_not_a_502() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let addr: SocketAddr = gw.front_addr.expect("the front is listening");
    for body in ["2\n{}\n0\n\n", "2\r\n{}\r\nzz\r\n"] {
        let request = format!(
            "POST /internal/bsearch HTTP/1.1\r\nhost: dash.test\r\ncookie: {cookie}\r\n\
             kbn-xsrf: true\r\ncontent-type: application/json\r\n\
             transfer-encoding: chunked\r\n\r\n{body}"
        );
        let answer = support::http::raw_with_timeout(
            addr,
            request.as_bytes(),
            std::time::Duration::from_secs(3),
        )
        .await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400"), "{body:?}: {text}");
    }
}

/// The audit file's first record of a request to `req_path`, waited for (10 s at most).
async fn audit_record_of(path: &std::path::Path, req_path: &str) -> Value {
    let to_path = |r: &Value| r["path"] == req_path;
    let found = audit_records(path, to_path, 1, Duration::from_secs(10)).await;
    found
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no record of {req_path}"))
}

/// attack21b (L): a recipient's request passed to Kibana whose recipient goes away before the
/// answer (here the connection closed while Kibana works on it) left no audit record: the
/// front wrote its record with the answer only. Now it is recorded as it stands: 499, `allow`
/// (Kibana had it), the link named by its reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_request_whose_recipient_goes_away_is_still_audited() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    // Kibana takes its time with this page (the fake's own thread waits).
    kibana.script_fn("GET", "/app/dashboards", |_| {
        std::thread::sleep(Duration::from_secs(2));
        Answer {
            status: 200,
            headers: vec![("content-type".into(), "text/html".into())],
            body: "<html>slow</html>".into(),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let gw = start(backend.url(), &kibana, &audit_file_section(&path)).await;
    let OpenedLink {
        token_id: id,
        link: l,
        cookie,
        ..
    } = opened_link(&gw, "a", DASHBOARD).await;
    let raw = raw_get(&gw, "/app/dashboards", &cookie).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while kibana.requests_to("GET", "/app/dashboards").is_empty() {
        assert!(std::time::Instant::now() < deadline, "Kibana never had it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(raw);
    let record = audit_record_of(&path, "/app/dashboards").await;
    assert_eq!(record["status"], 499, "{record}");
    assert_eq!(record["decision"], "allow", "{record}");
    assert_eq!(record["token_id"], id.as_str(), "{record}");
    assert_eq!(
        record["link_id"],
        l["id"].as_str().unwrap()[..16].to_owned(),
        "{record}"
    );
}

/// attack21c (L): a recipient's request that went away while it waited for a Kibana slot was
/// recorded `allow` 499, as if passed to Kibana: the front said "passed" before the wait. Now
/// only once it is handed to Kibana's client: `deny`, "before it was passed to Kibana" (Kibana
/// never had it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_request_whose_recipient_leaves_while_it_waits_for_a_slot_is_recorded_unsent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let stalling = StallingKibana::start(
        "max_connections_per_node = 1\nconnect_timeout = \"10s\"\n",
        &audit_file_section(&path),
    )
    .await;
    let gw = &stalling.gw;
    let kibana = &stalling.kibana;
    let OpenedLink {
        token_id: id,
        cookie,
        ..
    } = opened_link(gw, "a", DASHBOARD).await;
    // The only slot: an answer whose body Kibana never finishes.
    let holding = raw_get(gw, "/app/dashboards", &cookie).await;
    let (holding, head) = status_of(holding, Duration::from_secs(5)).await;
    assert_eq!(head, "HTTP/1.1 200");
    // The next waits for it, and its recipient leaves.
    let waiting = raw_get(gw, "/ui/waiting.js", &cookie).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(waiting);
    let record = audit_record_of(&path, "/ui/waiting.js").await;
    assert_eq!(record["status"], 499, "{record}");
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(
        record["reason"], "the recipient closed the request before it was passed to Kibana",
        "{record}"
    );
    assert_eq!(record["token_id"], id.as_str(), "{record}");
    assert_eq!(kibana.accepted(), 1, "Kibana had only the first");
    drop(holding);
}

/// rel22 (L): the front's client to Kibana had no connect timeout: a Kibana whose SYNs go
/// unanswered (a host powered off) held each request, and its Kibana slot, for the whole
/// `backend.request_timeout`, then answered 504. Kibana is one more node: its connect is
/// bounded by `backend.connect_timeout`, then "Kibana is unreachable" (502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kibana_that_never_answers_connects_is_given_up_after_connect_timeout() {
    let kibana = support::faults::Unanswered::start(None);
    kibana_is_given_up_after_connect_timeout(&format!("http://{}", kibana.addr())).await;
}

/// A front whose Kibana is at `kibana_url` answers a page 502 after `connect_timeout` (1 s),
/// well within `request_timeout` (10 s).
async fn kibana_is_given_up_after_connect_timeout(kibana_url: &str) {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start_full(
        &[backend.url()],
        "",
        "connect_timeout = \"1s\"\nrequest_timeout = \"10s\"\n",
        &kibana_section(kibana_url),
    )
    .await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let started = std::time::Instant::now();
    let r = support::http::send_with_timeout(
        "GET",
        &front(&gw, "/app/dashboards"),
        &[("cookie", &cookie)],
        Vec::new(),
        Duration::from_secs(20),
    )
    .await
    .expect("an answer");
    let took = started.elapsed();
    assert_eq!(r.status, 502, "{r:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// front23: the maps app draws through a share link with what Kibana 8.15's maps server serves
/// a viewer (`x-pack/plugins/maps/server`: `routes.ts`, `mvt/mvt_routes.ts`): glyphs (files
/// of Kibana's own disk), vector tiles and index settings, which Kibana asks Elasticsearch for
/// as the current user, the link credential. They reach Kibana as the browser asked, query
/// string and all; the editor's routes (writes, `_cat/indices` and mapping reads) and other
/// shapes do not. What the tiles' `index`, `requestBody` (rison: query, runtime mappings,
/// fields, sort, aggs) and the settings' `indexPatternTitle` name cannot widen what the link
/// reads: Kibana's requests for them, replayed with the credential it received, are judged by
/// the data listener as the link's token (`_mvt` refused to a `read` token, A29; `_settings`
/// as index metadata, A11/A23), whatever the index, and the backend sees none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maps_viewer_reaches_tiles_and_glyphs_only_as_the_links_token() {
    let es = Recording::start();
    es.resolve_indices(&["logs-a", "logs-b", "secret"]);
    let kibana = fake_kibana();
    let gw = start(es.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", "/app/maps/map/m1").await.cookie;
    // maplibre's requests, through the maps app's `transformRequest` (a versioned route).
    let tiles = [("cookie", cookie.as_str()), ("elastic-api-version", "1")];
    let hits = "geometryFieldName=geo.coordinates&index=secret&hasLabels=false&buffer=5\
        &requestBody=(fields:!(tenant),query:(bool:(filter:!((match_all:())))),\
        runtime_mappings:(x:(script:(source:%27emit(1)%27),type:long)),size:10000,sort:!())\
        &token=5e1b&executionContextId=c1";
    let grid = "geometryFieldName=geo.coordinates&index=logs-*%2Csecret&hasLabels=false\
        &buffer=5&requestBody=(aggs:(),query:(match_all:()),runtime_mappings:())\
        &renderAs=point&token=5e1b&gridPrecision=8";
    let passed = [
        "/internal/maps/fonts/Open%20Sans%20Regular,Arial%20Unicode%20MS%20Regular/0-255"
            .to_owned(),
        format!("/internal/maps/mvt/getTile/2/1/3.pbf?{hits}"),
        format!("/s/default/internal/maps/mvt/getGridTile/2/1/3.pbf?{grid}"),
        "/internal/maps/indexSettings?indexPatternTitle=secret".to_owned(),
    ];
    for target in &passed {
        kibana.clear();
        let r = send("GET", &front(&gw, target), &tiles, Vec::new())
            .await
            .expect("the front answers");
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let got = kibana.requests();
        assert_eq!(got.len(), 1, "{target}");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        assert_eq!(got[0].path, path);
        assert_eq!(got[0].query.as_deref().unwrap_or(""), query, "{target}");
        assert!(last_credential(&kibana).starts_with("Bearer esgl1_"));
    }
    let credential = last_credential(&kibana);
    kibana.clear();
    let xsrf = [
        ("cookie", cookie.as_str()),
        ("kbn-xsrf", "true"),
        ("elastic-api-version", "1"),
    ];
    for (method, target) in [
        // The editor: a new index and data view, features written and deleted.
        ("POST", "/internal/maps/docSource"),
        ("POST", "/internal/maps/feature"),
        ("DELETE", "/internal/maps/feature/f1"),
        // Reads the editor alone makes (`_cat/indices`, `_mapping`).
        ("GET", "/internal/maps/getMatchingIndexes?indexPattern=*"),
        ("GET", "/internal/maps/checkIsDrawingIndex?index=secret"),
        // Other shapes and methods of the viewer's routes; the routes before `internal`.
        ("POST", "/internal/maps/mvt/getTile/2/1/3.pbf"),
        ("GET", "/internal/maps/mvt/getTile/2/1/3"),
        ("GET", "/internal/maps/mvt/getTile/2/1/3.pbf/x"),
        ("GET", "/internal/maps/fonts/Open%20Sans/0-255.pbf"),
        ("GET", "/internal/maps/fonts/Open%20Sans/..%2fsecret"),
        ("GET", "/api/maps/mvt/getTile/2/1/3.pbf"),
        ("GET", "/api/maps/indexSettings?indexPatternTitle=secret"),
    ] {
        let r = front_req(&gw, method, target, &xsrf).await;
        assert_eq!(r.status, 403, "{method} {target}: {}", r.text());
    }
    assert!(kibana.requests().is_empty(), "{:?}", kibana.requests());

    // Kibana's half, by hand: what its maps server sends Elasticsearch for those requests
    // (`common/mvt_request_body.ts`: the index and field URI-encoded into the path, the
    // rison body's parts into `_mvt`'s; `indices.getSettings`), with the credential it got.
    let hits_body = json!({
        "buffer": 5, "grid_precision": 0, "exact_bounds": true, "extent": 4096,
        "query": {"bool": {"filter": [{"match_all": {}}]}},
        "runtime_mappings": {"x": {"script": {"source": "emit(1)"}, "type": "long"}},
        "track_total_hits": 10001, "size": 10000, "with_labels": false,
        "fields": ["tenant"], "sort": []
    });
    let grid_body = json!({
        "buffer": 5, "size": 0, "grid_precision": 8, "exact_bounds": false, "extent": 4096,
        "query": {"match_all": {}}, "grid_agg": "geotile", "grid_type": "centroid",
        "aggs": {}, "runtime_mappings": {}, "with_labels": false
    });
    for index in ["secret", "logs-*%2Csecret", "logs-a", "logs-*", "*", "_all"] {
        for body in [&hits_body, &grid_body] {
            let path = format!("/{index}/_mvt/geo.coordinates/2/1/3");
            let r = gw.json_as(&credential, "POST", &path, Some(body)).await;
            assert_eq!(r.status, 403, "{path}: {}", r.text());
            assert!(r.text().contains("vector tiles"), "{path}: {}", r.text());
        }
        let path = format!("/{index}/_settings");
        let r = gw.get_as(&credential, &path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    let reached: Vec<String> = es
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .filter(|p| p.contains("_mvt") || p.contains("_settings"))
        .collect();
    assert!(reached.is_empty(), "{reached:?}");
}

/// front23 (front22b's leftover, L): a read-only POST whose body says it is compressed
/// (`Content-Encoding`) was passed without the header, which the front does not relay, so
/// Kibana read the compressed bytes as JSON and failed on them. Kibana's app never compresses
/// a request body: such a POST is now the front's 415, as a batched search's was, and Kibana
/// sees nothing; `identity` is no compression and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_body_is_refused_on_every_read_only_post() {
    let es = Recording::start();
    let kibana = fake_kibana();
    let gw = start(es.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    for path in [
        "/api/saved_objects/_bulk_get",
        "/api/core/capabilities",
        "/api/content_management/rpc/get",
        "/internal/search/ese",
        "/internal/bsearch",
    ] {
        for encoding in ["gzip", "deflate", "br", "identity, gzip"] {
            let r = front_req(
                &gw,
                "POST",
                path,
                &[
                    ("cookie", cookie.as_str()),
                    ("kbn-xsrf", "true"),
                    ("content-type", "application/json"),
                    ("content-encoding", encoding),
                ],
            )
            .await;
            assert_eq!(r.status, 415, "{path} {encoding}: {}", r.text());
            assert!(r.text().contains("Content-Encoding"), "{}", r.text());
        }
        assert!(kibana.requests().is_empty(), "{:?}", kibana.requests());
        let r = front_req(
            &gw,
            "POST",
            path,
            &[
                ("cookie", cookie.as_str()),
                ("kbn-xsrf", "true"),
                ("content-type", "application/json"),
                ("content-encoding", "identity"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let got = kibana.requests();
        assert_eq!(got.len(), 1, "{path}");
        assert!(got[0].header("content-encoding").is_none());
        kibana.clear();
    }
}

/// front23 (L): Kibana marks the maps app's vector tiles `Cache-Control: public, max-age=3600`.
/// Through the front a tile is the link's own (its token's data), but a shared cache in front
/// of the front keys answers by URL, blind to the session cookie, and would hand it to another
/// link's recipient asking the same URL. Answers of the link's own are `private` (Kibana's
/// `max-age` kept for the recipient's browser), an answer without `Cache-Control` too; static
/// files, the same for every recipient, keep Kibana's `public`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_links_own_answers_are_private_to_shared_caches() {
    let es = Recording::start();
    let kibana = fake_kibana();
    let public = |value: &str| Answer {
        status: 200,
        headers: vec![("cache-control".into(), value.into())],
        body: "x".into(),
    };
    kibana.script("GET", "/internal/maps/mvt/", public("public, max-age=3600"));
    kibana.script(
        "GET",
        "/84785/bundles/",
        public("public, max-age=31536000, immutable"),
    );
    kibana.script(
        "GET",
        "/internal/maps/fonts/",
        public("public, max-age=3600"),
    );
    let gw = start(es.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", "/app/maps/map/m1").await.cookie;
    for (target, want) in [
        (
            "/internal/maps/mvt/getTile/2/1/3.pbf?index=logs-*&requestBody=()",
            "private, max-age=3600",
        ),
        (
            "/internal/maps/mvt/getGridTile/2/1/3.pbf?index=logs-*&requestBody=()",
            "private, max-age=3600",
        ),
        ("/api/status", "private"),
        ("/app/maps/map/m1", "private"),
        (
            "/84785/bundles/core/core.entry.js",
            "public, max-age=31536000, immutable",
        ),
        (
            "/internal/maps/fonts/Open%20Sans%20Regular/0-255",
            "public, max-age=3600",
        ),
    ] {
        let r = front_req(&gw, "GET", target, &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let values: Vec<&str> = r
            .headers
            .get_all("cache-control")
            .iter()
            .map(|v| v.to_str().unwrap_or("?"))
            .collect();
        assert_eq!(values, [want], "{target}");
    }
}

/// rel23 item 3 (L): the front's TLS handshake with Kibana was bounded by
/// `backend.request_timeout` only: a Kibana (or a proxy before it) that took the connection
/// and never answered the handshake held each request, and its Kibana slot, for the whole
/// `request_timeout`, then a 504. Connecting (TCP and TLS together) is bounded by
/// `backend.connect_timeout`, as a node's is, then "Kibana is unreachable" (502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kibana_that_never_answers_the_tls_handshake_is_given_up_after_connect_timeout() {
    let kibana = support::faults::FaultServer::hang();
    kibana_is_given_up_after_connect_timeout(&kibana.url().replacen("http://", "https://", 1))
        .await;
    assert!(kibana.accepted() >= 1, "the TCP connect was made");
}

/// rel23 item 5 (L): a `Location` from Kibana naming any address but Kibana's own base URL
/// (rewritten to a path on the front) was relayed unchanged, and the recipient's browser
/// followed it off the front (to Kibana's public address past the front, an identity
/// provider, anywhere). Such an answer is refused (502, the address not named); a path, and
/// Kibana's own base URL made a path, still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kibanas_redirects_elsewhere_are_refused() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let cases = [
        (
            "/app/dashboards/a",
            "https://evil.example/app?secret=1",
            None,
        ),
        ("/app/dashboards/b", "//evil.example/app", None),
        ("/app/dashboards/c", "/\\evil.example", None),
        (
            "/app/dashboards/d",
            "/app/dashboards#/list",
            Some("/app/dashboards#/list"),
        ),
    ];
    for (path, location, _) in cases {
        kibana.script(
            "GET",
            path,
            Answer {
                status: 302,
                headers: vec![("location".into(), location.into())],
                body: "".into(),
            },
        );
    }
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    for (path, location, relayed) in cases {
        let r = front_req(&gw, "GET", path, &[("cookie", &cookie)]).await;
        match relayed {
            Some(want) => {
                assert_eq!(r.status, 302, "{location}");
                assert_eq!(r.header("location"), Some(want), "{location}");
            }
            None => {
                assert_eq!(r.status, 502, "{location}: {r:?}");
                assert_eq!(r.header("location"), None, "{location}");
                assert!(!r.text().contains("evil"), "{location}: {}", r.text());
            }
        }
    }
}

/// rel24 item 2 (L): the front's client to Kibana read with hyper's default buffer (about
/// 400 KB), so Kibana's answer heads had no cap where a node's have 64 KiB
/// (`backend_faults::a_backend_answer_head_of_64_kib_passes`). They have a node's cap now: a
/// head of 64 KiB passes; one a byte larger (arriving in one read), 80 KiB and 1 MiB are a 502,
/// as Kibana's other failures are, saying why; and a head that stops unfinished past 64 KiB is
/// refused at once (it was read on into the 400 KB buffer, the request held until
/// `backend.request_timeout`, then a 504).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kibanas_answer_heads_are_capped_at_64_kib() {
    let backend = fixture::seeded_osmem();
    let unfinished = format!("HTTP/1.1 200 OK\r\nx-pad: {}", "x".repeat(100 * 1024));
    let unfinished: &'static [u8] = Box::leak(unfinished.into_bytes().into_boxed_slice());
    let head_of = crate::backend_faults::head_of;
    for (name, answer, status) in [
        ("64 KiB", head_of(64 * 1024), 200),
        ("64 KiB and a byte", head_of(64 * 1024 + 1), 502),
        ("80 KiB", head_of(80 * 1024), 502),
        ("1 MiB", head_of(1024 * 1024), 502),
        ("100 KiB unfinished", unfinished, 502),
    ] {
        // Answers the first request of a connection only: one request each.
        let kibana = support::faults::FaultServer::raw(answer, false);
        let gw = Esgate::start_full(
            &[backend.url()],
            "",
            "request_timeout = \"5s\"",
            &kibana_section(kibana.url()),
        )
        .await;
        let (id, _) = token(&gw, "a", json!({})).await;
        let l = link(&gw, &id, json!({"path": "/app/dashboards#/view/d1"})).await;
        let (_, cookie) = open(&gw, &l).await;
        let cookie = cookie.expect("cookie");
        let r = front_req(&gw, "GET", "/app/dashboards", &[("cookie", &cookie)]).await;
        assert_eq!(r.status, status, "{name}: {}", r.text());
        if status == 200 {
            assert_eq!(r.text(), "{}", "{name}");
        } else {
            assert!(
                r.text().contains("larger than 64 KiB"),
                "{name}: {}",
                r.text()
            );
        }
        gw.stop().await;
    }
}

/// An HTTP/2 `GET` on `addr` whose `:path` is `path` as it is (`*` and `?x` are taken by the
/// h2 crate for any method): the answer's status and body, or `None` when the stream was
/// refused.
async fn h2_answer(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let (mut h2, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(
                stream,
            ))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some("dash.test".parse().expect("authority"));
    parts.path_and_query = Some(path.parse().expect("a path the http crate takes"));
    let mut req = http::Request::get(http::Uri::from_parts(parts).expect("uri"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(http_body_util::Empty::new()).expect("request");
    let status = match h2.send_request(req).await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.into_body().collect().await.map(|b| b.to_bytes());
            Some((
                status,
                String::from_utf8_lossy(&body.unwrap_or_default()).into_owned(),
            ))
        }
        Err(_) => None,
    };
    conn.abort();
    status
}

/// [`h2_answer`]'s status.
async fn h2_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    h2_answer(addr, path, headers)
        .await
        .map(|(status, _)| status)
}

/// attack25b (L): a request target that is not a path from its `/` reaches neither the backend
/// nor Kibana, from any token or link. An HTTP/2 `:path` is taken as sent, `*` or a query alone
/// (`?x`) for any method: an `all` token's went to the backend as its request line's target
/// (`GET * HTTP/1.1`, answered 200), now 400; a `read` token's request is the route's (`*` is
/// no route, `?x` is `/?x`). Before http 1.4.1 any text was taken (`1/bundles/x`), which the
/// front appended to Kibana's base URL: `http://kibana:5601` made port 56011
/// (`front::tests::kibanas_url_for_a_path_never_leaves_kibanas_address`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_not_a_path_from_its_slash_is_refused_everywhere() {
    let backend = fixture::seeded_osmem();
    let kibana = fake_kibana();
    let gw = start(backend.url(), &kibana, "").await;
    let cookie = opened_link(&gw, "a", DASHBOARD).await.cookie;
    let front_addr = gw.front_addr.expect("the front");
    let read = format!("Bearer {}", gw.tenant_token("a").await);
    let all = format!("Bearer {}", gw.all_token().await);
    let refused = |s: Option<u16>| s.is_none_or(|s| (400..500).contains(&s));
    for path in ["*", "?x", "?q=tenant:b"] {
        // esgate's refusal, not the backend's answer.
        let (status, body) = h2_answer(gw.data_addr, path, &[("authorization", &all)])
            .await
            .expect("an answer");
        assert_eq!(status, 400, "all {path}: {body}");
        assert!(body.contains("only origin-form"), "all {path}: {body}");
        let got = h2_get(gw.data_addr, path, &[("authorization", &read)]).await;
        assert!(refused(got), "read {path}: {got:?}");
        let got = h2_get(front_addr, path, &[("cookie", &cookie)]).await;
        assert!(refused(got), "front {path}: {got:?}");
    }
    assert!(kibana.requests().is_empty(), "{:?}", kibana.requests());
    // The same requests with their `/` are served.
    assert_eq!(
        h2_get(front_addr, "/bundles/x.js", &[("cookie", &cookie)]).await,
        Some(200)
    );
    for auth in [&read, &all] {
        assert_eq!(
            h2_get(gw.data_addr, "/", &[("authorization", auth)]).await,
            Some(200)
        );
    }
    gw.stop().await;
}
