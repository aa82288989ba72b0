//! SIGHUP reload (issue #13, "Reload"), on the real binary: under load and with a kept-alive
//! connection open, a reload drops nothing and the next request on that connection gets the new
//! configuration; a bad new configuration is refused with its reasons logged and the old one
//! keeps serving; the audit file is reopened (log rotation by rename); a replaced TLS
//! certificate is served to new connections; settings that need a restart are named in the log;
//! an answer streaming across reloads arrives whole and admin changes written across them are
//! all on disk (rel19).

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use support::backend::Backend;
use support::binary::{self, Served};
use support::esgate::{audit_file_section, ADMIN_KEY};
use support::http::{bearer, send, send_https};
use support::tls::TlsFiles;

/// A config file for the binary; `extra` is appended.
fn write_config(path: &Path, backend: &str, store: &Path, audit: &Path, extra: &str) {
    let text = format!(
        "[backend]\nurls = [{backend:?}]\n\
         [store]\npath = {:?}\n\
         [admin]\nkey = {ADMIN_KEY:?}\n\
         {}{extra}\n",
        store.display().to_string(),
        audit_file_section(audit),
    );
    std::fs::write(path, text).unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    audit: PathBuf,
    store: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    Setup {
        config: dir.path().join("esgate.toml"),
        audit: dir.path().join("audit.jsonl"),
        store: dir.path().join("store"),
        dir,
    }
}

fn start(s: &Setup) -> Served {
    let config = s.config.display().to_string();
    binary::serve(&["--config", &config], |_| {})
}

/// Sends SIGHUP and waits until the log shows the outcome (`Configuration reloaded` or
/// `Reload refused`) for the `n`th time; returns the log.
fn hangup(served: &Served, n: usize) -> String {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = served.log.lock().unwrap().clone();
        let outcomes =
            log.matches("Configuration reloaded").count() + log.matches("Reload refused").count();
        if outcomes >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no reload outcome in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn admin(served: &Served, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN_KEY}");
    let r = send(
        method,
        &format!("{}{path}", served.admin),
        &[("authorization", auth.as_str())],
        if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        },
    )
    .await
    .unwrap();
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status.as_u16(), v)
}

