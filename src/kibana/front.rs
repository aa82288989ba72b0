//! The Kibana front: the listener share-link recipients open (`[kibana] listen`).
//!
//! `GET /s/<link id>` checks the link ([`session::check_link`], the recipient's address against
//! the token's IP filter included), sets the session cookie and redirects (303) to the link's
//! Kibana path with `embed=true` (and the snapshot's `_g` time). Every other request must carry
//! that cookie; it is checked again against the store (link and token alive, same secret
//! generation), then against what viewing needs ([`routes::classify`]), then, for the
//! read-only POSTs, against cross-site use (Kibana's `kbn-xsrf`/`x-elastic-internal-origin`
//! header, a same-origin `Origin` and `Sec-Fetch-Site`) and a compressed body (415: Kibana's app
//! never sends one, `refuse_compressed`), and for a batched search
//! (`/internal/bsearch`) against its body, read whole ([`routes::check_search_batch`]: Kibana's
//! data searches only). Only then is it proxied to Kibana, with
//! only the recipient's headers on [`RELAYED_TO_KIBANA`] (never a cookie or a credential) and
//! a fresh link credential as `Authorization: Bearer`: Kibana's `http` provider forwards it to esgate's data listener,
//! which accepts it as the link's token (filters, indices, spaces) after the same store checks.
//! Kibana is one more node: at most `backend.max_connections_per_node` requests to it at once,
//! each holding its slot until its answer's body ends (503 past it), one token's requests at
//! most `backend.max_connections_per_token` of them (429 past it).
//!
//! Every answer carries anti-framing headers (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`); app pages (Kibana's embed mode) may be framed by the front's own
//! origin only. Kibana's `Set-Cookie`, and what else would set state in the recipient's
//! browser (HSTS, CORS grants, reporting endpoints), never reaches the recipient. One audit record per request
//! names the link by its reference (`kibana::link_ref`: the id is the URL's whole credential).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::path::redirect_target;
use super::routes::{self, Verdict};
use super::session::{self, Claims, SealKey};
use crate::app::App;
use crate::audit::{DataEvent, TokenText};
use crate::body::{self, Body, BoxError};
use crate::config::KibanaFront;
use crate::es::ids::continuation::IdKey;
use crate::policy::{client_ip, Denied};
use crate::proxy::ConnInfo;
use crate::store::model::Token;
use crate::store::Snapshot;
use crate::upstream::lookup;

/// The session cookie's name; `__Host-` (HTTPS only: Secure, Path=/, no Domain) when the public
/// URL is https, so no other site or subdomain can set or shadow it.
const COOKIE: &str = "esgate_link";
const HOST_COOKIE: &str = "__Host-esgate_link";

/// The recipient's request headers passed to Kibana; every other is dropped (front22: deny by
/// default, as the data listener's `proxy::upstream_request::RELAYED_FOR_ALL` since hdr21).
/// The deny-list before it let through what a proxy in front of Kibana may read as the
/// client's address or as proven identity (`X-Client-IP`, `True-Client-IP`,
/// `CF-Connecting-IP`, `X-Amzn-Oidc-*`, `X-Goog-Authenticated-User-*`,
/// `X-MS-Client-Principal*`, `X-WebAuth-User`), Envoy's `X-Envoy-*` controls, and path or
/// method overrides (`X-Original-URL`, `X-HTTP-Method-Override`) that would make such a proxy
/// serve another route than the one the front checked (attack21c): names are a proxy's own
/// settings, so no deny-list is complete.
///
/// What Kibana's browser app sends and its server reads (Kibana 8.15, from its sources, as the
/// route list): content negotiation (`Accept-Encoding` picks the precompressed bundles); the
/// body's `Content-Type` (hyper frames the body: `Content-Length` is its own); the validators
/// of bundles and assets (`If-None-Match`, `If-Modified-Since`: 304s); `User-Agent`; and what
/// core's http service adds to every `fetch`: `kbn-version` (it passes Kibana's XSRF check,
/// and Kibana refuses a request whose version is not its own), `kbn-build-number`,
/// `x-elastic-internal-origin` (internal routes are refused without it under
/// `server.restrictInternalApis`; bfetch's streaming requests send it too),
/// `elastic-api-version` (a versioned route's version), `x-kbn-context` (the execution
/// context) and, for background polls, `kbn-system-request`; `kbn-xsrf`, which the front's
/// CSRF check accepts. Exact names, no prefix: `kbn-*` or `x-kbn-*` would pass a name Kibana,
/// a plugin or a proxy reads tomorrow for something else.
///
/// Never passed: cookies and credentials (the front sends its own `Authorization`), addresses
/// (`X-Forwarded-For` is the front's), hop-by-hop and framing headers, `Origin`, `Referer` and
/// `Sec-Fetch-*` (the front checks them; no viewer route reads them, and without `Origin`
/// Kibana's CORS grants nothing), `Range`, write preconditions (`If-Match`), caching requests
/// (`Cache-Control`, `Pragma`), trace context (`traceparent`), `Content-Encoding` (Kibana's
/// app never compresses a body). Compared by `relayed_to_kibana`.
pub const RELAYED_TO_KIBANA: &[&str] = &[
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

/// Whether a recipient's request header is passed to Kibana: on [`RELAYED_TO_KIBANA`].
fn relayed_to_kibana(name: &HeaderName) -> bool {
    RELAYED_TO_KIBANA.contains(&name.as_str())
}

/// Kibana's response headers never passed to the recipient: hop-by-hop, Kibana's cookies,
/// framing rules (the front sets its own) and authentication challenges (a recipient is never
/// asked for a password); and what would set state in the recipient's browser beyond the
/// answer itself, which is the front's to decide for its origin (front22): HSTS (with
/// `includeSubDomains` it pins every subdomain of the front's host), `Alt-Svc` (where the
/// browser reaches the origin next), `Clear-Site-Data` (the front's session cookie),
/// reporting endpoints (`NEL`, `Report-To`, `Reporting-Endpoints`: the browser posts to them
/// for the origin long after the answer) and CORS grants (any `Access-Control-*`, see
/// [`kept_from_kibana`]: they would let another origin read what the recipient's session
/// sees).
const DROP_RESPONSE: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
    "set-cookie2",
    "x-frame-options",
    "www-authenticate",
    "strict-transport-security",
    "alt-svc",
    "clear-site-data",
    "nel",
    "report-to",
    "reporting-endpoints",
];

