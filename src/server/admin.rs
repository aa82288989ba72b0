//! The admin listener's HTTP side: probes and metrics without a key (`GET` or `HEAD`), the admin
//! web page's static files under `/ui/` without a key (`server::ui`: the page sends the key the
//! user types with each API call), everything else behind the admin key (Bearer, compared in constant time), then `admin::handle`.
//!
//! The key is checked before the failure limiter, so the correct key is never refused because
//! of other clients' failures; probes never count as failures. `admin::handle` runs in a task of
//! its own: a client that hangs up cannot stop a change between the store and the audit log.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::admin::{AdminRequest, AdminResponse};
use crate::app::App;
use crate::body::{full, read_capped, Body, ReadError};
use crate::proxy::ConnInfo;

/// The admin listener's `WWW-Authenticate` challenge. Only this listener sends it, so a client
/// that gets a 401 without it knows it reached something else (the CLI says so).
pub const ADMIN_CHALLENGE: &str = "Bearer realm=\"esgate-admin\"";

/// Admin request bodies are small JSON objects.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

pub async fn handle(app: Arc<App>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if super::ui::is_ui_path(&path) {
        return super::ui::serve(req.method(), &path);
    }
    let probe = req.method() == Method::GET || req.method() == Method::HEAD;
    match (probe, path.as_str()) {
        (true, "/health") => return json_response(200, Some(json!({"status": "ok"}))),
        (true, "/ready") => {
            // The cluster store away: authentication still works from the last good copy, but
            // admin writes do not, and the copy may be getting stale.
            if let Some(reason) = app.store.cluster().and_then(|c| c.down_reason()) {
                return json_response(
                    503,
                    Some(crate::es::error::value(
                        503,
                        "not_ready",
                        &format!("the token store cluster is unavailable ({reason}); serving authentication from the last good copy"),
                    )),
                );
            }
            // `audit.on_failure = "closed"` refusing every data request: a load balancer should
            // send the traffic elsewhere until the audit log can be written again.
            if app.audit.refusing() {
                return json_response(
                    503,
                    Some(crate::es::error::value(
                        503,
                        "not_ready",
                        crate::audit::UNWRITABLE,
                    )),
                );
            }
            let upstream = Arc::clone(&app.upstream);
            let auth = app
                .config
                .backend
                .authorization
                .as_ref()
                .map(|a| a.0.clone());
            let probe = async move { crate::upstream::ready(&upstream, auth.as_ref()).await };
            return match app.readiness.check(probe).await {
                Ok(()) => json_response(200, Some(json!({"status": "ready"}))),
                Err(reason) => json_response(
                    503,
                    Some(crate::es::error::value(503, "not_ready", &reason)),
                ),
            };
        }
        (true, "/metrics") => {
            let text = scrape(&app);
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
    let credentials = req.headers().get_all(header::AUTHORIZATION).iter().count();
    if credentials != 1 || !presented.is_some_and(|p| key.matches(p)) {
        let failure = match (credentials, presented) {
            (0, _) => "no admin key",
            (1, Some(_)) => "wrong admin key",
            (1, None) => "not a Bearer credential",
            _ => "more than one Authorization header",
        };
        if let Err(retry) = app.admin_limiter.check(ip, started) {
            audit_failure(&app, ip, &req, 429, failure);
            let mut r = json_response(
                429,
                Some(crate::es::error::value(
                    429,
                    "security_exception",
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
        audit_failure(&app, ip, &req, 401, failure);
        let mut r = json_response(
            401,
            Some(crate::es::error::value(
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
    // As on the data listener, a body must arrive whole within `header_timeout`: a request in
    // flight is never idle to the watchdog, so a body trickled byte by byte would otherwise hold
    // the request and its connection forever.
    let read = tokio::time::timeout(
        app.config.limits.header_timeout,
        read_capped(body, MAX_ADMIN_BODY),
    );
    let body = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return body_refused(&parts, Some(e)),
        Err(_) => return body_refused(&parts, None),
    };
    if parts.uri.path() == EXPLAIN {
        return explain(&app, &parts.method, &body).await;
    }
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
        Ok(AdminResponse { status, body }) => {
            let mut r = json_response(status, body);
            // A 503 is a passing state (the cluster store, the audit log): nothing was changed.
            if status == 503 {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "Admin request task failed");
            json_response(
                500,
                Some(crate::es::error::value(
                    500,
                    "store_exception",
                    "the admin request failed",
                )),
            )
        }
    }
}

/// One audit record of a failed admin authentication (attack19a; Elasticsearch's security audit
/// `authentication_failed`): the client address, method, path (without the query, link ids cut
/// to their reference, cut to 512 characters) and why, never the presented credential nor a
/// part of it. Every failure is
/// recorded, the ones the failure limiter refuses (429) too; like a data request's record it is
/// never waited for, and dropped and counted (`esgate_audit_dropped_total`) while the output
/// stalls, so a flood of wrong keys cannot hold the admin listener; a refusal's record uses half
/// the batch at most and never closes a gateway with `audit.on_failure = "closed"` (attack20d).
fn audit_failure(app: &App, ip: std::net::IpAddr, req: &Request<Incoming>, status: u16, why: &str) {
    // A share link's id (`/links/{id}`) opens its URL: only its reference is recorded.
    let path = crate::kibana::redact_link_ids(req.uri().path());
    let path: String = path.chars().take(512).collect();
    app.audit.write_refused(json!({
        "type": "admin_auth",
        "action": "authentication_failed",
        "client": ip.to_string(),
        "method": crate::audit::method_name(req.method()),
        "path": path,
        "status": status,
        "reason": why,
    }));
}

/// `GET /ready`'s backend probe, shared by every caller (attack19a: a probe per call made the
/// unauthenticated `/ready` an amplifier, a flood of probes a flood of `GET /` on the cluster):
/// one probe in flight at a time, its answer (ready or not) reused for [`Readiness::FRESH`]
/// after it came, every caller meanwhile answered from it. Honest within that: a backend that
/// goes down is reported at most `FRESH` (plus one probe's time) later. The probe runs in a
/// task of its own, holding the lock, so a caller that hangs up does not cancel it (which
/// would let the next caller start another).
#[derive(Default)]
pub struct Readiness {
    last: Arc<tokio::sync::Mutex<Option<Probed>>>,
}

/// A readiness probe's answer and when it came.
type Probed = (tokio::time::Instant, Result<(), String>);

impl Readiness {
    /// How long a probe's answer is reused.
    pub const FRESH: std::time::Duration = std::time::Duration::from_secs(1);

    /// The latest probe's answer if it is fresh, else `probe`'s (run unless another caller's
    /// probe is under way, whose answer is then shared).
    pub async fn check(
        &self,
        probe: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) -> Result<(), String> {
        let mut last = Arc::clone(&self.last).lock_owned().await;
        if let Some((at, answer)) = &*last {
            if at.elapsed() < Self::FRESH {
                return answer.clone();
            }
        }
        let probing = tokio::spawn(async move {
            let answer = probe.await;
            *last = Some((tokio::time::Instant::now(), answer.clone()));
            answer
        });
        probing
            .await
            .unwrap_or_else(|_| Err("the readiness probe failed".to_owned()))
    }
}

/// The answer to an admin request whose body could not be read (`None`: not whole within
/// `header_timeout`). Its body is left unread, so an HTTP/1 connection is closed after it.
fn body_refused(parts: &http::request::Parts, error: Option<ReadError>) -> Response<Body> {
    let (status, kind, reason) = match error {
        Some(ReadError::TooLarge) => (
            413,
            "content_too_long_exception",
            "admin request body too large",
        ),
        None | Some(ReadError::Stalled) => (
            408,
            "request_timeout_exception",
            "the admin request body did not arrive in time",
        ),
        Some(ReadError::Broken | ReadError::Busy) => (
            400,
            "parsing_exception",
            "the admin request body could not be read",
        ),
    };
    let mut r = json_response(status, Some(crate::es::error::value(status, kind, reason)));
    if parts.version <= http::Version::HTTP_11 {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The metrics exposition, with the state gauges read now.
fn scrape(app: &App) -> String {
    let snapshot = app.store.snapshot();
    let now = crate::time::now();
    let week = now.saturating_add(7 * 24 * 3600);
    let expiring = snapshot
        .tokens()
        .filter(|t| t.expires_at.is_some_and(|e| e > now && e <= week))
        .count();
    app.metrics.render(&crate::metrics::Scrape {
        nodes: &app.upstream.node_status(),
        tokens: snapshot.tokens().count(),
        tokens_expiring_7d: expiring,
        store_bytes: store_bytes(&app.config.store_path),
        audit_dropped: app.audit.dropped(),
        audit_lost: app.audit.lost(),
        audit_refusing: app.audit.refusing(),
        cluster: app.store.cluster().map(|c| cluster_state(c)),
        token_exists: &|id| snapshot.token(id).is_some(),
    })
}

/// The size of the store directory's files (not recursive).
fn store_bytes(dir: &std::path::Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum(),
    )
}

/// The admin route served here rather than in `admin::dispatch`: it needs the whole `App` (the
/// data path's decision, index resolution through the upstream).
const EXPLAIN: &str = "/explain";

/// `POST /explain`: the decision and the upstream request for a token's request
/// (`proxy::explain`). Nothing changes, so nothing is audited.
async fn explain(app: &Arc<App>, method: &Method, body: &[u8]) -> Response<Body> {
    use crate::admin::AdminError;
    use crate::proxy::explain::{ExplainError, ExplainRequest};
    let answer = |e: AdminError| {
        let r = e.into_response();
        json_response(r.status, r.body)
    };
    if method != Method::POST {
        return answer(AdminError::method_not_allowed());
    }
    let request = crate::admin::parse_object(body, ExplainRequest::FIELDS).and_then(|map| {
        serde_json::from_value::<ExplainRequest>(Value::Object(map)).map_err(|_| {
            AdminError::bad_request(
                "explain request: expected token, method and path (strings), headers (an object \
                 of strings), body (JSON, or a string) and client_ip (an IP address)",
            )
        })
    });
    let request = match request {
        Ok(r) => r,
        Err(e) => return answer(e),
    };
    match crate::proxy::explain::explain(app, request).await {
        Ok(decision) => json_response(200, Some(decision)),
        Err(ExplainError::BadInput(reason)) => answer(AdminError::bad_request(reason)),
        Err(ExplainError::UnknownToken(id)) => {
            answer(AdminError::not_found(&format!("token '{id}'")))
        }
    }
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

/// The cluster store's counters for `/metrics`.
fn cluster_state(c: &crate::store::cluster::ClusterStore) -> crate::metrics::ClusterStore {
    use std::sync::atomic::Ordering::Relaxed;
    let st = &c.stats;
    crate::metrics::ClusterStore {
        down: c.down_reason(),
        polls: st.polls.load(Relaxed),
        poll_failures: st.poll_failures.load(Relaxed),
        records_applied: st.records_applied.load(Relaxed),
        records_skipped: st.records_skipped.load(Relaxed),
        conflicts: st.conflicts.load(Relaxed),
        reloads: st.reloads.load(Relaxed),
        records_recovered: st.records_recovered.load(Relaxed),
        tombstones_purged: st.tombstones_purged.load(Relaxed),
        sequence: c.positions().0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn counted(
        probes: &Arc<AtomicUsize>,
        answer: Result<(), String>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let probes = Arc::clone(probes);
        async move {
            probes.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            answer
        }
    }

    /// attack19a (L): callers at once share one probe, callers within `FRESH` of its answer
    /// reuse it, and one later probes again (a backend gone down is seen); a caller that hangs
    /// up mid-probe neither cancels it nor lets another start.
    #[tokio::test]
    async fn one_probe_serves_every_caller_until_its_answer_is_a_second_old() {
        let readiness = Arc::new(Readiness::default());
        let probes = Arc::new(AtomicUsize::new(0));
        // A caller that gives up at once, while its probe runs.
        let gone = tokio::time::timeout(
            Duration::from_millis(10),
            readiness.check(counted(&probes, Ok(()))),
        )
        .await;
        assert!(gone.is_err());
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let r = Arc::clone(&readiness);
                let p = counted(&probes, Err("down".into()));
                tokio::spawn(async move { r.check(p).await })
            })
            .collect();
        for c in callers {
            assert_eq!(c.await.unwrap(), Ok(()), "the first probe's answer");
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fresh = readiness.check(counted(&probes, Err("down".into()))).await;
        assert_eq!(fresh, Ok(()), "reused within FRESH");
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let later = readiness.check(counted(&probes, Err("down".into()))).await;
        assert_eq!(later, Err("down".into()), "probed again after FRESH");
        assert_eq!(probes.load(Ordering::SeqCst), 2);
    }
}
