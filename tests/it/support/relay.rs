//! A recording relay in front of a real backend: esgate talks to the relay, the relay passes
//! every request on to the backend unchanged (method, raw path and query, body, `content-type`
//! and `accept`) and returns the backend's status, `content-type` and body. It remembers each
//! request esgate sent and the status the backend answered, so a test can tell esgate's own
//! refusal (nothing but esgate's own lookups reached the backend) from the backend's refusal of
//! a request esgate forwarded (issue #15 item 10).
//!
//! esgate's own lookups are `GET /` (the dialect and readiness),
//! `GET /_resolve/index/{expr}?expand_wildcards=open&ignore_unavailable=true` (index resolution
//! before a forward) and `GET /{expr}/_field_caps?fields=...&include_unmapped=true&...` (a
//! histogram's field types, `upstream::field_types`); everything else it sends is a forwarded
//! request.
//!
//! Invariant: the relay never decides anything (it only passes on and records); it stops with
//! its `Recording` when dropped.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::http::send_blocking;
use super::recording::{Answer, Recorded, Recording};

/// One request the relay passed on, with the backend's answer status.
#[derive(Clone, Debug)]
pub struct Passed {
    pub method: String,
    /// The raw path and query, as esgate sent them.
    pub target: String,
    /// The body esgate sent.
    pub body: bytes::Bytes,
    pub status: u16,
    /// The `X-Opaque-Id` esgate sent, if any.
    pub opaque_id: Option<String>,
}

impl Passed {
    /// Whether this is one of esgate's own lookups rather than a forwarded client request:
    /// exactly the forms `upstream::dialect`/`upstream::ready`, `upstream::resolve` and
    /// `upstream::field_types` send (a client's `GET /`, `_resolve/index` or `_field_caps`
    /// with other parameters counts as forwarded).
    pub fn is_lookup(&self) -> bool {
        self.method == "GET"
            && self.body.is_empty()
            && (self.target == "/"
                || (self.target.starts_with("/_resolve/index/")
                    && self
                        .target
                        .ends_with("?expand_wildcards=open&ignore_unavailable=true"))
                || self.is_field_types_lookup())
    }

    /// Whether this is esgate's own `_field_caps` lookup of a histogram's field types.
    pub fn is_field_types_lookup(&self) -> bool {
        self.method == "GET"
            && self.body.is_empty()
            && self.target.contains("/_field_caps?fields=")
            && self.target.ends_with(
                "&include_unmapped=true&ignore_unavailable=true&allow_no_indices=true\
                 &expand_wildcards=open",
            )
    }
}

/// `r`'s raw path and query.
fn target(r: &Recorded) -> String {
    match &r.query {
        Some(q) => format!("{}?{q}", r.path),
        None => r.path.clone(),
    }
}

/// `r` passed on to the backend at `base` (no trailing slash) unchanged (method, raw path and
/// query, body, `content-type` and `accept`), and the backend's status, `content-type` and body
/// (a 599 naming the error when it cannot be reached). For tests' own scripted relays too.
pub fn pass_on(base: &str, r: &Recorded) -> Answer {
    let headers: Vec<(&str, &str)> = ["content-type", "accept"]
        .into_iter()
        .filter_map(|k| r.header(k).map(|v| (k, v)))
        .collect();
    let url = format!("{base}{}", target(r));
    match send_blocking(&r.method, &url, &headers, r.body.clone()) {
        Ok(reply) => Answer {
            status: reply.status.as_u16(),
            headers: reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(|v| vec![("content-type".to_owned(), v.to_owned())])
                .unwrap_or_default(),
            body: reply.body,
        },
        Err(e) => Answer::json(599, json!({"relay": format!("{e:?}")})),
    }
}

/// A running relay; dropping it stops it.
pub struct Relay {
    recording: Recording,
    passed: Arc<Mutex<Vec<Passed>>>,
}

impl Relay {
    /// Starts a relay to `backend_url` (no trailing slash).
    pub fn to(backend_url: &str) -> Relay {
        Relay::start(backend_url, false)
    }

    /// [`Relay::to`] that also echoes the request's `X-Opaque-Id` in its answer, as
    /// Elasticsearch does ("surfaces the X-Opaque-Id value in the response of any request that
    /// includes the header"; osmem and noida do not).
    pub fn echoing_opaque_id(backend_url: &str) -> Relay {
        Relay::start(backend_url, true)
    }

    fn start(backend_url: &str, echo_opaque_id: bool) -> Relay {
        let recording = Recording::start();
        let passed: Arc<Mutex<Vec<Passed>>> = Arc::default();
        let log = Arc::clone(&passed);
        let base = backend_url.to_owned();
        recording.script_fn("*", "/", move |r| {
            let mut answer = pass_on(&base, r);
            if let Some(v) = r.header("x-opaque-id").filter(|_| echo_opaque_id) {
                answer
                    .headers
                    .push(("x-opaque-id".to_owned(), v.to_owned()));
            }
            log.lock().unwrap_or_else(|p| p.into_inner()).push(Passed {
                method: r.method.clone(),
                target: target(r),
                body: r.body.clone(),
                status: answer.status,
                opaque_id: r.header("x-opaque-id").map(str::to_owned),
            });
            answer
        });
        Relay { recording, passed }
    }

    /// The relay's base URL, to give esgate as its backend.
    pub fn url(&self) -> &str {
        self.recording.url()
    }

    /// Every request passed on since the last `take`, oldest first; forgets them.
    pub fn take(&self) -> Vec<Passed> {
        std::mem::take(&mut *self.passed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes what passed, without esgate's own lookups (`GET /`, `_resolve/index`): the
    /// requests esgate forwarded for its client.
    pub fn take_forwarded(&self) -> Vec<Passed> {
        self.take().into_iter().filter(|p| !p.is_lookup()).collect()
    }
}