/// Whether a header of Kibana's answer reaches the recipient: not on [`DROP_RESPONSE`] and no
/// CORS header (`Access-Control-*`: the front is no API for other origins).
fn kept_from_kibana(name: &HeaderName) -> bool {
    let name = name.as_str();
    !DROP_RESPONSE.contains(&name) && !name.starts_with("access-control-")
}

/// Removes from Kibana's answer every header [`kept_from_kibana`] does not keep.
fn drop_response_headers(headers: &mut HeaderMap) {
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|n| !kept_from_kibana(n))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
}

/// Makes an answer of the link's own (not a static file, [`Verdict::Asset`]) private
/// to shared caches (front23). Kibana marks some such answers `public` (the maps app's vector
/// tiles: `public, max-age=3600`): a cache in front of the front, keyed by URL and blind to the
/// session cookie, would hand one link's answer to another link's recipient asking the same
/// URL. `public` and `s-maxage` are removed and `private` added (the recipient's browser still
/// caches as Kibana says); an answer without `Cache-Control` gets `private` (no heuristic
/// caching either). Left as is: an answer already `private` (without field names, which would
/// leave the rest shareable) or `no-store`, and not `public`.
fn keep_private(headers: &mut HeaderMap) {
    let directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect();
    let named = |d: &str, name: &str| {
        d.split('=')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
    };
    let private = directives
        .iter()
        .any(|d| d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store"));
    let shared = directives
        .iter()
        .any(|d| named(d, "public") || named(d, "s-maxage"));
    if private && !shared {
        return;
    }
    let mut kept: Vec<String> = directives
        .into_iter()
        .filter(|d| !named(d, "public") && !named(d, "s-maxage"))
        .collect();
    if !private {
        kept.insert(0, "private".to_owned());
    }
    let value = HeaderValue::from_str(&kept.join(", "))
        .unwrap_or_else(|_| HeaderValue::from_static("private"));
    headers.insert(header::CACHE_CONTROL, value);
}

/// The front's state: Kibana's address, the HTTP client, the keys.
pub struct Front {
    kibana: Uri,
    secure: bool,
    /// `scheme://host[:port]` of the public URL, for the `Origin` check.
    public_origin: String,
    client: Client<Bounded<HttpsConnector<HttpConnector<lookup::Shared>>>, Body>,
    /// Requests to Kibana under way (`backend.max_connections_per_node`, Kibana being one more
    /// node): each holds a connection until its answer's body ends. Attack 19a: unbounded, one
    /// link holder's HTTP/2 streams (100 per connection) opened a Kibana connection each.
    slots: Arc<Semaphore>,
    /// How long a request waits for a slot (`backend.connect_timeout`) before its 503.
    slot_wait: Duration,
    /// The slots each token's requests hold (`backend.max_connections_per_token`, as on a
    /// node): one link holder cannot take them all (attack19a).
    shares: Arc<Shares>,
    cookie_key: SealKey,
    credential_key: SealKey,
}

/// A connector whose connects (TCP, and the TLS handshake over it) end within `limit`
/// together, else fail ("connecting to Kibana timed out").
#[derive(Clone)]
struct Bounded<C> {
    inner: C,
    limit: Duration,
}

impl<C> tower_service::Service<Uri> for Bounded<C>
where
    C: tower_service::Service<Uri>,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err("connecting to Kibana timed out".into()),
            }
        })
    }
}

impl Front {
    /// `max_connections`: Kibana connections at once, busy or idle (`backend.
    /// max_connections_per_node`), of which one token's requests hold at most `max_per_token`
    /// (`backend.max_connections_per_token`); `slot_wait`: how long a request waits for one.
    pub fn new(
        config: &KibanaFront,
        tls: Arc<rustls::ClientConfig>,
        id_key: &IdKey,
        max_connections: usize,
        max_per_token: usize,
        slot_wait: Duration,
    ) -> Front {
        // Kibana's name looked up one at a time (`upstream::lookup`, rel23: hyper-util's
        // resolver looked it up for every connect, each lookup holding a thread until the
        // resolver answered, however long after its connect gave up).
        let host = config.url.host().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let mut http = HttpConnector::new_with_resolver(lookup::Shared(Arc::new(
            lookup::Lookup::new(host, 0),
        )));
        http.enforce_http(false);
        http.set_nodelay(true);
        // Kibana is one more node: its TCP connect within `backend.connect_timeout` (rel22: a
        // Kibana whose SYNs go unanswered held each request, and its slot, for the whole
        // `request_timeout`, then a 504), and the TLS handshake with it too, both together
        // (rel23: a Kibana that took the connection and never answered the handshake held them
        // for `request_timeout`), as a node's connect is.
        http.set_connect_timeout(Some(slot_wait));
        let https = Bounded {
            inner: hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*tls).clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
            limit: slot_wait,
        };
        // Kibana's answer heads capped as a node's (rel24: hyper's default buffer, about
        // 400 KB, let any head under it through), and its answers' chunks cut from a 64 KiB
        // buffer as a node's are.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(max_connections)
            .http1_max_buf_size(crate::upstream::MAX_READ_BUFFER)
            .build(https);
        Front {
            kibana: config.url.clone(),
            secure: config.secure,
            public_origin: config.public_url.trim_end_matches('/').to_owned(),
            client,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            slot_wait,
            shares: Arc::new(Shares {
                max: max_per_token.max(1),
                held: std::sync::Mutex::default(),
            }),
            cookie_key: super::cookie_key(id_key),
            credential_key: super::credential_key(id_key),
        }
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure {
            HOST_COOKIE
        } else {
            COOKIE
        }
    }

    fn cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.cookie_name()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("esgate_link=; Max-Age=0"))
    }
}