/// A kept-alive HTTP/1.1 connection to `base` (`http://IP:PORT`).
async fn keep_alive(base: &str) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    secret: &str,
) -> (u16, Bytes) {
    sender
        .ready()
        .await
        .expect("the kept-alive connection is open");
    let req = http::Request::get(path)
        .header("host", "esgate")
        .header("authorization", bearer(secret))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = sender.send_request(req).await.expect("answered");
    let status = r.status().as_u16();
    (status, r.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_keeps_connections_and_applies_the_new_config() {
    let backend = support::fixture::seeded_osmem();
    let s = setup();
    write_config(&s.config, backend.url(), &s.store, &s.audit, "");
    let served = start(&s);
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "a", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_owned();

    let mut conn = keep_alive(&served.data).await;
    let (status, _) = get_on(&mut conn, "/logs-*/_count", &secret).await;
    assert_eq!(status, 200);

    // Load: fresh connections sending requests while reloads happen.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..3 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (url, auth) = (format!("{}/logs-*/_count", served.data), bearer(&secret));
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match send(
                    "GET",
                    &url,
                    &[("authorization", auth.as_str())],
                    Bytes::new(),
                )
                .await
                {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", r.status, r.text())),
                    Err(e) => failed.lock().unwrap().push(format!("{e:?}")),
                }
            }
        }));
    }
    // Reloads with a changed policy, the last one requiring an expiry.
    for i in 1..=4 {
        let extra = if i == 4 {
            "[policies]\nrequire_expiry = true\n"
        } else {
            ""
        };
        write_config(&s.config, backend.url(), &s.store, &s.audit, extra);
        let log = tokio::task::block_in_place(|| hangup(&served, i));
        assert!(!log.contains("Reload refused"), "{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "requests failed during reloads: {failed:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);

    // The kept-alive connection still serves, and the new policy is in force.
    let (status, body) = get_on(&mut conn, "/logs-*/_count", &secret).await;
    assert_eq!(status, 200, "{body:?}");
    let (status, v) = admin(&served, "POST", "/tokens", json!({"name": "b"})).await;
    assert_eq!(status, 400, "the reloaded policy requires an expiry: {v}");
    assert!(v.to_string().contains("require_expiry"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_and_the_old_one_keeps_serving() {
    let backend = Backend::osmem();
    let s = setup();
    write_config(&s.config, backend.url(), &s.store, &s.audit, "");
    let served = start(&s);
    // Unknown keys, a bad value, a missing certificate: each refused with its reason.
    for (n, (extra, reason)) in [
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[metrics]\nmax_token_series = 1000000\n", "metrics.max_token_series"),
        (
            "[listen.tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
            "/nonexistent/cert.pem",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        write_config(&s.config, backend.url(), &s.store, &s.audit, extra);
        let log = tokio::task::block_in_place(|| hangup(&served, n + 1));
        let refused = log
            .lines()
            .filter(|l| l.contains("Reload refused"))
            .nth(n)
            .unwrap_or_else(|| panic!("{extra}: not refused:\n{log}"));
        assert!(refused.contains(reason), "{refused}");
        // Still serving, with the old configuration (plain HTTP, admin key).
        let (status, v) = admin(&served, "GET", "/tokens", Value::Null).await;
        assert_eq!(status, 200, "{v}");
        let r = send("GET", &format!("{}/", served.data), &[], Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 401);
    }
    // A change that needs a restart is named, and the running value stays.
    let moved = s.dir.path().join("elsewhere");
    write_config(&s.config, backend.url(), &moved, &s.audit, "");
    let log = tokio::task::block_in_place(|| hangup(&served, 4));
    assert!(
        log.lines()
            .any(|l| l.contains("only after a restart") && l.contains("store.path")),
        "{log}"
    );
    let (status, _) = admin(&served, "POST", "/tokens", json!({"name": "c"})).await;
    assert_eq!(status, 201);
    assert!(!moved.exists(), "the store did not move");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_file_is_reopened_after_a_rename() {
    let backend = Backend::osmem();
    let s = setup();
    write_config(&s.config, backend.url(), &s.store, &s.audit, "");
    let served = start(&s);
    let probe = |path: &'static str| {
        let url = format!("{}{path}", served.data);
        async move { send("GET", &url, &[], Bytes::new()).await.unwrap() }
    };
    probe("/before-rotation").await;
    let rotated = s.dir.path().join("audit.jsonl.1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&s.audit)
        .unwrap_or_default()
        .contains("/before-rotation")
    {
        assert!(
            Instant::now() < deadline,
            "the first line was never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::rename(&s.audit, &rotated).unwrap();
    tokio::task::block_in_place(|| hangup(&served, 1));
    probe("/after-rotation").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = std::fs::read_to_string(&s.audit).unwrap_or_default();
        if fresh.contains("/after-rotation") {
            assert!(!fresh.contains("/before-rotation"), "{fresh}");
            break;
        }
        assert!(Instant::now() < deadline, "no line in the reopened file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("/before-rotation") && !old.contains("/after-rotation"),
        "{old}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_after_reload() {
    let backend = Backend::osmem();
    let s = setup();
    let first = TlsFiles::generate();
    let second = TlsFiles::generate();
    let cert = s.dir.path().join("server.pem");
    let key = s.dir.path().join("server.key");
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let tls = support::tls::listen_section(&cert, &key);
    write_config(&s.config, backend.url(), &s.store, &s.audit, &tls);
    let served = start(&s);
    let url = served.data.replace("http://", "https://") + "/";
    let r = send_https(&first.ca_cert, "GET", &url, &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 401, "served with the first certificate");

    std::fs::copy(&second.cert, &cert).unwrap();
    std::fs::copy(&second.key, &key).unwrap();
    let log = tokio::task::block_in_place(|| hangup(&served, 1));
    assert!(!log.contains("Reload refused"), "{log}");
    let r = send_https(&second.ca_cert, "GET", &url, &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 401, "served with the second certificate");
    assert!(
        send_https(&first.ca_cert, "GET", &url, &[], Bytes::new())
            .await
            .is_err(),
        "the first certificate is no longer served"
    );
}

/// `log.level` applies at once on reload (no restart named): a connection that sends no HTTP
/// is logged at debug only after the level is raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_log_level_applies_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const DEBUG_LINE: &str = "Connection ended with an error";
    let backend = Backend::osmem();
    let s = setup();
    write_config(&s.config, backend.url(), &s.store, &s.audit, "");
    let served = start(&s);
    let addr = served.data.trim_start_matches("http://").to_owned();
    let not_http = || async {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
        let mut answer = vec![];
        let _ = c.read_to_end(&mut answer).await;
    };
    not_http().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = served.log.lock().unwrap().clone();
    assert!(!log.contains(DEBUG_LINE), "logged at info:\n{log}");

    write_config(
        &s.config,
        backend.url(),
        &s.store,
        &s.audit,
        "[log]\nlevel = \"debug\"\n",
    );
    let log = tokio::task::block_in_place(|| hangup(&served, 1));
    assert!(
        log.contains("Configuration reloaded") && !log.contains("only after a restart"),
        "{log}"
    );
    not_http().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = served.log.lock().unwrap().clone();
        if log.contains(DEBUG_LINE) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no debug line after the reload:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// rel19: SIGHUP while an answer streams and while admin changes are written. The streamed
/// answer (200 MB, read slowly across five reloads) arrives whole; every admin change answered
/// 201 meanwhile is on disk (SIGKILL after the reloads, a restart lists each); none failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_keep_a_streaming_answer_whole_and_every_acknowledged_change() {
    const LEN: u64 = 200 << 20;
    let backend = support::faults::FaultServer::huge(LEN);
    let s = setup();
    write_config(&s.config, backend.url(), &s.store, &s.audit, "");
    let mut served = start(&s);
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "relay", "permissions": ["all"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_owned();

    // The answer, read slowly (a few MB at a time) while the reloads happen.
    let mut conn = keep_alive(&served.data).await;
    let req = hyper::Request::get("/")
        .header("authorization", bearer(&secret))
        .header("host", "esgate")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = conn.send_request(req).await.unwrap();
    assert_eq!(answer.status(), 200);
    let reader = tokio::spawn(async move {
        let mut body = answer.into_body();
        let mut read = 0u64;
        let mut since_pause = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("the answer is not cut");
            if let Ok(data) = frame.into_data() {
                read += data.len() as u64;
                since_pause += data.len() as u64;
                if since_pause > 4 << 20 {
                    since_pause = 0;
                    tokio::time::sleep(Duration::from_millis(60)).await;
                }
            }
        }
        read
    });

    // Admin writers, each change's answer noted.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (stop, acknowledged, failed) = (stop.clone(), acknowledged.clone(), failed.clone());
        let url = format!("{}/tokens", served.admin);
        writers.push(tokio::spawn(async move {
            let auth = format!("Bearer {ADMIN_KEY}");
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = serde_json::to_vec(
                    &json!({"name": format!("w{w}i{i}"), "permissions": ["all"]}),
                )
                .unwrap();
                match send("POST", &url, &[("authorization", auth.as_str())], body).await {
                    Ok(r) if r.status == 201 => acknowledged
                        .lock()
                        .unwrap()
                        .push(r.json()["id"].as_str().unwrap().to_owned()),
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", r.status, r.text())),
                    Err(e) => failed.lock().unwrap().push(format!("{e:?}")),
                }
            }
        }));
    }
    for i in 1..=5 {
        let log = tokio::task::block_in_place(|| hangup(&served, i));
        assert!(!log.contains("Reload refused"), "{log}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "admin changes failed during reloads: {failed:?}"
    );
    assert_eq!(
        reader.await.unwrap(),
        LEN,
        "the streamed answer arrived whole"
    );

    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let served = start(&s);
    let (status, list) = admin(&served, "GET", "/tokens?size=10000", Value::Null).await;
    assert_eq!(status, 200);
    let listed: std::collections::HashSet<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 10, "{} changes", acknowledged.len());
    for id in &acknowledged {
        assert!(listed.contains(id.as_str()), "acknowledged {id} lost");
    }
}

/// rel25: a reload built a new backend pool that knew nothing of the nodes, so right after it
/// the rotation sent requests to a node marked down again, each waiting up to
/// `backend.connect_timeout` (until one of them marked it down again). A node the new
/// configuration keeps with the same settings (scheme, address, TLS, `connect_timeout`) keeps
/// its cool-down and its failure count; one whose settings changed starts fresh. The first
/// node takes connections and never answers the TLS handshake (each connect counted); the
/// second serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_a_node_marked_down_down() {
    let dead = support::faults::FaultServer::hang();
    let good = support::faults::FaultServer::answer(200, "application/json", "{\"ok\":true}");
    let dead_url = dead.url().replacen("http://", "https://", 1);
    let s = setup();
    let write = |connect_timeout: &str| {
        let backend = format!(
            "urls = [{dead_url:?}, {:?}]\nconnect_timeout = {connect_timeout:?}\n\
             request_timeout = \"20s\"\nunhealthy_cooldown = \"1h\"",
            good.url()
        );
        let text = format!(
            "[backend]\n{backend}\n[store]\npath = {:?}\n[admin]\nkey = {ADMIN_KEY:?}\n\
             [audit]\noutput = \"off\"\n",
            s.store.display().to_string(),
        );
        std::fs::write(&s.config, text).unwrap();
    };
    write("1s");
    let served = start(&s);
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "ops", "permissions": ["all"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let auth = bearer(v["secret"].as_str().unwrap());
    let search = || async {
        let r = send(
            "GET",
            &format!("{}/logs-a/_search", served.data),
            &[("authorization", auth.as_str())],
            Bytes::new(),
        )
        .await
        .expect("esgate answers");
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let metric = |name: String| {
        let admin = served.admin.clone();
        async move {
            let r = send("GET", &format!("{admin}/metrics"), &[], Bytes::new())
                .await
                .unwrap();
            let text = r.text();
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(&name)?
                        .strip_prefix(' ')?
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        }
    };
    let up = format!("esgate_backend_up{{node=\"{dead_url}\"}}");
    let failures = format!("esgate_backend_connect_failures_total{{node=\"{dead_url}\"}}");

    // The rotation reaches the dead node within two requests: given up after 1 s, marked down.
    search().await;
    search().await;
    assert_eq!(dead.accepted(), 1, "tried once");
    assert_eq!(metric(up.clone()).await, 0.0);
    // The same configuration again: the node stays down, its failure counted once.
    tokio::task::block_in_place(|| hangup(&served, 1));
    for _ in 0..4 {
        search().await;
    }
    assert_eq!(
        dead.accepted(),
        1,
        "no request tried the node after the reload"
    );
    assert_eq!(metric(up.clone()).await, 0.0, "still down");
    assert_eq!(metric(failures.clone()).await, 1.0);
    // Another connect_timeout: the node starts fresh (it may connect in 2 s) and is tried.
    write("2s");
    tokio::task::block_in_place(|| hangup(&served, 2));
    assert_eq!(metric(up).await, 1.0, "fresh");
    search().await;
    search().await;
    assert_eq!(dead.accepted(), 2, "tried again");
    assert_eq!(
        metric(failures).await,
        1.0,
        "its first failure under these settings"
    );
}
