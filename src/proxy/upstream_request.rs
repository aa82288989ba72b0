//! Building the request sent upstream. For enforced tokens it is built from scratch out of a
//! `Permit` (canonical path, allow-listed parameters, esgate's own headers and body); for
//! pass-through tokens the client's request is relayed with only the client headers on an
//! allow-list ([`RELAYED_FOR_ALL`] and `backend.relay_headers`): never its credentials, its
//! hop-by-hop headers or a header that changes who the backend thinks is asking.
//!
//! Invariant: the client's `Authorization` never reaches the backend; esgate's own backend
//! credential is the only one sent.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::es::request::media::{self, Family, JsonMedia};
use crate::es::{self, Permit};
use crate::proxy::hygiene::{is_hop_by_hop, Head};
use crate::proxy::ClientBody;
use crate::upstream::{UpstreamBody, UpstreamRequest};

/// Query components: everything but unreserved characters and a few ES list separators is
/// encoded.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'*')
    .remove(b',');

/// What every upstream request carries besides its own content.
pub struct Forwarding<'a> {
    pub authorization: Option<&'a HeaderValue>,
    /// The client address as text (formatted once per request, for the audit record too).
    pub client_ip: &'a str,
    pub tls: bool,
    /// Sent as `X-Opaque-Id` (`proxy::opaque_id`): the cluster's slow log names the token.
    pub opaque_id: &'a str,
}

/// The client headers a pass-through (`all`) token's request keeps; every other is dropped
/// (hdr21: deny by default. The deny-list before it, `changes_identity`, grew each session
/// by the identity headers of one more plugin or proxy, and a proxy authentication's header
/// names are the backend's own settings, so no deny-list is complete). What the backend reads
/// of a client's request and esgate does not set itself: content negotiation and the body's
/// encoding (the body is relayed as it came; hyper frames it, the pool sets `Host`, esgate
/// its own `Authorization`, `X-Forwarded-*` and `X-Opaque-Id`); what the official clients,
/// Kibana and Grafana send about themselves and for tracing (Elasticsearch reads
/// `x-elastic-product-origin` for system index access and `traceparent` for APM); the tenant
/// selectors of OpenSearch, Search Guard and ReadonlyREST, which pick among what esgate's
/// credential may use. Elasticsearch reads no conditional or caching header (its optimistic
/// concurrency is the `if_seq_no` parameters). `backend.relay_headers` adds names to it
/// ([`RelayHeaders`]). Compared by `relayed_for_all` (the tests hold it to this list).
pub const RELAYED_FOR_ALL: &[&str] = &[
    "accept",
    "accept-encoding",
    "content-type",
    "content-encoding",
    "user-agent",
    "x-elastic-client-meta",
    "x-elastic-product-origin",
    "x-elastic-internal-origin",
    "elastic-api-version",
    "traceparent",
    "tracestate",
    "securitytenant",
    "sgtenant",
    "x-ror-current-group",
];

/// Whether a client header is relayed for an `all` token: on [`RELAYED_FOR_ALL`] or among the
/// configured `extra` names. The known names compare as names (no text), the rest by their
/// text once.
fn relayed_for_all(name: &HeaderName, extra: &RelayHeaders) -> bool {
    if *name == header::ACCEPT
        || *name == header::ACCEPT_ENCODING
        || *name == header::CONTENT_TYPE
        || *name == header::CONTENT_ENCODING
        || *name == header::USER_AGENT
    {
        return true;
    }
    matches!(
        name.as_str(),
        "x-elastic-client-meta"
            | "x-elastic-product-origin"
            | "x-elastic-internal-origin"
            | "elastic-api-version"
            | "traceparent"
            | "tracestate"
            | "securitytenant"
            | "sgtenant"
            | "x-ror-current-group"
    ) || extra.0.contains(name)
}

/// The names `backend.relay_headers` adds to [`RELAYED_FOR_ALL`] for `all` tokens. Made only
/// by [`RelayHeaders::new`], which refuses every name esgate never relays (`never_relayed`),
/// so the relay needs no second check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayHeaders(Vec<HeaderName>);

impl RelayHeaders {
    /// The configured names, each checked: a header name (any case), exact (no pattern), and
    /// not one esgate never relays. Every refused name gives its own reason (by its index).
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<RelayHeaders, Vec<(usize, String)>> {
        let (mut kept, mut refused) = (Vec::new(), Vec::new());
        for (i, text) in names.into_iter().enumerate() {
            match relay_header(text) {
                Ok(name) if RELAYED_FOR_ALL.contains(&name.as_str()) || kept.contains(&name) => {}
                Ok(name) => kept.push(name),
                Err(why) => refused.push((i, why)),
            }
        }
        if refused.is_empty() {
            Ok(RelayHeaders(kept))
        } else {
            Err(refused)
        }
    }

    /// The names added, lowercase, in the order given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|n| n.as_str())
    }
}

/// One `backend.relay_headers` entry as a header name, or why it cannot be relayed.
fn relay_header(text: &str) -> Result<HeaderName, String> {
    let shown = crate::es::error::printable(text);
    if text.contains('*') {
        return Err(format!("[{shown}] is a pattern: name each header exactly"));
    }
    let name = HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| format!("[{shown}] is not a header name"))?;
    if changes_identity(&name) {
        return Err(format!(
            "[{name}] can change who the backend takes the request to be from (a credential, run-as, an authenticating proxy's or a routing header): esgate never relays it"
        ));
    }
    if never_relayed(&name) {
        return Err(format!(
            "[{name}] is esgate's own to set or belongs to the client's connection: esgate never relays it"
        ));
    }
    Ok(name)
}

/// Headers esgate refuses to relay even when configured (`backend.relay_headers`): they
/// change identity or routing on the backend, or are esgate's own to set
/// ([`changes_identity`]), and the client's framing and credentials.
fn never_relayed(name: &HeaderName) -> bool {
    is_hop_by_hop(name)
        || changes_identity(name)
        || matches!(
            name.as_str(),
            "host"
                | "content-length"
                | "x-http-method-override"
                | "x-original-url"
                | "x-rewrite-url"
                | "x-opaque-id"
        )
}