/// Handles one request on the Kibana front. Never fails: refusals are short text pages.
pub async fn handle(app: Arc<App>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let event = DataEvent {
        request_id: format!("{:016x}", rand::random::<u64>()),
        client: conn.peer.ip().to_string(),
        method: crate::audit::method_name(req.method()),
        // Link ids cut to their reference wherever they stand (a mangled link URL holds one).
        path: super::redact_link_ids(req.uri().path())
            .chars()
            .take(512)
            .collect(),
        // Nothing done for it yet (`serve` says when it is passed to Kibana).
        refused: true,
        ..DataEvent::default()
    };
    // Written when dropped: here, or wherever the request waits if the recipient goes away.
    let mut record = FrontRecord {
        app: &app,
        event,
        started,
        answered: false,
    };
    let event = &mut record.event;
    // As on the data listener: a refusal leaves an HTTP/1 request's body unread, so the
    // connection cannot carry another request; say so, or a pooling client sees a reset.
    let close_on_refusal =
        req.version() <= http::Version::HTTP_11 && !http_body::Body::is_end_stream(req.body());
    let mut response = match app.kibana_front.as_deref() {
        Some(front) => match serve(&app, front, conn, req, event).await {
            Ok(r) => {
                event.refused = false;
                r
            }
            Err(refusal) => {
                event.reason = Some(refusal.reason.clone());
                // Refused with nothing passed to Kibana: its record may be dropped under a
                // flood of refusals without closing the gateway (`audit::Room::Refused`), as
                // on the data listener (attack21b: every refusal of the front, a request with
                // no session cookie included, took the served requests' room, so with
                // `audit.on_failure = "closed"` and a stalled output a client with nothing
                // closed the gateway for every tenant).
                event.refused = !refusal.relayed;
                let mut r = refusal.into_response(front);
                if close_on_refusal {
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                r
            }
        },
        None => text(StatusCode::NOT_FOUND, "no Kibana front is configured"),
    };
    protect(&mut response, event);
    event.status = response.status().as_u16();
    event.decision = if response.status().is_success() || response.status().is_redirection() {
        "allow"
    } else {
        "deny"
    };
    record.answered = true;
    response
}

/// A front request's audit record, written when dropped: once the request is answered, or
/// when the recipient goes away before (a reset HTTP/2 stream, a closed connection), as it
/// stands then: status 499, `allow` once passed to Kibana, which may have acted on it (as
/// `proxy::Record` on the data listener, attack21b: such a request left no record).
struct FrontRecord<'a> {
    app: &'a App,
    event: DataEvent,
    started: Instant,
    answered: bool,
}

impl Drop for FrontRecord<'_> {
    fn drop(&mut self) {
        let event = &mut self.event;
        if !self.answered {
            event.status = 499;
            event.reason = Some(
                if event.refused {
                    "the recipient closed the request before it was passed to Kibana"
                } else {
                    "the recipient closed the request before its answer"
                }
                .to_owned(),
            );
            event.decision = if event.refused { "deny" } else { "allow" };
        }
        event.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.app.audit.data(event);
    }
}

/// A refusal: status, the reason shown (never a value), whether the session cookie is cleared,
/// whether the request was passed to Kibana before it failed.
struct Refusal {
    status: StatusCode,
    reason: String,
    clear_cookie: bool,
    relayed: bool,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            clear_cookie: false,
            relayed: false,
        }
    }

    /// The request went to Kibana and failed there or on the way (Kibana may have acted on
    /// it): its record is a served request's.
    fn relayed(self) -> Refusal {
        Refusal {
            relayed: true,
            ..self
        }
    }

    fn ending_session(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            clear_cookie: true,
            ..Refusal::new(status, reason)
        }
    }

    fn into_response(self, front: &Front) -> Response<Body> {
        let mut r = text(self.status, &self.reason);
        // Every 503 of the front is a passing state (Kibana's slots, the audit log).
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.clear_cookie {
            r.headers_mut()
                .insert(header::SET_COOKIE, front.cookie("", 0));
        }
        r
    }
}

