//! The admin listener's HTTP side: probes and metrics without a key (`GET` or `HEAD`), everything
//! else behind the admin key (Bearer, compared in constant time), then `admin::handle`.
//!
//! The key is checked before the failure limiter, so the correct key is never refused because
//! of other clients' failures; probes never count as failures. `admin::handle` runs in a task of
//! its own: a client that hangs up cannot stop a change between the store and the audit log.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::admin::{AdminRequest, AdminResponse};
use crate::app::App;
use crate::body::{full, read_capped, Body};
use crate::proxy::ConnInfo;

/// The admin listener's `WWW-Authenticate` challenge. Only this listener sends it, so a client
/// that gets a 401 without it knows it reached something else (the CLI says so).
pub const ADMIN_CHALLENGE: &str = "Bearer realm=\"esgate-admin\"";

/// Admin request bodies are small JSON objects.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

pub async fn handle(app: Arc<App>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let probe = req.method() == Method::GET || req.method() == Method::HEAD;
    match (probe, path.as_str()) {
        (true, "/health") => return json_response(200, Some(json!({"status": "ok"}))),
        (true, "/ready") => {
            let auth = app.config.backend.authorization.as_ref().map(|a| &a.0);
            // The cluster store away: authentication still works from the last good copy, but
            // admin writes do not, and the copy may be getting stale.
            if let Some(reason) = app.store.cluster().and_then(|c| c.down_reason()) {
                return json_response(
                    503,
                    Some(error_json(
                        503,
                        "not_ready",
                        &format!("the token store cluster is unavailable ({reason}); serving authentication from the last good copy"),
                    )),
                );
            }
            return if crate::upstream::ready(&app.upstream, auth).await {
                json_response(200, Some(json!({"status": "ready"})))
            } else {
                json_response(
                    503,
                    Some(error_json(503, "not_ready", "no backend node answers")),
                )
            };
        }
        (true, "/metrics") => {
            let mut text = app.metrics.render(
                &app.upstream.node_status(),
                app.store.snapshot().tokens().count(),
            );
            if let Some(c) = app.store.cluster() {
                text.push_str(&store_metrics(c));
            }
            text.push_str(&format!(
                "# HELP esgate_audit_dropped_total Request audit records dropped while the audit output stalled.\n# TYPE esgate_audit_dropped_total counter\nesgate_audit_dropped_total {}\n",
                app.audit.dropped()
            ));
            let mut r = Response::new(full(text));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return r;
        }
        _ => {}
    }

    let ip = crate::policy::client_ip::canonical(conn.peer.ip());
    let started = std::time::Instant::now();
    let key = &app.admin_key;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if req.headers().get_all(header::AUTHORIZATION).iter().count() != 1
        || !presented.is_some_and(|p| key.matches(p))
    {
        if let Err(retry) = app.admin_limiter.check(ip, started) {
            let mut r = json_response(
                429,
                Some(error_json(
                    429,
                    "too_many_requests",
                    "too many failed attempts; retry later",
                )),
            );
            if let Ok(v) = HeaderValue::from_str(&retry.0.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        // A request without any credential (a monitor, a browser) is not a guess.
        if req.headers().contains_key(header::AUTHORIZATION) {
            app.admin_limiter.record_failure(ip, started);
        }
        let mut r = json_response(
            401,
            Some(error_json(
                401,
                "security_exception",
                "missing or wrong admin key",
            )),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(ADMIN_CHALLENGE),
        );
        return r;
    }

    let (parts, body) = req.into_parts();
    let body = match read_capped(body, MAX_ADMIN_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return json_response(
                413,
                Some(error_json(
                    413,
                    "content_too_long",
                    "admin request body too large",
                )),
            )
        }
    };
    // Its own task: once started, the change, its audit line and the answer are made whatever
    // the client does (it may hang up during the fsync).
    let task_app = Arc::clone(&app);
    let handled = tokio::spawn(async move {
        crate::admin::handle(
            &task_app.admin,
            AdminRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                body: &body,
                client: ip,
            },
            crate::time::now(),
        )
        .await
    });
    match handled.await {
        Ok(AdminResponse { status, body }) => json_response(status, body),
        Err(e) => {
            tracing::error!(error = %e, "Admin request task failed");
            json_response(
                500,
                Some(error_json(
                    500,
                    "store_exception",
                    "the admin request failed",
                )),
            )
        }
    }
}

fn error_json(status: u16, kind: &str, reason: &str) -> serde_json::Value {
    json!({"error": {"type": kind, "reason": reason}, "status": status})
}

fn json_response(status: u16, body: Option<serde_json::Value>) -> Response<Body> {
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap_or_default())
        .unwrap_or_default();
    let has_body = !bytes.is_empty();
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if has_body {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// The cluster store's state for `/metrics`: whether it answers (and why not), polls, failures,
/// records picked up and skipped, write conflicts.
fn store_metrics(c: &crate::store::cluster::ClusterStore) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let down = c.down_reason();
    let reason = down
        .as_deref()
        .map(|r| {
            r.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', " ")
        })
        .unwrap_or_default();
    let st = &c.stats;
    let (max_seq, _) = c.positions();
    format!(
        "# HELP esgate_store_up Whether the token store cluster answers (0: serving from the last good copy; reason says why).\n# TYPE esgate_store_up gauge\nesgate_store_up{{reason=\"{reason}\"}} {}\n\
# HELP esgate_store_polls_total Change polls of the token store cluster.\n# TYPE esgate_store_polls_total counter\nesgate_store_polls_total {}\n\
# HELP esgate_store_poll_failures_total Change polls that failed (cluster unreachable or erroring).\n# TYPE esgate_store_poll_failures_total counter\nesgate_store_poll_failures_total {}\n\
# HELP esgate_store_records_applied_total Records changed by other replicas and picked up.\n# TYPE esgate_store_records_applied_total counter\nesgate_store_records_applied_total {}\n\
# HELP esgate_store_records_skipped_total Store documents skipped as corrupt.\n# TYPE esgate_store_records_skipped_total counter\nesgate_store_records_skipped_total {}\n\
# HELP esgate_store_conflicts_total Writes that met a concurrent change through another replica (then re-planned).\n# TYPE esgate_store_conflicts_total counter\nesgate_store_conflicts_total {}\n\
# HELP esgate_store_sequence The highest store change sequence this replica has seen.\n# TYPE esgate_store_sequence gauge\nesgate_store_sequence {}\n",
        u8::from(down.is_none()),
        st.polls.load(Relaxed),
        st.poll_failures.load(Relaxed),
        st.records_applied.load(Relaxed),
        st.records_skipped.load(Relaxed),
        st.conflicts.load(Relaxed),
        max_seq,
    )
}