/// Headers that would make a backend (or a proxy before it) take the request as another
/// user's, another cluster's, or proven by an authenticating proxy, or that carry a client's
/// credential: never passed on for a client, whose requests go with esgate's own credential.
/// Run-as and impersonation: Elasticsearch's `es-security-runas-user` and secondary
/// credential, OpenSearch's REST impersonation (`opendistro_security_impersonate_as`,
/// attack20b), Search Guard's (`sg_impersonate_as`) and ReadonlyREST's (`x-ror-impersonating`);
/// Elasticsearch's JWT client credential (`es-client-authentication`). The headers an
/// authenticating proxy sets for what it proved: OpenSearch's proxy authentication
/// (`x-proxy-user`, `x-proxy-roles`, `x-proxy-ext-*`: esgate sends `X-Forwarded-For`, so a
/// backend trusting esgate's address as an internal proxy took a relayed user and roles as
/// proven, attack20c), every `x-forwarded-*` (ReadonlyREST's `proxy_auth` reads
/// `X-Forwarded-User` by default; oauth2-proxy's `X-Forwarded-User`/`-Email`/`-Groups`/
/// `-Access-Token`, Envoy's client certificate `X-Forwarded-Client-Cert`; esgate sets
/// `X-Forwarded-For` and `-Proto` itself), oauth2-proxy's `x-auth-request-*`, `remote-user`
/// and `x-remote-user` (attack21b). Routing: Elastic Cloud's proxy picks the cluster by
/// `x-found-*` (attack21b). The security plugins' own thread-context names
/// (`_opendistro_security_*`, `_sg_*`), which they refuse from a client anyway. Addresses and
/// cookies (`forwarded`, `x-real-ip`, `cookie`). The identity and address headers of cloud
/// load balancers and identity-aware proxies (session 22, from attack21c's list): AWS ALB's
/// `x-amzn-oidc-*`, Google IAP's `x-goog-authenticated-user-*`, Azure App Service's
/// `x-ms-client-principal*`, Apache's `x-webauth-user`, Envoy's `x-envoy-*`, and the client
/// address headers `x-client-ip`, `true-client-ip` (Akamai) and `cf-connecting-ip`
/// (Cloudflare). Tenant selectors (`securitytenant`,
/// `sgtenant`, `x-ror-current-group`) are relayed: they pick among what the credential may use.
/// Since hdr21 an `all` token's request keeps only [`RELAYED_FOR_ALL`]: this list guards the
/// names `backend.relay_headers` may add (the Kibana front passes its own allow-list since
/// front22, `kibana::front::RELAYED_TO_KIBANA`, which holds none of them).
pub(crate) fn changes_identity(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("x-proxy-")
        || name.starts_with("x-forwarded-")
        || name.starts_with("x-auth-request-")
        || name.starts_with("x-found-")
        || name.starts_with("_opendistro_security_")
        || name.starts_with("_sg_")
        || name.starts_with("x-amzn-oidc-")
        || name.starts_with("x-goog-authenticated-user-")
        || name.starts_with("x-ms-client-principal")
        || name.starts_with("x-envoy-")
        || matches!(
            name,
            "authorization"
                | "es-security-runas-user"
                | "es-secondary-authorization"
                | "es-client-authentication"
                | "opendistro_security_impersonate_as"
                | "sg_impersonate_as"
                | "x-ror-impersonating"
                | "remote-user"
                | "x-remote-user"
                | "forwarded"
                | "x-real-ip"
                | "x-client-ip"
                | "true-client-ip"
                | "cf-connecting-ip"
                | "x-webauth-user"
                | "cookie"
        )
}

// Header names as constants: a `&str` name is parsed and checked again at every insert.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_OPAQUE_ID: HeaderName = HeaderName::from_static("x-opaque-id");
const X_ELASTIC_PRODUCT: HeaderName = HeaderName::from_static("x-elastic-product");

/// Room for the headers esgate sets on an upstream request (`common_headers`, `Accept`,
/// `Accept-Encoding`, `Content-Type`) and the `Host` the pool adds: a map made with room for
/// them is never rehashed into a larger one (issue 10: growing the map of six headers when
/// `Host` came seventh was about 1% of a small GET). Only the capacity: iteration, and so the
/// order on the wire, is the order of insertion.
const UPSTREAM_HEADERS: usize = 8;

/// The headers a map made with room for [`UPSTREAM_HEADERS`] holds (`HeaderMap::capacity`: 16
/// places, a block of 12 entries of about 100 bytes).
const UPSTREAM_ROOM: usize = 12;

thread_local! {
    /// The map of an upstream answer's headers, emptied, for this thread's next upstream
    /// request (perf27b). hyper's client parses an answer's head into the map its request was
    /// sent with (emptied when it is written); an enforced token's answer copies the few
    /// headers it relays out of it, and the map (1.2 KB, past the allocator's small sizes) was
    /// freed and another made for the next request. Only a map of exactly the upstream
    /// request's room is kept (not one a long head grew); it holds no header.
    static SPARE: std::cell::Cell<Option<HeaderMap>> = const { std::cell::Cell::new(None) };
}

/// A map with room for an upstream request's headers: the thread's spare one, or a new one.
fn upstream_map() -> HeaderMap {
    SPARE
        .with(std::cell::Cell::take)
        .unwrap_or_else(|| HeaderMap::with_capacity(UPSTREAM_HEADERS))
}

/// Keeps `map`, emptied, as the thread's spare ([`upstream_map`]) when it has the upstream
/// request's room and held no more values than that (`clear` keeps the block of a name's
/// repeated values, which `capacity` does not show: an answer of many `set-cookie`s grew it).
fn recycle(mut map: HeaderMap) {
    if map.capacity() == UPSTREAM_ROOM && map.len() <= UPSTREAM_ROOM {
        map.clear();
        SPARE.with(|spare| spare.set(Some(map)));
    }
}