impl From<Denied> for Refusal {
    fn from(d: Denied) -> Refusal {
        let status = match d {
            Denied::Link(r) if r.starts_with("the link does not exist") => StatusCode::NOT_FOUND,
            _ => StatusCode::FORBIDDEN,
        };
        // What is missing (an IP filter's name) is the administrator's business, not the
        // recipient's (review 16c): the token's view tells the administrator.
        let reason = match d {
            Denied::Dangling(_) => "the link's token is not fully configured".to_owned(),
            d => d.to_string(),
        };
        Refusal::ending_session(status, reason)
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(body::full(format!("{message}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Anti-framing and hygiene headers on every answer; app pages may be framed by this origin.
fn protect(response: &mut Response<Body>, event: &DataEvent) {
    let app_page = event.reason.is_none()
        && event.method == "GET"
        && matches!(
            routes::split_space(&event.path).1.split('/').nth(1),
            Some("app")
        )
        && response.status().is_success();
    let h = response.headers_mut();
    let (xfo, ancestors) = if app_page {
        ("SAMEORIGIN", "frame-ancestors 'self'")
    } else {
        ("DENY", "frame-ancestors 'none'")
    };
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(xfo));
    h.append(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(ancestors),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn recipient_address(app: &App, conn: ConnInfo, headers: &HeaderMap) -> Result<IpAddr, Refusal> {
    let xff: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let fwd: Vec<&[u8]> = headers
        .get_all("forwarded")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    client_ip::client_ip(conn.peer.ip(), &xff, &fwd, &app.config.auth.trusted_proxies)
        .map(client_ip::canonical)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Kibana's URL for a recipient's `path_and_query`: Kibana's base URL (`base`, `kibana` as
/// text: its scheme, address and any base path) followed by the path. `None` unless the path starts with `/` and the URL is
/// on Kibana's own scheme and address (attack25b: appended as text, a path without its `/`
/// moved the address, `http://kibana:5601` and `1/bundles/x` making port 56011; hygiene
/// refuses such paths first, and http 1.4.1 and later no longer parse them).
fn kibana_url(kibana: &Uri, base: &str, path_and_query: &str) -> Option<Uri> {
    if !path_and_query.starts_with('/') {
        return None;
    }
    let uri: Uri = format!("{}{}", base.trim_end_matches('/'), path_and_query)
        .parse()
        .ok()?;
    (uri.scheme() == kibana.scheme() && uri.authority() == kibana.authority()).then_some(uri)
}

/// A `Location` on Kibana's own base URL, as a path on the front (`None`: leave it).
fn relative_location(kibana_base: &str, location: &str) -> Option<String> {
    let base = kibana_base.trim_end_matches('/');
    let rest = location.strip_prefix(base)?;
    match rest.chars().next() {
        None => Some("/".to_owned()),
        Some('/') if !rest.starts_with("//") => Some(rest.to_owned()),
        Some('?' | '#') => Some(format!("/{rest}")),
        _ => None,
    }
}

/// Whether a `Location` (once Kibana's own base URL was made a path) keeps the recipient on
/// the front: a path (`/` then anything but `/` or `\`, which browsers read as a host to
/// come), a reference relative to the request's path (no scheme, not starting with `\`) or
/// the front's public URL itself. A browser drops tabs and line ends from a URL and trims
/// spaces and control characters around it, so a `Location` holding any is not judged: refused
/// with the rest (`/\t/evil.example` is `//evil.example` to a browser).
fn on_the_front(location: &[u8], public_origin: &str) -> bool {
    if location.is_empty() || location.iter().any(|b| b.is_ascii_control() || *b == b' ') {
        return false;
    }
    if let Some(rest) = location.strip_prefix(public_origin.as_bytes()) {
        if matches!(rest.first(), None | Some(b'?' | b'#'))
            || (rest.first() == Some(&b'/') && !matches!(rest.get(1), Some(b'/' | b'\\')))
        {
            return true;
        }
    }
    match location[0] {
        b'/' => !matches!(location.get(1), Some(b'/' | b'\\')),
        b'\\' => false,
        // A scheme is letters, digits, `+`, `-`, `.` before a `:`; a relative reference's first
        // segment holds no `:` (RFC 3986, 4.2).
        _ => {
            let first = location
                .split(|b| matches!(b, b'/' | b'?' | b'#'))
                .next()
                .unwrap_or_default();
            !first.contains(&b':') && !first.contains(&b'\\')
        }
    }
}

/// The host a refused `Location` names, for the log (at most 100 characters): its authority
/// without the user information before an `@` (a URL's credentials are never logged); empty
/// when it names none.
fn redirect_host(location: &[u8]) -> String {
    let location = String::from_utf8_lossy(location);
    let authority = location
        .split("//")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    host.chars().take(100).collect()
}

/// `/s/<link id>`: the id if the path is exactly a link URL.
fn link_path(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/s/")?;
    super::link_id_hex(id).map(|_| id)
}

async fn serve(
    app: &Arc<App>,
    front: &Front,
    conn: ConnInfo,
    req: Request<Incoming>,
    event: &mut DataEvent,
) -> Result<Response<Body>, Refusal> {
    // The same HTTP hygiene as the data listener (no CONNECT/TRACE, absolute-form targets,
    // upgrades, ambiguous framing).
    crate::proxy::hygiene::check(&req).map_err(|e| Refusal::new(e.status(), e.to_string()))?;
    let recipient = recipient_address(app, conn, req.headers())?;
    event.client = recipient.to_string();
    // `audit.on_failure = "closed"`: nothing reaches Kibana while the audit log cannot be
    // written (as on the data listener).
    if app.audit.refusing() {
        app.metrics.rejected(crate::metrics::Rejected::Audit);
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::audit::UNWRITABLE,
        ));
    }
    let now = crate::time::now();
    let snapshot = app.store.snapshot();

    if let Some(link_id) = link_path(req.uri().path()) {
        // The path is the link's URL: the audit record names the link by its reference only
        // (the path was cut already).
        event.link_id = Some(super::link_ref(link_id).to_owned());
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "a share link is opened with GET",
            ));
        }
        // Guessing link ids counts as failed authentication (and is slowed the same way).
        let tick = Instant::now();
        if app.limiter.check(recipient, tick).is_err() {
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed attempts from this address; try again later",
            ));
        }
        let (link, token) = session::check_link(&snapshot, link_id, None, recipient, now)
            .inspect_err(|d| {
                if matches!(d, Denied::Link(r) if r.starts_with("the link does not exist")) {
                    app.limiter.record_failure(recipient, tick);
                }
            })?;
        event.token_id = Some(TokenText::Id(Arc::clone(&token)));
        event.token_name = Some(TokenText::Name(Arc::clone(&token)));
        let expires_at = [
            Some(now + session::SESSION_TTL),
            link.expires_at,
            token.expires_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + session::SESSION_TTL);
        let cookie = session::seal_cookie(&front.cookie_key, &link, &token, expires_at);
        let target = redirect_target(&link.path, link.time.as_ref());
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::SEE_OTHER;
        let h = r.headers_mut();
        h.insert(
            header::LOCATION,
            HeaderValue::from_str(&target)
                .map_err(|_| Refusal::new(StatusCode::FORBIDDEN, "the link's path is not valid"))?,
        );
        h.insert(header::SET_COOKIE, front.cookie(&cookie, expires_at - now));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        app.store.touch(&token.id, now);
        return Ok(r);
    }

