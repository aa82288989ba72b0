//! A recording fake Elasticsearch on 127.0.0.1:0. It exists only because no real test backend
//! implements some APIs esgate forwards (async search, SQL, ES|QL: see
//! `../shared/docs/backend.md`): tests that need those script its answers and then check
//! exactly what esgate sent. Every request is recorded (method, raw path, raw query, headers,
//! body); each is answered by the scripted answer whose method and path prefix match (the
//! longest prefix wins; the latest script wins among equals), or by a 404 in Elasticsearch's
//! error shape. Every answer carries `X-Elastic-Product: Elasticsearch`.
//!
//! Invariant: it never decides anything about access (it only records and replays), runs on
//! its own thread and runtime, and stops, closing every connection, when dropped.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::local_server::LocalServer;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The raw (percent-encoded) path, without the query string.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body's trailer fields, when the request carried any.
    pub trailers: Option<HeaderMap>,
}

impl Recorded {
    /// The body parsed as JSON; panics with the body text when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "recorded body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The query parameters, percent-decoded (`+` as space), in order.
    pub fn params(&self) -> Vec<(String, String)> {
        let Some(q) = self.query.as_deref() else {
            return Vec::new();
        };
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    /// The value of one query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Answer {
    /// A JSON answer with `status`.
    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(serde_json::to_vec(&body).expect("a Value serialises")),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

struct Script {
    method: String,
    prefix: String,
    respond: Responder,
}

#[derive(Default)]
struct State {
    scripts: Vec<Script>,
    requests: Vec<Recorded>,
}

/// A running recording backend; dropping it stops the server.
pub struct Recording {
    url: String,
    state: Arc<Mutex<State>>,
    _server: LocalServer,
}

// === impl Recording ===

impl Recording {
    /// Starts an empty fake: every request gets a 404 until answers are scripted.
    pub fn start() -> Recording {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let server = LocalServer::start(move |listener| accept_loop(listener, shared));
        Recording {
            url: server.url(),
            state,
            _server: server,
        }
    }

    /// Base URL without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers `method` (`"*"` for any) on paths starting with `prefix` (or, for a `prefix`
    /// starting with `*`, ending with the rest) with a fixed answer.
    pub fn script(&self, method: &str, prefix: &str, answer: Answer) {
        self.script_fn(method, prefix, move |_| answer.clone());
    }

    /// Answers `method` (`"*"` for any) on paths starting with `prefix` with a JSON body.
    pub fn script_json(&self, method: &str, prefix: &str, status: u16, body: Value) {
        self.script(method, prefix, Answer::json(status, body));
    }

    /// Answers with a function of the request.
    pub fn script_fn(
        &self,
        method: &str,
        prefix: &str,
        respond: impl Fn(&Recorded) -> Answer + Send + Sync + 'static,
    ) {
        self.lock().scripts.push(Script {
            method: method.to_owned(),
            prefix: prefix.to_owned(),
            respond: Arc::new(respond),
        });
    }

    /// Scripts `GET /_resolve/index/{expr}` (what esgate asks before it forwards): each
    /// comma-separated part of the expression resolves to the `indices` it matches (`*`
    /// wildcards), as concrete indices.
    pub fn resolve_indices(&self, indices: &[&str]) {
        let known: Vec<String> = indices.iter().map(|s| s.to_string()).collect();
        self.script_fn("GET", "/_resolve/index/", move |r| {
            let expr = decode(r.path.trim_start_matches("/_resolve/index/"));
            let mut found: Vec<&String> = known
                .iter()
                .filter(|name| expr.split(',').any(|part| glob(part, name)))
                .collect();
            found.sort();
            found.dedup();
            let indices: Vec<Value> = found
                .into_iter()
                .map(|n| json!({"name": n, "attributes": ["open"]}))
                .collect();
            Answer::json(
                200,
                json!({"indices": indices, "aliases": [], "data_streams": []}),
            )
        });
    }

    /// Scripts `GET /{expr}/_field_caps` for any expression (what esgate asks about a
    /// histogram's field before it forwards one its own `hard_bounds` do not bound,
    /// `upstream::field_types`): each field of `types` of its type in every index of `indices`.
    pub fn field_types(&self, indices: &[&str], types: &[(&str, &str)]) {
        let fields: serde_json::Map<String, Value> = types
            .iter()
            .map(|(field, ty)| (field.to_string(), json!({ *ty: {"type": ty} })))
            .collect();
        let answer = json!({"indices": indices, "fields": fields});
        self.script_json("GET", "*/_field_caps", 200, answer);
    }

    /// Answers `GET /` with an Elasticsearch banner of `version` (what esgate reads the
    /// dialect from before it forwards a point-in-time route); other GETs not scripted 404.
    pub fn banner(&self, version: &str) {
        let banner = json!({"version": {"number": version}, "tagline": "You Know, for Search"});
        self.script_fn("GET", "/", move |r| {
            let (status, body) = if r.path == "/" {
                (200, banner.clone())
            } else {
                (404, json!({"error": "nothing scripted", "status": 404}))
            };
            Answer::json(status, body)
        });
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests with `method` (`"*"` for any) whose path starts with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| (method == "*" || r.method == method) && r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests (scripts stay).
    pub fn clear(&self) {
        self.lock().requests.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let state = Arc::clone(&state);
                async move {
                    let (parts, body) = req.into_parts();
                    let (body, trailers) = match body.collect().await {
                        Ok(c) => {
                            let trailers = c.trailers().cloned();
                            (c.to_bytes(), trailers)
                        }
                        Err(_) => (Bytes::new(), None),
                    };
                    let recorded = Recorded {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_owned(),
                        query: parts.uri.query().map(str::to_owned),
                        headers: parts.headers,
                        body,
                        trailers,
                    };
                    let respond = {
                        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                        st.requests.push(recorded.clone());
                        pick(&st.scripts, &recorded)
                    };
                    let answer = match respond {
                        Some(f) => f(&recorded),
                        None => not_found(&recorded),
                    };
                    Ok::<_, Infallible>(to_response(answer))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The longest matching prefix; the latest script among equally long ones. A prefix starting
/// with `*` matches the paths that end with the rest (`*/_field_caps`).
fn pick(scripts: &[Script], r: &Recorded) -> Option<Responder> {
    let matches = |prefix: &str| match prefix.strip_prefix('*') {
        Some(suffix) => r.path.ends_with(suffix),
        None => r.path.starts_with(prefix),
    };
    scripts
        .iter()
        .enumerate()
        .filter(|(_, s)| (s.method == "*" || s.method == r.method) && matches(&s.prefix))
        .max_by_key(|(i, s)| (s.prefix.len(), *i))
        .map(|(_, s)| Arc::clone(&s.respond))
}

fn not_found(r: &Recorded) -> Answer {
    Answer::json(
        404,
        json!({
            "error": {
                "root_cause": [],
                "type": "resource_not_found_exception",
                "reason": format!("recording fake: nothing scripted for {} {}", r.method, r.path),
            },
            "status": 404
        }),
    )
}

fn to_response(answer: Answer) -> http::Response<Full<Bytes>> {
    let mut b = http::Response::builder()
        .status(answer.status)
        .header("x-elastic-product", "Elasticsearch");
    for (k, v) in &answer.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(answer.body))
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::from_static(b"{}"))))
}

/// Percent-decoding for recorded paths and queries (`+` as space); invalid escapes stay.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `*` wildcard matching (no other metacharacters).
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}