fn common_headers(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    if let Some(a) = f.authorization {
        headers.insert(header::AUTHORIZATION, a.clone());
    }
    if let Ok(v) = HeaderValue::from_str(f.client_ip) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if f.tls { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(f.opaque_id) {
        headers.insert(X_OPAQUE_ID, v);
    }
}

/// The upstream request for a checked request. `accept` is what `es::request::media::upstream_accept`
/// chose for the client's `Accept` (JSON, in the client's compatible version if it asked for
/// one); the body's `Content-Type` keeps the compatible version of the client's, or takes
/// `accept`'s when the client sent none.
///
/// `client` is what hygiene's pass found in the client's headers: its `Accept-Encoding` and
/// `Content-Type` (the first value each, as `HeaderMap::get` finds them).
///
/// `client_body` is the body the permit was prepared from: a large forwarded body sends spans
/// of it as they are (`es::ForwardBody::spans`, slices of the same block, no copy); refused
/// (never, for the body the permit was built from) when a span does not fit in it.
pub fn from_permit(
    permit: Permit,
    client_body: Option<&Bytes>,
    accept: JsonMedia,
    client: &Head<'_>,
    f: &Forwarding<'_>,
) -> Result<UpstreamRequest, es::Rejection> {
    // Room for the path and the parameters as they are (encoding rarely adds to them).
    let room = permit.path.len()
        + permit
            .query
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>();
    let mut path_and_query = String::with_capacity(room);
    path_and_query.push_str(&permit.path);
    for (i, (k, v)) in permit.query.iter().enumerate() {
        path_and_query.push(if i == 0 { '?' } else { '&' });
        push_query_component(&mut path_and_query, k);
        path_and_query.push('=');
        push_query_component(&mut path_and_query, v);
    }
    let mut headers = upstream_map();
    common_headers(&mut headers, f);
    if let Some(v) = media_header(accept) {
        headers.insert(header::ACCEPT, v);
    }
    // Response compression is harmless; pass the client's wish when it is a plain one, except
    // where esgate must read the response whole: to seal a continuation id in it, or to judge
    // the failures it may report (every `_msearch` answer, `proxy::failures`). Such an answer
    // reaches the client uncompressed anyway; asked compressed, esgate decoded it whole first
    // (perf23c, BENCHMARKS.md), and the backend compressed it for nothing.
    let accept_encoding = client.accept_encoding.filter(|_| {
        !permit.answer.reads_whole() && !es::answers::failures::judged_whole(permit.action)
    });
    if let Some(ae) = accept_encoding.filter(|ae| plain_encodings(ae)) {
        headers.insert(header::ACCEPT_ENCODING, ae.clone());
    }
    let body = match permit.body {
        Some(b) => {
            let family = if b.content_type == "application/x-ndjson" {
                Family::Ndjson
            } else {
                Family::Json
            };
            let client_ct = client.content_type.and_then(|v| v.to_str().ok());
            if let Some(v) = media_header(media::upstream_content_type(client_ct, accept, family)) {
                headers.insert(header::CONTENT_TYPE, v);
            }
            forward_body(b, client_body)?
        }
        None => UpstreamBody::Empty,
    };
    Ok(UpstreamRequest {
        method: Method::from_bytes(permit.method.as_str().as_bytes()).unwrap_or(Method::GET),
        path_and_query,
        headers,
        body,
    })
}

/// Whether a client's `Accept-Encoding` asks only for plain encodings (`gzip`, `deflate`,
/// `identity`, each with parameters or none; empty items allowed), and so is passed upstream.
/// The values clients send most (Grafana's `gzip`, Python's `identity`, curl's and browsers'
/// lists without `br`) are matched whole before the item-by-item reading, which accepts them
/// too (session 25: the split was about 270 instructions a request;
/// `tests::plain_encodings_match_the_item_by_item_reading`).
fn plain_encodings(value: &HeaderValue) -> bool {
    if matches!(
        value.as_bytes(),
        b"gzip" | b"identity" | b"deflate" | b"gzip, deflate" | b"gzip,deflate"
    ) {
        return true;
    }
    value.to_str().is_ok_and(|s| {
        s.split(',').all(|p| {
            matches!(
                p.split(';').next().unwrap_or("").trim(),
                "gzip" | "deflate" | "identity" | ""
            )
        })
    })
}

/// The bytes [`QUERY`] leaves as they are (ASCII letters, digits and `-_.~*,`), as a table.
const KEPT_IN_QUERY: [bool; 256] = {
    let mut kept = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        kept[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'*' | b',');
        b += 1;
    }
    kept
};

/// Appends a query parameter's name or value, percent-encoded with [`QUERY`]. One made only of
/// bytes `QUERY` leaves as they are (every parameter esgate writes itself, and nearly all a
/// client sends) is copied whole after one pass over a table without branches:
/// `utf8_percent_encode`'s chunks were about 170 instructions a component (session 25;
/// `tests::query_components_are_encoded_as_percent_encoding_does`).
fn push_query_component(out: &mut String, text: &str) {
    let plain = text
        .bytes()
        .fold(true, |plain, b| plain & KEPT_IN_QUERY[usize::from(b)]);
    if plain {
        out.push_str(text);
    } else {
        out.extend(utf8_percent_encode(text, QUERY));
    }
}

/// A permit's body as sent: one block, or (spans of the client's body in it) its parts, each
/// span a slice of `client_body`, which the permit was prepared from.
fn forward_body(
    b: es::ForwardBody,
    client_body: Option<&Bytes>,
) -> Result<UpstreamBody, es::Rejection> {
    if b.spans.is_empty() {
        return Ok(UpstreamBody::Full(Bytes::from(b.bytes)));
    }
    let unbuilt = || es::Rejection::forbidden("esgate could not build the forwarded body");
    let client_body = client_body.ok_or_else(unbuilt)?;
    let parts = b.parts(client_body.len()).ok_or_else(unbuilt)?;
    let own = Bytes::from(b.bytes);
    let parts = parts
        .into_iter()
        .map(|part| match part {
            es::BodyPart::Own(r) => own.slice(r),
            es::BodyPart::Client(r) => client_body.slice(r),
        })
        .collect();
    Ok(UpstreamBody::Parts(crate::upstream::PartsBody::new(parts)))
}