    // Every other request: a session.
    let claims = session_of(front, req.headers(), now)?;
    event.link_id = Some(super::link_ref(&claims.link_id).to_owned());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let (token, verdict) = session_verdict(&snapshot, &claims, recipient, &method, &path, now)?;
    event.token_id = Some(TokenText::Id(Arc::clone(&token)));
    event.token_name = Some(TokenText::Name(Arc::clone(&token)));
    match verdict {
        Verdict::Refuse(why) => return Err(Refusal::new(StatusCode::FORBIDDEN, why)),
        Verdict::ReadPost | Verdict::SearchBatch => {
            check_cross_site(front, req.headers())?;
            refuse_compressed(req.headers())?;
        }
        Verdict::Read | Verdict::Asset | Verdict::AppPage => {}
    }
    let (parts, incoming) = req.into_parts();
    let body: Body = if verdict == Verdict::SearchBatch {
        let (bytes, hold) = read_search_batch(app, &parts.headers, incoming).await?;
        body::held(bytes, hold)
    } else {
        incoming.map_err(|e| -> BoxError { Box::new(e) }).boxed()
    };
    app.store.touch(&token.id, now);
    let credential = session::mint_credential(&front.credential_key, &claims, recipient, now);
    // The link and its token's spaces again, on the current snapshot, once the request has
    // its place among the Kibana slots (`forward`): that wait takes up to `slot_wait`.
    let again = || -> Result<(), Refusal> {
        let snapshot = app.store.snapshot();
        let now = crate::time::now();
        match session_verdict(&snapshot, &claims, recipient, &method, &path, now)? {
            (_, Verdict::Refuse(why)) => Err(Refusal::new(StatusCode::FORBIDDEN, why)),
            _ => Ok(()),
        }
    };
    forward(
        app,
        front,
        parts,
        verdict == Verdict::Asset,
        body,
        &credential,
        recipient,
        &token.id,
        &again,
        event,
    )
    .await
}

/// A read-only POST's body (a batched search's included) that says it is compressed: 415.
/// Kibana's app never compresses a request body, and the front does not pass
/// `Content-Encoding` (not on [`RELAYED_TO_KIBANA`]), so Kibana would read the compressed bytes
/// as the JSON they are not and fail on them (front22b: only the batched search said so, with
/// a clear refusal; the other POSTs reached Kibana and failed there). `identity` is no
/// compression.
fn refuse_compressed(headers: &HeaderMap) -> Result<(), Refusal> {
    if headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| v.as_bytes() != b"identity")
    {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request's body is not passed compressed (Content-Encoding): \
             Kibana's app never compresses one",
        ));
    }
    Ok(())
}

/// A batched search's body (`/internal/bsearch`), read whole and checked before anything of it
/// reaches Kibana ([`routes::check_search_batch`]: every item a data search): the bytes to
/// pass, as received, and their share of the body budget, held until they are sent. Read as
/// the data listener reads a body: at most `listen.max_body_bytes`, charged to the shared body
/// budget, within `listen.header_timeout`. A body Kibana would not read as the JSON checked is
/// refused: compressed (`Content-Encoding`, [`refuse_compressed`], checked before) or of
/// another type than JSON (Kibana would parse a form).
async fn read_search_batch(
    app: &App,
    headers: &HeaderMap,
    incoming: Incoming,
) -> Result<(bytes::Bytes, body::BudgetHold), Refusal> {
    let json = headers.get_all(header::CONTENT_TYPE).iter().all(|v| {
        let media = v
            .as_bytes()
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default();
        media.trim_ascii().eq_ignore_ascii_case(b"application/json")
    });
    if !json {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a batched search's body is passed as application/json only",
        ));
    }
    let limit = app.config.limits.max_body_bytes;
    let read = tokio::time::timeout(
        app.config.limits.header_timeout,
        body::read_budgeted(incoming, limit, &app.body_budget),
    )
    .await;
    let (bytes, hold) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(body::ReadError::TooLarge)) => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes (listen.max_body_bytes)"),
            ))
        }
        Ok(Err(body::ReadError::Busy)) => {
            app.metrics.rejected(crate::metrics::Rejected::Busy);
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many request bodies are being read at once; try again",
            ));
        }
        Ok(Err(body::ReadError::Broken)) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            ))
        }
        Ok(Err(body::ReadError::Stalled)) | Err(_) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            ))
        }
    };
    routes::check_search_batch(&bytes).map_err(|why| Refusal::new(StatusCode::FORBIDDEN, why))?;
    Ok((bytes, hold))
}

/// A session's link checked on `snapshot` (alive, its token's, for `recipient`: see
/// `session::check_link`) and what `method path` is to its token's spaces: the check before a
/// request is passed to Kibana, made again once it has its Kibana slot.
fn session_verdict(
    snapshot: &Snapshot,
    claims: &Claims,
    recipient: IpAddr,
    method: &Method,
    path: &str,
    now: i64,
) -> Result<(Arc<Token>, Verdict), Refusal> {
    let (_link, token) =
        session::check_link(snapshot, &claims.link_id, Some(claims), recipient, now)?;
    let verdict = routes::classify(method.as_str(), path, &token.kibana_spaces);
    Ok((token, verdict))
}

/// The session cookie's claims; refusals end the session (a tampered or expired cookie).
fn session_of(front: &Front, headers: &HeaderMap, now: i64) -> Result<Claims, Refusal> {
    let name = front.cookie_name();
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == name {
                    if found.is_some() {
                        return Err(Refusal::ending_session(
                            StatusCode::UNAUTHORIZED,
                            "more than one share-link session cookie",
                        ));
                    }
                    found = Some(v.to_owned());
                }
            }
        }
    }
    let Some(value) = found else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "no share-link session: open the share link you were sent",
        ));
    };
    session::open_cookie(&front.cookie_key, &value, now).ok_or_else(|| {
        Refusal::ending_session(
            StatusCode::UNAUTHORIZED,
            "the share-link session is not valid or has ended: open the share link again",
        )
    })
}

