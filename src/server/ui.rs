//! The admin web page (`/ui/`, issue #14): static HTML, CSS and JavaScript embedded in the
//! binary, served on the admin listener without the admin key.
//!
//! The page is only a client of the admin API: every call it makes carries the admin key the
//! user typed (kept in the browser's `sessionStorage`), so serving it needs no key and no logic
//! beyond the files. Invariants: only the files listed in `asset` are served (anything else
//! under `/ui/` is 404); every answer carries [`SECURITY_HEADERS`] (a CSP without
//! `unsafe-inline`/`unsafe-eval`, no framing, no referrer, no sniffing, no caching).

use http::{header, HeaderName, HeaderValue, Method, Response, StatusCode};

use crate::body::{empty, full, Body};

/// The page's files, embedded at build time (no build step, no external assets).
const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_CSS: &str = include_str!("ui/app.css");
const APP_JS: &str = include_str!("ui/app.js");
const FAVICON_SVG: &str = include_str!("ui/favicon.svg");

/// The Content-Security-Policy of every `/ui/` answer: scripts, styles and calls from this
/// origin only; no inline script or style, no `eval`, no plugins, no frames, no form posts.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers on every `/ui/` answer, found or not.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    // The files are small and change with the binary: never serve a stale page after an upgrade.
    ("cache-control", "no-store"),
];

/// Whether `path` belongs to the page (the admin listener answers it without the key).
pub fn is_ui_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The embedded file at `path` and its content type.
fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/ui/" | "/ui/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/ui/app.css" => Some(("text/css; charset=utf-8", APP_CSS)),
        "/ui/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "/ui/favicon.svg" => Some(("image/svg+xml", FAVICON_SVG)),
        _ => None,
    }
}

/// Answers a request for a `/ui` path (see [`is_ui_path`]): the file for `GET` and `HEAD`,
/// a redirect from `/ui` to `/ui/`, 404 for an unknown file, 405 for other methods.
pub fn serve(method: &Method, path: &str) -> Response<Body> {
    let get = method == Method::GET || method == Method::HEAD;
    let mut r = if !get {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else if path == "/ui" {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
        r
    } else if let Some((content_type, content)) = asset(path) {
        let mut r = Response::new(full(content));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    } else {
        text(StatusCode::NOT_FOUND, "not found\n")
    };
    for (name, value) in SECURITY_HEADERS {
        r.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests;
