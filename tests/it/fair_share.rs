//! rel18: one token cannot take a node's every backend connection. A token's requests hold at
//! most `backend.max_connections_per_token` of a node's connections (half of
//! `backend.max_connections_per_node` by default): one more waits `connect_timeout` for one of
//! its own to come back, then gets a 429 (`backend_share`), never reaching the node, while
//! other tokens' requests go out on the rest. A node's refusals are logged once per ten
//! seconds with their count, not a line each. Against `faults::ConnectionProbe` (`/late`
//! answers after ten seconds, so a held request holds its backend connection).

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::esgate::Esgate;
use support::eventually;
use support::faults::ConnectionProbe;
use support::http::{bearer, send};

/// A request of `secret`'s written on a connection of its own, left waiting for its answer.
async fn hold(data: std::net::SocketAddr, secret: &str, path: &str) -> TcpStream {
    let mut client = TcpStream::connect(data).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {secret}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    client
}

/// `max_connections_per_node = 4` and the default share (2): a token holding two slow
/// requests gets a 429 for its third after the wait (the node saw no third connection of its),
/// while another token's requests go out at once on the connections left; counted in
/// `esgate_rejected_total{reason="backend_share"}`. Before, the first token took all four and
/// the other's request waited, then got a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_saturating_gets_its_share_and_another_tokens_requests_go_out() {
    let probe = ConnectionProbe::start();
    let gw = Esgate::start_full(
        &[probe.url()],
        "workers = 2",
        "max_connections_per_node = 4\nconnect_timeout = \"1s\"",
        "",
    )
    .await;
    let greedy = gw.all_token().await;
    let other = gw
        .token(json!({"name": "other", "permissions": ["all"]}))
        .await
        .1;
    let _held = [
        hold(gw.data_addr, &greedy, "/late-1").await,
        hold(gw.data_addr, &greedy, "/late-2").await,
    ];
    assert!(eventually(Duration::from_secs(3), || probe.accepted() == 2).await);

    let started = Instant::now();
    let r = gw.get("/late-3", &greedy).await;
    let waited = started.elapsed();
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    assert_eq!(r.headers["retry-after"], "1");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], 429);
    assert!(
        v["error"]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("backend.max_connections_per_token")),
        "{v}"
    );
    assert_eq!(
        probe.accepted(),
        2,
        "the node saw no third connection of the token's"
    );

    // The other token: two requests held and one answered, none waiting.
    let _others = [
        hold(gw.data_addr, &other, "/late-4").await,
        hold(gw.data_addr, &other, "/late-5").await,
    ];
    assert!(eventually(Duration::from_secs(3), || probe.accepted() == 4).await);

    let m = send("GET", &gw.admin_url("/metrics"), &[], "")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains(r#"esgate_rejected_total{reason="backend_share"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"esgate_rejected_total{reason="backend_connections"} 0"#),
        "{text}"
    );
}

/// `max_connections_per_node = 1`: one held request, then twelve of another token's, each
/// refused (503) after the wait. The log has one line for them (the first, with its count),
/// not one per refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_do_not_flood_the_log() {
    use support::esgate::ADMIN_KEY;
    let probe = ConnectionProbe::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("esgate.toml");
    std::fs::write(
        &config,
        format!(
            "[backend]\nurls = [{:?}]\nmax_connections_per_node = 1\nconnect_timeout = \"300ms\"\n",
            probe.url()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let served = support::binary::serve(&["--config", &config, "--store"], |cmd| {
        cmd.arg(dir.path().join("store"))
            .env("ESGATE_ADMIN_KEY", ADMIN_KEY);
    });
    let auth = bearer(ADMIN_KEY);
    let mut secrets = Vec::new();
    for name in ["holder", "others"] {
        let created = send(
            "POST",
            &format!("{}/tokens", served.admin),
            &[("authorization", &auth)],
            serde_json::to_vec(&json!({"name": name, "permissions": ["all"]})).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(created.status, 201, "{}", created.text());
        secrets.push(created.json()["secret"].as_str().unwrap().to_owned());
    }
    let data: std::net::SocketAddr = served.data.trim_start_matches("http://").parse().unwrap();
    let _held = hold(data, &secrets[0], "/late").await;
    assert!(eventually(Duration::from_secs(3), || probe.accepted() == 1).await);
    let refused = (0..12).map(|i| {
        let url = format!("{}/quick-{i}", served.data);
        let auth = bearer(&secrets[1]);
        tokio::spawn(async move {
            send("GET", &url, &[("authorization", &auth)], Vec::new())
                .await
                .unwrap()
                .status
        })
    });
    for r in refused.collect::<Vec<_>>() {
        assert_eq!(r.await.unwrap(), 503);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = served.log.lock().unwrap().clone();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Requests refused") || l.contains("Backend failure"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("refused=1"), "{}", lines[0]);
    assert!(lines[0].contains(probe.url()), "{}", lines[0]);
}