/// Read-only POSTs only from Kibana's own pages: Kibana's XSRF header present (a cross-site
/// form cannot set it), the `Origin`, when sent, the front's own, and no cross-site fetch.
fn check_cross_site(front: &Front, headers: &HeaderMap) -> Result<(), Refusal> {
    if !headers.contains_key("kbn-xsrf") && !headers.contains_key("x-elastic-internal-origin") {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "the request lacks Kibana's kbn-xsrf or x-elastic-internal-origin header",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() != front.public_origin.as_bytes() {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the request comes from another origin",
            ));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the request comes from another site",
            ));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    app: &App,
    front: &Front,
    parts: http::request::Parts,
    shared: bool,
    body: Body,
    credential: &str,
    recipient: IpAddr,
    token_id: &str,
    again: &(dyn Fn() -> Result<(), Refusal> + Sync),
    event: &mut DataEvent,
) -> Result<Response<Body>, Refusal> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let base = front.kibana.to_string();
    let uri = kibana_url(&front.kibana, &base, path_and_query)
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "the request path is not valid"))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if relayed_to_kibana(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {credential}"))
            .map_err(|_| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "credential"))?,
    );
    if let Ok(v) = HeaderValue::from_str(&recipient.to_string()) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    // A place in the token's share, then a slot, both for the whole exchange: released when
    // the answer's body ends or is dropped. Waiting for both takes `slot_wait` at most.
    let deadline = tokio::time::Instant::now() + front.slot_wait;
    let mut share = Shares::enter(&front.shares, token_id);
    if tokio::time::timeout_at(deadline, share.acquire())
        .await
        .is_err()
    {
        return Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "this share link's token already holds its share of the requests to Kibana \
             (backend.max_connections_per_token); try again",
        ));
    }
    let slot = match tokio::time::timeout_at(deadline, Arc::clone(&front.slots).acquire_owned())
        .await
    {
        Ok(Ok(slot)) => slot,
        _ => return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Kibana is busy (too many requests through the share-link front at once); try again",
        )),
    };
    // The link was checked before the wait for a place (up to `slot_wait`): a link deleted,
    // expired or narrowed meanwhile was passed to Kibana once a place came free (attack21c,
    // as rel21 on the data listener).
    again()?;
    let mut upstream = Request::new(body);
    *upstream.method_mut() = parts.method.clone();
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = headers;
    // Passed to Kibana from here on (a refusal after it says so too): not while it waited for
    // its place (attack21c: a request abandoned there was recorded as passed, `allow`).
    event.refused = false;
    let sent = tokio::time::timeout(
        app.config.backend.request_timeout,
        front.client.request(upstream),
    )
    .await;
    let answer = match sent {
        Ok(Ok(a)) => a,
        // The recipient's own body failed while relayed (its framing, or it hung up): its
        // fault, not Kibana's (attack20b, as on the data listener).
        Ok(Err(e)) if crate::upstream::client_body_failed(&e) => {
            tracing::debug!(error = %e, "The recipient's body failed while relayed");
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
            .relayed());
        }
        Ok(Err(e)) if crate::upstream::head_too_large(&e) => return Err(head_too_large()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Kibana is unreachable");
            return Err(Refusal::new(StatusCode::BAD_GATEWAY, "Kibana is unreachable").relayed());
        }
        Err(_) => {
            return Err(
                Refusal::new(StatusCode::GATEWAY_TIMEOUT, "Kibana did not answer in time")
                    .relayed(),
            )
        }
    };
    // One read may bring more than the buffer holds (its spare room): the head as parsed is
    // measured too, as a node's is (`upstream::head_len`). Dropped unfinished, its
    // connection closed.
    if crate::upstream::head_len(&answer) > crate::upstream::MAX_READ_BUFFER {
        return Err(head_too_large());
    }
    let (mut aparts, abody) = answer.into_parts();
    drop_response_headers(&mut aparts.headers);
    if !shared {
        keep_private(&mut aparts.headers);
    }
    // A redirect to Kibana's own address would take the recipient past the front.
    let relative = aparts
        .headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| relative_location(&base, l));
    if let Some(path) = relative {
        match HeaderValue::from_str(&path) {
            Ok(v) => {
                aparts.headers.insert(header::LOCATION, v);
            }
            Err(_) => {
                aparts.headers.remove(header::LOCATION);
            }
        }
    }
    // Any other address but the front's own (rel23: a foreign absolute URL was relayed, and
    // the recipient's browser followed it off the front): refused, never relayed, nor named.
    if let Some(elsewhere) = aparts
        .headers
        .get(header::LOCATION)
        .filter(|l| !on_the_front(l.as_bytes(), &front.public_origin))
    {
        let host = redirect_host(elsewhere.as_bytes());
        tracing::warn!(status = aparts.status.as_u16(), %host, "Kibana's answer redirected outside the front; refused");
        return Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "Kibana redirected to an address outside the front",
        )
        .relayed());
    }
    // As an Elasticsearch answer: a Kibana that stops sending must not hold the recipient's
    // connection (and its own) forever.
    let idle = app.config.backend.body_idle_timeout;
    let body: Body = crate::upstream::AnswerBody::idle_bounded(abody, idle).boxed();
    let body: Body = Holding {
        body,
        _slot: slot,
        _share: share,
    }
    .boxed();
    Ok(Response::from_parts(aparts, body))
}

/// Kibana's answer had a head larger than 64 KiB (the cap on a node's, rel24): a 502, as
/// Kibana's other failures.
fn head_too_large() -> Refusal {
    tracing::warn!("Kibana's answer refused: its head is larger than 64 KiB");
    Refusal::new(
        StatusCode::BAD_GATEWAY,
        "Kibana's answer could not be relayed (its head is larger than 64 KiB)",
    )
    .relayed()
}

/// An answer's body holding its Kibana slot and its token's place until it ends or is dropped
/// (the slot given back first).
struct Holding {
    body: Body,
    _slot: OwnedSemaphorePermit,
    _share: Share,
}

/// The places each token's requests hold among the Kibana slots: a semaphore of `max` per token
/// with requests under way or waiting, none for others (the table is bounded by the tokens
/// with share links; an entry goes with its last holder or waiter, under the lock it is made
/// under).
struct Shares {
    max: usize,
    held: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
}

/// A request's hold on its token's share: its place once `acquire`d; dropping it gives the
/// place back and forgets the token's entry when nothing else holds or waits on it.
struct Share {
    shares: Arc<Shares>,
    token: String,
    semaphore: Option<Arc<Semaphore>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Shares {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Semaphore>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enter(shares: &Arc<Shares>, token: &str) -> Share {
        let semaphore = Arc::clone(
            shares
                .lock()
                .entry(token.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(shares.max))),
        );
        Share {
            shares: Arc::clone(shares),
            token: token.to_owned(),
            semaphore: Some(semaphore),
            permit: None,
        }
    }

