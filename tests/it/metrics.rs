//! Metrics (issue #13, "Metrics"): `/metrics` parsed by the Prometheus project's own text-format
//! parser (the Python `prometheus_client`, pinned in `tests/clients/requirements-metrics.txt`),
//! with values asserted after real requests against a real backend: per-token request counters
//! by decision and status class, capped by `[metrics] max_token_series` (the rest under
//! `token_id="other"`, requests without a token under `none`), latency histograms of the whole
//! request, esgate's own time and the backend's (buckets ending at `backend.request_timeout`),
//! bytes in and out, backend node health, tokens, tokens expiring within 7 days, store size,
//! build info, open data connections per worker.

use crate::support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::esgate::Esgate;
use support::http::{bearer, send};
use support::python::{self, ClientSet};

/// The value of the sample `name` whose labels include `labels`.
fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s["name"] == name)
        .find(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

/// `/metrics` as the Prometheus project's parser reads it: one JSON value per sample.
async fn parsed(gw: &Esgate) -> Vec<Value> {
    let url = gw.admin_url("/metrics");
    let run = tokio::task::spawn_blocking(move || {
        python::run_script(
            ClientSet::Metrics,
            "parse_metrics.py",
            &[("METRICS_URL", url.as_str())],
        )
    })
    .await
    .unwrap();
    assert!(run.success, "{run}");
    assert!(
        run.op("content_type")["value"]
            .as_str()
            .is_some_and(|ct| ct.starts_with("text/plain; version=0.0.4")),
        "{run}"
    );
    run.lines
        .iter()
        .filter(|l| l["op"] == "sample")
        .cloned()
        .collect()
}

/// Requests refused by a token's own limits are counted by reason: over its rate, over its
/// cost guards (issue #13, "rate-limited and guard-refused requests").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limit_refusals_are_counted_by_reason() {
    let backend = support::fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (_, slow) = gw
        .token(json!({"name": "slow", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}],
            "limits": {"requests_per_second": 1, "burst": 1}}))
        .await;
    let (_, small) = gw
        .token(json!({"name": "small", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}],
            "limits": {"max_size": 5}}))
        .await;
    let mut statuses = Vec::new();
    for (secret, path) in [
        (&slow, "/logs-*/_search?size=1"),
        (&slow, "/logs-*/_search?size=1"),
        (&small, "/logs-*/_search?size=100"),
        (&small, "/logs-*/_search?size=2"),
    ] {
        statuses.push(gw.get_as(&bearer(secret), path).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 429, 400, 200]);
    let samples = parsed(&gw).await;
    let rejected = |reason: &str| sample(&samples, "esgate_rejected_total", &[("reason", reason)]);
    assert_eq!(rejected("rate_limited"), Some(1.0));
    assert_eq!(rejected("guard"), Some(1.0));
    assert_eq!(rejected("concurrency"), Some(0.0));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_parses_and_counts_what_happened() {
    let backend = support::fixture::seeded_osmem();
    let gw = Esgate::start_full(
        &[backend.url()],
        "",
        "request_timeout = \"20s\"",
        "[metrics]\nmax_token_series = 1\n",
    )
    .await;
    let (a_id, a) = gw
        .token(json!({"name": "a", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}]}))
        .await;
    let (_, b) = gw
        .token(json!({"name": "b", "indices": ["logs-*"], "filters": [{"field": "tenant", "value": "b"}], "expires_in": "2d"}))
        .await;
    gw.token(json!({"name": "later", "indices": ["logs-*"], "expires_in": "30d"}))
        .await;

    let search = br#"{"query":{"match_all":{}},"size":1}"#;
    let mut bytes_in = 0;
    for (secret, path, body, status) in [
        (&a, "/logs-*/_search", &search[..], 200),
        (&a, "/logs-*/_count", &b""[..], 200),
        (&a, "/secret/_search", &b""[..], 403),
        (&b, "/logs-*/_search", &search[..], 200),
    ] {
        let auth = bearer(secret);
        let r = send(
            "POST",
            &gw.url(path),
            &[("authorization", auth.as_str())],
            Bytes::copy_from_slice(body),
        )
        .await
        .unwrap();
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text());
        if status == 200 {
            bytes_in += body.len();
        }
    }
    let r = send("GET", &gw.url("/logs-*/_search"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    // A request is counted when its answer's body is dropped, just after the client has it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = send("GET", &gw.admin_url("/metrics"), &[], Bytes::new())
            .await
            .unwrap();
        if m.text().contains("esgate_request_duration_seconds_count 5") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", m.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let samples = parsed(&gw).await;
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    let requests = "esgate_requests_total";
    let row = |token: &str, decision: &str, status: &str| {
        get(
            requests,
            &[
                ("token_id", token),
                ("decision", decision),
                ("status", status),
            ],
        )
    };
    assert_eq!(row(&a_id, "allow", "2xx"), 2.0);
    assert_eq!(row(&a_id, "deny", "4xx"), 1.0);
    // The cap is one token id: the second token counts as "other".
    assert_eq!(row("other", "allow", "2xx"), 1.0);
    assert_eq!(row("none", "deny", "4xx"), 1.0);
    let token_ids: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter(|s| s["name"] == requests)
        .filter_map(|s| s["labels"]["token_id"].as_str())
        .collect();
    assert_eq!(
        token_ids,
        [a_id.as_str(), "none", "other"].into_iter().collect()
    );
    assert_eq!(
        get(
            "esgate_decisions_total",
            &[("action", "none"), ("outcome", "auth_missing")]
        ),
        1.0
    );
    assert_eq!(get("esgate_request_duration_seconds_count", &[]), 5.0);
    // Three requests reached the backend.
    assert_eq!(get("esgate_backend_duration_seconds_count", &[]), 3.0);
    assert_eq!(get("esgate_own_duration_seconds_count", &[]), 5.0);
    // The backend histogram's last finite bucket is the backend timeout.
    let bounds: Vec<f64> = samples
        .iter()
        .filter(|s| s["name"] == "esgate_backend_duration_seconds_bucket")
        .filter_map(|s| s["labels"]["le"].as_str()?.parse::<f64>().ok())
        .filter(|b| b.is_finite())
        .collect();
    assert_eq!(bounds.last(), Some(&20.0), "{bounds:?}");
    assert_eq!(get("esgate_request_bytes_total", &[]), bytes_in as f64);
    assert!(get("esgate_response_bytes_total", &[]) > 0.0);
    assert_eq!(get("esgate_backend_up", &[("node", backend.url())]), 1.0);
    assert_eq!(get("esgate_tokens", &[]), 3.0);
    assert_eq!(get("esgate_tokens_expiring_7d", &[]), 1.0);
    assert!(get("esgate_store_bytes", &[]) > 0.0);
    assert_eq!(
        get(
            "esgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(get("esgate_audit_dropped_total", &[]), 0.0);
    assert_eq!(get("esgate_audit_lost_total", &[]), 0.0);
    assert_eq!(get("esgate_accept_errors_total", &[]), 0.0);
    for reason in [
        "rate_limited",
        "concurrency",
        "guard",
        "busy",
        "auth_failures",
    ] {
        assert_eq!(get("esgate_rejected_total", &[("reason", reason)]), 0.0);
    }
    gw.stop().await;
}

/// `esgate_data_connections{worker}` from `/metrics` (the plain text), in worker order.
async fn data_connections(gw: &Esgate) -> Vec<u64> {
    let auth = bearer(support::esgate::ADMIN_KEY);
    let r = send(
        "GET",
        &gw.admin_url("/metrics"),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    (0..)
        .map_while(|w| {
            let prefix = format!("esgate_data_connections{{worker=\"{w}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map(|n| n.trim().parse().unwrap())
        })
        .collect()
}

/// Open data connections are shown per worker thread (`listen.workers`), spread by the
/// least-loaded hand-off, and fall back to zero once the clients leave; admin connections
/// are not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_data_connections_are_shown_per_worker() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = support::backend::Backend::osmem();
    let gw = Esgate::start_full(&[backend.url()], "workers = 2", "", "").await;
    // Worker 0 is the main thread: it serves no data connection while the workers run.
    assert_eq!(data_connections(&gw).await, [0, 0, 0]);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
        // A request without credentials: answered (401), the connection kept alive.
        c.write_all(b"GET /_search HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[..], b"HTTP/1.1 401");
        clients.push(c);
    }
    assert_eq!(data_connections(&gw).await, [0, 2, 2]);
    drop(clients);
    let started = Instant::now();
    while data_connections(&gw).await != [0, 0, 0] {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "connections still counted: {:?}",
            data_connections(&gw).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