/// A media type's header value ([`JsonMedia::header_value`]); the two plain ones without
/// formatting or copying (issue 10).
fn media_header(media: JsonMedia) -> Option<HeaderValue> {
    match (media.family, media.compat) {
        (Family::Json, None) => Some(HeaderValue::from_static("application/json")),
        (Family::Ndjson, None) => Some(HeaderValue::from_static("application/x-ndjson")),
        _ => HeaderValue::from_maybe_shared(Bytes::from(media.header_value())).ok(),
    }
}

/// The upstream request for a pass-through (`all`) token: of the client's headers only those
/// `relayed_for_all` (and not named by its `Connection` header), then esgate's own.
pub fn pass_through(
    method: Method,
    path_and_query: &str,
    client: &HeaderMap,
    body: ClientBody,
    f: &Forwarding<'_>,
    extra: &RelayHeaders,
) -> UpstreamRequest {
    let mut headers = HeaderMap::with_capacity(client.len() + UPSTREAM_HEADERS);
    // Headers the client's Connection header names are hop-by-hop too.
    let listed: Vec<String> = client
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in client {
        if !relayed_for_all(name, extra) || listed.iter().any(|l| l == name.as_str()) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    common_headers(&mut headers, f);
    let body = match body {
        _ if body.is_end_stream() => UpstreamBody::Empty,
        ClientBody::Stream(body) => UpstreamBody::Stream(body),
        ClientBody::Whole(bytes) => UpstreamBody::Full(bytes),
    };
    UpstreamRequest {
        method,
        path_and_query: path_and_query.to_owned(),
        headers,
        body,
    }
}

/// Response headers relayed to the client: everything but hop-by-hop headers, and always
/// `X-Elastic-Product: Elasticsearch` (official clients and Kibana require it).
/// Response headers relayed to a `read` token: what describes the body and the request id the
/// backend echoes (esgate's `X-Opaque-Id`, never the client's). Anything else a backend adds
/// (`Warning` texts naming indices, `Set-Cookie`, `WWW-Authenticate`, SQL's `Cursor`...) could
/// carry what the token must not see, so it is dropped. The async search headers are not
/// relayed either: the proxy adds them to an async search answer only, the id sealed
/// (`proxy::seal_id_headers`; attack18b: any other answer carrying one, an ES|QL, SQL or EQL
/// answer run asynchronously, a scroll page, handed the backend's raw id to the token).
/// [`relayed`] compares names with these (the tests hold it to this list).
#[cfg(test)]
const ENFORCED_RESPONSE_HEADERS: &[&str] = &["content-type", "content-encoding", "x-opaque-id"];

/// How many of a backend's response headers an enforced token's answer keeps, each name once:
/// `ENFORCED_RESPONSE_HEADERS` and `Content-Length` ([`response_headers`]' room).
const ENFORCED_KEPT: usize = 4;

/// Whether a backend response header is relayed (`Content-Length` aside, see
/// [`response_headers`]). `ENFORCED_RESPONSE_HEADERS` compared as names rather than as text
/// (issue 10; `tests::enforced_response_headers_are_the_list`).
fn relayed(name: &HeaderName, enforced: bool) -> bool {
    if enforced {
        *name == header::CONTENT_TYPE || *name == header::CONTENT_ENCODING || *name == X_OPAQUE_ID
    } else {
        !is_hop_by_hop(name)
    }
}

/// The response headers to relay: hop-by-hop headers never; for an enforced (`read`) token
/// only `ENFORCED_RESPONSE_HEADERS`; always `X-Elastic-Product: Elasticsearch`.
pub fn response_headers(upstream: &HeaderMap, enforced: bool) -> HeaderMap {
    // Room for what is kept: an enforced token's answer keeps at most the three names
    // `relayed` lets through and `Content-Length` (each once, but for a backend that repeats
    // one), so a backend's other headers (`Server`, `Date`, `Connection` of a proxy in front of
    // it) do not size the map: with seven, it took 16 places and a block of 12 entries
    // (about 1.2 KB, past the allocator's small sizes; session 25: about 300 instructions a
    // small GET). Only the capacity: what is relayed, and its order, are unchanged.
    let room = if enforced {
        upstream.len().min(ENFORCED_KEPT)
    } else {
        upstream.len()
    };
    let mut out = HeaderMap::with_capacity(room + 1);
    // The lengths are counted in the same pass, not looked up twice afterwards.
    let (mut length, mut lengths) = (None, 0);
    for (name, value) in upstream {
        if name == header::CONTENT_LENGTH {
            length.get_or_insert(value);
            lengths += 1;
        } else if relayed(name, enforced) {
            out.append(name.clone(), value.clone());
        }
    }
    // Keep Content-Length only when it is unambiguous; hyper frames the rest.
    if let (Some(cl), 1) = (length, lengths) {
        out.insert(header::CONTENT_LENGTH, cl.clone());
    }
    out.insert(X_ELASTIC_PRODUCT, HeaderValue::from_static("Elasticsearch"));
    out
}

/// [`response_headers`] for an answer whose backend headers are not needed afterwards (a
/// streamed answer): the same headers and values. A pass-through token's, which keep nearly
/// all, are made in place rather than copied into a second map (issue 10: the copy was 3% of
/// a relayed request; only the place of `Content-Length` among them may differ, which HTTP
/// gives no meaning). An enforced token's keep a few: copying those costs less than removing
/// the rest.
pub fn into_response_headers(mut upstream: HeaderMap, enforced: bool) -> HeaderMap {
    if enforced {
        let out = response_headers(&upstream, true);
        recycle(upstream);
        return out;
    }
    // Each name to drop found and removed in turn (a backend sends one or two, such as
    // `Connection`): no list of them (issue 10).
    while let Some(name) = upstream
        .keys()
        .find(|n| *n != header::CONTENT_LENGTH && !relayed(n, enforced))
        .cloned()
    {
        upstream.remove(&name);
    }
    // Keep Content-Length only when it is unambiguous; hyper frames the rest.
    if upstream
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .nth(1)
        .is_some()
    {
        upstream.remove(header::CONTENT_LENGTH);
    }
    upstream.insert(X_ELASTIC_PRODUCT, HeaderValue::from_static("Elasticsearch"));
    upstream
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Session 20: a forwarded body with spans is sent as esgate's text and slices of the
    /// client's body, in order; without spans as one block; a span that does not fit the body
    /// given (never, for the body the permit came from) is refused, not a panic.
    #[test]
    fn a_body_with_spans_is_sent_as_slices_of_the_clients_body() {
        let client = Bytes::from(b"{\"query\":{\"term\":{\"a\":1}}}".to_vec());
        let mut b = es::ForwardBody::new(b"{\"bool\":}".to_vec(), "application/json");
        b.spans = vec![es::SourceSpan {
            at: 8,
            from: 9,
            len: 16,
        }];
        let parts = |body: UpstreamBody| match body {
            UpstreamBody::Parts(p) => p.parts().cloned().collect::<Vec<_>>(),
            UpstreamBody::Full(b) => vec![b],
            _ => panic!("a body of bytes"),
        };
        let sent = parts(forward_body(b.clone(), Some(&client)).unwrap());
        assert_eq!(sent.concat(), b"{\"bool\":{\"term\":{\"a\":1}}}");
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[1].as_ptr(), client[9..].as_ptr(), "not copied");
        assert_eq!(sent.concat(), b.joined(&client).unwrap());
        for short in [None, Some(&client.slice(..24))] {
            assert!(forward_body(b.clone(), short).is_err());
        }
        let whole = es::ForwardBody::new(b"{}".to_vec(), "application/json");
        assert_eq!(parts(forward_body(whole, None).unwrap()), [&b"{}"[..]]);
    }

    /// Session 25: the whole-copy path gives `utf8_percent_encode`'s text for every byte at
    /// every place, and for texts mixing kept and encoded characters.
    #[test]
    fn query_components_are_encoded_as_percent_encoding_does() {
        let reference = |t: &str| utf8_percent_encode(t, QUERY).to_string();
        let mut texts: Vec<String> = (0u32..0x250)
            .filter_map(char::from_u32)
            .flat_map(|c| {
                [
                    c.to_string(),
                    format!("ab{c}"),
                    format!("{c}-z"),
                    format!("x{c}y"),
                ]
            })
            .collect();
        texts.extend(
            [
                "",
                "true",
                "logs-*,metrics-2024.01.*",
                "a b",
                "a+b",
                "a&b=c",
                "100%",
                "é",
                "~_.-*,",
                "open,hidden",
            ]
            .map(String::from),
        );
        for t in &texts {
            let mut out = String::from("?");
            push_query_component(&mut out, t);
            assert_eq!(out[1..], reference(t), "{t:?}");
        }
    }

    /// Session 25: the whole values matched first are ones the item-by-item reading accepts,
    /// and the reading decides the rest as before.
    #[test]
    fn plain_encodings_match_the_item_by_item_reading() {
        let reading = |v: &HeaderValue| {
            v.to_str().is_ok_and(|s| {
                s.split(',').all(|p| {
                    matches!(
                        p.split(';').next().unwrap_or("").trim(),
                        "gzip" | "deflate" | "identity" | ""
                    )
                })
            })
        };
        let values: [&[u8]; 24] = [
            b"gzip",
            b"identity",
            b"deflate",
            b"gzip, deflate",
            b"gzip,deflate",
            b"",
            b"gzip;q=1.0, identity; q=0.5",
            b" gzip ",
            b"gzip, deflate, br",
            b"br",
            b"zstd",
            b"*",
            b"gzip, *",
            b"GZIP",
            b"gzip,",
            b",",
            b"x-gzip",
            b"gzipdeflate",
            b"gzip, deflate, br, zstd",
            b"identity;q=0",
            b"\xff",
            b"gzip\xff",
            b"gzip;\xe9",
            b"gzip;q=1\t, deflate",
        ];
        for v in values {
            let v = HeaderValue::from_bytes(v).unwrap();
            assert_eq!(plain_encodings(&v), reading(&v), "{v:?}");
        }
        for v in [
            "gzip",
            "identity",
            "deflate",
            "gzip, deflate",
            "gzip,deflate",
        ] {
            assert!(plain_encodings(&HeaderValue::from_static(v)));
        }
        assert!(!plain_encodings(&HeaderValue::from_static(
            "gzip, deflate, br"
        )));
        // Not visible ASCII after a parameter: refused, as `to_str` refused it.
        assert!(!plain_encodings(
            &HeaderValue::from_bytes(b"gzip;\xe9").unwrap()
        ));
    }

    #[test]
    fn response_headers_drop_hop_by_hop_and_add_the_product_header() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            "warning",
            HeaderValue::from_static("299 Elasticsearch \"[.secret]\""),
        );
        h.insert("set-cookie", HeaderValue::from_static("s=1"));
        h.insert("x-opaque-id", HeaderValue::from_static("mine"));
        for enforced in [false, true] {
            let out = response_headers(&h, enforced);
            assert!(out.get("connection").is_none());
            assert!(out.get("transfer-encoding").is_none());
            assert_eq!(out["content-type"], "application/json");
            assert_eq!(out["x-opaque-id"], "mine");
            assert_eq!(out["x-elastic-product"], "Elasticsearch");
            // A pass-through token sees the backend's other headers; a read token does not.
            assert_eq!(out.get("warning").is_some(), !enforced);
            assert_eq!(out.get("set-cookie").is_some(), !enforced);
        }
    }

    /// The in-place variant relays exactly what the copying one does (as a set of name and
    /// value pairs: only `Content-Length`'s place may differ).
    #[test]
    fn response_headers_made_in_place_are_the_copied_ones() {
        fn pairs(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = h
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            v.sort();
            v
        }
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[
                ("content-type", "application/json"),
                ("content-length", "12"),
            ],
            &[
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("server", "nginx"),
                ("date", "Sat, 05 Dec 2026 09:00:00 GMT"),
                ("content-type", "application/json"),
                ("content-length", "12"),
                ("x-elastic-product", "Elasticsearch"),
            ],
            // Two lengths: neither is relayed.
            &[("content-length", "12"), ("content-length", "13")],
            &[("content-length", "12"), ("content-length", "12")],
            &[
                ("transfer-encoding", "chunked"),
                ("warning", "299 Elasticsearch \"a\""),
                ("warning", "299 Elasticsearch \"b\""),
                ("set-cookie", "s=1"),
                ("x-opaque-id", "mine"),
                ("x-elasticsearch-async-id", "abc"),
                ("x-elasticsearch-async-is-running", "true"),
                ("content-encoding", "gzip"),
            ],
            // The backend's own product header is replaced, never doubled.
            &[
                ("x-elastic-product", "Other"),
                ("x-elastic-product", "More"),
            ],
            &[
                ("upgrade", "h2c"),
                ("te", "trailers"),
                ("trailer", "x"),
                ("proxy-connection", "a"),
            ],
            // More dropped names than fit the few kept without a list, some twice.
            &[
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("content-length", "3"),
                ("upgrade", "h2c"),
                ("connection", "close"),
                ("te", "trailers"),
                ("server", "nginx"),
                ("trailer", "x"),
                ("proxy-connection", "a"),
                ("transfer-encoding", "chunked"),
                ("proxy-authenticate", "Basic"),
                ("keep-alive", "max=1"),
            ],
        ];
        for case in cases {
            let mut h = HeaderMap::new();
            for (n, v) in *case {
                h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
            }
            for enforced in [false, true] {
                assert_eq!(
                    pairs(&into_response_headers(h.clone(), enforced)),
                    pairs(&response_headers(&h, enforced)),
                    "{case:?} enforced {enforced}"
                );
            }
        }
    }

    /// The room made for an enforced token's answer holds the names it keeps, each once, and
    /// the product header, whatever else the backend sent (session 25).
    #[test]
    fn enforced_answers_fit_the_room_made_for_them() {
        assert_eq!(ENFORCED_KEPT, ENFORCED_RESPONSE_HEADERS.len() + 1);
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("server", "nginx"),
            ("date", "Sat, 05 Dec 2026 09:00:00 GMT"),
            ("connection", "keep-alive"),
            ("content-type", "application/json"),
            ("content-length", "12"),
            ("content-encoding", "gzip"),
            ("x-opaque-id", "esgate:tok_a:0123456789abcdef"),
            ("warning", "299 Elasticsearch \"a\""),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let out = response_headers(&h, true);
        assert_eq!(out.len(), ENFORCED_KEPT + 1);
        assert_eq!(
            out.capacity(),
            HeaderMap::<HeaderValue>::with_capacity(ENFORCED_KEPT + 1).capacity()
        );
    }

    #[test]
    fn enforced_response_headers_are_the_list() {
        for name in crate::proxy::hygiene::tests::some_names() {
            let parsed = HeaderName::from_static(name);
            assert_eq!(
                relayed(&parsed, true),
                ENFORCED_RESPONSE_HEADERS.contains(&name),
                "{name}"
            );
            assert_eq!(
                relayed(&parsed, false),
                !crate::proxy::hygiene::HOP_BY_HOP.contains(&name),
                "{name}"
            );
        }
    }

    /// The response headers as they were made before the one pass (issue 10), compared as
    /// maps in order.
    #[test]
    fn response_headers_are_what_the_lookups_made() {
        fn reference(upstream: &HeaderMap, enforced: bool) -> HeaderMap {
            let mut out = HeaderMap::with_capacity(upstream.len() + 1);
            for (name, value) in upstream {
                let relayed = if enforced {
                    ENFORCED_RESPONSE_HEADERS.contains(&name.as_str())
                } else {
                    !crate::proxy::hygiene::HOP_BY_HOP.contains(&name.as_str())
                };
                if relayed && name != header::CONTENT_LENGTH {
                    out.append(name.clone(), value.clone());
                }
            }
            if let Some(cl) = upstream.get(header::CONTENT_LENGTH) {
                if upstream.get_all(header::CONTENT_LENGTH).iter().count() == 1 {
                    out.insert(header::CONTENT_LENGTH, cl.clone());
                }
            }
            out.insert(X_ELASTIC_PRODUCT, HeaderValue::from_static("Elasticsearch"));
            out
        }
        fn ordered(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
            h.iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect()
        }
        let names = crate::proxy::hygiene::tests::some_names();
        for (i, first) in names.iter().enumerate() {
            for second in &names[i..] {
                for lengths in 0..3 {
                    let mut h = HeaderMap::new();
                    h.append(
                        HeaderName::from_static(first),
                        HeaderValue::from_static("1"),
                    );
                    for n in 0..lengths {
                        h.append(header::CONTENT_LENGTH, HeaderValue::from(10 + n));
                    }
                    h.append(
                        HeaderName::from_static(second),
                        HeaderValue::from_static("2"),
                    );
                    for enforced in [false, true] {
                        assert_eq!(
                            ordered(&response_headers(&h, enforced)),
                            ordered(&reference(&h, enforced)),
                            "{first} {second} {lengths} {enforced}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn media_headers_are_the_media_types_values() {
        for family in [Family::Json, Family::Ndjson] {
            for compat in [None, Some(7), Some(8), Some(9)] {
                let media = JsonMedia { family, compat };
                assert_eq!(
                    media_header(media).unwrap().to_str().unwrap(),
                    media.header_value()
                );
            }
        }
    }

    /// perf27b: an enforced answer's map is kept for the thread's next upstream request
    /// emptied, with the room of a new one: the request's headers are those of a new map, in
    /// the same order, and nothing of the answer's. A map a long head grew is not kept.
    #[test]
    fn a_recycled_answer_map_carries_nothing_over() {
        assert_eq!(
            HeaderMap::<HeaderValue>::with_capacity(UPSTREAM_HEADERS).capacity(),
            UPSTREAM_ROOM
        );
        let f = Forwarding {
            authorization: None,
            client_ip: "10.0.0.1",
            tls: false,
            opaque_id: "esgate:tok_a:0123456789abcdef",
        };
        // In order: the order on the wire.
        let pairs = |h: &HeaderMap| -> Vec<(String, Vec<u8>)> {
            h.iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect()
        };
        let request = |mut headers: HeaderMap| {
            common_headers(&mut headers, &f);
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            pairs(&headers)
        };
        let fresh = request(HeaderMap::with_capacity(UPSTREAM_HEADERS));
        SPARE.with(|spare| spare.set(None));
        // The answer parsed into the request's map, as hyper's client does.
        let mut answer = HeaderMap::with_capacity(UPSTREAM_HEADERS);
        for (n, v) in [
            ("server", "nginx"),
            ("content-type", "application/json"),
            ("content-length", "12"),
            ("x-opaque-id", "esgate:tok_b:fedcba9876543210"),
            ("x-elastic-product", "Elasticsearch"),
            ("set-cookie", "a=secret"),
        ] {
            answer.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        answer.append("set-cookie", HeaderValue::from_static("b=secret"));
        let out = into_response_headers(answer, true);
        assert!(out.get("server").is_none());
        let spare = upstream_map();
        assert!(spare.is_empty(), "{:?}", pairs(&spare));
        assert_eq!(spare.capacity(), UPSTREAM_ROOM, "the spare was kept");
        assert_eq!(request(spare), fresh);
        assert!(SPARE.with(|s| s.take()).is_none(), "taken once");
        // A grown map is not kept; nor is a relayed answer's (it becomes the client's).
        let mut grown = HeaderMap::with_capacity(UPSTREAM_HEADERS);
        for i in 0..20 {
            grown.insert(
                HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        let _ = into_response_headers(grown, true);
        assert!(SPARE.with(|s| s.take()).is_none());
        // Nor one whose repeated values grew their own block (review27; `clear` keeps it).
        let mut repeated = HeaderMap::with_capacity(UPSTREAM_HEADERS);
        for i in 0..40 {
            repeated.append(header::SET_COOKIE, HeaderValue::from(i));
        }
        assert_eq!(repeated.capacity(), UPSTREAM_ROOM);
        let _ = into_response_headers(repeated, true);
        assert!(SPARE.with(|s| s.take()).is_none());
        let _ = into_response_headers(HeaderMap::with_capacity(UPSTREAM_HEADERS), false);
        assert!(SPARE.with(|s| s.take()).is_none());
    }

    /// Every header esgate sets upstream, then `Host` (as `upstream::Upstream::send` adds it),
    /// fits the map without growing it.
    #[test]
    fn upstream_headers_have_room_for_host() {
        let credential = HeaderValue::from_static("Basic ZXNnYXRlOnNlY3JldA==");
        for authorization in [None, Some(&credential)] {
            room_for_host(&Forwarding {
                authorization,
                client_ip: "10.0.0.1",
                tls: true,
                opaque_id: "esgate:tok_a:0123456789abcdef",
            });
        }
    }

    fn room_for_host(f: &Forwarding<'_>) {
        let mut client = HeaderMap::new();
        client.insert("accept-encoding", HeaderValue::from_static("gzip"));
        client.insert("content-type", HeaderValue::from_static("application/json"));
        client.insert("x-custom", HeaderValue::from_static("kept"));
        let mut headers = HeaderMap::with_capacity(UPSTREAM_HEADERS);
        common_headers(&mut headers, f);
        for (name, value) in [
            (header::ACCEPT, "application/json"),
            (header::ACCEPT_ENCODING, "gzip"),
            (header::CONTENT_TYPE, "application/json"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let room = headers.capacity();
        headers.insert(header::HOST, HeaderValue::from_static("es.local:9200"));
        assert_eq!(headers.capacity(), room);
        let mut relayed = pass_through(
            Method::POST,
            "/logs/_search",
            &client,
            ClientBody::Whole(Bytes::new()),
            f,
            &RelayHeaders::default(),
        );
        let room = relayed.headers.capacity();
        relayed
            .headers
            .insert(header::HOST, HeaderValue::from_static("es.local:9200"));
        assert_eq!(relayed.headers.capacity(), room);
    }

    /// Names that change who the backend takes a request to be from (attack20b, attack20c,
    /// attack21b: run-as and impersonation of every security plugin, an authenticating
    /// proxy's headers, a client credential, a cluster route), and esgate's own.
    const NEVER: &[&str] = &[
        "authorization",
        "cookie",
        "es-security-runas-user",
        "es-secondary-authorization",
        "es-client-authentication",
        "opendistro_security_impersonate_as",
        "sg_impersonate_as",
        "x-ror-impersonating",
        "x-proxy-user",
        "x-proxy-roles",
        "x-proxy-ext-spaceids",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "x-forwarded-client-cert",
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-groups",
        "remote-user",
        "x-remote-user",
        "x-found-cluster",
        "x-found-handling-cluster",
        "_opendistro_security_user",
        "_opendistro_security_dls_query",
        "_sg_user",
        "forwarded",
        "x-real-ip",
        "x-opaque-id",
        "x-http-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-amzn-oidc-identity",
        "x-amzn-oidc-data",
        "x-goog-authenticated-user-email",
        "x-ms-client-principal-name",
        "x-ms-client-principal",
        "x-envoy-original-path",
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "x-webauth-user",
    ];

    /// Names on no list (hdr21): what Grafana and Kibana send for themselves that the backend
    /// does not read, headers a backend could be configured to read as proven (an
    /// authenticating proxy's user header under a name of its settings), CORS, conditional and
    /// caching headers (Elasticsearch reads none of them), `Expect`.
    const UNLISTED: &[&str] = &[
        "x-grafana-org-id",
        "x-grafana-user",
        "x-dashboard-uid",
        "x-panel-id",
        "kbn-xsrf",
        "x-custom",
        "x-my-proxy-user",
        "x-webauth-user",
        "x-amzn-oidc-identity",
        "origin",
        "access-control-request-method",
        "if-none-match",
        "if-match",
        "if-modified-since",
        "cache-control",
        "pragma",
        "accept-language",
        "expect",
        "x-request-id",
        "x-elastic-product",
        "x-elasticsearch-async-id",
    ];

    fn relayed_with(client_names: &[&'static str], extra: &RelayHeaders) -> HeaderMap {
        let f = Forwarding {
            authorization: None,
            client_ip: "10.0.0.1",
            tls: false,
            opaque_id: "esgate:tok_a:0123456789abcdef",
        };
        let mut client = HeaderMap::new();
        for name in client_names {
            client.insert(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        pass_through(
            Method::GET,
            "/",
            &client,
            ClientBody::Whole(Bytes::new()),
            &f,
            extra,
        )
        .headers
    }

    /// attack21b, then hdr21: what would make the backend, or a proxy in front of it, take an
    /// `all` token's request as someone else's is never relayed, and neither is any name off
    /// the allow-list; what the official clients, Kibana and Grafana send for themselves and
    /// the backend reads is, and so are the tenant selectors, which pick among what esgate's
    /// credential may use. The client's headers that reach the backend are those on the list,
    /// no other (esgate adds only its own: `Authorization`, `X-Forwarded-*`, `X-Opaque-Id`).
    #[test]
    fn an_all_tokens_request_keeps_only_the_allow_listed_headers() {
        let sent_names = |sent: &HeaderMap| -> Vec<String> {
            sent.iter()
                .filter(|(_, v)| *v == "v")
                .map(|(n, _)| n.as_str().to_owned())
                .collect()
        };
        let all: Vec<&'static str> = NEVER
            .iter()
            .chain(UNLISTED)
            .chain(RELAYED_FOR_ALL)
            .copied()
            .collect();
        let sent = relayed_with(&all, &RelayHeaders::default());
        assert_eq!(sent_names(&sent), RELAYED_FOR_ALL);
        let esgates: Vec<&str> = sent
            .iter()
            .filter(|(_, v)| *v != "v")
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            esgates,
            ["x-forwarded-for", "x-forwarded-proto", "x-opaque-id"]
        );
        // Configured names are relayed too (any case in the file); the rest stays dropped.
        let extra = RelayHeaders::new(["x-custom", "X-Grafana-Org-Id"]).unwrap();
        let sent = relayed_with(&all, &extra);
        let mut want: Vec<&str> = RELAYED_FOR_ALL.to_vec();
        want.extend(["x-grafana-org-id", "x-custom"]);
        let mut got = sent_names(&sent);
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    /// The list as compared ([`relayed_for_all`]) is [`RELAYED_FOR_ALL`], and nothing on it is
    /// a name esgate never relays.
    #[test]
    fn the_allow_list_is_the_list_and_holds_no_identity_header() {
        let none = RelayHeaders::default();
        let names = crate::proxy::hygiene::tests::some_names();
        for name in names
            .iter()
            .chain(NEVER)
            .chain(UNLISTED)
            .chain(RELAYED_FOR_ALL)
        {
            let parsed = HeaderName::from_static(name);
            assert_eq!(
                relayed_for_all(&parsed, &none),
                RELAYED_FOR_ALL.contains(name),
                "{name}"
            );
        }
        for name in RELAYED_FOR_ALL {
            let parsed = HeaderName::from_static(name);
            assert!(!never_relayed(&parsed), "{name}");
            assert!(!is_hop_by_hop(&parsed), "{name}");
        }
        for name in NEVER {
            assert!(never_relayed(&HeaderName::from_static(name)), "{name}");
        }
    }

    /// `backend.relay_headers` cannot add a name esgate never relays, a pattern or what is no
    /// header name; each refused entry is named with its reason; names already relayed or
    /// given twice are kept once.
    #[test]
    fn configured_names_are_checked() {
        for name in NEVER
            .iter()
            .chain(crate::proxy::hygiene::HOP_BY_HOP)
            .chain(&["host", "content-length", "X-Proxy-User", "X-Forwarded-User"])
        {
            let refused = RelayHeaders::new([*name]).unwrap_err();
            assert_eq!(refused.len(), 1, "{name}");
            assert!(refused[0].1.contains("never relays"), "{name}: {refused:?}");
        }
        let refused =
            RelayHeaders::new(["x-ok", "x-grafana-*", "bad name", "", "x-proxy-user"]).unwrap_err();
        let at: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [1, 2, 3, 4], "{refused:?}");
        assert!(refused[0].1.contains("pattern"), "{refused:?}");
        assert!(refused[1].1.contains("not a header name"), "{refused:?}");
        assert!(
            refused[3].1.contains("who the backend takes"),
            "{refused:?}"
        );
        let r = RelayHeaders::new(["X-Custom", "x-custom", "user-agent", "Origin"]).unwrap();
        assert_eq!(r.names().collect::<Vec<_>>(), ["x-custom", "origin"]);
    }

    #[test]
    fn the_opaque_id_is_esgates_and_a_clients_is_never_relayed() {
        let f = Forwarding {
            authorization: None,
            client_ip: "10.0.0.1",
            tls: false,
            opaque_id: "esgate:tok_a:0123456789abcdef",
        };
        let mut client = HeaderMap::new();
        client.insert("x-opaque-id", HeaderValue::from_static("esgate:tok_b:1"));
        client.insert("user-agent", HeaderValue::from_static("kept"));
        let relayed = pass_through(
            Method::GET,
            "/logs/_search",
            &client,
            ClientBody::Whole(Bytes::new()),
            &f,
            &RelayHeaders::default(),
        );
        let ids: Vec<_> = relayed.headers.get_all("x-opaque-id").iter().collect();
        assert_eq!(ids, ["esgate:tok_a:0123456789abcdef"]);
        assert_eq!(relayed.headers["user-agent"], "kept");
        assert!(matches!(relayed.body, UpstreamBody::Empty));
    }
}