    #[cfg(test)]
    fn tokens(&self) -> usize {
        self.lock().len()
    }
}

impl Share {
    /// Waits for a place in the token's share.
    async fn acquire(&mut self) {
        if let Some(semaphore) = &self.semaphore {
            if let Ok(permit) = Arc::clone(semaphore).acquire_owned().await {
                self.permit = Some(permit);
            }
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.lock();
        drop(self.permit.take());
        if let Some(semaphore) = self.semaphore.take() {
            // Every other request of the token, holding or waiting, keeps a clone of its own
            // until its drop, which takes this lock: two (the table's and ours) means none.
            if Arc::strong_count(&semaphore) == 2 {
                held.remove(&self.token);
            }
        }
    }
}

impl http_body::Body for Holding {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// attack19a (L): one token's requests hold at most its share of the Kibana slots; a
    /// token's entry goes with its last holder or waiter.
    #[tokio::test]
    async fn a_tokens_share_is_bounded_and_forgotten_when_unused() {
        let shares = Arc::new(Shares {
            max: 2,
            held: std::sync::Mutex::default(),
        });
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = Shares::enter(&shares, "tok_a");
            s.acquire().await;
            held.push(s);
        }
        let mut third = Shares::enter(&shares, "tok_a");
        let waited = tokio::time::timeout(Duration::from_millis(50), third.acquire()).await;
        assert!(waited.is_err(), "a third place for one token");
        let mut other = Shares::enter(&shares, "tok_b");
        other.acquire().await;
        assert_eq!(shares.tokens(), 2);
        drop(other);
        assert_eq!(shares.tokens(), 1, "tok_b's entry went with its holder");
        drop(held.pop());
        tokio::time::timeout(Duration::from_millis(50), third.acquire())
            .await
            .expect("a place given back is taken");
        drop(third);
        drop(held);
        assert_eq!(shares.tokens(), 0);
    }

    /// Review 16c: a recipient learned the name of a missing IP filter of the link's token.
    #[test]
    fn a_dangling_token_is_refused_without_naming_what_is_missing() {
        let r = Refusal::from(Denied::Dangling("IP filter 'office' does not exist".into()));
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(!r.reason.contains("office"), "{}", r.reason);
        assert!(r.clear_cookie);
    }

    /// Headers a recipient may send that no Kibana viewer route needs: what a proxy in front of
    /// Kibana may read as the client's address or proven identity, or as another route
    /// (attack21c: passed by the deny-list), credentials, framing, and the browser's own that
    /// Kibana does not read.
    const NOT_TO_KIBANA: &[&str] = &[
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-cluster-client-ip",
        "x-amzn-oidc-identity",
        "x-amzn-oidc-data",
        "x-amzn-oidc-accesstoken",
        "x-goog-authenticated-user-email",
        "x-goog-authenticated-user-id",
        "x-goog-iap-jwt-assertion",
        "x-ms-client-principal",
        "x-ms-client-principal-name",
        "x-ms-client-principal-id",
        "x-webauth-user",
        "x-envoy-internal",
        "x-envoy-original-path",
        "x-envoy-retry-on",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-opaque-id",
        "x-request-id",
        "x-custom",
        "authorization",
        "proxy-authorization",
        "cookie",
        "es-security-runas-user",
        "es-client-authentication",
        "x-proxy-user",
        "x-forwarded-user",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-auth-request-user",
        "remote-user",
        "forwarded",
        "x-real-ip",
        "host",
        "content-length",
        "content-encoding",
        "expect",
        "origin",
        "referer",
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-ch-ua",
        "range",
        "if-match",
        "cache-control",
        "pragma",
        "traceparent",
        "x-elastic-product-origin",
        "kbn-name",
        "kbn-license-sig",
        "x-kbn-whatever",
    ];

    /// front22: the front passes Kibana exactly the names of [`RELAYED_TO_KIBANA`], compared as
    /// listed; none of them is hop-by-hop, a credential, an address or an identity header.
    #[test]
    fn only_the_listed_headers_are_passed_to_kibana() {
        let names = crate::proxy::hygiene::tests::some_names();
        for name in names.iter().chain(NOT_TO_KIBANA).chain(RELAYED_TO_KIBANA) {
            let parsed = HeaderName::from_static(name);
            assert_eq!(
                relayed_to_kibana(&parsed),
                RELAYED_TO_KIBANA.contains(name),
                "{name}"
            );
        }
        for name in NOT_TO_KIBANA {
            assert!(!RELAYED_TO_KIBANA.contains(name), "{name}");
        }
        for (i, name) in RELAYED_TO_KIBANA.iter().enumerate() {
            let parsed = HeaderName::from_static(name);
            assert!(!crate::proxy::hygiene::is_hop_by_hop(&parsed), "{name}");
            assert!(
                !crate::proxy::upstream_request::changes_identity(&parsed),
                "{name}"
            );
            assert!(!RELAYED_TO_KIBANA[..i].contains(name), "{name} twice");
        }
    }

    /// front22: what Kibana (or a proxy before it) would set in the recipient's browser beyond
    /// the answer is removed; what Kibana's app reads of an answer stays.
    #[test]
    fn kibanas_answer_keeps_no_header_that_sets_browser_state() {
        let dropped = [
            "set-cookie",
            "set-cookie2",
            "www-authenticate",
            "proxy-authenticate",
            "x-frame-options",
            "strict-transport-security",
            "alt-svc",
            "clear-site-data",
            "nel",
            "report-to",
            "reporting-endpoints",
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-expose-headers",
            "access-control-allow-private-network",
            "connection",
            "transfer-encoding",
        ];
        let kept = [
            "content-type",
            "content-encoding",
            "content-length",
            "content-disposition",
            "cache-control",
            "etag",
            "last-modified",
            "vary",
            "location",
            "kbn-name",
            "kbn-license-sig",
            "elastic-api-version",
            "content-security-policy",
            "x-content-type-options",
            "retry-after",
        ];
        let mut h = HeaderMap::new();
        for name in dropped.iter().chain(&kept) {
            h.append(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        h.append("set-cookie", HeaderValue::from_static("second"));
        drop_response_headers(&mut h);
        let mut left: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        left.sort_unstable();
        let mut want = kept.to_vec();
        want.sort_unstable();
        assert_eq!(left, want);
    }

    /// front23: an answer of the link's own never says `public` (or `s-maxage`) to a shared
    /// cache; one already private or `no-store` is left as Kibana wrote it.
    #[test]
    fn answers_of_the_links_own_are_kept_private() {
        let cases: &[(&[&str], &str)] = &[
            (&["public, max-age=3600"], "private, max-age=3600"),
            (&["Public,max-age=60, s-maxage=600"], "private, max-age=60"),
            (&["max-age=60", "public"], "private, max-age=60"),
            (&[], "private"),
            (&["must-revalidate"], "private, must-revalidate"),
            (
                &["private=\"set-cookie\", max-age=60"],
                "private, private=\"set-cookie\", max-age=60",
            ),
            (&["no-store, public"], "no-store"),
            (&["private, public"], "private"),
            (&[",,"], "private"),
        ];
        for (given, want) in cases {
            let mut h = HeaderMap::new();
            for v in *given {
                h.append(header::CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
            }
            keep_private(&mut h);
            let got: Vec<&str> = h
                .get_all(header::CACHE_CONTROL)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, [*want], "{given:?}");
        }
        for kept in [
            "private, no-cache, no-store, must-revalidate",
            "no-store",
            "PRIVATE, max-age=5",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(kept));
            keep_private(&mut h);
            assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), kept);
        }
    }

    /// The log names a refused redirect's host, never the user information before it.
    #[test]
    fn a_refused_redirect_is_logged_by_its_host_only() {
        for (location, host) in [
            ("https://evil.example/x?y#z", "evil.example"),
            (
                "https://user:secret@evil.example:8443/x",
                "evil.example:8443",
            ),
            ("//evil.example@other.example/", "other.example"),
            ("javascript:alert(1)", ""),
            ("/\\evil.example", ""),
        ] {
            assert_eq!(redirect_host(location.as_bytes()), host, "{location}");
        }
        assert_eq!(
            redirect_host(format!("//{}", "h".repeat(300)).as_bytes()).len(),
            100
        );
    }

    /// attack25b: Kibana's URL for a recipient's path is always on Kibana's address, whatever
    /// the path (`forward` takes it from the request as the client sent it).
    #[test]
    fn kibanas_url_for_a_path_never_leaves_kibanas_address() {
        for base in [
            "http://127.0.0.1:5601",
            "http://10.0.0.5",
            "https://kibana:5601/kb/",
        ] {
            let kibana: Uri = base.parse().unwrap();
            let at = |path: &str| kibana_url(&kibana, &kibana.to_string(), path);
            for path in [
                "1/bundles/x.js",
                "0/bundles/x",
                "api/status",
                "@evil.example/x",
                ".evil.example/x",
                ":1/x",
                "*",
                "?x",
                "",
            ] {
                assert_eq!(at(path), None, "{base} {path}");
            }
            for path in [
                "/bundles/x.js",
                "//evil.example/x",
                "/@evil/x",
                "/api/status?x=1",
            ] {
                let uri = at(path).unwrap_or_else(|| panic!("{base} {path}"));
                assert_eq!(uri.authority(), kibana.authority(), "{base} {path}");
                assert_eq!(uri.scheme(), kibana.scheme(), "{base} {path}");
                assert!(
                    uri.path_and_query().unwrap().as_str().ends_with(path),
                    "{base} {path}: {uri}"
                );
            }
        }
        let kb: Uri = "https://kibana:5601/kb/".parse().unwrap();
        assert_eq!(
            kibana_url(&kb, &kb.to_string(), "/app/x?y=1")
                .unwrap()
                .to_string(),
            "https://kibana:5601/kb/app/x?y=1"
        );
    }

    #[test]
    fn kibana_redirects_to_itself_become_front_paths() {
        let base = "http://kibana:5601/";
        let cases = [
            (
                "http://kibana:5601/app/dashboards#/list",
                Some("/app/dashboards#/list"),
            ),
            ("http://kibana:5601", Some("/")),
            ("http://kibana:5601?x", Some("/?x")),
            ("http://kibana:56010/app", None),
            ("http://kibana:5601//evil", None),
            ("/app/dashboards", None),
            ("https://elsewhere/app", None),
        ];
        for (location, want) in cases {
            assert_eq!(
                relative_location(base, location).as_deref(),
                want,
                "{location}"
            );
        }
    }

    /// rel23 item 5: what `Location` keeps the recipient on the front; every other is refused.
    #[test]
    fn only_locations_on_the_front_are_relayed() {
        let public = "https://dash.test";
        for on in [
            "/app/dashboards#/view/d1",
            "/",
            "/app/x?next=//evil.example",
            "app/dashboards",
            "./x",
            "../x",
            "?x=1",
            "#/list",
            "x/y:z",
            "https://dash.test",
            "https://dash.test/app/x",
            "https://dash.test?x",
        ] {
            assert!(on_the_front(on.as_bytes(), public), "{on}");
        }
        for off in [
            "https://evil.example/app",
            "http://dash.test/app",
            "https://dash.test.evil.example/app",
            "https://dash.test@evil.example/",
            "https://dash.test//evil.example",
            "//evil.example/app",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/\t/evil.example",
            " //evil.example",
            "javascript:alert(1)",
            "data:text/html,x",
            "HTTPS:evil.example",
            "a\\b",
            "",
        ] {
            assert!(!on_the_front(off.as_bytes(), public), "{off}");
        }
    }

    #[test]
    fn only_exact_link_paths_open_links() {
        let id = format!("lnk_{}", "0a".repeat(16));
        assert_eq!(link_path(&format!("/s/{id}")), Some(id.as_str()));
        for p in [
            format!("/s/{id}/"),
            format!("/s/{id}x"),
            "/s/lnk_zz".to_owned(),
            format!("/s/{id}/app/dashboards"),
            "/s/acme/app/x".to_owned(),
        ] {
            assert_eq!(link_path(&p), None, "{p}");
        }
    }
}
